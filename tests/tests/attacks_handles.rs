//! Attacks on the handles that had none before: UDP, processes, pipes and
//! terminals, poll and signal handles, file watchers, DNS and the executor. Each
//! test names the behaviour it asserts; `tests/valgrind.sh attacks_handles` checks
//! the memory side.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::os::fd::AsRawFd as _;
use std::rc::Rc;

use uv::{Loop, Process, ProcessOptions, RunMode, Signum, StatusCode, Stdio};

// The tests of this file run one at a time: some depend on which descriptor
// numbers are free, and a signal goes to every watcher of the process.
use uv_tests::serial;

/// The two lowest descriptor numbers free now (what the next `pipe` gets).
fn two_lowest_free() -> (i32, i32) {
    let a = std::fs::File::open("/dev/null").unwrap();
    let b = std::fs::File::open("/dev/null").unwrap();
    (a.as_raw_fd(), b.as_raw_fd())
}

/// The current user id, so that a spawn with `uid` needs no privilege.
fn own_uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

/// `Stdio::Inherit` in a slot whose descriptor is closed is `EBADF`, whichever
/// number the slot has. libuv's fork path (taken for `uid`/`gid`) makes a
/// close-on-exec pipe, on the lowest free numbers, whose write end tells the parent
/// that the child has called `exec`; a slot with that number given as `Inherit`
/// made the child clear its close-on-exec flag (process.c, uv__process_child_init:
/// `fd == use_fd` → `uv__cloexec(use_fd, 0)`), so the child kept it and `uv_spawn`
/// blocked until the child exited (for a long-running child, a hang of the loop's
/// thread), then reported a success for a descriptor the parent never had.
#[test]
fn inheriting_a_closed_descriptor_is_ebadf_whatever_its_number() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    // A first spawn makes whatever libuv makes once (the child watcher).
    let warm = Process::spawn(&lp, &ProcessOptions::new("true"), |p, _, _| p.close()).unwrap();
    drop(warm);
    lp.run(RunMode::Default).unwrap();
    let (_, write_end) = two_lowest_free();
    let slot = usize::try_from(write_end).unwrap();
    let opts = ProcessOptions::new("true")
        .uid(own_uid())
        .stdio(slot, Stdio::Inherit);
    let r = Process::spawn(&lp, &opts, |p, _, _| p.close());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(r.map(|_| ()).unwrap_err().code(), StatusCode::EBADF);
    // The same with a slot no pipe of libuv's takes.
    let opts = ProcessOptions::new("true")
        .uid(own_uid())
        .stdio(900, Stdio::Inherit);
    let r = Process::spawn(&lp, &opts, |p, _, _| p.close());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(r.map(|_| ()).unwrap_err().code(), StatusCode::EBADF);
}

/// `Stdio::Inherit` of a descriptor in non-blocking mode (from 3 on) is `EINVAL`:
/// such a descriptor belongs to an event loop, this one's handles included
/// (`Handle::fileno` names their numbers), and libuv puts a child's descriptors in
/// blocking mode, in the parent too, which shares the open file (unix/process.c,
/// uv__spawn_set_posix_spawn_file_actions: `uv__nonblock_fcntl(use_fd, 0)`). A
/// stream that reads was then read from in blocking mode: after a read that fills
/// the loop's buffer libuv reads again, and that read waited for the peer, with
/// the loop's thread. `Stdio::Stream` refuses a stream that reads; `Inherit` of
/// its number went round that.
#[test]
fn inheriting_a_non_blocking_descriptor_is_einval() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let pipe = uv::Pipe::new(&lp, false).unwrap();
    pipe.open(a).unwrap();
    uv::Stream::read_start(&pipe, |_, _| {}).unwrap();
    let n = uv::Handle::fileno(&pipe).unwrap();
    assert!(uv_tests::net::nonblocking(n));
    let opts = ProcessOptions::new("true").stdio(usize::try_from(n).unwrap(), Stdio::Inherit);
    let r = Process::spawn(&lp, &opts, |p, _, _| p.close());
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(r.map(|_| ()).unwrap_err().code(), StatusCode::EINVAL);
    assert!(uv_tests::net::nonblocking(n));
    // A blocking descriptor of the program's own is inherited.
    let (c, _d) = std::os::unix::net::UnixStream::pair().unwrap();
    let opts =
        ProcessOptions::new("true").stdio(usize::try_from(c.as_raw_fd()).unwrap(), Stdio::Inherit);
    let exit = Rc::new(Cell::new(None));
    let e = exit.clone();
    Process::spawn(&lp, &opts, move |p, status, _| {
        e.set(Some(status));
        p.close();
    })
    .unwrap();
    pipe.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(exit.get(), Some(0));
}

/// `Stdio::fd` and `Stdio::borrowed_fd` of a descriptor in non-blocking mode are
/// `EINVAL`, for the same reason as `Inherit`: a copy of a stream's socket
/// (`try_clone` before `Pipe::open`) shares its open file, whose mode libuv
/// switched to blocking for the child, under the stream that reads.
#[test]
fn giving_a_non_blocking_descriptor_to_a_child_is_einval() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let copy = a.try_clone().unwrap();
    let pipe = uv::Pipe::new(&lp, false).unwrap();
    pipe.open(a).unwrap();
    // The stream does not read while the copy lasts (it could make the file
    // blocking under the read).
    assert_eq!(
        uv::Stream::read_start(&pipe, |_, _| {}).unwrap_err().code(),
        StatusCode::EINVAL
    );
    let n = uv::Handle::fileno(&pipe).unwrap();
    assert!(uv_tests::net::nonblocking(n));
    for slot in [1, 3] {
        let opts = ProcessOptions::new("true").stdio(slot, Stdio::borrowed_fd(&copy));
        let r = Process::spawn(&lp, &opts, |p, _, _| p.close());
        assert_eq!(r.map(|_| ()).unwrap_err().code(), StatusCode::EINVAL);
        assert!(uv_tests::net::nonblocking(n));
    }
    let opts = ProcessOptions::new("true").stdio(3, Stdio::fd(copy));
    let r = Process::spawn(&lp, &opts, |p, _, _| p.close());
    assert_eq!(r.map(|_| ()).unwrap_err().code(), StatusCode::EINVAL);
    assert!(uv_tests::net::nonblocking(n));
    drop(opts);
    pipe.close();
    lp.run(RunMode::Default).unwrap();
}

/// A program that cannot be run is the spawn's error, whatever numbers the slots
/// have: a slot given a descriptor on the number of libuv's pipe (see above) was
/// `dup2`ed over that pipe in the child, so the parent saw it close at once and
/// reported a success, and the child wrote its `exec` error into the slot's file.
#[test]
fn a_failed_exec_is_the_error_whatever_the_slot_numbers() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let warm = Process::spawn(&lp, &ProcessOptions::new("true"), |p, _, _| p.close()).unwrap();
    drop(warm);
    lp.run(RunMode::Default).unwrap();
    let (mut reader, writer) = std::io::pipe().unwrap();
    let (_, write_end) = two_lowest_free();
    let slot = usize::try_from(write_end).unwrap();
    let opts = ProcessOptions::new("/nonexistent/program")
        .uid(own_uid())
        .stdio(slot, Stdio::fd(writer));
    let r = Process::spawn(&lp, &opts, |p, _, _| p.close());
    drop(opts);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(r.map(|_| ()).unwrap_err().code(), StatusCode::ENOENT);
    // Nothing was written into the slot's pipe.
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut got).unwrap();
    assert_eq!(got, b"");
}

/// A one-shot watch started while the handle's one-shot delivery is under way (in
/// its callback, whatever the signal) is refused (`EBUSY`): libuv stops a one-shot
/// handle after that delivery's callback (unix/signal.c, uv__signal_event:
/// `if (handle->flags & UV_SIGNAL_ONE_SHOT) uv__signal_stop(handle)`), which
/// undid the new watch after `start_oneshot` had answered `Ok`, and put the signal
/// back to its default action: the next SIGUSR2 the program believed watched
/// killed it. A `start` (every delivery) from the callback goes on watching.
#[test]
fn a_one_shot_watch_started_during_a_one_shot_delivery_is_refused() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let sig = uv::Signal::new(&lp).unwrap();
    let answers = Rc::new(RefCell::new(Vec::new()));
    let a = answers.clone();
    sig.start_oneshot(Signum::User1, move |h, n| {
        assert_eq!(n, Signum::User1);
        let mut a = a.borrow_mut();
        // The same signal again, then another one: both would be undone.
        a.push(
            h.start_oneshot(Signum::User1, |_, _| {})
                .map_err(|e| e.code()),
        );
        a.push(
            h.start_oneshot(Signum::User2, |_, _| {})
                .map_err(|e| e.code()),
        );
        // Stopped first: still the same delivery.
        h.stop().unwrap();
        a.push(
            h.start_oneshot(Signum::User2, |_, _| {})
                .map_err(|e| e.code()),
        );
    })
    .unwrap();
    uv_tests::raise("USR1");
    while answers.borrow().is_empty() {
        lp.run(RunMode::Once).unwrap();
    }
    assert_eq!(
        *answers.borrow(),
        vec![
            Err(StatusCode::EBUSY),
            Err(StatusCode::EBUSY),
            Err(StatusCode::EBUSY)
        ]
    );
    assert_eq!(sig.signum().unwrap(), None);
    // Once the delivery is over, a one-shot watch starts and lasts until its signal.
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    sig.start_oneshot(Signum::User2, move |h, n| {
        s.set(Some(n));
        // Every delivery from now on: this one is kept.
        h.start(Signum::User2, |_, _| {}).unwrap();
    })
    .unwrap();
    assert_eq!(sig.signum().unwrap(), Some(Signum::User2));
    uv_tests::raise("USR2");
    while seen.get().is_none() {
        lp.run(RunMode::Once).unwrap();
    }
    assert_eq!(sig.signum().unwrap(), Some(Signum::User2));
    sig.close();
    lp.run(RunMode::Default).unwrap();
}

/// A path too long for a Unix socket name (`sun_path`, 108 bytes on Linux) is
/// `EINVAL` for `bind` and `connect`, as for `bind2`/`connect2` with
/// `NO_TRUNCATE`. libuv cut it to the first 108 bytes (unix/pipe.c,
/// uv_pipe_bind2/uv_pipe_connect2: "Truncate long paths"): `bind` made the
/// socket at another path than the one named (a file beside the directory the
/// program meant), and `connect` reached whichever socket the shorter path named.
#[test]
fn a_socket_path_too_long_is_einval_not_cut_short() {
    let _serial = serial();
    use std::os::unix::ffi::OsStrExt as _;

    let dir = std::env::temp_dir().join(format!("uv-atk-long-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let long = dir.join("s".repeat(200));
    let cut = std::path::Path::new(std::ffi::OsStr::from_bytes(
        &long.as_os_str().as_bytes()[..108],
    ))
    .to_path_buf();
    let lp = Loop::new().unwrap();
    let server = uv::Pipe::new(&lp, false).unwrap();
    let r = server.bind(&long);
    let made_cut = cut.exists();
    let _ = std::fs::remove_file(&cut);
    assert_eq!(r.map_err(|e| e.code()), Err(StatusCode::EINVAL));
    assert!(!made_cut, "a socket was made at {}", cut.display());
    // `connect` is refused at once: no callback, and no connection to whatever
    // the cut path names. (No server is made there: a 108-byte name has no NUL
    // byte, which valgrind's check of `bind` reads past.)
    let client = uv::Pipe::new(&lp, false).unwrap();
    let result = Rc::new(RefCell::new(None));
    let r2 = result.clone();
    let started = client.connect(&long, move |c, r| {
        *r2.borrow_mut() = Some(r.map_err(|e| e.code()));
        c.close();
    });
    if started.is_err() {
        client.close();
    }
    lp.run(RunMode::Default).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(started.map_err(|e| e.code()), Err(StatusCode::EINVAL));
    assert_eq!(*result.borrow(), None);
    server.close();
    lp.run(RunMode::Default).unwrap();
}

/// `recv_start` on a UDP socket in blocking mode is `EINVAL` (the mode belongs to
/// the open file, which a copy of the socket made before `open` shares, and
/// `set_nonblocking(false)` on that copy changes). libuv reads datagrams until the
/// socket has none (unix/udp.c, uv__udp_recvmsg: up to 32 reads, until `EAGAIN`);
/// on a blocking socket the read after the last datagram waited for the next one,
/// with the loop's thread: the loop hung after its first datagram.
#[test]
fn receiving_on_a_blocking_udp_socket_is_einval() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let copy = s.try_clone().unwrap();
    let u = uv::Udp::new(&lp).unwrap();
    u.open(s).unwrap();
    copy.set_nonblocking(false).unwrap();
    let err = u.recv_start(|_, _| {}).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert!(!u.is_active());
    // Without the copy, the socket is still blocking (the mode belongs to the
    // open file, which the handle keeps): still refused.
    drop(copy);
    let err = u.recv_start(|_, _| {}).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert!(!u.is_active());
    u.close();
    lp.run(RunMode::Default).unwrap();
}

/// A listening stream is not given to a child (`Stdio::Stream`): `EINVAL`, no
/// child, and the listener stays in non-blocking mode and goes on accepting.
/// libuv puts a child's descriptors in blocking mode, in the parent too (the open
/// file is shared), and each connection event makes libuv `accept` once
/// (unix/stream.c, uv__server_io): when a child given the listener took that
/// connection first, the parent's `accept` waited for the next connection with
/// the loop's thread. Reading streams are refused for the same reason. (A listener
/// is shared with a child through an IPC pipe's `write2`, which leaves its mode
/// alone.)
/// Used to happen: the spawn succeeded and left the listener in blocking mode.
#[test]
fn a_listening_stream_is_not_given_to_a_child() {
    use uv::Stream as _;

    let _serial = serial();
    let lp = Loop::new().unwrap();
    let t = uv::Tcp::new(&lp).unwrap();
    t.bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    let accepted = Rc::new(Cell::new(0));
    let a = accepted.clone();
    t.listen(8, move |srv, status| {
        status.unwrap();
        drop(srv.accept().unwrap());
        a.set(a.get() + 1);
        srv.close();
    })
    .unwrap();
    let n = uv::Handle::fileno(&t).unwrap();
    assert!(uv_tests::net::nonblocking(n));
    let opts = ProcessOptions::new("true").stdio(3, Stdio::stream(&t));
    let e = Process::spawn(&lp, &opts, |p, _, _| p.close()).unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    assert_eq!(e.operation(), "uv_spawn");
    assert!(
        uv_tests::net::nonblocking(n),
        "the listener is in blocking mode after the spawn"
    );
    // Nor can the listener be made blocking by hand.
    assert_eq!(t.set_blocking(true).unwrap_err().code(), StatusCode::EINVAL);
    assert!(uv_tests::net::nonblocking(n));
    // It still accepts.
    let to = t.local_addr().unwrap();
    let peer = std::thread::spawn(move || std::net::TcpStream::connect(to).map(drop));
    lp.run(RunMode::Default).unwrap();
    peer.join().unwrap().unwrap();
    assert_eq!(accepted.get(), 1);
}

/// A stream given to a child (`Stdio::Stream`) does not listen afterwards
/// (`EINVAL`): the child shares its open file and may switch it to blocking mode
/// at any time, and an accept of a connection the child took first would wait
/// with the loop's thread. Nor does a stream whose descriptor is in blocking
/// mode.
/// Used to happen: both listened.
#[test]
fn a_stream_shared_with_a_child_or_blocking_does_not_listen() {
    use uv::Stream as _;

    let _serial = serial();
    let lp = Loop::new().unwrap();
    let t = uv::Tcp::new(&lp).unwrap();
    t.bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    let opts = ProcessOptions::new("true").stdio(3, Stdio::stream(&t));
    let exited = Rc::new(Cell::new(None));
    let x = exited.clone();
    Process::spawn(&lp, &opts, move |p, status, _| {
        x.set(Some(status));
        p.close();
    })
    .unwrap();
    let e = t.listen(8, |_, _| {}).unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    assert_eq!(e.operation(), "uv_listen");
    t.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(exited.get(), Some(0));

    // A pipe made blocking by hand does not listen either.
    let dir = std::env::temp_dir().join(format!("uv-attack-listen-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let p = uv::Pipe::new(&lp, false).unwrap();
    p.bind(&dir).unwrap();
    p.set_blocking(true).unwrap();
    assert_eq!(
        p.listen(8, |_, _| {}).unwrap_err().code(),
        StatusCode::EINVAL
    );
    p.set_blocking(false).unwrap();
    p.listen(8, |_, _| {}).unwrap();
    p.close();
    lp.run(RunMode::Default).unwrap();
    let _ = std::fs::remove_file(&dir);
}
