//! What the end-to-end tests (`tests/e2e`) need to know of the binary's own layout, so that
//! they never reach into the library's modules. Not part of any API: hidden from the docs,
//! and changed with the layout it describes.

use std::path::{Path, PathBuf};

use crate::leases;
use crate::registry::RegistryHost;

/// Where the binary keeps the hand-out record ("lease") of `registry` under the data
/// directory `data_dir`. `registry` is any server string a client may send (`host:port`,
/// a URL); panics when it names no registry host.
pub fn lease_record_path(data_dir: &Path, registry: &str) -> PathBuf {
    let host = RegistryHost::parse(registry)
        .unwrap_or_else(|_| panic!("{registry:?} is not a registry host"));
    leases::record_path(data_dir, &host)
}
