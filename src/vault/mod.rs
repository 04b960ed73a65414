//! A small blocking client for the parts of the Vault / OpenBao HTTP API that fleet mode
//! uses: KV version 2 (read, check-and-set write, list, destroy), the token's own lifetime
//! (`lookup-self`, `renew-self`), AppRole login, seal status and `capabilities-self`.
//!
//! Hand-written on the crate's own [`Http`] rather than `vaultrs`: that crate is async only,
//! builds its own reqwest client (loading the OS trust store) up front, and brings rustify,
//! derive_builder and friends into a small static binary; here a `get` costs one request,
//! built with no TLS roots at all for a plain-HTTP loopback Vault.
//!
//! Nothing is sent before the first call; every request ends by the caller's deadline and
//! within [`REQUEST_LIMIT`]. The token is sent only in a sensitive `X-Vault-Token` header,
//! and only to the configured address (no redirects, no proxy for loopback).

mod config;
mod error;
#[cfg(test)]
mod tests;
mod token;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub(crate) use config::{AuthSource, Config};
pub(crate) use error::VaultError;

use crate::gitlab::http::{Header, Http, Roots};
use crate::secret::{ExposeSecret, Secret};
use error::{from_transport, vault_errors};

/// No single Vault request may take longer than this (a `get` must end within 5 s).
pub(crate) const REQUEST_LIMIT: Duration = Duration::from_secs(4);
/// What every record needs, on both `<mount>/data/<prefix>/*` and `<mount>/metadata/<prefix>/*`.
pub(crate) const CAPABILITIES: [&str; 6] = ["create", "read", "update", "patch", "delete", "list"];

/// A KV v2 secret's current version and its data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Versioned {
    pub version: u64,
    pub data: Value,
}

/// A KV v2 check-and-set that lost: the secret's version was not the one given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conflict;

/// A Vault client for one process. `Debug` shows no token.
pub(crate) struct Vault {
    config: Config,
    note_dir: PathBuf,
    deadline: Instant,
    http: OnceLock<Result<Http, VaultError>>,
    /// The token in use and its expiry, once checked (or logged in) in this process.
    session: Mutex<Option<token::Session>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("addr", &self.config.shown_addr())
            .field("path", &self.config.path())
            .field("auth", &self.config.auth_method())
            .field("host_id", &self.config.host_id)
            .finish_non_exhaustive()
    }
}

/// A request's answer: status and body.
struct Answer {
    status: StatusCode,
    body: String,
}

impl Vault {
    /// Nothing is sent until the first request. Every request ends by `deadline` and each
    /// within [`REQUEST_LIMIT`]. `note_dir` (the data directory) keeps a non-secret note of
    /// the token's expiry, so the steady path asks Vault nothing about the token.
    pub fn new(config: Config, note_dir: PathBuf, deadline: Instant) -> Vault {
        Vault {
            config,
            note_dir,
            deadline,
            http: OnceLock::new(),
            session: Mutex::new(None),
        }
    }

    /// This machine's clock minus Vault's, from the `Date` of Vault's latest answer to this
    /// process (zero before any): a fleet keeps its claims and leases on Vault's clock, so a
    /// host whose clock is off neither takes over a live claim nor cuts a live lease.
    pub fn skew(&self) -> jiff::SignedDuration {
        self.http
            .get()
            .and_then(|h| h.as_ref().ok())
            .and_then(|h| h.skew(&self.config.addr))
            .unwrap_or(jiff::SignedDuration::ZERO)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current version of `<prefix>/<rel>`; `None` if it never existed or its latest
    /// version is deleted or destroyed.
    pub fn read(&self, rel: &str) -> Result<Option<Versioned>, VaultError> {
        let path = self.kv_path("data", rel)?;
        let answer = self.send("read", Method::GET, &path, false, None)?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => {
                let v: Value = self.parse("read", &path, &answer)?;
                let data = &v["data"]["data"];
                if data.is_null() {
                    return Ok(None);
                }
                let version = v["data"]["metadata"]["version"]
                    .as_u64()
                    .ok_or_else(|| self.bad_answer("read", &path, "no data.metadata.version"))?;
                Ok(Some(Versioned {
                    version,
                    data: data.clone(),
                }))
            }
            _ => Err(self.unexpected("read", &path, &answer)),
        }
    }

    /// Writes a new version of `<prefix>/<rel>`: with `cas = Some(n)` only if the current
    /// version is `n` (`0`: only if it does not exist yet). Returns the new version.
    pub fn write(
        &self,
        rel: &str,
        data: &Value,
        cas: Option<u64>,
    ) -> Result<Result<u64, Conflict>, VaultError> {
        let path = self.kv_path("data", rel)?;
        let body = match cas {
            Some(n) => json!({"options": {"cas": n}, "data": data}),
            None => json!({"data": data}),
        };
        let answer = self.send("write", Method::POST, &path, false, Some(&body))?;
        match answer.status {
            StatusCode::OK => {
                let v: Value = self.parse("write", &path, &answer)?;
                let version = v["data"]["version"]
                    .as_u64()
                    .ok_or_else(|| self.bad_answer("write", &path, "no data.version"))?;
                Ok(Ok(version))
            }
            StatusCode::BAD_REQUEST if answer.body.contains("check-and-set") => Ok(Err(Conflict)),
            // KV version 1 takes the write as a secret named `data/…` and answers 204.
            StatusCode::NO_CONTENT => Err(self.bad_answer(
                "write",
                &path,
                &format!(
                    "no version: is `{}` a KV version 2 mount? (vault secrets enable -path={} kv-v2)",
                    self.config.mount, self.config.mount
                ),
            )),
            _ => Err(self.unexpected("write", &path, &answer)),
        }
    }

    /// The keys under `<prefix>/<rel_dir>` (a sub-folder's name ends with `/`); empty when
    /// there is none.
    pub fn list(&self, rel_dir: &str) -> Result<Vec<String>, VaultError> {
        let path = self.kv_path("metadata", rel_dir)?;
        let answer = self.send("list", Method::GET, &path, true, None)?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(Vec::new()),
            StatusCode::OK => {
                let v: Value = self.parse("list", &path, &answer)?;
                let keys = v["data"]["keys"]
                    .as_array()
                    .ok_or_else(|| self.bad_answer("list", &path, "no data.keys"))?;
                Ok(keys
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect())
            }
            _ => Err(self.unexpected("list", &path, &answer)),
        }
    }

    /// Removes `<prefix>/<rel>` with every version and its metadata; absent is fine.
    pub fn destroy(&self, rel: &str) -> Result<(), VaultError> {
        let path = self.kv_path("metadata", rel)?;
        let answer = self.send("delete", Method::DELETE, &path, false, None)?;
        match answer.status {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.unexpected("delete", &path, &answer)),
        }
    }

    /// When the Vault token in use expires (`None`: never, e.g. a root token). From the
    /// token note when it is fresh, else from `lookup-self` (or the AppRole login).
    pub fn token_expiry(&self) -> Result<Option<jiff::Timestamp>, VaultError> {
        Ok(self.session()?.1)
    }

    /// Whether Vault is sealed (`sys/seal-status`, which needs no token).
    pub fn seal_status(&self) -> Result<bool, VaultError> {
        let path = "sys/seal-status";
        let answer = self.raw(Method::GET, path, false, None, None)?;
        if answer.status != StatusCode::OK {
            return Err(self.unexpected("seal status", path, &answer));
        }
        let v: Value = self.parse("seal status", path, &answer)?;
        v["sealed"]
            .as_bool()
            .ok_or_else(|| self.bad_answer("seal status", path, "no `sealed`"))
    }

    /// What the token may not do of [`CAPABILITIES`] on the records' paths, one entry per
    /// path, e.g. `"list on secret/metadata/docker-credential-gitlab/*"`; empty: all granted.
    pub fn missing_capabilities(&self) -> Result<Vec<String>, VaultError> {
        let (mount, prefix) = (&self.config.mount, &self.config.prefix);
        let paths = [
            format!("{mount}/data/{prefix}/x"),
            format!("{mount}/metadata/{prefix}/x"),
        ];
        let api = "sys/capabilities-self";
        let body = json!({ "paths": paths });
        let answer = self.send("capabilities-self", Method::POST, api, false, Some(&body))?;
        if answer.status != StatusCode::OK {
            return Err(self.unexpected("capabilities-self", api, &answer));
        }
        let v: Value = self.parse("capabilities-self", api, &answer)?;
        let mut missing = Vec::new();
        for path in &paths {
            let granted = v["data"][path.as_str()]
                .as_array()
                .or_else(|| v[path.as_str()].as_array())
                .ok_or_else(|| self.bad_answer("capabilities-self", api, "no list for a path"))?;
            let has = |c: &str| granted.iter().any(|g| g == c || g == "root");
            let lacking: Vec<&str> = CAPABILITIES.into_iter().filter(|c| !has(c)).collect();
            if !lacking.is_empty() {
                let glob = format!("{}*", path.trim_end_matches('x'));
                missing.push(format!("{} on {glob}", lacking.join(", ")));
            }
        }
        Ok(missing)
    }

    /// `<mount>/<kind>/<prefix>/<rel>`, checked: `rel` comes from the helper, but a key
    /// that Vault would read as another path must never get that far.
    fn kv_path(&self, kind: &str, rel: &str) -> Result<String, VaultError> {
        let rel = rel.trim_matches('/');
        let bad = rel.split('/').any(|s| s == "." || s == "..")
            || rel.contains("//")
            || rel
                .chars()
                .any(|c| c.is_control() || c == '?' || c == '#' || c == '%');
        if bad {
            return Err(VaultError::BadKey {
                addr: self.config.shown_addr(),
                key: rel.chars().take(100).collect(),
            });
        }
        let (mount, prefix) = (&self.config.mount, &self.config.prefix);
        Ok(match rel {
            "" => format!("{mount}/{kind}/{prefix}"),
            _ => format!("{mount}/{kind}/{prefix}/{rel}"),
        })
    }

    fn http(&self) -> Result<&Http, VaultError> {
        self.http
            .get_or_init(|| build_http(&self.config, self.deadline))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The token in use and its expiry, establishing them on the first call.
    fn session(&self) -> Result<(Secret, Option<jiff::Timestamp>), VaultError> {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if session.is_none() {
            *session = Some(token::establish(self)?);
        }
        let s = session.as_ref().expect("set above");
        Ok((s.token.clone(), s.expire_time))
    }

    /// An authenticated request; a 503 is "sealed", a 403 is told apart (dead token or
    /// missing policy) with one `lookup-self`.
    fn send(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        list: bool,
        body: Option<&Value>,
    ) -> Result<Answer, VaultError> {
        let (token, _) = self.session()?;
        let answer = self.raw(method, path, list, body, Some(&token))?;
        if answer.status == StatusCode::FORBIDDEN {
            return Err(match token::lookup_self(self, &token) {
                Err(e) => e,
                Ok(_) => VaultError::Denied {
                    addr: self.config.shown_addr(),
                    op,
                    path: path.to_owned(),
                },
            });
        }
        Ok(answer)
    }

    /// One request to `/v1/<path>`, with the token if given; transport failures and a
    /// sealed Vault become their errors.
    fn raw(
        &self,
        method: Method,
        path: &str,
        list: bool,
        body: Option<&Value>,
        token: Option<&Secret>,
    ) -> Result<Answer, VaultError> {
        let http = self.http()?;
        let mut url = self.config.addr.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("v1");
            segments.extend(path.split('/').filter(|s| !s.is_empty()));
        }
        if list {
            url.query_pairs_mut().append_pair("list", "true");
        }
        let mut headers = Vec::new();
        if let Some(token) = token {
            headers.push(Header {
                name: "X-Vault-Token",
                value: token.expose_secret(),
                sensitive: true,
            });
        }
        if let Some(namespace) = &self.config.namespace {
            headers.push(Header {
                name: "X-Vault-Namespace",
                value: namespace,
                sensitive: false,
            });
        }
        let limit = REQUEST_LIMIT.min(http.remaining());
        let response = http
            .request_json(method, url, &headers, body)
            .map_err(|e| from_transport(e, &self.config.shown_addr(), limit))?;
        let answer = Answer {
            status: response.status,
            body: response.body,
        };
        if answer.status == StatusCode::SERVICE_UNAVAILABLE && answer.body.contains("sealed") {
            return Err(VaultError::Sealed {
                addr: self.config.shown_addr(),
            });
        }
        Ok(answer)
    }

    fn parse(&self, op: &'static str, path: &str, answer: &Answer) -> Result<Value, VaultError> {
        serde_json::from_str(&answer.body)
            .map_err(|e| self.bad_answer(op, path, &format!("not JSON ({e})")))
    }

    fn bad_answer(&self, op: &'static str, path: &str, detail: &str) -> VaultError {
        VaultError::BadAnswer {
            addr: self.config.shown_addr(),
            op,
            path: path.to_owned(),
            detail: detail.to_owned(),
        }
    }

    fn unexpected(&self, op: &'static str, path: &str, answer: &Answer) -> VaultError {
        VaultError::Unexpected {
            addr: self.config.shown_addr(),
            op,
            path: path.to_owned(),
            status: answer.status.as_u16(),
            errors: vault_errors(&answer.body, &self.secrets()),
        }
    }

    /// The secrets that must never appear in a message.
    fn secrets(&self) -> Vec<&str> {
        match &self.config.auth {
            AuthSource::Token { token, .. } => vec![token.expose_secret()],
            AuthSource::AppRole { secret_id, .. } => vec![secret_id.expose_secret()],
        }
    }
}

/// The HTTP client for `config`: trusting only `VAULT_CACERT` when set, nothing at all for
/// a plain-HTTP (loopback) address, else the OS's roots.
fn build_http(config: &Config, deadline: Instant) -> Result<Http, VaultError> {
    let addr = config.shown_addr();
    let roots = match &config.cacert {
        Some(path) => {
            let failed = |detail: String| VaultError::CaCert {
                path: path.display().to_string(),
                addr: addr.clone(),
                detail,
            };
            let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| failed(crate::report::one_line(&e.to_string())))?;
            if certs.is_empty() {
                return Err(failed("no PEM certificate in it".into()));
            }
            Roots::Only(certs)
        }
        None if config.addr.scheme() == "http" => Roots::PlainHttpOnly,
        None => Roots::System,
    };
    let http = Http::with_roots(roots).map_err(|e| VaultError::Client {
        addr: addr.clone(),
        detail: crate::report::one_line(&e.to_string()),
    })?;
    Ok(http
        .with_deadline(deadline)
        .with_request_deadline(REQUEST_LIMIT))
}
