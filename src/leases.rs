//! Hand-out records ("leases") and once-a-day warning stamps.
//!
//! `get` records when it last handed a secret out, so renewal can respect Invariant B.
//! Each record is a tiny sidecar file next to the state file (`leases/<registry>`) holding a
//! timestamp, written without the state lock: the steady `get` path must stay lock-free,
//! and a lost race between two hand-outs only loses a timestamp a few microseconds older.
//! An unreadable record counts as "just handed out", the safe reading.

use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};

use crate::private_file::write as write_private;
use crate::registry::RegistryHost;

fn file(dir: &Path, kind: &str, host: &RegistryHost) -> PathBuf {
    dir.join(kind).join(host.file_name())
}

/// Where `host`'s hand-out record lives, next to the state file in `dir`.
pub fn record_path(dir: &Path, host: &RegistryHost) -> PathBuf {
    file(dir, "leases", host)
}

/// Records a hand-out at `now` promised valid for `promise`: the lease lasts until
/// `now + promise`, or longer if an earlier hand-out promised more, and counts the
/// hand-outs whose promise is still running. The first write creates the directory.
pub fn record_handout(dir: &Path, host: &RegistryHost, now: Timestamp, promise: SignedDuration) {
    let path = record_path(dir, host);
    let promised = now.checked_add(promise).unwrap_or(Timestamp::MAX);
    let (until, count) = match read(dir, host) {
        Some(l) if now < l.until => (promised.max(l.until), l.count + 1),
        _ => (promised, 1),
    };
    let text = format!("{now} {until} {count}");
    if write_private(&path, &text).is_err()
        && let Some(parent) = path.parent()
        && crate::private_file::create_dir(parent).is_ok()
    {
        let _ = write_private(&path, &text);
    }
}

/// The latest promise over several keys holding one token (`host` and `host:443`).
pub fn lease_until_any(dir: &Path, keys: &[String]) -> Option<Timestamp> {
    keys.iter()
        .filter_map(|k| RegistryHost::from_key(k).ok())
        .filter_map(|h| lease_until(dir, &h))
        .max()
}

/// Whether a hand-out through any of `keys` is still inside its promise.
pub fn live_any(dir: &Path, keys: &[String], now: Timestamp) -> bool {
    lease_until_any(dir, keys).is_some_and(|t| now < t)
}

/// Hand-outs still inside their promise, over every key holding the token.
pub fn live_handouts_any(dir: &Path, keys: &[String], now: Timestamp) -> u64 {
    keys.iter()
        .filter_map(|k| RegistryHost::from_key(k).ok())
        .map(|h| live_handouts(dir, &h, now))
        .sum()
}

/// Forgets the records of a key that was logged out.
pub fn forget(dir: &Path, host: &RegistryHost) {
    for kind in ["leases", "cuts"] {
        let _ = std::fs::remove_file(file(dir, kind, host));
    }
}

struct Lease {
    until: Timestamp,
    count: u64,
}

/// The file holds `<handed out> <until> <live hand-outs>`; older versions wrote only the
/// hand-out time (their promise: the default 60 min). An unreadable file counts as "just
/// handed out", the safe reading.
fn read(dir: &Path, host: &RegistryHost) -> Option<Lease> {
    let text = std::fs::read_to_string(record_path(dir, host)).ok()?;
    let mut parts = text.split_whitespace();
    let default = crate::settings::DEFAULT_MIN_VALIDITY;
    let at = parts.next().and_then(|t| t.parse::<Timestamp>().ok());
    let until = parts.next().and_then(|t| t.parse::<Timestamp>().ok());
    let count = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
    Some(match (at, until) {
        (Some(_), Some(until)) => Lease { until, count },
        (Some(at), None) => Lease {
            until: at.checked_add(default).unwrap_or(Timestamp::MAX),
            count,
        },
        _ => Lease {
            until: crate::clock::now()
                .checked_add(default)
                .unwrap_or(Timestamp::MAX),
            count,
        },
    })
}

/// Until when the latest promise for `host` runs.
pub fn lease_until(dir: &Path, host: &RegistryHost) -> Option<Timestamp> {
    read(dir, host).map(|l| l.until)
}

/// Whether a hand-out's promise for `host` is still running at `now`.
pub fn live(dir: &Path, host: &RegistryHost, now: Timestamp) -> bool {
    lease_until(dir, host).is_some_and(|t| now < t)
}

/// How many hand-outs of `host`'s secret are still inside their promise at `now` (counted
/// since the promises last all ran out).
pub fn live_handouts(dir: &Path, host: &RegistryHost, now: Timestamp) -> u64 {
    read(dir, host)
        .filter(|l| now < l.until)
        .map_or(0, |l| l.count)
}

/// Records that a renewal revoked `count` hand-outs inside their promise (for `status` and
/// `doctor`).
pub fn record_cut(dir: &Path, host: &RegistryHost, now: Timestamp, count: u64) {
    let path = file(dir, "cuts", host);
    if let Some(parent) = path.parent() {
        let _ = crate::private_file::create_dir(parent);
    }
    let _ = write_private(&path, &format!("{now} {count}"));
}

/// The last renewal that cut live hand-outs: when, and how many.
pub fn last_cut(dir: &Path, host: &RegistryHost) -> Option<(Timestamp, u64)> {
    let text = std::fs::read_to_string(file(dir, "cuts", host)).ok()?;
    let mut parts = text.split_whitespace();
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// True once per UTC day per registry and topic: for warnings that must not repeat on
/// every docker command.
pub fn first_warning_today(dir: &Path, host: &RegistryHost, topic: &str, now: Timestamp) -> bool {
    let path = dir
        .join("warned")
        .join(format!("{}.{topic}", host.file_name()));
    let today = now.strftime("%Y-%m-%d").to_string();
    if std::fs::read_to_string(&path).is_ok_and(|d| d.trim() == today) {
        return false;
    }
    if let Some(parent) = path.parent() {
        let _ = crate::private_file::create_dir(parent);
    }
    let _ = write_private(&path, &today);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_keep_the_longest_promise() {
        let dir = tempfile::tempdir().unwrap();
        let host = RegistryHost::parse("gitlab.example.com:5050").unwrap();
        assert_eq!(lease_until(dir.path(), &host), None);
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        let h = SignedDuration::from_hours;
        record_handout(dir.path(), &host, t, h(36));
        assert_eq!(lease_until(dir.path(), &host), Some(t + h(36)));
        // A later hand-out with a shorter promise does not shorten the earlier one.
        record_handout(dir.path(), &host, t + h(1), h(1));
        assert_eq!(lease_until(dir.path(), &host), Some(t + h(36)));
        assert!(live(dir.path(), &host, t + h(35)));
        assert_eq!(live_handouts(dir.path(), &host, t + h(35)), 2);
        assert!(!live(dir.path(), &host, t + h(36)));
        record_handout(dir.path(), &host, t + h(40), h(1));
        assert_eq!(lease_until(dir.path(), &host), Some(t + h(41)));
        // The earlier promises had run out: counting starts again.
        assert_eq!(live_handouts(dir.path(), &host, t + h(40)), 1);
        assert_eq!(live_handouts(dir.path(), &host, t + h(41)), 0);
        record_cut(dir.path(), &host, t, 3);
        assert_eq!(last_cut(dir.path(), &host), Some((t, 3)));
        // An older version's file (hand-out only) promised the default 60 min.
        std::fs::write(record_path(dir.path(), &host), t.to_string()).unwrap();
        assert_eq!(
            lease_until(dir.path(), &host),
            Some(t + SignedDuration::from_mins(60))
        );
    }

    #[test]
    fn warnings_once_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let host = RegistryHost::parse("r.example.com").unwrap();
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        assert!(first_warning_today(dir.path(), &host, "expiry", t));
        assert!(!first_warning_today(dir.path(), &host, "expiry", t));
        assert!(first_warning_today(dir.path(), &host, "renewal", t));
        let tomorrow = t + jiff::SignedDuration::from_hours(24);
        assert!(first_warning_today(dir.path(), &host, "expiry", tomorrow));
    }
}
