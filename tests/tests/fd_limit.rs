//! Row 14 of the soundness review: at the descriptor limit, every call that makes a
//! descriptor fails with `EMFILE` (at once, or through its callback), and works again
//! once the limit is raised.
//!
//! These tests lower the process's `RLIMIT_NOFILE`, which would break any other test
//! running at the same time, so they are alone in this test binary, and each holds
//! one lock for its whole run (descriptors made before the limit is lowered, like
//! the loop's own, must not race with another test's lowered limit either).
//!
//! What no test here can show through a callback: a connection that arrives at a
//! listening handle while the process is at the limit. libuv's `accept` fails with
//! `EMFILE`; libuv then closes the descriptor it keeps in reserve for this (opened
//! by the loop's first stream handle), accepts the waiting connections and closes
//! them at once, and reopens its reserve (its "EMFILE trick",
//! `uv__emfile_trick`). The listen callback is not called for them; the peers see
//! their connection closed. `a_connection_at_the_limit_is_closed_by_libuv_unseen`
//! checks exactly that.

#![cfg(unix)]

use std::cell::RefCell;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::net::UnixListener;
use std::rc::Rc;
use uv::Stream as _;

use uv::{AddressFamily, Loop, Pipe, RunMode, StatusCode, Tcp, TcpFlags, Udp, UdpFlags};
use uv_tests::net::{run_until, tcp_listener, TempDir};

// One test at a time in this binary.
use uv_tests::serial;

/// While alive, no new descriptor can be made in this process (a
/// [`uv_tests::DescriptorRoom`] with no room, checked).
struct AtTheLimit {
    _room: uv_tests::DescriptorRoom,
}

impl AtTheLimit {
    fn new() -> AtTheLimit {
        let guard = AtTheLimit {
            _room: uv_tests::DescriptorRoom::new(0),
        };
        let err = std::fs::File::open("/dev/null").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
        guard
    }
}

#[test]
fn loop_new_is_emfile_at_the_limit() {
    let _serial = serial();
    let limit = AtTheLimit::new();
    let err = Loop::new().unwrap_err();
    assert_eq!(err.code(), StatusCode::EMFILE, "{err}");
    drop(limit);
    let lp = Loop::new().unwrap();
    lp.close().unwrap();
}

#[test]
fn constructors_that_make_a_socket_are_emfile_at_the_limit() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let limit = AtTheLimit::new();
    let err = Tcp::with_family(&lp, AddressFamily::Inet).unwrap_err();
    assert_eq!(err.code(), StatusCode::EMFILE, "{err}");
    let err = Udp::with_family(&lp, AddressFamily::Inet).unwrap_err();
    assert_eq!(err.code(), StatusCode::EMFILE, "{err}");
    let err = Udp::with_flags(&lp, AddressFamily::Inet, UdpFlags::RECVMMSG).unwrap_err();
    assert_eq!(err.code(), StatusCode::EMFILE, "{err}");
    assert_eq!(lp.handle_count(), 0);
    drop(limit);
    let tcp = Tcp::with_family(&lp, AddressFamily::Inet).unwrap();
    let udp = Udp::with_family(&lp, AddressFamily::Inet).unwrap();
    assert!(tcp.fileno().unwrap() >= 0 && udp.fileno().unwrap() >= 0);
    tcp.close();
    udp.close();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

#[test]
fn bind_on_a_fresh_handle_is_emfile_at_the_limit() {
    let _serial = serial();
    let dir = TempDir::new("fd-limit-bind");
    let lp = Loop::new().unwrap();
    // No socket yet: `bind` makes it.
    let tcp = Tcp::new(&lp).unwrap();
    let udp = Udp::new(&lp).unwrap();
    let pipe = Pipe::new(&lp, false).unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let limit = AtTheLimit::new();
    let err = tcp.bind(any, TcpFlags::empty()).unwrap_err();
    assert_eq!(err.code(), StatusCode::EMFILE, "{err}");
    let err = udp.bind(any, UdpFlags::empty()).unwrap_err();
    assert_eq!(err.code(), StatusCode::EMFILE, "{err}");
    let err = pipe.bind(dir.join("s")).unwrap_err();
    assert_eq!(err.code(), StatusCode::EMFILE, "{err}");
    drop(limit);
    tcp.bind(any, TcpFlags::empty()).unwrap();
    udp.bind(any, UdpFlags::empty()).unwrap();
    pipe.bind(dir.join("s")).unwrap();
    lp.close_all_handles();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

#[test]
fn connect_is_emfile_at_the_limit() {
    let _serial = serial();
    let dir = TempDir::new("fd-limit-connect");
    let path = dir.join("s");
    let _unix_listener = UnixListener::bind(&path).unwrap();
    let (_tcp_listener, addr) = tcp_listener();
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    let pipe = Pipe::new(&lp, false).unwrap();
    let results = Rc::new(RefCell::new(Vec::new()));

    let limit = AtTheLimit::new();
    // TCP: libuv makes the socket inside `connect`, so the error may come at once.
    let r = results.clone();
    match tcp.connect(addr, move |_, res| {
        r.borrow_mut().push(("tcp", res.map_err(|e| e.code())));
    }) {
        Ok(()) => {}
        Err(e) => {
            assert_eq!(e.code(), StatusCode::EMFILE, "{e}");
            results.borrow_mut().push(("tcp", Err(StatusCode::EMFILE)));
        }
    }
    // Pipe: libuv reports every connect error through the callback.
    let r = results.clone();
    pipe.connect(&path, move |_, res| {
        r.borrow_mut().push(("pipe", res.map_err(|e| e.code())));
    })
    .unwrap();
    run_until(&lp, || results.borrow().len() == 2);
    drop(limit);
    let mut got = results.borrow().clone();
    got.sort_by_key(|(name, _)| *name);
    assert_eq!(
        got,
        vec![
            ("pipe", Err(StatusCode::EMFILE)),
            ("tcp", Err(StatusCode::EMFILE))
        ]
    );

    // With descriptors to spare, fresh handles connect.
    results.borrow_mut().clear();
    let tcp2 = Tcp::new(&lp).unwrap();
    let r = results.clone();
    tcp2.connect(addr, move |_, res| {
        r.borrow_mut().push(("tcp", res.map_err(|e| e.code())));
    })
    .unwrap();
    let pipe2 = Pipe::new(&lp, false).unwrap();
    let r = results.clone();
    pipe2
        .connect(&path, move |_, res| {
            r.borrow_mut().push(("pipe", res.map_err(|e| e.code())));
        })
        .unwrap();
    run_until(&lp, || results.borrow().len() == 2);
    let mut got = results.borrow().clone();
    got.sort_by_key(|(name, _)| *name);
    assert_eq!(got, vec![("pipe", Ok(())), ("tcp", Ok(()))]);
    lp.close_all_handles();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

#[test]
fn a_connection_at_the_limit_is_closed_by_libuv_unseen() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    // The loop's first stream handle makes libuv reserve its spare descriptor.
    let (server, addr) = uv_tests::net::bound_tcp(&lp);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    server
        .listen(8, move |_, st| {
            s.borrow_mut().push(st.map_err(|e| e.code()))
        })
        .unwrap();
    let mut peer = TcpStream::connect(addr).unwrap();

    let limit = AtTheLimit::new();
    // One iteration: the listener is readable (the connection waits in the backlog).
    lp.run(RunMode::Once).unwrap();
    drop(limit);
    assert_eq!(*seen.borrow(), vec![]);
    // libuv accepted and closed it: end of stream (or a reset), not "no data yet".
    peer.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 8];
    match peer.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    server.close();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

#[test]
fn spawn_is_emfile_at_the_limit_and_leaves_the_loop_whole() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let before = uv::Timer::new(&lp).unwrap();
    let out = Pipe::new(&lp, false).unwrap();
    let limit = AtTheLimit::new();
    // No descriptor for the stdout pair: libuv fails before the child and takes the
    // handle out of the loop's list itself.
    let opts = uv::ProcessOptions::new("/bin/true").stdout(uv::Stdio::pipe_from_child(&out));
    let err = uv::Process::spawn(&lp, &opts, |_, _, _| panic!("no child")).unwrap_err();
    assert_eq!(err.code(), StatusCode::EMFILE, "{err}");
    drop(limit);
    // A handle made after the failures, next to where the process handles were:
    // closing those must leave it in the loop's list.
    let after = uv::Timer::new(&lp).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    let handles = lp.handles();
    assert_eq!(handles.len(), 3, "{handles:?}");
    assert!(handles.contains(&after) && handles.contains(&before) && handles.contains(&out));
    drop(handles);
    // The pipe got no descriptor and the loop still works.
    assert!(out.fileno().is_err());
    let exit = std::rc::Rc::new(std::cell::Cell::new(None));
    let e = exit.clone();
    uv::Process::spawn(
        &lp,
        &uv::ProcessOptions::new("/bin/sh").args(["-c", "exit 4"]),
        move |_, s, _| e.set(Some(s)),
    )
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(exit.get(), Some(4));
    for h in [&before, &after] {
        h.close();
    }
    out.close();
    lp.run(RunMode::Default).unwrap();
    assert!(lp.handles().is_empty());
    lp.close().unwrap();
}
