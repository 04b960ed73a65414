//! Every environment variable the docker module reads: where docker's `config.json` and
//! podman's `auth.json` live, and `DOCKER_AUTH_CONFIG`. The reads stay in this one file.

use std::ffi::OsString;
use std::path::PathBuf;

/// Environment variable that moves docker's whole configuration directory.
pub const DOCKER_CONFIG_ENV: &str = "DOCKER_CONFIG";

/// Environment variable holding inline credentials that docker CLI >= 28.3 consults before
/// any credential helper (docker/cli#6156).
pub const DOCKER_AUTH_CONFIG_ENV: &str = "DOCKER_AUTH_CONFIG";

/// Environment variable naming podman's, buildah's and skopeo's auth file.
pub const REGISTRY_AUTH_FILE_ENV: &str = "REGISTRY_AUTH_FILE";

/// Name of the file inside the docker configuration directory.
pub const CONFIG_FILE_NAME: &str = "config.json";

/// Where docker reads its configuration: `$DOCKER_CONFIG/config.json` when `DOCKER_CONFIG` is
/// set and non-empty, else `<home>/.docker/config.json`.
///
/// The home directory is `$HOME`; on Windows it is `%USERPROFILE%` (what docker itself uses),
/// falling back to `$HOME`. `None` when no home can be found, so the caller can ask for
/// `DOCKER_CONFIG` instead of guessing. docker's `--config` flag is not visible to us.
pub fn default_path() -> Option<PathBuf> {
    let home = if cfg!(windows) {
        non_empty_var("USERPROFILE").or_else(|| non_empty_var("HOME"))
    } else {
        non_empty_var("HOME")
    };
    path_from(non_empty_var(DOCKER_CONFIG_ENV), home)
}

/// Where podman, buildah and skopeo look first for credentials (containers-auth.json, the
/// same JSON shape as `config.json`), in containers/image's order: `$REGISTRY_AUTH_FILE`,
/// else `$XDG_RUNTIME_DIR/containers/auth.json`, else on Linux
/// `/run/containers/<uid>/auth.json` and elsewhere `~/.config/containers/auth.json`.
pub fn containers_auth_path() -> Option<PathBuf> {
    if let Some(file) = non_empty_var(REGISTRY_AUTH_FILE_ENV) {
        return Some(PathBuf::from(file));
    }
    if let Some(dir) = non_empty_var("XDG_RUNTIME_DIR") {
        return Some(PathBuf::from(dir).join("containers").join("auth.json"));
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
        non_empty_var("HOME").map(|home| PathBuf::from(home).join(".config/containers/auth.json"))
    }
}

/// The process's `DOCKER_AUTH_CONFIG`, for `configure-docker`'s warning.
pub(super) fn docker_auth_config() -> Option<String> {
    std::env::var_os(DOCKER_AUTH_CONFIG_ENV).map(|v| v.to_string_lossy().into_owned())
}

fn non_empty_var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
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
