//! Secret stores: the OS keychains, behind one small type.
//!
//! Secrets only ever live here. The backends are one table ([`backend`]): the keychains come
//! from the keyring-rs family (`keyring-core` plus one store crate per platform): the Secret
//! Service over pure-Rust D-Bus on Linux/BSD (no libdbus), the kernel keyring (keyutils), the
//! macOS Keychain and the Windows Credential Manager; and the plain [`file`] store for
//! machines without any (explicit, or `auto`'s fallback inside CI jobs).
//!
//! Every write takes the state write lock's [`WriteGuard`]: a secret can only change under the
//! lock that also guards the metadata pointing at it.
//!
//! Two properties matter more than anything else here:
//! - **Bounded time.** No keychain call may outlive [`CALL_DEADLINE`], because a Secret
//!   Service prompt can wait forever, and a hung helper hangs `docker pull`. The Secret
//!   Service store bounds its own socket reads and writes (no thread on the `get` path); the
//!   other keychains' calls run on a worker thread that is abandoned at the deadline.
//! - **Honest errors.** A locked keyring is reported as locked, with the fix, never as
//!   "not found" (which would make docker silently pull anonymously).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use keyring_core::{CredentialStore, Error as KeyringError};

use crate::datadir::DataDir;
use crate::datadir::lock::WriteGuard;
use crate::env::STORE as STORE_ENV;
use crate::registry::RegistryHost;
use crate::report::one_line;
use crate::secret::{ExposeSecret, Secret};

mod choice;
pub(crate) mod file;

pub(crate) use crate::model::backend::{Auto, Backend};
pub(crate) use choice::{Current, StoreChoice, current, keyutils_note};
use file::FileStore;
/// The keychain "service" our items are filed under.
pub(crate) const SERVICE: &str = "docker-credential-gitlab";
/// No keychain call may take longer than this.
pub(crate) const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// Why a store could not do what was asked. `Display` is one line: what failed, in which
/// backend, and how to fix it. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("{0}: {STORE_ENV} must be one of {names}", names = Backend::names())]
    UnknownBackend(String),
    #[error("{backend} store is not available on this platform; use one of: auto, {here}", here = Backend::ALL.iter().filter(|b| b.info().here).map(|b| b.name()).collect::<Vec<_>>().join(", "))]
    Unsupported { backend: Backend },
    #[error("{backend} store is unavailable ({detail}); {fix}", fix = backend.info().fix)]
    Unavailable { backend: Backend, detail: String },
    #[error("{backend} store is locked ({detail}); {fix}", fix = backend.info().lock_fix)]
    Locked { backend: Backend, detail: String },
    #[error(
        "{backend} store did not answer within {}s (is it waiting for a password prompt?); {fix}",
        CALL_DEADLINE.as_secs(), fix = backend.info().lock_fix
    )]
    Timeout { backend: Backend },
    #[error("{backend} store failed: {detail}")]
    Failed { backend: Backend, detail: String },
    #[error("no secret store could be used: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(" | "))]
    NoneAvailable(Vec<StoreError>),
    /// `auto` outside CI with no usable keychain: never a silent plaintext file.
    #[error(
        "no keychain is usable here ({}); on a machine without one set {STORE_ENV}=file \
         (secrets in a 0600 file, as plain as Docker's own config.json), or {STORE_ENV}=keyutils \
         where the kernel keyring is allowed (lost at reboot)",
        .0.iter().map(StoreError::short).collect::<Vec<_>>().join("; ")
    )]
    NoKeychain(Vec<StoreError>),
}

impl StoreError {
    /// `backend: what happened`, without the fix (for summaries).
    fn short(&self) -> String {
        match self {
            StoreError::Unavailable { backend, detail }
            | StoreError::Failed { backend, detail }
            | StoreError::Locked { backend, detail } => {
                format!(
                    "{backend}: {}",
                    detail.trim_start_matches("Platform failure: ")
                )
            }
            StoreError::Timeout { backend } => format!("{backend}: no answer"),
            other => other.to_string(),
        }
    }
}

/// An open connection to one backend.
pub(crate) struct SecretStore {
    backend: Backend,
    inner: Inner,
}

enum Inner {
    Keyring(Arc<CredentialStore>),
    File(FileStore),
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretStore")
            .field("backend", &self.backend)
            .finish()
    }
}

impl SecretStore {
    /// Connects to `backend`, within [`CALL_DEADLINE`]. `dir` is the data directory (where
    /// the `file` store keeps its file).
    pub fn open(backend: Backend, dir: &DataDir) -> Result<SecretStore, StoreError> {
        let inner = match backend {
            Backend::File => Inner::File(FileStore::in_dir(dir)),
            // Its records hold the secrets: `records` reaches them, never a local store.
            Backend::Vault => {
                return Err(StoreError::Failed {
                    backend,
                    detail: "the vault store keeps whole records; it is not a local secret store"
                        .into(),
                });
            }
            _ => Inner::Keyring(
                bounded(backend, move || platform::open(backend))?
                    .map_err(|e| open_error(backend, e))?,
            ),
        };
        Ok(SecretStore { backend, inner })
    }

    /// Stores `secret` for `host` and returns the backend that took it. `preferred` (the
    /// keychain already holding this registry) is tried first under `auto`. Under `auto` a
    /// backend that cannot be reached is skipped, but one that is reachable and locked is
    /// *not*: the user has a keyring and should unlock it rather than have secrets land
    /// somewhere else.
    pub fn write(
        guard: &WriteGuard<'_>,
        choice: StoreChoice,
        preferred: Option<Backend>,
        host: &RegistryHost,
        secret: &Secret,
    ) -> Result<Backend, StoreError> {
        let mut errors = Vec::new();
        for backend in choice.order(preferred) {
            let result =
                SecretStore::open(backend, guard.dir()).and_then(|s| s.set(guard, host, secret));
            match result {
                Ok(()) => return Ok(backend),
                Err(e @ (StoreError::Locked { .. } | StoreError::Timeout { .. }))
                    if backend == Backend::SecretService =>
                {
                    return Err(e);
                }
                Err(e) => errors.push(e),
            }
        }
        Err(match choice {
            StoreChoice::Auto { in_ci: false } => StoreError::NoKeychain(errors),
            _ if errors.len() == 1 => errors.remove(0),
            _ => StoreError::NoneAvailable(errors),
        })
    }

    /// Whether a write would succeed here: a throw-away item is written and deleted (the
    /// file store only needs its directory).
    fn probe(&self, guard: &WriteGuard<'_>) -> Result<(), StoreError> {
        if let Inner::File(_) = &self.inner {
            let root = guard.dir().root();
            return crate::private_file::create_dir(root).map_err(|e| StoreError::Failed {
                backend: self.backend,
                detail: format!("cannot create {}: {e}", root.display()),
            });
        }
        let probe = RegistryHost::parse("probe.docker-credential-gitlab.invalid").expect("valid");
        self.set(guard, &probe, &Secret::from("probe"))?;
        self.delete(guard, &probe)
    }

    /// The secret for `host`, or `None` when this store has no item for it.
    pub fn get(&self, host: &RegistryHost) -> Result<Option<Secret>, StoreError> {
        // A read is idempotent: when the keychain daemon dropped the call, or was not
        // there for a moment (gnome-keyring can crash under heavy concurrent replaces; a
        // desktop session's bus starts it again), ask again after a short pause.
        retry_transient(|| self.get_once(host))
    }

    fn get_once(&self, host: &RegistryHost) -> Result<Option<Secret>, StoreError> {
        if let Inner::File(file) = &self.inner {
            return file.get(host);
        }
        let entry = self.entry(host)?;
        match self.call(move || entry.get_password())? {
            Ok(s) => Ok(Some(Secret::from(s))),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(self.op_error(e)),
        }
    }

    /// Creates or replaces the item for `host`, under the state write lock.
    pub fn set(
        &self,
        guard: &WriteGuard<'_>,
        host: &RegistryHost,
        secret: &Secret,
    ) -> Result<(), StoreError> {
        if let Inner::File(file) = &self.inner {
            return file.set(guard, host, secret);
        }
        // Replacing an item is idempotent too.
        retry_transient(|| {
            let entry = self.entry(host)?;
            // The worker thread needs its own copy; it is wiped when dropped.
            let secret = secret.clone();
            self.call(move || entry.set_password(secret.expose_secret()))?
                .map_err(|e| self.op_error(e))
        })
    }

    /// Deletes the item for `host`, under the state write lock; deleting an absent item
    /// succeeds.
    pub fn delete(&self, guard: &WriteGuard<'_>, host: &RegistryHost) -> Result<(), StoreError> {
        if let Inner::File(file) = &self.inner {
            return file.delete(guard, host);
        }
        let entry = self.entry(host)?;
        match self.call(move || entry.delete_credential())? {
            Ok(()) | Err(KeyringError::NoEntry) => Ok(()),
            Err(e) => Err(self.op_error(e)),
        }
    }

    fn entry(&self, host: &RegistryHost) -> Result<keyring_core::Entry, StoreError> {
        let Inner::Keyring(store) = &self.inner else {
            unreachable!("the file store has no keyring entries")
        };
        let label = format!("Registry credentials for {host} (docker-credential-gitlab)");
        let modifiers: HashMap<&str, &str> = match self.backend {
            Backend::SecretService => HashMap::from([("label", label.as_str())]),
            Backend::Wincred => HashMap::from([("persistence", "Local")]),
            _ => HashMap::new(),
        };
        store
            .build(
                SERVICE,
                host.as_str(),
                Some(&modifiers).filter(|m| !m.is_empty()),
            )
            .map_err(|e| self.op_error(e))
    }

    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        bounded(self.backend, f)
    }

    fn op_error(&self, e: KeyringError) -> StoreError {
        let backend = self.backend;
        match e {
            KeyringError::NoStorageAccess(inner) => StoreError::Locked {
                backend,
                detail: one_line(&inner.to_string()),
            },
            #[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
            KeyringError::PlatformFailure(inner) if inner.is::<secret_service::TimedOut>() => {
                StoreError::Timeout { backend }
            }
            KeyringError::PlatformFailure(inner) => {
                let detail = one_line(&inner.to_string());
                if detail.to_ascii_lowercase().contains("locked") {
                    StoreError::Locked { backend, detail }
                } else {
                    StoreError::Failed { backend, detail }
                }
            }
            other => StoreError::Failed {
                backend,
                detail: one_line(&other.to_string()),
            },
        }
    }
}

fn open_error(backend: Backend, e: KeyringError) -> StoreError {
    match e {
        KeyringError::NotSupportedByStore(_) => StoreError::Unsupported { backend },
        KeyringError::NoStorageAccess(inner) => StoreError::Locked {
            backend,
            detail: one_line(&inner.to_string()),
        },
        other => StoreError::Unavailable {
            backend,
            detail: one_line(&other.to_string()),
        },
    }
}

/// Runs `f` within [`CALL_DEADLINE`]: the Secret Service store keeps the deadline itself
/// (every socket wait is bounded by it), so its calls run right here; the others go through
/// [`with_deadline`].
fn bounded<T: Send + 'static>(
    backend: Backend,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    if backend == Backend::SecretService {
        return Ok(f());
    }
    with_deadline(backend, f)
}

/// Runs `f` on a worker thread and gives up after [`CALL_DEADLINE`]. A timed-out worker
/// is abandoned; the process exits soon after, taking it along.
fn with_deadline<T: Send + 'static>(
    backend: Backend,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("keychain".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| StoreError::Failed {
            backend,
            detail: format!("cannot start a worker thread: {e}"),
        })?;
    rx.recv_timeout(CALL_DEADLINE)
        .map_err(|_| StoreError::Timeout { backend })
}

/// D-Bus errors that mean "the call was lost", not "the answer is no".
fn is_transient(detail: &str) -> bool {
    [
        "NoReply",
        "disconnected",
        "UnknownObject",
        "ServiceUnknown",
        "no Secret Service provider",
        // Our session died with a provider that restarted; the retry opens a new one.
        "NoSession",
    ]
    .iter()
    .any(|m| detail.contains(m))
}

/// Runs an idempotent store call, and again (twice at most, 200 then 400 ms later) when it
/// failed because the call was lost rather than answered.
fn retry_transient<T>(mut call: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let mut pause = Duration::from_millis(200);
    for _ in 0..2 {
        match call() {
            Err(StoreError::Failed { detail, .. }) if is_transient(&detail) => {
                std::thread::sleep(pause);
                pause *= 2;
            }
            other => return other,
        }
    }
    call()
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
mod dbus;
#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
mod secret_service;

/// Opening each backend, where the platform has it.
mod platform {
    use super::*;

    pub(super) fn open(backend: Backend) -> Result<Arc<CredentialStore>, KeyringError> {
        match backend {
            #[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
            Backend::SecretService => Ok(secret_service::Store::new()? as Arc<CredentialStore>),
            #[cfg(target_os = "linux")]
            Backend::Keyutils => {
                Ok(linux_keyutils_keyring_store::Store::new()? as Arc<CredentialStore>)
            }
            #[cfg(target_os = "macos")]
            Backend::Keychain => {
                Ok(apple_native_keyring_store::keychain::Store::new()? as Arc<CredentialStore>)
            }
            #[cfg(windows)]
            Backend::Wincred => {
                Ok(windows_native_keyring_store::Store::new()? as Arc<CredentialStore>)
            }
            #[cfg(test)]
            Backend::Memory => Ok(memory() as Arc<CredentialStore>),
            #[allow(unreachable_patterns)]
            other => Err(KeyringError::NotSupportedByStore(other.name().to_owned())),
        }
    }
}

/// The unit tests' in-memory store: keyring-core's mock, one per test process.
#[cfg(test)]
pub(crate) fn memory() -> Arc<keyring_core::mock::Store> {
    static STORE: std::sync::OnceLock<Arc<keyring_core::mock::Store>> = std::sync::OnceLock::new();
    STORE
        .get_or_init(|| keyring_core::mock::Store::new().expect("mock store"))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_keychain_names_both_ways_out() {
        let e = StoreError::NoKeychain(vec![StoreError::Unavailable {
            backend: Backend::SecretService,
            detail: "no bus".into(),
        }])
        .to_string();
        assert!(!e.contains('\n'));
        assert!(e.contains("secret-service: no bus"), "{e}");
        assert!(
            e.contains("DOCKER_CREDENTIAL_GITLAB_STORE=file")
                && e.contains("DOCKER_CREDENTIAL_GITLAB_STORE=keyutils"),
            "{e}"
        );
    }

    #[test]
    fn memory_store_round_trip_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let sf = DataDir::at(dir.path());
        let guard = sf.lock().unwrap();
        let host = RegistryHost::parse("memory-round-trip.example").unwrap();
        let store = SecretStore::open(Backend::Memory, &sf).unwrap();
        assert!(store.get(&host).unwrap().is_none());
        let backend = SecretStore::write(
            &guard,
            StoreChoice::Only(Backend::Memory),
            None,
            &host,
            &Secret::from("s1"),
        )
        .unwrap();
        assert_eq!(backend, Backend::Memory);
        assert_eq!(store.get(&host).unwrap().unwrap().expose_secret(), "s1");
        store.delete(&guard, &host).unwrap();
        store.delete(&guard, &host).unwrap();
        assert!(store.get(&host).unwrap().is_none());
    }

    #[test]
    fn errors_are_one_line_and_name_the_fix() {
        let e = StoreError::Locked {
            backend: Backend::SecretService,
            detail: one_line("SS error:\n prompt dismissed"),
        }
        .to_string();
        assert!(!e.contains('\n'));
        assert!(e.contains("locked") && e.contains("unlock"), "{e}");
        assert!(!e.contains("not found"));
    }

    #[cfg(not(target_os = "macos"))]
    #[test]
    fn unsupported_backend_is_reported() {
        let e = SecretStore::open(Backend::Keychain, &DataDir::at(".")).unwrap_err();
        assert!(matches!(e, StoreError::Unsupported { .. }), "{e}");
    }
}
