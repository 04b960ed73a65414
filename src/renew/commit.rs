//! Step 5 of a renewal. The moment GitLab answers, the new token is kept in the data
//! directory (0600, fsync'd) before anything else, so a crash from then on loses nothing:
//! the next `get` finds it and moves it into the store. Then it is recorded for every key
//! that held the old one, and the kept copy goes. When the store or the state lock refuses
//! it, the kept copy stays and the token is handed out all the same. A minted token is
//! never lost.

use std::time::Instant;

use super::Flight;
use crate::datadir::LOCK_DEADLINE;
use crate::model::GitLabInfo;
use crate::records::{Entry, Kept};
use crate::secret::Secret;

/// Keeps `token`, stores it, and returns the entry to hand out with it.
pub(super) fn commit(flight: &Flight<'_>, token: &Secret, info: GitLabInfo) -> Entry {
    let (records, host, old) = (flight.records, flight.host, &flight.entry);
    let kept = keep(flight, token, &info);
    crate::fault::point("after-rotate-response");
    // The lock wait may not push the hand-out past the get deadline.
    let wait = flight
        .deadline
        .saturating_duration_since(Instant::now())
        .min(LOCK_DEADLINE);
    let stored = records.commit_renewal(wait, host, old, token, info.clone());
    let handed_out = Entry {
        stored_at: crate::clock::now(),
        gitlab: Some(info),
        ..old.clone()
    };
    let error = match stored {
        Ok(Some(entry)) => {
            records.drop_kept(&flight.group);
            return entry;
        }
        // Logged out meanwhile: not brought back; this hand-out still gets the new token.
        Ok(None) => {
            records.drop_kept(&flight.group);
            return handed_out;
        }
        Err(e) => e,
    };
    crate::report::warn(&format!(
        "the renewed token for {host} could not be stored ({error}); {}",
        match kept {
            Ok(()) => "it is kept in the data directory until the store takes it",
            Err(_) => "and could not be kept either: log in again after this push",
        }
    ));
    handed_out
}

/// Keeps `token` for every key that held the old one (with the `stored_at` it had).
fn keep(flight: &Flight<'_>, token: &Secret, info: &GitLabInfo) -> std::io::Result<()> {
    let (records, host, old) = (flight.records, flight.host, &flight.entry);
    let holders = records.holders(host, old);
    records.keep(
        &flight.group,
        &Kept {
            username: old.username.clone(),
            token: token.clone(),
            info: info.clone(),
            keys: holders,
        },
    )
}
