//! `completions SHELL`: the shell completion script, generated from the command line's
//! definition (for users who installed with cargo; the packages ship the same files).

use clap_complete::Shell;

use crate::BINARY_NAME;

pub fn run(
    shell: Shell,
    mut command: clap::Command,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    // clap_complete panics when its writer fails (a closed pipe): render first, then write.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, BINARY_NAME, &mut script);
    out.write_all(&script)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: Shell) -> String {
        let mut out = Vec::new();
        run(shell, crate::cli::command(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_shell_completes_the_user_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::PowerShell] {
            let text = script(shell);
            for word in ["login", "configure-docker", "doctor", "password-stdin"] {
                assert!(text.contains(word), "{shell}: no {word}");
            }
        }
        assert!(script(Shell::Bash).contains("complete -F _docker__credential__gitlab"));
    }
}
