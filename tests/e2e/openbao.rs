//! The OpenBao harness itself (`support::openbao`), against the real server: what the fleet
//! tests rely on holds before any of them blames the helper. These need nothing of the
//! product's `vault` store.

use crate::support::openbao::*;
use crate::support::stderr;

/// `bao ARGS` as `token`: its exit status and stderr.
fn as_token(bao: &OpenBao, token: &str, args: &[&str], stdin: &str) -> (bool, String) {
    let out = bao.run(Some(token), args, stdin);
    (out.status.success(), stderr(&out))
}

fn record(rel: &str) -> String {
    OpenBao::helper_path(rel)
}

#[test]
fn a_dev_server_with_the_readme_policy_reads_writes_and_lists_the_path_only() {
    let Some(bao) = OpenBao::dev() else {
        return;
    };
    assert_eq!(bao.health(), Some(200));
    let (ok, err) = as_token(&bao, bao.root_token(), &["token", "lookup"], "");
    assert!(ok, "the random root token: {err}");
    bao.policy("fleet", README_POLICY);
    let token = bao.token(&["fleet"], "1h");

    let path = record("records/registry.example.com~group");
    let (ok, err) = as_token(
        &bao,
        &token,
        &["kv", "put", &path, "-"],
        r#"{"secret":"s1"}"#,
    );
    assert!(ok, "write under the path: {err}");
    let (ok, err) = as_token(&bao, &token, &["kv", "get", &path], "");
    assert!(ok, "read under the path: {err}");
    let (ok, err) = as_token(&bao, &token, &["kv", "list", &record("records")], "");
    assert!(ok, "list under the path: {err}");
    let (ok, err) = as_token(&bao, &token, &["kv", "patch", &path, "-"], r#"{"b":"2"}"#);
    assert!(ok, "patch under the path: {err}");
    let (ok, err) = as_token(&bao, &token, &["kv", "delete", &path], "");
    assert!(ok, "delete under the path: {err}");
    let (ok, err) = as_token(&bao, &token, &["kv", "put", "secret/elsewhere", "-"], "{}");
    assert!(!ok && err.contains("permission denied"), "{err}");

    // The harness's own view (as root) of what the helper would have written.
    bao.kv_put(
        "leases/h~g/host-1",
        &serde_json::json!({"host": "host-1", "count": 1}),
    );
    assert_eq!(bao.kv_list("leases"), vec!["h~g/"]);
    assert_eq!(bao.kv_list("leases/h~g"), vec!["host-1"]);
    assert_eq!(bao.kv_get("leases/h~g/host-1").unwrap()["count"], 1);
    let (_, version) = bao.kv_get_versioned("leases/h~g/host-1").unwrap();
    assert_eq!(version, 1);
    assert_eq!(bao.kv_get("records/nothing-here"), None);
    assert_eq!(bao.kv_list("nothing-here"), Vec::<String>::new());
}

#[test]
fn a_token_without_list_is_denied_listing() {
    let Some(bao) = OpenBao::dev() else {
        return;
    };
    bao.policy("no-list", NO_LIST_POLICY);
    let token = bao.token(&["no-list"], "1h");
    let path = record("records/r");
    assert!(as_token(&bao, &token, &["kv", "put", &path, "-"], "{\"a\":\"b\"}").0);
    let (ok, err) = as_token(&bao, &token, &["kv", "list", &record("records")], "");
    assert!(!ok && err.contains("permission denied"), "{err}");
}

#[test]
fn a_revoked_token_is_refused() {
    let Some(bao) = OpenBao::dev() else {
        return;
    };
    bao.policy("fleet", README_POLICY);
    let token = bao.token(&["fleet"], "1h");
    let path = record("records/r");
    assert!(as_token(&bao, &token, &["kv", "put", &path, "-"], "{\"a\":\"b\"}").0);
    bao.revoke(&token);
    let (ok, err) = as_token(&bao, &token, &["kv", "get", &path], "");
    assert!(!ok && err.contains("permission denied"), "{err}");
}

#[test]
fn seal_and_unseal() {
    let Some(bao) = OpenBao::dev() else {
        return;
    };
    bao.policy("fleet", README_POLICY);
    let token = bao.token(&["fleet"], "1h");
    let path = record("records/r");
    assert!(as_token(&bao, &token, &["kv", "put", &path, "-"], "{\"a\":\"b\"}").0);
    bao.seal();
    assert_eq!(bao.health(), Some(503));
    let (ok, err) = as_token(&bao, &token, &["kv", "get", &path], "");
    assert!(!ok && err.contains("sealed"), "{err}");
    bao.unseal();
    assert_eq!(bao.health(), Some(200));
    let (ok, err) = as_token(&bao, &token, &["kv", "get", &path], "");
    assert!(ok, "after unseal: {err}");
}

#[test]
fn an_approle_login_gets_a_token_of_its_policies() {
    let Some(bao) = OpenBao::dev() else {
        return;
    };
    bao.policy("fleet", README_POLICY);
    let (role_id, secret_id) = bao.approle(&["fleet"]);
    let body = serde_json::json!({ "role_id": role_id, "secret_id": secret_id }).to_string();
    let out = bao.ok(
        None,
        &["write", "-format=json", "auth/approle/login", "-"],
        &body,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = v["auth"]["client_token"].as_str().unwrap();
    let path = record("records/r");
    let (ok, err) = as_token(&bao, token, &["kv", "put", &path, "-"], "{\"a\":\"b\"}");
    assert!(ok, "{err}");
    // A second role on the same mount.
    let (other, _) = bao.approle(&["fleet"]);
    assert_ne!(other, role_id);
}

#[test]
fn a_server_with_storage_keeps_data_and_tokens_across_a_restart() {
    let Some(mut bao) = OpenBao::with_file_storage() else {
        return;
    };
    bao.policy("fleet", README_POLICY);
    let token = bao.token(&["fleet"], "24h");
    let addr = bao.addr();
    bao.kv_put("records/r", &serde_json::json!({"secret": "kept"}));
    bao.stop();
    assert_eq!(bao.health(), None, "still answering after stop");
    bao.start();
    assert_eq!(bao.addr(), addr, "a restart moved the server");
    assert_eq!(bao.kv_get("records/r").unwrap()["secret"], "kept");
    let (ok, err) = as_token(&bao, &token, &["kv", "get", &record("records/r")], "");
    assert!(ok, "a token from before the restart: {err}");
    bao.seal();
    bao.unseal();
    assert_eq!(bao.kv_get("records/r").unwrap()["secret"], "kept");
}
