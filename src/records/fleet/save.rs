//! Writing a fleet's records outside a renewal: `login`/`store` (which replace a record
//! whatever it holds: what a person did wins), `logout`/`erase`, the active token of a
//! standby pair, a token known to be dead, and a kept token that reaches Vault late.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::{Fleet, Record};
use crate::datadir::kept::Kept;
use crate::model::stored_secret::handed_out;
use crate::records::{Entry, Error, NewCredential};
use crate::registry::RegistryHost;
use crate::secret::{ExposeSecret, Secret};
use crate::store::Backend;

/// How often a change that lost a check-and-set race is tried again.
const RETRIES: usize = 5;

impl Fleet {
    /// Saves a credential for every host. A docker-login round trip (the secret `get`
    /// handed out, stored back) changes nothing.
    pub fn save(&self, new: NewCredential<'_>) -> Result<Backend, Error> {
        let key = new.host.as_str();
        let existing = self.readable(key)?;
        if new.gitlab.is_none() && self.is_round_trip(new.host, new.username, new.secret)? {
            return Ok(Backend::Vault);
        }
        let record = Record {
            version: 0,
            entry: Entry {
                server_url: new.server_url.trim().to_owned(),
                username: new.username.to_owned(),
                store: Backend::Vault,
                stored_at: crate::clock::now(),
                gitlab: new.gitlab,
                extra: Default::default(),
            },
            secret: new.secret.clone(),
            claim: None,
            has_standby: existing.as_ref().is_some_and(|r| r.has_standby),
        };
        self.write(key, &record, None)?
            .map_err(|_| Error::Fleet(format!("Vault refused the write of {key}")))?;
        if let Some(primary) = RegistryHost::standby_of(key) {
            self.change(primary, |r| r.has_standby = true)?;
        }
        Ok(Backend::Vault)
    }

    fn is_round_trip(
        &self,
        host: &RegistryHost,
        username: &str,
        secret: &Secret,
    ) -> Result<bool, Error> {
        for key in [host.clone(), host.standby()] {
            let cached = match self.cached(key.as_str()) {
                Err(Error::Unreadable(_)) => None,
                other => other?,
            };
            if let Some(r) = cached
                && let Some(info) = &r.entry.gitlab
                && r.entry.username == username
                && handed_out(Some(info.kind), &r.secret).expose_secret() == secret.expose_secret()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Forgets `host` and its standby for every host, with their leases. False when Vault
    /// held neither.
    pub fn forget(&self, host: &RegistryHost) -> Result<bool, Error> {
        let vault = self.vault()?;
        let mut found = false;
        for key in [host.clone(), host.standby()] {
            let present = match self.read(key.as_str()) {
                Err(Error::Unreadable(_)) => true,
                other => other?.is_some(),
            };
            if present {
                found = true;
                vault.destroy(&super::record_path(key.as_str()))?;
            }
            self.forget_leases(key.as_str())?;
        }
        Ok(found)
    }

    /// Applies `change` to `key`'s record, check-and-set, trying again when another host
    /// wrote first. Nothing when the record is gone.
    pub(in crate::records) fn change(
        &self,
        key: &str,
        change: impl Fn(&mut Record),
    ) -> Result<(), Error> {
        for _ in 0..RETRIES {
            let Some(mut record) = self.read(key)? else {
                return Ok(());
            };
            let version = record.version;
            change(&mut record);
            if self.write(key, &record, Some(version))?.is_ok() {
                return Ok(());
            }
        }
        Err(Error::Fleet(format!(
            "the record of {key} in Vault kept changing; try again"
        )))
    }

    /// Applies `mark` to `key`'s entry if it still is the one stored at `stored_at` and is
    /// not marked yet. False when the record holds something else by now.
    pub fn mark(
        &self,
        key: &str,
        stored_at: Timestamp,
        mark: impl Fn(&mut Entry),
    ) -> Result<bool, Error> {
        let Some(record) = self.read(key)? else {
            return Ok(false);
        };
        if record.entry.stored_at != stored_at {
            return Ok(false);
        }
        if record.entry.revoked().is_some() {
            return Ok(true);
        }
        let mut marked = record.clone();
        mark(&mut marked.entry);
        // Lost a race: whoever wrote first decides; the next get learns it again if need be.
        Ok(self.write(key, &marked, Some(record.version))?.is_ok())
    }

    /// Moves a token this host kept (minted, not yet in Vault) into the record of every
    /// key that still holds what it held then. Returns the keys it updated.
    pub fn adopt(&self, kept: &Kept) -> Result<Vec<String>, Error> {
        let mut adopted = Vec::new();
        for (key, at) in &kept.keys {
            if self.adopt_one(key, *at, kept)? {
                adopted.push(key.clone());
            }
        }
        Ok(adopted)
    }

    fn adopt_one(&self, key: &str, at: Timestamp, kept: &Kept) -> Result<bool, Error> {
        let Some(record) = self.read(key)? else {
            return Ok(false);
        };
        if record.entry.stored_at != at {
            return Ok(false);
        }
        let mut entry = record.entry.clone();
        entry.stored_at = crate::clock::now();
        entry.gitlab = Some(kept.info.clone());
        entry.extra.remove(crate::records::REVOKED);
        let adopted = Record {
            entry,
            secret: kept.token.clone(),
            // The claim that minted it (this host's) ends here; another host's stays.
            claim: record.claim.clone().filter(|c| c.host != self.host_id),
            ..record.clone()
        };
        Ok(self.write(key, &adopted, Some(record.version))?.is_ok())
    }

    /// Every key's `stored_at` as held now, for a kept token (in a fleet a token is held
    /// by its own key only).
    pub fn holders(key: &RegistryHost, entry: &Entry) -> BTreeMap<String, Timestamp> {
        [(key.as_str().to_owned(), entry.stored_at)].into()
    }
}
