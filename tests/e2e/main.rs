//! The end-to-end tests: one test binary, one module per area, the shared parts in
//! `support`. One binary links the shared code once and runs every area's tests side by side
//! (`cargo test --test e2e AREA::`, e.g. `renewal_faults::`, picks one area).
//!
//! Tests of different areas now run at the same time, so nothing here may rely on running
//! alone. No test changes the process's environment or working directory (each command
//! gets its environment from `support::Session::env`), every part has its own temporary
//! directory and a free port, and each wine prefix its own wineserver. What the machine
//! shares: the private dockerd, one at a time (`support::dockerd`'s lock, which
//! `dockerd::` and `long_push::` wait on), and `/usr/bin/docker-credential-gitlab`, which
//! `packages::` installs for a moment; every test that lets a client find the helper puts
//! this build's directory first on `PATH`, so that copy is never the one run.

mod support;

mod arm64;
mod busy_host;
mod ci_job;
mod clients;
mod clock_skew;
mod dockerd;
mod doctor;
mod fleet;
mod fleet_clock;
mod fleet_faults;
mod fleet_oauth;
mod gitlab_login;
mod headless;
mod install;
mod long_push;
mod oauth_login;
mod openbao;
mod packages;
mod protocol;
mod renewal;
mod renewal_faults;
mod renewal_races;
mod revoked_elsewhere;
mod static_binary;
mod windows;
