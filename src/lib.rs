//! docker-credential-gitlab: a Docker credential helper for GitLab container registries.
//!
//! Data flows one way: a command (`commands`) asks the policy layer what to do, and the
//! policy talks to the secret store (`store`), the non-secret state file (`state`) and,
//! later, the GitLab API. The modules:
//!
//! - [`protocol`]: the docker-credential-helpers wire format (stdin/stdout, exact strings).
//! - [`registry`]: turning any server string a client sends into one canonical host key.
//! - [`secret`]: the redacting secret type.
//! - [`store`]: OS keychains behind one small trait, with deadlines and clear errors.
//! - [`state`]: per-registry metadata in a versioned JSON file, atomic writes, file lock.
//! - [`paths`]: where state lives.
//! - [`commands`]: one module per verb/command; [`cli`] parses argv and dispatches.

pub mod cli;
pub mod clock;
pub mod commands;
pub mod credentials;
pub mod docker_config;
pub mod environment;
pub mod gitlab;
pub mod leases;
pub(crate) mod path_lookup;
pub mod paths;
pub mod policy;
pub mod private_file;
pub mod protocol;
pub mod registry;
pub mod renew;
pub mod secret;
pub mod settings;
pub mod sources;
pub mod state;
pub mod store;
#[doc(hidden)]
pub mod testing;

/// The name docker derives from `credHelpers` values: `docker-credential-<suffix>`.
pub const BINARY_NAME: &str = "docker-credential-gitlab";
/// The `credHelpers` value that points docker at this helper.
pub const HELPER_SUFFIX: &str = "gitlab";
/// Reported by `version`, in the format docker-credential-helpers uses.
pub const PACKAGE: &str = "gitlab.com/docker-credential-gitlab/docker-credential-gitlab";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
