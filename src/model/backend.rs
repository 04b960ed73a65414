//! The table of secret-store backends. A new backend touches this file (one row) and
//! `SecretStore::open`, nothing else.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret store implementation. Recorded per entry in the state file, so `get` goes
/// straight to the store that holds the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// The macOS login Keychain.
    Keychain,
    /// The Windows Credential Manager.
    Wincred,
    /// freedesktop Secret Service (GNOME Keyring, KWallet, KeePassXC) over D-Bus.
    SecretService,
    /// The Linux kernel keyring: works headless, but is lost at reboot.
    Keyutils,
    /// One 0600 JSON file in the data directory, for machines without a keychain.
    File,
    /// OpenBao/HashiCorp Vault KV v2, for fleets: the whole record (secret, GitLab facts,
    /// hand-outs, renewal claim) is shared by every host using the same address and path.
    Vault,
    /// An in-process store for unit tests (keyring-core's mock store).
    #[cfg(test)]
    Memory,
}

/// How `auto` treats a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auto {
    /// Tried in table order wherever the platform has it.
    Native,
    /// Used only when no native store is usable and this is a CI job (`GITLAB_CI=true` or
    /// `CI=true`), whose home directory dies with the job.
    CiFallback,
    /// Only when chosen explicitly (`vault`; the unit tests' in-memory store).
    Explicit,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct BackendInfo {
    pub name: &'static str,
    /// Whether this build has the backend (the platform's keychains only exist there).
    pub here: bool,
    pub auto: Auto,
    /// What to do when the backend cannot be used.
    pub fix: &'static str,
    /// What to do when it is reachable but locked.
    pub lock_fix: &'static str,
}

impl Backend {
    /// Every backend, in the order `auto` tries them.
    pub const ALL: &'static [Backend] = &[
        Backend::Keychain,
        Backend::Wincred,
        Backend::SecretService,
        Backend::Keyutils,
        Backend::File,
        Backend::Vault,
        #[cfg(test)]
        Backend::Memory,
    ];

    pub fn info(self) -> BackendInfo {
        const LINUX_LIKE: bool = cfg!(any(
            target_os = "linux",
            target_os = "freebsd",
            target_os = "openbsd"
        ));
        match self {
            Backend::Keychain => BackendInfo {
                name: "keychain",
                here: cfg!(target_os = "macos"),
                auto: Auto::Native,
                fix: "unlock the login keychain (`security unlock-keychain`), e.g. when working over SSH",
                lock_fix: "unlock the login keychain (`security unlock-keychain`), e.g. when working over SSH",
            },
            Backend::Wincred => BackendInfo {
                name: "wincred",
                here: cfg!(windows),
                auto: Auto::Native,
                fix: "check that the Windows Credential Manager service is running",
                lock_fix: "check that the Windows Credential Manager service is running",
            },
            Backend::SecretService => BackendInfo {
                name: "secret-service",
                here: LINUX_LIKE,
                auto: Auto::Native,
                fix: "run a Secret Service provider (GNOME Keyring, KWallet, KeePassXC) in your session, \
                      or on a headless machine set DOCKER_CREDENTIAL_GITLAB_STORE=file or =keyutils",
                lock_fix: "unlock it (log in to the desktop, or `gnome-keyring-daemon --unlock` in a headless session), \
                           or set DOCKER_CREDENTIAL_GITLAB_STORE=file",
            },
            Backend::Keyutils => BackendInfo {
                name: "keyutils",
                here: cfg!(target_os = "linux"),
                auto: Auto::Native,
                fix: "the kernel keyring is not usable here (containers often block it); \
                      set DOCKER_CREDENTIAL_GITLAB_STORE=file",
                lock_fix: "the kernel keyring is not usable here (containers often block it); \
                           set DOCKER_CREDENTIAL_GITLAB_STORE=file",
            },
            Backend::File => BackendInfo {
                name: "file",
                here: true,
                auto: Auto::CiFallback,
                fix: "check that the data directory (DOCKER_CREDENTIAL_GITLAB_DATA_DIR) is writable",
                lock_fix: "check that the data directory (DOCKER_CREDENTIAL_GITLAB_DATA_DIR) is writable",
            },
            Backend::Vault => BackendInfo {
                name: "vault",
                here: true,
                auto: Auto::Explicit,
                fix: "check VAULT_ADDR (or BAO_ADDR), the Vault token and DOCKER_CREDENTIAL_GITLAB_VAULT_PATH; \
                      `docker-credential-gitlab doctor` names what is missing",
                lock_fix: "unseal Vault (`bao operator unseal` or `vault operator unseal`)",
            },
            #[cfg(test)]
            Backend::Memory => BackendInfo {
                name: "memory",
                here: true,
                auto: Auto::Explicit,
                fix: "",
                lock_fix: "",
            },
        }
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// A backend by name; `openbao` is another name for `vault` (same API).
    pub fn parse(s: &str) -> Option<Backend> {
        let s = if s == "openbao" { "vault" } else { s };
        Backend::ALL.iter().copied().find(|b| b.name() == s)
    }

    /// `auto, keychain, …` for messages.
    pub fn names() -> String {
        std::iter::once("auto")
            .chain(Backend::ALL.iter().map(|b| b.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The native backends `auto` tries, in order, on this platform.
    pub fn native() -> impl Iterator<Item = Backend> {
        Backend::ALL
            .iter()
            .copied()
            .filter(|b| b.info().here && b.info().auto == Auto::Native)
    }

    /// Backends `auto` may fall back to in a CI job.
    pub fn ci_fallback() -> impl Iterator<Item = Backend> {
        Backend::ALL
            .iter()
            .copied()
            .filter(|b| b.info().here && b.info().auto == Auto::CiFallback)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_parse() {
        for &b in Backend::ALL {
            let json = serde_json::to_string(&b).unwrap();
            assert_eq!(json, format!("\"{}\"", b.name()));
            assert_eq!(serde_json::from_str::<Backend>(&json).unwrap(), b);
            assert_eq!(Backend::parse(b.name()), Some(b));
        }
    }

    #[test]
    fn fixes_name_the_real_variable() {
        for &b in Backend::ALL {
            for text in [b.info().fix, b.info().lock_fix] {
                // Every variable a fix names is one the helper reads.
                for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("DOCKER_CREDENTIAL_GITLAB_") || word.starts_with("VAULT_") {
                        assert!(
                            crate::env::VARS.iter().any(|v| v.name == word),
                            "{word} in: {text}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn file_is_never_a_native_choice() {
        assert!(Backend::native().all(|b| b != Backend::File));
        assert_eq!(Backend::ci_fallback().collect::<Vec<_>>(), [Backend::File]);
        #[cfg(target_os = "linux")]
        assert_eq!(
            Backend::native().collect::<Vec<_>>(),
            [Backend::SecretService, Backend::Keyutils]
        );
    }
}
