//! Throughput over loopback TCP: 1 client (`tcp_pump1`) or 100 clients
//! (`tcp_pump100`) write 8 KiB at a time, each client one write in flight, the next
//! from the previous one's callback, until 2 GiB in all (262,144 writes) are
//! written; then each client closes, and a server in the same loop (and process),
//! which reads and discards, closes each connection on EOF (libuv's
//! `benchmark-pump.c`, `tcp_pump1_client` and `tcp_pump100_client`, which pump for 5
//! seconds to a server in another process).
//!
//! Runs the safe `uv` version and a raw libuv-sys2 twin, each in its own process,
//! and prints CPU time, wall time and peak memory with the uv/raw ratios
//! (see `common/mod.rs` for the options; `--case tcp_pump1` or `--case tcp_pump100`
//! runs one case). The count is write callbacks; the pump phase starts when every
//! client is connected (as the C benchmark's stats do) and ends when the server
//! has read the last byte.
//!
//! What the two do differently, as their users would: each uv write points at
//! the 8 KiB static buffer (`WriteData::Static`, not copied) and gets a request
//! allocation of its own; the raw twin points every write at the one static buffer
//! and, like the C benchmark, reuses its write requests through a free list.

use std::cell::{Cell, RefCell};
use std::mem::MaybeUninit;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};
use uv::Stream as _;

use uv::sys;

mod common;

use common::rawnet::{self, check};
use common::{uvnet, Bench, Case, Outcome, Rate, Variant};

/// 2 GiB in 8 KiB writes.
const NUM_WRITES: u64 = 256 * 1024;
const WRITE_SIZE: usize = 8 * 1024;
const READ_BUF: usize = 64 * 1024;
static WRITE_BUFFER: [u8; WRITE_SIZE] = [b'x'; WRITE_SIZE];

fn main() -> ExitCode {
    let rate = || {
        Some(Rate {
            unit: "MiB",
            per_count: WRITE_SIZE as f64 / (1024.0 * 1024.0),
            phase: "pump",
        })
    };
    common::main_cases(&[
        Case {
            bench: Bench {
                name: "tcp_pump1",
                unit: "8 KiB writes",
                full_count: NUM_WRITES,
                note: "1 client; connect = until every client is connected, pump = \
                       from then until the server read the last byte",
                expected: |n| n,
                run: run1,
            },
            rate: rate(),
        },
        Case {
            bench: Bench {
                name: "tcp_pump100",
                unit: "8 KiB writes",
                full_count: NUM_WRITES,
                note: "100 clients; connect = until every client is connected, pump = \
                       from then until the server read the last byte",
                expected: |n| n.max(100),
                run: run100,
            },
            rate: rate(),
        },
    ])
}

fn run1(variant: Variant, n: u64) -> Outcome {
    run(variant, n, 1)
}

fn run100(variant: Variant, n: u64) -> Outcome {
    run(variant, n, 100)
}

/// What both variants measure.
#[derive(Debug, Default)]
struct Tally {
    /// Write callbacks.
    written: Cell<u64>,
    /// Bytes the server read.
    received: Cell<u64>,
    start: Cell<Option<Instant>>,
    connected_at: Cell<Option<Instant>>,
    done_at: Cell<Option<Instant>>,
}

impl Tally {
    fn outcome(&self, n: u64) -> Outcome {
        assert_eq!(
            self.received.get(),
            n * WRITE_SIZE as u64,
            "bytes the server read"
        );
        let (start, connected, done) = (
            self.start.get().expect("started"),
            self.connected_at.get().expect("connected"),
            self.done_at.get().expect("done"),
        );
        Outcome {
            count: self.written.get(),
            phases: vec![
                ("connect", (connected - start).as_secs_f64()),
                ("pump", (done - connected).as_secs_f64()),
            ],
        }
    }

    /// Counts bytes the server read; notes when the last one came.
    fn received(&self, bytes: usize, total: u64) {
        let r = self.received.get() + bytes as u64;
        self.received.set(r);
        if r == total {
            self.done_at.set(Some(Instant::now()));
        }
    }
}

fn run(variant: Variant, n: u64, clients: usize) -> Outcome {
    common::watchdog("tcp_pump", Duration::from_secs(120));
    // Every client writes at least once (`expected` says so too).
    let n = n.max(clients as u64);
    match variant {
        Variant::Raw => raw(n, clients),
        Variant::Uv => safe(n, clients),
    }
}

/// The clients' shared state in the safe version.
struct Pump {
    tally: Tally,
    limit: u64,
    /// Writes started.
    issued: Cell<u64>,
    clients: usize,
    /// Connected clients, until all are (then they start writing).
    connected: RefCell<Vec<uv::Tcp>>,
}

/// Writes the next 8 KiB on `c`, or closes it when all writes are started.
fn pump(c: &uv::Tcp, st: Rc<Pump>) {
    let i = st.issued.get();
    if i == st.limit {
        c.close();
        return;
    }
    st.issued.set(i + 1);
    c.write(uv::WriteData::Static(&WRITE_BUFFER[..]), move |c, r| {
        r.expect("write");
        st.tally.written.set(st.tally.written.get() + 1);
        pump(c, st);
    })
    .expect("write");
}

/// The safe version, written the way a user would.
fn safe(n: u64, clients: usize) -> Outcome {
    let lp = uv::Loop::new().expect("uv::Loop::new");
    let st = Rc::new(Pump {
        tally: Tally::default(),
        limit: n,
        issued: Cell::new(0),
        clients,
        connected: RefCell::new(Vec::with_capacity(clients)),
    });
    let total = n * WRITE_SIZE as u64;

    // The server: reads and discards; stops listening once every client is in.
    let (server, addr) = uvnet::bound_tcp(&lp);
    let lh = lp.handle();
    let server_st = Rc::clone(&st);
    let mut accepted = 0;
    server
        .listen(1000, move |srv, status| {
            status.expect("connection");
            let conn = uvnet::accept(srv, &lh);
            let st = Rc::clone(&server_st);
            conn.read_start(move |c, data| match data {
                Ok(bytes) => st.tally.received(bytes.len(), total),
                Err(e) if e.code() == uv::StatusCode::EOF => c.close(),
                Err(e) => panic!("server read: {e}"),
            })
            .expect("read_start");
            accepted += 1;
            if accepted == clients {
                srv.close();
            }
        })
        .expect("listen");

    st.tally.start.set(Some(Instant::now()));
    for _ in 0..clients {
        let c = uv::Tcp::new(&lp).expect("uv::Tcp::new");
        let st = Rc::clone(&st);
        c.connect(addr, move |c, r| {
            r.expect("connect");
            let mut connected = st.connected.borrow_mut();
            connected.push(c.clone());
            if connected.len() == st.clients {
                st.tally.connected_at.set(Some(Instant::now()));
                let all = std::mem::take(&mut *connected);
                drop(connected);
                for c in &all {
                    pump(c, Rc::clone(&st));
                }
            }
        })
        .expect("connect");
    }

    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    drop(server);
    drop(lp);
    st.tally.outcome(n)
}

/// The raw twin's state; the loop's `data` points at it.
struct RawPump {
    tally: Tally,
    limit: u64,
    issued: Cell<u64>,
    clients: usize,
    accepted: Cell<u64>,
    connected: RefCell<Vec<*mut sys::uv_stream_t>>,
    /// Finished write requests, for reuse (the C benchmark's `req_freelist`).
    free_reqs: RefCell<Vec<*mut sys::uv_write_t>>,
    /// Every write request made, freed at the end.
    all_reqs: RefCell<Vec<*mut sys::uv_write_t>>,
    /// The server's read buffer (it never keeps what it reads).
    slab: *mut u8,
}

rawnet::raw_state!(RawPump, slab: READ_BUF);

unsafe extern "C" fn server_read(
    s: *mut sys::uv_stream_t,
    nread: isize,
    _buf: *const sys::uv_buf_t,
) {
    // SAFETY: libuv passes a handle of our loop.
    let st = unsafe { ctx(s.cast()) };
    if nread >= 0 {
        st.tally
            .received(nread as usize, st.limit * WRITE_SIZE as u64);
    } else {
        // SAFETY: `s` is an open connection, made by `new_tcp`.
        unsafe { rawnet::read_ended(s, nread, "server read") };
    }
}

unsafe extern "C" fn on_connection(server: *mut sys::uv_stream_t, status: i32) {
    check(status, "connection");
    // SAFETY: `server` is the listening handle of our loop; the connection is a
    // fresh handle on the same loop; the server (made by `new_tcp`) is closed once.
    unsafe {
        let st = ctx(server.cast());
        rawnet::accept_counting(
            server,
            Some(rawnet::slab_alloc::<RawPump>),
            Some(server_read),
            &st.accepted,
            st.clients as u64,
        );
    }
}

unsafe extern "C" fn written(req: *mut sys::uv_write_t, status: i32) {
    check(status, "write");
    // SAFETY: `req` is finished; its handle is an open client of our loop.
    unsafe {
        let s = (*req).handle;
        let st = ctx(s.cast());
        st.free_reqs.borrow_mut().push(req);
        st.tally.written.set(st.tally.written.get() + 1);
        do_write(s);
    }
}

/// Writes the next 8 KiB on `s` (pointing at the static buffer), or closes it when
/// all writes are started.
///
/// # Safety
/// `s` must be an open, connected client of our loop with no write in flight.
unsafe fn do_write(s: *mut sys::uv_stream_t) {
    // SAFETY: per the contract.
    let st = unsafe { ctx(s.cast()) };
    let i = st.issued.get();
    if i == st.limit {
        // SAFETY: `s` is open and was made by `new_tcp`.
        unsafe { sys::uv_close(s.cast(), Some(rawnet::close_free)) };
        return;
    }
    st.issued.set(i + 1);
    let req = st.free_reqs.borrow_mut().pop().unwrap_or_else(|| {
        let r = rawnet::new_req::<sys::uv_write_t>();
        st.all_reqs.borrow_mut().push(r);
        r
    });
    let buf = sys::uv_buf_t {
        base: WRITE_BUFFER.as_ptr() as *mut _,
        len: WRITE_SIZE,
    };
    // SAFETY: per the contract; the request stays put until `written` (it is freed
    // at the end) and the bytes are static.
    check(
        unsafe { sys::uv_write(req, s, &buf, 1, Some(written)) },
        "uv_write",
    );
}

unsafe extern "C" fn connected(req: *mut sys::uv_connect_t, status: i32) {
    check(status, "connect");
    // SAFETY: made by `raw`, finished; its handle is an open client of our loop.
    unsafe {
        let s = (*req).handle;
        rawnet::free_req(req);
        let st = ctx(s.cast());
        let mut connected = st.connected.borrow_mut();
        connected.push(s);
        if connected.len() == st.clients {
            st.tally.connected_at.set(Some(Instant::now()));
            let all = std::mem::take(&mut *connected);
            drop(connected);
            for s in all {
                do_write(s);
            }
        }
    }
}

/// The raw libuv-sys2 twin.
fn raw(n: u64, clients: usize) -> Outcome {
    let mut slab: Box<[MaybeUninit<u8>]> = Box::new_uninit_slice(READ_BUF);
    let lp = rawnet::new_loop();
    let st = Box::new(RawPump {
        tally: Tally::default(),
        limit: n,
        issued: Cell::new(0),
        clients,
        accepted: Cell::new(0),
        connected: RefCell::new(Vec::with_capacity(clients)),
        free_reqs: RefCell::new(Vec::new()),
        all_reqs: RefCell::new(Vec::new()),
        slab: slab.as_mut_ptr().cast(),
    });
    let server = rawnet::new_tcp(lp);
    // SAFETY: the loop and the handles are initialised and stay put; the state box
    // outlives the run (the callbacks reach it through the loop's `data`).
    unsafe {
        rawnet::set_loop_state(lp, &*st);
        let addr = rawnet::bind_loopback(server);
        check(
            sys::uv_listen(server.cast(), 1000, Some(on_connection)),
            "uv_listen",
        );
        st.tally.start.set(Some(Instant::now()));
        for _ in 0..clients {
            let c = rawnet::new_tcp(lp);
            let req = rawnet::new_req::<sys::uv_connect_t>();
            check(
                sys::uv_tcp_connect(req, c, rawnet::sa(&addr), Some(connected)),
                "uv_tcp_connect",
            );
        }
    }

    // SAFETY: `lp` is an initialised loop, not running.
    unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };

    // SAFETY: every handle closed itself, so the loop has none left; no request
    // and no buffer is in use any more.
    unsafe {
        rawnet::close_loop(lp);
        for r in st.all_reqs.take() {
            rawnet::free_req(r);
        }
    }
    drop(slab);
    st.tally.outcome(n)
}
