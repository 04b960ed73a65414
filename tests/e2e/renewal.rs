//! The long-push guarantee: `get` renews a token that would not outlive `min_validity`,
//! once across any number of concurrent processes, never under a live lease, and survives
//! GitLab faults and crashes. Real registry in token mode + the GitLab emulator + a real
//! gnome-keyring.

use crate::support::gitlab::GitLabWorld;
use crate::support::*;
use gitlab_emulator::Fault;

impl GitLabWorld {
    fn set_min_validity(&mut self, value: &str) {
        self.env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", value);
    }

    fn lease_path(&self) -> std::path::PathBuf {
        self.s.lease_path(&self.host)
    }

    fn set_lease_minutes_ago(&self, minutes: i64) {
        let t = self.gl.now() - jiff::SignedDuration::from_mins(minutes);
        std::fs::create_dir_all(self.lease_path().parent().unwrap()).unwrap();
        std::fs::write(self.lease_path(), t.to_string()).unwrap();
    }
}

#[test]
fn a_token_that_would_not_outlive_min_validity_is_rotated_before_hand_out() {
    // A 3-day token: 48 to 72 h left whatever the time of day (it dies at 00:00 UTC).
    let Some(mut w) = GitLabWorld::logged_in(3, RENEWABLE) else {
        return;
    };
    // Steady path: far enough from expiry, no GitLab traffic at all.
    w.gl.clear_requests();
    assert_eq!(secret(&w.get()), w.token);
    assert!(w.gl.requests().is_empty(), "{:?}", w.gl.requests());

    // The token dies within min_validity (3 days > its 2-3 days left): rotate first.
    w.set_min_validity("3d");
    let out = w.get();
    let new = secret(&out);
    // The hard window cannot wait for the hand-out just above: that cut is announced.
    assert!(
        stderr(&out).contains("revoked it under 1 hand-out(s)"),
        "{}",
        stderr(&out)
    );
    assert_ne!(new, w.token);
    // A renewal costs two GitLab round trips: `…/self` (is it still the live token?), then
    // the rotation itself.
    assert_eq!(w.gl.requests().len(), 2, "{:?}", w.gl.requests());
    assert_eq!(w.gl.count("GET", PAT_SELF), 1);
    assert_eq!(w.gl.count("POST", ROTATE), 1);
    assert!(w.gl.token_info(&w.token).unwrap().revoked);
    let info = w.gl.token_info(&new).unwrap();
    assert!(info.active);
    // Not GitLab's 1-week default, and not the original 2 days either: the new token must
    // outlive min_validity (3 days) and then its own early window (half of what it lives
    // beyond min_validity) from any moment today, so that the next get does not rotate
    // again: 5 days (4 full days ≥ 3 + half of the 2 beyond them).
    let days = 5;
    assert_eq!(
        info.expires_at,
        Some(w.gl.today() + jiff::Span::new().days(days))
    );
    assert_eq!(
        w.s.secret_tool_lookup(&w.host).as_deref(),
        Some(new.as_str())
    );

    // The new token is what the registry accepts, and it is not rotated again.
    w.unset("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY");
    assert_eq!(secret(&w.get()), new);
    assert_eq!(w.gl.count("POST", ROTATE), 1);
    let status: serde_json::Value =
        serde_json::from_slice(&w.s.helper(&["status", "--json"], "").stdout).unwrap();
    assert_eq!(
        status[0]["expires_at"].as_str().unwrap()[..10],
        (w.gl.today() + jiff::Span::new().days(days)).to_string()
    );
}

#[test]
fn project_and_group_tokens_rotate_through_their_resource() {
    for kind in ["projects", "groups"] {
        let mut resource = 0;
        let Some(mut w) = GitLabWorld::logged_in_with(2, RENEWABLE, |gl, _, spec| {
            if kind == "projects" {
                resource = gl.add_project("group/project");
                gl.add_project_access_token(resource, spec).token
            } else {
                resource = gl.add_group("group");
                gl.add_group_access_token(resource, spec).token
            }
        }) else {
            return;
        };
        w.set_min_validity("3d");
        let new = secret(&w.get());
        assert_ne!(new, w.token, "{kind}");
        let endpoint = format!("/api/v4/{kind}/{resource}/access_tokens/self/rotate");
        assert_eq!(
            w.gl.count("POST", &endpoint),
            1,
            "{kind}: {:?}",
            w.gl.requests()
        );
        assert_eq!(w.gl.count("POST", ROTATE), 0, "{kind}");
        assert!(w.gl.token_info(&new).unwrap().active, "{kind}");
    }
}

#[test]
fn concurrent_gets_cause_exactly_one_rotation() {
    let Some(mut w) = GitLabWorld::logged_in(2, RENEWABLE) else {
        return;
    };
    w.set_min_validity("3d");
    w.gl.clear_requests();
    let w = &w;
    let secrets: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32).map(|_| scope.spawn(|| w.get())).collect();
        handles
            .into_iter()
            .map(|h| secret(&h.join().unwrap()))
            .collect()
    });
    assert_eq!(w.gl.count("POST", ROTATE), 1, "{:?}", w.gl.requests());
    let first = &secrets[0];
    assert_ne!(first, &w.token);
    assert!(secrets.iter().all(|s| s == first), "{secrets:?}");
    assert!(w.gl.token_info(first).unwrap().active);
}

#[test]
fn early_renewal_waits_for_leases_but_the_hard_window_does_not() {
    // A 30-day token ten days old (the test clock) has 19 to 20 days left, whatever the
    // time of day. With min_validity 15 d its early window is 7 d: 20 d < 15 d + 7 d, so it
    // is in the early window, outside the hard window.
    let Some(mut w) = GitLabWorld::logged_in(30, RENEWABLE) else {
        return;
    };
    w.set_clock(jiff::SignedDuration::from_hours(24 * 10));
    w.set_min_validity("15d");
    w.gl.clear_requests();

    w.set_lease_minutes_ago(5);
    assert_eq!(
        secret(&w.get()),
        w.token,
        "a live lease blocks early rotation"
    );
    assert_eq!(w.gl.count("POST", ROTATE), 0);

    // `rotate` refuses too, unless forced.
    w.set_lease_minutes_ago(5);
    let out = w.s.helper(&["rotate", &w.host], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(w.gl.count("POST", ROTATE), 0);

    // A lease lasts min_validity (15 d here).
    w.set_lease_minutes_ago((15 * 24 + 1) * 60);
    let rotated = secret(&w.get());
    assert_ne!(rotated, w.token, "an expired lease allows early rotation");
    assert_eq!(w.gl.count("POST", ROTATE), 1);

    // Hard window: the token dies within min_validity anyway, so a live lease does not
    // protect it.
    w.set_lease_minutes_ago(1);
    // The rotated token lives 30 days again: a 31-day promise puts it in its hard window.
    w.set_min_validity("31d");
    let again = secret(&w.get());
    assert_ne!(again, rotated);
    assert_eq!(w.gl.count("POST", ROTATE), 2);

    // rotate --force rotates now.
    w.unset("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY");
    w.set_lease_minutes_ago(1);
    let out = w.s.helper(&["rotate", &w.host, "--force"], "");
    assert_success(&out, "rotate --force");
    assert_eq!(w.gl.count("POST", ROTATE), 3);
    assert!(w.gl.token_info(&again).unwrap().revoked);
}

#[test]
fn gitlab_faults_during_renewal_serve_the_still_valid_token() {
    let Some(mut w) = GitLabWorld::logged_in(2, RENEWABLE) else {
        return;
    };
    w.set_min_validity("3d");
    // The wait after an ambiguous rotate, shortened for the test (60 s in real life).
    w.env("DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS", "0");

    for (i, fault) in [
        Fault::Status(500),
        Fault::Status(503),
        Fault::DropConnection,
    ]
    .into_iter()
    .enumerate()
    {
        w.gl.clear_faults();
        w.gl.inject_fault(ROTATE, fault, 1);
        let start = std::time::Instant::now();
        let out = w.get();
        assert_eq!(secret(&out), w.token);
        // Warned once a day, not on every docker command.
        assert_eq!(stderr(&out).contains("warning"), i == 0, "{}", stderr(&out));
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }
    // After a dropped connection the outcome was unknown: the next run asks GitLab whether
    // the token is still active (it is: the emulator dropped the request unhandled) and
    // then rotates normally. The old token is never presented twice after a rotation.
    w.gl.clear_faults();
    let new = secret(&w.get());
    assert_ne!(new, w.token);
    assert!(w.gl.token_info(&new).unwrap().active);

    // 429 with Retry-After inside the deadline: waited out, then rotated. (The new token
    // lives 5 days, long enough for 3 days: only a longer promise makes it rotate again.)
    assert_eq!(secret(&w.get()), new, "rotated again");
    w.set_min_validity("9d");
    w.gl.inject_fault(
        ROTATE,
        Fault::RateLimit {
            retry_after_secs: 1,
        },
        1,
    );
    let newer = secret(&w.get());
    assert_ne!(newer, new);
    assert!(w.gl.token_info(&newer).unwrap().active);
}

#[test]
fn a_gitlab_that_hangs_cannot_make_get_exceed_its_deadline() {
    let Some(mut w) = GitLabWorld::logged_in(2, RENEWABLE) else {
        return;
    };
    w.set_min_validity("3d");
    w.gl.inject_fault(ROTATE, Fault::Delay(std::time::Duration::from_secs(40)), 1);
    let start = std::time::Instant::now();
    let out = w.get();
    let took = start.elapsed();
    assert!(
        took < std::time::Duration::from_secs(21),
        "get took {took:?}"
    );
    assert_eq!(secret(&out), w.token, "the still-valid token is served");
    assert!(stderr(&out).contains("did not answer"), "{}", stderr(&out));
    // Whether GitLab went on to rotate is unknown to the helper; the next run finds out
    // through the token's own status, never by presenting it to the rotate endpoint again.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let out = w.get();
    if out.status.success() {
        let secret = secret(&out);
        assert!(w.gl.token_info(&secret).unwrap().active);
    } else {
        assert!(
            stdout(&out).contains("docker-credential-gitlab login"),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn a_token_that_cannot_renew_is_served_with_a_daily_warning() {
    let Some(mut w) = GitLabWorld::logged_in(2, &["read_registry", "write_registry"]) else {
        return;
    };
    w.set_min_validity("3d");
    let out = w.get();
    assert_eq!(secret(&out), w.token);
    let err = stderr(&out);
    assert!(
        err.contains("cannot renew itself") && err.contains("self_rotate"),
        "{err}"
    );
    assert_eq!(w.gl.count("POST", ROTATE), 0);
    let out = w.get();
    assert!(
        out.stderr.is_empty(),
        "warned twice the same day: {}",
        stderr(&out)
    );
}

/// Kill -9 the helper at every step of a rotation: afterwards either a usable secret is
/// stored, or the next run prints the recovery command; the old token is never re-sent to
/// the rotate endpoint.
#[cfg(feature = "fault-injection")]
#[test]
fn crash_at_every_step_of_a_rotation() {
    for step in [
        "after-journal",
        "after-rotate-response",
        "after-store-secret",
        "after-state",
    ] {
        let Some(mut w) = GitLabWorld::logged_in(2, RENEWABLE) else {
            return;
        };
        w.set_min_validity("3d");
        w.env("DOCKER_CREDENTIAL_GITLAB_FAULT", step);
        let out = w.get();
        assert!(
            !out.status.success(),
            "{step}: the fault point did not fire"
        );
        w.unset("DOCKER_CREDENTIAL_GITLAB_FAULT");

        let rotations_before = w.gl.count("POST", ROTATE);
        let out = w.get();
        let old_reused =
            w.gl.requests()
                .iter()
                .filter(|r| r.method == "POST" && r.path == ROTATE && r.status == 401)
                .count();
        assert_eq!(
            old_reused, 0,
            "{step}: a revoked token was sent to the rotate endpoint"
        );
        if out.status.success() {
            let secret = secret(&out);
            assert!(
                w.gl.token_info(&secret).unwrap().active,
                "{step}: the stored secret is not usable"
            );
        } else {
            let line = stdout(&out);
            assert!(
                line.contains("docker-credential-gitlab login"),
                "{step}: no recovery command: {line}"
            );
            assert_eq!(step, "after-rotate-response");
            assert_eq!(
                w.gl.count("POST", ROTATE),
                rotations_before,
                "{step}: retried"
            );
        }
    }
}
