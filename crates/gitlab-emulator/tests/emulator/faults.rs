//! Fault injection.

use std::time::{Duration, Instant};

use crate::common::*;
use gitlab_emulator::{Config, Emulator, Fault, TokenSpec};

const SVC: &str = "service=container_registry";

fn setup() -> (Emulator, String) {
    let gl = Emulator::start(Config::default());
    let u = gl.add_user("u", "pw", false);
    let pat = gl.add_personal_access_token(u, TokenSpec::new("t", &["api"]));
    (gl, pat.token)
}

#[test]
fn status_fault_then_normal_service() {
    let (gl, pat) = setup();
    gl.inject_fault("/jwt/auth", Fault::Status(503), 2);
    for _ in 0..2 {
        let (s, b) = json(jwt(&gl.realm(), SVC, Some(("u", &pat))));
        assert_eq!(s, 503);
        assert_eq!(b["message"], "503 Service Unavailable");
    }
    assert_eq!(jwt(&gl.realm(), SVC, Some(("u", &pat))).status(), 200);
    let statuses: Vec<u16> = gl.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 200]);
}

#[test]
fn rate_limit_fault_has_headers() {
    let (gl, pat) = setup();
    gl.inject_fault(
        "/api/v4/",
        Fault::RateLimit {
            retry_after_secs: 7,
        },
        1,
    );
    let r = client()
        .get(format!("{}/api/v4/personal_access_tokens/self", gl.url()))
        .header("PRIVATE-TOKEN", &pat)
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    let h = r.headers();
    assert_eq!(h["retry-after"], "7");
    assert_eq!(h["ratelimit-remaining"], "0");
    assert!(h.contains_key("ratelimit-limit"));
    let reset: i64 = h["ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert!((reset - jiff::Timestamp::now().as_second() - 7).abs() <= 2);
    assert!(h["ratelimit-resettime"].to_str().unwrap().ends_with("GMT"));
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(r.text().unwrap(), "Retry later\n");
    // Other prefixes unaffected; fault consumed.
    assert_eq!(jwt(&gl.realm(), SVC, Some(("u", &pat))).status(), 200);
    let r = client()
        .get(format!("{}/api/v4/personal_access_tokens/self", gl.url()))
        .header("PRIVATE-TOKEN", &pat)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn delay_fault_sleeps_then_handles() {
    let (gl, pat) = setup();
    gl.inject_fault("/jwt/auth", Fault::Delay(Duration::from_millis(700)), 1);
    let t = Instant::now();
    assert_eq!(jwt(&gl.realm(), SVC, Some(("u", &pat))).status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(700));
    let t = Instant::now();
    assert_eq!(jwt(&gl.realm(), SVC, Some(("u", &pat))).status(), 200);
    assert!(t.elapsed() < Duration::from_millis(700));
}

#[test]
fn drop_connection_fault_sends_nothing() {
    let (gl, pat) = setup();
    gl.inject_fault("/jwt/auth", Fault::DropConnection, 1);
    let err = client()
        .get(format!("{}?{SVC}", gl.realm()))
        .basic_auth("u", Some(&pat))
        .send()
        .expect_err("connection closed without a response");
    assert!(!err.is_status(), "{err}");
    assert_eq!(jwt(&gl.realm(), SVC, Some(("u", &pat))).status(), 200);
    let recs = gl.requests();
    assert_eq!(recs[0].status, 0);
    assert_eq!(recs[0].username.as_deref(), Some("u"));
    assert_eq!(gl.count("GET", "/jwt/auth"), 2);
}

#[test]
fn raw_socket_sees_eof_on_drop() {
    use std::io::{Read, Write};
    let (gl, _) = setup();
    gl.inject_fault("/", Fault::DropConnection, 1);
    let mut s = std::net::TcpStream::connect(gl.addr()).unwrap();
    s.write_all(b"GET /api/v4/version HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.is_empty(), "got {:?}", String::from_utf8_lossy(&buf));
}

fn rotate(gl: &Emulator, pat: &str) -> reqwest::Result<reqwest::blocking::Response> {
    client()
        .post(format!(
            "{}/api/v4/personal_access_tokens/self/rotate?expires_at={}",
            gl.url(),
            gl.today() + jiff::Span::new().days(30)
        ))
        .header("PRIVATE-TOKEN", pat)
        .send()
}

/// The work happens, then the answer is lost or wrong: the old token is revoked, its
/// successor exists, and the revocation time is recorded.
#[test]
fn after_work_faults_rotate_then_misanswer() {
    for fault in [
        Fault::StatusAfterWork(502),
        Fault::DropAfterWork,
        Fault::DelayAfterWork(Duration::from_millis(300)),
    ] {
        let (gl, pat) = setup();
        let before = gl.token_info(&pat).unwrap();
        assert_eq!(before.revoked_at, None);
        gl.inject_fault(
            "/api/v4/personal_access_tokens/self/rotate",
            fault.clone(),
            1,
        );
        let started = Instant::now();
        let answer = rotate(&gl, &pat);
        match &fault {
            Fault::StatusAfterWork(code) => assert_eq!(answer.unwrap().status(), *code),
            Fault::DropAfterWork => assert!(answer.is_err()),
            _ => {
                assert_eq!(answer.unwrap().status(), 200);
                assert!(started.elapsed() >= Duration::from_millis(300));
            }
        }
        let after = gl.token_info(&pat).unwrap();
        assert!(after.revoked, "{fault:?}: not rotated");
        assert!(after.revoked_at.is_some(), "{fault:?}");
        let successor = gl.active_family_member(after.family.unwrap()).unwrap();
        assert_ne!(successor.token, pat);
    }
}
