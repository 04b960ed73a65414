//! Any other CI (GitHub Actions, Jenkins, …): a token from the environment.
//!
//! - `DOCKER_CREDENTIAL_GITLAB_TOKEN`: the secret;
//! - `DOCKER_CREDENTIAL_GITLAB_USERNAME`: optional, the same default as `login` (`oauth2`;
//!   deploy tokens need their own `gitlab+deploy-token-N`);
//! - `DOCKER_CREDENTIAL_GITLAB_REGISTRY`: the comma-separated hosts it applies to
//!   (default `registry.gitlab.com`).

use super::{EnvCredential, EnvError, Source, parse_host};
use crate::env::{Env, REGISTRY as REGISTRY_ENV, TOKEN as TOKEN_ENV, USERNAME as USERNAME_ENV};
use crate::gitlab::{DEFAULT_USERNAME, GITLAB_COM_REGISTRY};
use crate::secret::Secret;

pub(crate) fn credentials(env: &Env) -> Result<Vec<EnvCredential>, EnvError> {
    let Some(token) = env.var(TOKEN_ENV) else {
        return Ok(Vec::new());
    };
    let username = env.var(USERNAME_ENV).unwrap_or(DEFAULT_USERNAME);
    env.var(REGISTRY_ENV)
        .unwrap_or(GITLAB_COM_REGISTRY)
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            Ok(EnvCredential {
                host: parse_host(REGISTRY_ENV, h)?,
                username: username.to_owned(),
                secret: Secret::from(token.to_owned()),
                source: Source::Environment,
                secret_var: TOKEN_ENV,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ExposeSecret;

    #[test]
    fn defaults_to_gitlab_com_and_oauth2() {
        let env = Env::from_pairs([(TOKEN_ENV, "glpat-x")]);
        let c = credentials(&env).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].host.as_str(), "registry.gitlab.com");
        assert_eq!(c[0].username, "oauth2");
        assert_eq!(c[0].secret.expose_secret(), "glpat-x");
    }

    #[test]
    fn several_hosts_normalised_and_a_username() {
        let env = Env::from_pairs([
            (TOKEN_ENV, "gldt-x"),
            (USERNAME_ENV, "gitlab+deploy-token-3"),
            (
                REGISTRY_ENV,
                " https://Registry.Example.com/ ,, gitlab.example.com:5050",
            ),
        ]);
        let c = credentials(&env).unwrap();
        let hosts: Vec<_> = c.iter().map(|c| c.host.as_str()).collect();
        assert_eq!(hosts, ["registry.example.com", "gitlab.example.com:5050"]);
        assert!(c.iter().all(|c| c.username == "gitlab+deploy-token-3"));
    }

    #[test]
    fn no_token_no_credential() {
        let env = Env::from_pairs([(REGISTRY_ENV, "registry.example.com")]);
        assert!(credentials(&env).unwrap().is_empty());
    }
}
