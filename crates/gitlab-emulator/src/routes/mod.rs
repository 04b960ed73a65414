//! Route table and the error bodies shared by the REST API handlers.

pub(crate) mod jwt_auth;
pub(crate) mod oauth;
pub(crate) mod pat;
pub(crate) mod resource_tokens;

use serde_json::json;

use crate::http::{Req, Resp};
use crate::model::{Found, Shared, State};
use crate::tokens::{OAuthToken, Pat};

/// Answer a request: handlers return early error responses as `Err`, sent like any other.
pub(crate) fn dispatch(shared: &Shared, req: &Req) -> Resp {
    route(shared, req).unwrap_or_else(|error| error)
}

fn route(shared: &Shared, req: &Req) -> Result<Resp, Resp> {
    let m = req.method.as_str();
    match (m, req.path.as_str()) {
        (_, "/jwt/auth") => jwt_auth::handle(shared, req),
        ("GET", "/api/v4/personal_access_tokens/self") => pat::get_self(shared, req),
        ("DELETE", "/api/v4/personal_access_tokens/self") => pat::delete_self(shared, req),
        ("POST", "/api/v4/personal_access_tokens/self/rotate") => pat::rotate_self(shared, req),
        ("GET", "/api/v4/personal_access_tokens/self/associations") => {
            pat::associations(shared, req)
        }
        ("GET", "/api/v4/user") => pat::current_user(shared, req),
        ("GET", "/api/v4/version") => pat::version(shared, req),
        ("POST", "/oauth/token") => oauth::token(shared, req),
        ("POST", "/oauth/authorize_device") => oauth::authorize_device(shared, req),
        ("POST", "/oauth/revoke") => oauth::revoke(shared, req),
        ("GET", "/oauth/token/info") => oauth::token_info(shared, req),
        (_, path) => {
            if let Some((kind, id)) = resource_tokens::match_path(path) {
                if m == "POST" {
                    return resource_tokens::rotate_self(shared, req, kind, &id);
                }
                return Err(method_not_allowed());
            }
            if path.starts_with("/api/") {
                Err(Resp::json(404, &json!({"error": "404 Not Found"})))
            } else {
                Err(Resp::empty(404))
            }
        }
    }
}

/// `{"message":"401 Unauthorized"}` — missing or unknown token.
pub(crate) fn unauthorized() -> Resp {
    Resp::json(401, &json!({"message": "401 Unauthorized"}))
}

pub(crate) const EXPIRED: &str =
    "Token is expired. You can either do re-authorization or token refresh.";
pub(crate) const REVOKED: &str = "Token was revoked. You have to re-authorize from the user.";

/// rack-oauth2 style 401 with a `WWW-Authenticate` challenge.
pub(crate) fn invalid_token(description: &str) -> Resp {
    Resp::json(
        401,
        &json!({"error": "invalid_token", "error_description": description}),
    )
    .with_header(
        "WWW-Authenticate",
        format!(
            "Bearer realm=\"Protected by OAuth 2.0\", error=\"invalid_token\", error_description=\"{description}\""
        ),
    )
}

pub(crate) fn insufficient_scope(allowed: &[&str]) -> Resp {
    let description = "The request requires higher privileges than provided by the access token.";
    Resp::json(
        403,
        &json!({
            "error": "insufficient_scope",
            "error_description": description,
            "scope": allowed.join(" "),
        }),
    )
    .with_header(
        "WWW-Authenticate",
        format!(
            "Bearer realm=\"Protected by OAuth 2.0\", error=\"insufficient_scope\", error_description=\"{description}\", scope=\"{}\"",
            allowed.join(" ")
        ),
    )
}

pub(crate) fn bad_request(reason: &str) -> Resp {
    Resp::json(
        400,
        &json!({"message": format!("400 Bad request - {reason}")}),
    )
}

pub(crate) fn forbidden() -> Resp {
    Resp::json(403, &json!({"message": "403 Forbidden"}))
}

pub(crate) fn method_not_allowed() -> Resp {
    Resp::json(405, &json!({"message": "405 Method Not Allowed"}))
}

/// Who called a REST endpoint.
pub(crate) enum ApiPrincipal {
    Pat(Pat),
    OAuth(OAuthToken),
}

impl ApiPrincipal {
    pub fn scopes(&self) -> &[String] {
        match self {
            ApiPrincipal::Pat(p) => &p.scopes,
            ApiPrincipal::OAuth(t) => &t.scopes,
        }
    }

    pub fn user_id(&self) -> u64 {
        match self {
            ApiPrincipal::Pat(p) => p.user_id,
            ApiPrincipal::OAuth(t) => t.user_id,
        }
    }
}

/// GitLab's API guard: find the token, reject revoked/expired ones with `invalid_token`.
/// Deploy tokens, job tokens and OAuth refresh tokens are not API credentials (401).
pub(crate) fn api_auth(st: &mut State, req: &Req) -> Result<ApiPrincipal, Resp> {
    let (token, private_token_header) = req.api_token_with_source().ok_or_else(unauthorized)?;
    match st.find_secret(&token) {
        Some(Found::Pat(p)) => {
            if p.life.revoked {
                Err(invalid_token(REVOKED))
            } else if st.expired(&p) {
                Err(invalid_token(EXPIRED))
            } else {
                st.touch_pat(p.id);
                Ok(ApiPrincipal::Pat(p))
            }
        }
        Some(Found::OAuthAccess(t)) if !private_token_header => {
            if t.life.revoked {
                Err(invalid_token(REVOKED))
            } else if !st.active(&t) {
                Err(invalid_token(EXPIRED))
            } else {
                Ok(ApiPrincipal::OAuth(t))
            }
        }
        _ => Err(unauthorized()),
    }
}

pub(crate) fn require_scope(p: &ApiPrincipal, allowed: &[&str]) -> Result<(), Resp> {
    if p.scopes().iter().any(|s| allowed.contains(&s.as_str())) {
        Ok(())
    } else {
        Err(insufficient_scope(allowed))
    }
}
