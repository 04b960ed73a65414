//! The credential-helper protocol through the real binary, on each real backend: a real
//! Secret Service (gnome-keyring in a private D-Bus session) and the `file` store of a
//! headless machine. One suite, run per backend. Vectors from reference §C7.

use std::process::Command;

use crate::support::conformance::{self, GITLAB};
use crate::support::*;

#[test]
fn conformance_vectors_secret_service() {
    let Some(s) = Session::unlocked() else { return };
    if !have_tool("secret-tool") {
        return;
    }
    conformance::vectors(&s, &|h| s.secret_tool_lookup(h));
}

#[test]
fn conformance_vectors_file_store() {
    let s = Session::file_store();
    conformance::vectors(&s, &|h| s.file_store_lookup(h));
    // The file is private and holds nothing any more.
    assert_eq!(mode(&s.secrets_path()), 0o600);
    assert_eq!(mode(&s.data_dir()), 0o700);
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn argv_contract() {
    conformance::argv(&Session::without_bus());
}

#[test]
fn store_lands_in_the_real_keyring() {
    let Some(s) = Session::unlocked() else { return };
    if !have_tool("secret-tool") {
        return;
    }
    s.store("Registry.GitLab.example:5050", "alice", "glpat-in-keyring");
    // Filed under the canonical host, visible to any Secret Service client.
    assert_eq!(
        s.secret_tool_lookup("registry.gitlab.example:5050")
            .as_deref(),
        Some("glpat-in-keyring")
    );
    // The state file holds no secret and is private.
    let state = std::fs::read_to_string(s.state_path()).unwrap();
    assert!(!state.contains("glpat-in-keyring"));
    assert!(state.contains("\"store\": \"secret-service\""), "{state}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.state_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Deleting the item behind our back makes `get` a clean miss, not an error.
    let cleared = s.run(
        Command::new("secret-tool").args([
            "clear",
            "service",
            "docker-credential-gitlab",
            "username",
            "registry.gitlab.example:5050",
        ]),
        "",
    );
    assert_success(&cleared, "secret-tool clear");
    let out = s.helper(&["get"], "registry.gitlab.example:5050");
    assert_eq!(stdout(&out), "credentials not found in native keychain\n");
}

#[test]
fn locked_keyring_is_an_error_not_a_miss() {
    let Some(mut s) = Session::unlocked() else {
        return;
    };
    s.store(GITLAB, "alice", "glpat-locked");
    let state_before = read_opt(&s.state_path()).unwrap();
    s.relock();

    let start = std::time::Instant::now();
    let out = s.helper(&["get"], GITLAB);
    let line = assert_one_line_error(&out, "get from a locked keyring");
    assert!(line.contains("locked") && line.contains("unlock"), "{line}");
    assert!(!line.contains("not found"), "{line}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    let out = s.helper(
        &["store"],
        r#"{"ServerURL":"second.example","Username":"alice","Secret":"glpat-x"}"#,
    );
    let line = assert_one_line_error(&out, "store into a locked keyring");
    assert!(line.contains("locked"), "{line}");
    // A failed store records nothing.
    assert_eq!(read_opt(&s.state_path()).unwrap(), state_before);
}

#[test]
fn no_session_bus_fails_fast_with_the_fix() {
    let s = Session::without_bus();
    let start = std::time::Instant::now();
    let out = s.helper(
        &["store"],
        r#"{"ServerURL":"registry.gitlab.example","Username":"a","Secret":"glpat-x"}"#,
    );
    let line = assert_one_line_error(&out, "store without a bus");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // Never a silent plaintext file outside CI: the line names both ways out.
    assert!(line.contains("no keychain is usable"), "{line}");
    assert!(line.contains("secret-service"), "{line}");
    assert!(
        line.contains("DOCKER_CREDENTIAL_GITLAB_STORE=file")
            && line.contains("DOCKER_CREDENTIAL_GITLAB_STORE=keyutils"),
        "{line}"
    );
    assert!(!line.contains("glpat-x"), "{line}");
    assert!(!s.state_path().exists());
    assert!(!s.secrets_path().exists());

    // Choosing a store that cannot exist here names it.
    let mut s = s;
    let mut store_into = |store: &str, what: &str| {
        s.extra_env
            .push(("DOCKER_CREDENTIAL_GITLAB_STORE".into(), store.into()));
        let out = s.helper(
            &["store"],
            r#"{"ServerURL":"registry.gitlab.example","Username":"a","Secret":"glpat-x"}"#,
        );
        assert_one_line_error(&out, what)
    };
    let line = store_into("keychain", "store into keychain on linux");
    assert!(line.contains("keychain"), "{line}");
    let line = store_into("plaintext", "unknown store");
    assert!(
        line.contains("plaintext") && line.contains("secret-service") && line.contains("file"),
        "{line}"
    );

    // Reads of unknown hosts never touch a keychain, so they work without one.
    let out = s.helper(&["get"], "registry.gitlab.example");
    assert_eq!(stdout(&out), "credentials not found in native keychain\n");
    assert_success(&s.helper(&["list"], ""), "list without a bus");
    assert_success(
        &s.helper(&["erase"], "registry.gitlab.example"),
        "erase without a bus",
    );
}

/// At least 25 malformed inputs: one line on stdout, exit 1, no panic, and neither the
/// keyring file nor the state file changes by a single byte.
#[test]
fn bad_input_changes_nothing() {
    let Some(s) = Session::unlocked() else { return };
    s.store(GITLAB, "alice", "glpat-keep-me");
    let keyring_before = read_opt(&s.keyring_file()).expect("keyring file exists");
    let state_before = read_opt(&s.state_path()).expect("state file exists");

    let big = vec![b'a'; 1024 * 1024];
    let big_json = format!(
        r#"{{"ServerURL":"{GITLAB}","Username":"alice","Secret":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let cases: Vec<(&[&str], Vec<u8>)> = vec![
        (&["store"], b"".to_vec()),
        (&["store"], b"   \n\t ".to_vec()),
        (&["store"], b"not json".to_vec()),
        (&["store"], b"{".to_vec()),
        (&["store"], b"[]".to_vec()),
        (
            &["store"],
            br#"["registry.gitlab.example","alice","x"]"#.to_vec(),
        ),
        (&["store"], b"null".to_vec()),
        (&["store"], b"42".to_vec()),
        (&["store"], br#""registry.gitlab.example""#.to_vec()),
        (&["store"], b"{}".to_vec()),
        (&["store"], br#"{"Username":"alice","Secret":"x"}"#.to_vec()),
        (
            &["store"],
            br#"{"ServerURL":"","Username":"alice","Secret":"x"}"#.to_vec(),
        ),
        (
            &["store"],
            br#"{"ServerURL":"registry.gitlab.example","Secret":"x"}"#.to_vec(),
        ),
        (
            &["store"],
            br#"{"ServerURL":"registry.gitlab.example","Username":"","Secret":"x"}"#.to_vec(),
        ),
        (
            &["store"],
            br#"{"ServerURL":"registry.gitlab.example","Username":"alice"}"#.to_vec(),
        ),
        (
            &["store"],
            br#"{"ServerURL":"registry.gitlab.example","Username":"alice","Secret":""}"#.to_vec(),
        ),
        (
            &["store"],
            br#"{"ServerURL":7,"Username":"alice","Secret":"x"}"#.to_vec(),
        ),
        (
            &["store"],
            br#"{"ServerURL":"a b c","Username":"alice","Secret":"x"}"#.to_vec(),
        ),
        (
            &["store"],
            br#"{"ServerURL":"ftp://registry.gitlab.example","Username":"alice","Secret":"x"}"#
                .to_vec(),
        ),
        (
            &["store"],
            br#"{"ServerURL":"registry.gitlab.example","Username":"<token>","Secret":"x"}"#
                .to_vec(),
        ),
        (&["store"], big.clone()),
        (&["store"], big_json.into_bytes()),
        (
            &["store"],
            b"{\"ServerURL\":\"registry.gitlab.example\",\"Username\":\"a\0\",\"Secret\":\"x\"}"
                .to_vec(),
        ),
        (
            &["store"],
            b"{\"ServerURL\":\"r\xff\xfe\",\"Username\":\"a\",\"Secret\":\"x\"}".to_vec(),
        ),
        (&["get"], b"".to_vec()),
        (&["get"], b" \n ".to_vec()),
        (&["get"], b"registry.gitlab.example\0".to_vec()),
        (&["get"], b"\xff\xfe".to_vec()),
        (&["get"], big.clone()),
        (&["get"], b"host:99999".to_vec()),
        (&["get"], b"a b".to_vec()),
        (&["erase"], b"".to_vec()),
        (&["erase"], b"\xc3\x28".to_vec()),
        (&["erase"], big),
        (&["erase"], b"registry.gitlab.example:0".to_vec()),
        (&["frobnicate"], b"".to_vec()),
        (&["GET"], GITLAB.as_bytes().to_vec()),
        (&["get", "erase"], GITLAB.as_bytes().to_vec()),
        (&["erase", GITLAB], GITLAB.as_bytes().to_vec()),
        (&["store", "get"], b"{}".to_vec()),
    ];
    assert!(cases.len() >= 25);
    for (args, input) in &cases {
        let what = format!(
            "{args:?} with {:?}",
            String::from_utf8_lossy(&input[..input.len().min(60)])
        );
        let out = s.helper(args, input);
        let line = assert_one_line_error(&out, &what);
        assert!(
            !line.contains("glpat-keep-me"),
            "{what}: leaked the stored secret"
        );
        assert_ne!(
            line, "credentials not found in native keychain",
            "{what}: an input error is not a miss"
        );
    }
    assert_eq!(
        read_opt(&s.keyring_file()).unwrap(),
        keyring_before,
        "keyring changed"
    );
    assert_eq!(
        read_opt(&s.state_path()).unwrap(),
        state_before,
        "state file changed"
    );
    // And the stored credential is intact.
    let v: serde_json::Value = serde_json::from_slice(&s.helper(&["get"], GITLAB).stdout).unwrap();
    assert_eq!(v["Secret"], "glpat-keep-me");
}

#[test]
fn parallel_gets_and_stores_stay_consistent_secret_service() {
    let Some(s) = Session::unlocked() else { return };
    parallel_gets_and_stores_stay_consistent(&s);
}

#[test]
fn parallel_gets_and_stores_stay_consistent_file_store() {
    let s = Session::file_store();
    parallel_gets_and_stores_stay_consistent(&s);
    // Both registries' secrets survived the concurrent read-modify-writes.
    assert!(s.file_store_lookup("other.example").is_some());
}

/// 50 parallel `get`s while 2 `store`s run: every `get` sees one complete credential, and
/// the store and state file end consistent.
fn parallel_gets_and_stores_stay_consistent(s: &Session) {
    s.store(GITLAB, "alice", "glpat-first");
    s.store("other.example", "carol", "glpat-other");

    let secrets = ["glpat-first", "glpat-second", "glpat-third"];
    std::thread::scope(|scope| {
        let stores: Vec<_> = [("bob", "glpat-second"), ("dave", "glpat-third")]
            .into_iter()
            .map(|(user, secret)| scope.spawn(move || s.store(GITLAB, user, secret)))
            .collect();
        let gets: Vec<_> = (0..50)
            .map(|_| scope.spawn(|| s.helper(&["get"], GITLAB)))
            .collect();
        for g in gets {
            let out = g.join().unwrap();
            assert_success(&out, "parallel get");
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("torn answer {:?}: {e}", stdout(&out)));
            assert!(secrets.contains(&v["Secret"].as_str().unwrap()), "{v}");
            assert!(out.stderr.is_empty());
        }
        for st in stores {
            st.join().unwrap();
        }
    });

    // Final state: one entry per registry, username and secret from the same store call.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.state_path()).unwrap()).unwrap();
    assert_eq!(state["entries"].as_object().unwrap().len(), 2);
    let v: serde_json::Value = serde_json::from_slice(&s.helper(&["get"], GITLAB).stdout).unwrap();
    let pair = (
        v["Username"].as_str().unwrap(),
        v["Secret"].as_str().unwrap(),
    );
    assert!(
        pair == ("bob", "glpat-second") || pair == ("dave", "glpat-third"),
        "{pair:?}"
    );
    let other: serde_json::Value =
        serde_json::from_slice(&s.helper(&["get"], "other.example").stdout).unwrap();
    assert_eq!(other["Secret"], "glpat-other");
    let list: serde_json::Value = serde_json::from_slice(&s.helper(&["list"], "").stdout).unwrap();
    assert_eq!(list.as_object().unwrap().len(), 2);
}

/// gnome-keyring crashes (seen under heavy concurrent replaces) and the session starts it
/// again: a `get` that runs into the gap waits briefly and asks again instead of failing.
#[test]
fn a_keyring_that_crashes_and_comes_back_is_asked_again() {
    let Some(s) = Session::unlocked() else { return };
    s.store(GITLAB, "alice", "glpat-survives");
    let pid = s.keyring_pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = s.helper(&["get"], GITLAB);
    assert_success(&out, "get right after the keyring crashed");
    assert!(stdout(&out).contains("glpat-survives"), "{}", stdout(&out));
    assert_ne!(s.keyring_pid().to_string(), pid, "not restarted");
}

/// A Secret Service that takes the call and never answers (gnome-keyring stopped with
/// SIGSTOP: to the helper, the same as a prompt that waits forever) cannot hold `get` past
/// the store deadline: one line, exit 1, "did not answer", and the keyring is asked again
/// by the next run once it answers.
#[test]
fn a_keyring_that_never_answers_cannot_hold_get_past_the_deadline() {
    let Some(s) = Session::unlocked() else { return };
    s.store(GITLAB, "alice", "glpat-hung");
    let pid = s.keyring_pid().to_string();
    let signal = |sig: &str| {
        let status = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(status.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    let start = std::time::Instant::now();
    let out = s.helper(&["get"], GITLAB);
    let took = start.elapsed();
    signal("-CONT");
    let line = assert_one_line_error(&out, "get from a keyring that never answers");
    assert!(line.contains("did not answer within 5s"), "{line}");
    assert!(!line.contains("glpat-hung"), "{line}");
    assert!(
        took >= std::time::Duration::from_millis(4900) && took < std::time::Duration::from_secs(8),
        "get took {took:?}"
    );
    let out = s.helper(&["get"], GITLAB);
    assert_success(&out, "get once the keyring answers again");
    assert!(stdout(&out).contains("glpat-hung"), "{}", stdout(&out));
}

/// Issue 15: a host whose last label starts with a character of 3 or more bytes (U+FEFF,
/// U+202E, CJK) aborted the helper with no output. Bad input is one line and exit 1, like
/// every other bad input, on every verb that takes a server string.
#[test]
fn multi_byte_hosts_are_one_line_errors() {
    let s = Session::file_store();
    s.store(GITLAB, "alice", "glpat-keep-me");
    let state_before = read_opt(&s.state_path()).expect("state file exists");
    let secrets_before = read_opt(&s.secrets_path()).expect("secrets file exists");

    let cases: [(&str, &[u8]); 7] = [
        ("get", "registry.中文".as_bytes()),
        ("get", b"\xef\xbb\xbf%2F"),
        ("get", "registry.\u{202e}moc".as_bytes()),
        ("get", "registry.a中:5000/group".as_bytes()),
        ("erase", "registry.中文\n".as_bytes()),
        ("erase", b"https://\xef\xbb\xbf/v2/"),
        (
            "store",
            "{\"ServerURL\":\"registry.中文\",\"Username\":\"a\",\"Secret\":\"glpat-x\"}"
                .as_bytes(),
        ),
    ];
    for (verb, input) in cases {
        let what = format!("{verb} {:?}", String::from_utf8_lossy(input));
        let out = s.helper(&[verb], input);
        let line = assert_one_line_error(&out, &what);
        assert!(
            line.starts_with("invalid registry address"),
            "{what}: {line}"
        );
        assert!(!line.contains("glpat-"), "{what}: {line}");
    }
    assert_eq!(read_opt(&s.state_path()).unwrap(), state_before);
    assert_eq!(read_opt(&s.secrets_path()).unwrap(), secrets_before);
}

/// `--help` ends with the environment table: one variable per line, descriptions in one
/// column, at any terminal width (clap rewraps its own part, never this one).
#[test]
fn help_lists_each_environment_variable_on_one_aligned_line() {
    for columns in ["40", "80", "250"] {
        let out = Command::new(BIN)
            .arg("--help")
            .env("COLUMNS", columns)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8(out.stdout).unwrap();
        let block = text
            .split("\nEnvironment:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("no Environment block at {columns} columns:\n{text}"));
        let lines: Vec<&str> = block.lines().take_while(|l| !l.is_empty()).collect();
        let names: Vec<&str> = lines
            .iter()
            .map(|l| l.split_whitespace().next().unwrap_or_default())
            .collect();
        for var in [
            "DOCKER_CREDENTIAL_GITLAB_STORE",
            "DOCKER_CREDENTIAL_GITLAB_DATA_DIR",
            "DOCKER_CREDENTIAL_GITLAB_TOKEN",
            "DOCKER_CREDENTIAL_GITLAB_USERNAME",
            "DOCKER_CREDENTIAL_GITLAB_REGISTRY",
            "DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY",
            "DOCKER_CREDENTIAL_GITLAB_CONFIG_DIR",
            "DOCKER_CREDENTIAL_GITLAB_OAUTH_CLIENT_ID",
            "GITLAB_CI",
        ] {
            assert!(
                names.contains(&var),
                "{var} missing at {columns} columns:\n{block}"
            );
        }
        let column = |line: &str| {
            let name = line.split_whitespace().next().unwrap_or_default();
            let after = &line[line.find(name).unwrap() + name.len()..];
            line.len() - after.trim_start().len()
        };
        for line in &lines {
            assert!(
                line.starts_with("  ") && line.split_whitespace().count() > 1,
                "{line:?}"
            );
            assert_eq!(column(line), column(lines[0]), "not aligned:\n{block}");
        }
    }
}
