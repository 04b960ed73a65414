//! The policy for saving and forgetting credentials, shared by the `store`/`erase` verbs,
//! `login` and `logout`.
//!
//! Order matters for crash safety: the secret is written to the store first, then the
//! state file that points at it, both under the state write lock. A crash in between leaves
//! an unreferenced keychain item (harmless, overwritten by the next save), never a state
//! entry without its secret.

use crate::registry::RegistryHost;
use crate::secret::Secret;
use crate::state::{Entry, GitLabInfo, StateError, StateFile, WriteGuard};
use crate::store::{Backend, SecretStore, StoreChoice, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A credential about to be saved.
#[derive(Debug)]
pub struct NewCredential<'a> {
    pub host: &'a RegistryHost,
    /// The server string as the client gave it (returned by `list`).
    pub server_url: &'a str,
    pub username: &'a str,
    pub secret: &'a Secret,
    pub gitlab: Option<GitLabInfo>,
}

/// Saves a credential and returns the backend that holds it. Under `auto`, a registry stays
/// in the store that already holds it.
pub fn save(
    state_file: &StateFile,
    choice: StoreChoice,
    new: NewCredential<'_>,
) -> Result<Backend, Error> {
    let guard = state_file.lock()?;
    let mut state = guard.load()?;
    let previous = state.entries.get(new.host.as_str()).map(|p| p.store);
    let backend = SecretStore::write(&guard, choice, previous, new.host, new.secret)?;
    if let Some(old) = previous
        && old != backend
    {
        // Best effort: the state file stops pointing at the old copy either way.
        let _ = SecretStore::open(old, guard.dir()).and_then(|s| s.delete(&guard, new.host));
    }
    state.entries.insert(
        new.host.as_str().to_owned(),
        Entry {
            server_url: new.server_url.trim().to_owned(),
            username: new.username.to_owned(),
            store: backend,
            stored_at: jiff::Timestamp::now(),
            // A new secret invalidates whatever we knew about the old one.
            gitlab: new.gitlab,
            extra: Default::default(),
        },
    );
    guard.save(&state)?;
    Ok(backend)
}

/// Forgets the credential for `host`. Returns false when there was none. An absent entry
/// costs one file read and no lock (docker logout erases up to four spellings).
pub fn forget(state_file: &StateFile, host: &RegistryHost) -> Result<bool, Error> {
    if !state_file.load()?.entries.contains_key(host.as_str()) {
        return Ok(false);
    }
    let guard = state_file.lock()?;
    let mut state = guard.load()?;
    let Some(entry) = state.entries.get(host.as_str()) else {
        return Ok(false);
    };
    SecretStore::open(entry.store, guard.dir())?.delete(&guard, host)?;
    state.entries.remove(host.as_str());
    guard.save(&state)?;
    Ok(true)
}

/// The stored entry and its secret, if both exist. Takes no lock.
pub fn load(state_file: &StateFile, host: &RegistryHost) -> Result<Option<(Entry, Secret)>, Error> {
    let state = state_file.load()?;
    let Some(entry) = state.entries.get(host.as_str()) else {
        return Ok(None);
    };
    let secret = SecretStore::open(entry.store, state_file.dir())?.get(host)?;
    Ok(secret.map(|s| (entry.clone(), s)))
}

/// Records a renewed token's metadata, under the lock its secret was just written with.
/// The new `stored_at` tells other processes that the token changed.
pub fn update_after_renewal(
    guard: &WriteGuard<'_>,
    host: &RegistryHost,
    backend: Backend,
    info: GitLabInfo,
) -> Result<Entry, Error> {
    let mut state = guard.load()?;
    let entry = state
        .entries
        .entry(host.as_str().to_owned())
        .or_insert_with(|| Entry {
            server_url: host.as_str().to_owned(),
            username: crate::gitlab::DEFAULT_USERNAME.to_owned(),
            store: backend,
            stored_at: jiff::Timestamp::now(),
            gitlab: None,
            extra: Default::default(),
        });
    entry.store = backend;
    entry.stored_at = jiff::Timestamp::now();
    entry.gitlab = Some(info);
    let updated = entry.clone();
    guard.save(&state)?;
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{ExposeSecret, secret_from};

    fn host(s: &str) -> RegistryHost {
        RegistryHost::parse(s).unwrap()
    }

    fn save_memory(
        sf: &StateFile,
        host: &RegistryHost,
        user: &str,
        secret: &str,
    ) -> Result<Backend, Error> {
        save(
            sf,
            StoreChoice::Only(Backend::Memory),
            NewCredential {
                host,
                server_url: host.as_str(),
                username: user,
                secret: &secret_from(secret.to_owned()),
                gitlab: None,
            },
        )
    }

    /// Makes the memory store's next call for `host` fail.
    fn fail_next_call(host: &RegistryHost) {
        use keyring_core::api::CredentialStoreApi;
        let entry = crate::store::memory()
            .build(crate::store::SERVICE, host.as_str(), None)
            .unwrap();
        let cred: &keyring_core::mock::Cred = entry.as_any().downcast_ref().unwrap();
        cred.set_error(keyring_core::Error::PlatformFailure("injected".into()));
    }

    #[test]
    fn secret_then_metadata_and_a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sf = StateFile::in_dir(dir.path());
        let h = host("order.memory.example");
        save_memory(&sf, &h, "alice", "first").unwrap();
        let (entry, secret) = load(&sf, &h).unwrap().unwrap();
        assert_eq!(
            (entry.username.as_str(), secret.expose_secret()),
            ("alice", "first")
        );
        let before = std::fs::read(sf.path()).unwrap();

        fail_next_call(&h);
        let err = save_memory(&sf, &h, "bob", "second")
            .unwrap_err()
            .to_string();
        assert!(err.contains("injected"), "{err}");
        assert_eq!(std::fs::read(sf.path()).unwrap(), before, "state changed");
        let (entry, secret) = load(&sf, &h).unwrap().unwrap();
        assert_eq!(
            (entry.username.as_str(), secret.expose_secret()),
            ("alice", "first")
        );

        // A failed delete keeps the entry (and its secret) too.
        fail_next_call(&h);
        assert!(forget(&sf, &h).is_err());
        assert!(load(&sf, &h).unwrap().is_some());
        assert!(forget(&sf, &h).unwrap());
        assert!(load(&sf, &h).unwrap().is_none());
        assert!(!forget(&sf, &h).unwrap());
    }

    #[test]
    fn an_entry_whose_secret_is_gone_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let sf = StateFile::in_dir(dir.path());
        let h = host("gone.memory.example");
        save_memory(&sf, &h, "alice", "s").unwrap();
        let guard = sf.lock().unwrap();
        SecretStore::open(Backend::Memory, sf.dir())
            .unwrap()
            .delete(&guard, &h)
            .unwrap();
        drop(guard);
        assert!(load(&sf, &h).unwrap().is_none());
    }
}
