//! HTTP-level tests of the REST API: PAT self endpoints, rotation, bots, /user, /version.

use crate::common::*;
use gitlab_emulator::{Config, Emulator, TokenKind, TokenSpec};
use jiff::ToSpan;
use reqwest::blocking::RequestBuilder;
use serde_json::{Value, json};

fn setup() -> (Emulator, u64) {
    let gl = Emulator::start(Config::default());
    let alice = gl.add_user("alice", "alice-pw", false);
    (gl, alice)
}

fn api(gl: &Emulator, method: &str, path: &str, token: &str) -> RequestBuilder {
    let url = format!("{}/api/v4{path}", gl.url());
    let rb = match method {
        "GET" => client().get(url),
        "POST" => client().post(url),
        "DELETE" => client().delete(url),
        _ => unreachable!(),
    };
    rb.header("PRIVATE-TOKEN", token)
}

fn call(rb: RequestBuilder) -> (u16, Value) {
    json(rb.send().unwrap())
}

const EXPIRED: &str = "Token is expired. You can either do re-authorization or token refresh.";
const REVOKED: &str = "Token was revoked. You have to re-authorize from the user.";

#[test]
fn self_returns_entity_for_any_scope_via_header_or_bearer() {
    let (gl, alice) = setup();
    let exp = gl.today() + 30.days();
    let pat = gl.add_personal_access_token(
        alice,
        TokenSpec::new("docker", &["read_registry"]).expires(exp),
    );
    let (status, body) = call(api(&gl, "GET", "/personal_access_tokens/self", &pat.token));
    assert_eq!(status, 200);
    assert_eq!(body["id"], pat.id);
    assert_eq!(body["name"], "docker");
    assert_eq!(body["revoked"], false);
    assert_eq!(body["active"], true);
    assert_eq!(body["scopes"], json!(["read_registry"]));
    assert_eq!(body["user_id"], alice);
    assert_eq!(body["expires_at"], exp.to_string());
    assert_eq!(body["description"], Value::Null);
    let created = body["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    let r = client()
        .get(format!("{}/api/v4/personal_access_tokens/self", gl.url()))
        .bearer_auth(&pat.token)
        .send()
        .unwrap();
    let (status, body) = json(r);
    assert_eq!(status, 200);
    assert!(body["last_used_at"].is_string());
}

#[test]
fn api_auth_errors() {
    let (gl, alice) = setup();
    let (s, b) = call(api(
        &gl,
        "GET",
        "/personal_access_tokens/self",
        "glpat-unknown",
    ));
    assert_eq!((s, b), (401, json!({"message":"401 Unauthorized"})));
    let r = client()
        .get(format!("{}/api/v4/personal_access_tokens/self", gl.url()))
        .send()
        .unwrap();
    assert_eq!(json(r), (401, json!({"message":"401 Unauthorized"})));

    let pat = gl.add_personal_access_token(
        alice,
        TokenSpec::new("t", &["api"]).expires(gl.today() + 1.day()),
    );
    gl.set_today(gl.today() + 1.day());
    let r = api(&gl, "GET", "/personal_access_tokens/self", &pat.token)
        .send()
        .unwrap();
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""));
    assert_eq!(
        json(r),
        (
            401,
            json!({"error":"invalid_token","error_description":EXPIRED})
        )
    );
    gl.set_clock_offset(jiff::SignedDuration::ZERO);

    let revoked = gl.add_personal_access_token(alice, TokenSpec::new("t", &["api"]));
    gl.revoke_token(&revoked.token);
    assert_eq!(
        call(api(
            &gl,
            "GET",
            "/personal_access_tokens/self",
            &revoked.token
        )),
        (
            401,
            json!({"error":"invalid_token","error_description":REVOKED})
        )
    );

    // Deploy and job tokens are not API credentials; OAuth is, but not a PAT.
    let dt = gl.add_deploy_token("d", &["read_registry"], None);
    assert_eq!(
        call(api(&gl, "GET", "/personal_access_tokens/self", &dt.token)),
        (401, json!({"message":"401 Unauthorized"}))
    );
    gl.add_project("g/p");
    let job = gl.add_job_token("g/p");
    assert_eq!(
        call(api(&gl, "GET", "/personal_access_tokens/self", &job)).0,
        401
    );
    gl.add_oauth_application("app", &["api"]);
    let oauth = gl.issue_oauth_tokens(alice, "app", &["api"]);
    // PRIVATE-TOKEN only finds personal access tokens.
    assert_eq!(
        call(api(&gl, "GET", "/user", &oauth.access_token)),
        (401, json!({"message":"401 Unauthorized"}))
    );
    let bearer = |path: &str| {
        client()
            .get(format!("{}/api/v4{path}", gl.url()))
            .bearer_auth(&oauth.access_token)
    };
    assert_eq!(call(bearer("/user")).0, 200);
    assert_eq!(
        call(bearer("/personal_access_tokens/self")),
        (
            400,
            json!({"message":"400 Bad request - This endpoint requires token type to be a personal access token"})
        )
    );
}

#[test]
fn delete_self_revokes() {
    let (gl, alice) = setup();
    let pat = gl.add_personal_access_token(alice, TokenSpec::new("t", &["read_registry"]));
    let r = api(&gl, "DELETE", "/personal_access_tokens/self", &pat.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.text().unwrap(), "");
    assert!(gl.token_info(&pat.token).unwrap().revoked);
    assert_eq!(
        call(api(&gl, "GET", "/personal_access_tokens/self", &pat.token)).0,
        401
    );
}

#[test]
fn user_and_version_need_api_read_api_or_read_user() {
    let (gl, alice) = setup();
    let reg = gl.add_personal_access_token(
        alice,
        TokenSpec::new("t", &["read_registry", "write_registry", "self_rotate"]),
    );
    for path in ["/user", "/version"] {
        let r = api(&gl, "GET", path, &reg.token).send().unwrap();
        assert!(r.headers().contains_key("www-authenticate"));
        let (s, b) = json(r);
        assert_eq!(s, 403, "{path}");
        assert_eq!(b["error"], "insufficient_scope");
        assert_eq!(
            b["error_description"],
            "The request requires higher privileges than provided by the access token."
        );
    }
    let ru = gl.add_personal_access_token(alice, TokenSpec::new("t", &["read_user"]));
    let (s, b) = call(api(&gl, "GET", "/user", &ru.token));
    assert_eq!(s, 200);
    assert_eq!(b["username"], "alice");
    assert_eq!(b["id"], alice);
    let (s, b) = call(api(&gl, "GET", "/version", &ru.token));
    assert_eq!(s, 200);
    assert_eq!(b["version"], gitlab_emulator::GITLAB_VERSION);
    assert!(b["revision"].is_string());
    let r = client()
        .get(format!("{}/api/v4/version", gl.url()))
        .send()
        .unwrap();
    assert_eq!(json(r), (401, json!({"message":"401 Unauthorized"})));
}

#[test]
fn rotate_self_needs_api_or_self_rotate() {
    let (gl, alice) = setup();
    let pat = gl.add_personal_access_token(
        alice,
        TokenSpec::new("t", &["read_registry", "write_registry"]),
    );
    let (s, b) = call(api(
        &gl,
        "POST",
        "/personal_access_tokens/self/rotate",
        &pat.token,
    ));
    assert_eq!(s, 403);
    assert_eq!(b["error"], "insufficient_scope");
    assert_eq!(b["scope"], "api self_rotate");
    assert!(gl.token_info(&pat.token).unwrap().active);
}

#[test]
fn rotate_self_default_expiry_and_family() {
    let (gl, alice) = setup();
    let scopes = ["read_registry", "write_registry", "self_rotate"];
    let pat = gl.add_personal_access_token(alice, TokenSpec::new("docker", &scopes));
    let (s, b) = call(api(
        &gl,
        "POST",
        "/personal_access_tokens/self/rotate",
        &pat.token,
    ));
    assert_eq!(s, 200, "{b}");
    let new = b["token"].as_str().unwrap().to_string();
    assert!(new.starts_with("glpat-") && new != pat.token);
    assert_eq!(b["name"], "docker");
    assert_eq!(b["scopes"], json!(scopes));
    assert_eq!(b["active"], true);
    assert_eq!(b["revoked"], false);
    assert_eq!(b["user_id"], alice);
    assert_eq!(b["expires_at"], (gl.today() + 7.days()).to_string());
    let old = gl.token_info(&pat.token).unwrap();
    assert!(old.revoked && !old.active);
    let info = gl.token_info(&new).unwrap();
    assert_eq!(info.family, old.family);
    assert_eq!(info.previous_id, Some(pat.id));
    assert_eq!(info.kind, TokenKind::Personal);
    assert_eq!(
        gl.active_family_member(old.family.unwrap()).unwrap().token,
        new
    );
    // The new token works for the registry, the old one does not.
    let svc = "service=container_registry";
    assert_eq!(jwt(&gl.realm(), svc, Some(("alice", &new))).status(), 200);
    assert_eq!(
        jwt(&gl.realm(), svc, Some(("alice", &pat.token))).status(),
        401
    );
}

#[test]
fn rotate_self_expires_at_param_in_query_form_or_json() {
    let (gl, alice) = setup();
    let mut token = gl
        .add_personal_access_token(alice, TokenSpec::new("t", &["api"]))
        .token;
    let want = gl.today() + 100.days();
    let path = "/personal_access_tokens/self/rotate";
    let url = format!("{}/api/v4{path}", gl.url());
    type MakeRequest<'a> = Box<dyn Fn(&str) -> RequestBuilder + 'a>;
    let requests: Vec<MakeRequest> = vec![
        Box::new(|t| {
            client()
                .post(format!("{url}?expires_at={want}"))
                .header("PRIVATE-TOKEN", t)
        }),
        Box::new(|t| {
            client()
                .post(&url)
                .header("PRIVATE-TOKEN", t)
                .form(&[("expires_at", want.to_string())])
        }),
        Box::new(|t| {
            client()
                .post(&url)
                .header("PRIVATE-TOKEN", t)
                .json(&json!({"expires_at": want.to_string()}))
        }),
    ];
    for make in requests {
        let (s, b) = call(make(&token));
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["expires_at"], want.to_string());
        token = b["token"].as_str().unwrap().to_string();
    }
    // Beyond the instance maximum (365 days): 400, token untouched.
    let too_far = gl.today() + 366.days();
    let (s, b) = call(
        client()
            .post(format!("{url}?expires_at={too_far}"))
            .header("PRIVATE-TOKEN", &token),
    );
    assert_eq!(s, 400);
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("400 Bad request - "),
        "{b}"
    );
    let (s, _) = call(
        client()
            .post(format!("{url}?expires_at=not-a-date"))
            .header("PRIVATE-TOKEN", &token),
    );
    assert_eq!(s, 400);
    assert!(gl.token_info(&token).unwrap().active);
    // Exactly the maximum is fine.
    let max = gl.today() + 365.days();
    let (s, _) = call(
        client()
            .post(format!("{url}?expires_at={max}"))
            .header("PRIVATE-TOKEN", &token),
    );
    assert_eq!(s, 200);
}

#[test]
fn rotate_reuse_detection_revokes_the_active_family_member() {
    let (gl, alice) = setup();
    let a = gl.add_personal_access_token(
        alice,
        TokenSpec::new("t", &["self_rotate", "read_registry"]),
    );
    let (_, b) = call(api(
        &gl,
        "POST",
        "/personal_access_tokens/self/rotate",
        &a.token,
    ));
    let b_token = b["token"].as_str().unwrap().to_string();
    let (_, c) = call(api(
        &gl,
        "POST",
        "/personal_access_tokens/self/rotate",
        &b_token,
    ));
    let c_token = c["token"].as_str().unwrap().to_string();
    assert!(gl.token_info(&c_token).unwrap().active);
    // Presenting the already-rotated `a` again: 401 and the whole family dies.
    assert_eq!(
        call(api(
            &gl,
            "POST",
            "/personal_access_tokens/self/rotate",
            &a.token
        )),
        (
            401,
            json!({"error":"invalid_token","error_description":REVOKED})
        )
    );
    assert!(gl.token_info(&c_token).unwrap().revoked);
    let family = gl.token_info(&a.token).unwrap().family.unwrap();
    assert!(gl.active_family_member(family).is_none());
    // A merely revoked (never rotated) token does not trigger it on other tokens.
    let x = gl.add_personal_access_token(alice, TokenSpec::new("x", &["api"]));
    let y = gl.add_personal_access_token(alice, TokenSpec::new("y", &["api"]));
    gl.revoke_token(&x.token);
    assert_eq!(
        call(api(
            &gl,
            "POST",
            "/personal_access_tokens/self/rotate",
            &x.token
        ))
        .0,
        401
    );
    assert!(gl.token_info(&y.token).unwrap().active);
}

#[test]
fn project_and_group_token_self_rotation() {
    let (gl, alice) = setup();
    let project = gl.add_project("g/p");
    let other = gl.add_project("g/other");
    let group = gl.add_group("g");
    let pt = gl.add_project_access_token(project, TokenSpec::new("ci", &["api"]));
    let info = gl.token_info(&pt.token).unwrap();
    assert_eq!(info.kind, TokenKind::ProjectAccess);
    assert!(
        info.username
            .unwrap()
            .starts_with(&format!("project_{project}_bot_"))
    );

    // Bot tokens work at /jwt/auth with any username.
    let claims = token_claims(jwt(
        &gl.realm(),
        "service=container_registry&scope=repository:g/p:push,pull",
        Some(("anything", &pt.token)),
    ));
    assert_eq!(access(&claims)[0].1, vec!["push", "pull"]);

    let (s, b) = call(api(
        &gl,
        "POST",
        &format!("/projects/{project}/access_tokens/self/rotate"),
        &pt.token,
    ));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["access_level"], 40);
    let pt2 = b["token"].as_str().unwrap().to_string();
    assert!(gl.token_info(&pt.token).unwrap().revoked);
    // URL-encoded path works as id too.
    let (s, b) = call(api(
        &gl,
        "POST",
        "/projects/g%2Fp/access_tokens/self/rotate",
        &pt2,
    ));
    assert_eq!(s, 200, "{b}");
    let pt3 = b["token"].as_str().unwrap().to_string();
    // Wrong project: 403; a human PAT: 405.
    assert_eq!(
        call(api(
            &gl,
            "POST",
            &format!("/projects/{other}/access_tokens/self/rotate"),
            &pt3
        ))
        .0,
        403
    );
    let human = gl.add_personal_access_token(alice, TokenSpec::new("h", &["api"]));
    assert_eq!(
        call(api(
            &gl,
            "POST",
            &format!("/projects/{project}/access_tokens/self/rotate"),
            &human.token
        )),
        (405, json!({"message":"405 Method Not Allowed"}))
    );

    let gt = gl.add_group_access_token(group, TokenSpec::new("grp", &["self_rotate"]));
    let (s, b) = call(api(
        &gl,
        "POST",
        &format!("/groups/{group}/access_tokens/self/rotate"),
        &gt.token,
    ));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["name"], "grp");
    assert_eq!(
        gl.token_info(b["token"].as_str().unwrap()).unwrap().kind,
        TokenKind::GroupAccess
    );

    // Associations: bot sees its project only.
    let (s, b) = call(api(
        &gl,
        "GET",
        "/personal_access_tokens/self/associations",
        &pt3,
    ));
    assert_eq!(s, 200);
    assert_eq!(b["projects"].as_array().unwrap().len(), 1);
    assert_eq!(b["projects"][0]["id"], project);
    assert_eq!(b["groups"], json!([]));
}
