//! The Signal handle, generated from `spec/handles/signal.toml`.

uv_macros::handle!("../spec/handles/signal.toml");
