//! The secret type. Tokens live in [`Secret`] from the moment they are read until they are
//! written to stdout or the keychain, so `Debug`, panics and error chains can never show them.

pub(crate) use secrecy::{ExposeSecret, SecretString as Secret};

// `Secret::from(String)` moves the string, so no second plaintext copy is left behind
// (best effort: `into_boxed_str` may reallocate on excess capacity); `clone()` copies into
// another zeroizing box.

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let s = Secret::from("glpat-abcdefghijklmnopqrst");
        let shown = format!("{s:?}");
        assert!(!shown.contains("glpat"), "{shown}");
        assert!(shown.contains("REDACTED"));
        assert_eq!(s.expose_secret(), "glpat-abcdefghijklmnopqrst");
    }
}
