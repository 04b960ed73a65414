//! The credential-helper protocol suite (reference §C7), one body for every way of running
//! the binary: natively on each backend (`tests/protocol.rs`) and as the Windows build
//! under wine on its Credential Manager (`tests/windows.rs`).

use std::process::Output;

use super::{Session, assert_success, stdout};

pub const GITLAB: &str = "registry.gitlab.example";

/// How a test looks into a backend behind the binary's back.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A way of running the helper with arguments and stdin.
pub trait Helper {
    fn run_helper(&self, args: &[&str], stdin: &[u8]) -> Output;

    fn helper(&self, args: &[&str], stdin: impl AsRef<[u8]>) -> Output
    where
        Self: Sized,
    {
        self.run_helper(args, stdin.as_ref())
    }
}

impl Helper for Session {
    fn run_helper(&self, args: &[&str], stdin: &[u8]) -> Output {
        Session::helper(self, args, stdin)
    }
}

/// Store, get in every spelling, list, replace, erase twice: the exact bytes each time.
pub fn vectors<H: Helper>(s: &H, lookup: Lookup<'_>) {
    // Miss: the exact sentinel on stdout, exit 1, silent stderr.
    let out = s.helper(&["get"], "registry.example.org");
    assert_eq!(stdout(&out), "credentials not found in native keychain\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.is_empty());

    // Empty list is `{}`.
    let out = s.helper(&["list"], "unused");
    assert_success(&out, "list");
    assert_eq!(stdout(&out), "{}\n");

    // docker CLI's store payload (JSON + newline).
    let out = s.helper(
        &["store"],
        format!(
            "{{\"ServerURL\":\"{GITLAB}\",\"Username\":\"alice\",\"Secret\":\"glpat-vector\"}}\n"
        ),
    );
    assert_success(&out, "store");
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    assert_eq!(lookup(GITLAB).as_deref(), Some("glpat-vector"));

    // Hit: the server string is echoed as received (trimmed), byte-exact JSON.
    let out = s.helper(&["get"], GITLAB);
    assert_success(&out, "get");
    assert_eq!(
        stdout(&out),
        format!(
            "{{\"ServerURL\":\"{GITLAB}\",\"Username\":\"alice\",\"Secret\":\"glpat-vector\"}}\n"
        )
    );
    assert!(out.stderr.is_empty());

    // Every spelling finds the same entry, and is echoed back as sent.
    for spelling in [
        format!("https://{GITLAB}/"),
        format!("http://{GITLAB}/v2/"),
        format!("{GITLAB}/group/project"),
        GITLAB.to_uppercase(),
        format!("{GITLAB}\n"),
        format!("  {GITLAB}  "),
    ] {
        let out = s.helper(&["get"], &spelling);
        assert_success(&out, &spelling);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["ServerURL"], spelling.trim(), "{spelling:?}");
        assert_eq!(v["Secret"], "glpat-vector");
    }
    // A different port is a different registry.
    let out = s.helper(&["get"], format!("{GITLAB}:5050"));
    assert_eq!(stdout(&out), "credentials not found in native keychain\n");

    let out = s.helper(&["list"], "unused");
    assert_eq!(stdout(&out), format!("{{\"{GITLAB}\":\"alice\"}}\n"));

    // docker-py's payload: spaces, no newline, replaces the secret.
    let out = s.helper(
        &["store"],
        format!("{{\"ServerURL\": \"https://{GITLAB}\", \"Username\": \"bob\", \"Secret\": \"glpat-two\"}}"),
    );
    assert_success(&out, "store docker-py");
    let v: serde_json::Value = serde_json::from_slice(&s.helper(&["get"], GITLAB).stdout).unwrap();
    assert_eq!(
        (v["Username"].as_str(), v["Secret"].as_str()),
        (Some("bob"), Some("glpat-two"))
    );

    // Erase, then erase again (absent): both succeed silently.
    for _ in 0..2 {
        let out = s.helper(&["erase"], format!("https://{GITLAB}"));
        assert_success(&out, "erase");
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
    }
    assert_eq!(
        stdout(&s.helper(&["get"], GITLAB)),
        "credentials not found in native keychain\n"
    );
    assert_eq!(stdout(&s.helper(&["list"], "")), "{}\n");
    assert_eq!(lookup(GITLAB), None);
}

/// The argv contract: version, the usage line, unknown actions, --help.
pub fn argv<H: Helper>(s: &H) {
    let version = format!(
        "docker-credential-gitlab (gitlab.com/docker-credential-gitlab/docker-credential-gitlab) v{}\n",
        env!("CARGO_PKG_VERSION")
    );
    for args in [&["version"][..], &["-v"], &["--version"]] {
        let out = s.helper(args, "");
        assert_success(&out, "version");
        assert_eq!(stdout(&out), version);
    }
    let usage = "Usage: docker-credential-gitlab <store|get|erase|list|version>\n";
    for args in [
        &[][..],
        &["get", "extra-arg"],
        &["get", "list"],
        &["store", "--force"],
    ] {
        let out = s.helper(args, "");
        assert_eq!(stdout(&out), usage, "{args:?}");
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stderr.is_empty());
    }
    let out = s.helper(&["frobnicate"], "");
    assert_eq!(
        stdout(&out),
        "docker-credential-gitlab: unknown action: frobnicate\n"
    );
    assert_eq!(out.status.code(), Some(1));

    for flag in ["-h", "--help"] {
        let out = s.helper(&[flag], "");
        assert_success(&out, flag);
        let text = stdout(&out);
        assert!(text.contains("Usage:") && text.contains("store") && text.contains("get"));
        assert!(text.contains("DOCKER_CREDENTIAL_GITLAB_STORE"));
    }
}
