//! The Prepare handle, generated from `spec/handles/prepare.toml`.

uv_macros::handle!("spec/handles/prepare.toml");
