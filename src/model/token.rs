//! What GitLab's tokens are and what they can do: the kinds, the project or group a bot
//! token belongs to, which scopes pull, push and renew, and when an expiry deserves a
//! warning. One place for the rules `login`, `doctor`, `status` and renewal share.

use serde::{Deserialize, Serialize};

/// Tokens that expire sooner than this get a warning (`login`, `doctor`).
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// The project or group a bot (project/group access) token belongs to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Resource {
    Project(u64),
    Group(u64),
}

impl Resource {
    /// GitLab names bot users `project_<id>_bot_<hash>` / `group_<id>_bot_<hash>`.
    pub fn from_bot_username(username: &str) -> Option<Resource> {
        let (kind, rest) = username.split_once('_')?;
        let (id, rest) = rest.split_once('_')?;
        if !rest.starts_with("bot") {
            return None;
        }
        let id = id.parse().ok()?;
        match kind {
            "project" => Some(Resource::Project(id)),
            "group" => Some(Resource::Group(id)),
            _ => None,
        }
    }

    /// The API path that rotates this resource's token with the token itself.
    pub fn rotate_path(self) -> String {
        match self {
            Resource::Project(id) => format!("projects/{id}/access_tokens/self/rotate"),
            Resource::Group(id) => format!("groups/{id}/access_tokens/self/rotate"),
        }
    }
}

/// The kinds of credential GitLab's registry accepts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Personal, project or group access token (GitLab stores all three as PATs).
    PersonalAccessToken,
    DeployToken,
    OauthToken,
    JobToken,
    /// An account password, or a deploy token without the `gldt-` prefix.
    Password,
}

impl TokenKind {
    pub fn describe(self) -> &'static str {
        match self {
            TokenKind::PersonalAccessToken => "access token",
            TokenKind::DeployToken => "deploy token",
            TokenKind::OauthToken => "OAuth token",
            TokenKind::JobToken => "CI job token",
            TokenKind::Password => "password or deploy token",
        }
    }
}

/// Whether these scopes let the registry pull.
pub fn can_pull(scopes: &[String]) -> bool {
    scopes
        .iter()
        .any(|s| s == "read_registry" || s == "api" || s == "read_api")
}

/// Whether these scopes let the registry push.
pub fn can_push(scopes: &[String]) -> bool {
    scopes.iter().any(|s| s == "write_registry" || s == "api")
}

/// Whether the helper can renew such a credential itself: access tokens (personal,
/// project, group) rotate themselves with the `api` or `self_rotate` scope.
pub fn can_renew(kind: TokenKind, scopes: &[String]) -> bool {
    kind == TokenKind::PersonalAccessToken
        && scopes.iter().any(|s| s == "api" || s == "self_rotate")
}

/// Non-secret facts about a credential, learnt from GitLab when it was validated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GitLabInfo {
    /// The GitLab instance the token belongs to: the only place it is ever sent.
    pub url: String,
    pub kind: TokenKind,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When the token stops working, on this machine's clock (PATs: 00:00 UTC of their
    /// expiry date at GitLab, converted with the skew measured then; OAuth tokens: the
    /// answer's arrival plus its `expires_in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
    /// For project/group access tokens: the resource whose `access_tokens/self/rotate`
    /// endpoint renews them (learnt from the bot user's name at login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Days from creation to expiry: a rotation asks for the same lifetime again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_days: Option<i64>,
    /// The user the token belongs to (a bot user for project/group tokens): a standby
    /// token must belong to the same one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<u64>,
    /// OAuth tokens: the application (client id) that refreshes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_client_id: Option<String>,
    pub validated_at: jiff::Timestamp,
    /// This machine's clock minus GitLab's, in seconds, measured at the last exchange with
    /// GitLab (`policy::skew`); unknown for entries stored before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_secs: Option<i64>,
}

impl GitLabInfo {
    /// What a login learnt before it asked GitLab anything: the instance and the kind of
    /// token, validated now; every other fact unknown.
    pub fn new(url: &str, kind: TokenKind) -> GitLabInfo {
        GitLabInfo {
            url: url.trim_end_matches('/').to_owned(),
            kind,
            scopes: Vec::new(),
            expires_at: None,
            token_id: None,
            token_name: None,
            resource: None,
            lifetime_days: None,
            user_id: None,
            oauth_client_id: None,
            validated_at: crate::clock::now(),
            clock_skew_secs: None,
        }
    }

    /// Whether the helper can renew this credential itself.
    pub fn can_renew(&self) -> bool {
        match self.kind {
            TokenKind::OauthToken => self.oauth_client_id.is_some(),
            kind => can_renew(kind, &self.scopes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_usernames() {
        assert_eq!(
            Resource::from_bot_username("project_42_bot_1a2b3c"),
            Some(Resource::Project(42))
        );
        assert_eq!(
            Resource::from_bot_username("group_7_bot"),
            Some(Resource::Group(7))
        );
        for not in ["alice", "project_x_bot", "project_42_human", "team_1_bot_x"] {
            assert_eq!(Resource::from_bot_username(not), None, "{not}");
        }
        assert_eq!(
            Resource::Group(7).rotate_path(),
            "groups/7/access_tokens/self/rotate"
        );
    }

    #[test]
    fn scope_rules() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(can_pull(&s(&["read_registry"])) && !can_push(&s(&["read_registry"])));
        assert!(can_push(&s(&["api"])) && can_pull(&s(&["read_api"])));
        assert!(can_renew(
            TokenKind::PersonalAccessToken,
            &s(&["self_rotate"])
        ));
        assert!(!can_renew(TokenKind::DeployToken, &s(&["api"])));
        assert!(!can_renew(
            TokenKind::PersonalAccessToken,
            &s(&["write_registry"])
        ));
    }
}
