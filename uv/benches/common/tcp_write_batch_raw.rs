//! The raw libuv-sys2 twin of `tcp_write_batch` (and of `async_tcp_write_batch`).
//!
//! Included (`#[path]`) by both benchmarks; it uses their shared constants
//! and imports through `super::`.

use super::*;

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

/// The state, from any handle of the raw twin's loop.
///
/// # Safety
/// `h` must be a handle of the loop `raw` made, while `raw` runs it.
unsafe fn ctx<'a>(h: *const sys::uv_handle_t) -> &'a RawBatch {
    // SAFETY: per the contract: `raw` set the loop's `data` to its state, which
    // outlives the run.
    unsafe { rawnet::loop_state(h) }
}

impl rawnet::ReadSlab for RawBatch {
    const LEN: usize = READ_BUF;
    fn slab(&self) -> *mut u8 {
        self.slab
    }
}

unsafe extern "C" fn server_read(
    s: *mut sys::uv_stream_t,
    nread: isize,
    _buf: *const sys::uv_buf_t,
) {
    if nread >= 0 {
        add(&RECEIVED, nread as u64);
    } else if nread == sys::uv_errno_t_UV_EOF as isize {
        // SAFETY: `s` is the open connection, made by `new_tcp`.
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
        rawnet::accept_reading(
            server,
            Some(rawnet::slab_alloc::<RawBatch>),
            Some(server_read),
        );
        sys::uv_close(server.cast(), Some(rawnet::close_free));
    }
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
pub(crate) fn raw(n: u64) -> Vec<(&'static str, f64)> {
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
        (*lp).data = (&*st as *const RawBatch).cast_mut().cast();
        rawnet::listen_and_connect(lp, Some(on_connection), Some(connected));
    }

    let t = Instant::now();
    // SAFETY: `lp` is an initialised loop, not running.
    unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
    let run = since(t);

    // SAFETY: every handle closed itself, so the loop has none left; the requests
    // and the slab are no longer in use.
    unsafe { rawnet::close_loop(lp) };
    drop(storage);
    drop(slab);
    vec![("queue", st.queue_secs.get()), ("run", run)]
}
