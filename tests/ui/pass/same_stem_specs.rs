// Two spec files of one name (`beat.toml`) in two directories, expanded in one
// crate: each module gets its own spec's type. Both expansions used to be written
// to `$OUT_DIR/uv-generated/beat.rs`, the second over the first, and both
// `include!`s read the second's code (`a::IdleBeat` was not found).
//
// The paths climb back to the workspace as in `../bad_spec.rs`.
mod a {
    uv::handle!("../../../../tests/ui/pass/specs/a/beat.toml");
}

mod b {
    uv::handle!("../../../../tests/ui/pass/specs/b/beat.toml");
}

fn main() {
    let lp = uv::Loop::new().unwrap();
    let idle = a::IdleBeat::new(&lp).unwrap();
    let prepare = b::PrepareBeat::new(&lp).unwrap();
    assert_eq!(idle.handle_type(), uv::HandleType::Idle);
    assert_eq!(prepare.handle_type(), uv::HandleType::Prepare);
}
