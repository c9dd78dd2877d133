//! Descriptor pairs: `uv_pipe` and `uv_socketpair`, as owned descriptors (closed
//! when dropped, handed to a handle with `open`), and `Pipe::pair`.

use std::os::fd::{FromRawFd, OwnedFd};

use libuv_sys2 as sys;

use crate::error::{check, Error, Result};
use crate::{LoopHandle, Pipe, SocketType, StatusCode, StdioFlags};

/// libuv's flag for one end: only `NONBLOCK_PIPE` is meaningful here.
fn end_flags(f: StdioFlags, op: &'static str) -> Result<std::ffi::c_int> {
    if !(f - StdioFlags::NONBLOCK_PIPE).is_empty() {
        return Err(Error::new(StatusCode::EINVAL, op));
    }
    Ok(f.bits() as std::ffi::c_int)
}

/// An anonymous pipe (`uv_pipe`): `(read end, write end)`, both close-on-exec.
/// `StdioFlags::NONBLOCK_PIPE` in `read_flags` / `write_flags` makes that end
/// non-blocking (what a `Pipe` handle wants; a child process usually wants
/// blocking ends); any other flag is `EINVAL`.
///
/// ```
/// use std::io::{Read, Write};
/// let (r, w) = uv::pipe(uv::StdioFlags::empty(), uv::StdioFlags::empty())?;
/// let (mut r, mut w) = (std::fs::File::from(r), std::fs::File::from(w));
/// w.write_all(b"through")?;
/// drop(w);
/// let mut s = String::new();
/// r.read_to_string(&mut s)?;
/// assert_eq!(s, "through");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pipe(read_flags: StdioFlags, write_flags: StdioFlags) -> Result<(OwnedFd, OwnedFd)> {
    const OP: &str = "uv_pipe";
    let (rf, wf) = (end_flags(read_flags, OP)?, end_flags(write_flags, OP)?);
    let mut fds: [sys::uv_file; 2] = [-1, -1];
    // SAFETY: `fds` has room for the two descriptors libuv writes.
    check(unsafe { sys::uv_pipe(fds.as_mut_ptr(), rf, wf) }, OP)?;
    // SAFETY: libuv made two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A connected pair of Unix sockets (`uv_socketpair`), both close-on-exec, of type
/// `ty` (`Stream` or `Datagram`; `EINVAL` otherwise); each end non-blocking with
/// `StdioFlags::NONBLOCK_PIPE` in its flags.
pub fn socketpair(
    ty: SocketType,
    flags0: StdioFlags,
    flags1: StdioFlags,
) -> Result<(OwnedFd, OwnedFd)> {
    const OP: &str = "uv_socketpair";
    if !matches!(ty, SocketType::Stream | SocketType::Datagram) {
        return Err(Error::new(StatusCode::EINVAL, OP));
    }
    let (f0, f1) = (end_flags(flags0, OP)?, end_flags(flags1, OP)?);
    let mut fds: [sys::uv_os_sock_t; 2] = [-1, -1];
    // SAFETY: `fds` has room for the two sockets libuv writes.
    let rc = unsafe { sys::uv_socketpair(ty.raw(), 0, fds.as_mut_ptr(), f0, f1) };
    check(rc, OP)?;
    // SAFETY: libuv made two new sockets that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Pipe {
    /// Two connected pipes on `lp` (over a Unix stream socket pair): what one
    /// writes, the other reads.
    pub fn pair(lp: &LoopHandle) -> Result<(Pipe, Pipe)> {
        let (a, b) = socketpair(
            SocketType::Stream,
            StdioFlags::NONBLOCK_PIPE,
            StdioFlags::NONBLOCK_PIPE,
        )?;
        let pa = Pipe::new(lp, false)?;
        pa.open(a).map_err(crate::Error::from)?;
        let pb = Pipe::new(lp, false)?;
        pb.open(b).map_err(crate::Error::from)?;
        Ok((pa, pb))
    }
}
