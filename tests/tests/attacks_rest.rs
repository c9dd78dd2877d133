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

use uv::{Fs, FsPoll, Loop, OpenFlags, Poll, PollEvent, RunMode, Signal, Signum, StatusCode};
use uv_tests::finish;
use uv_tests::net::TempDir;

uv::handle!("spec/stat_watch.toml");

fn code<T: std::fmt::Debug>(r: uv::Result<T>) -> StatusCode {
    r.unwrap_err().code()
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

/// The same through an extension crate's stat poller (`tests/spec/stat_watch.toml`,
/// declared here through `uv::handle!`), which gets the check from the runtime:
/// a second start while it polls is `EBUSY`, the first callback goes on alone.
#[test]
fn a_second_start_of_a_polling_extension_stat_poller_is_ebusy() {
    let dir = TempDir::new("rest-statwatch");
    let lp = Loop::new().unwrap();
    let p = StatWatch::new(&lp).unwrap();
    let first = Rc::new(RefCell::new(Vec::new()));
    let f = first.clone();
    p.start(
        dir.join("missing"),
        Duration::ZERO,
        move |p, status, _, _| {
            f.borrow_mut().push(status.map_err(|e| e.code()));
            p.close();
        },
    )
    .unwrap();
    let e = p
        .start(dir.path(), Duration::ZERO, |_, _, _, _| unreachable!())
        .unwrap_err();
    assert_eq!(e.code(), StatusCode::EBUSY);
    lp.run(RunMode::Default).unwrap();
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

/// Signals no watch can take: `SIGKILL` and `SIGSTOP` (the system refuses a
/// handler), and numbers the bindings do not know (0, negative, past the last
/// signal, a real-time one): `EINVAL` from `start` and `start_oneshot`, the
/// handle left stopped (`signum()` is `None`) and usable for a good signal.
#[test]
fn signals_no_watch_can_take_are_einval_and_leave_the_handle_stopped() {
    let lp = Loop::new().unwrap();
    let s = Signal::new(&lp).unwrap();
    for sig in [
        Signum::Kill,
        Signum::Stop,
        Signum::Other(0),
        Signum::Other(-1),
        Signum::Other(34),
        Signum::Other(65),
        Signum::Other(i32::MIN),
    ] {
        let e = s.start(sig, |_, _| unreachable!()).unwrap_err();
        assert_eq!(e.code(), StatusCode::EINVAL, "{sig:?}");
        let e = s.start_oneshot(sig, |_, _| unreachable!()).unwrap_err();
        assert_eq!(e.code(), StatusCode::EINVAL, "{sig:?}");
        assert_eq!(s.signum().unwrap(), None, "{sig:?}");
        assert!(!s.is_active());
    }
    s.start(Signum::User2, |_, _| {}).unwrap();
    assert_eq!(s.signum().unwrap(), Some(Signum::User2));
    finish(&lp);
}

// ---- Poll ----

/// `Poll` on descriptors epoll cannot watch (a regular file, through `std` and
/// through `uv::File`, and a directory): `EPERM`, the value handed back; a
/// second `Poll` of one loop on one descriptor: `EEXIST`. An empty mask stops the
/// handle; a callback that stops, restarts, closes and stops again ends after one
/// call, with the handle closed.
#[test]
fn poll_on_odd_descriptors_and_masks() {
    use std::os::fd::AsRawFd as _;
    let dir = TempDir::new("rest-poll-fds");
    let lp = Loop::new().unwrap();
    let path = dir.join("f");
    let f = std::fs::File::create(&path).unwrap();
    let back = Poll::new(&lp, f).unwrap_err();
    assert_eq!(back.error().code(), StatusCode::EPERM);
    let f = Fs::open_sync(&lp, &path, OpenFlags::RDONLY, 0).unwrap();
    assert_eq!(
        Poll::new(&lp, f).unwrap_err().error().code(),
        StatusCode::EPERM
    );
    let d = std::fs::File::open(dir.path()).unwrap();
    assert_eq!(
        Poll::new(&lp, d).unwrap_err().error().code(),
        StatusCode::EPERM
    );
    assert_eq!(lp.handle_count(), 0);

    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = Rc::new(a);
    let p = Poll::new(&lp, a.clone()).unwrap();
    let again = Poll::new(&lp, a.clone()).unwrap_err();
    assert_eq!(again.error().code(), StatusCode::EEXIST);
    assert_eq!(again.into_value().as_raw_fd(), a.as_raw_fd());
    p.start(PollEvent::READABLE, |_, _, _| unreachable!())
        .unwrap();
    assert!(p.is_active());
    p.start(PollEvent::empty(), |_, _, _| unreachable!())
        .unwrap();
    assert!(!p.is_active());
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c = calls.clone();
    p.start(PollEvent::WRITABLE, move |p, r, events| {
        c.borrow_mut().push((r.map_err(|e| e.code()), events));
        p.stop().unwrap();
        p.start(PollEvent::READABLE, |_, _, _| unreachable!())
            .unwrap();
        p.close();
        p.stop().unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*calls.borrow(), [(Ok(()), PollEvent::WRITABLE)]);
    assert!(p.is_closed());
    // The descriptor is free again for a new handle.
    let p = Poll::new(&lp, a.clone()).unwrap();
    p.close();
    drop(b);
    finish(&lp);
}

// ---- Process and Tty ----

/// A process handle's `kill` with numbers the bindings do not know: `EINVAL`
/// (never a signal to another process or group); a known signal reaches the
/// child; once it exited and was reaped, `ESRCH`; once closed, `ClosedHandle`.
/// The id stays readable after the exit.
#[test]
fn kills_of_a_process_handle_with_odd_signals() {
    let lp = Loop::new().unwrap();
    let exits: Exits = Rc::default();
    let e = exits.clone();
    let p = uv::Process::spawn(
        &lp,
        &uv::ProcessOptions::new("/bin/sh").args(["-c", "exec sleep 1000"]),
        move |_, status, sig| e.borrow_mut().push((status, sig)),
    )
    .unwrap();
    for sig in [
        Signum::Other(0),
        Signum::Other(-1),
        Signum::Other(1000),
        Signum::Other(i32::MAX),
    ] {
        assert_eq!(p.kill(sig).unwrap_err().code(), StatusCode::EINVAL);
    }
    let pid = p.pid().unwrap();
    p.kill(Signum::Kill).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*exits.borrow(), [(0, Some(Signum::Kill))]);
    assert_eq!(
        p.kill(Signum::Terminate).unwrap_err().code(),
        StatusCode::ESRCH
    );
    assert_eq!(p.pid().unwrap(), pid);
    p.close();
    assert_eq!(
        p.kill(Signum::Terminate).unwrap_err().kind(),
        uv::Category::ClosedHandle
    );
    finish(&lp);
}

/// A `Tty` on a pipe (libuv takes one on Unix): its mode and size are `ENOTTY`,
/// an unknown mode `EINVAL`; closed, both answer `ClosedHandle`. On a terminal,
/// every mode in any order (`RawVt` is `Raw` on Unix), then `reset_mode`, which
/// also works once the terminal handle is closed.
#[test]
fn tty_modes_on_a_pipe_and_on_a_terminal() {
    let lp = Loop::new().unwrap();
    let (r, _w) = std::io::pipe().unwrap();
    let t = uv::Tty::new(&lp, std::os::fd::OwnedFd::from(r), true).unwrap();
    assert_eq!(code(t.set_mode(uv::TtyMode::Raw)), StatusCode::ENOTTY);
    assert_eq!(code(t.winsize()), StatusCode::ENOTTY);
    assert_eq!(code(t.set_mode(uv::TtyMode::Other(7))), StatusCode::EINVAL);
    t.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(t.winsize().unwrap_err().kind(), uv::Category::ClosedHandle);
    assert_eq!(
        t.set_mode(uv::TtyMode::Raw).unwrap_err().kind(),
        uv::Category::ClosedHandle
    );
    let (_master, slave) = uv_tests::pty();
    let t = uv::Tty::new(&lp, slave, false).unwrap();
    for mode in [
        uv::TtyMode::Raw,
        uv::TtyMode::Io,
        uv::TtyMode::RawVt,
        uv::TtyMode::Normal,
        uv::TtyMode::Io,
        uv::TtyMode::Io,
    ] {
        t.set_mode(mode).unwrap();
    }
    uv::Tty::reset_mode().unwrap();
    t.close();
    finish(&lp);
    uv::Tty::reset_mode().unwrap();
}

// ---- Loop ----

/// Loop functions from inside a callback: `now`, `update_time`, `configure`,
/// `block_signal(SIGPROF)`, `handles`, `backend_timeout` answer; a nested `run`
/// is `EBUSY`; an option libuv does not know is `ENOSYS`, `BlockSignal` through
/// `configure` and a signal other than `SIGPROF` `EINVAL`.
#[test]
fn loop_functions_from_inside_a_callback() {
    let lp = Rc::new(Loop::new().unwrap());
    let seen = Rc::new(Cell::new(false));
    let (l, s) = (lp.clone(), seen.clone());
    let t = uv::Timer::once(&lp, Duration::ZERO, move |_| {
        let before = l.now().unwrap();
        l.update_time().unwrap();
        assert!(l.now().unwrap() >= before);
        l.configure(uv::LoopOption::MetricsIdleTime).unwrap();
        l.block_signal(Signum::Profile).unwrap();
        assert_eq!(l.handles().len(), 1);
        assert_eq!(l.backend_timeout().unwrap(), Some(Duration::ZERO));
        assert_eq!(code(l.run(RunMode::NoWait)), StatusCode::EBUSY);
        s.set(true);
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(seen.get());
    drop(t);
    assert_eq!(
        code(lp.configure(uv::LoopOption::Other(99))),
        StatusCode::ENOSYS
    );
    assert_eq!(
        code(lp.configure(uv::LoopOption::BlockSignal)),
        StatusCode::EINVAL
    );
    assert_eq!(code(lp.block_signal(Signum::Kill)), StatusCode::EINVAL);
    assert_eq!(code(lp.block_signal(Signum::Other(0))), StatusCode::EINVAL);
    lp.configure(uv::LoopOption::UseIoUringSqpoll).unwrap();
    finish(&lp);
}

// ---- File-system requests ----

/// File-system requests with odd arguments not pinned elsewhere: `readlink` of a
/// file that is no link (`EINVAL`) and of the empty path, `realpath` and
/// `statfs` of the empty path (`ENOENT`); a copy of a file onto itself keeps its
/// bytes, and with `EXCL` is `EEXIST`; `scandir` and `opendir` of a file
/// (`ENOTDIR`); a batch of 0 reads one entry at a time; reads and writes at the
/// largest offset (`EINVAL` from the system where the end would pass it, none
/// read just before it); `ftruncate` to the largest size (`EFBIG`); `chown`
/// keeping both ids.
#[test]
fn file_system_requests_with_odd_arguments() {
    let dir = TempDir::new("rest-fs");
    let lp = Loop::new().unwrap();
    let p = dir.join("f");
    std::fs::write(&p, b"abc").unwrap();
    assert_eq!(code(Fs::readlink_sync(&lp, &p)), StatusCode::EINVAL);
    assert_eq!(code(Fs::readlink_sync(&lp, "")), StatusCode::ENOENT);
    assert_eq!(code(Fs::realpath_sync(&lp, "")), StatusCode::ENOENT);
    assert_eq!(code(Fs::statfs_sync(&lp, "")), StatusCode::ENOENT);
    Fs::copyfile_sync(&lp, &p, &p, uv::CopyFileFlags::empty()).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"abc");
    assert_eq!(
        code(Fs::copyfile_sync(&lp, &p, &p, uv::CopyFileFlags::EXCL)),
        StatusCode::EEXIST
    );
    assert_eq!(code(Fs::scandir_sync(&lp, &p)), StatusCode::ENOTDIR);
    assert_eq!(code(Fs::opendir_sync(&lp, &p)), StatusCode::ENOTDIR);
    std::fs::write(dir.join("g"), b"").unwrap();
    let d = Fs::opendir_sync(&lp, dir.path()).unwrap();
    d.set_batch(0);
    assert_eq!(d.batch(), 1);
    let mut names = Vec::new();
    loop {
        let got = Fs::readdir_sync(&lp, &d).unwrap();
        assert!(got.len() <= 1);
        if got.is_empty() {
            break;
        }
        names.extend(got.into_iter().map(|e| e.name));
    }
    names.sort();
    assert_eq!(names, ["f", "g"]);
    d.close_sync(&lp).unwrap();
    let f = Fs::open_sync(&lp, &p, OpenFlags::RDWR, 0).unwrap();
    let max = i64::MAX as u64;
    assert_eq!(
        code(Fs::read_sync(&lp, &f, Vec::with_capacity(64), Some(max))),
        StatusCode::EINVAL
    );
    let got = Fs::read_sync(&lp, &f, Vec::with_capacity(1), Some(max - 1)).unwrap();
    assert!(got.is_empty());
    assert_eq!(
        code(Fs::write_sync(&lp, &f, "x", Some(max))),
        StatusCode::EINVAL
    );
    assert_eq!(code(Fs::ftruncate_sync(&lp, &f, max)), StatusCode::EFBIG);
    Fs::fchown_sync(&lp, &f, u32::MAX, u32::MAX).unwrap();
    Fs::chown_sync(&lp, &p, u32::MAX, u32::MAX).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"abc");
    f.close_sync(&lp).unwrap();
    finish(&lp);
}
