//! Attacks on streams that carry data and handles: IPC pipes and the handles they
//! pass, the standard I/O pipes of child processes, and the data of queued writes
//! (close, shutdown and errors in the middle of them). Each regression test says
//! what used to happen; the others pin down behaviour the attacks found sound, by
//! value (statuses, counts, bytes, the order of callbacks). A spin shows as a loop
//! iteration count, never as a duration.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use uv::{
    HandleType, Loop, Pipe, Process, ProcessOptions, RunMode, Signum, StatusCode, Stdio,
    Stream as _, Tcp, TcpFlags, Udp,
};
use uv_tests::net::{ipc_pair, pipe_and_std};
use uv_tests::net::{iterations_while_idle, pattern, run_until, send_fds};

/// What the callbacks of a test saw, in order.
type Log = Rc<RefCell<Vec<String>>>;

/// A write or shutdown callback that logs `tag` and its status code.
fn logged<S>(log: &Log, tag: &'static str) -> impl FnOnce(&S, uv::Result<()>) + 'static {
    let log = log.clone();
    move |_, r| log.borrow_mut().push(format!("{tag} {}", status(r)))
}

/// `ok`, or the error's code.
fn status<T>(r: uv::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{:?}", e.code()),
    }
}

/// A TCP handle with a socket (bound, not listening).
fn bound_tcp(lp: &Loop) -> Tcp {
    let t = Tcp::new(lp).unwrap();
    t.bind("127.0.0.1:0".parse().unwrap(), TcpFlags::empty())
        .unwrap();
    t
}

/// Reads `p` until `n` bytes came (each message that carried a handle has one).
fn read_bytes(lp: &Loop, p: &Pipe, n: usize) {
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    p.read_start(move |_, d| g.set(g.get() + d.unwrap().len()))
        .unwrap();
    run_until(lp, || got.get() == n);
    p.read_stop().unwrap();
}

/// The socket type (`SO_TYPE`) of `fd`.
fn socket_type(fd: &OwnedFd) -> i32 {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is open; `v` and `len` are valid for the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0);
    v
}

/// A UDP socket received over an IPC pipe (as Node.js sends them) used to stay
/// first in the pipe's queue for good: `pending_type` said `Udp`, no stream can be
/// made of it, so every `accept` was `EINVAL`, and the TCP socket and file sent
/// after it could never be taken (closed unseen with the pipe). Now
/// `Pipe::accept_fd` takes each as its descriptor: the UDP socket works as a
/// `Udp`, the file is dropped, and the TCP socket behind them is accepted as usual.
#[test]
fn handles_no_stream_can_take_are_taken_as_descriptors_and_free_the_queue() {
    let lp = Loop::new().unwrap();
    let (p, peer) = pipe_and_std(&lp, true);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = udp.local_addr().unwrap();
    let file = std::fs::File::open("/dev/null").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    send_fds(&peer, b"u", &[udp.as_raw_fd()]);
    send_fds(&peer, b"f", &[file.as_raw_fd()]);
    send_fds(&peer, b"t", &[tcp.as_raw_fd()]);
    drop((udp, file, tcp));
    read_bytes(&lp, &p, 3);
    assert_eq!(p.pending_count().unwrap(), 3);
    assert_eq!(p.pending_type().unwrap(), HandleType::Udp);
    // No stream takes it; it stays first.
    let t = Tcp::new(&lp).unwrap();
    assert_eq!(p.accept_into(&t).unwrap_err().code(), StatusCode::EINVAL);
    assert_eq!(
        p.accept().map(|_| ()).unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(p.pending_count().unwrap(), 3);

    let fd = p.accept_fd().unwrap();
    assert_eq!(socket_type(&fd), libc::SOCK_DGRAM);
    let u = Udp::new(&lp).unwrap();
    u.open(fd).unwrap();
    assert_eq!(u.local_addr().unwrap(), udp_addr);
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    u.recv_start(move |u, d| {
        let d = d.unwrap();
        if !d.is_drained() {
            g.borrow_mut().push(d.data.to_vec());
            u.close();
        }
    })
    .unwrap();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.send_to(b"dgram", udp_addr).unwrap();
    run_until(&lp, || !got.borrow().is_empty());
    assert_eq!(*got.borrow(), [b"dgram".to_vec()]);

    assert_eq!(p.pending_count().unwrap(), 2);
    assert_eq!(p.pending_type().unwrap(), HandleType::File);
    drop(p.accept_fd().unwrap());
    assert_eq!(p.pending_type().unwrap(), HandleType::Tcp);
    // A TCP socket goes through `accept`.
    assert_eq!(p.accept_fd().unwrap_err().code(), StatusCode::EINVAL);
    assert_eq!(p.pending_count().unwrap(), 1);
    p.accept_into(&t).unwrap();
    assert_eq!(t.local_addr().unwrap(), tcp_addr);
    assert_eq!(p.pending_count().unwrap(), 0);
    assert_eq!(p.accept_fd().unwrap_err().code(), StatusCode::EAGAIN);
    t.close();
    p.close();
    lp.run(RunMode::Default).unwrap();
}

/// `accept_fd` on a pipe without IPC is `EINVAL` (even with a connection
/// pending), on a closed one `ClosedHandle`.
#[test]
fn accept_fd_refuses_pipes_without_ipc_and_closed_ones() {
    let lp = Loop::new().unwrap();
    let (plain, _peer) = pipe_and_std(&lp, false);
    assert_eq!(plain.accept_fd().unwrap_err().code(), StatusCode::EINVAL);
    let dir = uv_tests::net::TempDir::new("accept-fd");
    let path = dir.join("s");
    let server = Pipe::new(&lp, false).unwrap();
    server.bind(&path).unwrap();
    let refused = Rc::new(RefCell::new(None));
    let r = refused.clone();
    server
        .listen(1, move |s, st| {
            st.unwrap();
            *r.borrow_mut() = Some(status(s.accept_fd()));
            s.close();
        })
        .unwrap();
    let _client = UnixStream::connect(&path).unwrap();
    run_until(&lp, || refused.borrow().is_some());
    assert_eq!(refused.borrow().as_deref(), Some("EINVAL"));

    let (a, b) = ipc_pair(&lp);
    a.close();
    assert_eq!(
        a.accept_fd().unwrap_err().kind(),
        uv::Category::ClosedHandle
    );
    plain.close();
    b.close();
    lp.run(RunMode::Default).unwrap();
}

/// Taking the last received handle with `accept_fd` from a pipe that is not
/// reading leaves the loop idle, as `accept` does (libuv's accept watches the
/// pipe for reading again; with data waiting and no reader, the loop would wake
/// up for it on every iteration).
#[test]
fn taking_the_last_handle_as_a_descriptor_does_not_make_the_loop_spin() {
    let lp = Loop::new().unwrap();
    let (p, peer) = pipe_and_std(&lp, true);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    send_fds(&peer, b"u", &[udp.as_raw_fd()]);
    read_bytes(&lp, &p, 1);
    // Data waits unread behind the handle.
    (&peer).write_all(b"unread").unwrap();
    let fd = p.accept_fd().unwrap();
    assert_eq!(socket_type(&fd), libc::SOCK_DGRAM);
    let seen = iterations_while_idle(&lp);
    assert!(
        seen <= 5,
        "{seen} loop iterations while waiting for a timer"
    );
    // The data was not consumed.
    let data = uv_tests::read_to_end(&p);
    drop(peer);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*data.borrow(), b"unread");
}

/// Whether any descriptor of this process refers to the open file `id` (see
/// `fd_identity`).
fn any_fd_is(id: (u64, u64)) -> bool {
    std::fs::read_dir("/proc/self/fd").unwrap().any(|e| {
        let fd: i32 = e.unwrap().file_name().to_str().unwrap().parse().unwrap();
        uv_tests::net::fd_identity(fd) == Some(id)
    })
}

/// Handles received and never accepted are closed with the pipe: no descriptor of
/// them is left in the process.
#[test]
fn handles_left_pending_are_closed_with_their_pipe() {
    let lp = Loop::new().unwrap();
    let (a, b) = ipc_pair(&lp);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let t = bound_tcp(&lp);
        ids.push(uv_tests::net::fd_identity(t.fileno().unwrap()).unwrap());
        a.write2("x", &t, |_, r| r.unwrap()).unwrap();
        // Closed before its write ran: the write keeps it until then.
        t.close();
    }
    read_bytes(&lp, &b, 5);
    assert_eq!(b.pending_count().unwrap(), 5);
    let first = Tcp::new(&lp).unwrap();
    b.accept_into(&first).unwrap();
    // A client that has its socket is refused, the rest stays pending.
    assert_eq!(b.accept_into(&first).unwrap_err().code(), StatusCode::EBUSY);
    assert_eq!(b.pending_count().unwrap(), 4);
    lp.run(RunMode::Default).unwrap();
    for id in &ids {
        assert!(any_fd_is(*id), "a received socket is held");
    }
    b.close();
    let again = b.accept().map(|_| ()).unwrap_err();
    assert_eq!(again.kind(), uv::Category::ClosedHandle);
    lp.run(RunMode::Default).unwrap();
    // Only the accepted one is left.
    let held: Vec<bool> = ids.iter().map(|id| any_fd_is(*id)).collect();
    assert_eq!(held, [true, false, false, false, false]);
    first.close();
    a.close();
    lp.run(RunMode::Default).unwrap();
    assert!(ids.iter().all(|id| !any_fd_is(*id)));
}

/// A write that sends a handle closed while the write waited in the queue fails
/// with `EBADF` (libuv checks the handle when the write runs), sends nothing, and
/// the writes queued behind it go on: every byte of the others arrives.
#[test]
fn a_write2_whose_handle_closed_in_the_queue_is_ebadf_and_the_queue_goes_on() {
    let lp = Loop::new().unwrap();
    let (a, b) = ipc_pair(&lp);
    let log: Log = Default::default();
    let big = pattern(4 << 20);
    a.write(big.clone(), logged(&log, "big")).unwrap();
    let t = bound_tcp(&lp);
    a.write2("x", &t, logged(&log, "write2")).unwrap();
    a.write("after", logged(&log, "after")).unwrap();
    t.close();
    drop(t);
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    b.read_start(move |_, d| g.borrow_mut().extend_from_slice(d.unwrap()))
        .unwrap();
    run_until(&lp, || got.borrow().len() == big.len() + 5);
    assert_eq!(*log.borrow(), ["big ok", "write2 EBADF", "after ok"]);
    assert_eq!(got.borrow()[..big.len()], big[..]);
    assert_eq!(&got.borrow()[big.len()..], b"after");
    assert_eq!(b.pending_count().unwrap(), 0);
    a.close();
    b.close();
    lp.run(RunMode::Default).unwrap();
}

/// Writes and a shutdown queued behind a write the peer never reads, then
/// `close`: each callback runs once, in order, with `ECANCELED`, then the close
/// callback; a write after the shutdown is `EPIPE` at once, and one from the
/// close callback is refused (`ClosedHandle`) with its callback dropped.
#[test]
fn queued_writes_and_shutdown_get_ecanceled_in_order_at_close() {
    let lp = Loop::new().unwrap();
    let (p, _peer) = pipe_and_std(&lp, false);
    let log: Log = Default::default();
    p.write(vec![1u8; 4 << 20], logged(&log, "big")).unwrap();
    for _ in 0..3 {
        p.write(vec![2u8; 10], logged(&log, "small")).unwrap();
    }
    p.shutdown(logged(&log, "shutdown")).unwrap();
    let late = p.write("late", logged(&log, "late")).unwrap_err();
    assert_eq!(late.code(), StatusCode::EPIPE);
    let (l, pc) = (log.clone(), p.clone());
    p.close_with(move |_| {
        l.borrow_mut().push("closed".into());
        let r = pc.write("from close", logged(&l, "from close"));
        l.borrow_mut()
            .push(format!("write in close: {:?}", r.unwrap_err().kind()));
    });
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        *log.borrow(),
        [
            "big ECANCELED",
            "small ECANCELED",
            "small ECANCELED",
            "small ECANCELED",
            "shutdown ECANCELED",
            "closed",
            "write in close: ClosedHandle",
        ]
    );
}

/// A write callback called with `ECANCELED` (its stream closing) that writes and
/// shuts down again is refused at once (`ClosedHandle`): no callback of those
/// runs, and the loop ends.
#[test]
fn writing_from_a_cancelled_write_callback_is_refused() {
    let lp = Loop::new().unwrap();
    let (p, _peer) = pipe_and_std(&lp, false);
    let log: Log = Default::default();
    p.write(vec![1u8; 4 << 20], logged(&log, "big")).unwrap();
    let l = log.clone();
    p.write(vec![2u8; 10], move |s: &Pipe, r| {
        l.borrow_mut().push(format!("second {}", status(r)));
        let w = s.write("again", logged(&l, "again"));
        l.borrow_mut()
            .push(format!("again: {:?}", w.unwrap_err().kind()));
        let sd = s.shutdown(logged(&l, "shutdown"));
        l.borrow_mut()
            .push(format!("shutdown: {:?}", sd.unwrap_err().kind()));
    })
    .unwrap();
    p.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        *log.borrow(),
        [
            "big ECANCELED",
            "second ECANCELED",
            "again: ClosedHandle",
            "shutdown: ClosedHandle",
        ]
    );
}

/// A write far bigger than the socket's buffer, closed once part of it went
/// out: its callback gets `ECANCELED` once, and the peer reads a prefix of the
/// data, unchanged, then the end of the stream.
#[test]
fn a_huge_write_closed_midway_delivers_an_intact_prefix() {
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let log: Log = Default::default();
    let data = pattern(16 << 20);
    p.write(data.clone(), logged(&log, "huge")).unwrap();
    // The first part went out at once, into the socket's buffer.
    let queued = p.write_queue_size();
    assert!(queued > 0 && queued < data.len(), "{queued}");
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        got
    });
    p.close();
    lp.run(RunMode::Default).unwrap();
    drop(lp);
    let got = reader.join().unwrap();
    assert_eq!(*log.borrow(), ["huge ECANCELED"]);
    assert_eq!(got.len(), data.len() - queued);
    assert_eq!(got[..], data[..got.len()]);
}

/// Writes queued to a child's standard input when it exits without reading them
/// fail with `EPIPE` (SIGPIPE stays ignored), the exit callback gets the status,
/// and `kill` is `ESRCH` from the exit callback on, `ClosedHandle` after `close`.
#[test]
fn writes_pending_when_the_child_exits_fail_with_epipe() {
    let lp = Loop::new().unwrap();
    let stdin = Pipe::new(&lp, false).unwrap();
    let stdout = Pipe::new(&lp, false).unwrap();
    let opts = ProcessOptions::new("sh")
        .args(["-c", "head -c 10; exit 3"])
        .stdin(Stdio::pipe_to_child(&stdin))
        .stdout(Stdio::pipe_from_child(&stdout));
    let log: Log = Default::default();
    let l = log.clone();
    let child = Process::spawn(&lp, &opts, move |p, st, sig| {
        l.borrow_mut().push(format!("exit {st} {sig:?}"));
        let k = p.kill(Signum::Terminate);
        l.borrow_mut().push(format!("kill {}", status(k)));
    })
    .unwrap();
    drop(opts);
    stdin
        .write(vec![b'x'; 8 << 20], logged(&log, "big"))
        .unwrap();
    stdin.write("y", logged(&log, "small")).unwrap();
    let out = uv_tests::read_to_end(&stdout);
    lp.run(RunMode::Default).unwrap();
    let mut seen = log.borrow().clone();
    // The exit and the broken pipe come in one iteration, in either order.
    seen.sort();
    assert_eq!(
        seen,
        ["big EPIPE", "exit 3 None", "kill ESRCH", "small EPIPE"]
    );
    assert_eq!(*out.borrow(), b"xxxxxxxxxx");
    assert_eq!(
        child.kill(Signum::Terminate).unwrap_err().code(),
        StatusCode::ESRCH
    );
    child.close();
    let closed = child.kill(Signum::Terminate).unwrap_err();
    assert_eq!(closed.kind(), uv::Category::ClosedHandle);
    stdin.close();
    lp.run(RunMode::Default).unwrap();
}

/// A child whose `Process` value was dropped at once, whose output pipe was
/// closed and whose input got a write then a shutdown, both cancelled by a close:
/// the callbacks run (`ECANCELED`), and so does the exit callback, with the
/// status. (The write is written whole by libuv's first attempt when the child
/// drains the socket while that one system call runs: then it is done, `Ok`,
/// before the close; the shutdown behind it is cancelled either way.)
#[test]
fn a_dropped_process_with_closed_stdio_pipes_still_reports_its_exit() {
    let lp = Loop::new().unwrap();
    let stdin = Pipe::new(&lp, false).unwrap();
    let stdout = Pipe::new(&lp, true).unwrap();
    let opts = ProcessOptions::new("sh")
        .args(["-c", "cat >/dev/null; exit 4"])
        .stdin(Stdio::pipe_to_child(&stdin))
        .stdout(Stdio::pipe_from_child(&stdout));
    let log: Log = Default::default();
    let l = log.clone();
    drop(
        Process::spawn(&lp, &opts, move |p, st, sig| {
            l.borrow_mut().push(format!("exit {st} {sig:?}"));
            p.close();
        })
        .unwrap(),
    );
    drop(opts);
    stdout.close();
    stdin
        .write(vec![b'x'; 1 << 20], logged(&log, "write"))
        .unwrap();
    stdin.shutdown(logged(&log, "shutdown")).unwrap();
    stdin.close();
    lp.run(RunMode::Default).unwrap();
    // The exit may come before or after the close (the child's end of input is
    // the close of `stdin`).
    let (exits, stream): (Vec<String>, Vec<String>) = log
        .borrow()
        .iter()
        .cloned()
        .partition(|l| l.starts_with("exit"));
    assert_eq!(exits, ["exit 4 None"]);
    assert_eq!(stream.len(), 2, "{stream:?}");
    assert!(
        ["write ECANCELED", "write ok"].contains(&stream[0].as_str()),
        "{stream:?}"
    );
    assert_eq!(stream[1], "shutdown ECANCELED");
}

/// A listening TCP socket sent over an IPC pipe within the process is not handed
/// out as a raw descriptor (`accept_fd` is `EINVAL`, the handle stays pending):
/// through one, safe code could shut the socket down for reading under the
/// sender's `listen`, which makes libuv's server code abort (stream.c
/// `uv__server_io`, `events & POLLIN`). `accept` takes it, and both handles
/// serve connections.
#[test]
fn a_sent_listener_is_not_handed_out_as_a_descriptor() {
    let lp = Loop::new().unwrap();
    let (a, b) = ipc_pair(&lp);
    let srv = bound_tcp(&lp);
    let addr = srv.local_addr().unwrap();
    let log: Log = Default::default();
    let l = log.clone();
    srv.listen(8, move |s, st| {
        l.borrow_mut().push(format!("sender {}", status(st)));
        s.accept().unwrap().close();
        s.close();
    })
    .unwrap();
    a.write2("x", &srv, logged(&log, "write2")).unwrap();
    read_bytes(&lp, &b, 1);
    assert_eq!(b.pending_type().unwrap(), HandleType::Tcp);
    assert_eq!(b.accept_fd().unwrap_err().code(), StatusCode::EINVAL);
    assert_eq!(b.pending_count().unwrap(), 1);
    let got = Tcp::new(&lp).unwrap();
    b.accept_into(&got).unwrap();
    let l = log.clone();
    got.listen(8, move |s, st| {
        l.borrow_mut().push(format!("receiver {}", status(st)));
        s.accept().unwrap().close();
        s.close();
    })
    .unwrap();
    let mut clients = Vec::new();
    while log.borrow().len() < 3 {
        clients.push(std::net::TcpStream::connect(addr).unwrap());
        run_until(&lp, || log.borrow().len() > clients.len());
    }
    let mut seen = log.borrow().clone();
    seen.sort();
    assert_eq!(seen, ["receiver ok", "sender ok", "write2 ok"]);
    a.close();
    b.close();
    lp.run(RunMode::Default).unwrap();
}

/// The variable that names the scenario a child process runs.
const SCENARIO: &str = "UV_ATTACKS_STREAMS_SCENARIO";

uv_tests::scenarios! {
    SCENARIO =>
    echo_handles;
    "exit_at_once" => {}
}

/// Scenario: an IPC pipe on descriptor 3. For each TCP socket received, accepts
/// it, answers with its address and sends back a TCP socket of its own, bound to
/// another port, whose address follows; ends at the end of the stream.
fn echo_handles() {
    use std::os::fd::FromRawFd as _;
    let lp = Loop::new().unwrap();
    let ipc = Pipe::new(&lp, true).unwrap();
    // SAFETY: descriptor 3 is the IPC socket the parent gave, owned by nothing else
    // in this process.
    ipc.open(unsafe { OwnedFd::from_raw_fd(3) }).unwrap();
    let lh = lp.handle();
    ipc.read_start(move |p, d| match d {
        Ok(_) => {
            while p.pending_count().unwrap() > 0 {
                let got = Tcp::new(&lh).unwrap();
                p.accept_into(&got).unwrap();
                let mine = Tcp::new(&lh).unwrap();
                mine.bind("127.0.0.1:0".parse().unwrap(), TcpFlags::empty())
                    .unwrap();
                let line = format!(
                    "{} {}\n",
                    got.local_addr().unwrap(),
                    mine.local_addr().unwrap()
                );
                p.write2(line, &mine, |_, r| r.unwrap()).unwrap();
                got.close();
                mine.close();
            }
        }
        Err(e) => {
            assert_eq!(e.code(), StatusCode::EOF);
            p.close();
        }
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
}

/// `ProcessOptions` for the scenario `name`, with `ipc` as the child's
/// descriptor 3.
fn scenario_options<'a>(name: &str, ipc: &'a Pipe) -> ProcessOptions<'a> {
    let cmd = uv_tests::scenario_command(SCENARIO, name);
    let mut opts = ProcessOptions::new(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        opts = opts.env(k, v.unwrap());
    }
    opts.stdio(
        3,
        Stdio::Pipe(
            ipc,
            uv::StdioFlags::READABLE_PIPE | uv::StdioFlags::WRITABLE_PIPE,
        ),
    )
    .stderr(Stdio::Inherit)
}

/// Handles both ways over an IPC pipe to a child: each TCP socket sent is
/// accepted there (same address), each sent back is accepted here; the child
/// ends at the end of the stream with status 0 (memcheck's 99 under valgrind).
#[test]
fn handles_pass_both_ways_with_a_child() {
    let lp = Loop::new().unwrap();
    let ipc = Pipe::new(&lp, true).unwrap();
    let opts = scenario_options("echo_handles", &ipc);
    let exit = Rc::new(Cell::new(None));
    let e = exit.clone();
    let child = Process::spawn(&lp, &opts, move |p, st, sig| {
        e.set(Some((st, sig)));
        p.close();
    })
    .unwrap();
    drop((opts, child));
    let mut sent = Vec::new();
    for _ in 0..3 {
        let t = bound_tcp(&lp);
        sent.push(t.local_addr().unwrap());
        ipc.write2("x", &t, |_, r| r.unwrap()).unwrap();
        t.close();
    }
    let text = Rc::new(RefCell::new(String::new()));
    let back = Rc::new(RefCell::new(Vec::new()));
    let (tx, bk, lh) = (text.clone(), back.clone(), lp.handle());
    ipc.read_start(move |p, d| {
        tx.borrow_mut()
            .push_str(std::str::from_utf8(d.unwrap()).unwrap());
        while p.pending_count().unwrap() > 0 {
            let t = Tcp::new(&lh).unwrap();
            p.accept_into(&t).unwrap();
            bk.borrow_mut().push(t.local_addr().unwrap());
            t.close();
        }
        if bk.borrow().len() == 3 {
            p.close();
        }
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(exit.get(), Some((0, None)));
    let lines: Vec<(String, String)> = text
        .borrow()
        .lines()
        .map(|l| {
            let (a, b) = l.split_once(' ').unwrap();
            (a.to_string(), b.to_string())
        })
        .collect();
    let echoed: Vec<String> = lines.iter().map(|l| l.0.clone()).collect();
    let theirs: Vec<String> = lines.iter().map(|l| l.1.clone()).collect();
    assert_eq!(
        echoed,
        sent.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(
        theirs,
        back.borrow()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
    );
}

/// Writes that send handles, queued to a child that exits without reading: each
/// callback runs once (sent into the socket's buffer, or `EPIPE` /
/// `ECONNRESET` once the child is gone), the exit callback runs, and the loop
/// ends without the pipe being closed by anyone.
#[test]
fn handle_writes_queued_to_a_child_that_exits_each_complete_once() {
    let lp = Loop::new().unwrap();
    let ipc = Pipe::new(&lp, true).unwrap();
    let opts = scenario_options("exit_at_once", &ipc);
    let exit = Rc::new(Cell::new(None));
    let e = exit.clone();
    drop(
        Process::spawn(&lp, &opts, move |p, st, sig| {
            e.set(Some((st, sig)));
            p.close();
        })
        .unwrap(),
    );
    drop(opts);
    let t = bound_tcp(&lp);
    let log: Log = Default::default();
    const N: usize = 200;
    for _ in 0..N {
        ipc.write2(vec![0u8; 10_000], &t, logged(&log, "write2"))
            .unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(exit.get(), Some((0, None)));
    let log = log.borrow();
    assert_eq!(log.len(), N);
    let failed = log.iter().filter(|l| *l != "write2 ok").count();
    assert!(failed > 0, "the child read nothing: some writes fail");
    assert!(
        log.iter()
            .all(|l| ["write2 ok", "write2 EPIPE", "write2 ECONNRESET"].contains(&l.as_str())),
        "{log:?}"
    );
    t.close();
    ipc.close();
    lp.run(RunMode::Default).unwrap();
}

/// `try_write` of more than the socket takes writes a part and says how much;
/// the next is `EAGAIN`, as is one while a write is queued; the peer gets exactly
/// the bytes counted, in order, then those of the queued write.
#[test]
fn try_write_counts_what_it_wrote_and_the_peer_gets_exactly_that() {
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let data = pattern(8 << 20);
    let n = p.try_write(&data).unwrap();
    assert!(n > 0 && n < data.len(), "{n}");
    assert_eq!(
        p.try_write(&data[n..]).unwrap_err().code(),
        StatusCode::EAGAIN
    );
    assert_eq!(p.try_write(&[]).unwrap(), 0);
    let log: Log = Default::default();
    p.write(b"tail".to_vec(), logged(&log, "tail")).unwrap();
    assert_eq!(p.try_write(b"x").unwrap_err().code(), StatusCode::EAGAIN);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        got
    });
    let l = log.clone();
    run_until(&lp, || !l.borrow().is_empty());
    p.close();
    lp.run(RunMode::Default).unwrap();
    let got = reader.join().unwrap();
    assert_eq!(*log.borrow(), ["tail ok"]);
    assert_eq!(got.len(), n + 4);
    assert_eq!(got[..n], data[..n]);
    assert_eq!(&got[n..], b"tail");
}

/// Writes to a terminal (a pseudo-terminal's slave side) queued while its mode
/// switches between raw and normal after each: every write completes, and the
/// other side reads every byte.
#[test]
fn terminal_writes_survive_mode_switches_between_them() {
    let lp = Loop::new().unwrap();
    let (master, slave) = uv_tests::pty();
    let tty = uv::Tty::new(&lp, slave, false).unwrap();
    let log: Log = Default::default();
    const EACH: usize = 100_000;
    for i in 0..4 {
        tty.write(vec![b'a'; EACH], logged(&log, "write")).unwrap();
        let mode = if i % 2 == 0 {
            uv::TtyMode::Raw
        } else {
            uv::TtyMode::Normal
        };
        tty.set_mode(mode).unwrap();
    }
    assert!(tty.write_queue_size() > 0);
    let mut m = std::fs::File::from(master);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0; 65536];
        while got.len() < 4 * EACH {
            match m.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        got
    });
    lp.run(RunMode::Default).unwrap();
    let got = reader.join().unwrap();
    assert_eq!(*log.borrow(), ["write ok"; 4]);
    assert_eq!(got.len(), 4 * EACH);
    assert!(got.iter().all(|&b| b == b'a'));
    tty.close();
    lp.run(RunMode::Default).unwrap();
}

/// An IPC pipe with two sockets received (a TCP one, then `last`), whose read
/// then failed (`ECONNRESET`: the peer closed with data of ours unread);
/// `take_last` takes `last` once the TCP one is accepted. The loop iterations
/// while idle after that.
fn after_a_read_error(last: OwnedFd, take_last: impl FnOnce(&Pipe)) -> u64 {
    let lp = Loop::new().unwrap();
    let (p, peer) = pipe_and_std(&lp, true);
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    send_fds(&peer, b"1", &[tcp.as_raw_fd()]);
    send_fds(&peer, b"2", &[last.as_raw_fd()]);
    let log: Log = Default::default();
    p.write("never read", logged(&log, "write")).unwrap();
    let (bytes, error) = (Rc::new(Cell::new(0)), Rc::new(RefCell::new(None)));
    let (b, e) = (bytes.clone(), error.clone());
    p.read_start(move |_, d| match d {
        Ok(d) => b.set(b.get() + d.len()),
        Err(err) => *e.borrow_mut() = Some(err.code()),
    })
    .unwrap();
    run_until(&lp, || bytes.get() == 2 && !log.borrow().is_empty());
    drop(peer);
    run_until(&lp, || error.borrow().is_some());
    assert_eq!(*log.borrow(), ["write ok"]);
    assert_eq!(*error.borrow(), Some(StatusCode::ECONNRESET));
    assert!(!p.is_readable());
    assert_eq!(p.pending_count().unwrap(), 2);
    let t = Tcp::new(&lp).unwrap();
    p.accept_into(&t).unwrap();
    take_last(&p);
    assert_eq!(p.pending_count().unwrap(), 0);
    let n = iterations_while_idle(&lp);
    // The pipe is left as the error left it.
    assert!(!p.is_readable());
    assert_eq!(
        p.read_start(|_, _| {}).unwrap_err().code(),
        StatusCode::ENOTCONN
    );
    t.close();
    p.close();
    lp.run(RunMode::Default).unwrap();
    n
}

/// Used to happen: spin. After a read error on an IPC pipe (libuv then takes it
/// as unreadable and stops reading), taking its last received handle made libuv
/// watch it for reading again, and the start and stop of reading that puts the
/// watch back was refused (`ENOTCONN`): the error woke the loop on every
/// iteration, for good (27084 iterations while waiting 50 ms for a timer). Now 1,
/// whether `accept` or `accept_fd` takes it.
#[test]
fn taking_the_last_handle_after_a_read_error_does_not_make_the_loop_spin() {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let by_accept = after_a_read_error(tcp.into(), |p| {
        let t = Tcp::new(&p.loop_()).unwrap();
        p.accept_into(&t).unwrap();
        t.close();
    });
    assert!(
        by_accept <= 5,
        "{by_accept} loop iterations while waiting for a timer"
    );
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let by_fd = after_a_read_error(udp.into(), |p| {
        assert_eq!(socket_type(&p.accept_fd().unwrap()), libc::SOCK_DGRAM);
    });
    assert!(
        by_fd <= 5,
        "{by_fd} loop iterations while waiting for a timer"
    );
}

/// A listening pipe serves `CLIENTS` connections made one after the other (each
/// from the callback of the one before); the connections it accepted, counted by
/// a backstop that ends the run after 10 s, which plays no part in a passing run.
fn connections_served(lp: &Loop, server: Pipe, path: &std::path::Path) -> usize {
    const CLIENTS: usize = 3;
    let accepted = Rc::new(Cell::new(0));
    let backstop = uv::Timer::new(lp).unwrap();
    let srv = server.clone();
    backstop
        .start(
            std::time::Duration::from_secs(10),
            std::time::Duration::ZERO,
            move |t| {
                srv.close();
                t.close();
            },
        )
        .unwrap();
    let (a, to, clients) = (accepted.clone(), path.to_owned(), RefCell::new(Vec::new()));
    server
        .listen(8, move |s, st| {
            st.unwrap();
            s.accept().unwrap().close();
            a.set(a.get() + 1);
            if a.get() < CLIENTS {
                clients.borrow_mut().push(UnixStream::connect(&to).unwrap());
            } else {
                s.close();
                backstop.close();
            }
        })
        .unwrap();
    let first = UnixStream::connect(path).unwrap();
    lp.run(RunMode::Default).unwrap();
    drop(first);
    accepted.get()
}

/// Used to happen: hang. A listening pipe opened on a `UnixListener` (so libuv
/// takes it as readable) stopped watching for connections at its first `accept`:
/// the start and stop of reading meant for IPC pipes ended the listening watch,
/// and later connections waited for good (1 of 3 accepted, then the backstop).
/// Now every connection is accepted, as on a pipe that was bound.
#[test]
fn a_listening_pipe_opened_on_a_listener_keeps_accepting() {
    let dir = uv_tests::net::TempDir::new("pipe-listener");
    let lp = Loop::new().unwrap();
    let path = dir.join("opened");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let opened = Pipe::try_from((&*lp, listener)).unwrap();
    assert_eq!(connections_served(&lp, opened, &path), 3);
    let path = dir.join("bound");
    let bound = Pipe::new(&lp, false).unwrap();
    bound.bind(&path).unwrap();
    assert_eq!(connections_served(&lp, bound, &path), 3);
}

/// A shutdown queued behind writes the peer has yet to read waits for them: the
/// writes complete in order, then the shutdown, and the peer reads every byte
/// then the end of the stream.
#[test]
fn a_shutdown_behind_queued_writes_waits_for_them() {
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let log: Log = Default::default();
    let data = pattern(4 << 20);
    p.write(data.clone(), logged(&log, "big")).unwrap();
    p.write("tail", logged(&log, "tail")).unwrap();
    p.shutdown(logged(&log, "shutdown")).unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        got
    });
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*log.borrow(), ["big ok", "tail ok", "shutdown ok"]);
    let got = reader.join().unwrap();
    assert_eq!(got.len(), data.len() + 4);
    assert_eq!(got[..data.len()], data[..]);
    assert_eq!(&got[data.len()..], b"tail");
    p.close();
    lp.run(RunMode::Default).unwrap();
}

/// Each read callback stops reading and starts again with a new callback (the
/// chain of callbacks passes the received bytes along): every byte arrives once,
/// in order, then the end of the stream.
#[test]
fn reading_restarted_from_every_read_callback_keeps_every_byte() {
    fn chain(
        got: Rc<RefCell<Vec<u8>>>,
        calls: Rc<Cell<usize>>,
    ) -> impl FnMut(&Pipe, uv::Result<&[u8]>) {
        move |p, d| {
            calls.set(calls.get() + 1);
            match d {
                Ok(d) => {
                    got.borrow_mut().extend_from_slice(d);
                    p.read_stop().unwrap();
                    p.read_start(chain(got.clone(), calls.clone())).unwrap();
                }
                Err(e) => {
                    assert_eq!(e.code(), StatusCode::EOF);
                    p.close();
                }
            }
        }
    }
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let data = pattern(1 << 20);
    let d = data.clone();
    let writer = std::thread::spawn(move || {
        for chunk in d.chunks(10_000) {
            peer.write_all(chunk).unwrap();
        }
    });
    let (got, calls) = (Rc::new(RefCell::new(Vec::new())), Rc::new(Cell::new(0)));
    p.read_start(chain(got.clone(), calls.clone())).unwrap();
    lp.run(RunMode::Default).unwrap();
    writer.join().unwrap();
    assert_eq!(got.borrow().len(), data.len());
    assert!(*got.borrow() == data);
    assert!(calls.get() >= 2);
}

/// Used to happen: a handle lost unseen. A write that sends a handle with no
/// bytes (empty data, or only empty buffers in the first `IOV_MAX`, which libuv
/// sends at once) made a `sendmsg` of no bytes, which on a stream socket carries
/// no descriptor, and libuv reported the write done: the callback said `ok`,
/// `try_write2` said 0 bytes, and the receiver never got the handle. Now both are
/// `EINVAL` before anything is sent; with a byte among those buffers the handle
/// arrives.
#[test]
fn a_handle_sent_with_no_bytes_is_refused_instead_of_lost() {
    let lp = Loop::new().unwrap();
    let (a, b) = ipc_pair(&lp);
    let t = bound_tcp(&lp);
    let log: Log = Default::default();
    let empty = a.write2(Vec::<u8>::new(), &t, logged(&log, "empty"));
    assert_eq!(empty.unwrap_err().code(), StatusCode::EINVAL);
    // SAFETY: `sysconf` only reads a limit of the system.
    let iov_max = unsafe { libc::sysconf(libc::_SC_IOV_MAX) } as usize;
    let mut late = vec![Vec::new(); iov_max];
    late.push(b"late".to_vec());
    let late = a.write2(late, &t, logged(&log, "late bytes"));
    assert_eq!(late.unwrap_err().code(), StatusCode::EINVAL);
    assert_eq!(
        a.try_write2(&[], &t).unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(a.write_queue_size(), 0);
    let mut early = vec![Vec::new(); iov_max - 1];
    early.push(b"y".to_vec());
    a.write2(early, &t, logged(&log, "bytes")).unwrap();
    read_bytes(&lp, &b, 1);
    assert_eq!(*log.borrow(), ["bytes ok"]);
    assert_eq!(b.pending_count().unwrap(), 1);
    assert_eq!(b.pending_type().unwrap(), HandleType::Tcp);
    let got = Tcp::new(&lp).unwrap();
    b.accept_into(&got).unwrap();
    assert_eq!(got.local_addr().unwrap(), t.local_addr().unwrap());
    got.close();
    a.close();
    b.close();
    t.close();
    lp.run(RunMode::Default).unwrap();
}
