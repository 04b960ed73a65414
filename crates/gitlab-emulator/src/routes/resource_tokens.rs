//! `POST /api/v4/{projects,groups}/:id/access_tokens/self/rotate` for bot tokens.

use serde_json::json;

use super::{forbidden, method_not_allowed};
use crate::http::{Req, Resp};
use crate::model::Shared;
use crate::routes::pat::{entity, rotate, rotation_principal};
use crate::tokens::Resource;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Project,
    Group,
}

/// Recognise `/api/v4/projects/:id/access_tokens/self/rotate` (and the group variant);
/// `:id` is numeric or a URL-encoded path.
pub(crate) fn match_path(path: &str) -> Option<(Kind, String)> {
    let rest = path.strip_prefix("/api/v4/")?;
    let (kind, rest) = if let Some(r) = rest.strip_prefix("projects/") {
        (Kind::Project, r)
    } else {
        (Kind::Group, rest.strip_prefix("groups/")?)
    };
    let id = rest.strip_suffix("/access_tokens/self/rotate")?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    let decoded: String = form_urlencoded::parse(format!("x={id}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    Some((kind, decoded))
}

pub(crate) fn rotate_self(shared: &Shared, req: &Req, kind: Kind, id: &str) -> Result<Resp, Resp> {
    let mut st = shared.lock();
    let resource_id = match kind {
        Kind::Project => st
            .projects
            .iter()
            .find(|p| p.id.to_string() == id || p.path == id)
            .map(|p| p.id),
        Kind::Group => st
            .groups
            .iter()
            .find(|g| g.id.to_string() == id || g.path == id)
            .map(|g| g.id),
    };
    let old = rotation_principal(&mut st, req)?;
    // Not a bot (project/group) token.
    let resource = old.resource.ok_or_else(method_not_allowed)?;
    let resource_id = resource_id
        .ok_or_else(|| Resp::json(404, &json!({"message": format!("404 {kind:?} Not Found")})))?;
    let wanted = match kind {
        Kind::Project => Resource::Project(resource_id),
        Kind::Group => Resource::Group(resource_id),
    };
    if resource != wanted {
        return Err(forbidden());
    }
    let new = rotate(&mut st, &old, req)?;
    let mut body = entity(&new, &st);
    body["access_level"] = json!(new.access_level);
    body["token"] = json!(new.life.secret);
    Ok(Resp::json(200, &body))
}
