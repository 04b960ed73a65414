//! Races and fault windows found by review: one token under several keys (journal, kept
//! copy and leases shared by the token, not the key), standby pairs with kept tokens and
//! docker login round trips, a rotation racing a lock-free get, `rotate` racing a get, and
//! an absurd min_validity. Real registry in token mode + the emulator + a real keyring.

use std::process::Command;
use std::time::Duration;

use crate::support::gitlab::{GitLabWorld, login};
use crate::support::renewal::*;
use crate::support::*;
use gitlab_emulator::Fault;

/// One token under two keys: a hand-out through `other` is a live lease on the *token*;
/// a soft (early-window) rotation through `host` must not revoke it.
#[test]
fn a_lease_on_a_sharing_key_protects_the_token() {
    let Some(mut w) = GitLabWorld::renewing(30) else {
        return;
    };
    let other = w.host.replace("127.0.0.1", "localhost");
    login(&w, &other, &w.token);
    // Ten days old: a 30-day token with 19.5 days left, inside its early window for a
    // 15-day promise (7 days), outside its hard window.
    w.age(10);
    // Handed out through `other` with the default 60 min promise.
    assert_eq!(secret(&w.get_host(&other)), w.token);
    // A process with a longer promise (15 d) finds the token inside its early window.
    w.env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "15d");
    let _ = w.get();
    assert_eq!(
        w.rotate_calls(),
        0,
        "rotated under a live lease of a sharing key"
    );
    assert!(
        w.gl.token_info(&w.token).unwrap().active,
        "the token handed out through {other} one moment ago is revoked"
    );
}

/// One token under two keys; a rotation through `host` had an ambiguous outcome (GitLab
/// did it, the answer was a 502). The journal is under `host` only: `get other` hands out
/// the revoked token with exit 0.
#[test]
fn an_ambiguous_rotation_is_seen_by_every_sharing_key() {
    let Some(mut w) = GitLabWorld::renewing(30) else {
        return;
    };
    let other = w.host.replace("127.0.0.1", "localhost");
    login(&w, &other, &w.token);
    // Ten days old: a 30-day token with 19.5 days left, inside its early window for a
    // 15-day promise (7 days), outside its hard window.
    w.age(10);
    w.gl.inject_fault(ROTATE, Fault::StatusAfterWork(502), 1);
    w.env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "15d");
    let out = w.get();
    assert!(!out.status.success());
    assert!(w.gl.token_info(&w.token).unwrap().revoked);
    w.unset("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY");
    let out = w.get_host(&other);
    assert!(
        !out.status.success(),
        "get {other} exit 0 with the revoked token: {}",
        stdout(&out)
    );
}

/// The state lock times out after GitLab rotated: the new token is kept for `host` only.
/// `other` (the same token) keeps the revoked one and hands it out with exit 0, for good.
#[test]
fn a_kept_token_reaches_every_sharing_key() {
    let Some(mut w) = GitLabWorld::renewing(30) else {
        return;
    };
    let other = w.host.replace("127.0.0.1", "localhost");
    login(&w, &other, &w.token);
    // Ten days old: a 30-day token with 19.5 days left, inside its early window for a
    // 15-day promise (7 days), outside its hard window.
    w.age(10);
    w.env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "15d");
    let out = w.get_with_state_lock_held();
    let new = secret(&out);
    assert_ne!(new, w.token);
    w.unset("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY");
    assert_eq!(secret(&w.get()), new, "host adopts its kept token");
    let out = w.get_host(&other);
    assert!(
        !out.status.success() || secret(&out) == new,
        "get {other} exit 0 with the revoked token: {}",
        stdout(&out)
    );
}

/// A kept token (the store refused it) must not override what the user stored afterwards.
#[test]
fn a_kept_token_does_not_override_a_later_login() {
    let Some(mut w) = GitLabWorld::renewing_with(2, "3d") else {
        return;
    };
    let out = w.get_with_state_lock_held();
    let kept = secret(&out);
    w.unset("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY");
    // The user logs in again, explicitly, with another token.
    let fresh = w.pat(RENEWABLE, 90);
    login(&w, &w.host, &fresh);
    let got = secret(&w.get());
    assert_eq!(
        got, fresh,
        "get handed out the kept token {kept} instead of the one just logged in"
    );
    assert_eq!(
        w.s.secret_tool_lookup(&w.host).as_deref(),
        Some(fresh.as_str())
    );
}

/// `docker login HOST` with a stored credential runs `get`, then `store` with the secret
/// it got. With the standby token active, that writes the *standby's* secret into the
/// primary's item: the primary token is dropped from the store and renewal is turned off.
#[test]
fn docker_login_round_trip_with_an_active_standby_keeps_the_primary() {
    let Some(mut w) = GitLabWorld::renewing(30) else {
        return;
    };
    let second = w.pat(RENEWABLE, 90);
    login_standby(&w, &w.host, &second);
    // Ten days old: a 30-day token with 19.5 days left, inside its early window for a
    // 15-day promise (7 days), outside its hard window.
    w.age(10);
    // The primary (19.5 d left) is inside its early window for a 15 d promise; the
    // standby (90 d) is not.
    w.env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "15d");
    let out = w.get();
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(secret(&out), second, "switched to the standby");
    let payload = serde_json::json!({
        "ServerURL": w.host, "Username": got["Username"], "Secret": got["Secret"],
    });
    assert_success(&w.s.helper(&["store"], payload.to_string()), "store");
    assert_eq!(
        w.s.secret_tool_lookup(&w.host).as_deref(),
        Some(w.token.as_str()),
        "the primary's item now holds the standby's token; the primary token is gone"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&w.s.helper(&["status", "--json"], "").stdout).unwrap();
    let primary = status
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["standby"] == false)
        .unwrap();
    assert_eq!(primary["can_renew"], true, "{status}");
}

/// The standby's renewal minted a token, but the state lock was held past both of get's
/// lock waits: the token is kept (kept/HOST#standby.json). The next get must use it; the
/// pair logic instead presents the revoked old standby token to `…/self`, calls it
/// "rotated elsewhere" and falls back to the single-token policy.
#[test]
fn a_kept_standby_token_is_used_by_the_pair() {
    let Some(mut w) = GitLabWorld::renewing(30) else {
        return;
    };
    let second = w.pat(RENEWABLE, 30);
    login_standby(&w, &w.host, &second);
    // Ten days old: a 30-day token with 19.5 days left, inside its early window for a
    // 15-day promise (7 days), outside its hard window.
    w.age(10);
    // Both inside their early window for a 15 d promise; nobody holds the standby.
    w.env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "15d");
    let started = std::time::Instant::now();
    let out = w.get_with_state_lock_held();
    // The minted token is handed out, within the get deadline, although the state lock
    // was held past every wait.
    assert!(
        started.elapsed() < Duration::from_secs(21),
        "{:?}",
        started.elapsed()
    );
    let minted = secret(&out);
    assert_ne!(minted, second);
    let kept: Vec<_> = std::fs::read_dir(w.s.data_dir().join("kept"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(w.gl.token_info(&second).unwrap().revoked);
    let out = w.get();
    let got = secret(&out);
    assert_eq!(got, minted, "the kept standby token was not handed out");
    assert_ne!(got, second, "handed out the revoked standby token");
    assert_eq!(
        w.rotate_calls(),
        1,
        "the primary was rotated too (single-token fallback): got {got}"
    );
}

/// A lock-free `get` reads the secret, then (before its lease is written) a whole
/// rotation runs in another process: the rotation saw no lease and no journal is left,
/// so `get` hands out the token that was just revoked, exit 0. The window between the
/// keychain read and the lease write is widened here with a FIFO as the first process's
/// settings file (Settings::load runs exactly there, src/sources/handout.rs apply_policy).
#[test]
fn a_rotation_between_the_secret_read_and_the_lease_write() {
    let Some(mut w) = GitLabWorld::renewing(30) else {
        return;
    };
    // Ten days old: a 30-day token with 19.5 days left, inside its early window for a
    // 15-day promise (7 days), outside its hard window.
    w.age(10);
    let cfg = w.s.dir.path().join("slow-config");
    std::fs::create_dir_all(&cfg).unwrap();
    let fifo = cfg.join("config.json");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // Process 1: an ordinary get (60 min promise).
    w.env("DOCKER_CREDENTIAL_GITLAB_CONFIG_DIR", cfg.to_str().unwrap());
    let g1 = w.s.spawn(Command::new(BIN).arg("get"), &w.host);
    std::thread::sleep(Duration::from_millis(1500));
    // Process 2: a get with a 15 d promise rotates (early window, no lease yet).
    w.unset("DOCKER_CREDENTIAL_GITLAB_CONFIG_DIR");
    w.env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "15d");
    let new = secret(&w.get());
    assert_ne!(new, w.token);
    assert_eq!(w.rotate_calls(), 1);
    // Process 1 goes on.
    std::fs::write(&fifo, "{}").unwrap();
    let out = g1.wait_with_output().unwrap();
    let got = secret(&out);
    assert!(
        w.gl.token_info(&got).unwrap().active,
        "exit 0 with a token revoked before its hand-out (got the old token: {})",
        got == w.token
    );
}

/// An absurd but accepted min_validity must be an error line, not a panic.
#[test]
fn a_huge_min_validity_does_not_panic() {
    let Some(w) = GitLabWorld::renewing_with(30, "100000000d") else {
        return;
    };
    let out = w.get();
    assert!(
        !stderr(&out).contains("panicked") && out.status.code() != Some(101),
        "status {:?}: {}",
        out.status.code(),
        stderr(&out)
    );
}

/// `rotate` without --force refuses while a lease is live, but checks it before the
/// renewal frame runs and passes hard=true, so the frame's own re-check after the journal
/// is skipped: a get that hands out while rotate confirms the token at `…/self` is cut.
#[test]
fn rotate_without_force_never_cuts_a_hand_out() {
    let Some(w) = GitLabWorld::renewing(30) else {
        return;
    };
    w.gl.inject_fault(PAT_SELF, Fault::Delay(Duration::from_secs(3)), 1);
    let w = &w;
    let (rot, handed) = std::thread::scope(|scope| {
        let r = scope.spawn(|| w.s.helper(&["rotate", &w.host], ""));
        std::thread::sleep(Duration::from_millis(1000));
        let g = secret(&w.get());
        (r.join().unwrap(), g)
    });
    let _ = rot;
    assert_eq!(handed, w.token);
    assert!(
        w.gl.token_info(&handed).unwrap().active,
        "rotate (no --force) revoked a token handed out one moment before"
    );
}
