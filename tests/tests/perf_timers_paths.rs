//! The paths the cheaper timer and close code takes out of line: a callback that
//! replaces itself (and then returns or panics, and whose Drop may panic), close
//! callbacks on each way a handle closes (the common one, a handle with a sender
//! entry, a signal handle), a panicking close callback, and a handle whose last
//! reference goes inside its own close callback.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use uv::{Async, Loop, RunMode, Signal, Signum, Timer};

/// The text of a panic payload.
fn text(p: &(dyn std::any::Any + Send)) -> String {
    uv_tests::panic_text(p).unwrap_or("?").to_string()
}

/// A loop whose panics are collected (by their text) instead of resumed by `run`.
fn loop_with_hook() -> (Loop, Rc<RefCell<Vec<String>>>) {
    let lp = Loop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_panic_hook(move |p| s.borrow_mut().push(text(&*p)));
    (lp, seen)
}

/// Panics when dropped.
struct LoudDrop;
impl Drop for LoudDrop {
    fn drop(&mut self) {
        panic!("loud drop");
    }
}

#[test]
fn a_callback_that_replaces_itself_then_panics_keeps_the_new_one() {
    let (lp, seen) = loop_with_hook();
    let t = Timer::new(&lp).unwrap();
    let token = Rc::new(());
    let held = token.clone();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    t.start(Duration::ZERO, Duration::ZERO, move |t| {
        let _ = &held;
        let c2 = c.clone();
        t.start(Duration::ZERO, Duration::ZERO, move |_| {
            c2.set(c2.get() + 10)
        })
        .unwrap();
        panic!("first");
    })
    .unwrap();
    // The hook takes the panic, so the loop goes on and runs the stored callback.
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*seen.borrow(), ["first"]);
    // The first callback (and what it held) is gone; the one it stored ran once.
    assert_eq!(Rc::strong_count(&token), 1);
    assert_eq!(calls.get(), 10);
}

#[test]
fn a_replaced_callbacks_panicking_drop_goes_to_the_panic_rule() {
    let (lp, seen) = loop_with_hook();
    let t = Timer::new(&lp).unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let loud = LoudDrop;
    t.start(Duration::ZERO, Duration::ZERO, move |t| {
        let _ = &loud;
        let c2 = c.clone();
        t.start(Duration::ZERO, Duration::ZERO, move |_| {
            c2.set(c2.get() + 1)
        })
        .unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*seen.borrow(), ["loud drop"]);
    assert_eq!(calls.get(), 1);
}

#[test]
fn during_a_callbacks_panic_the_replaced_ones_panicking_drop_is_not_reported() {
    let (lp, seen) = loop_with_hook();
    let t = Timer::new(&lp).unwrap();
    let loud = LoudDrop;
    t.start(Duration::ZERO, Duration::ZERO, move |t| {
        let _ = &loud;
        t.start(Duration::ZERO, Duration::ZERO, |_| {}).unwrap();
        panic!("first");
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*seen.borrow(), ["first"]);
}

#[test]
fn close_callbacks_run_once_on_each_way_a_handle_closes() {
    let lp = Loop::new().unwrap();
    let closed = Rc::new(Cell::new(0));

    // The common way.
    let t = Timer::new(&lp).unwrap();
    // An async handle with a sender entry (taken out of `data` first).
    let a = Async::new(&lp, |_| {}).unwrap();
    let sender = a.sender().unwrap();
    // A signal handle (its signal's disposition is restored).
    let s = Signal::new(&lp).unwrap();
    s.start(Signum::User2, |_, _| {}).unwrap();

    for h in [&*t, &*a, &*s] {
        let c = closed.clone();
        h.close_with(move |h| {
            assert!(h.is_closed());
            c.set(c.get() + 1);
        });
        assert!(h.is_closing());
        assert!(!h.is_closed());
        // Closing again is a no-op; its callback is dropped without a call.
        let c = closed.clone();
        h.close_with(move |_| c.set(c.get() + 100));
    }
    assert!(sender.send().is_err());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(closed.get(), 3);
    for h in [&*t, &*a, &*s] {
        assert!(h.is_closed());
        assert!(!h.is_active());
    }
}

#[test]
fn a_panicking_close_callback_still_empties_the_slots() {
    let (lp, seen) = loop_with_hook();
    let t = Timer::new(&lp).unwrap();
    let token = Rc::new(());
    let held = token.clone();
    t.start(Duration::from_secs(3600), Duration::ZERO, move |_| {
        let _ = &held;
    })
    .unwrap();
    t.close_with(|_| panic!("in close"));
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*seen.borrow(), ["in close"]);
    assert_eq!(Rc::strong_count(&token), 1);
    assert!(t.is_closed());
}

#[test]
fn a_handle_whose_last_reference_goes_in_its_close_callback_is_freed_after_it() {
    let lp = Loop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let t = Timer::new(&lp).unwrap();
    let token = Rc::new(());
    let held = token.clone();
    t.start(Duration::from_secs(3600), Duration::ZERO, move |_| {
        let _ = &held;
    })
    .unwrap();
    let r = ran.clone();
    let keep = RefCell::new(Some(t.clone()));
    t.close_with(move |h| {
        // The last reference goes here; the handle stays usable until the close
        // callback is over.
        drop(keep.borrow_mut().take());
        assert!(h.is_closed());
        r.set(true);
    });
    drop(t);
    lp.run(RunMode::Default).unwrap();
    assert!(ran.get());
    assert_eq!(Rc::strong_count(&token), 1);
    assert_eq!(lp.handle_count(), 0);
}
