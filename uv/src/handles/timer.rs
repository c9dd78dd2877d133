//! The Timer handle, generated from `spec/handles/timer.toml`.

uv_macros::handle!("../spec/handles/timer.toml");
