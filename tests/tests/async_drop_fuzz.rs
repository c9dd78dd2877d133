//! Randomized drops: for many seeds, tasks start random operations of every kind
//! (sleep, timeout, write, shutdown, connect, read chunks, AsyncStream read and
//! write, accept, UDP receive, fs and DNS requests, signals, fs events, spawned
//! tasks) and drop each future after a random number of polls (0 to 4, with loop
//! iterations in between), or the whole loop while they are pending. Afterwards
//! the loop must run out of work, hold no handle, and close; under valgrind
//! (`bash tests/valgrind.sh async_drop_fuzz`) no error and no leak.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::StreamExt;
use uv::future::{self as uvf, AsyncStream};
use uv::{Loop, LoopHandle, RunMode};
use uv_tests::net::TempDir;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Polls `fut` at most `polls` times, yielding to the loop between polls, then
/// drops it (or returns when it completed first).
struct PollLimit {
    fut: Pin<Box<dyn Future<Output = ()>>>,
    polls: u32,
}

impl Future for PollLimit {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.polls == 0 {
            return Poll::Ready(());
        }
        self.polls -= 1;
        match self.fut.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(()),
            Poll::Pending => {
                // Come back after a loop iteration even if nothing wakes us.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

/// Everything an operation may need.
struct World {
    lh: LoopHandle,
    pipe_a: uv::Pipe,
    pipe_b: uv::Pipe,
    server_addr: std::net::SocketAddr,
    udp: uv::Udp,
    dir: Rc<TempDir>,
}

fn operation(w: &World, kind: u64) -> Pin<Box<dyn Future<Output = ()>>> {
    let lh = w.lh.clone();
    match kind {
        0 => Box::pin(async move {
            let _ = uvf::sleep(&lh, Duration::from_millis(1)).await;
        }),
        1 => {
            let t = uvf::timeout(&lh, Duration::ZERO, uvf::sleep(&lh, Duration::from_secs(5)));
            Box::pin(async move {
                let _ = t.await;
            })
        }
        2 => {
            let f = uvf::write(&w.pipe_a, vec![7u8; 70_000]);
            Box::pin(async move {
                let _ = f.await;
            })
        }
        3 => {
            let mut rd = uvf::read_chunks(w.pipe_b.clone());
            Box::pin(async move {
                let _ = rd.next().await;
            })
        }
        4 => {
            let tcp = uv::Tcp::new(&lh).unwrap();
            let f = uvf::connect(&tcp, w.server_addr);
            Box::pin(async move {
                if f.await.is_ok() {
                    let mut s = AsyncStream::new(tcp);
                    let _ = s.write_all(b"hi").await;
                    let mut b = [0u8; 2];
                    let _ = s.read(&mut b).await;
                }
            })
        }
        5 => {
            let mut s = AsyncStream::new(w.pipe_b.clone());
            Box::pin(async move {
                let mut b = [0u8; 16];
                let _ = s.read(&mut b).await;
            })
        }
        6 => {
            let p = w.dir.path().to_path_buf();
            let f = uv::Fs::stat_async(&lh, p);
            Box::pin(async move {
                let _ = f.await;
            })
        }
        7 => {
            let hints = uv::AddrInfoHints::default().with_flags(uv::AddrInfoFlags::NUMERICHOST);
            let f = uvf::getaddrinfo(&lh, Some("127.0.0.1"), None, &hints);
            Box::pin(async move {
                let _ = f.await;
            })
        }
        8 => {
            let mut rx = uvf::recv_from(&w.udp);
            let addr = w.udp.local_addr().unwrap();
            let send = uvf::send_to(&w.udp, "d", Some(addr));
            Box::pin(async move {
                let _ = send.await;
                let _ = rx.next().await;
            })
        }
        9 => {
            let sig = uvf::signals(&lh, uv::Signum::User2);
            Box::pin(async move {
                if let Ok(mut s) = sig {
                    let _ = s.next().await;
                }
            })
        }
        10 => {
            let ev = uvf::fs_events(&lh, w.dir.path(), uv::FsEventFlags::empty());
            let file = w.dir.join("f");
            Box::pin(async move {
                let _ = std::fs::write(file, "x");
                if let Ok(mut ev) = ev {
                    let _ = ev.next().await;
                }
            })
        }
        11 => {
            let l2 = lh.clone();
            let inner = lh.spawn_local(async move {
                let _ = uvf::sleep(&l2, Duration::from_millis(2)).await;
            });
            Box::pin(async move {
                if let Ok(h) = inner {
                    let _ = h.await;
                }
            })
        }
        12 => {
            let f = uvf::shutdown(&w.pipe_a);
            Box::pin(async move {
                let _ = f.await;
            })
        }
        _ => {
            let mut s = AsyncStream::new(w.pipe_a.clone());
            Box::pin(async move {
                let _ = s.write_all(&[1u8; 100_000]).await;
                let _ = s.flush().await;
            })
        }
    }
}

fn round(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let lp = Loop::new().unwrap();
    let (pipe_a, pipe_b) = uv::Pipe::pair(&lp).unwrap();
    let (server, server_addr) = uv_tests::net::bound_tcp(&lp);
    let mut inc = uvf::incoming(server, 16).unwrap();
    let udp = uv::Udp::new(&lp).unwrap();
    udp.bind("127.0.0.1:0".parse().unwrap(), uv::UdpFlags::empty())
        .unwrap();
    let w = World {
        lh: lp.handle(),
        pipe_a,
        pipe_b,
        server_addr,
        udp,
        dir: Rc::new(TempDir::new("async-drop-fuzz")),
    };
    // The server echoes a little on each connection, until the round ends.
    let lh = lp.handle();
    let accept_polls = rng.below(6) as u32 + 1;
    let server_task = lp
        .spawn_local(PollLimit {
            fut: Box::pin(async move {
                while let Some(Ok(c)) = inc.next().await {
                    drop(lh.spawn_local(async move {
                        let mut s = AsyncStream::new(c);
                        let mut b = [0u8; 2];
                        if s.read_exact(&mut b).await.is_ok() {
                            let _ = s.write_all(&b).await;
                        }
                    }));
                }
            }),
            polls: accept_polls,
        })
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..(4 + rng.below(8)) {
        let kind = rng.below(14);
        let polls = rng.below(5) as u32;
        let fut = operation(&w, kind);
        tasks.push(lp.spawn_local(PollLimit { fut, polls }).unwrap());
    }
    // Some rounds drop the loop mid-way, others let every task end first.
    match rng.below(3) {
        0 => {
            for _ in 0..rng.below(4) {
                lp.run(RunMode::NoWait).unwrap();
            }
            drop(w);
            drop(tasks);
            drop(server_task);
            drop(lp);
        }
        _ => {
            let all = futures::future::join_all(tasks);
            let outs = lp.block_on(all).unwrap();
            assert!(outs.iter().all(|o| o.is_ok()), "seed {seed}: {outs:?}");
            server_task.abort();
            w.pipe_a.close();
            w.pipe_b.close();
            w.udp.close();
            drop(w);
            // Whatever is left (ignored writes, cancelled requests) completes.
            lp.run(RunMode::Default).unwrap();
            assert_eq!(lp.handle_count(), 0, "seed {seed}");
            lp.close().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
    }
}

#[test]
fn futures_dropped_at_random_points() {
    let rounds: u64 = std::env::var("UV_ASYNC_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    for seed in 0..rounds {
        round(seed);
    }
}
