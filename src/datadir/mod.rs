//! The data directory: every file the helper keeps on this machine, named here and nowhere
//! else.
//!
//! It is `$DOCKER_CREDENTIAL_GITLAB_DATA_DIR` when set (tests, CI images, unusual homes),
//! else the platform data directory (`~/.local/share/docker-credential-gitlab` on Linux):
//!
//! ```text
//! state.json, state.lock   what is stored for each registry, and its write lock (state)
//! secrets.json             the `file` secret store (only when that store is chosen)
//! locks/<token>.lock       one renewal at a time per token (lock)
//! journal/<token>.json     a renewal in flight (journal)
//! kept/<token>.json        a minted token the store refused, until it takes it (kept)
//! leases/<key>, cuts/<key> hand-outs still inside their promise, renewals that cut some (leases)
//! warned/<key>.<topic>     once-a-day warning stamps (leases)
//! published/<key>          a fleet: the record this host's published lease is for
//! instance-id              a fleet: tells this data directory's claims from others'
//! vault-token-<hash>.json  a fleet: when the Vault token is next due for a lookup
//! ```
//!
//! Secrets are in two of these only: `secrets.json`, and a kept token for the moment the
//! store refuses it. Every file is 0600 in 0700 directories ([`crate::private_file`]).
//! `<token>` is a token's group (the first registry key holding it), `<key>` a registry key.

use std::path::{Path, PathBuf};

use crate::env::{self, Env};
use crate::registry::RegistryHost;

pub(crate) mod error;
pub(crate) mod journal;
pub(crate) mod kept;
pub(crate) mod leases;
pub(crate) mod lock;
pub(crate) mod state;

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot find a home directory for the state file: set HOME, or set {} to a private directory",
    env::DATA_DIR
)]
pub(crate) struct NoDataDir;

/// How long a writer waits for another writer before giving up with a clear error.
pub(crate) const LOCK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// One data directory.
#[derive(Debug, Clone)]
pub(crate) struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory `env` names, else the platform's.
    pub fn locate(env: &Env) -> Result<DataDir, NoDataDir> {
        if let Some(dir) = env.path(env::DATA_DIR) {
            return Ok(DataDir::at(dir));
        }
        directories::ProjectDirs::from("", "", crate::BINARY_NAME)
            .map(|p| DataDir::at(p.data_dir()))
            .ok_or(NoDataDir)
    }

    pub fn at(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }

    fn state_lock(&self) -> PathBuf {
        self.root.join("state.lock")
    }

    /// The `file` secret store.
    pub fn secrets_file(&self) -> PathBuf {
        self.root.join("secrets.json")
    }

    fn token_lock(&self, group: &RegistryHost) -> PathBuf {
        self.root
            .join("locks")
            .join(format!("{}.lock", group.file_name()))
    }

    fn journal(&self, group: &RegistryHost) -> PathBuf {
        self.root
            .join("journal")
            .join(format!("{}.json", group.file_name()))
    }

    fn kept(&self, group: &RegistryHost) -> PathBuf {
        self.root
            .join("kept")
            .join(format!("{}.json", group.file_name()))
    }

    /// Ends the journal and kept copy of the token `group` (`to` is `None`: no key holds
    /// it any more), or renames them for `to`, the name the keys still holding it give it.
    pub fn regroup(&self, group: &RegistryHost, to: Option<&RegistryHost>) {
        for (from, into) in [
            (self.journal(group), to.map(|t| self.journal(t))),
            (self.kept(group), to.map(|t| self.kept(t))),
        ] {
            match into {
                None => {
                    let _ = std::fs::remove_file(from);
                }
                Some(into) if into != from && from.exists() => {
                    let _ = std::fs::rename(from, into);
                }
                Some(_) => {}
            }
        }
    }

    /// In a fleet: the `stored_at` of the record this host's published lease on `key` is for.
    pub fn published(&self, key: &RegistryHost) -> PathBuf {
        self.root.join("published").join(key.file_name())
    }

    /// A random id of this data directory, made on first use: a fleet's claims carry it,
    /// so a claim of this host id is known to be this directory's (whose renewal lock
    /// then says its process is gone) and not another user's or container's with the same
    /// hostname. `None` when it cannot be kept (then no claim is taken for this one's).
    pub fn instance_id(&self) -> Option<String> {
        let path = self.root.join("instance-id");
        if let Ok(id) = std::fs::read_to_string(&path) {
            return Some(id.trim().to_owned()).filter(|id| !id.is_empty());
        }
        let mut bytes = [0u8; 12];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // Two first uses at once: each may claim with its own id once; a claim whose id is
        // not this directory's is only ever waited out, the safe direction.
        crate::private_file::replace(&path, id.as_bytes()).ok()?;
        Some(id)
    }

    /// Where `key`'s hand-out record lives.
    pub fn lease(&self, key: &RegistryHost) -> PathBuf {
        self.root.join("leases").join(key.file_name())
    }

    fn cut(&self, key: &RegistryHost) -> PathBuf {
        self.root.join("cuts").join(key.file_name())
    }

    fn warned(&self, key: &RegistryHost, topic: &str) -> PathBuf {
        self.root
            .join("warned")
            .join(format!("{}.{topic}", key.file_name()))
    }

    /// Every warning stamp of `key` (topics have no dot, so another key's never match).
    fn warned_all(&self, key: &RegistryHost) -> Vec<PathBuf> {
        let probe = self.warned(key, "");
        let (Some(dir), Some(prefix)) = (probe.parent(), probe.file_name()) else {
            return Vec::new();
        };
        let prefix = prefix.to_string_lossy().into_owned();
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix(&prefix))
                    .is_some_and(|topic| !topic.is_empty() && !topic.contains('.'))
            })
            .map(|e| e.path())
            .collect()
    }
}
