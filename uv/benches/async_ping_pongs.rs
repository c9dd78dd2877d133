//! The async twin of `ping_pongs`: the same 100,000 round trips of "PING\n" over
//! loopback TCP between a client and an echo server in one loop, written with
//! `uv::future`: the server is a task (`incoming`, then `AsyncStream` reads and
//! `write_all`s), the client runs in `block_on` (`connect`, `write_all`,
//! `read`), and at the end the client closes its write side, the server closes on
//! end of stream and the client on the server's.
//!
//! Runs this async version and the raw libuv-sys2 twin of `ping_pongs` (the same
//! code), each in its own process, and prints CPU time, wall time and peak memory
//! with the uv/raw ratios (see `common/mod.rs`). The ratio against the callback
//! version is this table's uv/raw divided by `ping_pongs`' (same raw twin); the
//! instruction script gives it exactly: `bash uv/benches/instructions.sh
//! ping_pongs async_ping_pongs`.
//!
//! What the async version does per round trip beyond the callback one: each read
//! wakes a task (a queue push; the task runs in the loop's check phase of the same
//! iteration) and is copied twice (into the `AsyncStream`'s buffer, then into the
//! reader's); each write is a `uv_try_write` (no request) when the socket takes
//! it, which the callback version's `write` does not do.

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::StreamExt;
use std::process::ExitCode;
use std::time::Instant;
use uv::future::{self as uvf, AsyncStream};

mod common;
#[path = "common/ping_pongs.rs"]
mod pp;

use common::{since, uvnet, Outcome, Variant};
use pp::{PING, READ_BUF};

fn main() -> ExitCode {
    common::main_cases(&[pp::case(
        "async_ping_pongs",
        "async: one client and an echo server task in one loop, loopback TCP, 5-byte messages",
        run,
    )])
}

fn run(variant: Variant, n: u64) -> Outcome {
    pp::run("async_ping_pongs", variant, n, safe)
}

/// The async version, written the way a user would.
fn safe(limit: u64) -> Outcome {
    let lp = uv::Loop::new().expect("uv::Loop::new");

    // The echo server: accepts one connection, then stops listening.
    let (server, addr) = uvnet::bound_tcp(&lp);
    let mut incoming = uvf::incoming(server, 128).expect("listen");
    let server_task = lp
        .spawn_local(async move {
            let conn = incoming.next().await.expect("listening").expect("accept");
            drop(incoming); // closes the listening handle
            let mut s = AsyncStream::new(conn);
            let mut buf = vec![0u8; READ_BUF];
            loop {
                let n = s.read(&mut buf).await.expect("server read");
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await.expect("echo write");
            }
            s.into_inner().close();
        })
        .expect("spawn_local");

    // The client: counts the pings that come back, sends the next one each time.
    let client = uv::Tcp::new(&lp).expect("uv::Tcp::new");
    let t = Instant::now();
    let pongs = lp
        .block_on(async {
            uvf::connect(&client, addr).await.expect("connect");
            let mut s = AsyncStream::new(client.clone());
            let mut buf = vec![0u8; READ_BUF];
            let (mut pongs, mut state) = (0u64, 0usize);
            s.write_all(PING).await.expect("ping write");
            'outer: loop {
                let n = s.read(&mut buf).await.expect("client read");
                assert!(n > 0, "EOF before the last pong");
                for &b in &buf[..n] {
                    assert_eq!(b, PING[state], "echoed byte");
                    state = (state + 1) % PING.len();
                    if state == 0 {
                        pongs += 1;
                        if pongs == limit {
                            break 'outer;
                        }
                        s.write_all(PING).await.expect("ping write");
                    }
                }
            }
            s.close().await.expect("shutdown");
            assert_eq!(s.read(&mut buf).await.expect("client read"), 0, "EOF");
            s.into_inner().close();
            pongs
        })
        .expect("block_on");
    lp.block_on(server_task)
        .expect("block_on")
        .expect("server task");
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let run = since(t);

    drop(client);
    drop(lp);
    Outcome {
        count: pongs,
        phases: vec![("run", run)],
    }
}
