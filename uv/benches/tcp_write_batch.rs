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
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;
use uv::Stream as _;

#[path = "common/tcp_write_batch.rs"]
mod batch;
mod common;

use batch::{add, DATA, RECEIVED, WRITE_CB_CALLED};
use common::{since, uvnet, Outcome, Variant};

fn main() -> ExitCode {
    common::main_cases(&[batch::case(
        "tcp_write_batch",
        "queue = the loop that queues the writes (in the connect callback); \
                   run = the whole loop run",
        run,
    )])
}

fn run(variant: Variant, n: u64) -> Outcome {
    batch::run("tcp_write_batch", variant, n, safe)
}

/// The safe version, written the way a user would.
fn safe(n: u64) -> Vec<(&'static str, f64)> {
    let lp = uv::Loop::new().expect("uv::Loop::new");

    // The blackhole server: one connection, read and discarded, closed on EOF.
    let (server, addr) = uvnet::bound_tcp(&lp);
    let lh = lp.handle();
    server
        .listen(128, move |srv, status| {
            status.expect("connection");
            let conn = uvnet::accept(srv, &lh);
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
