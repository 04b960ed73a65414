//! The Windows build, run under wine: the protocol suite against the Windows Credential
//! Manager (wine's own `CredWriteW`/`CredReadW`), the same version as the native build, and
//! no secret in plain text anywhere in the Windows profile.
//!
//! `scripts/build-windows.sh` cross-builds the `.exe` and prints its path; set
//! `DOCKER_CREDENTIAL_GITLAB_WINDOWS_EXE` to it (`./scripts/test.sh` does). Each test gets a
//! fresh wine prefix with its own wineserver, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::conformance::{self, GITLAB, Helper};
use crate::support::{BIN, assert_success, have_tool, stdout};

const WINE: &str = "/usr/lib/wine/wine64";
/// Debian's `wineserver` wrapper always adds `-p0`; the real one can stay up between calls.
const WINESERVER: &str = "/usr/lib/wine/wineserver64";

struct Wine {
    prefix: tempfile::TempDir,
    dir: PathBuf,
}

impl Wine {
    /// A fresh, initialised prefix. `None` (skip) outside CI when the build or wine is
    /// missing; panics in CI.
    fn start() -> Option<Wine> {
        let Some(exe) = std::env::var_os("DOCKER_CREDENTIAL_GITLAB_WINDOWS_EXE") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "DOCKER_CREDENTIAL_GITLAB_WINDOWS_EXE is not set: run ./scripts/test.sh, \
                 which runs scripts/build-windows.sh first"
            );
            eprintln!(
                "SKIPPED: DOCKER_CREDENTIAL_GITLAB_WINDOWS_EXE is not set (CI would fail here)"
            );
            return None;
        };
        if !have_tool(WINE) {
            return None;
        }
        let wine = Wine {
            prefix: tempfile::tempdir().unwrap(),
            dir: Path::new(&exe).parent().unwrap().to_path_buf(),
        };
        std::fs::create_dir(wine.prefix.path().join("pfx")).unwrap();
        // The server first, so wineboot and every later call share it (~50 ms a call
        // instead of ~700 ms).
        // Both leave daemons behind that would hold a captured stdout open: no pipes.
        for args in [&[WINESERVER, "-p"][..], &[WINE, "wineboot", "-i"]] {
            let status = wine
                .env(&mut Command::new(args[0]))
                .args(&args[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "{args:?}: {status}");
        }
        Some(wine)
    }

    /// Nothing of the developer's environment; no display, no CI variables.
    fn env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.prefix.path())
            .env("WINEPREFIX", self.prefix.path().join("pfx"))
            .env("WINEARCH", "win64")
            .env("WINEDEBUG", "-all")
            // No Mono/Gecko installer dialogs, no desktop menu entries.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=;winemenubuilder.exe=d")
    }

    fn exe(&self) -> PathBuf {
        self.dir.join("docker-credential-gitlab.exe")
    }

    /// The credential's blob as the Credential Manager holds it, decoded.
    fn lookup(&self, host: &str) -> Option<String> {
        let out = self
            .env(&mut Command::new(WINE))
            .arg(self.dir.join("credread.exe"))
            .arg(format!("{host}.docker-credential-gitlab"))
            .output()
            .unwrap();
        if out.status.code() == Some(1) {
            return None;
        }
        assert_success(&out, "credread");
        let hex = stdout(&out);
        let bytes: Vec<u8> = (0..hex.trim().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        // UTF-16LE, as Windows' own tools (and its Credential Manager UI) store passwords.
        assert!(bytes.len().is_multiple_of(2), "not UTF-16: {hex}");
        let units: Vec<u16> = bytes
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Some(String::from_utf16(&units).expect("a UTF-16 blob"))
    }

    /// Stops the wineserver, which writes the registry to disk.
    fn flush(&self) {
        for flag in ["-k", "-w"] {
            let _ = self
                .env(&mut Command::new(WINESERVER))
                .arg(flag)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Helper for Wine {
    fn run_helper(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .env(&mut Command::new(WINE))
            .arg(self.exe())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(stdin);
        child.wait_with_output().unwrap()
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        self.flush();
    }
}

#[test]
fn the_protocol_suite_passes_on_the_windows_credential_manager() {
    let Some(wine) = Wine::start() else { return };
    let out = wine.helper(&["status"], "");
    assert_success(&out, "status");
    assert!(
        stdout(&out).contains("Secret store: wincred"),
        "{}",
        stdout(&out)
    );
    conformance::vectors(&wine, &|h| wine.lookup(h));
    conformance::argv(&wine);
}

#[test]
fn the_windows_build_is_the_same_version_and_keeps_no_secret_in_plain_text() {
    let Some(wine) = Wine::start() else { return };
    let native = Command::new(BIN).arg("version").output().unwrap();
    let windows = wine.helper(&["version"], "");
    assert_success(&windows, "version");
    assert_eq!(stdout(&windows), stdout(&native));

    let secret = "glpat-plain-text-canary";
    let out = wine.helper(
        &["store"],
        format!(r#"{{"ServerURL":"{GITLAB}","Username":"alice","Secret":"{secret}"}}"#),
    );
    assert_success(&out, "store");
    assert_eq!(wine.lookup(GITLAB).as_deref(), Some(secret));
    wine.flush();
    // The registry files and the user's profile (state file, AppData) hold no copy of it,
    // neither as UTF-8 nor as UTF-16.
    let utf16: Vec<u8> = secret.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let pfx = wine.prefix.path().join("pfx");
    let mut files: Vec<PathBuf> = ["user.reg", "system.reg", "userdef.reg"]
        .iter()
        .map(|f| pfx.join(f))
        .collect();
    files.extend(walk(&pfx.join("drive_c/users")));
    assert!(files.len() > 3, "{files:?}");
    assert!(
        std::fs::read_to_string(pfx.join("user.reg"))
            .unwrap()
            .contains("Credential Manager")
    );
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for needle in [secret.as_bytes(), &utf16] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "the secret is in {}",
                f.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_symlink() {
            continue;
        }
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
