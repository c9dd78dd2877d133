//! Compile-fail tests: what the type system forbids (threads, non-'static
//! callbacks) and what a broken spec file reports, pinned in `ui/*.stderr`.
//! Regenerate the pinned output with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
    t.pass("ui/pass/*.rs");
}
