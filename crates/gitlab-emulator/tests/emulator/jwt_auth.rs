//! HTTP-level tests of `GET /jwt/auth`.

use std::time::Duration;

use crate::common::*;
use gitlab_emulator::{Config, Emulator, TokenSpec};
use jiff::ToSpan;
use serde_json::json;

const SVC: &str = "service=container_registry";

fn setup() -> (Emulator, u64) {
    let gl = Emulator::start(Config::default());
    let alice = gl.add_user("alice", "alice-pw", false);
    gl.add_project("group/project");
    (gl, alice)
}

#[test]
fn post_and_other_methods_are_bare_404() {
    let (gl, _) = setup();
    let r = client()
        .post(gl.realm())
        .form(&[
            ("grant_type", "password"),
            ("service", "container_registry"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().unwrap(), "");
}

#[test]
fn missing_or_unknown_service_is_bare_404() {
    let (gl, alice) = setup();
    let pat = gl.add_personal_access_token(alice, TokenSpec::new("t", &["api"]));
    for q in ["", "service=nope", "scope=repository:group/project:pull"] {
        let r = jwt(&gl.realm(), q, Some(("alice", &pat.token)));
        assert_eq!(r.status(), 404, "query {q}");
        assert_eq!(r.text().unwrap(), "");
    }
    let claims = token_claims(jwt(
        &gl.realm(),
        "service=dependency_proxy",
        Some(("alice", &pat.token)),
    ));
    assert_eq!(claims["aud"], "dependency_proxy");
}

#[test]
fn pat_success_has_gitlab_claims_and_kid() {
    let (gl, alice) = setup();
    let pat = gl.add_personal_access_token(
        alice,
        TokenSpec::new("docker", &["read_registry", "write_registry"]),
    );
    assert!(pat.token.starts_with("glpat-") && pat.token.len() >= 26);
    let r = jwt(
        &gl.realm(),
        &format!(
            "account=whoever&client_id=docker&offline_token=true&{SVC}&scope=repository:group/project:push,pull"
        ),
        Some(("not-alice-at-all", &pat.token)),
    );
    let (status, body) = json(r);
    assert_eq!(status, 200);
    assert_eq!(body.as_object().unwrap().len(), 1);
    let (header, claims) = decode_jwt(body["token"].as_str().unwrap());
    assert_eq!(
        header,
        json!({"alg":"RS256","typ":"JWT","kid":"Y2JJ:5UUY:3O6W:EBFT:LDND:SXFO:PNGP:2CZY:DSO7:CAIO:6L4H:6CC7"})
    );
    assert_eq!(gl.kid(), header["kid"]);
    assert_eq!(claims["iss"], "gitlab-issuer");
    assert_eq!(claims["aud"], "container_registry");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["auth_type"], "personal_access_token");
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat - 5);
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 300);
    assert!((iat - jiff::Timestamp::now().as_second()).abs() < 5);
    assert!(claims["jti"].as_str().unwrap().len() >= 32);
    assert_eq!(
        access(&claims),
        vec![("group/project".into(), vec!["push".into(), "pull".into()])]
    );
    assert_eq!(claims["access"][0]["type"], "repository");
    // Login-style request (no scope): empty access, still 200.
    let claims = token_claims(jwt(&gl.realm(), SVC, Some(("alice", &pat.token))));
    assert_eq!(claims["access"], json!([]));
}

#[test]
fn short_window_is_used_as_is() {
    let gl = Emulator::start(Config {
        token_window: Duration::from_secs(30),
        issuer: "my-issuer".into(),
        ..Config::default()
    });
    let u = gl.add_user("u", "pw", false);
    let claims = token_claims(jwt(&gl.realm(), SVC, Some(("u", "pw"))));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        30
    );
    assert_eq!(claims["iss"], "my-issuer");
    assert_eq!(gl.issuer(), "my-issuer");
    assert_eq!(claims["auth_type"], "gitlab_or_ldap");
    let _ = u;
}

#[test]
fn scopes_repeated_and_space_separated() {
    let (gl, alice) = setup();
    let pat = gl.add_personal_access_token(alice, TokenSpec::new("t", &["api"]));
    let q = format!(
        "{SVC}&scope=repository:a/b:pull%20repository:c/d:push&scope=repository:e/f:pull,push,delete+registry:catalog:*"
    );
    let claims = token_claims(jwt(&gl.realm(), &q, Some(("x", &pat.token))));
    assert_eq!(
        access(&claims),
        vec![
            ("a/b".into(), vec!["pull".into()]),
            ("c/d".into(), vec!["push".into()]),
            (
                "e/f".into(),
                vec!["pull".into(), "push".into(), "delete".into()]
            ),
        ],
        "registry:catalog:* is silently dropped (no admins)"
    );
}

#[test]
fn token_scopes_map_to_actions_and_unauthorized_actions_are_dropped() {
    let (gl, alice) = setup();
    let q = format!("{SVC}&scope=repository:group/project:push,pull,delete");
    let cases: &[(&[&str], &[&str])] = &[
        (&["read_registry"], &["pull"]),
        (&["write_registry"], &["push"]),
        (&["read_registry", "write_registry"], &["push", "pull"]),
        (&["read_api"], &["pull"]),
        (&["api"], &["push", "pull", "delete"]),
    ];
    for (scopes, expected) in cases {
        let pat = gl.add_personal_access_token(alice, TokenSpec::new("t", scopes));
        let claims = token_claims(jwt(&gl.realm(), &q, Some(("alice", &pat.token))));
        let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            access(&claims),
            vec![("group/project".to_string(), expected)],
            "{scopes:?}"
        );
    }
    // read_registry only asking for push: entry omitted entirely, still 200.
    let pat = gl.add_personal_access_token(alice, TokenSpec::new("t", &["read_registry"]));
    let claims = token_claims(jwt(
        &gl.realm(),
        &format!("{SVC}&scope=repository:group/project:push"),
        Some(("alice", &pat.token)),
    ));
    assert_eq!(claims["access"], json!([]));
}

#[test]
fn no_registry_ability_is_403_denied() {
    let (gl, alice) = setup();
    for scopes in [&["read_repository"][..], &["read_user", "self_rotate"][..]] {
        let pat = gl.add_personal_access_token(alice, TokenSpec::new("t", scopes));
        let (status, body) = json(jwt(&gl.realm(), SVC, Some(("alice", &pat.token))));
        assert_eq!(status, 403);
        assert_eq!(body, denied_body());
    }
}

#[test]
fn bad_expired_revoked_credentials_are_401_unauthorized() {
    let (gl, alice) = setup();
    let expected = unauthorized_body(&gl.url());
    let today = gl.today();
    let expired = gl.add_personal_access_token(alice, TokenSpec::new("e", &["api"]).expires(today));
    let revoked = gl.add_personal_access_token(alice, TokenSpec::new("r", &["api"]));
    gl.revoke_token(&revoked.token);
    let killed = gl.add_personal_access_token(alice, TokenSpec::new("k", &["api"]));
    gl.kill_token_at(&killed.token, jiff::Timestamp::now() - 1.second());
    for secret in [
        "glpat-wrongwrongwrongwrong",
        "alice-wrong-password",
        &expired.token,
        &revoked.token,
        &killed.token,
    ] {
        let r = jwt(&gl.realm(), SVC, Some(("alice", secret)));
        assert!(r.headers().get("www-authenticate").is_none());
        let (status, body) = json(r);
        assert_eq!(status, 401, "{secret}");
        assert_eq!(body, expected);
    }
}

#[test]
fn pat_expires_at_midnight_utc_of_its_date() {
    let (gl, alice) = setup();
    let d = jiff::civil::date(2030, 6, 15);
    let pat = gl.add_personal_access_token(alice, TokenSpec::new("d", &["api"]).expires(d));
    gl.set_today(jiff::civil::date(2030, 6, 14));
    assert_eq!(jwt(&gl.realm(), SVC, Some(("a", &pat.token))).status(), 200);
    // One second before midnight: alive; at midnight: dead.
    let midnight = d.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp();
    gl.set_clock_offset(jiff::Timestamp::now().duration_until(midnight - 2.seconds()));
    assert_eq!(jwt(&gl.realm(), SVC, Some(("a", &pat.token))).status(), 200);
    gl.set_clock_offset(jiff::Timestamp::now().duration_until(midnight));
    assert_eq!(jwt(&gl.realm(), SVC, Some(("a", &pat.token))).status(), 401);
    let info = gl.token_info(&pat.token).unwrap();
    assert!(!info.active && !info.revoked);
    assert_eq!(info.dies_at, Some(midnight));
}

#[test]
fn two_factor_user_password_is_refused() {
    let gl = Emulator::start(Config::default());
    gl.add_user("bob", "bob-pw", true);
    gl.add_user("carol", "carol-pw", false);
    let (status, body) = json(jwt(&gl.realm(), SVC, Some(("bob", "bob-pw"))));
    assert_eq!((status, body), (401, unauthorized_body(&gl.url())));
    let claims = token_claims(jwt(
        &gl.realm(),
        &format!("{SVC}&scope=repository:x/y:push,pull,delete"),
        Some(("carol", "carol-pw")),
    ));
    assert_eq!(claims["sub"], "carol");
    assert_eq!(access(&claims)[0].1, vec!["push", "pull", "delete"]);
}

#[test]
fn deploy_token_needs_its_own_username_and_has_no_sub() {
    let (gl, _) = setup();
    let dt = gl.add_deploy_token("gitlab+deploy-token-7", &["read_registry"], None);
    assert!(dt.token.starts_with("gldt-"));
    let q = format!("{SVC}&scope=repository:group/project:push,pull");
    let claims = token_claims(jwt(
        &gl.realm(),
        &q,
        Some(("gitlab+deploy-token-7", &dt.token)),
    ));
    assert!(claims.get("sub").is_none());
    assert_eq!(claims["auth_type"], "deploy_token");
    assert_eq!(
        access(&claims),
        vec![("group/project".into(), vec!["pull".into()])]
    );
    assert_eq!(
        jwt(&gl.realm(), &q, Some(("someone", &dt.token))).status(),
        401
    );
    // Expired deploy token (exact instant).
    let old = gl.add_deploy_token(
        "d2",
        &["read_registry"],
        Some(jiff::Timestamp::now() - 1.second()),
    );
    assert_eq!(jwt(&gl.realm(), &q, Some(("d2", &old.token))).status(), 401);
    // Deploy token without registry scopes: 403.
    let repo_only = gl.add_deploy_token("d3", &["read_repository"], None);
    assert_eq!(
        jwt(&gl.realm(), &q, Some(("d3", &repo_only.token))).status(),
        403
    );
}

#[test]
fn job_token_needs_gitlab_ci_token_and_pushes_only_to_its_project() {
    let (gl, _) = setup();
    gl.add_project("other/thing");
    let job = gl.add_job_token("group/project");
    assert!(job.starts_with("glcbt-"));
    let q = format!(
        "{SVC}&scope=repository:group/project/sub:push,pull&scope=repository:other/thing:push,pull"
    );
    let claims = token_claims(jwt(&gl.realm(), &q, Some(("gitlab-ci-token", &job))));
    assert_eq!(claims["auth_type"], "build");
    assert_eq!(
        access(&claims),
        vec![
            (
                "group/project/sub".into(),
                vec!["push".into(), "pull".into()]
            ),
            ("other/thing".into(), vec!["pull".into()]),
        ]
    );
    assert_eq!(jwt(&gl.realm(), &q, Some(("alice", &job))).status(), 401);
    gl.revoke_token(&job); // job finished
    assert_eq!(
        jwt(&gl.realm(), &q, Some(("gitlab-ci-token", &job))).status(),
        401
    );
}

#[test]
fn oauth_access_token_works_with_any_username() {
    let (gl, alice) = setup();
    gl.add_oauth_application("app", &["api", "read_registry"]);
    let pair = gl.issue_oauth_tokens(alice, "app", &["read_registry"]);
    assert_eq!(pair.access_token.len(), 64);
    assert!(pair.access_token.chars().all(|c| c.is_ascii_hexdigit()));
    let q = format!("{SVC}&scope=repository:group/project:push,pull");
    let claims = token_claims(jwt(&gl.realm(), &q, Some(("oauth2", &pair.access_token))));
    assert_eq!(claims["auth_type"], "oauth");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(
        access(&claims),
        vec![("group/project".into(), vec!["pull".into()])]
    );
    // Expired after its lifetime (emulator clock).
    gl.set_clock_offset(jiff::SignedDuration::from_secs(7201));
    assert_eq!(
        jwt(&gl.realm(), &q, Some(("oauth2", &pair.access_token))).status(),
        401
    );
}

#[test]
fn anonymous_pulls_public_only() {
    let (gl, _) = setup();
    let public = gl.add_project("pub/lic");
    gl.set_project_public(public, true);
    let (status, body) = json(jwt(&gl.realm(), SVC, None));
    assert_eq!((status, body), (403, denied_body()));
    let (status, body) = json(jwt(
        &gl.realm(),
        &format!("{SVC}&scope=repository:group/project:pull"),
        None,
    ));
    assert_eq!((status, body), (403, denied_body()));
    let claims = token_claims(jwt(
        &gl.realm(),
        &format!("{SVC}&scope=repository:pub/lic:push,pull"),
        None,
    ));
    assert_eq!(claims["auth_type"], "none");
    assert!(claims.get("sub").is_none());
    assert_eq!(
        access(&claims),
        vec![("pub/lic".into(), vec!["pull".into()])]
    );
}

#[test]
fn registry_disabled_is_404_unavailable() {
    let gl = Emulator::start(Config {
        registry_enabled: false,
        ..Config::default()
    });
    gl.add_user("u", "pw", false);
    let (status, body) = json(jwt(&gl.realm(), SVC, Some(("u", "pw"))));
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"errors":[{"code":"UNAVAILABLE","message":"registry not enabled"}],"http_status":404})
    );
}

#[test]
fn failed_auth_ban_blocks_the_ip_but_not_ci_logins() {
    let gl = Emulator::start(Config {
        failed_auth_ban: Some((3, Duration::from_secs(2))),
        ..Config::default()
    });
    gl.add_user("u", "pw", false);
    gl.add_project("g/p");
    let job = gl.add_job_token("g/p");
    // A success resets the counter.
    for _ in 0..2 {
        assert_eq!(jwt(&gl.realm(), SVC, Some(("u", "bad"))).status(), 401);
    }
    assert_eq!(jwt(&gl.realm(), SVC, Some(("u", "pw"))).status(), 200);
    for _ in 0..3 {
        assert_eq!(jwt(&gl.realm(), SVC, Some(("u", "bad"))).status(), 401);
    }
    let r = jwt(&gl.realm(), SVC, Some(("u", "pw")));
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        r.text().unwrap(),
        "Too many failed authentication attempts from this IP"
    );
    assert_eq!(
        jwt(&gl.realm(), SVC, Some(("gitlab-ci-token", &job))).status(),
        200
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(jwt(&gl.realm(), SVC, Some(("u", "pw"))).status(), 200);
}

#[test]
fn requests_are_recorded_without_secrets() {
    let (gl, alice) = setup();
    let pat = gl.add_personal_access_token(alice, TokenSpec::new("t", &["api"]));
    gl.clear_requests();
    jwt(&gl.realm(), SVC, Some(("alice", &pat.token)));
    client()
        .get(format!("{}/api/v4/personal_access_tokens/self", gl.url()))
        .header("PRIVATE-TOKEN", &pat.token)
        .send()
        .unwrap();
    client()
        .get(format!(
            "{}/api/v4/version?private_token={}",
            gl.url(),
            pat.token
        ))
        .send()
        .unwrap();
    let reqs = gl.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/jwt/auth");
    assert_eq!(reqs[0].query, SVC);
    assert_eq!(reqs[0].status, 200);
    assert_eq!(reqs[0].username.as_deref(), Some("alice"));
    assert_eq!(reqs[1].username.as_deref(), Some("alice"));
    assert_eq!(reqs[1].status, 200);
    assert!(
        !format!("{reqs:?}").contains(&pat.token),
        "no secret recorded"
    );
    assert_eq!(gl.count("GET", "/jwt/auth"), 1);
    assert_eq!(gl.count("get", "/api/v4/personal_access_tokens/self"), 1);
    gl.clear_requests();
    assert!(gl.requests().is_empty());
}

#[test]
fn password_auth_can_be_disabled_for_git() {
    let gl = Emulator::start(Config {
        password_auth_enabled: false,
        ..Config::default()
    });
    let u = gl.add_user("u", "pw", false);
    let (status, body) = json(jwt(&gl.realm(), SVC, Some(("u", "pw"))));
    assert_eq!((status, body), (401, unauthorized_body(&gl.url())));
    let pat = gl.add_personal_access_token(u, TokenSpec::new("t", &["read_registry"]));
    assert_eq!(jwt(&gl.realm(), SVC, Some(("u", &pat.token))).status(), 200);
}

#[test]
fn head_is_routed_like_get() {
    let (gl, _) = setup();
    let r = client()
        .head(format!("{}?{SVC}", gl.realm()))
        .basic_auth("alice", Some("alice-pw"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}
