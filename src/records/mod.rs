//! The record of a credential: its secret, what GitLab told us about it, its hand-outs
//! (leases), an open renewal (journal), a minted token the store refused (kept), and the
//! locks that serialise changes. Everything above this module (sources, renewal, commands)
//! reaches a credential's record through [`Records`] and nothing else.
//!
//! This is the seam where a record lives. On one machine: the data directory
//! ([`crate::datadir`]) for the metadata, leases, journal and locks, and the secret store
//! each entry names ([`crate::store`]) for the secret. A fleet
//! (`DOCKER_CREDENTIAL_GITLAB_STORE=vault`) keeps the same record in OpenBao/Vault
//! ([`fleet`]), behind the same methods: each method below says what it does in both.
//!
//! Order matters for crash safety: the secret is written to the store first, then the state
//! file that points at it, both under the state write lock. A crash in between leaves an
//! unreferenced keychain item (harmless, overwritten by the next save), never a state entry
//! without its secret.

use std::sync::Arc;

use crate::datadir::DataDir;
use crate::datadir::error::StateError;
use crate::env::Env;
use crate::registry::RegistryHost;
use crate::secret::Secret;
use crate::store::{Backend, SecretStore, StoreChoice, StoreError};
use crate::vault::VaultError;

mod bookkeeping;
pub(crate) mod fleet;
mod renewal;
mod revoked;
mod save;

pub(crate) use crate::datadir::NoDataDir;
pub(crate) use crate::datadir::journal::Journal;
pub(crate) use crate::datadir::kept::Kept;
pub(crate) use crate::datadir::lock::TokenLock;
pub(crate) use crate::datadir::state::{Entry, State};
pub(crate) use bookkeeping::Claim;
pub(crate) use fleet::claim::NotClaimed;
pub(crate) use fleet::leases::FleetLeases;
pub(crate) use revoked::Revoked;
pub(crate) use save::NewCredential;

/// The key in an entry that says the token was found rotated or revoked elsewhere.
pub(crate) const REVOKED: &str = "revoked";

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("{0}")]
    Fleet(String),
    /// A fleet's record in Vault that does not parse: what replaces or removes it, and
    /// what lists every record, go on without it.
    #[error("{0}")]
    Unreadable(String),
}

/// The records of every credential: this machine's, or a fleet's in Vault.
#[derive(Debug, Clone)]
pub(crate) struct Records {
    /// This machine's data directory (in a fleet: warning stamps, this host's lease
    /// mirror, a minted token Vault did not take yet).
    dir: DataDir,
    fleet: Option<Arc<fleet::Fleet>>,
}

/// A stored entry and the registry keys holding the same token (`key` first).
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub entry: Entry,
    pub keys: Vec<String>,
}

impl Held {
    /// The one name a token goes by for its lock, journal and kept copy, whichever key it
    /// is reached through: the first of the keys holding it.
    pub fn group(&self) -> RegistryHost {
        group_of(&self.keys)
    }
}

impl Records {
    /// The records `env` names: a fleet's in Vault under
    /// `DOCKER_CREDENTIAL_GITLAB_STORE=vault`, else this machine's in its data directory.
    /// Nothing is sent to Vault yet.
    pub fn locate(env: &Env) -> Result<Records, NoDataDir> {
        let dir = DataDir::locate(env)?;
        let fleet = matches!(
            StoreChoice::from_env(env),
            Ok(StoreChoice::Only(Backend::Vault))
        )
        .then(|| Arc::new(fleet::Fleet::connect(env, &dir)));
        Ok(Records { dir, fleet })
    }

    /// The fleet's Vault, when the records are a fleet's.
    pub fn fleet(&self) -> Option<&fleet::Fleet> {
        self.fleet.as_deref()
    }

    /// The records in the data directory at `path` (tests).
    #[cfg(test)]
    pub fn at(path: &std::path::Path) -> Records {
        Records {
            dir: DataDir::at(path),
            fleet: None,
        }
    }

    /// Unit tests: saves `secret` for `key` as user `bot` in the in-memory store, and
    /// returns the entry.
    #[cfg(test)]
    pub fn save_in_memory(
        &self,
        key: &RegistryHost,
        secret: &str,
        gitlab: Option<crate::model::GitLabInfo>,
    ) -> Entry {
        self.save(
            StoreChoice::Only(Backend::Memory),
            NewCredential {
                host: key,
                server_url: key.as_str(),
                username: "bot",
                secret: &Secret::from(secret),
                gitlab,
            },
        )
        .unwrap();
        self.held(key).unwrap().unwrap().entry
    }

    /// The data directory (for `status` and `doctor`, which show where things are).
    pub fn dir(&self) -> &DataDir {
        &self.dir
    }

    /// Every entry, from one read of the state file (a fleet: every record in the path).
    /// Takes no lock and touches no local store.
    pub fn snapshot(&self) -> Result<State, Error> {
        match &self.fleet {
            Some(f) => f.snapshot(),
            None => Ok(self.dir.load()?),
        }
    }

    /// `key`'s entry with the keys holding its token, and its standby's entry: what a `get`
    /// starts from. One read of the state file (a fleet: one Vault read for one token).
    pub fn registry(&self, key: &RegistryHost) -> Result<Option<(Held, Option<Entry>)>, Error> {
        if let Some(f) = &self.fleet {
            return f.registry(key);
        }
        let state = self.snapshot()?;
        Ok(Records::held_in(&state, key)
            .map(|held| (held, state.entries.get(key.standby().as_str()).cloned())))
    }

    /// `key`'s entry and the keys holding its token, in a snapshot already read.
    pub fn held_in(state: &State, key: &RegistryHost) -> Option<Held> {
        state.entries.get(key.as_str()).map(|entry| Held {
            keys: keys_sharing(state, key, entry),
            entry: entry.clone(),
        })
    }

    /// `key`'s entry and the keys holding its token. Takes no lock and touches no store.
    pub fn held(&self, key: &RegistryHost) -> Result<Option<Held>, Error> {
        match &self.fleet {
            Some(f) => f.held(key),
            None => Ok(Records::held_in(&self.snapshot()?, key)),
        }
    }

    /// The secret the store holds for `key`'s entry (a fleet: read with the entry).
    pub fn secret(&self, key: &RegistryHost, entry: &Entry) -> Result<Option<Secret>, Error> {
        match &self.fleet {
            Some(f) => f.secret(key, entry),
            None => Ok(SecretStore::open(entry.store, &self.dir)?.get(key)?),
        }
    }

    /// `key`'s entry and its secret, if both exist.
    pub fn load(&self, key: &RegistryHost) -> Result<Option<(Entry, Secret)>, Error> {
        let Some(held) = self.held(key)? else {
            return Ok(None);
        };
        Ok(self.secret(key, &held.entry)?.map(|s| (held.entry, s)))
    }

    /// The entry and secret now stored for `key`, if they changed since `seen` (another
    /// process renewed). One read of the state file when nothing changed.
    pub fn changed_since(
        &self,
        key: &RegistryHost,
        seen: &Entry,
    ) -> Result<Option<(Entry, Secret)>, Error> {
        if let Some(f) = &self.fleet {
            return f.changed_since(key, seen);
        }
        match self.held(key)? {
            Some(held) if held.entry.stored_at != seen.stored_at => {
                Ok(self.secret(key, &held.entry)?.map(|s| (held.entry, s)))
            }
            _ => Ok(None),
        }
    }

    /// The keys holding the same token as `entry` (`key` first). Takes no lock. (In a
    /// fleet each key's record is its own credential.)
    pub fn sharing(&self, key: &RegistryHost, entry: &Entry) -> Vec<String> {
        if self.fleet.is_some() {
            return vec![key.as_str().to_owned()];
        }
        match self.snapshot() {
            Ok(state) => keys_sharing(&state, key, entry),
            Err(_) => vec![key.as_str().to_owned()],
        }
    }

    /// Every key holding the token of `key`'s `entry`, with the `stored_at` each has now
    /// (what a kept token is adopted by).
    pub fn holders(
        &self,
        key: &RegistryHost,
        entry: &Entry,
    ) -> std::collections::BTreeMap<String, jiff::Timestamp> {
        if self.fleet.is_some() {
            return fleet::Fleet::holders(key, entry);
        }
        match self.snapshot() {
            Ok(state) => self
                .sharing(key, entry)
                .into_iter()
                .filter_map(|k| state.entries.get(&k).map(|e| (k, e.stored_at)))
                .collect(),
            Err(_) => [(key.as_str().to_owned(), entry.stored_at)].into(),
        }
    }

    /// The group (see [`Held::group`]) of `key`'s token.
    pub fn group(&self, key: &RegistryHost, entry: &Entry) -> RegistryHost {
        group_of(&self.sharing(key, entry))
    }
}

/// The first of `keys` (the name a token's lock, journal and kept copy go by).
pub(super) fn group_of(keys: &[String]) -> RegistryHost {
    keys.iter()
        .min()
        .and_then(|k| RegistryHost::from_key(k).ok())
        .expect("a token is held by at least one valid key")
}

/// `key`, then every other key whose entry holds the same token as `entry`: one
/// credential, renewed once for all of them.
pub(crate) fn keys_sharing(state: &State, key: &RegistryHost, entry: &Entry) -> Vec<String> {
    let mut keys = vec![key.as_str().to_owned()];
    keys.extend(
        state
            .entries
            .iter()
            .filter(|(k, e)| k.as_str() != key.as_str() && same_token(e, entry))
            .map(|(k, _)| k.clone()),
    );
    keys
}

/// Same GitLab, same token id.
pub(super) fn same_token(a: &Entry, b: &Entry) -> bool {
    match (&a.gitlab, &b.gitlab) {
        (Some(x), Some(y)) => x.token_id.is_some() && x.token_id == y.token_id && x.url == y.url,
        _ => false,
    }
}
