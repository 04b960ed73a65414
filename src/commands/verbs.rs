//! The protocol verbs docker and other clients call: `store`, `get`, `erase`, `list`,
//! `version`.
//!
//! The steady `get` path is: read stdin, read the state file, one keychain call, print.
//! No lock, no network, no async runtime. An unknown registry costs no keychain call at all,
//! because the state file already says we hold nothing for it.

use std::io::{Read, Write};

use crate::protocol::{self, InputError, NOT_FOUND, Verb};
use crate::registry::{InvalidHost, RegistryHost};
use crate::state::{Entry, StateError, StateFile};
use crate::store::{SecretStore, StoreChoice, StoreError};

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

fn get(input: &str) -> Result<zeroize::Zeroizing<String>, VerbError> {
    let server = protocol::parse_server(input)?;
    let host = RegistryHost::parse(server)?;
    let state = StateFile::open_default()?.load()?;
    let entry = state
        .entries
        .get(host.as_str())
        .ok_or(VerbError::NotFound)?;
    let secret = SecretStore::open(entry.store)?
        .get(&host)?
        .ok_or(VerbError::NotFound)?;
    Ok(protocol::render_get(server, &entry.username, &secret))
}

fn store(input: &str) -> Result<(), VerbError> {
    let creds = protocol::parse_credentials(input)?;
    let host = RegistryHost::parse(&creds.server_url)?;
    let choice = StoreChoice::from_env()?;
    let state_file = StateFile::open_default()?;
    let guard = state_file.lock()?;
    let mut state = guard.load()?;
    let previous = state.entries.get(host.as_str()).cloned();

    // Under `auto`, a registry stays in the store that already holds it.
    let backend = SecretStore::write(
        choice,
        previous.as_ref().map(|p| p.store),
        &host,
        &creds.secret,
    )?;
    if let Some(prev) = &previous
        && prev.store != backend
    {
        // Best effort: the state file no longer points at the old copy either way.
        let _ = SecretStore::open(prev.store).and_then(|old| old.delete(&host));
    }
    // A new secret invalidates whatever we knew about the old one (kind, scopes, expiry).
    state.entries.insert(
        host.as_str().to_owned(),
        Entry {
            server_url: creds.server_url.trim().to_owned(),
            username: creds.username,
            store: backend,
            stored_at: jiff::Timestamp::now(),
            extra: Default::default(),
        },
    );
    guard.save(&state)?;
    Ok(())
}

fn erase(input: &str) -> Result<(), VerbError> {
    let host = RegistryHost::parse(protocol::parse_server(input)?)?;
    let state_file = StateFile::open_default()?;
    // docker logout erases up to four spellings; absent ones cost one file read, no lock.
    if !state_file.load()?.entries.contains_key(host.as_str()) {
        return Ok(());
    }
    let guard = state_file.lock()?;
    let mut state = guard.load()?;
    if let Some(entry) = state.entries.get(host.as_str()) {
        SecretStore::open(entry.store)?.delete(&host)?;
        state.entries.remove(host.as_str());
        guard.save(&state)?;
    }
    Ok(())
}

fn list() -> Result<String, VerbError> {
    let state = StateFile::open_default()?.load()?;
    Ok(protocol::render_list(
        state
            .entries
            .values()
            .map(|e| (e.server_url.as_str(), e.username.as_str())),
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
