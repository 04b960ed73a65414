//! The helper's clock. Test builds (the `fault-injection` feature) can shift it with
//! `DOCKER_CREDENTIAL_GITLAB_CLOCK_OFFSET_SECS`, together with the GitLab emulator's clock,
//! so a test can live through days of renewals in seconds.

use jiff::Timestamp;

use crate::env::{self, Env};

pub(crate) fn now() -> Timestamp {
    match Env::process().knob::<i64>(env::CLOCK_OFFSET_SECS) {
        Some(secs) => Timestamp::now() + jiff::SignedDuration::from_secs(secs),
        None => Timestamp::now(),
    }
}
