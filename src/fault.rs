//! Test builds only (the `fault-injection` feature): named points where a test can kill or
//! pause the helper in the middle of a renewal, to prove crash safety. In a release build
//! every function here does nothing.
//!
//! `DOCKER_CREDENTIAL_GITLAB_FAULT=<step>` aborts the process at `<step>`;
//! `pause:<step>` instead creates the file named by `DOCKER_CREDENTIAL_GITLAB_FAULT_FILE`
//! and waits (30 s at most) until the test removes it, so a test can stop the keyring or
//! take a lock at exactly that moment.

use crate::env::{self, Env};

/// A named step of a renewal.
pub(crate) fn point(name: &str) {
    let env = Env::process();
    let Some(fault) = env.knob::<String>(env::FAULT) else {
        return;
    };
    if fault == name {
        std::process::abort();
    }
    if fault.strip_prefix("pause:") == Some(name)
        && let Some(marker) = env.path(env::FAULT_FILE)
    {
        let _ = std::fs::write(&marker, name);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while marker.exists() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
