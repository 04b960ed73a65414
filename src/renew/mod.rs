//! Renewing a stored credential: the frame every method runs in.
//!
//! A renewal revokes the old secret, and GitLab's reuse detection revokes the *whole family*
//! if an already-rotated token is ever presented to the rotate endpoint again. So the frame:
//!
//! 1. **Single flight.** A lock file per token (shared by every registry key holding the
//!    same token) serialises renewals across processes; the others wait, as long as a
//!    renewal can take within the `get` deadline, and then read the new secret. A process
//!    that cannot get the lock in time fails; it never hands out the secret being rotated.
//! 2. **Confirm first.** `GET …/self` (never the rotate endpoint) says whether the token is
//!    still the live one. Revoked without a journal: it was rotated elsewhere (another
//!    machine, or a copy under another key): never call rotate, say so.
//! 3. **Journal.** Before calling GitLab the attempt is recorded. It is removed once the
//!    outcome is known and stored. An ambiguous outcome (5xx, timeout, dropped connection)
//!    keeps it; every later `get` resolves it with `…/self` before handing anything out.
//! 4. **A full deadline.** The rotate request is only sent with a whole request deadline
//!    left, so a slow GitLab can never turn into an answer we stop waiting for.
//! 5. **Store first, and never lost.** The new secret goes to the store (for every entry
//!    holding the token) the moment GitLab answers, under the state lock, then the
//!    metadata. If the store or the lock refuses, the token is kept in the data directory
//!    ([`kept`]) and handed out.
//!
//! The method (how a token renews itself) lives beside the frame: [`pat`] for personal,
//! project and group access tokens, [`oauth`] for OAuth access tokens.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use reqwest::Url;

use crate::gitlab::http::Http;
use crate::registry::RegistryHost;
use crate::secret::{ExposeSecret, Secret};
use crate::state::{Entry, GitLabInfo, StateFile};

pub mod kept;
pub mod oauth;
pub mod pat;

/// After an ambiguous rotate, a late answer may still be processed: for this long a
/// "still active" from `…/self` is trusted for handing out, but not for rotating again.
pub const SETTLE: SignedDuration = SignedDuration::from_secs(60);

/// [`SETTLE`]; test builds may shorten it (`DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS`).
fn settle() -> SignedDuration {
    #[cfg(feature = "fault-injection")]
    if let Some(secs) = std::env::var("DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return SignedDuration::from_secs(secs);
    }
    SETTLE
}

#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("{0}")]
    Cannot(String),
    #[error(
        "an earlier renewal of the token for {host} was interrupted after GitLab rotated it, and the new token was lost; \
         the stored token is revoked. Create a new token and run: docker-credential-gitlab login {host}"
    )]
    Lost { host: String },
    #[error(
        "the token for {host} was rotated or revoked elsewhere (another machine or another copy of it); \
         it was not presented to the rotate endpoint. Log in again with the current token: docker-credential-gitlab login {host}"
    )]
    RevokedElsewhere { host: String },
    #[error(
        "the OAuth refresh token for {host} is no longer valid (used or revoked); log in again: \
         docker-credential-gitlab login {host} --oauth"
    )]
    GrantRevoked { host: String },
    #[error(
        "a renewal of the token for {host} has an unknown outcome and GitLab cannot confirm the token now ({detail}); \
         try again, or run: docker-credential-gitlab doctor {host}"
    )]
    Unresolved { host: String, detail: String },
    #[error("renewing the token for {host} failed: {detail}")]
    Failed { host: String, detail: String },
    #[error(
        "another docker-credential-gitlab process is renewing the token for {host} and did not finish in time; try again"
    )]
    Busy { host: String },
    #[error(transparent)]
    Credentials(#[from] crate::credentials::Error),
}

impl RenewError {
    /// Whether the current secret may still be handed out (with a warning): only when the
    /// renewal cleanly did not happen.
    pub fn old_secret_still_good(&self) -> bool {
        matches!(self, RenewError::Failed { .. } | RenewError::Cannot(_))
    }
}

/// What a renewal produced.
#[derive(Debug)]
pub struct Renewed {
    pub entry: Entry,
    pub secret: Secret,
    /// False when another process had already renewed it (single flight).
    pub rotated_here: bool,
}

/// The longest validity one renewal can give this credential (a `min_validity` beyond it
/// cannot be kept): GitLab's longest access token, or one OAuth access token's life.
pub fn max_validity(info: &GitLabInfo) -> SignedDuration {
    match Method::of(info) {
        Method::Pat => pat::max_validity(),
        Method::OAuth => oauth::lifetime(info),
    }
}

/// What the caller promises with the secret it is about to hand out.
#[derive(Debug, Clone, Copy)]
pub struct Promise {
    pub min_validity: SignedDuration,
    pub early_renewal: SignedDuration,
    /// The current secret dies within `min_validity` anyway (no lease can stop it).
    pub hard: bool,
}

/// Renews the token for `host`, unless another process already replaced `seen`.
pub fn renew(
    state_file: &StateFile,
    host: &RegistryHost,
    seen: &Entry,
    promise: Promise,
    deadline: Instant,
) -> Result<Renewed, RenewError> {
    let dir = state_file.dir();
    let group = token_group(state_file, host, seen);
    let _lock = lock_token(state_file, &group, host, deadline)?;

    // Single flight: whoever held the lock before us may have renewed already.
    let Some((entry, secret, keys)) = crate::credentials::load_shared(state_file, host)? else {
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
    let info = renewable(host, &entry)?;
    let gitlab_url = gitlab_url(&info)?;
    let http = Http::new()
        .map_err(|e| failed(host, e))?
        .with_deadline(deadline);

    let method = Method::of(&info);

    // Confirm the token is still the live one; this also resolves an open journal.
    let journal = journal_path(dir, &group);
    let open = read_journal(&journal);
    let check = if open.is_some() || method.confirms_first() {
        method.check(&http, &gitlab_url, &secret)
    } else {
        Check::Active
    };
    match check {
        Check::Active => {
            if let Some(j) = &open {
                if crate::clock::now().duration_since(j.started_at) < settle() {
                    return Err(failed(
                        host,
                        "an earlier renewal's outcome is still settling; not renewing again yet",
                    ));
                }
                remove(&journal);
            }
        }
        Check::Revoked(_) if open.is_some() => {
            return Err(RenewError::Lost {
                host: host.to_string(),
            });
        }
        Check::Revoked(_) => {
            return Err(RenewError::RevokedElsewhere {
                host: host.to_string(),
            });
        }
        Check::Expired(reason) => return Err(failed(host, reason)),
        Check::Unknown(detail) if open.is_some() => {
            return Err(RenewError::Unresolved {
                host: host.to_string(),
                detail,
            });
        }
        Check::Unknown(detail) => {
            return Err(failed(
                host,
                format!("cannot confirm the token at GitLab ({detail})"),
            ));
        }
    }

    let plan = method.plan(&info, promise)?;
    // Only with a whole request deadline left: never a renewal we may stop waiting for.
    if http.remaining() < crate::gitlab::http::REQUEST_DEADLINE {
        return Err(failed(
            host,
            "not enough of the get deadline left to renew safely; the next run will",
        ));
    }

    write_journal(&journal, &info, &entry)?;
    fault_point("after-journal");
    // A hand-out that started while we decided (lock-free `get`s) is a live promise now.
    if !promise.hard && crate::leases::live_any(dir, &keys, crate::clock::now()) {
        remove(&journal);
        return Err(failed(
            host,
            "a push started using the token meanwhile; renewing later",
        ));
    }
    match method.renew(&http, &gitlab_url, &info, &secret, plan) {
        Outcome::Renewed {
            secret: token,
            info: new_info,
        } => {
            fault_point("after-rotate-response");
            let new_entry = commit(state_file, host, &group, &entry, &token, new_info, deadline);
            remove(&journal);
            Ok(Renewed {
                entry: new_entry,
                secret: token,
                rotated_here: true,
            })
        }
        Outcome::Refused(detail) => {
            remove(&journal);
            Err(failed(host, detail))
        }
        Outcome::NotSent(detail) => {
            remove(&journal);
            Err(failed(host, detail))
        }
        // OAuth: the refresh token is used up. Another process may have refreshed (and
        // stored the new pair) after we read it; otherwise only a new login helps.
        Outcome::InvalidGrant => {
            remove(&journal);
            match crate::credentials::load(state_file, host)? {
                Some((now_entry, now_secret)) if now_entry.stored_at != entry.stored_at => {
                    Ok(Renewed {
                        entry: now_entry,
                        secret: now_secret,
                        rotated_here: false,
                    })
                }
                _ => Err(RenewError::GrantRevoked {
                    host: host.to_string(),
                }),
            }
        }
        // The journal stays. If GitLab already renewed, say so now; else the old token is
        // still good for this hand-out, and later runs keep checking until it settles.
        Outcome::Unknown(e) => match method.check(&http, &gitlab_url, &secret) {
            Check::Revoked(_) => Err(RenewError::Lost {
                host: host.to_string(),
            }),
            Check::Active => Err(failed(host, e)),
            Check::Expired(detail) | Check::Unknown(detail) => Err(RenewError::Unresolved {
                host: host.to_string(),
                detail: format!("{e}; then: {detail}"),
            }),
        },
    }
}

/// What GitLab says about the stored secret right now.
#[derive(Debug)]
pub enum Check {
    /// Still the live token: no renewal happened (or it was never renewed).
    Active,
    /// Revoked: renewed (here, with the answer lost, or elsewhere) or revoked by a person.
    Revoked(String),
    /// Expired: it cannot renew itself any more.
    Expired(String),
    /// No answer that says either (403, 404, 5xx, network): never read as "revoked".
    Unknown(String),
}

/// What a renewal call did.
#[derive(Debug)]
pub enum Outcome {
    /// GitLab issued a new secret (the old one is revoked): store it as it is.
    Renewed { secret: Secret, info: GitLabInfo },
    /// A clean "no": nothing changed at GitLab.
    Refused(String),
    /// The request never left.
    NotSent(String),
    /// OAuth: the refresh token was already used or revoked.
    InvalidGrant,
    /// It may have been processed (5xx, timeout, dropped connection).
    Unknown(String),
}

/// How a credential renews itself. The frame above is the same for all; each method lives
/// in its own module.
#[derive(Debug, Clone, Copy)]
enum Method {
    /// Personal, project and group access tokens: self-rotation ([`pat`]).
    Pat,
    /// OAuth access tokens: the refresh token ([`oauth`]).
    OAuth,
}

/// What a method decided before any request (the PAT's new expiry).
#[derive(Debug, Clone, Copy)]
pub enum Plan {
    Rotate {
        expires_at: jiff::civil::Date,
        lifetime_days: i64,
    },
    Refresh,
}

impl Method {
    fn of(info: &GitLabInfo) -> Method {
        match info.kind {
            crate::state::TokenKind::OauthToken => Method::OAuth,
            _ => Method::Pat,
        }
    }

    /// Whether the token must be confirmed before every renewal (PATs: GitLab's reuse
    /// detection punishes a rotated token at the rotate endpoint), or only to resolve an
    /// open journal (OAuth: a used refresh token is merely refused).
    fn confirms_first(self) -> bool {
        matches!(self, Method::Pat)
    }

    fn check(self, http: &Http, gitlab: &Url, secret: &Secret) -> Check {
        match self {
            Method::Pat => pat::check(http, gitlab, secret),
            Method::OAuth => oauth::check(http, gitlab, secret),
        }
    }

    fn plan(self, info: &GitLabInfo, promise: Promise) -> Result<Plan, RenewError> {
        match self {
            Method::Pat => pat::plan(info, promise),
            Method::OAuth => oauth::plan(info, promise),
        }
    }

    fn renew(
        self,
        http: &Http,
        gitlab: &Url,
        info: &GitLabInfo,
        secret: &Secret,
        plan: Plan,
    ) -> Outcome {
        match self {
            Method::Pat => pat::renew(http, gitlab, info, secret, plan),
            Method::OAuth => oauth::renew(http, gitlab, info, secret),
        }
    }
}

/// Resolves an interrupted renewal of `host` before anything is handed out: waits for a
/// renewal in flight, then asks GitLab whether the stored token is still the live one.
/// `Ok(Some(renewed))` when another process finished a renewal meanwhile.
pub fn resolve_open_journal(
    state_file: &StateFile,
    host: &RegistryHost,
    seen: &Entry,
    deadline: Instant,
) -> Result<Option<Renewed>, RenewError> {
    let dir = state_file.dir();
    let group = token_group(state_file, host, seen);
    let _lock = lock_token(state_file, &group, host, deadline)?;
    let Some((entry, secret)) = crate::credentials::load(state_file, host)? else {
        return Err(RenewError::Cannot(format!(
            "the credentials for {host} were removed"
        )));
    };
    let journal = journal_path(dir, &group);
    let Some(open) = read_journal(&journal) else {
        // Finished by whoever held the lock.
        return Ok((entry.stored_at != seen.stored_at).then_some(Renewed {
            entry,
            secret,
            rotated_here: false,
        }));
    };
    let info = renewable(host, &entry)?;
    let http = Http::new()
        .map_err(|e| failed(host, e))?
        .with_deadline(deadline);
    match Method::of(&info).check(&http, &gitlab_url(&info)?, &secret) {
        Check::Active => {
            if crate::clock::now().duration_since(open.started_at) >= settle() {
                remove(&journal);
            }
            Ok(None)
        }
        Check::Revoked(_) => Err(RenewError::Lost {
            host: host.to_string(),
        }),
        Check::Expired(detail) | Check::Unknown(detail) => Err(RenewError::Unresolved {
            host: host.to_string(),
            detail,
        }),
    }
}

/// Stores the new token first (for every entry holding the old one), then the metadata.
/// If that fails, the token is kept in the data directory, and handed out all the same.
fn commit(
    state_file: &StateFile,
    host: &RegistryHost,
    group: &RegistryHost,
    old: &Entry,
    token: &Secret,
    info: GitLabInfo,
    deadline: Instant,
) -> Entry {
    // The lock wait may not push the hand-out past the get deadline.
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .min(crate::state::LOCK_DEADLINE);
    let stored = state_file
        .lock_with_deadline(wait)
        .map_err(crate::credentials::Error::from)
        .and_then(|guard| {
            crate::credentials::record_renewal(&guard, host, old, token, info.clone())
        });
    let handed_out = Entry {
        stored_at: crate::clock::now(),
        gitlab: Some(info.clone()),
        ..old.clone()
    };
    match stored {
        Ok(Some(entry)) => entry,
        // Logged out meanwhile: not brought back; this hand-out still gets the new token.
        Ok(None) => handed_out,
        Err(e) => {
            let holders = state_file
                .load()
                .map(|state| {
                    crate::credentials::sharing_token(state_file, host, old)
                        .into_iter()
                        .filter_map(|k| state.entries.get(&k).map(|e| (k, e.stored_at)))
                        .collect()
                })
                .unwrap_or_else(|_| [(host.as_str().to_owned(), old.stored_at)].into());
            let record = kept::Kept {
                username: old.username.clone(),
                token: crate::secret::secret_from(token.expose_secret().to_owned()),
                info,
                keys: holders,
            };
            let kept = kept::keep(state_file.dir(), group, &record);
            crate::sources::stored::warn(&format!(
                "the renewed token for {host} could not be stored ({e}); {}",
                match kept {
                    Ok(()) => "it is kept in the data directory until the store takes it",
                    Err(_) => "and could not be kept either: log in again after this push",
                }
            ));
            handed_out
        }
    }
}

/// The name a token's lock, journal and kept copy go by (see [`crate::credentials::group_of`]).
pub fn token_group(state_file: &StateFile, host: &RegistryHost, entry: &Entry) -> RegistryHost {
    crate::credentials::group_of(&crate::credentials::sharing_token(state_file, host, entry))
        .unwrap_or_else(|| host.clone())
}

fn renewable(host: &RegistryHost, entry: &Entry) -> Result<GitLabInfo, RenewError> {
    entry
        .gitlab
        .clone()
        .filter(|i| i.can_renew())
        .ok_or_else(|| RenewError::Cannot(format!("the token for {host} cannot renew itself")))
}

fn gitlab_url(info: &GitLabInfo) -> Result<Url, RenewError> {
    Url::parse(&info.url).map_err(|_| {
        RenewError::Cannot(format!("the recorded GitLab URL {:?} is invalid", info.url))
    })
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

/// Whether an interrupted renewal is recorded for `host` (one `stat`: cheap enough for
/// every `get`).
pub fn interrupted(dir: &Path, host: &RegistryHost) -> bool {
    journal_path(dir, host).exists()
}

struct Journal {
    started_at: Timestamp,
}

fn read_journal(path: &Path) -> Option<Journal> {
    let text = std::fs::read_to_string(path).ok()?;
    let started_at = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["started_at"].as_str()?.parse().ok())
        // Unreadable: as old as can be, so it is resolved rather than waited out.
        .unwrap_or(Timestamp::UNIX_EPOCH);
    Some(Journal { started_at })
}

fn write_journal(path: &Path, info: &GitLabInfo, entry: &Entry) -> Result<(), RenewError> {
    let record = serde_json::json!({
        "started_at": crate::clock::now().to_string(),
        "token_id": info.token_id,
        "stored_at": entry.stored_at.to_string(),
        "pid": std::process::id(),
    });
    crate::private_file::replace(path, record.to_string().as_bytes())
        .map_err(|e| RenewError::Cannot(format!("cannot write {}: {e}", path.display())))
}

fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// The renewal lock, held for the whole renewal.
struct TokenLock(File);

impl Drop for TokenLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// One lock per token: registry keys holding the same token (same GitLab, same id) share
/// the lock of their group, so they can never renew it twice.
fn lock_token(
    state_file: &StateFile,
    group: &RegistryHost,
    host: &RegistryHost,
    deadline: Instant,
) -> Result<TokenLock, RenewError> {
    let path = state_file
        .dir()
        .join("locks")
        .join(format!("{}.lock", group.file_name()));
    let io = |e: std::io::Error| RenewError::Cannot(format!("cannot lock {}: {e}", path.display()));
    crate::private_file::create_dir(path.parent().expect("lock has a parent")).map_err(io)?;
    let file = crate::private_file::open(&path, false).map_err(io)?;
    // Wait as long as a renewal can take, within the caller's deadline.
    let until = deadline
        .checked_sub(Duration::from_millis(200))
        .unwrap_or(deadline);
    match crate::state::lock_until(&file, until) {
        Ok(true) => Ok(TokenLock(file)),
        Ok(false) => Err(RenewError::Busy {
            host: host.to_string(),
        }),
        Err(e) => Err(io(e)),
    }
}

/// Test builds can kill the process at named steps of a renewal
/// (`DOCKER_CREDENTIAL_GITLAB_FAULT=after-journal`, …) to prove crash safety.
///
/// `pause:<step>` instead stops there: the process creates the file named by
/// `DOCKER_CREDENTIAL_GITLAB_FAULT_FILE` and waits (30 s at most) until the test removes it,
/// so a test can stop the keyring or take a lock at exactly that moment.
#[cfg(feature = "fault-injection")]
pub(crate) fn fault_point(name: &str) {
    let Ok(fault) = std::env::var("DOCKER_CREDENTIAL_GITLAB_FAULT") else {
        return;
    };
    if fault == name {
        std::process::abort();
    }
    if fault.strip_prefix("pause:") == Some(name)
        && let Some(marker) = std::env::var_os("DOCKER_CREDENTIAL_GITLAB_FAULT_FILE")
    {
        let _ = std::fs::write(&marker, name);
        let until = Instant::now() + Duration::from_secs(30);
        while std::path::Path::new(&marker).exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
pub(crate) fn fault_point(_name: &str) {}
