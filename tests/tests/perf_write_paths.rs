//! The write paths' requests: static bytes (a request with no data of its own),
//! the other kinds of data, and the completion they share: every accepted write's
//! callback runs once with a status (also when the stream closes under it or
//! was dropped by its user), a panic in a callback reaches the loop and the
//! request is still freed, a refused write drops its callback at once, and the
//! errors name the operation (`uv_write`, `uv_shutdown`); the same through
//! `uv::future::write_each`.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use uv::Stream as _;

use uv::{Loop, RunMode, StatusCode, Tcp, WriteData};

const HELLO: &[u8] = b"Hello, world.";

/// A stream of `lp` open on one end of a loopback TCP connection, and the other
/// end (a blocking std socket) to read what it wrote.
fn open_stream(lp: &Loop) -> (Tcp, std::net::TcpStream) {
    let (mine, peer) = uv_tests::net::tcp_pair();
    let tcp = Tcp::new(lp).unwrap();
    tcp.open(mine).unwrap();
    (tcp, peer)
}

/// A loop whose panic hook collects the (`String`) payloads of panicking callbacks.
fn loop_with_caught_panics() -> (Loop, Rc<RefCell<Vec<String>>>) {
    let lp = Loop::new().unwrap();
    let caught = Rc::new(RefCell::new(Vec::new()));
    let c = caught.clone();
    lp.set_panic_hook(move |p| {
        c.borrow_mut()
            .push(p.downcast_ref::<String>().cloned().unwrap_or_default())
    });
    (lp, caught)
}

/// Write data `i` of a series that alternates static bytes and `shared`.
fn static_or_shared(i: usize, shared: &Rc<[u8]>) -> WriteData {
    if i.is_multiple_of(2) {
        WriteData::Static(HELLO)
    } else {
        WriteData::Shared(shared.clone())
    }
}

/// Reads exactly `n` bytes from `peer`.
fn read_n(peer: &mut std::net::TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    peer.read_exact(&mut buf).unwrap();
    buf
}

/// Static writes and the other kinds of data, interleaved, complete in the order
/// they were made, each callback once with `Ok`, and the peer gets the bytes in
/// that order; the kept data goes back once its write completed.
#[test]
fn static_and_kept_writes_complete_in_order() {
    let lp = Loop::new().unwrap();
    let (tcp, mut peer) = open_stream(&lp);
    let order = Rc::new(RefCell::new(Vec::new()));
    let shared: Rc<[u8]> = Rc::from(&b"<shared>"[..]);
    let mut expected = Vec::new();
    for i in 0..40 {
        let o = order.clone();
        let cb = move |_: &Tcp, r: uv::Result<()>| {
            r.unwrap();
            o.borrow_mut().push(i);
        };
        let data = match i % 4 {
            0 => WriteData::Static(HELLO),
            1 => WriteData::from(&b"inline"[..]),
            2 => WriteData::from(vec![b'v'; 100]),
            _ => WriteData::Shared(shared.clone()),
        };
        expected.extend_from_slice(match i % 4 {
            0 => HELLO,
            1 => b"inline",
            2 => &[b'v'; 100][..],
            _ => &shared[..],
        });
        tcp.write(data, cb).unwrap();
    }
    assert_eq!(Rc::strong_count(&shared), 11, "the requests keep the bytes");
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*order.borrow(), (0..40).collect::<Vec<_>>());
    assert_eq!(
        Rc::strong_count(&shared),
        1,
        "completed requests gave them back"
    );
    assert_eq!(read_n(&mut peer, expected.len()), expected);
    tcp.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    lp.close().unwrap();
}

/// A static write on a stream its user dropped still completes: the request
/// keeps the stream open (and hands it to the callback) until its callback ran;
/// then the stream, unreachable, closes.
#[test]
fn a_static_write_keeps_its_dropped_stream_until_it_completes() {
    let lp = Loop::new().unwrap();
    let (tcp, mut peer) = open_stream(&lp);
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    tcp.write(WriteData::Static(HELLO), move |c, r| {
        s.set(Some((r.map_err(|e| e.code()), c.is_closing())));
    })
    .unwrap();
    drop(tcp);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(seen.take(), Some((Ok(()), false)));
    assert_eq!(lp.handle_count(), 0, "the stream closed after its write");
    assert_eq!(read_n(&mut peer, HELLO.len()), HELLO);
    lp.close().unwrap();
}

/// Writes queued behind one the socket cannot take yet are cancelled when the
/// stream closes: each callback runs once with `ECANCELED` naming `uv_write`
/// (static bytes and kept data alike), and the kept data goes back.
#[test]
fn closing_cancels_queued_writes_with_their_operation() {
    let lp = Loop::new().unwrap();
    let (tcp, _peer) = open_stream(&lp);
    // More than the socket buffers take: the rest stays queued in libuv.
    let big = vec![7u8; 64 << 20];
    let shared: Rc<[u8]> = Rc::from(&b"later"[..]);
    let results = Rc::new(RefCell::new(Vec::new()));
    let r0 = results.clone();
    tcp.write(big, move |_, r| r0.borrow_mut().push((0, r)))
        .unwrap();
    for i in 1..=6 {
        let ri = results.clone();
        let data = if i % 2 == 1 {
            WriteData::Static(HELLO)
        } else {
            WriteData::Shared(shared.clone())
        };
        tcp.write(data, move |_, r| ri.borrow_mut().push((i, r)))
            .unwrap();
    }
    let counted = Rc::new(Cell::new(None));
    let c = counted.clone();
    tcp.write_counted(WriteData::Static(HELLO), move |_, r, n| {
        c.set(Some((r.map_err(|e| (e.code(), e.operation())), n)));
    })
    .unwrap();
    assert!(tcp.write_queue_size() > 0, "the big write is still queued");
    tcp.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    let results = results.take();
    assert_eq!(
        results.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (0..=6).collect::<Vec<_>>()
    );
    for (i, r) in &results {
        let e = r.as_ref().unwrap_err();
        assert_eq!(
            (e.code(), e.operation()),
            (StatusCode::ECANCELED, "uv_write"),
            "write {i}: {e:?}"
        );
    }
    assert_eq!(
        counted.take(),
        Some((Err((StatusCode::ECANCELED, "uv_write")), 0))
    );
    assert_eq!(Rc::strong_count(&shared), 1);
    assert_eq!(lp.handle_count(), 0);
    lp.close().unwrap();
}

/// A shutdown cancelled by the close names `uv_shutdown` (a request whose name
/// is kept in it).
#[test]
fn a_cancelled_shutdown_names_its_operation() {
    let lp = Loop::new().unwrap();
    let (tcp, _peer) = open_stream(&lp);
    tcp.write(vec![1u8; 64 << 20], |_, _| {}).unwrap();
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    tcp.shutdown(move |_, r| g.set(Some(r.map_err(|e| (e.code(), e.operation())))))
        .unwrap();
    tcp.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(
        got.take(),
        Some(Err((StatusCode::ECANCELED, "uv_shutdown")))
    );
    lp.close().unwrap();
}

/// A static write libuv refuses (a stream with no socket: `EBADF`) gives its
/// error at once, names `uv_write`, and drops its callback unrun.
#[test]
fn a_refused_static_write_drops_its_callback_at_once() {
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    let token = Rc::new(());
    let t = token.clone();
    let err = tcp
        .write(WriteData::Static(HELLO), move |_, _| {
            let _ = &t;
            panic!("no callback for a refused write");
        })
        .unwrap_err();
    assert_eq!(
        (err.code(), err.operation()),
        (StatusCode::EBADF, "uv_write")
    );
    assert_eq!(Rc::strong_count(&token), 1);
    tcp.close();
    let t = token.clone();
    let err = tcp
        .write(WriteData::Static(HELLO), move |_, _| {
            let _ = &t;
        })
        .unwrap_err();
    assert_eq!(err.kind(), uv::Category::ClosedHandle, "{err:?}");
    assert_eq!(Rc::strong_count(&token), 1);
    assert!(!lp.run(RunMode::Default).unwrap());
    lp.close().unwrap();
}

/// A panic in a static write's callback reaches `run`; the writes after it still
/// complete on the next run, and every request is freed (the stream, dropped by
/// its user, closes once they are done).
#[test]
fn a_panic_in_a_static_write_callback_reaches_run() {
    let lp = Loop::new().unwrap();
    let (tcp, mut peer) = open_stream(&lp);
    let after = Rc::new(Cell::new(0));
    tcp.write(WriteData::Static(HELLO), |_, r| {
        r.unwrap();
        panic!("static write boom");
    })
    .unwrap();
    for _ in 0..3 {
        let a = after.clone();
        tcp.write(WriteData::Static(HELLO), move |_, r| {
            r.unwrap();
            a.set(a.get() + 1);
        })
        .unwrap();
    }
    drop(tcp);
    let payload = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default)))
        .expect_err("run resumes the callback's panic");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"static write boom"));
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(after.get(), 3);
    assert_eq!(lp.handle_count(), 0);
    assert_eq!(read_n(&mut peer, 4 * HELLO.len()), HELLO.repeat(4));
    lp.close().unwrap();
}

/// With a panic hook, each panicking write callback's payload goes to the hook
/// and the loop runs on; kept data of the panicking writes goes back.
#[test]
fn panicking_write_callbacks_go_to_the_hook() {
    let (lp, caught) = loop_with_caught_panics();
    let (tcp, _peer) = open_stream(&lp);
    let shared: Rc<[u8]> = Rc::from(&b"kept"[..]);
    for i in 0..4 {
        let data = static_or_shared(i, &shared);
        tcp.write(data, move |_, _| panic!("boom {i}")).unwrap();
    }
    tcp.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*caught.borrow(), ["boom 0", "boom 1", "boom 2", "boom 3"]);
    assert_eq!(Rc::strong_count(&shared), 1);
    assert_eq!(lp.handle_count(), 0);
    lp.close().unwrap();
}

/// Writes accepted before the loop is dropped unrun still get their callbacks
/// (with a status) while the loop closes its handles.
#[test]
fn dropping_the_loop_completes_accepted_static_writes() {
    let calls = Rc::new(Cell::new(0));
    {
        let lp = Loop::new().unwrap();
        let (tcp, _peer) = open_stream(&lp);
        for _ in 0..5 {
            let c = calls.clone();
            tcp.write(WriteData::Static(HELLO), move |_, _| c.set(c.get() + 1))
                .unwrap();
        }
        drop(tcp);
        drop(lp);
    }
    assert_eq!(calls.get(), 5);
}

/// Async writes of static bytes and of kept data, made one after another,
/// resolve in order with `Ok` and the peer gets the bytes in that order; a write
/// on the closed stream resolves to `ClosedHandle` and the ones before it are not
/// disturbed.
#[test]
fn async_static_and_kept_writes_resolve_in_order() {
    use uv::future as uvf;
    let lp = Loop::new().unwrap();
    let (tcp, mut peer) = open_stream(&lp);
    let shared: Rc<[u8]> = Rc::from(&b"<rc>"[..]);
    let mut expected = Vec::new();
    let mut futures = Vec::new();
    for i in 0..12 {
        let f = match i % 3 {
            0 => {
                expected.extend_from_slice(HELLO);
                uvf::write(&tcp, WriteData::Static(HELLO))
            }
            1 => {
                expected.extend_from_slice(b"abc");
                uvf::write(&tcp, "abc")
            }
            _ => {
                expected.extend_from_slice(&shared);
                uvf::write(&tcp, WriteData::Shared(shared.clone()))
            }
        };
        futures.push(f);
    }
    let results = lp
        .block_on(async {
            let mut out = Vec::new();
            for f in futures {
                out.push(f.await.map_err(|e| e.code()));
            }
            out
        })
        .unwrap();
    assert_eq!(results, vec![Ok(()); 12]);
    assert_eq!(Rc::strong_count(&shared), 1);
    assert_eq!(read_n(&mut peer, expected.len()), expected);
    tcp.close();
    let late = uvf::write(&tcp, WriteData::Static(HELLO));
    let err = lp.block_on(late).unwrap().unwrap_err();
    assert_eq!(err.kind(), uv::Category::ClosedHandle, "{err:?}");
    assert!(!lp.run(RunMode::Default).unwrap());
    lp.close().unwrap();
}

/// Callbacks of cancelled writes (the failed-request path) that panic: each
/// payload goes to the hook after the callback saw `ECANCELED`, and every
/// request is freed (kept data back, the stream closed).
#[test]
fn panicking_callbacks_of_cancelled_writes_go_to_the_hook() {
    let (lp, caught) = loop_with_caught_panics();
    let (tcp, _peer) = open_stream(&lp);
    tcp.write(vec![3u8; 64 << 20], |_, _| {}).unwrap();
    let shared: Rc<[u8]> = Rc::from(&b"kept"[..]);
    for i in 0..4 {
        let data = static_or_shared(i, &shared);
        tcp.write(data, move |_, r| {
            panic!("cancelled {i}: {:?}", r.map_err(|e| e.code()))
        })
        .unwrap();
    }
    drop(tcp);
    lp.close_all_handles();
    assert!(!lp.run(RunMode::Default).unwrap());
    let want: Vec<String> = (0..4)
        .map(|i| format!("cancelled {i}: Err(ECANCELED)"))
        .collect();
    assert_eq!(*caught.borrow(), want);
    assert_eq!(Rc::strong_count(&shared), 1);
    assert_eq!(lp.handle_count(), 0);
    lp.close().unwrap();
}

/// The owner of a `bytes::Bytes` whose drop counts itself, then panics ("owner
/// drop boom").
struct PanickingOwner(Vec<u8>, std::sync::Arc<std::sync::atomic::AtomicU32>);

impl AsRef<[u8]> for PanickingOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for PanickingOwner {
    fn drop(&mut self) {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        panic!("owner drop boom");
    }
}

/// Data whose drop runs user code that panics (a `bytes::Bytes` owner): the
/// write's callback ran first, the panic reaches `run`, and the request is
/// still freed (the stream, dropped by its user, closes).
#[test]
fn a_panic_in_the_write_datas_drop_reaches_run() {
    let lp = Loop::new().unwrap();
    let (tcp, mut peer) = open_stream(&lp);
    let called = Rc::new(Cell::new(None));
    let c = called.clone();
    let data = bytes::Bytes::from_owner(PanickingOwner(b"owned".to_vec(), Default::default()));
    tcp.write(data, move |_, r| c.set(Some(r.map_err(|e| e.code()))))
        .unwrap();
    let after = Rc::new(Cell::new(0));
    let a = after.clone();
    tcp.write(WriteData::Static(HELLO), move |_, r| {
        r.unwrap();
        a.set(a.get() + 1);
    })
    .unwrap();
    drop(tcp);
    let payload = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default)))
        .expect_err("run resumes the drop's panic");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"owner drop boom"));
    assert_eq!(
        called.get(),
        Some(Ok(())),
        "the callback ran before the drop"
    );
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(after.get(), 1);
    assert_eq!(lp.handle_count(), 0);
    assert_eq!(read_n(&mut peer, 5 + HELLO.len()), b"ownedHello, world.");
    lp.close().unwrap();
}

/// The write's callback panics and so does its data's drop (a `bytes::Bytes`
/// owner): the process goes on (the data is dropped after the callback's panic
/// was caught, not while it unwinds), `run` resumes the callback's panic (the
/// first), the data's payload is dropped, and the request is freed.
#[test]
fn a_panicking_callback_and_a_panicking_data_drop_do_not_abort() {
    let lp = Loop::new().unwrap();
    let (tcp, mut peer) = open_stream(&lp);
    let drops = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let data = bytes::Bytes::from_owner(PanickingOwner(b"owned".to_vec(), drops.clone()));
    tcp.write(data, |_, r| {
        r.unwrap();
        panic!("write callback boom");
    })
    .unwrap();
    let after = Rc::new(Cell::new(0));
    let a = after.clone();
    tcp.write(WriteData::Static(HELLO), move |_, r| {
        r.unwrap();
        a.set(a.get() + 1);
    })
    .unwrap();
    drop(tcp);
    let payload = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default)))
        .expect_err("run resumes the callback's panic");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"write callback boom"));
    assert_eq!(
        drops.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the data was dropped once"
    );
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(after.get(), 1);
    assert_eq!(lp.handle_count(), 0);
    assert_eq!(read_n(&mut peer, 5 + HELLO.len()), b"ownedHello, world.");
    lp.close().unwrap();
}

/// `write_each`'s writes queued behind one the socket cannot take yet are
/// cancelled when the stream closes: the batch resolves to `ECANCELED` naming
/// `uv_write`, and the kept data goes back; a batch dropped before its writes
/// completed leaves them to complete (the peer gets every byte, the data goes
/// back).
#[test]
fn write_each_cancelled_by_a_close_and_dropped_early() {
    use uv::future as uvf;
    let lp = Loop::new().unwrap();
    let (tcp, _peer) = open_stream(&lp);
    let shared: Rc<[u8]> = Rc::from(&b"later"[..]);
    let batch = uvf::write_each(
        &tcp,
        (0..8).map(|i| match i {
            0 => WriteData::from(vec![7u8; 64 << 20]),
            _ => static_or_shared(i, &shared),
        }),
    );
    assert!(tcp.write_queue_size() > 0, "the big write is still queued");
    tcp.close();
    let e = lp.block_on(batch).unwrap().unwrap_err();
    assert_eq!(
        (e.code(), e.operation()),
        (StatusCode::ECANCELED, "uv_write")
    );
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(Rc::strong_count(&shared), 1);

    let (tcp, mut peer) = open_stream(&lp);
    let mut expected = Vec::new();
    for i in 0..10 {
        expected.extend_from_slice(if i % 2 == 0 { HELLO } else { &shared });
    }
    drop(uvf::write_each(
        &tcp,
        (0..10).map(|i| static_or_shared(i, &shared)),
    ));
    // The writes complete as the loop runs (nothing waits for them).
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(read_n(&mut peer, expected.len()), expected);
    assert_eq!(Rc::strong_count(&shared), 1);
    tcp.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    lp.close().unwrap();
}
