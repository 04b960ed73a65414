//! Real clients through our helper: the docker CLI (no daemon, so `docker login` falls back
//! to a client-side login and calls `store`) and skopeo against a registry with a password;
//! podman and buildah against the real registry in GitLab's token mode (emulator, keyring);
//! docker-py's `docker.credentials.Store` and the Go client library the docker CLI itself
//! uses (docker-credential-helpers' `client` package), each spawning the helper as their
//! users do.

use std::process::Command;

use crate::support::containers::Containers;
use crate::support::gitlab::GitLabWorld;
use crate::support::*;
use gitlab_emulator::Config;

const USER: &str = "registry-user";
const PASSWORD: &str = "registry-password-1";

#[test]
fn docker_cli_login_manifest_logout_and_skopeo_push() {
    if !(have_tool("docker") && have_tool("skopeo")) {
        return;
    }
    let Some(mut s) = Session::unlocked() else {
        return;
    };
    let Some(registry) = Registry::with_htpasswd(USER, PASSWORD) else {
        return;
    };
    let host = registry.host();
    s.configure_docker(&[&host]);
    let layout = write_oci_image(s.dir.path(), 64 * 1024);
    let image = format!("{host}/group/project:v1");
    let push = || skopeo_copy(&s, &oci_ref(&layout), &format!("docker://{image}"), &[]);

    // Without credentials the registry refuses the push.
    let out = push();
    assert!(!out.status.success(), "push without credentials succeeded");

    // A wrong password is refused by the registry, and nothing is stored.
    let out = s.run(
        Command::new("docker").args(["login", &host, "-u", USER, "--password-stdin"]),
        "wrong-password",
    );
    assert!(
        !out.status.success(),
        "login with a wrong password: {}",
        stdout(&out)
    );
    assert_eq!(stdout(&s.helper(&["list"], "")), "{}\n");

    // docker login (client-side, no daemon) validates against the registry, then calls
    // our `store`.
    let out = s.run(
        Command::new("docker").args(["login", &host, "-u", USER, "--password-stdin"]),
        PASSWORD,
    );
    assert_success(&out, "docker login");
    assert!(stdout(&out).contains("Login Succeeded"), "{}", stdout(&out));
    assert_eq!(
        stdout(&s.helper(&["list"], "")),
        format!("{{\"{host}\":\"{USER}\"}}\n")
    );
    assert_eq!(s.secret_tool_lookup(&host).as_deref(), Some(PASSWORD));

    // skopeo reads credHelpers and pushes through our `get`.
    let out = push();
    assert_success(&out, "skopeo copy");

    // docker manifest inspect reads through our `get`.
    let out = s.run(
        Command::new("docker").args(["manifest", "inspect", "--insecure", &image]),
        "",
    );
    assert_success(&out, "docker manifest inspect");
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);

    // docker logout erases through our `erase`; afterwards pulls are anonymous and fail.
    let out = s.run(Command::new("docker").args(["logout", &host]), "");
    assert_success(&out, "docker logout");
    assert_eq!(stdout(&s.helper(&["list"], "")), "{}\n");
    assert_eq!(s.secret_tool_lookup(&host), None);
    let out = s.run(
        Command::new("docker").args(["manifest", "inspect", "--insecure", &image]),
        "",
    );
    assert!(
        !out.status.success(),
        "manifest inspect after logout succeeded"
    );
}

const REGISTRY_SCOPES: &[&str] = &["read_registry", "write_registry"];

/// A GitLab world with podman/buildah storage and an image `localhost/hello:v1` in it.
fn container_world() -> Option<(GitLabWorld, Containers, String)> {
    let mut w = GitLabWorld::start(Config::default())?;
    let host = w.registry.host();
    let c = Containers::new(&mut w.s, &host)?;
    w.s.put_helper_on_path();
    c.seed_image(&w.s, "localhost/hello:v1");
    Some((w, c, host))
}

fn push_and_pull(w: &GitLabWorld, c: &Containers, image: &str) {
    let out = c.podman(
        &w.s,
        &["push", "--tls-verify=false", "localhost/hello:v1", image],
        "",
    );
    assert_success(&out, "podman push");
    // The push left no local image of that name; the pull (of a private repository) makes one.
    assert!(
        !c.podman(&w.s, &["image", "exists", image], "")
            .status
            .success()
    );
    let out = c.podman(&w.s, &["pull", "--tls-verify=false", image], "");
    assert_success(&out, "podman pull");
    assert_success(
        &c.podman(&w.s, &["image", "exists", image], ""),
        "image exists",
    );
}

#[test]
fn podman_with_credhelpers_in_registry_auth_file_pushes_pulls_logs_in_and_out() {
    let Some((mut w, c, host)) = container_world() else {
        return;
    };
    let auth = w.s.dir.path().join("podman/auth.json");
    std::fs::create_dir_all(auth.parent().unwrap()).unwrap();
    std::fs::write(&auth, "{}").unwrap();
    w.s.extra_env
        .push(("REGISTRY_AUTH_FILE".into(), auth.display().to_string()));
    let image = format!("{host}/group/project:podman");

    // No credentials anywhere: GitLab's registry refuses the anonymous push.
    let out = c.podman(
        &w.s,
        &["push", "--tls-verify=false", "localhost/hello:v1", &image],
        "",
    );
    assert!(!out.status.success(), "anonymous push succeeded");

    // configure-docker --podman points podman's auth file at us, and nothing else.
    let out = w.s.helper(&["configure-docker", "--podman", &host], "");
    assert_success(&out, "configure-docker --podman");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&auth).unwrap()).unwrap();
    assert_eq!(
        config,
        serde_json::json!({"credHelpers": {&host: "gitlab"}})
    );
    assert!(!w.s.docker_config_dir().join("config.json").exists());

    // podman login validates at the registry (a JWT from GitLab), then calls our `store`.
    let token = w.pat(REGISTRY_SCOPES, 30);
    let out = c.podman(
        &w.s,
        &[
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "--password-stdin",
            &host,
        ],
        &format!("{token}\n"),
    );
    assert_success(&out, "podman login");
    assert_eq!(
        stdout(&w.s.helper(&["list"], "")),
        format!("{{\"{host}\":\"alice\"}}\n")
    );
    assert_eq!(
        w.s.secret_tool_lookup(&host).as_deref(),
        Some(token.as_str())
    );
    // The token stayed out of podman's file: it holds our credHelpers entry only.
    assert!(!std::fs::read_to_string(&auth).unwrap().contains(&token));

    // Push and pull through our `get`, with GitLab's JWT exchange in between.
    let jwt_before = w.gl.count("GET", JWT_AUTH);
    push_and_pull(&w, &c, &image);
    assert!(w.gl.count("GET", JWT_AUTH) > jwt_before);

    // podman logout calls our `erase`: gone from the keyring, and pushes fail again.
    let out = c.podman(&w.s, &["logout", &host], "");
    assert_success(&out, "podman logout");
    assert_eq!(stdout(&w.s.helper(&["list"], "")), "{}\n");
    assert_eq!(w.s.secret_tool_lookup(&host), None);
    let out = c.podman(
        &w.s,
        &["push", "--tls-verify=false", "localhost/hello:v1", &image],
        "",
    );
    assert!(!out.status.success(), "push after logout succeeded");
}

#[test]
fn podman_with_credhelpers_in_docker_config_and_buildah_push() {
    let Some((w, c, host)) = container_world() else {
        return;
    };
    // Our own login (validating, then configuring Docker's config.json); podman finds no
    // auth.json of its own ($XDG_RUNTIME_DIR/containers/auth.json) and reads
    // $DOCKER_CONFIG/config.json.
    let token = w.pat(REGISTRY_SCOPES, 30);
    let out = w.login(&host, &token, &[]);
    assert_success(&out, "login");
    assert!(!w.s.dir.path().join("containers/auth.json").exists());
    let docker_config = std::fs::read_to_string(w.s.docker_config_dir().join("config.json"));
    assert!(docker_config.unwrap().contains("\"gitlab\""));

    push_and_pull(
        &w,
        &c,
        &format!("{host}/group/project:podman-docker-config"),
    );

    // buildah pushes from the same storage through the same credHelpers entry.
    let image = format!("{host}/group/project:buildah");
    let out = c.buildah(
        &w.s,
        &[
            "push",
            "--tls-verify=false",
            "localhost/hello:v1",
            &format!("docker://{image}"),
        ],
    );
    assert_success(&out, "buildah push");
    let out = c.podman(&w.s, &["pull", "--tls-verify=false", &image], "");
    assert_success(&out, "podman pull of buildah's push");
}

const DOCKER_PY: &str = r#"
import sys
import docker.credentials as c
s = c.Store("gitlab")
host = sys.argv[1]
s.store(host, "alice", "glpat-docker-py")
print(s.get(host))
print(s.get("https://" + host + "/v2/"))
print(s.list())
s.erase(host)
try:
    s.get(host)
    print("found after erase")
except c.CredentialsNotFound as e:
    print("not found")
"#;

#[test]
fn docker_py_credentials_store_round_trip() {
    if !have_tool("/usr/bin/python3") {
        return;
    }
    let Some(mut s) = Session::unlocked() else {
        return;
    };
    let host = "registry.gitlab.example:5050";
    s.put_helper_on_path();
    let out = s.run(
        Command::new("/usr/bin/python3").args(["-c", DOCKER_PY, host]),
        "",
    );
    assert_success(&out, "docker-py");
    assert_eq!(
        stdout(&out),
        format!(
            "{{'ServerURL': '{host}', 'Username': 'alice', 'Secret': 'glpat-docker-py'}}\n\
             {{'ServerURL': 'https://{host}/v2/', 'Username': 'alice', 'Secret': 'glpat-docker-py'}}\n\
             {{'{host}': 'alice'}}\n\
             not found\n"
        )
    );
    assert_eq!(s.secret_tool_lookup(host), None);
}

#[test]
fn the_go_client_library_docker_uses_round_trips() {
    if !have_tool("go") {
        return;
    }
    let Some(s) = Session::unlocked() else { return };
    let program = s.dir.path().join("credclient");
    // Offline, against Debian's packaged source (GOPATH mode: no module proxy).
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&program)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/go/credclient.go"
        ))
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", s.dir.path().join("go-cache"))
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .output()
        .unwrap();
    assert_success(&out, "go build");
    let host = "registry.gitlab.example";
    let out = s.run(Command::new(&program).args([BIN, host]), "");
    assert_success(&out, "the Go client");
    assert_eq!(
        stdout(&out),
        format!(
            "stored\n\
             get: {host} alice glpat-go-client\n\
             list: map[{host}:alice]\n\
             in keyring\n\
             erased\n\
             get after erase: not found\n"
        )
    );
    assert_eq!(s.secret_tool_lookup(host), None);
}
