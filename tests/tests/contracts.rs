//! The checks that close the rows the assertion audit (`docs/soundness-audit.md`)
//! first found open: listening streams, descriptors watched twice, streams marked
//! readable without a descriptor.

#![cfg(unix)]

use std::cell::Cell;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use uv::Stream as _;

use uv::{Loop, Poll, PollEvent, RunMode, StatusCode, Tcp, TcpFlags};

fn listening_tcp(lp: &Loop) -> (Tcp, std::net::SocketAddr) {
    let server = Tcp::new(lp).unwrap();
    server
        .bind("127.0.0.1:0".parse().unwrap(), TcpFlags::empty())
        .unwrap();
    server.listen(8, |_, _| {}).unwrap();
    let addr = server.local_addr().unwrap();
    (server, addr)
}

#[test]
fn a_listening_stream_takes_no_second_listen_read_write_or_shutdown() {
    let lp = Loop::new().unwrap();
    let (server, _) = listening_tcp(&lp);
    let code = |r: uv::Result<()>| r.unwrap_err().code();
    assert_eq!(code(server.listen(8, |_, _| {})), StatusCode::EINVAL);
    assert_eq!(code(server.read_start(|_, _| {})), StatusCode::EINVAL);
    assert_eq!(code(server.write(&b"x"[..], |_, _| {})), StatusCode::EINVAL);
    assert_eq!(code(server.shutdown(|_, _| {})), StatusCode::EINVAL);
    // The server still serves: a client connects and is accepted (from a timer, as
    // the connection callback cannot be replaced by a second listen).
    let accepted = Rc::new(Cell::new(0));
    let a = accepted.clone();
    let s2 = server.clone();
    let lp2 = lp.handle();
    let client = std::net::TcpStream::connect(server.local_addr().unwrap()).unwrap();
    let timer = uv::Timer::new(&lp).unwrap();
    timer
        .start(
            std::time::Duration::from_millis(1),
            std::time::Duration::from_millis(1),
            move |t| {
                let c = Tcp::new(&lp2).unwrap();
                if s2.accept_into(&c).is_ok() {
                    a.set(a.get() + 1);
                    c.close();
                    s2.close();
                    t.close();
                }
            },
        )
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(accepted.get(), 1);
    drop(client);
}

#[test]
fn listen_with_a_connect_in_flight_is_einval() {
    let lp = Loop::new().unwrap();
    let (server, addr) = listening_tcp(&lp);
    let client = Tcp::new(&lp).unwrap();
    let connected = Rc::new(Cell::new(None));
    let c = connected.clone();
    client
        .connect(addr, move |_, r| c.set(Some(r.map_err(|e| e.code()))))
        .unwrap();
    assert_eq!(
        client.listen(8, |_, _| {}).unwrap_err().code(),
        StatusCode::EINVAL
    );
    // The refused listen left the connect alone.
    while connected.get().is_none() {
        lp.run(RunMode::Once).unwrap();
    }
    assert_eq!(connected.get(), Some(Ok(())));
    client.close();
    server.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn a_second_poll_on_one_descriptor_is_eexist_until_the_first_is_closed() {
    let lp = Loop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let a = Rc::new(a);
    let first = Poll::new(&lp, a.clone()).unwrap();
    let rejected = Poll::new(&lp, a.clone()).unwrap_err();
    assert_eq!(rejected.error().code(), StatusCode::EEXIST);
    // The value comes back: one more Rc owner.
    assert_eq!(Rc::strong_count(&a), 3);
    drop(rejected);
    // The refused handle was closed; the first one still works.
    let seen = Rc::new(Cell::new(PollEvent::empty()));
    let s = seen.clone();
    use std::io::Write;
    b.write_all(b"!").unwrap();
    first
        .start(PollEvent::READABLE, move |p, r, ev| {
            r.unwrap();
            s.set(ev);
            p.close();
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(seen.get(), PollEvent::READABLE);
    assert_eq!(lp.handle_count(), 0);
    // Closed: the descriptor is free for a new poll.
    let again = Poll::new(&lp, a.clone()).unwrap();
    again.close();
    lp.run(RunMode::Default).unwrap();
    let mut buf = [0u8; 1];
    (&*a).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"!");
}

#[test]
fn polls_on_one_descriptor_in_two_loops_are_independent() {
    let lp1 = Loop::new().unwrap();
    let lp2 = Loop::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let a = Rc::new(a);
    let p1 = Poll::new(&lp1, a.clone()).unwrap();
    let p2 = Poll::new(&lp2, a.clone()).unwrap();
    p1.close();
    p2.close();
    lp1.run(RunMode::Default).unwrap();
    lp2.run(RunMode::Default).unwrap();
    assert_eq!(Rc::strong_count(&a), 1);
}

/// SIGPIPE is ignored in every Rust program; libuv puts a signal back to its default
/// action when it stops watching it, and a one-shot watcher's handler is reset by the
/// kernel on delivery. Either would turn the next write to a closed peer into a kill.
/// A one-shot watch of SIGPIPE used to be refused (`EINVAL`) for that reason; it
/// now finds the runtime's lasting watch of it (made before the start), so libuv
/// installs no one-shot handler: the watch sees one delivery (its own write's,
/// or another test's) and stops, and every write to a closed peer, before and
/// after, is `EPIPE`. After the watch, libuv's handler stays (see
/// `a_stopped_sigpipe_watch_never_leaves_sigpipe_at_its_default_action`).
#[test]
fn watching_sigpipe_once_or_for_good_leaves_it_caught() {
    let lp = Loop::new().unwrap();
    let sig = uv::Signal::new(&lp).unwrap();
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    sig.start_oneshot(uv::Signum::Pipe, move |_, signum| {
        assert_eq!(signum, uv::Signum::Pipe);
        s.set(s.get() + 1);
    })
    .unwrap();
    assert_eq!(sig.signum().unwrap(), Some(uv::Signum::Pipe));
    assert_caught(libc::SIGPIPE);
    // libuv's lasting handler, not a one-shot one the kernel would reset.
    // SAFETY: a query (no new action); `cur` is a valid out-pointer.
    let flags = unsafe {
        let mut cur: libc::sigaction = std::mem::zeroed();
        assert_eq!(
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut cur),
            0
        );
        cur.sa_flags
    };
    assert_eq!(flags & libc::SA_RESETHAND, 0, "flags {flags:#x}");
    // The write raises SIGPIPE on this thread; the run that closes its pipe
    // also delivers it, and libuv stops the one-shot watch.
    assert_write_to_closed_peer_is_epipe(&lp);
    assert_eq!(seen.get(), 1);
    assert!(!sig.is_active());
    assert_eq!(sig.signum().unwrap(), None);
    assert_caught(libc::SIGPIPE);
    assert_write_to_closed_peer_is_epipe(&lp);
    assert_eq!(seen.get(), 1, "one-shot");
    sig.start(uv::Signum::Pipe, |_, _| {}).unwrap();
    assert_eq!(sig.signum().unwrap(), Some(uv::Signum::Pipe));
    sig.stop().unwrap();
    sig.close();
    lp.run(RunMode::Default).unwrap();
    assert_caught(libc::SIGPIPE);
    // Still harmless: a write to a closed peer is an error, not a kill.
    assert_write_to_closed_peer_is_epipe(&lp);
}

/// SIGPIPE's action is a handler: neither the default (a kill) nor `SIG_IGN`.
/// Once a handle has watched it, libuv's handler stays installed for good.
fn assert_caught(signum: i32) {
    let d = disposition(signum);
    assert!(d != libc::SIG_DFL && d != libc::SIG_IGN, "{d}");
}

/// libuv puts a signal back to its default action when its last watch stops,
/// and the crate ignored SIGPIPE again only after that: in between, a write to a
/// closed peer on any other thread killed the process. A thread that reads
/// SIGPIPE's action while this one starts and stops watches of it used to see
/// the default action; now libuv's handler stays installed once a handle of the
/// crate has watched SIGPIPE (a watch of the crate's own, on a loop that never
/// runs), and the action is never the default.
#[test]
fn a_stopped_sigpipe_watch_never_leaves_sigpipe_at_its_default_action() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let (done, defaults, reads) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let sampler = {
        let (done, defaults, reads) = (done.clone(), defaults.clone(), reads.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if disposition(libc::SIGPIPE) == libc::SIG_DFL {
                    defaults.fetch_add(1, Ordering::Relaxed);
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let lp = Loop::new().unwrap();
    // The sampler is reading before the first watch.
    while reads.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    for _ in 0..uv_tests::iterations(300) {
        let sig = uv::Signal::new(&lp).unwrap();
        sig.start(uv::Signum::Pipe, |_, _| {}).unwrap();
        sig.stop().unwrap();
        assert_caught(libc::SIGPIPE);
        sig.close();
        lp.run(RunMode::Default).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_eq!(defaults.load(Ordering::Relaxed), 0);
    assert_write_to_closed_peer_is_epipe(&lp);
}

/// A write to a pipe whose peer is gone is `EPIPE` (SIGPIPE is still ignored: the
/// process is not killed).
fn assert_write_to_closed_peer_is_epipe(lp: &Loop) {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let p = uv::Pipe::new(lp, false).unwrap();
    p.open(a).unwrap();
    assert_eq!(p.try_write(b"x").unwrap_err().code(), StatusCode::EPIPE);
    p.close();
    lp.run(RunMode::Default).unwrap();
}

/// The action the process has for `signum` now: `SIG_IGN`, `SIG_DFL` or a handler.
fn disposition(signum: i32) -> libc::sighandler_t {
    // SAFETY: a query (no new action); `old` is a valid out-pointer.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signum, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// `start_oneshot` on a handle that watches SIGPIPE first stops that watch, and
/// libuv then puts SIGPIPE back to its default action: the handle's one-shot start
/// (of another signal, and one that fails) leaves SIGPIPE ignored, as `start` and
/// `stop` do. A fuzzer finding: the worker was killed by the next write to a closed
/// peer.
#[test]
fn a_one_shot_start_that_replaces_a_sigpipe_watch_leaves_sigpipe_ignored() {
    // The tests that watch SIGWINCH one after the other: one's raise would be
    // a caught, undelivered signal for another's `start_oneshot` (`EBUSY`).
    let _serial = uv_tests::serial();
    let lp = Loop::new().unwrap();
    let sig = uv::Signal::new(&lp).unwrap();
    // Another signal, accepted.
    sig.start(uv::Signum::Pipe, |_, _| {}).unwrap();
    assert_ne!(disposition(libc::SIGPIPE), libc::SIG_IGN, "libuv's handler");
    sig.start_oneshot(uv::Signum::WindowChange, |_, _| {})
        .unwrap();
    assert_eq!(sig.signum().unwrap(), Some(uv::Signum::WindowChange));
    assert_caught(libc::SIGPIPE);
    // A signal no handler can be installed for: refused after libuv stopped the
    // SIGPIPE watch.
    sig.start(uv::Signum::Pipe, |_, _| {}).unwrap();
    let err = sig.start_oneshot(uv::Signum::Kill, |_, _| {}).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert_eq!(sig.signum().unwrap(), None);
    assert_caught(libc::SIGPIPE);
    sig.close();
    lp.run(RunMode::Default).unwrap();
    // A write to a closed peer is an error, not a kill.
    assert_write_to_closed_peer_is_epipe(&lp);
}

/// libuv marks a handle one-shot in `start_oneshot` and never clears the mark: a
/// later `start` of SIGPIPE on that handle watched one-shot, libuv stopped the
/// watcher from inside `run` on the first SIGPIPE and put SIGPIPE back to its
/// default action, and the next write to a closed peer killed the process. A fuzzer
/// finding (the worker died of SIGPIPE). `start` now watches every delivery.
#[test]
fn a_start_after_a_one_shot_start_watches_every_delivery() {
    use std::io::Write;
    let _serial = uv_tests::serial();
    let lp = Loop::new().unwrap();
    let sig = uv::Signal::new(&lp).unwrap();
    sig.start_oneshot(uv::Signum::WindowChange, |_, _| {})
        .unwrap();
    sig.stop().unwrap();
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    sig.start(uv::Signum::Pipe, move |_, n| {
        assert_eq!(n, uv::Signum::Pipe);
        s.set(s.get() + 1);
    })
    .unwrap();
    // A write to a pipe without a reader raises SIGPIPE, which libuv's handler
    // catches; the write itself is EPIPE.
    let (r, w) = uv::pipe(uv::StdioFlags::empty(), uv::StdioFlags::empty()).unwrap();
    drop(r);
    let mut w = std::fs::File::from(w);
    for round in 1..=2 {
        let err = w.write(b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        lp.run(RunMode::NoWait).unwrap();
        // At least this round's (another test's write to a closed peer raises
        // SIGPIPE too, delivered to every watch); a one-shot watch would have
        // stopped at one.
        assert!(seen.get() >= round, "{} < {round}", seen.get());
        assert_eq!(sig.signum().unwrap(), Some(uv::Signum::Pipe));
        assert_ne!(disposition(libc::SIGPIPE), libc::SIG_DFL);
    }
    sig.close();
    lp.run(RunMode::Default).unwrap();
    assert_caught(libc::SIGPIPE);
    assert_write_to_closed_peer_is_epipe(&lp);
}

/// A `start` of the signal a handle watches one-shot makes the watch one for every
/// delivery (libuv alone would only replace the callback and stay one-shot).
#[test]
fn a_start_over_an_active_one_shot_watch_of_the_same_signal_stays() {
    let _serial = uv_tests::serial();
    let lp = Loop::new().unwrap();
    let sig = uv::Signal::new(&lp).unwrap();
    sig.start_oneshot(uv::Signum::WindowChange, |_, _| {})
        .unwrap();
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    sig.start(uv::Signum::WindowChange, move |_, _| s.set(s.get() + 1))
        .unwrap();
    for round in 1..=2 {
        // SAFETY: raise has no preconditions; libuv's handler catches SIGWINCH.
        assert_eq!(unsafe { libc::raise(libc::SIGWINCH) }, 0);
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(seen.get(), round);
        assert_eq!(sig.signum().unwrap(), Some(uv::Signum::WindowChange));
    }
    sig.close();
    lp.run(RunMode::Default).unwrap();
}

/// An unconnected TCP socket as a stream: epoll reports it hung up as soon as it is
/// watched, and a write on it fails at once.
fn unconnected_tcp(lp: &Loop) -> Tcp {
    use std::os::fd::FromRawFd;
    // SAFETY: plain system call; the result is checked before it is owned.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    assert!(fd >= 0);
    // SAFETY: a new descriptor that nothing else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let t = Tcp::new(lp).unwrap();
    t.open(fd).unwrap();
    t
}

/// A write that fails at once has its callback queued for the loop's pending pass,
/// but libuv runs the write callbacks of a stream whenever it gets a hang-up or
/// error event for it, which can come first (in the same poll). A `listen` in that
/// callback found no request in flight, and the pass still queued then called
/// libuv's server code with a write event: an abort (stream.c:513,
/// `events & POLLIN`). A fuzzer finding. `listen` is `EINVAL` while the stream is
/// queued for the pending pass.
#[test]
fn listen_while_the_stream_is_queued_for_the_pending_pass_is_einval() {
    let lp = Loop::new().unwrap();
    let t = unconnected_tcp(&lp);
    // Watched for reading: the poll reports the hang-up (and the read fails).
    t.read_start(|_, _| {}).unwrap();
    let listened = Rc::new(Cell::new(None));
    let prepare = uv::Prepare::new(&lp).unwrap();
    let (t2, l) = (t.clone(), listened.clone());
    // Right before the poll: a write that fails at once.
    prepare
        .start(move |p| {
            p.stop().unwrap();
            let (t3, l) = (t2.clone(), l.clone());
            t2.write(&b"x"[..], move |_, r| {
                assert!(r.is_err());
                let listen = t3.listen(8, |_, _| {});
                l.set(Some(listen.map_err(|e| e.code())));
            })
            .unwrap();
        })
        .unwrap();
    lp.run(RunMode::NoWait).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(listened.get(), Some(Err(StatusCode::EINVAL)));
    // Once the pass has run, the stream can listen.
    t.read_stop().unwrap();
    t.listen(8, |_, _| {}).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    prepare.close();
    t.close();
    lp.run(RunMode::Default).unwrap();
}

/// Two unconnected sockets watched for reading both report a hang-up in the same
/// poll. The first one's callback made the other listen: its hang-up, collected by
/// the same poll and still to be handed out, then went to libuv's server code, which
/// asserts the event is readable: an abort (stream.c:513, `events & POLLIN`),
/// whether the other was still reading or had stopped. `listen` is `EINVAL` while the
/// loop runs for a stream whose descriptor the loop still watches.
#[test]
fn listen_on_a_stream_with_an_event_collected_by_the_same_poll_is_einval() {
    for stop_first in [true, false] {
        let lp = Loop::new().unwrap();
        let streams = [unconnected_tcp(&lp), unconnected_tcp(&lp)];
        let eofs = Rc::new(Cell::new(0));
        let listened = Rc::new(Cell::new(None));
        for (i, t) in streams.iter().enumerate() {
            let other = streams[1 - i].clone();
            let (eofs, listened) = (eofs.clone(), listened.clone());
            t.read_start(move |_, r| {
                assert_eq!(r.unwrap_err().code(), StatusCode::EOF);
                eofs.set(eofs.get() + 1);
                // The first callback of the poll: the other's hang-up is still to
                // be handed out.
                if eofs.get() == 1 {
                    if stop_first {
                        other.read_stop().unwrap();
                    }
                    let r = other.listen(8, |_, _| {});
                    listened.set(Some(r.map_err(|e| e.code())));
                }
            })
            .unwrap();
        }
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(listened.get(), Some(Err(StatusCode::EINVAL)));
        // Both hang-ups were handed out (the other's to its read callback, when it
        // was still reading).
        assert_eq!(eofs.get(), if stop_first { 1 } else { 2 });
        // Outside the run nothing is collected: the stream can listen.
        for t in &streams {
            t.read_stop().unwrap();
        }
        streams[0].listen(8, |_, _| {}).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        for t in &streams {
            t.close();
        }
        lp.run(RunMode::Default).unwrap();
    }
}

/// A listening socket shut down for reading through another of its descriptors
/// made libuv's server code abort on the hang-up the poll then reports (stream.c
/// `uv__server_io`: `events & POLLIN`). `listen` now refuses a socket that has
/// another descriptor in this process; once that one is gone it listens.
#[test]
fn listen_on_a_socket_with_another_descriptor_is_einval() {
    use std::os::fd::OwnedFd;

    let lp = Loop::new().unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    let other = l.try_clone().unwrap();
    let t = Tcp::new(&lp).unwrap();
    t.open(OwnedFd::from(l)).unwrap();
    let e = t.listen(8, |_, _| {}).unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    assert_eq!(e.operation(), "uv_listen");

    // Shutting the socket down through the other descriptor is harmless now: the
    // stream does not listen, so the loop does not watch it.
    let s = std::net::TcpStream::from(OwnedFd::from(other));
    s.shutdown(std::net::Shutdown::Read).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    drop(s);
    t.close();
    lp.run(RunMode::Default).unwrap();

    // A listener whose copy is dropped before `listen` listens, and takes a
    // connection.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr2 = l.local_addr().unwrap();
    assert_ne!(addr, addr2);
    drop(l.try_clone().unwrap());
    let t = Tcp::new(&lp).unwrap();
    t.open(OwnedFd::from(l)).unwrap();
    let accepted = Rc::new(Cell::new(0));
    let a = accepted.clone();
    t.listen(8, move |srv, r| {
        r.unwrap();
        let c = srv.accept().unwrap();
        c.close();
        a.set(a.get() + 1);
        srv.close();
    })
    .unwrap();
    let client = std::net::TcpStream::connect(addr2).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(accepted.get(), 1);
    drop(client);
}

/// The same refusal for a pipe: a Unix listening socket with a copy.
#[test]
fn listen_on_a_pipe_socket_with_another_descriptor_is_einval() {
    use std::os::fd::OwnedFd;

    let lp = Loop::new().unwrap();
    let path = std::env::temp_dir().join(format!("uv-contracts-dup-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    l.set_nonblocking(true).unwrap();
    let other = l.try_clone().unwrap();
    let p = uv::Pipe::new(&lp, false).unwrap();
    p.open(OwnedFd::from(l)).unwrap();
    assert_eq!(
        p.listen(8, |_, _| {}).unwrap_err().code(),
        StatusCode::EINVAL
    );
    drop(other);
    p.listen(8, |_, _| {}).unwrap();
    p.close();
    lp.run(RunMode::Default).unwrap();
    let _ = std::fs::remove_file(&path);
}

/// Descriptors that handles hold do not count: a server sent over an IPC pipe in
/// this process listens while its sender is open, and two handles opened on
/// copies of one socket both listen (the library never shuts a socket down for
/// reading). A user's copy still counts once the handles are there.
#[test]
fn copies_held_by_handles_do_not_stop_a_listen() {
    use std::os::fd::OwnedFd;

    let lp = Loop::new().unwrap();
    let (srv, addr) = uv_tests::net::bound_tcp(&lp);
    let (t, pa) = pass_over_ipc(&lp, &srv);
    assert!(!srv.is_closing());
    let accepted = Rc::new(Cell::new(0));
    let acc = accepted.clone();
    t.listen(8, move |s, r| {
        r.unwrap();
        s.accept().unwrap().close();
        acc.set(acc.get() + 1);
        s.close();
    })
    .unwrap();
    let client = std::net::TcpStream::connect(addr).unwrap();
    while accepted.get() == 0 {
        lp.run(RunMode::Once).unwrap();
    }
    drop(client);
    srv.close();
    pa.close();

    // Two handles on copies of one listening socket.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let copy = l.try_clone().unwrap();
    let user_copy = l.try_clone().unwrap();
    let (t1, t2) = (Tcp::new(&lp).unwrap(), Tcp::new(&lp).unwrap());
    t1.open(OwnedFd::from(l)).unwrap();
    t2.open(OwnedFd::from(copy)).unwrap();
    // The user's own copy still counts.
    assert_eq!(
        t1.listen(8, |_, _| {}).unwrap_err().code(),
        StatusCode::EINVAL
    );
    drop(user_copy);
    t1.listen(8, |_, _| {}).unwrap();
    t2.listen(8, |_, _| {}).unwrap();
    t1.close();
    t2.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(accepted.get(), 1);

    // A closed handle's descriptor is no longer the library's: its number is free
    // for anyone. Here a copy the user makes takes the lowest free number, most
    // likely the one a handle had.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let t3 = Tcp::new(&lp).unwrap();
    t3.open(OwnedFd::from(l.try_clone().unwrap())).unwrap();
    let gone = t3.fileno().unwrap();
    t3.close();
    lp.run(RunMode::Default).unwrap();
    let user_copy = l.try_clone().unwrap();
    let reused = std::os::fd::AsRawFd::as_raw_fd(&user_copy) == gone;
    let t4 = Tcp::new(&lp).unwrap();
    t4.open(OwnedFd::from(l)).unwrap();
    assert_eq!(
        t4.listen(8, |_, _| {}).unwrap_err().code(),
        StatusCode::EINVAL,
        "the user's copy (number reused: {reused}) counts"
    );
    t4.close();
    lp.run(RunMode::Default).unwrap();
}

/// A copy of a socket kept from before `open` can switch the shared open file to
/// blocking mode after reading started, and the loop would then wait in a read
/// (libuv reads a UDP socket until it has no datagram). Reading is refused while
/// such a copy lasts, and taken once it is gone.
#[test]
fn reading_a_socket_whose_copy_is_kept_is_einval_until_the_copy_is_gone() {
    use std::os::fd::OwnedFd;

    let lp = Loop::new().unwrap();

    // UDP.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let copy = sock.try_clone().unwrap();
    let u = uv::Udp::new(&lp).unwrap();
    u.open(OwnedFd::from(sock)).unwrap();
    let e = u.recv_start(|_, _| {}).unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    assert_eq!(e.operation(), "uv_udp_recv_start");
    drop(copy);
    let got = Rc::new(std::cell::RefCell::new(Vec::new()));
    let g = got.clone();
    u.recv_start(move |u, r| {
        if let Ok(d) = r {
            if !d.data.is_empty() {
                g.borrow_mut().extend_from_slice(d.data);
                u.close();
            }
        }
    })
    .unwrap();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.send_to(b"dgram", addr).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*got.borrow(), b"dgram");

    // TCP: the same for a stream.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (conn, _) = l.accept().unwrap();
    conn.set_nonblocking(true).unwrap();
    let copy = conn.try_clone().unwrap();
    let t = Tcp::new(&lp).unwrap();
    t.open(OwnedFd::from(conn)).unwrap();
    assert_eq!(
        t.read_start(|_, _| {}).unwrap_err().code(),
        StatusCode::EINVAL
    );
    drop(copy);
    let read = uv_tests::read_to_end(&t);
    std::io::Write::write_all(&mut peer, b"stream").unwrap();
    drop(peer);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*read.borrow(), b"stream");
}

/// A socket with a copy the user kept, sent over an IPC pipe within the process:
/// the received handle does not read while the copy lasts either.
#[test]
fn a_received_socket_whose_copy_is_kept_does_not_read_until_the_copy_is_gone() {
    use std::os::fd::OwnedFd;

    let lp = Loop::new().unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (conn, _) = l.accept().unwrap();
    conn.set_nonblocking(true).unwrap();
    let copy = conn.try_clone().unwrap();
    let t = Tcp::new(&lp).unwrap();
    t.open(OwnedFd::from(conn)).unwrap();
    let (r, pa) = pass_over_ipc(&lp, &t);
    // The sender's handle holds a copy too: that one does not count.
    t.close();
    pa.close();
    assert_eq!(
        r.read_start(|_, _| {}).unwrap_err().code(),
        StatusCode::EINVAL
    );
    drop(copy);
    let read = uv_tests::read_to_end(&r);
    std::io::Write::write_all(&mut peer, b"passed on").unwrap();
    drop(peer);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*read.borrow(), b"passed on");
}

/// Sends `sent` over an IPC pipe pair of `lp` (made here) to this same process,
/// and returns the TCP handle that received it, with the sending end (the
/// receiving end is closed once it received).
fn pass_over_ipc(lp: &Loop, sent: &Tcp) -> (Tcp, uv::Pipe) {
    use std::os::fd::OwnedFd;

    let (a, b) = UnixStream::pair().unwrap();
    let (pa, pb) = (
        uv::Pipe::new(lp, true).unwrap(),
        uv::Pipe::new(lp, true).unwrap(),
    );
    pa.open(OwnedFd::from(a)).unwrap();
    pb.open(OwnedFd::from(b)).unwrap();
    pa.write2("s", sent, |_, r| r.unwrap()).unwrap();
    let received: Rc<std::cell::RefCell<Option<Tcp>>> = Rc::default();
    let r2 = received.clone();
    let lh = lp.handle();
    pb.read_start(move |p, d| {
        d.unwrap();
        if p.pending_count().unwrap() > 0 {
            let t = Tcp::new(&lh).unwrap();
            p.accept_into(&t).unwrap();
            *r2.borrow_mut() = Some(t);
            p.close();
        }
    })
    .unwrap();
    while received.borrow().is_none() {
        lp.run(RunMode::Once).unwrap();
    }
    let t = received.borrow_mut().take().unwrap();
    (t, pa)
}
