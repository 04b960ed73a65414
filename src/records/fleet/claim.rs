//! Fleet-wide single flight: a renewal claim written into the record with KV v2
//! check-and-set, so of any number of hosts exactly one renews.
//!
//! - A host that finds another host's live claim waits (within its budget) and then reads
//!   what that host stored; out of time, it says which host is renewing.
//! - A claim expires [`CLAIM_LIFETIME`] after it is made. One that expired before it asked
//!   GitLab anything is simply taken over; one that had (`renewing`) is carried as
//!   `previous`, the fleet's journal, and resolved with `GET …/self` before anything else.
//! - The renewed token replaces the record with the claim gone, check-and-set on the
//!   claim's version: a host whose claim was taken over cannot overwrite the record.

use std::time::Instant;

use jiff::Timestamp;

use super::{CLAIM_LIFETIME, ClaimDoc, Fleet, Record, pause};
use crate::datadir::journal::Journal;
use crate::model::GitLabInfo;
use crate::records::{Entry, Error};
use crate::registry::RegistryHost;
use crate::secret::Secret;

/// A claim this process holds: the record's version after writing it, and the claim.
#[derive(Debug, Clone)]
pub(in crate::records) struct Held {
    version: u64,
    record: Record,
    /// The renewed token replaced the record (the claim went with it).
    done: bool,
}

/// Why no claim was taken.
#[derive(Debug)]
pub(crate) enum NotClaimed {
    /// Another process (`by`: on another host) held the claim all that time.
    Busy { by: Option<String> },
    /// The claim could not be written or read.
    Failed(String),
}

/// A held claim; dropping it releases the claim unless GitLab may have been asked.
#[derive(Debug)]
pub(crate) struct FleetClaim {
    pub(in crate::records) fleet: std::sync::Arc<Fleet>,
    pub(in crate::records) key: String,
}

impl Drop for FleetClaim {
    fn drop(&mut self) {
        self.fleet.release(&self.key);
    }
}

impl ClaimDoc {
    fn live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }

    /// What this claim leaves to resolve once it is no longer live.
    fn journal(&self) -> Option<Box<ClaimDoc>> {
        if self.renewing {
            Some(Box::new(ClaimDoc {
                previous: None,
                ..self.clone()
            }))
        } else {
            self.previous.clone()
        }
    }
}

impl Fleet {
    /// Claims the renewal of `key`, unless its record no longer holds `seen` (someone
    /// renewed it: `Ok(false)`, nothing claimed). Waits for another host's live claim
    /// until `until`.
    pub fn claim(&self, key: &str, seen: &Entry, until: Instant) -> Result<bool, NotClaimed> {
        loop {
            let record = match self.read(key) {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(false),
                Err(e) => return Err(NotClaimed::Failed(e.to_string())),
            };
            if record.entry.stored_at != seen.stored_at {
                return Ok(false);
            }
            let now = self.vault_now();
            let previous = match &record.claim {
                // Another host is renewing (or another data directory under this host id:
                // another user, a container with the same hostname). A claim of this data
                // directory is a dead process's: this one holds the directory's renewal lock.
                Some(c) if c.live(now) && !self.is_ours(c) => {
                    if Instant::now() >= until {
                        return Err(NotClaimed::Busy {
                            by: Some(c.host.clone()),
                        });
                    }
                    pause(until);
                    continue;
                }
                Some(c) => c.journal(),
                None => None,
            };
            let claimed = Record {
                claim: Some(ClaimDoc {
                    host: self.host_id.clone(),
                    instance: self.instance().map(str::to_owned),
                    pid: std::process::id(),
                    at: now,
                    expires_at: now + CLAIM_LIFETIME,
                    renewing: false,
                    stored_at: Some(record.entry.stored_at),
                    previous,
                }),
                ..record.clone()
            };
            match self.write(key, &claimed, Some(record.version)) {
                Ok(Ok(version)) => {
                    let held = Held {
                        version,
                        record: claimed,
                        done: false,
                    };
                    self.claims_lock().insert(key.to_owned(), held);
                    return Ok(true);
                }
                // Another host wrote first: look again.
                Ok(Err(_)) if Instant::now() < until => continue,
                Ok(Err(_)) => {
                    return Err(NotClaimed::Busy { by: None });
                }
                Err(e) => return Err(NotClaimed::Failed(e.to_string())),
            }
        }
    }

    /// Whether `claim` was made from this data directory (whose renewal lock this process
    /// holds while it claims).
    fn is_ours(&self, claim: &ClaimDoc) -> bool {
        claim.host == self.host_id
            && claim.instance.is_some()
            && claim.instance.as_deref() == self.instance()
    }

    /// The journal of `key`: an expired claim that had asked GitLab, held by this process's
    /// claim, or seen in the record.
    pub fn read_journal(&self, key: &str) -> Option<Journal> {
        let claim = match self.claims_lock().get(key) {
            Some(held) => held.record.claim.clone()?.previous?,
            None => {
                let record = self.cached(key).ok()??;
                let claim = record.claim?;
                if claim.live(self.vault_now()) {
                    return None;
                }
                claim.journal()?
            }
        };
        Some(Journal {
            // On this machine's clock, as the renewal frame measures it.
            started_at: claim.at + self.skew(),
            token_id: None,
            stored_at: claim.stored_at,
            pid: Some(claim.pid),
            host: (claim.host != self.host_id).then(|| claim.host.clone()),
        })
    }

    /// Whether `key`'s record carries a claim: a renewal in flight, or one to resolve.
    pub fn journal_open(&self, key: &str) -> bool {
        if self.claims_lock().contains_key(key) {
            return self.read_journal(key).is_some();
        }
        matches!(self.current(key), Ok(Some(Record { claim: Some(_), .. })))
    }

    /// Marks the held claim as having asked GitLab (the fleet's journal), renewing its
    /// lifetime. Must succeed before GitLab is asked.
    pub fn open_journal(&self, key: &str) -> Result<(), String> {
        let now = self.vault_now();
        self.update_claim(key, |c| {
            c.renewing = true;
            c.previous = None;
            c.at = now;
            c.expires_at = now + CLAIM_LIFETIME;
        })
    }

    /// The held claim no longer stands for a call to GitLab, nor for an earlier one.
    pub fn close_journal(&self, key: &str) {
        let _ = self.update_claim(key, |c| {
            c.renewing = false;
            c.previous = None;
        });
    }

    fn update_claim(&self, key: &str, change: impl FnOnce(&mut ClaimDoc)) -> Result<(), String> {
        let Some(held) = self.claims_lock().get(key).cloned() else {
            return Ok(());
        };
        if held.done {
            return Ok(());
        }
        let mut record = held.record.clone();
        if let Some(claim) = record.claim.as_mut() {
            change(claim);
        }
        match self.write(key, &record, Some(held.version)) {
            Ok(Ok(version)) => {
                self.claims_lock().insert(
                    key.to_owned(),
                    Held {
                        version,
                        record,
                        done: false,
                    },
                );
                Ok(())
            }
            Ok(Err(_)) => Err(format!(
                "the renewal claim on {key} in Vault was taken over by another host; not renewing"
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Replaces the claimed record with the renewed token (the claim goes with it).
    /// `None` when the record was removed meanwhile.
    pub fn commit(
        &self,
        host: &RegistryHost,
        token: &Secret,
        info: GitLabInfo,
    ) -> Result<Option<Entry>, Error> {
        let key = host.as_str();
        let held = self.claims_lock().get(key).cloned();
        let (base, cas) = match held {
            Some(h) => (h.record, h.version),
            None => match self.read(key)? {
                Some(r) => (r.clone(), r.version),
                None => return Ok(None),
            },
        };
        let mut entry = base.entry.clone();
        entry.stored_at = crate::clock::now();
        entry.gitlab = Some(info);
        entry.extra.remove(crate::records::REVOKED);
        let renewed = Record {
            entry: entry.clone(),
            secret: token.clone(),
            claim: None,
            ..base
        };
        match self.write(key, &renewed, Some(cas))? {
            Ok(version) => {
                if let Some(h) = self.claims_lock().get_mut(key) {
                    (h.version, h.done) = (version, true);
                }
                crate::fault::point("after-state");
                Ok(Some(entry))
            }
            Err(_) => Err(Error::Fleet(format!(
                "the renewal claim on {key} in Vault was taken over by another host before the renewed token could be written"
            ))),
        }
    }

    /// Drops this process's claim on `key`: removed from the record, unless GitLab may
    /// have been asked and the outcome is not settled (then it expires, and the next host
    /// resolves it).
    pub(super) fn release(&self, key: &str) {
        let Some(held) = self.claims_lock().remove(key) else {
            return;
        };
        let renewing = held.record.claim.as_ref().is_some_and(|c| c.renewing);
        if held.done || renewing {
            return;
        }
        let record = Record {
            claim: held.record.claim.and_then(|c| c.previous).map(|p| *p),
            ..held.record
        };
        let _ = self.write(key, &record, Some(held.version));
    }

    fn claims_lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Held>> {
        self.claims.lock().unwrap_or_else(|e| e.into_inner())
    }
}
