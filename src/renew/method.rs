//! How a credential renews itself: one interface, one implementation per kind of token
//! ([`super::pat`] for personal, project and group access tokens, [`super::oauth`] for
//! OAuth access tokens). The frame ([`super`]) is the same for all.

use reqwest::Url;

use super::{Promise, RenewError};
use crate::gitlab::http::Http;
use crate::model::GitLabInfo;
use crate::secret::Secret;

pub(crate) trait Method {
    /// What the method decides before any request (a rotation's new expiry).
    type Plan;

    /// Whether the token must be confirmed before every renewal (PATs: GitLab's reuse
    /// detection punishes a rotated token at the rotate endpoint), or only to resolve an
    /// open journal (OAuth: a used refresh token is merely refused).
    fn confirms_first(&self) -> bool;

    /// What GitLab says about the stored secret right now.
    fn check(&self, http: &Http, gitlab: &Url, stored: &Secret) -> Check;

    /// Decides the renewal, or says why none can keep `promise`. No request.
    fn plan(&self, info: &GitLabInfo, promise: Promise) -> Result<Self::Plan, RenewError>;

    /// Asks GitLab for a new secret.
    fn renew(
        &self,
        http: &Http,
        gitlab: &Url,
        info: &GitLabInfo,
        stored: &Secret,
        plan: Self::Plan,
    ) -> Outcome;
}

/// What GitLab says about the stored secret right now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Check {
    /// Still the live token: no renewal happened (or it was never renewed).
    Active,
    /// Revoked: renewed (here, with the answer lost, or elsewhere) or revoked by a person.
    Revoked(String),
    /// Expired: it cannot renew itself any more.
    Expired(String),
    /// No answer that says either (403, 404, 5xx, network): never read as "revoked".
    Unknown(String),
}

/// What a renewal call did.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// GitLab issued a new secret (the old one is revoked): store it as it is.
    /// (`info` boxed: it is far larger than the other variants.)
    Renewed {
        secret: Secret,
        info: Box<GitLabInfo>,
    },
    /// A clean "no": nothing changed at GitLab.
    Refused(String),
    /// GitLab does not take the stored secret any more (401): rotated or revoked elsewhere.
    Unauthorized(String),
    /// The request never left.
    NotSent(String),
    /// OAuth: the refresh token was already used or revoked.
    InvalidGrant,
    /// It may have been processed (5xx, timeout, dropped connection).
    Unknown(String),
}
