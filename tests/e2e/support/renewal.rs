//! A GitLab world logged in with a renewable token, and the knobs the renewal tests turn:
//! settings, fault points (`pause:<step>`), the emulator's faults.

use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::Duration;

use gitlab_emulator::Config;

use super::gitlab::GitLabWorld;
use super::*;

pub const ROTATE: &str = "/api/v4/personal_access_tokens/self/rotate";
pub const RENEWABLE: &[&str] = &["read_registry", "write_registry", "self_rotate"];

pub struct W {
    pub w: GitLabWorld,
    pub host: String,
    pub token: String,
}

/// A world logged in (to `registry.host()`) with a renewable PAT expiring in `days`.
pub fn world(days: i64) -> Option<W> {
    let mut w = GitLabWorld::start(Config::default())?;
    let token = w.pat(RENEWABLE, days);
    let host = w.registry.host();
    login(&w, &host, &token);
    w.s.extra_env
        .push(("DOCKER_CREDENTIAL_GITLAB_SETTLE_SECS".into(), "0".into()));
    Some(W { w, host, token })
}

pub fn login(w: &GitLabWorld, host: &str, token: &str) {
    assert_success(&w.login(host, token, &["--no-configure"]), "login");
}

impl W {
    pub fn env(&mut self, key: &str, value: &str) {
        self.w.s.extra_env.retain(|(k, _)| k != key);
        self.w.s.extra_env.push((key.into(), value.into()));
    }

    pub fn unset(&mut self, key: &str) {
        self.w.s.extra_env.retain(|(k, _)| k != key);
    }

    pub fn get_host(&self, host: &str) -> Output {
        self.w.s.helper(&["get"], host)
    }

    pub fn get(&self) -> Output {
        self.get_host(&self.host)
    }

    pub fn rotate_calls(&self) -> usize {
        self.w.gl.count("POST", ROTATE)
    }

    pub fn marker(&self) -> PathBuf {
        self.w.s.dir.path().join("paused")
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
        let child = self.w.s.spawn(Command::new(BIN).arg("get"), &self.host);
        wait_until("the paused get", Duration::from_secs(20), || {
            marker.exists()
        });
        self.unset("DOCKER_CREDENTIAL_GITLAB_FAULT");
        self.unset("DOCKER_CREDENTIAL_GITLAB_FAULT_FILE");
        child
    }
}

pub fn secret(out: &Output) -> String {
    assert_success(out, "get");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Secret"].as_str().unwrap().to_owned()
}

pub fn login_standby(w: &GitLabWorld, host: &str, token: &str) {
    assert_success(&w.login(host, token, &["--standby"]), "login --standby");
}

impl W {
    /// A `get` that renews while someone else holds the state lock from GitLab's answer
    /// until the `get` is done (past every lock wait): its output.
    pub fn get_with_state_lock_held(&mut self) -> Output {
        let child = self.get_paused_at("after-rotate-response");
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .open(self.w.s.data_dir().join("state.lock"))
            .unwrap();
        lock.lock().unwrap();
        std::fs::remove_file(self.marker()).unwrap();
        let out = child.wait_with_output().unwrap();
        drop(lock);
        out
    }
}
