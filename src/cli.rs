//! Command-line parsing and dispatch.
//!
//! The protocol verbs are dispatched by hand, before clap, because their contract is not
//! clap's: exactly one argument, errors on stdout, exit 1, a fixed usage line
//! (as docker-credential-helpers prints it). Everything else (user commands, `--help`) goes through clap.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::BINARY_NAME;
use crate::commands::{
    completions, configure_docker, doctor, login, logout, man, oauth_login, rotate, status, verbs,
};
use crate::env::Env;
use crate::protocol::Verb;

#[derive(Debug, Parser)]
#[command(
    name = BINARY_NAME,
    about = "Docker credential helper for GitLab container registries",
    long_about = "Docker credential helper for GitLab container registries.\n\n\
        Docker, BuildKit, podman, skopeo and crane call the protocol verbs themselves once \
        `credHelpers` in ~/.docker/config.json points a registry at \"gitlab\".",
    disable_version_flag = true,
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
    /// Log in to a GitLab registry: validate a token, store it, configure Docker.
    Login(login::LoginArgs),
    /// Forget the credentials for a registry.
    Logout {
        registry: String,
        /// Also revoke the token at GitLab (personal, project and group access tokens).
        #[arg(long)]
        revoke: bool,
    },
    /// Renew the stored token now (refused while a push may be using it, unless --force).
    Rotate {
        registry: String,
        /// Rotate even if the token was handed out less than min_validity ago.
        #[arg(long)]
        force: bool,
    },
    /// Point Docker's credHelpers at this helper for the given registries.
    #[command(name = "configure-docker")]
    ConfigureDocker {
        /// Registries to configure (default: every stored registry, else registry.gitlab.com).
        registries: Vec<String>,
        /// Show the change without writing it.
        #[arg(long)]
        dry_run: bool,
        /// Replace entries that point at another credential helper.
        #[arg(long)]
        force: bool,
        /// Configure podman, buildah and skopeo instead: containers-auth.json at
        /// $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else (Linux)
        /// /run/containers/UID/auth.json.
        #[arg(long)]
        podman: bool,
    },
    /// Show the stored credentials: registry, GitLab, kind, scopes, expiry. Never secrets.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check PATH, Docker's config, the secret store, the token at GitLab and the registry
    /// token window; PASS/WARN/FAIL per check, exit 1 on any FAIL. Never prints secrets.
    Doctor {
        /// The registry to check (default: every stored registry).
        registry: Option<String>,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Print the shell completion script for SHELL (bash, zsh, fish, powershell, elvish).
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff), e.g. `docker-credential-gitlab man | man -l -`.
    Man,
}

/// The whole command line, as `--help`, the completions and the man page show it.
#[cfg(test)]
pub(crate) fn command() -> clap::Command {
    Cli::command()
}

/// The usage line docker-credential-helpers prints for a malformed invocation.
fn usage_line() -> String {
    format!("Usage: {BINARY_NAME} <store|get|erase|list|version>")
}

/// The binary's entry point: the environment snapshot, then the verb or the command.
pub fn main() -> ExitCode {
    let env = Env::process();
    let args: Vec<OsString> = std::env::args_os().collect();
    let first = args.get(1).and_then(|a| a.to_str());

    if let Some(verb) = first.and_then(Verb::parse) {
        if args.len() != 2 {
            return fail(&usage_line());
        }
        return run_verb(env, verb);
    }
    match first {
        None => return fail(&usage_line()),
        Some("-v" | "--version") if args.len() == 2 => return run_verb(env, Verb::Version),
        Some(word) if !word.starts_with('-') && !is_user_command(word) => {
            return fail(&format!("{BINARY_NAME}: unknown action: {word}"));
        }
        _ => {}
    }

    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        // --help and friends print as clap renders them, with exit 0; the top-level help
        // ends with the environment table, which clap would rewrap.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            if e.kind() == clap::error::ErrorKind::DisplayHelp && is_top_level(&args) {
                println!("\n{}", crate::env::help_block());
            }
            return ExitCode::SUCCESS;
        }
        // Anything else (an unknown flag, a missing argument) is one line on stdout and
        // exit 1, as the reference helpers do: some clients merge stderr into stdout.
        Err(e) => return fail(&one_line(&e)),
    };
    if cli.version {
        return run_verb(env, Verb::Version);
    }
    // A verb reaching clap came with extra arguments: the verbs' own usage line.
    let command = match cli.command {
        None
        | Some(Command::Store | Command::Get | Command::Erase | Command::List | Command::Version) =>
        {
            return fail(&usage_line());
        }
        Some(command) => command,
    };
    match run_command(env, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // User commands report on stderr, one line with the whole cause chain.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--help`, `-h` or `help` alone: the whole program's help, not a command's.
fn is_top_level(args: &[OsString]) -> bool {
    args.iter().skip(1).all(|a| {
        a.to_str()
            .is_some_and(|a| a.starts_with('-') || a == "help")
    })
}

/// Runs a user command (the protocol verbs were dispatched before clap).
fn run_command(env: &Env, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Login(args) if args.oauth => oauth_login::run(env, &args),
        Command::Login(args) => login::run(env, &args),
        Command::Logout { registry, revoke } => logout::run(env, &registry, revoke),
        Command::Rotate { registry, force } => rotate::run(env, &registry, force),
        Command::ConfigureDocker {
            registries,
            dry_run,
            force,
            podman,
        } => configure_docker::run(env, &registries, dry_run, force, podman),
        Command::Status { json } => status::run(env, json),
        Command::Doctor { registry, json } => doctor::run(env, registry.as_deref(), json),
        Command::Completions { shell } => {
            completions::run(shell, Cli::command(), &mut std::io::stdout().lock())
                .map_err(|e| anyhow::anyhow!("cannot write the completion script: {e}"))
        }
        Command::Man => man::run(Cli::command(), &mut std::io::stdout().lock())
            .map_err(|e| anyhow::anyhow!("cannot write the man page: {e}")),
        // Handled in `main`, before any command runs.
        Command::Store | Command::Get | Command::Erase | Command::List | Command::Version => {
            anyhow::bail!("{}", usage_line())
        }
    }
}

/// clap's error as one line, without its usage block, and without any value that came
/// with a flag (`--token=…` must never be echoed).
fn one_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let head = rendered.split("\n\nUsage").next().unwrap_or_default();
    let text = head
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect::<Vec<_>>()
        .join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let redacted: Vec<String> = text
        .split(' ')
        .map(|word| match word.split_once('=') {
            Some((flag, _)) if flag.trim_start_matches('\'').starts_with('-') => {
                format!("{flag}=…'")
            }
            _ => word.to_owned(),
        })
        .collect();
    format!(
        "{BINARY_NAME}: {}; see {BINARY_NAME} --help",
        redacted.join(" ")
    )
}

/// User commands that clap handles (the protocol verbs are not among them).
fn is_user_command(word: &str) -> bool {
    Cli::command()
        .get_subcommands()
        .any(|c| c.get_name() == word && Verb::parse(word).is_none())
        || word == "help"
}

fn run_verb(env: &Env, verb: Verb) -> ExitCode {
    let stdout = std::io::stdout().lock();
    match verbs::run(
        &verbs::Context::new(env),
        verb,
        std::io::stdin().lock(),
        stdout,
    ) {
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
    fn parse_errors_are_one_line_without_values() {
        for argv in [
            &["x", "--frobnicate"][..],
            &["x", "login", "--token=glpat-secret-value"],
            &["x", "logout"],
        ] {
            let e = Cli::try_parse_from(argv).unwrap_err();
            let line = one_line(&e);
            assert!(!line.contains('\n'), "{line}");
            assert!(!line.contains("glpat-secret"), "{line}");
            assert!(line.starts_with("docker-credential-gitlab: "), "{line}");
        }
        let e = Cli::try_parse_from(["x", "--frobnicate"]).unwrap_err();
        assert!(one_line(&e).contains("--frobnicate"), "{}", one_line(&e));
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
