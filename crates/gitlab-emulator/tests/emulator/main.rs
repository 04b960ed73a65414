//! The emulator's tests, one test binary with one module per area: the REST API, faults,
//! `/jwt/auth`, start/stop and the standalone binary, OAuth, and the real registry accepting
//! the emulator's tokens. The shared HTTP helpers are in `common`.

mod common;

mod api;
mod faults;
mod jwt_auth;
mod lifecycle;
mod oauth;
mod real_registry;
