//! `uv::pipe`, `uv::socketpair` and `Pipe::pair`: owned descriptor pairs with the
//! flags of the headers.

#![cfg(unix)]

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use uv::{Loop, Pipe, RunMode, SocketType, StatusCode, StdioFlags, Stream};

fn cloexec(fd: &OwnedFd) -> bool {
    // SAFETY: F_GETFD on an open descriptor.
    let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    fl & libc::FD_CLOEXEC != 0
}

#[test]
fn pipe_ends_carry_their_flags_and_bytes() {
    let (r, w) = uv::pipe(StdioFlags::NONBLOCK_PIPE, StdioFlags::empty()).unwrap();
    assert!(
        uv_tests::net::nonblocking(r.as_raw_fd()) && !uv_tests::net::nonblocking(w.as_raw_fd())
    );
    assert!(cloexec(&r) && cloexec(&w));
    let (mut r, mut w) = (std::fs::File::from(r), std::fs::File::from(w));
    // Nothing written yet: the non-blocking read end says so at once.
    let mut buf = [0u8; 8];
    assert_eq!(
        r.read(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    w.write_all(b"bytes").unwrap();
    assert_eq!(r.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"bytes");
}

#[test]
fn flags_other_than_nonblock_are_einval() {
    for bad in [StdioFlags::CREATE_PIPE, StdioFlags::READABLE_PIPE] {
        assert_eq!(
            uv::pipe(bad, StdioFlags::empty()).unwrap_err().code(),
            StatusCode::EINVAL
        );
        assert_eq!(
            uv::socketpair(SocketType::Stream, StdioFlags::empty(), bad)
                .unwrap_err()
                .code(),
            StatusCode::EINVAL
        );
    }
    assert_eq!(
        uv::socketpair(SocketType::Raw, StdioFlags::empty(), StdioFlags::empty())
            .unwrap_err()
            .code(),
        StatusCode::EINVAL
    );
}

#[test]
fn socketpairs_of_both_types_connect_their_ends() {
    let (a, b) = uv::socketpair(
        SocketType::Stream,
        StdioFlags::empty(),
        StdioFlags::NONBLOCK_PIPE,
    )
    .unwrap();
    assert!(
        !uv_tests::net::nonblocking(a.as_raw_fd()) && uv_tests::net::nonblocking(b.as_raw_fd())
    );
    let (mut a, mut b) = (
        std::os::unix::net::UnixStream::from(a),
        std::os::unix::net::UnixStream::from(b),
    );
    a.write_all(b"ab").unwrap();
    b.set_nonblocking(false).unwrap();
    let mut buf = [0u8; 2];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ab");
    b.write_all(b"ba").unwrap();
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ba");

    let (x, y) = uv::socketpair(
        SocketType::Datagram,
        StdioFlags::empty(),
        StdioFlags::empty(),
    )
    .unwrap();
    let (x, y) = (
        std::os::unix::net::UnixDatagram::from(x),
        std::os::unix::net::UnixDatagram::from(y),
    );
    x.send(b"one").unwrap();
    x.send(b"two").unwrap();
    let mut d = [0u8; 8];
    assert_eq!(y.recv(&mut d).unwrap(), 3);
    assert_eq!(&d[..3], b"one");
    assert_eq!(y.recv(&mut d).unwrap(), 3);
    assert_eq!(&d[..3], b"two");
}

#[test]
fn pipe_pair_talks_within_one_loop() {
    let lp = Loop::new().unwrap();
    let (a, b) = Pipe::pair(&lp).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    b.read_start(move |b, r| match r {
        Ok(d) => g.borrow_mut().extend_from_slice(d),
        Err(e) => {
            assert_eq!(e.code(), StatusCode::EOF);
            b.close();
        }
    })
    .unwrap();
    a.write(b"over the pair", |a, r| {
        r.unwrap();
        a.close();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&got.borrow()[..], b"over the pair");
    assert_eq!(lp.handles().len(), 0);
}
