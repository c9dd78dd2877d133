//! Attacks on user code the library drops or wakes from its stream futures, UDP,
//! process and request wrappers: captures whose `Drop` panics, wakers whose wake
//! panics, values dropped by the loop's teardown, requests cancelled, refused or
//! completed during the loop's drop. Each test says what used to happen, or which
//! guarantee it pins; values, counts, orders and error codes only.
//! `tests/valgrind.sh attacks_drops2` checks the memory side.
//!
//! The panics these tests provoke carry a `Provoked` payload, which the panic hook
//! installed here does not print.

#![cfg(unix)]

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};

use uv::{Fs, Loop, Pipe, Process, ProcessOptions, RunMode, Stream};
use uv_tests::net::bound_udp;
use uv_tests::provoke::poll_once;
use uv_tests::provoke::{
    provoke, provoked, quiet_provoked_panics, run_catching, PanicOnDrop, PanickingWake,
};

// ---- helpers ----

/// A counter shared with callbacks.
fn counter() -> Rc<Cell<u32>> {
    Rc::new(Cell::new(0))
}

/// Runs the loop until it has nothing left, collecting the panics it resumed.
fn run_all(lp: &Loop) -> Vec<&'static str> {
    let mut got = Vec::new();
    for _ in 0..16 {
        match run_catching(lp) {
            Some(p) => got.push(p),
            None => return got,
        }
    }
    panic!("the loop kept panicking: {got:?}");
}

fn sh(script: &str) -> ProcessOptions<'static> {
    ProcessOptions::new("/bin/sh").args(["-c", script])
}

/// A waker that counts its wakes.
#[derive(Default)]
struct CountingWake(AtomicUsize);

impl Wake for CountingWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ---- UDP ----

/// A UDP send in flight when the loop is dropped, whose callback captures a value
/// whose `Drop` panics: the teardown completes the send and drops the capture
/// inside its guard (the panic is the teardown's, reported there). Pins: no abort,
/// the callback ran once.
#[test]
fn udp_send_capture_panics_when_loop_dropped() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (u, addr) = bound_udp(&lp);
    let calls = counter();
    let (c, boom) = (calls.clone(), PanicOnDrop("send capture"));
    u.send("x", Some(addr), move |_, _| {
        let _held = &boom;
        c.set(c.get() + 1);
    })
    .unwrap();
    drop(u);
    drop(lp);
    assert_eq!(calls.get(), 1);
}

/// A UDP send whose callback's capture panics when the callback is done with it
/// (an `FnOnce`: dropped at the end of its call): `run` resumes that panic, the
/// loop has nothing left. Pins the guarantee.
#[test]
fn udp_send_callback_and_capture_both_panic() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (u, addr) = bound_udp(&lp);
    let boom = PanicOnDrop("send capture");
    u.send("x", Some(addr), move |_, _| {
        let _held = &boom;
    })
    .unwrap();
    assert_eq!(run_all(&lp), ["send capture"]);
}

/// A receive callback that stops and restarts receiving (replacing itself) and
/// then panics, while it captures a value whose `Drop` panics: the old callback is
/// dropped while its own panic unwinds; that second panic is dropped (no abort,
/// "panic in a destructor during cleanup"), `run` resumes the first, the new
/// callback gets the next datagram. Pins the guarantee.
#[test]
fn udp_recv_callback_replaced_from_inside() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (u, addr) = bound_udp(&lp);
    let calls = counter();
    let (c, boom) = (calls.clone(), PanicOnDrop("old recv"));
    u.recv_start(move |u, r| {
        let _held = &boom;
        if let Ok(d) = r {
            if d.is_drained() {
                return;
            }
        }
        c.set(c.get() + 1);
        u.recv_stop().unwrap();
        u.recv_start(|u, _| u.close()).unwrap();
        provoke("recv cb");
    })
    .unwrap();
    u.send("x", Some(addr), |_, r| r.unwrap()).unwrap();
    u.send("y", Some(addr), |_, r| r.unwrap()).unwrap();
    assert_eq!(run_all(&lp), ["recv cb"]);
    assert_eq!(calls.get(), 1);
}

/// A receive callback that closes its handle and panics, its capture panicking
/// too (dropped by the close callback): `run` resumes the callback's panic; the
/// capture's is dropped as the second one. Pins the guarantee.
#[test]
fn udp_recv_callback_closing_its_handle_with_panicking_capture() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (u, addr) = bound_udp(&lp);
    let boom = PanicOnDrop("recv capture");
    u.recv_start(move |u, _| {
        let _held = &boom;
        u.close();
        provoke("recv cb");
    })
    .unwrap();
    u.send("x", Some(addr), |_, _| ()).unwrap();
    drop(u);
    assert_eq!(run_all(&lp), ["recv cb"]);
}

/// A receiving socket, dropped by the user, whose callback's capture panics when
/// the loop's drop closes it, with a send in flight whose callback panics: both
/// panics stay in the teardown (reported there). Pins: no abort, no leak.
#[test]
fn udp_recv_capture_panics_in_teardown() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (u, addr) = bound_udp(&lp);
    let boom = PanicOnDrop("recv capture");
    u.recv_start(move |_, _| {
        let _held = &boom;
    })
    .unwrap();
    u.send("x", Some(addr), |_, _| provoke("send cb")).unwrap();
    drop(u);
    drop(lp);
}

/// A `recv_from` stream polled with a waker whose wake panics, then its socket
/// closed through another value: the close drops the receive callback, whose
/// wake-up of that waker runs in the close callback's guard; `run` resumes it at
/// most once. Pins the guarantee.
#[test]
fn recv_from_stream_with_panicking_waker_then_closed() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (u, _addr) = bound_udp(&lp);
    let mut s = uv::future::recv_from(&u);
    let w = Arc::new(PanickingWake::default());
    let waker = Waker::from(w.clone());
    let r = catch_unwind(AssertUnwindSafe(|| {
        assert!(poll_once(&mut futures::StreamExt::next(&mut s), &waker).is_pending())
    }));
    assert!(r.is_ok());
    u.close();
    let got = run_all(&lp);
    assert!(got.len() <= 1, "{got:?}");
    drop(s);
}

// ---- processes ----

/// A process whose `Process` value is dropped before the child exits, its exit
/// callback capturing a value whose `Drop` panics: the exit callback runs once
/// (status 3), then the handle, unreferenced, is closed and the capture dropped in
/// the close callback's guard; `run` resumes that panic, nothing is left alive.
#[test]
fn process_exit_capture_panics_after_exit_of_dropped_handle() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let calls = counter();
    let (c, boom) = (calls.clone(), PanicOnDrop("exit capture"));
    let p = Process::spawn(&lp, &sh("exit 3"), move |_, status, _| {
        let _held = &boom;
        assert_eq!(status, 3);
        c.set(c.get() + 1);
    })
    .unwrap();
    drop(p);
    assert_eq!(run_all(&lp), ["exit capture"]);
    assert_eq!(calls.get(), 1);
    assert!(!lp.alive());
}

/// The same, with an exit callback that panics too: `run` resumes the callback's
/// panic (the capture's, dropped at the close, is the second one), the handle is
/// closed all the same.
#[test]
fn process_exit_callback_and_capture_panic() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let boom = PanicOnDrop("exit capture");
    let p = Process::spawn(&lp, &sh("exit 3"), move |_, _, _| {
        let _held = &boom;
        provoke("exit cb");
    })
    .unwrap();
    drop(p);
    assert_eq!(run_all(&lp), ["exit cb"]);
    assert!(!lp.alive());
}

/// A process closed before its child exits (the exit callback never runs), whose
/// exit callback's capture panics when dropped by the close: `run` resumes it,
/// the callback never ran, the child exiting later (killed) changes nothing.
#[test]
fn process_closed_before_exit_capture_panics() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let calls = counter();
    let (c, boom) = (calls.clone(), PanicOnDrop("exit capture"));
    let p = Process::spawn(&lp, &sh("read x"), move |_, _, _| {
        let _held = &boom;
        c.set(c.get() + 1);
    })
    .unwrap();
    let pid = p.pid().unwrap();
    p.close();
    assert_eq!(run_all(&lp), ["exit capture"]);
    uv::kill(pid, uv::Signum::Kill).unwrap();
    assert_eq!(calls.get(), 0);
}

/// A running child's process handle closed by the loop's drop, its exit
/// callback's capture panicking: the teardown keeps the panic (reported there).
/// Pins: no abort; the child is killed after the loop is gone.
#[test]
fn process_dropped_with_loop_capture_panics() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let boom = PanicOnDrop("exit capture");
    let p = Process::spawn(&lp, &sh("read x"), move |_, _, _| {
        let _held = &boom;
    })
    .unwrap();
    let pid = p.pid().unwrap();
    drop(p);
    drop(lp);
    uv::kill(pid, uv::Signum::Kill).unwrap();
}

/// The `Exit` future of `future::spawn`, polled with a waker whose wake panics:
/// the exit callback wakes it in its guard, `run` resumes the panic. A wake that
/// panics is not taken as delivered: the handle's close (its last value was
/// dropped), which drops the exit callback, wakes the future, not yet resolved,
/// again: woken twice.
#[test]
fn future_spawn_exit_polled_with_panicking_waker() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (p, mut exit) = uv::future::spawn(&lp, &sh("exit 0")).unwrap();
    let w = Arc::new(PanickingWake::default());
    assert!(poll_once(&mut exit, &Waker::from(w.clone())).is_pending());
    drop(p);
    assert_eq!(run_all(&lp), ["wake"]);
    assert_eq!(w.0.load(Ordering::SeqCst), 2);
}

/// The same, the process closed before the child exits: the close drops the exit
/// callback, whose wake-up (the future ends with `ClosedHandle`) runs in the close
/// callback's guard; `run` resumes it, woken once.
#[test]
fn future_spawn_closed_with_panicking_waker() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (p, mut exit) = uv::future::spawn(&lp, &sh("read x")).unwrap();
    let pid = p.pid().unwrap();
    let w = Arc::new(PanickingWake::default());
    assert!(poll_once(&mut exit, &Waker::from(w.clone())).is_pending());
    p.close();
    assert_eq!(run_all(&lp), ["wake"]);
    uv::kill(pid, uv::Signum::Kill).unwrap();
    assert_eq!(w.0.load(Ordering::SeqCst), 1);
}

/// The same, the loop dropped while the child runs: the wake-up's panic stays in
/// the teardown, the waker was woken once.
#[test]
fn future_spawn_loop_dropped_with_panicking_waker() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (p, mut exit) = uv::future::spawn(&lp, &sh("read x")).unwrap();
    let pid = p.pid().unwrap();
    let w = Arc::new(PanickingWake::default());
    assert!(poll_once(&mut exit, &Waker::from(w.clone())).is_pending());
    drop(lp);
    uv::kill(pid, uv::Signum::Kill).unwrap();
    assert_eq!(w.0.load(Ordering::SeqCst), 1);
}

// ---- requests ----

/// A file-system request cancelled (`uv_cancel`) whose callback's capture panics:
/// the callback runs once (cancelled, or with its result when a pool thread had
/// taken it), the capture's panic is resumed by `run`.
#[test]
fn fs_request_cancelled_capture_panics() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let calls = counter();
    let (c, boom) = (calls.clone(), PanicOnDrop("fs capture"));
    let req = Fs::stat(&lp, "/", move |_| {
        let _held = &boom;
        c.set(c.get() + 1);
    })
    .unwrap();
    let _ = req.cancel();
    assert_eq!(run_all(&lp), ["fs capture"]);
    assert_eq!(calls.get(), 1);
}

/// A file-system request in flight when the loop is dropped, with a panicking
/// capture: completed by the teardown, its callback ran once, the panic stays in
/// the teardown. Pins: no abort, no leak.
#[test]
fn fs_request_completed_during_loop_drop() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let calls = counter();
    let (c, boom) = (calls.clone(), PanicOnDrop("fs capture"));
    let _req = Fs::stat(&lp, "/", move |_| {
        let _held = &boom;
        c.set(c.get() + 1);
    })
    .unwrap();
    drop(lp);
    assert_eq!(calls.get(), 1);
}

/// The same for a DNS request whose `DnsRequest` value was dropped first.
#[test]
fn dns_request_completed_during_loop_drop() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let calls = counter();
    let (c, boom) = (calls.clone(), PanicOnDrop("dns capture"));
    let hints = uv::AddrInfoHints::default();
    let req = lp
        .getaddrinfo_with(Some("127.0.0.1"), None, &hints, move |_| {
            let _held = &boom;
            c.set(c.get() + 1);
        })
        .unwrap();
    drop(req);
    drop(lp);
    assert_eq!(calls.get(), 1);
}

/// A thread-pool job cancelled just before the loop is dropped, whose `after`
/// captures a value whose `Drop` panics: `after` runs once (with `ECANCELED`, or
/// with 7 when a pool thread had taken the job), the panic stays in the teardown.
#[test]
fn work_cancelled_during_loop_drop() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let calls = counter();
    let (c, boom) = (calls.clone(), PanicOnDrop("after capture"));
    let req = lp
        .queue_work(
            move || 7,
            move |_| {
                let _held = &boom;
                c.set(c.get() + 1);
            },
        )
        .unwrap();
    // Cancelled, or already taken by a pool thread: either way `after` runs.
    let _ = req.cancel();
    drop(lp);
    assert_eq!(calls.get(), 1);
}

/// Three large writes and a shutdown queued on a pipe nobody reads, each callback
/// capturing a value whose `Drop` panics, when the loop is dropped: every callback
/// runs once (cancelled), the panics stay in the teardown. Pins: no abort, no
/// write lost unreported.
#[test]
fn write_and_shutdown_during_loop_drop() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (a, _b) = Pipe::pair(&lp).unwrap();
    let calls = counter();
    for name in ["w1", "w2", "w3"] {
        let (c, boom) = (calls.clone(), PanicOnDrop(name));
        a.write(vec![0u8; 1 << 20], move |_, _| {
            let _held = &boom;
            c.set(c.get() + 1);
        })
        .unwrap();
    }
    let (c, boom) = (calls.clone(), PanicOnDrop("shut"));
    a.shutdown(move |_, _| {
        let _held = &boom;
        c.set(c.get() + 1);
    })
    .unwrap();
    drop(lp);
    assert_eq!(calls.get(), 4);
}

/// A write future polled with two wakers (the task that polled it first, whose
/// wake panics, then another): the write's completion wakes both, in order. The
/// first wake's panic unwound out of the tracker's loop over the wakers, so the
/// second waker was dropped unwoken (its task would wait for good: a hang). Now
/// every waker is woken, then the first panic goes on (`run` resumes it).
#[test]
fn write_futures_two_wakers_one_write() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let mut f = uv::future::write(&a, vec![1u8; 16]);
    let bad = Arc::new(PanickingWake::default());
    let good = Arc::new(CountingWake::default());
    assert!(poll_once(&mut f, &Waker::from(bad.clone())).is_pending());
    assert!(poll_once(&mut f, &Waker::from(good.clone())).is_pending());
    let got = run_all(&lp);
    assert_eq!(got, ["wake"]);
    assert_eq!(bad.0.load(Ordering::SeqCst), 1);
    assert_eq!(good.0.load(Ordering::SeqCst), 1);
    drop((a, b));
}

/// A receive callback that replaces itself (stop, then start with a new callback)
/// without panicking, its capture panicking when dropped after it returned: `run`
/// resumes that panic, and the new callback got the second datagram.
#[test]
fn udp_recv_replaced_capture_panics_no_cb_panic() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (u, addr) = bound_udp(&lp);
    let calls = counter();
    let (c, boom) = (calls.clone(), PanicOnDrop("old recv"));
    let c2 = calls.clone();
    u.recv_start(move |u, r| {
        let _held = &boom;
        if matches!(&r, Ok(d) if d.is_drained()) {
            return;
        }
        c.set(c.get() + 1);
        u.recv_stop().unwrap();
        let c2 = c2.clone();
        u.recv_start(move |u, r| {
            if matches!(&r, Ok(d) if d.is_drained()) {
                return;
            }
            c2.set(c2.get() + 10);
            u.close();
        })
        .unwrap();
    })
    .unwrap();
    u.send("x", Some(addr), |_, r| r.unwrap()).unwrap();
    u.send("y", Some(addr), |_, r| r.unwrap()).unwrap();
    assert_eq!(run_all(&lp), ["old recv"]);
    assert_eq!(calls.get(), 11);
}

/// A read callback that stops reading from inside, its capture panicking when the
/// replaced callback is dropped after its call: `run` resumes the panic, the
/// callback ran once.
#[test]
fn pipe_read_stopped_inside_with_panicking_capture() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let calls = counter();
    let (c, boom) = (calls.clone(), PanicOnDrop("read capture"));
    b.read_start(move |b, _| {
        let _held = &boom;
        c.set(c.get() + 1);
        b.read_stop().unwrap();
    })
    .unwrap();
    a.write("x", |_, r| r.unwrap()).unwrap();
    assert_eq!(run_all(&lp), ["read capture"]);
    assert_eq!(calls.get(), 1);
    drop((a, b));
}

/// A send refused (`ClosedHandle`) from inside a receive callback, whose
/// callback's capture panics as the refusal drops it: the panic goes through the
/// `send` call to the receive callback's guard, `run` resumes it.
#[test]
fn udp_send_from_recv_to_closed_handle_capture_panics() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (u, addr) = bound_udp(&lp);
    u.recv_start(move |u, r| {
        if matches!(&r, Ok(d) if d.is_drained()) {
            return;
        }
        u.close();
        let boom = PanicOnDrop("refused send capture");
        let e = u
            .send("z", Some(addr), move |_, _| {
                let _h = &boom;
            })
            .unwrap_err();
        let _ = e;
    })
    .unwrap();
    u.send("x", Some(addr), |_, _| ()).unwrap();
    drop(u);
    assert_eq!(run_all(&lp), ["refused send capture"]);
}

/// A task dropped by the loop's teardown that holds a `recv_from`, a
/// `read_chunks` and an `interval` stream, each polled inside the task with a
/// waker whose wake panics, and a value whose `Drop` panics: each stream's drop
/// lets that waker go without waking it (the streams are gone: 0 wakes; each drop
/// used to wake it once), the capture's panic stays in the teardown. Pins: no
/// abort.
#[test]
fn teardown_drops_tasks_holding_streams_polled_by_panicking_wakers() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (u, _addr) = bound_udp(&lp);
    let (a, b) = Pipe::pair(&lp).unwrap();
    let w = Arc::new(PanickingWake::default());
    let h = lp.handle();
    let w2 = w.clone();
    lp.spawn_local(async move {
        let waker = Waker::from(w2);
        let mut r = uv::future::recv_from(&u);
        let mut ch = uv::future::read_chunks(b);
        let mut iv = uv::future::interval(&h, std::time::Duration::from_secs(100)).unwrap();
        assert!(poll_once(&mut futures::StreamExt::next(&mut r), &waker).is_pending());
        assert!(poll_once(&mut futures::StreamExt::next(&mut ch), &waker).is_pending());
        assert!(poll_once(&mut futures::StreamExt::next(&mut iv), &waker).is_pending());
        let _boom = PanicOnDrop("task capture");
        std::future::pending::<()>().await;
    })
    .unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(w.0.load(Ordering::SeqCst), 0);
    drop(lp);
    assert_eq!(w.0.load(Ordering::SeqCst), 0);
    drop(a);
}

/// A TCP connect in flight when the loop is dropped (the handle dropped by the
/// user), with a panicking capture: the callback runs once with `ECANCELED`, the
/// capture's panic stays in the teardown.
#[test]
fn tcp_connect_pending_at_loop_drop_capture_panics() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let server = uv::Tcp::new(&lp).unwrap();
    server
        .bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    server.listen(8, |_, _| ()).unwrap();
    let addr = server.local_addr().unwrap();
    let c = uv::Tcp::new(&lp).unwrap();
    let calls = counter();
    let (k, boom) = (calls.clone(), PanicOnDrop("connect capture"));
    c.connect(addr, move |_, r| {
        let _h = &boom;
        assert_eq!(r.unwrap_err().code(), uv::StatusCode::ECANCELED);
        k.set(k.get() + 1);
    })
    .unwrap();
    drop(c);
    drop(lp);
    assert_eq!(calls.get(), 1);
}

/// A job whose value's `Drop` panics (dropped at the end of `after`), its
/// `Request` kept past the loop's drop: `after` ran once in the teardown, the
/// `Request` answers an error to `cancel` and is dropped without a leak.
#[test]
fn work_request_kept_past_loop_drop() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let calls = counter();
    let c = calls.clone();
    let req = lp
        .queue_work(
            || PanicOnDrop("value"),
            move |r| {
                c.set(c.get() + 1);
                drop(r);
            },
        )
        .unwrap();
    drop(lp);
    assert_eq!(calls.get(), 1);
    assert!(req.cancel().is_err());
    drop(req);
}

/// A DNS future polled with a waker whose wake panics, then dropped (cancelled).
/// The request's completion, which still comes, used to wake the waker of that
/// gone future (kept until then): its panic came out of `run` though no future
/// was waiting. Now the drop lets the waker go: nothing is woken, `run` is clean.
#[test]
fn dns_future_dropped_with_panicking_waker() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let hints = uv::AddrInfoHints::default();
    let mut f = uv::future::getaddrinfo(&lp.handle(), Some("127.0.0.1"), None, &hints);
    let w = Arc::new(PanickingWake::default());
    assert!(poll_once(&mut f, &Waker::from(w.clone())).is_pending());
    drop(f);
    assert_eq!(run_all(&lp), Vec::<&str>::new());
    assert_eq!(w.0.load(Ordering::SeqCst), 0);
}

/// A DNS future pending when the loop is dropped, polled with a waker whose wake
/// panics: the teardown completes it (the wake's panic stays in the teardown),
/// and it is ready afterwards. Woken twice: the completion's wake panicked, so
/// the drop of its callback right after (the last event) wakes it again.
#[test]
fn dns_future_pending_at_loop_drop_with_panicking_waker() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let hints = uv::AddrInfoHints::default();
    let mut f = uv::future::getaddrinfo(&lp.handle(), Some("127.0.0.1"), None, &hints);
    let w = Arc::new(PanickingWake::default());
    assert!(poll_once(&mut f, &Waker::from(w.clone())).is_pending());
    drop(lp);
    assert_eq!(w.0.load(Ordering::SeqCst), 2);
    assert!(poll_once(&mut f, &Waker::from(w.clone())).is_ready());
}

/// `write_each` whose iterator panics at its fourth item: the three writes made
/// before are not lost (the reader gets them, then a later write, in order).
#[test]
fn write_each_iterator_panics_midway() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let got = uv_tests::read_to_end(&b);
    let r = catch_unwind(AssertUnwindSafe(|| {
        uv::future::write_each(
            &a,
            (0..5).map(|i| {
                if i == 3 {
                    provoke("iter");
                }
                vec![b'0' + i as u8]
            }),
        )
    }));
    assert_eq!(provoked(&*r.unwrap_err()), Some("iter"));
    let f = uv::future::write(&a, "z");
    let n = lp.block_on(f).unwrap();
    assert!(n.is_ok());
    a.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*got.borrow(), b"012z");
}

/// A `send_to` future and an `Exit` future polled with a waker whose wake panics,
/// then dropped before their completion: the completion used to wake the gone
/// futures' wakers (kept until then), whose panics came out of `run`. Now the
/// drops let the wakers go: `run` is clean, nothing is woken, the datagram is
/// still sent and the exit still seen by the handle.
#[test]
fn dropped_handle_request_and_exit_futures_are_not_woken() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (u, addr) = bound_udp(&lp);
    let got = counter();
    let g = got.clone();
    u.recv_start(move |u, r| {
        if matches!(&r, Ok(d) if d.is_drained()) {
            return;
        }
        assert_eq!(r.unwrap().data, b"sent");
        g.set(g.get() + 1);
        u.close();
    })
    .unwrap();
    let w = Arc::new(PanickingWake::default());
    let waker = Waker::from(w.clone());
    let mut send = uv::future::send_to(&u, "sent", Some(addr));
    assert!(poll_once(&mut send, &waker).is_pending());
    drop(send);
    let (p, mut exit) = uv::future::spawn(&lp.handle(), &sh("exit 5")).unwrap();
    assert!(poll_once(&mut exit, &waker).is_pending());
    drop(exit);
    drop((u, p));
    assert_eq!(run_all(&lp), Vec::<&str>::new());
    assert_eq!(w.0.load(Ordering::SeqCst), 0);
    assert_eq!(got.get(), 1);
    assert!(!lp.alive());
}

/// A spawn that fails (`ENOENT`) with an exit callback whose capture panics: the
/// handle libuv initialised is closed, and its close callback drops the capture:
/// `spawn` returns the error, the next `run` resumes the capture's panic. Pins
/// the guarantee (no abort, no leak).
#[test]
fn a_failed_spawn_drops_a_panicking_capture_in_the_loop() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let boom = PanicOnDrop("exit capture");
    let e = Process::spawn(
        &lp,
        &ProcessOptions::new("/nonexistent/prog"),
        move |_, _, _| {
            let _h = &boom;
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), uv::StatusCode::ENOENT);
    assert_eq!(run_all(&lp), ["exit capture"]);
}

/// An `incoming` stream polled with a waker whose wake panics, its server closed
/// through a clone: the close drops the listen callback, whose wake-up runs in
/// the close callback's guard; `run` resumes it once, and the stream then ends.
#[test]
fn incoming_closed_through_a_clone_wakes_a_panicking_waker_once() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let server = uv::Tcp::new(&lp).unwrap();
    server
        .bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    let s2 = server.clone();
    let mut inc = uv::future::incoming(server, 8).unwrap();
    let w = Arc::new(PanickingWake::default());
    let waker = Waker::from(w.clone());
    assert!(poll_once(&mut futures::StreamExt::next(&mut inc), &waker).is_pending());
    s2.close();
    assert_eq!(run_all(&lp), ["wake"]);
    assert_eq!(w.0.load(Ordering::SeqCst), 1);
    assert!(matches!(
        poll_once(&mut futures::StreamExt::next(&mut inc), &waker),
        Poll::Ready(None)
    ));
}

/// `signals`, `fs_poll` and `fs_events` streams polled with a waker whose wake
/// panics, pending when the loop is dropped: the teardown closes their handles,
/// each wakes the waker once (3 wakes, the panics stay in the teardown), and the
/// streams end afterwards.
#[test]
fn signal_and_fs_streams_pending_at_the_loop_drop_are_woken_and_end() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let w = Arc::new(PanickingWake::default());
    let h = lp.handle();
    let mut sig = uv::future::signals(&h, uv::Signum::User1).unwrap();
    let mut fp = uv::future::fs_poll(&h, "/", std::time::Duration::from_secs(100)).unwrap();
    let mut fe = uv::future::fs_events(&h, "/tmp", uv::FsEventFlags::empty()).unwrap();
    let waker = Waker::from(w.clone());
    assert!(poll_once(&mut futures::StreamExt::next(&mut sig), &waker).is_pending());
    assert!(poll_once(&mut futures::StreamExt::next(&mut fp), &waker).is_pending());
    assert!(poll_once(&mut futures::StreamExt::next(&mut fe), &waker).is_pending());
    drop(lp);
    assert_eq!(w.0.load(Ordering::SeqCst), 3);
    assert!(matches!(
        poll_once(&mut futures::StreamExt::next(&mut sig), &waker),
        Poll::Ready(None)
    ));
    assert!(matches!(
        poll_once(&mut futures::StreamExt::next(&mut fp), &waker),
        Poll::Ready(None)
    ));
    assert!(matches!(
        poll_once(&mut futures::StreamExt::next(&mut fe), &waker),
        Poll::Ready(None)
    ));
}

/// A write future and a `write_each` future polled with a waker whose wake
/// panics, then dropped before their writes completed: the completions used to
/// wake the gone futures' wakers (kept in the stream's tracker until then, or
/// until the stream closed), whose panics came out of `run`. Now the drops let
/// them go: `run` is clean, nothing is woken, every byte still arrives in order,
/// and a later write future of the stream is woken as usual.
#[test]
fn dropped_write_futures_are_not_woken() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let got = uv_tests::read_to_end(&b);
    let bad = Arc::new(PanickingWake::default());
    let waker = Waker::from(bad.clone());
    let mut one = uv::future::write(&a, "one ");
    assert!(poll_once(&mut one, &waker).is_pending());
    let mut each = uv::future::write_each(&a, ["two ", "three "]);
    assert!(poll_once(&mut each, &waker).is_pending());
    let good = Arc::new(CountingWake::default());
    let mut last = uv::future::write(&a, "four");
    assert!(poll_once(&mut last, &Waker::from(good.clone())).is_pending());
    drop((one, each));
    uv_tests::shutdown_and_close(&a);
    assert_eq!(run_all(&lp), Vec::<&str>::new());
    assert_eq!(bad.0.load(Ordering::SeqCst), 0);
    assert_eq!(good.0.load(Ordering::SeqCst), 1);
    assert!(matches!(
        poll_once(&mut last, &Waker::from(good)),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(&*got.borrow(), b"one two three four");
}
