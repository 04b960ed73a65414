//! podman's and buildah's world inside a test session: vfs storage, containers.conf,
//! storage.conf and registries.conf in the session's directory (nothing of the machine's
//! `/var/lib/containers`, no daemon, no cgroups), and a way to put an image into that storage.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::{Session, assert_success, have_tool, oci_ref, skopeo_copy, write_oci_image};

pub struct Containers {
    root: PathBuf,
}

impl Containers {
    /// Sets `s` up so podman, buildah and skopeo use private storage and treat `registry`
    /// (plain HTTP) as insecure. `None` (skip) when a tool is missing outside CI.
    pub fn new(s: &mut Session, registry: &str) -> Option<Containers> {
        if !(have_tool("podman") && have_tool("buildah") && have_tool("skopeo")) {
            return None;
        }
        let root = s.dir.path().join("containers");
        for sub in ["conf", "storage", "runroot", "run", "tmp"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let r = root.display();
        // runc is what Debian has (podman's default, crun, is not installed); the file event
        // log and cgroupfs need no systemd; tmp and network dirs stay inside the session.
        std::fs::write(
            root.join("conf/containers.conf"),
            format!(
                "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 events_logfile_path = \"{r}/run/events.log\"\nruntime = \"runc\"\n\
                 tmp_dir = \"{r}/run/libpod\"\nstatic_dir = \"{r}/storage/libpod\"\n\
                 volume_path = \"{r}/storage/volumes\"\nimage_copy_tmp_dir = \"{r}/tmp\"\n\
                 [network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{r}/run/cni\"\n"
            ),
        )
        .unwrap();
        std::fs::write(
            root.join("conf/storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{r}/storage\"\nrunroot = \"{r}/runroot\"\n"
            ),
        )
        .unwrap();
        std::fs::write(
            root.join("conf/registries.conf"),
            format!(
                "unqualified-search-registries = []\n[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n"
            ),
        )
        .unwrap();
        for (key, file) in [
            ("CONTAINERS_CONF", "conf/containers.conf"),
            ("CONTAINERS_STORAGE_CONF", "conf/storage.conf"),
            ("CONTAINERS_REGISTRIES_CONF", "conf/registries.conf"),
            ("TMPDIR", "tmp"),
        ] {
            s.extra_env
                .push((key.into(), root.join(file).display().to_string()));
        }
        Some(Containers { root })
    }

    /// Puts a small one-layer image into the storage as `name` (e.g. `localhost/hello:v1`).
    /// (`podman pull oci:DIR` would name it after DIR, which must then be lowercase.)
    pub fn seed_image(&self, s: &Session, name: &str) {
        let layout = write_oci_image(&self.root, 32 * 1024);
        let out = skopeo_copy(
            s,
            &oci_ref(&layout),
            &format!("containers-storage:{name}"),
            &["--quiet"],
        );
        assert_success(&out, "skopeo copy into containers-storage");
    }

    pub fn podman(&self, s: &Session, args: &[&str], stdin: &str) -> Output {
        s.run(Command::new("podman").args(args), stdin)
    }

    pub fn buildah(&self, s: &Session, args: &[&str]) -> Output {
        s.run(Command::new("buildah").args(args), "")
    }
}
