//! HTTP-level tests of the OAuth endpoints.

use std::time::Duration;

use crate::common::*;
use gitlab_emulator::{Config, Emulator};
use serde_json::{Value, json};

const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn post(gl: &Emulator, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    json(
        client()
            .post(format!("{}{path}", gl.url()))
            .form(form)
            .send()
            .unwrap(),
    )
}

fn is_hex64(s: &Value) -> bool {
    s.as_str()
        .is_some_and(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn refresh_tokens_are_single_use_and_revoke_the_old_pair() {
    let gl = Emulator::start(Config::default());
    let alice = gl.add_user("alice", "pw", false);
    gl.add_oauth_application("app", &["api", "read_registry", "write_registry"]);
    let pair = gl.issue_oauth_tokens(alice, "app", &["read_registry", "write_registry"]);
    assert_eq!(pair.expires_in, 7200);
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", pair.refresh_token.as_str()),
        ("client_id", "app"),
    ];
    let (s, b) = post(&gl, "/oauth/token", &form);
    assert_eq!(s, 200, "{b}");
    assert!(is_hex64(&b["access_token"]) && is_hex64(&b["refresh_token"]));
    assert_eq!(b["expires_in"], 7200);
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["scope"], "read_registry write_registry");
    assert!((b["created_at"].as_i64().unwrap() - jiff::Timestamp::now().as_second()).abs() < 5);
    assert_ne!(b["access_token"], json!(pair.access_token));
    // Old access token dead everywhere.
    assert!(!gl.token_info(&pair.access_token).unwrap().active);
    assert_eq!(
        jwt(
            &gl.realm(),
            "service=container_registry",
            Some(("oauth2", &pair.access_token))
        )
        .status(),
        401
    );
    let new_access = b["access_token"].as_str().unwrap();
    assert_eq!(
        jwt(
            &gl.realm(),
            "service=container_registry",
            Some(("oauth2", new_access))
        )
        .status(),
        200
    );
    // Reuse of the spent refresh token.
    let (s, b) = post(&gl, "/oauth/token", &form);
    assert_eq!(s, 400);
    assert_eq!(b["error"], "invalid_grant");
    // Unknown client.
    let (s, b) = post(
        &gl,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", "nope"),
        ],
    );
    assert_eq!((s, b["error"].clone()), (401, json!("invalid_client")));
    let (s, b) = post(&gl, "/oauth/token", &[("grant_type", "magic")]);
    assert_eq!(
        (s, b["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );
}

#[test]
fn oauth_token_expiry_and_api_errors() {
    let gl = Emulator::start(Config {
        oauth_token_lifetime: Duration::from_secs(60),
        ..Config::default()
    });
    let alice = gl.add_user("alice", "pw", false);
    gl.add_oauth_application("app", &["api"]);
    let pair = gl.issue_oauth_tokens(alice, "app", &["api"]);
    assert_eq!(pair.expires_in, 60);
    let user = |t: &str| {
        json(
            client()
                .get(format!("{}/api/v4/user", gl.url()))
                .bearer_auth(t)
                .send()
                .unwrap(),
        )
    };
    assert_eq!(user(&pair.access_token).0, 200);
    let (s, b) = json(
        client()
            .get(format!("{}/oauth/token/info", gl.url()))
            .bearer_auth(&pair.access_token)
            .send()
            .unwrap(),
    );
    assert_eq!(s, 200);
    assert_eq!(b["application"]["uid"], "app");
    gl.set_clock_offset(jiff::SignedDuration::from_secs(61));
    assert_eq!(
        user(&pair.access_token),
        (
            401,
            json!({"error":"invalid_token","error_description":"Token is expired. You can either do re-authorization or token refresh."})
        )
    );
    // Refresh still works after the access token expired.
    let (s, _) = post(
        &gl,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &pair.refresh_token),
        ],
    );
    assert_eq!(s, 200);
    // /oauth/revoke
    let p2 = gl.issue_oauth_tokens(alice, "app", &["api"]);
    let (s, b) = post(
        &gl,
        "/oauth/revoke",
        &[("token", &p2.access_token), ("client_id", "app")],
    );
    assert_eq!((s, b), (200, json!({})));
    assert_eq!(
        user(&p2.access_token),
        (
            401,
            json!({"error":"invalid_token","error_description":"Token was revoked. You have to re-authorize from the user."})
        )
    );
}

#[test]
fn device_flow_pending_slow_down_approve_consume() {
    let gl = Emulator::start(Config {
        device_poll_interval: Duration::from_secs(1),
        ..Config::default()
    });
    let alice = gl.add_user("alice", "pw", false);
    gl.add_oauth_application("cli", &["read_registry", "write_registry", "api"]);
    let (s, d) = post(
        &gl,
        "/oauth/authorize_device",
        &[
            ("client_id", "cli"),
            ("scope", "read_registry write_registry"),
        ],
    );
    assert_eq!(s, 200, "{d}");
    let user_code = d["user_code"].as_str().unwrap().to_string();
    let device_code = d["device_code"].as_str().unwrap().to_string();
    assert_eq!(d["verification_uri"], format!("{}/oauth/device", gl.url()));
    assert_eq!(
        d["verification_uri_complete"],
        format!("{}/oauth/device?user_code={user_code}", gl.url())
    );
    assert_eq!(d["expires_in"], 300);
    assert_eq!(d["interval"], 1);
    let poll = || {
        post(
            &gl,
            "/oauth/token",
            &[
                ("grant_type", DEVICE),
                ("device_code", &device_code),
                ("client_id", "cli"),
            ],
        )
    };
    let (s, b) = poll();
    assert_eq!(
        (s, b["error"].clone()),
        (400, json!("authorization_pending"))
    );
    let (s, b) = poll();
    assert_eq!((s, b["error"].clone()), (400, json!("slow_down")));
    assert!(gl.approve_device(&user_code, alice));
    std::thread::sleep(Duration::from_millis(1100));
    let (s, b) = poll();
    assert_eq!(s, 200, "{b}");
    assert!(is_hex64(&b["access_token"]) && is_hex64(&b["refresh_token"]));
    assert_eq!(b["expires_in"], 7200);
    let claims = token_claims(jwt(
        &gl.realm(),
        "service=container_registry&scope=repository:a/b:push,pull",
        Some(("alice", b["access_token"].as_str().unwrap())),
    ));
    assert_eq!(access(&claims)[0].1, vec!["push", "pull"]);
    std::thread::sleep(Duration::from_millis(1100));
    let (s, b) = poll();
    assert_eq!((s, b["error"].clone()), (400, json!("invalid_grant")));
}

#[test]
fn device_flow_denied_expired_and_bad_requests() {
    let gl = Emulator::start(Config::default());
    gl.add_oauth_application("cli", &["read_registry"]);
    let start = || {
        let (s, d) = post(
            &gl,
            "/oauth/authorize_device",
            &[("client_id", "cli"), ("scope", "read_registry")],
        );
        assert_eq!(s, 200);
        (
            d["device_code"].as_str().unwrap().to_string(),
            d["user_code"].as_str().unwrap().to_string(),
        )
    };
    let poll = |code: &str| {
        post(
            &gl,
            "/oauth/token",
            &[
                ("grant_type", DEVICE),
                ("device_code", code),
                ("client_id", "cli"),
            ],
        )
    };
    let (dc, uc) = start();
    assert!(gl.deny_device(&uc));
    let (s, b) = poll(&dc);
    assert_eq!((s, b["error"].clone()), (400, json!("access_denied")));
    let (dc, _) = start();
    gl.set_clock_offset(jiff::SignedDuration::from_secs(301));
    let (s, b) = poll(&dc);
    assert_eq!((s, b["error"].clone()), (400, json!("expired_token")));
    gl.set_clock_offset(jiff::SignedDuration::ZERO);
    // Scope not allowed for the app, unknown client.
    let (s, b) = post(
        &gl,
        "/oauth/authorize_device",
        &[("client_id", "cli"), ("scope", "api")],
    );
    assert_eq!((s, b["error"].clone()), (400, json!("invalid_scope")));
    let (s, b) = post(&gl, "/oauth/authorize_device", &[("client_id", "zzz")]);
    assert_eq!((s, b["error"].clone()), (401, json!("invalid_client")));
    let (s, b) = poll("unknown");
    assert_eq!((s, b["error"].clone()), (400, json!("invalid_grant")));
}
