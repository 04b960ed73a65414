//! A snapshot of the process environment, so the rules that read it (credential sources,
//! the store's CI fallback) are plain functions of a value and unit-test without touching
//! the real environment.

use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    /// The variables of this process (those that are valid UTF-8).
    pub fn from_process() -> Environment {
        Environment {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Environment {
        Environment {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The value of `name`; an empty variable counts as unset.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn is_true(&self, name: &str) -> bool {
        self.var(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }

    /// Inside a GitLab CI job (GitLab Runner sets `GITLAB_CI=true`).
    pub fn is_gitlab_ci(&self) -> bool {
        self.is_true("GITLAB_CI")
    }

    /// Inside any CI job: `GITLAB_CI=true`, or `CI=true` (GitHub Actions, GitLab, most others).
    pub fn is_ci(&self) -> bool {
        self.is_gitlab_ci() || self.is_true("CI")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_detection_and_empty_values() {
        assert!(Environment::from_pairs([("CI", "true")]).is_ci());
        assert!(Environment::from_pairs([("GITLAB_CI", "true")]).is_ci());
        assert!(Environment::from_pairs([("CI", "1")]).is_ci());
        assert!(!Environment::from_pairs([("CI", "false")]).is_ci());
        assert!(!Environment::from_pairs([("CI", "")]).is_ci());
        assert!(!Environment::from_pairs([("CI", "true")]).is_gitlab_ci());
        assert_eq!(Environment::from_pairs([("A", "")]).var("A"), None);
    }
}
