// Making a handle through the runtime takes the libuv init function on trust: safe
// code cannot call it (an `init` that initialises nothing would leave libuv a
// garbage handle).
fn main() {
    let lp = uv::Loop::new().unwrap();
    let _ = uv::runtime::Typed::<uv::Timer>::new(&lp, Default::default(), "x", |_, _| 0);
}
