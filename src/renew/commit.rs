//! Step 5 of a renewal: the new token recorded for every key that held the old one, or,
//! when the store or the state lock refuses it, kept in the data directory and handed out
//! all the same. A minted token is never lost.

use std::time::Instant;

use super::Flight;
use crate::datadir::LOCK_DEADLINE;
use crate::model::GitLabInfo;
use crate::records::{Entry, Kept};
use crate::secret::Secret;

/// Stores `token` and returns the entry to hand out with it.
pub(super) fn commit(flight: &Flight<'_>, token: &Secret, info: GitLabInfo) -> Entry {
    let (records, host, old) = (flight.records, flight.host, &flight.entry);
    // The lock wait may not push the hand-out past the get deadline.
    let wait = flight
        .deadline
        .saturating_duration_since(Instant::now())
        .min(LOCK_DEADLINE);
    let stored = records.commit_renewal(wait, host, old, token, info.clone());
    let handed_out = Entry {
        stored_at: crate::clock::now(),
        gitlab: Some(info.clone()),
        ..old.clone()
    };
    let error = match stored {
        Ok(Some(entry)) => return entry,
        // Logged out meanwhile: not brought back; this hand-out still gets the new token.
        Ok(None) => return handed_out,
        Err(e) => e,
    };
    let holders = match records.snapshot() {
        Ok(state) => records
            .sharing(host, old)
            .into_iter()
            .filter_map(|k| state.entries.get(&k).map(|e| (k, e.stored_at)))
            .collect(),
        Err(_) => [(host.as_str().to_owned(), old.stored_at)].into(),
    };
    let kept = records.keep(
        &flight.group,
        &Kept {
            username: old.username.clone(),
            token: token.clone(),
            info,
            keys: holders,
        },
    );
    crate::report::warn(&format!(
        "the renewed token for {host} could not be stored ({error}); {}",
        match kept {
            Ok(()) => "it is kept in the data directory until the store takes it",
            Err(_) => "and could not be kept either: log in again after this push",
        }
    ));
    handed_out
}
