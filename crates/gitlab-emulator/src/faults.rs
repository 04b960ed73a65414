//! Fault injection: make the next N requests under a path prefix misbehave.

use std::time::Duration;

use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};

use crate::http::Resp;

/// A misbehaviour to inject with [`crate::Emulator::inject_fault`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a GitLab-style `{"message":"<code> <reason>"}` body
    /// instead of handling the request.
    Status(u16),
    /// Sleep this long, then handle the request normally.
    Delay(Duration),
    /// Close the connection without sending any response.
    DropConnection,
    /// Do the work (e.g. rotate the token), then answer this status instead of the real
    /// answer: a proxy or GitLab failing after the commit.
    StatusAfterWork(u16),
    /// Do the work, then wait this long before answering (past the client's deadline).
    DelayAfterWork(Duration),
    /// Do the work, then close the connection without an answer.
    DropAfterWork,
    /// Answer 429 `Retry later` with `Retry-After` and `RateLimit-*` headers, like
    /// GitLab's Rack::Attack throttles.
    RateLimit {
        /// Value of the `Retry-After` header (seconds).
        retry_after_secs: u64,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct FaultEntry {
    pub prefix: String,
    pub fault: Fault,
    pub remaining: usize,
}

/// Take one use of the first fault whose prefix matches `path`.
pub(crate) fn take(faults: &mut Vec<FaultEntry>, path: &str) -> Option<Fault> {
    let idx = faults
        .iter()
        .position(|f| f.remaining > 0 && path.starts_with(&f.prefix))?;
    let entry = &mut faults[idx];
    entry.remaining -= 1;
    let fault = entry.fault.clone();
    if entry.remaining == 0 {
        faults.remove(idx);
    }
    Some(fault)
}

pub(crate) fn status_response(code: u16) -> Resp {
    let reason = hyper::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    Resp::json(
        code,
        &serde_json::json!({ "message": format!("{code} {reason}") }),
    )
}

pub(crate) fn rate_limit_response(retry_after_secs: u64, now: Timestamp) -> Resp {
    let reset = now
        .checked_add(SignedDuration::from_secs(retry_after_secs as i64))
        .unwrap_or(now);
    let mut r = Resp::new(429, "text/plain", Bytes::from_static(b"Retry later\n"));
    r.headers
        .push(("Retry-After", retry_after_secs.to_string()));
    r.headers
        .push(("RateLimit-Name", "throttle_authenticated_api".into()));
    r.headers.push(("RateLimit-Limit", "60".into()));
    r.headers.push(("RateLimit-Observed", "61".into()));
    r.headers.push(("RateLimit-Remaining", "0".into()));
    r.headers
        .push(("RateLimit-Reset", reset.as_second().to_string()));
    r.headers.push((
        "RateLimit-ResetTime",
        reset.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    ));
    r
}
