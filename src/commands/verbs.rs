//! The protocol verbs docker and other clients call: `store`, `get`, `erase`, `list`,
//! `version`.
//!
//! `get` and `list` ask the credential sources in order ([`crate::sources`]): stored, then
//! the GitLab CI job, then the generic environment. The steady `get` path is: read stdin,
//! read the state file, one keychain call (none for an environment credential), print.
//! No lock, no network, no async runtime. An unknown registry costs no keychain call at all,
//! because the state file already says we hold nothing for it.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::datadir::error::StateError;
use crate::env::Env;
use crate::protocol::{self, InputError, NOT_FOUND, Verb};
use crate::records::{self, NewCredential, NoDataDir, Records};
use crate::registry::{InvalidHost, RegistryHost};
use crate::sources::{self, Cascade};
use crate::store::{StoreChoice, StoreError};

/// A verb's failure. `Display` is the exact line printed on stdout before exit 1.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerbError {
    #[error("{NOT_FOUND}")]
    NotFound,
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Host(#[from] InvalidHost),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Records(#[from] records::Error),
    #[error(transparent)]
    Sources(#[from] sources::Error),
    #[error("could not write the answer: {0}")]
    Output(std::io::ErrorKind),
}

/// What a verb runs against: the records (none without a home directory) and the
/// environment. The process's own, or a test's.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub records: Option<Records>,
    pub env: &'a Env,
}

impl Context<'_> {
    pub fn new(env: &Env) -> Context<'_> {
        Context {
            records: Records::locate(env).ok(),
            env,
        }
    }

    fn records(&self) -> Result<&Records, VerbError> {
        self.records
            .as_ref()
            .ok_or(VerbError::State(StateError::NoDataDir(NoDataDir)))
    }

    fn cascade(&self) -> Cascade<'_> {
        Cascade {
            records: self.records.as_ref(),
            env: self.env,
        }
    }

    fn choice(&self) -> Result<StoreChoice, StoreError> {
        StoreChoice::from_env(self.env)
    }
}

/// Runs one verb in `ctx`. Nothing is printed on failure: the caller prints the error line.
pub(crate) fn run(
    ctx: &Context<'_>,
    verb: Verb,
    stdin: impl Read,
    mut stdout: impl Write,
) -> Result<(), VerbError> {
    let answer = match verb {
        Verb::Version => Some(zeroize::Zeroizing::new(version_line())),
        Verb::List => Some(zeroize::Zeroizing::new(list(ctx)?)),
        Verb::Get => Some(get(ctx, &protocol::read_input(stdin)?)?),
        Verb::Store => {
            store(ctx, &protocol::read_input(stdin)?)?;
            None
        }
        Verb::Erase => {
            erase(ctx, &protocol::read_input(stdin)?)?;
            None
        }
    };
    if let Some(text) = answer {
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| VerbError::Output(e.kind()))?;
    }
    Ok(())
}

/// `docker-credential-gitlab (<package>) v<version>`, as docker-credential-helpers prints it.
pub fn version_line() -> String {
    format!(
        "{} ({}) v{}\n",
        crate::BINARY_NAME,
        crate::PACKAGE,
        crate::VERSION
    )
}

/// A whole `get`, renewal included, never takes longer than this.
pub(crate) const GET_DEADLINE: Duration = Duration::from_secs(20);

fn get(ctx: &Context<'_>, input: &str) -> Result<zeroize::Zeroizing<String>, VerbError> {
    let deadline = Instant::now() + GET_DEADLINE;
    let server = protocol::parse_server(input)?;
    let host = RegistryHost::parse(server)?;
    let found = ctx.cascade().get(&host, deadline)?;
    let found = found.ok_or(VerbError::NotFound)?;
    Ok(protocol::render_get(server, &found.username, &found.secret))
}

fn store(ctx: &Context<'_>, input: &str) -> Result<(), VerbError> {
    let creds = protocol::parse_credentials(input)?;
    let host = RegistryHost::parse(&creds.server_url)?;
    let choice = ctx.choice()?;
    ctx.records()?.save(
        choice,
        NewCredential {
            host: &host,
            server_url: &creds.server_url,
            username: &creds.username,
            secret: &creds.secret,
            gitlab: None,
        },
    )?;
    Ok(())
}

/// Forgets a stored credential. A host served only by the environment (or by nothing) is
/// fine: nothing changes, as `erase` is idempotent.
fn erase(ctx: &Context<'_>, input: &str) -> Result<(), VerbError> {
    let host = RegistryHost::parse(protocol::parse_server(input)?)?;
    if let Some(records) = &ctx.records {
        records.forget(ctx.choice().ok(), &host)?;
    }
    Ok(())
}

fn list(ctx: &Context<'_>) -> Result<String, VerbError> {
    let all = ctx.cascade().list()?;
    Ok(protocol::render_list(
        all.iter()
            .map(|(server, user)| (server.as_str(), user.as_str())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line_format() {
        assert_eq!(
            version_line(),
            format!(
                "docker-credential-gitlab (gitlab.com/docker-credential-gitlab/docker-credential-gitlab) v{}\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn not_found_line_is_the_sentinel() {
        assert_eq!(VerbError::NotFound.to_string(), NOT_FOUND);
    }

    /// A context on the in-memory store, with `env` on top. The mock store is shared by the
    /// whole test process, so each test uses its own hosts.
    fn memory_env(env: &[(&str, &str)]) -> Env {
        let mut pairs = vec![(crate::env::STORE, "memory")];
        pairs.extend_from_slice(env);
        Env::from_pairs(pairs)
    }

    fn memory_ctx<'a>(dir: &std::path::Path, env: &'a Env) -> Context<'a> {
        Context {
            records: Some(Records::at(dir)),
            env,
        }
    }

    fn call(ctx: &Context<'_>, verb: Verb, stdin: &str) -> Result<String, String> {
        let mut out = Vec::new();
        run(ctx, verb, stdin.as_bytes(), &mut out).map_err(|e| e.to_string())?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn protocol_vectors_on_the_memory_store() {
        let dir = tempfile::tempdir().unwrap();
        let env = memory_env(&[]);
        let ctx = memory_ctx(dir.path(), &env);
        let host = "vectors.memory.example";
        assert_eq!(call(&ctx, Verb::Get, host), Err(NOT_FOUND.to_owned()));
        assert_eq!(call(&ctx, Verb::List, "").unwrap(), "{}\n");
        let payload =
            format!("{{\"ServerURL\":\"{host}\",\"Username\":\"alice\",\"Secret\":\"s-1\"}}\n");
        assert_eq!(call(&ctx, Verb::Store, &payload).unwrap(), "");
        let want =
            format!("{{\"ServerURL\":\"{host}\",\"Username\":\"alice\",\"Secret\":\"s-1\"}}\n");
        assert_eq!(call(&ctx, Verb::Get, host).unwrap(), want);
        for spelling in [
            format!("https://{host}/"),
            format!("{host}/group/project"),
            host.to_uppercase(),
        ] {
            let got: serde_json::Value =
                serde_json::from_str(&call(&ctx, Verb::Get, &spelling).unwrap()).unwrap();
            assert_eq!(got["ServerURL"], spelling.as_str());
            assert_eq!(got["Secret"], "s-1");
        }
        assert_eq!(
            call(&ctx, Verb::Get, &format!("{host}:5050")),
            Err(NOT_FOUND.to_owned())
        );
        assert_eq!(
            call(&ctx, Verb::List, "").unwrap(),
            format!("{{\"{host}\":\"alice\"}}\n")
        );
        for _ in 0..2 {
            assert_eq!(call(&ctx, Verb::Erase, host).unwrap(), "");
        }
        assert_eq!(call(&ctx, Verb::Get, host), Err(NOT_FOUND.to_owned()));
        assert_eq!(call(&ctx, Verb::List, "").unwrap(), "{}\n");
    }

    #[test]
    fn stored_wins_over_the_job_and_erase_leaves_the_environment_alone() {
        let dir = tempfile::tempdir().unwrap();
        let host = "ci.memory.example:5050";
        let env = memory_env(&[
            ("GITLAB_CI", "true"),
            ("CI_REGISTRY", host),
            ("CI_JOB_TOKEN", "job-token"),
        ]);
        let ctx = memory_ctx(dir.path(), &env);
        let job = format!(
            "{{\"ServerURL\":\"{host}\",\"Username\":\"gitlab-ci-token\",\"Secret\":\"job-token\"}}\n"
        );
        assert_eq!(call(&ctx, Verb::Get, host).unwrap(), job);
        assert_eq!(
            call(&ctx, Verb::List, "").unwrap(),
            format!("{{\"{host}\":\"gitlab-ci-token\"}}\n")
        );
        // Erasing what only the environment serves succeeds and writes nothing.
        assert_eq!(call(&ctx, Verb::Erase, host).unwrap(), "");
        assert!(!dir.path().join("state.json").exists());
        assert_eq!(call(&ctx, Verb::Get, host).unwrap(), job);

        // docker login -u $CI_DEPLOY_USER: the stored deploy token wins.
        let deploy = format!(
            "{{\"ServerURL\":\"{host}\",\"Username\":\"gitlab+deploy-token-1\",\"Secret\":\"gldt-x\"}}"
        );
        call(&ctx, Verb::Store, &deploy).unwrap();
        assert_eq!(call(&ctx, Verb::Get, host).unwrap(), format!("{deploy}\n"));
        assert_eq!(
            call(&ctx, Verb::List, "").unwrap(),
            format!("{{\"{host}\":\"gitlab+deploy-token-1\"}}\n")
        );
        // docker logout: the job token serves again.
        call(&ctx, Verb::Erase, host).unwrap();
        assert_eq!(call(&ctx, Verb::Get, host).unwrap(), job);
    }

    #[test]
    fn without_a_home_the_environment_still_serves() {
        let env = Env::from_pairs([
            ("DOCKER_CREDENTIAL_GITLAB_TOKEN", "glpat-env"),
            ("DOCKER_CREDENTIAL_GITLAB_REGISTRY", "nohome.example"),
        ]);
        let ctx = Context {
            records: None,
            env: &env,
        };
        let got = call(&ctx, Verb::Get, "nohome.example").unwrap();
        assert_eq!(
            got,
            "{\"ServerURL\":\"nohome.example\",\"Username\":\"oauth2\",\"Secret\":\"glpat-env\"}\n"
        );
        assert_eq!(
            call(&ctx, Verb::List, "").unwrap(),
            "{\"nohome.example\":\"oauth2\"}\n"
        );
        assert_eq!(call(&ctx, Verb::Erase, "nohome.example").unwrap(), "");
        let err = call(
            &ctx,
            Verb::Store,
            r#"{"ServerURL":"nohome.example","Username":"a","Secret":"b"}"#,
        )
        .unwrap_err();
        assert!(err.contains("HOME"), "{err}");
    }
}
