//! Dropping futures and streams before they complete, one test per kind of
//! operation: what happens to the work (cancelled, completed and ignored, handle
//! closed or stopped), with the callback of every request run exactly once.

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::rc::Rc;
use std::time::Duration;

use futures::StreamExt;
use uv::future::{self as uvf, AsyncStream};
use uv::{Loop, RunMode, StatusCode, Stream};
use uv_tests::net::{pattern, tcp_pair, TempDir};

/// Runs the loop until nothing is left, then checks that no handle or request is.
fn drain(lp: &Loop) {
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn dropped_fs_requests_are_cancelled_or_complete_once() {
    let lp = Loop::new().unwrap();
    let dir = TempDir::new("async-cancel-fs");
    let results = Rc::new(RefCell::new(Vec::new()));
    // Every thread of the pool waits until the futures are dropped, so that no
    // stat has started by then.
    let gate = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let threads: usize = std::env::var("UV_THREADPOOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let blocked = Rc::new(std::cell::Cell::new(0));
    for _ in 0..threads {
        let (g, b) = (gate.clone(), blocked.clone());
        lp.queue_work(
            move || {
                let (m, c) = &*g;
                let mut open = m.lock().unwrap();
                while !*open {
                    open = c.wait(open).unwrap();
                }
            },
            move |r| {
                r.unwrap();
                b.set(b.get() + 1);
            },
        )
        .unwrap();
    }
    let mut futs = Vec::new();
    for _ in 0..256 {
        let r = results.clone();
        futs.push(uvf::request(|done: uvf::Done<uv::Stat>| {
            uv::Fs::stat(&lp, dir.path(), move |res| {
                r.borrow_mut()
                    .push(res.as_ref().map(|_| ()).map_err(|e| e.code()));
                done(res)
            })
        }));
    }
    assert!(futs
        .iter()
        .all(|f| f.request().is_some_and(|r| r.is_pending())));
    drop(futs); // cancels each (uv_cancel) that no thread has taken yet
    let (m, c) = &*gate;
    *m.lock().unwrap() = true;
    c.notify_all();
    lp.close().unwrap_err(); // requests are still in flight (EBUSY)
    lp.run(RunMode::Default).unwrap();
    assert_eq!(blocked.get(), threads);
    let results = results.borrow();
    assert_eq!(results.len(), 256, "every callback ran exactly once");
    let cancelled = results
        .iter()
        .filter(|r| **r == Err(StatusCode::ECANCELED))
        .count();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(cancelled + ok, 256, "{results:?}");
    // None had started: every one was cancelled.
    assert_eq!(cancelled, 256, "{results:?}");
    lp.close().unwrap();
}

#[test]
fn a_cancelled_request_future_that_was_polled_resolves_nothing_later() {
    let lp = Loop::new().unwrap();
    let dir = TempDir::new("async-cancel-fs2");
    // Polled once (registered a waker), then dropped by a timeout of zero.
    let lh = lp.handle();
    let r = lp
        .block_on(uvf::timeout(&lh, Duration::ZERO, async {
            uvf::sleep(&lh, Duration::from_millis(50)).await.unwrap();
            uv::Fs::stat_async(&lh, dir.path()).await
        }))
        .unwrap();
    assert_eq!(r.unwrap_err().code(), StatusCode::ETIMEDOUT);
    drain(&lp);
    lp.close().unwrap();
}

#[test]
fn dropped_dns_queries_are_cancelled_or_complete_once() {
    let lp = Loop::new().unwrap();
    let lh = lp.handle();
    let hints = uv::AddrInfoHints::default().with_flags(uv::AddrInfoFlags::NUMERICHOST);
    let results = Rc::new(RefCell::new(Vec::new()));
    let mut futs = Vec::new();
    for _ in 0..64 {
        let r = results.clone();
        futs.push(uvf::request(|done: uvf::Done<Vec<uv::AddrInfo>>| {
            lh.getaddrinfo_with(Some("127.0.0.1"), None, &hints, move |res| {
                r.borrow_mut()
                    .push(res.as_ref().map(|_| ()).map_err(|e| e.code()));
                done(res)
            })
        }));
    }
    drop(futs);
    lp.run(RunMode::Default).unwrap();
    let results = results.borrow();
    assert_eq!(results.len(), 64);
    assert!(results
        .iter()
        .all(|r| r.is_ok() || *r == Err(StatusCode::EAI_CANCELED)));
    lp.close().unwrap();
}

#[test]
fn a_dropped_write_still_reaches_the_peer() {
    let lp = Loop::new().unwrap();
    let (ours, mut theirs) = tcp_pair();
    let tcp = uv::Tcp::try_from((&*lp, ours)).unwrap();
    let data = pattern(300_000);
    // Made (submitted) and dropped at once: libuv keeps the bytes.
    drop(uvf::write(&tcp, data.clone()));
    drop(uvf::shutdown(&tcp));
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        got
    });
    lp.run(RunMode::Default).unwrap();
    drop(tcp);
    drain(&lp);
    let got = reader.join().unwrap();
    assert!(got == data, "all {} bytes, then EOF", data.len());
}

#[test]
fn a_dropped_connect_leaves_the_handle_to_close() {
    let lp = Loop::new().unwrap();
    let (listener, addr) = uv_tests::net::tcp_listener();
    let tcp = uv::Tcp::new(&lp).unwrap();
    drop(uvf::connect(&tcp, addr));
    // The attempt goes on: the handle connects; its result is ignored.
    lp.run(RunMode::Default).unwrap();
    assert!(tcp.peer_addr().is_ok());
    tcp.close();
    drain(&lp);
    drop(listener);

    // Closed while connecting: the ignored request completes with ECANCELED.
    let (listener, addr) = uv_tests::net::tcp_listener();
    let tcp = uv::Tcp::new(&lp).unwrap();
    let fut = uvf::connect(&tcp, addr);
    tcp.close();
    let r = lp.block_on(fut).unwrap();
    assert_eq!(r.unwrap_err().code(), StatusCode::ECANCELED);
    drain(&lp);
    drop(listener);
}

#[test]
fn dropped_timers_fire_nothing() {
    let lp = Loop::new().unwrap();
    let lh = lp.handle();
    drop(uvf::sleep(&lh, Duration::from_secs(60)));
    drop(uvf::interval(&lh, Duration::from_millis(1)).unwrap());
    drain(&lp); // returns at once: the timers are closed
                // Dropped after a first poll.
    lp.block_on(async {
        let mut s = uvf::sleep(&lh, Duration::from_secs(60));
        let pending = futures::poll!(&mut s);
        assert!(pending.is_pending());
    })
    .unwrap();
    drain(&lp);
}

#[test]
fn dropped_read_streams_stop_reading() {
    let lp = Loop::new().unwrap();
    let (a, b) = uv::Pipe::pair(&lp).unwrap();
    lp.block_on(async {
        let mut rd = uvf::read_chunks(b.clone());
        uvf::write(&a, "x").await.unwrap();
        assert_eq!(rd.next().await.unwrap().unwrap(), b"x");
        assert!(b.is_active(), "reading");
        drop(rd);
        assert!(!b.is_active(), "the drop stopped reading");

        // An AsyncStream dropped while a read waits.
        let mut s = AsyncStream::new(b.clone());
        let mut buf = [0u8; 4];
        {
            let mut read = futures::io::AsyncReadExt::read(&mut s, &mut buf);
            assert!(futures::poll!(&mut read).is_pending());
        }
        assert!(b.is_active());
        drop(s);
        assert!(!b.is_active());
    })
    .unwrap();
    drop((a, b));
    drain(&lp);
}

#[test]
fn dropped_event_streams_close_or_stop_their_handles() {
    let lp = Loop::new().unwrap();
    // incoming: the server is closed.
    let server = uv::Tcp::new(&lp).unwrap();
    server
        .bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    let inc = uvf::incoming(server.clone(), 8).unwrap();
    assert!(server.is_active());
    drop(inc);
    assert!(server.is_closing());
    // recv_from: receiving stops, the handle stays open.
    let udp = uv::Udp::new(&lp).unwrap();
    udp.bind("127.0.0.1:0".parse().unwrap(), uv::UdpFlags::empty())
        .unwrap();
    lp.block_on(async {
        let mut rx = uvf::recv_from(&udp);
        assert!(futures::poll!(rx.next()).is_pending());
        assert!(udp.is_active());
    })
    .unwrap();
    assert!(!udp.is_active());
    assert!(!udp.is_closing());
    udp.close();
    // signals, fs events, fs polls: their handles are closed.
    let sig = uvf::signals(&lp, uv::Signum::User2).unwrap();
    let dir = TempDir::new("async-cancel-ev");
    let ev = uvf::fs_events(&lp, dir.path(), uv::FsEventFlags::empty()).unwrap();
    let po = uvf::fs_poll(&lp, dir.path(), Duration::from_millis(10)).unwrap();
    assert_eq!(
        lp.handle_count(),
        5,
        "three watchers, the closing server and UDP handle"
    );
    drop((sig, ev, po));
    drop(server);
    drain(&lp);
}

#[test]
fn a_dropped_join_handle_detaches_the_task() {
    let lp = Loop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let lh = lp.handle();
    drop(
        lp.spawn_local(async move {
            uvf::sleep(&lh, Duration::from_millis(1)).await.unwrap();
            r.set(true);
        })
        .unwrap(),
    );
    drain(&lp);
    assert!(ran.get());
}

#[test]
fn a_dropped_exit_future_leaves_the_child_running() {
    let lp = Loop::new().unwrap();
    let (process, exit) =
        uvf::spawn(&lp, &uv::ProcessOptions::new("sh").args(["-c", "exit 3"])).unwrap();
    drop(exit);
    drop(process);
    // The child's handle stays open until it exited, then closes.
    drain(&lp);

    let (_p, exit) =
        uvf::spawn(&lp, &uv::ProcessOptions::new("sh").args(["-c", "exit 3"])).unwrap();
    assert_eq!(lp.block_on(exit).unwrap().unwrap(), (3, None));
}

#[test]
fn a_write_dropped_while_queued_is_not_reported_and_the_rest_go_on() {
    let lp = Loop::new().unwrap();
    let (a, b) = uv::Pipe::pair(&lp).unwrap();
    let got = lp
        .block_on(async {
            let w1 = uvf::write(&a, pattern(200_000));
            let w2 = uvf::write(&a, "tail");
            drop(w1); // still written, before w2
            let writer = async {
                w2.await.unwrap();
                uvf::shutdown(&a).await.unwrap();
            };
            let reader = async {
                let mut all = Vec::new();
                let mut rd = uvf::read_chunks(b.clone());
                while let Some(c) = rd.next().await {
                    all.extend(c.unwrap());
                }
                all
            };
            futures::join!(writer, reader).1
        })
        .unwrap();
    let mut want = pattern(200_000);
    want.extend_from_slice(b"tail");
    assert!(got == want);
    assert_eq!(a.write_queue_size(), 0);
}

/// A `queue_work` future dropped before a thread takes its work cancels it: the
/// work never runs. One that completes gives the work's value.
#[test]
fn a_dropped_queue_work_future_cancels_work_not_started() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    let lp = Loop::new().unwrap();
    let threads: usize = std::env::var("UV_THREADPOOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let blockers: Vec<_> = (0..threads)
        .map(|_| {
            let g = gate.clone();
            uvf::queue_work(&lp, move || {
                let (m, c) = &*g;
                let mut open = m.lock().unwrap();
                while !*open {
                    open = c.wait(open).unwrap();
                }
            })
        })
        .collect();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let dropped = uvf::queue_work(&lp, move || r.fetch_add(1, Ordering::SeqCst));
    drop(dropped);
    let kept = uvf::queue_work(&lp, || 6 * 7);
    let (m, c) = &*gate;
    *m.lock().unwrap() = true;
    c.notify_all();
    let answer = lp
        .block_on(async move {
            for b in blockers {
                b.await.unwrap();
            }
            kept.await
        })
        .unwrap()
        .unwrap();
    assert_eq!(answer, 42);
    drain(&lp);
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the cancelled work ran");
    lp.close().unwrap();
}
