//! The renewal method for OAuth access tokens (`login --oauth`): the refresh token.
//!
//! The stored secret of an OAuth entry is the token pair, as one item
//! ([`crate::model::stored_secret`]): a refresh token is single use, and GitLab revokes the
//! old access token when it issues the new pair.

use reqwest::Url;

use super::method::{Check, Method, Outcome};
use super::{Promise, RenewError};
use crate::gitlab::http::Http;
use crate::gitlab::oauth::{self, Refresh};
use crate::model::GitLabInfo;
use crate::model::stored_secret::{access_token, pack_pair, refresh_token};
use crate::secret::Secret;

/// Refreshing OAuth access tokens with the stored refresh token.
pub(crate) struct OAuth;

/// A refresh needs nothing decided beforehand but the application that refreshes.
pub(crate) struct RefreshPlan {
    client_id: String,
}

impl Method for OAuth {
    type Plan = RefreshPlan;

    fn confirms_first(&self) -> bool {
        false
    }

    fn check(&self, http: &Http, gitlab_url: &Url, stored: &Secret) -> Check {
        check(http, gitlab_url, stored)
    }

    fn plan(&self, info: &GitLabInfo, _promise: Promise) -> Result<RefreshPlan, RenewError> {
        let client_id = info.oauth_client_id.clone().ok_or_else(|| {
            RenewError::Cannot(
                "the OAuth token has no client id recorded; log in again with --oauth".into(),
            )
        })?;
        Ok(RefreshPlan { client_id })
    }

    fn renew(
        &self,
        http: &Http,
        gitlab_url: &Url,
        info: &GitLabInfo,
        stored: &Secret,
        plan: RefreshPlan,
    ) -> Outcome {
        renew(http, gitlab_url, info, stored, &plan.client_id)
    }
}

/// Is the stored access token still the live one? After a refresh GitLab revokes it.
fn check(http: &Http, gitlab_url: &Url, stored: &Secret) -> Check {
    match oauth::token_info(http, gitlab_url, &access_token(stored)) {
        Ok(Some(_)) => Check::Active,
        Ok(None) => Check::Revoked("GitLab no longer accepts the access token".into()),
        Err(e) => Check::Unknown(e.to_string()),
    }
}

fn renew(
    http: &Http,
    gitlab_url: &Url,
    info: &GitLabInfo,
    stored: &Secret,
    client_id: &str,
) -> Outcome {
    let Some(refresh_token) = refresh_token(stored) else {
        return Outcome::Refused("no refresh token is stored; log in again with --oauth".into());
    };
    match oauth::refresh(http, gitlab_url, client_id, &refresh_token) {
        Refresh::Refreshed(pair) => {
            let mut new_info = info.clone();
            new_info.expires_at = Some(pair.expires_at);
            new_info.clock_skew_secs = pair
                .skew
                .map(crate::policy::skew::to_record)
                .or(info.clock_skew_secs);
            if !pair.scopes.is_empty() {
                new_info.scopes = pair.scopes.clone();
            }
            new_info.validated_at = crate::clock::now();
            Outcome::Renewed {
                secret: pack_pair(&pair.access_token, pair.refresh_token.as_ref()),
                info: Box::new(new_info),
            }
        }
        Refresh::InvalidGrant => Outcome::InvalidGrant,
        Refresh::NotRefreshed { status, message } => {
            Outcome::Refused(format!("GitLab answered {status}: {message}"))
        }
        Refresh::NotSent(e) => Outcome::NotSent(e.to_string()),
        Refresh::Unknown(e) => Outcome::Unknown(e.to_string()),
    }
}
