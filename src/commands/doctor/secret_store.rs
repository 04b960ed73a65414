//! Once for all registries: where a new secret would go now and why (each store probed
//! with a throw-away write, in the order `login` and `store` use), and, when the kernel
//! keyring is or was used, what it cannot keep (secrets are lost at reboot).

use super::Finding;
use crate::env::Env;
use crate::records::{Records, State};
use crate::store::{self, StoreChoice};

/// Where new secrets go (and why), and what a keyutils store cannot keep.
pub(super) fn store_findings(env: &Env, records: &Records, state: &State) -> Vec<Finding> {
    const CHECK: &str = "secret store";
    let mut out = Vec::new();
    let current = match (StoreChoice::from_env(env), records.dir().lock()) {
        (Ok(choice), Ok(guard)) => store::current(&guard, choice),
        (Err(e), _) => return vec![Finding::fail(CHECK, e.to_string())],
        (_, Err(e)) => return vec![Finding::fail(CHECK, e.to_string())],
    };
    match &current.backend {
        Ok(b) => out.push(Finding::pass(
            CHECK,
            format!("new secrets go to {b} ({})", current.why),
        )),
        // Environment-only set-ups never write: then it is only a warning.
        Err(e) if state.entries.is_empty() => out.push(Finding::warn(CHECK, e.to_string())),
        Err(e) => out.push(Finding::fail(CHECK, e.to_string())),
    }
    if let Some(note) = store::keyutils_note(&current, state.entries.values().map(|e| e.store)) {
        out.push(Finding::warn("keyutils", note));
    }
    out
}
