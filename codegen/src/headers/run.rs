//! Running bindgen over the libuv headers.

use std::path::{Path, PathBuf};

/// The include directory of the libuv that `libuv-sys2` vendors, as seen when this
/// crate was built.
pub fn default_include_dir() -> Option<PathBuf> {
    option_env!("UV_CODEGEN_DEFAULT_INCLUDE").map(PathBuf::from)
}

/// bindgen output for `include/uv.h`, with the settings and renames `libuv-sys2` uses,
/// so that constant names match what `libuv-sys2` exports.
pub fn bindgen_output(include: &Path) -> Result<String, String> {
    let header = include.join("uv.h");
    if !header.is_file() {
        return Err(format!(
            "{}: no uv.h there (hint: pass the libuv include directory with --include DIR)",
            include.display()
        ));
    }
    let bindings = bindgen::Builder::default()
        .use_core()
        .header(header.to_string_lossy())
        .clang_arg(format!("-I{}", include.display()))
        .allowlist_item("uv_.+")
        .allowlist_item("UV_.+")
        .allowlist_item("AF_.+")
        .allowlist_item("AI_.+")
        .allowlist_item("IPPROTO_.+")
        .allowlist_item("NI_.+")
        .allowlist_item("SIG.+")
        .allowlist_item("SOCK_.+")
        .allowlist_item("__socket_type.*")
        .allowlist_item("IPPROTO")
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .map_err(|e| {
            // A header clang could not read is not a missing libclang.
            let hint = match e {
                bindgen::BindgenError::ClangDiagnostic(_) => {
                    "the headers do not compile: is this libuv's include directory?"
                }
                _ => "bindgen needs libclang; on Debian `apt-get install libclang-dev`",
            };
            format!("{}: bindgen failed: {e} (hint: {hint})", header.display())
        })?;
    Ok(bindings
        .to_string()
        .replace("__socket_type_", "")
        .replace("IPPROTO_IPPROTO_", "IPPROTO_"))
}

impl super::HeaderModel {
    /// The model of the headers in `include`: bindgen's view of `uv.h`, plus the
    /// X-macro lists read from its text.
    pub fn read(include: &Path) -> Result<super::HeaderModel, String> {
        let text = bindgen_output(include)?;
        let mut model =
            super::HeaderModel::parse(&text).map_err(|e| format!("reading bindgen output: {e}"))?;
        let header = std::fs::read_to_string(include.join("uv.h"))
            .map_err(|e| format!("{}: {e}", include.join("uv.h").display()))?;
        for (map, entries) in super::parse_map_entries(&header) {
            let mut names = Vec::new();
            for (c, lower) in entries {
                if let Some(l) = lower {
                    model.map_names.insert(c.clone(), l);
                }
                names.push(c);
            }
            model.maps.insert(map, names);
        }
        let (declared, line) = match super::parse_handle_union(&header) {
            Some((d, l)) => (Some(d), l),
            None => (None, 1),
        };
        let src = include.join("..").join("src");
        model.handle_union = Some(super::HandleUnion {
            header: include.join("uv.h"),
            declared,
            line,
            uses: src
                .join("uv-common.c")
                .is_file()
                .then(|| handle_union_uses(&[src.as_path(), include])),
        });
        Ok(model)
    }
}

/// Lines of libuv's C sources and headers under `roots` that may reach a handle's `u`
/// union beyond its `fd` (see `reaches_handle_union`), in path order.
fn handle_union_uses(roots: &[&Path]) -> Vec<(PathBuf, usize, String)> {
    let mut files = Vec::new();
    let mut dirs: Vec<PathBuf> = roots.iter().map(|r| r.to_path_buf()).collect();
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "c" || x == "h") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut uses = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            if super::reaches_handle_union(line) {
                uses.push((f.clone(), i + 1, line.trim().to_string()));
            }
        }
    }
    uses
}
