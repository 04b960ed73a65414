//! Registry-host normalisation: every spelling a client may send maps to one key.
//!
//! docker sends `host[:port]`, `docker login https://host/` stores `host`, crane sends
//! `host/group/project` first, shells add a newline, people type upper case. All of these
//! must find the same entry (as docker-credential-helpers' `registryurl` does). The canonical key is the lower-case
//! `host[:port]`. `host` and `host:443` stay different keys, because docker treats them as
//! different registries. Docker Hub's aliases collapse to one key that no GitLab host can
//! collide with.

use std::fmt;

/// The canonical key for Docker Hub (`https://index.docker.io/v1/`, `docker.io`, …).
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

const STANDBY_SUFFIX: &str = "#standby";

/// A canonical registry host: lower-case `host[:port]` or `[v6addr][:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistryHost(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid registry address {0:?}: expected a host name such as registry.gitlab.com or localhost:5000"
)]
pub struct InvalidHost(String);

impl RegistryHost {
    /// Parses any server string a client may send.
    pub fn parse(input: &str) -> Result<RegistryHost, InvalidHost> {
        let invalid = || InvalidHost(shorten(input));
        let s = input.trim();
        let rest = strip_scheme(s).ok_or_else(invalid)?;
        // Drop the path, query and fragment: "host/group/project", "host/v2/", "host?x".
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(invalid());
        }
        let (host, port) = split_port(authority).ok_or_else(invalid)?;
        let host = host.to_ascii_lowercase();
        if !valid_host(&host) {
            return Err(invalid());
        }
        if port.is_some_and(|p| !valid_port(p)) {
            return Err(invalid());
        }
        if port.is_none() && DOCKER_HUB_ALIASES.contains(&host.as_str()) {
            return Ok(RegistryHost(DOCKER_HUB.to_owned()));
        }
        Ok(RegistryHost(match port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host as a file name for per-registry sidecar files (`:` is not allowed in
    /// Windows file names).
    pub fn file_name(&self) -> String {
        self.0.replace(':', "_")
    }

    /// The key of this registry's standby token (`login --standby`): its own state entry,
    /// secret-store item, lease and journal. Never the result of parsing a server string
    /// (`#` starts a URL fragment there).
    pub fn standby(&self) -> RegistryHost {
        RegistryHost(format!("{}{STANDBY_SUFFIX}", self.0))
    }

    /// The host for a state-file key (a registry, or a registry's standby key).
    pub fn from_key(key: &str) -> Result<RegistryHost, InvalidHost> {
        match RegistryHost::standby_of(key) {
            Some(base) => RegistryHost::parse(base).map(|h| h.standby()),
            None => RegistryHost::parse(key),
        }
    }

    /// Whether this is a standby key, and the registry it belongs to.
    pub fn standby_of(key: &str) -> Option<&str> {
        key.strip_suffix(STANDBY_SUFFIX)
    }

    pub fn is_docker_hub(&self) -> bool {
        self.0 == DOCKER_HUB
    }

    /// The host without the port (and without IPv6 brackets).
    pub fn hostname(&self) -> &str {
        let (host, _) = split_port(&self.0).unwrap_or((&self.0, None));
        host.trim_start_matches('[').trim_end_matches(']')
    }

    /// Loopback registries are the only ones allowed over plain HTTP.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(self.hostname())
    }
}

/// Whether a host name (without port or brackets) is this machine: `localhost`,
/// `*.localhost`, or a loopback address. The one rule for plain HTTP and proxy bypass.
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// In messages a standby key shows as `HOST --standby`, so that the commands they suggest
/// (`docker-credential-gitlab login HOST --standby`) are right as printed.
impl fmt::Display for RegistryHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match RegistryHost::standby_of(&self.0) {
            Some(base) => write!(f, "{base} --standby"),
            None => f.write_str(&self.0),
        }
    }
}

fn strip_scheme(s: &str) -> Option<&str> {
    match s.find("://") {
        None => Some(s),
        Some(i) => {
            let scheme = &s[..i];
            (scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http"))
                .then(|| &s[i + 3..])
        }
    }
}

/// Splits `host:port` and `[v6]:port`. Returns `None` for a malformed bracket form.
fn split_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &authority[..end + 2];
        return match &rest[end + 1..] {
            "" => Some((host, None)),
            p => p.strip_prefix(':').map(|p| (host, Some(p))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None, // a bare IPv6 address must be bracketed
        None => Some((authority, None)),
    }
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    let labels_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !labels_ok {
        return false;
    }
    // URLs (WHATWG) read a host whose last label is a number as an IPv4 address: then it
    // must be one (`a.123` is neither a name nor an address). Bytes, not `str` slices: this
    // must never be able to cut a character in two.
    let last = host.rsplit('.').next().unwrap_or_default().as_bytes();
    let numeric = last.iter().all(u8::is_ascii_digit)
        || (last.len() >= 2
            && last[..2].eq_ignore_ascii_case(b"0x")
            && last[2..].iter().all(u8::is_ascii_hexdigit));
    if numeric {
        return host.parse::<std::net::Ipv4Addr>().is_ok();
    }
    // An `xn--` label is punycode, which URLs decode and check (IDNA; `xn--` alone is
    // invalid there): such a name must come back from the URL parser unchanged.
    !host.split('.').any(|label| label.starts_with("xn--"))
        || reqwest::Url::parse(&format!("https://{host}/"))
            .is_ok_and(|u| u.host_str() == Some(host))
}

/// A port is 1–65535 in plain decimal digits: no sign (`u16::from_str` takes `+5000`, a
/// URL does not), no leading zero.
fn valid_port(port: &str) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && !port.starts_with('0')
        && port.parse::<u16>().is_ok()
}

/// Error messages quote the input, which may hold a secret (`user:token@host`, a token
/// pasted where a host belongs): keep only a short run of host characters from after any
/// `@`, and nothing at all that looks like a GitLab token.
fn shorten(input: &str) -> String {
    const TOKEN_PREFIXES: &[&str] = &[
        "glpat-", "gldt-", "glcbt-", "gloas-", "glrt-", "glptt-", "glft-", "glsoat-",
    ];
    let after_userinfo = input.trim().rsplit('@').next().unwrap_or_default();
    let lower = input.to_ascii_lowercase();
    if TOKEN_PREFIXES.iter().any(|p| lower.contains(p)) {
        return "<redacted: looks like a token>".into();
    }
    let mut out: String = after_userinfo
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-_:[]/".contains(*c))
        .take(40)
        .collect();
    if after_userinfo.chars().count() > out.chars().count() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every host this module accepts makes a valid URL (no panics downstream).
    #[test]
    fn accepted_hosts_are_valid_urls() {
        for bad in [
            "a.123",
            "x.0x1f",
            "1.2.3.4.5",
            "a.b.999",
            "xn--",
            "a.xn--a.b",
        ] {
            assert!(RegistryHost::parse(bad).is_err(), "{bad}");
        }
        for good in [
            "1.2.3.4",
            "a.b1",
            "x-1.example:5050",
            "[::1]:5000",
            "a_b.example",
            "xn--nxasmq6b.example",
        ] {
            let h = RegistryHost::parse(good).unwrap();
            assert!(
                reqwest::Url::parse(&format!("https://{h}/v2/")).is_ok(),
                "{good}"
            );
        }
        let alphabet: Vec<char> = "a1.-_:0x9".chars().collect();
        let mut word = Vec::new();
        fn each(alphabet: &[char], word: &mut Vec<char>, depth: usize, f: &mut dyn FnMut(&str)) {
            f(&word.iter().collect::<String>());
            if depth == 0 {
                return;
            }
            for &c in alphabet {
                word.push(c);
                each(alphabet, word, depth - 1, f);
                word.pop();
            }
        }
        each(&alphabet, &mut word, 5, &mut |s| {
            if let Ok(h) = RegistryHost::parse(s) {
                assert!(
                    reqwest::Url::parse(&format!("https://{h}/v2/")).is_ok(),
                    "{s:?} accepted as {h} but is not a URL host"
                );
            }
        });
    }

    #[test]
    fn errors_never_echo_a_secret() {
        for input in [
            "oauth2:glpat-abcdefghijklmnopqrst@registry.example.com",
            "glpat-abcdefghijklmnopqrst extra",
            "https://user:s3cr3t-p4ss@host example/",
        ] {
            let e = RegistryHost::parse(input).unwrap_err().to_string();
            assert!(!e.contains("glpat-abc") && !e.contains("s3cr3t"), "{e}");
            assert!(!e.contains('\n'));
        }
        let e = RegistryHost::parse(&"x".repeat(500))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200, "{e}");
    }

    fn canon(s: &str) -> String {
        RegistryHost::parse(s).unwrap().as_str().to_owned()
    }

    #[test]
    fn spellings_of_one_registry_agree() {
        for s in [
            "registry.gitlab.com",
            "https://registry.gitlab.com",
            "https://registry.gitlab.com/",
            "http://registry.gitlab.com/v2/",
            "registry.gitlab.com/group/project",
            "registry.gitlab.com/group/sub/project:tag",
            "REGISTRY.GITLAB.COM",
            "HTTPS://Registry.GitLab.com/",
            "registry.gitlab.com\n",
            "  registry.gitlab.com  ",
        ] {
            assert_eq!(canon(s), "registry.gitlab.com", "{s:?}");
        }
    }

    #[test]
    fn ports_are_kept_and_443_is_distinct() {
        assert_eq!(canon("localhost:5000"), "localhost:5000");
        assert_eq!(canon("http://localhost:5000/v2/"), "localhost:5000");
        assert_eq!(
            canon("gitlab.example.com:5050/g/p"),
            "gitlab.example.com:5050"
        );
        assert_eq!(canon("registry.gitlab.com:443"), "registry.gitlab.com:443");
        assert_eq!(canon("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(canon("[::1]:5000"), "[::1]:5000");
        assert_eq!(canon("[::1]"), "[::1]");
    }

    #[test]
    fn docker_hub_aliases() {
        for s in [
            "https://index.docker.io/v1/",
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "DOCKER.IO/library/alpine",
        ] {
            let h = RegistryHost::parse(s).unwrap();
            assert!(h.is_docker_hub(), "{s}");
            assert_eq!(h.as_str(), DOCKER_HUB);
        }
        // A GitLab host that merely contains "docker" is not Docker Hub.
        assert!(
            !RegistryHost::parse("docker.gitlab.example.com")
                .unwrap()
                .is_docker_hub()
        );
        assert!(
            !RegistryHost::parse("docker.io:5000")
                .unwrap()
                .is_docker_hub()
        );
    }

    #[test]
    fn invalid_addresses() {
        for s in [
            "",
            "   ",
            "https://",
            "ftp://registry.gitlab.com",
            "user@registry.gitlab.com",
            "a b",
            "host:port",
            "host:0",
            "host:65536",
            "host:+5000",
            "host:-1",
            "host:٥٠٠٠",
            "host:",
            "::1",
            "[::1",
            "[zz]:5",
            "bad..dots",
            "{\"ServerURL\":\"x\"}",
        ] {
            assert!(RegistryHost::parse(s).is_err(), "{s:?} should be invalid");
        }
    }

    #[test]
    fn loopback() {
        for s in [
            "localhost:5000",
            "127.0.0.1:1",
            "[::1]:5000",
            "registry.localhost",
        ] {
            assert!(RegistryHost::parse(s).unwrap().is_loopback(), "{s}");
        }
        assert!(
            !RegistryHost::parse("registry.gitlab.com")
                .unwrap()
                .is_loopback()
        );
    }

    /// Issue 15: the last label was sliced at byte 2, inside a 3-byte character.
    #[test]
    fn multi_byte_last_label_is_an_error_not_a_panic() {
        for s in [
            "registry.中文",
            "\u{feff}%2F",
            "a.\u{202e}x",
            "registry.a中",
            "中",
            "x.0\u{feff}",
        ] {
            assert!(RegistryHost::parse(s).is_err(), "{s:?} should be invalid");
        }
    }

    #[test]
    fn error_is_one_line() {
        let e = RegistryHost::parse("a\nb c").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }
}
