//! The helper's clock off from GitLab's (laptops after sleep, VMs, containers): ±10 min and
//! ±3 h against the emulator, at default settings. OAuth expiry comes from `expires_in`
//! counted on this machine's clock; a PAT's expiry date and its rotation are read on
//! GitLab's clock; no hand-out dies within its promise; one renewal per due moment (no
//! loop); `doctor` names the skew.

use jiff::{SignedDuration, Timestamp};

use crate::oauth_login::{TOKEN_PATH, fast, oauth_login};
use crate::support::gitlab::{GitLabWorld, login};
use crate::support::*;
use gitlab_emulator::Config;

const MIN: SignedDuration = SignedDuration::from_secs(60);
/// The default `min_validity`: every hand-out must live this long.
const PROMISE: SignedDuration = SignedDuration::from_secs(3600);

/// `n` gets in a row: the secrets they handed out, all the same.
fn gets(w: &GitLabWorld, n: usize) -> String {
    let secrets: Vec<String> = (0..n)
        .map(|_| {
            let out = w.get();
            assert_success(&out, "get");
            secret(&out)
        })
        .collect();
    assert!(
        secrets.windows(2).all(|p| p[0] == p[1]),
        "the gets handed out different tokens"
    );
    secrets[0].clone()
}

/// The handed-out `token` lives at least the promise, on GitLab's clock.
fn keeps_the_promise(w: &GitLabWorld, token: &str, skew: SignedDuration) {
    let dies = w.gl.token_info(token).unwrap().dies_at.unwrap();
    let left = dies.duration_since(w.gl.now());
    assert!(
        left >= PROMISE,
        "skew {skew:#}: handed out a token with {left:#} left"
    );
}

fn stored_expiry(w: &GitLabWorld) -> Timestamp {
    let status: serde_json::Value =
        serde_json::from_slice(&w.s.helper(&["status", "--json"], "").stdout).unwrap();
    status[0]["expires_at"].as_str().unwrap().parse().unwrap()
}

/// OAuth with the helper `skew` ahead of GitLab: the access token's expiry is 2 h from its
/// arrival on the helper's clock; fresh, it is handed out as it is; 10 min before it dies
/// (GitLab's clock), exactly one refresh among three gets, and the new token keeps the
/// promise.
fn oauth_under(skew: SignedDuration) {
    let Some(mut w) = GitLabWorld::with_oauth_app(fast()) else {
        return;
    };
    w.set_helper_clock(skew);
    oauth_login(&w, &["--no-configure"]);
    let expected = w.gl.now() + skew + SignedDuration::from_hours(2);
    let stored = stored_expiry(&w);
    assert!(
        stored.duration_since(expected).abs() < MIN,
        "skew {skew:#}: stored expiry {stored}, expected about {expected} (the helper's clock)"
    );

    w.gl.clear_requests();
    gets(&w, 3);
    let refreshes = |w: &GitLabWorld| w.gl.count("POST", TOKEN_PATH);
    assert_eq!(
        refreshes(&w),
        0,
        "skew {skew:#}: a fresh token was refreshed"
    );

    w.set_skewed_clock(SignedDuration::from_mins(110), skew);
    let handed = gets(&w, 3);
    assert_eq!(
        refreshes(&w),
        1,
        "skew {skew:#}: one refresh per due moment"
    );
    keeps_the_promise(&w, &handed, skew);
    assert_eq!(refreshes(&w), 1);
}

#[test]
fn oauth_with_the_clock_10_min_ahead() {
    oauth_under(MIN * 10);
}

#[test]
fn oauth_with_the_clock_10_min_behind() {
    oauth_under(-MIN * 10);
}

#[test]
fn oauth_with_the_clock_3_h_ahead() {
    oauth_under(MIN * 180);
}

#[test]
fn oauth_with_the_clock_3_h_behind() {
    oauth_under(-MIN * 180);
}

/// A renewable 2-day PAT (it dies at 00:00 UTC on GitLab's clock, 24 to 48 h after the
/// world's start, whatever the time of day) logged in with the helper `skew` ahead,
/// renewing only in the hard window (an early window of 1 min): with 1 h 30 min left
/// (GitLab) nothing rotates; with 45 min left, exactly one rotation among three gets, and
/// the new token keeps the promise.
fn pat_under(skew: SignedDuration) {
    let Some(mut w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    let config = w.s.dir.path().join("helper-config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.json"), r#"{"early_renewal": "1m"}"#).unwrap();
    w.env(
        "DOCKER_CREDENTIAL_GITLAB_CONFIG_DIR",
        config.to_str().unwrap(),
    );
    w.env("DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS", "0");
    w.set_helper_clock(skew);
    w.token = w.pat(RENEWABLE, 2);
    login(&w, &w.host, &w.token);

    // From the world's start (a moment ago) to the token's death, on GitLab's clock.
    let dies = w.gl.token_info(&w.token).unwrap().dies_at.unwrap();
    let life = dies.duration_since(w.gl.now());
    w.set_skewed_clock(life - SignedDuration::from_mins(90), skew);
    assert_eq!(gets(&w, 3), w.token);
    assert_eq!(
        w.rotate_calls(),
        0,
        "skew {skew:#}: rotated with 1 h 30 min left"
    );

    w.set_skewed_clock(life - SignedDuration::from_mins(45), skew);
    let handed = gets(&w, 3);
    assert_eq!(
        w.rotate_calls(),
        1,
        "skew {skew:#}: one rotation per due moment"
    );
    assert_ne!(handed, w.token, "skew {skew:#}: handed out the dying token");
    keeps_the_promise(&w, &handed, skew);
}

#[test]
fn pat_with_the_clock_10_min_ahead() {
    pat_under(MIN * 10);
}

#[test]
fn pat_with_the_clock_10_min_behind() {
    pat_under(-MIN * 10);
}

#[test]
fn pat_with_the_clock_3_h_ahead() {
    pat_under(MIN * 180);
}

#[test]
fn pat_with_the_clock_3_h_behind() {
    pat_under(-MIN * 180);
}

fn clock_lines(out: &std::process::Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter(|l| l.contains("  clock: "))
        .map(str::to_owned)
        .collect()
}

/// `doctor` measures the skew from GitLab's answers (`Date`) and says it in one WARN line,
/// both ways; its exit status is what it was.
#[test]
fn doctor_names_the_skew_both_ways() {
    let Some(mut w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    let token = w.pat(RENEWABLE, 90);
    let host = w.registry.host();
    w.s.configure_docker(&[&host]);
    assert_success(&w.login(&host, &token, &[]), "login");

    let out = w.s.helper(&["doctor"], "");
    assert_success(&out, "doctor without skew");
    assert_eq!(clock_lines(&out), Vec::<String>::new(), "{}", stdout(&out));

    for (skew, line) in [
        (
            MIN * 10,
            "WARN  clock: this machine is 10 min ahead of GitLab;",
        ),
        (
            -MIN * 10,
            "WARN  clock: this machine is 10 min behind GitLab;",
        ),
        (
            MIN * 180,
            "WARN  clock: this machine is 3 h ahead of GitLab;",
        ),
        (
            -MIN * 180,
            "WARN  clock: this machine is 3 h behind GitLab;",
        ),
    ] {
        w.set_helper_clock(skew);
        let out = w.s.helper(&["doctor"], "");
        assert_success(&out, "doctor with a skewed clock");
        let lines = clock_lines(&out);
        assert_eq!(lines.len(), 1, "{}", stdout(&out));
        assert!(lines[0].starts_with(line), "{}", lines[0]);
        // The PAT's expiry is read on GitLab's clock: 90 days, whichever way the clock is off.
        assert!(
            stdout(&out).contains(&format!(
                "the token expires on {}",
                w.gl.today() + jiff::Span::new().days(90)
            )),
            "{}",
            stdout(&out)
        );
    }
}
