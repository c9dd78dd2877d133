// Handles belong to their loop's thread: a `Timer` cannot be moved to another one.
fn main() {
    let lp = uv::Loop::new().unwrap();
    let timer = uv::Timer::new(&lp).unwrap();
    std::thread::spawn(move || {
        drop(timer);
    });
}
