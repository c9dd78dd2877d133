//! Connection set-up and tear-down over loopback TCP: 30,000 connections, at most
//! 100 at a time. Each client connects, starts reading and writes "QS"; the server
//! in the same loop (and process) accepts, reads, and closes the connection when
//! the data comes (as libuv's echo server does on "QS"); the client closes on the
//! resulting EOF and, from its close callback, starts the next connection until
//! all are started (libuv's `benchmark-pound.c`, `tcp4_pound_100`, which pounds for
//! 10 seconds against an echo server in another process).
//!
//! Runs the safe `uv` version and a raw libuv-sys2 twin, each in its own process,
//! and prints CPU time, wall time and peak memory with the uv/raw ratios
//! (see `common/mod.rs` for the options). The count is the server's accepts.
//!
//! What the two do differently, as their users would: the uv client makes a new
//! handle per connection (a handle value cannot be reused after close), writes
//! "QS" (copied into the request) and closes with a capturing close callback; the
//! raw twin, like the C benchmark, reuses 100 fixed client slots (handle, connect
//! and write request) and points every write at the one static "QS".

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;
use uv::Stream as _;

use uv::sys;

mod common;

use common::rawnet::{self, check};
use common::{since, uvnet, Bench, Case, Outcome, Rate, Variant};

const NUM_CONNECTIONS: u64 = 30_000;
const CONCURRENCY: usize = 100;
const QS: &[u8] = b"QS";
const READ_BUF: usize = 64 * 1024;

fn main() -> ExitCode {
    common::main_cases(&[Case {
        bench: Bench {
            name: "tcp_pound",
            unit: "accepts",
            full_count: NUM_CONNECTIONS,
            note: "100 connections at a time; each: connect, write, server reads and closes, \
                   client reads EOF and closes",
            expected: |n| n,
            run,
        },
        rate: Rate::per_run("accepts"),
    }])
}

fn run(variant: Variant, n: u64) -> Outcome {
    common::run_net("tcp_pound", variant, n, raw, safe)
}

/// What both variants count.
#[derive(Debug, Default)]
struct Tally {
    /// Connections started (counting down from the total).
    to_start: Cell<u64>,
    accepted: Cell<u64>,
    /// Reads that ended in ECONNRESET, connects that failed (then retried).
    failed: Cell<u64>,
}

impl Tally {
    /// Takes one connection to start, if any is left.
    fn take(&self) -> bool {
        let n = self.to_start.get();
        if n == 0 {
            return false;
        }
        self.to_start.set(n - 1);
        true
    }

    fn outcome(&self, run: f64) -> Outcome {
        if self.failed.get() > 0 {
            eprintln!("tcp_pound: {} failed connections", self.failed.get());
        }
        Outcome {
            count: self.accepted.get(),
            phases: vec![("run", run)],
        }
    }
}

/// Starts one client connection (safe version); from its close callback, the next.
fn connect_one(lh: &uv::LoopHandle, addr: SocketAddr, tally: &Rc<Tally>) {
    if !tally.take() {
        return;
    }
    let c = uv::Tcp::new(lh).expect("uv::Tcp::new");
    let (lh, tally) = (lh.clone(), Rc::clone(tally));
    c.connect(addr, move |c, r| {
        if let Err(e) = r {
            eprintln!("tcp_pound: connect: {e}");
            tally.failed.set(tally.failed.get() + 1);
            tally.to_start.set(tally.to_start.get() + 1);
            c.close_with(move |_| connect_one(&lh, addr, &tally));
            return;
        }
        c.read_start(move |c, data| {
            match data {
                Err(e) if e.code() == uv::StatusCode::ECONNRESET => {
                    tally.failed.set(tally.failed.get() + 1);
                }
                Err(e) if e.code() != uv::StatusCode::EOF => panic!("client read: {e}"),
                _ => {}
            }
            let (lh, tally) = (lh.clone(), Rc::clone(&tally));
            c.close_with(move |_| connect_one(&lh, addr, &tally));
        })
        .expect("read_start");
        c.write(QS, |_, r| r.expect("client write")).expect("write");
    })
    .expect("connect");
}

/// The safe version, written the way a user would.
fn safe(n: u64) -> Outcome {
    let lp = uv::Loop::new().expect("uv::Loop::new");
    let tally = Rc::new(Tally::default());
    tally.to_start.set(n);

    // The server: accepts, closes each connection once it read from it.
    let (server, addr) = uvnet::bound_tcp(&lp);
    let lh = lp.handle();
    let server_tally = Rc::clone(&tally);
    server
        .listen(1000, move |srv, status| {
            status.expect("connection");
            let conn = uvnet::accept(srv, &lh);
            conn.read_start(|c, data| match data {
                Ok(_) => c.close(),
                Err(e) if e.code() == uv::StatusCode::EOF => c.close(),
                Err(e) if e.code() == uv::StatusCode::ECONNRESET => c.close(),
                Err(e) => panic!("server read: {e}"),
            })
            .expect("read_start");
            let a = server_tally.accepted.get() + 1;
            server_tally.accepted.set(a);
            if a == n {
                srv.close();
            }
        })
        .expect("listen");

    let t = Instant::now();
    let lh = lp.handle();
    for _ in 0..CONCURRENCY {
        connect_one(&lh, addr, &tally);
    }
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let run = since(t);

    drop(server);
    drop(lp);
    tally.outcome(run)
}

/// One client slot of the raw twin (the C benchmark's `tcp_conn_rec`), reused for
/// every connection it makes.
#[repr(C)]
struct Slot {
    tcp: sys::uv_tcp_t,
    connect_req: sys::uv_connect_t,
    write_req: sys::uv_write_t,
}

/// The raw twin's state; the loop's `data` points at it.
struct RawPound {
    tally: Tally,
    addr: sys::sockaddr_in,
    /// Connections to make.
    total: u64,
    /// The server's and the clients' read buffer (nobody keeps what it reads).
    slab: *mut u8,
}

rawnet::raw_state!(RawPound, slab: READ_BUF);

unsafe extern "C" fn server_read(
    s: *mut sys::uv_stream_t,
    nread: isize,
    _buf: *const sys::uv_buf_t,
) {
    if nread == 0 {
        return;
    }
    if nread < 0
        && nread != sys::uv_errno_t_UV_EOF as isize
        && nread != sys::uv_errno_t_UV_ECONNRESET as isize
    {
        check(nread as i32, "server read");
    }
    // SAFETY: `s` is an open connection (its read callback is running), made by
    // `new_tcp`.
    unsafe { sys::uv_close(s.cast(), Some(rawnet::close_free)) };
}

unsafe extern "C" fn on_connection(server: *mut sys::uv_stream_t, status: i32) {
    check(status, "connection");
    // SAFETY: `server` is the listening handle of our loop; the connection is a
    // fresh handle on the same loop; the server (made by `new_tcp`) is closed once.
    unsafe {
        let st = ctx(server.cast());
        rawnet::accept_counting(
            server,
            Some(rawnet::slab_alloc::<RawPound>),
            Some(server_read),
            &st.tally.accepted,
            st.total,
        );
    }
}

unsafe extern "C" fn client_closed(h: *mut sys::uv_handle_t) {
    // SAFETY: `h` is the `tcp` field of a Slot (the first field of a repr(C)
    // struct, so the same address), closed, so it can be initialised again; its
    // `loop` field still names our loop.
    unsafe { make_connect((*h).loop_, h.cast()) };
}

unsafe extern "C" fn client_read(
    s: *mut sys::uv_stream_t,
    nread: isize,
    _buf: *const sys::uv_buf_t,
) {
    if nread == 0 {
        return;
    }
    if nread == sys::uv_errno_t_UV_ECONNRESET as isize {
        // SAFETY: a handle of our loop.
        let st = unsafe { ctx(s.cast()) };
        st.tally.failed.set(st.tally.failed.get() + 1);
    } else if nread < 0 && nread != sys::uv_errno_t_UV_EOF as isize {
        check(nread as i32, "client read");
    }
    // SAFETY: `s` is an open client (its read callback is running).
    unsafe { sys::uv_close(s.cast(), Some(client_closed)) };
}

unsafe extern "C" fn after_write(_req: *mut sys::uv_write_t, status: i32) {
    if status < 0 {
        check(status, "client write");
    }
}

unsafe extern "C" fn connected(req: *mut sys::uv_connect_t, status: i32) {
    // SAFETY: `req` is the `connect_req` of a Slot whose address its `data` holds;
    // the handle is that slot's open client.
    unsafe {
        let slot = (*req).data.cast::<Slot>();
        let s = (&raw mut (*slot).tcp).cast::<sys::uv_stream_t>();
        if status < 0 {
            let st = ctx(s.cast());
            eprintln!("tcp_pound: connect: {status}");
            st.tally.failed.set(st.tally.failed.get() + 1);
            st.tally.to_start.set(st.tally.to_start.get() + 1);
            sys::uv_close(s.cast(), Some(client_closed));
            return;
        }
        check(
            sys::uv_read_start(s, Some(rawnet::slab_alloc::<RawPound>), Some(client_read)),
            "uv_read_start",
        );
        let buf = sys::uv_buf_t {
            base: QS.as_ptr() as *mut _,
            len: QS.len(),
        };
        check(
            sys::uv_write(&raw mut (*slot).write_req, s, &buf, 1, Some(after_write)),
            "uv_write",
        );
    }
}

/// Starts the slot's next connection, if any is left.
///
/// # Safety
/// `lp` must be `raw`'s loop and `slot` a Slot of `raw`'s array whose handle is
/// closed or was never initialised.
unsafe fn make_connect(lp: *mut sys::uv_loop_t, slot: *mut Slot) {
    // SAFETY: per the contract, the slot is ours; its handle is initialised again
    // before use and its requests are not in flight; the loop's `data` is the state.
    unsafe {
        let st = &*((*lp).data as *const RawPound);
        if !st.tally.take() {
            return;
        }
        let tcp = &raw mut (*slot).tcp;
        check(sys::uv_tcp_init(lp, tcp), "uv_tcp_init");
        let req = &raw mut (*slot).connect_req;
        check(
            sys::uv_tcp_connect(req, tcp, rawnet::sa(&st.addr), Some(connected)),
            "uv_tcp_connect",
        );
        (*req).data = slot.cast();
    }
}

/// The raw libuv-sys2 twin, mirroring the C benchmark.
fn raw(n: u64) -> Outcome {
    let mut slab: Box<[MaybeUninit<u8>]> = Box::new_uninit_slice(READ_BUF);
    let mut slots: Box<[MaybeUninit<Slot>]> = Box::new_uninit_slice(CONCURRENCY);
    let lp = rawnet::new_loop();
    let server = rawnet::new_tcp(lp);
    // SAFETY: `server` is an initialised TCP handle.
    let addr = unsafe { rawnet::bind_loopback(server) };
    let st = Box::new(RawPound {
        tally: Tally::default(),
        addr,
        total: n,
        slab: slab.as_mut_ptr().cast(),
    });
    st.tally.to_start.set(n);
    // SAFETY: the loop and the server are initialised and stay put; the state box
    // outlives the run (the callbacks reach it through the loop's `data`).
    unsafe {
        rawnet::set_loop_state(lp, &*st);
        check(
            sys::uv_listen(server.cast(), 1000, Some(on_connection)),
            "uv_listen",
        );
    }

    let t = Instant::now();
    for slot in slots.iter_mut() {
        // SAFETY: the slots stay put until after the loop ran; none was initialised.
        unsafe { make_connect(lp, slot.as_mut_ptr()) };
    }
    // SAFETY: `lp` is an initialised loop, not running.
    unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
    let run = since(t);

    // SAFETY: every handle closed itself, so the loop has none left.
    unsafe { rawnet::close_loop(lp) };
    drop(slots);
    drop(slab);
    st.tally.outcome(run)
}
