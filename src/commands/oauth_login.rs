//! `login REGISTRY --oauth`: log in without creating a token by hand, through GitLab's OAuth
//! 2.0 device authorization grant (RFC 8628).
//!
//! 1. find the registry's GitLab, as `login` does (and refuse an unexpected one);
//! 2. `POST /oauth/authorize_device` for the application's client id; print the URL and
//!    the code on stderr;
//! 3. poll `POST /oauth/token` every `interval` seconds (5 s more after each `slow_down`;
//!    a 5xx or no answer is polled again at the interval) until the user approves,
//!    denies, or the code expires;
//! 4. exchange the access token at `/jwt/auth` exactly as docker will;
//! 5. store the access and refresh token as one item, and the facts (expiry, scopes,
//!    client id) in the state file; configure Docker.
//!
//! Nothing is stored, and Docker's config is not touched, before step 5: Ctrl-C or any
//! failure leaves everything as it was.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::bail;
use reqwest::Url;

use super::login::{LoginArgs, choose_gitlab, configure_docker_for, parse_gitlab_url};
use crate::env::{Env, OAUTH_CLIENT_ID as OAUTH_CLIENT_ID_ENV};
use crate::gitlab::oauth::{self, Poll};
use crate::gitlab::{self, DEFAULT_USERNAME, GitLabError, JwtAuth, http::Http};
use crate::model::stored_secret::pack_pair;
use crate::model::{GitLabInfo, TokenKind};
use crate::registry::RegistryHost;
use crate::settings::Settings;

/// What `login --oauth` asks for unless `--scopes` says otherwise.
const DEFAULT_SCOPES: &str = "read_registry write_registry";

/// `login --oauth` (`args.oauth`); `args.username` and `args.password_stdin` are never set
/// with it (clap refuses them).
pub(crate) fn run(env: &Env, args: &LoginArgs) -> anyhow::Result<()> {
    let host = RegistryHost::parse(&args.registry)?;
    let requested = args
        .gitlab_url
        .as_deref()
        .map(parse_gitlab_url)
        .transpose()?;
    let http = Http::new()?;
    let challenge = gitlab::discover(&http, &host)?;
    let gitlab_url = choose_gitlab(&host, &challenge, requested.as_ref())?;
    let gitlab_display = gitlab_url.as_str().trim_end_matches('/').to_owned();
    eprintln!("GitLab instance for {host}: {gitlab_display}");
    let client_id = client_id(env, args.client_id.clone(), &gitlab_display)?;
    let scopes = args.scopes.as_deref().unwrap_or(DEFAULT_SCOPES);

    let device = oauth::authorize_device(&http, &gitlab_url, &client_id, scopes)?;
    eprintln!(
        "To log in, open {} and enter the code {}",
        device.verification_uri, device.user_code
    );
    if let Some(complete) = &device.verification_uri_complete {
        eprintln!("(or open {complete})");
    }
    let pair = wait_for_approval(&http, &gitlab_url, &client_id, &device)?;

    // Exactly what docker will do with it.
    match gitlab::jwt_auth(
        &http,
        &challenge,
        DEFAULT_USERNAME,
        &pair.access_token,
        None,
    )? {
        JwtAuth::Token(_) => {}
        JwtAuth::Unauthorized(m) => {
            bail!("GitLab issued an OAuth token but refuses it for {host} (401: {m})")
        }
        JwtAuth::Denied(m) => bail!(
            "GitLab refuses registry access with the OAuth token (403: {m}); \
             the application needs the read_registry (and write_registry) scope"
        ),
    }
    let about = oauth::token_info(&http, &gitlab_url, &pair.access_token)?;
    let now = crate::clock::now();
    let info = GitLabInfo {
        scopes: about
            .as_ref()
            .map(|a| a.scopes.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| pair.scopes.clone()),
        expires_at: Some(pair.expires_at),
        clock_skew_secs: pair.skew.map(crate::policy::skew::to_record),
        user_id: about.and_then(|a| a.user_id),
        oauth_client_id: pair.refresh_token.as_ref().map(|_| client_id.clone()),
        validated_at: now,
        ..GitLabInfo::new(&gitlab_display, TokenKind::OauthToken)
    };
    if pair.refresh_token.is_none() {
        eprintln!(
            "warning: GitLab issued no refresh token, so the access token cannot be renewed (it expires in 2 h)"
        );
    }
    let secret = pack_pair(&pair.access_token, pair.refresh_token.as_ref());
    let backend = super::login::store(env, &host, &info, DEFAULT_USERNAME, &secret, args.standby)?;
    println!(
        "Stored an OAuth token{} for {host} in the {backend} store; it renews itself with its refresh token.",
        if args.standby { " (standby)" } else { "" }
    );
    if !args.no_configure && !args.standby {
        configure_docker_for(env, &host)?;
    }
    println!("Login Succeeded");
    Ok(())
}

/// `--client-id`, else the config file's `oauth_client_ids` for this GitLab, else the
/// environment. There is no built-in id.
fn client_id(env: &Env, flag: Option<String>, gitlab: &str) -> anyhow::Result<String> {
    if let Some(id) = flag.filter(|s| !s.trim().is_empty()) {
        return Ok(id.trim().to_owned());
    }
    if let Some(id) = Settings::load(env)?.oauth_client_id(gitlab) {
        return Ok(id.to_owned());
    }
    if let Some(id) = env
        .var(OAUTH_CLIENT_ID_ENV)
        .filter(|s| !s.trim().is_empty())
    {
        return Ok(id.trim().to_owned());
    }
    bail!(
        "no OAuth application for {gitlab}: register one in GitLab (User settings > Applications, or Admin > \
         Applications; not confidential; scopes read_registry and write_registry; the device authorization grant \
         enabled), then pass its id with --client-id, set {OAUTH_CLIENT_ID_ENV}, or add it to config.json as \
         \"oauth_client_ids\": {{\"{gitlab}\": \"ID\"}}"
    )
}

/// Polls until the user decides or the code expires; a spinner on a terminal, plain lines
/// otherwise.
fn wait_for_approval(
    http: &Http,
    gitlab: &Url,
    client_id: &str,
    device: &oauth::DeviceAuthorization,
) -> anyhow::Result<oauth::TokenPair> {
    let until = Instant::now() + Duration::from_secs(device.expires_in);
    let mut interval = Duration::from_secs(device.interval);
    let tty = std::io::stderr().is_terminal();
    if !tty {
        eprintln!("Waiting for the approval in the browser…");
    }
    let frames = ['|', '/', '-', '\\'];
    // The last poll's failure, while GitLab answers 5xx or not at all.
    let mut failing: Option<GitLabError> = None;
    let mut tick = 0usize;
    loop {
        // Sleep the interval, drawing the spinner on a terminal.
        let wake = Instant::now() + interval;
        while Instant::now() < wake {
            if tty {
                eprint!(
                    "\r{} waiting for the approval in the browser… ",
                    frames[tick % 4]
                );
                let _ = std::io::stderr().flush();
                tick += 1;
            }
            std::thread::sleep(Duration::from_millis(250).min(wake - Instant::now()));
        }
        if Instant::now() >= until {
            clear(tty);
            bail!("{}", expired(failing.as_ref()));
        }
        let poll = match oauth::poll_device(http, gitlab, client_id, &device.device_code) {
            Ok(poll) => poll,
            // GitLab failing for a moment: asked again at the interval while the code lives.
            Err(e) if transient(&e) => {
                failing = Some(e);
                continue;
            }
            Err(e) => {
                clear(tty);
                return Err(anyhow::Error::new(e).context("polling GitLab for the approval"));
            }
        };
        failing = None;
        match poll {
            Poll::Granted(pair) => {
                clear(tty);
                return Ok(pair);
            }
            Poll::Pending => {}
            Poll::SlowDown => interval += Duration::from_secs(5),
            Poll::Expired => {
                clear(tty);
                bail!("{}", expired(None));
            }
            Poll::Denied => {
                clear(tty);
                bail!("the authorization was denied in GitLab; nothing was stored");
            }
        }
    }
}

/// A poll GitLab may answer properly next time: a 5xx, no answer, a broken connection.
fn transient(e: &GitLabError) -> bool {
    match e {
        GitLabError::Unexpected { status, .. } => *status >= 500,
        GitLabError::Timeout { .. } | GitLabError::Connect { .. } | GitLabError::Network { .. } => {
            true
        }
        _ => false,
    }
}

/// The one line a login whose code expired ends with; `failing`: why the last polls failed.
fn expired(failing: Option<&GitLabError>) -> String {
    match failing {
        None => "the code expired before it was approved; run the login again".into(),
        Some(e) => format!(
            "the code expired before it was approved while GitLab kept failing ({e}); nothing was stored; \
             run the login again"
        ),
    }
}

fn clear(tty: bool) {
    if tty {
        eprint!("\r\x1b[2K");
    }
}
