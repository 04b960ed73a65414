//! The static binary runs with nothing around it, as in a `FROM scratch` image.
//!
//! `scripts/build-static.sh` builds a musl binary and prints its path; set
//! `DOCKER_CREDENTIAL_GITLAB_STATIC_BIN` to it (`./scripts/test.sh` does). Each case copies
//! that one file into an otherwise empty directory (plus an empty, world-writable `tmp/`) and
//! runs it under `chroot` with a cleared environment: no libc, no dynamic loader, no
//! `/etc`, no CA certificates, no D-Bus, no keychain daemon. What still has to work there is
//! what a CI image built with `COPY --from=` relies on: the protocol verbs, GitLab CI mode
//! (credentials from the job's variables) and the file store; and a login that needs HTTPS
//! must fail with an error that says how to provide CA certificates, without echoing the
//! token. Needs root for `chroot`: skipped outside CI when missing, fails in CI.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::chroot::{self, CI_JOB_ENV, FILE_STORE_ENV};
use crate::support::skip;

const NOT_FOUND: &str = "credentials not found in native keychain\n";

/// An otherwise empty root directory holding the static binary at `/docker-credential-gitlab`.
struct Root(tempfile::TempDir);

impl Root {
    fn new() -> Option<Root> {
        let Some(bin) = std::env::var_os("DOCKER_CREDENTIAL_GITLAB_STATIC_BIN") else {
            skip(
                "DOCKER_CREDENTIAL_GITLAB_STATIC_BIN is not set",
                "set it to the path scripts/build-static.sh prints, or run ./scripts/test.sh",
            );
            return None;
        };
        chroot::empty_root(&[(Path::new(&bin), "docker-credential-gitlab")]).map(Root)
    }

    /// A path inside the root, given as the binary sees it (`/tmp/...`).
    fn path(&self, inside: &str) -> PathBuf {
        self.0.path().join(inside.trim_start_matches('/'))
    }

    /// `chroot DIR /docker-credential-gitlab ARGS` with exactly `env` and `stdin`.
    fn run(&self, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Output {
        let argv = [&["/docker-credential-gitlab"][..], args].concat();
        chroot::run(self.0.path(), &argv, env, stdin.as_bytes())
    }
}

/// Asserts the exit code and the exact stdout; returns stderr.
fn expect(out: &Output, code: i32, stdout: &str, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(code), stdout),
        "{what}: stderr: {stderr}"
    );
    stderr
}

fn mode(p: &Path) -> u32 {
    let meta = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    meta.permissions().mode() & 0o7777
}

#[test]
fn version() {
    let Some(root) = Root::new() else { return };
    let want = format!(
        "docker-credential-gitlab (gitlab.com/docker-credential-gitlab/docker-credential-gitlab) v{}\n",
        env!("CARGO_PKG_VERSION")
    );
    expect(&root.run(&[], &["version"], ""), 0, &want, "version");
}

#[test]
fn gitlab_ci_mode_serves_the_job_credentials() {
    let Some(root) = Root::new() else { return };
    let env = CI_JOB_ENV;
    let out = root.run(env, &["list"], "");
    expect(
        &out,
        0,
        "{\"registry.example.com\":\"gitlab-ci-token\"}\n",
        "list",
    );
    let out = root.run(env, &["get"], "registry.example.com");
    let want = concat!(
        r#"{"ServerURL":"registry.example.com","Username":"gitlab-ci-token","#,
        r#""Secret":"job-secret-1"}"#,
        "\n"
    );
    expect(&out, 0, want, "get registry.example.com");
    let out = root.run(env, &["get"], "other.example.com");
    expect(&out, 1, NOT_FOUND, "get other.example.com");
}

#[test]
fn file_store_round_trip() {
    let Some(root) = Root::new() else { return };
    let env = FILE_STORE_ENV;
    let creds = r#"{"ServerURL":"registry.example.com","Username":"alice","Secret":"s3cret"}"#;
    expect(&root.run(env, &["store"], creds), 0, "", "store");
    assert_eq!(mode(&root.path("/tmp/data")), 0o700, "data dir mode");
    assert_eq!(
        mode(&root.path("/tmp/data/secrets.json")),
        0o600,
        "secrets.json mode"
    );
    let out = root.run(env, &["get"], "registry.example.com");
    expect(&out, 0, &format!("{creds}\n"), "get after store");
    expect(
        &root.run(env, &["erase"], "registry.example.com"),
        0,
        "",
        "erase",
    );
    let out = root.run(env, &["get"], "registry.example.com");
    expect(&out, 1, NOT_FOUND, "get after erase");
}

#[test]
fn login_without_ca_certificates_says_how_to_add_them() {
    let Some(root) = Root::new() else { return };
    let env = FILE_STORE_ENV;
    let args = [
        "login",
        "registry.example.com",
        "--password-stdin",
        "--no-configure",
    ];
    let out = root.run(env, &args, "glpat-x");
    let stderr = expect(&out, 1, "", "login");
    assert!(stderr.contains("SSL_CERT_FILE"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("ca certificates"),
        "{stderr}"
    );
    assert!(!stderr.contains("glpat-x"), "the token leaked: {stderr}");
}
