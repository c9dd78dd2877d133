//! The UDP handle, generated from `spec/handles/udp.toml`, and its hand-written
//! parts: receiving (the datagram's bytes, sender and flags in one value) and sending.

use std::collections::VecDeque;
use std::ffi::c_uint;
use std::mem::ManuallyDrop;
use std::net::SocketAddr;

use libuv_sys2 as sys;

use crate::addr::InetAddr;
use crate::error::{check, Error, Result};
use crate::handle::HandleKind;
use crate::stream::{KeptData, WriteData};
use crate::UdpFlags;

uv_macros::handle!("spec/handles/udp.toml");

/// One datagram received: its bytes (borrowed from the loop's read buffer for the
/// length of the callback), its sender and libuv's flags (`UdpFlags::PARTIAL` when
/// the buffer was too small and the rest was dropped; `UdpFlags::MMSG_CHUNK` for a
/// datagram of a batch read with `RECVMMSG`, as libuv passes it on: not for one a
/// [`Udp::recv_stop`] in its batch kept, which comes after the next `recv_start`).
///
/// A datagram with no bytes and no sender is libuv's "drained" event
/// ([`Datagram::is_drained`]): the socket had nothing more to read. It ends every
/// burst of reads; a socket that keeps reporting it without data (a connected
/// socket whose reading side was shut down) is one to stop or close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Datagram<'a> {
    /// The bytes (may be empty: an empty datagram).
    pub data: &'a [u8],
    /// The sender (`None` only for the drained event).
    pub addr: Option<SocketAddr>,
    /// `UdpFlags::PARTIAL` and the like.
    pub flags: UdpFlags,
}

impl Datagram<'_> {
    /// Whether this is libuv's "drained" event: nothing was read, the socket has no
    /// more datagrams for now.
    pub fn is_drained(&self) -> bool {
        self.data.is_empty() && self.addr.is_none()
    }
}

/// Receive buffers for `RECVMMSG` sockets: libuv reads one datagram per 64 KiB
/// of the buffer, at most 20 per system call.
const MMSG_DATAGRAMS: usize = 20;

/// Lends the loop's read buffer with room for a whole batch (`RECVMMSG` sockets;
/// the others get [`alloc_one_cb`]).
unsafe extern "C" fn alloc_mmsg_cb(
    h: *mut sys::uv_handle_t,
    suggested: usize,
    buf: *mut sys::uv_buf_t,
) {
    let want = suggested.saturating_mul(MMSG_DATAGRAMS);
    // SAFETY: libuv's allocation-callback contract, passed on.
    unsafe { crate::stream::lend_loop_buffer(h, want, buf) }
}

/// Lends the loop's read buffer for one datagram: libuv asks for 64 KiB (its
/// largest datagram, `UV__UDP_DGRAM_MAXSIZE`) on every read of a socket without `RECVMMSG`, which is the
/// least the loop's buffer has, so the size is not looked at per datagram.
unsafe extern "C" fn alloc_one_cb(
    h: *mut sys::uv_handle_t,
    _suggested: usize,
    buf: *mut sys::uv_buf_t,
) {
    // SAFETY: libuv's allocation-callback contract, passed on.
    unsafe { crate::stream::lend_loop_buffer(h, crate::stream::READ_BUFFER_SIZE, buf) }
}

/// Gives libuv no buffer, once: its read loop (unix/udp.c, `uv__udp_recvmsg`)
/// then ends at once, with an `ENOBUFS` event and no datagram read. Installed by
/// `not_receiving` for the rest of a read loop nobody receives from, by
/// [`Udp::recv_stop`] for the read after a batch it cut short (`keep_cut`), and
/// by [`Udp::recv_start`] for the first read of a socket that keeps datagrams
/// (which come first: `deliver_kept`); puts the lending allocation back for the
/// reads of later events.
unsafe extern "C" fn alloc_none_cb(
    h: *mut sys::uv_handle_t,
    _suggested: usize,
    buf: *mut sys::uv_buf_t,
) {
    let raw = h.cast::<sys::uv_udp_t>();
    // SAFETY: libuv's allocation-callback contract: `h` is a live UDP handle of
    // this library (the only ones given this callback), `buf` a valid out-pointer.
    unsafe {
        (*raw).alloc_cb = callbacks_for(raw).0;
        *buf = sys::uv_buf_t {
            base: std::ptr::null_mut(),
            len: 0,
        };
    }
}

/// Whether the socket `raw` (open, of this library) reads batches (`RECVMMSG`).
fn reads_batches(raw: *mut sys::uv_udp_t) -> bool {
    // SAFETY: an open UDP handle of this library; the call reads its flags.
    unsafe { sys::uv_udp_using_recvmmsg(raw) > 0 }
}

/// `recv_start` takes no socket in blocking mode (`EINVAL`): libuv reads
/// datagrams until the socket has none (unix/udp.c, `uv__udp_recvmsg`: up to 32
/// reads, until `EAGAIN`), and on a blocking socket the read after the last one
/// waits for the next datagram with the loop's thread. libuv makes its sockets
/// non-blocking (`open` too), but the mode belongs to the open file: a copy of the
/// socket made before `open` (`UdpSocket::try_clone`) shares it and can switch it,
/// so `recv_start` is refused too while such a copy lasts
/// (`contracts::no_unheld_copies`). A handle without a socket yet gets one of
/// libuv's, non-blocking.
#[cfg(unix)]
fn non_blocking(raw: *mut sys::uv_udp_t) -> Result<()> {
    // SAFETY: an open UDP handle of this library; its watcher's descriptor is read
    // (-1 while it has no socket).
    let fd = unsafe { (*raw).io_watcher.fd };
    if fd < 0 {
        return Ok(());
    }
    // SAFETY: an open UDP handle of this library, whose descriptor is `fd`.
    unsafe { crate::contracts::no_unheld_copies(raw.cast(), fd, "uv_udp_recv_start")? };
    // SAFETY: F_GETFL only reads the descriptor's status flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags >= 0 && flags & libc::O_NONBLOCK == 0 {
        return Err(Error::new(crate::StatusCode::EINVAL, "uv_udp_recv_start"));
    }
    Ok(())
}

/// The generic allocation and receive callbacks for `raw` (any callback; see
/// [`recv_direct`] for the ones `recv_start` gives): whether a socket reads batches
/// is fixed when it is made (`uv_udp_init_ex`), so this is chosen once, not asked
/// per datagram.
fn callbacks_for(raw: *mut sys::uv_udp_t) -> (sys::uv_alloc_cb, sys::uv_udp_recv_cb) {
    if reads_batches(raw) {
        (Some(alloc_mmsg_cb), Some(recv_cb::<true>))
    } else {
        (Some(alloc_one_cb), Some(recv_cb::<false>))
    }
}

/// `POLLIN` (the same value on every Unix): the receive watch in libuv's I/O watcher.
const POLLIN: u32 = 1;

/// Whether libuv watches the socket for datagrams (`recv_start` and no `recv_stop`
/// or `close` since: both stop the watch, `uv_close` through `uv__io_close`).
#[inline]
fn receiving(raw: *const sys::uv_udp_t) -> bool {
    // SAFETY: a live UDP handle of this library; only the watch bits are read.
    unsafe { (*raw).io_watcher.pevents & POLLIN != 0 }
}

/// One receive event for the user's callback, as a receive trampoline lends it
/// from its frame (see [`show`]) to the callback's record, which makes the event
/// where the callback's code is: the common events (a datagram from an IPv4
/// sender, the drained event) as their raw parts, so that what the callback does
/// not look at is not made (the drained event is two words tested); any other
/// event made whole by [`recv_any`] (its lifetime is the call's, not `'static`).
struct RecvParts {
    /// The bytes (dangling, with `len` 0, for the drained event); for any other
    /// event (`len` is [`OTHER`]), the event made whole, a
    /// `ManuallyDrop<Result<Datagram>>`.
    base: *const u8,
    len: usize,
    /// The sender, a `sockaddr_in`; null for the drained event.
    v4: *const sys::sockaddr,
    flags: UdpFlags,
}

/// The `len` of [`RecvParts`] of an event made whole: no datagram's (which is at
/// most the lent buffer's room, a boxed slice's length, below `isize::MAX`).
const OTHER: usize = usize::MAX;

impl RecvParts {
    /// The event made whole, moved out.
    ///
    /// # Safety
    /// Lent by [`show_made`] during the callback (`len` is `OTHER`), read once.
    #[inline(always)]
    unsafe fn other<'a>(&self) -> Result<Datagram<'a>> {
        // SAFETY: per the contract: `show_made`'s event, alive (its borrows too)
        // during the call, which moves it out once (`show_made` never drops it).
        unsafe { self.base.cast::<Result<Datagram<'a>>>().read() }
    }

    /// The common event, made of its parts.
    ///
    /// # Safety
    /// Lent by a trampoline during the callback, `len` not `OTHER`: libuv wrote `len`
    /// bytes at `base` (no more than the lent buffer's room; `base` is never null)
    /// and `v4`, when not null, is a sockaddr_in (its family says so); both are
    /// alive during the call.
    #[inline(always)]
    unsafe fn common<'a>(&self) -> Result<Datagram<'a>> {
        // SAFETY: per the contract.
        unsafe {
            let data = std::slice::from_raw_parts(self.base, self.len);
            let addr = if self.v4.is_null() {
                None
            } else {
                Some(crate::addr::v4_from_c(self.v4))
            };
            Ok(Datagram {
                data,
                addr,
                flags: self.flags,
            })
        }
    }
}

/// The receive callback's slot (as generated from the spec).
type RecvSlot = crate::runtime::CallSlot<Udp, dyn FnMut(&Udp, Result<Datagram<'_>>), RecvParts>;

/// Calls a receive callback with an event made whole by [`recv_any`] (out of
/// line: errors, batches, addresses other than IPv4).
///
/// # Safety
/// As [`RecvParts::other`].
#[cold]
#[inline(never)]
unsafe fn call_other<C: FnMut(&Udp, Result<Datagram<'_>>)>(cb: &mut C, h: &Udp, parts: &RecvParts) {
    // SAFETY: per the contract.
    cb(h, unsafe { parts.other() })
}

/// Calls a receive callback (names its type for the closure in `set_recv_callback`).
#[inline(always)]
fn call_recv<C: FnMut(&Udp, Result<Datagram<'_>>)>(
    cb: &mut C,
    h: &Udp,
    event: Result<Datagram<'_>>,
) {
    cb(h, event)
}

/// Starts receiving with `callback` in the handle's slot (the record's call makes
/// each event of the trampoline's parts): `start` gets the receive trampoline made
/// for the callback's type ([`recv_direct`], which calls the record's call
/// directly, with common events only), and is called once the callback is in the
/// slot.
fn set_recv_callback<C: FnMut(&Udp, Result<Datagram<'_>>) + 'static>(
    slot: &RecvSlot,
    callback: C,
    start: impl FnOnce(sys::uv_udp_recv_cb) -> Result<()>,
) -> Result<()> {
    let call = |cb: &mut C, h: &Udp, parts: &RecvParts| {
        if parts.len == OTHER {
            // Out of the common events' way, which then never hold an error.
            // SAFETY: made by `show_made` (the only parts whose `len` is OTHER),
            // per `other`'s contract, and passed on during its call.
            return unsafe { call_other(cb, h, parts) };
        }
        // SAFETY: the slot's parts are made only by the trampolines below, per
        // `common`'s contract (`len` is not OTHER), and passed on during their call.
        let event = unsafe { parts.common() };
        call_recv(cb, h, event)
    };
    let direct = direct_for::<C, _>(&call);
    let cb = slot.callback(callback, |p| p, call);
    slot.set_then(cb, || start(direct))
}

/// The trampoline [`recv_direct`] for callbacks of type `C`, called through `H`
/// (named by a reference to the call, whose type has no name).
fn direct_for<C, H>(_: &H) -> sys::uv_udp_recv_cb
where
    C: 'static,
    H: Fn(&mut C, &Udp, &RecvParts) + Copy + 'static,
{
    Some(recv_direct::<C, H>)
}

/// How a trampoline shows an event's parts to the user's receive callback.
trait Show {
    /// Shows `parts` to the callback in the slot of `raw`.
    ///
    /// # Safety
    /// As [`show`]; and what the implementation says.
    unsafe fn show(raw: *mut sys::uv_udp_t, parts: &RecvParts);
}

/// Through the callback's record: any callback ([`recv_cb`]).
struct ByRecord;

impl Show for ByRecord {
    #[inline(always)]
    unsafe fn show(raw: *mut sys::uv_udp_t, parts: &RecvParts) {
        // SAFETY: per the contract.
        unsafe { show(raw, parts) }
    }
}

/// Directly to the callback, whose value is a `C`, through its call `H`, with
/// common parts only ([`recv_direct`]): where the call is compiled into the
/// trampoline, its test for other parts goes.
struct Direct<C, H>(std::marker::PhantomData<(fn() -> C, H)>);

impl<C, H> Show for Direct<C, H>
where
    C: 'static,
    H: Fn(&mut C, &Udp, &RecvParts) + Copy + 'static,
{
    /// # Safety
    /// Also: the slot holds nothing or a callback whose value is a `C` (made by
    /// `set_recv_callback`), and `parts` are common ones (`len` is not `OTHER`).
    #[inline(always)]
    unsafe fn show(raw: *mut sys::uv_udp_t, parts: &RecvParts) {
        // SAFETY: per the contract: the parts are common ones (a datagram's `len` is
        // at most the lent buffer's room, a boxed slice's length, which is below
        // `isize::MAX`; the drained event's is 0), so `len` is not OTHER; the slot's
        // callback's value is a `C`, whose call `H` takes any parts a trampoline
        // makes.
        unsafe {
            std::hint::assert_unchecked(parts.len != OTHER);
            crate::handle::dispatch_with_as::<Udp, _, _, C, H>(raw, |s| &s.on_recv, parts)
        }
    }
}

/// The receive trampoline of a socket without batches whose callback is a `C`,
/// which `recv_start` passes to libuv along with that callback: as [`recv_cb`]
/// without batches, with the common events (made by `recv_datagram` and
/// `recv_drained`) given to the callback directly through `H` (its code compiled
/// in here), not through its record; the other events go through the record
/// (`recv_any`).
///
/// Only `recv_start` gives libuv this function (`uv_udp_recv_start`, called by
/// `set_recv_callback` right after it put the `C` in the slot, and which fails
/// without a change while the socket receives), and only `recv_start` puts a
/// callback in the slot while libuv may call this function (`recv_stop` puts
/// one after, see below): while libuv calls this function, the slot holds that
/// `C` (or nothing: while it runs, or after `Slots::clear`). A later `recv_start`
/// puts its own callback and its own trampoline; `recv_stop`, `close` and
/// `not_receiving` remove the trampoline, and `keep_error_reader` puts the
/// generic one ([`recv_cb`]). (`recv_stop` also puts a callback that does
/// nothing in the slot, once `uv_udp_recv_stop` removed this trampoline: libuv
/// calls it no more until a `recv_start` gives its own.)
///
/// # Safety
/// libuv's receive-callback arguments for a handle of this library without
/// `RECVMMSG`, given this function by `recv_start` as above.
unsafe extern "C" fn recv_direct<C, H>(
    raw: *mut sys::uv_udp_t,
    nread: isize,
    buf: *const sys::uv_buf_t,
    addr: *const sys::sockaddr,
    flags: c_uint,
) where
    C: 'static,
    H: Fn(&mut C, &Udp, &RecvParts) + Copy + 'static,
{
    // SAFETY: libuv's arguments, passed on; the slot's callback's value is a `C`
    // (see above), and both functions show common parts only, as `Direct` wants.
    unsafe {
        if !addr.is_null() {
            recv_datagram::<Direct<C, H>>(raw, nread, buf, addr, flags)
        } else {
            recv_drained::<Direct<C, H>>(raw, nread, buf, addr, flags)
        }
    }
}

/// The receive trampoline; `MMSG` for sockets that read batches (`RECVMMSG`), the
/// only ones libuv passes `MMSG_CHUNK` and `MMSG_FREE` to.
///
/// Every read of a socket without batches brings two events while the user
/// receives: a datagram, then the drained event that ends the burst. Each has a
/// function of its own ([`recv_datagram`], [`recv_drained`]), which keeps only
/// what it needs across the user's call; what else comes (errors, batches, a
/// socket nobody receives from) goes on to [`recv_any`]. (Those functions are
/// `extern "C"` like the trampoline, so that its calls of them are jumps: none of
/// them can unwind.)
unsafe extern "C" fn recv_cb<const MMSG: bool>(
    raw: *mut sys::uv_udp_t,
    nread: isize,
    buf: *const sys::uv_buf_t,
    addr: *const sys::sockaddr,
    flags: c_uint,
) {
    // SAFETY: libuv's arguments, passed on.
    unsafe {
        if MMSG {
            recv_any::<MMSG>(raw, nread, buf, addr, flags)
        } else if !addr.is_null() {
            // Without batches libuv passes an address with every datagram (and
            // with an error read from the error queue, see `recv_error`).
            recv_datagram::<ByRecord>(raw, nread, buf, addr, flags)
        } else {
            // No address: the drained event (nread 0), or an error.
            recv_drained::<ByRecord>(raw, nread, buf, addr, flags)
        }
    }
}

/// libuv's flags of an event without batches, as the callback gets them (neither
/// batch flag comes without batches).
#[inline(always)]
fn plain_flags(flags: c_uint) -> UdpFlags {
    UdpFlags::from_bits_retain(flags).difference(UdpFlags::MMSG_CHUNK | UdpFlags::MMSG_FREE)
}

/// The drained event of a socket without batches, while the user receives: the
/// buffer goes back first (the event borrows none of it), then the event is shown.
/// Anything else without an address goes to [`recv_any`].
///
/// # Safety
/// libuv's receive-callback arguments for a handle of this library without
/// `RECVMMSG`, without an address; and what `S` wants.
#[inline(never)]
unsafe extern "C" fn recv_drained<S: Show>(
    raw: *mut sys::uv_udp_t,
    nread: isize,
    buf: *const sys::uv_buf_t,
    addr: *const sys::sockaddr,
    flags: c_uint,
) {
    if nread != 0 || !receiving(raw) {
        // SAFETY: libuv's arguments, passed on.
        return unsafe { recv_any::<false>(raw, nread, buf, addr, flags) };
    }
    // The loop's buffer comes home (see `lent_buffer_home`).
    lent_buffer_home(raw);
    let parts = RecvParts {
        base: std::ptr::NonNull::dangling().as_ptr(),
        len: 0,
        v4: std::ptr::null(),
        flags: plain_flags(flags),
    };
    // SAFETY: `raw` is a handle made by Udp's constructors; no bytes, no address;
    // `S`'s own condition is the caller's.
    unsafe { S::show(raw, &parts) };
    if !receiving(raw) {
        // libuv's read loop ends with this event: no read follows it.
        not_receiving(raw, UdpFlags::empty(), false);
    }
}

/// A datagram (or an error with an address) of a socket without batches: a
/// datagram from an IPv4 address while the user receives is shown here, then its
/// buffer goes back; the rest goes to [`recv_any`].
///
/// # Safety
/// libuv's receive-callback arguments for a handle of this library without
/// `RECVMMSG`, with an address; and what `S` wants.
#[inline(never)]
unsafe extern "C" fn recv_datagram<S: Show>(
    raw: *mut sys::uv_udp_t,
    nread: isize,
    buf: *const sys::uv_buf_t,
    addr: *const sys::sockaddr,
    flags: c_uint,
) {
    // SAFETY: libuv's address storage is large enough for any address and its
    // family field is written.
    let v4 = u32::from(unsafe { (*addr).sa_family }) == sys::AF_INET;
    // SAFETY: libuv passes a valid buffer description.
    let room = unsafe { (*buf).len };
    // A negative count, or one beyond the buffer (an error from the error queue,
    // see `recv_error`), is no datagram.
    if nread as usize > room || !v4 || !receiving(raw) {
        // SAFETY: libuv's arguments, passed on.
        return unsafe { recv_any::<false>(raw, nread, buf, addr, flags) };
    }
    let parts = RecvParts {
        // SAFETY: libuv passes a valid buffer description.
        base: unsafe { (*buf).base as *const u8 },
        len: nread as usize,
        v4: addr,
        flags: plain_flags(flags),
    };
    // SAFETY: `raw` is a handle made by Udp's constructors; libuv wrote `nread`
    // bytes (no more than its `room`) in the buffer `alloc_one_cb` lent (whose
    // pointer is never null), and `addr` is a sockaddr_in (its family says so);
    // `S`'s own condition is the caller's.
    unsafe { S::show(raw, &parts) };
    if !receiving(raw) {
        // libuv's read loop goes on after a datagram.
        not_receiving(raw, UdpFlags::empty(), true);
    }
    // The datagram's bytes are no longer borrowed: the loop's buffer comes home
    // (see `lent_buffer_home`).
    lent_buffer_home(raw);
}

/// Takes the loop's read buffer back after an event of a socket without batches
/// that read into it (a datagram, or the drained event): the buffer libuv passed
/// is the one `alloc_one_cb` lent for this read, which is the loop's (it lends the
/// loop's buffer or an empty one, and with an empty one libuv reports `ENOBUFS`,
/// an error, without reading), so no pointer is compared and none kept across
/// the callback.
#[inline(always)]
fn lent_buffer_home(raw: *mut sys::uv_udp_t) {
    crate::stream::loop_shared(raw.cast())
        .read_buffer()
        .reclaim();
}

/// Shows one event to the user's receive callback, whose record makes it of
/// `parts`.
///
/// # Safety
/// `raw` is a handle made by Udp's constructors; `parts` are as
/// [`RecvParts::common`] or [`RecvParts::other`] says, and alive during the call.
#[inline(always)]
unsafe fn show(raw: *mut sys::uv_udp_t, parts: &RecvParts) {
    // SAFETY: per the contract.
    unsafe { crate::handle::dispatch_with::<Udp, _, _>(raw, |s| &s.on_recv, parts) }
}

/// Shows an event made whole to the user's receive callback, which moves it out of
/// this frame (never dropped here: a datagram is `Copy`, and a receive error holds
/// nothing to free, no path; so one the callback did not take is just left).
///
/// # Safety
/// `raw` is a handle made by Udp's constructors.
#[inline(always)]
unsafe fn show_made(raw: *mut sys::uv_udp_t, event: Result<Datagram<'_>>) {
    let event = ManuallyDrop::new(event);
    let parts = RecvParts {
        // The lifetime aside, the event; it lives until this returns and is read
        // once, by the callback's record (`RecvParts::other`).
        base: (&raw const event).cast(),
        len: OTHER,
        v4: std::ptr::null(),
        flags: UdpFlags::empty(),
    };
    // SAFETY: per the contract; the parts point at the event, alive during the call.
    unsafe { show(raw, &parts) }
}

/// Every other receive event: errors, batches (`MMSG`), and anything that comes
/// while the user does not receive (after `recv_stop` or `close`: libuv goes on
/// with the rest of a batch, or of its read loop, in the same call, and reads on a
/// socket error while sends are queued).
///
/// # Safety
/// libuv's receive-callback arguments.
#[inline(never)]
unsafe extern "C" fn recv_any<const MMSG: bool>(
    raw: *mut sys::uv_udp_t,
    nread: isize,
    buf: *const sys::uv_buf_t,
    addr: *const sys::sockaddr,
    flags: c_uint,
) {
    // SAFETY: libuv passes the buffer `alloc_one_cb` lent (or an empty one); with
    // RECVMMSG, a datagram's part of it (flag MMSG_CHUNK), and the whole buffer
    // last (MMSG_FREE, no data), which is when it goes back.
    let base = unsafe { (*buf).base as *const u8 };
    let mut flags = UdpFlags::from_bits_retain(flags);
    if !MMSG {
        // Neither batch flag comes without batches: the checks below fold away.
        flags.remove(UdpFlags::MMSG_CHUNK | UdpFlags::MMSG_FREE);
    }
    // MMSG_FREE only hands the batch buffer back: nothing for the user. Everything
    // else is shown, the drained event (no bytes, no address) included, while the
    // user receives: not after `recv_stop` or `close`. A closing handle is not
    // receiving: `uv_close` stops the watch first.
    let shown = receiving(raw) && !flags.contains(UdpFlags::MMSG_FREE);
    if shown {
        // SAFETY: libuv passes a valid buffer description.
        let room = unsafe { (*buf).len };
        // A negative count, or one larger than the buffer (an error read from
        // the error queue, see `recv_error`), is an error.
        let event = if nread as usize > room {
            if MMSG && nread == sys::uv_errno_t_UV_ENOBUFS as isize && keeps_datagrams(raw) {
                // The read `recv_start` gave no buffer (`alloc_none_cb`) while
                // datagrams are kept: they come first, instead of this event.
                return deliver_kept(raw);
            }
            Err(recv_error(nread))
        } else {
            let data: &[u8] = if nread == 0 {
                &[]
            } else {
                // SAFETY: libuv wrote `nread` bytes at `base`, in the lent
                // buffer (of `room` bytes).
                unsafe { std::slice::from_raw_parts(base, nread as usize) }
            };
            // SAFETY: libuv passes null or the sender's address, in storage large
            // enough for any (a sockaddr_storage, or a sockaddr_in6 per batch
            // chunk), whose family field says which struct it is.
            let addr = (!addr.is_null())
                .then(|| unsafe { crate::addr::from_c(addr) })
                .flatten();
            Ok(Datagram { data, addr, flags })
        };
        if MMSG && flags.contains(UdpFlags::MMSG_CHUNK) {
            // A datagram of a batch, whose callback is marked as its delivery: a
            // `recv_stop` there keeps the batch's other datagrams (`Udp::recv_stop`).
            // SAFETY: `raw` is a handle made by Udp's constructors, which libuv
            // holds (it calls back).
            unsafe { crate::handle::marking_delivery::<Udp>(raw, || show_made(raw, event)) };
        } else {
            // SAFETY: `raw` is a handle made by Udp's constructors.
            unsafe { show_made(raw, event) };
        }
    }
    if !receiving(raw) {
        if MMSG && is_cut(raw) {
            // A `recv_stop` in this batch, which it was shown a datagram of (and
            // whose buffer stays lent for the rest), or a later event of it: kept.
            // SAFETY: libuv's arguments, passed on.
            if shown || unsafe { keep_cut(raw, nread, buf, addr, flags) } {
                return;
            }
        } else {
            // libuv's read loop goes on after a datagram or a piece of a batch; not
            // after an error, the drained event, or the `ENOBUFS` of an allocation
            // that gave no buffer (`alloc_none_cb`, which must not be asked for
            // again). (Worked out here only: a receiving socket's events need not
            // know.)
            // SAFETY: libuv passes a valid buffer description.
            let more = nread >= 0
                && nread as usize <= unsafe { (*buf).len }
                && (!addr.is_null()
                    || flags.intersects(UdpFlags::MMSG_CHUNK | UdpFlags::MMSG_FREE));
            if not_receiving(raw, flags, more) {
                return;
            }
        }
    }
    // A batch's chunks share the buffer: it goes back with the last callback.
    if !flags.contains(UdpFlags::MMSG_CHUNK) {
        crate::stream::give_back(raw.cast(), base);
    }
}

/// A datagram of a batch a `recv_stop` cut short, kept for the socket's next
/// receiver: its bytes (a copy), its sender and its flags, without the batch's
/// own (`MMSG_CHUNK`: it is no longer part of a batch being read).
struct KeptDatagram {
    data: Box<[u8]>,
    addr: Option<SocketAddr>,
    flags: UdpFlags,
}

/// What a `RECVMMSG` socket keeps of batches a `recv_stop` cut short (in the
/// handle's extras: dropped with them when it closes).
#[derive(Default)]
pub(crate) struct Kept {
    /// The datagrams, in the order they came, for the next `recv_start`.
    queue: VecDeque<KeptDatagram>,
    /// A `recv_stop` in the batch being read: libuv passes its other datagrams
    /// on, and they are kept (`keep_cut`) until the read that ends the batch.
    cut: bool,
}

/// Runs `f` on what the open socket `raw` keeps; `None` when it keeps nothing
/// and not `make`.
fn with_kept<R>(raw: *mut sys::uv_udp_t, make: bool, f: impl FnOnce(&mut Kept) -> R) -> Option<R> {
    // SAFETY: a UDP handle of this library that libuv holds (the callers': open,
    // or calling back); `f` is the callers' short closure: no user code, no
    // other access to the extras.
    unsafe { crate::handle::with_udp_kept(raw.cast(), make, f) }
}

/// Whether the socket `raw` keeps datagrams for its next receiver.
fn keeps_datagrams(raw: *mut sys::uv_udp_t) -> bool {
    with_kept(raw, false, |k| !k.queue.is_empty()).unwrap_or(false)
}

/// Whether a `recv_stop` cut the batch `raw` reads (see [`Kept::cut`]); never
/// for a closing handle, whose batch's rest goes.
fn is_cut(raw: *mut sys::uv_udp_t) -> bool {
    // SAFETY: a handle libuv holds; the call reads its flags.
    let closing = unsafe { sys::uv_is_closing(raw.cast()) } != 0;
    !closing && with_kept(raw, false, |k| k.cut).unwrap_or(false)
}

/// An event of a batch cut short (`Udp::recv_stop` from the callback of one of
/// its datagrams) that the user was not shown: each datagram is kept, in order,
/// for the next `recv_start`; the batch's last event gives its buffer back; the
/// read after it gets no buffer (`alloc_none_cb`, installed by the stop), and
/// its `ENOBUFS` (or whatever else ends libuv's read loop) ends the cut. True when
/// the buffer is not to be given back (a datagram's part of it).
///
/// # Safety
/// libuv's receive-callback arguments for an open `RECVMMSG` socket of this
/// library that nobody receives from.
#[cold]
#[inline(never)]
unsafe fn keep_cut(
    raw: *mut sys::uv_udp_t,
    nread: isize,
    buf: *const sys::uv_buf_t,
    addr: *const sys::sockaddr,
    flags: UdpFlags,
) -> bool {
    if flags.contains(UdpFlags::MMSG_FREE) {
        // The batch is over: its buffer goes back.
        return false;
    }
    if flags.contains(UdpFlags::MMSG_CHUNK) {
        // SAFETY: libuv passes a valid buffer description.
        let (base, room) = unsafe { ((*buf).base as *const u8, (*buf).len) };
        // A negative count (an error read from the error queue with the batch,
        // which nobody receives: dropped, as ever) is larger as a `usize`.
        if nread as usize <= room {
            let data: Box<[u8]> = if nread == 0 {
                Box::default()
            } else {
                // SAFETY: libuv wrote `nread` bytes at `base`, in its part of
                // the lent buffer (of `room` bytes).
                unsafe { std::slice::from_raw_parts(base, nread as usize) }.into()
            };
            // SAFETY: as in `recv_any`.
            let addr = (!addr.is_null())
                .then(|| unsafe { crate::addr::from_c(addr) })
                .flatten();
            let d = KeptDatagram {
                data,
                addr,
                flags: flags.difference(UdpFlags::MMSG_CHUNK | UdpFlags::MMSG_FREE),
            };
            with_kept(raw, true, |k| k.queue.push_back(d));
        }
        return true;
    }
    // The read after the batch (no buffer), or the end of libuv's read loop.
    end_cut(raw);
    false
}

/// Ends a cut (see [`Kept::cut`]) of the socket `raw`, which does not receive:
/// with no send queued its callbacks go, which ends libuv's read loop; with one
/// they stay for the error it may bring (`keep_error_reader`).
fn end_cut(raw: *mut sys::uv_udp_t) {
    with_kept(raw, false, |k| k.cut = false);
    // SAFETY: an open handle libuv holds; the count is a field read, and libuv
    // reads the callbacks before each read (`uv_udp_recv_start` replaces them).
    unsafe {
        if sys::uv_udp_get_send_queue_count(raw) > 0 {
            ((*raw).alloc_cb, (*raw).recv_cb) = callbacks_for(raw);
        } else {
            (*raw).recv_cb = None;
            (*raw).alloc_cb = None;
        }
    }
}

/// Gives the receive callback of `raw` the datagrams it keeps, in order, while it
/// receives (it may stop, or close, in any of them); once none is left, libuv's
/// reads get buffers again (`recv_start` gave none, so that the kept datagrams
/// come before what the socket holds).
fn deliver_kept(raw: *mut sys::uv_udp_t) {
    while receiving(raw) {
        let Some(d) = with_kept(raw, false, |k| k.queue.pop_front()).flatten() else {
            // SAFETY: an open handle that receives: libuv reads this field before
            // each read; this is the allocation `recv_start` would have given.
            unsafe { (*raw).alloc_cb = callbacks_for(raw).0 };
            return;
        };
        let event = Ok(Datagram {
            data: &d.data,
            addr: d.addr,
            flags: d.flags,
        });
        // SAFETY: `raw` is a handle made by Udp's constructors, held by libuv.
        unsafe { show_made(raw, event) };
    }
}

/// The sockets whose receiving started again with datagrams kept
/// (`LoopShared::udp_due`), and the idle handle that gives them their datagrams
/// in the loop's next iteration (before it polls, and without blocking: no new
/// datagram is needed).
pub(crate) struct Due {
    idle: crate::Idle,
    sockets: Vec<Udp>,
}

/// Has the socket `udp`, which keeps datagrams, given them in the loop's next
/// iteration (the loop's `Due`, made by the first call: `ClosedLoop` once the
/// loop tears down).
fn schedule_kept(udp: &Udp) -> Result<()> {
    let lp = udp.loop_();
    let shared = lp.shared();
    if shared.udp_due.borrow().is_none() {
        let idle = crate::Idle::new_internal(&lp)?;
        *shared.udp_due.borrow_mut() = Some(Due {
            idle,
            sockets: Vec::new(),
        });
    }
    let idle = {
        let mut due = shared.udp_due.borrow_mut();
        let Some(due) = due.as_mut() else {
            return Err(Error::closed_loop("uv_udp_recv_start"));
        };
        if !due
            .sockets
            .iter()
            .any(|u| u.typed().ptr() == udp.typed().ptr())
        {
            due.sockets.push(udp.clone());
        }
        due.idle.clone()
    };
    idle.start(deliver_due)
}

/// The idle handle's callback: the sockets due get their kept datagrams; it stops
/// once none is due.
fn deliver_due(idle: &crate::Idle) {
    let lp = idle.loop_();
    let shared = lp.shared();
    let sockets = match shared.udp_due.borrow_mut().as_mut() {
        Some(due) => std::mem::take(&mut due.sockets),
        None => return,
    };
    for udp in sockets {
        if let Some(raw) = udp.typed().raw_open() {
            deliver_kept(raw);
        }
    }
    // Sockets started during the deliveries are due at the next iteration.
    let idle_done = matches!(shared.udp_due.borrow().as_ref(), Some(d) if d.sockets.is_empty());
    if idle_done {
        let _ = idle.stop();
    }
}

/// After an event of a socket nobody receives from any more (`recv_stop` or
/// `close` in the callback, or the error reader of queued sends): ends libuv's
/// read loop, which `more` says would read again (after a datagram or a piece of
/// a batch). True when the buffer was taken back here (a batch cut short).
///
/// With no send queued the callbacks go. A queued send may still bring an error
/// event, which libuv reads with them (`keep_error_reader`): they stay, and the
/// loop's next read gets no buffer instead (`alloc_none_cb`), so that the
/// datagrams the socket holds wait for the next `recv_start` rather than being
/// read here, where nobody takes them.
#[cold]
#[inline(never)]
fn not_receiving(raw: *mut sys::uv_udp_t, flags: UdpFlags, more: bool) -> bool {
    // SAFETY: a live handle; the count is a field read.
    let sending = unsafe { sys::uv_udp_get_send_queue_count(raw) } > 0;
    if sending {
        if more {
            // SAFETY: as above; libuv reads this field before each read of its loop
            // (`uv_udp_recv_start` replaces it, `uv_udp_recv_stop` clears it).
            unsafe { (*raw).alloc_cb = Some(alloc_none_cb) };
        }
        return false;
    }
    // Nobody receives and no send can bring an error: end libuv's read loop here
    // (it stops when the callbacks are gone). A batch cut short gets no last
    // callback, so its buffer comes back now.
    // SAFETY: as above; libuv reads these fields before each callback.
    unsafe {
        (*raw).recv_cb = None;
        (*raw).alloc_cb = None;
    }
    if flags.contains(UdpFlags::MMSG_CHUNK) {
        crate::stream::loop_shared(raw.cast())
            .read_buffer()
            .reclaim();
        return true;
    }
    false
}

/// A receive error (out of the datagrams' way): `nread` is negative, or larger than
/// the buffer. libuv reports an error read from the error queue (a socket bound
/// with `LINUX_RECVERR`) as its errno negated in unsigned 32-bit arithmetic, which
/// arrives as a large positive count whose low 32 bits are the negative code: never
/// a datagram's length, whose bytes would be read past the buffer's end.
#[cold]
#[inline(never)]
fn recv_error(nread: isize) -> Error {
    const OP: &str = "uv_udp_recv";
    let code = nread as i32;
    if code < 0 {
        Error::from_raw(code, OP)
    } else {
        // No count beyond the buffer without an error code comes from libuv.
        Error::new(crate::StatusCode::EINVAL, OP)
    }
}

/// libuv reads from a UDP socket when it reports an error (POLLERR) even while
/// nobody receives, and asserts that it has receive callbacks then (a connected
/// socket that got an ICMP error after a send had to wait). Sockets with sends
/// queued are therefore never left without them: when the user does not receive,
/// the trampoline shows nothing (the error, or a datagram read with it, is
/// dropped) and removes itself once no send is queued.
#[inline]
fn keep_error_reader(raw: *mut sys::uv_udp_t) {
    // SAFETY: an open UDP handle of this library; libuv only reads these fields
    // (uv_udp_recv_start replaces them, uv_udp_recv_stop clears them).
    unsafe {
        if (*raw).recv_cb.is_none() {
            ((*raw).alloc_cb, (*raw).recv_cb) = callbacks_for(raw);
        }
    }
}

/// `send` on a closed handle (out of its way): drops what the send was given, there,
/// so that the caller's path keeps no copy of it for this one.
#[cold]
#[inline(never)]
fn send_closed<C>(data: WriteData, callback: C) -> Error {
    drop(callback);
    drop(data);
    Error::closed_handle("uv_udp_send")
}

/// Starts a send (`uv_udp_send`) and, once it is queued, keeps a reader for the
/// error event it may bring (before the loop next polls, which is when libuv
/// reads it).
///
/// # Safety
/// `raw` is open; `req` is a request struct that stays put until `done` runs;
/// `bufs` (`n` of them), their bytes and `to` (null or a C address of its
/// family's size) are valid for the call (libuv copies the array and the
/// address), the bytes until `done`.
#[inline(always)]
unsafe fn start_send(
    req: *mut sys::uv_udp_send_t,
    raw: *mut sys::uv_udp_t,
    bufs: *const sys::uv_buf_t,
    n: u32,
    to: *const sys::sockaddr,
    done: crate::request::Done<sys::uv_udp_send_t>,
) -> i32 {
    // SAFETY: per the contract.
    let rc = unsafe { sys::uv_udp_send(req, raw, bufs, n, to, Some(done)) };
    if rc >= 0 {
        keep_error_reader(raw);
    }
    rc
}

/// The name of the send requests, known from their type (kept in no field).
#[derive(Clone, Copy)]
struct UvUdpSend;

impl crate::request::OpName for UvUdpSend {
    #[inline(always)]
    fn name(self) -> &'static str {
        "uv_udp_send"
    }
}

/// The error of `try_send` (out of its way): libuv's code, or `None` for a closed
/// handle.
#[cold]
#[inline(never)]
fn try_send_error(rc: Option<i32>) -> Error {
    const OP: &str = "uv_udp_try_send";
    match rc {
        Some(rc) => Error::from_raw(rc, OP),
        None => Error::closed_handle(OP),
    }
}

/// libuv's view of bytes that do not live inside the value itself (all but
/// `Inline` and the several buffers of `Many`), so that it stays valid when the
/// value moves into the request.
#[inline(always)]
fn outside_bytes(data: &WriteData) -> Option<sys::uv_buf_t> {
    let bytes: &[u8] = match data {
        WriteData::One(v) => v,
        WriteData::Static(v) => v,
        WriteData::Shared(v) => v,
        WriteData::SharedSync(v) => v,
        #[cfg(feature = "bytes")]
        WriteData::Bytes(v) => v,
        WriteData::Inline(_) | WriteData::Many(_) => return None,
    };
    Some(crate::stream::uv_buf(bytes))
}

#[cfg(unix)]
use crate::libuv_flags::UV_HANDLE_IPV6 as HANDLE_IPV6;

impl Udp {
    /// Before the socket options that have an IPv4 and an IPv6 form (`set_ttl`,
    /// `set_multicast_ttl`, `set_multicast_loop`, `set_multicast_interface`): libuv
    /// picks the form by a mark it sets only when it binds the socket itself, so on
    /// an IPv6 socket made by `with_family` or taken over by `open` it set the IPv4
    /// option and returned success, and the IPv6 datagrams kept the default. The
    /// mark is set here for a socket that is IPv6.
    fn mark_ipv6(&self) -> crate::Result<()> {
        #[cfg(unix)]
        {
            let raw = self.typed().raw("uv_udp_set_ttl")?;
            // SAFETY: the handle is open; only its flags are read.
            let marked = unsafe { (*raw).flags } & HANDLE_IPV6 != 0;
            if !marked && self.family()? == Some(crate::AddressFamily::Inet6) {
                // SAFETY: the handle is open and its socket is IPv6, which is what
                // the mark says (libuv sets it, for the same reason, when it binds
                // an IPv6 address); libuv reads it only to pick socket options.
                unsafe { (*raw).flags |= HANDLE_IPV6 };
            }
        }
        Ok(())
    }

    /// A new UDP handle with a socket of `family` and creation flags
    /// (`uv_udp_init_ex`): `UdpFlags::RECVMMSG` receives several datagrams per system
    /// call where the platform can. The family and the flags share one C argument,
    /// which is why this constructor is written by hand.
    pub fn with_flags(
        loop_: &crate::LoopHandle,
        family: crate::AddressFamily,
        flags: UdpFlags,
    ) -> Result<Udp> {
        const OP: &str = "uv_udp_init_ex";
        // The family and the flags share one C argument (family in the low byte):
        // only creation flags may be given, and only the families libuv takes.
        crate::contracts::flags_arg(flags.bits(), UdpFlags::RECVMMSG.bits(), OP)?;
        if !matches!(
            family,
            crate::AddressFamily::Inet
                | crate::AddressFamily::Inet6
                | crate::AddressFamily::Unspecified
        ) {
            return Err(Error::new(crate::StatusCode::EINVAL, OP));
        }
        let arg = (family.raw() as c_uint) | flags.bits();
        let init = |l, h| {
            // SAFETY: `l` is an open loop and `h` a fresh handle struct that will not move.
            unsafe { sys::uv_udp_init_ex(l, h, arg) }
        };
        // SAFETY: `init` calls this handle type's libuv init function with the loop and
        // struct it is given and returns its result.
        unsafe { crate::handle::Typed::new(loop_, UdpSlots::default(), "uv_udp_init_ex", init) }
            .map(Udp::from_typed)
    }

    /// The socket's address family: `None` while it has no socket or is not bound
    /// (from `local_addr`).
    pub fn family(&self) -> Result<Option<crate::AddressFamily>> {
        crate::addr::family_from(self.local_addr())
    }

    /// Starts receiving (`uv_udp_recv_start`): `callback` gets each datagram, or an
    /// error. `EALREADY` on a socket that is receiving (`recv_stop` first); `EINVAL`
    /// on a socket in blocking mode (switched by a copy of it made before `open`),
    /// where libuv's reads would wait for datagrams with the loop's thread.
    ///
    /// Datagrams kept from a batch a `recv_stop` cut short (a `RECVMMSG` socket)
    /// come first, in order, in the loop's next iteration (whether or not more
    /// datagrams arrive), before any the socket holds.
    pub fn recv_start(
        &self,
        callback: impl FnMut(&Udp, Result<Datagram<'_>>) + 'static,
    ) -> Result<()> {
        let raw = self.typed().raw("uv_udp_recv_start")?;
        #[cfg(unix)]
        non_blocking(raw)?;
        // Only batch sockets keep datagrams. Their delivery is arranged first (it
        // may fail: then nothing started); it finds nothing to do if the start
        // below fails.
        let kept = keeps_datagrams(raw);
        if kept {
            schedule_kept(self)?;
        }
        set_recv_callback(&self.typed().slots().on_recv, callback, |direct| {
            // Batches go through the generic trampoline; the others get the one
            // made for this callback, which is in the slot now.
            let (alloc, recv) = if reads_batches(raw) {
                let (alloc, recv) = callbacks_for(raw);
                // With datagrams kept, libuv's first read gets no buffer: they
                // come with the `ENOBUFS` that follows, if it comes before the
                // idle handle's delivery (`recv_any`), which puts this allocation
                // back.
                (
                    if kept {
                        Some(alloc_none_cb as _)
                    } else {
                        alloc
                    },
                    recv,
                )
            } else {
                (Some(alloc_one_cb as _), direct)
            };
            // SAFETY: the handle is open.
            check(
                unsafe { sys::uv_udp_recv_start(raw, alloc, recv) },
                "uv_udp_recv_start",
            )
        })?;
        // A cut batch whose read loop ended by its count (see `Kept::cut`) is
        // over: the callbacks are the receiver's now.
        with_kept(raw, false, |k| k.cut = false);
        Ok(())
    }

    /// Stops receiving (`uv_udp_recv_stop`) and drops the receive callback (with
    /// what it captured; called from inside it, once it returns): a later
    /// [`recv_start`](Udp::recv_start) gives the next one. A no-op on a closed
    /// handle. Nothing the socket received is lost: datagrams it holds wait for
    /// the next `recv_start` (from the receive callback too, with sends queued or
    /// not), and so does, on a `RECVMMSG` socket, the rest of the batch the
    /// callback's datagram came in (read with it in one system call): the runtime
    /// keeps a copy of each, with its sender and flags (but `MMSG_CHUNK`), and the
    /// next `recv_start` gives them first, in order, in the loop's next iteration.
    /// A `recv_start` from the same callback gets the rest of the batch at once,
    /// as it comes; closing the handle drops what is kept.
    /// What is kept was received: a [`connect`](Udp::connect) before the restart
    /// does not filter it (as the kernel gives a socket connected late the
    /// datagrams of other senders it had queued), only what arrives after the
    /// connect.
    pub fn recv_stop(&self) -> Result<()> {
        let Some(raw) = self.typed().raw_open() else {
            return Ok(());
        };
        // SAFETY: the handle is open.
        check(unsafe { sys::uv_udp_recv_stop(raw) }, "uv_udp_recv_stop")?;
        if self.typed().is_delivering() {
            // From the callback of a datagram of a batch (`recv_any` marks only
            // those): libuv passes the batch's other datagrams on while the
            // handle has a receive callback, and reads again after them. The
            // generic one takes them (`keep_cut`), and that read gets no buffer,
            // which ends the cut (`end_cut`).
            with_kept(raw, true, |k| k.cut = true);
            // SAFETY: the handle is open; libuv reads these fields before each
            // callback and read (`uv_udp_recv_start` replaces them).
            unsafe {
                (*raw).recv_cb = Some(recv_cb::<true>);
                (*raw).alloc_cb = Some(alloc_none_cb);
            }
        } else {
            // A cut batch whose read loop ended by its count is over.
            with_kept(raw, false, |k| k.cut = false);
            // Sends still queued may bring an error event: keep a reader for it.
            // SAFETY: the handle is open; the count is a field read.
            if unsafe { sys::uv_udp_get_send_queue_count(raw) } > 0 {
                keep_error_reader(raw);
            }
        }
        // The callback will not be called again (libuv calls no receive
        // trampoline of it now: `uv_udp_recv_stop` cleared it, the error reader's
        // and a cut batch's are the generic one, which shows no event to a socket
        // that does not receive): it is dropped, last, as its drop is user code (which may
        // start receiving again, or close the handle). Replaced by one that does
        // nothing, rather than taken, as for a stream's `read_stop`: inside the
        // callback the slot is empty while it runs, and a filled slot is what
        // makes the call drop it afterwards. A receiver that waits for the
        // callback (`future::recv_from`) learns from that drop that it stopped.
        let slot = &self.typed().slots().on_recv;
        slot.set(slot.callback(
            |_: &Udp, _: Result<Datagram<'_>>| {},
            |p| p,
            // An event made whole that nobody takes is left (see `show_made`).
            |_, _, _: &RecvParts| {},
        ));
        Ok(())
    }

    /// Sends `data` to `addr` (`uv_udp_send`): an `Option<SocketAddr>` (`None` for a
    /// connected socket's peer) or a [`&SockAddr`](crate::SockAddr) converted once
    /// (see [`SendAddr`](crate::SendAddr)); `callback` gets the result. The data is
    /// kept until then.
    #[inline]
    pub fn send(
        &self,
        data: impl Into<WriteData>,
        addr: impl crate::SendAddr,
        callback: impl FnOnce(&Udp, Result<()>) + 'static,
    ) -> Result<()> {
        let data = data.into();
        let Some(raw) = self.typed().raw_open() else {
            return Err(send_closed(data, callback));
        };
        // The address in C form, before the request is made (libuv copies it).
        let mut to_c = std::mem::MaybeUninit::uninit();
        let to = addr.write_c(&mut to_c);
        // Static bytes need no keeping: such a request holds no data (none written
        // into it, none to drop when it completes). The test folds where the
        // caller's value is known (`send` is inlined). The value is held as
        // ManuallyDrop so that no drop of it follows the match (static bytes have
        // none; the others move on).
        let data = ManuallyDrop::new(data);
        let data = match *data {
            WriteData::Static(bytes) => bytes,
            _ => return self.send_kept(raw, ManuallyDrop::into_inner(data), to, callback),
        };
        let buf = crate::stream::uv_buf(data);
        let start = |req, _: &mut (), done| {
            // SAFETY: the handle is open; `to` (in `to_c`) lives during this call;
            // the bytes are static and the request stays put until `done`.
            unsafe { start_send(req, raw, &buf, 1, to, done) }
        };
        // SAFETY: `raw` is this open handle's struct.
        unsafe {
            crate::request::submit_named::<sys::uv_udp_send_t, Udp, _, (), crate::request::NoRead, _>(
                self,
                raw.cast(),
                UvUdpSend,
                (),
                callback,
                start,
            )
        }
    }

    /// `send` of data the request keeps until it completes; `raw` is open, `to`
    /// null or a C address valid during the call.
    #[inline(always)]
    fn send_kept(
        &self,
        raw: *mut sys::uv_udp_t,
        data: WriteData,
        to: *const sys::sockaddr,
        callback: impl FnOnce(&Udp, Result<()>) + 'static,
    ) -> Result<()> {
        // Taken here, where the compiler still knows the variant (the caller's
        // value, inlined), not from the request after the move into it.
        let outside = outside_bytes(&data);
        let start = |req, data: &mut KeptData, done| {
            // SAFETY: the handle is open; `to` (in the caller's frame) lives
            // during this call; the bytes (inline ones included: the request's
            // data does not move) and the request stay put until `done`.
            let start = |bufs, n| unsafe { start_send(req, raw, bufs, n, to, done) };
            match outside {
                Some(buf) => start(&buf, 1),
                None => crate::stream::with_bufs(&data.0, start),
            }
        };
        // SAFETY: `raw` is this open handle's struct.
        unsafe {
            crate::request::submit_named::<
                sys::uv_udp_send_t,
                Udp,
                _,
                KeptData,
                crate::request::NoRead,
                _,
            >(
                self,
                raw.cast(),
                UvUdpSend,
                KeptData(ManuallyDrop::new(data)),
                callback,
                start,
            )
        }
    }

    /// Sends at once if possible (`uv_udp_try_send`) to `addr`, as [`send`](Udp::send)
    /// takes it: the number of bytes sent, or `EAGAIN`.
    #[inline]
    pub fn try_send(&self, data: &[u8], addr: impl crate::SendAddr) -> Result<usize> {
        let Some(raw) = self.typed().raw_open() else {
            return Err(try_send_error(None));
        };
        let buf = crate::stream::uv_buf(data);
        // SAFETY: the handle is open; libuv only reads the buffer and the address
        // during the call.
        let rc = addr.with_c(|to| unsafe { sys::uv_udp_try_send(raw, &buf, 1, to) });
        if rc < 0 {
            return Err(try_send_error(Some(rc)));
        }
        Ok(rc as usize)
    }

    /// Sends several datagrams at once if possible (`uv_udp_try_send2`; one
    /// `sendmmsg` call per 20 datagrams where the system has it), each to its
    /// address (`None` on a connected handle): the number of datagrams sent, from
    /// the first (fewer than given when the socket's buffer filled). `EAGAIN` when
    /// none could be sent or sends are queued; `EINVAL` for an empty slice, and on
    /// a handle with no socket yet (unlike `try_send`, it makes none: `bind` first);
    /// `EDESTADDRREQ` / `EISCONN` as `try_send`.
    pub fn try_send_many(&self, datagrams: &[(&[u8], Option<SocketAddr>)]) -> Result<usize> {
        const OP: &str = "uv_udp_try_send2";
        let raw = self.typed().raw(OP)?;
        if datagrams.is_empty() {
            return Err(Error::new(crate::StatusCode::EINVAL, OP));
        }
        // libuv sends more than one batch (20 datagrams, its `sendmmsg` array)
        // wrongly: past each batch it skips as many datagrams as the batch sent,
        // and counts the ones it sent after them as if they followed. One call per
        // batch at most keeps it on the path that counts right.
        let mut sent = 0;
        for chunk in datagrams.chunks(TRY_SEND_BATCH) {
            // SAFETY: the handle is open (checked above; nothing here closes it).
            match unsafe { try_send_batch(raw, chunk) } {
                Ok(n) => {
                    sent += n;
                    if n < chunk.len() {
                        break;
                    }
                }
                Err(e) if sent == 0 => return Err(e),
                // The datagrams sent so far are the answer; the error comes again
                // at the next call.
                Err(_) => break,
            }
        }
        Ok(sent)
    }

    /// Removes the association made by `connect` (`uv_udp_connect` with no address).
    pub fn disconnect(&self) -> Result<()> {
        let raw = self.typed().raw("uv_udp_connect")?;
        // SAFETY: the handle is open; a null address disconnects.
        check(
            unsafe { sys::uv_udp_connect(raw, std::ptr::null()) },
            "uv_udp_connect",
        )
    }
}

/// The datagrams libuv's `uv_udp_try_send2` sends right in one call: one batch of
/// its `sendmmsg` array (see `Udp::try_send_many`).
const TRY_SEND_BATCH: usize = 20;

/// One `uv_udp_try_send2` call of at most [`TRY_SEND_BATCH`] datagrams (at least
/// one): how many were sent, from the first.
///
/// # Safety
/// `raw` is an open UDP handle made by this library.
unsafe fn try_send_batch(
    raw: *mut sys::uv_udp_t,
    datagrams: &[(&[u8], Option<SocketAddr>)],
) -> Result<usize> {
    const OP: &str = "uv_udp_try_send2";
    debug_assert!(!datagrams.is_empty() && datagrams.len() <= TRY_SEND_BATCH);
    let count = datagrams.len();
    // The arrays libuv takes, on the stack (a batch is at most TRY_SEND_BATCH);
    // the entries past `count` are not read. Filled first, pointed at after, so
    // that no pointer outlives a write to its array.
    // SAFETY: InetAddr is plain C data; all-zero is a valid value.
    let mut addrs: [InetAddr; TRY_SEND_BATCH] = unsafe { std::mem::zeroed() };
    let mut bufs = [crate::stream::uv_buf(&[]); TRY_SEND_BATCH];
    for (i, (d, a)) in datagrams.iter().enumerate() {
        bufs[i] = crate::stream::uv_buf(d);
        if let Some(a) = a {
            addrs[i] = InetAddr::new(a);
        }
    }
    let (buf_base, addr_base) = (bufs.as_mut_ptr(), addrs.as_ptr());
    let mut buf_ptrs = [std::ptr::null_mut::<sys::uv_buf_t>(); TRY_SEND_BATCH];
    let mut addr_ptrs = [std::ptr::null_mut::<sys::sockaddr>(); TRY_SEND_BATCH];
    for (i, (_, a)) in datagrams.iter().enumerate() {
        buf_ptrs[i] = buf_base.wrapping_add(i);
        if a.is_some() {
            addr_ptrs[i] = addr_base.wrapping_add(i).cast::<sys::sockaddr>().cast_mut();
        }
    }
    let mut nbufs = [1u32; TRY_SEND_BATCH];
    // SAFETY: the handle is open (the caller's contract); the arrays hold `count`
    // (at most TRY_SEND_BATCH) entries each, every buffer and address stays alive
    // (in `datagrams`, `bufs` and `addrs`) for the call, and libuv only reads them
    // during it.
    let rc = unsafe {
        sys::uv_udp_try_send2(
            raw,
            count as u32,
            buf_ptrs.as_mut_ptr(),
            nbufs.as_mut_ptr(),
            addr_ptrs.as_mut_ptr(),
            0,
        )
    };
    check(rc, OP).map(|()| rc as usize)
}

/// `Udp` from a `std` socket on a loop: `Udp::try_from((&lp, socket))`. The socket is
/// handed back on error.
impl TryFrom<(&crate::LoopHandle, std::net::UdpSocket)> for Udp {
    type Error = crate::Rejected<std::net::UdpSocket>;

    fn try_from(
        (lp, s): (&crate::LoopHandle, std::net::UdpSocket),
    ) -> std::result::Result<Udp, Self::Error> {
        let udp = match Udp::new(lp) {
            Ok(h) => h,
            Err(e) => return Err(crate::Rejected::new(e, s)),
        };
        udp.open(s).map_err(|r| r.map(std::net::UdpSocket::from))?;
        Ok(udp)
    }
}

/// `Udp` from a `std` socket on a `&Loop`: as from a `&LoopHandle`.
impl TryFrom<(&crate::Loop, std::net::UdpSocket)> for Udp {
    type Error = crate::Rejected<std::net::UdpSocket>;

    fn try_from(
        (lp, s): (&crate::Loop, std::net::UdpSocket),
    ) -> std::result::Result<Udp, Self::Error> {
        Udp::try_from((&**lp, s))
    }
}
