//! Attacks on the tracking of descriptors a socket has in this process (the
//! registry of sockets handles hold, `contracts::sole_descriptor` and
//! `contracts::no_unheld_copies`) and of handles sharing the standard
//! descriptors' open files (`contracts::note_std_shares`).

#![cfg(unix)]

use std::cell::RefCell;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use uv::{
    Loop, Pipe, PoolAllocator, Process, ProcessOptions, RunMode, StatusCode, Stdio, Stream as _,
    Tcp, Timer,
};
use uv_tests::watchdog;

fn code<T>(r: uv::Result<T>) -> StatusCode {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code(),
    }
}

/// Two handles opened on two descriptors of one listening socket (a copy made with
/// `try_clone`, both given away): each holds its descriptor, so the other may
/// listen. A `close_reset` the handle refuses (`EINVAL`: its write side is being
/// shut down) leaves it open, and its descriptor still held: the other handle's
/// `listen` was refused after it (the refused close had taken the descriptor out
/// of the registry already).
#[test]
fn a_refused_close_reset_keeps_the_socket_held() {
    let lp = Loop::new().unwrap();
    let (l, _) = uv_tests::net::tcp_listener();
    let copy = l.try_clone().unwrap();
    let a = Tcp::try_from((&*lp, l)).unwrap();
    let b = Tcp::try_from((&*lp, copy)).unwrap();
    a.shutdown(|_, _| {}).unwrap();
    assert_eq!(code(a.close_reset()), StatusCode::EINVAL);
    assert!(!a.is_closing());
    // `a` is open and holds its descriptor: only handles hold the socket.
    b.listen(8, |_, _| {}).unwrap();
    a.close();
    b.close();
    lp.run(RunMode::Default).unwrap();
}

/// A listener whose copy is kept by the user is refused until the copy is dropped.
#[test]
fn listen_with_a_kept_copy_is_einval_until_it_is_dropped() {
    let lp = Loop::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let copy = l.try_clone().unwrap();
    let a = Tcp::try_from((&*lp, l)).unwrap();
    assert_eq!(code(a.listen(8, |_, _| {})), StatusCode::EINVAL);
    drop(copy);
    a.listen(8, |_, _| {}).unwrap();
    a.close();
    lp.run(RunMode::Default).unwrap();
}

/// Reads `stream` one byte at a time (each read fills its buffer, so libuv reads
/// again at once) until a newline, then closes `both` from the next loop iteration.
fn read_to_newline<S: uv::Stream + Clone + 'static>(
    lp: &Loop,
    stream: &S,
    both: Vec<uv::Handle>,
) -> Rc<RefCell<Vec<u8>>> {
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let timer = Timer::new(lp).unwrap();
    stream
        .read_start_with(PoolAllocator::new(1, 4), move |_, data| {
            let bytes = data.unwrap();
            g.borrow_mut().extend_from_slice(bytes);
            if bytes == b"\n" {
                let both = both.clone();
                timer
                    .start(Duration::ZERO, Duration::ZERO, move |t| {
                        for h in &both {
                            h.close();
                        }
                        t.close();
                    })
                    .unwrap();
            }
        })
        .unwrap();
    got
}

/// Two pipe handles on two descriptors of one socket (a copy made with `try_clone`
/// before the opens): once the first reads, the second's `set_blocking(true)`
/// switched the open file they share to blocking mode, and the first's read after
/// one that filled its buffer waited for data with the loop's thread (a hang:
/// the writer is this thread). It is `EINVAL` while the socket has another
/// descriptor.
#[test]
fn a_handle_cannot_make_blocking_a_socket_another_handle_reads() {
    let lp = Loop::new().unwrap();
    let (x, mut y) = UnixStream::pair().unwrap();
    let copy = x.try_clone().unwrap();
    let a = Pipe::new(&lp, false).unwrap();
    a.open(x).unwrap();
    let b = Pipe::new(&lp, false).unwrap();
    b.open(copy).unwrap();
    let got = read_to_newline(&lp, &a, vec![(*a).clone(), (*b).clone()]);
    let blocking = b.set_blocking(true).map_err(|e| e.code());
    y.write_all(b"ab\n").unwrap();
    let done = watchdog("the loop waits in a read of a blocking socket", 20);
    lp.run(RunMode::Default).unwrap();
    done.store(true, Ordering::SeqCst);
    assert_eq!(blocking, Err(StatusCode::EINVAL));
    assert_eq!(&*got.borrow(), b"ab\n");
}

/// The same through an IPC pipe to this process: the handle received shares the
/// sent one's open file, and its `set_blocking(true)` is `EINVAL` while the sent
/// one is open (which reads).
#[test]
fn a_received_handle_cannot_make_blocking_the_socket_its_sender_reads() {
    let lp = Loop::new().unwrap();
    let (x, mut y) = UnixStream::pair().unwrap();
    let a = Pipe::new(&lp, false).unwrap();
    a.open(x).unwrap();
    let (s, r) = UnixStream::pair().unwrap();
    let sender = Pipe::new_ipc(&lp).unwrap();
    sender.open(s).unwrap();
    let receiver = Pipe::new_ipc(&lp).unwrap();
    receiver.open(r).unwrap();
    sender.write2("s", &a, |s, _| s.close()).unwrap();
    let received: Rc<RefCell<Option<Pipe>>> = Rc::default();
    let rc = received.clone();
    receiver
        .read_start(move |r, data| {
            data.unwrap();
            if r.pending_count().unwrap() > 0 {
                *rc.borrow_mut() = Some(r.accept().unwrap());
                r.close();
            }
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    let b = received.borrow_mut().take().expect("a handle was received");
    let got = read_to_newline(&lp, &a, vec![(*a).clone(), (*b).clone()]);
    let blocking = b.set_blocking(true).map_err(|e| e.code());
    y.write_all(b"ab\n").unwrap();
    let done = watchdog("the loop waits in a read of a blocking socket", 20);
    lp.run(RunMode::Default).unwrap();
    done.store(true, Ordering::SeqCst);
    assert_eq!(blocking, Err(StatusCode::EINVAL));
    assert_eq!(&*got.borrow(), b"ab\n");
}

/// The same through a spawn: a stream given to a child (`Stdio::Stream`) is made
/// blocking by libuv (in the parent too, which shares the open file), and another
/// handle on the same socket read it. The spawn is `EINVAL` while the socket has
/// another descriptor in this process.
#[test]
fn a_stream_whose_socket_another_handle_reads_is_not_given_to_a_child() {
    let lp = Loop::new().unwrap();
    let (x, mut y) = UnixStream::pair().unwrap();
    let copy = x.try_clone().unwrap();
    let a = Pipe::new(&lp, false).unwrap();
    a.open(x).unwrap();
    let b = Pipe::new(&lp, false).unwrap();
    b.open(copy).unwrap();
    let got = read_to_newline(&lp, &a, vec![(*a).clone(), (*b).clone()]);
    let opts = ProcessOptions::new("true").stdio(0, Stdio::stream(&b));
    let spawned = Process::spawn(&lp, &opts, |p, _, _| p.close())
        .map(|_| ())
        .map_err(|e| e.code());
    y.write_all(b"ab\n").unwrap();
    let done = watchdog("the loop waits in a read of a blocking socket", 20);
    lp.run(RunMode::Default).unwrap();
    done.store(true, Ordering::SeqCst);
    assert_eq!(spawned, Err(StatusCode::EINVAL));
    assert_eq!(&*got.borrow(), b"ab\n");
}

/// The variable that tells a run of this binary to be the child of
/// [`a_handle_receiving_a_socket_a_child_shares_does_not_read_it`].
const SCENARIO: &str = "UV_ATTACKS_SHARING_SCENARIO";

/// The child's part: waits for a byte on descriptor 3, then switches its standard
/// input (a socket the parent reads through a handle) to blocking mode, as a
/// shell reading its standard input does when it finds no data. A no-op in the
/// normal run.
#[test]
fn scenario_child() {
    if std::env::var_os(SCENARIO).is_none() {
        return;
    }
    let mut byte = 0u8;
    // SAFETY: descriptor 3 is the pipe the parent gave; the byte is read into a
    // local buffer.
    let n = unsafe { libc::read(3, (&raw mut byte).cast(), 1) };
    assert_eq!(n, 1);
    // SAFETY: F_GETFL and F_SETFL only read and change descriptor 0's flags.
    unsafe {
        let flags = libc::fcntl(0, libc::F_GETFL);
        assert!(libc::fcntl(0, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0);
    }
}

/// A stream given to a child (`Stdio::Stream`) reads no more: the child may make
/// the open file they share blocking at any time. Sent over an IPC pipe to this
/// process after the spawn, the socket entered a new handle without that mark, which
/// could read it (after `set_blocking(false)` undid the spawn's blocking mode):
/// when the child then switched its standard input to blocking mode, the new
/// handle's read after one that filled its buffer waited with the loop's thread. The
/// handle that receives it is marked too: its `read_start` is `EINVAL`.
#[test]
fn a_handle_receiving_a_socket_a_child_shares_does_not_read_it() {
    let done = watchdog("the loop waits in a read of a blocking socket", 20);
    let lp = Loop::new().unwrap();
    let (x, mut y) = UnixStream::pair().unwrap();
    let b = Pipe::new(&lp, false).unwrap();
    b.open(x).unwrap();
    let (go_r, mut go_w) = std::io::pipe().unwrap();
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap();
    let opts = ProcessOptions::new(exe)
        .args(["scenario_child", "--exact", "--test-threads=1", "-q"])
        .env(SCENARIO, "1")
        .stdio(0, Stdio::stream(&b))
        .stdio(3, Stdio::fd(go_r));
    let exited = Rc::new(RefCell::new(None));
    let ex = exited.clone();
    let child = Process::spawn(&lp, &opts, move |p, status, _| {
        *ex.borrow_mut() = Some(status);
        p.close();
    })
    .unwrap();
    drop(opts);
    // The spawn left the shared file blocking; the parent's end is made
    // non-blocking again (the child's too: they share it).
    b.set_blocking(false).unwrap();
    // Sent to this process, received as `a`.
    let (s, r) = UnixStream::pair().unwrap();
    let sender = Pipe::new_ipc(&lp).unwrap();
    sender.open(s).unwrap();
    let receiver = Pipe::new_ipc(&lp).unwrap();
    receiver.open(r).unwrap();
    sender.write2("s", &b, |s, _| s.close()).unwrap();
    let received: Rc<RefCell<Option<Pipe>>> = Rc::default();
    let rc = received.clone();
    receiver
        .read_start(move |r, data| {
            data.unwrap();
            if r.pending_count().unwrap() > 0 {
                *rc.borrow_mut() = Some(r.accept().unwrap());
                r.close();
            }
        })
        .unwrap();
    while received.borrow().is_none() {
        lp.run(RunMode::Once).unwrap();
    }
    let a = received.borrow_mut().take().expect("a handle was received");
    b.close();
    let timer = Timer::new(&lp).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let a2 = a.clone();
    let started = a
        .read_start_with(PoolAllocator::new(1, 4), move |_, data| {
            let bytes = data.unwrap();
            g.borrow_mut().extend_from_slice(bytes);
            if bytes == b"\n" {
                let a2 = a2.clone();
                timer
                    .start(Duration::ZERO, Duration::ZERO, move |t| {
                        a2.close();
                        t.close();
                    })
                    .unwrap();
            }
        })
        .map_err(|e| e.code());
    if started.is_err() {
        a.close();
    }
    // The child makes the shared file blocking, and ends; then the data comes.
    go_w.write_all(b"g").unwrap();
    while exited.borrow().is_none() {
        lp.run(RunMode::Once).unwrap();
    }
    // (Refused, every descriptor of the socket is closed by now: the write fails.)
    let _ = y.write_all(b"ab\n");
    lp.run(RunMode::Default).unwrap();
    done.store(true, Ordering::SeqCst);
    drop(child);
    assert_eq!(*exited.borrow(), Some(0));
    assert_eq!(started, Err(StatusCode::EINVAL));
}

/// Not fixed: every `open` of a socket (and every handle an IPC pipe receives)
/// lists the process's descriptors to find copies no handle holds
/// (`handle::hold_socket`, `contracts::unheld_copies`: one `fstat` per
/// descriptor), so taking over `n` sockets in a process with `d` descriptors costs
/// `n * d` system calls. Measured (release build, 38,000 descriptors): 35 ms per
/// `open`, 2,000 opens in 69 s; a `listen` refusal itself takes 28 ms. A server
/// that receives its connections over an IPC pipe pays this per connection.
/// Ignored (a reproducer with a time bound, far above what the opens take
/// without the listing).
#[test]
#[ignore = "not fixed: each open lists every descriptor of the process"]
fn opening_many_sockets_in_a_process_with_many_descriptors_is_not_quadratic() {
    let lp = Loop::new().unwrap();
    let mut keep = Vec::new();
    while keep.len() < 19_000 {
        match UnixStream::pair() {
            Ok((a, _)) => keep.push(a),
            Err(_) => break,
        }
    }
    let t0 = std::time::Instant::now();
    let mut handles = Vec::new();
    for s in keep.drain(..2_000) {
        let p = Pipe::new(&lp, false).unwrap();
        p.open(s).unwrap();
        handles.push(p);
    }
    let took = t0.elapsed();
    for h in handles {
        h.close();
    }
    lp.run(RunMode::Default).unwrap();
    assert!(took < Duration::from_secs(5), "2,000 opens took {took:?}");
}
