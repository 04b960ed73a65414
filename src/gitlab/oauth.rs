//! GitLab as an OAuth 2.0 provider: the device authorization grant (RFC 8628) for
//! `login --oauth`, the refresh-token grant for renewal, revocation for `logout --revoke`.
//! GitLab's OAuth API (Doorkeeper): `/oauth/authorize_device`, `/oauth/token`, `/oauth/revoke`,
//! `/oauth/token/info`. Every secret travels in a form body, never in a URL.

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::http::{Http, redact};
use super::{GitLabError, error_message, join};
use crate::secret::{ExposeSecret, Secret};

/// What `POST /oauth/authorize_device` answers.
#[derive(Debug)]
pub struct DeviceAuthorization {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    pub interval: u64,
}

/// A fresh access token, and the refresh token that renews it (single use).
#[derive(Debug)]
pub struct TokenPair {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    /// On this machine's clock: when the answer arrived plus its `expires_in` (RFC 6749
    /// §5.1: the seconds left; GitLab's Doorkeeper sends exactly that), never GitLab's
    /// `created_at` plus `expires_in`, which is off by the clock skew.
    pub expires_at: jiff::Timestamp,
    /// This machine's clock minus GitLab's: from the answer's `Date` header, else from its
    /// `created_at` (a token created a while before it was handed over, as in the device
    /// flow, makes that one larger); `None` without either.
    pub skew: Option<jiff::SignedDuration>,
    pub scopes: Vec<String>,
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    created_at: Option<i64>,
    scope: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// Doorkeeper's default access token lifetime, for an answer without `expires_in`.
const DEFAULT_EXPIRES_IN: i64 = 7200;

impl TokenBody {
    /// The pair of an answer that `arrived` (this machine's clock).
    fn into_pair(self, arrived: jiff::Timestamp) -> TokenPair {
        let expires_in = self.expires_in.unwrap_or(DEFAULT_EXPIRES_IN).max(0);
        let created = self
            .created_at
            .and_then(|s| jiff::Timestamp::from_second(s).ok());
        TokenPair {
            access_token: Secret::from(self.access_token),
            refresh_token: self.refresh_token.map(Secret::from),
            expires_at: arrived + jiff::SignedDuration::from_secs(expires_in),
            skew: created.map(|c| arrived.duration_since(c)),
            scopes: self
                .scope
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }
}

pub fn authorize_device(
    http: &Http,
    gitlab: &Url,
    client_id: &str,
    scopes: &str,
) -> Result<DeviceAuthorization, GitLabError> {
    let url = join(gitlab, "oauth/authorize_device");
    let resp = http.post_form(url.clone(), &[("client_id", client_id), ("scope", scopes)])?;
    if resp.status != StatusCode::OK {
        return Err(GitLabError::Unexpected {
            url: redact(&url),
            status: resp.status.as_u16(),
            detail: match oauth_error(&resp.body).as_deref() {
                Some("invalid_client") => format!(
                    "GitLab does not know the OAuth application {client_id:?} (register it: Admin or User settings > Applications, \
                     non-confidential, with the device grant)"
                ),
                Some("invalid_scope") => format!(
                    "the OAuth application may not ask for the scopes {scopes:?}; allow them in the application's settings"
                ),
                _ => error_message(&resp.body),
            },
        });
    }
    #[derive(Deserialize)]
    struct Body {
        device_code: String,
        user_code: String,
        verification_uri: String,
        verification_uri_complete: Option<String>,
        expires_in: Option<u64>,
        interval: Option<u64>,
    }
    let b: Body = serde_json::from_str(&resp.body).map_err(|_| GitLabError::Unexpected {
        url: redact(&url),
        status: 200,
        detail: "not a device authorization".into(),
    })?;
    Ok(DeviceAuthorization {
        device_code: Secret::from(b.device_code),
        user_code: b.user_code,
        verification_uri: b.verification_uri,
        verification_uri_complete: b.verification_uri_complete,
        expires_in: b.expires_in.unwrap_or(300),
        interval: b.interval.unwrap_or(5).max(1),
    })
}

/// One poll of the device grant.
#[derive(Debug)]
pub enum Poll {
    Granted(TokenPair),
    Pending,
    /// Poll more slowly: the interval grows by 5 s (RFC 8628 §3.5).
    SlowDown,
    Expired,
    Denied,
}

pub fn poll_device(
    http: &Http,
    gitlab: &Url,
    client_id: &str,
    device_code: &Secret,
) -> Result<Poll, GitLabError> {
    let url = join(gitlab, "oauth/token");
    let resp = http.post_form(
        url.clone(),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code.expose_secret()),
            ("client_id", client_id),
        ],
    )?;
    if resp.status == StatusCode::OK {
        return token_body(http, &url, &resp.body).map(Poll::Granted);
    }
    match oauth_error(&resp.body).as_deref() {
        Some("authorization_pending") => Ok(Poll::Pending),
        Some("slow_down") => Ok(Poll::SlowDown),
        Some("expired_token") => Ok(Poll::Expired),
        Some("access_denied") => Ok(Poll::Denied),
        _ => Err(GitLabError::Unexpected {
            url: redact(&url),
            status: resp.status.as_u16(),
            detail: error_message(&resp.body),
        }),
    }
}

/// What a refresh did. Refresh tokens are single use: once GitLab has answered 200, the
/// old pair is dead.
#[derive(Debug)]
pub enum Refresh {
    Refreshed(TokenPair),
    /// `invalid_grant`: this refresh token is used up or revoked (maybe by another process
    /// that refreshed first).
    InvalidGrant,
    /// A clean "no" (4xx other than invalid_grant): nothing changed.
    NotRefreshed {
        status: u16,
        message: String,
    },
    /// The request never left.
    NotSent(GitLabError),
    /// It may have been processed (5xx, timeout, dropped connection, unreadable 200).
    Unknown(GitLabError),
}

pub fn refresh(http: &Http, gitlab: &Url, client_id: &str, refresh_token: &Secret) -> Refresh {
    let url = join(gitlab, "oauth/token");
    let resp = match http.post_form(
        url.clone(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("client_id", client_id),
        ],
    ) {
        Ok(r) => r,
        Err(e @ (GitLabError::Connect { .. } | GitLabError::Insecure { .. })) => {
            return Refresh::NotSent(e);
        }
        Err(e) => return Refresh::Unknown(e),
    };
    if resp.status == StatusCode::OK {
        return match token_body(http, &url, &resp.body) {
            Ok(pair) => Refresh::Refreshed(pair),
            Err(e) => Refresh::Unknown(e),
        };
    }
    if resp.status.is_server_error() {
        return Refresh::Unknown(GitLabError::Unexpected {
            url: redact(&url),
            status: resp.status.as_u16(),
            detail: error_message(&resp.body),
        });
    }
    match oauth_error(&resp.body).as_deref() {
        Some("invalid_grant") => Refresh::InvalidGrant,
        _ => Refresh::NotRefreshed {
            status: resp.status.as_u16(),
            message: error_message(&resp.body),
        },
    }
}

/// `POST /oauth/revoke` (the access token and its refresh token).
pub fn revoke(
    http: &Http,
    gitlab: &Url,
    client_id: &str,
    token: &Secret,
) -> Result<(), GitLabError> {
    let url = join(gitlab, "oauth/revoke");
    let resp = http.post_form(
        url.clone(),
        &[("token", token.expose_secret()), ("client_id", client_id)],
    )?;
    if resp.status.is_success() {
        Ok(())
    } else {
        Err(GitLabError::Unexpected {
            url: redact(&url),
            status: resp.status.as_u16(),
            detail: error_message(&resp.body),
        })
    }
}

/// `GET /oauth/token/info`: whether the access token works, and whose it is.
#[derive(Debug)]
pub struct TokenInfo {
    pub user_id: Option<u64>,
    pub scopes: Vec<String>,
}

pub fn token_info(
    http: &Http,
    gitlab: &Url,
    access: &Secret,
) -> Result<Option<TokenInfo>, GitLabError> {
    let url = join(gitlab, "oauth/token/info");
    let resp = http.request(
        reqwest::Method::GET,
        url.clone(),
        super::http::Auth::Bearer(access.expose_secret()),
        &[],
    )?;
    if resp.status == StatusCode::UNAUTHORIZED {
        return Ok(None);
    }
    if resp.status != StatusCode::OK {
        return Err(GitLabError::Unexpected {
            url: redact(&url),
            status: resp.status.as_u16(),
            detail: error_message(&resp.body),
        });
    }
    let v: serde_json::Value = serde_json::from_str(&resp.body).unwrap_or_default();
    Ok(Some(TokenInfo {
        user_id: v["resource_owner_id"].as_u64(),
        scopes: match &v["scope"] {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
            serde_json::Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        },
    }))
}

fn token_body(http: &Http, url: &Url, body: &str) -> Result<TokenPair, GitLabError> {
    let arrived = crate::clock::now();
    serde_json::from_str::<TokenBody>(body)
        .map(|b| b.into_pair(arrived))
        .map(|mut pair| {
            pair.skew = http.skew(url).or(pair.skew);
            pair
        })
        .map_err(|_| GitLabError::Unexpected {
            url: redact(url),
            status: 200,
            detail: "the token answer holds no readable token".into(),
        })
}

fn oauth_error(body: &str) -> Option<String> {
    serde_json::from_str::<ErrorBody>(body)
        .ok()
        .map(|b| b.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(body: &str, arrived: &str) -> TokenPair {
        serde_json::from_str::<TokenBody>(body)
            .unwrap()
            .into_pair(arrived.parse().unwrap())
    }

    #[test]
    fn expiry_counts_expires_in_from_arrival_not_from_created_at() {
        // GitLab's clock says 12:00; this machine's says 15:00 (3 h ahead).
        let created = "2030-05-01T12:00:00Z".parse::<jiff::Timestamp>().unwrap();
        let body = format!(
            r#"{{"access_token":"a","refresh_token":"r","token_type":"bearer","expires_in":7200,"created_at":{}}}"#,
            created.as_second()
        );
        let p = pair(&body, "2030-05-01T15:00:00Z");
        assert_eq!(p.expires_at, "2030-05-01T17:00:00Z".parse().unwrap());
        assert_eq!(p.skew, Some(jiff::SignedDuration::from_hours(3)));
        // 10 min behind.
        let p = pair(&body, "2030-05-01T11:50:00Z");
        assert_eq!(p.expires_at, "2030-05-01T13:50:00Z".parse().unwrap());
        assert_eq!(p.skew, Some(jiff::SignedDuration::from_mins(-10)));
    }

    #[test]
    fn an_answer_without_created_at_or_expires_in() {
        let p = pair(r#"{"access_token":"a"}"#, "2030-05-01T12:00:00Z");
        assert_eq!(p.expires_at, "2030-05-01T14:00:00Z".parse().unwrap());
        assert_eq!(p.skew, None);
        assert!(p.refresh_token.is_none());
        let p = pair(
            r#"{"access_token":"a","expires_in":60,"scope":"read_registry write_registry"}"#,
            "2030-05-01T12:00:00Z",
        );
        assert_eq!(p.expires_at, "2030-05-01T12:01:00Z".parse().unwrap());
        assert_eq!(p.scopes, ["read_registry", "write_registry"]);
    }
}
