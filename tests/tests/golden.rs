//! Generator fixture tests: each folder of `tests/fixtures/codegen/` holds an
//! `input.toml` and either `expected.rs` (the generated code) or `expected.err` (the
//! diagnostics). A mismatch prints a diff; `UV_BLESS=1 cargo test --test golden`
//! rewrites the expected files.

use std::path::Path;

fn diff(expected: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .header("expected", "actual")
        .to_string()
}

#[test]
fn codegen_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("codegen");
    let bless = std::env::var_os("UV_BLESS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 8,
        "fixtures missing under {}",
        root.display()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let input = std::fs::read_to_string(case.join("input.toml")).unwrap();
        let display = Path::new(&name).join("input.toml");
        let (file, actual) =
            match uv_codegen::expand_spec_file(&display, &input, &uv_codegen::Ctx::default()) {
                Ok(code) => ("expected.rs", code),
                Err(d) => ("expected.err", format!("{d}\n")),
            };
        let path = case.join(file);
        if bless {
            for stale in ["expected.rs", "expected.err"] {
                let _ = std::fs::remove_file(case.join(stale));
            }
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!("{name}:\n{}", diff(&expected, &actual))),
            Err(_) => failures.push(format!(
                "{name}: produced {file}, which the fixture does not expect:\n{actual}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ (UV_BLESS=1 rewrites them):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
