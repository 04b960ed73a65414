//! Renewing a stored credential: single flight, crash safety, faults.
//!
//! Only personal/project/group access tokens with `api` or `self_rotate` renew themselves
//! (`POST /personal_access_tokens/self/rotate`). Rotation revokes the old token, and GitLab's
//! reuse detection revokes the *whole family* if an already-rotated token is presented to
//! the rotate endpoint again. So:
//!
//! 1. **Single flight.** A per-registry lock file serialises renewals across processes; the
//!    others wait (bounded) and then pick up the new secret instead of rotating again.
//! 2. **Journal.** Before calling GitLab, a journal file records the attempt. It is removed
//!    once the outcome is known and stored. If it is found later, the rotation was
//!    interrupted: we ask GitLab (`GET …/self`, which is not the rotate endpoint) whether
//!    the stored token is still active. Active → the rotation never happened, carry on.
//!    Revoked → GitLab rotated and the new token was lost: report the recovery command.
//!    The old token is never presented to the rotate endpoint again.
//! 3. **Store first.** The new secret goes to the keychain immediately after GitLab answers,
//!    then the metadata.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Url;

use crate::gitlab::{self, PatSelf, Rotation, http::Http};
use crate::registry::RegistryHost;
use crate::secret::Secret;
use crate::state::{Entry, StateFile};
use crate::store::SecretStore;

/// How long a process waits for another one's renewal before giving up.
pub const WAIT_DEADLINE: Duration = Duration::from_secs(8);
/// Rotated tokens never live longer than GitLab allows by default.
const MAX_LIFETIME_DAYS: i64 = 365;
/// Used when the original lifetime is unknown.
const DEFAULT_LIFETIME_DAYS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("{0}")]
    Cannot(String),
    #[error(
        "an earlier renewal of the token for {host} was interrupted after GitLab rotated it, and the new token was lost; \
         the stored token is revoked. Create a new token and run: docker-credential-gitlab login {host}"
    )]
    Lost { host: String },
    #[error("renewing the token for {host} failed: {detail}")]
    Failed { host: String, detail: String },
    #[error(
        "another docker-credential-gitlab process is renewing the token for {host} and did not finish within {}s",
        WAIT_DEADLINE.as_secs()
    )]
    Busy { host: String },
    #[error(transparent)]
    Credentials(#[from] crate::credentials::Error),
}

/// What a renewal produced.
#[derive(Debug)]
pub struct Renewed {
    pub entry: Entry,
    pub secret: Secret,
    /// False when another process had already renewed it (single flight).
    pub rotated_here: bool,
}

/// Renews the token for `host`, unless another process already replaced `seen`.
pub fn renew(
    state_file: &StateFile,
    host: &RegistryHost,
    seen: &Entry,
    deadline: Instant,
) -> Result<Renewed, RenewError> {
    let dir = state_file.dir();
    let _lock = lock_registry(dir, host, deadline)?;

    // Single flight: whoever held the lock before us may have renewed already.
    let Some((entry, secret)) = crate::credentials::load(state_file, host)? else {
        return Err(RenewError::Cannot(format!(
            "the credentials for {host} were removed"
        )));
    };
    if entry.stored_at != seen.stored_at {
        return Ok(Renewed {
            entry,
            secret,
            rotated_here: false,
        });
    }
    let info = entry
        .gitlab
        .clone()
        .filter(|i| i.can_renew())
        .ok_or_else(|| RenewError::Cannot(format!("the token for {host} cannot renew itself")))?;
    let gitlab_url = Url::parse(&info.url).map_err(|_| {
        RenewError::Cannot(format!("the recorded GitLab URL {:?} is invalid", info.url))
    })?;
    let http = Http::new()
        .map_err(|e| failed(host, e))?
        .with_deadline(deadline);

    let journal = journal_path(dir, host);
    if journal.exists() {
        // An interrupted rotation: find out whether it happened, without the rotate endpoint.
        match gitlab::personal_access_token_self(&http, &gitlab_url, &secret) {
            Ok(PatSelf::Pat(pat)) if pat.active => remove(&journal),
            Ok(_) => {
                return Err(RenewError::Lost {
                    host: host.to_string(),
                });
            }
            Err(e) => return Err(failed(host, e)),
        }
    }

    let lifetime = info
        .lifetime_days
        .unwrap_or(DEFAULT_LIFETIME_DAYS)
        .clamp(2, MAX_LIFETIME_DAYS);
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let expires_at = today
        .checked_add(jiff::Span::new().days(lifetime))
        .map_err(|e| failed(host, e))?;

    write_journal(&journal, &info, &entry)?;
    fault_point("after-journal");
    let mut outcome = gitlab::rotate_self(&http, &gitlab_url, &secret, info.resource, expires_at);
    // 429 means "not rotated": waiting and asking once more is safe, if the wait fits.
    if let Rotation::NotRotated {
        status: 429,
        retry_after: Some(secs),
        ..
    } = outcome
        && Duration::from_secs(secs) + Duration::from_secs(1) < http.remaining()
    {
        std::thread::sleep(Duration::from_secs(secs));
        outcome = gitlab::rotate_self(&http, &gitlab_url, &secret, info.resource, expires_at);
    }
    match outcome {
        Rotation::Rotated { token, info: pat } => {
            fault_point("after-rotate-response");
            let mut new_info = info.clone();
            new_info.expires_at = pat.expires_instant();
            new_info.scopes = pat.scopes.clone();
            new_info.token_id = Some(pat.id);
            new_info.validated_at = jiff::Timestamp::now();
            // The new secret first: from here on the old one is revoked at GitLab.
            let guard = state_file.lock().map_err(crate::credentials::Error::from)?;
            SecretStore::open(entry.store, dir)
                .and_then(|store| store.set(&guard, host, &token))
                .map_err(crate::credentials::Error::from)?;
            fault_point("after-store-secret");
            let new_entry =
                crate::credentials::update_after_renewal(&guard, host, entry.store, new_info)?;
            drop(guard);
            fault_point("after-state");
            remove(&journal);
            Ok(Renewed {
                entry: new_entry,
                secret: token,
                rotated_here: true,
            })
        }
        Rotation::NotRotated {
            status,
            message,
            retry_after,
        } => {
            remove(&journal);
            let mut detail = format!("GitLab answered {status}: {message}");
            if let Some(s) = retry_after {
                detail.push_str(&format!(" (retry after {s}s)"));
            }
            if status == 403 {
                detail.push_str("; the token needs the api or self_rotate scope to renew itself");
            }
            Err(RenewError::Failed {
                host: host.to_string(),
                detail,
            })
        }
        Rotation::NotSent(e) => {
            remove(&journal);
            Err(failed(host, e))
        }
        // The journal stays: the next run finds out what happened.
        Rotation::Unknown(e) => Err(failed(host, e)),
    }
}

fn failed(host: &RegistryHost, e: impl std::fmt::Display) -> RenewError {
    RenewError::Failed {
        host: host.to_string(),
        detail: e.to_string(),
    }
}

fn journal_path(dir: &Path, host: &RegistryHost) -> PathBuf {
    dir.join("journal")
        .join(format!("{}.json", host.file_name()))
}

/// Whether an interrupted renewal is recorded for `host` (for `status`/`doctor`).
pub fn interrupted(dir: &Path, host: &RegistryHost) -> bool {
    journal_path(dir, host).exists()
}

fn write_journal(
    path: &Path,
    info: &crate::state::GitLabInfo,
    entry: &Entry,
) -> Result<(), RenewError> {
    let io =
        |e: std::io::Error| RenewError::Cannot(format!("cannot write {}: {e}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let record = serde_json::json!({
        "started_at": jiff::Timestamp::now().to_string(),
        "token_id": info.token_id,
        "stored_at": entry.stored_at.to_string(),
        "pid": std::process::id(),
    });
    let mut tmp = tempfile::NamedTempFile::new_in(path.parent().expect("journal has a parent"))
        .map_err(io)?;
    std::io::Write::write_all(&mut tmp, record.to_string().as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// The per-registry renewal lock, held for the whole renewal.
struct RegistryLock(File);

impl Drop for RegistryLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn lock_registry(
    dir: &Path,
    host: &RegistryHost,
    deadline: Instant,
) -> Result<RegistryLock, RenewError> {
    let path = dir.join("locks").join(format!("{}.lock", host.file_name()));
    let io = |e: std::io::Error| RenewError::Cannot(format!("cannot lock {}: {e}", path.display()));
    std::fs::create_dir_all(path.parent().expect("lock has a parent")).map_err(io)?;
    let file = crate::private_file::open(&path, false).map_err(io)?;
    let until = deadline.min(Instant::now() + WAIT_DEADLINE);
    match crate::state::lock_until(&file, until) {
        Ok(true) => Ok(RegistryLock(file)),
        Ok(false) => Err(RenewError::Busy {
            host: host.to_string(),
        }),
        Err(e) => Err(io(e)),
    }
}

/// Test builds can kill the process at named steps of a renewal
/// (`DOCKER_CREDENTIAL_GITLAB_FAULT=after-journal`, …) to prove crash safety.
#[cfg(feature = "fault-injection")]
fn fault_point(name: &str) {
    if std::env::var("DOCKER_CREDENTIAL_GITLAB_FAULT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
}

#[cfg(not(feature = "fault-injection"))]
fn fault_point(_name: &str) {}
