//! `configure-docker [REGISTRY…] [--dry-run] [--force] [--podman]`: point Docker's
//! `credHelpers` (or, with `--podman`, podman's/buildah's/skopeo's containers-auth.json) at
//! this helper, safely (see `crate::docker`).

use std::path::{Path, PathBuf};

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
    let hosts = hosts_to_configure(env, registries)?;
    let (path, auth_env) = file_to_configure(env, podman)?;
    configure_and_print(&path, &hosts, force, dry_run, auth_env.as_deref())?;
    warn_unless_on_path(env);
    Ok(())
}

/// Docker's config.json (with `DOCKER_AUTH_CONFIG`, which the plan warns about), or with
/// `--podman` the containers-auth.json that podman, buildah and skopeo read.
fn file_to_configure(env: &Env, podman: bool) -> anyhow::Result<(PathBuf, Option<String>)> {
    if podman {
        let path = docker::containers_auth_path(env)
            .context("cannot find podman's auth file: set REGISTRY_AUTH_FILE")?;
        // podman does not read docker's DOCKER_AUTH_CONFIG.
        Ok((path, None))
    } else {
        let path = docker::default_path(env)
            .context("cannot find Docker's config directory: set DOCKER_CONFIG or HOME")?;
        Ok((path, docker::docker_auth_config(env)))
    }
}

/// The registries named on the command line; by default every registry we hold
/// credentials for (standby keys aside), else GitLab.com.
fn hosts_to_configure(env: &Env, registries: &[String]) -> anyhow::Result<Vec<String>> {
    let mut hosts = Vec::new();
    for r in registries {
        let host = RegistryHost::parse(r)?;
        if host.is_docker_hub() {
            bail!("{r} is Docker Hub, not a GitLab registry");
        }
        hosts.push(host.as_str().to_owned());
    }
    if hosts.is_empty() {
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
    Ok(hosts)
}

/// Adds the `credHelpers` entries (unless `dry_run`) and says what changed, or would.
fn configure_and_print(
    path: &Path,
    hosts: &[String],
    force: bool,
    dry_run: bool,
    auth_env: Option<&str>,
) -> anyhow::Result<()> {
    let plan = docker::configure_with(path, hosts, crate::HELPER_SUFFIX, force, dry_run, auth_env)?;
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
    Ok(())
}

/// Docker finds the helper through PATH only.
fn warn_unless_on_path(env: &Env) {
    let on_path = env
        .os(env::PATH)
        .is_some_and(|path| find_on_path(path, crate::BINARY_NAME).is_some());
    if !on_path {
        eprintln!(
            "warning: {} is not on PATH, so Docker cannot run it; add its directory to PATH",
            crate::BINARY_NAME
        );
    }
}
