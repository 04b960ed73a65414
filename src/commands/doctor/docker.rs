//! Check 2, per registry: Docker's `config.json` sends the registry to this helper
//! (`credHelpers`), and nothing shadows or duplicates it: a plaintext `auths` entry still
//! holding the old secret, a `credsStore` that may hold an old credential, or
//! `DOCKER_AUTH_CONFIG`, which docker CLI 28.3 and newer consults before any helper.
//! Reading the file is kept apart from judging it ([`config_checks`] is pure).

use std::path::Path;

use serde_json::Value;

use super::Finding;
use crate::docker;
use crate::env::Env;
use crate::registry::RegistryHost;
use crate::{BINARY_NAME, HELPER_SUFFIX};

pub(super) fn docker_config_findings(env: &Env, host: &RegistryHost) -> Vec<Finding> {
    let Some(path) = docker::default_path(env) else {
        return vec![
            Finding::fail("docker config", "cannot find Docker's config directory")
                .fix("set DOCKER_CONFIG or HOME"),
        ];
    };
    let config = docker::read(&path);
    let inline = env.var(crate::env::DOCKER_AUTH_CONFIG);
    config_checks(host, &path, config, inline)
}

const CHECK: &str = "docker config";

/// Pure: what the config file (already read) and `DOCKER_AUTH_CONFIG` mean for `host`.
fn config_checks(
    host: &RegistryHost,
    path: &Path,
    config: Result<Option<Value>, docker::ConfigError>,
    env_auth_config: Option<&str>,
) -> Vec<Finding> {
    let (routing, config) = match config {
        Err(e) => return vec![Finding::fail(CHECK, e.to_string())],
        Ok(None) => (
            missing_config_finding(host, path),
            Value::Object(Default::default()),
        ),
        Ok(Some(v)) => (cred_helpers_finding(host, path, &v), v),
    };
    let mut out = vec![routing];
    out.extend(plaintext_auths_findings(host, path, &config));
    out.extend(creds_store_finding(host, &config));
    out.extend(docker_auth_config_finding(host, env_auth_config));
    out
}

fn configure_fix(host: &RegistryHost) -> String {
    format!("run {BINARY_NAME} configure-docker {host}")
}

/// No config file: docker has no `credHelpers` entry to send `host` to the helper.
fn missing_config_finding(host: &RegistryHost, path: &Path) -> Finding {
    Finding::fail(
        CHECK,
        format!(
            "{} does not exist: docker does not use the helper for {host}",
            path.display()
        ),
    )
    .fix(configure_fix(host))
}

/// Whether `credHelpers` sends `host` to this helper, to another one, or nowhere.
fn cred_helpers_finding(host: &RegistryHost, path: &Path, config: &Value) -> Finding {
    match docker::helper_for(config, host.as_str()) {
        Some(HELPER_SUFFIX) => Finding::pass(
            CHECK,
            format!(
                "credHelpers sends {host} to {BINARY_NAME} ({})",
                path.display()
            ),
        ),
        Some(other) if !other.is_empty() => Finding::fail(
            CHECK,
            format!(
                "credHelpers sends {host} to docker-credential-{other}, not to this helper ({})",
                path.display()
            ),
        )
        .fix(format!("run {BINARY_NAME} configure-docker --force {host}")),
        _ => Finding::fail(
            CHECK,
            format!(
                "credHelpers has no entry for {host} in {}: docker does not use the helper for it",
                path.display()
            ),
        )
        .fix(configure_fix(host)),
    }
}

/// One warning per `auths` entry that still holds a plaintext credential for `host`.
fn plaintext_auths_findings(host: &RegistryHost, path: &Path, config: &Value) -> Vec<Finding> {
    let plaintext = config
        .as_object()
        .map_or_else(Vec::new, |top| docker::plaintext_auths(top, host.as_str()));
    plaintext
        .into_iter()
        .map(|(key, _)| {
            Finding::warn(
                "docker auths",
                format!(
                    "{} holds a plaintext credential for {host} under \"auths\" → {key:?}",
                    path.display()
                ),
            )
            .fix("delete that entry so the old secret is off disk (the helper holds it now)")
        })
        .collect()
}

/// A `credsStore` other than this helper, which may still hold an old credential.
fn creds_store_finding(host: &RegistryHost, config: &Value) -> Option<Finding> {
    let store = config
        .get("credsStore")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && *s != HELPER_SUFFIX)?;
    Some(
        Finding::warn(
            "credsStore",
            format!(
                "\"credsStore\" is {store:?}: docker-credential-{store} serves every registry without a credHelpers entry, \
                 and may still hold an old credential for {host}"
            ),
        )
        .fix(format!(
            "keep the credHelpers entry for {host}; remove its old credential with `docker-credential-{store} erase`"
        )),
    )
}

/// `DOCKER_AUTH_CONFIG`, which docker CLI 28.3 and newer consults before any helper.
fn docker_auth_config_finding(
    host: &RegistryHost,
    env_auth_config: Option<&str>,
) -> Option<Finding> {
    let value = env_auth_config.filter(|v| !v.trim().is_empty())?;
    let lists_host = serde_json::from_str::<Value>(value)
        .ok()
        .and_then(|v| v.get("auths").and_then(Value::as_object).cloned())
        .is_some_and(|auths| {
            auths
                .keys()
                .any(|k| docker::same_registry(k, host.as_str()))
        });
    let what = if lists_host {
        format!("it lists {host}, so docker CLI 28.3 and newer bypasses the helper for it")
    } else {
        "docker CLI 28.3 and newer uses its credentials before any credential helper".to_owned()
    };
    Some(
        Finding::warn(
            "DOCKER_AUTH_CONFIG",
            format!("{} is set: {what}", docker::DOCKER_AUTH_CONFIG_ENV),
        )
        .fix("unset it (or drop this registry from it) to use the helper"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::doctor::Status;
    use crate::commands::doctor::tests::statuses;
    use serde_json::json;

    fn host(s: &str) -> RegistryHost {
        RegistryHost::parse(s).unwrap()
    }

    #[test]
    fn docker_config_checks() {
        let h = host("gitlab.example.com:5050");
        let p = Path::new("/h/.docker/config.json");
        let ok = json!({"credHelpers": {"gitlab.example.com:5050": "gitlab"}});
        let f = config_checks(&h, p, Ok(Some(ok)), None);
        assert_eq!(statuses(&f), [("docker config", Status::Pass)]);

        let other = json!({"credHelpers": {"gitlab.example.com:5050": "desktop"}});
        let f = config_checks(&h, p, Ok(Some(other)), None);
        assert_eq!(f[0].status, Status::Fail);
        assert!(f[0].message.contains("docker-credential-desktop"));
        assert!(f[0].fix.as_deref().unwrap().contains("--force"));

        let f = config_checks(&h, p, Ok(None), None);
        assert_eq!(f[0].status, Status::Fail);

        let shadowed = json!({
            "auths": {"https://gitlab.example.com:5050": {"auth": "dTpw"}, "gitlab.example.com": {"auth": "eA=="}},
            "credsStore": "desktop",
            "credHelpers": {"gitlab.example.com:5050": "gitlab"}
        });
        let f = config_checks(
            &h,
            p,
            Ok(Some(shadowed)),
            Some(r#"{"auths":{"gitlab.example.com:5050":{"auth":"x"}}}"#),
        );
        assert_eq!(
            statuses(&f),
            [
                ("docker config", Status::Pass),
                ("docker auths", Status::Warn),
                ("credsStore", Status::Warn),
                ("DOCKER_AUTH_CONFIG", Status::Warn),
            ]
        );
        assert!(
            f[3].message.contains("bypasses the helper"),
            "{}",
            f[3].line()
        );
        // Secrets from the file never reach the messages.
        assert!(f.iter().all(|x| !x.line().contains("dTpw")));
    }
}
