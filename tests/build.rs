//! Writes the API fuzzer's table (`tests/src/fuzz.rs` includes it) from the spec, so
//! that every handle type in `spec/handles/` is fuzzed without fuzzer code of its own.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let spec_dir = manifest.join("../spec");
    println!("cargo:rerun-if-changed={}", spec_dir.display());
    let (spec, files) = uv_codegen::load_spec(&spec_dir, Path::new("spec"))
        .unwrap_or_else(|d| panic!("the spec does not load:\n{d}"));
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let model =
        uv_codegen::resolve(&spec).unwrap_or_else(|d| panic!("the spec does not resolve:\n{d}"));
    let tokens = uv_codegen::emit::fuzz_table(&model, &uv_codegen::Ctx::default());
    let text = uv_codegen::emit::render(tokens, "spec/handles/*.toml (the fuzzer's table)")
        .unwrap_or_else(|e| panic!("the fuzzer's table does not parse: {e}"));
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("fuzz_table.rs");
    // Rewrite only on change, so that the test crate is not rebuilt for nothing.
    if std::fs::read_to_string(&out).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&out, text).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    }
}
