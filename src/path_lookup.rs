//! Finding a program on `PATH`: `doctor` asks which copy of the helper docker will run,
//! `configure-docker` whether there is one at all. One walk over `PATH` serves both, each
//! with the rule it has always had ([`Wanted`]): docker runs the first executable
//! `docker-credential-gitlab` (`.exe` on Windows) in a `PATH` directory, while
//! `configure-docker`'s warning is the looser "is any such file on `PATH`".

use std::env::consts::EXE_SUFFIX;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// What counts as finding the program in a `PATH` directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// What docker would run: an executable `name` (`name.exe` on Windows) in a non-empty
    /// `PATH` entry.
    Runnable,
    /// Any file `name` or `name.exe`, executable or not, in any `PATH` entry (an empty one
    /// is the current directory).
    Present,
}

/// The first `name` on `path` (a `PATH` value) that counts as `wanted`.
pub(crate) fn find_on_path(path: &OsStr, name: &str, wanted: Wanted) -> Option<PathBuf> {
    let dirs = std::env::split_paths(path);
    match wanted {
        Wanted::Runnable => {
            let file = format!("{name}{EXE_SUFFIX}");
            dirs.filter(|d| !d.as_os_str().is_empty())
                .map(|d| d.join(&file))
                .find(|p| is_executable(p))
        }
        Wanted::Present => dirs.map(|d| d.join(name)).find_map(|candidate| {
            let exe = candidate.with_extension("exe");
            if candidate.is_file() {
                Some(candidate)
            } else {
                exe.is_file().then_some(exe)
            }
        }),
    }
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runnable_and_present() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d).unwrap();
        }
        // a/tool: a plain file; b/tool[.exe]: a program.
        std::fs::write(a.join("tool"), "").unwrap();
        let program = b.join(format!("tool{EXE_SUFFIX}"));
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(find_on_path(&path, "tool", Wanted::Runnable), Some(program));
        assert_eq!(
            find_on_path(&path, "tool", Wanted::Present),
            Some(a.join("tool"))
        );
        // `name.exe` is present on every platform, runnable only where it is the name.
        std::fs::write(a.join("other.exe"), "").unwrap();
        assert_eq!(
            find_on_path(&path, "other", Wanted::Present),
            Some(a.join("other.exe"))
        );
        #[cfg(unix)]
        assert_eq!(find_on_path(&path, "other", Wanted::Runnable), None);
        assert_eq!(find_on_path(OsStr::new(""), "tool", Wanted::Runnable), None);
    }
}
