//! The GitLab side: registry discovery, `/jwt/auth`, and the token APIs.
//!
//! Facts encoded here come from GitLab's documentation and behaviour: the registry's `/v2/`
//! challenge names GitLab's `/jwt/auth` as its realm; `/jwt/auth` answers 200 `{"token"}`,
//! 401 `UNAUTHORIZED` (bad, expired or revoked credential) or 403 `DENIED` (valid but no
//! registry scope); `GET /personal_access_tokens/self` works for any PAT scope and tells
//! scopes and expiry; deploy, job and OAuth tokens cannot use it.

pub mod http;
pub mod jwt;
pub mod oauth;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use crate::registry::RegistryHost;
use crate::secret::{ExposeSecret, Secret};
use http::{Auth, Http, redact};

/// `registry.gitlab.com` belongs to `https://gitlab.com`; no discovery needed to know that.
pub const GITLAB_COM_REGISTRY: &str = "registry.gitlab.com";
/// The username sent with tokens whose username GitLab ignores (PATs, OAuth tokens).
pub const DEFAULT_USERNAME: &str = "oauth2";
pub const GITLAB_COM: &str = "https://gitlab.com";

#[derive(Debug, thiserror::Error)]
pub enum GitLabError {
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error(
        "refusing to send a token over plain HTTP to {url}: use https:// (plain HTTP is only allowed for loopback test hosts)"
    )]
    Insecure { url: String },
    #[error("{url} did not answer within {}s; check your network or proxy (HTTPS_PROXY)", http::REQUEST_DEADLINE.as_secs())]
    Timeout { url: String },
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("the connection to {url} failed: {detail}")]
    Network { url: String, detail: String },
    #[error("{url} answered {status}: {detail}")]
    Unexpected {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{0}")]
    Discovery(String),
}

/// What a registry's `/v2/` challenge says about its token server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: Url,
    pub service: String,
}

impl Challenge {
    /// The GitLab base URL: the realm without `/jwt/auth` (keeps a relative root).
    pub fn gitlab_url(&self) -> Option<Url> {
        let path = self.realm.path();
        let base = path.strip_suffix("/jwt/auth")?;
        let mut url = self.realm.clone();
        url.set_path(base);
        url.set_query(None);
        Some(url)
    }
}

/// The registry's base URL: HTTPS, except plain HTTP for loopback hosts (test registries).
pub fn registry_url(host: &RegistryHost) -> Url {
    let scheme = if host.is_loopback() { "http" } else { "https" };
    Url::parse(&format!("{scheme}://{host}/v2/")).expect("a canonical host makes a valid URL")
}

/// Asks the registry who issues its tokens (`GET /v2/` without credentials).
pub fn discover(http: &Http, host: &RegistryHost) -> Result<Challenge, GitLabError> {
    let url = registry_url(host);
    let resp = http.request(Method::GET, url.clone(), Auth::None, &[])?;
    if resp.status != StatusCode::UNAUTHORIZED {
        return Err(GitLabError::Discovery(format!(
            "{} answered {} instead of asking for a GitLab token: is {host} a GitLab container registry?",
            redact(&url),
            resp.status.as_u16()
        )));
    }
    let header = resp
        .headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(parse_bearer_challenge);
    header.ok_or_else(|| {
        GitLabError::Discovery(format!(
            "{} does not use token authentication (no Bearer challenge): not a GitLab registry",
            redact(&url)
        ))
    })
}

/// Parses `Bearer realm="…",service="…"[,scope="…"]`.
pub fn parse_bearer_challenge(header: &str) -> Option<Challenge> {
    let rest = header.trim();
    let (scheme, params) = rest.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = String::new();
    let mut chars = params.trim();
    while !chars.is_empty() {
        let (key, after) = chars.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match key.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value.to_owned()),
            "service" => service = value.to_owned(),
            _ => {}
        }
        chars = after.trim_start_matches(',').trim();
    }
    Some(Challenge {
        realm: Url::parse(&realm?).ok()?,
        service,
    })
}

/// The answer of `/jwt/auth`.
#[derive(Debug)]
pub enum JwtAuth {
    /// 200: a registry token (RS256 JWT) the registry will accept.
    Token(String),
    /// 401: wrong, expired or revoked credential (or a password where a token is required).
    Unauthorized(String),
    /// 403: authenticated, but the credential has no registry scope (or an IP ban).
    Denied(String),
}

/// Exchanges a credential for a registry token, exactly as docker does (`GET` with Basic).
pub fn jwt_auth(
    http: &Http,
    challenge: &Challenge,
    username: &str,
    secret: &Secret,
    scope: Option<&str>,
) -> Result<JwtAuth, GitLabError> {
    let mut query = vec![("service", challenge.service.as_str())];
    if let Some(scope) = scope {
        query.push(("scope", scope));
    }
    let resp = http.request(
        Method::GET,
        challenge.realm.clone(),
        Auth::Basic {
            username,
            password: secret.expose_secret(),
        },
        &query,
    )?;
    let message = || error_message(&resp.body);
    match resp.status {
        StatusCode::OK => {
            #[derive(Deserialize)]
            struct TokenResponse {
                token: Option<String>,
                access_token: Option<String>,
            }
            let parsed: TokenResponse =
                serde_json::from_str(&resp.body).map_err(|_| GitLabError::Unexpected {
                    url: redact(&challenge.realm),
                    status: 200,
                    detail: "the answer is not a token response".into(),
                })?;
            parsed
                .token
                .or(parsed.access_token)
                .map(JwtAuth::Token)
                .ok_or_else(|| GitLabError::Unexpected {
                    url: redact(&challenge.realm),
                    status: 200,
                    detail: "the answer holds no token".into(),
                })
        }
        StatusCode::UNAUTHORIZED => Ok(JwtAuth::Unauthorized(message())),
        StatusCode::FORBIDDEN => Ok(JwtAuth::Denied(message())),
        status => Err(GitLabError::Unexpected {
            url: redact(&challenge.realm),
            status: status.as_u16(),
            detail: message(),
        }),
    }
}

/// What `/jwt/auth` answered: the HTTP status (0 when it could not be reached) and
/// GitLab's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JwtOutcome {
    pub status: u16,
    pub message: String,
}

/// `/jwt/auth` once more, without any credential, to compare with the authenticated answer
/// (`doctor`: a proxy that strips the `Authorization` header makes the two identical).
pub(crate) fn anonymous_jwt_auth(http: &Http, challenge: &Challenge) -> JwtOutcome {
    match http.request(
        Method::GET,
        challenge.realm.clone(),
        Auth::None,
        &[("service", challenge.service.as_str())],
    ) {
        Ok(resp) => JwtOutcome {
            status: resp.status.as_u16(),
            message: error_message(&resp.body),
        },
        Err(e) => JwtOutcome {
            status: 0,
            message: e.to_string(),
        },
    }
}

/// What `GET /personal_access_tokens/self` says about a token.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PatInfo {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub revoked: bool,
    /// A date: the token stops working at 00:00 UTC of that day.
    pub expires_at: Option<String>,
    pub user_id: Option<u64>,
    #[serde(default)]
    pub created_at: Option<String>,
}

impl PatInfo {
    /// The instant the token dies: `expires_at` at midnight UTC.
    pub fn expires_instant(&self) -> Option<jiff::Timestamp> {
        let date: jiff::civil::Date = self.expires_at.as_deref()?.parse().ok()?;
        date.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp())
    }
}

impl PatInfo {
    /// Whole days from creation to expiry: the lifetime a rotation keeps.
    pub fn lifetime_days(&self) -> Option<i64> {
        let created: jiff::Timestamp = self.created_at.as_deref()?.parse().ok()?;
        let created = created.to_zoned(jiff::tz::TimeZone::UTC).date();
        let expires: jiff::civil::Date = self.expires_at.as_deref()?.parse().ok()?;
        Some(i64::from(created.until(expires).ok()?.get_days()))
    }
}

/// The outcome of a self-rotation, sorted by what it means for the old token.
#[derive(Debug)]
pub enum Rotation {
    /// GitLab rotated: the old token is revoked, this is the new one.
    Rotated { token: Secret, info: PatInfo },
    /// GitLab answered and did not rotate (4xx, 429): the old token is unchanged.
    NotRotated {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// The request never left (connection refused, DNS): the old token is unchanged.
    NotSent(GitLabError),
    /// The request may have been processed (5xx, timeout, dropped connection): unknown.
    Unknown(GitLabError),
}

/// Rotates a token with itself, with an explicit `expires_at` (GitLab's default is one
/// week): `POST /personal_access_tokens/self/rotate` for personal access tokens,
/// `POST /{projects,groups}/:id/access_tokens/self/rotate` for project/group tokens.
pub fn rotate_self(
    http: &Http,
    gitlab: &Url,
    secret: &Secret,
    resource: Option<crate::model::Resource>,
    expires_at: jiff::civil::Date,
) -> Rotation {
    let path = resource.map_or_else(
        || "personal_access_tokens/self/rotate".to_owned(),
        |r| r.rotate_path(),
    );
    let url = api_url(gitlab, &path);
    let date = expires_at.to_string();
    let resp = match http.request(
        Method::POST,
        url.clone(),
        Auth::Bearer(secret.expose_secret()),
        &[("expires_at", date.as_str())],
    ) {
        Ok(r) => r,
        Err(e @ (GitLabError::Connect { .. } | GitLabError::Insecure { .. })) => {
            return Rotation::NotSent(e);
        }
        Err(e) => return Rotation::Unknown(e),
    };
    if resp.status == StatusCode::OK {
        #[derive(Deserialize)]
        struct Rotated {
            token: String,
            #[serde(flatten)]
            info: PatInfo,
        }
        return match serde_json::from_str::<Rotated>(&resp.body) {
            Ok(r) => Rotation::Rotated {
                token: crate::secret::Secret::from(r.token),
                info: r.info,
            },
            // 200 but unreadable: GitLab rotated, and we cannot know the new token.
            Err(_) => Rotation::Unknown(GitLabError::Unexpected {
                url: redact(&url),
                status: 200,
                detail: "the rotation answer holds no readable token".into(),
            }),
        };
    }
    // A 5xx (GitLab, or a proxy's 502/504) may come after the commit: unknown, not "no".
    if resp.status.is_server_error() {
        return Rotation::Unknown(GitLabError::Unexpected {
            url: redact(&url),
            status: resp.status.as_u16(),
            detail: error_message(&resp.body),
        });
    }
    Rotation::NotRotated {
        status: resp.status.as_u16(),
        message: error_message(&resp.body),
        retry_after: resp
            .headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok()),
    }
}

#[derive(Debug)]
pub enum PatSelf {
    Pat(PatInfo),
    /// 401 with GitLab's reason (expired, revoked, unknown).
    Unauthorized(String),
    /// Not a personal/project/group access token (deploy, job, OAuth token or a password).
    NotPat,
}

pub fn personal_access_token_self(
    http: &Http,
    gitlab: &Url,
    secret: &Secret,
) -> Result<PatSelf, GitLabError> {
    let url = api_url(gitlab, "personal_access_tokens/self");
    let resp = http.request(
        Method::GET,
        url.clone(),
        Auth::Bearer(secret.expose_secret()),
        &[],
    )?;
    match resp.status {
        StatusCode::OK => serde_json::from_str(&resp.body)
            .map(PatSelf::Pat)
            .map_err(|_| GitLabError::Unexpected {
                url: redact(&url),
                status: 200,
                detail: "not a token description".into(),
            }),
        StatusCode::UNAUTHORIZED => {
            let msg = error_message(&resp.body);
            // An unknown token is "401 Unauthorized": for this endpoint that means "not a PAT".
            if msg.contains("401 Unauthorized") {
                Ok(PatSelf::NotPat)
            } else {
                Ok(PatSelf::Unauthorized(msg))
            }
        }
        StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
            Ok(PatSelf::NotPat)
        }
        status => Err(GitLabError::Unexpected {
            url: redact(&url),
            status: status.as_u16(),
            detail: error_message(&resp.body),
        }),
    }
}

/// Revokes the PAT itself (`DELETE /personal_access_tokens/self`). `Ok(false)` when GitLab
/// no longer accepts it (already revoked or expired).
pub fn revoke_self(http: &Http, gitlab: &Url, secret: &Secret) -> Result<bool, GitLabError> {
    let url = api_url(gitlab, "personal_access_tokens/self");
    let resp = http.request(
        Method::DELETE,
        url.clone(),
        Auth::Bearer(secret.expose_secret()),
        &[],
    )?;
    match resp.status {
        s if s.is_success() => Ok(true),
        StatusCode::UNAUTHORIZED => Ok(false),
        status => Err(GitLabError::Unexpected {
            url: redact(&url),
            status: status.as_u16(),
            detail: error_message(&resp.body),
        }),
    }
}

/// Whether GitLab knows the secret as an OAuth access token (`GET /oauth/token/info`).
pub fn is_oauth_token(http: &Http, gitlab: &Url, secret: &Secret) -> Result<bool, GitLabError> {
    let url = join(gitlab, "oauth/token/info");
    let resp = http.request(Method::GET, url, Auth::Bearer(secret.expose_secret()), &[])?;
    Ok(resp.status == StatusCode::OK)
}

pub fn api_url(gitlab: &Url, path: &str) -> Url {
    join(gitlab, &format!("api/v4/{path}"))
}

pub(crate) fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{prefix}/{path}"));
    url.set_query(None);
    url
}

/// The human part of a GitLab error body: `errors[0].message`, `error_description`,
/// `message`, or the text itself. Never more than one line.
pub fn error_message(body: &str) -> String {
    let text = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/errors/0/message")
                .or_else(|| v.get("error_description"))
                .or_else(|| v.get("message"))
                .or_else(|| v.get("error"))
                .and_then(|m| m.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| body.to_owned());
    let one_line = crate::report::one_line(&text);
    if one_line.is_empty() {
        "(no details)".into()
    } else {
        one_line.chars().take(300).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing() {
        let c = parse_bearer_challenge(
            r#"Bearer realm="https://gitlab.example.com/gitlab/jwt/auth",service="container_registry",scope="repository:a/b:pull""#,
        )
        .unwrap();
        assert_eq!(
            c.realm.as_str(),
            "https://gitlab.example.com/gitlab/jwt/auth"
        );
        assert_eq!(c.service, "container_registry");
        assert_eq!(
            c.gitlab_url().unwrap().as_str(),
            "https://gitlab.example.com/gitlab"
        );
        assert!(parse_bearer_challenge(r#"Basic realm="x""#).is_none());
        let other =
            parse_bearer_challenge(r#"Bearer realm="https://r.example/auth/token",service=s"#)
                .unwrap();
        assert_eq!(other.service, "s");
        assert!(other.gitlab_url().is_none(), "not a /jwt/auth realm");
    }

    #[test]
    fn gitlab_error_bodies() {
        assert_eq!(
            error_message(
                r#"{"errors":[{"code":"DENIED","message":"access forbidden"}],"http_status":403}"#
            ),
            "access forbidden"
        );
        assert_eq!(
            error_message(
                r#"{"error":"invalid_token","error_description":"Token was revoked. You have to re-authorize from the user."}"#
            ),
            "Token was revoked. You have to re-authorize from the user."
        );
        assert_eq!(
            error_message(r#"{"message":"401 Unauthorized"}"#),
            "401 Unauthorized"
        );
        assert_eq!(error_message("Retry later\n"), "Retry later");
        assert_eq!(error_message(""), "(no details)");
    }

    #[test]
    fn pat_expiry_is_midnight_utc() {
        let info = PatInfo {
            id: 1,
            name: "n".into(),
            scopes: vec![],
            active: true,
            revoked: false,
            expires_at: Some("2026-12-31".into()),
            user_id: None,
            created_at: Some("2026-10-01T10:00:00.000Z".into()),
        };
        assert_eq!(info.lifetime_days(), Some(91));
        assert_eq!(
            info.expires_instant().unwrap().to_string(),
            "2026-12-31T00:00:00Z"
        );
    }

    #[test]
    fn api_urls_keep_a_relative_root() {
        let base = Url::parse("https://example.com/gitlab").unwrap();
        assert_eq!(
            api_url(&base, "personal_access_tokens/self").as_str(),
            "https://example.com/gitlab/api/v4/personal_access_tokens/self"
        );
        let root = Url::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(api_url(&root, "x").as_str(), "http://127.0.0.1:9/api/v4/x");
    }

    #[test]
    fn registry_urls() {
        let h = RegistryHost::parse("registry.gitlab.com").unwrap();
        assert_eq!(registry_url(&h).as_str(), "https://registry.gitlab.com/v2/");
        let h = RegistryHost::parse("127.0.0.1:5000").unwrap();
        assert_eq!(registry_url(&h).as_str(), "http://127.0.0.1:5000/v2/");
    }
}
