//! The distribution packages `packaging/release.sh` builds (see `support::release_dir`): the
//! `.deb` installs with dpkg, runs, has its man page and completions, and `dpkg -r` takes it
//! all away again; the `.rpm` holds the same files; the bash completion loads; the Homebrew
//! formula and the Scoop manifest name this release's files and checksums.

use std::path::Path;
use std::process::Command;

use crate::support::{
    assert_success, have_tool, release_dir, release_file, sha256sum_check, stdout,
};

const NAME: &str = "docker-credential-gitlab";

/// The files both packages install (the .deb adds its Debian copyright file).
const FILES: &[&str] = &[
    "/usr/bin/docker-credential-gitlab",
    "/usr/share/bash-completion/completions/docker-credential-gitlab",
    "/usr/share/doc/docker-credential-gitlab/README.md",
    "/usr/share/fish/vendor_completions.d/docker-credential-gitlab.fish",
    "/usr/share/man/man1/docker-credential-gitlab.1",
];

/// Removes the package again even when an assertion failed half way.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-r", NAME]).output();
    }
}

#[test]
fn the_deb_installs_runs_and_removes_cleanly() {
    let Some(release) = release_dir() else { return };
    if !have_tool("dpkg") || !have_tool("man") {
        return;
    }
    let uid = Command::new("id").arg("-u").output().unwrap();
    if stdout(&uid) != "0\n" {
        assert!(std::env::var_os("CI").is_none(), "dpkg -i needs root");
        eprintln!("SKIPPED: dpkg -i needs root (CI would fail here)");
        return;
    }
    let deb = release_file(&release, "_amd64.deb");
    let listed = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    assert_success(&listed, "dpkg-deb -c");
    for f in FILES
        .iter()
        .chain(&["/usr/share/zsh/vendor-completions/_docker-credential-gitlab"])
    {
        assert!(
            stdout(&listed).contains(&format!(".{f}\n")),
            "{f} not in the .deb"
        );
    }

    let _installed = Installed;
    let out = Command::new("dpkg").arg("-i").arg(&deb).output().unwrap();
    assert_success(&out, "dpkg -i");
    let version = Command::new(format!("/usr/bin/{NAME}"))
        .arg("version")
        .output()
        .unwrap();
    assert_success(&version, "version");
    assert!(
        stdout(&version).contains(&format!("v{}", env!("CARGO_PKG_VERSION"))),
        "{}",
        stdout(&version)
    );
    let man = Command::new("man").args(["-w", NAME]).output().unwrap();
    assert_success(&man, "man -w");
    assert_eq!(
        stdout(&man).trim(),
        "/usr/share/man/man1/docker-credential-gitlab.1"
    );
    // The installed bash completion parses and registers itself for the command.
    let completion = "/usr/share/bash-completion/completions/docker-credential-gitlab";
    let out = Command::new("bash")
        .args(["-n", completion])
        .output()
        .unwrap();
    assert_success(&out, "bash -n");
    let out = Command::new("bash")
        .args(["-c", &format!("source {completion} && complete -p {NAME}")])
        .output()
        .unwrap();
    assert_success(&out, "complete -p");
    assert!(
        stdout(&out).contains("-F _docker__credential__gitlab"),
        "{}",
        stdout(&out)
    );

    let out = Command::new("dpkg").args(["-r", NAME]).output().unwrap();
    assert_success(&out, "dpkg -r");
    for f in FILES {
        assert!(!Path::new(f).exists(), "{f} is left after dpkg -r");
    }
}

#[test]
fn the_rpm_holds_the_same_files() {
    let Some(release) = release_dir() else { return };
    if !have_tool("rpm") {
        return;
    }
    let rpm = release_file(&release, ".x86_64.rpm");
    let out = Command::new("rpm").arg("-qpl").arg(&rpm).output().unwrap();
    assert_success(&out, "rpm -qpl");
    let mut expected: Vec<&str> = FILES.to_vec();
    expected.extend([
        "/usr/share/licenses/docker-credential-gitlab/LICENSE-APACHE",
        "/usr/share/licenses/docker-credential-gitlab/LICENSE-MIT",
        "/usr/share/zsh/site-functions/_docker-credential-gitlab",
    ]);
    expected.sort();
    let mut listed: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    listed.sort();
    assert_eq!(listed, expected);

    let out = Command::new("rpm")
        .args(["-qp", "--queryformat", "%{NAME} %{VERSION} %{LICENSE}"])
        .arg(&rpm)
        .output()
        .unwrap();
    assert_success(&out, "rpm -qp");
    assert_eq!(
        stdout(&out),
        format!("{NAME} {} MIT OR Apache-2.0", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn every_release_file_is_listed_in_sha256sums() {
    let Some(release) = release_dir() else { return };
    let sums = std::fs::read_to_string(release.join("SHA256SUMS")).unwrap();
    let out = sha256sum_check(&release);
    assert_success(&out, "sha256sum --check");
    for suffix in [
        "-x86_64-unknown-linux-gnu.tar.gz",
        "-x86_64-unknown-linux-musl.tar.gz",
        "-x86_64-pc-windows-gnu.zip",
        &format!("-{}.tar.gz", env!("CARGO_PKG_VERSION")),
        "_amd64.deb",
        ".x86_64.rpm",
    ] {
        let file = release_file(&release, suffix);
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            sums.contains(&format!("  {name}\n")),
            "{name} not in SHA256SUMS"
        );
    }
}

/// The SHA-256 that `SHA256SUMS` lists for `name`.
fn listed_sha256(release: &Path, name: &str) -> String {
    let sums = std::fs::read_to_string(release.join("SHA256SUMS")).unwrap();
    sums.lines()
        .find_map(|l| l.strip_suffix(&format!("  {name}")))
        .unwrap_or_else(|| panic!("{name} not in SHA256SUMS"))
        .to_owned()
}

#[test]
fn the_homebrew_formula_builds_this_source_archive() {
    let Some(release) = release_dir() else { return };
    let version = env!("CARGO_PKG_VERSION");
    let source = format!("{NAME}-{version}.tar.gz");
    let formula = std::fs::read_to_string(release.join(format!("{NAME}.rb"))).unwrap();
    assert!(!formula.contains('@'), "unfilled placeholder:\n{formula}");
    assert!(
        formula.contains(&format!("/v{version}/downloads/{source}\"")),
        "{formula}"
    );
    let sha = listed_sha256(&release, &source);
    assert!(formula.contains(&format!("sha256 \"{sha}\"")), "{formula}");
    assert!(formula.contains("test do"), "{formula}");
    if have_tool("ruby") {
        let out = Command::new("ruby")
            .arg("-c")
            .arg(release.join(format!("{NAME}.rb")))
            .output()
            .unwrap();
        assert_success(&out, "ruby -c");
    }
    // What `cargo install` needs: the workspace, its lock file, and the emulator crate the
    // workspace names.
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(release.join(&source))
        .output()
        .unwrap();
    assert_success(&out, "tar -t");
    for f in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "crates/gitlab-emulator/Cargo.toml",
        "LICENSE-MIT",
    ] {
        let path = format!("{NAME}-{version}/{f}\n");
        assert!(stdout(&out).contains(&path), "{f} not in {source}");
    }
}

#[test]
fn the_scoop_manifest_installs_the_windows_zip() {
    let Some(release) = release_dir() else { return };
    let version = env!("CARGO_PKG_VERSION");
    let zip = format!("{NAME}-{version}-x86_64-pc-windows-gnu.zip");
    let text = std::fs::read_to_string(release.join(format!("{NAME}.json"))).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(manifest["version"], version);
    let arch = &manifest["architecture"]["64bit"];
    assert!(
        arch["url"].as_str().unwrap().ends_with(&format!("/{zip}")),
        "{arch}"
    );
    assert_eq!(arch["hash"], listed_sha256(&release, &zip));
    // The zip holds the .exe where `extract_dir` and `bin` say.
    let inside = format!(
        "{}/{}",
        arch["extract_dir"].as_str().unwrap(),
        manifest["bin"].as_str().unwrap()
    );
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))",
        ])
        .arg(release.join(&zip))
        .output()
        .unwrap();
    assert_success(&out, "zip listing");
    assert!(
        stdout(&out).lines().any(|l| l == inside),
        "{inside} not in {zip}: {}",
        stdout(&out)
    );
}
