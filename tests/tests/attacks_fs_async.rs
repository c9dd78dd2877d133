//! Regressions and pinned guarantees from the attacker pass over the file-system
//! requests (`uv::Fs`, `File`, `Dir`), thread-pool work, `uv::system`, processes
//! and the async layer (`uv::future`). Each test says what used to happen, or which
//! guarantee it pins. Counts, values and error codes only; a hang shows as a
//! future that is still pending (or a loop with nothing left to wake it), never as
//! a duration.

#![cfg(unix)]

use std::cell::Cell;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use uv::{Dir, Fs, Loop, OpenFlags, RunMode, StatusCode};
use uv_tests::fs::{put, slot, wait, PoolBlocker};
use uv_tests::net::{fd_identity, TempDir};

/// A descriptor of a fresh socket, as a `File`, with its number and identity.
/// Whether it was closed is then `fd_identity(fd) != Some(id)` (a number reused
/// by another thread names another file; a peer's end-of-stream would not do:
/// a child forked meanwhile by another test holds a copy until it execs).
fn socket_file() -> (uv::File, std::os::fd::RawFd, (u64, u64), UnixStream) {
    use std::os::fd::AsRawFd;
    let (a, b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let id = fd_identity(fd).unwrap();
    (uv::File::from(OwnedFd::from(a)), fd, id, b)
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
    let (file, fd, id, _peer) = socket_file();
    let mut blocker = PoolBlocker::new(&lp);
    let got = slot();
    let req = file.close(&lp, put(&got)).unwrap();
    req.cancel().unwrap();
    blocker.release();
    let r = wait(&lp, &got);
    assert!(r.is_ok(), "{r:?}");
    assert!(!req.is_pending());
    assert_ne!(fd_identity(fd), Some(id), "the descriptor was left open");
}

/// The same through the future layer: a close wrapped in `uv::future::request`
/// whose future is dropped before the pool took it (which cancels it).
/// Used to happen: leak (as above).
#[test]
fn dropping_the_future_of_a_file_close_still_closes_the_descriptor() {
    let lp = Loop::new().unwrap();
    let (file, fd, id, _peer) = socket_file();
    let mut blocker = PoolBlocker::new(&lp);
    let fut = uv::future::request(|done| file.close(&lp, done));
    assert!(fut.request().is_some_and(|r| r.is_pending()));
    drop(fut);
    blocker.release();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(blocker.opened(), blocker.count());
    assert_ne!(fd_identity(fd), Some(id), "the descriptor was left open");
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

// ---- pinned: bad arguments to the file-system requests are errors ----

/// The error code of a result that must be an error.
fn code<T: std::fmt::Debug>(r: uv::Result<T>) -> StatusCode {
    r.unwrap_err().code()
}

/// Bad paths, templates, offsets and sizes, synchronously and on the pool: each
/// is an error code (or a defined result), never a panic, an abort or a hang.
/// Pins the guarantee (passed from the start).
#[test]
fn bad_file_system_arguments_are_errors() {
    use std::os::unix::ffi::OsStrExt;
    let dir = TempDir::new("attack-fs-args");
    let lp = Loop::new().unwrap();
    // A NUL byte, an empty path, a path longer than PATH_MAX.
    assert_eq!(code(Fs::stat_sync(&lp, "a\0b")), StatusCode::EINVAL);
    assert_eq!(code(Fs::stat_sync(&lp, "")), StatusCode::ENOENT);
    let long = dir.join(&"x".repeat(10_000));
    assert_eq!(code(Fs::stat_sync(&lp, &long)), StatusCode::ENAMETOOLONG);
    assert_eq!(
        code(Fs::mkdir_sync(&lp, &long, 0o700)),
        StatusCode::ENAMETOOLONG
    );
    let got = slot();
    Fs::open(&lp, &long, OpenFlags::RDONLY, 0, put(&got)).unwrap();
    assert_eq!(code(wait(&lp, &got)), StatusCode::ENAMETOOLONG);
    assert_eq!(
        code(Fs::rename_sync(&lp, dir.path(), "b\0")),
        StatusCode::EINVAL
    );
    // Templates without the XXXXXX suffix.
    for t in ["", "no-x", "XXXXX", "XXXXXXa"] {
        let t = dir.join(t);
        assert_eq!(code(Fs::mkdtemp_sync(&lp, &t)), StatusCode::EINVAL, "{t:?}");
        assert_eq!(code(Fs::mkstemp_sync(&lp, &t)), StatusCode::EINVAL, "{t:?}");
        let got = slot();
        Fs::mkstemp(&lp, &t, put(&got)).unwrap();
        assert_eq!(code(wait(&lp, &got)), StatusCode::EINVAL);
    }
    // A name that is not UTF-8 goes through unchanged.
    let raw = std::ffi::OsStr::from_bytes(b"\xff\xfe-XXXXXX");
    let made = Fs::mkdtemp_sync(&lp, dir.path().join(raw)).unwrap();
    assert!(made
        .file_name()
        .unwrap()
        .as_bytes()
        .starts_with(b"\xff\xfe-"));
    let names = Fs::scandir_sync(&lp, dir.path()).unwrap();
    assert_eq!(names.len(), 1);
    assert_eq!(names[0].name, made.file_name().unwrap());
    assert_eq!(Fs::realpath_sync(&lp, &made).unwrap(), made);
    // Offsets and sizes.
    let p = dir.join("f");
    let f = Fs::open_sync(&lp, &p, OpenFlags::CREAT | OpenFlags::RDWR, 0o600).unwrap();
    assert_eq!(
        code(Fs::read_sync(
            &lp,
            &f,
            Vec::with_capacity(4),
            Some(u64::MAX)
        )),
        StatusCode::EINVAL
    );
    assert_eq!(
        code(Fs::write_sync(&lp, &f, "x", Some(1 << 63))),
        StatusCode::EINVAL
    );
    assert_eq!(
        code(Fs::ftruncate_sync(&lp, &f, u64::MAX)),
        StatusCode::EINVAL
    );
    assert_eq!(
        code(Fs::write_sync(
            &lp,
            &f,
            uv::WriteData::Many(Vec::new()),
            None
        )),
        StatusCode::EINVAL
    );
    // No spare capacity: nothing read, nothing lost.
    assert_eq!(Fs::write_sync(&lp, &f, "abc", Some(0)).unwrap(), 3);
    let mut v = Vec::with_capacity(2);
    v.extend_from_slice(b"zz");
    assert_eq!(Fs::read_sync(&lp, &f, v, Some(0)).unwrap(), b"zz");
    assert_eq!(Fs::read_sync(&lp, &f, Vec::new(), Some(0)).unwrap(), b"");
    // sendfile from a negative offset, and of a huge length.
    let out = Fs::open_sync(
        &lp,
        dir.join("out"),
        OpenFlags::CREAT | OpenFlags::RDWR,
        0o600,
    )
    .unwrap();
    assert!(Fs::sendfile_sync(&lp, &out, &f, u64::MAX, 3).is_err());
    assert_eq!(
        code(Fs::sendfile_sync(&lp, &out, &f, 0, usize::MAX)),
        StatusCode::EINVAL
    );
    assert_eq!(Fs::sendfile_sync(&lp, &out, &f, 0, 1 << 30).unwrap(), 3);
    assert_eq!(std::fs::read(dir.join("out")).unwrap(), b"abc");
    // A read and a write of a directory descriptor.
    let d = Fs::open_sync(&lp, dir.path(), OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).unwrap();
    assert_eq!(
        code(Fs::read_sync(&lp, &d, Vec::with_capacity(8), None)),
        StatusCode::EISDIR
    );
    assert_eq!(code(Fs::write_sync(&lp, &d, "x", None)), StatusCode::EBADF);
    for f in [f, out, d] {
        f.close_sync(&lp).unwrap();
    }
}

// ---- pinned: the async layer under drops and foreign threads ----

/// Ten thousand stat futures on the pool, every other one dropped before it
/// completes: the kept ones all resolve, the dropped ones' callbacks still run
/// (nothing pending afterwards), and the loop ends with nothing alive.
/// Pins the guarantee (passed from the start).
#[test]
fn ten_thousand_requests_with_half_dropped_early() {
    let dir = TempDir::new("attack-10k");
    let lp = Loop::new().unwrap();
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for i in 0..10_000 {
        let fut = Fs::stat_async(&lp, dir.path());
        let req = fut.request().unwrap().clone();
        if i % 2 == 0 {
            kept.push(fut);
        } else {
            dropped.push(req);
            drop(fut);
        }
    }
    let results = lp.block_on(futures::future::join_all(kept)).unwrap();
    assert_eq!(results.len(), 5_000);
    assert!(results.iter().all(|r| r.as_ref().unwrap().is_dir()));
    lp.run(RunMode::Default).unwrap();
    assert!(dropped.iter().all(|r| !r.is_pending()));
    assert!(!lp.alive());
}

/// Wakers of a task kept by other threads: woken while the loop lives they
/// reach the task; woken after the loop is gone they do nothing.
/// Pins the guarantee (passed from the start).
#[test]
fn wakers_used_from_other_threads_before_and_after_the_loop() {
    use std::sync::{Arc, Mutex};
    let lp = Loop::new().unwrap();
    let stash: Arc<Mutex<Option<std::task::Waker>>> = Arc::default();
    let polls = Rc::new(Cell::new(0));
    let (s, p) = (stash.clone(), polls.clone());
    let task = lp
        .spawn_local(std::future::poll_fn(move |cx| {
            p.set(p.get() + 1);
            *s.lock().unwrap() = Some(cx.waker().clone());
            if p.get() == 2 {
                std::task::Poll::Ready(7)
            } else {
                std::task::Poll::Pending
            }
        }))
        .unwrap();
    // The task's first poll; then a wake from another thread, which block_on
    // takes (it waits for wakes from afar).
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(polls.get(), 1);
    let w = stash.lock().unwrap().take().unwrap();
    std::thread::spawn(move || w.wake()).join().unwrap();
    assert_eq!(lp.block_on(task).unwrap(), Ok(7));
    assert_eq!(polls.get(), 2);
    // A second task whose waker outlives the loop.
    let s = stash.clone();
    let _pending = lp
        .spawn_local(std::future::poll_fn(move |cx| {
            *s.lock().unwrap() = Some(cx.waker().clone());
            std::task::Poll::<()>::Pending
        }))
        .unwrap();
    lp.run(RunMode::NoWait).unwrap();
    let w = stash.lock().unwrap().take().unwrap();
    drop(lp);
    let w2 = w.clone();
    std::thread::spawn(move || {
        w2.wake_by_ref();
        w2.wake();
    })
    .join()
    .unwrap();
    w.wake();
}

/// A task that aborts itself (and drops its own handle), one aborted from another
/// task, a task spawned from a task: each ends as documented, and the loop runs
/// on.
/// Pins the guarantee (passed from the start).
#[test]
fn join_handles_aborted_and_dropped_from_inside_tasks() {
    let lp = Loop::new().unwrap();
    let me: Rc<std::cell::RefCell<Option<uv::future::JoinHandle<()>>>> = Rc::default();
    let m = me.clone();
    let after_abort = Rc::new(Cell::new(false));
    let a = after_abort.clone();
    let h = lp.handle();
    let selfish = lp
        .spawn_local(async move {
            let own = m.borrow_mut().take().unwrap();
            own.abort();
            drop(own);
            // Aborted during its own poll: dropped after this poll, never resumed.
            uv::future::sleep(&h, Duration::ZERO).await.unwrap();
            a.set(true);
        })
        .unwrap();
    *me.borrow_mut() = Some(selfish);
    let h = lp.handle();
    let victim = lp
        .spawn_local(async move { uv::future::sleep(&h, Duration::from_secs(3600)).await })
        .unwrap();
    let lp_h = lp.handle();
    let refused = Rc::new(Cell::new(None));
    let r = refused.clone();
    let killer = lp
        .spawn_local(async move {
            victim.abort();
            let got = victim.await;
            // Spawning from inside a task works.
            let inner = lp_h.spawn_local(async { 1 }).unwrap();
            r.set(Some(inner.await));
            got
        })
        .unwrap();
    // The killer finished; what it awaited, the victim's handle, was cancelled.
    assert_eq!(
        lp.block_on(killer).unwrap(),
        Ok(Err(uv::future::JoinError::Cancelled))
    );
    assert_eq!(refused.get(), Some(Ok(1)));
    lp.run(RunMode::Default).unwrap();
    assert!(!after_abort.get());
    assert!(me.borrow().is_none());
    assert!(!lp.alive());
}

/// `block_on` whose future panics: the panic comes out of `block_on`, and the
/// next `block_on` on the same loop works (the executor left no state behind).
/// Pins the guarantee (passed from the start).
#[test]
fn block_on_after_a_panicking_future_works() {
    let lp = Loop::new().unwrap();
    let h = lp.handle();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lp.block_on(async {
            uv::future::sleep(&h, Duration::ZERO).await.unwrap();
            std::panic::panic_any("in block_on");
        })
    }));
    assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"in block_on"));
    let dir = std::env::temp_dir();
    let st = lp.block_on(Fs::stat_async(&lp, &dir)).unwrap().unwrap();
    assert!(st.is_dir());
    // And from a nested block_on: refused, not a deadlock.
    let nested = lp.block_on(async { lp.block_on(async { 1 }) }).unwrap();
    assert_eq!(nested.unwrap_err().code(), StatusCode::EBUSY);
    assert!(!lp.run(RunMode::Default).unwrap());
}

// ---- f08: after_fork without a fork, while other threads use the loop ----

/// `after_fork` in the process that made the loop while other threads may wake
/// it (an `AsyncSender`, a thread-pool request in flight, the executor's
/// wake-ups), and with none of them: `EINVAL` (only a forked child may call it).
/// Used to happen: libuv closed and replaced the descriptor those threads write
/// their wake-ups to and reset their in-progress counters under them (a wake-up
/// written into whatever file took the descriptor's number; a counter that went
/// negative made the async handle's close spin forever). Races, so the test pins
/// the refusal.
#[test]
fn after_fork_without_a_fork_is_refused_while_other_threads_reach_the_loop() {
    // Refused in the process that made the loop whatever reaches it: nothing but a
    // forked child may re-create the loop's kernel state.
    let lp = Loop::new().unwrap();
    let einval = |lp: &Loop| lp.after_fork().unwrap_err().code();
    assert_eq!(einval(&lp), StatusCode::EINVAL);
    let a = uv::Async::new(&lp, |_| {}).unwrap();
    let sender = a.sender().unwrap();
    let t = std::thread::spawn(move || sender.send().unwrap());
    assert_eq!(einval(&lp), StatusCode::EINVAL);
    t.join().unwrap();
    a.close();
    lp.run(RunMode::Default).unwrap();
    let got = slot();
    Fs::stat(&lp, std::env::temp_dir(), put(&got)).unwrap();
    assert_eq!(einval(&lp), StatusCode::EINVAL);
    assert!(wait(&lp, &got).unwrap().is_dir());
    // The executor's wake-up handle lives as long as the loop.
    assert_eq!(lp.block_on(async { 3 }).unwrap(), 3);
    assert_eq!(einval(&lp), StatusCode::EINVAL);
}

/// `Loop::close` called from the future of `block_on` (the loop is not running
/// between polls, so the close is allowed): the close tears the loop down in
/// place, the future's later requests answer `ClosedLoop`, and `block_on`
/// returns (its own next iteration answers `ClosedLoop`) instead of hanging.
/// Pins the guarantee (passed from the start).
#[test]
fn closing_the_loop_from_the_future_of_block_on() {
    let lp = Loop::new().unwrap();
    let h = lp.handle();
    let v = lp
        .block_on(async {
            lp.close().unwrap();
            Fs::stat_async(&h, std::env::temp_dir()).await
        })
        .unwrap();
    assert_eq!(v.unwrap_err().kind(), uv::Category::ClosedLoop);
    assert!(lp.is_closed());

    let lp = Loop::new().unwrap();
    let h = lp.handle();
    let task = lp.spawn_local(async { 5 }).unwrap();
    let r = lp.block_on(async {
        lp.close().unwrap();
        // Never woken: the loop is gone.
        uv::future::sleep(&h, Duration::from_secs(3600))
            .await
            .unwrap_err();
        std::future::pending::<()>().await
    });
    assert_eq!(r.unwrap_err().kind(), uv::Category::ClosedLoop);
    // The spawned task was dropped with the loop.
    assert_eq!(
        lp.block_on(task).unwrap_err().kind(),
        uv::Category::ClosedLoop
    );
}

/// The bytes of a write whose owner panics when dropped.
struct PanickyOwner(Vec<u8>);

impl AsRef<[u8]> for PanickyOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for PanickyOwner {
    fn drop(&mut self) {
        std::panic::panic_any("owner");
    }
}

/// An asynchronous file write whose data (a `Bytes` over an owner whose Drop
/// panics) is dropped when the write completes: the bytes are written, the
/// callback still gets the count, and `run` resumes the owner's panic; the loop
/// stays usable.
/// Pins the guarantee (passed from the start).
#[test]
fn a_write_whose_data_panics_on_drop_still_reports_its_count() {
    let dir = TempDir::new("attack-write-owner");
    let lp = Loop::new().unwrap();
    let p = dir.join("f");
    let f = Fs::open_sync(&lp, &p, OpenFlags::CREAT | OpenFlags::RDWR, 0o600).unwrap();
    let data = bytes::Bytes::from_owner(PanickyOwner(b"hello".to_vec()));
    let got = slot();
    Fs::write(&lp, &f, data, Some(0), put(&got)).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run(RunMode::Default)));
    assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"owner"));
    assert_eq!(got.borrow_mut().take().unwrap().unwrap(), 5);
    assert!(!f.is_busy());
    assert_eq!(std::fs::read(&p).unwrap(), b"hello");
    f.close_sync(&lp).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
}

// ---- f09: a read future over a stream that is closed elsewhere ----

/// A `Pipe` over one end of a socket pair, and a timer that closes a clone of it
/// shortly after the loop starts.
fn pipe_closed_soon(lp: &Loop) -> (uv::Pipe, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    let p = uv::Pipe::new(lp, false).unwrap();
    p.open(a).unwrap();
    let p2 = p.clone();
    uv::Timer::once(lp, Duration::from_millis(1), move |_| p2.close()).unwrap();
    (p, b)
}

/// An `AsyncStream` read pending when its handle is closed through another
/// value: the read ends (an error or the end of the stream) instead of waiting.
/// Used to happen: hang (libuv calls no read callback on close; the wrapper's read
/// callback, which holds the waker, was dropped unrun, so nothing woke the task:
/// `block_on` waited forever; here the deadline fires instead). The read
/// callback's share of the state now wakes the reader as it is dropped.
#[test]
fn an_async_stream_read_ends_when_its_handle_is_closed_elsewhere() {
    use futures::AsyncReadExt;
    let lp = Loop::new().unwrap();
    let (p, _peer) = pipe_closed_soon(&lp);
    let mut s = uv::future::AsyncStream::new(p);
    let r = lp
        .block_on(uv::future::timeout(
            &lp,
            Duration::from_secs(30),
            async move {
                let mut buf = [0u8; 8];
                s.read(&mut buf).await
            },
        ))
        .unwrap()
        .expect("the read ended before the deadline");
    assert!(!matches!(r, Ok(n) if n > 0), "{r:?}");
}

/// The same for `read_chunks`: the stream ends (or yields an error).
/// Used to happen: hang, as above (same root cause, same fix).
#[test]
fn read_chunks_ends_when_its_handle_is_closed_elsewhere() {
    use futures::StreamExt;
    let lp = Loop::new().unwrap();
    let (p, _peer) = pipe_closed_soon(&lp);
    let mut s = uv::future::read_chunks(p);
    let r = lp
        .block_on(uv::future::timeout(
            &lp,
            Duration::from_secs(30),
            async move { s.next().await },
        ))
        .unwrap()
        .expect("the stream ended before the deadline");
    assert!(!matches!(r, Some(Ok(_))), "{r:?}");
}

// ---- f10: event streams whose handle is closed elsewhere ----

/// Runs `fut` under `block_on` with a deadline (only so that the old behaviour
/// fails instead of hanging) and gives its output.
fn before_deadline<F: std::future::Future>(lp: &Loop, fut: F) -> F::Output {
    lp.block_on(uv::future::timeout(lp, Duration::from_secs(30), fut))
        .unwrap()
        .expect("resolved before the deadline")
}

/// `signals`, `fs_poll`, `recv_from` and `incoming` pending when their handle is
/// closed through another value (`close_all_handles`, a clone): each stream ends
/// (`None`).
/// Used to happen: hang (the handle dropped its callback, which held the waker,
/// without calling it: the task was never woken; `block_on` waited forever).
#[test]
fn event_streams_end_when_their_handle_is_closed_elsewhere() {
    use futures::StreamExt;
    let lp = Loop::new().unwrap();
    let close_all_soon = |lp: &Loop| {
        let h = lp.handle();
        // Created after the stream's handle: closes it, then itself.
        uv::Timer::once(lp, Duration::from_millis(1), move |_| h.close_all_handles()).unwrap();
    };

    let mut sig = uv::future::signals(&lp, uv::Signum::User2).unwrap();
    close_all_soon(&lp);
    assert_eq!(before_deadline(&lp, sig.recv()), None);
    assert!(before_deadline(&lp, sig.next()).is_none());

    let dir = TempDir::new("attack-fs-poll-close");
    let mut polls = uv::future::fs_poll(&lp, dir.path(), Duration::from_secs(3600)).unwrap();
    close_all_soon(&lp);
    assert!(before_deadline(&lp, polls.next()).is_none());

    let udp = uv::Udp::new(&lp).unwrap();
    udp.bind("127.0.0.1:0".parse().unwrap(), uv::UdpFlags::empty())
        .unwrap();
    let mut dgrams = uv::future::recv_from(&udp);
    let u = udp.clone();
    uv::Timer::once(&lp, Duration::from_millis(1), move |_| u.close()).unwrap();
    assert!(before_deadline(&lp, dgrams.next()).is_none());

    let server = uv::Tcp::new(&lp).unwrap();
    server
        .bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    let s = server.clone();
    let mut conns = uv::future::incoming(server, 8).unwrap();
    uv::Timer::once(&lp, Duration::from_millis(1), move |_| s.close()).unwrap();
    assert!(before_deadline(&lp, conns.next()).is_none());
    drop((sig, polls, dgrams, conns, udp));
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
}

// `sleep`, `timeout` and `interval` pending while their timers are closed through
// other values: those timers are the library's own now, out of reach of
// `handles()` and `close_all_handles` (`async_executor.rs`,
// `future_timers_are_out_of_reach_of_close_all_handles`); their end when the loop
// goes is in `async_closed.rs`.

// ---- pinned: bad process options are errors, and no child is left behind ----

/// A child descriptor inherited from a parent descriptor that is not open, a
/// program that does not exist, a missing working directory, an empty program,
/// and `uid`/`gid` of `u32::MAX`: each spawn fails with an error code and leaves
/// no handle (and so no child) behind. Pins the guarantee (passed from the start).
#[test]
fn bad_process_options_fail_cleanly() {
    let lp = Loop::new().unwrap();
    let spawn = |o: &uv::ProcessOptions<'_>| {
        uv::Process::spawn(&lp, o, |_, _, _| panic!("no child")).map(drop)
    };
    let sh = || uv::ProcessOptions::new("/bin/sh").args(["-c", "exit 0"]);
    // A descriptor number far above anything open in this process.
    let e = spawn(&sh().stdio(900, uv::Stdio::Inherit)).unwrap_err();
    assert_eq!(e.code(), StatusCode::EBADF, "{e:?}");
    let e = spawn(&uv::ProcessOptions::new("/nonexistent/program")).unwrap_err();
    assert_eq!(e.code(), StatusCode::ENOENT);
    // An empty program: execvp tries it in every PATH directory.
    let e = spawn(&uv::ProcessOptions::new("")).unwrap_err();
    assert!(
        [StatusCode::ENOENT, StatusCode::EACCES].contains(&e.code()),
        "{e:?}"
    );
    let e = spawn(&sh().cwd("/nonexistent/dir")).unwrap_err();
    assert_eq!(e.code(), StatusCode::ENOENT);
    let e = spawn(&sh().env("A\0B", "x")).unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    let e = spawn(&sh().arg("a\0b")).unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    let e = spawn(&sh().uid(u32::MAX)).unwrap_err();
    assert!(
        [StatusCode::EINVAL, StatusCode::EPERM].contains(&e.code()),
        "{e:?}"
    );
    let e = spawn(&sh().gid(u32::MAX)).unwrap_err();
    assert!(
        [StatusCode::EINVAL, StatusCode::EPERM].contains(&e.code()),
        "{e:?}"
    );
    // uv::kill never reaches a process group or every process.
    for pid in [0, -1, -2, i32::MIN] {
        let e = uv::kill(pid, uv::Signum::Terminate).unwrap_err();
        assert_eq!(e.code(), StatusCode::EINVAL);
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
}
