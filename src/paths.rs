//! Where the helper keeps its files.
//!
//! Secrets never go here: only the non-secret state file and its lock. The directory is
//! `$DOCKER_CREDENTIAL_GITLAB_DATA_DIR` when set (tests, CI images, unusual homes), else the
//! platform data directory (`~/.local/share/docker-credential-gitlab` on Linux).

use std::path::PathBuf;

/// Overrides the data directory.
pub const DATA_DIR_ENV: &str = "DOCKER_CREDENTIAL_GITLAB_DATA_DIR";

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot find a home directory for the state file: set HOME, or set {DATA_DIR_ENV} to a private directory"
)]
pub struct NoDataDir;

pub fn data_dir() -> Result<PathBuf, NoDataDir> {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", crate::BINARY_NAME)
        .map(|p| p.data_dir().to_path_buf())
        .ok_or(NoDataDir)
}
