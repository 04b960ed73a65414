//! A busy host: `get` runs far more often than `min_validity` (a CI runner, a build server),
//! so some hand-out is always inside its promise and no moment is ever safe to rotate a
//! single token. Lived through ten simulated days in two-hour steps (the helper's clock and
//! the emulator's move together), against the real emulator and a real gnome-keyring.
//!
//! With a standby pair (`login --standby`) no handed-out token is revoked within its
//! promise; without one, the cut happens and the helper says so, with the fix.

use crate::support::gitlab::GitLabWorld;
use crate::support::*;
use gitlab_emulator::Config;
use jiff::{SignedDuration, Timestamp};

const PROMISE_H: i64 = 20;
const STEP_H: i64 = 2;
const DAYS: i64 = 10;

struct Run {
    /// (simulated time of the hand-out, the token handed out)
    handouts: Vec<(Timestamp, String)>,
    stderr: String,
    promise: SignedDuration,
}

fn live_through(w: &mut GitLabWorld, host: &str) -> Run {
    live_through_with(
        w,
        host,
        Some(SignedDuration::from_hours(PROMISE_H)),
        SignedDuration::from_hours(STEP_H),
        DAYS * 24 / STEP_H,
    )
}

/// `steps` gets, `step` apart in simulated time, each promising `promise` (`None`: the
/// default settings, no `min_validity` set anywhere, which promise 60 min).
fn live_through_with(
    w: &mut GitLabWorld,
    host: &str,
    promise: Option<SignedDuration>,
    step_by: SignedDuration,
    steps: i64,
) -> Run {
    if let Some(promise) = promise {
        w.s.extra_env.push((
            "DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY".into(),
            format!("{}s", promise.as_secs()),
        ));
    }
    let promise = promise.unwrap_or(SignedDuration::from_mins(60));
    let mut run = Run {
        handouts: Vec::new(),
        stderr: String::new(),
        promise,
    };
    for step in 0..steps {
        let offset = step_by * (step as i32);
        w.set_clock(offset);
        let out = w.s.helper(&["get"], host);
        assert_success(&out, &format!("get at +{offset}"));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        run.handouts
            .push((w.gl.now(), v["Secret"].as_str().unwrap().to_owned()));
        run.stderr.push_str(&stderr(&out));
    }
    run
}

/// Hand-outs whose token GitLab revoked before their promise ran out.
fn cut(w: &GitLabWorld, run: &Run) -> Vec<String> {
    run.handouts
        .iter()
        .filter_map(|(at, token)| {
            let revoked = w.gl.token_info(token)?.revoked_at?;
            let promised = *at + run.promise;
            (revoked < promised).then(|| format!("handed out {at}, revoked {revoked}"))
        })
        .collect()
}

/// Hand-outs were cut, and stderr named the fix.
fn assert_cut_and_announced(w: &GitLabWorld, run: &Run, host: &str) {
    assert!(!cut(w, run).is_empty(), "expected cut hand-outs");
    assert!(
        run.stderr
            .contains(&format!("docker-credential-gitlab login {host} --standby")),
        "{}",
        run.stderr
    );
}

fn distinct_tokens(run: &Run) -> usize {
    let mut tokens: Vec<&String> = run.handouts.iter().map(|(_, t)| t).collect();
    tokens.sort();
    tokens.dedup();
    tokens.len()
}

fn start() -> Option<(GitLabWorld, String, String)> {
    let w = GitLabWorld::start(Config::default())?;
    let host = w.registry.host();
    let token = w.pat(RENEWABLE, 4);
    assert_success(&w.login(&host, &token, &["--no-configure"]), "login");
    Some((w, host, token))
}

#[test]
fn with_a_standby_pair_no_hand_out_is_ever_cut() {
    let Some((mut w, host, _)) = start() else {
        return;
    };
    let second = w.pat(RENEWABLE, 4);
    let out = w.login(&host, &second, &["--standby"]);
    assert_success(&out, "login --standby");
    assert!(stdout(&out).contains("standby token"), "{}", stdout(&out));
    // Still one registry for docker.
    let list: serde_json::Value =
        serde_json::from_slice(&w.s.helper(&["list"], "").stdout).unwrap();
    assert_eq!(list.as_object().unwrap().len(), 1, "{list}");

    let run = live_through(&mut w, &host);
    assert!(
        distinct_tokens(&run) >= 4,
        "only {} tokens over {DAYS} days: renewal never ran",
        distinct_tokens(&run)
    );
    assert_eq!(cut(&w, &run), Vec::<String>::new(), "hand-outs were cut");
    assert!(!run.stderr.contains("--standby"), "{}", run.stderr);

    // status shows both tokens, which one is active, and when each renews.
    let out = w.s.helper(&["status", "--json"], "");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r["standby"] == true).count(), 1);
    assert_eq!(rows.iter().filter(|r| r["active"] == true).count(), 1);
    assert!(rows.iter().all(|r| r["renews_at"].is_string()), "{rows:?}");

    let text = stdout(&w.s.helper(&["doctor", &host], ""));
    assert!(text.contains("PASS  renewal: a standby pair"), "{text}");

    // logout forgets both.
    assert_success(&w.s.helper(&["erase"], &host), "erase");
    let out = w.s.helper(&["status", "--json"], "");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 0, "{rows}");
}

#[test]
fn without_a_pair_the_cut_is_announced_with_the_fix() {
    let Some((mut w, host, _)) = start() else {
        return;
    };
    let run = live_through(&mut w, &host);
    assert!(distinct_tokens(&run) >= 2, "renewal never ran");
    // The hard window cuts live hand-outs: there was no safe moment.
    assert_cut_and_announced(&w, &run, &host);
    let text = stdout(&w.s.helper(&["status"], ""));
    assert!(text.contains("still inside their promise"), "{text}");
    let text = stdout(&w.s.helper(&["doctor", &host], ""));
    assert!(
        text.contains("WARN  renewal:") && text.contains("--standby"),
        "{text}"
    );
}

#[test]
fn a_standby_token_must_be_a_second_renewable_token_of_the_same_user() {
    let Some((w, host, token)) = start() else {
        return;
    };
    let standby = |t: &str| w.login(&host, t, &["--standby"]);
    // The same token again.
    let out = standby(&token);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already has"), "{}", stderr(&out));
    // Another user's token.
    let bob = w.gl.add_user("bob", "bob-password", false);
    let theirs =
        w.gl.add_personal_access_token(
            bob,
            gitlab_emulator::TokenSpec::new("bob", RENEWABLE)
                .expires(w.gl.today() + jiff::Span::new().days(30)),
        )
        .token;
    let out = standby(&theirs);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("another user"), "{}", stderr(&out));
    // A token that cannot renew itself is no standby.
    let out = standby(&w.pat(&["read_registry"], 30));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("renew itself"), "{}", stderr(&out));
    // Nothing of it was stored.
    let out = w.s.helper(&["status", "--json"], "");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
}

/// OAuth on a busy host: 2 h access tokens (GitLab's), a get every 10 min promising 20 min,
/// for 12 simulated hours, with a pair of OAuth grants (`login --oauth --standby`): no
/// access token handed out is revoked (by a refresh) within its promise.
fn oauth_busy_host(pair: bool) -> Option<(GitLabWorld, Run, String)> {
    let mut w = GitLabWorld::start(Config {
        device_poll_interval: std::time::Duration::from_secs(1),
        ..Config::default()
    })?;
    const CLIENT: &str = "busy-host-app";
    w.gl.add_oauth_application(CLIENT, &["read_registry", "write_registry"]);
    let host = w.registry.host();
    let logins: &[&[&str]] = if pair { &[&[], &["--standby"]] } else { &[&[]] };
    for extra in logins {
        let mut args = vec!["--no-configure"];
        args.extend_from_slice(extra);
        assert_success(&w.oauth_login(&host, CLIENT, &args), "login --oauth");
    }
    let run = live_through_with(
        &mut w,
        &host,
        Some(SignedDuration::from_mins(20)),
        SignedDuration::from_mins(10),
        12 * 6,
    );
    assert!(
        distinct_tokens(&run) >= 6,
        "only {} access tokens over 12 h: refresh never ran",
        distinct_tokens(&run)
    );
    Some((w, run, host))
}

#[test]
fn an_oauth_pair_never_cuts_a_hand_out() {
    let Some((w, run, _)) = oauth_busy_host(true) else {
        return;
    };
    assert_eq!(cut(&w, &run), Vec::<String>::new(), "hand-outs were cut");
}

/// The same without a pair: every refresh lands in the hard window and cuts live
/// hand-outs, and the helper says so with the fix.
#[test]
fn an_oauth_token_alone_cuts_and_says_so() {
    let Some((w, run, host)) = oauth_busy_host(false) else {
        return;
    };
    assert_cut_and_announced(&w, &run, &host);
}

/// OAuth at default settings (no min_validity anywhere: 60 min), logged in with `logins`,
/// then a get every minute for six simulated hours.
fn oauth_at_default_settings(logins: &[&[&str]]) -> Option<(GitLabWorld, Run, String)> {
    let mut w = GitLabWorld::start(Config {
        device_poll_interval: std::time::Duration::from_secs(1),
        ..Config::default()
    })?;
    const CLIENT: &str = "default-settings-app";
    w.gl.add_oauth_application(CLIENT, &["read_registry", "write_registry"]);
    let host = w.registry.host();
    for extra in logins {
        let mut args = vec!["--no-configure"];
        args.extend_from_slice(extra);
        assert_success(&w.oauth_login(&host, CLIENT, &args), "login --oauth");
    }
    // A fresh token is never due: the first get hands out what login stored.
    w.gl.clear_requests();
    assert_success(&w.get_host(&host), "the first get");
    let refreshes = w.gl.count("POST", "/oauth/token");
    assert_eq!(refreshes, 0, "the first get refreshed a brand-new token");
    let run = live_through_with(&mut w, &host, None, SignedDuration::from_mins(1), 6 * 60);
    Some((w, run, host))
}

/// Issue: at default settings every get of a fresh OAuth token refreshed it. Now a steady
/// host refreshes once per (2 h - 60 min) at most, and says when a refresh cut a push.
#[test]
fn an_oauth_token_at_default_settings_refreshes_once_an_hour() {
    let Some((w, run, host)) = oauth_at_default_settings(&[&[]]) else {
        return;
    };
    let tokens = distinct_tokens(&run);
    assert!(
        (5..=7).contains(&tokens),
        "{tokens} access tokens over 6 h of a get a minute: expected about one an hour"
    );
    assert_cut_and_announced(&w, &run, &host);
}

#[test]
fn an_oauth_pair_at_default_settings_never_cuts() {
    let Some((w, run, _)) = oauth_at_default_settings(&[&[], &["--standby"]]) else {
        return;
    };
    assert_eq!(cut(&w, &run), Vec::<String>::new(), "hand-outs were cut");
    let tokens = distinct_tokens(&run);
    assert!(
        tokens <= 6 * 2 + 2,
        "{tokens} access tokens over 6 h: each of the two refreshes at most once an hour"
    );
}

/// Issue 16 §4: a pair never holds one token twice. The standby's token logged in as the
/// registry's own, or the registry's token as its standby, is refused: exit 1, the reason
/// as the last line, nothing changed.
#[test]
fn a_pair_cannot_hold_one_token_twice() {
    let Some((w, host, token)) = start() else {
        return;
    };
    let second = w.pat(RENEWABLE, 30);
    assert_success(&w.login(&host, &second, &["--standby"]), "login --standby");
    let state = std::fs::read(w.s.state_path()).unwrap();
    for (t, extra, reason) in [
        (&second, &["--no-configure"][..], "standby"),
        (&second, &[][..], "standby"),
        (&token, &["--standby"][..], "already has"),
    ] {
        let out = w.login(&host, t, extra);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", stderr(&out));
        let err = stderr(&out);
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error") && last.contains(reason),
            "{extra:?}: {err}"
        );
        assert_eq!(
            std::fs::read(w.s.state_path()).unwrap(),
            state,
            "{extra:?}: the state changed"
        );
        assert_eq!(
            w.s.secret_tool_lookup(&host).as_deref(),
            Some(token.as_str())
        );
        assert!(
            !w.s.docker_config_dir().join("config.json").exists(),
            "{extra:?}: Docker's config was touched"
        );
    }
}
