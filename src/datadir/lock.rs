//! The data directory's two locks, both cross-process file locks:
//!
//! - the state write lock (`state.lock`): every read-modify-write of the state file and of
//!   the `file` secret store happens under it. A [`WriteGuard`] is the only way to save, so
//!   the lock cannot be forgotten.
//! - a renewal lock per token (`locks/<token>.lock`, a [`TokenLock`]): one renewal at a
//!   time, shared by every registry key holding the same token.
//!
//! Readers take no lock: writers replace files atomically.

use std::fs::{File, TryLockError};
use std::io;
use std::time::{Duration, Instant};

use super::error::StateError;
use super::{DataDir, LOCK_DEADLINE};
use crate::private_file;
use crate::registry::RegistryHost;

/// Takes an exclusive lock on `file`, waiting until `until` at most: std's lock has no
/// timeout, so poll `try_lock` with a short backoff. `Ok(false)` means the wait ran out.
fn lock_until(file: &File, until: Instant) -> io::Result<bool> {
    let mut pause = Duration::from_millis(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(TryLockError::WouldBlock) if Instant::now() < until => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Opens (creating it, and its directory, 0600/0700) and locks the file at `path`.
fn lock_file(path: &std::path::Path, until: Instant) -> io::Result<Option<File>> {
    private_file::create_dir(path.parent().expect("a lock file has a directory"))?;
    let file = private_file::open(path, false)?;
    Ok(lock_until(&file, until)?.then_some(file))
}

/// Proof that this process holds the state write lock. Dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct WriteGuard<'a> {
    file: File,
    owner: &'a DataDir,
}

impl WriteGuard<'_> {
    /// The data directory this lock guards (state file, `file` secret store).
    pub fn dir(&self) -> &DataDir {
        self.owner
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl DataDir {
    /// Takes the state write lock, waiting at most [`LOCK_DEADLINE`].
    pub fn lock(&self) -> Result<WriteGuard<'_>, StateError> {
        self.lock_with_deadline(LOCK_DEADLINE)
    }

    pub fn lock_with_deadline(&self, wait: Duration) -> Result<WriteGuard<'_>, StateError> {
        let path = self.state_lock();
        match lock_file(&path, Instant::now() + wait) {
            Ok(Some(file)) => Ok(WriteGuard { file, owner: self }),
            Ok(None) => Err(StateError::LockTimeout { path }),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// Takes the renewal lock of the token `group`, waiting until `until` at most.
    /// `Ok(None)`: another process held it all that time.
    pub fn lock_token(
        &self,
        group: &RegistryHost,
        until: Instant,
    ) -> Result<Option<TokenLock>, String> {
        let path = self.token_lock(group);
        lock_file(&path, until)
            .map(|file| file.map(TokenLock))
            .map_err(|e| format!("cannot lock {}: {e}", path.display()))
    }
}

/// A token's renewal lock, held for the whole renewal.
#[derive(Debug)]
pub(crate) struct TokenLock(File);

impl Drop for TokenLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_waits_then_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::at(dir.path());
        let _held = data.lock().unwrap();
        // A second handle in the same process still conflicts (flock is per open file).
        let start = Instant::now();
        let err = data
            .lock_with_deadline(Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(err, StateError::LockTimeout { .. }));
        assert!(start.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    fn one_renewal_lock_per_token() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::at(dir.path());
        let group = RegistryHost::parse("lock.example").unwrap();
        let other = RegistryHost::parse("other.example").unwrap();
        let soon = || Instant::now() + Duration::from_millis(50);
        let held = data.lock_token(&group, soon()).unwrap();
        assert!(held.is_some());
        assert!(data.lock_token(&group, soon()).unwrap().is_none());
        assert!(data.lock_token(&other, soon()).unwrap().is_some());
        drop(held);
        assert!(data.lock_token(&group, soon()).unwrap().is_some());
    }
}
