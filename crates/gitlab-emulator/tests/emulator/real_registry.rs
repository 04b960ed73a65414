//! Faithfulness test: the real CNCF `docker-registry` (distribution 2.8) accepts the
//! emulator's JWTs exactly like GitLab's.

use crate::common::*;
use gitlab_emulator::{Config, Emulator, IssuedToken, TokenSpec, write_oci_image};
use reqwest::blocking::Response;

/// Start the registry, or explain why not. Without the binary: fail under `CI`, skip otherwise.
fn registry(gl: &Emulator) -> Option<gitlab_emulator::RealRegistry> {
    match gl.start_real_registry() {
        Ok(r) => Some(r),
        Err(e) if e.contains("not found") => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "CI is set but the real registry is unavailable: {e} (apt-get install docker-registry)"
                );
            }
            eprintln!("note: skipping real-registry test: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn registry_token(gl: &Emulator, scope: &str, user: &str, secret: &str) -> String {
    let q = if scope.is_empty() {
        "service=container_registry".to_string()
    } else {
        format!("service=container_registry&scope={scope}")
    };
    let (status, body) = json(jwt(&gl.realm(), &q, Some((user, secret))));
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_string()
}

/// `alice` and `group/project`, with a read-write (`rw`) and a read-only (`ro`) PAT of hers.
fn alice_in_group_project(gl: &Emulator) -> (IssuedToken, IssuedToken) {
    let alice = gl.add_user("alice", "pw", false);
    gl.add_project("group/project");
    let rw = gl.add_personal_access_token(
        alice,
        TokenSpec::new("rw", &["read_registry", "write_registry"]),
    );
    let ro = gl.add_personal_access_token(alice, TokenSpec::new("ro", &["read_registry"]));
    (rw, ro)
}

fn challenge(r: &Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn config_yaml_names_our_realm_issuer_and_cert() {
    let gl = Emulator::start(Config::default());
    let yaml = gl.registry_config_yaml(5999, std::path::Path::new("/tmp/data"));
    assert!(yaml.contains(&format!("realm: {}", gl.realm())));
    assert!(yaml.contains("service: container_registry"));
    assert!(yaml.contains("issuer: gitlab-issuer"));
    assert!(yaml.contains(&format!("rootcertbundle: {}", gl.cert_pem_path().display())));
    assert!(yaml.contains("addr: 127.0.0.1:5999"));
    assert!(yaml.contains("rootdirectory: /tmp/data"));
    let pem = std::fs::read_to_string(gl.cert_pem_path()).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
}

#[test]
fn real_registry_accepts_emulator_tokens() {
    let gl = Emulator::start(Config::default());
    let Some(reg) = registry(&gl) else { return };
    let (rw, ro) = alice_in_group_project(&gl);
    let c = client();

    // 1. Unauthenticated ping: 401 with GitLab's Bearer challenge.
    let r = c.get(format!("{}/v2/", reg.url())).send().unwrap();
    assert_eq!(r.status(), 401, "{}", reg.log());
    assert_eq!(
        challenge(&r),
        format!(
            "Bearer realm=\"{}\",service=\"container_registry\"",
            gl.realm()
        )
    );

    // 2. Login-style token (no scope) opens /v2/.
    let t = registry_token(&gl, "", "alice", &rw.token);
    let r = c
        .get(format!("{}/v2/", reg.url()))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "registry log:\n{}", reg.log());

    // 3. Push-scoped token starts a blob upload.
    let uploads = format!("{}/v2/group/project/blobs/uploads/", reg.url());
    let t = registry_token(
        &gl,
        "repository:group/project:push,pull",
        "alice",
        &rw.token,
    );
    let r = c.post(&uploads).bearer_auth(&t).send().unwrap();
    assert_eq!(r.status(), 202, "registry log:\n{}", reg.log());
    assert!(r.headers().contains_key("location"));

    // 4. read_registry only: GitLab silently drops push, the registry refuses it.
    let t = registry_token(
        &gl,
        "repository:group/project:push,pull",
        "alice",
        &ro.token,
    );
    let claims = decode_jwt(&t).1;
    assert_eq!(
        access(&claims),
        vec![("group/project".into(), vec!["pull".into()])]
    );
    let r = c.post(&uploads).bearer_auth(&t).send().unwrap();
    assert_eq!(r.status(), 401);
    let ch = challenge(&r);
    assert!(ch.contains("error=\"insufficient_scope\""), "{ch}");
    // The registry lists the needed actions in no fixed order.
    assert!(
        ch.contains("scope=\"repository:group/project:pull,push\"")
            || ch.contains("scope=\"repository:group/project:push,pull\""),
        "{ch}"
    );
    // ...while pulling with it is authorized (404: repository unknown, not 401).
    let r = c
        .get(format!("{}/v2/group/project/tags/list", reg.url()))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404, "registry log:\n{}", reg.log());

    // 5. A token from another issuer is rejected as invalid_token.
    let other = Emulator::start(Config {
        issuer: "someone-else".into(),
        ..Config::default()
    });
    let bob = other.add_user("bob", "pw", false);
    let _ = bob;
    let t = registry_token(&other, "", "bob", "pw");
    let r = c
        .get(format!("{}/v2/", reg.url()))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).contains("error=\"invalid_token\""));
    drop(reg); // Drop guard kills and reaps the registry process.
}

fn skopeo(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("skopeo")
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .args(args)
        .output()
        .expect("run skopeo")
}

/// A real client (skopeo) pushes and pulls through the registry with Basic credentials that
/// only the emulator understands: challenge → GET /jwt/auth → Bearer JWT → push.
#[test]
fn skopeo_push_and_pull_through_real_registry() {
    let have_skopeo = std::process::Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_skopeo {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but skopeo is missing (apt-get install skopeo)");
        }
        eprintln!("note: skipping skopeo test: skopeo not installed");
        return;
    }
    let gl = Emulator::start(Config::default());
    let Some(reg) = registry(&gl) else { return };
    let (rw, ro) = alice_in_group_project(&gl);
    let tmp = tempfile::tempdir().unwrap();
    let layout = write_oci_image(tmp.path(), 1024);
    let src = format!("oci:{}:v1", layout.display());
    let dest = format!("docker://{}/group/project:v1", reg.host());

    let push_as = |creds: &str| {
        skopeo(
            tmp.path(),
            &[
                "--insecure-policy",
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                creds,
                &src,
                &dest,
            ],
        )
    };
    let out = push_as(&format!("alice:{}", ro.token));
    assert!(!out.status.success(), "read_registry token must not push");

    gl.clear_requests();
    let out = push_as(&format!("anything:{}", rw.token));
    assert!(
        out.status.success(),
        "push failed: {}\nregistry log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        reg.log()
    );
    let token_requests: Vec<_> = gl
        .requests()
        .into_iter()
        .filter(|r| r.path == "/jwt/auth")
        .collect();
    assert!(!token_requests.is_empty());
    for r in &token_requests {
        assert_eq!(r.status, 200);
        assert_eq!(r.username.as_deref(), Some("anything"));
        let scopes: Vec<String> = form_urlencoded::parse(r.query.as_bytes())
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert!(
            scopes
                .iter()
                .any(|s| s.starts_with("repository:group/project:") && s.contains("push")),
            "{scopes:?}"
        );
    }

    let creds = format!("alice:{}", ro.token);
    let out = skopeo(
        tmp.path(),
        &["inspect", "--tls-verify=false", "--creds", &creds, &dest],
    );
    assert!(
        out.status.success(),
        "pull-side inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["Name"], format!("{}/group/project", reg.host()));
    // A revoked credential cannot fetch new registry tokens any more.
    gl.revoke_token(&ro.token);
    let out = skopeo(
        tmp.path(),
        &["inspect", "--tls-verify=false", "--creds", &creds, &dest],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP Basic: Access denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The leeway trap: the registry accepts a token until `exp + 60 s`.
#[test]
fn registry_leeway_keeps_a_one_second_token_alive() {
    let gl = Emulator::start(Config {
        token_window: std::time::Duration::from_secs(1),
        ..Config::default()
    });
    let Some(reg) = registry(&gl) else { return };
    gl.add_user("u", "pw", false);
    let t = registry_token(&gl, "", "u", "pw");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let r = client()
        .get(format!("{}/v2/", reg.url()))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "exp passed 2 s ago but leeway is 60 s");
}
