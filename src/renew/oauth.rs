//! The renewal method for OAuth access tokens (`login --oauth`): the refresh token.
//!
//! The stored secret of an OAuth entry is the pair, `{"access_token":…,"refresh_token":…}`,
//! as one item, so that the pair is replaced in one store write: a refresh token is single
//! use, and GitLab revokes the old access token when it issues the new pair. `get` hands
//! out only the access token (username `oauth2`).

use reqwest::Url;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Check, Outcome, Plan, Promise, RenewError};
use crate::gitlab::http::Http;
use crate::gitlab::oauth::{self, Refresh, TokenPair};
use crate::secret::{ExposeSecret, Secret, secret_from};
use crate::state::GitLabInfo;

/// The longest an access token lives on GitLab (Doorkeeper's default; instances rarely
/// change it). A `min_validity` beyond it cannot be kept by refreshing.
pub const ACCESS_TOKEN_LIFETIME: jiff::SignedDuration = jiff::SignedDuration::from_secs(7200);

#[derive(Serialize, Deserialize)]
struct Stored {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// How long this OAuth token's access tokens live: from its last issue to its expiry
/// (GitLab: 2 h), or GitLab's default when unknown.
pub fn lifetime(info: &GitLabInfo) -> jiff::SignedDuration {
    info.expires_at
        .map(|e| e.duration_since(info.validated_at))
        .filter(|d| d.is_positive())
        .unwrap_or(ACCESS_TOKEN_LIFETIME)
}

/// The stored form of a token pair.
pub fn pack(pair: &TokenPair) -> Secret {
    let json = Zeroizing::new(
        serde_json::to_string(&Stored {
            access_token: pair.access_token.expose_secret().to_owned(),
            refresh_token: pair
                .refresh_token
                .as_ref()
                .map(|r| r.expose_secret().to_owned()),
        })
        .expect("serialises"),
    );
    secret_from(json.to_string())
}

fn unpack(stored: &Secret) -> Option<(Secret, Option<Secret>)> {
    let s: Stored = serde_json::from_str(stored.expose_secret()).ok()?;
    Some((
        secret_from(s.access_token),
        s.refresh_token.map(secret_from),
    ))
}

/// The access token inside a stored pair (a plain token stored by older versions, or by
/// hand, is returned as it is).
pub fn access_token(stored: &Secret) -> Secret {
    match unpack(stored) {
        Some((access, _)) => access,
        None => secret_from(stored.expose_secret().to_owned()),
    }
}

/// The refresh token inside a stored pair.
pub fn refresh_token(stored: &Secret) -> Option<Secret> {
    unpack(stored).and_then(|(_, r)| r)
}

/// Is the stored access token still the live one? After a refresh GitLab revokes it.
pub fn check(http: &Http, gitlab_url: &Url, stored: &Secret) -> Check {
    match oauth::token_info(http, gitlab_url, &access_token(stored)) {
        Ok(Some(_)) => Check::Active,
        Ok(None) => Check::Revoked("GitLab no longer accepts the access token".into()),
        Err(e) => Check::Unknown(e.to_string()),
    }
}

pub fn plan(info: &GitLabInfo, _promise: Promise) -> Result<Plan, RenewError> {
    if info.oauth_client_id.is_none() {
        return Err(RenewError::Cannot(
            "the OAuth token has no client id recorded; log in again with --oauth".into(),
        ));
    }
    Ok(Plan::Refresh)
}

pub fn renew(http: &Http, gitlab_url: &Url, info: &GitLabInfo, stored: &Secret) -> Outcome {
    let Some(client_id) = info.oauth_client_id.as_deref() else {
        return Outcome::Refused("no OAuth client id recorded".into());
    };
    let Some((_, Some(refresh_token))) = unpack(stored) else {
        return Outcome::Refused("no refresh token is stored; log in again with --oauth".into());
    };
    match oauth::refresh(http, gitlab_url, client_id, &refresh_token) {
        Refresh::Refreshed(pair) => {
            let mut new_info = info.clone();
            new_info.expires_at = Some(pair.expires_at);
            if !pair.scopes.is_empty() {
                new_info.scopes = pair.scopes.clone();
            }
            new_info.validated_at = crate::clock::now();
            Outcome::Renewed {
                secret: pack(&pair),
                info: new_info,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pair_round_trips_and_only_the_access_token_is_handed_out() {
        let pair = TokenPair {
            access_token: secret_from("a-123".into()),
            refresh_token: Some(secret_from("r-456".into())),
            expires_at: jiff::Timestamp::UNIX_EPOCH,
            scopes: vec![],
        };
        let stored = pack(&pair);
        assert_eq!(
            stored.expose_secret(),
            r#"{"access_token":"a-123","refresh_token":"r-456"}"#
        );
        assert_eq!(access_token(&stored).expose_secret(), "a-123");
        let (_, refresh) = unpack(&stored).unwrap();
        assert_eq!(refresh.unwrap().expose_secret(), "r-456");
        // A bare token (not a pair) is handed out unchanged.
        assert_eq!(
            access_token(&secret_from("plain".into())).expose_secret(),
            "plain"
        );
    }
}
