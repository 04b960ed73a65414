//! What can go wrong with the state file and its lock. Each `Display` is one line with the fix.

use std::io;
use std::path::PathBuf;

use super::{LOCK_DEADLINE, NoDataDir};

#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    #[error(transparent)]
    NoDataDir(#[from] NoDataDir),
    #[error("cannot access {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "state file {} is corrupt ({reason}); the next docker login or docker-credential-gitlab login sets it aside \
         and starts afresh (secrets stay in their store), or move it away yourself",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "state file {} was written by a newer docker-credential-gitlab (format {found}); upgrade this binary",
        path.display()
    )]
    TooNew { path: PathBuf, found: u32 },
    #[error(
        "another docker-credential-gitlab process has held {} for over {}s; if none is running, delete that file",
        path.display(), LOCK_DEADLINE.as_secs()
    )]
    LockTimeout { path: PathBuf },
}
