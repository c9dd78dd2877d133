//! Shared helpers for the uv test suites.
#[cfg(unix)]
pub mod fs;
#[cfg(unix)]
pub mod fuzz;
#[cfg(unix)]
pub mod net;
