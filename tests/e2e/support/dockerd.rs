//! A private Docker daemon for the end-to-end tests: Debian's `docker.io` dockerd on its own
//! socket (no iptables, no bridge, vfs storage, its own containerd), everything under one
//! temporary directory, stopped on drop.
//!
//! Outside CI `Dockerd::start` returns `None` (skip, loudly) when `dockerd` is not installed
//! or we are not root; in CI both are failures, as is a daemon that does not start.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::have_tool;

/// How long the daemon may take to answer `docker version` on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGTERM may take before the daemon and its containerd are killed outright.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Held by the one running [`Dockerd`]: the end-to-end tests share one test binary, and two
/// daemons (each with its own containerd, vfs storage and a push of several MiB) at once
/// would double the heaviest load of the suite and slow `long_push`'s timed pushes. The
/// daemon tests wait for each other instead; a test that failed holding it does not stop
/// the next one (a poisoned lock is taken all the same).
static ONE_DAEMON_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A private dockerd: everything (data, exec root, sockets, its containerd) under one
/// temporary directory. Dropping it stops the daemon and its containerd.
pub struct Dockerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Released after `drop` has stopped the daemon (fields drop after `Drop::drop`).
    _turn: MutexGuard<'static, ()>,
}

impl Dockerd {
    /// `None` (skip) outside CI when the daemon cannot be run here at all; panics in CI.
    pub fn start() -> Option<Dockerd> {
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
        let turn = ONE_DAEMON_AT_A_TIME
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
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
            _turn: turn,
        };
        d.wait_ready();
        Some(d)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn log(&self) -> String {
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
    pub fn containerd_pid(&self) -> Option<u32> {
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
