//! Files that hold state or secrets: created 0600 (directories 0700) from the first byte,
//! and replaced atomically, so no reader ever sees a torn or world-readable file.
//!
//! Every writer of the helper's own files goes through here: the state file, the `file`
//! secret store, leases, locks and the renewal journal.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Creates `dir` (and its parents) with mode 0700.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens (creating with mode 0600) a file for reading and writing.
pub fn open(path: &Path, truncate: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Writes a small sidecar file (lease, stamp) in place, mode 0600.
pub fn write(path: &Path, contents: &str) -> io::Result<()> {
    open(path, true)?.write_all(contents.as_bytes())
}

/// Replaces `path` with `contents` atomically: a 0600 temp file in the same directory,
/// fsync, rename over `path`, fsync the directory (so the rename survives a power cut).
/// Readers see the old file or the new one, never a mix.
pub fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dir(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // tempfile creates the file with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir);
    Ok(())
}

/// Best effort: not every platform can open a directory for fsync.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn replace_creates_private_files_and_dirs_and_overwrites() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("a/b/secrets.json");
        replace(&path, b"one").unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        #[cfg(unix)]
        {
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&root.path().join("a/b")), 0o700);
        }
        // No temp files are left behind.
        let names: Vec<_> = fs::read_dir(root.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secrets.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn sidecars_are_private() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("lease");
        write(&path, "x").unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}
