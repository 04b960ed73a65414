//! Real parts for the end-to-end tests: a private D-Bus session with gnome-keyring, the real
//! CNCF registry, and a way to run our binary the way docker does.
//!
//! Every part lives in a temporary directory and is killed on drop. When a tool is missing
//! the test fails if `CI` is set (CI must never skip silently) and is skipped otherwise.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use gitlab_emulator::write_oci_image;

pub const BIN: &str = env!("CARGO_BIN_EXE_docker-credential-gitlab");
pub const KEYRING_PASSWORD: &str = "test-keyring-password";

/// The scopes of a personal access token that pushes, pulls and renews itself.
pub const RENEWABLE: &[&str] = &["read_registry", "write_registry", "self_rotate"];
/// GitLab's endpoint that rotates the personal access token it is called with.
pub const ROTATE: &str = "/api/v4/personal_access_tokens/self/rotate";
/// GitLab's endpoint that describes the personal access token it is called with.
pub const PAT_SELF: &str = "/api/v4/personal_access_tokens/self";
/// GitLab's registry token endpoint (the realm).
pub const JWT_AUTH: &str = "/jwt/auth";

/// Skips outside CI; panics in CI, where nothing may skip silently.
pub fn skip(why: &str, fix: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{why}: {fix}");
    }
    eprintln!("SKIPPED: {why} (CI would fail here)");
}

/// Returns false (skip) when `tool` is missing outside CI; panics inside CI.
pub fn have_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{tool} is required for the end-to-end tests; run ./scripts/test.sh (it installs them)"
            );
        }
        eprintln!("SKIPPED: {tool} is not installed (CI would fail here)");
    }
    found
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// gnome-keyring, watched: gnome-keyring can crash under heavy concurrent item replaces
/// (seen in CI); a desktop session's bus would start it again, so the watcher does, on the
/// same keyring file, unlocked as before. Stopping it on purpose (drop) stops the watcher.
struct Keyring {
    child: std::sync::Arc<std::sync::Mutex<Child>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl Keyring {
    fn spawn(envs: &[(std::ffi::OsString, Option<std::ffi::OsString>)], unlock: bool) -> Child {
        let mut cmd = Command::new("gnome-keyring-daemon");
        cmd.args(["--foreground", "--components=secrets"]);
        if unlock {
            cmd.arg("--unlock");
        }
        for (k, v) in envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        let mut stdin = child.stdin.take().unwrap();
        if unlock {
            stdin.write_all(KEYRING_PASSWORD.as_bytes()).unwrap();
        }
        drop(stdin);
        child
    }

    fn start(envs: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)>, unlock: bool) -> Keyring {
        use std::sync::atomic::Ordering;
        let child = std::sync::Arc::new(std::sync::Mutex::new(Keyring::spawn(&envs, unlock)));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, st) = (child.clone(), stop.clone());
        let watcher = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                {
                    let mut guard = c.lock().unwrap();
                    if !st.load(Ordering::Relaxed) && matches!(guard.try_wait(), Ok(Some(_))) {
                        eprintln!("test support: gnome-keyring-daemon died; starting it again");
                        *guard = Keyring::spawn(&envs, unlock);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Keyring {
            child,
            stop,
            watcher: Some(watcher),
        }
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A private D-Bus session bus with gnome-keyring's Secret Service on it, plus a private
/// HOME and data directory: the environment one helper invocation sees.
pub struct Session {
    pub dir: tempfile::TempDir,
    bus_address: Option<String>,
    keyring: Option<Keyring>,
    bus: Option<Killed>,
    pub extra_env: Vec<(String, String)>,
}

impl Session {
    /// A session with an unlocked login keyring. `None` when the tools are missing (skip).
    pub fn unlocked() -> Option<Session> {
        let mut s = Session::with_bus()?;
        s.start_keyring(true);
        Some(s)
    }

    /// Restarts gnome-keyring without unlocking it: the same keyring file, now locked, as
    /// after a reboot on a headless machine.
    pub fn relock(&mut self) {
        self.keyring = None; // kills the daemon
        self.wait_name_owner(false);
        self.start_keyring(false);
    }

    /// The running gnome-keyring's pid (to crash it from a test).
    pub fn keyring_pid(&self) -> u32 {
        self.keyring.as_ref().unwrap().child.lock().unwrap().id()
    }

    /// Stops gnome-keyring: the Secret Service goes away (the bus stays).
    pub fn stop_keyring(&mut self) {
        self.keyring = None; // kills the daemon
        self.wait_name_owner(false);
    }

    /// Starts gnome-keyring again, unlocked, on the same keyring file.
    pub fn start_unlocked_keyring(&mut self) {
        self.start_keyring(true);
    }

    /// No session bus at all: what a plain SSH login or a container looks like.
    pub fn without_bus() -> Session {
        Session {
            dir: tempfile::tempdir().unwrap(),
            bus_address: None,
            keyring: None,
            bus: None,
            extra_env: Vec::new(),
        }
    }

    /// No session bus, secrets in the `file` store: a headless build server.
    pub fn file_store() -> Session {
        let mut s = Session::without_bus();
        s.extra_env
            .push(("DOCKER_CREDENTIAL_GITLAB_STORE".into(), "file".into()));
        s
    }

    /// The secrets file of the `file` store.
    pub fn secrets_path(&self) -> PathBuf {
        self.data_dir().join("secrets.json")
    }

    /// The secret the `file` store holds for `host`, read straight from its file.
    pub fn file_store_lookup(&self, host: &str) -> Option<String> {
        let bytes = std::fs::read(self.secrets_path()).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["secrets"][host].as_str().map(str::to_owned)
    }

    fn with_bus() -> Option<Session> {
        if !(have_tool("dbus-daemon")
            && have_tool("gnome-keyring-daemon")
            && have_tool("dbus-send"))
        {
            return None;
        }
        let mut s = Session::without_bus();
        // A session bus without service activation: when a test stops the keyring, the
        // Secret Service is gone, rather than replaced by a daemon the bus starts itself
        // (with the developer's environment and keyrings).
        let config = s.dir.path().join("session-bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                s.dir.path().display()
            ),
        )
        .unwrap();
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let mut line = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        s.bus_address = Some(line.trim().to_owned());
        s.bus = Some(Killed(bus));
        Some(s)
    }

    fn start_keyring(&mut self, unlock: bool) {
        let mut cmd = Command::new("gnome-keyring-daemon");
        cmd.args(["--foreground", "--components=secrets"]);
        if unlock {
            cmd.arg("--unlock");
        }
        self.env(&mut cmd);
        let envs: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)> = cmd
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
            .collect();
        self.keyring = Some(Keyring::start(envs, unlock));
        self.wait_name_owner(true);
    }

    fn wait_name_owner(&self, owned: bool) {
        wait_until("org.freedesktop.secrets", Duration::from_secs(10), || {
            let out = self
                .env(&mut Command::new("dbus-send"))
                .args([
                    "--session",
                    "--dest=org.freedesktop.DBus",
                    "--print-reply",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).contains("boolean true") == owned
        });
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn state_path(&self) -> PathBuf {
        self.data_dir().join("state.json")
    }

    /// The hand-out record ("lease") of `host`, where the binary keeps it.
    pub fn lease_path(&self, host: &str) -> PathBuf {
        docker_credential_gitlab::testing::lease_record_path(&self.data_dir(), host)
    }

    /// The gnome-keyring file that holds the login collection.
    pub fn keyring_file(&self) -> PathBuf {
        self.dir.path().join("share/keyrings/login.keyring")
    }

    pub fn docker_config_dir(&self) -> PathBuf {
        self.home().join(".docker")
    }

    /// Applies this session's environment to `cmd`, and nothing of the developer's.
    pub fn env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        let root = self.dir.path();
        std::fs::create_dir_all(self.home()).unwrap();
        // Not a CI job and no helper settings, unless a test says so (CI itself runs these
        // tests with CI=true).
        for (key, _) in std::env::vars_os() {
            if let Some(k) = key.to_str()
                && (k == "CI"
                    || k == "GITLAB_CI"
                    || k.starts_with("CI_")
                    || k.starts_with("DOCKER_CREDENTIAL_GITLAB_"))
            {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("DOCKER_CREDENTIAL_GITLAB_STORE")
            .env_remove("DOCKER_AUTH_CONFIG")
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", root)
            .env("XDG_DATA_HOME", root.join("share"))
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("DOCKER_CONFIG", self.docker_config_dir())
            .env("DOCKER_CREDENTIAL_GITLAB_DATA_DIR", self.data_dir())
            .env(
                "DOCKER_HOST",
                format!("unix://{}/no-daemon.sock", root.display()),
            );
        match &self.bus_address {
            Some(a) => cmd.env("DBUS_SESSION_BUS_ADDRESS", a),
            // An address that does not exist: zbus must not fall back to a real session.
            None => cmd.env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}/no-bus", root.display()),
            ),
        };
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs our binary with `args` and `stdin`.
    pub fn helper(&self, args: &[&str], stdin: impl AsRef<[u8]>) -> Output {
        self.run(Command::new(BIN).args(args), stdin)
    }

    pub fn run(&self, cmd: &mut Command, stdin: impl AsRef<[u8]>) -> Output {
        self.spawn(cmd, stdin).wait_with_output().unwrap()
    }

    /// Starts `cmd` in this session with `stdin` written and closed; the caller waits.
    pub fn spawn(&self, cmd: &mut Command, stdin: impl AsRef<[u8]>) -> Child {
        let mut child = self
            .env(cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut pipe = child.stdin.take().unwrap();
        // A child that refuses a large input closes its stdin early; that is fine.
        let _ = pipe.write_all(stdin.as_ref());
        drop(pipe);
        child
    }

    /// `login HOST --password-stdin EXTRA…` with `token` and a newline on stdin, as a user
    /// pipes it in.
    pub fn login(&self, host: &str, token: &str, extra: &[&str]) -> Output {
        let mut args = vec!["login", host, "--password-stdin"];
        args.extend_from_slice(extra);
        self.helper(&args, format!("{token}\n"))
    }

    pub fn store(&self, server: &str, user: &str, secret: &str) {
        let out = self.helper(
            &["store"],
            format!(r#"{{"ServerURL":"{server}","Username":"{user}","Secret":"{secret}"}}"#),
        );
        assert_success(&out, "store");
    }

    /// `secret-tool lookup` straight against the keyring, bypassing our binary.
    pub fn secret_tool_lookup(&self, host: &str) -> Option<String> {
        let out = self
            .env(&mut Command::new("secret-tool"))
            .args([
                "lookup",
                "service",
                "docker-credential-gitlab",
                "username",
                host,
            ])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    }

    /// Writes `$DOCKER_CONFIG/config.json` pointing `hosts` at our helper, and puts the
    /// binary's directory first on PATH so clients find `docker-credential-gitlab`.
    pub fn configure_docker(&mut self, hosts: &[&str]) {
        let helpers: serde_json::Map<String, serde_json::Value> = hosts
            .iter()
            .map(|h| (h.to_string(), serde_json::Value::from("gitlab")))
            .collect();
        std::fs::create_dir_all(self.docker_config_dir()).unwrap();
        std::fs::write(
            self.docker_config_dir().join("config.json"),
            serde_json::json!({ "credHelpers": helpers }).to_string(),
        )
        .unwrap();
        self.put_helper_on_path();
    }

    /// Puts the binary's directory first on PATH, where clients look for
    /// `docker-credential-gitlab`.
    pub fn put_helper_on_path(&mut self) {
        let bin_dir = Path::new(BIN).parent().unwrap().display().to_string();
        let path = format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default());
        self.extra_env.retain(|(k, _)| k != "PATH");
        self.extra_env.push(("PATH".into(), path));
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
}

/// The `Secret` of a successful `get`'s output.
#[track_caller]
pub fn secret(out: &Output) -> String {
    assert_success(out, "get");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Secret"].as_str().unwrap().to_owned()
}

/// The error contract: exactly one line on stdout, exit status 1, nothing on stderr.
#[track_caller]
pub fn assert_one_line_error(out: &Output, what: &str) -> String {
    let text = stdout(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit status; stdout {text:?}"
    );
    assert!(
        text.ends_with('\n') && text.trim_end_matches('\n').lines().count() == 1,
        "{what}: expected one line on stdout, got {text:?}"
    );
    assert!(
        out.stderr.is_empty(),
        "{what}: stderr not empty: {}",
        stderr(out)
    );
    assert!(!text.contains("panicked"), "{what}: {text}");
    text.trim_end().to_owned()
}

/// The real CNCF registry (`docker-registry`), on loopback, with htpasswd basic auth.
pub struct Registry {
    pub port: u16,
    _dir: tempfile::TempDir,
    _child: Killed,
}

impl Registry {
    pub fn with_htpasswd(user: &str, password: &str) -> Option<Registry> {
        if !(have_tool("docker-registry") && have_tool("htpasswd")) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .unwrap();
        assert_success(&htpasswd, "htpasswd");
        std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).unwrap();
        let port = free_port();
        let config = format!(
            "version: 0.1\n\
             log: {{level: error}}\n\
             storage: {{filesystem: {{rootdirectory: {root}/data}}}}\n\
             http: {{addr: 127.0.0.1:{port}}}\n\
             auth: {{htpasswd: {{realm: test-registry, path: {root}/htpasswd}}}}\n",
            root = dir.path().display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .args([
                "serve",
                &dir.path().join("config.yml").display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let child = Killed(child);
        wait_until("registry", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(Registry {
            port,
            _dir: dir,
            _child: child,
        })
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// `oci:LAYOUT:v1`: the image [`write_oci_image`] wrote, as skopeo names it.
pub fn oci_ref(layout: &Path) -> String {
    format!("oci:{}:v1", layout.display())
}

/// `skopeo copy --retry-times=0 EXTRA… SRC DST`. A `docker://` side is a test registry,
/// plain HTTP on loopback: its TLS is not verified.
pub fn skopeo_copy_command(src: &str, dst: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--retry-times=0"]);
    if src.starts_with("docker://") {
        cmd.arg("--src-tls-verify=false");
    }
    if dst.starts_with("docker://") {
        cmd.arg("--dest-tls-verify=false");
    }
    cmd.args(extra).args([src, dst]);
    cmd
}

/// [`skopeo_copy_command`] run in session `s`.
pub fn skopeo_copy(s: &Session, src: &str, dst: &str, extra: &[&str]) -> Output {
    s.run(&mut skopeo_copy_command(src, dst, extra), "")
}

/// Reads a file, or `None` when it does not exist.
pub fn read_opt(path: &Path) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    std::fs::File::open(path).ok()?.read_to_end(&mut buf).ok()?;
    Some(buf)
}
pub mod chroot;
pub mod conformance;
pub mod containers;
pub mod dockerd;
pub mod fleet;
pub mod gitlab;
pub mod openbao;
pub mod renewal;

/// The directory `packaging/release.sh --out-dir` filled (archives, .deb, .rpm, SHA256SUMS):
/// `DOCKER_CREDENTIAL_GITLAB_RELEASE_DIR`, which `./scripts/test.sh` sets. None (skip)
/// outside CI when unset; panics in CI.
pub fn release_dir() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CREDENTIAL_GITLAB_RELEASE_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var_os("CI").is_some() => panic!(
            "DOCKER_CREDENTIAL_GITLAB_RELEASE_DIR is not set: run ./scripts/test.sh, which \
             runs packaging/release.sh first"
        ),
        None => {
            eprintln!(
                "SKIPPED: DOCKER_CREDENTIAL_GITLAB_RELEASE_DIR is not set (CI would fail here)"
            );
            None
        }
    }
}

/// The one release archive in `dir` for `target`.
pub fn release_archive(dir: &Path, target: &str) -> PathBuf {
    let name = format!(
        "docker-credential-gitlab-{}-{target}.tar.gz",
        env!("CARGO_PKG_VERSION")
    );
    let path = dir.join(&name);
    assert!(path.is_file(), "no {name} in {}", dir.display());
    path
}

/// The one release file in `dir` whose name ends with `suffix`.
#[track_caller]
pub fn release_file(dir: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one *{suffix} in {}: {found:?}",
        dir.display()
    );
    found[0].clone()
}

/// Unpacks the release archive `archive` (`NAME.tar.gz`) into `into`: the directory
/// `into/NAME` it holds.
#[track_caller]
pub fn unpack(archive: &Path, into: &Path) -> PathBuf {
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .output()
        .unwrap();
    assert_success(&out, "tar -x");
    let name = archive.file_name().unwrap().to_str().unwrap();
    into.join(name.trim_end_matches(".tar.gz"))
}

/// `sha256sum --check --strict SHA256SUMS` in `dir`.
pub fn sha256sum_check(dir: &Path) -> Output {
    Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .unwrap()
}
