//! The file-system event handle, generated from `spec/handles/fs_event.toml`.

uv_macros::handle!("spec/handles/fs_event.toml");
