// Handles are not `Sync`: another thread cannot use one through a shared reference.
fn main() {
    let lp = uv::Loop::new().unwrap();
    let timer = uv::Timer::new(&lp).unwrap();
    let shared = &timer;
    std::thread::scope(|s| {
        s.spawn(move || shared.is_active());
    });
}
