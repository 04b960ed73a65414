//! A real Docker daemon: Debian's `docker.io` dockerd on a private socket (no iptables, no
//! bridge, vfs storage, its own containerd), the real registry in token mode with tokens from
//! the GitLab emulator, and `docker push`/`docker pull` reading credentials through our helper
//! from a real gnome-keyring.
//!
//! Outside CI the test is skipped (loudly) when `dockerd` is not installed or we are not root;
//! in CI both are failures, as is a daemon that does not start.

use std::path::Path;
use std::process::Command;

use crate::support::dockerd::Dockerd;
use crate::support::gitlab::GitLabWorld;
use crate::support::*;

fn docker(s: &Session, args: &[&str], stdin: impl AsRef<[u8]>) -> std::process::Output {
    s.run(Command::new("docker").args(args), stdin)
}

/// A one-file tar archive, made by `tar`, for `docker import`.
fn tiny_tar(dir: &Path) -> Vec<u8> {
    let src = dir.join("rootfs");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("hello.txt"),
        "hello from docker-credential-gitlab\n",
    )
    .unwrap();
    let out = Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["-c", "hello.txt"])
        .output()
        .expect("run tar");
    assert_success(&out, "tar");
    out.stdout
}

#[test]
fn docker_push_and_pull_through_the_helper_with_a_real_daemon() {
    if !(have_tool("docker-registry") && have_tool("tar")) {
        return;
    }
    let Some(daemon) = Dockerd::start() else {
        return;
    };
    let Some(mut w) = GitLabWorld::with_pat(&[], 90) else {
        return;
    };
    let (token, host) = (w.token.clone(), w.host.clone());

    // Log in with our binary: validated at GitLab, stored in the keyring.
    let out = w.login(&host, &token, &[]);
    assert_success(&out, "login");
    // PATH (for docker to find the helper) and credHelpers; then the real daemon's socket.
    w.s.configure_docker(&[&host]);
    w.s.extra_env
        .push(("DOCKER_HOST".into(), daemon.docker_host()));
    // The username docker will get from the helper, and so send to GitLab's /jwt/auth.
    let got = w.s.helper(&["get"], &host);
    assert_success(&got, "get");
    let helper_user = serde_json::from_slice::<serde_json::Value>(&got.stdout).unwrap()["Username"]
        .as_str()
        .unwrap()
        .to_owned();

    let image = format!("{host}/group/project:v1");
    let out = docker(&w.s, &["import", "-", &image], tiny_tar(w.s.dir.path()));
    assert_success(&out, "docker import");
    let image_id = |s: &Session| {
        let out = docker(s, &["image", "inspect", "--format", "{{.Id}}", &image], "");
        assert_success(&out, "docker image inspect");
        stdout(&out).trim().to_owned()
    };
    let imported = image_id(&w.s);

    w.gl.clear_requests();
    let out = docker(&w.s, &["push", &image], "");
    assert!(
        out.status.success(),
        "docker push failed: {}{}\ndockerd log:\n{}",
        stdout(&out),
        stderr(&out),
        daemon.log()
    );
    let jwt: Vec<_> =
        w.gl.requests()
            .into_iter()
            .filter(|r| r.path == JWT_AUTH)
            .collect();
    assert!(
        jwt.iter().any(|r| r.status == 200
            && r.query.contains("push")
            && r.username.as_deref() == Some(helper_user.as_str())),
        "the daemon fetched no authenticated push token: {jwt:?}"
    );
    assert!(
        !stdout(&out).contains(&token) && !stderr(&out).contains(&token),
        "the token leaked into docker's output"
    );

    // Pull it back through the helper into an empty image store.
    assert_success(&docker(&w.s, &["rmi", &image], ""), "docker rmi");
    let out = docker(&w.s, &["image", "inspect", &image], "");
    assert!(!out.status.success(), "the image is still there after rmi");
    w.gl.clear_requests();
    let out = docker(&w.s, &["pull", &image], "");
    assert!(
        out.status.success(),
        "docker pull failed: {}{}\ndockerd log:\n{}",
        stdout(&out),
        stderr(&out),
        daemon.log()
    );
    assert_eq!(image_id(&w.s), imported, "pulled a different image");
    assert!(
        w.gl.requests().iter().any(|r| r.path == JWT_AUTH
            && r.status == 200
            && r.query.contains("pull")
            && r.username.as_deref() == Some(helper_user.as_str())),
        "the pull fetched no authenticated token: {:?}",
        w.gl.requests()
    );

    // After logout the helper has nothing to give: a push is refused by the registry.
    assert_success(&w.s.helper(&["logout", &host], ""), "logout");
    let other = format!("{host}/group/project:after-logout");
    assert_success(&docker(&w.s, &["tag", &image, &other], ""), "docker tag");
    w.gl.clear_requests();
    let out = docker(&w.s, &["push", &other], "");
    assert!(!out.status.success(), "a push after logout succeeded");
    assert!(
        w.gl.requests()
            .iter()
            .all(|r| r.path != JWT_AUTH || r.username.is_none()),
        "the daemon still had a credential after logout: {:?}",
        w.gl.requests()
    );
    let err = format!("{}{}", stdout(&out), stderr(&out)).to_lowercase();
    assert!(
        err.contains("unauthorized")
            || err.contains("authentication required")
            || err.contains("denied")
            || err.contains("no basic auth credentials"),
        "not an auth error: {err}"
    );
}
