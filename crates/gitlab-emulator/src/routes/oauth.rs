//! Doorkeeper-style OAuth 2.0: `/oauth/token` (refresh_token, device_code, password grants),
//! `/oauth/authorize_device`, `/oauth/revoke`, `/oauth/token/info`.

use std::time::Instant;

use jiff::SignedDuration;
use serde_json::json;

use crate::http::{Req, Resp};
use crate::model::{DeviceGrant, DeviceState, HEX, Shared, State, USER_CODE, random_string};
use crate::tokens::{Lifecycle, OAuthToken, Token};

pub(crate) const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn oauth_error(status: u16, error: &str, description: &str) -> Resp {
    Resp::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn invalid_grant() -> Resp {
    oauth_error(
        400,
        "invalid_grant",
        "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
    )
}

fn invalid_client() -> Resp {
    oauth_error(
        401,
        "invalid_client",
        "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
    )
}

fn invalid_scope() -> Resp {
    oauth_error(
        400,
        "invalid_scope",
        "The requested scope is invalid, unknown, or malformed.",
    )
}

/// Create and store a new access/refresh token pair (64 hex characters each, no prefix).
pub(crate) fn issue(
    st: &mut State,
    user_id: u64,
    client_id: &str,
    scopes: Vec<String>,
) -> OAuthToken {
    let t = OAuthToken {
        id: st.id(),
        user_id,
        client_id: client_id.to_string(),
        scopes,
        life: Lifecycle::new(random_string(64, HEX)),
        refresh_token: random_string(64, HEX),
        created_at: st.now(),
        expires_in: st.config.oauth_token_lifetime.as_secs() as i64,
        refresh_used: false,
    };
    st.oauth_tokens.push(t.clone());
    t
}

fn token_response(t: &OAuthToken) -> Resp {
    Resp::json(
        200,
        &json!({
            "access_token": t.life.secret,
            "token_type": "Bearer",
            "expires_in": t.expires_in,
            "refresh_token": t.refresh_token,
            "scope": t.scopes.join(" "),
            "created_at": t.created_at.as_second(),
        }),
    )
    .with_header("Cache-Control", "no-store".into())
}

/// Unknown `client_id` → `Err(invalid_client)`; absent → `Ok(None)`.
fn check_client(st: &State, client_id: Option<&str>) -> Result<Option<String>, Resp> {
    match client_id {
        None | Some("") => Ok(None),
        Some(c) if st.oauth_apps.iter().any(|a| a.client_id == c) => Ok(Some(c.to_string())),
        Some(_) => Err(invalid_client()),
    }
}

pub(crate) fn token(shared: &Shared, req: &Req) -> Result<Resp, Resp> {
    let mut st = shared.lock();
    let client_id = check_client(&st, req.param("client_id").as_deref())?;
    match req.param("grant_type").as_deref() {
        Some("refresh_token") => refresh_token_grant(&mut st, req, client_id),
        Some(DEVICE_GRANT) => device_code_grant(&mut st, req, client_id),
        Some("password") => password_grant(&mut st, req, client_id),
        Some(_) | None => Err(oauth_error(
            400,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        )),
    }
}

fn missing_parameter(name: &str) -> Resp {
    oauth_error(
        400,
        "invalid_request",
        &format!("Missing required parameter: {name}."),
    )
}

/// Spend a refresh token (single use): the old pair dies, a new pair is issued.
fn refresh_token_grant(st: &mut State, req: &Req, client_id: Option<String>) -> Result<Resp, Resp> {
    let refresh = req
        .param("refresh_token")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing_parameter("refresh_token"))?;
    let now = st.now();
    let old = st
        .oauth_tokens
        .iter_mut()
        .find(|t| t.refresh_token == refresh)
        .ok_or_else(invalid_grant)?;
    if old.refresh_used || old.life.revoked {
        return Err(invalid_grant());
    }
    if client_id.as_ref().is_some_and(|c| *c != old.client_id) {
        return Err(invalid_grant());
    }
    // Single use: the old pair dies now.
    old.refresh_used = true;
    old.life.revoke(now);
    let (user_id, client, scopes) = (old.user_id, old.client_id.clone(), old.scopes.clone());
    let new = issue(st, user_id, &client, scopes);
    Ok(token_response(&new))
}

/// A device polling for its grant: pending, slow down, denied, expired or approved.
fn device_code_grant(st: &mut State, req: &Req, client_id: Option<String>) -> Result<Resp, Resp> {
    let code = req
        .param("device_code")
        .ok_or_else(|| missing_parameter("device_code"))?;
    let now = st.now();
    let interval = st.config.device_poll_interval;
    let lifetime = st.config.device_code_lifetime.as_secs() as i64;
    let grant = st
        .devices
        .iter_mut()
        .find(|d| d.device_code == code)
        .ok_or_else(invalid_grant)?;
    if client_id.as_ref().is_some_and(|c| *c != grant.client_id) {
        return Err(invalid_grant());
    }
    let expired = now.duration_since(grant.created_at).as_secs() >= lifetime;
    match grant.state.clone() {
        DeviceState::Consumed => Err(invalid_grant()),
        _ if expired => Err(oauth_error(
            400,
            "expired_token",
            "The \"device_code\" has expired, and the device authorization session has concluded.",
        )),
        DeviceState::Denied => Err(oauth_error(
            400,
            "access_denied",
            "The resource owner or authorization server denied the request.",
        )),
        DeviceState::Pending => {
            let forced = st.slow_downs > 0;
            let grant = st
                .devices
                .iter_mut()
                .find(|d| d.device_code == code)
                .expect("found above");
            let too_fast = forced || grant.last_poll.is_some_and(|t| t.elapsed() < interval);
            grant.last_poll = Some(Instant::now());
            if forced {
                st.slow_downs -= 1;
            }
            if too_fast {
                Err(oauth_error(
                    400,
                    "slow_down",
                    "The authorization request is still pending and polling should continue, but the interval MUST be increased by 5 seconds for this and all subsequent requests.",
                ))
            } else {
                Err(oauth_error(
                    400,
                    "authorization_pending",
                    "The authorization request is still pending as the end user hasn't yet completed the user-interaction steps.",
                ))
            }
        }
        DeviceState::Approved(user_id) => {
            grant.state = DeviceState::Consumed;
            let (client, scopes) = (grant.client_id.clone(), grant.scopes.clone());
            let t = issue(st, user_id, &client, scopes);
            Ok(token_response(&t))
        }
    }
}

/// Resource owner password credentials; refused for bots and 2FA users.
fn password_grant(st: &mut State, req: &Req, client_id: Option<String>) -> Result<Resp, Resp> {
    let (Some(login), Some(password)) = (req.param("username"), req.param("password")) else {
        return Err(missing_parameter("username"));
    };
    let user = st
        .users
        .iter()
        .find(|u| u.username == login && u.password == password && !u.bot && !u.two_factor)
        .cloned()
        .ok_or_else(invalid_grant)?;
    let scopes = scopes_param(req);
    let client = client_id.unwrap_or_default();
    let t = issue(st, user.id, &client, scopes);
    Ok(token_response(&t))
}

fn scopes_param(req: &Req) -> Vec<String> {
    let raw = req.param("scope").unwrap_or_default();
    let scopes: Vec<String> = raw.split_whitespace().map(str::to_string).collect();
    if scopes.is_empty() {
        vec!["api".to_string()] // Doorkeeper default_scopes
    } else {
        scopes
    }
}

pub(crate) fn authorize_device(shared: &Shared, req: &Req) -> Result<Resp, Resp> {
    let mut st = shared.lock();
    let client_id =
        check_client(&st, req.param("client_id").as_deref())?.ok_or_else(invalid_client)?;
    let scopes = scopes_param(req);
    let app = st
        .oauth_apps
        .iter()
        .find(|a| a.client_id == client_id)
        .expect("checked");
    if !scopes.iter().all(|s| app.scopes.contains(s)) {
        return Err(invalid_scope());
    }
    let grant = DeviceGrant {
        device_code: random_string(64, HEX),
        user_code: random_string(8, USER_CODE),
        client_id,
        scopes,
        created_at: st.now(),
        state: DeviceState::Pending,
        last_poll: None,
    };
    let verification_uri = format!("{}/oauth/device", st.base_url);
    let body = json!({
        "device_code": grant.device_code,
        "user_code": grant.user_code,
        "verification_uri": verification_uri,
        "verification_uri_complete": format!("{verification_uri}?user_code={}", grant.user_code),
        "expires_in": st.config.device_code_lifetime.as_secs(),
        "interval": st.config.device_poll_interval.as_secs(),
    });
    st.devices.push(grant);
    Ok(Resp::json(200, &body))
}

pub(crate) fn revoke(shared: &Shared, req: &Req) -> Result<Resp, Resp> {
    let mut st = shared.lock();
    let now = st.now();
    if let Some(token) = req.param("token") {
        for t in st.oauth_tokens.iter_mut().filter(|t| t.named_by(&token)) {
            t.life.revoke(now);
        }
    }
    Ok(Resp::json(200, &json!({})))
}

pub(crate) fn token_info(shared: &Shared, req: &Req) -> Result<Resp, Resp> {
    let st = shared.lock();
    let token = req
        .api_token()
        .or_else(|| req.param("access_token"))
        .unwrap_or_default();
    let t = st
        .oauth_tokens
        .iter()
        .find(|t| t.life.secret == token && st.active(*t))
        .ok_or_else(|| oauth_error(401, "invalid_token", "The access token is invalid"))?;
    let remaining = t.death().duration_since(st.now());
    Ok(Resp::json(
        200,
        &json!({
            "resource_owner_id": t.user_id,
            "scope": t.scopes,
            "expires_in": remaining.max(SignedDuration::ZERO).as_secs(),
            "application": {"uid": t.client_id},
            "created_at": t.created_at.as_second(),
        }),
    ))
}
