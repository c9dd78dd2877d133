//! The handle lifecycle shared by every handle type.
//!
//! Each handle lives in one heap allocation, a [`HandleBox`]: a header, the libuv
//! struct and the callback slots. The user's values ([`Handle`] and the typed
//! wrappers) are counted references to it. The allocation is freed only when both
//! are true: no user reference is left, and libuv has called the close callback.
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
use std::rc::Rc;

use libuv_sys2 as sys;

use crate::callback::Slot;
use crate::error::{check, Error, Result};
use crate::loop_::{LoopHandle, LoopShared};
use crate::HandleType;

/// What keeps a handle open after the user dropped every reference to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAlive {
    /// Open while libuv reports it active (started, reading, listening).
    Active,
    /// Closed when the last reference goes.
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Closing,
    Closed,
}

/// Per-type facts the type-erased core needs.
pub struct VTable {
    type_id: fn() -> TypeId,
    clear: unsafe fn(*mut Header),
    free: unsafe fn(*mut Header),
    keep_alive: KeepAlive,
    name: &'static str,
}

type CloseCallback = Box<dyn FnOnce(&Handle)>;

/// The part of every handle allocation that does not depend on its type.
pub struct Header {
    refs: Cell<usize>,
    state: Cell<State>,
    /// True from a successful init until the close callback.
    in_libuv: Cell<bool>,
    internal: bool,
    raw: *mut sys::uv_handle_t,
    loop_: Rc<LoopShared>,
    vtable: &'static VTable,
    close_cb: Cell<Option<CloseCallback>>,
    before_close: Cell<Option<Box<dyn FnOnce()>>>,
    ext: Cell<Option<Box<dyn Any>>>,
}

/// The callback slots of a handle type (generated).
pub trait Slots: Default + 'static {
    /// Drops every stored callback.
    fn clear(&self);
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
    header: Header,
    raw: K::Raw,
    slots: K::Slots,
}

unsafe fn clear_slots<K: HandleKind>(h: *mut Header) {
    // SAFETY: `h` is the header of a HandleBox<K> (it is the vtable of K that calls
    // this); only a shared reference is made.
    let b = unsafe { &*(h as *const HandleBox<K>) };
    b.slots.clear();
}

unsafe fn free_box<K: HandleKind>(h: *mut Header) {
    // SAFETY: the box was made by Box::into_raw in Typed::new and is freed once,
    // when no user reference and no libuv reference is left.
    drop(unsafe { Box::from_raw(h as *mut HandleBox<K>) });
}

struct VTableOf<K>(PhantomData<K>);

impl<K: HandleKind> VTableOf<K> {
    const VTABLE: VTable = VTable {
        type_id: TypeId::of::<K>,
        clear: clear_slots::<K>,
        free: free_box::<K>,
        keep_alive: K::KEEP_ALIVE,
        name: K::NAME,
    };
}

/// A counted reference to a handle of any type: the operations every handle has.
///
/// Typed handles (`Timer`, `Idle`, ...) dereference to it.
#[repr(transparent)]
pub struct Handle {
    ptr: NonNull<Header>,
    _not_send: PhantomData<*mut ()>,
}

/// A counted reference to a handle of type `K` (the inside of a typed handle).
#[repr(transparent)]
pub struct Typed<K: HandleKind> {
    ptr: NonNull<Header>,
    _kind: PhantomData<(*mut (), K)>,
}

impl Header {
    fn is_open(&self) -> bool {
        self.state.get() == State::Open && self.loop_.is_open()
    }

    fn keeps_alive(&self) -> bool {
        match self.vtable.keep_alive {
            // SAFETY: `raw` is an initialised handle until the close callback.
            KeepAlive::Active => unsafe { sys::uv_is_active(self.raw) != 0 },
            KeepAlive::Never => false,
        }
    }

    /// Starts closing (idempotent).
    fn begin_close(&self) {
        if self.state.get() != State::Open || !self.in_libuv.get() {
            return;
        }
        self.state.set(State::Closing);
        if let Some(hook) = self.before_close.take() {
            hook();
        }
        // SAFETY: the handle is initialised and not yet closing; the allocation stays
        // until `on_close` runs.
        unsafe { sys::uv_close(self.raw, Some(on_close)) };
    }

    /// Closes the handle if nobody can reach it and it cannot call user code.
    pub(crate) fn close_if_unreachable(&self) {
        if self.refs.get() == 0 && self.state.get() == State::Open && !self.keeps_alive() {
            self.begin_close();
        }
    }
}

/// Drops one reference; closes or frees as the lifetime rule says.
///
/// # Safety
/// `h` must be a live header and the caller must own one of its references.
unsafe fn release(h: NonNull<Header>) {
    // SAFETY: the caller owns a reference, so the header is live.
    let header = unsafe { h.as_ref() };
    let refs = header.refs.get() - 1;
    header.refs.set(refs);
    if refs > 0 {
        return;
    }
    if header.in_libuv.get() {
        header.close_if_unreachable();
    } else {
        // SAFETY: no user reference and no libuv reference is left.
        unsafe { (header.vtable.free)(h.as_ptr()) };
    }
}

unsafe extern "C" fn on_close(raw: *mut sys::uv_handle_t) {
    // SAFETY: `data` was set to the header in Typed::new and the allocation lives
    // until `in_libuv` is cleared below.
    let hp = unsafe { NonNull::new_unchecked((*raw).data as *mut Header) };
    // SAFETY: see above.
    let header = unsafe { hp.as_ref() };
    header.state.set(State::Closed);
    header.loop_.handle_closed(header.internal);
    // Hold a reference while user code runs, so that nothing it drops frees us.
    header.refs.set(header.refs.get() + 1);
    let user = header.close_cb.take();
    let loop_ = header.loop_.clone();
    if let Some(cb) = user {
        let h = ManuallyDrop::new(Handle {
            ptr: hp,
            _not_send: PhantomData,
        });
        loop_.guard(|| cb(&h));
    }
    // SAFETY: the vtable belongs to this header's type.
    loop_.guard(|| unsafe { (header.vtable.clear)(hp.as_ptr()) });
    let ext = header.ext.take();
    loop_.guard(move || drop(ext));
    header.in_libuv.set(false);
    // SAFETY: we own the reference taken above.
    unsafe { release(hp) };
}

impl<K: HandleKind> Typed<K> {
    /// Allocates a handle, fills its slots and runs the libuv init function.
    ///
    /// `init` gets the loop and the handle's struct.
    pub fn new(
        loop_: &LoopHandle,
        slots: K::Slots,
        op: &'static str,
        init: impl FnOnce(*mut sys::uv_loop_t, *mut K::Raw) -> i32,
    ) -> Result<Self> {
        Self::new_inner(loop_, slots, op, false, init)
    }

    pub(crate) fn new_inner(
        loop_: &LoopHandle,
        slots: K::Slots,
        op: &'static str,
        internal: bool,
        init: impl FnOnce(*mut sys::uv_loop_t, *mut K::Raw) -> i32,
    ) -> Result<Self> {
        let shared = loop_.shared();
        let uv_loop = shared.raw_for_new().ok_or(Error::closed_loop(op))?;
        let b = Box::new(HandleBox::<K> {
            header: Header {
                refs: Cell::new(1),
                state: Cell::new(State::Open),
                in_libuv: Cell::new(false),
                internal,
                raw: std::ptr::null_mut(),
                loop_: shared.clone(),
                vtable: &VTableOf::<K>::VTABLE,
                close_cb: Cell::new(None),
                before_close: Cell::new(None),
                ext: Cell::new(None),
            },
            // SAFETY: libuv handle structs are plain C data for which all-zero is a
            // valid (uninitialised-handle) value; init fills them in.
            raw: unsafe { std::mem::zeroed() },
            slots,
        });
        let p = Box::into_raw(b);
        // SAFETY: `p` is a fresh, valid allocation; the fields are addressed in place
        // so the libuv struct never moves.
        unsafe {
            let raw = std::ptr::addr_of_mut!((*p).raw);
            (*p).header.raw = raw.cast();
            let rc = init(uv_loop, raw);
            if rc < 0 {
                drop(Box::from_raw(p));
                return Err(Error::from_raw(rc, op));
            }
            (*raw.cast::<sys::uv_handle_t>()).data = p.cast();
            (*p).header.in_libuv.set(true);
        }
        shared.handle_opened(internal);
        Ok(Typed {
            // SAFETY: `p` is non-null (from Box::into_raw).
            ptr: unsafe { NonNull::new_unchecked(p.cast()) },
            _kind: PhantomData,
        })
    }

    fn boxed(&self) -> &HandleBox<K> {
        // SAFETY: a Typed<K> always points at a live HandleBox<K>.
        unsafe { &*(self.ptr.as_ptr() as *const HandleBox<K>) }
    }

    /// The libuv struct, if the handle is open; `ClosedHandle` (naming `op`) otherwise.
    #[inline]
    pub fn raw(&self, op: &'static str) -> Result<*mut K::Raw> {
        self.raw_open().ok_or(Error::closed_handle(op))
    }

    /// The libuv struct, if the handle is open.
    #[inline]
    pub fn raw_open(&self) -> Option<*mut K::Raw> {
        let b = self.boxed();
        if b.header.is_open() {
            Some(b.header.raw.cast())
        } else {
            None
        }
    }

    /// The callback slots.
    #[inline]
    pub fn slots(&self) -> &K::Slots {
        &self.boxed().slots
    }

    /// The type-erased view.
    #[inline]
    pub fn handle(&self) -> &Handle {
        // SAFETY: both types are a transparent NonNull<Header>.
        unsafe { &*(self as *const Typed<K> as *const Handle) }
    }

    /// Per-handle storage for hand-written parts of a type.
    pub(crate) fn ext(&self) -> &Cell<Option<Box<dyn Any>>> {
        &self.boxed().header.ext
    }

    /// Runs `hook` just before `uv_close` (once).
    pub(crate) fn set_before_close(&self, hook: Box<dyn FnOnce()>) {
        self.boxed().header.before_close.set(Some(hook));
    }
}

impl<K: HandleKind> Clone for Typed<K> {
    fn clone(&self) -> Self {
        let h = &self.boxed().header;
        h.refs.set(h.refs.get() + 1);
        Typed {
            ptr: self.ptr,
            _kind: PhantomData,
        }
    }
}

impl<K: HandleKind> Drop for Typed<K> {
    fn drop(&mut self) {
        // SAFETY: this value owns one reference.
        unsafe { release(self.ptr) }
    }
}

/// Runs a handle callback: takes the user's callback out of its slot, calls it with
/// a borrowed handle under the loop's panic guard, puts it back unless it was
/// replaced, then applies the lifetime rule.
///
/// # Safety
/// `raw` must be a handle initialised by [`Typed::new`] for `K`.
#[inline]
pub unsafe fn dispatch<K: HandleKind, F: ?Sized>(
    raw: *mut K::Raw,
    slot: impl FnOnce(&K::Slots) -> &Slot<F>,
    call: impl FnOnce(&mut F, &K),
) {
    // SAFETY: `data` points at the HandleBox<K>, alive until the close callback,
    // which cannot run during this one.
    let b = unsafe { &*((*raw.cast::<sys::uv_handle_t>()).data as *const HandleBox<K>) };
    let handle = ManuallyDrop::new(K::from_typed(Typed {
        ptr: NonNull::from(&b.header),
        _kind: PhantomData,
    }));
    let slot = slot(&b.slots);
    b.header.loop_.guard(|| slot.call(|f| call(f, &handle)));
    b.header.close_if_unreachable();
}

impl Handle {
    fn header(&self) -> &Header {
        // SAFETY: a Handle always points at a live header.
        unsafe { self.ptr.as_ref() }
    }

    fn raw(&self, op: &'static str) -> Result<*mut sys::uv_handle_t> {
        let h = self.header();
        if h.is_open() {
            Ok(h.raw)
        } else {
            Err(Error::closed_handle(op))
        }
    }

    /// The loop the handle belongs to.
    pub fn loop_(&self) -> LoopHandle {
        LoopHandle::from_shared(self.header().loop_.clone())
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
        self.header().state.get() != State::Open
    }

    /// Whether the close callback has run.
    pub fn is_closed(&self) -> bool {
        self.header().state.get() == State::Closed
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
    pub fn close(&self) {
        self.header().begin_close();
    }

    /// Closes the handle and calls `callback` once libuv has closed it. On a handle
    /// that is already closing, the callback is dropped without being called.
    pub fn close_with(&self, callback: impl FnOnce(&Handle) + 'static) {
        let h = self.header();
        if h.state.get() == State::Open && h.in_libuv.get() {
            h.close_cb.set(Some(Box::new(callback)));
            h.begin_close();
        }
    }

    /// The platform file descriptor (`uv_fileno`); `EBADF` for handle types without one.
    pub fn fileno(&self) -> Result<crate::RawFd> {
        let raw = self.raw("uv_fileno")?;
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

    /// Sets the send buffer size; the value reads back unchanged on every platform.
    pub fn set_send_buffer_size(&self, size: usize) -> Result<()> {
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

    /// Sets the receive buffer size; the value reads back unchanged on every platform.
    pub fn set_recv_buffer_size(&self, size: usize) -> Result<()> {
        let v = i32::try_from(size)
            .map_err(|_| Error::new(crate::StatusCode::EINVAL, "uv_recv_buffer_size"))?;
        self.buffer_size("uv_recv_buffer_size", sys::uv_recv_buffer_size, Some(v))
            .map(drop)
    }

    /// The libuv handle type.
    pub fn handle_type(&self) -> HandleType {
        // SAFETY: `raw` stays a valid uv_handle_t (the type field is kept after close).
        let t = unsafe { sys::uv_handle_get_type(self.header().raw) };
        HandleType::from_raw(t as i32)
    }

    /// The typed handle, if this is one of type `K`.
    pub fn downcast<K: HandleKind>(&self) -> Option<K> {
        if (self.header().vtable.type_id)() == TypeId::of::<K>() {
            let h = self.header();
            h.refs.set(h.refs.get() + 1);
            Some(K::from_typed(Typed {
                ptr: self.ptr,
                _kind: PhantomData,
            }))
        } else {
            None
        }
    }

    pub(crate) fn is_internal(&self) -> bool {
        self.header().internal
    }

    /// A new reference from a raw handle seen by `uv_walk`.
    ///
    /// # Safety
    /// `raw` must be a handle made by this library and not yet closed.
    pub(crate) unsafe fn from_walk(raw: *mut sys::uv_handle_t) -> Option<Handle> {
        // SAFETY: per the contract, `data` is our header.
        let hp = NonNull::new(unsafe { (*raw).data } as *mut Header)?;
        // SAFETY: live header.
        let h = unsafe { hp.as_ref() };
        h.refs.set(h.refs.get() + 1);
        Some(Handle {
            ptr: hp,
            _not_send: PhantomData,
        })
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        let h = self.header();
        h.refs.set(h.refs.get() + 1);
        Handle {
            ptr: self.ptr,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: this value owns one reference.
        unsafe { release(self.ptr) }
    }
}

impl PartialEq for Handle {
    fn eq(&self, other: &Handle) -> bool {
        self.ptr == other.ptr
    }
}

impl Eq for Handle {}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.header();
        f.debug_struct(h.vtable.name)
            .field("state", &h.state.get())
            .field("refs", &h.refs.get())
            .finish()
    }
}

impl<K: HandleKind> fmt::Debug for Typed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle().fmt(f)
    }
}
