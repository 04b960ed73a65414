//! Fleets (issue 17): one GitLab credential shared by several build servers through a real
//! OpenBao (`DOCKER_CREDENTIAL_GITLAB_STORE=vault`), renewed once for the whole fleet.
//! Each host has its own HOME, data directory and host id (`support::fleet`); the GitLab
//! emulator counts the rotations and says which tokens are alive.

use jiff::{SignedDuration, Timestamp};

use crate::support::fleet::*;
use crate::support::openbao::{NO_LIST_POLICY, VAULT_PATH};
use crate::support::*;

/// The one secret every output in `outs` handed out (each must exit 0).
#[track_caller]
fn the_one_secret<'a>(
    outs: impl IntoIterator<Item = (&'a str, &'a std::process::Output)>,
) -> String {
    let mut secrets: Vec<(String, String)> = outs
        .into_iter()
        .map(|(id, out)| {
            assert_success(out, &format!("get on {id}"));
            (id.to_owned(), secret(out))
        })
        .collect();
    let first = secrets[0].1.clone();
    secrets.retain(|(_, s)| *s != first);
    assert!(
        secrets.is_empty(),
        "the fleet handed out different secrets: {first} and {secrets:?}"
    );
    first
}

#[test]
fn a_login_on_one_host_serves_every_host_and_no_host_keeps_the_secret_on_disk() {
    let Some(f) = Fleet::logged_in(3, 30) else {
        return;
    };
    let token = f.w.token.clone();
    for h in &f.hosts {
        let out = h.get();
        assert_eq!(secret(&out), token, "get on {}", h.id);
        assert!(out.stderr.is_empty(), "{}: {}", h.id, stderr(&out));
        assert!(
            h.list().contains_key(&f.w.host),
            "list on {} does not show {}: {:?}",
            h.id,
            f.w.host,
            h.list()
        );
        let rows = h.status_rows();
        assert!(
            rows.iter().any(|r| r["registry"] == f.w.host.as_str()),
            "status on {}: {rows:?}",
            h.id
        );
    }
    assert_eq!(f.rotate_calls(), 0, "a fresh token was rotated");
    // The record lives in Vault, where the spec puts it.
    let record = f
        .record()
        .expect("no record in Vault under records/<enc(key)>");
    assert_eq!(record["secret"], token.as_str(), "{record}");
    assert!(
        f.bao.kv_list("records").contains(&enc(&f.w.host)),
        "{:?}",
        f.bao.kv_list("records")
    );
    // ... and nowhere on the hosts' disks.
    assert_eq!(
        f.files_holding(&token),
        Vec::<std::path::PathBuf>::new(),
        "the GitLab token is on a host's disk"
    );
}

#[test]
fn status_and_doctor_show_the_vault_address_path_and_fleet() {
    let Some(mut f) = Fleet::logged_in(2, 30) else {
        return;
    };
    f.hosts[0].configure_docker();
    assert_success(&f.hosts[1].get(), "get on host-2");
    let text = stdout(&f.hosts[0].status(&[]));
    assert!(text.contains(&f.bao.addr()), "status: {text}");
    assert!(text.contains(VAULT_PATH), "status: {text}");
    // --json: each row names the hosts holding live hand-outs of it.
    let rows = f.hosts[0].status_rows();
    let hosts: Vec<&str> = rows[0]["live_handouts"]
        .as_array()
        .unwrap_or_else(|| panic!("no live_handouts: {rows:?}"))
        .iter()
        .map(|l| l["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["host-2"]);
    let out = f.hosts[0].doctor();
    let text = stdout(&out);
    assert!(text.contains(&f.bao.addr()), "doctor: {text}");
    assert!(
        !text.contains("FAIL"),
        "doctor with the README's policy: {text}"
    );
    assert_success(&out, "doctor");
}

/// The README's policy minus `list`: `doctor` names the capability that is missing.
#[test]
fn doctor_names_a_missing_capability() {
    let Some(mut f) = Fleet::logged_in(1, 30) else {
        return;
    };
    f.bao.policy("no-list", NO_LIST_POLICY);
    let token = f.bao.token(&["no-list"], "1h");
    let i = f.add_host(VaultAuth::Token(token));
    f.hosts[i].configure_docker();
    let text = stdout(&f.hosts[i].doctor());
    let fail = text
        .lines()
        .find(|l| l.starts_with("FAIL"))
        .unwrap_or_else(|| panic!("no FAIL line: {text}"));
    assert!(fail.contains("list"), "{text}");
}

/// N = 3 hosts × M = 4 processes, all due at once: exactly one rotation for the fleet.
#[test]
fn many_due_gets_on_many_hosts_rotate_exactly_once() {
    let Some(mut f) = Fleet::logged_in(3, 2) else {
        return;
    };
    // A 2-day token under a 3-day promise: due on every host.
    f.env_all("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "3d");
    let outs = f.gets_everywhere_at_once(4);
    assert_eq!(outs.len(), 12);
    let got = the_one_secret(outs.iter().map(|(id, o)| (id.as_str(), o)));
    assert_eq!(f.rotate_calls(), 1, "rotations for one due credential");
    assert_ne!(got, f.w.token, "handed out the old token");
    let info = f.w.gl.token_info(&got).unwrap();
    assert!(info.active, "the token the fleet handed out is not active");
    assert_eq!(f.record().unwrap()["secret"], got.as_str());
    assert!(f.record().unwrap().get("claim").is_none_or(|c| c.is_null()));
    assert_eq!(f.files_holding(&got), Vec::<std::path::PathBuf>::new());
    // Steady again: no further rotation.
    for h in &f.hosts {
        assert_eq!(secret(&h.get()), got, "get on {}", h.id);
    }
    assert_eq!(f.rotate_calls(), 1);
}

/// Hand-outs whose token GitLab revoked before their promise ran out.
fn cut(
    f: &Fleet,
    handouts: &[(String, Timestamp, String)],
    promise: SignedDuration,
) -> Vec<String> {
    handouts
        .iter()
        .filter_map(|(id, at, token)| {
            let revoked = f.w.gl.token_info(token)?.revoked_at?;
            (revoked < *at + promise).then(|| format!("{id}: handed out {at}, revoked {revoked}"))
        })
        .collect()
}

/// A busy fleet: every host gets every simulated 2 h for 10 days, promising 20 h, with a
/// standby pair logged in on one host. No hand-out on any host is cut, none was revoked
/// when it was handed out, and renewal did run.
#[test]
fn a_busy_fleet_with_a_standby_pair_never_cuts_a_hand_out() {
    let Some(mut f) = Fleet::logged_in(3, 4) else {
        return;
    };
    let second = f.w.pat(RENEWABLE, 4);
    let out = f.hosts[0].login(&second, &["--standby"]);
    assert_success(&out, "login --standby on host-1");
    for h in &f.hosts {
        assert_eq!(h.list().len(), 1, "{}: one registry for docker", h.id);
    }
    let promise = SignedDuration::from_hours(20);
    f.env_all("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "20h");
    let mut handouts = Vec::new();
    let mut revoked_when_handed_out = Vec::new();
    for step in 0..(10 * 24 / 2) {
        f.set_clock(SignedDuration::from_hours(2 * step));
        for h in &f.hosts {
            let out = h.get();
            assert_success(&out, &format!("get on {} at step {step}", h.id));
            let token = secret(&out);
            let at = f.w.gl.now();
            if !f.w.gl.token_info(&token).unwrap().active {
                revoked_when_handed_out.push(format!("{} at step {step}", h.id));
            }
            assert!(
                !stderr(&out).contains("--standby"),
                "{}: {}",
                h.id,
                stderr(&out)
            );
            handouts.push((h.id.clone(), at, token));
        }
    }
    let mut distinct: Vec<&String> = handouts.iter().map(|(_, _, t)| t).collect();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() >= 4,
        "only {} tokens over 10 days: renewal never ran",
        distinct.len()
    );
    assert_eq!(
        revoked_when_handed_out,
        Vec::<String>::new(),
        "revoked hand-outs"
    );
    assert_eq!(
        cut(&f, &handouts, promise),
        Vec::<String>::new(),
        "cut hand-outs"
    );
}

/// `min_validity` stays per host, and a lease carries its own promise: a host that wants a
/// long promise (inside its early window) does not rotate under another host's short
/// hand-out, and a host with a short promise does not rotate under another host's long one.
#[test]
fn hosts_with_different_min_validity_never_cut_each_others_leases() {
    let Some(mut f) = Fleet::logged_in(3, 30) else {
        return;
    };
    let token = f.w.token.clone();
    // Ten days old: 19.5 days left.
    f.age(10);
    // host-2 hands it out with the default 60 min promise.
    assert_eq!(secret(&f.hosts[1].get()), token);
    // host-1 wants 15 days: inside its early window (15 d + 7 d), but host-2's lease is
    // live. It hands out the old token (19.5 d > 15 d) and must not rotate.
    f.hosts[0].env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "15d");
    assert_eq!(secret(&f.hosts[0].get()), token, "host-1 (15 d)");
    assert_eq!(f.rotate_calls(), 0, "rotated under host-2's 60 min lease");

    // Day 21: 8.5 days left. host-2's lease ended long ago; host-1's (15 d, until day 25)
    // is live. host-3 promises 1 h but renews 10 d early: in its early window. Read with
    // host-3's own promise, host-1's lease would look dead.
    f.age(21);
    f.hosts[2].settings(r#"{"min_validity": "1h", "early_renewal": "10d"}"#);
    assert_eq!(secret(&f.hosts[2].get()), token, "host-3 (1 h, early 10 d)");
    assert_eq!(
        f.rotate_calls(),
        0,
        "host-3 rotated under host-1's 15 d lease"
    );
    assert!(
        f.w.gl.token_info(&token).unwrap().active,
        "the token host-1 promised for 15 days was revoked"
    );
    // The leases are one key per host under leases/<enc(key)>/.
    let leases = f.bao.kv_list(&format!("leases/{}", enc(&f.w.host)));
    assert!(
        leases.contains(&"host-1".to_owned()) && leases.contains(&"host-2".to_owned()),
        "{leases:?}"
    );
}

#[test]
fn approle_auth_works() {
    let Some(mut f) = Fleet::logged_in(1, 30) else {
        return;
    };
    let (role_id, secret_id) = f.bao.approle(&["fleet"]);
    let i = f.add_host(VaultAuth::AppRole { role_id, secret_id });
    assert_eq!(secret(&f.hosts[i].get()), f.w.token);
    let text = stdout(&f.hosts[i].status(&[]));
    assert!(
        text.to_lowercase().contains("approle"),
        "status names the auth method: {text}"
    );
}

#[test]
fn a_vault_token_file_in_home_works() {
    let Some(mut f) = Fleet::logged_in(1, 30) else {
        return;
    };
    let token = f.bao.token(&["fleet"], "1h");
    let i = f.add_host(VaultAuth::TokenFile(token));
    assert_eq!(secret(&f.hosts[i].get()), f.w.token);
}

/// `docker login` on one host (`store`), `get` on another, `erase` on a third.
#[test]
fn store_and_erase_are_fleet_wide() {
    let Some(f) = Fleet::start(3, 30) else {
        return;
    };
    assert_success(&f.hosts[0].store(&f.w.host, "alice", &f.w.token), "store");
    assert_eq!(secret(&f.hosts[1].get()), f.w.token);
    assert_success(&f.hosts[2].erase(&f.w.host), "erase");
    let out = f.hosts[1].get();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("credentials not found"),
        "{}",
        stdout(&out)
    );
    assert!(f.hosts[0].list().is_empty());
}
