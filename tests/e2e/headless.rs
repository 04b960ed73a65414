//! Headless machines and CI jobs without a keychain: the `file` store, `auto`'s fallback
//! to it inside CI only, and store switches that never lose an entry silently.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::*;

const HOST: &str = "registry.headless.example";

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn stored_in(s: &Session, host: &str) -> String {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.state_path()).unwrap()).unwrap();
    state["entries"][host]["store"].as_str().unwrap().to_owned()
}

#[test]
fn inside_ci_auto_falls_back_to_the_file_store_and_says_why() {
    let mut s = Session::without_bus();
    s.extra_env.push(("CI".into(), "true".into()));
    s.store(HOST, "ci-user", "glpat-in-ci");
    assert_eq!(stored_in(&s, HOST), "file");
    assert_eq!(s.file_store_lookup(HOST).as_deref(), Some("glpat-in-ci"));
    assert_eq!(mode(&s.secrets_path()), 0o600);
    // The state file holds no secret.
    assert!(
        !std::fs::read_to_string(s.state_path())
            .unwrap()
            .contains("glpat-in-ci")
    );

    let out = s.helper(&["get"], HOST);
    assert_success(&out, "get from the file store");
    assert!(stdout(&out).contains("\"Secret\":\"glpat-in-ci\""));

    let out = s.helper(&["status"], "");
    assert_success(&out, "status");
    let text = stdout(&out);
    assert!(
        text.contains("Secret store: file (auto: this is a CI job and no keychain is usable"),
        "{text}"
    );
    assert!(!text.contains("glpat-in-ci"), "{text}");

    // GITLAB_CI=true counts as CI too.
    let mut s = Session::without_bus();
    s.extra_env.push(("GITLAB_CI".into(), "true".into()));
    s.store(HOST, "ci-user", "glpat-in-gitlab-ci");
    assert_eq!(stored_in(&s, HOST), "file");
}

#[test]
fn explicit_file_store_outside_ci_is_named_in_status() {
    let s = Session::file_store();
    s.store(HOST, "alice", "glpat-file");
    let text = stdout(&s.helper(&["status"], ""));
    assert!(
        text.contains("Secret store: file (DOCKER_CREDENTIAL_GITLAB_STORE=file)"),
        "{text}"
    );
    let out = s.helper(&["status", "--json"], "");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["store"], "file");
    assert_eq!(rows[0]["source"], "stored");
}

/// While stores rewrite the secrets file, a watcher lists the data directory over and
/// over: no file in it (temp files included) is ever readable by group or others.
#[test]
fn the_secrets_file_is_never_world_readable() {
    let s = Session::file_store();
    s.store(HOST, "alice", "glpat-0");
    let dir = s.data_dir();
    let done = AtomicBool::new(false);
    let seen = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut seen = 0usize;
            while !done.load(Ordering::Relaxed) {
                for e in std::fs::read_dir(&dir).unwrap().flatten() {
                    if let Ok(m) = e.metadata() {
                        let mode = m.permissions().mode() & 0o777;
                        assert_eq!(mode & 0o077, 0, "{:?} has mode {mode:o}", e.path());
                        seen += 1;
                    }
                }
            }
            seen
        });
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let s = &s;
                scope.spawn(move || {
                    for i in 0..5 {
                        s.store(
                            &format!("r{w}.headless.example"),
                            "u",
                            &format!("glpat-{i}"),
                        );
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        watcher.join().unwrap()
    });
    assert!(seen > 0);
    // Every writer's last secret survived the concurrent read-modify-writes.
    for w in 0..4 {
        assert_eq!(
            s.file_store_lookup(&format!("r{w}.headless.example"))
                .as_deref(),
            Some("glpat-4")
        );
    }
    assert_eq!(s.file_store_lookup(HOST).as_deref(), Some("glpat-0"));
}

/// An entry saved in the file store stays readable after the user gets a keyring, and
/// `status` says it lives elsewhere rather than hiding it.
#[test]
fn switching_stores_never_hides_an_entry() {
    let Some(mut s) = Session::unlocked() else {
        return;
    };
    s.extra_env
        .push(("DOCKER_CREDENTIAL_GITLAB_STORE".into(), "file".into()));
    s.store(HOST, "alice", "glpat-old-store");
    s.extra_env.clear();

    // auto now finds the Secret Service; the old entry is still served from the file.
    let out = s.helper(&["get"], HOST);
    assert_success(&out, "get after switching");
    assert!(stdout(&out).contains("glpat-old-store"));
    let text = stdout(&s.helper(&["status"], ""));
    assert!(
        text.contains("Secret store: secret-service (auto: the secret-service store answers)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "In another store than secret-service: {HOST} (file)"
        )),
        "{text}"
    );
    // A new login moves it: afterwards the file no longer holds it.
    s.store(HOST, "alice", "glpat-new-store");
    assert_eq!(stored_in(&s, HOST), "secret-service");
    assert_eq!(s.file_store_lookup(HOST), None);
    assert_eq!(
        s.secret_tool_lookup(HOST).as_deref(),
        Some("glpat-new-store")
    );
}
