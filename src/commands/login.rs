//! `login`: the validating replacement for `docker login`.
//!
//! Nothing is stored until GitLab has accepted the credential for the registry:
//! 1. ask the registry who issues its tokens (`/v2/` challenge → GitLab's `/jwt/auth`);
//! 2. exchange the credential there exactly as docker will (401/403 explained);
//! 3. learn what it is (PAT introspection, OAuth token info, hints) and warn about scopes,
//!    renewability and expiry;
//! 4. store secret + metadata, then point Docker at the helper.

use std::io::{IsTerminal, Read};

use anyhow::{Context, bail};
use reqwest::Url;

use crate::docker;
use crate::env::Env;
use crate::gitlab::http::{Http, same_base};
use crate::gitlab::{self, Challenge, JwtAuth, PatInfo, PatSelf};
use crate::model::token::{EXPIRY_WARNING_DAYS, can_pull, can_push};
use crate::model::{GitLabInfo, Resource, TokenKind};
use crate::policy::skew;
use crate::records::{NewCredential, Records};
use crate::registry::RegistryHost;
use crate::secret::{ExposeSecret, Secret};
use crate::sources::gitlab_ci::JOB_TOKEN_USER;
use crate::store::StoreChoice;

pub(crate) use crate::gitlab::DEFAULT_USERNAME;

/// `login`'s flags, with a token (here) or `--oauth` ([`super::oauth_login::run`]). The
/// field comments are the `--help` text.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LoginArgs {
    /// The registry host, e.g. registry.gitlab.com or gitlab.example.com:5050.
    #[arg(default_value = "registry.gitlab.com")]
    pub registry: String,
    /// The username sent with the token (required for deploy tokens; GitLab ignores
    /// it for personal access tokens).
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the token from stdin instead of prompting for it.
    #[arg(long)]
    pub password_stdin: bool,
    /// The GitLab instance the registry belongs to (checked against the registry).
    #[arg(long, value_name = "URL")]
    pub gitlab_url: Option<String>,
    /// Do not add the registry to Docker's credHelpers.
    #[arg(long)]
    pub no_configure: bool,
    /// Add a second token for a registry already logged in (same user or project):
    /// `get` switches between the two so that renewals never revoke a token a push
    /// is using, however busy the machine.
    #[arg(long)]
    pub standby: bool,
    /// Log in through GitLab's OAuth device flow instead of with a token: open a URL,
    /// enter a code, done. Needs an OAuth application on the GitLab instance.
    #[arg(long, conflicts_with_all = ["username", "password_stdin"])]
    pub oauth: bool,
    /// The OAuth application's client id (else config.json's oauth_client_ids for the
    /// GitLab, else DOCKER_CREDENTIAL_GITLAB_OAUTH_CLIENT_ID).
    #[arg(long, value_name = "ID", requires = "oauth")]
    pub client_id: Option<String>,
    /// The OAuth scopes to ask for (default: "read_registry write_registry").
    #[arg(long, value_name = "SCOPES", requires = "oauth")]
    pub scopes: Option<String>,
}

pub(crate) fn run(env: &Env, args: &LoginArgs) -> anyhow::Result<()> {
    let host = RegistryHost::parse(&args.registry)?;
    if host.is_docker_hub() {
        bail!("{host} is Docker Hub, not a GitLab registry; use `docker login` for it");
    }
    let requested_gitlab = args
        .gitlab_url
        .as_deref()
        .map(parse_gitlab_url)
        .transpose()?;
    let secret = read_token(args.password_stdin, &host)?;

    let http = Http::new()?;
    let accepted = exchange(
        &http,
        &host,
        requested_gitlab.as_ref(),
        args.username.clone(),
        &secret,
    )?;
    let info = learn(&http, &accepted, &secret)?;
    store_and_report(env, args, &host, &info, &accepted.username, &secret)
}

/// What GitLab accepted at `/jwt/auth`: its URL, the username, the registry token it issued.
struct Accepted {
    gitlab_url: Url,
    username: String,
    registry_token: String,
    looks_like_deploy_token: bool,
}

/// Steps 1 and 2: find the GitLab that issues the registry's tokens and exchange the
/// credential there exactly as docker will; a refusal is an error that says why.
fn exchange(
    http: &Http,
    host: &RegistryHost,
    requested_gitlab: Option<&Url>,
    username: Option<String>,
    secret: &Secret,
) -> anyhow::Result<Accepted> {
    let challenge = gitlab::discover(http, host)?;
    let gitlab_url = choose_gitlab(host, &challenge, requested_gitlab)?;
    let gitlab_display = gitlab_url.as_str().trim_end_matches('/').to_owned();
    eprintln!("GitLab instance for {host}: {gitlab_display}");

    let looks_like_deploy_token = secret.expose_secret().starts_with("gldt-")
        || username
            .as_deref()
            .is_some_and(|u| u.starts_with("gitlab+deploy-token"));
    if looks_like_deploy_token && username.is_none() {
        bail!(
            "deploy tokens only work with their own username: pass --username (e.g. gitlab+deploy-token-1, shown when the token was created)"
        );
    }
    let username = username.unwrap_or_else(|| DEFAULT_USERNAME.to_owned());

    let registry_token = match gitlab::jwt_auth(http, &challenge, &username, secret, None)? {
        JwtAuth::Token(token) => token,
        JwtAuth::Unauthorized(message) => bail!(
            "GitLab refused the credential for {host} (401: {message}). It is wrong, expired or revoked{hint}; \
             create a token at {gitlab_display}/-/user_settings/personal_access_tokens with read_registry and write_registry",
            hint = if looks_like_deploy_token {
                ", or the username is not the deploy token's own"
            } else {
                ""
            },
        ),
        JwtAuth::Denied(message) => bail!(
            "GitLab accepted the credential but refuses registry access (403: {message}); \
             the token needs the read_registry scope to pull and write_registry to push"
        ),
    };
    Ok(Accepted {
        gitlab_url,
        username,
        registry_token,
        looks_like_deploy_token,
    })
}

/// Step 3: what the accepted credential is; warns about scopes, renewability and expiry.
fn learn(http: &Http, accepted: &Accepted, secret: &Secret) -> anyhow::Result<GitLabInfo> {
    let mut info = identify(
        http,
        &accepted.gitlab_url,
        &accepted.username,
        secret,
        accepted.looks_like_deploy_token,
    )?;
    if info.kind == TokenKind::PersonalAccessToken {
        // Project/group tokens belong to bot users; they rotate through their resource.
        info.resource = gitlab::jwt::subject(&accepted.registry_token)
            .as_deref()
            .and_then(Resource::from_bot_username);
    }
    for warning in warnings(&info) {
        eprintln!("warning: {warning}");
    }
    Ok(info)
}

/// Step 4: store the credential (as the registry's token or its standby), point Docker at
/// the helper unless told not to, and say what was done.
fn store_and_report(
    env: &Env,
    args: &LoginArgs,
    host: &RegistryHost,
    info: &GitLabInfo,
    username: &str,
    secret: &Secret,
) -> anyhow::Result<()> {
    let backend = store(env, host, info, username, secret, args.standby)?;
    if args.standby {
        println!(
            "Stored {} as the standby token for {host} in the {backend} store: get switches to it \
             before the other one needs renewing, so renewals never revoke a token a push is using.",
            describe(info)
        );
        println!("Login Succeeded");
        return Ok(());
    }
    println!(
        "Stored {} for {host} in the {backend} store.",
        describe(info)
    );

    if !args.no_configure {
        configure_docker_for(env, host)?;
    }
    println!("Login Succeeded");
    Ok(())
}

/// A standby token must be a second, renewable access token of the same user (or project
/// or group) at the same GitLab as the registry's token.
fn check_standby(records: &Records, host: &RegistryHost, info: &GitLabInfo) -> anyhow::Result<()> {
    let state = records.snapshot()?;
    let primary = state
        .entries
        .get(host.as_str())
        .and_then(|e| e.gitlab.as_ref())
        .with_context(|| {
            format!("log in to {host} first (docker-credential-gitlab login {host}); --standby adds a second token")
        })?;
    if !info.can_renew() {
        bail!(
            "a standby token must be able to renew itself (an access token with the self_rotate or api scope, \
             or an OAuth token with a refresh token); this is a {} that cannot",
            info.kind.describe()
        );
    }
    if primary.url != info.url {
        bail!(
            "the standby token belongs to {}, but {host}'s token to {}",
            info.url,
            primary.url
        );
    }
    if primary.token_id.is_some() && primary.token_id == info.token_id {
        bail!("that is the token {host} already has; create a second one");
    }
    let same_owner = match (primary.resource, info.resource) {
        (Some(a), Some(b)) => a == b,
        (None, None) => primary.user_id.is_none() || primary.user_id == info.user_id,
        _ => false,
    };
    if !same_owner {
        bail!(
            "the standby token belongs to another user or project than {host}'s token; both must give the same access"
        );
    }
    Ok(())
}

/// A registry's own token is never its standby's too: one renewal would revoke both.
fn check_not_standby(
    records: &Records,
    host: &RegistryHost,
    info: &GitLabInfo,
) -> anyhow::Result<()> {
    let state = records.snapshot()?;
    let standby = state
        .entries
        .get(host.standby().as_str())
        .and_then(|e| e.gitlab.as_ref());
    if let Some(standby) = standby
        && info.token_id.is_some()
        && standby.token_id == info.token_id
        && standby.url == info.url
    {
        bail!(
            "that is {host}'s standby token; log in with another token, or run `docker-credential-gitlab logout {host}` first"
        );
    }
    Ok(())
}

/// What both logins do once GitLab accepted the credential: warn about a min_validity no
/// renewal can keep, check a standby, store the secret (the registry's key, or its
/// standby's) and the facts. Returns the store that took it.
pub(super) fn store(
    env: &Env,
    host: &RegistryHost,
    info: &GitLabInfo,
    username: &str,
    secret: &Secret,
    standby: bool,
) -> anyhow::Result<crate::store::Backend> {
    // A min_validity no token can keep: say so now, not on every docker command.
    let min = crate::settings::Settings::load(env)?.min_validity(host.as_str());
    if let Some(unkeepable) = crate::policy::unkeepable(info, min) {
        eprintln!("warning: {host}: {unkeepable}: renewal cannot keep that promise; lower it");
    }
    let records = Records::locate(env)?;
    let key = if standby {
        check_standby(&records, host, info)?;
        host.standby()
    } else {
        check_not_standby(&records, host, info)?;
        host.clone()
    };
    Ok(records.save(
        StoreChoice::from_env(env)?,
        NewCredential {
            host: &key,
            server_url: host.as_str(),
            username,
            secret,
            gitlab: Some(info.clone()),
        },
    )?)
}

/// Adds the `credHelpers` entry for `host`, printing what changed and any warnings.
pub(super) fn configure_docker_for(env: &Env, host: &RegistryHost) -> anyhow::Result<()> {
    let path = docker::default_path(env)
        .context("cannot find Docker's config directory: set DOCKER_CONFIG or HOME")?;
    let plan = docker::configure_with(
        &path,
        &[host.as_str().to_owned()],
        crate::HELPER_SUFFIX,
        false,
        false,
        docker::docker_auth_config(env).as_deref(),
    )
    .with_context(|| {
        format!("the credential is stored, but Docker is not set up to use it for {host}")
    })?;
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    if plan.changed {
        println!(
            "Docker now uses docker-credential-gitlab for {host} ({}).",
            path.display()
        );
    }
    Ok(())
}

pub(super) fn parse_gitlab_url(s: &str) -> anyhow::Result<Url> {
    let mut url = Url::parse(s.trim()).with_context(|| {
        format!("--gitlab-url {s:?} is not a URL such as https://gitlab.example.com")
    })?;
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    gitlab::http::check_transport(&url)?;
    Ok(url)
}

/// Picks the GitLab instance the token will be sent to. The registry's realm decides (that
/// is where docker will send the token anyway); a `--gitlab-url` or the built-in
/// registry.gitlab.com → gitlab.com mapping must agree with it, otherwise the registry is
/// pointing somewhere unexpected and we refuse.
pub(super) fn choose_gitlab(
    host: &RegistryHost,
    challenge: &Challenge,
    requested: Option<&Url>,
) -> anyhow::Result<Url> {
    gitlab::http::check_transport(&challenge.realm)?;
    let realm_gitlab = challenge.gitlab_url().with_context(|| {
        format!(
            "{host} sends clients to {} for tokens, which is not a GitLab /jwt/auth endpoint; refusing to send your token there",
            gitlab::http::redact(&challenge.realm)
        )
    })?;
    let expected = match requested {
        Some(url) => Some(url.clone()),
        None if host.as_str() == gitlab::GITLAB_COM_REGISTRY => {
            Some(Url::parse(gitlab::GITLAB_COM).expect("valid"))
        }
        None => None,
    };
    if let Some(expected) = expected
        && !same_base(&expected, &realm_gitlab)
    {
        bail!(
            "{host} sends tokens to {realm_gitlab}, not to {expected}; refusing to send your token to an unexpected GitLab \
             (check the registry name, or pass the right --gitlab-url)"
        );
    }
    Ok(realm_gitlab)
}

/// Works out what the credential is, from GitLab's answers; prefixes are only hints.
fn identify(
    http: &Http,
    gitlab_url: &Url,
    username: &str,
    secret: &Secret,
    deploy_hint: bool,
) -> anyhow::Result<GitLabInfo> {
    // Every answer below came from GitLab: the latest one's `Date` gives the clock skew.
    let base = |kind| GitLabInfo {
        clock_skew_secs: http.skew(gitlab_url).map(skew::to_record),
        ..GitLabInfo::new(gitlab_url.as_str(), kind)
    };
    if let PatSelf::Pat(pat) = gitlab::personal_access_token_self(http, gitlab_url, secret)? {
        return Ok(pat_info(base(TokenKind::PersonalAccessToken), pat));
    }
    if username == JOB_TOKEN_USER {
        return Ok(base(TokenKind::JobToken));
    }
    if deploy_hint {
        return Ok(base(TokenKind::DeployToken));
    }
    if gitlab::is_oauth_token(http, gitlab_url, secret)? {
        return Ok(base(TokenKind::OauthToken));
    }
    Ok(base(TokenKind::Password))
}

/// `info` completed with GitLab's description of the PAT; its expiry (GitLab's clock)
/// converted to this machine's with the skew `info` records.
fn pat_info(mut info: GitLabInfo, pat: PatInfo) -> GitLabInfo {
    info.expires_at = pat
        .expires_instant()
        .map(|at| skew::to_local(at, skew::recorded(&info)));
    info.lifetime_days = pat.lifetime_days();
    info.scopes = pat.scopes;
    info.token_id = Some(pat.id);
    info.token_name = Some(pat.name);
    info.user_id = pat.user_id;
    info
}

/// What the user should know before relying on this credential for pushes.
pub fn warnings(info: &GitLabInfo) -> Vec<String> {
    let mut out = Vec::new();
    match info.kind {
        TokenKind::PersonalAccessToken => {
            if !can_pull(&info.scopes) {
                out.push("the token lacks read_registry: it cannot pull".to_owned());
            }
            if !can_push(&info.scopes) {
                out.push("the token lacks write_registry: it can pull but not push".to_owned());
            }
            if !info.can_renew() {
                out.push(
                    "the token cannot renew itself (no api or self_rotate scope): when it expires you must create a new one; \
                     add the self_rotate scope to let the helper rotate it before it expires"
                        .to_owned(),
                );
            }
        }
        TokenKind::DeployToken => out.push(
            "deploy tokens cannot be renewed or inspected through the API; pushes need its write_registry scope".to_owned(),
        ),
        TokenKind::Password => out.push(
            "this looks like an account password (or a deploy token without the gldt- prefix): GitLab refuses passwords \
             when two-factor authentication is on; prefer an access token with read_registry, write_registry and self_rotate"
                .to_owned(),
        ),
        TokenKind::JobToken => {
            out.push("CI job tokens only work while their job runs".to_owned())
        }
        TokenKind::OauthToken => out.push(
            "OAuth access tokens expire after 2 hours; use `login --oauth` (refreshable) or an access token".to_owned(),
        ),
    }
    if let Some(expires) = info.expires_at {
        let days = expires.duration_since(crate::clock::now()).as_hours() / 24;
        if days < EXPIRY_WARNING_DAYS {
            out.push(format!(
                "the token expires on {} (in {days} days){}",
                expires.strftime("%Y-%m-%d"),
                if info.can_renew() {
                    ""
                } else {
                    "; create a new one before then"
                }
            ));
        }
    }
    out
}

fn describe(info: &GitLabInfo) -> String {
    let mut s = info.kind.describe().to_owned();
    if let Some(name) = &info.token_name {
        s.push_str(&format!(" {name:?}"));
    }
    if !info.scopes.is_empty() {
        s.push_str(&format!(" (scopes: {})", info.scopes.join(", ")));
    }
    if let Some(e) = info.expires_at {
        s.push_str(&format!(", expires {}", e.strftime("%Y-%m-%d")));
    }
    s
}

/// The token comes from stdin (`--password-stdin`) or a hidden prompt; never from argv.
fn read_token(from_stdin: bool, host: &RegistryHost) -> anyhow::Result<Secret> {
    let token = if from_stdin {
        let input = crate::protocol::read_input(std::io::stdin().lock().take(u64::MAX))
            .map_err(|e| anyhow::anyhow!("--password-stdin: {e}"))?;
        Secret::from(input.trim().to_owned())
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("no terminal to ask for the token on: pipe it in with --password-stdin");
        }
        let t = rpassword::prompt_password(format!("GitLab token for {host}: "))
            .context("cannot read the token from the terminal")?;
        Secret::from(t.trim().to_owned())
    };
    if token.expose_secret().is_empty() {
        bail!("the token is empty");
    }
    if token.expose_secret().chars().any(char::is_whitespace) {
        bail!("the token contains whitespace: paste only the token");
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: TokenKind, scopes: &[&str], days: Option<i64>) -> GitLabInfo {
        GitLabInfo {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at: days
                .map(|d| crate::clock::now() + jiff::SignedDuration::from_hours(24 * d + 1)),
            ..GitLabInfo::new("https://gitlab.example.com", kind)
        }
    }

    #[test]
    fn a_complete_pat_has_no_warnings() {
        let i = info(
            TokenKind::PersonalAccessToken,
            &["read_registry", "write_registry", "self_rotate"],
            Some(200),
        );
        assert!(warnings(&i).is_empty(), "{:?}", warnings(&i));
        assert!(i.can_renew());
    }

    #[test]
    fn pat_warnings() {
        let w = warnings(&info(
            TokenKind::PersonalAccessToken,
            &["read_registry"],
            Some(10),
        ));
        let all = w.join("\n");
        assert!(all.contains("not push"), "{all}");
        assert!(all.contains("cannot renew"), "{all}");
        assert!(all.contains("in 10 days"), "{all}");
        let w = warnings(&info(TokenKind::PersonalAccessToken, &["api"], Some(100)));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn gitlab_choice_refuses_unexpected_realms() {
        let host = RegistryHost::parse("registry.gitlab.com").unwrap();
        let evil = Challenge {
            realm: Url::parse("https://evil.example/jwt/auth").unwrap(),
            service: "container_registry".into(),
        };
        assert!(choose_gitlab(&host, &evil, None).is_err());
        let good = Challenge {
            realm: Url::parse("https://gitlab.com/jwt/auth").unwrap(),
            service: "container_registry".into(),
        };
        assert_eq!(
            choose_gitlab(&host, &good, None).unwrap().as_str(),
            "https://gitlab.com/"
        );
        let other = RegistryHost::parse("registry.example.com").unwrap();
        let wanted = Url::parse("https://gitlab.example.com").unwrap();
        assert!(choose_gitlab(&other, &good, Some(&wanted)).is_err());
        let plain = Challenge {
            realm: Url::parse("http://gitlab.example.com/jwt/auth").unwrap(),
            service: "container_registry".into(),
        };
        assert!(choose_gitlab(&other, &plain, None).is_err());
    }
}
