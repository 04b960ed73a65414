//! install.sh: installs a binary for the user, verifies checksums, warns about PATH.
//! (Building from the checkout is what `./install.sh` does by default; here the test binary
//! stands in for a release binary so the test does not run a second cargo build.)

mod support;

use std::process::Command;

use support::{BIN, assert_success, stderr, stdout};

fn install(args: &[&str], path: &str) -> std::process::Output {
    Command::new("sh")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh"))
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap()
}

#[test]
fn installs_verifies_and_warns_about_path() {
    let dir = tempfile::tempdir().unwrap();
    let system_path = std::env::var("PATH").unwrap();
    let prefix = dir.path().join("prefix");
    let prefix_s = prefix.display().to_string();

    // A binary with a matching checksum installs, mode 0755, and runs.
    let release = dir.path().join("docker-credential-gitlab");
    std::fs::copy(BIN, &release).unwrap();
    let sum = Command::new("sha256sum").arg(&release).output().unwrap();
    std::fs::write(
        dir.path().join("docker-credential-gitlab.sha256"),
        &sum.stdout,
    )
    .unwrap();
    let out = install(
        &["--binary", release.to_str().unwrap(), "--prefix", &prefix_s],
        &system_path,
    );
    assert_success(&out, "install.sh");
    assert!(
        stdout(&out).contains("checksum verified"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("is not on your PATH"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("docker-credential-gitlab login"),
        "{}",
        stdout(&out)
    );
    let installed = prefix.join("bin/docker-credential-gitlab");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let version = Command::new(&installed).arg("version").output().unwrap();
    assert!(stdout(&version).starts_with("docker-credential-gitlab ("));

    // On PATH: no warning.
    let out = install(
        &["--binary", release.to_str().unwrap(), "--prefix", &prefix_s],
        &format!("{}/bin:{system_path}", prefix_s),
    );
    assert_success(&out, "install.sh on PATH");
    assert!(!stdout(&out).contains("is not on your PATH"));

    // A wrong checksum is refused and nothing is replaced.
    std::fs::write(
        dir.path().join("docker-credential-gitlab.sha256"),
        "0000000000000000000000000000000000000000000000000000000000000000  x\n",
    )
    .unwrap();
    let before = std::fs::read(&installed).unwrap();
    let out = install(
        &["--binary", release.to_str().unwrap(), "--prefix", &prefix_s],
        &system_path,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&installed).unwrap(), before);

    // Bad options: one line, exit 1.
    let out = install(&["--frobnicate"], &system_path);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown option"), "{}", stderr(&out));
}
