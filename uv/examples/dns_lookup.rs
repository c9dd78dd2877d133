//! DNS with `getaddrinfo` and `getnameinfo`: resolves "localhost" (service "80")
//! synchronously and on the thread pool, then reverse-resolves 127.0.0.1:80 both
//! ways, by name and numerically. Only the local resolver is used (`/etc/hosts` or
//! the platform's equivalent); nothing goes over the network.
//!
//! Every address of "localhost" must be a loopback address, and the synchronous
//! and asynchronous answers must agree (the addresses as sets, since their order is
//! the resolver's).
//!
//! Run with `cargo run -p libuv-safe --example dns_lookup`. As a tool:
//! `cargo run -p libuv-safe --example dns_lookup -- NAME...` looks up each name
//! (all at once, on the thread pool), prints the addresses, and exits with an
//! error if one of them fails; that may use the network.
//!
//! It prints each answer of `getaddrinfo` (address, family, socket type, protocol),
//! the host and service `getnameinfo` gives, and a last line saying that the
//! answers agree.

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;

type Key = (
    SocketAddr,
    uv::AddressFamily,
    uv::SocketType,
    uv::SocketProtocol,
);

fn keys(infos: &[uv::AddrInfo]) -> HashSet<Key> {
    infos
        .iter()
        .map(|ai| (ai.addr, ai.family, ai.socktype, ai.protocol))
        .collect()
}

fn print_infos(label: &str, infos: &[uv::AddrInfo]) {
    println!("{label}: {} result(s)", infos.len());
    for ai in infos {
        println!(
            "  {:<16} {:?} {:?} {:?}",
            ai.addr.to_string(),
            ai.family,
            ai.socktype,
            ai.protocol
        );
    }
}

/// The tool: looks up `names` concurrently and prints what each resolves to.
fn lookup(names: Vec<String>) -> Result<(), uv::Error> {
    let lp = uv::Loop::new()?;
    let failures = Rc::new(RefCell::new(Vec::new()));
    for name in names {
        let failed = failures.clone();
        let query = name.clone();
        lp.getaddrinfo_with(
            Some(&query),
            None,
            &uv::AddrInfoHints::default(),
            move |r| match r {
                Ok(infos) => {
                    let mut addrs: Vec<_> = infos.iter().map(|ai| ai.addr.ip()).collect();
                    addrs.sort();
                    addrs.dedup();
                    let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
                    println!("{name}: {}", list.join(" "));
                }
                Err(e) => {
                    println!("{name}: {e}");
                    failed.borrow_mut().push(e);
                }
            },
        )?;
    }
    lp.run(uv::RunMode::Default)?;
    let first_failure = failures.borrow().first().cloned();
    match first_failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn main() -> Result<(), uv::Error> {
    let names: Vec<String> = std::env::args().skip(1).collect();
    if !names.is_empty() {
        return lookup(names);
    }
    let lp = uv::Loop::new()?;
    let hints = uv::AddrInfoHints::default();
    let loopback: SocketAddr = "127.0.0.1:80".parse().expect("address");

    // Forward, synchronous: the call blocks and returns the addresses.
    let sync_infos = lp.getaddrinfo(Some("localhost"), Some("80"), &hints)?;
    print_infos("getaddrinfo(localhost, 80), sync", &sync_infos);

    // Reverse, synchronous: by name, and numerically.
    let sync_name = lp.getnameinfo(loopback, uv::NameInfoFlags::empty())?;
    println!(
        "getnameinfo({loopback}), sync: host {:?}, service {:?}",
        sync_name.host, sync_name.service
    );
    let numeric_flags = uv::NameInfoFlags::NUMERICHOST | uv::NameInfoFlags::NUMERICSERV;
    let numeric = lp.getnameinfo(loopback, numeric_flags)?;
    println!(
        "getnameinfo({loopback}, NUMERICHOST | NUMERICSERV), sync: host {:?}, service {:?}",
        numeric.host, numeric.service
    );

    // The same queries on the thread pool; the callbacks run on the loop.
    let async_infos = Rc::new(RefCell::new(None::<Vec<uv::AddrInfo>>));
    let async_name = Rc::new(RefCell::new(None::<uv::NameInfo>));
    let out = async_infos.clone();
    lp.getaddrinfo_with(Some("localhost"), Some("80"), &hints, move |result| {
        let infos = result.expect("async getaddrinfo");
        print_infos("getaddrinfo(localhost, 80), async", &infos);
        *out.borrow_mut() = Some(infos);
    })?;
    let out = async_name.clone();
    lp.getnameinfo_with(loopback, uv::NameInfoFlags::empty(), move |result| {
        let name = result.expect("async getnameinfo");
        println!(
            "getnameinfo({loopback}), async: host {:?}, service {:?}",
            name.host, name.service
        );
        *out.borrow_mut() = Some(name);
    })?;
    // The pending queries keep the loop alive until their callbacks ran.
    let more = lp.run(uv::RunMode::Default)?;
    assert!(!more);

    let async_infos = async_infos
        .borrow_mut()
        .take()
        .expect("getaddrinfo callback ran");
    let async_name = async_name
        .borrow_mut()
        .take()
        .expect("getnameinfo callback ran");

    assert!(!sync_infos.is_empty(), "localhost resolves to something");
    for ai in sync_infos.iter().chain(&async_infos) {
        assert!(ai.addr.ip().is_loopback(), "{} is not loopback", ai.addr);
        assert_eq!(ai.addr.port(), 80);
        let family = if ai.addr.is_ipv4() {
            uv::AddressFamily::Inet
        } else {
            uv::AddressFamily::Inet6
        };
        assert_eq!(ai.family, family);
    }
    assert_eq!(keys(&sync_infos), keys(&async_infos));
    assert!(!sync_name.host.is_empty() && !sync_name.service.is_empty());
    assert_eq!(sync_name, async_name);
    assert_eq!(numeric.host, "127.0.0.1");
    assert_eq!(numeric.service, "80");
    println!(
        "done: {} distinct address(es), all loopback; sync and async agree",
        sync_infos
            .iter()
            .map(|ai| ai.addr)
            .collect::<HashSet<_>>()
            .len()
    );
    Ok(())
}
