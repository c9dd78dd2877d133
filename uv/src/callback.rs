//! Callback slots: where a handle keeps its user callbacks.
//!
//! A callback is stored once (one allocation per `start`, none per call; a closure
//! that captures nothing allocates nothing). While it runs it is out of its slot, so
//! it may replace itself, stop or close its handle: afterwards it goes back only if
//! the slot is still empty, that is, if it was not replaced meanwhile. (A slot is
//! emptied by `clear` only from a close callback, which never runs during another
//! callback of the same handle.)
//!
//! A stored callback is a [`Callback`]: a `Box<F>` behind one pointer instead of
//! two. Its allocation starts with a pointer to a static record of the value's type
//! (how to see the value as `F`, how to free it), so a slot is 8 bytes and a handle
//! with one callback is only 8 bytes larger than its libuv struct and header.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::loop_::Slab;

/// What a [`Callback`] needs to know of the type of the value it holds. (The record
/// of a [`HandleSlot`]'s callback starts with one: `repr(C)`.)
#[repr(C)]
struct Erased<F: ?Sized> {
    /// Whether the value has an allocation (a [`Thin`]; else it is zero-sized).
    allocated: bool,
    /// The value, seen as `F`, from the callback's pointer.
    view: unsafe fn(NonNull<()>) -> *mut F,
    /// Drops the value and frees its memory.
    free: unsafe fn(NonNull<()>),
}

/// The allocation of a callback whose value takes memory.
#[repr(C)]
struct Thin<C> {
    /// The `&'static Erased<F>`, or the `&'static ErasedCall<K>` that starts with
    /// one (a raw pointer: it keeps the whole record's provenance).
    erased: *const (),
    /// Tells this callback from one allocated later at the same address (see
    /// `Slot::set_then`).
    serial: u64,
    value: C,
}

/// The next allocated callback's serial number.
static NEXT_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The static record of value type `C` stored as `F`, where `G` is the (zero-sized)
/// coercion from `*mut C` to `*mut F`.
#[allow(clippy::type_complexity)]
struct ErasedOf<C, G, F: ?Sized>(PhantomData<(fn() -> C, G, *const F)>);

impl<C: 'static, G: Fn(*mut C) -> *mut F + Copy + 'static, F: ?Sized + 'static> ErasedOf<C, G, F> {
    const ERASED: &'static Erased<F> = &Erased {
        allocated: std::mem::size_of::<C>() != 0,
        view: view::<C, G, F>,
        free: free::<C>,
    };
    /// Where a zero-sized value is kept: a static that starts as an allocation does.
    const STATIC: &'static &'static Erased<F> = &Self::ERASED;
}

/// The value of a callback allocated from a loop's slab (`CallSlot::callback_in`), and
/// that slab, which the memory goes back to. The value comes first (`repr(C)`).
#[repr(C)]
struct InSlab<C> {
    value: C,
    slab: NonNull<Slab>,
}

/// `free` of a callback made by `CallSlot::callback_in::<C, _, _>`: drops the value, then
/// gives the memory back to its slab (also when the drop unwinds).
///
/// # Safety
/// `p` must be the pointer of a live callback made by `CallSlot::callback_in::<C,
/// _, _>`; once per callback.
unsafe fn free_in<C>(p: NonNull<()>) {
    /// Gives the allocation back after the value's drop, even if that panics.
    struct Free<C>(NonNull<()>, NonNull<Slab>, PhantomData<C>);
    impl<C> Drop for Free<C> {
        #[inline(always)]
        fn drop(&mut self) {
            // SAFETY: the allocation was made by `Callback::with_record_in` from this slab
            // with this layout (holding one of its counts, so the slab is alive),
            // and its value is dropped (or its drop unwound); freed once, here.
            unsafe {
                Slab::free(
                    self.1,
                    self.0.cast(),
                    std::alloc::Layout::new::<Thin<InSlab<C>>>(),
                )
            }
        }
    }
    let v = value_ptr::<InSlab<C>>(p);
    // SAFETY: per the contract the value is live and dropped once; the slab field
    // was written by `with_record_in`.
    unsafe {
        let _free = Free::<C>(p, (*v).slab, PhantomData);
        std::ptr::drop_in_place(std::ptr::addr_of_mut!((*v).value));
    }
}

/// The value of a callback with record `ErasedOf<C, G, F>`, as `F`.
///
/// # Safety
/// `p` must be the pointer of a live callback made by `Callback::new::<C, G>` (whose
/// contract makes `G` the unsizing coercion).
unsafe fn view<C, G: Fn(*mut C) -> *mut F + Copy, F: ?Sized + 'static>(p: NonNull<()>) -> *mut F {
    // SAFETY: G is zero-sized and Copy (checked in Callback::new): a value of it read
    // from any aligned pointer is the value the caller passed.
    let as_dyn: G = unsafe { NonNull::<G>::dangling().as_ptr().read() };
    as_dyn(value_ptr::<C>(p))
}

/// Where the value of type `C` of the callback with pointer `p` is.
fn value_ptr<C>(p: NonNull<()>) -> *mut C {
    if std::mem::size_of::<C>() == 0 {
        // A zero-sized value has no memory of its own: any aligned pointer will do.
        NonNull::<C>::dangling().as_ptr()
    } else {
        // SAFETY: a non-zero-sized value lives in a Thin<C> allocation that `p`
        // points at; only the field's address is computed.
        unsafe { std::ptr::addr_of_mut!((*p.cast::<Thin<C>>().as_ptr()).value) }
    }
}

/// Drops the value of type `C` of a callback and frees its allocation.
///
/// # Safety
/// As `view`; once per callback.
unsafe fn free<C>(p: NonNull<()>) {
    /// Frees the allocation after the value's drop, even if that panics (as a
    /// `Box` does).
    struct Dealloc(NonNull<()>, std::alloc::Layout);
    impl Drop for Dealloc {
        fn drop(&mut self) {
            // SAFETY: the allocation was made by Callback::new with this layout,
            // and its value is dropped (or its drop unwound).
            unsafe { std::alloc::dealloc(self.0.as_ptr().cast(), self.1) }
        }
    }
    let _dealloc =
        (std::mem::size_of::<C>() != 0).then(|| Dealloc(p, std::alloc::Layout::new::<Thin<C>>()));
    // SAFETY: per the contract the value is live and dropped once.
    unsafe { std::ptr::drop_in_place(value_ptr::<C>(p)) };
}

/// Checks at compile time that `G`, the unsizing coercion `|p| p`, is zero-sized
/// (its value can then be made again anywhere), and lets go of it.
#[inline(always)]
fn coercion_captures_nothing<G>(as_dyn: G) {
    const {
        assert!(
            std::mem::size_of::<G>() == 0,
            "the coercion must capture nothing (`|p| p`)"
        )
    };
    let _ = as_dyn;
}

/// [`coercion_captures_nothing`], and the same for `H`, a `CallSlot` record's call
/// (made again from its type alone where the record is called).
#[inline(always)]
fn coercion_and_call_capture_nothing<G, H>(as_dyn: G, call: H) {
    coercion_captures_nothing(as_dyn);
    const {
        assert!(
            std::mem::size_of::<H>() == 0,
            "the call must capture nothing"
        )
    };
    let _ = call;
}

/// A boxed callback of type `F` (a `dyn FnMut(...)`) behind one pointer. A value that
/// takes no memory (a closure that captures nothing) is stored without allocation.
pub struct Callback<F: ?Sized + 'static> {
    /// The allocation, or for a zero-sized value its type's static record; either
    /// starts with the `&'static Erased<F>`.
    ptr: NonNull<&'static Erased<F>>,
    _owns: PhantomData<Box<F>>,
}

impl<F: ?Sized + 'static> Callback<F> {
    /// Boxes `value` as an `F`.
    ///
    /// # Safety
    /// `as_dyn` must be the unsizing coercion from `*mut C` to `*mut F`, written as
    /// the closure `|p| p` (with `F` known at the call, e.g. from the slot:
    /// [`Slot::callback`]): it must return the pointer it is given, as an `F`.
    #[inline]
    pub unsafe fn new<C: 'static, G>(value: C, as_dyn: G) -> Self
    where
        G: Fn(*mut C) -> *mut F + Copy + 'static,
    {
        coercion_captures_nothing(as_dyn);
        let erased = ErasedOf::<C, G, F>::ERASED;
        // SAFETY: the record is that of `C` (and the static one starts as an
        // allocation does).
        unsafe {
            Self::with_record(
                value,
                (erased as *const Erased<F>).cast(),
                NonNull::from(ErasedOf::<C, G, F>::STATIC).cast(),
            )
        }
    }

    /// Boxes `value` (not zero-sized) in memory from the loop slab `slab`, with its
    /// record `erased`, whose `view` and `free` are those of an `InSlab<C>` value
    /// (`view_opaque_in`, `free_in`).
    ///
    /// # Safety
    /// `erased` is such a record made for `C` (and `F`); `slab` is a live slab of a
    /// loop of this thread.
    #[inline(always)]
    unsafe fn with_record_in<C: 'static>(value: C, erased: *const (), slab: NonNull<Slab>) -> Self {
        let layout = std::alloc::Layout::new::<Thin<InSlab<C>>>();
        // SAFETY: per the contract the slab is live; `alloc` takes one of its counts.
        let p = unsafe { slab.as_ref() }
            .alloc(layout)
            .cast::<Thin<InSlab<C>>>();
        let serial = NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: fresh memory for a Thin<InSlab<C>>, written in place.
        unsafe {
            p.as_ptr().write(Thin {
                erased,
                serial,
                value: InSlab { value, slab },
            })
        };
        Callback {
            ptr: p.cast(),
            _owns: PhantomData,
        }
    }

    /// Boxes `value` with its record `erased` (an `Erased<F>` or a record that
    /// starts with one), or if it is zero-sized, as `zst`.
    ///
    /// # Safety
    /// `erased` is the record made for `C` (and `F`), `zst` points at a pointer to it.
    #[inline(always)]
    unsafe fn with_record<C: 'static>(value: C, erased: *const (), zst: NonNull<()>) -> Self {
        if std::mem::size_of::<C>() == 0 {
            // Nothing to keep: the value is made again where it is used (this one is
            // forgotten, so it is moved, not copied).
            std::mem::forget(value);
            return Callback {
                ptr: zst.cast(),
                _owns: PhantomData,
            };
        }
        let layout = std::alloc::Layout::new::<Thin<C>>();
        // SAFETY: the layout is not zero-sized (C is not).
        let p = unsafe { std::alloc::alloc(layout) }.cast::<Thin<C>>();
        let Some(p) = NonNull::new(p) else {
            std::alloc::handle_alloc_error(layout)
        };
        let serial = NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: fresh memory for a Thin<C>, written in place.
        unsafe {
            p.as_ptr().write(Thin {
                erased,
                serial,
                value,
            })
        };
        Callback {
            ptr: p.cast(),
            _owns: PhantomData,
        }
    }

    #[inline(always)]
    fn erased(&self) -> &'static Erased<F> {
        // SAFETY: `ptr` starts with the record (allocation or static).
        unsafe { *self.ptr.as_ptr() }
    }

    /// Who this callback is: its pointer, and for an allocated one its serial number
    /// (an allocation's address is reused once it is freed). Callbacks of one
    /// zero-sized type share theirs.
    fn identity(&self) -> (NonNull<&'static Erased<F>>, u64) {
        let serial = if self.erased().allocated {
            // SAFETY: an allocated callback is a Thin, whose first two fields do not
            // depend on the value's type (repr(C)).
            unsafe { (*self.ptr.cast::<Thin<()>>().as_ptr()).serial }
        } else {
            0
        };
        (self.ptr, serial)
    }

    /// The value, as `F`.
    #[inline(always)]
    fn as_ptr(&self) -> *mut F {
        // SAFETY: the callback is live; its record matches its value.
        unsafe { (self.erased().view)(self.ptr.cast()) }
    }
}

impl<F: ?Sized + 'static> std::ops::Deref for Callback<F> {
    type Target = F;
    #[inline(always)]
    fn deref(&self) -> &F {
        // SAFETY: the value lives as long as the callback, borrowed through it.
        unsafe { &*self.as_ptr() }
    }
}

impl<F: ?Sized + 'static> std::ops::DerefMut for Callback<F> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut F {
        // SAFETY: as `deref`; `&mut self` makes the borrow unique.
        unsafe { &mut *self.as_ptr() }
    }
}

impl<F: ?Sized + 'static> Drop for Callback<F> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the callback owns its value, dropped once here.
        unsafe { (self.erased().free)(self.ptr.cast()) }
    }
}

impl<F: ?Sized + 'static> fmt::Debug for Callback<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Callback")
    }
}

/// One callback slot: 8 bytes, a `Callback`.
pub struct Slot<F: ?Sized + 'static> {
    cb: Cell<Option<Callback<F>>>,
}

impl<F: ?Sized + 'static> Default for Slot<F> {
    fn default() -> Self {
        Slot {
            cb: Cell::new(None),
        }
    }
}

impl<F: ?Sized + 'static> Slot<F> {
    /// Boxes `value` for this slot (`Callback::new` with `F` taken from the slot).
    ///
    /// # Safety
    /// `as_dyn` must be the closure `|p| p` (see `Callback::new`).
    #[inline(always)]
    pub unsafe fn callback<C: 'static, G>(&self, value: C, as_dyn: G) -> Callback<F>
    where
        G: Fn(*mut C) -> *mut F + Copy + 'static,
    {
        // SAFETY: per the contract.
        unsafe { Callback::new(value, as_dyn) }
    }

    /// Stores `cb`, dropping the previous callback (after the slot is updated).
    pub fn set(&self, cb: Callback<F>) {
        drop(self.cb.replace(Some(cb)));
    }

    /// Stores `cb` for `start` (the C call that will use it): if `start` fails, the
    /// previous callback is put back and `cb` dropped, as if nothing happened.
    ///
    /// If `start` itself stored another callback here (user code it ran started the
    /// same operation), that one stays: it belongs to a start that succeeded.
    #[inline]
    pub fn set_then<T, E>(
        &self,
        cb: Callback<F>,
        start: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        // Identity by pointer and serial number: user code run by `start` (the drop
        // of a callback it replaced) may free ours and allocate another one at the
        // same address.
        let ours = cb.identity();
        let old = self.cb.replace(Some(cb));
        match start() {
            Ok(v) => {
                drop(old);
                Ok(v)
            }
            Err(e) => {
                let now = self.cb.take();
                let still_ours = now.as_ref().is_some_and(|c| c.identity() == ours);
                if still_ours {
                    self.cb.set(old);
                    drop(now);
                } else {
                    self.cb.set(now);
                    drop(old);
                }
                Err(e)
            }
        }
    }

    /// Takes the stored callback out.
    pub fn take(&self) -> Option<Callback<F>> {
        self.cb.take()
    }

    /// Drops the stored callback.
    pub fn clear(&self) {
        drop(self.cb.take());
    }

    /// Whether a callback is stored (false while it runs).
    pub fn is_set(&self) -> bool {
        // SAFETY: a look at the Cell's value through its pointer, with no reference
        // into the Cell alive and no code run meanwhile (the Cell is not Sync).
        unsafe { (*self.cb.as_ptr()).is_some() }
    }

    /// Takes the stored callback out for a call; [`Slot::put_back`] returns it.
    #[inline(always)]
    pub(crate) fn take_for_call(&self) -> Option<Callback<F>> {
        self.cb.take()
    }

    /// Puts back a callback taken out by [`Slot::take_for_call`], unless the slot
    /// was refilled meanwhile (the callback replaced itself): the new one then stays
    /// and `cb` is handed back, for the caller to drop. Runs no user code.
    #[inline(always)]
    pub(crate) fn put_back(&self, cb: Callback<F>) -> Option<Callback<F>> {
        // SAFETY: a look at the Cell's value through its pointer, with no reference
        // into the Cell alive and no code run meanwhile (the Cell is not Sync).
        let empty = unsafe { (*self.cb.as_ptr()).is_none() };
        if empty {
            // SAFETY: as above; the slot holds `None`, which needs no drop.
            unsafe { self.cb.as_ptr().write(Some(cb)) };
            None
        } else {
            Some(cb)
        }
    }

    /// Calls the stored callback, if any, and puts it back unless it was replaced.
    #[inline]
    pub fn call(&self, f: impl FnOnce(&mut F)) {
        self.call_raw(|cb| f(cb));
    }

    /// Calls `f` with the stored callback, if any, taken out of the slot, and puts
    /// it back unless it was replaced.
    #[inline(always)]
    fn call_raw(&self, f: impl FnOnce(&mut Callback<F>)) {
        let Some(cb) = self.cb.take() else { return };
        // Put the callback back even if `f` unwinds, unless the slot was refilled.
        struct Restore<'a, F: ?Sized + 'static> {
            slot: &'a Slot<F>,
            cb: Option<Callback<F>>,
        }
        impl<F: ?Sized + 'static> Drop for Restore<'_, F> {
            #[inline]
            fn drop(&mut self) {
                // SAFETY: a look at the Cell's value through its pointer, with no
                // reference into the Cell alive and no code run meanwhile (the Cell
                // is not Sync, so no other thread reaches it).
                let empty = unsafe { (*self.slot.cb.as_ptr()).is_none() };
                if empty {
                    self.slot.cb.set(self.cb.take());
                } else if let Some(new) = self.slot.cb.take() {
                    replaced(self.slot, new, self.cb.take());
                }
            }
        }
        /// The callback replaced itself: the new one stays.
        #[cold]
        #[inline(never)]
        fn replaced<F: ?Sized + 'static>(
            slot: &Slot<F>,
            new: Callback<F>,
            old: Option<Callback<F>>,
        ) {
            slot.cb.set(Some(new));
            // The old callback is dropped here, after it returned. While the
            // callback's own panic unwinds, a panicking Drop of what it captured
            // would abort the process: catch that one.
            if std::thread::panicking() {
                let dropped =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(old)));
                if let Err(p) = dropped {
                    drop_quietly(p);
                }
            } else {
                drop(old);
            }
        }
        let mut guard = Restore {
            slot: self,
            cb: Some(cb),
        };
        if let Some(cb) = guard.cb.as_mut() {
            f(cb);
        }
    }
}

/// The callback type of a [`HandleSlot`]: one that takes only its handle.
pub type HandleFn<K> = dyn FnMut(&K);

/// The record of a [`HandleSlot`]'s callback: that of any callback, then the function
/// that calls the value.
#[repr(C)]
struct ErasedCall<K: 'static> {
    erased: Erased<HandleFn<K>>,
    /// Calls the value (with the callback's pointer) directly: one indirect call,
    /// where [`Slot::call`] makes two (the record's `view`, then the value's vtable).
    call: unsafe fn(NonNull<()>, &K),
    /// The same, with the handle given as a value the caller will not drop (a
    /// borrowed view, passed in a register: the caller keeps nothing in memory
    /// for the reference).
    call_view: unsafe fn(NonNull<()>, std::mem::ManuallyDrop<K>),
}

/// The static record of value type `C` (a closure taking `&K`) stored in a
/// `HandleSlot<K>`, where `G` is the coercion from `*mut C` to `*mut HandleFn<K>`.
#[allow(clippy::type_complexity)]
struct ErasedCallOf<C, G, K>(PhantomData<(fn() -> C, G, fn(&K))>);

impl<C: FnMut(&K) + 'static, G: Fn(*mut C) -> *mut HandleFn<K> + Copy + 'static, K: 'static>
    ErasedCallOf<C, G, K>
{
    const ERASED: &'static ErasedCall<K> = &ErasedCall {
        erased: Erased {
            allocated: std::mem::size_of::<C>() != 0,
            view: view::<C, G, HandleFn<K>>,
            free: free::<C>,
        },
        call: call_value::<C, K>,
        call_view: call_value_view::<C, K>,
    };
    /// Where a zero-sized value is kept (as `ErasedOf::STATIC`).
    const STATIC: &'static &'static ErasedCall<K> = &Self::ERASED;
}

/// Calls the value of type `C` of the callback with pointer `p`.
///
/// # Safety
/// As `view`, for a callback made by `HandleSlot::callback::<C, _>`; the value is not
/// borrowed elsewhere meanwhile.
unsafe fn call_value<C: FnMut(&K), K>(p: NonNull<()>, handle: &K) {
    // SAFETY: per the contract, the value is live, of type C, and borrowed only here.
    let value = unsafe { &mut *value_ptr::<C>(p) };
    value(handle)
}

/// Calls the value of a callback made by [`HandleSlot::callback`] with `handle`.
///
/// # Safety
/// `cb` must come from `HandleSlot::<K>::callback` (every callback in a `HandleSlot`
/// does: only a `HandleCallback` goes in), and its value be borrowed by nothing else
/// meanwhile (it is out of its slot).
#[inline(always)]
unsafe fn call_handle_fn<K: 'static>(cb: &mut Callback<HandleFn<K>>, handle: &K) {
    // SAFETY: per the contract the record is an `ErasedCall<K>`; the pointer to it
    // keeps that whole record's provenance.
    unsafe {
        let record = *cb.ptr.cast::<&'static ErasedCall<K>>().as_ptr();
        (record.call)(cb.ptr.cast(), handle)
    }
}

/// [`call_value`] with the handle given as a view (see `ErasedCall::call_view`).
///
/// # Safety
/// As `call_value`.
unsafe fn call_value_view<C: FnMut(&K), K>(p: NonNull<()>, handle: std::mem::ManuallyDrop<K>) {
    // SAFETY: per the contract, the value is live, of type C, and borrowed only here.
    let value = unsafe { &mut *value_ptr::<C>(p) };
    value(&handle)
}

/// A callback made for a [`HandleSlot`] (its record holds the call function).
pub struct HandleCallback<K: 'static>(Callback<HandleFn<K>>);

impl<K: 'static> fmt::Debug for HandleCallback<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandleCallback")
    }
}

/// The slot of a callback that takes only its handle (a timer's, an idle handle's):
/// a [`Slot`] whose callbacks are called with one indirect call, not two. 8 bytes.
pub struct HandleSlot<K: 'static> {
    slot: Slot<HandleFn<K>>,
}

impl<K: 'static> Default for HandleSlot<K> {
    fn default() -> Self {
        HandleSlot {
            slot: Slot::default(),
        }
    }
}

impl<K: 'static> fmt::Debug for HandleSlot<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleSlot")
            .field("set", &self.is_set())
            .finish()
    }
}

impl<K: 'static> HandleSlot<K> {
    /// Boxes `value` for this slot (as [`Slot::callback`]).
    ///
    /// # Safety
    /// `as_dyn` must be the closure `|p| p` (see `Callback::new`).
    #[inline(always)]
    pub unsafe fn callback<C, G>(&self, value: C, as_dyn: G) -> HandleCallback<K>
    where
        C: FnMut(&K) + 'static,
        G: Fn(*mut C) -> *mut HandleFn<K> + Copy + 'static,
    {
        coercion_captures_nothing(as_dyn);
        let erased = ErasedCallOf::<C, G, K>::ERASED;
        // SAFETY: the record is that of `C`; it starts with an `Erased` (repr(C)), and
        // the static one starts as an allocation does.
        HandleCallback(unsafe {
            Callback::with_record(
                value,
                (erased as *const ErasedCall<K>).cast(),
                NonNull::from(ErasedCallOf::<C, G, K>::STATIC).cast(),
            )
        })
    }

    /// As [`Slot::set`].
    pub fn set(&self, cb: HandleCallback<K>) {
        self.slot.set(cb.0);
    }

    /// As [`Slot::set_then`].
    #[inline]
    pub fn set_then<T, E>(
        &self,
        cb: HandleCallback<K>,
        start: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.slot.set_then(cb.0, start)
    }

    /// Takes the stored callback out.
    pub fn take(&self) -> Option<HandleCallback<K>> {
        self.slot.take().map(HandleCallback)
    }

    /// Drops the stored callback.
    pub fn clear(&self) {
        self.slot.clear();
    }

    /// Whether a callback is stored (false while it runs).
    pub fn is_set(&self) -> bool {
        self.slot.is_set()
    }

    /// Takes the stored callback out for a call (as [`Slot::take_for_call`]).
    #[inline(always)]
    pub(crate) fn take_for_call(&self) -> Option<HandleCallback<K>> {
        self.slot.take_for_call().map(HandleCallback)
    }

    /// As [`Slot::put_back`].
    #[inline(always)]
    pub(crate) fn put_back(&self, cb: HandleCallback<K>) -> Option<HandleCallback<K>> {
        self.slot.put_back(cb.0).map(HandleCallback)
    }

    /// Calls a callback taken out of a `HandleSlot<K>` with `handle`.
    #[inline(always)]
    pub(crate) fn call_taken(cb: &mut HandleCallback<K>, handle: std::mem::ManuallyDrop<K>) {
        // SAFETY: every callback in a HandleSlot was made by `HandleSlot::callback`
        // (only a `HandleCallback` goes in), whose record is an `ErasedCall<K>`; the
        // pointer to it keeps that whole record's provenance. Borrowed mutably
        // here, its value is borrowed only by this call.
        unsafe {
            let ptr = cb.0.ptr;
            let record = *ptr.cast::<&'static ErasedCall<K>>().as_ptr();
            (record.call_view)(ptr.cast(), handle)
        }
    }

    /// Calls the stored callback with `handle`, if any, and puts it back unless it
    /// was replaced (as [`Slot::call`]).
    #[inline]
    pub fn call(&self, handle: &K) {
        self.slot.call_raw(|cb| {
            // SAFETY: the callback is out of this slot, so only this call borrows it.
            unsafe { call_handle_fn(cb, handle) }
        });
    }
}

/// What a [`CallSlot`] sees its callbacks' values as: any value (the record's
/// `call` is what calls it). Its vtable names no method of the value, so the
/// value's call is made from one place, the record's function, where the compiler
/// can inline it.
trait Opaque {}
impl<T: ?Sized> Opaque for T {}

/// The record of a [`CallSlot`]'s callback: that of any callback, then the function
/// that calls the value with its handle and the event's parts `A`.
#[repr(C)]
struct ErasedWith<K: 'static, A: 'static> {
    erased: Erased<dyn Opaque>,
    /// Calls the value (with the callback's pointer) directly, the handle given as
    /// a view (as `ErasedCall::call_view`): one indirect call, inside which the
    /// event is made of its parts where the value's code sees it.
    call: unsafe fn(NonNull<()>, std::mem::ManuallyDrop<K>, &A),
}

/// The static record of value type `C` stored in a `CallSlot<K, _, A>`, where `H`
/// (zero-sized) calls a `C` with an event's parts.
#[allow(clippy::type_complexity)]
struct ErasedWithOf<C, H, K, A>(PhantomData<(fn() -> C, H, fn(&K, A))>);

impl<C, H, K, A> ErasedWithOf<C, H, K, A>
where
    C: 'static,
    H: Fn(&mut C, &K, &A) + Copy + 'static,
    K: 'static,
    A: 'static,
{
    const ERASED: &'static ErasedWith<K, A> = &ErasedWith {
        erased: Erased {
            allocated: std::mem::size_of::<C>() != 0,
            view: view_opaque::<C>,
            free: free::<C>,
        },
        call: call_with::<C, H, K, A>,
    };
    /// Where a zero-sized value is kept (as `ErasedOf::STATIC`).
    const STATIC: &'static &'static ErasedWith<K, A> = &Self::ERASED;
    /// The record of a value allocated from a loop's slab (`CallSlot::callback_in`).
    const ERASED_IN: &'static ErasedWith<K, A> = &ErasedWith {
        erased: Erased {
            allocated: true,
            view: view_opaque_in::<C>,
            free: free_in::<C>,
        },
        call: call_with_in::<C, H, K, A>,
    };
}

/// The value of type `C` of a [`CallSlot`]'s callback made by
/// `CallSlot::callback_in`, as an [`Opaque`].
///
/// # Safety
/// `p` must be the pointer of a live callback made by
/// `CallSlot::callback_in::<C, _, _>`.
unsafe fn view_opaque_in<C: 'static>(p: NonNull<()>) -> *mut dyn Opaque {
    // The value is the first field of the InSlab (`repr(C)`): the same address.
    value_ptr::<InSlab<C>>(p).cast::<C>()
}

/// [`call_with`] for a callback made by `CallSlot::callback_in` (its value in an
/// `InSlab`).
///
/// # Safety
/// As `call_with`, for a callback made by `CallSlot::callback_in::<C, _, H>`.
unsafe fn call_with_in<C, H: Fn(&mut C, &K, &A) + Copy, K, A>(
    p: NonNull<()>,
    handle: std::mem::ManuallyDrop<K>,
    args: &A,
) {
    // SAFETY: as in `call_with`.
    let call: H = unsafe { NonNull::<H>::dangling().as_ptr().read() };
    // SAFETY: per the contract, the value is live, of type C, the first field of
    // the InSlab (`repr(C)`), and borrowed only here.
    let value = unsafe { &mut *value_ptr::<InSlab<C>>(p).cast::<C>() };
    call(value, &handle, args)
}

/// The value of type `C` of a [`CallSlot`]'s callback, as an [`Opaque`].
///
/// # Safety
/// As `view`, for a callback made by `CallSlot::callback::<C, _, _>`.
unsafe fn view_opaque<C: 'static>(p: NonNull<()>) -> *mut dyn Opaque {
    value_ptr::<C>(p)
}

/// Calls the value of type `C` of the callback with pointer `p` through `H`.
///
/// # Safety
/// As `call_value`, for a callback made by `CallSlot::callback::<C, _, H>`.
unsafe fn call_with<C, H: Fn(&mut C, &K, &A) + Copy, K, A>(
    p: NonNull<()>,
    handle: std::mem::ManuallyDrop<K>,
    args: &A,
) {
    // SAFETY: H is zero-sized and Copy (checked in CallSlot::callback): a value of
    // it read from any aligned pointer is the value the slot was given.
    let call: H = unsafe { NonNull::<H>::dangling().as_ptr().read() };
    // SAFETY: per the contract, the value is live, of type C, and borrowed only here.
    let value = unsafe { &mut *value_ptr::<C>(p) };
    call(value, &handle, args)
}

/// What a [`CallSlot`] and its callbacks are for: handle `K`, callback type `F`,
/// parts `A`.
type CallMarker<K, F, A> = PhantomData<(fn(&K, A), *const F)>;

/// A callback made for a [`CallSlot`] (its record holds the call function).
pub struct CallCallback<K: 'static, F: ?Sized + 'static, A: 'static>(
    Callback<dyn Opaque>,
    CallMarker<K, F, A>,
);

impl<K: 'static, F: ?Sized + 'static, A: 'static> fmt::Debug for CallCallback<K, F, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallCallback")
    }
}

/// The slot of a callback of type `F` that its handle's trampoline calls with the
/// event's parts `A` (raw values the trampoline checked): each callback's record
/// holds a function made for its value's type that makes the event of the parts
/// and calls the value, so a call is one indirect call, and the value's code sees
/// how the event is made (what it does not look at is not made). 8 bytes.
pub struct CallSlot<K: 'static, F: ?Sized + 'static, A: 'static> {
    slot: Slot<dyn Opaque>,
    _call: CallMarker<K, F, A>,
}

impl<K: 'static, F: ?Sized + 'static, A: 'static> Default for CallSlot<K, F, A> {
    fn default() -> Self {
        CallSlot {
            slot: Slot::default(),
            _call: PhantomData,
        }
    }
}

impl<K: 'static, F: ?Sized + 'static, A: 'static> fmt::Debug for CallSlot<K, F, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallSlot")
            .field("set", &self.is_set())
            .finish()
    }
}

impl<K: 'static, F: ?Sized + 'static, A: 'static> CallSlot<K, F, A> {
    /// Boxes `value`, an `F` (`as_dyn`, the coercion `|p| p`, shows it; it is never
    /// called), for this slot, with `call`, which calls a value of its type with
    /// the handle and an event's parts (a closure that captures nothing).
    #[inline(always)]
    pub fn callback<C, G, H>(&self, value: C, as_dyn: G, call: H) -> CallCallback<K, F, A>
    where
        C: 'static,
        G: Fn(*mut C) -> *mut F + Copy + 'static,
        H: Fn(&mut C, &K, &A) + Copy + 'static,
    {
        coercion_and_call_capture_nothing(as_dyn, call);
        let erased = ErasedWithOf::<C, H, K, A>::ERASED;
        // SAFETY: the record is that of `C`; it starts with an `Erased` (repr(C)), and
        // the static one starts as an allocation does.
        CallCallback(
            unsafe {
                Callback::with_record(
                    value,
                    (erased as *const ErasedWith<K, A>).cast(),
                    NonNull::from(ErasedWithOf::<C, H, K, A>::STATIC).cast(),
                )
            },
            PhantomData,
        )
    }

    /// [`CallSlot::callback`], with the value in memory from the loop slab `slab`
    /// instead of the global allocator (a zero-sized value takes none). The
    /// allocation holds one of the slab's counts until the callback is dropped.
    ///
    /// # Safety
    /// `slab` must be a live slab of a loop of this thread (the callback is dropped
    /// on that thread: a `Callback` is neither `Send` nor `Sync`).
    #[inline(always)]
    pub(crate) unsafe fn callback_in<C, G, H>(
        &self,
        value: C,
        as_dyn: G,
        call: H,
        slab: NonNull<Slab>,
    ) -> CallCallback<K, F, A>
    where
        C: 'static,
        G: Fn(*mut C) -> *mut F + Copy + 'static,
        H: Fn(&mut C, &K, &A) + Copy + 'static,
    {
        if std::mem::size_of::<C>() == 0 {
            return self.callback(value, as_dyn, call);
        }
        coercion_and_call_capture_nothing(as_dyn, call);
        let erased = ErasedWithOf::<C, H, K, A>::ERASED_IN;
        // SAFETY: per the contract the slab is live; the record is that of an
        // `InSlab<C>` value made by `with_record_in`, and starts with an `Erased`
        // (repr(C)).
        CallCallback(
            unsafe {
                Callback::with_record_in(value, (erased as *const ErasedWith<K, A>).cast(), slab)
            },
            PhantomData,
        )
    }

    /// As [`Slot::set`].
    pub fn set(&self, cb: CallCallback<K, F, A>) {
        self.slot.set(cb.0);
    }

    /// As [`Slot::set_then`].
    #[inline]
    pub fn set_then<T, E>(
        &self,
        cb: CallCallback<K, F, A>,
        start: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.slot.set_then(cb.0, start)
    }

    /// Takes the stored callback out.
    pub fn take(&self) -> Option<CallCallback<K, F, A>> {
        self.slot.take().map(|c| CallCallback(c, PhantomData))
    }

    /// Drops the stored callback.
    pub fn clear(&self) {
        self.slot.clear();
    }

    /// Whether a callback is stored (false while it runs).
    pub fn is_set(&self) -> bool {
        self.slot.is_set()
    }

    /// Takes the stored callback out for a call (as [`Slot::take_for_call`]).
    #[inline(always)]
    pub(crate) fn take_for_call(&self) -> Option<CallCallback<K, F, A>> {
        self.slot
            .take_for_call()
            .map(|c| CallCallback(c, PhantomData))
    }

    /// As [`Slot::put_back`].
    #[inline(always)]
    pub(crate) fn put_back(&self, cb: CallCallback<K, F, A>) -> Option<CallCallback<K, F, A>> {
        self.slot
            .put_back(cb.0)
            .map(|c| CallCallback(c, PhantomData))
    }

    /// Calls a callback taken out of a `CallSlot<K, F, A>` with `handle` and `args`.
    #[inline(always)]
    pub(crate) fn call_taken(
        cb: &mut CallCallback<K, F, A>,
        handle: std::mem::ManuallyDrop<K>,
        args: &A,
    ) {
        // SAFETY: every callback in a CallSlot was made by `CallSlot::callback`
        // (only a `CallCallback` goes in), whose record is an `ErasedWith<K, A>`;
        // the pointer to it keeps that whole record's provenance. Borrowed mutably
        // here, its value is borrowed only by this call.
        unsafe {
            let ptr = cb.0.ptr;
            let record = *ptr.cast::<&'static ErasedWith<K, A>>().as_ptr();
            (record.call)(ptr.cast(), handle, args)
        }
    }
}

impl<K: 'static, F: ?Sized + 'static, A: 'static> CallSlot<K, F, A> {
    /// Calls a callback taken out of a `CallSlot<K, F, A>` whose value is known to
    /// be a `C`, through `H` (zero-sized, like the record's call; not necessarily
    /// the record's: a caller that knows more of its `args` may call the value its
    /// own way), directly: no look at the record, so the value's code can be
    /// compiled into the caller's.
    ///
    /// # Safety
    /// `cb` was made by `CallSlot::callback::<C, _, _>` (its value is a `C`); `H`
    /// may rely on no more about `args` than the caller guarantees.
    #[inline(always)]
    pub(crate) unsafe fn call_taken_as<C, H>(
        cb: &mut CallCallback<K, F, A>,
        handle: std::mem::ManuallyDrop<K>,
        args: &A,
    ) where
        C: 'static,
        H: Fn(&mut C, &K, &A) + Copy + 'static,
    {
        const {
            assert!(
                std::mem::size_of::<H>() == 0,
                "the call must capture nothing"
            )
        };
        // SAFETY: per the contract, the callback's value is a `C` (made by
        // `callback`, in its allocation or, zero-sized, with its static record, as
        // `call_with` finds it); H is zero-sized (checked above). Borrowed mutably
        // here, the value is borrowed only by this call.
        unsafe { call_with::<C, H, K, A>(cb.0.ptr.cast(), handle, args) }
    }
}

impl<F: ?Sized + 'static> fmt::Debug for Slot<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot").field("set", &self.is_set()).finish()
    }
}

/// Drops a panic payload, catching a panic of its own Drop a few rounds deep; what
/// still panics after that is forgotten.
pub(crate) fn drop_quietly(p: Box<dyn std::any::Any + Send>) {
    let mut p = p;
    for _ in 0..8 {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(p))) {
            Ok(()) => return,
            Err(again) => p = again,
        }
    }
    std::mem::forget(p);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    type Cb = dyn FnMut(u32) -> u32;

    fn boxed<C: FnMut(u32) -> u32 + 'static>(slot: &Slot<Cb>, c: C) -> Callback<Cb> {
        // SAFETY: `|p| p` is the unsizing coercion.
        unsafe { slot.callback(c, |p| p) }
    }

    /// Counts its drops; zero-sized.
    struct Dropped;
    thread_local!(static DROPS: Cell<u32> = const { Cell::new(0) });
    impl Drop for Dropped {
        fn drop(&mut self) {
            DROPS.with(|d| d.set(d.get() + 1));
        }
    }

    #[test]
    fn a_callback_is_one_pointer_and_calls_what_it_holds() {
        assert_eq!(
            std::mem::size_of::<Slot<Cb>>(),
            std::mem::size_of::<usize>()
        );
        let slot = Slot::<Cb>::default();
        let mut total = 0;
        slot.set(boxed(&slot, move |x| {
            total += x;
            total
        }));
        let mut seen = Vec::new();
        for x in [1, 2, 3] {
            slot.call(|f| seen.push(f(x)));
        }
        assert_eq!(seen, [1, 3, 6]);
    }

    #[test]
    fn captured_values_are_dropped_once_zero_sized_or_not() {
        let slot = Slot::<Cb>::default();
        let rc = Rc::new(());
        let held = rc.clone();
        slot.set(boxed(&slot, move |x| x + Rc::strong_count(&held) as u32));
        let mut got = 0;
        slot.call(|f| got = f(1));
        assert_eq!(got, 3);
        slot.clear();
        assert_eq!(Rc::strong_count(&rc), 1);

        DROPS.with(|d| d.set(0));
        let token = Dropped;
        assert_eq!(std::mem::size_of_val(&token), 0);
        let c = boxed(&slot, move |x| {
            let _ = &token;
            x
        });
        slot.set(c);
        slot.call(|f| got = f(7));
        assert_eq!((got, DROPS.with(Cell::get)), (7, 0));
        slot.clear();
        assert_eq!(DROPS.with(Cell::get), 1);
    }

    #[test]
    fn a_panicking_drop_still_frees_the_callback() {
        struct Loud(#[allow(dead_code)] u64);
        impl Drop for Loud {
            fn drop(&mut self) {
                panic!("drop");
            }
        }
        let slot = Slot::<Cb>::default();
        let loud = Loud(1);
        slot.set(boxed(&slot, move |x| {
            let _ = &loud;
            x
        }));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slot.clear()));
        assert!(r.is_err());
        assert!(!slot.is_set());
        // That its memory is freed too is checked under valgrind (tests/valgrind.sh)
        // by the attacks suite's panicking allocator and callback drops.
    }

    #[test]
    fn a_callback_allocated_where_ours_was_is_not_taken_for_ours() {
        // `start` replaces ours twice (freeing it), then fails: the last callback
        // stays, even if its allocation reuses our address.
        let slot = Rc::new(Slot::<Cb>::default());
        slot.set(boxed(&slot, |x| x + 1));
        let big = [7u64; 4];
        let s2 = slot.clone();
        let r: Result<(), ()> = slot.set_then(boxed(&slot, move |x| x + big[0] as u32), || {
            s2.set(boxed(&s2, move |x| x + 2 * big[1] as u32));
            s2.set(boxed(&s2, move |x| x + 3 * big[2] as u32));
            Err(())
        });
        assert_eq!(r, Err(()));
        let mut got = 0;
        slot.call(|f| got = f(0));
        assert_eq!(
            got, 21,
            "the callback the failed start's user code stored stays"
        );
    }

    #[test]
    fn over_aligned_captures_keep_their_alignment() {
        #[repr(align(64))]
        struct Wide(u32);
        let slot = Slot::<Cb>::default();
        let w = Wide(40);
        slot.set(boxed(&slot, move |x| {
            assert_eq!(std::ptr::addr_of!(w) as usize % 64, 0);
            w.0 + x
        }));
        let mut got = 0;
        slot.call(|f| got = f(2));
        assert_eq!(got, 42);
    }

    #[test]
    fn a_failed_start_puts_the_previous_callback_back() {
        let slot = Slot::<Cb>::default();
        slot.set(boxed(&slot, |x| x + 1));
        let r: Result<(), ()> = slot.set_then(boxed(&slot, |x| x + 100), || Err(()));
        assert_eq!(r, Err(()));
        let mut got = 0;
        slot.call(|f| got = f(1));
        assert_eq!(got, 2);
        let r: Result<(), ()> = slot.set_then(boxed(&slot, |x| x + 100), || Ok(()));
        assert_eq!(r, Ok(()));
        slot.call(|f| got = f(1));
        assert_eq!(got, 101);
    }
    #[test]
    fn a_call_slot_makes_the_event_of_its_parts_and_lets_the_callback_replace_itself() {
        // The "handle" is the slot itself; the parts are a number, the event its
        // double, made by the slot's call function.
        type F = dyn FnMut(&H, u64);
        struct H(CallSlot<H, F, u64>);
        fn call<C: FnMut(&H, u64)>(c: &mut C, h: &H, parts: &u64) {
            c(h, *parts * 2)
        }
        fn boxed<C: FnMut(&H, u64) + 'static>(h: &H, c: C) -> CallCallback<H, F, u64> {
            h.0.callback(c, |p| p, call::<C>)
        }
        fn run(h: &H, parts: u64) {
            let Some(mut cb) = h.0.take_for_call() else {
                return;
            };
            CallSlot::call_taken(
                &mut cb,
                std::mem::ManuallyDrop::new(H(CallSlot::default())),
                &parts,
            );
            if let Some(old) = h.0.put_back(cb) {
                drop(old);
            }
        }
        assert_eq!(
            std::mem::size_of::<CallSlot<H, F, u64>>(),
            std::mem::size_of::<usize>()
        );
        thread_local!(static SEEN: Cell<u64> = const { Cell::new(0) });
        let h = H(CallSlot::default());
        let rc = Rc::new(());
        let held = rc.clone();
        h.0.set(boxed(&h, move |_, e| {
            let _ = &held;
            SEEN.with(|s| s.set(s.get() + e));
        }));
        run(&h, 5);
        run(&h, 1);
        assert_eq!(SEEN.with(Cell::get), 12);
        assert!(h.0.is_set());
        // Replaced by a zero-sized one: the first is dropped, the new one stays.
        h.0.set(boxed(&h, |_, e| SEEN.with(|s| s.set(s.get() + 100 * e))));
        assert_eq!(Rc::strong_count(&rc), 1);
        run(&h, 1);
        assert_eq!(SEEN.with(Cell::get), 212);
        // A failed start puts the previous callback back.
        let r: Result<(), ()> =
            h.0.set_then(boxed(&h, |_, _| SEEN.with(|s| s.set(0))), || Err(()));
        assert_eq!(r, Err(()));
        run(&h, 1);
        assert_eq!(SEEN.with(Cell::get), 412);
        h.0.clear();
        assert!(!h.0.is_set());
        run(&h, 1);
        assert_eq!(SEEN.with(Cell::get), 412);
    }

    #[test]
    fn a_handle_slot_calls_its_callback_directly_and_lets_it_replace_itself() {
        // The "handle" is the slot itself, so the callback can replace itself.
        struct H(HandleSlot<H>);
        let h = H(HandleSlot::default());
        assert_eq!(
            std::mem::size_of::<HandleSlot<H>>(),
            std::mem::size_of::<usize>()
        );
        thread_local!(static SEEN: Cell<u32> = const { Cell::new(0) });
        // Zero-sized: replaces itself with an allocated one that counts by 10.
        let first = |h: &H| {
            SEEN.with(|s| s.set(s.get() + 1));
            let rc = Rc::new(10);
            // SAFETY: `|p| p` is the unsizing coercion.
            h.0.set(unsafe {
                h.0.callback(move |_: &H| SEEN.with(|s| s.set(s.get() + *rc)), |p| p)
            });
        };
        // SAFETY: as above.
        let zst = unsafe { h.0.callback(first, |p| p) };
        h.0.set(zst);
        h.0.call(&h);
        assert!(h.0.is_set());
        h.0.call(&h);
        h.0.call(&h);
        assert_eq!(SEEN.with(Cell::get), 21);
        assert!(h.0.take().is_some());
        h.0.call(&h);
        assert_eq!(SEEN.with(Cell::get), 21);
        // A failed start puts the previous callback back.
        // SAFETY: as above.
        h.0.set(unsafe {
            h.0.callback(|_: &H| SEEN.with(|s| s.set(s.get() + 100)), |p| p)
        });
        let r: Result<(), ()> =
            // SAFETY: as above.
            h.0.set_then(unsafe { h.0.callback(|_: &H| SEEN.with(|s| s.set(0)), |p| p) }, || Err(()));
        assert_eq!(r, Err(()));
        h.0.call(&h);
        assert_eq!(SEEN.with(Cell::get), 121);
        h.0.clear();
        assert!(!h.0.is_set());
    }
}
