// An enum or flag argument reaches its C parameter through `TryFrom`, which only
// integer types implement: a spec that passes one where the C function takes a
// pointer (`uv_tcp_bind`'s address) no longer compiles. It used to compile, as the
// value was converted with `as _`, and `bind_to(PollEvent::READABLE, 0)` made
// libuv read a `sockaddr` at address 0x1 (a segfault, from safe code).
//
// The path climbs back to the workspace as in `bad_spec.rs`.
uv::handle!("../../../../tests/ui/bad_spec/enum_to_pointer.toml");

fn main() {}
