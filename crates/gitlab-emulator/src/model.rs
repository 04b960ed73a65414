//! In-memory data model: users, projects, groups, OAuth state and the token tables
//! (rows in [`crate::tokens`]).
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
use crate::tokens::{DeployToken, JobToken, OAuthToken, Pat, Resource, Token, by_secret};
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
        if let Some(p) = by_secret(&self.pats, secret) {
            return Some(Found::Pat(p.clone()));
        }
        if let Some(t) = by_secret(&self.oauth_tokens, secret) {
            return Some(Found::OAuthAccess(t.clone()));
        }
        if let Some(t) = self.oauth_tokens.iter().find(|t| t.refresh_token == secret) {
            return Some(Found::OAuthRefresh(t.clone()));
        }
        if let Some(t) = by_secret(&self.deploy_tokens, secret) {
            return Some(Found::Deploy(t.clone()));
        }
        if let Some(t) = by_secret(&self.job_tokens, secret) {
            return Some(Found::Job(t.clone()));
        }
        None
    }

    /// Every row of every token table, to revoke or kill by secret.
    pub fn tokens_mut(&mut self) -> impl Iterator<Item = &mut dyn Token> {
        let pats = self.pats.iter_mut().map(|t| t as &mut dyn Token);
        let deploy = self.deploy_tokens.iter_mut().map(|t| t as &mut dyn Token);
        let job = self.job_tokens.iter_mut().map(|t| t as &mut dyn Token);
        let oauth = self.oauth_tokens.iter_mut().map(|t| t as &mut dyn Token);
        pats.chain(deploy).chain(job).chain(oauth)
    }

    /// Not revoked, not expired, not killed, on the emulator clock.
    pub fn active(&self, t: &impl Token) -> bool {
        t.active_at(self.now())
    }

    /// Past its expiry date, lifetime or kill instant, on the emulator clock.
    pub fn expired(&self, t: &impl Token) -> bool {
        t.expired_at(self.now())
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
                active: self.active(&p),
                revoked: p.life.revoked,
                revoked_at: p.life.revoked_at,
                expires_at: p.expires_at,
                dies_at: p.dies_at(),
                scopes: p.scopes.clone(),
                family: Some(p.family),
                previous_id: p.previous_id,
                last_used_at: p.last_used_at,
                username: Some(self.username(p.user_id)),
            },
            Found::Deploy(t) => crate::TokenInfo {
                scopes: t.scopes.clone(),
                username: Some(t.username.clone()),
                ..self.bare_info(t.id, TokenKind::Deploy, &t)
            },
            Found::Job(t) => crate::TokenInfo {
                username: Some("gitlab-ci-token".into()),
                ..self.bare_info(t.id, TokenKind::Job, &t)
            },
            Found::OAuthAccess(t) => crate::TokenInfo {
                revoked_at: t.life.revoked_at,
                dies_at: Some(t.death()),
                scopes: t.scopes.clone(),
                username: Some(self.username(t.user_id)),
                ..self.bare_info(t.id, TokenKind::OAuthAccess, &t)
            },
            Found::OAuthRefresh(t) => crate::TokenInfo {
                active: !t.life.revoked && !t.refresh_used,
                revoked: t.life.revoked || t.refresh_used,
                dies_at: None,
                scopes: t.scopes.clone(),
                username: Some(self.username(t.user_id)),
                ..self.bare_info(t.id, TokenKind::OAuthRefresh, &t)
            },
        })
    }

    /// What every token reports (id, kind, liveness, death), with the rest (PAT metadata,
    /// scopes, owner) empty. Only PATs and OAuth access tokens report when they were revoked.
    fn bare_info(&self, id: u64, kind: TokenKind, t: &impl Token) -> crate::TokenInfo {
        crate::TokenInfo {
            id,
            kind,
            name: None,
            active: self.active(t),
            revoked: t.life().revoked,
            revoked_at: None,
            expires_at: None,
            dies_at: t.dies_at(),
            scopes: vec![],
            family: None,
            previous_id: None,
            last_used_at: None,
            username: None,
        }
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
