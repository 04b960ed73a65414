//! The stored source: a credential `login` or `store` saved for the host, handed out
//! through the refresh policy.
//!
//! The steady path is: read the state file, one keychain call. Credentials from `login`
//! carry an expiry, so the policy may renew them first (the only time this takes a lock or
//! talks to GitLab); plain `docker login` entries are handed out as they are.

use std::time::Instant;

use crate::credentials;
use crate::leases;
use crate::policy::{self, Decision};
use crate::registry::RegistryHost;
use crate::renew::{self, RenewError};
use crate::secret::Secret;
use crate::settings::{Settings, SettingsError};
use crate::state::StateFile;

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
    let Some((mut entry, mut secret)) = credentials::load(state_file, host)? else {
        return Ok(None);
    };
    let Some(info) = entry.gitlab.clone() else {
        return Ok(Some((entry.username, secret)));
    };
    let settings = Settings::load()?;
    let now = jiff::Timestamp::now();
    let dir = state_file.dir();
    let facts = policy::Facts {
        now,
        expires_at: info.expires_at,
        can_renew: info.can_renew(),
        lifetime: info
            .lifetime_days
            .map(|d| jiff::SignedDuration::from_hours(24 * d)),
        min_validity: settings.min_validity(host.as_str()),
        early_renewal: settings.early_renewal(),
        last_handout: leases::last_handout(dir, host),
    };
    match policy::decide(&facts) {
        Decision::HandOut => {}
        Decision::HandOutExpiring => {
            if info.expires_at.is_some_and(|t| t <= now) {
                return Err(Error::Expired {
                    host: host.to_string(),
                    at: info.expires_at.map(|t| t.to_string()).unwrap_or_default(),
                });
            }
            if leases::first_warning_today(dir, host, now) {
                warn(&format!(
                    "the token for {host} expires {}, sooner than the {} a push may need, and it cannot renew itself; \
                     create a token with the self_rotate scope and run `docker-credential-gitlab login {host}`",
                    describe_expiry(info.expires_at, now),
                    friendly(facts.min_validity),
                ));
            }
        }
        Decision::Renew { .. } => match renew::renew(state_file, host, &entry, deadline) {
            Ok(renewed) => {
                entry = renewed.entry;
                secret = renewed.secret;
            }
            // Nothing that worked before is lost: a still-valid token is served
            // (unless GitLab already revoked it in a lost rotation).
            Err(e @ RenewError::Lost { .. }) => return Err(e.into()),
            Err(e) if info.expires_at.is_none_or(|t| t > now) => warn(&format!(
                "{e}; handing out the current token, which expires {}",
                describe_expiry(info.expires_at, now)
            )),
            Err(e) => return Err(e.into()),
        },
    }
    leases::record_handout(dir, host, now);
    Ok(Some((entry.username, secret)))
}

/// Warnings go to stderr (docker shows them); stdout carries only the protocol answer.
fn warn(message: &str) {
    eprintln!("docker-credential-gitlab: warning: {message}");
}

fn describe_expiry(at: Option<jiff::Timestamp>, now: jiff::Timestamp) -> String {
    match at {
        None => "never".into(),
        Some(t) => format!("at {t} (in {})", friendly(t.duration_since(now))),
    }
}

fn friendly(d: jiff::SignedDuration) -> String {
    let mins = d.as_secs() / 60;
    if mins.abs() >= 48 * 60 {
        format!("{} days", mins / (24 * 60))
    } else if mins.abs() >= 120 {
        format!("{} h", mins / 60)
    } else {
        format!("{mins} min")
    }
}
