//! Empty: this package only exists so that cargo fetches libuv-sys2 1.48.0 (see Cargo.toml).
