//! The HTTP client, built only on the network paths (`login`, `logout --revoke`, …).
//!
//! `get` never builds it: a TLS client loads the OS trust store (~5 ms) and an async runtime
//! is needed to drive it. TLS is rustls with the `ring` provider (the default aws-lc-rs
//! costs ~70 ms of entropy set-up at the first handshake). Every request has a deadline.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};

use super::GitLabError;

/// No single request may take longer than this (BuildKit gives a helper 60 s in all).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

pub struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    /// Which CA certificates HTTPS trusts (the OS's for GitLab).
    roots: Roots,
    /// No single request may take longer than this ([`REQUEST_DEADLINE`] unless set).
    per_request: Duration,
    /// For loopback hosts: never through a proxy (a plain-HTTP token would reach the proxy
    /// in clear). Built on first use.
    direct: std::sync::OnceLock<Result<reqwest::Client, String>>,
    /// An overall deadline (e.g. a whole `get`): requests are cut short to meet it.
    deadline: Option<std::time::Instant>,
    /// The clock skew (this machine − the server) measured from the `Date` header of the
    /// latest answer of each origin (`scheme://host:port`).
    skews: std::sync::Mutex<Vec<(String, jiff::SignedDuration)>>,
}

/// A response read to the end (GitLab's bodies are small).
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// Which CA certificates an [`Http`] trusts for HTTPS.
#[derive(Clone)]
pub enum Roots {
    /// The OS's trust store (loaded when the client is built: ~ms).
    System,
    /// Only these (e.g. `VAULT_CACERT`, as the `vault` CLI does): the OS store is not read.
    Only(Vec<reqwest::Certificate>),
    /// None at all: for a client that only ever speaks plain HTTP to loopback, so building
    /// it reads no certificates. An HTTPS request through it fails at the handshake.
    PlainHttpOnly,
}

/// One extra request header; a `sensitive` one (a token) is marked so and never logged.
pub struct Header<'a> {
    pub name: &'static str,
    pub value: &'a str,
    pub sensitive: bool,
}

/// How a request authenticates. The secret goes into a header reqwest marks sensitive.
pub enum Auth<'a> {
    None,
    Basic {
        username: &'a str,
        password: &'a str,
    },
    Bearer(&'a str),
}

impl Http {
    pub fn new() -> Result<Http, GitLabError> {
        Http::with_roots(Roots::System)
    }

    /// A client that trusts `roots` for HTTPS ([`Http::new`]: the OS's).
    pub fn with_roots(roots: Roots) -> Result<Http, GitLabError> {
        // Installing twice in one process is harmless; the first provider stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .enable_io()
            .build()
            .map_err(|e| GitLabError::Client(e.to_string()))?;
        // The TLS set-up loads the OS's CA certificates; without any it fails with a bare
        // "builder error", so say what is missing instead.
        let client = trusting(client_builder(), &roots).build().map_err(|e| {
            matches!(roots, Roots::System)
                .then(|| check_ca_certificates().err())
                .flatten()
                .unwrap_or_else(|| GitLabError::Client(describe(&e)))
        })?;
        Ok(Http {
            runtime,
            client,
            roots,
            per_request: REQUEST_DEADLINE,
            direct: std::sync::OnceLock::new(),
            deadline: None,
            skews: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn client_for(&self, url: &Url) -> Result<&reqwest::Client, GitLabError> {
        if !is_loopback(url) {
            return Ok(&self.client);
        }
        self.direct
            .get_or_init(|| {
                trusting(client_builder(), &self.roots)
                    .no_proxy()
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| GitLabError::Client(e.clone()))
    }

    /// Makes every later request finish by `deadline`.
    pub fn with_deadline(mut self, deadline: std::time::Instant) -> Http {
        self.deadline = Some(deadline);
        self
    }

    /// Makes every later request finish within `limit` (at most [`REQUEST_DEADLINE`]).
    pub fn with_request_deadline(mut self, limit: Duration) -> Http {
        self.per_request = limit.min(REQUEST_DEADLINE);
        self
    }

    /// Time left before the overall deadline.
    pub fn remaining(&self) -> Duration {
        match self.deadline {
            Some(d) => d.saturating_duration_since(std::time::Instant::now()),
            None => REQUEST_DEADLINE,
        }
    }

    /// This machine's clock minus the clock of the server at `url`'s origin (positive: this
    /// machine is ahead), from the `Date` header of its latest answer; `None` before any
    /// answer with a readable `Date`. Accurate to about a second plus the request's latency.
    pub fn skew(&self, url: &Url) -> Option<jiff::SignedDuration> {
        let origin = url.origin().ascii_serialization();
        let skews = self.skews.lock().unwrap_or_else(|e| e.into_inner());
        skews.iter().find(|(o, _)| *o == origin).map(|(_, s)| *s)
    }

    fn record_skew(&self, url: &Url, headers: &HeaderMap, arrived: jiff::Timestamp) {
        let Some(date) = server_date(headers) else {
            return;
        };
        let origin = url.origin().ascii_serialization();
        let mut skews = self.skews.lock().unwrap_or_else(|e| e.into_inner());
        skews.retain(|(o, _)| *o != origin);
        skews.push((origin, arrived.duration_since(date)));
    }

    pub fn request(
        &self,
        method: Method,
        url: Url,
        auth: Auth<'_>,
        query: &[(&str, &str)],
    ) -> Result<Response, GitLabError> {
        self.send(method, url, auth, query, &[])
    }

    /// A POST with an `application/x-www-form-urlencoded` body (OAuth): secrets in the
    /// body, never in the URL.
    pub fn post_form(&self, url: Url, form: &[(&str, &str)]) -> Result<Response, GitLabError> {
        self.send(Method::POST, url, Auth::None, &[], form)
    }

    fn send(
        &self,
        method: Method,
        url: Url,
        auth: Auth<'_>,
        query: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> Result<Response, GitLabError> {
        let mut url = url;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut req = self.prepare(method, &url)?;
        if !form.is_empty() {
            req = req.form(form);
        }
        req = match auth {
            Auth::None => req,
            Auth::Basic { username, password } => req.basic_auth(username, Some(password)),
            Auth::Bearer(token) => req.bearer_auth(token),
        };
        self.run(req, url)
    }

    /// A request with extra `headers` and an optional JSON `body` (Vault's API): the same
    /// transport rules, deadlines and error mapping as [`Http::request`].
    pub fn request_json(
        &self,
        method: Method,
        url: Url,
        headers: &[Header<'_>],
        body: Option<&serde_json::Value>,
    ) -> Result<Response, GitLabError> {
        let mut req = self.prepare(method, &url)?;
        for h in headers {
            let mut value = reqwest::header::HeaderValue::from_str(h.value).map_err(|_| {
                GitLabError::Client(format!("the {} header has an invalid character", h.name))
            })?;
            value.set_sensitive(h.sensitive);
            req = req.header(h.name, value);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        self.run(req, url)
    }

    fn prepare(&self, method: Method, url: &Url) -> Result<reqwest::RequestBuilder, GitLabError> {
        check_transport(url)?;
        if url.scheme() == "https" && matches!(self.roots, Roots::System) {
            check_ca_certificates()?;
        }
        Ok(self.client_for(url)?.request(method, url.clone()))
    }

    fn run(&self, req: reqwest::RequestBuilder, url: Url) -> Result<Response, GitLabError> {
        let fut = async {
            let resp = req.send().await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.text().await?;
            Ok::<_, reqwest::Error>(Response {
                status,
                headers,
                body,
            })
        };
        let outcome = self.runtime.block_on(async {
            tokio::time::timeout(self.per_request.min(self.remaining()), fut).await
        });
        match outcome {
            Err(_) => Err(GitLabError::Timeout { url: redact(&url) }),
            // Checked first: a connect failure (even a connect timeout) means nothing was sent.
            Ok(Err(e)) if e.is_connect() => Err(GitLabError::Connect {
                url: redact(&url),
                detail: describe(&e),
            }),
            Ok(Err(e)) if e.is_timeout() => Err(GitLabError::Timeout { url: redact(&url) }),
            Ok(Err(e)) => Err(GitLabError::Network {
                url: redact(&url),
                detail: describe(&e),
            }),
            Ok(Ok(r)) => {
                self.record_skew(&url, &r.headers, crate::clock::now());
                Ok(r)
            }
        }
    }
}

/// The `Date` header (RFC 9110 §5.6.7's IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`): when
/// the server says it answered, on its clock.
pub fn server_date(headers: &HeaderMap) -> Option<jiff::Timestamp> {
    let value = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value.trim())
        .ok()
}

fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!(
            "docker-credential-gitlab/",
            env!("CARGO_PKG_VERSION")
        ))
        .connect_timeout(CONNECT_DEADLINE)
        .timeout(REQUEST_DEADLINE)
        // A token must only ever go to the URL we chose; never follow a redirect.
        .redirect(reqwest::redirect::Policy::none())
}

fn trusting(builder: reqwest::ClientBuilder, roots: &Roots) -> reqwest::ClientBuilder {
    match roots {
        Roots::System => builder,
        Roots::Only(certs) => builder.tls_certs_only(certs.iter().cloned()),
        Roots::PlainHttpOnly => builder.tls_certs_only([]),
    }
}

/// HTTPS needs the OS's CA certificates; a `FROM scratch` image has none. Say so before
/// anything is sent, rather than fail later with an opaque TLS error.
#[cfg(target_os = "linux")]
fn check_ca_certificates() -> Result<(), GitLabError> {
    use crate::env::{Env, SSL_CERT_FILE};
    if let Some(file) = Env::process().path(SSL_CERT_FILE)
        && !file.is_file()
    {
        return Err(GitLabError::Client(format!(
            "SSL_CERT_FILE={} does not exist; point it at a PEM bundle of CA certificates",
            file.display()
        )));
    }
    let found = openssl_probe::probe();
    let has_certs = found.cert_file.is_some()
        || found
            .cert_dir
            .iter()
            .any(|d| std::fs::read_dir(d).is_ok_and(|mut entries| entries.next().is_some()));
    if has_certs {
        Ok(())
    } else {
        Err(GitLabError::Client(
            "no CA certificates found for HTTPS (e.g. a FROM scratch image): install the \
             ca-certificates package, or set SSL_CERT_FILE to a PEM bundle of CA certificates"
                .into(),
        ))
    }
}

#[cfg(not(target_os = "linux"))]
fn check_ca_certificates() -> Result<(), GitLabError> {
    Ok(())
}

/// Secrets may only travel over HTTPS; plain HTTP is allowed for loopback test hosts.
pub fn check_transport(url: &Url) -> Result<(), GitLabError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(GitLabError::Insecure { url: redact(url) }),
    }
}

pub fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    crate::registry::is_loopback_host(host.trim_start_matches('[').trim_end_matches(']'))
}

/// Whether two GitLab URLs are the same instance: scheme, host, port and path.
pub fn same_base(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
}

/// URLs in messages never carry credentials or query strings.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

/// The innermost cause is what tells the user what happened (DNS, refused, TLS …).
fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_only_except_loopback() {
        for ok in [
            "https://gitlab.com/jwt/auth",
            "http://127.0.0.1:8080/jwt/auth",
            "http://localhost/x",
            "http://[::1]:1/",
        ] {
            check_transport(&Url::parse(ok).unwrap()).unwrap();
        }
        for bad in ["http://gitlab.example.com/jwt/auth", "ftp://127.0.0.1/"] {
            assert!(check_transport(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn date_header_is_read_as_imf_fixdate() {
        let mut h = HeaderMap::new();
        assert_eq!(server_date(&h), None);
        h.insert(
            reqwest::header::DATE,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(
            server_date(&h),
            Some("1994-11-06T08:49:37Z".parse().unwrap())
        );
        for bad in ["yesterday", "", "1994-11-06T08:49:37Z"] {
            h.insert(reqwest::header::DATE, bad.parse().unwrap());
            assert_eq!(server_date(&h), None, "{bad}");
        }
    }

    #[test]
    fn skew_is_kept_per_origin() {
        let http = Http::new().unwrap();
        let gitlab = Url::parse("https://gitlab.example.com/api/v4/x").unwrap();
        let registry = Url::parse("https://registry.example.com/v2/").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::DATE,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        let ten_min_later: jiff::Timestamp = "1994-11-06T08:59:37Z".parse().unwrap();
        http.record_skew(&gitlab, &h, ten_min_later);
        assert_eq!(
            http.skew(&Url::parse("https://gitlab.example.com/oauth/token").unwrap()),
            Some(jiff::SignedDuration::from_mins(10))
        );
        assert_eq!(http.skew(&registry), None);
        http.record_skew(&gitlab, &h, "1994-11-06T08:49:00Z".parse().unwrap());
        assert_eq!(
            http.skew(&gitlab),
            Some(jiff::SignedDuration::from_secs(-37))
        );
    }

    #[test]
    fn redaction() {
        let u = Url::parse("https://user:pw@gitlab.com/api?private_token=x").unwrap();
        assert_eq!(redact(&u), "https://gitlab.com/api");
    }
}
