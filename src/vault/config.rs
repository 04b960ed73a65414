//! Where Vault is and how the helper authenticates to it, from the environment only.
//!
//! Read once per process ([`Config::from_env`]); nothing here talks to Vault. Every rule
//! that can be checked without Vault is checked here, so a typo is one line naming the
//! variable before any request is made.

use std::path::{Path, PathBuf};

use reqwest::Url;

use super::VaultError;
use crate::env::{self, Env};
use crate::gitlab::http::is_loopback;
use crate::secret::Secret;

/// The KV v2 mount and prefix used when `DOCKER_CREDENTIAL_GITLAB_VAULT_PATH` is unset.
pub(crate) const DEFAULT_PATH: &str = "secret/docker-credential-gitlab";
/// The Vault CLI's token file, relative to the home directory.
pub(crate) const TOKEN_FILE: &str = ".vault-token";
/// Where the AppRole auth method is mounted.
pub(crate) const APPROLE_MOUNT: &str = "approle";

/// How the helper proves itself to Vault: the first one found wins.
#[derive(Debug, Clone)]
pub(crate) enum AuthSource {
    /// A Vault token; `from` names where it came from: `VAULT_TOKEN`, `BAO_TOKEN` or
    /// `~/.vault-token`.
    Token { from: &'static str, token: Secret },
    /// An AppRole login (mount `approle`), done once per process; the token it yields is
    /// kept in memory only.
    AppRole { role_id: String, secret_id: Secret },
}

/// Everything needed to reach the records in Vault. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `VAULT_ADDR` else `BAO_ADDR`: HTTPS, or plain HTTP to this machine only.
    pub addr: Url,
    /// The KV v2 mount: the first segment of the path.
    pub mount: String,
    /// The rest of the path, without leading or trailing `/`.
    pub prefix: String,
    /// `VAULT_NAMESPACE` (Vault Enterprise / OpenBao namespaces).
    pub namespace: Option<String>,
    /// `VAULT_CACERT`: the only CA trusted for Vault's certificate, as for the `vault` CLI.
    pub cacert: Option<PathBuf>,
    pub auth: AuthSource,
    /// This host's id in leases, claims and the journal.
    pub host_id: String,
}

impl Config {
    /// The configuration the environment describes; a missing or malformed setting is one
    /// line naming the variable and the fix. Reads `~/.vault-token` (home: `HOME`, else
    /// `USERPROFILE`) when no token variable is set, and the hostname when
    /// `DOCKER_CREDENTIAL_GITLAB_HOST_ID` is unset.
    pub fn from_env(env: &Env) -> Result<Config, VaultError> {
        let addr = address(env)?;
        let (mount, prefix) = parse_path(env.var(env::VAULT_PATH).unwrap_or(DEFAULT_PATH))?;
        let host_id = match env.var(env::HOST_ID) {
            Some(id) => check_host_id(id, env::HOST_ID)?,
            None => hostname_id()?,
        };
        let home = env.path(env::HOME).or_else(|| env.path(env::USERPROFILE));
        let auth = auth(env, home.as_deref(), &addr)?;
        Ok(Config {
            addr,
            mount,
            prefix,
            namespace: env
                .var(env::VAULT_NAMESPACE)
                .map(|n| n.trim_matches('/').to_owned())
                .filter(|n| !n.is_empty()),
            cacert: env.path(env::VAULT_CACERT),
            auth,
            host_id,
        })
    }

    /// How the helper authenticates, for `status`: `VAULT_TOKEN`, `BAO_TOKEN`,
    /// `~/.vault-token` or `AppRole`.
    pub fn auth_method(&self) -> &'static str {
        match &self.auth {
            AuthSource::Token { from, .. } => from,
            AuthSource::AppRole { .. } => "AppRole",
        }
    }

    /// `<mount>/<prefix>`, as `DOCKER_CREDENTIAL_GITLAB_VAULT_PATH` names it.
    pub fn path(&self) -> String {
        format!("{}/{}", self.mount, self.prefix)
    }

    /// The address for messages: no credentials, no query.
    pub fn shown_addr(&self) -> String {
        shown(&self.addr)
    }
}

pub(crate) fn shown(url: &Url) -> String {
    crate::gitlab::http::redact(url)
        .trim_end_matches('/')
        .to_owned()
}

fn address(env: &Env) -> Result<Url, VaultError> {
    let (var, value) = [env::VAULT_ADDR, env::BAO_ADDR]
        .into_iter()
        .find_map(|var| Some((var, env.var(var)?.trim())))
        .ok_or(VaultError::NoAddress)?;
    let parsed = Url::parse(value);
    // Shown without credentials or query when it parses.
    let value_shown = match &parsed {
        Ok(url) => shown(url),
        Err(_) => value.chars().take(100).collect(),
    };
    let bad = |why: &str| VaultError::BadAddress {
        var,
        value: value_shown.clone(),
        why: why.to_owned(),
    };
    let url = parsed.map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("it must be an http:// or https:// address with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(bad("it must not carry credentials or a query"));
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(VaultError::Insecure { addr: shown(&url) });
    }
    Ok(url)
}

/// Splits `<mount>/<prefix>` (slashes at either end ignored) and refuses what Vault would
/// read differently from what the user meant.
pub(crate) fn parse_path(value: &str) -> Result<(String, String), VaultError> {
    let bad = |why: &str| VaultError::BadPath {
        value: value.chars().take(100).collect(),
        why: why.to_owned(),
    };
    let trimmed = value.trim_matches('/');
    let segments: Vec<&str> = trimmed.split('/').collect();
    if trimmed.is_empty() {
        return Err(bad("it is empty"));
    }
    if segments.iter().any(|s| s.is_empty()) {
        return Err(bad("it has an empty segment (//)"));
    }
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err(bad("`.` and `..` are not allowed"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._~@:=,-".contains(c);
    if !trimmed.chars().all(|c| c == '/' || allowed(c)) {
        return Err(bad(
            "only letters, digits and . _ ~ @ : = , - are allowed in a segment",
        ));
    }
    match trimmed.split_once('/') {
        Some((mount, prefix)) => Ok((mount.to_owned(), prefix.to_owned())),
        None => Err(bad("it names only the KV mount; add a prefix after it")),
    }
}

/// A host id: 1 to 64 of `[A-Za-z0-9._-]`, neither `.` nor `..`.
pub(crate) fn check_host_id(id: &str, from: &'static str) -> Result<String, VaultError> {
    // `.` and `..` would be path steps, not a lease's name, in `leases/<key>/<host id>`.
    let valid = (1..=64).contains(&id.len())
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if valid {
        Ok(id.to_owned())
    } else {
        Err(VaultError::BadHostId {
            value: id.chars().take(80).collect(),
            from,
        })
    }
}

/// The hostname as a host id; its first label when the whole name does not fit.
fn hostname_id() -> Result<String, VaultError> {
    let name = hostname().ok_or(VaultError::NoHostname)?;
    check_host_id(&name, "the hostname").or_else(|e| {
        let short = name.split('.').next().unwrap_or_default();
        check_host_id(short, "the hostname").map_err(|_| e)
    })
}

fn hostname() -> Option<String> {
    let from_file = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok());
    let name = match from_file {
        Some(name) => name,
        None => {
            let out = std::process::Command::new("hostname")
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()?;
            String::from_utf8(out.stdout).ok()?
        }
    };
    Some(name.trim().to_owned()).filter(|n| !n.is_empty())
}

fn auth(env: &Env, home: Option<&Path>, addr: &Url) -> Result<AuthSource, VaultError> {
    for (var, from) in [
        (env::VAULT_TOKEN, "VAULT_TOKEN"),
        (env::BAO_TOKEN, "BAO_TOKEN"),
    ] {
        if let Some(token) = env.var(var).map(str::trim).filter(|t| !t.is_empty()) {
            return Ok(AuthSource::Token {
                from,
                token: Secret::from(token.to_owned()),
            });
        }
    }
    if let Some(file) = home.map(|h| h.join(TOKEN_FILE)) {
        match std::fs::read_to_string(&file) {
            Ok(text) if !text.trim().is_empty() => {
                return Ok(AuthSource::Token {
                    from: "~/.vault-token",
                    token: Secret::from(text.trim().to_owned()),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(VaultError::TokenFile {
                    path: file.display().to_string(),
                    detail: e.to_string(),
                });
            }
        }
    }
    let role_id = env.var(env::VAULT_ROLE_ID).map(str::trim);
    let secret_id = env.var(env::VAULT_SECRET_ID).map(str::trim);
    match (role_id, secret_id) {
        (Some(role_id), Some(secret_id)) => Ok(AuthSource::AppRole {
            role_id: role_id.to_owned(),
            secret_id: Secret::from(secret_id.to_owned()),
        }),
        (None, None) => Err(VaultError::NoAuth { addr: shown(addr) }),
        (Some(_), None) => Err(VaultError::HalfAppRole {
            set: env::VAULT_ROLE_ID,
            unset: env::VAULT_SECRET_ID,
        }),
        (None, Some(_)) => Err(VaultError::HalfAppRole {
            set: env::VAULT_SECRET_ID,
            unset: env::VAULT_ROLE_ID,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ExposeSecret;

    const ADDR: (&str, &str) = ("VAULT_ADDR", "http://127.0.0.1:8200");
    const HOST: (&str, &str) = ("DOCKER_CREDENTIAL_GITLAB_HOST_ID", "build-1");
    const TOKEN: (&str, &str) = ("VAULT_TOKEN", "hvs.tokentokentoken");

    fn config(pairs: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_env(&Env::from_pairs(pairs.iter().copied())).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_the_first_address_and_token_win() {
        let c = config(&[
            ADDR,
            ("BAO_ADDR", "https://bao.example.com"),
            HOST,
            TOKEN,
            ("BAO_TOKEN", "s.other"),
        ])
        .unwrap();
        assert_eq!(c.addr.as_str(), "http://127.0.0.1:8200/");
        assert_eq!(
            (c.mount.as_str(), c.prefix.as_str()),
            ("secret", "docker-credential-gitlab")
        );
        assert_eq!(c.path(), DEFAULT_PATH);
        assert_eq!(c.auth_method(), "VAULT_TOKEN");
        assert_eq!(c.host_id, "build-1");
        assert_eq!((&c.namespace, &c.cacert), (&None, &None));
        let shown = format!("{c:?}");
        assert!(!shown.contains("tokentoken"), "{shown}");

        let c = config(&[
            ("BAO_ADDR", "https://bao.example.com:8200"),
            ("BAO_TOKEN", "s.other"),
            ("VAULT_NAMESPACE", "team/"),
            ("VAULT_CACERT", "/etc/ca.pem"),
            ("DOCKER_CREDENTIAL_GITLAB_VAULT_PATH", "/kv/ci/docker/"),
            HOST,
        ])
        .unwrap();
        assert_eq!(c.shown_addr(), "https://bao.example.com:8200");
        assert_eq!(c.auth_method(), "BAO_TOKEN");
        assert_eq!((c.mount.as_str(), c.prefix.as_str()), ("kv", "ci/docker"));
        assert_eq!(c.path(), "kv/ci/docker");
        assert_eq!(c.namespace.as_deref(), Some("team"));
        assert_eq!(c.cacert, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn token_file_then_approle() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path().to_str().unwrap();
        std::fs::write(home.path().join(TOKEN_FILE), "hvs.fromfile\n").unwrap();
        let c = config(&[ADDR, HOST, ("HOME", h)]).unwrap();
        assert_eq!(c.auth_method(), "~/.vault-token");
        let AuthSource::Token { token, .. } = &c.auth else {
            panic!()
        };
        assert_eq!(token.expose_secret(), "hvs.fromfile");

        std::fs::write(home.path().join(TOKEN_FILE), "  \n").unwrap();
        let role = ("DOCKER_CREDENTIAL_GITLAB_VAULT_ROLE_ID", "r-1");
        let secret = ("DOCKER_CREDENTIAL_GITLAB_VAULT_SECRET_ID", "s-very-secret");
        let c = config(&[ADDR, HOST, ("HOME", h), role, secret]).unwrap();
        assert_eq!(c.auth_method(), "AppRole");
        assert!(!format!("{c:?}").contains("very-secret"));

        let e = config(&[ADDR, HOST, ("HOME", h), secret]).unwrap_err();
        assert!(e.contains("DOCKER_CREDENTIAL_GITLAB_VAULT_SECRET_ID is set but DOCKER_CREDENTIAL_GITLAB_VAULT_ROLE_ID is not"), "{e}");
        assert!(!e.contains("very-secret"), "{e}");
    }

    #[test]
    fn missing_address_or_auth_is_one_line_with_the_fix() {
        let e = config(&[HOST, TOKEN]).unwrap_err();
        assert!(e.contains("VAULT_ADDR") && e.contains("BAO_ADDR"), "{e}");
        let empty_home = tempfile::tempdir().unwrap();
        let e = config(&[ADDR, HOST, ("HOME", empty_home.path().to_str().unwrap())]).unwrap_err();
        for way in [
            "VAULT_TOKEN",
            "BAO_TOKEN",
            "~/.vault-token",
            "vault login",
            "DOCKER_CREDENTIAL_GITLAB_VAULT_ROLE_ID",
            "DOCKER_CREDENTIAL_GITLAB_VAULT_SECRET_ID",
            "http://127.0.0.1:8200",
        ] {
            assert!(e.contains(way), "{way}: {e}");
        }
        assert!(!e.contains('\n'));
    }

    #[test]
    fn addresses_must_be_https_except_loopback() {
        for ok in [
            "http://localhost:8200",
            "http://[::1]:8200/",
            "https://vault.example.com",
        ] {
            config(&[("VAULT_ADDR", ok), HOST, TOKEN]).unwrap();
        }
        let e =
            config(&[("VAULT_ADDR", "http://vault.example.com:8200"), HOST, TOKEN]).unwrap_err();
        assert!(
            e.contains("plain HTTP")
                && e.contains("http://vault.example.com:8200")
                && e.contains("https://"),
            "{e}"
        );
        for (bad, why) in [
            (
                "vault.example.com:8200",
                "VAULT_ADDR=vault.example.com:8200",
            ),
            ("ftp://127.0.0.1", "http:// or https://"),
            ("not a url", "VAULT_ADDR=not a url"),
            ("https://user:pw@vault.example.com", "credentials"),
        ] {
            let e = config(&[("VAULT_ADDR", bad), HOST, TOKEN]).unwrap_err();
            assert!(e.contains(why) && e.contains("Vault"), "{bad}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
    }

    #[test]
    fn bad_paths_and_host_ids() {
        for (path, why) in [
            ("", "DOCKER_CREDENTIAL_GITLAB_VAULT_PATH"),
            ("/", "empty"),
            ("secret", "only the KV mount"),
            ("secret/", "only the KV mount"),
            ("secret/../sys", "`..`"),
            ("secret/a//b", "empty segment"),
            ("secret/a b", "only letters"),
            ("secret/a*", "only letters"),
        ] {
            let pairs = [
                ADDR,
                HOST,
                TOKEN,
                ("DOCKER_CREDENTIAL_GITLAB_VAULT_PATH", path),
            ];
            match config(&pairs) {
                // An empty variable counts as unset: the default path.
                Ok(c) if path.is_empty() => assert_eq!(c.path(), DEFAULT_PATH),
                Ok(c) => panic!("{path} accepted: {c:?}"),
                Err(e) => assert!(
                    e.contains(why) && e.contains("DOCKER_CREDENTIAL_GITLAB_VAULT_PATH"),
                    "{path}: {e}"
                ),
            }
        }
        let long = "h".repeat(65);
        for bad in ["a/b", "host id", long.as_str(), "ünicode", ".", ".."] {
            let e = config(&[ADDR, TOKEN, ("DOCKER_CREDENTIAL_GITLAB_HOST_ID", bad)]).unwrap_err();
            assert!(
                e.contains("DOCKER_CREDENTIAL_GITLAB_HOST_ID") && e.contains("A-Za-z0-9._-"),
                "{e}"
            );
        }
        let ok = "h".repeat(64);
        assert_eq!(
            config(&[ADDR, TOKEN, ("DOCKER_CREDENTIAL_GITLAB_HOST_ID", &ok)])
                .unwrap()
                .host_id,
            ok
        );
    }

    #[test]
    fn the_hostname_is_the_default_host_id() {
        if hostname().is_none() {
            return;
        }
        let c = config(&[ADDR, TOKEN]).unwrap();
        check_host_id(&c.host_id, "test").unwrap();
    }
}
