//! The request and response types of the route handlers, independent of the rest of the
//! crate: a [`Req`] is a fully read hyper request, a [`Resp`] an answer under construction.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::HeaderMap;

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

    pub fn into_hyper(self) -> Response<Full<Bytes>> {
        let mut b = Response::builder().status(self.status);
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(self.body)).expect("valid response")
    }
}
