//! `rotate REGISTRY [--force]`: renew the stored token now.
//!
//! Respects Invariant B: while a hand-out is live (a push may be using the token), rotating
//! would revoke it under that push, so it is refused unless `--force`.

use std::time::Instant;

use anyhow::{Context, bail};

use crate::env::Env;
use crate::records::Records;
use crate::registry::RegistryHost;
use crate::renew;
use crate::settings::Settings;

pub(crate) fn run(env: &Env, registry: &str, force: bool) -> anyhow::Result<()> {
    let host = RegistryHost::parse(registry)?;
    let records = Records::locate(env)?;
    let (entry, _secret) = records
        .load(&host)?
        .with_context(|| format!("no credentials stored for {host}"))?;
    if let Some(mark) = entry.revoked() {
        bail!(
            "the token for {host} was rotated or revoked elsewhere ({}); log in again with the current token, or create a new one: docker-credential-gitlab login {host}",
            mark.reason
        );
    }
    let info = entry.gitlab.clone().with_context(|| {
        format!("the credential for {host} was stored by `docker login`; run `docker-credential-gitlab login {host}` first")
    })?;
    if !info.can_renew() {
        bail!(
            "the {} for {host} cannot renew itself (it needs the api or self_rotate scope)",
            info.kind.describe()
        );
    }
    // GitLab's rotate always sets an expiry: a token that never expires would silently get one.
    if info.expires_at.is_none() && !force {
        bail!(
            "the token for {host} never expires; rotating gives the new token an expiry date \
             (GitLab requires one), after which it must be renewed. Pass --force to rotate anyway"
        );
    }
    let settings = Settings::load(env)?;
    let min_validity = settings.min_validity(host.as_str());
    let now = crate::clock::now();
    let dies_soon = info
        .expires_at
        .is_some_and(|t| t.duration_since(now) < min_validity);
    let keys = records.sharing(&host, &entry);
    // Every host's hand-outs, in a fleet.
    if let Some(until) = records.leases_everywhere(&keys, now)?.until
        && now < until
        && !dies_soon
        && !force
    {
        bail!(
            "the token was handed out with a promise that runs until {until}, and a push may still be using it; \
             rotating now would revoke it under that push. Wait until then or pass --force"
        );
    }
    // Not `hard` unless forced or dying anyway: the frame then re-checks the leases after
    // its journal, so a hand-out that starts while this runs is never cut.
    let promise = renew::Promise {
        min_validity,
        early_renewal: settings.early_renewal(),
        hard: force || dies_soon,
    };
    let renewed = renew::renew(
        &records,
        &host,
        &entry,
        promise,
        Instant::now() + std::time::Duration::from_secs(30),
    )
    .inspect_err(|e| e.mark_if_dead(&records, crate::datadir::LOCK_DEADLINE, &host, &entry))?;
    let expires = renewed
        .entry
        .gitlab
        .as_ref()
        .and_then(|g| g.expires_at)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "never".into());
    println!("Rotated the token for {host}; the new one expires {expires}.");
    Ok(())
}
