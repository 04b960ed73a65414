//! What the end-to-end tests need from inside the crate, and nothing else: the lib's modules
//! are private so the compiler reports dead code.

use std::path::{Path, PathBuf};

/// Where the helper records hand-outs of `registry` in the data directory `data_dir`.
pub fn lease_record_path(data_dir: &Path, registry: &str) -> PathBuf {
    let host = crate::registry::RegistryHost::parse(registry).expect("a valid registry");
    crate::datadir::DataDir::at(data_dir).lease(&host)
}
