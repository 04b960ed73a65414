//! Reading, checking and writing one config file, and the one rule for which of its `auths`
//! keys is a registry's.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize as _;
use serde_json::{Map, Value};

use crate::private_file::{self, Replace};
use crate::registry::RegistryHost;

pub(super) const CRED_HELPERS: &str = "credHelpers";
pub(super) const CREDS_STORE: &str = "credsStore";
const AUTHS: &str = "auths";
/// Fields of an `auths` entry that hold a usable secret (docker's `AuthConfig`).
const SECRET_FIELDS: [&str; 4] = ["auth", "password", "identitytoken", "registrytoken"];

/// Why reading or editing `config.json` failed. Every message says what the user can do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but is not a configuration docker could load. We refuse to write it,
    /// because "fixing" it would silently throw away whatever the user or another tool meant.
    #[error(
        "{} is not a valid Docker config file: {reason}; docker cannot read it either, so fix \
         or remove it by hand and run this again (the file was not changed)",
        path.display()
    )]
    Malformed { path: PathBuf, reason: String },

    /// A registry already uses another credential helper (e.g. `ecr-login`). Replacing it
    /// would break whatever set it up, so it needs an explicit `--force`.
    #[error(
        "\"credHelpers\" already sends {registry} to another helper, docker-credential-{helper}; \
         pass --force to replace it (nothing was changed)"
    )]
    OtherHelper { registry: String, helper: String },

    /// The file or its directory could not be read or written.
    #[error(
        "cannot {action} {}: {source}; check the permissions and ownership of the file and its \
         directory (the existing file was left as it was)",
        path.display()
    )]
    Io {
        /// What we were doing, e.g. `"read"`, `"write"`.
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ConfigError {
    fn malformed(path: &Path, reason: impl Into<String>) -> Self {
        Self::Malformed {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

impl From<private_file::ReplaceError> for ConfigError {
    fn from(e: private_file::ReplaceError) -> Self {
        Self::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}

/// Reads and checks the file for `doctor`/`status`.
///
/// `Ok(None)` when it does not exist (docker then uses defaults); an empty or whitespace-only
/// file reads as `{}` (docker accepts it too). Anything docker could not load — invalid JSON,
/// a top level that is not an object, `credHelpers` that is not an object of strings — is
/// [`ConfigError::Malformed`], so callers report it instead of building on it.
pub fn read(path: &Path) -> Result<Option<Value>, ConfigError> {
    match fs::read(path) {
        Ok(bytes) => parse(path, &bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Value, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ConfigError::malformed(path, format!("it is not valid JSON ({e})")))?;
    check_shape(path, &value)?;
    Ok(value)
}

/// Rejects the shapes docker/cli would fail to unmarshal in the parts we touch.
pub(super) fn check_shape(path: &Path, config: &Value) -> Result<(), ConfigError> {
    let Some(top) = config.as_object() else {
        return Err(ConfigError::malformed(
            path,
            format!(
                "the top level must be a JSON object {{...}}, not {}",
                kind_of(config)
            ),
        ));
    };
    match top.get(CRED_HELPERS) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(helpers)) => {
            match helpers.iter().find(|(_, helper)| !helper.is_string()) {
                None => Ok(()),
                Some((registry, helper)) => Err(ConfigError::malformed(
                    path,
                    format!(
                        "\"credHelpers\" entry {registry:?} must be a helper name string, not {}",
                        kind_of(helper)
                    ),
                )),
            }
        }
        Some(other) => Err(ConfigError::malformed(
            path,
            format!(
                "\"credHelpers\" must be an object like {{\"registry.example.com\": \"helper\"}}, not {}",
                kind_of(other)
            ),
        )),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The helper docker will run for `registry` (the `credHelpers` value), for `doctor`/`status`.
///
/// The lookup is by exact key, as docker does: docker looks up `host[:port]` (Docker Hub as
/// `https://index.docker.io/v1/`), so pass the registry in that form.
pub fn helper_for<'a>(config: &'a Value, registry: &str) -> Option<&'a str> {
    config.get(CRED_HELPERS)?.get(registry)?.as_str()
}

/// The `auths` entries of a config file's top-level object that hold a plaintext secret for
/// `registry`: each key (in file order) with its non-empty secret fields. What
/// `configure-docker` warns about and `doctor` flags.
pub(crate) fn plaintext_auths<'a>(
    top: &'a Map<String, Value>,
    registry: &str,
) -> Vec<(&'a str, Vec<&'static str>)> {
    top.get(AUTHS)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(key, _)| same_registry(key, registry))
        .map(|(key, entry)| (key.as_str(), secret_fields(entry)))
        .filter(|(_, fields)| !fields.is_empty())
        .collect()
}

/// Whether an `auths` key (`https://host/v1/`, `host`, …) is for `registry`: the one rule,
/// for `configure-docker`, `doctor` and `DOCKER_AUTH_CONFIG` alike. Both sides are read by
/// [`RegistryHost::parse`], the crate's one host rule: scheme and path dropped as docker/cli's
/// `ConvertToHostname` does, ASCII case folded, Docker Hub's aliases made one. A key that is
/// no registry address at all is no registry's.
pub(crate) fn same_registry(key: &str, registry: &str) -> bool {
    // A host is ASCII, so a non-ASCII key is no registry's; checked first because any text
    // may be a key in the user's file and `RegistryHost::parse` can panic on multi-byte
    // characters.
    if !key.is_ascii() {
        return false;
    }
    match (RegistryHost::parse(key), RegistryHost::parse(registry)) {
        (Ok(key), Ok(registry)) => key == registry,
        _ => false,
    }
}

/// Non-empty secret fields of an `auths` entry. Go matches JSON field names
/// case-insensitively, so `"Auth"` counts as much as `"auth"`.
fn secret_fields(entry: &Value) -> Vec<&'static str> {
    let Some(entry) = entry.as_object() else {
        return Vec::new();
    };
    SECRET_FIELDS
        .into_iter()
        .filter(|field| {
            entry.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case(field) && v.as_str().is_some_and(|s| !s.is_empty())
            })
        })
        .collect()
}

/// Pretty-prints like docker's `json.MarshalIndent(cfg, "", "\t")`, plus the trailing newline.
pub(super) fn render(config: &Value) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    config
        .serialize(&mut serializer)
        .expect("serialising a serde_json::Value into memory cannot fail");
    out.push(b'\n');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Replaces the file like docker/cli's `ConfigFile.Save`: symlinks followed to the real file,
/// a temp file beside it with the same permissions (0600 for a new file), fsync, rename.
pub(super) fn write(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    Ok(private_file::replace_as(
        path,
        contents,
        Replace::KeepingMode,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::CONFIG_FILE_NAME;
    use crate::docker::test_support::configure;
    use crate::docker::test_support::*;
    use serde_json::json;

    #[test]
    fn empty_or_whitespace_file_is_an_empty_config() {
        for contents in ["", " \n\t\r\n"] {
            let (_dir, path) = setup(Some(contents));
            assert_eq!(read(&path).unwrap(), Some(json!({})));
            configure(&path, &regs(&[GITLAB]), HELPER, false, false).unwrap();
            assert_eq!(
                fs::read_to_string(&path).unwrap(),
                "{\n\t\"credHelpers\": {\n\t\t\"registry.gitlab.com\": \"gitlab\"\n\t}\n}\n"
            );
        }
    }

    #[test]
    fn missing_file_reads_as_none() {
        let (_dir, path) = setup(None);
        assert_eq!(read(&path).unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn new_file_is_created_private() {
        let (_dir, path) = setup(None);
        let plan = configure(&path, &regs(&[GITLAB]), HELPER, false, false).unwrap();
        assert!(plan.changed);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let written: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written, json!({"credHelpers": {GITLAB: HELPER}}));
        // No temp files left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn existing_mode_is_kept() {
        use std::os::unix::fs::PermissionsExt as _;
        let (_dir, path) = setup(Some("{}"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        configure(&path, &regs(&[GITLAB]), HELPER, false, false).unwrap();
        assert_eq!(mode(&path), 0o644);
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_config_stays_a_link() {
        let (dir, path) = setup(None);
        let real_dir = dir.path().join("dotfiles");
        fs::create_dir(&real_dir).unwrap();
        let real = real_dir.join("docker-config.json");
        fs::write(&real, "{\"auths\": {}}").unwrap();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Relative link, resolved against the link's directory.
        std::os::unix::fs::symlink("../dotfiles/docker-config.json", &path).unwrap();

        configure(&path, &regs(&[GITLAB]), HELPER, false, false).unwrap();

        assert!(fs::symlink_metadata(&path).unwrap().is_symlink());
        let target: Value = serde_json::from_str(&fs::read_to_string(&real).unwrap()).unwrap();
        assert_eq!(
            target,
            json!({"auths": {}, "credHelpers": {GITLAB: HELPER}})
        );
        assert_eq!(fs::read_dir(&real_dir).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn dangling_symlink_creates_its_target() {
        let (dir, path) = setup(None);
        let real = dir.path().join("real.json");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        configure(&path, &regs(&[GITLAB]), HELPER, false, false).unwrap();
        assert!(fs::symlink_metadata(&path).unwrap().is_symlink());
        assert!(fs::read_to_string(&real).unwrap().contains(GITLAB));
    }

    /// A failed write says what it was doing and where (a file where the directory should
    /// be fails even for root).
    #[test]
    fn write_errors_say_what_failed() {
        let (dir, _) = setup(None);
        let not_a_dir = dir.path().join("file");
        fs::write(&not_a_dir, "x").unwrap();
        let path = not_a_dir.join(CONFIG_FILE_NAME);
        let plan =
            crate::docker::plan(&path, &json!({}), &regs(&[GITLAB]), HELPER, false, None).unwrap();
        let err = crate::docker::apply(&path, &plan).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
        let message = err.to_string();
        // Unix stops at inspecting the file, Windows at creating its directory; both name
        // the path they could not use.
        assert!(message.starts_with("cannot "), "{message}");
        assert!(
            message.contains(&not_a_dir.display().to_string()),
            "{message}"
        );
        assert!(message.contains("left as it was"), "{message}");
        assert_eq!(fs::read_to_string(&not_a_dir).unwrap(), "x");
    }

    #[test]
    fn malformed_files_are_refused_and_untouched() {
        let cases = [
            ("{\"auths\": {", "not valid JSON"),
            ("[]", "top level must be a JSON object"),
            ("\"text\"", "top level must be a JSON object"),
            ("{\"credHelpers\": []}", "\"credHelpers\" must be an object"),
            (
                "{\"credHelpers\": \"gitlab\"}",
                "\"credHelpers\" must be an object",
            ),
            (
                "{\"credHelpers\": {\"a\": 1}}",
                "must be a helper name string",
            ),
        ];
        for (contents, reason) in cases {
            let (_dir, path) = setup(Some(contents));
            for result in [
                configure(&path, &regs(&[GITLAB]), HELPER, true, false).map(|_| ()),
                read(&path).map(|_| ()),
            ] {
                let err = result.unwrap_err();
                assert!(matches!(err, ConfigError::Malformed { .. }), "{err:?}");
                let message = err.to_string();
                assert!(message.contains(reason), "{contents}: {message}");
                assert!(message.contains("fix or remove it"), "{message}");
                assert!(message.contains(&path.display().to_string()), "{message}");
            }
            assert_eq!(fs::read_to_string(&path).unwrap(), contents);
            assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        }
    }

    #[test]
    fn helper_for_reads_exact_keys() {
        let config = json!({"credHelpers": {GITLAB: "gitlab", "ecr.aws": "ecr-login"}});
        assert_eq!(helper_for(&config, GITLAB), Some("gitlab"));
        assert_eq!(helper_for(&config, "ecr.aws"), Some("ecr-login"));
        assert_eq!(helper_for(&config, "other"), None);
        assert_eq!(helper_for(&json!({}), GITLAB), None);
    }

    #[test]
    fn auths_keys_match_docker_conversion() {
        assert!(same_registry("https://Registry.GitLab.com/v2/", GITLAB));
        assert!(same_registry("http://localhost:5000", "localhost:5000"));
        assert!(same_registry("localhost:5000/x", "localhost:5000"));
        assert!(same_registry(" REGISTRY.gitlab.com ", GITLAB));
    }

    #[test]
    fn one_rule_for_auths_keys() {
        assert!(same_registry(
            "gitlab.example.com:5050",
            "gitlab.example.com:5050"
        ));
        assert!(!same_registry(
            "gitlab.example.com",
            "gitlab.example.com:5050"
        ));
        assert!(!same_registry("registry.gitlab.com:443", GITLAB));
        assert!(!same_registry("registry.gitlab.com.evil", GITLAB));
        let config = json!({"auths": {
            "https://registry.gitlab.com": {"Auth": "x", "identitytoken": ""},
            GITLAB: {},
            "docker.io": {"auth": "x"}
        }});
        assert_eq!(
            plaintext_auths(config.as_object().unwrap(), GITLAB),
            [("https://registry.gitlab.com", vec!["auth"])]
        );
    }

    /// Where the old local rule (scheme and path cut off, then compared as text) and
    /// `RegistryHost::parse` disagreed, this decides: docker's own key for Docker Hub,
    /// `https://index.docker.io/v1/`, holds the credential of the registry the helper calls
    /// `docker.io`, so it is that registry's plaintext secret.
    #[test]
    fn docker_hubs_own_key_is_docker_hubs() {
        assert!(same_registry("https://index.docker.io/v1/", "docker.io"));
        let config = json!({"auths": {"https://index.docker.io/v1/": {"auth": "dTpw"}}});
        assert_eq!(
            plaintext_auths(config.as_object().unwrap(), "docker.io"),
            [("https://index.docker.io/v1/", vec!["auth"])]
        );
    }

    /// Any text may be a key in the user's file; what is no address is no registry's.
    #[test]
    fn keys_that_are_no_address_match_nothing() {
        for key in [
            "",
            "user@registry.gitlab.com",
            "ftp://registry.gitlab.com",
            "€",
            "ü.de",
            "a.€€",
        ] {
            assert!(!same_registry(key, GITLAB), "{key:?}");
        }
    }
}
