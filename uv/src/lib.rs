//! Safe libuv for Rust, generated from a spec.
//!
//! Start with the [`guide`]: the loop, handles and which of them keep running after
//! their value is dropped, callbacks, threads, errors, panics, and a runnable
//! example for every handle type and every request.
//!
//! The status codes, the error hierarchy, the enums and the handle types are generated
//! from the data files in `spec/` (shipped in the package) and checked against the
//! libuv headers at build time; the runtime core (loop, handle lifecycle, callbacks)
//! is written by hand.
//!
//! ```
//! use std::time::Duration;
//!
//! let lp = uv::Loop::new()?;
//! let timer = uv::Timer::new(&lp)?;
//! let mut ticks = 0;
//! timer.start(Duration::from_millis(1), Duration::from_millis(1), move |t| {
//!     ticks += 1;
//!     if ticks == 3 {
//!         t.close();
//!     }
//! })?;
//! lp.run(uv::RunMode::Default)?;
//! # Ok::<(), uv::Error>(())
//! ```
#![warn(missing_docs)]

extern crate self as uv;

mod addr;
mod callback;
mod channel;
mod contracts;
mod dns;
mod error;
#[cfg(unix)]
mod fd_pair;
#[cfg(unix)]
mod file;
pub mod future;
mod generated;
pub mod guide;
mod handle;
pub mod handles;
mod hooks;
mod libuv_flags;
mod loop_;
mod loop_request;
mod request;
pub mod requests;
mod stat;
mod stream;
pub mod system;
mod timeout;
mod work;

pub use addr::{SendAddr, SockAddr};
pub use channel::{channel, Receiver, SendError, Sender};
pub use dns::{AddrInfo, AddrInfoHints, DnsRequest, NameInfo};
pub use error::{Error, Rejected, Result};
#[cfg(unix)]
pub use fd_pair::{pipe, socketpair};
#[cfg(unix)]
pub use file::{Dir, DirEntry, File, FileTime, DIR_BATCH, DIR_BATCH_MAX};
pub use future::{JoinError, JoinHandle};
pub use generated::*;
pub use handle::{Handle, KeepAlive};
pub use handles::*;
pub use loop_::{Loop, LoopHandle, PanicHook, PanicPayload};
pub use loop_request::Request;
pub use requests::*;
pub use stat::{Stat, StatFs, Timespec};
pub use stream::{PoolAllocator, ReadAllocator, Stream, WriteData, READ_BUFFER_SIZE};
pub use timeout::Timeout;
pub use work::random_sync;

/// The README's code examples, run as doctests (`uv/README.md` is a link to the
/// repository's README, and the package's copy of it).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Declares a handle type from a spec file (see `spec/README.md`, "Adding a handle type").
pub use uv_macros::handle;

/// Declares a request type from a spec file (see `spec/README.md`, "Requests").
pub use uv_macros::request;

/// The raw libuv bindings (`libuv-sys2`), for what the safe API does not cover.
pub use libuv_sys2 as sys;

/// A file descriptor.
#[cfg(unix)]
pub type RawFd = std::os::fd::RawFd;
/// A file descriptor.
#[cfg(windows)]
pub type RawFd = i32;
/// A socket.
#[cfg(unix)]
pub type RawSocket = std::os::fd::RawFd;
/// A socket.
#[cfg(windows)]
pub type RawSocket = u64;

/// The runtime surface generated code calls: what `uv::handle!` expansions are made
/// of, in this crate and in crates that declare their own handle types from spec
/// files (see `spec/README.md`, "Adding a handle type").
///
/// Hand-written code has no need of it: everything here is reached through the
/// generated types. The functions check the preconditions their docs state and
/// return `uv::Error`; the `unsafe` ones and the `unsafe` traits state what their
/// caller guarantees, and the generated code says where each guarantee comes from
/// in a `// SAFETY:` comment. It follows the crate's version like the rest of the
/// API, so a crate's generated code keeps compiling within a minor version.
pub mod runtime {
    pub use crate::addr::{read_sockaddr, SockStorage as SockAddr};
    pub use crate::callback::{CallCallback, CallSlot, HandleCallback, HandleFn, HandleSlot, Slot};
    pub use crate::contracts::{
        enum_arg, fd_kind, fd_kind_for, flags_arg, int_arg, owned_fd, owned_fd_for, settle_kept,
        settle_owned_fd, settle_raw_fd, FdKind,
    };
    pub use crate::error::check;
    /// The `before`/`after` hooks of the runtime that spec methods name (see
    /// `spec/README.md`, "Preconditions"): generated code calls them with the handle;
    /// and the `after` hooks of spec callbacks, called with the handle's libuv struct.
    pub mod hooks {
        pub use crate::hooks::{
            forget_oneshot, hold_opened_socket, pool_call, refuse_oneshot_mid_delivery,
            refuse_oneshot_on_ignored, refuse_unterminated_local_name,
            refuse_unterminated_peer_name, restore_ignored_signals, signal_call, signal_start_call,
            stop_delivered_oneshot,
        };
    }
    /// The handle states a spec method can require (`requires = [...]`).
    pub mod contracts {
        pub use crate::contracts::{
            named, not_connected, not_connecting, not_listening, own_process, poll_settled,
        };
    }
    pub use crate::handle::Place;
    pub use crate::handle::{
        dispatch, dispatch_handle, marking_delivery, HandleKind, KeepAlive, Slots, Typed,
    };
    /// libuv's internal flags the runtime reads or writes, by name, with the
    /// values it uses (checked against libuv's `uv-common.h` by the tests).
    #[doc(hidden)]
    pub use crate::libuv_flags::ALL as LIBUV_INTERNAL_FLAGS;
    pub use crate::request::submit;
    /// The generic core of requests that belong to the loop (request spec files).
    pub mod loop_request {
        #[cfg(unix)]
        pub use crate::file::{
            file_offset, file_size, file_time, path_context, DirUse, FileKeep, ReadBuf, ReqPath,
            ReqPathRef, WriteBufs,
        };
        pub use crate::loop_request::{
            data_init, fs_results, no_context, run_sync, submit, Context, Done, LoopRequestKind,
            Reader,
        };
    }
    pub use crate::stream::{making_socket, StreamKind, StreamSlots};
    pub use bitflags;

    /// Stands for a `// SAFETY:` comment in generated code (the formatted files show
    /// it as one); expands to nothing.
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __uv_safety {
        ($($t:tt)*) => {};
    }
    pub use crate::__uv_safety as safety;

    /// Turns a setter's result (`void` or an `int` status) into a `Result`.
    pub trait SetterResult {
        /// The result.
        fn into_result(self, op: &'static str) -> crate::Result<()>;
    }

    impl SetterResult for () {
        fn into_result(self, _op: &'static str) -> crate::Result<()> {
            Ok(())
        }
    }

    impl SetterResult for i32 {
        fn into_result(self, op: &'static str) -> crate::Result<()> {
            crate::error::check(self, op)
        }
    }

    /// libuv's message for a raw code.
    pub fn strerror(raw: i32) -> String {
        crate::error::strerror(raw)
    }

    /// `Duration` to libuv milliseconds, a fraction of a millisecond rounded up
    /// (saturating): a timer never fires before its timeout, and a repeat under a
    /// millisecond stays a repeat (0 ms would mean none to libuv).
    #[inline]
    pub fn duration_to_ms(d: std::time::Duration) -> u64 {
        // Whole seconds times 1000 plus the millisecond part, plus one for a
        // fraction left, without the 128-bit arithmetic of `as_millis`.
        let fraction = !d.subsec_nanos().is_multiple_of(1_000_000);
        d.as_secs()
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(u64::from(d.subsec_millis()) + u64::from(fraction)))
            .unwrap_or(u64::MAX)
    }

    /// `Duration` to libuv's whole seconds (the fraction is dropped): `EINVAL` past
    /// `u32::MAX` seconds, and under one second when `min_1s` is set.
    #[inline]
    pub fn duration_to_s(
        d: std::time::Duration,
        min_1s: bool,
        op: &'static str,
    ) -> crate::Result<std::ffi::c_uint> {
        match std::ffi::c_uint::try_from(d.as_secs()) {
            Ok(s) if !(min_1s && s < 1) => Ok(s),
            _ => Err(crate::Error::new(crate::StatusCode::EINVAL, op)),
        }
    }

    /// [`duration_to_s`] of an argument with `min_1s_if` (and its `max`): while
    /// `on` (the named flag) is set, at least one second and at most `max`
    /// seconds, `EINVAL` otherwise.
    #[inline]
    pub fn duration_to_s_if(
        d: std::time::Duration,
        on: bool,
        max: u32,
        op: &'static str,
    ) -> crate::Result<std::ffi::c_uint> {
        let s = duration_to_s(d, on, op)?;
        if on && s > max {
            return Err(crate::Error::new(crate::StatusCode::EINVAL, op));
        }
        Ok(s)
    }

    /// A count with `min_1s_if` (and its `max`): while `on` (the named flag) is
    /// set, at least one and at most `max`, `EINVAL` otherwise.
    #[inline]
    pub fn count_if(n: u32, on: bool, max: u32, op: &'static str) -> crate::Result<u32> {
        if on && !(1..=max).contains(&n) {
            return Err(crate::Error::new(crate::StatusCode::EINVAL, op));
        }
        Ok(n)
    }

    /// `Duration` to libuv milliseconds as an `unsigned int`: `EINVAL` past
    /// `u32::MAX` ms.
    #[inline]
    pub fn duration_to_ms_u32(
        d: std::time::Duration,
        op: &'static str,
    ) -> crate::Result<std::ffi::c_uint> {
        std::ffi::c_uint::try_from(d.as_millis())
            .map_err(|_| crate::Error::new(crate::StatusCode::EINVAL, op))
    }

    pub use crate::stat::{opt_path_arg as opt_path, stat_arg as stat};

    /// An IP address as the C string libuv parses.
    pub fn c_ip(addr: std::net::IpAddr) -> std::ffi::CString {
        std::ffi::CString::new(addr.to_string()).expect("an IP address has no NUL byte")
    }

    /// An interface given by one of its addresses, as libuv's multicast calls
    /// take it (`ip_addr_opt`): IPv4 as text; IPv6 with the name of the (first)
    /// interface that has the address after it (`addr%name`), since libuv takes
    /// an IPv6 interface from the scope id it parses from there and ignores the
    /// address. The unspecified address (`::`) stays as it is (any interface).
    /// `EADDRNOTAVAIL` when no interface has the address.
    pub fn c_interface_ip(
        addr: std::net::IpAddr,
        op: &'static str,
    ) -> crate::Result<std::ffi::CString> {
        let v6 = match addr {
            std::net::IpAddr::V6(a) if !a.is_unspecified() => a,
            _ => return Ok(c_ip(addr)),
        };
        let name = crate::system::interface_addresses()?
            .into_iter()
            .find(|i| i.address == addr)
            .map(|i| i.name)
            .ok_or_else(|| crate::Error::new(crate::StatusCode::EADDRNOTAVAIL, op))?;
        std::ffi::CString::new(format!("{v6}%{name}"))
            .map_err(|_| crate::Error::new(crate::StatusCode::EINVAL, op))
    }

    /// libuv milliseconds to `Duration`.
    #[inline]
    pub fn ms_to_duration(ms: u64) -> std::time::Duration {
        std::time::Duration::from_millis(ms)
    }

    /// A callback's status argument.
    #[inline]
    pub fn status(rc: i32, op: &'static str) -> crate::Result<()> {
        crate::error::check(rc, op)
    }

    /// A path argument as a C string (a
    /// [`ReqPath`](crate::runtime::loop_request::ReqPath): short paths inline, without
    /// an allocation): a NUL byte in it is `EINVAL`, naming the path.
    #[inline]
    pub fn c_path(path: &std::path::Path, op: &'static str) -> crate::Result<crate::file::ReqPath> {
        crate::file::ReqPath::new(path, op)
    }

    /// The size of a Unix socket name (`sun_path`).
    #[cfg(unix)]
    const SUN_PATH: usize = std::mem::size_of::<libc::sockaddr_un>()
        - std::mem::offset_of!(libc::sockaddr_un, sun_path);

    /// A Unix socket's path (`socket_path`) as a C string: a NUL byte in it is
    /// `EINVAL`, and on Unix so is a path that does not fit a socket name
    /// (`sun_path`) with a NUL after it. libuv cuts a longer one short
    /// (`uv_pipe_bind`, `uv_pipe_connect`), naming another path than the one
    /// given; one that fills `sun_path` is bound with no NUL after it, and
    /// `uv_pipe_getsockname`/`uv_pipe_getpeername` take its length with `strlen`,
    /// which reads past the address.
    pub fn c_socket_path(
        path: &std::path::Path,
        op: &'static str,
    ) -> crate::Result<crate::file::ReqPath> {
        #[cfg(unix)]
        if path.as_os_str().len() >= SUN_PATH {
            return Err(crate::Error::new(crate::StatusCode::EINVAL, op));
        }
        crate::file::ReqPath::new(path, op)
    }

    /// A Unix socket's name given with its length (`socket_name`): as
    /// [`path_bytes`], and on Unix a name that is not abstract (its first byte is
    /// not NUL) and does not fit `sun_path` with a NUL after it is `EINVAL`
    /// whatever the flags (see [`c_socket_path`]: libuv cuts a longer one to a name
    /// with no NUL). Abstract names have no NUL after them by design, and libuv
    /// reads them back by their length.
    pub fn socket_name(path: &std::path::Path, op: &'static str) -> crate::Result<Vec<u8>> {
        let v = path_bytes(path);
        // (`v` ends with the NUL `path_bytes` adds: the name is one byte shorter.)
        #[cfg(unix)]
        if v[0] != 0 && v.len() > SUN_PATH {
            return Err(crate::Error::new(crate::StatusCode::EINVAL, op));
        }
        #[cfg(not(unix))]
        let _ = op;
        Ok(v)
    }

    /// A string argument as a C string: a NUL byte in it is `EINVAL`.
    pub fn c_str(s: &str, op: &'static str) -> crate::Result<std::ffi::CString> {
        std::ffi::CString::new(s).map_err(|_| crate::Error::new(crate::StatusCode::EINVAL, op))
    }

    /// A path's bytes, for C functions that take a name and its length (NUL bytes
    /// allowed), with a NUL after them: pass the length without it. The pointer is
    /// then valid to read even for an empty name (libuv reads the first byte).
    pub fn path_bytes(path: &std::path::Path) -> Vec<u8> {
        #[cfg(unix)]
        let mut v = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).to_vec();
        #[cfg(not(unix))]
        let mut v = path.to_string_lossy().into_owned().into_bytes();
        v.push(0);
        v
    }

    /// The largest buffer [`read_path`] grows to (16 MiB: far beyond any path or
    /// environment value the system gives).
    pub const READ_PATH_MAX: usize = 1 << 24;

    /// Reads a path through a `getsockname`-style call (`buffer`, `size` in/out),
    /// growing the buffer when the call says `ENOBUFS` with the size it needs.
    /// `ENOBUFS` when it asks for more than [`READ_PATH_MAX`] bytes, or still
    /// asks for more after 16 grown buffers (a size that keeps changing).
    pub fn read_path(
        op: &'static str,
        mut f: impl FnMut(*mut std::ffi::c_char, *mut usize) -> i32,
    ) -> crate::Result<std::path::PathBuf> {
        let mut buf = vec![0u8; 256];
        let mut grown = 0;
        loop {
            let mut len = buf.len();
            let rc = f(buf.as_mut_ptr().cast(), &mut len);
            if rc == crate::StatusCode::ENOBUFS.raw() && len > buf.len() {
                if len >= READ_PATH_MAX || grown == 16 {
                    return Err(crate::Error::new(crate::StatusCode::ENOBUFS, op));
                }
                grown += 1;
                buf.resize(len + 1, 0);
                continue;
            }
            crate::error::check(rc, op)?;
            buf.truncate(len);
            #[cfg(unix)]
            return Ok(
                <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(buf).into(),
            );
            #[cfg(not(unix))]
            return Ok(String::from_utf8_lossy(&buf).into_owned().into());
        }
    }

    /// A file descriptor or socket argument: negative ones are `EBADF`.
    #[inline]
    pub fn fd<T: PartialOrd + Default>(fd: T, op: &'static str) -> crate::Result<T> {
        if fd < T::default() {
            Err(crate::Error::new(crate::StatusCode::EBADF, op))
        } else {
            Ok(fd)
        }
    }
}
