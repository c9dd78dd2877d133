//! Sockets, temporary paths, descriptor checks and loop driving, for tests that
//! need real descriptors (loopback sockets, Unix sockets, regular files).

use std::cell::Cell;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use uv::{Loop, Prepare, RunMode};

/// A fresh, empty directory under the system temp dir, unique to this process and
/// call, removed with everything in it on drop. Unix sockets go here.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes the directory; `tag` names the test, for humans reading `/tmp`.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("uv-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path for `name` inside the directory (nothing is created).
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A new regular file `name` in the directory, open for reading and writing.
    pub fn file(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.join(name))
            .unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What descriptor `fd` of this process refers to (device and inode of the open
/// file), or `None` when `fd` is not open. Compare two answers to tell "closed, or
/// reused for another file" from "still the same file": a number alone may be
/// reused at once by another test thread.
pub fn fd_identity(fd: RawFd) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;

    if fd < 0 {
        return None;
    }
    #[cfg(target_os = "linux")]
    let dir = "/proc/self/fd";
    #[cfg(not(target_os = "linux"))]
    let dir = "/dev/fd";
    // Follows the link to the open file (a socket's inode too).
    std::fs::metadata(format!("{dir}/{fd}"))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// A std TCP listener on 127.0.0.1 (any port) and its address.
pub fn tcp_listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// A connected pair of std TCP streams over 127.0.0.1.
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let (l, a) = tcp_listener();
    let c = TcpStream::connect(a).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// `len` bytes of a pattern that does not repeat every power of two.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Runs `lp` one iteration at a time (`RunMode::Once`) until `done()` holds.
/// Panics if the loop runs out of work first.
pub fn run_until(lp: &Loop, mut done: impl FnMut() -> bool) {
    while !done() {
        let more = lp.run(RunMode::Once).unwrap();
        if !more && !done() {
            panic!("the loop ended before the condition held");
        }
    }
}

/// Counts the iterations of `lp`: a started `Prepare` (it runs once per iteration,
/// before the loop polls), unreferenced so that it keeps nothing alive. Close it
/// when done. A loop that spins shows as a count in the thousands.
pub fn count_iterations(lp: &Loop) -> (Prepare, Rc<Cell<u64>>) {
    let n = Rc::new(Cell::new(0));
    let p = Prepare::new(lp).unwrap();
    let c = n.clone();
    p.start(move |_| c.set(c.get() + 1)).unwrap();
    p.unref().unwrap();
    (p, n)
}

/// The iterations of `lp` while it waits 50 ms for a timer, with nothing else
/// due: a handful when the loop sleeps, thousands when something makes it spin.
pub fn iterations_while_idle(lp: &Loop) -> u64 {
    let (counter, iterations) = count_iterations(lp);
    let seen = Rc::new(Cell::new(None));
    let (s, i) = (seen.clone(), iterations.clone());
    let timer = uv::Timer::new(lp).unwrap();
    timer
        .start(
            std::time::Duration::from_millis(50),
            std::time::Duration::ZERO,
            move |tm| {
                s.set(Some(i.get()));
                counter.close();
                tm.close();
            },
        )
        .unwrap();
    drop(timer);
    lp.run(uv::RunMode::Default).unwrap();
    seen.get().expect("the timer fired")
}

/// Runs `f` once on the loop, `after` from now (a one-shot timer).
pub fn later(lp: &uv::LoopHandle, after: std::time::Duration, f: impl FnOnce() + 'static) {
    uv::Timer::once(lp, after, move |_| f()).unwrap();
}

/// A Unix stream socket bound to `name`, any length that fits `sun_path`, with no
/// NUL added after it (as another program may bind one: std and uv refuse a name
/// that fills `sun_path`), not listening or connected: a socket made outside this
/// library.
pub fn unix_socket_bound_raw(name: &[u8]) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd as _;
    // SAFETY: plain socket calls on a descriptor this function owns; the address
    // is a zeroed sockaddr_un with `name` copied into its sun_path (which it fits).
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
        assert!(name.len() <= sa.sun_path.len());
        for (d, s) in sa.sun_path.iter_mut().zip(name) {
            *d = *s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        let rc = libc::bind(fd, (&raw const sa).cast(), len);
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        owned
    }
}

/// A pipe handle of `lp` on one end of a Unix socket pair, reading and adding the
/// bytes it gets to `got` (closing on an error), with its watcher known to epoll
/// (one loop iteration ran); and the other end.
#[cfg(unix)]
pub fn reading_pipe(
    lp: &Loop,
    got: &Rc<Cell<usize>>,
) -> (uv::Pipe, std::os::unix::net::UnixStream) {
    use uv::Stream as _;
    let (mine, other) = std::os::unix::net::UnixStream::pair().unwrap();
    let p = uv::Pipe::new(lp, false).unwrap();
    p.open(mine).unwrap();
    let g = got.clone();
    p.read_start(move |p, d| match d {
        Ok(d) => g.set(g.get() + d.len()),
        Err(_) => p.close(),
    })
    .unwrap();
    lp.run(RunMode::NoWait).unwrap();
    (p, other)
}

/// Whether this process's descriptor `fd` is in non-blocking mode (it must be
/// open: a failed `F_GETFL` fails the test).
#[cfg(unix)]
pub fn nonblocking(fd: RawFd) -> bool {
    // SAFETY: F_GETFL only reads the descriptor's status flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(flags >= 0, "F_GETFL on {fd}");
    flags & libc::O_NONBLOCK != 0
}

/// Sends `data` with the descriptors `fds` in one message over `sock`
/// (`SCM_RIGHTS`; none when `fds` is empty), as a program that is not libuv may:
/// libuv's `write2` sends one descriptor per message. Panics unless every byte
/// was sent.
#[cfg(unix)]
pub fn send_fds(sock: &std::os::unix::net::UnixStream, data: &[u8], fds: &[RawFd]) {
    use std::os::fd::AsRawFd as _;

    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: the message header points at the live iovec (`data`, which `sendmsg`
    // only reads) and control buffer above (8-byte aligned, `space` bytes long);
    // the first header is written within it and its data holds `fds`; `sendmsg`
    // only reads them and dups the descriptors into the message.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast(), fds.len());
        }
        libc::sendmsg(sock.as_raw_fd(), &msg, 0)
    };
    assert_eq!(
        n,
        data.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

/// A UDP socket of `lp` bound to a free port of the loopback address, and that
/// address.
pub fn bound_udp(lp: &Loop) -> (uv::Udp, SocketAddr) {
    let u = uv::Udp::new(lp).unwrap();
    u.bind("127.0.0.1:0".parse().unwrap(), uv::UdpFlags::empty())
        .unwrap();
    let a = u.local_addr().unwrap();
    (u, a)
}

/// A `RECVMMSG` UDP socket of `lp` (it reads up to 20 datagrams per system
/// call) bound to a free port of the loopback address, and that address.
pub fn batch_udp(lp: &Loop) -> (uv::Udp, SocketAddr) {
    let u = uv::Udp::with_flags(lp, uv::AddressFamily::Inet, uv::UdpFlags::RECVMMSG).unwrap();
    u.bind("127.0.0.1:0".parse().unwrap(), uv::UdpFlags::empty())
        .unwrap();
    let a = u.local_addr().unwrap();
    (u, a)
}

/// A `std` UDP socket bound to a free port of the loopback address (a sender
/// outside the loop), and that address.
pub fn udp_sender() -> (std::net::UdpSocket, SocketAddr) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// Sends the one-byte datagrams `from..to` (each byte its number) from `tx` to
/// `to_addr` (loopback keeps one sender's order).
pub fn send_numbered(tx: &std::net::UdpSocket, to_addr: SocketAddr, from: u8, to: u8) {
    for i in from..to {
        tx.send_to(&[i], to_addr).unwrap();
    }
}

/// How many of `peers` see the end of their stream (every other descriptor of
/// their socket closed), looked at without waiting, again until `want` do or 10
/// seconds pass: a child process another test of the binary starts holds copies of
/// every descriptor of the process from its fork to its `exec`, so an end may show
/// a moment late. (A copy left open never shows it; more than `want` show at once.)
pub fn ends_seen(peers: &[std::os::unix::net::UnixStream], want: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n = peers
            .iter()
            .filter(|peer| {
                peer.set_nonblocking(true).unwrap();
                let mut b = [0u8; 16];
                let mut r: &std::os::unix::net::UnixStream = peer;
                matches!(std::io::Read::read(&mut r, &mut b), Ok(0))
            })
            .count();
        if n >= want || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A `RECVMMSG` socket of `lp` (`batch_udp`) and a `std` sender (`udp_sender`)
/// that has sent it the datagrams `0..count` (`send_numbered`): the socket, its
/// address, the sender and the sender's address.
pub fn numbered_batch(
    lp: &Loop,
    count: u8,
) -> (uv::Udp, SocketAddr, std::net::UdpSocket, SocketAddr) {
    let (rx, rx_addr) = batch_udp(lp);
    let (tx, tx_addr) = udp_sender();
    send_numbered(&tx, rx_addr, 0, count);
    (rx, rx_addr, tx, tx_addr)
}

/// Starts `rx` receiving, each datagram (not the drained event) given to
/// `record`, until the one numbered `at` (one byte, its number), where the
/// callback stops receiving; runs the loop until that batch is in (three
/// non-blocking runs). A `RECVMMSG` socket then keeps the batch's rest.
pub fn receive_until(
    lp: &Loop,
    rx: &uv::Udp,
    at: u8,
    mut record: impl FnMut(&uv::Datagram<'_>) + 'static,
) {
    rx.recv_start(move |u, d| {
        let d = d.unwrap();
        if d.is_drained() {
            return;
        }
        record(&d);
        if d.data[0] == at {
            u.recv_stop().unwrap();
        }
    })
    .unwrap();
    for _ in 0..3 {
        lp.run(RunMode::NoWait).unwrap();
    }
}

/// A TCP handle of `lp` bound to a free port of the loopback address (not yet
/// listening), and that address.
pub fn bound_tcp(lp: &uv::LoopHandle) -> (uv::Tcp, SocketAddr) {
    let t = uv::Tcp::new(lp).unwrap();
    t.bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    let a = t.local_addr().unwrap();
    (t, a)
}

/// A UDP socket of `lp` bound to `addr` (`"127.0.0.1:0"`: a free port), and the
/// address it got.
pub fn udp_bound_to(lp: &Loop, addr: &str) -> (uv::Udp, SocketAddr) {
    let u = uv::Udp::new(lp).unwrap();
    u.bind(addr.parse().unwrap(), uv::UdpFlags::empty())
        .unwrap();
    let a = u.local_addr().unwrap();
    (u, a)
}

/// A Unix socket pair: one end a `Pipe` of `lp` (IPC or not), the other a std
/// stream.
pub fn pipe_and_std(lp: &Loop, ipc: bool) -> (uv::Pipe, std::os::unix::net::UnixStream) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let p = uv::Pipe::new(lp, ipc).unwrap();
    p.open(a).unwrap();
    (p, b)
}

/// Two IPC pipes of `lp`, the ends of one socket pair.
pub fn ipc_pair(lp: &Loop) -> (uv::Pipe, uv::Pipe) {
    let (pa, b) = pipe_and_std(lp, true);
    let pb = uv::Pipe::new(lp, true).unwrap();
    pb.open(b).unwrap();
    (pa, pb)
}

/// An `int` socket option of the socket `fd` at `level`.
pub fn sockopt(fd: RawFd, level: i32, name: i32) -> i32 {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid out-pointers of the sizes given.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&raw mut v).cast(), &mut len) };
    assert_eq!(
        rc,
        0,
        "getsockopt {level} {name}: {}",
        std::io::Error::last_os_error()
    );
    v
}
