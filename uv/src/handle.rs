//! The handle lifecycle shared by every handle type.
//!
//! Each handle lives in one allocation from its loop's slab, a [`HandleBox`]: the
//! libuv struct and the callback slots. The library's header for the handle (its
//! reference count, state and type) lives inside the libuv struct, in the part of
//! `uv_handle_t`'s `u` union that libuv reserves and never uses on this platform
//! (see [`HEADER_OFFSET`]), so a handle costs its libuv struct and its slots. The user's values ([`Handle`] and
//! the typed wrappers) are counted references to it. The allocation is freed only
//! when both are true: no user reference is left, and libuv has called the close
//! callback.
//!
//! The libuv struct's `data` field is the library's. It holds the slab the memory
//! goes back to (the loop may be gone by then), but while the handle is in libuv
//! and closes with a close callback: then that callback (a [`CloseThunk`], set when
//! closing starts, tagged: see [`CLOSE_TAG`]); and for the few handles that have
//! [`Extras`] while in libuv, a record of them that also holds what `data` would
//! hold without them.
//!
//! An `Async` handle's allocation is a cell of its loop's sender table (which the
//! slab owns) instead of a slab slot: its senders reach the cell's state word (see
//! [`ASYNC_STATE`]) after the handle is gone, so the cell holds only `Async`
//! handles.
//!
//! When the last user reference goes, a handle that can still call user code (libuv
//! reports it active) stays open; otherwise it is
//! closed. The check is made again after each of its callbacks.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use libuv_sys2 as sys;

use crate::callback::Slot;
use crate::error::{check, Error, Result};
use crate::loop_::{LoopHandle, LoopShared, Slab};
use crate::HandleType;

/// What keeps a handle open after the user dropped every reference to it.
#[derive(Clone, Copy, Debug)]
pub enum KeepAlive {
    /// Open while libuv reports it active (started, reading, listening).
    Active,
    /// Closed when the last reference goes.
    Never,
    /// Open while the function says so (asked when the last reference goes and
    /// after each callback): for handles whose pending work libuv does not report
    /// as "active" (an `Async` with a wake-up sent but not yet delivered).
    Custom(fn(&Handle) -> bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum State {
    Open,
    Closing,
    Closed,
}

/// Per-type facts the type-erased core needs.
pub struct VTable {
    type_id: fn() -> TypeId,
    clear: unsafe fn(*mut sys::uv_handle_t),
    free: unsafe fn(*mut sys::uv_handle_t),
    /// The close callback given to libuv: `on_close::<K>`, in which emptying the
    /// slots and freeing the allocation are direct (inlined) code.
    on_close: unsafe extern "C" fn(*mut sys::uv_handle_t),
    keep_alive: KeepAlive,
    name: &'static str,
}

/// Where the [`Header`] sits in every handle's libuv struct: in `uv_handle_t`'s `u`
/// union, after its first pointer-sized word.
///
/// libuv declares the union as `int fd; void* reserved[4];`: `fd` (an `int` in the
/// first word) is used by the Windows pipe and TTY code only, and the rest is
/// reserved for libuv's future use and touched by no libuv source. `uv-codegen
/// check` verifies both facts against the libuv it generates for (the union's
/// declaration in `uv.h`, and no line of its sources or headers that reaches
/// `u.reserved` or the union as a whole), so an upgrade that starts using the space
/// fails that check instead of corrupting handles. libuv's init functions do not
/// write the union either: the header is written once, before the init call, and
/// lives until the allocation is freed.
const HEADER_OFFSET: usize =
    std::mem::offset_of!(sys::uv_handle_t, u) + std::mem::size_of::<*mut std::ffi::c_void>();

/// The last word of the `u` union, after the header (on 64-bit targets; on 32-bit
/// ones the header fills the union).
const UNION_LAST_WORD: usize = std::mem::offset_of!(sys::uv_handle_t, u)
    + std::mem::size_of::<[*mut std::ffi::c_void; 4]>()
    - std::mem::size_of::<u64>();

/// Whether an `Async`'s state word fits in the union after the header.
const STATE_IN_UNION: bool = HEADER_OFFSET + std::mem::size_of::<Header>() <= UNION_LAST_WORD;

/// Where an `Async` handle's sender state word (an `AtomicU64`, owned by its loop's
/// sender table) sits in its allocation: the last word of the libuv struct's `u`
/// union, after the header, in the part libuv reserves and never reaches (see
/// [`HEADER_OFFSET`]; `uv-codegen check` verifies it); where the header leaves no
/// room there (32-bit targets), after the handle allocation. Senders on other
/// threads read and update it atomically while libuv and the loop thread use the
/// struct's other bytes; the library never writes it otherwise once the cell is
/// made (the header is written by field, the libuv init functions leave the union
/// alone).
pub(crate) const ASYNC_STATE: usize = if STATE_IN_UNION {
    UNION_LAST_WORD
} else {
    std::mem::size_of::<HandleBox<crate::Async>>().next_multiple_of(8)
};

/// The size and alignment of an `Async` handle allocation: a cell of its loop's
/// sender table (`crate::handles::async_::SenderTable`), which hands out no other
/// memory. The handle allocation itself, with room for the state word after it
/// where the union has none.
pub(crate) const ASYNC_CELL: std::alloc::Layout = if STATE_IN_UNION {
    std::alloc::Layout::new::<HandleBox<crate::Async>>()
} else {
    let align = std::mem::align_of::<HandleBox<crate::Async>>();
    let align = if align < 8 { 8 } else { align };
    match std::alloc::Layout::from_size_align(ASYNC_STATE + 8, align) {
        Ok(l) => l,
        Err(_) => panic!("an Async cell layout"),
    }
};

// The header fits in the rest of the union, aligned; the state word of an `Async`
// does not overlap it, and is aligned for an AtomicU64.
const _: () = {
    assert!(
        HEADER_OFFSET + std::mem::size_of::<Header>() <= ASYNC_STATE
            || ASYNC_STATE >= std::mem::size_of::<HandleBox<crate::Async>>()
    );
    assert!(ASYNC_STATE + 8 <= ASYNC_CELL.size());
    assert!(ASYNC_CELL.size() >= std::mem::size_of::<HandleBox<crate::Async>>());
    assert!(ASYNC_CELL.align() >= std::mem::align_of::<HandleBox<crate::Async>>());
    assert!(ASYNC_STATE.is_multiple_of(std::mem::align_of::<std::sync::atomic::AtomicU64>()));
    assert!(ASYNC_CELL.align() >= std::mem::align_of::<std::sync::atomic::AtomicU64>());
    assert!(ASYNC_CELL.size().is_multiple_of(ASYNC_CELL.align()));

    let u = std::mem::offset_of!(sys::uv_handle_t, u);
    let end = u + std::mem::size_of::<[*mut std::ffi::c_void; 4]>();
    assert!(HEADER_OFFSET + std::mem::size_of::<Header>() <= end);
    assert!(HEADER_OFFSET.is_multiple_of(std::mem::align_of::<Header>()));
    assert!(std::mem::align_of::<Header>() <= std::mem::align_of::<sys::uv_handle_t>());
};

/// What few handles use, kept out of line (in slab memory that `data` points to)
/// so that every handle does not pay for it.
#[derive(Default)]
pub(crate) struct Extras {
    /// Values the handle keeps until it is closed (the owner of a watched descriptor).
    kept: Vec<Box<dyn Any>>,
    /// The descriptor the handle claimed on its loop (see `keep_with`).
    claimed: Option<crate::RawFd>,
    /// A stream whose open file a child process shares (see
    /// [`mark_shared_with_child`]).
    shared_with_child: bool,
    /// The socket of a stream a child process shares, counted process-wide while
    /// the handle is open, so that a handle the socket enters later (received over
    /// an IPC pipe from this process) is marked too (see
    /// [`mark_shared_with_child`]).
    #[cfg(unix)]
    child_socket: ChildSocket,
    /// The socket descriptor the handle holds, registered as the library's (see
    /// [`hold_socket`]) until the handle starts closing.
    held_socket: Option<crate::RawFd>,
    /// The held socket had copies no handle holds when it entered the handle, and
    /// none was seen gone since (see `contracts::no_unheld_copies`).
    user_copies: bool,
    /// The process's standard descriptors whose open file the handle's descriptor
    /// shares, counted for them while the handle is open (see
    /// [`mark_std_shares`]).
    std_shares: StdShares,
    /// The loss an IPC pipe's read callback was last told of, until the message
    /// is read (see [`set_ipc_loss_told`]).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    ipc_loss_told: Option<crate::stream::LossId>,
    /// The datagrams a UDP socket kept from a batch a `recv_stop` cut short,
    /// for its next receiver (see [`with_udp_kept`]).
    udp_kept: crate::handles::udp::Kept,
}

/// Bit `k` for each standard descriptor `k` (0 to 2) a handle's descriptor shares
/// its open file with; each is counted process-wide while set
/// (`contracts::count_std_shares`), and uncounted when cleared or dropped (the
/// handle closes, or its loop abandons it).
#[derive(Default)]
struct StdShares(u8);

impl StdShares {
    /// Counts the bits of `bits` not set yet.
    fn add(&mut self, bits: u8) {
        let new = bits & !self.0;
        crate::contracts::count_std_shares(new, true);
        self.0 |= new;
    }

    /// Uncounts every bit set.
    fn release(&mut self) {
        crate::contracts::count_std_shares(std::mem::take(&mut self.0), false);
    }
}

impl Drop for StdShares {
    fn drop(&mut self) {
        self.release();
    }
}

/// The socket a child process shares (see `contracts::note_child_socket`),
/// uncounted when released or dropped (the handle closes, or its loop abandons it).
#[cfg(unix)]
#[derive(Default)]
struct ChildSocket(Option<crate::contracts::SocketId>);

#[cfg(unix)]
impl ChildSocket {
    /// Counts `id`, unless a socket is counted already.
    fn set(&mut self, id: crate::contracts::SocketId) {
        if self.0.is_none() {
            crate::contracts::note_child_socket(id, true);
            self.0 = Some(id);
        }
    }

    fn release(&mut self) {
        if let Some(id) = self.0.take() {
            crate::contracts::note_child_socket(id, false);
        }
    }
}

#[cfg(unix)]
impl Drop for ChildSocket {
    fn drop(&mut self) {
        self.release();
    }
}

/// Not in libuv: before a successful init, and from the end of the close callback
/// (or once abandoned with its loop). A handle is in libuv while this bit is clear,
/// so that the common close path tests one mask for zero (see [`FAST_CLOSE_MASK`]).
const OUT_OF_LIBUV: u16 = 1;
/// Made by the library for itself (hidden from `handles()`, not counted by `close`).
const INTERNAL: u16 = 2;
/// `data` points to an [`ExtrasRecord`].
const HAS_EXTRAS: u16 = 4;
/// An `Async` handle senders were made for: closing starts by shutting its cell in
/// the loop's sender table (see [`ASYNC_STATE`]), which clears the flag.
const HAS_SENDER: u16 = 8;
/// `close` was called (state `Closing`).
const CLOSING: u16 = 16;
/// The close callback ran (state `Closed`).
const CLOSED: u16 = 32;
/// A signal or process handle: its close enters libuv's signal code (a signal
/// handle's stops its watch, and restores its signal's disposition after; the
/// close of a loop's last process handle stops the loop's `SIGCHLD` watch), which
/// takes the lock on signal actions: the general path (`begin_close_via`).
const SIGNAL: u16 = 64;
/// A stream whose descriptor is a socket libuv made in this process, non-blocking
/// (a connect or bind that created it, an accept from a listening socket), and not
/// handed out since (`fileno`, which a spawn's stdio also goes through, a send over
/// an IPC pipe, `set_blocking`): nothing else can have made it blocking, so
/// starting to read skips the system call that checks its mode
/// (`contracts::non_blocking`).
const OWN_NONBLOCKING_FD: u16 = 128;
/// The flags of a handle that closes the common way (`uv_close` with nothing to take
/// out of `data` first and no sender cell to shut), when none of them is set: open,
/// in libuv, no senders or extras, not a signal or process handle.
const FAST_CLOSE_MASK: u16 = OUT_OF_LIBUV | HAS_EXTRAS | HAS_SENDER | CLOSING | CLOSED | SIGNAL;
/// A handle whose libuv close reaches kernel state its loop holds: the loop's
/// epoll instance (a stream, UDP or poll handle: its descriptor's watch is
/// taken out), or its inotify instance (a file watcher). In a forked child that
/// state is the parent's too (see `Hdr::close_deferred`).
const SHARES_KERNEL: u16 = 256;

/// The flags that send a close down the general path: [`FAST_CLOSE_MASK`], and
/// in a forked child (of a process that made a loop) also [`SHARES_KERNEL`]
/// ([`on_fork_child`]), whose general path puts off the closes that would
/// change the parent's kernel state. The fast path tests the flags against this
/// mask in one instruction, as against a constant.
static CLOSE_MASK: std::sync::atomic::AtomicU16 =
    std::sync::atomic::AtomicU16::new(FAST_CLOSE_MASK);

/// Run in each child of a `fork()` (by the `pthread_atfork` handler that counts
/// forks, alone in the child, maybe in a signal handler: one atomic operation):
/// closes of handles that share the loop's kernel state take the general path.
#[cfg(unix)]
pub(crate) fn on_fork_child() {
    CLOSE_MASK.fetch_or(SHARES_KERNEL, std::sync::atomic::Ordering::Relaxed);
}

/// The extras of a handle, and what its `data` would hold without them (the slab,
/// or the tagged close callback once closing starts with one).
struct ExtrasRecord {
    extras: Extras,
    close: *mut std::ffi::c_void,
}

/// The part of every handle that does not depend on its type, at [`HEADER_OFFSET`]
/// in its libuv struct. The loop is reached through the libuv struct's `loop` field,
/// whose `data` is the loop's shared state.
#[repr(C)]
struct Header {
    refs: Cell<u32>,
    /// The flags below, and the [`State`] (its two bits: neither is `Open`).
    flags: Cell<u16>,
    vtable: &'static VTable,
}

impl Header {
    fn state(&self) -> State {
        let f = self.flags.get();
        if f & CLOSED != 0 {
            State::Closed
        } else if f & CLOSING != 0 {
            State::Closing
        } else {
            State::Open
        }
    }

    /// Moves to `state` (CLOSED wins over CLOSING, which may stay set).
    fn set_state(&self, state: State) {
        let f = self.flags.get();
        self.flags.set(match state {
            State::Open => f & !(CLOSING | CLOSED),
            State::Closing => f | CLOSING,
            State::Closed => f | CLOSED,
        });
    }
}

/// The callback slots of a handle type (generated).
pub trait Slots: Default + 'static {
    /// Drops every stored callback (and what the runtime keeps with them: the
    /// buffers of a stream's `read_start_with`).
    ///
    /// # Safety
    /// libuv calls none of the handle's callbacks any more, and none of them is
    /// running (the runtime calls it from the handle's close callback): a read
    /// callback may be reading from a buffer that this frees, and a trampoline may
    /// rely on what the slots held when it started the C call.
    unsafe fn clear(&self);
    /// Whether no callback is stored (dropping the slots then runs no code).
    fn is_empty(&self) -> bool;
}

/// A handle type: its libuv struct, its slots and its lifetime rule (implemented by
/// generated code).
///
/// # Safety
/// `Raw` must be the libuv struct of the handle type (starting with the
/// `uv_handle_t` fields), and `from_typed`/`typed` must wrap the reference unchanged.
pub unsafe trait HandleKind: Sized + 'static {
    /// The libuv struct (`uv_timer_t`).
    type Raw: 'static;
    /// The callback slots.
    type Slots: Slots;
    /// Lifetime rule.
    const KEEP_ALIVE: KeepAlive;
    /// Rust name, for messages.
    const NAME: &'static str;
    /// Wraps a reference.
    fn from_typed(inner: Typed<Self>) -> Self;
    /// The reference inside.
    fn typed(&self) -> &Typed<Self>;
}

#[repr(C)]
struct HandleBox<K: HandleKind> {
    raw: K::Raw,
    slots: K::Slots,
}

/// Empties the slots of a handle of type `K` (`Slots::clear`).
///
/// # Safety
/// `h` is a handle allocation of type `K` in its close callback, or abandoned with
/// its loop: libuv calls none of its callbacks any more, and none of them runs.
#[inline]
unsafe fn clear_slots<K: HandleKind>(h: *mut sys::uv_handle_t) {
    // SAFETY: `h` points at a whole HandleBox<K> (it is the vtable of K that calls
    // this); only the slots are borrowed (the libuv struct, which holds the header,
    // is only reached through raw pointers). Per the contract, no callback of the
    // handle runs or will be called: `clear`'s own.
    unsafe {
        let slots = &*std::ptr::addr_of!((*(h as *const HandleBox<K>)).slots);
        slots.clear();
    }
}

#[inline(always)]
unsafe fn free_box<K: HandleKind>(h: *mut sys::uv_handle_t) {
    // Only the slots have something to drop: the libuv struct is plain C data.
    const { assert!(!std::mem::needs_drop::<K::Raw>()) };
    let p = h as *mut HandleBox<K>;
    // SAFETY: the allocation is a live HandleBox<K> (per the contract); its slots
    // are dropped once, here (their callbacks are usually gone already: the close
    // callback, or the abandonment of the loop, empties them; a panic there may
    // have left some).
    unsafe { std::ptr::drop_in_place(std::ptr::addr_of_mut!((*p).slots)) };
    // SAFETY: the allocation was made by Typed::new from the slab whose pointer its
    // libuv struct's `data` holds once it left libuv (on_close, abandon); it is freed
    // once, when no user reference and no libuv reference is left.
    unsafe { free_memory::<K>(h) }
}

/// Gives the memory of a handle allocation of type `K` back to its slab. Out of
/// line, so that `free_box`'s callers end in a jump to it and keep no registers
/// for its rare paths.
///
/// # Safety
/// As `free_box`, with the slots dropped.
#[inline(never)]
unsafe fn free_memory<K: HandleKind>(h: *mut sys::uv_handle_t) {
    // SAFETY: per the contract.
    unsafe { free_memory_inline::<K>(h) }
}

/// `free_memory`, inlined.
///
/// # Safety
/// As `free_memory`.
#[inline(always)]
unsafe fn free_memory_inline<K: HandleKind>(h: *mut sys::uv_handle_t) {
    if is_async::<K>() {
        // SAFETY: per the contract, and an `Async` allocation is a cell of the
        // slab's sender table (`Typed::new_inner`).
        return unsafe {
            Slab::free_async(
                NonNull::new_unchecked((*h).data.cast::<Slab>()),
                NonNull::new_unchecked(h.cast()),
            )
        };
    }
    // SAFETY: per the contract: `data` names the slab the allocation came from.
    unsafe {
        Slab::free(
            NonNull::new_unchecked((*h).data.cast::<Slab>()),
            NonNull::new_unchecked(h.cast()),
            std::alloc::Layout::new::<HandleBox<K>>(),
        )
    }
}

/// Whether `K` is `Async`, whose allocations are cells of the loop's sender table
/// (a comparison of constants: no code).
#[inline(always)]
fn is_async<K: HandleKind>() -> bool {
    TypeId::of::<K>() == TypeId::of::<crate::Async>()
}

struct VTableOf<K>(PhantomData<K>);

impl<K: HandleKind> VTableOf<K> {
    const VTABLE: VTable = {
        // The type-erased code finds the libuv struct at the start of the allocation.
        assert!(std::mem::offset_of!(HandleBox<K>, raw) == 0);
        VTable {
            type_id: TypeId::of::<K>,
            clear: clear_slots::<K>,
            free: free_box::<K>,
            on_close: on_close::<K>,
            keep_alive: K::KEEP_ALIVE,
            name: K::NAME,
        }
    };
}

/// A close callback stored in the libuv struct's `data` while the handle closes: a
/// thin pointer to its `run` function, followed (for a callback that captures
/// something) by the callback itself, in slab memory. A callback that captures
/// nothing takes no memory: `data` then points at a static `run`.
///
/// `run` gets the handle's libuv struct to call the callback with, or null to drop
/// it without a call (a borrowed `Handle` is made only where the callback needs one).
#[repr(transparent)]
struct CloseRun(unsafe fn(TaggedClose, NonNull<Slab>, *mut sys::uv_handle_t));

/// The bit that tells a close callback in a handle's `data` from the slab: set in
/// a close callback's pointer there (both are aligned, so it is clear in either
/// pointer), so that a close with none (the common case) finds the slab in `data`
/// without a look at the loop.
const CLOSE_TAG: usize = 1;

const _: () = assert!(std::mem::align_of::<CloseRun>() > CLOSE_TAG);
const _: () = assert!(std::mem::align_of::<Slab>() > CLOSE_TAG);

/// The `data` word of a handle that closes with `cb` (a pointer from
/// `CloseOf::make`): its pointer, tagged.
#[inline(always)]
fn tagged_close(cb: *const CloseRun) -> *mut std::ffi::c_void {
    cb.cast_mut()
        .cast::<std::ffi::c_void>()
        .wrapping_byte_add(CLOSE_TAG)
}

/// The close callback in the `data` word `word` of a handle without extras (or in
/// its record's `close`), if it holds one; otherwise it holds the slab.
#[inline(always)]
fn close_in(word: *mut std::ffi::c_void) -> Option<TaggedClose> {
    // SAFETY: a word with the tag set is not null.
    (word.addr() & CLOSE_TAG != 0).then(|| TaggedClose(unsafe { NonNull::new_unchecked(word) }))
}

/// A close callback as `data` holds it: the pointer `CloseOf::make` gave, tagged
/// (its `run` gets it so, and `run_boxed` takes the tag off: a callback that
/// captures nothing never needs it taken off).
#[derive(Clone, Copy)]
struct TaggedClose(NonNull<std::ffi::c_void>);

impl TaggedClose {
    /// Calls the callback with the handle of libuv struct `h`, or drops it if `h`
    /// is null.
    ///
    /// # Safety
    /// Once per callback; `slab` is the one it was made with, `h` as `call_close`.
    #[inline(always)]
    unsafe fn run(self, slab: NonNull<Slab>, h: *mut sys::uv_handle_t) {
        // SAFETY: the untagged pointer is a `CloseRun` (`CloseOf::make`); per the
        // contract.
        unsafe {
            let run = (*self
                .0
                .as_ptr()
                .wrapping_byte_sub(CLOSE_TAG)
                .cast::<CloseRun>())
            .0;
            run(self, slab, h)
        }
    }
}

#[repr(C)]
struct CloseThunk<F> {
    run: CloseRun,
    f: ManuallyDrop<F>,
}

struct CloseOf<F>(PhantomData<F>);

impl<F: FnOnce(&Handle) + 'static> CloseOf<F> {
    const RUN_STATIC: &'static CloseRun = &CloseRun(run_static::<F>);

    /// Memory for the close callback's thunk from `slab` (none for a zero-sized
    /// value), taken before the value moves: an allocation that unwinds then
    /// drops the value where the caller has it, so the compiler keeps no copy of
    /// it for that path.
    #[inline(always)]
    fn alloc(slab: &Slab) -> *mut CloseThunk<F> {
        if std::mem::size_of::<F>() == 0 {
            return std::ptr::null_mut();
        }
        slab.alloc(std::alloc::Layout::new::<CloseThunk<F>>())
            .cast::<CloseThunk<F>>()
            .as_ptr()
    }

    /// Stores `f` for the close callback in `p` (from [`CloseOf::alloc`]): the
    /// value for `data`.
    ///
    /// # Safety
    /// `p` comes from `CloseOf::<F>::alloc` with a slab of this thread, unused.
    #[inline(always)]
    unsafe fn make(f: F, p: *mut CloseThunk<F>) -> *const CloseRun {
        if std::mem::size_of::<F>() == 0 {
            // A zero-sized value has nothing to keep: it is made again in
            // `run_static` (this one is forgotten, so it is moved, not copied).
            std::mem::forget(f);
            return Self::RUN_STATIC;
        }
        // SAFETY: per the contract, fresh memory for a CloseThunk<F>, written in
        // place.
        unsafe {
            p.write(CloseThunk {
                run: CloseRun(run_boxed::<F>),
                f: ManuallyDrop::new(f),
            })
        };
        p.cast()
    }
}

/// Calls `f` with the handle of libuv struct `h`, or drops it if `h` is null.
///
/// # Safety
/// `h`, if not null, must be a handle of this library in its close callback.
#[inline(always)]
unsafe fn call_close<F: FnOnce(&Handle)>(f: F, h: *mut sys::uv_handle_t) {
    if let Some(ptr) = NonNull::new(h) {
        // A borrowed reference: the close callback owns none.
        let h = ManuallyDrop::new(Handle {
            ptr,
            _not_send: PhantomData,
        });
        f(&h);
    }
}

/// Calls (or, with a null handle, drops) a zero-sized close callback.
///
/// # Safety
/// Once per `CloseOf::<F>::make` that returned the static: that call forgot the
/// value this one makes again; `h` as `call_close`.
unsafe fn run_static<F: FnOnce(&Handle)>(
    _: TaggedClose,
    _: NonNull<Slab>,
    h: *mut sys::uv_handle_t,
) {
    // SAFETY: F is zero-sized, so a dangling aligned pointer is a valid place to read
    // it from; the value forgotten in `make` is moved back out here, once.
    let f = unsafe { NonNull::<F>::dangling().as_ptr().read() };
    // SAFETY: per the contract.
    unsafe { call_close(f, h) }
}

/// Takes a close callback out of its slab memory and calls it (or, with a null
/// handle, drops it), then frees that memory (also when the call or the drop
/// unwinds).
///
/// The memory is freed after the call, not before: the value is then moved from
/// its place straight into the call, instead of being copied out first (the
/// slab's count held by the allocation keeps the slab alive meanwhile either way).
///
/// # Safety
/// `this` must be a CloseThunk<F> from `CloseOf::<F>::make` with `slab`, tagged
/// (as `data` holds it), run once; `h` as `call_close`.
unsafe fn run_boxed<F: FnOnce(&Handle)>(
    this: TaggedClose,
    slab: NonNull<Slab>,
    h: *mut sys::uv_handle_t,
) {
    /// Gives the thunk's memory back when dropped (after the call, or while it
    /// unwinds).
    struct FreeThunk<F>(NonNull<Slab>, NonNull<CloseThunk<F>>);
    impl<F> Drop for FreeThunk<F> {
        #[inline(always)]
        fn drop(&mut self) {
            // SAFETY: the thunk was made by `CloseOf::make` with this slab, and its
            // value was moved out (`run_boxed`); freed once, here.
            unsafe {
                Slab::free(
                    self.0,
                    self.1.cast(),
                    std::alloc::Layout::new::<CloseThunk<F>>(),
                )
            }
        }
    }
    // SAFETY: `this` is a thunk made by `make`, tagged (not null once untagged).
    let p = unsafe {
        NonNull::new_unchecked(
            this.0
                .as_ptr()
                .wrapping_byte_sub(CLOSE_TAG)
                .cast::<CloseThunk<F>>(),
        )
    };
    let _free = FreeThunk(slab, p);
    // SAFETY: per the contract: the value is moved out once, in one of the
    // branches (each its own move, so that neither copies it for the other), and
    // the memory is not freed before `_free` is dropped.
    unsafe {
        if h.is_null() {
            drop(ManuallyDrop::take(&mut (*p.as_ptr()).f));
        } else {
            call_close(ManuallyDrop::take(&mut (*p.as_ptr()).f), h);
        }
    }
}

/// A counted reference to a handle of any type: the operations every handle has.
///
/// Typed handles (`Timer`, `Idle`, ...) dereference to it.
#[repr(transparent)]
pub struct Handle {
    ptr: NonNull<sys::uv_handle_t>,
    _not_send: PhantomData<*mut ()>,
}

/// `ENOMEM` for `op` (out of line: a rare path of the constructors).
#[cold]
#[inline(never)]
fn no_memory(op: &'static str) -> Error {
    Error::from_raw(sys::uv_errno_t_UV_ENOMEM, op)
}

/// Where a new handle's allocation was placed (handed back by the generated
/// `<constructor>_placed`, for the hand-written code that builds on it).
#[derive(Clone, Copy, Debug)]
pub struct Place {
    /// For an `Async`, the generation its allocation's cell in its loop's sender
    /// table was opened at, if senders may be made for it (the loop is not
    /// closing); `None` for other handles.
    generation: crate::handles::async_::SenderGen,
}

impl Place {
    /// The generation of an `Async` handle's cell, if senders may be made for it,
    /// in its state word's place (`SenderGen::get`).
    #[inline(always)]
    pub(crate) fn sender_generation(&self) -> Option<u64> {
        self.generation.get()
    }
}

/// A counted reference to a handle of type `K` (the inside of a typed handle).
#[repr(transparent)]
pub struct Typed<K: HandleKind> {
    ptr: NonNull<sys::uv_handle_t>,
    _kind: PhantomData<(*mut (), K)>,
}

/// A pointer to a handle allocation, which starts with its libuv struct. It always
/// comes from the allocation's own pointer, so it may reach the slots that follow.
#[derive(Clone, Copy)]
struct Hdr(NonNull<sys::uv_handle_t>);

impl Hdr {
    #[inline(always)]
    fn h(&self) -> &Header {
        // SAFETY: a Hdr is only made for a live allocation whose header was written
        // (Typed::new writes it first); only the header's bytes are borrowed, which
        // libuv never touches (see HEADER_OFFSET).
        unsafe { &*self.0.as_ptr().byte_add(HEADER_OFFSET).cast::<Header>() }
    }

    /// Whether libuv holds the handle (from a successful init until the end of its
    /// close callback).
    #[inline(always)]
    fn in_libuv(&self) -> bool {
        !self.has(OUT_OF_LIBUV)
    }

    /// Whether any of the bits of `flag` is set.
    fn has(&self, flag: u16) -> bool {
        self.h().flags.get() & flag != 0
    }

    fn set(&self, flag: u16, on: bool) {
        let f = self.h().flags.get();
        self.h().flags.set(if on { f | flag } else { f & !flag });
    }

    #[inline(always)]
    fn raw(&self) -> *mut sys::uv_handle_t {
        self.0.as_ptr()
    }

    /// The allocation of a libuv struct made by this library.
    ///
    /// # Safety
    /// `raw` must be the libuv struct of a handle allocation (from `Hdr::raw`, or
    /// handed back by libuv), whose provenance covers the whole allocation.
    unsafe fn from_raw(raw: *mut sys::uv_handle_t) -> Hdr {
        // SAFETY: per the contract, `raw` is not null.
        Hdr(unsafe { NonNull::new_unchecked(raw) })
    }

    #[inline(always)]
    fn is_open(&self) -> bool {
        self.h().flags.get() & (CLOSING | CLOSED) == 0
    }

    /// The loop's shared state. Only while libuv holds the handle: the loop is then
    /// open, and its owner keeps the shared state alive.
    #[inline]
    fn shared(&self) -> &LoopShared {
        debug_assert!(self.in_libuv());
        // SAFETY: while the handle is in libuv its `loop` field points at the open
        // loop, whose `data` is the LoopShared that the Loop owner keeps alive.
        unsafe { &*((*(*self.raw()).loop_).data as *const LoopShared) }
    }

    /// A new counted reference to the loop's shared state.
    ///
    /// # Safety
    /// Only while libuv holds the handle (see `shared`).
    unsafe fn shared_rc(&self) -> std::rc::Rc<LoopShared> {
        // SAFETY: per the contract, `data` is Rc::as_ptr of a live Rc<LoopShared>; the
        // raw pointer (not a reference) keeps the provenance Rc::from_raw needs.
        unsafe {
            let p = (*(*self.raw()).loop_).data as *const LoopShared;
            std::rc::Rc::increment_strong_count(p);
            std::rc::Rc::from_raw(p)
        }
    }

    /// The handle's extras, taken out of `data` (which keeps the close callback).
    /// Only while libuv holds the handle.
    #[cold]
    fn take_extras(&self) -> Extras {
        if !self.has(HAS_EXTRAS) {
            return Extras::default();
        }
        self.set(HAS_EXTRAS, false);
        let raw = self.raw();
        // SAFETY: HAS_EXTRAS says `data` is an ExtrasRecord from `put_extras`, made
        // with this loop's slab; it is moved out once and its memory freed.
        unsafe {
            let p = (*raw).data as *mut ExtrasRecord;
            let record = p.read();
            Slab::free(
                self.shared().slab(),
                NonNull::new_unchecked(p.cast()),
                std::alloc::Layout::new::<ExtrasRecord>(),
            );
            (*raw).data = record.close;
            record.extras
        }
    }

    /// Stores `extras` in `data`, with what it holds (the slab, or the tagged
    /// close callback). Only while libuv holds the handle, and without extras
    /// stored.
    fn put_extras(&self, extras: Extras) {
        debug_assert!(!self.has(HAS_EXTRAS));
        let raw = self.raw();
        // SAFETY: the loop's slab lives while the handle is in libuv.
        let slab = unsafe { self.shared().slab().as_ref() };
        let p = slab
            .alloc(std::alloc::Layout::new::<ExtrasRecord>())
            .cast::<ExtrasRecord>()
            .as_ptr();
        // SAFETY: fresh memory for a record, written in place; `data` holds the
        // slab or the tagged close callback while the handle is in libuv without
        // extras.
        unsafe {
            p.write(ExtrasRecord {
                extras,
                close: (*raw).data,
            });
            (*raw).data = p.cast();
        }
        self.set(HAS_EXTRAS, true);
    }

    /// Runs `f` on the extras, in place (made empty first if there are none). Only
    /// while libuv holds the handle; `f` must not reach this handle's extras again
    /// (the callers are the library's own short closures, which never run user
    /// code).
    fn with_extras(&self, f: impl FnOnce(&mut Extras)) {
        if !self.has(HAS_EXTRAS) {
            self.put_extras(Extras::default());
        }
        // SAFETY: HAS_EXTRAS says `data` is an ExtrasRecord of this handle; per the
        // contract nothing else reaches it while `f` runs.
        f(unsafe { &mut (*((*self.raw()).data as *mut ExtrasRecord)).extras });
    }

    /// Takes the handle's socket out of the library's registry (see
    /// [`hold_socket`]), before `uv_close` closes the descriptor: its number may be
    /// reused at once, by anyone.
    /// Gives the descriptor released, for `rehold_socket` when the close is refused.
    #[cfg(unix)]
    fn release_held_socket(&self) -> Option<crate::RawFd> {
        if !self.has(HAS_EXTRAS) {
            return None;
        }
        let mut held = None;
        self.with_extras(|e| held = e.held_socket.take());
        if let Some(fd) = held {
            crate::contracts::release_socket(fd, self.raw() as usize);
        }
        held
    }

    /// Registers again the socket `release_held_socket` released (`fd`), when the
    /// close that released it was refused: the handle is open and still holds it.
    #[cfg(unix)]
    #[cold]
    fn rehold_socket(&self, fd: Option<crate::RawFd>) {
        if let Some(fd) = fd {
            if crate::contracts::hold_socket(fd, self.raw() as usize) {
                self.with_extras(|e| e.held_socket = Some(fd));
            }
        }
    }

    /// Shuts the sender-table cell of an `Async` senders were made for
    /// (HAS_SENDER, which is cleared): sends answer `ClosedHandle` from now on, and
    /// none is in flight when this returns. Before `uv_close`.
    #[inline(always)]
    fn shut_sender(&self) {
        if self.has(HAS_SENDER) {
            self.set(HAS_SENDER, false);
            // SAFETY: HAS_SENDER is only set on `Async` handles (`mark_senders`),
            // whose allocation is a sender-table cell, alive while `self` is.
            unsafe { crate::handles::async_::shut_cell(self.raw()) };
        }
    }

    /// Takes the close callback and the extras out of `data`, which then names the
    /// slab (the handle leaves libuv).
    #[inline]
    fn take_data(&self, slab: NonNull<Slab>) -> (Option<TaggedClose>, Option<Extras>) {
        let extras = if self.has(HAS_EXTRAS) {
            Some(self.take_extras())
        } else {
            None
        };
        // SAFETY: without extras, `data` holds the tagged close callback or the
        // slab.
        let word = unsafe { std::mem::replace(&mut (*self.raw()).data, slab.as_ptr().cast()) };
        (close_in(word), extras)
    }

    #[inline(always)]
    fn inc_ref(&self) {
        let h = self.h();
        // Like Rc: a count that would overflow means leaked references; stop. (The
        // count is stored first and tested after, as Rc does: one increment of the
        // field and a test of the result, instead of a test before the increment.
        // Nothing reads the wrapped count: the process ends here.)
        let n = h.refs.get().wrapping_add(1);
        h.refs.set(n);
        if n == 0 {
            std::process::abort();
        }
    }

    /// Whether the lifetime rule `keep` (the handle's own) keeps the handle open.
    #[inline(always)]
    fn keeps_alive_by(&self, keep: KeepAlive) -> bool {
        match keep {
            // SAFETY: `raw` is an initialised handle until the close callback.
            KeepAlive::Active => unsafe { is_active_raw(self.raw()) },
            KeepAlive::Never => false,
            KeepAlive::Custom(f) => self.ask_custom(f),
        }
    }

    /// Asks a `Custom` lifetime rule, the caller's code (a hand-written function
    /// of a spec's type), with a reference held for it and under the loop's guard:
    /// a clone of the handle it drops is not the last reference (whose drop asked
    /// the rule again, without end), and its panic goes to the loop's panic rule
    /// (asked after a callback, it unwound into libuv's). A rule that panicked
    /// keeps the handle open (what it would deliver is not lost; the loop's drop
    /// closes it), as does a reference it made and kept.
    ///
    /// The rule may also drop the handle's loop (one kept where it can reach it):
    /// the loop's state is held meanwhile, and the handle, which the loop's
    /// teardown closed, is freed here if nothing references it; the answer is then
    /// `true`, and the caller does nothing more with it.
    ///
    /// Called on an open handle in libuv with no user reference left; a `true`
    /// answer is the last use of the handle by the caller.
    #[inline(never)]
    fn ask_custom(&self, f: fn(&Handle) -> bool) -> bool {
        let h = ManuallyDrop::new(Handle {
            ptr: self.0,
            _not_send: PhantomData,
        });
        let header = self.h();
        header.refs.set(header.refs.get() + 1);
        // SAFETY: the handle is in libuv (the caller's contract).
        let shared = unsafe { self.shared_rc() };
        let keep = shared.guard(|| f(&h));
        let refs = header.refs.get() - 1;
        header.refs.set(refs);
        if refs == 0 && !self.in_libuv() {
            let free = header.vtable.free;
            // SAFETY: the rule's code closed the handle through its loop's
            // teardown (its close callback ran: out of libuv), and no user
            // reference is left: nothing refers to the allocation, freed once here.
            unsafe { free(self.0.as_ptr()) };
            return true;
        }
        keep.unwrap_or(true) || refs > 0
    }

    /// Whether the handle is open and in libuv, and closes the common way: it has
    /// no sender cell to shut or extras to take out of `data` first, and is not a signal
    /// or process handle (whose close runs under the lock on signal actions). One
    /// test of the flags.
    ///
    /// In a forked child (of a process that made a loop), a handle that shares
    /// its loop's kernel state takes the general path, which puts off the closes
    /// that would change the parent's (`begin_close_via`; see [`CLOSE_MASK`]).
    #[inline(always)]
    fn closes_fast(&self) -> bool {
        self.h().flags.get() & CLOSE_MASK.load(std::sync::atomic::Ordering::Relaxed) == 0
    }

    /// Starts closing (idempotent).
    #[inline]
    fn begin_close(self) {
        if !self.closes_fast() {
            // Not open, or not in libuv (begin_close_via returns then), or the
            // general path.
            return self.begin_close_slow();
        }
        // The common case: nothing to take out of `data`, no signal to restore.
        self.h().set_state(State::Closing);
        // SAFETY: the handle is initialised and not yet closing; the allocation stays
        // until its close callback (the vtable's, for this allocation's type) runs.
        unsafe { sys::uv_close(self.raw(), Some(self.h().vtable.on_close)) };
    }

    /// `begin_close` of a handle that has a sender cell to shut or extras, or is
    /// a signal or process handle.
    #[cold]
    #[inline(never)]
    fn begin_close_slow(self) {
        let f = self.h().flags.get();
        if f & FAST_CLOSE_MASK == HAS_SENDER {
            // An open `Async` with senders and nothing else: the common way, once
            // its cell is shut (`data` holds nothing of it). The wait for sends in
            // flight is out of line, so that this path saves no registers.
            // One write of the flags: HAS_SENDER goes, the state is `Closing` (no
            // code of this thread runs before `uv_close`: the shut waits only for
            // other threads' sends). HAS_SENDER is set and CLOSING clear (the
            // test above), so one xor flips both.
            self.h().flags.set(f ^ (HAS_SENDER | CLOSING));
            // SAFETY: HAS_SENDER was only set on `Async` handles (`mark_senders`),
            // whose allocation is a sender-table cell, alive while `self` is.
            if !unsafe { crate::handles::async_::shut_cell_begin(self.raw()) } {
                return self.close_sender_wait();
            }
            // SAFETY: as in `begin_close`; the handle is an `Async` (HAS_SENDER),
            // whose vtable's close callback this is (a constant, not a load).
            unsafe { sys::uv_close(self.raw(), Some(on_close::<crate::Async>)) };
            return;
        }
        self.begin_close_general();
    }

    /// The end of `begin_close_slow` for an `Async` whose cell was shut while sends
    /// held it (its state already `Closing`): waits for them, then closes.
    #[cold]
    #[inline(never)]
    fn close_sender_wait(self) {
        // SAFETY: as in `begin_close_slow` (the cell was shut there).
        unsafe { crate::handles::async_::shut_cell_wait(self.raw()) };
        // SAFETY: as in `begin_close`.
        unsafe { sys::uv_close(self.raw(), Some(self.h().vtable.on_close)) };
    }

    /// `begin_close_slow` of a handle with extras or a signal, or not open.
    #[inline(never)]
    fn begin_close_general(self) {
        // SAFETY: uv_close with our close callback is the way every handle closes.
        let _ = self.begin_close_via("uv_close", |raw, cb| unsafe {
            sys::uv_close(raw, cb);
            0
        });
    }

    /// `Handle::close_with` of an open handle in libuv that does not `closes_fast`,
    /// with its close callback `cb` (from `CloseOf::make`).
    #[cold]
    #[inline(never)]
    fn close_with_slow(self, cb: *const CloseRun) {
        if self.has(HAS_EXTRAS) {
            // SAFETY: HAS_EXTRAS says `data` is an ExtrasRecord, which holds the
            // slab while the handle is open (no close callback yet).
            unsafe { (*((*self.raw()).data as *mut ExtrasRecord)).close = tagged_close(cb) };
        } else {
            // SAFETY: the handle is open: `data` is the library's, and holds the
            // slab (which the close callback finds again).
            unsafe { (*self.raw()).data = tagged_close(cb) };
        }
        self.begin_close_slow();
    }

    /// Starts closing through `close` (`uv_close`, or a variant such as
    /// `uv_tcp_close_reset`), which gets the handle and the close callback to pass.
    /// Idempotent; an error from `close` leaves the handle open.
    fn begin_close_via(
        &self,
        op: &'static str,
        close: impl FnOnce(*mut sys::uv_handle_t, sys::uv_close_cb) -> i32,
    ) -> Result<()> {
        if !self.is_open() || !self.in_libuv() {
            return Ok(());
        }
        if self.has(SHARES_KERNEL) && crate::loop_::forked_process() {
            let shared = self.shared();
            if !shared.in_own_process() && !shared.is_running() {
                return self.close_deferred(op);
            }
        }
        self.h().set_state(State::Closing);
        self.shut_sender();
        self.close_now(op, close)
    }

    /// `begin_close_via` of an open handle whose close reaches kernel state its
    /// loop shares with the parent process, in a forked child that did not
    /// re-create the loop (`after_fork`). libuv's close would take the
    /// descriptor's watch out of the epoll instance both processes use (the
    /// parent's loop would never hear of that descriptor again), or a file's watch
    /// out of their inotify instance. So the handle is closed for the child's code
    /// now (`Closing`: its methods answer `ClosedHandle`, its close callback is
    /// kept) and for libuv once `after_fork` re-created the loop's kernel state
    /// (`close_put_off`); a loop dropped before abandons it with the others. The
    /// child cannot start running the loop meanwhile (`uv_run` is `EINVAL`), so
    /// no callback of the handle runs in between. A variant of `uv_close` that acts on the
    /// descriptor first (`uv_tcp_close_reset`) is refused (`EINVAL`), the handle
    /// left open.
    ///
    /// Not while the loop runs (`begin_close_via` closes at once then): a fork
    /// from inside a callback leaves the child in `uv_run` of the loop, polling
    /// the parent's epoll instance already, and that run only ends once libuv
    /// has closed the handles; and `after_fork` marks the loop running while the
    /// callbacks of the parent's thread-pool requests run, on the kernel state it
    /// has just re-created.
    #[cold]
    #[inline(never)]
    fn close_deferred(&self, op: &'static str) -> Result<()> {
        if op != "uv_close" {
            return Err(Error::new(crate::StatusCode::EINVAL, op));
        }
        self.h().set_state(State::Closing);
        self.shared().deferred_closes.borrow_mut().push(self.0);
        Ok(())
    }

    /// The rest of `begin_close_via`, once the state is `Closing`: releases what
    /// the handle holds of its descriptor, calls `close` and settles the extras.
    fn close_now(
        &self,
        op: &'static str,
        close: impl FnOnce(*mut sys::uv_handle_t, sys::uv_close_cb) -> i32,
    ) -> Result<()> {
        #[cfg(unix)]
        let held = self.release_held_socket();
        // SAFETY: the handle is initialised; its type and (for a signal handle) the
        // signal it watches are read before the close.
        let signum = unsafe { signal_watched(self.raw()) };
        // The close callback: that of the handle's type, or, with extras to drop,
        // the general one (none can be added from now on: see `on_close`).
        let on_close = if self.has(HAS_EXTRAS) {
            on_close_extras
        } else {
            self.h().vtable.on_close
        };
        // The handle is initialised and not yet closing; the allocation stays until
        // its close callback runs. A signal handle's close stops its watch, which
        // may install a one-shot handler again, and the close of a loop's last
        // process handle stops libuv's `SIGCHLD` watch: under the lock on signal
        // actions (see `hooks::signal_call`), which also keeps them out of
        // libuv's signal code once the process is exiting (`contracts::at_exit`).
        // SAFETY: the handle is initialised; its type is read.
        let process = unsafe { (*self.raw()).type_ == sys::uv_handle_type_UV_PROCESS };
        let rc = if signum.is_some() || process {
            let Some(_held) = crate::contracts::process_state_lock() else {
                // A thread of libuv's pool, once the process is exiting.
                self.put_off_close_at_exit(process);
                return Ok(());
            };
            close(self.raw(), Some(on_close))
        } else {
            close(self.raw(), Some(on_close))
        };
        if rc < 0 {
            self.h().set_state(State::Open);
            // The handle keeps its descriptor (a refused `uv_tcp_close_reset`).
            #[cfg(unix)]
            self.rehold_socket(held);
            return Err(Error::from_raw(rc, op));
        }
        if self.has(HAS_EXTRAS) {
            // libuv closed the descriptor (or, for a poll handle, stopped watching
            // it): it shares nothing with the standard descriptors from now on.
            self.with_extras(|e| {
                e.std_shares.release();
                #[cfg(unix)]
                e.child_socket.release();
            });
        }
        #[cfg(unix)]
        if let Some(signum) = signum {
            crate::contracts::restore_signal_disposition(signum);
        }
        Ok(())
    }

    /// The close of a watching signal handle or of a process handle on a thread
    /// of libuv's pool (a job), once the process is exiting: libuv's close would
    /// take its signal lock, which its destructor closes, and the job cannot wait
    /// for the crate's lock (held for good then: `contracts::process_state_lock`)
    /// without keeping the process from ending. The handle stays in libuv for
    /// good (its memory too): it calls nothing of the crate from now on (libuv's
    /// callback of the handle is one that does nothing), and it no longer keeps
    /// its loop running. Its close callback never runs (dropped with the loop's
    /// teardown, which cannot close the loop then, and leaks it).
    #[cold]
    #[inline(never)]
    fn put_off_close_at_exit(&self, process: bool) {
        unsafe extern "C" fn ignore_signal(_: *mut sys::uv_signal_t, _: std::ffi::c_int) {}
        // SAFETY: the handle is initialised and not closing in libuv: a process
        // handle's struct is a `uv_process_t`, any other one here a signal
        // handle's (`close_now`). Its callback field is read only by its loop's
        // `uv_run`, on this thread; `uv_unref` changes its flags only.
        unsafe {
            if process {
                (*self.raw().cast::<sys::uv_process_t>()).exit_cb = None;
            } else {
                (*self.raw().cast::<sys::uv_signal_t>()).signal_cb = Some(ignore_signal);
            }
            sys::uv_unref(self.raw());
        }
    }

    /// Closes the handle if nobody can reach it and it cannot call user code.
    #[inline]
    fn close_if_unreachable(self) {
        self.close_if_unreachable_by(self.h().vtable.keep_alive);
    }

    /// `close_if_unreachable`, where the handle's lifetime rule `keep` is known
    /// (typed code: `K::KEEP_ALIVE`).
    #[inline(always)]
    fn close_if_unreachable_by(self, keep: KeepAlive) {
        if self.h().refs.get() == 0 && self.is_open() && !self.keeps_alive_by(keep) {
            self.begin_close();
        }
    }

    /// `close_if_unreachable` of a handle of type `K` without user references (out
    /// of line: the callers' common case has references left, or is freeing).
    #[inline(never)]
    fn close_unreferenced_of<K: HandleKind>(self) {
        if self.is_open() && !self.keeps_alive_by(K::KEEP_ALIVE) {
            self.begin_close();
        }
    }

    /// `close_unreferenced_of` after a callback (`run_slot`). For the lifetime rules
    /// that are a test of flags (`Active`, `Never`) the tests are inline (a handle
    /// its callback closed, or one still active, is the common case: nothing to
    /// do) and only the close is out of line; a `Custom` rule is asked out of line.
    #[inline(always)]
    fn close_unreferenced_after_callback<K: HandleKind>(self) {
        match K::KEEP_ALIVE {
            KeepAlive::Active | KeepAlive::Never => {
                if self.is_open() && !self.keeps_alive_by(K::KEEP_ALIVE) {
                    self.begin_close_unreferenced();
                }
            }
            KeepAlive::Custom(_) => self.close_unreferenced_of::<K>(),
        }
    }

    /// `begin_close` of a handle nobody references that its lifetime rule does not
    /// keep open (out of line: `close_unreferenced_after_callback` is inlined).
    #[inline(never)]
    fn begin_close_unreferenced(self) {
        self.begin_close();
    }

    /// Drops one reference; closes or frees as the lifetime rule says.
    ///
    /// # Safety
    /// The caller must own one of the handle's references.
    #[inline(always)]
    unsafe fn release(self) {
        let h = self.h();
        let refs = h.refs.get() - 1;
        h.refs.set(refs);
        if refs > 0 {
            return;
        }
        // SAFETY: the caller's reference was the last one.
        unsafe { self.release_last() }
    }

    /// What dropping the last reference does (out of line: `release` is inlined).
    ///
    /// # Safety
    /// The caller dropped the handle's last user reference.
    #[inline(never)]
    unsafe fn release_last(self) {
        let h = self.h();
        if self.in_libuv() {
            self.close_if_unreachable();
        } else {
            // SAFETY: no user reference and no libuv reference is left.
            unsafe { (h.vtable.free)(self.0.as_ptr()) };
        }
    }

    /// `release_last` of a handle of type `K` (the drop of a `Typed<K>`), with its
    /// lifetime rule and its freeing known: the test is inlined at the drop, and
    /// each branch is one out-of-line call (so that neither pays for the other's
    /// registers).
    ///
    /// # Safety
    /// As `release_last`; the allocation is a HandleBox<K>.
    #[inline(always)]
    unsafe fn release_last_of<K: HandleKind>(self) {
        if self.in_libuv() {
            self.close_unreferenced_of::<K>();
        } else {
            // SAFETY: no user reference and no libuv reference is left.
            unsafe { free_box_out_of_line::<K>(self.0.as_ptr()) };
        }
    }
}

use crate::libuv_flags::UV_HANDLE_ACTIVE;

/// `uv_is_active`, read inline: the test libuv's function makes
/// (`(h->flags & UV_HANDLE_ACTIVE) != 0`), without the call into the library (it is
/// asked after the callbacks of every handle without user references). Debug builds
/// check it against `uv_is_active`.
///
/// # Safety
/// `raw` must be an initialised handle (not yet closed).
#[inline(always)]
unsafe fn is_active_raw(raw: *mut sys::uv_handle_t) -> bool {
    // SAFETY: per the contract; only the flags are read.
    let active = unsafe { (*raw).flags } & UV_HANDLE_ACTIVE != 0;
    // SAFETY: as above.
    debug_assert_eq!(active, unsafe { sys::uv_is_active(raw) } != 0);
    active
}

/// Keeps `value` with the handle until its close callback has run (generated code:
/// the owner of a descriptor libuv watches). On a handle that is not open, the value
/// is dropped at once.
///
/// With `fd`, the handle also claims that descriptor on its loop: libuv's epoll
/// bookkeeping aborts when two handles of one loop watch one descriptor number and
/// one of them goes away, so a second claim is refused (`Err`, the value handed
/// back) until the first handle is closed. A handle claims one descriptor: a claim
/// of another by a handle that holds one is refused too (the handle gives back
/// only the one it holds when it closes).
pub fn keep_with(
    handle: &Handle,
    fd: Option<crate::RawFd>,
    value: Box<dyn Any>,
) -> std::result::Result<(), Box<dyn Any>> {
    let h = handle.hdr();
    if !(h.is_open() && h.in_libuv()) {
        return Err(value);
    }
    if let Some(fd) = fd {
        if h.has(HAS_EXTRAS) {
            let mut holds = None;
            h.with_extras(|e| holds = e.claimed);
            if holds.is_some() {
                return Err(value);
            }
        }
        if !h.shared().claim_fd(fd) {
            return Err(value);
        }
    }
    h.with_extras(|e| {
        e.kept.push(value);
        e.claimed = e.claimed.or(fd);
    });
    Ok(())
}

/// The signal a signal handle watches (closing it makes libuv reset that signal's
/// action; see `contracts::restore_signal_disposition`). A one-shot watcher of an
/// ignored signal is either refused by `Signal::start_oneshot` (`SIGCHLD`) or
/// behind the runtime's lasting watch of it (SIGPIPE), so the stop libuv makes
/// after its delivery changes no action and deliveries need no such step.
///
/// # Safety
/// `raw` must be an initialised handle.
unsafe fn signal_watched(raw: *mut sys::uv_handle_t) -> Option<i32> {
    // SAFETY: per the contract; a signal handle's struct is a uv_signal_t.
    unsafe {
        ((*raw).type_ == sys::uv_handle_type_UV_SIGNAL)
            .then(|| (*raw.cast::<sys::uv_signal_t>()).signum)
            .filter(|&s| s > 0)
    }
}

/// Closes a handle whose close a forked child put off (`Hdr::close_deferred`),
/// now that `after_fork` re-created its loop's kernel state.
///
/// # Safety
/// `h` must be a handle `close_deferred` put off, still in libuv, on a loop
/// that was just re-created (not running).
pub(crate) unsafe fn close_put_off(h: NonNull<sys::uv_handle_t>) {
    // SAFETY: per the contract the handle is initialised and in libuv, its state
    // `Closing` with libuv not yet closing it; the allocation stays until its close
    // callback runs.
    let _ = Hdr(h).close_now("uv_close", |raw, cb| unsafe {
        sys::uv_close(raw, cb);
        0
    });
}

/// What the abandonment of a loop's handles leaves to do once the walk over them
/// is over ([`Abandoned::finish`]): user code runs only then, when no handle can
/// be freed under libuv's walk (a handle abandoned is freed by its last
/// reference, and the walk relinks each handle it visited).
#[derive(Default)]
pub(crate) struct Abandoned {
    /// The requests in flight on the handles, to complete.
    #[cfg(unix)]
    orphans: Vec<crate::request::Orphan>,
    /// The close callbacks that will never run (with their slab) and the
    /// values kept with the handles, to drop.
    left: Vec<(Option<TaggedClose>, Option<Extras>, NonNull<Slab>)>,
    /// The handles (a reference each), whose callbacks are to drop: none will
    /// be called again, and what a callback holds (a future's or a stream's
    /// share of its state) tells its waiting task so as it goes, as on a close.
    handles: Vec<Handle>,
}

impl Abandoned {
    /// Completes the requests in flight (as a close of their handles would: see
    /// `request::take_orphans`), then drops the close callbacks and the values
    /// kept with the handles (after: a write's completion finds its stream's
    /// write tracker, which the handle keeps), each under `shared`'s guard.
    pub(crate) fn finish(self, shared: &crate::loop_::LoopShared) {
        #[cfg(unix)]
        for o in self.orphans {
            // SAFETY: taken by `take_orphans` from a handle of this loop, which
            // will never run again, and completed once. (The trampoline guards
            // the callback.)
            unsafe { o.complete() };
        }
        for (cb, extras, slab) in self.left {
            if let Some(cb) = cb {
                // The close callback will never run: drop it.
                // SAFETY: `data` held a close callback made with this loop's slab.
                shared.guard(|| unsafe { cb.run(slab, std::ptr::null_mut()) });
            }
            if let Some(e) = extras {
                shared.guard(move || drop(e));
            }
        }
        for h in self.handles {
            let hp = h.hdr();
            // SAFETY: `h` keeps the allocation, of the type its vtable is of,
            // alive; the handle is closed for good (`abandon`), so no callback
            // of its slots runs again, nor can one be stored (every way to store
            // one needs an open handle).
            shared.guard(|| unsafe { (hp.h().vtable.clear)(hp.0.as_ptr()) });
            // The last reference frees the allocation (out of libuv now);
            // callbacks a panic above left in the slots are dropped with it.
            shared.guard(move || drop(h));
        }
    }
}

/// Marks a handle that libuv will never close (its loop could not be closed, or
/// a forked child abandons it) as closed, so that no operation reaches the
/// abandoned loop, and takes its requests in flight, its close callback, the
/// values kept with it and a reference to it (for its callbacks) into `out`, for
/// [`Abandoned::finish`]. Its memory goes back to the slab, which is leaked with
/// the loop, with its last reference.
///
/// # Safety
/// `raw` must be a handle made by this library, of a loop that will never run
/// again and on which no libuv function is called again.
pub(crate) unsafe fn abandon(raw: *mut sys::uv_handle_t, out: &mut Abandoned) {
    // SAFETY: per the contract.
    let h = unsafe { Hdr::from_raw(raw) };
    if !h.in_libuv() {
        return;
    }
    // SAFETY: per the contract (nothing else completes the requests; each was
    // started by `request::submit`, the only way the library starts one).
    #[cfg(unix)]
    unsafe {
        crate::request::take_orphans(raw, &mut out.orphans)
    };
    // A signal handle that watches stays in libuv's process-wide table of
    // watched signals, whose delivery writes to its loop's signal pipe (in a
    // forked child, the parent's) and which a later watch of the signal reads
    // (beside the handle's memory, freed with its last reference): its watch is
    // stopped, as its close would. The one libuv call of an abandonment: it
    // changes the process's own signal table and actions only, neither the
    // loop's polling nor its pipe. (A closing handle was stopped by its close.)
    // SAFETY: per the contract, an initialised handle of this library;
    // `signal_watched` reads its type and signal, `uv_is_closing` its flags; a
    // signal handle's struct is a `uv_signal_t`, stopped here only when libuv is
    // not closing it.
    #[cfg(unix)]
    unsafe {
        if signal_watched(raw).is_some() && sys::uv_is_closing(raw) == 0 {
            crate::hooks::stop_signal(raw.cast());
        }
    }
    let shared = h.shared();
    let slab = shared.slab();
    let (cb, extras) = h.take_data(slab);
    h.inc_ref();
    out.handles.push(Handle {
        ptr: h.0,
        _not_send: PhantomData,
    });
    h.h().set_state(State::Closed);
    // libuv will never call back: the last user reference may free the memory (into
    // the slab, which is leaked with the loop).
    h.set(OUT_OF_LIBUV, true);
    if cb.is_some() || extras.is_some() {
        out.left.push((cb, extras, slab));
    }
}

/// Whether a handle seen by `uv_walk` is one of the library's own.
///
/// # Safety
/// `raw` must be a handle made by this library, not yet freed.
pub(crate) unsafe fn is_internal_raw(raw: *mut sys::uv_handle_t) -> bool {
    // SAFETY: per the contract.
    unsafe { Hdr::from_raw(raw) }.has(INTERNAL)
}

/// The close callback of a handle of type `K` (the vtable's `on_close`).
///
/// # Safety
/// Called by libuv, once, for a handle made by [`Typed::new`] for `K`.
unsafe extern "C" fn on_close<K: HandleKind>(raw: *mut sys::uv_handle_t) {
    // SAFETY: libuv hands back a handle struct of ours, whose allocation lives
    // until OUT_OF_LIBUV is set below.
    let hp = unsafe { Hdr::from_raw(raw) };
    // A handle that had extras when `uv_close` was called got `on_close_extras`
    // instead (see `begin_close_via`), and none can be added once closing started:
    // every way to add them (`keep_with`) needs an open handle.
    // (HAS_SENDER is gone too: closing started by shutting the sender cell.)
    debug_assert!(!hp.has(HAS_EXTRAS | HAS_SENDER));
    let header = hp.h();
    header.set_state(State::Closed);
    // From now on `data` names the slab the memory goes back to (the loop may be
    // gone when the last reference is dropped): it does already, but for a handle
    // closed with a close callback, which `data` holds instead until now.
    // SAFETY: without extras, `data` holds the tagged close callback or the slab.
    let word = unsafe { (*hp.raw()).data };
    let cb = close_in(word);
    let slab = match cb {
        // SAFETY: an untagged `data` is the slab (not null).
        None => unsafe { NonNull::new_unchecked(word.cast::<Slab>()) },
        Some(_) => {
            let slab = hp.shared().slab();
            // SAFETY: the close callback was taken out of `data` above.
            unsafe { (*hp.raw()).data = slab.as_ptr().cast() };
            slab
        }
    };
    // One guard for the close callback and the emptying of the slots: the
    // allocation stays while they run (still in libuv, so a user reference
    // dropped meanwhile does not free it). After a panic, what is left runs out of
    // line; the loop's state is looked up again only there.
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Some(cb) = cb {
            // SAFETY: `cb` was the close callback, made with this loop's slab; it
            // was taken out of `data`, so it runs once; the handle is in its close
            // callback.
            unsafe { cb.run(slab, raw) };
        }
        // SAFETY: the allocation is a HandleBox<K>.
        unsafe { clear_slots::<K>(raw) };
    }));
    if let Err(payload) = done {
        // SAFETY: the handle is in its close callback; the allocation is a
        // HandleBox<K>.
        unsafe { close_panicked(hp, payload, clear_slots::<K>) };
    }
    hp.set(OUT_OF_LIBUV, true);
    // While it was in libuv, a last user reference dropped by the callbacks above
    // could not free the allocation (`release` only closes a handle in libuv, and
    // this one is closed): free it now if that happened.
    if header.refs.get() == 0 {
        // SAFETY: no user reference and no libuv reference is left.
        unsafe { free_box::<K>(raw) };
    }
}

/// `free_box`, out of line (for the drop of a last reference).
///
/// # Safety
/// As `free_box`.
#[inline(never)]
unsafe fn free_box_out_of_line<K: HandleKind>(h: *mut sys::uv_handle_t) {
    // SAFETY: per the contract, a live HandleBox<K>; only the slots are borrowed,
    // for the test (the reference ends before the memory is freed).
    let empty = unsafe { &*std::ptr::addr_of!((*(h as *const HandleBox<K>)).slots) }.is_empty();
    if empty {
        // The common case (the close callback emptied the slots): dropping them
        // runs no code, so the memory goes back at once, inlined here (no jump to
        // `free_memory`, which would save and restore registers of its own for
        // what `free_box`'s drop of the slots needs kept). As in `free_box`, the
        // libuv struct needs no drop.
        const { assert!(!std::mem::needs_drop::<K::Raw>()) };
        // SAFETY: per the contract; the slots hold nothing to drop.
        return unsafe { free_memory_inline::<K>(h) };
    }
    // SAFETY: per the contract.
    unsafe { free_box_with_slots::<K>(h) }
}

/// `free_box` of a handle whose slots hold something (out of line: the common
/// path keeps no registers for the drop's call).
///
/// # Safety
/// As `free_box`.
#[cold]
#[inline(never)]
unsafe fn free_box_with_slots<K: HandleKind>(h: *mut sys::uv_handle_t) {
    // SAFETY: per the contract.
    unsafe { free_box::<K>(h) }
}

/// Runs the close callback `cb` (if any) and empties the slots (`clear`), under
/// the loop's panic guard. The allocation stays while it runs: OUT_OF_LIBUV is not
/// set, so a user reference dropped meanwhile does not free it.
///
/// # Safety
/// `hp` must be a handle in its close callback, `cb` its close callback taken out of
/// `data` (made with `slab`), `clear` the emptying of its slots.
#[inline(always)]
unsafe fn run_close(
    hp: Hdr,
    shared: &LoopShared,
    slab: NonNull<Slab>,
    mut cb: Option<TaggedClose>,
    clear: impl Fn(),
) {
    // One guard for the common case; the callback is taken out before it runs, so
    // that after a panic only the slots are left to empty.
    let mut cleared = false;
    let done = shared.guard(|| {
        if let Some(cb) = cb.take() {
            // SAFETY: per the contract; taken out of `cb`, it runs once.
            unsafe { cb.run(slab, hp.raw()) };
        }
        clear();
        cleared = true;
    });
    if done.is_none() && !cleared {
        // Slots are emptied one by one, each taken out before it is dropped: a
        // callback whose Drop panics stops one `clear`, and the next round goes on
        // from the slot after it, so nothing is left to drop outside the guard.
        while shared.guard(&clear).is_none() {}
    }
}

/// What is left of a close callback's work after a panic in it (`payload`): the
/// panic goes to the loop's panic rule, then the slots are emptied (`clear`), each
/// round under the guard.
///
/// # Safety
/// `hp` must be a handle in its close callback (still in libuv), `clear` the
/// emptying of its slots.
#[cold]
#[inline(never)]
unsafe fn close_panicked(
    hp: Hdr,
    payload: crate::loop_::PanicPayload,
    clear: unsafe fn(*mut sys::uv_handle_t),
) {
    let shared = hp.shared();
    shared.panicked(payload);
    // Slots are emptied one by one, each taken out before it is dropped: a callback
    // whose Drop panics stops one `clear`, and the next round goes on from the slot
    // after it, so nothing is left to drop outside the guard.
    // SAFETY: per the contract.
    while shared.guard(|| unsafe { clear(hp.raw()) }).is_none() {}
}

/// The close callback of a handle that had extras when it started closing: they
/// are dropped after the close callback, and the descriptor it claimed is given
/// back to the loop.
///
/// # Safety
/// Called by libuv, once, for a handle made by [`Typed::new`].
unsafe extern "C" fn on_close_extras(raw: *mut sys::uv_handle_t) {
    // SAFETY: libuv hands back a handle struct of ours, whose allocation lives
    // until OUT_OF_LIBUV is set below.
    let hp = unsafe { Hdr::from_raw(raw) };
    let header = hp.h();
    header.set_state(State::Closed);
    let shared = hp.shared();
    let slab = shared.slab();
    let (cb, extras) = hp.take_data(slab);
    let kept = extras.map(|e| {
        if let Some(fd) = e.claimed {
            shared.unclaim_fd(fd);
        }
        e.kept
    });
    let vtable = header.vtable;
    // SAFETY: per the contract; the vtable belongs to this allocation's type.
    unsafe { run_close(hp, shared, slab, cb, || (vtable.clear)(hp.0.as_ptr())) };
    if let Some(kept) = kept {
        shared.guard(move || drop(kept));
    }
    hp.set(OUT_OF_LIBUV, true);
    if header.refs.get() == 0 {
        // SAFETY: no user reference and no libuv reference is left.
        unsafe { (header.vtable.free)(hp.0.as_ptr()) };
    }
}

/// Writes a new handle's header at `h`: one reference, `flags`, `vtable`. The
/// count and the flags (with the padding after them) are one 8-byte store.
///
/// # Safety
/// `h` must be valid for writes of a `Header` and aligned for it (a handle
/// allocation's header place, `HEADER_OFFSET`; the word is written unaligned,
/// since a `Header` may be less aligned than a `u64`).
#[inline(always)]
unsafe fn write_header(h: *mut Header, flags: u16, vtable: &'static VTable) {
    const {
        assert!(std::mem::offset_of!(Header, refs) == 0);
        assert!(std::mem::offset_of!(Header, flags) == 4);
        assert!(std::mem::offset_of!(Header, vtable) == 8);
    };
    let r = 1u32.to_ne_bytes();
    let f = flags.to_ne_bytes();
    let word = u64::from_ne_bytes([r[0], r[1], r[2], r[3], f[0], f[1], 0, 0]);
    // SAFETY: per the contract; the word covers `refs` (1, in the platform's
    // byte order), `flags` and the padding before `vtable` (zeroes), which are
    // plain integers (`Cell<u32>`, `Cell<u16>`): the header reads as if written by
    // field.
    unsafe {
        h.cast::<u64>().write_unaligned(word);
        std::ptr::addr_of_mut!((*h).vtable).write(vtable);
    }
}

impl<K: HandleKind> Typed<K> {
    /// Allocates a handle, fills its slots and runs the libuv init function.
    ///
    /// `init` gets the loop and the handle's struct.
    ///
    /// # Safety
    /// `init` must either initialise the struct as a handle of type `K` on the loop
    /// it is given (through the init function of `K`'s libuv type) and return a
    /// non-negative value, or return a negative status with the struct left out of
    /// the loop (libuv's init functions do one or the other). It must not unwind
    /// once the libuv init succeeded.
    #[inline(always)]
    pub unsafe fn new(
        loop_: &LoopHandle,
        slots: K::Slots,
        op: &'static str,
        init: impl FnOnce(*mut sys::uv_loop_t, *mut K::Raw) -> i32,
    ) -> Result<Self> {
        // SAFETY: per the contract.
        unsafe { Self::new_inner(loop_, slots, op, false, init) }
    }

    /// [`Typed::new`], for the library's own handles too.
    ///
    /// # Safety
    /// As [`Typed::new`].
    #[inline(always)]
    pub(crate) unsafe fn new_inner(
        loop_: &LoopHandle,
        slots: K::Slots,
        op: &'static str,
        internal: bool,
        init: impl FnOnce(*mut sys::uv_loop_t, *mut K::Raw) -> i32,
    ) -> Result<Self> {
        // SAFETY: per the contract.
        unsafe { Self::new_core(loop_, slots, op, internal, false, init) }.map(|(t, _)| t)
    }

    /// [`Typed::new`], also handing back where the allocation was placed (the
    /// generated `<constructor>_placed`, spec `placed = true`). An `Async` whose
    /// cell makes senders (`Place::sender_generation` is `Some`) is made marked as
    /// having senders (its close shuts its cell), for the sender its caller makes
    /// of that generation (`Async::with_sender`).
    ///
    /// # Safety
    /// As [`Typed::new`].
    #[inline(always)]
    pub(crate) unsafe fn new_placed(
        loop_: &LoopHandle,
        slots: K::Slots,
        op: &'static str,
        init: impl FnOnce(*mut sys::uv_loop_t, *mut K::Raw) -> i32,
    ) -> Result<(Self, Place)> {
        // SAFETY: per the contract.
        unsafe { Self::new_core(loop_, slots, op, false, true, init) }
    }

    /// The body of the constructors: [`Typed::new_inner`], with the place; with
    /// `senders`, an `Async` whose cell makes senders is marked as having them
    /// (see [`Typed::new_placed`]).
    ///
    /// # Safety
    /// As [`Typed::new`].
    #[inline(always)]
    unsafe fn new_core(
        loop_: &LoopHandle,
        slots: K::Slots,
        op: &'static str,
        internal: bool,
        senders: bool,
        init: impl FnOnce(*mut sys::uv_loop_t, *mut K::Raw) -> i32,
    ) -> Result<(Self, Place)> {
        let shared = loop_.shared();
        let uv_loop = shared.raw_for_new().ok_or_else(|| Error::closed_loop(op))?;
        // A poll handle's init probes its descriptor in the loop's epoll instance
        // (an add, then a delete even when the add found it there): in a forked
        // child that did not re-create the loop, the parent's instance, whose
        // watch of that descriptor the delete would take away. (A comparison of
        // constants: no code for the other types.)
        if TypeId::of::<K::Raw>() == TypeId::of::<sys::uv_poll_t>() {
            shared.check_process(op)?;
        }
        let slab = shared.slab();
        let layout = std::alloc::Layout::new::<HandleBox<K>>();
        let asynch = is_async::<K>();
        // SAFETY: the loop's slab lives while the loop's shared state does.
        let s = unsafe { slab.as_ref() };
        let (p, place) = if asynch {
            // A cell of the loop's sender table (ASYNC_CELL is this layout).
            let Some((p, generation)) = s.alloc_async() else {
                return Err(no_memory(op));
            };
            (p, Place { generation })
        } else {
            let generation = crate::handles::async_::SenderGen::NONE;
            (s.alloc(layout), Place { generation })
        };
        let p = p.cast::<HandleBox<K>>().as_ptr();
        // SAFETY: `p` is fresh memory for a HandleBox<K>; every field is written in
        // place before use (no copy of the large struct), and the libuv struct never
        // moves afterwards; `init` keeps its contract.
        unsafe {
            // The libuv struct is left as it is: its init function initialises it
            // (as C callers' `malloc`ed ones), except `data`, which is the
            // library's (the slab, written after init), and the header, written
            // first, in the part of it libuv leaves alone (HEADER_OFFSET): a walk
            // of the loop during `init` finds a handle that is not in libuv yet.
            let raw = std::ptr::addr_of_mut!((*p).raw);
            write_header(
                raw.byte_add(HEADER_OFFSET).cast::<Header>(),
                if internal { INTERNAL } else { 0 } | OUT_OF_LIBUV,
                &VTableOf::<K>::VTABLE,
            );
            std::ptr::addr_of_mut!((*p).slots).write(slots);
            let rc = init(uv_loop, raw);
            if rc < 0 {
                // Only the slots have something to drop (see `free_box`); the
                // libuv struct is not borrowed (an `Async`'s state word in it may
                // be read by stale senders meanwhile).
                std::ptr::drop_in_place(std::ptr::addr_of_mut!((*p).slots));
                if asynch {
                    Slab::free_async(slab, NonNull::new_unchecked(p.cast()));
                } else {
                    Slab::free(slab, NonNull::new_unchecked(p.cast()), layout);
                }
                return Err(Error::from_raw(rc, op));
            }
            let raw = raw.cast::<sys::uv_handle_t>();
            // `data` holds the slab (see the module's documentation).
            (*raw).data = slab.as_ptr().cast();
            let h = Hdr(NonNull::new_unchecked(raw));
            // (Comparisons of constants: no code.)
            let raw_is = |t: TypeId| TypeId::of::<K::Raw>() == t;
            // A process handle's close may stop the loop's `SIGCHLD` watch (its
            // last one does), in libuv's signal code: the general path too.
            let signal = raw_is(TypeId::of::<sys::uv_signal_t>())
                || raw_is(TypeId::of::<sys::uv_process_t>());
            let shares = raw_is(TypeId::of::<sys::uv_tcp_t>())
                || raw_is(TypeId::of::<sys::uv_pipe_t>())
                || raw_is(TypeId::of::<sys::uv_tty_t>())
                || raw_is(TypeId::of::<sys::uv_udp_t>())
                || raw_is(TypeId::of::<sys::uv_poll_t>())
                || raw_is(TypeId::of::<sys::uv_fs_event_t>());
            // The flags as written above, and now in libuv (a store of a known
            // value: later checks of a new handle fold away).
            let flags = if internal { INTERNAL } else { 0 }
                | if signal { SIGNAL } else { 0 }
                | if shares { SHARES_KERNEL } else { 0 };
            if asynch && senders && place.generation.get().is_some() {
                // An `Async` for which the caller makes a sender: its close shuts
                // its cell from now on (see `new_placed`).
                h.h().flags.set(flags | HAS_SENDER);
            } else {
                h.h().flags.set(flags);
            }
        }
        let t = Typed {
            // SAFETY: `p` is non-null (from the slab).
            ptr: unsafe { NonNull::new_unchecked(p.cast()) },
            _kind: PhantomData,
        };
        Ok((t, place))
    }

    /// The libuv struct, if the handle is open; `ClosedHandle` (naming `op`) otherwise.
    #[inline]
    pub fn raw(&self, op: &'static str) -> Result<*mut K::Raw> {
        self.raw_open().ok_or_else(|| Error::closed_handle(op))
    }

    /// The libuv struct, if the handle is open.
    #[inline]
    pub fn raw_open(&self) -> Option<*mut K::Raw> {
        let h = Hdr(self.ptr);
        h.is_open().then(|| h.raw().cast())
    }

    /// Whether the handle's marked callback (`marks_delivery = true` in its spec)
    /// is running: called from that callback, or from code it calls. Always
    /// `false` for a handle none of whose callbacks is marked. (The runtime marks
    /// one hand-written callback itself: a `Udp`'s receive callback for a
    /// datagram of a `RECVMMSG` batch.)
    ///
    /// For the hand-written hooks of a spec's handle type, next to its
    /// `uv::handle!` expansion (`typed()`, of `uv::runtime::HandleKind`, is the
    /// `Typed`); with
    /// `marks_delivery = true` on `on_pace` and `before = "refuse_inside_pace"` on
    /// a method (tests/spec/pacer.toml):
    ///
    /// ```ignore
    /// impl Pacer {
    ///     fn refuse_inside_pace(&self) -> uv::Result<()> {
    ///         if self.typed().is_delivering() {
    ///             return Err(uv::Error::new(uv::StatusCode::EBUSY, "uv_idle_start"));
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// ```
    #[inline]
    pub fn is_delivering(&self) -> bool {
        let h = Hdr(self.ptr);
        h.in_libuv() && h.shared().delivering.get() == h.raw()
    }

    /// The loop's shared state, while the handle is open.
    pub(crate) fn shared_ptr(&self, op: &'static str) -> Result<*const LoopShared> {
        self.shared_open().ok_or_else(|| Error::closed_handle(op))
    }

    /// The loop's shared state, if the handle is open and in libuv (one test of
    /// the flags).
    #[inline(always)]
    pub(crate) fn shared_open(&self) -> Option<*const LoopShared> {
        let h = Hdr(self.ptr);
        (h.is_open() && h.in_libuv()).then(|| h.shared() as *const LoopShared)
    }

    /// The allocation's pointer (that of its libuv struct), with the allocation's
    /// provenance.
    #[inline(always)]
    pub(crate) fn ptr(&self) -> NonNull<sys::uv_handle_t> {
        self.ptr
    }

    /// The loop's shared state of a handle libuv holds, without checks.
    pub(crate) fn shared_raw(&self) -> *const LoopShared {
        Hdr(self.ptr).shared() as *const LoopShared
    }

    /// The loop's shared state for a request of this handle that completes: the
    /// handle is in libuv, or its loop is abandoned and the teardown completes
    /// the handle's requests (`Abandoned::finish`, after the handle left libuv,
    /// before the loop's `data` is cleared).
    ///
    /// # Safety
    /// Called from the completion of a request of this handle.
    pub(crate) unsafe fn shared_for_request(&self) -> *const LoopShared {
        // SAFETY: the caller's contract.
        unsafe { shared_for_request(self.ptr.as_ptr()) }
    }

    /// The callback slots.
    #[inline]
    pub fn slots(&self) -> &K::Slots {
        // SAFETY: a Typed<K> always holds the allocation's own pointer to a live
        // HandleBox<K>; only the slots are borrowed (the libuv struct, which holds
        // the header, is only reached through raw pointers).
        unsafe { &*std::ptr::addr_of!((*(self.ptr.as_ptr() as *const HandleBox<K>)).slots) }
    }

    /// The type-erased view.
    #[inline]
    pub fn handle(&self) -> &Handle {
        // SAFETY: both types are a transparent NonNull<uv_handle_t>.
        unsafe { &*(self as *const Typed<K> as *const Handle) }
    }

    /// Closes the handle through a variant of `uv_close` (hand-written parts of a
    /// type: `uv_tcp_close_reset`); `close` gets the handle struct and the close
    /// callback to pass on.
    pub(crate) fn close_via(
        &self,
        op: &'static str,
        close: impl FnOnce(*mut K::Raw, sys::uv_close_cb) -> i32,
    ) -> Result<()> {
        if !Hdr(self.ptr).is_open() {
            return Err(Error::closed_handle(op));
        }
        Hdr(self.ptr).begin_close_via(op, |raw, cb| close(raw.cast(), cb))
    }

    /// Marks an open `Async` as having senders: its close shuts its sender cell.
    #[inline(always)]
    pub(crate) fn mark_senders(&self) {
        let h = Hdr(self.ptr);
        if is_async::<K>() && h.is_open() && h.in_libuv() {
            h.set(HAS_SENDER, true);
        }
    }
}

impl<K: HandleKind> Clone for Typed<K> {
    fn clone(&self) -> Self {
        Hdr(self.ptr).inc_ref();
        Typed {
            ptr: self.ptr,
            _kind: PhantomData,
        }
    }
}

impl<K: HandleKind> Drop for Typed<K> {
    #[inline]
    fn drop(&mut self) {
        let h = Hdr(self.ptr);
        let header = h.h();
        let refs = header.refs.get() - 1;
        header.refs.set(refs);
        if refs == 0 {
            // SAFETY: this value owned the last reference, of a HandleBox<K>.
            unsafe { h.release_last_of::<K>() }
        }
    }
}

/// Runs a handle callback: takes the user's callback out of its slot, calls it with
/// a borrowed handle under the loop's panic guard, puts it back unless it was
/// replaced, then applies the lifetime rule.
///
/// # Safety
/// `raw` must be a handle initialised by [`Typed::new`] for `K`.
#[inline]
pub unsafe fn dispatch<K: HandleKind, F: ?Sized + 'static>(
    raw: *mut K::Raw,
    slot: impl Fn(&K::Slots) -> &Slot<F> + Copy,
    call: impl FnOnce(&mut F, &K),
) {
    // SAFETY: per the contract.
    unsafe {
        run_slot::<K, _, _>(
            raw,
            |h| slot(h.typed().slots()),
            Slot::take_for_call,
            Slot::put_back,
            |cb, h| call(cb, h),
        )
    }
}

/// Runs `deliver` (the generated call of a handle callback, such as a
/// [`dispatch`]) with the handle marked as being delivered: while it runs,
/// [`Typed::is_delivering`] of the handle answers `true`, from its callback and
/// from anything the callback calls. For the callbacks a spec marks
/// (`marks_delivery = true`): a hook can then tell that a method was called from
/// inside that callback without relying on libuv's own bookkeeping. The mark is
/// the loop's, saved before and put back after (on unwinding too), so a delivery
/// nested in another one leaves the outer one marked once it returns.
///
/// # Safety
/// As [`dispatch`].
#[inline]
pub unsafe fn marking_delivery<K: HandleKind>(raw: *mut K::Raw, deliver: impl FnOnce()) {
    /// Puts the loop's earlier mark back when dropped.
    struct Restore<'a>(&'a Cell<*mut sys::uv_handle_t>, *mut sys::uv_handle_t);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            self.0.set(self.1);
        }
    }
    // SAFETY: per the contract, `raw` is a handle struct of ours (not null), in
    // libuv while libuv delivers to it.
    let hp = unsafe { Hdr::from_raw(raw.cast()) };
    // The loop's shared state outlives the callback: the loop is running, and its
    // owner (borrowed by `run`) keeps it alive; the handle's allocation may go
    // during the callback (closed and unreferenced), so it is not read after.
    let mark = &hp.shared().delivering;
    let _restore = Restore(mark, mark.replace(hp.raw()));
    deliver();
}

/// [`dispatch`] for a callback that takes only its handle, kept in a
/// [`HandleSlot`](crate::callback::HandleSlot) (called with one indirect call).
///
/// # Safety
/// As [`dispatch`].
#[inline]
pub unsafe fn dispatch_handle<K: HandleKind>(
    raw: *mut K::Raw,
    slot: impl Fn(&K::Slots) -> &crate::callback::HandleSlot<K> + Copy,
) {
    // SAFETY: per the contract.
    unsafe {
        run_slot::<K, _, _>(
            raw,
            |h| slot(h.typed().slots()),
            crate::callback::HandleSlot::take_for_call,
            crate::callback::HandleSlot::put_back,
            // The callback gets a view of the handle of its own, by value (made
            // like `run_slot`'s, per the contract): nothing is kept in memory for
            // the reference.
            |cb, _| crate::callback::HandleSlot::call_taken(cb, view_of::<K>(raw)),
        )
    }
}

/// [`dispatch`] for a callback kept in a [`CallSlot`](crate::callback::CallSlot),
/// called with one indirect call with the event's parts `args` (its record's
/// function makes the event of them).
///
/// # Safety
/// As [`dispatch`].
#[inline(always)]
pub(crate) unsafe fn dispatch_with<K: HandleKind, F: ?Sized + 'static, A: 'static>(
    raw: *mut K::Raw,
    slot: impl Fn(&K::Slots) -> &crate::callback::CallSlot<K, F, A> + Copy,
    args: &A,
) {
    // SAFETY: per the contract.
    unsafe {
        run_slot::<K, _, _>(
            raw,
            |h| slot(h.typed().slots()),
            crate::callback::CallSlot::take_for_call,
            crate::callback::CallSlot::put_back,
            // The callback gets a view of the handle of its own, by value (as in
            // `dispatch_handle`).
            |cb, _| crate::callback::CallSlot::call_taken(cb, view_of::<K>(raw), args),
        )
    }
}

/// [`dispatch_with`] of a slot whose callback is known to hold a value of type `C`
/// (made by `CallSlot::callback::<C, _, _>`), called through `H`: the call is
/// direct, with the value's code compiled in (see `CallSlot::call_taken_as`).
///
/// # Safety
/// As [`dispatch`]; and the slot holds nothing or a callback whose value is a `C`
/// (while the callback runs the slot is empty, and what it put in the slot
/// meanwhile stays there: only the callback taken out is called); `H` relies on
/// no more about `args` than the caller guarantees.
#[inline(always)]
pub(crate) unsafe fn dispatch_with_as<K, F, A, C, H>(
    raw: *mut K::Raw,
    slot: impl Fn(&K::Slots) -> &crate::callback::CallSlot<K, F, A> + Copy,
    args: &A,
) where
    K: HandleKind,
    F: ?Sized + 'static,
    A: 'static,
    C: 'static,
    H: Fn(&mut C, &K, &A) + Copy + 'static,
{
    // SAFETY: per the contract; the callback taken out is the slot's, whose value
    // is a `C`.
    unsafe {
        run_slot::<K, _, _>(
            raw,
            |h| slot(h.typed().slots()),
            crate::callback::CallSlot::take_for_call,
            crate::callback::CallSlot::put_back,
            |cb, _| crate::callback::CallSlot::call_taken_as::<C, H>(cb, view_of::<K>(raw), args),
        )
    }
}

/// The body of [`dispatch`]: takes the callback `C` out of the slot `S`, calls it
/// with the borrowed handle under the loop's panic guard, puts it back (`put_back`
/// hands it back when the slot was refilled meanwhile), then applies the lifetime
/// rule. Only the call is guarded: taking and putting back run no user code, and
/// a replaced callback is dropped out of line.
///
/// # Safety
/// As [`dispatch`].
#[inline(always)]
unsafe fn run_slot<K: HandleKind, S: ?Sized, C>(
    raw: *mut K::Raw,
    slot: impl Fn(&K) -> &S + Copy,
    take: impl FnOnce(&S) -> Option<C>,
    put_back: impl FnOnce(&S, C) -> Option<C> + Copy,
    call: impl FnOnce(&mut C, &K),
) {
    // SAFETY: libuv hands back a handle struct of ours, alive until the close
    // callback, which cannot run during this one.
    let ptr = unsafe { Hdr::from_raw(raw.cast()) }.0;
    let handle = ManuallyDrop::new(K::from_typed(Typed {
        ptr,
        _kind: PhantomData,
    }));
    let hp = Hdr(ptr);
    let s = slot(&handle);
    if let Some(mut cb) = take(s) {
        // The loop's guard, with the loop's state looked up only after a panic.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(&mut cb, &handle)));
        // The slot lives until the close callback, which cannot have run meanwhile.
        match r {
            Ok(()) => {
                if let Some(old) = put_back(s, cb) {
                    drop_replaced(hp, old, false);
                }
            }
            // The slot is found again there (not kept in a register for this
            // rare path).
            Err(payload) => callback_panicked::<K, S, C>(hp, payload, slot, put_back, cb),
        }
    }
    if hp.h().refs.get() == 0 {
        hp.close_unreferenced_after_callback::<K>();
    }
}

/// A borrowed view of the handle whose libuv struct is `raw`, as a value that must
/// not be dropped (it owns no reference).
///
/// # Safety
/// As [`dispatch`]; the view must not outlive the callback it is made for.
#[inline(always)]
unsafe fn view_of<K: HandleKind>(raw: *mut K::Raw) -> ManuallyDrop<K> {
    // SAFETY: per the contract, `raw` is a handle struct of ours (not null).
    let ptr = unsafe { Hdr::from_raw(raw.cast()) }.0;
    ManuallyDrop::new(K::from_typed(Typed {
        ptr,
        _kind: PhantomData,
    }))
}

/// What follows a panic of a handle callback (`payload`): the callback goes back to
/// its slot (`put_back`, as after a return), then the panic goes to the loop's panic
/// rule.
#[cold]
#[inline(never)]
fn callback_panicked<K: HandleKind, S: ?Sized, C>(
    hp: Hdr,
    payload: crate::loop_::PanicPayload,
    slot: impl Fn(&K) -> &S,
    put_back: impl FnOnce(&S, C) -> Option<C>,
    cb: C,
) {
    // A borrowed handle, as in `run_slot` (the allocation lives until the close
    // callback).
    let handle = ManuallyDrop::new(K::from_typed(Typed {
        ptr: hp.0,
        _kind: PhantomData,
    }));
    if let Some(old) = put_back(slot(&handle), cb) {
        drop_replaced(hp, old, true);
    }
    hp.shared().panicked(payload);
}

/// Drops a callback that replaced itself while it ran (the new one stays), after it
/// returned. Its Drop is user code: a panic of it goes to the loop's panic rule, or,
/// when the callback itself panicked (`unwound`), is dropped (that first panic is
/// the one reported).
#[cold]
#[inline(never)]
fn drop_replaced<C>(hp: Hdr, old: C, unwound: bool) {
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(old)));
    if let Err(p) = dropped {
        if unwound {
            crate::callback::drop_quietly(p);
        } else {
            hp.shared().panicked(p);
        }
    }
}

/// Whether the stream's descriptor is one libuv made non-blocking in this process and
/// nobody was given since (see [`OWN_NONBLOCKING_FD`]).
///
/// # Safety
/// `raw` must be a live handle allocation made by this library.
#[inline(always)]
pub(crate) unsafe fn own_nonblocking_fd(raw: *mut sys::uv_handle_t) -> bool {
    // SAFETY: per the contract.
    unsafe { Hdr::from_raw(raw) }.has(OWN_NONBLOCKING_FD)
}

/// Marks a stream whose open file a child process now shares (given to it as
/// stdio): the child may switch that file to blocking mode at any time (a shell
/// that reads its standard input and finds no data does so), and libuv's reads of
/// a blocking file wait in the loop. Such a stream does not start reading from
/// then on (`contracts::non_blocking`). Kept with the handle's extras, so that
/// only these handles pay for it.
///
/// A socket's mark reaches the handles it enters later in this process (a handle
/// that receives it over an IPC pipe, see [`hold_socket`]): the socket is counted
/// process-wide while a marked handle holding it is open.
pub(crate) fn mark_shared_with_child(handle: &Handle) {
    let h = handle.hdr();
    if h.is_open() && h.in_libuv() {
        #[cfg(unix)]
        let id = handle.fileno().ok().and_then(crate::contracts::socket_id);
        h.with_extras(|e| {
            e.shared_with_child = true;
            #[cfg(unix)]
            if let Some(id) = id {
                e.child_socket.set(id);
            }
        });
    }
}

/// Registers the socket of a stream as held by the library (through
/// `contracts::hold_socket`) until the handle starts closing: a socket that may
/// have other descriptors in this process, for `contracts::sole_descriptor` to
/// tell a descriptor a handle holds (which nothing shuts down for reading) from
/// one the user holds. Called where such a socket enters a handle: `open` of a
/// user's descriptor, a handle an IPC pipe received, a handle sent over one.
/// Nothing for a handle that is closing, has no descriptor, or whose descriptor is
/// no socket.
///
/// With `look_for_copies`, the process's descriptors are listed for copies of the
/// socket that no handle holds (see `contracts::no_unheld_copies`): for a socket
/// that enters the handle from outside. A handle sends its own socket without.
#[cfg(unix)]
pub(crate) fn hold_socket(handle: &Handle, look_for_copies: bool) {
    let h = handle.hdr();
    if !h.is_open() || !h.in_libuv() {
        return;
    }
    // SAFETY: an open handle: a TCP or pipe handle is a stream, and a stream's
    // descriptor is its watcher's, as a UDP handle's is (-1 when it has none);
    // the field is only read.
    let fd = unsafe {
        match handle.handle_type() {
            crate::HandleType::Tcp | crate::HandleType::NamedPipe => {
                (*h.raw().cast::<sys::uv_stream_t>()).io_watcher.fd
            }
            crate::HandleType::Udp => (*h.raw().cast::<sys::uv_udp_t>()).io_watcher.fd,
            _ => return,
        }
    };
    // Under the lock `Process::spawn` holds while it checks the sockets of the
    // streams it gives a child and marks them as the child's: a socket that
    // enters a handle of another thread meanwhile is seen by the check, or finds
    // the mark below.
    let _held = crate::contracts::process_state_lock();
    let key = h.raw() as usize;
    if !crate::contracts::hold_socket(fd, key) {
        return;
    }
    let copies = look_for_copies && crate::contracts::unheld_copies(fd, false);
    // A socket a child process shares (given to it through another handle of this
    // process, which sent it here): the child may make it blocking at any time.
    let child = crate::contracts::socket_id(fd).filter(|&id| crate::contracts::child_shares(id));
    h.with_extras(|e| {
        if let Some(id) = child {
            e.shared_with_child = true;
            e.child_socket.set(id);
        }
        if let Some(old) = e.held_socket.replace(fd) {
            if old != fd {
                crate::contracts::release_socket(old, key);
            }
        }
        if copies {
            e.user_copies = true;
            crate::contracts::note_copied_socket();
        }
    });
}

/// Whether the handle's socket had copies no handle holds (see
/// `contracts::no_unheld_copies`).
///
/// # Safety
/// `raw` must be a live handle allocation made by this library.
#[cfg(unix)]
pub(crate) unsafe fn had_user_copies(raw: *mut sys::uv_handle_t) -> bool {
    // SAFETY: per the contract.
    unsafe { read_extras(raw, |e| e.user_copies) }
}

/// Whether the handle holds a socket registered as the library's (see
/// [`hold_socket`]): one that entered it from outside libuv, and may have other
/// descriptors in this process.
///
/// # Safety
/// `raw` must be a live handle allocation made by this library.
#[cfg(unix)]
pub(crate) unsafe fn holds_registered_socket(raw: *mut sys::uv_handle_t) -> bool {
    // SAFETY: per the contract.
    unsafe { read_extras(raw, |e| e.held_socket.is_some()) }
}

/// The handle's socket has no copy left that no handle holds.
///
/// # Safety
/// As `had_user_copies`.
#[cfg(unix)]
pub(crate) unsafe fn clear_user_copies(raw: *mut sys::uv_handle_t) {
    // SAFETY: per the contract.
    let h = unsafe { Hdr::from_raw(raw) };
    if h.has(HAS_EXTRAS) {
        h.with_extras(|e| e.user_copies = false);
    }
}

/// Records that the handle's descriptor shares its open file with the process's
/// standard descriptors of `bits` (bit `k` for descriptor `k`), counted for them
/// until the handle closes (`contracts::note_std_shares`). Kept with the handle's
/// extras, so that only these handles pay for it.
#[cfg(unix)]
pub(crate) fn mark_std_shares(handle: &Handle, bits: u8) {
    let h = handle.hdr();
    if h.is_open() && h.in_libuv() {
        h.with_extras(|e| e.std_shares.add(bits));
    }
}

/// `f` of the handle's extras; false for a handle without extras.
///
/// # Safety
/// `raw` must be a live handle allocation made by this library.
unsafe fn read_extras(raw: *mut sys::uv_handle_t, f: impl FnOnce(&Extras) -> bool) -> bool {
    // SAFETY: per the contract.
    let h = unsafe { Hdr::from_raw(raw) };
    // SAFETY: HAS_EXTRAS says `data` is an ExtrasRecord of this handle; it is only
    // read while `f` runs.
    h.has(HAS_EXTRAS) && f(unsafe { &(*((*h.raw()).data as *const ExtrasRecord)).extras })
}

/// Whether a child process shares the stream's open file (see
/// [`mark_shared_with_child`]).
///
/// # Safety
/// `raw` must be a live handle allocation made by this library.
pub(crate) unsafe fn shared_with_child(raw: *mut sys::uv_handle_t) -> bool {
    // SAFETY: per the contract.
    unsafe { read_extras(raw, |e| e.shared_with_child) }
}

/// Records (or forgets, with `None`) the loss the IPC pipe's read callback was
/// told of, so that the reads up to the one that takes its message do not tell
/// it again (`stream.rs`, `peek_handles`). Kept with the handle's extras (made
/// only to record), so that it goes with the handle.
///
/// # Safety
/// `raw` must be a live handle allocation made by this library, held by libuv;
/// called from the handle's allocation or read callback (no user code runs).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) unsafe fn set_ipc_loss_told(
    raw: *mut sys::uv_handle_t,
    told: Option<crate::stream::LossId>,
) {
    // SAFETY: per the contract.
    let h = unsafe { Hdr::from_raw(raw) };
    if told.is_some() || h.has(HAS_EXTRAS) {
        h.with_extras(|e| e.ipc_loss_told = told);
    }
}

/// What [`set_ipc_loss_told`] recorded for the IPC pipe.
///
/// # Safety
/// `raw` must be a live handle allocation made by this library.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) unsafe fn ipc_loss_told(raw: *mut sys::uv_handle_t) -> Option<crate::stream::LossId> {
    let mut told = None;
    // SAFETY: per the contract.
    unsafe {
        read_extras(raw, |e| {
            told = e.ipc_loss_told;
            false
        })
    };
    told
}

/// Runs `f` on what the UDP handle keeps of batches cut short
/// (`handles::udp::Kept`), made empty first when the handle has no extras and
/// `make`; `None` (and `f` not run) when it has none and not `make`.
///
/// # Safety
/// `raw` must be a live UDP handle allocation made by this library, held by
/// libuv; `f` runs no user code and does not reach the handle's extras again.
pub(crate) unsafe fn with_udp_kept<R>(
    raw: *mut sys::uv_handle_t,
    make: bool,
    f: impl FnOnce(&mut crate::handles::udp::Kept) -> R,
) -> Option<R> {
    // SAFETY: per the contract.
    let h = unsafe { Hdr::from_raw(raw) };
    if !make && !h.has(HAS_EXTRAS) {
        return None;
    }
    let mut out = None;
    h.with_extras(|e| out = Some(f(&mut e.udp_kept)));
    out
}

/// Marks (or unmarks) the stream's descriptor as one libuv made non-blocking in
/// this process and nobody was given (see [`OWN_NONBLOCKING_FD`]).
///
/// # Safety
/// `raw` must be a live handle allocation made by this library; when marking, its
/// descriptor must be such a socket.
#[inline(always)]
pub(crate) unsafe fn set_own_nonblocking_fd(raw: *mut sys::uv_handle_t, on: bool) {
    // SAFETY: per the contract.
    unsafe { Hdr::from_raw(raw) }.set(OWN_NONBLOCKING_FD, on);
}

/// The slots of a handle of type `K`, from its libuv struct.
///
/// # Safety
/// `raw` must be a handle initialised by [`Typed::new`] for `K`, not yet freed; the
/// reference must not outlive its allocation.
pub(crate) unsafe fn slots_of<'a, K: HandleKind>(raw: *mut K::Raw) -> &'a K::Slots {
    // SAFETY: per the contract, the allocation is a HandleBox<K>.
    unsafe { &(*(Hdr::from_raw(raw.cast()).0.as_ptr() as *const HandleBox<K>)).slots }
}

impl Handle {
    fn hdr(&self) -> Hdr {
        Hdr(self.ptr)
    }

    fn header(&self) -> &Header {
        // SAFETY: as Hdr::h; a Handle always points at a live allocation.
        unsafe { &*self.ptr.as_ptr().byte_add(HEADER_OFFSET).cast::<Header>() }
    }

    fn raw(&self, op: &'static str) -> Result<*mut sys::uv_handle_t> {
        let h = self.hdr();
        if h.is_open() {
            Ok(h.raw())
        } else {
            Err(Error::closed_handle(op))
        }
    }

    /// The loop the handle belongs to; once the handle is closed, a reference that
    /// answers `ClosedLoop`, like that of a loop that is gone.
    pub fn loop_(&self) -> LoopHandle {
        let h = self.hdr();
        if h.in_libuv() {
            // SAFETY: the handle is in libuv, so the loop is open and its `data` is the
            // pointer Rc::as_ptr gave for the shared state, which the owner keeps alive.
            LoopHandle::from_shared(unsafe { h.shared_rc() })
        } else {
            LoopHandle::closed()
        }
    }

    /// Whether the handle is active (started, reading, ...). False once closing.
    pub fn is_active(&self) -> bool {
        match self.raw("uv_is_active") {
            // SAFETY: the handle is open.
            Ok(raw) => unsafe { sys::uv_is_active(raw) != 0 },
            Err(_) => false,
        }
    }

    /// Whether `close` was called (and the close callback may not have run yet).
    pub fn is_closing(&self) -> bool {
        self.header().state() != State::Open
    }

    /// Whether the close callback has run.
    pub fn is_closed(&self) -> bool {
        self.header().state() == State::Closed
    }

    /// Makes the handle keep the loop alive again (`uv_ref`).
    pub fn ref_(&self) -> Result<()> {
        // SAFETY: the handle is open.
        self.raw("uv_ref").map(|raw| unsafe { sys::uv_ref(raw) })
    }

    /// Stops the handle from keeping the loop alive (`uv_unref`).
    pub fn unref(&self) -> Result<()> {
        // SAFETY: the handle is open.
        self.raw("uv_unref")
            .map(|raw| unsafe { sys::uv_unref(raw) })
    }

    /// Whether the handle keeps the loop alive (`uv_has_ref`). False once closing.
    pub fn has_ref(&self) -> bool {
        match self.raw("uv_has_ref") {
            // SAFETY: the handle is open.
            Ok(raw) => unsafe { sys::uv_has_ref(raw) != 0 },
            Err(_) => false,
        }
    }

    /// Closes the handle (`uv_close`). Idempotent; callbacks stop at once, memory is
    /// released after the loop runs the close.
    #[inline]
    pub fn close(&self) {
        self.hdr().begin_close();
    }

    /// Closes the handle and calls `callback` once libuv has closed it. On a handle
    /// that is already closing, the callback is dropped without being called.
    #[inline]
    pub fn close_with(&self, callback: impl FnOnce(&Handle) + 'static) {
        let h = self.hdr();
        let fast = h.closes_fast();
        if fast || (h.is_open() && h.in_libuv()) {
            // SAFETY: the loop's slab lives while the handle is in libuv.
            let slab = unsafe { h.shared().slab().as_ref() };
            let p = CloseOf::alloc(slab);
            // SAFETY: `p` is fresh from `CloseOf::alloc`, with the loop's slab.
            let cb = unsafe { CloseOf::make(callback, p) };
            if !fast {
                return h.close_with_slow(cb);
            }
            // The common case, as `begin_close`'s.
            // SAFETY: the handle is open, without extras: `data` is the library's,
            // and holds the slab (which the close callback finds again).
            unsafe { (*h.raw()).data = tagged_close(cb) };
            h.h().set_state(State::Closing);
            // SAFETY: as in `begin_close`.
            unsafe { sys::uv_close(h.raw(), Some(h.h().vtable.on_close)) };
        }
    }

    /// The platform file descriptor (`uv_fileno`); `EBADF` for handle types without one.
    pub fn fileno(&self) -> Result<crate::RawFd> {
        let raw = self.raw("uv_fileno")?;
        // The caller may change the descriptor's mode (or give it to a child, which
        // libuv does in blocking mode): reads check it again from now on.
        self.hdr().set(OWN_NONBLOCKING_FD, false);
        let mut fd: sys::uv_os_fd_t = Default::default();
        // SAFETY: the handle is open and `fd` is a valid out-pointer.
        check(unsafe { sys::uv_fileno(raw, &mut fd) }, "uv_fileno")?;
        Ok(fd as crate::RawFd)
    }

    fn buffer_size(
        &self,
        op: &'static str,
        f: unsafe extern "C" fn(*mut sys::uv_handle_t, *mut i32) -> i32,
        set: Option<i32>,
    ) -> Result<i32> {
        let raw = self.raw(op)?;
        let mut value = match set {
            None => 0,
            Some(v) if v <= 0 => return Err(Error::new(crate::StatusCode::EINVAL, op)),
            // Linux doubles the value it is given; halve it so that it reads back as set.
            Some(v) if cfg!(target_os = "linux") => (v / 2).max(1),
            Some(v) => v,
        };
        // SAFETY: the handle is open and `value` is a valid in/out pointer.
        check(unsafe { f(raw, &mut value) }, op)?;
        Ok(value)
    }

    /// The socket's send buffer size (`uv_send_buffer_size`).
    pub fn send_buffer_size(&self) -> Result<usize> {
        self.buffer_size("uv_send_buffer_size", sys::uv_send_buffer_size, None)
            .map(|v| v as usize)
    }

    /// Sets the send buffer size: `EINVAL` for 0 or past `i32::MAX`. A size the
    /// system takes reads back unchanged (Linux doubles what it is given; half is
    /// passed). The system adjusts others: on Linux an odd size reads back one
    /// less, and a size is raised to its minimum (a few KiB) and cut to twice
    /// `net.core.wmem_max`.
    pub fn set_send_buffer_size(&self, size: usize) -> Result<()> {
        self.raw("uv_send_buffer_size")?;
        let v = i32::try_from(size)
            .map_err(|_| Error::new(crate::StatusCode::EINVAL, "uv_send_buffer_size"))?;
        self.buffer_size("uv_send_buffer_size", sys::uv_send_buffer_size, Some(v))
            .map(drop)
    }

    /// The socket's receive buffer size (`uv_recv_buffer_size`).
    pub fn recv_buffer_size(&self) -> Result<usize> {
        self.buffer_size("uv_recv_buffer_size", sys::uv_recv_buffer_size, None)
            .map(|v| v as usize)
    }

    /// Sets the receive buffer size: `EINVAL` for 0 or past `i32::MAX`. A size the
    /// system takes reads back unchanged (Linux doubles what it is given; half is
    /// passed). The system adjusts others: on Linux an odd size reads back one
    /// less, and a size is raised to its minimum (a few KiB) and cut to twice
    /// `net.core.rmem_max`.
    pub fn set_recv_buffer_size(&self, size: usize) -> Result<()> {
        self.raw("uv_recv_buffer_size")?;
        let v = i32::try_from(size)
            .map_err(|_| Error::new(crate::StatusCode::EINVAL, "uv_recv_buffer_size"))?;
        self.buffer_size("uv_recv_buffer_size", sys::uv_recv_buffer_size, Some(v))
            .map(drop)
    }

    /// The libuv handle type.
    pub fn handle_type(&self) -> HandleType {
        // SAFETY: `raw` stays a valid uv_handle_t (the type field is kept after close).
        let t = unsafe { sys::uv_handle_get_type(self.hdr().raw()) };
        HandleType::from_raw(t as i32)
    }

    /// The typed handle, if this is one of type `K`.
    pub fn downcast<K: HandleKind>(&self) -> Option<K> {
        if (self.header().vtable.type_id)() == TypeId::of::<K>() {
            self.hdr().inc_ref();
            Some(K::from_typed(Typed {
                ptr: self.ptr,
                _kind: PhantomData,
            }))
        } else {
            None
        }
    }

    /// The libuv struct (valid until the close callback; callers check the state).
    pub(crate) fn raw_struct(&self) -> *mut sys::uv_handle_t {
        self.hdr().raw()
    }

    /// Whether senders were made for this `Async` and its sender cell is not shut
    /// by a close yet.
    pub(crate) fn has_senders(&self) -> bool {
        self.hdr().has(HAS_SENDER)
    }

    pub(crate) fn is_internal(&self) -> bool {
        self.hdr().has(INTERNAL)
    }

    /// A new reference from a raw handle seen by `uv_walk`.
    ///
    /// # Safety
    /// `raw` must be a handle made by this library and not yet closed.
    pub(crate) unsafe fn from_walk(raw: *mut sys::uv_handle_t) -> Option<Handle> {
        // SAFETY: per the contract.
        let hp = unsafe { Hdr::from_raw(raw) };
        hp.inc_ref();
        Some(Handle {
            ptr: hp.0,
            _not_send: PhantomData,
        })
    }
}

impl Clone for Handle {
    #[inline]
    fn clone(&self) -> Self {
        self.hdr().inc_ref();
        Handle {
            ptr: self.ptr,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: this value owns one reference.
        unsafe { self.hdr().release() }
    }
}

impl PartialEq for Handle {
    fn eq(&self, other: &Handle) -> bool {
        self.ptr == other.ptr
    }
}

impl Eq for Handle {}

/// Identity: two values are equal, and hash alike, when they refer to the same
/// handle.
impl std::hash::Hash for Handle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.ptr.hash(state);
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.header();
        f.debug_struct(h.vtable.name)
            .field("state", &h.state())
            .field("refs", &h.refs.get())
            .finish()
    }
}

impl<K: HandleKind> fmt::Debug for Typed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle().fmt(f)
    }
}

// What each handle costs beside its libuv struct: one 16-byte slot per callback
// (the header lives inside the libuv struct; the million_timers benchmark depends on
// it).
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(std::mem::size_of::<Header>() == 16);
    assert!(std::mem::size_of::<Slot<dyn FnMut()>>() == 8);
    assert!(std::mem::size_of::<HandleBox<crate::Timer>>() == 152 + 8);
    // An `Async` costs its libuv struct and its slot: the sender state word lives
    // in the union (the million_async benchmark depends on it).
    assert!(STATE_IN_UNION);
    assert!(ASYNC_CELL.size() == 128 + 8);
};

/// [`Typed::shared_for_request`] of the handle at `raw`.
///
/// # Safety
/// As there: called from the completion of a request of the handle at `raw`.
pub(crate) unsafe fn shared_for_request(raw: *mut sys::uv_handle_t) -> *const LoopShared {
    // SAFETY: per the contract, the handle is in libuv or its loop is being
    // abandoned: either way its `loop` field points at its loop (an abandoned
    // one is leaked, never freed), whose `data` is the loop's shared state,
    // kept alive by the loop's owner (whose teardown this is).
    let p = unsafe { (*(*raw).loop_).data as *const LoopShared };
    debug_assert!(!p.is_null());
    p
}
