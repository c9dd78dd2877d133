//! Attacks where a value of one loop meets another loop, or a value crosses
//! threads: futures and join handles of one loop awaited by another's executor,
//! loops dropped from another loop's callbacks with work in flight, handles of one
//! loop given to another's calls (`spawn`'s stdio), two loops on two threads
//! watching one signal or sharing the standard descriptors, and which public types
//! are `Send`/`Sync` (the compile-fail side is in `ui/loops_*.rs`). Each test says
//! what used to happen, or which guarantee it pins; values, counts and error codes
//! only. `tests/valgrind.sh attacks_loops` checks the memory side.

#![cfg(unix)]
#![deny(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uv::{
    Loop, Pipe, Process, ProcessOptions, RunMode, Signal, Signum, StatusCode, Stdio, Stream, Timer,
};

/// Set in a child started by [`in_child`]: the name of the scenario it runs.
const SCENARIO: &str = "UV_ATTACKS_LOOPS_SCENARIO";

/// Runs `scenario` in a child (this binary, running only `scenario_child`), for
/// code that changes what the whole process does with a signal: its exit status
/// and its standard error. Under valgrind (the parent is, `tests/valgrind.sh`) the
/// child runs under it too.
fn in_child(scenario: &str) -> (std::process::ExitStatus, String) {
    uv_tests::scenario_output(SCENARIO, scenario)
}

/// As [`in_child`], with the child's standard input a pipe that stays open (and
/// empty) until the child exits.
fn in_child_with_piped_stdin(scenario: &str) -> (std::process::ExitStatus, String) {
    let mut child = uv_tests::scenario_command(SCENARIO, scenario)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kept out of `wait_with_output`, which would close it first.
    let stdin = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

uv_tests::scenarios! {
    SCENARIO =>
    a_watch_beside_another_threads_stops,
    stdin_read_beside_another_threads_spawns,
    a_child_drops_a_loop_it_did_not_re_create,
}

// ---- two loops on two threads, one signal ----

/// A write to a pipe whose read end is closed: `EPIPE`, and a SIGPIPE sent to
/// this thread (whose handler, when a loop watches it, has run when this returns).
fn broken_pipe_write(w: &mut std::fs::File) {
    let err = w.write(b"x").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
}

/// Loop B on this thread watches SIGPIPE (ignored, as in every Rust program)
/// round after round while loop A on another thread starts and stops its own watch
/// of it, and each round B's thread writes to a broken pipe: B's callback must see
/// every SIGPIPE. libuv puts a signal back to its default action when its last
/// watcher stops, and the library then puts an ignored one back to `SIG_IGN` (a
/// query of the action, then the change). That query and change raced with the
/// other thread's `uv_signal_start`: when B's start installed libuv's handler
/// between them, A's thread replaced it with `SIG_IGN`, and B's watch never saw
/// its signal again (some 20% of the rounds missed their SIGPIPE). Now every libuv
/// call that may install the handler runs under the same lock as the restore:
/// no round misses, and SIGPIPE is still ignored at the end.
fn a_watch_beside_another_threads_stops() {
    let stop = Arc::new(AtomicBool::new(false));
    let churned = Arc::new(AtomicUsize::new(0));
    let (s, c) = (stop.clone(), churned.clone());
    let churn = std::thread::spawn(move || {
        let a = Loop::new().unwrap();
        let sig = Signal::new(&a).unwrap();
        while !s.load(Ordering::SeqCst) {
            sig.start(Signum::Pipe, |_, _| {}).unwrap();
            sig.stop().unwrap();
            c.fetch_add(1, Ordering::SeqCst);
        }
        sig.close();
        a.run(RunMode::Default).unwrap();
    });
    let b = Loop::new().unwrap();
    let (r, w) = uv::pipe(uv::StdioFlags::empty(), uv::StdioFlags::empty()).unwrap();
    drop(r);
    let mut w = std::fs::File::from(w);
    let sig = Signal::new(&b).unwrap();
    let seen = Rc::new(Cell::new(0usize));
    let rounds = uv_tests::iterations(3000);
    let mut missed = 0;
    for _ in 0..rounds {
        // Each round overlaps at least one start and stop of the other thread.
        let c0 = churned.load(Ordering::SeqCst);
        while churned.load(Ordering::SeqCst) == c0 {
            std::thread::yield_now();
        }
        let s = seen.clone();
        sig.start(Signum::Pipe, move |_, _| s.set(s.get() + 1))
            .unwrap();
        let before = seen.get();
        broken_pipe_write(&mut w);
        // The handler wrote to the loop's signal pipe before the write returned:
        // an iteration that does not wait delivers it.
        b.run(RunMode::NoWait).unwrap();
        if seen.get() == before {
            missed += 1;
        }
        sig.stop().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    churn.join().unwrap();
    assert_eq!(missed, 0, "SIGPIPEs missed by a started watch, of {rounds}");
    assert_eq!(seen.get(), rounds);
    // No watcher left: SIGPIPE is ignored again (its default action would end
    // this process here).
    broken_pipe_write(&mut w);
    sig.close();
    b.run(RunMode::Default).unwrap();
}

#[test]
fn a_signal_watch_survives_another_threads_loop_stopping_the_same_ignored_signal() {
    let (status, stderr) = in_child("a_watch_beside_another_threads_stops");
    assert!(status.success(), "{status}: {stderr}");
}

// ---- two loops on two threads, one standard descriptor ----

/// Waits (yielding) until `count` has gone `by` past what it was at the call.
fn wait_past(count: &AtomicUsize, by: usize) {
    let start = count.load(Ordering::SeqCst);
    while count.load(Ordering::SeqCst) < start + by {
        std::thread::yield_now();
    }
}

/// Standard input is a pipe. Another thread's loop spawns `true` with it inherited
/// (`Stdio::Inherit`) again and again, while this thread's loop opens a pipe
/// handle on a copy of it (`Pipe::open`, which libuv makes non-blocking) and starts
/// reading, round after round. libuv makes a child's descriptors 0 to 2 blocking,
/// and with them the open file the handle shares; the library refuses such a
/// spawn while a handle shares the file. That check and `uv_spawn` were two steps:
/// a spawn checked before the handle was counted, and its child made the file
/// blocking after `read_start` had seen it non-blocking, so a reading handle had a
/// blocking descriptor (a read that fills the buffer is followed by another,
/// which then waits with the loop's thread). Now the spawn checks again under
/// the lock it holds around `uv_spawn`, and a handle is counted under that lock:
/// a spawn in flight when the handle opens is over when it is counted, so
/// `read_start` sees the mode that child left (`EINVAL` when blocking), and no
/// later spawn passes. Pins: in every round `read_start` is `EINVAL` or the file
/// stays non-blocking while the handle reads.
fn stdin_read_beside_another_threads_spawns() {
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let (s, n) = (stop.clone(), attempts.clone());
    let spawner = std::thread::spawn(move || {
        let a = Loop::new().unwrap();
        let mut spawned = 0usize;
        while !s.load(Ordering::SeqCst) {
            let opts = ProcessOptions::new("true").stdin(Stdio::Inherit);
            match Process::spawn(&a, &opts, |p, _, _| p.close()) {
                Ok(_) => spawned += 1,
                Err(e) => assert_eq!(e.code(), StatusCode::EINVAL),
            }
            a.run(RunMode::Default).unwrap();
            n.fetch_add(1, Ordering::SeqCst);
        }
        spawned
    });
    let b = Loop::new().unwrap();
    let rounds = uv_tests::iterations(300);
    let (mut reading, mut refused, mut blocking_while_reading) = (0, 0, 0);
    for _ in 0..rounds {
        // The other thread is between spawns, or in one.
        wait_past(&attempts, 1);
        let copy = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
        let pipe = Pipe::new(&b, false).unwrap();
        pipe.open(copy).unwrap();
        match pipe.read_start(|_, _| {}) {
            Ok(()) => {
                reading += 1;
                // Every spawn in flight at the open is over, and one more ran.
                wait_past(&attempts, 2);
                if !uv_tests::net::nonblocking(0) {
                    blocking_while_reading += 1;
                }
            }
            Err(e) => {
                assert_eq!(e.code(), StatusCode::EINVAL);
                refused += 1;
            }
        }
        pipe.close();
        b.run(RunMode::Default).unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let spawned = spawner.join().unwrap();
    eprintln!("reading {reading}, refused {refused}, spawned {spawned}");
    assert_eq!(
        blocking_while_reading, 0,
        "rounds whose reading handle had a blocking descriptor, of {rounds}"
    );
    // Some rounds read (under valgrind, which runs one thread at a time, the
    // other thread is in a spawn at nearly every open, and every round may be
    // refused).
    assert!(reading > 0 || std::env::var_os("UV_UNDER_VALGRIND").is_some());
}

#[test]
fn a_child_of_another_thread_never_makes_a_reading_handles_stdin_blocking() {
    let (status, stderr) = in_child_with_piped_stdin("stdin_read_beside_another_threads_spawns");
    assert!(status.success(), "{status}: {stderr}");
}

// ---- one loop's futures and join handles in another loop's executor ----

/// A task of loop B drops loop A while B's `block_on` awaits a task of A (its
/// `JoinHandle`): A's teardown drops the task, and the join handle ends with
/// `Cancelled` and wakes B, instead of leaving B's `block_on` waiting for good.
#[test]
fn a_join_handle_of_a_loop_dropped_by_another_loops_task_ends_cancelled() {
    let a = Loop::new().unwrap();
    let b = Loop::new().unwrap();
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let join = a
        .spawn_local(async move {
            let _d = OnDrop(move || d.set(true));
            std::future::pending::<()>().await;
            5
        })
        .unwrap();
    // The task is polled once (it holds its guard).
    a.run(RunMode::NoWait).unwrap();
    let owner = Rc::new(RefCell::new(Some(a)));
    let (o, bh) = (owner.clone(), b.handle());
    let out = b
        .block_on(async move {
            let bh2 = bh.clone();
            bh.spawn_local(async move {
                uv::future::sleep(&bh2, Duration::ZERO).await.unwrap();
                drop(o.borrow_mut().take());
            })
            .unwrap();
            join.await
        })
        .unwrap();
    assert_eq!(out, Err(uv::JoinError::Cancelled));
    assert!(dropped.get());
    assert!(owner.borrow().is_none());
}

/// Loop B's `block_on` awaits loop A's `sleep` of an hour; a task of B drops A:
/// the sleep ends with `ClosedLoop` (its timer closed with its loop) and wakes B.
#[test]
fn a_sleep_of_a_loop_dropped_by_another_loops_task_ends_with_closed_loop() {
    let a = Loop::new().unwrap();
    let b = Loop::new().unwrap();
    let sleep = uv::future::sleep(&a, Duration::from_secs(3600));
    let owner = Rc::new(RefCell::new(Some(a)));
    let (o, bh) = (owner.clone(), b.handle());
    let out = b
        .block_on(async move {
            let bh2 = bh.clone();
            bh.spawn_local(async move {
                uv::future::sleep(&bh2, Duration::ZERO).await.unwrap();
                drop(o.borrow_mut().take());
            })
            .unwrap();
            sleep.await
        })
        .unwrap();
    assert_eq!(out.unwrap_err().kind(), uv::Category::ClosedLoop);
}

/// A timer of loop A awaited by a task of loop B, with A run from B's callbacks
/// (one thread, nested runs): the sleep completes in A's run and wakes B's task,
/// which B then polls; both loops end with nothing left.
#[test]
fn a_sleep_of_one_loop_awaited_by_another_loops_task_completes() {
    let a = Rc::new(Loop::new().unwrap());
    let b = Loop::new().unwrap();
    let sleep = uv::future::sleep(&a, Duration::from_millis(1));
    let done = Rc::new(Cell::new(0));
    let d = done.clone();
    let task = b
        .spawn_local(async move {
            sleep.await.unwrap();
            d.set(d.get() + 1);
            7
        })
        .unwrap();
    // A runs inside a callback of B until the sleep is over.
    let a2 = a.clone();
    Timer::once(&b, Duration::ZERO, move |_| {
        assert!(!a2.run(RunMode::Default).unwrap());
    })
    .unwrap();
    let out = b.block_on(task).unwrap();
    assert_eq!((out, done.get()), (Ok(7), 1));
    assert!(!b.run(RunMode::Default).unwrap());
    assert_eq!((a.handle_count(), b.handle_count()), (0, 0));
}

/// Runs its closure when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

// ---- one loop dropped from another loop's callback ----

/// Loop A has a job in the thread pool when a callback of loop B drops it: A's
/// teardown waits for the job, its `after` runs with the job's value, and the
/// senders of A (a `CallLater`, a channel, an `Async`'s) used from another thread
/// afterwards are refused (the channel's value handed back), none lost silently.
#[test]
fn a_loop_dropped_from_another_loops_callback_finishes_its_work_and_refuses_senders() {
    let a = Loop::new().unwrap();
    let b = Loop::new().unwrap();
    let gate = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    let got = Rc::new(Cell::new(None));
    let gt = got.clone();
    a.queue_work(
        move || {
            while !g.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            3
        },
        move |v| gt.set(Some(v.unwrap())),
    )
    .unwrap();
    let later = a.call_later_sender().unwrap();
    let (tx, _rx) = uv::channel(&a, |_: u32| panic!("nothing reaches a dropped loop")).unwrap();
    let wake = uv::Async::new(&a, |_| panic!("no wake-up reaches a dropped loop")).unwrap();
    let sender = wake.sender().unwrap();
    let owner = RefCell::new(Some(a));
    Timer::once(&b, Duration::ZERO, move |_| {
        gate.store(true, Ordering::SeqCst);
        drop(owner.borrow_mut().take());
    })
    .unwrap();
    assert!(!b.run(RunMode::Default).unwrap());
    assert_eq!(got.get(), Some(3));
    let answers = std::thread::spawn(move || {
        (
            later
                .call(|| panic!("no job reaches a dropped loop"))
                .unwrap_err()
                .kind(),
            tx.send(9).unwrap_err().0,
            sender.send().unwrap_err().kind(),
        )
    })
    .join()
    .unwrap();
    assert_eq!(
        answers,
        (uv::Category::ClosedHandle, 9, uv::Category::ClosedHandle)
    );
}

// ---- one loop's handles in another loop's spawn ----

/// `spawn` on loop A with `Stdio::Pipe` of a pipe handle of loop B: libuv opens
/// the parent's end in B's handle (its loop plays no part), B reads the child's
/// output and A gets its exit. Pins that this works, not an error.
#[test]
fn a_created_pipe_of_another_loop_carries_the_childs_output() {
    let a = Loop::new().unwrap();
    let b = Loop::new().unwrap();
    let out = Pipe::new(&b, false).unwrap();
    let exited = Rc::new(Cell::new(None));
    let e = exited.clone();
    let opts = ProcessOptions::new("sh")
        .args(["-c", "echo hello"])
        .stdout(Stdio::pipe_from_child(&out));
    Process::spawn(&a, &opts, move |p, status, signal| {
        e.set(Some((status, signal)));
        p.close();
    })
    .unwrap();
    drop(opts);
    let got = uv_tests::read_to_end(&out);
    assert!(!b.run(RunMode::Default).unwrap());
    assert!(!a.run(RunMode::Default).unwrap());
    assert_eq!(&*got.borrow(), b"hello\n");
    assert_eq!(exited.get(), Some((0, None)));
}

/// `spawn` on loop A with `Stdio::Stream` of a pipe handle of loop B (the write
/// end of a pipe): the child writes into it; the handle is marked as shared with a
/// child, so B's `read_start` on it is refused as for one of its own loop.
#[test]
fn a_stream_of_another_loop_given_to_a_child_is_marked_shared() {
    let a = Loop::new().unwrap();
    let b = Loop::new().unwrap();
    let (r, w) = uv::pipe(uv::StdioFlags::empty(), uv::StdioFlags::empty()).unwrap();
    let wp = Pipe::new(&b, false).unwrap();
    wp.open(w).unwrap();
    let opts = ProcessOptions::new("sh")
        .args(["-c", "echo hi"])
        .stdout(Stdio::stream(&wp));
    Process::spawn(&a, &opts, |p, _, _| p.close()).unwrap();
    drop(opts);
    assert!(!a.run(RunMode::Default).unwrap());
    assert_eq!(
        wp.read_start(|_, _| {}).unwrap_err().code(),
        StatusCode::EINVAL
    );
    wp.close();
    assert!(!b.run(RunMode::Default).unwrap());
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut text).unwrap();
    assert_eq!(text, "hi\n");
}

// ---- fork: a second loop alive ----

/// Runs `child` in a forked child process (this process runs only the scenario's
/// thread and the test harness's waiting one) and returns its wait status: 0 when
/// `child` returned true.
#[allow(unsafe_code)]
fn in_a_fork(child: impl FnOnce() -> bool) -> i32 {
    // SAFETY: the scenario runs alone in its process (`--test-threads=1`); the
    // child only uses the loops and leaves without printing.
    unsafe { uv_tests::in_fork(child) }
}

/// Two loops each read a socket; a forked child re-creates loop A
/// (`after_fork`) and drops both loops. The child's drop of B (which it did not
/// re-create) closed B's handles through libuv, on the epoll instance B still
/// shares with the parent: that removed the parent's watch of B's socket, and the
/// parent's B never saw the bytes written to it (a read that never completes). Now
/// a loop dropped in a child that did not re-create it makes no libuv call: its
/// handles are marked closed (a pipe of it kept by the child answers
/// `ClosedHandle`) and its memory is leaked; the parent's B reads its 4 bytes.
fn a_child_drops_a_loop_it_did_not_re_create() {
    let a = Loop::new().unwrap();
    let b = Loop::new().unwrap();
    let (got_a, got_b) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let (_pa, mut other_a) = uv_tests::net::reading_pipe(&a, &got_a);
    let (pb, mut other_b) = uv_tests::net::reading_pipe(&b, &got_b);
    let mut slot = Some((a, b));
    let status = in_a_fork(|| {
        let (a, b) = slot.take().unwrap();
        let ok = a.after_fork().is_ok();
        drop(b);
        let closed = pb
            .write(b"x".to_vec(), |_, _| {})
            .is_err_and(|e| e.kind() == uv::Category::ClosedHandle);
        drop(a);
        ok && closed
    });
    assert_eq!(status, 0);
    let (a, b) = slot.take().unwrap();
    other_a.write_all(b"abc").unwrap();
    other_b.write_all(b"defg").unwrap();
    for _ in 0..4 {
        a.run(RunMode::NoWait).unwrap();
        b.run(RunMode::NoWait).unwrap();
    }
    assert_eq!((got_a.get(), got_b.get()), (3, 4));
}

#[test]
fn a_forked_child_dropping_a_loop_it_did_not_re_create_leaves_the_parents_alone() {
    let (status, stderr) = in_child("a_child_drops_a_loop_it_did_not_re_create");
    assert!(status.success(), "{status}: {stderr}");
}

/// Loop A has a file-system request and a DNS request in flight and two handles
/// closing with close callbacks when a callback of loop B drops it. A's teardown
/// runs both requests' callbacks (with their results) and both close callbacks;
/// from those, B's `run` is `EBUSY` (B is running) and a timer started on B runs
/// in B's next iteration. Nothing of A is lost or run twice.
#[test]
fn a_loop_dropped_from_another_loops_callback_completes_its_requests_and_closes() {
    let a = Loop::new().unwrap();
    let b = Rc::new(Loop::new().unwrap());
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let l = log.clone();
    uv::Fs::stat(&a, "/", move |r| {
        l.borrow_mut()
            .push(format!("stat {:?}", r.map(|_| ()).map_err(|e| e.code())))
    })
    .unwrap();
    let l = log.clone();
    a.getaddrinfo_with(
        Some("localhost"),
        None,
        &uv::AddrInfoHints::default(),
        move |r| l.borrow_mut().push(format!("dns ok {}", r.is_ok())),
    )
    .unwrap();
    let (l, b2) = (log.clone(), b.clone());
    Timer::new(&a).unwrap().close_with(move |_| {
        let r = b2.run(RunMode::NoWait).map_err(|e| e.code());
        l.borrow_mut().push(format!("closed, b's run {r:?}"));
    });
    let t = Timer::new(&a).unwrap();
    t.start(Duration::from_secs(3600), Duration::ZERO, |_| {})
        .unwrap();
    let (l, bh) = (log.clone(), b.handle());
    t.close_with(move |_| {
        let l2 = l.clone();
        Timer::once(&bh, Duration::ZERO, move |_| {
            l2.borrow_mut().push("b's timer".into())
        })
        .unwrap();
        l.borrow_mut().push("closed, timer started on b".into());
    });
    drop(t);
    let owner = RefCell::new(Some(a));
    Timer::once(&b, Duration::ZERO, move |_| drop(owner.borrow_mut().take())).unwrap();
    assert!(!b.run(RunMode::Default).unwrap());
    let mut got = log.borrow().clone();
    // A's teardown runs them in the order libuv completes them (the requests as
    // the thread pool finishes); B's timer runs after.
    got[..4].sort();
    assert_eq!(
        got,
        [
            "closed, b's run Err(EBUSY)",
            "closed, timer started on b",
            "dns ok true",
            "stat Ok(())",
            "b's timer",
        ]
    );
}

// ---- two loops on two threads, one socket given to a child ----

/// Loop A (this thread) sends a socket over an IPC pipe to loop B (another
/// thread) and closes the handle that sent it, so that its only descriptor is a
/// second handle of A; then, while B receives it, A gives that handle to a child
/// (`Stdio::Stream`), which makes the socket blocking. The spawn refuses a stream
/// whose socket has another descriptor, and marks the socket as the child's once
/// it has spawned, which makes a handle that receives it later refuse to read.
/// Both were steps apart from `uv_spawn`: B's handle received the socket after the
/// check and before the mark, started reading a non-blocking socket, and the child
/// then made it blocking under it. Now the spawn checks again and marks under the
/// lock it holds around `uv_spawn`, and a received socket is registered under that
/// lock. Pins: in every round the spawn or B's `read_start` is refused (a round or
/// two in 1,000 had both succeed before).
#[test]
fn a_socket_received_by_another_thread_while_given_to_a_child_is_never_read_blocking() {
    use std::os::unix::net::UnixStream;
    let rounds = uv_tests::iterations(1000);
    let (ipc_a, ipc_b) = UnixStream::pair().unwrap();
    let go = Arc::new(AtomicUsize::new(0));
    let spawned = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let given_now = Arc::new(AtomicBool::new(false));
    let (g, sp, fin, gn) = (
        go.clone(),
        spawned.clone(),
        finished.clone(),
        given_now.clone(),
    );
    // B: each round, once A is about to spawn, receives the socket and tries to
    // read it; once A's spawn is over, looks at the socket's mode.
    let receiver = std::thread::spawn(move || {
        let b = Loop::new().unwrap();
        let rx = Pipe::new(&b, true).unwrap();
        rx.open(ipc_b).unwrap();
        let (mut reading, mut shared_while_reading) = (0usize, 0usize);
        for round in 1..=rounds {
            while g.load(Ordering::SeqCst) < round {
                std::thread::yield_now();
            }
            // A receive at a different point of A's spawn each round.
            for _ in 0..round % 64 {
                std::thread::yield_now();
            }
            let got: Rc<RefCell<Option<Pipe>>> = Rc::new(RefCell::new(None));
            let (gt, bh) = (got.clone(), b.handle());
            rx.read_start(move |p, d| {
                d.unwrap();
                if p.pending_count().unwrap() > 0 {
                    let c = Pipe::new(&bh, false).unwrap();
                    p.accept_into(&c).unwrap();
                    *gt.borrow_mut() = Some(c);
                    p.read_stop().unwrap();
                }
            })
            .unwrap();
            while got.borrow().is_none() {
                b.run(RunMode::Once).unwrap();
            }
            let c = got.borrow_mut().take().unwrap();
            let read = c.read_start(|_, _| {});
            while sp.load(Ordering::SeqCst) < round {
                std::thread::yield_now();
            }
            match read {
                Ok(()) => {
                    reading += 1;
                    // A child has the socket (and may make it blocking at any
                    // time), or has made it blocking already.
                    if gn.load(Ordering::SeqCst) || !uv_tests::net::nonblocking(c.fileno().unwrap())
                    {
                        shared_while_reading += 1;
                    }
                }
                Err(e) => assert_eq!(e.code(), StatusCode::EINVAL),
            }
            c.close();
            b.run(RunMode::NoWait).unwrap();
            fin.store(round, Ordering::SeqCst);
        }
        rx.close();
        b.run(RunMode::Default).unwrap();
        (reading, shared_while_reading)
    });
    let a = Loop::new().unwrap();
    let tx = Pipe::new(&a, true).unwrap();
    tx.open(ipc_a).unwrap();
    let mut given = 0usize;
    for round in 1..=rounds {
        let (s, _peer) = UnixStream::pair().unwrap();
        let copy = s.try_clone().unwrap();
        let kept = Pipe::new(&a, false).unwrap();
        kept.open(s).unwrap();
        let sender = Pipe::new(&a, false).unwrap();
        sender.open(copy).unwrap();
        let sent = Rc::new(Cell::new(false));
        let st = sent.clone();
        tx.write2("x", &sender, move |_, r| st.set(r.is_ok()))
            .unwrap();
        sender.close();
        while !sent.get() || a.handle_count() > 2 {
            a.run(RunMode::Once).unwrap();
        }
        go.store(round, Ordering::SeqCst);
        let opts = ProcessOptions::new("true").stdout(Stdio::stream(&kept));
        let ok = match Process::spawn(&a, &opts, |p, _, _| p.close()) {
            Ok(_) => true,
            Err(e) => {
                assert_eq!(e.code(), StatusCode::EINVAL);
                false
            }
        };
        given += usize::from(ok);
        drop(opts);
        given_now.store(ok, Ordering::SeqCst);
        spawned.store(round, Ordering::SeqCst);
        while finished.load(Ordering::SeqCst) < round {
            std::thread::yield_now();
        }
        kept.close();
        a.run(RunMode::Default).unwrap();
    }
    let (reading, shared_while_reading) = receiver.join().unwrap();
    tx.close();
    a.run(RunMode::Default).unwrap();
    assert_eq!(
        shared_while_reading, 0,
        "rounds whose reading handle's socket a child had, of {rounds} ({given} spawned, {reading} read)"
    );
}
