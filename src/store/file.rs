//! The `file` backend, for machines without a keychain (CI jobs, containers, build servers).
//!
//! Every secret lives in one JSON file, `secrets.json`, next to the state file:
//!
//! ```json
//! {"version": 1, "secrets": {"registry.gitlab.com": "glpat-…"}}
//! ```
//!
//! That is as plain as Docker's own `auths` in `config.json`: anyone who can read the file
//! (the user, root, a backup) has the tokens. What it guarantees: the file is 0600 in a 0700
//! directory from the first byte (never world-readable, not even for a moment), it is
//! replaced atomically (readers take no lock and never see a torn file), and every change is
//! a read-modify-write under the state file's write lock, so parallel `store`s never lose
//! each other's secrets. It is chosen explicitly (`DOCKER_CREDENTIAL_GITLAB_STORE=file`), or
//! by `auto` only inside a CI job with no keychain, whose home dies with the job.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use super::{Backend, StoreError};
use crate::datadir::DataDir;
use crate::datadir::lock::WriteGuard;
use crate::private_file;
use crate::registry::RegistryHost;
use crate::secret::{ExposeSecret, Secret};

const VERSION: u32 = 1;

/// The secrets file in one data directory.
#[derive(Debug, Clone)]
pub(crate) struct FileStore {
    path: PathBuf,
}

#[derive(Default, Serialize, Deserialize)]
struct Contents {
    version: u32,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    /// Keys written by newer versions survive a round trip.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl Drop for Contents {
    fn drop(&mut self) {
        for secret in self.secrets.values_mut() {
            secret.zeroize();
        }
    }
}

impl FileStore {
    pub fn in_dir(dir: &DataDir) -> FileStore {
        FileStore {
            path: dir.secrets_file(),
        }
    }

    #[cfg(test)]
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn get(&self, host: &RegistryHost) -> Result<Option<Secret>, StoreError> {
        let mut contents = self.read()?;
        Ok(contents
            .secrets
            .remove(host.as_str())
            .map(|mut s| Secret::from(std::mem::take(&mut s))))
    }

    /// Sets the secret for `host`. The guard proves the state write lock is held, which
    /// serialises every read-modify-write of this file.
    pub fn set(
        &self,
        guard: &WriteGuard<'_>,
        host: &RegistryHost,
        secret: &Secret,
    ) -> Result<(), StoreError> {
        self.check_guard(guard)?;
        let mut contents = self.read()?;
        contents
            .secrets
            .insert(host.as_str().to_owned(), secret.expose_secret().to_owned());
        self.write(&contents)
    }

    /// Deletes the secret for `host`; an absent one is fine.
    pub fn delete(&self, guard: &WriteGuard<'_>, host: &RegistryHost) -> Result<(), StoreError> {
        self.check_guard(guard)?;
        let mut contents = self.read()?;
        if contents.secrets.remove(host.as_str()).is_none() {
            return Ok(());
        }
        self.write(&contents)
    }

    /// Every host that has a secret here (for `status`).
    pub fn hosts(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.read()?.secrets.keys().cloned().collect())
    }

    fn check_guard(&self, guard: &WriteGuard<'_>) -> Result<(), StoreError> {
        if self.path == guard.dir().secrets_file() {
            Ok(())
        } else {
            Err(self.failed(format!(
                "internal error: {} written under the lock of {}",
                self.path.display(),
                guard.dir().root().display()
            )))
        }
    }

    fn read(&self) -> Result<Contents, StoreError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut empty = Contents::default();
                empty.version = VERSION;
                return Ok(empty);
            }
            Err(e) => return Err(self.io_failed(e)),
        };
        // serde's messages can quote the offending value (a secret): report the position only.
        let contents: Contents = serde_json::from_slice(&bytes).map_err(|e| {
            self.failed(format!(
                "{} is not a valid secrets file (line {}, column {}); move it aside and log in again",
                self.path.display(),
                e.line(),
                e.column()
            ))
        })?;
        if contents.version > VERSION {
            return Err(self.failed(format!(
                "{} was written by a newer docker-credential-gitlab (format {}); upgrade this binary",
                self.path.display(),
                contents.version
            )));
        }
        Ok(contents)
    }

    fn write(&self, contents: &Contents) -> Result<(), StoreError> {
        let mut json = Zeroizing::new(serde_json::to_vec(contents).expect("secrets serialise"));
        json.push(b'\n');
        private_file::replace(&self.path, &json).map_err(|e| self.io_failed(e))
    }

    fn io_failed(&self, e: io::Error) -> StoreError {
        self.failed(format!("cannot access {}: {e}", self.path.display()))
    }

    fn failed(&self, detail: String) -> StoreError {
        StoreError::Failed {
            backend: Backend::File,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> RegistryHost {
        RegistryHost::parse(s).unwrap()
    }

    #[test]
    fn round_trip_and_exact_format() {
        let dir = tempfile::tempdir().unwrap();
        let sf = DataDir::at(dir.path().join("data"));
        let store = FileStore::in_dir(&sf);
        assert!(store.get(&host("a.example")).unwrap().is_none());
        let guard = sf.lock().unwrap();
        store
            .set(&guard, &host("a.example"), &Secret::from("one"))
            .unwrap();
        store
            .set(&guard, &host("b.example:5050"), &Secret::from("two"))
            .unwrap();
        store
            .set(&guard, &host("a.example"), &Secret::from("uno"))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(store.path()).unwrap(),
            "{\"version\":1,\"secrets\":{\"a.example\":\"uno\",\"b.example:5050\":\"two\"}}\n"
        );
        let got = store.get(&host("a.example")).unwrap().unwrap();
        assert_eq!(got.expose_secret(), "uno");
        store.delete(&guard, &host("a.example")).unwrap();
        store.delete(&guard, &host("a.example")).unwrap();
        assert!(store.get(&host("a.example")).unwrap().is_none());
        assert_eq!(store.hosts().unwrap(), ["b.example:5050"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(store.path()), 0o600);
            assert_eq!(mode(sf.root()), 0o700);
        }
    }

    #[test]
    fn corrupt_file_is_reported_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::in_dir(&DataDir::at(dir.path()));
        std::fs::write(
            store.path(),
            r#"{"version":1,"secrets":{"a.example":["glpat-leak"]}}"#,
        )
        .unwrap();
        let err = store.get(&host("a.example")).unwrap_err().to_string();
        assert!(err.contains("not a valid secrets file"), "{err}");
        assert!(!err.contains("glpat-leak"), "{err}");
        std::fs::write(store.path(), r#"{"version":7,"secrets":{}}"#).unwrap();
        let err = store.get(&host("a.example")).unwrap_err().to_string();
        assert!(err.contains("upgrade"), "{err}");
    }

    #[test]
    fn writes_need_the_lock_of_this_directory() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let other = DataDir::at(b.path());
        let guard = other.lock().unwrap();
        let err = FileStore::in_dir(&DataDir::at(a.path()))
            .set(&guard, &host("a.example"), &Secret::from("x"))
            .unwrap_err();
        assert!(err.to_string().contains("internal error"), "{err}");
    }
}
