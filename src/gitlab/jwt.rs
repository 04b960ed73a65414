//! Reading the claims of a registry token (an RS256 JWT issued by GitLab's `/jwt/auth`)
//! without verifying it.
//!
//! Only `doctor` needs this, to measure the registry token window (`exp - iat`, GitLab's
//! "Authorization token duration"). Nothing is trusted on the strength of these claims:
//! the registry verifies the signature, we only report a number. The token itself is a
//! credential for the registry, so it is never printed, and no error here quotes it.

use serde::Deserialize;

/// The time claims of a registry token (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TimeClaims {
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
}

impl TimeClaims {
    /// The token window, `exp - iat` in seconds, when both claims are present and sane.
    pub fn window_secs(&self) -> Option<i64> {
        let (iat, exp) = (self.iat?, self.exp?);
        (exp >= iat).then_some(exp - iat)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the registry token is not a JWT (expected three dot-separated parts)")]
    NotJwt,
    #[error("the registry token's payload is not base64url")]
    Base64,
    #[error("the registry token's payload is not a JSON object with numeric time claims")]
    Json,
}

/// Decodes the payload of `token` (header.payload.signature) without checking the signature.
pub fn time_claims(token: &str) -> Result<TimeClaims, JwtError> {
    let mut parts = token.trim().split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::NotJwt);
    };
    let bytes = base64url_decode(payload).ok_or(JwtError::Base64)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Json)
}

/// Decodes unpadded (or padded) base64url, as JWTs use it. `None` on any invalid input.
fn base64url_decode(input: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(input.trim_end_matches('='))
        .ok()
}

/// The `sub` claim: the GitLab user the token was issued to (absent for deploy tokens).
/// `login` uses it to recognise project/group bot users, whose tokens rotate through their
/// resource's endpoint.
pub fn subject(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Subject {
        sub: Option<String>,
    }
    let payload = token.trim().split('.').nth(1)?;
    let bytes = base64url_decode(payload)?;
    serde_json::from_slice::<Subject>(&bytes).ok()?.sub
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_known_vectors() {
        // RFC 4648 §10 vectors, in the URL-safe alphabet and without padding.
        for (encoded, plain) in [
            ("", ""),
            ("Zg", "f"),
            ("Zm8", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg", "foob"),
            ("Zm9vYmE", "fooba"),
            ("Zm9vYmFy", "foobar"),
            ("Zm9vYg==", "foob"),
        ] {
            assert_eq!(
                base64url_decode(encoded).as_deref(),
                Some(plain.as_bytes()),
                "{encoded}"
            );
        }
        assert_eq!(base64url_decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert!(
            base64url_decode("Zm9vY").is_none(),
            "5 chars cannot be base64"
        );
        assert!(
            base64url_decode("Zm+v").is_none(),
            "standard alphabet is not base64url"
        );
    }

    #[test]
    fn time_claims_from_a_token() {
        // {"alg":"RS256"} . {"iss":"gitlab-issuer","iat":1700000000,"nbf":1699999995,"exp":1700000300,"access":[]} . sig
        let header = "eyJhbGciOiJSUzI1NiJ9";
        let payload = "eyJpc3MiOiJnaXRsYWItaXNzdWVyIiwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE2OTk5OTk5OTUsImV4cCI6MTcwMDAwMDMwMCwiYWNjZXNzIjpbXX0";
        let token = format!("{header}.{payload}.c2ln");
        let claims = time_claims(&token).unwrap();
        assert_eq!(claims.iat, Some(1_700_000_000));
        assert_eq!(claims.exp, Some(1_700_000_300));
        assert_eq!(claims.window_secs(), Some(300));
    }

    #[test]
    fn bad_tokens_are_errors_not_panics() {
        assert_eq!(time_claims("opaque-token"), Err(JwtError::NotJwt));
        assert_eq!(time_claims("a.b.c.d"), Err(JwtError::NotJwt));
        assert_eq!(time_claims("a.!!!.c"), Err(JwtError::Base64));
        assert_eq!(time_claims("a.Zm9v.c"), Err(JwtError::Json));
        let no_exp = TimeClaims {
            iat: Some(10),
            nbf: None,
            exp: None,
        };
        assert_eq!(no_exp.window_secs(), None);
    }
}
