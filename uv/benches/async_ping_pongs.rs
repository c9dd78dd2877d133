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
use std::cell::{Cell, RefCell};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use uv::future::{self as uvf, AsyncStream};

use uv::sys;

mod common;

use common::rawnet::{self, check};
use common::{since, Bench, Case, Outcome, Rate, Variant};

const ROUND_TRIPS: u64 = 100_000;
const PING: &[u8; 5] = b"PING\n";
/// Read buffers of the raw twin (libuv suggests 64 KiB, as the uv loop's buffer).
const READ_BUF: usize = 64 * 1024;

fn main() -> ExitCode {
    common::main_cases(&[Case {
        bench: Bench {
            name: "async_ping_pongs",
            unit: "round trips",
            full_count: ROUND_TRIPS,
            note: "async: one client and an echo server task in one loop, loopback TCP, 5-byte messages",
            expected: |n| n,
            run,
        },
        rate: Some(Rate {
            unit: "round trips",
            per_count: 1.0,
            phase: "run",
        }),
    }])
}

fn run(variant: Variant, n: u64) -> Outcome {
    common::watchdog("async_ping_pongs", Duration::from_secs(120));
    match variant {
        Variant::Raw => raw(n),
        Variant::Uv => safe(n),
    }
}

/// The async version, written the way a user would.
fn safe(limit: u64) -> Outcome {
    let lp = uv::Loop::new().expect("uv::Loop::new");

    // The echo server: accepts one connection, then stops listening.
    let server = uv::Tcp::new(&lp).expect("uv::Tcp::new");
    server
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)), uv::TcpFlags::empty())
        .expect("bind");
    let addr = server.local_addr().expect("sockname");
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

/// The raw twin's state; the loop's `data` points at it.
struct RawPing {
    limit: u64,
    pongs: Cell<u64>,
    /// Where the client is in the message it is reading.
    state: Cell<usize>,
    /// The server's free read buffers.
    free_bufs: RefCell<Vec<*mut u8>>,
    /// Every read buffer made, freed at the end.
    all_bufs: RefCell<Vec<*mut u8>>,
    /// The client's read buffer (it never keeps what it reads).
    slab: *mut u8,
}

/// The state, from any handle of the raw twin's loop.
///
/// # Safety
/// `h` must be a handle of the loop `raw` made, while `raw` runs it.
unsafe fn ctx<'a>(h: *const sys::uv_handle_t) -> &'a RawPing {
    // SAFETY: `raw` set the loop's `data` to its RawPing, which outlives the run;
    // only shared references are made (the fields are cells).
    unsafe { &*((*(*h).loop_).data as *const RawPing) }
}

unsafe extern "C" fn server_alloc(h: *mut sys::uv_handle_t, _size: usize, buf: *mut sys::uv_buf_t) {
    // SAFETY: libuv passes a handle of our loop.
    let st = unsafe { ctx(h) };
    let base = st.free_bufs.borrow_mut().pop().unwrap_or_else(|| {
        let b = Box::into_raw(Box::<[u8]>::new_uninit_slice(READ_BUF)).cast::<u8>();
        st.all_bufs.borrow_mut().push(b);
        b
    });
    // SAFETY: libuv passes a writable uv_buf_t.
    unsafe {
        *buf = sys::uv_buf_t {
            base: base.cast(),
            len: READ_BUF,
        }
    };
}

unsafe extern "C" fn echo_written(req: *mut sys::uv_write_t, status: i32) {
    check(status, "echo write");
    // SAFETY: `req` is the request `server_read` made, whose `data` is the read
    // buffer the echo was written from; the handle is open while writes complete.
    unsafe {
        ctx((*req).handle.cast())
            .free_bufs
            .borrow_mut()
            .push((*req).data.cast());
        rawnet::free_req(req);
    }
}

unsafe extern "C" fn server_read(
    s: *mut sys::uv_stream_t,
    nread: isize,
    buf: *const sys::uv_buf_t,
) {
    // SAFETY: libuv passes a handle of our loop and the buffer `server_alloc` lent.
    let (st, base) = unsafe { (ctx(s.cast()), (*buf).base) };
    if nread > 0 {
        let req = rawnet::new_req::<sys::uv_write_t>();
        let echo = sys::uv_buf_t {
            base,
            len: nread as usize,
        };
        // SAFETY: `s` is the open connection; the request and the read buffer stay
        // put until `echo_written`, which frees the one and takes the other back.
        unsafe {
            (*req).data = base.cast();
            check(
                sys::uv_write(req, s, &echo, 1, Some(echo_written)),
                "uv_write",
            );
        }
        return;
    }
    if !base.is_null() {
        st.free_bufs.borrow_mut().push(base.cast());
    }
    if nread == sys::uv_errno_t_UV_EOF as isize {
        // SAFETY: `s` is an open handle made by `new_tcp`.
        unsafe { sys::uv_close(s.cast(), Some(rawnet::close_free)) };
    } else {
        check(nread as i32, "server read");
    }
}

unsafe extern "C" fn on_connection(server: *mut sys::uv_stream_t, status: i32) {
    check(status, "connection");
    // SAFETY: `server` is the listening handle of our loop; the connection is a
    // fresh handle on the same loop; the server (made by `new_tcp`) is closed once.
    unsafe {
        let conn = rawnet::new_tcp((*server).loop_);
        check(sys::uv_accept(server, conn.cast()), "uv_accept");
        check(
            sys::uv_read_start(conn.cast(), Some(server_alloc), Some(server_read)),
            "uv_read_start",
        );
        sys::uv_close(server.cast(), Some(rawnet::close_free));
    }
}

unsafe extern "C" fn ping_written(req: *mut sys::uv_write_t, status: i32) {
    check(status, "ping write");
    // SAFETY: made by `write_ping`, finished.
    unsafe { rawnet::free_req(req) };
}

/// Writes the static PING (no copy: the request points at it).
///
/// # Safety
/// `s` must be the open, connected client.
unsafe fn write_ping(s: *mut sys::uv_stream_t) {
    let req = rawnet::new_req::<sys::uv_write_t>();
    let buf = sys::uv_buf_t {
        base: PING.as_ptr() as *mut _,
        len: PING.len(),
    };
    // SAFETY: per the contract; the request stays put until `ping_written` and
    // the bytes are static.
    check(
        unsafe { sys::uv_write(req, s, &buf, 1, Some(ping_written)) },
        "uv_write",
    );
}

unsafe extern "C" fn client_alloc(h: *mut sys::uv_handle_t, _size: usize, buf: *mut sys::uv_buf_t) {
    // SAFETY: libuv passes a handle of our loop and a writable uv_buf_t.
    unsafe {
        *buf = sys::uv_buf_t {
            base: ctx(h).slab.cast(),
            len: READ_BUF,
        }
    };
}

unsafe extern "C" fn shut_down(req: *mut sys::uv_shutdown_t, status: i32) {
    check(status, "shutdown");
    // SAFETY: made by `client_read`, finished.
    unsafe { rawnet::free_req(req) };
}

unsafe extern "C" fn client_read(
    s: *mut sys::uv_stream_t,
    nread: isize,
    buf: *const sys::uv_buf_t,
) {
    // SAFETY: libuv passes a handle of our loop.
    let st = unsafe { ctx(s.cast()) };
    if nread < 0 {
        assert_eq!(nread, sys::uv_errno_t_UV_EOF as isize, "client read");
        // SAFETY: `s` is the open client, made by `new_tcp`.
        unsafe { sys::uv_close(s.cast(), Some(rawnet::close_free)) };
        return;
    }
    // SAFETY: libuv wrote `nread` bytes into the slab `client_alloc` lent.
    let bytes = unsafe { std::slice::from_raw_parts((*buf).base as *const u8, nread as usize) };
    for &b in bytes {
        let state = st.state.get();
        assert_eq!(b, PING[state], "echoed byte");
        st.state.set((state + 1) % PING.len());
        if state + 1 == PING.len() {
            let n = st.pongs.get() + 1;
            st.pongs.set(n);
            if n == st.limit {
                let req = rawnet::new_req::<sys::uv_shutdown_t>();
                // SAFETY: `s` is the open client; the request stays put until
                // `shut_down`.
                check(
                    unsafe { sys::uv_shutdown(req, s, Some(shut_down)) },
                    "uv_shutdown",
                );
                break;
            }
            // SAFETY: `s` is the open, connected client.
            unsafe { write_ping(s) };
        }
    }
}

unsafe extern "C" fn connected(req: *mut sys::uv_connect_t, status: i32) {
    check(status, "connect");
    // SAFETY: made by `raw`, finished; its handle is the open client.
    unsafe {
        let s = (*req).handle;
        rawnet::free_req(req);
        write_ping(s);
        check(
            sys::uv_read_start(s, Some(client_alloc), Some(client_read)),
            "uv_read_start",
        );
    }
}

/// The raw libuv-sys2 twin.
fn raw(limit: u64) -> Outcome {
    let lp = rawnet::new_loop();
    let st = Box::new(RawPing {
        limit,
        pongs: Cell::new(0),
        state: Cell::new(0),
        free_bufs: RefCell::new(Vec::new()),
        all_bufs: RefCell::new(Vec::new()),
        slab: Box::into_raw(Box::<[u8]>::new_uninit_slice(READ_BUF)).cast(),
    });
    let server = rawnet::new_tcp(lp);
    let client = rawnet::new_tcp(lp);
    // SAFETY: the loop and both handles are initialised and stay put; the state box
    // outlives the run (the callbacks reach it through the loop's `data`).
    unsafe {
        (*lp).data = (&*st as *const RawPing).cast_mut().cast();
        let addr = rawnet::bind_loopback(server);
        check(
            sys::uv_listen(server.cast(), 128, Some(on_connection)),
            "uv_listen",
        );
        let req = rawnet::new_req::<sys::uv_connect_t>();
        check(
            sys::uv_tcp_connect(req, client, rawnet::sa(&addr), Some(connected)),
            "uv_tcp_connect",
        );
    }

    let t = Instant::now();
    // SAFETY: `lp` is an initialised loop, not running.
    unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
    let run = since(t);

    // SAFETY: every handle closed itself (close_free freed them), so the loop has
    // none left; no buffer is in use any more.
    unsafe {
        rawnet::close_loop(lp);
        for b in st.all_bufs.take() {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                b.cast::<MaybeUninit<u8>>(),
                READ_BUF,
            )));
        }
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            st.slab.cast::<MaybeUninit<u8>>(),
            READ_BUF,
        )));
    }
    Outcome {
        count: st.pongs.get(),
        phases: vec![("run", run)],
    }
}
