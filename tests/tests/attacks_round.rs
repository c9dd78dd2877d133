//! Attacks from safe code on the panicking-wake guard of the async layer
//! (`uv::future`), on the reader a UDP socket keeps for the errors of queued
//! sends, and on `listen`'s refusal of a reading stream. Each test says what used
//! to happen, or which guarantee it pins; values, counts, orders and error codes
//! only. `bash tests/valgrind.sh attacks_round` checks the memory side.
//!
//! The panics these tests provoke carry a `Provoked` payload, which the panic hook
//! installed here does not print.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use uv::future as uvf;
use uv::{Loop, Pipe, RunMode, Stream};
use uv_tests::finish;
use uv_tests::provoke::{
    poll_once, provoke, provoked, quiet_provoked_panics, run_catching, run_nowait_catching,
    FlakyWake, WakeAndDropPanic,
};

// ---- listen ----

/// A Unix socket bound and not connected, opened as a pipe, that was read: its
/// read ends with an error at once (a socket with no peer), which stops libuv's
/// reading without a `read_stop`. Pins: `listen`'s refusal of reading streams
/// does not take that socket as reading (it listened before that refusal): it
/// listens and a connection comes.
#[test]
fn a_stream_whose_read_ended_listens() {
    let lp = Loop::new().unwrap();
    let dir = uv_tests::net::TempDir::new("round-listen");
    let path = dir.join("s");
    let fd = uv_tests::net::unix_socket_bound_raw(path.as_os_str().as_encoded_bytes());
    let p = Pipe::new(&lp, false).unwrap();
    p.open(fd).unwrap();
    let ended = Rc::new(RefCell::new(Vec::new()));
    let e = ended.clone();
    p.read_start(move |_, r| {
        e.borrow_mut()
            .push(r.map(|d| d.len()).map_err(|e| e.code()))
    })
    .unwrap();
    for _ in 0..4 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(ended.borrow().len(), 1, "{:?}", ended.borrow());
    assert!(ended.borrow()[0].is_err());
    let connections = Rc::new(Cell::new(0));
    let c = connections.clone();
    p.listen(4, move |s, r| {
        r.unwrap();
        let client = s.accept().unwrap();
        c.set(c.get() + 1);
        client.close();
    })
    .unwrap();
    let _peer = std::os::unix::net::UnixStream::connect(&path).unwrap();
    uv_tests::net::run_until(&lp, || connections.get() == 1);
    assert_eq!(connections.get(), 1);
    finish(&lp);
}

// ---- panicking wakes ----

/// The `Exit` future of `future::spawn`, polled by the user's executor with a
/// waker whose first wake panics. The exit callback's wake panicked (`run`
/// resumes it) and the waker stayed for the next event; the next and last one is
/// the process handle's close, which drops the exit callback: that close skipped
/// the wake because the exit status was already waiting, so the task, never told,
/// waited for good. Now the close wakes the waker a panicking wake left: the task
/// is told once, and its poll gives the exit status.
#[test]
fn an_exit_whose_wake_panicked_is_woken_by_its_handle_close() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let opts = uv::ProcessOptions::new("/bin/sh").args(["-c", "exit 5"]);
    let (p, mut exit) = uvf::spawn(&lp.handle(), &opts).unwrap();
    let (c, w) = FlakyWake::with_waker(1);
    assert!(poll_once(&mut exit, &w).is_pending());
    assert_eq!(run_catching(&lp), Some("wake"));
    assert_eq!(c.wakes(), 1);
    p.close();
    assert_eq!(run_catching(&lp), None);
    assert_eq!(c.wakes(), 2);
    match poll_once(&mut exit, Waker::noop()) {
        Poll::Ready(Ok((status, None))) => assert_eq!(status, 5),
        other => panic!("{other:?}"),
    }
    drop(exit);
    finish(&lp);
}

/// A `future::request` polled with a [`WakeAndDropPanic`] waker (its owner's
/// reference dropped: the future's slot holds the last one), over a timer that
/// completes it. The completion's wake panicked (`run` resumes it) and the waker
/// stayed in the slot; the future, polled again with another waker, gave its
/// value, and kept that waker until it was dropped. Dropped by a task that
/// panics, the waker's drop panicked inside the unwinding ("panic in a
/// destructor during cleanup") and the process aborted. Now the future lets the
/// waker go at its drop with the drop's panic caught: the task's panic is the one
/// that comes out. (In a child process, so that an abort shows as its exit
/// status.)
#[test]
fn a_resolved_request_dropped_while_unwinding_does_not_abort() {
    uv_tests::assert_scenario_done(SCENARIO, "resolved_request_unwinding");
}

fn resolved_request_unwinding() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let timer = uv::Timer::new(&lp).unwrap();
    let t = timer.clone();
    let mut f = uvf::request(move |done: uvf::Done<u32>| {
        let mut done = Some(done);
        t.start(Duration::ZERO, Duration::ZERO, move |_| {
            if let Some(d) = done.take() {
                d(Ok(9));
            }
        })
    });
    {
        let waker = Waker::from(Arc::new(WakeAndDropPanic));
        assert!(poll_once(&mut f, &waker).is_pending());
    }
    assert_eq!(run_catching(&lp), Some("wake"));
    assert!(matches!(
        poll_once(&mut f, Waker::noop()),
        Poll::Ready(Ok(9))
    ));
    let unwound = catch_unwind(AssertUnwindSafe(move || {
        let _f = f;
        provoke("task");
    }));
    assert_eq!(provoked(&*unwound.unwrap_err()), Some("task"));
    timer.close();
    finish(&lp);
    eprintln!("scenario done");
}

/// A `future::write` polled with a [`WakeAndDropPanic`] waker (its owner's
/// reference dropped: the stream's write tracker holds the last one). The write's
/// completion woke it by value, which drops the waker inside the wake: the wake
/// panicked and the waker's drop panicked inside that unwinding ("panic in a
/// destructor during cleanup"): the process aborted. Now the completion wakes by
/// reference and drops the waker after, its panic caught: `run` resumes the
/// wake's panic, the write is done and its bytes reach the peer. (In a child
/// process, so that an abort shows as its exit status.)
#[test]
fn a_write_whose_waker_panics_in_wake_and_drop_does_not_abort() {
    uv_tests::assert_scenario_done(SCENARIO, "write_wake_and_drop");
}

fn write_wake_and_drop() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let got = uv_tests::read_to_end(&b);
    let mut f = uvf::write(&a, b"x".to_vec());
    {
        let waker = Waker::from(Arc::new(WakeAndDropPanic));
        assert!(poll_once(&mut f, &waker).is_pending());
    }
    assert_eq!(run_nowait_catching(&lp), Some("wake"));
    assert!(matches!(
        poll_once(&mut f, Waker::noop()),
        Poll::Ready(Ok(()))
    ));
    drop(f);
    a.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*got.borrow(), b"x");
    finish(&lp);
    eprintln!("scenario done");
}

/// Three `future::write`s of one stream, each polled with a [`WakeAndDropPanic`]
/// waker of its own, completed by one loop iteration. Each write's completion
/// kept its wake's panic for the write callback's guard and dropped the panic of
/// the waker's drop after it without a word, even with a panic hook set (the
/// hook saw three wakes). Now each panic goes to the loop's panic rule, in order:
/// the hook sees all six, and every write is done.
#[test]
fn every_panic_of_the_wakers_of_completed_writes_reaches_the_hook() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_panic_hook(move |p| s.borrow_mut().push(provoked(&*p).expect("provoked")));
    let (a, b) = Pipe::pair(&lp).unwrap();
    let got = uv_tests::read_to_end(&b);
    let mut writes: Vec<_> = (0..3u8).map(|i| uvf::write(&a, vec![b'a' + i])).collect();
    for f in &mut writes {
        let waker = Waker::from(Arc::new(WakeAndDropPanic));
        assert!(poll_once(f, &waker).is_pending());
    }
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(
        *seen.borrow(),
        [
            "wake",
            "waker drop",
            "wake",
            "waker drop",
            "wake",
            "waker drop"
        ]
    );
    for mut f in writes {
        assert!(matches!(
            poll_once(&mut f, Waker::noop()),
            Poll::Ready(Ok(()))
        ));
    }
    a.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*got.borrow(), b"abc");
    finish(&lp);
}

/// The same for the `JoinHandle` of a task of the loop: the task's end woke the
/// handle's waker by value, and the process aborted. Now the wake is by
/// reference; the waker, whose wake panicked, stays (for no later event: the
/// task is over) until the handle goes, which lets it go: its drop's panic comes
/// out of that drop. `run` resumes the wake's panic and the handle gives the
/// task's value.
#[test]
fn a_join_handle_whose_waker_panics_in_wake_and_drop_does_not_abort() {
    uv_tests::assert_scenario_done(SCENARIO, "join_wake_and_drop");
}

fn join_wake_and_drop() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let mut join = lp.spawn_local(async { 5u32 }).unwrap();
    {
        let waker = Waker::from(Arc::new(WakeAndDropPanic));
        assert!(poll_once(&mut join, &waker).is_pending());
    }
    assert_eq!(run_nowait_catching(&lp), Some("wake"));
    assert!(matches!(
        poll_once(&mut join, Waker::noop()),
        Poll::Ready(Ok(5))
    ));
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(join)));
    assert_eq!(provoked(&*dropped.unwrap_err()), Some("waker drop"));
    finish(&lp);
    eprintln!("scenario done");
}

const SCENARIO: &str = "UV_ATTACKS_ROUND_SCENARIO";

uv_tests::scenarios! {
    SCENARIO =>
    resolved_request_unwinding,
    write_wake_and_drop,
    join_wake_and_drop,
}

// ---- recv_from on a socket that reads batches ----

/// A `recv_from` stream on a `RECVMMSG` socket, sent 1,100 datagrams, polled
/// after they came. Its receive callback paused at its 1,024th queued datagram
/// with a `recv_stop`, which in the middle of a batch drops the batch's other
/// datagrams (already read from the socket, at most 19): 16 were lost here, and
/// the stream went on with the ones after them. Now the handle keeps the batch's
/// rest at that `recv_stop`, and the restart gives it first: every datagram
/// comes, in order.
#[test]
fn a_datagram_stream_on_a_batch_socket_pauses_without_losing_the_batch() {
    use futures::Stream as _;
    let lp = Loop::new().unwrap();
    let u = uv::Udp::with_flags(
        &lp.handle(),
        uv::AddressFamily::Inet,
        uv::UdpFlags::RECVMMSG,
    )
    .unwrap();
    u.bind("127.0.0.1:0".parse().unwrap(), uv::UdpFlags::empty())
        .unwrap();
    let addr = u.local_addr().unwrap();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut s = uvf::recv_from(&u);
    let w = Waker::noop();
    assert!(Pin::new(&mut s)
        .poll_next(&mut Context::from_waker(w))
        .is_pending());
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
        while let Poll::Ready(item) = Pin::new(&mut s).poll_next(&mut Context::from_waker(w)) {
            let (d, _) = item.unwrap().unwrap();
            got.push(u32::from_le_bytes(d.try_into().unwrap()));
        }
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(got, (0..total).collect::<Vec<u32>>());
    drop(s);
    finish(&lp);
}

// ---- the reader a UDP socket keeps for queued sends ----

/// Receives 40 one-byte datagrams (their numbers) on a socket whose callback, at
/// the datagram numbered `at`, answers with a send and stops receiving, then
/// starts again at once when `restart`; later receives again (when stopped).
/// The numbers received, in order.
fn stop_at(flags: uv::UdpFlags, at: u8, restart: bool) -> Vec<u8> {
    let lp = Loop::new().unwrap();
    let rx = uv::Udp::with_flags(&lp, uv::AddressFamily::Inet, flags).unwrap();
    rx.bind("127.0.0.1:0".parse().unwrap(), uv::UdpFlags::empty())
        .unwrap();
    let rx_addr = rx.local_addr().unwrap();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx_addr = tx.local_addr().unwrap();
    for i in 0..40u8 {
        tx.send_to(&[i], rx_addr).unwrap();
    }
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    fn record(g: &Rc<RefCell<Vec<u8>>>) -> impl FnMut(&uv::Udp, uv::Result<uv::Datagram<'_>>) {
        let g = g.clone();
        move |_, d| {
            let d = d.unwrap();
            if !d.is_drained() {
                g.borrow_mut().push(d.data[0]);
            }
        }
    }
    let g = got.clone();
    let again = record(&got);
    let mut again = Some(again);
    rx.recv_start(move |u, d| {
        let d = d.unwrap();
        if d.is_drained() {
            return;
        }
        g.borrow_mut().push(d.data[0]);
        if d.data[0] == at {
            u.send(b"ack".to_vec(), Some(tx_addr), |_, r| r.unwrap())
                .unwrap();
            u.recv_stop().unwrap();
            if restart {
                u.recv_start(again.take().unwrap()).unwrap();
            }
        }
    })
    .unwrap();
    for _ in 0..4 {
        lp.run(RunMode::NoWait).unwrap();
    }
    if !restart {
        assert_eq!(rx.send_queue_count().unwrap(), 0);
        rx.recv_start(record(&got)).unwrap();
        for _ in 0..3 {
            lp.run(RunMode::NoWait).unwrap();
        }
    }
    rx.close();
    finish(&lp);
    got.take()
}

/// `recv_stop` with a send queued from the callback of the 32nd read, the last of
/// libuv's read loop for that event: the loop ends by its count, before the read
/// that would have found no buffer, so the runtime's no-buffer allocation stays
/// installed on a socket nobody receives from. Pins: the next `recv_start` puts
/// its own back and gets the eight datagrams left, in order; the same for a
/// socket that reads batches; and a restart from the
/// same callback (the no-buffer allocation is not installed on a socket that
/// receives) misses nothing.
#[test]
fn a_udp_pause_on_the_last_read_of_a_burst_keeps_the_rest() {
    let all: Vec<u8> = (0..40).collect();
    for (flags, at) in [(uv::UdpFlags::empty(), 31), (uv::UdpFlags::empty(), 5)] {
        assert_eq!(stop_at(flags, at, false), all, "stopped at {at}");
        assert_eq!(stop_at(flags, at, true), all, "restarted at {at}");
    }
    // A batch socket keeps what follows the batch, and the batch's own rest.
    assert_eq!(stop_at(uv::UdpFlags::RECVMMSG, 19, false), all);
    assert_eq!(stop_at(uv::UdpFlags::RECVMMSG, 5, true), all);
}

// ---- bytes read ahead, handed on ----

/// An `AsyncStream` polled once (reading starts), then sent a small message and a
/// large one while nobody polls: the small one is copied into the wrapper's
/// buffer, and the large read that follows lands in a buffer of its own behind
/// it, with reading stopped. Pins: `into_parts` gives both, in order, and the
/// handle's next reader gets every byte after them: the whole of what was sent,
/// once. The same with a `read_chunks` stream (which copies every read).
#[test]
fn into_parts_gives_a_read_parked_behind_the_buffer() {
    use futures::{AsyncRead as _, Stream as _};
    use std::io::Write as _;
    let lp = Loop::new().unwrap();
    let small = uv_tests::net::pattern(100);
    let large = uv_tests::net::pattern(200_000);
    for chunks in [false, true] {
        let (mine, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let p = Pipe::new(&lp, false).unwrap();
        p.open(mine).unwrap();
        let cx = &mut Context::from_waker(Waker::noop());
        let mut s = uvf::AsyncStream::new(p.clone());
        let mut r = uvf::read_chunks(p.clone());
        if chunks {
            assert!(Pin::new(&mut r).poll_next(cx).is_pending());
        } else {
            assert!(Pin::new(&mut s).poll_read(cx, &mut [0u8; 1]).is_pending());
        }
        peer.write_all(&small).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        peer.set_nonblocking(true).unwrap();
        let mut sent = small.len();
        while sent < small.len() + large.len() {
            match peer.write(&large[sent - small.len()..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        lp.run(RunMode::NoWait).unwrap();
        let uvf::ReadParts {
            stream: p,
            bytes: mut got,
            end,
        } = if chunks {
            drop(s);
            r.into_parts()
        } else {
            drop(r);
            s.into_parts()
        };
        assert!(end.is_none(), "read_chunks: {chunks}");
        assert!(got.len() > small.len(), "read_chunks: {chunks}");
        let tail = uv_tests::read_to_end(&p);
        // The rest from a thread (the socket's buffer is full until the loop
        // reads), then the end.
        peer.set_nonblocking(false).unwrap();
        let rest = large[sent - small.len()..].to_vec();
        let writer = std::thread::spawn(move || peer.write_all(&rest).unwrap());
        lp.run(RunMode::Default).unwrap();
        writer.join().unwrap();
        got.extend_from_slice(&tail.borrow());
        assert_eq!(
            got.len(),
            small.len() + large.len(),
            "read_chunks: {chunks}"
        );
        assert!(
            got == [&small[..], &large[..]].concat(),
            "read_chunks: {chunks}"
        );
        p.close();
    }
    finish(&lp);
}
