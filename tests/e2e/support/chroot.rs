//! An otherwise empty root directory for a static binary, run under `chroot` with exactly the
//! environment a test gives it, as in a `FROM scratch` image. Needs root.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{assert_success, skip};

/// GitLab CI mode: the job's variables for `registry.example.com`, with `/tmp` as home.
pub const CI_JOB_ENV: &[(&str, &str)] = &[
    ("HOME", "/tmp"),
    ("GITLAB_CI", "true"),
    ("CI", "true"),
    ("CI_REGISTRY", "registry.example.com"),
    ("CI_REGISTRY_USER", "gitlab-ci-token"),
    ("CI_REGISTRY_PASSWORD", "job-secret-1"),
];

/// The `file` store under `/tmp/data`, with `/tmp` as home: a headless server.
pub const FILE_STORE_ENV: &[(&str, &str)] = &[
    ("HOME", "/tmp"),
    ("DOCKER_CREDENTIAL_GITLAB_STORE", "file"),
    ("DOCKER_CREDENTIAL_GITLAB_DATA_DIR", "/tmp/data"),
];

/// Where `tool` is on PATH (or /usr/sbin, /sbin, which a cleared environment's default
/// search path lacks), if anywhere.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().unwrap().stdout == b"0\n"
}

/// A root directory holding each `(file, name)` of `files` at `/name` and an empty,
/// world-writable `/tmp`. `None` (skip) when this process is not root outside CI; panics in
/// CI.
pub fn empty_root(files: &[(&Path, &str)]) -> Option<tempfile::TempDir> {
    if !is_root() {
        skip("chroot needs root", "run the tests as root, as CI does");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    // Copied by cp, not in this process: a file this process holds open for writing can
    // leak into a child another test thread forks at that moment, and executing the copy
    // then fails with "Text file busy".
    for (from, to) in files {
        let out = Command::new("cp")
            .arg(from)
            .arg(dir.path().join(to))
            .output()
            .unwrap();
        assert_success(&out, &format!("cp {}", from.display()));
    }
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    Some(dir)
}

/// `chroot ROOT ARGV…` with exactly `env`, `stdin` written to it: its output.
pub fn run(root: &Path, argv: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = Command::new(which("chroot").expect("chroot (coreutils) not found"))
        .arg(root)
        .args(argv)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}
