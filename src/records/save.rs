//! Saving and forgetting a credential (the `store`/`erase` verbs, `login`, `logout`).

use super::{Entry, Error, Records, State, group_of, keys_sharing, same_token};
use crate::datadir::{DataDir, leases};
use crate::model::GitLabInfo;
use crate::model::stored_secret::handed_out;
use crate::registry::RegistryHost;
use crate::secret::{ExposeSecret, Secret};
use crate::store::{Backend, SecretStore, StoreChoice};

/// A credential about to be saved.
#[derive(Debug)]
pub(crate) struct NewCredential<'a> {
    pub host: &'a RegistryHost,
    /// The server string as the client gave it (returned by `list`).
    pub server_url: &'a str,
    pub username: &'a str,
    pub secret: &'a Secret,
    pub gitlab: Option<GitLabInfo>,
}

/// Saves a credential and returns the backend that holds it. Under `auto`, a registry stays
/// in the store that already holds it.
impl Records {
    pub fn save(&self, choice: StoreChoice, new: NewCredential<'_>) -> Result<Backend, Error> {
        if let Some(f) = &self.fleet {
            return f.save(new);
        }
        let guard = self.dir.lock()?;
        let (mut state, set_aside) = guard.load_or_set_aside()?;
        if let Some(aside) = set_aside {
            crate::report::warn(&format!(
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
    /// `choice` names the stores `auto` would use, searched when nothing is recorded (best
    /// effort: `None` when the environment names no valid store).
    pub fn forget(&self, choice: Option<StoreChoice>, host: &RegistryHost) -> Result<bool, Error> {
        if let Some(f) = &self.fleet {
            let found = f.forget(host)?;
            for key in [host.clone(), host.standby()] {
                leases::forget(&self.dir, &key);
            }
            return Ok(found);
        }
        let guard = self.dir.lock()?;
        let mut state = guard.load()?;
        let Some(entry) = state.entries.get(host.as_str()) else {
            // Best effort, in the stores `auto` would use: nothing recorded, nothing promised.
            for backend in choice.iter().flat_map(|c| c.candidates()) {
                let _ =
                    SecretStore::open(backend, guard.dir()).and_then(|s| s.delete(&guard, host));
            }
            return Ok(false);
        };
        let mut forgotten = vec![(host.clone(), entry.clone(), group_of_key(&state, host))];
        SecretStore::open(entry.store, guard.dir())?.delete(&guard, host)?;
        state.entries.remove(host.as_str());
        // A registry's standby token goes with it.
        let standby = host.standby();
        if let Some(second) = state.entries.get(standby.as_str()) {
            forgotten.push((
                standby.clone(),
                second.clone(),
                group_of_key(&state, &standby),
            ));
            SecretStore::open(second.store, guard.dir())?.delete(&guard, &standby)?;
            state.entries.remove(standby.as_str());
        }
        guard.save(&state)?;
        for (key, entry, group) in forgotten {
            self.end_records(&state, &key, &entry, &group);
        }
        Ok(true)
    }

    /// Ends what belonged to `key`'s forgotten `entry` besides its secret: its leases, cuts
    /// and warning stamps; and its token's journal and kept copy (named `group`) once no
    /// key left in `state` holds the token, else they go by the name of the keys left.
    fn end_records(&self, state: &State, key: &RegistryHost, entry: &Entry, group: &RegistryHost) {
        leases::forget(&self.dir, key);
        let left: Vec<String> = state
            .entries
            .iter()
            .filter(|(_, e)| same_token(e, entry))
            .map(|(k, _)| k.clone())
            .collect();
        let regrouped = (!left.is_empty()).then(|| group_of(&left));
        self.dir.regroup(group, regrouped.as_ref());
    }
}

/// The group (see [`super::Held::group`]) of the token `key`'s entry holds in `state`.
fn group_of_key(state: &State, key: &RegistryHost) -> RegistryHost {
    match state.entries.get(key.as_str()) {
        Some(entry) => group_of(&keys_sharing(state, key, entry)),
        None => key.clone(),
    }
}

/// Whether `secret` (from `store`) is what `get` hands out for `host` or its standby with
/// `username`: docker login's get-then-store round trip, to be left as it is.
fn is_round_trip(
    state: &State,
    dir: &DataDir,
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
                        let kind = e.gitlab.as_ref().map(|g| g.kind);
                        handed_out(kind, &stored).expose_secret() == secret.expose_secret()
                    })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> RegistryHost {
        RegistryHost::parse(s).unwrap()
    }

    fn save_memory(
        sf: &Records,
        host: &RegistryHost,
        user: &str,
        secret: &str,
    ) -> Result<Backend, Error> {
        sf.save(
            StoreChoice::Only(Backend::Memory),
            NewCredential {
                host,
                server_url: host.as_str(),
                username: user,
                secret: &Secret::from(secret),
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
        let sf = Records::at(dir.path());
        let h = host("order.memory.example");
        save_memory(&sf, &h, "alice", "first").unwrap();
        let (entry, secret) = sf.load(&h).unwrap().unwrap();
        assert_eq!(
            (entry.username.as_str(), secret.expose_secret()),
            ("alice", "first")
        );
        let before = std::fs::read(sf.dir().state_file()).unwrap();

        fail_next_call(&h);
        let err = save_memory(&sf, &h, "bob", "second")
            .unwrap_err()
            .to_string();
        assert!(err.contains("injected"), "{err}");
        assert_eq!(
            std::fs::read(sf.dir().state_file()).unwrap(),
            before,
            "state changed"
        );
        let (entry, secret) = sf.load(&h).unwrap().unwrap();
        assert_eq!(
            (entry.username.as_str(), secret.expose_secret()),
            ("alice", "first")
        );

        // A failed delete keeps the entry (and its secret) too.
        fail_next_call(&h);
        assert!(
            sf.forget(Some(StoreChoice::Only(Backend::Memory)), &h)
                .is_err()
        );
        assert!(sf.load(&h).unwrap().is_some());
        assert!(
            sf.forget(Some(StoreChoice::Only(Backend::Memory)), &h)
                .unwrap()
        );
        assert!(sf.load(&h).unwrap().is_none());
        assert!(
            !sf.forget(Some(StoreChoice::Only(Backend::Memory)), &h)
                .unwrap()
        );
    }

    #[test]
    fn an_entry_whose_secret_is_gone_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let sf = Records::at(dir.path());
        let h = host("gone.memory.example");
        save_memory(&sf, &h, "alice", "s").unwrap();
        let guard = sf.dir().lock().unwrap();
        SecretStore::open(Backend::Memory, sf.dir())
            .unwrap()
            .delete(&guard, &h)
            .unwrap();
        drop(guard);
        assert!(sf.load(&h).unwrap().is_none());
    }
}
