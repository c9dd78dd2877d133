//! The Idle handle, generated from `spec/handles/idle.toml` (with the constructor
//! of the library's own idle handles, `new_internal`: the async executor's).

uv_macros::handle!("spec/handles/idle.toml");
