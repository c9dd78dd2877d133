//! Attacks from safe code on the handles and requests attacked least: file-system
//! requests with odd arguments, `FsEvent` and `FsPoll` started twice, on odd paths
//! and from their own callbacks, `Poll` handles on odd descriptors and with odd
//! event masks, `Signal` with numbers no system has, `Process` options and kills,
//! `Tty` handles on what is no terminal, and loop functions from inside callbacks.
//! Each test says what used to happen, or which behaviour it pins; values,
//! counts, orders and error codes only. `bash tests/valgrind.sh attacks_rest`
//! checks the memory side.

#![cfg(target_os = "linux")]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use uv::{FsPoll, Loop, RunMode, StatusCode};
use uv_tests::net::TempDir;

/// Closes what is left and runs the loop out: nothing may be left alive.
fn finish(lp: &Loop) {
    lp.close_all_handles();
    assert!(!lp.run(RunMode::Default).unwrap());
}

// ---- FsPoll ----

/// A second `FsPoll::start` on a poller that polls, with another path and
/// callback: libuv does nothing (it keeps the path and interval it polls), but the
/// generated method had already put the new callback in the handle's slot and
/// answered `Ok`: the new callback was then told of the old path's changes (here
/// the `ENOENT` of a missing file, told to a callback started on `/`), and the
/// old one was dropped. Now the start is `EBUSY`: the first callback keeps its
/// poll, the second never runs; once stopped and settled the poller starts on the
/// new path.
#[test]
fn a_second_start_of_a_polling_fs_poll_is_ebusy_and_keeps_the_first_watch() {
    let dir = TempDir::new("rest-poll-twice");
    let lp = Loop::new().unwrap();
    let p = FsPoll::new(&lp).unwrap();
    let missing = dir.join("missing");
    let first = Rc::new(RefCell::new(Vec::new()));
    let f = first.clone();
    p.start(&missing, Duration::ZERO, move |p, r| {
        f.borrow_mut().push(r.map(drop).map_err(|e| e.code()));
        p.stop().unwrap();
    })
    .unwrap();
    let second = Rc::new(Cell::new(0));
    let s = second.clone();
    let e = p
        .start(dir.path(), Duration::ZERO, move |_, _| s.set(s.get() + 1))
        .unwrap_err();
    assert_eq!(e.code(), StatusCode::EBUSY);
    assert_eq!(p.path().unwrap(), missing);
    assert!(p.is_active());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*first.borrow(), [Err(StatusCode::ENOENT)]);
    assert_eq!(second.get(), 0);
    // Stopped and settled: a start on another path is taken, with its callback.
    let other = dir.join("other");
    let s = second.clone();
    p.start(&other, Duration::ZERO, move |p, r| {
        assert_eq!(r.unwrap_err().code(), StatusCode::ENOENT);
        s.set(s.get() + 1);
        p.close();
    })
    .unwrap();
    assert_eq!(p.path().unwrap(), other);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(second.get(), 1);
    assert_eq!(*first.borrow(), [Err(StatusCode::ENOENT)]);
    finish(&lp);
}
