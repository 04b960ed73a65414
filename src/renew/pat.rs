//! The renewal method for personal, project and group access tokens: self-rotation.
//!
//! `POST /personal_access_tokens/self/rotate` (bots: their resource's
//! `access_tokens/self/rotate`) revokes the token and returns its successor. Before that,
//! `GET /personal_access_tokens/self` (which never triggers reuse detection) tells whether
//! the token is still the live member of its family.

use std::time::Duration;

use jiff::civil::Date;
use reqwest::Url;

use super::method::{Check, Method, Outcome};
use super::{Promise, RenewError};
use crate::gitlab::{self, PatSelf, Rotation, http::Http};
use crate::model::GitLabInfo;
use crate::policy::{self, skew};
use crate::secret::Secret;

/// Self-rotation of personal, project and group access tokens.
pub(crate) struct Pat;

/// A rotation's new expiry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rotate {
    expires_at: Date,
    lifetime_days: i64,
}

impl Method for Pat {
    type Plan = Rotate;

    fn confirms_first(&self) -> bool {
        true
    }

    fn check(&self, http: &Http, gitlab_url: &Url, secret: &Secret) -> Check {
        match gitlab::personal_access_token_self(http, gitlab_url, secret) {
            Ok(PatSelf::Pat(p)) if p.active => Check::Active,
            Ok(PatSelf::Pat(p)) if p.revoked => Check::Revoked("GitLab lists it as revoked".into()),
            Ok(PatSelf::Pat(_)) => Check::Expired("GitLab lists it as expired".into()),
            Ok(PatSelf::Unauthorized(reason))
                if reason.to_ascii_lowercase().contains("revoked") =>
            {
                Check::Revoked(reason)
            }
            Ok(PatSelf::Unauthorized(reason))
                if reason.to_ascii_lowercase().contains("expired") =>
            {
                Check::Expired(reason)
            }
            Ok(PatSelf::Unauthorized(reason)) => {
                Check::Unknown(format!("GitLab answered 401: {reason}"))
            }
            Ok(PatSelf::NotPat) => Check::Unknown(
                "GitLab no longer describes the token (403/404, or not an access token)".into(),
            ),
            Err(e) => Check::Unknown(e.to_string()),
        }
    }

    /// The new expiry ([`policy::rotation_expiry`]).
    fn plan(&self, info: &GitLabInfo, promise: Promise) -> Result<Rotate, RenewError> {
        // GitLab counts the expiry date from its own today.
        let today = skew::gitlab_today(crate::clock::now(), skew::recorded(info));
        let (expires_at, lifetime_days) =
            policy::rotation_expiry(info, promise.min_validity, promise.early_renewal, today)
                .ok_or_else(|| {
                    RenewError::Cannot("no expiry date can be asked for after today".into())
                })?;
        Ok(Rotate {
            expires_at,
            lifetime_days,
        })
    }

    fn renew(
        &self,
        http: &Http,
        gitlab_url: &Url,
        info: &GitLabInfo,
        secret: &Secret,
        plan: Rotate,
    ) -> Outcome {
        let Rotate {
            expires_at,
            lifetime_days,
        } = plan;
        match rotate(http, gitlab_url, secret, info, expires_at) {
            Rotation::Rotated { token, info: pat } => {
                let mut new_info = info.clone();
                if let Some(measured) = http.skew(gitlab_url) {
                    new_info.clock_skew_secs = Some(skew::to_record(measured));
                }
                let offset = skew::recorded(&new_info);
                new_info.expires_at = pat.expires_instant().map(|at| skew::to_local(at, offset));
                new_info.scopes = pat.scopes.clone();
                new_info.token_id = Some(pat.id);
                new_info.lifetime_days = Some(lifetime_days);
                new_info.validated_at = crate::clock::now();
                Outcome::Renewed {
                    secret: token,
                    info: Box::new(new_info),
                }
            }
            Rotation::NotRotated {
                status,
                message,
                retry_after,
            } => {
                let mut detail = format!("GitLab answered {status}: {message}");
                if let Some(s) = retry_after {
                    detail.push_str(&format!(" (retry after {s}s)"));
                }
                if status == 401 {
                    return Outcome::Unauthorized(detail);
                }
                if status == 403 {
                    detail
                        .push_str("; the token needs the api or self_rotate scope to renew itself");
                }
                Outcome::Refused(detail)
            }
            Rotation::NotSent(e) => Outcome::NotSent(e.to_string()),
            Rotation::Unknown(e) => Outcome::Unknown(e.to_string()),
        }
    }
}

/// Rotates once; a 429 whose `Retry-After` still leaves a full request deadline is waited
/// out and asked once more (429 means "not rotated", so asking again is safe).
fn rotate(
    http: &Http,
    gitlab_url: &Url,
    secret: &Secret,
    info: &GitLabInfo,
    expires_at: Date,
) -> Rotation {
    let outcome = gitlab::rotate_self(http, gitlab_url, secret, info.resource, expires_at);
    if let Rotation::NotRotated {
        status: 429,
        retry_after: Some(secs),
        ..
    } = outcome
        && Duration::from_secs(secs) + gitlab::http::REQUEST_DEADLINE < http.remaining()
    {
        std::thread::sleep(Duration::from_secs(secs));
        return gitlab::rotate_self(http, gitlab_url, secret, info.resource, expires_at);
    }
    outcome
}
