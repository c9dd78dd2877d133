//! Attacks on the latest additions: `uv::future::write_each` and the write tracker
//! a stream keeps until it closes, `AsyncStream::read_chunk`, the `Async` handle's
//! sender cells, and the refusals of pipes' socket paths, listening streams, signals
//! and spawn. Each test names the behaviour it asserts; `tests/valgrind.sh
//! attacks_recent` checks the memory side.

#![cfg(unix)]

use std::sync::Mutex;

use uv::future as uvf;
use uv::{Loop, RunMode, StatusCode, Stream as _, WriteData};

// The tests of this file run one at a time (descriptor numbers, process-wide
// spare memory of `Async` handles).
use uv_tests::serial;
use uv_tests::watchdog;

/// A pipe pair whose writer `a` has a write queued behind a full socket buffer (the
/// peer `b` does not read), so that the writes made after it wait in libuv's queue
/// and a close cancels them all. Returns the queued write's future.
fn stalled_pair(lp: &Loop) -> (uv::Pipe, uv::Pipe, uvf::WriteFuture) {
    let (a, b) = uv::Pipe::pair(lp).unwrap();
    let big = uvf::write(&a, vec![7u8; 4 << 20]);
    (a, b, big)
}

/// A write future whose write was cancelled resolves to `ECANCELED`, however many
/// writes of its stream failed after it. The tracker kept at most 1,024 errors and
/// dropped the oldest when more came: a close that cancelled more queued writes
/// than that made the first futures resolve `Ok(())` for writes that never went
/// out.
#[test]
fn a_cancelled_write_is_not_reported_done_behind_many_failed_writes() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let (a, b, big) = stalled_pair(&lp);
    let first = uvf::write(&a, &b"first"[..]);
    let many = uvf::write_each(&a, (0..3000).map(|_| WriteData::Static(b"more")));
    let last = uvf::write(&a, &b"last"[..]);
    a.close();
    b.close();
    let (big, first, many, last) = lp
        .block_on(async { (big.await, first.await, many.await, last.await) })
        .unwrap();
    assert_eq!(big.map_err(|e| e.code()), Err(StatusCode::ECANCELED));
    assert_eq!(first.map_err(|e| e.code()), Err(StatusCode::ECANCELED));
    assert_eq!(many.map_err(|e| e.code()), Err(StatusCode::ECANCELED));
    assert_eq!(last.map_err(|e| e.code()), Err(StatusCode::ECANCELED));
    lp.run(RunMode::Default).unwrap();
}

/// The same for batches: a batch whose writes were cancelled resolves to
/// `ECANCELED`, not to its count, when a later batch had more than 1,024 writes
/// cancelled too.
#[test]
fn a_cancelled_batch_is_not_reported_done_behind_a_larger_one() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let (a, b, big) = stalled_pair(&lp);
    let small = uvf::write_each(&a, (0..3).map(|_| WriteData::Static(b"small")));
    let large = uvf::write_each(&a, (0..5000).map(|_| WriteData::Static(b"large")));
    a.close();
    b.close();
    let (big, small, large) = lp
        .block_on(async { (big.await, small.await, large.await) })
        .unwrap();
    assert_eq!(big.map_err(|e| e.code()), Err(StatusCode::ECANCELED));
    assert_eq!(small.map_err(|e| e.code()), Err(StatusCode::ECANCELED));
    assert_eq!(large.map_err(|e| e.code()), Err(StatusCode::ECANCELED));
    lp.run(RunMode::Default).unwrap();
}

/// Futures of writes that succeeded and failed, taken in any order: each gets its
/// own write's result (the errors of a run of failed writes are kept together, and
/// taking one of the middle leaves the others).
#[test]
fn each_write_future_gets_its_own_result_taken_in_any_order() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let (a, b) = uv::Pipe::pair(&lp).unwrap();
    // Completed before the stall: these succeed.
    let ok: Vec<_> = (0..5).map(|_| uvf::write(&a, &b"ok"[..])).collect();
    let got = lp
        .block_on(async {
            let mut n = 0;
            for f in ok {
                f.await.unwrap();
                n += 1;
            }
            n
        })
        .unwrap();
    assert_eq!(got, 5);
    let big = uvf::write(&a, vec![7u8; 4 << 20]);
    let mut failed: Vec<_> = (0..50).map(|_| uvf::write(&a, &b"x"[..])).collect();
    let batch = uvf::write_each(&a, (0..20).map(|_| WriteData::Static(b"y")));
    a.close();
    b.close();
    // The middle one first, then the ends, then the rest backwards.
    let mid = failed.remove(25);
    let lastf = failed.pop().unwrap();
    let firstf = failed.remove(0);
    let codes = lp
        .block_on(async {
            let mut codes = vec![
                mid.await,
                lastf.await,
                firstf.await,
                batch.await.map(|_| ()),
            ];
            while let Some(f) = failed.pop() {
                codes.push(f.await);
            }
            codes.push(big.await);
            codes
        })
        .unwrap();
    assert_eq!(codes.len(), 52);
    for c in codes {
        assert_eq!(c.map_err(|e| e.code()), Err(StatusCode::ECANCELED));
    }
    lp.run(RunMode::Default).unwrap();
}

/// A path of `len` bytes in a fresh directory of the temporary one (which must
/// be shorter), and the directory.
fn socket_path_of_len(tag: &str, len: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("uv-rec-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.as_os_str().len() + 1;
    assert!(base < len);
    (dir.join("s".repeat(len - base)), dir)
}

/// A socket name that fills `sun_path` (108 bytes on Linux) has no NUL byte after
/// it: libuv's `uv_pipe_getsockname`/`uv_pipe_getpeername` take its length with
/// `strlen`, which reads past the address (a read of the stack beyond the
/// struct) and copies those bytes out as part of the name. `bind`, `connect`,
/// `bind2` and `connect2` refuse such a name (`EINVAL`), as they refuse a longer
/// one; a path one byte shorter is taken and reads back as itself.
#[test]
fn a_socket_path_that_fills_sun_path_is_einval() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let (full, dir) = socket_path_of_len("full", 108);
    assert_eq!(full.as_os_str().len(), 108);
    let server = uv::Pipe::new(&lp, false).unwrap();
    let r = server.bind(&full);
    let name = server.local_addr();
    server.close();
    lp.run(RunMode::Default).unwrap();
    let _ = std::fs::remove_file(&full);
    assert_eq!(
        r.map_err(|e| e.code()),
        Err(StatusCode::EINVAL),
        "bound, and named {name:?}"
    );
    let server = uv::Pipe::new(&lp, false).unwrap();
    let r = server.bind2(&full, uv::PipeFlags::NO_TRUNCATE);
    server.close();
    lp.run(RunMode::Default).unwrap();
    let _ = std::fs::remove_file(&full);
    assert_eq!(r.map_err(|e| e.code()), Err(StatusCode::EINVAL));
    // Longer, without NO_TRUNCATE: libuv would cut it to 108 bytes, no NUL.
    let (longer, _) = socket_path_of_len("full", 200);
    let server = uv::Pipe::new(&lp, false).unwrap();
    let r = server.bind2(&longer, uv::PipeFlags::empty());
    server.close();
    lp.run(RunMode::Default).unwrap();
    let cut_made = full.exists();
    let _ = std::fs::remove_file(&full);
    assert_eq!(r.map_err(|e| e.code()), Err(StatusCode::EINVAL));
    assert!(!cut_made);
    for two in [false, true] {
        let client = uv::Pipe::new(&lp, false).unwrap();
        let r = if two {
            client.connect2(&full, uv::PipeFlags::NO_TRUNCATE, |c, _| c.close())
        } else {
            client.connect(&full, |c, _| c.close())
        };
        if r.is_err() {
            client.close();
        }
        lp.run(RunMode::Default).unwrap();
        assert_eq!(r.map_err(|e| e.code()), Err(StatusCode::EINVAL));
    }
    // One byte shorter: bound, and its name reads back whole.
    let (short, _) = socket_path_of_len("full", 107);
    let server = uv::Pipe::new(&lp, false).unwrap();
    server.bind(&short).unwrap();
    let name = server.local_addr().unwrap();
    server.close();
    lp.run(RunMode::Default).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(std::path::Path::new(&name), short.as_path());
}

/// A socket whose name fills `sun_path` (bound by another program) read through
/// `local_addr` (a pipe opened on it) or `peer_addr` (a connection it made to this
/// program's server): libuv's `strlen` of the unterminated name reads past the
/// address. Both answer `ENAMETOOLONG` instead; a shorter name reads back whole.
#[test]
fn a_name_that_fills_sun_path_made_elsewhere_is_not_read_past() {
    use std::os::unix::ffi::OsStrExt as _;
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let (full, dir) = socket_path_of_len("peer", 108);
    let (server_path, _) = socket_path_of_len("peer", 60);
    let server = uv::Pipe::new(&lp, false).unwrap();
    server.bind(&server_path).unwrap();
    let accepted = std::rc::Rc::new(std::cell::RefCell::new(None));
    let acc = accepted.clone();
    server
        .listen(1, move |s, r| {
            r.unwrap();
            *acc.borrow_mut() = Some(s.accept().unwrap());
            s.close();
        })
        .unwrap();
    // The peer, bound to the full-length name, connects (a blocking connect to a
    // listening socket completes once queued).
    let peer = uv_tests::net::unix_socket_bound_raw(full.as_os_str().as_bytes());
    {
        let s = std::os::unix::net::UnixStream::from(peer);
        s.set_nonblocking(false).unwrap();
        let addr = std::os::unix::net::SocketAddr::from_pathname(&server_path).unwrap();
        // (std has no connect of an existing socket: libc's.)
        // SAFETY: an all-zero sockaddr_un is a valid value (plain integers).
        let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, b) in sa
            .sun_path
            .iter_mut()
            .zip(addr.as_pathname().unwrap().as_os_str().as_bytes())
        {
            *d = *b as libc::c_char;
        }
        use std::os::fd::AsRawFd as _;
        // SAFETY: a connect of the socket `s` owns, to a zero-terminated address.
        let rc = unsafe {
            libc::connect(
                s.as_raw_fd(),
                (&raw const sa).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        lp.run(RunMode::Default).unwrap();
        let conn = accepted.borrow_mut().take().expect("accepted");
        let name = conn.peer_addr();
        conn.close();
        // The peer's own end, opened as a pipe: its local name is the long one.
        let mine = uv::Pipe::try_from((&*lp, s)).unwrap();
        let local = mine.local_addr();
        mine.close();
        lp.run(RunMode::Default).unwrap();
        let show = |r: &uv::Result<std::path::PathBuf>| match r {
            Ok(p) => format!("Ok({} bytes)", p.as_os_str().len()),
            Err(e) => format!("{e:?}"),
        };
        let (pn, ln) = (show(&name), show(&local));
        assert_eq!(
            name.map_err(|e| e.code()),
            Err(StatusCode::ENAMETOOLONG),
            "peer_addr {pn}"
        );
        assert_eq!(
            local.map_err(|e| e.code()),
            Err(StatusCode::ENAMETOOLONG),
            "local_addr {ln}"
        );
    }
    // A shorter name made the same way reads back whole.
    let (short, _) = socket_path_of_len("peer", 107);
    let fd = uv_tests::net::unix_socket_bound_raw(short.as_os_str().as_bytes());
    let p = uv::Pipe::new(&lp, false).unwrap();
    p.open(fd).unwrap();
    assert_eq!(p.local_addr().unwrap(), short);
    p.close();
    lp.run(RunMode::Default).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A one-shot watch started on a handle with a signal caught and not yet delivered
/// is refused (`EBUSY`), whether or not the handle was one-shot: libuv stops a
/// handle after any delivery once it is marked one-shot (unix/signal.c,
/// uv__signal_event), and the delivery of the signal caught earlier (of another
/// signal: no callback) then undid the new watch and put its signal back to its
/// default action. The refusal tested only handles marked one-shot already, so a
/// handle watching SIGUSR1 for every delivery, with a SIGUSR1 caught, took
/// `start_oneshot(SIGUSR2)` and lost it at the next iteration.
#[test]
fn a_one_shot_watch_behind_a_caught_signal_is_refused() {
    use uv::Signum;
    let _serial = serial();
    let lp = Loop::new().unwrap();
    // A second loop watching the same signal tells when it was caught (the
    // handler writes to every watcher's loop at once).
    let lp2 = Loop::new().unwrap();
    let sig = uv::Signal::new(&lp).unwrap();
    let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let g = got.clone();
    sig.start(Signum::User1, move |_, n| g.borrow_mut().push(n))
        .unwrap();
    let witness = uv::Signal::new(&lp2).unwrap();
    let seen = std::rc::Rc::new(std::cell::Cell::new(false));
    let s = seen.clone();
    witness
        .start(Signum::User1, move |h, _| {
            s.set(true);
            h.close();
        })
        .unwrap();
    uv_tests::raise("USR1");
    while !seen.get() {
        lp2.run(RunMode::Once).unwrap();
    }
    lp2.run(RunMode::Default).unwrap();
    // SIGUSR1 caught for `sig`, not delivered yet.
    let r = sig.start_oneshot(Signum::User2, |_, _| {});
    lp.run(RunMode::NoWait).unwrap();
    let watching = sig.signum().unwrap();
    assert_eq!(
        r.map_err(|e| e.code()),
        Err(StatusCode::EBUSY),
        "then watching {watching:?}"
    );
    // The caught signal is delivered; then a one-shot watch starts and lasts.
    while got.borrow().is_empty() {
        lp.run(RunMode::Once).unwrap();
    }
    assert_eq!(*got.borrow(), vec![Signum::User1]);
    sig.start_oneshot(Signum::User2, |_, _| {}).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(sig.signum().unwrap(), Some(Signum::User2));
    sig.close();
    lp.run(RunMode::Default).unwrap();
}

/// `Stdio::Inherit` of a closed descriptor is `EBADF` even when an earlier slot is
/// inherited too: the copy of an inherited slot's descriptor (made so that the
/// number is kept during the call) took the lowest free number, which could be a
/// later slot's closed number; that slot, `Inherit` too, then found its number
/// open and gave the child the earlier slot's file under it instead of `EBADF`.
#[test]
fn inheriting_a_closed_descriptor_behind_an_inherited_one_is_ebadf() {
    use std::os::fd::AsRawFd as _;
    let _serial = serial();
    let lp = Loop::new().unwrap();
    // A first spawn makes whatever libuv makes once (the child watcher).
    let warm =
        uv::Process::spawn(&lp, &uv::ProcessOptions::new("true"), |p, _, _| p.close()).unwrap();
    drop(warm);
    lp.run(RunMode::Default).unwrap();
    // `open` on the lowest free number, and `closed` the next free one (no free
    // number below it: the copy of `open` would take it).
    let open = std::fs::File::open("/dev/null").unwrap();
    let closed = std::fs::File::open("/dev/null").unwrap().as_raw_fd();
    let (i, j) = (open.as_raw_fd(), closed);
    assert!(i >= 3 && j > i);
    let opts = uv::ProcessOptions::new("true")
        .stdio(usize::try_from(i).unwrap(), uv::Stdio::Inherit)
        .stdio(usize::try_from(j).unwrap(), uv::Stdio::Inherit);
    let r = uv::Process::spawn(&lp, &opts, |p, _, _| p.close());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(r.map(|_| ()).map_err(|e| e.code()), Err(StatusCode::EBADF));
    drop(open);
}

/// `read_chunk` with spare vectors of odd capacities and lengths (empty, one byte,
/// just under and over the size whose reads trade buffers, the loop buffer's size,
/// larger; holding stale bytes), reads dropped before they resolve, and the other
/// reads mixed in, while the writer sends writes of sizes from 1 byte to 200 KiB
/// and the reader now and then lets reads pile up (a timer turn): every byte comes
/// out once, in order.
#[test]
fn read_chunk_with_odd_spares_keeps_every_byte_in_order() {
    use futures::{AsyncBufReadExt as _, AsyncReadExt as _};
    use std::io::Write as _;
    let _serial = serial();
    let len = uv_tests::iterations(6 << 20);
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    let sent = data.clone();
    let (a, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let writer = std::thread::spawn(move || {
        let sizes = [
            1usize, 4095, 4096, 4097, 65535, 65536, 65537, 200_000, 3, 10,
        ];
        let (mut at, mut k) = (0, 0);
        while at < len {
            let n = sizes[k % sizes.len()].min(len - at);
            peer.write_all(&sent[at..at + n]).unwrap();
            at += n;
            k += 1;
        }
    });
    let lp = Loop::new().unwrap();
    let p = uv::Pipe::new(&lp, false).unwrap();
    p.open(a).unwrap();
    let lh = lp.handle();
    let got = lp
        .block_on(async move {
            let mut s = uvf::AsyncStream::new(p);
            let mut out = Vec::new();
            let spares = [0usize, 1, 4095, 4096, 65535, 65536, 65537, 1 << 20];
            for i in 0usize.. {
                if i % 5 == 0 {
                    // Let reads land behind the bytes not taken.
                    let _ = uvf::sleep(&lh, std::time::Duration::from_millis(0)).await;
                }
                match i % 6 {
                    0..=2 => {
                        let mut spare = Vec::with_capacity(spares[i % spares.len()]);
                        if i % 4 == 1 {
                            spare.extend_from_slice(b"stale");
                        }
                        let chunk = s.read_chunk(spare).await.unwrap();
                        if chunk.is_empty() {
                            break;
                        }
                        out.extend_from_slice(&chunk);
                    }
                    3 => {
                        // A read polled once and dropped takes nothing.
                        let waker = futures::task::noop_waker();
                        let mut cx = std::task::Context::from_waker(&waker);
                        let mut f = s.read_chunk(vec![9; 3]);
                        if let std::task::Poll::Ready(r) =
                            std::future::Future::poll(std::pin::Pin::new(&mut f), &mut cx)
                        {
                            let chunk = r.unwrap();
                            if chunk.is_empty() {
                                break;
                            }
                            out.extend_from_slice(&chunk);
                        }
                    }
                    4 => {
                        let mut buf = vec![0u8; 1 + i % 9000];
                        let n = s.read(&mut buf).await.unwrap();
                        if n == 0 {
                            break;
                        }
                        out.extend_from_slice(&buf[..n]);
                    }
                    _ => {
                        let buf = s.fill_buf().await.unwrap();
                        if buf.is_empty() {
                            break;
                        }
                        let n = buf.len().min(1 + i % 5000);
                        out.extend_from_slice(&buf[..n]);
                        s.consume_unpin(n);
                    }
                }
            }
            s.into_inner().close();
            out
        })
        .unwrap();
    writer.join().unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes out of order");
}

/// A `write_each` whose iterator makes writes of its own on the stream, runs the
/// loop (the batch's first writes complete meanwhile) and closes the stream: the
/// writes made go out in the order they were made, the iterator's own write keeps
/// its result, the batch stops at the refused item and resolves to its error, and
/// nothing is lost or run twice.
#[test]
fn write_each_survives_an_iterator_that_writes_runs_the_loop_and_closes() {
    use std::io::Read as _;
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let (x, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = uv::Pipe::new(&lp, false).unwrap();
    a.open(x).unwrap();
    let own = std::rc::Rc::new(std::cell::RefCell::new(None));
    let taken = std::rc::Rc::new(std::cell::Cell::new(0));
    let items = {
        let (a, own, taken, lr) = (a.clone(), own.clone(), taken.clone(), &lp);
        (0..8).map(move |k| {
            taken.set(k + 1);
            match k {
                2 => *own.borrow_mut() = Some(uvf::write(&a, &b"[own]"[..])),
                3 => {
                    lr.run(RunMode::NoWait).unwrap();
                }
                5 => a.close(),
                _ => {}
            }
            WriteData::One(format!("[{k}]").into_bytes())
        })
    };
    let batch = uvf::write_each(&a, items);
    // Item 5 was made (the close came with it), and refused: none after it.
    assert_eq!(taken.get(), 6);
    let own = own.borrow_mut().take().unwrap();
    let (batch, own) = lp.block_on(async { (batch.await, own.await) }).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(own.map_err(|e| e.code()), Ok(()));
    assert_eq!(batch.unwrap_err().kind(), uv::Category::ClosedHandle);
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"[0][1][own][2][3][4]");
}

/// A `write_each` whose iterator panics midway: the panic reaches the caller, the
/// writes already made go out and complete (the stream keeps their tracker), and
/// the stream takes more writes afterwards.
#[test]
fn write_each_with_a_panicking_iterator_keeps_the_writes_made() {
    use std::io::Read as _;
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let (x, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = uv::Pipe::new(&lp, false).unwrap();
    a.open(x).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        uvf::write_each(
            &a,
            (0..5).map(|k| {
                assert!(k < 3, "the iterator panics");
                WriteData::Static(b"ab")
            }),
        )
    }));
    assert!(r.is_err());
    let after = uvf::write_each(&a, [WriteData::Static(b"cd")]);
    let n = lp.block_on(after).unwrap().unwrap();
    assert_eq!(n, 1);
    a.close();
    lp.run(RunMode::Default).unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"abababcd");
}

/// Loops made and dropped on two threads at once (each with handles over several
/// chunks of the sender table, whose memory later loops of either thread take
/// over), while a third thread sends on every sender ever made: a sender whose
/// loop was dropped is refused every time (never wakes the handle that took its
/// cell over), and each handle is woken exactly by its own sends.
#[test]
fn senders_of_loops_dropped_on_other_threads_never_wake_later_handles() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let _serial = serial();
    type Pool = Arc<Mutex<Vec<(uv::AsyncSender, Arc<AtomicBool>)>>>;
    let pool: Pool = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let hammer = {
        let (pool, stop, refused) = (pool.clone(), stop.clone(), refused.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let senders: Vec<_> = pool.lock().unwrap().clone();
                for (s, dead) in &senders {
                    // Read first: a loop dropped before the send must refuse it.
                    let was_dead = dead.load(Ordering::SeqCst);
                    match s.send() {
                        Ok(()) => assert!(!was_dead, "a sender of a dropped loop was taken"),
                        Err(e) => {
                            assert_eq!(e.kind(), uv::Category::ClosedHandle);
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                std::thread::yield_now();
            }
        })
    };
    let makers: Vec<_> = (0..2)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for round in 0..uv_tests::iterations(30) {
                    // 33 to 132 handles: from one chunk to three.
                    let handles = 33 + (round * 37 + t * 50) % 100;
                    let lp = Loop::new().unwrap();
                    let dead = Arc::new(AtomicBool::new(false));
                    let counts: Vec<Arc<AtomicUsize>> =
                        (0..handles).map(|_| Arc::default()).collect();
                    let pairs: Vec<_> = counts
                        .iter()
                        .map(|n| {
                            let n = n.clone();
                            uv::Async::with_sender(&lp, move |_| {
                                n.fetch_add(1, Ordering::SeqCst);
                            })
                            .unwrap()
                        })
                        .collect();
                    {
                        let mut p = pool.lock().unwrap();
                        p.extend(pairs.iter().map(|(_, s)| (s.clone(), dead.clone())));
                    }
                    for (_, s) in &pairs {
                        s.send().unwrap();
                    }
                    // Other threads' senders may wake these handles too (they are
                    // live: the hammer sends on them): at least once each.
                    while counts.iter().any(|n| n.load(Ordering::SeqCst) == 0) {
                        lp.run(RunMode::Once).unwrap();
                    }
                    for (a, _) in &pairs {
                        a.close();
                    }
                    lp.run(RunMode::Default).unwrap();
                    drop(pairs);
                    drop(lp);
                    dead.store(true, Ordering::SeqCst);
                    // From here on no handle of this loop exists: sends on its
                    // senders are refused (the hammer checks them).
                    let mine: Vec<_> = pool
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(_, d)| Arc::ptr_eq(d, &dead))
                        .map(|(s, _)| s.clone())
                        .collect();
                    for s in &mine {
                        assert_eq!(s.send().unwrap_err().kind(), uv::Category::ClosedHandle);
                    }
                    // Keep the pool bounded: the oldest senders go.
                    let mut p = pool.lock().unwrap();
                    let len = p.len();
                    if len > 2000 {
                        p.drain(..len - 2000);
                    }
                }
            })
        })
        .collect();
    for m in makers {
        m.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    hammer.join().unwrap();
    for (s, dead) in pool.lock().unwrap().iter() {
        assert!(dead.load(Ordering::SeqCst));
        assert_eq!(s.send().unwrap_err().kind(), uv::Category::ClosedHandle);
    }
    assert!(refused.load(Ordering::Relaxed) > 0);
}

/// `recv_start` refuses a UDP socket in blocking mode, but the mode belongs to the
/// open file: a copy of the socket made before `open` (`UdpSocket::try_clone`)
/// could switch it to blocking mode after `recv_start`. libuv then read datagrams
/// until `EAGAIN` (unix/udp.c, uv__udp_recvmsg), and the read after the last
/// datagram waited for the next one with the loop's thread. `recv_start` is now
/// refused while such a copy lasts; once it is dropped nothing can switch the
/// mode, and receiving works.
#[test]
fn a_udp_socket_made_blocking_after_recv_start_does_not_hang_the_loop() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let copy = s.try_clone().unwrap();
    let u = uv::Udp::new(&lp).unwrap();
    u.open(s).unwrap();
    let got = std::rc::Rc::new(std::cell::Cell::new(0));
    let g = got.clone();
    let cb = move |_: &uv::Udp, d: uv::Result<uv::Datagram<'_>>| {
        let d = d.unwrap();
        if !d.is_drained() {
            g.set(g.get() + 1);
        }
    };
    let e = u.recv_start(cb.clone()).unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    // The copy's switch would have come here, after `recv_start`.
    copy.set_nonblocking(false).unwrap();
    copy.set_nonblocking(true).unwrap();
    drop(copy);
    // Receiving goes on after the datagram: libuv reads again at once.
    u.recv_start(cb).unwrap();
    let to = u.local_addr().unwrap();
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"hi", to)
        .unwrap();
    let done = watchdog("the loop waits in recvmsg on a blocking UDP socket", 20);
    while got.get() == 0 {
        lp.run(RunMode::Once).unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(got.get(), 1);
    u.close();
    lp.run(RunMode::Default).unwrap();
}

/// A hundred thousand write futures of one stream polled together by one task
/// (`FuturesUnordered`: a waker of its own for each) while the peer drains the
/// stream: all resolve `Ok` in a bounded time. The stream's tracker kept one list
/// of wakers, compared each new one with all kept (no two alike here) and woke
/// them all at every completion: quadratic work that grew past the watchdog (at
/// 40,000 futures, half a minute in a release build).
#[test]
fn many_write_futures_polled_together_complete_in_bounded_time() {
    use futures::StreamExt as _;
    let _serial = serial();
    let n = uv_tests::iterations(100_000);
    let lp = Loop::new().unwrap();
    let (a, b) = uv::Pipe::pair(&lp).unwrap();
    // Behind a large write, so that the small ones are all pending when polled.
    let big = uvf::write(&a, vec![7u8; 4 << 20]);
    let futs: futures::stream::FuturesUnordered<_> =
        (0..n).map(|_| uvf::write(&a, &b"x"[..])).collect();
    let done = watchdog("write futures polled together took too long", 60);
    let reading = b.clone();
    let (read, written) = lp
        .block_on(async move {
            let mut futs = futs;
            let reader = async {
                let mut s = uvf::AsyncStream::new(reading);
                let (mut buf, mut total) = (Vec::new(), 0);
                loop {
                    buf = s.read_chunk(buf).await.unwrap();
                    if buf.is_empty() {
                        break total;
                    }
                    total += buf.len();
                }
            };
            let writer = async {
                let mut k = 0;
                while let Some(r) = futs.next().await {
                    r.unwrap();
                    k += 1;
                }
                big.await.unwrap();
                a.close();
                k
            };
            futures::join!(reader, writer)
        })
        .unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(written, n);
    assert_eq!(read, (4 << 20) + n);
    b.close();
    lp.run(RunMode::Default).unwrap();
}

/// A hundred thousand write futures cancelled by a close and polled in a
/// scrambled order: each resolves `ECANCELED`, in a bounded time (taking a
/// write's error out of the middle of a run of failed writes splits it: a scan of
/// the runs per future made this quadratic).
#[test]
fn many_cancelled_write_futures_taken_in_any_order_resolve_in_bounded_time() {
    let _serial = serial();
    let n = uv_tests::iterations(100_000);
    let lp = Loop::new().unwrap();
    let (a, b) = uv::Pipe::pair(&lp).unwrap();
    let big = uvf::write(&a, vec![7u8; 4 << 20]);
    let mut futs: Vec<_> = (0..n).map(|_| uvf::write(&a, &b"x"[..])).collect();
    let mut x = 12345u64;
    for i in (1..futs.len()).rev() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        futs.swap(i, (x >> 33) as usize % (i + 1));
    }
    a.close();
    b.close();
    lp.run(RunMode::Default).unwrap();
    let done = watchdog(
        "cancelled write futures taken in a scrambled order took too long",
        60,
    );
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    for mut f in futs {
        match std::future::Future::poll(std::pin::Pin::new(&mut f), &mut cx) {
            std::task::Poll::Ready(r) => {
                assert_eq!(r.map_err(|e| e.code()), Err(StatusCode::ECANCELED))
            }
            std::task::Poll::Pending => panic!("a cancelled write is pending"),
        }
    }
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut big = big;
    let r = std::future::Future::poll(std::pin::Pin::new(&mut big), &mut cx);
    assert!(matches!(r, std::task::Poll::Ready(Err(ref e)) if e.code() == StatusCode::ECANCELED));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Empty items in a batch (every kind of empty data with a buffer) are writes like
/// any other: each completes, the batch counts them, and the bytes around them go
/// out in order. A `Many` with no buffer at all is refused by libuv (`EINVAL`):
/// the batch stops there (the items after it are not taken) and resolves to that
/// error once the writes before it completed.
#[test]
fn write_each_takes_empty_items() {
    use std::io::Read as _;
    let _serial = serial();
    let lp = Loop::new().unwrap();
    let (x, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = uv::Pipe::new(&lp, false).unwrap();
    a.open(x).unwrap();
    let items = vec![
        WriteData::Static(b"a"),
        WriteData::Many(vec![Vec::new(), Vec::new()]),
        WriteData::One(Vec::new()),
        WriteData::Static(b""),
        WriteData::Shared(std::rc::Rc::from(&b""[..])),
        WriteData::SharedSync(std::sync::Arc::from(&b""[..])),
        WriteData::from(&b""[..]),
        WriteData::Static(b"b"),
    ];
    let n = items.len();
    let batch = uvf::write_each(&a, items);
    let taken = std::cell::Cell::new(0);
    let stopped = uvf::write_each(
        &a,
        [
            WriteData::Static(b"c"),
            WriteData::Many(Vec::new()),
            WriteData::Static(b"never"),
        ]
        .into_iter()
        .inspect(|_| taken.set(taken.get() + 1)),
    );
    assert_eq!(taken.get(), 2);
    let (batch, stopped) = lp.block_on(async { (batch.await, stopped.await) }).unwrap();
    assert_eq!(batch.map_err(|e| e.code()), Ok(n));
    assert_eq!(stopped.map_err(|e| e.code()), Err(StatusCode::EINVAL));
    a.close();
    lp.run(RunMode::Default).unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"abc");
}
