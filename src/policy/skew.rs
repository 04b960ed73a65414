//! Clock skew: this machine's clock against GitLab's. Laptops after sleep, VMs and
//! containers run minutes or hours off, and GitLab's instants (a PAT's expiry date, a
//! registry token's `iat`/`exp`, an OAuth answer's `created_at`) are on GitLab's clock.
//!
//! The skew is measured where the helper talks to GitLab (`gitlab`: the `Date` header of an
//! API answer, or an OAuth answer's `created_at`) as *local − GitLab*: positive when this
//! machine is ahead. GitLab's instants are converted to this machine's clock at the
//! boundary ([`to_local`]), so every other rule of `policy` compares like with like.

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};

use crate::model::GitLabInfo;

/// A skew beyond this is worth a warning (`doctor`); below it, clocks agree for our purposes.
pub(crate) const WARN_ABOVE: SignedDuration = SignedDuration::from_secs(60);

/// The skew recorded in `info` at the last exchange with GitLab (zero when never measured).
pub(crate) fn recorded(info: &GitLabInfo) -> SignedDuration {
    info.clock_skew_secs
        .map_or(SignedDuration::ZERO, SignedDuration::from_secs)
}

/// The skew as it is recorded: whole seconds.
pub(crate) fn to_record(skew: SignedDuration) -> i64 {
    skew.as_secs()
}

/// An instant on GitLab's clock, on this machine's clock.
pub(crate) fn to_local(at_gitlab: Timestamp, skew: SignedDuration) -> Timestamp {
    at_gitlab.checked_add(skew).unwrap_or(at_gitlab)
}

/// The moment GitLab's clock reads when this machine's reads `local`.
pub(crate) fn gitlab_now(local: Timestamp, skew: SignedDuration) -> Timestamp {
    local.checked_sub(skew).unwrap_or(local)
}

/// Today's date (UTC) at GitLab: what GitLab counts an expiry date from.
pub(crate) fn gitlab_today(local: Timestamp, skew: SignedDuration) -> Date {
    gitlab_now(local, skew)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

/// The sentence about a skew worth a warning (`None` within [`WARN_ABOVE`]): "this machine
/// is 10 min ahead of GitLab".
pub(crate) fn warning(skew: SignedDuration) -> Option<String> {
    if skew.abs() <= WARN_ABOVE {
        return None;
    }
    let direction = if skew.is_positive() {
        "ahead of"
    } else {
        "behind"
    };
    Some(format!(
        "this machine is {} {direction} GitLab",
        amount(skew.abs())
    ))
}

/// `90 s`, `10 min`, `3 h`, `3 h 5 min`.
fn amount(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if secs < 120 {
        return format!("{secs} s");
    }
    let mins = (secs + 30) / 60;
    match (mins / 60, mins % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: SignedDuration = SignedDuration::from_secs(60);

    #[test]
    fn warning_names_the_direction_and_the_amount() {
        assert_eq!(
            warning(MIN * 10).as_deref(),
            Some("this machine is 10 min ahead of GitLab")
        );
        assert_eq!(
            warning(-MIN * 180).as_deref(),
            Some("this machine is 3 h behind GitLab")
        );
        assert_eq!(
            warning(MIN * 185).as_deref(),
            Some("this machine is 3 h 5 min ahead of GitLab")
        );
        assert_eq!(
            warning(SignedDuration::from_secs(-61)).as_deref(),
            Some("this machine is 61 s behind GitLab")
        );
        assert_eq!(warning(SignedDuration::from_secs(60)), None);
        assert_eq!(warning(SignedDuration::from_secs(-60)), None);
        assert_eq!(warning(SignedDuration::ZERO), None);
    }

    #[test]
    fn gitlab_instants_convert_to_this_clock() {
        let gitlab = Timestamp::from_second(1_800_000_000).unwrap();
        // This machine is 3 h ahead: GitLab's midnight is 03:00 here.
        let ahead = MIN * 180;
        assert_eq!(to_local(gitlab, ahead), gitlab + ahead);
        assert_eq!(gitlab_now(to_local(gitlab, ahead), ahead), gitlab);
        assert_eq!(to_local(gitlab, -ahead), gitlab - ahead);
        assert_eq!(to_local(gitlab, SignedDuration::ZERO), gitlab);
    }

    #[test]
    fn gitlab_today_follows_gitlab_clock() {
        // 01:00 UTC here, this machine 3 h ahead: GitLab is still on the day before.
        let local: Timestamp = "2030-05-02T01:00:00Z".parse().unwrap();
        assert_eq!(
            gitlab_today(local, MIN * 180),
            jiff::civil::date(2030, 5, 1)
        );
        assert_eq!(
            gitlab_today(local, SignedDuration::ZERO),
            jiff::civil::date(2030, 5, 2)
        );
        // 23:00 UTC here, this machine 3 h behind: GitLab is already on the next day.
        let local: Timestamp = "2030-05-01T23:00:00Z".parse().unwrap();
        assert_eq!(
            gitlab_today(local, -MIN * 180),
            jiff::civil::date(2030, 5, 2)
        );
    }

    #[test]
    fn recorded_skew_defaults_to_zero() {
        let mut info = GitLabInfo::new(
            "https://gitlab.example.com",
            crate::model::TokenKind::OauthToken,
        );
        assert_eq!(recorded(&info), SignedDuration::ZERO);
        info.clock_skew_secs = Some(to_record(-MIN * 10));
        assert_eq!(recorded(&info), -MIN * 10);
    }
}
