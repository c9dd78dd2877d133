//! The Check handle, generated from `spec/handles/check.toml` (with the constructor
//! of the library's own check handles, `new_internal`: the async executor's).

uv_macros::handle!("spec/handles/check.toml");
