//! A fleet whose hosts' clocks disagree (issue 17, and "time you can trust"): claims and
//! leases are kept on Vault's clock (each host converts with the skew it measures from
//! Vault's `Date`), so a host whose clock is ahead never takes over a claim that is still
//! live, and a host whose clock is behind never has its hand-outs read as run out.

use jiff::SignedDuration;

use crate::support::fleet::*;
use crate::support::*;

/// host-2's clock is 10 minutes ahead. host-1 has claimed the renewal and asked GitLab
/// (paused right after its claim became a journal). On host-2's clock host-1's claim
/// expired 9.5 minutes ago; on Vault's it is live: host-2 waits for it and hands out
/// host-1's token. One rotation (a second would present a rotated token to GitLab).
#[test]
fn a_host_ahead_never_takes_over_a_live_claim() {
    let Some(mut f) = Fleet::logged_in(2, 2) else {
        return;
    };
    f.env_all("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "3d");
    f.hosts[1].skew_clock(SignedDuration::from_mins(10));
    let (claimer, marker) = f.hosts[0].get_paused_at("after-journal");
    let waiter = f.hosts[1].spawn(&["get"], &f.w.host);
    std::thread::sleep(std::time::Duration::from_secs(3));
    std::fs::remove_file(marker).unwrap();
    let claimed = claimer.wait_with_output().unwrap();
    assert_success(&claimed, "host-1's renewal");
    let new = secret(&claimed);
    let out = waiter.wait_with_output().unwrap();
    assert_success(&out, "host-2's get");
    assert_eq!(secret(&out), new, "host-2 did not wait for host-1's token");
    assert_eq!(f.rotate_calls(), 1, "two rotations");
    assert!(
        f.w.gl.token_info(&new).unwrap().active,
        "the family was revoked"
    );
}

/// host-1's clock is 3 hours behind; it hands the token out with the default 60-minute
/// promise. host-2 (right clock) is in its early window (renews 25 days early) and must
/// read host-1's lease as live for the next hour: no rotation, the token stays active.
#[test]
fn a_host_behind_keeps_its_lease() {
    let Some(mut f) = Fleet::logged_in(2, 30) else {
        return;
    };
    let token = f.w.token.clone();
    // 14 days left of 30: inside a 1 h promise's early window (half of what the token lives
    // beyond it, at most the 25 days host-2 sets), far from its hard window.
    f.age(16);
    f.hosts[0].skew_clock(SignedDuration::from_hours(-3));
    assert_eq!(secret(&f.hosts[0].get()), token, "host-1");
    f.hosts[1].settings(r#"{"min_validity": "1h", "early_renewal": "25d"}"#);
    assert_eq!(secret(&f.hosts[1].get()), token, "host-2");
    assert_eq!(f.rotate_calls(), 0, "rotated under host-1's live hand-out");
    assert!(f.w.gl.token_info(&token).unwrap().active);
    // Its lease runs out an hour (and the 5-minute slack) later, on everyone's clock:
    // then host-2 renews.
    f.set_clock(SignedDuration::from_hours(24 * 16 + 2));
    let out = f.hosts[1].get();
    let renewed = secret(&out);
    assert_ne!(
        renewed,
        token,
        "host-2 did not renew once the lease ran out: {}",
        stderr(&out)
    );
    assert_eq!(f.rotate_calls(), 1);
}
