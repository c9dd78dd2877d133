//! The Check handle, generated from `spec/handles/check.toml`.

uv_macros::handle!("spec/handles/check.toml");
