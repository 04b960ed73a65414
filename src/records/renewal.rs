//! Recording what renewal produced, under the state write lock: a renewed token for every
//! key that held the old one, a kept token moved into the store, the active token of a
//! standby pair.

use std::time::Duration;

use super::{Entry, Error, Kept, Records, State, keys_sharing};
use crate::datadir::lock::WriteGuard;
use crate::model::GitLabInfo;
use crate::registry::RegistryHost;
use crate::secret::Secret;
use crate::store::{SecretStore, StoreError};

/// The key in a registry's entry that says hand-outs go to its standby token.
const STANDBY_ACTIVE: &str = "standby_active";

impl Entry {
    /// Whether hand-outs of this (primary) entry's registry go to its standby token.
    pub fn standby_active(&self) -> bool {
        self.extra
            .get(STANDBY_ACTIVE)
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }
}

impl Records {
    /// Records a renewed token under the lock: first its secret for `host` and every entry that
    /// held the old token, then their metadata (the new `stored_at` tells other processes that
    /// the token changed). `None` when `host` was erased meanwhile: it is not brought back.
    pub fn commit_renewal(
        &self,
        wait: Duration,
        host: &RegistryHost,
        old: &Entry,
        token: &Secret,
        info: GitLabInfo,
    ) -> Result<Option<Entry>, Error> {
        if let Some(f) = &self.fleet {
            return f.commit(host, token, info);
        }
        let guard = self.dir.lock_with_deadline(wait)?;
        let mut state = guard.load()?;
        if !state.entries.contains_key(host.as_str()) {
            return Ok(None);
        }
        let keys = keys_sharing(&state, host, old);
        store_for_keys(&guard, &mut state, &keys, token, &info)?;
        let updated = state.entries[host.as_str()].clone();
        guard.save(&state)?;
        crate::fault::point("after-state");
        Ok(Some(updated))
    }

    /// Moves a kept token (see [`crate::datadir::kept`]) of the token `group` into the store,
    /// as a renewal would: for every key that still holds what it held when the token was
    /// kept (same `stored_at`; a key logged in again or erased since is left alone). The
    /// kept copy and the journal of the renewal that minted it end there. Returns the keys
    /// it updated.
    pub fn adopt(
        &self,
        wait: Duration,
        group: &RegistryHost,
        kept: &Kept,
    ) -> Result<Vec<String>, Error> {
        if let Some(f) = &self.fleet {
            let keys = f.adopt(kept)?;
            self.drop_kept(group);
            return Ok(keys);
        }
        let guard = self.dir.lock_with_deadline(wait)?;
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
        store_for_keys(&guard, &mut state, &keys, &kept.token, &kept.info)?;
        if !keys.is_empty() {
            guard.save(&state)?;
        }
        // The renewal that minted it was of the entries it was kept for.
        if self.read_journal(group).is_some_and(|j| {
            j.stored_at
                .is_some_and(|at| kept.keys.values().any(|k| *k == at))
        }) {
            self.close_journal(group);
        }
        self.drop_kept(group);
        Ok(keys)
    }

    /// Makes `host`'s standby token (or, with `standby` false, its own) the one `get` hands out.
    pub fn set_standby_active(
        &self,
        wait: Duration,
        host: &RegistryHost,
        standby: bool,
    ) -> Result<(), Error> {
        if let Some(f) = &self.fleet {
            return f.change(host.as_str(), |r| {
                r.entry
                    .extra
                    .insert(STANDBY_ACTIVE.into(), serde_json::Value::Bool(standby));
            });
        }
        let guard = self.dir.lock_with_deadline(wait)?;
        let mut state = guard.load()?;
        if let Some(primary) = state.entries.get_mut(host.as_str()) {
            primary
                .extra
                .insert(STANDBY_ACTIVE.into(), serde_json::Value::Bool(standby));
            guard.save(&state)?;
        }
        Ok(())
    }
}

/// Writes a renewed `token` for each of `keys` (their secret first, each in its own store),
/// then their metadata in `state` (saved by the caller). The new `stored_at` tells other
/// processes the token changed.
fn store_for_keys(
    guard: &WriteGuard<'_>,
    state: &mut State,
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
    crate::fault::point("after-store-secret");
    let now = crate::clock::now();
    for key in keys {
        let entry = state.entries.get_mut(key).expect("listed above");
        entry.stored_at = now;
        entry.gitlab = Some(info.clone());
    }
    Ok(())
}
