//! Regression tests for the soundness review: each group is one row of the review
//! (what used to crash, abort, hang, leak a descriptor or lose data) and asserts the
//! behaviour that replaced it. Row 14 (descriptor exhaustion) lowers the process's
//! descriptor limit, so it lives alone in `fd_limit.rs`.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uv::Stream as _;

use uv::{
    AddressFamily, Async, Category, Loop, Pipe, Poll, PollEvent, PoolAllocator, ReadAllocator,
    RunMode, StatusCode, Tcp, TcpFlags, Timer, Tty, TtyMode, Udp, UdpFlags,
};
use uv_tests::net::pipe_and_std;
use uv_tests::net::{fd_identity, pattern, tcp_listener, TempDir};

fn any_v4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Chunks read by a stream callback, and the error that ended them.
#[derive(Default)]
struct Reads {
    data: RefCell<Vec<u8>>,
    errors: RefCell<Vec<StatusCode>>,
}

/// A read callback that collects into `reads` and closes the stream on an error.
fn collect_into<K: std::ops::Deref<Target = uv::Handle>>(
    reads: &Rc<Reads>,
) -> impl FnMut(&K, uv::Result<&[u8]>) + 'static {
    let reads = reads.clone();
    move |s, d| match d {
        Ok(d) => reads.data.borrow_mut().extend_from_slice(d),
        Err(e) => {
            reads.errors.borrow_mut().push(e.code());
            s.close();
        }
    }
}

/// Reads the peer's "ping" (4 bytes) on `conn` into `reads`, then stops reading,
/// answers "pong" and closes.
fn answer_ping(conn: &Tcp, reads: Rc<Reads>) {
    conn.read_start(move |c, d| {
        reads.data.borrow_mut().extend_from_slice(d.unwrap());
        if reads.data.borrow().len() == 4 {
            c.read_stop().unwrap();
            c.write("pong", |c, r| {
                r.unwrap();
                c.close();
            })
            .unwrap();
        }
    })
    .unwrap();
}

/// Closes `h` and runs `lp` until the close is done; the descriptor the handle owned
/// (`fd`, open file `id`) must be closed then, and not before.
fn closes_its_descriptor(lp: &Loop, h: &uv::Handle, fd: i32, id: (u64, u64)) {
    assert_eq!(fd_identity(fd), Some(id), "closed before the handle was");
    h.close();
    lp.run(RunMode::Default).unwrap();
    assert!(h.is_closed());
    assert_ne!(
        fd_identity(fd),
        Some(id),
        "the descriptor outlived its handle"
    );
}

fn payload_message(p: &(dyn std::any::Any + Send)) -> Option<String> {
    uv_tests::panic_text(p).map(str::to_string)
}

// ---------------------------------------------------------------------------
// Row 1: a ReadAllocator may do anything to its own stream (it is never called
// from inside libuv's allocation callback).

#[derive(Clone, Copy)]
enum Action {
    ReadStop,
    Close,
}

/// Acts on its own stream on its `on_call`-th call (the first is made by
/// `read_start_with`, each later one after a read callback).
struct ActsOnItsStream {
    stream: Pipe,
    on_call: usize,
    action: Action,
    calls: usize,
    result: Rc<RefCell<Option<uv::Result<()>>>>,
}

impl ReadAllocator for ActsOnItsStream {
    fn allocate(&mut self, _suggested: usize) -> Option<Box<[u8]>> {
        self.calls += 1;
        if self.calls == self.on_call {
            let r = match self.action {
                Action::ReadStop => self.stream.read_stop(),
                Action::Close => {
                    self.stream.close();
                    Ok(())
                }
            };
            *self.result.borrow_mut() = Some(r);
        }
        Some(vec![0; 64].into_boxed_slice())
    }
}

fn acting_allocator(
    p: &Pipe,
    on_call: usize,
    action: Action,
) -> (ActsOnItsStream, Rc<RefCell<Option<uv::Result<()>>>>) {
    let result = Rc::new(RefCell::new(None));
    (
        ActsOnItsStream {
            stream: p.clone(),
            on_call,
            action,
            calls: 0,
            result: result.clone(),
        },
        result,
    )
}

#[test]
fn an_allocator_that_stops_reading_on_its_own_stream_does_not_crash() {
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let (alloc, result) = acting_allocator(&p, 2, Action::ReadStop);
    let reads = Rc::new(Reads::default());
    p.read_start_with(alloc, collect_into(&reads)).unwrap();
    peer.write_all(b"hello").unwrap();
    // The read stopped after the first chunk: nothing keeps the loop alive.
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*result.borrow(), Some(Ok(())));
    assert_eq!(&*reads.data.borrow(), b"hello");
    assert!(reads.errors.borrow().is_empty());
    assert!(!p.is_active());
    p.close();
    lp.run(RunMode::Default).unwrap();
    assert!(p.is_closed());
    assert_eq!(lp.handle_count(), 0);
    drop(peer);
}

#[test]
fn an_allocator_that_closes_its_own_stream_does_not_crash() {
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let (alloc, result) = acting_allocator(&p, 2, Action::Close);
    let reads = Rc::new(Reads::default());
    p.read_start_with(alloc, collect_into(&reads)).unwrap();
    peer.write_all(b"hello").unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*result.borrow(), Some(Ok(())));
    assert_eq!(&*reads.data.borrow(), b"hello");
    assert!(reads.errors.borrow().is_empty());
    assert!(p.is_closed());
    assert_eq!(lp.handle_count(), 0);
    drop(peer);
}

#[test]
fn an_allocator_that_closes_its_stream_in_read_start_does_not_crash() {
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let (alloc, result) = acting_allocator(&p, 1, Action::Close);
    let reads = Rc::new(Reads::default());
    peer.write_all(b"hello").unwrap();
    // The stream closed under `read_start_with`: it says so, or simply closes.
    if let Err(e) = p.read_start_with(alloc, collect_into(&reads)) {
        assert_eq!(e.kind(), Category::ClosedHandle, "{e}");
    }
    assert_eq!(*result.borrow(), Some(Ok(())));
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(reads.data.borrow().is_empty());
    assert!(p.is_closed());
    assert_eq!(lp.handle_count(), 0);
}

// ---------------------------------------------------------------------------
// Row 2: an IPC pipe reading into 2 GiB buffers gets its bytes, and the buffers
// go back to the allocator with their own layout.

/// A `PoolAllocator` that counts its buffers and checks the ones it gets back.
struct Watched {
    pool: PoolAllocator,
    allocated: Rc<Cell<usize>>,
    released: Rc<RefCell<Vec<usize>>>,
}

impl ReadAllocator for Watched {
    fn allocate(&mut self, suggested: usize) -> Option<Box<[u8]>> {
        self.allocated.set(self.allocated.get() + 1);
        self.pool.allocate(suggested)
    }

    fn release(&mut self, buf: Box<[u8]>) {
        self.released.borrow_mut().push(buf.len());
        self.pool.release(buf);
    }
}

#[test]
fn an_ipc_pipe_reads_into_two_gibibyte_buffers_and_gives_them_back() {
    const SIZE: usize = 0x8000_0000;
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, true);
    let allocated = Rc::new(Cell::new(0));
    let released = Rc::new(RefCell::new(Vec::new()));
    let reads = Rc::new(Reads::default());
    p.read_start_with(
        Watched {
            pool: PoolAllocator::new(SIZE, 1),
            allocated: allocated.clone(),
            released: released.clone(),
        },
        collect_into(&reads),
    )
    .unwrap();
    peer.write_all(b"hello").unwrap();
    drop(peer);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*reads.data.borrow(), b"hello");
    assert_eq!(*reads.errors.borrow(), vec![StatusCode::EOF]);
    assert!(p.is_closed());
    let released = released.borrow();
    assert!(!released.is_empty(), "no buffer went back");
    assert!(released.iter().all(|&n| n == SIZE), "{released:?}");
    assert!(released.len() <= allocated.get());
}

// ---------------------------------------------------------------------------
// Row 3: `open` and `Tty::new` own their descriptor (refused ones are handed back
// before libuv sees them), `Poll` keeps the value that owns its descriptor, and
// handles implement `AsRawFd`. (`Tcp::open` of a regular file: row 9.)

#[test]
fn tcp_open_refuses_a_udp_socket_and_hands_it_back() {
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    let rejected = tcp.open(udp).unwrap_err();
    assert_eq!(rejected.error().code(), StatusCode::EINVAL);
    let udp = UdpSocket::from(rejected.into_value());
    assert_eq!(udp.local_addr().unwrap(), addr);
    // Still a working socket.
    udp.connect(addr).unwrap();
    udp.send(b"self").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(udp.recv(&mut buf).unwrap(), 4);
    // The handle took nothing.
    assert_eq!(tcp.fileno().unwrap_err().code(), StatusCode::EBADF);
    tcp.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn udp_open_refuses_a_tcp_listener_and_hands_it_back() {
    let lp = Loop::new().unwrap();
    let udp = Udp::new(&lp).unwrap();
    let (listener, addr) = tcp_listener();
    let rejected = udp.open(listener).unwrap_err();
    assert_eq!(rejected.error().code(), StatusCode::EINVAL);
    let listener = std::net::TcpListener::from(rejected.into_value());
    assert_eq!(listener.local_addr().unwrap(), addr);
    // Still listening.
    let _c = TcpStream::connect(addr).unwrap();
    listener.accept().unwrap();
    udp.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn tcp_open_owns_the_socket_until_the_handle_is_closed() {
    let lp = Loop::new().unwrap();
    let (listener, addr) = tcp_listener();
    let fd = listener.as_raw_fd();
    let id = fd_identity(fd).unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    tcp.open(listener).unwrap();
    assert_eq!(tcp.as_raw_fd(), fd);
    assert_eq!(tcp.local_addr().unwrap(), addr);
    closes_its_descriptor(&lp, &tcp, fd, id);
}

#[test]
fn udp_open_owns_the_socket_until_the_handle_is_closed() {
    let lp = Loop::new().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let fd = sock.as_raw_fd();
    let id = fd_identity(fd).unwrap();
    let udp = Udp::new(&lp).unwrap();
    udp.open(sock).unwrap();
    assert_eq!(udp.as_raw_fd(), fd);
    closes_its_descriptor(&lp, &udp, fd, id);
}

#[test]
fn pipe_open_owns_the_socket_until_the_handle_is_closed() {
    let lp = Loop::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let id = fd_identity(fd).unwrap();
    let p = Pipe::new(&lp, false).unwrap();
    p.open(a).unwrap();
    assert_eq!(p.as_raw_fd(), fd);
    closes_its_descriptor(&lp, &p, fd, id);
}

#[test]
fn tty_new_owns_its_descriptor_until_the_handle_is_closed() {
    let lp = Loop::new().unwrap();
    // libuv's tty also takes sockets (only a terminal is reopened).
    let (a, _b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let id = fd_identity(fd).unwrap();
    let tty = Tty::new(&lp, OwnedFd::from(a), false).unwrap();
    assert_eq!(tty.as_raw_fd(), fd);
    closes_its_descriptor(&lp, &tty, fd, id);
}

#[test]
fn tty_new_refuses_a_regular_file_and_hands_it_back() {
    let dir = TempDir::new("tty-file");
    let lp = Loop::new().unwrap();
    let file = dir.file("f");
    let rejected = Tty::new(&lp, file, false).unwrap_err();
    assert_eq!(rejected.error().code(), StatusCode::EINVAL);
    let mut file = std::fs::File::from(rejected.into_value());
    file.write_all(b"still mine").unwrap();
    assert_eq!(file.metadata().unwrap().len(), 10);
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn poll_keeps_its_socket_open_until_closed() {
    let lp = Loop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let fd = a.as_raw_fd();
    let id = fd_identity(fd).unwrap();
    let a = Rc::new(a);
    let poll = Poll::new(&lp, a.clone()).unwrap();
    assert_eq!(poll.as_raw_fd(), fd);
    // The user's reference goes; the handle's keeps the socket open.
    drop(a);
    assert_eq!(fd_identity(fd), Some(id));
    b.write_all(b"x").unwrap();
    let events = Rc::new(RefCell::new(Vec::new()));
    let ev = events.clone();
    poll.start(PollEvent::READABLE, move |p, r, e| {
        r.unwrap();
        ev.borrow_mut().push(e);
        p.stop().unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(events.borrow().len(), 1);
    assert!(events.borrow()[0].contains(PollEvent::READABLE));
    closes_its_descriptor(&lp, &poll, fd, id);
}

#[test]
fn as_raw_fd_is_the_fileno_and_minus_one_without_a_socket() {
    let dir = TempDir::new("as-raw-fd");
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    let udp = Udp::new(&lp).unwrap();
    let pipe = Pipe::new(&lp, false).unwrap();
    // No socket yet.
    assert_eq!(tcp.as_raw_fd(), -1);
    assert_eq!(udp.as_raw_fd(), -1);
    assert_eq!(pipe.as_raw_fd(), -1);
    tcp.bind(any_v4(), TcpFlags::empty()).unwrap();
    udp.bind(any_v4(), UdpFlags::empty()).unwrap();
    pipe.bind(dir.join("s")).unwrap();
    assert_eq!(tcp.as_raw_fd(), tcp.fileno().unwrap());
    assert_eq!(udp.as_raw_fd(), udp.fileno().unwrap());
    assert_eq!(pipe.as_raw_fd(), pipe.fileno().unwrap());
    assert!(tcp.as_raw_fd() >= 0 && udp.as_raw_fd() >= 0 && pipe.as_raw_fd() >= 0);
    tcp.close();
    udp.close();
    pipe.close();
    // Closing (not yet closed) and closed: -1.
    assert_eq!(tcp.as_raw_fd(), -1);
    assert_eq!(udp.as_raw_fd(), -1);
    assert_eq!(pipe.as_raw_fd(), -1);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(tcp.as_raw_fd(), -1);
    assert_eq!(udp.as_raw_fd(), -1);
    assert_eq!(pipe.as_raw_fd(), -1);
}

// ---------------------------------------------------------------------------
// Row 4: a second `Pipe::connect` while one is in flight is EALREADY.

#[test]
fn a_second_pipe_connect_in_flight_is_ealready() {
    let dir = TempDir::new("connect-twice");
    let path = dir.join("s");
    let lp = Loop::new().unwrap();
    let server = Pipe::new(&lp, false).unwrap();
    server.bind(&path).unwrap();
    let lh = lp.handle();
    server
        .listen(8, move |srv, st| {
            st.unwrap();
            let conn = Pipe::new(&lh, false).unwrap();
            srv.accept_into(&conn).unwrap();
            conn.close();
            srv.close();
        })
        .unwrap();
    let client = Pipe::new(&lp, false).unwrap();
    let first = Rc::new(RefCell::new(Vec::new()));
    let f = first.clone();
    client
        .connect(&path, move |c, r| {
            f.borrow_mut().push(r);
            c.close();
        })
        .unwrap();
    let second = Rc::new(Cell::new(0));
    let s = second.clone();
    let err = client
        .connect(&path, move |_, _| s.set(s.get() + 1))
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EALREADY);
    let s = second.clone();
    let err = client
        .connect2(&path, uv::PipeFlags::empty(), move |_, _| {
            s.set(s.get() + 1)
        })
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EALREADY);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*first.borrow(), vec![Ok(())]);
    assert_eq!(second.get(), 0);
    assert_eq!(lp.handle_count(), 0);
    drop((client, server));
    // Must not block.
    drop(lp);
}

// ---------------------------------------------------------------------------
// Row 5: `Pipe::connect` on a listening pipe is EINVAL.

#[test]
fn pipe_connect_on_a_listening_pipe_is_einval() {
    let dir = TempDir::new("connect-listening");
    let path = dir.join("s");
    let lp = Loop::new().unwrap();
    let server = Pipe::new(&lp, false).unwrap();
    server.bind(&path).unwrap();
    server.listen(8, |_, _| {}).unwrap();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let err = server.connect(&path, move |_, _| c.set(true)).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    let c = called.clone();
    let err = server
        .connect2(&path, uv::PipeFlags::empty(), move |_, _| c.set(true))
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    server.close();
    lp.run(RunMode::Default).unwrap();
    assert!(!called.get());
}

// ---------------------------------------------------------------------------
// Row 6: `Pipe::connect` on a connected pipe is EISCONN, and its queued writes
// all complete.

#[test]
fn pipe_connect_on_a_connected_pipe_is_eisconn_and_queued_writes_complete() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 256; // 16 MiB
    let dir = TempDir::new("connect-connected");
    let path = dir.join("s");
    let expected = Rc::new(pattern(CHUNK * CHUNKS + 7).split_off(7));
    let lp = Loop::new().unwrap();

    let reads = Rc::new(Reads::default());
    let server = Pipe::new(&lp, false).unwrap();
    server.bind(&path).unwrap();
    let lh = lp.handle();
    let r = reads.clone();
    server
        .listen(8, move |srv, st| {
            st.unwrap();
            let conn = Pipe::new(&lh, false).unwrap();
            srv.accept_into(&conn).unwrap();
            srv.close();
            conn.read_start(collect_into(&r)).unwrap();
        })
        .unwrap();

    let written_ok = Rc::new(Cell::new(0usize));
    let write_errors = Rc::new(RefCell::new(Vec::new()));
    let second = Rc::new(RefCell::new(None));
    let queued = Rc::new(Cell::new(0usize));
    let second_called = Rc::new(Cell::new(false));
    let client = Pipe::new(&lp, false).unwrap();
    let (ok, errs, sec, q, sc, data, p2) = (
        written_ok.clone(),
        write_errors.clone(),
        second.clone(),
        queued.clone(),
        second_called.clone(),
        expected.clone(),
        path.clone(),
    );
    client
        .connect(&path, move |c, r| {
            r.unwrap();
            for chunk in data.chunks(CHUNK) {
                let (ok, errs) = (ok.clone(), errs.clone());
                c.write(chunk, move |_, r| match r {
                    Ok(()) => ok.set(ok.get() + 1),
                    Err(e) => errs.borrow_mut().push(e.code()),
                })
                .unwrap();
            }
            // The peer cannot have read yet: most of the 16 MiB is queued.
            q.set(c.write_queue_size());
            *sec.borrow_mut() = Some(c.connect(&p2, move |_, _| sc.set(true)));
            uv_tests::shutdown_and_close(c);
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(queued.get() > 0);
    let second = second.borrow_mut().take().unwrap();
    assert_eq!(second.unwrap_err().code(), StatusCode::EISCONN);
    assert!(!second_called.get());
    assert_eq!(*write_errors.borrow(), vec![]);
    assert_eq!(written_ok.get(), CHUNKS);
    assert_eq!(*reads.errors.borrow(), vec![StatusCode::EOF]);
    let got = reads.data.borrow();
    assert_eq!(got.len(), expected.len());
    assert!(*got == *expected, "the data differs");
    assert_eq!(lp.handle_count(), 0);
}

// ---------------------------------------------------------------------------
// Row 7: `accept` and `write2` across loops are EINVAL; the connection stays
// pending.

#[test]
fn accept_into_a_client_of_another_loop_is_einval_and_keeps_the_connection() {
    let lp_a = Loop::new().unwrap();
    let lp_b = Loop::new().unwrap();
    let server = Tcp::new(&lp_a).unwrap();
    server.bind(any_v4(), TcpFlags::empty()).unwrap();
    let addr = server.local_addr().unwrap();
    let refused = Rc::new(RefCell::new(None));
    let reads = Rc::new(Reads::default());
    let (lha, lhb, rf, rd) = (lp_a.handle(), lp_b.handle(), refused.clone(), reads.clone());
    server
        .listen(8, move |srv, st| {
            st.unwrap();
            let other = Tcp::new(&lhb).unwrap();
            *rf.borrow_mut() = Some(srv.accept_into(&other).map_err(|e| e.code()));
            other.close();
            let ours = Tcp::new(&lha).unwrap();
            srv.accept_into(&ours).unwrap();
            srv.close();
            answer_ping(&ours, rd.clone());
        })
        .unwrap();
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.write_all(b"ping").unwrap();
    lp_a.run(RunMode::Default).unwrap();
    lp_b.run(RunMode::Default).unwrap();
    assert_eq!(*refused.borrow(), Some(Err(StatusCode::EINVAL)));
    assert_eq!(&*reads.data.borrow(), b"ping");
    let mut back = Vec::new();
    peer.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"pong");
    assert_eq!(lp_a.handle_count(), 0);
    assert_eq!(lp_b.handle_count(), 0);
}

#[test]
fn write2_of_a_handle_of_another_loop_is_einval() {
    let lp_a = Loop::new().unwrap();
    let lp_b = Loop::new().unwrap();
    let (p, _peer) = pipe_and_std(&lp_a, true);
    let t = Tcp::new(&lp_b).unwrap();
    t.bind(any_v4(), TcpFlags::empty()).unwrap();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let err = p.write2("x", &t, move |_, _| c.set(true)).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert_eq!(p.write_queue_size(), 0);
    p.close();
    t.close();
    lp_a.run(RunMode::Default).unwrap();
    lp_b.run(RunMode::Default).unwrap();
    assert!(!called.get());
}

// ---------------------------------------------------------------------------
// Row 8: unknown flag bits, flags outside a function's allowed set and unknown
// enum values are EINVAL before libuv sees them.

#[test]
fn poll_start_with_an_unknown_event_bit_is_einval() {
    let lp = Loop::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let poll = Poll::new(&lp, a).unwrap();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let err = poll
        .start(PollEvent::from_bits_retain(0x40), move |_, _, _| {
            c.set(true)
        })
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert!(!poll.is_active());
    poll.close();
    lp.run(RunMode::Default).unwrap();
    assert!(!called.get());
}

#[test]
fn tcp_bind_with_an_unknown_flag_is_einval() {
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    let err = tcp
        .bind(any_v4(), TcpFlags::from_bits_retain(1 << 20))
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    // Nothing was bound; a valid bind still works.
    tcp.bind(any_v4(), TcpFlags::empty()).unwrap();
    tcp.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn pipe_chmod_with_a_flag_outside_its_allowed_set_is_einval() {
    let dir = TempDir::new("chmod-disconnect");
    let lp = Loop::new().unwrap();
    let p = Pipe::new(&lp, false).unwrap();
    p.bind(dir.join("s")).unwrap();
    let err = p.chmod(PollEvent::DISCONNECT).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    let err = p
        .chmod(PollEvent::READABLE | PollEvent::DISCONNECT)
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    p.chmod(PollEvent::READABLE).unwrap();
    p.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn tty_set_mode_with_an_unknown_mode_is_einval() {
    let lp = Loop::new().unwrap();
    // A pseudo-terminal, where libuv would reach its "unreachable" branch; a socket
    // where there is none.
    let fd: OwnedFd = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/ptmx")
    {
        Ok(f) => f.into(),
        Err(_) => UnixStream::pair().unwrap().0.into(),
    };
    let tty = Tty::new(&lp, fd, true).unwrap();
    let err = tty.set_mode(TtyMode::Other(42)).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    tty.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn an_unknown_address_family_is_einval() {
    let lp = Loop::new().unwrap();
    let err = Tcp::with_family(&lp, AddressFamily::Other(12345)).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    let err = Udp::with_family(&lp, AddressFamily::Other(12345)).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert_eq!(lp.handle_count(), 0);
}

// ---------------------------------------------------------------------------
// Row 9: a regular file is refused by `Pipe::open` (EINVAL) and `Tcp::open`
// (ENOTSOCK), and handed back.

#[test]
fn pipe_open_of_a_regular_file_is_einval_and_hands_it_back() {
    let dir = TempDir::new("pipe-file");
    let lp = Loop::new().unwrap();
    let p = Pipe::new(&lp, false).unwrap();
    let rejected = p.open(dir.file("f")).unwrap_err();
    assert_eq!(rejected.error().code(), StatusCode::EINVAL);
    let mut file = std::fs::File::from(rejected.into_value());
    file.write_all(b"still mine").unwrap();
    assert_eq!(file.metadata().unwrap().len(), 10);
    assert_eq!(p.fileno().unwrap_err().code(), StatusCode::EBADF);
    p.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn tcp_open_of_a_regular_file_is_enotsock_and_hands_it_back() {
    let dir = TempDir::new("tcp-file");
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    let rejected = tcp.open(dir.file("f")).unwrap_err();
    assert_eq!(rejected.error().code(), StatusCode::ENOTSOCK);
    let mut file = std::fs::File::from(rejected.into_value());
    file.write_all(b"still mine").unwrap();
    assert_eq!(file.metadata().unwrap().len(), 10);
    assert_eq!(tcp.fileno().unwrap_err().code(), StatusCode::EBADF);
    tcp.close();
    lp.run(RunMode::Default).unwrap();
}

// ---------------------------------------------------------------------------
// Row 10: two panics in one iteration, the second with a payload whose `Drop`
// panics: no abort, the first is resumed, the loop stays usable.

struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("PanicsOnDrop dropped");
    }
}

#[test]
fn two_panics_in_one_iteration_resume_the_first() {
    let lp = Loop::new().unwrap();
    let ran = Rc::new(Cell::new(0));
    let t1 = Timer::new(&lp).unwrap();
    let t2 = Timer::new(&lp).unwrap();
    let r = ran.clone();
    t1.start(Duration::ZERO, Duration::ZERO, move |_| {
        r.set(r.get() + 1);
        panic!("first panic");
    })
    .unwrap();
    let r = ran.clone();
    t2.start(Duration::ZERO, Duration::ZERO, move |_| {
        r.set(r.get() + 1);
        std::panic::panic_any(PanicsOnDrop);
    })
    .unwrap();
    let payload = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    if payload.is::<PanicsOnDrop>() {
        std::mem::forget(payload);
        panic!("run() resumed the second panic, not the first");
    }
    assert_eq!(payload_message(&*payload).as_deref(), Some("first panic"));
    assert_eq!(ran.get(), 2);
    // Still usable.
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let t3 = Timer::new(&lp).unwrap();
    t3.start(Duration::ZERO, Duration::ZERO, move |t| {
        f.set(true);
        t.close();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(fired.get());
    t1.close();
    t2.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
}

// ---------------------------------------------------------------------------
// Row 11: `accept` into a client that has a socket is EBUSY, into a client of the
// wrong type EINVAL; the pending connection is kept for a later accept.

#[test]
fn accept_into_a_busy_or_wrong_client_keeps_the_connection() {
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    server.bind(any_v4(), TcpFlags::empty()).unwrap();
    let addr = server.local_addr().unwrap();
    let refusals = Rc::new(RefCell::new(Vec::new()));
    let reads = Rc::new(Reads::default());
    let (lh, rf, rd) = (lp.handle(), refusals.clone(), reads.clone());
    server
        .listen(8, move |srv, st| {
            st.unwrap();
            let busy = Tcp::new(&lh).unwrap();
            busy.bind("127.0.0.1:0".parse().unwrap(), TcpFlags::empty())
                .unwrap();
            rf.borrow_mut()
                .push(srv.accept_into(&busy).map_err(|e| e.code()));
            busy.close();
            let pipe = Pipe::new(&lh, false).unwrap();
            rf.borrow_mut()
                .push(srv.accept_into(&pipe).map_err(|e| e.code()));
            pipe.close();
            let fresh = Tcp::new(&lh).unwrap();
            srv.accept_into(&fresh).unwrap();
            srv.close();
            answer_ping(&fresh, rd.clone());
        })
        .unwrap();
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.write_all(b"ping").unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        *refusals.borrow(),
        vec![Err(StatusCode::EBUSY), Err(StatusCode::EINVAL)]
    );
    assert_eq!(&*reads.data.borrow(), b"ping");
    // The peer's first bytes are the answer, not an EOF.
    let mut back = Vec::new();
    peer.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"pong");
    assert_eq!(lp.handle_count(), 0);
}

// ---------------------------------------------------------------------------
// Row 12: `Udp::with_flags` takes creation flags only.

#[test]
fn udp_with_flags_refuses_a_receive_flag() {
    let lp = Loop::new().unwrap();
    let err = Udp::with_flags(&lp, AddressFamily::Inet, UdpFlags::MMSG_CHUNK).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn udp_with_flags_recvmmsg_makes_an_ipv4_socket() {
    let lp = Loop::new().unwrap();
    let u = Udp::with_flags(&lp, AddressFamily::Inet, UdpFlags::RECVMMSG).unwrap();
    u.bind(any_v4(), UdpFlags::empty()).unwrap();
    assert_eq!(u.family().unwrap(), Some(AddressFamily::Inet));
    assert!(u.local_addr().unwrap().is_ipv4());
    u.close();
    lp.run(RunMode::Default).unwrap();
}

// ---------------------------------------------------------------------------
// Row 13: jobs accepted by `call_later` run when the loop is dropped unrun.

#[test]
fn call_later_jobs_run_when_the_loop_is_dropped_without_running() {
    let lp = Loop::new().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let c = count.clone();
        lp.call_later(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    assert_eq!(count.load(Ordering::SeqCst), 0);
    drop(lp);
    assert_eq!(count.load(Ordering::SeqCst), 100);
}

// ---------------------------------------------------------------------------
// Rows 15 and 16: UDP with RECVMMSG: the "drained" event, and batches.

#[derive(Debug, PartialEq)]
enum Received {
    Datagram(Vec<u8>, UdpFlags),
    Drained,
}

/// A RECVMMSG socket on 127.0.0.1 that records what it receives until it has
/// `want` datagrams and a drained event after them, then closes.
fn mmsg_receiver(lp: &Loop, want: usize) -> (Udp, SocketAddr, Rc<RefCell<Vec<Received>>>) {
    let rx = Udp::with_flags(lp, AddressFamily::Inet, UdpFlags::RECVMMSG).unwrap();
    rx.bind(any_v4(), UdpFlags::empty()).unwrap();
    let addr = rx.local_addr().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let mut datagrams = 0;
    rx.recv_start(move |u, d| {
        let d = d.unwrap();
        if d.is_drained() {
            assert!(d.data.is_empty() && d.addr.is_none());
            g.borrow_mut().push(Received::Drained);
            if datagrams == want {
                u.close();
            }
        } else {
            assert!(d.addr.is_some());
            datagrams += 1;
            g.borrow_mut()
                .push(Received::Datagram(d.data.to_vec(), d.flags));
        }
    })
    .unwrap();
    (rx, addr, got)
}

#[test]
fn a_recvmmsg_socket_reports_drained_after_the_datagrams() {
    let lp = Loop::new().unwrap();
    let (rx, addr, got) = mmsg_receiver(&lp, 3);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    // An empty datagram is not a drained event: it has a sender.
    for m in [&b"one"[..], b"", b"three"] {
        tx.send_to(m, addr).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert!(rx.is_closed());
    let got = got.borrow();
    let data: Vec<&[u8]> = got
        .iter()
        .filter_map(|r| match r {
            Received::Datagram(d, _) => Some(&d[..]),
            Received::Drained => None,
        })
        .collect();
    assert_eq!(data, vec![&b"one"[..], b"", b"three"]);
    assert_eq!(got.last(), Some(&Received::Drained));
}

#[test]
fn a_recvmmsg_socket_receives_datagrams_in_batches() {
    const N: usize = 16;
    let lp = Loop::new().unwrap();
    let (rx, addr, got) = mmsg_receiver(&lp, N);
    assert!(rx.using_recvmmsg().unwrap());
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent: Vec<Vec<u8>> = (0..N)
        .map(|i| format!("datagram {i:02}").into_bytes())
        .collect();
    for m in &sent {
        tx.send_to(m, addr).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert!(rx.is_closed());
    let got = got.borrow();
    // Datagrams between two drained events came in one burst.
    let mut bursts = vec![0usize];
    let mut data = Vec::new();
    for r in got.iter() {
        match r {
            Received::Datagram(d, flags) => {
                assert!(flags.contains(UdpFlags::MMSG_CHUNK), "{flags:?}");
                assert!(!flags.contains(UdpFlags::PARTIAL), "{flags:?}");
                *bursts.last_mut().unwrap() += 1;
                data.push(d.clone());
            }
            Received::Drained => bursts.push(0),
        }
    }
    assert_eq!(data, sent);
    assert!(
        bursts.iter().any(|&n| n >= 2),
        "no batch of two or more: {bursts:?}"
    );
}

// ---------------------------------------------------------------------------
// Row 17: an `Async` sent to and then dropped delivers the wake-up once, then
// closes itself.

#[test]
fn a_dropped_async_with_a_pending_send_runs_once_then_closes() {
    let lp = Loop::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let a = Async::new(&lp, move |_| c.set(c.get() + 1)).unwrap();
    a.send().unwrap();
    let a2 = a.clone();
    drop(a);
    drop(a2);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    assert_eq!(lp.handle_count(), 0);
}

// ---------------------------------------------------------------------------
// Row 18: `family()` on a closed handle is a ClosedHandle error.

#[test]
fn udp_family_on_a_closed_handle_is_closed_handle() {
    let lp = Loop::new().unwrap();
    let u = Udp::new(&lp).unwrap();
    u.bind(any_v4(), UdpFlags::empty()).unwrap();
    u.close();
    assert_eq!(u.family().unwrap_err().kind(), Category::ClosedHandle);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(u.family().unwrap_err().kind(), Category::ClosedHandle);
}

#[test]
fn tcp_family_on_a_closed_handle_is_closed_handle() {
    let lp = Loop::new().unwrap();
    let t = Tcp::new(&lp).unwrap();
    t.bind(any_v4(), TcpFlags::empty()).unwrap();
    t.close();
    assert_eq!(t.family().unwrap_err().kind(), Category::ClosedHandle);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(t.family().unwrap_err().kind(), Category::ClosedHandle);
}
