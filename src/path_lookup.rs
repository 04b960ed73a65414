//! Finding a program on `PATH` the way docker does: the first executable `name` (`name.exe`
//! on Windows) in a non-empty `PATH` entry. `doctor` asks which copy that is;
//! `configure-docker` warns when there is none.
//!
//! Not the `which` crate's `which_in`, which answers a different question: it reads an empty
//! `PATH` entry as the current directory (Go, and so docker, refuses a program found that way
//! since Go 1.19), expands `~` in entries (Go does not), and on Windows rejects a `name.exe`
//! that is not a PE binary for this machine, which the test below pins as found. So the few
//! lines here stay, rather than a dependency whose rule is not docker's.

use std::env::consts::EXE_SUFFIX;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The first runnable `name` on `path` (a `PATH` value).
pub(crate) fn find_on_path(path: &OsStr, name: &str) -> Option<PathBuf> {
    let file = format!("{name}{EXE_SUFFIX}");
    std::env::split_paths(path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(&file))
        .find(|p| is_executable(p))
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
    fn the_first_runnable_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d).unwrap();
        }
        // a/tool[.exe]: a plain file, not a program; b/tool[.exe]: a program.
        std::fs::write(a.join(format!("tool{EXE_SUFFIX}")), "").unwrap();
        let program = b.join(format!("tool{EXE_SUFFIX}"));
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = std::env::join_paths([&a, &b]).unwrap();
        #[cfg(unix)]
        assert_eq!(find_on_path(&path, "tool"), Some(program));
        #[cfg(not(unix))]
        assert_eq!(find_on_path(&path, "tool"), Some(a.join("tool.exe")));
        // `name.exe` is the program's name only on Windows.
        #[cfg(unix)]
        {
            std::fs::write(b.join("other.exe"), "").unwrap();
            assert_eq!(find_on_path(&path, "other"), None);
        }
        assert_eq!(find_on_path(OsStr::new(""), "tool"), None);
    }
}
