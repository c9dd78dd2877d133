//! Request types whose functions take the loop, each generated from its file in
//! `spec/requests/` by `uv_macros::request!`.

mod fs;

pub use fs::Fs;
