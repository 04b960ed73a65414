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
    /// The secret dies within `min_validity`, and no renewal could give a token that lives
    /// that long (`min_validity` beyond what GitLab issues): hand it out and warn, but never
    /// renew on every `get`.
    PromiseTooLong,
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
    /// Until when a secret handed out earlier was promised valid (the latest promise).
    pub lease_until: Option<Timestamp>,
    /// The longest validity a renewal can give.
    pub max_validity: SignedDuration,
}

pub fn decide(f: &Facts) -> Decision {
    let Some(expires_at) = f.expires_at else {
        return Decision::HandOut;
    };
    let remaining = expires_at.duration_since(f.now);
    if f.can_renew && f.min_validity > f.max_validity {
        return if remaining < f.min_validity {
            Decision::PromiseTooLong
        } else {
            Decision::HandOut
        };
    }
    if remaining < f.min_validity {
        return if f.can_renew {
            Decision::Renew { hard: true }
        } else {
            Decision::HandOutExpiring
        };
    }
    if f.can_renew && remaining < f.min_validity + early_window(f) && !lease_live(f) {
        return Decision::Renew { hard: false };
    }
    Decision::HandOut
}

/// What to do with a standby pair (two tokens for one registry): hand out the active one
/// while it is fresh; before it needs renewing, switch hand-outs to the idle one (renewing
/// that first if it needs it, which is safe only once its own leases have run out). The
/// old active one is renewed later, when its leases have run out too. No hand-out is ever
/// revoked within its promise, under any rate of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairDecision {
    /// Hand out the active token.
    Active,
    /// Make the idle token active and hand it out.
    Switch,
    /// Renew the idle token (no live lease), make it active, hand it out.
    RenewIdleThenSwitch,
    /// The pair cannot help now: the single-token policy applies to the active token.
    Single,
}

pub fn decide_pair(active: &Facts, idle: &Facts) -> PairDecision {
    if !needs_renewal(active) {
        return PairDecision::Active;
    }
    if !needs_renewal(idle) {
        return PairDecision::Switch;
    }
    if idle.can_renew && idle.min_validity <= idle.max_validity && !lease_live(idle) {
        return PairDecision::RenewIdleThenSwitch;
    }
    PairDecision::Single
}

/// Whether a token is inside its early-renewal window (or its hard window).
pub fn needs_renewal(f: &Facts) -> bool {
    let Some(expires_at) = f.expires_at else {
        return false;
    };
    expires_at.duration_since(f.now) < f.min_validity + early_window(f)
}

fn early_window(f: &Facts) -> SignedDuration {
    match f.lifetime {
        Some(lifetime) => f.early_renewal.min(lifetime / 2),
        None => f.early_renewal,
    }
}

/// A secret handed out with a promise that has not run out yet may still be in use by a
/// push (whatever `min_validity` the process that handed it out had).
pub fn lease_live(f: &Facts) -> bool {
    f.lease_until.is_some_and(|t| f.now < t)
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
            lease_until: last_handout_min_ago
                .map(|m| now - SignedDuration::from_mins(m) + SignedDuration::from_mins(60)),
            max_validity: SignedDuration::from_hours(24 * 364),
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
    fn a_lease_lasts_as_long_as_its_own_promise() {
        // Handed out 2 h ago by a process that promised 36 h: still live for a process
        // whose own min_validity is 60 min.
        let mut f = facts(72, true, None);
        f.lease_until =
            Some(f.now - SignedDuration::from_hours(2) + SignedDuration::from_hours(36));
        assert_eq!(decide(&f), Decision::HandOut);
    }

    #[test]
    fn a_promise_no_token_can_keep_never_loops() {
        let mut f = facts(24 * 20, true, None);
        f.min_validity = SignedDuration::from_hours(24 * 400);
        assert_eq!(decide(&f), Decision::PromiseTooLong);
        f.expires_at = Some(f.now + SignedDuration::from_hours(24 * 500));
        assert_eq!(decide(&f), Decision::HandOut);
    }

    #[test]
    fn a_pair_switches_before_the_active_token_needs_renewing() {
        let fresh = facts(24 * 30, true, Some(5));
        let early = facts(72, true, Some(5)); // inside the 7-day window, lease live
        let early_idle = facts(72, true, None); // the same, but nobody holds it
        assert_eq!(decide_pair(&fresh, &early), PairDecision::Active);
        assert_eq!(decide_pair(&early, &fresh), PairDecision::Switch);
        assert_eq!(
            decide_pair(&early, &early_idle),
            PairDecision::RenewIdleThenSwitch
        );
        // The idle token is still promised to someone: renewing it would cut them.
        assert_eq!(decide_pair(&early, &early), PairDecision::Single);
        // An idle token that cannot renew is no help.
        let stuck = facts(72, false, None);
        assert_eq!(decide_pair(&early, &stuck), PairDecision::Single);
    }

    #[test]
    fn no_expiry_never_renews() {
        let mut f = facts(1, true, None);
        f.expires_at = None;
        assert_eq!(decide(&f), Decision::HandOut);
    }
}
