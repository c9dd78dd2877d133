//! The network scenarios written async: ping-pong over TCP (v4, v6) and pipes, an
//! echo of 1 MiB through `futures::io::copy`, connection refused, shutdown and end
//! of stream, UDP, DNS, and `BufReader::lines` over a stream.

use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use futures::StreamExt;
use std::io::Write as _;
use std::net::SocketAddr;
use uv::future::{self as uvf, AsyncStream};
use uv::{Loop, LoopHandle, Pipe, StatusCode, Stream, Tcp, TcpFlags, Udp};
use uv_tests::net::{pattern, TempDir};

const ROUNDS: usize = 200;

/// A server task that echoes every connection until its end, and returns how
/// many connections it served (`conns` of them).
async fn echo_server<S: Stream>(mut incoming: uvf::Incoming<S>, conns: usize) -> usize {
    let mut served = 0;
    while served < conns {
        let conn = incoming.next().await.unwrap().unwrap();
        let (mut r, mut w) = AsyncStream::new(conn).split();
        futures::io::copy(&mut r, &mut w).await.unwrap();
        w.close().await.unwrap();
        served += 1;
    }
    served
}

/// Client side of a ping-pong: `ROUNDS` round trips of "PING\n", then a shutdown
/// and the server's end of stream.
async fn ping_pong<S: Stream>(conn: S) -> usize {
    let mut s = AsyncStream::new(conn);
    let mut buf = [0u8; 5];
    for _ in 0..ROUNDS {
        s.write_all(b"PING\n").await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"PING\n");
    }
    s.close().await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).await.unwrap(),
        0,
        "EOF after the pongs"
    );
    ROUNDS
}

fn tcp_ping_pong(addr: SocketAddr, flags: TcpFlags) {
    let lp = Loop::new().unwrap();
    let server = Tcp::new(&lp).unwrap();
    server.bind(addr, flags).unwrap();
    let addr = server.local_addr().unwrap();
    let served = lp
        .spawn_local(echo_server(uvf::incoming(server, 16).unwrap(), 1))
        .unwrap();
    let client = Tcp::new(&lp).unwrap();
    let rounds = lp
        .block_on(async {
            uvf::connect(&client, addr).await.unwrap();
            ping_pong(client.clone()).await
        })
        .unwrap();
    assert_eq!(rounds, ROUNDS);
    assert_eq!(lp.block_on(served).unwrap(), Ok(1));
}

#[test]
fn ping_pong_tcp_v4() {
    tcp_ping_pong("127.0.0.1:0".parse().unwrap(), TcpFlags::empty());
}

#[test]
fn ping_pong_tcp_v6() {
    // Only where the machine has IPv6 loopback.
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback: skipped");
        return;
    }
    tcp_ping_pong("[::1]:0".parse().unwrap(), TcpFlags::IPV6ONLY);
}

#[test]
fn ping_pong_pipe() {
    let dir = TempDir::new("async-pipe");
    let path = dir.join("sock");
    let lp = Loop::new().unwrap();
    let server = Pipe::new(&lp, false).unwrap();
    server.bind(&path).unwrap();
    let served = lp
        .spawn_local(echo_server(uvf::incoming(server, 16).unwrap(), 1))
        .unwrap();
    let client = Pipe::new(&lp, false).unwrap();
    let rounds = lp
        .block_on(async {
            uvf::connect_pipe(&client, &path).await.unwrap();
            ping_pong(client.clone()).await
        })
        .unwrap();
    assert_eq!(rounds, ROUNDS);
    assert_eq!(lp.block_on(served).unwrap(), Ok(1));
}

#[test]
fn echo_of_one_mebibyte() {
    let lp = Loop::new().unwrap();
    let (server, addr) = uv_tests::net::bound_tcp(&lp);
    let served = lp
        .spawn_local(echo_server(uvf::incoming(server, 16).unwrap(), 1))
        .unwrap();
    let data = pattern(1 << 20);
    let client = Tcp::new(&lp).unwrap();
    let expect = data.clone();
    let got = lp
        .block_on(async move {
            uvf::connect(&client, addr).await.unwrap();
            let (mut r, mut w) = AsyncStream::new(client).split();
            // Writer and reader at once: the echo comes back while we write.
            let writer = async {
                w.write_all(&data).await.unwrap();
                w.close().await.unwrap();
            };
            let reader = async {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.unwrap();
                got
            };
            futures::join!(writer, reader).1
        })
        .unwrap();
    assert_eq!(got.len(), expect.len());
    assert!(got == expect, "the echo differs");
    assert_eq!(lp.block_on(served).unwrap(), Ok(1));
}

#[test]
fn connection_refused() {
    let lp = Loop::new().unwrap();
    // A port nobody listens on: bound, then closed.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = Tcp::new(&lp).unwrap();
    let r = lp.block_on(uvf::connect(&client, addr)).unwrap();
    assert_eq!(r.unwrap_err().code(), StatusCode::ECONNREFUSED);
    // A closed handle: the error comes out of the future.
    client.close();
    let r = lp.block_on(uvf::connect(&client, addr)).unwrap();
    assert!(r.unwrap_err().is(uv::Category::ClosedHandle));
}

#[test]
fn shutdown_and_end_of_stream() {
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let (chunks, after) = lp
        .block_on(async {
            let w1 = uvf::write(&a, "hello ");
            let w2 = uvf::write(&a, uv::WriteData::Static(b"world"));
            let sd = uvf::shutdown(&a);
            w1.await.unwrap();
            w2.await.unwrap();
            sd.await.unwrap();
            // After the shutdown a write fails (EPIPE), reported by the future.
            let after = uvf::write(&a, "late").await;
            let mut all = Vec::new();
            let mut rd = uvf::read_chunks(b.clone());
            while let Some(c) = rd.next().await {
                all.extend(c.unwrap());
            }
            // The stream stays ended.
            assert!(rd.next().await.is_none());
            (all, after)
        })
        .unwrap();
    assert_eq!(chunks, b"hello world");
    assert_eq!(after.unwrap_err().code(), StatusCode::EPIPE);
}

#[test]
fn lines_through_a_bufreader() {
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let lines = lp
        .block_on(async {
            let mut w = AsyncStream::new(a);
            let writer = async {
                for i in 0..100 {
                    w.write_all(format!("line {i}\n").as_bytes()).await.unwrap();
                }
                w.close().await.unwrap();
            };
            let reader = async {
                BufReader::new(AsyncStream::new(b))
                    .lines()
                    .map(|l| l.unwrap())
                    .collect::<Vec<_>>()
                    .await
            };
            futures::join!(writer, reader).1
        })
        .unwrap();
    assert_eq!(lines.len(), 100);
    assert_eq!(lines[0], "line 0");
    assert_eq!(lines[99], "line 99");
}

#[test]
fn udp_send_and_receive() {
    let lp = Loop::new().unwrap();
    let rx = Udp::new(&lp).unwrap();
    rx.bind("127.0.0.1:0".parse().unwrap(), uv::UdpFlags::empty())
        .unwrap();
    let rx_addr = rx.local_addr().unwrap();
    let tx = Udp::new(&lp).unwrap();
    tx.bind("127.0.0.1:0".parse().unwrap(), uv::UdpFlags::empty())
        .unwrap();
    let tx_addr = tx.local_addr().unwrap();
    let got = lp
        .block_on(async {
            let mut incoming = uvf::recv_from(&rx);
            let mut got = Vec::new();
            for i in 0..10u8 {
                uvf::send_to(&tx, vec![i; usize::from(i) + 1], Some(rx_addr))
                    .await
                    .unwrap();
                let (data, from) = incoming.next().await.unwrap().unwrap();
                assert_eq!(from, tx_addr);
                got.push(data);
            }
            got
        })
        .unwrap();
    for (i, d) in got.iter().enumerate() {
        assert_eq!(d, &vec![i as u8; i + 1]);
    }
    assert!(!rx.is_active(), "dropping the stream stopped receiving");
}

#[test]
fn dns_lookups() {
    let lp = Loop::new().unwrap();
    let lh: LoopHandle = lp.handle();
    let hints = uv::AddrInfoHints::default()
        .with_socktype(uv::SocketType::Stream)
        .with_flags(uv::AddrInfoFlags::NUMERICHOST | uv::AddrInfoFlags::NUMERICSERV);
    let addrs = lp
        .block_on(uvf::getaddrinfo(&lh, Some("127.0.0.1"), Some("80"), &hints))
        .unwrap()
        .unwrap();
    assert_eq!(addrs[0].addr, "127.0.0.1:80".parse::<SocketAddr>().unwrap());
    let e = lp
        .block_on(uvf::getaddrinfo(&lh, Some("not a number"), None, &hints))
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code(), StatusCode::EAI_NONAME);
    let name = lp
        .block_on(uvf::getnameinfo(
            &lh,
            "127.0.0.1:80".parse().unwrap(),
            uv::NameInfoFlags::NUMERICHOST | uv::NameInfoFlags::NUMERICSERV,
        ))
        .unwrap()
        .unwrap();
    assert_eq!(
        (name.host.as_str(), name.service.as_str()),
        ("127.0.0.1", "80")
    );
}

#[test]
fn many_connections_to_one_server() {
    let lp = Loop::new().unwrap();
    let (server, addr) = uv_tests::net::bound_tcp(&lp);
    let lh = lp.handle();
    // Listening starts now (before the clients connect); the server task spawns
    // one task per connection.
    let mut inc = uvf::incoming(server, 64).unwrap();
    let srv = lp
        .spawn_local(async move {
            let mut tasks = Vec::new();
            for _ in 0..20 {
                let c = inc.next().await.unwrap().unwrap();
                tasks.push(
                    lh.spawn_local(async move {
                        let (mut r, mut w) = AsyncStream::new(c).split();
                        futures::io::copy(&mut r, &mut w).await.unwrap();
                        w.close().await.unwrap();
                    })
                    .unwrap(),
                );
            }
            for t in tasks {
                t.await.unwrap();
            }
        })
        .unwrap();
    let lh = lp.handle();
    let results = lp
        .block_on(async move {
            let clients = (0..20u32).map(|i| {
                let lh = lh.clone();
                async move {
                    let c = Tcp::new(&lh).unwrap();
                    uvf::connect(&c, addr).await.unwrap();
                    let mut s = AsyncStream::new(c);
                    let msg = format!("client {i}");
                    s.write_all(msg.as_bytes()).await.unwrap();
                    s.close().await.unwrap();
                    let mut back = String::new();
                    s.read_to_string(&mut back).await.unwrap();
                    (msg, back)
                }
            });
            futures::future::join_all(clients).await
        })
        .unwrap();
    for (sent, back) in results {
        assert_eq!(sent, back);
    }
    assert_eq!(lp.block_on(srv).unwrap(), Ok(()));
    // Everything is closed: the loop ends at once.
    assert!(!lp.run(uv::RunMode::Default).unwrap());
    assert_eq!(lp.handle_count(), 0);
}

/// Write futures made alternately on two streams, one of whose peers is gone:
/// each future gets its own write's result (the healthy stream's all succeed and
/// its peer reads every byte in order; the broken one's fail with EPIPE), whatever
/// the order they are awaited in, and from two tasks.
#[test]
fn write_futures_on_two_streams_each_get_their_own_result() {
    use std::io::Read;
    let lp = Loop::new().unwrap();
    let (a, mut a_peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let (b, b_peer) = std::os::unix::net::UnixStream::pair().unwrap();
    drop(b_peer);
    let (pa, pb) = (
        Pipe::new(&lp, false).unwrap(),
        Pipe::new(&lp, false).unwrap(),
    );
    pa.open(a).unwrap();
    pb.open(b).unwrap();
    let mut ok = Vec::new();
    let mut broken = Vec::new();
    for i in 0..20u8 {
        ok.push(uvf::write(&pa, vec![i; 1000]));
        broken.push(uvf::write(&pb, vec![i; 1000]));
    }
    let lh = lp.handle();
    // The broken stream's futures in another task, awaited last first.
    let task = lh
        .spawn_local(async move {
            let mut codes = Vec::new();
            for f in broken.into_iter().rev() {
                codes.push(f.await.map_err(|e| e.code()));
            }
            codes
        })
        .unwrap();
    let results = lp
        .block_on(async move {
            let mut r = Vec::new();
            for f in ok {
                r.push(f.await.map_err(|e| e.code()));
            }
            r
        })
        .unwrap();
    assert_eq!(results, vec![Ok(()); 20]);
    let codes = lp.block_on(task).unwrap().unwrap();
    assert_eq!(codes.len(), 20);
    assert!(
        codes.iter().all(|c| *c == Err(StatusCode::EPIPE)),
        "{codes:?}"
    );
    pa.close();
    pb.close();
    lp.run(uv::RunMode::Default).unwrap();
    let mut got = Vec::new();
    a_peer.read_to_end(&mut got).unwrap();
    let want: Vec<u8> = (0..20u8).flat_map(|i| vec![i; 1000]).collect();
    assert_eq!(got, want);
}

/// A write future polled again after it resolved answers `EINVAL` (it does not
/// wait, and does not repeat its result); a write refused at submission (here
/// after a shutdown, while an earlier write is in flight) resolves to its own
/// error and leaves the write before it alone.
#[test]
fn write_futures_polled_after_their_result_answer_einval() {
    use std::future::Future;
    use std::task::{Context, Poll};
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut first = uvf::write(&a, "first");
    let sd = uvf::shutdown(&a);
    let mut late = uvf::write(&a, "late");
    // Refused: its error at once, then EINVAL.
    let refused = match std::pin::Pin::new(&mut late).poll(&mut cx) {
        Poll::Ready(r) => r.unwrap_err(),
        Poll::Pending => panic!("a refused write waited"),
    };
    assert_ne!(refused.code(), StatusCode::EINVAL, "{refused:?}");
    match std::pin::Pin::new(&mut late).poll(&mut cx) {
        Poll::Ready(Err(e)) => assert_eq!(e.code(), StatusCode::EINVAL),
        other => panic!("expected EINVAL, got {other:?}"),
    }
    assert!(format!("{late:?}").contains("pending: false"), "{late:?}");
    // The write in flight before it completes as usual.
    assert!(format!("{first:?}").contains("pending: true"), "{first:?}");
    lp.block_on(&mut first).unwrap().unwrap();
    match std::pin::Pin::new(&mut first).poll(&mut cx) {
        Poll::Ready(Err(e)) => assert_eq!(e.code(), StatusCode::EINVAL),
        other => panic!("expected EINVAL, got {other:?}"),
    }
    lp.block_on(sd).unwrap().unwrap();
    let got = read_chunks_to_end(&lp, &b);
    assert_eq!(got, b"first");
    a.close();
    b.close();
    lp.run(uv::RunMode::Default).unwrap();
}

/// A write that completed stays `Ok` when a later write on its stream failed
/// first (the failure kept for its own future), and each gets its own result.
#[test]
fn a_completed_write_stays_ok_after_a_later_one_failed() {
    use std::io::Read;
    let lp = Loop::new().unwrap();
    let (a, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let pa = Pipe::new(&lp, false).unwrap();
    pa.open(a).unwrap();
    let first = uvf::write(&pa, "first");
    // Both writes complete before either future is polled.
    lp.run(uv::RunMode::Default).unwrap();
    let mut got = [0u8; 5];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"first");
    drop(peer);
    let second = uvf::write(&pa, "second");
    lp.run(uv::RunMode::Default).unwrap();
    let (r1, r2) = lp
        .block_on(async {
            let r1 = first.await.map_err(|e| e.code());
            let r2 = second.await.map_err(|e| e.code());
            (r1, r2)
        })
        .unwrap();
    assert_eq!(r1, Ok(()));
    assert_eq!(r2, Err(StatusCode::EPIPE));
    pa.close();
    lp.run(uv::RunMode::Default).unwrap();
}

/// Everything `b` reads until its end, through `uvf::read_chunks`.
fn read_chunks_to_end(lp: &Loop, b: &Pipe) -> Vec<u8> {
    lp.block_on(async {
        let mut all = Vec::new();
        let mut rd = uvf::read_chunks(b.clone());
        while let Some(c) = rd.next().await {
            all.extend(c.unwrap());
        }
        all
    })
    .unwrap()
}

/// A `Pipe` on `lp` whose peer, a std Unix socket, `feed` writes to on another
/// thread (joined by the caller; the peer closes when `feed` returns).
fn pipe_fed_by_thread(
    lp: &Loop,
    feed: impl FnOnce(&mut std::os::unix::net::UnixStream) + Send + 'static,
) -> (Pipe, std::thread::JoinHandle<()>) {
    let (a, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let p = Pipe::new(lp, false).unwrap();
    p.open(a).unwrap();
    (p, std::thread::spawn(move || feed(&mut peer)))
}

/// Bytes that arrive faster than an `AsyncStream` reader takes them (large reads
/// that pile up behind one another, small ones after them) come out whole and in
/// order through reads of many sizes, then the end of the stream.
#[test]
fn async_stream_reads_keep_order_when_large_reads_pile_up() {
    const LEN: usize = 3 << 20;
    let lp = Loop::new().unwrap();
    let (p, writer) = pipe_fed_by_thread(&lp, |peer| {
        let data = pattern(LEN);
        peer.write_all(&data[..LEN - 1000]).unwrap();
        for c in data[LEN - 1000..].chunks(10) {
            peer.write_all(c).unwrap();
        }
    });
    let got = lp
        .block_on(async move {
            let mut s = AsyncStream::new(p);
            let sizes = [1usize, 70_000, 13, 200_000, 4096, 65_536, 100, 300_000];
            let mut out = Vec::new();
            for i in 0.. {
                let mut buf = vec![0u8; sizes[i % sizes.len()]];
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            s.into_inner().close();
            out
        })
        .unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), LEN);
    assert!(got == pattern(LEN), "the bytes differ");
    lp.run(uv::RunMode::Default).unwrap();
}

/// As above, taken through `AsyncBufRead` (`fill_buf` and `consume` of part of
/// each buffer).
#[test]
fn async_stream_buffered_reads_keep_order_when_large_reads_pile_up() {
    const LEN: usize = 3 << 20;
    let lp = Loop::new().unwrap();
    let (p, writer) = pipe_fed_by_thread(&lp, |peer| peer.write_all(&pattern(LEN)).unwrap());
    let got = lp
        .block_on(async move {
            let mut s = AsyncStream::new(p);
            let mut out = Vec::new();
            loop {
                let buf = s.fill_buf().await.unwrap();
                if buf.is_empty() {
                    break;
                }
                let n = buf.len().min(50_000);
                out.extend_from_slice(&buf[..n]);
                s.consume_unpin(n);
            }
            s.into_inner().close();
            out
        })
        .unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), LEN);
    assert!(got == pattern(LEN), "the bytes differ");
    lp.run(uv::RunMode::Default).unwrap();
}

/// `write_each` writes every item (of any kind) in order, as writes of their
/// own, and resolves to their number; an empty batch resolves to 0; a batch
/// polled after its result answers `EINVAL`.
#[test]
fn write_each_writes_every_item_in_order_and_counts_them() {
    use std::future::Future;
    use std::task::{Context, Poll};
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let items: Vec<uv::WriteData> = vec![
        uv::WriteData::Static(b"static,"),
        b"inline,".into(),
        vec![b'v'; 5000].into(),
        std::rc::Rc::<[u8]>::from(&b",shared"[..]).into(),
        "".into(),
        String::from(",owned").into(),
    ];
    let mut expected = b"static,inline,".to_vec();
    expected.extend(vec![b'v'; 5000]);
    expected.extend_from_slice(b",shared,owned");
    let mut batch = uvf::write_each(&a, items);
    let empty = uvf::write_each(&a, Vec::<uv::WriteData>::new());
    let sd = uvf::shutdown(&a);
    assert_eq!(lp.block_on(empty).unwrap().unwrap(), 0);
    assert_eq!(lp.block_on(&mut batch).unwrap().unwrap(), 6);
    let waker = futures::task::noop_waker();
    match std::pin::Pin::new(&mut batch).poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(Err(e)) => assert_eq!(e.code(), StatusCode::EINVAL),
        other => panic!("expected EINVAL, got {other:?}"),
    }
    lp.block_on(sd).unwrap().unwrap();
    assert_eq!(read_chunks_to_end(&lp, &b), expected);
    a.close();
    b.close();
    lp.run(uv::RunMode::Default).unwrap();
}

/// Writes made by the batch's iterator on the same stream (with futures of
/// their own) go out between the batch's, and each future gets its own result;
/// an iterator that runs the loop, so that the writes so far complete (none in
/// flight for a while), changes nothing either.
#[test]
fn write_each_beside_writes_made_by_its_iterator_and_loop_runs() {
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let mut inner = Vec::new();
    let batch = uvf::write_each(
        &a,
        (0..6u8).map(|i| {
            if i % 2 == 1 {
                inner.push(uvf::write(&a, vec![b'a' + i]));
            }
            if i == 3 {
                lp.run(uv::RunMode::NoWait).unwrap();
            }
            vec![b'0' + i]
        }),
    );
    assert_eq!(inner.len(), 3);
    let sd = uvf::shutdown(&a);
    let results = lp
        .block_on(async {
            let mut rs = vec![batch.await.map_err(|e| e.code())];
            for f in inner {
                rs.push(f.await.map(|()| 1).map_err(|e| e.code()));
            }
            rs
        })
        .unwrap();
    assert_eq!(results, vec![Ok(6), Ok(1), Ok(1), Ok(1)]);
    lp.block_on(sd).unwrap().unwrap();
    assert_eq!(read_chunks_to_end(&lp, &b), b"0b12d34f5");
    a.close();
    b.close();
    lp.run(uv::RunMode::Default).unwrap();
}

/// A batch whose writes fail (the peer is gone) resolves to the error, also
/// when its iterator ran the loop between them (the failed writes completed
/// before the next were made); a write future made meanwhile gets its own.
#[test]
fn write_each_reports_the_first_failed_write() {
    let lp = Loop::new().unwrap();
    let (a, peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let pa = Pipe::new(&lp, false).unwrap();
    pa.open(a).unwrap();
    drop(peer);
    let mut own = Vec::new();
    let batch = uvf::write_each(
        &pa,
        (0..4u8).map(|i| {
            if i == 2 {
                lp.run(uv::RunMode::NoWait).unwrap();
                own.push(uvf::write(&pa, "own"));
            }
            vec![i]
        }),
    );
    let (r, own_r) = lp
        .block_on(async {
            let r = batch.await.map_err(|e| e.code());
            let own_r = own.pop().unwrap().await.map_err(|e| e.code());
            (r, own_r)
        })
        .unwrap();
    assert_eq!(r, Err(StatusCode::EPIPE));
    assert_eq!(own_r, Err(StatusCode::EPIPE));
    pa.close();
    lp.run(uv::RunMode::Default).unwrap();
}

/// A write refused (the iterator closed the stream) ends the batch: the items
/// after it are not taken, and the batch resolves to the refusal once the
/// writes before it completed.
#[test]
fn write_each_stops_at_a_refused_write() {
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let taken = std::cell::Cell::new(0);
    let batch = uvf::write_each(
        &a,
        (0..5u8).map(|i| {
            taken.set(taken.get() + 1);
            if i == 2 {
                a.close();
            }
            vec![i]
        }),
    );
    assert_eq!(taken.get(), 3);
    // The two writes before it went out (a pipe takes them at once): the
    // refusal is the result.
    let e = lp.block_on(batch).unwrap().unwrap_err();
    assert_eq!(e.kind(), uv::Category::ClosedHandle, "{e:?}");
    b.close();
    lp.run(uv::RunMode::Default).unwrap();
}

/// `AsyncStream::read_chunk` hands over every byte in order, mixed with
/// `AsyncRead` reads and `AsyncBufRead` consumes that leave bytes in the
/// wrapper's buffer (handed over first), with chunks handed back as the spare
/// buffer or dropped; at the end of the stream it gives empty chunks.
#[test]
fn read_chunk_keeps_every_byte_in_order_mixed_with_other_reads() {
    const LEN: usize = 3 << 20;
    let lp = Loop::new().unwrap();
    let (p, writer) = pipe_fed_by_thread(&lp, |peer| {
        let data = pattern(LEN);
        peer.write_all(&data[..LEN - 1000]).unwrap();
        for c in data[LEN - 1000..].chunks(10) {
            peer.write_all(c).unwrap();
        }
    });
    let (got, chunks, ends) = lp
        .block_on(async move {
            let mut s = AsyncStream::new(p);
            let mut out = Vec::new();
            let mut chunks = 0usize;
            let mut spare = Vec::new();
            for i in 0.. {
                match i % 4 {
                    0 | 1 => {
                        let chunk = s.read_chunk(std::mem::take(&mut spare)).await.unwrap();
                        if chunk.is_empty() {
                            break;
                        }
                        chunks += 1;
                        out.extend_from_slice(&chunk);
                        if i % 8 == 0 {
                            spare = chunk;
                        }
                    }
                    2 => {
                        let mut buf = [0u8; 7];
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
                        let n = buf.len().min(3);
                        out.extend_from_slice(&buf[..n]);
                        s.consume_unpin(n);
                    }
                }
            }
            // The end stays the end.
            let mut ends = 0;
            for _ in 0..3 {
                if s.read_chunk(Vec::with_capacity(8))
                    .await
                    .unwrap()
                    .is_empty()
                {
                    ends += 1;
                }
            }
            s.into_inner().close();
            (out, chunks, ends)
        })
        .unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), LEN);
    assert!(got == pattern(LEN), "the bytes differ");
    assert!(chunks > 0);
    assert_eq!(ends, 3);
    lp.run(uv::RunMode::Default).unwrap();
}

/// A small read that lands while a whole read buffer of bytes waits for the
/// reader is kept apart (the waiting bytes are not grown, and reading pauses):
/// `read_chunk` gives the full buffer, then the small read, then what came
/// after, in order.
#[test]
fn a_small_read_behind_a_full_buffer_comes_next() {
    use std::future::Future;
    use std::io::Write as _;
    use std::task::Context;
    let lp = Loop::new().unwrap();
    let (a, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let p = Pipe::new(&lp, false).unwrap();
    p.open(a).unwrap();
    let mut s = AsyncStream::new(p);
    let waker = futures::task::noop_waker();
    // Reading starts with the first poll.
    assert!(std::pin::Pin::new(&mut s.read_chunk(Vec::new()))
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    let data = pattern(uv::READ_BUFFER_SIZE + 20);
    peer.write_all(&data[..uv::READ_BUFFER_SIZE]).unwrap();
    lp.run(uv::RunMode::NoWait).unwrap();
    peer.write_all(&data[uv::READ_BUFFER_SIZE..uv::READ_BUFFER_SIZE + 10])
        .unwrap();
    lp.run(uv::RunMode::NoWait).unwrap();
    peer.write_all(&data[uv::READ_BUFFER_SIZE + 10..]).unwrap();
    lp.run(uv::RunMode::NoWait).unwrap();
    drop(peer);
    let chunks = lp
        .block_on(async move {
            let mut chunks = Vec::new();
            loop {
                let c = s.read_chunk(Vec::new()).await.unwrap();
                if c.is_empty() {
                    break;
                }
                chunks.push(c);
            }
            s.into_inner().close();
            chunks
        })
        .unwrap();
    let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
    assert!(lens.starts_with(&[uv::READ_BUFFER_SIZE, 10]), "{lens:?}");
    assert_eq!(chunks.concat(), data);
    lp.run(uv::RunMode::Default).unwrap();
}

/// A `read_chunk` on a stream whose handle was closed answers an error instead
/// of waiting for good, and one on a stream whose peer failed gives the error.
#[test]
fn read_chunk_of_a_closed_handle_ends_with_an_error() {
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let r = lp
        .block_on(async {
            let mut s = AsyncStream::new(b.clone());
            b.close();
            s.read_chunk(Vec::new()).await.map_err(|e| e.kind())
        })
        .unwrap();
    assert!(r.is_err(), "{r:?}");
    a.close();
    lp.run(uv::RunMode::Default).unwrap();
}

thread_local! {
    static WAKE_STREAM: std::cell::RefCell<Option<Pipe>> = const { std::cell::RefCell::new(None) };
    static WAKE_MADE: std::cell::RefCell<Vec<uvf::WriteFuture>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A waker that makes a write on `WAKE_STREAM` when woken.
struct WriteOnWake;

impl std::task::Wake for WriteOnWake {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        WAKE_STREAM.with(|s| {
            if let Some(p) = s.borrow().as_ref() {
                let f = uvf::write(p, "second");
                WAKE_MADE.with(|m| m.borrow_mut().push(f));
            }
        });
    }
}

/// A waker woken by the completion of a stream's last write in flight that
/// makes another write on that stream (user code, run from the completion):
/// that write completes and resolves as usual, and the peer gets both.
#[test]
fn a_write_made_by_a_waker_run_from_a_completion_completes() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    WAKE_STREAM.with(|s| *s.borrow_mut() = Some(a.clone()));
    let mut first = uvf::write(&a, "first");
    let waker = Waker::from(std::sync::Arc::new(WriteOnWake));
    let mut cx = Context::from_waker(&waker);
    assert!(std::pin::Pin::new(&mut first).poll(&mut cx).is_pending());
    lp.run(uv::RunMode::Default).unwrap();
    WAKE_STREAM.with(|s| s.borrow_mut().take());
    let mut made = WAKE_MADE.with(|m| std::mem::take(&mut *m.borrow_mut()));
    assert_eq!(made.len(), 1);
    let noop = futures::task::noop_waker();
    let mut cx = Context::from_waker(&noop);
    match std::pin::Pin::new(&mut made[0]).poll(&mut cx) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("the write made by the waker did not complete"),
    }
    match std::pin::Pin::new(&mut first).poll(&mut cx) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("the first write did not complete"),
    }
    a.close();
    let got = read_chunks_to_end(&lp, &b);
    assert_eq!(got, b"firstsecond");
    b.close();
    lp.run(uv::RunMode::Default).unwrap();
}

/// A task woken by a read is polled in that iteration's check phase (no idle
/// handle needed for that wake), and a task it wakes then (here itself, through
/// `yield_now`) is polled in the next iteration's idle phase, before its prepare
/// phase (which counts iterations) and its poll, so without the loop waiting:
/// the loop has nothing else to do, so a missed wake-up would block it until the
/// watchdog timer, 5 s later. Then a task spawned between two runs is polled at
/// once as well.
#[test]
fn a_task_woken_by_a_read_runs_at_once_and_what_it_wakes_next_iteration() {
    use std::cell::Cell;
    use std::rc::Rc;
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let (prep, iters) = uv_tests::net::count_iterations(&lp);
    // (iteration of the read's end, iteration after the yield, bytes)
    let seen = Rc::new(Cell::new((0u64, 0u64, 0usize)));
    let (s, it) = (seen.clone(), iters.clone());
    let task = lp
        .spawn_local(async move {
            let mut r = AsyncStream::new(b);
            let mut buf = [0u8; 16];
            let n = r.read(&mut buf).await.unwrap();
            let read_at = it.get();
            uvf::yield_now().await;
            s.set((read_at, it.get(), n));
            r.into_inner().close();
        })
        .unwrap();
    // The task waits for the read first.
    lp.run(uv::RunMode::NoWait).unwrap();
    assert_eq!(seen.get().2, 0);
    let timed_out = Rc::new(Cell::new(false));
    let t = timed_out.clone();
    let watchdog =
        uv::Timer::once(&lp, std::time::Duration::from_secs(5), move |_| t.set(true)).unwrap();
    lp.block_on(uvf::write(&a, "ping")).unwrap().unwrap();
    // One iteration at a time: the read lands and the task runs in one, its
    // yield is polled at the start of the next.
    let start = iters.get();
    while seen.get().2 == 0 && !timed_out.get() {
        lp.run(uv::RunMode::Once).unwrap();
        assert!(iters.get() - start < 1000, "the loop spins");
    }
    assert!(!timed_out.get(), "the woken task waited for the watchdog");
    let (read_at, after_yield, n) = seen.get();
    assert_eq!(n, 4);
    assert_eq!(
        after_yield, read_at,
        "the yield is polled before the next poll phase"
    );
    // A task spawned outside the loop's I/O phase (here, between two runs) is
    // polled at once too: the I/O phase's wake left no trace.
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let other = lp.spawn_local(async move { r.set(true) }).unwrap();
    lp.run(uv::RunMode::Once).unwrap();
    assert!(ran.get(), "a spawned task runs in the next iteration");
    assert!(!timed_out.get(), "the spawned task waited for the watchdog");
    lp.block_on(other).unwrap().unwrap();
    watchdog.close();
    prep.close();
    a.close();
    lp.block_on(task).unwrap().unwrap();
}

/// A stream read through an `AsyncStream`, given back with `into_inner`, then read
/// with `read_start`, with `read_start_with` (an allocator's buffers), and through a
/// new wrapper: every byte arrives once and in order, whichever way read it.
#[test]
fn reads_move_between_a_wrapper_and_read_start_without_losing_bytes() {
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let data = pattern(400_000);
    let parts = [
        0..100_000,
        100_000..200_000,
        200_000..300_000,
        300_000..400_000,
    ];
    let mut got = Vec::new();
    // Through a wrapper: exactly the bytes written, so none is left in it.
    let part = data[parts[0].clone()].to_vec();
    let (first, b) = lp
        .block_on(async {
            uvf::write(&a, part).await.unwrap();
            let mut s = AsyncStream::new(b);
            let mut buf = vec![0u8; 100_000];
            s.read_exact(&mut buf).await.unwrap();
            (buf, s.into_inner())
        })
        .unwrap();
    got.extend_from_slice(&first);
    // Through `read_start`, then `read_start_with`.
    for (i, with_allocator) in [(1, false), (2, true)] {
        let part = data[parts[i].clone()].to_vec();
        lp.block_on(uvf::write(&a, part)).unwrap().unwrap();
        let sink = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let s2 = sink.clone();
        let cb = move |s: &Pipe, r: uv::Result<&[u8]>| {
            let mut v = s2.borrow_mut();
            v.extend_from_slice(r.unwrap());
            if v.len() >= 100_000 {
                s.read_stop().unwrap();
            }
        };
        if with_allocator {
            b.read_start_with(uv::PoolAllocator::new(4096, 2), cb)
                .unwrap();
        } else {
            b.read_start(cb).unwrap();
        }
        while sink.borrow().len() < 100_000 {
            lp.run(uv::RunMode::Once).unwrap();
        }
        assert_eq!(sink.borrow().len(), 100_000, "part {i}");
        got.extend_from_slice(&sink.borrow());
    }
    // A new wrapper, to the end.
    let part = data[parts[3].clone()].to_vec();
    let rest = lp
        .block_on(async {
            uvf::write(&a, part).await.unwrap();
            uvf::shutdown(&a).await.unwrap();
            let mut s = AsyncStream::new(b);
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.unwrap();
            rest
        })
        .unwrap();
    got.extend_from_slice(&rest);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the bytes differ");
}

/// A wrapper's bytes stay exact through writes and reads of every size (large
/// and small, into the caller's buffer at once and through the wrapper's), and
/// another stream reading into the loop's buffer meanwhile gets its own bytes
/// exact too.
#[test]
fn reads_of_every_size_keep_every_byte_beside_another_stream() {
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let (c, d) = Pipe::pair(&lp).unwrap();
    let data = pattern(3 << 20);
    // The other stream: its bytes, shifted so that a mix-up shows.
    let other: Vec<u8> = pattern(1 << 20).iter().map(|x| x ^ 0x5a).collect();
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s2 = seen.clone();
    d.read_start(move |d, r| match r {
        Ok(bytes) => s2.borrow_mut().extend_from_slice(bytes),
        Err(e) => {
            assert_eq!(e.code(), StatusCode::EOF);
            d.close();
        }
    })
    .unwrap();
    let (to_send, other_send) = (data.clone(), other.clone());
    let got = lp
        .block_on(async move {
            // Writes of several sizes, large and small, on both streams.
            let writer = async {
                let mut at = 0;
                for (i, size) in [200_000, 13, 65_536, 1, 300_000, 4095, 4096, 70_000]
                    .iter()
                    .cycle()
                    .enumerate()
                {
                    if at == to_send.len() {
                        break;
                    }
                    let end = (at + size).min(to_send.len());
                    uvf::write(&a, to_send[at..end].to_vec()).await.unwrap();
                    if i % 3 == 0 {
                        let o = (i * 10_000) % other_send.len();
                        let oe = (o + 10_000).min(other_send.len());
                        uvf::write(&c, other_send[o..oe].to_vec()).await.unwrap();
                    }
                    at = end;
                }
                uvf::shutdown(&a).await.unwrap();
                uvf::shutdown(&c).await.unwrap();
            };
            // Reads of several sizes: into the caller's buffer at once, through
            // the wrapper's buffer, and by `read_to_end`.
            let reader = async {
                let mut s = AsyncStream::new(b);
                uv_tests::read_in_pieces(&mut s, &[1, 100_000, 7, 65_536, 200_000, 4096, 3]).await
            };
            futures::join!(writer, reader).1
        })
        .unwrap();
    lp.run(uv::RunMode::Default).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the wrapper's bytes differ");
    let seen = seen.borrow();
    let mut expect = Vec::new();
    for i in (0..).step_by(3) {
        if expect.len() == seen.len() || i >= 1000 {
            break;
        }
        let o = (i * 10_000) % other.len();
        let oe = (o + 10_000).min(other.len());
        expect.extend_from_slice(&other[o..oe]);
    }
    assert!(!seen.is_empty());
    assert!(*seen == expect, "the other stream's bytes differ");
}
