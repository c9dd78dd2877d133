//! Attacks on the async layer (`uv::future`) from safe code: futures and streams
//! polled by an executor of the user's with wakers that panic (once, always, or in
//! their drop too), dropped while a task waits or after they resolved, handles
//! closed under them, callbacks a wrapped API lets go of unrun, datagrams queued
//! when receiving cannot go on, and bytes a reader read ahead when the stream is
//! handed on. Each test says what used to happen, or which guarantee it pins;
//! values, counts, orders and error codes only.
//! `bash tests/valgrind.sh attacks_futures` checks the memory side.
//!
//! The panics these tests provoke carry a `Provoked` payload, which the panic hook
//! installed here does not print.

#![cfg(unix)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::AsyncReadExt;
use uv::future as uvf;
use uv::{FsEventFlags, Loop, Pipe, RunMode, StatusCode, Stream};
use uv_tests::finish;
use uv_tests::net::{bound_udp, TempDir};
use uv_tests::provoke::{
    poll_next, poll_once, provoked, quiet_provoked_panics, run_catching, run_nowait_catching,
    FlakyWake, PanickingWake, WakeAndDropPanic,
};

// ---- helpers ----

/// A waker that counts its wakes.
fn counting() -> (Arc<FlakyWake>, Waker) {
    let c = FlakyWake::panicking_first(0);
    let w = Waker::from(c.clone());
    (c, w)
}

/// Runs `lp` one non-blocking iteration at a time (catching provoked panics into
/// `panics`) until `done()`, for at most 100 iterations: whether it held. (What
/// the iterations wait for is already there: a hang shows as `false`.)
fn run_until_catching(
    lp: &Loop,
    panics: &mut Vec<&'static str>,
    mut done: impl FnMut() -> bool,
) -> bool {
    for _ in 0..100 {
        if done() {
            return true;
        }
        if let Some(p) = run_nowait_catching(lp) {
            panics.push(p);
        }
    }
    done()
}

// ---- a wake that panics is made again by the next event ----

/// A read of an `AsyncStream` polled by the user's executor with a waker whose
/// first wake panics. The read callback's wake panicked, and the stream's waker
/// slot had already disarmed itself and dropped the waker as the panic unwound:
/// the bytes that came next woke nothing, and the task (never told of either
/// read) waited for good. Now a wake that panics leaves the slot armed with its
/// waker: `run` resumes the panic, the next read wakes the task again, and the
/// poll gets every byte in order.
#[test]
fn a_read_wake_that_panicked_is_made_again_by_the_next_read() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let mut s = uvf::AsyncStream::new(b);
    let w = FlakyWake::panicking_first(1);
    let waker = Waker::from(w.clone());
    let mut buf = [0u8; 16];
    assert!(poll_once(&mut s.read(&mut buf), &waker).is_pending());
    assert_eq!(a.try_write(b"one").unwrap(), 3);
    assert_eq!(run_nowait_catching(&lp), Some("wake"));
    assert_eq!(w.wakes(), 1);
    assert_eq!(a.try_write(b"two").unwrap(), 3);
    let mut panics = Vec::new();
    assert!(run_until_catching(&lp, &mut panics, || w.wakes() == 2));
    assert!(panics.is_empty(), "{panics:?}");
    match poll_once(&mut s.read(&mut buf), &waker) {
        Poll::Ready(Ok(n)) => assert_eq!(&buf[..n], b"onetwo"),
        other => panic!("{other:?}"),
    }
    drop(s);
    finish(&lp);
}

/// The same for a stream fed by a queue (`recv_from`): the datagram callback's
/// wake took the waker out of the queue and lost it when it panicked, so the next
/// datagram woke nothing. Now it wakes the task again, and both datagrams are
/// there, in order.
#[test]
fn a_datagram_wake_that_panicked_is_made_again_by_the_next_datagram() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (u, addr) = bound_udp(&lp);
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut s = uvf::recv_from(&u);
    let w = FlakyWake::panicking_first(1);
    let waker = Waker::from(w.clone());
    assert!(poll_next(&mut s, &waker).is_pending());
    tx.send_to(b"first", addr).unwrap();
    let mut panics = Vec::new();
    assert!(run_until_catching(&lp, &mut panics, || w.wakes() == 1));
    assert_eq!(panics, ["wake"]);
    tx.send_to(b"second", addr).unwrap();
    assert!(run_until_catching(&lp, &mut panics, || w.wakes() == 2));
    assert_eq!(panics, ["wake"]);
    for want in [&b"first"[..], b"second"] {
        match poll_next(&mut s, &waker) {
            Poll::Ready(Some(Ok((d, from)))) => {
                assert_eq!(d, want);
                assert_eq!(from, tx.local_addr().unwrap());
            }
            other => panic!("{other:?}"),
        }
    }
    drop(s);
    finish(&lp);
}

/// A waker whose wake and drop both panic, polled on an `AsyncStream` read and
/// then dropped by its owner, so that the stream's slot holds its last reference.
/// The read callback's wake panicked, and the slot dropped that waker while the
/// panic unwound: its drop panicked too, inside the unwinding ("panic in a
/// destructor during cleanup"), and the process aborted. Now the slot keeps the
/// waker through the panic (no drop while unwinding): `run` resumes the wake's
/// panic; the waker's own drop comes when the stream goes, and its panic comes out
/// of that drop. (In a child process, so that an abort shows as its exit status.)
#[test]
fn a_waker_whose_wake_and_drop_panic_does_not_abort_a_read() {
    uv_tests::assert_scenario_done(SCENARIO, "wake_and_drop_panic");
}

fn wake_and_drop_panic() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let mut s = uvf::AsyncStream::new(b);
    let mut buf = [0u8; 8];
    {
        let waker = Waker::from(Arc::new(WakeAndDropPanic));
        assert!(poll_once(&mut s.read(&mut buf), &waker).is_pending());
    }
    assert_eq!(a.try_write(b"x").unwrap(), 1);
    assert_eq!(run_nowait_catching(&lp), Some("wake"));
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(s)));
    assert_eq!(provoked(&*dropped.unwrap_err()), Some("waker drop"));
    finish(&lp);
    eprintln!("scenario done");
}

// ---- dropped or resolved futures wake no task ----

/// A sleep, an interval, a signal, fs-event and fs-poll stream, a `read_chunks`,
/// an `AsyncStream` read and an `incoming` stream, each polled with a counting
/// waker, then dropped while pending. Their drops close or stop their handle,
/// and the callback the handle then let go of woke the waker of the gone future
/// (once each: the task, which no longer waited for it, was polled for nothing;
/// with a waker that panics, `run` resumed a panic though no future was
/// waiting). Now each drop lets its waker go first: nothing is woken.
#[test]
fn dropped_streams_and_sleeps_wake_no_task() {
    let dir = TempDir::new("attacks-futures");
    let lp = Loop::new().unwrap();
    let h = lp.handle();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let (c, w) = counting();
    let mut sleep = uvf::sleep(&h, Duration::from_secs(100));
    assert!(poll_once(&mut sleep, &w).is_pending());
    let mut interval = uvf::interval(&h, Duration::from_secs(100)).unwrap();
    assert!(poll_next(&mut interval, &w).is_pending());
    let mut signals = uvf::signals(&h, uv::Signum::User2).unwrap();
    assert!(poll_next(&mut signals, &w).is_pending());
    let mut events = uvf::fs_events(&h, dir.path(), FsEventFlags::empty()).unwrap();
    assert!(poll_next(&mut events, &w).is_pending());
    let mut polls = uvf::fs_poll(&h, dir.path(), Duration::from_secs(100)).unwrap();
    assert!(poll_next(&mut polls, &w).is_pending());
    let mut chunks = uvf::read_chunks(b.clone());
    assert!(poll_next(&mut chunks, &w).is_pending());
    let server = uv::Tcp::new(&lp).unwrap();
    server
        .bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    let mut incoming = uvf::incoming(server, 8).unwrap();
    assert!(poll_next(&mut incoming, &w).is_pending());
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(c.wakes(), 0);
    drop((sleep, interval, signals, events, polls, chunks, incoming));
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(c.wakes(), 0);
    // A second reader of the same pipe (the first one's read callback is gone).
    let mut s = uvf::AsyncStream::new(b);
    let mut buf = [0u8; 4];
    assert!(poll_once(&mut s.read(&mut buf), &w).is_pending());
    drop(s);
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(c.wakes(), 0);
    a.close();
    finish(&lp);
}

/// An `AsyncStream` dropped while its `poll_flush` waits for a queued write (a
/// write larger than the pipe takes at once): the write completes later, as
/// promised, and the peer gets every byte, but its completion woke the gone
/// wrapper's task. Now it wakes nothing.
#[test]
fn a_write_completed_after_its_wrapper_went_wakes_no_task() {
    use futures::AsyncWrite;
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let data = uv_tests::net::pattern(1 << 20);
    let mut s = uvf::AsyncStream::new(a);
    let (c, w) = counting();
    let mut cx = Context::from_waker(&w);
    let mut at = 0;
    while at < data.len() {
        match Pin::new(&mut s).poll_write(&mut cx, &data[at..]) {
            Poll::Ready(Ok(n)) => at += n,
            Poll::Ready(Err(e)) => panic!("{e}"),
            Poll::Pending => break,
        }
    }
    assert!(s.write_inflight() > 0);
    assert!(Pin::new(&mut s).poll_flush(&mut cx).is_pending());
    let a = s.into_inner();
    let got = uv_tests::read_to_end(&b);
    // Dropped: the shutdown still happens, after the queued writes.
    drop(uvf::shutdown(&a));
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(got.borrow().len(), at);
    assert!(got.borrow()[..] == data[..at], "the bytes differ");
    assert_eq!(c.wakes(), 0);
    finish(&lp);
}

/// A sleep polled with a waker whose wake always panics: the timer's wake panics
/// (`run` resumes it), and the waker stays for a later event (see above). The
/// sleep, polled again with another waker, is done and closes its timer: its
/// close callback must not wake that first waker again (a second panic out of
/// `run`, for a future that had resolved). Pins: a resolved sleep lets its waker
/// go; `run` is clean, the waker was woken once.
#[test]
fn a_resolved_sleep_is_not_woken_by_its_timer_close() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let mut sleep = uvf::sleep(&lp.handle(), Duration::ZERO);
    let w = Arc::new(PanickingWake::default());
    assert!(poll_once(&mut sleep, &Waker::from(w.clone())).is_pending());
    assert_eq!(run_catching(&lp), Some("wake"));
    assert_eq!(w.0.load(Ordering::SeqCst), 1);
    assert!(matches!(
        poll_once(&mut sleep, Waker::noop()),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(run_catching(&lp), None);
    assert_eq!(w.0.load(Ordering::SeqCst), 1);
    drop(sleep);
    finish(&lp);
}

/// The same for the `Exit` future of `future::spawn`: its exit callback's wake
/// panicked (`run` resumes it) and the waker stayed; the future, polled again, gave
/// the exit status; the process handle, closed afterwards, drops the exit
/// callback, and that drop woke the stale waker again (a second panic out of
/// `run`, for a future that had resolved). Now a resolved `Exit` lets its waker
/// go.
#[test]
fn a_resolved_exit_is_not_woken_by_its_handle_close() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let opts = uv::ProcessOptions::new("/bin/sh").args(["-c", "exit 3"]);
    let (p, mut exit) = uvf::spawn(&lp.handle(), &opts).unwrap();
    let w = Arc::new(PanickingWake::default());
    assert!(poll_once(&mut exit, &Waker::from(w.clone())).is_pending());
    // The child's exit: the wake's panic comes out of `run`.
    assert_eq!(run_catching(&lp), Some("wake"));
    assert_eq!(w.0.load(Ordering::SeqCst), 1);
    match poll_once(&mut exit, Waker::noop()) {
        Poll::Ready(Ok((status, None))) => assert_eq!(status, 3),
        other => panic!("{other:?}"),
    }
    p.close();
    assert_eq!(run_catching(&lp), None);
    assert_eq!(w.0.load(Ordering::SeqCst), 1);
    drop(exit);
    finish(&lp);
}

// ---- callbacks let go of unrun ----

/// `future::request` over a callback API that lets go of its callback without
/// calling it: a timer's, dropped when the timer is closed before it fires. The
/// future waited for good (on an executor of the user's; a task of the loop's
/// stayed pending and its `JoinHandle` never resolved). Now the dropped callback
/// ends the future with `ECANCELED`, and a poll after that answers `EINVAL`, as
/// for any resolved request future.
#[test]
fn a_request_whose_callback_is_dropped_unrun_resolves_to_ecanceled() {
    let lp = Loop::new().unwrap();
    let timer = uv::Timer::new(&lp).unwrap();
    let t = timer.clone();
    let mut f = uvf::request(move |done: uvf::Done<u32>| {
        let mut done = Some(done);
        t.start(Duration::from_secs(100), Duration::ZERO, move |_| {
            if let Some(d) = done.take() {
                d(Ok(7));
            }
        })
    });
    let (c, w) = counting();
    assert!(poll_once(&mut f, &w).is_pending());
    timer.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(c.wakes(), 1);
    match poll_once(&mut f, &w) {
        Poll::Ready(Err(e)) => assert_eq!(e.code(), StatusCode::ECANCELED),
        other => panic!("{other:?}"),
    }
    match poll_once(&mut f, &w) {
        Poll::Ready(Err(e)) => assert_eq!(e.code(), StatusCode::EINVAL),
        other => panic!("{other:?}"),
    }
    // The same future as a task of the loop: its handle resolves.
    let timer = uv::Timer::new(&lp).unwrap();
    let t = timer.clone();
    let mut join = lp
        .spawn_local(uvf::request(move |done: uvf::Done<u32>| {
            let mut done = Some(done);
            t.start(Duration::from_secs(100), Duration::ZERO, move |_| {
                if let Some(d) = done.take() {
                    d(Ok(7));
                }
            })
        }))
        .unwrap();
    lp.run(RunMode::NoWait).unwrap();
    timer.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    match poll_once(&mut join, &w) {
        Poll::Ready(Ok(r)) => assert_eq!(r.unwrap_err().code(), StatusCode::ECANCELED),
        other => panic!("{other:?}"),
    }
    finish(&lp);
}

/// A request whose callback is called: its value, not `ECANCELED` (the callback's
/// drop after its call changes nothing), also when it is called at once, inside
/// the start.
#[test]
fn a_request_whose_callback_runs_gives_its_value() {
    let lp = Loop::new().unwrap();
    let mut now = uvf::request(|done: uvf::Done<u32>| {
        done(Ok(3));
        Ok(())
    });
    let (c, w) = counting();
    assert!(matches!(poll_once(&mut now, &w), Poll::Ready(Ok(3))));
    let timer = uv::Timer::new(&lp).unwrap();
    let t = timer.clone();
    let mut later = uvf::request(move |done: uvf::Done<u32>| {
        let mut done = Some(done);
        t.start(Duration::ZERO, Duration::ZERO, move |t| {
            if let Some(d) = done.take() {
                d(Ok(4));
            }
            t.close();
        })
    });
    assert!(poll_once(&mut later, &w).is_pending());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(c.wakes(), 1);
    assert!(matches!(poll_once(&mut later, &w), Poll::Ready(Ok(4))));
    finish(&lp);
}

// ---- datagrams queued when receiving cannot go on ----

/// A `recv_from` stream that queued its limit of datagrams (1,024: receiving
/// pauses), whose socket is then closed through another value. Each poll tried to
/// start receiving again before it looked at the queue, and the closed handle
/// refused: the stream gave `ClosedHandle` at every poll, for ever, and never one
/// of the datagrams it held. Now the queued datagrams come first, in order, then
/// the stream ends.
#[test]
fn a_closed_socket_gives_its_queued_datagrams_then_ends() {
    let lp = Loop::new().unwrap();
    let (u, addr) = bound_udp(&lp);
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut s = uvf::recv_from(&u);
    let (_c, w) = counting();
    assert!(poll_next(&mut s, &w).is_pending());
    // In rounds, so that the kernel's buffer never drops one.
    let total = 1100u32;
    for i in 0..total {
        tx.send_to(&i.to_le_bytes(), addr).unwrap();
        if i % 50 == 49 {
            for _ in 0..4 {
                lp.run(RunMode::NoWait).unwrap();
            }
        }
    }
    for _ in 0..4 {
        lp.run(RunMode::NoWait).unwrap();
    }
    u.close();
    let mut got = Vec::new();
    loop {
        match poll_next(&mut s, &w) {
            Poll::Ready(Some(Ok((d, _)))) => {
                got.push(u32::from_le_bytes(d.try_into().unwrap()));
            }
            Poll::Ready(Some(Err(e))) => panic!("after {} datagrams: {e}", got.len()),
            Poll::Ready(None) => break,
            Poll::Pending => panic!("pending after {} datagrams", got.len()),
        }
    }
    assert_eq!(got, (0..1024).collect::<Vec<u32>>());
    assert!(matches!(poll_next(&mut s, &w), Poll::Ready(None)));
    drop(s);
    finish(&lp);
}

/// The same stream, not closed: after the pause at 1,024 datagrams (the rest
/// wait in the kernel's buffer), taking one starts receiving again, and every
/// datagram sent comes, in order.
#[test]
fn a_paused_datagram_stream_resumes_as_it_is_drained() {
    let lp = Loop::new().unwrap();
    let (u, addr) = bound_udp(&lp);
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut s = uvf::recv_from(&u);
    let (_c, w) = counting();
    assert!(poll_next(&mut s, &w).is_pending());
    let total = 1100u32;
    for i in 0..total {
        tx.send_to(&i.to_le_bytes(), addr).unwrap();
        if i % 50 == 49 {
            for _ in 0..4 {
                lp.run(RunMode::NoWait).unwrap();
            }
        }
    }
    let mut got = Vec::new();
    for _ in 0..1000 {
        if got.len() == total as usize {
            break;
        }
        while let Poll::Ready(item) = poll_next(&mut s, &w) {
            let (d, _) = item.unwrap().unwrap();
            got.push(u32::from_le_bytes(d.try_into().unwrap()));
        }
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(got, (0..total).collect::<Vec<u32>>());
    drop(s);
    finish(&lp);
}

// ---- the child side ----

const SCENARIO: &str = "UV_ATTACKS_FUTURES_SCENARIO";

uv_tests::scenarios! {
    SCENARIO =>
    wake_and_drop_panic,
}

// ---- bytes read ahead, handed on ----

/// A protocol read in part through an `AsyncStream` (a 5-byte header of a
/// 300,000-byte message), then handed to a callback reader. The wrapper reads
/// ahead of what was asked (up to 256 KiB), and `into_inner`, the only way to
/// hand the stream on, dropped those bytes unseen: the next reader got the
/// message with a hole in it. `into_parts` gives them back: the header, what the
/// wrapper read ahead and what `read_start` reads after it are the message, every
/// byte once, in order. The same for `read_chunks` after its first chunk.
#[test]
fn bytes_a_wrapper_read_ahead_reach_the_next_reader() {
    let lp = Loop::new().unwrap();
    let data = uv_tests::net::pattern(300_000);
    for chunks in [false, true] {
        let (a, b) = Pipe::pair(&lp).unwrap();
        // Queued now (the futures dropped: the write and the shutdown still
        // happen), completed as the readers read.
        drop(uvf::write(&a, data.clone()));
        drop(uvf::shutdown(&a));
        let (mut got, b) = lp
            .block_on(async {
                if chunks {
                    let mut r = uvf::read_chunks(b);
                    let first = futures::StreamExt::next(&mut r).await.unwrap().unwrap();
                    // Let more reads land behind the first chunk (the writer
                    // fills the pipe again in one iteration, the reader reads
                    // in the next).
                    for _ in 0..4 {
                        uvf::yield_now().await;
                    }
                    let uvf::ReadParts {
                        stream: b,
                        bytes: rest,
                        end,
                    } = r.into_parts();
                    // The end may have come too (a socket gives it again).
                    assert!(matches!(end, None | Some(Ok(()))), "{end:?}");
                    ([first, rest].concat(), b)
                } else {
                    let mut s = uvf::AsyncStream::new(b);
                    let mut head = [0u8; 5];
                    s.read_exact(&mut head).await.unwrap();
                    uvf::yield_now().await;
                    let uvf::ReadParts {
                        stream: b,
                        bytes: rest,
                        end,
                    } = s.into_parts();
                    // The end may have come too (a socket gives it again).
                    assert!(matches!(end, None | Some(Ok(()))), "{end:?}");
                    assert!(!rest.is_empty());
                    ([&head[..], &rest].concat(), b)
                }
            })
            .unwrap();
        let tail = uv_tests::read_to_end(&b);
        assert!(!lp.run(RunMode::Default).unwrap());
        got.extend_from_slice(&tail.borrow());
        assert_eq!(got.len(), data.len(), "read_chunks: {chunks}");
        assert!(got == data, "the bytes differ (read_chunks: {chunks})");
        a.close();
        assert!(!lp.run(RunMode::Default).unwrap());
    }
    finish(&lp);
}
