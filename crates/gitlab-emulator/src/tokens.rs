//! Token rows of every kind and the lifecycle they share.
//!
//! Personal/project/group access tokens, deploy tokens, CI job tokens and OAuth tokens each
//! keep their own metadata but embed one [`Lifecycle`]: the secret, the revocation and the
//! test-set kill instant. The [`Token`] trait adds each kind's natural end (expiry date,
//! OAuth lifetime), so liveness, revocation and killing are written once for all of them.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// What every token has: its secret and how it stops working early.
#[derive(Debug, Clone)]
pub(crate) struct Lifecycle {
    /// The secret clients present (for OAuth, the access token).
    pub secret: String,
    pub revoked: bool,
    /// When it was revoked (emulator clock), for assertions about rug-pulls.
    pub revoked_at: Option<Timestamp>,
    /// Set by [`crate::Emulator::kill_token_at`]: dead from this instant (emulator clock).
    pub kill_at: Option<Timestamp>,
}

impl Lifecycle {
    /// A live, never revoked, never killed token.
    pub fn new(secret: String) -> Lifecycle {
        Lifecycle {
            secret,
            revoked: false,
            revoked_at: None,
            kill_at: None,
        }
    }

    /// Revoke; revoking again keeps the first revocation instant.
    pub fn revoke(&mut self, now: Timestamp) {
        self.revoked_at.get_or_insert(now);
        self.revoked = true;
    }
}

/// A row of one of the token tables.
pub(crate) trait Token {
    fn life(&self) -> &Lifecycle;

    fn life_mut(&mut self) -> &mut Lifecycle;

    /// When the token ends on its own (expiry date, lifetime), kill instant aside.
    fn natural_end(&self) -> Option<Timestamp>;

    /// Whether `secret` names this token when revoking it (OAuth: the refresh token too).
    fn named_by(&self, secret: &str) -> bool {
        self.life().secret == secret
    }

    /// The instant it stops working: its natural end or the kill instant, whichever is first.
    fn dies_at(&self) -> Option<Timestamp> {
        earliest(self.natural_end(), self.life().kill_at)
    }

    fn expired_at(&self, now: Timestamp) -> bool {
        self.dies_at().is_some_and(|d| now >= d)
    }

    /// Not revoked and not expired or killed.
    fn active_at(&self, now: Timestamp) -> bool {
        !self.life().revoked && !self.expired_at(now)
    }
}

/// The first row of `rows` whose secret is `secret`.
pub(crate) fn by_secret<'a, T: Token>(rows: &'a [T], secret: &str) -> Option<&'a T> {
    rows.iter().find(|t| t.life().secret == secret)
}

/// Which resource a bot token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Project(u64),
    Group(u64),
}

/// A `PersonalAccessToken` row: personal, project or group access token.
#[derive(Debug, Clone)]
pub(crate) struct Pat {
    pub id: u64,
    pub user_id: u64,
    pub name: String,
    pub description: Option<String>,
    pub scopes: Vec<String>,
    /// Dead from this date at 00:00 UTC.
    pub expires_at: Option<Date>,
    pub life: Lifecycle,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    /// Id of the first token of the rotation family.
    pub family: u64,
    pub previous_id: Option<u64>,
    /// Set once the token has been rotated (its successor's id).
    pub rotated_to: Option<u64>,
    pub resource: Option<Resource>,
    pub access_level: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct DeployToken {
    pub id: u64,
    pub username: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<Timestamp>,
    pub life: Lifecycle,
}

#[derive(Debug, Clone)]
pub(crate) struct JobToken {
    pub id: u64,
    pub project_path: String,
    pub life: Lifecycle,
}

/// An OAuth access token (`life.secret`) and its refresh token.
#[derive(Debug, Clone)]
pub(crate) struct OAuthToken {
    pub id: u64,
    pub user_id: u64,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub refresh_token: String,
    pub created_at: Timestamp,
    pub expires_in: i64,
    /// Revoked by a refresh or /oauth/revoke; `kill_at` applies to the access token only.
    pub life: Lifecycle,
    /// The refresh token has been spent (single use).
    pub refresh_used: bool,
}

impl OAuthToken {
    /// When the access token dies: an OAuth token always has a lifetime.
    pub fn death(&self) -> Timestamp {
        self.dies_at().expect("OAuth tokens have a lifetime")
    }
}

impl Token for Pat {
    fn life(&self) -> &Lifecycle {
        &self.life
    }

    fn life_mut(&mut self) -> &mut Lifecycle {
        &mut self.life
    }

    fn natural_end(&self) -> Option<Timestamp> {
        self.expires_at.map(midnight_utc)
    }
}

impl Token for DeployToken {
    fn life(&self) -> &Lifecycle {
        &self.life
    }

    fn life_mut(&mut self) -> &mut Lifecycle {
        &mut self.life
    }

    fn natural_end(&self) -> Option<Timestamp> {
        self.expires_at
    }
}

impl Token for JobToken {
    fn life(&self) -> &Lifecycle {
        &self.life
    }

    fn life_mut(&mut self) -> &mut Lifecycle {
        &mut self.life
    }

    /// A job token lives as long as its job: until revoked or killed.
    fn natural_end(&self) -> Option<Timestamp> {
        None
    }
}

impl Token for OAuthToken {
    fn life(&self) -> &Lifecycle {
        &self.life
    }

    fn life_mut(&mut self) -> &mut Lifecycle {
        &mut self.life
    }

    fn natural_end(&self) -> Option<Timestamp> {
        Some(
            self.created_at
                .checked_add(SignedDuration::from_secs(self.expires_in))
                .expect("timestamp in range"),
        )
    }

    fn named_by(&self, secret: &str) -> bool {
        self.life.secret == secret || self.refresh_token == secret
    }
}

fn midnight_utc(d: Date) -> Timestamp {
    d.to_zoned(TimeZone::UTC)
        .expect("date in range")
        .timestamp()
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
