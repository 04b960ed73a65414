//! Where a credential comes from: one cascade of sources ([`Cascade`]), walked in this
//! order by `get`, `list`, `status` and `doctor` alike:
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

use std::time::Instant;

use crate::env::{self, Env};
use crate::records::{self, Entry, Records, State};
use crate::registry::{InvalidHost, RegistryHost};
use crate::secret::Secret;

pub(crate) mod generic;
pub(crate) mod gitlab_ci;
mod handout;
mod pair;
pub(crate) mod stored;

/// Which source served a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
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
pub(crate) struct EnvCredential {
    pub host: RegistryHost,
    pub username: String,
    pub secret: Secret,
    pub source: Source,
    /// The variable that holds the secret (named by `status` and `doctor`, never its value).
    pub secret_var: &'static str,
}

impl EnvCredential {
    /// What kind of credential this is, as `status` shows it.
    pub fn kind(&self) -> &'static str {
        match (self.source, self.secret_var) {
            (_, env::CI_JOB_TOKEN) => "CI job token",
            (Source::GitLabCi, _) => "CI job credential",
            _ => "token from the environment",
        }
    }
}

/// An environment variable that names a registry holds something else.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {source}")]
pub(crate) struct EnvError {
    pub var: &'static str,
    pub source: InvalidHost,
}

pub(crate) fn parse_host(var: &'static str, value: &str) -> Result<RegistryHost, EnvError> {
    RegistryHost::parse(value).map_err(|source| EnvError { var, source })
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Stored(#[from] stored::Error),
    #[error(transparent)]
    Records(#[from] records::Error),
    #[error(transparent)]
    Environment(#[from] EnvError),
}

/// A credential to hand out.
#[derive(Debug)]
pub(crate) struct Found {
    pub username: String,
    pub secret: Secret,
}

/// The sources, in order. `records` is `None` without a data directory (no home): then
/// only the environment can serve.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cascade<'a> {
    pub records: Option<&'a Records>,
    pub env: &'a Env,
}

/// Everything the cascade serves, without loading a secret: what `status` and `doctor` walk.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    /// Every stored key, standby keys included.
    pub stored: State,
    /// The environment's credentials for hosts nothing is stored for (stored wins).
    pub from_env: Vec<EnvCredential>,
}

/// Who serves a registry.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Served<'a> {
    Stored(&'a Entry),
    Environment(&'a EnvCredential),
}

impl Inventory {
    /// The registries served, stored ones first, a standby pair once.
    pub fn registries(&self) -> Vec<RegistryHost> {
        let stored = self
            .stored
            .entries
            .keys()
            .filter_map(|k| RegistryHost::from_key(k).ok())
            .filter(|h| RegistryHost::standby_of(h.as_str()).is_none());
        stored
            .chain(self.from_env.iter().map(|c| c.host.clone()))
            .collect()
    }

    /// Who serves `host`: its stored entry wins over the environment.
    pub fn served(&self, host: &RegistryHost) -> Option<Served<'_>> {
        match self.stored.entries.get(host.as_str()) {
            Some(entry) => Some(Served::Stored(entry)),
            None => self
                .from_env
                .iter()
                .find(|c| c.host == *host)
                .map(Served::Environment),
        }
    }
}

impl Cascade<'_> {
    /// The first source's credential for `host`, valid for the promised time (a stored one
    /// may be renewed first, within `deadline`).
    pub fn get(&self, host: &RegistryHost, deadline: Instant) -> Result<Option<Found>, Error> {
        // 1. Stored (what the user did explicitly wins).
        if let Some(records) = self.records
            && let Some((username, secret)) = stored::get(records, self.env, host, deadline)?
        {
            return Ok(Some(Found { username, secret }));
        }
        // 2.–3. The GitLab CI job, then the generic environment; read-only, never leased.
        Ok(environment(self.env)?
            .into_iter()
            .find(|c| c.host == *host)
            .map(|c| Found {
                username: c.username,
                secret: c.secret,
            }))
    }

    /// Every registry served, as the client stored it (stored) or named it (environment),
    /// with its username. Offline: no secret is loaded.
    pub fn list(&self) -> Result<Vec<(String, String)>, Error> {
        let inventory = self.inventory()?;
        let stored = inventory
            .stored
            .entries
            .iter()
            .filter(|(key, _)| RegistryHost::standby_of(key).is_none())
            .map(|(_, e)| (e.server_url.clone(), e.username.clone()));
        let from_env = inventory
            .from_env
            .iter()
            .map(|c| (c.host.as_str().to_owned(), c.username.clone()));
        Ok(stored.chain(from_env).collect())
    }

    /// What every source holds, without loading a secret.
    pub fn inventory(&self) -> Result<Inventory, Error> {
        let (inventory, mut errors) = self.survey();
        match errors.is_empty() {
            true => Ok(inventory),
            false => Err(errors.remove(0)),
        }
    }

    /// As much of the inventory as can be read, and what could not (for `doctor`, which
    /// reports a broken source and goes on with the others).
    pub fn survey(&self) -> (Inventory, Vec<Error>) {
        let mut errors = Vec::new();
        let stored = match self.records.map(Records::snapshot) {
            Some(Ok(state)) => state,
            Some(Err(e)) => {
                errors.push(e.into());
                State::default()
            }
            None => State::default(),
        };
        let mut from_env = environment(self.env).unwrap_or_else(|e| {
            errors.push(e.into());
            Vec::new()
        });
        from_env.retain(|c| !stored.entries.contains_key(c.host.as_str()));
        (Inventory { stored, from_env }, errors)
    }
}

/// Every credential the environment offers, in source order; the first one for a host
/// wins.
pub(crate) fn environment(env: &Env) -> Result<Vec<EnvCredential>, EnvError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ExposeSecret;

    fn host(s: &str) -> RegistryHost {
        RegistryHost::parse(s).unwrap()
    }

    #[test]
    fn gitlab_ci_wins_over_the_generic_environment() {
        let env = Env::from_pairs([
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
        let cascade = Cascade {
            records: None,
            env: &env,
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        let c = cascade
            .get(&host("registry.gitlab.com"), deadline)
            .unwrap()
            .unwrap();
        assert_eq!(c.secret.expose_secret(), "job-secret");
        assert!(
            cascade
                .get(&host("nowhere.example"), deadline)
                .unwrap()
                .is_none()
        );
        let listed = cascade.list().unwrap();
        assert_eq!(
            listed,
            [
                (
                    "registry.gitlab.com".to_owned(),
                    "gitlab-ci-token".to_owned()
                ),
                ("other.example:5050".to_owned(), "oauth2".to_owned())
            ]
        );
    }

    #[test]
    fn a_bad_registry_variable_is_one_clear_error() {
        let env = Env::from_pairs([
            ("DOCKER_CREDENTIAL_GITLAB_TOKEN", "glpat-generic"),
            ("DOCKER_CREDENTIAL_GITLAB_REGISTRY", "glpat-oops@host"),
        ]);
        let e = environment(&env).unwrap_err().to_string();
        assert!(e.starts_with("DOCKER_CREDENTIAL_GITLAB_REGISTRY: "), "{e}");
        assert!(!e.contains('\n'));
    }
}
