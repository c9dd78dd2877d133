// An `internal` (or `placed`) constructor calls a crate-private part of the
// runtime, so only the `uv` crate's own spec may ask for one: in another crate it
// is an error naming the spec line. It used to be rustc's privacy error
// (`new_inner` is private) inside the generated code.
//
// The path climbs back to the workspace as in `bad_spec.rs`.
uv::handle!("../../../../tests/ui/bad_spec/internal_ctor.toml");

fn main() {}
