//! UDP on loopback: send and receive, try_send, connect, options, multicast and
//! broadcast where the machine's network allows them.

use std::cell::RefCell;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use uv::{Category, Loop, Membership, RunMode, StatusCode, Udp, UdpFlags};
use uv_tests::net::udp_bound_to as bound;

#[test]
fn a_datagram_goes_from_one_socket_to_another() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr) = bound(&lp, "127.0.0.1:0");
    let (tx, tx_addr) = bound(&lp, "127.0.0.1:0");
    type Received = Vec<(Vec<u8>, Option<SocketAddr>, UdpFlags)>;
    let got: Rc<RefCell<Received>> = Rc::default();
    let g = got.clone();
    rx.recv_start(move |u, d| {
        let d = d.unwrap();
        g.borrow_mut().push((d.data.to_vec(), d.addr, d.flags));
        u.close();
    })
    .unwrap();
    let sent = Rc::new(RefCell::new(None));
    let s = sent.clone();
    tx.send("hello", Some(rx_addr), move |u, r| {
        *s.borrow_mut() = Some(r);
        u.close();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*sent.borrow(), Some(Ok(())));
    assert_eq!(
        *got.borrow(),
        vec![(b"hello".to_vec(), Some(tx_addr), UdpFlags::empty())]
    );
}

#[test]
fn empty_datagrams_and_several_buffers() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr) = bound(&lp, "127.0.0.1:0");
    let (tx, _) = bound(&lp, "127.0.0.1:0");
    let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let g = got.clone();
    rx.recv_start(move |u, d| {
        g.borrow_mut().push(d.unwrap().data.to_vec());
        if g.borrow().len() == 2 {
            u.close();
        }
    })
    .unwrap();
    tx.send(Vec::<u8>::new(), Some(rx_addr), |_, r| r.unwrap())
        .unwrap();
    tx.send(
        vec![b"ab".to_vec(), b"cd".to_vec()],
        Some(rx_addr),
        |u, r| {
            r.unwrap();
            u.close();
        },
    )
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*got.borrow(), vec![Vec::new(), b"abcd".to_vec()]);
}

#[test]
fn try_send_and_connected_sockets() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr) = bound(&lp, "127.0.0.1:0");
    let tx = Udp::new(&lp).unwrap();
    // No socket yet: EBADF; bound but not connected: no peer.
    assert_eq!(tx.peer_addr().unwrap_err().code(), StatusCode::EBADF);
    tx.bind("127.0.0.1:0".parse().unwrap(), UdpFlags::empty())
        .unwrap();
    assert_eq!(tx.peer_addr().unwrap_err().code(), StatusCode::ENOTCONN);
    tx.connect(rx_addr).unwrap();
    assert_eq!(tx.peer_addr().unwrap(), rx_addr);
    assert_eq!(tx.connect(rx_addr).unwrap_err().code(), StatusCode::EISCONN);
    assert_eq!(tx.try_send(b"one", None).unwrap(), 3);
    // A connected socket refuses another destination.
    assert_eq!(
        tx.try_send(b"x", Some(rx_addr)).unwrap_err().code(),
        StatusCode::EISCONN
    );
    tx.disconnect().unwrap();
    assert_eq!(tx.peer_addr().unwrap_err().code(), StatusCode::ENOTCONN);
    assert_eq!(tx.try_send(b"two", Some(rx_addr)).unwrap(), 3);
    let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let g = got.clone();
    rx.recv_start(move |u, d| {
        g.borrow_mut().push(d.unwrap().data.to_vec());
        if g.borrow().len() == 2 {
            u.close();
        }
    })
    .unwrap();
    tx.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*got.borrow(), vec![b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn options_and_errors() {
    let lp = Loop::new().unwrap();
    let (u, _) = bound(&lp, "127.0.0.1:0");
    u.set_ttl(10).unwrap();
    u.set_broadcast(true).unwrap();
    u.set_multicast_loop(true).unwrap();
    u.set_multicast_ttl(10).unwrap();
    assert_eq!(u.set_ttl(0).unwrap_err().code(), StatusCode::EINVAL);
    assert_eq!(u.send_queue_size().unwrap(), 0);
    assert_eq!(u.send_queue_count().unwrap(), 0);
    // An interface address of the other family: EINVAL, not a panic.
    let err = u
        .set_membership(
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).into(),
            Some(Ipv4Addr::LOCALHOST.into()),
            Membership::JoinGroup,
        )
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    let err = u
        .set_source_membership(
            Ipv4Addr::new(232, 1, 1, 1).into(),
            None,
            Ipv6Addr::LOCALHOST.into(),
            Membership::JoinGroup,
        )
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    // A second socket on the same address: EADDRINUSE, an Address error.
    let addr = u.local_addr().unwrap();
    let other = Udp::new(&lp).unwrap();
    let err = other.bind(addr, UdpFlags::empty()).unwrap_err();
    assert_eq!(err.code(), StatusCode::EADDRINUSE);
    assert!(err.is(Category::Address));
    u.close();
    assert_eq!(u.set_ttl(1).unwrap_err().kind(), Category::ClosedHandle);
    u.recv_stop().unwrap();
}

/// Multicast: join 239.255.0.1 and receive our own datagram with loopback on. A
/// machine without a multicast route refuses the join or the send (ENODEV,
/// ENETUNREACH...); then the test checks that the refusal is a network error.
#[test]
fn multicast_loop_receives_own_datagram() {
    let lp = Loop::new().unwrap();
    let (u, addr) = bound(&lp, "0.0.0.0:0");
    u.set_multicast_loop(true).unwrap();
    u.set_multicast_ttl(10).unwrap();
    if let Err(e) = u.set_membership(
        Ipv4Addr::new(239, 255, 0, 1).into(),
        Some(Ipv4Addr::LOCALHOST.into()),
        Membership::JoinGroup,
    ) {
        assert!(
            matches!(e.code(), StatusCode::ENODEV | StatusCode::EADDRNOTAVAIL),
            "{e}"
        );
        return;
    }
    u.set_multicast_interface(Some(Ipv4Addr::LOCALHOST.into()))
        .unwrap();
    let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let g = got.clone();
    u.recv_start(move |u, d| {
        g.borrow_mut().push(d.unwrap().data.to_vec());
        u.close();
    })
    .unwrap();
    let group: SocketAddr = format!("239.255.0.1:{}", addr.port()).parse().unwrap();
    u.send("multi", Some(group), |_, r| r.unwrap()).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*got.borrow(), vec![b"multi".to_vec()]);
}

#[test]
fn a_panic_in_the_receive_callback_propagates() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr) = bound(&lp, "127.0.0.1:0");
    let (tx, _) = bound(&lp, "127.0.0.1:0");
    rx.recv_start(|_, _| panic!("recv boom")).unwrap();
    tx.send("x", Some(rx_addr), |u, r| {
        r.unwrap();
        u.close();
    })
    .unwrap();
    let p = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"recv boom"));
    rx.close();
    lp.run(RunMode::Default).unwrap();
    assert!(rx.is_closed() && tx.is_closed());
}

#[test]
fn a_panic_in_the_send_callback_propagates() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr) = bound(&lp, "127.0.0.1:0");
    let (tx, _) = bound(&lp, "127.0.0.1:0");
    tx.send("x", Some(rx_addr), |_, _| panic!("send boom"))
        .unwrap();
    let p = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"send boom"));
    rx.close();
    tx.close();
    lp.run(RunMode::Default).unwrap();
}

/// Python's `family`: none before the socket exists, set once it is opened or bound.
#[test]
fn family_is_set_once_there_is_a_socket() {
    let lp = Loop::new().unwrap();
    let u = Udp::new(&lp).unwrap();
    assert_eq!(u.family().unwrap(), None);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    u.open(sock).unwrap();
    assert_eq!(u.family().unwrap(), Some(uv::AddressFamily::Inet));
    assert_eq!(u.local_addr().unwrap(), addr);
}

/// Broadcast needs `set_broadcast(true)`: without it the kernel refuses (EACCES);
/// with it the datagram goes, or, on a machine with no broadcast route,
/// fails as a network error.
#[test]
fn broadcast_needs_the_option() {
    let lp = Loop::new().unwrap();
    let (u, _) = bound(&lp, "0.0.0.0:0");
    let to: SocketAddr = "255.255.255.255:9".parse().unwrap();
    let err = u.try_send(b"x", Some(to)).unwrap_err();
    assert!(
        matches!(err.code(), StatusCode::EACCES | StatusCode::ENETUNREACH),
        "{err}"
    );
    u.set_broadcast(true).unwrap();
    match u.try_send(b"x", Some(to)) {
        Ok(n) => assert_eq!(n, 1),
        Err(e) => assert!(
            e.is(Category::Network) || e.code() == StatusCode::EAGAIN,
            "{e}"
        ),
    }
}

/// `with_flags` passes creation flags: with RECVMMSG, Linux receives in batches and
/// datagrams still arrive whole.
#[cfg(target_os = "linux")]
#[test]
fn recvmmsg_is_a_creation_flag() {
    let lp = Loop::new().unwrap();
    let rx = Udp::with_flags(&lp, uv::AddressFamily::Inet, UdpFlags::RECVMMSG).unwrap();
    assert!(rx.using_recvmmsg().unwrap());
    rx.bind("127.0.0.1:0".parse().unwrap(), UdpFlags::empty())
        .unwrap();
    let rx_addr = rx.local_addr().unwrap();
    let plain = Udp::new(&lp).unwrap();
    assert!(!plain.using_recvmmsg().unwrap());
    let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let g = got.clone();
    rx.recv_start(move |u, d| {
        g.borrow_mut().push(d.unwrap().data.to_vec());
        if g.borrow().len() == 3 {
            u.close();
        }
    })
    .unwrap();
    let (tx, _) = bound(&lp, "127.0.0.1:0");
    for m in ["a", "bb", "ccc"] {
        tx.try_send(m.as_bytes(), Some(rx_addr)).unwrap();
    }
    tx.close();
    plain.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        *got.borrow(),
        vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]
    );
    // An unknown family is refused.
    let err = Udp::with_flags(&lp, uv::AddressFamily::Other(99), UdpFlags::empty()).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
}

/// `open_with_flags` sets SO_REUSEADDR / SO_REUSEPORT on the socket it takes, refuses
/// other flags (handing the socket back) and a handle that has a socket already.
#[cfg(target_os = "linux")]
#[test]
fn open_with_flags_sets_the_reuse_options() {
    use std::os::fd::AsRawFd;
    let opt = |fd: i32, name: i32| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid for the call; `fd` is an open socket.
        let rc =
            unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&raw mut v).cast(), &mut len) };
        assert_eq!(rc, 0);
        v
    };
    let lp = Loop::new().unwrap();
    let u = Udp::new(&lp).unwrap();
    let bad = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rejected = u.open_with_flags(bad, UdpFlags::IPV6ONLY).unwrap_err();
    assert_eq!(rejected.error().code(), StatusCode::EINVAL);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let fd = sock.as_raw_fd();
    assert_eq!(opt(fd, libc::SO_REUSEADDR), 0);
    u.open_with_flags(sock, UdpFlags::REUSEADDR | UdpFlags::REUSEPORT)
        .unwrap();
    assert_eq!(u.fileno().unwrap(), fd);
    assert_eq!(opt(fd, libc::SO_REUSEADDR), 1);
    assert_eq!(opt(fd, libc::SO_REUSEPORT), 1);
    assert_eq!(u.local_addr().unwrap(), addr);
    let again = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rejected = u.open_with_flags(again, UdpFlags::empty()).unwrap_err();
    assert_eq!(rejected.error().code(), StatusCode::EBUSY);
    u.close();
    lp.run(RunMode::Default).unwrap();
}

/// `try_send_many`: several datagrams in one call reach their receivers in order;
/// the count is the datagrams sent; an empty slice is EINVAL; a connected handle
/// takes `None` addresses and refuses given ones (EISCONN).
#[test]
fn try_send_many_sends_every_datagram() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr) = bound(&lp, "127.0.0.1:0");
    let (tx, _) = bound(&lp, "127.0.0.1:0");
    let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let g = got.clone();
    rx.recv_start(move |h, r| {
        let d = r.unwrap();
        if d.data.is_empty() && d.addr.is_none() {
            return;
        }
        g.borrow_mut().push(d.data.to_vec());
        if g.borrow().len() == 5 {
            h.close();
        }
    })
    .unwrap();
    let payloads: [&[u8]; 3] = [b"one", b"", b"three"];
    let batch: Vec<(&[u8], Option<SocketAddr>)> =
        payloads.iter().map(|p| (*p, Some(rx_addr))).collect();
    assert_eq!(tx.try_send_many(&batch).unwrap(), 3);
    assert_eq!(
        tx.try_send_many(&[]).unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(
        tx.try_send_many(&[(b"x", None)]).unwrap_err().code(),
        StatusCode::EDESTADDRREQ
    );
    let c = Udp::new(&lp).unwrap();
    c.connect(rx_addr).unwrap();
    assert_eq!(
        c.try_send_many(&[(b"x", Some(rx_addr))])
            .unwrap_err()
            .code(),
        StatusCode::EISCONN
    );
    assert_eq!(
        c.try_send_many(&[(b"four", None), (b"five", None)])
            .unwrap(),
        2
    );
    c.close();
    tx.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        *got.borrow(),
        vec![
            b"one".to_vec(),
            Vec::new(),
            b"three".to_vec(),
            b"four".to_vec(),
            b"five".to_vec()
        ]
    );
}

/// Small datagrams (kept inside the send request, not in a buffer of their own)
/// sent from a send callback are queued by libuv and sent later, from the socket's
/// watcher: each goes out with its own bytes, read where the request keeps them.
#[test]
fn small_datagrams_queued_from_a_send_callback_keep_their_bytes() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr) = bound(&lp, "127.0.0.1:0");
    let (tx, _) = bound(&lp, "127.0.0.1:0");
    const N: usize = 20;
    let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let g = got.clone();
    rx.recv_start(move |u, d| {
        let d = d.unwrap();
        if d.is_drained() {
            return;
        }
        g.borrow_mut().push(d.data.to_vec());
        if g.borrow().len() == N + 1 {
            u.close();
        }
    })
    .unwrap();
    let done = Rc::new(RefCell::new(Vec::new()));
    let d = done.clone();
    tx.send("first", Some(rx_addr), move |u, r| {
        r.unwrap();
        // Inside a send callback libuv queues new sends instead of sending them
        // in the call.
        for i in 0..N {
            let msg = format!("small #{i:02}");
            let d = d.clone();
            u.send(msg.as_str(), Some(rx_addr), move |u, r| {
                d.borrow_mut().push(r);
                if d.borrow().len() == N {
                    u.close();
                }
            })
            .unwrap();
        }
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(done.borrow().len(), N);
    assert!(done.borrow().iter().all(|r| r.is_ok()));
    let mut want = vec![b"first".to_vec()];
    want.extend((0..N).map(|i| format!("small #{i:02}").into_bytes()));
    assert_eq!(*got.borrow(), want);
}

/// What a receiver got: each datagram's bytes and sender.
type Received = Vec<(Vec<u8>, Option<SocketAddr>)>;

/// Starts `rx` receiving: each datagram's bytes and sender are kept (drained
/// events are not), and `rx` closes after the `n`th.
fn collect(rx: &Udp, n: usize) -> Rc<RefCell<Received>> {
    let got: Rc<RefCell<Received>> = Rc::default();
    let g = got.clone();
    rx.recv_start(move |u, d| {
        let d = d.unwrap();
        if d.is_drained() {
            return;
        }
        g.borrow_mut().push((d.data.to_vec(), d.addr));
        if g.borrow().len() == n {
            u.close();
        }
    })
    .unwrap();
    got
}

/// Every kind of send data, over IPv4 and IPv6: each datagram arrives with its own
/// bytes and the sender's address; shared bytes are let go once their send
/// completed, and at once when a send is refused (its callback never runs).
#[test]
fn every_kind_of_data_over_both_families() {
    for host in ["127.0.0.1:0", "[::1]:0"] {
        let lp = Loop::new().unwrap();
        let (rx, rx_addr) = bound(&lp, host);
        let (tx, tx_addr) = bound(&lp, host);
        assert_eq!(rx_addr.is_ipv6(), host.starts_with('['));
        let got = collect(&rx, 8);
        let shared: Rc<[u8]> = Rc::from(&b"shared"[..]);
        let sync: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"shared sync"[..]);
        let long = [b'L'; 40];
        let done = Rc::new(RefCell::new(Vec::new()));
        let sends: Vec<uv::WriteData> = vec![
            uv::WriteData::Static(b"static"),
            b"owned".to_vec().into(),
            shared.clone().into(),
            sync.clone().into(),
            "inline".into(),
            long[..].into(),
            vec![b"ma".to_vec(), b"ny".to_vec()].into(),
        ];
        let tried = Rc::new(RefCell::new(None));
        for data in sends {
            let (d, t) = (done.clone(), tried.clone());
            tx.send(data, Some(rx_addr), move |u, r| {
                d.borrow_mut().push(r);
                // The last send completed: nothing is queued, so `try_send` sends.
                if d.borrow().len() == 7 {
                    *t.borrow_mut() = Some(u.try_send(b"tried", Some(rx_addr)));
                }
            })
            .unwrap();
        }
        // Refused at once (no destination on an unconnected socket): the data is
        // dropped in the call and the callback never runs.
        let refused = tx
            .send(shared.clone(), None, |_, _| {
                panic!("a refused send's callback ran")
            })
            .unwrap_err();
        assert_eq!(refused.code(), StatusCode::EDESTADDRREQ);
        assert_eq!(
            Rc::strong_count(&shared),
            2,
            "held by its send in flight only"
        );
        lp.run(RunMode::Default).unwrap();
        tx.close();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(*done.borrow(), vec![Ok(()); 7]);
        assert_eq!(*tried.borrow(), Some(Ok(5)));
        assert_eq!(Rc::strong_count(&shared), 1);
        assert_eq!(std::sync::Arc::strong_count(&sync), 1);
        let want: Received = [
            &b"static"[..],
            b"owned",
            b"shared",
            b"shared sync",
            b"inline",
            &long[..],
            b"many",
            b"tried",
        ]
        .iter()
        .map(|b| (b.to_vec(), Some(tx_addr)))
        .collect();
        assert_eq!(*got.borrow(), want, "{host}");
    }
}

/// The largest IPv4 datagram (65,507 bytes) arrives whole, in the loop's read
/// buffer (libuv asks for 64 KiB per datagram), with no `PARTIAL` flag; so does a
/// small one read into the same buffer after it.
#[test]
fn the_largest_datagram_arrives_whole() {
    let lp = Loop::new().unwrap();
    let (rx, rx_addr) = bound(&lp, "127.0.0.1:0");
    let (tx, _) = bound(&lp, "127.0.0.1:0");
    let big = uv_tests::net::pattern(65_507);
    type Received = Vec<(Vec<u8>, UdpFlags)>;
    let got: Rc<RefCell<Received>> = Rc::default();
    let g = got.clone();
    rx.recv_start(move |u, d| {
        let d = d.unwrap();
        if d.is_drained() {
            return;
        }
        g.borrow_mut().push((d.data.to_vec(), d.flags));
        if g.borrow().len() == 2 {
            u.close();
        }
    })
    .unwrap();
    tx.send(big.clone(), Some(rx_addr), |_, r| r.unwrap())
        .unwrap();
    tx.send("small", Some(rx_addr), |u, r| {
        r.unwrap();
        u.close();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    let got = got.borrow();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0.len(), 65_507);
    assert!(got[0].0 == big, "the big datagram's bytes");
    assert_eq!(got[0].1, UdpFlags::empty());
    assert_eq!(got[1], (b"small".to_vec(), UdpFlags::empty()));
}

/// A send on a closed handle is a `ClosedHandle` error and lets go of its data and
/// its callback at once (the callback never runs).
#[test]
fn send_on_a_closed_handle_drops_its_data_and_callback() {
    let lp = Loop::new().unwrap();
    let (u, addr) = bound(&lp, "127.0.0.1:0");
    u.close();
    let data: Rc<[u8]> = Rc::from(&b"kept?"[..]);
    let token = Rc::new(());
    let t = token.clone();
    let err = u
        .send(data.clone(), Some(addr), move |_, _| {
            let _ = &t;
            panic!("the callback of a refused send ran");
        })
        .unwrap_err();
    assert_eq!(err.kind(), Category::ClosedHandle);
    assert_eq!(Rc::strong_count(&data), 1);
    assert_eq!(Rc::strong_count(&token), 1);
    lp.run(RunMode::Default).unwrap();
}

/// What a connected socket receives after sending to a port nobody listens on:
/// the refusal (an error without an address, read on the socket's error), and with
/// `LINUX_RECVERR` also the error read from the error queue, which comes with the
/// address of who refused. The datagrams and drained events around them are
/// recorded as they come, so that the order is checked too.
fn refused_events(flags: UdpFlags) -> Vec<(Option<StatusCode>, Option<SocketAddr>, bool)> {
    let lp = Loop::new().unwrap();
    // A port with nobody: bound, then let go.
    let nobody = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let u = Udp::new(&lp).unwrap();
    u.bind("127.0.0.1:0".parse().unwrap(), flags).unwrap();
    u.connect(nobody).unwrap();
    let got: Rc<RefCell<Vec<_>>> = Rc::default();
    let g = got.clone();
    u.recv_start(move |u, r| {
        let e = match r {
            Ok(d) => {
                // Every byte is read (none are expected: no datagram comes).
                let sum: u64 = d.data.iter().map(|&b| u64::from(b)).sum();
                assert_eq!((d.data.len(), sum), (0, 0));
                g.borrow_mut().push((None, d.addr, d.is_drained()));
                return;
            }
            Err(e) => e,
        };
        g.borrow_mut().push((Some(e.code()), None, false));
        // Whatever else comes in this turn of the loop is recorded; the timer
        // closes the socket after it.
        let u = u.clone();
        let t = uv::Timer::new(&u.loop_()).unwrap();
        t.start(
            std::time::Duration::ZERO,
            std::time::Duration::ZERO,
            move |t| {
                u.close();
                t.close();
            },
        )
        .unwrap();
    })
    .unwrap();
    u.send(&b"anyone?"[..], None, |_, r| r.unwrap()).unwrap();
    lp.run(RunMode::Default).unwrap();
    let got = got.borrow().clone();
    got
}

#[test]
fn a_refused_destination_is_an_error_event() {
    // The error, then the drained event of libuv's read of the error queue.
    assert_eq!(
        refused_events(UdpFlags::empty()),
        vec![
            (Some(StatusCode::ECONNREFUSED), None, false),
            (None, None, true)
        ]
    );
}

/// libuv reports the error read from the error queue with a count that is the
/// errno negated in unsigned 32-bit arithmetic: it is an error, not a datagram of
/// four billion bytes.
///
/// Used to happen: `Ok` with a 4,294,967,185-byte `data` borrowed from the 64 KiB
/// buffer (reading it read past the buffer's end).
#[test]
fn with_linux_recverr_the_error_queue_read_is_an_error_too() {
    assert_eq!(
        refused_events(UdpFlags::LINUX_RECVERR),
        vec![
            (Some(StatusCode::ECONNREFUSED), None, false),
            (Some(StatusCode::ECONNREFUSED), None, false),
            (None, None, true)
        ]
    );
}

/// `SockAddr` holds the address it was made from, flow info and scope id
/// included, and compares, hashes and prints as that address.
#[test]
fn sock_addr_keeps_the_address() {
    use std::collections::HashSet;
    use std::net::{SocketAddrV4, SocketAddrV6};
    let v4: SocketAddr = "192.0.2.7:4321".parse().unwrap();
    let v6 = SocketAddr::V6(SocketAddrV6::new(
        "2001:db8::1".parse().unwrap(),
        65535,
        0x12345,
        3,
    ));
    for a in [
        v4,
        v6,
        "0.0.0.0:0".parse().unwrap(),
        "[::]:0".parse().unwrap(),
    ] {
        let s = uv::SockAddr::from(a);
        assert_eq!(s.to_std(), a);
        assert_eq!(SocketAddr::from(s), a);
        assert_eq!(uv::SockAddr::new(a), s);
        assert_eq!(format!("{s:?}"), format!("SockAddr({a})"));
        assert!(!s.as_ptr().is_null());
    }
    let SocketAddr::V4(v4s) = v4 else {
        unreachable!()
    };
    let SocketAddr::V6(v6s) = v6 else {
        unreachable!()
    };
    assert_eq!(uv::SockAddr::from(v4s), uv::SockAddr::from(v4));
    assert_eq!(uv::SockAddr::from(v6s), uv::SockAddr::from(v6));
    assert_ne!(uv::SockAddr::from(v4), uv::SockAddr::from(v6));
    assert_ne!(
        uv::SockAddr::from(v4),
        uv::SockAddr::from(SocketAddrV4::new(*v4s.ip(), 4322))
    );
    let set: HashSet<uv::SockAddr> = [v4, v6, v4].into_iter().map(uv::SockAddr::from).collect();
    assert_eq!(set.len(), 2);
}

/// `send` and `try_send` to a `&SockAddr` deliver as to the `SocketAddr` it was
/// made from, over both families, and the receiver sees the same sender.
#[test]
fn send_and_try_send_take_a_sock_addr() {
    for host in ["127.0.0.1:0", "[::1]:0"] {
        let lp = Loop::new().unwrap();
        let (rx, rx_addr) = bound(&lp, host);
        let (tx, tx_addr) = bound(&lp, host);
        let to = uv::SockAddr::from(rx_addr);
        let got = collect(&rx, 4);
        assert_eq!(tx.try_send(b"tried", &to).unwrap(), 5);
        assert_eq!(tx.try_send(b"std", Some(rx_addr)).unwrap(), 3);
        let done = Rc::new(RefCell::new(Vec::new()));
        for data in [&b"static"[..], b"owned"] {
            let d = done.clone();
            let data: uv::WriteData = if data == b"static" {
                uv::WriteData::Static(b"static")
            } else {
                data.to_vec().into()
            };
            tx.send(data, &to, move |_, r| d.borrow_mut().push(r))
                .unwrap();
        }
        lp.run(RunMode::Default).unwrap();
        tx.close();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(*done.borrow(), vec![Ok(()), Ok(())], "{host}");
        let want: Received = [&b"tried"[..], b"std", b"static", b"owned"]
            .iter()
            .map(|b| (b.to_vec(), Some(tx_addr)))
            .collect();
        assert_eq!(*got.borrow(), want, "{host}");
    }
}

/// A `&SockAddr` is refused where its `SocketAddr` is, with the same error: an
/// IPv6 address on an IPv4 socket, any address on a connected socket, a closed
/// handle.
#[test]
fn a_sock_addr_is_refused_as_its_socket_addr() {
    let lp = Loop::new().unwrap();
    let (u, addr) = bound(&lp, "127.0.0.1:0");
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    let std_err = u.try_send(b"x", Some(v6)).unwrap_err();
    let c_err = u.try_send(b"x", &uv::SockAddr::from(v6)).unwrap_err();
    assert_eq!(c_err.code(), std_err.code());
    assert_eq!(c_err.kind(), std_err.kind());
    // `send` queues the datagram; the system refuses it when it goes out, and the
    // callback gets the same error either way.
    let results = Rc::new(RefCell::new(Vec::new()));
    let (r1, r2) = (results.clone(), results.clone());
    u.send(b"x".to_vec(), Some(v6), move |_, r| r1.borrow_mut().push(r))
        .unwrap();
    u.send(b"x".to_vec(), &uv::SockAddr::from(v6), move |_, r| {
        r2.borrow_mut().push(r)
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    let results = results.borrow();
    assert_eq!(results.len(), 2);
    let std_send = results[0].clone().unwrap_err();
    assert_eq!(results[1].clone().unwrap_err().code(), std_send.code());
    assert_eq!(std_send.code(), std_err.code());

    // Connected: any destination is EISCONN.
    let (peer, peer_addr) = bound(&lp, "127.0.0.1:0");
    u.connect(peer_addr).unwrap();
    let to = uv::SockAddr::from(peer_addr);
    assert_eq!(
        u.try_send(b"x", &to).unwrap_err().code(),
        StatusCode::EISCONN
    );
    assert_eq!(
        u.send(uv::WriteData::Static(b"x"), &to, |_, _| ())
            .unwrap_err()
            .code(),
        StatusCode::EISCONN
    );
    // Closed: a closed-handle error, as with a SocketAddr.
    u.close();
    peer.close();
    assert_eq!(
        u.try_send(b"x", &to).unwrap_err().kind(),
        Category::ClosedHandle
    );
    assert_eq!(
        u.send(
            uv::WriteData::Static(b"x"),
            &uv::SockAddr::from(addr),
            |_, _| ()
        )
        .unwrap_err()
        .kind(),
        Category::ClosedHandle
    );
    lp.run(RunMode::Default).unwrap();
}

thread_local! {
    static ZST_SEEN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A receive callback that replaces itself (`recv_stop`, then `recv_start` with a
/// callback of another type) from inside its call: the datagrams already read or
/// queued go to the new one, each callback sees its own captures, down to a
/// capture-free one; no datagram is lost or shown twice.
#[test]
fn a_receive_callback_replaced_by_another_type_gets_the_rest() {
    let lp = Loop::new().unwrap();
    let (u, addr) = bound(&lp, "127.0.0.1:0");
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..8u8 {
        tx.send_to(&[i; 10], addr).unwrap();
    }
    let first: Rc<RefCell<Vec<u8>>> = Rc::default();
    let second: Rc<RefCell<Vec<(u8, u64)>>> = Rc::default();
    let (f, s) = (first.clone(), second.clone());
    let label = String::from("first");
    u.recv_start(move |u, d| {
        let d = d.unwrap();
        if d.is_drained() {
            return;
        }
        assert_eq!(label, "first");
        f.borrow_mut().push(d.data[0]);
        if f.borrow().len() == 2 {
            u.recv_stop().unwrap();
            let s = s.clone();
            let mut n = 100u64;
            u.recv_start(move |u, d| {
                let d = d.unwrap();
                if d.is_drained() {
                    return;
                }
                n += 1;
                s.borrow_mut().push((d.data[0], n));
                if n == 103 {
                    u.recv_stop().unwrap();
                    // Captures nothing: the callback is zero-sized.
                    u.recv_start(|u, d| {
                        let d = d.unwrap();
                        if d.is_drained() {
                            return;
                        }
                        let all = ZST_SEEN.with(|z| {
                            z.borrow_mut().push(d.data[0]);
                            z.borrow().len()
                        });
                        if all == 3 {
                            u.close();
                        }
                    })
                    .unwrap();
                }
            })
            .unwrap();
        }
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*first.borrow(), vec![0, 1]);
    assert_eq!(*second.borrow(), vec![(2, 101), (3, 102), (4, 103)]);
    assert_eq!(ZST_SEEN.with(|z| z.borrow().clone()), vec![5, 6, 7]);
}

/// `recv_start` on a socket that receives is refused (`EALREADY`) and changes
/// nothing: the callback given first, of another type, keeps getting the
/// datagrams, and the refused one is dropped at once.
#[test]
fn a_refused_recv_start_keeps_the_callback_that_receives() {
    let lp = Loop::new().unwrap();
    let (u, addr) = bound(&lp, "127.0.0.1:0");
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let g = got.clone();
    u.recv_start(move |u, d| {
        let d = d.unwrap();
        if d.is_drained() {
            return;
        }
        g.borrow_mut().push(d.data[0]);
        if g.borrow().len() == 3 {
            u.close();
        }
    })
    .unwrap();
    let token = Rc::new(7u64);
    let t = token.clone();
    let err = u
        .recv_start(move |_, _| panic!("the refused callback ran ({t})"))
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EALREADY);
    assert_eq!(
        Rc::strong_count(&token),
        1,
        "the refused callback was dropped"
    );
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..3u8 {
        tx.send_to(&[i], addr).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*got.borrow(), vec![0, 1, 2]);
}
