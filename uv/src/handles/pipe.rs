//! The pipe handle, generated from `spec/handles/pipe.toml`.

uv_macros::handle!("../spec/handles/pipe.toml");
