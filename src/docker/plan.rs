//! What `configure-docker` would change in a config file ([`plan`]), what it warns about, and
//! writing it ([`apply`], [`configure`]).

use std::collections::HashSet;
use std::path::Path;

use serde_json::{Map, Value};

use super::config::{self, CRED_HELPERS, CREDS_STORE, ConfigError, plaintext_auths};
use super::paths::DOCKER_AUTH_CONFIG_ENV;

/// Above this many `credHelpers` entries we warn: legacy `docker build` and
/// `docker run --use-api-socket` call `get` on every helper entry each time.
pub const MANY_HELPERS: usize = 10;

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
    config::check_shape(path, existing)?;
    let mut config = existing.clone();
    let Value::Object(top) = &mut config else {
        unreachable!("check_shape accepts only objects");
    };

    let mut seen = HashSet::new();
    let registries: Vec<&String> = registries.iter().filter(|r| seen.insert(*r)).collect();

    let (mut added, mut unchanged, mut replaced) = (Vec::new(), Vec::new(), Vec::new());
    for &registry in &registries {
        match config::helper_for(existing, registry) {
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
        new_contents: config::render(&config),
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

/// Writes a [`plan`] to `path` atomically; does nothing when `plan.changed` is false (so
/// the file's bytes, mtime and inode stay as they were).
///
/// The caller is expected to have computed the plan from the current contents of `path`
/// just before; a concurrent edit in between is overwritten, as with docker itself.
pub fn apply(path: &Path, plan: &Plan) -> Result<(), ConfigError> {
    if !plan.changed {
        return Ok(());
    }
    config::write(path, plan.new_contents.as_bytes())
}

/// `configure-docker` in one call: reads `path` (missing → `{}`), plans with the
/// `DOCKER_AUTH_CONFIG` value given (`None` for containers-auth.json
/// ([`super::containers_auth_path`]), which podman reads without docker's variable), and
/// writes unless `dry_run`. Returns the plan so the caller can print what happened and the
/// warnings.
pub fn configure_with(
    path: &Path,
    registries: &[String],
    helper: &str,
    force: bool,
    dry_run: bool,
    auth_env: Option<&str>,
) -> Result<Plan, ConfigError> {
    let existing = config::read(path)?.unwrap_or_else(|| Value::Object(Map::new()));
    let plan = plan(path, &existing, registries, helper, force, auth_env)?;
    if !dry_run {
        apply(path, &plan)?;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::test_support::*;
    use crate::docker::{helper_for, read};
    use serde_json::json;
    use std::fs;

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
}
