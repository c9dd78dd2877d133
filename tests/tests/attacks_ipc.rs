//! Attacks on descriptor passing and IPC pipes: what an IPC pipe may be opened on
//! or accept, handles sent with `write2` (closed, closing, of another loop, a pipe
//! sending itself), many handles in flight at once, received handles left
//! pending when the pipe goes, and the file-system requests' descriptors.
//!
//! Every test asserts values, counts and error codes; a hang shows as a loop that
//! does not end within a counted number of iterations (`uv_tests::net::run_until`).

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use uv::{HandleType, Loop, Pipe, RunMode, StatusCode, Stream as _, Tcp};
use uv_tests::net::{fd_identity, run_until};

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

/// An IPC pipe on one end of a socket pair, and the other end, also an IPC pipe of
/// the same loop.
fn ipc_pair(lp: &Loop) -> (Pipe, Pipe) {
    let (a, b) = UnixStream::pair().unwrap();
    let pa = Pipe::new(lp, true).unwrap();
    pa.open(a).unwrap();
    let pb = Pipe::new(lp, true).unwrap();
    pb.open(b).unwrap();
    (pa, pb)
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

/// Keeps the otherwise unused imports of later tests honest.
#[allow(dead_code)]
fn _types(_: (Tcp, Cell<u8>, RawFd)) {}
