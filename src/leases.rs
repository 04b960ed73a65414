//! Hand-out records ("leases") and once-a-day warning stamps.
//!
//! `get` records when it last handed a secret out, so renewal can respect Invariant B.
//! Each record is a tiny sidecar file next to the state file (`leases/<registry>`) holding a
//! timestamp, written without the state lock: the steady `get` path must stay lock-free,
//! and a lost race between two hand-outs only loses a timestamp a few microseconds older.
//! An unreadable record counts as "just handed out", the safe reading.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::private_file::write as write_private;
use crate::registry::RegistryHost;

fn file(dir: &Path, kind: &str, host: &RegistryHost) -> PathBuf {
    dir.join(kind).join(host.file_name())
}

/// Records a hand-out at `now`. The first write creates the directory.
pub fn record_handout(dir: &Path, host: &RegistryHost, now: Timestamp) {
    let path = file(dir, "leases", host);
    if write_private(&path, &now.to_string()).is_err()
        && let Some(parent) = path.parent()
        && std::fs::create_dir_all(parent).is_ok()
    {
        let _ = write_private(&path, &now.to_string());
    }
}

/// When the secret for `host` was last handed out.
pub fn last_handout(dir: &Path, host: &RegistryHost) -> Option<Timestamp> {
    let text = std::fs::read_to_string(file(dir, "leases", host)).ok()?;
    Some(text.trim().parse().unwrap_or_else(|_| Timestamp::now()))
}

/// True once per UTC day per registry and topic: for warnings that must not repeat on
/// every docker command.
pub fn first_warning_today(dir: &Path, host: &RegistryHost, now: Timestamp) -> bool {
    let path = file(dir, "warned", host);
    let today = now.strftime("%Y-%m-%d").to_string();
    if std::fs::read_to_string(&path).is_ok_and(|d| d.trim() == today) {
        return false;
    }
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = write_private(&path, &today);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handouts_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let host = RegistryHost::parse("gitlab.example.com:5050").unwrap();
        assert_eq!(last_handout(dir.path(), &host), None);
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        record_handout(dir.path(), &host, t);
        assert_eq!(last_handout(dir.path(), &host), Some(t));
    }

    #[test]
    fn warnings_once_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let host = RegistryHost::parse("r.example.com").unwrap();
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        assert!(first_warning_today(dir.path(), &host, t));
        assert!(!first_warning_today(dir.path(), &host, t));
        let tomorrow = t + jiff::SignedDuration::from_hours(24);
        assert!(first_warning_today(dir.path(), &host, tomorrow));
    }
}
