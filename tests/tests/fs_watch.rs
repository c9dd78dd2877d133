//! `FsEvent` and `FsPoll` (generated from spec/handles/fs_event.toml and
//! fs_poll.toml): scenarios of libuv's test-fs-event.c, test-fs-poll.c and the
//! fs_event / fs_poll cases of test-ref.c.

#![cfg(target_os = "linux")]

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use uv::{FsEvent, FsEventFlags, FsEventKind, FsPoll, Loop, RunMode, Stat, StatusCode, Timer};
use uv_tests::net::{later, run_until, TempDir};

type Events = Rc<RefCell<Vec<(Option<PathBuf>, FsEventKind)>>>;

/// What a poll callback got: the error code, if any, the previous and current stat.
type Change = Result<(Stat, Stat), StatusCode>;

/// Closes `h` after 5 s if the test has not (a guard that keeps no loop alive).
fn guard(lp: &Loop, h: &uv::Handle) {
    let h = h.clone();
    let t = Timer::once(lp, Duration::from_secs(5), move |_| h.close()).unwrap();
    t.unref().unwrap();
}

fn recorder(events: &Events) -> impl FnMut(&FsEvent, Option<&Path>, FsEventKind, uv::Result<()>) {
    let ev = events.clone();
    move |_, name, kind, status| {
        status.unwrap();
        ev.borrow_mut().push((name.map(Path::to_path_buf), kind));
    }
}

#[test]
fn watch_dir_sees_a_new_file_by_name() {
    let dir = TempDir::new("fsw-dir");
    let lp = Loop::new().unwrap();
    let w = FsEvent::new(&lp).unwrap();
    let events: Events = Rc::default();
    let ev = events.clone();
    w.start(
        dir.path(),
        FsEventFlags::empty(),
        move |w, name, kind, status| {
            status.unwrap();
            ev.borrow_mut().push((name.map(Path::to_path_buf), kind));
            if name == Some(Path::new("file1")) {
                w.close();
            }
        },
    )
    .unwrap();
    let f = dir.join("file1");
    later(&lp, Duration::from_millis(10), move || {
        std::fs::write(f, b"x").unwrap()
    });
    guard(&lp, &w);
    lp.run(RunMode::Default).unwrap();
    let events = events.borrow();
    let (_, kind) = events
        .iter()
        .find(|(n, _)| n.as_deref() == Some(Path::new("file1")))
        .unwrap_or_else(|| panic!("no event for file1: {events:?}"));
    assert!(
        kind.contains(FsEventKind::RENAME),
        "creation is a rename: {kind:?}"
    );
}

#[test]
fn watch_file_sees_changes_and_two_watchers_both_do() {
    let dir = TempDir::new("fsw-file");
    let file = dir.join("watched");
    std::fs::write(&file, b"0").unwrap();
    let lp = Loop::new().unwrap();
    let (e1, e2): (Events, Events) = (Rc::default(), Rc::default());
    let w1 = FsEvent::new(&lp).unwrap();
    let w2 = FsEvent::new(&lp).unwrap();
    w1.start(&file, FsEventFlags::empty(), recorder(&e1))
        .unwrap();
    w2.start(&file, FsEventFlags::empty(), recorder(&e2))
        .unwrap();
    assert_eq!(w1.path().unwrap(), file);
    // Written once both watch (inotify queues the events); the watchers close
    // once both saw the change, with a backstop that closes them after 5 s.
    std::fs::write(&file, b"changed").unwrap();
    guard(&lp, &w1);
    guard(&lp, &w2);
    let changed = |events: &Events| {
        events.borrow().iter().any(|(n, k)| {
            k.contains(FsEventKind::CHANGE) && n.as_deref() == Some(Path::new("watched"))
        })
    };
    run_until(&lp, || {
        (changed(&e1) && changed(&e2)) || (w1.is_closed() && w2.is_closed())
    });
    w1.close();
    w2.close();
    lp.run(RunMode::Default).unwrap();
    for events in [&e1, &e2] {
        assert!(changed(events), "{:?}", events.borrow());
    }
}

#[test]
fn a_rename_in_a_watched_dir_is_reported_for_both_names() {
    let dir = TempDir::new("fsw-rename");
    std::fs::write(dir.join("old"), b"x").unwrap();
    let lp = Loop::new().unwrap();
    let w = FsEvent::new(&lp).unwrap();
    let events: Events = Rc::default();
    w.start(dir.path(), FsEventFlags::empty(), recorder(&events))
        .unwrap();
    std::fs::rename(dir.join("old"), dir.join("new")).unwrap();
    guard(&lp, &w);
    let renamed = |name: &str| {
        events
            .borrow()
            .iter()
            .any(|(n, k)| n.as_deref() == Some(Path::new(name)) && k.contains(FsEventKind::RENAME))
    };
    run_until(&lp, || (renamed("old") && renamed("new")) || w.is_closed());
    w.close();
    lp.run(RunMode::Default).unwrap();
    for name in ["old", "new"] {
        assert!(renamed(name), "{name}: {:?}", events.borrow());
    }
}

#[test]
fn close_in_the_callback_stops_further_events() {
    let dir = TempDir::new("fsw-close");
    let lp = Loop::new().unwrap();
    let w = FsEvent::new(&lp).unwrap();
    let calls = Rc::new(RefCell::new(0));
    let c = calls.clone();
    w.start(dir.path(), FsEventFlags::empty(), move |w, _, _, _| {
        *c.borrow_mut() += 1;
        w.close();
    })
    .unwrap();
    let d = dir.path().to_path_buf();
    later(&lp, Duration::from_millis(10), move || {
        for i in 0..5 {
            std::fs::write(d.join(format!("f{i}")), b"x").unwrap();
        }
    });
    guard(&lp, &w);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*calls.borrow(), 1);
    assert!(w.is_closed());
}

#[test]
fn start_twice_stop_restart_and_path_rules() {
    let dir = TempDir::new("fsw-twice");
    let lp = Loop::new().unwrap();
    let w = FsEvent::new(&lp).unwrap();
    // No path before it starts.
    assert_eq!(w.path().unwrap_err().code(), StatusCode::EINVAL);
    w.start(dir.path(), FsEventFlags::empty(), |_, _, _, _| {})
        .unwrap();
    assert!(w.is_active());
    // libuv refuses a second start while active.
    assert_eq!(
        w.start(dir.path(), FsEventFlags::empty(), |_, _, _, _| {})
            .unwrap_err()
            .code(),
        StatusCode::EINVAL
    );
    assert!(w.is_active(), "the first watch goes on");
    w.stop().unwrap();
    assert!(!w.is_active());
    w.stop().unwrap();
    let other = dir.join("sub");
    std::fs::create_dir(&other).unwrap();
    w.start(&other, FsEventFlags::empty(), |_, _, _, _| {})
        .unwrap();
    assert_eq!(w.path().unwrap(), other);
    w.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn an_unreferenced_watcher_or_poller_does_not_keep_the_loop_alive() {
    let dir = TempDir::new("fsw-ref");
    let lp = Loop::new().unwrap();
    let w = FsEvent::new(&lp).unwrap();
    w.start(dir.path(), FsEventFlags::empty(), |_, _, _, _| {})
        .unwrap();
    w.unref().unwrap();
    let p = FsPoll::new(&lp).unwrap();
    p.start(dir.path(), Duration::from_millis(10), |_, _| {})
        .unwrap();
    p.unref().unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(w.is_active() && p.is_active());
    w.close();
    p.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn a_started_watcher_runs_on_after_its_value_is_dropped() {
    let dir = TempDir::new("fsw-drop");
    let lp = Loop::new().unwrap();
    let events: Events = Rc::default();
    {
        let w = FsEvent::new(&lp).unwrap();
        let ev = events.clone();
        w.start(
            dir.path(),
            FsEventFlags::empty(),
            move |w, name, kind, _| {
                ev.borrow_mut().push((name.map(Path::to_path_buf), kind));
                w.close();
            },
        )
        .unwrap();
    }
    assert_eq!(lp.handles().len(), 1);
    let d = dir.join("late");
    later(&lp, Duration::from_millis(10), move || {
        std::fs::write(d, b"x").unwrap()
    });
    lp.run(RunMode::Default).unwrap();
    assert_eq!(events.borrow().len(), 1);
    assert_eq!(lp.handles().len(), 0);
}

/// libuv's test-fs-poll.c "poll1": a missing file (ENOENT), then created, changed
/// and removed again; each step is reported once, with the previous and the
/// current stat.
#[test]
fn fs_poll_reports_creation_change_and_removal() {
    let dir = TempDir::new("fsp-seq");
    let file = dir.join("polled");
    let lp = Loop::new().unwrap();
    let p = FsPoll::new(&lp).unwrap();
    let seen: Rc<RefCell<Vec<Change>>> = Rc::default();
    let s = seen.clone();
    let f = file.clone();
    let lh = lp.handle();
    p.start(&file, Duration::from_millis(20), move |p, change| {
        let step = s.borrow().len();
        s.borrow_mut().push(change.map_err(|e| e.code()));
        // Each change is made after the previous one was seen.
        let f = f.clone();
        let p = p.clone();
        // Contents are written beside the file and renamed over it: a poll between
        // `write`'s create (or truncate) and its write would see an extra,
        // empty state (it did under valgrind).
        let put = |f: &std::path::Path, bytes: &[u8]| {
            let tmp = f.with_extension("tmp");
            std::fs::write(&tmp, bytes).unwrap();
            std::fs::rename(&tmp, f).unwrap();
        };
        Timer::once(&lh, Duration::from_millis(30), move |_| match step {
            0 => put(&f, b"1"),
            1 => put(&f, b"22"),
            2 => std::fs::remove_file(&f).unwrap(),
            _ => p.close(),
        })
        .unwrap();
    })
    .unwrap();
    guard(&lp, &p);
    lp.run(RunMode::Default).unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert_eq!(seen[0], Err(StatusCode::ENOENT));
    // Created: the previous stat is the zeroed one of the missing path.
    let (prev, curr) = seen[1].unwrap();
    assert_eq!((prev, curr.size), (Stat::default(), 1));
    let (prev, curr) = seen[2].unwrap();
    assert_eq!((prev.size, curr.size), (1, 2));
    assert!(curr.modified >= prev.modified);
    assert_eq!(seen[3], Err(StatusCode::ENOENT));
}

#[test]
fn fs_poll_path_and_close_in_callback() {
    let dir = TempDir::new("fsp-close");
    let lp = Loop::new().unwrap();
    let p = FsPoll::new(&lp).unwrap();
    assert_eq!(p.path().unwrap_err().code(), StatusCode::EINVAL);
    let missing = dir.join("none");
    let calls = Rc::new(RefCell::new(0));
    let c = calls.clone();
    p.start(&missing, Duration::from_millis(5), move |p, change| {
        assert_eq!(change.unwrap_err().code(), StatusCode::ENOENT);
        *c.borrow_mut() += 1;
        p.close();
    })
    .unwrap();
    assert_eq!(p.path().unwrap(), missing);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*calls.borrow(), 1);
}

/// A stopped poller whose last stat is still running cannot be started again
/// (`EBUSY`): libuv would let the stopped poll go on and abort in its timer (a
/// fuzzer finding: `timer_cb: Assertion ctx->parent_handle->poll_ctx == ctx`).
/// Once the loop has run the stat's completion, it starts.
#[test]
fn fs_poll_restart_while_the_stopped_poll_settles_is_ebusy() {
    let dir = TempDir::new("fsp-restart");
    let lp = Loop::new().unwrap();
    let p = FsPoll::new(&lp).unwrap();
    let calls = Rc::new(RefCell::new(0));
    let c = calls.clone();
    p.start(dir.path(), Duration::from_millis(1), move |_, _| {
        *c.borrow_mut() += 1;
    })
    .unwrap();
    // The first stat is in flight: stop, then start again at once.
    p.stop().unwrap();
    let err = p
        .start(dir.path(), Duration::from_millis(1), |_, _| {})
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EBUSY);
    assert!(!p.is_active());
    // The stopped poll winds down on the loop; then the handle starts again.
    lp.run(RunMode::Default).unwrap();
    let c = calls.clone();
    p.start(dir.path(), Duration::from_millis(1), move |p, _| {
        *c.borrow_mut() += 1;
        p.close();
    })
    .unwrap();
    // A change is seen, once. The poll's first stat is its baseline, and on a slow
    // machine (valgrind) it may finish after any one fixed delay: a file is added
    // every 20 ms until the poll reports a change (its callback closes it).
    let d = dir.path().to_path_buf();
    let added = Rc::new(RefCell::new(0));
    let a = added.clone();
    let poller = p.clone();
    let t = Timer::new(&lp).unwrap();
    t.start(
        Duration::from_millis(20),
        Duration::from_millis(20),
        move |t| {
            if poller.is_closing() {
                t.close();
                return;
            }
            let n = *a.borrow();
            std::fs::write(d.join(format!("new{n}")), b"x").unwrap();
            *a.borrow_mut() += 1;
        },
    )
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*calls.borrow(), 1);
    assert!(*added.borrow() >= 1);
}
