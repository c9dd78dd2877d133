// A `LoopHandle` refers to a loop of this thread: it cannot be moved to another one.
fn main() {
    let lp = uv::Loop::new().unwrap();
    let handle = lp.handle();
    std::thread::spawn(move || {
        drop(handle);
    });
}
