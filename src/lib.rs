//! docker-credential-gitlab: a Docker credential helper for GitLab container registries.
//!
//! Data flows one way; each layer imports only the layers below it (`scripts/check-layers.sh`
//! keeps it so):
//!
//! ```text
//! cli → commands → sources → renew → records → store, datadir, vault → gitlab, docker
//!     → policy, settings, protocol, registry, model → env, report, fault, clock, secret, private_file
//! ```
//!
//! - [`cli`]: argv, the protocol verbs before clap, the user commands through clap.
//! - `commands`: one room per verb or command.
//! - `sources`: the one cascade of credential sources (stored, GitLab CI, environment).
//! - `renew`: renewing a stored token, as small steps around one method interface.
//! - `records`: the one seam where a credential's record lives (secret, facts, leases,
//!   journal, kept token, locks); today this machine's data directory and secret store.
//! - `store`: the secret stores, one table of backends. `datadir`: every file of the data
//!   directory. `vault`: the Vault/OpenBao client (fleet mode). `gitlab`: the GitLab client.
//!   `docker`: Docker's and podman's config.
//! - `policy`: every rule about time. `settings`: `min_validity` and friends.
//! - `protocol`: the wire format. `registry`: registry hosts. `model`: token kinds and facts.
//! - `env`: the one table of environment variables and the snapshot of them. `report`,
//!   `fault`, `clock`, `secret`, `private_file`: leaves.

pub mod cli;
#[doc(hidden)]
pub mod testing;

pub(crate) mod clock;
pub(crate) mod commands;
pub(crate) mod datadir;
pub(crate) mod docker;
pub(crate) mod env;
pub(crate) mod fault;
pub(crate) mod gitlab;
pub(crate) mod model;
pub(crate) mod path_lookup;
pub(crate) mod policy;
pub(crate) mod private_file;
pub(crate) mod protocol;
pub(crate) mod records;
pub(crate) mod registry;
pub(crate) mod renew;
pub(crate) mod report;
pub(crate) mod secret;
pub(crate) mod settings;
pub(crate) mod sources;
pub(crate) mod store;
pub(crate) mod vault;

/// The name docker derives from `credHelpers` values: `docker-credential-<suffix>`.
pub(crate) const BINARY_NAME: &str = "docker-credential-gitlab";
/// The `credHelpers` value that points docker at this helper.
pub(crate) const HELPER_SUFFIX: &str = "gitlab";
/// Reported by `version`, in the format docker-credential-helpers uses.
pub(crate) const PACKAGE: &str = "gitlab.com/docker-credential-gitlab/docker-credential-gitlab";
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
