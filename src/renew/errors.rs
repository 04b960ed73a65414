//! Why a renewal did not produce a token. Each `Display` is the one line `get` prints.

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
        "a renewal of the token for {host} by host {by} was interrupted after GitLab rotated it, so the token in Vault is revoked; \
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

    /// Whether the current secret may still be handed out (with a warning): only when the
    /// renewal cleanly did not happen.
    pub fn old_secret_still_good(&self) -> bool {
        matches!(self, RenewError::Failed { .. } | RenewError::Cannot(_))
    }
}
