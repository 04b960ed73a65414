//! The stored source: a credential `login` or `store` saved for the host, handed out
//! through the refresh policy.
//!
//! The steady path is: read the state file, one `stat` (is a renewal journal open?), one
//! keychain call, one lease write. Credentials from `login` carry an expiry, so the policy
//! may renew them first (the only time this takes a lock or talks to GitLab); plain
//! `docker login` entries are handed out as they are.
//!
//! `get` exits 0 only with a secret that is valid now and for the promise: a renewal whose
//! outcome is unknown, or a token another process is rotating, is an error, never a
//! hand-out of a token that may already be revoked.

use std::cell::OnceCell;
use std::time::Instant;

use super::handout::{self, Handout};
use super::pair;
use crate::env::Env;
use crate::records::Records;
use crate::registry::RegistryHost;
use crate::secret::Secret;

pub(crate) use super::handout::Error;

/// The stored username and a secret valid for the promised time, if a credential is
/// stored for `host`. `deadline` bounds a renewal. With a standby pair (`login --standby`)
/// the pair policy picks which of the two tokens to hand out.
pub(super) fn get(
    records: &Records,
    env: &Env,
    host: &RegistryHost,
    deadline: Instant,
) -> Result<Option<(String, Secret)>, Error> {
    let Some((held, standby)) = records.registry(host)? else {
        return Ok(None);
    };
    let h = Handout {
        records,
        env,
        settings: OnceCell::new(),
        now: crate::clock::now(),
        registry: host,
        deadline,
    };
    match standby {
        Some(second) => pair::get(&h, &held.entry, &second),
        // The common case: one token. The state just read serves (one read fewer).
        None => handout::key(&h, host, Some(held)),
    }
}
