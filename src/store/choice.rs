//! Which store a secret goes to: `DOCKER_CREDENTIAL_GITLAB_STORE` (`auto` or one backend),
//! the order `auto` tries them in, and which one would take a new secret now.

use super::{Auto, Backend, SecretStore, StoreError};
use crate::datadir::lock::WriteGuard;
use crate::env::{self, Env, STORE as STORE_ENV};

/// Which backend(s) to use, from [`STORE_ENV`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreChoice {
    /// The platform's keychains in table order; in a CI job, the `file` store after them.
    Auto {
        in_ci: bool,
    },
    Only(Backend),
}

impl StoreChoice {
    pub fn from_env(env: &Env) -> Result<StoreChoice, StoreError> {
        StoreChoice::parse(env.var(env::STORE).unwrap_or_default(), env.is_ci())
    }

    pub fn parse(value: &str, in_ci: bool) -> Result<StoreChoice, StoreError> {
        let v = value.trim().to_ascii_lowercase();
        if v.is_empty() || v == "auto" {
            return Ok(StoreChoice::Auto { in_ci });
        }
        Backend::parse(&v)
            .map(StoreChoice::Only)
            .ok_or_else(|| StoreError::UnknownBackend(value.to_owned()))
    }

    /// Every backend this choice could have put a secret in.
    pub fn candidates(self) -> Vec<Backend> {
        let mut all = self.order(None);
        if let StoreChoice::Auto { in_ci: false } = self {
            all.extend(Backend::ci_fallback());
        }
        all
    }

    /// The backends to try, in order; `preferred` (the one already holding the registry)
    /// first under `auto`.
    pub(super) fn order(self, preferred: Option<Backend>) -> Vec<Backend> {
        let in_ci = match self {
            StoreChoice::Only(b) => return vec![b],
            StoreChoice::Auto { in_ci } => in_ci,
        };
        let fallback = in_ci.then(Backend::ci_fallback).into_iter().flatten();
        // A keychain that holds the registry keeps it; a plain file never does once a
        // keychain answers (it is only ever a fallback).
        let preferred = preferred.filter(|b| b.info().auto == Auto::Native);
        let mut order = Vec::new();
        for b in preferred
            .into_iter()
            .chain(Backend::native())
            .chain(fallback)
        {
            if !order.contains(&b) {
                order.push(b);
            }
        }
        order
    }
}

/// Which store a new secret would go to now, and why (for `status`/`doctor`).
#[derive(Debug)]
pub(crate) struct Current {
    pub backend: Result<Backend, StoreError>,
    pub why: String,
}

/// Finds the store a new secret would go to now: the same order as [`SecretStore::write`],
/// each backend probed with a write and delete of a throw-away item (a read alone is not
/// enough: a container's kernel keyring answers reads and refuses writes).
pub(crate) fn current(guard: &WriteGuard<'_>, choice: StoreChoice) -> Current {
    let mut errors = Vec::new();
    for backend in choice.order(None) {
        match SecretStore::open(backend, guard.dir()).and_then(|s| s.probe(guard)) {
            Err(e) => errors.push(e),
            Ok(()) => {
                let skipped = errors.iter().map(StoreError::short).collect::<Vec<_>>();
                let why = match choice {
                    StoreChoice::Only(_) => format!("{STORE_ENV}={backend}"),
                    _ if backend.info().auto == Auto::CiFallback => format!(
                        "auto: this is a CI job and no keychain is usable: {}",
                        skipped.join("; ")
                    ),
                    _ if skipped.is_empty() => format!("auto: the {backend} store answers"),
                    _ => format!("auto: {}", skipped.join("; ")),
                };
                return Current {
                    backend: Ok(backend),
                    why,
                };
            }
        }
    }
    let why = match choice {
        StoreChoice::Only(b) => format!("{STORE_ENV}={b}"),
        StoreChoice::Auto { .. } => "auto".to_owned(),
    };
    let backend = Err(match choice {
        StoreChoice::Auto { in_ci: false } => StoreError::NoKeychain(errors),
        _ if errors.len() == 1 => errors.remove(0),
        _ => StoreError::NoneAvailable(errors),
    });
    Current { backend, why }
}

/// What the kernel keyring keeps, and for how long, when it is where new secrets go or
/// where some are (`in_use`): for `status` and `doctor`.
pub(crate) fn keyutils_note(
    current: &Current,
    mut in_use: impl Iterator<Item = Backend>,
) -> Option<String> {
    const EXPIRY: &str = "/proc/sys/kernel/keys/persistent_keyring_expiry";
    let used = current.backend.as_ref().ok() == Some(&Backend::Keyutils)
        || in_use.any(|b| b == Backend::Keyutils);
    if !used {
        return None;
    }
    let expiry = std::fs::read_to_string(EXPIRY)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|secs| format!("{} days ({secs} s)", secs / 86_400))
        .unwrap_or_else(|| "a kernel-defined time".into());
    Some(format!(
        "keyutils: secrets are lost at reboot, and the persistent keyring expires after {expiry} unused \
         ({EXPIRY}); use the Secret Service or DOCKER_CREDENTIAL_GITLAB_STORE=file to keep them"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_parsing() {
        assert_eq!(
            StoreChoice::parse("", false).unwrap(),
            StoreChoice::Auto { in_ci: false }
        );
        assert_eq!(
            StoreChoice::parse("AUTO", true).unwrap(),
            StoreChoice::Auto { in_ci: true }
        );
        assert_eq!(
            StoreChoice::parse("secret-service", false).unwrap(),
            StoreChoice::Only(Backend::SecretService)
        );
        assert_eq!(
            StoreChoice::parse(" File ", false).unwrap(),
            StoreChoice::Only(Backend::File)
        );
        let err = StoreChoice::parse("plaintext", false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("plaintext") && err.contains("keyutils") && err.contains("file"),
            "{err}"
        );
    }

    #[test]
    fn auto_falls_back_to_the_file_only_in_ci() {
        let outside = StoreChoice::Auto { in_ci: false }.order(None);
        assert!(!outside.contains(&Backend::File), "{outside:?}");
        let inside = StoreChoice::Auto { in_ci: true }.order(None);
        assert_eq!(inside.last(), Some(&Backend::File), "{inside:?}");
        // The keychain that already holds a registry is tried first, once; the file store
        // is never preferred over a keychain.
        let kept = StoreChoice::Auto { in_ci: false }.order(Some(Backend::Keyutils));
        assert_eq!(kept[0], Backend::Keyutils);
        assert_eq!(kept.iter().filter(|b| **b == Backend::Keyutils).count(), 1);
        let left = StoreChoice::Auto { in_ci: true }.order(Some(Backend::File));
        assert_eq!(left.last(), Some(&Backend::File));
        assert_eq!(left.iter().filter(|b| **b == Backend::File).count(), 1);
        assert_eq!(
            StoreChoice::Only(Backend::Keyutils).order(Some(Backend::File)),
            [Backend::Keyutils]
        );
    }
}
