//! Where a credential comes from: one seam, checked in this order for `get` and `list`:
//!
//! 1. [`stored`]: a credential stored for the host (`login`, or `docker login` through
//!    `store`). What the user did explicitly always wins.
//! 2. [`gitlab_ci`]: the GitLab CI job's own variables (`CI_REGISTRY_*`, `CI_JOB_TOKEN`,
//!    `CI_DEPENDENCY_PROXY_*`), with zero set-up.
//! 3. [`generic`]: `DOCKER_CREDENTIAL_GITLAB_TOKEN` and friends, for any other CI.
//! 4. Nothing: the caller answers with the not-found sentinel.
//!
//! Environment sources are read-only: `store`/`erase` never touch them, and nothing from
//! them is rotated, refreshed, leased or written to disk. Serving one costs no keychain
//! call and no file write.

use crate::environment::Environment;
use crate::registry::{InvalidHost, RegistryHost};
use crate::secret::Secret;

pub mod generic;
pub mod gitlab_ci;
pub mod stored;

/// Which source served a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Stored,
    GitLabCi,
    Environment,
}

impl Source {
    /// As `status` shows it.
    pub fn describe(self) -> &'static str {
        match self {
            Source::Stored => "stored",
            Source::GitLabCi => "GitLab CI job",
            Source::Environment => "environment (DOCKER_CREDENTIAL_GITLAB_TOKEN)",
        }
    }
}

/// A credential read from the environment.
#[derive(Debug)]
pub struct EnvCredential {
    pub host: RegistryHost,
    pub username: String,
    pub secret: Secret,
    pub source: Source,
    /// The variable that holds the secret (named by `status` and `doctor`, never its value).
    pub secret_var: &'static str,
}

/// An environment variable that names a registry holds something else.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {source}")]
pub struct EnvError {
    pub var: &'static str,
    pub source: InvalidHost,
}

pub(crate) fn parse_host(var: &'static str, value: &str) -> Result<RegistryHost, EnvError> {
    RegistryHost::parse(value).map_err(|source| EnvError { var, source })
}

/// Every credential the environment offers, in source order; the first one for a host
/// wins.
pub fn environment(env: &Environment) -> Result<Vec<EnvCredential>, EnvError> {
    let mut all = gitlab_ci::credentials(env)?;
    all.extend(generic::credentials(env)?);
    let mut seen = Vec::new();
    all.retain(|c| {
        let first = !seen.contains(&c.host);
        seen.push(c.host.clone());
        first
    });
    Ok(all)
}

/// The environment's credential for `host`, if any.
pub fn from_environment(
    env: &Environment,
    host: &RegistryHost,
) -> Result<Option<EnvCredential>, EnvError> {
    Ok(environment(env)?.into_iter().find(|c| c.host == *host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ExposeSecret;

    fn host(s: &str) -> RegistryHost {
        RegistryHost::parse(s).unwrap()
    }

    #[test]
    fn gitlab_ci_wins_over_the_generic_environment() {
        let env = Environment::from_pairs([
            ("GITLAB_CI", "true"),
            ("CI_REGISTRY", "registry.gitlab.com"),
            ("CI_REGISTRY_USER", "gitlab-ci-token"),
            ("CI_REGISTRY_PASSWORD", "job-secret"),
            ("DOCKER_CREDENTIAL_GITLAB_TOKEN", "glpat-generic"),
            (
                "DOCKER_CREDENTIAL_GITLAB_REGISTRY",
                "registry.gitlab.com, other.example:5050",
            ),
        ]);
        let all = environment(&env).unwrap();
        let hosts: Vec<_> = all.iter().map(|c| (c.host.as_str(), c.source)).collect();
        assert_eq!(
            hosts,
            [
                ("registry.gitlab.com", Source::GitLabCi),
                ("other.example:5050", Source::Environment)
            ]
        );
        let c = from_environment(&env, &host("registry.gitlab.com"))
            .unwrap()
            .unwrap();
        assert_eq!(c.secret.expose_secret(), "job-secret");
        assert!(
            from_environment(&env, &host("nowhere.example"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_bad_registry_variable_is_one_clear_error() {
        let env = Environment::from_pairs([
            ("DOCKER_CREDENTIAL_GITLAB_TOKEN", "glpat-generic"),
            ("DOCKER_CREDENTIAL_GITLAB_REGISTRY", "glpat-oops@host"),
        ]);
        let e = environment(&env).unwrap_err().to_string();
        assert!(e.starts_with("DOCKER_CREDENTIAL_GITLAB_REGISTRY: "), "{e}");
        assert!(!e.contains('\n'));
    }
}
