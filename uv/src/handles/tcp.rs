//! The TCP handle, generated from `spec/handles/tcp.toml`.

uv_macros::handle!("../spec/handles/tcp.toml");
