//! The async twin of `tcp_write_batch`: once connected, the client queues
//! 1,000,000 writes of "Hello, world." (13 bytes) on one connection, then a
//! shutdown, written with `uv::future`: `uv::future::write_each` submits each
//! item as a write of its own (`uv_write`, as the raw loop does) and gives one
//! future for the batch, which resolves to the number of writes once the last
//! completed (a user with a batch of messages to send writes it so: no future per
//! write to keep and await); then the shutdown future; a server task reads and
//! discards everything (`AsyncStream::read_chunk`, which hands the received
//! bytes over without a copy, as the raw server reads them in place) and closes
//! on end of stream.
//!
//! Runs this async version and the raw libuv-sys2 twin of `tcp_write_batch` (the
//! same code), each in its own process, and prints CPU time, wall time and peak
//! memory with the uv/raw ratios (see `common/mod.rs`). The ratio against the
//! callback version is this table's uv/raw divided by `tcp_write_batch`'s;
//! `bash uv/benches/instructions.sh tcp_write_batch async_tcp_write_batch` gives
//! it exactly. Both versions count write completions in the same plain static.
//!
//! What the async version does per write beyond the callback one: each request's
//! callback counts the write completed in the stream's write tracker (found in
//! the stream's slots, shared by the writes: no allocation per write, nothing
//! captured), and the batch counts each write submitted in the same tracker.
//! The completions are counted as the batch's result (the same count: the
//! batch resolves once every write's callback ran).

use futures::StreamExt;
use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;
use uv::future::{self as uvf, AsyncStream};
use uv::Stream as _;

#[path = "common/tcp_write_batch.rs"]
mod batch;
mod common;

use batch::{add, DATA, READ_BUF, RECEIVED, WRITE_CB_CALLED};
use common::{since, uvnet, Outcome, Variant};

fn main() -> ExitCode {
    common::main_cases(&[batch::case(
        "async_tcp_write_batch",
        "async; queue = write_each making the writes (one future for the batch); \
                   run = from the connect to the end",
        run,
    )])
}

fn run(variant: Variant, n: u64) -> Outcome {
    batch::run("async_tcp_write_batch", variant, n, safe)
}

/// The async version, written the way a user would.
fn safe(n: u64) -> Vec<(&'static str, f64)> {
    let lp = uv::Loop::new().expect("uv::Loop::new");

    // The blackhole server: one connection, read and discarded, closed on EOF.
    let (server, addr) = uvnet::bound_tcp(&lp);
    let mut incoming = uvf::incoming(server, 128).expect("listen");
    let server_task = lp
        .spawn_local(async move {
            let conn = incoming.next().await.expect("listening").expect("accept");
            drop(incoming);
            let mut s = AsyncStream::new(conn);
            // Each chunk is handed back as the buffer of the reads to come.
            let mut chunk = Vec::with_capacity(READ_BUF);
            loop {
                chunk = s.read_chunk(chunk).await.expect("server read");
                if chunk.is_empty() {
                    break;
                }
                add(&RECEIVED, chunk.len() as u64);
            }
            s.into_inner().close();
        })
        .expect("spawn_local");

    let queue_secs = Rc::new(Cell::new(0.0));
    let client = uv::Tcp::new(&lp).expect("uv::Tcp::new");
    let t = Instant::now();
    lp.block_on(async {
        uvf::connect(&client, addr).await.expect("connect");
        let q = Instant::now();
        let writes = uvf::write_each(&client, (0..n).map(|_| uv::WriteData::Static(DATA)));
        let shutdown = uvf::shutdown(&client);
        queue_secs.set(since(q));
        let written = writes.await.expect("writes");
        add(&WRITE_CB_CALLED, written as u64);
        shutdown.await.expect("shutdown");
        assert_eq!(client.write_queue_size(), 0, "write queue after shutdown");
        client.close();
    })
    .expect("block_on");
    lp.block_on(server_task)
        .expect("block_on")
        .expect("server task");
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let run = since(t);

    drop(client);
    drop(lp);
    vec![("queue", queue_secs.get()), ("run", run)]
}
