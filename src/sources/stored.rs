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
use crate::policy::{self, Decision};
use crate::registry::RegistryHost;
use crate::renew::{self, Promise, RenewError, kept, pat};
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
/// stored for `host`. `deadline` bounds a renewal.
pub fn get(
    state_file: &StateFile,
    host: &RegistryHost,
    deadline: Instant,
) -> Result<Option<(String, Secret)>, Error> {
    let dir = state_file.dir();
    // A token GitLab minted that the store refused last time: it is the live one.
    if kept::exists(dir, host)
        && let Some(found) = adopt_kept(state_file, host)
    {
        return Ok(Some(found));
    }
    let Some((mut entry, mut secret)) = credentials::load(state_file, host)? else {
        return Ok(None);
    };
    let Some(info) = entry.gitlab.clone() else {
        return Ok(Some((entry.username, secret)));
    };
    let settings = Settings::load()?;
    let min_validity = settings.min_validity(host.as_str());
    let now = Timestamp::now();
    let facts = policy::Facts {
        now,
        expires_at: info.expires_at,
        can_renew: info.can_renew(),
        lifetime: info
            .lifetime_days
            .map(|d| jiff::SignedDuration::from_hours(24 * d)),
        min_validity,
        early_renewal: settings.early_renewal(),
        lease_until: leases::lease_until(dir, host),
        max_validity: pat::max_validity(),
    };
    let decision = policy::decide(&facts);
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
                        "the token for {host} expires {}; min_validity ({}) is longer than any token GitLab issues \
                         ({} days), so renewing cannot keep that promise: lower DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY",
                        describe_expiry(info.expires_at, now),
                        describe(min_validity),
                        pat::MAX_LIFETIME_DAYS
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
            match renew::renew(state_file, host, &entry, promise, deadline) {
                Ok(renewed) => {
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
    if renew::interrupted(dir, host)
        && let Some(renewed) = renew::resolve_open_journal(state_file, host, &entry, deadline)?
    {
        entry = renewed.entry;
        secret = renewed.secret;
    }
    Ok(Some((entry.username, secret)))
}

/// Moves a kept token into the store; it is handed out whether or not that works.
fn adopt_kept(state_file: &StateFile, host: &RegistryHost) -> Option<(String, Secret)> {
    let k = kept::load(state_file.dir(), host)?;
    let moved: Result<Entry, credentials::Error> = state_file
        .lock()
        .map_err(credentials::Error::from)
        .and_then(|guard| credentials::adopt(&guard, host, &k.username, &k.token, k.info.clone()));
    match moved {
        Ok(_) => kept::remove(state_file.dir(), host),
        Err(e) => {
            if leases::first_warning_today(state_file.dir(), host, "kept", Timestamp::now()) {
                warn(&format!(
                    "the renewed token for {host} is kept in the data directory; the store does not take it yet: {e}"
                ));
            }
        }
    }
    let promise = Settings::load()
        .map(|s| s.min_validity(host.as_str()))
        .unwrap_or(crate::settings::DEFAULT_MIN_VALIDITY);
    leases::record_handout(state_file.dir(), host, Timestamp::now(), promise);
    Some((k.username, k.token))
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
