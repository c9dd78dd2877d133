//! The Idle handle, generated from `spec/handles/idle.toml`.

uv_macros::handle!("spec/handles/idle.toml");
