//! Once for all registries of a fleet (`DOCKER_CREDENTIAL_GITLAB_STORE=vault`): Vault is
//! reachable and unsealed, this host's Vault token is valid (and for how long), the policy
//! grants every capability the helper uses on the path (naming any that is missing), and
//! which hosts hold live hand-outs.

use super::Finding;
use crate::commands::fleet_view;
use crate::records::{Records, State};

const CHECK: &str = "vault";

pub(super) fn vault_findings(records: &Records, state: &State) -> Vec<Finding> {
    let Some(fleet) = records.fleet() else {
        return Vec::new();
    };
    let vault = match fleet.vault() {
        Ok(v) => v,
        Err(e) => return vec![Finding::fail(CHECK, e.to_string())],
    };
    let addr = vault.config().shown_addr();
    match vault.seal_status() {
        Ok(false) => {}
        Ok(true) => {
            return vec![
                Finding::fail(CHECK, format!("Vault at {addr} is sealed"))
                    .fix("unseal it (`bao operator unseal` or `vault operator unseal`)"),
            ];
        }
        Err(e) => return vec![Finding::fail(CHECK, e.to_string())],
    }
    let mut out = vec![match fleet_view::vault_line(fleet) {
        Ok(line) => Finding::pass(CHECK, line),
        Err(e) => return vec![Finding::fail(CHECK, e)],
    }];
    out.push(match vault.missing_capabilities() {
        Ok(missing) if missing.is_empty() => Finding::pass(
            "vault policy",
            format!(
                "create, read, update, patch, delete and list on {}",
                vault.config().path()
            ),
        ),
        Ok(missing) => Finding::fail(
            "vault policy",
            format!("the Vault token lacks {}", missing.join(", ")),
        )
        .fix("grant the policy in the README's Fleets section"),
        Err(e) => Finding::fail("vault policy", e.to_string()),
    });
    let now = crate::clock::now();
    for line in fleet_view::lease_lines(fleet, state.entries.keys().cloned(), now) {
        out.push(Finding::pass("fleet", line));
    }
    out
}
