//! GitLab for real: the real registry in token mode, its tokens issued by the GitLab
//! emulator, our `login`/`logout`/`status`/`configure-docker`, and real clients (skopeo,
//! the docker CLI) reading through the helper from a real gnome-keyring.

use std::process::Command;

use crate::support::gitlab::GitLabWorld;
use crate::support::*;
use gitlab_emulator::Config;

impl GitLabWorld {
    fn push(&self, layout: &std::path::Path, repo: &str) -> std::process::Output {
        let dest = format!("docker://{}/{repo}:v1", self.registry.host());
        skopeo_copy(&self.s, &oci_ref(layout), &dest, &[])
    }

    fn pull(&self, repo: &str) -> std::process::Output {
        let dest = self
            .s
            .dir
            .path()
            .join(format!("pulled-{}", repo.replace('/', "-")));
        let src = format!("docker://{}/{repo}:v1", self.registry.host());
        skopeo_copy(&self.s, &src, &oci_ref(&dest), &[])
    }

    fn docker_config(&self) -> serde_json::Value {
        let path = self.s.docker_config_dir().join("config.json");
        serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|_| b"{}".to_vec())).unwrap()
    }

    fn status(&self) -> serde_json::Value {
        let out = self.s.helper(&["status", "--json"], "");
        assert_success(&out, "status --json");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[test]
fn login_with_a_pat_then_push_and_pull_through_the_helper() {
    let Some(mut w) = GitLabWorld::with_pat(&["skopeo"], 90) else {
        return;
    };
    let (token, host) = (w.token.clone(), w.host.clone());

    let out = w.login(&host, &token, &[]);
    assert_success(&out, "login");
    assert!(stdout(&out).contains("Login Succeeded"), "{}", stdout(&out));
    assert!(stderr(&out).contains(&format!("GitLab instance for {host}: {}", w.gl.url())));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert!(!stdout(&out).contains(&token) && !stderr(&out).contains(&token));

    // Docker is configured, and the secret is in the real keyring.
    assert_eq!(w.docker_config()["credHelpers"][&host], "gitlab");
    assert_eq!(
        w.s.secret_tool_lookup(&host).as_deref(),
        Some(token.as_str())
    );

    // status knows what GitLab said, and never shows the secret.
    let status = w.status();
    let row = &status[0];
    assert_eq!(row["registry"], host);
    assert_eq!(row["gitlab_url"], w.gl.url());
    assert_eq!(row["kind"], "access token");
    assert_eq!(row["scopes"], serde_json::json!(RENEWABLE));
    assert_eq!(row["can_renew"], true);
    assert!(
        (88..=90).contains(&row["expires_in_days"].as_i64().unwrap()),
        "{row}"
    );
    assert_eq!(row["store"], "secret-service");
    let table = w.s.helper(&["status"], "");
    assert_success(&table, "status");
    assert!(stdout(&table).contains(&host) && !stdout(&table).contains(&token));
    assert!(stdout(&table).contains("in 8"), "{}", stdout(&table));

    // skopeo pushes and pulls with credentials from our `get`; the registry accepts the
    // emulator's tokens.
    w.s.configure_docker(&[&host]);
    let layout = write_oci_image(w.s.dir.path(), 32 * 1024);
    assert_success(&w.push(&layout, "group/project"), "skopeo push");
    assert_success(&w.pull("group/project"), "skopeo pull");
    let jwt_requests: Vec<_> =
        w.gl.requests()
            .into_iter()
            .filter(|r| r.path == JWT_AUTH && r.status == 200)
            .collect();
    assert!(
        jwt_requests.iter().any(|r| r.query.contains("push")),
        "{jwt_requests:?}"
    );
}

#[test]
fn docker_login_through_store_then_manifest_inspect() {
    let Some(mut w) = GitLabWorld::with_pat(&["docker", "skopeo"], 90) else {
        return;
    };
    let (token, host) = (w.token.clone(), w.host.clone());
    w.s.configure_docker(&[&host]);
    let layout = write_oci_image(w.s.dir.path(), 16 * 1024);

    let out = w.s.run(
        Command::new("docker").args(["login", &host, "-u", "alice", "--password-stdin"]),
        &token,
    );
    assert_success(&out, "docker login");
    assert_success(&w.push(&layout, "group/app"), "skopeo push");
    let out = w.s.run(
        Command::new("docker").args([
            "manifest",
            "inspect",
            "--insecure",
            &format!("{host}/group/app:v1"),
        ]),
        "",
    );
    assert_success(&out, "docker manifest inspect");
    // A `docker login` entry has no GitLab metadata: status says so.
    assert_eq!(w.status()[0]["kind"], serde_json::Value::Null);
}

#[test]
fn deploy_token_needs_its_username_and_cannot_push_without_write_registry() {
    let Some(mut w) = GitLabWorld::with_pat(&["skopeo"], 90) else {
        return;
    };
    // Put an image there first, with a full PAT.
    let (pat, host) = (w.token.clone(), w.host.clone());
    w.s.configure_docker(&[&host]);
    assert_success(&w.login(&host, &pat, &["--no-configure"]), "login pat");
    let layout = write_oci_image(w.s.dir.path(), 16 * 1024);
    assert_success(&w.push(&layout, "group/project"), "push with pat");

    let deploy =
        w.gl.add_deploy_token("gitlab+deploy-token-7", &["read_registry"], None)
            .token;
    // No username: refused before anything is sent or stored.
    let out = w.login(&host, &deploy, &["--no-configure"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--username"), "{}", stderr(&out));
    // A wrong username: GitLab's 401, explained.
    let out = w.login(
        &host,
        &deploy,
        &["--no-configure", "--username", "someone-else"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("401") && err.contains("deploy token's own"),
        "{err}"
    );
    assert_eq!(
        w.status()[0]["kind"],
        "access token",
        "the failed login replaced nothing"
    );

    let out = w.login(
        &host,
        &deploy,
        &["--no-configure", "--username", "gitlab+deploy-token-7"],
    );
    assert_success(&out, "login deploy token");
    assert!(stderr(&out).contains("write_registry"), "{}", stderr(&out));
    assert_eq!(w.status()[0]["kind"], "deploy token");
    assert_eq!(w.status()[0]["username"], "gitlab+deploy-token-7");

    assert_success(&w.pull("group/project"), "deploy token pull");
    let out = w.push(&layout, "group/other");
    assert!(!out.status.success(), "a read_registry deploy token pushed");
    let err = stderr(&out).to_lowercase();
    assert!(
        err.contains("unauthorized") || err.contains("denied"),
        "{err}"
    );
}

#[test]
fn bad_credentials_are_explained_and_nothing_is_stored() {
    let Some(w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    let host = w.registry.host();

    let revoked = w.pat(RENEWABLE, 90);
    w.gl.revoke_token(&revoked);
    let out = w.login(&host, &revoked, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("401") && err.contains("revoked"), "{err}");
    assert!(err.lines().count() <= 2, "{err}");

    let no_registry = w.pat(&["read_repository"], 90);
    let out = w.login(&host, &no_registry, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("403") && err.contains("read_registry"),
        "{err}"
    );

    let out = w.login(&host, "glpat-not-a-real-token-000", &[]);
    assert_eq!(out.status.code(), Some(1));

    // Nothing was stored or configured by any of these.
    assert_eq!(stdout(&w.s.helper(&["list"], "")), "{}\n");
    assert_eq!(w.docker_config().get("credHelpers"), None);
    assert_eq!(w.s.secret_tool_lookup(&host), None);
}

#[test]
fn a_registry_pointing_at_another_gitlab_is_refused_before_the_token_is_sent() {
    let Some(w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    let host = w.registry.host();
    let token = w.pat(RENEWABLE, 90);
    w.gl.clear_requests();
    let out = w.login(
        &host,
        &token,
        &["--gitlab-url", "https://gitlab.other.example"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("refusing"), "{err}");
    assert_eq!(w.gl.count("GET", JWT_AUTH), 0, "the token was sent anyway");
    assert_eq!(stdout(&w.s.helper(&["list"], "")), "{}\n");

    // A plain-HTTP GitLab URL for a non-loopback host is refused outright.
    let out = w.login(
        &host,
        &token,
        &["--gitlab-url", "http://gitlab.example.com"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("plain HTTP"), "{}", stderr(&out));
}

#[test]
fn warnings_for_tokens_that_cannot_push_renew_or_last() {
    let Some(w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    let host = w.registry.host();
    let token = w.pat(&["read_registry"], 10);
    let out = w.login(&host, &token, &["--no-configure"]);
    assert_success(&out, "login");
    let err = stderr(&out);
    assert!(err.contains("not push"), "{err}");
    assert!(err.contains("cannot renew itself"), "{err}");
    assert!(
        err.contains("in 9 days") || err.contains("in 10 days"),
        "{err}"
    );
    assert_eq!(w.docker_config().get("credHelpers"), None, "--no-configure");
    assert_eq!(w.status()[0]["can_renew"], false);
}

#[test]
fn logout_revoke_revokes_at_the_recorded_gitlab() {
    let Some(w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    let token = w.pat(RENEWABLE, 90);
    let host = w.registry.host();
    assert_success(&w.login(&host, &token, &[]), "login");

    let out = w.s.helper(&["logout", &host, "--revoke"], "");
    assert_success(&out, "logout --revoke");
    assert!(stdout(&out).contains("Revoked"), "{}", stdout(&out));
    assert!(w.gl.token_info(&token).unwrap().revoked);
    assert_eq!(stdout(&w.s.helper(&["list"], "")), "{}\n");
    assert_eq!(w.s.secret_tool_lookup(&host), None);

    // Logging out again is fine; revoking what is not stored is an error.
    assert_success(&w.s.helper(&["logout", &host], ""), "logout again");
    let out = w.s.helper(&["logout", &host, "--revoke"], "");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn configure_docker_keeps_other_helpers_unless_forced() {
    let s = Session::without_bus();
    let dir = s.docker_config_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let original = "{\n\t\"credHelpers\": {\n\t\t\"registry.example.com\": \"ecr-login\"\n\t},\n\t\"zzz-unknown\": 1\n}\n";
    std::fs::write(dir.join("config.json"), original).unwrap();
    let on_disk = || std::fs::read_to_string(dir.join("config.json")).unwrap();

    let out = s.helper(&["configure-docker", "registry.example.com"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(on_disk(), original);

    let out = s.helper(
        &[
            "configure-docker",
            "--dry-run",
            "--force",
            "registry.example.com",
            "gitlab.example.com:5050",
        ],
        "",
    );
    assert_success(&out, "dry run");
    assert!(stdout(&out).contains("would"), "{}", stdout(&out));
    assert_eq!(on_disk(), original);

    let out = s.helper(
        &[
            "configure-docker",
            "--force",
            "https://Registry.Example.com/",
            "gitlab.example.com:5050",
        ],
        "",
    );
    assert_success(&out, "configure --force");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["credHelpers"]["registry.example.com"], "gitlab");
    assert_eq!(config["credHelpers"]["gitlab.example.com:5050"], "gitlab");
    assert_eq!(config["zzz-unknown"], 1);

    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let out = s.helper(&["configure-docker", "registry.example.com"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(on_disk(), "{ not json");
}
