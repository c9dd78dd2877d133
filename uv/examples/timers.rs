//! Timers: a one-shot timer, a repeating timer that outlives its `Timer` value and
//! closes itself from its own callback, and `set_repeat` + `again` turning a
//! one-shot timer into a repeating one.
//!
//! Run with `cargo run -p libuv-safe --example timers`.
//!
//! It prints the one-shot fire, the repeating timer's three ticks and its close,
//! the `EINVAL` of `again` before any start, the three fires of the timer turned
//! repeating, then `done`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

fn main() -> Result<(), uv::Error> {
    let lp = uv::Loop::new()?;
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let record = {
        let log = log.clone();
        move |event: String| {
            println!("  {event}");
            log.borrow_mut().push(event);
        }
    };

    // Part 1: a one-shot timer (due after 1 ms) and a repeating one (every 2 ms).
    // Both start at the same loop time, so the one-shot always fires first.
    println!("part 1: one-shot and self-closing repeating timer");
    let once = uv::Timer::new(&lp)?;
    let rec = record.clone();
    once.start(Duration::from_millis(1), Duration::ZERO, move |_t| {
        rec("one-shot fired".to_string());
    })?;

    let repeating = uv::Timer::new(&lp)?;
    let rec = record.clone();
    let mut ticks = 0;
    repeating.start(
        Duration::from_millis(2),
        Duration::from_millis(2),
        move |t| {
            ticks += 1;
            rec(format!("repeating tick {ticks}"));
            if ticks == 3 {
                let rec = rec.clone();
                t.close_with(move |_h| rec("repeating timer closed".to_string()));
            }
        },
    )?;
    // Dropping the value does not stop the timer: an active handle stays open
    // until it is closed (here, by its own callback).
    drop(repeating);

    lp.run(uv::RunMode::Default)?;
    assert_eq!(
        *log.borrow(),
        [
            "one-shot fired",
            "repeating tick 1",
            "repeating tick 2",
            "repeating tick 3",
            "repeating timer closed",
        ]
    );
    // The one-shot timer is stopped but still open: its value is alive.
    assert!(!once.is_active());
    assert_eq!(lp.handle_count(), 1);
    drop(once);
    log.borrow_mut().clear();

    // Part 2: `set_repeat` and `again`. The timer starts as a one-shot; its first
    // callback gives it a repeat interval and restarts it with `again`.
    println!("part 2: set_repeat + again");
    let timer = uv::Timer::new(&lp)?;
    // `again` on a timer that was never started is an error (EINVAL).
    let err = timer.again().expect_err("again before start");
    println!("  again before start: {err}");
    assert_eq!(err.code(), uv::StatusCode::EINVAL);

    let rec = record.clone();
    let mut fired = 0;
    timer.start(Duration::from_millis(1), Duration::ZERO, move |t| {
        fired += 1;
        let repeat = t.repeat().expect("repeat");
        rec(format!("fire {fired} (repeat {repeat:?})"));
        match fired {
            1 => {
                t.set_repeat(Duration::from_millis(2)).expect("set_repeat");
                t.again().expect("again");
            }
            3 => t.stop().expect("stop"),
            _ => {}
        }
    })?;
    lp.run(uv::RunMode::Default)?;
    assert_eq!(
        *log.borrow(),
        [
            "fire 1 (repeat 0ns)",
            "fire 2 (repeat 2ms)",
            "fire 3 (repeat 2ms)"
        ]
    );
    assert!(!timer.is_active());
    println!("done");
    Ok(())
}
