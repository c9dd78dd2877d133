//! Tells the CLI and uv's build script where the libuv headers that libuv-sys2 builds
//! with are. libuv-sys2 reports them (`DEP_UV_INCLUDE`) relative to its own source
//! directory, so that directory is found in cargo's registry (or a vendor folder), at
//! the version Cargo.lock pins.
use std::path::{Path, PathBuf};

fn locked_version(lock: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lock).ok()?;
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"libuv-sys2\"" {
            let v = lines.next()?.trim();
            return v
                .strip_prefix("version = \"")?
                .strip_suffix('"')
                .map(str::to_string);
        }
    }
    None
}

fn find(rel: &Path) -> Option<PathBuf> {
    if rel.is_absolute() {
        return Some(rel.to_path_buf());
    }
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let workspace = manifest.parent()?.to_path_buf();
    let version = locked_version(&workspace.join("Cargo.lock"));
    let mut roots = Vec::new();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    if let Ok(rd) = std::fs::read_dir(cargo_home.join("registry").join("src")) {
        roots.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
    }
    roots.push(workspace.join("vendor"));
    let mut found: Vec<PathBuf> = Vec::new();
    for root in roots {
        let Ok(rd) = std::fs::read_dir(&root) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().to_string();
            let matches = match &version {
                Some(v) => name == format!("libuv-sys2-{v}") || name == "libuv-sys2",
                None => name.starts_with("libuv-sys2"),
            };
            if matches && e.path().join(rel).join("uv.h").is_file() {
                found.push(e.path().join(rel));
            }
        }
    }
    found.sort();
    found.pop()
}

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_UV_INCLUDE");
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(dir) = std::env::var_os("DEP_UV_INCLUDE").and_then(|d| find(Path::new(&d))) {
        println!(
            "cargo:rustc-env=UV_CODEGEN_DEFAULT_INCLUDE={}",
            dir.display()
        );
    }
}
