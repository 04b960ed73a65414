//! The HTTP/1.1 server: accept loop, request recording, fault injection, dispatch.
//!
//! Built directly on hyper so that a handler can make the connection close without any
//! response (returning an error from the service makes hyper drop the connection).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::faults::{self, Fault};
use crate::jwt::Signer;
use crate::model::State;
use crate::{RequestRecord, routes};

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub signer: Signer,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A fully read request, handed to the synchronous route handlers.
pub(crate) struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: IpAddr,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// All `(key, value)` pairs of the raw query string, in order, percent-decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// Parameters from the query string, a form body and a JSON object body (later wins).
    pub fn params(&self) -> Vec<(String, String)> {
        let mut out = self.query_pairs();
        let ctype = self.header("content-type").unwrap_or("");
        if ctype.starts_with("application/json") {
            if let Ok(serde_json::Value::Object(map)) =
                serde_json::from_slice::<serde_json::Value>(&self.body)
            {
                for (k, v) in map {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Null => continue,
                        other => other.to_string(),
                    };
                    out.push((k, v));
                }
            }
        } else if !self.body.is_empty() {
            out.extend(
                form_urlencoded::parse(&self.body).map(|(k, v)| (k.into_owned(), v.into_owned())),
            );
        }
        out
    }

    pub fn param(&self, name: &str) -> Option<String> {
        self.params()
            .into_iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// HTTP Basic credentials, if any.
    pub fn basic(&self) -> Option<(String, String)> {
        let value = self.header("authorization")?;
        let (scheme, rest) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = STANDARD.decode(rest.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (u, p) = text.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }

    /// An API token: `PRIVATE-TOKEN` header or `Authorization: Bearer`.
    pub fn api_token(&self) -> Option<String> {
        self.api_token_with_source().map(|(t, _)| t)
    }

    /// The API token and whether it came from the `PRIVATE-TOKEN` header (which GitLab only
    /// matches against personal access tokens, never OAuth tokens).
    pub fn api_token_with_source(&self) -> Option<(String, bool)> {
        if let Some(t) = self.header("private-token") {
            return Some((t.trim().to_string(), true));
        }
        let value = self.header("authorization")?;
        let (scheme, rest) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| (rest.trim().to_string(), false))
    }
}

/// A response under construction.
pub(crate) struct Resp {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Resp {
    pub fn new(status: u16, content_type: &str, body: Bytes) -> Resp {
        Resp {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            body,
        }
    }

    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Resp {
        Resp::new(status, "application/json", Bytes::from(value.to_string()))
    }

    pub fn text(status: u16, text: &str) -> Resp {
        Resp::new(status, "text/plain", Bytes::from(text.to_string()))
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Resp {
        self.headers.push((name, value));
        self
    }

    fn into_hyper(self) -> Response<Full<Bytes>> {
        let mut b = Response::builder().status(self.status);
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(self.body)).expect("valid response")
    }
}

#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault injected: connection dropped")
    }
}

impl std::error::Error for DropConnection {}

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(shared.clone(), peer, req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Query keys whose values are secrets and must not be recorded.
const SECRET_KEYS: &[&str] = &[
    "private_token",
    "access_token",
    "refresh_token",
    "job_token",
    "password",
    "device_code",
    "token",
];

fn redact_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    query
        .split('&')
        .map(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            if SECRET_KEYS.contains(&key) {
                format!("{key}=[REDACTED]")
            } else {
                pair.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let req = Req {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
        peer: peer.ip(),
    };

    let (fault, username) = {
        let mut st = shared.lock();
        let username = match req.basic() {
            Some((u, _)) => Some(u),
            None => req.api_token().and_then(|t| st.principal_for_secret(&t)),
        };
        (faults::take(&mut st.faults, &req.path), username)
    };

    let record = |status: u16| RequestRecord {
        method: req.method.clone(),
        path: req.path.clone(),
        query: redact_query(&req.query),
        status,
        username: username.clone(),
        at: jiff::Timestamp::now(),
    };

    let resp = match fault {
        Some(Fault::DropConnection) => {
            shared.lock().requests.push(record(0));
            return Err(DropConnection);
        }
        Some(Fault::Status(code)) => faults::status_response(code),
        Some(Fault::RateLimit { retry_after_secs }) => {
            faults::rate_limit_response(retry_after_secs, jiff::Timestamp::now())
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            routes::dispatch(&shared, &req)
        }
        Some(Fault::StatusAfterWork(code)) => {
            let _done = routes::dispatch(&shared, &req);
            faults::status_response(code)
        }
        Some(Fault::DelayAfterWork(d)) => {
            let done = routes::dispatch(&shared, &req);
            tokio::time::sleep(d).await;
            done
        }
        Some(Fault::DropAfterWork) => {
            let _done = routes::dispatch(&shared, &req);
            shared.lock().requests.push(record(0));
            return Err(DropConnection);
        }
        None => routes::dispatch(&shared, &req),
    };
    shared.lock().requests.push(record(resp.status));
    Ok(resp.into_hyper())
}
