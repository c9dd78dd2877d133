//! What `tcp_write_batch` and `async_tcp_write_batch` share: the sizes, the
//! counters both versions count in, the case, `run` and the raw libuv-sys2 twin
//! (the same for both, so that their tables compare).
//!
//! Included (`#[path]`) by both benchmarks.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use uv::sys;

use crate::common::rawnet::{self, check};
use crate::common::{since, Bench, Case, Outcome, Rate, Variant};

pub const NUM_WRITES: u64 = 1_000_000;
pub const DATA: &[u8] = b"Hello, world.";
pub const READ_BUF: usize = 64 * 1024;

pub static WRITE_CB_CALLED: AtomicU64 = AtomicU64::new(0);
pub static RECEIVED: AtomicU64 = AtomicU64::new(0);

/// A plain (non-atomic read-modify-write) add: the benchmark is single-threaded,
/// and the C benchmark uses a plain `int`.
#[inline]
pub fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// The benchmark's one case, named `name`, whose variants `run` runs.
pub fn case(name: &'static str, note: &'static str, run: fn(Variant, u64) -> Outcome) -> Case {
    Case {
        bench: Bench {
            name,
            unit: "write callbacks",
            full_count: NUM_WRITES,
            note,
            expected: |n| n,
            run,
        },
        rate: Rate::per_run("writes"),
    }
}

/// Runs `variant` (the raw twin, or `safe`) at size `n` under a watchdog, checks
/// the bytes the server received, and counts the write callbacks.
pub fn run(
    name: &'static str,
    variant: Variant,
    n: u64,
    safe: fn(u64) -> Vec<(&'static str, f64)>,
) -> Outcome {
    crate::common::watchdog(name, Duration::from_secs(120));
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

/// One write of the raw twin, as in the C benchmark.
#[repr(C)]
struct WriteReq {
    req: sys::uv_write_t,
    buf: sys::uv_buf_t,
}

/// The raw twin's state; the loop's `data` points at it.
struct RawBatch {
    reqs: *mut WriteReq,
    n: usize,
    queue_secs: Cell<f64>,
    slab: *mut u8,
}

rawnet::raw_state!(RawBatch, slab: READ_BUF);

unsafe extern "C" fn server_read(
    s: *mut sys::uv_stream_t,
    nread: isize,
    _buf: *const sys::uv_buf_t,
) {
    if nread >= 0 {
        add(&RECEIVED, nread as u64);
    } else {
        // SAFETY: `s` is the open connection, made by `new_tcp`.
        unsafe { rawnet::read_ended(s, nread, "server read") };
    }
}

unsafe extern "C" fn on_connection(server: *mut sys::uv_stream_t, status: i32) {
    check(status, "connection");
    // SAFETY: `server` is the listening handle of our loop; the connection is a
    // fresh handle on the same loop; the server (made by `new_tcp`) is closed once.
    unsafe {
        rawnet::accept_one(
            server,
            Some(rawnet::slab_alloc::<RawBatch>),
            Some(server_read),
        )
    };
}

unsafe extern "C" fn written(_req: *mut sys::uv_write_t, status: i32) {
    check(status, "write");
    add(&WRITE_CB_CALLED, 1);
}

unsafe extern "C" fn shut_down(req: *mut sys::uv_shutdown_t, status: i32) {
    check(status, "shutdown");
    // SAFETY: made by `connected`, finished; its handle is the open client, made
    // by `new_tcp`.
    unsafe {
        let s = (*req).handle;
        assert_eq!(
            sys::uv_stream_get_write_queue_size(s),
            0,
            "write queue after shutdown"
        );
        rawnet::free_req(req);
        sys::uv_close(s.cast(), Some(rawnet::close_free));
    }
}

unsafe extern "C" fn connected(req: *mut sys::uv_connect_t, status: i32) {
    check(status, "connect");
    // SAFETY: made by `raw`, finished; its handle is the open client. The write
    // requests stay put (one array, freed after the loop ran) and point at static
    // bytes.
    unsafe {
        let s = (*req).handle;
        rawnet::free_req(req);
        let st = ctx(s.cast());
        let t = Instant::now();
        for i in 0..st.n {
            let w = st.reqs.add(i);
            check(
                sys::uv_write(&raw mut (*w).req, s, &raw const (*w).buf, 1, Some(written)),
                "uv_write",
            );
        }
        let sreq = rawnet::new_req::<sys::uv_shutdown_t>();
        check(sys::uv_shutdown(sreq, s, Some(shut_down)), "uv_shutdown");
        st.queue_secs.set(since(t));
    }
}

/// The raw libuv-sys2 twin, mirroring the C benchmark.
fn raw(n: u64) -> Vec<(&'static str, f64)> {
    let n = n as usize;
    // One array of requests, each with its buffer pointing at the static string
    // (the C benchmark's `write_reqs`).
    let mut storage: Box<[MaybeUninit<WriteReq>]> = Box::new_uninit_slice(n);
    for w in storage.iter_mut() {
        w.write(WriteReq {
            // SAFETY: uv_write_t is plain C data; all-zero is a valid value.
            req: unsafe { std::mem::zeroed() },
            buf: sys::uv_buf_t {
                base: DATA.as_ptr() as *mut _,
                len: DATA.len(),
            },
        });
    }
    let mut slab: Box<[MaybeUninit<u8>]> = Box::new_uninit_slice(READ_BUF);
    let lp = rawnet::new_loop();
    let st = Box::new(RawBatch {
        reqs: storage.as_mut_ptr().cast(),
        n,
        queue_secs: Cell::new(0.0),
        slab: slab.as_mut_ptr().cast(),
    });
    // The server and the client close themselves when their part is done.
    // SAFETY: the loop is initialised; the state box outlives the run (the
    // callbacks reach it through the loop's `data`).
    unsafe {
        rawnet::set_loop_state(lp, &*st);
        rawnet::listen_and_connect(lp, Some(on_connection), Some(connected));
    }

    // SAFETY: `lp` is an initialised loop, not running.
    let run = unsafe { rawnet::run_timed(lp) };

    // SAFETY: every handle closed itself, so the loop has none left; the requests
    // and the slab are no longer in use.
    unsafe { rawnet::close_loop(lp) };
    drop(storage);
    drop(slab);
    vec![("queue", st.queue_secs.get()), ("run", run)]
}
