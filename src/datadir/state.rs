//! The state file: non-secret metadata per stored registry.
//!
//! Secrets live in the secret store; this file says which registries we hold, under
//! which username, in which store, and (for GitLab tokens) kind, scopes and expiry. It is
//! what makes `list` offline and `get` of an unknown host free of keychain round trips.
//!
//! Concurrency contract: readers take no lock and always see a complete file, because
//! writers replace it atomically (temp file in the same directory, fsync, rename). Writers
//! serialise on the state write lock ([`super::lock`]), so read-modify-write cycles from
//! parallel `store`/`erase` processes never lose each other's changes; a [`WriteGuard`] is
//! the only way to save.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::DataDir;
use super::error::StateError;
use super::lock::WriteGuard;
use crate::model::GitLabInfo;
use crate::model::backend::Backend;
use crate::private_file;

/// Bumped when a change would make older binaries misread the file.
pub(crate) const STATE_VERSION: u32 = 1;

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

impl DataDir {
    /// Reads the current state without locking. A missing file is an empty state.
    pub fn load(&self) -> Result<State, StateError> {
        let path = self.state_file();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::empty()),
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
}

impl State {
    fn empty() -> State {
        State {
            version: STATE_VERSION,
            ..State::default()
        }
    }
}

impl WriteGuard<'_> {
    /// Reads the state under the lock (the only read a read-modify-write may use).
    pub fn load(&self) -> Result<State, StateError> {
        self.dir().load()
    }

    /// Like [`load`](Self::load), but a corrupt file is renamed aside (never deleted:
    /// `state.json.corrupt-<unix time>`) and an empty state returned with that path, so a
    /// new login can start afresh without losing anything.
    pub fn load_or_set_aside(&self) -> Result<(State, Option<PathBuf>), StateError> {
        match self.dir().load() {
            Err(StateError::Corrupt { path, .. }) => {
                let aside = path.with_extension(format!(
                    "json.corrupt-{}",
                    jiff::Timestamp::now().as_second()
                ));
                fs::rename(&path, &aside).map_err(|source| StateError::Io {
                    path: path.clone(),
                    source,
                })?;
                Ok((State::empty(), Some(aside)))
            }
            other => other.map(|s| (s, None)),
        }
    }

    /// Atomically replaces the state file (see [`crate::private_file::replace`]): readers
    /// see either the old or the new file, never a torn one.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let path = self.dir().state_file();
        let mut json = serde_json::to_vec_pretty(&StateOut {
            version: STATE_VERSION,
            entries: &state.entries,
            extra: &state.extra,
        })
        .expect("state serialises");
        json.push(b'\n');
        private_file::replace(&path, &json).map_err(|source| StateError::Io { path, source })
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
        let state = DataDir::at(dir.path().join("nope")).load().unwrap();
        assert!(state.entries.is_empty());
    }

    #[test]
    fn round_trip_keeps_unknown_keys_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let sf = DataDir::at(dir.path().join("data"));
        let guard = sf.lock().unwrap();
        let mut state = guard.load().unwrap();
        state
            .entries
            .insert("registry.example.com".into(), entry("alice"));
        state.extra.insert("future".into(), Value::Bool(true));
        guard.save(&state).unwrap();
        drop(guard);

        let text = fs::read_to_string(sf.state_file()).unwrap();
        assert!(text.contains("\"future\": true"), "{text}");
        let back = sf.load().unwrap();
        assert_eq!(back.entries["registry.example.com"], entry("alice"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&sf.state_file()), 0o600);
            assert_eq!(mode(&dir.path().join("data")), 0o700);
        }
    }

    #[test]
    fn corrupt_and_too_new_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let sf = DataDir::at(dir.path());
        fs::write(sf.state_file(), "{not json").unwrap();
        assert!(matches!(sf.load(), Err(StateError::Corrupt { .. })));
        // A writer sets it aside, byte for byte, and starts afresh.
        let guard = sf.lock().unwrap();
        let (state, aside) = guard.load_or_set_aside().unwrap();
        assert!(state.entries.is_empty());
        assert_eq!(fs::read_to_string(aside.unwrap()).unwrap(), "{not json");
        assert!(!sf.state_file().exists());
        drop(guard);
        fs::write(sf.state_file(), r#"{"version": 99, "entries": {}}"#).unwrap();
        let err = sf.load().unwrap_err();
        assert!(matches!(err, StateError::TooNew { found: 99, .. }));
        assert!(err.to_string().contains("upgrade"));
    }
}
