//! `doctor` for a registry served by the environment (a GitLab CI job, or
//! `DOCKER_CREDENTIAL_GITLAB_TOKEN`): the credential is exchanged at GitLab's `/jwt/auth`
//! exactly as docker will, and a 401 is explained in the words that fit the source.

use reqwest::Url;

use super::token::window_finding;
use super::{Finding, Net};
use crate::env::Env;
use crate::gitlab::http::{Http, check_transport, redact, same_base};
use crate::gitlab::{self, Challenge, GitLabError, JwtAuth, jwt};
use crate::registry::RegistryHost;
use crate::sources::{EnvCredential, Source};

pub(super) fn check(
    host: &RegistryHost,
    c: &EnvCredential,
    env: &Env,
    net: &mut Net,
) -> Vec<Finding> {
    let mut out = vec![source_finding(c)];
    let http = match net.get() {
        Ok(h) => h,
        Err(e) => {
            out.push(Finding::fail("gitlab", e));
            return out;
        }
    };
    let challenge = match trusted_challenge(http, host, c, env) {
        Ok(challenge) => challenge,
        Err(failure) => {
            out.push(failure);
            return out;
        }
    };
    let answer = gitlab::jwt_auth(http, &challenge, &c.username, &c.secret, None);
    out.extend(judge_jwt_auth(c, answer));
    out
}

/// Where the credential comes from; it is never stored or renewed.
fn source_finding(c: &EnvCredential) -> Finding {
    Finding::pass(
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
    )
}

/// The registry's token realm, if the credential may be sent there.
fn trusted_challenge(
    http: &Http,
    host: &RegistryHost,
    c: &EnvCredential,
    env: &Env,
) -> Result<Challenge, Finding> {
    let challenge =
        gitlab::discover(http, host).map_err(|e| Finding::fail("registry", e.to_string()))?;
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
            return Err(Finding::fail(
                "registry",
                format!(
                    "{host} sends clients to {}, not to this job's GitLab ({server}); refusing to send the job token",
                    redact(&challenge.realm)
                ),
            )
            .fix("check CI_REGISTRY and the registry's token realm"));
        }
    }
    check_transport(&challenge.realm).map_err(|e| Finding::fail("registry", e.to_string()))?;
    Ok(challenge)
}

/// GitLab's answer at `/jwt/auth`, in the words that fit the credential's source.
fn judge_jwt_auth(c: &EnvCredential, answer: Result<JwtAuth, GitLabError>) -> Vec<Finding> {
    const JWT: &str = "/jwt/auth";
    let failure = match answer {
        Ok(JwtAuth::Token(t)) => {
            return vec![
                Finding::pass(
                    JWT,
                    "GitLab accepts the credential and issues registry tokens",
                ),
                window_finding(jwt::time_claims(&t).map(|c| c.window_secs())),
            ];
        }
        Ok(JwtAuth::Unauthorized(_)) if c.source == Source::GitLabCi => Finding::fail(
            JWT,
            format!(
                "GitLab refused {} (401): the job token is no longer valid (the job has finished or was cancelled)",
                c.secret_var
            ),
        )
        .fix("run the command inside a running job, or store another credential with docker login"),
        Ok(JwtAuth::Unauthorized(_)) => Finding::fail(
            JWT,
            format!(
                "GitLab refused {} (401): it is wrong, expired or revoked",
                c.secret_var
            ),
        )
        .fix("set it to a valid token with read_registry (and write_registry to push)"),
        Ok(JwtAuth::Denied(message)) => Finding::fail(
            JWT,
            format!("GitLab denied {} (403): {message}", c.secret_var),
        )
        .fix("the credential needs registry access to this project"),
        Err(e) => Finding::fail(JWT, e.to_string()),
    };
    vec![failure]
}
