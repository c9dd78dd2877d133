// A job queued with `CallLater::call` may be queued on any thread and runs on the
// loop's: it cannot capture an `Rc` (or a handle) of the sending thread.
fn main() {
    let lp = uv::Loop::new().unwrap();
    let later = lp.call_later_sender().unwrap();
    let shared = std::rc::Rc::new(1);
    let _ = later.call(move || drop(shared));
}
