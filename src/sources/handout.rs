//! Handing out one stored token (a registry's own, or its standby): a kept token first,
//! then the refresh policy (renewing first when it says so), then the lease, then whatever
//! a renewal elsewhere changed meanwhile.

use std::cell::OnceCell;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::env::Env;
use crate::model::GitLabInfo;
use crate::model::stored_secret::handed_out;
use crate::policy::{self, Decision};
use crate::records::{self, Entry, Held, Records, Revoked};
use crate::registry::RegistryHost;
use crate::renew::{self, Promise, RenewError};
use crate::secret::Secret;
use crate::settings::{Settings, SettingsError, describe};

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
    #[error(
        "the token for {host} was rotated or revoked elsewhere ({reason}; learnt at {at}); it is not handed out again. \
         Log in again with the current token, or create a new one: docker-credential-gitlab login {host}"
    )]
    Revoked {
        host: String,
        reason: String,
        at: String,
    },
}

impl Error {
    /// Whether this says the token is dead (known before, or learnt just now).
    pub fn token_is_dead(&self) -> bool {
        match self {
            Error::Revoked { .. } => true,
            Error::Renew(e) => e.dead_token().is_some(),
            _ => false,
        }
    }

    /// The line for `key`'s entry marked dead ([`Records::mark_revoked`]).
    fn revoked(key: &RegistryHost, mark: &Revoked) -> Error {
        Error::Revoked {
            host: key.to_string(),
            reason: mark.reason.clone(),
            at: mark.learnt_at(),
        }
    }
}

/// What one hand-out works with, each read once: the records, the settings (only when a
/// policy needs them), the clock, the registry asked for and the deadline of the `get`.
pub(super) struct Handout<'a> {
    pub records: &'a Records,
    pub env: &'a Env,
    pub settings: OnceCell<Settings>,
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

/// One token: `key` (the registry itself, or its standby) of `h.registry`. `held`: its
/// entry and its token's keys, when the caller has just read them.
pub(super) fn key(
    h: &Handout<'_>,
    key: &RegistryHost,
    held: Option<Held>,
) -> Result<Option<(String, Secret)>, Error> {
    let mut held = match held {
        Some(held) => held,
        None => match h.records.held(key)? {
            Some(held) => held,
            None => return Ok(None),
        },
    };
    // Lock, journal and kept copy go by the token's group (every key holding it).
    let mut group = held.group();
    // A token GitLab minted that did not reach the store last time: it is the live one
    // (even while the store is still away), and goes through the policy like any other.
    if held.entry.gitlab.is_some() && h.records.kept_exists(&group) {
        match adopt_kept(h, key, &group, &held.entry) {
            Some(KeptToken::Stored) => {
                let Some(now_held) = h.records.held(key)? else {
                    return Ok(None);
                };
                (held, group) = (now_held.clone(), now_held.group());
            }
            Some(KeptToken::NotStored(kept)) => {
                return kept_handout(h, key, &held, *kept).map(Some);
            }
            None => {}
        }
    }
    // Known dead (learnt by an earlier run): refused before any keychain call or request.
    if let Some(mark) = held.entry.revoked() {
        return Err(Error::revoked(key, &mark));
    }
    let Some(secret) = h.records.secret(key, &held.entry)? else {
        return Ok(None);
    };
    let Some(info) = held.entry.gitlab.clone() else {
        return Ok(Some((held.entry.username, secret)));
    };
    // A renewal that learns the token is dead marks it: no later `get` hands it out, and
    // this one already says what every later one will.
    let learnt = |e: Error, seen: &Entry| match e {
        Error::Renew(r) => match r.dead_token() {
            Some(reason) => {
                r.mark_if_dead(h.records, h.short_wait(), key, seen);
                // The mark as recorded (its time is the one later lines show).
                let recorded = h.records.held(key).ok().flatten();
                let mark = recorded.and_then(|held| held.entry.revoked());
                let mark = mark.unwrap_or(Revoked {
                    at: crate::clock::now(),
                    reason,
                    stored_at: seen.stored_at,
                });
                Error::revoked(key, &mark)
            }
            None => Error::Renew(r),
        },
        other => other,
    };
    let (mut entry, mut secret, renewed_here) =
        apply_policy(h, key, &held, &info, secret).map_err(|e| learnt(e, &held.entry))?;
    // The lease first, then the journal check: a rotation that started meanwhile either
    // sees this lease and stands down, or has its journal seen here.
    let min_validity = h.settings()?.min_validity(h.registry.as_str());
    h.records.record_handout(key, h.now, min_validity)?;
    if h.records.journal_open(&group)
        && let Some(renewed) = renew::resolve_open_journal(h.records, key, &entry, h.deadline)
            .map_err(|e| learnt(Error::Renew(e), &entry))?
    {
        (entry, secret) = (renewed.entry, renewed.secret);
    }
    // A rotation elsewhere that finished between the secret read above and the lease: its
    // journal is gone, but the entry changed. Hand out what it stored.
    if !renewed_here && let Some(changed) = h.records.changed_since(key, &entry)? {
        (entry, secret) = changed;
    }
    let kind = entry.gitlab.as_ref().map(|g| g.kind);
    Ok(Some((entry.username, handed_out(kind, &secret))))
}

/// Decides with the policy and renews when it says so. Returns the entry and secret to hand
/// out, and whether they were renewed here.
fn apply_policy(
    h: &Handout<'_>,
    key: &RegistryHost,
    held: &Held,
    info: &GitLabInfo,
    secret: Secret,
) -> Result<(Entry, Secret, bool), Error> {
    let settings = h.settings()?;
    let min_validity = settings.min_validity(h.registry.as_str());
    // A hand-out through any key holding the token protects it.
    let lease = h.records.lease_until_any(&held.keys);
    let mut facts = policy::Facts::of(info, min_validity, settings.early_renewal(), lease, h.now);
    // This host's leases decide the steady path; an early renewal also waits for every
    // other host's, read only now (in a fleet: one Vault list and read per host; on one
    // machine they are this host's, already counted).
    if policy::decide(&facts) == (Decision::Renew { hard: false }) {
        let everywhere = h.records.leases_everywhere(&held.keys, h.now)?;
        let lease = lease.max(everywhere.until);
        facts = policy::Facts::of(info, min_validity, settings.early_renewal(), lease, h.now);
    }
    let hard = match policy::decide(&facts) {
        Decision::HandOut => return Ok((held.entry.clone(), secret, false)),
        Decision::HandOutExpiring | Decision::PromiseTooLong => {
            warn_expiring(h, key, info, &facts)?;
            return Ok((held.entry.clone(), secret, false));
        }
        Decision::Renew { hard } => hard,
    };
    let promise = Promise {
        min_validity,
        early_renewal: settings.early_renewal(),
        hard,
    };
    // In the hard window a rotation revokes hand-outs still inside their promise.
    let cut = h
        .records
        .leases_everywhere(&held.keys, h.now)
        .map_or(0, |l| l.live);
    match renew::renew(h.records, key, &held.entry, promise, h.deadline) {
        Ok(renewed) => {
            if renewed.rotated_here && cut > 0 {
                announce_cut(h, key, cut);
            }
            if let Some(unkeepable) = policy::unkeepable(info, min_validity) {
                warn_short_renewal(h, key, &renewed.entry, unkeepable);
            }
            Ok((renewed.entry, renewed.secret, true))
        }
        // Nothing that worked before is lost: a still-valid token is served when the
        // renewal cleanly did not happen.
        Err(e) if e.old_secret_still_good() && info.expires_at.is_none_or(|t| t > h.now) => {
            h.warn_once(key, "renewal", || {
                format!(
                    "{e}; handing out the current token, which expires {}",
                    describe_expiry(info, h.now)
                )
            });
            Ok((held.entry.clone(), secret, false))
        }
        Err(e) => Err(e.into()),
    }
}

/// A token that dies within `min_validity` and that renewing cannot help: handed out with a
/// warning once a day, unless it has already expired.
fn warn_expiring(
    h: &Handout<'_>,
    key: &RegistryHost,
    info: &GitLabInfo,
    facts: &policy::Facts,
) -> Result<(), Error> {
    if let Some(at) = info.expires_at.filter(|t| *t <= h.now) {
        return Err(Error::Expired {
            host: key.to_string(),
            at: at.to_string(),
        });
    }
    let expires = describe_expiry(info, h.now);
    match policy::unkeepable(info, facts.min_validity) {
        // Once per token: renewing it again would not help.
        Some(unkeepable) => warn_once_per_token(h, key, info, || {
            format!(
                "the token for {key} expires {expires}; {unkeepable}, so renewing cannot keep that promise: \
                 lower DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY"
            )
        }),
        None => h.warn_once(key, "expiry", || {
            format!(
                "the token for {key} expires {expires}, sooner than the {} a push may need, and it cannot renew itself; \
                 create a token with the self_rotate scope and run `docker-credential-gitlab login {key}`",
                describe(facts.min_validity),
            )
        }),
    }
    Ok(())
}

/// Warns about a `min_validity` no renewal keeps, once per token (its expiry names it).
fn warn_once_per_token(
    h: &Handout<'_>,
    key: &RegistryHost,
    info: &GitLabInfo,
    message: impl FnOnce() -> String,
) {
    let stamp = info.expires_at.map(|t| t.to_string()).unwrap_or_default();
    if h.records.first_warning(key, "unkeepable", &stamp) {
        crate::report::warn(&message());
    }
}

/// Renewed, but no renewal keeps `min_validity`: said once per token.
fn warn_short_renewal(
    h: &Handout<'_>,
    key: &RegistryHost,
    renewed: &Entry,
    unkeepable: policy::Unkeepable,
) {
    let Some(info) = &renewed.gitlab else {
        return;
    };
    warn_once_per_token(h, key, info, || {
        format!(
            "renewed the token for {key}, which now expires {}; {unkeepable}, so this hand-out \
             cannot keep that promise: lower DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY",
            describe_expiry(info, h.now)
        )
    });
}

/// A renewal in the hard window revoked hand-outs still inside their promise.
fn announce_cut(h: &Handout<'_>, key: &RegistryHost, cut: u64) {
    let registry = h.registry;
    h.records.record_cut(key, h.now, cut);
    h.warn_once(key, "cut", || {
        format!(
            "renewing the token for {registry} revoked it under {cut} hand-out(s) still inside their promise \
             (it had to renew within min_validity of their hand-out, so no moment was safe); \
             add a second token and renewals never cut a push: \
             docker-credential-gitlab login {registry} --standby"
        )
    });
}

/// What became of a kept token that is `key`'s live one.
enum KeptToken {
    /// In the store now: hand out from the store, as always.
    Stored,
    /// The store does not take it yet: hand it out from the data directory.
    NotStored(Box<records::Kept>),
}

/// Moves a kept token into the store, as long as `key` still holds what it held when the
/// token was kept (not logged in again since). `None` when it is not `key`'s.
fn adopt_kept(
    h: &Handout<'_>,
    key: &RegistryHost,
    group: &RegistryHost,
    entry: &Entry,
) -> Option<KeptToken> {
    let kept = h.records.kept(group)?;
    if kept.keys.get(key.as_str()) != Some(&entry.stored_at) {
        // Obsolete for this key; once no key it was kept for still holds the old token, it
        // is obsolete altogether.
        let state = h.records.snapshot().ok()?;
        if kept
            .keys
            .iter()
            .all(|(k, at)| state.entries.get(k).is_none_or(|e| e.stored_at != *at))
        {
            h.records.drop_kept(group);
        }
        return None;
    }
    // Moving it is best effort (it is handed out either way): a short wait for the lock.
    match h.records.adopt(h.short_wait(), group, &kept) {
        Ok(_) => Some(KeptToken::Stored),
        Err(e) => {
            h.warn_once(key, "kept", || {
                format!(
                    "the renewed token for {} is kept in the data directory; the store does not take it yet: {e}",
                    h.registry
                )
            });
            Some(KeptToken::NotStored(Box::new(kept)))
        }
    }
}

/// A kept token the store does not take yet, through the policy: handed out when it keeps
/// the promise, with a warning when it does not (it cannot be renewed before the store
/// holds it), never once it has expired.
fn kept_handout(
    h: &Handout<'_>,
    key: &RegistryHost,
    held: &Held,
    kept: records::Kept,
) -> Result<(String, Secret), Error> {
    let settings = h.settings()?;
    let min_validity = settings.min_validity(h.registry.as_str());
    let lease = h.records.lease_until_any(&held.keys);
    let info = &kept.info;
    let facts = policy::Facts::of(info, min_validity, settings.early_renewal(), lease, h.now);
    match policy::decide(&facts) {
        Decision::HandOut => {}
        Decision::HandOutExpiring | Decision::PromiseTooLong => {
            warn_expiring(h, key, info, &facts)?
        }
        Decision::Renew { .. } => {
            if let Some(at) = info.expires_at.filter(|t| *t <= h.now) {
                return Err(Error::Expired {
                    host: key.to_string(),
                    at: at.to_string(),
                });
            }
            h.warn_once(key, "kept-due", || {
                format!(
                    "the renewed token for {key} is due for renewal, which waits until the store takes it; \
                     handing it out, it expires {}",
                    describe_expiry(info, h.now)
                )
            });
        }
    }
    h.records.record_handout(key, h.now, min_validity)?;
    Ok((
        held.entry.username.clone(),
        handed_out(Some(info.kind), &kept.token),
    ))
}

fn describe_expiry(info: &GitLabInfo, now: jiff::Timestamp) -> String {
    match info.expires_at {
        None => "never".into(),
        Some(t) => format!("at {t} (in {})", describe(t.duration_since(now))),
    }
}
