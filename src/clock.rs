//! The helper's clock. Test builds (the `fault-injection` feature) can shift it with
//! `DOCKER_CREDENTIAL_GITLAB_CLOCK_OFFSET_SECS`, together with the GitLab emulator's clock,
//! so a test can live through days of renewals in seconds.

use jiff::Timestamp;

pub fn now() -> Timestamp {
    #[cfg(feature = "fault-injection")]
    if let Some(secs) = std::env::var("DOCKER_CREDENTIAL_GITLAB_CLOCK_OFFSET_SECS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        return Timestamp::now() + jiff::SignedDuration::from_secs(secs);
    }
    Timestamp::now()
}
