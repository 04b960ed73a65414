//! Fuzz target `protocol_input`: whatever a client writes on stdin for `store`, `get` and
//! `erase`, as raw bytes, through the same functions the binary runs.
//!
//! Property-based (proptest) rather than cargo-fuzz, which needs a nightly toolchain. The
//! seeds are the files of `fuzz/corpus/protocol_input/`: replayed one by one, and mutated
//! by the strategies. `cargo test` runs proptest's default 256 cases per property;
//! `scripts/test.sh` runs a bounded longer campaign (`PROPTEST_CASES`). A failure prints
//! the minimal input: add it to the corpus as a file.

use proptest::prelude::*;

use super::*;
use crate::commands::verbs::{self, Context, VerbError};
use crate::env::Env;

/// The raw bytes of every file in `fuzz/corpus/<target>/`, with its name, sorted.
pub(crate) fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() >= 5, "corpus {target} is nearly empty");
    files
}

/// No failure files next to the sources: a failure prints its minimal input, which goes
/// into the corpus by hand. The case count stays proptest's (`PROPTEST_CASES`).
pub(crate) fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Fragments that make parsers take their rarer branches: multi-byte characters at label
/// starts, scheme and port syntax, JSON structure, control characters.
#[rustfmt::skip]
pub(crate) const PIECES: &[&str] = &[
    // host syntax
    "a", "Z", "0", "9", "x", "0x", "0X", ".", "..", "-", "_", ":", "[", "]", "/", "@", "?",
    "#", "%2F", "://", "http", "HTTPS", "xn--", "::1", "443", "65535", "65536", "+",
    "localhost", "docker.io", "registry.gitlab.com",
    // multi-byte, bidi, separators, control
    "\u{feff}", "中", "文", "é", "\u{202e}", "\u{2028}", "\u{10348}", "𝒳", " ", "\n",
    "\r", "\t", "\u{0}", "\u{1}", "\u{7f}",
    // JSON and the store payload
    "\"", "\\", "{", "}", ",", "\\u0000", "\\ud800", "null", "glpat-", "<token>",
    "ServerURL", "serverurl", "Username", "Secret",
];

/// A string of [`PIECES`] and arbitrary characters.
pub(crate) fn piecewise() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(PIECES).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..24)
        .prop_map(|v| v.concat())
        .boxed()
}

/// `seed` with an edit at a position taken from `at`: a byte inserted or replaced, the
/// rest cut off, or one of [`PIECES`] inserted. Works on bytes, so the result may be invalid UTF-8.
pub(crate) fn mutate(mut seed: Vec<u8>, at: usize, byte: u8, how: u8) -> Vec<u8> {
    let i = at % (seed.len() + 1);
    match how % 4 {
        0 => seed.insert(i, byte),
        1 if i < seed.len() => seed[i] = byte,
        2 => seed.truncate(i),
        _ => seed
            .splice(i..i, PIECES[usize::from(byte) % PIECES.len()].bytes())
            .for_each(drop),
    }
    seed
}

/// Arbitrary stdin: corpus files as they are and mutated, piecewise text, random bytes,
/// and large repetitions (over [`MAX_INPUT`] too).
fn stdin_bytes() -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = corpus("protocol_input")
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    prop_oneof![
        2 => proptest::sample::select(seeds.clone()),
        4 => (proptest::sample::select(seeds), any::<usize>(), any::<u8>(), any::<u8>())
            .prop_map(|(s, at, byte, how)| mutate(s, at, byte, how)),
        3 => piecewise().prop_map(String::into_bytes),
        2 => proptest::collection::vec(any::<u8>(), 0..256),
        1 => (piecewise(), 1..8000usize).prop_map(|(s, n)| s.repeat(n).into_bytes()),
    ]
}

/// An error line as the binary prints it: one short line, no control characters.
pub(crate) fn assert_error_line(line: &str) {
    assert!(!line.is_empty(), "empty error line");
    assert!(
        !line.chars().any(char::is_control),
        "error line with a control character: {line:?}"
    );
    assert!(line.len() < 400, "error line of {} bytes", line.len());
}

/// A context with no data directory and the in-memory store: `get`, `store` and `erase`
/// run their whole parse and stop before touching any store or file.
fn offline() -> Context<'static> {
    static ENV: std::sync::OnceLock<Env> = std::sync::OnceLock::new();
    Context {
        records: None,
        env: ENV.get_or_init(|| Env::from_pairs([(crate::env::STORE, "memory")])),
    }
}

/// The properties of one stdin, for every verb that reads it.
fn check_stdin(ctx: &Context<'_>, input: &[u8]) {
    match read_input(input) {
        Ok(text) => {
            assert_eq!(text.as_bytes(), input);
            assert!(input.len() <= MAX_INPUT && !input.contains(&0));
            if let Ok(server) = parse_server(&text) {
                assert_eq!(server, text.trim());
                assert!(!server.is_empty());
            }
        }
        Err(e) => assert_error_line(&e.to_string()),
    }
    for verb in [Verb::Get, Verb::Erase, Verb::Store] {
        let mut out = Vec::new();
        match verbs::run(ctx, verb, input, &mut out) {
            Ok(()) => {
                assert_eq!(verb, Verb::Erase, "{verb:?} cannot succeed offline");
                assert!(out.is_empty());
            }
            Err(e) => {
                assert!(out.is_empty(), "{verb:?} wrote before failing");
                assert!(
                    matches!(
                        e,
                        VerbError::Input(_) | VerbError::Host(_) | VerbError::NotFound
                    ) || (verb == Verb::Store && matches!(e, VerbError::State(_))),
                    "{verb:?}: unexpected {e:?}"
                );
                assert_error_line(&e.to_string());
            }
        }
    }
}

#[test]
fn fuzz_protocol_input_corpus_replays() {
    let ctx = offline();
    for (name, bytes) in corpus("protocol_input") {
        eprintln!("protocol_input/{name}");
        check_stdin(&ctx, &bytes);
    }
}

/// A `store` payload with each field spelt, typed and cased at random, plus an extra
/// field; with the server string it holds and its secret.
fn payload() -> impl Strategy<Value = (String, String, String)> {
    let name = |n: &'static str| {
        proptest::collection::vec(any::<bool>(), n.len()).prop_map(move |upper| {
            n.chars()
                .zip(upper)
                .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
                .collect::<String>()
        })
    };
    let value = prop_oneof![
        6 => piecewise().prop_map(serde_json::Value::String),
        1 => Just(serde_json::Value::Null),
        1 => any::<i64>().prop_map(serde_json::Value::from),
        1 => Just(serde_json::json!({"a": [1]})),
    ]
    .boxed();
    let secret = "[A-Za-z0-9]{12,20}".prop_map(|s| format!("Sq{s}"));
    (
        (name("ServerURL"), value.clone()),
        (name("Username"), value.clone()),
        (name("Secret"), secret),
        proptest::option::of(("[a-zA-Z]{1,9}", value)),
    )
        .prop_map(|((sk, sv), (uk, uv), (xk, secret), extra)| {
            let server = sv.as_str().unwrap_or_default().to_owned();
            let mut object = serde_json::Map::new();
            object.insert(sk, sv);
            object.insert(uk, uv);
            object.insert(xk, serde_json::Value::String(secret.clone()));
            // An extra field never names one of the three (that would change which wins).
            if let Some((k, v)) = extra
                && !object.keys().any(|f| f.eq_ignore_ascii_case(&k))
            {
                object.insert(k, v);
            }
            (
                serde_json::Value::Object(object).to_string(),
                server,
                secret,
            )
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_protocol_input_never_panics(input in stdin_bytes()) {
        check_stdin(&offline(), &input);
    }

    /// A payload that parses gives back its fields; one that does not never quotes the
    /// secret (only a server string, echoed shortened by the host error, may appear).
    #[test]
    fn fuzz_protocol_store_payloads((json, server, secret) in payload(), cut in any::<usize>()) {
        match parse_credentials(&json) {
            Ok(c) => {
                prop_assert_eq!(c.secret.expose_secret(), secret.as_str());
                prop_assert_eq!(c.server_url, server.clone());
            }
            Err(e) => {
                let line = e.to_string();
                assert_error_line(&line);
                prop_assert!(!line.contains(&secret), "{line}");
            }
        }
        // Whole or cut short anywhere, through the whole verb. A cut payload is never a
        // JSON object, and the whole one echoes at most its server string.
        for input in [json.as_bytes(), &json.as_bytes()[..cut % (json.len() + 1)]] {
            let mut out = Vec::new();
            if let Err(e) = verbs::run(&offline(), Verb::Store, input, &mut out) {
                let line = e.to_string();
                assert_error_line(&line);
                prop_assert!(server.contains(&secret) || !line.contains(&secret), "{line}");
            }
        }
    }

    /// What `get` and `list` print is one line of JSON that reads back as the values.
    #[test]
    fn fuzz_protocol_output_round_trips(
        server in piecewise(),
        user in any::<String>(),
        secret in any::<String>(),
    ) {
        let secret_value = crate::secret::Secret::from(secret.clone());
        let out = render_get(&server, &user, &secret_value);
        let one_line = out.ends_with("}\n")
            && !out[..out.len() - 1].contains(['\n', '\r', '\u{2028}', '\u{2029}']);
        prop_assert!(one_line, "{:?}", out.as_str());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        prop_assert_eq!(&v["ServerURL"], &serde_json::Value::String(server.clone()));
        prop_assert_eq!(&v["Username"], &serde_json::Value::String(user.clone()));
        prop_assert_eq!(&v["Secret"], &serde_json::Value::String(secret));
        let list = render_list([(server.as_str(), user.as_str())]);
        let v: serde_json::Value = serde_json::from_str(&list).unwrap();
        prop_assert_eq!(&v[server.as_str()], &serde_json::Value::String(user));
    }
}

/// The literal cases of issue 15 and the size edges, pinned outside the random search.
#[test]
fn fuzz_protocol_input_edges() {
    let ctx = offline();
    for input in [
        "registry.中文".as_bytes(),
        b"\xef\xbb\xbf%2F",
        "{\"ServerURL\":\"a.\u{202e}b\",\"Username\":\"u\",\"Secret\":\"s\"}".as_bytes(),
    ] {
        check_stdin(&ctx, input);
    }
    let mut huge = "中".repeat(MAX_INPUT / 3).into_bytes();
    check_stdin(&ctx, &huge);
    huge.extend_from_slice("中".as_bytes());
    check_stdin(&ctx, &huge);
    check_stdin(&ctx, &vec![b'['; MAX_INPUT]);
    check_stdin(&ctx, &b"{\"a\":".repeat(MAX_INPUT / 5));
}
