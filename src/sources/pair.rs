//! A standby pair (`login --standby`): two tokens for one registry. The pair policy
//! ([`crate::policy::decide_pair`]) picks which one to hand out, so that renewals never
//! revoke a token a push is using.

use crate::policy::{self, PairDecision};
use crate::records::Entry;
use crate::registry::RegistryHost;
use crate::renew::{self, Promise};
use crate::secret::Secret;

use super::handout::{self, Error, Handout};

/// Hands out one of the pair of `h.registry` (`primary`'s entry and its standby `second`).
pub(super) fn get(
    h: &Handout<'_>,
    primary: &Entry,
    second: &Entry,
) -> Result<Option<(String, Secret)>, Error> {
    let host = h.registry;
    let standby = host.standby();
    let ((active, active_entry), (idle, idle_entry)) = if primary.standby_active() {
        ((&standby, second), (host, primary))
    } else {
        ((host, primary), (&standby, second))
    };
    let (Some(fa), Some(fi)) = (facts(h, active, active_entry)?, facts(h, idle, idle_entry)?)
    else {
        return handout::key(h, active, None);
    };
    // A token minted for either key that the store refused is the one to hand out.
    for (key, entry) in [(active, active_entry), (idle, idle_entry)] {
        if h.records.kept_exists(&h.records.group(key, entry)) {
            if key == idle {
                switch_to(h, idle);
            }
            return handout::key(h, key, None);
        }
    }
    match policy::decide_pair(&fa, &fi) {
        PairDecision::Active | PairDecision::Single => handout::key(h, active, None),
        // In a fleet, another host's hand-out of the idle token is still running: renewing
        // it now would cut that push. Stay on the active one until it has run out.
        PairDecision::RenewIdleThenSwitch if leased_elsewhere(h, idle) => {
            handout::key(h, active, None)
        }
        PairDecision::Switch => {
            switch_to(h, idle);
            handout::key(h, idle, None)
        }
        PairDecision::RenewIdleThenSwitch => {
            let promise = Promise {
                min_validity: fi.min_validity,
                early_renewal: fi.early_renewal,
                hard: false,
            };
            match renew::renew(h.records, idle, idle_entry, promise, h.deadline) {
                // Renewed (or kept): hand it out even if recording the switch fails.
                Ok(_) => {
                    switch_to(h, idle);
                    handout::key(h, idle, None)
                }
                Err(e) => {
                    h.warn_once(host, "standby", || {
                        format!(
                            "the standby token for {host} could not be renewed ({e}); staying on the active one"
                        )
                    });
                    handout::key(h, active, None)
                }
            }
        }
    }
}

/// The policy's facts about one token of the pair (`None`: not from `login`).
fn facts(
    h: &Handout<'_>,
    key: &RegistryHost,
    entry: &Entry,
) -> Result<Option<policy::Facts>, Error> {
    let Some(info) = &entry.gitlab else {
        return Ok(None);
    };
    let settings = h.settings()?;
    Ok(Some(policy::Facts::of(
        info,
        settings.min_validity(h.registry.as_str()),
        settings.early_renewal(),
        h.records.lease_until(key),
        h.now,
    )))
}

/// Whether any host of a fleet holds a live lease on `key` (an unreadable answer: yes).
fn leased_elsewhere(h: &Handout<'_>, key: &RegistryHost) -> bool {
    h.records.fleet().is_some()
        && h.records
            .leases_everywhere(&[key.as_str().to_owned()], h.now)
            .map_or(true, |l| l.until.is_some_and(|t| h.now < t))
}

/// Makes `key` the pair's active token. Best effort, within the get deadline: a failed
/// switch only means the next get decides again.
fn switch_to(h: &Handout<'_>, key: &RegistryHost) {
    let host = h.registry;
    if let Err(e) = h
        .records
        .set_standby_active(h.short_wait(), host, key != host)
    {
        crate::report::warn(&format!(
            "could not record which token of {host}'s pair is active: {e}"
        ));
    }
}
