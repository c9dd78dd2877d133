//! Scenarios of libuv's own test suite (`libuv/test/test-*.c`) that the other suites
//! do not check yet, ported to the safe API: handles. Each test names the libuv file
//! it mirrors and checks values, counts, error codes and ordering, never durations.
//! Where the safe API deliberately answers differently from libuv (a closed handle
//! is `ClosedHandle`, not libuv's `EINVAL`), the test pins the safe answer and says
//! why.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use uv::Stream as _;
use uv::{
    Category, Check, FsEvent, FsEventFlags, FsPoll, Idle, Loop, Pipe, PipeFlags, Poll, PollEvent,
    Prepare, Process, ProcessOptions, RunMode, Signal, Signum, StatusCode, Stdio, Tcp, TcpFlags,
    Timer, Udp, UdpFlags,
};
use uv_tests::net::TempDir;

const MS: Duration = Duration::from_millis(1);

fn counter() -> Rc<Cell<usize>> {
    Rc::new(Cell::new(0))
}

fn bump(c: &Cell<usize>) {
    c.set(c.get() + 1);
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

type Log = Rc<RefCell<Vec<&'static str>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn code<T: std::fmt::Debug>(r: uv::Result<T>) -> StatusCode {
    r.expect_err("expected an error").code()
}

/// A port of 127.0.0.1 on which nothing listens (bound, then released).
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

// ---------------------------------------------------------------------------
// Timers

/// Mirrors libuv's test-timer.c `timer_order`: timers with the same timeout fire
/// in the order they were started, whichever order they were made in.
#[test]
fn timers_with_the_same_timeout_fire_in_start_order() {
    let lp = Loop::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let timers: Vec<Timer> = (0..4).map(|_| Timer::new(&lp).unwrap()).collect();
    for &i in &[2usize, 0, 3, 1] {
        let o = order.clone();
        timers[i]
            .start(Duration::ZERO, Duration::ZERO, move |_| {
                o.borrow_mut().push(i)
            })
            .unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*order.borrow(), vec![2, 0, 3, 1]);
    // Started again in another order: the new order holds.
    for &i in &[1usize, 3, 0, 2] {
        let o = order.clone();
        timers[i]
            .start(MS, Duration::ZERO, move |_| o.borrow_mut().push(10 + i))
            .unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(order.borrow()[4..], [11, 13, 10, 12]);
}

/// Mirrors libuv's test-timer.c `timer_huge_timeout`: a timeout near the largest
/// duration (libuv clamps `now + timeout` to the largest time) is accepted, never
/// fires, keeps the loop alive while referenced, and ends the run once unreferenced.
#[test]
fn a_huge_timeout_is_accepted_and_never_fires() {
    let lp = Loop::new().unwrap();
    let fired = counter();
    let timers: Vec<Timer> = [
        Duration::from_millis(0xffff_ffff_ffff),
        Duration::from_millis(u64::MAX),
        Duration::MAX,
    ]
    .iter()
    .map(|&timeout| {
        let t = Timer::new(&lp).unwrap();
        let f = fired.clone();
        t.start(timeout, Duration::ZERO, move |_| bump(&f)).unwrap();
        assert!(t.is_active());
        // Due in more than a century.
        assert!(t.due_in().unwrap() > Duration::from_secs(100 * 365 * 86_400));
        t
    })
    .collect();
    // Alive, and nothing due: a non-blocking run returns at once with work left.
    assert!(lp.run(RunMode::NoWait).unwrap());
    for t in &timers {
        t.unref().unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(fired.get(), 0);
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-timer.c `timer_huge_repeat`: a timer whose repeat is the
/// largest duration fires once (its next run is clamped to the end of time), while
/// a small repeating timer beside it keeps firing, ten times here.
#[test]
fn a_huge_repeat_fires_once() {
    let lp = Loop::new().unwrap();
    let (huge_calls, tiny_calls) = (counter(), counter());
    let huge = Timer::new(&lp).unwrap();
    let h = huge_calls.clone();
    huge.start(MS, Duration::MAX, move |_| bump(&h)).unwrap();
    let tiny = Timer::new(&lp).unwrap();
    let (t, hh) = (tiny_calls.clone(), huge.clone());
    tiny.start(2 * MS, 2 * MS, move |tm| {
        bump(&t);
        if t.get() == 10 {
            tm.close();
            hh.close();
        }
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(tiny_calls.get(), 10);
    assert_eq!(huge_calls.get(), 1);
}

/// Mirrors libuv's test-timer.c `timer_run_once`: `RunMode::Once` fires a due
/// timer (a zero timeout, then one of a millisecond, for which it waits) and
/// answers that nothing is left.
#[test]
fn run_once_fires_a_due_timer_and_reports_nothing_left() {
    let lp = Loop::new().unwrap();
    let fired = counter();
    let t = Timer::new(&lp).unwrap();
    let f = fired.clone();
    t.start(Duration::ZERO, Duration::ZERO, move |_| bump(&f))
        .unwrap();
    assert!(!lp.run(RunMode::Once).unwrap());
    assert_eq!(fired.get(), 1);
    let f = fired.clone();
    t.start(MS, Duration::ZERO, move |_| bump(&f)).unwrap();
    assert!(!lp.run(RunMode::Once).unwrap());
    assert_eq!(fired.get(), 2);
    t.close();
    assert!(!lp.run(RunMode::Once).unwrap());
}

/// Mirrors libuv's test-timer.c `timer_start_twice`: a second start replaces the
/// first (its timeout and its callback); the timer fires once, through the second
/// callback.
#[test]
fn starting_a_timer_twice_replaces_the_first_start() {
    let lp = Loop::new().unwrap();
    let calls = log();
    let t = Timer::new(&lp).unwrap();
    let c = calls.clone();
    t.start(Duration::from_secs(3600), Duration::ZERO, move |_| {
        c.borrow_mut().push("first")
    })
    .unwrap();
    let c = calls.clone();
    t.start(Duration::ZERO, Duration::ZERO, move |_| {
        c.borrow_mut().push("second")
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*calls.borrow(), ["second"]);
}

/// Mirrors libuv's test-timer.c `timer_no_run_on_unref`: an unreferenced timer does
/// not keep `run` going, so it never fires.
#[test]
fn an_unreferenced_timer_does_not_run() {
    let lp = Loop::new().unwrap();
    let fired = counter();
    let t = Timer::new(&lp).unwrap();
    let f = fired.clone();
    t.start(Duration::from_secs(3600), Duration::ZERO, move |_| bump(&f))
        .unwrap();
    t.unref().unwrap();
    assert!(!t.has_ref());
    assert!(t.is_active());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(fired.get(), 0);
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-timer.c `timer_init` and `timer_is_closing`: a fresh timer
/// is inactive, due in zero and without repeat; a closing one is closing and
/// inactive, and answers `ClosedHandle` (libuv would be asked about freed state).
#[test]
fn a_fresh_and_a_closing_timer() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    assert!(!t.is_active());
    assert!(!t.is_closing());
    assert!(t.has_ref());
    assert_eq!(t.due_in().unwrap(), Duration::ZERO);
    assert_eq!(t.repeat().unwrap(), Duration::ZERO);
    t.start(Duration::from_secs(10), Duration::ZERO, |_| {})
        .unwrap();
    assert!(t.is_active());
    t.close();
    assert!(t.is_closing());
    assert!(!t.is_active());
    assert_eq!(t.due_in().unwrap_err().kind(), Category::ClosedHandle);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(t.is_closed());
}

/// Mirrors libuv's test-timer-again.c: `again` restarts a repeating timer with its
/// repeat as the timeout; a repeat changed with `set_repeat` takes effect at the
/// next `again`; `again` on a started timer without repeat leaves it as it was.
#[test]
fn again_restarts_with_the_repeat() {
    let lp = Loop::new().unwrap();
    // Without repeat: `again` is accepted and changes nothing.
    let plain = Timer::new(&lp).unwrap();
    plain
        .start(Duration::from_secs(3600), Duration::ZERO, |_| {})
        .unwrap();
    plain.again().unwrap();
    assert!(plain.is_active());
    assert!(plain.due_in().unwrap() > Duration::from_secs(3000));
    plain.close();

    // A long timeout, then a repeat of 1 ms and `again`: it fires on the repeat.
    let fired = counter();
    let t = Timer::new(&lp).unwrap();
    let f = fired.clone();
    t.start(Duration::from_secs(3600), Duration::ZERO, move |t| {
        bump(&f);
        if f.get() == 3 {
            t.stop().unwrap();
        }
    })
    .unwrap();
    t.set_repeat(MS).unwrap();
    // The repeat alone does not move the pending timeout.
    assert!(t.due_in().unwrap() > Duration::from_secs(3000));
    t.again().unwrap();
    assert!(t.due_in().unwrap() <= MS);
    assert_eq!(t.repeat().unwrap(), MS);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(fired.get(), 3);
    // Stopped: `again` starts it again from its repeat.
    let f = fired.clone();
    t.start(Duration::ZERO, MS, move |t| {
        bump(&f);
        t.stop().unwrap();
    })
    .unwrap();
    t.stop().unwrap();
    t.again().unwrap();
    assert!(t.is_active());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(fired.get(), 4);
}

/// Mirrors libuv's test-timer-from-check.c: a timer started with a zero timeout
/// from a check callback fires in that same iteration, after the check phase and
/// before the next prepare callback (libuv runs due timers at the end of each
/// iteration).
#[test]
fn a_timer_started_from_check_fires_before_the_next_prepare() {
    let lp = Loop::new().unwrap();
    let events = log();
    let prepare = Prepare::new(&lp).unwrap();
    let check = Check::new(&lp).unwrap();
    let timer = Timer::new(&lp).unwrap();
    // An idle handle keeps each poll from blocking (prepare and check handles
    // alone would let it wait for good).
    let idle = Idle::new(&lp).unwrap();
    idle.start(|_| {}).unwrap();
    let e = events.clone();
    prepare
        .start(move |_| e.borrow_mut().push("prepare"))
        .unwrap();
    let (e, tm) = (events.clone(), timer.clone());
    let others = (prepare.clone(), check.clone(), idle.clone());
    check
        .start(move |_| {
            e.borrow_mut().push("check");
            if e.borrow().len() > 2 {
                return;
            }
            let e = e.clone();
            let others = others.clone();
            tm.start(Duration::ZERO, Duration::ZERO, move |_| {
                e.borrow_mut().push("timer");
                others.0.close();
                others.1.close();
                others.2.close();
            })
            .unwrap();
        })
        .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*events.borrow(), ["prepare", "check", "timer"]);
}

// ---------------------------------------------------------------------------
// Loop: phases, stop, active, ref

/// Mirrors libuv's test-loop-handles.c (the order of the phases): in one
/// `RunMode::Once` iteration idle, prepare and check callbacks run in that order,
/// then close callbacks, and a timer due at the start runs last (libuv 1.53 runs
/// due timers at the end of each iteration; `RunMode::Default` also runs them
/// once before its first iteration).
#[test]
fn phases_run_in_libuv_order_within_an_iteration() {
    let lp = Loop::new().unwrap();
    let events = log();
    let timer = Timer::new(&lp).unwrap();
    let idle = Idle::new(&lp).unwrap();
    let prepare = Prepare::new(&lp).unwrap();
    let check = Check::new(&lp).unwrap();
    let e = events.clone();
    timer
        .start(Duration::ZERO, Duration::ZERO, move |_| {
            e.borrow_mut().push("timer")
        })
        .unwrap();
    let e = events.clone();
    idle.start(move |i| {
        e.borrow_mut().push("idle");
        i.stop().unwrap();
    })
    .unwrap();
    let e = events.clone();
    prepare
        .start(move |p| {
            e.borrow_mut().push("prepare");
            p.stop().unwrap();
        })
        .unwrap();
    let e = events.clone();
    check
        .start(move |c| {
            e.borrow_mut().push("check");
            let e = e.clone();
            c.close_with(move |_| e.borrow_mut().push("close"));
        })
        .unwrap();
    // Nothing is left active after the iteration: the handles stopped or closed.
    assert!(!lp.run(RunMode::Once).unwrap());
    assert_eq!(
        *events.borrow(),
        ["idle", "prepare", "check", "close", "timer"]
    );
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-idle.c `idle_starvation`: an active idle handle makes the
/// loop poll without blocking, yet a timer still fires and check callbacks run
/// between the idle ones.
#[test]
fn an_idle_handle_does_not_starve_timers_or_checks() {
    let lp = Loop::new().unwrap();
    let (idles, checks, timers) = (counter(), counter(), counter());
    let idle = Idle::new(&lp).unwrap();
    let check = Check::new(&lp).unwrap();
    let timer = Timer::new(&lp).unwrap();
    let c = checks.clone();
    check.start(move |_| bump(&c)).unwrap();
    // The timer starts from the first idle callback, so that it cannot fire
    // before the idle handle has run (a slow start would let it).
    let (i, t, tm, c2) = (idles.clone(), timers.clone(), timer.clone(), check.clone());
    idle.start(move |idle| {
        bump(&i);
        if i.get() > 1 {
            return;
        }
        let (t, idle, c2) = (t.clone(), idle.clone(), c2.clone());
        tm.start(5 * MS, Duration::ZERO, move |t_| {
            bump(&t);
            idle.close();
            c2.close();
            t_.close();
        })
        .unwrap();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(timers.get(), 1);
    assert!(idles.get() >= 1);
    // A check after each poll, the idle handle's iterations' included (the
    // last iteration's check may come after the timer closed it, or not).
    assert!(
        checks.get() + 1 >= idles.get(),
        "{} {}",
        checks.get(),
        idles.get()
    );
    assert!(checks.get() >= 1);
}

/// Mirrors libuv's test-loop-stop.c `loop_stop_before_run`: a stop requested before
/// `run` makes the run return at once, with work left and the due timer unfired;
/// the next run goes on.
#[test]
fn stop_before_run_returns_at_once() {
    let lp = Loop::new().unwrap();
    let fired = counter();
    let t = Timer::new(&lp).unwrap();
    let f = fired.clone();
    t.start(Duration::ZERO, Duration::ZERO, move |_| bump(&f))
        .unwrap();
    lp.stop();
    assert!(lp.run(RunMode::Default).unwrap());
    assert_eq!(fired.get(), 0);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(fired.get(), 1);
}

/// Mirrors libuv's test-loop-stop.c `loop_stop`: a stop from a callback ends the
/// current `run` after that iteration; `RunMode::NoWait` in between counts
/// iterations one by one.
#[test]
fn stop_from_a_callback_ends_that_run_only() {
    let lp = Loop::new().unwrap();
    let prepares = counter();
    // The idle handle keeps the loop from blocking in its poll.
    let idle = Idle::new(&lp).unwrap();
    idle.start(|_| {}).unwrap();
    let p = Prepare::new(&lp).unwrap();
    let c = prepares.clone();
    let lh = lp.handle();
    p.start(move |p| {
        bump(&c);
        if c.get() == 3 {
            lh.stop();
        }
        if c.get() == 10 {
            p.close();
            idle.close();
        }
    })
    .unwrap();
    assert!(lp.run(RunMode::Default).unwrap());
    assert_eq!(prepares.get(), 3);
    assert!(lp.run(RunMode::NoWait).unwrap());
    assert_eq!(prepares.get(), 4);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(prepares.get(), 10);
}

/// Mirrors libuv's test-active.c: a handle is active while started, inactive once
/// stopped or closing, and closing until its close callback has run.
#[test]
fn active_follows_start_stop_and_close() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    assert!(!t.is_active());
    t.start(Duration::from_secs(1), Duration::ZERO, |_| {})
        .unwrap();
    assert!(t.is_active());
    t.stop().unwrap();
    assert!(!t.is_active());
    t.start(Duration::from_secs(1), Duration::ZERO, |_| {})
        .unwrap();
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let t2 = t.clone();
    t.close_with(move |_| s.set(Some((t2.is_active(), t2.is_closing()))));
    assert!(!t.is_active());
    assert!(t.is_closing());
    assert!(!lp.run(RunMode::Default).unwrap());
    // Inside its close callback the handle is no longer active.
    assert_eq!(seen.get().map(|s| s.0), Some(false));
    assert!(t.is_closed());
}

/// Mirrors libuv's test-ref.c (`idle_ref`, `prepare_ref`, `check_ref`,
/// `async_ref`, `signal_ref`, `fs_event_ref`, `fs_poll_ref`, `tcp_ref2`,
/// `pipe_ref2`, `udp_ref2`, `poll_ref`): a started handle of each kind, once
/// unreferenced, lets `run` end at once without calling it.
#[test]
fn started_handles_of_every_kind_stop_keeping_the_loop_once_unreferenced() {
    // Signal dispositions are the process's: the tests that watch signals run
    // one at a time, so that none counts another's.
    let _serial = uv_tests::serial();
    let dir = TempDir::new("scen-ref");
    let lp = Loop::new().unwrap();
    let calls = counter();
    let mut handles: Vec<uv::Handle> = Vec::new();

    let c = calls.clone();
    let idle = Idle::new(&lp).unwrap();
    idle.start(move |_| bump(&c)).unwrap();
    handles.push((*idle).clone());
    let c = calls.clone();
    let prepare = Prepare::new(&lp).unwrap();
    prepare.start(move |_| bump(&c)).unwrap();
    handles.push((*prepare).clone());
    let c = calls.clone();
    let check = Check::new(&lp).unwrap();
    check.start(move |_| bump(&c)).unwrap();
    handles.push((*check).clone());
    let c = calls.clone();
    let a = uv::Async::new(&lp, move |_| bump(&c)).unwrap();
    handles.push((*a).clone());
    let c = calls.clone();
    let sig = Signal::new(&lp).unwrap();
    sig.start(Signum::User2, move |_, _| bump(&c)).unwrap();
    handles.push((*sig).clone());
    let c = calls.clone();
    let ev = FsEvent::new(&lp).unwrap();
    ev.start(dir.path(), FsEventFlags::empty(), move |_, _, _, _| {
        bump(&c)
    })
    .unwrap();
    handles.push((*ev).clone());
    let c = calls.clone();
    let tcp = Tcp::new(&lp).unwrap();
    tcp.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    tcp.listen(8, move |_, _| bump(&c)).unwrap();
    handles.push((*tcp).clone());
    let c = calls.clone();
    let pipe = Pipe::new(&lp, false).unwrap();
    pipe.bind(dir.join("sock")).unwrap();
    pipe.listen(8, move |_, _| bump(&c)).unwrap();
    handles.push((*pipe).clone());
    let c = calls.clone();
    let udp = Udp::new(&lp).unwrap();
    udp.bind(addr("127.0.0.1:0"), UdpFlags::empty()).unwrap();
    udp.recv_start(move |_, _| bump(&c)).unwrap();
    handles.push((*udp).clone());
    let c = calls.clone();
    let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let poll = Poll::new(&lp, sock).unwrap();
    poll.start(PollEvent::READABLE, move |_, _, _| bump(&c))
        .unwrap();
    handles.push((*poll).clone());

    // Referenced, each alone keeps the loop alive.
    for h in &handles {
        assert!(h.is_active(), "{:?}", h.handle_type());
        assert!(h.has_ref());
        h.unref().unwrap();
        assert!(!h.has_ref());
    }
    // The idle, prepare and check handles would run in any iteration; with no
    // referenced handle there is none.
    assert!(!lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 0);
    uv_tests::finish(&lp);

    // A file poller alone (beside the others, its first stat, a request in
    // flight, would keep the loop iterating until it completes): once the stat
    // is done, the unreferenced poller lets the run end, without a callback for
    // a path that did not change.
    let lp = Loop::new().unwrap();
    let c = calls.clone();
    let fp = FsPoll::new(&lp).unwrap();
    fp.start(dir.path(), Duration::from_secs(3600), move |_, _| bump(&c))
        .unwrap();
    fp.unref().unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(fp.is_active());
    assert_eq!(calls.get(), 0);
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-ref.c `unref_in_prepare_cb`: a prepare callback that
/// unreferences its handle runs once, and the run ends.
#[test]
fn a_prepare_callback_that_unreferences_itself_runs_once() {
    let lp = Loop::new().unwrap();
    let calls = counter();
    let p = Prepare::new(&lp).unwrap();
    let c = calls.clone();
    p.start(move |p| {
        bump(&c);
        p.unref().unwrap();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-ref.c `tcp_ref3`, `tcp_ref4` and `tcp_ref5`: requests keep
/// the loop alive whatever their handle's reference: an unreferenced socket still
/// completes its connect, its write and its shutdown.
#[test]
fn requests_of_an_unreferenced_socket_complete() {
    let lp = Loop::new().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let events = log();
    let tcp = Tcp::new(&lp).unwrap();
    let e = events.clone();
    tcp.connect(target, move |t, r| {
        r.unwrap();
        e.borrow_mut().push("connect");
        let e2 = e.clone();
        t.write(b"hello", move |_, r| {
            r.unwrap();
            e2.borrow_mut().push("write");
        })
        .unwrap();
        let e3 = e.clone();
        t.shutdown(move |t, r| {
            r.unwrap();
            e3.borrow_mut().push("shutdown");
            t.close();
        })
        .unwrap();
    })
    .unwrap();
    tcp.unref().unwrap();
    assert!(lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*events.borrow(), ["connect", "write", "shutdown"]);
    let (mut conn, _) = listener.accept().unwrap();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut conn, &mut got).unwrap();
    assert_eq!(got, b"hello");
}

/// Mirrors libuv's test-close-order.c: handles closed from a timer callback and
/// from a check callback in the same iteration get their close callbacks after
/// that check callback, three in all, and each callback runs once.
#[test]
fn close_callbacks_run_after_the_check_phase() {
    let lp = Loop::new().unwrap();
    let (checks, closes, timers) = (counter(), counter(), counter());
    let check = Check::new(&lp).unwrap();
    let t1 = Timer::new(&lp).unwrap();
    let t2 = Timer::new(&lp).unwrap();
    let (ck, cl, tm, t2c) = (checks.clone(), closes.clone(), timers.clone(), t2.clone());
    check
        .start(move |c| {
            assert_eq!(ck.get(), 0);
            assert_eq!(tm.get(), 1);
            assert_eq!(cl.get(), 0);
            let cl1 = cl.clone();
            c.close_with(move |_| bump(&cl1));
            let cl2 = cl.clone();
            t2c.close_with(move |_| bump(&cl2));
            bump(&ck);
        })
        .unwrap();
    for (t, timeout) in [(&t1, Duration::ZERO), (&t2, Duration::from_secs(100))] {
        let (cl, tm) = (closes.clone(), timers.clone());
        t.start(timeout, Duration::ZERO, move |t| {
            let cl = cl.clone();
            t.close_with(move |_| bump(&cl));
            bump(&tm);
        })
        .unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!((checks.get(), closes.get(), timers.get()), (1, 3, 1));
}

// ---------------------------------------------------------------------------
// TCP

/// Mirrors libuv's test-tcp-bind-error.c `tcp_bind_error_inval`,
/// `tcp_bind_error_addrnotavail_1`, `tcp_bind_localhost_ok` and
/// `tcp_listen_without_bind`: a second bind of one socket is `EINVAL`, an address
/// of no interface `EADDRNOTAVAIL`, localhost is fine, and listening without a
/// bind picks a port.
#[test]
fn tcp_bind_errors_and_listen_without_bind() {
    let lp = Loop::new().unwrap();
    let t = Tcp::new(&lp).unwrap();
    t.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    assert_eq!(
        code(t.bind(addr("127.0.0.1:0"), TcpFlags::empty())),
        StatusCode::EINVAL
    );
    let far = Tcp::new(&lp).unwrap();
    let err = far.bind(addr("4.4.4.4:0"), TcpFlags::empty()).unwrap_err();
    assert_eq!(err.code(), StatusCode::EADDRNOTAVAIL);
    assert!(err.is(Category::Address));

    let unbound = Tcp::new(&lp).unwrap();
    unbound.listen(8, |_, _| {}).unwrap();
    let a = unbound.local_addr().unwrap();
    assert!(a.port() != 0, "{a}");
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-tcp-bind-error.c `tcp_bind_or_listen_error_after_close`:
/// libuv answers `EINVAL` for a closed handle; the safe API answers
/// `ClosedHandle` (the handle's memory is gone, and no call reaches libuv).
#[test]
fn tcp_bind_or_listen_after_close_is_closed_handle() {
    let lp = Loop::new().unwrap();
    let t = Tcp::new(&lp).unwrap();
    t.close();
    assert_eq!(
        t.bind(addr("127.0.0.1:0"), TcpFlags::empty())
            .unwrap_err()
            .kind(),
        Category::ClosedHandle
    );
    assert_eq!(
        t.listen(8, |_, _| {}).unwrap_err().kind(),
        Category::ClosedHandle
    );
    assert!(!lp.run(RunMode::Default).unwrap());
    let p = Pipe::new(&lp, false).unwrap();
    p.close();
    assert_eq!(
        p.bind("/tmp/never").unwrap_err().kind(),
        Category::ClosedHandle
    );
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-tcp-bind6-error.c: on IPv6, a second socket on a used
/// address is `EADDRINUSE`, a second bind of one socket `EINVAL`, an address of no
/// interface `EADDRNOTAVAIL` (skipped where the machine has no IPv6).
#[test]
fn tcp_bind6_errors() {
    let lp = Loop::new().unwrap();
    let t = Tcp::new(&lp).unwrap();
    if let Err(e) = t.bind(addr("[::1]:0"), TcpFlags::empty()) {
        eprintln!("skipping: no IPv6 loopback: {e}");
        uv_tests::finish(&lp);
        return;
    }
    t.listen(8, |_, _| {}).unwrap();
    let used = t.local_addr().unwrap();
    let other = Tcp::new(&lp).unwrap();
    assert_eq!(
        code(
            other
                .bind(used, TcpFlags::empty())
                .and_then(|_| other.listen(8, |_, _| {}))
        ),
        StatusCode::EADDRINUSE
    );
    assert_eq!(
        code(t.bind(addr("[::1]:0"), TcpFlags::empty())),
        StatusCode::EINVAL
    );
    let far = Tcp::new(&lp).unwrap();
    assert_eq!(
        code(far.bind(addr("[4:4:4:4:4:4:4:4]:0"), TcpFlags::empty())),
        StatusCode::EADDRNOTAVAIL
    );
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-connect-unspecified.c: a connect to the unspecified address
/// (0.0.0.0) goes to the local machine: to a port nothing listens on it is refused
/// in the callback, not at the call.
#[test]
fn connect_to_the_unspecified_address_reaches_the_local_machine() {
    let lp = Loop::new().unwrap();
    let port = closed_port().port();
    let got = Rc::new(RefCell::new(None));
    let t = Tcp::new(&lp).unwrap();
    let g = got.clone();
    t.connect(SocketAddr::from(([0, 0, 0, 0], port)), move |t, r| {
        *g.borrow_mut() = Some(r.map_err(|e| e.code()));
        t.close();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*got.borrow(), Some(Err(StatusCode::ECONNREFUSED)));
}

/// Mirrors libuv's test-tcp-close.c: writes queued on a connected socket that is
/// closed at once each get their callback once (done, or `ECANCELED`), all before
/// the close callback.
#[test]
fn closing_a_socket_with_queued_writes_calls_each_write_back_first() {
    let lp = Loop::new().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let events = Rc::new(RefCell::new(Vec::new()));
    let t = Tcp::new(&lp).unwrap();
    let e = events.clone();
    t.connect(target, move |t, r| {
        r.unwrap();
        let big = vec![7u8; 1 << 20];
        for _ in 0..10 {
            let e = e.clone();
            t.write(big.clone(), move |_, r| {
                assert!(
                    r.is_ok() || r.as_ref().unwrap_err().code() == StatusCode::ECANCELED,
                    "{r:?}"
                );
                e.borrow_mut().push("write");
            })
            .unwrap();
        }
        let e = e.clone();
        t.close_with(move |_| e.borrow_mut().push("close"));
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    let ev = events.borrow();
    assert_eq!(ev.len(), 11);
    assert!(ev[..10].iter().all(|&e| e == "write"));
    assert_eq!(ev[10], "close");
    drop(listener);
}

/// Mirrors libuv's test-multiple-listen.c, where a second `listen` on a listening
/// socket succeeds and replaces the connection callback. The safe API refuses it
/// (`EINVAL`, see `Stream::listen`): the first callback stays, and the socket
/// still takes a connection through it.
#[test]
fn listening_twice_is_refused_and_the_first_callback_stays() {
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    server.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    let target = server.local_addr().unwrap();
    let (first, second) = (counter(), counter());
    let f = first.clone();
    server
        .listen(8, move |l, r| {
            r.unwrap();
            bump(&f);
            let c = l.accept().unwrap();
            c.close();
            l.close();
        })
        .unwrap();
    let s = second.clone();
    assert_eq!(
        code(server.listen(8, move |_, _| bump(&s))),
        StatusCode::EINVAL
    );
    let client = Tcp::new(&lp).unwrap();
    client
        .connect(target, |c, r| {
            r.unwrap();
            c.close();
        })
        .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!((first.get(), second.get()), (1, 0));
}

/// Mirrors libuv's test-delayed-accept.c: a connection callback that does not
/// accept leaves the connection pending; a timer accepts it later.
#[test]
fn a_connection_can_be_accepted_later() {
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    server.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    let target = server.local_addr().unwrap();
    let (connections, accepted) = (counter(), counter());
    let lh = lp.handle();
    let (c, a) = (connections.clone(), accepted.clone());
    server
        .listen(8, move |l, r| {
            r.unwrap();
            bump(&c);
            let l = l.clone();
            let a = a.clone();
            let t = Timer::new(&lh).unwrap();
            t.start(MS, Duration::ZERO, move |t| {
                let conn = l.accept().unwrap();
                bump(&a);
                conn.close();
                l.close();
                t.close();
            })
            .unwrap();
        })
        .unwrap();
    let client = Tcp::new(&lp).unwrap();
    client
        .connect(target, |c, r| {
            r.unwrap();
            c.close();
        })
        .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!((connections.get(), accepted.get()), (1, 1));
}

/// A connected pair over loopback: `(client, server side)` once both are there.
fn tcp_pair(lp: &Loop) -> (Tcp, Tcp) {
    let server = Tcp::new(lp).unwrap();
    server.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    let target = server.local_addr().unwrap();
    let accepted = Rc::new(RefCell::new(None));
    let a = accepted.clone();
    server
        .listen(8, move |l, r| {
            r.unwrap();
            *a.borrow_mut() = Some(l.accept().unwrap());
            l.close();
        })
        .unwrap();
    let client = Tcp::new(lp).unwrap();
    let connected = Rc::new(Cell::new(false));
    let c = connected.clone();
    client
        .connect(target, move |_, r| {
            r.unwrap();
            c.set(true);
        })
        .unwrap();
    uv_tests::net::run_until(lp, || connected.get() && accepted.borrow().is_some());
    let s = accepted.borrow_mut().take().unwrap();
    (client, s)
}

/// Mirrors libuv's test-shutdown-twice.c and test-not-writable-after-shutdown.c: a
/// shutdown makes the stream not writable at once; a second shutdown is `ENOTCONN`
/// and the first completes normally.
#[test]
fn a_second_shutdown_is_enotconn() {
    let lp = Loop::new().unwrap();
    let (client, server) = tcp_pair(&lp);
    assert!(client.is_writable());
    let done = counter();
    let d = done.clone();
    client
        .shutdown(move |_, r| {
            r.unwrap();
            bump(&d);
        })
        .unwrap();
    assert!(!client.is_writable());
    assert_eq!(
        code(client.shutdown(|_, _| panic!("second shutdown ran"))),
        StatusCode::ENOTCONN
    );
    assert_eq!(code(client.write(b"x", |_, _| {})), StatusCode::EPIPE);
    uv_tests::net::run_until(&lp, || done.get() == 1);
    client.close();
    server.close();
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-shutdown-close.c: a stream closed right after its shutdown
/// was requested gets the shutdown callback (`ECANCELED`) before its close callback.
#[test]
fn closing_after_shutdown_cancels_it_before_the_close_callback() {
    let lp = Loop::new().unwrap();
    let (client, server) = tcp_pair(&lp);
    let events = log();
    let e = events.clone();
    client
        .shutdown(move |_, r| {
            assert_eq!(r.unwrap_err().code(), StatusCode::ECANCELED);
            e.borrow_mut().push("shutdown");
        })
        .unwrap();
    let e = events.clone();
    client.close_with(move |_| e.borrow_mut().push("close"));
    server.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*events.borrow(), ["shutdown", "close"]);
}

/// Mirrors libuv's test-readable-on-eof.c and test-shutdown-eof.c: the peer's
/// shutdown arrives as the end of the stream after its data, and the stream stays
/// writable in the other direction (the reply still reaches the peer).
#[test]
fn eof_after_data_and_the_other_direction_stays_open() {
    let lp = Loop::new().unwrap();
    let (client, server) = tcp_pair(&lp);
    client.write(b"ping", |_, r| r.unwrap()).unwrap();
    client.shutdown(|_, r| r.unwrap()).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let eofs = counter();
    let (g, e) = (got.clone(), eofs.clone());
    server
        .read_start(move |s, data| match data {
            Ok(b) => g.borrow_mut().extend_from_slice(b),
            Err(err) => {
                assert_eq!(err.code(), StatusCode::EOF);
                bump(&e);
                assert!(s.is_writable());
                s.write(b"pong", |s, r| {
                    r.unwrap();
                    s.close();
                })
                .unwrap();
            }
        })
        .unwrap();
    let reply = uv_tests::read_to_end(&client);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(&got.borrow()[..], b"ping");
    assert_eq!(eofs.get(), 1);
    assert_eq!(&reply.borrow()[..], b"pong");
}

/// Mirrors libuv's test-tcp-try-write-error.c: once the peer has closed, writes
/// soon fail (`EPIPE` or `ECONNRESET`) instead of being lost silently.
#[test]
fn try_write_to_a_closed_peer_fails() {
    let lp = Loop::new().unwrap();
    let (client, server) = tcp_pair(&lp);
    server.close();
    // The server side's close completes; the client is open but idle.
    assert!(!lp.run(RunMode::NoWait).unwrap());
    assert!(server.is_closed());
    let mut err = None;
    for _ in 0..1000 {
        match client.try_write(b"data") {
            Ok(_) => {
                lp.run(RunMode::NoWait).unwrap();
            }
            Err(e) if e.code() == StatusCode::EAGAIN => {
                lp.run(RunMode::NoWait).unwrap();
            }
            Err(e) => {
                err = Some(e.code());
                break;
            }
        }
    }
    assert!(
        matches!(err, Some(StatusCode::EPIPE | StatusCode::ECONNRESET)),
        "{err:?}"
    );
    client.close();
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-tcp-write-to-half-open-connection.c: a write to a peer that
/// has closed completes (the data leaves), and the reader of the closed side sees
/// the end or a reset, never a hang.
#[test]
fn writes_to_a_half_open_connection_complete() {
    let lp = Loop::new().unwrap();
    let (client, server) = tcp_pair(&lp);
    let ends = counter();
    let e = ends.clone();
    client
        .read_start(move |c, d| {
            if let Err(err) = d {
                assert!(
                    matches!(err.code(), StatusCode::EOF | StatusCode::ECONNRESET),
                    "{err:?}"
                );
                bump(&e);
                c.close();
            }
        })
        .unwrap();
    let writes = counter();
    let w = writes.clone();
    server
        .write(b"hello", move |s, r| {
            r.unwrap();
            bump(&w);
            s.close();
        })
        .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!((writes.get(), ends.get()), (1, 1));
}

// ---------------------------------------------------------------------------
// Pipes

/// Mirrors libuv's test-pipe-bind-error.c `pipe_bind_error_addrinuse`,
/// `pipe_bind_error_inval`, `pipe_bind_error_addrnotavail` and
/// `pipe_listen_without_bind`: a path bound by another pipe is `EADDRINUSE`, a
/// second bind of one pipe `EINVAL`, a path in a missing directory `EACCES`
/// (libuv turns the kernel's `ENOENT` into `EACCES`, as on Windows), and
/// listening without a bind `EINVAL`.
#[test]
fn pipe_bind_errors() {
    let dir = TempDir::new("scen-pipe-bind");
    let lp = Loop::new().unwrap();
    let first = Pipe::new(&lp, false).unwrap();
    first.bind(dir.join("sock")).unwrap();
    first.listen(8, |_, _| {}).unwrap();
    let second = Pipe::new(&lp, false).unwrap();
    assert_eq!(code(second.bind(dir.join("sock"))), StatusCode::EADDRINUSE);
    assert_eq!(code(first.bind(dir.join("other"))), StatusCode::EINVAL);
    let missing = Pipe::new(&lp, false).unwrap();
    assert_eq!(
        code(missing.bind(dir.join("no-such-dir/sock"))),
        StatusCode::EACCES
    );
    let unbound = Pipe::new(&lp, false).unwrap();
    assert_eq!(code(unbound.listen(8, |_, _| {})), StatusCode::EINVAL);
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-pipe-bind-error.c `pipe_overlong_path`: a name longer than
/// a socket address holds, with `NO_TRUNCATE`, is `EINVAL` for `bind2` and
/// `connect2` at the call (no callback); `connect` to an empty path fails in its
/// callback.
#[test]
fn pipe_overlong_names_are_einval() {
    let lp = Loop::new().unwrap();
    let p = Pipe::new(&lp, false).unwrap();
    let long = "@".repeat(512);
    assert_eq!(
        code(p.bind2(&long, PipeFlags::NO_TRUNCATE)),
        StatusCode::EINVAL
    );
    assert_eq!(
        code(p.connect2(&long, PipeFlags::NO_TRUNCATE, |_, _| panic!("connect2 ran"))),
        StatusCode::EINVAL
    );
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    match p.connect("", move |p, r| {
        *g.borrow_mut() = Some(r.map_err(|e| e.code()));
        p.close();
    }) {
        Ok(()) => {
            assert!(!lp.run(RunMode::Default).unwrap());
            let r = (*got.borrow()).unwrap();
            assert!(r.is_err(), "{r:?}");
        }
        Err(e) => assert_eq!(e.code(), StatusCode::EINVAL),
    }
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-pipe-connect-error.c `pipe_connect_to_file`: connecting to
/// a regular file fails in the callback, with `ENOTSOCK` or (Linux) `ECONNREFUSED`,
/// as libuv's test allows (for a missing path `ENOENT`, checked in `pipes`).
#[test]
fn pipe_connect_to_a_regular_file_is_enotsock() {
    let dir = TempDir::new("scen-pipe-file");
    drop(dir.file("plain"));
    let lp = Loop::new().unwrap();
    let p = Pipe::new(&lp, false).unwrap();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    p.connect(dir.join("plain"), move |p, r| {
        *g.borrow_mut() = Some(r.map_err(|e| e.code()));
        p.close();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    let got = (*got.borrow()).unwrap();
    assert!(
        matches!(got, Err(StatusCode::ENOTSOCK | StatusCode::ECONNREFUSED)),
        "{got:?}"
    );
}

/// Mirrors libuv's test-pipe-connect-multiple.c and test-pipe-server-close.c: five
/// clients connect to one pipe server, each is accepted and sees the end of the
/// stream when the server side closes its connection.
#[test]
fn several_pipe_clients_are_accepted_and_see_the_server_close() {
    const N: usize = 5;
    let dir = TempDir::new("scen-pipe-multi");
    let path = dir.join("sock");
    let lp = Loop::new().unwrap();
    let server = Pipe::new(&lp, false).unwrap();
    server.bind(&path).unwrap();
    server.pending_instances(4).unwrap();
    let accepted = counter();
    let a = accepted.clone();
    server
        .listen(128, move |l, r| {
            r.unwrap();
            let conn = l.accept().unwrap();
            conn.close();
            bump(&a);
            if a.get() == N {
                l.close();
            }
        })
        .unwrap();
    let (connected, eofs) = (counter(), counter());
    for _ in 0..N {
        let c = Pipe::new(&lp, false).unwrap();
        let (cn, e) = (connected.clone(), eofs.clone());
        c.connect(&path, move |c, r| {
            r.unwrap();
            bump(&cn);
            let e = e.clone();
            c.read_start(move |c, d| {
                if let Err(err) = d {
                    assert_eq!(err.code(), StatusCode::EOF);
                    bump(&e);
                    c.close();
                }
            })
            .unwrap();
        })
        .unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!((accepted.get(), connected.get(), eofs.get()), (N, N, N));
}

// ---------------------------------------------------------------------------
// Poll, signals

/// Mirrors libuv's test-poll-multiple-handles.c, where two poll handles are made on
/// one socket and take turns (`EEXIST` for the second's start while the first
/// watches). The safe API refuses the second handle at once (`EEXIST`, the socket
/// handed back): a descriptor is claimed by one handle of a loop (see
/// `settle_kept`), so two can never race for libuv's watcher slot. Once the first
/// is closed, a new poll handle takes the socket.
#[test]
fn two_polls_on_one_socket_take_turns() {
    let lp = Loop::new().unwrap();
    let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let sock = Rc::new(sock);
    let first = Poll::new_socket(&lp, sock.clone()).unwrap();
    let refused = Poll::new_socket(&lp, sock.clone()).map(|_| ()).unwrap_err();
    assert_eq!(refused.error().code(), StatusCode::EEXIST);
    first.start(PollEvent::READABLE, |_, _, _| {}).unwrap();
    // Started or not, the first holds the claim.
    let refused = Poll::new_socket(&lp, sock.clone()).map(|_| ()).unwrap_err();
    assert_eq!(refused.error().code(), StatusCode::EEXIST);
    first.stop().unwrap();
    let closed = counter();
    let c = closed.clone();
    first.close_with(move |_| bump(&c));
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(closed.get(), 1);
    let second = Poll::new_socket(&lp, sock.clone()).unwrap();
    second.start(PollEvent::READABLE, |_, _, _| {}).unwrap();
    second.unref().unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-signal-pending-on-close.c: a signal caught but not yet
/// delivered when its handle is closed never reaches the callback; the close
/// callback runs.
#[test]
fn a_pending_signal_is_not_delivered_after_close() {
    // Signal dispositions are the process's: the tests that watch signals run
    // one at a time, so that none counts another's.
    let _serial = uv_tests::serial();
    let lp = Loop::new().unwrap();
    let calls = counter();
    let sig = Signal::new(&lp).unwrap();
    let c = calls.clone();
    sig.start(Signum::User1, move |_, _| bump(&c)).unwrap();
    uv_tests::raise("USR1");
    let closed = counter();
    let c = closed.clone();
    sig.close_with(move |_| bump(&c));
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!((calls.get(), closed.get()), (0, 1));
}

/// Mirrors libuv's test-signal-multiple-loops.c (on one thread): a signal watched
/// by handles of two loops reaches both, once each.
#[test]
fn a_signal_reaches_the_handles_of_two_loops() {
    // Signal dispositions are the process's: the tests that watch signals run
    // one at a time, so that none counts another's.
    let _serial = uv_tests::serial();
    let loops = [Loop::new().unwrap(), Loop::new().unwrap()];
    let calls = [counter(), counter()];
    let sigs: Vec<Signal> = loops
        .iter()
        .zip(&calls)
        .map(|(lp, c)| {
            let s = Signal::new(lp).unwrap();
            let c = c.clone();
            s.start(Signum::User2, move |s, signum| {
                assert_eq!(signum, Signum::User2);
                bump(&c);
                s.close();
            })
            .unwrap();
            s
        })
        .collect();
    uv_tests::raise("USR2");
    for lp in &loops {
        assert!(!lp.run(RunMode::Default).unwrap());
    }
    assert_eq!((calls[0].get(), calls[1].get()), (1, 1));
    assert!(sigs.iter().all(|s| s.is_closed()));
}

// ---------------------------------------------------------------------------
// File watchers

/// Mirrors libuv's test-fs-event.c `fs_event_watch_invalid_path`: watching a path
/// that does not exist is `ENOENT` at the call, and the handle stays inactive.
#[test]
fn watching_a_missing_path_is_enoent() {
    let dir = TempDir::new("scen-fsev-missing");
    let lp = Loop::new().unwrap();
    let ev = FsEvent::new(&lp).unwrap();
    assert_eq!(
        code(ev.start(dir.join("none"), FsEventFlags::empty(), |_, _, _, _| {})),
        StatusCode::ENOENT
    );
    assert!(!ev.is_active());
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-fs-event.c `fs_event_start_and_close`,
/// `fs_event_no_callback_after_close` and `fs_event_getpath`: the path is `EINVAL`
/// before the start and the watched path after it; a watcher closed right after a
/// change to its file never calls back.
#[test]
fn a_watcher_closed_before_the_loop_runs_never_calls_back() {
    let dir = TempDir::new("scen-fsev-close");
    let file = dir.join("watched");
    std::fs::write(&file, b"a").unwrap();
    let lp = Loop::new().unwrap();
    let calls = counter();
    let evs: Vec<FsEvent> = (0..2)
        .map(|_| {
            let ev = FsEvent::new(&lp).unwrap();
            assert_eq!(code(ev.path()), StatusCode::EINVAL);
            let c = calls.clone();
            ev.start(&file, FsEventFlags::empty(), move |_, _, _, _| bump(&c))
                .unwrap();
            assert_eq!(ev.path().unwrap(), file);
            ev
        })
        .collect();
    std::fs::write(&file, b"changed").unwrap();
    for ev in &evs {
        ev.close();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 0);
}

/// Mirrors libuv's test-fs-poll.c `fs_poll_getpath` and
/// `fs_poll_close_request_multi_start_stop`: the path is `EINVAL` before the start;
/// ten starts and stops in a row, then a close, end with the loop empty and no
/// callback.
#[test]
fn fs_poll_started_and_stopped_repeatedly_then_closed() {
    let dir = TempDir::new("scen-fspoll");
    let lp = Loop::new().unwrap();
    let fp = FsPoll::new(&lp).unwrap();
    assert_eq!(code(fp.path()), StatusCode::EINVAL);
    let calls = counter();
    for _ in 0..10 {
        let c = calls.clone();
        match fp.start(dir.path(), Duration::from_secs(3600), move |_, _| bump(&c)) {
            Ok(()) => assert_eq!(fp.path().unwrap(), dir.path()),
            // A restart while the stopped poll's request settles (see fs_watch).
            Err(e) => assert_eq!(e.code(), StatusCode::EBUSY),
        }
        fp.stop().unwrap();
    }
    fp.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 0);
    assert_eq!(lp.handle_count(), 0);
}

/// Mirrors libuv's test-fs-poll.c `fs_poll` (the missing-file start): a poll of a
/// path that does not exist reports `ENOENT` once, then nothing until it changes.
#[test]
fn fs_poll_of_a_missing_path_reports_enoent_once() {
    let dir = TempDir::new("scen-fspoll-missing");
    let lp = Loop::new().unwrap();
    let fp = FsPoll::new(&lp).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let lh = lp.handle();
    fp.start(dir.join("none"), MS, move |fp, r| {
        g.borrow_mut().push(r.map(|_| ()).map_err(|e| e.code()));
        if g.borrow().len() > 1 {
            return;
        }
        // Twenty polls' worth of loop time after the first report: still one.
        let t = Timer::new(&lh).unwrap();
        let fp = fp.clone();
        t.start(20 * MS, Duration::ZERO, move |t| {
            fp.close();
            t.close();
        })
        .unwrap();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*got.borrow(), [Err(StatusCode::ENOENT)]);
}

// ---------------------------------------------------------------------------
// UDP

/// Mirrors libuv's test-udp-dgram-too-big.c: a datagram larger than UDP allows
/// (64 KiB) fails in its send callback with `EMSGSIZE`; nothing is left queued.
#[test]
fn a_datagram_too_big_is_emsgsize() {
    let lp = Loop::new().unwrap();
    let u = Udp::new(&lp).unwrap();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    u.send(vec![0u8; 65536], Some(addr("127.0.0.1:9")), move |u, r| {
        *g.borrow_mut() = Some(r.map_err(|e| e.code()));
        u.close();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*got.borrow(), Some(Err(StatusCode::EMSGSIZE)));
}

/// Mirrors libuv's test-udp-bind.c `udp_bind` and `udp_bind_reuseaddr`: a second
/// bind of one socket is `EINVAL`; two sockets with `REUSEADDR` share a port.
#[test]
fn udp_bind_twice_and_reuseaddr() {
    let lp = Loop::new().unwrap();
    let a = Udp::new(&lp).unwrap();
    a.bind(addr("127.0.0.1:0"), UdpFlags::REUSEADDR).unwrap();
    let at = a.local_addr().unwrap();
    assert_eq!(
        code(a.bind(addr("127.0.0.1:0"), UdpFlags::empty())),
        StatusCode::EINVAL
    );
    let b = Udp::new(&lp).unwrap();
    b.bind(at, UdpFlags::REUSEADDR).unwrap();
    assert_eq!(b.local_addr().unwrap(), at);
    uv_tests::finish(&lp);
}

// ---------------------------------------------------------------------------
// Processes

/// Spawns the process `opts` describes with its standard output piped to the loop,
/// runs the loop out, and gives the exit code and everything the child wrote.
fn exit_and_stdout(opts: impl FnOnce() -> ProcessOptions<'static>) -> (i64, Vec<u8>) {
    let lp = Loop::new().unwrap();
    let out = Pipe::new(&lp, false).unwrap();
    let opts = opts().stdout(Stdio::pipe_from_child(&out));
    let status = Rc::new(Cell::new(None));
    let s = status.clone();
    let _p = Process::spawn(&lp, &opts, move |p, code, _| {
        s.set(Some(code));
        p.close();
    })
    .unwrap();
    let got = uv_tests::read_to_end(&out);
    assert!(!lp.run(RunMode::Default).unwrap());
    let code = status.get().expect("the exit callback ran");
    let got = got.borrow().clone();
    (code, got)
}

/// Mirrors libuv's test-spawn.c `spawn_stdout_to_file` and
/// `spawn_stdout_and_stderr_to_file`: a child's output and error streams given one
/// open file both land in it, in the order the child wrote them.
#[test]
fn a_child_writes_stdout_and_stderr_to_one_file() {
    let dir = TempDir::new("scen-spawn-file");
    let out = dir.file("out");
    let lp = Loop::new().unwrap();
    let opts = ProcessOptions::new("/bin/sh")
        .args(["-c", "printf hello; printf ' world' >&2"])
        .stdout(Stdio::borrowed_fd(&out))
        .stderr(Stdio::borrowed_fd(&out));
    let status = Rc::new(Cell::new(None));
    let s = status.clone();
    let p = Process::spawn(&lp, &opts, move |p, code, sig| {
        s.set(Some((code, sig)));
        p.close();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(status.get(), Some((0, None)));
    assert!(p.is_closed());
    assert_eq!(std::fs::read(dir.join("out")).unwrap(), b"hello world");
}

/// Mirrors libuv's test-spawn.c `spawn_empty_env`: with the environment cleared the
/// child sees no variable at all.
#[test]
fn a_child_with_an_empty_environment_sees_no_variable() {
    let (code, got) = exit_and_stdout(|| ProcessOptions::new("/usr/bin/env").env_clear());
    assert_eq!(code, 0);
    assert_eq!(got, b"");
}

/// Mirrors libuv's test-spawn.c `spawn_exit_code` with `kill` after the exit
/// (`spawn_and_kill` / `kill_bad_pid`): once the child has been reaped, killing
/// it through its handle is `ESRCH`; `uv::kill` of a pid that is no process is
/// `ESRCH` too.
#[test]
fn kill_after_the_exit_is_esrch() {
    let lp = Loop::new().unwrap();
    let status = Rc::new(Cell::new(None));
    let s = status.clone();
    let p = Process::spawn(&lp, &ProcessOptions::new("/bin/true"), move |_, code, _| {
        s.set(Some(code))
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(status.get(), Some(0));
    assert_eq!(code(p.kill(Signum::Terminate)), StatusCode::ESRCH);
    // The largest pid Linux hands out is 2^22; a number above it is no process.
    assert_eq!(
        code(uv::kill(0x7fff_fff0, Signum::Terminate)),
        StatusCode::ESRCH
    );
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-spawn.c `spawn_relative_path` with `cwd`: a program named
/// relative to the working directory given to the child runs there.
#[test]
fn a_relative_program_runs_from_the_given_directory() {
    let dir = TempDir::new("scen-spawn-rel");
    let script = dir.join("prog.sh");
    std::fs::write(&script, b"#!/bin/sh\npwd\nexit 7\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, got) = exit_and_stdout(|| ProcessOptions::new("./prog.sh").cwd(dir.path()));
    assert_eq!(code, 7);
    let printed = String::from_utf8(got).unwrap();
    assert_eq!(
        std::fs::canonicalize(printed.trim_end()).unwrap(),
        std::fs::canonicalize(dir.path()).unwrap()
    );
}

// ---------------------------------------------------------------------------
// Terminals

/// Mirrors libuv's test-tty.c `tty_empty_write` and `tty_raw`: an empty write to a
/// terminal completes, a terminal switches to raw mode and back, and its size
/// reads back as the pty's.
#[test]
fn a_pty_takes_an_empty_write_and_mode_changes() {
    let (master, slave) = uv_tests::pty();
    let lp = Loop::new().unwrap();
    let tty = match uv::Tty::new(&lp, slave, false) {
        Ok(t) => t,
        Err(r) => panic!("{:?}", r.error()),
    };
    let done = counter();
    let d = done.clone();
    tty.write(Vec::<u8>::new(), move |_, r| {
        r.unwrap();
        bump(&d);
    })
    .unwrap();
    tty.set_mode(uv::TtyMode::Raw).unwrap();
    tty.set_mode(uv::TtyMode::Normal).unwrap();
    let (w, h) = tty.winsize().unwrap();
    assert!(w >= 0 && h >= 0, "{w}x{h}");
    tty.write(b"x", |t, r| {
        r.unwrap();
        t.close();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(done.get(), 1);
    drop(master);
    uv::Tty::reset_mode().unwrap();
}

// ---------------------------------------------------------------------------
// More streams

/// Mirrors libuv's test-not-readable-nor-writable-on-read-error.c: a read that
/// fails (the peer reset the connection) leaves the stream neither readable nor
/// writable, as seen from inside the read callback.
#[test]
fn a_read_error_leaves_the_stream_neither_readable_nor_writable() {
    let lp = Loop::new().unwrap();
    let (client, server) = tcp_pair(&lp);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    client
        .read_start(move |c, d| {
            let e = d.unwrap_err();
            s.borrow_mut()
                .push((e.code(), c.is_readable(), c.is_writable()));
            c.close();
        })
        .unwrap();
    server.close_reset().unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*seen.borrow(), [(StatusCode::ECONNRESET, false, false)]);
}

/// Mirrors libuv's test-tcp-read-stop.c and test-tcp-unexpected-read.c: data that
/// arrives while a stream is not reading waits (no callback); a read callback that
/// stops reading gets no more calls though more data comes.
#[test]
fn data_waits_until_read_start_and_read_stop_holds() {
    let lp = Loop::new().unwrap();
    let (client, server) = tcp_pair(&lp);
    server.write(b"early", |_, r| r.unwrap()).unwrap();
    // A few iterations with the data there and nobody reading.
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    let got = Rc::new(RefCell::new(Vec::new()));
    let calls = counter();
    let (g, c) = (got.clone(), calls.clone());
    let srv = server.clone();
    let lh = lp.handle();
    client
        .read_start(move |cl, d| {
            g.borrow_mut().extend_from_slice(d.unwrap());
            bump(&c);
            cl.read_stop().unwrap();
            // More data, which nobody reads; the client closes some loop time
            // after it was written.
            let (cl, lh) = (cl.clone(), lh.clone());
            srv.write(b"late", move |s, r| {
                r.unwrap();
                s.close();
                let t = Timer::new(&lh).unwrap();
                t.start(10 * MS, Duration::ZERO, move |t| {
                    t.close();
                    cl.close();
                })
                .unwrap();
            })
            .unwrap();
        })
        .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    assert_eq!(&got.borrow()[..], b"early");
}

/// Mirrors libuv's test-shutdown-simultaneous.c: both ends write and shut down at
/// once; each reads the other's data then the end, and both shutdowns complete.
#[test]
fn simultaneous_shutdowns_both_complete() {
    let lp = Loop::new().unwrap();
    let (client, server) = tcp_pair(&lp);
    let shutdowns = counter();
    let mut outs = Vec::new();
    for (s, msg) in [
        (&client, &b"from client"[..]),
        (&server, &b"from server"[..]),
    ] {
        s.write(msg.to_vec(), |_, r| r.unwrap()).unwrap();
        let d = shutdowns.clone();
        s.shutdown(move |_, r| {
            r.unwrap();
            bump(&d);
        })
        .unwrap();
        outs.push(uv_tests::read_to_end(s));
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(shutdowns.get(), 2);
    assert_eq!(&outs[0].borrow()[..], b"from server");
    assert_eq!(&outs[1].borrow()[..], b"from client");
}

/// Mirrors libuv's test-tcp-open.c `tcp_open_twice`, `tcp_open_connected` and
/// `tcp_open_bound`: a socket opened on a handle that has one is `EBUSY` (the
/// socket is handed back, still open); a connected `std` socket taken over writes
/// and reads; a listening one accepts.
#[test]
fn tcp_open_connected_listening_and_twice() {
    use std::io::{Read, Write};
    let lp = Loop::new().unwrap();
    let (mine, mut peer) = uv_tests::net::tcp_pair();
    let t = Tcp::new(&lp).unwrap();
    t.open(mine).unwrap();
    let (extra, _extra_peer) = uv_tests::net::tcp_pair();
    let rejected = t.open(extra).unwrap_err();
    assert_eq!(rejected.error().code(), StatusCode::EBUSY);
    let extra = std::net::TcpStream::from(rejected.into_value());
    assert!(extra.peer_addr().is_ok());

    t.write(b"over uv", |t, r| {
        r.unwrap();
        t.shutdown(|_, r| r.unwrap()).unwrap();
    })
    .unwrap();
    let got = uv_tests::read_to_end(&t);
    peer.write_all(b"over std").unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(&got.borrow()[..], b"over std");
    let mut back = Vec::new();
    peer.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"over uv");

    let (listener, target) = uv_tests::net::tcp_listener();
    let server = Tcp::new(&lp).unwrap();
    server.open(listener).unwrap();
    let accepted = counter();
    let a = accepted.clone();
    server
        .listen(8, move |l, r| {
            r.unwrap();
            l.accept().unwrap().close();
            bump(&a);
            l.close();
        })
        .unwrap();
    let _client = std::net::TcpStream::connect(target).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(accepted.get(), 1);
}

/// Mirrors libuv's test-tcp-write-after-connect.c: a write issued while the connect
/// is in flight is queued and sent once connected.
#[test]
fn a_write_before_the_connect_completes_is_sent_after_it() {
    use std::io::Read;
    let lp = Loop::new().unwrap();
    let (listener, target) = uv_tests::net::tcp_listener();
    let events = log();
    let t = Tcp::new(&lp).unwrap();
    let e = events.clone();
    t.connect(target, move |_, r| {
        r.unwrap();
        e.borrow_mut().push("connect");
    })
    .unwrap();
    let e = events.clone();
    t.write(b"queued", move |t, r| {
        r.unwrap();
        e.borrow_mut().push("write");
        t.close();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*events.borrow(), ["connect", "write"]);
    let (mut conn, _) = listener.accept().unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"queued");
}

/// Mirrors libuv's test-tcp-reuseport.c and test-udp-reuseport.c (their binding
/// part): with `REUSEPORT`, two sockets bind the same port; TCP ones both listen.
#[test]
fn reuseport_lets_two_sockets_share_a_port() {
    let lp = Loop::new().unwrap();
    let a = Tcp::new(&lp).unwrap();
    a.bind(addr("127.0.0.1:0"), TcpFlags::REUSEPORT).unwrap();
    a.listen(8, |_, _| {}).unwrap();
    let at = a.local_addr().unwrap();
    let b = Tcp::new(&lp).unwrap();
    b.bind(at, TcpFlags::REUSEPORT).unwrap();
    b.listen(8, |_, _| {}).unwrap();
    assert_eq!(b.local_addr().unwrap(), at);
    // Without the flag the port is taken.
    let c = Tcp::new(&lp).unwrap();
    assert_eq!(
        code(
            c.bind(at, TcpFlags::empty())
                .and_then(|_| c.listen(8, |_, _| {}))
        ),
        StatusCode::EADDRINUSE
    );

    let u1 = Udp::new(&lp).unwrap();
    u1.bind(addr("127.0.0.1:0"), UdpFlags::REUSEPORT).unwrap();
    let ut = u1.local_addr().unwrap();
    let u2 = Udp::new(&lp).unwrap();
    u2.bind(ut, UdpFlags::REUSEPORT).unwrap();
    assert_eq!(u2.local_addr().unwrap(), ut);
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-pipe-connect-prepare.c: a connect started from a prepare
/// callback (to a missing path here) reports its result in its callback, once.
#[test]
fn a_pipe_connect_from_a_prepare_callback_reports_once() {
    let dir = TempDir::new("scen-pipe-prep");
    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let p = Prepare::new(&lp).unwrap();
    let lh = lp.handle();
    let (g, path) = (got.clone(), dir.join("none"));
    p.start(move |p| {
        let pipe = Pipe::new(&lh, false).unwrap();
        let g = g.clone();
        pipe.connect(&path, move |pipe, r| {
            g.borrow_mut().push(r.map_err(|e| e.code()));
            pipe.close();
        })
        .unwrap();
        p.close();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*got.borrow(), [Err(StatusCode::ENOENT)]);
}

/// Mirrors libuv's test-poll-oob.c and test-tcp-oob.c: out-of-band TCP data is a
/// `PRIORITIZED` event for a poll handle that asks for it.
#[test]
fn out_of_band_data_is_a_prioritized_poll_event() {
    use std::os::fd::AsRawFd;
    let lp = Loop::new().unwrap();
    let (sender, receiver) = uv_tests::net::tcp_pair();
    let receiver = Rc::new(receiver);
    let poll = Poll::new_socket(&lp, receiver.clone()).unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (s, r) = (seen.clone(), receiver.clone());
    poll.start(PollEvent::PRIORITIZED, move |p, st, ev| {
        st.unwrap();
        s.borrow_mut().push(ev);
        // Take the urgent byte so the event does not repeat.
        let mut b = [0u8; 1];
        // SAFETY: reads one byte into a valid buffer from an open socket.
        let n = unsafe { libc::recv(r.as_raw_fd(), b.as_mut_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!((n, b[0]), (1, b'!'));
        p.close();
    })
    .unwrap();
    // SAFETY: sends one byte from a valid buffer on an open socket.
    let n = unsafe { libc::send(sender.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
    assert_eq!(n, 1);
    assert!(!lp.run(RunMode::Default).unwrap());
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].contains(PollEvent::PRIORITIZED), "{:?}", seen[0]);
}

// ---------------------------------------------------------------------------
// More timers, signals, UDP, processes, the loop

/// Mirrors libuv's test-timer.c `timer_early_check`: a timer never fires before its
/// timeout, counted in loop time from the start.
#[test]
fn a_timer_never_fires_before_its_timeout_in_loop_time() {
    let lp = Loop::new().unwrap();
    lp.update_time().unwrap();
    let start = lp.now().unwrap();
    let at = Rc::new(Cell::new(None));
    let t = Timer::new(&lp).unwrap();
    let (a, lh) = (at.clone(), lp.handle());
    t.start(10 * MS, Duration::ZERO, move |_| {
        a.set(Some(lh.now().unwrap()))
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(
        at.get().unwrap() >= start + 10 * MS,
        "{:?} {start:?}",
        at.get()
    );
}

/// Mirrors libuv's test-signal.c `we_get_signals_mixed`: one-shot and repeating
/// handles on one signal; two deliveries reach each repeating handle twice and each
/// one-shot handle once.
#[test]
fn one_shot_and_repeating_signal_handles_mixed() {
    // Signal dispositions are the process's: the tests that watch signals run
    // one at a time, so that none counts another's.
    let _serial = uv_tests::serial();
    let lp = Loop::new().unwrap();
    let calls: Vec<Rc<Cell<usize>>> = (0..4).map(|_| counter()).collect();
    let sigs: Vec<Signal> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let s = Signal::new(&lp).unwrap();
            let c = c.clone();
            if i % 2 == 0 {
                s.start_oneshot(Signum::User1, move |_, _| bump(&c))
                    .unwrap();
            } else {
                s.start(Signum::User1, move |_, _| bump(&c)).unwrap();
            }
            s
        })
        .collect();
    for _ in 0..2 {
        uv_tests::raise("USR1");
        // Each delivery is handled before the next is raised.
        lp.run(RunMode::NoWait).unwrap();
    }
    let counts: Vec<usize> = calls.iter().map(|c| c.get()).collect();
    assert_eq!(counts, [1, 2, 1, 2]);
    // The one-shot handles stopped themselves; the others still watch.
    let active: Vec<bool> = sigs.iter().map(|s| s.is_active()).collect();
    assert_eq!(active, [false, true, false, true]);
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-udp-connect.c (the Unix parts not in `udp`): a connect to
/// the unspecified address is accepted and undone; a second disconnect is
/// `ENOTCONN`.
#[test]
fn udp_connect_to_any_and_disconnect_twice() {
    let lp = Loop::new().unwrap();
    let u = Udp::new(&lp).unwrap();
    u.connect(addr("0.0.0.0:9")).unwrap();
    u.disconnect().unwrap();
    assert_eq!(code(u.disconnect()), StatusCode::ENOTCONN);
    assert_eq!(code(u.peer_addr()), StatusCode::ENOTCONN);
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-udp-open.c `udp_open_bound` and `udp_open_connect`: a
/// bound `std` socket taken over keeps its address and receives; a connected one
/// keeps its peer and sends without an address.
#[test]
fn udp_open_bound_and_connected_sockets() {
    let lp = Loop::new().unwrap();
    let bound = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let at = bound.local_addr().unwrap();
    let rx = Udp::new(&lp).unwrap();
    rx.open(bound).unwrap();
    assert_eq!(rx.local_addr().unwrap(), at);
    let connected = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    connected.connect(at).unwrap();
    let from = connected.local_addr().unwrap();
    let tx = Udp::new(&lp).unwrap();
    tx.open(connected).unwrap();
    assert_eq!(tx.peer_addr().unwrap(), at);
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    rx.recv_start(move |u, d| {
        let d = d.unwrap();
        g.borrow_mut().push((d.data.to_vec(), d.addr));
        u.close();
    })
    .unwrap();
    tx.send("hi", None, |u, r| {
        r.unwrap();
        u.close();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*got.borrow(), [(b"hi".to_vec(), Some(from))]);
}

/// Mirrors libuv's test-spawn.c `spawn_auto_unref`: a process handle closed before
/// its child exits lets the loop end; its exit callback never runs. The child is
/// reaped by libuv later (here it is killed first).
#[test]
fn a_process_handle_closed_early_ends_the_loop_without_its_exit_callback() {
    let lp = Loop::new().unwrap();
    let exits = counter();
    let e = exits.clone();
    let p = Process::spawn(
        &lp,
        &ProcessOptions::new("/bin/sleep").arg("30"),
        move |_, _, _| bump(&e),
    )
    .unwrap();
    let pid = p.pid().unwrap();
    p.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(exits.get(), 0);
    uv::kill(pid, Signum::Kill).unwrap();
}

/// Mirrors libuv's test-spawn.c `spawn_and_kill_with_std`: a child whose three
/// standard streams are pipes ends on `kill` with the signal and no exit status,
/// and its pipes reach their end.
#[test]
fn a_child_with_piped_stdio_is_killed() {
    let lp = Loop::new().unwrap();
    let pipes: Vec<Pipe> = (0..3).map(|_| Pipe::new(&lp, false).unwrap()).collect();
    let opts = ProcessOptions::new("/bin/cat")
        .stdin(Stdio::pipe_to_child(&pipes[0]))
        .stdout(Stdio::pipe_from_child(&pipes[1]))
        .stderr(Stdio::pipe_from_child(&pipes[2]));
    let status = Rc::new(Cell::new(None));
    let s = status.clone();
    let p = Process::spawn(&lp, &opts, move |p, code, sig| {
        s.set(Some((code, sig)));
        p.close();
    })
    .unwrap();
    let out = uv_tests::read_to_end(&pipes[1]);
    let err = uv_tests::read_to_end(&pipes[2]);
    p.kill(Signum::Terminate).unwrap();
    pipes[0].close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(status.get(), Some((0, Some(Signum::Terminate))));
    assert!(out.borrow().is_empty() && err.borrow().is_empty());
}

/// Mirrors libuv's test-loop-alive.c with a request: a thread-pool job alone keeps
/// the loop alive until its callback has run.
#[test]
fn a_request_alone_keeps_the_loop_alive() {
    let lp = Loop::new().unwrap();
    assert!(!lp.alive());
    let done = counter();
    let d = done.clone();
    lp.queue_work(
        || 7,
        move |r| {
            assert_eq!(r.unwrap(), 7);
            bump(&d);
        },
    )
    .unwrap();
    assert!(lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(done.get(), 1);
    assert!(!lp.alive());
}

/// Mirrors libuv's test-queue-foreach-delete.c for idle, prepare and check
/// handles: libuv calls the handles of one phase newest first; the newest one's
/// callback closes itself and the middle one, which is then never called; the
/// oldest is called once.
#[test]
fn closing_the_next_handle_of_a_phase_from_a_callback_skips_it() {
    fn three<H: Clone + 'static>(
        lp: &Loop,
        make: impl Fn(&Loop) -> H,
        start: impl Fn(&H, Box<dyn FnMut()>),
        close: impl Fn(&H) + Clone + 'static,
    ) -> Vec<Rc<Cell<usize>>> {
        let calls: Vec<Rc<Cell<usize>>> = (0..3).map(|_| counter()).collect();
        let hs: Vec<H> = (0..3).map(|_| make(lp)).collect();
        for i in 0..3 {
            let c = calls[i].clone();
            let (me, middle, close) = (hs[i].clone(), hs[1].clone(), close.clone());
            start(
                &hs[i],
                Box::new(move || {
                    bump(&c);
                    if i == 2 {
                        close(&me);
                        close(&middle);
                    }
                }),
            );
        }
        calls
    }
    let lp = Loop::new().unwrap();
    let idle = three(
        &lp,
        |lp| Idle::new(lp).unwrap(),
        |h, mut f| h.start(move |_| f()).unwrap(),
        |h: &Idle| h.close(),
    );
    let prepare = three(
        &lp,
        |lp| Prepare::new(lp).unwrap(),
        |h, mut f| h.start(move |_| f()).unwrap(),
        |h: &Prepare| h.close(),
    );
    let check = three(
        &lp,
        |lp| Check::new(lp).unwrap(),
        |h, mut f| h.start(move |_| f()).unwrap(),
        |h: &Check| h.close(),
    );
    assert!(lp.run(RunMode::NoWait).unwrap());
    for calls in [&idle, &prepare, &check] {
        let counts: Vec<usize> = calls.iter().map(|c| c.get()).collect();
        assert_eq!(counts, [1, 0, 1]);
    }
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-queue-foreach-delete.c for file watchers (Linux): three
/// watchers of one directory share libuv's inotify watch and are called oldest
/// first; the oldest one's callback closes itself and the middle one, which is
/// then never called; the newest is called.
#[test]
fn closing_another_watcher_of_the_same_path_from_a_callback_skips_it() {
    let dir = TempDir::new("scen-fsev-foreach");
    let lp = Loop::new().unwrap();
    let calls: Vec<Rc<Cell<usize>>> = (0..3).map(|_| counter()).collect();
    let evs: Vec<FsEvent> = (0..3).map(|_| FsEvent::new(&lp).unwrap()).collect();
    for i in 0..3 {
        let c = calls[i].clone();
        let (me, middle) = (evs[i].clone(), evs[1].clone());
        evs[i]
            .start(dir.path(), FsEventFlags::empty(), move |_, _, _, _| {
                bump(&c);
                if i == 0 {
                    me.close();
                    middle.close();
                }
            })
            .unwrap();
    }
    std::fs::write(dir.join("touched"), b"x").unwrap();
    // The first event reaches the watchers in one pass; then the last one closes.
    uv_tests::net::run_until(&lp, || calls[2].get() > 0);
    evs[2].close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls[0].get(), 1);
    assert_eq!(calls[1].get(), 0);
    assert!(calls[2].get() >= 1);
}

/// Mirrors libuv's test-close-fd.c: a pipe end taken over reads one byte, stops
/// reading; with the writer closed meanwhile, reading again gives the end of the
/// stream; the handle stays open (not active) between the two.
#[test]
fn reading_again_after_read_stop_gives_the_end() {
    use std::io::Write;
    let lp = Loop::new().unwrap();
    let (r, w) = uv::pipe(uv::StdioFlags::empty(), uv::StdioFlags::empty()).unwrap();
    let p = Pipe::new(&lp, false).unwrap();
    p.open(r).unwrap();
    let mut w = std::fs::File::from(w);
    w.write_all(b"x").unwrap();
    drop(w);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let cb = move |p: &Pipe, d: uv::Result<&[u8]>| match d {
        Ok(b) => {
            s.borrow_mut().push(Ok(b.to_vec()));
            p.read_stop().unwrap();
        }
        Err(e) => {
            s.borrow_mut().push(Err(e.code()));
            p.close();
        }
    };
    p.read_start(cb.clone()).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*seen.borrow(), [Ok(b"x".to_vec())]);
    assert!(!p.is_active());
    assert!(!p.is_closing());
    p.read_start(cb).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*seen.borrow(), [Ok(b"x".to_vec()), Err(StatusCode::EOF)]);
    assert!(p.is_closed());
}

/// Mirrors libuv's test-signal-pending-on-close.c `signal_close_loop_alive`: an
/// unreferenced signal handle with a signal caught does not keep `run` going; once
/// closed, the loop is alive until its close callback has run.
#[test]
fn an_unreferenced_signal_handle_closes_cleanly_after_a_catch() {
    let _serial = uv_tests::serial();
    let lp = Loop::new().unwrap();
    let sig = Signal::new(&lp).unwrap();
    sig.start(Signum::User1, |_, _| {}).unwrap();
    sig.unref().unwrap();
    uv_tests::raise("USR1");
    assert!(!lp.run(RunMode::Default).unwrap());
    let closed = counter();
    let c = closed.clone();
    sig.close_with(move |_| bump(&c));
    assert!(lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(closed.get(), 1);
}

/// Mirrors libuv's test-signal-pending-on-close.c `signal_pending_on_close`: a large
/// write to a pipe whose reader is gone fails (`EPIPE`, SIGPIPE being ignored by
/// the Rust runtime) and the handle closes with the write's callback called once.
#[test]
fn a_large_write_to_a_pipe_without_reader_fails_with_epipe() {
    let lp = Loop::new().unwrap();
    let (r, w) = uv::pipe(uv::StdioFlags::empty(), uv::StdioFlags::empty()).unwrap();
    drop(r);
    let p = Pipe::new(&lp, false).unwrap();
    p.open(w).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    match p.write(vec![b'.'; 1 << 24], move |p, r| {
        g.borrow_mut().push(r.map_err(|e| e.code()));
        p.close();
    }) {
        Ok(()) => {
            assert!(!lp.run(RunMode::Default).unwrap());
            assert_eq!(*got.borrow(), [Err(StatusCode::EPIPE)]);
        }
        // A write that fails at once reports at once, without its callback.
        Err(e) => {
            assert_eq!(e.code(), StatusCode::EPIPE);
            assert!(got.borrow().is_empty());
            uv_tests::finish(&lp);
        }
    }
}

/// Mirrors libuv's test-timer.c `timer_no_double_call_once` and
/// `timer_no_double_call_nowait`: a repeating timer whose loop was held up for
/// several periods fires once per iteration, not once per missed period.
#[test]
fn a_late_repeating_timer_fires_once_per_iteration() {
    for mode in [RunMode::Once, RunMode::NoWait] {
        let lp = Loop::new().unwrap();
        let fired = counter();
        let t = Timer::new(&lp).unwrap();
        let f = fired.clone();
        t.start(MS, MS, move |_| bump(&f)).unwrap();
        // Hold the loop up for several periods.
        std::thread::sleep(5 * MS);
        assert!(lp.run(mode).unwrap());
        assert_eq!(fired.get(), 1, "{mode:?}");
        t.close();
        uv_tests::finish(&lp);
    }
}

/// Mirrors libuv's test-loop-close.c `loop_instant_close`: a handle closed before
/// the loop ever ran finishes in one non-blocking run, after which the loop closes.
#[test]
fn a_handle_closed_before_any_run_lets_the_loop_close_after_one_pass() {
    let lp = Loop::new().unwrap();
    let a = uv::Async::new(&lp, |_| {}).unwrap();
    a.close();
    assert_eq!(code(lp.close()), StatusCode::EBUSY);
    assert!(!lp.run(RunMode::NoWait).unwrap());
    lp.close().unwrap();
}

/// Mirrors libuv's test-spawn.c `spawn_closed_process_io`: a write queued on the
/// child's input pipe, then the pipe closed at once: the write's callback runs
/// once (done or `ECANCELED`), the child sees its input end and exits 0.
#[test]
fn closing_the_child_input_right_after_a_write() {
    let lp = Loop::new().unwrap();
    let input = Pipe::new(&lp, false).unwrap();
    let opts = ProcessOptions::new("/bin/cat").stdin(Stdio::pipe_to_child(&input));
    let status = Rc::new(Cell::new(None));
    let s = status.clone();
    let _p = Process::spawn(&lp, &opts, move |p, code, sig| {
        s.set(Some((code, sig)));
        p.close();
    })
    .unwrap();
    let writes = Rc::new(RefCell::new(Vec::new()));
    let w = writes.clone();
    input
        .write(b"ignored", move |_, r| {
            w.borrow_mut().push(r.map_err(|e| e.code()))
        })
        .unwrap();
    input.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(status.get(), Some((0, None)));
    let writes = writes.borrow();
    assert_eq!(writes.len(), 1);
    assert!(
        matches!(writes[0], Ok(()) | Err(StatusCode::ECANCELED)),
        "{writes:?}"
    );
}

/// Mirrors libuv's test-spawn.c `spawn_reads_child_path`: a program named without
/// a directory is found through the `PATH` given in the child's environment.
#[test]
fn a_bare_program_name_is_found_through_the_child_path() {
    let (code, got) = exit_and_stdout(|| {
        ProcessOptions::new("echo")
            .arg("found")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
    });
    assert_eq!(code, 0);
    assert_eq!(got, b"found\n");
}

/// Mirrors libuv's test-spawn.c `spawn_and_ping`, which sends signal 0 to check
/// that the child is alive. The safe API refuses signal numbers it does not know,
/// 0 included (`EINVAL`, as `attacks_rest` pins; no signal is sent), so the probe
/// is not available; the child runs on and a real signal still reaches it.
#[test]
fn signal_zero_to_a_child_is_refused_and_the_child_runs_on() {
    let lp = Loop::new().unwrap();
    let status = Rc::new(Cell::new(None));
    let s = status.clone();
    let p = Process::spawn(
        &lp,
        &ProcessOptions::new("/bin/sleep").arg("100"),
        move |p, code, sig| {
            s.set(Some((code, sig)));
            p.close();
        },
    )
    .unwrap();
    assert_eq!(code(p.kill(Signum::from_raw(0))), StatusCode::EINVAL);
    assert_eq!(
        code(uv::kill(p.pid().unwrap(), Signum::from_raw(0))),
        StatusCode::EINVAL
    );
    assert!(lp.run(RunMode::NoWait).unwrap());
    assert_eq!(status.get(), None);
    p.kill(Signum::Terminate).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(status.get(), Some((0, Some(Signum::Terminate))));
}

/// Mirrors libuv's test-udp-options.c `udp_options` and `udp_no_autobind`: on a
/// bound socket every TTL from 1 to 255 and every multicast TTL from 0 to 255 is
/// accepted (a TTL of 0 is `EINVAL`); on a handle without a socket the options are
/// `EBADF` (libuv does not make one for them); a handle made with a family has a
/// socket at once, and they work.
#[test]
fn udp_option_ranges_and_no_autobind() {
    let lp = Loop::new().unwrap();
    let u = Udp::new(&lp).unwrap();
    assert_eq!(code(u.set_multicast_ttl(32)), StatusCode::EBADF);
    assert_eq!(code(u.set_broadcast(true)), StatusCode::EBADF);
    assert_eq!(code(u.set_ttl(1)), StatusCode::EBADF);
    assert_eq!(code(u.set_multicast_loop(true)), StatusCode::EBADF);
    assert_eq!(
        code(u.set_multicast_interface(Some(std::net::Ipv4Addr::UNSPECIFIED.into()))),
        StatusCode::EBADF
    );
    assert_eq!(code(u.fileno()), StatusCode::EBADF);

    u.bind(addr("0.0.0.0:0"), UdpFlags::empty()).unwrap();
    for ttl in 1..=255u8 {
        u.set_ttl(ttl).unwrap();
    }
    assert_eq!(code(u.set_ttl(0)), StatusCode::EINVAL);
    u.set_multicast_loop(true).unwrap();
    u.set_multicast_loop(false).unwrap();
    for ttl in 0..=255u8 {
        u.set_multicast_ttl(ttl).unwrap();
    }
    u.set_broadcast(true).unwrap();
    u.set_broadcast(false).unwrap();

    let early = Udp::with_family(&lp, uv::AddressFamily::Inet).unwrap();
    early.set_multicast_ttl(32).unwrap();
    early.set_broadcast(true).unwrap();
    early.set_ttl(1).unwrap();
    early.set_multicast_loop(true).unwrap();
    assert!(early.fileno().is_ok());
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-udp-ipv6.c `udp_dual_stack`: an IPv6 socket bound to `[::]`
/// without `IPV6ONLY` receives a datagram sent over IPv4, from the sender's address
/// mapped to IPv6 (skipped where the machine has no IPv6).
#[test]
fn a_dual_stack_udp_socket_receives_ipv4() {
    let lp = Loop::new().unwrap();
    let rx = Udp::new(&lp).unwrap();
    if let Err(e) = rx.bind(addr("[::]:0"), UdpFlags::empty()) {
        eprintln!("skipping: no IPv6: {e}");
        uv_tests::finish(&lp);
        return;
    }
    let port = rx.local_addr().unwrap().port();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    rx.recv_start(move |u, d| {
        let d = d.unwrap();
        g.borrow_mut().push((d.data.to_vec(), d.addr));
        u.close();
    })
    .unwrap();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let from = tx.local_addr().unwrap();
    tx.send_to(b"v4", ("127.0.0.1", port)).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    let got = got.borrow();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, b"v4");
    let Some(SocketAddr::V6(a)) = got[0].1 else {
        panic!("{:?}", got[0].1)
    };
    assert_eq!(a.ip().to_ipv4_mapped(), Some(std::net::Ipv4Addr::LOCALHOST));
    assert_eq!(a.port(), from.port());
}

/// Mirrors libuv's test-tcp-close-reset.c `tcp_close_reset_client` and
/// `tcp_close_reset_client_after_shutdown`: a reset with writes queued calls each
/// write back once (`ECANCELED` for those not sent) before the handle is closed,
/// and a shutdown after it is refused (`ClosedHandle`; libuv says `ENOTCONN`); a
/// reset while a shutdown is in flight is `EINVAL` and leaves the handle open, for
/// a normal close.
#[test]
fn close_reset_with_writes_queued_and_after_a_shutdown() {
    let lp = Loop::new().unwrap();
    let (client, server) = tcp_pair(&lp);
    let writes = Rc::new(RefCell::new(Vec::new()));
    for _ in 0..4 {
        let (w, c) = (writes.clone(), client.clone());
        client
            .write(vec![b'w'; 1 << 20], move |_, r| {
                // Called back before the handle is closed.
                assert!(!c.is_closed());
                w.borrow_mut().push(r.map_err(|e| e.code()));
            })
            .unwrap();
    }
    client.close_reset().unwrap();
    assert!(client.is_closing());
    assert_eq!(
        client
            .shutdown(|_, _| panic!("shutdown ran"))
            .unwrap_err()
            .kind(),
        Category::ClosedHandle
    );
    server.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(client.is_closed());
    let writes = writes.borrow();
    assert_eq!(writes.len(), 4);
    assert!(
        writes
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StatusCode::ECANCELED))),
        "{writes:?}"
    );

    let (client, server) = tcp_pair(&lp);
    let shutdowns = counter();
    let s = shutdowns.clone();
    client.shutdown(move |_, _| bump(&s)).unwrap();
    assert_eq!(code(client.close_reset()), StatusCode::EINVAL);
    assert!(!client.is_closing());
    client.close();
    server.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(shutdowns.get(), 1);
}

/// Mirrors libuv's test-tcp-close-accept.c: two accepted connections both have a
/// byte to read; the first read callback closes the other connection and the
/// server and connects a new socket (which may get a descriptor number just freed)
/// to the closed server: the closed connection's read callback never runs, the new
/// connect is refused, and every handle closes.
#[test]
fn a_connection_closed_by_another_read_callback_is_never_read() {
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    server.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    let target = server.local_addr().unwrap();
    let incoming: Rc<RefCell<Vec<Tcp>>> = Rc::default();
    let (reads, refused) = (counter(), Rc::new(RefCell::new(None)));
    let lh = lp.handle();
    let inc = incoming.clone();
    let (rd, rf) = (reads.clone(), refused.clone());
    server
        .listen(8, move |l, r| {
            r.unwrap();
            let conn = l.accept().unwrap();
            inc.borrow_mut().push(conn);
            if inc.borrow().len() < 2 {
                return;
            }
            for conn in inc.borrow().iter() {
                let (inc, rd, rf, lh, l) =
                    (inc.clone(), rd.clone(), rf.clone(), lh.clone(), l.clone());
                conn.read_start(move |me, d| {
                    assert_eq!(d.unwrap().len(), 1);
                    bump(&rd);
                    me.read_stop().unwrap();
                    // The other connection: another descriptor.
                    for other in inc.borrow().iter() {
                        if other.fileno().ok() != me.fileno().ok() {
                            other.close();
                        }
                    }
                    l.close();
                    let check = Tcp::new(&lh).unwrap();
                    let (rf, me) = (rf.clone(), me.clone());
                    check
                        .connect(target, move |c, r| {
                            *rf.borrow_mut() = Some(r.map_err(|e| e.code()));
                            c.close();
                            me.close();
                        })
                        .unwrap();
                })
                .unwrap();
            }
        })
        .unwrap();
    for _ in 0..2 {
        let c = Tcp::new(&lp).unwrap();
        c.connect(target, |c, r| {
            r.unwrap();
            c.write(b"x", |c, r| {
                r.unwrap();
                c.close();
            })
            .unwrap();
        })
        .unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(reads.get(), 1);
    assert_eq!(*refused.borrow(), Some(Err(StatusCode::ECONNREFUSED)));
    assert!(incoming.borrow().iter().all(|c| c.is_closed()));
}

/// Mirrors libuv's test-watcher-cross-stop.c (with 200 sockets, not 2500): many UDP
/// sockets share a port (`REUSEADDR`), each receiving and each sending a datagram to
/// that port; once one datagram has arrived all are closed from outside their
/// callbacks: every send is called back once (done or `ECANCELED`) and every
/// handle closes.
#[test]
fn many_udp_sockets_on_one_port_closed_mid_traffic() {
    const N: usize = 200;
    let lp = Loop::new().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (recvs, sends) = (counter(), Rc::new(RefCell::new(Vec::new())));
    let sockets: Vec<Udp> = (0..N)
        .map(|_| {
            let u = Udp::new(&lp).unwrap();
            u.bind(port, UdpFlags::REUSEADDR).unwrap();
            let r = recvs.clone();
            u.recv_start(move |_, d| {
                if d.is_ok() {
                    bump(&r);
                }
            })
            .unwrap();
            let s = sends.clone();
            u.send(vec![b'A'; 1024], Some(port), move |_, r| {
                s.borrow_mut().push(r.map_err(|e| e.code()))
            })
            .unwrap();
            u
        })
        .collect();
    uv_tests::net::run_until(&lp, || recvs.get() > 0);
    let closed = counter();
    for u in &sockets {
        let c = closed.clone();
        u.close_with(move |_| bump(&c));
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(closed.get(), N);
    let sends = sends.borrow();
    assert_eq!(sends.len(), N);
    assert!(
        sends
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StatusCode::ECANCELED))),
        "{sends:?}"
    );
}

/// Mirrors libuv's test-fs-event.c `fs_event_watch_delete_dir`: a watched directory
/// removed reports one event naming it (or no name), with success; the callback
/// stops and closes the watcher, so it runs once.
#[test]
fn a_watched_directory_removed_reports_once() {
    let dir = TempDir::new("scen-fsev-deldir");
    let watched = dir.join("watch_del_dir");
    std::fs::create_dir(&watched).unwrap();
    let lp = Loop::new().unwrap();
    let ev = FsEvent::new(&lp).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    ev.start(&watched, FsEventFlags::empty(), move |ev, name, kind, r| {
        g.borrow_mut()
            .push((name.map(Path::to_path_buf), kind, r.map_err(|e| e.code())));
        ev.stop().unwrap();
        ev.close();
    })
    .unwrap();
    std::fs::remove_dir(&watched).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    let got = got.borrow();
    assert_eq!(got.len(), 1, "{got:?}");
    let (name, kind, r) = &got[0];
    assert_eq!(*r, Ok(()));
    assert!(
        kind.intersects(uv::FsEventKind::RENAME | uv::FsEventKind::CHANGE),
        "{kind:?}"
    );
    if let Some(n) = name {
        assert_eq!(n, Path::new("watch_del_dir"));
    }
}

/// Mirrors libuv's test-fs-event.c `fs_event_stop_in_cb`: a watcher that stops
/// itself in its callback is called once however many changes follow, and the
/// loop ends (a stopped watcher keeps nothing alive).
#[test]
fn a_watcher_stopped_in_its_callback_is_called_once() {
    let dir = TempDir::new("scen-fsev-stop");
    let file = dir.join("f.txt");
    std::fs::write(&file, b"0").unwrap();
    let lp = Loop::new().unwrap();
    let ev = FsEvent::new(&lp).unwrap();
    let calls = counter();
    let (c, f) = (calls.clone(), file.clone());
    ev.start(&file, FsEventFlags::empty(), move |ev, _, _, _| {
        bump(&c);
        ev.stop().unwrap();
        // More changes, after the stop.
        std::fs::write(&f, b"2").unwrap();
        std::fs::write(&f, b"3").unwrap();
    })
    .unwrap();
    std::fs::write(&file, b"1").unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    assert!(!ev.is_active());
    ev.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
}

/// Mirrors libuv's test-fs-event.c `fs_event_watch_file_exact_path`: a watcher of
/// `file.js` is not told about a sibling `file.jsx`: the first event it gets, after
/// the sibling was written and then the file, is the file's own.
#[test]
fn a_file_watcher_ignores_a_sibling_with_a_longer_name() {
    let dir = TempDir::new("scen-fsev-exact");
    let file = dir.join("file.js");
    let sibling = dir.join("file.jsx");
    std::fs::write(&file, b"").unwrap();
    let lp = Loop::new().unwrap();
    let ev = FsEvent::new(&lp).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    ev.start(&file, FsEventFlags::empty(), move |ev, name, _, r| {
        r.unwrap();
        g.borrow_mut().push(name.map(Path::to_path_buf));
        ev.close();
    })
    .unwrap();
    std::fs::write(&sibling, b"sibling").unwrap();
    std::fs::write(&file, b"file").unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    let got = got.borrow();
    assert_eq!(got.len(), 1);
    if let Some(n) = &got[0] {
        assert_eq!(n, Path::new("file.js"));
    }
}

/// Mirrors libuv's test-fs-event.c `fs_event_watch_invalid_path` (the empty path):
/// watching `""` fails at the call and leaves the handle inactive and usable.
#[test]
fn watching_the_empty_path_fails_and_the_handle_stays_usable() {
    let dir = TempDir::new("scen-fsev-empty");
    let lp = Loop::new().unwrap();
    let ev = FsEvent::new(&lp).unwrap();
    assert!(ev
        .start("", FsEventFlags::empty(), |_, _, _, _| {})
        .is_err());
    assert!(!ev.is_active());
    ev.start(dir.path(), FsEventFlags::empty(), |_, _, _, _| {})
        .unwrap();
    assert!(ev.is_active());
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-spawn.c `spawn_tcp_server`: a bound socket handed to a
/// child as its descriptor 3 reaches it as a socket (the child exits 0 when it
/// finds one there). libuv's helper then listens in the child; in the parent the
/// safe API refuses to listen on a stream it gave a child (`EINVAL`, see
/// `Stream::listen`: the child shares the open file and may make it blocking at
/// any time, which would hang the loop), even once the child has exited and after
/// `set_blocking(false)`; the handle still closes normally.
#[test]
fn a_bound_socket_given_to_a_child_reaches_it_as_a_socket() {
    let lp = Loop::new().unwrap();
    let server = Tcp::with_family(&lp, uv::AddressFamily::Inet).unwrap();
    server.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    let opts = ProcessOptions::new("/bin/sh")
        .args(["-c", "[ -S /proc/self/fd/3 ]"])
        .stdio(3, Stdio::stream(&server));
    let status = Rc::new(Cell::new(None));
    let s = status.clone();
    let _p = Process::spawn(&lp, &opts, move |p, code, sig| {
        s.set(Some((code, sig)));
        p.close();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(status.get(), Some((0, None)));

    assert_eq!(code(server.listen(8, |_, _| {})), StatusCode::EINVAL);
    server.set_blocking(false).unwrap();
    assert_eq!(code(server.listen(8, |_, _| {})), StatusCode::EINVAL);
    assert!(!server.is_active());
    uv_tests::finish(&lp);
}

/// Mirrors libuv's test-tcp-write-in-read-cb-backend-timeout.c: a reply written
/// from a read callback completes within the iteration (its callback runs before
/// `RunMode::Once` returns); afterwards, with three reading sockets, no timer and
/// nothing pending, the backend timeout is infinite (`None`): an embedder would
/// block, not spin.
#[test]
fn a_write_from_a_read_callback_leaves_no_pending_work() {
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    server.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    let target = server.local_addr().unwrap();
    let pong_done = counter();
    let incoming: Rc<RefCell<Option<Tcp>>> = Rc::default();
    let (pd, inc) = (pong_done.clone(), incoming.clone());
    server
        .listen(1, move |l, r| {
            r.unwrap();
            let conn = l.accept().unwrap();
            let pd = pd.clone();
            conn.read_start(move |s, d| {
                assert_eq!(d.unwrap(), b"ping");
                let pd = pd.clone();
                s.write(b"pong", move |_, r| {
                    r.unwrap();
                    bump(&pd);
                })
                .unwrap();
                // Written at once: nothing left queued.
                assert_eq!(s.write_queue_size(), 0);
            })
            .unwrap();
            *inc.borrow_mut() = Some(conn);
        })
        .unwrap();
    let client = Tcp::new(&lp).unwrap();
    client
        .connect(target, |c, r| {
            r.unwrap();
            c.read_start(|_, d| {
                d.unwrap();
            })
            .unwrap();
            c.write(b"ping", |_, r| r.unwrap()).unwrap();
        })
        .unwrap();
    while pong_done.get() == 0 {
        assert!(lp.run(RunMode::Once).unwrap());
    }
    assert_eq!(lp.backend_timeout().unwrap(), None);
    let closed = counter();
    for h in [
        (*server).clone(),
        (*client).clone(),
        (**incoming.borrow().as_ref().unwrap()).clone(),
    ] {
        let c = closed.clone();
        h.close_with(move |_| bump(&c));
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(closed.get(), 3);
}

/// Mirrors libuv's test-connection-fail.c `connection_fail_doesnt_auto_close`: a
/// refused connect leaves the handle open (not closing) until the user closes it,
/// from a timer here. A second connect on the failed socket is refused at the call
/// by the kernel (Linux: `ECONNABORTED`), without a callback, and leaves the handle
/// open too.
#[test]
fn a_refused_connect_does_not_close_the_handle() {
    let lp = Loop::new().unwrap();
    let target = closed_port();
    let results = Rc::new(RefCell::new(Vec::new()));
    let t = Tcp::new(&lp).unwrap();
    let (r1, lh) = (results.clone(), lp.handle());
    t.connect(target, move |t, r| {
        r1.borrow_mut().push(r.map_err(|e| e.code()));
        assert!(!t.is_closing());
        let again = t.connect(target, |_, _| panic!("second connect called back"));
        r1.borrow_mut().push(again.map_err(|e| e.code()));
        assert!(!t.is_closing());
        let t = t.clone();
        let timer = Timer::new(&lh).unwrap();
        timer
            .start(MS, Duration::ZERO, move |tm| {
                assert!(!t.is_closing());
                t.close();
                tm.close();
            })
            .unwrap();
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    let results = results.borrow();
    assert_eq!(results[0], Err(StatusCode::ECONNREFUSED));
    assert!(results[1].is_err(), "{results:?}");
    #[cfg(target_os = "linux")]
    assert_eq!(results[1], Err(StatusCode::ECONNABORTED));
    assert!(t.is_closed());
}

/// Mirrors libuv's test-udp-ipv6.c `udp_ipv6_only`: a socket bound to `[::]` with
/// `IPV6ONLY` does not get IPv4 datagrams: of an IPv4 datagram sent first and an
/// IPv6 one sent after it, the IPv6 one is the first to arrive (skipped without
/// IPv6).
#[test]
fn an_ipv6_only_udp_socket_gets_no_ipv4() {
    let lp = Loop::new().unwrap();
    let rx = Udp::new(&lp).unwrap();
    if let Err(e) = rx.bind(addr("[::]:0"), UdpFlags::IPV6ONLY) {
        eprintln!("skipping: no IPv6: {e}");
        uv_tests::finish(&lp);
        return;
    }
    let port = rx.local_addr().unwrap().port();
    let v6 = match std::net::UdpSocket::bind("[::1]:0") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipping: no IPv6 loopback: {e}");
            uv_tests::finish(&lp);
            return;
        }
    };
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    rx.recv_start(move |u, d| {
        g.borrow_mut().push(d.unwrap().data.to_vec());
        u.close();
    })
    .unwrap();
    let v4 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Refused or dropped: nobody gets it on this port over IPv4.
    let _ = v4.send_to(b"v4", ("127.0.0.1", port));
    v6.send_to(b"v6", ("::1", port)).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*got.borrow(), [b"v6".to_vec()]);
}

/// Mirrors libuv's test-tcp-writealot.c: three writes of 4096 chunks each (four
/// times `IOV_MAX` buffers per write) then a shutdown; the peer reads every byte,
/// in order, then the end; each write's callback runs once, in order, before the
/// shutdown's.
#[test]
fn writes_of_thousands_of_chunks_arrive_whole_and_in_order() {
    const CHUNKS: usize = 4096;
    const CHUNK: usize = 61;
    let lp = Loop::new().unwrap();
    let (client, server) = tcp_pair(&lp);
    let events = Rc::new(RefCell::new(Vec::new()));
    let mut want = Vec::new();
    for w in 0..3u8 {
        let chunks: Vec<Vec<u8>> = (0..CHUNKS)
            .map(|i| vec![w.wrapping_mul(97).wrapping_add(i as u8); CHUNK])
            .collect();
        want.extend(chunks.concat());
        let e = events.clone();
        client
            .write(chunks, move |_, r| {
                r.unwrap();
                e.borrow_mut().push(format!("write {w}"));
            })
            .unwrap();
    }
    let e = events.clone();
    client
        .shutdown(move |c, r| {
            r.unwrap();
            e.borrow_mut().push("shutdown".to_string());
            c.close();
        })
        .unwrap();
    let got = uv_tests::read_to_end(&server);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(got.borrow().len(), want.len());
    assert!(*got.borrow() == want);
    assert_eq!(
        *events.borrow(),
        ["write 0", "write 1", "write 2", "shutdown"]
    );
}

/// Mirrors libuv's test-fs-poll.c `fs_poll_close_request` and
/// `fs_poll_close_request_stop_when_active`: a poller whose stat is in flight
/// (after one non-blocking run), stopped and closed, finishes: its close callback
/// runs once, it never calls back, and the loop ends empty.
#[test]
fn a_file_poller_closed_with_its_stat_in_flight_finishes() {
    let dir = TempDir::new("scen-fspoll-inflight");
    for stop_first in [false, true] {
        let lp = Loop::new().unwrap();
        let fp = FsPoll::new(&lp).unwrap();
        let calls = counter();
        let c = calls.clone();
        // An existing path: its first stat (whenever it completes) is no change.
        fp.start(dir.path(), Duration::from_secs(3600), move |_, _| bump(&c))
            .unwrap();
        lp.run(RunMode::NoWait).unwrap();
        if stop_first {
            fp.stop().unwrap();
        }
        let closed = counter();
        let cl = closed.clone();
        fp.close_with(move |_| bump(&cl));
        assert!(!lp.run(RunMode::Default).unwrap());
        assert_eq!((calls.get(), closed.get()), (0, 1));
        assert_eq!(lp.handle_count(), 0);
        lp.close().unwrap();
    }
}
