//! The knobs the renewal tests turn on a [`GitLabWorld`]: a world logged in with a renewable
//! token, fault points (`pause:<step>`), the state lock.

use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::Duration;

use super::gitlab::GitLabWorld;
use super::*;

impl GitLabWorld {
    /// A world logged in with a renewable PAT expiring in `days`, that does not wait out
    /// the settle period after an ambiguous rotation (60 s in real life).
    pub fn renewing(days: i64) -> Option<GitLabWorld> {
        let mut w = GitLabWorld::logged_in(days, RENEWABLE)?;
        w.env("DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS", "0");
        Some(w)
    }

    /// [`GitLabWorld::renewing`] with `DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY` set to
    /// `min_validity` for every later command.
    pub fn renewing_with(days: i64, min_validity: &str) -> Option<GitLabWorld> {
        let mut w = GitLabWorld::renewing(days)?;
        w.env("DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY", min_validity);
        Some(w)
    }

    /// Moves the test clock (the helper's and GitLab's) `days` past the world's start.
    pub fn age(&mut self, days: i64) {
        self.set_clock(jiff::SignedDuration::from_hours(24 * days));
    }

    pub fn rotate_calls(&self) -> usize {
        self.gl.count("POST", ROTATE)
    }

    pub fn marker(&self) -> PathBuf {
        self.s.dir.path().join("paused")
    }

    /// Starts `get` paused at `step` (see the fault points in src/renew/mod.rs) and waits
    /// until it is there.
    pub fn get_paused_at(&mut self, step: &str) -> Child {
        let marker = self.marker();
        self.env("DOCKER_CREDENTIAL_GITLAB_FAULT", &format!("pause:{step}"));
        self.env(
            "DOCKER_CREDENTIAL_GITLAB_FAULT_FILE",
            marker.to_str().unwrap(),
        );
        let child = self.s.spawn(Command::new(BIN).arg("get"), &self.host);
        wait_until("the paused get", Duration::from_secs(20), || {
            marker.exists()
        });
        self.unset("DOCKER_CREDENTIAL_GITLAB_FAULT");
        self.unset("DOCKER_CREDENTIAL_GITLAB_FAULT_FILE");
        child
    }

    /// A `get` that renews while someone else holds the state lock from GitLab's answer
    /// until the `get` is done (past every lock wait): its output.
    pub fn get_with_state_lock_held(&mut self) -> Output {
        let child = self.get_paused_at("after-rotate-response");
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .open(self.s.data_dir().join("state.lock"))
            .unwrap();
        lock.lock().unwrap();
        std::fs::remove_file(self.marker()).unwrap();
        let out = child.wait_with_output().unwrap();
        drop(lock);
        out
    }
}

pub fn login_standby(w: &GitLabWorld, host: &str, token: &str) {
    assert_success(&w.login(host, token, &["--standby"]), "login --standby");
}
