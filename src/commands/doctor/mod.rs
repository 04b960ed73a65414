//! `doctor [REGISTRY] [--json]`: checks everything between `docker pull` and GitLab, one
//! line per check: `PASS|WARN|FAIL  <check>: <what was found>[; <fix>]`.
//!
//! Checks, per registry (every stored one when none is named):
//! 1. the `docker-credential-gitlab` docker finds on PATH is this binary (once, for all);
//! 2. Docker's config.json: `credHelpers` points the registry at us; plaintext `auths`
//!    entries, `credsStore` and `DOCKER_AUTH_CONFIG` that shadow or duplicate it;
//! 3. the secret store holding the entry answers and has the secret;
//! 4. the registry still sends clients to the GitLab recorded at login (the token is only
//!    sent there), and GitLab's `/jwt/auth` accepts the credential;
//! 5. scopes, expiry and renewability (fresh from GitLab for access tokens);
//! 6. the registry token window (`exp - iat` of a freshly issued registry token);
//! 7. a 403 "access forbidden" is told apart: a proxy stripping the `Authorization` header
//!    on the way to `/jwt/auth` (GitLab then sees an anonymous request), a per-IP ban, or a
//!    token without registry scope.
//!
//! Network trouble becomes FAIL lines, never a crash; every request has a deadline. No
//! secret (stored token or registry token) is ever printed. Exit status 1 if any check fails.

use std::path::{Path, PathBuf};

use anyhow::bail;
use reqwest::{Method, Url};
use serde::Serialize;
use serde_json::Value;

use crate::credentials;
use crate::docker_config;
use crate::environment::Environment;
use crate::gitlab::http::{Auth, Http, check_transport, redact, same_base};
use crate::gitlab::token::{EXPIRY_WARNING_DAYS, can_pull, can_push};
use crate::gitlab::{self, Challenge, GitLabError, JwtAuth, PatInfo, PatSelf, jwt};
use crate::registry::RegistryHost;
use crate::secret::Secret;
use crate::sources;
use crate::state::{GitLabInfo, State, StateFile, TokenKind};
use crate::store::{self, Backend, StoreChoice};
use crate::{BINARY_NAME, HELPER_SUFFIX};

mod environment;

/// Registry token windows shorter than this get a warning (GitLab.com uses 15 min).
const SHORT_WINDOW_SECS: i64 = 15 * 60;
/// The admin setting that controls the registry token window.
const WINDOW_SETTING: &str =
    "Admin > Settings > CI/CD > Container Registry > Authorization token duration (minutes)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: String,
    pub status: Status,
    pub message: String,
    pub fix: Option<String>,
}

impl Finding {
    fn new(status: Status, check: &str, message: impl Into<String>) -> Finding {
        Finding {
            check: check.to_owned(),
            status,
            message: message.into(),
            fix: None,
        }
    }
    fn pass(check: &str, message: impl Into<String>) -> Finding {
        Finding::new(Status::Pass, check, message)
    }
    fn warn(check: &str, message: impl Into<String>) -> Finding {
        Finding::new(Status::Warn, check, message)
    }
    fn fail(check: &str, message: impl Into<String>) -> Finding {
        Finding::new(Status::Fail, check, message)
    }
    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }

    /// `PASS  check: message[; fix]`.
    pub fn line(&self) -> String {
        let mut s = format!("{}  {}: {}", self.status.label(), self.check, self.message);
        if let Some(fix) = &self.fix {
            s.push_str("; ");
            s.push_str(fix);
        }
        s
    }
}

/// One JSON row: a finding and the registry it is about (`null` for global checks).
#[derive(Debug, Serialize)]
struct Row<'a> {
    registry: Option<&'a str>,
    #[serde(flatten)]
    finding: &'a Finding,
}

/// Findings grouped by registry; `None` holds the checks that concern every registry.
type Report = Vec<(Option<String>, Vec<Finding>)>;

pub fn run(registry: Option<&str>, json: bool) -> anyhow::Result<()> {
    let report = diagnose(registry);
    if json {
        let rows: Vec<Row> = report
            .iter()
            .flat_map(|(registry, findings)| {
                findings.iter().map(move |finding| Row {
                    registry: registry.as_deref(),
                    finding,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let mut first = true;
        for (registry, findings) in &report {
            if !first {
                println!();
            }
            first = false;
            println!("{}", registry.as_deref().unwrap_or("all registries"));
            for f in findings {
                println!("{}", f.line());
            }
        }
    }
    let failed = report
        .iter()
        .flat_map(|(_, f)| f)
        .filter(|f| f.status == Status::Fail)
        .count();
    if failed > 0 {
        bail!(
            "{failed} check{} failed",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn diagnose(registry: Option<&str>) -> Report {
    let mut global = vec![binary_finding()];
    let env = Environment::from_process();
    let from_env = match sources::environment(&env) {
        Ok(c) => c,
        Err(e) => {
            global.push(Finding::fail("environment", e.to_string()));
            Vec::new()
        }
    };
    let state_file = StateFile::open_default();
    let state = state_file
        .as_ref()
        .map_err(|e| e.to_string())
        .and_then(|f| f.load().map_err(|e| e.to_string()));
    let stored: Vec<String> = match &state {
        // A standby token is checked with its registry's entry (see the note in status).
        Ok(s) => s
            .entries
            .keys()
            .filter(|k| RegistryHost::standby_of(k).is_none())
            .cloned()
            .collect(),
        Err(e) => {
            global.push(Finding::fail("state file", e.clone()));
            Vec::new()
        }
    };
    if let (Ok(file), Ok(state)) = (&state_file, &state) {
        global.extend(store_findings(file, state));
    }
    let served: Vec<String> = stored
        .iter()
        .cloned()
        .chain(
            from_env
                .iter()
                .map(|c| c.host.as_str().to_owned())
                .filter(|h| !stored.contains(h)),
        )
        .collect();
    let hosts: Vec<Result<RegistryHost, String>> = match registry {
        Some(r) => vec![RegistryHost::parse(r).map_err(|e| e.to_string())],
        None if served.is_empty() && state.is_ok() => {
            global.push(
                Finding::fail("credentials", "no registry is stored")
                    .fix(format!("log in with {BINARY_NAME} login REGISTRY")),
            );
            Vec::new()
        }
        None => served
            .iter()
            .map(|r| RegistryHost::parse(r).map_err(|e| e.to_string()))
            .collect(),
    };
    let mut report: Report = vec![(None, global)];
    let mut net = Net::default();
    for host in hosts {
        match host {
            Err(e) => report.push((
                registry.map(str::to_owned),
                vec![Finding::fail("registry", e)],
            )),
            Ok(host) => {
                let entry = state
                    .as_ref()
                    .ok()
                    .and_then(|s| s.entries.get(host.as_str()));
                let env_credential = from_env.iter().find(|c| c.host == host);
                let findings = match (&state_file, &state, entry, env_credential) {
                    // Stored wins, as it does for `get`.
                    (Ok(_), Ok(_), None, Some(c)) => {
                        let mut out = docker_config_findings(&host);
                        out.extend(environment::check(&host, c, &env, &mut net));
                        out
                    }
                    (Ok(file), Ok(state), entry, _) => {
                        let mut out = check_registry(&host, file, entry, &mut net);
                        out.extend(renewal_findings(file, state, &host));
                        out
                    }
                    // Without the state file only Docker's side can be checked.
                    _ => docker_config_findings(&host),
                };
                report.push((Some(host.as_str().to_owned()), findings));
            }
        }
    }
    report
}

/// Renewal on a busy host: a standby pair, or the cuts a single token suffered; and a
/// min_validity no token can keep.
fn renewal_findings(file: &StateFile, state: &State, host: &RegistryHost) -> Vec<Finding> {
    const CHECK: &str = "renewal";
    let mut out = Vec::new();
    let Some(info) = state
        .entries
        .get(host.as_str())
        .and_then(|e| e.gitlab.as_ref())
        .filter(|i| i.can_renew())
    else {
        return out;
    };
    let standby = host.standby();
    if let Some(second) = state.entries.get(standby.as_str()) {
        let primary = &state.entries[host.as_str()];
        let active = if crate::sources::stored::standby_active(primary) {
            "the standby token"
        } else {
            "the first token"
        };
        out.push(match &second.gitlab {
            Some(g) if g.can_renew() => Finding::pass(
                CHECK,
                format!("a standby pair: get hands out {active}; renewals never cut a push"),
            ),
            _ => Finding::warn(CHECK, "the standby token cannot renew itself").fix(format!(
                "log in a renewable standby token: {BINARY_NAME} login {host} --standby"
            )),
        });
    } else if let Some((at, count)) = crate::leases::last_cut(file.dir(), host) {
        out.push(
            Finding::warn(
                CHECK,
                format!(
                    "the renewal at {at} revoked the token under {count} hand-out(s) still inside their promise \
                     (docker runs more often than min_validity here)"
                ),
            )
            .fix(format!(
                "add a second token so renewals never cut a push: {BINARY_NAME} login {host} --standby"
            )),
        );
    }
    if let Ok(settings) = crate::settings::Settings::load() {
        let min = settings.min_validity(host.as_str());
        let max = crate::renew::max_validity(info);
        if min > max {
            out.push(
                Finding::warn(
                    CHECK,
                    format!(
                        "min_validity ({}) is longer than renewing can give ({}): renewal cannot keep it",
                        crate::settings::describe(min),
                        crate::settings::describe(max)
                    ),
                )
                .fix("lower min_validity (DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY or config.json)"),
            );
        }
    }
    out
}

/// Where new secrets go (and why), and what a keyutils store cannot keep.
fn store_findings(file: &StateFile, state: &State) -> Vec<Finding> {
    const CHECK: &str = "secret store";
    let mut out = Vec::new();
    let current = match (StoreChoice::from_env(), file.lock()) {
        (Ok(choice), Ok(guard)) => store::current(&guard, choice),
        (Err(e), _) => return vec![Finding::fail(CHECK, e.to_string())],
        (_, Err(e)) => return vec![Finding::fail(CHECK, e.to_string())],
    };
    match &current.backend {
        Ok(b) => out.push(Finding::pass(
            CHECK,
            format!("new secrets go to {b} ({})", current.why),
        )),
        // Environment-only set-ups never write: then it is only a warning.
        Err(e) if state.entries.is_empty() => out.push(Finding::warn(CHECK, e.to_string())),
        Err(e) => out.push(Finding::fail(CHECK, e.to_string())),
    }
    let keyutils = current.backend.as_ref().ok() == Some(&Backend::Keyutils)
        || state.entries.values().any(|e| e.store == Backend::Keyutils);
    if keyutils {
        out.push(Finding::warn("keyutils", super::status::keyutils_limits()));
    }
    out
}

/// The HTTP client, built on first use (and only once).
#[derive(Default)]
struct Net {
    http: Option<Result<Http, String>>,
}

impl Net {
    fn get(&mut self) -> Result<&Http, String> {
        self.http
            .get_or_insert_with(|| Http::new().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

// ---------------------------------------------------------------------------------------
// 1. The binary docker runs

fn binary_finding() -> Finding {
    let me = std::env::current_exe().ok();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let hit = find_on_path(&path, BINARY_NAME);
    binary_check(me.as_deref(), hit.as_deref())
}

fn find_on_path(path: &std::ffi::OsStr, name: &str) -> Option<PathBuf> {
    let file = if cfg!(windows) {
        format!("{name}.exe")
    } else {
        name.to_owned()
    };
    std::env::split_paths(path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(&file))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

fn binary_check(me: Option<&Path>, hit: Option<&Path>) -> Finding {
    const CHECK: &str = "binary";
    let Some(hit) = hit else {
        let dir = me
            .and_then(Path::parent)
            .map(|d| format!(" (this one is in {})", d.display()))
            .unwrap_or_default();
        return Finding::fail(
            CHECK,
            format!("{BINARY_NAME} is not on PATH{dir}: docker cannot run the helper"),
        )
        .fix("install it into a directory on PATH (./install.sh uses ~/.local/bin) or add its directory to PATH");
    };
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    match me {
        Some(me) if canon(me) == canon(hit) => {
            Finding::pass(CHECK, format!("{} on PATH is this binary", hit.display()))
        }
        Some(me) => Finding::warn(
            CHECK,
            format!(
                "docker runs {}, a different copy from this one ({})",
                hit.display(),
                me.display()
            ),
        )
        .fix("remove the other copy or put this one's directory first on PATH"),
        None => Finding::warn(
            CHECK,
            format!(
                "docker runs {}; cannot tell whether it is this binary",
                hit.display()
            ),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// 2. Docker's config.json

fn docker_config_findings(host: &RegistryHost) -> Vec<Finding> {
    let Some(path) = docker_config::default_path() else {
        return vec![
            Finding::fail("docker config", "cannot find Docker's config directory")
                .fix("set DOCKER_CONFIG or HOME"),
        ];
    };
    let config = docker_config::read(&path);
    let env = std::env::var(docker_config::DOCKER_AUTH_CONFIG_ENV).ok();
    config_checks(host, &path, config, env.as_deref())
}

/// Pure: what the config file (already read) and `DOCKER_AUTH_CONFIG` mean for `host`.
fn config_checks(
    host: &RegistryHost,
    path: &Path,
    config: Result<Option<Value>, docker_config::ConfigError>,
    env_auth_config: Option<&str>,
) -> Vec<Finding> {
    const CHECK: &str = "docker config";
    let configure = format!("run {BINARY_NAME} configure-docker {host}");
    let mut out = Vec::new();
    let config = match config {
        Err(e) => return vec![Finding::fail(CHECK, e.to_string())],
        Ok(None) => {
            out.push(
                Finding::fail(
                    CHECK,
                    format!(
                        "{} does not exist: docker does not use the helper for {host}",
                        path.display()
                    ),
                )
                .fix(configure),
            );
            Value::Object(Default::default())
        }
        Ok(Some(v)) => {
            out.push(match docker_config::helper_for(&v, host.as_str()) {
                Some(HELPER_SUFFIX) => Finding::pass(
                    CHECK,
                    format!(
                        "credHelpers sends {host} to {BINARY_NAME} ({})",
                        path.display()
                    ),
                ),
                Some(other) if !other.is_empty() => Finding::fail(
                    CHECK,
                    format!(
                        "credHelpers sends {host} to docker-credential-{other}, not to this helper ({})",
                        path.display()
                    ),
                )
                .fix(format!("run {BINARY_NAME} configure-docker --force {host}")),
                _ => Finding::fail(
                    CHECK,
                    format!(
                        "credHelpers has no entry for {host} in {}: docker does not use the helper for it",
                        path.display()
                    ),
                )
                .fix(configure),
            });
            v
        }
    };

    let plaintext = config
        .get("auths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(key, entry)| same_host(key, host) && has_inline_secret(entry))
        .map(|(key, _)| key.clone())
        .collect::<Vec<_>>();
    for key in plaintext {
        out.push(
            Finding::warn(
                "docker auths",
                format!(
                    "{} holds a plaintext credential for {host} under \"auths\" → {key:?}",
                    path.display()
                ),
            )
            .fix("delete that entry so the old secret is off disk (the helper holds it now)"),
        );
    }

    if let Some(store) = config
        .get("credsStore")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && *s != HELPER_SUFFIX)
    {
        out.push(
            Finding::warn(
                "credsStore",
                format!(
                    "\"credsStore\" is {store:?}: docker-credential-{store} serves every registry without a credHelpers entry, \
                     and may still hold an old credential for {host}"
                ),
            )
            .fix(format!(
                "keep the credHelpers entry for {host}; remove its old credential with `docker-credential-{store} erase`"
            )),
        );
    }

    if let Some(value) = env_auth_config.filter(|v| !v.trim().is_empty()) {
        let lists_host = serde_json::from_str::<Value>(value)
            .ok()
            .and_then(|v| v.get("auths").and_then(Value::as_object).cloned())
            .is_some_and(|auths| auths.keys().any(|k| same_host(k, host)));
        let what = if lists_host {
            format!("it lists {host}, so docker CLI 28.3 and newer bypasses the helper for it")
        } else {
            "docker CLI 28.3 and newer uses its credentials before any credential helper".to_owned()
        };
        out.push(
            Finding::warn(
                "DOCKER_AUTH_CONFIG",
                format!("{} is set: {what}", docker_config::DOCKER_AUTH_CONFIG_ENV),
            )
            .fix("unset it (or drop this registry from it) to use the helper"),
        );
    }
    out
}

/// Compares an `auths` key (`https://host/v1/`, `host`, …) with a registry, as docker does.
fn same_host(key: &str, host: &RegistryHost) -> bool {
    RegistryHost::parse(key).is_ok_and(|k| k == *host)
}

fn has_inline_secret(entry: &Value) -> bool {
    entry.as_object().is_some_and(|o| {
        o.iter().any(|(k, v)| {
            ["auth", "password", "identitytoken", "registrytoken"]
                .iter()
                .any(|f| k.eq_ignore_ascii_case(f))
                && v.as_str().is_some_and(|s| !s.is_empty())
        })
    })
}

// ---------------------------------------------------------------------------------------
// 3.–7. The stored credential, at the store and at GitLab

fn check_registry(
    host: &RegistryHost,
    state_file: &StateFile,
    entry: Option<&crate::state::Entry>,
    net: &mut Net,
) -> Vec<Finding> {
    let mut out = docker_config_findings(host);
    let Some(entry) = entry else {
        out.push(
            Finding::fail("credential", format!("no credential is stored for {host}"))
                .fix(format!("log in with {BINARY_NAME} login {host}")),
        );
        return out;
    };

    const STORE: &str = "store";
    let secret = match credentials::load(state_file, host) {
        // An OAuth entry stores its token pair; docker gets (and GitLab sees) the access token.
        Ok(Some((e, secret)))
            if e.gitlab
                .as_ref()
                .is_some_and(|g| g.kind == TokenKind::OauthToken) =>
        {
            out.push(Finding::pass(
                STORE,
                format!("the {} store answers and holds the token pair", entry.store),
            ));
            crate::renew::oauth::access_token(&secret)
        }
        Ok(Some((_, secret))) => {
            out.push(Finding::pass(
                STORE,
                format!("the {} store answers and holds the secret", entry.store),
            ));
            secret
        }
        Ok(None) => {
            out.push(
                Finding::fail(
                    STORE,
                    format!(
                        "the state file lists {host} but the {} store holds no secret for it",
                        entry.store
                    ),
                )
                .fix(format!("log in again with {BINARY_NAME} login {host}")),
            );
            return out;
        }
        Err(e) => {
            out.push(Finding::fail(STORE, e.to_string()));
            return out;
        }
    };

    let Some(info) = &entry.gitlab else {
        out.push(
            Finding::warn(
                "gitlab",
                "stored by docker login: GitLab instance unknown, so the token cannot be checked",
            )
            .fix(format!("run {BINARY_NAME} login {host} to enable checks")),
        );
        return out;
    };

    let http = match net.get() {
        Ok(h) => h,
        Err(e) => {
            out.push(Finding::fail("gitlab", e));
            out.extend(token_findings(info, None, crate::clock::now()));
            return out;
        }
    };
    out.extend(check_at_gitlab(http, host, &entry.username, &secret, info));
    out
}

fn check_at_gitlab(
    http: &Http,
    host: &RegistryHost,
    username: &str,
    secret: &Secret,
    info: &GitLabInfo,
) -> Vec<Finding> {
    const REGISTRY: &str = "registry";
    const JWT: &str = "/jwt/auth";
    let now = crate::clock::now();
    let mut out = Vec::new();

    let challenge = match gitlab::discover(http, host) {
        Ok(c) => c,
        Err(e) => {
            out.push(Finding::fail(REGISTRY, e.to_string()));
            out.extend(token_findings(info, None, now));
            return out;
        }
    };
    let gitlab_url = match realm_matches(&challenge, info) {
        Ok(url) => url,
        Err(f) => {
            out.push(f);
            out.extend(token_findings(info, None, now));
            return out;
        }
    };
    out.push(Finding::pass(
        REGISTRY,
        format!(
            "{host} sends clients to {}, the GitLab recorded at login",
            redact(&challenge.realm)
        ),
    ));

    let jwt = gitlab::jwt_auth(http, &challenge, username, secret, None);
    let reachable = !matches!(
        jwt,
        Err(GitLabError::Timeout { .. }
            | GitLabError::Connect { .. }
            | GitLabError::Network { .. })
    );
    // Fresh facts for access tokens (any PAT scope may call this endpoint).
    let pat = (reachable && info.kind == TokenKind::PersonalAccessToken)
        .then(|| gitlab::personal_access_token_self(http, &gitlab_url, secret));
    let mut registry_token = None;
    match jwt {
        Ok(JwtAuth::Token(t)) => {
            out.push(Finding::pass(
                JWT,
                "GitLab accepts the credential and issues registry tokens",
            ));
            registry_token = Some(t);
        }
        Ok(JwtAuth::Unauthorized(_)) => out.push(
            Finding::fail(
                JWT,
                "GitLab refused the credential (401): it is wrong, expired or revoked",
            )
            .fix(format!(
                "create a new token with read_registry, write_registry and self_rotate and log in again: {BINARY_NAME} login {host}"
            )),
        ),
        Ok(JwtAuth::Denied(message)) => {
            let with_auth = JwtOutcome {
                status: 403,
                message,
            };
            let anonymous = anonymous_jwt_auth(http, &challenge);
            let token_ok = match &pat {
                Some(Ok(PatSelf::Pat(p))) => p.active && !p.revoked && can_pull(&p.scopes),
                _ => false,
            };
            out.push(explain_forbidden(&with_auth, &anonymous, token_ok));
        }
        Err(e) => out.push(Finding::fail(JWT, e.to_string())),
    }

    let fresh = match pat {
        Some(Ok(PatSelf::Pat(p))) => Some(p),
        Some(Ok(PatSelf::Unauthorized(reason))) => {
            out.push(
                Finding::fail("token", format!("GitLab says: {reason}")).fix(format!(
                    "create a new token and log in again: {BINARY_NAME} login {host}"
                )),
            );
            return out;
        }
        Some(Ok(PatSelf::NotPat)) => {
            out.push(Finding::warn(
                "token",
                "GitLab no longer describes the credential as an access token; showing what was recorded at login",
            ));
            None
        }
        Some(Err(e)) => {
            out.push(Finding::warn(
                "token",
                format!(
                    "cannot ask GitLab about the token ({e}); showing what was recorded at login"
                ),
            ));
            None
        }
        None => None,
    };
    out.extend(token_findings(info, fresh.as_ref(), now));
    if let Some(t) = registry_token {
        out.push(window_finding(
            jwt::time_claims(&t).map(|c| c.window_secs()),
        ));
    }
    out
}

/// The token may only go to the GitLab recorded at login; returns that GitLab's URL.
fn realm_matches(challenge: &Challenge, info: &GitLabInfo) -> Result<Url, Finding> {
    const CHECK: &str = "registry";
    let realm = redact(&challenge.realm);
    let recorded = Url::parse(&info.url).ok();
    let realm_gitlab = challenge.gitlab_url();
    match (realm_gitlab, recorded) {
        (Some(now), Some(recorded)) if same_base(&now, &recorded) => {
            check_transport(&challenge.realm).map_err(|e| Finding::fail(CHECK, e.to_string()))?;
            Ok(now)
        }
        _ => Err(Finding::fail(
            CHECK,
            format!(
                "the registry now points at another GitLab (sends clients to {realm}, recorded at login: {}); refusing to send the token",
                info.url
            ),
        )
        .fix("if the move is expected, log in again with a token from the new GitLab")),
    }
}

/// What `/jwt/auth` answered: the HTTP status (0 when it could not be reached) and
/// GitLab's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtOutcome {
    pub status: u16,
    pub message: String,
}

/// `/jwt/auth` once more, without any credential, to compare with the authenticated answer.
fn anonymous_jwt_auth(http: &Http, challenge: &Challenge) -> JwtOutcome {
    match http.request(
        Method::GET,
        challenge.realm.clone(),
        Auth::None,
        &[("service", challenge.service.as_str())],
    ) {
        Ok(resp) => JwtOutcome {
            status: resp.status.as_u16(),
            message: gitlab::error_message(&resp.body),
        },
        Err(e) => JwtOutcome {
            status: 0,
            message: e.to_string(),
        },
    }
}

/// Tells apart the reasons for a 403 at `/jwt/auth`. `token_ok`: GitLab's token API accepts
/// the token and lists a registry read scope.
///
/// GitLab answers an anonymous `/jwt/auth` request without a scope with the same 403
/// "access forbidden" as a token without registry scope. So if the answer with our
/// credential is identical to the answer without any, while the token itself is fine, the
/// credential never reached GitLab: something between us and GitLab dropped the
/// `Authorization` header (GitLab's "docker login fails with access forbidden"
/// troubleshooting case).
pub fn explain_forbidden(
    with_auth: &JwtOutcome,
    anonymous: &JwtOutcome,
    token_ok: bool,
) -> Finding {
    const CHECK: &str = "/jwt/auth";
    let said = format!("403: {}", with_auth.message);
    if with_auth
        .message
        .contains("Too many failed authentication attempts")
    {
        return Finding::fail(
            CHECK,
            format!("GitLab has banned this IP address after failed logins ({said})"),
        )
        .fix("wait for the ban to expire and make sure no job or client retries an old token");
    }
    let same_as_anonymous = anonymous.status == with_auth.status
        && anonymous.message == with_auth.message
        && with_auth.message.contains("access forbidden");
    if same_as_anonymous && token_ok {
        return Finding::fail(
            CHECK,
            format!(
                "GitLab treated the request as anonymous ({said}, exactly what it answers without credentials) although its token API accepts the token with registry scope: \
                 a proxy between you and GitLab probably strips the Authorization header on /jwt/auth \
                 (GitLab docs: \"docker login command fails with access forbidden\")"
            ),
        )
        .fix("configure the proxy to pass the Authorization header through to /jwt/auth unchanged");
    }
    if token_ok {
        return Finding::fail(
            CHECK,
            format!(
                "GitLab refuses registry access ({said}) although the token has registry scope: the account may be blocked or have lost access"
            ),
        )
        .fix("check the account's state and project membership in GitLab");
    }
    Finding::fail(
        CHECK,
        format!("GitLab accepts the credential but refuses registry access ({said}): the token lacks read_registry"),
    )
    .fix("create a token with read_registry (pull) and write_registry (push) and log in again")
}

/// Scopes, expiry and renewability: from GitLab's fresh answer when there is one, else from
/// what `login` recorded.
fn token_findings(
    info: &GitLabInfo,
    fresh: Option<&PatInfo>,
    now: jiff::Timestamp,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let scopes = fresh.map_or(info.scopes.as_slice(), |p| p.scopes.as_slice());
    let expires = fresh.map_or(info.expires_at, PatInfo::expires_instant);
    let source = if fresh.is_some() {
        "GitLab says"
    } else {
        "recorded at login"
    };

    match info.kind {
        TokenKind::PersonalAccessToken => {
            let list = if scopes.is_empty() {
                "none".to_owned()
            } else {
                scopes.join(", ")
            };
            out.push(if !can_pull(scopes) {
                Finding::fail("scopes", format!("{list} ({source}): no read_registry, cannot pull"))
                    .fix("create a token with read_registry and write_registry and log in again")
            } else if !can_push(scopes) {
                Finding::warn(
                    "scopes",
                    format!("{list} ({source}): no write_registry, can pull but not push"),
                )
                .fix("create a token with write_registry if you push")
            } else {
                Finding::pass("scopes", format!("{list} ({source}): pull and push"))
            });
            let renewable = crate::gitlab::token::can_renew(TokenKind::PersonalAccessToken, scopes);
            out.push(if renewable {
                Finding::pass("renewal", "the token can rotate itself (api or self_rotate)")
            } else {
                Finding::warn(
                    "renewal",
                    "the token cannot renew itself (no api or self_rotate scope): when it expires you must create a new one",
                )
                .fix("create the next token with self_rotate")
            });
        }
        TokenKind::DeployToken => out.push(Finding::warn(
            "renewal",
            "deploy tokens cannot be renewed or inspected through the API",
        )),
        TokenKind::OauthToken => out.push(
            Finding::warn("renewal", "OAuth access tokens expire after 2 hours")
                .fix("use an access token with self_rotate"),
        ),
        TokenKind::JobToken => out.push(Finding::warn(
            "renewal",
            "CI job tokens only work while their job runs",
        )),
        TokenKind::Password => out.push(
            Finding::warn(
                "renewal",
                "this looks like an account password: GitLab refuses passwords when two-factor authentication is on",
            )
            .fix("use an access token with read_registry, write_registry and self_rotate"),
        ),
    }

    match expires {
        Some(at) => {
            let days = at.duration_since(now).as_hours().div_euclid(24);
            let date = at.strftime("%Y-%m-%d");
            out.push(if at <= now {
                Finding::fail("expiry", format!("the token expired on {date} ({source})"))
                    .fix("create a new token and log in again")
            } else if days < EXPIRY_WARNING_DAYS {
                Finding::warn(
                    "expiry",
                    format!("the token expires on {date}, in {days} days ({source})"),
                )
                .fix("create a new token before then (or let the helper rotate it)")
            } else {
                Finding::pass(
                    "expiry",
                    format!("the token expires on {date}, in {days} days ({source})"),
                )
            });
        }
        None if info.kind == TokenKind::PersonalAccessToken => out.push(Finding::pass(
            "expiry",
            format!("the token does not expire ({source})"),
        )),
        None => {}
    }
    out
}

/// The registry token window: how long a registry token lives (`exp - iat`).
fn window_finding(window: Result<Option<i64>, jwt::JwtError>) -> Finding {
    const CHECK: &str = "token window";
    match window {
        Err(e) => Finding::warn(CHECK, format!("cannot measure it: {e}")),
        Ok(None) => Finding::warn(
            CHECK,
            "cannot measure it: the registry token has no iat/exp claims",
        ),
        Ok(Some(secs)) if secs < SHORT_WINDOW_SECS => {
            let w = human_window(secs);
            Finding::warn(
                CHECK,
                format!(
                    "registry tokens live {w}: a push longer than {w} can fail with \"unauthorized: authentication required\" \
                     when a layer upload outlives the registry token"
                ),
            )
            .fix(format!("ask your GitLab admin to raise {WINDOW_SETTING}"))
        }
        Ok(Some(secs)) => Finding::pass(
            CHECK,
            format!(
                "registry tokens live {}: pushes shorter than that are safe",
                human_window(secs)
            ),
        ),
    }
}

fn human_window(secs: i64) -> String {
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(s: &str) -> RegistryHost {
        RegistryHost::parse(s).unwrap()
    }

    fn statuses(f: &[Finding]) -> Vec<(&str, Status)> {
        f.iter().map(|f| (f.check.as_str(), f.status)).collect()
    }

    const FORBIDDEN: &str = "access forbidden";

    fn outcome(status: u16, message: &str) -> JwtOutcome {
        JwtOutcome {
            status,
            message: message.into(),
        }
    }

    #[test]
    fn stripped_authorization_header_is_recognised() {
        let f = explain_forbidden(&outcome(403, FORBIDDEN), &outcome(403, FORBIDDEN), true);
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.message.contains("treated the request as anonymous"),
            "{}",
            f.line()
        );
        assert!(
            f.message.contains("strips the Authorization header"),
            "{}",
            f.line()
        );
        assert!(f.fix.as_deref().unwrap().contains("proxy"));
    }

    #[test]
    fn other_forbidden_cases() {
        // The token API does not vouch for the token: the usual missing scope.
        let f = explain_forbidden(&outcome(403, FORBIDDEN), &outcome(403, FORBIDDEN), false);
        assert!(f.message.contains("lacks read_registry"), "{}", f.line());
        // Anonymous answers differently (e.g. a public-pull-only instance): not the proxy.
        let f = explain_forbidden(&outcome(403, FORBIDDEN), &outcome(200, ""), true);
        assert!(!f.message.contains("proxy"), "{}", f.line());
        // Unreachable anonymous request: no proxy claim either.
        let f = explain_forbidden(&outcome(403, FORBIDDEN), &outcome(0, FORBIDDEN), true);
        assert!(!f.message.contains("proxy"), "{}", f.line());
        let f = explain_forbidden(
            &outcome(403, "Too many failed authentication attempts from this IP"),
            &outcome(403, "Too many failed authentication attempts from this IP"),
            true,
        );
        assert!(f.message.contains("banned"), "{}", f.line());
    }

    #[test]
    fn line_format() {
        let f = Finding::warn("token window", "short").fix("raise it");
        assert_eq!(f.line(), "WARN  token window: short; raise it");
        assert_eq!(Finding::pass("x", "ok").line(), "PASS  x: ok");
        let row = Row {
            registry: Some("r"),
            finding: &f,
        };
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            json!({"registry": "r", "check": "token window", "status": "warn", "message": "short", "fix": "raise it"})
        );
    }

    #[test]
    fn docker_config_checks() {
        let h = host("gitlab.example.com:5050");
        let p = Path::new("/h/.docker/config.json");
        let ok = json!({"credHelpers": {"gitlab.example.com:5050": "gitlab"}});
        let f = config_checks(&h, p, Ok(Some(ok)), None);
        assert_eq!(statuses(&f), [("docker config", Status::Pass)]);

        let other = json!({"credHelpers": {"gitlab.example.com:5050": "desktop"}});
        let f = config_checks(&h, p, Ok(Some(other)), None);
        assert_eq!(f[0].status, Status::Fail);
        assert!(f[0].message.contains("docker-credential-desktop"));
        assert!(f[0].fix.as_deref().unwrap().contains("--force"));

        let f = config_checks(&h, p, Ok(None), None);
        assert_eq!(f[0].status, Status::Fail);

        let shadowed = json!({
            "auths": {"https://gitlab.example.com:5050": {"auth": "dTpw"}, "gitlab.example.com": {"auth": "eA=="}},
            "credsStore": "desktop",
            "credHelpers": {"gitlab.example.com:5050": "gitlab"}
        });
        let f = config_checks(
            &h,
            p,
            Ok(Some(shadowed)),
            Some(r#"{"auths":{"gitlab.example.com:5050":{"auth":"x"}}}"#),
        );
        assert_eq!(
            statuses(&f),
            [
                ("docker config", Status::Pass),
                ("docker auths", Status::Warn),
                ("credsStore", Status::Warn),
                ("DOCKER_AUTH_CONFIG", Status::Warn),
            ]
        );
        assert!(
            f[3].message.contains("bypasses the helper"),
            "{}",
            f[3].line()
        );
        // Secrets from the file never reach the messages.
        assert!(f.iter().all(|x| !x.line().contains("dTpw")));
    }

    #[test]
    fn binary_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = format!("{BINARY_NAME}{}", std::env::consts::EXE_SUFFIX);
        let me = dir.path().join("a").join(&file);
        let other = dir.path().join("b").join(&file);
        for p in [&me, &other] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        let path = std::env::join_paths([dir.path().join("a"), dir.path().join("b")]).unwrap();
        let hit = find_on_path(&path, BINARY_NAME).unwrap();
        assert_eq!(binary_check(Some(&me), Some(&hit)).status, Status::Pass);
        assert_eq!(binary_check(Some(&other), Some(&hit)).status, Status::Warn);
        assert_eq!(binary_check(Some(&me), None).status, Status::Fail);
    }

    /// Built from JSON so that fields added to the state later (all defaulted) need no edit.
    fn pat_info(scopes: &[&str], days: Option<i64>) -> GitLabInfo {
        let mut info: GitLabInfo = serde_json::from_value(json!({
            "url": "https://gitlab.example.com",
            "kind": "personal_access_token",
            "scopes": scopes,
            "validated_at": crate::clock::now(),
        }))
        .unwrap();
        info.expires_at =
            days.map(|d| crate::clock::now() + jiff::SignedDuration::from_hours(24 * d + 1));
        info
    }

    #[test]
    fn token_checks() {
        let now = crate::clock::now();
        let full = pat_info(
            &["read_registry", "write_registry", "self_rotate"],
            Some(90),
        );
        let f = token_findings(&full, None, now);
        assert_eq!(
            statuses(&f),
            [
                ("scopes", Status::Pass),
                ("renewal", Status::Pass),
                ("expiry", Status::Pass)
            ]
        );
        let weak = pat_info(&["read_registry"], Some(10));
        let f = token_findings(&weak, None, now);
        assert_eq!(
            statuses(&f),
            [
                ("scopes", Status::Warn),
                ("renewal", Status::Warn),
                ("expiry", Status::Warn)
            ]
        );
        let expired = pat_info(&["api"], Some(-3));
        let f = token_findings(&expired, None, now);
        assert_eq!(f[2].status, Status::Fail);
        // GitLab's fresh answer wins over the recorded scopes.
        let fresh: PatInfo = serde_json::from_value(json!({
            "id": 1, "name": "n", "scopes": ["read_api"], "active": true, "expires_at": null
        }))
        .unwrap();
        let f = token_findings(&full, Some(&fresh), now);
        assert_eq!(f[0].status, Status::Warn, "{}", f[0].line());
        assert!(f[0].message.contains("GitLab says"));
    }

    #[test]
    fn window_wording() {
        let f = window_finding(Ok(Some(300)));
        assert_eq!(f.status, Status::Warn);
        assert!(f.message.contains("live 5 min"), "{}", f.line());
        assert!(f.message.contains("unauthorized: authentication required"));
        assert!(f.fix.unwrap().contains("Authorization token duration"));
        let f = window_finding(Ok(Some(900)));
        assert_eq!(f.status, Status::Pass, "{}", f.line());
        assert_eq!(human_window(90), "1 min 30 s");
        assert_eq!(human_window(45), "45 s");
        assert_eq!(window_finding(Ok(None)).status, Status::Warn);
    }

    #[test]
    fn realm_must_match_the_recorded_gitlab() {
        let info = pat_info(&[], None);
        let same = Challenge {
            realm: Url::parse("https://gitlab.example.com/jwt/auth").unwrap(),
            service: "container_registry".into(),
        };
        assert!(realm_matches(&same, &info).is_ok());
        let moved = Challenge {
            realm: Url::parse("https://evil.example/jwt/auth").unwrap(),
            service: "container_registry".into(),
        };
        let f = realm_matches(&moved, &info).unwrap_err();
        assert!(
            f.message.contains("refusing to send the token"),
            "{}",
            f.line()
        );
    }
}
