//! A real Docker daemon: Debian's `docker.io` dockerd on a private socket (no iptables, no
//! bridge, vfs storage, its own containerd), the real registry in token mode with tokens from
//! the GitLab emulator, and `docker push`/`docker pull` reading credentials through our helper
//! from a real gnome-keyring.
//!
//! Outside CI the test is skipped (loudly) when `dockerd` is not installed or we are not root;
//! in CI both are failures, as is a daemon that does not start.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gitlab_emulator::{Config, Emulator, TokenSpec};
use support::*;

const FULL: &[&str] = &["read_registry", "write_registry", "self_rotate"];

/// How long the daemon may take to answer `docker version` on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGTERM may take before the daemon and its containerd are killed outright.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A private dockerd: everything (data, exec root, sockets, its containerd) under one
/// temporary directory. Dropping it stops the daemon and its containerd.
struct Dockerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Dockerd {
    /// `None` (skip) outside CI when the daemon cannot be run here at all; panics in CI.
    fn start() -> Option<Dockerd> {
        if !(have_tool("dockerd") && have_tool("containerd") && have_tool("docker")) {
            return None;
        }
        let uid = Command::new("id").arg("-u").output().expect("run id -u");
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            if std::env::var_os("CI").is_some() {
                panic!("the dockerd end-to-end test must run as root in CI");
            }
            eprintln!("SKIPPED: dockerd needs root (CI would fail here)");
            return None;
        }
        // Short paths: the sockets must fit in sun_path (108 bytes).
        let dir = tempfile::Builder::new()
            .prefix("dd")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path();
        // An empty config file, so that the machine's /etc/docker/daemon.json plays no part.
        std::fs::write(root.join("daemon.json"), "{}").unwrap();
        let log = std::fs::File::create(root.join("dockerd.log")).unwrap();
        let namespace = format!(
            "dcg-test-{}",
            root.file_name().unwrap().to_string_lossy().to_lowercase()
        );
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(root.join("daemon.json"))
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", root.join("docker.sock").display()))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
                "--containerd-namespace",
                &namespace,
                "--containerd-plugins-namespace",
                &format!("{namespace}-plugins"),
            ])
            // The daemon talks to the registry and GitLab on loopback, never via a proxy.
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        let mut d = Dockerd {
            dir,
            child: Some(child),
        };
        d.wait_ready();
        Some(d)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "dockerd exited during start-up ({status}); last log lines:\n{}",
                    self.log()
                );
            }
            let ok = Command::new("docker")
                .args(["version", "--format", "{{.Server.Version}}"])
                .env("DOCKER_HOST", self.docker_host())
                .env("DOCKER_CONFIG", self.dir.path().join("cli-config"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                eprintln!("dockerd answered after {:?}", start.elapsed());
                return;
            }
            assert!(
                start.elapsed() < START_TIMEOUT,
                "dockerd did not answer `docker version` within {START_TIMEOUT:?}; last log lines:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pid of the containerd the daemon started for itself, if it is running.
    fn containerd_pid(&self) -> Option<u32> {
        let path = self.dir.path().join("exec/containerd/containerd.pid");
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let containerd = self.containerd_pid();
        // SIGTERM: dockerd shuts down cleanly and stops its own containerd.
        signal(child.id(), "-TERM");
        let start = Instant::now();
        while start.elapsed() < STOP_TIMEOUT {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        if let Some(pid) = containerd {
            let start = Instant::now();
            while alive(pid) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(pid) {
                signal(pid, "-KILL");
            }
        }
    }
}

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
    let Some(mut s) = Session::unlocked() else {
        return;
    };
    let gl = Emulator::start(Config::default());
    let registry = gl
        .start_real_registry()
        .expect("start docker-registry in token mode");
    let host = registry.host();
    let user = gl.add_user("alice", "alice-password", false);
    let token = gl
        .add_personal_access_token(
            user,
            TokenSpec::new("docker", FULL).expires(gl.today() + jiff::Span::new().days(90)),
        )
        .token;
    s.extra_env
        .push(("NO_PROXY".into(), "127.0.0.1,localhost".into()));

    // Log in with our binary: validated at GitLab, stored in the keyring.
    let out = s.helper(&["login", &host, "--password-stdin"], format!("{token}\n"));
    assert_success(&out, "login");
    // PATH (for docker to find the helper) and credHelpers; then the real daemon's socket.
    s.configure_docker(&[&host]);
    s.extra_env
        .push(("DOCKER_HOST".into(), daemon.docker_host()));
    // The username docker will get from the helper, and so send to GitLab's /jwt/auth.
    let got = s.helper(&["get"], &host);
    assert_success(&got, "get");
    let helper_user = serde_json::from_slice::<serde_json::Value>(&got.stdout).unwrap()["Username"]
        .as_str()
        .unwrap()
        .to_owned();

    let image = format!("{host}/group/project:v1");
    let out = docker(&s, &["import", "-", &image], tiny_tar(s.dir.path()));
    assert_success(&out, "docker import");
    let image_id = |s: &Session| {
        let out = docker(s, &["image", "inspect", "--format", "{{.Id}}", &image], "");
        assert_success(&out, "docker image inspect");
        stdout(&out).trim().to_owned()
    };
    let imported = image_id(&s);

    gl.clear_requests();
    let out = docker(&s, &["push", &image], "");
    assert!(
        out.status.success(),
        "docker push failed: {}{}\ndockerd log:\n{}",
        stdout(&out),
        stderr(&out),
        daemon.log()
    );
    let jwt: Vec<_> = gl
        .requests()
        .into_iter()
        .filter(|r| r.path == "/jwt/auth")
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
    assert_success(&docker(&s, &["rmi", &image], ""), "docker rmi");
    let out = docker(&s, &["image", "inspect", &image], "");
    assert!(!out.status.success(), "the image is still there after rmi");
    gl.clear_requests();
    let out = docker(&s, &["pull", &image], "");
    assert!(
        out.status.success(),
        "docker pull failed: {}{}\ndockerd log:\n{}",
        stdout(&out),
        stderr(&out),
        daemon.log()
    );
    assert_eq!(image_id(&s), imported, "pulled a different image");
    assert!(
        gl.requests().iter().any(|r| r.path == "/jwt/auth"
            && r.status == 200
            && r.query.contains("pull")
            && r.username.as_deref() == Some(helper_user.as_str())),
        "the pull fetched no authenticated token: {:?}",
        gl.requests()
    );

    // After logout the helper has nothing to give: a push is refused by the registry.
    assert_success(&s.helper(&["logout", &host], ""), "logout");
    let other = format!("{host}/group/project:after-logout");
    assert_success(&docker(&s, &["tag", &image, &other], ""), "docker tag");
    gl.clear_requests();
    let out = docker(&s, &["push", &other], "");
    assert!(!out.status.success(), "a push after logout succeeded");
    assert!(
        gl.requests()
            .iter()
            .all(|r| r.path != "/jwt/auth" || r.username.is_none()),
        "the daemon still had a credential after logout: {:?}",
        gl.requests()
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
