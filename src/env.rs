//! The environment: one table of every variable the helper reads, and one snapshot of them.
//!
//! The snapshot is taken once per process ([`Env::process`], first called by `cli::main`)
//! and passed down; rules that read it are plain functions of an [`Env`], so they unit-test
//! with [`Env::from_pairs`] and never touch the real environment. This is the only file of
//! `src/` that calls `std::env::var*`.
//!
//! The same table prints `--help`'s Environment block, so the names shown there are the
//! names read here.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

/// One variable the helper reads, and what `--help` says of it (`None`: not shown there).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Var {
    pub name: &'static str,
    pub help: Option<&'static str>,
}

macro_rules! vars {
    ($($(#[$doc:meta])* $const:ident = $name:literal $(, help = $help:literal)?;)*) => {
        $($(#[$doc])* pub(crate) const $const: &str = $name;)*
        /// Every variable the helper reads, in `--help` order.
        pub(crate) const VARS: &[Var] = &[$(Var { name: $name, help: vars!(@help $($help)?) }),*];
    };
    (@help $help:literal) => { Some($help) };
    (@help) => { None };
}

vars! {
    /// Which secret store (`auto`, or a name from the store table).
    STORE = "DOCKER_CREDENTIAL_GITLAB_STORE",
        help = "secret store: auto (default), keychain, wincred, secret-service, keyutils, file, vault (or openbao: fleet mode)";
    /// Overrides the data directory.
    DATA_DIR = "DOCKER_CREDENTIAL_GITLAB_DATA_DIR",
        help = "directory for the state file (and the file store)";
    /// A token for other CI systems, with its username and hosts.
    TOKEN = "DOCKER_CREDENTIAL_GITLAB_TOKEN",
        help = "a token from the environment (other CI systems)";
    USERNAME = "DOCKER_CREDENTIAL_GITLAB_USERNAME",
        help = "the username sent with DOCKER_CREDENTIAL_GITLAB_TOKEN (default oauth2)";
    REGISTRY = "DOCKER_CREDENTIAL_GITLAB_REGISTRY",
        help = "the hosts DOCKER_CREDENTIAL_GITLAB_TOKEN serves, comma-separated (default registry.gitlab.com)";
    /// How long a handed-out token must stay valid.
    MIN_VALIDITY = "DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY",
        help = "how long a handed-out token must stay valid (default 60m)";
    /// Where the settings file lives.
    CONFIG_DIR = "DOCKER_CREDENTIAL_GITLAB_CONFIG_DIR",
        help = "directory of config.json (min_validity, oauth_client_ids)";
    OAUTH_CLIENT_ID = "DOCKER_CREDENTIAL_GITLAB_OAUTH_CLIENT_ID",
        help = "OAuth application id for login --oauth";
    /// Fleet mode (`DOCKER_CREDENTIAL_GITLAB_STORE=vault`): where Vault/OpenBao is and how
    /// to log in to it. The `VAULT_*` names are the `vault` CLI's own, `BAO_*` OpenBao's.
    VAULT_ADDR = "VAULT_ADDR",
        help = "fleet mode: the Vault address, e.g. https://vault.example.com:8200";
    BAO_ADDR = "BAO_ADDR",
        help = "fleet mode: the OpenBao address, when VAULT_ADDR is unset";
    VAULT_TOKEN = "VAULT_TOKEN",
        help = "fleet mode: the Vault token (else BAO_TOKEN, ~/.vault-token, then AppRole)";
    BAO_TOKEN = "BAO_TOKEN",
        help = "fleet mode: the OpenBao token, when VAULT_TOKEN is unset";
    VAULT_CACERT = "VAULT_CACERT",
        help = "fleet mode: the PEM CA certificate(s) that Vault's certificate is checked against";
    VAULT_NAMESPACE = "VAULT_NAMESPACE",
        help = "fleet mode: the Vault/OpenBao namespace";
    VAULT_ROLE_ID = "DOCKER_CREDENTIAL_GITLAB_VAULT_ROLE_ID",
        help = "fleet mode: AppRole role_id (login at auth/approle), with ..._VAULT_SECRET_ID";
    VAULT_SECRET_ID = "DOCKER_CREDENTIAL_GITLAB_VAULT_SECRET_ID",
        help = "fleet mode: AppRole secret_id; its token is kept in memory only";
    VAULT_PATH = "DOCKER_CREDENTIAL_GITLAB_VAULT_PATH",
        help = "fleet mode: KV v2 mount/prefix of the records (default secret/docker-credential-gitlab)";
    HOST_ID = "DOCKER_CREDENTIAL_GITLAB_HOST_ID",
        help = "fleet mode: this host's id in leases and claims, [A-Za-z0-9._-] (default the hostname)";
    /// GitLab Runner sets it in every job.
    GITLAB_CI = "GITLAB_CI",
        help = "true: serve CI_REGISTRY_*, CI_JOB_TOKEN, CI_DEPENDENCY_PROXY_* (GitLab CI jobs)";
    /// Most CI systems set it.
    CI = "CI",
        help = "true: a CI job (the file store is then auto's fallback)";
    CI_REGISTRY = "CI_REGISTRY";
    CI_REGISTRY_USER = "CI_REGISTRY_USER";
    CI_REGISTRY_PASSWORD = "CI_REGISTRY_PASSWORD";
    CI_JOB_TOKEN = "CI_JOB_TOKEN";
    /// The GitLab running the job: a job token is never sent anywhere else.
    CI_SERVER_URL = "CI_SERVER_URL";
    CI_DEPENDENCY_PROXY_SERVER = "CI_DEPENDENCY_PROXY_SERVER";
    CI_DEPENDENCY_PROXY_USER = "CI_DEPENDENCY_PROXY_USER";
    CI_DEPENDENCY_PROXY_PASSWORD = "CI_DEPENDENCY_PROXY_PASSWORD";
    /// Docker's own: where config.json is, and a config given inline.
    DOCKER_CONFIG = "DOCKER_CONFIG";
    HOME = "HOME";
    USERPROFILE = "USERPROFILE";
    DOCKER_AUTH_CONFIG = "DOCKER_AUTH_CONFIG";
    /// podman's: where auth.json is.
    REGISTRY_AUTH_FILE = "REGISTRY_AUTH_FILE";
    XDG_RUNTIME_DIR = "XDG_RUNTIME_DIR";
    /// Where docker looks for `docker-credential-gitlab`.
    PATH = "PATH";
    /// A CA bundle for HTTPS to GitLab.
    SSL_CERT_FILE = "SSL_CERT_FILE";
    /// Test builds (`fault-injection`) only: shift the clock, shorten the settle time,
    /// kill or pause a renewal at a named step.
    CLOCK_OFFSET_SECS = "DOCKER_CREDENTIAL_GITLAB_CLOCK_OFFSET_SECS";
    /// Test builds: where the tests' simulated time puts Vault's clock (a real OpenBao
    /// cannot be moved), so fleet tests can live through days as with GitLab.
    VAULT_CLOCK_OFFSET_SECS = "DOCKER_CREDENTIAL_GITLAB_VAULT_CLOCK_OFFSET_SECS";
    SETTLE_SECS = "DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS";
    FAULT = "DOCKER_CREDENTIAL_GITLAB_FAULT";
    FAULT_FILE = "DOCKER_CREDENTIAL_GITLAB_FAULT_FILE";
}

/// A snapshot of the variables in [`VARS`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    vars: HashMap<&'static str, OsString>,
}

impl Env {
    /// This process's snapshot, taken on first use.
    pub fn process() -> &'static Env {
        static PROCESS: OnceLock<Env> = OnceLock::new();
        PROCESS.get_or_init(|| Env {
            vars: VARS
                .iter()
                .filter_map(|v| Some((v.name, std::env::var_os(v.name)?)))
                .collect(),
        })
    }

    /// A snapshot made of `pairs` (tests). Only names in [`VARS`] are kept, as in a real
    /// snapshot.
    #[cfg(test)]
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .filter_map(|(k, v)| Some((known(k)?, OsString::from(v))))
                .collect(),
        }
    }

    /// The value of `name` as UTF-8; an empty or non-UTF-8 variable counts as unset.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.os(name)?.to_str()
    }

    /// The raw value of `name`; an empty variable counts as unset.
    pub fn os(&self, name: &str) -> Option<&OsString> {
        debug_assert!(known(name).is_some(), "{name} is not in env::VARS");
        self.vars.get(name).filter(|v| !v.is_empty())
    }

    /// `name` as a path, when set and not empty.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.os(name).map(PathBuf::from)
    }

    fn is_true(&self, name: &str) -> bool {
        self.var(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }

    /// Inside a GitLab CI job (GitLab Runner sets `GITLAB_CI=true`).
    pub fn is_gitlab_ci(&self) -> bool {
        self.is_true(GITLAB_CI)
    }

    /// Inside any CI job: `GITLAB_CI=true`, or `CI=true` (GitHub Actions, GitLab, most others).
    pub fn is_ci(&self) -> bool {
        self.is_gitlab_ci() || self.is_true(CI)
    }

    /// A test knob's value, parsed; always `None` outside test builds.
    pub fn knob<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        if cfg!(feature = "fault-injection") {
            self.var(name)?.parse().ok()
        } else {
            None
        }
    }
}

fn known(name: &str) -> Option<&'static str> {
    VARS.iter().map(|v| v.name).find(|n| *n == name)
}

/// `--help`'s Environment block: one variable per line, descriptions aligned in one column.
/// Printed verbatim (clap does not rewrap it), so it reads the same at any width.
pub(crate) fn help_block() -> String {
    let shown: Vec<_> = VARS
        .iter()
        .filter_map(|v| Some((v.name, v.help?)))
        .collect();
    let width = shown.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut out = String::from("Environment:\n");
    for (name, help) in shown {
        out.push_str(&format!("  {name:<width$}  {help}\n"));
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_detection_and_empty_values() {
        assert!(Env::from_pairs([("CI", "true")]).is_ci());
        assert!(Env::from_pairs([("GITLAB_CI", "true")]).is_ci());
        assert!(Env::from_pairs([("CI", "1")]).is_ci());
        assert!(!Env::from_pairs([("CI", "false")]).is_ci());
        assert!(!Env::from_pairs([("CI", "")]).is_ci());
        assert!(!Env::from_pairs([("CI", "true")]).is_gitlab_ci());
        assert_eq!(Env::from_pairs([(TOKEN, "")]).var(TOKEN), None);
        assert_eq!(Env::from_pairs([(TOKEN, "t")]).var(TOKEN), Some("t"));
    }

    #[test]
    fn names_are_unique_and_the_help_block_is_aligned() {
        let mut names: Vec<_> = VARS.iter().map(|v| v.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), VARS.len());
        let block = help_block();
        let lines: Vec<&str> = block.lines().skip(1).collect();
        assert_eq!(
            lines.len(),
            VARS.iter().filter(|v| v.help.is_some()).count()
        );
        // Where the description starts: after the name and the padding.
        let column = |l: &str| {
            let name = l.trim_start().split(' ').next().unwrap_or_default();
            let rest = &l[l.find(name).unwrap() + name.len()..];
            l.len() - rest.trim_start().len()
        };
        for (line, var) in lines.iter().zip(VARS.iter().filter(|v| v.help.is_some())) {
            assert!(line.starts_with(&format!("  {} ", var.name)), "{line}");
            assert_eq!(column(line), column(lines[0]), "{block}");
        }
    }
}
