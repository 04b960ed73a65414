//! A fleet's records: the record [`super::Records`] keeps for one machine, kept instead in
//! OpenBao/HashiCorp Vault KV v2 (`DOCKER_CREDENTIAL_GITLAB_STORE=vault`), so every host
//! configured with the same address and path serves, renews and protects one credential.
//!
//! Under `DOCKER_CREDENTIAL_GITLAB_VAULT_PATH` (paths relative to `<mount>/data/<prefix>/`):
//!
//! ```text
//! records/<key>          {"entry": …, "secret": …, "claim": …}   one per registry key
//! leases/<key>/<host>    {"host", "at", "until", "count"}         one per host: no contention
//! ```
//!
//! `<key>` is the normalised registry key with `/` written `~` and `#` written `@`.
//!
//! - **Claims** ([`claim`]): a renewal first writes a claim into the record with KV v2
//!   check-and-set on the version it read, so exactly one host renews; it expires 30 s after
//!   it is made. An expired claim that had called GitLab is the fleet's journal: the next
//!   host resolves it with `GET …/self`, never by rotating the old token.
//! - **Leases** ([`leases`]): each host publishes its hand-outs under its own key; a
//!   renewal reads every host's before it revokes anything (Invariant B across hosts).
//! - **What stays on the host**: warning stamps, this host's lease mirror (so a steady
//!   `get` skips the lease write while its published lease covers the new promise), and a
//!   freshly minted token Vault did not take yet (`kept/`, 0600) — never another secret.
//!
//! One process reads a record once: the copy it read is kept ([`Fleet::cached`]) so a
//! steady `get` is one Vault read, plus a lease write when its lease needs extending.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Entry, Error, Held, State};
use crate::datadir::DataDir;
use crate::env::Env;
use crate::registry::RegistryHost;
use crate::secret::{ExposeSecret, Secret};
use crate::vault::{Config, Conflict, Vault};

pub(crate) mod claim;
pub(crate) mod leases;
mod save;

pub(crate) use claim::FleetClaim;

/// How long a renewal claim holds before another host may resolve and take it over.
pub(crate) const CLAIM_LIFETIME: SignedDuration = SignedDuration::from_secs(30);

/// How long a process may talk to Vault in all (each request is bounded much shorter).
/// (A `rotate` may wait 30 s for another host's claim before it renews and commits.)
const VAULT_BUDGET: Duration = Duration::from_secs(60);

/// A renewal claim, written into the record it renews.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct ClaimDoc {
    pub host: String,
    /// The claiming data directory's instance id: with the same `host`, a claim this
    /// directory's renewal lock proves dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub pid: u32,
    pub at: Timestamp,
    pub expires_at: Timestamp,
    /// GitLab may have been asked to renew (the claim is then a journal).
    #[serde(default)]
    pub renewing: bool,
    /// The `stored_at` of the entry being renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_at: Option<Timestamp>,
    /// An expired claim that had called GitLab, taken over and not yet resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<ClaimDoc>>,
}

/// One record as read from Vault.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub version: u64,
    pub entry: Entry,
    pub secret: Secret,
    pub claim: Option<ClaimDoc>,
    /// The registry has a standby token (`login --standby`) in `records/<key>@standby`.
    pub has_standby: bool,
}

#[derive(Deserialize)]
struct RecordJson {
    entry: Entry,
    secret: String,
    #[serde(default)]
    claim: Option<ClaimDoc>,
    #[serde(default)]
    has_standby: bool,
}

impl Record {
    fn to_json(&self) -> Value {
        let mut doc = json!({
            "entry": self.entry,
            "secret": self.secret.expose_secret(),
        });
        if let Some(claim) = &self.claim {
            doc["claim"] = json!(claim);
        }
        if self.has_standby {
            doc["has_standby"] = Value::Bool(true);
        }
        doc
    }
}

/// The fleet's records in Vault, and what this process has read of them.
pub(crate) struct Fleet {
    vault: Result<Vault, String>,
    host_id: String,
    /// This host's data directory (its lease mirror, published notes, instance id).
    dir: DataDir,
    /// The data directory's instance id, read on first use (claims).
    instance: std::sync::OnceLock<Option<String>>,
    /// Test builds: where simulated time puts Vault's clock (zero otherwise).
    vault_offset: SignedDuration,
    /// The latest copy of each record this process read or wrote.
    cache: Mutex<HashMap<String, Record>>,
    /// Claims this process holds.
    claims: Mutex<HashMap<String, claim::Held>>,
    /// A lease was published since the records were read: a renewal that started in
    /// between would not have seen it, so the record is read again before handing out.
    stale: AtomicBool,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("host_id", &self.host_id)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// The fleet `env` configures. Nothing is sent yet; a configuration error surfaces at
    /// the first use, as the one line that use prints.
    pub fn connect(env: &Env, dir: &DataDir) -> Fleet {
        let config = Config::from_env(env).map_err(|e| e.to_string());
        let host_id = config
            .as_ref()
            .map(|c| c.host_id.clone())
            .unwrap_or_default();
        let deadline = Instant::now() + VAULT_BUDGET;
        Fleet {
            vault: config.map(|c| Vault::new(c, dir.root().to_path_buf(), deadline)),
            host_id,
            dir: dir.clone(),
            instance: std::sync::OnceLock::new(),
            vault_offset: env
                .knob::<i64>(crate::env::VAULT_CLOCK_OFFSET_SECS)
                .map_or(SignedDuration::ZERO, SignedDuration::from_secs),
            cache: Mutex::default(),
            claims: Mutex::default(),
            stale: AtomicBool::new(false),
        }
    }

    pub fn vault(&self) -> Result<&Vault, Error> {
        self.vault.as_ref().map_err(|e| Error::Fleet(e.clone()))
    }

    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// This machine's clock minus Vault's (see [`Vault::skew`]).
    pub(super) fn skew(&self) -> SignedDuration {
        let measured = self
            .vault
            .as_ref()
            .map_or(SignedDuration::ZERO, Vault::skew);
        measured - self.vault_offset
    }

    /// Now on Vault's clock: a fleet's claims and leases are kept on it, so hosts whose
    /// clocks disagree still agree on when a claim expires and a lease runs out. (Measured
    /// from Vault's latest answer: call it after a request.)
    pub(super) fn vault_now(&self) -> Timestamp {
        crate::clock::now() - self.skew()
    }

    /// This data directory's instance id (see [`DataDir::instance_id`]).
    pub(super) fn instance(&self) -> Option<&str> {
        self.instance
            .get_or_init(|| self.dir.instance_id())
            .as_deref()
    }

    /// Reads `key`'s record from Vault (and keeps the copy).
    pub(super) fn read(&self, key: &str) -> Result<Option<Record>, Error> {
        let Some(found) = self.vault()?.read(&record_path(key))? else {
            self.cache_lock().remove(key);
            return Ok(None);
        };
        let parsed: RecordJson =
            serde_json::from_value(found.data).map_err(|e| Error::Unreadable(format!(
                "the record for {key} in Vault is unreadable ({e}); log in again: docker-credential-gitlab login {key}"
            )))?;
        let record = Record {
            version: found.version,
            entry: parsed.entry,
            secret: Secret::from(parsed.secret),
            claim: parsed.claim,
            has_standby: parsed.has_standby,
        };
        self.cache_lock().insert(key.to_owned(), record.clone());
        Ok(Some(record))
    }

    /// [`Fleet::read`], an unreadable record counted as none: for what replaces or removes
    /// it (`login`, `store`, `logout`) and what lists every record.
    pub(super) fn readable(&self, key: &str) -> Result<Option<Record>, Error> {
        match self.read(key) {
            Err(Error::Unreadable(_)) => Ok(None),
            other => other,
        }
    }

    /// The copy of `key`'s record this process has, else a read.
    pub(super) fn cached(&self, key: &str) -> Result<Option<Record>, Error> {
        if let Some(r) = self.cache_lock().get(key) {
            return Ok(Some(r.clone()));
        }
        self.read(key)
    }

    /// The record as it is now when a lease was published since it was read, else the copy.
    pub(super) fn current(&self, key: &str) -> Result<Option<Record>, Error> {
        if self.stale.swap(false, Ordering::SeqCst) {
            self.read(key)
        } else {
            self.cached(key)
        }
    }

    /// Writes `record` for `key` (`cas`: the version it must still be at; `Some(0)`: only
    /// if absent). On success the copy is updated to the new version.
    pub(super) fn write(
        &self,
        key: &str,
        record: &Record,
        cas: Option<u64>,
    ) -> Result<Result<u64, Conflict>, Error> {
        let written = self
            .vault()?
            .write(&record_path(key), &record.to_json(), cas)?;
        if let Ok(version) = written {
            let mut copy = record.clone();
            copy.version = version;
            self.cache_lock().insert(key.to_owned(), copy);
        }
        Ok(written)
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every record in the path (for `list`, `status`, `login`'s checks).
    pub fn snapshot(&self) -> Result<State, Error> {
        let mut state = State::default();
        state.version = crate::datadir::state::STATE_VERSION;
        for name in self.vault()?.list("records/")? {
            if name.ends_with('/') {
                continue;
            }
            let key = decode(&name);
            if let Some(record) = self.readable(&key)? {
                state.entries.insert(key, record.entry);
            }
        }
        Ok(state)
    }

    /// `key`'s entry: one read. In a fleet a token is held by its own key only.
    pub fn held(&self, key: &RegistryHost) -> Result<Option<Held>, Error> {
        Ok(self.cached(key.as_str())?.map(|r| Held {
            entry: r.entry,
            keys: vec![key.as_str().to_owned()],
        }))
    }

    /// `key`'s entry and, when it has one, its standby's: one read for a single token.
    pub fn registry(&self, key: &RegistryHost) -> Result<Option<(Held, Option<Entry>)>, Error> {
        let Some(record) = self.read(key.as_str())? else {
            return Ok(None);
        };
        let standby = if record.has_standby {
            self.read(key.standby().as_str())?.map(|r| r.entry)
        } else {
            None
        };
        let held = Held {
            entry: record.entry,
            keys: vec![key.as_str().to_owned()],
        };
        Ok(Some((held, standby)))
    }

    /// The secret of `entry` (the copy read with it when it is still that entry).
    pub fn secret(&self, key: &RegistryHost, entry: &Entry) -> Result<Option<Secret>, Error> {
        match self.cached(key.as_str())? {
            Some(r) if r.entry.stored_at == entry.stored_at => Ok(Some(r.secret)),
            _ => Ok(self.read(key.as_str())?.map(|r| r.secret)),
        }
    }

    /// The entry and secret now in Vault for `key` if they replaced `seen` (another host or
    /// process renewed). Reads again only after this process published a lease.
    pub fn changed_since(
        &self,
        key: &RegistryHost,
        seen: &Entry,
    ) -> Result<Option<(Entry, Secret)>, Error> {
        Ok(self
            .current(key.as_str())?
            .filter(|r| r.entry.stored_at != seen.stored_at)
            .map(|r| (r.entry, r.secret)))
    }
}

/// Where `key`'s record lives, relative to the fleet's path.
fn record_path(key: &str) -> String {
    format!("records/{}", encode(key))
}

/// A registry key as one Vault path segment: `/` → `~`, `#` → `@` (neither occurs in keys).
pub(super) fn encode(key: &str) -> String {
    key.replace('/', "~").replace('#', "@")
}

fn decode(name: &str) -> String {
    name.replace('~', "/").replace('@', "#")
}

/// Sleeps a little, never past `until`.
fn pause(until: Instant) {
    let left = until.saturating_duration_since(Instant::now());
    std::thread::sleep(left.min(Duration::from_millis(200)));
}

#[cfg(test)]
pub(crate) mod tests;
