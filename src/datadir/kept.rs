//! A token GitLab has just minted but the store refused (the keychain went away, the state
//! lock timed out): kept in `kept/<token>.json`, mode 0600 in the data directory, so it is
//! never lost. It is named like the token's lock (the first key holding the token) and
//! records every key that held the old token, with the `stored_at` it had then: `get`
//! through any of them hands it out and moves it into the store, for each key that has not
//! been logged in again or erased since.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::DataDir;
use crate::model::GitLabInfo;
use crate::private_file;
use crate::registry::RegistryHost;
use crate::secret::{ExposeSecret, Secret};

#[derive(Serialize, Deserialize)]
struct Record {
    username: String,
    token: String,
    info: GitLabInfo,
    /// The keys holding the old token, and their `stored_at` then.
    keys: BTreeMap<String, jiff::Timestamp>,
    kept_at: jiff::Timestamp,
}

/// A kept token and what is known about it.
#[derive(Debug)]
pub(crate) struct Kept {
    pub username: String,
    pub token: Secret,
    pub info: GitLabInfo,
    pub keys: BTreeMap<String, jiff::Timestamp>,
}

pub(crate) fn keep(dir: &DataDir, group: &RegistryHost, kept: &Kept) -> std::io::Result<()> {
    let mut record = Record {
        username: kept.username.clone(),
        token: kept.token.expose_secret().to_owned(),
        info: kept.info.clone(),
        keys: kept.keys.clone(),
        kept_at: crate::clock::now(),
    };
    let json = Zeroizing::new(serde_json::to_vec(&record).expect("serialises"));
    zeroize::Zeroize::zeroize(&mut record.token);
    private_file::replace(&dir.kept(group), &json)
}

pub(crate) fn load(dir: &DataDir, group: &RegistryHost) -> Option<Kept> {
    let bytes = Zeroizing::new(std::fs::read(dir.kept(group)).ok()?);
    let record: Record = serde_json::from_slice(&bytes).ok()?;
    Some(Kept {
        username: record.username,
        token: Secret::from(record.token),
        info: record.info,
        keys: record.keys,
    })
}

pub(crate) fn exists(dir: &DataDir, group: &RegistryHost) -> bool {
    dir.kept(group).exists()
}

pub(crate) fn remove(dir: &DataDir, group: &RegistryHost) {
    let _ = std::fs::remove_file(dir.kept(group));
}
