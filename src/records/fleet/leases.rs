//! Hand-outs across the fleet: each host publishes its own lease per registry key in
//! `leases/<key>/<host>` (so hosts never contend), and a renewal reads every host's before
//! it revokes anything.
//!
//! The steady `get` stays at one Vault read: this host keeps a mirror of what it
//! published ([`crate::datadir::leases`]), and publishes again only when the new promise
//! runs past it. It publishes with [`LEASE_SLACK`] beyond the promise, so a busy host
//! writes at most once per slack; a lease that long is only more protective.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Fleet, encode};
use crate::datadir::{DataDir, leases};
use crate::records::Error;
use crate::registry::RegistryHost;

/// How far past its promise a published lease runs.
pub(crate) const LEASE_SLACK: SignedDuration = SignedDuration::from_mins(5);

/// One host's hand-outs of one registry key.
#[derive(Debug, Serialize, Deserialize)]
struct LeaseDoc {
    host: String,
    at: Timestamp,
    until: Timestamp,
    #[serde(default)]
    count: u64,
}

/// Every host's leases on one key: the latest promise and the live hand-outs.
#[derive(Debug, Default, Clone)]
pub(crate) struct FleetLeases {
    pub until: Option<Timestamp>,
    pub live: u64,
    /// The hosts with a live lease, and until when.
    pub hosts: Vec<(String, Timestamp)>,
}

fn lease_dir(key: &str) -> String {
    format!("leases/{}/", encode(key))
}

impl Fleet {
    /// Records a hand-out through `key` at `now` promised for `promise`: in this host's
    /// mirror, and in Vault when the published lease does not cover it.
    pub fn record_handout(
        &self,
        dir: &DataDir,
        key: &RegistryHost,
        now: Timestamp,
        promise: SignedDuration,
    ) -> Result<(), Error> {
        let needed = now.checked_add(promise).unwrap_or(Timestamp::MAX);
        // What is published is for the record this host read: after a logout and a new
        // login elsewhere (every lease gone with the old record), it is published again.
        let record = self
            .cached(key.as_str())?
            .map(|r| r.entry.stored_at.to_string());
        let published_for = std::fs::read_to_string(dir.published(key)).ok();
        if published_for.is_some()
            && published_for == record
            && leases::lease_until(dir, key).is_some_and(|until| until >= needed)
        {
            leases::record_handout(dir, key, now, promise);
            return Ok(());
        }
        let until = needed.checked_add(LEASE_SLACK).unwrap_or(Timestamp::MAX);
        let count = leases::live_handouts(dir, key, now) + 1;
        // Published on Vault's clock (see [`Fleet::vault_now`]).
        let skew = self.skew();
        let doc = LeaseDoc {
            host: self.host_id.clone(),
            at: now - skew,
            until: until - skew,
            count,
        };
        let path = format!("{}{}", lease_dir(key.as_str()), self.host_id);
        let doc = serde_json::to_value(&doc).expect("a lease serialises");
        let _ = self.vault()?.write(&path, &doc, None)?;
        leases::record_handout(dir, key, now, until.duration_since(now));
        if let Some(record) = record {
            let path = dir.published(key);
            if crate::private_file::write(&path, &record).is_err()
                && let Some(parent) = path.parent()
            {
                let _ = crate::private_file::create_dir(parent);
                let _ = crate::private_file::write(&path, &record);
            }
        }
        self.stale.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Every host's leases on `keys` at `now`.
    pub fn leases(&self, keys: &[String], now: Timestamp) -> Result<FleetLeases, Error> {
        let vault = self.vault()?;
        let mut all = FleetLeases::default();
        for key in keys {
            let dir = lease_dir(key);
            let hosts = vault.list(&dir)?;
            // Leases are on Vault's clock; what this returns is on this machine's.
            let skew = self.skew();
            for host in hosts {
                let Some(found) = vault.read(&format!("{dir}{host}"))? else {
                    continue;
                };
                // An unreadable lease counts as a live one: the safe reading.
                let (until, count) = match serde_json::from_value::<LeaseDoc>(found.data) {
                    Ok(l) => (l.until + skew, l.count.max(1)),
                    Err(_) => (now + crate::settings::DEFAULT_MIN_VALIDITY, 1),
                };
                if now < until {
                    all.live += count;
                    all.hosts.push((host.clone(), until));
                }
                all.until = all.until.max(Some(until));
            }
        }
        Ok(all)
    }

    /// Forgets every host's leases on `key` (logout).
    pub fn forget_leases(&self, key: &str) -> Result<(), Error> {
        let vault = self.vault()?;
        let dir = lease_dir(key);
        for host in vault.list(&dir)? {
            vault.destroy(&format!("{dir}{host}"))?;
        }
        Ok(())
    }
}
