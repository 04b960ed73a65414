//! A long push, side by side: the real registry in token mode behind a bandwidth-limiting
//! TCP proxy, a skopeo push slowed to outlast the personal access token it starts with
//! (the token dies at +20 s, the push takes ~80 s).
//!
//! skopeo asks the credential helper once per image, then re-exchanges that same Basic
//! credential at GitLab's `/jwt/auth` after 60 s (GitLab sends no `expires_in`), lazily at
//! the next request, and never retries a 401. So:
//!
//! * with `docker-credential-secretservice` holding the token, the re-exchange after the
//!   token died is refused and the push fails;
//! * with our helper and `min_validity` above the token's remaining life, `get` rotates the
//!   token before handing it out, exactly once, and the push succeeds.
//!
//! The emulator cannot make a PAT's `expires_at` earlier than a date, so the token's death at
//! +20 s is injected with `kill_token_at`, and our helper is told to renew anything expiring
//! within 3 days (the token expires in 2): that is what "remaining life below min_validity"
//! looks like to the helper.
//!
//! The second test does the same with `docker push` through a real dockerd
//! ([`crate::support::dockerd::Dockerd`]): a `docker import`ed image with one ~5 MiB random
//! (incompressible, since dockerd gzips layers) file. The CLI asks the helper once; the daemon
//! re-exchanges that credential after 60 s just as skopeo does.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::dockerd::Dockerd;
use crate::support::gitlab::GitLabWorld;
use crate::support::*;
use gitlab_emulator::{Config, Emulator, RequestRecord};
use jiff::SignedDuration;

/// Upload speed client → registry through the proxy.
const BYTES_PER_SEC: usize = 64 * 1024;
/// Layer size: ~80 s through the proxy, well past skopeo's 60 s token re-exchange.
const LAYER_BYTES: usize = 5 * 1024 * 1024;
/// The PAT dies this long after the push starts.
const TOKEN_LIFE: SignedDuration = SignedDuration::from_secs(20);

/// A TCP proxy on a free loopback port that forwards to `upstream`, copying
/// registry → client at full speed and client → registry at `BYTES_PER_SEC` per connection.
struct SlowProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl SlowProxy {
    fn start(upstream: u16) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(client, server, Some(BYTES_PER_SEC)));
                std::thread::spawn(move || pump(s2, c2, None));
            }
        });
        SlowProxy {
            port,
            stop,
            accept: Some(accept),
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Copies `from` → `to` until EOF or an error, then half-closes `to`. With a rate, sleeps
/// after every chunk for as long as that chunk may take (no credit for idle time, so a
/// kept-alive connection cannot burst).
fn pump(mut from: TcpStream, mut to: TcpStream, rate: Option<usize>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some(rate) = rate {
            std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

fn push(s: &Session, layout: &Path, image: &str) -> (Output, Duration) {
    let start = Instant::now();
    let out = skopeo_copy(s, &oci_ref(layout), &format!("docker://{image}"), &[]);
    (out, start.elapsed())
}

fn is_jwt_auth(r: &RequestRecord) -> bool {
    r.path == JWT_AUTH
}

fn asks_push(r: &RequestRecord) -> bool {
    is_jwt_auth(r) && r.query.contains("push")
}

fn log_lines(requests: &[RequestRecord]) -> String {
    requests
        .iter()
        .map(|r| {
            format!(
                "{} {} {}?{} -> {}\n",
                r.at, r.method, r.path, r.query, r.status
            )
        })
        .collect()
}

#[test]
fn a_push_outliving_the_token_fails_with_the_reference_helper_and_succeeds_with_ours() {
    if !(have_tool("docker-registry")
        && have_tool("skopeo")
        && have_tool("docker-credential-secretservice"))
    {
        return;
    }
    let Some(mut w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    let proxy = SlowProxy::start(w.registry.port());
    let host = proxy.host();
    // Two different images (the layer content depends on its size), so run B can neither
    // reuse nor mount anything run A uploaded.
    let dir_a = w.s.dir.path().join("image-a");
    let dir_b = w.s.dir.path().join("image-b");
    let layout_a = write_oci_image(&dir_a, LAYER_BYTES);
    let layout_b = write_oci_image(&dir_b, LAYER_BYTES + 4096);
    let total = Instant::now();

    // ---- Run A: docker-credential-secretservice holds the token -------------------------
    let token_a = hand_to_the_reference_helper(&w, &host);
    let out = w.s.run(
        Command::new("docker-credential-secretservice").arg("get"),
        &host,
    );
    assert_success(&out, "docker-credential-secretservice get");
    assert!(
        stdout(&out).contains(&token_a),
        "reference helper lost the token"
    );
    let a = push_while_the_token_dies(&w, &token_a, || {
        push(&w.s, &layout_a, &format!("{host}/group/reference:v1"))
    });
    eprintln!(
        "run A (docker-credential-secretservice): push {} after {:.1?}, token dead \
         from {}\n{}skopeo: {}",
        outcome(&a.out),
        a.took,
        a.kill,
        log_lines(&a.log),
        stderr(&a.out)
    );
    assert_refused_after_the_token_died(&a, &w.gl);

    // ---- Run B: our helper, min_validity above the token's remaining life ---------------
    let token_b = hand_to_our_helper(&mut w, &host);
    let b = push_while_the_token_dies(&w, &token_b, || {
        push(&w.s, &layout_b, &format!("{host}/group/ours:v1"))
    });
    eprintln!(
        "run B (docker-credential-gitlab): push {} after {:.1?}, original token dead \
         from {}; both runs {:.1?}\n{}",
        outcome(&b.out),
        b.took,
        b.kill,
        total.elapsed(),
        log_lines(&b.log)
    );
    assert_rotated_once_and_succeeded(&b, &w.gl, &w.registry.log(), &w.s, &host, &token_b);
}

/// Run A's set-up: a new PAT of alice's (2 days) stored in `docker-credential-secretservice`,
/// which the docker config names for `host`. The token.
fn hand_to_the_reference_helper(w: &GitLabWorld, host: &str) -> String {
    let token = w.pat(RENEWABLE, 2);
    let out = w.s.run(
        Command::new("docker-credential-secretservice").arg("store"),
        format!(r#"{{"ServerURL":"{host}","Username":"alice","Secret":"{token}"}}"#),
    );
    assert_success(&out, "docker-credential-secretservice store");
    std::fs::create_dir_all(w.s.docker_config_dir()).unwrap();
    std::fs::write(
        w.s.docker_config_dir().join("config.json"),
        serde_json::json!({ "credHelpers": { host: "secretservice" } }).to_string(),
    )
    .unwrap();
    token
}

/// Run B's set-up: a new PAT of alice's (2 days) logged in with our helper, which the docker
/// config names for `host`, and min_validity (3 days) above the token's remaining life. The
/// token.
fn hand_to_our_helper(w: &mut GitLabWorld, host: &str) -> String {
    let token = w.pat(RENEWABLE, 2);
    let out = w.login(host, &token, &["--no-configure"]);
    assert_success(&out, "login");
    w.s.configure_docker(&[host]);
    w.s.extra_env
        .push(("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY".into(), "3d".into()));
    token
}

/// One run: the push's output, how long it took, what GitLab was asked meanwhile, and when
/// the token it started with died.
struct Run {
    out: Output,
    took: Duration,
    log: Vec<RequestRecord>,
    kill: jiff::Timestamp,
}

/// Runs `push` (its output and duration) with `token` dying [`TOKEN_LIFE`] after the start,
/// recording GitLab's requests from the start.
fn push_while_the_token_dies(
    w: &GitLabWorld,
    token: &str,
    push: impl FnOnce() -> (Output, Duration),
) -> Run {
    w.gl.clear_requests();
    let kill = w.gl.now() + TOKEN_LIFE;
    w.gl.kill_token_at(token, kill);
    let (out, took) = push();
    let log = w.gl.requests();
    Run {
        out,
        took,
        log,
        kill,
    }
}

fn outcome(out: &Output) -> &'static str {
    if out.status.success() {
        "succeeded"
    } else {
        "failed"
    }
}

/// Writes a tar (made by `tar`) holding one file of `bytes` pseudo-random, incompressible
/// bytes (dockerd gzips layers on push, so the upload must not shrink), seeded by `seed`.
fn random_tar(dir: &Path, bytes: usize, seed: u64) -> PathBuf {
    let src = dir.join(format!("rootfs-{seed}"));
    std::fs::create_dir_all(&src).unwrap();
    let mut content = vec![0u8; bytes];
    let mut x: u64 = 0x9e3779b97f4a7c15 ^ seed;
    for chunk in content.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = chunk.len();
        chunk.copy_from_slice(&x.to_le_bytes()[..n]);
    }
    std::fs::write(src.join("payload.bin"), &content).unwrap();
    let tar = dir.join(format!("rootfs-{seed}.tar"));
    let out = Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&tar)
        .arg("payload.bin")
        .output()
        .expect("run tar");
    assert_success(&out, "tar");
    tar
}

fn docker(s: &Session, args: &[&str], stdin: impl AsRef<[u8]>) -> Output {
    s.run(Command::new("docker").args(args), stdin)
}

fn docker_push(s: &Session, image: &str) -> (Output, Duration) {
    let start = Instant::now();
    let out = docker(s, &["push", image], "");
    (out, start.elapsed())
}

/// The same side-by-side long push, with `docker push` and a real dockerd in place of
/// skopeo. The CLI asks the credential helper once and hands the credential to the daemon,
/// which, like skopeo, re-exchanges that same Basic credential at `/jwt/auth` after 60 s (at
/// the request after the long blob upload). Run B (ours) goes first: it is the one that must
/// hold; run A (the reference helper) must then fail.
#[test]
fn a_docker_push_outliving_the_token_succeeds_with_ours_and_fails_with_the_reference_helper() {
    if !(have_tool("docker-registry")
        && have_tool("tar")
        && have_tool("docker-credential-secretservice"))
    {
        return;
    }
    let Some(daemon) = Dockerd::start() else {
        return;
    };
    let Some(mut w) = GitLabWorld::start(Config::default()) else {
        return;
    };
    w.s.extra_env
        .push(("DOCKER_HOST".into(), daemon.docker_host()));
    // 127.0.0.0/8 is an insecure registry by default for dockerd: plain HTTP to the proxy.
    let proxy = SlowProxy::start(w.registry.port());
    let host = proxy.host();
    // Two images with different random layers, so neither run can reuse or mount the other's.
    let image_b = format!("{host}/group/daemon:v1");
    let image_a = format!("{host}/group/daemon-reference:v1");
    for (image, seed) in [(&image_b, 1), (&image_a, 2)] {
        let tar = random_tar(w.s.dir.path(), LAYER_BYTES, seed);
        let out = docker(&w.s, &["import", "-", image], std::fs::read(&tar).unwrap());
        assert_success(&out, "docker import");
    }
    let total = Instant::now();

    // ---- Run B: our helper, min_validity above the token's remaining life ---------------
    let token_b = hand_to_our_helper(&mut w, &host);
    let b = push_while_the_token_dies(&w, &token_b, || docker_push(&w.s, &image_b));
    eprintln!(
        "daemon run B (docker-credential-gitlab): push {} after {:.1?}, original token \
         dead from {}\n{}",
        outcome(&b.out),
        b.took,
        b.kill,
        log_lines(&b.log)
    );
    let logs = format!("{}\ndockerd log:\n{}", w.registry.log(), daemon.log());
    assert_rotated_once_and_succeeded(&b, &w.gl, &logs, &w.s, &host, &token_b);

    // ---- Run A: docker-credential-secretservice holds the token -------------------------
    let token_a = hand_to_the_reference_helper(&w, &host);
    let a = push_while_the_token_dies(&w, &token_a, || docker_push(&w.s, &image_a));
    eprintln!(
        "daemon run A (docker-credential-secretservice): push {} after {:.1?}, token \
         dead from {}; both runs {:.1?}\n{}docker: {}{}",
        outcome(&a.out),
        a.took,
        a.kill,
        total.elapsed(),
        log_lines(&a.log),
        stdout(&a.out),
        stderr(&a.out)
    );
    assert_refused_after_the_token_died(&a, &w.gl);
}

/// Run A's outcome: the push failed with an auth error, because the first token exchange
/// worked and the re-exchange of the same (by then dead) credential was refused; no rotation.
fn assert_refused_after_the_token_died(a: &Run, gl: &Emulator) {
    let Run {
        out,
        took: took_a,
        log: log_a,
        kill: kill_a,
    } = a;
    let kill_a = *kill_a;
    assert!(
        !out.status.success(),
        "the push with the reference helper outlived its token and still succeeded \
         ({took_a:?}); the scenario no longer tests anything\nemulator log:\n{}",
        log_lines(log_a)
    );
    let err = format!("{}{}", stdout(out), stderr(out)).to_lowercase();
    assert!(
        [
            "unauthorized",
            "authentication required",
            "401",
            "access denied",
            "denied"
        ]
        .iter()
        .any(|m| err.contains(m)),
        "run A failed, but not with an auth error: {err}"
    );
    // It failed for the right reason: the first exchange worked, and the re-exchange of the
    // same (now dead) credential after 60 s was refused. No rotation ever happened.
    let auths_a: Vec<&RequestRecord> = log_a.iter().filter(|r| is_jwt_auth(r)).collect();
    assert!(
        auths_a
            .first()
            .is_some_and(|r| r.status == 200 && r.at < kill_a),
        "run A: the first token exchange should have succeeded\n{}",
        log_lines(log_a)
    );
    assert!(
        auths_a.iter().any(|r| r.status == 401 && r.at >= kill_a),
        "run A: expected a refused re-exchange after the token died\n{}",
        log_lines(log_a)
    );
    assert_eq!(gl.count("POST", ROTATE), 0, "{}", log_lines(log_a));
}

/// Run B's outcome: the push succeeded; exactly one successful rotation before the first
/// push-scoped token exchange; a re-exchange after the original token died; every exchange
/// 200; the old token revoked and the rotated one alive in the keyring.
fn assert_rotated_once_and_succeeded(
    b: &Run,
    gl: &Emulator,
    registry_log: &str,
    s: &Session,
    host: &str,
    token_b: &str,
) {
    let Run {
        out,
        took: took_b,
        log: log_b,
        kill: kill_b,
    } = b;
    let kill_b = *kill_b;
    assert!(
        out.status.success(),
        "the push through our helper failed after {took_b:?}\nstdout: {}\nstderr: {}\n\
         emulator log:\n{}\nregistry log:\n{}",
        stdout(out),
        stderr(out),
        log_lines(log_b),
        registry_log
    );

    // Exactly one rotation, successful, before skopeo's first push-scoped token exchange.
    let rotations: Vec<(usize, &RequestRecord)> = log_b
        .iter()
        .enumerate()
        .filter(|(_, r)| r.method == "POST" && r.path == ROTATE)
        .collect();
    assert_eq!(rotations.len(), 1, "{}", log_lines(log_b));
    let (rot_index, rot) = rotations[0];
    assert_eq!(rot.status, 200, "{}", log_lines(log_b));
    let (first_push_index, first_push) = log_b
        .iter()
        .enumerate()
        .find(|(_, r)| asks_push(r))
        .unwrap_or_else(|| panic!("no push-scoped /jwt/auth\n{}", log_lines(log_b)));
    assert!(
        rot_index < first_push_index && rot.at <= first_push.at,
        "the rotation did not happen before the push began\n{}",
        log_lines(log_b)
    );
    assert!(
        !log_b[..rot_index].iter().any(is_jwt_auth),
        "a token exchange happened before the rotation\n{}",
        log_lines(log_b)
    );

    // skopeo re-exchanged the credential during the push, after the original token died,
    // and every exchange (with the rotated token) succeeded.
    let auths_b: Vec<&RequestRecord> = log_b.iter().filter(|r| is_jwt_auth(r)).collect();
    assert!(auths_b.len() > 1, "{}", log_lines(log_b));
    assert!(
        auths_b.iter().all(|r| r.status == 200),
        "{}",
        log_lines(log_b)
    );
    assert!(
        auths_b.iter().any(|r| r.at >= kill_b),
        "no token exchange after the original token died; the push was too short \
         ({took_b:?}) to prove anything\n{}",
        log_lines(log_b)
    );

    // The old token is dead for good, the rotated one is alive and in the keychain.
    assert!(gl.token_info(token_b).unwrap().revoked);
    let stored = s
        .secret_tool_lookup(host)
        .expect("rotated token in the keyring");
    assert_ne!(stored, token_b);
    assert!(gl.token_info(&stored).unwrap().active);
}

/// The same long push with an OAuth credential (`login --oauth`): 100 s access tokens, the
/// original one dying 59 s into the ~80 s push, before skopeo re-exchanges the credential
/// at 60 s. With min_validity above the access token's remaining life, `get` refreshes it
/// before hand-out, exactly once, and the push succeeds.
#[test]
fn a_push_outliving_the_oauth_access_token_succeeds_with_ours() {
    if !(have_tool("docker-registry") && have_tool("skopeo")) {
        return;
    }
    const CLIENT: &str = "long-push-app";
    let Some(mut w) = GitLabWorld::start(Config {
        oauth_token_lifetime: Duration::from_secs(100),
        device_poll_interval: Duration::from_secs(1),
        ..Config::default()
    }) else {
        return;
    };
    w.gl.add_oauth_application(CLIENT, &["read_registry", "write_registry"]);
    let proxy = SlowProxy::start(w.registry.port());
    let host = proxy.host();
    assert_success(
        &w.oauth_login(&host, CLIENT, &["--no-configure"]),
        "login --oauth",
    );
    w.s.configure_docker(&[&host]);
    let stored: serde_json::Value =
        serde_json::from_str(&w.s.secret_tool_lookup(&host).unwrap()).unwrap();
    let original = stored["access_token"].as_str().unwrap().to_owned();
    let dies = w.gl.token_info(&original).unwrap().dies_at.unwrap();
    // Wait until the original access token has less than 60 s left.
    while dies.duration_since(w.gl.now()) > SignedDuration::from_secs(59) {
        std::thread::sleep(Duration::from_millis(200));
    }
    w.s.extra_env
        .push(("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY".into(), "90s".into()));
    let layout = write_oci_image(&w.s.dir.path().join("image-oauth"), LAYER_BYTES + 8192);
    w.gl.clear_requests();
    let (out, took) = push(&w.s, &layout, &format!("{host}/group/oauth:v1"));
    let log = w.gl.requests();
    eprintln!(
        "OAuth run: push {} after {took:.1?}, original access token dead from {dies}\n{}",
        outcome(&out),
        log_lines(&log)
    );
    assert!(
        out.status.success(),
        "the push failed after {took:?}: {}\n{}\nregistry log:\n{}",
        stderr(&out),
        log_lines(&log),
        w.registry.log()
    );
    // One refresh, before the first token exchange; exchanges after the original died
    // all succeeded with the refreshed token.
    let refreshes: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, r)| r.method == "POST" && r.path == "/oauth/token")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(refreshes.len(), 1, "{}", log_lines(&log));
    let first_auth = log.iter().position(is_jwt_auth).expect("no /jwt/auth");
    assert!(refreshes[0] < first_auth, "{}", log_lines(&log));
    let auths: Vec<&RequestRecord> = log.iter().filter(|r| is_jwt_auth(r)).collect();
    assert!(auths.iter().all(|r| r.status == 200), "{}", log_lines(&log));
    assert!(
        auths.iter().any(|r| r.at >= dies),
        "no token exchange after the original access token died ({took:?})\n{}",
        log_lines(&log)
    );
    assert!(!w.gl.token_info(&original).unwrap().active);
}
