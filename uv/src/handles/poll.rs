//! The Poll handle, generated from `spec/handles/poll.toml`.

uv_macros::handle!("spec/handles/poll.toml");
