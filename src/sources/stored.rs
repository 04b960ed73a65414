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
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::{handout, pair};
use crate::env::Env;
use crate::records::{self, Records};
use crate::registry::RegistryHost;
use crate::renew::RenewError;
use crate::secret::Secret;
use crate::settings::{Settings, SettingsError};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Records(#[from] records::Error),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Renew(#[from] RenewError),
    #[error(
        "the token for {host} expired at {at} and cannot renew itself; create a new token and run: docker-credential-gitlab login {host}"
    )]
    Expired { host: String, at: String },
}

/// What one hand-out works with, each read once: the records, the settings (only when a
/// policy needs them), the clock, the registry asked for and the deadline of the `get`.
pub(super) struct Handout<'a> {
    pub records: &'a Records,
    env: &'a Env,
    settings: OnceCell<Settings>,
    pub now: Timestamp,
    pub registry: &'a RegistryHost,
    pub deadline: Instant,
}

impl Handout<'_> {
    pub fn settings(&self) -> Result<&Settings, SettingsError> {
        if self.settings.get().is_none() {
            let _ = self.settings.set(Settings::load(self.env)?);
        }
        Ok(self.settings.get().expect("set above"))
    }

    /// How long a best-effort bookkeeping write may wait for the state lock.
    pub fn short_wait(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(1))
    }

    /// Warns once a day per key and topic.
    pub fn warn_once(&self, key: &RegistryHost, topic: &str, message: impl FnOnce() -> String) {
        if self.records.first_warning_today(key, topic, self.now) {
            crate::report::warn(&message());
        }
    }
}

/// The stored username and a secret valid for the promised time, if a credential is
/// stored for `host`. `deadline` bounds a renewal. With a standby pair (`login --standby`)
/// the pair policy picks which of the two tokens to hand out.
pub(super) fn get(
    records: &Records,
    env: &Env,
    host: &RegistryHost,
    deadline: Instant,
) -> Result<Option<(String, Secret)>, Error> {
    let state = records.snapshot()?;
    let Some(held) = Records::held_in(&state, host) else {
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
    match state.entries.get(host.standby().as_str()) {
        Some(second) => pair::get(&h, &held.entry, second),
        // The common case: one token. The state just read serves (one read fewer).
        None => handout::key(&h, host, Some(held)),
    }
}
