//! Regressions and pinned guarantees from the attacker pass over the file-system
//! requests (`uv::Fs`, `File`, `Dir`), thread-pool work, `uv::system`, processes
//! and the async layer (`uv::future`). Each test says what used to happen, or which
//! guarantee it pins. Counts, values and error codes only; a hang shows as a
//! future that is still pending (or a loop with nothing left to wake it), never as
//! a duration.

#![cfg(unix)]

use std::cell::Cell;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use uv::{Dir, Fs, Loop, OpenFlags, RunMode, StatusCode};
use uv_tests::fs::{put, slot, wait, PoolBlocker};
use uv_tests::net::TempDir;

/// Whether the peer of `b` is closed: a non-blocking read sees the end of the
/// stream (`Ok(0)`) instead of `WouldBlock`.
fn peer_closed(b: &mut UnixStream) -> bool {
    b.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    match b.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => panic!("nothing was written"),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("{e}"),
    }
}

/// How many descriptors of this process are open on `path` (Linux: the links
/// of `/proc/self/fd`). A unique path makes the count independent of other tests.
#[cfg(target_os = "linux")]
fn fds_on(path: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l == path)
        .count()
}

// ---- f01: a cancelled close ----

/// `File::close` whose request is cancelled while queued (the pool is busy)
/// still closes the descriptor; the callback gets the close's result.
/// Used to happen: leak (the descriptor stayed open for good: the File was
/// consumed, and libuv dropped the queued close, so nothing ever closed it).
#[test]
fn a_cancelled_file_close_still_closes_the_descriptor() {
    let lp = Loop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let file = uv::File::from(OwnedFd::from(a));
    let mut blocker = PoolBlocker::new(&lp);
    let got = slot();
    let req = file.close(&lp, put(&got)).unwrap();
    req.cancel().unwrap();
    blocker.release();
    let r = wait(&lp, &got);
    assert!(r.is_ok(), "{r:?}");
    assert!(!req.is_pending());
    assert!(peer_closed(&mut b), "the descriptor was left open");
}

/// The same through the future layer: a close wrapped in `uv::future::request`
/// whose future is dropped before the pool took it (which cancels it).
/// Used to happen: leak (as above).
#[test]
fn dropping_the_future_of_a_file_close_still_closes_the_descriptor() {
    let lp = Loop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let file = uv::File::from(OwnedFd::from(a));
    let mut blocker = PoolBlocker::new(&lp);
    let fut = uv::future::request(|done| file.close(&lp, done));
    assert!(fut.request().is_some_and(|r| r.is_pending()));
    drop(fut);
    blocker.release();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(blocker.opened(), blocker.count());
    assert!(peer_closed(&mut b), "the descriptor was left open");
}

/// `Dir::close` cancelled while queued still closes the stream (and frees
/// libuv's `uv_dir_t`, which valgrind checks).
/// Used to happen: leak (the directory's descriptor and libuv's stream).
#[cfg(target_os = "linux")]
#[test]
fn a_cancelled_dir_close_still_closes_the_stream() {
    let dir = TempDir::new("attack-dir-close");
    let lp = Loop::new().unwrap();
    let d: Dir = Fs::opendir_sync(&lp, dir.path()).unwrap();
    assert_eq!(fds_on(dir.path()), 1);
    let mut blocker = PoolBlocker::new(&lp);
    let got = slot();
    let req = d.close(&lp, put(&got)).unwrap();
    req.cancel().unwrap();
    blocker.release();
    let r = wait(&lp, &got);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(fds_on(dir.path()), 0, "the directory stream was left open");
}

// ---- f02: a huge directory batch ----

/// `Dir::set_batch(usize::MAX)` and a read: the batch is capped, the read gives
/// every entry.
/// Used to happen: panic inside the library ("capacity overflow" allocating the
/// entry array; a merely huge batch such as 2^40 aborted the process on the failed
/// allocation).
#[test]
fn a_huge_directory_batch_is_capped_not_allocated() {
    let dir = TempDir::new("attack-dir-batch");
    for i in 0..3 {
        std::fs::write(dir.join(&format!("f{i}")), b"").unwrap();
    }
    let lp = Loop::new().unwrap();
    let d = Fs::opendir_sync(&lp, dir.path()).unwrap();
    d.set_batch(usize::MAX);
    assert_eq!(d.batch(), uv::DIR_BATCH_MAX);
    assert_eq!(Fs::readdir_sync(&lp, &d).unwrap().len(), 3);
    assert!(Fs::readdir_sync(&lp, &d).unwrap().is_empty());
    d.set_batch(1 << 40);
    assert_eq!(d.batch(), uv::DIR_BATCH_MAX);
    let got = slot();
    Fs::readdir(&lp, &d, put(&got)).unwrap();
    assert!(wait(&lp, &got).unwrap().is_empty());
    d.set_batch(0);
    assert_eq!(d.batch(), 1);
    d.close_sync(&lp).unwrap();
}

// ---- f03: a child descriptor number far out of range ----

/// A stdio slot for child descriptor `usize::MAX` (or 2^40): `spawn` answers
/// `EINVAL`, no child starts, and building the options allocates nothing for
/// the slots below it.
/// Used to happen: abort (the builder filled every slot below it with `Ignore`:
/// out of memory, or "capacity overflow").
#[test]
fn a_stdio_slot_far_out_of_range_is_einval() {
    let lp = Loop::new().unwrap();
    for fd in [usize::MAX, 1 << 40, uv::STDIO_MAX] {
        let opts = uv::ProcessOptions::new("/bin/sh")
            .args(["-c", "exit 0"])
            .stdio(fd, uv::Stdio::Inherit);
        let e = uv::Process::spawn(&lp, &opts, |_, _, _| panic!("no child")).unwrap_err();
        assert_eq!(e.code(), StatusCode::EINVAL, "{fd}: {e:?}");
    }
    // The last slot below the limit is still a slot.
    let exits = Rc::new(Cell::new(0));
    let x = exits.clone();
    let opts = uv::ProcessOptions::new("/bin/sh")
        .args(["-c", "exit 7"])
        .stdio(64, uv::Stdio::Ignore);
    uv::Process::spawn(&lp, &opts, move |p, status, _| {
        assert_eq!(status, 7);
        x.set(x.get() + 1);
        p.close();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(exits.get(), 1);
    assert_eq!(lp.handle_count(), 0);
}

// ---- f04: file times past what libuv's `double` seconds can hold ----

/// The latest `SystemTime` (2^63 - 1 seconds after 1970) given to `futime` and
/// `utime`: accepted, and the file system stores its own latest time (far in the
/// future); the earliest one likewise.
/// Used to happen: undefined behaviour in libuv (its `double` seconds, rounded up
/// to 2^63, converted to a 64-bit `time_t`); on x86-64 the conversion gave the
/// earliest time and a garbage nanosecond field: `EINVAL`.
#[test]
fn file_times_at_the_ends_of_system_time_are_defined() {
    let dir = TempDir::new("attack-futime");
    let lp = Loop::new().unwrap();
    let p = dir.join("f");
    let f = Fs::open_sync(&lp, &p, OpenFlags::CREAT | OpenFlags::RDWR, 0o600).unwrap();
    let latest = SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64);
    Fs::futime_sync(&lp, &f, latest, latest).unwrap();
    let st = Fs::fstat_sync(&lp, &f).unwrap();
    // Every file system stores at least year 2038; many cap at 2446 or later.
    assert!(st.modified.sec >= i64::from(i32::MAX), "{:?}", st.modified);
    assert!(st.accessed.sec >= i64::from(i32::MAX), "{:?}", st.accessed);
    let got = slot();
    Fs::utime(&lp, &p, latest, latest, put(&got)).unwrap();
    wait(&lp, &got).unwrap();
    assert!(Fs::stat_sync(&lp, &p).unwrap().modified.sec >= i64::from(i32::MAX));
    let earliest = SystemTime::UNIX_EPOCH - Duration::from_secs(i64::MAX as u64);
    Fs::futime_sync(&lp, &f, earliest, earliest).unwrap();
    assert!(Fs::fstat_sync(&lp, &f).unwrap().modified.sec <= i64::from(i32::MIN));
    // A time before 1970 (exact in a double) is kept as given.
    let early = SystemTime::UNIX_EPOCH - Duration::from_secs(86_400);
    Fs::futime_sync(&lp, &f, early, early).unwrap();
    let st = Fs::fstat_sync(&lp, &f).unwrap();
    assert_eq!(
        st.modified,
        uv::Timespec {
            sec: -86_400,
            nsec: 0
        }
    );
    f.close_sync(&lp).unwrap();
}

// ---- f05: an interval shorter than the loop's clock ----

/// `interval` with a period under a millisecond (the loop's clock unit) ticks
/// again and again; a zero period is `EINVAL`.
/// Used to happen: hang (the period became a 0 ms repeat, which libuv reads as
/// "no repeat": one tick, then the stream never yielded again; under `block_on`
/// the loop waited forever).
#[test]
fn an_interval_shorter_than_a_millisecond_keeps_ticking() {
    use futures::StreamExt;
    let lp = Loop::new().unwrap();
    let e = uv::future::interval(&lp, Duration::ZERO).unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    let ticks = Rc::new(Cell::new(0u64));
    let t = ticks.clone();
    let mut iv = uv::future::interval(&lp, Duration::from_micros(500)).unwrap();
    let task = lp
        .spawn_local(async move {
            while t.get() < 3 {
                let n = iv.next().await.unwrap();
                assert!(n >= 1);
                t.set(t.get() + 1);
            }
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(ticks.get(), 3);
    assert!(task.is_finished());
}

// ---- f06: the exit future of a closed process ----

/// `uv::future::spawn`, then the process handle closed before the child exits:
/// the `Exit` future resolves to `ClosedHandle` (the exit callback will never
/// run). A child left running is killed and reaped by std afterwards.
/// Used to happen: hang (the future never resolved; `block_on(exit)` waited
/// forever, since the loop keeps waiting for wakes while `block_on` runs).
#[test]
fn the_exit_future_of_a_closed_process_resolves() {
    let lp = Loop::new().unwrap();
    let opts = uv::ProcessOptions::new("/bin/sh").args(["-c", "read x"]);
    let (stdin_r, stdin_w) = UnixStream::pair().unwrap();
    let opts = opts.stdin(uv::Stdio::fd(stdin_r));
    let (p, exit) = uv::future::spawn(&lp, &opts).unwrap();
    let pid = p.pid().unwrap();
    p.close();
    // A deadline only so that the old behaviour fails instead of hanging.
    let r = lp
        .block_on(uv::future::timeout(&lp, Duration::from_secs(30), exit))
        .unwrap()
        .expect("resolved before the deadline");
    assert_eq!(r.unwrap_err().kind(), uv::Category::ClosedHandle);
    // The child still runs (closing does not kill it); end it and reap it here.
    drop(stdin_w);
    let mut status = 0;
    // SAFETY: waits for our own child, whose handle libuv no longer watches.
    let w = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(w, pid);
}

/// The normal case: the exit future gives the status.
#[test]
fn the_exit_future_gives_the_status() {
    let lp = Loop::new().unwrap();
    let opts = uv::ProcessOptions::new("/bin/sh").args(["-c", "exit 5"]);
    let (p, exit) = uv::future::spawn(&lp, &opts).unwrap();
    assert_eq!(lp.block_on(exit).unwrap().unwrap(), (5, None));
    drop(p);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
}

// ---- f07: a refused request whose callback's Drop panics ----

/// A value whose Drop panics with a `&str` payload naming it.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        std::panic::panic_any(self.0);
    }
}

/// A request libuv refuses at once (a write of no buffers: `EINVAL`; random
/// bytes with flags: `EINVAL`), whose callback holds a value that panics when
/// dropped: the panic reaches the caller, and the request's memory goes back
/// (checked by valgrind: `bash tests/valgrind.sh attacks_fs_async`).
/// Used to happen: leak (the panic skipped the return of the request's memory to
/// the loop's allocator, which then never freed itself: definitely lost).
#[test]
fn a_refused_request_whose_callback_panics_on_drop_frees_its_memory() {
    let dir = TempDir::new("attack-refused");
    let lp = Loop::new().unwrap();
    let f = Fs::open_sync(
        &lp,
        dir.join("f"),
        OpenFlags::CREAT | OpenFlags::RDWR,
        0o600,
    )
    .unwrap();
    let boom = PanicOnDrop("write");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Fs::write(&lp, &f, uv::WriteData::Many(Vec::new()), None, move |_| {
            let _keep = &boom;
        })
    }));
    assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"write"));
    assert!(!f.is_busy());
    let boom = PanicOnDrop("random");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lp.random(vec![0; 4], 1, move |_| {
            let _keep = &boom;
        })
    }));
    assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"random"));
    // The loop is unharmed.
    assert_eq!(Fs::write_sync(&lp, &f, "ok", Some(0)).unwrap(), 2);
    f.close_sync(&lp).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
}
