//! Every way talking to Vault can fail, each as one line that names Vault, its address,
//! what happened and the fix. No variant holds a token or a secret_id: texts that come
//! from Vault go through [`vault_errors`], which blanks out the secrets in play.

use crate::gitlab::GitLabError;
use crate::report::one_line;

/// The policy the README tells the operator to grant, for messages.
const POLICY_HINT: &str = "grant the policy in the README (create, read, update, patch, delete, list on <mount>/data/<prefix>/* and <mount>/metadata/<prefix>/*)";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VaultError {
    #[error(
        "no Vault address: set VAULT_ADDR (or BAO_ADDR) to your Vault or OpenBao server, e.g. https://vault.example.com:8200"
    )]
    NoAddress,
    #[error(
        "{var}={value} is not a usable Vault address: {why}; e.g. https://vault.example.com:8200"
    )]
    BadAddress {
        var: &'static str,
        value: String,
        why: String,
    },
    #[error(
        "refusing to send a Vault token over plain HTTP to {addr}: use https:// (plain HTTP only for a Vault on this machine, e.g. http://127.0.0.1:8200)"
    )]
    Insecure { addr: String },
    #[error(
        "no way to log in to Vault at {addr}: set VAULT_TOKEN (or BAO_TOKEN), or run `vault login` (it writes ~/.vault-token), or set DOCKER_CREDENTIAL_GITLAB_VAULT_ROLE_ID and DOCKER_CREDENTIAL_GITLAB_VAULT_SECRET_ID (AppRole)"
    )]
    NoAuth { addr: String },
    #[error("Vault AppRole login: {set} is set but {unset} is not; set both (or neither)")]
    HalfAppRole {
        set: &'static str,
        unset: &'static str,
    },
    #[error(
        "cannot read the Vault token file {path}: {detail}; fix its permissions or set VAULT_TOKEN"
    )]
    TokenFile { path: String, detail: String },
    #[error(
        "DOCKER_CREDENTIAL_GITLAB_VAULT_PATH={value} is not a Vault KV v2 path: {why}; e.g. secret/docker-credential-gitlab (the KV v2 mount, then a prefix)"
    )]
    BadPath { value: String, why: String },
    #[error(
        "{value} (from {from}) is not a Vault host id: set DOCKER_CREDENTIAL_GITLAB_HOST_ID to 1 to 64 of [A-Za-z0-9._-]"
    )]
    BadHostId { value: String, from: &'static str },
    #[error(
        "cannot tell this host's name for the Vault host id: set DOCKER_CREDENTIAL_GITLAB_HOST_ID (1 to 64 of [A-Za-z0-9._-])"
    )]
    NoHostname,
    #[error(
        "VAULT_CACERT={path} cannot be used for Vault at {addr}: {detail}; point it at a PEM CA certificate"
    )]
    CaCert {
        path: String,
        addr: String,
        detail: String,
    },
    #[error("cannot set up the HTTP client for Vault at {addr}: {detail}")]
    Client { addr: String, detail: String },
    #[error(
        "cannot reach Vault at {addr}: {detail}; check that it is running and that VAULT_ADDR is right{hint}"
    )]
    Unreachable {
        addr: String,
        detail: String,
        hint: &'static str,
    },
    #[error(
        "Vault at {addr} did not answer within {secs}s: check that it is up and reachable from this host (and HTTPS_PROXY/NO_PROXY)"
    )]
    Timeout { addr: String, secs: String },
    #[error(
        "Vault at {addr} is sealed: unseal it (vault operator unseal / bao operator unseal) and try again"
    )]
    Sealed { addr: String },
    #[error(
        "the Vault token from {from} is invalid or expired (Vault at {addr} refuses it, lookup-self also 403): {fix}"
    )]
    TokenInvalid {
        addr: String,
        from: &'static str,
        fix: &'static str,
    },
    #[error("Vault at {addr} denied {op} on {path}: {POLICY_HINT}")]
    Denied {
        addr: String,
        op: &'static str,
        path: String,
    },
    #[error(
        "Vault at {addr} refused the AppRole login ({errors}): check DOCKER_CREDENTIAL_GITLAB_VAULT_ROLE_ID and DOCKER_CREDENTIAL_GITLAB_VAULT_SECRET_ID (a secret_id can expire or be used up)"
    )]
    AppRoleRefused { addr: String, errors: String },
    #[error("Vault at {addr} answered {status} to {op} on {path}: {errors}")]
    Unexpected {
        addr: String,
        op: &'static str,
        path: String,
        status: u16,
        errors: String,
    },
    #[error(
        "refusing the key {key:?} for Vault at {addr}: it would name another path (a bug in the helper: please report it)"
    )]
    BadKey { addr: String, key: String },
    #[error(
        "Vault at {addr} sent an answer to {op} on {path} that is not what Vault sends: {detail}"
    )]
    BadAnswer {
        addr: String,
        op: &'static str,
        path: String,
        detail: String,
    },
}

impl VaultError {
    /// Vault cannot be used at all right now (down, sealed, too slow): no point in a
    /// second request in this process.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            VaultError::Unreachable { .. } | VaultError::Timeout { .. } | VaultError::Sealed { .. }
        )
    }
}

/// A transport failure of the shared HTTP client, told as Vault's.
pub(crate) fn from_transport(e: GitLabError, addr: &str, limit: std::time::Duration) -> VaultError {
    let addr = addr.to_owned();
    match e {
        GitLabError::Timeout { .. } => VaultError::Timeout {
            addr,
            secs: format!("{:.1}", limit.as_secs_f64()),
        },
        GitLabError::Connect { detail, .. } | GitLabError::Network { detail, .. } => {
            let hint = if detail.contains("certificate") || detail.contains("Certificate") {
                ", and set VAULT_CACERT to the CA that signed Vault's certificate"
            } else {
                ""
            };
            VaultError::Unreachable {
                addr,
                detail: one_line(&detail),
                hint,
            }
        }
        GitLabError::Insecure { .. } => VaultError::Insecure { addr },
        other => VaultError::Client {
            addr,
            detail: one_line(&other.to_string()),
        },
    }
}

/// Vault's `{"errors": [...]}` as one short line, with every secret in `secrets` blanked
/// out (Vault does not echo them, but a proxy or plugin might).
pub(crate) fn vault_errors(body: &str, secrets: &[&str]) -> String {
    let parsed: Option<Vec<String>> = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("errors")?.as_array().map(|a| {
                a.iter()
                    .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                    .collect()
            })
        });
    let mut text = match parsed {
        Some(errors) if !errors.is_empty() => errors.join("; "),
        Some(_) => "no error text".to_owned(),
        None if body.trim().is_empty() => "empty body".to_owned(),
        None => body.to_owned(),
    };
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret, "[redacted]");
    }
    let text = one_line(&text);
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::env::Env;
    use crate::vault::{Config, Vault};

    #[test]
    fn vault_errors_are_one_short_line_without_secrets() {
        let body = r#"{"errors":["1 error occurred:\n\t* permission denied for hvs.SECRET\n\n"]}"#;
        assert_eq!(
            vault_errors(body, &["hvs.SECRET"]),
            "1 error occurred: * permission denied for [redacted]"
        );
        assert_eq!(vault_errors(r#"{"errors":[]}"#, &[]), "no error text");
        assert_eq!(vault_errors("", &[]), "empty body");
        assert_eq!(
            vault_errors("<html>bad gateway</html>", &[]),
            "<html>bad gateway</html>"
        );
        let long = format!(r#"{{"errors":["{}"]}}"#, "x".repeat(1000));
        assert_eq!(vault_errors(&long, &[]).chars().count(), 301);
    }

    #[test]
    fn every_message_names_vault_and_is_one_line() {
        let addr = "https://vault.example.com:8200".to_owned();
        let limit = std::time::Duration::from_secs(4);
        let all = [
            from_transport(GitLabError::Timeout { url: "u".into() }, &addr, limit),
            from_transport(
                GitLabError::Connect {
                    url: "u".into(),
                    detail: "Connection refused (os error 111)".into(),
                },
                &addr,
                limit,
            ),
            from_transport(
                GitLabError::Connect {
                    url: "u".into(),
                    detail: "invalid peer certificate: UnknownIssuer".into(),
                },
                &addr,
                limit,
            ),
            VaultError::Sealed { addr: addr.clone() },
            VaultError::TokenInvalid {
                addr: addr.clone(),
                from: "VAULT_TOKEN",
                fix: super::super::token::RENEW_FIX,
            },
            VaultError::Denied {
                addr: addr.clone(),
                op: "list",
                path: "secret/metadata/p/records".into(),
            },
            VaultError::AppRoleRefused {
                addr: addr.clone(),
                errors: "invalid role or secret ID".into(),
            },
        ];
        for e in &all {
            let line = e.to_string();
            assert!(
                line.contains("Vault") && line.contains(&addr) && !line.contains('\n'),
                "{line}"
            );
        }
        assert!(all[0].to_string().contains("within 4.0s"));
        assert!(all[1].to_string().contains("Connection refused") && all[1].is_unavailable());
        assert!(all[2].to_string().contains("VAULT_CACERT"));
        assert!(all[3].to_string().contains("unseal"));
        assert!(
            all[4]
                .to_string()
                .contains("from VAULT_TOKEN is invalid or expired")
                && all[4].to_string().contains("vault login")
        );
        assert!(
            all[5].to_string().contains(
                "denied list on secret/metadata/p/records: grant the policy in the README"
            )
        );
    }

    #[test]
    fn unreachable_and_silent_vaults_fail_fast() {
        let config = |port: u16| {
            let addr = format!("http://127.0.0.1:{port}");
            Config::from_env(&Env::from_pairs([
                ("VAULT_ADDR", addr.as_str()),
                ("VAULT_TOKEN", "hvs.never-sent-anywhere"),
                ("DOCKER_CREDENTIAL_GITLAB_HOST_ID", "h"),
            ]))
            .unwrap()
        };
        let notes = tempfile::tempdir().unwrap();
        let refused = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let start = Instant::now();
        let v = Vault::new(
            config(refused),
            notes.path().to_owned(),
            start + Duration::from_secs(20),
        );
        let e = v.read("records/a").unwrap_err();
        assert!(
            e.is_unavailable() && start.elapsed() < Duration::from_secs(2),
            "{e}"
        );
        let line = e.to_string();
        assert!(
            line.starts_with(&format!(
                "cannot reach Vault at http://127.0.0.1:{refused}: "
            )),
            "{line}"
        );
        assert!(
            line.contains("refused") && !line.contains("never-sent"),
            "{line}"
        );

        // Accepts, never answers: cut at the caller's deadline, else at REQUEST_LIMIT.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        for (deadline, at_least, at_most) in [(1.5, 1.3, 2.5), (20.0, 3.9, 5.0)] {
            let start = Instant::now();
            let until = start + Duration::from_secs_f64(deadline);
            let e = Vault::new(config(port), notes.path().to_owned(), until)
                .read("records/a")
                .unwrap_err();
            let took = start.elapsed().as_secs_f64();
            assert!(matches!(e, VaultError::Timeout { .. }), "{e}");
            assert!((at_least..at_most).contains(&took), "{took}s: {e}");
            assert!(
                e.to_string().starts_with(&format!(
                    "Vault at http://127.0.0.1:{port} did not answer within"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn a_bad_vault_cacert_is_named() {
        let notes = tempfile::tempdir().unwrap();
        let not_pem = notes.path().join("ca.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let path = not_pem.to_str().unwrap();
        let config = Config::from_env(&Env::from_pairs([
            ("VAULT_ADDR", "https://vault.example.com:8200"),
            ("VAULT_TOKEN", "hvs.x"),
            ("VAULT_CACERT", path),
            ("DOCKER_CREDENTIAL_GITLAB_HOST_ID", "h"),
        ]))
        .unwrap();
        let e = Vault::new(
            config,
            notes.path().to_owned(),
            Instant::now() + Duration::from_secs(5),
        )
        .read("records/a")
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(&format!(
                "VAULT_CACERT={path} cannot be used for Vault at https://vault.example.com:8200: "
            )),
            "{e}"
        );
    }
}
