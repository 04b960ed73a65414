//! `doctor [REGISTRY] [--json]`: checks everything between `docker pull` and GitLab, one
//! line per check: `PASS|WARN|FAIL  <check>: <what was found>[; <fix>]`.
//!
//! Checks, per registry (every stored one when none is named):
//! 1. the `docker-credential-gitlab` docker finds on PATH is this binary (once, for all);
//! 2. Docker's config.json: `credHelpers` points the registry at us; plaintext `auths`
//!    entries, `credsStore` and `DOCKER_AUTH_CONFIG` that shadow or duplicate it;
//! 3. the secret store holding the entry answers and has the secret;
//! 4. the registry still sends clients to the GitLab recorded at login (the token is only
//!    sent there), and GitLab's `/jwt/auth` accepts the credential;
//! 5. scopes, expiry and renewability (fresh from GitLab for access tokens);
//! 6. the registry token window (`exp - iat` of a freshly issued registry token);
//! 7. a 403 "access forbidden" is told apart: a proxy stripping the `Authorization` header
//!    on the way to `/jwt/auth` (GitLab then sees an anonymous request), a per-IP ban, or a
//!    token without registry scope.
//!
//! Network trouble becomes FAIL lines, never a crash; every request has a deadline. No
//! secret (stored token or registry token) is ever printed. Exit status 1 if any check fails.
//!
//! This file holds the finding type, the report and the orchestration; each check lives in
//! its own room: `binary` (1), `docker` (2), `at_gitlab` (3, 4, 7), `token` (5, 6),
//! `secret_store` (where new secrets go), and `environment` for a registry served by the
//! environment instead of the store.

use anyhow::bail;
use serde::Serialize;

use crate::BINARY_NAME;
use crate::env::Env;
use crate::gitlab::http::Http;
use crate::records::Records;
use crate::registry::RegistryHost;
use crate::sources::{self, Cascade, Served};

mod at_gitlab;
mod binary;
mod docker;
mod environment;
mod secret_store;
mod token;
mod vault;

use at_gitlab::check_registry;
use binary::binary_finding;
use docker::docker_config_findings;
use secret_store::store_findings;
use token::renewal_findings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: String,
    pub status: Status,
    pub message: String,
    pub fix: Option<String>,
}

impl Finding {
    fn new(status: Status, check: &str, message: impl Into<String>) -> Finding {
        Finding {
            check: check.to_owned(),
            status,
            message: message.into(),
            fix: None,
        }
    }
    fn pass(check: &str, message: impl Into<String>) -> Finding {
        Finding::new(Status::Pass, check, message)
    }
    fn warn(check: &str, message: impl Into<String>) -> Finding {
        Finding::new(Status::Warn, check, message)
    }
    fn fail(check: &str, message: impl Into<String>) -> Finding {
        Finding::new(Status::Fail, check, message)
    }
    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }

    /// `PASS  check: message[; fix]`.
    pub fn line(&self) -> String {
        let mut s = format!("{}  {}: {}", self.status.label(), self.check, self.message);
        if let Some(fix) = &self.fix {
            s.push_str("; ");
            s.push_str(fix);
        }
        s
    }
}

/// One JSON row: a finding and the registry it is about (`null` for global checks).
#[derive(Debug, Serialize)]
struct Row<'a> {
    registry: Option<&'a str>,
    #[serde(flatten)]
    finding: &'a Finding,
}

/// Findings grouped by registry; `None` holds the checks that concern every registry.
type Report = Vec<(Option<String>, Vec<Finding>)>;

pub(crate) fn run(env: &Env, registry: Option<&str>, json: bool) -> anyhow::Result<()> {
    let report = diagnose(env, registry);
    if json {
        let rows: Vec<Row> = report
            .iter()
            .flat_map(|(registry, findings)| {
                findings.iter().map(move |finding| Row {
                    registry: registry.as_deref(),
                    finding,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let mut first = true;
        for (registry, findings) in &report {
            if !first {
                println!();
            }
            first = false;
            println!("{}", registry.as_deref().unwrap_or("all registries"));
            for f in findings {
                println!("{}", f.line());
            }
        }
    }
    let failed = report
        .iter()
        .flat_map(|(_, f)| f)
        .filter(|f| f.status == Status::Fail)
        .count();
    if failed > 0 {
        bail!(
            "{failed} check{} failed",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn diagnose(env: &Env, registry: Option<&str>) -> Report {
    let mut global = vec![binary_finding(env)];
    let records = Records::locate(env);
    let cascade = Cascade {
        records: records.as_ref().ok(),
        env,
    };
    let (inventory, errors) = cascade.survey();
    let mut stored_ok = records.is_ok();
    if let Err(e) = &records {
        global.push(Finding::fail("state file", e.to_string()));
    }
    let fleet = records.as_ref().ok().filter(|r| r.fleet().is_some());
    for e in errors {
        stored_ok &= matches!(e, sources::Error::Environment(_));
        let check = match e {
            sources::Error::Environment(_) => "environment",
            _ if fleet.is_some() => "vault records",
            _ => "state file",
        };
        global.push(Finding::fail(check, e.to_string()));
    }
    // A fleet's Vault checks run even when its records could not be read: they say why.
    if let Some(records) = fleet {
        global.extend(vault::vault_findings(records, &inventory.stored));
    }
    let records = records.ok().filter(|_| stored_ok);
    if let Some(records) = records.as_ref().filter(|r| r.fleet().is_none()) {
        global.extend(store_findings(env, records, &inventory.stored));
    }
    let hosts: Vec<Result<RegistryHost, String>> = match registry {
        Some(r) => vec![RegistryHost::parse(r).map_err(|e| e.to_string())],
        None => inventory.registries().into_iter().map(Ok).collect(),
    };
    if registry.is_none() && hosts.is_empty() && records.is_some() {
        global.push(
            Finding::fail("credentials", "no registry is stored")
                .fix(format!("log in with {BINARY_NAME} login REGISTRY")),
        );
    }
    let mut report: Report = vec![(None, global)];
    let mut net = Net::default();
    for host in hosts {
        let host = match host {
            Ok(host) => host,
            Err(e) => {
                let findings = vec![Finding::fail("registry", e)];
                report.push((registry.map(str::to_owned), findings));
                continue;
            }
        };
        let findings = match (&records, inventory.served(&host)) {
            // Stored wins, as it does for `get`.
            (Some(_), Some(Served::Environment(c))) => {
                let mut out = docker_config_findings(env, &host);
                out.extend(environment::check(&host, c, env, &mut net));
                out
            }
            (Some(records), served) => {
                let entry = match served {
                    Some(Served::Stored(entry)) => Some(entry),
                    _ => None,
                };
                let mut out = check_registry(env, &host, records, entry, &mut net);
                out.extend(renewal_findings(env, records, &inventory.stored, &host));
                out
            }
            // Without the state file only Docker's side can be checked.
            (None, _) => docker_config_findings(env, &host),
        };
        report.push((Some(host.as_str().to_owned()), findings));
    }
    report
}

/// The HTTP client, built on first use (and only once).
#[derive(Default)]
struct Net {
    http: Option<Result<Http, String>>,
}

impl Net {
    fn get(&mut self) -> Result<&Http, String> {
        self.http
            .get_or_insert_with(|| Http::new().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GitLabInfo;
    use serde_json::json;

    /// The `(check, status)` pairs, in order: what most check tests compare.
    pub(super) fn statuses(f: &[Finding]) -> Vec<(&str, Status)> {
        f.iter().map(|f| (f.check.as_str(), f.status)).collect()
    }

    #[test]
    fn line_format() {
        let f = Finding::warn("token window", "short").fix("raise it");
        assert_eq!(f.line(), "WARN  token window: short; raise it");
        assert_eq!(Finding::pass("x", "ok").line(), "PASS  x: ok");
        let row = Row {
            registry: Some("r"),
            finding: &f,
        };
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            json!({"registry": "r", "check": "token window", "status": "warn", "message": "short", "fix": "raise it"})
        );
    }

    /// Built from JSON so that fields added to the state later (all defaulted) need no edit.
    pub(super) fn pat_info(scopes: &[&str], days: Option<i64>) -> GitLabInfo {
        let mut info: GitLabInfo = serde_json::from_value(json!({
            "url": "https://gitlab.example.com",
            "kind": "personal_access_token",
            "scopes": scopes,
            "validated_at": crate::clock::now(),
        }))
        .unwrap();
        info.expires_at =
            days.map(|d| crate::clock::now() + jiff::SignedDuration::from_hours(24 * d + 1));
        info
    }
}
