//! A token GitLab has just minted but the store refused (the keychain went away, the state
//! lock timed out): kept in `kept/<token>.json`, mode 0600 in the data directory, so it is
//! never lost. It is named like the token's lock (the first key holding the token) and
//! records every key that held the old token, with the `stored_at` it had then: `get`
//! through any of them hands it out and moves it into the store, for each key that has not
//! been logged in again or erased since.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::private_file;
use crate::registry::RegistryHost;
use crate::secret::{ExposeSecret, Secret, secret_from};
use crate::state::GitLabInfo;

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
pub struct Kept {
    pub username: String,
    pub token: Secret,
    pub info: GitLabInfo,
    pub keys: BTreeMap<String, jiff::Timestamp>,
}

fn path(dir: &Path, group: &RegistryHost) -> PathBuf {
    dir.join("kept").join(format!("{}.json", group.file_name()))
}

pub fn keep(dir: &Path, group: &RegistryHost, kept: &Kept) -> std::io::Result<()> {
    let mut record = Record {
        username: kept.username.clone(),
        token: kept.token.expose_secret().to_owned(),
        info: kept.info.clone(),
        keys: kept.keys.clone(),
        kept_at: crate::clock::now(),
    };
    let json = Zeroizing::new(serde_json::to_vec(&record).expect("serialises"));
    zeroize::Zeroize::zeroize(&mut record.token);
    private_file::replace(&path(dir, group), &json)
}

pub fn load(dir: &Path, group: &RegistryHost) -> Option<Kept> {
    let bytes = Zeroizing::new(std::fs::read(path(dir, group)).ok()?);
    let record: Record = serde_json::from_slice(&bytes).ok()?;
    Some(Kept {
        username: record.username,
        token: secret_from(record.token),
        info: record.info,
        keys: record.keys,
    })
}

pub fn exists(dir: &Path, group: &RegistryHost) -> bool {
    path(dir, group).exists()
}

pub fn remove(dir: &Path, group: &RegistryHost) {
    let _ = std::fs::remove_file(path(dir, group));
}
