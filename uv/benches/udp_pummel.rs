//! UDP send throughput: senders each keep one datagram in flight to a receiver
//! (sender i to receiver i mod R) and send the next one from the completion
//! callback, until 500,000 sends in all completed; then each sender closes. The
//! receivers are unreferenced and count what arrives (libuv's
//! `benchmark-udp-pummel.c`, cases `udp_pummel_1v1` and `udp_pummel_10v10`, which
//! send 1,000,000 datagrams).
//!
//! The count is the completed sends (exact); what the receivers got is printed by
//! nobody and not checked, since loopback UDP may drop datagrams under load. The
//! 45-byte message goes out as one static buffer in both variants (the C benchmark
//! splits it into 5 buffers; the uv API's several buffers are owned `Vec`s). Each
//! sender keeps its peer's address in C form (a `uv::SockAddr`, as the raw twin's
//! `sockaddr_in`); the receivers check each datagram's bytes with `assert!`.
//!
//! Runs the safe `uv` version and a raw libuv-sys2 twin, each in its own process
//! (see `common/mod.rs` for the options; `--case NAME` runs one case).

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use uv::sys;

mod common;

use common::rawnet::{self, check};
use common::{since, Bench, Case, Outcome, Rate, Variant};

const NUM_SENDS: u64 = 500_000;
const EXPECTED: &[u8] = b"RANG TANG DING DONG I AM THE JAPANESE SANDMAN";
const READ_BUF: usize = 64 * 1024;

fn main() -> ExitCode {
    let case = |name: &'static str, run: fn(Variant, u64) -> Outcome| Case {
        bench: Bench {
            name,
            unit: "datagrams sent",
            full_count: NUM_SENDS,
            note: "count = completed sends.",
            expected: |n| n,
            run,
        },
        rate: Some(Rate {
            unit: "datagrams",
            per_count: 1.0,
            phase: "run",
        }),
    };
    common::main_cases(&[
        case("udp_pummel_1v1", |v, n| run(v, n, 1, 1)),
        case("udp_pummel_10v10", |v, n| run(v, n, 10, 10)),
    ])
}

fn run(variant: Variant, n: u64, senders: usize, receivers: usize) -> Outcome {
    common::watchdog("udp_pummel", Duration::from_secs(120));
    assert!(n >= senders as u64, "fewer sends than senders");
    let (count, run) = match variant {
        Variant::Raw => raw(n, senders, receivers),
        Variant::Uv => safe(n, senders, receivers),
    };
    Outcome {
        count,
        phases: vec![("run", run)],
    }
}

/// The uv version's counters.
struct Counts {
    limit: u64,
    started: Cell<u64>,
    done: Cell<u64>,
}

/// One sender's state (as the raw twin's `RawSender`): its peer, put in C form once
/// (as the raw twin keeps its `sockaddr_in`), and the counters.
struct Sender {
    to: uv::SockAddr,
    counts: Rc<Counts>,
}

/// Sends one datagram; its completion sends the next one, or closes the sender.
fn send_one(u: &uv::Udp, s: Rc<Sender>) {
    let c = &s.counts;
    c.started.set(c.started.get() + 1);
    let to = s.to;
    u.send(uv::WriteData::Static(EXPECTED), &to, move |u, r| {
        r.expect("udp send");
        let c = &s.counts;
        c.done.set(c.done.get() + 1);
        if c.started.get() < c.limit {
            send_one(u, s);
        } else {
            u.close();
        }
    })
    .expect("send");
}

/// The safe version, written the way a user would.
fn safe(n: u64, senders: usize, receivers: usize) -> (u64, f64) {
    let lp = uv::Loop::new().expect("uv::Loop::new");
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let received = Rc::new(Cell::new(0u64));
    let mut addrs = Vec::new();
    let mut rx = Vec::new();
    for _ in 0..receivers {
        let r = uv::Udp::new(&lp).expect("uv::Udp::new");
        r.bind(loopback, uv::UdpFlags::empty()).expect("bind");
        addrs.push(r.local_addr().expect("sockname"));
        let got = received.clone();
        r.recv_start(move |_, d| {
            let d = d.expect("recv");
            if !d.is_drained() {
                assert!(d.data == EXPECTED, "datagram");
                got.set(got.get() + 1);
            }
        })
        .expect("recv_start");
        r.unref().expect("unref");
        rx.push(r);
    }
    let counts = Rc::new(Counts {
        limit: n,
        started: Cell::new(0),
        done: Cell::new(0),
    });
    let t = Instant::now();
    for i in 0..senders {
        let s = uv::Udp::new(&lp).expect("uv::Udp::new");
        let to = uv::SockAddr::from(addrs[i % receivers]);
        send_one(
            &s,
            Rc::new(Sender {
                to,
                counts: counts.clone(),
            }),
        );
    }
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let run = since(t);
    drop(rx);
    drop(lp);
    (counts.done.get(), run)
}

/// The raw twin's state (the loop's `data`).
struct RawState {
    limit: u64,
    started: Cell<u64>,
    done: Cell<u64>,
    received: Cell<u64>,
    slab: *mut u8,
}

/// One sender, as in the C benchmark: its handle, its request and its peer.
#[repr(C)]
struct RawSender {
    udp: sys::uv_udp_t,
    req: sys::uv_udp_send_t,
    to: sys::sockaddr_in,
}

rawnet::raw_state!(RawState, slab: READ_BUF);

/// Starts one send of `s`.
///
/// # Safety
/// `s` must be a RawSender whose handle is open and whose request is not in flight.
unsafe fn raw_send(s: *mut RawSender) {
    let buf = sys::uv_buf_t {
        base: EXPECTED.as_ptr() as *mut _,
        len: EXPECTED.len(),
    };
    // SAFETY: per the contract; libuv copies the buffer array and the address, the
    // bytes are static and the request stays put (inside `s`) until `raw_sent`.
    unsafe {
        let st = ctx(&raw const (*s).udp as *const sys::uv_handle_t);
        st.started.set(st.started.get() + 1);
        (*s).req.data = s.cast();
        check(
            sys::uv_udp_send(
                &raw mut (*s).req,
                &raw mut (*s).udp,
                &buf,
                1,
                rawnet::sa(&(*s).to),
                Some(raw_sent),
            ),
            "uv_udp_send",
        );
    }
}

unsafe extern "C" fn raw_sent(req: *mut sys::uv_udp_send_t, status: i32) {
    check(status, "udp send");
    // SAFETY: `data` is the RawSender holding the request, alive until the loop ends.
    unsafe {
        let s = (*req).data as *mut RawSender;
        let st = ctx(&raw const (*s).udp as *const sys::uv_handle_t);
        st.done.set(st.done.get() + 1);
        if st.started.get() < st.limit {
            raw_send(s);
        } else {
            sys::uv_close((&raw mut (*s).udp).cast(), None);
        }
    }
}

unsafe extern "C" fn raw_recv(
    h: *mut sys::uv_udp_t,
    nread: isize,
    buf: *const sys::uv_buf_t,
    addr: *const sys::sockaddr,
    _flags: u32,
) {
    if nread == 0 && addr.is_null() {
        return;
    }
    check(nread as i32, "udp recv");
    // SAFETY: libuv's arguments: `nread` bytes of `buf` were received.
    let bytes = unsafe { std::slice::from_raw_parts((*buf).base as *const u8, nread as usize) };
    assert!(bytes == EXPECTED, "datagram");
    // SAFETY: a handle of our loop.
    let st = unsafe { ctx(h.cast()) };
    st.received.set(st.received.get() + 1);
}

/// The raw libuv-sys2 twin, mirroring the C benchmark.
fn raw(n: u64, senders: usize, receivers: usize) -> (u64, f64) {
    let lp = rawnet::new_loop();
    let mut slab = vec![0u8; READ_BUF];
    let st = Box::new(RawState {
        limit: n,
        started: Cell::new(0),
        done: Cell::new(0),
        received: Cell::new(0),
        slab: slab.as_mut_ptr(),
    });
    // SAFETY: `lp` is an initialised loop; the state outlives its use.
    unsafe { (*lp).data = (&raw const *st).cast_mut().cast() };
    let mut rx: Box<[MaybeUninit<sys::uv_udp_t>]> = Box::new_uninit_slice(receivers);
    let rx = rx.as_mut_ptr().cast::<sys::uv_udp_t>();
    let mut addrs = Vec::new();
    for i in 0..receivers {
        // SAFETY: `i < receivers`, inside the array, which outlives the loop's use.
        unsafe {
            let r = rx.add(i);
            check(sys::uv_udp_init(lp, r), "uv_udp_init");
            let any = rawnet::loopback(0);
            check(sys::uv_udp_bind(r, rawnet::sa(&any), 0), "uv_udp_bind");
            let mut bound = MaybeUninit::<sys::sockaddr_storage>::zeroed();
            let mut len = std::mem::size_of::<sys::sockaddr_storage>() as i32;
            check(
                sys::uv_udp_getsockname(r, bound.as_mut_ptr().cast(), &mut len),
                "uv_udp_getsockname",
            );
            addrs.push(bound.as_ptr().cast::<sys::sockaddr_in>().read());
            check(
                sys::uv_udp_recv_start(r, Some(rawnet::slab_alloc::<RawState>), Some(raw_recv)),
                "uv_udp_recv_start",
            );
            sys::uv_unref(r.cast());
        }
    }
    let mut tx: Box<[MaybeUninit<RawSender>]> = Box::new_uninit_slice(senders);
    let tx = tx.as_mut_ptr().cast::<RawSender>();
    let t = Instant::now();
    for i in 0..senders {
        // SAFETY: `i < senders`, inside the array, which outlives the loop's use.
        unsafe {
            let s = tx.add(i);
            (&raw mut (*s).to).write(addrs[i % receivers]);
            check(sys::uv_udp_init(lp, &raw mut (*s).udp), "uv_udp_init");
            raw_send(s);
        }
    }
    // SAFETY: `lp` is an initialised loop, not running.
    unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
    let run = since(t);
    for i in 0..receivers {
        // SAFETY: the receivers are open; this closes them.
        unsafe { sys::uv_close(rx.add(i).cast(), None) };
    }
    // SAFETY: runs the closes; then no handle is left.
    unsafe {
        sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT);
        rawnet::close_loop(lp);
    }
    let done = st.done.get();
    drop((st, slab));
    (done, run)
}
