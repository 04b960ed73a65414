//! The renewal steps, one at a time, with a fake method and a temporary data directory on
//! the in-memory store. The end-to-end suites drive the same frame against the GitLab
//! emulator; these pin each step's own rule.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use jiff::SignedDuration;

use super::*;
use crate::model::TokenKind;
use crate::records::NewCredential;
use crate::secret::ExposeSecret;
use crate::store::{Backend, StoreChoice};

/// A method whose answers the test sets, counting the requests it would have made.
struct Fake {
    confirms_first: bool,
    check: RefCell<Vec<Check>>,
    outcome: RefCell<Option<Outcome>>,
    checks: Cell<u32>,
    renewals: Cell<u32>,
}

impl Fake {
    fn new(confirms_first: bool, checks: Vec<Check>, outcome: Outcome) -> Fake {
        Fake {
            confirms_first,
            check: RefCell::new(checks),
            outcome: RefCell::new(Some(outcome)),
            checks: Cell::new(0),
            renewals: Cell::new(0),
        }
    }
}

impl Method for Fake {
    type Plan = ();

    fn confirms_first(&self) -> bool {
        self.confirms_first
    }

    fn check(&self, _: &Http, _: &Url, _: &Secret) -> Check {
        self.checks.set(self.checks.get() + 1);
        self.check.borrow_mut().remove(0)
    }

    fn plan(&self, _: &GitLabInfo, _: Promise) -> Result<(), RenewError> {
        Ok(())
    }

    fn renew(&self, _: &Http, _: &Url, _: &GitLabInfo, _: &Secret, _: ()) -> Outcome {
        self.renewals.set(self.renewals.get() + 1);
        self.outcome.borrow_mut().take().expect("renewed once")
    }
}

fn info(token_id: u64) -> GitLabInfo {
    GitLabInfo {
        scopes: vec!["self_rotate".into()],
        token_id: Some(token_id),
        expires_at: Some(crate::clock::now() + SignedDuration::from_hours(24)),
        ..GitLabInfo::new("https://gitlab.example", TokenKind::PersonalAccessToken)
    }
}

/// A data directory holding a renewable token `old` for `host` (unique per test: the
/// memory store is shared by the test process).
fn world(host: &str) -> (tempfile::TempDir, Records, RegistryHost, Entry) {
    let dir = tempfile::tempdir().unwrap();
    let records = Records::at(dir.path());
    let host = RegistryHost::parse(host).unwrap();
    records
        .save(
            StoreChoice::Only(Backend::Memory),
            NewCredential {
                host: &host,
                server_url: host.as_str(),
                username: "alice",
                secret: &Secret::from("old"),
                gitlab: Some(info(1)),
            },
        )
        .unwrap();
    let entry = records.held(&host).unwrap().unwrap().entry;
    (dir, records, host, entry)
}

fn promise(hard: bool) -> Promise {
    Promise {
        min_validity: SignedDuration::from_mins(60),
        early_renewal: SignedDuration::from_hours(24 * 7),
        hard,
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(15)
}

fn run(flight: &Flight<'_>, method: &Fake, hard: bool) -> Result<Renewed, RenewError> {
    let call = flight.call().unwrap();
    flight.run(&call, method, promise(hard))
}

#[test]
fn claim_sees_a_renewal_another_process_finished() {
    let (_d, records, host, seen) = world("claim.renew.example");
    let flight = Flight::claim(&records, &host, &seen, soon()).unwrap();
    assert!(!flight.changed);
    drop(flight);
    records
        .commit_renewal(
            Duration::from_secs(1),
            &host,
            &seen,
            &Secret::from("new"),
            info(2),
        )
        .unwrap();
    let flight = Flight::claim(&records, &host, &seen, soon()).unwrap();
    assert!(flight.changed);
    let renewed = flight.already_renewed();
    assert_eq!(renewed.secret.expose_secret(), "new");
    assert!(!renewed.rotated_here);
}

#[test]
fn a_second_claim_waits_for_the_first_then_says_busy() {
    let (_d, records, host, seen) = world("busy.renew.example");
    let _first = Flight::claim(&records, &host, &seen, soon()).unwrap();
    let start = Instant::now();
    let deadline = Instant::now() + Duration::from_millis(400);
    let err = Flight::claim(&records, &host, &seen, deadline)
        .err()
        .unwrap();
    assert!(matches!(err, RenewError::Busy { .. }), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[test]
fn a_renewal_stores_the_new_token_and_closes_its_journal() {
    let (_d, records, host, seen) = world("happy.renew.example");
    let flight = Flight::claim(&records, &host, &seen, soon()).unwrap();
    let fake = Fake::new(
        true,
        vec![Check::Active],
        Outcome::Renewed {
            secret: Secret::from("new"),
            info: Box::new(info(2)),
        },
    );
    let renewed = run(&flight, &fake, false).unwrap();
    assert!(renewed.rotated_here);
    assert_eq!((fake.checks.get(), fake.renewals.get()), (1, 1));
    assert_eq!(
        records
            .secret(&host, &renewed.entry)
            .unwrap()
            .unwrap()
            .expose_secret(),
        "new"
    );
    assert!(!records.journal_open(&flight.group));
}

#[test]
fn a_method_that_need_not_confirm_asks_gitlab_only_for_an_open_journal() {
    let (_d, records, host, seen) = world("lazy.renew.example");
    let flight = Flight::claim(&records, &host, &seen, soon()).unwrap();
    flight
        .confirm(false, || panic!("no journal: GitLab is not asked"))
        .unwrap();
    let fake = Fake::new(false, vec![], Outcome::Refused("429".into()));
    let err = run(&flight, &fake, false).unwrap_err();
    assert_eq!((fake.checks.get(), fake.renewals.get()), (0, 1));
    assert!(err.old_secret_still_good(), "{err}");
    assert!(
        !records.journal_open(&flight.group),
        "a clean no closes the journal"
    );
}

#[test]
fn confirm_never_presents_a_token_rotated_elsewhere() {
    let (_d, records, host, seen) = world("elsewhere.renew.example");
    let flight = Flight::claim(&records, &host, &seen, soon()).unwrap();
    let fake = Fake::new(
        true,
        vec![Check::Revoked("revoked".into())],
        Outcome::NotSent(String::new()),
    );
    let err = run(&flight, &fake, false).unwrap_err();
    assert!(matches!(err, RenewError::RevokedElsewhere { .. }), "{err}");
    assert_eq!(fake.renewals.get(), 0);
}

#[test]
fn an_open_journal_is_resolved_before_anything_else() {
    let (_d, records, host, seen) = world("journal.renew.example");
    let flight = Flight::claim(&records, &host, &seen, soon()).unwrap();
    records
        .open_journal(&flight.group, Some(1), seen.stored_at)
        .unwrap();
    // Still settling: the old token may be handed out, but not renewed again yet.
    let fake = Fake::new(false, vec![Check::Active], Outcome::NotSent(String::new()));
    let err = run(&flight, &fake, false).unwrap_err();
    assert!(err.to_string().contains("still settling"), "{err}");
    assert_eq!((fake.checks.get(), fake.renewals.get()), (1, 0));
    // Revoked with a journal: the renewal happened and its answer was lost.
    let fake = Fake::new(
        false,
        vec![Check::Revoked(String::new())],
        Outcome::NotSent(String::new()),
    );
    let err = run(&flight, &fake, false).unwrap_err();
    assert!(matches!(err, RenewError::Lost { .. }), "{err}");
    // GitLab cannot say: unresolved, never "lost", and the journal stays.
    let fake = Fake::new(
        false,
        vec![Check::Unknown("503".into())],
        Outcome::NotSent(String::new()),
    );
    let err = run(&flight, &fake, false).unwrap_err();
    assert!(matches!(err, RenewError::Unresolved { .. }), "{err}");
    assert!(records.journal_open(&flight.group));
}

#[test]
fn a_hand_out_that_started_meanwhile_stops_an_early_renewal_but_not_a_hard_one() {
    let (_d, records, host, seen) = world("lease.renew.example");
    records
        .record_handout(&host, crate::clock::now(), SignedDuration::from_mins(60))
        .unwrap();
    let flight = Flight::claim(&records, &host, &seen, soon()).unwrap();
    let renewed = || Outcome::Renewed {
        secret: Secret::from("new"),
        info: Box::new(info(2)),
    };
    let fake = Fake::new(true, vec![Check::Active], renewed());
    let err = run(&flight, &fake, false).unwrap_err();
    assert!(err.to_string().contains("a push started"), "{err}");
    assert_eq!(fake.renewals.get(), 0);
    assert!(!records.journal_open(&flight.group));
    let fake = Fake::new(true, vec![Check::Active], renewed());
    assert!(run(&flight, &fake, true).unwrap().rotated_here);
}

#[test]
fn an_ambiguous_answer_keeps_the_journal_and_asks_again() {
    let (_d, records, host, seen) = world("unknown.renew.example");
    let flight = Flight::claim(&records, &host, &seen, soon()).unwrap();
    let fake = Fake::new(
        true,
        vec![Check::Active, Check::Revoked("gone".into())],
        Outcome::Unknown("502".into()),
    );
    let err = run(&flight, &fake, false).unwrap_err();
    assert!(matches!(err, RenewError::Lost { .. }), "{err}");
    assert!(records.journal_open(&flight.group), "the journal stays");
    let fake = Fake::new(
        true,
        vec![Check::Active, Check::Active],
        Outcome::Unknown("502".into()),
    );
    // (the journal from above is older than nothing: settling applies)
    records.close_journal(&flight.group);
    let err = run(&flight, &fake, false).unwrap_err();
    assert!(
        err.old_secret_still_good(),
        "still active: the old token serves: {err}"
    );
    assert!(records.journal_open(&flight.group));
}

#[test]
fn a_rotate_refused_with_401_says_the_token_is_dead() {
    let (_d, records, host, seen) = world("unauthorized.renew.example");
    let flight = Flight::claim(&records, &host, &seen, soon()).unwrap();
    let fake = Fake::new(
        true,
        vec![Check::Active],
        Outcome::Unauthorized("GitLab answered 401: 401 Unauthorized".into()),
    );
    let err = run(&flight, &fake, false).unwrap_err();
    assert!(matches!(err, RenewError::Unauthorized { .. }), "{err}");
    assert!(err.dead_token().is_some());
    assert!(!err.old_secret_still_good(), "never handed out again");
    assert!(!records.journal_open(&flight.group), "a clean no");
}

/// A fleet whose commit of the renewed token does not reach Vault (here: Vault refuses a
/// body that large; in life a timeout, a failover, a 5xx) while the next write does. The
/// new token is only in this host's `kept/`; the record must keep the fleet's journal so
/// that no other host serves the old, rotated token as if nothing had happened.
#[test]
fn a_fleet_commit_that_fails_keeps_the_fleets_journal() {
    let Some(vault) = crate::records::fleet::tests::DevVault::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (vault.host("a", tmp.path()), vault.host("b", tmp.path()));
    let host = RegistryHost::parse("commit-fails.fleet.example").unwrap();
    a.save(
        StoreChoice::Only(Backend::Vault),
        NewCredential {
            host: &host,
            server_url: host.as_str(),
            username: "alice",
            secret: &Secret::from("old"),
            gitlab: Some(info(1)),
        },
    )
    .unwrap();
    let seen = a.held(&host).unwrap().unwrap().entry;
    let flight = Flight::claim(&a, &host, &seen, soon()).unwrap();
    // More than Vault's default max_request_size (32 MiB): the commit's write fails.
    let huge = "n".repeat(33 << 20);
    let fake = Fake::new(
        true,
        vec![Check::Active],
        Outcome::Renewed {
            secret: Secret::from(huge),
            info: Box::new(info(2)),
        },
    );
    let renewed = run(&flight, &fake, false).unwrap();
    assert_eq!(fake.renewals.get(), 1);
    assert!(renewed.rotated_here);
    assert!(
        a.kept_exists(&flight.group),
        "the minted token is kept here"
    );
    drop(flight);
    // Host b: the record still says "old", and GitLab has rotated it. It must see that a
    // renewal is unresolved, not a settled record to hand out.
    let held = b.held(&host).unwrap().unwrap();
    assert_eq!(
        b.secret(&host, &held.entry)
            .unwrap()
            .unwrap()
            .expose_secret(),
        "old"
    );
    assert!(
        b.journal_open(&host),
        "the fleet's journal was closed while the new token is only on host a"
    );
}
