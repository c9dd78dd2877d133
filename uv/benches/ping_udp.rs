//! Round-trip latency over loopback UDP: a pinger sends a 4-byte "PING" datagram to
//! a ponger in the same loop (and process), which answers "PONG" to the sender's
//! address; the pinger sends the next ping when the pong is back (one datagram in
//! flight at a time). After 100,000 round trips the pinger closes both sockets and
//! the loop ends (libuv's `benchmark-ping-udp.c`, which pings its own address with
//! `uv_udp_try_send` for 5 seconds).
//!
//! Two cases, each with the safe `uv` version and a raw libuv-sys2 twin run in
//! their own processes (see `common/mod.rs` for the options; `--case NAME` runs one):
//! - `ping_udp`: every datagram goes out with `send` (`uv_udp_send`, a request per
//!   datagram and a completion callback);
//! - `ping_udp_try_send`: every datagram goes out with `try_send`
//!   (`uv_udp_try_send`, sent in the call, no request), as the C benchmark does.
//!
//! The count is the pinger's round trips.
//!
//! What the two do differently, as their users would: the uv version sends the
//! static `PING`/`PONG` as `WriteData::Static` (no copy) and receives into the
//! loop's 64 KiB read buffer; the raw twin points every send at the same static
//! bytes, boxes one `uv_udp_send_t` per send (freed in its callback, as the C
//! benchmarks `malloc` theirs) and receives into one 64 KiB slab. Both put the
//! ponger's address in C form once (a `uv::SockAddr`, a `sockaddr_in`) and the
//! pongs go to the address each ping came from (a `SocketAddr` in the uv version,
//! libuv's `sockaddr` in the raw one). Both check each datagram's bytes and each
//! `try_send`'s count with `assert!` (a comparison, no copy of the values).

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use uv::sys;

mod common;

use common::rawnet::{self, check};
use common::{since, Bench, Case, Outcome, Rate, Variant};

const ROUND_TRIPS: u64 = 100_000;
const PING: &[u8; 4] = b"PING";
const PONG: &[u8; 4] = b"PONG";
/// The raw twin's receive buffer (the size of the uv loop's read buffer).
const READ_BUF: usize = 64 * 1024;

/// How datagrams are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `send` / `uv_udp_send`: a request and a completion callback per datagram.
    Send,
    /// `try_send` / `uv_udp_try_send`: sent in the call.
    TrySend,
}

fn main() -> ExitCode {
    let rate = || Rate::per_run("round trips");
    common::main_cases(&[
        Case {
            bench: Bench {
                name: "ping_udp",
                unit: "round trips",
                full_count: ROUND_TRIPS,
                note: "a pinger and a ponger in one loop, loopback UDP, 4-byte datagrams, \
                       one in flight; sent with send (uv_udp_send)",
                expected: |n| n,
                run: |v, n| run(v, n, Mode::Send),
            },
            rate: rate(),
        },
        Case {
            bench: Bench {
                name: "ping_udp_try_send",
                unit: "round trips",
                full_count: ROUND_TRIPS,
                note: "a pinger and a ponger in one loop, loopback UDP, 4-byte datagrams, \
                       one in flight; sent with try_send (uv_udp_try_send)",
                expected: |n| n,
                run: |v, n| run(v, n, Mode::TrySend),
            },
            rate: rate(),
        },
    ])
}

fn run(variant: Variant, n: u64, mode: Mode) -> Outcome {
    common::run_net("ping_udp", variant, n, |n| raw(n, mode), |n| safe(n, mode))
}

/// Sends `msg` to `to` (an `Option<SocketAddr>` or a `&uv::SockAddr`) the way
/// `mode` says.
fn send(u: &uv::Udp, msg: &'static [u8], to: impl uv::SendAddr, mode: Mode) {
    match mode {
        Mode::Send => u
            .send(uv::WriteData::Static(msg), to, |_, r| r.expect("udp send"))
            .expect("send"),
        Mode::TrySend => {
            let sent = u.try_send(msg, to).expect("try_send");
            assert!(sent == msg.len(), "try_send sent part of a datagram");
        }
    }
}

/// The safe version, written the way a user would.
fn safe(limit: u64, mode: Mode) -> Outcome {
    let lp = uv::Loop::new().expect("uv::Loop::new");
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));

    // The ponger: answers every ping to its sender.
    let ponger = uv::Udp::new(&lp).expect("uv::Udp::new");
    ponger
        .bind(loopback, uv::UdpFlags::empty())
        .expect("ponger bind");
    // The pings' destination, put in C form once (as the raw twin keeps its
    // `sockaddr_in`); the pongs go to the sender's address each datagram brings.
    let ponger_addr = uv::SockAddr::from(ponger.local_addr().expect("ponger sockname"));
    ponger
        .recv_start(move |u, r| {
            let d = r.expect("ponger recv");
            // Each burst of reads ends with a "drained" event: no datagram.
            if d.is_drained() {
                return;
            }
            assert!(d.data == PING, "ping");
            send(u, PONG, Some(d.addr.expect("the sender's address")), mode);
        })
        .expect("ponger recv_start");

    // The pinger: counts the pongs, sends the next ping each time, and closes both
    // sockets after the last one.
    let pinger = uv::Udp::new(&lp).expect("uv::Udp::new");
    pinger
        .bind(loopback, uv::UdpFlags::empty())
        .expect("pinger bind");
    let pongs = Rc::new(Cell::new(0u64));
    let counter = Rc::clone(&pongs);
    let peer = ponger.clone();
    pinger
        .recv_start(move |u, r| {
            let d = r.expect("pinger recv");
            // Each burst of reads ends with a "drained" event: no datagram.
            if d.is_drained() {
                return;
            }
            assert!(d.data == PONG, "pong");
            let n = counter.get() + 1;
            counter.set(n);
            if n == limit {
                u.close();
                peer.close();
            } else {
                send(u, PING, &ponger_addr, mode);
            }
        })
        .expect("pinger recv_start");
    send(&pinger, PING, &ponger_addr, mode);

    let t = Instant::now();
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let run = since(t);

    drop((pinger, ponger));
    drop(lp);
    Outcome {
        count: pongs.get(),
        phases: vec![("run", run)],
    }
}

/// The raw twin's state; the loop's `data` points at it.
struct RawPing {
    limit: u64,
    mode: Mode,
    pongs: Cell<u64>,
    pinger: *mut sys::uv_udp_t,
    ponger: *mut sys::uv_udp_t,
    /// Where the pings go.
    ponger_addr: sys::sockaddr_in,
    /// The receive buffer of both sockets (neither keeps what it receives).
    slab: *mut u8,
}

rawnet::raw_state!(RawPing, slab: READ_BUF);

/// A new, initialised UDP handle in a box of its own; `udp_close_free` (as the
/// close callback) frees it.
fn new_udp(lp: *mut sys::uv_loop_t) -> *mut sys::uv_udp_t {
    let udp: *mut sys::uv_udp_t =
        Box::into_raw(Box::new(MaybeUninit::<sys::uv_udp_t>::uninit())).cast();
    // SAFETY: `lp` is an initialised loop (only loops from `rawnet::new_loop` are
    // passed) and `udp` a fresh allocation that does not move until freed.
    check(unsafe { sys::uv_udp_init(lp, udp) }, "uv_udp_init");
    udp
}

/// A close callback that frees a handle made by `new_udp`.
unsafe extern "C" fn udp_close_free(h: *mut sys::uv_handle_t) {
    // SAFETY: only passed to uv_close for handles made by `new_udp` (boxed as a
    // MaybeUninit<uv_udp_t>); libuv is done with the handle once this runs.
    drop(unsafe { Box::from_raw(h.cast::<MaybeUninit<sys::uv_udp_t>>()) });
}

/// Binds `udp` to 127.0.0.1, port 0 (a free port), and returns the address it got.
///
/// # Safety
/// `udp` must be an initialised, open UDP handle.
unsafe fn bind_loopback(udp: *mut sys::uv_udp_t) -> sys::sockaddr_in {
    let any = rawnet::loopback(0);
    // SAFETY: per the contract; `any` is a valid sockaddr_in.
    check(
        unsafe { sys::uv_udp_bind(udp, rawnet::sa(&any), 0) },
        "uv_udp_bind",
    );
    let mut bound = MaybeUninit::<sys::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<sys::sockaddr_storage>() as i32;
    // SAFETY: `bound` is a writable sockaddr_storage of `len` bytes.
    check(
        unsafe { sys::uv_udp_getsockname(udp, bound.as_mut_ptr().cast(), &mut len) },
        "uv_udp_getsockname",
    );
    // SAFETY: an IPv4 socket's name is a sockaddr_in, which fits in the (zeroed,
    // then filled in) sockaddr_storage.
    unsafe { bound.as_ptr().cast::<sys::sockaddr_in>().read() }
}

unsafe extern "C" fn sent(req: *mut sys::uv_udp_send_t, status: i32) {
    check(status, "udp send");
    // SAFETY: made by `raw_send`, finished.
    unsafe { rawnet::free_req(req) };
}

/// Sends the static `msg` to `to` the way `mode` says (no copy either way).
///
/// # Safety
/// `udp` must be an open, bound UDP handle and `to` a valid socket address.
unsafe fn raw_send(
    udp: *mut sys::uv_udp_t,
    msg: &'static [u8],
    to: *const sys::sockaddr,
    mode: Mode,
) {
    let buf = sys::uv_buf_t {
        base: msg.as_ptr() as *mut _,
        len: msg.len(),
    };
    match mode {
        Mode::Send => {
            let req = rawnet::new_req::<sys::uv_udp_send_t>();
            // SAFETY: per the contract; libuv copies the address and the buffer
            // array, the bytes are static and the request stays put until `sent`.
            check(
                unsafe { sys::uv_udp_send(req, udp, &buf, 1, to, Some(sent)) },
                "uv_udp_send",
            );
        }
        Mode::TrySend => {
            // SAFETY: per the contract; libuv only reads the buffer and the address
            // during the call.
            let rc = unsafe { sys::uv_udp_try_send(udp, &buf, 1, to) };
            check(rc, "uv_udp_try_send");
            assert!(rc as usize == msg.len(), "try_send sent part of a datagram");
        }
    }
}

/// The datagram received, or `None` when libuv had nothing to read.
///
/// # Safety
/// libuv's receive-callback arguments, unchanged.
unsafe fn datagram<'a>(
    nread: isize,
    buf: *const sys::uv_buf_t,
    addr: *const sys::sockaddr,
) -> Option<&'a [u8]> {
    if nread == 0 && addr.is_null() {
        return None;
    }
    check(nread as i32, "udp recv");
    if nread == 0 {
        return Some(&[]);
    }
    // SAFETY: libuv wrote `nread` bytes into the slab `slab_alloc` lent.
    Some(unsafe { std::slice::from_raw_parts((*buf).base as *const u8, nread as usize) })
}

/// The receive callback of the ponger (`PINGER` false) and of the pinger (true).
unsafe extern "C" fn on_recv<const PINGER: bool>(
    udp: *mut sys::uv_udp_t,
    nread: isize,
    buf: *const sys::uv_buf_t,
    addr: *const sys::sockaddr,
    _flags: u32,
) {
    // SAFETY: libuv's arguments, passed on.
    let Some(data) = (unsafe { datagram(nread, buf, addr) }) else {
        return;
    };
    // SAFETY: libuv passes a handle of our loop.
    let st = unsafe { ctx(udp.cast()) };
    if !PINGER {
        assert!(data == PING, "ping");
        assert!(!addr.is_null(), "the sender's address");
        // SAFETY: `udp` is the open ponger of our loop; `addr` is the sender's
        // address libuv passed, valid during this callback.
        unsafe { raw_send(udp, PONG, addr, st.mode) };
        return;
    }
    assert!(data == PONG, "pong");
    let n = st.pongs.get() + 1;
    st.pongs.set(n);
    if n == st.limit {
        // SAFETY: both handles are open (closed only here, once) and were made by
        // `new_udp`.
        unsafe {
            sys::uv_close(st.pinger.cast(), Some(udp_close_free));
            sys::uv_close(st.ponger.cast(), Some(udp_close_free));
        }
    } else {
        // SAFETY: `udp` is the open pinger; the address lives in the state.
        unsafe { raw_send(udp, PING, rawnet::sa(&st.ponger_addr), st.mode) };
    }
}

/// The raw libuv-sys2 twin.
fn raw(limit: u64, mode: Mode) -> Outcome {
    let lp = rawnet::new_loop();
    let pinger = new_udp(lp);
    let ponger = new_udp(lp);
    // SAFETY: both handles are initialised, open and do not move.
    let (_, ponger_addr) = unsafe { (bind_loopback(pinger), bind_loopback(ponger)) };
    let st = Box::new(RawPing {
        limit,
        mode,
        pongs: Cell::new(0),
        pinger,
        ponger,
        ponger_addr,
        slab: rawnet::new_buf(READ_BUF),
    });
    // SAFETY: the loop and both handles are initialised and stay put; the state box
    // outlives the run (the callbacks reach it through the loop's `data`).
    unsafe {
        rawnet::set_loop_state(lp, &*st);
        let receivers: [(_, sys::uv_udp_recv_cb); 2] = [
            (ponger, Some(on_recv::<false>)),
            (pinger, Some(on_recv::<true>)),
        ];
        for (udp, recv) in receivers {
            check(
                sys::uv_udp_recv_start(udp, Some(rawnet::slab_alloc::<RawPing>), recv),
                "uv_udp_recv_start",
            );
        }
        raw_send(pinger, PING, rawnet::sa(&st.ponger_addr), mode);
    }

    // SAFETY: `lp` is an initialised loop, not running.
    let run = unsafe { rawnet::run_timed(lp) };

    // SAFETY: both handles closed themselves (udp_close_free freed them), so the
    // loop has none left; the slab is no longer lent.
    unsafe {
        rawnet::close_loop(lp);
        rawnet::free_buf(st.slab, READ_BUF);
    }
    Outcome {
        count: st.pongs.get(),
        phases: vec![("run", run)],
    }
}
