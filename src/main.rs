//! `docker-credential-gitlab`: see the library crate for the architecture.

fn main() -> std::process::ExitCode {
    docker_credential_gitlab::cli::main()
}
