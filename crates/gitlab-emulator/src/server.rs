//! The HTTP/1.1 server: accept loop, request recording, fault injection, dispatch.
//!
//! Built directly on hyper so that a handler can make the connection close without any
//! response (returning an error from the service makes hyper drop the connection).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::faults::{self, Fault};
use crate::http::Req;
use crate::model::Shared;
use crate::{RequestRecord, routes};

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

    let (fault, username, at) = {
        let mut st = shared.lock();
        let username = match req.basic() {
            Some((u, _)) => Some(u),
            None => req.api_token().and_then(|t| st.principal_for_secret(&t)),
        };
        (faults::take(&mut st.faults, &req.path), username, st.now())
    };

    let record = |status: u16| RequestRecord {
        method: req.method.clone(),
        path: req.path.clone(),
        query: redact_query(&req.query),
        status,
        username: username.clone(),
        at,
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
    let date = {
        let mut st = shared.lock();
        st.requests.push(record(resp.status));
        http_date(st.now())
    };
    Ok(resp.with_header("Date", date).into_hyper())
}

/// The `Date` header GitLab sends on every answer, on the API clock (real clock + the test
/// offset), as RFC 9110's IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. (hyper would add
/// one from the real clock; a header set here replaces that.)
pub(crate) fn http_date(now: jiff::Timestamp) -> String {
    jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&now)
        .expect("a date within RFC 9110's years")
}

#[cfg(test)]
mod tests {
    #[test]
    fn date_header_is_imf_fixdate() {
        let t: jiff::Timestamp = "1994-11-06T08:49:37Z".parse().unwrap();
        assert_eq!(super::http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
