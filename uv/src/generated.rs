//! Code generated from `spec/` by uv's build step (see `uv-codegen expand` to read it).
#![allow(missing_docs, clippy::unnecessary_cast)]

include!(concat!(env!("OUT_DIR"), "/status_codes.rs"));
include!(concat!(env!("OUT_DIR"), "/errors.rs"));
include!(concat!(env!("OUT_DIR"), "/enums.rs"));
