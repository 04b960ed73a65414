//! Hand-out records ("leases") and once-a-day warning stamps.
//!
//! `get` records when it last handed a secret out, so renewal can respect Invariant B.
//! Each record is a tiny sidecar file next to the state file (`leases/<registry>`) holding a
//! timestamp, written without the state lock: the steady `get` path must stay lock-free,
//! and a lost race between two hand-outs only loses a timestamp a few microseconds older.
//! An unreadable record counts as "just handed out", the safe reading.

use std::path::Path;

use jiff::{SignedDuration, Timestamp};

use super::DataDir;
use crate::private_file;
use crate::registry::RegistryHost;

/// Writes a small record, creating its directory on first use.
fn write_record(path: &Path, text: &str) {
    if private_file::write(path, text).is_err()
        && let Some(parent) = path.parent()
        && private_file::create_dir(parent).is_ok()
    {
        let _ = private_file::write(path, text);
    }
}

/// Records a hand-out at `now` promised valid for `promise`: the lease lasts until
/// `now + promise`, or longer if an earlier hand-out promised more, and counts the
/// hand-outs whose promise is still running. The first write creates the directory.
pub(crate) fn record_handout(
    dir: &DataDir,
    host: &RegistryHost,
    now: Timestamp,
    promise: SignedDuration,
) {
    let promised = now.checked_add(promise).unwrap_or(Timestamp::MAX);
    let (until, count) = match read(dir, host) {
        Some(l) if now < l.until => (promised.max(l.until), l.count + 1),
        _ => (promised, 1),
    };
    write_record(&dir.lease(host), &format!("{now} {until} {count}"));
}

/// The latest promise over several keys holding one token (`host` and `host:443`).
pub(crate) fn lease_until_any(dir: &DataDir, keys: &[String]) -> Option<Timestamp> {
    keys.iter()
        .filter_map(|k| RegistryHost::from_key(k).ok())
        .filter_map(|h| lease_until(dir, &h))
        .max()
}

/// Hand-outs still inside their promise, over every key holding the token.
pub(crate) fn live_handouts_any(dir: &DataDir, keys: &[String], now: Timestamp) -> u64 {
    keys.iter()
        .filter_map(|k| RegistryHost::from_key(k).ok())
        .map(|h| live_handouts(dir, &h, now))
        .sum()
}

/// Forgets the records of a key that was logged out: its lease, cuts and warning stamps.
pub(crate) fn forget(dir: &DataDir, host: &RegistryHost) {
    for path in [dir.lease(host), dir.cut(host)]
        .into_iter()
        .chain(dir.warned_all(host))
    {
        let _ = std::fs::remove_file(path);
    }
}

struct Lease {
    until: Timestamp,
    count: u64,
}

/// The file holds `<handed out> <until> <live hand-outs>`; older versions wrote only the
/// hand-out time (their promise: the default 60 min). An unreadable file counts as "just
/// handed out", the safe reading.
fn read(dir: &DataDir, host: &RegistryHost) -> Option<Lease> {
    let text = std::fs::read_to_string(dir.lease(host)).ok()?;
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
pub(crate) fn lease_until(dir: &DataDir, host: &RegistryHost) -> Option<Timestamp> {
    read(dir, host).map(|l| l.until)
}

/// How many hand-outs of `host`'s secret are still inside their promise at `now` (counted
/// since the promises last all ran out).
pub(crate) fn live_handouts(dir: &DataDir, host: &RegistryHost, now: Timestamp) -> u64 {
    read(dir, host)
        .filter(|l| now < l.until)
        .map_or(0, |l| l.count)
}

/// Records that a renewal revoked `count` hand-outs inside their promise (for `status` and
/// `doctor`).
pub(crate) fn record_cut(dir: &DataDir, host: &RegistryHost, now: Timestamp, count: u64) {
    write_record(&dir.cut(host), &format!("{now} {count}"));
}

/// The last renewal that cut live hand-outs: when, and how many.
pub(crate) fn last_cut(dir: &DataDir, host: &RegistryHost) -> Option<(Timestamp, u64)> {
    let text = std::fs::read_to_string(dir.cut(host)).ok()?;
    let mut parts = text.split_whitespace();
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// True once per UTC day per registry and topic: for warnings that must not repeat on
/// every docker command.
pub(crate) fn first_warning_today(
    dir: &DataDir,
    host: &RegistryHost,
    topic: &str,
    now: Timestamp,
) -> bool {
    first_warning(dir, host, topic, &now.strftime("%Y-%m-%d").to_string())
}

/// True the first time `topic` is warned about for `host` with this `stamp` (a day, a
/// token's expiry): the stamp is kept, and the same one warns no more.
pub(crate) fn first_warning(dir: &DataDir, host: &RegistryHost, topic: &str, stamp: &str) -> bool {
    let path = dir.warned(host, topic);
    if std::fs::read_to_string(&path).is_ok_and(|d| d.trim() == stamp) {
        return false;
    }
    write_record(&path, stamp);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_keep_the_longest_promise() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::at(tmp.path());
        let host = RegistryHost::parse("gitlab.example.com:5050").unwrap();
        assert_eq!(lease_until(&dir, &host), None);
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        let h = SignedDuration::from_hours;
        record_handout(&dir, &host, t, h(36));
        assert_eq!(lease_until(&dir, &host), Some(t + h(36)));
        // A later hand-out with a shorter promise does not shorten the earlier one.
        record_handout(&dir, &host, t + h(1), h(1));
        assert_eq!(lease_until(&dir, &host), Some(t + h(36)));
        assert!(lease_until(&dir, &host).is_some_and(|u| t + h(35) < u));
        assert_eq!(live_handouts(&dir, &host, t + h(35)), 2);
        assert!(lease_until(&dir, &host).is_some_and(|u| t + h(36) >= u));
        record_handout(&dir, &host, t + h(40), h(1));
        assert_eq!(lease_until(&dir, &host), Some(t + h(41)));
        // The earlier promises had run out: counting starts again.
        assert_eq!(live_handouts(&dir, &host, t + h(40)), 1);
        assert_eq!(live_handouts(&dir, &host, t + h(41)), 0);
        record_cut(&dir, &host, t, 3);
        assert_eq!(last_cut(&dir, &host), Some((t, 3)));
        // An older version's file (hand-out only) promised the default 60 min.
        std::fs::write(dir.lease(&host), t.to_string()).unwrap();
        assert_eq!(
            lease_until(&dir, &host),
            Some(t + SignedDuration::from_mins(60))
        );
    }

    #[test]
    fn warnings_once_a_day() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::at(tmp.path());
        let host = RegistryHost::parse("r.example.com").unwrap();
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        assert!(first_warning_today(&dir, &host, "expiry", t));
        assert!(!first_warning_today(&dir, &host, "expiry", t));
        assert!(first_warning_today(&dir, &host, "renewal", t));
        let tomorrow = t + jiff::SignedDuration::from_hours(24);
        assert!(first_warning_today(&dir, &host, "expiry", tomorrow));
    }

    #[test]
    fn forgetting_a_key_ends_its_records_and_no_other_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::at(tmp.path());
        let host = RegistryHost::parse("r.example").unwrap();
        let longer = RegistryHost::parse("r.example.com").unwrap();
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        for key in [&host, &longer] {
            record_handout(&dir, key, t, SignedDuration::from_mins(60));
            record_cut(&dir, key, t, 1);
            assert!(first_warning_today(&dir, key, "expiry", t));
            assert!(first_warning_today(&dir, key, "kept-due", t));
        }
        forget(&dir, &host);
        assert_eq!(
            (lease_until(&dir, &host), last_cut(&dir, &host)),
            (None, None)
        );
        assert!(first_warning_today(&dir, &host, "expiry", t));
        assert!(first_warning_today(&dir, &host, "kept-due", t));
        assert!(lease_until(&dir, &longer).is_some() && last_cut(&dir, &longer).is_some());
        assert!(!first_warning_today(&dir, &longer, "expiry", t));
        assert!(!first_warning_today(&dir, &longer, "kept-due", t));
    }
}
