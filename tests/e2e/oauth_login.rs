//! `login --oauth`: the OAuth device flow against the emulator's device grant and token
//! endpoint, then the real registry and a real keyring: approval, pending, slow_down (the
//! poll interval grows), expiry, denial and Ctrl-C (nothing stored, Docker's config
//! untouched); refresh before hand-out, single flight for two racing processes, and
//! `logout --revoke`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::gitlab::GitLabWorld;
use crate::support::*;
use gitlab_emulator::Config;

pub(crate) const CLIENT: &str = "docker-helper-app";
pub(crate) const TOKEN_PATH: &str = "/oauth/token";

impl GitLabWorld {
    /// A world whose GitLab knows the OAuth application `CLIENT`.
    pub(crate) fn with_oauth_app(config: Config) -> Option<GitLabWorld> {
        let w = GitLabWorld::start(config)?;
        w.gl.add_oauth_application(CLIENT, &["read_registry", "write_registry", "api"]);
        Some(w)
    }
}

pub(crate) fn fast() -> Config {
    Config {
        device_poll_interval: Duration::from_secs(1),
        ..Config::default()
    }
}

/// A running `login --oauth`, its stderr collected as it comes.
struct Login {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Login {
    fn start(w: &GitLabWorld, extra: &[&str]) -> Login {
        let host = w.registry.host();
        let mut args = vec!["login", host.as_str(), "--oauth", "--client-id", CLIENT];
        args.extend_from_slice(extra);
        let mut child = w.s.spawn(Command::new(BIN).args(&args), "");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Login { child, stderr }
    }

    /// The user code, once printed.
    fn user_code(&self) -> String {
        let mut code = String::new();
        wait_until("the user code", Duration::from_secs(10), || {
            let text = self.stderr.lock().unwrap().clone();
            if let Some(rest) = text.split("enter the code ").nth(1) {
                code = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                true
            } else {
                false
            }
        });
        code
    }

    fn finish(self) -> (Option<i32>, String, String) {
        let out = self.child.wait_with_output().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let stderr = self.stderr.lock().unwrap().clone();
        (out.status.code(), stdout(&out), stderr)
    }
}

fn nothing_stored(w: &GitLabWorld) {
    assert_eq!(stdout(&w.s.helper(&["list"], "")), "{}\n");
    assert!(
        !w.s.docker_config_dir().join("config.json").exists(),
        "Docker's config was touched"
    );
}

fn device_polls(w: &GitLabWorld) -> Vec<jiff::Timestamp> {
    w.gl.requests()
        .iter()
        .filter(|r| r.path == TOKEN_PATH)
        .map(|r| r.at)
        .collect()
}

#[test]
fn the_device_flow_logs_in_and_get_hands_out_the_access_token() {
    let Some(mut w) = GitLabWorld::with_oauth_app(fast()) else {
        return;
    };
    let login = Login::start(&w, &[]);
    let code = login.user_code();
    // Pending for a while: the helper keeps polling at the interval.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(w.gl.approve_device(&code, w.user));
    let (status, out, err) = login.finish();
    assert_eq!(status, Some(0), "{out}{err}");
    assert!(out.contains("Login Succeeded"), "{out}");
    assert!(err.contains("/oauth/device"), "{err}");
    assert!(device_polls(&w).len() >= 2, "never pending");

    let host = w.registry.host();
    let got: serde_json::Value =
        serde_json::from_slice(&w.s.helper(&["get"], &host).stdout).unwrap();
    assert_eq!(got["Username"], "oauth2");
    let access = got["Secret"].as_str().unwrap().to_owned();
    let info = w.gl.token_info(&access).unwrap();
    assert!(info.active, "{info:?}");
    // The keychain holds the pair; the state file holds no secret.
    let stored = w.s.secret_tool_lookup(&host).unwrap();
    assert!(
        stored.contains("refresh_token"),
        "the refresh token is not kept"
    );
    let state = std::fs::read_to_string(w.s.state_path()).unwrap();
    assert!(!state.contains(&access));
    // status: an OAuth token that renews with its refresh token.
    let rows: serde_json::Value =
        serde_json::from_slice(&w.s.helper(&["status", "--json"], "").stdout).unwrap();
    assert_eq!(rows[0]["kind"], "OAuth token", "{rows}");
    assert_eq!(rows[0]["renews_with"], "refresh token", "{rows}");
    assert!(rows[0]["expires_at"].is_string(), "{rows}");
    // renews_at is when a get renews: inside the access token's own life (the policy's
    // window for a 2 h token), not a week before its expiry.
    let at = |key: &str| -> jiff::Timestamp { rows[0][key].as_str().unwrap().parse().unwrap() };
    let early = at("expires_at").duration_since(at("renews_at"));
    assert!(
        early.is_positive() && early <= jiff::SignedDuration::from_hours(2),
        "renews_at is {early:#} before expires_at: {rows}"
    );
    // The table says the same moment, to the minute.
    let table = stdout(&w.s.helper(&["status"], ""));
    let minute = rows[0]["renews_at"].as_str().unwrap()[..16].replace('T', " ");
    assert!(
        table.contains(&format!("yes: refresh token, from {minute}")),
        "{table}"
    );
    // Docker now asks the helper; a push goes through the real registry.
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.s.docker_config_dir().join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["credHelpers"][&host], "gitlab",
        "Docker was not configured"
    );
    w.s.configure_docker(&[&host]); // and our binary first on skopeo's PATH
    let layout = write_oci_image(w.s.dir.path(), 16 * 1024);
    let dest = format!("docker://{host}/group/oauth:v1");
    let out = skopeo_copy(&w.s, &oci_ref(&layout), &dest, &[]);
    assert_success(&out, "skopeo push with the OAuth token");

    // logout --revoke revokes the access token (and its refresh token) at GitLab.
    let out = w.s.helper(&["logout", &host, "--revoke"], "");
    assert_success(&out, "logout --revoke");
    assert!(!w.gl.token_info(&access).unwrap().active);
    assert_eq!(stdout(&w.s.helper(&["list"], "")), "{}\n");
}

#[test]
fn slow_down_makes_the_poll_interval_grow_by_five_seconds() {
    let Some(w) = GitLabWorld::with_oauth_app(fast()) else {
        return;
    };
    w.gl.slow_down_next(1);
    let login = Login::start(&w, &["--no-configure"]);
    let code = login.user_code();
    wait_until("two polls", Duration::from_secs(20), || {
        device_polls(&w).len() >= 2
    });
    assert!(w.gl.approve_device(&code, w.user));
    let (status, out, err) = login.finish();
    assert_eq!(status, Some(0), "{out}{err}");
    let polls = device_polls(&w);
    let gap = polls[1].duration_since(polls[0]);
    assert!(
        gap >= jiff::SignedDuration::from_secs(6),
        "after slow_down the next poll came {gap} later (interval 1 s + 5 s)"
    );
}

#[test]
fn expired_denied_and_interrupted_logins_store_nothing() {
    // Denied.
    let Some(w) = GitLabWorld::with_oauth_app(fast()) else {
        return;
    };
    let login = Login::start(&w, &[]);
    let code = login.user_code();
    assert!(w.gl.deny_device(&code));
    let (status, _, err) = login.finish();
    assert_eq!(status, Some(1), "{err}");
    assert!(err.contains("denied"), "{err}");
    nothing_stored(&w);

    // Expired: the emulator's clock moves past the code's 300 s.
    let login = Login::start(&w, &[]);
    let _ = login.user_code();
    w.set_gitlab_clock(jiff::SignedDuration::from_secs(301));
    let (status, _, err) = login.finish();
    w.set_gitlab_clock(jiff::SignedDuration::ZERO);
    assert_eq!(status, Some(1), "{err}");
    assert!(err.contains("expired"), "{err}");
    nothing_stored(&w);

    // Ctrl-C while waiting.
    let login = Login::start(&w, &[]);
    let _ = login.user_code();
    let pid = login.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let (status, _, _) = login.finish();
    assert_ne!(status, Some(0));
    nothing_stored(&w);
}

#[test]
fn no_client_id_is_one_line_that_says_how_to_register_one() {
    let Some(w) = GitLabWorld::with_oauth_app(fast()) else {
        return;
    };
    let host = w.registry.host();
    let out = w.s.helper(&["login", &host, "--oauth"], "");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("--client-id") && err.contains("DOCKER_CREDENTIAL_GITLAB_OAUTH_CLIENT_ID"),
        "{err}"
    );
    assert!(err.contains("oauth_client_ids"), "{err}");
    nothing_stored(&w);
}

/// Logs in through the device flow, approving as soon as the code shows.
pub(crate) fn oauth_login(w: &GitLabWorld, extra: &[&str]) {
    let login = Login::start(w, extra);
    let code = login.user_code();
    assert!(w.gl.approve_device(&code, w.user));
    let (status, out, err) = login.finish();
    assert_eq!(status, Some(0), "{out}{err}");
}

/// A world logged in through the device flow, whose access tokens live 120 s.
fn logged_in_with_120s_tokens() -> Option<(GitLabWorld, String)> {
    let w = GitLabWorld::with_oauth_app(Config {
        oauth_token_lifetime: Duration::from_secs(120),
        ..fast()
    })?;
    oauth_login(&w, &["--no-configure"]);
    let host = w.registry.host();
    Some((w, host))
}

/// Two processes race a refresh: exactly one refresh request, and both hand out the same
/// new access token; the old refresh token is spent (GitLab refuses it, as it does).
#[test]
fn racing_gets_refresh_once() {
    let Some((mut w, host)) = logged_in_with_120s_tokens() else {
        return;
    };
    let before = w.s.secret_tool_lookup(&host).unwrap();
    // 120 s tokens, a 119 s promise: the access token no longer keeps it.
    w.s.extra_env.push((
        "DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY".into(),
        "119s".into(),
    ));
    std::thread::sleep(Duration::from_secs(2));
    w.gl.clear_requests();
    let s = &w.s;
    let secrets: Vec<String> = std::thread::scope(|scope| {
        let gets: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| s.helper(&["get"], &host)))
            .collect();
        gets.into_iter()
            .map(|g| {
                let out = g.join().unwrap();
                assert_success(&out, "get");
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                v["Secret"].as_str().unwrap().to_owned()
            })
            .collect()
    });
    assert_eq!(
        secrets[0], secrets[1],
        "the two processes got different tokens"
    );
    let refreshes =
        w.gl.requests()
            .iter()
            .filter(|r| r.path == TOKEN_PATH && r.method == "POST")
            .count();
    assert_eq!(refreshes, 1, "{:?}", w.gl.requests());
    assert!(w.gl.token_info(&secrets[0]).unwrap().active);
    let old: serde_json::Value = serde_json::from_str(&before).unwrap();
    let old_access = old["access_token"].as_str().unwrap();
    assert!(
        !w.gl.token_info(old_access).unwrap().active,
        "old token alive"
    );
}

/// A min_validity beyond an access token's life (2 h) is said at login and never causes a
/// refresh on every get.
#[test]
fn a_promise_longer_than_an_access_token_never_loops() {
    let Some(mut w) = GitLabWorld::with_oauth_app(fast()) else {
        return;
    };
    w.s.extra_env
        .push(("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY".into(), "3h".into()));
    let login = Login::start(&w, &["--no-configure"]);
    let code = login.user_code();
    assert!(w.gl.approve_device(&code, w.user));
    let (status, _, err) = login.finish();
    assert_eq!(status, Some(0), "{err}");
    assert!(err.contains("longer than renewing can give"), "{err}");
    let host = w.registry.host();
    w.gl.clear_requests();
    for _ in 0..3 {
        assert_success(&w.s.helper(&["get"], &host), "get");
    }
    assert_eq!(
        w.gl.requests()
            .iter()
            .filter(|r| r.path == TOKEN_PATH)
            .count(),
        0,
        "refreshed on every get"
    );
}

/// The grant was revoked in GitLab (the user removed the application's access): the refresh
/// is refused with invalid_grant, the store is re-read (nobody else refreshed), and get
/// says a new `login --oauth` is needed, exit 1, without handing out a dead token.
#[test]
fn a_revoked_grant_asks_for_a_new_oauth_login() {
    let Some((mut w, host)) = logged_in_with_120s_tokens() else {
        return;
    };
    let stored: serde_json::Value =
        serde_json::from_str(&w.s.secret_tool_lookup(&host).unwrap()).unwrap();
    w.gl.revoke_token(stored["refresh_token"].as_str().unwrap());
    w.s.extra_env.push((
        "DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY".into(),
        "119s".into(),
    ));
    std::thread::sleep(Duration::from_secs(2));
    let out = w.s.helper(&["get"], &host);
    let line = assert_one_line_error(&out, "get with a revoked grant");
    assert!(line.contains(&format!("login {host} --oauth")), "{line}");
    assert!(!line.contains(stored["refresh_token"].as_str().unwrap()));
}

/// GitLab refreshed, but the answer was lost (a proxy's 502 after the work, or no answer
/// at all): the new pair is gone and the old one is spent. get never hands out the dead
/// access token with exit 0, then or on the next run; it says to log in again.
#[test]
fn a_lost_refresh_answer_is_never_answered_with_the_dead_token() {
    for fault in [
        gitlab_emulator::Fault::StatusAfterWork(502),
        gitlab_emulator::Fault::DropAfterWork,
    ] {
        let Some((mut w, host)) = logged_in_with_120s_tokens() else {
            return;
        };
        w.s.extra_env.push((
            "DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY".into(),
            "119s".into(),
        ));
        std::thread::sleep(Duration::from_secs(2));
        w.gl.inject_fault(TOKEN_PATH, fault.clone(), 1);
        w.gl.clear_requests();
        for run in ["first", "next"] {
            let out = w.s.helper(&["get"], &host);
            let line = assert_one_line_error(&out, &format!("{fault:?}, {run} get"));
            assert!(
                line.contains("docker-credential-gitlab login"),
                "{fault:?}: {line}"
            );
        }
        assert_eq!(
            w.gl.requests()
                .iter()
                .filter(|r| r.path == TOKEN_PATH && r.method == "POST")
                .count(),
            1,
            "{fault:?}: refreshed twice"
        );
    }
}

/// Issue 16 §4: the process is killed in the middle of a refresh, after GitLab answered and
/// before the store write. The new pair is not lost: the next get hands out a live access
/// token, and the spent refresh token is never presented again (GitLab would refuse it).
#[test]
fn a_get_killed_after_gitlab_refreshed_keeps_the_new_pair() {
    let Some((mut w, host)) = logged_in_with_120s_tokens() else {
        return;
    };
    let before: serde_json::Value =
        serde_json::from_str(&w.s.secret_tool_lookup(&host).unwrap()).unwrap();
    w.s.extra_env.push((
        "DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY".into(),
        "119s".into(),
    ));
    std::thread::sleep(Duration::from_secs(2));
    w.gl.clear_requests();
    w.s.extra_env.push((
        "DOCKER_CREDENTIAL_GITLAB_FAULT".into(),
        "after-rotate-response".into(),
    ));
    let out = w.s.helper(&["get"], &host);
    assert!(
        !out.status.success(),
        "the fault point did not kill the get"
    );
    w.s.extra_env
        .retain(|(k, _)| k != "DOCKER_CREDENTIAL_GITLAB_FAULT");
    let old_access = before["access_token"].as_str().unwrap();
    assert!(
        !w.gl.token_info(old_access).unwrap().active,
        "not refreshed"
    );

    for run in ["first", "second"] {
        let out = w.s.helper(&["get"], &host);
        assert_success(&out, &format!("{run} get after the crash"));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let access = v["Secret"].as_str().unwrap();
        assert_ne!(access, old_access, "{run} get handed out the dead token");
        assert!(w.gl.token_info(access).unwrap().active, "{run} get");
    }
    let refused: Vec<_> =
        w.gl.requests()
            .into_iter()
            .filter(|r| r.path == TOKEN_PATH && r.status != 200)
            .collect();
    assert!(
        refused.is_empty(),
        "a spent refresh token was presented: {refused:?}"
    );
}

/// Issue 16 §4: GitLab answers 5xx to the device-flow polls. The helper keeps polling at
/// the interval (an approval after some errors still logs in); errors until the code
/// expires end `login` with one line, nothing stored, Docker's config untouched.
#[test]
fn a_5xx_on_a_device_poll_is_retried_until_the_code_expires() {
    let Some(w) = GitLabWorld::with_oauth_app(Config {
        device_code_lifetime: Duration::from_secs(6),
        ..fast()
    }) else {
        return;
    };
    w.gl.inject_fault(TOKEN_PATH, gitlab_emulator::Fault::Status(503), 100);
    let login = Login::start(&w, &[]);
    let _ = login.user_code();
    let (status, out, err) = login.finish();
    assert_eq!(status, Some(1), "{out}{err}");
    let polls = device_polls(&w);
    assert!(
        polls.len() >= 3,
        "gave up after {} poll(s): {err}",
        polls.len()
    );
    for pair in polls.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= jiff::SignedDuration::from_millis(900),
            "polled again after {gap}"
        );
    }
    let errors: Vec<_> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert_eq!(err.lines().last(), Some(errors[0]), "{err}");
    assert!(errors[0].contains("expired"), "{err}");
    assert!(errors[0].contains("503"), "{err}");
    nothing_stored(&w);

    // Two errors, then the approval: logged in.
    w.gl.clear_faults();
    w.gl.inject_fault(TOKEN_PATH, gitlab_emulator::Fault::Status(502), 2);
    let login = Login::start(&w, &["--no-configure"]);
    let code = login.user_code();
    assert!(w.gl.approve_device(&code, w.user));
    let (status, out, err) = login.finish();
    assert_eq!(status, Some(0), "{out}{err}");
}
