//! getaddrinfo and getnameinfo, synchronous and asynchronous (loopback names only).

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use uv::{
    AddrInfoFlags, AddrInfoHints, AddressFamily, Category, Loop, NameInfoFlags, RunMode,
    SocketType, StatusCode,
};

fn stream_hints() -> AddrInfoHints {
    AddrInfoHints::default().with_socktype(SocketType::Stream)
}

#[test]
fn getaddrinfo_sync_resolves_localhost() {
    let lp = Loop::new().unwrap();
    let res = lp
        .getaddrinfo(Some("localhost"), Some("80"), &stream_hints())
        .unwrap();
    assert!(!res.is_empty());
    for ai in &res {
        assert!(ai.addr.ip().is_loopback(), "{ai:?}");
        assert_eq!(ai.addr.port(), 80);
        assert_eq!(ai.socktype, SocketType::Stream);
        assert!(matches!(
            ai.family,
            AddressFamily::Inet | AddressFamily::Inet6
        ));
    }
}

#[test]
fn getaddrinfo_numeric_hosts_and_families() {
    let lp = Loop::new().unwrap();
    let hints = stream_hints()
        .with_family(AddressFamily::Inet6)
        .with_flags(AddrInfoFlags::NUMERICHOST | AddrInfoFlags::NUMERICSERV);
    let res = lp.getaddrinfo(Some("::1"), Some("8080"), &hints).unwrap();
    assert_eq!(res.len(), 1);
    assert_eq!(res[0].addr, "[::1]:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(res[0].family, AddressFamily::Inet6);
}

#[test]
fn unknown_hosts_are_eai_noname() {
    let lp = Loop::new().unwrap();
    let hints = AddrInfoHints::default().with_flags(AddrInfoFlags::NUMERICHOST);
    let err = lp
        .getaddrinfo(Some("not-a-number"), None, &hints)
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EAI_NONAME);
    assert!(err.is(Category::AddressName) && err.is(Category::Address));
    // A NUL byte in a name is refused before libuv sees it.
    let err = lp
        .getaddrinfo(Some("local\0host"), None, &hints)
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
}

#[test]
fn getnameinfo_sync_names_the_http_port() {
    let lp = Loop::new().unwrap();
    let info = lp
        .getnameinfo("127.0.0.1:80".parse().unwrap(), NameInfoFlags::empty())
        .unwrap();
    assert_eq!(info.service, "http");
    assert!(!info.host.is_empty());
    let numeric = lp
        .getnameinfo(
            "127.0.0.1:80".parse().unwrap(),
            NameInfoFlags::NUMERICHOST | NameInfoFlags::NUMERICSERV,
        )
        .unwrap();
    assert_eq!(
        (numeric.host.as_str(), numeric.service.as_str()),
        ("127.0.0.1", "80")
    );
}

#[test]
fn async_queries_run_on_the_loop() {
    let lp = Loop::new().unwrap();
    let got: Rc<RefCell<Vec<String>>> = Rc::default();
    let g = got.clone();
    lp.getaddrinfo_with(Some("localhost"), Some("80"), &stream_hints(), move |r| {
        let list = r.unwrap();
        assert!(list
            .iter()
            .all(|a| a.addr.ip().is_loopback() && a.addr.port() == 80));
        g.borrow_mut()
            .push(format!("addrinfo {}", !list.is_empty()));
    })
    .unwrap();
    let g = got.clone();
    lp.getnameinfo_with(
        "127.0.0.1:80".parse().unwrap(),
        NameInfoFlags::empty(),
        move |r| {
            g.borrow_mut()
                .push(format!("service {}", r.unwrap().service));
        },
    )
    .unwrap();
    let g = got.clone();
    let hints = AddrInfoHints::default().with_flags(AddrInfoFlags::NUMERICHOST);
    lp.getaddrinfo_with(Some("nope"), None, &hints, move |r| {
        g.borrow_mut()
            .push(format!("error {}", r.unwrap_err().code()));
    })
    .unwrap();
    // Pending queries keep the loop busy: it cannot be closed yet.
    assert_eq!(lp.close().unwrap_err().code(), StatusCode::EBUSY);
    lp.run(RunMode::Default).unwrap();
    let mut got = got.borrow().clone();
    got.sort();
    assert_eq!(got, ["addrinfo true", "error EAI_NONAME", "service http"]);
    lp.close().unwrap();
}

#[test]
fn a_panic_in_a_dns_callback_propagates() {
    let lp = Loop::new().unwrap();
    lp.getnameinfo_with(
        "127.0.0.1:80".parse().unwrap(),
        NameInfoFlags::NUMERICHOST,
        |_| panic!("dns boom"),
    )
    .unwrap();
    let payload = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"dns boom"));
    // The loop goes on.
    let done = Rc::new(RefCell::new(None));
    let d = done.clone();
    lp.getaddrinfo_with(
        Some("127.0.0.1"),
        None,
        &AddrInfoHints::default(),
        move |r| {
            *d.borrow_mut() = Some(r.unwrap()[0].addr.ip());
        },
    )
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*done.borrow(), Some("127.0.0.1".parse::<IpAddr>().unwrap()));
}

#[test]
fn queries_on_a_closed_loop_answer_closed_loop() {
    let lp = Loop::new().unwrap();
    lp.close().unwrap();
    let e = lp
        .getaddrinfo(Some("localhost"), None, &AddrInfoHints::default())
        .unwrap_err();
    assert_eq!(e.kind(), Category::ClosedLoop);
    let e = lp
        .getnameinfo_with(
            "127.0.0.1:80".parse().unwrap(),
            NameInfoFlags::empty(),
            |_| {},
        )
        .unwrap_err();
    assert_eq!(e.kind(), Category::ClosedLoop);
}

/// A cancelled query's callback gets EAI_CANCELED; one a thread already took
/// cannot be cancelled (EBUSY) and completes. Either way the callback runs once,
/// and a finished query cannot be cancelled.
#[test]
fn queries_can_be_cancelled_until_a_thread_takes_them() {
    let lp = Loop::new().unwrap();
    let results: Rc<RefCell<Vec<Result<(), StatusCode>>>> = Rc::default();
    let mut reqs = Vec::new();
    for _ in 0..8 {
        let r = results.clone();
        let req = lp
            .getnameinfo_with(
                "127.0.0.1:80".parse().unwrap(),
                NameInfoFlags::NUMERICHOST,
                move |res| {
                    r.borrow_mut().push(res.map(drop).map_err(|e| e.code()));
                },
            )
            .unwrap();
        assert!(req.is_pending());
        reqs.push(req);
    }
    let cancelled: Vec<bool> = reqs
        .iter()
        .map(|r| match r.cancel() {
            Ok(()) => true,
            Err(e) => {
                assert_eq!(e.code(), StatusCode::EBUSY);
                false
            }
        })
        .collect();
    lp.run(RunMode::Default).unwrap();
    let results = results.borrow();
    assert_eq!(results.len(), 8);
    let n_cancelled = cancelled.iter().filter(|c| **c).count();
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == Err(StatusCode::EAI_CANCELED))
            .count(),
        n_cancelled
    );
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        8 - n_cancelled
    );
    for r in &reqs {
        assert!(!r.is_pending());
        assert_eq!(r.cancel().unwrap_err().code(), StatusCode::EINVAL);
    }
}

/// A query's `Request` kept past its callback and past the loop: done, `cancel` is
/// EINVAL, and the last clone gives the query's memory back (valgrind checks it).
#[test]
fn query_requests_outlive_the_query_and_the_loop() {
    let lp = Loop::new().unwrap();
    let hints = stream_hints().with_flags(AddrInfoFlags::NUMERICHOST);
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let a = lp
        .getaddrinfo_with(Some("127.0.0.1"), Some("80"), &hints, move |r| {
            g.borrow_mut().push(r.unwrap().len());
        })
        .unwrap();
    let g = got.clone();
    let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let b = lp
        .getnameinfo_with(
            addr,
            NameInfoFlags::NUMERICHOST | NameInfoFlags::NUMERICSERV,
            move |r| {
                r.unwrap();
                g.borrow_mut().push(0);
            },
        )
        .unwrap();
    let (a2, b2) = (a.clone(), b.clone());
    assert!(a.is_pending() && b2.is_pending());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.borrow().len(), 2);
    for r in [&a, &b, &a2, &b2] {
        assert!(!r.is_pending());
        assert_eq!(r.cancel().unwrap_err().code(), StatusCode::EINVAL);
    }
    drop((a2, b));
    drop(lp);
    drop((a, b2));
}
