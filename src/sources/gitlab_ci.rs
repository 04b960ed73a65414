//! GitLab CI job credentials, with zero set-up (only when `GITLAB_CI=true`).
//!
//! - The host of `CI_REGISTRY` → `CI_REGISTRY_USER` / `CI_REGISTRY_PASSWORD`; when those are
//!   unset, `gitlab-ci-token` / `CI_JOB_TOKEN`.
//! - The dependency proxy: the host of `CI_DEPENDENCY_PROXY_SERVER` (GitLab sets it with
//!   `:443`) and the same host without `:443`, since docker treats them as two registries →
//!   `CI_DEPENDENCY_PROXY_USER` / `CI_DEPENDENCY_PROXY_PASSWORD`, else the job token.
//!
//! A deploy token (`CI_DEPLOY_USER` / `CI_DEPLOY_PASSWORD`) is not served from here: the
//! job stores it with `docker login -u $CI_DEPLOY_USER --password-stdin`, and the stored
//! credential then wins over the job token.

use super::{EnvCredential, EnvError, Source, parse_host};
use crate::env::{self, Env};
use crate::registry::RegistryHost;
use crate::secret::Secret;

/// The username GitLab expects with `CI_JOB_TOKEN`.
pub(crate) const JOB_TOKEN_USER: &str = "gitlab-ci-token";

pub(crate) fn credentials(env: &Env) -> Result<Vec<EnvCredential>, EnvError> {
    let mut out = Vec::new();
    if !env.is_gitlab_ci() {
        return Ok(out);
    }
    if let Some(registry) = env.var(env::CI_REGISTRY) {
        let host = parse_host(env::CI_REGISTRY, registry)?;
        out.extend(credential(
            env,
            host,
            env::CI_REGISTRY_USER,
            env::CI_REGISTRY_PASSWORD,
        ));
    }
    if let Some(proxy) = env.var(env::CI_DEPENDENCY_PROXY_SERVER) {
        let host = parse_host(env::CI_DEPENDENCY_PROXY_SERVER, proxy)?;
        for host in with_and_without_443(host) {
            out.extend(credential(
                env,
                host,
                env::CI_DEPENDENCY_PROXY_USER,
                env::CI_DEPENDENCY_PROXY_PASSWORD,
            ));
        }
    }
    Ok(out)
}

/// The pair `user_var`/`password_var` when both are set, else the job token.
fn credential(
    env: &Env,
    host: RegistryHost,
    user_var: &'static str,
    password_var: &'static str,
) -> Option<EnvCredential> {
    let (username, secret, secret_var) = match (env.var(user_var), env.var(password_var)) {
        (Some(user), Some(password)) => (user, password, password_var),
        _ => (
            JOB_TOKEN_USER,
            env.var(env::CI_JOB_TOKEN)?,
            env::CI_JOB_TOKEN,
        ),
    };
    Some(EnvCredential {
        host,
        username: username.to_owned(),
        secret: Secret::from(secret.to_owned()),
        source: Source::GitLabCi,
        secret_var,
    })
}

/// `host:443` and `host` (in that order), whichever of the two was given; a host with
/// another port stays alone.
fn with_and_without_443(host: RegistryHost) -> Vec<RegistryHost> {
    let bare = host.as_str().strip_suffix(":443").unwrap_or(host.as_str());
    match (
        RegistryHost::parse(&format!("{bare}:443")),
        RegistryHost::parse(bare),
    ) {
        (Ok(with), Ok(without)) => vec![with, without],
        _ => vec![host],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ExposeSecret;

    fn found(env: &Env) -> Vec<(String, String, String, &'static str)> {
        credentials(env)
            .unwrap()
            .into_iter()
            .map(|c| {
                (
                    c.host.as_str().to_owned(),
                    c.username,
                    c.secret.expose_secret().to_owned(),
                    c.secret_var,
                )
            })
            .collect()
    }

    fn job<'a>(extra: &[(&'a str, &'a str)]) -> Env {
        let mut pairs = vec![
            ("GITLAB_CI", "true"),
            ("CI_JOB_TOKEN", "job-token"),
            ("CI_REGISTRY", "gitlab.example.com:5050"),
        ];
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn only_inside_gitlab_ci() {
        let env = Env::from_pairs([
            ("CI", "true"),
            ("CI_REGISTRY", "gitlab.example.com:5050"),
            ("CI_JOB_TOKEN", "job-token"),
        ]);
        assert!(found(&env).is_empty());
    }

    #[test]
    fn registry_user_and_password_then_the_job_token() {
        let env = job(&[
            ("CI_REGISTRY_USER", "gitlab-ci-token"),
            ("CI_REGISTRY_PASSWORD", "registry-password"),
        ]);
        assert_eq!(
            found(&env),
            [(
                "gitlab.example.com:5050".into(),
                "gitlab-ci-token".into(),
                "registry-password".into(),
                "CI_REGISTRY_PASSWORD"
            )]
        );
        // Half a pair is no pair: the job token serves.
        let env = job(&[("CI_REGISTRY_USER", "someone")]);
        assert_eq!(
            found(&env),
            [(
                "gitlab.example.com:5050".into(),
                "gitlab-ci-token".into(),
                "job-token".into(),
                "CI_JOB_TOKEN"
            )]
        );
        // No job token and no pair: nothing.
        let env = Env::from_pairs([
            ("GITLAB_CI", "true"),
            ("CI_REGISTRY", "gitlab.example.com:5050"),
        ]);
        assert!(found(&env).is_empty());
    }

    #[test]
    fn dependency_proxy_with_and_without_443() {
        let env = job(&[
            ("CI_DEPENDENCY_PROXY_SERVER", "GitLab.Example.com:443"),
            ("CI_DEPENDENCY_PROXY_USER", "gitlab-ci-token"),
            ("CI_DEPENDENCY_PROXY_PASSWORD", "proxy-password"),
        ]);
        let hosts: Vec<_> = found(&env).into_iter().map(|(h, _, s, _)| (h, s)).collect();
        assert_eq!(
            hosts,
            [
                ("gitlab.example.com:5050".into(), "job-token".into()),
                ("gitlab.example.com:443".into(), "proxy-password".into()),
                ("gitlab.example.com".into(), "proxy-password".into()),
            ]
        );
        // Given without the port, both forms still answer; another port stays alone.
        let env = job(&[("CI_DEPENDENCY_PROXY_SERVER", "gitlab.example.com")]);
        assert_eq!(found(&env).len(), 3);
        let env = job(&[("CI_DEPENDENCY_PROXY_SERVER", "proxy.example.com:8443")]);
        assert_eq!(found(&env)[1].0, "proxy.example.com:8443");
        assert_eq!(found(&env).len(), 2);
    }

    #[test]
    fn a_malformed_variable_is_named() {
        let env = job(&[("CI_DEPENDENCY_PROXY_SERVER", "https://")]);
        let e = credentials(&env).unwrap_err().to_string();
        assert!(e.starts_with("CI_DEPENDENCY_PROXY_SERVER: "), "{e}");
    }
}
