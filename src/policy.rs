//! The refresh policy: given what we know about a stored credential, decide whether `get`
//! may hand it out as it is or must renew it first. Pure functions, so every rule is
//! unit-tested.
//!
//! - **Invariant A (validity).** A secret handed out stays valid for at least
//!   `min_validity`. If it would not, and it can be renewed, renew before handing out.
//! - **Invariant B (no rug-pull).** Renewing revokes the old secret, so never renew early
//!   while a hand-out is live (handed out less than `min_validity` ago). Only the hard
//!   window (the secret dies within `min_validity` anyway) overrides that.
//! - Early renewal happens within `early_renewal` (default 7 days, at most half of what the
//!   token lives beyond `min_validity`, so fresh and short-lived tokens do not churn) of the
//!   hard window, when no lease is live.
//! - In the hard window a token is renewed when that keeps the promise, or at least gives
//!   1.5 times the time it has left; never when a renewal could not improve on it.
//!
//! Every rule about time lives here: when `get` renews ([`decide`], [`renews_at`]), what
//! one renewal can give ([`max_validity`]), and how long a rotated token should live
//! ([`rotation_expiry`]). `status` and `doctor` only ask.

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};

use crate::model::{GitLabInfo, TokenKind};

pub(crate) mod skew;

/// Rotated tokens never live longer than GitLab allows by default.
pub(crate) const MAX_LIFETIME_DAYS: i64 = 365;
/// Used when a token's original lifetime is unknown.
const DEFAULT_LIFETIME_DAYS: i64 = 30;
/// The longest an OAuth access token lives on GitLab (Doorkeeper's default; instances
/// rarely change it). A `min_validity` beyond it cannot be kept by refreshing.
pub(crate) const ACCESS_TOKEN_LIFETIME: SignedDuration = SignedDuration::from_secs(7200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
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
pub(crate) struct Facts {
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

impl Facts {
    /// The facts about a token GitLab described as `info`, for a hand-out promising
    /// `min_validity`, with the latest lease over the keys holding it.
    pub fn of(
        info: &GitLabInfo,
        min_validity: SignedDuration,
        early_renewal: SignedDuration,
        lease_until: Option<Timestamp>,
        now: Timestamp,
    ) -> Facts {
        Facts {
            now,
            expires_at: info.expires_at,
            can_renew: info.can_renew(),
            lifetime: lifetime(info),
            min_validity,
            early_renewal,
            lease_until,
            max_validity: max_validity(info),
        }
    }
}

/// A token's whole lifetime, when known: an OAuth access token's from its last issue, an
/// access token's from the days it was created for.
fn lifetime(info: &GitLabInfo) -> Option<SignedDuration> {
    match info.kind {
        TokenKind::OauthToken => Some(oauth_lifetime(info)),
        _ => info
            .lifetime_days
            .map(|d| SignedDuration::from_hours(24 * d)),
    }
}

/// How long this OAuth token's access tokens live: from its last issue to its expiry
/// (GitLab: 2 h), or GitLab's default when unknown.
pub(crate) fn oauth_lifetime(info: &GitLabInfo) -> SignedDuration {
    info.expires_at
        .map(|e| e.duration_since(info.validated_at))
        .filter(|d| d.is_positive())
        .unwrap_or(ACCESS_TOKEN_LIFETIME)
}

/// The longest validity one renewal can give this credential (a `min_validity` beyond it
/// cannot be kept): GitLab's longest access token, or one OAuth access token's life.
pub(crate) fn max_validity(info: &GitLabInfo) -> SignedDuration {
    match info.kind {
        TokenKind::OauthToken => oauth_lifetime(info),
        _ => SignedDuration::from_hours(24 * (MAX_LIFETIME_DAYS - 1)),
    }
}

/// A `min_validity` no renewal of this token can keep. Its `Display` is the sentence every
/// warning about it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unkeepable {
    pub min_validity: SignedDuration,
    pub max_validity: SignedDuration,
}

impl std::fmt::Display for Unkeepable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "min_validity ({}) is longer than renewing can give ({})",
            crate::settings::describe(self.min_validity),
            crate::settings::describe(self.max_validity)
        )
    }
}

/// Whether `min_validity` is more than any renewal of this (renewable) token can give.
pub(crate) fn unkeepable(info: &GitLabInfo, min_validity: SignedDuration) -> Option<Unkeepable> {
    let max_validity = max_validity(info);
    (info.can_renew() && min_validity > max_validity).then_some(Unkeepable {
        min_validity,
        max_validity,
    })
}

/// When a `get` with no live lease will renew this token: the start of its early-renewal
/// window, or, when no renewal can keep `min_validity`, the moment a renewal gives 1.5
/// times the time left. `None` for a token that never expires or cannot renew.
pub(crate) fn renews_at(f: &Facts) -> Option<Timestamp> {
    if !f.can_renew {
        return None;
    }
    let before = if f.min_validity <= f.max_validity {
        f.min_validity + early_window(f)
    } else {
        f.max_validity * 2 / 3
    };
    f.expires_at?.checked_sub(before).ok()
}

/// The expiry date to ask for when rotating an access token: its own lifetime, but at
/// least enough that the new token is valid for `min_validity` and then for its own
/// early-renewal window (so the very next `get` does not rotate again), from any moment
/// `today`, capped at what GitLab allows (a `min_validity` beyond the cap gets the cap:
/// renewing still gives far more than a dying token has, and the hand-out says the promise
/// is not kept). `None` only for a date past the calendar's end.
pub(crate) fn rotation_expiry(
    info: &GitLabInfo,
    min_validity: SignedDuration,
    early_renewal: SignedDuration,
    today: Date,
) -> Option<(Date, i64)> {
    // A token dying at 00:00 UTC of `today + days` is valid for at least `days - 1` days.
    let covers = |days: i64, need: SignedDuration| (days - 1) * 86_400 >= need.as_secs();
    let mut days = info.lifetime_days.unwrap_or(DEFAULT_LIFETIME_DAYS).max(2);
    while days < MAX_LIFETIME_DAYS {
        let lifetime = Some(SignedDuration::from_hours(24 * days));
        let early = early_window_for(lifetime, early_renewal, min_validity);
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

pub(crate) fn decide(f: &Facts) -> Decision {
    let Some(expires_at) = f.expires_at else {
        return Decision::HandOut;
    };
    let remaining = expires_at.duration_since(f.now);
    if remaining < f.min_validity {
        return hard_window(f, remaining);
    }
    let keepable = f.min_validity <= f.max_validity;
    if f.can_renew && keepable && remaining < f.min_validity + early_window(f) && !lease_live(f) {
        return Decision::Renew { hard: false };
    }
    Decision::HandOut
}

/// The token dies within `min_validity`: renew it when renewing keeps the promise, or at
/// least gives 1.5 times the time it has left (then the hand-out carries a warning); never
/// when a renewal could not improve on it, so nothing loops.
fn hard_window(f: &Facts, remaining: SignedDuration) -> Decision {
    if !f.can_renew {
        Decision::HandOutExpiring
    } else if f.min_validity <= f.max_validity || improves(f.max_validity, remaining) {
        Decision::Renew { hard: true }
    } else {
        Decision::PromiseTooLong
    }
}

/// Whether a renewal that gives `gives` is worth it for a token with `remaining` left: at
/// least 1.5 times as long. A token fresh from a renewal never is, so it is never renewed
/// again at once.
fn improves(gives: SignedDuration, remaining: SignedDuration) -> bool {
    gives.as_millis() * 2 >= remaining.as_millis().max(0) * 3
}

/// What to do with a standby pair (two tokens for one registry): hand out the active one
/// while it is fresh; before it needs renewing, switch hand-outs to the idle one (renewing
/// that first if it needs it, which is safe only once its own leases have run out). The
/// old active one is renewed later, when its leases have run out too. No hand-out is ever
/// revoked within its promise, under any rate of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PairDecision {
    /// Hand out the active token.
    Active,
    /// Make the idle token active and hand it out.
    Switch,
    /// Renew the idle token (no live lease), make it active, hand it out.
    RenewIdleThenSwitch,
    /// The pair cannot help now: the single-token policy applies to the active token.
    Single,
}

pub(crate) fn decide_pair(active: &Facts, idle: &Facts) -> PairDecision {
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
pub(crate) fn needs_renewal(f: &Facts) -> bool {
    let Some(expires_at) = f.expires_at else {
        return false;
    };
    expires_at.duration_since(f.now) < f.min_validity + early_window(f)
}

fn early_window(f: &Facts) -> SignedDuration {
    early_window_for(f.lifetime, f.early_renewal, f.min_validity)
}

/// The early-renewal window of a token that lives `lifetime`: `early_renewal`, but at most
/// half of what the token gives beyond `min_validity`. So a fresh token is never due (its
/// whole life is more than `min_validity` and the window), and a host that calls `get`
/// steadily renews at most once per `lifetime - min_validity`.
fn early_window_for(
    lifetime: Option<SignedDuration>,
    early_renewal: SignedDuration,
    min_validity: SignedDuration,
) -> SignedDuration {
    match lifetime {
        Some(lifetime) => {
            early_renewal.min(((lifetime - min_validity) / 2).max(SignedDuration::ZERO))
        }
        None => early_renewal,
    }
}

/// A secret handed out with a promise that has not run out yet may still be in use by a
/// push (whatever `min_validity` the process that handed it out had).
pub(crate) fn lease_live(f: &Facts) -> bool {
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
        // A 2-day token with 30 h left: the early window is capped at half of what it lives
        // beyond min_validity (23.5 h).
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

    /// A 2 h OAuth token at default settings (min_validity 60 min).
    fn oauth(age_mins: i64, handed_out_mins_ago: Option<i64>) -> Facts {
        let mut f = facts(0, true, handed_out_mins_ago);
        let issued = f.now - SignedDuration::from_mins(age_mins);
        f.expires_at = Some(issued + SignedDuration::from_hours(2));
        f.lifetime = Some(SignedDuration::from_hours(2));
        f.max_validity = SignedDuration::from_hours(2);
        f
    }

    #[test]
    fn a_fresh_oauth_token_is_never_due_at_default_settings() {
        // Early window: half of (2 h - 60 min) = 30 min, so due 30 min after issue.
        assert_eq!(decide(&oauth(0, None)), Decision::HandOut);
        assert_eq!(decide(&oauth(29, None)), Decision::HandOut);
        assert_eq!(decide(&oauth(31, None)), Decision::Renew { hard: false });
        // A steady host always has a live lease: it renews only in the hard window, once
        // per (2 h - 60 min).
        assert_eq!(decide(&oauth(59, Some(1))), Decision::HandOut);
        assert_eq!(decide(&oauth(61, Some(1))), Decision::Renew { hard: true });
    }

    #[test]
    fn a_dying_token_is_renewed_when_renewal_gives_half_as_much_again() {
        // min_validity 3 h, but a refresh gives 2 h: the promise cannot be kept.
        let with = |age_mins| Facts {
            min_validity: SignedDuration::from_hours(3),
            ..oauth(age_mins, None)
        };
        assert_eq!(decide(&with(0)), Decision::PromiseTooLong, "fresh: no loop");
        assert_eq!(decide(&with(39)), Decision::PromiseTooLong, "81 min left");
        assert_eq!(
            decide(&with(40)),
            Decision::Renew { hard: true },
            "80 min left"
        );
        // Never seconds left when a refresh gives hours.
        let last = with(120);
        let last = Facts {
            expires_at: Some(last.now + SignedDuration::from_secs(30)),
            ..last
        };
        assert_eq!(decide(&last), Decision::Renew { hard: true });
        // The renewal's own answer is not improved on at once.
        assert!(!improves(
            SignedDuration::from_hours(2),
            SignedDuration::from_hours(2)
        ));
    }

    #[test]
    fn a_promise_no_token_can_keep_never_loops() {
        // 20 days left, min_validity 400 d: a rotation gives 364 d, so it is worth one...
        let mut f = facts(24 * 20, true, None);
        f.min_validity = SignedDuration::from_hours(24 * 400);
        assert_eq!(decide(&f), Decision::Renew { hard: true });
        // ...and the rotated token is not rotated again.
        f.expires_at = Some(f.now + f.max_validity);
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

    fn info(lifetime_days: Option<i64>) -> GitLabInfo {
        GitLabInfo {
            scopes: vec!["self_rotate".into()],
            token_id: Some(1),
            lifetime_days,
            validated_at: Timestamp::UNIX_EPOCH,
            ..GitLabInfo::new("https://gitlab.example", TokenKind::PersonalAccessToken)
        }
    }

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn keeps_the_lifetime_when_it_covers_the_promise() {
        let (date, days) = rotation_expiry(
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
        // window (at most half of what it lives beyond 30 d), from any time today.
        let (date, days) = rotation_expiry(
            &info(Some(20)),
            SignedDuration::from_hours(24 * 30),
            SignedDuration::from_hours(24 * 7),
            day("2026-12-01"),
        )
        .unwrap();
        // 32 days: 31 d left at the latest moment today, 30 d + half of the 2 d beyond it.
        assert_eq!(days, 32);
        assert_eq!(date, day("2027-01-02"));
    }

    #[test]
    fn capped_at_the_instance_maximum_even_beyond_it() {
        let days = |min_days: i64| {
            rotation_expiry(
                &info(Some(30)),
                SignedDuration::from_hours(24 * min_days),
                SignedDuration::from_hours(24 * 7),
                day("2026-12-01"),
            )
            .unwrap()
            .1
        };
        assert_eq!(days(360), 362);
        assert_eq!(days(364), MAX_LIFETIME_DAYS);
        assert_eq!(days(400), MAX_LIFETIME_DAYS);
    }

    /// `status` says when `get` renews: the moment after which [`decide`] renews, for every
    /// kind of token (an OAuth token's window is sized by its 2 h life, not by 7 days).
    #[test]
    fn renews_at_is_when_decide_starts_renewing() {
        let issued = Timestamp::from_second(1_800_000_000).unwrap();
        let oauth = GitLabInfo {
            expires_at: Some(issued + SignedDuration::from_hours(2)),
            validated_at: issued,
            oauth_client_id: Some("app".into()),
            ..GitLabInfo::new("https://gitlab.example", TokenKind::OauthToken)
        };
        let pat = GitLabInfo {
            expires_at: Some(issued + SignedDuration::from_hours(24 * 90)),
            lifetime_days: Some(90),
            ..info(Some(90))
        };
        let unkeepable = GitLabInfo {
            oauth_client_id: Some("app".into()),
            ..oauth.clone()
        };
        for token in [oauth, pat] {
            let facts = |now| {
                Facts::of(
                    &token,
                    SignedDuration::from_mins(30),
                    SignedDuration::from_hours(24 * 7),
                    None,
                    now,
                )
            };
            let at = renews_at(&facts(issued)).expect("renewable");
            let second = SignedDuration::from_secs(1);
            assert_eq!(decide(&facts(at - second)), Decision::HandOut, "{token:?}");
            assert_eq!(decide(&facts(at)), Decision::HandOut, "{token:?}");
            assert_eq!(
                decide(&facts(at + second)),
                Decision::Renew { hard: false },
                "{token:?}"
            );
        }
        // A min_validity no refresh keeps: renewed once a refresh gives 1.5 times what is left.
        let facts = |now| {
            Facts::of(
                &unkeepable,
                SignedDuration::from_hours(3),
                SignedDuration::from_hours(24 * 7),
                None,
                now,
            )
        };
        let at = renews_at(&facts(issued)).expect("renewable");
        assert_eq!(at, issued + SignedDuration::from_mins(40));
        let second = SignedDuration::from_secs(1);
        assert_eq!(decide(&facts(at - second)), Decision::PromiseTooLong);
        assert_eq!(decide(&facts(at + second)), Decision::Renew { hard: true });
    }
}
