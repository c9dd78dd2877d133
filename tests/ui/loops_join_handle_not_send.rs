// A `JoinHandle` shares its task's state with the loop's thread (not atomically):
// it cannot be awaited, polled or dropped on another thread.
fn must_be_send<T: Send>(_: T) {}

fn main() {
    let lp = uv::Loop::new().unwrap();
    let join = lp.spawn_local(async { 1 }).unwrap();
    must_be_send(join);
}
