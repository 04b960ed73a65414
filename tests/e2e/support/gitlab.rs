//! The GitLab side of the end-to-end tests: the emulator, the real registry in token mode
//! trusting its tokens, a keyring session, and a GitLab user who can mint tokens.

use std::process::Output;

use gitlab_emulator::{Config, Emulator, RealRegistry, TokenSpec};
use jiff::{SignedDuration, Timestamp, civil::Time, tz::TimeZone};

use super::{RENEWABLE, Session, assert_success, have_tool};

/// The one world of the GitLab tests: the emulator, the real registry trusting its tokens,
/// a keyring session, and `alice`, who can mint tokens.
pub struct GitLabWorld {
    pub gl: Emulator,
    pub registry: RealRegistry,
    pub s: Session,
    pub user: u64,
    /// The registry's host (`registry.host()`): the key `get` and `login` use.
    pub host: String,
    /// The token the world logged in with ([`GitLabWorld::logged_in`]), or was given
    /// ([`GitLabWorld::with_pat`]); empty after [`GitLabWorld::start`].
    pub token: String,
    /// The test clock's start: how far the emulator's and the helper's clocks are set from
    /// the real one so that the world starts at [`time_of_day`].
    base: SignedDuration,
}

/// The variable that shifts the helper's clock in test builds.
const CLOCK_OFFSET: &str = "DOCKER_CREDENTIAL_GITLAB_CLOCK_OFFSET_SECS";

/// The time of day (UTC) every GitLab world starts at, so that no test depends on when it
/// runs (a 2-day token created at 23:55 has barely a day left): noon, or
/// `DOCKER_CREDENTIAL_GITLAB_TEST_TIME_OF_DAY` (`scripts/test-time-of-day.sh` runs the
/// suite at 23:59:30 and 00:00:30 to prove it).
pub fn time_of_day() -> Time {
    std::env::var("DOCKER_CREDENTIAL_GITLAB_TEST_TIME_OF_DAY")
        .ok()
        .map(|t| {
            t.parse()
                .expect("DOCKER_CREDENTIAL_GITLAB_TEST_TIME_OF_DAY is HH:MM:SS")
        })
        .unwrap_or(Time::constant(12, 0, 0, 0))
}

/// From the real clock to today's [`time_of_day`] (UTC).
fn pinned_offset() -> SignedDuration {
    let now = Timestamp::now();
    let target = now
        .to_zoned(TimeZone::UTC)
        .date()
        .to_datetime(time_of_day())
        .to_zoned(TimeZone::UTC)
        .expect("a time today")
        .timestamp();
    target.duration_since(now)
}

impl GitLabWorld {
    /// `None` (skip) when a tool is missing outside CI; inside CI that panics.
    pub fn start(config: Config) -> Option<GitLabWorld> {
        if !have_tool("docker-registry") {
            return None;
        }
        let mut s = Session::unlocked()?;
        let gl = Emulator::start(config);
        let registry = gl
            .start_real_registry()
            .expect("start docker-registry in token mode");
        // The clients a test runs in the session (skopeo, docker, podman) reach the registry
        // and GitLab on loopback, under either name, never through a proxy the developer's
        // environment may set. (The helper bypasses proxies for loopback by itself:
        // renewal_faults' loopback_requests_bypass_proxies, which unsets this.)
        s.extra_env
            .push(("NO_PROXY".into(), "127.0.0.1,localhost".into()));
        let user = gl.add_user("alice", "alice-password", false);
        let host = registry.host();
        let mut w = GitLabWorld {
            gl,
            registry,
            s,
            user,
            host,
            token: String::new(),
            base: pinned_offset(),
        };
        w.set_clock(SignedDuration::ZERO);
        Some(w)
    }

    /// A world ([`GitLabWorld::start`] with the default config) with a PAT of alice's with
    /// [`RENEWABLE`] scopes expiring in `days` as its [`GitLabWorld::token`], not logged in.
    /// `None` (skip) also when one of `tools` is missing outside CI.
    pub fn with_pat(tools: &[&str], days: i64) -> Option<GitLabWorld> {
        if !tools.iter().all(|t| have_tool(t)) {
            return None;
        }
        let mut w = GitLabWorld::start(Config::default())?;
        w.token = w.pat(RENEWABLE, days);
        Some(w)
    }

    /// Moves only GitLab's clock to `since_start` after the world's start (the helper's
    /// stays: a clock skew, or time passing for GitLab alone).
    pub fn set_gitlab_clock(&self, since_start: SignedDuration) {
        self.gl.set_clock_offset(self.base + since_start);
    }

    /// Moves the test clock to `since_start` after the world's start, for the emulator and
    /// for every helper the world runs (registry JWTs keep the real clock: the real
    /// registry checks them against its own).
    pub fn set_clock(&mut self, since_start: SignedDuration) {
        self.set_skewed_clock(since_start, SignedDuration::ZERO);
    }

    /// Moves only the helper's clock to `since_start` after the world's start (GitLab's
    /// stays): with [`GitLabWorld::set_gitlab_clock`], a clock skew of the helper against
    /// GitLab.
    pub fn set_helper_clock(&mut self, since_start: SignedDuration) {
        let offset = self.base + since_start;
        self.s.extra_env.retain(|(k, _)| k != CLOCK_OFFSET);
        self.s
            .extra_env
            .push((CLOCK_OFFSET.into(), offset.as_secs().to_string()));
    }

    /// Moves the test clock to `since_start` for GitLab, and to `since_start + skew` for
    /// the helper: time passing on a machine whose clock is `skew` ahead of GitLab's.
    pub fn set_skewed_clock(&mut self, since_start: SignedDuration, skew: SignedDuration) {
        self.set_gitlab_clock(since_start);
        self.set_helper_clock(since_start + skew);
    }

    /// A world logged in (to [`GitLabWorld::host`], `--no-configure`) with a PAT of
    /// alice's with `scopes`, expiring in `days`.
    pub fn logged_in(days: i64, scopes: &[&str]) -> Option<GitLabWorld> {
        GitLabWorld::logged_in_with(days, scopes, |gl, user, spec| {
            gl.add_personal_access_token(user, spec).token
        })
    }

    /// [`GitLabWorld::logged_in`] with a token made by `make` (given the emulator and
    /// alice) from a spec with `scopes` expiring in `days`.
    pub fn logged_in_with(
        days: i64,
        scopes: &[&str],
        make: impl FnOnce(&Emulator, u64, TokenSpec) -> String,
    ) -> Option<GitLabWorld> {
        let mut w = GitLabWorld::start(Config::default())?;
        let expires = w.gl.today() + jiff::Span::new().days(days);
        w.token = make(
            &w.gl,
            w.user,
            TokenSpec::new("docker", scopes).expires(expires),
        );
        login(&w, &w.host, &w.token);
        Some(w)
    }

    /// A personal access token of `alice` with `scopes`, expiring in `days`.
    pub fn pat(&self, scopes: &[&str], days: i64) -> String {
        let expires = self.gl.today() + jiff::Span::new().days(days);
        self.gl
            .add_personal_access_token(self.user, TokenSpec::new("docker", scopes).expires(expires))
            .token
    }
}

/// `login HOST --no-configure` with `token`, which must succeed.
pub fn login(w: &GitLabWorld, host: &str, token: &str) {
    assert_success(&w.login(host, token, &["--no-configure"]), "login");
}

impl GitLabWorld {
    /// Sets `key` to `value` in the environment of every later command.
    pub fn env(&mut self, key: &str, value: &str) {
        self.unset(key);
        self.s.extra_env.push((key.into(), value.into()));
    }

    /// Takes `key` out of the environment [`GitLabWorld::env`] set.
    pub fn unset(&mut self, key: &str) {
        self.s.extra_env.retain(|(k, _)| k != key);
    }

    /// `get` for `host`.
    pub fn get_host(&self, host: &str) -> Output {
        self.s.helper(&["get"], host)
    }

    /// `get` for the world's [`GitLabWorld::host`].
    pub fn get(&self) -> Output {
        self.get_host(&self.host)
    }

    /// `login HOST --password-stdin EXTRA…` with `token` ([`Session::login`]).
    pub fn login(&self, host: &str, token: &str, extra: &[&str]) -> Output {
        self.s.login(host, token, extra)
    }

    /// `login HOST --oauth --client-id CLIENT EXTRA…` through the device flow, approving as
    /// alice as soon as the code shows on stderr.
    pub fn oauth_login(&self, host: &str, client: &str, extra: &[&str]) -> Output {
        let mut args = vec!["login", host, "--oauth", "--client-id", client];
        args.extend_from_slice(extra);
        let mut child = self
            .s
            .spawn(std::process::Command::new(super::BIN).args(&args), "");
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let code = loop {
            let mut line = String::new();
            let n = std::io::BufRead::read_line(&mut err, &mut line).unwrap();
            assert!(n > 0, "login --oauth printed no code");
            if let Some(rest) = line.split("enter the code ").nth(1) {
                break rest.trim().to_owned();
            }
        };
        assert!(
            self.gl.approve_device(&code, self.user),
            "unknown code {code}"
        );
        child.wait_with_output().unwrap()
    }
}
