//! install.sh, run by `dash` (POSIX sh, as on Debian and Ubuntu) as a user would: from a
//! release archive verified against SHA256SUMS, from inside an unpacked archive, and from
//! the checkout; `--uninstall` removes exactly what it installed. The archives come from
//! `packaging/release.sh` (see `support::release_dir`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{
    assert_success, have_tool, release_archive, release_dir, stderr, stdout, unpack,
};

const NAME: &str = "docker-credential-gitlab";
const INSTALL_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh");
const HOST: &str = "x86_64-unknown-linux-gnu";

fn sh(script: &Path, args: &[&str], path: &str) -> Output {
    Command::new("dash")
        .arg(script)
        .args(args)
        .env("PATH", path)
        .env_remove("XDG_BIN_HOME")
        .output()
        .unwrap()
}

/// `install.sh --archive ARCHIVE --prefix PREFIX`, as a user runs it.
fn install_archive(archive: &Path, prefix: &Path) -> Output {
    sh(
        Path::new(INSTALL_SH),
        &[
            "--archive",
            archive.to_str().unwrap(),
            "--prefix",
            prefix.to_str().unwrap(),
        ],
        &system_path(),
    )
}

fn system_path() -> String {
    std::env::var("PATH").unwrap()
}

/// Every file and directory under `root`, relative to it.
fn tree(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(format!("{rel}/"));
                walk(root, &p, out);
            } else {
                out.insert(rel);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A copy of the host archive and its SHA256SUMS in a directory of the test's own, as after
/// a download. `None` (skip) when the release files or dash are missing outside CI.
fn downloaded() -> Option<(tempfile::TempDir, PathBuf)> {
    let release = release_dir()?;
    if !have_tool("dash") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let archive = release_archive(&release, HOST);
    let copy = dir.path().join(archive.file_name().unwrap());
    std::fs::copy(&archive, &copy).unwrap();
    std::fs::copy(release.join("SHA256SUMS"), dir.path().join("SHA256SUMS")).unwrap();
    Some((dir, copy))
}

/// What an install puts under its prefix (directories end in `/`).
fn the_installed_files() -> BTreeSet<String> {
    [
        "bin/",
        "bin/docker-credential-gitlab",
        "share/",
        "share/bash-completion/",
        "share/bash-completion/completions/",
        "share/bash-completion/completions/docker-credential-gitlab",
        "share/docker-credential-gitlab/",
        "share/docker-credential-gitlab/installed-files",
        "share/fish/",
        "share/fish/vendor_completions.d/",
        "share/fish/vendor_completions.d/docker-credential-gitlab.fish",
        "share/man/",
        "share/man/man1/",
        "share/man/man1/docker-credential-gitlab.1",
        "share/zsh/",
        "share/zsh/site-functions/",
        "share/zsh/site-functions/_docker-credential-gitlab",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

#[test]
fn a_release_archive_installs_verified_again_idempotently_and_uninstalls_exactly() {
    let Some((dir, archive)) = downloaded() else {
        return;
    };
    let prefix = dir.path().join("prefix");
    // Something of the user's already in the prefix: never touched.
    std::fs::create_dir_all(prefix.join("share/man/man1")).unwrap();
    std::fs::write(prefix.join("share/man/man1/other.1"), "mine").unwrap();
    let before = tree(&prefix);

    let args = ["--archive", archive.to_str().unwrap(), "--prefix"];
    let out = sh(
        Path::new(INSTALL_SH),
        &[&args[..], &[prefix.to_str().unwrap()]].concat(),
        &system_path(),
    );
    assert_success(&out, "install.sh --archive");
    let text = stdout(&out);
    assert!(
        text.contains("checksum verified against SHA256SUMS"),
        "{text}"
    );
    assert!(text.contains("is not on your PATH"), "{text}");
    assert!(text.contains("docker-credential-gitlab login"), "{text}");

    let mut expected = the_installed_files();
    expected.extend(before.iter().cloned());
    assert_eq!(tree(&prefix), expected);
    let bin = prefix.join("bin").join(NAME);
    assert_eq!(mode(&bin), 0o755);
    let version = Command::new(&bin).arg("version").output().unwrap();
    assert!(
        stdout(&version).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        stdout(&version)
    );
    let page = std::fs::read_to_string(prefix.join("share/man/man1/docker-credential-gitlab.1"));
    assert!(page.unwrap().contains(".TH docker-credential-gitlab 1"));

    // Again, with the bin directory on PATH: the same files, no PATH warning.
    let manifest = std::fs::read(prefix.join("share/docker-credential-gitlab/installed-files"));
    let on_path = format!("{}:{}", prefix.join("bin").display(), system_path());
    let out = sh(
        Path::new(INSTALL_SH),
        &[&args[..], &[prefix.to_str().unwrap()]].concat(),
        &on_path,
    );
    assert_success(&out, "install.sh again");
    assert!(!stdout(&out).contains("is not on your PATH"));
    assert_eq!(tree(&prefix), expected);
    assert_eq!(
        std::fs::read(prefix.join("share/docker-credential-gitlab/installed-files")).unwrap(),
        manifest.unwrap()
    );

    // Uninstall: back to exactly what was there before.
    let out = sh(
        Path::new(INSTALL_SH),
        &["--uninstall", "--prefix", prefix.to_str().unwrap()],
        &system_path(),
    );
    assert_success(&out, "install.sh --uninstall");
    assert_eq!(tree(&prefix), before);
    assert_eq!(
        std::fs::read(prefix.join("share/man/man1/other.1")).unwrap(),
        b"mine"
    );

    // Nothing left to uninstall: one line, exit 1.
    let out = sh(
        Path::new(INSTALL_SH),
        &["--uninstall", "--prefix", prefix.to_str().unwrap()],
        &system_path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing to uninstall"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_corrupted_or_unverifiable_archive_is_refused_and_installs_nothing() {
    let Some((dir, archive)) = downloaded() else {
        return;
    };
    let prefix = dir.path().join("prefix");
    let install = |what: &str| {
        let out = install_archive(&archive, &prefix);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stdout(&out));
        assert!(!prefix.exists(), "{what}: something was installed");
        stderr(&out)
    };

    // One byte changed in the middle of the archive.
    let good = std::fs::read(&archive).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x01;
    std::fs::write(&archive, &bad).unwrap();
    let err = install("corrupted");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // The archive intact, but SHA256SUMS does not list it.
    std::fs::write(&archive, &good).unwrap();
    std::fs::write(dir.path().join("SHA256SUMS"), "").unwrap();
    let err = install("unlisted");
    assert!(err.contains("lists no checksum"), "{err}");

    // No SHA256SUMS at all.
    std::fs::remove_file(dir.path().join("SHA256SUMS")).unwrap();
    let err = install("no SHA256SUMS");
    assert!(err.contains("no SHA256SUMS"), "{err}");

    // An archive for another machine, correctly listed, is refused too.
    let other = dir.path().join(format!(
        "{NAME}-{}-aarch64-apple-darwin.tar.gz",
        env!("CARGO_PKG_VERSION")
    ));
    std::fs::copy(&archive, &other).unwrap();
    let sum = Command::new("sha256sum")
        .arg(&other)
        .current_dir(dir.path())
        .output();
    let line = stdout(&sum.unwrap()).replace(&format!("{}/", dir.path().display()), "");
    std::fs::write(dir.path().join("SHA256SUMS"), line).unwrap();
    let out = install_archive(&other, &prefix);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not built for this machine"),
        "{}",
        stderr(&out)
    );
    assert!(!prefix.exists());
}

#[test]
fn a_failed_install_can_be_undone_and_uninstall_removes_only_its_own_files() {
    let Some((dir, archive)) = downloaded() else {
        return;
    };
    let prefix = dir.path().join("prefix");
    // A file where install.sh needs a directory: the install fails half way, after the
    // binary, the man page and the bash completion are in place.
    std::fs::create_dir_all(prefix.join("share")).unwrap();
    std::fs::write(prefix.join("share/zsh"), "a file of the user's").unwrap();
    // CRLF line endings (a SHA256SUMS edited on Windows) are fine.
    let sums = std::fs::read_to_string(dir.path().join("SHA256SUMS")).unwrap();
    std::fs::write(dir.path().join("SHA256SUMS"), sums.replace('\n', "\r\n")).unwrap();
    let out = install_archive(&archive, &prefix);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(prefix.join("bin").join(NAME).is_file());
    assert!(
        !tree(&prefix).iter().any(|p| p.contains(".new.")),
        "a half-copied file is left: {:?}",
        tree(&prefix)
    );

    // A manifest that names a file install.sh never installs (edited, or stale): kept.
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let manifest = prefix.join("share/docker-credential-gitlab/installed-files");
    let mut listed = std::fs::read_to_string(&manifest).unwrap();
    listed.push_str(&format!("{}\n", victim.display()));
    std::fs::write(&manifest, listed).unwrap();

    // HOME unset: --prefix is all it needs.
    let out = Command::new("dash")
        .arg(INSTALL_SH)
        .args(["--uninstall", "--prefix", prefix.to_str().unwrap()])
        .env_remove("HOME")
        .output()
        .unwrap();
    assert_success(&out, "install.sh --uninstall after a failed install");
    assert!(stdout(&out).contains("skipped"), "{}", stdout(&out));
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    let left: BTreeSet<String> = ["share/", "share/zsh"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(tree(&prefix), left);
}

#[test]
fn xdg_bin_home_is_where_the_binary_goes() {
    let Some((dir, archive)) = downloaded() else {
        return;
    };
    let prefix = dir.path().join("prefix");
    let xdg_bin = dir.path().join("xdg-bin");
    let out = Command::new("dash")
        .arg(INSTALL_SH)
        .args([
            "--archive",
            archive.to_str().unwrap(),
            "--prefix",
            prefix.to_str().unwrap(),
        ])
        .env("XDG_BIN_HOME", &xdg_bin)
        .output()
        .unwrap();
    assert_success(&out, "install.sh with XDG_BIN_HOME");
    assert!(xdg_bin.join(NAME).is_file());
    assert!(!prefix.join("bin").exists());
    assert!(
        prefix
            .join("share/man/man1/docker-credential-gitlab.1")
            .is_file()
    );
}

#[test]
fn from_inside_an_unpacked_archive_its_own_sums_are_checked() {
    let Some(release) = release_dir() else { return };
    if !have_tool("dash") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unpacked = unpack(&release_archive(&release, HOST), dir.path());
    let prefix = dir.path().join("prefix");
    let out = sh(
        &unpacked.join("install.sh"),
        &["--prefix", prefix.to_str().unwrap()],
        &system_path(),
    );
    assert_success(&out, "unpacked install.sh");
    assert!(
        stdout(&out).contains("unpacked release verified"),
        "{}",
        stdout(&out)
    );
    assert_eq!(tree(&prefix), the_installed_files());

    // A damaged file in the unpacked release is refused, and the installed one is kept.
    let installed = std::fs::read(prefix.join("bin").join(NAME)).unwrap();
    let mut page = std::fs::read(unpacked.join("man/docker-credential-gitlab.1")).unwrap();
    page.extend_from_slice(b".\\\" tampered\n");
    std::fs::write(unpacked.join("man/docker-credential-gitlab.1"), page).unwrap();
    let out = sh(
        &unpacked.join("install.sh"),
        &["--prefix", prefix.to_str().unwrap()],
        &system_path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("checksum mismatch for man/docker-credential-gitlab.1"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(prefix.join("bin").join(NAME)).unwrap(),
        installed
    );
}

#[test]
fn from_the_checkout_it_builds_installs_and_configures_docker() {
    if !have_tool("dash") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    let bin_dir = dir.path().join("my bin");
    let docker_config = dir.path().join("docker");
    // As from a user's shell: without what `cargo test` adds to the environment, which
    // would make the inner `cargo build --release` rebuild instead of reusing the release
    // build `./scripts/test.sh` made.
    let mut install = Command::new("dash");
    for (key, _) in std::env::vars_os() {
        let key_s = key.to_string_lossy();
        if key_s.starts_with("CARGO") || key_s.starts_with("RUSTUP") || key_s == "LD_LIBRARY_PATH" {
            install.env_remove(&key);
        }
    }
    let out = install
        .arg(INSTALL_SH)
        .args(["--prefix", prefix.to_str().unwrap()])
        .args(["--bin-dir", bin_dir.to_str().unwrap()])
        .args(["--configure", "gitlab.example.com:5050"])
        .env("DOCKER_CONFIG", &docker_config)
        .output()
        .unwrap();
    assert_success(&out, "install.sh from the checkout");
    let bin = bin_dir.join(NAME);
    assert_eq!(mode(&bin), 0o755);
    assert!(
        prefix
            .join("share/man/man1/docker-credential-gitlab.1")
            .is_file()
    );
    let config = std::fs::read_to_string(docker_config.join("config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config["credHelpers"]["gitlab.example.com:5050"], "gitlab",
        "{config}"
    );

    // --uninstall removes the binary from --bin-dir too, and the directory it made.
    let out = Command::new("dash")
        .arg(INSTALL_SH)
        .args(["--uninstall", "--prefix", prefix.to_str().unwrap()])
        .output()
        .unwrap();
    assert_success(&out, "install.sh --uninstall");
    assert!(!bin_dir.exists());
    assert!(!prefix.exists(), "{:?}", tree(&prefix));
}

#[test]
fn bad_options_are_one_line_and_exit_1() {
    if !have_tool("dash") {
        return;
    }
    for args in [
        &["--frobnicate"][..],
        &["--archive"],
        &["--prefix"],
        &["--prefix", ""],
        &["--prefix", "~/x"],
    ] {
        let out = sh(Path::new(INSTALL_SH), args, &system_path());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&out).lines().count(),
            1,
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
}

#[test]
fn the_shell_scripts_are_shellcheck_clean() {
    if !have_tool("shellcheck") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("shellcheck")
        .current_dir(root)
        .args([
            "install.sh",
            "packaging/release.sh",
            "scripts/test.sh",
            "scripts/build-static.sh",
            "scripts/build-windows.sh",
            "scripts/wine-unit-tests.sh",
        ])
        .output()
        .unwrap();
    assert_success(&out, "shellcheck");
}
