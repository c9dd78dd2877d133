// A future of a loop (`sleep`) holds a handle of it: it cannot move to an executor
// on another thread.
fn must_be_send<T: Send>(_: T) {}

fn main() {
    let lp = uv::Loop::new().unwrap();
    must_be_send(uv::future::sleep(&lp, std::time::Duration::from_millis(1)));
}
