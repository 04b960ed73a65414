//! Fleets (issue 17) when something breaks: a claimer killed between GitLab's answer and
//! the Vault write, a claim left by a dead host, another host's rotation in progress, Vault
//! stopped, sealed, its token revoked, unreachable, restarted; and issue 17 §1 (a token
//! known to be dead is never served again) with the `file` store on separate machines.

use std::io::{Read, Write};
use std::time::Duration;

use jiff::SignedDuration;

use crate::support::fleet::*;
use crate::support::gitlab::GitLabWorld;
use crate::support::openbao::OpenBao;
use crate::support::*;

/// How long a `get` may take to say Vault is unusable.
const FAST: Duration = Duration::from_secs(5);

/// Rotates `token` at the emulator as another machine would (`POST …/self/rotate`, the
/// token in a header, never in argv): the new token.
fn rotate_at_gitlab(gitlab_url: &str, token: &str) -> String {
    let addr = gitlab_url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "POST {ROTATE} HTTP/1.1\r\nHost: {addr}\r\nPRIVATE-TOKEN: {token}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "rotate at GitLab: {head}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// Leaves a claim of a dead host (`host-9`) on the fleet's record, expired a while ago.
fn leave_a_dead_hosts_claim(f: &Fleet) {
    let mut record = f.record().expect("a record after login");
    let expired = f.w.gl.now() - SignedDuration::from_mins(5);
    record["claim"] = serde_json::json!({
        "host": "host-9",
        "pid": 4_000_000,
        "at": (expired - SignedDuration::from_secs(30)).to_string(),
        "expires_at": expired.to_string(),
        "renewing": true,
    });
    f.bao
        .kv_put(&format!("records/{}", enc(&f.w.host)), &record);
}

/// A fleet of `n` logged in with a 2-day token, every host promising 3 days: every get due.
fn due_fleet(n: usize) -> Option<Fleet> {
    let mut f = Fleet::logged_in(n, 2)?;
    f.env_all("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "3d");
    Some(f)
}

/// The claimer dies after GitLab rotated, before Vault has the new token. The family is
/// not revoked; other hosts say what to do (never the old token with exit 0); the killed
/// host's next get puts its kept token into Vault, and from then on the fleet serves it.
#[test]
fn the_claimer_killed_between_gitlab_and_vault_loses_nothing() {
    let Some(mut f) = due_fleet(3) else {
        return;
    };
    let old = f.w.token.clone();
    let out = f.hosts[0].get_killed_at("after-rotate-response");
    assert!(
        !out.status.success(),
        "the fault point did not kill the get"
    );
    assert_eq!(f.rotate_calls(), 1);
    let info = f.w.gl.token_info(&old).unwrap();
    assert!(info.revoked, "GitLab did not rotate");
    let new =
        f.w.gl
            .active_family_member(info.family.unwrap())
            .expect("the token family was revoked")
            .token;
    // host-1 keeps the minted token locally, 0600, until Vault has it.
    let kept = f.hosts[0].kept_files();
    assert_eq!(kept.len(), 1, "{kept:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&kept[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", kept[0].display());

    // Meanwhile on host-2: never the revoked token with exit 0.
    let out = f.hosts[1].get();
    if out.status.success() {
        assert_eq!(
            secret(&out),
            new,
            "host-2 handed out a token other than the new one"
        );
    } else {
        let line = assert_one_line_error(&out, "get on host-2 after host-1 died");
        assert!(
            line.contains("try again") || line.contains("docker-credential-gitlab login"),
            "host-2's line does not say what to do: {line}"
        );
    }
    assert_eq!(f.rotate_calls(), 1, "a second rotation");
    assert!(f.w.gl.token_info(&new).unwrap().active, "family revoked");

    // host-1 comes back: its kept token goes to Vault.
    assert_eq!(secret(&f.hosts[0].get()), new, "host-1's next get");
    assert_eq!(
        f.hosts[0].kept_files().len(),
        0,
        "the kept copy outlived its move"
    );
    assert_eq!(f.record().unwrap()["secret"], new.as_str());
    for h in &f.hosts[1..] {
        assert_eq!(secret(&h.get()), new, "get on {}", h.id);
    }
    assert_eq!(f.rotate_calls(), 1);
    assert!(f.w.gl.token_info(&new).unwrap().active);
}

/// A claim of a host that died after GitLab rotated (its new token died with it): the next
/// get resolves it with `GET …/self`, never by presenting the old token to rotate (which
/// would revoke the family), and says the token was revoked elsewhere, with the fix.
#[test]
fn a_dead_hosts_claim_after_gitlab_rotated_is_resolved_with_self() {
    let Some(f) = due_fleet(2) else {
        return;
    };
    let theirs = rotate_at_gitlab(&f.w.gl.url(), &f.w.token);
    leave_a_dead_hosts_claim(&f);
    f.w.gl.clear_requests();
    let (out, took) = f.hosts[1].timed_get();
    let line = assert_one_line_error(&out, "get after a dead host's claim");
    assert!(took < Duration::from_secs(21), "{took:?}");
    assert!(line.contains("revoked elsewhere"), "{line}");
    assert!(
        line.contains(&format!("docker-credential-gitlab login {}", f.w.host)),
        "{line}"
    );
    assert!(
        f.w.gl.count("GET", PAT_SELF) >= 1,
        "the claim was not resolved with …/self"
    );
    assert_eq!(
        f.w.gl.count("POST", ROTATE),
        0,
        "presented the old token to rotate"
    );
    assert!(
        f.w.gl.token_info(&theirs).unwrap().active,
        "the family was revoked"
    );
    // The whole fleet knows it now.
    let out = f.hosts[0].get();
    let line = assert_one_line_error(&out, "get on host-1");
    assert!(line.contains("revoked elsewhere"), "{line}");
    let text = stdout(&f.hosts[0].status(&[]));
    assert!(text.contains("revoked elsewhere"), "status: {text}");
    assert_eq!(f.w.gl.count("POST", ROTATE), 0);
}

/// A claim of a host that died before GitLab answered (the token was never rotated): the
/// next get resolves it with `…/self`, then renews, once.
#[test]
fn a_dead_hosts_claim_before_gitlab_answered_is_resolved_and_renewed_once() {
    let Some(f) = due_fleet(2) else {
        return;
    };
    leave_a_dead_hosts_claim(&f);
    f.w.gl.clear_requests();
    let (out, took) = f.hosts[1].timed_get();
    let new = secret(&out);
    assert!(
        took < Duration::from_secs(10),
        "waited on a dead claim: {took:?}"
    );
    assert_ne!(new, f.w.token);
    assert_eq!(f.rotate_calls(), 1);
    assert!(f.w.gl.token_info(&new).unwrap().active);
    let paths: Vec<String> = f.w.gl.requests().into_iter().map(|r| r.path).collect();
    let first_self = paths.iter().position(|p| p == PAT_SELF);
    let rotate = paths.iter().position(|p| p == ROTATE);
    assert!(
        first_self.is_some() && first_self < rotate,
        "no …/self before the rotation: {paths:?}"
    );
    assert_eq!(secret(&f.hosts[0].get()), new);
    assert_eq!(f.rotate_calls(), 1);
}

/// Another host is rotating (paused after GitLab's answer): a due get on this host waits
/// within its budget and gets the new token; one rotation in all.
#[test]
fn a_get_waits_for_another_hosts_rotation_and_gets_its_token() {
    let Some(mut f) = due_fleet(2) else {
        return;
    };
    let (claimer, marker) = f.hosts[0].get_paused_at("after-rotate-response");
    let waiter = f.hosts[1].spawn(&["get"], &f.w.host);
    std::thread::sleep(Duration::from_secs(2));
    std::fs::remove_file(marker).unwrap();
    let new = secret(&claimer.wait_with_output().unwrap());
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(secret(&out), new, "host-2 did not get host-1's token");
    assert_eq!(f.rotate_calls(), 1);
}

/// A due get on host-2 while Vault is broken by `fault`: exit 1 within 5 s, one line
/// naming Vault and its address; no rotation; the token stays alive.
fn assert_fails_fast_naming_vault(f: &Fleet, what: &str) {
    let (out, took) = f.hosts[1].timed_get();
    assert!(took < FAST, "{what}: get took {took:?}");
    let line = assert_one_line_error(&out, what);
    assert!(line.contains("Vault"), "{what}: {line}");
    assert!(line.contains(&f.bao.addr()), "{what}: no address: {line}");
    assert_eq!(
        f.rotate_calls(),
        0,
        "{what}: a host cut off from Vault rotated"
    );
    assert!(f.w.gl.token_info(&f.w.token).unwrap().active);
}

#[test]
fn a_stopped_vault() {
    let Some(mut f) = due_fleet(2) else {
        return;
    };
    f.bao.stop();
    assert_fails_fast_naming_vault(&f, "Vault stopped");
}

#[test]
fn a_sealed_vault() {
    let Some(f) = due_fleet(2) else {
        return;
    };
    f.bao.seal();
    assert_fails_fast_naming_vault(&f, "Vault sealed");
    let (out, _) = f.hosts[1].timed_get();
    assert!(stdout(&out).contains("sealed"), "{}", stdout(&out));
    f.bao.unseal();
    assert_success(&f.hosts[1].get(), "get after unseal");
}

#[test]
fn a_revoked_vault_token() {
    let Some(f) = due_fleet(2) else {
        return;
    };
    let token = f.hosts[1].var("VAULT_TOKEN").unwrap().to_owned();
    f.bao.revoke(&token);
    assert_fails_fast_naming_vault(&f, "Vault token revoked");
}

/// A host whose `VAULT_ADDR` points nowhere: exit 1 within 5 s naming Vault, and it never
/// rotates (it could not hand the new token to the fleet).
#[test]
fn a_host_cut_off_from_vault_never_rotates() {
    let Some(mut f) = due_fleet(1) else {
        return;
    };
    let i = f.add_token_host();
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    f.hosts[i].env("VAULT_ADDR", &nowhere);
    f.hosts[i].env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", "3d");
    let (out, took) = f.hosts[i].timed_get();
    assert!(took < FAST, "{took:?}");
    let line = assert_one_line_error(&out, "get with Vault unreachable");
    assert!(line.contains("Vault") && line.contains(&nowhere), "{line}");
    assert_eq!(f.rotate_calls(), 0);
    assert!(f.w.gl.token_info(&f.w.token).unwrap().active);
}

/// OpenBao restarted (on-disk storage): the fleet's credential is still there.
#[test]
fn a_vault_restart_keeps_the_fleet_credential() {
    let Some(bao) = OpenBao::with_file_storage() else {
        return;
    };
    let Some(mut f) = Fleet::start_on(bao, 2, 30) else {
        return;
    };
    assert_success(&f.hosts[0].login(&f.w.token, &[]), "login on host-1");
    f.bao.stop();
    let (out, took) = f.hosts[1].timed_get();
    assert!(took < FAST, "{took:?}");
    let line = assert_one_line_error(&out, "get with Vault down");
    assert!(line.contains("Vault"), "{line}");
    f.bao.start();
    assert_eq!(secret(&f.hosts[1].get()), f.w.token);
}

/// Issue 17 §1 with the `file` store: two machines, one token. Machine A rotates; machine B
/// learns it (exit 1, "revoked elsewhere") and from then on never serves the dead token,
/// not even at default settings, until a new login; `status` and `doctor` say so.
#[test]
fn file_store_machines_never_serve_a_token_revoked_elsewhere() {
    let Some(w) = GitLabWorld::renewing(2) else {
        return;
    };
    let machine = || {
        let mut s = Session::file_store();
        s.extra_env.extend(w.s.extra_env.iter().cloned());
        assert_success(&s.login(&w.host, &w.token, &["--no-configure"]), "login");
        s
    };
    let (mut a, mut b) = (machine(), machine());
    let due = (
        "DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY".to_owned(),
        "3d".to_owned(),
    );
    a.extra_env.push(due.clone());
    let new = secret(&a.helper(&["get"], &w.host));
    assert_ne!(new, w.token);

    b.extra_env.push(due);
    let out = b.helper(&["get"], &w.host);
    let line = assert_one_line_error(&out, "due get on machine B");
    assert!(line.contains("revoked elsewhere"), "{line}");
    assert!(
        line.contains(&format!("docker-credential-gitlab login {}", w.host)),
        "{line}"
    );
    // At default settings (nothing due), B still knows.
    b.extra_env.pop();
    let out = b.helper(&["get"], &w.host);
    let again = assert_one_line_error(&out, "get at default settings on machine B");
    assert_eq!(again, line);
    let text = stdout(&b.helper(&["status"], ""));
    assert!(text.contains("revoked elsewhere"), "status: {text}");
    let text = stdout(&b.helper(&["doctor", &w.host], ""));
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("revoked")),
        "doctor: {text}"
    );
    // A new login replaces it.
    assert_success(&b.login(&w.host, &new, &["--no-configure"]), "login on B");
    assert_eq!(secret(&b.helper(&["get"], &w.host)), new);
    assert_eq!(w.rotate_calls(), 1);
}
