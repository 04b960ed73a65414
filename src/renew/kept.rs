//! A token GitLab has just minted but the store refused (the keychain went away, the state
//! lock timed out): kept in `kept/<registry>.json`, mode 0600 in the data directory, so it
//! is never lost. `get` hands it out and moves it into the store on a later run.

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
    kept_at: jiff::Timestamp,
}

/// A kept token and what is known about it.
#[derive(Debug)]
pub struct Kept {
    pub username: String,
    pub token: Secret,
    pub info: GitLabInfo,
}

fn path(dir: &Path, host: &RegistryHost) -> PathBuf {
    dir.join("kept").join(format!("{}.json", host.file_name()))
}

pub fn keep(
    dir: &Path,
    host: &RegistryHost,
    username: &str,
    token: &Secret,
    info: &GitLabInfo,
) -> std::io::Result<()> {
    let record = Record {
        username: username.to_owned(),
        token: token.expose_secret().to_owned(),
        info: info.clone(),
        kept_at: crate::clock::now(),
    };
    let json = Zeroizing::new(serde_json::to_vec(&record).expect("serialises"));
    let mut record = record;
    zeroize::Zeroize::zeroize(&mut record.token);
    private_file::replace(&path(dir, host), &json)
}

pub fn load(dir: &Path, host: &RegistryHost) -> Option<Kept> {
    let bytes = Zeroizing::new(std::fs::read(path(dir, host)).ok()?);
    let record: Record = serde_json::from_slice(&bytes).ok()?;
    Some(Kept {
        username: record.username,
        token: secret_from(record.token),
        info: record.info,
    })
}

pub fn exists(dir: &Path, host: &RegistryHost) -> bool {
    path(dir, host).exists()
}

pub fn remove(dir: &Path, host: &RegistryHost) {
    let _ = std::fs::remove_file(path(dir, host));
}
