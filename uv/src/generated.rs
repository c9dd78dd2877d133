//! Code generated from `spec/` by uv's build step (see `uv-codegen expand` to read it).
// `unnecessary_cast`: a flag set's members are the headers' constants cast to its
// bits' type (`u32`), which bindgen gives a `#define` already.
#![allow(missing_docs, clippy::unnecessary_cast)]

include!(concat!(env!("OUT_DIR"), "/status_codes.rs"));
include!(concat!(env!("OUT_DIR"), "/errors.rs"));
include!(concat!(env!("OUT_DIR"), "/enums.rs"));
