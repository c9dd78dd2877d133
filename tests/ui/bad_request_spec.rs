// A misspelled key in a request spec of another crate (`uv::request!`) is a
// compile error that names the file, the line and column, and the fix.
//
// The path climbs back to the workspace as in `bad_spec.rs`.
uv::request!("../../../../tests/ui/bad_spec/lookup_typo.toml");

fn main() {}
