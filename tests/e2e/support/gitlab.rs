//! The GitLab side of the end-to-end tests: the emulator, the real registry in token mode
//! trusting its tokens, a keyring session, and a GitLab user who can mint tokens.

use gitlab_emulator::{Config, Emulator, RealRegistry, TokenSpec};

use super::{Session, have_tool};

pub struct GitLabWorld {
    pub gl: Emulator,
    pub registry: RealRegistry,
    pub s: Session,
    pub user: u64,
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
        Some(GitLabWorld {
            gl,
            registry,
            s,
            user,
        })
    }

    /// A personal access token of `alice` with `scopes`, expiring in `days`.
    pub fn pat(&self, scopes: &[&str], days: i64) -> String {
        let expires = self.gl.today() + jiff::Span::new().days(days);
        self.gl
            .add_personal_access_token(self.user, TokenSpec::new("docker", scopes).expires(expires))
            .token
    }
}

impl GitLabWorld {
    /// `login HOST --password-stdin EXTRA…` with `token` ([`Session::login`]).
    pub fn login(&self, host: &str, token: &str, extra: &[&str]) -> std::process::Output {
        self.s.login(host, token, extra)
    }

    /// `login HOST --oauth --client-id CLIENT EXTRA…` through the device flow, approving as
    /// alice as soon as the code shows on stderr.
    pub fn oauth_login(&self, host: &str, client: &str, extra: &[&str]) -> std::process::Output {
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
