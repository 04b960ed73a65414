//! What `status` and `doctor` say about a fleet (`DOCKER_CREDENTIAL_GITLAB_STORE=vault`):
//! where the records are, how this host signs in to Vault and until when, and which hosts
//! hold live hand-outs of each registry.

use jiff::Timestamp;

use crate::records::fleet::Fleet;

/// `Vault: <addr>, path <path>, auth <method> (token expires …); this host: <id>`, or the
/// one line saying why Vault cannot be used.
pub(crate) fn vault_line(fleet: &Fleet) -> Result<String, String> {
    let vault = fleet.vault().map_err(|e| e.to_string())?;
    let config = vault.config();
    let expiry = match vault.token_expiry() {
        Ok(Some(t)) => format!("Vault token expires {t}"),
        Ok(None) => "Vault token does not expire".into(),
        Err(e) => return Err(e.to_string()),
    };
    Ok(format!(
        "Vault: {}, path {}, auth {} ({expiry}); this host: {}",
        config.shown_addr(),
        config.path(),
        config.auth_method(),
        fleet.host_id()
    ))
}

/// One line per registry key: the hosts with live hand-outs of it, and until when.
pub(crate) fn lease_lines(
    fleet: &Fleet,
    keys: impl Iterator<Item = String>,
    now: Timestamp,
) -> Vec<String> {
    keys.map(|key| match fleet.leases(std::slice::from_ref(&key), now) {
        Ok(l) if l.hosts.is_empty() => format!("{key}: no live hand-outs on any host"),
        Ok(l) => format!(
            "{key}: live hand-outs on {}",
            l.hosts
                .iter()
                .map(|(host, until)| format!("{host} (until {until})"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => format!("{key}: hand-outs unknown ({e})"),
    })
    .collect()
}
