//! `doctor` for a registry served by the environment (a GitLab CI job, or
//! `DOCKER_CREDENTIAL_GITLAB_TOKEN`): the credential is exchanged at GitLab's `/jwt/auth`
//! exactly as docker will, and a 401 is explained in the words that fit the source.

use reqwest::Url;

use super::token::window_finding;
use super::{Finding, Net};
use crate::env::Env;
use crate::gitlab::http::{check_transport, redact, same_base};
use crate::gitlab::{self, JwtAuth, jwt};
use crate::registry::RegistryHost;
use crate::sources::{EnvCredential, Source};

pub(super) fn check(
    host: &RegistryHost,
    c: &EnvCredential,
    env: &Env,
    net: &mut Net,
) -> Vec<Finding> {
    const JWT: &str = "/jwt/auth";
    let mut out = vec![Finding::pass(
        "credential",
        format!(
            "served by the {} from {} (user {}); read-only: never stored or renewed",
            match c.source {
                Source::GitLabCi => "GitLab CI job",
                _ => "environment",
            },
            c.secret_var,
            c.username
        ),
    )];
    let http = match net.get() {
        Ok(h) => h,
        Err(e) => {
            out.push(Finding::fail("gitlab", e));
            return out;
        }
    };
    let challenge = match gitlab::discover(http, host) {
        Ok(c) => c,
        Err(e) => {
            out.push(Finding::fail("registry", e.to_string()));
            return out;
        }
    };
    // In a job, the token belongs to the GitLab running it: never send it anywhere else.
    if let Some(server) = env
        .var(crate::env::CI_SERVER_URL)
        .filter(|_| c.source == Source::GitLabCi)
    {
        let same = Url::parse(server)
            .ok()
            .zip(challenge.gitlab_url())
            .is_some_and(|(a, b)| same_base(&a, &b));
        if !same {
            out.push(
                Finding::fail(
                    "registry",
                    format!(
                        "{host} sends clients to {}, not to this job's GitLab ({server}); refusing to send the job token",
                        redact(&challenge.realm)
                    ),
                )
                .fix("check CI_REGISTRY and the registry's token realm"),
            );
            return out;
        }
    }
    if let Err(e) = check_transport(&challenge.realm) {
        out.push(Finding::fail("registry", e.to_string()));
        return out;
    }
    match gitlab::jwt_auth(http, &challenge, &c.username, &c.secret, None) {
        Ok(JwtAuth::Token(t)) => {
            out.push(Finding::pass(
                JWT,
                "GitLab accepts the credential and issues registry tokens",
            ));
            out.push(window_finding(
                jwt::time_claims(&t).map(|c| c.window_secs()),
            ));
        }
        Ok(JwtAuth::Unauthorized(_)) if c.source == Source::GitLabCi => out.push(
            Finding::fail(
                JWT,
                format!(
                    "GitLab refused {} (401): the job token is no longer valid (the job has finished or was cancelled)",
                    c.secret_var
                ),
            )
            .fix("run the command inside a running job, or store another credential with docker login"),
        ),
        Ok(JwtAuth::Unauthorized(_)) => out.push(
            Finding::fail(
                JWT,
                format!(
                    "GitLab refused {} (401): it is wrong, expired or revoked",
                    c.secret_var
                ),
            )
            .fix("set it to a valid token with read_registry (and write_registry to push)"),
        ),
        Ok(JwtAuth::Denied(message)) => out.push(
            Finding::fail(
                JWT,
                format!("GitLab denied {} (403): {message}", c.secret_var),
            )
            .fix("the credential needs registry access to this project"),
        ),
        Err(e) => out.push(Finding::fail(JWT, e.to_string())),
    }
    out
}
