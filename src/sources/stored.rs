//! The stored source: a credential `login` or `store` saved for the host, handed out
//! through the refresh policy.
//!
//! The steady path is: read the state file, one `stat` (is a renewal journal open?), one
//! keychain call, one lease write. Credentials from `login` carry an expiry, so the policy
//! may renew them first (the only time this takes a lock or talks to GitLab); plain
//! `docker login` entries are handed out as they are.
//!
//! `get` exits 0 only with a secret that is valid now and for the promise: a renewal whose
//! outcome is unknown, or a token another process is rotating, is an error, never a
//! hand-out of a token that may already be revoked.

use std::time::Instant;

use jiff::Timestamp;

use crate::credentials;
use crate::leases;
use crate::policy::{self, Decision, PairDecision};
use crate::registry::RegistryHost;
use crate::renew::{self, Promise, RenewError, kept};
use crate::secret::Secret;
use crate::settings::{Settings, SettingsError, describe};
use crate::state::{Entry, StateFile};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Credentials(#[from] credentials::Error),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Renew(#[from] RenewError),
    #[error(
        "the token for {host} expired at {at} and cannot renew itself; create a new token and run: docker-credential-gitlab login {host}"
    )]
    Expired { host: String, at: String },
}

/// The stored username and a secret valid for the promised time, if a credential is
/// stored for `host`. `deadline` bounds a renewal. With a standby pair (`login --standby`)
/// the pair policy picks which of the two tokens to hand out.
pub fn get(
    state_file: &StateFile,
    host: &RegistryHost,
    deadline: Instant,
) -> Result<Option<(String, Secret)>, Error> {
    let standby = host.standby();
    let state = state_file.load().map_err(credentials::Error::from)?;
    let (Some(primary), Some(second)) = (
        state.entries.get(host.as_str()),
        state.entries.get(standby.as_str()),
    ) else {
        // The common case: one token. The state just read serves (one read fewer).
        let Some(found) = credentials::entry_shared_in(&state, host) else {
            return Ok(None);
        };
        return get_key(state_file, host, host, Some(found), deadline);
    };
    let (active, idle) = if standby_active(primary) {
        (standby.clone(), host.clone())
    } else {
        (host.clone(), standby.clone())
    };
    let settings = Settings::load()?;
    let now = crate::clock::now();
    let dir = state_file.dir();
    let facts = |key: &RegistryHost, e: &Entry| {
        e.gitlab
            .as_ref()
            .map(|info| facts_for(info, dir, key, host, &settings, now))
    };
    let (fa, fi) = if active == *host {
        (facts(host, primary), facts(&standby, second))
    } else {
        (facts(&standby, second), facts(host, primary))
    };
    let (Some(fa), Some(fi)) = (fa, fi) else {
        return get_key(state_file, host, &active, None, deadline);
    };
    // A token minted for either key that the store refused is the one to hand out.
    for key in [&active, &idle] {
        let holder = &state.entries[key.as_str()];
        let group = renew::token_group(state_file, key, holder);
        if kept::exists(dir, &group) {
            if *key == idle {
                switch_to(state_file, host, &idle, deadline);
            }
            return get_key(state_file, host, key, None, deadline);
        }
    }
    match policy::decide_pair(&fa, &fi) {
        PairDecision::Active | PairDecision::Single => {
            get_key(state_file, host, &active, None, deadline)
        }
        PairDecision::Switch => {
            switch_to(state_file, host, &idle, deadline);
            get_key(state_file, host, &idle, None, deadline)
        }
        PairDecision::RenewIdleThenSwitch => {
            let promise = Promise {
                min_validity: fi.min_validity,
                early_renewal: fi.early_renewal,
                hard: false,
            };
            let idle_entry = state.entries[idle.as_str()].clone();
            match renew::renew(state_file, &idle, &idle_entry, promise, deadline) {
                // Renewed (or kept): hand it out even if recording the switch fails.
                Ok(_) => {
                    switch_to(state_file, host, &idle, deadline);
                    get_key(state_file, host, &idle, None, deadline)
                }
                Err(e) => {
                    if leases::first_warning_today(dir, host, "standby", now) {
                        warn(&format!(
                            "the standby token for {host} could not be renewed ({e}); staying on the active one"
                        ));
                    }
                    get_key(state_file, host, &active, None, deadline)
                }
            }
        }
    }
}

/// Whether hand-outs of `host` currently go to its standby token.
pub fn standby_active(primary: &Entry) -> bool {
    primary
        .extra
        .get(STANDBY_ACTIVE)
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

const STANDBY_ACTIVE: &str = "standby_active";

/// How long a best-effort bookkeeping write may wait for the state lock.
fn short_wait(deadline: Instant) -> std::time::Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .min(std::time::Duration::from_secs(1))
}

/// Makes `key` the pair's active token. Best effort, within the get deadline: a failed
/// switch only means the next get decides again.
fn switch_to(state_file: &StateFile, host: &RegistryHost, key: &RegistryHost, deadline: Instant) {
    let standby = key != host;
    let switched = state_file
        .lock_with_deadline(short_wait(deadline))
        .and_then(|guard| {
            let mut state = guard.load()?;
            if let Some(primary) = state.entries.get_mut(host.as_str()) {
                primary
                    .extra
                    .insert(STANDBY_ACTIVE.into(), serde_json::Value::Bool(standby));
                guard.save(&state)?;
            }
            Ok(())
        });
    if let Err(e) = switched {
        warn(&format!(
            "could not record which token of {host}'s pair is active: {e}"
        ));
    }
}

fn facts_for(
    info: &crate::state::GitLabInfo,
    dir: &std::path::Path,
    key: &RegistryHost,
    registry: &RegistryHost,
    settings: &Settings,
    now: Timestamp,
) -> policy::Facts {
    let oauth = info.kind == crate::state::TokenKind::OauthToken;
    policy::Facts {
        now,
        expires_at: info.expires_at,
        can_renew: info.can_renew(),
        lifetime: if oauth {
            Some(renew::oauth::lifetime(info))
        } else {
            info.lifetime_days
                .map(|d| jiff::SignedDuration::from_hours(24 * d))
        },
        min_validity: settings.min_validity(registry.as_str()),
        early_renewal: settings.early_renewal(),
        lease_until: leases::lease_until(dir, key),
        max_validity: renew::max_validity(info),
    }
}

/// One token: the key `key` (the registry itself, or its standby) of `registry`.
/// `found`: the entry and its token's keys, when the caller has just read them.
fn get_key(
    state_file: &StateFile,
    registry: &RegistryHost,
    key: &RegistryHost,
    found: Option<(Entry, Vec<String>)>,
    deadline: Instant,
) -> Result<Option<(String, Secret)>, Error> {
    let host = key;
    let dir = state_file.dir();
    let found = match found {
        Some(f) => Some(f),
        None => credentials::entry_shared(state_file, host)?,
    };
    let Some((mut entry, keys)) = found else {
        return Ok(None);
    };
    // Lock, journal and kept copy go by the token's group (every key holding it).
    let group = credentials::group_of(&keys).unwrap_or_else(|| host.clone());
    // A token GitLab minted that the store refused last time: it is the live one (even
    // while the store is still away).
    if entry.gitlab.is_some()
        && kept::exists(dir, &group)
        && let Some(found) = adopt_kept(state_file, registry, host, &group, &entry, deadline)
    {
        return Ok(Some(found));
    }
    let Some(mut secret) = credentials::secret_of(state_file, host, &entry)? else {
        return Ok(None);
    };
    let Some(info) = entry.gitlab.clone() else {
        return Ok(Some((entry.username, secret)));
    };
    let settings = Settings::load()?;
    let min_validity = settings.min_validity(registry.as_str());
    let now = crate::clock::now();
    let mut facts = facts_for(&info, dir, host, registry, &settings, now);
    // A hand-out through any key holding the token protects it.
    facts.lease_until = leases::lease_until_any(dir, &keys);
    let decision = policy::decide(&facts);
    let mut renewed_here = false;
    match decision {
        Decision::HandOut => {}
        Decision::HandOutExpiring | Decision::PromiseTooLong => {
            if info.expires_at.is_some_and(|t| t <= now) {
                return Err(Error::Expired {
                    host: host.to_string(),
                    at: info.expires_at.map(|t| t.to_string()).unwrap_or_default(),
                });
            }
            if leases::first_warning_today(dir, host, "expiry", now) {
                warn(&if decision == Decision::PromiseTooLong {
                    format!(
                        "the token for {host} expires {}; min_validity ({}) is longer than any token renewing can give \
                         ({}), so renewing cannot keep that promise: lower DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY",
                        describe_expiry(info.expires_at, now),
                        describe(min_validity),
                        describe(facts.max_validity)
                    )
                } else {
                    format!(
                        "the token for {host} expires {}, sooner than the {} a push may need, and it cannot renew itself; \
                         create a token with the self_rotate scope and run `docker-credential-gitlab login {host}`",
                        describe_expiry(info.expires_at, now),
                        describe(min_validity),
                    )
                });
            }
        }
        Decision::Renew { hard } => {
            let promise = Promise {
                min_validity,
                early_renewal: settings.early_renewal(),
                hard,
            };
            // In the hard window a rotation revokes hand-outs still inside their promise.
            let cut = leases::live_handouts_any(dir, &keys, now);
            match renew::renew(state_file, host, &entry, promise, deadline) {
                Ok(renewed) => {
                    renewed_here = true;
                    if renewed.rotated_here && cut > 0 {
                        leases::record_cut(dir, host, now, cut);
                        if leases::first_warning_today(dir, host, "cut", now) {
                            warn(&format!(
                                "renewing the token for {registry} revoked it under {cut} hand-out(s) still inside their promise \
                                 (it had to renew within min_validity of their hand-out, so no moment was safe); \
                                 add a second token and renewals never cut a push: \
                                 docker-credential-gitlab login {registry} --standby"
                            ));
                        }
                    }
                    entry = renewed.entry;
                    secret = renewed.secret;
                }
                // Nothing that worked before is lost: a still-valid token is served when the
                // renewal cleanly did not happen.
                Err(e) if e.old_secret_still_good() && info.expires_at.is_none_or(|t| t > now) => {
                    if leases::first_warning_today(dir, host, "renewal", now) {
                        warn(&format!(
                            "{e}; handing out the current token, which expires {}",
                            describe_expiry(info.expires_at, now)
                        ));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    // The lease first, then the journal check: a rotation that started meanwhile either
    // sees this lease and stands down, or has its journal seen here.
    leases::record_handout(dir, host, now, min_validity);
    if renew::interrupted(dir, &group)
        && let Some(renewed) = renew::resolve_open_journal(state_file, host, &entry, deadline)?
    {
        entry = renewed.entry;
        secret = renewed.secret;
    }
    // A rotation elsewhere that finished between the secret read above and the lease: its
    // journal is gone, but the entry changed. Hand out what it stored.
    if !renewed_here
        && let Some((now_entry, now_secret)) =
            credentials::load_if_changed(state_file, host, &entry)?
    {
        entry = now_entry;
        secret = now_secret;
    }
    let secret = hand_out(&entry, secret);
    Ok(Some((entry.username, secret)))
}

/// What `get` hands out of a stored secret: an OAuth entry stores its token pair, and
/// only the access token goes to docker.
fn hand_out(entry: &Entry, stored: Secret) -> Secret {
    match entry.gitlab.as_ref().map(|g| g.kind) {
        Some(crate::state::TokenKind::OauthToken) => renew::oauth::access_token(&stored),
        _ => stored,
    }
}

/// Moves a kept token into the store; it is handed out whether or not that works, as long
/// as `host` still holds what it held when the token was kept (not logged in again since).
fn adopt_kept(
    state_file: &StateFile,
    registry: &RegistryHost,
    host: &RegistryHost,
    group: &RegistryHost,
    entry: &Entry,
    deadline: Instant,
) -> Option<(String, Secret)> {
    let dir = state_file.dir();
    let k = kept::load(dir, group)?;
    if k.keys.get(host.as_str()) != Some(&entry.stored_at) {
        // Obsolete for this key; once no key it was kept for still holds the old token, it
        // is obsolete altogether.
        let state = state_file.load().ok()?;
        if k.keys
            .iter()
            .all(|(key, at)| state.entries.get(key).is_none_or(|e| e.stored_at != *at))
        {
            kept::remove(dir, group);
        }
        return None;
    }
    // Moving it is best effort (it is handed out either way): a short wait for the lock.
    let moved: Result<Vec<String>, credentials::Error> = state_file
        .lock_with_deadline(short_wait(deadline))
        .map_err(credentials::Error::from)
        .and_then(|guard| credentials::adopt(&guard, &k));
    match moved {
        Ok(_) => kept::remove(dir, group),
        Err(e) => {
            if leases::first_warning_today(dir, host, "kept", crate::clock::now()) {
                warn(&format!(
                    "the renewed token for {registry} is kept in the data directory; the store does not take it yet: {e}"
                ));
            }
        }
    }
    let promise = Settings::load()
        .map(|s| s.min_validity(registry.as_str()))
        .unwrap_or(crate::settings::DEFAULT_MIN_VALIDITY);
    leases::record_handout(dir, host, crate::clock::now(), promise);
    let kept_entry = Entry {
        gitlab: Some(k.info.clone()),
        ..entry.clone()
    };
    Some((entry.username.clone(), hand_out(&kept_entry, k.token)))
}

/// Warnings go to stderr (docker shows them); stdout carries only the protocol answer.
pub(crate) fn warn(message: &str) {
    eprintln!("docker-credential-gitlab: warning: {message}");
}

fn describe_expiry(at: Option<Timestamp>, now: Timestamp) -> String {
    match at {
        None => "never".into(),
        Some(t) => format!("at {t} (in {})", describe(t.duration_since(now))),
    }
}
