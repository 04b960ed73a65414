//! The parts of a record besides the entry and its secret: hand-outs (leases), the journal
//! of a renewal in flight, a kept token, the renewal lock, once-a-day warning stamps.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

use super::{Journal, Kept, Records, TokenLock};
use crate::datadir::leases;
use crate::registry::RegistryHost;

impl Records {
    /// Records a hand-out through `key` at `now`, promised valid for `promise`.
    pub fn record_handout(&self, key: &RegistryHost, now: Timestamp, promise: SignedDuration) {
        leases::record_handout(&self.dir, key, now, promise);
    }

    /// Until when the latest promise through `key` runs.
    pub fn lease_until(&self, key: &RegistryHost) -> Option<Timestamp> {
        leases::lease_until(&self.dir, key)
    }

    /// The latest promise over every key holding one token.
    pub fn lease_until_any(&self, keys: &[String]) -> Option<Timestamp> {
        leases::lease_until_any(&self.dir, keys)
    }

    /// Hand-outs still inside their promise, over every key holding the token.
    pub fn live_handouts_any(&self, keys: &[String], now: Timestamp) -> u64 {
        leases::live_handouts_any(&self.dir, keys, now)
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

    /// Takes the renewal lock of the token `group`, waiting until `until` at most.
    pub fn claim(&self, group: &RegistryHost, until: Instant) -> Result<Option<TokenLock>, String> {
        self.dir.lock_token(group, until)
    }

    /// Records that a renewal of the token `group` (its id, and the `stored_at` of the
    /// entry being renewed) starts now.
    pub fn open_journal(
        &self,
        group: &RegistryHost,
        token_id: Option<u64>,
        stored_at: Timestamp,
    ) -> Result<(), String> {
        self.dir.open_journal(
            group,
            &Journal {
                started_at: crate::clock::now(),
                token_id,
                stored_at: Some(stored_at),
                pid: Some(std::process::id()),
            },
        )
    }

    pub fn read_journal(&self, group: &RegistryHost) -> Option<Journal> {
        self.dir.read_journal(group)
    }

    pub fn journal_open(&self, group: &RegistryHost) -> bool {
        self.dir.journal_open(group)
    }

    pub fn close_journal(&self, group: &RegistryHost) {
        self.dir.close_journal(group);
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
