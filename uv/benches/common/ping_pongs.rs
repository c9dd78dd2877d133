//! What `ping_pongs` and `async_ping_pongs` share: the sizes, the case, `run` and
//! the raw libuv-sys2 twin (the same for both, so that their tables compare).
//!
//! Included (`#[path]`) by both benchmarks.

use std::cell::{Cell, RefCell};

use uv::sys;

use crate::common::rawnet::{self, check};
use crate::common::{Bench, Case, Outcome, Rate, Variant};

pub const ROUND_TRIPS: u64 = 100_000;
pub const PING: &[u8; 5] = b"PING\n";
/// Read buffers of the raw twin (libuv suggests 64 KiB, as the uv loop's buffer).
pub const READ_BUF: usize = 64 * 1024;

/// The benchmark's one case, named `name`, whose variants `run` runs.
pub fn case(name: &'static str, note: &'static str, run: fn(Variant, u64) -> Outcome) -> Case {
    Case {
        bench: Bench {
            name,
            unit: "round trips",
            full_count: ROUND_TRIPS,
            note,
            expected: |n| n,
            run,
        },
        rate: Rate::per_run("round trips"),
    }
}

/// Runs `variant` (the raw twin, or `safe`) at size `n` under a watchdog.
pub fn run(name: &'static str, variant: Variant, n: u64, safe: fn(u64) -> Outcome) -> Outcome {
    crate::common::run_net(name, variant, n, raw, safe)
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

rawnet::raw_state!(RawPing);

unsafe extern "C" fn server_alloc(h: *mut sys::uv_handle_t, _size: usize, buf: *mut sys::uv_buf_t) {
    // SAFETY: libuv passes a handle of our loop.
    let st = unsafe { ctx(h) };
    let base = st.free_bufs.borrow_mut().pop().unwrap_or_else(|| {
        let b = rawnet::new_buf(READ_BUF);
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
    // SAFETY: `s` is an open handle made by `new_tcp`.
    unsafe { rawnet::read_ended(s, nread, "server read") };
}

unsafe extern "C" fn on_connection(server: *mut sys::uv_stream_t, status: i32) {
    check(status, "connection");
    // SAFETY: `server` is the listening handle of our loop; the connection is a
    // fresh handle on the same loop; the server (made by `new_tcp`) is closed once.
    unsafe { rawnet::accept_one(server, Some(server_alloc), Some(server_read)) };
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
        slab: rawnet::new_buf(READ_BUF),
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

    // SAFETY: every handle closed itself (close_free freed them), so the loop has
    // none left; no buffer is in use any more.
    unsafe {
        rawnet::close_loop(lp);
        for b in st.all_bufs.take() {
            rawnet::free_buf(b, READ_BUF);
        }
        rawnet::free_buf(st.slab, READ_BUF);
    }
    Outcome {
        count: st.pongs.get(),
        phases: vec![("run", run)],
    }
}
