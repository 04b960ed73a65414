//! A stored token known to be dead: GitLab said it was rotated or revoked elsewhere
//! (`…/self` lists it as revoked with no renewal of ours to explain it, the rotate endpoint
//! or `/jwt/auth` answered 401), or a renewal here rotated it and its answer was lost.
//! The entry keeps a mark, `"revoked": {"at", "reason", "stored_at"}`, so that no later
//! `get` hands the token out or asks GitLab about it again.
//!
//! The mark names the `stored_at` of the entry it was learnt about: a `login`, `store` or
//! renewal that replaces the token gives the entry a new `stored_at`, and the mark no longer
//! applies (a `login`/`store` also drops it). A `docker login` round trip (`get` then `store`
//! with what `get` handed out) leaves the entry, and the mark, as they are.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Entry, Error, REVOKED, Records, keys_sharing};
use crate::registry::RegistryHost;

/// What is known about a dead token, and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Revoked {
    /// When this machine learnt it.
    pub at: Timestamp,
    /// How it was learnt, as the one line of `get` says it.
    pub reason: String,
    /// The `stored_at` of the entry it is about.
    pub stored_at: Timestamp,
}

impl Revoked {
    /// When it was learnt, to the second, as messages show it.
    pub fn learnt_at(&self) -> String {
        self.at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
    }
}

impl Entry {
    /// The mark saying this entry's token is dead, if it is about the token the entry holds.
    pub fn revoked(&self) -> Option<Revoked> {
        let mark: Revoked = serde_json::from_value(self.extra.get(REVOKED)?.clone()).ok()?;
        (mark.stored_at == self.stored_at).then_some(mark)
    }
}

impl Records {
    /// Marks the token `key` held when it was read as `seen` dead, for `key` and every key
    /// holding the same token, under the state write lock (waiting `wait` at most). A key
    /// already marked keeps its first mark. `false` when `key` holds something else by now
    /// (a renewal or login since, or erased): then nothing is marked.
    pub fn mark_revoked(
        &self,
        wait: Duration,
        key: &RegistryHost,
        seen: &Entry,
        reason: &str,
    ) -> Result<bool, Error> {
        if let Some(f) = &self.fleet {
            // The whole fleet learns it: the mark is in the record in Vault.
            let mark = Revoked {
                at: crate::clock::now(),
                reason: reason.to_owned(),
                stored_at: seen.stored_at,
            };
            return f.mark(key.as_str(), seen.stored_at, |e| {
                e.extra.insert(
                    REVOKED.into(),
                    serde_json::to_value(&mark).expect("a mark serialises"),
                );
            });
        }
        let guard = self.dir.lock_with_deadline(wait)?;
        let mut state = guard.load()?;
        let Some(entry) = state.entries.get(key.as_str()) else {
            return Ok(false);
        };
        if entry.stored_at != seen.stored_at {
            return Ok(false);
        }
        let at = crate::clock::now();
        let mut changed = false;
        for k in keys_sharing(&state, key, entry) {
            let e = state.entries.get_mut(&k).expect("listed from the state");
            if e.revoked().is_some() {
                continue;
            }
            changed = true;
            let mark = Revoked {
                at,
                reason: reason.to_owned(),
                stored_at: e.stored_at,
            };
            e.extra.insert(
                REVOKED.into(),
                serde_json::to_value(mark).expect("a mark serialises"),
            );
        }
        if changed {
            guard.save(&state)?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GitLabInfo, TokenKind};
    use crate::secret::Secret;

    const WAIT: Duration = Duration::from_secs(1);

    fn host(s: &str) -> RegistryHost {
        RegistryHost::parse(s).unwrap()
    }

    fn info(token_id: u64) -> GitLabInfo {
        GitLabInfo {
            token_id: Some(token_id),
            ..GitLabInfo::new("https://gitlab.example", TokenKind::PersonalAccessToken)
        }
    }

    fn save(records: &Records, key: &RegistryHost, secret: &str, gitlab: Option<GitLabInfo>) {
        records.save_in_memory(key, secret, gitlab);
    }

    fn entry(records: &Records, key: &RegistryHost) -> Entry {
        records.held(key).unwrap().unwrap().entry
    }

    #[test]
    fn marks_every_key_holding_the_token_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::at(dir.path());
        let (a, b, other) = (
            host("a.revoked.example"),
            host("b.revoked.example"),
            host("other.revoked.example"),
        );
        save(&records, &a, "dead", Some(info(7)));
        save(&records, &b, "dead", Some(info(7)));
        save(&records, &other, "live", Some(info(8)));
        let seen = entry(&records, &a);
        assert!(seen.revoked().is_none());

        assert!(records.mark_revoked(WAIT, &a, &seen, "why").unwrap());
        let mark = entry(&records, &a).revoked().unwrap();
        assert_eq!(mark.reason, "why");
        assert_eq!(mark.stored_at, seen.stored_at);
        assert!(entry(&records, &b).revoked().is_some(), "the sharing key");
        assert!(entry(&records, &other).revoked().is_none());
        // Marked again (another process learnt it too): the first mark stays.
        let seen_b = entry(&records, &b);
        assert!(records.mark_revoked(WAIT, &b, &seen_b, "later").unwrap());
        assert_eq!(entry(&records, &a).revoked().unwrap(), mark);
        // It survives a round trip through the state file as it is.
        let text = std::fs::read_to_string(records.dir().state_file()).unwrap();
        assert!(text.contains("\"revoked\""), "{text}");
    }

    #[test]
    fn a_token_replaced_since_it_was_read_is_not_marked() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::at(dir.path());
        let a = host("replaced.revoked.example");
        save(&records, &a, "old", Some(info(1)));
        let seen = entry(&records, &a);
        // Renewed by another process meanwhile: the new token is not the dead one.
        records
            .commit_renewal(WAIT, &a, &seen, &Secret::from("new"), info(2))
            .unwrap();
        assert!(!records.mark_revoked(WAIT, &a, &seen, "why").unwrap());
        assert!(entry(&records, &a).revoked().is_none());
        assert!(
            !records
                .mark_revoked(WAIT, &host("none.revoked.example"), &seen, "why")
                .unwrap()
        );
    }

    #[test]
    fn a_login_or_a_renewal_ends_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::at(dir.path());
        let a = host("ends.revoked.example");
        save(&records, &a, "old", Some(info(1)));
        let seen = entry(&records, &a);
        records.mark_revoked(WAIT, &a, &seen, "why").unwrap();
        // A renewal (a kept token adopted, say) stores a new token: the mark is about the old.
        let marked = entry(&records, &a);
        records
            .commit_renewal(WAIT, &a, &marked, &Secret::from("new"), info(2))
            .unwrap();
        assert!(entry(&records, &a).revoked().is_none());

        let seen = entry(&records, &a);
        records.mark_revoked(WAIT, &a, &seen, "why").unwrap();
        // docker login's round trip (`store` with what `get` would hand out) keeps it.
        save(&records, &a, "new", None);
        assert!(entry(&records, &a).revoked().is_some());
        // A new secret replaces the entry.
        save(&records, &a, "fresh", Some(info(3)));
        let fresh = entry(&records, &a);
        assert!(fresh.revoked().is_none());
        assert!(!fresh.extra.contains_key(REVOKED));
    }
}
