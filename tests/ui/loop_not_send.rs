// A `Loop` belongs to the thread that made it: it cannot be moved to another one.
fn main() {
    let lp = uv::Loop::new().unwrap();
    std::thread::spawn(move || {
        drop(lp);
    });
}
