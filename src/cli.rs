//! Command-line parsing and dispatch.
//!
//! The protocol verbs are dispatched by hand, before clap, because their contract is not
//! clap's: exactly one argument, errors on stdout, exit 1, a fixed usage line
//! (reference §C1). Everything else (user commands, `--help`) goes through clap.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::BINARY_NAME;
use crate::commands::verbs;
use crate::protocol::Verb;

#[derive(Debug, Parser)]
#[command(
    name = BINARY_NAME,
    about = "Docker credential helper for GitLab container registries",
    long_about = "Docker credential helper for GitLab container registries.\n\n\
        Docker, BuildKit, podman, skopeo and crane call the protocol verbs themselves once \
        `credHelpers` in ~/.docker/config.json points a registry at \"gitlab\".",
    disable_version_flag = true,
    after_help = "Environment:\n  \
        DOCKER_CREDENTIAL_GITLAB_STORE     secret store: auto (default), secret-service, keyutils, keychain, wincred\n  \
        DOCKER_CREDENTIAL_GITLAB_DATA_DIR  directory for the non-secret state file"
)]
struct Cli {
    /// Print the version and exit.
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// [protocol] Store credentials read as JSON from stdin (called by `docker login`).
    Store,
    /// [protocol] Print the credentials for the registry named on stdin.
    Get,
    /// [protocol] Forget the credentials for the registry named on stdin (`docker logout`).
    Erase,
    /// [protocol] Print every stored registry with its username, as JSON.
    List,
    /// [protocol] Print the version.
    Version,
}

/// The usage line docker-credential-helpers prints for a malformed invocation.
fn usage_line() -> String {
    format!("Usage: {BINARY_NAME} <store|get|erase|list|version>")
}

pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let first = args.get(1).and_then(|a| a.to_str());

    if let Some(verb) = first.and_then(Verb::parse) {
        if args.len() != 2 {
            return fail(&usage_line());
        }
        return run_verb(verb);
    }
    match first {
        None => return fail(&usage_line()),
        Some("-v" | "--version") if args.len() == 2 => return run_verb(Verb::Version),
        Some(word) if !word.starts_with('-') && !is_user_command(word) => {
            return fail(&format!("{BINARY_NAME}: unknown action: {word}"));
        }
        _ => {}
    }

    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if cli.version {
        return run_verb(Verb::Version);
    }
    match cli.command {
        // Verbs were dispatched above; reaching here means extra flags were given.
        Some(_) | None => fail(&usage_line()),
    }
}

/// User commands that clap handles (the protocol verbs are not among them).
fn is_user_command(word: &str) -> bool {
    Cli::command()
        .get_subcommands()
        .any(|c| c.get_name() == word && Verb::parse(word).is_none())
        || word == "help"
}

fn run_verb(verb: Verb) -> ExitCode {
    let stdout = std::io::stdout().lock();
    match verbs::run(verb, std::io::stdin().lock(), stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

/// Prints one line on stdout (where credential-helper clients read errors) and exits 1.
fn fail(line: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn verbs_are_not_user_commands() {
        for v in ["store", "get", "erase", "list", "version"] {
            assert!(!is_user_command(v));
        }
        assert!(is_user_command("help"));
        assert!(!is_user_command("frobnicate"));
    }
}
