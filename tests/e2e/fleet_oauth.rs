//! Fleets (issue 17) with what the other fleet tests leave out: an OAuth grant (`login
//! --oauth`, device flow against the emulator) shared by a busy fleet at default settings,
//! alone and as a standby pair; a host's own Vault token close to its expiry (renewed,
//! never a hang) or expired (one line naming Vault, fast); and a `logout` on one host while
//! another holds a live lease.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use crate::support::fleet::*;
use crate::support::*;

const CLIENT: &str = "fleet-app";
const TOKEN_PATH: &str = "/oauth/token";
/// The default `min_validity`: what every hand-out promises when nothing is set.
const PROMISE: SignedDuration = SignedDuration::from_mins(60);

/// A fleet of three whose GitLab knows the OAuth application [`CLIENT`], host-1 logged in
/// with `login --oauth` (and, with `standby`, a second grant with `--standby`). Nothing
/// sets `min_validity`.
fn oauth_fleet(standby: bool) -> Option<Fleet> {
    let f = Fleet::start(3, 30)?;
    f.w.gl
        .update_config(|c| c.device_poll_interval = Duration::from_secs(1));
    f.w.gl
        .add_oauth_application(CLIENT, &["read_registry", "write_registry"]);
    let out = f.hosts[0].oauth_login(&f.w, CLIENT, &[]);
    assert_success(&out, "login --oauth on host-1");
    if standby {
        let out = f.hosts[0].oauth_login(&f.w, CLIENT, &["--standby"]);
        assert_success(&out, "login --oauth --standby on host-1");
    }
    for h in &f.hosts {
        assert_eq!(h.list().len(), 1, "{}: one registry for docker", h.id);
    }
    Some(f)
}

struct Handout {
    host: String,
    at: Timestamp,
    token: String,
}

/// What a busy fleet did: every hand-out, and what was wrong with one when it was made.
struct Run {
    handouts: Vec<Handout>,
    /// Hand-outs of a token GitLab no longer took.
    dead: Vec<String>,
    /// Hand-outs of a token that dies within the promise.
    short: Vec<String>,
    /// Every get's stderr.
    stderr: String,
}

impl Run {
    fn distinct(&self) -> usize {
        let mut tokens: Vec<&String> = self.handouts.iter().map(|h| &h.token).collect();
        tokens.sort();
        tokens.dedup();
        tokens.len()
    }

    /// Hand-outs whose token GitLab revoked (a refresh spends the old pair) before their
    /// promise ran out.
    fn cut(&self, f: &Fleet) -> Vec<String> {
        self.handouts
            .iter()
            .filter_map(|h| {
                let revoked = f.w.gl.token_info(&h.token)?.revoked_at?;
                (revoked < h.at + PROMISE)
                    .then(|| format!("{}: handed out {}, revoked {revoked}", h.host, h.at))
            })
            .collect()
    }
}

/// The first get on every host (a brand-new access token: never refreshed), then a get on
/// every host once a simulated minute for five simulated hours.
fn live_through(f: &mut Fleet) -> Run {
    let mut run = Run {
        handouts: Vec::new(),
        dead: Vec::new(),
        short: Vec::new(),
        stderr: String::new(),
    };
    f.w.gl.clear_requests();
    for step in 0..=5 * 60 {
        f.set_clock(SignedDuration::from_mins(step));
        for h in &f.hosts {
            let out = h.get();
            assert_success(&out, &format!("get on {} at minute {step}", h.id));
            let token = secret(&out);
            run.stderr.push_str(&stderr(&out));
            let at = f.w.gl.now();
            let info = f.w.gl.token_info(&token).expect("a token GitLab issued");
            let what = format!("{} at minute {step}", h.id);
            if !info.active {
                run.dead.push(what.clone());
            }
            if info.dies_at.is_some_and(|d| d < at + PROMISE) {
                run.short
                    .push(format!("{what}: dies at {:?}", info.dies_at));
            }
            run.handouts.push(Handout {
                host: h.id.clone(),
                at,
                token,
            });
        }
        if step == 0 {
            assert_eq!(
                refreshes(f).len(),
                0,
                "the first get on a host refreshed a brand-new access token"
            );
        }
    }
    run
}

/// The refresh requests GitLab saw since the run began, and their statuses.
fn refreshes(f: &Fleet) -> Vec<u16> {
    f.w.gl
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == TOKEN_PATH)
        .map(|r| r.status)
        .collect()
}

/// What every busy OAuth fleet must show: every hand-out live and keeping its promise, and
/// no refresh token presented twice (GitLab would answer invalid_grant).
fn assert_sound(f: &Fleet, run: &Run) {
    assert_eq!(run.dead, Vec::<String>::new(), "dead tokens handed out");
    assert_eq!(run.short, Vec::<String>::new(), "hand-outs short of 60 min");
    let refused: Vec<u16> = refreshes(f).into_iter().filter(|s| *s != 200).collect();
    assert_eq!(
        refused,
        Vec::<u16>::new(),
        "refreshes GitLab refused: a spent refresh token presented again"
    );
}

/// One OAuth grant shared by three busy hosts at default settings: one refresh per due
/// moment for the whole fleet (every token minted is the one the fleet hands out next),
/// never a spent refresh token again, every hand-out live for its 60 min.
#[test]
fn a_busy_oauth_fleet_at_default_settings_refreshes_once_per_due_moment() {
    let Some(mut f) = oauth_fleet(false) else {
        return;
    };
    let run = live_through(&mut f);
    assert_sound(&f, &run);
    let distinct = run.distinct();
    assert!(
        distinct >= 4,
        "only {distinct} access tokens over 5 h of 2 h tokens: refresh never ran"
    );
    assert_eq!(
        refreshes(&f).len(),
        distinct - 1,
        "refreshes for {distinct} distinct access tokens handed out"
    );
    // One grant cannot keep a busy fleet's promises (a refresh spends the old pair): the
    // cut is said, with the fix.
    assert!(!run.cut(&f).is_empty(), "expected cut hand-outs");
    assert!(
        run.stderr
            .contains(&format!("docker-credential-gitlab login {}", f.w.host))
            && run.stderr.contains("--standby"),
        "the cut was not announced with the fix: {}",
        run.stderr
    );
}

/// The same fleet with a standby pair (`login --oauth --standby`): no hand-out on any host
/// is cut by a refresh within its promise.
#[test]
fn a_busy_oauth_fleet_with_a_standby_pair_never_cuts_a_hand_out() {
    let Some(mut f) = oauth_fleet(true) else {
        return;
    };
    let run = live_through(&mut f);
    assert_sound(&f, &run);
    let distinct = run.distinct();
    assert!(
        distinct >= 4,
        "only {distinct} access tokens over 5 h of 2 h tokens: refresh never ran"
    );
    assert_eq!(run.cut(&f), Vec::<String>::new(), "cut hand-outs");
    assert!(!run.stderr.contains("--standby"), "{}", run.stderr);
    // Each grant refreshed in its turn, once per due moment: no more refreshes than
    // distinct access tokens handed out (both grants' first tokens came from login).
    let minted = refreshes(&f).len();
    assert!(
        minted <= distinct,
        "{minted} refreshes for {distinct} distinct access tokens handed out"
    );
}

/// A Vault token of the `fleet` policy living `ttl`, with `extra` options of `bao token create`.
fn vault_token(f: &Fleet, ttl: &str, extra: &[&str]) -> String {
    let ttl = format!("-ttl={ttl}");
    let mut args = vec!["token", "create", "-policy=fleet", &ttl, "-format=json"];
    args.extend_from_slice(extra);
    let v = f.bao.json(Some(f.bao.root_token()), &args, "");
    v["auth"]["client_token"].as_str().unwrap().to_owned()
}

/// `bao token lookup` of `token` by itself: its expiry, `None` once Vault refuses it.
fn vault_token_expiry(f: &Fleet, token: &str) -> Option<Timestamp> {
    let out = f
        .bao
        .run(Some(token), &["token", "lookup", "-format=json"], "");
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(v["data"]["expire_time"].as_str()?.parse().unwrap())
}

/// A renewable Vault token with a 30 s TTL (max 10 min), used across more than its TTL of
/// real time: every get exits 0 quickly, and the token is renewed (still valid at the end,
/// its expiry moved), never left to die.
#[test]
fn a_short_lived_renewable_vault_token_is_renewed_and_never_hangs() {
    let Some(mut f) = Fleet::logged_in(1, 30) else {
        return;
    };
    let token = vault_token(&f, "30s", &["-explicit-max-ttl=10m"]);
    let first = vault_token_expiry(&f, &token).expect("a fresh token");
    let i = f.add_host(VaultAuth::Token(token.clone()));
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(38) {
        let (out, took) = f.hosts[i].timed_get();
        let at = start.elapsed().as_secs();
        assert_success(&out, &format!("get {n} at +{at} s"));
        assert_eq!(secret(&out), f.w.token, "get {n} at +{at} s");
        assert!(took < Duration::from_secs(5), "get {n} took {took:?}");
        n += 1;
        std::thread::sleep(Duration::from_secs(3));
    }
    let last = vault_token_expiry(&f, &token)
        .expect("the Vault token died: it was never renewed (auth/token/renew-self)");
    assert!(
        last > first + SignedDuration::from_secs(5),
        "the Vault token's expiry did not move: {first} -> {last}"
    );
}

/// A Vault token that expired (a non-renewable one outlived, or one this host never saw
/// alive): get exits 1 within 5 s with one line naming Vault, its address and the fix.
#[test]
fn an_expired_vault_token_is_one_line_naming_vault_and_the_fix() {
    let Some(mut f) = Fleet::logged_in(1, 30) else {
        return;
    };
    let outlived = vault_token(&f, "4s", &["-renewable=false"]);
    let a = f.add_host(VaultAuth::Token(outlived.clone()));
    assert_eq!(secret(&f.hosts[a].get()), f.w.token, "while it lived");
    let never_seen = vault_token(&f, "1s", &[]);
    let b = f.add_host(VaultAuth::Token(never_seen.clone()));
    wait_until(
        "both Vault tokens to expire",
        Duration::from_secs(15),
        || {
            vault_token_expiry(&f, &outlived).is_none()
                && vault_token_expiry(&f, &never_seen).is_none()
        },
    );
    for i in [a, b] {
        let h = &f.hosts[i];
        let (out, took) = h.timed_get();
        assert!(took < Duration::from_secs(5), "{}: get took {took:?}", h.id);
        let line = assert_one_line_error(&out, &format!("get on {} with an expired token", h.id));
        assert!(line.contains("Vault"), "{}: {line}", h.id);
        assert!(line.contains(&f.bao.addr()), "{}: {line}", h.id);
        assert!(
            line.contains("VAULT_TOKEN") && line.contains("log in again"),
            "{}: the line does not say the fix: {line}",
            h.id
        );
    }
}

/// host-1 logs in, host-2 hands the token out (a live lease), host-1 logs out: the
/// credential is gone for every host. A new login on host-3 serves every host again, and
/// host-2 leases the new token afresh.
#[test]
fn a_logout_while_another_host_holds_a_live_lease_is_fleet_wide() {
    let Some(f) = Fleet::logged_in(3, 30) else {
        return;
    };
    let leases = || f.bao.kv_list(&format!("leases/{}", enc(&f.w.host)));
    assert_eq!(secret(&f.hosts[1].get()), f.w.token);
    assert!(leases().contains(&"host-2".to_owned()), "{:?}", leases());

    assert_success(&f.hosts[0].logout(), "logout on host-1");
    assert!(f.record().is_none(), "the record outlived the logout");
    for h in &f.hosts {
        let out = h.get();
        let line = assert_one_line_error(&out, &format!("get on {} after logout", h.id));
        assert!(line.contains("credentials not found"), "{}: {line}", h.id);
        assert!(h.list().is_empty(), "{}: {:?}", h.id, h.list());
    }

    let second = f.w.pat(RENEWABLE, 30);
    assert_success(&f.hosts[2].login(&second, &[]), "login on host-3");
    let since = f.w.gl.now();
    for h in &f.hosts {
        assert_eq!(
            secret(&h.get()),
            second,
            "get on {} after the new login",
            h.id
        );
    }
    let lease = f
        .bao
        .kv_get(&format!("leases/{}/host-2", enc(&f.w.host)))
        .expect("host-2 published no lease for the new token");
    let at: Timestamp = lease["at"].as_str().unwrap().parse().unwrap();
    assert!(
        at >= since - SignedDuration::from_secs(5),
        "host-2's lease is the old record's ({at}, new login at {since}): {lease}"
    );
}
