//! In-memory data model: users, tokens of every kind, projects, groups, OAuth state.
//!
//! Everything lives in one [`State`] behind a `std::sync::Mutex` (never held across an
//! `.await`). Lookups return plain data so route handlers stay synchronous.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::faults::FaultEntry;
use crate::jwt::Signer;
use crate::{Config, RequestRecord, TokenKind};

/// A GitLab user (human or bot).
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub id: u64,
    pub username: String,
    pub password: String,
    pub two_factor: bool,
    pub bot: bool,
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
    pub expires_at: Option<Date>,
    pub kill_at: Option<Timestamp>,
    pub revoked: bool,
    /// When it was revoked (emulator clock), for assertions about rug-pulls.
    pub revoked_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub secret: String,
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
    pub secret: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<Timestamp>,
    pub kill_at: Option<Timestamp>,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct JobToken {
    pub id: u64,
    pub secret: String,
    pub project_path: String,
    pub kill_at: Option<Timestamp>,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub id: u64,
    pub path: String,
    pub public: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub id: u64,
    pub path: String,
}

#[derive(Debug, Clone)]
pub(crate) struct OAuthApp {
    pub client_id: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct OAuthToken {
    pub id: u64,
    pub user_id: u64,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub access_token: String,
    pub refresh_token: String,
    pub created_at: Timestamp,
    pub expires_in: i64,
    pub kill_at: Option<Timestamp>,
    pub revoked: bool,
    /// When it was revoked (by a refresh or /oauth/revoke), emulator clock.
    pub revoked_at: Option<Timestamp>,
    /// The refresh token has been spent (single use).
    pub refresh_used: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceState {
    Pending,
    Approved(u64),
    Denied,
    Consumed,
}

#[derive(Debug, Clone)]
pub(crate) struct DeviceGrant {
    pub device_code: String,
    pub user_code: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub state: DeviceState,
    pub last_poll: Option<Instant>,
}

#[derive(Debug, Default)]
pub(crate) struct BanState {
    pub failures: u32,
    pub banned_until: Option<Instant>,
}

/// The whole mutable world of the emulator.
pub(crate) struct State {
    pub config: Config,
    pub base_url: String,
    pub next_id: u64,
    pub clock_offset: SignedDuration,
    pub users: Vec<User>,
    pub pats: Vec<Pat>,
    pub deploy_tokens: Vec<DeployToken>,
    pub job_tokens: Vec<JobToken>,
    pub projects: Vec<Project>,
    pub groups: Vec<Group>,
    pub oauth_apps: Vec<OAuthApp>,
    pub oauth_tokens: Vec<OAuthToken>,
    pub devices: Vec<DeviceGrant>,
    /// Answer this many pending device polls with `slow_down`, however slow they are.
    pub slow_downs: usize,
    pub faults: Vec<FaultEntry>,
    pub requests: Vec<RequestRecord>,
    pub bans: HashMap<IpAddr, BanState>,
}

/// What the server and the [`crate::Emulator`] share: the state and the JWT signer.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub signer: Signer,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Result of looking up a secret among every token table.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    Pat(Pat),
    Deploy(DeployToken),
    Job(JobToken),
    OAuthAccess(OAuthToken),
    OAuthRefresh(OAuthToken),
}

impl State {
    pub fn new(config: Config, base_url: String) -> State {
        State {
            config,
            base_url,
            next_id: 1,
            clock_offset: SignedDuration::ZERO,
            users: Vec::new(),
            pats: Vec::new(),
            deploy_tokens: Vec::new(),
            job_tokens: Vec::new(),
            projects: Vec::new(),
            groups: Vec::new(),
            oauth_apps: Vec::new(),
            oauth_tokens: Vec::new(),
            devices: Vec::new(),
            slow_downs: 0,
            faults: Vec::new(),
            requests: Vec::new(),
            bans: HashMap::new(),
        }
    }

    pub fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The emulator's notion of "now" (real clock plus the test-controlled offset).
    pub fn now(&self) -> Timestamp {
        Timestamp::now()
            .checked_add(self.clock_offset)
            .expect("clock offset out of range")
    }

    pub fn today(&self) -> Date {
        self.now().to_zoned(TimeZone::UTC).date()
    }

    pub fn user(&self, id: u64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn username(&self, id: u64) -> String {
        self.user(id)
            .map(|u| u.username.clone())
            .unwrap_or_default()
    }

    /// The project a repository name belongs to: `group/project` or `group/project/image`.
    pub fn project_for_repository(&self, repo: &str) -> Option<&Project> {
        self.projects
            .iter()
            .filter(|p| repo == p.path || repo.starts_with(&format!("{}/", p.path)))
            .max_by_key(|p| p.path.len())
    }

    pub fn find_secret(&self, secret: &str) -> Option<Found> {
        if secret.is_empty() {
            return None;
        }
        if let Some(p) = self.pats.iter().find(|p| p.secret == secret) {
            return Some(Found::Pat(p.clone()));
        }
        if let Some(t) = self.oauth_tokens.iter().find(|t| t.access_token == secret) {
            return Some(Found::OAuthAccess(t.clone()));
        }
        if let Some(t) = self.oauth_tokens.iter().find(|t| t.refresh_token == secret) {
            return Some(Found::OAuthRefresh(t.clone()));
        }
        if let Some(t) = self.deploy_tokens.iter().find(|t| t.secret == secret) {
            return Some(Found::Deploy(t.clone()));
        }
        if let Some(t) = self.job_tokens.iter().find(|t| t.secret == secret) {
            return Some(Found::Job(t.clone()));
        }
        None
    }

    /// Instant at which a PAT stops working (date at 00:00 UTC, or a test kill instant).
    pub fn pat_death(p: &Pat) -> Option<Timestamp> {
        let by_date = p.expires_at.map(midnight_utc);
        earliest(by_date, p.kill_at)
    }

    pub fn pat_expired(&self, p: &Pat) -> bool {
        State::pat_death(p).is_some_and(|d| self.now() >= d)
    }

    pub fn pat_active(&self, p: &Pat) -> bool {
        !p.revoked && !self.pat_expired(p)
    }

    pub fn oauth_death(t: &OAuthToken) -> Timestamp {
        let natural = t
            .created_at
            .checked_add(SignedDuration::from_secs(t.expires_in))
            .expect("timestamp in range");
        earliest(Some(natural), t.kill_at).expect("some")
    }

    pub fn oauth_active(&self, t: &OAuthToken) -> bool {
        !t.revoked && self.now() < State::oauth_death(t)
    }

    pub fn deploy_active(&self, t: &DeployToken) -> bool {
        !t.revoked && earliest(t.expires_at, t.kill_at).is_none_or(|d| self.now() < d)
    }

    pub fn job_active(&self, t: &JobToken) -> bool {
        !t.revoked && t.kill_at.is_none_or(|d| self.now() < d)
    }

    pub fn touch_pat(&mut self, id: u64) {
        let now = self.now();
        if let Some(p) = self.pats.iter_mut().find(|p| p.id == id) {
            p.last_used_at = Some(now);
        }
    }

    /// Kind, liveness and metadata of any secret, for [`crate::Emulator::token_info`].
    pub fn token_info(&self, secret: &str) -> Option<crate::TokenInfo> {
        let found = self.find_secret(secret)?;
        Some(match found {
            Found::Pat(p) => crate::TokenInfo {
                id: p.id,
                kind: match p.resource {
                    None => TokenKind::Personal,
                    Some(Resource::Project(_)) => TokenKind::ProjectAccess,
                    Some(Resource::Group(_)) => TokenKind::GroupAccess,
                },
                name: Some(p.name.clone()),
                active: self.pat_active(&p),
                revoked: p.revoked,
                revoked_at: p.revoked_at,
                expires_at: p.expires_at,
                dies_at: State::pat_death(&p),
                scopes: p.scopes.clone(),
                family: Some(p.family),
                previous_id: p.previous_id,
                last_used_at: p.last_used_at,
                username: Some(self.username(p.user_id)),
            },
            Found::Deploy(t) => crate::TokenInfo {
                id: t.id,
                kind: TokenKind::Deploy,
                name: None,
                active: self.deploy_active(&t),
                revoked: t.revoked,
                revoked_at: None,
                expires_at: None,
                dies_at: earliest(t.expires_at, t.kill_at),
                scopes: t.scopes.clone(),
                family: None,
                previous_id: None,
                last_used_at: None,
                username: Some(t.username.clone()),
            },
            Found::Job(t) => crate::TokenInfo {
                id: t.id,
                kind: TokenKind::Job,
                name: None,
                active: self.job_active(&t),
                revoked: t.revoked,
                revoked_at: None,
                expires_at: None,
                dies_at: t.kill_at,
                scopes: vec![],
                family: None,
                previous_id: None,
                last_used_at: None,
                username: Some("gitlab-ci-token".into()),
            },
            Found::OAuthAccess(t) => crate::TokenInfo {
                id: t.id,
                kind: TokenKind::OAuthAccess,
                name: None,
                active: self.oauth_active(&t),
                revoked: t.revoked,
                revoked_at: t.revoked_at,
                expires_at: None,
                dies_at: Some(State::oauth_death(&t)),
                scopes: t.scopes.clone(),
                family: None,
                previous_id: None,
                last_used_at: None,
                username: Some(self.username(t.user_id)),
            },
            Found::OAuthRefresh(t) => crate::TokenInfo {
                id: t.id,
                kind: TokenKind::OAuthRefresh,
                name: None,
                active: !t.revoked && !t.refresh_used,
                revoked: t.revoked || t.refresh_used,
                revoked_at: None,
                expires_at: None,
                dies_at: None,
                scopes: t.scopes.clone(),
                family: None,
                previous_id: None,
                last_used_at: None,
                username: Some(self.username(t.user_id)),
            },
        })
    }

    /// Username to record for a request: never the secret itself.
    pub fn principal_for_secret(&self, secret: &str) -> Option<String> {
        Some(match self.find_secret(secret)? {
            Found::Pat(p) => self.username(p.user_id),
            Found::Deploy(t) => t.username,
            Found::Job(_) => "gitlab-ci-token".into(),
            Found::OAuthAccess(t) | Found::OAuthRefresh(t) => self.username(t.user_id),
        })
    }
}

pub(crate) fn midnight_utc(d: Date) -> Timestamp {
    d.to_zoned(TimeZone::UTC)
        .expect("date in range")
        .timestamp()
}

pub(crate) fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Random alphanumeric string (for token secrets and codes).
pub(crate) fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf).expect("OS randomness");
    buf.iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect()
}

pub(crate) const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
pub(crate) const HEX: &[u8] = b"0123456789abcdef";
pub(crate) const USER_CODE: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ23456789";

pub(crate) fn format_gitlab_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
