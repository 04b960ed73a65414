//! The policy for saving and forgetting credentials, shared by the `store`/`erase` verbs,
//! `login` and `logout`.
//!
//! Order matters for crash safety: the secret is written to the store first, then the
//! state file that points at it, both under the state write lock. A crash in between leaves
//! an unreferenced keychain item (harmless, overwritten by the next save), never a state
//! entry without its secret.

use crate::registry::RegistryHost;
use crate::secret::{ExposeSecret, Secret};
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
    let (mut state, set_aside) = guard.load_or_set_aside()?;
    if let Some(aside) = set_aside {
        crate::sources::stored::warn(&format!(
            "the state file was corrupt; it is kept as {} and a fresh one started \
             (secrets saved before stay in their store: log in again to use them)",
            aside.display()
        ));
    }
    let previous = state.entries.get(new.host.as_str()).map(|p| p.store);
    // `docker login HOST` with a stored credential calls `get`, then `store` with the same
    // secret: that must change nothing (not forget what `login` learnt, not overwrite the
    // other token of a standby pair, not replace an OAuth pair by its access token).
    if new.gitlab.is_none()
        && is_round_trip(&state, guard.dir(), new.host, new.username, new.secret)
    {
        let holder = state
            .entries
            .get(new.host.as_str())
            .or_else(|| state.entries.get(new.host.standby().as_str()));
        return Ok(holder.map_or(previous.unwrap_or(Backend::File), |e| e.store));
    }
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
            stored_at: crate::clock::now(),
            // A new secret invalidates whatever we knew about the old one.
            gitlab: new.gitlab,
            extra: Default::default(),
        },
    );
    guard.save(&state)?;
    Ok(backend)
}

/// Forgets the credential for `host`. Returns false when the state file had none; even
/// then an item left in the store (a crash between secret and metadata, a corrupt state
/// file set aside) is removed, so `docker logout` always means "gone".
pub fn forget(state_file: &StateFile, host: &RegistryHost) -> Result<bool, Error> {
    let guard = state_file.lock()?;
    let mut state = guard.load()?;
    let Some(entry) = state.entries.get(host.as_str()) else {
        // Best effort, in the stores `auto` would use: nothing recorded, nothing promised.
        if let Ok(choice) = StoreChoice::from_env() {
            for backend in choice.candidates() {
                let _ =
                    SecretStore::open(backend, guard.dir()).and_then(|s| s.delete(&guard, host));
            }
        }
        return Ok(false);
    };
    SecretStore::open(entry.store, guard.dir())?.delete(&guard, host)?;
    state.entries.remove(host.as_str());
    crate::leases::forget(state_file.dir(), host);
    // A registry's standby token goes with it.
    let standby = host.standby();
    if let Some(second) = state.entries.get(standby.as_str()) {
        SecretStore::open(second.store, guard.dir())?.delete(&guard, &standby)?;
        state.entries.remove(standby.as_str());
        crate::leases::forget(state_file.dir(), &standby);
    }
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

/// The stored entry and the keys holding the same token (`host` first), from one read of
/// the state file. Takes no lock and touches no store.
pub fn entry_shared(
    state_file: &StateFile,
    host: &RegistryHost,
) -> Result<Option<(Entry, Vec<String>)>, Error> {
    Ok(entry_shared_in(&state_file.load()?, host))
}

/// [`entry_shared`] in a state already read.
pub fn entry_shared_in(
    state: &crate::state::State,
    host: &RegistryHost,
) -> Option<(Entry, Vec<String>)> {
    state.entries.get(host.as_str()).map(|entry| {
        let keys = keys_sharing(state, host, entry);
        (entry.clone(), keys)
    })
}

/// The secret the store holds for `host`'s entry.
pub fn secret_of(
    state_file: &StateFile,
    host: &RegistryHost,
    entry: &Entry,
) -> Result<Option<Secret>, Error> {
    Ok(SecretStore::open(entry.store, state_file.dir())?.get(host)?)
}

/// The stored entry, its secret and the keys holding the same token.
pub fn load_shared(
    state_file: &StateFile,
    host: &RegistryHost,
) -> Result<Option<(Entry, Secret, Vec<String>)>, Error> {
    let Some((entry, keys)) = entry_shared(state_file, host)? else {
        return Ok(None);
    };
    Ok(secret_of(state_file, host, &entry)?.map(|s| (entry, s, keys)))
}

/// The entry and secret now stored for `host`, if they changed since `seen` (another
/// process renewed). One read of the state file when nothing changed.
pub fn load_if_changed(
    state_file: &StateFile,
    host: &RegistryHost,
    seen: &Entry,
) -> Result<Option<(Entry, Secret)>, Error> {
    let state = state_file.load()?;
    match state.entries.get(host.as_str()) {
        Some(e) if e.stored_at != seen.stored_at => {
            let secret = SecretStore::open(e.store, state_file.dir())?.get(host)?;
            Ok(secret.map(|s| (e.clone(), s)))
        }
        _ => Ok(None),
    }
}

/// The one name a token goes by for its lock, journal and kept copy, whichever key it is
/// reached through: the first of the keys holding it.
pub fn group_of(keys: &[String]) -> Option<RegistryHost> {
    keys.iter()
        .min()
        .and_then(|k| RegistryHost::from_key(k).ok())
}

/// The token group of `host` in an already loaded state (see [`group_of`]).
pub fn group_in(state: &crate::state::State, host: &RegistryHost, entry: &Entry) -> RegistryHost {
    group_of(&keys_sharing(state, host, entry)).unwrap_or_else(|| host.clone())
}

/// The registry keys whose entry holds the same token as `entry` (same GitLab, same token
/// id), `host` included: one credential, renewed once for all of them. Takes no lock.
pub fn sharing_token(state_file: &StateFile, host: &RegistryHost, entry: &Entry) -> Vec<String> {
    match state_file.load() {
        Ok(state) => keys_sharing(&state, host, entry),
        Err(_) => vec![host.as_str().to_owned()],
    }
}

/// `host`, then every other key whose entry holds the same token as `entry`.
fn keys_sharing(state: &crate::state::State, host: &RegistryHost, entry: &Entry) -> Vec<String> {
    let mut keys = vec![host.as_str().to_owned()];
    keys.extend(
        state
            .entries
            .iter()
            .filter(|(k, e)| k.as_str() != host.as_str() && same_token(e, entry))
            .map(|(k, _)| k.clone()),
    );
    keys
}

fn same_token(a: &Entry, b: &Entry) -> bool {
    match (&a.gitlab, &b.gitlab) {
        (Some(x), Some(y)) => x.token_id.is_some() && x.token_id == y.token_id && x.url == y.url,
        _ => false,
    }
}

/// Records a renewed token under the lock: first its secret for `host` and every entry that
/// held the old token, then their metadata (the new `stored_at` tells other processes that
/// the token changed). `None` when `host` was erased meanwhile: it is not brought back.
pub fn record_renewal(
    guard: &WriteGuard<'_>,
    host: &RegistryHost,
    old: &Entry,
    token: &Secret,
    info: GitLabInfo,
) -> Result<Option<Entry>, Error> {
    let mut state = guard.load()?;
    if !state.entries.contains_key(host.as_str()) {
        return Ok(None);
    }
    let keys = keys_sharing(&state, host, old);
    store_for_keys(guard, &mut state, &keys, token, &info)?;
    let updated = state.entries[host.as_str()].clone();
    guard.save(&state)?;
    crate::renew::fault_point("after-state");
    Ok(Some(updated))
}

/// Writes a renewed `token` for each of `keys` (their secret first, each in its own store),
/// then their metadata in `state` (saved by the caller). The new `stored_at` tells other
/// processes the token changed.
fn store_for_keys(
    guard: &WriteGuard<'_>,
    state: &mut crate::state::State,
    keys: &[String],
    token: &Secret,
    info: &GitLabInfo,
) -> Result<(), Error> {
    for key in keys {
        let entry = &state.entries[key];
        let key_host = RegistryHost::from_key(key).map_err(|_| StoreError::Failed {
            backend: entry.store,
            detail: format!("invalid registry key {key:?} in the state file"),
        })?;
        SecretStore::open(entry.store, guard.dir())?.set(guard, &key_host, token)?;
    }
    crate::renew::fault_point("after-store-secret");
    let now = crate::clock::now();
    for key in keys {
        let entry = state.entries.get_mut(key).expect("listed above");
        entry.stored_at = now;
        entry.gitlab = Some(info.clone());
    }
    Ok(())
}

/// Moves a kept token (see [`crate::renew::kept`]) into the store, as a renewal would:
/// for every key that still holds what it held when the token was kept (same `stored_at`;
/// a key logged in again or erased since is left alone). Returns the keys it updated.
pub fn adopt(
    guard: &WriteGuard<'_>,
    kept: &crate::renew::kept::Kept,
) -> Result<Vec<String>, Error> {
    let mut state = guard.load()?;
    let keys: Vec<String> = kept
        .keys
        .iter()
        .filter(|(k, at)| {
            state
                .entries
                .get(k.as_str())
                .is_some_and(|e| e.stored_at == **at)
        })
        .map(|(k, _)| k.clone())
        .collect();
    store_for_keys(guard, &mut state, &keys, &kept.token, &kept.info)?;
    if !keys.is_empty() {
        guard.save(&state)?;
    }
    Ok(keys)
}

/// Whether `secret` (from `store`) is what `get` hands out for `host` or its standby with
/// `username`: docker login's get-then-store round trip, to be left as it is.
fn is_round_trip(
    state: &crate::state::State,
    dir: &std::path::Path,
    host: &RegistryHost,
    username: &str,
    secret: &Secret,
) -> bool {
    [host.clone(), host.standby()].iter().any(|key| {
        state.entries.get(key.as_str()).is_some_and(|e| {
            e.gitlab.is_some()
                && e.username == username
                && SecretStore::open(e.store, dir)
                    .and_then(|s| s.get(key))
                    .ok()
                    .flatten()
                    .is_some_and(|stored| {
                        let handed_out = match e.gitlab.as_ref().map(|g| g.kind) {
                            Some(crate::state::TokenKind::OauthToken) => {
                                crate::renew::oauth::access_token(&stored)
                            }
                            _ => stored,
                        };
                        handed_out.expose_secret() == secret.expose_secret()
                    })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::secret_from;

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
