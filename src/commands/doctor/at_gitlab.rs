//! Checks 3, 4 and 7 for a stored credential, after Docker's side (`docker`): the secret
//! store answers and holds the secret; the registry still sends clients to the GitLab
//! recorded at login (the token is only ever sent there); GitLab's `/jwt/auth` accepts the
//! credential. A 403 there is told apart: an IP ban, a token without registry scope, or a
//! proxy that strips the `Authorization` header (GitLab then answers exactly as it does to
//! an anonymous request). The token's own facts come from `token`.

use reqwest::Url;

use super::docker::docker_config_findings;
use super::token::{clock_finding, token_findings, window_finding};
use super::{Finding, Net};
use crate::BINARY_NAME;
use crate::datadir::LOCK_DEADLINE;
use crate::env::Env;
use crate::gitlab::http::{Http, check_transport, redact, same_base};
use crate::gitlab::{self, Challenge, GitLabError, JwtAuth, JwtOutcome, PatInfo, PatSelf, jwt};
use crate::model::stored_secret::handed_out;
use crate::model::token::can_pull;
use crate::model::{GitLabInfo, TokenKind};
use crate::policy::skew;
use crate::records::{Entry, Records, Revoked};
use crate::registry::RegistryHost;
use crate::secret::Secret;

pub(super) fn check_registry(
    env: &Env,
    host: &RegistryHost,
    records: &Records,
    entry: Option<&Entry>,
    net: &mut Net,
) -> Vec<Finding> {
    let mut out = docker_config_findings(env, host);
    let Some(entry) = entry else {
        out.push(
            Finding::fail("credential", format!("no credential is stored for {host}"))
                .fix(format!("log in with {BINARY_NAME} login {host}")),
        );
        return out;
    };

    const STORE: &str = "store";
    let secret = match records.load(host) {
        // An OAuth entry stores its token pair; docker gets (and GitLab sees) the access token.
        Ok(Some((e, secret))) => {
            let kind = e.gitlab.as_ref().map(|g| g.kind);
            let what = match kind {
                Some(TokenKind::OauthToken) => "token pair",
                _ => "secret",
            };
            out.push(Finding::pass(
                STORE,
                format!("the {} store answers and holds the {what}", entry.store),
            ));
            handed_out(kind, &secret)
        }
        Ok(None) => {
            out.push(
                Finding::fail(
                    STORE,
                    format!(
                        "the state file lists {host} but the {} store holds no secret for it",
                        entry.store
                    ),
                )
                .fix(format!("log in again with {BINARY_NAME} login {host}")),
            );
            return out;
        }
        Err(e) => {
            out.push(Finding::fail(STORE, e.to_string()));
            return out;
        }
    };

    // Known dead: never sent to GitLab again (failed logins can get this IP banned).
    if let Some(mark) = entry.revoked() {
        out.push(revoked_finding(host, &mark));
        return out;
    }
    let Some(info) = &entry.gitlab else {
        out.push(
            Finding::warn(
                "gitlab",
                "stored by docker login: GitLab instance unknown, so the token cannot be checked",
            )
            .fix(format!("run {BINARY_NAME} login {host} to enable checks")),
        );
        return out;
    };

    let http = match net.get() {
        Ok(h) => h,
        Err(e) => {
            let now = crate::clock::now();
            return stop_with_recorded_facts(out, Finding::fail("gitlab", e), info, now);
        }
    };
    let (findings, dead) = check_at_gitlab(http, host, &entry.username, &secret, info);
    out.extend(findings);
    out.extend(dead.and_then(|reason| mark_dead(records, host, entry, reason)));
    out
}

/// Learnt here that the token is dead: marked, so that from now on `get` refuses it before
/// any request. The FAIL that says so, once marked.
fn mark_dead(
    records: &Records,
    host: &RegistryHost,
    entry: &Entry,
    reason: &str,
) -> Option<Finding> {
    records
        .mark_revoked(LOCK_DEADLINE, host, entry, reason)
        .ok()?
        .then(|| records.held(host).ok().flatten()?.entry.revoked())
        .flatten()
        .map(|mark| revoked_finding(host, &mark))
}

/// The FAIL for a token known to be rotated or revoked elsewhere.
fn revoked_finding(host: &RegistryHost, mark: &Revoked) -> Finding {
    Finding::fail(
        "revoked",
        format!(
            "the token was rotated or revoked elsewhere ({}; learnt at {}); get refuses it",
            mark.reason,
            mark.learnt_at()
        ),
    )
    .fix(format!(
        "log in again with the current token, or create a new one: {BINARY_NAME} login {host}"
    ))
}

/// Whether GitLab's answers say the stored token is dead (not merely expired, and not an
/// OAuth access token, which its refresh token renews): the reason it is marked with.
fn learnt_dead(
    jwt: &Result<JwtAuth, GitLabError>,
    pat: &PatAnswer,
    info: &GitLabInfo,
    now: jiff::Timestamp,
) -> Option<&'static str> {
    let refused = matches!(jwt, Ok(JwtAuth::Unauthorized(_)));
    let expired = info.expires_at.is_some_and(|t| t <= now);
    let pat_alive_or_expired = match pat {
        Some(Ok(PatSelf::Pat(p))) => !p.revoked,
        Some(Ok(PatSelf::Unauthorized(reason))) => reason.to_ascii_lowercase().contains("expired"),
        _ => false,
    };
    (refused && !expired && !pat_alive_or_expired && info.kind != TokenKind::OauthToken)
        .then_some("GitLab's /jwt/auth refused it with 401")
}

/// Ends the checks after `failure`: GitLab cannot be asked, so the token's facts are the
/// ones recorded at login.
fn stop_with_recorded_facts(
    mut out: Vec<Finding>,
    failure: Finding,
    info: &GitLabInfo,
    now: jiff::Timestamp,
) -> Vec<Finding> {
    out.push(failure);
    out.extend(clock_finding(None, info));
    out.extend(token_findings(info, None, now, skew::recorded(info)));
    out
}

/// What GitLab's token API said about an access token (`None`: not asked).
type PatAnswer = Option<Result<PatSelf, GitLabError>>;

/// The checks at GitLab, and why the token is dead when GitLab's answers say it is.
fn check_at_gitlab(
    http: &Http,
    host: &RegistryHost,
    username: &str,
    secret: &Secret,
    info: &GitLabInfo,
) -> (Vec<Finding>, Option<&'static str>) {
    let now = crate::clock::now();
    let (challenge, gitlab_url) = match trusted_challenge(http, host, info) {
        Ok(found) => found,
        Err(failure) => {
            return (
                stop_with_recorded_facts(Vec::new(), failure, info, now),
                None,
            );
        }
    };
    let mut out = vec![Finding::pass(
        "registry",
        format!(
            "{host} sends clients to {}, the GitLab recorded at login",
            redact(&challenge.realm)
        ),
    )];

    let jwt = gitlab::jwt_auth(http, &challenge, username, secret, None);
    let reachable = !matches!(
        jwt,
        Err(GitLabError::Timeout { .. }
            | GitLabError::Connect { .. }
            | GitLabError::Network { .. })
    );
    // Fresh facts for access tokens (any PAT scope may call this endpoint).
    let pat = (reachable && info.kind == TokenKind::PersonalAccessToken)
        .then(|| gitlab::personal_access_token_self(http, &gitlab_url, secret));
    let dead = learnt_dead(&jwt, &pat, info, now);
    let (jwt_finding, registry_token) = judge_jwt_auth(http, host, &challenge, jwt, &pat);
    out.push(jwt_finding);

    let fresh = match judge_pat_answer(pat, host) {
        Ok((fresh, note)) => {
            out.extend(note);
            fresh
        }
        Err(refused) => {
            out.push(refused);
            return (out, dead);
        }
    };
    // GitLab's answers above carry its clock (`Date`): PAT expiry dates and registry token
    // times are on it.
    let measured = http.skew(&gitlab_url);
    out.extend(clock_finding(measured, info));
    let skew = measured.unwrap_or_else(|| skew::recorded(info));
    out.extend(token_findings(info, fresh.as_ref(), now, skew));
    if let Some(t) = registry_token {
        out.push(window_finding(
            jwt::time_claims(&t).map(|c| c.window_secs()),
        ));
    }
    (out, dead)
}

/// The registry's token realm, if it is the GitLab recorded at login (the only place the
/// token may go), with that GitLab's URL.
fn trusted_challenge(
    http: &Http,
    host: &RegistryHost,
    info: &GitLabInfo,
) -> Result<(Challenge, Url), Finding> {
    let challenge =
        gitlab::discover(http, host).map_err(|e| Finding::fail("registry", e.to_string()))?;
    let gitlab_url = realm_matches(&challenge, info)?;
    Ok((challenge, gitlab_url))
}

/// The finding for GitLab's answer at `/jwt/auth`, and the registry token it issued.
fn judge_jwt_auth(
    http: &Http,
    host: &RegistryHost,
    challenge: &Challenge,
    jwt: Result<JwtAuth, GitLabError>,
    pat: &PatAnswer,
) -> (Finding, Option<String>) {
    const JWT: &str = "/jwt/auth";
    match jwt {
        Ok(JwtAuth::Token(t)) => (
            Finding::pass(
                JWT,
                "GitLab accepts the credential and issues registry tokens",
            ),
            Some(t),
        ),
        Ok(JwtAuth::Unauthorized(_)) => (
            Finding::fail(
                JWT,
                "GitLab refused the credential (401): it is wrong, expired or revoked",
            )
            .fix(format!(
                "create a new token with read_registry, write_registry and self_rotate and log in again: {BINARY_NAME} login {host}"
            )),
            None,
        ),
        Ok(JwtAuth::Denied(message)) => {
            let with_auth = JwtOutcome {
                status: 403,
                message,
            };
            let anonymous = gitlab::anonymous_jwt_auth(http, challenge);
            let token_ok = match pat {
                Some(Ok(PatSelf::Pat(p))) => p.active && !p.revoked && can_pull(&p.scopes),
                _ => false,
            };
            (explain_forbidden(&with_auth, &anonymous, token_ok), None)
        }
        Err(e) => (Finding::fail(JWT, e.to_string()), None),
    }
}

/// GitLab's fresh facts about the token, with a note when there are none to show. `Err`:
/// GitLab refused the token, which ends the checks.
fn judge_pat_answer(
    pat: PatAnswer,
    host: &RegistryHost,
) -> Result<(Option<PatInfo>, Option<Finding>), Finding> {
    match pat {
        Some(Ok(PatSelf::Pat(p))) => Ok((Some(p), None)),
        Some(Ok(PatSelf::Unauthorized(reason))) => {
            Err(
                Finding::fail("token", format!("GitLab says: {reason}")).fix(format!(
                    "create a new token and log in again: {BINARY_NAME} login {host}"
                )),
            )
        }
        Some(Ok(PatSelf::NotPat)) => Ok((
            None,
            Some(Finding::warn(
                "token",
                "GitLab no longer describes the credential as an access token; showing what was recorded at login",
            )),
        )),
        Some(Err(e)) => Ok((
            None,
            Some(Finding::warn(
                "token",
                format!(
                    "cannot ask GitLab about the token ({e}); showing what was recorded at login"
                ),
            )),
        )),
        None => Ok((None, None)),
    }
}

/// The token may only go to the GitLab recorded at login; returns that GitLab's URL.
fn realm_matches(challenge: &Challenge, info: &GitLabInfo) -> Result<Url, Finding> {
    const CHECK: &str = "registry";
    let realm = redact(&challenge.realm);
    let recorded = Url::parse(&info.url).ok();
    let realm_gitlab = challenge.gitlab_url();
    match (realm_gitlab, recorded) {
        (Some(now), Some(recorded)) if same_base(&now, &recorded) => {
            check_transport(&challenge.realm).map_err(|e| Finding::fail(CHECK, e.to_string()))?;
            Ok(now)
        }
        _ => Err(Finding::fail(
            CHECK,
            format!(
                "the registry now points at another GitLab (sends clients to {realm}, recorded at login: {}); refusing to send the token",
                info.url
            ),
        )
        .fix("if the move is expected, log in again with a token from the new GitLab")),
    }
}

/// Tells apart the reasons for a 403 at `/jwt/auth`. `token_ok`: GitLab's token API accepts
/// the token and lists a registry read scope.
///
/// GitLab answers an anonymous `/jwt/auth` request without a scope with the same 403
/// "access forbidden" as a token without registry scope. So if the answer with our
/// credential is identical to the answer without any, while the token itself is fine, the
/// credential never reached GitLab: something between us and GitLab dropped the
/// `Authorization` header (GitLab's "docker login fails with access forbidden"
/// troubleshooting case).
fn explain_forbidden(with_auth: &JwtOutcome, anonymous: &JwtOutcome, token_ok: bool) -> Finding {
    const CHECK: &str = "/jwt/auth";
    let said = format!("403: {}", with_auth.message);
    if with_auth
        .message
        .contains("Too many failed authentication attempts")
    {
        return Finding::fail(
            CHECK,
            format!("GitLab has banned this IP address after failed logins ({said})"),
        )
        .fix("wait for the ban to expire and make sure no job or client retries an old token");
    }
    let same_as_anonymous = anonymous.status == with_auth.status
        && anonymous.message == with_auth.message
        && with_auth.message.contains("access forbidden");
    if same_as_anonymous && token_ok {
        return Finding::fail(
            CHECK,
            format!(
                "GitLab treated the request as anonymous ({said}, exactly what it answers without credentials) although its token API accepts the token with registry scope: \
                 a proxy between you and GitLab probably strips the Authorization header on /jwt/auth \
                 (GitLab docs: \"docker login command fails with access forbidden\")"
            ),
        )
        .fix("configure the proxy to pass the Authorization header through to /jwt/auth unchanged");
    }
    if token_ok {
        return Finding::fail(
            CHECK,
            format!(
                "GitLab refuses registry access ({said}) although the token has registry scope: the account may be blocked or have lost access"
            ),
        )
        .fix("check the account's state and project membership in GitLab");
    }
    Finding::fail(
        CHECK,
        format!("GitLab accepts the credential but refuses registry access ({said}): the token lacks read_registry"),
    )
    .fix("create a token with read_registry (pull) and write_registry (push) and log in again")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::doctor::Status;
    use crate::commands::doctor::tests::pat_info;

    const FORBIDDEN: &str = "access forbidden";

    fn outcome(status: u16, message: &str) -> JwtOutcome {
        JwtOutcome {
            status,
            message: message.into(),
        }
    }

    #[test]
    fn stripped_authorization_header_is_recognised() {
        let f = explain_forbidden(&outcome(403, FORBIDDEN), &outcome(403, FORBIDDEN), true);
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.message.contains("treated the request as anonymous"),
            "{}",
            f.line()
        );
        assert!(
            f.message.contains("strips the Authorization header"),
            "{}",
            f.line()
        );
        assert!(f.fix.as_deref().unwrap().contains("proxy"));
    }

    #[test]
    fn other_forbidden_cases() {
        // The token API does not vouch for the token: the usual missing scope.
        let f = explain_forbidden(&outcome(403, FORBIDDEN), &outcome(403, FORBIDDEN), false);
        assert!(f.message.contains("lacks read_registry"), "{}", f.line());
        // Anonymous answers differently (e.g. a public-pull-only instance): not the proxy.
        let f = explain_forbidden(&outcome(403, FORBIDDEN), &outcome(200, ""), true);
        assert!(!f.message.contains("proxy"), "{}", f.line());
        // Unreachable anonymous request: no proxy claim either.
        let f = explain_forbidden(&outcome(403, FORBIDDEN), &outcome(0, FORBIDDEN), true);
        assert!(!f.message.contains("proxy"), "{}", f.line());
        let f = explain_forbidden(
            &outcome(403, "Too many failed authentication attempts from this IP"),
            &outcome(403, "Too many failed authentication attempts from this IP"),
            true,
        );
        assert!(f.message.contains("banned"), "{}", f.line());
    }

    #[test]
    fn a_401_at_jwt_auth_marks_a_token_dead_unless_it_merely_expired() {
        let now = crate::clock::now();
        let refused = Ok(JwtAuth::Unauthorized("401 Unauthorized".into()));
        let pat = |v: serde_json::Value| Some(Ok(PatSelf::Pat(serde_json::from_value(v).unwrap())));
        let live = pat(serde_json::json!({"id": 1, "name": "t", "active": true}));
        let revoked = pat(serde_json::json!({"id": 1, "name": "t", "revoked": true}));
        let expired = pat(serde_json::json!({"id": 1, "name": "t"}));
        let info = pat_info(&["self_rotate"], Some(30));
        assert!(learnt_dead(&refused, &None, &info, now).is_some());
        assert!(learnt_dead(&refused, &revoked, &info, now).is_some());
        let says = |r: &str| Some(Ok(PatSelf::Unauthorized(r.into())));
        assert!(learnt_dead(&refused, &says("Token was revoked"), &info, now).is_some());
        // GitLab's token API says it is alive or only expired: not known dead.
        assert!(learnt_dead(&refused, &live, &info, now).is_none());
        assert!(learnt_dead(&refused, &expired, &info, now).is_none());
        assert!(learnt_dead(&refused, &says("Token has expired"), &info, now).is_none());
        // Expired by the date recorded at login.
        let past = pat_info(&["self_rotate"], Some(-2));
        assert!(learnt_dead(&refused, &None, &past, now).is_none());
        // An OAuth access token: its refresh token renews it.
        let oauth = GitLabInfo {
            kind: TokenKind::OauthToken,
            ..info.clone()
        };
        assert!(learnt_dead(&refused, &None, &oauth, now).is_none());
        // Accepted, refused with 403, or not reached: nothing learnt.
        let ok = Ok(JwtAuth::Token("t".into()));
        assert!(learnt_dead(&ok, &None, &info, now).is_none());
        let denied = Ok(JwtAuth::Denied("access forbidden".into()));
        assert!(learnt_dead(&denied, &None, &info, now).is_none());
    }

    #[test]
    fn realm_must_match_the_recorded_gitlab() {
        let info = pat_info(&[], None);
        let same = Challenge {
            realm: Url::parse("https://gitlab.example.com/jwt/auth").unwrap(),
            service: "container_registry".into(),
        };
        assert!(realm_matches(&same, &info).is_ok());
        let moved = Challenge {
            realm: Url::parse("https://evil.example/jwt/auth").unwrap(),
            service: "container_registry".into(),
        };
        let f = realm_matches(&moved, &info).unwrap_err();
        assert!(
            f.message.contains("refusing to send the token"),
            "{}",
            f.line()
        );
    }
}
