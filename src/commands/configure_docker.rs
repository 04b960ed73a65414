//! `configure-docker [REGISTRY…] [--dry-run] [--force] [--podman]`: point Docker's
//! `credHelpers` (or, with `--podman`, podman's/buildah's/skopeo's containers-auth.json) at
//! this helper, safely (see `crate::docker`).

use anyhow::{Context, bail};

use crate::docker;
use crate::env::{self, Env};
use crate::path_lookup::find_on_path;
use crate::records::Records;
use crate::registry::RegistryHost;

pub(crate) fn run(
    env: &Env,
    registries: &[String],
    dry_run: bool,
    force: bool,
    podman: bool,
) -> anyhow::Result<()> {
    let mut hosts = Vec::new();
    for r in registries {
        let host = RegistryHost::parse(r)?;
        if host.is_docker_hub() {
            bail!("{r} is Docker Hub, not a GitLab registry");
        }
        hosts.push(host.as_str().to_owned());
    }
    if hosts.is_empty() {
        // Default: every registry we hold credentials for, else GitLab.com.
        hosts = Records::locate(env)?
            .snapshot()?
            .entries
            .into_keys()
            .filter(|k| RegistryHost::standby_of(k).is_none())
            .collect();
        if hosts.is_empty() {
            hosts.push(crate::gitlab::GITLAB_COM_REGISTRY.to_owned());
        }
    }
    let (path, plan) = if podman {
        let path = docker::containers_auth_path(env)
            .context("cannot find podman's auth file: set REGISTRY_AUTH_FILE")?;
        // podman does not read docker's DOCKER_AUTH_CONFIG.
        let plan =
            docker::configure_with(&path, &hosts, crate::HELPER_SUFFIX, force, dry_run, None)?;
        (path, plan)
    } else {
        let path = docker::default_path(env)
            .context("cannot find Docker's config directory: set DOCKER_CONFIG or HOME")?;
        let inline = docker::docker_auth_config(env);
        let plan = docker::configure_with(
            &path,
            &hosts,
            crate::HELPER_SUFFIX,
            force,
            dry_run,
            inline.as_deref(),
        )?;
        (path, plan)
    };
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    let verb = if dry_run { "would add" } else { "added" };
    for h in &plan.added {
        println!("{verb} credHelpers[{h:?}] = \"gitlab\"");
    }
    for (h, old) in &plan.replaced {
        println!(
            "{} credHelpers[{h:?}] = \"gitlab\" (was {old:?})",
            if dry_run { "would set" } else { "set" }
        );
    }
    for h in &plan.unchanged {
        println!("credHelpers[{h:?}] already uses this helper");
    }
    if dry_run && plan.changed {
        println!(
            "--- {} would become:\n{}",
            path.display(),
            plan.new_contents
        );
    } else if plan.changed {
        println!("Updated {}.", path.display());
    }
    let on_path = env
        .os(env::PATH)
        .is_some_and(|path| find_on_path(path, crate::BINARY_NAME).is_some());
    if !on_path {
        eprintln!(
            "warning: {} is not on PATH, so Docker cannot run it; add its directory to PATH",
            crate::BINARY_NAME
        );
    }
    Ok(())
}
