//! `doctor` against real parts: the real registry in token mode, tokens issued by the
//! GitLab emulator, secrets in a real gnome-keyring, Docker's config.json on disk. The
//! "Authorization header stripped by a proxy" case runs through a tiny in-test HTTP proxy.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::gitlab::GitLabWorld;
use crate::support::*;
use gitlab_emulator::{Config, Fault};
use serde_json::Value;

impl GitLabWorld {
    /// Points Docker at the helper (and puts the binary on PATH), then logs in.
    fn configure_and_login(&mut self, host: &str, token: &str) {
        self.s.configure_docker(&[host]);
        assert_success(&self.login(host, token, &[]), "login");
    }
}

fn doctor(s: &Session, args: &[&str]) -> Output {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    s.helper(&all, "")
}

/// The `--json` rows, checked for shape.
fn doctor_json(s: &Session, args: &[&str]) -> (Output, Vec<Value>) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = doctor(s, &all);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}): {}", stdout(&out)));
    for r in &rows {
        assert!(
            ["pass", "warn", "fail"].contains(&r["status"].as_str().unwrap()),
            "{r}"
        );
        assert!(r["check"].is_string() && r["message"].is_string(), "{r}");
        assert!(r.get("registry").is_some() && r.get("fix").is_some(), "{r}");
    }
    (out, rows)
}

fn row<'a>(rows: &'a [Value], check: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["check"] == check)
        .unwrap_or_else(|| panic!("no {check:?} row in {rows:#?}"))
}

fn assert_no_secret(out: &Output, secret: &str) {
    assert!(
        !stdout(out).contains(secret) && !stderr(out).contains(secret),
        "a secret was printed:\n{}\n{}",
        stdout(out),
        stderr(out)
    );
}

#[test]
fn healthy_pat_passes_and_the_5_minute_window_is_flagged() {
    let Some(mut w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    let token = w.pat(RENEWABLE, 90);
    let host = w.registry.host();
    w.configure_and_login(&host, &token);

    let out = doctor(&w.s, &[]);
    let text = stdout(&out);
    assert_success(&out, "doctor");
    assert_no_secret(&out, &token);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("PASS") || l.starts_with("WARN") || l.starts_with("FAIL"))
        .collect();
    for l in &lines {
        assert!(
            l.starts_with("PASS") || l.starts_with("WARN  token window:"),
            "unexpected line {l:?} in\n{text}"
        );
    }
    for check in [
        "binary",
        "docker config",
        "store",
        "registry",
        "/jwt/auth",
        "scopes",
        "renewal",
        "expiry",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("PASS  {check}:"))),
            "no PASS {check} in\n{text}"
        );
    }
    assert!(text.contains(&host), "{text}");
    let window = lines
        .iter()
        .find(|l| l.starts_with("WARN  token window:"))
        .unwrap_or_else(|| panic!("no window warning in\n{text}"));
    assert!(window.contains("live 5 min"), "{window}");
    assert!(
        window.contains("unauthorized: authentication required"),
        "{window}"
    );
    assert!(window.contains("Authorization token duration"), "{window}");

    // The same with the registry named, as JSON.
    let (out, rows) = doctor_json(&w.s, &[&host]);
    assert_success(&out, "doctor --json");
    assert_no_secret(&out, &token);
    assert_eq!(row(&rows, "binary")["registry"], Value::Null);
    let win = row(&rows, "token window");
    assert_eq!(win["registry"], host.as_str());
    assert_eq!(win["status"], "warn");
    assert!(rows.iter().all(|r| r["status"] != "fail"), "{rows:#?}");
    // doctor asked GitLab for a registry token with the stored credential.
    assert!(
        w.gl.requests()
            .iter()
            .any(|r| r.path == JWT_AUTH && r.status == 200),
    );
}

#[test]
fn a_30_minute_window_passes() {
    let Some(mut w) = GitLabWorld::start(Config {
        token_window: Duration::from_secs(1800),
        ..Default::default()
    }) else {
        return;
    };
    let token = w.pat(RENEWABLE, 90);
    let host = w.registry.host();
    w.configure_and_login(&host, &token);
    let (out, rows) = doctor_json(&w.s, &[&host]);
    assert_success(&out, "doctor");
    let win = row(&rows, "token window");
    assert_eq!(win["status"], "pass", "{win}");
    assert!(win["message"].as_str().unwrap().contains("30 min"), "{win}");
}

#[test]
fn a_revoked_token_fails_at_jwt_auth() {
    let Some(mut w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    let token = w.pat(RENEWABLE, 90);
    let host = w.registry.host();
    w.configure_and_login(&host, &token);
    w.gl.revoke_token(&token);

    let out = doctor(&w.s, &[&host]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_no_secret(&out, &token);
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("FAIL  /jwt/auth:"))
        .unwrap_or_else(|| panic!("no /jwt/auth FAIL in\n{text}"));
    assert!(
        line.contains("401") && line.contains("log in again"),
        "{line}"
    );
    assert!(stderr(&out).contains("failed"), "{}", stderr(&out));
}

#[test]
fn a_locked_keyring_fails_at_the_store() {
    let Some(mut w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    let token = w.pat(RENEWABLE, 90);
    let host = w.registry.host();
    w.configure_and_login(&host, &token);
    w.s.relock();

    let (out, rows) = doctor_json(&w.s, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let store = row(&rows, "store");
    assert_eq!(store["status"], "fail");
    assert!(
        store["message"].as_str().unwrap().contains("locked"),
        "{store}"
    );
    // Nothing is sent to GitLab without the secret.
    assert!(!rows.iter().any(|r| r["check"] == "/jwt/auth"), "{rows:#?}");
}

#[test]
fn gitlab_down_gives_fail_lines_not_a_crash() {
    let Some(mut w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    let token = w.pat(RENEWABLE, 90);
    let host = w.registry.host();
    w.configure_and_login(&host, &token);
    w.gl.inject_fault("/", Fault::DropConnection, 100);

    let (out, rows) = doctor_json(&w.s, &[&host]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(row(&rows, "/jwt/auth")["status"], "fail", "{rows:#?}");
    // What login recorded is still reported.
    assert_eq!(row(&rows, "scopes")["status"], "pass", "{rows:#?}");
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn unstored_registries_and_other_helpers_fail() {
    // No keyring, no GitLab needed: neither check reaches them.
    let s = Session::without_bus();
    std::fs::create_dir_all(s.docker_config_dir()).unwrap();
    std::fs::write(
        s.docker_config_dir().join("config.json"),
        r#"{"credHelpers":{"registry.example.com":"desktop"}}"#,
    )
    .unwrap();

    let out = doctor(&s, &["registry.example.com"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l.starts_with("FAIL  docker config:")
            && l.contains("docker-credential-desktop")
            && l.contains("--force")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("FAIL  credential:")
            && l.contains("docker-credential-gitlab login registry.example.com")),
        "{text}"
    );

    // Nothing stored at all, no registry named.
    let (out, rows) = doctor_json(&s, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(row(&rows, "credentials")["status"], "fail", "{rows:#?}");
}

// ---------------------------------------------------------------------------------------
// A proxy that strips the Authorization header on /jwt/auth

/// A plain HTTP/1.1 forwarder on loopback. While `strip` is set it drops the
/// `Authorization` header from requests to `/jwt/auth`; everything else passes unchanged.
/// One request per connection (it forces `Connection: close`).
struct StripProxy {
    addr: SocketAddr,
    strip: Arc<AtomicBool>,
}

impl StripProxy {
    fn start(upstream: SocketAddr) -> StripProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let strip = Arc::new(AtomicBool::new(false));
        let flag = strip.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let flag = flag.clone();
                std::thread::spawn(move || {
                    let _ = forward(conn, upstream, flag.load(Ordering::SeqCst));
                });
            }
        });
        StripProxy { addr, strip }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn forward(mut client: TcpStream, upstream: SocketAddr, strip: bool) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let path = request_line.split(' ').nth(1).unwrap_or_default();
    let strip_here = strip && path.starts_with(JWT_AUTH);
    let mut out = format!("{request_line}\r\n");
    for line in lines {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if name == "connection" || (strip_here && name == "authorization") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");

    let mut up = TcpStream::connect(upstream)?;
    up.write_all(out.as_bytes())?;
    up.write_all(&buf[head_end + 4..])?;
    // A request body beyond what was read already (none of doctor's requests has one).
    let mut client_rest = client.try_clone()?;
    let mut up_w = up.try_clone()?;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_rest, &mut up_w);
    });
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    client.write_all(&response)?;
    client.shutdown(std::net::Shutdown::Both)
}

#[test]
fn a_proxy_stripping_the_authorization_header_is_diagnosed() {
    let Some(mut w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    let proxy = StripProxy::start(w.gl.addr());
    // The registry's realm points at the proxy, in front of GitLab's /jwt/auth.
    let registry =
        w.gl.start_real_registry_with_realm(&format!("{}/jwt/auth", proxy.url()))
            .expect("start docker-registry with the proxy as its realm");
    let host = registry.host();
    let token = w.pat(RENEWABLE, 90);

    // Log in while the proxy still passes the header: GitLab is recorded as the proxy URL.
    w.configure_and_login(&host, &token);
    let (out, _) = doctor_json(&w.s, &[&host]);
    assert_success(&out, "doctor before the proxy strips anything");

    proxy.strip.store(true, Ordering::SeqCst);
    w.gl.clear_requests();
    let (out, rows) = doctor_json(&w.s, &[&host]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_no_secret(&out, &token);
    let jwt = row(&rows, "/jwt/auth");
    assert_eq!(jwt["status"], "fail", "{jwt}");
    let message = jwt["message"].as_str().unwrap();
    assert!(
        message.contains("treated the request as anonymous")
            && message.contains("strips the Authorization header"),
        "{message}"
    );
    assert!(jwt["fix"].as_str().unwrap().contains("proxy"), "{jwt}");
    // GitLab really saw only anonymous /jwt/auth requests, and the token API worked.
    let reqs = w.gl.requests();
    let jwt_reqs: Vec<_> = reqs.iter().filter(|r| r.path == JWT_AUTH).collect();
    assert!(jwt_reqs.len() >= 2, "{reqs:?}");
    assert!(
        jwt_reqs
            .iter()
            .all(|r| r.username.is_none() && r.status == 403),
        "{jwt_reqs:?}"
    );
    assert!(
        reqs.iter().any(|r| r.path == PAT_SELF && r.status == 200),
        "{reqs:?}"
    );

    // A token without registry scope gives the same 403, but is not blamed on the proxy.
    proxy.strip.store(false, Ordering::SeqCst);
    let weak = w.pat(&["read_user"], 90);
    let state: Value = serde_json::from_slice(&std::fs::read(w.s.state_path()).unwrap()).unwrap();
    assert!(state["entries"][&host].is_object());
    // Put the weak token in place of the good one (same entry, same metadata).
    let stored = w.s.helper(
        &["store"],
        format!(r#"{{"ServerURL":"{host}","Username":"oauth2","Secret":"{weak}"}}"#),
    );
    assert_success(&stored, "store");
    std::fs::write(w.s.state_path(), serde_json::to_vec(&state).unwrap()).unwrap();
    let (out, rows) = doctor_json(&w.s, &[&host]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let jwt = row(&rows, "/jwt/auth");
    assert!(
        jwt["message"]
            .as_str()
            .unwrap()
            .contains("lacks read_registry"),
        "{jwt}"
    );
}
