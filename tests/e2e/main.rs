//! The end-to-end tests: one test binary, one module per area, the shared parts in
//! `support`. One binary links the shared code once and runs every area's tests side by side
//! (`cargo test --test e2e AREA::`, e.g. `renewal_faults::`, picks one area).

mod support;

mod busy_host;
mod ci_job;
mod clients;
mod dockerd;
mod doctor;
mod gitlab_login;
mod headless;
mod install;
mod long_push;
mod oauth_login;
mod packages;
mod protocol;
mod renewal;
mod renewal_faults;
mod renewal_races;
mod static_binary;
mod windows;
