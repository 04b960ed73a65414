//! Real clients against the real registry, through our helper: the docker CLI (no daemon,
//! so `docker login` falls back to a client-side login and calls `store`) and skopeo.

mod support;

use std::process::Command;

use support::*;

const USER: &str = "registry-user";
const PASSWORD: &str = "registry-password-1";

fn skopeo_push(s: &Session, layout: &std::path::Path, target: &str) -> std::process::Output {
    s.run(
        Command::new("skopeo").args([
            "copy",
            "--retry-times=0",
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", layout.display()),
            &format!("docker://{target}"),
        ]),
        "",
    )
}

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

    // Without credentials the registry refuses the push.
    let out = skopeo_push(&s, &layout, &image);
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
    let out = skopeo_push(&s, &layout, &image);
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
