//! Where docker's `config.json` and podman's `auth.json` live, from the environment
//! snapshot (`DOCKER_CONFIG`, `HOME`, `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::env::{self, Env};

/// Environment variable holding inline credentials that docker CLI >= 28.3 consults before
/// any credential helper (docker/cli#6156).
pub(crate) const DOCKER_AUTH_CONFIG_ENV: &str = env::DOCKER_AUTH_CONFIG;

/// Name of the file inside the docker configuration directory.
pub const CONFIG_FILE_NAME: &str = "config.json";

/// Where docker reads its configuration: `$DOCKER_CONFIG/config.json` when `DOCKER_CONFIG` is
/// set and non-empty, else `<home>/.docker/config.json`.
///
/// The home directory is `$HOME`; on Windows it is `%USERPROFILE%` (what docker itself uses),
/// falling back to `$HOME`. `None` when no home can be found, so the caller can ask for
/// `DOCKER_CONFIG` instead of guessing. docker's `--config` flag is not visible to us.
pub(crate) fn default_path(env: &Env) -> Option<PathBuf> {
    let home = if cfg!(windows) {
        env.os(env::USERPROFILE).or_else(|| env.os(env::HOME))
    } else {
        env.os(env::HOME)
    };
    path_from(env.os(env::DOCKER_CONFIG).cloned(), home.cloned())
}

/// Where podman, buildah and skopeo look first for credentials (containers-auth.json, the
/// same JSON shape as `config.json`), in containers/image's order: `$REGISTRY_AUTH_FILE`,
/// else `$XDG_RUNTIME_DIR/containers/auth.json`, else on Linux
/// `/run/containers/<uid>/auth.json` and elsewhere `~/.config/containers/auth.json`.
pub(crate) fn containers_auth_path(env: &Env) -> Option<PathBuf> {
    if let Some(file) = env.path(env::REGISTRY_AUTH_FILE) {
        return Some(file);
    }
    if let Some(dir) = env.path(env::XDG_RUNTIME_DIR) {
        return Some(dir.join("containers").join("auth.json"));
    }
    #[cfg(target_os = "linux")]
    {
        // The process's uid without libc: /proc/self belongs to it.
        use std::os::unix::fs::MetadataExt as _;
        let uid = std::fs::metadata("/proc/self").ok()?.uid();
        Some(PathBuf::from(format!("/run/containers/{uid}/auth.json")))
    }
    #[cfg(not(target_os = "linux"))]
    {
        env.path(env::HOME)
            .map(|home| home.join(".config/containers/auth.json"))
    }
}

/// The process's `DOCKER_AUTH_CONFIG`, for `configure-docker`'s warning.
pub(crate) fn docker_auth_config(env: &Env) -> Option<String> {
    env.os(env::DOCKER_AUTH_CONFIG)
        .map(|v| v.to_string_lossy().into_owned())
}

fn path_from(docker_config: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    match docker_config.filter(|d| !d.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join(CONFIG_FILE_NAME)),
        None => home
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".docker").join(CONFIG_FILE_NAME)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_rules() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            path_from(os("/etc/dc"), os("/home/u")),
            Some(PathBuf::from("/etc/dc").join("config.json"))
        );
        assert_eq!(
            path_from(os(""), os("/home/u")),
            Some(PathBuf::from("/home/u").join(".docker").join("config.json"))
        );
        assert_eq!(
            path_from(None, os("/home/u")),
            Some(PathBuf::from("/home/u").join(".docker").join("config.json"))
        );
        assert_eq!(path_from(None, os("")), None);
        assert_eq!(path_from(None, None), None);
    }
}
