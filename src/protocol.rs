//! The docker-credential-helpers wire format.
//!
//! Docker, BuildKit, podman/skopeo and crane run `docker-credential-gitlab <verb>`, write a
//! payload on stdin and read stdout. The rules they depend on (docker-credential-helpers'
//! `credentials` package and its clients):
//! - errors are one line on **stdout** and exit status 1; stderr stays silent;
//! - a miss is exactly [`NOT_FOUND`], which callers compare after trimming;
//! - `get` echoes the server string it was given;
//! - `store` JSON field names match case-insensitively (Go's `encoding/json`), unknown fields
//!   are ignored.

use std::fmt::Write as _;
use std::io::Read;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::secret::{ExposeSecret, Secret};

/// The one "not found" string every client recognises.
pub const NOT_FOUND: &str = "credentials not found in native keychain";
/// Larger inputs are refused: a registry address or a credentials object is never this big.
pub const MAX_INPUT: usize = 64 * 1024;

/// The verbs of the protocol. Anything else on argv is a user command or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Store,
    Get,
    Erase,
    List,
    Version,
}

impl Verb {
    pub fn parse(word: &str) -> Option<Verb> {
        Some(match word {
            "store" => Verb::Store,
            "get" => Verb::Get,
            "erase" => Verb::Erase,
            "list" => Verb::List,
            "version" => Verb::Version,
            _ => return None,
        })
    }
}

/// Everything that can go wrong before a store is touched. `Display` is the exact line
/// printed on stdout.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    #[error("no credentials server URL")]
    NoServerUrl,
    #[error("no credentials username")]
    NoUsername,
    #[error("no credentials secret")]
    NoSecret,
    #[error(
        "input is larger than 64 KiB: expected a registry address or a credentials JSON object"
    )]
    TooLarge,
    #[error("input is not valid UTF-8")]
    NotUtf8,
    #[error("input contains a NUL byte")]
    Nul,
    #[error("could not read stdin: {0}")]
    Read(String),
    #[error("invalid credentials JSON: {0}")]
    Json(String),
    #[error(
        "identity tokens (username \"<token>\") are not supported: GitLab registries take a username and an access token"
    )]
    IdentityToken,
}

/// Reads all of stdin (bounded by [`MAX_INPUT`]) into a buffer that is wiped on drop,
/// because for `store` it holds the secret.
pub fn read_input(mut reader: impl Read) -> Result<Zeroizing<String>, InputError> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(1024));
    reader
        .by_ref()
        .take(MAX_INPUT as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| InputError::Read(e.kind().to_string()))?;
    if bytes.len() > MAX_INPUT {
        return Err(InputError::TooLarge);
    }
    if bytes.contains(&0) {
        return Err(InputError::Nul);
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| InputError::NotUtf8)?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// The server string of `get`/`erase`: trimmed like Go's `strings.TrimSpace`.
pub fn parse_server(input: &str) -> Result<&str, InputError> {
    let server = input.trim();
    if server.is_empty() {
        return Err(InputError::NoServerUrl);
    }
    Ok(server)
}

/// The `store` payload.
#[derive(Debug)]
pub struct Credentials {
    pub server_url: String,
    pub username: String,
    pub secret: Secret,
}

/// Parses a `store` payload the way Go's `encoding/json` fills the reference helper's
/// `Credentials` struct: exact field name first, then a case-insensitive match, unknown
/// fields ignored, `null` as empty. Error messages never quote the input (it holds a secret).
pub fn parse_credentials(input: &str) -> Result<Credentials, InputError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(InputError::Json(
            "empty input, expected a JSON object".into(),
        ));
    }
    let value: Value = serde_json::from_str(trimmed).map_err(|e| {
        // serde_json's messages describe positions, never the content.
        InputError::Json(e.to_string())
    })?;
    let Value::Object(mut object) = value else {
        return Err(InputError::Json("expected a JSON object".into()));
    };
    let server_url = take_string(&mut object, "ServerURL")?;
    let username = take_string(&mut object, "Username")?;
    let secret = take_string(&mut object, "Secret")?;
    let secret = Secret::from(secret);
    if server_url.trim().is_empty() {
        return Err(InputError::NoServerUrl);
    }
    if username.is_empty() {
        return Err(InputError::NoUsername);
    }
    if secret.expose_secret().is_empty() {
        return Err(InputError::NoSecret);
    }
    if username == "<token>" {
        return Err(InputError::IdentityToken);
    }
    Ok(Credentials {
        server_url,
        username,
        secret,
    })
}

fn take_string(object: &mut Map<String, Value>, field: &str) -> Result<String, InputError> {
    let key = if object.contains_key(field) {
        Some(field.to_owned())
    } else {
        object
            .keys()
            .find(|k| k.eq_ignore_ascii_case(field))
            .cloned()
    };
    match key.and_then(|k| object.remove(&k)) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(InputError::Json(format!("{field} must be a string"))),
    }
}

/// The `get` answer, byte for byte what docker-credential-helpers prints: the field order
/// `ServerURL`, `Username`, `Secret`, and a trailing newline. Wiped on drop.
pub fn render_get(server_url: &str, username: &str, secret: &Secret) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(128));
    out.push_str("{\"ServerURL\":");
    push_json_string(&mut out, server_url);
    out.push_str(",\"Username\":");
    push_json_string(&mut out, username);
    out.push_str(",\"Secret\":");
    push_json_string(&mut out, secret.expose_secret());
    out.push_str("}\n");
    out
}

/// The `list` answer: `{"<server>":"<username>",…}` and a newline; `{}` when empty.
pub fn render_list<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("{");
    for (i, (server, username)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, server);
        out.push(':');
        push_json_string(&mut out, username);
    }
    out.push_str("}\n");
    out
}

/// JSON string escaping like Go's encoder (which also escapes `<`, `>` and `&`, so the
/// output is byte-identical to the reference helpers'). Written by hand so the secret is
/// never copied into an intermediate `Value`.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
pub(crate) mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(json: &str) -> Result<Credentials, InputError> {
        parse_credentials(json)
    }

    #[test]
    fn get_output_is_byte_exact() {
        let secret = Secret::from("glpat-xyz");
        assert_eq!(
            render_get("registry.gitlab.com", "alice", &secret).as_str(),
            "{\"ServerURL\":\"registry.gitlab.com\",\"Username\":\"alice\",\"Secret\":\"glpat-xyz\"}\n"
        );
    }

    #[test]
    fn get_output_escapes_like_go() {
        let secret = Secret::from("a\"b\\c<d>&\u{1}");
        assert_eq!(
            render_get("h", "u", &secret).as_str(),
            "{\"ServerURL\":\"h\",\"Username\":\"u\",\"Secret\":\"a\\\"b\\\\c\\u003cd\\u003e\\u0026\\u0001\"}\n"
        );
    }

    #[test]
    fn list_output() {
        assert_eq!(render_list([]), "{}\n");
        assert_eq!(
            render_list([("registry.gitlab.com", "alice"), ("localhost:5000", "bob")]),
            "{\"registry.gitlab.com\":\"alice\",\"localhost:5000\":\"bob\"}\n"
        );
    }

    #[test]
    fn store_payload_from_docker_cli() {
        let c = creds(
            "{\"ServerURL\":\"localhost:5077\",\"Username\":\"alice\",\"Secret\":\"glpat-xyz\"}\n",
        )
        .unwrap();
        assert_eq!(c.server_url, "localhost:5077");
        assert_eq!(c.username, "alice");
        assert_eq!(c.secret.expose_secret(), "glpat-xyz");
    }

    #[test]
    fn store_payload_from_docker_py_with_spaces_and_no_newline() {
        let c = creds(
            "{\"ServerURL\": \"localhost:5077\", \"Username\": \"alice\", \"Secret\": \"s\"}",
        )
        .unwrap();
        assert_eq!(c.server_url, "localhost:5077");
    }

    #[test]
    fn store_field_names_are_case_insensitive_and_unknown_fields_ignored() {
        let c = creds(r#"{"serverurl":"h","USERNAME":"u","secret":"s","Extra":[1,2]}"#).unwrap();
        assert_eq!((c.server_url.as_str(), c.username.as_str()), ("h", "u"));
        // An exact match wins over a case-insensitive one, as in Go.
        let c = creds(r#"{"username":"lower","Username":"exact","ServerURL":"h","Secret":"s"}"#)
            .unwrap();
        assert_eq!(c.username, "exact");
    }

    #[test]
    fn store_vectors_from_the_reference() {
        assert_eq!(
            creds("{\"ServerURL\":\"registry.gitlab.com\",\"Username\":\"\",\"Secret\":\"x\"}\n")
                .unwrap_err()
                .to_string(),
            "no credentials username"
        );
        assert_eq!(
            creds(r#"{"Username":"u","Secret":"x"}"#)
                .unwrap_err()
                .to_string(),
            "no credentials server URL"
        );
        assert_eq!(
            creds(r#"{"ServerURL":null,"Username":"u","Secret":"x"}"#).unwrap_err(),
            InputError::NoServerUrl
        );
        assert_eq!(
            creds(r#"{"ServerURL":"h","Username":"u"}"#).unwrap_err(),
            InputError::NoSecret
        );
        assert_eq!(
            creds(r#"{"ServerURL":"h","Username":"<token>","Secret":"x"}"#).unwrap_err(),
            InputError::IdentityToken
        );
    }

    #[test]
    fn store_rejects_non_objects_without_quoting_input() {
        for bad in [
            "",
            "  ",
            "[]",
            "null",
            "\"glpat-secret\"",
            "{",
            "{\"ServerURL\":1}",
        ] {
            let err = creds(bad).unwrap_err().to_string();
            assert!(!err.contains("glpat"), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let err = creds(r#"{"ServerURL":"h","Username":"u","Secret":"glpat-leak" "#).unwrap_err();
        assert!(!err.to_string().contains("leak"));
    }

    #[test]
    fn server_is_trimmed_and_required() {
        assert_eq!(
            parse_server("registry.gitlab.com\n").unwrap(),
            "registry.gitlab.com"
        );
        assert_eq!(parse_server(" \t\n").unwrap_err(), InputError::NoServerUrl);
    }

    #[test]
    fn input_is_bounded_and_checked() {
        let big = vec![b'a'; MAX_INPUT + 1];
        assert_eq!(read_input(&big[..]).unwrap_err(), InputError::TooLarge);
        let exact = vec![b'a'; MAX_INPUT];
        assert_eq!(read_input(&exact[..]).unwrap().len(), MAX_INPUT);
        assert_eq!(read_input(&b"a\0b"[..]).unwrap_err(), InputError::Nul);
        assert_eq!(
            read_input(&b"\xff\xfe"[..]).unwrap_err(),
            InputError::NotUtf8
        );
    }

    #[test]
    fn verbs() {
        for (w, v) in [
            ("store", Verb::Store),
            ("get", Verb::Get),
            ("erase", Verb::Erase),
            ("list", Verb::List),
            ("version", Verb::Version),
        ] {
            assert_eq!(Verb::parse(w), Some(v));
        }
        assert_eq!(Verb::parse("GET"), None);
        assert_eq!(Verb::parse("login"), None);
    }
}
