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

/// Runs one verb with the process's stdin/stdout. Nothing is printed on failure: the caller
/// prints the error line.
pub fn run(verb: Verb, stdin: impl Read, mut stdout: impl Write) -> Result<(), VerbError> {
    let answer = match verb {
        Verb::Version => Some(zeroize::Zeroizing::new(version_line())),
        Verb::List => Some(zeroize::Zeroizing::new(list()?)),
        Verb::Get => Some(get(&protocol::read_input(stdin)?)?),
        Verb::Store => {
            store(&protocol::read_input(stdin)?)?;
            None
        }
        Verb::Erase => {
            erase(&protocol::read_input(stdin)?)?;
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

fn get(input: &str) -> Result<zeroize::Zeroizing<String>, VerbError> {
    let deadline = Instant::now() + GET_DEADLINE;
    let server = protocol::parse_server(input)?;
    let host = RegistryHost::parse(server)?;
    // 1. Stored (what the user did explicitly wins). Without a home directory nothing can
    //    be stored, but a CI job's environment may still serve.
    match StateFile::open_default() {
        Ok(state_file) => {
            if let Some((username, secret)) = stored::get(&state_file, &host, deadline)? {
                return Ok(protocol::render_get(server, &username, &secret));
            }
        }
        Err(StateError::NoDataDir(_)) => {}
        Err(e) => return Err(e.into()),
    }
    // 2.–3. The GitLab CI job, then the generic environment; read-only, never leased.
    let found = sources::from_environment(&Environment::from_process(), &host)?;
    let c = found.ok_or(VerbError::NotFound)?;
    Ok(protocol::render_get(server, &c.username, &c.secret))
}

fn store(input: &str) -> Result<(), VerbError> {
    let creds = protocol::parse_credentials(input)?;
    let host = RegistryHost::parse(&creds.server_url)?;
    let choice = StoreChoice::from_env()?;
    credentials::save(
        &StateFile::open_default()?,
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

fn erase(input: &str) -> Result<(), VerbError> {
    let host = RegistryHost::parse(protocol::parse_server(input)?)?;
    credentials::forget(&StateFile::open_default()?, &host)?;
    Ok(())
}

fn list() -> Result<String, VerbError> {
    let stored = match StateFile::open_default() {
        Ok(file) => file.load()?.entries,
        Err(StateError::NoDataDir(_)) => Default::default(),
        Err(e) => return Err(e.into()),
    };
    let from_env = sources::environment(&Environment::from_process())?;
    let env_hosts: Vec<(String, &str)> = from_env
        .iter()
        .filter(|c| !stored.contains_key(c.host.as_str()))
        .map(|c| (c.host.as_str().to_owned(), c.username.as_str()))
        .collect();
    Ok(protocol::render_list(
        stored
            .values()
            .map(|e| (e.server_url.as_str(), e.username.as_str()))
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
}
