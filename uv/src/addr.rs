//! `std::net::SocketAddr` at the edges: conversion to and from the C socket address
//! structs (IPv6 flow info and scope id kept).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use libuv_sys2 as sys;

use crate::error::{check, Error, Result};
use crate::StatusCode;

/// A socket address in C form, ready to pass to libuv, in a `sockaddr_storage`
/// (as large as any family's struct): the runtime's form (`uv::runtime::SockAddr`),
/// also the one libuv fills in. Users' sends take the smaller [`SockAddr`].
///
/// Made from a `SocketAddr`, only the family's struct (`sockaddr_in` or
/// `sockaddr_in6`) is written: libuv's calls that take an address read no more than
/// their family's struct (they refuse other families). An empty one, for libuv to
/// fill in, is zeroed whole.
pub struct SockStorage {
    storage: std::mem::MaybeUninit<sys::sockaddr_storage>,
}

// The family's struct fits at the start of the storage, with its alignment.
const _: () = assert!(
    std::mem::size_of::<InetAddr>() <= std::mem::size_of::<sys::sockaddr_storage>()
        && std::mem::align_of::<InetAddr>() <= std::mem::align_of::<sys::sockaddr_storage>()
);

impl SockStorage {
    /// The C form of `addr`.
    #[inline]
    pub fn new(addr: &SocketAddr) -> SockStorage {
        let mut storage = std::mem::MaybeUninit::<sys::sockaddr_storage>::uninit();
        // SAFETY: the storage is large and aligned enough for an InetAddr (checked
        // at compile time above); the family's struct is written whole.
        unsafe {
            storage
                .as_mut_ptr()
                .cast::<InetAddr>()
                .write(InetAddr::new(addr))
        };
        SockStorage { storage }
    }

    /// An empty address, for libuv to fill in.
    pub fn empty() -> SockStorage {
        SockStorage {
            storage: std::mem::MaybeUninit::zeroed(),
        }
    }

    /// The pointer libuv takes.
    #[inline]
    pub fn as_ptr(&self) -> *const sys::sockaddr {
        self.storage.as_ptr().cast()
    }

    /// The pointer libuv fills in.
    pub fn as_mut_ptr(&mut self) -> *mut sys::sockaddr {
        self.storage.as_mut_ptr().cast()
    }

    /// The size of the storage, as libuv's length arguments want it.
    pub fn capacity() -> i32 {
        std::mem::size_of::<sys::sockaddr_storage>() as i32
    }

    /// The Rust form; `None` for families other than IPv4 and IPv6.
    pub fn to_std(&self) -> Option<SocketAddr> {
        // SAFETY: the storage holds a socket address whose family's struct is
        // written (made from a SocketAddr, or zeroed and filled in by libuv), as
        // large as any.
        unsafe { from_c(self.as_ptr()) }
    }
}

/// An IPv4 or IPv6 socket address in C form, for the calls that only read it
/// (`uv_udp_send`, `uv_udp_try_send`): as large as a `sockaddr_in6` and written
/// field by field ([`SockStorage`] puts one at the start of a `sockaddr_storage`;
/// [`SockAddr`] is one made from a `SocketAddr`).
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) union InetAddr {
    v4: sys::sockaddr_in,
    v6: sys::sockaddr_in6,
}

impl InetAddr {
    /// The C form of `addr`.
    #[inline]
    pub(crate) fn new(addr: &SocketAddr) -> InetAddr {
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_in is plain C data; all-zero is a valid value.
                let mut v4: sys::sockaddr_in = unsafe { std::mem::zeroed() };
                v4.sin_family = sys::AF_INET as sys::sa_family_t;
                v4.sin_port = a.port().to_be();
                // SAFETY: the address field is 4 bytes of plain data.
                unsafe {
                    std::ptr::addr_of_mut!(v4.sin_addr)
                        .cast::<[u8; 4]>()
                        .write_unaligned(a.ip().octets())
                };
                InetAddr { v4 }
            }
            SocketAddr::V6(a) => {
                // SAFETY: sockaddr_in6 is plain C data; all-zero is a valid value.
                let mut v6: sys::sockaddr_in6 = unsafe { std::mem::zeroed() };
                v6.sin6_family = sys::AF_INET6 as sys::sa_family_t;
                v6.sin6_port = a.port().to_be();
                // As std and socket2 write it: `flowinfo()` is the C field's value,
                // not swapped (a `SocketAddrV6` means the same address to both).
                v6.sin6_flowinfo = a.flowinfo();
                v6.sin6_scope_id = a.scope_id();
                // SAFETY: the address field is 16 bytes of plain data.
                unsafe {
                    std::ptr::addr_of_mut!(v6.sin6_addr)
                        .cast::<[u8; 16]>()
                        .write_unaligned(a.ip().octets())
                };
                InetAddr { v6 }
            }
        }
    }

    /// The pointer libuv takes: a `sockaddr_in` or a `sockaddr_in6`, as its family
    /// says (libuv reads no more than that).
    #[inline]
    pub(crate) fn as_ptr(&self) -> *const sys::sockaddr {
        (self as *const InetAddr).cast()
    }
}

/// An IPv4 or IPv6 socket address in the C form libuv takes (a `sockaddr_in` or a
/// `sockaddr_in6`), made once from a `SocketAddr`.
///
/// [`Udp::send`](crate::Udp::send) and [`Udp::try_send`](crate::Udp::try_send) take
/// one by reference as well as an `Option<SocketAddr>` (see [`SendAddr`]): a
/// `SocketAddr` is put in C form on every call, a `SockAddr` is passed as it is,
/// so a program that sends many datagrams to the same peer converts its address
/// once. Both give libuv the same bytes, so the results and the errors are the
/// same (an IPv6 address on an IPv4 socket is refused alike). It is as large as a
/// `sockaddr_in6` (28 bytes) and `Copy`.
///
/// ```no_run
/// use std::net::SocketAddr;
///
/// let lp = uv::Loop::new()?;
/// let udp = uv::Udp::new(&lp)?;
/// udp.bind("127.0.0.1:0".parse()?, uv::UdpFlags::empty())?;
/// let peer: SocketAddr = "127.0.0.1:9999".parse()?;
/// // Converted once, then passed as it is on every send.
/// let to = uv::SockAddr::from(peer);
/// assert_eq!(to.to_std(), peer);
/// for n in 0..3u8 {
///     udp.try_send(&[n], &to)?;
/// }
/// udp.send(uv::WriteData::Static(b"last"), &to, |u, r| {
///     r.expect("send");
///     u.close();
/// })?;
/// lp.run(uv::RunMode::Default)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct SockAddr {
    /// Always written whole from a `SocketAddr`: its family is `AF_INET` or
    /// `AF_INET6`, whose struct it holds, so libuv (which reads no more than the
    /// family's struct) never reads past it.
    c: InetAddr,
}

impl SockAddr {
    /// The C form of `addr`.
    #[inline]
    pub fn new(addr: SocketAddr) -> SockAddr {
        SockAddr {
            c: InetAddr::new(&addr),
        }
    }

    /// The `SocketAddr` it was made from (IPv6 flow info and scope id included).
    #[inline]
    pub fn to_std(&self) -> SocketAddr {
        // SAFETY: the InetAddr holds the whole struct of its family (written by
        // `new`), which is IPv4 or IPv6.
        match unsafe { from_c(self.c.as_ptr()) } {
            Some(a) => a,
            None => unreachable!("a SockAddr is IPv4 or IPv6"),
        }
    }

    /// The pointer libuv's calls take (`*const sockaddr`): a `sockaddr_in` or a
    /// `sockaddr_in6`, as its family says, valid while `self` is.
    #[inline]
    pub fn as_ptr(&self) -> *const sys::sockaddr {
        self.c.as_ptr()
    }
}

impl From<SocketAddr> for SockAddr {
    #[inline]
    fn from(addr: SocketAddr) -> SockAddr {
        SockAddr::new(addr)
    }
}

impl From<SocketAddrV4> for SockAddr {
    #[inline]
    fn from(addr: SocketAddrV4) -> SockAddr {
        SockAddr::new(SocketAddr::V4(addr))
    }
}

impl From<SocketAddrV6> for SockAddr {
    #[inline]
    fn from(addr: SocketAddrV6) -> SockAddr {
        SockAddr::new(SocketAddr::V6(addr))
    }
}

impl From<SockAddr> for SocketAddr {
    #[inline]
    fn from(addr: SockAddr) -> SocketAddr {
        addr.to_std()
    }
}

impl PartialEq for SockAddr {
    fn eq(&self, other: &SockAddr) -> bool {
        self.to_std() == other.to_std()
    }
}

impl Eq for SockAddr {}

impl std::hash::Hash for SockAddr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.to_std().hash(state)
    }
}

impl std::fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SockAddr({})", self.to_std())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// The destination of [`Udp::send`](crate::Udp::send) and
/// [`Udp::try_send`](crate::Udp::try_send): an `Option<SocketAddr>` (`None` for a
/// connected socket's peer), put in C form on each call, or a
/// [`&SockAddr`](SockAddr), put in C form once, when it was made. Sealed:
/// implemented by those two only.
pub trait SendAddr: sealed::Sealed {
    /// Calls `f` with the C form of the address (null for `None`), valid during
    /// the call.
    #[doc(hidden)]
    fn with_c<R>(self, f: impl FnOnce(*const sys::sockaddr) -> R) -> R;

    /// The C form of the address (null for `None`): written into `into` if it has
    /// to be made, or the address's own; valid while `into` and `self` live.
    #[doc(hidden)]
    fn write_c(self, into: &mut std::mem::MaybeUninit<sys::sockaddr_in6>) -> *const sys::sockaddr;
}

impl sealed::Sealed for Option<SocketAddr> {}

impl SendAddr for Option<SocketAddr> {
    #[inline(always)]
    fn with_c<R>(self, f: impl FnOnce(*const sys::sockaddr) -> R) -> R {
        with_inet(self.as_ref(), f)
    }

    #[inline(always)]
    fn write_c(self, into: &mut std::mem::MaybeUninit<sys::sockaddr_in6>) -> *const sys::sockaddr {
        // SAFETY: an InetAddr has a sockaddr_in6's size and alignment (checked at
        // compile time below), and a MaybeUninit may hold any bytes.
        let into = unsafe {
            &mut *(into as *mut std::mem::MaybeUninit<sys::sockaddr_in6>)
                .cast::<std::mem::MaybeUninit<InetAddr>>()
        };
        write_inet(self.as_ref(), into)
    }
}

// An InetAddr fits where a sockaddr_in6 does (`write_c`'s storage).
const _: () = assert!(
    std::mem::size_of::<InetAddr>() == std::mem::size_of::<sys::sockaddr_in6>()
        && std::mem::align_of::<InetAddr>() == std::mem::align_of::<sys::sockaddr_in6>()
);

impl sealed::Sealed for &SockAddr {}

impl SendAddr for &SockAddr {
    #[inline(always)]
    fn with_c<R>(self, f: impl FnOnce(*const sys::sockaddr) -> R) -> R {
        f(self.as_ptr())
    }

    #[inline(always)]
    fn write_c(self, _: &mut std::mem::MaybeUninit<sys::sockaddr_in6>) -> *const sys::sockaddr {
        self.as_ptr()
    }
}

/// Calls `f` with the C form of `addr` (null for `None`), for the calls that only
/// read an address during the call (`uv_udp_send`, `uv_udp_try_send`): a
/// `sockaddr_in` or a `sockaddr_in6`, as its family says, built on the stack for
/// the call. Each family has its own call of `f`, so an IPv4 address is two words
/// written, not a union of both forms put together from either.
#[inline(always)]
pub(crate) fn with_inet<R>(
    addr: Option<&SocketAddr>,
    f: impl FnOnce(*const sys::sockaddr) -> R,
) -> R {
    match addr {
        None => f(std::ptr::null()),
        Some(SocketAddr::V4(a)) => {
            let sin = sys::sockaddr_in {
                sin_family: sys::AF_INET as sys::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: sys::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            f(std::ptr::addr_of!(sin).cast())
        }
        Some(SocketAddr::V6(a)) => with_v6(*a, f),
    }
}

/// [`with_inet`] of an IPv6 address, out of line: its fields are then read only
/// on its path (not ahead of the family's test, along with an IPv4 address's).
#[inline(never)]
fn with_v6<R>(addr: std::net::SocketAddrV6, f: impl FnOnce(*const sys::sockaddr) -> R) -> R {
    let sin6 = InetAddr::new(&SocketAddr::V6(addr));
    f(sin6.as_ptr())
}

/// Writes the C form of `addr` into `into` and returns the pointer libuv takes
/// (null for `None`): only the family's struct is written (an IPv4 address is two
/// words). For a call that only reads the address during the call, made while
/// `into` lives; unlike [`with_inet`], the address is converted where this is
/// called, so a caller that does other work first (allocating a request) does not
/// keep the `SocketAddr`'s fields around for it.
#[inline(always)]
pub(crate) fn write_inet(
    addr: Option<&SocketAddr>,
    into: &mut std::mem::MaybeUninit<InetAddr>,
) -> *const sys::sockaddr {
    match addr {
        None => std::ptr::null(),
        Some(SocketAddr::V4(a)) => {
            let sin = into.as_mut_ptr().cast::<sys::sockaddr_in>();
            // SAFETY: an InetAddr has room and alignment for a sockaddr_in (one of
            // its fields), written whole here.
            unsafe {
                sin.write(sys::sockaddr_in {
                    sin_family: sys::AF_INET as sys::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: sys::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                })
            };
            sin.cast_const().cast()
        }
        Some(a @ SocketAddr::V6(_)) => into.write(InetAddr::new(a)).as_ptr(),
    }
}

/// The Rust form of the `sockaddr_in` at `p`.
///
/// # Safety
/// `p` must point at a readable, aligned `sockaddr_in`.
#[inline(always)]
pub(crate) unsafe fn v4_from_c(p: *const sys::sockaddr) -> SocketAddr {
    let sin = p.cast::<sys::sockaddr_in>();
    // SAFETY: per the contract.
    let (ip, port) = unsafe {
        (
            std::ptr::addr_of!((*sin).sin_addr)
                .cast::<[u8; 4]>()
                .read_unaligned(),
            u16::from_be((*sin).sin_port),
        )
    };
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

/// The Rust form of the C socket address at `p`; `None` for families other than
/// IPv4 and IPv6. Only the fields of the family's struct are read.
///
/// # Safety
/// `p` must point at a readable, aligned socket address whose family field is
/// initialised, and which is as large as its family's struct (`sockaddr_in` or
/// `sockaddr_in6`) when it is one of those two.
#[inline]
pub(crate) unsafe fn from_c(p: *const sys::sockaddr) -> Option<SocketAddr> {
    // SAFETY: per the contract, the family field is readable.
    let family = u32::from(unsafe { (*p).sa_family });
    if family == sys::AF_INET {
        // SAFETY: the family says it is a sockaddr_in (the contract: that large).
        Some(unsafe { v4_from_c(p) })
    } else if family == sys::AF_INET6 {
        let sin6 = p.cast::<sys::sockaddr_in6>();
        // SAFETY: the family says it is a sockaddr_in6 (the contract: that large).
        let (ip, port, flow, scope) = unsafe {
            (
                std::ptr::addr_of!((*sin6).sin6_addr)
                    .cast::<[u8; 16]>()
                    .read_unaligned(),
                u16::from_be((*sin6).sin6_port),
                // The C field as it is (see `SockStorage::new`).
                (*sin6).sin6_flowinfo,
                (*sin6).sin6_scope_id,
            )
        };
        Some(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(ip),
            port,
            flow,
            scope,
        )))
    } else {
        None
    }
}

impl std::fmt::Debug for SockStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SockStorage({:?})", self.to_std())
    }
}

/// The address family of a socket address.
pub fn family_of(a: &SocketAddr) -> crate::AddressFamily {
    match a {
        SocketAddr::V4(_) => crate::AddressFamily::Inet,
        SocketAddr::V6(_) => crate::AddressFamily::Inet6,
    }
}

/// A socket's address family from its `local_addr` result: `None` while it has no
/// socket or is not bound; a closed handle stays an error (`ClosedHandle`).
pub(crate) fn family_from(sockname: Result<SocketAddr>) -> Result<Option<crate::AddressFamily>> {
    match sockname {
        Ok(a) => Ok(Some(family_of(&a))),
        Err(e)
            if e.kind() != crate::Category::ClosedHandle
                && matches!(e.code(), StatusCode::EBADF | StatusCode::EINVAL) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Reads an address through a `getsockname`-style call (`name`, `namelen`).
pub fn read_sockaddr(
    op: &'static str,
    f: impl FnOnce(*mut sys::sockaddr, *mut i32) -> i32,
) -> Result<SocketAddr> {
    let mut sa = SockStorage::empty();
    let mut len = SockStorage::capacity();
    check(f(sa.as_mut_ptr(), &mut len), op)?;
    sa.to_std()
        .ok_or_else(|| Error::new(StatusCode::EAFNOSUPPORT, op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_with_flow_info_and_scope() {
        for a in [
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap(),
            "0.0.0.0:0".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 443, 0x12345, 7)),
        ] {
            assert_eq!(SockStorage::new(&a).to_std(), Some(a));
            let c = InetAddr::new(&a);
            // SAFETY: an InetAddr holds the struct of its family.
            assert_eq!(unsafe { from_c(c.as_ptr()) }, Some(a));
            // SAFETY: `with_inet` passes the struct of the address's family.
            assert_eq!(with_inet(Some(&a), |p| unsafe { from_c(p) }), Some(a));
            let mut into = std::mem::MaybeUninit::uninit();
            // SAFETY: `write_inet` writes the struct of the address's family into
            // `into`, which lives during the read.
            assert_eq!(unsafe { from_c(write_inet(Some(&a), &mut into)) }, Some(a));
        }
        assert!(with_inet(None, |p| p.is_null()));
        assert!(write_inet(None, &mut std::mem::MaybeUninit::uninit()).is_null());
    }
}
