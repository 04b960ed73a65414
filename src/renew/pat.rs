//! The renewal method for personal, project and group access tokens: self-rotation.
//!
//! `POST /personal_access_tokens/self/rotate` (bots: their resource's
//! `access_tokens/self/rotate`) revokes the token and returns its successor. Before that,
//! `GET /personal_access_tokens/self` (which never triggers reuse detection) tells whether
//! the token is still the live member of its family.

use std::time::Duration;

use jiff::SignedDuration;
use jiff::civil::Date;
use reqwest::Url;

use super::{Check, Outcome, Plan, Promise, RenewError};
use crate::gitlab::{self, PatSelf, Rotation, http::Http};
use crate::secret::Secret;
use crate::state::GitLabInfo;

/// Rotated tokens never live longer than GitLab allows by default.
pub const MAX_LIFETIME_DAYS: i64 = 365;
/// Used when the original lifetime is unknown.
const DEFAULT_LIFETIME_DAYS: i64 = 30;

pub fn check(http: &Http, gitlab_url: &Url, secret: &Secret) -> Check {
    match gitlab::personal_access_token_self(http, gitlab_url, secret) {
        Ok(PatSelf::Pat(p)) if p.active => Check::Active,
        Ok(PatSelf::Pat(p)) if p.revoked => Check::Revoked("GitLab lists it as revoked".into()),
        Ok(PatSelf::Pat(_)) => Check::Expired("GitLab lists it as expired".into()),
        Ok(PatSelf::Unauthorized(reason)) if reason.to_ascii_lowercase().contains("revoked") => {
            Check::Revoked(reason)
        }
        Ok(PatSelf::Unauthorized(reason)) if reason.to_ascii_lowercase().contains("expired") => {
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

/// The expiry date to ask for: the token's own lifetime, but at least enough that the new
/// token is valid for `min_validity` and then for its own early-renewal window (so the very
/// next `get` does not rotate again), from any moment today, capped at what GitLab allows.
/// `None` when even the cap cannot cover `min_validity`.
pub fn new_expiry(
    info: &GitLabInfo,
    min_validity: SignedDuration,
    early_renewal: SignedDuration,
    today: Date,
) -> Option<(Date, i64)> {
    // A token dying at 00:00 UTC of `today + days` is valid for at least `days - 1` days.
    let covers = |days: i64, need: SignedDuration| (days - 1) * 86_400 >= need.as_secs();
    if !covers(MAX_LIFETIME_DAYS, min_validity) {
        return None;
    }
    let mut days = info.lifetime_days.unwrap_or(DEFAULT_LIFETIME_DAYS).max(2);
    while days < MAX_LIFETIME_DAYS {
        // The policy's early window for a token of this lifetime: at most half of it.
        let early = early_renewal.min(SignedDuration::from_hours(12 * days));
        if covers(days, min_validity + early) {
            break;
        }
        days += 1;
    }
    let days = days.min(MAX_LIFETIME_DAYS);
    today
        .checked_add(jiff::Span::new().days(days))
        .ok()
        .map(|d| (d, days))
}

/// The new expiry, or why no rotation can keep the promise.
pub fn plan(info: &GitLabInfo, promise: Promise) -> Result<Plan, RenewError> {
    let today = crate::clock::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let (expires_at, lifetime_days) =
        new_expiry(info, promise.min_validity, promise.early_renewal, today).ok_or_else(|| {
            RenewError::Cannot(format!(
                "min_validity {} is longer than any token GitLab issues ({MAX_LIFETIME_DAYS} days); lower it",
                crate::settings::describe(promise.min_validity),
            ))
        })?;
    Ok(Plan::Rotate {
        expires_at,
        lifetime_days,
    })
}

/// Rotates, and says what happened in the frame's terms.
pub fn renew(
    http: &Http,
    gitlab_url: &Url,
    info: &GitLabInfo,
    secret: &Secret,
    plan: Plan,
) -> Outcome {
    let Plan::Rotate {
        expires_at,
        lifetime_days,
    } = plan
    else {
        return Outcome::Refused("not a rotation plan".into());
    };
    match rotate(http, gitlab_url, secret, info, expires_at) {
        Rotation::Rotated { token, info: pat } => {
            let mut new_info = info.clone();
            new_info.expires_at = pat.expires_instant();
            new_info.scopes = pat.scopes.clone();
            new_info.token_id = Some(pat.id);
            new_info.lifetime_days = Some(lifetime_days);
            new_info.validated_at = crate::clock::now();
            Outcome::Renewed {
                secret: token,
                info: new_info,
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
            if status == 403 {
                detail.push_str("; the token needs the api or self_rotate scope to renew itself");
            }
            Outcome::Refused(detail)
        }
        Rotation::NotSent(e) => Outcome::NotSent(e.to_string()),
        Rotation::Unknown(e) => Outcome::Unknown(e.to_string()),
    }
}

/// The longest validity a rotation can give (for the policy: never loop on a promise no
/// token can keep).
pub fn max_validity() -> SignedDuration {
    SignedDuration::from_hours(24 * (MAX_LIFETIME_DAYS - 1))
}

/// Rotates once; a 429 whose `Retry-After` still leaves a full request deadline is waited
/// out and asked once more (429 means "not rotated", so asking again is safe).
pub fn rotate(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::TokenKind;

    fn info(lifetime_days: Option<i64>) -> GitLabInfo {
        GitLabInfo {
            scopes: vec!["self_rotate".into()],
            token_id: Some(1),
            lifetime_days,
            validated_at: jiff::Timestamp::UNIX_EPOCH,
            ..GitLabInfo::new("https://gitlab.example", TokenKind::PersonalAccessToken)
        }
    }

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn keeps_the_lifetime_when_it_covers_the_promise() {
        let (date, days) = new_expiry(
            &info(Some(90)),
            SignedDuration::from_mins(60),
            SignedDuration::from_hours(24 * 7),
            day("2026-12-01"),
        )
        .unwrap();
        assert_eq!((date, days), (day("2027-03-01"), 90));
    }

    #[test]
    fn a_short_lifetime_is_stretched_to_min_validity_plus_the_early_window() {
        // 20-day token, min_validity 30 days: the new one must outlive 30 d + its early
        // window (7 d), from any time today.
        let (date, days) = new_expiry(
            &info(Some(20)),
            SignedDuration::from_hours(24 * 30),
            SignedDuration::from_hours(24 * 7),
            day("2026-12-01"),
        )
        .unwrap();
        assert_eq!(days, 38);
        assert_eq!(date, day("2027-01-08"));
    }

    #[test]
    fn capped_at_the_instance_maximum_and_none_beyond_it() {
        let (_, days) = new_expiry(
            &info(Some(30)),
            SignedDuration::from_hours(24 * 360),
            SignedDuration::from_hours(24 * 7),
            day("2026-12-01"),
        )
        .unwrap();
        assert_eq!(days, MAX_LIFETIME_DAYS);
        assert!(
            new_expiry(
                &info(Some(30)),
                SignedDuration::from_hours(24 * 400),
                SignedDuration::ZERO,
                day("2026-12-01"),
            )
            .is_none()
        );
    }
}
