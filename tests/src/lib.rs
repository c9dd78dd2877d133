//! Shared helpers for the uv test suites.
