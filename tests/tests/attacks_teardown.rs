//! Attacks on the teardown of a loop that is abandoned: a forked child drops a
//! loop it did not re-create (no libuv call may change the parent's kernel
//! state), so the requests in flight on its handles complete without libuv
//! (`ECANCELED`, or the result libuv gave), the handles' callbacks are dropped,
//! and each handle goes with its last reference; the requests on the parent's
//! thread pool (file system, `queue_work`, DNS, random bytes), which no thread
//! of the child runs, complete there too (as they do when the child re-creates
//! the loop with `after_fork`), and libuv's own `SIGCHLD` watch of the loop
//! leaves the process's signal table. Each test says what used to
//! happen, or which guarantee it pins; values, counts and error codes only.
//! Each scenario runs in a child of its own (this binary, one test thread), which
//! forks. `bash tests/valgrind.sh attacks_teardown` checks the memory side (the
//! forked children run under valgrind too: a memory error or a definite leak
//! makes one exit with status 99).

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::task::Poll;
use std::time::Duration;

use uv::future as uvf;
use uv::{Fs, Loop, RunMode, Signal, Signum, StatusCode, Stream, Timer, WriteData};
use uv_tests::provoke::{provoke, provoked, quiet_provoked_panics, FlakyWake, PanicOnDrop};

/// Set in a child started by [`in_child`]: the name of the scenario it runs.
const SCENARIO: &str = "UV_ATTACKS_TEARDOWN_SCENARIO";

/// Runs `scenario` in a child (this binary, running only `scenario_child`, one
/// test thread, so that it may fork): its exit status and its standard error.
fn in_child(scenario: &str) -> (std::process::ExitStatus, String) {
    uv_tests::scenario_output(SCENARIO, scenario)
}

/// Runs the scenario named in [`SCENARIO`] (nothing without it): the child side
/// of the tests.
#[test]
fn scenario_child() {
    let Ok(name) = std::env::var(SCENARIO) else {
        return;
    };
    match name.as_str() {
        "panicking_write_callback" => panicking_write_callback(),
        "panicking_drops" => panicking_drops(),
        "write_callback_reaches_its_stream" => write_callback_reaches_its_stream(),
        "walk_after_handles_went" => walk_after_handles_went(),
        "vectored_write_cancelled" => vectored_write_cancelled(),
        "abandoned_loop_nothing_refers_to" => abandoned_loop_nothing_refers_to(),
        "signal_watch_of_an_abandoned_loop" => signal_watch_of_an_abandoned_loop(),
        "pool_requests_of_an_abandoned_loop" => pool_requests_of_an_abandoned_loop(),
        "pool_requests_after_fork" => pool_requests_after_fork(),
        "loop_dropped_in_after_fork" => loop_dropped_in_after_fork(),
        "pool_callbacks_that_panic_on_drop" => pool_callbacks_that_panic_on_drop(),
        "ring_requests_after_fork" => ring_requests(true),
        "ring_requests_of_an_abandoned_loop" => ring_requests(false),
        "child_watcher_of_an_abandoned_loop" => child_watcher_of_an_abandoned_loop(),
        "after_fork_out_of_descriptors" => after_fork_out_of_descriptors(),
        "signal_start_before_after_fork" => signal_start_before_after_fork(),
        "signals_of_a_child_that_keeps_the_loop" => signals_of_a_child_that_keeps_the_loop(),
        "signals_of_a_grandchild" => signals_of_a_grandchild(),
        "signals_of_a_child_forked_inside_a_callback" => {
            signals_of_a_child_forked_inside_a_callback()
        }
        "descriptors_of_a_grandchild" => descriptors_of_a_grandchild(),
        "signals_after_the_run_a_child_was_forked_in" => {
            signals_after_the_run_a_child_was_forked_in()
        }
        "signals_of_a_child_forked_nine_loops_deep" => signals_of_a_child_forked_nine_loops_deep(),
        "closes_in_a_child_spare_the_parents_watches" => {
            closes_in_a_child_spare_the_parents_watches()
        }
        "closes_put_off_until_after_fork" => closes_put_off_until_after_fork(),
        "put_off_close_abandoned_with_its_loop" => put_off_close_abandoned_with_its_loop(),
        "after_fork_with_the_pool_queue_lock_held" => after_fork_with_the_pool_queue_lock_held(),
        "close_in_a_callback_of_after_fork" => close_in_a_callback_of_after_fork(),
        "fork_inside_a_callback" => fork_inside_a_callback(),
        other => panic!("unknown scenario {other}"),
    }
}

/// A pipe of `lp` open on one end of a socket pair, and the other end (never
/// read: a large write stays queued).
fn pipe(lp: &Loop) -> (uv::Pipe, std::os::unix::net::UnixStream) {
    let (a, peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let p = uv::Pipe::new(lp, false).unwrap();
    p.open(a).unwrap();
    (p, peer)
}

/// Runs `child` in a forked child; asserts that it returned true there.
fn forked(child: impl FnOnce() -> bool) {
    // SAFETY: each scenario runs alone in its process (`--test-threads=1`); the
    // children print nothing (provoked panics are quiet) and leave with `_exit`.
    let status = unsafe { uv_tests::in_fork(child) };
    assert_eq!(status, 0, "the forked child's outcome (wait status)");
}

/// Closes what is left and runs the loop out: nothing may be left alive.
fn finish(lp: &Loop) {
    for h in lp.handles() {
        h.close();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
}

// ---- a write callback that panics while its loop is abandoned ----

/// Scenario: a write libuv could not finish, whose callback panics; a forked
/// child drops the loop. The write completes there without libuv
/// (`ECANCELED`), and the callback's panic went through the request's panic
/// path, which looked the loop up through the handle's `loop` field as for a
/// handle libuv holds: a debug assertion (`Hdr::shared`: the handle was marked
/// out of libuv by then) panicked again inside the `extern "C"` trampoline, and
/// the child aborted ("panic in a function that cannot unwind", SIGABRT). Now
/// the panic goes to the loop as any callback's during teardown (its panic hook,
/// once): the child lives, the callback got `ECANCELED`, once.
fn panicking_write_callback() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (p, _peer) = pipe(&lp);
    let got: Rc<RefCell<Vec<Option<StatusCode>>>> = Rc::default();
    let g = got.clone();
    p.write(uv_tests::net::pattern(4 << 20), move |_, r| {
        g.borrow_mut().push(r.err().map(|e| e.code()));
        provoke("write callback");
    })
    .unwrap();
    // The loop's panic hook counts the callback's panics.
    let panics = Rc::new(Cell::new(0));
    let n = panics.clone();
    lp.set_panic_hook(move |p| {
        if provoked(&*p) == Some("write callback") {
            n.set(n.get() + 1);
        }
    });
    let mut lp = Some(lp);
    forked(|| {
        drop(lp.take());
        *got.borrow() == [Some(StatusCode::ECANCELED)] && panics.get() == 1
    });
    finish(&lp.take().unwrap());
    assert_eq!(panics.get(), 1, "the parent's write callback's panic");
}

#[test]
fn a_write_callback_that_panics_in_an_abandoned_loop_does_not_abort() {
    let (status, stderr) = in_child("panicking_write_callback");
    assert!(status.success(), "{status}: {stderr}");
}

// ---- drops that panic while the loop is abandoned ----

/// Scenario: a timer closing with a close callback, and a started timer, a pipe
/// with a write not finished and a kept value's owner, each holding a value whose
/// `Drop` panics; a forked child drops the loop. Pins: the teardown drops each
/// (the close callback unrun, the timer's callback, the write's callback once it
/// ran with `ECANCELED`) under the loop's guard: every panic reaches the loop's
/// panic hook, once each (3), the write callback ran, and the child lives.
fn panicking_drops() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let closing = Timer::new(&lp).unwrap();
    let bomb = PanicOnDrop("close callback");
    closing.close_with(move |_| drop(bomb));
    let ticking = Timer::new(&lp).unwrap();
    let bomb = PanicOnDrop("timer callback");
    ticking
        .start(Duration::from_secs(100), Duration::ZERO, move |_| {
            let _ = &bomb;
        })
        .unwrap();
    let (p, _peer) = pipe(&lp);
    let bomb = PanicOnDrop("write callback");
    let wrote = Rc::new(Cell::new(None));
    let w = wrote.clone();
    p.write(uv_tests::net::pattern(4 << 20), move |_, r| {
        let _ = &bomb;
        w.set(Some(r.err().map(|e| e.code())));
    })
    .unwrap();
    let panics = Rc::new(RefCell::new(Vec::new()));
    let seen = panics.clone();
    lp.set_panic_hook(move |p| seen.borrow_mut().push(provoked(&*p)));
    let mut lp = Some(lp);
    forked(|| {
        drop(lp.take());
        let mut got = panics.borrow().clone();
        got.sort();
        wrote.get() == Some(Some(StatusCode::ECANCELED))
            && got
                == [
                    Some("close callback"),
                    Some("timer callback"),
                    Some("write callback"),
                ]
    });
    drop((closing, ticking, p));
    finish(&lp.take().unwrap());
}

#[test]
fn drops_that_panic_while_a_loop_is_abandoned_reach_its_hook() {
    let (status, stderr) = in_child("panicking_drops");
    assert!(status.success(), "{status}: {stderr}");
}

// ---- a write callback that reaches its stream while the loop is abandoned ----

/// Scenario: a write libuv could not finish, whose callback writes again,
/// writes at once, shuts the stream down, starts reading and closes it; a forked
/// child drops the loop. Pins: the callback runs once, with `ECANCELED`, and each
/// of those calls is refused with `ClosedHandle` (the handle is marked closed
/// before any request completes), none reaches the abandoned loop.
fn write_callback_reaches_its_stream() {
    let lp = Loop::new().unwrap();
    let (p, _peer) = pipe(&lp);
    type Seen = (Option<StatusCode>, Vec<bool>, bool);
    let seen: Rc<RefCell<Vec<Seen>>> = Rc::default();
    let s = seen.clone();
    p.write(uv_tests::net::pattern(4 << 20), move |p, r| {
        let closed = |e: uv::Error| e.kind() == uv::Category::ClosedHandle;
        let refused = vec![
            p.write(b"again".to_vec(), |_, _| {}).is_err_and(closed),
            p.try_write(b"now").is_err_and(closed),
            p.shutdown(|_, _| {}).is_err_and(closed),
            p.read_start(|_, _| {}).is_err_and(closed),
        ];
        p.close();
        s.borrow_mut()
            .push((r.err().map(|e| e.code()), refused, p.is_closed()));
    })
    .unwrap();
    let mut lp = Some(lp);
    forked(|| {
        drop(lp.take());
        *seen.borrow() == [(Some(StatusCode::ECANCELED), vec![true; 4], true)]
    });
    finish(&lp.take().unwrap());
}

#[test]
fn a_write_callback_of_an_abandoned_loop_finds_its_stream_closed() {
    let (status, stderr) = in_child("write_callback_reaches_its_stream");
    assert!(status.success(), "{status}: {stderr}");
}

// ---- a walk of the loop after its abandoned handles went ----

/// Counts the loop's handles when dropped, both ways the user can, and asks
/// when its next timer is due (whether that is `ClosedLoop`).
struct CountOnDrop {
    lp: uv::LoopHandle,
    counts: Rc<Cell<Option<(usize, usize, bool)>>>,
}

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        let closed = self
            .lp
            .backend_timeout()
            .is_err_and(|e| e.kind() == uv::Category::ClosedLoop);
        self.counts.set(Some((
            self.lp.handle_count(),
            self.lp.handles().len(),
            closed,
        )));
    }
}

/// Scenario: two started timers the user holds no value of, the second one's
/// callback holding a value whose drop counts the loop's handles
/// (`handle_count`, `handles`) and asks `backend_timeout`; a forked child drops
/// the loop. The teardown lets go of each abandoned handle in turn (its
/// callbacks dropped, then its last reference, which frees it) while libuv's
/// lists of the loop still link them, and the loop's functions still reached
/// libuv: the drop of the second timer's callback walked the list of handles
/// through the first timer's freed memory, and `handles` took a reference to it
/// and dropped it, freeing it a second time (in a debug build the freed
/// memory's slab pointer was null: "unsafe precondition(s) violated:
/// NonNull::new_unchecked", the child aborted); `backend_timeout` read the
/// freed timer in libuv's timer heap. Now the loop is closed to user code from
/// the start of its abandonment: no handle is counted or given (0 and 0), and
/// `backend_timeout` is `ClosedLoop`.
fn walk_after_handles_went() {
    let lp = Loop::new().unwrap();
    let first = Timer::new(&lp).unwrap();
    first
        .start(Duration::from_secs(100), Duration::ZERO, |_| {})
        .unwrap();
    drop(first);
    let counts = Rc::new(Cell::new(None));
    let second = Timer::new(&lp).unwrap();
    let guard = CountOnDrop {
        lp: lp.handle(),
        counts: counts.clone(),
    };
    second
        .start(Duration::from_secs(100), Duration::ZERO, move |_| {
            let _ = &guard;
        })
        .unwrap();
    drop(second);
    let mut lp = Some(lp);
    forked(|| {
        drop(lp.take());
        counts.get() == Some((0, 0, true))
    });
    finish(&lp.take().unwrap());
}

#[test]
fn a_walk_of_an_abandoned_loop_finds_none_of_its_handles() {
    let (status, stderr) = in_child("walk_after_handles_went");
    assert!(status.success(), "{status}: {stderr}");
}

// ---- a write of many buffers cancelled without libuv ----

/// Scenario: a write of eight buffers libuv could not finish (libuv copies an
/// array of more than four buffers into memory of its own, which its write
/// callback path frees); a forked child drops the loop. The write completed
/// with `ECANCELED` without libuv, and that copy leaked (valgrind in the child:
/// 128 bytes definitely lost, allocated by `uv_write2`, stream.c:1399). Now the
/// teardown frees it as libuv's completion would: `ECANCELED`, nothing lost.
fn vectored_write_cancelled() {
    let lp = Loop::new().unwrap();
    let (p, _peer) = pipe(&lp);
    let parts = (0..8).map(|_| uv_tests::net::pattern(1 << 20)).collect();
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    p.write(WriteData::Many(parts), move |_, r| {
        g.set(Some(r.err().map(|e| e.code())))
    })
    .unwrap();
    let mut lp = Some(lp);
    forked(|| {
        drop(lp.take());
        got.get() == Some(Some(StatusCode::ECANCELED))
    });
    finish(&lp.take().unwrap());
}

#[test]
fn a_cancelled_write_of_many_buffers_of_an_abandoned_loop_completes() {
    let (status, stderr) = in_child("vectored_write_cancelled");
    assert!(status.success(), "{status}: {stderr}");
}

// ---- an abandoned loop nothing refers to ----

/// Scenario: a loop with a started timer the user holds no value of; a forked
/// child drops the loop. The loop is leaked by design (libuv still holds it),
/// but nothing referred to it once its last handle went: valgrind reported the
/// loop and its memory pool as definitely lost (the child exited with status 99
/// under `tests/valgrind.sh`). Now a leaked loop stays reachable from a list of
/// leaked loops: nothing lost. (Natively: the child's teardown ends, and its
/// loop functions answer `ClosedLoop`.)
fn abandoned_loop_nothing_refers_to() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    t.start(Duration::from_secs(100), Duration::ZERO, |_| {})
        .unwrap();
    drop(t);
    let lh = lp.handle();
    let mut lp = Some(lp);
    forked(|| {
        drop(lp.take());
        lh.now()
            .is_err_and(|e| e.kind() == uv::Category::ClosedLoop)
            && lh.handle_count() == 0
    });
    finish(&lp.take().unwrap());
}

#[test]
fn an_abandoned_loop_nothing_refers_to_is_not_lost() {
    let (status, stderr) = in_child("abandoned_loop_nothing_refers_to");
    assert!(status.success(), "{status}: {stderr}");
}

// ---- the signal watch of an abandoned loop ----

/// Runs `lp` one iteration at a time until `done`, for at most 100 iterations:
/// whether `done` came.
fn run_until(lp: &Loop, done: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if done() {
            return true;
        }
        lp.run(RunMode::Once).unwrap();
    }
    done()
}

/// Scenario: the parent watches `SIGUSR2` on its loop; a forked child drops the
/// loop (which it did not re-create) and the signal handle, then watches
/// `SIGUSR2` on a loop of its own and raises it. The abandoned handle stayed in
/// libuv's process-wide table of watched signals: the child's new watch was
/// linked in beside its freed memory (valgrind: "Invalid read" and "Invalid
/// write" in `uv__signal_start`), and the child's delivery went to it too,
/// through the abandoned loop's signal pipe, which is the parent's: the parent's
/// callback ran for a signal the parent never got (1 call). Now abandoning a
/// signal handle takes it out of that table (as its close would; the signal's
/// disposition is put back as on a close): the child's own watch gets its
/// signal, the parent's callback none (0 calls).
fn signal_watch_of_an_abandoned_loop() {
    let lp = Loop::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let s = Signal::new(&lp).unwrap();
    let c = calls.clone();
    s.start(Signum::User2, move |_, _| c.set(c.get() + 1))
        .unwrap();
    let mut lp = Some(lp);
    let mut s = Some(s);
    forked(|| {
        drop(lp.take());
        drop(s.take());
        let own = Loop::new().unwrap();
        let got = Rc::new(Cell::new(0));
        let g = got.clone();
        let mine = Signal::new(&own).unwrap();
        if mine
            .start(Signum::User2, move |_, _| g.set(g.get() + 1))
            .is_err()
        {
            return false;
        }
        uv_tests::raise("USR2");
        let delivered = run_until(&own, || got.get() > 0);
        mine.close();
        let ran_out = !own.run(RunMode::Default).unwrap();
        ran_out && own.close().is_ok() && delivered && got.get() == 1
    });
    let lp = lp.take().unwrap();
    // What the child wrote to this loop's signal pipe is there by now: a few
    // iterations read it.
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(
        calls.get(),
        0,
        "the parent's callback, for the child's signal"
    );
    drop(s);
    finish(&lp);
}

#[test]
fn a_signal_watch_of_an_abandoned_loop_leaves_the_process_table() {
    let (status, stderr) = in_child("signal_watch_of_an_abandoned_loop");
    assert!(status.success(), "{status}: {stderr}");
}

/// The parent's side of the scenarios below, once its forked child raised
/// `SIGUSR2` and left: the signal handle `s` of the loop, whose callback counts
/// in `calls`, heard none of the child's signals (what the child wrote to the
/// loop's signal pipe is there by now: a few iterations read it), then hears
/// the parent's own, once; then closes and the loop runs out.
fn only_its_own_signal(lp: &Loop, calls: &Cell<usize>, s: &Signal) {
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(
        calls.get(),
        0,
        "the parent's callback, for the child's signals"
    );
    uv_tests::raise("USR2");
    assert!(run_until(lp, || calls.get() > 0), "the parent's own signal");
    assert_eq!(calls.get(), 1, "the parent's callback, for its own signal");
    s.close();
    finish(lp);
}

/// Scenario: the parent watches `SIGUSR2`, then closes that watch and watches it
/// again with a new handle; a forked child that neither re-creates nor drops
/// the loop raises `SIGUSR2` three times and leaves. libuv's handler, inherited
/// with its table of watched signals, wrote each of the child's deliveries into
/// the loop's signal pipe, which is the parent's, naming the child's copy of the
/// watching handle: the parent's callback ran for signals only the child got (3
/// calls), and a delivery naming a handle the parent had closed since would
/// have been read from freed memory. Now a forked child's copy of each loop's
/// pipe writes into a pipe of the child's own: the parent's callback runs only
/// for its own signal (1 call, after it raised one).
fn signals_of_a_child_that_keeps_the_loop() {
    let lp = Loop::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let first = Signal::new(&lp).unwrap();
    first.start(Signum::User2, |_, _| {}).unwrap();
    first.close();
    assert!(lp.run(RunMode::NoWait).is_ok());
    let s = Signal::new(&lp).unwrap();
    let c = calls.clone();
    s.start(Signum::User2, move |_, _| c.set(c.get() + 1))
        .unwrap();
    forked(|| {
        for _ in 0..3 {
            uv_tests::raise("USR2");
        }
        true
    });
    only_its_own_signal(&lp, &calls, &s);
}

#[test]
fn a_child_that_keeps_the_loop_keeps_its_signals() {
    let (status, stderr) = in_child("signals_of_a_child_that_keeps_the_loop");
    assert!(status.success(), "{status}: {stderr}");
}

/// Scenario: a loop re-created in a forked child (`after_fork`) has a signal
/// pipe of its own, which that child's own forked child takes over in turn:
/// the grandchild's signals do not reach the child's loop (0 calls), the
/// child's own do (1 call).
fn signals_of_a_grandchild() {
    let lp = Loop::new().unwrap();
    let s = Signal::new(&lp).unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    s.start(Signum::User2, move |_, _| c.set(c.get() + 1))
        .unwrap();
    forked(|| {
        if lp.after_fork().is_err() {
            return false;
        }
        // SAFETY: this child runs alone; the grandchild only raises signals
        // and leaves with `_exit`.
        let status = unsafe {
            uv_tests::in_fork(|| {
                for _ in 0..3 {
                    uv_tests::raise("USR2");
                }
                true
            })
        };
        for _ in 0..3 {
            if lp.run(RunMode::NoWait).is_err() {
                return false;
            }
        }
        let none = calls.get() == 0;
        uv_tests::raise("USR2");
        let own = run_until(&lp, || calls.get() > 0) && calls.get() == 1;
        status == 0 && none && own
    });
    // The parent's loop got none of them.
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(
        calls.get(),
        0,
        "the parent's callback, for its children's signals"
    );
    s.close();
    finish(&lp);
}

#[test]
fn a_re_created_loops_signals_stay_out_of_its_childs_children() {
    let (status, stderr) = in_child("signals_of_a_grandchild");
    assert!(status.success(), "{status}: {stderr}");
}

/// Scenario: a timer's callback forks; the child raises `SIGUSR1`, which a
/// signal handle of the loop watches, and returns to the `uv_run` that called
/// it (it runs the parent's loop from then on; the parent waits for it, then
/// closes both handles). The child's copy of the loop's signal pipe must stay
/// the one the loop reads there: its signal callback runs once and closes the
/// handle, and its run ends. (Redirected to a pipe nobody reads, the signal
/// was lost and, counted as caught, kept the handle's close from finishing:
/// the child spun until its alarm.)
fn signals_of_a_child_forked_inside_a_callback() {
    let lp = Loop::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let s = Signal::new(&lp).unwrap();
    let c = calls.clone();
    s.start(Signum::User1, move |s, _| {
        c.set(c.get() + 1);
        s.close();
    })
    .unwrap();
    let child_pid = Rc::new(Cell::new(-1));
    let t = Timer::new(&lp).unwrap();
    let (pid, s2) = (child_pid.clone(), s.clone());
    t.start(Duration::ZERO, Duration::ZERO, move |t| {
        // SAFETY: the scenario's process has one thread (`--test-threads=1`).
        let forked = unsafe { libc::fork() };
        assert!(forked >= 0);
        if forked == 0 {
            // SAFETY: a child whose loop never ends is ended (SIGALRM).
            unsafe { libc::alarm(30) };
            uv_tests::raise("USR1");
        } else {
            // The parent waits for the child before it goes on with the loop
            // (see `fork_inside_a_callback`).
            let mut status = 0;
            // SAFETY: `forked` is this process's child.
            let reaped = unsafe { libc::waitpid(forked, &mut status, 0) };
            assert_eq!(reaped, forked);
            assert_eq!(status, 0, "the forked child's outcome (wait status)");
            s2.close();
        }
        pid.set(forked);
        t.close();
    })
    .unwrap();
    let alive = lp.run(RunMode::Default).unwrap();
    if child_pid.get() == 0 {
        let ok = !alive && calls.get() == 1 && s.is_closed();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    assert!(!alive);
    assert_eq!(
        calls.get(),
        0,
        "the parent's callback, for the child's signal"
    );
}

#[test]
fn a_child_forked_inside_a_callback_hears_its_signals() {
    let (status, stderr) = in_child("signals_of_a_child_forked_inside_a_callback");
    assert!(status.success(), "{status}: {stderr}");
}

/// Scenario: the parent watches `SIGUSR2` (unreferenced); a timer's callback
/// forks, and the child, whose run of the loop then ends, raises `SIGUSR2`
/// twice and leaves. The loop's pipe, left to the child for that run, is taken
/// over when it ends: the parent's callback runs only for its own signal (1
/// call; the child's two reached it before).
fn signals_after_the_run_a_child_was_forked_in() {
    let lp = Loop::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let s = Signal::new(&lp).unwrap();
    let c = calls.clone();
    s.start(Signum::User2, move |_, _| c.set(c.get() + 1))
        .unwrap();
    s.unref().unwrap();
    let child_pid = Rc::new(Cell::new(-1));
    let t = Timer::new(&lp).unwrap();
    let pid = child_pid.clone();
    t.start(Duration::ZERO, Duration::ZERO, move |t| {
        // SAFETY: the scenario's process has one thread (`--test-threads=1`).
        let forked = unsafe { libc::fork() };
        assert!(forked >= 0);
        if forked > 0 {
            // The parent waits for the child before it goes on with the loop
            // (see `fork_inside_a_callback`).
            let mut status = 0;
            // SAFETY: `forked` is this process's child.
            let reaped = unsafe { libc::waitpid(forked, &mut status, 0) };
            assert_eq!(reaped, forked);
            assert_eq!(status, 0, "the forked child's outcome (wait status)");
        }
        pid.set(forked);
        t.close();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    if child_pid.get() == 0 {
        uv_tests::raise("USR2");
        uv_tests::raise("USR2");
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    // Referenced again, so that the runs below poll.
    s.ref_().unwrap();
    only_its_own_signal(&lp, &calls, &s);
}

#[test]
fn a_child_forked_inside_a_callback_leaves_the_parents_signals_once_its_run_ends() {
    let (status, stderr) = in_child("signals_after_the_run_a_child_was_forked_in");
    assert!(status.success(), "{status}: {stderr}");
}

/// Runs `depth` loops nested in each other (each in a timer callback of the
/// one before); the innermost watches `SIGUSR1` and forks in a timer callback:
/// the child raises the signal and goes on running that loop, whose signal
/// callback must run (and close its handle, ending the child's run); the
/// parent waits for it, then closes the handle. Returns the child's wait
/// status (in the parent).
fn nested_fork(depth: usize) -> i32 {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    let status = Rc::new(Cell::new(-1));
    if depth > 1 {
        let st = status.clone();
        t.start(Duration::ZERO, Duration::ZERO, move |t| {
            st.set(nested_fork(depth - 1));
            t.close();
        })
        .unwrap();
        lp.run(RunMode::Default).unwrap();
        return status.get();
    }
    let calls = Rc::new(Cell::new(0));
    let s = Signal::new(&lp).unwrap();
    let c = calls.clone();
    s.start(Signum::User1, move |s, _| {
        c.set(c.get() + 1);
        s.close();
    })
    .unwrap();
    let (s2, st) = (s.clone(), status.clone());
    let child = Rc::new(Cell::new(false));
    let ch = child.clone();
    t.start(Duration::ZERO, Duration::ZERO, move |t| {
        // SAFETY: the scenario's process has one thread (`--test-threads=1`).
        let forked = unsafe { libc::fork() };
        assert!(forked >= 0);
        if forked == 0 {
            ch.set(true);
            // SAFETY: a child whose loop never ends is ended (SIGALRM).
            unsafe { libc::alarm(30) };
            uv_tests::raise("USR1");
        } else {
            let mut ws = 0;
            // SAFETY: `forked` is this process's child.
            assert_eq!(unsafe { libc::waitpid(forked, &mut ws, 0) }, forked);
            st.set(ws);
            s2.close();
        }
        t.close();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    if child.get() {
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(if calls.get() == 1 { 0 } else { 1 }) };
    }
    status.get()
}

/// Scenario: [`nested_fork`] nine loops deep: the innermost loop, whose
/// callback forks, keeps its pipe in the child. (A record of the thread's
/// running loops that kept the outermost eight took that loop's pipe over:
/// its signal was lost, and the child ran until its alarm.)
fn signals_of_a_child_forked_nine_loops_deep() {
    assert_eq!(
        nested_fork(9),
        0,
        "the forked child's outcome (wait status)"
    );
}

#[test]
fn a_child_forked_nine_loop_runs_deep_hears_its_signals() {
    let (status, stderr) = in_child("signals_of_a_child_forked_nine_loops_deep");
    assert!(status.success(), "{status}: {stderr}");
}

/// The descriptors open in this process, in increasing order.
fn open_descriptors() -> Vec<i32> {
    let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

/// The file type bits of descriptor `fd` (`S_IFMT`), or 0 when it is closed.
fn file_type(fd: i32) -> libc::mode_t {
    // SAFETY: `st` is a writable stat buffer; fstat only fills it.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return 0;
        }
        st.st_mode & libc::S_IFMT
    }
}

/// Scenario: a forked child puts a file (`/dev/null`) on the number of the
/// write end of the loop's signal pipe (the highest-numbered pipe descriptor
/// the loop's creation opened: libuv makes its process-wide signal lock first),
/// a daemon's way with inherited descriptors; its own forked child (the
/// grandchild) must find that file there. The registry of the pipes a forked
/// child takes over kept the number after the first fork: the grandchild's
/// fork handler put a pipe over the file. Now the pipes a child took over leave
/// the registry.
fn descriptors_of_a_grandchild() {
    let before = open_descriptors();
    let lp = Loop::new().unwrap();
    let pipe_end = open_descriptors()
        .into_iter()
        .filter(|fd| !before.contains(fd) && file_type(*fd) == libc::S_IFIFO)
        .max()
        .expect("the loop's signal pipe");
    forked(|| {
        let Ok(null) = std::fs::File::open("/dev/null") else {
            return false;
        };
        use std::os::fd::AsRawFd;
        // SAFETY: puts a copy of the file on `pipe_end` (the child's copy of
        // the loop's pipe, which the child does not use).
        if unsafe { libc::dup2(null.as_raw_fd(), pipe_end) } != pipe_end {
            return false;
        }
        // SAFETY: this child runs alone; the grandchild only looks at a
        // descriptor and leaves with `_exit`.
        let status = unsafe { uv_tests::in_fork(|| file_type(pipe_end) == libc::S_IFCHR) };
        status == 0 && file_type(pipe_end) == libc::S_IFCHR
    });
    assert_eq!(file_type(pipe_end), libc::S_IFIFO, "the parent's pipe");
    finish(&lp);
}

#[test]
fn a_childs_own_file_on_a_loops_pipe_number_reaches_its_children() {
    let (status, stderr) = in_child("descriptors_of_a_grandchild");
    assert!(status.success(), "{status}: {stderr}");
}

/// Scenario: a forked child starts a signal watch on a loop it did not re-create
/// (`after_fork`). The watch started: libuv's handler in the child would write
/// each delivery, naming the child's new handle, to that loop's signal pipe,
/// which is the parent's, and the parent's loop would read a handle at that
/// address in its own memory. Now `start` and `start_oneshot` are `EINVAL` there
/// (the spec's `own_process` state) and the handle stays stopped; after
/// `after_fork` the same handle starts and gets the child's signal.
fn signal_start_before_after_fork() {
    let lp = Loop::new().unwrap();
    forked(|| {
        let s = Signal::new(&lp).unwrap();
        let refused = s.start(Signum::User2, |_, _| {}).map_err(|e| e.code())
            == Err(StatusCode::EINVAL)
            && s.start_oneshot(Signum::User2, |_, _| {})
                .map_err(|e| e.code())
                == Err(StatusCode::EINVAL)
            && !s.is_active();
        if !refused || lp.after_fork().is_err() {
            return false;
        }
        let got = Rc::new(Cell::new(0));
        let g = got.clone();
        if s.start(Signum::User2, move |_, _| g.set(g.get() + 1))
            .is_err()
        {
            return false;
        }
        uv_tests::raise("USR2");
        let delivered = run_until(&lp, || got.get() > 0);
        s.close();
        delivered && got.get() == 1 && !lp.run(RunMode::Default).unwrap()
    });
    finish(&lp);
}

#[test]
fn a_signal_watch_is_refused_in_a_child_that_did_not_re_create_the_loop() {
    let (status, stderr) = in_child("signal_start_before_after_fork");
    assert!(status.success(), "{status}: {stderr}");
}

// ---- the parent's watches, and a child's closes ----

/// Whether `r` is the error `code`.
fn is_code<T>(r: uv::Result<T>, code: StatusCode) -> bool {
    r.map_err(|e| e.code()).err() == Some(code)
}

/// Scenario: the parent's loop reads a pipe, polls a socket and watches a
/// directory, and has run once (the descriptors are in its epoll instance); a
/// forked child that did not re-create the loop closes the three handles and a
/// listening TCP handle. libuv's close took each descriptor out of the epoll
/// instance the two processes share, and the directory's watch out of their
/// inotify instance: the parent's loop never heard of the data, the readable
/// socket or the new file (it waited for its watchdog timer, each of the 100
/// turns). Now the child's closes are put off until `after_fork` (the handles
/// are closing for the child at once), and what would change that state in
/// the child is `EINVAL`: a new poll handle, the starts and stops of poll and
/// file watchers, a spawn (libuv's `SIGCHLD` watch writes to the shared signal
/// pipe), `close_reset` (which leaves the handle open). The parent hears of all
/// three.
fn closes_in_a_child_spare_the_parents_watches() {
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe(&lp);
    let read = Rc::new(RefCell::new(Vec::new()));
    let r = read.clone();
    p.read_start(move |_, d| {
        if let Ok(d) = d {
            r.borrow_mut().extend_from_slice(d);
        }
    })
    .unwrap();
    let (polled, mut poll_peer) = UnixStream::pair().unwrap();
    let poll = uv::Poll::new(&lp, Rc::new(polled)).unwrap();
    let readable = Rc::new(Cell::new(0));
    let r = readable.clone();
    poll.start(uv::PollEvent::READABLE, move |h, _, _| {
        r.set(r.get() + 1);
        h.stop().unwrap();
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("uv-teardown-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let watch = uv::FsEvent::new(&lp).unwrap();
    let names = Rc::new(RefCell::new(Vec::new()));
    let n = names.clone();
    watch
        .start(&dir, uv::FsEventFlags::empty(), move |_, name, _, _| {
            n.borrow_mut().push(name.map(|n| n.to_owned()));
        })
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = uv::Tcp::try_from((&lp, listener)).unwrap();
    tcp.listen(8, |_, _| {}).unwrap();
    assert!(lp.run(RunMode::NoWait).unwrap());
    forked(|| {
        let (other, _) = UnixStream::pair().unwrap();
        let refused = [
            is_code(poll.stop(), StatusCode::EINVAL),
            is_code(
                poll.start(uv::PollEvent::WRITABLE, |_, _, _| {}),
                StatusCode::EINVAL,
            ),
            is_code(watch.stop(), StatusCode::EINVAL),
            is_code(
                watch.start(&dir, uv::FsEventFlags::empty(), |_, _, _, _| {}),
                StatusCode::EINVAL,
            ),
            uv::Poll::new(&lp, other)
                .map_err(|e| e.error().code())
                .err()
                == Some(StatusCode::EINVAL),
            is_code(
                uv::Process::spawn(&lp, &uv::ProcessOptions::new("true"), |_, _, _| {}),
                StatusCode::EINVAL,
            ),
            is_code(tcp.close_reset(), StatusCode::EINVAL),
            !tcp.is_closing() && poll.is_active() && watch.is_active(),
        ];
        p.close();
        poll.close();
        watch.close();
        tcp.close();
        let closed = |e: uv::Error| e.kind() == uv::Category::ClosedHandle;
        let closing = [
            p.is_closing() && p.try_write(b"x").is_err_and(closed),
            poll.is_closing() && watch.is_closing() && tcp.is_closing(),
            lp.handles().is_empty(),
            // The put-off closes do not keep the loop from closing (abandoned).
            lp.close().is_ok() && lp.handles().is_empty(),
        ];
        refused.iter().chain(&closing).all(|&ok| ok)
    });
    peer.write_all(b"after").unwrap();
    poll_peer.write_all(b"x").unwrap();
    std::fs::write(dir.join("new"), b"").unwrap();
    // Each turn waits at most for the watchdog's next tick.
    let watchdog = Timer::new(&lp).unwrap();
    watchdog
        .start(Duration::from_millis(50), Duration::from_millis(50), |_| {})
        .unwrap();
    let heard = run_until(&lp, || {
        read.borrow().len() == 5 && readable.get() > 0 && !names.borrow().is_empty()
    });
    assert!(
        heard,
        "read {:?}, readable {}, names {:?}",
        read.borrow(),
        readable.get(),
        names.borrow()
    );
    assert_eq!(&read.borrow()[..], b"after");
    assert_eq!(readable.get(), 1);
    assert!(names
        .borrow()
        .iter()
        .all(|n| n.as_deref() == Some(std::path::Path::new("new"))));
    finish(&lp);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_childs_closes_leave_the_parents_watches_alone() {
    let (status, stderr) = in_child("closes_in_a_child_spare_the_parents_watches");
    assert!(status.success(), "{status}: {stderr}");
}

/// Scenario: a forked child closes a reading pipe (with a close callback) and
/// drops the only value of another pipe (whose lifetime rule then closes it),
/// then re-creates the loop. Both closes were put off (the handles closing for
/// the child, no callback run), and `after_fork` makes them: the close callback
/// runs once in the loop's next iteration, after which nothing keeps the loop
/// alive.
fn closes_put_off_until_after_fork() {
    let lp = Loop::new().unwrap();
    let (p, _peer) = pipe(&lp);
    p.read_start(|_, _| {}).unwrap();
    let (q, _q_peer) = pipe(&lp);
    assert!(lp.run(RunMode::NoWait).unwrap());
    forked(move || {
        let closes = Rc::new(Cell::new(0));
        let c = closes.clone();
        p.close_with(move |h| {
            if h.is_closed() {
                c.set(c.get() + 1);
            }
        });
        drop(q);
        let put_off = p.is_closing() && !p.is_closed() && closes.get() == 0;
        if !put_off || lp.after_fork().is_err() || closes.get() != 0 {
            return false;
        }
        let alive = lp.run(RunMode::Default).unwrap();
        !alive && closes.get() == 1 && p.is_closed() && lp.handles().is_empty()
    });
}

#[test]
fn a_childs_closes_are_made_by_after_fork() {
    let (status, stderr) = in_child("closes_put_off_until_after_fork");
    assert!(status.success(), "{status}: {stderr}");
}

/// Scenario: a forked child closes a pipe (its close put off), then drops the
/// loop without re-creating it. The put-off handle is abandoned with the
/// others: marked closed, its close callback dropped unrun (once: the value
/// it holds counts its drops).
fn put_off_close_abandoned_with_its_loop() {
    let lp = Loop::new().unwrap();
    let (p, _peer) = pipe(&lp);
    forked(move || {
        let drops = Arc::new(AtomicUsize::new(0));
        let held = CountDrops(drops.clone());
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        p.close_with(move |_| {
            let _held = &held;
            r.set(true);
        });
        let put_off = p.is_closing() && !p.is_closed();
        drop(lp);
        put_off && p.is_closed() && !ran.get() && drops.load(Ordering::SeqCst) == 1
    });
}

/// Scenario: a thread of the parent holds the lock of the loop's queue of
/// finished thread-pool requests at the fork (as a pool thread does for a
/// moment when it adds the request it finished; here a thread of the test
/// takes it through libuv). The child re-creates the loop: `uv_loop_fork`
/// left the lock held, by a thread the child does not have, so the child's
/// first job never completed (its pool thread and the loop both waited for
/// the lock until the child's alarm killed it), and closing the loop would
/// have aborted (libuv destroys the lock). Now `after_fork` makes a held lock
/// anew: the job gives its value and the loop closes.
fn after_fork_with_the_pool_queue_lock_held() {
    use uv::runtime::HandleKind as _;
    // The holder is a job on the loop's pool that holds nothing of its own (in
    // the child its thread is not there: what it held would be lost to a leak
    // checker), as `hold_pool`'s blockers.
    static LOOP: AtomicUsize = AtomicUsize::new(0);
    static LOCKED: OnceLock<Barrier> = OnceLock::new();
    static RELEASE: OnceLock<Barrier> = OnceLock::new();
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    // SAFETY: the timer is open; its loop field is read.
    let raw_loop = unsafe { (*t.typed().raw("loop").unwrap()).loop_ };
    drop(t);
    LOOP.store(raw_loop as usize, Ordering::SeqCst);
    let locked = LOCKED.get_or_init(|| Barrier::new(2));
    let release = RELEASE.get_or_init(|| Barrier::new(2));
    let got: PoolGot = Rc::default();
    lp.queue_work(
        move || {
            let l = LOOP.load(Ordering::SeqCst) as *mut uv::sys::uv_loop_t;
            // SAFETY: the loop is open until the job's completion; its lock is
            // taken and given back by this thread, as a pool thread does.
            unsafe {
                let m = std::ptr::addr_of_mut!((*l).wq_mutex);
                uv::sys::uv_mutex_lock(m);
                locked.wait();
                release.wait();
                uv::sys::uv_mutex_unlock(m);
            }
        },
        record(&got, "holder"),
    )
    .unwrap();
    locked.wait();
    let child = || {
        // SAFETY: a child that waits for the lock forever ends (SIGALRM).
        unsafe { libc::alarm(30) };
        if lp.after_fork().is_err() {
            return false;
        }
        let own = Rc::new(Cell::new(None));
        let o = own.clone();
        if lp.queue_work(|| 7u8, move |r| o.set(r.ok())).is_err() {
            return false;
        }
        let ran = lp.run(RunMode::Default).is_ok_and(|alive| !alive);
        ran && own.get() == Some(7) && lp.close().is_ok()
    };
    // SAFETY: as in `forked` (the status is checked below, once the lock is
    // given back).
    let status = unsafe { uv_tests::in_fork(child) };
    release.wait();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*got.borrow(), [("holder", None)]);
    assert_eq!(status, 0, "the forked child's outcome (wait status)");
}

#[test]
fn after_fork_frees_the_pool_queue_lock_a_parents_thread_held() {
    let (status, stderr) = in_child("after_fork_with_the_pool_queue_lock_held");
    assert!(status.success(), "{status}: {stderr}");
}

/// Scenario: a `stat` on the parent's pool, in flight at the fork, whose
/// callback closes a reading pipe; the child re-creates the loop, which runs
/// that callback. The close was put off (the loop was not yet the child's
/// while `after_fork` ran the parent's requests' callbacks) and nothing made
/// it afterwards: the handle stayed open in libuv, reading, and the child's
/// `run` never returned (its alarm ended it). Now a close made while the loop
/// runs (as `after_fork` marks it then) is made at once: the close callback
/// runs once and the loop ends.
fn close_in_a_callback_of_after_fork() {
    let lp = Loop::new().unwrap();
    let (p, _peer) = pipe(&lp);
    p.read_start(|_, _| {}).unwrap();
    let closes = Rc::new(Cell::new(0));
    let (c, p2) = (closes.clone(), p.clone());
    Fs::stat(&lp, "/", move |_| {
        p2.close_with(move |_| c.set(c.get() + 1));
    })
    .unwrap();
    forked(|| {
        // SAFETY: a child whose loop never ends is ended (SIGALRM).
        unsafe { libc::alarm(30) };
        if lp.after_fork().is_err() || !p.is_closing() {
            return false;
        }
        let alive = lp.run(RunMode::Default).unwrap();
        !alive && closes.get() == 1 && p.is_closed()
    });
    finish(&lp);
}

#[test]
fn a_close_in_a_callback_that_after_fork_runs_is_made() {
    let (status, stderr) = in_child("close_in_a_callback_of_after_fork");
    assert!(status.success(), "{status}: {stderr}");
}

/// Scenario: a timer's callback forks; in the child it closes a reading pipe
/// and the timer, and returns to the `uv_run` that called it (the child runs
/// the parent's loop from then on: its own business). The pipe's close was put
/// off as for a child that did not re-create the loop: libuv still counted
/// the pipe as reading and the child's `run` never returned (its alarm ended
/// it). Now a close made while the loop runs is made at once: the child's run
/// ends with its close callback run once. The parent closes both too.
fn fork_inside_a_callback() {
    let lp = Loop::new().unwrap();
    let (p, _peer) = pipe(&lp);
    p.read_start(|_, _| {}).unwrap();
    let closes = Rc::new(Cell::new(0));
    let child_pid = Rc::new(Cell::new(-1));
    let t = Timer::new(&lp).unwrap();
    let (c, pid, p2) = (closes.clone(), child_pid.clone(), p.clone());
    t.start(Duration::ZERO, Duration::ZERO, move |t| {
        // SAFETY: the scenario's process has one thread (`--test-threads=1`).
        let forked = unsafe { libc::fork() };
        assert!(forked >= 0);
        if forked == 0 {
            // SAFETY: a child whose loop never ends is ended (SIGALRM).
            unsafe { libc::alarm(30) };
        }
        if forked > 0 {
            // The parent waits for the child before it goes on with the loop:
            // two processes running one loop race on libuv's shared submission
            // ring (linux.c uv__epoll_ctl_flush asserts).
            let mut status = 0;
            // SAFETY: `forked` is this process's child.
            let reaped = unsafe { libc::waitpid(forked, &mut status, 0) };
            assert_eq!(reaped, forked);
            assert_eq!(status, 0, "the forked child's outcome (wait status)");
        }
        pid.set(forked);
        let c = c.clone();
        p2.close_with(move |_| c.set(c.get() + 1));
        t.close();
    })
    .unwrap();
    let alive = lp.run(RunMode::Default).unwrap();
    if child_pid.get() == 0 {
        let ok = !alive && closes.get() == 1 && p.is_closed();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    assert!(!alive);
    assert_eq!(closes.get(), 1);
    assert!(child_pid.get() > 0);
}

#[test]
fn closes_in_a_child_forked_inside_a_callback_are_made() {
    let (status, stderr) = in_child("fork_inside_a_callback");
    assert!(status.success(), "{status}: {stderr}");
}

#[test]
fn a_put_off_close_is_abandoned_with_its_loop() {
    let (status, stderr) = in_child("put_off_close_abandoned_with_its_loop");
    assert!(status.success(), "{status}: {stderr}");
}

// ---- thread-pool requests of an abandoned loop ----

/// What the thread-pool requests' callbacks got: the request's name and its
/// error code (`None` for `Ok`), in the order they ran.
type PoolGot = Rc<RefCell<Vec<(&'static str, Option<StatusCode>)>>>;

/// Sorts outcomes by name, then code.
fn sort_outcomes(v: &mut [(&'static str, Option<StatusCode>)]) {
    v.sort_by_key(|&(n, c)| (n, c.map(|c| c.raw())));
}

/// A callback that records its request's outcome under `name` in `got`.
fn record<T>(got: &PoolGot, name: &'static str) -> impl FnOnce(uv::Result<T>) + 'static {
    let g = got.clone();
    move |r| g.borrow_mut().push((name, r.err().map(|e| e.code())))
}

/// Counts its drops (a job's capture, dropped where the job goes).
struct CountDrops(Arc<AtomicUsize>);

impl Drop for CountDrops {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Queues one blocker per pool thread (each recorded as `"blocker"` in `got`)
/// and returns once each runs on its thread: they end when the returned
/// barrier is waited on.
fn hold_pool(lp: &Loop, got: &PoolGot) -> Arc<Barrier> {
    let n = uv_tests::fs::pool_size();
    // The blockers hold nothing of their own: in a forked child what a running
    // job holds stays with its thread, which is not there (lost to a leak
    // checker, as the thread's stack is).
    static STARTED: OnceLock<Barrier> = OnceLock::new();
    static RELEASE: OnceLock<Arc<Barrier>> = OnceLock::new();
    let started = STARTED.get_or_init(|| Barrier::new(n + 1));
    let release = RELEASE.get_or_init(|| Arc::new(Barrier::new(n + 1)));
    for _ in 0..n {
        lp.queue_work(
            move || {
                started.wait();
                release.wait();
            },
            record(got, "blocker"),
        )
        .unwrap();
    }
    started.wait();
    release.clone()
}

/// Thread-pool requests of `lp` in each state a fork can find them in: a job
/// and a `stat` the pool finished (queued first, so the pool ran them before
/// the blockers), one blocker running on each pool thread, and behind them a job
/// holding a [`CountDrops`], a `stat`, a lookup, random bytes and a `stat`
/// future (polled once with `w`), none started. Returns the blockers' release,
/// the drops counter, the queued `stat`'s request and the future.
#[allow(clippy::type_complexity)]
fn pool_requests(
    lp: &Loop,
    got: &PoolGot,
    w: &std::task::Waker,
) -> (
    Arc<Barrier>,
    Arc<AtomicUsize>,
    uv::Request,
    uvf::RequestFuture<uv::Stat>,
) {
    let g = got.clone();
    lp.queue_work(
        || 7u32,
        move |r| {
            g.borrow_mut()
                .push(("job run", (r.ok() != Some(7)).then_some(StatusCode::EINVAL)))
        },
    )
    .unwrap();
    Fs::stat(lp, "/", record(got, "stat run")).unwrap();
    let release = hold_pool(lp, got);
    let drops = Arc::new(AtomicUsize::new(0));
    let held = CountDrops(drops.clone());
    lp.queue_work(
        move || {
            let _ = &held;
        },
        record(got, "job queued"),
    )
    .unwrap();
    let req = Fs::stat(lp, "/", record(got, "stat queued")).unwrap();
    lp.getaddrinfo_with(
        Some("localhost"),
        None,
        &Default::default(),
        record(got, "lookup queued"),
    )
    .unwrap();
    lp.random(vec![0; 16], 0, record(got, "random queued"))
        .unwrap();
    let mut fut = uvf::request(|done| Fs::stat(lp, "/", done));
    assert!(uv_tests::provoke::poll_once(&mut fut, w).is_pending());
    (release, drops, req, fut)
}

/// The outcomes the child's teardown gives the requests of [`pool_requests`]
/// (sorted): the finished ones their result, the rest `ECANCELED`
/// (`EAI_CANCELED` for the lookup).
fn orphaned_outcomes() -> Vec<(&'static str, Option<StatusCode>)> {
    let mut want = vec![
        ("job run", None),
        ("stat run", None),
        ("job queued", Some(StatusCode::ECANCELED)),
        ("stat queued", Some(StatusCode::ECANCELED)),
        ("lookup queued", Some(StatusCode::EAI_CANCELED)),
        ("random queued", Some(StatusCode::ECANCELED)),
    ];
    want.extend((0..uv_tests::fs::pool_size()).map(|_| ("blocker", Some(StatusCode::ECANCELED))));
    sort_outcomes(&mut want);
    want
}

/// The parent's side of the pool scenarios: its requests are its own, and
/// complete there as usual once the blockers go, each `Ok`; the queued job ran
/// and dropped its capture.
fn parent_completes(
    lp: &Loop,
    got: &PoolGot,
    release: &Barrier,
    drops: &AtomicUsize,
    fut: &mut uvf::RequestFuture<uv::Stat>,
    w: &std::task::Waker,
) {
    got.borrow_mut().clear();
    release.wait();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.borrow().len(), 6 + uv_tests::fs::pool_size(), "{got:?}");
    assert!(got.borrow().iter().all(|(_, e)| e.is_none()), "{got:?}");
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(matches!(
        uv_tests::provoke::poll_once(fut, w),
        Poll::Ready(Ok(_))
    ));
}

/// Scenario: thread-pool requests in every state (finished, running on each
/// pool thread, queued: `queue_work`, a file-system `stat` and a `stat`
/// future, a DNS lookup, random bytes); a forked child drops the loop, which it
/// did not re-create. The teardown left them in flight: no thread of the child
/// runs them (the parent's pool threads are not in the child, and libuv's pool
/// starts afresh there, without the parent's queue), so no callback ran, the
/// queued job's capture was never dropped, the future stayed pending for good,
/// its task never woken. A cancel in the child reached libuv, which unlinked the
/// request from the queue as copied from the parent, through links into that
/// stale queue (writing into the child's new queue once its pool started).
/// Now the child's teardown completes each as the loop would have: the
/// finished ones with their result, the others `ECANCELED` (`EAI_CANCELED` for
/// the lookup), the queued job dropped once, the future woken with
/// `ECANCELED`; before the drop a cancel is `EBUSY` and a new request or a run
/// `EINVAL`, after it the cancel is `EINVAL` (done). The parent's requests
/// complete there as usual.
fn pool_requests_of_an_abandoned_loop() {
    let lp = Loop::new().unwrap();
    let got: PoolGot = Rc::default();
    let (c, w) = FlakyWake::with_waker(0);
    let (release, drops, req, mut fut) = pool_requests(&lp, &got, &w);
    let mut lp = Some(lp);
    // SAFETY: as in `forked`. (The status is checked once the parent released
    // its blockers: a panic with pool threads held would hang the process's
    // exit, where libuv joins them.)
    let status = unsafe {
        uv_tests::in_fork(|| {
            let l = lp.take().unwrap();
            let refused = req.cancel().is_err_and(|e| e.code() == StatusCode::EBUSY)
                && l.queue_work(|| (), |_| {})
                    .is_err_and(|e| e.code() == StatusCode::EINVAL)
                && Fs::stat(&l, "/", |_| {}).is_err_and(|e| e.code() == StatusCode::EINVAL)
                && l.run(RunMode::NoWait)
                    .is_err_and(|e| e.code() == StatusCode::EINVAL);
            drop(l);
            let mut seen = got.borrow().clone();
            sort_outcomes(&mut seen);
            refused
                && seen == orphaned_outcomes()
                && drops.load(Ordering::SeqCst) == 1
                && !req.is_pending()
                && req.cancel().is_err_and(|e| e.code() == StatusCode::EINVAL)
                && c.wakes() == 1
                && matches!(
                    uv_tests::provoke::poll_once(&mut fut, &w),
                    Poll::Ready(Err(e)) if e.code() == StatusCode::ECANCELED
                )
        })
    };
    parent_completes(&lp.take().unwrap(), &got, &release, &drops, &mut fut, &w);
    assert_eq!(status, 0, "the forked child's outcome (wait status)");
}

#[test]
fn thread_pool_requests_of_an_abandoned_loop_complete() {
    let (status, stderr) = in_child("pool_requests_of_an_abandoned_loop");
    assert!(status.success(), "{status}: {stderr}");
}

/// Scenario: the requests of [`pool_requests_of_an_abandoned_loop`]; a forked
/// child re-creates the loop (`after_fork`) and runs it. The parent's pool
/// requests never came back in the child: the loop stayed alive for them
/// (`run` in default mode never returned: a hang), and a cancel of one reached
/// the copied queue. Now `after_fork` completes them as the abandonment does,
/// before it returns; the loop then runs out, and requests made after it
/// (a job on the child's own pool) complete as usual.
fn pool_requests_after_fork() {
    let lp = Loop::new().unwrap();
    let got: PoolGot = Rc::default();
    let (c, w) = FlakyWake::with_waker(0);
    let (release, drops, req, mut fut) = pool_requests(&lp, &got, &w);
    // SAFETY: as in `forked` (the status is checked as above).
    let status = unsafe {
        uv_tests::in_fork(|| {
            if lp.after_fork().is_err() {
                return false;
            }
            let mut seen = got.borrow().clone();
            sort_outcomes(&mut seen);
            let orphans = seen == orphaned_outcomes()
                && drops.load(Ordering::SeqCst) == 1
                && req.cancel().is_err_and(|e| e.code() == StatusCode::EINVAL)
                && c.wakes() == 1
                && matches!(
                    uv_tests::provoke::poll_once(&mut fut, &w),
                    Poll::Ready(Err(e)) if e.code() == StatusCode::ECANCELED
                );
            let own = Rc::new(Cell::new(None));
            let o = own.clone();
            if lp.queue_work(|| 5u8, move |r| o.set(r.ok())).is_err() {
                return false;
            }
            orphans && lp.run(RunMode::Default).is_ok_and(|alive| !alive) && own.get() == Some(5)
        })
    };
    parent_completes(&lp, &got, &release, &drops, &mut fut, &w);
    assert_eq!(status, 0, "the forked child's outcome (wait status)");
}

#[test]
fn thread_pool_requests_of_a_re_created_loop_complete_in_the_child() {
    let (status, stderr) = in_child("pool_requests_after_fork");
    assert!(status.success(), "{status}: {stderr}");
}

/// Scenario: a `stat` the pool finished before the fork (queued before the
/// pool's blockers), whose callback drops the `Loop` (kept where the callback
/// reaches it); a forked child re-creates the loop through a `LoopHandle`
/// (`after_fork` does not borrow the `Loop`), which completes that `stat`
/// first, then the blockers. Pins: the drop inside `after_fork` neither runs
/// the loop's teardown under it nor is lost. (Run under it, the teardown
/// cleared the loop's link to its state, and the blockers' completions that
/// followed panicked inside libuv's after-work callback looking it up: the
/// child aborted, signal 6.) The callback ran once with the `stat`'s result,
/// each blocker with `ECANCELED`, `after_fork` is `Ok` and the teardown ran at
/// its end (the loop is closed: `ClosedLoop`). In the parent the requests
/// complete as usual.
fn loop_dropped_in_after_fork() {
    let lp = Loop::new().unwrap();
    let got: PoolGot = Rc::default();
    let h = lp.handle();
    let slot = Rc::new(RefCell::new(Some(lp)));
    let s = slot.clone();
    let g = got.clone();
    Fs::stat(&h, "/", move |r| {
        g.borrow_mut().push(("stat run", r.err().map(|e| e.code())));
        drop(s.borrow_mut().take());
    })
    .unwrap();
    let release = hold_pool(slot.borrow().as_ref().unwrap(), &got);
    // SAFETY: as in `forked` (the status is checked once the blockers went).
    let status = unsafe {
        uv_tests::in_fork(|| {
            let ok = h.after_fork().is_ok();
            let mut seen = got.borrow().clone();
            sort_outcomes(&mut seen);
            let mut want = vec![("stat run", None)];
            want.extend(
                (0..uv_tests::fs::pool_size()).map(|_| ("blocker", Some(StatusCode::ECANCELED))),
            );
            sort_outcomes(&mut want);
            ok && seen == want
                && slot.borrow().is_none()
                && h.now().is_err_and(|e| e.kind() == uv::Category::ClosedLoop)
        })
    };
    let lp = slot.borrow_mut().take().unwrap();
    got.borrow_mut().clear();
    release.wait();
    lp.run(RunMode::Default).unwrap();
    // The `stat` finished before the fork; its callback ran in the first run.
    assert_eq!(got.borrow().len(), 1 + uv_tests::fs::pool_size());
    assert!(got.borrow().iter().all(|(_, e)| e.is_none()), "{got:?}");
    assert_eq!(status, 0, "the forked child's outcome (wait status)");
}

#[test]
fn a_loop_dropped_while_after_fork_completes_requests_is_torn_down_after() {
    let (status, stderr) = in_child("loop_dropped_in_after_fork");
    assert!(status.success(), "{status}: {stderr}");
}

/// Scenario: behind the pool's blockers, a job, a `stat` and a lookup whose
/// callbacks hold a value whose `Drop` panics, and a job holding one; a forked
/// child drops the loop, which it did not re-create. Pins: the teardown runs
/// each callback (`ECANCELED`, `EAI_CANCELED`) and drops the job unrun under
/// the loop's guard: each panic reaches the loop's panic hook once (4), none
/// crosses libuv's frames (the child lives). In the parent the requests
/// complete and the same values go, their panics to the hook as well.
fn pool_callbacks_that_panic_on_drop() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let got: PoolGot = Rc::default();
    let release = hold_pool(&lp, &got);
    let bomb = PanicOnDrop("job");
    lp.queue_work(
        move || {
            // Taken by the job and dropped after it (in the parent, on the pool
            // thread, so its panic is the job's: forgotten here instead).
            std::mem::forget(bomb);
        },
        {
            let bomb = PanicOnDrop("after");
            let g = got.clone();
            move |r: uv::Result<()>| {
                let _ = &bomb;
                g.borrow_mut().push(("job", r.err().map(|e| e.code())));
            }
        },
    )
    .unwrap();
    let bomb = PanicOnDrop("stat callback");
    let g = got.clone();
    Fs::stat(&lp, "/", move |r| {
        let _ = &bomb;
        g.borrow_mut().push(("stat", r.err().map(|e| e.code())));
    })
    .unwrap();
    let bomb = PanicOnDrop("lookup callback");
    let g = got.clone();
    lp.getaddrinfo_with(Some("localhost"), None, &Default::default(), move |r| {
        let _ = &bomb;
        g.borrow_mut().push(("lookup", r.err().map(|e| e.code())));
    })
    .unwrap();
    let panics = Rc::new(RefCell::new(Vec::new()));
    let seen = panics.clone();
    lp.set_panic_hook(move |p| seen.borrow_mut().push(provoked(&*p)));
    let mut lp = Some(lp);
    // SAFETY: as in `forked` (the status is checked once the blockers went).
    let status = unsafe {
        uv_tests::in_fork(|| {
            drop(lp.take());
            let mut hooked = panics.borrow().clone();
            hooked.sort();
            let mut outcomes = got.borrow().clone();
            outcomes.retain(|(n, _)| *n != "blocker");
            sort_outcomes(&mut outcomes);
            hooked
                == [
                    Some("after"),
                    Some("job"),
                    Some("lookup callback"),
                    Some("stat callback"),
                ]
                && outcomes
                    == [
                        ("job", Some(StatusCode::ECANCELED)),
                        ("lookup", Some(StatusCode::EAI_CANCELED)),
                        ("stat", Some(StatusCode::ECANCELED)),
                    ]
        })
    };
    let lp = lp.take().unwrap();
    release.wait();
    lp.run(RunMode::Default).unwrap();
    let mut hooked = panics.borrow().clone();
    hooked.sort();
    assert_eq!(
        hooked,
        [
            Some("after"),
            Some("lookup callback"),
            Some("stat callback")
        ]
    );
    assert_eq!(status, 0, "the forked child's outcome (wait status)");
}

#[test]
fn pool_callbacks_of_an_abandoned_loop_that_panic_on_drop_reach_its_hook() {
    let (status, stderr) = in_child("pool_callbacks_that_panic_on_drop");
    assert!(status.success(), "{status}: {stderr}");
}

/// Scenario: four `stat`s on the loop's io_uring ring (`UseIoUringSqpoll`, with
/// `UV_USE_IO_URING=1`), their completions not reaped (the loop has not run
/// since); a forked child re-creates the loop (`re_create`) or drops it.
/// Their completions are in the ring, which the child shares with the parent
/// and `uv_loop_fork` drops: the requests stayed pending for good, and the
/// re-created loop stayed alive for them (`alive`; a run in default mode never
/// returned). Now they complete in the child with `ECANCELED`, the re-created
/// loop is not alive for them and runs out; the parent reaps them from the
/// ring as usual (`Ok`). Nothing to test where io_uring is not available.
fn ring_requests(re_create: bool) {
    let lp = Loop::new().unwrap();
    lp.configure(uv::LoopOption::UseIoUringSqpoll).unwrap();
    let got: PoolGot = Rc::default();
    let reqs: Vec<uv::Request> = (0..4)
        .map(|_| Fs::stat(&lp, "/", record(&got, "ring stat")).unwrap())
        .collect();
    // A request on the ring refuses a cancel (libuv cannot take it back): one
    // on the thread pool (no ring here) accepts it, and the scenario ends.
    if reqs[0].cancel().is_ok() {
        lp.run(RunMode::Default).unwrap();
        return;
    }
    let mut lp = Some(lp);
    forked(|| {
        let l = lp.take().unwrap();
        let ran_out = if re_create {
            if l.after_fork().is_err() || l.alive() {
                // Its drop would run it, for requests that never come.
                std::mem::forget(l);
                return false;
            }
            l.run(RunMode::Default).is_ok_and(|alive| !alive)
        } else {
            drop(l);
            true
        };
        ran_out
            && *got.borrow() == [("ring stat", Some(StatusCode::ECANCELED)); 4]
            && reqs.iter().all(|r| !r.is_pending())
    });
    lp.take().unwrap().run(RunMode::Default).unwrap();
    assert_eq!(*got.borrow(), [("ring stat", None); 4]);
}

/// Runs a ring scenario in a child with `UV_USE_IO_URING=1` (libuv reads it
/// once per process).
fn in_ring_child(scenario: &str) {
    let out = uv_tests::output_within(
        uv_tests::scenario_command(SCENARIO, scenario).env("UV_USE_IO_URING", "1"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
}

#[test]
fn ring_requests_of_a_re_created_loop_complete_in_the_child() {
    in_ring_child("ring_requests_after_fork");
}

#[test]
fn ring_requests_of_an_abandoned_loop_complete() {
    in_ring_child("ring_requests_of_an_abandoned_loop");
}

// ---- libuv's SIGCHLD watch of an abandoned loop ----

/// The action of `SIGCHLD` is the default one.
fn sigchld_default() -> bool {
    // SAFETY: a query only (no new action); `old` is written by the call.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_DFL
    }
}

/// Scenario: the parent's loop has a process running (so libuv watches
/// `SIGCHLD` for it, on the loop's internal child watcher); a forked child
/// drops the loop, which it did not re-create, then spawns and reaps a process
/// of its own on a loop of its own and closes it. The abandoned loop's child
/// watcher stayed in libuv's process-wide table of watched signals: the
/// child's `SIGCHLD` was written to the abandoned loop's signal pipe, which is
/// the parent's (its loop read a child event of the child's as its own), and
/// once the child's own watch stopped the signal kept libuv's handler (for a
/// watch of a loop that is gone). Now the abandonment stops that watch, as the
/// user signal handles' (`SIGCHLD` is back to its default action once the
/// child's own process is closed); the parent's process is its own: it is
/// killed and reaped there.
fn child_watcher_of_an_abandoned_loop() {
    let lp = Loop::new().unwrap();
    let exit = Rc::new(Cell::new(None));
    let e = exit.clone();
    let opts = uv::ProcessOptions::new("/bin/sleep").args(["1000"]);
    let p = uv::Process::spawn(&lp, &opts, move |_, _, sig| e.set(Some(sig))).unwrap();
    let mut lp = Some(lp);
    forked(|| {
        drop(lp.take());
        let own = Loop::new().unwrap();
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        let Ok(mine) = uv::Process::spawn(
            &own,
            &uv::ProcessOptions::new("/bin/sh").args(["-c", "exit 0"]),
            move |_, status, _| d.set(status == 0),
        ) else {
            return false;
        };
        let reaped = own.run(RunMode::Default).is_ok() && done.get();
        mine.close();
        let ran_out = own.run(RunMode::Default).is_ok_and(|alive| !alive);
        reaped && ran_out && own.close().is_ok() && sigchld_default()
    });
    let lp = lp.take().unwrap();
    p.kill(Signum::Kill).unwrap();
    assert!(run_until(&lp, || exit.get().is_some()));
    assert_eq!(exit.get(), Some(Some(Signum::Kill)));
    p.close();
    finish(&lp);
}

#[test]
fn the_child_watch_of_an_abandoned_loop_leaves_the_process_table() {
    let (status, stderr) = in_child("child_watcher_of_an_abandoned_loop");
    assert!(status.success(), "{status}: {stderr}");
}

/// `after_fork` in a child that has no descriptor left for the loop's new epoll
/// instance (`EMFILE`): libuv closes the parent's instance first and leaves the
/// loop without one. `run` then reached `epoll_wait` on descriptor -1 and libuv
/// aborted the child, and a second `after_fork` closed descriptor -1 (libuv's
/// assertion in `uv__close`). Now the loop stays the parent's to this process:
/// `run`, `block_on` and new pool requests are `EINVAL`, a second `after_fork` too,
/// and its drop abandons it (no libuv call) as a forked child's.
#[test]
fn a_loop_after_fork_could_not_re_create_is_refused_not_run() {
    let (status, stderr) = in_child("after_fork_out_of_descriptors");
    assert!(status.success(), "{status}: {stderr}");
}

fn after_fork_out_of_descriptors() {
    const LIMIT: u64 = 64;
    // The loop's descriptors (its epoll instance) above the limit the child sets.
    let low: Vec<std::fs::File> = (0..LIMIT)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    let lp = Loop::new().unwrap();
    forked(move || {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: reads and sets this process's descriptor limit.
        let limited = unsafe {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && {
                lim.rlim_cur = LIMIT;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
            }
        };
        // Every descriptor below the limit taken.
        let mut fill = Vec::new();
        while let Ok(f) = std::fs::File::open("/dev/null") {
            fill.push(f);
        }
        let failed = lp
            .after_fork()
            .is_err_and(|e| e.code() == StatusCode::EMFILE);
        // A started timer: the run would poll.
        let timer = Timer::new(&lp).unwrap();
        timer
            .start(Duration::from_secs(1), Duration::ZERO, |_| {})
            .unwrap();
        let refused = lp
            .run(RunMode::NoWait)
            .is_err_and(|e| e.code() == StatusCode::EINVAL)
            && lp
                .queue_work(|| (), |_| {})
                .is_err_and(|e| e.code() == StatusCode::EINVAL)
            && lp
                .after_fork()
                .is_err_and(|e| e.code() == StatusCode::EINVAL);
        drop(timer);
        drop(lp);
        limited && failed && refused
    });
    drop(low);
    println!("scenario done");
}
