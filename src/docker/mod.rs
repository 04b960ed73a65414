//! Docker's `config.json` (and podman's containers-auth.json, the same JSON shape): where it
//! lives, reading it, and pointing its `credHelpers` at this helper without losing anything.
//!
//! `configure-docker` and `login` point docker at this helper by adding
//! `"credHelpers": {"<registry>": "gitlab"}` entries; `doctor` and `status` read the same file.
//! That file belongs to the user and to every other tool that uses docker (Docker Desktop,
//! buildx, other credential helpers, plugins), so editing it must never lose data:
//!
//! * it is parsed as a generic JSON value with insertion order kept, so unknown keys and the
//!   order of keys survive a round trip (docker's own struct round trip drops unknown keys);
//! * a file we cannot understand is reported, never "repaired" or overwritten;
//! * another helper's entry is only replaced when the user asks for it (`--force`);
//! * writes are atomic like docker/cli's `ConfigFile.Save`: symlinks are followed, a temp file
//!   in the target's directory gets the old permissions, is fsynced and renamed over the
//!   original, so a crash or a full disk leaves the old file byte-identical
//!   ([`crate::private_file::Replace::KeepingMode`]);
//! * computing the change ([`plan()`]) is separate from writing it ([`apply`]), so `--dry-run`
//!   and refusals are guaranteed not to touch the file.
//!
//! The rooms: `paths.rs` (where the files live, from the environment snapshot, and
//! `DOCKER_AUTH_CONFIG`), `config.rs` (reading, checking and writing the file; the one rule
//! for which `auths` key is a registry's), `plan.rs` (what `configure-docker` changes and
//! warns about).

mod config;
mod paths;
mod plan;

pub(crate) use config::{ConfigError, helper_for, plaintext_auths, read, same_registry};
#[cfg(test)]
pub(crate) use paths::CONFIG_FILE_NAME;
pub(crate) use paths::{
    DOCKER_AUTH_CONFIG_ENV, containers_auth_path, default_path, docker_auth_config,
};
pub(crate) use plan::configure_with;
#[cfg(test)]
pub(crate) use plan::{Plan, apply, plan};

#[cfg(test)]
mod test_support {
    /// `configure-docker` with no `DOCKER_AUTH_CONFIG`.
    pub fn configure(
        path: &Path,
        registries: &[String],
        helper: &str,
        force: bool,
        dry_run: bool,
    ) -> Result<super::Plan, super::ConfigError> {
        super::configure_with(path, registries, helper, force, dry_run, None)
    }

    use std::fs;
    use std::path::{Path, PathBuf};

    pub const HELPER: &str = "gitlab";
    pub const GITLAB: &str = "registry.gitlab.com";

    pub fn regs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// A fresh `<tmp>/.docker/config.json` path, with `contents` written if given.
    pub fn setup(contents: Option<&str>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".docker").join(super::CONFIG_FILE_NAME);
        if let Some(contents) = contents {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, contents).unwrap();
        }
        (dir, path)
    }

    #[cfg(unix)]
    pub fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }
}
