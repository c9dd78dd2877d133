//! Regressions from an attacker's pass over the values the safe API takes: option
//! setters and calls with boundary values, odd addresses and names, writes of odd
//! shapes, file system and DNS inputs. Each test says what used to happen (a hang,
//! a setting lost, a wrong value) and asserts the behaviour now: a clear error, or
//! the right value. Counts and values only, never durations.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;

use uv::Stream as _;
use uv::{Loop, RunMode, StatusCode, Tcp};
use uv_tests::net::sockopt;

/// An address on this host where nothing listens: connects to it are refused.
fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A shutdown asked for while the connect was in flight, then a refused connect:
/// libuv kept the shutdown queued behind the connect, and on the connect's failure
/// it stopped watching the socket without ever completing the shutdown. Its
/// callback never ran and `run` never returned (the loop counted the request as
/// active, with nothing left to wake it). Now the shutdown is refused with
/// `EALREADY` while the connect is in flight, and asked for from the connect's
/// callback it completes.
#[test]
fn shutdown_while_connecting_is_refused_not_lost() {
    let lp = Loop::new().unwrap();
    let t = Tcp::new(&lp).unwrap();
    let events: Rc<RefCell<Vec<String>>> = Rc::default();
    let e = events.clone();
    t.connect(refused_addr(), move |t, r| {
        e.borrow_mut()
            .push(format!("connect {:?}", r.map_err(|e| e.code())));
        // From the callback (the connect is over), the shutdown is taken and completes.
        let e2 = e.clone();
        let taken = t.shutdown(move |t, r| {
            e2.borrow_mut().push(format!("shutdown {:?}", r.is_ok()));
            t.close();
        });
        if let Err(err) = taken {
            e.borrow_mut()
                .push(format!("shutdown refused {:?}", err.code()));
            t.close();
        }
    })
    .unwrap();
    let err = t.shutdown(|_, _| panic!("no callback")).unwrap_err();
    assert_eq!(err.code(), StatusCode::EALREADY, "{err:?}");
    // The loop ends: nothing is left queued.
    lp.run(RunMode::Default).unwrap();
    let events = events.borrow();
    assert_eq!(events[0], "connect Err(ECONNREFUSED)");
    // The socket never connected: the shutdown completes with an error.
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1], "shutdown false");
    assert!(t.is_closed());
}

/// The same on a connect that succeeds: refused while in flight, taken (and
/// done) from the connect's callback.
#[test]
fn shutdown_after_a_connect_completes() {
    let lp = Loop::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = Tcp::new(&lp).unwrap();
    let done = Rc::new(Cell::new(0));
    let d = done.clone();
    t.connect(addr, move |t, r| {
        r.unwrap();
        let d = d.clone();
        t.shutdown(move |t, r| {
            r.unwrap();
            d.set(d.get() + 1);
            t.close();
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(
        t.shutdown(|_, _| panic!("no callback")).unwrap_err().code(),
        StatusCode::EALREADY
    );
    lp.run(RunMode::Default).unwrap();
    assert_eq!(done.get(), 1);
    // The peer sees the end of the stream.
    let (mut s, _) = l.accept().unwrap();
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut buf).unwrap();
    assert!(buf.is_empty());
}

/// `set_keepalive_probes` said a zero idle time, interval or count was `EINVAL`
/// when turning keep-alive on; on a handle with no socket yet libuv only stores
/// the switch and took them (`Ok`). Now they are refused with or without a socket,
/// and turning it off still ignores them.
#[test]
fn keepalive_probes_zero_values_are_refused_without_a_socket() {
    use std::time::Duration;
    let lp = Loop::new().unwrap();
    let unbound = Tcp::new(&lp).unwrap();
    let bound = Tcp::new(&lp).unwrap();
    bound
        .bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    let s = Duration::from_secs(1);
    for tcp in [&unbound, &bound] {
        for (idle, interval, count) in [
            (Duration::ZERO, s, 1),
            (s, Duration::from_millis(999), 1),
            (s, s, 0),
        ] {
            let err = tcp
                .set_keepalive_probes(true, idle, interval, count)
                .unwrap_err();
            assert_eq!(
                err.code(),
                StatusCode::EINVAL,
                "{idle:?} {interval:?} {count}"
            );
            tcp.set_keepalive_probes(false, idle, interval, count)
                .unwrap();
        }
        tcp.set_keepalive_probes(true, s, s, 1).unwrap();
    }
    unbound.close();
    bound.close();
    lp.run(RunMode::Default).unwrap();
}

/// The value libuv gives a socket made after keep-alive was turned on without one
/// (what `set_keepalive`'s documentation now says): the switch is kept, the delay
/// is libuv's 60 s, not the one asked for.
#[test]
fn keepalive_set_before_the_socket_keeps_only_the_switch() {
    use std::time::Duration;
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    tcp.set_keepalive(true, Duration::from_secs(300)).unwrap();
    tcp.bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    let fd = tcp.fileno().unwrap();
    assert_eq!(sockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
    assert_eq!(sockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 60);
    // Set again with the socket, the delay is taken.
    tcp.set_keepalive(true, Duration::from_secs(300)).unwrap();
    assert_eq!(sockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 300);
    tcp.close();
    lp.run(RunMode::Default).unwrap();
}

/// `set_send_buffer_size` and `set_recv_buffer_size` said the value reads back
/// unchanged on every platform; Linux keeps even sizes only, raises small ones to
/// its minimum and caps large ones. What their documentation says now: an even
/// size in range reads back as set, an odd one one less, a tiny one as the
/// minimum (at least what was asked), a huge one as the cap (less than asked);
/// 0 and sizes past `i32::MAX` are `EINVAL`.
#[cfg(target_os = "linux")]
#[test]
fn buffer_sizes_read_back_as_documented() {
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    tcp.bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    type Get = fn(&Tcp) -> uv::Result<usize>;
    type Set = fn(&Tcp, usize) -> uv::Result<()>;
    let pairs: [(Get, Set); 2] = [
        (|t| t.send_buffer_size(), |t, v| t.set_send_buffer_size(v)),
        (|t| t.recv_buffer_size(), |t, v| t.set_recv_buffer_size(v)),
    ];
    for (get, set) in pairs {
        set(&tcp, 65536).unwrap();
        assert_eq!(get(&tcp).unwrap(), 65536);
        set(&tcp, 65537).unwrap();
        assert_eq!(get(&tcp).unwrap(), 65536);
        set(&tcp, 1).unwrap();
        let min = get(&tcp).unwrap();
        assert!(min > 1 && min < 65536, "{min}");
        set(&tcp, i32::MAX as usize).unwrap();
        let cap = get(&tcp).unwrap();
        assert!(cap >= min && cap < i32::MAX as usize, "{cap}");
        for v in [0, i32::MAX as usize + 1, usize::MAX] {
            assert_eq!(set(&tcp, v).unwrap_err().code(), StatusCode::EINVAL, "{v}");
        }
        // A refused size changes nothing.
        assert_eq!(get(&tcp).unwrap(), cap);
    }
    tcp.close();
    lp.run(RunMode::Default).unwrap();
}

/// `set_multicast_ttl` said 0 was `EINVAL`; libuv takes 0 to 255 for it (0 keeps
/// the datagrams on this host), and the socket gets 0. What its documentation
/// says now; `set_ttl` still refuses 0.
#[cfg(target_os = "linux")]
#[test]
fn multicast_ttl_zero_is_taken() {
    let lp = Loop::new().unwrap();
    let udp = uv::Udp::new(&lp).unwrap();
    udp.bind("127.0.0.1:0".parse().unwrap(), uv::UdpFlags::empty())
        .unwrap();
    let fd = udp.fileno().unwrap();
    udp.set_multicast_ttl(0).unwrap();
    assert_eq!(sockopt_u8(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL), 0);
    udp.set_multicast_ttl(255).unwrap();
    assert_eq!(
        sockopt_u8(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL),
        255
    );
    assert_eq!(udp.set_ttl(0).unwrap_err().code(), StatusCode::EINVAL);
    udp.close();
    lp.run(RunMode::Default).unwrap();
}

/// A socket option of `fd` Linux gives as a byte or an `int` (the value's low
/// byte).
#[cfg(target_os = "linux")]
fn sockopt_u8(fd: i32, level: i32, name: i32) -> u8 {
    (sockopt(fd, level, name) & 0xff) as u8
}

/// glibc's IDN flags, which the bindings do not list (`AI_IDN`, `AI_CANONIDN`,
/// `NI_IDN`).
const AI_IDN: u32 = 0x40;
const AI_CANONIDN: u32 = 0x80;
const NI_IDN: u32 = 0x20;

/// Flag bits the bindings do not list reached `getaddrinfo` and `getnameinfo`
/// unchecked (every other `flags` argument refuses them). With glibc's IDN flags, a
/// name in a DNS answer that is no valid IDN makes glibc answer
/// `EAI_IDN_ENCODE`, which libuv's translation of these errors does not know: it
/// aborts the process (`assert(!"unknown EAI_* error code")`), on the thread pool
/// for a query made with a callback, so a DNS server could end the program. Now
/// unknown bits are `EINVAL`, for the blocking and the callback forms, before
/// anything starts; the known flags still work.
#[test]
fn dns_flags_unknown_to_the_bindings_are_refused() {
    use uv::{AddrInfoFlags, AddrInfoHints, NameInfoFlags};
    let lp = Loop::new().unwrap();
    let h = lp.handle();
    for bits in [
        AI_IDN,
        AI_CANONIDN,
        AI_CANONIDN | AddrInfoFlags::CANONNAME.bits(),
        1 << 31,
    ] {
        let hints = AddrInfoHints::default().with_flags(AddrInfoFlags::from_bits_retain(bits));
        let err = h.getaddrinfo(Some("localhost"), None, &hints).unwrap_err();
        assert_eq!(err.code(), StatusCode::EINVAL, "{bits:#x}");
        let err = h
            .getaddrinfo_with(Some("localhost"), None, &hints, |_| panic!("no callback"))
            .unwrap_err();
        assert_eq!(err.code(), StatusCode::EINVAL, "{bits:#x}");
    }
    let local: SocketAddr = "127.0.0.1:80".parse().unwrap();
    for bits in [NI_IDN, 1 << 31] {
        let flags = NameInfoFlags::from_bits_retain(bits);
        let err = h.getnameinfo(local, flags).unwrap_err();
        assert_eq!(err.code(), StatusCode::EINVAL, "{bits:#x}");
        let err = h
            .getnameinfo_with(local, flags, |_| panic!("no callback"))
            .unwrap_err();
        assert_eq!(err.code(), StatusCode::EINVAL, "{bits:#x}");
    }
    // Nothing was started: the loop has nothing to run.
    assert!(!lp.run(RunMode::NoWait).unwrap());
    // The known flags go through.
    let hints =
        AddrInfoHints::default().with_flags(AddrInfoFlags::NUMERICHOST | AddrInfoFlags::CANONNAME);
    let got = h.getaddrinfo(Some("127.0.0.1"), None, &hints).unwrap();
    assert!(got.iter().any(|a| a.addr.ip() == local.ip()));
    let got = h
        .getnameinfo(
            local,
            NameInfoFlags::NUMERICHOST | NameInfoFlags::NUMERICSERV,
        )
        .unwrap();
    assert_eq!(
        (got.host.as_str(), got.service.as_str()),
        ("127.0.0.1", "80")
    );
}

/// A title longer than `PROCESS_TITLE_CAPACITY` was cut by libuv at that many
/// bytes, inside a character when one straddled the limit: the title read back
/// held a broken character (a replacement character). Now it is cut at the last
/// whole character; a NUL byte past the cut is still `EINVAL`.
#[test]
fn a_long_title_is_cut_at_a_character() {
    use uv::system::{process_title, set_process_title, PROCESS_TITLE_CAPACITY};
    // Two-byte characters: 1023 bytes end inside the 512th.
    let title = "é".repeat(600);
    set_process_title(&title).unwrap();
    let back = process_title().unwrap();
    assert!(!back.contains('\u{fffd}'), "{back:?}");
    assert_eq!(back, "é".repeat(PROCESS_TITLE_CAPACITY / 2));
    let nul_past_the_cut = format!("{}\0", "x".repeat(PROCESS_TITLE_CAPACITY + 5));
    assert_eq!(
        set_process_title(&nul_past_the_cut).unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(process_title().unwrap(), back);
}

/// The environment variable that makes this binary run a scenario of
/// [`scenario_child`] instead of its tests.
const SCENARIO: &str = "UV_ATTACKS_INPUTS_SCENARIO";

uv_tests::scenarios! {
    SCENARIO => ;
    "title_with_a_long_argv0" => {
        // The first title is the first argument, cut to what fits.
        let first = uv::system::process_title().unwrap();
        assert!(first.len() < uv::system::PROCESS_TITLE_CAPACITY);
        assert!(first.bytes().all(|b| b == b'a'), "{first:?}");
        uv::system::set_process_title("short").unwrap();
        assert_eq!(uv::system::process_title().unwrap(), "short");
        println!("scenario done");
    }
}

/// Runs `scenario` in a child: this binary, with `arg0` as its first argument.
fn run_scenario(scenario: &str, arg0: &str) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    uv_tests::output_within(
        std::process::Command::new(std::env::current_exe().unwrap())
            .arg0(arg0)
            .args([
                "scenario_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SCENARIO, scenario),
    )
}

/// A program started with a first argument of 1023 bytes or more: the title
/// functions set libuv up with a copy of it and room for longer titles, and the
/// room's size was computed as 1022 minus its length: an overflow, which
/// panicked (`attempt to subtract with overflow`, or a capacity overflow in a
/// release build) in `process_title` and `set_process_title`, at every call. Now
/// the first argument is cut to leave the room, and both work.
#[test]
fn title_calls_work_after_a_long_first_argument() {
    for len in [1022, 1023, 1024, 5000] {
        let out = run_scenario("title_with_a_long_argv0", &"a".repeat(len));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("scenario done"),
            "argv[0] of {len} bytes: {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The time `utime` was given, as seconds and nanoseconds since the epoch.
fn spec_of(t: std::time::SystemTime) -> (i64, i64) {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, i64::from(d.subsec_nanos())),
        Err(e) => {
            let d = e.duration();
            match d.subsec_nanos() {
                0 => (-(d.as_secs() as i64), 0),
                n => (-(d.as_secs() as i64) - 1, 1_000_000_000 - i64::from(n)),
            }
        }
    }
}

/// Times reach libuv as `double` seconds, and the nearest double to a time was
/// passed: about half of all present-day times were set a little later than
/// asked (up to 0.12 µs), and one less than that before a second was set to the
/// next second (X.999999999 read back as X+1, 0 ns). Now the double passed is the
/// latest one that libuv turns into a time not after the one asked for: every
/// time reads back in its own second, never later, within one step between
/// doubles (a quarter of a microsecond today, a nanosecond near 1970), for
/// `utime`, `futime` and `lutime`.
#[test]
fn file_times_are_never_set_later_than_asked() {
    use std::time::{Duration, UNIX_EPOCH};
    use uv::{FileTime, Fs};
    let dir = uv_tests::net::TempDir::new("attacks-inputs-times");
    let p = dir.join("f");
    std::fs::write(&p, b"x").unwrap();
    let lp = Loop::new().unwrap();
    let f = Fs::open_sync(&lp, &p, uv::OpenFlags::RDWR, 0).unwrap();
    let mut times = vec![
        UNIX_EPOCH + Duration::new(1_700_000_000, 999_999_999),
        UNIX_EPOCH + Duration::new(1_700_000_000, 999_999_900),
        UNIX_EPOCH + Duration::new(1_700_000_000, 1_000),
        UNIX_EPOCH + Duration::new(1_700_000_000, 0),
        UNIX_EPOCH + Duration::new(4_102_444_800, 999_999_999),
        UNIX_EPOCH + Duration::new(1, 999_999_999),
        UNIX_EPOCH + Duration::new(0, 1),
        UNIX_EPOCH - Duration::new(0, 1),
        UNIX_EPOCH - Duration::new(1, 1),
        UNIX_EPOCH - Duration::new(86_400 * 365, 999_999_999),
    ];
    // A spread of nanoseconds around today.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        times.push(
            UNIX_EPOCH
                + Duration::new(
                    1_600_000_000 + x % 200_000_000,
                    (x >> 32) as u32 % 1_000_000_000,
                ),
        );
    }
    for (i, t) in times.into_iter().enumerate() {
        let want = spec_of(t);
        match i % 3 {
            0 => Fs::utime_sync(&lp, &p, t, FileTime::Omit).unwrap(),
            1 => Fs::futime_sync(&lp, &f, t, FileTime::Omit).unwrap(),
            _ => Fs::lutime_sync(&lp, &p, t, FileTime::Omit).unwrap(),
        }
        let got = Fs::stat_sync(&lp, &p).unwrap().accessed;
        let got = (got.sec, i64::from(got.nsec));
        assert!(got <= want, "{t:?}: set {got:?}, later than {want:?}");
        assert_eq!(
            got.0, want.0,
            "{t:?}: set {got:?}, another second than {want:?}"
        );
        let off = want.1 - got.1;
        // One step between doubles at this time (at least a nanosecond).
        let secs = (want.0 as f64).abs();
        let bound = (((secs + 1.0).next_up() - (secs + 1.0)) * 1e9)
            .ceil()
            .max(1.0) as i64;
        assert!(off <= bound, "{t:?}: set {got:?}, {off} ns before {want:?}");
    }
    f.close_sync(&lp).unwrap();
}

/// `try_send_many` of more than 20 datagrams: libuv sends them in batches of 20
/// (`sendmmsg`), and after each batch it moved its position on by the batch's
/// size and then again by the number sent, so the 20 datagrams after each batch
/// were skipped: of 45 datagrams, numbers 20 to 39 never left, and the call
/// answered 25, as if the first 25 had been sent. Now every datagram leaves, in
/// order, and the count is right.
#[test]
fn try_send_many_sends_every_datagram_past_twenty() {
    let lp = Loop::new().unwrap();
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_nonblocking(true).unwrap();
    let to = rx.local_addr().unwrap();
    let tx = uv::Udp::new(&lp).unwrap();
    tx.bind("127.0.0.1:0".parse().unwrap(), uv::UdpFlags::empty())
        .unwrap();
    for count in [21usize, 45, 100] {
        let payloads: Vec<[u8; 2]> = (0..count).map(|i| (i as u16).to_be_bytes()).collect();
        let batch: Vec<(&[u8], Option<SocketAddr>)> =
            payloads.iter().map(|p| (&p[..], Some(to))).collect();
        let sent = tx.try_send_many(&batch).unwrap();
        assert_eq!(sent, count);
        let mut got = Vec::new();
        let mut buf = [0u8; 8];
        while let Ok(n) = rx.recv(&mut buf) {
            assert_eq!(n, 2);
            got.push(u16::from_be_bytes([buf[0], buf[1]]) as usize);
        }
        assert_eq!(got, (0..count).collect::<Vec<_>>());
    }
    tx.close();
    lp.run(RunMode::Default).unwrap();
}

/// A file write of more than 1024 buffers (`IOV_MAX`): libuv writes them in turns
/// of 1024 and stops at a turn that writes nothing, so 1024 empty buffers then
/// data wrote nothing and answered 0 (a caller writing the rest again got 0
/// every time: a loop that never ends), and empty buffers in a later turn cut the
/// write short there. Now every byte is written, in order, and counted; a write of
/// only empty buffers still answers 0, and one of no buffers `EINVAL`.
#[test]
fn file_writes_past_iov_max_empty_buffers_write_everything() {
    use uv::{Fs, OpenFlags, WriteData};
    let dir = uv_tests::net::TempDir::new("attacks-inputs-iov");
    let p = dir.join("f");
    let lp = Loop::new().unwrap();
    let f = Fs::open_sync(
        &lp,
        &p,
        OpenFlags::CREAT | OpenFlags::RDWR | OpenFlags::TRUNC,
        0o600,
    )
    .unwrap();
    let mut shapes: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut a = vec![Vec::new(); 1024];
    a.push(b"data".to_vec());
    shapes.push(a);
    let mut b: Vec<Vec<u8>> = (0..1024).map(|i| vec![b'a' + (i % 26) as u8]).collect();
    b.extend(vec![Vec::new(); 2048]);
    b.push(b"tail".to_vec());
    shapes.push(b);
    let c: Vec<Vec<u8>> = (0..5000)
        .map(|i| {
            if i % 3 == 0 {
                Vec::new()
            } else {
                vec![(i % 251) as u8; 3]
            }
        })
        .collect();
    shapes.push(c);
    for (i, shape) in shapes.into_iter().enumerate() {
        let want: Vec<u8> = shape.iter().flatten().copied().collect();
        Fs::ftruncate_sync(&lp, &f, 0).unwrap();
        // Positioned, then at the current position (synchronous and on the pool).
        let n = Fs::write_sync(&lp, &f, shape.clone(), Some(0)).unwrap();
        assert_eq!(n, want.len(), "shape {i}");
        assert_eq!(std::fs::read(&p).unwrap(), want, "shape {i}");
        let got = Rc::new(Cell::new(None));
        let g = got.clone();
        Fs::write(&lp, &f, shape, Some(want.len() as u64), move |r| {
            g.set(Some(r.map_err(|e| e.code())))
        })
        .unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(got.get(), Some(Ok(want.len())), "shape {i}");
        assert_eq!(
            std::fs::read(&p).unwrap(),
            [&want[..], &want[..]].concat(),
            "shape {i}"
        );
    }
    assert_eq!(
        Fs::write_sync(&lp, &f, vec![Vec::new(); 3000], Some(0)).unwrap(),
        0
    );
    assert_eq!(
        Fs::write_sync(&lp, &f, WriteData::Many(Vec::new()), Some(0))
            .unwrap_err()
            .code(),
        StatusCode::EINVAL
    );
    f.close_sync(&lp).unwrap();
}

/// Multicast calls given an IPv6 interface address: libuv takes an IPv6
/// interface from the scope id of the text it parses and ignores the address, and
/// the address came without one, so every IPv6 interface address meant the
/// default interface: `set_multicast_interface(Some(::1))` left the socket's
/// interface at 0, and joins "on" an address no interface has were taken. Now the
/// interface that has the address is the one set (its index reads back), and an
/// address no interface has is `EADDRNOTAVAIL`, as for IPv4.
#[cfg(target_os = "linux")]
#[test]
fn ipv6_multicast_interfaces_are_the_ones_asked_for() {
    use std::net::IpAddr;
    use uv::{Membership, Udp, UdpFlags};
    let loopback: IpAddr = "::1".parse().unwrap();
    let Some(lo) = uv::system::interface_addresses()
        .unwrap()
        .into_iter()
        .find(|i| i.address == loopback)
    else {
        return; // No IPv6 loopback here.
    };
    let name = std::ffi::CString::new(lo.name.clone()).unwrap();
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
    assert!(index > 0);
    let lp = Loop::new().unwrap();
    let udp = Udp::new(&lp).unwrap();
    udp.bind("[::1]:0".parse().unwrap(), UdpFlags::empty())
        .unwrap();
    let fd = udp.fileno().unwrap();
    udp.set_multicast_interface(Some(loopback)).unwrap();
    assert_eq!(
        sockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF),
        index
    );
    udp.set_multicast_interface(None).unwrap();
    assert_eq!(sockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF), 0);
    let absent: IpAddr = "2001:db8::7".parse().unwrap();
    let group: IpAddr = "ff02::1:7".parse().unwrap();
    assert_eq!(
        udp.set_multicast_interface(Some(absent))
            .unwrap_err()
            .code(),
        StatusCode::EADDRNOTAVAIL
    );
    assert_eq!(
        udp.set_membership(group, Some(absent), Membership::JoinGroup)
            .unwrap_err()
            .code(),
        StatusCode::EADDRNOTAVAIL
    );
    assert_eq!(
        udp.set_source_membership(
            "ff3e::7".parse().unwrap(),
            Some(absent),
            "::1".parse().unwrap(),
            Membership::JoinGroup
        )
        .unwrap_err()
        .code(),
        StatusCode::EADDRNOTAVAIL
    );
    // The unspecified address still means any interface.
    udp.set_multicast_interface(Some("::".parse().unwrap()))
        .unwrap();
    assert_eq!(sockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF), 0);
    udp.close();
    lp.run(RunMode::Default).unwrap();
}

/// `set_ttl`, `set_multicast_ttl` and `set_multicast_loop` on an IPv6 socket
/// libuv did not bind itself (`Udp::with_family(Inet6)`, or a socket taken over
/// with `open`): libuv picks the IPv4 or IPv6 form of the option by a mark it sets
/// only in its own bind, so it set the IPv4 options (`IP_TTL`, ...) and answered
/// success, and the IPv6 ones kept their defaults (hop limit 64, multicast hops
/// 1, loop on). Now the IPv6 options are the ones set, as for a socket bound
/// through `bind`.
#[cfg(target_os = "linux")]
#[test]
fn ipv6_socket_options_reach_sockets_libuv_did_not_bind() {
    use uv::{AddressFamily, Udp, UdpFlags};
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        return; // No IPv6 here.
    }
    let lp = Loop::new().unwrap();
    let made = Udp::with_family(&lp, AddressFamily::Inet6).unwrap();
    let opened = Udp::new(&lp).unwrap();
    opened
        .open(std::net::UdpSocket::bind("[::1]:0").unwrap())
        .unwrap();
    let bound = Udp::new(&lp).unwrap();
    bound
        .bind("[::1]:0".parse().unwrap(), UdpFlags::empty())
        .unwrap();
    for (name, udp) in [("with_family", &made), ("open", &opened), ("bind", &bound)] {
        let fd = udp.fileno().unwrap();
        udp.set_ttl(7).unwrap();
        udp.set_multicast_ttl(9).unwrap();
        udp.set_multicast_loop(false).unwrap();
        let got = (
            sockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
            sockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS),
            sockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP),
        );
        assert_eq!(got, (7, 9, 0), "{name}");
        udp.set_multicast_interface(None).unwrap();
        assert_eq!(
            sockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF),
            0,
            "{name}"
        );
        udp.close();
    }
    lp.run(RunMode::Default).unwrap();
}

/// Turning keep-alive on with a value Linux refuses (an idle time or interval past
/// 32767 s, more than 127 probes) answered `EINVAL`, but libuv had switched
/// keep-alive on (and set the settings before the refused one) first, so the socket
/// kept alive with the system's settings after the error. The bounds are checked
/// before the call now: the refused call leaves the socket as it was, and the
/// largest values are taken.
#[cfg(target_os = "linux")]
#[test]
fn a_refused_keepalive_leaves_the_socket_as_it_was() {
    use std::time::Duration;
    let s = Duration::from_secs;
    let lp = Loop::new().unwrap();
    let tcp = Tcp::new(&lp).unwrap();
    tcp.bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    let fd = tcp.fileno().unwrap();
    assert_eq!(sockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);
    let refused = [
        tcp.set_keepalive(true, s(32_768)),
        tcp.set_keepalive(true, s(40_000)),
        tcp.set_keepalive_probes(true, s(32_768), s(1), 1),
        tcp.set_keepalive_probes(true, s(1), s(32_768), 1),
        tcp.set_keepalive_probes(true, s(1), s(1), 128),
    ];
    for r in refused {
        assert_eq!(r.unwrap_err().code(), StatusCode::EINVAL);
        assert_eq!(sockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);
    }
    // The largest values Linux takes.
    tcp.set_keepalive_probes(true, s(32_767), s(32_767), 127)
        .unwrap();
    assert_eq!(sockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
    assert_eq!(sockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 32_767);
    assert_eq!(sockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL), 32_767);
    assert_eq!(sockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 127);
    // A refused call while keep-alive is on keeps its settings too.
    let err = tcp.set_keepalive(true, s(32_768)).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert_eq!(sockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 32_767);
    // Turning it off takes any value.
    tcp.set_keepalive(false, s(40_000)).unwrap();
    assert_eq!(sockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);
    tcp.close();
    lp.run(RunMode::Default).unwrap();
}
