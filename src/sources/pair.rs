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
    // A token known dead is never handed out: the other one serves while it is not.
    match (active_entry.revoked(), idle_entry.revoked()) {
        (Some(_), None) => {
            switch_to(h, idle);
            return handout::key(h, idle, None);
        }
        (_, Some(_)) => return handout::key(h, active, None),
        (None, None) => {}
    }
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
        PairDecision::Active | PairDecision::Single => match handout::key(h, active, None) {
            // Learnt just now that the active token is dead (it is marked): the idle one.
            Err(e) if e.token_is_dead() => {
                switch_to(h, idle);
                handout::key(h, idle, None)
            }
            other => other,
        },
        // Another host's hand-out of the idle token is still running (a fleet): renewing it
        // now would cut that push. Stay on the active one until it has run out.
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
                    e.mark_if_dead(h.records, h.short_wait(), idle, idle_entry);
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

/// Whether any host holds a live lease on `key` (an unreadable answer: yes). On one
/// machine that is this host's lease, which the pair policy has already weighed.
fn leased_elsewhere(h: &Handout<'_>, key: &RegistryHost) -> bool {
    h.records
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

#[cfg(test)]
mod tests {
    use std::cell::OnceCell;
    use std::time::{Duration, Instant};

    use jiff::SignedDuration;

    use super::*;
    use crate::env::Env;
    use crate::model::{GitLabInfo, TokenKind};
    use crate::records::Records;
    use crate::secret::ExposeSecret;

    const WAIT: Duration = Duration::from_secs(1);

    /// A renewable token far from its expiry (no policy asks GitLab about it).
    fn info(token_id: u64) -> GitLabInfo {
        GitLabInfo {
            scopes: vec!["self_rotate".into()],
            token_id: Some(token_id),
            expires_at: Some(crate::clock::now() + SignedDuration::from_hours(24 * 90)),
            ..GitLabInfo::new("https://gitlab.example", TokenKind::PersonalAccessToken)
        }
    }

    fn save(records: &Records, key: &RegistryHost, secret: &str, token_id: u64) -> Entry {
        records.save_in_memory(key, secret, Some(info(token_id)))
    }

    fn handout<'a>(records: &'a Records, env: &'a Env, host: &'a RegistryHost) -> Handout<'a> {
        Handout {
            records,
            env,
            settings: OnceCell::new(),
            now: crate::clock::now(),
            registry: host,
            deadline: Instant::now() + Duration::from_secs(5),
        }
    }

    /// Makes the memory store's next call for `key` fail.
    fn fail_next_call(key: &RegistryHost) {
        use keyring_core::api::CredentialStoreApi;
        let entry = crate::store::memory()
            .build(crate::store::SERVICE, key.as_str(), None)
            .unwrap();
        let cred: &keyring_core::mock::Cred = entry.as_any().downcast_ref().unwrap();
        cred.set_error(keyring_core::Error::PlatformFailure("injected".into()));
    }

    #[test]
    fn a_token_known_dead_is_refused_before_the_store_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let (records, env) = (Records::at(dir.path()), Env::from_pairs([]));
        let host = RegistryHost::parse("dead.pair.example").unwrap();
        let seen = save(&records, &host, "dead", 1);
        let h = handout(&records, &env, &host);
        let got = handout::key(&h, &host, None).unwrap().unwrap();
        assert_eq!(got.1.expose_secret(), "dead", "not known dead yet");

        records.mark_revoked(WAIT, &host, &seen, "why").unwrap();
        fail_next_call(&host);
        let err = handout::key(&h, &host, None).unwrap_err();
        assert!(matches!(err, Error::Revoked { .. }), "{err}");
        assert!(err.token_is_dead());
        let line = err.to_string();
        assert!(line.contains("revoked elsewhere (why;"), "{line}");
        assert!(
            line.ends_with("docker-credential-gitlab login dead.pair.example"),
            "{line}"
        );
    }

    #[test]
    fn a_pair_hands_out_whichever_token_is_not_known_dead() {
        let dir = tempfile::tempdir().unwrap();
        let (records, env) = (Records::at(dir.path()), Env::from_pairs([]));
        let host = RegistryHost::parse("pair.pair.example").unwrap();
        let standby = host.standby();
        let first = save(&records, &host, "first", 1);
        save(&records, &standby, "second", 2);
        let h = handout(&records, &env, &host);
        let pair = |records: &Records| {
            let primary = records.held(&host).unwrap().unwrap().entry;
            let second = records.held(&standby).unwrap().unwrap().entry;
            get(&h, &primary, &second).map(|got| got.unwrap().1.expose_secret().to_owned())
        };
        assert_eq!(pair(&records).unwrap(), "first");

        records.mark_revoked(WAIT, &host, &first, "why").unwrap();
        assert_eq!(pair(&records).unwrap(), "second");
        let primary = records.held(&host).unwrap().unwrap().entry;
        assert!(primary.standby_active(), "the switch is recorded");
        assert_eq!(pair(&records).unwrap(), "second");

        // Both known dead: the active one's line.
        let second = records.held(&standby).unwrap().unwrap().entry;
        records
            .mark_revoked(WAIT, &standby, &second, "too")
            .unwrap();
        let err = pair(&records).unwrap_err();
        assert!(err.to_string().contains("(too;"), "{err}");
    }
}
