//! Safe reading and editing of Docker's `config.json`.
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
//!   original, so a crash or a full disk leaves the old file byte-identical;
//! * computing the change ([`plan`]) is separate from writing it ([`apply`]), so `--dry-run`
//!   and refusals are guaranteed not to touch the file.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::Serialize as _;
use serde_json::{Map, Value};

/// Environment variable that moves docker's whole configuration directory.
pub const DOCKER_CONFIG_ENV: &str = "DOCKER_CONFIG";

/// Environment variable holding inline credentials that docker CLI >= 28.3 consults before
/// any credential helper (docker/cli#6156).
pub const DOCKER_AUTH_CONFIG_ENV: &str = "DOCKER_AUTH_CONFIG";

/// Name of the file inside the docker configuration directory.
pub const CONFIG_FILE_NAME: &str = "config.json";

/// Above this many `credHelpers` entries we warn: legacy `docker build` and
/// `docker run --use-api-socket` call `get` on every helper entry each time.
pub const MANY_HELPERS: usize = 10;

const CRED_HELPERS: &str = "credHelpers";
const CREDS_STORE: &str = "credsStore";
const AUTHS: &str = "auths";
/// Fields of an `auths` entry that hold a usable secret (docker's `AuthConfig`).
const SECRET_FIELDS: [&str; 4] = ["auth", "password", "identitytoken", "registrytoken"];
/// Limit for following a chain of symlinks (same as Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

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
    fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }

    fn malformed(path: &Path, reason: impl Into<String>) -> Self {
        Self::Malformed {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// The outcome of [`plan`]: what would change, what to tell the user, and the exact bytes
/// that [`apply`] writes. Computed without touching the disk so that `--dry-run`, refusals
/// and "nothing to do" never rewrite the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Registries that get a new `credHelpers` entry.
    pub added: Vec<String>,
    /// Registries whose entry already names our helper.
    pub unchanged: Vec<String>,
    /// `(registry, old helper)` pairs overwritten because `force` was set.
    pub replaced: Vec<(String, String)>,
    /// One-line, actionable notes about things that may stop docker from using the helper,
    /// or secrets left behind in plaintext.
    pub warnings: Vec<String>,
    /// The whole file after the change: tab-indented like docker, trailing newline. When
    /// `changed` is false this is only a re-rendering of the current contents and is not
    /// written.
    pub new_contents: String,
    /// Whether [`apply`] has anything to write.
    pub changed: bool,
}

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
        let uid = fs::metadata("/proc/self").ok()?.uid();
        Some(PathBuf::from(format!("/run/containers/{uid}/auth.json")))
    }
    #[cfg(not(target_os = "linux"))]
    {
        non_empty_var("HOME").map(|home| PathBuf::from(home).join(".config/containers/auth.json"))
    }
}

/// Environment variable naming podman's, buildah's and skopeo's auth file.
pub const REGISTRY_AUTH_FILE_ENV: &str = "REGISTRY_AUTH_FILE";

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
        Err(e) => Err(ConfigError::io("read", path)(e)),
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
fn check_shape(path: &Path, config: &Value) -> Result<(), ConfigError> {
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

/// Computes how to point `registries` at `helper` (the suffix after `docker-credential-`)
/// without writing anything.
///
/// `existing` is the current contents (`{}` for a missing file); `path` is only used in
/// messages. `env_docker_auth_config` is the value of `DOCKER_AUTH_CONFIG`, passed in so the
/// function stays pure. If any registry already uses a different helper and `force` is false
/// the whole plan is refused with [`ConfigError::OtherHelper`], so nothing is half-applied.
pub fn plan(
    path: &Path,
    existing: &Value,
    registries: &[String],
    helper: &str,
    force: bool,
    env_docker_auth_config: Option<&str>,
) -> Result<Plan, ConfigError> {
    check_shape(path, existing)?;
    let mut config = existing.clone();
    let Value::Object(top) = &mut config else {
        unreachable!("check_shape accepts only objects");
    };

    let mut seen = HashSet::new();
    let registries: Vec<&String> = registries.iter().filter(|r| seen.insert(*r)).collect();

    let (mut added, mut unchanged, mut replaced) = (Vec::new(), Vec::new(), Vec::new());
    for &registry in &registries {
        match helper_for(existing, registry) {
            Some(current) if current == helper => unchanged.push(registry.clone()),
            // An empty name makes docker run `docker-credential-`, which cannot work: nothing
            // of value is lost by filling it in.
            None | Some("") => added.push(registry.clone()),
            Some(other) if force => replaced.push((registry.clone(), other.to_owned())),
            Some(other) => {
                return Err(ConfigError::OtherHelper {
                    registry: registry.clone(),
                    helper: other.to_owned(),
                });
            }
        }
    }

    let changed = !added.is_empty() || !replaced.is_empty();
    if changed {
        let helpers = top
            .entry(CRED_HELPERS)
            .or_insert_with(|| Value::Object(Map::new()));
        if helpers.is_null() {
            *helpers = Value::Object(Map::new());
        }
        let helpers = helpers
            .as_object_mut()
            .expect("check_shape accepts only object or null");
        // Existing keys keep their position; new ones go at the end in the caller's order.
        for registry in added.iter().chain(replaced.iter().map(|(r, _)| r)) {
            helpers.insert(registry.clone(), Value::String(helper.to_owned()));
        }
    }

    let warnings = warnings(path, top, &registries, helper, env_docker_auth_config);
    Ok(Plan {
        added,
        unchanged,
        replaced,
        warnings,
        new_contents: render(&config),
        changed,
    })
}

fn warnings(
    path: &Path,
    top: &Map<String, Value>,
    registries: &[&String],
    helper: &str,
    env_docker_auth_config: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();

    for &registry in registries {
        for (key, fields) in plaintext_auths(top, registry) {
            out.push(format!(
                "{} still holds a plaintext credential for {registry} (\"auths\" → {key:?} has \
                 {}); docker now asks docker-credential-{helper} instead, so delete that {key:?} \
                 entry from \"auths\" to get the old secret off disk",
                path.display(),
                fields.join(", "),
            ));
        }
    }

    if let Some(store) = top.get(CREDS_STORE).and_then(Value::as_str)
        && !store.is_empty()
        && !registries.is_empty()
    {
        let list: Vec<&str> = registries.iter().map(|r| r.as_str()).collect();
        out.push(format!(
            "\"credsStore\" is {store:?}: docker keeps using docker-credential-{store} for every \
             other registry and \"credHelpers\" overrides it only for {}; a credential \
             docker-credential-{store} already holds for them is no longer used and can be \
             deleted from that store",
            list.join(", "),
        ));
    }

    if let Some(value) = env_docker_auth_config
        && !value.trim().is_empty()
    {
        out.push(format!(
            "{DOCKER_AUTH_CONFIG_ENV} is set: docker CLI 28.3 and newer uses the credentials in it \
             before any credential helper, so docker-credential-{helper} is bypassed for every \
             registry it lists; unset it (or drop those registries from it) to use the helper"
        ));
    }

    let count = top
        .get(CRED_HELPERS)
        .and_then(Value::as_object)
        .map_or(0, Map::len);
    if count > MANY_HELPERS {
        out.push(format!(
            "\"credHelpers\" has {count} entries: legacy `docker build` (DOCKER_BUILDKIT=0) and \
             `docker run --use-api-socket` call every helper on each run, which gets slow; remove \
             entries for registries you no longer use"
        ));
    }

    out
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
/// for `configure-docker`, `doctor` and `DOCKER_AUTH_CONFIG` alike. Both sides go through
/// [`hostname`], as docker/cli compares them.
pub(crate) fn same_registry(key: &str, registry: &str) -> bool {
    hostname(key) == hostname(registry)
}

/// Host part of an `auths` key or registry, compared the way docker/cli's
/// `ConvertToHostname` does (scheme and path dropped), plus ASCII case folding.
fn hostname(key: &str) -> String {
    let lower = key.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or(&lower);
    rest.split('/').next().unwrap_or_default().to_owned()
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
fn render(config: &Value) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    config
        .serialize(&mut serializer)
        .expect("serialising a serde_json::Value into memory cannot fail");
    out.push(b'\n');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Writes a [`plan`] to `path` atomically; does nothing when `plan.changed` is false (so
/// the file's bytes, mtime and inode stay as they were).
///
/// The caller is expected to have computed the plan from the current contents of `path`
/// just before; a concurrent edit in between is overwritten, as with docker itself.
pub fn apply(path: &Path, plan: &Plan) -> Result<(), ConfigError> {
    if !plan.changed {
        return Ok(());
    }
    write_atomic(path, plan.new_contents.as_bytes())
}

/// `configure-docker` in one call: reads `path` (missing → `{}`), plans with the process's
/// `DOCKER_AUTH_CONFIG`, and writes unless `dry_run`. Returns the plan so the caller can
/// print what happened and the warnings.
pub fn configure(
    path: &Path,
    registries: &[String],
    helper: &str,
    force: bool,
    dry_run: bool,
) -> Result<Plan, ConfigError> {
    let env = std::env::var_os(DOCKER_AUTH_CONFIG_ENV).map(|v| v.to_string_lossy().into_owned());
    configure_with(path, registries, helper, force, dry_run, env.as_deref())
}

/// [`configure`] with the `DOCKER_AUTH_CONFIG` value given: `None` for containers-auth.json
/// ([`containers_auth_path`]), which podman reads without docker's variable.
pub fn configure_with(
    path: &Path,
    registries: &[String],
    helper: &str,
    force: bool,
    dry_run: bool,
    auth_env: Option<&str>,
) -> Result<Plan, ConfigError> {
    let existing = read(path)?.unwrap_or_else(|| Value::Object(Map::new()));
    let plan = plan(path, &existing, registries, helper, force, auth_env)?;
    if !dry_run {
        apply(path, &plan)?;
    }
    Ok(plan)
}

/// Undoes `configure-docker` for `registries`: removes their `credHelpers` entries only where
/// they name `helper`, so entries owned by other helpers survive. Returns the registries
/// removed; the file is rewritten only if that list is non-empty. A `credHelpers` object
/// emptied this way is dropped, as docker itself omits an empty one.
pub fn remove_helper(
    path: &Path,
    registries: &[String],
    helper: &str,
) -> Result<Vec<String>, ConfigError> {
    let Some(mut config) = read(path)? else {
        return Ok(Vec::new());
    };
    let Some(top) = config.as_object_mut() else {
        unreachable!("read accepts only objects");
    };
    let mut removed = Vec::new();
    if let Some(helpers) = top.get_mut(CRED_HELPERS).and_then(Value::as_object_mut) {
        for registry in registries {
            if helpers.get(registry).and_then(Value::as_str) == Some(helper) {
                // shift_remove keeps the order of the remaining keys.
                helpers.shift_remove(registry);
                removed.push(registry.clone());
            }
        }
        if helpers.is_empty() && !removed.is_empty() {
            top.shift_remove(CRED_HELPERS);
        }
    }
    if !removed.is_empty() {
        write_atomic(path, render(&config).as_bytes())?;
    }
    Ok(removed)
}

/// Replaces the file like docker/cli's `ConfigFile.Save`: follow symlinks to the real file,
/// write a temp file beside it with the same permissions (0600 for a new file), fsync, rename.
fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    let target = resolve_symlinks(path)?;
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let existing = match fs::metadata(&target) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(ConfigError::io("inspect", &target)(e)),
    };
    if existing.is_none() {
        create_private_dir(&dir)?;
    }

    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(ConfigError::io("create a temporary file in", &dir))?;
    copy_permissions(tmp.as_file(), existing.as_ref())
        .map_err(ConfigError::io("set permissions on", tmp.path()))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(ConfigError::io("write", tmp.path()))?;
    // On failure the temp file is deleted when the returned handle drops.
    tmp.persist(&target)
        .map_err(|e| ConfigError::io("replace", &target)(e.error))?;
    sync_dir(&dir);
    Ok(())
}

/// Follows a chain of symlinks to the file that should be replaced, so the link itself stays
/// a link. A dangling link resolves to its (missing) target, which then gets created.
fn resolve_symlinks(path: &Path) -> Result<PathBuf, ConfigError> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target =
                    fs::read_link(&current).map_err(ConfigError::io("read symlink", &current))?;
                // `join` with an absolute target yields the target itself.
                current = match current.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(ConfigError::io("inspect", &current)(e)),
        }
    }
    Err(ConfigError::Io {
        action: "resolve",
        path: path.to_path_buf(),
        source: io::Error::other("too many levels of symbolic links"),
    })
}

fn create_private_dir(dir: &Path) -> Result<(), ConfigError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(ConfigError::io("create directory", dir))
}

#[cfg(unix)]
fn copy_permissions(tmp: &fs::File, existing: Option<&fs::Metadata>) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let mode = existing
        .filter(|m| m.is_file())
        .map_or(0o600, |m| m.mode() & 0o777);
    tmp.set_permissions(fs::Permissions::from_mode(mode))?;
    if let Some(meta) = existing {
        let mine = tmp.metadata()?;
        if (mine.uid(), mine.gid()) != (meta.uid(), meta.gid()) {
            // Keep e.g. a user's file owned by the user under `sudo`; like docker, this is
            // best effort: without the privilege the file becomes ours.
            let _ = std::os::unix::fs::fchown(tmp, Some(meta.uid()), Some(meta.gid()));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn copy_permissions(_tmp: &fs::File, _existing: Option<&fs::Metadata>) -> io::Result<()> {
    // New files inherit the directory's ACL, which is what docker does on Windows too.
    Ok(())
}

/// Makes the rename durable. Best effort: not every platform or file system allows it.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HELPER: &str = "gitlab";
    const GITLAB: &str = "registry.gitlab.com";

    fn regs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn setup(contents: Option<&str>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".docker").join(CONFIG_FILE_NAME);
        if let Some(contents) = contents {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, contents).unwrap();
        }
        (dir, path)
    }

    fn plan_for(config: Value, registries: &[&str], force: bool) -> Result<Plan, ConfigError> {
        plan(
            Path::new("config.json"),
            &config,
            &regs(registries),
            HELPER,
            force,
            None,
        )
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn unknown_keys_and_key_order_survive() {
        let original = r#"{
    "zeta": {"b": 1, "a": [true, null]},
    "credHelpers": {"public.ecr.aws": "ecr-login"},
    "auths": {"registry.gitlab.com": {}},
    "alpha": "x",
    "psFormat": "table {{.ID}}"
}"#;
        let (_dir, path) = setup(Some(original));
        let plan = configure(&path, &regs(&[GITLAB]), HELPER, false, false).unwrap();
        assert!(plan.changed);
        assert_eq!(plan.added, vec![GITLAB.to_string()]);
        let expected = "{\n\
            \t\"zeta\": {\n\t\t\"b\": 1,\n\t\t\"a\": [\n\t\t\ttrue,\n\t\t\tnull\n\t\t]\n\t},\n\
            \t\"credHelpers\": {\n\
            \t\t\"public.ecr.aws\": \"ecr-login\",\n\
            \t\t\"registry.gitlab.com\": \"gitlab\"\n\t},\n\
            \t\"auths\": {\n\t\t\"registry.gitlab.com\": {}\n\t},\n\
            \t\"alpha\": \"x\",\n\
            \t\"psFormat\": \"table {{.ID}}\"\n\
            }\n";
        assert_eq!(fs::read_to_string(&path).unwrap(), expected);
        assert_eq!(plan.new_contents, expected);
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    }

    #[test]
    fn credhelpers_appended_at_end_when_missing() {
        let plan = plan_for(
            json!({"auths": {}, "z": 1}),
            &[GITLAB, "gitlab.example.com:5050"],
            false,
        )
        .unwrap();
        assert_eq!(
            plan.new_contents,
            "{\n\t\"auths\": {},\n\t\"z\": 1,\n\t\"credHelpers\": {\n\
             \t\t\"registry.gitlab.com\": \"gitlab\",\n\
             \t\t\"gitlab.example.com:5050\": \"gitlab\"\n\t}\n}\n"
        );
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
                remove_helper(&path, &regs(&[GITLAB]), HELPER).map(|_| ()),
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
    fn other_helper_is_refused_without_force() {
        let original = "{\"credHelpers\": {\"registry.gitlab.com\": \"ecr-login\"}}";
        let (_dir, path) = setup(Some(original));
        // `a.example.com` would be fine on its own: the refusal is all-or-nothing.
        let err = configure(
            &path,
            &regs(&["a.example.com", GITLAB]),
            HELPER,
            false,
            false,
        )
        .unwrap_err();
        match &err {
            ConfigError::OtherHelper { registry, helper } => {
                assert_eq!(registry, GITLAB);
                assert_eq!(helper, "ecr-login");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("--force"), "{err}");
        assert!(
            err.to_string().contains("docker-credential-ecr-login"),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), original);
    }

    #[test]
    fn other_helper_is_replaced_with_force() {
        let (_dir, path) = setup(Some(
            "{\"credHelpers\": {\"registry.gitlab.com\": \"ecr-login\", \"x.io\": \"y\"}}",
        ));
        let plan = configure(&path, &regs(&[GITLAB]), HELPER, true, false).unwrap();
        assert!(plan.changed);
        assert_eq!(
            plan.replaced,
            vec![(GITLAB.to_string(), "ecr-login".to_string())]
        );
        assert!(plan.added.is_empty());
        // Position of the replaced key is kept.
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\n\t\"credHelpers\": {\n\t\t\"registry.gitlab.com\": \"gitlab\",\n\
             \t\t\"x.io\": \"y\"\n\t}\n}\n"
        );
    }

    #[test]
    fn already_ours_is_not_rewritten() {
        // Deliberately not in docker's formatting: a rewrite would be visible.
        let original = "{\"credHelpers\":{\"registry.gitlab.com\":\"gitlab\"}}";
        let (_dir, path) = setup(Some(original));
        let before = fs::metadata(&path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));

        let plan = configure(&path, &regs(&[GITLAB, GITLAB]), HELPER, false, false).unwrap();

        assert!(!plan.changed);
        assert_eq!(plan.unchanged, vec![GITLAB.to_string()]);
        assert!(plan.added.is_empty() && plan.replaced.is_empty());
        let after = fs::metadata(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), original);
        assert_eq!(before.modified().unwrap(), after.modified().unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            assert_eq!(before.ino(), after.ino());
        }
    }

    #[test]
    fn dry_run_writes_nothing() {
        let (_dir, path) = setup(None);
        let plan = configure(&path, &regs(&[GITLAB]), HELPER, false, true).unwrap();
        assert!(plan.changed);
        assert!(plan.new_contents.contains(GITLAB));
        assert!(!path.exists());
        assert!(!path.parent().unwrap().exists());

        let original = "{\"auths\": {}}";
        let (_dir, path) = setup(Some(original));
        let plan = configure(&path, &regs(&[GITLAB]), HELPER, false, true).unwrap();
        assert!(plan.changed);
        assert_eq!(fs::read_to_string(&path).unwrap(), original);
    }

    #[test]
    fn apply_writes_the_plan() {
        let (_dir, path) = setup(Some("{}"));
        let existing = read(&path).unwrap().unwrap();
        let plan = plan(&path, &existing, &regs(&[GITLAB]), HELPER, false, None).unwrap();
        apply(&path, &plan).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), plan.new_contents);
        assert_eq!(
            helper_for(&read(&path).unwrap().unwrap(), GITLAB),
            Some(HELPER)
        );
    }

    #[test]
    fn warns_about_plaintext_auths() {
        for (key, entry, field) in [
            (GITLAB, json!({"auth": "dTpw"}), "auth"),
            (
                "https://registry.gitlab.com",
                json!({"identitytoken": "t"}),
                "identitytoken",
            ),
            (
                "registry.gitlab.com/v2/",
                json!({"Password": "p", "username": "u"}),
                "password",
            ),
        ] {
            let plan = plan_for(json!({"auths": {key: entry}}), &[GITLAB], false).unwrap();
            assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
            let warning = &plan.warnings[0];
            assert!(warning.contains("plaintext credential"), "{warning}");
            assert!(warning.contains(field), "{warning}");
            assert!(warning.contains("delete"), "{warning}");
            assert!(!warning.contains('\n'));
        }
    }

    #[test]
    fn no_warning_for_empty_auths_placeholder_or_other_hosts() {
        let config = json!({
            "auths": {
                GITLAB: {},
                "registry.gitlab.com.evil": {"auth": "x"},
                "docker.io": {"auth": "x"},
                "gitlab.example.com": {"auth": ""}
            }
        });
        let plan = plan_for(config, &[GITLAB, "gitlab.example.com"], false).unwrap();
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    }

    #[test]
    fn warns_about_creds_store() {
        let plan = plan_for(json!({"credsStore": "desktop"}), &[GITLAB], false).unwrap();
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert!(plan.warnings[0].contains("\"desktop\""));
        assert!(plan.warnings[0].contains(&format!("only for {GITLAB}")));
    }

    #[test]
    fn warns_about_docker_auth_config() {
        let config = json!({});
        let with = |env| {
            plan(
                Path::new("c"),
                &config,
                &regs(&[GITLAB]),
                HELPER,
                false,
                env,
            )
        };
        let plan_set = with(Some(r#"{"auths":{}}"#)).unwrap();
        assert_eq!(plan_set.warnings.len(), 1);
        assert!(plan_set.warnings[0].contains(DOCKER_AUTH_CONFIG_ENV));
        assert!(plan_set.warnings[0].contains("unset it"));
        assert!(with(Some("")).unwrap().warnings.is_empty());
        assert!(with(None).unwrap().warnings.is_empty());
    }

    #[test]
    fn warns_about_many_helpers() {
        let mut helpers = Map::new();
        for i in 0..MANY_HELPERS {
            helpers.insert(format!("r{i}.example.com"), json!("x"));
        }
        let config = json!({ "credHelpers": helpers });
        assert!(
            plan_for(config.clone(), &[], false)
                .unwrap()
                .warnings
                .is_empty()
        );
        let plan = plan_for(config, &[GITLAB], false).unwrap();
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert!(plan.warnings[0].contains("11 entries"));
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
    fn remove_helper_only_removes_ours() {
        let original =
            r#"{"credHelpers": {"a.io": "gitlab", "b.io": "ecr-login", "c.io": "gitlab"}, "x": 1}"#;
        let (_dir, path) = setup(Some(original));
        let removed = remove_helper(&path, &regs(&["a.io", "b.io", "nope.io"]), HELPER).unwrap();
        assert_eq!(removed, regs(&["a.io"]));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\n\t\"credHelpers\": {\n\t\t\"b.io\": \"ecr-login\",\n\t\t\"c.io\": \"gitlab\"\n\t},\n\
             \t\"x\": 1\n}\n"
        );

        // Nothing of ours left to remove: file untouched.
        let before = fs::read_to_string(&path).unwrap();
        assert!(
            remove_helper(&path, &regs(&["b.io"]), HELPER)
                .unwrap()
                .is_empty()
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), before);

        // Removing the last entry drops the empty object but keeps the rest in order.
        let (_dir, path) = setup(Some(
            r#"{"a": 1, "credHelpers": {"a.io": "gitlab"}, "z": 2}"#,
        ));
        remove_helper(&path, &regs(&["a.io"]), HELPER).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\n\t\"a\": 1,\n\t\"z\": 2\n}\n"
        );

        let (_dir, path) = setup(None);
        assert!(
            remove_helper(&path, &regs(&["a.io"]), HELPER)
                .unwrap()
                .is_empty()
        );
        assert!(!path.exists());
    }

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

    #[test]
    fn hostname_matches_docker_conversion() {
        assert_eq!(hostname("https://Registry.GitLab.com/v2/"), GITLAB);
        assert_eq!(hostname("http://localhost:5000"), "localhost:5000");
        assert_eq!(hostname("localhost:5000/x"), "localhost:5000");
    }

    #[test]
    fn one_rule_for_auths_keys() {
        assert!(same_registry("https://Registry.GitLab.com/v2/", GITLAB));
        assert!(same_registry(
            "gitlab.example.com:5050",
            "gitlab.example.com:5050"
        ));
        assert!(!same_registry(
            "gitlab.example.com",
            "gitlab.example.com:5050"
        ));
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
}
