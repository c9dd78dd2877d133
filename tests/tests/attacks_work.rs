//! Pinned guarantees from the attacker pass over `queue_work`'s own request path
//! (uv/src/work.rs), the in-place drop of a loop request's data
//! (uv/src/loop_request.rs) and spawn's single buffer of C strings
//! (uv/src/handles/process.rs). Each test says which guarantee it pins; values,
//! counts, orders and error codes only.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use uv::{Loop, Pipe, Process, ProcessOptions, RunMode, StatusCode, Stdio};
use uv_tests::pool::{pool_lock, saturate, JobGate};
use uv_tests::provoke::run_collecting_with;

// ---- helpers ----

/// Panics with its message when dropped.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        std::panic::panic_any(self.0);
    }
}

/// Counts its drops.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Logs "dropped" when dropped.
struct LogOnDrop(Arc<Mutex<Vec<String>>>);

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        self.0.lock().unwrap().push("job dropped".into());
    }
}

// ---- queue_work ----

/// A cancelled job whose captured value panics when dropped: the job is dropped on
/// the loop thread first, its panic goes where a callback's goes (`run` resumes
/// it), and `after` is still called, with `ECANCELED`, after the drop.
/// Pins the guarantee (cancelled path of `after_cb`: `cancelled` guards the drop
/// and the call separately).
#[test]
fn a_cancelled_job_whose_capture_panics_on_drop_still_gets_ecanceled() {
    let _pool = pool_lock();
    let lp = Loop::new().unwrap();
    let sat = saturate(&lp);
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let loop_thread = std::thread::current().id();
    let dropped_on = Arc::new(Mutex::new(None));
    /// Records the thread it is dropped on, then its fields go: the panic first,
    /// the log entry while that panic unwinds.
    struct Both {
        _boom: PanicOnDrop,
        _log: LogOnDrop,
        thread: Arc<Mutex<Option<std::thread::ThreadId>>>,
    }
    impl Drop for Both {
        fn drop(&mut self) {
            *self.thread.lock().unwrap() = Some(std::thread::current().id());
        }
    }
    let job = Both {
        _boom: PanicOnDrop("job capture"),
        _log: LogOnDrop(log.clone()),
        thread: dropped_on.clone(),
    };
    let l = log.clone();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let req = lp
        .queue_work(
            move || {
                let _keep = &job;
                r.fetch_add(1, Ordering::SeqCst);
            },
            move |res| {
                l.lock()
                    .unwrap()
                    .push(format!("after {:?}", res.map_err(|e| e.code())));
            },
        )
        .unwrap();
    req.cancel().unwrap();
    sat.release.wait();
    let panics = run_collecting_with(&lp, |p| {
        uv_tests::panic_text(p).unwrap_or_default().to_string()
    });
    assert_eq!(panics, ["job capture"]);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(
        *log.lock().unwrap(),
        ["job dropped", "after Err(ECANCELED)"],
        "the job goes first, then after gets ECANCELED"
    );
    assert_eq!(*dropped_on.lock().unwrap(), Some(loop_thread));
    assert!(!req.is_pending());
}

/// A job that returns normally but whose captured value panics when dropped (at
/// the end of the job, on the pool thread): the panic is caught on the pool thread
/// (no abort), resurfaces from `run`, and `after` is dropped uncalled.
/// Pins the guarantee (`work_cb`'s catch_unwind covers the closure's captures).
#[test]
fn a_job_whose_capture_panics_on_drop_after_it_ran_is_a_job_panic() {
    let lp = Loop::new().unwrap();
    let called = Rc::new(Cell::new(false));
    let after_drops = Arc::new(AtomicUsize::new(0));
    let guard = DropCount(after_drops.clone());
    let c = called.clone();
    let boom = PanicOnDrop("capture after the job");
    lp.queue_work(
        move || {
            let _keep = &boom;
            5u32
        },
        move |_r| {
            let _keep = &guard;
            c.set(true);
        },
    )
    .unwrap();
    assert_eq!(
        run_collecting_with(&lp, |p| uv_tests::panic_text(p)
            .unwrap_or_default()
            .to_string()),
        ["capture after the job"]
    );
    assert!(!called.get());
    assert_eq!(after_drops.load(Ordering::SeqCst), 1);
    // The loop goes on.
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    lp.queue_work(|| 9, move |r| g.set(r.unwrap())).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(got.get(), 9);
}

/// A job that panics, whose `after` panics when dropped: the job's panic is the
/// one `run` resumes (the drop's is dropped quietly), once; nothing else surfaces.
/// Pins the guarantee (panicked path of `after_cb`).
#[test]
fn a_panicked_job_whose_after_panics_on_drop_resurfaces_only_the_job_panic() {
    let lp = Loop::new().unwrap();
    let boom = PanicOnDrop("after's drop");
    lp.queue_work(
        || -> u8 { panic!("the job") },
        move |_r| {
            let _keep = &boom;
            unreachable!("after of a panicked job");
        },
    )
    .unwrap();
    assert_eq!(
        run_collecting_with(&lp, |p| uv_tests::panic_text(p)
            .unwrap_or_default()
            .to_string()),
        ["the job"]
    );
    assert!(!lp.alive());
}

/// Over-aligned values (larger than the slab's granule, or than its largest
/// slot) in the job, its value and `after`: each is where its alignment says, and
/// moves through unchanged.
/// Pins the guarantee (the request block's layout is the whole `WorkReq`).
#[test]
fn over_aligned_jobs_values_and_callbacks_keep_their_alignment() {
    #[repr(align(4096))]
    struct Page([u8; 4096]);
    #[repr(align(64))]
    #[derive(Clone, Copy)]
    struct Line(u64);

    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    for i in 0..8u8 {
        let input = Page([i; 4096]);
        let line = Line(u64::from(i) * 3);
        let g = got.clone();
        lp.queue_work(
            move || {
                let a = (&input as *const Page as usize) % 4096;
                let b = (&line as *const Line as usize) % 64;
                let mut out = Page([0; 4096]);
                out.0.copy_from_slice(&input.0);
                (a, b, out, line)
            },
            move |r| {
                let here = (&line as *const Line as usize) % 64;
                let (a, b, out, l) = r.unwrap();
                let c = (&out as *const Page as usize) % 4096;
                g.borrow_mut()
                    .push((i, a, b, c, here, out.0.iter().all(|&x| x == i), l.0));
            },
        )
        .unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    let mut got = got.borrow().clone();
    got.sort_unstable();
    assert_eq!(
        got,
        (0..8u8)
            .map(|i| (i, 0, 0, 0, 0, true, u64::from(i) * 3))
            .collect::<Vec<_>>()
    );
}

/// A finished job's `Request` (also as seen from its own `after`) never reaches a
/// later job that took its table entry: not pending, `cancel` is `EINVAL` and
/// leaves the later job alone.
/// Pins the guarantee (the slot is written after `uv_queue_work` returned, and
/// finished before `after` runs).
#[test]
fn an_old_work_request_never_reaches_a_later_job() {
    // Holds a pool thread: not while another test saturates the pool.
    let _pool = pool_lock();
    let lp = Loop::new().unwrap();
    let own = Rc::new(RefCell::new(None::<uv::Request>));
    let seen = Rc::new(RefCell::new(None));
    let (o, s) = (own.clone(), seen.clone());
    let first = lp
        .queue_work(
            || 1,
            move |r| {
                let req = o.borrow().clone().unwrap();
                *s.borrow_mut() = Some((
                    r.unwrap(),
                    req.is_pending(),
                    req.request_type(),
                    req.cancel().map_err(|e| e.code()),
                ));
            },
        )
        .unwrap();
    *own.borrow_mut() = Some(first.clone());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        *seen.borrow(),
        Some((1, false, None, Err(StatusCode::EINVAL))),
        "inside its own after, a request is finished"
    );
    // A later job, held on its pool thread until the checks are done.
    let gate = JobGate::default();
    let g = gate.clone();
    let got = Rc::new(Cell::new(None));
    let gt = got.clone();
    let second = lp
        .queue_work(
            move || {
                g.pass();
                2
            },
            move |r| gt.set(Some(r.map_err(|e| e.code()))),
        )
        .unwrap();
    gate.started();
    assert!(second.is_pending());
    assert!(!first.is_pending());
    assert_eq!(first.request_type(), None);
    assert_eq!(first.cancel().unwrap_err().code(), StatusCode::EINVAL);
    assert_eq!(second.cancel().unwrap_err().code(), StatusCode::EBUSY);
    gate.open();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.get(), Some(Ok(2)));
}

/// Dropping the loop with a job that panics and a job whose `after` queues more
/// work: the drop does not unwind (the panic is reported, not resumed), the
/// panicked job's `after` is dropped uncalled, and the new work is refused with
/// `ClosedLoop` and dropped (never lost silently, never run).
/// Pins the guarantee (teardown runs the after-work callbacks; `queue_work`
/// refuses once teardown started).
#[test]
fn dropping_the_loop_with_a_panicking_job_and_an_after_that_queues_more() {
    let lp = Loop::new().unwrap();
    let h = lp.handle();
    let after_drops = Arc::new(AtomicUsize::new(0));
    let refused_drops = Arc::new(AtomicUsize::new(0));
    let guard = DropCount(after_drops.clone());
    lp.queue_work(
        || -> u8 { panic!("job during teardown") },
        move |_r| {
            let _keep = &guard;
            unreachable!("after of a panicked job");
        },
    )
    .unwrap();
    let outcome = Rc::new(RefCell::new(None));
    let o = outcome.clone();
    let rd = refused_drops.clone();
    lp.queue_work(
        || 3,
        move |r| {
            let d = DropCount(rd);
            let again = h.queue_work(
                move || {
                    let _keep = &d;
                },
                |_r| unreachable!("refused work's after"),
            );
            *o.borrow_mut() = Some((r.unwrap(), again.map(|_| ()).map_err(|e| e.kind())));
        },
    )
    .unwrap();
    let r = catch_unwind(AssertUnwindSafe(move || drop(lp)));
    assert!(r.is_ok(), "dropping the loop does not unwind");
    assert_eq!(*outcome.borrow(), Some((3, Err(uv::Category::ClosedLoop))));
    assert_eq!(after_drops.load(Ordering::SeqCst), 1);
    assert_eq!(refused_drops.load(Ordering::SeqCst), 1);
}

// ---- loop requests: the data is dropped in place ----

/// A file-system request whose data holds a value that, when dropped, starts
/// another request on the same loop (its memory comes from the same slab while
/// the first request's block is still held): both complete, in order, with their
/// values; the first's callback runs after its data was dropped.
/// Pins the guarantee (`done` drops the data in place before freeing the block).
#[test]
fn a_request_whose_data_starts_another_request_when_dropped() {
    // `Bytes::from_owner` needs `Send`: the loop side is in a thread-local.
    type Ctx = Option<(uv::LoopHandle, Rc<RefCell<Vec<String>>>)>;
    thread_local! {
        static CTX: RefCell<Ctx> = const { RefCell::new(None) };
    }
    struct SendOwner(Vec<u8>, std::path::PathBuf);
    impl AsRef<[u8]> for SendOwner {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for SendOwner {
        fn drop(&mut self) {
            let (lp, log) = CTX.with(|c| c.borrow().clone()).unwrap();
            log.borrow_mut().push("data dropped".into());
            let l = log.clone();
            uv::Fs::stat(&lp, &self.1, move |r| {
                l.borrow_mut()
                    .push(format!("stat size {}", r.unwrap().size));
            })
            .unwrap();
        }
    }
    let dir = uv_tests::net::TempDir::new("attack-work-data-drop");
    let lp = Loop::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    CTX.with(|c| *c.borrow_mut() = Some((lp.handle(), log.clone())));
    let p = dir.join("f");
    let f = uv::Fs::open_sync(&lp, &p, uv::OpenFlags::CREAT | uv::OpenFlags::RDWR, 0o600).unwrap();
    let data = bytes::Bytes::from_owner(SendOwner(b"hello!".to_vec(), p.clone()));
    let l = log.clone();
    uv::Fs::write(&lp, &f, data, Some(0), move |r| {
        l.borrow_mut().push(format!("write {}", r.unwrap()));
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    CTX.with(|c| c.borrow_mut().take());
    assert_eq!(
        *log.borrow(),
        ["data dropped", "write 6", "stat size 6"],
        "the data goes first, then the callback; the new request completes"
    );
    f.close_sync(&lp).unwrap();
}

// ---- spawn: one buffer of C strings ----

/// Runs `opts` with stdout on a pipe; returns the output bytes and exit status.
fn output_of(opts: ProcessOptions<'_>) -> (Vec<u8>, i64) {
    let lp = Loop::new().unwrap();
    let out_pipe = Pipe::new(&lp, false).unwrap();
    let opts = opts.stdout(Stdio::pipe_from_child(&out_pipe));
    let status = Rc::new(Cell::new(None));
    let s = status.clone();
    Process::spawn(&lp, &opts, move |_, code, _| s.set(Some(code))).unwrap();
    let out = uv_tests::read_to_end(&out_pipe);
    lp.run(RunMode::Default).unwrap();
    let out = out.borrow().clone();
    (out, status.get().expect("exited"))
}

/// `env_clear` with no variable gives an empty environment (an empty span of the
/// buffer: the array is just its NULL), and the directory after it in the buffer
/// is still the directory; empty arguments, also last, stay arguments.
/// Pins the guarantee (the spans of `CStrs`).
#[test]
fn an_empty_environment_and_empty_arguments_keep_their_places() {
    let (out, status) = output_of(ProcessOptions::new("/usr/bin/env").env_clear().cwd("/"));
    assert_eq!(status, 0);
    assert_eq!(out, b"", "no variable at all");

    let dir = std::env::temp_dir().canonicalize().unwrap();
    let (out, status) = output_of(
        ProcessOptions::new("/bin/sh")
            .args([
                "-c",
                "printf '%s|' \"$#\" \"$@\"; pwd -P",
                "zero",
                "",
                "x",
                "",
            ])
            .env_clear()
            .cwd(&dir),
    );
    assert_eq!(status, 0);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("3||x||{}\n", dir.display())
    );
}

/// Variables with an empty value, a value holding `=`, and bytes that are not
/// UTF-8 (in a value and an argument) reach the child unchanged; a NUL in a later
/// variable is still `EINVAL` with no child.
/// Pins the guarantee (each string is its parts, then one NUL).
#[test]
fn odd_variables_and_non_utf8_bytes_reach_the_child_unchanged() {
    let (out, status) = output_of(
        ProcessOptions::new("/usr/bin/env")
            .env_clear()
            .env("EMPTY", "")
            .env("EQ", "a=b=")
            .env("RAW", OsStr::from_bytes(b"\xff\xfe-\x80")),
    );
    assert_eq!(status, 0);
    let mut lines: Vec<&[u8]> = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [&b"EMPTY="[..], &b"EQ=a=b="[..], &b"RAW=\xff\xfe-\x80"[..]]
    );

    let (out, _) = output_of(
        ProcessOptions::new("/bin/sh")
            .args(["-c", "printf '%s|' \"$@\"", "zero"])
            .arg(OsStr::from_bytes(b"\xc3\x28"))
            .arg(""),
    );
    assert_eq!(out, b"\xc3\x28||");

    let lp = Loop::new().unwrap();
    let opts = ProcessOptions::new("/usr/bin/env")
        .env_clear()
        .env("A", "1")
        .env("B", "x\0y");
    let err = Process::spawn(&lp, &opts, |_, _, _| panic!("no child")).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert!(lp.handles().is_empty());
}

/// The same pipe in two slots far apart (0 and 3, other kinds between) is `EBUSY`
/// before any child starts (libuv itself would refuse it only after starting the
/// child, leaving it unwaited for), and leaves the pipe fresh: a later spawn with
/// it once works.
/// Pins the guarantee (the scan of all the earlier slots, not only the last one).
#[test]
fn the_same_pipe_in_slots_far_apart_is_ebusy_and_the_pipe_stays_usable() {
    use std::io::Read;
    let lp = Loop::new().unwrap();
    let pipe = Pipe::new(&lp, false).unwrap();
    let other = Pipe::new(&lp, false).unwrap();
    // A started child would write to `w` (its stdout): reading `r` to its end tells.
    let (mut r, w) = std::os::unix::net::UnixStream::pair().unwrap();
    let opts = ProcessOptions::new("/bin/sh")
        .args(["-c", "printf started"])
        .stdio(0, Stdio::pipe_to_child(&pipe))
        .stdio(1, Stdio::fd(w))
        .stdio(2, Stdio::pipe_from_child(&other))
        .stdio(3, Stdio::pipe_from_child(&pipe));
    let err = Process::spawn(&lp, &opts, |_, _, _| panic!("no child")).unwrap_err();
    assert_eq!(err.code(), StatusCode::EBUSY);
    assert!(pipe.fileno().is_err(), "still without a descriptor");
    assert!(other.fileno().is_err(), "still without a descriptor");
    // The options' copy of `w` goes; a child would hold its own until it exits.
    drop(opts);
    let mut seen = Vec::new();
    r.read_to_end(&mut seen).unwrap();
    assert_eq!(seen, b"", "no child was started");
    // Now once each: the child writes through the pipe at slot 3.
    let opts = ProcessOptions::new("/bin/sh")
        .args(["-c", "printf ok >&3"])
        .stdio(3, Stdio::pipe_from_child(&pipe));
    let status = Rc::new(Cell::new(None));
    let s = status.clone();
    Process::spawn(&lp, &opts, move |p, code, _| {
        s.set(Some(code));
        p.close();
    })
    .unwrap();
    let out = uv_tests::read_to_end(&pipe);
    other.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(status.get(), Some(0));
    assert_eq!(*out.borrow(), b"ok");
}
