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
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use uv::{FsPoll, Loop, RunMode, Signal, Signum, StatusCode};
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

// ---- FsEvent ----

/// Two watchers of one loop on one file, under a symbolic link and its target:
/// inotify gives both one watch, and libuv keeps the path the first started with.
/// Pins what `path()` documents: the second watcher's path and the name of its
/// file's changes are the link's, even once the first watcher is closed; no
/// abort, no read of freed memory (the shared watch lives while either watches).
#[test]
fn watchers_of_one_file_under_two_names_share_the_first_path() {
    use uv::{FsEvent, FsEventFlags};
    let dir = TempDir::new("rest-fse-names");
    let target = dir.join("target");
    std::fs::write(&target, b"0").unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let lp = Loop::new().unwrap();
    let (by_link, by_target) = (FsEvent::new(&lp).unwrap(), FsEvent::new(&lp).unwrap());
    let names = Rc::new(RefCell::new(Vec::new()));
    by_link
        .start(&link, FsEventFlags::empty(), |_, _, _, _| {
            unreachable!("closed before any change")
        })
        .unwrap();
    let n = names.clone();
    by_target
        .start(&target, FsEventFlags::empty(), move |w, name, _, status| {
            status.unwrap();
            n.borrow_mut().push(name.map(Path::to_path_buf));
            w.close();
        })
        .unwrap();
    assert_eq!(by_link.path().unwrap(), link);
    assert_eq!(by_target.path().unwrap(), link);
    by_link.close();
    assert_eq!(by_target.path().unwrap(), link);
    std::fs::write(&target, b"1").unwrap();
    let mut turns = 0;
    while !by_target.is_closed() && turns < 1000 {
        lp.run(RunMode::NoWait).unwrap();
        turns += 1;
    }
    assert_eq!(
        *names.borrow(),
        [Some(PathBuf::from("link"))],
        "{turns} turns"
    );
    finish(&lp);
}

// ---- Signal ----

/// Exit statuses and signals told to exit callbacks, in order.
type Exits = Rc<RefCell<Vec<(i64, Option<Signum>)>>>;

/// A one-shot watch of `SIGCHLD` beside the loop's own (libuv reaps children on
/// it): the user's watch fires once and ends; exits of children spawned before
/// and after it, and after a `start` then `close` of the user's handle, are each
/// told once (libuv's watch is not undone by the user's one-shot reset).
#[test]
fn a_user_watch_of_sigchld_leaves_child_exits_told() {
    let lp = Loop::new().unwrap();
    let s = Signal::new(&lp).unwrap();
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    s.start_oneshot(Signum::Child, move |_, sig| {
        assert_eq!(sig, Signum::Child);
        f.set(f.get() + 1);
    })
    .unwrap();
    let exits: Exits = Rc::default();
    let spawn = |exits: &Exits| {
        let e = exits.clone();
        uv::Process::spawn(
            &lp,
            &uv::ProcessOptions::new("/bin/sh").args(["-c", "exit 3"]),
            move |p, status, sig| {
                e.borrow_mut().push((status, sig));
                p.close();
            },
        )
        .unwrap()
    };
    let wait_for = |n: usize| {
        let mut turns = 0;
        while exits.borrow().len() < n && turns < 10_000 {
            lp.run(RunMode::Once).unwrap();
            turns += 1;
        }
        assert_eq!(exits.borrow().len(), n, "after {turns} turns");
    };
    drop(spawn(&exits));
    wait_for(1);
    assert_eq!(fired.get(), 1);
    assert!(!s.is_active());
    drop(spawn(&exits));
    wait_for(2);
    s.start(Signum::Child, |_, _| {}).unwrap();
    s.close();
    drop(spawn(&exits));
    wait_for(3);
    assert_eq!(*exits.borrow(), [(3, None); 3]);
    assert_eq!(fired.get(), 1);
    finish(&lp);
}
