//! Pipes (Unix domain sockets): ping-pong, passing a TCP socket over an IPC pipe,
//! connect errors, names, pending handles, `open` on a socketpair, the closed-handle
//! rules, Linux abstract names, `chmod`, and a large write.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use uv::Stream as _;

use uv::{
    Category, HandleType, Loop, Pipe, PipeFlags, PollEvent, RunMode, StatusCode, Tcp, TcpFlags,
};

/// A socket path unique to this process and test, removed on creation and on drop.
struct SockPath(PathBuf);

impl SockPath {
    fn new(test: &str) -> SockPath {
        let p = std::env::temp_dir().join(format!("uv-pipes-{}-{}.sock", std::process::id(), test));
        let _ = std::fs::remove_file(&p);
        SockPath(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SockPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Counts the complete occurrences of `word` at the front of `buf`, removing them
/// (stream reads may split or join messages).
fn take_words(buf: &mut Vec<u8>, word: &[u8]) -> usize {
    let mut n = 0;
    while buf.len() >= word.len() && &buf[..word.len()] == word {
        buf.drain(..word.len());
        n += 1;
    }
    n
}

const ROUNDS: u32 = 5;

#[test]
fn ping_pong_over_a_pipe() {
    let sp = SockPath::new("ping_pong");
    let lp = Loop::new().unwrap();
    let pings = Rc::new(Cell::new(0u32));
    let pongs = Rc::new(Cell::new(0u32));
    let server_eof = Rc::new(Cell::new(false));
    let client_closed = Rc::new(Cell::new(false));

    let server = Pipe::new(&lp, false).unwrap();
    server.bind(sp.path()).unwrap();
    let lh = lp.handle();
    let (pings2, eof2) = (pings.clone(), server_eof.clone());
    server
        .listen(8, move |srv, st| {
            st.unwrap();
            let conn = Pipe::new(&lh, false).unwrap();
            srv.accept_into(&conn).unwrap();
            srv.close();
            let mut buf = Vec::new();
            let (pings, eof) = (pings2.clone(), eof2.clone());
            conn.read_start(move |c, d| match d {
                Ok(d) => {
                    buf.extend_from_slice(d);
                    for _ in 0..take_words(&mut buf, b"PING") {
                        pings.set(pings.get() + 1);
                        c.write("PONG", |_, r| r.unwrap()).unwrap();
                    }
                }
                Err(e) => {
                    assert_eq!(e.code(), StatusCode::EOF);
                    assert!(buf.is_empty());
                    eof.set(true);
                    c.close();
                }
            })
            .unwrap();
        })
        .unwrap();

    let client = Pipe::new(&lp, false).unwrap();
    let (pongs2, closed2) = (pongs.clone(), client_closed.clone());
    client
        .connect(sp.path(), move |c, r| {
            r.unwrap();
            assert!(c.is_readable());
            assert!(c.is_writable());
            let mut buf = Vec::new();
            let (pongs, closed) = (pongs2.clone(), closed2.clone());
            c.read_start(move |c, d| {
                let d = d.unwrap();
                buf.extend_from_slice(d);
                for _ in 0..take_words(&mut buf, b"PONG") {
                    pongs.set(pongs.get() + 1);
                    if pongs.get() < ROUNDS {
                        c.write("PING", |_, r| r.unwrap()).unwrap();
                    } else {
                        c.read_stop().unwrap();
                        let closed = closed.clone();
                        c.shutdown(move |c, r| {
                            r.unwrap();
                            closed.set(true);
                            c.close();
                        })
                        .unwrap();
                    }
                }
            })
            .unwrap();
            c.write("PING", |_, r| r.unwrap()).unwrap();
        })
        .unwrap();

    lp.run(RunMode::Default).unwrap();
    assert_eq!(pings.get(), ROUNDS);
    assert_eq!(pongs.get(), ROUNDS);
    assert!(server_eof.get());
    assert!(client_closed.get());
    assert!(server.is_closed());
    assert!(client.is_closed());
    lp.close().unwrap();
}

/// Python's `test_tcp_ipv4_icp_client`: a connected TCP client is sent over an IPC
/// pipe; the receiver accepts it and ping-pongs with the TCP server through it.
#[test]
fn tcp_handle_passed_over_an_ipc_pipe() {
    let sp = SockPath::new("tcp_over_ipc");
    let lp = Loop::new().unwrap();
    let pings = Rc::new(Cell::new(0u32));
    let pongs = Rc::new(Cell::new(0u32));
    let pipe_data = Rc::new(RefCell::new(Vec::<u8>::new()));
    let pending_seen = Rc::new(RefCell::new(Vec::<(i32, HandleType)>::new()));
    let after_accept = Rc::new(RefCell::new(None::<(i32, HandleType)>));
    let tcp_eof = Rc::new(Cell::new(false));

    // The TCP server: answers each PING with a PONG.
    let (tcp_server, tcp_addr) = uv_tests::net::bound_tcp(&lp);
    let lh = lp.handle();
    let (pings2, eof2) = (pings.clone(), tcp_eof.clone());
    tcp_server
        .listen(8, move |srv, st| {
            st.unwrap();
            let conn = Tcp::new(&lh).unwrap();
            srv.accept_into(&conn).unwrap();
            srv.close();
            let mut buf = Vec::new();
            let (pings, eof) = (pings2.clone(), eof2.clone());
            conn.read_start(move |c, d| match d {
                Ok(d) => {
                    buf.extend_from_slice(d);
                    for _ in 0..take_words(&mut buf, b"PING") {
                        pings.set(pings.get() + 1);
                        c.write("PONG", |_, r| r.unwrap()).unwrap();
                    }
                }
                Err(e) => {
                    assert_eq!(e.code(), StatusCode::EOF);
                    eof.set(true);
                    c.close();
                }
            })
            .unwrap();
        })
        .unwrap();

    // The receiving side: a plain pipe server whose accepted connection is IPC.
    let pipe_server = Pipe::new(&lp, false).unwrap();
    pipe_server.bind(sp.path()).unwrap();
    let lh = lp.handle();
    let (data2, seen2, after2, pongs2) = (
        pipe_data.clone(),
        pending_seen.clone(),
        after_accept.clone(),
        pongs.clone(),
    );
    pipe_server
        .listen(8, move |srv, st| {
            st.unwrap();
            let conn = Pipe::new(&lh, true).unwrap();
            srv.accept_into(&conn).unwrap();
            srv.close();
            let lh = lh.clone();
            let (data, seen, after, pongs) =
                (data2.clone(), seen2.clone(), after2.clone(), pongs2.clone());
            conn.read_start(move |p, d| match d {
                Ok(d) => {
                    data.borrow_mut().extend_from_slice(d);
                    let count = p.pending_count().unwrap();
                    if count == 0 {
                        return;
                    }
                    seen.borrow_mut().push((count, p.pending_type().unwrap()));
                    let t = Tcp::new(&lh).unwrap();
                    p.accept_into(&t).unwrap();
                    *after.borrow_mut() =
                        Some((p.pending_count().unwrap(), p.pending_type().unwrap()));
                    assert_eq!(t.handle_type(), HandleType::Tcp);
                    assert_eq!(t.peer_addr().unwrap(), tcp_addr);
                    let mut buf = Vec::new();
                    let pongs = pongs.clone();
                    t.read_start(move |t, d| {
                        buf.extend_from_slice(d.unwrap());
                        for _ in 0..take_words(&mut buf, b"PONG") {
                            pongs.set(pongs.get() + 1);
                            if pongs.get() < ROUNDS {
                                t.write("PING", |_, r| r.unwrap()).unwrap();
                            } else {
                                t.close();
                            }
                        }
                    })
                    .unwrap();
                    t.write("PING", |_, r| r.unwrap()).unwrap();
                }
                Err(e) => {
                    assert_eq!(e.code(), StatusCode::EOF);
                    p.close();
                }
            })
            .unwrap();
        })
        .unwrap();

    // The sending side: connects a TCP client, then sends it over the IPC pipe.
    let ipc_client = Pipe::new_ipc(&lp).unwrap();
    let lh = lp.handle();
    ipc_client
        .connect(sp.path(), move |cp, r| {
            r.unwrap();
            let cp = cp.clone();
            let client = Tcp::new(&lh).unwrap();
            client
                .connect(tcp_addr, move |c, r| {
                    r.unwrap();
                    let c2 = c.clone();
                    cp.write2("handle", c, move |cp, r| {
                        r.unwrap();
                        // The receiver has its own descriptor now.
                        c2.close();
                        cp.close();
                    })
                    .unwrap();
                })
                .unwrap();
        })
        .unwrap();

    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*pipe_data.borrow(), b"handle");
    assert_eq!(&*pending_seen.borrow(), &[(1, HandleType::Tcp)]);
    assert_eq!(*after_accept.borrow(), Some((0, HandleType::Unknown)));
    assert_eq!(pings.get(), ROUNDS);
    assert_eq!(pongs.get(), ROUNDS);
    assert!(tcp_eof.get());
    lp.close().unwrap();
}

/// Python's `test_connect_bad`.
#[test]
fn connect_to_a_missing_path_fails_with_enoent() {
    let sp = SockPath::new("connect_bad");
    let lp = Loop::new().unwrap();
    let client = Pipe::new(&lp, false).unwrap();
    let status = Rc::new(RefCell::new(None));
    let s2 = status.clone();
    client
        .connect(sp.path(), move |c, r| {
            *s2.borrow_mut() = Some(r);
            c.close();
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    let err = status.borrow_mut().take().unwrap().unwrap_err();
    assert_eq!(err.code(), StatusCode::ENOENT);
    assert_eq!(err.operation(), "uv_pipe_connect");
    lp.close().unwrap();
}

#[test]
fn a_path_with_a_nul_byte_is_einval_at_once() {
    let lp = Loop::new().unwrap();
    let client = Pipe::new(&lp, false).unwrap();
    let called = Rc::new(Cell::new(false));
    let c2 = called.clone();
    let err = client
        .connect("/tmp/uv\0pipe", move |_, _| c2.set(true))
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert_eq!(err.operation(), "uv_pipe_connect");
    let err = client.bind("/tmp/uv\0pipe").unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert_eq!(err.operation(), "uv_pipe_bind");
    client.close();
    lp.run(RunMode::Default).unwrap();
    assert!(!called.get());
    lp.close().unwrap();
}

#[test]
fn sockname_and_peername_are_the_server_path() {
    let sp = SockPath::new("names");
    let lp = Loop::new().unwrap();
    let server = Pipe::new(&lp, false).unwrap();
    server.bind(sp.path()).unwrap();
    assert_eq!(server.local_addr().unwrap(), sp.path());
    // Binding made the socket file.
    assert!(std::fs::symlink_metadata(sp.path()).is_ok());

    let accepted_name = Rc::new(RefCell::new(None));
    let peer = Rc::new(RefCell::new(None));
    let lh = lp.handle();
    let a2 = accepted_name.clone();
    server
        .listen(8, move |srv, st| {
            st.unwrap();
            let conn = Pipe::new(&lh, false).unwrap();
            srv.accept_into(&conn).unwrap();
            *a2.borrow_mut() = Some(conn.local_addr().unwrap());
            conn.close();
            srv.close();
        })
        .unwrap();
    let client = Pipe::new(&lp, false).unwrap();
    let p2 = peer.clone();
    client
        .connect(sp.path(), move |c, r| {
            r.unwrap();
            *p2.borrow_mut() = Some(c.peer_addr().unwrap());
            c.close();
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(peer.borrow().as_deref(), Some(sp.path()));
    assert_eq!(accepted_name.borrow().as_deref(), Some(sp.path()));
    lp.close().unwrap();
}

#[test]
fn a_fresh_pipe_has_no_pending_handle() {
    let lp = Loop::new().unwrap();
    for ipc in [true, false] {
        let p = Pipe::new(&lp, ipc).unwrap();
        assert_eq!(p.pending_count().unwrap(), 0);
        assert_eq!(p.pending_type().unwrap(), HandleType::Unknown);
        assert_eq!(p.handle_type(), HandleType::NamedPipe);
        // libuv answers EAGAIN (nothing to accept), not EINVAL as Python's binding
        // expects.
        let client = Pipe::new(&lp, ipc).unwrap();
        let err = p.accept_into(&client).unwrap_err();
        assert_eq!(err.code(), StatusCode::EAGAIN);
        assert_eq!(err.operation(), "uv_accept");
        let tcp = Tcp::new(&lp).unwrap();
        assert_eq!(p.accept_into(&tcp).unwrap_err().code(), StatusCode::EAGAIN);
        p.close();
        client.close();
        tcp.close();
    }
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

/// Python's `test_writable_readable`.
#[test]
fn an_unconnected_pipe_is_neither_readable_nor_writable() {
    let lp = Loop::new().unwrap();
    for ipc in [false, true] {
        let p = Pipe::new(&lp, ipc).unwrap();
        assert!(!p.is_readable());
        assert!(!p.is_writable());
        assert_eq!(p.write_queue_size(), 0);
        // No socket yet.
        assert_eq!(p.fileno().unwrap_err().code(), StatusCode::EBADF);
        p.close();
    }
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

#[test]
fn open_takes_over_a_socketpair_end() {
    use std::io::Write;

    let lp = Loop::new().unwrap();
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = ours.as_raw_fd();
    let p = Pipe::new(&lp, false).unwrap();
    p.open(ours).unwrap();
    assert_eq!(p.fileno().unwrap(), fd);
    assert!(p.is_readable());
    assert!(p.is_writable());

    let got = Rc::new(RefCell::new(Vec::new()));
    let eof = Rc::new(Cell::new(false));
    let (g2, e2) = (got.clone(), eof.clone());
    p.read_start(move |p, d| match d {
        Ok(d) => g2.borrow_mut().extend_from_slice(d),
        Err(e) => {
            assert_eq!(e.code(), StatusCode::EOF);
            e2.set(true);
            p.close();
        }
    })
    .unwrap();
    theirs.write_all(b"hello from std").unwrap();
    drop(theirs);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*got.borrow(), b"hello from std");
    assert!(eof.get());
    assert!(p.is_closed());
    lp.close().unwrap();
}

#[test]
fn open_with_a_negative_fd_is_ebadf() {
    let lp = Loop::new().unwrap();
    let p = Pipe::new(&lp, false).unwrap();
    // SAFETY: `open_raw` refuses a negative descriptor before libuv sees it, so no
    // descriptor is taken over or closed.
    let err = unsafe { p.open_raw(-1) }.unwrap_err();
    assert_eq!(err.code(), StatusCode::EBADF);
    assert_eq!(err.operation(), "uv_pipe_open");
    p.close();
    lp.run(RunMode::Default).unwrap();
}

/// Python's `test_closed`.
#[test]
fn a_closed_pipe_answers_closed_handle() {
    let sp = SockPath::new("closed");
    let lp = Loop::new().unwrap();
    let p = Pipe::new(&lp, false).unwrap();
    p.close();
    for round in 0..2 {
        let closed = |r: uv::Result<()>| {
            assert_eq!(
                r.unwrap_err().kind(),
                Category::ClosedHandle,
                "round {round}"
            );
        };
        closed(p.bind(sp.path()));
        closed(p.bind2(sp.path(), PipeFlags::empty()));
        let called = Rc::new(Cell::new(false));
        let c2 = called.clone();
        closed(p.connect(sp.path(), move |_, _| c2.set(true)));
        let c3 = called.clone();
        closed(p.connect2(sp.path(), PipeFlags::empty(), move |_, _| c3.set(true)));
        closed(p.listen(8, |_, _| {}));
        closed(p.write("data", |_, _| {}));
        closed(p.shutdown(|_, _| {}));
        closed(p.read_start(|_, _| {}));
        // A socketpair end passes the kind check, so `open` gets to the closed handle.
        let (end, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        closed(p.open(end).map_err(|r| r.error()));
        closed(p.chmod(PollEvent::READABLE));
        assert_eq!(p.local_addr().unwrap_err().kind(), Category::ClosedHandle);
        assert_eq!(p.peer_addr().unwrap_err().kind(), Category::ClosedHandle);
        assert_eq!(
            p.pending_count().unwrap_err().kind(),
            Category::ClosedHandle
        );
        assert_eq!(
            p.try_write(b"x").unwrap_err().kind(),
            Category::ClosedHandle
        );
        p.read_stop().unwrap();
        assert!(!p.is_readable());
        assert!(!p.is_writable());
        assert_eq!(p.write_queue_size(), 0);
        lp.run(RunMode::Default).unwrap();
        assert!(p.is_closed());
        assert!(!called.get());
    }
    // Nothing was bound at the path.
    assert!(std::fs::symlink_metadata(sp.path()).is_err());
    lp.close().unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn bind2_and_connect2_with_an_abstract_name() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let name_bytes = format!("\0uv-pipes-{}-abstract", std::process::id()).into_bytes();
    let name = Path::new(OsStr::from_bytes(&name_bytes)).to_path_buf();
    let lp = Loop::new().unwrap();
    let server = Pipe::new(&lp, false).unwrap();
    server.bind2(&name, PipeFlags::empty()).unwrap();
    let sock = server.local_addr().unwrap();
    assert_eq!(sock.as_os_str().as_bytes(), &name_bytes[..]);
    assert_eq!(sock.as_os_str().as_bytes()[0], 0);

    let got = Rc::new(RefCell::new(Vec::new()));
    let peer = Rc::new(RefCell::new(None));
    let lh = lp.handle();
    let g2 = got.clone();
    server
        .listen(8, move |srv, st| {
            st.unwrap();
            let conn = Pipe::new(&lh, false).unwrap();
            srv.accept_into(&conn).unwrap();
            srv.close();
            let g = g2.clone();
            conn.read_start(move |c, d| match d {
                Ok(d) => g.borrow_mut().extend_from_slice(d),
                Err(e) => {
                    assert_eq!(e.code(), StatusCode::EOF);
                    c.close();
                }
            })
            .unwrap();
        })
        .unwrap();
    let client = Pipe::new(&lp, false).unwrap();
    let p2 = peer.clone();
    client
        .connect2(&name, PipeFlags::empty(), move |c, r| {
            r.unwrap();
            *p2.borrow_mut() = Some(c.peer_addr().unwrap());
            c.write("abstract hello", |c, r| {
                r.unwrap();
                uv_tests::shutdown_and_close(c);
            })
            .unwrap();
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*got.borrow(), b"abstract hello");
    assert_eq!(peer.borrow().as_deref(), Some(name.as_path()));
    lp.close().unwrap();
}

#[test]
fn chmod_makes_the_socket_readable_and_writable_by_all() {
    use std::os::unix::fs::PermissionsExt;

    let sp = SockPath::new("chmod");
    let lp = Loop::new().unwrap();
    let p = Pipe::new(&lp, false).unwrap();
    // Not bound yet: no socket to change.
    assert_eq!(
        p.chmod(PollEvent::READABLE | PollEvent::WRITABLE)
            .unwrap_err()
            .code(),
        StatusCode::EBADF
    );
    p.bind(sp.path()).unwrap();
    // Neither readable nor writable is not a mode.
    assert_eq!(
        p.chmod(PollEvent::empty()).unwrap_err().code(),
        StatusCode::EINVAL
    );
    p.chmod(PollEvent::READABLE | PollEvent::WRITABLE).unwrap();
    let mode = std::fs::symlink_metadata(sp.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o666, 0o666, "mode {mode:o}");
    p.close();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

#[test]
fn a_mebibyte_in_sixteen_chunks_arrives_intact() {
    const CHUNK: usize = 64 * 1024;
    let sp = SockPath::new("mebibyte");
    let chunks: Vec<Vec<u8>> = (0..16)
        .map(|c| (0..CHUNK).map(|i| ((c * CHUNK + i) % 251) as u8).collect())
        .collect();
    let expected: Vec<u8> = chunks.concat();
    assert_eq!(expected.len(), 1 << 20);

    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::with_capacity(1 << 20)));
    let eof = Rc::new(Cell::new(false));
    let written = Rc::new(Cell::new(false));
    let server = Pipe::new(&lp, false).unwrap();
    server.bind(sp.path()).unwrap();
    let lh = lp.handle();
    let (g2, e2) = (got.clone(), eof.clone());
    server
        .listen(8, move |srv, st| {
            st.unwrap();
            let conn = Pipe::new(&lh, false).unwrap();
            srv.accept_into(&conn).unwrap();
            srv.close();
            let (g, e) = (g2.clone(), e2.clone());
            conn.read_start(move |c, d| match d {
                Ok(d) => g.borrow_mut().extend_from_slice(d),
                Err(err) => {
                    assert_eq!(err.code(), StatusCode::EOF);
                    e.set(true);
                    c.close();
                }
            })
            .unwrap();
        })
        .unwrap();
    let client = Pipe::new(&lp, false).unwrap();
    let w2 = written.clone();
    client
        .connect(sp.path(), move |c, r| {
            r.unwrap();
            c.write(chunks, move |c, r| {
                r.unwrap();
                w2.set(true);
                uv_tests::shutdown_and_close(c);
            })
            .unwrap();
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(written.get());
    assert!(eof.get());
    let got = got.borrow();
    assert_eq!(got.len(), expected.len());
    assert!(*got == expected, "the data differs");
    lp.close().unwrap();
}

#[test]
fn an_ipc_pipe_cannot_listen() {
    let sp = SockPath::new("ipc_listen");
    let lp = Loop::new().unwrap();
    let p = Pipe::new_ipc(&lp).unwrap();
    p.bind(sp.path()).unwrap();
    let err = p.listen(8, |_, _| {}).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert_eq!(err.operation(), "uv_listen");
    p.close();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

#[test]
fn write2_on_a_pipe_without_ipc_is_einval() {
    let lp = Loop::new().unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let p = Pipe::new(&lp, false).unwrap();
    p.open(a).unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    tcp.bind("127.0.0.1:0".parse().unwrap(), TcpFlags::empty())
        .unwrap();
    let called = Rc::new(Cell::new(false));
    let c2 = called.clone();
    let err = p.write2("x", &tcp, move |_, _| c2.set(true)).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert_eq!(err.operation(), "uv_write2");
    // A closed handle to send is refused before libuv sees it.
    let gone = Tcp::new(&lp).unwrap();
    gone.close();
    let err = p.write2("x", &gone, |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), Category::ClosedHandle);
    p.close();
    tcp.close();
    lp.run(RunMode::Default).unwrap();
    assert!(!called.get());
    lp.close().unwrap();
}

#[test]
fn an_unbound_pipe_has_no_names() {
    let lp = Loop::new().unwrap();
    let p = Pipe::new(&lp, false).unwrap();
    assert_eq!(p.local_addr().unwrap_err().code(), StatusCode::EBADF);
    assert_eq!(p.peer_addr().unwrap_err().code(), StatusCode::EBADF);
    p.pending_instances(4).unwrap();
    p.close();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

#[test]
fn bad_names_for_bind2_and_connect2_are_einval() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    // Longer than any sun_path; NO_TRUNCATE refuses it instead of cutting it.
    let long = std::env::temp_dir().join(format!(
        "uv-pipes-{}-{}",
        std::process::id(),
        "x".repeat(200)
    ));
    let lp = Loop::new().unwrap();
    let p = Pipe::new(&lp, false).unwrap();
    let err = p.bind2(&long, PipeFlags::NO_TRUNCATE).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert_eq!(err.operation(), "uv_pipe_bind2");
    // A NUL byte inside a (non-abstract) path.
    let mid_nul = Path::new(OsStr::from_bytes(b"/tmp/uv-pipes\0mid"));
    assert_eq!(
        p.bind2(mid_nul, PipeFlags::empty()).unwrap_err().code(),
        StatusCode::EINVAL
    );
    let called = Rc::new(Cell::new(false));
    let c2 = called.clone();
    let err = p
        .connect2(&long, PipeFlags::NO_TRUNCATE, move |_, _| c2.set(true))
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert_eq!(err.operation(), "uv_pipe_connect2");
    let c3 = called.clone();
    let err = p
        .connect2("", PipeFlags::empty(), move |_, _| c3.set(true))
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    let c4 = called.clone();
    let err = p
        .connect2(mid_nul, PipeFlags::empty(), move |_, _| c4.set(true))
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    p.close();
    lp.run(RunMode::Default).unwrap();
    assert!(!called.get());
    lp.close().unwrap();
}

/// Binds `server` with `bind`, then checks it got a Linux autobind name (a NUL
/// byte and five hex digits) that a client can connect to.
#[cfg(target_os = "linux")]
fn check_autobind(bind: impl FnOnce(&Pipe) -> uv::Result<()>) {
    use std::os::unix::ffi::OsStrExt;

    let lp = Loop::new().unwrap();
    let server = Pipe::new(&lp, false).unwrap();
    bind(&server).unwrap();
    let name = server.local_addr().unwrap();
    let bytes = name.as_os_str().as_bytes();
    assert_eq!(bytes.len(), 6, "{bytes:?}");
    assert_eq!(bytes[0], 0);
    let accepted = Rc::new(Cell::new(false));
    let lh = lp.handle();
    let a2 = accepted.clone();
    server
        .listen(8, move |srv, st| {
            st.unwrap();
            let conn = Pipe::new(&lh, false).unwrap();
            srv.accept_into(&conn).unwrap();
            a2.set(true);
            conn.close();
            srv.close();
        })
        .unwrap();
    let client = Pipe::new(&lp, false).unwrap();
    client
        .connect2(&name, PipeFlags::empty(), |c, r| {
            r.unwrap();
            c.close();
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(accepted.get());
    lp.close().unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn bind_with_an_empty_path_autobinds() {
    check_autobind(|p| p.bind(""));
}

/// libuv treats a zero-length name as "autobind" on Linux and reads `name[0]`; the
/// binding passes the dangling pointer of an empty `Vec`, so the process crashes.
#[cfg(target_os = "linux")]
#[test]
fn bind2_with_an_empty_name_autobinds() {
    check_autobind(|p| p.bind2("", PipeFlags::empty()));
}

/// `accept_into` a pipe that already has a socket (one end of a socket pair) is
/// `EBUSY` and leaves the connection pending: a fresh pipe then takes it (and gets a
/// descriptor), after which nothing is pending (`EAGAIN`).
#[test]
fn accept_into_a_pipe_with_a_socket_is_ebusy_and_keeps_the_connection() {
    let sp = SockPath::new("accept-busy");
    let lp = Loop::new().unwrap();
    let server = Pipe::new(&lp, false).unwrap();
    server.bind(sp.path()).unwrap();
    let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let busy = Pipe::new(&lp, false).unwrap();
    busy.open(ours).unwrap();
    let results = Rc::new(RefCell::new(Vec::new()));
    let (r, lh, b) = (results.clone(), lp.handle(), busy.clone());
    server
        .listen(4, move |srv, status| {
            status.unwrap();
            r.borrow_mut()
                .push(srv.accept_into(&b).map_err(|e| e.code()));
            let fresh = Pipe::new(&lh, false).unwrap();
            r.borrow_mut()
                .push(srv.accept_into(&fresh).map_err(|e| e.code()));
            assert!(fresh.fileno().unwrap() >= 0);
            // Nothing is pending any more.
            let again = Pipe::new(&lh, false).unwrap();
            r.borrow_mut()
                .push(srv.accept_into(&again).map_err(|e| e.code()));
            again.close();
            fresh.close();
            b.close();
            srv.close();
        })
        .unwrap();
    let client = Pipe::new(&lp, false).unwrap();
    client
        .connect(sp.path(), |c, r| {
            r.unwrap();
            c.close();
        })
        .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(
        *results.borrow(),
        vec![Err(StatusCode::EBUSY), Ok(()), Err(StatusCode::EAGAIN)]
    );
    lp.close().unwrap();
}
