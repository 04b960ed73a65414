//! The refresh policy: given what we know about a stored credential, decide whether `get`
//! may hand it out as it is or must renew it first. Pure functions, so every rule is
//! unit-tested.
//!
//! - **Invariant A (validity).** A secret handed out stays valid for at least
//!   `min_validity`. If it would not, and it can be renewed, renew before handing out.
//! - **Invariant B (no rug-pull).** Renewing revokes the old secret, so never renew early
//!   while a hand-out is live (handed out less than `min_validity` ago). Only the hard
//!   window (the secret dies within `min_validity` anyway) overrides that.
//! - Early renewal happens within `early_renewal` (default 7 days, at most half the token's
//!   lifetime so short-lived tokens do not churn) of the hard window, when no lease is live.

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Hand the current secret out.
    HandOut,
    /// Renew first. `hard`: the current secret would break Invariant A.
    Renew { hard: bool },
    /// The secret dies within `min_validity` and cannot be renewed: hand it out, but warn.
    HandOutExpiring,
}

#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub now: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub can_renew: bool,
    /// The token's full lifetime (creation to expiry), when known.
    pub lifetime: Option<SignedDuration>,
    pub min_validity: SignedDuration,
    pub early_renewal: SignedDuration,
    /// When `get` last handed this secret out.
    pub last_handout: Option<Timestamp>,
}

pub fn decide(f: &Facts) -> Decision {
    let Some(expires_at) = f.expires_at else {
        return Decision::HandOut;
    };
    let remaining = expires_at.duration_since(f.now);
    if remaining < f.min_validity {
        return if f.can_renew {
            Decision::Renew { hard: true }
        } else {
            Decision::HandOutExpiring
        };
    }
    let early = match f.lifetime {
        Some(lifetime) => f.early_renewal.min(lifetime / 2),
        None => f.early_renewal,
    };
    if f.can_renew && remaining < f.min_validity + early && !lease_live(f) {
        return Decision::Renew { hard: false };
    }
    Decision::HandOut
}

/// A hand-out less than `min_validity` ago may still be in use by a push.
pub fn lease_live(f: &Facts) -> bool {
    f.last_handout
        .is_some_and(|t| f.now.duration_since(t) < f.min_validity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(remaining_h: i64, can_renew: bool, last_handout_min_ago: Option<i64>) -> Facts {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        Facts {
            now,
            expires_at: Some(now + SignedDuration::from_hours(remaining_h)),
            can_renew,
            lifetime: Some(SignedDuration::from_hours(24 * 90)),
            min_validity: SignedDuration::from_mins(60),
            early_renewal: SignedDuration::from_hours(24 * 7),
            last_handout: last_handout_min_ago.map(|m| now - SignedDuration::from_mins(m)),
        }
    }

    #[test]
    fn far_from_expiry_hands_out() {
        assert_eq!(decide(&facts(24 * 30, true, None)), Decision::HandOut);
    }

    #[test]
    fn hard_window_renews_even_with_a_live_lease() {
        let f = Facts {
            expires_at: Some(facts(0, true, None).now + SignedDuration::from_mins(30)),
            ..facts(0, true, Some(5))
        };
        assert_eq!(decide(&f), Decision::Renew { hard: true });
    }

    #[test]
    fn early_window_respects_leases() {
        // 3 days left: inside the 7-day early window.
        assert_eq!(
            decide(&facts(72, true, None)),
            Decision::Renew { hard: false }
        );
        assert_eq!(
            decide(&facts(72, true, Some(10))),
            Decision::HandOut,
            "lease live"
        );
        assert_eq!(
            decide(&facts(72, true, Some(61))),
            Decision::Renew { hard: false },
            "lease expired"
        );
    }

    #[test]
    fn unrenewable_tokens_are_handed_out_with_a_warning() {
        let mut f = facts(0, false, None);
        f.expires_at = Some(f.now + SignedDuration::from_mins(20));
        assert_eq!(decide(&f), Decision::HandOutExpiring);
        assert_eq!(decide(&facts(72, false, None)), Decision::HandOut);
    }

    #[test]
    fn short_lived_tokens_do_not_churn() {
        // A 2-day token with 30 h left: the early window is capped at half its life (24 h).
        let mut f = facts(30, true, None);
        f.lifetime = Some(SignedDuration::from_hours(48));
        assert_eq!(decide(&f), Decision::HandOut);
        f.expires_at = Some(f.now + SignedDuration::from_hours(20));
        assert_eq!(decide(&f), Decision::Renew { hard: false });
    }

    #[test]
    fn no_expiry_never_renews() {
        let mut f = facts(1, true, None);
        f.expires_at = None;
        assert_eq!(decide(&f), Decision::HandOut);
    }
}
