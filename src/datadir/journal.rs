//! The journal of a renewal in flight: written before GitLab is asked to rotate or refresh a
//! token, removed once the outcome is known and stored. One that outlives its process says
//! the outcome is unknown: every `get` resolves it before it hands anything out.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::DataDir;
use crate::private_file;
use crate::registry::RegistryHost;

/// What a journal records (never a secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub started_at: Timestamp,
    #[serde(default)]
    pub token_id: Option<u64>,
    /// The `stored_at` of the entry being renewed.
    #[serde(default)]
    pub stored_at: Option<Timestamp>,
    #[serde(default)]
    pub pid: Option<u32>,
    /// The fleet host that started it, when not this one (a fleet's claim in Vault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl DataDir {
    /// Records a renewal of the token `group` as started now.
    pub fn open_journal(&self, group: &RegistryHost, journal: &Journal) -> Result<(), String> {
        let path = self.journal(group);
        let json = serde_json::to_vec(journal).expect("a journal serialises");
        private_file::replace(&path, &json)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// The open journal of `group`, if any. An unreadable one counts as started long ago,
    /// so it is resolved rather than waited out.
    pub fn read_journal(&self, group: &RegistryHost) -> Option<Journal> {
        let text = std::fs::read(self.journal(group)).ok()?;
        Some(serde_json::from_slice(&text).unwrap_or(Journal {
            started_at: Timestamp::UNIX_EPOCH,
            token_id: None,
            stored_at: None,
            pid: None,
            host: None,
        }))
    }

    /// Whether a renewal of `group` is open (one `stat`: cheap enough for every `get`).
    pub fn journal_open(&self, group: &RegistryHost) -> bool {
        self.journal(group).exists()
    }

    pub fn close_journal(&self, group: &RegistryHost) {
        let _ = std::fs::remove_file(self.journal(group));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_round_trips_and_an_unreadable_one_is_old() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::at(tmp.path());
        let group = RegistryHost::parse("journal.example").unwrap();
        assert!(!dir.journal_open(&group) && dir.read_journal(&group).is_none());
        let j = Journal {
            started_at: Timestamp::from_second(1_800_000_000).unwrap(),
            token_id: Some(7),
            stored_at: None,
            pid: Some(1),
            host: None,
        };
        dir.open_journal(&group, &j).unwrap();
        assert!(dir.journal_open(&group));
        assert_eq!(dir.read_journal(&group), Some(j));
        // Older versions wrote timestamps as strings with other keys: still read.
        std::fs::write(
            dir.journal(&group),
            r#"{"started_at":"2027-01-15T08:00:00Z","pid":3}"#,
        )
        .unwrap();
        assert_eq!(
            dir.read_journal(&group).unwrap().started_at,
            "2027-01-15T08:00:00Z".parse::<Timestamp>().unwrap()
        );
        std::fs::write(dir.journal(&group), "garbage").unwrap();
        assert_eq!(
            dir.read_journal(&group).unwrap().started_at,
            Timestamp::UNIX_EPOCH
        );
        dir.close_journal(&group);
        assert!(!dir.journal_open(&group));
    }
}
