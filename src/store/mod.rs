//! Secret stores: the OS keychains, behind one small type.
//!
//! Secrets only ever live here. The backends come from the keyring-rs family
//! (`keyring-core` plus one store crate per platform): the Secret Service over pure-Rust
//! D-Bus on Linux/BSD (no libdbus), the kernel keyring (keyutils) as the headless Linux
//! fallback, the macOS Keychain and the Windows Credential Manager.
//!
//! Two properties matter more than anything else here:
//! - **Bounded time.** Every keychain call runs on a worker thread with a deadline, because
//!   a Secret Service prompt can wait forever, and a hung helper hangs `docker pull`.
//! - **Honest errors.** A locked keyring is reported as locked, with the fix, never as
//!   "not found" (which would make docker silently pull anonymously).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use keyring_core::{CredentialStore, Error as KeyringError};
use serde::{Deserialize, Serialize};

use crate::registry::RegistryHost;
use crate::secret::{ExposeSecret, Secret, secret_from};

/// Chooses the backend: `auto` (default) or one of [`Backend::NAMES`].
pub const STORE_ENV: &str = "DOCKER_CREDENTIAL_GITLAB_STORE";
/// The keychain "service" our items are filed under.
pub const SERVICE: &str = "docker-credential-gitlab";
/// No keychain call may take longer than this.
pub const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// A secret store implementation. Recorded per entry in the state file, so `get` goes
/// straight to the store that holds the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// freedesktop Secret Service (GNOME Keyring, KWallet, KeePassXC) over D-Bus.
    SecretService,
    /// The Linux kernel keyring: works headless, but is lost at reboot.
    Keyutils,
    /// The macOS login Keychain.
    Keychain,
    /// The Windows Credential Manager.
    Wincred,
}

impl Backend {
    pub const NAMES: &'static str = "auto, secret-service, keyutils, keychain, wincred";

    pub fn name(self) -> &'static str {
        match self {
            Backend::SecretService => "secret-service",
            Backend::Keyutils => "keyutils",
            Backend::Keychain => "keychain",
            Backend::Wincred => "wincred",
        }
    }

    fn parse(s: &str) -> Option<Backend> {
        [
            Backend::SecretService,
            Backend::Keyutils,
            Backend::Keychain,
            Backend::Wincred,
        ]
        .into_iter()
        .find(|b| b.name() == s)
    }

    /// Whether secrets survive a reboot (shown by `status`).
    pub fn survives_reboot(self) -> bool {
        self != Backend::Keyutils
    }

    /// What to do when this backend cannot be used.
    fn fix(self) -> String {
        match self {
            Backend::SecretService => format!(
                "run a Secret Service provider (GNOME Keyring, KWallet, KeePassXC) in your session, \
                 or set {STORE_ENV}=keyutils for a headless machine"
            ),
            Backend::Keyutils => format!(
                "the kernel keyring is not usable here (containers often block it); set {STORE_ENV} to another store"
            ),
            Backend::Keychain => {
                "unlock the login keychain (`security unlock-keychain`), e.g. when working over SSH"
                    .to_string()
            }
            Backend::Wincred => {
                "check that the Windows Credential Manager service is running".into()
            }
        }
    }

    fn lock_fix(self) -> String {
        match self {
            Backend::SecretService => format!(
                "unlock it (log in to the desktop, or `gnome-keyring-daemon --unlock` in a headless session), \
                 or set {STORE_ENV}=keyutils"
            ),
            other => other.fix(),
        }
    }

    /// The backends `auto` tries, in order, on this platform.
    fn auto_order() -> &'static [Backend] {
        if cfg!(target_os = "macos") {
            &[Backend::Keychain]
        } else if cfg!(windows) {
            &[Backend::Wincred]
        } else if cfg!(target_os = "linux") {
            &[Backend::SecretService, Backend::Keyutils]
        } else {
            &[Backend::SecretService]
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a store could not do what was asked. `Display` is one line: what failed, in which
/// backend, and how to fix it. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}: {STORE_ENV} must be one of {names}", names = Backend::NAMES)]
    UnknownBackend(String),
    #[error("{backend} store is not available on this platform; use one of: auto, {native}", native = Backend::auto_order().iter().map(|b| b.name()).collect::<Vec<_>>().join(", "))]
    Unsupported { backend: Backend },
    #[error("{backend} store is unavailable ({detail}); {fix}", fix = backend.fix())]
    Unavailable { backend: Backend, detail: String },
    #[error("{backend} store is locked ({detail}); {fix}", fix = backend.lock_fix())]
    Locked { backend: Backend, detail: String },
    #[error(
        "{backend} store did not answer within {}s (is it waiting for a password prompt?); {fix}",
        CALL_DEADLINE.as_secs(), fix = backend.lock_fix()
    )]
    Timeout { backend: Backend },
    #[error("{backend} store failed: {detail}")]
    Failed { backend: Backend, detail: String },
    #[error("no secret store could be used: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(" | "))]
    NoneAvailable(Vec<StoreError>),
}

/// Which backend(s) to use, from [`STORE_ENV`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreChoice {
    Auto,
    Only(Backend),
}

impl StoreChoice {
    pub fn from_env() -> Result<StoreChoice, StoreError> {
        match std::env::var(STORE_ENV) {
            Err(_) => Ok(StoreChoice::Auto),
            Ok(v) => StoreChoice::parse(&v),
        }
    }

    pub fn parse(value: &str) -> Result<StoreChoice, StoreError> {
        let v = value.trim().to_ascii_lowercase();
        if v.is_empty() || v == "auto" {
            return Ok(StoreChoice::Auto);
        }
        Backend::parse(&v)
            .map(StoreChoice::Only)
            .ok_or_else(|| StoreError::UnknownBackend(value.to_owned()))
    }
}

/// An open connection to one backend.
pub struct SecretStore {
    backend: Backend,
    inner: Arc<CredentialStore>,
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretStore")
            .field("backend", &self.backend)
            .finish()
    }
}

impl SecretStore {
    /// Connects to `backend`, within [`CALL_DEADLINE`].
    pub fn open(backend: Backend) -> Result<SecretStore, StoreError> {
        let inner = with_deadline(backend, move || platform::open(backend))?
            .map_err(|e| open_error(backend, e))?;
        Ok(SecretStore { backend, inner })
    }

    /// Stores `secret` for `host` and returns the backend that took it. `preferred` (the
    /// backend already holding this registry) is tried first under `auto`. Under `auto` a
    /// backend that cannot be reached is skipped, but one that is reachable and locked is
    /// *not*: the user has a keyring and should unlock it rather than have secrets land
    /// somewhere else.
    pub fn write(
        choice: StoreChoice,
        preferred: Option<Backend>,
        host: &RegistryHost,
        secret: &Secret,
    ) -> Result<Backend, StoreError> {
        let order: Vec<Backend> = match choice {
            StoreChoice::Only(backend) => vec![backend],
            StoreChoice::Auto => preferred
                .into_iter()
                .chain(Backend::auto_order().iter().copied())
                .fold(Vec::new(), |mut v, b| {
                    if !v.contains(&b) {
                        v.push(b);
                    }
                    v
                }),
        };
        let mut errors = Vec::new();
        for backend in order {
            let result = SecretStore::open(backend).and_then(|s| s.set(host, secret));
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
        Err(if errors.len() == 1 {
            errors.remove(0)
        } else {
            StoreError::NoneAvailable(errors)
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The secret for `host`, or `None` when this store has no item for it.
    pub fn get(&self, host: &RegistryHost) -> Result<Option<Secret>, StoreError> {
        match self.get_once(host) {
            // A read is idempotent: when the keychain daemon dropped the call (seen with
            // gnome-keyring while an item is being replaced under heavy load), ask once more.
            Err(StoreError::Failed { detail, .. }) if is_transient(&detail) => self.get_once(host),
            other => other,
        }
    }

    fn get_once(&self, host: &RegistryHost) -> Result<Option<Secret>, StoreError> {
        let entry = self.entry(host)?;
        match self.call(move || entry.get_password())? {
            Ok(s) => Ok(Some(secret_from(s))),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(self.op_error(e)),
        }
    }

    /// Creates or replaces the item for `host`.
    pub fn set(&self, host: &RegistryHost, secret: &Secret) -> Result<(), StoreError> {
        let entry = self.entry(host)?;
        // The worker thread needs its own copy; it is wiped when dropped.
        let secret = secret_from(secret.expose_secret().to_owned());
        self.call(move || entry.set_password(secret.expose_secret()))?
            .map_err(|e| self.op_error(e))
    }

    /// Deletes the item for `host`; deleting an absent item succeeds.
    pub fn delete(&self, host: &RegistryHost) -> Result<(), StoreError> {
        let entry = self.entry(host)?;
        match self.call(move || entry.delete_credential())? {
            Ok(()) | Err(KeyringError::NoEntry) => Ok(()),
            Err(e) => Err(self.op_error(e)),
        }
    }

    fn entry(&self, host: &RegistryHost) -> Result<keyring_core::Entry, StoreError> {
        let label = format!("Registry credentials for {host} (docker-credential-gitlab)");
        let modifiers: HashMap<&str, &str> = match self.backend {
            Backend::SecretService => HashMap::from([("label", label.as_str())]),
            Backend::Wincred => HashMap::from([("persistence", "Local")]),
            _ => HashMap::new(),
        };
        self.inner
            .build(SERVICE, host.as_str(), Some(&modifiers))
            .map_err(|e| self.op_error(e))
    }

    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        with_deadline(self.backend, f)
    }

    fn op_error(&self, e: KeyringError) -> StoreError {
        let backend = self.backend;
        match e {
            KeyringError::NoStorageAccess(inner) => StoreError::Locked {
                backend,
                detail: one_line(&inner.to_string()),
            },
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
    ["NoReply", "disconnected", "UnknownObject", "ServiceUnknown"]
        .iter()
        .any(|m| detail.contains(m))
}

/// Platform error texts can span lines; protocol errors must be one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

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
            #[allow(unreachable_patterns)]
            other => Err(KeyringError::NotSupportedByStore(other.name().to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_parsing() {
        assert_eq!(StoreChoice::parse("").unwrap(), StoreChoice::Auto);
        assert_eq!(StoreChoice::parse("AUTO").unwrap(), StoreChoice::Auto);
        assert_eq!(
            StoreChoice::parse("secret-service").unwrap(),
            StoreChoice::Only(Backend::SecretService)
        );
        let err = StoreChoice::parse("plaintext").unwrap_err().to_string();
        assert!(
            err.contains("plaintext") && err.contains("keyutils"),
            "{err}"
        );
    }

    #[test]
    fn backend_names_round_trip_through_serde() {
        for b in [
            Backend::SecretService,
            Backend::Keyutils,
            Backend::Keychain,
            Backend::Wincred,
        ] {
            let json = serde_json::to_string(&b).unwrap();
            assert_eq!(json, format!("\"{}\"", b.name()));
            assert_eq!(serde_json::from_str::<Backend>(&json).unwrap(), b);
        }
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
        let e = SecretStore::open(Backend::Keychain).unwrap_err();
        assert!(matches!(e, StoreError::Unsupported { .. }), "{e}");
    }
}
