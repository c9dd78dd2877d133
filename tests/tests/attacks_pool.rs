//! The attacker's pass over the thread pool (`queue_work`, `random`), channels,
//! `call_later` during a loop's teardown, DNS queries, the `uv::system`
//! functions, socket addresses and timeouts: odd inputs, cancels in every state,
//! panics in jobs, callbacks and drops, loops dropped with work in flight. Each
//! test asserts values, counts and error codes; a regression test says what used
//! to happen.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use uv::{
    AddrInfoFlags, AddrInfoHints, AddressFamily, Loop, NameInfoFlags, RunMode, SocketProtocol,
    SocketType, StatusCode,
};
use uv_tests::pool::{pool_lock, saturate, JobGate};
use uv_tests::provoke::{provoke, provoked, quiet_provoked_panics, run_collecting, PanicOnDrop};

// ---- helpers ----

/// A channel message: a number and maybe a value whose Drop panics.
type Msg = (u32, Option<PanicOnDrop>);

/// What a DNS callback saw: its query's number, the answer as text or the code.
type Answers = Rc<RefCell<Vec<(usize, Result<String, StatusCode>)>>>;

/// Counts its drops.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ---- queue_work: cancel in every state ----

/// A job cancelled from inside its own `after` (and from the `after` of another
/// job, after that one completed): `EINVAL`, the request is no longer pending, and
/// `after` ran once with the job's value.
#[test]
fn cancel_from_inside_its_own_after_is_einval() {
    let lp = Loop::new().unwrap();
    let slot: Rc<RefCell<Option<uv::Request>>> = Rc::default();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (s, g) = (slot.clone(), got.clone());
    let req = lp
        .queue_work(
            || 5u32,
            move |r| {
                let req = s.borrow_mut().take().unwrap();
                assert!(!req.is_pending());
                let e = req.cancel().unwrap_err();
                g.borrow_mut().push((r.unwrap(), e.code()));
                // Twice, and after a clone.
                let again = req.clone();
                assert_eq!(again.cancel().unwrap_err().code(), StatusCode::EINVAL);
            },
        )
        .unwrap();
    *slot.borrow_mut() = Some(req.clone());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*got.borrow(), [(5, StatusCode::EINVAL)]);
    assert!(!req.is_pending());
    assert_eq!(req.cancel().unwrap_err().code(), StatusCode::EINVAL);
}

/// Cancel twice while queued, then once more after a job that ran: the first
/// cancel is `Ok`, a second one before the loop ran is `Ok` too (the job is still
/// cancelled, not run), `after` runs once with `ECANCELED` and the job is dropped
/// unrun, once.
#[test]
fn cancel_twice_while_queued_delivers_one_ecanceled() {
    let _g = pool_lock();
    let lp = Loop::new().unwrap();
    let sat = saturate(&lp);
    let ran = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let calls = Rc::new(RefCell::new(Vec::new()));
    let (r2, d2, c2) = (ran.clone(), DropCount(drops.clone()), calls.clone());
    let req = lp
        .queue_work(
            move || {
                let _keep = &d2;
                r2.fetch_add(1, Ordering::SeqCst);
            },
            move |r| c2.borrow_mut().push(r.unwrap_err().code()),
        )
        .unwrap();
    req.cancel().unwrap();
    req.cancel().unwrap();
    assert!(req.is_pending());
    sat.release(&lp);
    assert_eq!(*calls.borrow(), [StatusCode::ECANCELED]);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(!req.is_pending());
    assert_eq!(req.cancel().unwrap_err().code(), StatusCode::EINVAL);
}

/// Cancel while the job runs (`EBUSY`), then after it ran but before its `after`
/// (`EBUSY`: the pool is done, the loop has not delivered yet): `after` gets the
/// value.
#[test]
fn cancel_while_running_and_while_done_undelivered_is_ebusy() {
    let _g = pool_lock();
    let lp = Loop::new().unwrap();
    let gate = JobGate::default();
    let finished = Arc::new(Barrier::new(2));
    let got = Rc::new(Cell::new(0));
    let (gt, fin, g) = (gate.clone(), finished.clone(), got.clone());
    let req = lp
        .queue_work(
            move || {
                gt.pass();
                fin.wait();
                7
            },
            move |r| g.set(r.unwrap()),
        )
        .unwrap();
    gate.started();
    assert_eq!(req.cancel().unwrap_err().code(), StatusCode::EBUSY);
    gate.open();
    finished.wait();
    // The job returned (or is about to); libuv marks it done before it queues it
    // for the loop: either way it cannot be cancelled.
    assert_eq!(req.cancel().unwrap_err().code(), StatusCode::EBUSY);
    assert!(req.is_pending());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.get(), 7);
}

/// A job cancelled from the `after` of another one, while both wait in the same
/// delivery: the cancelled one's `after` still runs once (`ECANCELED`).
#[test]
fn cancel_from_another_jobs_after_while_queued() {
    let _g = pool_lock();
    let lp = Loop::new().unwrap();
    let sat = saturate(&lp);
    let calls = Rc::new(RefCell::new(Vec::new()));
    let victim: Rc<RefCell<Option<uv::Request>>> = Rc::default();
    let c1 = calls.clone();
    let v1 = victim.clone();
    // The first job is also queued behind the blockers; it is cancelled up front,
    // so its `after` comes in the loop's first delivery; from there it cancels the
    // second (queued too) twice.
    let first = lp
        .queue_work(
            || 1,
            move |r: uv::Result<i32>| {
                c1.borrow_mut().push(("first", r.unwrap_err().code()));
                let v = v1.borrow_mut().take().unwrap();
                v.cancel().unwrap();
                let _ = v.cancel();
            },
        )
        .unwrap();
    let c2 = calls.clone();
    let second = lp
        .queue_work(
            || 2,
            move |r: uv::Result<i32>| {
                c2.borrow_mut().push((
                    "second",
                    r.map_or_else(|e| e.code(), |_| StatusCode::UNKNOWN),
                ))
            },
        )
        .unwrap();
    *victim.borrow_mut() = Some(second);
    first.cancel().unwrap();
    // One iteration delivers the first cancellation (the blockers still run).
    lp.run(RunMode::NoWait).unwrap();
    sat.release(&lp);
    assert_eq!(
        *calls.borrow(),
        [
            ("first", StatusCode::ECANCELED),
            ("second", StatusCode::ECANCELED)
        ]
    );
}

// ---- queue_work: panics ----

/// A job whose value panics in its Drop (when `after` lets it go), and a job that
/// panics, delivered in the same loop iteration: both panics reach the panic hook
/// (`run` would resume the first only), the panicked job's `after` is dropped
/// uncalled, and the loop goes on.
#[test]
fn a_panicking_job_and_a_value_whose_drop_panics() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_panic_hook(move |p| s.borrow_mut().push(provoked(&*p).unwrap()));
    let afters = Rc::new(Cell::new(0));
    let a = afters.clone();
    lp.queue_work(|| PanicOnDrop("value"), move |_r| a.set(a.get() + 1))
        .unwrap();
    let after_drops = Arc::new(AtomicUsize::new(0));
    let guard = DropCount(after_drops.clone());
    lp.queue_work(
        || provoke("job"),
        move |_: uv::Result<()>| {
            let _keep = &guard;
            unreachable!("after of a panicked job")
        },
    )
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    seen.borrow_mut().sort();
    assert_eq!(*seen.borrow(), ["job", "value"]);
    assert_eq!(afters.get(), 1);
    assert_eq!(after_drops.load(Ordering::SeqCst), 1);
}

/// Many more jobs than pool threads, the loop dropped before they end: every
/// `after` runs during the drop, each once, and every job ran.
#[test]
fn many_jobs_then_the_loop_dropped() {
    let lp = Loop::new().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let afters = Rc::new(Cell::new(0));
    for i in 0..200usize {
        let (r, a) = (ran.clone(), afters.clone());
        lp.queue_work(
            move || {
                r.fetch_add(1, Ordering::SeqCst);
                i
            },
            move |v| {
                assert_eq!(v.unwrap(), i);
                a.set(a.get() + 1);
            },
        )
        .unwrap();
    }
    drop(lp);
    assert_eq!(ran.load(Ordering::SeqCst), 200);
    assert_eq!(afters.get(), 200);
}

// ---- call_later during teardown ----

/// A pool job keeps calling `call_later` until it is refused, while the loop is
/// dropped: every call that returned `Ok` ran (during the drop), none after the
/// first refusal was accepted.
#[test]
fn call_later_from_a_job_while_the_loop_is_dropped() {
    let lp = Loop::new().unwrap();
    let cl = lp.call_later_sender().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(Barrier::new(2));
    let (a, r, s) = (accepted.clone(), ran.clone(), started.clone());
    lp.queue_work(
        move || {
            s.wait();
            loop {
                let r = r.clone();
                match cl.call(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                }) {
                    Ok(()) => {
                        a.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        assert!(e.is(uv::Category::ClosedLoop) || e.is(uv::Category::ClosedHandle));
                        break;
                    }
                }
                std::thread::yield_now();
            }
        },
        |r| r.unwrap(),
    )
    .unwrap();
    started.wait();
    drop(lp);
    assert_eq!(ran.load(Ordering::SeqCst), accepted.load(Ordering::SeqCst));
}

// ---- channels ----

/// Values whose Drop panics, sent from threads, a receive callback that sends
/// into its own channel and closes it halfway: every accepted value reaches
/// `on_message` once, the panics of their drops go to `run`.
#[test]
fn channel_values_whose_drop_panics_and_sends_from_the_callback() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let tx_slot: Rc<RefCell<Option<uv::Sender<Msg>>>> = Rc::default();
    let rx_slot: Rc<RefCell<Option<uv::Receiver<Msg>>>> = Rc::default();
    let (g, ts, rs) = (got.clone(), tx_slot.clone(), rx_slot.clone());
    let (tx, rx) = uv::channel(&lp, move |(n, boom): Msg| {
        g.borrow_mut().push(n);
        if n == 1 {
            // Send from inside the callback, then close.
            let tx = ts.borrow_mut().take().unwrap();
            tx.send((100, None)).unwrap();
            rs.borrow().as_ref().unwrap().close();
            assert!(tx.send((101, None)).is_err());
        }
        drop(boom);
    })
    .unwrap();
    *tx_slot.borrow_mut() = Some(tx.clone());
    *rx_slot.borrow_mut() = Some(rx);
    tx.send((0, Some(PanicOnDrop("v0")))).unwrap();
    tx.send((1, None)).unwrap();
    tx.send((2, Some(PanicOnDrop("v2")))).unwrap();
    let panics = run_collecting(&lp);
    assert_eq!(panics, ["v0", "v2"]);
    assert_eq!(*got.borrow(), [0, 1, 2, 100]);
    assert!(tx.send((3, None)).is_err());
}

/// Senders on other threads sending until refused while the loop is dropped:
/// each accepted value is delivered once, during the run or the drop.
#[test]
fn channel_senders_racing_the_loop_drop() {
    let lp = Loop::new().unwrap();
    let got = Rc::new(Cell::new(0usize));
    let g = got.clone();
    let (tx, rx) = uv::channel(&lp, move |_: usize| g.set(g.get() + 1)).unwrap();
    rx.unref().unwrap();
    let start = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (tx, s) = (tx.clone(), start.clone());
            std::thread::spawn(move || {
                s.wait();
                let mut n = 0;
                while tx.send(n).is_ok() {
                    n += 1;
                }
                n
            })
        })
        .collect();
    drop(tx);
    start.wait();
    lp.run(RunMode::NoWait).unwrap();
    drop(lp);
    let sent: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(got.get(), sent);
}

// ---- DNS ----

/// Runs a query both ways (blocking, and on the pool) and checks they agree.
fn query(
    lp: &Loop,
    host: Option<&str>,
    service: Option<&str>,
    hints: &AddrInfoHints,
) -> Result<Vec<SocketAddr>, StatusCode> {
    let sync = lp
        .getaddrinfo(host, service, hints)
        .map(|v| v.into_iter().map(|a| a.addr).collect::<Vec<_>>())
        .map_err(|e| e.code());
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    match lp.getaddrinfo_with(host, service, hints, move |r| *g.borrow_mut() = Some(r)) {
        Ok(_) => {
            lp.run(RunMode::Default).unwrap();
            let r = got.borrow_mut().take().expect("the callback ran");
            let r = r
                .map(|v| v.into_iter().map(|a| a.addr).collect::<Vec<_>>())
                .map_err(|e| e.code());
            assert_eq!(r, sync);
        }
        Err(e) => assert_eq!(Err(e.code()), sync),
    }
    sync
}

fn numeric() -> AddrInfoHints {
    AddrInfoHints::default().with_flags(AddrInfoFlags::NUMERICHOST | AddrInfoFlags::NUMERICSERV)
}

/// Odd names: empty, too long for a DNS name (300 bytes, 80 KiB), code points
/// whose IDNA form overflows, a huge service, unknown families, socket types and
/// protocols: each is an error code (libuv's IDNA conversion and its translation
/// of the resolver's codes), never an abort; blocking and pool queries agree.
#[test]
fn odd_names_and_hints_are_error_codes() {
    let lp = Loop::new().unwrap();
    let any = AddrInfoHints::default();
    assert_eq!(query(&lp, None, None, &any), Err(StatusCode::EINVAL));
    assert_eq!(query(&lp, Some(""), None, &any), Err(StatusCode::EINVAL));
    assert_eq!(
        query(&lp, Some(""), Some(""), &numeric()),
        Err(StatusCode::EINVAL)
    );
    let long = "a".repeat(300);
    assert_eq!(
        query(&lp, Some(&long), None, &numeric()),
        Err(StatusCode::EINVAL)
    );
    let huge = "b.".repeat(40_000);
    assert_eq!(
        query(&lp, Some(&huge), None, &numeric()),
        Err(StatusCode::EINVAL)
    );
    let wide = "\u{10FFFF}".repeat(1000);
    assert_eq!(
        query(&lp, Some(&wide), None, &numeric()),
        Err(StatusCode::EINVAL)
    );
    assert_eq!(
        query(&lp, Some("127.0.0.1"), Some(&huge), &any),
        Err(StatusCode::EAI_SERVICE)
    );
    for (family, socktype, protocol, code) in [
        (9999, 0, 0, StatusCode::EAI_FAMILY),
        (-1, -1, -1, StatusCode::EAI_FAMILY),
        (0, 9999, 0, StatusCode::EAI_SOCKTYPE),
        (0, 0, 9999, StatusCode::EAI_SERVICE),
        (0, i32::MIN, i32::MIN, StatusCode::EAI_SOCKTYPE),
    ] {
        let h = AddrInfoHints::default()
            .with_family(AddressFamily::from_raw(family))
            .with_socktype(SocketType::from_raw(socktype))
            .with_protocol(SocketProtocol::from_raw(protocol));
        for host in ["127.0.0.1", "localhost"] {
            assert_eq!(
                query(&lp, Some(host), Some("80"), &h),
                Err(code),
                "{family} {socktype} {protocol}"
            );
        }
    }
    // Every flag the bindings list at once: an answer or an error code.
    let all = AddrInfoHints::default().with_flags(AddrInfoFlags::all());
    for host in ["127.0.0.1", "::1", "localhost"] {
        match query(&lp, Some(host), Some("80"), &all) {
            Ok(v) => assert!(v.iter().all(|a| a.port() == 80), "{v:?}"),
            Err(c) => assert!(c.raw() < 0, "{c:?}"),
        }
    }
    // Scope ids: by name and by number, kept in the address.
    let stream = numeric().with_socktype(SocketType::Stream);
    let got = query(&lp, Some("fe80::1%999"), Some("7"), &stream).unwrap();
    assert_eq!(
        got,
        [SocketAddr::V6(SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            7,
            0,
            999
        ))]
    );
}

/// A numeric service past 65535, or negative, is `EAI_SERVICE`; 0 and 65535 (also
/// with the white space and sign glibc reads) are ports.
/// Used to happen: glibc kept the low 16 bits of a number past 65535, so
/// "65536" resolved to port 0 (any port, to a `bind`), "131152" and
/// "4294967376" to port 80.
#[test]
fn a_numeric_service_that_is_no_port_is_eai_service() {
    let lp = Loop::new().unwrap();
    let stream = numeric().with_socktype(SocketType::Stream);
    let ports = |s: &str| {
        query(&lp, Some("127.0.0.1"), Some(s), &stream)
            .map(|v| v.iter().map(|a| a.port()).collect::<Vec<_>>())
    };
    assert_eq!(ports("0"), Ok(vec![0]));
    assert_eq!(ports("65535"), Ok(vec![65535]));
    assert_eq!(ports(" +80"), Ok(vec![80]));
    assert_eq!(ports("-0"), Ok(vec![0]));
    assert_eq!(ports("00065535"), Ok(vec![65535]));
    for s in [
        "65536",
        "131152",
        "-1",
        "-65535",
        " 99999999999999999999999",
        "4294967376",
    ] {
        assert_eq!(ports(s), Err(StatusCode::EAI_SERVICE), "{s:?}");
    }
    // Names are the resolver's.
    let any = AddrInfoHints::default().with_socktype(SocketType::Stream);
    assert_eq!(
        query(&lp, Some("127.0.0.1"), Some("http"), &any).map(|v| v[0].port()),
        Ok(80)
    );
}

/// Queries waiting behind a busy pool, some cancelled (twice), the loop dropped
/// while they wait: during the drop every callback runs once, the cancelled ones
/// with `EAI_CANCELED`, the others with their answer; a callback whose capture
/// panics on drop has its panic caught there.
#[test]
fn queued_queries_cancelled_then_the_loop_dropped() {
    quiet_provoked_panics();
    let _g = pool_lock();
    let lp = Loop::new().unwrap();
    let sat = saturate(&lp);
    let got: Answers = Rc::default();
    let mut reqs = Vec::new();
    for i in 0..8usize {
        let g = got.clone();
        let boom = (i == 3).then(|| PanicOnDrop("capture"));
        let req = if i % 2 == 0 {
            lp.getaddrinfo_with(
                Some("127.0.0.1"),
                Some("80"),
                &numeric().with_socktype(SocketType::Stream),
                move |r| {
                    let _keep = &boom;
                    g.borrow_mut()
                        .push((i, r.map(|v| v[0].addr.to_string()).map_err(|e| e.code())));
                },
            )
        } else {
            let a: SocketAddr = "127.0.0.1:80".parse().unwrap();
            lp.getnameinfo_with(
                a,
                NameInfoFlags::NUMERICHOST | NameInfoFlags::NUMERICSERV,
                move |r| {
                    let _keep = &boom;
                    g.borrow_mut().push((
                        i,
                        r.map(|n| format!("{}:{}", n.host, n.service))
                            .map_err(|e| e.code()),
                    ));
                },
            )
        }
        .unwrap();
        if i % 4 < 2 {
            req.cancel().unwrap();
            req.cancel().unwrap();
        }
        reqs.push(req);
    }
    let done = sat.done.clone();
    sat.release.wait();
    drop(lp);
    assert_eq!(done.get(), uv_tests::fs::pool_size());
    let mut got = got.borrow().clone();
    got.sort_by_key(|g| g.0);
    let want: Vec<_> = (0..8)
        .map(|i| {
            let r = if i % 4 < 2 {
                Err(StatusCode::EAI_CANCELED)
            } else {
                Ok("127.0.0.1:80".to_string())
            };
            (i, r)
        })
        .collect();
    assert_eq!(got, want);
    for r in &reqs {
        assert!(!r.is_pending());
        assert_eq!(r.cancel().unwrap_err().code(), StatusCode::EINVAL);
    }
}

/// `getnameinfo` of the unspecified addresses, the broadcast address, port 0 and
/// 65535, link-local addresses with scope ids (of an interface, of none, the
/// largest) and a mapped IPv4 address: numeric answers, the same blocking and on
/// the pool; with `NAMEREQD` and no name, `EAI_NONAME`.
#[test]
fn nameinfo_of_odd_addresses() {
    let lp = Loop::new().unwrap();
    let ll: std::net::Ipv6Addr = "fe80::1".parse().unwrap();
    let num = NameInfoFlags::NUMERICHOST | NameInfoFlags::NUMERICSERV;
    for (a, host, service) in [
        (
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            "0.0.0.0",
            "0",
        ),
        (
            SocketAddr::new(IpAddr::V4(Ipv4Addr::BROADCAST), 65535),
            "255.255.255.255",
            "65535",
        ),
        (
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            "::",
            "0",
        ),
        (
            SocketAddr::V6(SocketAddrV6::new(ll, 80, 0, 1)),
            "fe80::1%lo",
            "80",
        ),
        (
            SocketAddr::V6(SocketAddrV6::new(ll, 80, 0xfffff, 999)),
            "fe80::1%999",
            "80",
        ),
        (
            SocketAddr::V6(SocketAddrV6::new(ll, 1, u32::MAX, u32::MAX)),
            "fe80::1%4294967295",
            "1",
        ),
        (
            SocketAddr::V6(SocketAddrV6::new(
                "::ffff:127.0.0.1".parse().unwrap(),
                1,
                0,
                0,
            )),
            "::ffff:127.0.0.1",
            "1",
        ),
    ] {
        for f in [
            num,
            num | NameInfoFlags::NOFQDN | NameInfoFlags::DGRAM,
            NameInfoFlags::all(),
        ] {
            let sync = lp
                .getnameinfo(a, f)
                .map(|n| (n.host, n.service))
                .map_err(|e| e.code());
            let got = Rc::new(RefCell::new(None));
            let g = got.clone();
            lp.getnameinfo_with(a, f, move |r| {
                *g.borrow_mut() = Some(r.map(|n| (n.host, n.service)).map_err(|e| e.code()))
            })
            .unwrap();
            lp.run(RunMode::Default).unwrap();
            assert_eq!(got.borrow_mut().take(), Some(sync.clone()));
            if f.contains(NameInfoFlags::NAMEREQD) {
                assert_eq!(sync, Err(StatusCode::EAI_NONAME), "{a}");
            } else {
                assert_eq!(sync, Ok((host.to_string(), service.to_string())), "{a}");
            }
        }
    }
}

// ---- timers and timeouts ----

/// A repeating timer whose period is under a millisecond keeps firing, and reads
/// back a 1 ms repeat; a repeat set under a millisecond too.
/// Used to happen: the period became 0 ms, which libuv reads as no repeat: the
/// callback ran once, `run` returned, `repeat()` read 0.
#[test]
fn a_repeat_under_a_millisecond_keeps_repeating() {
    let lp = Loop::new().unwrap();
    let t = uv::Timer::new(&lp).unwrap();
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    t.start(Duration::ZERO, Duration::from_micros(500), move |t| {
        n2.set(n2.get() + 1);
        if n2.get() == 3 {
            t.close();
        }
    })
    .unwrap();
    assert_eq!(t.repeat().unwrap(), Duration::from_millis(1));
    lp.run(RunMode::Default).unwrap();
    assert_eq!(n.get(), 3);
    let t = uv::Timer::new(&lp).unwrap();
    t.set_repeat(Duration::from_nanos(1)).unwrap();
    assert_eq!(t.repeat().unwrap(), Duration::from_millis(1));
    t.set_repeat(Duration::from_micros(1500)).unwrap();
    assert_eq!(t.repeat().unwrap(), Duration::from_millis(2));
    t.set_repeat(Duration::ZERO).unwrap();
    assert_eq!(t.repeat().unwrap(), Duration::ZERO);
}

/// A timeout with a fraction of a millisecond fires no earlier, in loop time,
/// than asked: a whole millisecond after the loop time it was set at.
/// Used to happen: the fraction was dropped; a 0.5 ms timeout fired in the same
/// iteration, at the loop time it was set at.
#[test]
fn a_timeout_under_a_millisecond_does_not_fire_early() {
    let lp = Loop::new().unwrap();
    lp.update_time().unwrap();
    let set_at = lp.now().unwrap();
    let fired_at = Rc::new(Cell::new(None));
    let f = fired_at.clone();
    let h = lp.handle();
    let _t = lp
        .timeout(Duration::from_micros(500), move || {
            f.set(Some(h.now().unwrap()))
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    let fired_at = fired_at.get().expect("the timeout fired");
    assert!(
        fired_at >= set_at + Duration::from_millis(1),
        "{set_at:?} {fired_at:?}"
    );
}

/// Timeouts at the extremes: `Duration::ZERO` fires at the next iteration;
/// `Duration::MAX` and `u64::MAX` ms are pending for good (an unreferenced one
/// lets `run` return), can be cancelled, and a timer started with them reads a
/// finite `due_in` and restarts (`again`) with a huge repeat.
#[test]
fn timeouts_of_zero_and_forever() {
    let lp = Loop::new().unwrap();
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    let zero = lp
        .timeout(Duration::ZERO, move || f.set(f.get() + 1))
        .unwrap();
    let f = fired.clone();
    let never = lp
        .timeout(Duration::MAX, move || f.set(f.get() + 100))
        .unwrap();
    let f = fired.clone();
    let never2 = lp
        .timeout(Duration::from_millis(u64::MAX), move || {
            f.set(f.get() + 100)
        })
        .unwrap();
    never.unref().unwrap();
    never2.unref().unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(fired.get(), 1);
    assert!(!zero.is_pending());
    assert!(never.is_pending() && never2.is_pending());
    assert!(never.cancel());
    assert!(!zero.cancel());
    drop(never2);
    assert_eq!(fired.get(), 1);
    let t = uv::Timer::new(&lp).unwrap();
    t.start(Duration::MAX, Duration::MAX, |_| unreachable!())
        .unwrap();
    assert!(t.due_in().unwrap() > Duration::from_secs(1 << 40));
    t.again().unwrap();
    assert!(t.due_in().unwrap() > Duration::from_secs(1 << 40));
    assert_eq!(t.repeat().unwrap(), Duration::from_millis(u64::MAX));
    t.unref().unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
}

// ---- system ----

/// The environment variable that makes this binary run a scenario of
/// [`scenario_child`] instead of its tests.
const SCENARIO: &str = "UV_ATTACKS_POOL_SCENARIO";

/// Runs the scenario named in [`SCENARIO`] (nothing without it): the child side of
/// the tests that change the process's environment.
#[test]
fn scenario_child() {
    use uv::system;
    let Ok(name) = std::env::var(SCENARIO) else {
        return;
    };
    match name.as_str() {
        "long_values" => {
            // More than 16 MiB, with a character that is not 'x' at both ends.
            let value = format!("<{}>", "x".repeat((16 << 20) + 5));
            // SAFETY: this child runs this one test, on one thread; nothing else
            // reads the environment meanwhile.
            unsafe {
                system::setenv("UV_POOL_LONG", &value).unwrap();
                system::setenv("HOME", &value).unwrap();
                system::setenv("TMPDIR", format!("/{value}/")).unwrap();
            }
            let got = system::getenv("UV_POOL_LONG").unwrap().unwrap();
            assert!(got == *value, "{} bytes", got.len());
            assert!(system::homedir().unwrap().as_os_str() == value.as_str());
            let tmp = system::tmpdir().unwrap();
            assert!(tmp.as_os_str() == format!("/{value}").as_str());
            let all = system::environ().unwrap();
            assert!(all.iter().any(|(n, v)| n == "UV_POOL_LONG" && *v == *value));
            println!("scenario done");
        }
        "odd_variables" => {
            // SAFETY: as above.
            unsafe {
                for bad in ["", "A=B", "=", "A\0B"] {
                    let e = system::setenv(bad, "v").unwrap_err();
                    assert_eq!(e.code(), StatusCode::EINVAL, "{bad:?}");
                    let e = system::unsetenv(bad).unwrap_err();
                    assert_eq!(e.code(), StatusCode::EINVAL, "{bad:?}");
                }
                let e = system::setenv("UV_POOL_V", "a\0b").unwrap_err();
                assert_eq!(e.code(), StatusCode::EINVAL);
                assert_eq!(system::getenv("UV_POOL_V").unwrap(), None);
                system::setenv("UV_POOL_V", "").unwrap();
                assert_eq!(system::getenv("UV_POOL_V").unwrap(), Some("".into()));
                system::setenv("UV_POOL_V", "a=b=").unwrap();
                assert_eq!(system::getenv("UV_POOL_V").unwrap(), Some("a=b=".into()));
                system::unsetenv("UV_POOL_V").unwrap();
                system::unsetenv("UV_POOL_V").unwrap();
                assert_eq!(system::getenv("UV_POOL_V").unwrap(), None);
                // An empty HOME is taken as it is; an empty TMPDIR too.
                system::setenv("HOME", "").unwrap();
                assert_eq!(system::homedir().unwrap().as_os_str(), "");
                system::setenv("TMPDIR", "/").unwrap();
                assert_eq!(system::tmpdir().unwrap().as_os_str(), "/");
            }
            println!("scenario done");
        }
        other => panic!("unknown scenario {other}"),
    }
}

fn run_scenario(scenario: &str) {
    let out = uv_tests::output_within(&mut uv_tests::scenario_command(SCENARIO, scenario));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("scenario done"),
        "{scenario}: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Environment values over 16 MiB are read whole: `getenv`, `homedir` (HOME),
/// `tmpdir` (TMPDIR, its trailing slash dropped) and `environ`.
/// Used to happen: `ENOBUFS`: the buffer stopped growing at 16 MiB, although
/// libuv said how much the value needs.
#[test]
fn environment_values_over_16_mib_are_read_whole() {
    run_scenario("long_values");
}

/// Names that are empty, hold `=` or NUL, and values with NUL are `EINVAL`;
/// empty values and values with `=` round-trip; unsetting twice succeeds.
#[test]
fn odd_environment_names_and_values() {
    run_scenario("odd_variables");
    // Reading odd names needs no other thread kept off.
    for name in ["", "PATH=", "=x"] {
        assert_eq!(uv::system::getenv(name).unwrap(), None, "{name:?}");
    }
    assert_eq!(
        uv::system::getenv("A\0B").unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(uv::system::getenv("x".repeat(100_000)).unwrap(), None);
}

/// The rest of `uv::system` with odd inputs: missing users and groups are
/// `ENOENT`, priorities out of range `EINVAL` (nothing changed), missing
/// processes `ESRCH`, odd directories for `chdir` (nothing changed), interface
/// indexes with no interface `ENXIO`, unknown clocks and random flags `EINVAL`.
#[test]
fn system_functions_with_odd_inputs() {
    use uv::system;
    for uid in [u32::MAX, u32::MAX - 7] {
        assert_eq!(
            system::get_passwd_by_uid(uid).unwrap_err().code(),
            StatusCode::ENOENT
        );
        assert_eq!(
            system::get_group(uid).unwrap_err().code(),
            StatusCode::ENOENT
        );
    }
    assert_eq!(system::get_group(0).unwrap().gid, 0);
    let before = system::getpriority(0).unwrap();
    for p in [
        i32::MIN,
        system::PRIORITY_HIGHEST - 1,
        system::PRIORITY_LOW + 1,
        i32::MAX,
    ] {
        assert_eq!(
            system::setpriority(0, p).unwrap_err().code(),
            StatusCode::EINVAL,
            "{p}"
        );
    }
    assert_eq!(system::getpriority(0).unwrap(), before);
    for pid in [i32::MIN, -1, i32::MAX] {
        assert_eq!(
            system::getpriority(pid).unwrap_err().code(),
            StatusCode::ESRCH,
            "{pid}"
        );
    }
    let cwd = system::cwd().unwrap();
    assert_eq!(system::chdir("").unwrap_err().code(), StatusCode::ENOENT);
    assert_eq!(
        system::chdir("a\0b").unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(
        system::chdir("a".repeat(5000)).unwrap_err().code(),
        StatusCode::ENAMETOOLONG
    );
    assert_eq!(system::cwd().unwrap(), cwd);
    for i in [0, u32::MAX, 1 << 31] {
        assert_eq!(
            system::if_indextoname(i).unwrap_err().code(),
            StatusCode::ENXIO
        );
        assert_eq!(
            system::if_indextoiid(i).unwrap_err().code(),
            StatusCode::ENXIO
        );
    }
    assert_eq!(
        system::if_indextoname(1).unwrap(),
        system::if_indextoiid(1).unwrap()
    );
    for c in [-1, 99, i32::MAX] {
        let e = system::clock_gettime(uv::ClockId::from_raw(c)).unwrap_err();
        assert_eq!(e.code(), StatusCode::EINVAL);
    }
    uv::random_sync(&mut [], 0).unwrap();
    for flags in [1, u32::MAX] {
        assert_eq!(
            uv::random_sync(&mut [0; 4], flags).unwrap_err().code(),
            StatusCode::EINVAL
        );
    }
    let lp = Loop::new().unwrap();
    let e = lp.random(vec![0; 4], 1, |_| unreachable!()).unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    lp.random(Vec::new(), 0, move |r| g.set(Some(r.map(|v| v.len()))))
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.take().unwrap().unwrap(), 0);
}

/// Process titles: a NUL byte anywhere is `EINVAL` and keeps the title; one of
/// 1 MiB is cut to the capacity, at a character; an empty one is taken.
#[test]
fn process_titles_with_nul_huge_and_empty() {
    use uv::system;
    system::set_process_title("pool-title").unwrap();
    for bad in ["a\0b", "\0", &format!("{}\0", "é".repeat(2000))] {
        assert_eq!(
            system::set_process_title(bad).unwrap_err().code(),
            StatusCode::EINVAL
        );
        assert_eq!(system::process_title().unwrap(), "pool-title");
    }
    let huge = "é".repeat(1 << 19);
    system::set_process_title(&huge).unwrap();
    let t = system::process_title().unwrap();
    assert!(
        t.len() <= system::PROCESS_TITLE_CAPACITY && t.len() >= system::PROCESS_TITLE_CAPACITY - 1
    );
    assert!(t.chars().all(|c| c == 'é'));
    system::set_process_title("").unwrap();
    assert_eq!(system::process_title().unwrap(), "");
}

// ---- addresses ----

/// Linux abstract socket names of 107 and 108 bytes (the leading NUL included)
/// bind and read back whole; one of 109 is `EINVAL` with `NO_TRUNCATE` and bound
/// cut to 108 bytes without (libuv's documented cut); an empty name autobinds
/// (a fresh abstract name); names that are not abstract follow the `sun_path`
/// rule (107 bytes bind, 108 are `EINVAL`).
#[cfg(target_os = "linux")]
#[test]
fn abstract_socket_names_at_the_edges() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use uv::{Pipe, PipeFlags};

    let lp = Loop::new().unwrap();
    let name = |len: usize, tag: u8| {
        let mut v = format!("\0uv-pool-{}-{}-", std::process::id(), tag as char).into_bytes();
        v.resize(len, tag);
        v
    };
    for (len, tag) in [(107, b'a'), (108, b'b')] {
        let n = name(len, tag);
        for flags in [PipeFlags::empty(), PipeFlags::NO_TRUNCATE] {
            let p = Pipe::new(&lp, false).unwrap();
            p.bind2(Path::new(OsStr::from_bytes(&n)), flags).unwrap();
            assert_eq!(p.local_addr().unwrap().as_os_str().as_bytes(), &n[..]);
            p.close();
            lp.run(RunMode::Default).unwrap();
        }
    }
    let n = name(109, b'c');
    let p = Pipe::new(&lp, false).unwrap();
    let e = p
        .bind2(Path::new(OsStr::from_bytes(&n)), PipeFlags::NO_TRUNCATE)
        .unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    p.bind2(Path::new(OsStr::from_bytes(&n)), PipeFlags::empty())
        .unwrap();
    assert_eq!(p.local_addr().unwrap().as_os_str().as_bytes(), &n[..108]);
    let auto = Pipe::new(&lp, false).unwrap();
    auto.bind2(Path::new(""), PipeFlags::empty()).unwrap();
    let got = auto.local_addr().unwrap();
    let got = got.as_os_str().as_bytes();
    assert!(got.len() > 1 && got[0] == 0, "{got:?}");
    let dir = std::env::temp_dir().join(format!("uv-pool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.as_os_str().len() + 1;
    for (len, ok) in [(107, true), (108, false), (109, false)] {
        let path = dir.join("s".repeat(len - base));
        assert_eq!(path.as_os_str().len(), len);
        let p = Pipe::new(&lp, false).unwrap();
        for flags in [PipeFlags::empty(), PipeFlags::NO_TRUNCATE] {
            match p.bind2(&path, flags) {
                Ok(()) => {
                    assert!(ok, "{len}");
                    assert_eq!(p.local_addr().unwrap(), path);
                    break;
                }
                Err(e) => {
                    assert!(!ok, "{len}: {e:?}");
                    assert_eq!(e.code(), StatusCode::EINVAL);
                }
            }
        }
        p.close();
    }
    p.close();
    auto.close();
    lp.run(RunMode::Default).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An IPv6 address's flow information is the C field's value, as std and socket2
/// write it: `flowinfo()` goes into `sin6_flowinfo` unchanged, and comes back out
/// unchanged. The library used to swap its bytes both ways, so a `SocketAddrV6`
/// with flow information 0x12345 reached libuv as 0x45230100 (where std's sockets
/// send 0x12345), and an address read from libuv differed from what std reads
/// from the same C address.
#[test]
fn ipv6_flow_information_is_written_as_std_writes_it() {
    let a = SocketAddrV6::new(Ipv6Addr::LOCALHOST, 4000, 0x12345, 7);
    let c = uv::runtime::SockAddr::new(&SocketAddr::V6(a));
    // SAFETY: an IPv6 address's C form is a sockaddr_in6.
    let sin6 = unsafe { *c.as_ptr().cast::<libc::sockaddr_in6>() };
    assert_eq!(
        (
            sin6.sin6_flowinfo,
            sin6.sin6_scope_id,
            u16::from_be(sin6.sin6_port)
        ),
        (0x12345, 7, 4000)
    );
    let back = uv::runtime::read_sockaddr("test", |p, len| {
        // SAFETY: `p` has room for any address (`len` says how much).
        unsafe {
            assert!(*len as usize >= std::mem::size_of::<libc::sockaddr_in6>());
            p.cast::<libc::sockaddr_in6>().write(sin6);
        }
        0
    })
    .unwrap();
    assert_eq!(back, SocketAddr::V6(a));
    assert_eq!(c.to_std(), Some(SocketAddr::V6(a)));
}

/// Socket addresses of the corners round-trip through `bind` and `local_addr`:
/// unspecified and loopback, IPv4 and IPv6 (flow info and scope id read back as
/// the kernel keeps them: 0 for a bound address, whatever `bind` was given),
/// port 65535 (bound there, or `EADDRINUSE`).
#[test]
fn socket_addresses_round_trip_through_sockets() {
    let lp = Loop::new().unwrap();
    let flowing = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0x12345, 0));
    for a in ["127.0.0.1:0", "0.0.0.0:0", "[::1]:0", "[::]:0"]
        .map(|a| a.parse::<SocketAddr>().unwrap())
        .into_iter()
        .chain([flowing])
    {
        let u = uv::Udp::new(&lp).unwrap();
        u.bind(a, uv::UdpFlags::empty()).unwrap();
        let got = u.local_addr().unwrap();
        assert_eq!(got.ip(), a.ip());
        assert_ne!(got.port(), 0);
        if let SocketAddr::V6(v6) = got {
            assert_eq!((v6.scope_id(), v6.flowinfo()), (0, 0));
        }
        u.close();
    }
    let a = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 65535);
    let u = uv::Udp::new(&lp).unwrap();
    match u.bind(a, uv::UdpFlags::empty()) {
        Ok(()) => assert_eq!(u.local_addr().unwrap(), a),
        Err(e) => assert_eq!(e.code(), StatusCode::EADDRINUSE),
    }
    u.close();
    lp.run(RunMode::Default).unwrap();
}

/// The last sender goes while `on_message` panics on every value: the channel
/// still closes (`run` returns), every value gets its call once, each panic
/// reaches the hook, in order.
/// Used to happen: lost panics: the values left for the close were delivered
/// with only the first of their panics kept, so the hook saw "m0" (a delivery)
/// and "m1" (the close), never "m2" and "m3".
#[test]
fn a_channel_whose_callback_always_panics_still_closes() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_panic_hook(move |p| s.borrow_mut().push(provoked(&*p).unwrap()));
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c = calls.clone();
    let (tx, rx) = uv::channel(&lp, move |n: usize| {
        c.borrow_mut().push(n);
        provoke(["m0", "m1", "m2", "m3"][n]);
    })
    .unwrap();
    let t = std::thread::spawn(move || {
        for n in 0..4 {
            tx.send(n).unwrap();
        }
    });
    t.join().unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(rx.is_closed());
    assert_eq!(*calls.borrow(), [0, 1, 2, 3]);
    assert_eq!(*seen.borrow(), ["m0", "m1", "m2", "m3"]);
}

/// `on_message` holds the last `Sender` and drops it at the first value, after
/// sending one more: the second value is delivered, then the channel closes and
/// `run` returns.
#[test]
fn a_channel_whose_callback_drops_the_last_sender() {
    let lp = Loop::new().unwrap();
    let slot: Rc<RefCell<Option<uv::Sender<u8>>>> = Rc::default();
    let calls = Rc::new(RefCell::new(Vec::new()));
    let (s, c) = (slot.clone(), calls.clone());
    let (tx, rx) = uv::channel(&lp, move |n: u8| {
        c.borrow_mut().push(n);
        if let Some(tx) = s.borrow_mut().take() {
            tx.send(n + 1).unwrap();
        }
    })
    .unwrap();
    tx.send(1).unwrap();
    *slot.borrow_mut() = Some(tx);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*calls.borrow(), [1, 2]);
    assert!(rx.is_closed());
    assert!(slot.borrow().is_none());
}

/// A job that panics, whose `after` panics when dropped, on a loop with a panic
/// hook: the hook gets the job's panic, then the drop's; without a hook `run`
/// resumes the job's (the later one is dropped, as every panic after the first).
/// Used to happen: the drop's panic was dropped quietly, also with a hook, which
/// is promised each panic.
#[test]
fn a_panicked_jobs_after_whose_drop_panics_reaches_the_hook_too() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_panic_hook(move |p| s.borrow_mut().push(provoked(&*p).unwrap()));
    let boom = PanicOnDrop("after's drop");
    lp.queue_work(
        || -> u8 { provoke("job") },
        move |_| {
            let _keep = &boom;
            unreachable!("after of a panicked job")
        },
    )
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*seen.borrow(), ["job", "after's drop"]);
    drop(lp.take_panic_hook());
    let boom = PanicOnDrop("after's drop");
    lp.queue_work(
        || -> u8 { provoke("job") },
        move |_| {
            let _keep = &boom;
            unreachable!("after of a panicked job")
        },
    )
    .unwrap();
    assert_eq!(run_collecting(&lp), ["job"]);
}
