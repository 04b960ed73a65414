//! `GET /jwt/auth`: GitLab's registry token endpoint (JwtController +
//! Auth::ContainerRegistryAuthenticationService).

use std::time::Instant;

use serde_json::json;

use crate::http::{Req, Resp};
use crate::model::{Shared, State, random_string};

/// Who authenticated, in the order of `Gitlab::Auth.find_for_git_client`.
enum Principal {
    Anonymous,
    /// CI job token; pushes only to its own project.
    Job {
        project_path: String,
    },
    OAuth {
        user_id: u64,
        scopes: Vec<String>,
    },
    Pat {
        user_id: u64,
        scopes: Vec<String>,
    },
    Deploy {
        scopes: Vec<String>,
    },
    Password {
        user_id: u64,
    },
}

#[derive(Default)]
struct Abilities {
    read: bool,
    create: bool,
    admin: bool,
}

fn abilities_for_scopes(scopes: &[String]) -> Abilities {
    let mut a = Abilities::default();
    for s in scopes {
        match s.as_str() {
            "api" => {
                a.read = true;
                a.create = true;
                a.admin = true;
            }
            "read_api" | "read_registry" => a.read = true,
            "write_registry" => a.create = true,
            _ => {}
        }
    }
    a
}

fn unauthorized_body(base_url: &str) -> Resp {
    let message = format!(
        "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password. If a token was provided, it was either incorrect, expired, or improperly scoped. See {base_url}/help/user/profile/account/two_factor_authentication_troubleshooting.md#error-http-basic-access-denied-if-a-password-was-provided-for-git-authentication-"
    );
    Resp::json(
        401,
        &json!({"errors": [{"code": "UNAUTHORIZED", "message": message}]}),
    )
}

fn denied() -> Resp {
    Resp::json(
        403,
        &json!({"errors": [{"code": "DENIED", "message": "access forbidden"}], "http_status": 403}),
    )
}

pub(crate) const BANNED: &str = "Too many failed authentication attempts from this IP";

fn authenticate(st: &mut State, req: &Req) -> Option<Principal> {
    let Some((login, password)) = req.basic() else {
        return Some(Principal::Anonymous);
    };
    // 2. CI job token, only with the fixed username.
    if login == "gitlab-ci-token"
        && let Some(j) = st
            .job_tokens
            .iter()
            .find(|j| j.life.secret == password && st.active(*j))
    {
        return Some(Principal::Job {
            project_path: j.project_path.clone(),
        });
    }
    // 4. OAuth access token, any username.
    if let Some(t) = st
        .oauth_tokens
        .iter()
        .find(|t| t.life.secret == password && st.active(*t) && !t.scopes.is_empty())
    {
        return Some(Principal::OAuth {
            user_id: t.user_id,
            scopes: t.scopes.clone(),
        });
    }
    // 5. Personal / project / group access token, username ignored.
    if let Some(p) = st
        .pats
        .iter()
        .find(|p| p.life.secret == password && st.active(*p) && !p.scopes.is_empty())
        .cloned()
    {
        st.touch_pat(p.id);
        return Some(Principal::Pat {
            user_id: p.user_id,
            scopes: p.scopes,
        });
    }
    // 6. Deploy token, username must match.
    if let Some(d) = st
        .deploy_tokens
        .iter()
        .find(|d| d.life.secret == password && d.username == login && st.active(*d))
    {
        return Some(Principal::Deploy {
            scopes: d.scopes.clone(),
        });
    }
    // 7. Username + password; refused for 2FA users and bots.
    if let Some(u) = st.users.iter().find(|u| {
        st.config.password_auth_enabled && u.username == login && u.password == password && !u.bot
    }) {
        if u.two_factor {
            return None;
        }
        return Some(Principal::Password { user_id: u.id });
    }
    None
}

fn is_banned(st: &mut State, req: &Req) -> bool {
    if st.config.failed_auth_ban.is_none() {
        return false;
    }
    let entry = st.bans.entry(req.peer).or_default();
    match entry.banned_until {
        Some(until) if Instant::now() < until => true,
        Some(_) => {
            entry.banned_until = None;
            entry.failures = 0;
            false
        }
        None => false,
    }
}

fn record_failure(st: &mut State, req: &Req) {
    let Some((max, ban)) = st.config.failed_auth_ban else {
        return;
    };
    let entry = st.bans.entry(req.peer).or_default();
    entry.failures += 1;
    if entry.failures >= max {
        entry.banned_until = Some(Instant::now() + ban);
    }
}

fn record_success(st: &mut State, req: &Req) {
    if let Some(entry) = st.bans.get_mut(&req.peer) {
        entry.failures = 0;
    }
}

pub(crate) fn handle(shared: &Shared, req: &Req) -> Result<Resp, Resp> {
    if req.method != "GET" && req.method != "HEAD" {
        // GitLab routes POST /jwt/auth to a bare 404 so OAuth2-style clients fall back to GET.
        return Err(Resp::empty(404));
    }
    let pairs = req.query_pairs();
    let service = pairs
        .iter()
        .rev()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if service != "container_registry" && service != "dependency_proxy" {
        return Err(Resp::empty(404));
    }

    let mut st = shared.lock();
    if !st.config.registry_enabled {
        return Err(Resp::json(
            404,
            &json!({"errors": [{"code": "UNAVAILABLE", "message": "registry not enabled"}], "http_status": 404}),
        ));
    }
    let is_ci_login = req.basic().is_some_and(|(u, _)| u == "gitlab-ci-token");
    if !is_ci_login && is_banned(&mut st, req) {
        return Err(Resp::text(403, BANNED));
    }
    let Some(principal) = authenticate(&mut st, req) else {
        if !is_ci_login {
            record_failure(&mut st, req);
        }
        return Err(unauthorized_body(&st.base_url));
    };
    if !matches!(principal, Principal::Anonymous) {
        record_success(&mut st, req);
    }

    let (abilities, sub, auth_type) = match &principal {
        Principal::Anonymous => (
            Abilities {
                read: true,
                ..Abilities::default()
            },
            None,
            "none",
        ),
        Principal::Job { .. } => (
            Abilities {
                read: true,
                create: true,
                admin: true,
            },
            None,
            "build",
        ),
        Principal::OAuth { user_id, scopes } => (
            abilities_for_scopes(scopes),
            Some(st.username(*user_id)),
            "oauth",
        ),
        Principal::Pat { user_id, scopes } => (
            abilities_for_scopes(scopes),
            Some(st.username(*user_id)),
            "personal_access_token",
        ),
        Principal::Deploy { scopes, .. } => (abilities_for_scopes(scopes), None, "deploy_token"),
        Principal::Password { user_id } => (
            Abilities {
                read: true,
                create: true,
                admin: true,
            },
            Some(st.username(*user_id)),
            "gitlab_or_ldap",
        ),
    };
    if !abilities.read && !abilities.create && !abilities.admin {
        return Err(denied());
    }

    // Scopes: repeated parameters and/or whitespace-separated values.
    let requested: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let mut access = Vec::new();
    for scope in &requested {
        let mut parts = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if kind != "repository" {
            // registry:catalog:* needs an instance admin; nobody is one here.
            continue;
        }
        let project = st.project_for_repository(name).cloned();
        let own_project = match &principal {
            Principal::Job { project_path } => {
                name == project_path || name.starts_with(&format!("{project_path}/"))
            }
            _ => false,
        };
        let public = project.as_ref().is_some_and(|p| p.public);
        let mut granted: Vec<&str> = Vec::new();
        for action in actions.split(',') {
            let ok = match (&principal, action) {
                (Principal::Anonymous, "pull") => public,
                (Principal::Anonymous, _) => false,
                (Principal::Job { .. }, "pull") => true,
                (Principal::Job { .. }, "push" | "delete") => own_project,
                (Principal::Job { .. }, _) => false,
                (_, "pull") => abilities.read,
                (_, "push") => abilities.create,
                (Principal::Deploy { .. }, _) => false,
                (_, "delete" | "*") => abilities.admin,
                _ => false,
            };
            if ok && !granted.contains(&action) {
                granted.push(action);
            }
        }
        if granted.is_empty() {
            continue;
        }
        let mut entry = json!({"type": kind, "name": name, "actions": granted});
        if let Some(p) = &project {
            let root = p.path.split('/').next().unwrap_or("");
            let root_id = st
                .groups
                .iter()
                .find(|g| g.path == root)
                .map(|g| g.id)
                .unwrap_or(0);
            entry["meta"] =
                json!({"project_path": p.path, "project_id": p.id, "root_namespace_id": root_id});
        }
        access.push(entry);
    }
    if access.is_empty() && matches!(principal, Principal::Anonymous) {
        return Err(denied());
    }

    let now = jiff::Timestamp::now().as_second();
    let window = st.config.token_window.as_secs() as i64;
    let mut claims = json!({
        "jti": uuid_v4(),
        "iss": st.config.issuer,
        "aud": service,
        "iat": now,
        "nbf": now - 5,
        "exp": now + window,
        "access": access,
        "auth_type": auth_type,
    });
    if let Some(sub) = sub {
        claims["sub"] = json!(sub);
    }
    drop(st);
    let token = shared.signer.sign(&claims);
    Ok(Resp::json(200, &json!({"token": token})))
}

fn uuid_v4() -> String {
    let hex = random_string(32, crate::model::HEX);
    // Version/variant nibbles make it look like a UUIDv4.
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}
