// `returns = "void"` is checked by rustc in a spec of another crate (which has no
// header check): the generated call is `let () = ...`, so a C function that
// returns a status does not compile with it. It used to compile and drop the
// status: `connect_to(name, 2, cb)` answered `Ok(())` while `uv_pipe_connect2` had
// refused the flags (UV_EINVAL) without taking the request, whose callback then
// never ran (the handle held and the request counted forever, a future of it
// pending for good).
//
// The path climbs back to the workspace as in `bad_spec.rs`.
uv::handle!("../../../../tests/ui/bad_spec/void_request.toml");

fn main() {}
