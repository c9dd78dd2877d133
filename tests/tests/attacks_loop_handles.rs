//! Attacks on the loop and the simple handles (timer, idle, prepare, check, signal,
//! poll, terminal, file watchers) and on the extension path (`uv::handle!` spec
//! files of another crate): safe code that could abort the process, hang, lose an
//! accepted value, leak or reach undefined behaviour. Each test pins the answer
//! the library gives instead.

#![cfg(unix)]
#![deny(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use uv::{Loop, RunMode, StatusCode, Timer};
use uv_tests::net::TempDir;

uv::handle!("spec/stat_watch.toml");

/// An extension crate's stat poller (`tests/spec/stat_watch.toml`, declared here
/// through `uv::handle!`) stopped while its first stat is in flight and started
/// again at once: libuv would let the stopped poll go on and abort in its timer
/// (`fs-poll.c:180: timer_cb: Assertion ctx->parent_handle->poll_ctx == ctx`).
/// The spec loader now refuses a `uv_fs_poll_start` method without the
/// `poll_settled` check, so the extension's `start` answers `EBUSY` as uv's own
/// `FsPoll::start` does, and starts once the loop has run.
#[test]
fn an_extension_stat_poller_restarted_while_its_stopped_poll_settles_is_ebusy() {
    let dir = TempDir::new("atk-statwatch");
    let lp = Loop::new().unwrap();
    let p = StatWatch::new(&lp).unwrap();
    p.start(dir.path(), Duration::from_millis(1), |_, _, _, _| {})
        .unwrap();
    p.stop().unwrap();
    let err = p
        .start(dir.path(), Duration::from_millis(1), |_, _, _, _| {})
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EBUSY);
    assert!(!p.is_active());
    // The stopped poll winds down; nothing is left to keep the loop alive.
    assert!(!lp.run(RunMode::Default).unwrap());
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    p.start(
        dir.path(),
        Duration::from_millis(1),
        move |p, status, _, _| {
            status.unwrap();
            c.set(c.get() + 1);
            p.close();
        },
    )
    .unwrap();
    assert!(p.is_active());
    let file = dir.join("new");
    uv_tests::net::later(&lp, Duration::from_millis(20), move || {
        std::fs::write(file, b"x").unwrap()
    });
    lp.run(RunMode::Default).unwrap();
    assert_eq!(calls.get(), 1);
}

/// Timers at the ends of the range: a timeout and a repeat of `Duration::MAX`
/// saturate (libuv's due time clamps), never wrap into "due now".
#[test]
fn timers_with_the_largest_durations_are_never_due() {
    let lp = Loop::new().unwrap();
    let fired = Rc::new(Cell::new(0));
    let t = Timer::new(&lp).unwrap();
    let f = fired.clone();
    t.start(Duration::MAX, Duration::MAX, move |_| f.set(f.get() + 1))
        .unwrap();
    assert_eq!(t.repeat().unwrap(), Duration::from_millis(u64::MAX));
    assert!(t.due_in().unwrap() >= Duration::from_millis(u64::MAX / 2));
    // Once the loop ran (libuv answers 0 while it has watchers to register), it
    // would block (bounded by libuv's INT_MAX clamp), not spin.
    assert!(lp.run(RunMode::NoWait).unwrap());
    let timeout = lp.backend_timeout().unwrap().expect("a bounded wait");
    assert!(timeout >= Duration::from_secs(1), "{timeout:?}");
    assert!(lp.run(RunMode::NoWait).unwrap());
    t.again().unwrap();
    assert!(lp.run(RunMode::NoWait).unwrap());
    t.set_repeat(Duration::from_millis(u64::MAX - 1)).unwrap();
    t.again().unwrap();
    assert!(t.due_in().unwrap() >= Duration::from_millis(u64::MAX / 2));
    assert!(lp.run(RunMode::NoWait).unwrap());
    assert_eq!(fired.get(), 0);
    t.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(fired.get(), 0);
}

/// A zero timeout fires in the next iteration; a zero repeat makes it one-shot;
/// `again` on a one-shot timer inside its callback is a no-op (it was started, so
/// not `EINVAL`), and the timer stays stopped.
#[test]
fn zero_durations_fire_once_and_again_inside_is_a_no_op() {
    let lp = Loop::new().unwrap();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let t = Timer::new(&lp).unwrap();
    let f = fired.clone();
    t.start(Duration::ZERO, Duration::ZERO, move |t| {
        f.borrow_mut().push(t.again().map_err(|e| e.code()));
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*fired.borrow(), vec![Ok(())]);
    assert!(!t.is_active());
    t.close();
    lp.run(RunMode::Default).unwrap();
}
