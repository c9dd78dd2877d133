//! Attacks on descriptor passing and IPC pipes: what an IPC pipe may be opened on
//! or accept, handles sent with `write2` (closed while queued, a pipe sending
//! itself), many handles in flight at once, messages whose descriptors libuv
//! cannot take (too many, or none left to the process), received handles of the
//! wrong type or left pending when the pipe goes; and, beside them, a child's
//! stdio streams (closing, repeated, of another loop), `kill` of a reaped child,
//! spawns too big for `execve`, and the file-system requests' descriptors.
//!
//! Every test asserts values, counts and error codes. A loop that would wait for
//! good shows as a loop that ends first (`uv_tests::net::run_until` panics) or as
//! a count of iterations (`run_with_heartbeat`); a descriptor left open as a
//! peer's read that would block (`uv_tests::net::ends_seen`).

#![cfg(unix)]
// The descriptor-loss tests run on Linux and Android only; their helpers stay.
#![cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use uv::{
    Fs, HandleType, Loop, Pipe, Process, ProcessOptions, RunMode, Signum, StatusCode, Stdio,
    Stream as _, Tcp,
};
use uv_tests::net::ipc_pair;
use uv_tests::net::{ends_seen, fd_identity, run_until, send_fds};

/// The bytes a pipe read, and the error that ended its reading.
type Reads = (Rc<RefCell<Vec<u8>>>, Rc<RefCell<Option<StatusCode>>>);

/// Reads everything `p` receives into a shared buffer (an error closes it and is
/// recorded).
fn record_reads(p: &Pipe) -> Reads {
    let got = Rc::new(RefCell::new(Vec::new()));
    let err = Rc::new(RefCell::new(None));
    let (g, e) = (got.clone(), err.clone());
    p.read_start(move |p, d| match d {
        Ok(d) => g.borrow_mut().extend_from_slice(d),
        Err(x) => {
            *e.borrow_mut() = Some(x.code());
            p.close();
        }
    })
    .unwrap();
    (got, err)
}

/// An IPC pipe opened on a FIFO (an anonymous pipe's read end) used to be taken:
/// `open` succeeded, and the first read failed with `ENOTSOCK` (libuv reads an IPC
/// pipe with `recvmsg`). Now `open` refuses it with `ENOTSOCK` and hands the
/// descriptor back, the handle stays usable, and a pipe without IPC still takes it.
#[test]
fn an_ipc_pipe_refuses_a_fifo_at_open() {
    let lp = Loop::new().unwrap();
    let (r, mut w) = std::io::pipe().unwrap();
    let before = fd_identity(r.as_raw_fd());
    let p = Pipe::new(&lp, true).unwrap();
    let rej = p.open(r).unwrap_err();
    assert_eq!(rej.error().code(), StatusCode::ENOTSOCK);
    let r: OwnedFd = rej.into_value();
    assert_eq!(fd_identity(r.as_raw_fd()), before);
    // The refused handle takes a socket afterwards.
    let (mine, _other) = UnixStream::pair().unwrap();
    p.open(mine).unwrap();
    p.close();
    // A pipe without IPC reads the FIFO.
    let plain = Pipe::new(&lp, false).unwrap();
    plain.open(r).unwrap();
    let (got, err) = record_reads(&plain);
    std::io::Write::write_all(&mut w, b"fifo").unwrap();
    drop(w);
    run_until(&lp, || err.borrow().is_some());
    assert_eq!(&*got.borrow(), b"fifo");
    assert_eq!(*err.borrow(), Some(StatusCode::EOF));
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

/// As [`an_ipc_pipe_refuses_a_fifo_at_open`], for a terminal (a pseudo-terminal's
/// slave side) and for the raw variant: `ENOTSOCK` before libuv sees it, where the
/// first read used to fail.
#[test]
fn an_ipc_pipe_refuses_a_terminal_and_a_raw_fifo_at_open() {
    let lp = Loop::new().unwrap();
    let (_master, slave) = uv_tests::pty();
    let p = Pipe::new(&lp, true).unwrap();
    let rej = p.open(slave).unwrap_err();
    assert_eq!(rej.error().code(), StatusCode::ENOTSOCK);
    let (r, _w) = std::io::pipe().unwrap();
    // SAFETY: `r` is open and owned here; the call is refused before libuv takes
    // it (checked below), so `r` still closes it.
    let e = unsafe { p.open_raw(r.as_raw_fd()) }.unwrap_err();
    assert_eq!(e.code(), StatusCode::ENOTSOCK);
    assert_eq!(p.fileno().map_err(|e| e.code()), Err(StatusCode::EBADF));
    p.close();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

/// A pipe handle on a FIFO sent over an IPC pipe arrives as a pipe (libuv guesses
/// the type); accepted into an IPC pipe it used to fail at its first read with
/// `ENOTSOCK`. Now `accept_into` an IPC pipe is `EINVAL` with the handle left
/// pending, a pipe without IPC takes it and reads what the FIFO carries, and
/// `accept` makes a pipe without IPC for it.
#[test]
fn a_received_fifo_goes_into_a_pipe_without_ipc() {
    let lp = Loop::new().unwrap();
    let (tx, rx) = ipc_pair(&lp);
    let mut writers = Vec::new();
    for _ in 0..2 {
        let (r, w) = std::io::pipe().unwrap();
        let fifo = Pipe::new(&lp, false).unwrap();
        fifo.open(r).unwrap();
        tx.write2("h", &fifo, |_, r| r.unwrap()).unwrap();
        // The receiver has its own descriptor once the write is done.
        fifo.close();
        writers.push(w);
    }
    let (bytes, _) = record_reads(&rx);
    run_until(&lp, || rx.pending_count().unwrap() == 2);
    assert_eq!(&*bytes.borrow(), b"hh");
    assert_eq!(rx.pending_type().unwrap(), HandleType::NamedPipe);

    let ipc_client = Pipe::new(&lp, true).unwrap();
    assert_eq!(
        rx.accept_into(&ipc_client).unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(rx.pending_count().unwrap(), 2);
    ipc_client.close();

    let plain = Pipe::new(&lp, false).unwrap();
    rx.accept_into(&plain).unwrap();
    let made = rx.accept().unwrap();
    assert_eq!(rx.pending_count().unwrap(), 0);
    let mut reads = Vec::new();
    for (p, w) in [plain, made].iter().zip(&mut writers) {
        reads.push(record_reads(p));
        std::io::Write::write_all(w, b"through").unwrap();
    }
    writers.clear();
    run_until(&lp, || reads.iter().all(|(_, e)| e.borrow().is_some()));
    for (got, err) in &reads {
        assert_eq!(&*got.borrow(), b"through");
        assert_eq!(*err.borrow(), Some(StatusCode::EOF));
    }
    tx.close();
    rx.close();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

/// Runs `lp` one iteration at a time until `done()` holds, with a repeating 1 ms
/// timer so that every iteration ends: a loop that waits for an event that never
/// comes shows as `false` after `limit` iterations (a watchdog, not a time limit
/// on a passing run, which ends as soon as `done()` holds).
fn run_with_heartbeat(lp: &Loop, limit: u32, mut done: impl FnMut() -> bool) -> bool {
    let beat = uv::Timer::new(lp).unwrap();
    beat.start(
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(1),
        |_| {},
    )
    .unwrap();
    let mut n = 0;
    while !done() && n < limit {
        lp.run(RunMode::Once).unwrap();
        n += 1;
    }
    beat.close();
    done()
}

/// A pipe handle (no IPC) on one end of a socket pair, and the other end: a
/// handle to send.
fn sendable(lp: &Loop) -> (Pipe, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    let p = Pipe::new(lp, false).unwrap();
    p.open(a).unwrap();
    (p, b)
}

/// Queues on `tx` more bytes than the socket buffers hold (nobody reads yet), so
/// that the writes after it wait in libuv's queue. The count of its completions.
fn fill(tx: &Pipe, done: &Rc<Cell<u32>>) {
    let d = done.clone();
    tx.write(vec![7u8; 8 << 20], move |_, r| {
        r.unwrap();
        d.set(d.get() + 1);
    })
    .unwrap();
    assert!(tx.write_queue_size() > 0);
}

/// A handle closed while a `write2` that sends it waits in the queue (the request
/// keeps the handle's memory, not its descriptor): libuv fails that write with
/// `EBADF` (`uv__try_write` tests the sent handle for closing before it reads its
/// descriptor, which would be -1 and assert), and the writes queued behind it
/// still go out, in order (its error path stops the write watch, and the
/// completion it queues runs the write loop again).
#[test]
fn closing_a_handle_queued_for_sending_keeps_the_writes_behind_it() {
    let lp = Loop::new().unwrap();
    let (tx, rx) = ipc_pair(&lp);
    let big = Rc::new(Cell::new(0));
    fill(&tx, &big);
    let (h, _peer) = sendable(&lp);
    let sent = Rc::new(RefCell::new(None));
    let s = sent.clone();
    tx.write2("h", &h, move |_, r| {
        *s.borrow_mut() = Some(r.map_err(|e| e.code()))
    })
    .unwrap();
    let after = Rc::new(Cell::new(false));
    let a = after.clone();
    tx.write("after", move |_, r| {
        r.unwrap();
        a.set(true);
    })
    .unwrap();
    h.close();
    let got = Rc::new(Cell::new(0usize));
    let g = got.clone();
    let tail = Rc::new(RefCell::new(Vec::new()));
    let t = tail.clone();
    rx.read_start(move |_, d| {
        let d = d.unwrap();
        g.set(g.get() + d.len());
        let mut t = t.borrow_mut();
        t.extend_from_slice(d);
        let keep = t.len().saturating_sub(16);
        t.drain(..keep);
    })
    .unwrap();
    let ok = run_with_heartbeat(&lp, 20_000, || after.get());
    assert!(ok, "the write behind the failed write2 never went out");
    assert_eq!(big.get(), 1);
    assert_eq!(*sent.borrow(), Some(Err(StatusCode::EBADF)));
    run_with_heartbeat(&lp, 20_000, || got.get() == (8 << 20) + 5);
    assert_eq!(got.get(), (8 << 20) + 5);
    assert!(tail.borrow().ends_with(b"after"));
    assert_eq!(rx.pending_count().unwrap(), 0);
    tx.close();
    rx.close();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

/// Handles received but never accepted are closed with the pipe: libuv closes its
/// pending descriptor and its queue (`uv__stream_close`). Each sent socket's peer
/// sees the end of the stream once the sender's copy is closed too, so no copy is
/// left in this process.
#[test]
fn closing_a_pipe_with_pending_handles_closes_their_descriptors() {
    let lp = Loop::new().unwrap();
    let (tx, rx) = ipc_pair(&lp);
    let mut peers = Vec::new();
    for _ in 0..5 {
        let (h, peer) = sendable(&lp);
        tx.write2("h", &h, |_, r| r.unwrap()).unwrap();
        h.close();
        peers.push(peer);
    }
    let (bytes, _) = record_reads(&rx);
    run_until(&lp, || rx.pending_count().unwrap() == 5);
    assert_eq!(&*bytes.borrow(), b"hhhhh");
    rx.close();
    tx.close();
    lp.run(RunMode::Default).unwrap();
    let n = peers.len();
    assert_eq!(ends_seen(&peers, n), n);
    lp.close().unwrap();
}

/// A hundred handles sent at once, before the receiver reads: libuv sends one
/// descriptor per `sendmsg` and its receiver's control buffer holds 60, and the
/// kernel never hands the descriptors of two messages to one `recvmsg`, so none is
/// cut off (`MSG_CTRUNC`): all hundred arrive, in order, each accepted and working.
#[test]
fn a_hundred_handles_sent_at_once_all_arrive() {
    const N: usize = 100;
    let lp = Loop::new().unwrap();
    let (tx, rx) = ipc_pair(&lp);
    let mut peers = Vec::new();
    for i in 0..N {
        let (h, peer) = sendable(&lp);
        tx.write2(vec![i as u8], &h, |_, r| r.unwrap()).unwrap();
        h.close();
        peers.push(peer);
    }
    let (bytes, _) = record_reads(&rx);
    run_until(&lp, || bytes.borrow().len() == N);
    assert_eq!(rx.pending_count().unwrap(), N as i32);
    assert_eq!(*bytes.borrow(), (0..N as u8).collect::<Vec<_>>());
    let mut received = Vec::new();
    while rx.pending_count().unwrap() > 0 {
        let p = Pipe::new(&lp, false).unwrap();
        rx.accept_into(&p).unwrap();
        received.push(p);
    }
    assert_eq!(received.len(), N);
    // Each received handle is its sender's socket: what its peer writes arrives
    // through it, in the order sent.
    let firsts = Rc::new(RefCell::new(vec![None; N]));
    for (i, p) in received.iter().enumerate() {
        let f = firsts.clone();
        p.read_start(move |p, d| {
            f.borrow_mut()[i] = Some(d.unwrap()[0]);
            p.close();
        })
        .unwrap();
    }
    for (i, peer) in peers.iter_mut().enumerate() {
        std::io::Write::write_all(peer, &[i as u8]).unwrap();
    }
    run_until(&lp, || firsts.borrow().iter().all(Option::is_some));
    let want: Vec<_> = (0..N as u8).map(Some).collect();
    assert_eq!(*firsts.borrow(), want);
    tx.close();
    rx.close();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

/// A pipe sending itself, and the pipe at the other end sent to itself: the
/// receiver gets a copy of each end of the one socket pair (libuv sends the
/// descriptor as it is at the time of the write). Both copies work in the loop
/// beside the handles they copy: bytes written through the copy of the sending
/// end arrive at the receiver, and the receiver's copy reads what the receiver
/// would. Every descriptor is closed with the handles (valgrind, and the loop
/// closes clean).
#[test]
fn a_pipe_sends_itself_and_its_peer() {
    let lp = Loop::new().unwrap();
    let (tx, rx) = ipc_pair(&lp);
    tx.write2("a", &tx, |_, r| r.unwrap()).unwrap();
    tx.write2("b", &rx, |_, r| r.unwrap()).unwrap();
    let (bytes, _) = record_reads(&rx);
    run_until(&lp, || rx.pending_count().unwrap() == 2);
    assert_eq!(&*bytes.borrow(), b"ab");
    rx.read_stop().unwrap();
    let copy_of_tx = Pipe::new(&lp, true).unwrap();
    rx.accept_into(&copy_of_tx).unwrap();
    let copy_of_rx = Pipe::new(&lp, true).unwrap();
    rx.accept_into(&copy_of_rx).unwrap();
    // Through the copy of the sending end, to the receiving end (read by the
    // receiver or its copy: one socket, two descriptors).
    let (got_rx, _) = record_reads(&rx);
    let (got_copy, _) = record_reads(&copy_of_rx);
    copy_of_tx.write("via copy", |_, r| r.unwrap()).unwrap();
    run_until(&lp, || got_rx.borrow().len() + got_copy.borrow().len() == 8);
    let mut all = got_rx.borrow().clone();
    all.extend_from_slice(&got_copy.borrow());
    assert_eq!(all, b"via copy");
    for p in [&tx, &rx, &copy_of_tx, &copy_of_rx] {
        p.close();
    }
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

/// A received handle offered to a stream of the wrong type stays pending
/// (`EINVAL`), whatever the stream: a TCP handle for a received pipe, a pipe for a
/// received TCP socket, a terminal for either; then the right type takes it.
#[test]
fn accepting_a_received_handle_into_the_wrong_type_keeps_it_pending() {
    let lp = Loop::new().unwrap();
    let (tx, rx) = ipc_pair(&lp);
    let (h, _peer) = sendable(&lp);
    let (l, addr) = uv_tests::net::tcp_listener();
    let t = Tcp::new(&lp).unwrap();
    let std_tcp = std::net::TcpStream::connect(addr).unwrap();
    let _accepted = l.accept().unwrap();
    t.open(std_tcp).unwrap();
    tx.write2("p", &h, |_, r| r.unwrap()).unwrap();
    tx.write2("t", &t, |_, r| r.unwrap()).unwrap();
    let (bytes, _) = record_reads(&rx);
    run_until(&lp, || rx.pending_count().unwrap() == 2);
    assert_eq!(&*bytes.borrow(), b"pt");
    let (_master, slave) = uv_tests::pty();
    let tty = uv::Tty::new(&lp, slave, true).unwrap();

    assert_eq!(rx.pending_type().unwrap(), HandleType::NamedPipe);
    let wrong_tcp = Tcp::new(&lp).unwrap();
    assert_eq!(
        rx.accept_into(&wrong_tcp).unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(rx.accept_into(&tty).unwrap_err().code(), StatusCode::EINVAL);
    assert_eq!(rx.pending_count().unwrap(), 2);
    let p = Pipe::new(&lp, false).unwrap();
    rx.accept_into(&p).unwrap();

    assert_eq!(rx.pending_type().unwrap(), HandleType::Tcp);
    let wrong_pipe = Pipe::new(&lp, false).unwrap();
    assert_eq!(
        rx.accept_into(&wrong_pipe).unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(rx.accept_into(&tty).unwrap_err().code(), StatusCode::EINVAL);
    // `accept` makes the server's type, a pipe: refused, and nothing is lost.
    assert_eq!(rx.accept().unwrap_err().code(), StatusCode::EINVAL);
    assert_eq!(rx.pending_count().unwrap(), 1);
    rx.accept_into(&wrong_tcp).unwrap();
    assert_eq!(wrong_tcp.peer_addr().unwrap(), addr);
    assert_eq!(rx.pending_count().unwrap(), 0);
    assert_eq!(
        rx.accept_into(&wrong_pipe).unwrap_err().code(),
        StatusCode::EAGAIN
    );
    for x in [&tx, &rx, &h, &p, &wrong_pipe] {
        x.close();
    }
    t.close();
    wrong_tcp.close();
    tty.close();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

/// Reads `p`, recording each event: the bytes of a chunk, or the error.
fn record_events(p: &Pipe) -> Events {
    let events = Rc::new(RefCell::new(Vec::new()));
    let e = events.clone();
    p.read_start(move |_, d| {
        e.borrow_mut()
            .push(d.map(<[u8]>::to_vec).map_err(|x| x.code()))
    })
    .unwrap();
    events
}

/// What a pipe's read callback got, in order.
type Events = Rc<RefCell<Vec<Result<Vec<u8>, StatusCode>>>>;

/// As [`record_events`], reading into buffers of a `ReadAllocator`.
fn record_events_with_allocator(p: &Pipe) -> Events {
    let events = Rc::new(RefCell::new(Vec::new()));
    let e = events.clone();
    p.read_start_with(uv::PoolAllocator::new(4096, 2), move |_, d| {
        e.borrow_mut()
            .push(d.map(<[u8]>::to_vec).map_err(|x| x.code()))
    })
    .unwrap();
    events
}

/// Another program sends a hundred descriptors in one message (libuv's own
/// `write2` sends one per message). libuv's read takes 60 (its control buffer is
/// 256 bytes) and ignores the kernel's `MSG_CTRUNC`: the other 40 were closed by
/// the kernel unseen, a silent loss. Now the read callback gets `EMSGSIZE`, then
/// the message's byte (the read that takes it), and reading goes on; the 60 are
/// pending as before.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn a_message_with_more_descriptors_than_libuv_takes_is_reported() {
    more_descriptors_than_libuv_takes(record_events);
    more_descriptors_than_libuv_takes(record_events_with_allocator);
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn more_descriptors_than_libuv_takes(read: fn(&Pipe) -> Events) {
    const N: usize = 100;
    let lp = Loop::new().unwrap();
    let (mine, mut theirs) = UnixStream::pair().unwrap();
    let rx = Pipe::new(&lp, true).unwrap();
    rx.open(mine).unwrap();
    let mut peers = Vec::new();
    let mut sent = Vec::new();
    for _ in 0..N {
        let (a, b) = UnixStream::pair().unwrap();
        sent.push(a);
        peers.push(b);
    }
    let raw: Vec<RawFd> = sent.iter().map(|s| s.as_raw_fd()).collect();
    send_fds(&theirs, b"m", &raw[..60]);
    send_fds(&theirs, b"m", &raw);
    drop(sent);
    std::io::Write::write_all(&mut theirs, b"more").unwrap();
    let events = read(&rx);
    let more = Ok(b"more".to_vec());
    run_until(&lp, || events.borrow().last() == Some(&more));
    assert_eq!(
        *events.borrow(),
        [
            Ok(b"m".to_vec()),
            Err(StatusCode::EMSGSIZE),
            Ok(b"m".to_vec()),
            more
        ]
    );
    assert_eq!(rx.pending_count().unwrap(), 120);
    // The 40 that did not fit were closed by the kernel: their peers see the end.
    assert_eq!(ends_seen(&peers, 40), 40);
    rx.close();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

/// The variable that names the scenario a child process of this binary runs.
const SCENARIO: &str = "UV_ATTACKS_IPC_SCENARIO";

uv_tests::scenarios! {
    SCENARIO =>
    #[cfg(any(target_os = "linux", target_os = "android"))]
    receive_at_the_descriptor_limit,
}

/// The scenario: a handle sent with `write2` (one descriptor) while the receiver
/// has no descriptor number left; the receiver's events, printed to stderr.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn receive_at_the_descriptor_limit() {
    let lp = Loop::new().unwrap();
    let (tx, rx) = ipc_pair(&lp);
    let (h, _peer) = sendable(&lp);
    let sent = Rc::new(Cell::new(false));
    let s = sent.clone();
    tx.write2("h", &h, move |_, r| s.set(r.is_ok())).unwrap();
    tx.write("end", |_, r| r.unwrap()).unwrap();
    run_until(&lp, || sent.get());
    // No descriptor can be made.
    let room = uv_tests::DescriptorRoom::new(0);
    let events = record_events(&rx);
    let end = Ok(b"end".to_vec());
    run_until(&lp, || events.borrow().last() == Some(&end));
    drop(room);
    eprintln!(
        "events {:?} pending {}",
        events.borrow(),
        rx.pending_count().unwrap()
    );
}

/// A handle sent to a process at its descriptor limit: the kernel cannot give the
/// receiver the descriptor, closes it and flags the message `MSG_CTRUNC`, which
/// libuv ignores: the bytes arrived and the handle was lost unseen. Now the read
/// callback gets `EMFILE`, then the bytes. Run in a child process (this binary
/// again), whose descriptor limit is lowered.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn a_handle_received_at_the_descriptor_limit_is_reported() {
    // Natively, also when this suite runs under valgrind, which emulates the
    // descriptor limit itself (its own descriptors sit below the real limit), so
    // that the kernel would give the descriptor (see tests/valgrind.sh).
    let out = uv_tests::output_within(&mut uv_tests::native_scenario_command(
        SCENARIO,
        "receive_at_the_descriptor_limit",
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(r#"events [Err(EMFILE), Ok([104]), Ok([101, 110, 100])] pending 0"#),
        "{stderr}"
    );
}

/// The file-system requests take a `uv::File`, which owns its descriptor: no safe
/// function takes a raw one (the spec's `fd` conversion is refused in request
/// files) and only `File::close` closes it. On descriptors that are not regular
/// files (a socket, a FIFO, a directory, a path-only descriptor) each request gives
/// the system's error, never an abort; the descriptors stay open until their
/// `File` goes, and are closed then, once.
#[test]
fn fs_requests_on_descriptors_that_are_not_regular_files() {
    let lp = Loop::new().unwrap();
    let dir = uv_tests::net::TempDir::new("ipc-fs");
    let (sock, _peer) = UnixStream::pair().unwrap();
    sock.set_nonblocking(true).unwrap();
    let (r, mut w) = std::io::pipe().unwrap();
    std::io::Write::write_all(&mut w, b"fifo").unwrap();
    drop(w);
    let path_only = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(dir.path())
            .unwrap()
    };
    let files: Vec<(&str, uv::File)> = vec![
        ("socket", OwnedFd::from(sock).into()),
        ("fifo", OwnedFd::from(r).into()),
        ("dir", std::fs::File::open(dir.path()).unwrap().into()),
        ("path", path_only.into()),
    ];
    let code = |r: Result<(), uv::Error>| r.map_err(|e| e.code());
    let mut ids = Vec::new();
    for (what, f) in &files {
        ids.push(fd_identity(f.as_raw_fd()).unwrap());
        let read = Fs::read_sync(&lp, f, Vec::with_capacity(16), None).map_err(|e| e.code());
        let write = Fs::write_sync(&lp, f, "x", None).map_err(|e| e.code());
        let (want_read, want_write) = match *what {
            "socket" => (Err(StatusCode::EAGAIN), Ok(1)),
            "fifo" => (Ok(b"fifo".to_vec()), Err(StatusCode::EBADF)),
            "dir" => (Err(StatusCode::EISDIR), Err(StatusCode::EBADF)),
            _ => (Err(StatusCode::EBADF), Err(StatusCode::EBADF)),
        };
        assert_eq!(read, want_read, "{what}");
        assert_eq!(write, want_write, "{what}");
        Fs::fstat_sync(&lp, f).unwrap();
        assert!(code(Fs::ftruncate_sync(&lp, f, 0)).is_err(), "{what}");
        let _ = code(Fs::fsync_sync(&lp, f));
        let _ = code(Fs::fdatasync_sync(&lp, f));
        let _ = code(Fs::futime_sync(
            &lp,
            f,
            uv::FileTime::Omit,
            uv::FileTime::Omit,
        ));
        for (_, other) in &files {
            let _ = Fs::sendfile_sync(&lp, other, f, 0, 4);
        }
        // Still the same open file: nothing closed it.
        assert_eq!(fd_identity(f.as_raw_fd()), ids.last().copied(), "{what}");
    }
    let raws: Vec<RawFd> = files.iter().map(|(_, f)| f.as_raw_fd()).collect();
    drop(files);
    for (fd, id) in raws.into_iter().zip(ids) {
        assert_ne!(fd_identity(fd), Some(id));
    }
    lp.close().unwrap();
}

/// `kill` of a child that exited and was reaped, while its handle is open: libuv
/// marks the pid no longer valid, and the call is `ESRCH` without a signal sent
/// (the number may belong to another process by then).
#[test]
fn kill_of_a_reaped_child_is_esrch() {
    let lp = Loop::new().unwrap();
    let p = Process::spawn(&lp, &ProcessOptions::new("/bin/true"), |_, _, _| {}).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(!p.is_active());
    assert_eq!(
        p.kill(Signum::Terminate).unwrap_err().code(),
        StatusCode::ESRCH
    );
    p.close();
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}

/// What a child is given as stdio from the handle side: a closing stream and a
/// closing pipe are `ClosedHandle` (libuv would read the descriptor of a handle
/// it is closing), one stream twice (standard output and error) is fine, and a
/// pipe or stream of another loop works on its own loop.
#[test]
fn stdio_of_closing_repeated_and_foreign_streams() {
    let lp = Loop::new().unwrap();
    let other = Loop::new().unwrap();
    let sh = |script: &str| ProcessOptions::new("/bin/sh").args(["-c", script]);

    let (closing, _peer) = sendable(&lp);
    closing.close();
    let err = Process::spawn(
        &lp,
        &sh("exit 0").stdout(Stdio::stream(&closing)),
        |_, _, _| {},
    )
    .unwrap_err();
    assert!(err.is(uv::Category::ClosedHandle), "{err:?}");
    let fresh = Pipe::new(&lp, false).unwrap();
    fresh.close();
    let err = Process::spawn(
        &lp,
        &sh("exit 0").stdout(Stdio::pipe_from_child(&fresh)),
        |_, _, _| {},
    )
    .unwrap_err();
    assert!(err.is(uv::Category::ClosedHandle), "{err:?}");

    // One stream as standard output and error.
    let (twice, mut peer) = sendable(&lp);
    let opts = sh("echo out; echo err >&2")
        .stdout(Stdio::stream(&twice))
        .stderr(Stdio::stream(&twice));
    let status = Rc::new(Cell::new(None));
    let st = status.clone();
    Process::spawn(&lp, &opts, move |_, s, _| st.set(Some(s))).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(status.get(), Some(0));
    twice.close();
    lp.run(RunMode::Default).unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut peer, &mut got).unwrap();
    assert_eq!(got, "out\nerr\n");

    // A pipe of the other loop, created for the child by a spawn on this one.
    let foreign = Pipe::new(&other, false).unwrap();
    let opts = sh("echo foreign").stdout(Stdio::pipe_from_child(&foreign));
    Process::spawn(&lp, &opts, |_, s, _| assert_eq!(s, 0)).unwrap();
    let out = uv_tests::read_to_end(&foreign);
    lp.run(RunMode::Default).unwrap();
    other.run(RunMode::Default).unwrap();
    assert_eq!(&*out.borrow(), b"foreign\n");
    assert!(foreign.is_closed());
    lp.close().unwrap();
    other.close().unwrap();
}

/// Arguments and environment strings longer than the system takes for one
/// (`MAX_ARG_STRLEN`, 128 KiB on Linux), or more of them than the system takes in
/// all: the child's `execve` fails and the spawn is `E2BIG`, with no handle left
/// and the loop clean. (Under valgrind, whose `execve` in the child ends the
/// child instead of failing, the spawn succeeds and the child exits with an
/// error.)
#[test]
fn spawn_with_a_huge_argument_or_variable_is_e2big() {
    let lp = Loop::new().unwrap();
    let huge = "x".repeat(1 << 20);
    let valgrind = std::env::var_os("UV_UNDER_VALGRIND").is_some();
    for opts in [
        ProcessOptions::new("/bin/true").arg(&huge),
        ProcessOptions::new("/bin/true").env("HUGE", &huge),
        ProcessOptions::new("/bin/true").args((0..40_000).map(|_| "a".repeat(64))),
    ] {
        let exit = Rc::new(Cell::new(None));
        let e = exit.clone();
        match Process::spawn(&lp, &opts, move |p, status, signal| {
            e.set(Some((status, signal)));
            p.close();
        }) {
            Err(err) => assert_eq!(err.code(), StatusCode::E2BIG),
            Ok(_) if valgrind => {
                lp.run(RunMode::Default).unwrap();
                assert!(matches!(exit.get(), Some((s, sig)) if s != 0 || sig.is_some()));
            }
            Ok(p) => panic!("spawned {p:?}"),
        }
        assert!(lp.handles().is_empty());
    }
    lp.run(RunMode::Default).unwrap();
    lp.close().unwrap();
}
