//! The secret type. Tokens live in [`Secret`] from the moment they are read until they are
//! written to stdout or the keychain, so `Debug`, panics and error chains can never show them.

pub use secrecy::{ExposeSecret, SecretString as Secret};

/// Wraps a freshly read token. The `String` is moved, not copied, so no second plaintext
/// copy is left behind (best effort: `into_boxed_str` may reallocate on excess capacity).
pub fn secret_from(s: String) -> Secret {
    Secret::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let s = secret_from("glpat-abcdefghijklmnopqrst".to_string());
        let shown = format!("{s:?}");
        assert!(!shown.contains("glpat"), "{shown}");
        assert!(shown.contains("REDACTED"));
        assert_eq!(s.expose_secret(), "glpat-abcdefghijklmnopqrst");
    }
}
