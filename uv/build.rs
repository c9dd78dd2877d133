//! Runs the generator: loads `spec/`, cross-checks it against the libuv headers
//! libuv-sys2 builds with, and writes status codes, errors and enums to OUT_DIR.
//! A spec problem or a header drift fails the build with file:line:col and a hint.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    // `uv/spec` links to the workspace's spec/ directory; in a published package it
    // is a copy of it.
    let spec_dir = manifest.join("spec");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", spec_dir.display());
    println!("cargo:rerun-if-env-changed=UV_INCLUDE_DIR");
    let include = std::env::var_os("UV_INCLUDE_DIR")
        .map(PathBuf::from)
        .or_else(uv_codegen::headers::default_include_dir);
    let Some(include) = include else {
        eprintln!("error: cannot find the libuv headers of libuv-sys2 (hint: set UV_INCLUDE_DIR to its libuv/include)");
        std::process::exit(1);
    };
    match uv_codegen::build_script(&spec_dir, Path::new("spec"), &include, &out_dir) {
        Ok(out) => {
            for f in &out.files {
                println!("cargo:rerun-if-changed={}", f.display());
            }
            for n in &out.notes {
                println!("cargo:warning={n}");
            }
            let t = out.timings;
            let timing = format!(
                "spec {:.3}s, headers {:.3}s, check {:.3}s, emit {:.3}s\n",
                t.spec, t.headers, t.check, t.emit
            );
            let _ = std::fs::write(out_dir.join("generator-timing.txt"), timing);
        }
        Err(e) => {
            // Printed as-is so each problem shows as `spec/file.toml:LINE:COL: error: ...`.
            eprintln!("{e}");
            for line in e.lines() {
                println!("cargo:warning={line}");
            }
            std::process::exit(1);
        }
    }
}
