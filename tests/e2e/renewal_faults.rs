//! Renewal you can trust, under faults and races: every test here failed before the renewal
//! frame was rewritten. Real registry in token mode + the GitLab emulator + a real
//! gnome-keyring; faults at GitLab (answers after the work, late, dropped), in the keychain
//! (stopped between GitLab's answer and the store write) and in the state lock.

use std::time::{Duration, Instant};

use crate::support::gitlab::{GitLabWorld, login};
use crate::support::*;
use gitlab_emulator::{Config, Fault};

/// Item 1: a 20-day token with 20 days left and min_validity 30 days rotates once for 32
/// concurrent gets, into a token that keeps the promise: the next get does not rotate.
#[test]
fn a_rotation_keeps_min_validity_and_does_not_repeat() {
    let Some(w) = GitLabWorld::renewing_with(20, "30d") else {
        return;
    };
    let w = &w;
    let secrets: Vec<String> = std::thread::scope(|scope| {
        let gets: Vec<_> = (0..32).map(|_| scope.spawn(|| w.get())).collect();
        gets.into_iter()
            .map(|g| secret(&g.join().unwrap()))
            .collect()
    });
    assert_eq!(w.rotate_calls(), 1);
    assert!(
        secrets.iter().all(|s| *s == secrets[0]),
        "different secrets"
    );
    let info = w.gl.token_info(&secrets[0]).unwrap();
    assert!(info.active);
    // 30 days of promise, then its own early window (half of what it lives beyond the
    // promise), from any moment today.
    let expires = info.expires_at.unwrap();
    assert!(
        expires >= w.gl.today() + jiff::Span::new().days(32),
        "{expires}"
    );
    for _ in 0..3 {
        assert_eq!(secret(&w.get()), secrets[0]);
    }
    assert_eq!(w.rotate_calls(), 1, "rotated again");
}

/// Item 1: a promise no token can keep (longer than GitLab's 365 days) never loops: a token
/// with 20 days left is rotated once (a rotation gives 18 times as much), the hand-out says
/// the promise is not kept, and the new token is not rotated again.
#[test]
fn a_promise_no_token_can_keep_never_loops() {
    let Some(w) = GitLabWorld::renewing_with(20, "400d") else {
        return;
    };
    let out = w.get();
    let rotated = secret(&out);
    assert_ne!(rotated, w.token);
    assert!(
        stderr(&out).contains("min_validity (400d) is longer than renewing can give (364d)"),
        "{}",
        stderr(&out)
    );
    for _ in 0..3 {
        let out = w.get();
        assert_eq!(secret(&out), rotated);
        assert!(stderr(&out).is_empty(), "warned again: {}", stderr(&out));
    }
    assert_eq!(w.rotate_calls(), 1);
}

/// Item 2: one PAT stored under two registry keys is one credential: a rotation through
/// one key updates both, and the revoked token never reaches the rotate endpoint.
#[test]
fn one_token_under_two_keys_rotates_once_for_both() {
    let Some(mut w) = GitLabWorld::renewing(2) else {
        return;
    };
    let other = w.host.replace("127.0.0.1", "localhost");
    login(&w, &other, &w.token);
    w.env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "3d");
    let new = secret(&w.get());
    assert_ne!(new, w.token);
    assert_eq!(secret(&w.get_host(&other)), new);
    assert_eq!(w.rotate_calls(), 1);
    let reused =
        w.gl.requests()
            .iter()
            .filter(|r| r.path == ROTATE && r.status == 401)
            .count();
    assert_eq!(
        reused, 0,
        "a revoked token was presented to the rotate endpoint"
    );
    assert!(w.gl.token_info(&new).unwrap().active, "family revoked");
    assert_eq!(
        w.s.secret_tool_lookup(&other).as_deref(),
        Some(new.as_str())
    );
}

/// Item 2, across machines: a fleet shares one PAT; another machine rotated it. This one
/// finds out through `…/self` and never calls rotate (which would revoke the family).
#[test]
fn a_token_rotated_on_another_machine_is_never_presented_to_rotate() {
    let Some(mut w) = GitLabWorld::renewing(2) else {
        return;
    };
    // The other machine: its own keyring and data, the same token.
    let mut other = Session::unlocked().unwrap();
    other.extra_env = w.s.extra_env.clone();
    let out = other.login(&w.host, &w.token, &["--no-configure"]);
    assert_success(&out, "login on the other machine");
    let out = other.helper(&["rotate", &w.host, "--force"], "");
    assert_success(&out, "rotate on the other machine");
    let theirs = secret(&other.helper(&["get"], &w.host));
    assert_eq!(w.rotate_calls(), 1);

    w.env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "3d");
    let out = w.get();
    let line = assert_one_line_error(&out, "get with a token rotated elsewhere");
    assert!(line.contains("rotated or revoked elsewhere"), "{line}");
    assert!(line.contains("docker-credential-gitlab login"), "{line}");
    assert_eq!(w.rotate_calls(), 1, "presented the revoked token to rotate");
    assert!(
        w.gl.token_info(&theirs).unwrap().active,
        "reuse detection revoked the other machine's token"
    );
}

/// Item 3: the keychain goes away between GitLab's answer and the store write. The new
/// token is handed out (exit 0), kept 0600, and moved into the store by a later run.
#[test]
fn a_minted_token_survives_a_keychain_that_went_away() {
    let Some(mut w) = GitLabWorld::renewing_with(2, "3d") else {
        return;
    };
    let child = w.get_paused_at("after-rotate-response");
    w.s.stop_keyring();
    std::fs::remove_file(w.marker()).unwrap();
    let out = child.wait_with_output().unwrap();
    let new = secret(&out);
    assert_ne!(new, w.token);
    assert!(w.gl.token_info(&new).unwrap().active);
    assert!(
        stderr(&out).contains("kept in the data directory"),
        "{}",
        stderr(&out)
    );
    let kept: Vec<_> = std::fs::read_dir(w.s.data_dir().join("kept"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kept[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Still no keychain: the kept token is what get hands out.
    let out = w.get();
    assert_eq!(secret(&out), new);
    assert!(
        stderr(&out).contains("the store does not take it yet"),
        "{}",
        stderr(&out)
    );
    // The keychain is back: the next get moves the token into it.
    w.s.start_unlocked_keyring();
    assert_eq!(secret(&w.get()), new);
    assert_eq!(
        w.s.secret_tool_lookup(&w.host).as_deref(),
        Some(new.as_str())
    );
    assert!(!kept[0].exists(), "the kept copy outlived its move");
    assert_eq!(w.rotate_calls(), 1);
}

/// Item 3: the state lock is held by someone else past its deadline after GitLab rotated:
/// the new token is kept and handed out, never dropped for the revoked old one.
#[test]
fn a_minted_token_survives_a_state_lock_timeout() {
    let Some(mut w) = GitLabWorld::renewing_with(2, "3d") else {
        return;
    };
    let out = w.get_with_state_lock_held();
    let new = secret(&out);
    assert_ne!(new, w.token, "handed out the revoked token");
    assert!(w.gl.token_info(&new).unwrap().active);
    assert_eq!(secret(&w.get()), new);
    assert_eq!(
        w.s.secret_tool_lookup(&w.host).as_deref(),
        Some(new.as_str())
    );
}

/// Item 4: GitLab rotated, but its answer was a 502, arrived after the deadline, or never
/// came. No get may hand out the old (revoked) token with exit 0, then or later.
#[test]
fn an_ambiguous_rotation_is_never_answered_with_the_revoked_token() {
    for fault in [
        Fault::StatusAfterWork(502),
        Fault::DelayAfterWork(Duration::from_secs(12)),
        Fault::DropAfterWork,
    ] {
        let Some(mut w) = GitLabWorld::renewing_with(2, "3d") else {
            return;
        };
        w.gl.inject_fault(ROTATE, fault.clone(), 1);
        let started = Instant::now();
        let out = w.get();
        assert!(started.elapsed() < Duration::from_secs(21), "{fault:?}");
        let line = assert_one_line_error(&out, &format!("{fault:?}"));
        assert!(
            line.contains("docker-credential-gitlab login"),
            "{fault:?}: {line}"
        );
        assert!(w.gl.token_info(&w.token).unwrap().revoked);
        // The next get sees the journal and resolves it before handing anything out.
        w.unset("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY");
        let out = w.get();
        assert!(
            !out.status.success(),
            "{fault:?}: handed out {}",
            stdout(&out)
        );
        // Rotated exactly once: the live token's predecessor is the old one. (A late
        // answer the client gave up on never reaches the emulator's request log.)
        let old = w.gl.token_info(&w.token).unwrap();
        let live = w.gl.active_family_member(old.family.unwrap()).unwrap();
        let live = w.gl.token_info(&live.token).unwrap();
        assert_eq!(live.previous_id, Some(old.id), "{fault:?}: rotated twice");
        assert!(w.rotate_calls() <= 1, "{fault:?}: rotated twice");
    }
}

/// Item 4: /self failing (5xx) while a journal is open is "unknown", never "lost": get fails
/// without handing out the token, and succeeds once GitLab can confirm it.
#[test]
fn an_unconfirmable_journal_is_unknown_not_lost() {
    let Some(mut w) = GitLabWorld::renewing_with(2, "3d") else {
        return;
    };
    // The real settle time: a "still active" does not close the journal for 60 s.
    w.unset("DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS");
    // A rotate that failed without doing the work, with an ambiguous 503.
    w.gl.inject_fault(ROTATE, Fault::Status(503), 1);
    assert_eq!(secret(&w.get()), w.token);
    assert!(
        w.s.data_dir()
            .join("journal")
            .read_dir()
            .unwrap()
            .next()
            .is_some()
    );
    w.unset("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY");
    w.gl.inject_fault(PAT_SELF, Fault::Status(500), 5);
    let out = w.get();
    let line = assert_one_line_error(&out, "get with an unconfirmable journal");
    assert!(line.contains("unknown outcome"), "{line}");
    assert!(!line.contains("lost"), "{line}");
    w.gl.clear_faults();
    assert_eq!(secret(&w.get()), w.token);
}

/// Item 5: a process that finds another one rotating waits for it (a slow GitLab: 9 s) and
/// returns the new token; it never gives up and hands out the one being rotated away.
#[test]
fn a_waiter_waits_for_a_slow_rotation_and_gets_the_new_token() {
    let Some(w) = GitLabWorld::renewing_with(2, "3d") else {
        return;
    };
    w.gl.inject_fault(ROTATE, Fault::Delay(Duration::from_secs(9)), 1);
    let w = &w;
    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(|| w.get());
        std::thread::sleep(Duration::from_millis(500));
        let b = scope.spawn(|| w.get());
        (a.join().unwrap(), b.join().unwrap())
    });
    let (a, b) = (secret(&first), secret(&second));
    assert_ne!(a, w.token);
    assert_eq!(a, b, "the waiter did not get the new token");
    assert_eq!(w.rotate_calls(), 1);
}

/// Item 6: a hand-out promised for 36 h protects the token for 36 h, whatever the next
/// process's own min_validity.
#[test]
fn a_lease_lasts_for_the_promise_it_was_handed_out_with() {
    let Some(mut w) = GitLabWorld::renewing_with(30, "36h") else {
        return;
    };
    assert_eq!(secret(&w.get()), w.token);
    w.unset("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY");
    let out = w.s.helper(&["rotate", &w.host], "");
    assert!(!out.status.success(), "rotated under a 36 h promise");
    let until = w.gl.now() + jiff::SignedDuration::from_hours(35);
    let text = stderr(&out);
    assert!(text.contains("a push may still be using it"), "{text}");
    let shown: jiff::Timestamp = text
        .split("runs until ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(shown > until, "promise recorded as {shown}");
    assert_eq!(w.rotate_calls(), 0);
}

/// Item 7: `docker login HOST` with a stored credential runs `get`, then `store` with the
/// same secret (with a daemon; without one it stops after `get`): that must not turn
/// renewal off. The round trip is replayed here exactly as docker sends it.
#[test]
fn docker_login_round_trip_keeps_the_gitlab_metadata() {
    let Some(w) = GitLabWorld::renewing(30) else {
        return;
    };
    let out = w.get();
    assert_success(&out, "get");
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let payload = serde_json::json!({
        "ServerURL": w.host,
        "Username": got["Username"],
        "Secret": got["Secret"],
    });
    assert_success(&w.s.helper(&["store"], payload.to_string()), "store");
    let status: serde_json::Value =
        serde_json::from_slice(&w.s.helper(&["status", "--json"], "").stdout).unwrap();
    assert_eq!(status[0]["kind"], "access token", "{status}");
    assert_eq!(status[0]["can_renew"], true, "{status}");
    // A different secret is a new credential: what login learnt about the old one goes.
    w.s.store(&w.host, "oauth2", "glpat-something-else");
    let status: serde_json::Value =
        serde_json::from_slice(&w.s.helper(&["status", "--json"], "").stdout).unwrap();
    assert_eq!(status[0]["kind"], serde_json::Value::Null, "{status}");
}

/// Item 8: `docker logout` while a rotation is in flight: the entry does not come back.
#[test]
fn logout_during_a_rotation_is_final() {
    let Some(mut w) = GitLabWorld::renewing_with(2, "3d") else {
        return;
    };
    let child = w.get_paused_at("after-rotate-response");
    let out = w.s.helper(&["erase"], &w.host);
    assert_success(&out, "erase during the rotation");
    std::fs::remove_file(w.marker()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_ne!(secret(&out), w.token, "handed out the revoked token");
    assert_eq!(stdout(&w.s.helper(&["list"], "")), "{}\n");
    assert_eq!(w.s.secret_tool_lookup(&w.host), None);
    assert_eq!(
        stdout(&w.get()),
        "credentials not found in native keychain\n"
    );
}

/// Item 8: erase removes the keychain item even when the state file lost its entry.
#[test]
fn erase_removes_the_item_even_without_a_state_entry() {
    let Some(s) = Session::unlocked() else { return };
    s.store("orphan.example", "alice", "glpat-orphan");
    std::fs::remove_file(s.state_path()).unwrap();
    assert_eq!(
        s.secret_tool_lookup("orphan.example").as_deref(),
        Some("glpat-orphan")
    );
    assert_success(&s.helper(&["erase"], "orphan.example"), "erase");
    assert_eq!(s.secret_tool_lookup("orphan.example"), None);
}

/// Item 9: a corrupt state file: get says so in one line; store sets it aside (never
/// deletes it) and starts afresh; status finds the file store's secrets again.
#[test]
fn a_corrupt_state_file_is_set_aside_not_lost() {
    let s = Session::file_store();
    s.store("first.example", "alice", "glpat-first");
    std::fs::write(s.state_path(), "{\"version\": 1, \"entries\": {").unwrap();
    let out = s.helper(&["get"], "first.example");
    let line = assert_one_line_error(&out, "get with a corrupt state file");
    assert!(
        line.contains("state.json") && line.contains("corrupt"),
        "{line}"
    );

    let out = s.helper(
        &["store"],
        r#"{"ServerURL":"second.example","Username":"bob","Secret":"glpat-second"}"#,
    );
    assert_success(&out, "store over a corrupt state file");
    let aside: Vec<_> = std::fs::read_dir(s.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read_to_string(s.data_dir().join(&aside[0])).unwrap(),
        "{\"version\": 1, \"entries\": {"
    );
    assert!(secret(&s.helper(&["get"], "second.example")).contains("glpat-second"));
    let text = stdout(&s.helper(&["status"], ""));
    assert!(
        text.contains("no entry in the state file: first.example"),
        "{text}"
    );
}

/// Item 10: small ones.
#[test]
fn hosts_flags_and_proxies() {
    let s = Session::without_bus();
    // A host that is neither a name nor an address: an error, not a panic.
    let out = s.login("a.123", "glpat-x", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid registry address"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"));
    // The invalid-host error never echoes a secret.
    let out = s.helper(&["get"], "oauth2:glpat-abcdefghijklmnop@registry example");
    let line = assert_one_line_error(&out, "get of a secret-bearing server");
    assert!(!line.contains("glpat-abcdefghijklmnop"), "{line}");
    // An unknown flag: one line on stdout, exit 1.
    let out = s.helper(&["--frobnicate"], "");
    let line = assert_one_line_error(&out, "--frobnicate");
    assert!(line.contains("--frobnicate"), "{line}");
    assert!(out.stderr.is_empty());
}

/// Item 10: a plain-HTTP loopback GitLab is never reached through a proxy (the token would
/// reach the proxy in clear).
#[test]
fn loopback_requests_bypass_proxies() {
    let Some(mut w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    // A "proxy" that accepts connections and records whether anyone came.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    proxy.set_nonblocking(true).unwrap();
    w.s.extra_env.retain(|(k, _)| k != "NO_PROXY");
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY"] {
        w.s.extra_env
            .push((var.into(), format!("http://{proxy_addr}")));
    }
    let token = w.pat(RENEWABLE, 30);
    let host = w.registry.host();
    login(&w, &host, &token);
    assert!(
        proxy.accept().is_err(),
        "the helper sent a request through the proxy"
    );
}

/// Item 10: GitLab's rotate always sets an expiry; `rotate` does not silently give one to
/// a token that never expires.
#[test]
fn rotate_refuses_to_give_a_non_expiring_token_an_expiry() {
    let Some(w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    let token =
        w.gl.add_personal_access_token(
            w.user,
            gitlab_emulator::TokenSpec::new("forever", RENEWABLE),
        )
        .token;
    let host = w.registry.host();
    login(&w, &host, &token);
    let out = w.s.helper(&["rotate", &host], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("never expires"), "{}", stderr(&out));
    assert_eq!(w.gl.count("POST", ROTATE), 0);
    assert!(w.gl.token_info(&token).unwrap().active);
    // get never renews it either.
    let out = w.s.helper(&["get"], &host);
    assert_eq!(secret(&out), token);
    assert_eq!(w.gl.count("POST", ROTATE), 0);
}

/// Issue 16 §4: `GET …/self` answers nothing within the request deadline during a
/// renewal. Nothing is revoked and the rotate endpoint is never called: the still-valid
/// token is handed out with a warning, as for a 5xx. With an earlier renewal's journal open
/// the token may not be handed out: one clear line instead.
#[test]
fn a_self_check_that_times_out_never_reaches_rotate() {
    let Some(mut w) = GitLabWorld::renewing_with(2, "3d") else {
        return;
    };
    w.gl.inject_fault(PAT_SELF, Fault::Delay(Duration::from_secs(15)), 1);
    let started = Instant::now();
    let out = w.get();
    assert!(started.elapsed() < Duration::from_secs(21), "get overran");
    assert_eq!(secret(&out), w.token, "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("warning") && text.contains("did not answer"),
        "{text}"
    );
    assert_eq!(w.rotate_calls(), 0, "rotated without confirming the token");
    assert!(w.gl.token_info(&w.token).unwrap().active);

    // A renewal with an ambiguous outcome (503) leaves its journal; the real settle time
    // keeps it open. Then `…/self` times out: the outcome stays unknown, said in one line.
    w.unset("DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS");
    w.gl.inject_fault(ROTATE, Fault::Status(503), 1);
    assert_eq!(secret(&w.get()), w.token);
    let rotates = w.rotate_calls();
    w.gl.inject_fault(PAT_SELF, Fault::Delay(Duration::from_secs(15)), 1);
    let started = Instant::now();
    let out = w.get();
    assert!(started.elapsed() < Duration::from_secs(21), "get overran");
    let line = assert_one_line_error(&out, "get whose journal GitLab cannot confirm");
    assert!(line.contains("unknown outcome"), "{line}");
    assert_eq!(
        w.rotate_calls(),
        rotates,
        "rotated without confirming the token"
    );
    assert!(w.gl.token_info(&w.token).unwrap().active);
}

/// Issue 16 §4: the process is killed after GitLab rotated, before the store write. The
/// new token is not lost: the next get hands it out and stores it; the old one never
/// reaches the rotate endpoint again.
#[test]
fn a_get_killed_after_gitlab_rotated_loses_nothing() {
    let Some(mut w) = GitLabWorld::renewing_with(2, "3d") else {
        return;
    };
    w.env("DOCKER_CREDENTIAL_GITLAB_FAULT", "after-rotate-response");
    let out = w.get();
    assert!(
        !out.status.success(),
        "the fault point did not kill the get"
    );
    w.unset("DOCKER_CREDENTIAL_GITLAB_FAULT");
    assert_eq!(w.rotate_calls(), 1);
    assert!(w.gl.token_info(&w.token).unwrap().revoked);

    let out = w.get();
    let new = secret(&out);
    assert_ne!(new, w.token, "handed out the revoked token");
    assert!(w.gl.token_info(&new).unwrap().active, "family revoked");
    assert_eq!(
        w.s.secret_tool_lookup(&w.host).as_deref(),
        Some(new.as_str())
    );
    assert_eq!(secret(&w.get()), new);
    assert_eq!(w.rotate_calls(), 1, "rotated again");
    assert!(
        std::fs::read_dir(w.s.data_dir().join("kept"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "the kept copy outlived its move"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&w.s.helper(&["status", "--json"], "").stdout).unwrap();
    assert_eq!(status[0]["renewal_interrupted"], false, "{status}");
}

/// Issue 16 §4: a kept token (minted, not yet in the store) goes through the refresh
/// policy like a stored one: when it no longer keeps the promise, it is renewed first.
#[test]
fn a_kept_token_is_checked_against_the_policy() {
    let Some(mut w) = GitLabWorld::renewing_with(2, "3d") else {
        return;
    };
    let child = w.get_paused_at("after-rotate-response");
    w.s.stop_keyring();
    std::fs::remove_file(w.marker()).unwrap();
    let kept = secret(&child.wait_with_output().unwrap());
    assert_ne!(kept, w.token);
    w.s.start_unlocked_keyring();

    // The kept token lives about 10 days: a 30-day promise needs a renewal first.
    w.env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "30d");
    let out = w.get();
    let handed = secret(&out);
    assert_ne!(
        handed, kept,
        "the kept token was handed out without the policy"
    );
    assert!(w.gl.token_info(&handed).unwrap().active);
    assert_eq!(w.rotate_calls(), 2);
    assert_eq!(
        w.s.secret_tool_lookup(&w.host).as_deref(),
        Some(handed.as_str())
    );
}

/// Issue 16 §4: `logout` ends what belongs to the entry it forgets: after `logout` and a
/// new `login`, an old renewal's journal neither holds the first due get back ("still
/// settling") nor shows in `status`.
#[test]
fn logout_ends_the_renewal_records_of_the_entry() {
    let Some(mut w) = GitLabWorld::renewing(2) else {
        return;
    };
    // The real settle time: the ambiguous 503 leaves a journal that stays open for 60 s.
    w.unset("DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS");
    w.env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "3d");
    w.gl.inject_fault(ROTATE, Fault::Status(503), 1);
    assert_eq!(secret(&w.get()), w.token);
    assert_success(&w.s.helper(&["logout", &w.host], ""), "logout");
    for dir in ["journal", "kept", "leases", "cuts", "warned"] {
        let left: Vec<_> = std::fs::read_dir(w.s.data_dir().join(dir))
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{dir}/ kept {left:?} after logout");
    }

    let token = w.pat(RENEWABLE, 2);
    login(&w, &w.host, &token);
    let status: serde_json::Value =
        serde_json::from_slice(&w.s.helper(&["status", "--json"], "").stdout).unwrap();
    assert_eq!(status[0]["renewal_interrupted"], false, "{status}");
    let rotates = w.rotate_calls();
    let out = w.get();
    let new = secret(&out);
    assert_ne!(new, token, "not renewed: {}", stderr(&out));
    assert!(!stderr(&out).contains("settling"), "{}", stderr(&out));
    assert_eq!(w.rotate_calls(), rotates + 1);
    assert!(w.gl.token_info(&new).unwrap().active);
}

/// Issue 16 §4: two keys holding one token (`host` and `localhost:port`): logging one out
/// leaves the token's journal to the other, which still resolves it before a hand-out.
#[test]
fn logout_of_one_key_leaves_the_shared_token_records_to_the_other() {
    let Some(mut w) = GitLabWorld::renewing(2) else {
        return;
    };
    let other = w.host.replace("127.0.0.1", "localhost");
    login(&w, &other, &w.token);
    w.unset("DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS");
    w.env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "3d");
    w.gl.inject_fault(ROTATE, Fault::Status(503), 1);
    assert_eq!(secret(&w.get()), w.token);
    // Whichever key names the token's group, the other keeps its journal after logout.
    let (gone, kept) = if w.host < other {
        (w.host.clone(), other.clone())
    } else {
        (other.clone(), w.host.clone())
    };
    assert_success(&w.s.helper(&["logout", &gone], ""), "logout");
    let status: serde_json::Value =
        serde_json::from_slice(&w.s.helper(&["status", "--json"], "").stdout).unwrap();
    assert_eq!(status[0]["renewal_interrupted"], true, "{status}");
    w.gl.inject_fault(PAT_SELF, Fault::Status(500), 5);
    let out = w.get_host(&kept);
    let line = assert_one_line_error(&out, "get with the shared token's journal open");
    assert!(line.contains("unknown outcome"), "{line}");
}
