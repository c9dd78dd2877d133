//! Round-trip latency over loopback TCP: one client sends "PING\n", an echo server
//! in the same loop (and process) sends it back, and the client sends the next one
//! when the whole message is back; 100,000 round trips, then the client shuts its
//! side down, the server closes on EOF and the client on the server's EOF (libuv's
//! `benchmark-ping-pongs.c`, which pings for 5 seconds against an echo server in
//! another process).
//!
//! Runs the safe `uv` version and a raw libuv-sys2 twin, each in its own process,
//! and prints CPU time, wall time and peak memory with the uv/raw ratios
//! (see `common/mod.rs` for the options). The count is the client's round trips.
//!
//! What the two do differently, as their users would: the uv client writes `PING`
//! (copied into a request-owned buffer per write) and the uv server echoes the
//! `&[u8]` it read from the loop's read buffer (copied likewise); the raw client
//! points every write at the one static `PING`, and the raw server (like the C
//! benchmark's allocator) reads into buffers from a free list and writes the echo
//! straight from the buffer it read into, which goes back to the list when the
//! write is done.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;
use uv::Stream as _;

mod common;
#[path = "common/ping_pongs.rs"]
mod pp;

use common::{since, uvnet, Outcome, Variant};
use pp::PING;

fn main() -> ExitCode {
    common::main_cases(&[pp::case(
        "ping_pongs",
        "one client and an echo server in one loop, loopback TCP, 5-byte messages",
        run,
    )])
}

fn run(variant: Variant, n: u64) -> Outcome {
    pp::run("ping_pongs", variant, n, safe)
}

/// The safe version, written the way a user would.
fn safe(limit: u64) -> Outcome {
    let lp = uv::Loop::new().expect("uv::Loop::new");

    // The echo server: accepts one connection, then stops listening.
    let (server, addr) = uvnet::bound_tcp(&lp);
    let lh = lp.handle();
    server
        .listen(128, move |srv, status| {
            status.expect("connection");
            let conn = uvnet::accept(srv, &lh);
            conn.read_start(|c, data| match data {
                Ok(bytes) => c
                    .write(bytes, |_, r| r.expect("echo write"))
                    .expect("write"),
                Err(e) if e.code() == uv::StatusCode::EOF => c.close(),
                Err(e) => panic!("server read: {e}"),
            })
            .expect("read_start");
            srv.close();
        })
        .expect("listen");

    // The client: counts the pings that come back, sends the next one each time.
    let pongs = Rc::new(Cell::new(0u64));
    let counter = Rc::clone(&pongs);
    let client = uv::Tcp::new(&lp).expect("uv::Tcp::new");
    client
        .connect(addr, move |c, r| {
            r.expect("connect");
            c.write(PING, |_, r| r.expect("ping write")).expect("write");
            let mut state = 0;
            c.read_start(move |c, data| match data {
                Ok(bytes) => {
                    for &b in bytes {
                        assert_eq!(b, PING[state], "echoed byte");
                        state = (state + 1) % PING.len();
                        if state == 0 {
                            let n = counter.get() + 1;
                            counter.set(n);
                            if n == limit {
                                c.shutdown(|_, r| r.expect("shutdown")).expect("shutdown");
                                break;
                            }
                            c.write(PING, |_, r| r.expect("ping write")).expect("write");
                        }
                    }
                }
                Err(e) if e.code() == uv::StatusCode::EOF => c.close(),
                Err(e) => panic!("client read: {e}"),
            })
            .expect("read_start");
        })
        .expect("connect");

    let t = Instant::now();
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let run = since(t);

    drop((server, client));
    drop(lp);
    Outcome {
        count: pongs.get(),
        phases: vec![("run", run)],
    }
}
