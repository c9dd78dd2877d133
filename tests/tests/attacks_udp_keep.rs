//! Attacks on what a `RECVMMSG` socket keeps of a batch a `recv_stop` cut short
//! (`Udp::recv_stop` in the callback of one of the batch's datagrams): the copies
//! the runtime keeps, the internal idle handle that gives them to the next
//! receiver, and the callbacks the stop leaves for the batch's rest. Each test
//! drives one odd order of events (the loop dropped or closed with a socket due,
//! two sockets due, a restart of one socket from another's delivery, a stop and a
//! restart in every kept delivery, a second restart, a connect in between, a panic
//! after the stop, a stop in an error of the error queue, a datagram stream
//! dropped by its waker mid-batch, kept datagrams empty and of the largest size)
//! and checks what comes: every datagram once, in order, whole, to the callback
//! receiving then, and a loop that ends. `bash tests/valgrind.sh
//! attacks_udp_keep` checks that nothing kept leaks.
//!
//! The datagrams are one byte each, their number, all sent before the loop runs:
//! 20 per `recvmmsg` (the loop lends room for 20), in the order sent.

#![cfg(target_os = "linux")]

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use uv::{Check, Datagram, Loop, RunMode, StatusCode, Udp, UdpFlags};
use uv_tests::finish;
use uv_tests::net::{
    batch_udp, numbered_batch, receive_until, send_numbered, udp_sender as sender,
};

/// The numbers of the datagrams a callback got, in order.
type Log = Rc<RefCell<Vec<u8>>>;

/// The datagrams a callback got, whole: bytes, sender, and whether it was the
/// drained event.
type Whole = Rc<RefCell<Vec<(Vec<u8>, Option<SocketAddr>, bool)>>>;

/// The numbers of the datagrams a callback got, with their senders.
type Senders = Rc<RefCell<Vec<(u8, Option<SocketAddr>)>>>;

/// Records a datagram's number (not the drained event); `None` for the drained
/// event.
fn record(log: &Log, d: &Datagram<'_>) -> Option<u8> {
    if d.is_drained() {
        return None;
    }
    assert_eq!(d.data.len(), 1, "{d:?}");
    log.borrow_mut().push(d.data[0]);
    Some(d.data[0])
}

/// A receive callback that records every datagram in `log` (an error fails the
/// test).
fn recorder(log: &Log) -> impl FnMut(&Udp, uv::Result<Datagram<'_>>) + 'static {
    let log = log.clone();
    move |_, d| {
        record(&log, &d.unwrap());
    }
}

/// Starts `rx` receiving into `log` until the datagram numbered `at`, where the
/// callback stops; runs the loop until that batch is in. The socket then keeps
/// the batch's rest.
fn cut_at(lp: &Loop, rx: &Udp, log: &Log, at: u8) {
    let l = log.clone();
    receive_until(lp, rx, at, move |d| {
        record(&l, d);
    });
    assert_eq!(log.borrow().last(), Some(&at));
}

/// The loop dropped, closed, or its handles closed, while a socket is due (its
/// receiving started again with datagrams kept, from a check callback: after the
/// iteration's idle phase, so the idle handle is left started): the teardown, or
/// the run after `close_all_handles`, lets the kept datagrams, the restarted
/// callback and the idle handle go, and delivers nothing. `Loop::close` is
/// refused while the socket is open and accepted once it is closed, though the
/// idle handle is still started (the socket closed in the same callback).
/// Pinned: found sound (valgrind: no leak, no invalid read; no hang).
#[test]
fn a_loop_dropped_or_closed_with_a_socket_due_lets_everything_go() {
    for mode in ["drop", "close", "close_all_handles"] {
        let lp = Loop::new().unwrap();
        let (rx, _, _tx, _) = numbered_batch(&lp, 10);
        let log: Log = Rc::default();
        cut_at(&lp, &rx, &log, 2);
        let token = Rc::new(());
        let t = token.clone();
        let l = log.clone();
        let again = Rc::new(Cell::new(0));
        let a = again.clone();
        let check = Check::new(&lp).unwrap();
        let r = rx.clone();
        let close = mode == "close";
        check
            .start(move |c| {
                let (t, l, a) = (t.clone(), l.clone(), a.clone());
                r.recv_start(move |_, d| {
                    let _ = &t;
                    record(&l, &d.unwrap());
                    a.set(a.get() + 1);
                })
                .unwrap();
                if close {
                    r.close();
                }
                c.close();
            })
            .unwrap();
        if close {
            assert_eq!(
                lp.close().unwrap_err().code(),
                StatusCode::EBUSY,
                "handles open"
            );
        }
        // The check's iteration: the restart, after the idle phase.
        assert!(lp.run(RunMode::NoWait).unwrap(), "{mode}: work left");
        // Restarted (the callback holds the token), unless closed at once.
        let held = if close { 1 } else { 2 };
        assert_eq!(Rc::strong_count(&token), held, "{mode}");
        match mode {
            "drop" => drop(lp),
            "close" => {
                assert!(rx.is_closed());
                // Only the idle handle is left: the loop closes.
                lp.close().unwrap();
            }
            _ => {
                lp.close_all_handles();
                assert!(!lp.run(RunMode::Default).unwrap(), "{mode}");
                assert!(rx.is_closed());
            }
        }
        assert_eq!(again.get(), 0, "{mode}");
        assert_eq!(*log.borrow(), [0, 1, 2], "{mode}");
        assert_eq!(Rc::strong_count(&token), 1, "{mode}");
        drop(rx);
    }
}

/// Two sockets due; the kept delivery of the first closes the second at its first
/// datagram. The first gets all its datagrams, the second none after its restart,
/// and the idle handle stops: the loop has nothing left.
/// Pinned: found sound.
#[test]
fn two_sockets_due_one_closed_in_the_others_kept_delivery() {
    let lp = Loop::new().unwrap();
    let (a, a_addr) = batch_udp(&lp);
    let (b, b_addr) = batch_udp(&lp);
    let (tx, _) = sender();
    send_numbered(&tx, a_addr, 0, 10);
    send_numbered(&tx, b_addr, 0, 10);
    let (la, lb): (Log, Log) = (Rc::default(), Rc::default());
    cut_at(&lp, &a, &la, 3);
    cut_at(&lp, &b, &lb, 5);
    let l = la.clone();
    let other = b.clone();
    a.recv_start(move |_, d| {
        if record(&l, &d.unwrap()) == Some(4) {
            other.close();
        }
    })
    .unwrap();
    b.recv_start(recorder(&lb)).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(*la.borrow(), (0..10).collect::<Vec<u8>>());
    assert_eq!(*lb.borrow(), [0, 1, 2, 3, 4, 5]);
    assert!(b.is_closed());
    a.close();
    assert!(!lp.run(RunMode::NoWait).unwrap());
    finish(&lp);
}

/// The second socket's receiving is started again from the first one's kept
/// delivery (inside the idle handle's callback, which then starts itself again),
/// while newer datagrams wait in the second socket: its kept ones come first, in
/// the next iteration, then the newer ones, every one once.
/// Pinned: found sound.
#[test]
fn a_restart_of_another_socket_from_a_kept_delivery_keeps_its_order() {
    let lp = Loop::new().unwrap();
    let (a, a_addr) = batch_udp(&lp);
    let (b, b_addr) = batch_udp(&lp);
    let (tx, _) = sender();
    send_numbered(&tx, a_addr, 0, 10);
    send_numbered(&tx, b_addr, 0, 10);
    let (la, lb): (Log, Log) = (Rc::default(), Rc::default());
    cut_at(&lp, &a, &la, 3);
    cut_at(&lp, &b, &lb, 5);
    send_numbered(&tx, b_addr, 10, 15);
    let l = la.clone();
    let other = b.clone();
    let mut start = Some(recorder(&lb));
    a.recv_start(move |_, d| {
        record(&l, &d.unwrap());
        if let Some(cb) = start.take() {
            other.recv_start(cb).unwrap();
        }
    })
    .unwrap();
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(*la.borrow(), (0..10).collect::<Vec<u8>>());
    assert_eq!(*lb.borrow(), (0..15).collect::<Vec<u8>>());
    a.close();
    b.close();
    assert!(!lp.run(RunMode::NoWait).unwrap());
    finish(&lp);
}

/// A callback that records in `log`, then stops and starts again with one like
/// itself (counted in `restarts`).
fn restarting(log: &Log, restarts: &Rc<Cell<u32>>) -> impl FnMut(&Udp, uv::Result<Datagram<'_>>) {
    let (l, r) = (log.clone(), restarts.clone());
    move |u, d| {
        if record(&l, &d.unwrap()).is_some() {
            u.recv_stop().unwrap();
            r.set(r.get() + 1);
            u.recv_start(restarting(&l, &r)).unwrap();
        }
    }
}

/// Every kept delivery stops and starts again with a new callback, and newer
/// datagrams wait in the socket: every datagram once, in order; the socket is
/// unreferenced, so once the kept ones are given the idle handle must have
/// stopped for a non-blocking run to report nothing left.
/// Pinned: found sound.
#[test]
fn a_stop_and_restart_in_every_kept_delivery() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr, tx, _) = numbered_batch(&lp, 20);
    let log: Log = Rc::default();
    cut_at(&lp, &rx, &log, 1);
    send_numbered(&tx, rx_addr, 20, 25);
    let restarts = Rc::new(Cell::new(0));
    rx.recv_start(restarting(&log, &restarts)).unwrap();
    rx.unref().unwrap();
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(*log.borrow(), (0..25).collect::<Vec<u8>>());
    assert_eq!(restarts.get(), 23);
    assert!(!lp.run(RunMode::NoWait).unwrap(), "the idle handle stopped");
    finish(&lp);
}

/// A second `recv_start` while the socket is due (receiving, its kept datagrams
/// not yet given) is `EALREADY` and changes nothing: the first callback gets the
/// kept datagrams, once each.
/// Pinned: found sound.
#[test]
fn a_second_restart_while_due_is_refused_and_delivers_once() {
    let lp = Loop::new().unwrap();
    let (rx, _, _tx, _) = numbered_batch(&lp, 10);
    let log: Log = Rc::default();
    cut_at(&lp, &rx, &log, 4);
    rx.recv_start(recorder(&log)).unwrap();
    let other: Log = Rc::default();
    let e = rx.recv_start(recorder(&other)).unwrap_err();
    assert_eq!(e.code(), StatusCode::EALREADY);
    for _ in 0..2 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(*log.borrow(), (0..10).collect::<Vec<u8>>());
    assert!(other.borrow().is_empty());
    finish(&lp);
}

/// A socket that keeps datagrams of one sender is connected to another sender
/// before its receiving starts again: the kept datagrams still come, with their
/// sender's address, as the kernel gives a newly connected socket the datagrams
/// it queued before the connect; what the first sender sends after the connect
/// is filtered by the kernel, what the peer sends comes after the kept ones.
/// Pinned: the kept datagrams were received before the connect, as those still
/// in the socket's queue were; the connect filters what arrives after it only.
#[test]
fn kept_datagrams_of_another_sender_come_after_a_connect() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr) = batch_udp(&lp);
    let (tx, tx_addr) = sender();
    let (peer, peer_addr) = sender();
    send_numbered(&tx, rx_addr, 0, 10);
    let log: Log = Rc::default();
    cut_at(&lp, &rx, &log, 2);
    rx.connect(peer_addr).unwrap();
    send_numbered(&tx, rx_addr, 10, 12);
    send_numbered(&peer, rx_addr, 100, 103);
    let from: Senders = Rc::default();
    let f = from.clone();
    rx.recv_start(move |_, d| {
        let d = d.unwrap();
        if !d.is_drained() {
            f.borrow_mut().push((d.data[0], d.addr));
        }
    })
    .unwrap();
    for _ in 0..2 {
        lp.run(RunMode::NoWait).unwrap();
    }
    let mut want: Vec<_> = (3..10).map(|n| (n, Some(tx_addr))).collect();
    want.extend((100..103).map(|n| (n, Some(peer_addr))));
    assert_eq!(*from.borrow(), want);
    finish(&lp);
}

/// The callback stops in a batch and then panics: the mark of the batch's
/// delivery is put back (the panic is caught inside it), the batch's rest is
/// kept all the same, and `run` gives the panic; the restart gets the rest.
/// Pinned: found sound.
#[test]
fn a_panic_after_the_stop_in_a_batch_keeps_the_rest() {
    uv_tests::provoke::quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (rx, _, _tx, _) = numbered_batch(&lp, 10);
    let log: Log = Rc::default();
    let l = log.clone();
    rx.recv_start(move |u, d| {
        if record(&l, &d.unwrap()) == Some(3) {
            u.recv_stop().unwrap();
            uv_tests::provoke::provoke("after the stop");
        }
    })
    .unwrap();
    assert_eq!(
        uv_tests::provoke::run_nowait_catching(&lp),
        Some("after the stop")
    );
    assert_eq!(*log.borrow(), [0, 1, 2, 3]);
    rx.recv_start(recorder(&log)).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(*log.borrow(), (0..10).collect::<Vec<u8>>());
    finish(&lp);
}

/// A receive callback that records datagrams in `log` and errors in `errors`,
/// and stops at an error.
fn stop_at_error(
    log: &Log,
    errors: &Rc<RefCell<Vec<StatusCode>>>,
) -> impl FnMut(&Udp, uv::Result<Datagram<'_>>) {
    let (l, e) = (log.clone(), errors.clone());
    move |u, d| match d {
        Ok(d) => {
            record(&l, &d);
        }
        Err(err) => {
            e.borrow_mut().push(err.code());
            u.recv_stop().unwrap();
        }
    }
}

/// A connected `LINUX_RECVERR` socket that keeps datagrams of a cut, whose send
/// is refused (its peer is gone) before it receives again: the restart gets the
/// kept datagrams, then the socket's error, where the callback stops; the next
/// restart gets the error queue's error, which libuv reads in a batch (a piece of
/// it, marked as the batch's delivery), where the callback stops again, cutting
/// that batch. No abort (libuv reads on after the stop while the callbacks it
/// leaves are set: both are), nothing lost or given twice.
/// Pinned: found sound.
#[test]
fn a_stop_in_an_error_queue_batch() {
    let lp = Loop::new().unwrap();
    let rx = Udp::with_flags(&lp, uv::AddressFamily::Inet, UdpFlags::RECVMMSG).unwrap();
    rx.bind("127.0.0.1:0".parse().unwrap(), UdpFlags::LINUX_RECVERR)
        .unwrap();
    let rx_addr = rx.local_addr().unwrap();
    let (tx, tx_addr) = sender();
    send_numbered(&tx, rx_addr, 0, 10);
    let log: Log = Rc::default();
    cut_at(&lp, &rx, &log, 2);
    drop(tx);
    rx.connect(tx_addr).unwrap();
    let sent = Rc::new(Cell::new(0));
    let s = sent.clone();
    rx.send(&b"anyone?"[..], None, move |_, r| {
        r.unwrap();
        s.set(s.get() + 1);
    })
    .unwrap();
    let errors: Rc<RefCell<Vec<StatusCode>>> = Rc::default();
    rx.recv_start(stop_at_error(&log, &errors)).unwrap();
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(sent.get(), 1);
    assert_eq!(*log.borrow(), (0..10).collect::<Vec<u8>>());
    assert_eq!(*errors.borrow(), [StatusCode::ECONNREFUSED]);
    rx.recv_start(stop_at_error(&log, &errors)).unwrap();
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(
        *errors.borrow(),
        [StatusCode::ECONNREFUSED, StatusCode::ECONNREFUSED]
    );
    assert_eq!(*log.borrow(), (0..10).collect::<Vec<u8>>());
    finish(&lp);
}

thread_local! {
    /// The stream [`a_datagram_stream_dropped_by_its_waker_mid_batch`] polls, which
    /// its waker drops.
    static STREAM: RefCell<Option<uv::future::RecvFrom>> = const { RefCell::new(None) };
}

/// A waker that drops [`STREAM`] when woken.
struct DropStream;

impl std::task::Wake for DropStream {
    fn wake(self: std::sync::Arc<Self>) {
        drop(STREAM.with(|s| s.borrow_mut().take()));
    }
}

/// A `recv_from` stream whose waker drops it at its first item, the first
/// datagram of a batch (its drop stops receiving there, inside the batch's
/// delivery); a callback receiver started afterwards gets the rest of that batch
/// (kept), then the next batch, in order. The one item the stream took goes with
/// it.
/// Pinned: found sound.
#[test]
fn a_datagram_stream_dropped_by_its_waker_mid_batch() {
    use futures::Stream as _;
    let lp = Loop::new().unwrap();
    let (rx, _, _tx, _) = numbered_batch(&lp, 25);
    STREAM.with(|s| *s.borrow_mut() = Some(uv::future::recv_from(&rx)));
    let waker = std::task::Waker::from(std::sync::Arc::new(DropStream));
    let mut cx = std::task::Context::from_waker(&waker);
    let first = STREAM.with(|s| {
        let mut s = s.borrow_mut();
        std::pin::Pin::new(s.as_mut().unwrap()).poll_next(&mut cx)
    });
    assert!(first.is_pending());
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert!(
        STREAM.with(|s| s.borrow().is_none()),
        "dropped by its waker"
    );
    let log: Log = Rc::default();
    rx.recv_start(recorder(&log)).unwrap();
    for _ in 0..2 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(*log.borrow(), (1..25).collect::<Vec<u8>>());
    finish(&lp);
}

/// Kept datagrams of every size: an empty one (its copy is no bytes with a
/// sender, not the drained event), the largest IPv4 datagram (65,507 bytes, the
/// whole of its part of the batch buffer) and small ones between: the restart gets
/// each with its bytes, its length and its sender.
/// Pinned: found sound.
#[test]
fn kept_datagrams_keep_their_bytes_empty_and_largest() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr) = batch_udp(&lp);
    let (tx, tx_addr) = sender();
    let sizes = [1usize, 0, 65_507, 7, 0, 65_507, 3];
    let payload =
        |i: usize, len: usize| -> Vec<u8> { (0..len).map(|k| (k * 31 + i * 7) as u8).collect() };
    for (i, &len) in sizes.iter().enumerate() {
        tx.send_to(&payload(i, len), rx_addr).unwrap();
    }
    let got: Whole = Rc::default();
    let g = got.clone();
    rx.recv_start(move |u, d| {
        let d = d.unwrap();
        if d.addr.is_none() {
            return;
        }
        g.borrow_mut()
            .push((d.data.to_vec(), d.addr, d.is_drained()));
        if g.borrow().len() == 1 {
            u.recv_stop().unwrap();
        }
    })
    .unwrap();
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(got.borrow().len(), 1);
    let g = got.clone();
    rx.recv_start(move |_, d| {
        let d = d.unwrap();
        if !d.is_drained() {
            g.borrow_mut()
                .push((d.data.to_vec(), d.addr, d.is_drained()));
        }
    })
    .unwrap();
    lp.run(RunMode::NoWait).unwrap();
    let got = got.borrow();
    assert_eq!(got.len(), sizes.len());
    for (i, (data, addr, drained)) in got.iter().enumerate() {
        assert_eq!(data.len(), sizes[i], "{i}");
        assert!(*data == payload(i, sizes[i]), "the bytes of {i}");
        assert_eq!((*addr, *drained), (Some(tx_addr), false), "{i}");
    }
    drop(got);
    finish(&lp);
}
