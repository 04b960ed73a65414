//! arm64 (aarch64) Linux, proven on an x86_64 machine: the static
//! `aarch64-unknown-linux-musl` binary (`scripts/build-static.sh aarch64-unknown-linux-musl`,
//! `DOCKER_CREDENTIAL_GITLAB_STATIC_BIN_AARCH64`) runs under qemu's user-mode emulation,
//! called directly (no binfmt registration), inside an empty chroot holding only the binary
//! and the static qemu: the protocol suite on the `file` store and GitLab CI mode, as
//! `static_binary` checks the x86_64 one. The arm64 release files of
//! `packaging/release.sh` (`support::release_dir`): the archive is laid out like the x86_64
//! musl one, the `.deb` and `.rpm` hold the x86_64 packages' files and the binary inside
//! runs, and `install.sh` refuses the arm64 archive on this x86_64 machine in one line,
//! unless `--arch aarch64` asks for it. Needs root (chroot, as in CI); skipped outside CI
//! when something is missing, fails in CI.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::chroot::{self, CI_JOB_ENV, FILE_STORE_ENV, which};
use crate::support::conformance::{self, Helper};
use crate::support::{
    assert_success, have_tool, release_archive, release_dir, release_file, sha256sum_check, skip,
    stderr, stdout, unpack,
};

const NAME: &str = "docker-credential-gitlab";
const INSTALL_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh");
const ARM64: &str = "aarch64-unknown-linux-musl";
const QEMU: &str = "qemu-aarch64-static";
const NOT_FOUND: &str = "credentials not found in native keychain\n";

/// The static arm64 binary `scripts/build-static.sh aarch64-unknown-linux-musl` built.
fn static_arm64() -> Option<PathBuf> {
    let bin = std::env::var_os("DOCKER_CREDENTIAL_GITLAB_STATIC_BIN_AARCH64");
    if bin.is_none() {
        skip(
            "DOCKER_CREDENTIAL_GITLAB_STATIC_BIN_AARCH64 is not set",
            "set it to the path `scripts/build-static.sh aarch64-unknown-linux-musl` prints, \
             or run ./scripts/test.sh",
        );
    }
    bin.map(PathBuf::from)
}

/// `version`'s exact output.
fn version_line() -> String {
    format!(
        "{NAME} (gitlab.com/docker-credential-gitlab/docker-credential-gitlab) v{}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// What `file` says about `path`.
fn file_says(path: &Path) -> String {
    let out = Command::new("file").arg("-b").arg(path).output().unwrap();
    assert_success(&out, "file");
    stdout(&out)
}

/// An otherwise empty root holding an arm64 binary at `/docker-credential-gitlab`, the
/// static qemu at `/qemu-aarch64-static` and an empty, world-writable `/tmp`.
struct Root(tempfile::TempDir);

impl Root {
    fn new(bin: &Path) -> Option<Root> {
        if !have_tool(QEMU) {
            return None;
        }
        let qemu = which(QEMU).unwrap();
        chroot::empty_root(&[(bin, NAME), (&qemu, QEMU)]).map(Root)
    }

    /// A path inside the root, given as the binary sees it (`/tmp/...`).
    fn path(&self, inside: &str) -> PathBuf {
        self.0.path().join(inside.trim_start_matches('/'))
    }

    /// `chroot DIR /qemu-aarch64-static /docker-credential-gitlab ARGS`, with exactly `env`.
    fn run(&self, env: &[(&str, &str)], args: &[&str], stdin: &[u8]) -> Output {
        let (qemu, bin) = (format!("/{QEMU}"), format!("/{NAME}"));
        let argv = [&[qemu.as_str(), bin.as_str()][..], args].concat();
        chroot::run(self.0.path(), &argv, env, stdin)
    }
}

/// The helper in the root on the `file` store under `/tmp/data`, as a headless server.
struct FileStore(Root);

impl Helper for FileStore {
    fn run_helper(&self, args: &[&str], stdin: &[u8]) -> Output {
        self.0.run(FILE_STORE_ENV, args, stdin)
    }
}

impl FileStore {
    /// The secret the store's file holds for `host`, read from outside the chroot.
    fn lookup(&self, host: &str) -> Option<String> {
        let bytes = std::fs::read(self.0.path("/tmp/data/secrets.json")).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["secrets"][host].as_str().map(str::to_owned)
    }
}

#[test]
fn the_static_arm64_binary_is_a_static_aarch64_elf_of_this_version() {
    let Some(bin) = static_arm64() else { return };
    if !have_tool("file") {
        return;
    }
    let says = file_says(&bin);
    assert!(says.contains("ARM aarch64"), "{says}");
    assert!(says.contains("statically linked"), "{says}");
    let Some(root) = Root::new(&bin) else { return };
    let out = root.run(&[], &["version"], b"");
    assert_success(&out, "version under qemu");
    assert_eq!(stdout(&out), version_line());
}

#[test]
fn the_protocol_suite_passes_on_the_file_store_under_qemu_in_an_empty_chroot() {
    let Some(bin) = static_arm64() else { return };
    let Some(root) = Root::new(&bin) else { return };
    let helper = FileStore(root);
    conformance::vectors(&helper, &|host| helper.lookup(host));
    conformance::argv(&helper);
    let mode = |p: &str| {
        std::fs::metadata(helper.0.path(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("/tmp/data"), 0o700, "data dir mode");
    assert_eq!(mode("/tmp/data/secrets.json"), 0o600, "secrets.json mode");
}

#[test]
fn gitlab_ci_mode_serves_the_job_credentials_under_qemu() {
    let Some(bin) = static_arm64() else { return };
    let Some(root) = Root::new(&bin) else { return };
    let env = CI_JOB_ENV;
    let out = root.run(env, &["list"], b"");
    assert_success(&out, "list");
    assert_eq!(
        stdout(&out),
        "{\"registry.example.com\":\"gitlab-ci-token\"}\n"
    );
    let out = root.run(env, &["get"], b"registry.example.com");
    assert_success(&out, "get");
    assert_eq!(
        stdout(&out),
        concat!(
            r#"{"ServerURL":"registry.example.com","Username":"gitlab-ci-token","#,
            r#""Secret":"job-secret-1"}"#,
            "\n"
        )
    );
    let out = root.run(env, &["get"], b"other.example.com");
    assert_eq!(
        (out.status.code(), stdout(&out)),
        (Some(1), NOT_FOUND.to_owned())
    );
}

/// The lines `program ARGS FILE` prints, sorted.
fn listing(program: &str, args: &[&str], file: &Path) -> Vec<String> {
    let out = Command::new(program).args(args).arg(file).output().unwrap();
    assert_success(&out, program);
    let mut lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn the_arm64_archive_is_laid_out_like_the_x86_64_one_and_every_file_is_summed() {
    let Some(release) = release_dir() else { return };
    let version = env!("CARGO_PKG_VERSION");
    let arm64 = release_archive(&release, ARM64);
    let x86_64 = release_archive(&release, "x86_64-unknown-linux-musl");
    let x86_64_names: Vec<String> = listing("tar", &["-tzf"], &x86_64)
        .into_iter()
        .map(|l| l.replace("x86_64-unknown-linux-musl", ARM64))
        .collect();
    assert_eq!(listing("tar", &["-tzf"], &arm64), x86_64_names);

    // Its own SHA256SUMS covers every file in it, and holds.
    let dir = tempfile::tempdir().unwrap();
    let unpacked = unpack(&arm64, dir.path());
    let out = sha256sum_check(&unpacked);
    assert_success(&out, "sha256sum --check inside the archive");
    let summed = stdout(&out).lines().count();
    let files = x86_64_names.iter().filter(|n| !n.ends_with('/')).count();
    assert_eq!(summed + 1, files, "every file but SHA256SUMS is summed");
    if have_tool("file") {
        let says = file_says(&unpacked.join(NAME));
        assert!(says.contains("ARM aarch64") && says.contains("statically linked"));
    }

    // The release's one SHA256SUMS covers the three arm64 files.
    let sums = std::fs::read_to_string(release.join("SHA256SUMS")).unwrap();
    for name in [
        format!("{NAME}-{version}-{ARM64}.tar.gz"),
        format!("{NAME}_{version}-1_arm64.deb"),
        format!("{NAME}-{version}-1.aarch64.rpm"),
    ] {
        assert!(release.join(&name).is_file(), "no {name}");
        assert!(
            sums.contains(&format!("  {name}\n")),
            "{name} not in SHA256SUMS"
        );
    }
}

#[test]
fn the_arm64_deb_holds_the_x86_64_debs_files_and_its_binary_runs_under_qemu() {
    let Some(release) = release_dir() else { return };
    if !have_tool("dpkg-deb") {
        return;
    }
    let deb = release_file(&release, "_arm64.deb");
    let out = Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .output()
        .unwrap();
    assert_success(&out, "dpkg-deb -I");
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.trim() == "Architecture: arm64"),
        "{}",
        stdout(&out)
    );
    // The paths (the last column of dpkg-deb -c), as in the amd64 .deb.
    let paths = |deb: &Path| -> Vec<String> {
        listing("dpkg-deb", &["-c"], deb)
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let amd64 = release_file(&release, "_amd64.deb");
    assert_eq!(paths(&deb), paths(&amd64));

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir.path())
        .output()
        .unwrap();
    assert_success(&out, "dpkg-deb -x");
    let bin = dir.path().join("usr/bin").join(NAME);
    if have_tool("file") {
        let says = file_says(&bin);
        assert!(says.contains("ARM aarch64") && says.contains("statically linked"));
    }
    let Some(root) = Root::new(&bin) else { return };
    let out = root.run(&[], &["version"], b"");
    assert_success(&out, "the .deb's binary under qemu");
    assert_eq!(stdout(&out), version_line());
}

#[test]
fn the_arm64_rpm_is_aarch64_with_the_x86_64_rpms_files() {
    let Some(release) = release_dir() else { return };
    if !have_tool("rpm") {
        return;
    }
    let rpm = release_file(&release, ".aarch64.rpm");
    assert_eq!(
        listing("rpm", &["-qp", "--qf", "%{ARCH}"], &rpm),
        ["aarch64"]
    );
    let x86_64 = release_file(&release, ".x86_64.rpm");
    assert_eq!(
        listing("rpm", &["-qpl"], &rpm),
        listing("rpm", &["-qpl"], &x86_64)
    );
}

/// `dash install.sh ARGS` (or an unpacked archive's install.sh).
fn install_sh(script: &Path, args: &[&str]) -> Output {
    Command::new("dash")
        .arg(script)
        .args(args)
        .env_remove("XDG_BIN_HOME")
        .output()
        .unwrap()
}

/// The arm64 archive alone in a directory with a SHA256SUMS listing just it, as after a
/// download; also unpacked there. `None` (skip) when the release files or dash are missing
/// outside CI, or this machine is not x86_64.
struct Downloaded {
    dir: tempfile::TempDir,
    archive: PathBuf,
    unpacked: PathBuf,
}

impl Downloaded {
    fn new() -> Option<Downloaded> {
        let release = release_dir()?;
        if !have_tool("dash") {
            return None;
        }
        let machine = Command::new("uname").arg("-m").output().unwrap();
        if stdout(&machine) != "x86_64\n" {
            skip(
                "this machine is not x86_64",
                "these tests refuse arm64 on x86_64",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let downloads = dir.path().join("downloads");
        std::fs::create_dir(&downloads).unwrap();
        let source = release_archive(&release, ARM64);
        let file = source.file_name().unwrap().to_str().unwrap().to_owned();
        let archive = downloads.join(&file);
        std::fs::copy(&source, &archive).unwrap();
        let sums = std::fs::read_to_string(release.join("SHA256SUMS")).unwrap();
        let line = sums
            .lines()
            .find(|l| l.ends_with(&format!("  {file}")))
            .expect("the arm64 archive in SHA256SUMS");
        std::fs::write(downloads.join("SHA256SUMS"), format!("{line}\n")).unwrap();
        let unpacked = unpack(&archive, dir.path());
        Some(Downloaded {
            dir,
            archive,
            unpacked,
        })
    }

    fn prefix(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

#[test]
fn install_sh_refuses_the_arm64_archive_on_x86_64_in_one_line() {
    let Some(d) = Downloaded::new() else { return };
    let prefix = d.prefix("prefix");
    let p = prefix.to_str().unwrap();
    let downloads = d.archive.parent().unwrap().to_str().unwrap();
    let cases: [(&str, PathBuf, Vec<&str>); 3] = [
        (
            "--archive FILE",
            INSTALL_SH.into(),
            vec!["--archive", d.archive.to_str().unwrap(), "--prefix", p],
        ),
        (
            "--archive DIR",
            INSTALL_SH.into(),
            vec!["--archive", downloads, "--prefix", p],
        ),
        (
            "the unpacked archive's install.sh",
            d.unpacked.join("install.sh"),
            vec!["--prefix", p],
        ),
    ];
    for (what, script, args) in cases {
        let out = install_sh(&script, &args);
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{what}: {}", stdout(&out));
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(
            err.contains("aarch64") && err.contains("this machine is x86_64"),
            "{what}: {err}"
        );
        assert!(!prefix.exists(), "{what}: something was installed");
    }
}

#[test]
fn install_sh_with_arch_aarch64_installs_the_arm64_binary_which_runs_under_qemu() {
    let Some(d) = Downloaded::new() else { return };
    let downloads = d.archive.parent().unwrap().to_str().unwrap().to_owned();
    let cases: [(&str, PathBuf, Vec<&str>); 3] = [
        (
            "file",
            INSTALL_SH.into(),
            vec![
                "--archive",
                d.archive.to_str().unwrap(),
                "--arch",
                "aarch64",
            ],
        ),
        (
            "dir",
            INSTALL_SH.into(),
            vec!["--archive", &downloads, "--arch", "arm64"],
        ),
        (
            "unpacked",
            d.unpacked.join("install.sh"),
            vec!["--arch", "aarch64"],
        ),
    ];
    for (what, script, args) in cases {
        let prefix = d.prefix(what);
        let p = prefix.to_str().unwrap();
        let out = install_sh(&script, &[&args[..], &["--prefix", p]].concat());
        assert_success(&out, what);
        assert!(
            stdout(&out).contains("for aarch64"),
            "{what}: {}",
            stdout(&out)
        );
        let bin = prefix.join("bin").join(NAME);
        assert!(
            prefix
                .join("share/man/man1/docker-credential-gitlab.1")
                .is_file()
        );
        if have_tool("file") {
            assert!(file_says(&bin).contains("ARM aarch64"), "{what}");
        }
        let Some(root) = Root::new(&bin) else { return };
        let out = root.run(&[], &["version"], b"");
        assert_success(&out, what);
        assert_eq!(stdout(&out), version_line(), "{what}");
    }

    // --configure would run the arm64 binary here: refused before installing anything.
    let prefix = d.prefix("configure");
    let args = [
        "--archive",
        d.archive.to_str().unwrap(),
        "--arch",
        "aarch64",
        "--configure",
        "registry.example.com",
        "--prefix",
        prefix.to_str().unwrap(),
    ];
    let out = install_sh(Path::new(INSTALL_SH), &args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(!prefix.exists());
}

#[test]
fn install_sh_archive_dir_installs_this_machines_static_build() {
    let Some(release) = release_dir() else { return };
    if !have_tool("dash") || !have_tool("file") {
        return;
    }
    let machine = stdout(&Command::new("uname").arg("-m").output().unwrap());
    if machine != "x86_64\n" {
        skip(
            "this machine is not x86_64",
            "this test installs the x86_64 build",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    let release_s = release.to_str().unwrap();
    let out = install_sh(
        Path::new(INSTALL_SH),
        &["--archive", release_s, "--prefix", prefix.to_str().unwrap()],
    );
    assert_success(&out, "install.sh --archive DIR");
    let musl = format!(
        "{NAME}-{}-x86_64-unknown-linux-musl.tar.gz",
        env!("CARGO_PKG_VERSION")
    );
    assert!(stdout(&out).contains(&musl), "{}", stdout(&out));
    let bin = prefix.join("bin").join(NAME);
    let says = file_says(&bin);
    // The x86_64 musl build is static-pie ("static-pie linked").
    assert!(says.contains("x86-64") && says.contains("static"), "{says}");
    let out = Command::new(&bin).arg("version").output().unwrap();
    assert_eq!(stdout(&out), version_line());

    // An architecture that no release has is one line, nothing installed.
    let prefix = dir.path().join("other");
    let out = install_sh(
        Path::new(INSTALL_SH),
        &[
            "--archive",
            release_s,
            "--arch",
            "sparc64",
            "--prefix",
            prefix.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("sparc64"), "{}", stderr(&out));
    assert!(!prefix.exists());
}
