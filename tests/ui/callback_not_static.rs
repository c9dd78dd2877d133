// Callbacks are stored in the handle, which can outlive the caller's stack frame
// (a started timer keeps running after its last reference is dropped): they must
// be `'static`, so they cannot borrow a local.
use std::cell::Cell;
use std::time::Duration;

fn main() {
    let lp = uv::Loop::new().unwrap();
    let timer = uv::Timer::new(&lp).unwrap();
    let ticks = Cell::new(0);
    let ticks_ref = &ticks;
    timer
        .start(Duration::ZERO, Duration::ZERO, move |_t| {
            ticks_ref.set(ticks_ref.get() + 1);
        })
        .unwrap();
    lp.run(uv::RunMode::Default).unwrap();
    assert_eq!(ticks.get(), 1);
}
