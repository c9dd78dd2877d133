//! File-system requests, generated from `spec/requests/fs.toml`.

uv_macros::request!("spec/requests/fs.toml");
