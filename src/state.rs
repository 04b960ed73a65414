//! The state file: non-secret metadata per stored registry.
//!
//! Secrets live only in the secret store; this file says which registries we hold, under
//! which username, in which store, and (for GitLab tokens) kind, scopes and expiry. It is
//! what makes `list` offline and `get` of an unknown host free of keychain round trips.
//!
//! Concurrency contract: readers take no lock and always see a complete file, because
//! writers replace it atomically (temp file in the same directory, fsync, rename). Writers
//! serialise on a sidecar lock file, `state.lock`, so read-modify-write cycles from parallel
//! `store`/`erase` processes never lose each other's changes. A [`WriteGuard`] is the only
//! way to save, so the lock cannot be forgotten.

use std::collections::BTreeMap;
use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::private_file;
use crate::store::Backend;

/// Bumped when a change would make older binaries misread the file.
pub const STATE_VERSION: u32 = 1;
/// How long a writer waits for another writer before giving up with a clear error.
pub const LOCK_DEADLINE: Duration = Duration::from_secs(10);
const FILE_NAME: &str = "state.json";
const LOCK_NAME: &str = "state.lock";

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    #[serde(default)]
    pub entries: BTreeMap<String, Entry>,
    /// Keys written by newer versions survive a round trip through this one.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What we know about one stored credential, keyed by canonical registry host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// The server string the client stored, returned by `list`.
    pub server_url: String,
    pub username: String,
    /// Which secret store holds the secret; `get` goes straight there.
    pub store: Backend,
    pub stored_at: jiff::Timestamp,
    /// What GitLab told `login` about the credential; absent after a plain `docker login`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab: Option<GitLabInfo>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Non-secret facts about a credential, learnt from GitLab when it was validated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GitLabInfo {
    /// The GitLab instance the token belongs to: the only place it is ever sent.
    pub url: String,
    pub kind: TokenKind,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When the token stops working (PATs: 00:00 UTC of their expiry date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
    /// For project/group access tokens: the resource whose `access_tokens/self/rotate`
    /// endpoint renews them (learnt from the bot user's name at login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Days from creation to expiry: a rotation asks for the same lifetime again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_days: Option<i64>,
    /// The user the token belongs to (a bot user for project/group tokens): a standby
    /// token must belong to the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<u64>,
    /// OAuth tokens: the application (client id) that refreshes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client_id: Option<String>,
    pub validated_at: jiff::Timestamp,
}

pub use crate::gitlab::token::{Resource, TokenKind};

impl GitLabInfo {
    /// What a login learnt before it asked GitLab anything: the instance and the kind of
    /// token, validated now; every other fact unknown.
    pub fn new(url: &str, kind: TokenKind) -> GitLabInfo {
        GitLabInfo {
            url: url.trim_end_matches('/').to_owned(),
            kind,
            scopes: Vec::new(),
            expires_at: None,
            token_id: None,
            token_name: None,
            resource: None,
            lifetime_days: None,
            user_id: None,
            oauth_client_id: None,
            validated_at: crate::clock::now(),
        }
    }

    /// Whether the helper can renew this credential itself.
    pub fn can_renew(&self) -> bool {
        match self.kind {
            TokenKind::OauthToken => self.oauth_client_id.is_some(),
            kind => crate::gitlab::token::can_renew(kind, &self.scopes),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    NoDataDir(#[from] crate::paths::NoDataDir),
    #[error("cannot access {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "state file {} is corrupt ({reason}); the next docker login or docker-credential-gitlab login sets it aside \
         and starts afresh (secrets stay in their store), or move it away yourself",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "state file {} was written by a newer docker-credential-gitlab (format {found}); upgrade this binary",
        path.display()
    )]
    TooNew { path: PathBuf, found: u32 },
    #[error(
        "another docker-credential-gitlab process has held {} for over {}s; if none is running, delete that file",
        path.display(), LOCK_DEADLINE.as_secs()
    )]
    LockTimeout { path: PathBuf },
}

/// The location of the state file and its lock.
#[derive(Debug, Clone)]
pub struct StateFile {
    dir: PathBuf,
}

impl StateFile {
    /// The state file in the user's data directory (see [`crate::paths`]).
    pub fn open_default() -> Result<StateFile, StateError> {
        Ok(StateFile::in_dir(crate::paths::data_dir()?))
    }

    pub fn in_dir(dir: impl Into<PathBuf>) -> StateFile {
        StateFile { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The directory holding the state file and its sidecars (locks, leases, journal).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the current state without locking. A missing file is an empty state.
    pub fn load(&self) -> Result<State, StateError> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(State {
                    version: STATE_VERSION,
                    ..State::default()
                });
            }
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if state.version > STATE_VERSION {
            return Err(StateError::TooNew {
                path,
                found: state.version,
            });
        }
        Ok(state)
    }

    /// Takes the cross-process write lock, waiting at most [`LOCK_DEADLINE`].
    pub fn lock(&self) -> Result<WriteGuard<'_>, StateError> {
        self.lock_with_deadline(LOCK_DEADLINE)
    }

    pub fn lock_with_deadline(&self, deadline: Duration) -> Result<WriteGuard<'_>, StateError> {
        private_file::create_dir(&self.dir).map_err(|source| StateError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.dir.join(LOCK_NAME);
        let file = private_file::open(&path, false).map_err(|source| StateError::Io {
            path: path.clone(),
            source,
        })?;
        match lock_until(&file, Instant::now() + deadline) {
            Ok(true) => Ok(WriteGuard { file, owner: self }),
            Ok(false) => Err(StateError::LockTimeout { path }),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }
}

/// Takes an exclusive lock on `file`, waiting until `until` at most: std's lock has no
/// timeout, so poll `try_lock` with a short backoff. `Ok(false)` means the wait ran out.
pub fn lock_until(file: &File, until: Instant) -> io::Result<bool> {
    let mut pause = Duration::from_millis(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(TryLockError::WouldBlock) if Instant::now() < until => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Proof that this process holds the write lock. Dropping it releases the lock.
#[derive(Debug)]
pub struct WriteGuard<'a> {
    file: File,
    owner: &'a StateFile,
}

impl WriteGuard<'_> {
    /// Reads the state under the lock (the only read a read-modify-write may use).
    pub fn load(&self) -> Result<State, StateError> {
        self.owner.load()
    }

    /// Like [`load`](Self::load), but a corrupt file is renamed aside (never deleted:
    /// `state.json.corrupt-<unix time>`) and an empty state returned with that path, so a
    /// new login can start afresh without losing anything.
    pub fn load_or_set_aside(&self) -> Result<(State, Option<PathBuf>), StateError> {
        match self.owner.load() {
            Err(StateError::Corrupt { path, .. }) => {
                let aside = path.with_file_name(format!(
                    "{FILE_NAME}.corrupt-{}",
                    jiff::Timestamp::now().as_second()
                ));
                fs::rename(&path, &aside).map_err(|source| StateError::Io {
                    path: path.clone(),
                    source,
                })?;
                Ok((
                    State {
                        version: STATE_VERSION,
                        ..State::default()
                    },
                    Some(aside),
                ))
            }
            other => other.map(|s| (s, None)),
        }
    }

    /// Atomically replaces the state file (see [`crate::private_file::replace`]): readers
    /// see either the old or the new file, never a torn one.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let path = self.owner.path();
        let mut json = serde_json::to_vec_pretty(&StateOut {
            version: STATE_VERSION,
            entries: &state.entries,
            extra: &state.extra,
        })
        .expect("state serialises");
        json.push(b'\n');
        private_file::replace(&path, &json).map_err(|source| StateError::Io { path, source })
    }

    /// The directory this lock guards (state file, `file` secret store).
    pub fn dir(&self) -> &Path {
        self.owner.dir()
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[derive(Serialize)]
struct StateOut<'a> {
    version: u32,
    entries: &'a BTreeMap<String, Entry>,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user: &str) -> Entry {
        Entry {
            server_url: "registry.example.com".into(),
            username: user.into(),
            store: Backend::SecretService,
            stored_at: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            gitlab: None,
            extra: Map::new(),
        }
    }

    #[test]
    fn missing_file_is_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::in_dir(dir.path().join("nope")).load().unwrap();
        assert!(state.entries.is_empty());
    }

    #[test]
    fn round_trip_keeps_unknown_keys_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let sf = StateFile::in_dir(dir.path().join("data"));
        let guard = sf.lock().unwrap();
        let mut state = guard.load().unwrap();
        state
            .entries
            .insert("registry.example.com".into(), entry("alice"));
        state.extra.insert("future".into(), Value::Bool(true));
        guard.save(&state).unwrap();
        drop(guard);

        let text = fs::read_to_string(sf.path()).unwrap();
        assert!(text.contains("\"future\": true"), "{text}");
        let back = sf.load().unwrap();
        assert_eq!(back.entries["registry.example.com"], entry("alice"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&sf.path()), 0o600);
            assert_eq!(mode(&dir.path().join("data")), 0o700);
        }
    }

    #[test]
    fn corrupt_and_too_new_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let sf = StateFile::in_dir(dir.path());
        fs::write(sf.path(), "{not json").unwrap();
        assert!(matches!(sf.load(), Err(StateError::Corrupt { .. })));
        // A writer sets it aside, byte for byte, and starts afresh.
        let guard = sf.lock().unwrap();
        let (state, aside) = guard.load_or_set_aside().unwrap();
        assert!(state.entries.is_empty());
        assert_eq!(fs::read_to_string(aside.unwrap()).unwrap(), "{not json");
        assert!(!sf.path().exists());
        drop(guard);
        fs::write(sf.path(), r#"{"version": 99, "entries": {}}"#).unwrap();
        let err = sf.load().unwrap_err();
        assert!(matches!(err, StateError::TooNew { found: 99, .. }));
        assert!(err.to_string().contains("upgrade"));
    }

    #[test]
    fn second_writer_waits_then_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let sf = StateFile::in_dir(dir.path());
        let _held = sf.lock().unwrap();
        // A second handle in the same process still conflicts (flock is per open file).
        let start = Instant::now();
        let err = sf
            .lock_with_deadline(Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(err, StateError::LockTimeout { .. }));
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}
