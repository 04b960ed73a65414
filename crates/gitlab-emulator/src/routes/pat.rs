//! Personal access token self-service endpoints, plus `/user` and `/version`.

use jiff::ToSpan;
use jiff::civil::Date;
use serde_json::{Value, json};

use super::{
    ApiPrincipal, EXPIRED, REVOKED, api_auth, bad_request, invalid_token, method_not_allowed,
    require_scope, unauthorized,
};
use crate::http::{Req, Resp};
use crate::model::{ALNUM, Found, Shared, State, format_gitlab_time, random_string};
use crate::tokens::{Lifecycle, Pat, Resource};

pub(crate) const NOT_A_PAT: &str =
    "This endpoint requires token type to be a personal access token";

/// `API::Entities::PersonalAccessToken`.
pub(crate) fn entity(p: &Pat, st: &State) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "revoked": p.life.revoked,
        "created_at": format_gitlab_time(p.created_at),
        "description": p.description,
        "scopes": p.scopes,
        "user_id": p.user_id,
        "last_used_at": p.last_used_at.map(format_gitlab_time),
        "active": st.active(p),
        "expires_at": p.expires_at.map(|d| d.to_string()),
    })
}

pub(crate) fn new_pat_secret() -> String {
    format!(
        "glpat-{}",
        random_string(20, &ALNUM[..62]) // letters and digits only
    )
}

fn pat_principal(st: &mut State, req: &Req) -> Result<Pat, Resp> {
    match api_auth(st, req)? {
        ApiPrincipal::Pat(p) => Ok(p),
        ApiPrincipal::OAuth(_) => Err(bad_request(NOT_A_PAT)),
    }
}

pub(crate) fn get_self(shared: &Shared, req: &Req) -> Result<Resp, Resp> {
    let mut st = shared.lock();
    let p = pat_principal(&mut st, req)?;
    let p = st.pats.iter().find(|x| x.id == p.id).cloned().unwrap_or(p);
    Ok(Resp::json(200, &entity(&p, &st)))
}

pub(crate) fn delete_self(shared: &Shared, req: &Req) -> Result<Resp, Resp> {
    let mut st = shared.lock();
    let p = pat_principal(&mut st, req)?;
    let now = st.now();
    if let Some(x) = st.pats.iter_mut().find(|x| x.id == p.id) {
        x.life.revoke(now);
    }
    Ok(Resp::empty(204))
}

/// Authentication for the rotation endpoints, including automatic reuse detection:
/// presenting an already rotated (revoked) family member revokes the family's active token.
pub(crate) fn rotation_principal(st: &mut State, req: &Req) -> Result<Pat, Resp> {
    let token = req.api_token().ok_or_else(unauthorized)?;
    match st.find_secret(&token) {
        Some(Found::Pat(p)) => {
            if p.life.revoked {
                if p.rotated_to.is_some() {
                    let now = st.now();
                    for x in st.pats.iter_mut().filter(|x| x.family == p.family) {
                        x.life.revoke(now);
                    }
                }
                return Err(invalid_token(REVOKED));
            }
            if st.expired(&p) {
                return Err(invalid_token(EXPIRED));
            }
            require_scope(&ApiPrincipal::Pat(p.clone()), &["api", "self_rotate"])?;
            st.touch_pat(p.id);
            Ok(p)
        }
        Some(Found::OAuthAccess(_)) => {
            // Authenticates, but is not a personal access token.
            api_auth(st, req)?;
            Err(method_not_allowed())
        }
        _ => Err(unauthorized()),
    }
}

/// Parse and validate the optional `expires_at` parameter; default today + 7 days.
fn new_expiry(st: &State, req: &Req) -> Result<Date, Resp> {
    let today = st.today();
    let max = today
        .checked_add((st.config.pat_max_lifetime_days as i64).days())
        .expect("date in range");
    let Some(raw) = req.param("expires_at").filter(|s| !s.is_empty()) else {
        return Ok(today.checked_add(7.days()).expect("date in range"));
    };
    let Ok(date) = raw.parse::<Date>() else {
        return Err(Resp::json(400, &json!({"error": "expires_at is invalid"})));
    };
    if date <= today {
        return Err(bad_request("Expiration date must be in the future"));
    }
    if date > max {
        let before = max.checked_add(1.day()).expect("date in range");
        return Err(bad_request(&format!(
            "Expiration date must be before {before}"
        )));
    }
    Ok(date)
}

/// Revoke `old` and create its successor in the same family.
pub(crate) fn rotate(st: &mut State, old: &Pat, req: &Req) -> Result<Pat, Resp> {
    let expires_at = new_expiry(st, req)?;
    let id = st.id();
    let now = st.now();
    let new = Pat {
        id,
        expires_at: Some(expires_at),
        life: Lifecycle::new(new_pat_secret()),
        created_at: now,
        last_used_at: None,
        previous_id: Some(old.id),
        rotated_to: None,
        ..old.clone()
    };
    let stored = st
        .pats
        .iter_mut()
        .find(|x| x.id == old.id)
        .ok_or_else(|| bad_request("Token already revoked"))?;
    if stored.life.revoked {
        return Err(bad_request("Token already revoked"));
    }
    stored.life.revoke(now);
    stored.rotated_to = Some(id);
    st.pats.push(new.clone());
    Ok(new)
}

pub(crate) fn rotate_self(shared: &Shared, req: &Req) -> Result<Resp, Resp> {
    let mut st = shared.lock();
    let old = rotation_principal(&mut st, req)?;
    let new = rotate(&mut st, &old, req)?;
    let mut body = entity(&new, &st);
    body["token"] = json!(new.life.secret);
    Ok(Resp::json(200, &body))
}

pub(crate) fn associations(shared: &Shared, req: &Req) -> Result<Resp, Resp> {
    let mut st = shared.lock();
    let p = pat_principal(&mut st, req)?;
    let base = st.base_url.clone();
    let group_json = |g: &crate::model::Group, level: u32| {
        json!({"id": g.id, "name": g.path.rsplit('/').next(), "full_path": g.path,
               "web_url": format!("{base}/groups/{}", g.path), "parent_id": null,
               "access_levels": level, "visibility": "private"})
    };
    let project_json = |pr: &crate::model::Project, level: u32| {
        json!({"id": pr.id, "name": pr.path.rsplit('/').next(), "path": pr.path.rsplit('/').next(),
               "path_with_namespace": pr.path, "web_url": format!("{base}/{}", pr.path),
               "visibility": if pr.public { "public" } else { "private" },
               "access_levels": {"project_access_level": level, "group_access_level": null}})
    };
    let (groups, projects): (Vec<Value>, Vec<Value>) = match p.resource {
        Some(Resource::Project(id)) => (
            vec![],
            st.projects
                .iter()
                .filter(|x| x.id == id)
                .map(|x| project_json(x, p.access_level))
                .collect(),
        ),
        Some(Resource::Group(id)) => (
            st.groups
                .iter()
                .filter(|x| x.id == id)
                .map(|x| group_json(x, p.access_level))
                .collect(),
            vec![],
        ),
        None => (
            st.groups.iter().map(|x| group_json(x, 40)).collect(),
            st.projects.iter().map(|x| project_json(x, 40)).collect(),
        ),
    };
    Ok(Resp::json(
        200,
        &json!({"groups": groups, "projects": projects}),
    ))
}

pub(crate) fn current_user(shared: &Shared, req: &Req) -> Result<Resp, Resp> {
    let mut st = shared.lock();
    let principal = api_auth(&mut st, req)?;
    require_scope(&principal, &["api", "read_api", "read_user"])?;
    let u = st
        .user(principal.user_id())
        .cloned()
        .ok_or_else(unauthorized)?;
    Ok(Resp::json(
        200,
        &json!({
            "id": u.id, "username": u.username, "name": u.username, "state": "active",
            "locked": false, "avatar_url": null, "bot": u.bot,
            "web_url": format!("{}/{}", st.base_url, u.username),
            "two_factor_enabled": u.two_factor,
        }),
    ))
}

pub(crate) fn version(shared: &Shared, req: &Req) -> Result<Resp, Resp> {
    let mut st = shared.lock();
    let principal = api_auth(&mut st, req)?;
    require_scope(&principal, &["api", "read_api", "read_user"])?;
    Ok(Resp::json(
        200,
        &json!({"version": crate::GITLAB_VERSION, "revision": "0e1ac0a4b3e"}),
    ))
}
