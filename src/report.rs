//! What the helper says besides its answer. stdout carries only the protocol answer, so
//! warnings go to stderr (docker shows them); every message is one line.

/// Prints a warning on stderr.
pub(crate) fn warn(message: &str) {
    eprintln!("{}: warning: {message}", crate::BINARY_NAME);
}

/// `text` on one line: platform and server error texts can span lines, and protocol
/// errors must not.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_collapses_every_break() {
        assert_eq!(super::one_line(" a\n b\r\n\tc "), "a b c");
    }
}
