//! Issue 17, section 1: one project access token logged in on three hosts (separate homes
//! and data directories, the `file` store), one GitLab. Once a host has learnt that its
//! stored token was rotated or revoked elsewhere, it never hands that token out again: every
//! later `get` exits 1 with one line and the fix, before any request; `status` and `doctor`
//! say so; a new `login` ends it.

use std::process::Output;

use crate::support::gitlab::GitLabWorld;
use crate::support::renewal::*;
use crate::support::*;
use gitlab_emulator::{Config, TokenSpec};

const MIN_VALIDITY: &str = "DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY";

/// Hosts sharing one GitLab and one token: host 0 is the world's own session, the others
/// are sessions of their own with the same settings and clock.
struct Fleet {
    w: GitLabWorld,
    others: Vec<Session>,
    project: u64,
}

impl Fleet {
    /// `hosts` hosts logged in (`--no-configure`, `file` store) with the same project
    /// access token (`self_rotate`), expiring in `days`.
    fn new(hosts: usize, days: i64) -> Option<Fleet> {
        let mut w = GitLabWorld::start(Config::default())?;
        w.env("DOCKER_CREDENTIAL_GITLAB_STORE", "file");
        w.env("DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS", "0");
        let project = w.gl.add_project("group/project");
        let expires = w.gl.today() + jiff::Span::new().days(days);
        w.token = w
            .gl
            .add_project_access_token(project, TokenSpec::new("fleet", RENEWABLE).expires(expires))
            .token;
        let mut fleet = Fleet {
            others: (1..hosts).map(|_| Session::file_store()).collect(),
            w,
            project,
        };
        fleet.sync();
        for i in 0..hosts {
            fleet.login(i, &fleet.w.token.clone());
        }
        Some(fleet)
    }

    /// Every host gets the world's environment (its clock included).
    fn sync(&mut self) {
        for s in &mut self.others {
            s.extra_env = self.w.s.extra_env.clone();
        }
    }

    fn host(&self, i: usize) -> &Session {
        match i {
            0 => &self.w.s,
            _ => &self.others[i - 1],
        }
    }

    fn age(&mut self, days: i64) {
        self.w.age(days);
        self.sync();
    }

    fn env(&mut self, key: &str, value: &str) {
        self.w.env(key, value);
        self.sync();
    }

    fn unset(&mut self, key: &str) {
        self.w.unset(key);
        self.sync();
    }

    fn get(&self, i: usize) -> Output {
        self.host(i).helper(&["get"], &self.w.host)
    }

    fn login(&self, i: usize, token: &str) {
        let out = self.host(i).login(&self.w.host, token, &["--no-configure"]);
        assert_success(&out, &format!("login on host {i}"));
    }

    fn rotations(&self) -> usize {
        let endpoint = format!(
            "/api/v4/projects/{}/access_tokens/self/rotate",
            self.project
        );
        self.w.gl.count("POST", &endpoint)
    }

    /// `get` on host `i` refuses the token, with the one line that says so and the fix,
    /// without a request to GitLab or the registry. Returns the line.
    #[track_caller]
    fn assert_refused_offline(&self, i: usize) -> String {
        let before = self.w.gl.requests().len();
        let out = self.get(i);
        let line = assert_one_line_error(&out, &format!("get on host {i}"));
        assert!(line.contains("revoked elsewhere"), "host {i}: {line}");
        assert!(
            line.contains(&format!("docker-credential-gitlab login {}", self.w.host)),
            "host {i}: {line}"
        );
        assert!(
            !line.contains(&self.w.token),
            "the secret is printed: {line}"
        );
        assert_eq!(
            self.w.gl.requests().len(),
            before,
            "host {i} asked GitLab again: {:?}",
            &self.w.gl.requests()[before..]
        );
        line
    }

    fn status_json(&self, i: usize) -> serde_json::Value {
        let out = self.host(i).helper(&["status", "--json"], "");
        assert_success(&out, "status --json");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// The measured bug: host 1 rotates, hosts 2 and 3 learn the token was rotated elsewhere
/// (good), and their next `get` at the default min_validity handed out the revoked token.
#[test]
fn hosts_that_learnt_a_token_was_rotated_elsewhere_never_serve_it_again() {
    let Some(mut f) = Fleet::new(3, 30) else {
        return;
    };
    let old = f.w.token.clone();
    // Ten days old: a 30-day token with 19.5 days left is inside its early window for a
    // 15-day promise (7 days): renewal is due on every host.
    f.age(10);
    f.env(MIN_VALIDITY, "15d");
    let new = secret(&f.get(0));
    assert_ne!(new, old);
    assert_eq!(f.rotations(), 1);
    for i in [1, 2] {
        let out = f.get(i);
        let line = assert_one_line_error(&out, &format!("first get on host {i}"));
        assert!(line.contains("rotated or revoked elsewhere"), "{line}");
    }
    assert_eq!(f.rotations(), 1, "a host presented the old token to rotate");

    // The default min_validity: the token is not due there; it is known dead all the same.
    f.unset(MIN_VALIDITY);
    for i in [1, 2] {
        let first = f.assert_refused_offline(i);
        assert_eq!(f.assert_refused_offline(i), first, "not the same line");
    }
    assert!(f.w.gl.token_info(&old).unwrap().revoked);

    // `list` still lists it (offline, as always); `status` and `doctor` say why it is refused.
    let listed = f.host(1).helper(&["list"], "");
    assert!(stdout(&listed).contains(&f.w.host), "{}", stdout(&listed));
    let status = f.host(1).helper(&["status"], "");
    assert_success(&status, "status");
    assert!(
        stdout(&status).contains("revoked elsewhere"),
        "{}",
        stdout(&status)
    );
    let rows = f.status_json(1);
    let mark = &rows[0]["revoked_elsewhere"];
    assert!(
        mark["reason"].is_string() && mark["at"].is_string(),
        "{rows:#}"
    );
    let before = f.w.gl.requests().len();
    let doctor = f.host(1).helper(&["doctor", &f.w.host], "");
    assert_eq!(doctor.status.code(), Some(1), "{}", stdout(&doctor));
    let fail = stdout(&doctor)
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("revoked elsewhere"))
        .map(str::to_owned);
    let fail = fail.unwrap_or_else(|| panic!("no FAIL line: {}", stdout(&doctor)));
    assert!(fail.contains("docker-credential-gitlab login"), "{fail}");
    assert_eq!(
        f.w.gl.requests().len(),
        before,
        "doctor sent the known-dead token to GitLab"
    );

    // `docker login` with what the host holds (its get→store round trip) changes nothing.
    let listed: serde_json::Value =
        serde_json::from_slice(&f.host(2).helper(&["list"], "").stdout).unwrap();
    let user = listed[&f.w.host].as_str().unwrap().to_owned();
    f.host(2).store(&f.w.host, &user, &old);
    f.assert_refused_offline(2);

    // A new login (with the token host 1 now holds) replaces the entry: host 2 serves again.
    f.login(1, &new);
    assert_eq!(secret(&f.get(1)), new);
    assert!(f.status_json(1)[0]["revoked_elsewhere"].is_null());
    f.assert_refused_offline(2);
    assert_eq!(secret(&f.get(0)), new);
    assert_eq!(f.rotations(), 1);
}

/// A token that is not due is never checked by `get`; `doctor` learns from GitLab's
/// `/jwt/auth` (401) that it was rotated elsewhere, and from then on `get` refuses it.
#[test]
fn doctor_learns_a_revocation_that_get_would_not_have_asked_about() {
    let Some(f) = Fleet::new(2, 30) else {
        return;
    };
    let old = f.w.token.clone();
    let rotated = f.host(0).helper(&["rotate", &f.w.host], "");
    assert_success(&rotated, "rotate on host 0");
    assert!(f.w.gl.token_info(&old).unwrap().revoked);

    let doctor = f.host(1).helper(&["doctor", &f.w.host], "");
    assert_eq!(doctor.status.code(), Some(1), "{}", stdout(&doctor));
    assert!(
        stdout(&doctor)
            .lines()
            .any(|l| l.starts_with("FAIL  /jwt/auth") && l.contains("401")),
        "{}",
        stdout(&doctor)
    );
    assert!(!stdout(&doctor).contains(&old), "doctor printed the secret");

    let line = f.assert_refused_offline(1);
    assert!(line.contains("/jwt/auth"), "{line}");
    assert!(
        f.status_json(1)[0]["revoked_elsewhere"]["reason"].is_string(),
        "{:#}",
        f.status_json(1)
    );
    // The host that rotated is not concerned.
    assert_ne!(secret(&f.get(0)), old);
}

/// A standby pair whose first token is known dead hands out the live standby.
#[test]
fn a_pair_whose_active_token_is_dead_hands_out_its_standby() {
    let Some(f) = Fleet::new(1, 30) else {
        return;
    };
    let expires = f.w.gl.today() + jiff::Span::new().days(90);
    let spec = TokenSpec::new("standby", RENEWABLE).expires(expires);
    let second = f.w.gl.add_project_access_token(f.project, spec).token;
    login_standby(&f.w, &f.w.host, &second);
    assert_eq!(secret(&f.get(0)), f.w.token, "the first token is active");
    f.w.gl.revoke_token(&f.w.token);
    let doctor = f.host(0).helper(&["doctor", &f.w.host], "");
    assert_eq!(doctor.status.code(), Some(1), "{}", stdout(&doctor));
    assert_eq!(secret(&f.get(0)), second);
    assert_eq!(secret(&f.get(0)), second);
    let rows = f.status_json(0);
    let primary = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["standby"] == false)
        .unwrap();
    assert!(primary["revoked_elsewhere"].is_object(), "{rows:#}");
}
