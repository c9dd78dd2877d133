// A misspelled key in a spec file is a compile error that names the file, the
// line and column, and the fix.
//
// The path is relative to CARGO_MANIFEST_DIR of the crate being compiled, and
// trybuild compiles this file in a generated crate at
// `<target dir>/tests/trybuild/uv-tests/`, not in `tests/`. So the path climbs
// from there back to the workspace (`target/tests/trybuild/uv-tests` is four
// levels deep). That holds with the default target directory; with
// CARGO_TARGET_DIR elsewhere the file is not found and the pinned output differs.
// An absolute path would work from anywhere but depend on the checkout location.
uv::handle!("../../../../tests/ui/bad_spec/timer_typo.toml");

fn main() {}
