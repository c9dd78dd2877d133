//! The file-system poll handle, generated from `spec/handles/fs_poll.toml`.

uv_macros::handle!("spec/handles/fs_poll.toml");
