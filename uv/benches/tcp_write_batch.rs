//! Write-queue cost: once connected, the client queues 1,000,000 writes of
//! "Hello, world." (13 bytes) on one connection, then a shutdown; the loop runs
//! until every write callback fired, the shutdown completed and the client closed,
//! while a server in the same loop reads and discards everything and closes on EOF
//! (libuv's `benchmark-tcp-write-batch.c`, whose blackhole server is another
//! process).
//!
//! Runs the safe `uv` version and a raw libuv-sys2 twin, each in its own process,
//! and prints CPU time, wall time and peak memory with the uv/raw ratios
//! (see `common/mod.rs` for the options). Both count write callbacks in the same
//! plain static, as the C benchmark does; the count is that number.
//!
//! What the two do differently, as their users would: each uv write points at the
//! static string (`WriteData::Static`, no copy) and gets a request allocation of
//! its own; the raw twin, like the C benchmark, allocates one array of write
//! requests up front and points every request at the one static string.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uv::Stream as _;

use uv::sys;

mod common;

use common::rawnet::{self, check};
use common::{since, Bench, Case, Outcome, Rate, Variant};

const NUM_WRITES: u64 = 1_000_000;
const DATA: &[u8] = b"Hello, world.";
const READ_BUF: usize = 64 * 1024;

static WRITE_CB_CALLED: AtomicU64 = AtomicU64::new(0);
static RECEIVED: AtomicU64 = AtomicU64::new(0);

/// A plain (non-atomic read-modify-write) add: the benchmark is single-threaded,
/// and the C benchmark uses a plain `int`.
#[inline]
fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

fn main() -> ExitCode {
    common::main_cases(&[Case {
        bench: Bench {
            name: "tcp_write_batch",
            unit: "write callbacks",
            full_count: NUM_WRITES,
            note: "queue = the loop that queues the writes (in the connect callback); \
                   run = the whole loop run",
            expected: |n| n,
            run,
        },
        rate: Some(Rate {
            unit: "writes",
            per_count: 1.0,
            phase: "run",
        }),
    }])
}

fn run(variant: Variant, n: u64) -> Outcome {
    common::watchdog("tcp_write_batch", Duration::from_secs(120));
    let phases = match variant {
        Variant::Raw => raw(n),
        Variant::Uv => safe(n),
    };
    let received = RECEIVED.load(Ordering::Relaxed);
    assert_eq!(received, n * DATA.len() as u64, "bytes the server received");
    Outcome {
        count: WRITE_CB_CALLED.load(Ordering::Relaxed),
        phases,
    }
}

/// The safe version, written the way a user would.
fn safe(n: u64) -> Vec<(&'static str, f64)> {
    let lp = uv::Loop::new().expect("uv::Loop::new");

    // The blackhole server: one connection, read and discarded, closed on EOF.
    let server = uv::Tcp::new(&lp).expect("uv::Tcp::new");
    server
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)), uv::TcpFlags::empty())
        .expect("bind");
    let addr = server.local_addr().expect("sockname");
    let lh = lp.handle();
    server
        .listen(128, move |srv, status| {
            status.expect("connection");
            let conn = uv::Tcp::new(&lh).expect("uv::Tcp::new");
            srv.accept_into(&conn).expect("accept");
            conn.read_start(|c, data| match data {
                Ok(bytes) => add(&RECEIVED, bytes.len() as u64),
                Err(e) if e.code() == uv::StatusCode::EOF => c.close(),
                Err(e) => panic!("server read: {e}"),
            })
            .expect("read_start");
            srv.close();
        })
        .expect("listen");

    let queue_secs = Rc::new(Cell::new(0.0));
    let queue_out = Rc::clone(&queue_secs);
    let client = uv::Tcp::new(&lp).expect("uv::Tcp::new");
    client
        .connect(addr, move |c, r| {
            r.expect("connect");
            let t = Instant::now();
            for _ in 0..n {
                c.write(uv::WriteData::Static(DATA), |_, r| {
                    r.expect("write");
                    add(&WRITE_CB_CALLED, 1);
                })
                .expect("write");
            }
            c.shutdown(|c, r| {
                r.expect("shutdown");
                assert_eq!(c.write_queue_size(), 0, "write queue after shutdown");
                c.close();
            })
            .expect("shutdown");
            queue_out.set(since(t));
        })
        .expect("connect");

    let t = Instant::now();
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let run = since(t);

    drop((server, client));
    drop(lp);
    vec![("queue", queue_secs.get()), ("run", run)]
}

#[path = "common/tcp_write_batch_raw.rs"]
mod tcp_write_batch_raw;
use tcp_write_batch_raw::raw;
