//! Check 1, once for all registries: the `docker-credential-gitlab` that docker finds on
//! `PATH` is this very binary. docker runs whatever comes first on `PATH`, so a missing copy
//! means no helper at all and another copy (an old install, a package) means every other
//! check here may be about the wrong program.

use std::path::Path;

use super::Finding;
use crate::BINARY_NAME;
use crate::env::{self, Env};
use crate::path_lookup::find_on_path;

pub(super) fn binary_finding(env: &Env) -> Finding {
    let me = std::env::current_exe().ok();
    let hit = env
        .os(env::PATH)
        .and_then(|path| find_on_path(path, BINARY_NAME));
    binary_check(me.as_deref(), hit.as_deref())
}

fn binary_check(me: Option<&Path>, hit: Option<&Path>) -> Finding {
    const CHECK: &str = "binary";
    let Some(hit) = hit else {
        let dir = me
            .and_then(Path::parent)
            .map(|d| format!(" (this one is in {})", d.display()))
            .unwrap_or_default();
        return Finding::fail(
            CHECK,
            format!("{BINARY_NAME} is not on PATH{dir}: docker cannot run the helper"),
        )
        .fix("install it into a directory on PATH (./install.sh uses ~/.local/bin) or add its directory to PATH");
    };
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    match me {
        Some(me) if canon(me) == canon(hit) => {
            Finding::pass(CHECK, format!("{} on PATH is this binary", hit.display()))
        }
        Some(me) => Finding::warn(
            CHECK,
            format!(
                "docker runs {}, a different copy from this one ({})",
                hit.display(),
                me.display()
            ),
        )
        .fix("remove the other copy or put this one's directory first on PATH"),
        None => Finding::warn(
            CHECK,
            format!(
                "docker runs {}; cannot tell whether it is this binary",
                hit.display()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::doctor::Status;

    #[test]
    fn binary_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = format!("{BINARY_NAME}{}", std::env::consts::EXE_SUFFIX);
        let me = dir.path().join("a").join(&file);
        let other = dir.path().join("b").join(&file);
        for p in [&me, &other] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        let path = std::env::join_paths([dir.path().join("a"), dir.path().join("b")]).unwrap();
        let hit = find_on_path(&path, BINARY_NAME).unwrap();
        assert_eq!(binary_check(Some(&me), Some(&hit)).status, Status::Pass);
        assert_eq!(binary_check(Some(&other), Some(&hit)).status, Status::Warn);
        assert_eq!(binary_check(Some(&me), None).status, Status::Fail);
    }
}
