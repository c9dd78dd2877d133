//! DNS: `getaddrinfo` and `getnameinfo`, synchronous (the call blocks and returns the
//! result) or asynchronous (on the thread pool; the callback gets the result).
//!
//! Results are Rust values: the C linked list of `addrinfo` is copied into a `Vec`
//! and freed (`uv_freeaddrinfo`) before the result is handed over.

use std::ffi::{c_char, c_int, CStr, CString};
use std::net::SocketAddr;
use std::ptr::NonNull;

use libuv_sys2 as sys;

use crate::addr::SockStorage as SockAddr;
use crate::error::{check, Error, Result};
use crate::loop_::{LoopHandle, LoopShared};
use crate::loop_request::ReqHead;
use crate::{AddrInfoFlags, AddressFamily, NameInfoFlags, SocketProtocol, SocketType, StatusCode};

/// What a `getaddrinfo` query asks for. The default asks for everything; the
/// `with_*` methods narrow it:
///
/// ```
/// let hints = uv::AddrInfoHints::default()
///     .with_socktype(uv::SocketType::Stream)
///     .with_flags(uv::AddrInfoFlags::NUMERICHOST);
/// assert_eq!(hints.socktype, Some(uv::SocketType::Stream));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddrInfoHints {
    /// Address family (`Unspecified` for any).
    pub family: AddressFamily,
    /// Socket type, if only one is wanted.
    pub socktype: Option<SocketType>,
    /// Protocol, if only one is wanted.
    pub protocol: Option<SocketProtocol>,
    /// `AI_*` flags.
    pub flags: AddrInfoFlags,
}

impl AddrInfoHints {
    /// With this address family.
    pub fn with_family(mut self, family: AddressFamily) -> Self {
        self.family = family;
        self
    }

    /// Only this socket type.
    pub fn with_socktype(mut self, socktype: SocketType) -> Self {
        self.socktype = Some(socktype);
        self
    }

    /// Only this protocol.
    pub fn with_protocol(mut self, protocol: SocketProtocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// With these `AI_*` flags.
    pub fn with_flags(mut self, flags: AddrInfoFlags) -> Self {
        self.flags = flags;
        self
    }
}

impl Default for AddrInfoHints {
    fn default() -> Self {
        AddrInfoHints {
            family: AddressFamily::Unspecified,
            socktype: None,
            protocol: None,
            flags: AddrInfoFlags::empty(),
        }
    }
}

/// One result of `getaddrinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddrInfo {
    /// Address family.
    pub family: AddressFamily,
    /// Socket type.
    pub socktype: SocketType,
    /// Protocol.
    pub protocol: SocketProtocol,
    /// The canonical name, when `AI_CANONNAME` asked for it (first result only).
    pub canonname: Option<String>,
    /// The address.
    pub addr: SocketAddr,
}

/// The result of `getnameinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NameInfo {
    /// Host name (or numeric address).
    pub host: String,
    /// Service name (or port number).
    pub service: String,
}

fn c_opt(s: Option<&str>, op: &'static str) -> Result<Option<CString>> {
    s.map(|s| CString::new(s).map_err(|_| Error::new(StatusCode::EINVAL, op)))
        .transpose()
}

/// A service given as a number must be a port (`EAI_SERVICE` otherwise): glibc
/// reads one with `strtoul` (leading white space and a sign allowed) and keeps
/// the low 16 bits of one past 65535, so "65536" would give port 0 (any port, to
/// a `bind`) and "131152" port 80.
fn check_service(service: Option<&str>, op: &'static str) -> Result<()> {
    let Some(s) = service else { return Ok(()) };
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        // A name (or not a number glibc reads): the resolver answers.
        return Ok(());
    }
    let zero = digits.bytes().all(|b| b == b'0');
    match digits.parse::<u16>() {
        Ok(_) if !negative || zero => Ok(()),
        _ => Err(Error::new(StatusCode::EAI_SERVICE, op)),
    }
}

/// Flag bits of a query: bits the bindings do not list are `EINVAL` (as for every
/// `flags` argument) and never reach the system. glibc takes IDN flags the
/// bindings leave out (`AI_IDN`, `AI_CANONIDN`, `NI_IDN`), and with them a name from
/// a DNS answer that is no valid IDN makes it answer `EAI_IDN_ENCODE`, a code
/// libuv's translation of these errors does not know: it aborts the process.
fn known_flags(bits: u32, all: u32, op: &'static str) -> Result<c_int> {
    crate::contracts::flags_arg(bits, all, op).map(|b| b as c_int)
}

/// Whether C hints ask for a numeric host (`AI_NUMERICHOST`).
fn numeric(hints: &sys::addrinfo) -> bool {
    hints.ai_flags & AddrInfoFlags::NUMERICHOST.bits() as c_int != 0
}

fn hints_c(h: &AddrInfoHints, op: &'static str) -> Result<sys::addrinfo> {
    // SAFETY: addrinfo is plain C data; all-zero is the empty hint.
    let mut ai: sys::addrinfo = unsafe { std::mem::zeroed() };
    ai.ai_family = h.family.raw();
    ai.ai_socktype = h.socktype.map_or(0, |t| t.raw());
    ai.ai_protocol = h.protocol.map_or(0, |p| p.raw());
    ai.ai_flags = known_flags(h.flags.bits(), AddrInfoFlags::all().bits(), op)?;
    Ok(ai)
}

/// Copies the list and frees it.
///
/// # Safety
/// `list` must be a list returned by getaddrinfo (or null).
unsafe fn take_list(list: *mut sys::addrinfo) -> Vec<AddrInfo> {
    let mut out = Vec::new();
    let mut p = list;
    while !p.is_null() {
        // SAFETY: a node of the list libuv returned.
        let ai = unsafe { &*p };
        let mut sa = SockAddr::empty();
        if !ai.ai_addr.is_null() {
            let len = (ai.ai_addrlen as usize).min(std::mem::size_of::<sys::sockaddr_storage>());
            // SAFETY: ai_addr points at ai_addrlen bytes; at most the storage size is copied.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    ai.ai_addr.cast::<u8>(),
                    sa.as_mut_ptr().cast::<u8>(),
                    len,
                )
            };
        }
        if let Some(addr) = sa.to_std() {
            let canonname = (!ai.ai_canonname.is_null()).then(|| {
                // SAFETY: a NUL-terminated string of the list.
                let name = unsafe { CStr::from_ptr(ai.ai_canonname) };
                name.to_string_lossy().into_owned()
            });
            out.push(AddrInfo {
                family: AddressFamily::from_raw(ai.ai_family),
                socktype: SocketType::from_raw(ai.ai_socktype),
                protocol: SocketProtocol::from_raw(ai.ai_protocol),
                canonname,
                addr,
            });
        }
        p = ai.ai_next;
    }
    // SAFETY: the list came from getaddrinfo and is freed once.
    unsafe { sys::uv_freeaddrinfo(list) };
    out
}

fn c_string(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A query on the thread pool, from `getaddrinfo_with` or `getnameinfo_with`: a
/// [`Request`](crate::Request). `cancel` asks libuv to drop it before it starts; its
/// callback then gets a cancellation error (`EAI_CANCELED`).
pub type DnsRequest = crate::Request;

/// A boxed query: the head its `Request` values use, then libuv's struct (as
/// `ReqHead` requires).
#[repr(C)]
struct AddrInfoReq<C> {
    head: ReqHead,
    raw: sys::uv_getaddrinfo_t,
    shared: *const LoopShared,
    /// The hints ask for a numeric host (see `host_lookup_status`).
    numeric: bool,
    // Kept alive until the query ends: libuv reads them on the thread pool.
    _host: Option<CString>,
    _service: Option<CString>,
    cb: Option<C>,
}

unsafe extern "C" fn addrinfo_done<C: FnOnce(Result<Vec<AddrInfo>>)>(
    req: *mut sys::uv_getaddrinfo_t,
    status: c_int,
    res: *mut sys::addrinfo,
) {
    // `data` is the box made by `getaddrinfo_with`, handed back once. It is used
    // through this pointer, not as a `Box`, until `release`: the callback may reach
    // its head through a `Request` (`is_pending`, `cancel`, a drop), which a `Box`,
    // unique as a `&mut`, would not allow while it lives.
    // SAFETY: libuv hands back the request `getaddrinfo_with` started.
    let p = unsafe { (*req).data as *mut AddrInfoReq<C> };
    // SAFETY: the loop runs this callback, so its owner keeps the shared state alive;
    // the box lives until `release` below.
    let shared = unsafe { &*(*p).shared };
    // SAFETY: this query's completion, once, before any user code runs.
    unsafe { (*p).head.completing() };
    // SAFETY: `res` is the list for this query (null on error).
    let list = unsafe { take_list(res) };
    // SAFETY: as above.
    let numeric = unsafe { (*p).numeric };
    let status = crate::contracts::host_lookup_status(status, numeric);
    let result = check(status, "uv_getaddrinfo").map(|()| list);
    // SAFETY: the box is alive; the callback is taken out before it runs, and the
    // strings (which libuv no longer reads) after, with no reference into the box
    // kept across user code.
    if let Some(cb) = unsafe { (*p).cb.take() } {
        shared.guard(|| cb(result));
    }
    // SAFETY: as above.
    let (host, service) = unsafe { ((*p)._host.take(), (*p)._service.take()) };
    drop((host, service));
    // SAFETY: this query's completion, once (after `completing`); the box's fields
    // that own anything were taken just above.
    unsafe { release(p, shared) };
}

/// The end of a query's completion: its box goes now, or with its last `Request`.
///
/// # Safety
/// `p` is the box (from `Box::into_raw`) of a query whose completion called
/// `completing` and is done with it; its fields own nothing any more (dropped or
/// taken).
unsafe fn release<Q: QueryBox>(p: *mut Q, shared: &LoopShared) {
    // SAFETY: the caller's contract; the head is the box's first field (repr(C)).
    unsafe {
        if (*Q::head(p)).completed(false, free_box::<Q>, shared.slab()) {
            drop(Box::from_raw(p));
        }
    }
}

/// Frees the box of a query whose last `Request` just went, and gives back the
/// count of the loop's slab the query took when its completion ended before it
/// (see `ReqHead::completed`).
///
/// # Safety
/// `head` is the head of a `Box<Q>` whose fields own nothing any more, and whose
/// completion took a count of `slab`.
unsafe fn free_box<Q: QueryBox>(head: NonNull<ReqHead>, slab: NonNull<crate::loop_::Slab>) {
    // SAFETY: the caller's contract (the head is the box's start; the count).
    unsafe {
        drop(Box::from_raw(head.as_ptr().cast::<Q>()));
        crate::loop_::Slab::release(slab);
    }
}

/// A query's box, whose first field is its head.
trait QueryBox {
    fn head(p: *mut Self) -> *const ReqHead;
}

impl<C> QueryBox for AddrInfoReq<C> {
    fn head(p: *mut Self) -> *const ReqHead {
        // SAFETY: a field of the box `p` points to (only its address is taken).
        unsafe { std::ptr::addr_of!((*p).head) }
    }
}

impl<C> QueryBox for NameInfoReq<C> {
    fn head(p: *mut Self) -> *const ReqHead {
        // SAFETY: as above.
        unsafe { std::ptr::addr_of!((*p).head) }
    }
}

// libuv's structs follow the heads directly, as `ReqHead` requires (the type of the
// callback does not move them).
const _: () = assert!(std::mem::offset_of!(AddrInfoReq<()>, raw) == std::mem::size_of::<ReqHead>());
const _: () = assert!(std::mem::offset_of!(NameInfoReq<()>, raw) == std::mem::size_of::<ReqHead>());

/// As `AddrInfoReq`.
#[repr(C)]
struct NameInfoReq<C> {
    head: ReqHead,
    raw: sys::uv_getnameinfo_t,
    shared: *const LoopShared,
    cb: Option<C>,
}

unsafe extern "C" fn nameinfo_done<C: FnOnce(Result<NameInfo>)>(
    req: *mut sys::uv_getnameinfo_t,
    status: c_int,
    host: *const c_char,
    service: *const c_char,
) {
    // The box made by `getnameinfo_with`, used through this pointer until
    // `release` (as in `addrinfo_done`).
    // SAFETY: libuv hands back the request `getnameinfo_with` started.
    let p = unsafe { (*req).data as *mut NameInfoReq<C> };
    // SAFETY: as in addrinfo_done.
    let shared = unsafe { &*(*p).shared };
    // SAFETY: this query's completion, once, before any user code runs.
    unsafe { (*p).head.completing() };
    let read = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: libuv passes NUL-terminated strings inside the request.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let result = check(status, "uv_getnameinfo").map(|()| NameInfo {
        host: read(host),
        service: read(service),
    });
    // SAFETY: as in addrinfo_done.
    if let Some(cb) = unsafe { (*p).cb.take() } {
        shared.guard(|| cb(result));
    }
    // SAFETY: this query's completion, once (after `completing`); its callback was
    // taken, and nothing else in the box owns anything.
    unsafe { release(p, shared) };
}

impl LoopHandle {
    fn loop_raw(&self, op: &'static str) -> Result<*mut sys::uv_loop_t> {
        self.shared()
            .raw_for_new()
            .ok_or_else(|| Error::closed_loop(op))
    }

    /// Resolves `host` and/or `service` (`uv_getaddrinfo` without a callback): blocks
    /// and returns the addresses. Unknown hosts give `EAI_NONAME`, and a lookup at
    /// the descriptor limit `EMFILE` (glibc answers `EAI_NONAME` there); flag bits
    /// [`AddrInfoFlags`] does not list (`from_bits_retain`) give `EINVAL`; a
    /// numeric service that is no port (past 65535, or negative) gives
    /// `EAI_SERVICE` (glibc would keep its low 16 bits).
    pub fn getaddrinfo(
        &self,
        host: Option<&str>,
        service: Option<&str>,
        hints: &AddrInfoHints,
    ) -> Result<Vec<AddrInfo>> {
        const OP: &str = "uv_getaddrinfo";
        let lp = self.loop_raw(OP)?;
        let (h, s) = (c_opt(host, OP)?, c_opt(service, OP)?);
        check_service(service, OP)?;
        let hints = hints_c(hints, OP)?;
        // SAFETY: the request is plain C data; all-zero is a valid unstarted request.
        let mut req: sys::uv_getaddrinfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: the loop is open; with no callback the call completes before it
        // returns, so the strings and the hints outlive it.
        let rc = unsafe {
            sys::uv_getaddrinfo(
                lp,
                &mut req,
                None,
                h.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                &hints,
            )
        };
        // SAFETY: the request holds the list of this query (null on error).
        let list = unsafe { take_list(req.addrinfo) };
        check(
            crate::contracts::host_lookup_status(rc, numeric(&hints)),
            OP,
        )
        .map(|()| list)
    }

    /// Resolves on the thread pool (`uv_getaddrinfo`); `callback` runs on the loop with
    /// the addresses. The query keeps the loop alive until it is done. Refused
    /// before it starts as [`getaddrinfo`](Self::getaddrinfo) refuses.
    pub fn getaddrinfo_with<C: FnOnce(Result<Vec<AddrInfo>>) + 'static>(
        &self,
        host: Option<&str>,
        service: Option<&str>,
        hints: &AddrInfoHints,
        callback: C,
    ) -> Result<DnsRequest> {
        const OP: &str = "uv_getaddrinfo";
        let lp = self.loop_raw(OP)?;
        // Not in a forked child on the parent's loop (see `loop_request::submit`).
        self.shared().check_process(OP)?;
        let (h, s) = (c_opt(host, OP)?, c_opt(service, OP)?);
        check_service(service, OP)?;
        let hints = hints_c(hints, OP)?;
        let shared: &LoopShared = self.shared();
        let p = Box::into_raw(Box::new(AddrInfoReq {
            head: ReqHead::started(),
            // SAFETY: plain C data; all-zero is a valid unstarted request.
            raw: unsafe { std::mem::zeroed() },
            shared: shared as *const LoopShared,
            numeric: numeric(&hints),
            _host: h,
            _service: s,
            cb: Some(callback),
        }));
        // SAFETY: `p` is a fresh allocation that stays put until `addrinfo_done`
        // frees it; libuv copies the hints during the call.
        let rc = unsafe {
            (*p).raw.data = p.cast();
            // Not once the process is exiting (`contracts::pool_call`).
            crate::contracts::pool_call(|| {
                sys::uv_getaddrinfo(
                    lp,
                    std::ptr::addr_of_mut!((*p).raw),
                    Some(addrinfo_done::<C>),
                    (*p)._host.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                    (*p)._service
                        .as_ref()
                        .map_or(std::ptr::null(), |c| c.as_ptr()),
                    &hints,
                )
            })
            .unwrap_or(sys::uv_errno_t_UV_ECANCELED)
        };
        if rc < 0 {
            // SAFETY: libuv did not take the request.
            drop(unsafe { Box::from_raw(p) });
            return Err(Error::from_raw(rc, OP));
        }
        // SAFETY: the head was written by `ReqHead::started`, and libuv holds the request until
        // `addrinfo_done`.
        Ok(unsafe { DnsRequest::from_head(NonNull::new_unchecked(p.cast()), shared) })
    }

    /// The host and service names of `addr` (`uv_getnameinfo` without a callback);
    /// flag bits [`NameInfoFlags`] does not list give `EINVAL`.
    pub fn getnameinfo(&self, addr: SocketAddr, flags: NameInfoFlags) -> Result<NameInfo> {
        const OP: &str = "uv_getnameinfo";
        let lp = self.loop_raw(OP)?;
        let flags = known_flags(flags.bits(), NameInfoFlags::all().bits(), OP)?;
        let sa = SockAddr::new(&addr);
        // SAFETY: plain C data; all-zero is a valid unstarted request.
        let mut req: sys::uv_getnameinfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: the loop is open; with no callback the call completes before it
        // returns and fills `host` and `service`.
        let rc = unsafe { sys::uv_getnameinfo(lp, &mut req, None, sa.as_ptr(), flags) };
        check(rc, OP)?;
        Ok(NameInfo {
            host: c_string(&req.host),
            service: c_string(&req.service),
        })
    }

    /// The host and service names of `addr`, looked up on the thread pool
    /// (`uv_getnameinfo`); `callback` runs on the loop.
    pub fn getnameinfo_with<C: FnOnce(Result<NameInfo>) + 'static>(
        &self,
        addr: SocketAddr,
        flags: NameInfoFlags,
        callback: C,
    ) -> Result<DnsRequest> {
        const OP: &str = "uv_getnameinfo";
        let lp = self.loop_raw(OP)?;
        let flags = known_flags(flags.bits(), NameInfoFlags::all().bits(), OP)?;
        let sa = SockAddr::new(&addr);
        let shared: &LoopShared = self.shared();
        // Not in a forked child on the parent's loop (see `loop_request::submit`).
        shared.check_process(OP)?;
        let p = Box::into_raw(Box::new(NameInfoReq {
            head: ReqHead::started(),
            // SAFETY: plain C data; all-zero is a valid unstarted request.
            raw: unsafe { std::mem::zeroed() },
            shared: shared as *const LoopShared,
            cb: Some(callback),
        }));
        // SAFETY: `p` stays put until `nameinfo_done` frees it; libuv copies the
        // address during the call.
        let rc = unsafe {
            (*p).raw.data = p.cast();
            // Not once the process is exiting (`contracts::pool_call`).
            crate::contracts::pool_call(|| {
                sys::uv_getnameinfo(
                    lp,
                    std::ptr::addr_of_mut!((*p).raw),
                    Some(nameinfo_done::<C>),
                    sa.as_ptr(),
                    flags,
                )
            })
            .unwrap_or(sys::uv_errno_t_UV_ECANCELED)
        };
        if rc < 0 {
            // SAFETY: libuv did not take the request.
            drop(unsafe { Box::from_raw(p) });
            return Err(Error::from_raw(rc, OP));
        }
        // SAFETY: the head was written by `ReqHead::started`, and libuv holds the request until
        // `nameinfo_done`.
        Ok(unsafe { DnsRequest::from_head(NonNull::new_unchecked(p.cast()), shared) })
    }
}
