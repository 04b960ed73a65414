//! Files that hold state or secrets: created 0600 (directories 0700) from the first byte,
//! and replaced atomically, so no reader ever sees a torn or world-readable file.
//!
//! Every writer of the helper's own files goes through here: the state file, the `file`
//! secret store, leases, locks and the renewal journal. Docker's `config.json` (a file the
//! user owns) is replaced by the same code, with [`Replace::KeepingMode`].
//!
//! A leaf module: it imports nothing from this crate.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Limit for following a chain of symlinks (same as Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

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

/// How [`replace_as`] treats the file it replaces. Both create a missing directory 0700 and
/// a missing file 0600.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// The helper's own files: always 0600, whatever the old file's mode was; a symlink at
    /// the path is replaced by the new file, not followed.
    Private,
    /// A file the user owns (docker's `config.json`), as docker/cli's `ConfigFile.Save` does
    /// it: a chain of symlinks is followed to the real file, so the link stays a link (a
    /// dangling link gets its target created), and the new file keeps the old one's mode and,
    /// best effort, its owner.
    KeepingMode,
}

/// Why [`replace_as`] failed: what it was doing, to which path, and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct ReplaceError {
    /// What was being done, e.g. `"write"`, `"replace"`, `"create directory"`.
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn failed(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ReplaceError {
    let path = path.to_path_buf();
    move |source| ReplaceError {
        action,
        path,
        source,
    }
}

/// Replaces `path` with `contents` atomically: a 0600 temp file in the same directory,
/// fsync, rename over `path`, fsync the directory (so the rename survives a power cut).
/// Readers see the old file or the new one, never a mix.
pub fn replace(path: &Path, contents: &[u8]) -> io::Result<()> {
    replace_as(path, contents, Replace::Private).map_err(|e| e.source)
}

/// [`replace`], with the file's treatment chosen by `how`. On failure the temp file is
/// removed and the old file is left byte-identical.
pub fn replace_as(path: &Path, contents: &[u8], how: Replace) -> Result<(), ReplaceError> {
    let target = match how {
        Replace::Private => path.to_path_buf(),
        Replace::KeepingMode => resolve_symlinks(path)?,
    };
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let existing = match how {
        Replace::Private => None,
        Replace::KeepingMode => match fs::metadata(&target) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(failed("inspect", &target)(e)),
        },
    };
    if existing.is_none() {
        create_dir(&dir).map_err(failed("create directory", &dir))?;
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // tempfile creates the file with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(failed("create a temporary file in", &dir))?;
    if let Some(meta) = &existing {
        copy_permissions(tmp.as_file(), meta).map_err(failed("set permissions on", tmp.path()))?;
    }
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(failed("write", tmp.path()))?;
    // On failure the temp file is deleted when the returned handle drops.
    tmp.persist(&target)
        .map_err(|e| failed("replace", &target)(e.error))?;
    sync_dir(&dir);
    Ok(())
}

/// Follows a chain of symlinks to the file that should be replaced, so the link itself stays
/// a link. A dangling link resolves to its (missing) target, which then gets created.
fn resolve_symlinks(path: &Path) -> Result<PathBuf, ReplaceError> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&current).map_err(failed("read symlink", &current))?;
                // `join` with an absolute target yields the target itself.
                current = match current.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(failed("inspect", &current)(e)),
        }
    }
    Err(failed("resolve", path)(io::Error::other(
        "too many levels of symbolic links",
    )))
}

/// Gives the temp file the replaced file's mode (0600 if that is not a regular file) and,
/// best effort, its owner.
#[cfg(unix)]
fn copy_permissions(tmp: &File, existing: &fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let mode = if existing.is_file() {
        existing.mode() & 0o777
    } else {
        0o600
    };
    tmp.set_permissions(fs::Permissions::from_mode(mode))?;
    let mine = tmp.metadata()?;
    if (mine.uid(), mine.gid()) != (existing.uid(), existing.gid()) {
        // Keep e.g. a user's file owned by the user under `sudo`; like docker, this is
        // best effort: without the privilege the file becomes ours.
        let _ = std::os::unix::fs::fchown(tmp, Some(existing.uid()), Some(existing.gid()));
    }
    Ok(())
}

#[cfg(not(unix))]
fn copy_permissions(_tmp: &File, _existing: &fs::Metadata) -> io::Result<()> {
    // New files inherit the directory's ACL, which is what docker does on Windows too.
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

    #[cfg(unix)]
    fn set_mode(p: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn names(dir: &Path) -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
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
        assert_eq!(names(&root.path().join("a/b")), ["secrets.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn sidecars_are_private() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("lease");
        write(&path, "x").unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    /// The two treatments differ exactly where they should: the helper's own file ends up
    /// 0600 and replaces a link at its path; the user's file keeps its mode and its link.
    #[cfg(unix)]
    #[test]
    fn private_and_keeping_mode_differ_on_mode_and_links() {
        for how in [Replace::Private, Replace::KeepingMode] {
            let root = tempfile::tempdir().unwrap();
            let real = root.path().join("real.json");
            fs::write(&real, "old").unwrap();
            set_mode(&real, 0o644);
            let link = root.path().join("dir/link.json");
            fs::create_dir(root.path().join("dir")).unwrap();
            std::os::unix::fs::symlink("../real.json", &link).unwrap();

            replace_as(&link, b"new", how).unwrap();

            assert_eq!(fs::read(&link).unwrap(), b"new", "{how:?}");
            let is_link = fs::symlink_metadata(&link).unwrap().is_symlink();
            match how {
                Replace::Private => {
                    assert!(!is_link);
                    assert_eq!(mode(&link), 0o600);
                    assert_eq!(fs::read(&real).unwrap(), b"old");
                }
                Replace::KeepingMode => {
                    assert!(is_link);
                    assert_eq!(mode(&real), 0o644);
                    assert_eq!(fs::read(&real).unwrap(), b"new");
                }
            }
            assert_eq!(names(root.path()), ["dir", "real.json"], "{how:?}");
            assert_eq!(names(&root.path().join("dir")), ["link.json"], "{how:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn keeping_mode_creates_a_new_file_private() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("new/config.json");
        replace_as(&path, b"{}", Replace::KeepingMode).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_is_an_error_and_writes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let err = replace_as(&a, b"x", Replace::KeepingMode).unwrap_err();
        assert_eq!(err.action, "resolve");
        assert!(err.to_string().contains("symbolic links"), "{err}");
        assert_eq!(names(root.path()), ["a", "b"]);
    }
}
