//! The protocol verbs docker and other clients call: `store`, `get`, `erase`, `list`,
//! `version`.
//!
//! The steady `get` path is: read stdin, read the state file, one keychain call, print.
//! No lock, no network, no async runtime. An unknown registry costs no keychain call at all,
//! because the state file already says we hold nothing for it.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::credentials::{self, NewCredential};
use crate::leases;
use crate::policy::{self, Decision};
use crate::protocol::{self, InputError, NOT_FOUND, Verb};
use crate::registry::{InvalidHost, RegistryHost};
use crate::renew::{self, RenewError};
use crate::settings::{Settings, SettingsError};
use crate::state::{StateError, StateFile};
use crate::store::{StoreChoice, StoreError};

/// A verb's failure. `Display` is the exact line printed on stdout before exit 1.
#[derive(Debug, thiserror::Error)]
pub enum VerbError {
    #[error("{NOT_FOUND}")]
    NotFound,
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Host(#[from] InvalidHost),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Store(#[from] StoreError),
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
    #[error("could not write the answer: {0}")]
    Output(std::io::ErrorKind),
}

/// Runs one verb with the process's stdin/stdout. Nothing is printed on failure: the caller
/// prints the error line.
pub fn run(verb: Verb, stdin: impl Read, mut stdout: impl Write) -> Result<(), VerbError> {
    let answer = match verb {
        Verb::Version => Some(zeroize::Zeroizing::new(version_line())),
        Verb::List => Some(zeroize::Zeroizing::new(list()?)),
        Verb::Get => Some(get(&protocol::read_input(stdin)?)?),
        Verb::Store => {
            store(&protocol::read_input(stdin)?)?;
            None
        }
        Verb::Erase => {
            erase(&protocol::read_input(stdin)?)?;
            None
        }
    };
    if let Some(text) = answer {
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| VerbError::Output(e.kind()))?;
    }
    Ok(())
}

/// `docker-credential-gitlab (<package>) v<version>`, as docker-credential-helpers prints it.
pub fn version_line() -> String {
    format!(
        "{} ({}) v{}\n",
        crate::BINARY_NAME,
        crate::PACKAGE,
        crate::VERSION
    )
}

/// A whole `get`, renewal included, never takes longer than this.
pub const GET_DEADLINE: Duration = Duration::from_secs(20);

fn get(input: &str) -> Result<zeroize::Zeroizing<String>, VerbError> {
    let started = Instant::now();
    let server = protocol::parse_server(input)?;
    let host = RegistryHost::parse(server)?;
    let state_file = StateFile::open_default()?;
    let (mut entry, mut secret) =
        credentials::load(&state_file, &host)?.ok_or(VerbError::NotFound)?;
    // Credentials from `login` carry an expiry: apply the refresh policy (no network, no
    // lock unless a renewal is due). Plain `docker login` entries are handed out as they are.
    if let Some(info) = entry.gitlab.clone() {
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
            last_handout: leases::last_handout(dir, &host),
        };
        match policy::decide(&facts) {
            Decision::HandOut => {}
            Decision::HandOutExpiring => {
                if info.expires_at.is_some_and(|t| t <= now) {
                    return Err(VerbError::Expired {
                        host: host.to_string(),
                        at: info.expires_at.map(|t| t.to_string()).unwrap_or_default(),
                    });
                }
                if leases::first_warning_today(dir, &host, now) {
                    warn(&format!(
                        "the token for {host} expires {}, sooner than the {} a push may need, and it cannot renew itself; \
                         create a token with the self_rotate scope and run `docker-credential-gitlab login {host}`",
                        describe_expiry(info.expires_at, now),
                        friendly(facts.min_validity),
                    ));
                }
            }
            Decision::Renew { .. } => {
                match renew::renew(&state_file, &host, &entry, started + GET_DEADLINE) {
                    Ok(renewed) => {
                        entry = renewed.entry;
                        secret = renewed.secret;
                    }
                    // Nothing that worked before is lost: a still-valid token is served
                    // (unless GitLab already revoked it in a lost rotation).
                    Err(e @ RenewError::Lost { .. }) => return Err(VerbError::Renew(e)),
                    Err(e) if info.expires_at.is_none_or(|t| t > now) => warn(&format!(
                        "{e}; handing out the current token, which expires {}",
                        describe_expiry(info.expires_at, now)
                    )),
                    Err(e) => return Err(VerbError::Renew(e)),
                }
            }
        }
        leases::record_handout(dir, &host, now);
    }
    Ok(protocol::render_get(server, &entry.username, &secret))
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

fn store(input: &str) -> Result<(), VerbError> {
    let creds = protocol::parse_credentials(input)?;
    let host = RegistryHost::parse(&creds.server_url)?;
    let choice = StoreChoice::from_env()?;
    credentials::save(
        &StateFile::open_default()?,
        choice,
        NewCredential {
            host: &host,
            server_url: &creds.server_url,
            username: &creds.username,
            secret: &creds.secret,
            gitlab: None,
        },
    )?;
    Ok(())
}

fn erase(input: &str) -> Result<(), VerbError> {
    let host = RegistryHost::parse(protocol::parse_server(input)?)?;
    credentials::forget(&StateFile::open_default()?, &host)?;
    Ok(())
}

fn list() -> Result<String, VerbError> {
    let state = StateFile::open_default()?.load()?;
    Ok(protocol::render_list(
        state
            .entries
            .values()
            .map(|e| (e.server_url.as_str(), e.username.as_str())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line_format() {
        assert_eq!(
            version_line(),
            format!(
                "docker-credential-gitlab (gitlab.com/docker-credential-gitlab/docker-credential-gitlab) v{}\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn not_found_line_is_the_sentinel() {
        assert_eq!(VerbError::NotFound.to_string(), NOT_FOUND);
    }
}
