//! The libuv guide's "idle-basic": an idle handle whose callback runs once per loop
//! iteration counts to a million, then stops itself, which lets the loop end.
//! Then shows that a stopped idle handle no longer keeps the loop alive.
//!
//! Run with `cargo run -p libuv-safe --example idle_basic`.
//!
//! It prints `Idling...`, `idle callback ran 1000000 times`, then the handle's and
//! the loop's state after the stop.

use std::cell::Cell;
use std::rc::Rc;

const TARGET: u64 = 1_000_000;

fn main() -> Result<(), uv::Error> {
    let lp = uv::Loop::new()?;
    let counter = Rc::new(Cell::new(0u64));

    let idler = uv::Idle::new(&lp)?;
    let c = counter.clone();
    idler.start(move |i| {
        c.set(c.get() + 1);
        if c.get() >= TARGET {
            i.stop().expect("idle stop");
        }
    })?;

    println!("Idling...");
    let more = lp.run(uv::RunMode::Default)?;
    println!("idle callback ran {} times", counter.get());
    assert_eq!(counter.get(), TARGET);
    assert!(!more);

    // The stopped handle is still open, but it is not active, so it does not keep
    // the loop alive: running again returns at once and the callback stays silent.
    assert!(!idler.is_closing());
    assert!(!idler.is_active());
    assert!(!lp.alive());
    let more = lp.run(uv::RunMode::Default)?;
    println!(
        "after stop: active = {}, loop alive = {}, run again -> more work = {more}, count = {}",
        idler.is_active(),
        lp.alive(),
        counter.get()
    );
    assert!(!more);
    assert_eq!(counter.get(), TARGET);
    Ok(())
}
