//! What the store holds for a credential, and what of it `get` hands out.
//!
//! Most credentials are one token, stored as it is. An OAuth credential (`login --oauth`)
//! stores its pair, `{"access_token":…,"refresh_token":…}`, as one item, so that the pair is
//! replaced in one store write: a refresh token is single use, and GitLab revokes the old
//! access token when it issues the new pair. Only the access token is ever handed out.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::token::TokenKind;
use crate::secret::{ExposeSecret, Secret};

#[derive(Serialize, Deserialize)]
struct Pair {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// The stored form of an OAuth token pair.
pub(crate) fn pack_pair(access_token: &Secret, refresh_token: Option<&Secret>) -> Secret {
    let json = Zeroizing::new(
        serde_json::to_string(&Pair {
            access_token: access_token.expose_secret().to_owned(),
            refresh_token: refresh_token.map(|r| r.expose_secret().to_owned()),
        })
        .expect("serialises"),
    );
    Secret::from(json.as_str())
}

fn unpack(stored: &Secret) -> Option<(Secret, Option<Secret>)> {
    let p: Pair = serde_json::from_str(stored.expose_secret()).ok()?;
    Some((
        Secret::from(p.access_token),
        p.refresh_token.map(Secret::from),
    ))
}

/// The access token inside a stored pair (a plain token stored by older versions, or by
/// hand, is returned as it is).
pub(crate) fn access_token(stored: &Secret) -> Secret {
    match unpack(stored) {
        Some((access, _)) => access,
        None => stored.clone(),
    }
}

/// The refresh token inside a stored pair.
pub(crate) fn refresh_token(stored: &Secret) -> Option<Secret> {
    unpack(stored).and_then(|(_, r)| r)
}

/// What `get` hands out of the secret stored for a credential of `kind` (`None`: a plain
/// `docker login` entry): the access token of an OAuth pair, else the secret itself.
pub(crate) fn handed_out(kind: Option<TokenKind>, stored: &Secret) -> Secret {
    match kind {
        Some(TokenKind::OauthToken) => access_token(stored),
        _ => stored.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pair_round_trips_and_only_the_access_token_is_handed_out() {
        let stored = pack_pair(&Secret::from("a-123"), Some(&Secret::from("r-456")));
        assert_eq!(
            stored.expose_secret(),
            r#"{"access_token":"a-123","refresh_token":"r-456"}"#
        );
        assert_eq!(access_token(&stored).expose_secret(), "a-123");
        assert_eq!(refresh_token(&stored).unwrap().expose_secret(), "r-456");
        let oauth = Some(TokenKind::OauthToken);
        assert_eq!(handed_out(oauth, &stored).expose_secret(), "a-123");
        // Any other kind hands out what is stored, and a bare token is handed out unchanged.
        let pat = Some(TokenKind::PersonalAccessToken);
        assert_eq!(
            handed_out(pat, &stored).expose_secret(),
            stored.expose_secret()
        );
        let plain = Secret::from("plain");
        assert_eq!(handed_out(oauth, &plain).expose_secret(), "plain");
        assert_eq!(handed_out(None, &plain).expose_secret(), "plain");
    }
}
