//! The public `uv::Stream` trait: one generic server serves TCP and Unix sockets
//! alike, `accept` makes the connection's handle, `accept_into` fills a given one,
//! and the std-style address names (`local_addr`, `peer_addr`).

#![cfg(unix)]

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;

use uv::{HandleType, Loop, Pipe, RunMode, StatusCode, Stream, Tcp, TcpFlags};
use uv_tests::net::TempDir;

/// Accepts one connection on `server`, echoes what it reads upper-cased, and closes
/// the connection and the server at the end of the stream. Knows nothing of the
/// stream's type.
fn serve_one<S: Stream>(server: &S, log: Rc<RefCell<Vec<String>>>) {
    server
        .listen(8, move |srv, status| {
            status.unwrap();
            let conn = srv.accept().unwrap();
            log.borrow_mut()
                .push(format!("accepted {:?}", conn.handle_type()));
            let srv = srv.clone();
            let log = log.clone();
            conn.read_start(move |c, data| match data {
                Ok(bytes) => {
                    let up = bytes.to_ascii_uppercase();
                    c.write(up, |_, r| r.unwrap()).unwrap();
                }
                Err(e) => {
                    assert_eq!(e.code(), StatusCode::EOF);
                    log.borrow_mut().push("eof".into());
                    c.close();
                    srv.close();
                }
            })
            .unwrap();
        })
        .unwrap();
}

#[test]
fn one_generic_server_serves_tcp_and_unix_sockets() {
    let dir = TempDir::new("stream-trait");
    let lp = Loop::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));

    let (tcp, tcp_addr) = uv_tests::net::bound_tcp(&lp);
    serve_one(&tcp, log.clone());

    let path = dir.join("echo.sock");
    let pipe = Pipe::new(&lp, false).unwrap();
    pipe.bind(&path).unwrap();
    assert_eq!(pipe.local_addr().unwrap(), path);
    serve_one(&pipe, log.clone());

    // Blocking std clients on threads; the loop serves both.
    let t1 = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(tcp_addr).unwrap();
        s.write_all(b"tcp hello").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = String::new();
        s.read_to_string(&mut back).unwrap();
        back
    });
    let t2 = std::thread::spawn(move || {
        let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
        s.write_all(b"pipe hello").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = String::new();
        s.read_to_string(&mut back).unwrap();
        back
    });
    lp.run(RunMode::Default).unwrap();
    assert_eq!(t1.join().unwrap(), "TCP HELLO");
    assert_eq!(t2.join().unwrap(), "PIPE HELLO");
    let log = log.borrow();
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(log.contains(&"accepted Tcp".to_string()), "{log:?}");
    assert!(log.contains(&"accepted NamedPipe".to_string()), "{log:?}");
    assert_eq!(log.iter().filter(|l| *l == "eof").count(), 2);
}

#[test]
fn accept_makes_a_connected_handle_whose_peer_is_the_client() {
    let lp = Loop::new().unwrap();
    let (server, addr) = uv_tests::net::bound_tcp(&lp);
    let seen = Rc::new(RefCell::new(None));
    let s2 = seen.clone();
    server
        .listen(8, move |srv, st| {
            st.unwrap();
            let conn = srv.accept().unwrap();
            assert_eq!(conn.handle_type(), HandleType::Tcp);
            assert!(conn.is_readable() && conn.is_writable());
            *s2.borrow_mut() = Some((conn.local_addr().unwrap(), conn.peer_addr().unwrap()));
            conn.close();
            srv.close();
        })
        .unwrap();
    let client = Tcp::new(&lp).unwrap();
    let mine = Rc::new(RefCell::new(None));
    let m2 = mine.clone();
    client
        .connect(addr, move |c, r| {
            r.unwrap();
            *m2.borrow_mut() = Some((c.local_addr().unwrap(), c.peer_addr().unwrap()));
            c.close();
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    let (srv_local, srv_peer) = seen.borrow().unwrap();
    let (cli_local, cli_peer) = mine.borrow().unwrap();
    assert_eq!(srv_local, addr);
    assert_eq!(cli_peer, addr);
    assert_eq!(srv_peer, cli_local);
}

#[test]
fn accept_with_nothing_pending_is_eagain_and_makes_no_handle() {
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    server
        .bind("127.0.0.1:0".parse().unwrap(), TcpFlags::empty())
        .unwrap();
    server.listen(8, |_, _| {}).unwrap();
    let before = lp.handles().len();
    let err = server.accept().unwrap_err();
    assert_eq!(err.code(), StatusCode::EAGAIN);
    assert_eq!(lp.handles().len(), before);
    // Not listening at all: the same.
    let idle = Tcp::new(&lp).unwrap();
    assert_eq!(idle.accept().unwrap_err().code(), StatusCode::EAGAIN);
    // A closed server: ClosedHandle.
    server.close();
    assert_eq!(
        server.accept().unwrap_err().kind(),
        uv::Category::ClosedHandle
    );
    idle.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handles().len(), 0);
}

#[test]
fn accept_into_still_takes_a_prepared_client() {
    let lp = Loop::new().unwrap();
    let (server, addr) = uv_tests::net::bound_tcp(&lp);
    let lh = lp.handle();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    server
        .listen(8, move |srv, st| {
            st.unwrap();
            let conn = Tcp::new(&lh).unwrap();
            srv.accept_into(&conn).unwrap();
            // A second accept into the same, now connected, handle is refused.
            assert_eq!(
                srv.accept_into(&conn).unwrap_err().code(),
                StatusCode::EAGAIN
            );
            let g = g.clone();
            conn.read_start(move |c, d| match d {
                Ok(b) => g.borrow_mut().extend_from_slice(b),
                Err(_) => c.close(),
            })
            .unwrap();
            srv.close();
        })
        .unwrap();
    let t = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"prepared").unwrap();
    });
    lp.run(RunMode::Default).unwrap();
    t.join().unwrap();
    assert_eq!(&got.borrow()[..], b"prepared");
}

/// `write_counted`: the callback gets every byte on success; when the peer goes
/// away in the middle of a large write, the error and the bytes the system took
/// before it (more than none, fewer than all).
#[test]
fn write_counted_reports_the_bytes_written_before_an_error() {
    let lp = Loop::new().unwrap();
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let pipe = Pipe::new(&lp, false).unwrap();
    pipe.open(a).unwrap();
    type Seen = Vec<(Option<StatusCode>, usize)>;
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let s = seen.clone();
    pipe.write_counted(&b"hello"[..], move |_, r, n| {
        s.borrow_mut().push((r.err().map(|e| e.code()), n))
    })
    .unwrap();
    const BIG: usize = 16 << 20;
    let s = seen.clone();
    pipe.write_counted(vec![7u8; BIG], move |p, r, n| {
        s.borrow_mut().push((r.err().map(|e| e.code()), n));
        p.close();
    })
    .unwrap();
    // The peer reads the first write and a little of the second, then goes away.
    let mut peer = Some(b);
    let idle = uv::Idle::new(&lp).unwrap();
    idle.start(move |i| {
        let Some(b) = peer.as_mut() else { return };
        let mut buf = vec![0u8; 4096];
        b.set_nonblocking(true).unwrap();
        if let Ok(n) = b.read(&mut buf) {
            if n > 0 {
                drop(peer.take());
                i.close();
            }
        }
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    let seen = seen.borrow();
    assert_eq!(seen[0], (None, 5));
    let (err, n) = seen[1];
    assert!(
        matches!(err, Some(StatusCode::EPIPE | StatusCode::ECONNRESET)),
        "{err:?}"
    );
    assert!(n > 0 && n < BIG, "{n} bytes written of {BIG}");
}

/// `read_stop` drops the read callback and what it captured, whether it is called
/// from outside or from inside the callback (then once the callback returned); a
/// later `read_start` reads with the new callback.
#[test]
fn read_stop_drops_the_read_callback() {
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let token = Rc::new(());
    // From outside: dropped at once.
    let t = token.clone();
    b.read_start(move |_, _| {
        let _ = &t;
    })
    .unwrap();
    assert_eq!(Rc::strong_count(&token), 2);
    b.read_stop().unwrap();
    assert_eq!(Rc::strong_count(&token), 1, "dropped by read_stop");
    // From inside: the callback runs to its end, then is dropped.
    let got = Rc::new(RefCell::new(Vec::new()));
    let (t, g) = (token.clone(), got.clone());
    b.read_start(move |s, r| {
        g.borrow_mut().extend_from_slice(r.unwrap());
        s.read_stop().unwrap();
        // Still alive here: the call holds it.
        assert_eq!(Rc::strong_count(&t), 2);
    })
    .unwrap();
    a.write(b"one".to_vec(), |_, r| r.unwrap()).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&got.borrow()[..], b"one");
    assert_eq!(Rc::strong_count(&token), 1, "dropped after the call");
    // A new read_start reads on with its own callback.
    let g = got.clone();
    b.read_start(move |s, r| {
        g.borrow_mut().extend_from_slice(r.unwrap());
        s.close();
    })
    .unwrap();
    a.write(b"two".to_vec(), |a, r| {
        r.unwrap();
        a.close();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&got.borrow()[..], b"onetwo");
}
