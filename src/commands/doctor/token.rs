//! Checks 5 and 6, per stored registry: the token's scopes, expiry and renewability (fresh
//! from GitLab for access tokens, else as recorded at login); how renewal fares on a busy
//! host (a standby pair, renewals that cut hand-outs, a `min_validity` no token can keep);
//! and the registry token window (`exp - iat`), which bounds how long one push may take.

use jiff::SignedDuration;

use super::Finding;
use crate::BINARY_NAME;
use crate::env::Env;
use crate::gitlab::{PatInfo, jwt};
use crate::model::token::{EXPIRY_WARNING_DAYS, can_pull, can_push};
use crate::model::{GitLabInfo, TokenKind};
use crate::policy;
use crate::records::{Records, State};
use crate::registry::RegistryHost;

/// Registry token windows shorter than this get a warning (GitLab.com uses 15 min).
const SHORT_WINDOW_SECS: i64 = 15 * 60;
/// The admin setting that controls the registry token window.
const WINDOW_SETTING: &str =
    "Admin > Settings > CI/CD > Container Registry > Authorization token duration (minutes)";

/// Renewal on a busy host: a standby pair, or the cuts a single token suffered; and a
/// min_validity no token can keep.
pub(super) fn renewal_findings(
    env: &Env,
    records: &Records,
    state: &State,
    host: &RegistryHost,
) -> Vec<Finding> {
    const CHECK: &str = "renewal";
    let mut out = Vec::new();
    let Some(info) = state
        .entries
        .get(host.as_str())
        .and_then(|e| e.gitlab.as_ref())
        .filter(|i| i.can_renew())
    else {
        return out;
    };
    let standby = host.standby();
    if let Some(second) = state.entries.get(standby.as_str()) {
        let primary = &state.entries[host.as_str()];
        let active = if primary.standby_active() {
            "the standby token"
        } else {
            "the first token"
        };
        out.push(match &second.gitlab {
            Some(g) if g.can_renew() => Finding::pass(
                CHECK,
                format!("a standby pair: get hands out {active}; renewals never cut a push"),
            ),
            _ => Finding::warn(CHECK, "the standby token cannot renew itself").fix(format!(
                "log in a renewable standby token: {BINARY_NAME} login {host} --standby"
            )),
        });
    } else if let Some((at, count)) = records.last_cut(host) {
        out.push(
            Finding::warn(
                CHECK,
                format!(
                    "the renewal at {at} revoked the token under {count} hand-out(s) still inside their promise \
                     (docker runs more often than min_validity here)"
                ),
            )
            .fix(format!(
                "add a second token so renewals never cut a push: {BINARY_NAME} login {host} --standby"
            )),
        );
    }
    if let Ok(settings) = crate::settings::Settings::load(env)
        && let Some(unkeepable) =
            crate::policy::unkeepable(info, settings.min_validity(host.as_str()))
    {
        out.push(
            Finding::warn(CHECK, format!("{unkeepable}: renewal cannot keep it"))
                .fix("lower min_validity (DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY or config.json)"),
        );
    }
    out
}

/// Scopes, expiry and renewability: from GitLab's fresh answer when there is one, else from
/// what `login` recorded.
/// `skew`: this machine's clock minus GitLab's (GitLab's fresh expiry is on its clock; the
/// recorded one is already on this machine's).
pub(super) fn token_findings(
    info: &GitLabInfo,
    fresh: Option<&PatInfo>,
    now: jiff::Timestamp,
    skew: SignedDuration,
) -> Vec<Finding> {
    let scopes = fresh.map_or(info.scopes.as_slice(), |p| p.scopes.as_slice());
    let expires = fresh.map_or(info.expires_at, |p| {
        p.expires_instant()
            .map(|at| policy::skew::to_local(at, skew))
    });
    let source = if fresh.is_some() {
        "GitLab says"
    } else {
        "recorded at login"
    };
    let mut out = Vec::new();
    if info.kind == TokenKind::PersonalAccessToken {
        out.push(scopes_finding(scopes, source));
    }
    out.push(renewal_finding(info.kind, scopes));
    out.extend(expiry_finding(info.kind, expires, now, skew, source));
    out
}

/// This machine's clock against GitLab's: a warning when they disagree by more than a
/// minute (`policy::skew`), from GitLab's answers now (`measured`) or, without one, as
/// recorded at the last login or renewal. Nothing to say when they agree.
pub(super) fn clock_finding(
    measured: Option<SignedDuration>,
    info: &GitLabInfo,
) -> Option<Finding> {
    let (skew, when) = match measured {
        Some(s) => (s, ""),
        None => (
            info.clock_skew_secs.map(SignedDuration::from_secs)?,
            " (measured at the last login or renewal)",
        ),
    };
    let warning = policy::skew::warning(skew)?;
    Some(
        Finding::warn("clock", format!("{warning}{when}")).fix(
            "set this machine's clock (NTP); meanwhile the helper corrects GitLab's times by the offset",
        ),
    )
}

/// Whether an access token's scopes let it pull and push.
fn scopes_finding(scopes: &[String], source: &str) -> Finding {
    let list = if scopes.is_empty() {
        "none".to_owned()
    } else {
        scopes.join(", ")
    };
    if !can_pull(scopes) {
        Finding::fail(
            "scopes",
            format!("{list} ({source}): no read_registry, cannot pull"),
        )
        .fix("create a token with read_registry and write_registry and log in again")
    } else if !can_push(scopes) {
        Finding::warn(
            "scopes",
            format!("{list} ({source}): no write_registry, can pull but not push"),
        )
        .fix("create a token with write_registry if you push")
    } else {
        Finding::pass("scopes", format!("{list} ({source}): pull and push"))
    }
}

/// Whether the token can renew itself: an access token by its scopes, other kinds never.
fn renewal_finding(kind: TokenKind, scopes: &[String]) -> Finding {
    match kind {
        TokenKind::PersonalAccessToken
            if crate::model::token::can_renew(TokenKind::PersonalAccessToken, scopes) =>
        {
            Finding::pass("renewal", "the token can rotate itself (api or self_rotate)")
        }
        TokenKind::PersonalAccessToken => Finding::warn(
            "renewal",
            "the token cannot renew itself (no api or self_rotate scope): when it expires you must create a new one",
        )
        .fix("create the next token with self_rotate"),
        TokenKind::DeployToken => Finding::warn(
            "renewal",
            "deploy tokens cannot be renewed or inspected through the API",
        ),
        TokenKind::OauthToken => Finding::warn("renewal", "OAuth access tokens expire after 2 hours")
            .fix("use an access token with self_rotate"),
        TokenKind::JobToken => Finding::warn(
            "renewal",
            "CI job tokens only work while their job runs",
        ),
        TokenKind::Password => Finding::warn(
            "renewal",
            "this looks like an account password: GitLab refuses passwords when two-factor authentication is on",
        )
        .fix("use an access token with read_registry, write_registry and self_rotate"),
    }
}

/// When the token expires (nothing to say for a non-PAT without a known expiry).
fn expiry_finding(
    kind: TokenKind,
    expires: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
    skew: SignedDuration,
    source: &str,
) -> Option<Finding> {
    let Some(at) = expires else {
        return (kind == TokenKind::PersonalAccessToken)
            .then(|| Finding::pass("expiry", format!("the token does not expire ({source})")));
    };
    let days = at.duration_since(now).as_hours().div_euclid(24);
    // The date GitLab shows (its clock).
    let date = policy::skew::gitlab_now(at, skew).strftime("%Y-%m-%d");
    Some(if at <= now {
        Finding::fail("expiry", format!("the token expired on {date} ({source})"))
            .fix("create a new token and log in again")
    } else if days < EXPIRY_WARNING_DAYS {
        Finding::warn(
            "expiry",
            format!("the token expires on {date}, in {days} days ({source})"),
        )
        .fix("create a new token before then (or let the helper rotate it)")
    } else {
        Finding::pass(
            "expiry",
            format!("the token expires on {date}, in {days} days ({source})"),
        )
    })
}

/// The registry token window: how long a registry token lives (`exp - iat`).
pub(super) fn window_finding(window: Result<Option<i64>, jwt::JwtError>) -> Finding {
    const CHECK: &str = "token window";
    match window {
        Err(e) => Finding::warn(CHECK, format!("cannot measure it: {e}")),
        Ok(None) => Finding::warn(
            CHECK,
            "cannot measure it: the registry token has no iat/exp claims",
        ),
        Ok(Some(secs)) if secs < SHORT_WINDOW_SECS => {
            let w = human_window(secs);
            Finding::warn(
                CHECK,
                format!(
                    "registry tokens live {w}: a push longer than {w} can fail with \"unauthorized: authentication required\" \
                     when a layer upload outlives the registry token"
                ),
            )
            .fix(format!("ask your GitLab admin to raise {WINDOW_SETTING}"))
        }
        Ok(Some(secs)) => Finding::pass(
            CHECK,
            format!(
                "registry tokens live {}: pushes shorter than that are safe",
                human_window(secs)
            ),
        ),
    }
}

fn human_window(secs: i64) -> String {
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::doctor::Status;
    use crate::commands::doctor::tests::{pat_info, statuses};
    use serde_json::json;

    #[test]
    fn token_checks() {
        let now = crate::clock::now();
        let full = pat_info(
            &["read_registry", "write_registry", "self_rotate"],
            Some(90),
        );
        let f = token_findings(&full, None, now, SignedDuration::ZERO);
        assert_eq!(
            statuses(&f),
            [
                ("scopes", Status::Pass),
                ("renewal", Status::Pass),
                ("expiry", Status::Pass)
            ]
        );
        let weak = pat_info(&["read_registry"], Some(10));
        let f = token_findings(&weak, None, now, SignedDuration::ZERO);
        assert_eq!(
            statuses(&f),
            [
                ("scopes", Status::Warn),
                ("renewal", Status::Warn),
                ("expiry", Status::Warn)
            ]
        );
        let expired = pat_info(&["api"], Some(-3));
        let f = token_findings(&expired, None, now, SignedDuration::ZERO);
        assert_eq!(f[2].status, Status::Fail);
        // GitLab's fresh answer wins over the recorded scopes.
        let fresh: PatInfo = serde_json::from_value(json!({
            "id": 1, "name": "n", "scopes": ["read_api"], "active": true, "expires_at": null
        }))
        .unwrap();
        let f = token_findings(&full, Some(&fresh), now, SignedDuration::ZERO);
        assert_eq!(f[0].status, Status::Warn, "{}", f[0].line());
        assert!(f[0].message.contains("GitLab says"));
    }

    #[test]
    fn clock_skew_is_a_warning_beyond_a_minute() {
        let mut info = pat_info(&["api"], Some(90));
        let min = SignedDuration::from_mins(1);
        assert_eq!(clock_finding(Some(min / 2), &info), None);
        assert_eq!(clock_finding(None, &info), None, "never measured");
        let f = clock_finding(Some(min * 10), &info).unwrap();
        assert_eq!(f.status, Status::Warn);
        assert!(
            f.line()
                .starts_with("WARN  clock: this machine is 10 min ahead of GitLab;"),
            "{}",
            f.line()
        );
        // Without a fresh measurement, the recorded one, said to be so.
        info.clock_skew_secs = Some(-3 * 3600);
        let f = clock_finding(None, &info).unwrap();
        assert_eq!(
            f.message,
            "this machine is 3 h behind GitLab (measured at the last login or renewal)"
        );
        // A fresh measurement wins over the recorded one.
        assert_eq!(clock_finding(Some(SignedDuration::ZERO), &info), None);
    }

    #[test]
    fn a_fresh_pat_expiry_is_read_on_gitlab_clock() {
        // The PAT dies at 00:00 UTC (GitLab) in 10 days; this machine is 3 h behind, so
        // here it dies at 21:00 the day before, and the date shown is GitLab's.
        let gitlab_now: jiff::Timestamp = "2030-05-01T12:00:00Z".parse().unwrap();
        let skew = -SignedDuration::from_hours(3);
        let now = policy::skew::to_local(gitlab_now, skew);
        let fresh: PatInfo = serde_json::from_value(json!({
            "id": 1, "name": "n", "scopes": ["api"], "active": true, "expires_at": "2030-05-11"
        }))
        .unwrap();
        let info = pat_info(&["api"], None);
        let f = token_findings(&info, Some(&fresh), now, skew);
        assert!(
            f[2].message
                .starts_with("the token expires on 2030-05-11, in 9 days"),
            "{}",
            f[2].line()
        );
        // One day before: 12 h left on either clock, however far this one is off.
        let fresh: PatInfo = serde_json::from_value(json!({
            "id": 1, "name": "n", "scopes": ["api"], "active": true, "expires_at": "2030-05-02"
        }))
        .unwrap();
        for skew in [
            SignedDuration::from_hours(3),
            -SignedDuration::from_hours(3),
        ] {
            let now = policy::skew::to_local(gitlab_now, skew);
            let f = token_findings(&info, Some(&fresh), now, skew);
            assert_eq!(f[2].status, Status::Warn, "{}", f[2].line());
            assert!(
                f[2].message.contains("2030-05-02, in 0 days"),
                "{}",
                f[2].line()
            );
        }
    }

    #[test]
    fn window_wording() {
        let f = window_finding(Ok(Some(300)));
        assert_eq!(f.status, Status::Warn);
        assert!(f.message.contains("live 5 min"), "{}", f.line());
        assert!(f.message.contains("unauthorized: authentication required"));
        assert!(f.fix.unwrap().contains("Authorization token duration"));
        let f = window_finding(Ok(Some(900)));
        assert_eq!(f.status, Status::Pass, "{}", f.line());
        assert_eq!(human_window(90), "1 min 30 s");
        assert_eq!(human_window(45), "45 s");
        assert_eq!(window_finding(Ok(None)).status, Status::Warn);
    }
}
