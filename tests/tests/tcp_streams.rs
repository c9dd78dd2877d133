//! TCP streams end to end over loopback: ping-pong (IPv4 and IPv6), connect and
//! bind errors, shutdown and EOF, write ordering, large echoes, try_write on a full
//! socket, closing while connecting, addresses, readability, panics in stream
//! callbacks and handles kept alive by their work. Ported from libuv's test suite
//! (tcp_ping_pong, tcp_connect_error_after_write, tcp_try_write, ...) and the
//! Python `uv` package's tests.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use uv::Stream as _;

use uv::{Category, Loop, RunMode, StatusCode, Tcp, TcpFlags, WriteData};
use uv_tests::run_expecting_panic;

// ---------------------------------------------------------------------------
// Helpers

fn counter() -> Rc<Cell<usize>> {
    Rc::new(Cell::new(0))
}

fn bump(c: &Cell<usize>) -> usize {
    c.set(c.get() + 1);
    c.get()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Non-overlapping occurrences of `needle` in `hay`.
fn occurrences(hay: &[u8], needle: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if &hay[i..i + needle.len()] == needle {
            n += 1;
            i += needle.len();
        } else {
            i += 1;
        }
    }
    n
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A listener on `bind` that accepts one connection, closes itself and hands the
/// accepted socket to `on_accept`. Returns the address to connect to.
fn listen_once(lp: &Loop, bind: SocketAddr, on_accept: impl FnOnce(Tcp) + 'static) -> SocketAddr {
    let listener = Tcp::new(lp).unwrap();
    listener.bind(bind, TcpFlags::empty()).unwrap();
    let target = listener.local_addr().unwrap();
    let lh = lp.handle();
    let mut on_accept = Some(on_accept);
    listener
        .listen(8, move |l, r| {
            r.unwrap();
            let s = Tcp::new(&lh).unwrap();
            l.accept_into(&s).unwrap();
            l.close();
            if let Some(f) = on_accept.take() {
                f(s);
            }
        })
        .unwrap();
    target
}

type PairCallback = Box<dyn FnOnce(Tcp, Tcp)>;

#[derive(Default)]
struct Pending {
    client: Option<Tcp>,
    server: Option<Tcp>,
    f: Option<PairCallback>,
}

fn fire(p: &RefCell<Pending>) {
    let mut b = p.borrow_mut();
    if b.client.is_some() && b.server.is_some() {
        let (c, s) = (b.client.take().unwrap(), b.server.take().unwrap());
        let f = b.f.take().unwrap();
        drop(b);
        f(c, s);
    }
}

/// A connected pair over IPv4 loopback: `f(client, server_side)` runs on the loop once
/// the client's connect callback has run and the server has accepted.
fn connected_pair(lp: &Loop, f: impl FnOnce(Tcp, Tcp) + 'static) {
    let st = Rc::new(RefCell::new(Pending {
        f: Some(Box::new(f)),
        ..Default::default()
    }));
    let st2 = st.clone();
    let target = listen_once(lp, addr("127.0.0.1:0"), move |s| {
        st2.borrow_mut().server = Some(s);
        fire(&st2);
    });
    let client = Tcp::new(lp).unwrap();
    client
        .connect(target, move |c, r| {
            r.unwrap();
            st.borrow_mut().client = Some(c.clone());
            fire(&st);
        })
        .unwrap();
}

/// After a panic: closes what is left and runs to completion without error.
fn finish_after_panic(lp: &Loop) {
    lp.close_all_handles();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.handle_count(), 0);
    lp.close().unwrap();
}

// ---------------------------------------------------------------------------
// 1. Ping-pong

const ROUND_TRIPS: usize = 5;

/// Returns `None` when `bind` cannot be bound on this machine.
fn ping_pong(bind: SocketAddr) -> Option<(usize, usize)> {
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    if let Err(e) = server.bind(bind, TcpFlags::empty()) {
        if matches!(
            e.code(),
            StatusCode::EADDRNOTAVAIL | StatusCode::EAFNOSUPPORT
        ) {
            eprintln!("skipping: cannot bind {bind}: {e}");
            server.close();
            lp.run(RunMode::Default).unwrap();
            return None;
        }
        panic!("bind {bind}: {e}");
    }
    let target = server.local_addr().unwrap();
    assert_eq!(target.ip(), bind.ip());
    let pings = counter();
    let pongs = counter();
    let server_eof = counter();
    let client_eof = counter();

    let lh = lp.handle();
    let (p, se) = (pings.clone(), server_eof.clone());
    server
        .listen(16, move |srv, st| {
            st.unwrap();
            let conn = Tcp::new(&lh).unwrap();
            srv.accept_into(&conn).unwrap();
            srv.close();
            let mut buf = Vec::new();
            let (p, se) = (p.clone(), se.clone());
            conn.read_start(move |c, data| match data {
                Ok(d) => {
                    buf.extend_from_slice(d);
                    let seen = occurrences(&buf, b"PING");
                    while p.get() < seen {
                        bump(&p);
                        c.write("PONG", |_, r| r.unwrap()).unwrap();
                    }
                }
                Err(e) => {
                    assert_eq!(e.code(), StatusCode::EOF);
                    bump(&se);
                    c.close();
                }
            })
            .unwrap();
        })
        .unwrap();

    let client = Tcp::new(&lp).unwrap();
    let (q, ce) = (pongs.clone(), client_eof.clone());
    client
        .connect(target, move |c, r| {
            r.unwrap();
            assert_eq!(c.peer_addr().unwrap(), target);
            c.write("PING", |_, r| r.unwrap()).unwrap();
            let mut buf = Vec::new();
            c.read_start(move |c, data| match data {
                Ok(d) => {
                    buf.extend_from_slice(d);
                    let seen = occurrences(&buf, b"PONG");
                    assert!(seen <= ROUND_TRIPS, "more pongs than pings");
                    while q.get() < seen {
                        if bump(&q) < ROUND_TRIPS {
                            c.write("PING", |_, r| r.unwrap()).unwrap();
                        } else {
                            c.shutdown(|_, r| r.unwrap()).unwrap();
                        }
                    }
                }
                Err(e) => {
                    // The server closes after our shutdown: its FIN.
                    assert_eq!(e.code(), StatusCode::EOF);
                    bump(&ce);
                    c.close();
                }
            })
            .unwrap();
        })
        .unwrap();
    drop((server, client));

    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(server_eof.get(), 1);
    assert_eq!(client_eof.get(), 1);
    assert_eq!(lp.handle_count(), 0);
    lp.close().unwrap();
    Some((pings.get(), pongs.get()))
}

#[test]
fn ping_pong_ipv4() {
    let (pings, pongs) = ping_pong(addr("127.0.0.1:0")).unwrap();
    assert_eq!(pings, ROUND_TRIPS);
    assert_eq!(pongs, ROUND_TRIPS);
}

#[test]
fn ping_pong_ipv6() {
    let Some((pings, pongs)) = ping_pong(addr("[::1]:0")) else {
        return;
    };
    assert_eq!(pings, ROUND_TRIPS);
    assert_eq!(pongs, ROUND_TRIPS);
}

// ---------------------------------------------------------------------------
// 2. Connection refused

/// A request callback that captures more than two words is called from one
/// place in the completion trampoline, the failure's error made out of line: a
/// refused connect still gets its error (code and operation), with what it
/// captured intact, and a panic of it reaches `run` with the request freed.
#[test]
fn a_refused_connect_reaches_a_callback_that_captures_much() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let lp = Loop::new().unwrap();
    let calls = counter();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (n, s) = (calls.clone(), seen.clone());
    let wide = [11u64, 22, 33, 44];
    Tcp::new(&lp)
        .unwrap()
        .connect(addr, move |c, r| {
            bump(&n);
            let err = r.expect_err("connect to a closed port should fail");
            s.borrow_mut()
                .push((err.code(), err.operation(), wide.iter().sum::<u64>()));
            c.close();
        })
        .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    assert_eq!(
        seen.borrow()[..],
        [(StatusCode::ECONNREFUSED, "uv_tcp_connect", 110)]
    );

    // The same callback panicking: the panic comes out of `run`, and what the
    // callback captured is dropped once.
    let held = Rc::new(());
    let h = held.clone();
    let client = Tcp::new(&lp).unwrap();
    client
        .connect(addr, move |_, r| {
            let _ = (&h, wide);
            panic!("refused: {:?}", r.map_err(|e| e.code()));
        })
        .unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default)));
    let msg = r.expect_err("the callback's panic comes out of run");
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(msg.contains("ECONNREFUSED"), "{msg}");
    assert_eq!(Rc::strong_count(&held), 1);
    client.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    lp.close().unwrap();
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let lp = Loop::new().unwrap();
    let client = Tcp::new(&lp).unwrap();
    let calls = counter();
    let seen = Rc::new(Cell::new(None));
    let (n, s) = (calls.clone(), seen.clone());
    client
        .connect(SocketAddr::from(([127, 0, 0, 1], port)), move |c, r| {
            bump(&n);
            let err = r.expect_err("connect to a closed port should fail");
            s.set(Some(err));
            c.close();
        })
        .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    let err = seen.take().unwrap();
    assert_eq!(err.code(), StatusCode::ECONNREFUSED, "{err:?}");
    assert!(err.is(Category::Connection));
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    assert!(client.is_closed());
    lp.close().unwrap();
}

// ---------------------------------------------------------------------------
// 3. Address in use

#[test]
fn binding_an_address_in_use_is_eaddrinuse() {
    let lp = Loop::new().unwrap();
    let first = Tcp::new(&lp).unwrap();
    first.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    first.listen(4, |_, _| {}).unwrap();
    let taken = first.local_addr().unwrap();

    let second = Tcp::new(&lp).unwrap();
    // libuv defers EADDRINUSE from bind to listen (or connect); accept either.
    let err = match second.bind(taken, TcpFlags::empty()) {
        Err(e) => e,
        Ok(()) => second
            .listen(4, |_, _| {})
            .expect_err("listening on an address in use should fail"),
    };
    assert_eq!(err.code(), StatusCode::EADDRINUSE, "{err:?}");
    assert!(err.is(Category::Address));
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::AddrInUse
    );
    assert!(!second.is_active());
    first.close();
    second.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    lp.close().unwrap();
}

// ---------------------------------------------------------------------------
// 4. Write after shutdown

#[test]
fn write_after_shutdown_fails() {
    let lp = Loop::new().unwrap();
    let outcome: Rc<RefCell<Option<uv::Result<()>>>> = Rc::default();
    let shutdown_ok = counter();
    let server_got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let server_eof = counter();
    let (o, so, sg, se) = (
        outcome.clone(),
        shutdown_ok.clone(),
        server_got.clone(),
        server_eof.clone(),
    );
    connected_pair(&lp, move |client, server| {
        server
            .read_start(move |s, d| match d {
                Ok(d) => sg.borrow_mut().extend_from_slice(d),
                Err(e) => {
                    assert_eq!(e.code(), StatusCode::EOF);
                    bump(&se);
                    s.close();
                }
            })
            .unwrap();
        client
            .shutdown(move |c, r| {
                r.unwrap();
                bump(&so);
                c.close();
            })
            .unwrap();
        assert!(!client.is_writable());
        // Observed: `write` itself returns EPIPE (libuv clears the writable flag
        // at once in uv_shutdown); the callback never runs.
        let o2 = o.clone();
        if let Err(e) = client.write("too late", move |_, r| *o2.borrow_mut() = Some(r)) {
            *o.borrow_mut() = Some(Err(e));
        }
    });
    assert!(!lp.run(RunMode::Default).unwrap());
    let err = outcome
        .borrow_mut()
        .take()
        .expect("write neither failed nor called back")
        .expect_err("a write after shutdown should fail");
    assert!(
        matches!(err.code(), StatusCode::EPIPE | StatusCode::ENOTCONN),
        "{err:?}"
    );
    assert_eq!(
        err.code(),
        StatusCode::EPIPE,
        "observed code changed: {err:?}"
    );
    assert_eq!(shutdown_ok.get(), 1);
    assert_eq!(server_eof.get(), 1);
    // Nothing of the failed write reached the peer.
    assert!(server_got.borrow().is_empty());
    lp.close().unwrap();
}

// ---------------------------------------------------------------------------
// 5. Shutdown delivers EOF

#[derive(Debug, PartialEq)]
enum Event {
    Data(Vec<u8>),
    Eof,
}

#[test]
fn shutdown_delivers_eof_after_the_data() {
    let lp = Loop::new().unwrap();
    let events: Rc<RefCell<Vec<Event>>> = Rc::default();
    let order: Rc<RefCell<Vec<&'static str>>> = Rc::default();
    let (ev, or) = (events.clone(), order.clone());
    connected_pair(&lp, move |client, server| {
        let or2 = or.clone();
        server
            .read_start(move |s, d| match d {
                Ok(d) => ev.borrow_mut().push(Event::Data(d.to_vec())),
                Err(e) => {
                    assert_eq!(e.code(), StatusCode::EOF, "{e:?}");
                    ev.borrow_mut().push(Event::Eof);
                    or2.borrow_mut().push("eof");
                    s.close();
                }
            })
            .unwrap();
        let or1 = or.clone();
        client
            .write("some data", move |_, r| {
                r.unwrap();
                or1.borrow_mut().push("write");
            })
            .unwrap();
        let or3 = or.clone();
        client
            .shutdown(move |c, r| {
                r.unwrap();
                or3.borrow_mut().push("shutdown");
                c.close();
            })
            .unwrap();
    });
    assert!(!lp.run(RunMode::Default).unwrap());
    let events = events.borrow();
    assert_eq!(events.last(), Some(&Event::Eof));
    assert_eq!(events.iter().filter(|e| **e == Event::Eof).count(), 1);
    let data: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            Event::Data(d) => Some(d.clone()),
            Event::Eof => None,
        })
        .flatten()
        .collect();
    assert_eq!(data, b"some data");
    let order = order.borrow();
    // The write completes before the shutdown; the peer's EOF may come either side of
    // the shutdown callback.
    assert_eq!(order.len(), 3, "{order:?}");
    let pos = |s| order.iter().position(|x| *x == s).unwrap();
    assert!(pos("write") < pos("shutdown"), "{order:?}");
    lp.close().unwrap();
}

// ---------------------------------------------------------------------------
// 6. Many queued writes

#[test]
fn many_queued_writes_complete_in_order() {
    const N: usize = 100;
    let lp = Loop::new().unwrap();
    let completed: Rc<RefCell<Vec<usize>>> = Rc::default();
    let received: Rc<RefCell<Vec<u8>>> = Rc::default();
    let queued_max = Rc::new(Cell::new(0usize));
    let (done, rx, qm) = (completed.clone(), received.clone(), queued_max.clone());
    connected_pair(&lp, move |client, server| {
        server
            .read_start(move |s, d| match d {
                Ok(d) => rx.borrow_mut().extend_from_slice(d),
                Err(e) => {
                    assert_eq!(e.code(), StatusCode::EOF);
                    s.close();
                }
            })
            .unwrap();
        for i in 0..N {
            let done = done.clone();
            client
                .write(format!("msg-{i}\n"), move |_, r| {
                    r.unwrap();
                    done.borrow_mut().push(i);
                })
                .unwrap();
            qm.set(qm.get().max(client.write_queue_size()));
        }
        let done = done.clone();
        client
            .shutdown(move |c, r| {
                r.unwrap();
                // The shutdown completes after every queued write.
                assert_eq!(done.borrow().len(), N);
                assert_eq!(c.write_queue_size(), 0);
                c.close();
            })
            .unwrap();
    });
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*completed.borrow(), (0..N).collect::<Vec<_>>());
    let expected: String = (0..N).map(|i| format!("msg-{i}\n")).collect();
    assert_eq!(
        String::from_utf8(received.take()).unwrap(),
        expected,
        "the peer must get the exact concatenation"
    );
    lp.close().unwrap();
}

// ---------------------------------------------------------------------------
// 7. 1 MiB echo

/// Sends `data` to an echo server, half-closes, reads everything back until EOF.
fn echo_roundtrip(data: WriteData) -> Vec<u8> {
    let lp = Loop::new().unwrap();
    let server_writes = counter();
    let sw = server_writes.clone();
    let target = listen_once(&lp, addr("127.0.0.1:0"), move |conn| {
        conn.read_start(move |c, d| match d {
            Ok(d) => {
                let sw = sw.clone();
                c.write(d.to_vec(), move |_, r| {
                    r.unwrap();
                    bump(&sw);
                })
                .unwrap();
            }
            Err(e) => {
                assert_eq!(e.code(), StatusCode::EOF);
                // The shutdown waits for the echoes still queued.
                uv_tests::shutdown_and_close(c);
            }
        })
        .unwrap();
    });
    let received: Rc<RefCell<Vec<u8>>> = Rc::default();
    let client_eof = counter();
    let client = Tcp::new(&lp).unwrap();
    let (rx, ce) = (received.clone(), client_eof.clone());
    client
        .connect(target, move |c, r| {
            r.unwrap();
            c.write(data, |_, r| r.unwrap()).unwrap();
            c.shutdown(|_, r| r.unwrap()).unwrap();
            c.read_start(move |c, d| match d {
                Ok(d) => rx.borrow_mut().extend_from_slice(d),
                Err(e) => {
                    assert_eq!(e.code(), StatusCode::EOF);
                    bump(&ce);
                    c.close();
                }
            })
            .unwrap();
        })
        .unwrap();
    drop(client);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(client_eof.get(), 1);
    assert!(server_writes.get() >= 1);
    assert_eq!(lp.handle_count(), 0);
    lp.close().unwrap();
    received.take()
}

const MIB: usize = 1 << 20;

#[test]
fn one_mib_is_echoed_intact() {
    let data = pattern(MIB);
    let echoed = echo_roundtrip(WriteData::from(data.clone()));
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "echoed bytes differ");
}

#[test]
fn one_mib_in_sixteen_buffers_is_echoed_intact() {
    let data = pattern(MIB);
    let chunks: Vec<Vec<u8>> = data.chunks(MIB / 16).map(<[u8]>::to_vec).collect();
    assert_eq!(chunks.len(), 16);
    let echoed = echo_roundtrip(WriteData::from(chunks));
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "echoed bytes differ");
}

// ---------------------------------------------------------------------------
// 8. try_write

#[test]
fn try_write_on_a_full_socket_is_eagain() {
    const CHUNK: usize = 64 * 1024;
    let lp = Loop::new().unwrap();
    let result: Rc<RefCell<Option<(usize, uv::Error)>>> = Rc::default();
    let small = counter();
    let (res, sm) = (result.clone(), small.clone());
    connected_pair(&lp, move |client, server| {
        // An idle connected socket takes a small buffer whole.
        sm.set(client.try_write(b"hello").unwrap());
        // The server never reads; small buffers make the pipe fill quickly.
        client.set_send_buffer_size(4096).unwrap();
        server.set_recv_buffer_size(4096).unwrap();
        let chunk = vec![b'x'; CHUNK];
        let mut total = 0usize;
        let mut err = None;
        // A bound, so that a socket that never fills fails the test instead of hanging.
        for _ in 0..4096 {
            match client.try_write(&chunk) {
                Ok(n) => {
                    assert!(n > 0 && n <= CHUNK, "{n}");
                    total += n;
                }
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        *res.borrow_mut() = Some((total, err.expect("the socket never filled up")));
        client.close();
        server.close();
    });
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(small.get(), 5);
    let (total, err) = result.take().unwrap();
    assert_eq!(err.code(), StatusCode::EAGAIN, "{err:?}");
    assert!(total > 0);
    lp.close().unwrap();
}

#[test]
fn try_write_on_an_unconnected_or_closed_socket_fails() {
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    // No socket yet: libuv refuses with EBADF.
    let err = tcp.try_write(b"x").unwrap_err();
    assert_eq!(err.code(), StatusCode::EBADF, "{err:?}");
    // And so do write and shutdown, without calling back.
    let err = tcp.write("x", |_, _| panic!("no callback")).unwrap_err();
    assert_eq!(err.code(), StatusCode::EBADF, "{err:?}");
    // Reading needs a connection.
    let err = tcp.read_start(|_, _| panic!("no callback")).unwrap_err();
    assert_eq!(err.code(), StatusCode::ENOTCONN, "{err:?}");
    tcp.close();
    assert_eq!(
        tcp.try_write(b"x").unwrap_err().kind(),
        Category::ClosedHandle
    );
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

// ---------------------------------------------------------------------------
// 9. Closing while connecting

#[test]
fn closing_while_connecting_cancels_the_connect() {
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    server.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    let target = server.local_addr().unwrap();
    let lh = lp.handle();
    server
        .listen(4, move |srv, r| {
            // The kernel may complete the handshake before the close: accept and drop.
            if r.is_ok() {
                let c = Tcp::new(&lh).unwrap();
                srv.accept_into(&c).unwrap();
                c.close();
            }
        })
        .unwrap();
    let client = Tcp::new(&lp).unwrap();
    let calls = counter();
    let seen = Rc::new(Cell::new(None));
    let (n, s, srv) = (calls.clone(), seen.clone(), server.clone());
    client
        .connect(target, move |c, r| {
            bump(&n);
            s.set(Some(r));
            assert!(c.is_closing());
            srv.close();
        })
        .unwrap();
    client.close();
    assert!(client.is_closing());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    let err = seen
        .take()
        .unwrap()
        .expect_err("a closed connect should fail");
    assert_eq!(err.code(), StatusCode::ECANCELED, "{err:?}");
    assert!(client.is_closed());
    assert!(server.is_closed());
    lp.close().unwrap();
}

// ---------------------------------------------------------------------------
// 10. Addresses

#[test]
fn sockname_and_peername_match_across_the_connection() {
    let lp = Loop::new().unwrap();
    let listener = Tcp::new(&lp).unwrap();
    listener
        .bind(addr("127.0.0.1:0"), TcpFlags::empty())
        .unwrap();
    let listen_addr = listener.local_addr().unwrap();
    assert_eq!(listen_addr.ip().to_string(), "127.0.0.1");
    assert_ne!(listen_addr.port(), 0);
    // A listener has no peer.
    assert_eq!(
        listener.peer_addr().unwrap_err().code(),
        StatusCode::ENOTCONN
    );
    let accepted: Rc<RefCell<Option<Tcp>>> = Rc::default();
    let checked = counter();
    let lh = lp.handle();
    let acc = accepted.clone();
    listener
        .listen(4, move |l, r| {
            r.unwrap();
            let s = Tcp::new(&lh).unwrap();
            l.accept_into(&s).unwrap();
            *acc.borrow_mut() = Some(s);
            l.close();
        })
        .unwrap();
    let client = Tcp::new(&lp).unwrap();
    let (acc, ch) = (accepted.clone(), checked.clone());
    client
        .connect(listen_addr, move |c, r| {
            r.unwrap();
            // The client's peer is the server's address.
            assert_eq!(c.peer_addr().unwrap(), listen_addr);
            let client_addr = c.local_addr().unwrap();
            assert_eq!(client_addr.ip().to_string(), "127.0.0.1");
            assert_ne!(client_addr.port(), listen_addr.port());
            // Wait for the accept if it has not run yet (it needs the loop).
            let lh = c.loop_();
            let c = c.clone();
            let idle = uv::Idle::new(&lh).unwrap();
            idle.start(move |i| {
                let Some(s) = acc.borrow_mut().take() else {
                    return;
                };
                i.close();
                assert_eq!(s.peer_addr().unwrap(), client_addr);
                assert_eq!(s.local_addr().unwrap(), listen_addr);
                bump(&ch);
                s.close();
                c.close();
            })
            .unwrap();
        })
        .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(checked.get(), 1);
    // Closed handles answer ClosedHandle.
    assert_eq!(
        client.local_addr().unwrap_err().kind(),
        Category::ClosedHandle
    );
    assert_eq!(
        client.peer_addr().unwrap_err().kind(),
        Category::ClosedHandle
    );
    lp.close().unwrap();
}

// ---------------------------------------------------------------------------
// 11. Readable / writable

#[test]
fn readable_and_writable_follow_the_connection() {
    let lp = Loop::new().unwrap();
    let fresh = Tcp::new(&lp).unwrap();
    assert!(!fresh.is_readable());
    assert!(!fresh.is_writable());
    fresh.close();
    assert!(!fresh.is_readable());
    assert!(!fresh.is_writable());

    let checked = counter();
    let closed_client: Rc<RefCell<Option<Tcp>>> = Rc::default();
    let shutdown_result = Rc::new(Cell::new(None));
    let (ch, cc, sd) = (
        checked.clone(),
        closed_client.clone(),
        shutdown_result.clone(),
    );
    connected_pair(&lp, move |client, server| {
        assert!(client.is_readable());
        assert!(client.is_writable());
        assert!(server.is_readable());
        assert!(server.is_writable());
        let sd = sd.clone();
        client.shutdown(move |_, r| sd.set(Some(r))).unwrap();
        // Shutdown ends the write side only.
        assert!(client.is_readable());
        assert!(!client.is_writable());
        client.close();
        server.close();
        assert!(!client.is_readable());
        assert!(!client.is_writable());
        assert!(!server.is_readable());
        assert!(!server.is_writable());
        bump(&ch);
        *cc.borrow_mut() = Some(client);
    });
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(checked.get(), 1);
    // Closed before it could complete: the shutdown is cancelled.
    let err = shutdown_result.take().unwrap().unwrap_err();
    assert_eq!(err.code(), StatusCode::ECANCELED);
    let client = closed_client.take().unwrap();
    assert!(client.is_closed());
    assert!(!client.is_readable());
    assert!(!client.is_writable());
    lp.close().unwrap();
}

// ---------------------------------------------------------------------------
// 12. Panics in stream callbacks

#[test]
fn a_panic_in_the_connect_callback_reaches_run() {
    let lp = Loop::new().unwrap();
    let target = listen_once(&lp, addr("127.0.0.1:0"), |s| s.close());
    let client = Tcp::new(&lp).unwrap();
    client
        .connect(target, |_, r| {
            r.unwrap();
            panic!("connect boom");
        })
        .unwrap();
    assert_eq!(run_expecting_panic(&lp), "connect boom");
    finish_after_panic(&lp);
}

#[test]
fn a_panic_in_the_connection_callback_reaches_run() {
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    server.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    let target = server.local_addr().unwrap();
    server
        .listen(4, |_, r| {
            r.unwrap();
            panic!("connection boom");
        })
        .unwrap();
    let client = Tcp::new(&lp).unwrap();
    // Ok, or ECANCELED when the handles are closed after the panic.
    let connect_calls = counter();
    let n = connect_calls.clone();
    client
        .connect(target, move |_, _| {
            bump(&n);
        })
        .unwrap();
    assert_eq!(run_expecting_panic(&lp), "connection boom");
    finish_after_panic(&lp);
    assert_eq!(connect_calls.get(), 1);
}

#[test]
fn a_panic_in_the_read_callback_reaches_run() {
    let lp = Loop::new().unwrap();
    connected_pair(&lp, |client, server| {
        server
            .read_start(|_, d| {
                d.unwrap();
                panic!("read boom");
            })
            .unwrap();
        client.write("x", |_, _| {}).unwrap();
    });
    assert_eq!(run_expecting_panic(&lp), "read boom");
    finish_after_panic(&lp);
}

#[test]
fn a_panic_in_the_write_callback_reaches_run() {
    let lp = Loop::new().unwrap();
    connected_pair(&lp, |client, _server| {
        client
            .write("x", |_, r| {
                r.unwrap();
                panic!("write boom");
            })
            .unwrap();
    });
    assert_eq!(run_expecting_panic(&lp), "write boom");
    finish_after_panic(&lp);
}

#[test]
fn a_panic_in_the_shutdown_callback_reaches_run() {
    let lp = Loop::new().unwrap();
    connected_pair(&lp, |client, _server| {
        client
            .shutdown(|_, r| {
                r.unwrap();
                panic!("shutdown boom");
            })
            .unwrap();
    });
    assert_eq!(run_expecting_panic(&lp), "shutdown boom");
    finish_after_panic(&lp);
}

#[test]
fn after_a_panic_the_loop_serves_a_new_connection() {
    let lp = Loop::new().unwrap();
    connected_pair(&lp, |client, _server| {
        client
            .write("x", |_, _| {
                panic!("first");
            })
            .unwrap();
    });
    assert_eq!(run_expecting_panic(&lp), "first");
    lp.close_all_handles();
    lp.run(RunMode::Default).unwrap();
    // A full exchange on the same loop.
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let g = got.clone();
    connected_pair(&lp, move |client, server| {
        server
            .read_start(move |s, d| match d {
                Ok(d) => g.borrow_mut().extend_from_slice(d),
                Err(_) => s.close(),
            })
            .unwrap();
        client.write("again", |_, r| r.unwrap()).unwrap();
        uv_tests::shutdown_and_close(&client);
    });
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(&*got.borrow(), b"again");
    lp.close().unwrap();
}

// ---------------------------------------------------------------------------
// 13. Handles kept alive by their work

#[test]
fn a_dropped_client_still_completes_its_connect() {
    let lp = Loop::new().unwrap();
    let target = listen_once(&lp, addr("127.0.0.1:0"), |s| s.close());
    let calls = counter();
    let n = calls.clone();
    let client = Tcp::new(&lp).unwrap();
    client
        .connect(target, move |c, r| {
            r.unwrap();
            assert!(!c.is_closing());
            bump(&n);
        })
        .unwrap();
    drop(client);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    // Unreachable and idle after its callback: closed by the library.
    assert_eq!(lp.handle_count(), 0);
    lp.close().unwrap();
}

#[test]
fn a_dropped_listening_server_keeps_accepting() {
    const CLIENTS: usize = 3;
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    server.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    let target = server.local_addr().unwrap();
    let accepted = counter();
    let lh = lp.handle();
    let a = accepted.clone();
    server
        .listen(16, move |srv, r| {
            r.unwrap();
            let c = Tcp::new(&lh).unwrap();
            srv.accept_into(&c).unwrap();
            // Dropped unread: an idle, unreachable handle is closed.
            drop(c);
            if bump(&a) == CLIENTS {
                srv.close();
            }
        })
        .unwrap();
    drop(server);
    let connected = counter();
    for _ in 0..CLIENTS {
        let client = Tcp::new(&lp).unwrap();
        let n = connected.clone();
        client
            .connect(target, move |_, r| {
                r.unwrap();
                bump(&n);
            })
            .unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(accepted.get(), CLIENTS);
    assert_eq!(connected.get(), CLIENTS);
    assert_eq!(lp.handle_count(), 0);
    lp.close().unwrap();
}

#[test]
fn a_dropped_reading_socket_keeps_reading() {
    let lp = Loop::new().unwrap();
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let g = got.clone();
    connected_pair(&lp, move |client, server| {
        server
            .read_start(move |s, d| match d {
                Ok(d) => g.borrow_mut().extend_from_slice(d),
                Err(e) => {
                    assert_eq!(e.code(), StatusCode::EOF);
                    s.close();
                }
            })
            .unwrap();
        drop(server);
        client.write("kept", |_, r| r.unwrap()).unwrap();
        uv_tests::shutdown_and_close(&client);
        // The in-flight requests keep the client alive.
        drop(client);
    });
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(&*got.borrow(), b"kept");
    assert_eq!(lp.handle_count(), 0);
    lp.close().unwrap();
}

// ---------------------------------------------------------------------------
// 14. Loop::close with a pending write

#[test]
fn loop_close_is_ebusy_while_a_write_is_pending() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_side = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    tcp.open(peer_side).unwrap();
    assert!(tcp.is_writable());
    let done = Rc::new(Cell::new(None));
    let d = done.clone();
    tcp.write("pending", move |c, r| {
        d.set(Some(r));
        c.close();
    })
    .unwrap();
    // Even a write that went out at once calls back only when the loop runs.
    assert!(done.take().is_none());
    let err = lp.close().unwrap_err();
    assert_eq!(err.code(), StatusCode::EBUSY);
    drop(tcp);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(done.take(), Some(Ok(())));
    lp.close().unwrap();
    let mut buf = [0u8; 7];
    std::io::Read::read_exact(&mut &accepted, &mut buf).unwrap();
    assert_eq!(&buf, b"pending");
}

#[test]
fn a_large_pending_write_is_counted_in_the_write_queue() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_side = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    tcp.open(peer_side).unwrap();
    tcp.set_send_buffer_size(4096).unwrap();
    assert_eq!(tcp.write_queue_size(), 0);
    let size = 8 * MIB;
    let calls = counter();
    let n = calls.clone();
    tcp.write(pattern(size), move |c, r| {
        // Closed before the peer read it all: cancelled.
        assert_eq!(r.unwrap_err().code(), StatusCode::ECANCELED);
        bump(&n);
        assert_eq!(c.write_queue_size(), 0);
    })
    .unwrap();
    // The part the kernel did not take is queued.
    let queued = tcp.write_queue_size();
    assert!(queued > 0 && queued <= size, "{queued}");
    // try_write does not jump the queue.
    assert_eq!(tcp.try_write(b"x").unwrap_err().code(), StatusCode::EAGAIN);
    tcp.close();
    assert_eq!(tcp.write_queue_size(), 0);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    lp.close().unwrap();
    drop(accepted);
}

// ---------------------------------------------------------------------------
// Edge cases

#[test]
fn empty_writes() {
    let lp = Loop::new().unwrap();
    let results: Rc<RefCell<Vec<uv::Result<()>>>> = Rc::default();
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let (res, g) = (results.clone(), got.clone());
    connected_pair(&lp, move |client, server| {
        server
            .read_start(move |s, d| match d {
                Ok(d) => g.borrow_mut().extend_from_slice(d),
                Err(_) => s.close(),
            })
            .unwrap();
        // No buffers at all: libuv refuses with EINVAL and nothing is left pending.
        let err = client
            .write(Vec::<Vec<u8>>::new(), |_, _| panic!("no callback"))
            .unwrap_err();
        assert_eq!(err.code(), StatusCode::EINVAL, "{err:?}");
        // One empty buffer, and empty buffers among full ones, are fine.
        for data in [
            WriteData::from(Vec::<u8>::new()),
            WriteData::from(vec![Vec::new(), b"ab".to_vec(), Vec::new(), b"c".to_vec()]),
            WriteData::from(""),
        ] {
            let res = res.clone();
            client
                .write(data, move |_, r| res.borrow_mut().push(r))
                .unwrap();
        }
        uv_tests::shutdown_and_close(&client);
    });
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*results.borrow(), vec![Ok(()), Ok(()), Ok(())]);
    assert_eq!(&*got.borrow(), b"abc");
    lp.close().unwrap();
}

#[test]
fn accept_without_a_pending_connection_is_eagain() {
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    server.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    server.listen(4, |_, _| {}).unwrap();
    let client = Tcp::new(&lp).unwrap();
    let err = server.accept_into(&client).unwrap_err();
    assert_eq!(err.code(), StatusCode::EAGAIN, "{err:?}");
    // Accepting into a closed handle is refused before libuv sees it.
    client.close();
    assert_eq!(
        server.accept_into(&client).unwrap_err().kind(),
        Category::ClosedHandle
    );
    server.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    lp.close().unwrap();
}

#[test]
fn a_read_callback_that_panicked_keeps_reading_on_the_next_run() {
    let lp = Loop::new().unwrap();
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let eofs = counter();
    let calls = counter();
    let (g, e, n) = (got.clone(), eofs.clone(), calls.clone());
    connected_pair(&lp, move |client, server| {
        server
            .read_start(move |s, d| {
                let first = bump(&n) == 1;
                match d {
                    Ok(d) => g.borrow_mut().extend_from_slice(d),
                    Err(err) => {
                        assert_eq!(err.code(), StatusCode::EOF);
                        bump(&e);
                        s.close();
                    }
                }
                if first {
                    panic!("first read");
                }
            })
            .unwrap();
        client
            .write("hello", |c, r| {
                r.unwrap();
                c.write(" world", |_, r| r.unwrap()).unwrap();
                uv_tests::shutdown_and_close(c);
            })
            .unwrap();
    });
    assert_eq!(run_expecting_panic(&lp), "first read");
    // The read callback went back to its slot: the stream goes on.
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(&*got.borrow(), b"hello world");
    assert_eq!(eofs.get(), 1);
    assert_eq!(lp.handle_count(), 0);
    lp.close().unwrap();
}

#[test]
fn read_stop_pauses_and_read_start_resumes() {
    let lp = Loop::new().unwrap();
    let first: Rc<RefCell<Vec<u8>>> = Rc::default();
    let second: Rc<RefCell<Vec<u8>>> = Rc::default();
    let (f, g) = (first.clone(), second.clone());
    connected_pair(&lp, move |client, server| {
        let cl = client.clone();
        server
            .read_start(move |s, d| {
                f.borrow_mut().extend_from_slice(d.unwrap());
                // Paused: the next data waits in the kernel.
                s.read_stop().unwrap();
                assert!(!s.is_active());
                let srv = s.clone();
                let g = g.clone();
                cl.write("two", move |c, r| {
                    r.unwrap();
                    // Resumed from another handle's callback, with a new callback.
                    srv.read_start(move |s, d| match d {
                        Ok(d) => g.borrow_mut().extend_from_slice(d),
                        Err(_) => s.close(),
                    })
                    .unwrap();
                    uv_tests::shutdown_and_close(c);
                })
                .unwrap();
            })
            .unwrap();
        client.write("one", |_, r| r.unwrap()).unwrap();
    });
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(&*first.borrow(), b"one");
    assert_eq!(&*second.borrow(), b"two");
    lp.close().unwrap();
}

/// `read_start` on a stream that is already reading fails with `EALREADY`; a failed
/// call should leave the stream as it was, calling the first callback.
#[test]
fn a_failed_read_start_keeps_the_running_callback() {
    let lp = Loop::new().unwrap();
    let first = counter();
    let second = counter();
    let (f, g) = (first.clone(), second.clone());
    connected_pair(&lp, move |client, server| {
        server
            .read_start(move |s, d| match d {
                Ok(_) => {
                    bump(&f);
                }
                Err(_) => s.close(),
            })
            .unwrap();
        let err = server
            .read_start(move |s, d| match d {
                Ok(_) => {
                    bump(&g);
                }
                Err(_) => s.close(),
            })
            .unwrap_err();
        assert_eq!(err.code(), StatusCode::EALREADY, "{err:?}");
        client.write("data", |_, r| r.unwrap()).unwrap();
        uv_tests::shutdown_and_close(&client);
    });
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(second.get(), 0, "the rejected callback was called");
    assert!(first.get() >= 1);
    lp.close().unwrap();
}

// ---------------------------------------------------------------------------
// Write requests: what their completion and refusal keep and give back

/// A write in flight on a stream that is closing keeps the loop from closing
/// (`EBUSY`: the closing handle is still counted until its close callback, which
/// comes after the write's), and its callback runs exactly once.
#[test]
fn loop_close_is_ebusy_while_a_closing_stream_has_a_write_in_flight() {
    let (peer_side, accepted) = uv_tests::net::tcp_pair();
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    tcp.open(peer_side).unwrap();
    let calls = Rc::new(Cell::new(0u32));
    let c = calls.clone();
    tcp.write(vec![7u8; 64], move |_, r| {
        c.set(c.get() + 1);
        // Written at once (before the close) or cancelled by it.
        assert!(
            r.is_ok() || r.as_ref().unwrap_err().code() == StatusCode::ECANCELED,
            "{r:?}"
        );
    })
    .unwrap();
    tcp.close();
    drop(tcp);
    assert_eq!(lp.close().unwrap_err().code(), StatusCode::EBUSY);
    assert_eq!(calls.get(), 0);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    lp.close().unwrap();
    drop(accepted);
}

/// A write libuv refuses (`EBADF`: no socket yet) gives its callback and its data
/// back at once (their counts return to one), takes no reference to the handle
/// with it (the handle's last reference closes it), and a good write on another
/// stream of the loop is unaffected.
#[test]
fn a_refused_write_drops_its_callback_and_data_at_once() {
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    let data: Rc<[u8]> = Rc::from(&b"refused bytes"[..]);
    let token = Rc::new(());
    let t = token.clone();
    let err = tcp
        .write(WriteData::Shared(data.clone()), move |_, _| {
            let _ = &t;
            panic!("no callback for a refused write");
        })
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EBADF, "{err:?}");
    assert_eq!(Rc::strong_count(&data), 1);
    assert_eq!(Rc::strong_count(&token), 1);
    // write_counted and shutdown are refused the same way.
    let t = token.clone();
    let err = tcp
        .write_counted(WriteData::Shared(data.clone()), move |_, _, _| {
            let _ = &t;
        })
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EBADF, "{err:?}");
    assert_eq!((Rc::strong_count(&data), Rc::strong_count(&token)), (1, 1));

    let (peer_side, accepted) = uv_tests::net::tcp_pair();
    let good = Tcp::new(&lp).unwrap();
    good.open(peer_side).unwrap();
    let done = Rc::new(Cell::new(None));
    let d = done.clone();
    good.write(WriteData::Shared(data.clone()), move |c, r| {
        d.set(Some(r.map_err(|e| e.code())));
        c.close();
    })
    .unwrap();
    assert_eq!(Rc::strong_count(&data), 2, "the request keeps the bytes");
    drop((tcp, good));
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(done.take(), Some(Ok(())));
    assert_eq!(
        Rc::strong_count(&data),
        1,
        "the completed request gave them back"
    );
    lp.close().unwrap();
    let mut buf = [0u8; 13];
    std::io::Read::read_exact(&mut &accepted, &mut buf).unwrap();
    assert_eq!(&buf, b"refused bytes");
}

/// Each check `write` makes before libuv, on the stream state that fails it: a
/// listening stream (`EINVAL`), a closed one (`ClosedHandle`); the callback and
/// data go back at once in both cases.
#[test]
fn write_checks_refuse_listening_and_closed_streams() {
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    server.bind(addr("127.0.0.1:0"), TcpFlags::empty()).unwrap();
    server.listen(4, |_, _| {}).unwrap();
    let token = Rc::new(());
    let t = token.clone();
    let err = server
        .write("x", move |_, _| {
            let _ = &t;
        })
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL, "{err:?}");
    assert_eq!(Rc::strong_count(&token), 1);
    server.close();
    let t = token.clone();
    let err = server
        .write("x", move |_, _| {
            let _ = &t;
        })
        .unwrap_err();
    assert_eq!(err.kind(), Category::ClosedHandle, "{err:?}");
    assert_eq!(Rc::strong_count(&token), 1);
    assert!(!lp.run(RunMode::Default).unwrap());
    lp.close().unwrap();
}

/// How a test makes a connected socket blocking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MakeBlocking {
    /// `set_blocking(true)`.
    SetBlocking,
    /// Through its number from `fileno`, as a caller holding it may.
    Fileno,
    /// Given to a child as its stdout (libuv makes it blocking for the child, and
    /// the parent's stream shares the mode).
    Spawn,
}

/// A connected or accepted socket starts reading without asking the system for its
/// mode (libuv made it non-blocking, and nobody else has it); once it is handed out
/// and made blocking (by `set_blocking(true)`, through its number from `fileno`, by
/// a spawn that gives it to a child), `read_start` checks the mode again and refuses
/// the blocking socket (`EINVAL`), on the client and on the accepted side alike;
/// `set_blocking(false)` lets it read again.
#[test]
fn a_connected_or_accepted_socket_made_blocking_is_refused_for_reading() {
    for way in [
        MakeBlocking::SetBlocking,
        MakeBlocking::Fileno,
        MakeBlocking::Spawn,
    ] {
        let lp = Loop::new().unwrap();
        let done = counter();
        let d = done.clone();
        let lh = lp.handle();
        connected_pair(&lp, move |client, server| {
            for s in [&client, &server] {
                match way {
                    MakeBlocking::SetBlocking => s.set_blocking(true).unwrap(),
                    MakeBlocking::Fileno => {
                        let fd = s.fileno().unwrap();
                        // SAFETY: `fd` is the open socket of `s`; only its status
                        // flags change.
                        unsafe {
                            let flags = libc::fcntl(fd, libc::F_GETFL);
                            assert_eq!(
                                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK),
                                0
                            );
                        }
                    }
                    MakeBlocking::Spawn => {
                        let opts = uv::ProcessOptions::new("/bin/sh")
                            .args(["-c", "exit 0"])
                            .stdout(uv::Stdio::stream(s));
                        let p = uv::Process::spawn(&lh, &opts, |p, _, _| p.close()).unwrap();
                        drop(p);
                    }
                }
                let fd = s.as_raw_fd();
                assert!(!uv_tests::net::nonblocking(fd), "{way:?}: blocking now");
                let err = s.read_start(|_, _| {}).unwrap_err();
                assert_eq!(err.code(), StatusCode::EINVAL, "{way:?}: {err:?}");
                s.set_blocking(false).unwrap();
                assert!(uv_tests::net::nonblocking(fd));
                if way == MakeBlocking::Spawn {
                    // The child shares the socket and may make it blocking again.
                    let err = s.read_start(|_, _| {}).unwrap_err();
                    assert_eq!(err.code(), StatusCode::EINVAL, "{way:?}: {err:?}");
                } else {
                    s.read_start(|_, _| {}).unwrap();
                }
                s.close();
            }
            bump(&d);
        });
        lp.run(RunMode::Default).unwrap();
        assert_eq!(done.get(), 1, "{way:?}");
        lp.close().unwrap();
    }
}

/// A socket connected or accepted by the crate is non-blocking and starts reading
/// (no check of its mode refuses it), on both sides.
#[test]
fn connected_and_accepted_sockets_are_non_blocking_and_read() {
    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    connected_pair(&lp, move |client, server| {
        assert!(
            uv_tests::net::nonblocking(client.as_raw_fd())
                && uv_tests::net::nonblocking(server.as_raw_fd())
        );
        server
            .read_start(move |s, data| match data {
                Ok(b) => g.borrow_mut().extend_from_slice(b),
                Err(_) => s.close(),
            })
            .unwrap();
        client.read_start(|c, _| c.close()).unwrap();
        client
            .write(b"hi", |c, r| {
                r.unwrap();
                c.shutdown(|_, r| r.unwrap()).unwrap();
            })
            .unwrap();
    });
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&got.borrow()[..], b"hi");
    lp.close().unwrap();
}
