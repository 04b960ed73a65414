//! A fleet on one machine: several build servers ([`FleetHost`]), each with its own HOME,
//! data directory and host id, sharing one credential through a real OpenBao
//! (`DOCKER_CREDENTIAL_GITLAB_STORE=vault`), against the GitLab emulator and the real
//! registry of a [`GitLabWorld`].
//!
//! A host sees only its own session's environment (as every e2e test runs the helper:
//! [`Session::env`]) plus the world's shared settings (the test clock, `NO_PROXY`, the
//! settle time), which [`Fleet::sync`] copies to every host whenever the world changes them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use jiff::SignedDuration;
use serde_json::Value;

use super::gitlab::GitLabWorld;
use super::openbao::{OpenBao, README_POLICY, scrub_vault_env};
use super::*;

/// How a host authenticates to Vault.
pub enum VaultAuth {
    /// `VAULT_TOKEN`.
    Token(String),
    /// `~/.vault-token` (what `vault login` / `bao login` leave), no variable.
    TokenFile(String),
    /// `DOCKER_CREDENTIAL_GITLAB_VAULT_ROLE_ID` + `DOCKER_CREDENTIAL_GITLAB_VAULT_SECRET_ID`.
    AppRole { role_id: String, secret_id: String },
}

/// The key of a registry under `records/` and `leases/`: the normalised registry with
/// `/` -> `~` and `#` -> `@` (`host:5000/group` -> `host:5000~group`).
pub fn enc(key: &str) -> String {
    key.replace('/', "~").replace('#', "@")
}

/// One build server of the fleet.
pub struct FleetHost {
    /// `DOCKER_CREDENTIAL_GITLAB_HOST_ID`.
    pub id: String,
    /// Its own HOME, data directory and XDG directories (no session bus: a server).
    pub s: Session,
    /// The registry it asks for (the world's [`GitLabWorld::host`]).
    pub registry: String,
    shared: Vec<(String, String)>,
    own: Vec<(String, String)>,
}

impl FleetHost {
    /// A host `id` in fleet mode against Vault at `addr`, authenticating with `auth`.
    pub fn new(id: &str, registry: &str, addr: &str, auth: VaultAuth) -> FleetHost {
        let mut h = FleetHost {
            id: id.to_owned(),
            s: Session::without_bus(),
            registry: registry.to_owned(),
            shared: Vec::new(),
            own: Vec::new(),
        };
        h.env("DOCKER_CREDENTIAL_GITLAB_STORE", "vault");
        h.env("DOCKER_CREDENTIAL_GITLAB_HOST_ID", id);
        h.env("VAULT_ADDR", addr);
        match auth {
            VaultAuth::Token(t) => h.env("VAULT_TOKEN", &t),
            VaultAuth::TokenFile(t) => h.write_vault_token_file(&t),
            VaultAuth::AppRole { role_id, secret_id } => {
                h.env("DOCKER_CREDENTIAL_GITLAB_VAULT_ROLE_ID", &role_id);
                h.env("DOCKER_CREDENTIAL_GITLAB_VAULT_SECRET_ID", &secret_id);
            }
        }
        h
    }

    /// `~/.vault-token`, 0600, as `bao login` writes it.
    pub fn write_vault_token_file(&self, token: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(self.s.home()).unwrap();
        let path = self.s.home().join(".vault-token");
        std::fs::write(&path, token).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// Sets `key` for every later command of this host (over the fleet's shared settings).
    pub fn env(&mut self, key: &str, value: &str) {
        self.own.retain(|(k, _)| k != key);
        self.own.push((key.into(), value.into()));
        self.rebuild();
    }

    /// Points this host's Docker at the helper and puts the binary on its PATH, as an
    /// installed host has it (what `doctor` checks first).
    pub fn configure_docker(&mut self) {
        let registry = self.registry.clone();
        self.s.configure_docker(&[&registry]);
        let path = self.s.extra_env.iter().find(|(k, _)| k == "PATH").cloned();
        if let Some((_, path)) = path {
            self.env("PATH", &path);
        }
    }

    /// Gives this host its own settings file (`config.json`, e.g. `min_validity` and
    /// `early_renewal`).
    pub fn settings(&mut self, json: &str) {
        let cfg = self.s.dir.path().join("settings");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("config.json"), json).unwrap();
        self.env("DOCKER_CREDENTIAL_GITLAB_CONFIG_DIR", cfg.to_str().unwrap());
    }

    /// Puts this host's clock `by` off the world's (a build server whose clock is wrong):
    /// its own clock offset, over the world's shared one as it is now.
    pub fn skew_clock(&mut self, by: SignedDuration) {
        let world = self
            .shared
            .iter()
            .find(|(k, _)| k == "DOCKER_CREDENTIAL_GITLAB_CLOCK_OFFSET_SECS")
            .map_or(0, |(_, v)| v.parse::<i64>().unwrap());
        let own = world + by.as_secs();
        self.env(
            "DOCKER_CREDENTIAL_GITLAB_CLOCK_OFFSET_SECS",
            &own.to_string(),
        );
    }

    /// Takes `key` out of this host's own settings.
    pub fn unset(&mut self, key: &str) {
        self.own.retain(|(k, _)| k != key);
        self.rebuild();
    }

    fn set_shared(&mut self, shared: &[(String, String)]) {
        self.shared = shared.to_vec();
        // OpenBao runs on the real clock: the world's simulated time moves it too.
        let offset = shared
            .iter()
            .find(|(k, _)| k == "DOCKER_CREDENTIAL_GITLAB_CLOCK_OFFSET_SECS")
            .map(|(_, v)| v.clone());
        if let Some(offset) = offset {
            self.shared.push((
                "DOCKER_CREDENTIAL_GITLAB_VAULT_CLOCK_OFFSET_SECS".into(),
                offset,
            ));
        }
        self.rebuild();
    }

    fn rebuild(&mut self) {
        let own_keys: Vec<&String> = self.own.iter().map(|(k, _)| k).collect();
        self.s.extra_env = self
            .shared
            .iter()
            .filter(|(k, _)| !own_keys.contains(&k))
            .chain(self.own.iter())
            .cloned()
            .collect();
    }

    /// Our binary with `args`, with nothing of the developer's Vault settings.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        scrub_vault_env(&mut cmd).args(args);
        cmd
    }

    /// Runs our binary with `args` and `stdin` on this host.
    pub fn helper(&self, args: &[&str], stdin: impl AsRef<[u8]>) -> Output {
        self.s.run(&mut self.command(args), stdin)
    }

    /// Starts our binary with `args` and `stdin` on this host; the caller waits.
    pub fn spawn(&self, args: &[&str], stdin: impl AsRef<[u8]>) -> Child {
        self.s.spawn(&mut self.command(args), stdin)
    }

    /// `get` for the fleet's registry.
    pub fn get(&self) -> Output {
        self.helper(&["get"], &self.registry)
    }

    /// `get`, and how long it took.
    pub fn timed_get(&self) -> (Output, Duration) {
        let start = std::time::Instant::now();
        let out = self.get();
        (out, start.elapsed())
    }

    /// `get` with the fault point `step` armed (`DOCKER_CREDENTIAL_GITLAB_FAULT=<step>`:
    /// the process aborts there), for this one call.
    pub fn get_killed_at(&mut self, step: &str) -> Output {
        self.env("DOCKER_CREDENTIAL_GITLAB_FAULT", step);
        let out = self.get();
        self.unset("DOCKER_CREDENTIAL_GITLAB_FAULT");
        out
    }

    /// Starts `get` paused at the fault point `step` and waits until it is there; remove
    /// the returned marker file to let it go on (30 s at most).
    pub fn get_paused_at(&mut self, step: &str) -> (Child, PathBuf) {
        let marker = self.s.dir.path().join("paused");
        self.env("DOCKER_CREDENTIAL_GITLAB_FAULT", &format!("pause:{step}"));
        self.env(
            "DOCKER_CREDENTIAL_GITLAB_FAULT_FILE",
            marker.to_str().unwrap(),
        );
        let child = self.spawn(&["get"], &self.registry);
        self.unset("DOCKER_CREDENTIAL_GITLAB_FAULT");
        self.unset("DOCKER_CREDENTIAL_GITLAB_FAULT_FILE");
        wait_until("the paused get", Duration::from_secs(20), || {
            marker.exists()
        });
        (child, marker)
    }

    /// The value this host's own settings give `key` (e.g. its `VAULT_TOKEN`).
    pub fn var(&self, key: &str) -> Option<&str> {
        self.own
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `store` of `secret` for `server`: its output.
    pub fn store(&self, server: &str, user: &str, secret: &str) -> Output {
        let payload =
            serde_json::json!({ "ServerURL": server, "Username": user, "Secret": secret });
        self.helper(&["store"], payload.to_string())
    }

    /// `list`, parsed: `{registry: username}`.
    #[track_caller]
    pub fn list(&self) -> serde_json::Map<String, Value> {
        let out = self.helper(&["list"], "");
        assert_success(&out, &format!("list on {}", self.id));
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_object()
            .unwrap()
            .clone()
    }

    /// `erase` of `key`.
    pub fn erase(&self, key: &str) -> Output {
        self.helper(&["erase"], key)
    }

    /// `login REGISTRY --password-stdin --no-configure EXTRA…` with `token` on stdin.
    pub fn login(&self, token: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "login",
            &self.registry,
            "--password-stdin",
            "--no-configure",
        ];
        args.extend_from_slice(extra);
        self.helper(&args, format!("{token}\n"))
    }

    /// `login REGISTRY --oauth --client-id CLIENT --no-configure EXTRA…` through the device
    /// flow of `w`'s GitLab, approving as alice as soon as the code shows on stderr.
    pub fn oauth_login(&self, w: &GitLabWorld, client: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "login",
            &self.registry,
            "--oauth",
            "--client-id",
            client,
            "--no-configure",
        ];
        args.extend_from_slice(extra);
        let mut child = self.spawn(&args, "");
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let code = loop {
            let mut line = String::new();
            let n = std::io::BufRead::read_line(&mut err, &mut line).unwrap();
            assert!(
                n > 0,
                "login --oauth on {} printed no code: {seen}",
                self.id
            );
            if let Some(rest) = line.split("enter the code ").nth(1) {
                break rest.trim().to_owned();
            }
            seen.push_str(&line);
        };
        assert!(w.gl.approve_device(&code, w.user), "unknown code {code}");
        std::io::Read::read_to_string(&mut err, &mut seen).unwrap();
        let mut out = child.wait_with_output().unwrap();
        out.stderr = seen.into_bytes();
        out
    }

    /// `logout REGISTRY`.
    pub fn logout(&self) -> Output {
        self.helper(&["logout", &self.registry], "")
    }

    /// `status EXTRA…`.
    pub fn status(&self, extra: &[&str]) -> Output {
        let mut args = vec!["status"];
        args.extend_from_slice(extra);
        self.helper(&args, "")
    }

    /// `status --json`, parsed: one row per stored token.
    #[track_caller]
    pub fn status_rows(&self) -> Vec<Value> {
        let out = self.status(&["--json"]);
        assert_success(&out, &format!("status --json on {}", self.id));
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// `doctor REGISTRY`.
    pub fn doctor(&self) -> Output {
        self.helper(&["doctor", &self.registry], "")
    }

    /// Every file of this host (HOME, data directory, XDG directories) holding `secret`.
    pub fn files_holding(&self, secret: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        walk(self.s.dir.path(), &mut |path| {
            if let Ok(bytes) = std::fs::read(path)
                && bytes.windows(secret.len()).any(|w| w == secret.as_bytes())
            {
                found.push(path.to_owned());
            }
        });
        found
    }

    /// The files in the data directory's `kept/` (minted tokens Vault did not take yet).
    pub fn kept_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.s.data_dir().join("kept"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }
}

fn walk(dir: &Path, f: &mut impl FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            walk(&path, f);
        } else if kind.is_file() {
            f(&path);
        }
    }
}

/// The GitLab world, one OpenBao, and the build servers sharing its credential.
pub struct Fleet {
    pub w: GitLabWorld,
    pub bao: OpenBao,
    pub hosts: Vec<FleetHost>,
}

impl Fleet {
    /// A world whose [`GitLabWorld::token`] is a fresh renewable PAT of alice's living
    /// `days` (logged in nowhere), an OpenBao dev server with [`README_POLICY`] as
    /// `fleet`, and `n` hosts `host-1`…`host-n`, each with its own Vault token of that
    /// policy. Renewal does not wait out the settle time. `None` (skip) when a tool is
    /// missing outside CI.
    pub fn start(n: usize, days: i64) -> Option<Fleet> {
        let bao = OpenBao::dev()?;
        Fleet::start_on(bao, n, days)
    }

    /// [`Fleet::start`] on `bao` (e.g. [`OpenBao::with_file_storage`]).
    pub fn start_on(bao: OpenBao, n: usize, days: i64) -> Option<Fleet> {
        let mut w = GitLabWorld::with_pat(&[], days)?;
        w.env("DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS", "0");
        bao.policy("fleet", README_POLICY);
        let mut fleet = Fleet {
            w,
            bao,
            hosts: Vec::new(),
        };
        for _ in 0..n {
            fleet.add_token_host();
        }
        Some(fleet)
    }

    /// [`Fleet::start`], then `login` on `host-1`, which must succeed.
    pub fn logged_in(n: usize, days: i64) -> Option<Fleet> {
        let f = Fleet::start(n, days)?;
        assert_success(&f.hosts[0].login(&f.w.token, &[]), "login on host-1");
        Some(f)
    }

    /// A new host `host-<n>` with `auth`: its index.
    pub fn add_host(&mut self, auth: VaultAuth) -> usize {
        let id = format!("host-{}", self.hosts.len() + 1);
        let mut h = FleetHost::new(&id, &self.w.host, &self.bao.addr(), auth);
        h.set_shared(&self.w.s.extra_env);
        self.hosts.push(h);
        self.hosts.len() - 1
    }

    /// A new host with its own token of the `fleet` policy: its index.
    pub fn add_token_host(&mut self) -> usize {
        let token = self.bao.token(&["fleet"], "24h");
        self.add_host(VaultAuth::Token(token))
    }

    /// Copies the world's shared settings (test clock, NO_PROXY, settle time) to every host.
    pub fn sync(&mut self) {
        for h in &mut self.hosts {
            h.set_shared(&self.w.s.extra_env);
        }
    }

    /// Moves the test clock (every host's and GitLab's) to `since_start`.
    pub fn set_clock(&mut self, since_start: SignedDuration) {
        self.w.set_clock(since_start);
        self.sync();
    }

    /// Moves the test clock `days` past the world's start.
    pub fn age(&mut self, days: i64) {
        self.set_clock(SignedDuration::from_hours(24 * days));
    }

    /// Sets `key` to `value` on every host.
    pub fn env_all(&mut self, key: &str, value: &str) {
        for h in &mut self.hosts {
            h.env(key, value);
        }
    }

    /// Rotate calls the emulator has seen.
    pub fn rotate_calls(&self) -> usize {
        self.w.rotate_calls()
    }

    /// The fleet's record of `key` in Vault (`records/<enc(key)>`), read as root.
    pub fn record_of(&self, key: &str) -> Option<Value> {
        self.bao.kv_get(&format!("records/{}", enc(key)))
    }

    /// The record of the fleet's registry.
    pub fn record(&self) -> Option<Value> {
        self.record_of(&self.w.host)
    }

    /// Starts `per_host` `get`s on every host at once; every output, tagged with its
    /// host's id.
    pub fn gets_everywhere_at_once(&self, per_host: usize) -> Vec<(String, Output)> {
        let children: Vec<(String, Child)> = self
            .hosts
            .iter()
            .flat_map(|h| {
                (0..per_host).map(move |_| (h.id.clone(), h.spawn(&["get"], &h.registry)))
            })
            .collect();
        children
            .into_iter()
            .map(|(id, c)| (id, c.wait_with_output().unwrap()))
            .collect()
    }

    /// Every file of every host holding `secret`.
    pub fn files_holding(&self, secret: &str) -> Vec<PathBuf> {
        self.hosts
            .iter()
            .flat_map(|h| h.files_holding(secret))
            .collect()
    }
}
