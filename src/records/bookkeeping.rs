//! The parts of a record besides the entry and its secret: hand-outs (leases), the journal
//! of a renewal in flight, a kept token, the renewal claim, once-a-day warning stamps.
//! Leases, the journal and the claim are a fleet's in Vault; warning stamps, cuts and a
//! kept token stay on the host.

use std::sync::Arc;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

use super::fleet::FleetClaim;
use super::{Entry, Error, FleetLeases, Journal, Kept, NotClaimed, Records, TokenLock};
use crate::datadir::leases;
use crate::registry::RegistryHost;

/// The right to renew a token: this host's renewal lock, and in a fleet the claim in Vault.
/// Dropping it releases both.
#[derive(Debug)]
pub(crate) struct Claim {
    _fleet: Option<FleetClaim>,
    _local: TokenLock,
}

impl Records {
    /// Records a hand-out through `key` at `now`, promised valid for `promise`. A fleet
    /// publishes it in Vault when this host's published lease does not cover it; that write
    /// failing fails the hand-out (a renewal elsewhere could not see it).
    pub fn record_handout(
        &self,
        key: &RegistryHost,
        now: Timestamp,
        promise: SignedDuration,
    ) -> Result<(), Error> {
        match &self.fleet {
            Some(f) => f.record_handout(&self.dir, key, now, promise),
            None => {
                leases::record_handout(&self.dir, key, now, promise);
                Ok(())
            }
        }
    }

    /// Until when the latest promise through `key` runs (on this host).
    pub fn lease_until(&self, key: &RegistryHost) -> Option<Timestamp> {
        leases::lease_until(&self.dir, key)
    }

    /// The latest promise over every key holding one token (on this host).
    pub fn lease_until_any(&self, keys: &[String]) -> Option<Timestamp> {
        leases::lease_until_any(&self.dir, keys)
    }

    /// The leases on every key holding a token, over every host that uses these records:
    /// what a renewal must respect. (On one machine, the same as this host's.)
    pub fn leases_everywhere(&self, keys: &[String], now: Timestamp) -> Result<FleetLeases, Error> {
        match &self.fleet {
            Some(f) => f.leases(keys, now),
            None => Ok(FleetLeases {
                until: leases::lease_until_any(&self.dir, keys),
                live: leases::live_handouts_any(&self.dir, keys, now),
                hosts: Vec::new(),
            }),
        }
    }

    /// Records that a renewal revoked `count` hand-outs inside their promise.
    pub fn record_cut(&self, key: &RegistryHost, now: Timestamp, count: u64) {
        leases::record_cut(&self.dir, key, now, count);
    }

    /// The last renewal that cut live hand-outs through `key`: when, and how many.
    pub fn last_cut(&self, key: &RegistryHost) -> Option<(Timestamp, u64)> {
        leases::last_cut(&self.dir, key)
    }

    /// True once per UTC day per key and topic.
    pub fn first_warning_today(&self, key: &RegistryHost, topic: &str, now: Timestamp) -> bool {
        leases::first_warning_today(&self.dir, key, topic, now)
    }

    /// True the first time `topic` is warned about for `key` with `stamp` (e.g. a token's
    /// expiry: once per token).
    pub fn first_warning(&self, key: &RegistryHost, topic: &str, stamp: &str) -> bool {
        leases::first_warning(&self.dir, key, topic, stamp)
    }

    /// Claims the renewal of the token `group` whose entry was `seen`, waiting until
    /// `until` at most: this host's renewal lock, then (a fleet) the claim in Vault. A
    /// fleet takes no claim when the record no longer holds `seen` (renewed meanwhile).
    pub fn claim(
        &self,
        group: &RegistryHost,
        seen: &Entry,
        until: Instant,
    ) -> Result<Claim, NotClaimed> {
        let local = self
            .dir
            .lock_token(group, until)
            .map_err(NotClaimed::Failed)?
            .ok_or(NotClaimed::Busy { by: None })?;
        let fleet = match &self.fleet {
            Some(f) => f.claim(group.as_str(), seen, until)?.then(|| FleetClaim {
                fleet: Arc::clone(f),
                key: group.as_str().to_owned(),
            }),
            None => None,
        };
        Ok(Claim {
            _fleet: fleet,
            _local: local,
        })
    }

    /// Records that a renewal of the token `group` (its id, and the `stored_at` of the
    /// entry being renewed) starts now. A fleet marks its claim as the journal.
    pub fn open_journal(
        &self,
        group: &RegistryHost,
        token_id: Option<u64>,
        stored_at: Timestamp,
    ) -> Result<(), String> {
        if let Some(f) = &self.fleet {
            return f.open_journal(group.as_str());
        }
        self.dir.open_journal(
            group,
            &Journal {
                started_at: crate::clock::now(),
                token_id,
                stored_at: Some(stored_at),
                pid: Some(std::process::id()),
                host: None,
            },
        )
    }

    pub fn read_journal(&self, group: &RegistryHost) -> Option<Journal> {
        match &self.fleet {
            Some(f) => f.read_journal(group.as_str()),
            None => self.dir.read_journal(group),
        }
    }

    pub fn journal_open(&self, group: &RegistryHost) -> bool {
        match &self.fleet {
            Some(f) => f.journal_open(group.as_str()),
            None => self.dir.journal_open(group),
        }
    }

    pub fn close_journal(&self, group: &RegistryHost) {
        match &self.fleet {
            // While this host keeps a minted token Vault did not take, the fleet's journal
            // is all that tells other hosts the record's token may be rotated: it stays.
            Some(_) if self.kept_exists(group) => {}
            Some(f) => f.close_journal(group.as_str()),
            None => self.dir.close_journal(group),
        }
    }

    /// Keeps a minted token the store refused (0600 in the data directory).
    pub fn keep(&self, group: &RegistryHost, kept: &Kept) -> std::io::Result<()> {
        crate::datadir::kept::keep(&self.dir, group, kept)
    }

    pub fn kept(&self, group: &RegistryHost) -> Option<Kept> {
        crate::datadir::kept::load(&self.dir, group)
    }

    pub fn kept_exists(&self, group: &RegistryHost) -> bool {
        crate::datadir::kept::exists(&self.dir, group)
    }

    pub fn drop_kept(&self, group: &RegistryHost) {
        crate::datadir::kept::remove(&self.dir, group);
    }
}
