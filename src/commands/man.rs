//! `man`: the manual page (roff), generated from the command line's definition.

pub(crate) fn run(command: clap::Command, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    // The environment table, which `--help` prints after clap's part.
    let command = command
        .version(env!("CARGO_PKG_VERSION"))
        .after_help(crate::env::help_block());
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    out.write_all(&page)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_names_the_helper_and_its_commands() {
        let mut out = Vec::new();
        super::run(crate::cli::command(), &mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{}", &page[..80]);
        assert!(
            page.contains(&format!(
                ".TH docker-credential-gitlab 1  \"docker-credential-gitlab {}\"",
                env!("CARGO_PKG_VERSION")
            )),
            "{page}"
        );
        for word in [
            "login",
            "configure\\-docker",
            "DOCKER_CREDENTIAL_GITLAB_STORE",
        ] {
            assert!(page.contains(word), "no {word}");
        }
    }
}
