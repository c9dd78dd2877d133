//! An attacker's pass over UDP and TCP: sends queued when a socket disconnects or
//! closes, oversized datagrams, options on sockets in odd states, batch receives
//! cut short, resets and connects at odd times, and streams that read and listen.
//! Regression tests say what used to happen and what happens now; the others pin
//! the behaviour found sound (every accepted send or write reports, errors are
//! codes, not aborts). Counts, values and error codes only, never durations.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use uv::Stream as _;
use uv::{AddressFamily, Loop, RunMode, StatusCode, Tcp, TcpFlags, Udp, UdpFlags};
use uv_tests::net::udp_bound_to as bound;

type Events = Rc<RefCell<Vec<String>>>;

/// A result as the events record it: `Ok(())` or the error's code.
fn outcome(r: uv::Result<()>) -> String {
    format!("{:?}", r.map_err(|e| e.code()))
}

/// Queues `n` one-byte sends (the first goes out at once, the others wait behind
/// its completion), each recording `label N outcome`.
fn queue_sends(u: &Udp, n: u8, to: Option<SocketAddr>, ev: &Events) {
    for i in 0..n {
        let e = ev.clone();
        u.send(vec![i], to, move |_, r| {
            e.borrow_mut().push(format!("send{i} {}", outcome(r)))
        })
        .unwrap();
    }
}

/// A socket that reads and then listens: `read_start` on a socket opened on a
/// listening one was taken, and so was the `listen` after it, which made the read
/// watch libuv's server watch. A `read_stop` then stopped the listening with it:
/// the connection waiting for the server was never accepted, and `run` returned
/// with it pending (nothing kept the loop alive). Now `listen` is `EINVAL` while
/// the stream reads; after `read_stop` it listens and the connection is accepted.
#[test]
fn listen_is_refused_while_reading() {
    let lp = Loop::new().unwrap();
    let (listener, addr) = uv_tests::net::tcp_listener();
    let server = Tcp::new(&lp).unwrap();
    server.open(listener).unwrap();
    server
        .read_start(|_, _| panic!("a listening socket reads nothing"))
        .unwrap();
    let accepted = Rc::new(Cell::new(0));
    let a = accepted.clone();
    let on_connection = move |s: &Tcp, r: uv::Result<()>| {
        r.unwrap();
        s.accept().unwrap().close();
        a.set(a.get() + 1);
        s.close();
    };
    let err = server.listen(8, on_connection.clone()).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL, "{err:?}");
    server.read_stop().unwrap();
    server.listen(8, on_connection).unwrap();
    let _client = std::net::TcpStream::connect(addr).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(accepted.get(), 1);
    assert!(server.is_closed());
}

/// Receives 30 datagrams (one byte each: their number) on a socket whose callback
/// answers the first with a send and stops receiving; then receives again. The
/// numbers received, in order.
fn pause_with_a_send(flags: UdpFlags, answer: bool) -> Vec<u8> {
    let lp = Loop::new().unwrap();
    let rx = Udp::with_flags(&lp, AddressFamily::Inet, flags).unwrap();
    rx.bind("127.0.0.1:0".parse().unwrap(), UdpFlags::empty())
        .unwrap();
    let rx_addr = rx.local_addr().unwrap();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx_addr = tx.local_addr().unwrap();
    for i in 0..30u8 {
        tx.send_to(&[i], rx_addr).unwrap();
    }
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let acks = Rc::new(Cell::new(0));
    let (g, k) = (got.clone(), acks.clone());
    rx.recv_start(move |u, d| {
        let d = d.unwrap();
        if d.is_drained() {
            return;
        }
        g.borrow_mut().push(d.data[0]);
        if answer {
            let k = k.clone();
            u.send(b"ack".to_vec(), Some(tx_addr), move |_, r| {
                r.unwrap();
                k.set(k.get() + 1);
            })
            .unwrap();
            assert_eq!(u.send_queue_count().unwrap(), 1);
        }
        u.recv_stop().unwrap();
    })
    .unwrap();
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    assert_eq!(*got.borrow(), [0]);
    let g = got.clone();
    rx.recv_start(move |_, d| {
        let d = d.unwrap();
        if !d.is_drained() {
            g.borrow_mut().push(d.data[0]);
        }
    })
    .unwrap();
    // What the socket still holds is read in the first of these runs (a lost
    // datagram would leave `run(Default)` waiting for one).
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
    rx.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(acks.get(), u8::from(answer));
    let got = got.borrow().clone();
    got
}

/// `recv_stop` from the receive callback with a send queued (an answer sent from
/// the callback, which completes on the next iteration): the runtime keeps a
/// reader for the error such a send may bring, and libuv's read loop went on with
/// it, up to 32 reads (or the next batch of a `RECVMMSG` socket). The datagrams it
/// read were dropped, as nobody received: 29 of 30 lost to the next `recv_start`.
/// Now the loop's next read gets no buffer, which ends it: the datagrams wait in
/// the socket, as they do when no send is queued. A `RECVMMSG` socket then still
/// dropped the rest of the batch it had read at once (19 of the 30: the next
/// `recv_start` got 0 and 20 to 29); now the runtime keeps them for that start,
/// which gets all 30, in order.
#[test]
fn recv_stop_with_a_send_queued_keeps_the_datagrams_for_later() {
    let all: Vec<u8> = (0..30).collect();
    assert_eq!(pause_with_a_send(UdpFlags::empty(), true), all);
    assert_eq!(pause_with_a_send(UdpFlags::empty(), false), all);
    assert_eq!(pause_with_a_send(UdpFlags::RECVMMSG, true), all);
    assert_eq!(pause_with_a_send(UdpFlags::RECVMMSG, false), all);
}

/// Sends queued behind one in flight, then the handle closed: every callback runs,
/// the one sent with success, the queued ones with `ECANCELED`.
#[test]
fn every_queued_send_reports_when_the_handle_closes() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr) = bound(&lp, "127.0.0.1:0");
    let (tx, _) = bound(&lp, "127.0.0.1:0");
    let ev: Events = Rc::default();
    queue_sends(&tx, 3, Some(rx_addr), &ev);
    assert_eq!(tx.send_queue_count().unwrap(), 3);
    tx.close();
    rx.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        *ev.borrow(),
        [
            "send0 Ok(())",
            "send1 Err(ECANCELED)",
            "send2 Err(ECANCELED)"
        ]
    );
}

/// Sends to the peer queued on a connected socket, then `disconnect`: the queued
/// ones report `EDESTADDRREQ` (no peer any more), none is lost. Sends without an
/// address are then refused at once, and after a new `connect` sends with one
/// (`EISCONN`).
#[test]
fn sends_queued_to_the_peer_report_after_disconnect() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr) = bound(&lp, "127.0.0.1:0");
    let (tx, _) = bound(&lp, "127.0.0.1:0");
    tx.connect(rx_addr).unwrap();
    let ev: Events = Rc::default();
    queue_sends(&tx, 3, None, &ev);
    tx.disconnect().unwrap();
    let code = |r: uv::Result<usize>| r.unwrap_err().code();
    assert_eq!(code(tx.try_send(b"x", None)), StatusCode::EDESTADDRREQ);
    let refused = tx.send(b"x".to_vec(), None, |_, _| panic!("refused"));
    assert_eq!(refused.unwrap_err().code(), StatusCode::EDESTADDRREQ);
    assert_eq!(tx.disconnect().unwrap_err().code(), StatusCode::ENOTCONN);
    uv_tests::net::run_until(&lp, || ev.borrow().len() == 3);
    assert_eq!(
        *ev.borrow(),
        [
            "send0 Ok(())",
            "send1 Err(EDESTADDRREQ)",
            "send2 Err(EDESTADDRREQ)"
        ]
    );
    tx.connect(rx_addr).unwrap();
    let refused = tx.send(b"x".to_vec(), Some(rx_addr), |_, _| panic!("refused"));
    assert_eq!(refused.unwrap_err().code(), StatusCode::EISCONN);
    assert_eq!(code(tx.try_send(b"x", Some(rx_addr))), StatusCode::EISCONN);
    tx.close();
    rx.close();
    lp.run(RunMode::Default).unwrap();
}

/// Datagrams no socket can send: more buffers than `IOV_MAX` (1024 on Linux) and
/// more bytes than a datagram holds report `EMSGSIZE` to their callbacks; no
/// buffer at all is refused at once (`EINVAL`), and `try_send` of too many bytes is
/// `EMSGSIZE` too.
#[test]
fn oversized_datagrams_report_emsgsize() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr) = bound(&lp, "127.0.0.1:0");
    let (tx, _) = bound(&lp, "127.0.0.1:0");
    let huge = vec![0u8; 70_000];
    let err = tx.try_send(&huge, Some(rx_addr)).unwrap_err();
    assert_eq!(err.code(), StatusCode::EMSGSIZE);
    let ev: Events = Rc::default();
    let e = ev.clone();
    tx.send(vec![vec![1u8]; 2000], Some(rx_addr), move |_, r| {
        e.borrow_mut().push(format!("many {}", outcome(r)))
    })
    .unwrap();
    let e = ev.clone();
    tx.send(huge, Some(rx_addr), move |_, r| {
        e.borrow_mut().push(format!("huge {}", outcome(r)))
    })
    .unwrap();
    let none = tx.send(Vec::<Vec<u8>>::new(), Some(rx_addr), |_, _| {
        panic!("refused")
    });
    assert_eq!(none.unwrap_err().code(), StatusCode::EINVAL);
    uv_tests::net::run_until(&lp, || ev.borrow().len() == 2);
    assert_eq!(*ev.borrow(), ["many Err(EMSGSIZE)", "huge Err(EMSGSIZE)"]);
    assert_eq!(tx.send_queue_count().unwrap(), 0);
    tx.close();
    rx.close();
    lp.run(RunMode::Default).unwrap();
}

/// Options and names of a UDP handle with no socket yet: `EBADF` (libuv passes
/// its -1 on), not an abort; `try_send_many` is `EINVAL`; a membership makes the socket (bound to any
/// address), after which the options are taken.
#[test]
fn udp_options_without_a_socket_are_ebadf() {
    let lp = Loop::new().unwrap();
    let u = Udp::new(&lp).unwrap();
    let code = |r: uv::Result<()>| r.unwrap_err().code();
    assert_eq!(code(u.set_ttl(255)), StatusCode::EBADF);
    assert_eq!(code(u.set_broadcast(true)), StatusCode::EBADF);
    assert_eq!(code(u.set_multicast_loop(true)), StatusCode::EBADF);
    assert_eq!(code(u.set_multicast_ttl(0)), StatusCode::EBADF);
    assert_eq!(code(u.set_multicast_interface(None)), StatusCode::EBADF);
    assert_eq!(u.local_addr().unwrap_err().code(), StatusCode::EBADF);
    assert_eq!(u.peer_addr().unwrap_err().code(), StatusCode::EBADF);
    assert_eq!(code(u.disconnect()), StatusCode::ENOTCONN);
    // Unlike `try_send`, libuv's batch send makes no socket: `EINVAL`.
    let to = Some("127.0.0.1:9".parse().unwrap());
    let many = u.try_send_many(&[(b"x".as_slice(), to)]);
    assert_eq!(many.unwrap_err().code(), StatusCode::EINVAL);
    assert!(!u.using_recvmmsg().unwrap());
    if u.set_membership(
        "224.0.0.1".parse().unwrap(),
        None,
        uv::Membership::JoinGroup,
    )
    .is_ok()
    {
        assert_eq!(u.family().unwrap(), Some(AddressFamily::Inet));
        u.set_ttl(255).unwrap();
        u.set_multicast_loop(false).unwrap();
    }
    u.close();
    lp.run(RunMode::Default).unwrap();
}

/// A `RECVMMSG` socket's callback that closes the handle, stops receiving, or
/// stops and starts again in the middle of a batch of 10 datagrams: 3 seen then
/// nothing, 3 seen then nothing, and all 10 (then the drained event). Under
/// valgrind this also checks that the batch buffer goes back once.
#[test]
fn a_batch_cut_short_by_the_callback() {
    for mode in ["close", "stop", "restart"] {
        let lp = Loop::new().unwrap();
        let rx = Udp::with_flags(&lp, AddressFamily::Inet, UdpFlags::RECVMMSG).unwrap();
        rx.bind("127.0.0.1:0".parse().unwrap(), UdpFlags::empty())
            .unwrap();
        let rx_addr = rx.local_addr().unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..10u8 {
            tx.send_to(&[i; 100], rx_addr).unwrap();
        }
        let got: Rc<RefCell<Vec<u8>>> = Rc::default();
        let g = got.clone();
        rx.recv_start(move |u, d| {
            let d = d.unwrap();
            assert_eq!(d.flags, UdpFlags::MMSG_CHUNK);
            g.borrow_mut().push(d.data[0]);
            if g.borrow().len() < 3 {
                return;
            }
            match mode {
                "close" => u.close(),
                "stop" => u.recv_stop().unwrap(),
                _ => {
                    u.recv_stop().unwrap();
                    let g = g.clone();
                    u.recv_start(move |u, d| {
                        let d = d.unwrap();
                        if d.is_drained() {
                            u.close();
                        } else {
                            g.borrow_mut().push(d.data[0]);
                        }
                    })
                    .unwrap();
                }
            }
        })
        .unwrap();
        for _ in 0..3 {
            lp.run(RunMode::NoWait).unwrap();
        }
        let want: Vec<u8> = if mode == "restart" {
            (0..10).collect()
        } else {
            vec![0, 1, 2]
        };
        assert_eq!(*got.borrow(), want, "{mode}");
        rx.close();
        lp.run(RunMode::Default).unwrap();
    }
}

/// `close_reset` of a socket with a connect and writes in flight: each callback
/// runs once, with `ECANCELED`.
#[test]
fn close_reset_while_connecting_cancels_everything() {
    let lp = Loop::new().unwrap();
    let (_server, addr) = uv_tests::net::tcp_listener();
    let c = Tcp::new(&lp).unwrap();
    let ev: Events = Rc::default();
    let e = ev.clone();
    c.connect(addr, move |_, r| {
        e.borrow_mut().push(format!("connect {}", outcome(r)))
    })
    .unwrap();
    let again = c.connect(addr, |_, _| panic!("refused")).unwrap_err();
    assert_eq!(again.code(), StatusCode::EALREADY);
    for i in 0..2 {
        let e = ev.clone();
        c.write(vec![i; 10], move |_, r| {
            e.borrow_mut().push(format!("write{i} {}", outcome(r)))
        })
        .unwrap();
    }
    c.close_reset().unwrap();
    assert_eq!(
        c.close_reset().unwrap_err().kind(),
        uv::Category::ClosedHandle
    );
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        *ev.borrow(),
        [
            "connect Err(ECANCELED)",
            "write0 Err(ECANCELED)",
            "write1 Err(ECANCELED)"
        ]
    );
}

/// `close_reset` with a shutdown queued is `EINVAL` and leaves the handle open (a
/// plain `close` then cancels the writes and the shutdown, each reporting once);
/// on a handle with no socket it is `EBADF`, the handle still open.
#[test]
fn close_reset_refused_leaves_the_handle_open() {
    let lp = Loop::new().unwrap();
    let t = Tcp::new(&lp).unwrap();
    assert_eq!(t.close_reset().unwrap_err().code(), StatusCode::EBADF);
    assert!(!t.is_closing());
    t.close();
    let (a, _b) = uv_tests::net::tcp_pair();
    let t = Tcp::new(&lp).unwrap();
    t.open(a).unwrap();
    let ev: Events = Rc::default();
    for i in 0..2 {
        let e = ev.clone();
        // Larger than the socket buffers: they stay queued.
        t.write(vec![i; 8 << 20], move |_, r| {
            e.borrow_mut().push(format!("write{i} {}", outcome(r)))
        })
        .unwrap();
    }
    let e = ev.clone();
    t.shutdown(move |_, r| e.borrow_mut().push(format!("shutdown {}", outcome(r))))
        .unwrap();
    assert_eq!(t.close_reset().unwrap_err().code(), StatusCode::EINVAL);
    assert!(!t.is_closing());
    t.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        *ev.borrow(),
        [
            "write0 Err(ECANCELED)",
            "write1 Err(ECANCELED)",
            "shutdown Err(ECANCELED)"
        ]
    );
}

/// Connects and binds at odd times: a connect to an IPv6 address from a socket
/// bound to IPv4 is refused at once (`EAFNOSUPPORT`, no callback); `bind` after
/// `listen` is `EINVAL`; a listen with a negative or huge backlog is taken (the
/// system clamps it) and a connection is still accepted.
#[test]
fn tcp_connect_bind_and_listen_at_odd_times() {
    let lp = Loop::new().unwrap();
    let c = Tcp::new(&lp).unwrap();
    c.bind("127.0.0.1:0".parse().unwrap(), TcpFlags::empty())
        .unwrap();
    let err = c
        .connect("[::1]:1".parse().unwrap(), |_, _| panic!("refused"))
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EAFNOSUPPORT);
    c.close();
    for backlog in [-1, 0, i32::MAX] {
        let s = Tcp::new(&lp).unwrap();
        s.bind("127.0.0.1:0".parse().unwrap(), TcpFlags::empty())
            .unwrap();
        let accepted = Rc::new(Cell::new(0));
        let a = accepted.clone();
        s.listen(backlog, move |s, r| {
            r.unwrap();
            s.accept().unwrap().close();
            a.set(a.get() + 1);
            s.close();
        })
        .unwrap();
        let again = s.bind("127.0.0.1:0".parse().unwrap(), TcpFlags::empty());
        assert_eq!(again.unwrap_err().code(), StatusCode::EINVAL);
        let addr = s.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(accepted.get(), 1, "backlog {backlog}");
    }
}
