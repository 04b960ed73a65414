//! # gitlab-emulator
//!
//! A **test-only**, in-process stand-in for the parts of GitLab that
//! `docker-credential-gitlab` talks to, faithful to the protocol reference
//! (`gitlab-registry-auth.md`): status codes and bodies are GitLab's.
//!
//! * `GET /jwt/auth` — registry token endpoint (RS256 JWT signed with a fixture key the real
//!   `docker-registry` trusts via [`Emulator::cert_pem_path`]); `POST` → bare 404.
//! * `GET|DELETE /api/v4/personal_access_tokens/self`, `POST …/self/rotate` (with reuse
//!   detection), `GET …/self/associations`, `POST /api/v4/{projects,groups}/:id/access_tokens/self/rotate`,
//!   `GET /api/v4/user`, `GET /api/v4/version`.
//! * `POST /oauth/token` (`refresh_token`, device-code and `password` grants),
//!   `POST /oauth/authorize_device`, `POST /oauth/revoke`, `GET /oauth/token/info`.
//!
//! The server runs on its own multi-threaded tokio runtime (background threads), bound to
//! `127.0.0.1` on a free port; dropping the [`Emulator`] stops it. All test controls are plain
//! blocking methods, usable from synchronous tests.
//!
//! ```no_run
//! use gitlab_emulator::{Config, Emulator, TokenSpec};
//! let gl = Emulator::start(Config::default());
//! let alice = gl.add_user("alice", "secret", false);
//! let pat = gl.add_personal_access_token(alice, TokenSpec::new("docker", &["read_registry", "write_registry"]));
//! // Basic alice:<pat.token> against gl.realm() now yields registry JWTs.
//! # let _ = pat;
//! ```
//!
//! ## Against the real registry
//! [`Emulator::start_real_registry`] starts `docker-registry serve` (distribution 2.8) with
//! [`Emulator::registry_config_yaml`] (`auth: token`, realm = [`Emulator::realm`], service
//! `container_registry`, issuer = [`Emulator::issuer`], `rootcertbundle` =
//! [`Emulator::cert_pem_path`], filesystem storage in a temp dir, a free loopback port) and
//! kills it when the returned [`RealRegistry`] is dropped. Mind the registry's 60 s leeway on
//! `exp`/`nbf`: a token with a 5 s window is really accepted for 65 s. [`write_oci_image`]
//! writes a one-layer image layout for a client to push there.
//!
//! ## Deliberate simplifications
//! * Every authenticated user is a member of every project (pull, push and delete as far as
//!   the credential's scopes allow); there are no admins, so `registry:catalog:*` is always
//!   dropped. Projects are private unless [`Emulator::set_project_public`]; anonymous users may
//!   only pull public projects. No protected repository paths / protected tags.
//! * Job tokens have no triggering user: JWT has no `sub`, `auth_type` is `build`, pulls are
//!   allowed from any project, push/delete only to the job's project (or its sub-images).
//! * JWTs carry `access[].meta` (`project_path`, `project_id`, `root_namespace_id`) only for
//!   projects added with [`Emulator::add_project`], and no nested `user` claim.
//!   `dependency_proxy` is accepted as a service but uses the registry's scope mapping.
//! * The failed-auth ban counts consecutive failures (no sliding 3-minute window).
//! * OAuth apps are public clients (no client secret); no authorization-code/PKCE pages;
//!   device approval is a test control ([`Emulator::approve_device`]). Refresh tokens never
//!   expire and are strictly single-use (no Doorkeeper grace window).
//! * Rotation: bot tokens may also use `/personal_access_tokens/self/rotate` (unconfirmed in
//!   GitLab). `last_used_at` is updated on every use.
//! * Error wording marked UNCONFIRMED in the reference (rotation `expires_at` validation,
//!   `insufficient_scope` serialisation) is plausible, not verbatim.
//!
//! ## Clock
//! Token expiry (PAT dates at 00:00 UTC, OAuth 7200 s, [`Emulator::kill_token_at`]) uses the
//! emulator clock = real clock + an offset set by [`Emulator::set_clock_offset`] /
//! [`Emulator::set_today`]. Registry JWT `iat`/`nbf`/`exp` always use the **real** clock,
//! because the real registry checks them against its own clock.

mod faults;
mod http;
mod jwt;
mod model;
mod oci;
mod registry;
mod routes;
mod server;
mod tokens;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

pub use faults::Fault;
pub use oci::write_oci_image;
pub use registry::RealRegistry;

use model::{ALNUM, DeviceState, Group, OAuthApp, Project, Shared, State, User, random_string};
use tokens::{DeployToken, JobToken, Lifecycle, Pat, Resource};

/// GitLab version reported by `GET /api/v4/version`.
pub const GITLAB_VERSION: &str = "17.9.0-ee";

/// Emulator settings. Build with struct update syntax: `Config { token_window: …, ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Registry JWT lifetime: `exp = iat + token_window` (GitLab default 5 min; GitLab.com
    /// 15 min). Values below 60 s are used as-is — remember the registry adds 60 s leeway.
    pub token_window: Duration,
    /// JWT `iss` claim; must match the registry's `auth.token.issuer`.
    pub issuer: String,
    /// When false, `/jwt/auth` answers 404 `UNAVAILABLE` "registry not enabled".
    pub registry_enabled: bool,
    /// Instance maximum PAT lifetime, for `expires_at` validation on rotation (365).
    pub pat_max_lifetime_days: u32,
    /// Per-IP failed-auth ban on `/jwt/auth`: after `n` consecutive failures the IP gets
    /// 403 "Too many failed authentication attempts from this IP" for the duration.
    /// `gitlab-ci-token` logins are exempt; a success resets the counter. Off by default.
    pub failed_auth_ban: Option<(u32, Duration)>,
    /// OAuth access-token lifetime (`expires_in`, 7200 s like GitLab).
    pub oauth_token_lifetime: Duration,
    /// Device-flow polling interval; polling faster yields `slow_down` (5 s).
    pub device_poll_interval: Duration,
    /// How long a device code lives (`expires_in` of the device authorization; 300 s).
    pub device_code_lifetime: Duration,
    /// Instance setting "password authentication enabled for Git": when false, username +
    /// password at `/jwt/auth` always fails with the 401 (tokens still work). Default true.
    pub password_auth_enabled: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            token_window: Duration::from_secs(300),
            issuer: "gitlab-issuer".into(),
            registry_enabled: true,
            pat_max_lifetime_days: 365,
            failed_auth_ban: None,
            oauth_token_lifetime: Duration::from_secs(7200),
            device_poll_interval: Duration::from_secs(5),
            device_code_lifetime: Duration::from_secs(300),
            password_auth_enabled: true,
        }
    }
}

/// What to create with [`Emulator::add_personal_access_token`] and friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    pub name: String,
    pub scopes: Vec<String>,
    /// Dead from this date at 00:00 UTC; `None` = never expires.
    pub expires_at: Option<Date>,
}

impl TokenSpec {
    /// A token without expiry date.
    pub fn new(name: &str, scopes: &[&str]) -> TokenSpec {
        TokenSpec {
            name: name.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at: None,
        }
    }

    /// Set the expiry date.
    pub fn expires(mut self, date: Date) -> TokenSpec {
        self.expires_at = Some(date);
        self
    }
}

/// A freshly created token and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub id: u64,
    pub token: String,
}

/// An OAuth access/refresh token pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// What kind of secret [`Emulator::token_info`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Personal,
    ProjectAccess,
    GroupAccess,
    Deploy,
    Job,
    OAuthAccess,
    OAuthRefresh,
}

/// State of a token, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: u64,
    pub kind: TokenKind,
    pub name: Option<String>,
    /// Usable right now (not revoked, not expired, not killed).
    pub active: bool,
    pub revoked: bool,
    /// When a PAT was revoked (by rotation, reuse detection or revocation).
    pub revoked_at: Option<Timestamp>,
    /// PAT expiry date (dead from 00:00 UTC that day).
    pub expires_at: Option<Date>,
    /// The exact instant the token dies (date, kill instant or OAuth lifetime), if any.
    pub dies_at: Option<Timestamp>,
    pub scopes: Vec<String>,
    /// Rotation family (id of the first token) for PATs.
    pub family: Option<u64>,
    /// The token this one replaced by rotation.
    pub previous_id: Option<u64>,
    pub last_used_at: Option<Timestamp>,
    /// Owner (bot username for project/group tokens).
    pub username: Option<String>,
}

/// One request as seen by the emulator. Secrets are never recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// Raw query string with secret-bearing parameters redacted.
    pub query: String,
    /// Response status; 0 when the connection was dropped by a fault.
    pub status: u16,
    /// Basic-auth username, or the owner of a `PRIVATE-TOKEN`/Bearer token.
    pub username: Option<String>,
    /// When it arrived, on the emulator's clock (the one its tokens expire by).
    pub at: Timestamp,
}

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    _cert_dir: tempfile::TempDir,
    cert_path: PathBuf,
    issuer: String,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("url", &self.url())
            .field("issuer", &self.issuer)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Emulator {
    /// Start on `127.0.0.1` with a free port. Panics if that is impossible.
    pub fn start(config: Config) -> Emulator {
        Emulator::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("start gitlab emulator")
    }

    /// Start on a given address (port 0 = any free port).
    pub fn start_on(config: Config, listen: SocketAddr) -> std::io::Result<Emulator> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gitlab-emulator")
            .enable_all()
            .build()?;
        // Bind with std so that starting from inside another tokio runtime does not need
        // `block_on`; the tokio listener is created on our own runtime.
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let mut addr = std_listener.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip([127, 0, 0, 1].into());
        }
        let cert_dir = tempfile::Builder::new()
            .prefix("gitlab-emulator-")
            .tempdir()?;
        let cert_path = cert_dir.path().join("token.crt");
        std::fs::write(&cert_path, jwt::CERT_PEM)?;
        let issuer = config.issuer.clone();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(config, format!("http://{addr}"))),
            signer: jwt::Signer::from_fixture(),
        });
        let task_shared = shared.clone();
        runtime.spawn(async move {
            match tokio::net::TcpListener::from_std(std_listener) {
                Ok(listener) => server::serve(listener, task_shared).await,
                Err(e) => eprintln!("gitlab-emulator: cannot listen: {e}"),
            }
        });
        Ok(Emulator {
            shared,
            addr,
            runtime: Some(runtime),
            _cert_dir: cert_dir,
            cert_path,
            issuer,
        })
    }

    /// GitLab base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `url() + "/jwt/auth"`.
    pub fn realm(&self) -> String {
        format!("{}/jwt/auth", self.url())
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM certificate of the JWT signing key, for the registry's `rootcertbundle`.
    pub fn cert_pem_path(&self) -> &Path {
        &self.cert_path
    }

    /// The JWT `iss` claim.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The libtrust key id put in the JWT header `kid`.
    pub fn kid(&self) -> String {
        self.shared.signer.kid().to_string()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.shared.lock())
    }

    /// Add a (human) user. `two_factor` users cannot use their password at `/jwt/auth`.
    pub fn add_user(&self, username: &str, password: &str, two_factor: bool) -> u64 {
        self.with(|st| {
            let id = st.id();
            st.users.push(User {
                id,
                username: username.into(),
                password: password.into(),
                two_factor,
                bot: false,
            });
            id
        })
    }

    /// Add a project (e.g. `group/project`), private by default. Returns its id.
    pub fn add_project(&self, path: &str) -> u64 {
        self.with(|st| {
            let id = st.id();
            st.projects.push(Project {
                id,
                path: path.into(),
                public: false,
            });
            id
        })
    }

    /// Change the configuration of the running emulator (e.g. `token_window`,
    /// `registry_enabled`). `issuer()` keeps reporting the issuer given at start.
    pub fn update_config(&self, f: impl FnOnce(&mut Config)) {
        self.with(|st| f(&mut st.config))
    }

    /// Make a project public (anonymous pulls allowed) or private.
    pub fn set_project_public(&self, project_id: u64, public: bool) {
        self.with(|st| {
            if let Some(p) = st.projects.iter_mut().find(|p| p.id == project_id) {
                p.public = public;
            }
        })
    }

    /// Add a group. Returns its id.
    pub fn add_group(&self, path: &str) -> u64 {
        self.with(|st| {
            let id = st.id();
            st.groups.push(Group {
                id,
                path: path.into(),
            });
            id
        })
    }

    fn insert_pat(
        st: &mut State,
        user_id: u64,
        spec: TokenSpec,
        resource: Option<Resource>,
    ) -> IssuedToken {
        let id = st.id();
        let secret = routes::pat::new_pat_secret();
        let created_at = st.now();
        st.pats.push(Pat {
            id,
            user_id,
            name: spec.name,
            description: None,
            scopes: spec.scopes,
            expires_at: spec.expires_at,
            life: Lifecycle::new(secret.clone()),
            created_at,
            last_used_at: None,
            family: id,
            previous_id: None,
            rotated_to: None,
            resource,
            access_level: if resource.is_some() { 40 } else { 0 },
        });
        IssuedToken { id, token: secret }
    }

    /// Create a personal access token (`glpat-…`) for a user.
    pub fn add_personal_access_token(&self, user_id: u64, spec: TokenSpec) -> IssuedToken {
        self.with(|st| Emulator::insert_pat(st, user_id, spec, None))
    }

    fn add_bot_token(&self, resource: Resource, spec: TokenSpec) -> IssuedToken {
        self.with(|st| {
            let bot_id = st.id();
            let (kind, rid) = match resource {
                Resource::Project(id) => ("project", id),
                Resource::Group(id) => ("group", id),
            };
            st.users.push(User {
                id: bot_id,
                username: format!("{kind}_{rid}_bot_{}", random_string(8, model::HEX)),
                password: String::new(),
                two_factor: false,
                bot: true,
            });
            Emulator::insert_pat(st, bot_id, spec, Some(resource))
        })
    }

    /// Create a project access token (owned by a new bot user, Maintainer level).
    pub fn add_project_access_token(&self, project_id: u64, spec: TokenSpec) -> IssuedToken {
        self.add_bot_token(Resource::Project(project_id), spec)
    }

    /// Create a group access token (owned by a new bot user, Maintainer level).
    pub fn add_group_access_token(&self, group_id: u64, spec: TokenSpec) -> IssuedToken {
        self.add_bot_token(Resource::Group(group_id), spec)
    }

    /// Create a deploy token (`gldt-…`); it only works with its own `username`.
    pub fn add_deploy_token(
        &self,
        username: &str,
        scopes: &[&str],
        expires_at: Option<Timestamp>,
    ) -> IssuedToken {
        self.with(|st| {
            let id = st.id();
            let secret = format!("gldt-{}", random_string(20, &ALNUM[..62]));
            st.deploy_tokens.push(DeployToken {
                id,
                username: username.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                expires_at,
                life: Lifecycle::new(secret.clone()),
            });
            IssuedToken { id, token: secret }
        })
    }

    /// Create a running job's CI token (`glcbt-…`) for `project_path`. Username must be
    /// `gitlab-ci-token`; pushes only to that project. Revoke it to "finish the job".
    pub fn add_job_token(&self, project_path: &str) -> String {
        self.with(|st| {
            let id = st.id();
            let secret = format!("glcbt-{}", random_string(20, &ALNUM[..62]));
            st.job_tokens.push(JobToken {
                id,
                project_path: project_path.into(),
                life: Lifecycle::new(secret.clone()),
            });
            secret
        })
    }

    /// Register an OAuth application (public client) allowed to request `scopes`.
    pub fn add_oauth_application(&self, client_id: &str, scopes: &[&str]) {
        self.with(|st| {
            st.oauth_apps.push(OAuthApp {
                client_id: client_id.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
            })
        })
    }

    /// Issue an OAuth token pair directly (as if the user had authorized the app).
    pub fn issue_oauth_tokens(&self, user_id: u64, client_id: &str, scopes: &[&str]) -> OAuthPair {
        self.with(|st| {
            let t = routes::oauth::issue(
                st,
                user_id,
                client_id,
                scopes.iter().map(|s| s.to_string()).collect(),
            );
            OAuthPair {
                access_token: t.life.secret,
                refresh_token: t.refresh_token,
                expires_in: t.expires_in as u64,
            }
        })
    }

    fn set_device_state(&self, user_code: &str, state: DeviceState) -> bool {
        self.with(|st| {
            match st
                .devices
                .iter_mut()
                .find(|d| d.user_code == user_code && d.state == DeviceState::Pending)
            {
                Some(d) => {
                    d.state = state;
                    true
                }
                None => false,
            }
        })
    }

    /// The user approves a pending device authorization. Returns false if unknown/not pending.
    pub fn approve_device(&self, user_code: &str, user_id: u64) -> bool {
        self.set_device_state(user_code, DeviceState::Approved(user_id))
    }

    /// The user denies a pending device authorization.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.set_device_state(user_code, DeviceState::Denied)
    }

    /// Answer the next `n` pending device-grant polls with `slow_down` (as GitLab does to a
    /// client polling too fast), whatever their pace.
    pub fn slow_down_next(&self, n: usize) {
        self.with(|st| st.slow_downs = n)
    }

    /// Revoke any kind of token (PAT, bot, deploy, job, OAuth access or refresh).
    pub fn revoke_token(&self, token: &str) {
        self.with(|st| {
            let now = st.now();
            st.tokens_mut()
                .filter(|t| t.named_by(token))
                .for_each(|t| t.life_mut().revoke(now));
        })
    }

    /// Make a token die at an exact instant (emulator clock). Works for every token kind.
    pub fn kill_token_at(&self, token: &str, at: Timestamp) {
        self.with(|st| {
            st.tokens_mut()
                .filter(|t| t.life().secret == token)
                .for_each(|t| t.life_mut().kill_at = Some(at));
        })
    }

    /// Current emulator time (real clock + offset).
    pub fn now(&self) -> Timestamp {
        self.with(|st| st.now())
    }

    /// Today's date in UTC on the emulator clock.
    pub fn today(&self) -> Date {
        self.with(|st| st.today())
    }

    /// Shift the emulator clock (token expiry only; JWT times stay real).
    pub fn set_clock_offset(&self, offset: SignedDuration) {
        self.with(|st| st.clock_offset = offset)
    }

    /// Shift the emulator clock so that "today" (UTC) is `date`, keeping the time of day.
    pub fn set_today(&self, date: Date) {
        let real = Timestamp::now();
        let time = real.to_zoned(TimeZone::UTC).time();
        let target = date
            .to_datetime(time)
            .to_zoned(TimeZone::UTC)
            .expect("date in range")
            .timestamp();
        self.set_clock_offset(target.duration_since(real));
    }

    /// Inspect any token by its secret.
    pub fn token_info(&self, token: &str) -> Option<TokenInfo> {
        self.with(|st| st.token_info(token))
    }

    /// The currently active token of a PAT rotation family, if any.
    pub fn active_family_member(&self, family: u64) -> Option<IssuedToken> {
        self.with(|st| {
            st.pats
                .iter()
                .filter(|p| p.family == family)
                .find(|p| st.active(*p))
                .map(|p| IssuedToken {
                    id: p.id,
                    token: p.life.secret.clone(),
                })
        })
    }

    /// Make the next `times` requests whose path starts with `path_prefix` misbehave.
    /// Faults queue in insertion order; the first matching one is used.
    pub fn inject_fault(&self, path_prefix: &str, fault: Fault, times: usize) {
        if times == 0 {
            return;
        }
        self.with(|st| {
            st.faults.push(faults::FaultEntry {
                prefix: path_prefix.into(),
                fault,
                remaining: times,
            })
        })
    }

    /// Remove every pending fault.
    pub fn clear_faults(&self) {
        self.with(|st| st.faults.clear())
    }

    /// Every request handled so far (oldest first).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.with(|st| st.requests.clone())
    }

    /// Number of recorded requests with this method and exact path.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.with(|st| {
            st.requests
                .iter()
                .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
                .count()
        })
    }

    /// Forget recorded requests.
    pub fn clear_requests(&self) {
        self.with(|st| st.requests.clear())
    }

    /// A `docker-registry` (distribution 2.8) `config.yml` that trusts this emulator:
    /// `auth: token` with our realm, service `container_registry`, our issuer and
    /// certificate; filesystem storage under `data_dir`; listening on `127.0.0.1:port`.
    pub fn registry_config_yaml(&self, port: u16, data_dir: &Path) -> String {
        registry::config_yaml(self, port, data_dir, &self.realm())
    }

    /// Start a real `docker-registry serve` configured against this emulator on a free
    /// port, and wait until it answers. `Err` if the binary is missing or it won't start.
    pub fn start_real_registry(&self) -> Result<RealRegistry, String> {
        registry::start(self, &self.realm())
    }

    /// [`Emulator::start_real_registry`] with the registry's token `realm` pointing
    /// elsewhere (a proxy in front of [`Emulator::realm`], say); issuer and certificate
    /// are still this emulator's.
    pub fn start_real_registry_with_realm(&self, realm: &str) -> Result<RealRegistry, String> {
        registry::start(self, realm)
    }
}
