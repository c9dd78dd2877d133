//! The paths of the per-loop slab and of the handle's `data` field (close callback,
//! extras record, the slab once closed): close callbacks that capture something or
//! nothing, on handles with and without extras (an `Async` with a sender), handles
//! and close callbacks that outlive their loop, many handles reusing freed
//! memory, and stream read callbacks kept in slab memory (refused, replaced by a
//! close, outliving their loop, panicking in their drop).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use uv::{Async, Category, HandleType, Loop, RunMode, Stream as _, Timer};

#[test]
fn close_with_on_a_handle_with_extras_runs_once_and_shuts_the_sender() {
    let lp = Loop::new().unwrap();
    let a = Async::new(&lp, |_| {}).unwrap();
    let sender = a.sender().unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    a.close_with(move |h| {
        assert!(h.is_closed());
        assert_eq!(h.handle_type(), HandleType::Async);
        c.set(c.get() + 1);
    });
    assert_eq!(
        sender.send().unwrap_err().kind(),
        Category::ClosedHandle,
        "a send after close"
    );
    lp.run(RunMode::Default).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(calls.get(), 1);
    assert!(a.is_closed());
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn a_close_callback_capturing_nothing_runs() {
    thread_local! {
        static RAN: Cell<usize> = const { Cell::new(0) };
    }
    let lp = Loop::new().unwrap();
    for _ in 0..3 {
        Timer::new(&lp)
            .unwrap()
            .close_with(|_| RAN.with(|r| r.set(r.get() + 1)));
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(RAN.with(Cell::get), 3);
}

#[test]
fn what_a_close_callback_captured_is_dropped_after_it_ran() {
    let lp = Loop::new().unwrap();
    let token = Rc::new(());
    let t = Timer::new(&lp).unwrap();
    let held = token.clone();
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    t.close_with(move |_| s.set(Rc::strong_count(&held)));
    assert_eq!(Rc::strong_count(&token), 2);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(seen.get(), 2, "the callback still held its capture");
    assert_eq!(Rc::strong_count(&token), 1, "dropped after the call");
}

#[test]
fn a_pending_close_callback_runs_when_the_loop_is_dropped() {
    let lp = Loop::new().unwrap();
    let a = Async::new(&lp, |_| {}).unwrap();
    let _sender = a.sender().unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    a.close_with(move |_| c.set(c.get() + 1));
    drop(lp);
    assert_eq!(calls.get(), 1);
    assert!(a.is_closed());
}

#[test]
fn handles_outlive_their_loop_and_answer_closed_handle() {
    let lp = Loop::new().unwrap();
    let timers: Vec<Timer> = (0..100).map(|_| Timer::new(&lp).unwrap()).collect();
    let a = Async::new(&lp, |_| {}).unwrap();
    let sender = a.sender().unwrap();
    drop(lp);
    for t in &timers {
        assert!(t.is_closed());
        let e = t.start(Duration::ZERO, Duration::ZERO, |_| {}).unwrap_err();
        assert_eq!(e.kind(), Category::ClosedHandle);
        assert!(t.loop_().is_closed());
    }
    assert_eq!(sender.send().unwrap_err().kind(), Category::ClosedHandle);
    // Freed after the loop (and its slab's own count) are gone.
    drop(timers);
    drop(a);
}

#[test]
fn a_panicking_close_callback_on_a_handle_with_extras_still_drops_everything() {
    let lp = Loop::new().unwrap();
    let a = Async::new(&lp, |_| {}).unwrap();
    let _sender = a.sender().unwrap();
    let token = Rc::new(());
    let held = token.clone();
    a.close_with(move |_| {
        let _held = held;
        panic!("close boom");
    });
    let p = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"close boom"));
    assert!(a.is_closed());
    assert_eq!(Rc::strong_count(&token), 1);
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn freed_handle_memory_is_reused_without_mixing_up_handles() {
    let lp = Loop::new().unwrap();
    let fired = Rc::new(Cell::new(0u64));
    for round in 0..5u64 {
        let timers: Vec<Timer> = (0..200)
            .map(|i| {
                let t = Timer::new(&lp).unwrap();
                let f = fired.clone();
                let tag = round * 1000 + i;
                t.start(Duration::ZERO, Duration::ZERO, move |_| {
                    f.set(f.get() + tag)
                })
                .unwrap();
                t
            })
            .collect();
        lp.run(RunMode::Default).unwrap();
        for t in &timers {
            t.close();
        }
        lp.run(RunMode::Default).unwrap();
        assert_eq!(lp.handle_count(), 0);
    }
    let expected: u64 = (0..5u64)
        .map(|r| (0..200u64).map(|i| r * 1000 + i).sum::<u64>())
        .sum();
    assert_eq!(fired.get(), expected);
}

/// An `Async`'s sender entry stays in the handle itself until closing starts; each
/// way of closing (the last value dropped, `close`, the loop's drop) shuts it, and
/// senders of one handle share it.
#[test]
fn every_way_an_async_with_a_sender_closes_shuts_its_senders() {
    let closed = |r: uv::Result<()>| {
        assert_eq!(r.unwrap_err().kind(), Category::ClosedHandle);
    };
    let lp = Loop::new().unwrap();
    let a = Async::new(&lp, |_| {}).unwrap();
    let (s1, s1b) = (a.sender().unwrap(), a.sender().unwrap());
    drop(a);
    closed(s1.send());
    closed(s1b.send());

    let b = Async::new(&lp, |_| {}).unwrap();
    let s2 = b.sender().unwrap();
    b.close();
    closed(s2.send());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
    assert!(b.is_closed());

    let c = Async::new(&lp, |_| {}).unwrap();
    let s3 = c.sender().unwrap();
    s3.send().unwrap();
    assert_eq!(lp.handle_count(), 1);
    drop(lp);
    closed(s3.send());
    assert!(c.is_closed());
}

/// Counts its drops; panics in its drop when told to.
struct Token {
    drops: Rc<Cell<u32>>,
    panic: bool,
}

impl Drop for Token {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
        if self.panic {
            panic!("token drop");
        }
    }
}

#[test]
fn read_callbacks_from_the_slab_get_the_data_and_are_dropped_once() {
    let lp = Loop::new().unwrap();
    let (a, b) = uv::Pipe::pair(&lp.handle()).unwrap();
    let drops = Rc::new(Cell::new(0));
    let got = Rc::new(std::cell::RefCell::new(Vec::new()));
    let t = Token {
        drops: drops.clone(),
        panic: false,
    };
    let g = got.clone();
    b.read_start(move |s, data| {
        let _ = &t;
        match data {
            Ok(bytes) => g.borrow_mut().extend_from_slice(bytes),
            Err(e) => {
                assert_eq!(e.code(), uv::StatusCode::EOF);
                s.close();
            }
        }
    })
    .unwrap();
    // A second start is refused while reading: its callback is dropped at once and
    // the first one stays.
    let t = Token {
        drops: drops.clone(),
        panic: false,
    };
    let e = b
        .read_start(move |_, _| {
            let _ = &t;
            unreachable!("refused")
        })
        .unwrap_err();
    assert_eq!(e.code(), uv::StatusCode::EALREADY);
    assert_eq!(drops.get(), 1, "the refused callback");
    a.write(b"slab", |a, r| {
        r.unwrap();
        a.close();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*got.borrow(), b"slab");
    assert_eq!(drops.get(), 2, "the callback, dropped by the close");
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn a_read_callback_from_the_slab_outlives_its_loop() {
    let drops = Rc::new(Cell::new(0));
    let (a, b) = {
        let lp = Loop::new().unwrap();
        let (a, b) = uv::Pipe::pair(&lp.handle()).unwrap();
        let t = Token {
            drops: drops.clone(),
            panic: false,
        };
        b.read_start(move |_, _| {
            let _ = &t;
        })
        .unwrap();
        (a, b)
        // The loop is dropped here with both ends open: they are closed then, and
        // the callback's memory (slab memory) outlives the loop.
    };
    assert_eq!(drops.get(), 1);
    assert!(b.is_closed());
    drop((a, b));
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_panicking_drop_of_a_read_callback_from_the_slab_goes_to_the_loop() {
    let lp = Loop::new().unwrap();
    let (a, b) = uv::Pipe::pair(&lp.handle()).unwrap();
    let drops = Rc::new(Cell::new(0));
    let t = Token {
        drops: drops.clone(),
        panic: true,
    };
    b.read_start(move |_, _| {
        let _ = &t;
    })
    .unwrap();
    a.close();
    b.close();
    let r = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default)));
    assert!(r.is_err(), "the drop's panic is resumed by run");
    assert_eq!(drops.get(), 1);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
}
