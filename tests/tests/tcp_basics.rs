//! The generated Tcp handle's settings, and the base-handle socket options it makes
//! reachable: buffer sizes read back as set (Linux's doubling hidden), fileno.

#![cfg(unix)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;
use uv::Stream as _;

use uv::{AddressFamily, Category, HandleType, Loop, RunMode, StatusCode, Tcp};
use uv_tests::net::sockopt;

fn bound_tcp(lp: &Loop) -> (Tcp, i32) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = listener.as_raw_fd();
    let tcp = Tcp::new(lp).unwrap();
    // libuv owns the socket from now on and closes it with the handle.
    tcp.open(listener).unwrap();
    (tcp, fd)
}

#[test]
fn buffer_sizes_read_back_as_set() {
    let lp = Loop::new().unwrap();
    let (tcp, _) = bound_tcp(&lp);
    for size in [262_144, 65_536] {
        tcp.set_send_buffer_size(size).unwrap();
        assert_eq!(tcp.send_buffer_size().unwrap(), size);
        tcp.set_recv_buffer_size(size).unwrap();
        assert_eq!(tcp.recv_buffer_size().unwrap(), size);
    }
    tcp.close();
    assert_eq!(
        tcp.send_buffer_size().unwrap_err().kind(),
        Category::ClosedHandle
    );
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn fileno_is_the_opened_socket() {
    let lp = Loop::new().unwrap();
    let (tcp, fd) = bound_tcp(&lp);
    assert_eq!(tcp.fileno().unwrap(), fd);
    assert_eq!(tcp.handle_type(), HandleType::Tcp);
}

#[test]
fn settings_succeed_on_an_open_socket() {
    let lp = Loop::new().unwrap();
    let (tcp, _) = bound_tcp(&lp);
    tcp.set_nodelay(true).unwrap();
    tcp.set_keepalive(true, Duration::from_secs(10)).unwrap();
    tcp.set_keepalive(false, Duration::from_secs(10)).unwrap();
    tcp.set_simultaneous_accepts(true).unwrap();
}

/// The keep-alive delay is whole seconds: at least one when turning it on, at most
/// `u32::MAX`; the rest is `EINVAL`, with or without a socket.
#[test]
fn keepalive_delay_is_checked() {
    let lp = Loop::new().unwrap();
    let (bound, _) = bound_tcp(&lp);
    let unbound = Tcp::new(&lp).unwrap();
    for tcp in [&bound, &unbound] {
        // The fraction is dropped: 1.9 s is 1 s.
        tcp.set_keepalive(true, Duration::from_millis(1900))
            .unwrap();
        tcp.set_keepalive(false, Duration::ZERO).unwrap();
        for (enable, delay) in [
            (true, Duration::ZERO),
            (true, Duration::from_millis(999)),
            (true, Duration::from_secs(u64::from(u32::MAX) + 1)),
            (false, Duration::MAX),
        ] {
            let err = tcp.set_keepalive(enable, delay).unwrap_err();
            assert_eq!(err.code(), StatusCode::EINVAL, "{enable} {delay:?}");
        }
    }
}

#[test]
fn a_handle_with_a_family_has_a_socket_at_once() {
    let lp = Loop::new().unwrap();
    let tcp = Tcp::with_family(&lp, AddressFamily::Inet6).unwrap();
    assert!(tcp.fileno().unwrap() >= 0);
    // Without a family there is no socket yet.
    let plain = Tcp::new(&lp).unwrap();
    assert_eq!(plain.fileno().unwrap_err().code(), StatusCode::EBADF);
    // An unknown family is refused by libuv.
    let err = Tcp::with_family(&lp, AddressFamily::Other(12345)).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
}

#[test]
fn a_negative_socket_is_an_error_not_a_panic() {
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    // SAFETY: `open_raw` refuses a negative descriptor before libuv sees it, so no
    // descriptor is taken over or closed.
    let err = unsafe { tcp.open_raw(-1) }.unwrap_err();
    assert_eq!(err.code(), StatusCode::EBADF);
    assert_eq!(err.operation(), "uv_tcp_open");
}

/// The safe `open` checks the descriptor's kind first and hands it back on refusal.
#[test]
fn open_refuses_what_is_not_a_tcp_socket() {
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    let file = std::fs::File::open("/proc/self/status").unwrap();
    let err = tcp.open(file).unwrap_err();
    assert_eq!(err.error().code(), StatusCode::ENOTSOCK);
    assert_eq!(err.error().operation(), "uv_tcp_open");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_fd = udp.as_raw_fd();
    let err = tcp.open(udp).unwrap_err();
    assert_eq!(err.error().code(), StatusCode::EINVAL);
    // Handed back, still open.
    let back: OwnedFd = err.into_value();
    assert_eq!(back.as_raw_fd(), udp_fd);
    std::net::UdpSocket::from(back).local_addr().unwrap();
    assert_eq!(tcp.fileno().unwrap_err().code(), StatusCode::EBADF);
    tcp.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn settings_after_close_answer_closed_handle() {
    let lp = Loop::new().unwrap();
    let (tcp, _) = bound_tcp(&lp);
    tcp.close();
    // A real TCP socket passes the kind check, so `open` gets to the closed handle.
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    for err in [
        tcp.set_nodelay(true).unwrap_err(),
        tcp.set_keepalive(true, Duration::from_secs(1)).unwrap_err(),
        tcp.open(socket).unwrap_err().error(),
    ] {
        assert_eq!(err.kind(), Category::ClosedHandle);
    }
    lp.run(RunMode::Default).unwrap();
    assert!(tcp.is_closed());
}

/// `close_reset` ends the connection with a reset: the peer reads ECONNRESET.
#[test]
fn close_reset_gives_the_peer_a_reset() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let lp = Loop::new().unwrap();
    let (server, addr) = uv_tests::net::bound_tcp(&lp);
    let lh = lp.handle();
    server
        .listen(4, move |srv, st| {
            st.unwrap();
            let conn = Tcp::new(&lh).unwrap();
            srv.accept_into(&conn).unwrap();
            srv.close();
            conn.close_reset().unwrap();
            // Closing again is refused: the handle is already closing.
            assert_eq!(
                conn.close_reset().unwrap_err().kind(),
                Category::ClosedHandle
            );
        })
        .unwrap();
    let seen: Rc<RefCell<Vec<StatusCode>>> = Rc::default();
    let s = seen.clone();
    let client = Tcp::new(&lp).unwrap();
    client
        .connect(addr, move |c, r| {
            // The reset may come before the connection is reported, or after.
            if let Err(e) = r {
                s.borrow_mut().push(e.code());
                c.close();
                return;
            }
            let s = s.clone();
            c.read_start(move |c, d| {
                s.borrow_mut().push(d.unwrap_err().code());
                c.close();
            })
            .unwrap();
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*seen.borrow(), vec![StatusCode::ECONNRESET]);
}

/// Python's `family`: none before the socket is bound, then the bound family.
#[test]
fn family_follows_the_bound_address() {
    let lp = Loop::new().unwrap();
    let t = Tcp::new(&lp).unwrap();
    assert_eq!(t.family().unwrap(), None);
    t.bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    assert_eq!(t.family().unwrap(), Some(AddressFamily::Inet));
    let t6 = Tcp::new(&lp).unwrap();
    if t6
        .bind("[::1]:0".parse().unwrap(), uv::TcpFlags::IPV6ONLY)
        .is_ok()
    {
        assert_eq!(t6.family().unwrap(), Some(AddressFamily::Inet6));
    }
    t.close();
    assert_eq!(t.family().unwrap_err().kind(), Category::ClosedHandle);
}

/// libuv's test-tcp-keepalive-ex (as far as the socket shows it): the three
/// settings reach the socket; zeros when turning it on are EINVAL; off is off.
#[cfg(target_os = "linux")]
#[test]
fn keepalive_probes_reach_the_socket() {
    let lp = Loop::new().unwrap();
    let (tcp, fd) = bound_tcp(&lp);
    tcp.set_keepalive_probes(true, Duration::from_secs(30), Duration::from_secs(11), 4)
        .unwrap();
    assert_eq!(sockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
    assert_eq!(sockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 30);
    assert_eq!(sockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL), 11);
    assert_eq!(sockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 4);
    for (idle, interval, count) in [(0, 11, 4), (30, 0, 4), (30, 11, 0)] {
        let err = tcp
            .set_keepalive_probes(
                true,
                Duration::from_secs(idle),
                Duration::from_secs(interval),
                count,
            )
            .unwrap_err();
        assert_eq!(err.code(), StatusCode::EINVAL);
    }
    let err = tcp
        .set_keepalive_probes(
            true,
            Duration::from_secs(u64::from(u32::MAX) + 1),
            Duration::from_secs(1),
            1,
        )
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    tcp.set_keepalive_probes(false, Duration::ZERO, Duration::ZERO, 0)
        .unwrap();
    assert_eq!(sockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);
    tcp.close();
    assert_eq!(
        tcp.set_keepalive_probes(false, Duration::ZERO, Duration::ZERO, 0)
            .unwrap_err()
            .kind(),
        Category::ClosedHandle
    );
    lp.run(RunMode::Default).unwrap();
}

/// `Tcp`, `Udp` and `Pipe` from `std` sockets take a `&Loop` as well as a
/// `&LoopHandle`, as the README and the conversions' docs write it
/// (`Tcp::try_from((&lp, listener))`). Only `(&LoopHandle, _)` was implemented, so
/// that form did not compile; the socket keeps its address in the handle now.
#[test]
fn std_sockets_convert_on_a_loop_or_a_loop_handle() {
    let lp = Loop::new().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let tcp = Tcp::try_from((&lp, listener)).unwrap();
    assert_eq!(tcp.local_addr().unwrap(), addr);

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let udp = uv::Udp::try_from((&lp, socket)).unwrap();
    assert_eq!(udp.local_addr().unwrap(), addr);

    let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let pipe = uv::Pipe::try_from((&lp, ours)).unwrap();
    assert_eq!(pipe.handle_type(), HandleType::NamedPipe);

    for h in [uv::Handle::from(tcp), udp.into(), pipe.into()] {
        h.close();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
}
