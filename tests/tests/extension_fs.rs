//! The extension path for handles whose callbacks carry more than numbers: this
//! crate declares a file watcher (`PathWatch`: a nullable C string, flags and a
//! status per event) and a stat poller (`StatWatch`: two `uv_stat_t`s per change,
//! an `unsigned int` interval) from its own spec files, with no hand-written FFI
//! and no `unsafe` here, and uses them on real files.

#![cfg(unix)]
#![deny(unsafe_code)]

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use uv::{FsEventFlags, FsEventKind, HandleType, Loop, RunMode, Stat, StatusCode, Timer};
use uv_tests::net::{later, TempDir};

uv::handle!("spec/path_watch.toml");
uv::handle!("spec/stat_watch.toml");

/// What the watcher's callback got: the name and the kind of change.
type Event = (Option<PathBuf>, FsEventKind);

#[test]
fn path_watch_reports_a_new_file_by_name() {
    let dir = TempDir::new("ext-fs-event");
    let lp = Loop::new().unwrap();
    let w = PathWatch::new(&lp).unwrap();
    assert_eq!(w.handle_type(), HandleType::FsEvent);
    let events: Rc<RefCell<Vec<Event>>> = Rc::default();
    let ev = events.clone();
    w.start(
        dir.path(),
        FsEventFlags::empty(),
        move |w, name, kind, status| {
            status.unwrap();
            ev.borrow_mut().push((name.map(PathBuf::from), kind));
            if name.is_some_and(|n| n.ends_with("new.txt")) {
                w.close();
            }
        },
    )
    .unwrap();
    assert!(w.is_active());
    assert_eq!(w.path().unwrap(), dir.path());
    let file = dir.join("new.txt");
    later(&lp, Duration::from_millis(20), move || {
        std::fs::write(&file, b"hello").unwrap();
    });
    // A guard against a watcher that never fires: the run ends either way (it does
    // not keep the loop alive itself).
    let guard = Timer::once(&lp, Duration::from_secs(5), {
        let w = w.clone();
        move |_| w.close()
    })
    .unwrap();
    guard.unref().unwrap();
    lp.run(RunMode::Default).ok();
    guard.close();
    lp.run(RunMode::Default).unwrap();
    let events = events.borrow();
    let hit = events
        .iter()
        .find(|(n, _)| n.as_deref() == Some(std::path::Path::new("new.txt")));
    let (_, kind) = hit.unwrap_or_else(|| panic!("no event names new.txt: {events:?}"));
    assert!(
        kind.intersects(FsEventKind::RENAME | FsEventKind::CHANGE),
        "{kind:?}"
    );
}

#[test]
fn path_watch_refuses_bad_paths_and_flags_before_libuv() {
    let lp = Loop::new().unwrap();
    let w = PathWatch::new(&lp).unwrap();
    // A NUL byte in the path: EINVAL, nothing started.
    let e = w
        .start("a\0b", FsEventFlags::empty(), |_, _, _, _| {})
        .unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    assert!(!w.is_active());
    // Unknown flag bits: EINVAL.
    let e = w
        .start(
            "/",
            FsEventFlags::from_bits_retain(1 << 20),
            |_, _, _, _| {},
        )
        .unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    // A path that does not exist: libuv's ENOENT.
    let e = w
        .start("/no/such/dir/here", FsEventFlags::empty(), |_, _, _, _| {})
        .unwrap_err();
    assert_eq!(e.code(), StatusCode::ENOENT);
    // Stopping a never-started watcher is fine; on a closed one, a no-op.
    w.stop().unwrap();
    w.close();
    w.stop().unwrap();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn stat_watch_reports_previous_and_current_metadata() {
    let dir = TempDir::new("ext-fs-poll");
    let file = dir.join("data.bin");
    std::fs::write(&file, b"1234").unwrap();
    let lp = Loop::new().unwrap();
    let p = StatWatch::new(&lp).unwrap();
    let seen: Rc<RefCell<Vec<(Stat, Stat)>>> = Rc::default();
    let s = seen.clone();
    p.start(
        &file,
        Duration::from_millis(10),
        move |p, status, prev, curr| {
            status.unwrap();
            s.borrow_mut().push((prev, curr));
            p.close();
        },
    )
    .unwrap();
    assert_eq!(p.path().unwrap(), file);
    let f2 = file.clone();
    later(&lp, Duration::from_millis(50), move || {
        std::fs::write(&f2, b"1234567890").unwrap();
    });
    let guard = Timer::once(&lp, Duration::from_secs(5), {
        let p = p.clone();
        move |_| p.close()
    })
    .unwrap();
    guard.unref().unwrap();
    lp.run(RunMode::Default).ok();
    guard.close();
    lp.run(RunMode::Default).unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "one change reported");
    let (prev, curr) = seen[0];
    assert_eq!(prev.size, 4);
    assert_eq!(curr.size, 10);
    assert!(prev.is_file() && curr.is_file());
    assert_eq!(prev.ino, curr.ino);
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(curr.modified, meta.modified().unwrap());
}

#[test]
fn stat_watch_reports_a_missing_file_as_enoent_with_zeroed_stats() {
    let dir = TempDir::new("ext-fs-poll-missing");
    let lp = Loop::new().unwrap();
    let p = StatWatch::new(&lp).unwrap();
    let seen: Rc<RefCell<Vec<(StatusCode, Stat)>>> = Rc::default();
    let s = seen.clone();
    p.start(
        dir.join("missing"),
        Duration::from_millis(10),
        move |p, status, _prev, curr| {
            s.borrow_mut().push((status.unwrap_err().code(), curr));
            p.close();
        },
    )
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, StatusCode::ENOENT);
    assert_eq!(seen[0].1, Stat::default());
}

#[test]
fn stat_watch_refuses_an_interval_past_u32_millis() {
    let lp = Loop::new().unwrap();
    let p = StatWatch::new(&lp).unwrap();
    let e = p
        .start(
            "/",
            Duration::from_millis(u64::from(u32::MAX) + 1),
            |_, _, _, _| {},
        )
        .unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    assert!(!p.is_active());
    p.close();
    lp.run(RunMode::Default).unwrap();
}
