//! Renewing a stored credential: the frame every method runs in.
//!
//! A renewal revokes the old secret, and GitLab's reuse detection revokes the *whole family*
//! if an already-rotated token is ever presented to the rotate endpoint again. So a renewal
//! is these steps, each a small function below:
//!
//! 1. **Claim** ([`Flight::claim`]). One renewal lock per token (shared by every registry
//!    key holding it) serialises renewals across processes; the others wait, as long as a
//!    renewal can take within the `get` deadline, and then read the new secret. A process
//!    that cannot get the lock in time fails; it never hands out the secret being rotated.
//! 2. **Confirm** ([`Flight::confirm`]). `GET …/self` (never the rotate endpoint) says
//!    whether the token is still the live one. Revoked without a journal: it was rotated
//!    elsewhere (another machine, or a copy under another key): never call rotate.
//! 3. **Journal** ([`Flight::open_journal`]). Before calling GitLab the attempt is recorded,
//!    and only with a whole request deadline left. It is removed once the outcome is known
//!    and stored; an ambiguous outcome keeps it, and every later `get` resolves it with
//!    `…/self` before handing anything out.
//! 4. **Method** ([`method::Method::renew`]): the one request that renews.
//! 5. **Commit** ([`commit`]). The moment GitLab answers, the new secret is kept in the
//!    data directory (a crash from then on loses nothing), then it goes to the store (for
//!    every entry holding the token), then the metadata, then the kept copy goes. If the
//!    store or the lock refuses, the kept copy stays and the token is handed out.

use std::time::{Duration, Instant};

use jiff::SignedDuration;
use reqwest::Url;

use crate::env::{self, Env};
use crate::gitlab::http::Http;
use crate::model::{GitLabInfo, TokenKind};
use crate::records::{self, Entry, Records};
use crate::registry::RegistryHost;
use crate::secret::Secret;

mod commit;
mod errors;
pub(crate) mod method;
mod oauth;
mod pat;

pub(crate) use errors::RenewError;
use method::{Check, Method, Outcome};

/// After an ambiguous rotate, a late answer may still be processed: for this long a
/// "still active" from `…/self` is trusted for handing out, but not for rotating again.
const SETTLE: SignedDuration = SignedDuration::from_secs(60);

/// [`SETTLE`]; test builds may shorten it (`DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS`).
fn settle() -> SignedDuration {
    Env::process()
        .knob(env::SETTLE_SECS)
        .map_or(SETTLE, SignedDuration::from_secs)
}

/// What a renewal produced.
#[derive(Debug)]
pub(crate) struct Renewed {
    pub entry: Entry,
    pub secret: Secret,
    /// False when another process had already renewed it (single flight).
    pub rotated_here: bool,
}

/// What the caller promises with the secret it is about to hand out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Promise {
    pub min_validity: SignedDuration,
    pub early_renewal: SignedDuration,
    /// The current secret dies within `min_validity` anyway (no lease can stop it).
    pub hard: bool,
}

/// Renews the token for `host`, unless another process already replaced `seen`.
pub(crate) fn renew(
    records: &Records,
    host: &RegistryHost,
    seen: &Entry,
    promise: Promise,
    deadline: Instant,
) -> Result<Renewed, RenewError> {
    let flight = Flight::claim(records, host, seen, deadline)?;
    if flight.changed {
        return Ok(flight.already_renewed());
    }
    let call = flight.call()?;
    match call.info.kind {
        TokenKind::OauthToken => flight.run(&call, &oauth::OAuth, promise),
        _ => flight.run(&call, &pat::Pat, promise),
    }
}

/// Resolves an interrupted renewal of `host` before anything is handed out: waits for a
/// renewal in flight, then asks GitLab whether the stored token is still the live one.
/// `Ok(Some(renewed))` when another process finished a renewal meanwhile.
pub(crate) fn resolve_open_journal(
    records: &Records,
    host: &RegistryHost,
    seen: &Entry,
    deadline: Instant,
) -> Result<Option<Renewed>, RenewError> {
    let flight = Flight::claim(records, host, seen, deadline)?;
    let Some(open) = records.read_journal(&flight.group) else {
        // Finished by whoever held the lock.
        return Ok(flight.changed.then(|| flight.already_renewed()));
    };
    let call = flight.call()?;
    let check = match call.info.kind {
        TokenKind::OauthToken => call.check(&oauth::OAuth, &flight.secret),
        _ => call.check(&pat::Pat, &flight.secret),
    };
    match check {
        Check::Active => {
            if crate::clock::now().duration_since(open.started_at) >= settle() {
                records.close_journal(&flight.group);
            }
            Ok(None)
        }
        Check::Revoked(_) => Err(lost(host, &open)),
        Check::Expired(detail) | Check::Unknown(detail) => Err(RenewError::Unresolved {
            host: host.to_string(),
            detail,
        }),
    }
}

/// A renewal in flight: the token's lock is held, and its record read under it.
struct Flight<'a> {
    records: &'a Records,
    host: &'a RegistryHost,
    group: RegistryHost,
    entry: Entry,
    secret: Secret,
    keys: Vec<String>,
    /// Another process renewed the token since the caller read `seen`.
    changed: bool,
    deadline: Instant,
    _claim: records::Claim,
}

/// What talking to GitLab about the token takes.
struct Call {
    info: GitLabInfo,
    gitlab: Url,
    http: Http,
}

impl Call {
    fn check<M: Method>(&self, method: &M, secret: &Secret) -> Check {
        method.check(&self.http, &self.gitlab, secret)
    }
}

impl<'a> Flight<'a> {
    /// Step 1: the token's lock, then its record read again under it (single flight:
    /// whoever held the lock before us may have renewed already).
    fn claim(
        records: &'a Records,
        host: &'a RegistryHost,
        seen: &Entry,
        deadline: Instant,
    ) -> Result<Flight<'a>, RenewError> {
        let group = records.group(host, seen);
        // Wait as long as a renewal can take, within the caller's deadline.
        let until = deadline
            .checked_sub(Duration::from_millis(200))
            .unwrap_or(deadline);
        let claim = records.claim(&group, seen, until).map_err(|e| match e {
            records::NotClaimed::Failed(detail) => RenewError::Cannot(detail),
            records::NotClaimed::Busy { by: None } => RenewError::Busy {
                host: host.to_string(),
            },
            records::NotClaimed::Busy { by: Some(by) } => RenewError::BusyElsewhere {
                host: host.to_string(),
                by,
            },
        })?;
        let removed = || RenewError::Cannot(format!("the credentials for {host} were removed"));
        let held = records.held(host)?.ok_or_else(removed)?;
        let secret = records.secret(host, &held.entry)?.ok_or_else(removed)?;
        let (entry, secret) =
            kept_for(records, host, &group, &held.entry, deadline).unwrap_or((held.entry, secret));
        Ok(Flight {
            records,
            host,
            group,
            changed: entry.stored_at != seen.stored_at,
            entry,
            secret,
            keys: held.keys,
            deadline,
            _claim: claim,
        })
    }

    fn already_renewed(self) -> Renewed {
        Renewed {
            entry: self.entry,
            secret: self.secret,
            rotated_here: false,
        }
    }

    /// The GitLab the token belongs to (the only place it is sent), within the deadline.
    fn call(&self) -> Result<Call, RenewError> {
        let info = renewable(self.host, &self.entry)?;
        let gitlab = Url::parse(&info.url).map_err(|_| {
            RenewError::Cannot(format!("the recorded GitLab URL {:?} is invalid", info.url))
        })?;
        let http = Http::new()
            .map_err(|e| RenewError::failed(self.host, e))?
            .with_deadline(self.deadline);
        Ok(Call { info, gitlab, http })
    }

    /// Steps 2 to 5 with `method`.
    fn run<M: Method>(
        &self,
        call: &Call,
        method: &M,
        promise: Promise,
    ) -> Result<Renewed, RenewError> {
        let check = || call.check(method, &self.secret);
        self.confirm(method.confirms_first(), check)?;
        let plan = method.plan(&call.info, promise)?;
        self.open_journal(&call.http, &call.info, promise)?;
        let outcome = method.renew(&call.http, &call.gitlab, &call.info, &self.secret, plan);
        self.settle_outcome(outcome, check)
    }

    /// Step 2: the token is still the live one, and no earlier renewal is still settling;
    /// this also resolves an open journal. `check` asks GitLab, only when there is a
    /// journal or the method `always` confirms.
    fn confirm(&self, always: bool, check: impl FnOnce() -> Check) -> Result<(), RenewError> {
        let open = self.records.read_journal(&self.group);
        if open.is_none() && !always {
            return Ok(());
        }
        let host = self.host.to_string();
        let settling =
            |j: &records::Journal| crate::clock::now().duration_since(j.started_at) < settle();
        match (check(), open) {
            (Check::Active, None) => Ok(()),
            (Check::Active, Some(j)) if settling(&j) => Err(RenewError::failed(
                self.host,
                "an earlier renewal's outcome is still settling; not renewing again yet",
            )),
            (Check::Active, Some(_)) => {
                self.records.close_journal(&self.group);
                Ok(())
            }
            (Check::Revoked(_), Some(j)) => Err(lost(self.host, &j)),
            (Check::Revoked(_), None) => Err(RenewError::RevokedElsewhere { host }),
            (Check::Expired(reason), _) => Err(RenewError::failed(self.host, reason)),
            (Check::Unknown(detail), Some(_)) => Err(RenewError::Unresolved { host, detail }),
            (Check::Unknown(detail), None) => Err(RenewError::failed(
                self.host,
                format!("cannot confirm the token at GitLab ({detail})"),
            )),
        }
    }

    /// Step 3: only with a whole request deadline left (never a renewal we may stop
    /// waiting for), the journal, then a last look at the leases: a hand-out that started
    /// while we decided (lock-free `get`s) is a live promise now.
    fn open_journal(
        &self,
        http: &Http,
        info: &GitLabInfo,
        promise: Promise,
    ) -> Result<(), RenewError> {
        if http.remaining() < crate::gitlab::http::REQUEST_DEADLINE {
            return Err(RenewError::failed(
                self.host,
                "not enough of the get deadline left to renew safely; the next run will",
            ));
        }
        self.records
            .open_journal(&self.group, info.token_id, self.entry.stored_at)
            .map_err(RenewError::Cannot)?;
        crate::fault::point("after-journal");
        let now = crate::clock::now();
        // Every host's leases, in a fleet: a hand-out anywhere is a live promise.
        let leased = match self.records.leases_everywhere(&self.keys, now) {
            Ok(leases) => leases.until.is_some_and(|t| now < t),
            Err(e) => {
                self.records.close_journal(&self.group);
                return Err(RenewError::failed(self.host, e));
            }
        };
        if !promise.hard && leased {
            self.records.close_journal(&self.group);
            return Err(RenewError::failed(
                self.host,
                "a push started using the token meanwhile; renewing later",
            ));
        }
        Ok(())
    }

    /// Steps 4 and 5: what the method's answer means for the record. `check` asks GitLab
    /// again after an ambiguous answer.
    fn settle_outcome(
        &self,
        outcome: Outcome,
        check: impl FnOnce() -> Check,
    ) -> Result<Renewed, RenewError> {
        let host = self.host.to_string();
        match outcome {
            Outcome::Renewed { secret, info } => {
                let entry = commit::commit(self, &secret, *info);
                self.records.close_journal(&self.group);
                Ok(Renewed {
                    entry,
                    secret,
                    rotated_here: true,
                })
            }
            Outcome::Unauthorized(detail) => {
                self.records.close_journal(&self.group);
                Err(RenewError::Unauthorized { host, detail })
            }
            Outcome::Refused(detail) | Outcome::NotSent(detail) => {
                self.records.close_journal(&self.group);
                Err(RenewError::failed(self.host, detail))
            }
            // OAuth: the refresh token is used up. Another process may have refreshed (and
            // stored the new pair) after we read it; otherwise only a new login helps.
            Outcome::InvalidGrant => {
                self.records.close_journal(&self.group);
                match self.records.changed_since(self.host, &self.entry)? {
                    Some((entry, secret)) => Ok(Renewed {
                        entry,
                        secret,
                        rotated_here: false,
                    }),
                    None => Err(RenewError::GrantRevoked { host }),
                }
            }
            // The journal stays. If GitLab already renewed, say so now; else the old token
            // is still good for this hand-out, and later runs keep checking until it settles.
            Outcome::Unknown(e) => match check() {
                Check::Revoked(_) => Err(RenewError::Lost { host }),
                Check::Active => Err(RenewError::failed(self.host, e)),
                Check::Expired(detail) | Check::Unknown(detail) => Err(RenewError::Unresolved {
                    host,
                    detail: format!("{e}; then: {detail}"),
                }),
            },
        }
    }
}

/// A token an earlier renewal of `entry` minted but did not get into the store (it ended
/// first, or the store refused it): the live one. Moved into the store when it takes it.
fn kept_for(
    records: &Records,
    host: &RegistryHost,
    group: &RegistryHost,
    entry: &Entry,
    deadline: Instant,
) -> Option<(Entry, Secret)> {
    let kept = records
        .kept(group)
        .filter(|k| k.keys.get(host.as_str()) == Some(&entry.stored_at))?;
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .min(Duration::from_secs(1));
    if records.adopt(wait, group, &kept).is_ok()
        && let Ok(Some(stored)) = records.load(host)
    {
        return Some(stored);
    }
    let entry = Entry {
        stored_at: crate::clock::now(),
        gitlab: Some(kept.info),
        ..entry.clone()
    };
    Some((entry, kept.token))
}

/// The token was rotated by the renewal `journal` records, and its answer did not arrive.
fn lost(host: &RegistryHost, journal: &records::Journal) -> RenewError {
    let host = host.to_string();
    match journal.host.clone() {
        Some(by) => RenewError::LostElsewhere { host, by },
        None => RenewError::Lost { host },
    }
}

fn renewable(host: &RegistryHost, entry: &Entry) -> Result<GitLabInfo, RenewError> {
    entry
        .gitlab
        .clone()
        .filter(GitLabInfo::can_renew)
        .ok_or_else(|| RenewError::Cannot(format!("the token for {host} cannot renew itself")))
}

#[cfg(test)]
mod tests;
