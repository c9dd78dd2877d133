//! Attacks on the async layer (`uv::future`), second part: what a wrapper that
//! read ahead saw of a stream's end when it hands the stream on, receive streams
//! whose socket a clone stops, and handle futures whose callback the runtime lets
//! go of unrun. Each test says what used to happen, or which guarantee it pins;
//! values, counts, orders and error codes only.
//! `bash tests/valgrind.sh attacks_futures2` checks the memory side.

#![cfg(unix)]

use std::cell::RefCell;
use std::future::Future as _;
use std::io::Write as _;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::{AsyncRead, Stream as _};
use uv::future as uvf;
use uv::{Loop, RunMode, StatusCode, Stream};
use uv_tests::finish;
use uv_tests::provoke::FlakyWake;

// ---- helpers ----

/// A waker that counts its wakes.
fn counting() -> (Arc<FlakyWake>, Waker) {
    FlakyWake::with_waker(0)
}

/// Runs `lp` one iteration at a time (each waits for I/O that is on its way: bytes
/// just written to a terminal or a socket) until `c` counts a wake, for at most
/// 100 iterations: whether it did.
fn run_until_woken(lp: &Loop, c: &FlakyWake) -> bool {
    let before = c.wakes();
    for _ in 0..100 {
        if c.wakes() > before {
            return true;
        }
        lp.run(RunMode::Once).unwrap();
    }
    c.wakes() > before
}

/// A terminal of `lp` reading the slave side of a new pseudo-terminal (canonical
/// mode: a read gives one line, and Ctrl-D at the start of a line reads as the end
/// of input, once), and the master side to type into.
fn terminal(lp: &Loop) -> (uv::Tty, std::fs::File) {
    let (master, slave) = uv_tests::pty();
    (uv::Tty::new(lp, slave, true).unwrap(), master.into())
}

/// What a callback reader of `s` got: the length of each read, or its error code.
type Reads = Rc<RefCell<Vec<Result<usize, StatusCode>>>>;

/// Starts a callback reader on `s` that records its reads (stopping at an error).
fn record_reads<S: Stream>(s: &S) -> Reads {
    let got: Reads = Rc::default();
    let g = got.clone();
    s.read_start(move |s, r| {
        let end = r.is_err();
        g.borrow_mut()
            .push(r.map(<[u8]>::len).map_err(|e| e.code()));
        if end {
            let _ = s.read_stop();
        }
    })
    .unwrap();
    got
}

// ---- the end a wrapper saw, handed on ----

/// A line typed into a terminal, read through an `AsyncStream` (or as the chunk of
/// a `read_chunks` stream), then Ctrl-D: the wrapper's read callback got the end of
/// input, and the task was woken for it but had not polled yet when the reader
/// handed the terminal on with `into_parts`. The tuple it gave, `(stream, bytes)`,
/// dropped that end: the terminal reads Ctrl-D as the end once, so a callback
/// reader started next never saw it and waited for more input (what was typed
/// next came as if the input had not ended). Now `into_parts` gives a `ReadParts`
/// whose `end` is `Some(Ok(()))`; the next reader gets the next line and no end,
/// as the kernel gives it.
#[test]
fn into_parts_gives_the_end_of_a_terminal_s_input() {
    let lp = Loop::new().unwrap();
    for chunks in [false, true] {
        let (tty, mut typing) = terminal(&lp);
        let (c, w) = counting();
        let mut s = uvf::AsyncStream::new(tty.clone());
        let mut r = uvf::read_chunks(tty.clone());
        let mut buf = [0u8; 16];
        let mut poll = |buf: &mut [u8]| -> Poll<usize> {
            let cx = &mut Context::from_waker(&w);
            if chunks {
                Pin::new(&mut r)
                    .poll_next(cx)
                    .map(|c| c.map_or(0, |c| c.unwrap().len()))
            } else {
                Pin::new(&mut s).poll_read(cx, buf).map(|n| n.unwrap())
            }
        };
        assert!(poll(&mut buf).is_pending());
        typing.write_all(b"abc\n").unwrap();
        assert!(run_until_woken(&lp, &c), "read_chunks: {chunks}");
        assert_eq!(poll(&mut buf), Poll::Ready(4), "read_chunks: {chunks}");
        // Waiting for more; Ctrl-D comes, the task is woken and polls no more.
        assert!(poll(&mut buf).is_pending());
        typing.write_all(b"\x04").unwrap();
        assert!(run_until_woken(&lp, &c), "read_chunks: {chunks}");
        let uvf::ReadParts { stream, bytes, end } = if chunks {
            drop(s);
            r.into_parts()
        } else {
            drop(r);
            s.into_parts()
        };
        assert!(bytes.is_empty(), "read_chunks: {chunks}");
        assert!(matches!(end, Some(Ok(()))), "read_chunks: {chunks} {end:?}");
        // The kernel does not give the end again: the next reader gets what is
        // typed next, with no end before it.
        let got = record_reads(&stream);
        typing.write_all(b"more\n").unwrap();
        for _ in 0..100 {
            if !got.borrow().is_empty() {
                break;
            }
            lp.run(RunMode::Once).unwrap();
        }
        assert_eq!(*got.borrow(), [Ok(5)], "read_chunks: {chunks}");
        stream.close();
        drop(typing);
        assert!(!lp.run(RunMode::Default).unwrap());
    }
    finish(&lp);
}

/// A TCP connection whose peer resets it while an `AsyncStream` (or a
/// `read_chunks` stream) waits: the wrapper's read callback got `ECONNRESET`.
/// Handed on with `into_parts` before the task polled again, the error was
/// dropped: the next reader's `read_start` failed with `ENOTCONN` (libuv no
/// longer takes a socket whose read failed as readable), and the reset was never
/// told. Now `end` is `Some(Err(ECONNRESET))`, also once the wrapper gave the
/// error out (a copy is kept).
#[test]
fn into_parts_gives_a_read_error_given_out_or_not() {
    let lp = Loop::new().unwrap();
    for chunks in [false, true] {
        for given_out in [false, true] {
            let (a, b) = uv_tests::net::tcp_pair();
            let (ta, tb) = (uv::Tcp::new(&lp).unwrap(), uv::Tcp::new(&lp).unwrap());
            ta.open(a).unwrap();
            tb.open(b).unwrap();
            let (c, w) = counting();
            let cx = &mut Context::from_waker(&w);
            let mut s = uvf::AsyncStream::new(tb.clone());
            let mut r = uvf::read_chunks(tb.clone());
            let mut poll = |cx: &mut Context<'_>| -> Poll<Result<usize, StatusCode>> {
                if chunks {
                    Pin::new(&mut r).poll_next(cx).map(|c| match c {
                        Some(Ok(c)) => Ok(c.len()),
                        Some(Err(e)) => Err(e.code()),
                        None => Ok(0),
                    })
                } else {
                    Pin::new(&mut s).poll_read(cx, &mut [0u8; 16]).map_err(|e| {
                        assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET));
                        StatusCode::ECONNRESET
                    })
                }
            };
            assert!(poll(cx).is_pending());
            ta.close_reset().unwrap();
            assert!(run_until_woken(&lp, &c));
            if given_out {
                assert_eq!(poll(cx), Poll::Ready(Err(StatusCode::ECONNRESET)));
            }
            let parts = if chunks {
                drop(s);
                r.into_parts()
            } else {
                drop(r);
                s.into_parts()
            };
            let what = format!("read_chunks: {chunks}, given out: {given_out}");
            assert!(parts.bytes.is_empty(), "{what}");
            match &parts.end {
                Some(Err(e)) => assert_eq!(e.code(), StatusCode::ECONNRESET, "{what}"),
                other => panic!("{what}: {other:?}"),
            }
            // What the next reader would have had instead.
            let e = parts.stream.read_start(|_, _| {}).unwrap_err();
            assert_eq!(e.code(), StatusCode::ENOTCONN, "{what}");
            parts.stream.close();
            assert!(!lp.run(RunMode::Default).unwrap());
        }
    }
    finish(&lp);
}

// ---- a receive stream whose socket a clone stops ----

/// A `recv_from` stream waiting for a datagram when a clone of its socket calls
/// `recv_stop` (a socket without and with `RECVMMSG`). The stream still took
/// itself as receiving: its next poll did not start again, and nothing woke its
/// task, so the datagrams sent next waited on the socket and the stream stayed
/// pending for good. Now `recv_stop` drops the receive callback (as a stream's
/// `read_stop` drops its read callback), which wakes the task; its next poll
/// starts receiving again and gets every datagram, in order.
#[test]
fn recv_from_receives_again_after_a_clone_s_recv_stop() {
    let lp = Loop::new().unwrap();
    for flags in [uv::UdpFlags::empty(), uv::UdpFlags::RECVMMSG] {
        let u = uv::Udp::with_flags(&lp, uv::AddressFamily::Inet, flags).unwrap();
        u.bind("127.0.0.1:0".parse().unwrap(), uv::UdpFlags::empty())
            .unwrap();
        let to = u.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (c, w) = counting();
        let mut rx = uvf::recv_from(&u);
        let cx = &mut Context::from_waker(&w);
        assert!(Pin::new(&mut rx).poll_next(cx).is_pending());
        let wakes = c.wakes();
        u.clone().recv_stop().unwrap();
        assert!(c.wakes() > wakes, "{flags:?}: the stop woke the task");
        for i in 0..3u8 {
            sender.send_to(&[i], to).unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..100 {
            match Pin::new(&mut rx).poll_next(cx) {
                Poll::Ready(Some(Ok((d, _)))) => got.extend(d),
                Poll::Ready(other) => panic!("{flags:?}: {other:?}"),
                Poll::Pending if got.len() == 3 => break,
                Poll::Pending => {
                    lp.run(RunMode::NoWait).unwrap();
                }
            }
        }
        assert_eq!(got, [0, 1, 2], "{flags:?}");
        // Another callback started through a clone: the stream's poll says so.
        u.recv_stop().unwrap();
        u.recv_start(|_, _| {}).unwrap();
        match Pin::new(&mut rx).poll_next(cx) {
            Poll::Ready(Some(Err(e))) => assert_eq!(e.code(), StatusCode::EALREADY),
            other => panic!("{flags:?}: {other:?}"),
        }
        drop(rx);
        u.close();
        assert!(!lp.run(RunMode::Default).unwrap());
    }
    finish(&lp);
}

// ---- handle requests of a loop a forked child abandons ----

/// Set in a child started by [`in_child`]: the name of the scenario it runs.
const SCENARIO: &str = "UV_ATTACKS_FUTURES2_SCENARIO";

/// Runs `scenario` in a child (this binary, running only `scenario_child`, one
/// test thread, so that it may fork): its exit status and its standard error.
fn in_child(scenario: &str) -> (std::process::ExitStatus, String) {
    uv_tests::scenario_output(SCENARIO, scenario)
}

uv_tests::scenarios! {
    SCENARIO =>
    handle_requests_of_an_abandoned_loop,
    handle_callbacks_of_an_abandoned_loop,
}

/// What a future gave: its error code, or `None` for `Ok`; `Err(())` while it
/// is pending.
type Outcome = Result<Option<StatusCode>, ()>;

fn outcome<F: std::future::Future<Output = uv::Result<T>> + Unpin, T>(
    f: &mut F,
    w: &Waker,
) -> Outcome {
    match uv_tests::provoke::poll_once(f, w) {
        Poll::Ready(r) => Ok(r.err().map(|e| e.code())),
        Poll::Pending => Err(()),
    }
}

/// Scenario: a connect, a write libuv completed (its callback not run yet), a
/// write it could not finish, a shutdown behind it and a datagram sent, all
/// polled once; then a forked child drops the loop (which it did not re-create).
/// The child's teardown makes no libuv call and leaked the requests with their
/// callbacks, unrun and never dropped: every future stayed pending for good, its
/// task never woken. Now the teardown completes them as libuv's close would:
/// the completed write and the datagram `Ok`, the others `ECANCELED`, each task
/// woken. The parent's requests are its own: they complete there as usual.
#[allow(unsafe_code)]
fn handle_requests_of_an_abandoned_loop() {
    let lp = Loop::new().unwrap();
    let (listener, addr) = uv_tests::net::tcp_listener();
    let tcp = uv::Tcp::new(&lp).unwrap();
    let mut connect = uvf::connect(&tcp, addr);
    let (a, peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let pipe = uv::Pipe::new(&lp, false).unwrap();
    pipe.open(a).unwrap();
    let mut small = uvf::write(&pipe, b"x".to_vec());
    let mut large = uvf::write(&pipe, uv_tests::net::pattern(4 << 20));
    let mut shut = uvf::shutdown(&pipe);
    let (udp, to) = uv_tests::net::bound_udp(&lp);
    let mut send = uvf::send_to(&udp, b"d".to_vec(), Some(to));
    let (c, w) = counting();
    // Polls the futures still pending.
    let mut got: [Outcome; 5] = [Err(()); 5];
    let mut poll_pending = |got: &mut [Outcome; 5], w: &Waker| {
        let polls: [&mut dyn FnMut(&Waker) -> Outcome; 5] = [
            &mut |w| outcome(&mut connect, w),
            &mut |w| outcome(&mut small, w),
            &mut |w| outcome(&mut large, w),
            &mut |w| outcome(&mut shut, w),
            &mut |w| outcome(&mut send, w),
        ];
        for (g, poll) in got.iter_mut().zip(polls) {
            if g.is_err() {
                *g = poll(w);
            }
        }
    };
    poll_pending(&mut got, &w);
    assert_eq!(got, [Err(()); 5]);
    let mut lp = Some(lp);
    // SAFETY: the scenario runs alone in its process (`--test-threads=1`); the
    // child only drops the loop and polls, and leaves without printing.
    let status = unsafe {
        uv_tests::in_fork(|| {
            drop(lp.take());
            let mut got = got;
            poll_pending(&mut got, &w);
            c.wakes() >= 5
                && got
                    == [
                        Ok(Some(StatusCode::ECANCELED)),
                        Ok(None),
                        Ok(Some(StatusCode::ECANCELED)),
                        Ok(Some(StatusCode::ECANCELED)),
                        Ok(None),
                    ]
        })
    };
    assert_eq!(status, 0, "the child's futures");
    // The parent's requests are its own: they complete there as usual (the
    // large write and the shutdown fail once the peer is gone).
    let lp = lp.take().unwrap();
    drop(peer);
    for _ in 0..100 {
        poll_pending(&mut got, &w);
        if got.iter().all(Result::is_ok) {
            break;
        }
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(got[..2], [Ok(None), Ok(None)], "{got:?}");
    assert!(got[2].is_ok_and(|e| e.is_some()), "{got:?}");
    assert!(got[3].is_ok(), "{got:?}");
    assert_eq!(got[4], Ok(None), "{got:?}");
    drop(listener);
    finish(&lp);
}

#[test]
fn handle_futures_of_a_loop_a_forked_child_abandons_resolve() {
    let (status, stderr) = in_child("handle_requests_of_an_abandoned_loop");
    assert!(status.success(), "{status}: {stderr}");
}

/// Scenario: a `sleep`, a `read_chunks` stream, a `recv_from` stream and an
/// `interval`, each waiting on its handle's callback, polled by the user's
/// executor; then a forked child drops the loop (which it did not re-create).
/// The abandoned handles kept their callbacks (dropped only with the handle's
/// last reference, which each future holds): nothing told the futures that the
/// callbacks could no longer come, and every one stayed pending for good, its task
/// never woken. Now the teardown drops the abandoned handles' callbacks, as a
/// close does: each task is woken, and the next poll ends each as it ends when
/// its handle closes: `ClosedLoop` for the sleep, `ClosedHandle` for the reads,
/// the end for the datagrams and the ticks.
#[allow(unsafe_code)]
fn handle_callbacks_of_an_abandoned_loop() {
    let lp = Loop::new().unwrap();
    let mut sleep = uvf::sleep(&lp, std::time::Duration::from_secs(100));
    let (a, _peer) = uv::Pipe::pair(&lp).unwrap();
    let mut chunks = uvf::read_chunks(a);
    let (udp, _) = uv_tests::net::bound_udp(&lp);
    let mut datagrams = uvf::recv_from(&udp);
    let mut ticks = uvf::interval(&lp, std::time::Duration::from_secs(100)).unwrap();
    let (c, w) = counting();
    let cx = &mut Context::from_waker(&w);
    assert!(Pin::new(&mut sleep).poll(cx).is_pending());
    assert!(Pin::new(&mut chunks).poll_next(cx).is_pending());
    assert!(Pin::new(&mut datagrams).poll_next(cx).is_pending());
    assert!(Pin::new(&mut ticks).poll_next(cx).is_pending());
    lp.run(RunMode::NoWait).unwrap();
    let mut lp = Some(lp);
    // SAFETY: the scenario runs alone in its process (`--test-threads=1`); the
    // child only drops the loop and polls, and leaves without printing.
    let status = unsafe {
        uv_tests::in_fork(|| {
            drop(lp.take());
            let cx = &mut Context::from_waker(&w);
            let slept = matches!(
                Pin::new(&mut sleep).poll(cx),
                Poll::Ready(Err(e)) if e.kind() == uv::Category::ClosedLoop
            );
            let read = matches!(
                Pin::new(&mut chunks).poll_next(cx),
                Poll::Ready(Some(Err(e))) if e.kind() == uv::Category::ClosedHandle
            );
            let received = matches!(Pin::new(&mut datagrams).poll_next(cx), Poll::Ready(None));
            let ticked = matches!(Pin::new(&mut ticks).poll_next(cx), Poll::Ready(None));
            c.wakes() >= 4 && slept && read && received && ticked
        })
    };
    assert_eq!(status, 0, "the child's futures");
    drop((sleep, chunks, datagrams, ticks));
    finish(&lp.take().unwrap());
}

#[test]
fn handle_streams_and_timers_of_a_loop_a_forked_child_abandons_end() {
    let (status, stderr) = in_child("handle_callbacks_of_an_abandoned_loop");
    assert!(status.success(), "{status}: {stderr}");
}
