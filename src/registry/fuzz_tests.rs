//! Fuzz target `registry_host`: the server-string normaliser ([`RegistryHost::parse`] and
//! the keys built on it). Seeds: `fuzz/corpus/registry_host/`. See
//! `src/protocol/fuzz_tests.rs` for how the targets run.

use proptest::prelude::*;

use super::*;
use crate::protocol::fuzz_tests::{PIECES, assert_error_line, config, corpus, mutate, piecewise};

fn seeds() -> Vec<String> {
    corpus("registry_host")
        .into_iter()
        .map(|(name, bytes)| {
            String::from_utf8(bytes).unwrap_or_else(|_| {
                panic!("registry_host/{name} is not UTF-8: byte inputs go in protocol_input/")
            })
        })
        .collect()
}

/// Server strings: corpus files as they are and mutated, piecewise text, arbitrary text,
/// and valid hosts dressed up the ways clients send them.
fn server_strings() -> impl Strategy<Value = String> {
    let seeds = seeds();
    prop_oneof![
        2 => proptest::sample::select(seeds.clone()),
        4 => (proptest::sample::select(seeds), any::<usize>(), any::<u8>(), any::<u8>())
            .prop_map(|(s, at, byte, how)| {
                String::from_utf8_lossy(&mutate(s.into_bytes(), at, byte, how)).into_owned()
            }),
        4 => piecewise(),
        2 => any::<String>(),
        3 => (
            "(?i)(https?://)?",
            "[a-zA-Z0-9_-]{1,10}(\\.[a-zA-Z0-9_-]{1,10}){0,3}|\\[[0-9a-fA-F:.]{2,20}\\]",
            "(:[0-9+]{1,6})?",
            "(/[a-z:@?#]{0,6}){0,2}",
            "[ \t\r\n]{0,2}",
        )
            .prop_map(|(scheme, host, port, path, space)| {
                format!("{space}{scheme}{host}{port}{path}{space}")
            }),
        1 => (piecewise(), 1..4000usize).prop_map(|(s, n)| s.repeat(n)),
    ]
}

/// Everything a canonical key must be.
fn check_key(input: &str, host: &RegistryHost) {
    let key = host.as_str();
    let says = || format!("{input:?} gave {key:?}");
    assert!(!key.is_empty(), "{}", says());
    assert!(
        key.is_ascii() && key == key.to_ascii_lowercase(),
        "{}",
        says()
    );
    assert!(
        !key.contains(['/', '?', '#', '@', ' ', '%'])
            && !key.contains("://")
            && !key.ends_with(['.', ':']),
        "{}",
        says()
    );
    assert!(!key.chars().any(|c| c.is_whitespace() || c.is_control()));
    // Normalising again, or from any spelling a client sends, gives the same key.
    let again = |s: &str| RegistryHost::parse(s).map(|h| h.as_str().to_owned());
    for spelling in [
        key.to_owned(),
        key.to_ascii_uppercase(),
        format!("https://{key}/"),
        format!("HTTP://{}/v2/", key.to_ascii_uppercase()),
        format!(" {key}/group/project:tag\n"),
        format!("{key}?x#y"),
    ] {
        assert_eq!(
            again(&spelling).as_deref(),
            Ok(key),
            "{} ({spelling:?})",
            says()
        );
    }
    assert_eq!(RegistryHost::from_key(key).as_ref(), Ok(host));
    let standby = host.standby();
    assert_eq!(
        RegistryHost::from_key(standby.as_str()).as_ref(),
        Ok(&standby)
    );
    assert_eq!(host.to_string(), key);
    assert!(!host.file_name().contains(':'), "{}", says());
    // The key makes a URL whose host and port are the key's: no panic in registry_url,
    // and no IDNA or number rewriting between the key and what is dialled.
    let url = reqwest::Url::parse(&format!("https://{key}/v2/"))
        .unwrap_or_else(|e| panic!("{}: not a URL host: {e}", says()));
    let (name, port) = split_port(key).unwrap();
    if !name.starts_with('[') {
        assert_eq!(url.host_str(), Some(name), "{}", says());
    }
    assert!(host.hostname().len() <= name.len());
    let port = port.map(|p| p.parse::<u16>().unwrap());
    assert_eq!(url.port_or_known_default(), Some(port.unwrap_or(443)));
}

fn check(input: &str) {
    match RegistryHost::parse(input) {
        Ok(host) => check_key(input, &host),
        Err(e) => {
            let line = e.to_string();
            assert_error_line(&line);
            assert!(line.starts_with("invalid registry address"), "{line}");
        }
    }
    // The other readers of a host string must not panic either.
    let _ = RegistryHost::from_key(input);
    let _ = RegistryHost::standby_of(input);
    let _ = is_loopback_host(input);
}

#[test]
fn fuzz_registry_host_corpus_replays() {
    for seed in seeds() {
        eprintln!("registry_host/{seed:?}");
        check(&seed);
    }
}

/// A secret next to or instead of a host: `user:SECRET@host`, a pasted token.
fn secret_inputs() -> impl Strategy<Value = (String, String)> {
    let secret = "[A-Za-z0-9_]{8,24}";
    let glue = piecewise();
    prop_oneof![
        (glue.clone(), "[a-z]{1,8}", secret, glue.clone())
            .prop_map(|(pre, user, s, post)| { (format!("{pre}{user}:{s}@{post}"), s) }),
        (
            glue.clone(),
            proptest::sample::select(
                &[
                    "glpat-", "GLPAT-", "gldt-", "glcbt-", "gloas-", "glrt-", "glptt-", "glft-",
                    "glsoat-"
                ][..]
            ),
            secret,
            glue,
        )
            .prop_map(|(pre, prefix, s, post)| (format!("{pre}{prefix}{s}{post}"), s)),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_registry_host_never_panics_and_keys_are_canonical(input in server_strings()) {
        check(&input);
    }

    /// Errors quote the input shortened: never a password before `@`, never a token.
    #[test]
    fn fuzz_registry_host_errors_never_echo_a_secret((input, secret) in secret_inputs()) {
        if let Err(e) = RegistryHost::parse(&input) {
            let line = e.to_string();
            assert_error_line(&line);
            // Only when the secret also stands after the last `@` may it be quoted.
            let after = input.trim().rsplit('@').next().unwrap_or_default();
            prop_assert!(after.contains(&secret) || !line.contains(&secret), "{line}");
            prop_assert!(!line.to_ascii_lowercase().contains("glpat-"), "{line}");
        }
    }
}

#[test]
fn fuzz_registry_host_edges() {
    for piece in PIECES {
        check(piece);
        check(&format!("registry.{piece}"));
        check(&format!("registry.a{piece}"));
        check(&format!("{piece}.example:5000"));
    }
    check(&"a.".repeat(200_000));
    check(&"中".repeat(100_000));
}
