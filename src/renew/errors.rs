//! Why a renewal did not produce a token. Each `Display` is the one line `get` prints.

use std::time::Duration;

use crate::records::{Entry, Records};
use crate::registry::RegistryHost;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RenewError {
    #[error("{0}")]
    Cannot(String),
    #[error(
        "an earlier renewal of the token for {host} was interrupted after GitLab rotated it, and the new token was lost; \
         the stored token is revoked. Create a new token and run: docker-credential-gitlab login {host}"
    )]
    Lost { host: String },
    #[error(
        "the token for {host} was rotated or revoked elsewhere: a renewal by host {by} was interrupted after GitLab rotated it; \
         the new token is kept on {by} until Vault takes it: run `docker-credential-gitlab get` there (e.g. any docker pull), \
         or create a new token and run: docker-credential-gitlab login {host}"
    )]
    LostElsewhere { host: String, by: String },
    #[error(
        "the token for {host} was rotated or revoked elsewhere (another machine or another copy of it); \
         it was not presented to the rotate endpoint. Log in again with the current token: docker-credential-gitlab login {host}"
    )]
    RevokedElsewhere { host: String },
    #[error(
        "GitLab refused the token for {host} at the rotate endpoint ({detail}): it was rotated or revoked elsewhere. \
         Log in again with the current token, or create a new one: docker-credential-gitlab login {host}"
    )]
    Unauthorized { host: String, detail: String },
    #[error(
        "the OAuth refresh token for {host} is no longer valid (used or revoked); log in again: \
         docker-credential-gitlab login {host} --oauth"
    )]
    GrantRevoked { host: String },
    #[error(
        "a renewal of the token for {host} has an unknown outcome and GitLab cannot confirm the token now ({detail}); \
         try again, or run: docker-credential-gitlab doctor {host}"
    )]
    Unresolved { host: String, detail: String },
    #[error("renewing the token for {host} failed: {detail}")]
    Failed { host: String, detail: String },
    #[error(
        "another docker-credential-gitlab process is renewing the token for {host} and did not finish in time; try again"
    )]
    Busy { host: String },
    #[error(
        "the token for {host} is being renewed by host {by}, which did not finish in time; try again"
    )]
    BusyElsewhere { host: String, by: String },
    #[error(transparent)]
    Records(#[from] crate::records::Error),
}

impl RenewError {
    pub fn failed(host: &RegistryHost, e: impl std::fmt::Display) -> RenewError {
        RenewError::Failed {
            host: host.to_string(),
            detail: e.to_string(),
        }
    }

    /// Why the stored token is known to be dead after this error, if it is: the reason the
    /// entry is marked with ([`crate::records::Records::mark_revoked`]), so that no later
    /// `get` hands it out or asks GitLab about it again.
    pub fn dead_token(&self) -> Option<String> {
        Some(match self {
            RenewError::RevokedElsewhere { .. } => {
                "GitLab lists it as revoked, and no renewal here explains it".into()
            }
            RenewError::Unauthorized { .. } => {
                "GitLab's rotate endpoint refused it with 401".into()
            }
            RenewError::Lost { .. } => {
                "a renewal here was interrupted after GitLab rotated it, and the new token was lost"
                    .into()
            }
            RenewError::LostElsewhere { by, .. } => format!(
                "a renewal by host {by} was interrupted after GitLab rotated it; the new token is kept on {by} \
                 until Vault takes it (any get there sends it)"
            ),
            _ => return None,
        })
    }

    /// Marks the token `key`'s entry held when read as `seen` dead, when this error says
    /// it is (best effort: unmarked, the next `get` learns it again). `wait` bounds the
    /// wait for the state lock.
    pub fn mark_if_dead(
        &self,
        records: &Records,
        wait: Duration,
        key: &RegistryHost,
        seen: &Entry,
    ) {
        if let Some(reason) = self.dead_token() {
            let _ = records.mark_revoked(wait, key, seen, &reason);
        }
    }

    /// Whether the current secret may still be handed out (with a warning): only when the
    /// renewal cleanly did not happen.
    pub fn old_secret_still_good(&self) -> bool {
        matches!(self, RenewError::Failed { .. } | RenewError::Cannot(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_that_say_the_token_is_dead_mark_it() {
        let host = || "r.example".to_owned();
        let dead = [
            RenewError::RevokedElsewhere { host: host() },
            RenewError::Lost { host: host() },
            RenewError::Unauthorized {
                host: host(),
                detail: "GitLab answered 401: 401 Unauthorized".into(),
            },
        ];
        for e in dead {
            assert!(e.dead_token().is_some(), "{e}");
            assert!(!e.old_secret_still_good(), "{e}");
            assert!(
                e.to_string()
                    .contains("docker-credential-gitlab login r.example"),
                "{e}"
            );
        }
        let alive = [
            RenewError::Failed {
                host: host(),
                detail: "GitLab answered 503".into(),
            },
            RenewError::Busy { host: host() },
            RenewError::GrantRevoked { host: host() },
            RenewError::Unresolved {
                host: host(),
                detail: "timeout".into(),
            },
            RenewError::Cannot("no".into()),
        ];
        for e in alive {
            assert!(e.dead_token().is_none(), "{e}");
        }
    }
}
