//! Attacks on lifetimes in the paths made faster most recently: the loop's read
//! buffer traded with `AsyncStream` (large reads take the buffer, the loop gets the
//! reader's old allocation), requests that take no slab count of their own,
//! `AsyncSender` cells (address, generation, offset), UDP receive trampolines made
//! per callback type, and stream callbacks that replace, close or panic from
//! inside. Each test asserts what safe code observes (bytes, counts, error codes,
//! order); `tests/valgrind.sh attacks_lifetimes` checks the memory side.
//!
//! The panics these tests provoke carry a `Provoked` payload, which the panic hook
//! installed here does not print.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::{AsyncReadExt as _, StreamExt as _};
use uv::future::{self as uvf, AsyncStream};
use uv::{
    Async, Fs, Loop, Pipe, PoolAllocator, RunMode, StatusCode, Stream as _, Tcp, Timer, Udp,
    UdpFlags,
};
use uv_tests::net::pipe_and_std;
use uv_tests::net::{pattern, run_until, tcp_listener, TempDir};
use uv_tests::provoke::{provoke, provoked, quiet_provoked_panics, run_collecting, PanicOnDrop};

/// `len` bytes of a pattern shifted by `salt`, so that bytes of two streams mixed up
/// show.
fn salted(len: usize, salt: u8) -> Vec<u8> {
    pattern(len).iter().map(|b| b ^ salt).collect()
}

/// Whether a one-shot timer started on `lp` fires: the loop still works.
fn a_timer_fires(lp: &Loop) -> bool {
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    Timer::once(lp, std::time::Duration::ZERO, move |_| f.set(true)).unwrap();
    lp.run(RunMode::Default).unwrap();
    fired.get()
}

// ---- 1. the loop's read buffer traded with AsyncStream ----

/// Sizes that put reads on both sides of the trade's threshold (4 KiB) and of the
/// loop buffer's default size (64 KiB).
const SIZES: [usize; 9] = [4096, 65_536, 4095, 1, 65_537, 200_000, 4097, 13, 131_072];

/// Writes `data` on `s` in pieces of `SIZES`, then shuts the write side down.
async fn write_in_pieces(s: &Pipe, data: &[u8]) {
    let mut at = 0;
    for size in SIZES.iter().cycle() {
        if at == data.len() {
            break;
        }
        let end = (at + size).min(data.len());
        uvf::write(s, data[at..end].to_vec()).await.unwrap();
        at = end;
    }
    uvf::shutdown(s).await.unwrap();
}

/// A UDP ping-pong of large datagrams on `lp`, started now: `rx` (with `RECVMMSG`
/// when `mmsg`: the loop's read buffer grows to hold a batch) gets `count`
/// datagrams of `len` bytes, one at a time (the next is sent from the receive
/// callback, so that none is dropped by a full socket buffer), checks each, and
/// closes both sockets after the last. Returns the number received.
fn udp_ping_pong(lp: &Loop, mmsg: bool, count: usize, len: usize) -> Rc<Cell<usize>> {
    let flags = if mmsg {
        UdpFlags::RECVMMSG
    } else {
        UdpFlags::empty()
    };
    let rx = Udp::with_flags(lp, uv::AddressFamily::Inet, flags).unwrap();
    rx.bind("127.0.0.1:0".parse().unwrap(), UdpFlags::empty())
        .unwrap();
    let to = rx.local_addr().unwrap();
    let tx = Udp::new(lp).unwrap();
    tx.bind("127.0.0.1:0".parse().unwrap(), UdpFlags::empty())
        .unwrap();
    let datagram = move |i: usize| salted(len, i as u8);
    let got = Rc::new(Cell::new(0usize));
    let g = got.clone();
    let tx2 = tx.clone();
    rx.recv_start(move |rx, d| {
        let d = d.unwrap();
        if d.is_drained() {
            return;
        }
        let i = g.get();
        assert!(d.data == datagram(i), "datagram {i} differs");
        g.set(i + 1);
        if i + 1 == count {
            rx.close();
            tx2.close();
        } else {
            tx2.send(datagram(i + 1), Some(to), |_, r| r.unwrap())
                .unwrap();
        }
    })
    .unwrap();
    tx.send(datagram(0), Some(to), |_, r| r.unwrap()).unwrap();
    got
}

/// Two `AsyncStream`s read large and small pieces at once on one loop, beside a
/// stream reading into an allocator's buffers and a `RECVMMSG` UDP socket that
/// grows the loop's read buffer (so that the streams are lent a buffer larger than
/// the default, and trade it). Every byte of each stream arrives, in order, and
/// every datagram is intact.
#[test]
fn async_streams_allocator_reads_and_udp_batches_share_the_loop_buffer() {
    for mmsg in [true, false] {
        let lp = Loop::new().unwrap();
        let (a1, b1) = Pipe::pair(&lp).unwrap();
        let (a2, b2) = Pipe::pair(&lp).unwrap();
        let (a3, b3) = Pipe::pair(&lp).unwrap();
        let d1 = salted(1 << 20, 0x11);
        let d2 = salted(700_000, 0x22);
        let d3 = salted(300_000, 0x33);
        // The allocator's stream (buffers of 8 KiB from a pool).
        let got3 = Rc::new(RefCell::new(Vec::new()));
        let g3 = got3.clone();
        b3.read_start_with(PoolAllocator::new(8192, 4), move |s, r| match r {
            Ok(bytes) => g3.borrow_mut().extend_from_slice(bytes),
            Err(e) => {
                assert_eq!(e.code(), StatusCode::EOF);
                s.close();
            }
        })
        .unwrap();
        let udp = udp_ping_pong(&lp, mmsg, 24, 60_000);
        let (w1, w2, w3) = (d1.clone(), d2.clone(), d3.clone());
        let (got1, got2) = lp
            .block_on(async move {
                let writers = async {
                    futures::join!(
                        write_in_pieces(&a1, &w1),
                        write_in_pieces(&a2, &w2),
                        write_in_pieces(&a3, &w3)
                    );
                };
                let r1 = async {
                    let mut s = AsyncStream::new(b1);
                    uv_tests::read_in_pieces(
                        &mut s,
                        &[65_536, 1, 4096, 100_000, 7, 65_535, 300_000],
                    )
                    .await
                };
                let r2 = async {
                    let mut s = AsyncStream::new(b2);
                    let mut got = Vec::new();
                    s.read_to_end(&mut got).await.unwrap();
                    got
                };
                let (_, g1, g2) = futures::join!(writers, r1, r2);
                (g1, g2)
            })
            .unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(got1.len(), d1.len());
        assert!(got1 == d1, "stream 1's bytes differ");
        assert_eq!(got2.len(), d2.len());
        assert!(got2 == d2, "stream 2's bytes differ");
        assert!(*got3.borrow() == d3, "the allocator stream's bytes differ");
        assert_eq!(udp.get(), 24);
        assert_eq!(lp.handle_count(), 0);
    }
}

/// Reads of exactly 4096 and 65536 bytes (the trade's threshold and the loop
/// buffer's size) and one byte either side, each written alone and read before
/// the next is written, through reads into buffers larger, equal and smaller than
/// what came. Every byte arrives in order.
#[test]
fn reads_of_exactly_the_thresholds_keep_every_byte() {
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let sizes = [4096usize, 65_536, 4095, 4097, 65_535, 65_537, 4096, 65_536];
    let total: usize = sizes.iter().sum();
    let data = salted(total, 0x5a);
    let expect = data.clone();
    let got = lp
        .block_on(async move {
            let mut s = AsyncStream::new(p);
            let mut got = Vec::new();
            let mut at = 0;
            for (i, &size) in sizes.iter().enumerate() {
                peer.write_all(&data[at..at + size]).unwrap();
                at += size;
                // Read exactly `size` bytes, through buffers of several sizes.
                let room = match i % 3 {
                    0 => size + 1000,
                    1 => size,
                    _ => 100,
                };
                let mut left = size;
                while left > 0 {
                    let mut buf = vec![0u8; room.min(left).max(1)];
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0 && n <= left);
                    got.extend_from_slice(&buf[..n]);
                    left -= n;
                }
            }
            drop(peer);
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
            got
        })
        .unwrap();
    assert_eq!(got.len(), expect.len());
    assert!(got == expect, "bytes differ");
}

/// `into_inner` after reads that traded buffers, then `read_start` on the raw
/// stream: the raw callback gets exactly the bytes written after, and the loop's
/// buffer (the wrapper's old allocation) serves it.
#[test]
fn into_inner_after_traded_reads_then_raw_reads_get_the_rest() {
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let first = salted(200_000, 1);
    let second = salted(300_000, 2);
    let f = first.clone();
    let (raw, mut peer) = lp
        .block_on(async move {
            let mut s = AsyncStream::new(p);
            peer.write_all(&f).unwrap();
            let mut got = vec![0u8; f.len()];
            s.read_exact(&mut got).await.unwrap();
            assert!(got == f);
            (s.into_inner(), peer)
        })
        .unwrap();
    // The wrapper's read callback is still in the slot (reading stopped): replaced.
    let got = uv_tests::read_to_end(&raw);
    let s2 = second.clone();
    let writer = std::thread::spawn(move || {
        peer.write_all(&s2).unwrap();
    });
    // The std end is dropped once the writer is done (EOF, and the reader closes).
    lp.run(RunMode::Default).unwrap();
    writer.join().unwrap();
    assert_eq!(got.borrow().len(), second.len());
    assert!(*got.borrow() == second);
    assert_eq!(lp.handle_count(), 0);
}

/// An `AsyncStream` dropped while its read is pending and after a large read was
/// traded into its buffer (bytes not taken), with the loop still running other
/// large reads: no byte of the other stream is lost or changed, and nothing
/// leaks. Also with the wrapper outliving the loop.
#[test]
fn async_stream_dropped_mid_read_and_after_the_loop() {
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let (q, mut peer_q) = pipe_and_std(&lp, false);
    let other = salted(400_000, 0x77);
    let o = other.clone();
    let kept = lp
        .block_on(async move {
            // A pending read, dropped.
            let mut s = AsyncStream::new(p);
            {
                let mut buf = [0u8; 10];
                let mut fut = s.read(&mut buf);
                assert!(futures::poll!(&mut fut).is_pending());
            }
            // A large read lands in its buffer (traded), not taken.
            peer.write_all(&salted(100_000, 3)).unwrap();
            let mut one = [0u8; 1];
            s.read_exact(&mut one).await.unwrap();
            assert_eq!(one[0], salted(1, 3)[0]);
            drop(s);
            drop(peer);
            // The other stream: every byte, read through another wrapper.
            let mut t = AsyncStream::new(q);
            let writer = std::thread::spawn(move || {
                peer_q.write_all(&o).unwrap();
            });
            let mut got = vec![0u8; 400_000];
            t.read_exact(&mut got).await.unwrap();
            writer.join().unwrap();
            // A wrapper with bytes buffered, kept past the loop.
            (got, t)
        })
        .unwrap();
    let (got, t) = kept;
    assert!(got == other);
    drop(lp);
    assert_eq!(
        t.get_ref().fileno().unwrap_err().kind(),
        uv::Category::ClosedHandle
    );
    drop(t);
}

/// A raw read callback that closes its own stream on its first chunk, and closes
/// the stream under a waiting `AsyncStream` (a clone of it): the wrapper's read ends
/// with an error instead of waiting forever; a third stream on the loop reading large
/// chunks into a wrapper gets every byte.
#[test]
fn closing_streams_from_a_read_callback_beside_traded_reads() {
    let lp = Loop::new().unwrap();
    let (x, mut peer_x) = pipe_and_std(&lp, false);
    let (y, _peer_y) = pipe_and_std(&lp, false);
    let (z, mut peer_z) = pipe_and_std(&lp, false);
    let y_clone = y.clone();
    let chunks = Rc::new(Cell::new(0));
    let c = chunks.clone();
    x.read_start(move |x, r| {
        assert!(r.unwrap().len() >= 4096);
        c.set(c.get() + 1);
        x.close();
        y_clone.close();
    })
    .unwrap();
    let data = salted(500_000, 0x44);
    let d = data.clone();
    let (y_result, got) = lp
        .block_on(async move {
            let mut ys = AsyncStream::new(y);
            let mut zs = AsyncStream::new(z);
            let writer = std::thread::spawn(move || {
                peer_z.write_all(&d).unwrap();
                peer_x.write_all(&[9u8; 70_000]).unwrap();
            });
            let y_read = async {
                let mut buf = [0u8; 100];
                ys.read(&mut buf).await
            };
            let z_read = async {
                let mut got = vec![0u8; 500_000];
                zs.read_exact(&mut got).await.unwrap();
                got
            };
            let (yr, got) = futures::join!(y_read, z_read);
            writer.join().unwrap();
            let yr = yr.map_err(|e| {
                e.into_inner()
                    .and_then(|e| e.downcast::<uv::Error>().ok())
                    .map(|e| e.kind())
            });
            (yr.map_err(|k| k.expect("a uv error")), got)
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        chunks.get(),
        1,
        "closed in its first callback: no second one"
    );
    let e = y_result.unwrap_err();
    assert_eq!(
        e,
        uv::Category::ClosedHandle,
        "the closed stream's read fails"
    );
    assert!(got == data);
}

/// `read_chunks` (which copies: its chunks leave) and an `AsyncStream` (which
/// trades) on one loop, both with large reads: the chunks put together and the
/// wrapper's bytes are exact.
#[test]
fn read_chunks_beside_a_trading_wrapper_keep_every_byte() {
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let (c, d) = Pipe::pair(&lp).unwrap();
    let d1 = salted(900_000, 0x10);
    let d2 = salted(900_000, 0x20);
    let (w1, w2) = (d1.clone(), d2.clone());
    let (g1, g2, sizes) = lp
        .block_on(async move {
            let writers = async {
                futures::join!(write_in_pieces(&a, &w1), write_in_pieces(&c, &w2));
            };
            let chunks = async {
                let mut rc = uvf::read_chunks(b);
                let mut got = Vec::new();
                let mut sizes = Vec::new();
                while let Some(chunk) = rc.next().await {
                    let chunk = chunk.unwrap();
                    assert!(!chunk.is_empty());
                    sizes.push(chunk.len());
                    got.extend_from_slice(&chunk);
                }
                (got, sizes)
            };
            let wrapper = async {
                let mut s = AsyncStream::new(d);
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.unwrap();
                got
            };
            let (_, (g1, sizes), g2) = futures::join!(writers, chunks, wrapper);
            (g1, g2, sizes)
        })
        .unwrap();
    assert!(g1 == d1, "the chunks differ");
    assert!(g2 == d2, "the wrapper's bytes differ");
    assert!(!sizes.is_empty());
}

/// A user's `read_stop` on a clone of the stream under a waiting `AsyncStream`:
/// the stop drops the wrapper's read callback, which wakes the waiting task; its
/// next poll starts reading again and gets the bytes (it used to wait for ever:
/// the callback stayed in its slot, so the wrapper still thought it was reading).
#[test]
fn read_stop_on_a_clone_under_a_waiting_wrapper() {
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let clone = p.clone();
    let task = lp
        .spawn_local(async move {
            let mut s = AsyncStream::new(p);
            let mut buf = [0u8; 16];
            let n = s.read(&mut buf).await.unwrap();
            buf[..n].to_vec()
        })
        .unwrap();
    // The task starts reading.
    lp.run(RunMode::NoWait).unwrap();
    clone.read_stop().unwrap();
    peer.write_all(b"hello").unwrap();
    // The loop runs out of work (nothing reads): the task must not be left waiting
    // for a read that cannot come.
    lp.run(RunMode::Default).unwrap();
    assert!(
        task.is_finished(),
        "the wrapper waits for a read nobody does"
    );
}

// ---- 2. requests without a slab count of their own ----

/// `Request`s of every loop request kind (fs, work, DNS both ways, random) kept,
/// and cloned, past their completion and past the loop's drop: each says it is not
/// pending, `cancel` answers `EINVAL`, and the last clone frees the block after the
/// loop is gone (valgrind: no leak, no use after free). Each callback ran once.
#[test]
fn requests_kept_past_completion_and_past_the_loop() {
    let _pool = uv_tests::pool::pool_lock();
    let dir = TempDir::new("lt-req");
    let file = dir.join("f");
    std::fs::write(&file, b"abc").unwrap();
    let lp = Loop::new().unwrap();
    let calls = Rc::new(Cell::new(0usize));
    let mut kept = Vec::new();
    for round in 0..3 {
        let c = calls.clone();
        kept.push(
            Fs::stat(&lp, &file, move |r| {
                assert_eq!(r.unwrap().size, 3);
                c.set(c.get() + 1);
            })
            .unwrap(),
        );
        let c = calls.clone();
        kept.push(
            lp.queue_work(
                move || round * 2,
                move |r| {
                    assert_eq!(r.unwrap(), round * 2);
                    c.set(c.get() + 1);
                },
            )
            .unwrap(),
        );
        let c = calls.clone();
        kept.push(
            lp.getnameinfo_with(
                "127.0.0.1:80".parse().unwrap(),
                uv::NameInfoFlags::NUMERICHOST | uv::NameInfoFlags::NUMERICSERV,
                move |r| {
                    assert_eq!(r.unwrap().service, "80");
                    c.set(c.get() + 1);
                },
            )
            .unwrap(),
        );
        let c = calls.clone();
        kept.push(
            lp.getaddrinfo_with(
                Some("127.0.0.1"),
                Some("80"),
                &uv::AddrInfoHints::default(),
                move |r| {
                    assert!(!r.unwrap().is_empty());
                    c.set(c.get() + 1);
                },
            )
            .unwrap(),
        );
        let c = calls.clone();
        kept.push(
            lp.random(vec![0; 16], 0, move |r| {
                assert_eq!(r.unwrap().len(), 16);
                c.set(c.get() + 1);
            })
            .unwrap(),
        );
    }
    // Clones, some dropped before the completion, some after.
    let clones: Vec<uv::Request> = kept.to_vec();
    assert!(kept.iter().all(|r| r.is_pending()));
    drop(kept.split_off(10));
    lp.run(RunMode::Default).unwrap();
    assert_eq!(calls.get(), 15);
    for r in kept.iter().chain(&clones) {
        assert!(!r.is_pending());
        assert_eq!(r.cancel().unwrap_err().code(), StatusCode::EINVAL);
    }
    drop(kept);
    drop(lp);
    // The last values go after the loop (and its slab's own count).
    for r in &clones {
        assert!(!r.is_pending());
        assert_eq!(r.cancel().unwrap_err().code(), StatusCode::EINVAL);
    }
    drop(clones);
}

/// A `Request` dropped, and cancelled, inside its own callback (the callback holds
/// the only values): `cancel` answers `EINVAL` there (the completion started), and
/// the block is freed once, after the callback.
#[test]
fn a_request_dropped_and_cancelled_inside_its_own_callback() {
    let _pool = uv_tests::pool::pool_lock();
    let lp = Loop::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    for kind in 0..3 {
        let slot: Rc<RefCell<Option<uv::Request>>> = Rc::default();
        let (s, l) = (slot.clone(), log.clone());
        let cb = move || {
            let req = s.borrow_mut().take().expect("the request was stored");
            assert!(!req.is_pending());
            l.borrow_mut()
                .push((kind, req.cancel().map_err(|e| e.code())));
            let twin = req.clone();
            drop(req);
            drop(twin);
        };
        let req = match kind {
            0 => lp.queue_work(
                || (),
                move |r| {
                    r.unwrap();
                    cb()
                },
            ),
            1 => lp.random(vec![0; 4], 0, move |r| {
                r.unwrap();
                cb()
            }),
            _ => Fs::stat(&lp, "/", move |r| {
                r.unwrap();
                cb()
            }),
        }
        .unwrap();
        *slot.borrow_mut() = Some(req);
    }
    lp.run(RunMode::Default).unwrap();
    let mut log = log.borrow().clone();
    log.sort_by_key(|e| e.0);
    assert_eq!(
        log,
        [
            (0, Err(StatusCode::EINVAL)),
            (1, Err(StatusCode::EINVAL)),
            (2, Err(StatusCode::EINVAL))
        ]
    );
}

/// A loop dropped with one request of every kind in flight (loop requests: fs,
/// work, DNS, random; handle requests: stream write and shutdown, TCP connect, UDP
/// send), some of whose callbacks hold the only reference to their handle, and
/// some `Request`s kept past the drop: every callback runs exactly once, during
/// the drop; the kept ones say they are done.
#[test]
fn a_loop_dropped_with_every_kind_of_request_in_flight() {
    let _pool = uv_tests::pool::pool_lock();
    let lp = Loop::new().unwrap();
    let ran: Rc<RefCell<Vec<&'static str>>> = Rc::default();
    let mark = |name: &'static str| {
        let r = ran.clone();
        move || r.borrow_mut().push(name)
    };
    let mut kept = Vec::new();
    let m = mark("stat");
    kept.push(Fs::stat(&lp, "/", move |_| m()).unwrap());
    let m = mark("work");
    kept.push(lp.queue_work(|| 1, move |_| m()).unwrap());
    let m = mark("random");
    kept.push(lp.random(vec![0; 8], 0, move |_| m()).unwrap());
    let m = mark("getaddrinfo");
    kept.push(
        lp.getaddrinfo_with(
            Some("127.0.0.1"),
            None,
            &uv::AddrInfoHints::default(),
            move |_| m(),
        )
        .unwrap(),
    );
    let m = mark("getnameinfo");
    kept.push(
        lp.getnameinfo_with(
            "127.0.0.1:1".parse().unwrap(),
            uv::NameInfoFlags::NUMERICHOST,
            move |_| m(),
        )
        .unwrap(),
    );
    // Handle requests; the handles' only references are in their callbacks.
    let (a, _b) = Pipe::pair(&lp).unwrap();
    let m = mark("write");
    let a2 = a.clone();
    a.write(vec![7u8; 1 << 20], move |_, _| {
        drop(a2);
        m()
    })
    .unwrap();
    let m = mark("shutdown");
    a.shutdown(move |_, _| m()).unwrap();
    drop(a);
    let (_l, addr) = tcp_listener();
    let c = Tcp::new(&lp).unwrap();
    let m = mark("connect");
    let c2 = c.clone();
    c.connect(addr, move |_, _| {
        drop(c2);
        m()
    })
    .unwrap();
    drop(c);
    let u = Udp::new(&lp).unwrap();
    let m = mark("udp send");
    let sa = uv::SockAddr::new("127.0.0.1:9".parse().unwrap());
    u.send(vec![1u8; 100], &sa, move |_, _| m()).unwrap();
    drop(u);
    drop(lp);
    let mut ran = ran.borrow().clone();
    ran.sort();
    assert_eq!(
        ran,
        [
            "connect",
            "getaddrinfo",
            "getnameinfo",
            "random",
            "shutdown",
            "stat",
            "udp send",
            "work",
            "write"
        ]
    );
    for r in &kept {
        assert!(!r.is_pending());
        assert_eq!(r.cancel().unwrap_err().code(), StatusCode::EINVAL);
    }
}

/// Request callbacks that panic (loop requests and handle requests, some holding
/// their handle's last reference): each panic is resumed by `run`, every other
/// callback still runs, kept `Request`s say done, and the loop stays usable.
#[test]
fn panicking_request_callbacks_leave_the_loop_usable() {
    let _pool = uv_tests::pool::pool_lock();
    let lp = Loop::new().unwrap();
    let ok = Rc::new(Cell::new(0usize));
    let o = ok.clone();
    // Every panicking callback counts itself first: a run resumes the first panic
    // of its iteration only (later ones are dropped, as documented).
    let entered = Rc::new(Cell::new(0usize));
    let boom = |name: &'static str| {
        let e = entered.clone();
        move || -> ! {
            e.set(e.get() + 1);
            provoke(name)
        }
    };
    let (b1, b2, b3, b4) = (boom("stat"), boom("work"), boom("write"), boom("udp"));
    let stat = Fs::stat(&lp, "/", move |_| b1()).unwrap();
    let work = lp.queue_work(|| 1, move |_| b2()).unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let got = uv_tests::read_to_end(&b);
    let a2 = a.clone();
    a.write(b"first".to_vec(), move |_, r| {
        r.unwrap();
        drop(a2);
        b3()
    })
    .unwrap();
    a.write(b"second", move |a, r| {
        r.unwrap();
        o.set(o.get() + 1);
        uv_tests::shutdown_and_close(a);
    })
    .unwrap();
    drop(a);
    let u = Udp::new(&lp).unwrap();
    let u2 = u.clone();
    u.send(b"x", Some("127.0.0.1:9".parse().unwrap()), move |u, _| {
        u.close();
        drop(u2);
        b4()
    })
    .unwrap();
    drop(u);
    let panics = run_collecting(&lp);
    assert!(!panics.is_empty());
    assert!(panics
        .iter()
        .all(|p| ["stat", "udp", "work", "write"].contains(p)));
    assert_eq!(entered.get(), 4, "every panicking callback ran");
    assert_eq!(ok.get(), 1);
    assert_eq!(&got.borrow()[..], b"firstsecond");
    assert!(!stat.is_pending() && !work.is_pending());
    assert!(a_timer_fires(&lp));
    assert_eq!(lp.handle_count(), 0);
}

// ---- the executor between reads ----

/// `block_on`'s future that yields (`uvf::yield_now`) while it waits for a flag a
/// loop callback sets (a zero timer; any I/O callback alike): the loop iterates
/// between its polls. Bounded at 10,000 yields, so that a failure shows as a
/// count instead of a hang.
///
/// Used to happen: a CPU spin with no callback ever run (the timer did not fire
/// in 10,000 yields). The future's own wake (`wake_by_ref` during its poll, as
/// `yield_now` does) went to `Local::schedule_key(MAIN)`, which called `uv_stop`
/// although `uv_run` was not on the stack; `block_on` then called `run(Once)`, and
/// libuv's `uv_run` returns at once when the stop flag is set on entry (clearing
/// it), without an iteration.
#[test]
fn block_on_future_that_yields_lets_the_loop_iterate() {
    let lp = Loop::new().unwrap();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    Timer::once(&lp, std::time::Duration::ZERO, move |_| f.set(true)).unwrap();
    let yields = lp
        .block_on(async {
            let mut n = 0;
            while !fired.get() && n < 10_000 {
                uvf::yield_now().await;
                n += 1;
            }
            n
        })
        .unwrap();
    assert!(fired.get(), "the timer never ran in {yields} yields");
}

/// The same wait in a spawned task (its wakes go through the ready queue): the
/// loop iterates, the read callback's bytes arrive, and the task ends.
#[test]
fn a_spawned_task_that_yields_lets_reads_arrive() {
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let got = uv_tests::read_to_end(&p);
    let g = got.clone();
    peer.write_all(&salted(100_000, 9)).unwrap();
    drop(peer);
    let task = lp
        .spawn_local(async move {
            let mut n = 0u64;
            while g.borrow().len() < 100_000 {
                uvf::yield_now().await;
                n += 1;
            }
            n
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(task.is_finished());
    assert!(*got.borrow() == salted(100_000, 9));
}

// ---- 3. AsyncSender cells ----

/// Cycles of an `Async` made, woken and closed, its cell reused by the next: every
/// sender kept from an earlier cycle (a stale generation of the same cell, or of
/// another) is refused with `ClosedHandle` and wakes nothing; the current sender
/// (and its clone, sending from another thread) wakes only its own handle.
#[test]
fn stale_senders_of_reused_cells_are_refused_and_wake_nothing() {
    let lp = Loop::new().unwrap();
    let woken: Rc<RefCell<Vec<usize>>> = Rc::default();
    let mut stale: Vec<uv::AsyncSender> = Vec::new();
    let cycles = uv_tests::iterations(300);
    for cycle in 0..cycles {
        let w = woken.clone();
        let a = Async::new(&lp, move |_| w.borrow_mut().push(cycle)).unwrap();
        let s = a.sender().unwrap();
        for st in &stale {
            assert_eq!(st.send().unwrap_err().kind(), uv::Category::ClosedHandle);
        }
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(woken.borrow().len(), cycle, "a stale send woke a handle");
        s.send().unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(woken.borrow().last(), Some(&cycle));
        assert_eq!(woken.borrow().len(), cycle + 1);
        let s2 = s.clone();
        std::thread::spawn(move || {
            s2.send().unwrap();
            drop(s2.clone());
        })
        .join()
        .unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(woken.borrow().len(), cycle + 2);
        woken.borrow_mut().pop();
        a.close();
        drop(a);
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(s.send().unwrap_err().kind(), uv::Category::ClosedHandle);
        stale.push(s);
    }
    assert_eq!(*woken.borrow(), (0..cycles).collect::<Vec<_>>());
    drop(lp);
    for st in &stale {
        assert_eq!(st.send().unwrap_err().kind(), uv::Category::ClosedHandle);
    }
}

/// Many `Async`s alive at once (cells in several chunks), their senders made later
/// and out of order (the search for a cell's offset, not the last cell made):
/// each sender wakes its own handle only. Then half are closed and new ones take
/// their cells: the old senders are refused, the new ones wake the new handles.
#[test]
fn senders_of_many_cells_made_out_of_order_wake_their_own_handle() {
    let lp = Loop::new().unwrap();
    let n = 200;
    let counts: Rc<Vec<Cell<usize>>> = Rc::new((0..2 * n).map(|_| Cell::new(0)).collect());
    let make = |i: usize| {
        let c = counts.clone();
        Async::new(&lp, move |_| c[i].set(c[i].get() + 1)).unwrap()
    };
    let handles: Vec<Async> = (0..n).map(make).collect();
    // Senders made from the last handle to the first, and in a stride.
    let mut senders: Vec<Option<uv::AsyncSender>> = (0..n).map(|_| None).collect();
    for i in (0..n).rev().step_by(3).chain((0..n).step_by(7)) {
        senders[i].get_or_insert_with(|| handles[i].sender().unwrap());
    }
    for (i, h) in handles.iter().enumerate() {
        senders[i].get_or_insert_with(|| h.sender().unwrap());
    }
    for (i, s) in senders.iter().enumerate() {
        s.as_ref().unwrap().send().unwrap();
        lp.run(RunMode::NoWait).unwrap();
        for (j, c) in counts.iter().enumerate() {
            assert_eq!(
                c.get(),
                usize::from(j <= i && j < n),
                "after send {i}: handle {j}"
            );
        }
    }
    // Close the even ones; new handles take cells.
    let mut kept = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        if i % 2 == 0 {
            h.close();
        } else {
            kept.push(h);
        }
    }
    lp.run(RunMode::NoWait).unwrap();
    let fresh: Vec<Async> = (n..n + n / 2).map(make).collect();
    for (i, s) in senders.iter().enumerate() {
        let r = s.as_ref().unwrap().send();
        if i % 2 == 0 {
            assert_eq!(r.unwrap_err().kind(), uv::Category::ClosedHandle);
        } else {
            r.unwrap();
        }
    }
    for h in &fresh {
        h.sender().unwrap().send().unwrap();
    }
    lp.run(RunMode::NoWait).unwrap();
    for (j, c) in counts.iter().enumerate() {
        let want = match j {
            j if j < n && j % 2 == 0 => 1,
            j if j < n => 2,
            j if j < n + n / 2 => 1,
            _ => 0,
        };
        assert_eq!(c.get(), want, "handle {j}");
    }
    drop(kept);
    drop(fresh);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
}

/// Threads clone, send on and drop senders of one `Async` while the loop thread
/// closes it: every send either wakes it (before the close) or is refused with
/// `ClosedHandle`; once one is refused, all are. Then the loop is dropped with
/// clones alive on the threads, which send (refused) and drop them last.
#[test]
fn senders_cloned_and_dropped_on_threads_while_the_async_closes() {
    let lp = Loop::new().unwrap();
    let woken = Rc::new(Cell::new(0usize));
    let w = woken.clone();
    let a = Async::new(&lp, move |_| w.set(w.get() + 1)).unwrap();
    let sender = a.sender().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = sender.clone();
            let acc = accepted.clone();
            std::thread::spawn(move || loop {
                let c = s.clone();
                match c.send() {
                    Ok(()) => {
                        acc.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        assert_eq!(e.kind(), uv::Category::ClosedHandle);
                        assert!(s.send().is_err());
                        return s;
                    }
                }
            })
        })
        .collect();
    // Some wake-ups arrive, then the handle closes.
    run_until(&lp, || woken.get() >= 3);
    a.close();
    lp.run(RunMode::Default).unwrap();
    let kept: Vec<uv::AsyncSender> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(accepted.load(Ordering::SeqCst) >= 3);
    assert!(woken.get() >= 3);
    // A second handle, its sender kept on threads past the loop's drop.
    let b = Async::new(&lp, |_| {}).unwrap();
    let bs = b.sender().unwrap();
    drop(lp);
    let late: Vec<_> = (0..3)
        .map(|_| {
            let s = bs.clone();
            std::thread::spawn(move || {
                assert_eq!(s.send().unwrap_err().kind(), uv::Category::ClosedHandle);
                let again = s.clone();
                assert!(again.send().is_err());
            })
        })
        .collect();
    drop(b);
    for t in late {
        t.join().unwrap();
    }
    for s in &kept {
        assert_eq!(s.send().unwrap_err().kind(), uv::Category::ClosedHandle);
    }
}

// ---- 4. UDP receive trampolines ----

/// A receive callback that replaces itself, from inside its call, by one of
/// another type each datagram (three closure types in turn, one capture-free):
/// every datagram reaches exactly one callback, in order. Without batches the
/// third stops receiving inside its call: the rest stay queued and arrive once
/// receiving starts again. (With `RECVMMSG` it starts the first type again
/// instead: a stop inside a batch drops the batch's rest, as pinned in
/// `attacks.rs`.) The last datagram's callback closes the socket. Sends go to a
/// `SockAddr` converted once.
#[test]
fn udp_callbacks_replaced_by_other_types_inside_their_call() {
    thread_local! {
        static LOG: RefCell<Vec<(char, u8)>> = const { RefCell::new(Vec::new()) };
        static MMSG: Cell<bool> = const { Cell::new(false) };
    }
    const N: usize = 12;
    /// Logs the datagram; true when it was the last one (the socket is closed).
    fn log(u: &Udp, tag: char, d: uv::Datagram<'_>) -> bool {
        let n = LOG.with(|l| {
            l.borrow_mut().push((tag, d.data[0]));
            l.borrow().len()
        });
        assert_eq!(d.data.len(), 100 + usize::from(d.data[0]));
        if n == N {
            u.close();
        }
        n == N
    }
    fn first(tag: Rc<()>) -> impl FnMut(&Udp, uv::Result<uv::Datagram<'_>>) + 'static {
        move |u, d| {
            let d = d.unwrap();
            if d.is_drained() || log(u, 'a', d) {
                return;
            }
            let _ = &tag;
            u.recv_stop().unwrap();
            let big = [7u64; 4];
            u.recv_start(move |u, d| {
                let d = d.unwrap();
                if d.is_drained() || log(u, 'b', d) {
                    return;
                }
                assert_eq!(big[3], 7);
                u.recv_stop().unwrap();
                u.recv_start(|u, d| {
                    let d = d.unwrap();
                    if d.is_drained() || log(u, 'c', d) {
                        return;
                    }
                    u.recv_stop().unwrap();
                    if MMSG.with(|m| m.get()) {
                        u.recv_start(first(Rc::new(()))).unwrap();
                    }
                })
                .unwrap();
            })
            .unwrap();
        }
    }
    for mmsg in [false, true] {
        LOG.with(|l| l.borrow_mut().clear());
        MMSG.with(|m| m.set(mmsg));
        let lp = Loop::new().unwrap();
        let flags = if mmsg {
            UdpFlags::RECVMMSG
        } else {
            UdpFlags::empty()
        };
        let rx = Udp::with_flags(&lp, uv::AddressFamily::Inet, flags).unwrap();
        rx.bind("127.0.0.1:0".parse().unwrap(), UdpFlags::empty())
            .unwrap();
        let to = uv::SockAddr::new(rx.local_addr().unwrap());
        let tx = Udp::new(&lp).unwrap();
        tx.bind("127.0.0.1:0".parse().unwrap(), UdpFlags::empty())
            .unwrap();
        rx.recv_start(first(Rc::new(()))).unwrap();
        for i in 0..N as u8 {
            tx.send(vec![i; 100 + i as usize], &to, |_, r| r.unwrap())
                .unwrap();
        }
        let mut rounds = 0;
        loop {
            lp.run(RunMode::Default).unwrap();
            if rx.is_closed() {
                break;
            }
            // Stopped by the third type (without batches): start again.
            assert!(!mmsg);
            rx.recv_start(first(Rc::new(()))).unwrap();
            rounds += 1;
            assert!(rounds <= N);
        }
        let expect: Vec<(char, u8)> = (0..N as u8)
            .map(|i| (['a', 'b', 'c'][i as usize % 3], i))
            .collect();
        assert_eq!(LOG.with(|l| l.borrow().clone()), expect, "mmsg {mmsg}");
        tx.close();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(lp.handle_count(), 0);
    }
}

// ---- 5. stream callbacks that replace, close or panic ----

/// A read callback that replaces itself by a callback of another type on every
/// chunk (`read_stop` then `read_start` inside its call), every third time with an
/// allocator (`read_start_with`): every byte arrives once, in order.
#[test]
fn a_read_callback_replacing_itself_with_other_types_keeps_every_byte() {
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let switches = Rc::new(Cell::new(0usize));
    fn plain(
        got: Rc<RefCell<Vec<u8>>>,
        n: Rc<Cell<usize>>,
    ) -> impl FnMut(&Pipe, uv::Result<&[u8]>) {
        move |p, r| match r {
            Ok(b) => {
                got.borrow_mut().extend_from_slice(b);
                n.set(n.get() + 1);
                p.read_stop().unwrap();
                let (g, n2) = (got.clone(), n.clone());
                let pad = [1u8; 40];
                if n.get().is_multiple_of(3) {
                    p.read_start_with(PoolAllocator::new(5000, 2), move |p, r| {
                        let _ = pad;
                        match r {
                            Ok(b) => {
                                g.borrow_mut().extend_from_slice(b);
                                n2.set(n2.get() + 1);
                                p.read_stop().unwrap();
                                p.read_start(plain(g.clone(), n2.clone())).unwrap();
                            }
                            Err(e) => {
                                assert_eq!(e.code(), StatusCode::EOF);
                                p.close();
                            }
                        }
                    })
                    .unwrap();
                } else {
                    p.read_start(plain(g, n2)).unwrap();
                }
            }
            Err(e) => {
                assert_eq!(e.code(), StatusCode::EOF);
                p.close();
            }
        }
    }
    p.read_start(plain(got.clone(), switches.clone())).unwrap();
    let data = salted(600_000, 0x66);
    let d = data.clone();
    let writer = std::thread::spawn(move || peer.write_all(&d).unwrap());
    lp.run(RunMode::Default).unwrap();
    writer.join().unwrap();
    assert!(*got.borrow() == data);
    assert!(switches.get() >= 2);
}

/// A read callback that panics on some chunks (after keeping their bytes), beside
/// a wrapper reading large chunks on the same loop: each panic comes out of `run`,
/// the next `run` goes on, and every byte of both streams arrives.
#[test]
fn a_panicking_read_callback_beside_a_trading_wrapper() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let (q, mut peer_q) = pipe_and_std(&lp, false);
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let g = got.clone();
    let chunks = Rc::new(Cell::new(0usize));
    let c = chunks.clone();
    p.read_start(move |p, r| match r {
        Ok(b) => {
            g.borrow_mut().extend_from_slice(b);
            c.set(c.get() + 1);
            if c.get() % 2 == 1 {
                provoke("read");
            }
        }
        Err(e) => {
            assert_eq!(e.code(), StatusCode::EOF);
            p.close();
        }
    })
    .unwrap();
    let data = salted(300_000, 0x12);
    let other = salted(300_000, 0x34);
    let (d, o) = (data.clone(), other.clone());
    let w1 = std::thread::spawn(move || peer.write_all(&d).unwrap());
    let w2 = std::thread::spawn(move || peer_q.write_all(&o).unwrap());
    let task = lp
        .spawn_local(async move {
            let mut s = AsyncStream::new(q);
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        })
        .unwrap();
    let panics = run_collecting(&lp);
    assert!(!panics.is_empty() && panics.iter().all(|p| *p == "read"));
    w1.join().unwrap();
    w2.join().unwrap();
    assert!(task.is_finished());
    let wrapped = lp.block_on(task).unwrap().unwrap();
    assert!(wrapped == other);
    assert!(*got.borrow() == data);
    assert!(a_timer_fires(&lp));
}

/// Requests whose callbacks capture more than the slab serves (a request block of
/// over 1 KiB goes to the global allocator, without a slab count, as slab blocks):
/// loop requests kept past the loop's drop, handle requests whose callback holds
/// its handle's last reference, and panics among them. Every callback runs once
/// and sees its capture intact.
#[test]
fn requests_with_large_captures_outlive_the_loop_and_their_handles() {
    let _pool = uv_tests::pool::pool_lock();
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let seen = Rc::new(Cell::new(0usize));
    let mut kept = Vec::new();
    for i in 0..4u8 {
        let big = [i; 2048];
        let s = seen.clone();
        kept.push(
            Fs::stat(&lp, "/", move |r| {
                r.unwrap();
                assert!(big.iter().all(|&b| b == i));
                s.set(s.get() + 1);
            })
            .unwrap(),
        );
        let big = [i ^ 0xff; 4096];
        let s = seen.clone();
        kept.push(
            lp.queue_work(
                move || usize::from(i),
                move |r| {
                    assert_eq!(r.unwrap(), usize::from(i));
                    assert!(big.iter().all(|&b| b == i ^ 0xff));
                    s.set(s.get() + 1);
                    if i == 2 {
                        provoke("large");
                    }
                },
            )
            .unwrap(),
        );
    }
    let (a, b) = Pipe::pair(&lp).unwrap();
    let got = uv_tests::read_to_end(&b);
    for i in 0..3u8 {
        let big = [i; 3000];
        let s = seen.clone();
        let keep = a.clone();
        a.write(vec![i; 10], move |_, r| {
            r.unwrap();
            assert!(big.iter().all(|&b| b == i));
            s.set(s.get() + 1);
            if i == 2 {
                keep.close();
            }
            drop(keep);
        })
        .unwrap();
    }
    drop(a);
    let u = Udp::new(&lp).unwrap();
    let big = [9u8; 1500];
    let s = seen.clone();
    let keep = u.clone();
    u.send(
        vec![1u8; 8],
        Some("127.0.0.1:9".parse().unwrap()),
        move |_, _| {
            assert!(big.iter().all(|&b| b == 9));
            s.set(s.get() + 1);
            keep.close();
        },
    )
    .unwrap();
    drop(u);
    let panics = run_collecting(&lp);
    assert_eq!(panics, ["large"]);
    assert_eq!(seen.get(), 12);
    assert_eq!(
        *got.borrow(),
        [0u8; 10]
            .iter()
            .chain(&[1; 10])
            .chain(&[2; 10])
            .copied()
            .collect::<Vec<_>>()
    );
    drop(lp);
    for r in &kept {
        assert!(!r.is_pending());
    }
}

/// A connection callback that panics on every other connection, and closes its
/// server from inside on the last: each panic comes out of `run`, every
/// connection is accepted (none lost), and the loop stays usable.
#[test]
fn a_panicking_connection_callback_loses_no_connection() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (server, addr) = uv_tests::net::bound_tcp(&lp);
    let accepted = Rc::new(Cell::new(0usize));
    let a = accepted.clone();
    const N: usize = 6;
    server
        .listen(16, move |s, r| {
            r.unwrap();
            let c = s.accept().unwrap();
            c.close();
            a.set(a.get() + 1);
            if a.get() == N {
                s.close();
            }
            if a.get() % 2 == 1 {
                provoke("connection");
            }
        })
        .unwrap();
    let clients: Vec<std::net::TcpStream> = (0..N)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let panics = run_collecting(&lp);
    // One panic per iteration comes out (later ones of the same iteration are
    // dropped, as documented): at least one, at most one per panicking call.
    assert!((1..=N / 2).contains(&panics.len()));
    assert!(panics.iter().all(|p| *p == "connection"));
    assert_eq!(accepted.get(), N);
    assert!(server.is_closed());
    drop(clients);
    assert!(a_timer_fires(&lp));
}

/// An `AsyncStream` and a `ReadChunks` kept past their loop's drop, one with
/// traded bytes still buffered: the buffered bytes are still read, then reads end
/// with `ClosedHandle` (no wait for ever), writes fail, and nothing leaks.
#[test]
fn wrappers_used_after_their_loop_is_dropped() {
    let lp = Loop::new().unwrap();
    let (p, mut peer) = pipe_and_std(&lp, false);
    let (q, _peer_q) = pipe_and_std(&lp, false);
    let data = salted(50_000, 0x3c);
    let d = data.clone();
    let (s, first) = lp
        .block_on(async move {
            let mut s = AsyncStream::new(p);
            peer.write_all(&d).unwrap();
            let mut first = vec![0u8; 10];
            s.read_exact(&mut first).await.unwrap();
            (s, first)
        })
        .unwrap();
    let chunks = uvf::read_chunks(q);
    drop(lp);
    let mut s = s;
    let mut chunks = chunks;
    let (rest, err, write_err, chunk) = futures::executor::block_on(async {
        let mut rest = Vec::new();
        let err = loop {
            let mut buf = [0u8; 4096];
            match s.read(&mut buf).await {
                Ok(0) => break None,
                Ok(n) => rest.extend_from_slice(&buf[..n]),
                Err(e) => break Some(e),
            }
        };
        let write_err = futures::AsyncWriteExt::write_all(&mut s, b"x").await;
        let chunk = chunks.next().await;
        (rest, err, write_err, chunk)
    });
    // Whatever was read before the drop is still there; the rest is refused.
    let mut all = first;
    all.extend_from_slice(&rest);
    assert!(all.len() <= data.len() && all[..] == data[..all.len()]);
    assert!(all.len() >= 10);
    let kind = |e: std::io::Error| {
        e.into_inner()
            .and_then(|e| e.downcast::<uv::Error>().ok())
            .map(|e| e.kind())
    };
    assert_eq!(
        kind(err.expect("a read error")),
        Some(uv::Category::ClosedHandle)
    );
    assert_eq!(
        kind(write_err.unwrap_err()),
        Some(uv::Category::ClosedHandle)
    );
    assert_eq!(
        chunk.expect("an item").unwrap_err().kind(),
        uv::Category::ClosedHandle
    );
}

/// `PanicOnDrop` for a value that must be `Send` (a `bytes::Bytes` owner).
struct PanicOnDropSend(&'static str);

impl Drop for PanicOnDropSend {
    fn drop(&mut self) {
        provoke(self.0);
    }
}

/// A handle request that libuv refuses (a second `shutdown`: `ENOTCONN`) whose
/// callback's capture panics when dropped: the panic comes out of the call (no C
/// frame is in between), and the request's memory, data and handle reference are
/// given back all the same: the handle closes and is freed with its loop
/// (valgrind: nothing definitely lost).
#[test]
fn a_refused_handle_request_whose_callback_panics_on_drop_leaks_nothing() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let first = Rc::new(Cell::new(0usize));
    let f = first.clone();
    a.shutdown(move |_, r| {
        r.unwrap();
        f.set(f.get() + 1);
    })
    .unwrap();
    let boom = PanicOnDrop("refused shutdown");
    let r = catch_unwind(AssertUnwindSafe(|| {
        a.shutdown(move |_, _| {
            let _keep = &boom;
            unreachable!("a refused request's callback never runs");
        })
    }));
    let payload = r.expect_err("the capture's drop panicked");
    assert_eq!(provoked(&*payload), Some("refused shutdown"));
    // A write after the shutdown (`EPIPE`) whose callback and data both panic
    // when dropped: the first panic comes out, the second is dropped, nothing is
    // kept.
    struct Owner(Vec<u8>, #[allow(dead_code)] PanicOnDropSend);
    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    let data = bytes::Bytes::from_owner(Owner(vec![5; 100], PanicOnDropSend("refused data")));
    let boom = PanicOnDrop("refused write");
    let r = catch_unwind(AssertUnwindSafe(|| {
        a.write(data, move |_, _| {
            let _keep = &boom;
            unreachable!("a refused request's callback never runs");
        })
    }));
    let payload = r.expect_err("the drops panicked");
    assert_eq!(provoked(&*payload), Some("refused write"));
    // The stream still works and closes as usual.
    run_until(&lp, || first.get() == 1);
    let kept = a.clone();
    a.close();
    b.close();
    drop(a);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(first.get(), 1);
    assert!(kept.is_closed());
    drop(kept);
    assert_eq!(lp.handle_count(), 0);
}
