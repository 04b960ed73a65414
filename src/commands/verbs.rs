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

use crate::credentials::{self, NewCredential};
use crate::environment::Environment;
use crate::protocol::{self, InputError, NOT_FOUND, Verb};
use crate::registry::{InvalidHost, RegistryHost};
use crate::sources::{self, stored};
use crate::state::{StateError, StateFile};
use crate::store::{StoreChoice, StoreError};

/// A verb's failure. `Display` is the exact line printed on stdout before exit 1.
#[derive(Debug, thiserror::Error)]
pub enum VerbError {
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
    Credentials(#[from] credentials::Error),
    #[error(transparent)]
    Stored(#[from] stored::Error),
    #[error(transparent)]
    Environment(#[from] sources::EnvError),
    #[error("could not write the answer: {0}")]
    Output(std::io::ErrorKind),
}

/// What a verb runs against: the state file (none without a home directory) and the
/// environment. The process's own, or a test's.
#[derive(Debug)]
pub struct Context {
    pub state_file: Option<StateFile>,
    pub env: Environment,
}

impl Context {
    pub fn from_process() -> Context {
        Context {
            state_file: crate::paths::data_dir().ok().map(StateFile::in_dir),
            env: Environment::from_process(),
        }
    }

    fn state_file(&self) -> Result<&StateFile, VerbError> {
        self.state_file
            .as_ref()
            .ok_or(VerbError::State(StateError::NoDataDir(
                crate::paths::NoDataDir,
            )))
    }

    fn choice(&self) -> Result<StoreChoice, StoreError> {
        StoreChoice::parse(
            self.env.var(crate::store::STORE_ENV).unwrap_or_default(),
            self.env.is_ci(),
        )
    }
}

/// Runs one verb with the process's stdin/stdout. Nothing is printed on failure: the caller
/// prints the error line.
pub fn run(verb: Verb, stdin: impl Read, stdout: impl Write) -> Result<(), VerbError> {
    run_in(&Context::from_process(), verb, stdin, stdout)
}

/// Runs one verb in `ctx`.
pub fn run_in(
    ctx: &Context,
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
pub const GET_DEADLINE: Duration = Duration::from_secs(20);

fn get(ctx: &Context, input: &str) -> Result<zeroize::Zeroizing<String>, VerbError> {
    let deadline = Instant::now() + GET_DEADLINE;
    let server = protocol::parse_server(input)?;
    let host = RegistryHost::parse(server)?;
    // 1. Stored (what the user did explicitly wins). Without a home directory nothing can
    //    be stored, but a CI job's environment may still serve.
    if let Some(state_file) = &ctx.state_file
        && let Some((username, secret)) = stored::get(state_file, &host, deadline)?
    {
        return Ok(protocol::render_get(server, &username, &secret));
    }
    // 2.–3. The GitLab CI job, then the generic environment; read-only, never leased.
    let found = sources::from_environment(&ctx.env, &host)?;
    let c = found.ok_or(VerbError::NotFound)?;
    Ok(protocol::render_get(server, &c.username, &c.secret))
}

fn store(ctx: &Context, input: &str) -> Result<(), VerbError> {
    let creds = protocol::parse_credentials(input)?;
    let host = RegistryHost::parse(&creds.server_url)?;
    let choice = ctx.choice()?;
    credentials::save(
        ctx.state_file()?,
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
fn erase(ctx: &Context, input: &str) -> Result<(), VerbError> {
    let host = RegistryHost::parse(protocol::parse_server(input)?)?;
    if let Some(state_file) = &ctx.state_file {
        credentials::forget(state_file, &host)?;
    }
    Ok(())
}

fn list(ctx: &Context) -> Result<String, VerbError> {
    let stored = match &ctx.state_file {
        Some(file) => file.load()?.entries,
        None => Default::default(),
    };
    let from_env = sources::environment(&ctx.env)?;
    let env_hosts: Vec<(String, &str)> = from_env
        .iter()
        .filter(|c| !stored.contains_key(c.host.as_str()))
        .map(|c| (c.host.as_str().to_owned(), c.username.as_str()))
        .collect();
    Ok(protocol::render_list(
        stored
            .iter()
            .filter(|(key, _)| RegistryHost::standby_of(key).is_none())
            .map(|(_, e)| (e.server_url.as_str(), e.username.as_str()))
            .chain(env_hosts.iter().map(|(h, u)| (h.as_str(), *u))),
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
    fn memory_ctx(dir: &std::path::Path, env: &[(&str, &str)]) -> Context {
        let mut pairs = vec![(crate::store::STORE_ENV, "memory")];
        pairs.extend_from_slice(env);
        Context {
            state_file: Some(StateFile::in_dir(dir)),
            env: Environment::from_pairs(pairs),
        }
    }

    fn call(ctx: &Context, verb: Verb, stdin: &str) -> Result<String, String> {
        let mut out = Vec::new();
        run_in(ctx, verb, stdin.as_bytes(), &mut out).map_err(|e| e.to_string())?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn protocol_vectors_on_the_memory_store() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = memory_ctx(dir.path(), &[]);
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
        let ctx = memory_ctx(
            dir.path(),
            &[
                ("GITLAB_CI", "true"),
                ("CI_REGISTRY", host),
                ("CI_JOB_TOKEN", "job-token"),
            ],
        );
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
        let ctx = Context {
            state_file: None,
            env: Environment::from_pairs([
                ("DOCKER_CREDENTIAL_GITLAB_TOKEN", "glpat-env"),
                ("DOCKER_CREDENTIAL_GITLAB_REGISTRY", "nohome.example"),
            ]),
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
