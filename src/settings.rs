//! User settings: how long a credential handed out by `get` must stay valid.
//!
//! `min_validity` (default 60 min) is the promise behind the long-push guarantee: docker,
//! skopeo and podman call `get` once per push and then keep re-exchanging that secret at
//! `/jwt/auth`, so the secret must outlive the push. It is set globally or per registry in
//! `config.json` in the user's config directory, and `DOCKER_CREDENTIAL_GITLAB_MIN_VALIDITY`
//! overrides both:
//!
//! ```json
//! { "min_validity": "90m", "early_renewal": "7d",
//!   "registries": { "gitlab.example.com:5050": { "min_validity": "36h" } } }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::SignedDuration;
use serde::Deserialize;

use crate::env::{self, Env, MIN_VALIDITY as MIN_VALIDITY_ENV};

pub(crate) const DEFAULT_MIN_VALIDITY: SignedDuration = SignedDuration::from_mins(60);
/// PATs are rotated this long before they expire, when no hand-out is live.
pub(crate) const DEFAULT_EARLY_RENEWAL: SignedDuration = SignedDuration::from_hours(7 * 24);

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    min_validity: SignedDuration,
    early_renewal: SignedDuration,
    per_registry: BTreeMap<String, SignedDuration>,
    env_override: Option<SignedDuration>,
    /// OAuth application (client) ids per GitLab URL, for `login --oauth`.
    oauth_client_ids: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_validity: DEFAULT_MIN_VALIDITY,
            early_renewal: DEFAULT_EARLY_RENEWAL,
            per_registry: BTreeMap::new(),
            env_override: None,
            oauth_client_ids: BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SettingsError {
    #[error("{source_name}: {value:?} is not a duration; use values like 90m, 36h or 2d")]
    BadDuration { source_name: String, value: String },
    #[error("settings file {}: {reason}; fix or remove it", path.display())]
    BadFile { path: PathBuf, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    min_validity: Option<String>,
    early_renewal: Option<String>,
    #[serde(default)]
    registries: BTreeMap<String, RegistrySettings>,
    #[serde(default)]
    oauth_client_ids: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrySettings {
    min_validity: Option<String>,
}

impl Settings {
    /// Reads the settings file (absent = defaults) and the environment override.
    pub fn load(env: &Env) -> Result<Settings, SettingsError> {
        let mut settings = match config_path(env) {
            Some(path) => Settings::from_file(&path)?,
            None => Settings::default(),
        };
        if let Some(value) = env.var(MIN_VALIDITY_ENV).map(str::to_owned) {
            settings.env_override =
                Some(
                    parse_duration(&value).ok_or_else(|| SettingsError::BadDuration {
                        source_name: MIN_VALIDITY_ENV.into(),
                        value,
                    })?,
                );
        }
        Ok(settings)
    }

    fn from_file(path: &std::path::Path) -> Result<Settings, SettingsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => {
                return Err(SettingsError::BadFile {
                    path: path.into(),
                    reason: e.to_string(),
                });
            }
        };
        let file: FileSettings =
            serde_json::from_str(&text).map_err(|e| SettingsError::BadFile {
                path: path.into(),
                reason: e.to_string(),
            })?;
        let parse = |what: &str, v: &str| {
            parse_duration(v).ok_or_else(|| SettingsError::BadDuration {
                source_name: format!("{} ({what})", path.display()),
                value: v.to_owned(),
            })
        };
        let mut s = Settings {
            oauth_client_ids: file
                .oauth_client_ids
                .iter()
                .map(|(url, id)| (url.trim_end_matches('/').to_owned(), id.clone()))
                .collect(),
            ..Settings::default()
        };
        if let Some(v) = &file.min_validity {
            s.min_validity = parse("min_validity", v)?;
        }
        if let Some(v) = &file.early_renewal {
            s.early_renewal = parse("early_renewal", v)?;
        }
        for (registry, r) in &file.registries {
            if let Some(v) = &r.min_validity {
                let host = crate::registry::RegistryHost::parse(registry).map_err(|e| {
                    SettingsError::BadFile {
                        path: path.into(),
                        reason: e.to_string(),
                    }
                })?;
                s.per_registry
                    .insert(host.as_str().to_owned(), parse(registry, v)?);
            }
        }
        Ok(s)
    }

    /// The OAuth client id configured for the GitLab at `gitlab_url`.
    pub fn oauth_client_id(&self, gitlab_url: &str) -> Option<&str> {
        self.oauth_client_ids
            .get(gitlab_url.trim_end_matches('/'))
            .map(String::as_str)
    }

    /// How long a secret handed out for `registry` must stay valid.
    pub fn min_validity(&self, registry: &str) -> SignedDuration {
        self.env_override
            .or_else(|| self.per_registry.get(registry).copied())
            .unwrap_or(self.min_validity)
    }

    pub fn early_renewal(&self) -> SignedDuration {
        self.early_renewal
    }
}

fn config_path(env: &Env) -> Option<PathBuf> {
    if let Some(dir) = env.path(env::CONFIG_DIR) {
        return Some(dir.join("config.json"));
    }
    directories::ProjectDirs::from("", "", crate::BINARY_NAME)
        .map(|p| p.config_dir().join("config.json"))
}

/// A duration as people read it, in jiff's friendly format: `1h 30m`, `36h`, `30d`.
pub fn describe(d: SignedDuration) -> String {
    // Minutes are precise enough for hours; under an hour, say the seconds ("in 30s", never
    // "in 0s" for a token that is about to die).
    let smallest = if d.abs() < SignedDuration::from_hours(1) {
        jiff::Unit::Second
    } else {
        jiff::Unit::Minute
    };
    let rounded = jiff::Span::try_from(d).and_then(|span| {
        span.round(
            jiff::SpanRound::new()
                .largest(jiff::Unit::Day)
                .smallest(smallest)
                .days_are_24_hours(),
        )
    });
    match rounded {
        Ok(span) => format!("{span:#}"),
        Err(_) => format!("{d:#}"),
    }
}

/// Parses `90m`, `36h`, `2d`, `1h30m`, `1h 30m`, `45s`, `1w` (jiff's friendly format, or
/// ISO 8601), with days as 24 hours. Negative, fractional or calendar (month, year)
/// durations, a number without a unit, and more than ten years are refused.
pub fn parse_duration(s: &str) -> Option<SignedDuration> {
    let s = s.trim();
    if s.contains(['.', ',', '-']) || s.contains("ago") {
        return None;
    }
    let span: jiff::Span = s.parse().ok()?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()?;
    // Nothing sensible is longer; beyond it time arithmetic would overflow.
    (!d.is_negative() && d.as_secs() <= MAX_DURATION_SECS).then_some(d)
}

/// Ten years: the longest duration a setting may hold.
const MAX_DURATION_SECS: i64 = 10 * 366 * 86_400;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m"), Some(SignedDuration::from_mins(90)));
        assert_eq!(parse_duration("36h"), Some(SignedDuration::from_hours(36)));
        assert_eq!(parse_duration("2d"), Some(SignedDuration::from_hours(48)));
        assert_eq!(parse_duration("1h30m"), Some(SignedDuration::from_mins(90)));
        assert_eq!(
            parse_duration("1h 30m"),
            Some(SignedDuration::from_mins(90))
        );
        assert_eq!(parse_duration("1w"), Some(SignedDuration::from_hours(168)));
        for bad in [
            "",
            "90",
            "m",
            "1x",
            "-5m",
            "1.5h",
            "100000000d",
            "4000d",
            "5m ago",
            "1mo",
            "1y",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(describe(SignedDuration::from_mins(90)), "1h 30m");
        assert_eq!(describe(SignedDuration::from_hours(36)), "1d 12h");
        assert_eq!(describe(SignedDuration::from_hours(24 * 30)), "30d");
        assert_eq!(describe(SignedDuration::from_secs(30)), "30s");
        assert_eq!(describe(SignedDuration::from_secs(59 * 60 + 30)), "59m 30s");
        assert_eq!(describe(SignedDuration::from_secs(3600 + 30)), "1h 1m");
    }

    #[test]
    fn oauth_client_ids_per_gitlab() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"oauth_client_ids": {"https://gitlab.example.com/": "abc123"}}"#,
        )
        .unwrap();
        let s = Settings::from_file(&path).unwrap();
        assert_eq!(
            s.oauth_client_id("https://gitlab.example.com"),
            Some("abc123")
        );
        assert_eq!(
            s.oauth_client_id("https://gitlab.example.com/"),
            Some("abc123")
        );
        assert_eq!(s.oauth_client_id("https://other.example.com"), None);
    }

    #[test]
    fn file_and_per_registry_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"min_validity":"2h","registries":{"HTTPS://Reg.Example.com/":{"min_validity":"36h"}}}"#,
        )
        .unwrap();
        let s = Settings::from_file(&path).unwrap();
        assert_eq!(s.min_validity("other"), SignedDuration::from_hours(2));
        assert_eq!(
            s.min_validity("reg.example.com"),
            SignedDuration::from_hours(36)
        );
        std::fs::write(&path, r#"{"min_validty":"2h"}"#).unwrap();
        assert!(Settings::from_file(&path).is_err(), "typos are reported");
        std::fs::write(&path, r#"{"min_validity":"soon"}"#).unwrap();
        let e = Settings::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("90m"), "{e}");
    }
}
