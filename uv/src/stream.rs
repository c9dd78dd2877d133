//! Stream operations shared by TCP, pipes and TTYs. Generated stream types carry
//! [`StreamSlots`] and call these functions from thin generated methods.
//!
//! Reads land in one loop-owned buffer (no allocation per read) and reach the
//! callback as `&[u8]`; end of stream arrives as an error with `StatusCode::EOF`.

use std::cell::Cell;
use std::ffi::c_int;
use std::ptr::NonNull;
use std::rc::Rc;

use libuv_sys2 as sys;

use crate::callback::{CallSlot, Slot};
use crate::contracts;
use crate::error::{check, Error, Result};
use crate::handle::{dispatch_with, HandleKind, Typed};
use crate::loop_::LoopShared;
use crate::StatusCode;

type ReadCallback<K> = dyn FnMut(&K, Result<&[u8]>);
type ConnectionCallback<K> = dyn FnMut(&K, Result<()>);

/// A read event as the read trampoline passes it to the callback's record, which
/// makes the callback's `Result` of it where the callback's code is (see
/// [`CallSlot`]): libuv's count, and the start of the buffer it read into.
struct ReadParts {
    nread: isize,
    base: *const u8,
}

/// The read callback's slot: one indirect call per read.
type ReadSlot<K> = CallSlot<K, ReadCallback<K>, ReadParts>;
/// The connection callback's slot (its parts: libuv's status).
type ConnectionSlot<K> = CallSlot<K, ConnectionCallback<K>, c_int>;

/// What a stream handle reads from, and how it is told of connections, and the
/// tracker of its write futures: 48 bytes, the state of `read_start_with` (rarely
/// used) kept out of line.
pub struct StreamSlots<K: 'static> {
    read: ReadSlot<K>,
    connection: ConnectionSlot<K>,
    /// Made by the first `read_start_with`, kept until the handle is dropped (user
    /// code the allocator runs may hold a reference to it: it never goes away
    /// while the handle is in libuv; `clear` empties it).
    /// (Dropped by `StreamSlots`' Drop, which tests it inline.)
    custom: std::mem::ManuallyDrop<std::cell::OnceCell<Box<CustomRead>>>,
    /// The tracker of the stream's write futures, made by the first write made
    /// through one (null before), which the handle keeps until its close
    /// callback ran (`keep_with`: nothing here to drop; read only while the
    /// stream is open or by its write callbacks, which run before that).
    writes: Cell<*const crate::future::StreamWrites>,
}

impl<K> Drop for StreamSlots<K> {
    #[inline]
    fn drop(&mut self) {
        if let Some(c) = self.custom.take() {
            drop_custom(c);
        }
    }
}

/// Frees the state of `read_start_with` (out of the handles' common path).
#[cold]
#[inline(never)]
fn drop_custom(c: Box<CustomRead>) {
    drop(c);
}

/// The allocator of `read_start_with` and its buffers.
struct CustomRead {
    allocator: Slot<dyn ReadAllocator>,
    /// The allocator's next buffer, fetched ahead: libuv's allocation callback runs
    /// inside libuv's read loop, where user code must not run (a `read_stop` or
    /// `close` there leaves libuv calling a NULL read callback), so the allocator is
    /// asked before `uv_read_start` and after each read callback instead.
    next: Cell<Option<Box<[u8]>>>,
    /// The buffer lent to libuv for the read in progress, with its length as
    /// allocated (libuv may clamp the length it reports).
    lent: Cell<Option<(NonNull<u8>, usize)>>,
}

impl<K> Default for StreamSlots<K> {
    #[inline]
    fn default() -> Self {
        StreamSlots {
            read: CallSlot::default(),
            connection: CallSlot::default(),
            custom: std::mem::ManuallyDrop::new(std::cell::OnceCell::new()),
            writes: Cell::new(std::ptr::null()),
        }
    }
}

impl<K> StreamSlots<K> {
    /// The cell of the stream's write-future tracker (see `writes`).
    #[inline(always)]
    pub(crate) fn writes(&self) -> &Cell<*const crate::future::StreamWrites> {
        &self.writes
    }

    /// Drops the callbacks and the allocator's buffers.
    ///
    /// # Safety
    /// As `Slots::clear`: libuv calls none of the stream's callbacks any more and
    /// none of them runs (a read callback may be reading from the buffer lent for
    /// its read, which this frees).
    #[inline]
    pub unsafe fn clear(&self) {
        self.read.clear();
        self.connection.clear();
        if let Some(c) = self.custom.get() {
            // SAFETY: per this function's contract.
            unsafe { c.clear() };
        }
    }

    /// Whether something is stored: a callback, or the state of
    /// `read_start_with` (which stays until the slots are dropped).
    #[inline]
    pub fn is_set(&self) -> bool {
        self.read.is_set() || self.connection.is_set() || self.custom.get().is_some()
    }

    /// The state of `read_start_with`, made on first use.
    fn custom(&self) -> &CustomRead {
        self.custom.get_or_init(|| {
            Box::new(CustomRead {
                allocator: Slot::default(),
                next: Cell::new(None),
                lent: Cell::new(None),
            })
        })
    }
}

impl CustomRead {
    /// Drops the allocator and its buffers.
    ///
    /// # Safety
    /// As `StreamSlots::clear`.
    #[cold]
    unsafe fn clear(&self) {
        self.allocator.clear();
        drop(self.next.take());
        if let Some((p, len)) = self.lent.take() {
            // SAFETY: a lent buffer came from Box::into_raw of `len` bytes; libuv
            // no longer uses it (the handle is closed).
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p.as_ptr(), len)) });
        }
    }

    /// Asks the allocator for the next buffer (user code: call only where user code
    /// may run, under the loop's panic guard).
    fn fetch_next(&self, suggested: usize) {
        let mut got = None;
        self.allocator.call(|a| got = a.allocate(suggested));
        if let Some(b) = got.filter(|b| !b.is_empty()) {
            drop(self.next.replace(Some(b)));
        }
    }
}

/// Where a stream's reads land, for `read_start_with`. Without one, reads land in
/// the loop's shared buffer (no allocation per read), which suits callbacks that
/// consume the bytes at once.
pub trait ReadAllocator: 'static {
    /// A buffer for the next read; libuv suggests a size. `None` or an empty
    /// buffer makes the read fail with `ENOBUFS`.
    fn allocate(&mut self, suggested: usize) -> Option<Box<[u8]>>;

    /// The buffer back after the read callback saw it, for reuse.
    fn release(&mut self, buf: Box<[u8]>) {
        drop(buf);
    }
}

/// Reuses a small pool of fixed-size buffers.
#[derive(Debug)]
pub struct PoolAllocator {
    size: usize,
    free: Vec<Box<[u8]>>,
    max_free: usize,
}

impl PoolAllocator {
    /// Buffers of `size` bytes; at most `max_free` are kept for reuse.
    pub fn new(size: usize, max_free: usize) -> Self {
        PoolAllocator {
            size: size.max(1),
            free: Vec::new(),
            max_free,
        }
    }

    /// Buffers kept for reuse now.
    pub fn free_buffers(&self) -> usize {
        self.free.len()
    }
}

impl ReadAllocator for PoolAllocator {
    fn allocate(&mut self, _suggested: usize) -> Option<Box<[u8]>> {
        Some(
            self.free
                .pop()
                .unwrap_or_else(|| vec![0; self.size].into_boxed_slice()),
        )
    }

    fn release(&mut self, buf: Box<[u8]>) {
        if self.free.len() < self.max_free && buf.len() == self.size {
            self.free.push(buf);
        }
    }
}

impl<K> std::fmt::Debug for StreamSlots<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSlots")
            .field("read", &self.read.is_set())
            .field("connection", &self.connection.is_set())
            .finish()
    }
}

/// A handle type whose libuv struct is a `uv_stream_t` (implemented by generated code).
///
/// # Safety
/// `Raw` must start with the `uv_stream_t` fields.
pub unsafe trait StreamKind: HandleKind + Clone {
    /// The stream slots inside the type's slots.
    fn stream_slots(slots: &Self::Slots) -> &StreamSlots<Self>;
}

/// The stream operations: reading, writing, shutting down, listening and accepting.
/// Every stream handle type has them (`Tcp`, `Pipe`, `Tty`, and stream types a spec
/// declares with `parent = "stream"`), so one function can serve all of them:
///
/// ```
/// use uv::{Loop, RunMode, Stream, Tcp};
///
/// // Writes a greeting on any stream, then shuts its write side down.
/// fn greet<S: Stream>(s: &S) -> uv::Result<()> {
///     s.write(b"hello\n", |s, r| {
///         r.unwrap();
///         s.shutdown(|_, r| r.unwrap()).unwrap();
///     })
/// }
///
/// let lp = Loop::new()?;
/// let server = Tcp::new(&lp)?;
/// server.bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())?;
/// server.listen(8, |server, status| {
///     status.unwrap();
///     let conn = server.accept().unwrap();
///     greet(&conn).unwrap();
///     server.close();
/// })?;
/// let client = Tcp::new(&lp)?;
/// let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let sink = got.clone();
/// client.connect(server.local_addr()?, move |c, r| {
///     r.unwrap();
///     c.read_start(move |c, data| match data {
///         Ok(bytes) => sink.borrow_mut().extend_from_slice(bytes),
///         Err(_) => c.close(), // end of stream
///     })
///     .unwrap();
/// })?;
/// lp.run(RunMode::Default)?;
/// assert_eq!(&got.borrow()[..], b"hello\n");
/// # Ok::<(), uv::Error>(())
/// ```
pub trait Stream: StreamKind + std::ops::Deref<Target = crate::Handle> {
    /// Starts reading (`uv_read_start`): `callback` gets each chunk, borrowed from
    /// the loop's read buffer, and an error with `StatusCode::EOF` at the end of the
    /// stream. `EALREADY` on a stream that is reading (`read_stop` first); `EINVAL`
    /// on a listening one.
    ///
    /// On an IPC pipe (Linux, Android), a message whose handles cannot all be
    /// received is reported once, before its bytes (and the handles that fit;
    /// bytes sent before it may come after the report), as an error that does not
    /// end reading (the message waits on the socket for the next read, also when
    /// the callback stops reading): `EMSGSIZE` for a message of more descriptors
    /// than libuv takes from one (60;
    /// libuv sends one per message, another program may send more), `EMFILE` when
    /// the process has no descriptor left for them. The handles that did arrive
    /// wait for `accept` as usual. (Each read of an IPC pipe looks at the message
    /// first, with `MSG_PEEK`: one more system call per read.)
    fn read_start(&self, callback: impl FnMut(&Self, Result<&[u8]>) + 'static) -> Result<()> {
        read_start(self, callback)
    }

    /// Starts reading into buffers from `allocator` (`uv_read_start`), for callers
    /// that want another buffer strategy than the loop's shared buffer.
    fn read_start_with(
        &self,
        allocator: impl ReadAllocator,
        callback: impl FnMut(&Self, Result<&[u8]>) + 'static,
    ) -> Result<()> {
        read_start_with(self, allocator, callback)
    }

    /// Stops reading (`uv_read_stop`) and drops the read callback (with what it
    /// captured; called from inside it, once it returns): a later
    /// [`read_start`](Stream::read_start) gives the next one. A no-op on a closed
    /// stream.
    fn read_stop(&self) -> Result<()> {
        read_stop(self)
    }

    /// Writes `data` (`uv_write`): one buffer or several, owned by the request until
    /// `callback` runs with the result. Writes complete in order.
    #[inline]
    fn write(
        &self,
        data: impl Into<WriteData>,
        callback: impl FnOnce(&Self, Result<()>) + 'static,
    ) -> Result<()> {
        write(self, data.into(), callback)
    }

    /// Writes `data` as [`write`](Stream::write) does, and `callback` also gets the
    /// number of bytes written (`uv_write_nwritten`): all of them on success; on an
    /// error, those the system took before it (so that a caller can tell what the
    /// peer may have received).
    fn write_counted(
        &self,
        data: impl Into<WriteData>,
        callback: impl FnOnce(&Self, Result<()>, usize) + 'static,
    ) -> Result<()> {
        write_counted(self, data.into(), callback)
    }

    /// Writes `data` and sends the stream `send` with it over an IPC pipe
    /// (`uv_write2`). `send` must be of the same loop (`EINVAL`). On Unix the
    /// handle goes with libuv's first send of `data`, which must carry bytes
    /// (`EINVAL` for empty data, or data of many buffers whose first `IOV_MAX`,
    /// 1024 on Linux, are empty): a send of no bytes carries no handle, and libuv
    /// would report it sent.
    fn write2<S: Stream>(
        &self,
        data: impl Into<WriteData>,
        send: &S,
        callback: impl FnOnce(&Self, Result<()>) + 'static,
    ) -> Result<()> {
        write2(self, data.into(), send, callback)
    }

    /// Writes what can be written at once (`uv_try_write`): the number of bytes
    /// written, or an `EAGAIN` error.
    fn try_write(&self, data: &[u8]) -> Result<usize> {
        try_write(self, data)
    }

    /// Writes what can be written at once and sends the stream `send` with it over
    /// an IPC pipe (`uv_try_write2`): the number of bytes written, or `EAGAIN`
    /// (writes queued, or the socket full). `EINVAL` unless this is an IPC pipe or
    /// when `send` is of another loop, and on Unix for empty `data` (the handle
    /// goes with the first bytes, as for `write2`); `EBADF` when `send` has no
    /// descriptor.
    fn try_write2<S: Stream>(&self, data: &[u8], send: &S) -> Result<usize> {
        try_write2(self, data, send)
    }

    /// Shuts the write side down once queued writes are done (`uv_shutdown`);
    /// `EALREADY` while a connect is in flight (shut down from its callback).
    fn shutdown(&self, callback: impl FnOnce(&Self, Result<()>) + 'static) -> Result<()> {
        shutdown(self, callback)
    }

    /// Listens for connections (`uv_listen`): `callback` runs for each one; take it
    /// with [`accept`](Stream::accept). `EINVAL` when already listening, while
    /// reading (`read_stop` first), or with a connect, write or shutdown in flight, or on a descriptor in blocking mode (or
    /// given to a child process as `Stdio::Stream`, which may make it so), or on a
    /// socket that has another descriptor in this process (a `try_clone` of a
    /// `std::net::TcpListener` made before [`Tcp::open`](crate::Tcp::open), say:
    /// drop it first; a shutdown through it would make libuv abort); a
    /// listening stream then takes no reads, writes, shutdowns or blocking mode
    /// (`EINVAL`).
    ///
    /// At the process's descriptor limit, libuv accepts and closes pending
    /// connections itself (so the loop does not spin on them): their peers see the
    /// connection closed, and `callback` is not called for them. That takes the
    /// descriptor libuv keeps in reserve for its loop; a loop that has none (its
    /// stream handles were made at the limit) gets it here, and the listen is
    /// `EMFILE` when it cannot be opened.
    fn listen(
        &self,
        backlog: i32,
        callback: impl FnMut(&Self, Result<()>) + 'static,
    ) -> Result<()> {
        listen(self, backlog, callback)
    }

    /// Accepts a pending connection as a new stream of the server's type on its loop
    /// (`uv_accept`), with the connection's socket. `EAGAIN` when none is pending
    /// (no handle is made then). An IPC pipe's received handles, which may be of
    /// another type, are taken with [`accept_into`](Stream::accept_into). A pipe
    /// an IPC pipe received is made with IPC when it is a socket, without when it
    /// is a FIFO (which cannot pass handles).
    fn accept(&self) -> Result<Self> {
        accept_new(self)
    }

    /// Accepts a pending connection into `client`, a new stream on the same loop
    /// (`uv_accept`). Refused before libuv sees it, with the connection left
    /// pending: `EAGAIN` when none is pending, `EINVAL` for a client of another loop
    /// or of the wrong type (for an IPC pipe: not of `pending_type`), `EBUSY` for a
    /// client that has a socket, `EINVAL` for an IPC pipe client when the received
    /// pipe is a FIFO or a terminal (handles pass over sockets only; take it into a
    /// pipe without IPC).
    fn accept_into<C: Stream>(&self, client: &C) -> Result<()> {
        accept(self, client)
    }

    /// Whether the stream can be read (`uv_is_readable`); false once closing.
    fn is_readable(&self) -> bool {
        is_readable(self)
    }

    /// Whether the stream can be written (`uv_is_writable`); false once closing.
    fn is_writable(&self) -> bool {
        is_writable(self)
    }

    /// Makes writes blocking or not (`uv_stream_set_blocking`). `EINVAL` for
    /// blocking while reading or listening, and while a socket that entered the
    /// handle from outside libuv (`open`, or received over an IPC pipe) has another
    /// descriptor in this process: another handle may be reading it, and the mode
    /// belongs to the open file they share.
    fn set_blocking(&self, blocking: bool) -> Result<()> {
        set_blocking(self, blocking)
    }

    /// Bytes queued for writing (`uv_stream_get_write_queue_size`); 0 once closing.
    fn write_queue_size(&self) -> usize {
        write_queue_size(self)
    }
}

impl<K: StreamKind + std::ops::Deref<Target = crate::Handle>> Stream for K {}

fn raw<K: StreamKind>(s: &K, op: &'static str) -> Result<*mut sys::uv_stream_t> {
    s.typed().raw(op).map(|r| r.cast())
}

/// Data to write, kept by the request until the write completes. Owned buffers
/// move in without a copy; `&[u8]` and `&str` are copied (up to 15 bytes into the
/// value itself, with no allocation); `Static` and `Shared` are never copied (use
/// them to write the same bytes many times).
#[derive(Debug)]
#[non_exhaustive]
pub enum WriteData {
    /// One owned buffer.
    One(Vec<u8>),
    /// Several owned buffers, written in order as one write.
    Many(Vec<Vec<u8>>),
    /// Bytes that live for the whole program.
    Static(&'static [u8]),
    /// Bytes shared with other writes (a reference count, no copy).
    Shared(std::rc::Rc<[u8]>),
    /// Bytes shared with other writes and threads (an atomic reference count, no
    /// copy).
    SharedSync(std::sync::Arc<[u8]>),
    /// A `bytes::Bytes` (no copy), with the `bytes` feature.
    #[cfg(feature = "bytes")]
    Bytes(bytes::Bytes),
    /// A few bytes copied in (from `&[u8]` or `&str`), kept inside the value: no
    /// allocation of their own (a stream write keeps them in its request).
    #[doc(hidden)]
    Inline(InlineBytes),
}

/// Up to [`INLINE_WRITE`] bytes copied from a `&[u8]` or `&str`, kept inside the
/// value (and so inside the write request) instead of a heap allocation of their
/// own. Made by the `From` conversions only.
#[doc(hidden)]
pub struct InlineBytes {
    len: u8,
    bytes: [u8; INLINE_WRITE],
}

/// The most bytes a `&[u8]` write keeps inline.
const INLINE_WRITE: usize = 15;

// The inline variant is no larger than `One`: `WriteData` does not grow for it.
const _: () = assert!(std::mem::size_of::<InlineBytes>() <= std::mem::size_of::<Vec<u8>>());

impl InlineBytes {
    #[inline]
    fn new(v: &[u8]) -> Option<InlineBytes> {
        if v.len() > INLINE_WRITE {
            return None;
        }
        let mut bytes = [0u8; INLINE_WRITE];
        bytes[..v.len()].copy_from_slice(v);
        Some(InlineBytes {
            len: v.len() as u8,
            bytes,
        })
    }

    /// The bytes, inside the value.
    #[inline]
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for InlineBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

/// libuv's view of the buffers: libuv copies this array into the request, so it
/// only lives for the call. One buffer needs no allocation.
pub(crate) enum Bufs {
    One([sys::uv_buf_t; 1]),
    Many(Vec<sys::uv_buf_t>),
}

impl Bufs {
    pub(crate) fn as_ptr(&self) -> *const sys::uv_buf_t {
        match self {
            Bufs::One(b) => b.as_ptr(),
            Bufs::Many(v) => v.as_ptr(),
        }
    }

    /// How many buffers: `None` past `u32::MAX`, more than libuv's `nbufs` can
    /// say (a write of that many would lose the rest).
    pub(crate) fn len(&self) -> Option<u32> {
        match self {
            Bufs::One(_) => Some(1),
            Bufs::Many(v) => u32::try_from(v.len()).ok(),
        }
    }
}

impl WriteData {
    /// The bytes, when they are one buffer (the common case, with no `Bufs` to
    /// build and drop), or the buffers of `Many`. `Inline` bytes are inside the
    /// value.
    #[inline]
    fn parts(&self) -> std::result::Result<&[u8], &[Vec<u8>]> {
        Ok(match self {
            WriteData::One(v) => v,
            WriteData::Static(v) => v,
            WriteData::Shared(v) => v,
            WriteData::SharedSync(v) => v,
            #[cfg(feature = "bytes")]
            WriteData::Bytes(v) => v,
            WriteData::Inline(b) => b.as_slice(),
            WriteData::Many(vs) => return Err(vs),
        })
    }

    /// Whether libuv's first send of the data carries no bytes: it takes up to
    /// `IOV_MAX` buffers (`uv__getiovmax`), and all of those are empty.
    #[cfg(unix)]
    fn first_send_is_empty(&self) -> bool {
        match self.parts() {
            Ok(v) => v.is_empty(),
            Err(vs) => {
                // SAFETY: `sysconf` only reads a limit of the system.
                let max = unsafe { libc::sysconf(libc::_SC_IOV_MAX) };
                let max = usize::try_from(max).ok().filter(|&m| m > 0).unwrap_or(1);
                vs.iter().take(max).all(|v| v.is_empty())
            }
        }
    }

    /// libuv's view of the buffers (libuv only reads the bytes). Valid while the
    /// value stays where it is: `Inline` bytes are pointed at inside it (a value that
    /// moves after its view is taken is made [`movable`](WriteData::movable) first).
    #[inline]
    pub(crate) fn bufs(&self) -> Bufs {
        match self.parts() {
            Ok(v) => Bufs::One([uv_buf(v)]),
            Err(vs) => Bufs::Many(vs.iter().map(|v| uv_buf(v)).collect()),
        }
    }

    /// The same data with nothing inside the value itself (`Inline` bytes go to a
    /// `Vec`), so that a view of it stays valid when the value moves.
    pub(crate) fn movable(self) -> WriteData {
        match self {
            WriteData::Inline(b) => WriteData::One(b.as_slice().to_vec()),
            d => d,
        }
    }
}

impl From<std::rc::Rc<[u8]>> for WriteData {
    fn from(v: std::rc::Rc<[u8]>) -> Self {
        WriteData::Shared(v)
    }
}

impl From<std::sync::Arc<[u8]>> for WriteData {
    fn from(v: std::sync::Arc<[u8]>) -> Self {
        WriteData::SharedSync(v)
    }
}

#[cfg(feature = "bytes")]
impl From<bytes::Bytes> for WriteData {
    fn from(v: bytes::Bytes) -> Self {
        WriteData::Bytes(v)
    }
}

impl From<Box<[u8]>> for WriteData {
    fn from(v: Box<[u8]>) -> Self {
        WriteData::One(v.into_vec())
    }
}

impl From<Vec<u8>> for WriteData {
    fn from(v: Vec<u8>) -> Self {
        WriteData::One(v)
    }
}

impl From<&[u8]> for WriteData {
    #[inline]
    fn from(v: &[u8]) -> Self {
        match InlineBytes::new(v) {
            Some(b) => WriteData::Inline(b),
            None => WriteData::One(v.to_vec()),
        }
    }
}

impl<const N: usize> From<&[u8; N]> for WriteData {
    #[inline]
    fn from(v: &[u8; N]) -> Self {
        WriteData::from(&v[..])
    }
}

impl From<&str> for WriteData {
    #[inline]
    fn from(v: &str) -> Self {
        WriteData::from(v.as_bytes())
    }
}

impl From<String> for WriteData {
    fn from(v: String) -> Self {
        WriteData::One(v.into_bytes())
    }
}

impl From<Vec<Vec<u8>>> for WriteData {
    fn from(v: Vec<Vec<u8>>) -> Self {
        WriteData::Many(v)
    }
}

/// The loop's read buffer: one per loop, lent to one read at a time.
pub(crate) struct ReadBuffer {
    /// Never read here: libuv writes into it, and a callback reads only the bytes
    /// libuv says it wrote, so it is not initialised (no 64 KiB of zeroes per
    /// loop). Replaced (grown) only while it is home, or by `adopt`. A boxed slice
    /// (from `Box::into_raw`, freed by `Drop`) kept as a raw pointer, so that
    /// replacing it never moves a `Box` over memory a read callback borrows.
    buf: Cell<NonNull<[std::mem::MaybeUninit<u8>]>>,
    /// What the next lend hands out: the buffer's start while it is home, null
    /// while it is lent out. (A boxed slice's pointer is never null, empty or not.)
    base: Cell<*mut u8>,
    /// The buffer's length while it is home, 0 while it is lent out: one test of
    /// the length sends both a lent buffer and a too small one to the slow path.
    len: Cell<usize>,
}

/// Size of the loop's read buffer (libuv suggests 64 KiB).
pub const READ_BUFFER_SIZE: usize = 64 * 1024;

/// The most the loop's read buffer grows to.
const MAX_READ_BUFFER: usize = 4 * 1024 * 1024;

impl ReadBuffer {
    pub(crate) fn new() -> ReadBuffer {
        let b: Box<[std::mem::MaybeUninit<u8>]> = Box::new([]);
        let b = NonNull::from(Box::leak(b));
        ReadBuffer {
            base: Cell::new(b.as_ptr().cast()),
            len: Cell::new(0),
            buf: Cell::new(b),
        }
    }

    /// Writes to `out` the buffer, grown to what libuv suggests (up to
    /// `MAX_READ_BUFFER`; UDP with `RECVMMSG` asks for room for many datagrams),
    /// or an empty buffer while it is lent out (then libuv reports `ENOBUFS`).
    ///
    /// The common case (home, and large enough) is a test of the length and the
    /// stores; the rest is [`lend_slow`](Self::lend_slow).
    ///
    /// # Safety
    /// `out` is valid for a write.
    #[inline(always)]
    unsafe fn lend(&self, suggested: usize, out: *mut sys::uv_buf_t) {
        let (base, len) = (self.base.get(), self.len.get());
        // `suggested - 1 < len`: `suggested <= len` for a suggestion of at least
        // one byte (0 goes the slow way, which lends at least READ_BUFFER_SIZE), and
        // false while lent out (`len` is 0 then).
        if suggested.wrapping_sub(1) >= len {
            // SAFETY: the caller's contract.
            return unsafe { self.lend_slow(suggested, out) };
        }
        self.base.set(std::ptr::null_mut());
        self.len.set(0);
        // SAFETY: the caller's contract.
        unsafe {
            *out = sys::uv_buf_t {
                base: base.cast(),
                len,
            }
        };
    }

    /// [`lend`](Self::lend) of a buffer that is lent out, or too small for
    /// `suggested` (rare: once per size a loop sees), out of the allocation
    /// callback's path.
    ///
    /// `extern "C"` (it cannot unwind: the allocation's size is bounded, and a
    /// failed one aborts), so that the allocation callbacks call it with a jump.
    ///
    /// # Safety
    /// As for `lend`.
    #[cold]
    #[inline(never)]
    #[allow(improper_ctypes_definitions)]
    unsafe extern "C" fn lend_slow(&self, suggested: usize, out: *mut sys::uv_buf_t) {
        let (base, len) = if self.base.get().is_null() {
            (std::ptr::null_mut(), 0)
        } else {
            let want = suggested.clamp(READ_BUFFER_SIZE, MAX_READ_BUFFER);
            if self.buf.get().len() < want {
                let old = self
                    .buf
                    .replace(NonNull::from(Box::leak(Box::new_uninit_slice(want))));
                // SAFETY: home (not lent out), so no pointer into the old buffer is
                // in use; it came from `Box::leak` and is freed once, here.
                drop(unsafe { Box::from_raw(old.as_ptr()) });
            }
            self.base.set(std::ptr::null_mut());
            self.len.set(0);
            let b = self.buf.get();
            (b.as_ptr().cast::<u8>(), b.len())
        };
        // SAFETY: the caller's contract.
        unsafe {
            *out = sys::uv_buf_t {
                base: base.cast(),
                len,
            }
        };
    }

    /// Takes the buffer back whoever has it (a UDP batch cut short, whose last
    /// callback, the one that hands it back, will not come).
    pub(crate) fn reclaim(&self) {
        let b = self.home();
        self.base.set(b.cast());
        self.len.set(b.len());
    }

    #[inline]
    fn give_back(&self, base: *const u8) {
        if self.home().cast::<u8>().cast_const() == base {
            self.reclaim();
        }
    }

    /// The buffer's place, read without a reference to its bytes (which libuv may
    /// be writing).
    #[inline(always)]
    fn home(&self) -> *mut [std::mem::MaybeUninit<u8>] {
        self.buf.get().as_ptr()
    }

    /// In a read callback whose bytes are `bytes`, at the start of this buffer
    /// (lent out for the read): makes them `into`'s contents without a copy. The
    /// buffer becomes `into`'s allocation, and `into`'s own (it must be empty)
    /// replaces it here, or a new one when it is too small: the buffer is home again.
    /// `false` (and nothing changed) when the bytes are elsewhere, `into` is not
    /// empty, or the buffer was grown past the default size (for UDP batches)
    /// and `into` has no room to replace it.
    ///
    /// # Safety
    /// Called from a stream's read callback with the bytes that callback got (then
    /// libuv is done with the buffer); `bytes` is not read after a `true` (the
    /// memory is `into`'s).
    pub(crate) unsafe fn adopt(&self, bytes: &[u8], into: &mut Vec<u8>) -> bool {
        let home = self.home();
        let home_len = home.len();
        if !self.base.get().is_null()
            || home.cast::<u8>().cast_const() != bytes.as_ptr()
            || bytes.len() > home_len
            || !into.is_empty()
        {
            return false;
        }
        let cap = into.capacity();
        let replacement: NonNull<[std::mem::MaybeUninit<u8>]> =
            if cap >= home_len && cap <= MAX_READ_BUFFER {
                let mut v = std::mem::ManuallyDrop::new(std::mem::take(into));
                // A Vec's allocation is `Layout::array::<u8>(capacity)` from the
                // global allocator: that of a boxed slice of `cap` bytes, which
                // takes it over (no element to drop; none needs to be initialised).
                let p = std::ptr::slice_from_raw_parts_mut(v.as_mut_ptr().cast(), cap);
                // SAFETY: as above; a Vec's pointer is never null.
                unsafe { NonNull::new_unchecked(p) }
            } else if home_len == READ_BUFFER_SIZE {
                NonNull::from(Box::leak(Box::new_uninit_slice(READ_BUFFER_SIZE)))
            } else {
                return false;
            };
        let old = self.buf.replace(replacement);
        self.reclaim();
        // SAFETY: `old` came from `Box::leak` of `home_len` bytes (the global
        // allocator, `Layout::array::<u8>(home_len)`: a Vec of that capacity);
        // the read whose callback runs (the contract) wrote its first
        // `bytes.len()` bytes, which are initialised; libuv is done with the
        // buffer once its read callback runs, and the caller gives up `bytes`:
        // the Vec owns the memory alone.
        *into = unsafe { Vec::from_raw_parts(old.as_ptr().cast::<u8>(), bytes.len(), home_len) };
        true
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        // SAFETY: the buffer came from `Box::leak` and is freed once, here (the
        // loop is closed: libuv holds no pointer into it).
        drop(unsafe { Box::from_raw(self.buf.get().as_ptr()) });
    }
}

pub(crate) fn loop_shared<'a>(h: *const sys::uv_handle_t) -> &'a LoopShared {
    // SAFETY: libuv passes a handle of an open loop whose `data` is its LoopShared,
    // alive while the loop's owner is.
    unsafe { &*((*(*h).loop_).data as *const LoopShared) }
}

/// Lends the loop's read buffer to libuv (`uv_alloc_cb` of streams and UDP).
///
/// # Safety
/// libuv's contract for allocation callbacks: `h` is a handle of an open loop made
/// by this library, `buf` a valid out-pointer.
pub(crate) unsafe extern "C" fn alloc_cb(
    h: *mut sys::uv_handle_t,
    suggested: usize,
    buf: *mut sys::uv_buf_t,
) {
    // SAFETY: libuv's contract, passed on.
    unsafe { lend_loop_buffer(h, suggested, buf) }
}

/// Lends the loop's read buffer, grown to at least `want` bytes (within its
/// bounds), or an empty buffer while it is lent out (libuv then reports `ENOBUFS`).
///
/// # Safety
/// As for [`alloc_cb`]: `h` is a handle of an open loop made by this library, `buf`
/// a valid out-pointer.
#[inline(always)]
pub(crate) unsafe fn lend_loop_buffer(
    h: *mut sys::uv_handle_t,
    want: usize,
    buf: *mut sys::uv_buf_t,
) {
    // SAFETY: libuv passes a valid out-pointer.
    unsafe { loop_shared(h).read_buffer().lend(want, buf) }
}

/// The most libuv is given to read into at once (Linux's largest single read).
const MAX_LEND: usize = 0x7fff_f000;

/// Hands libuv the allocator's buffer fetched ahead (`uv_alloc_cb` of
/// `read_start_with`). Runs no user code; with no buffer ready, libuv reports
/// `ENOBUFS` to the read callback.
unsafe extern "C" fn alloc_with<K: StreamKind>(
    h: *mut sys::uv_handle_t,
    _suggested: usize,
    buf: *mut sys::uv_buf_t,
) {
    // SAFETY: `h` is a stream made by K's constructors, alive during the callback.
    let slots = unsafe { K::stream_slots(crate::handle::slots_of::<K>(h.cast())) };
    // `read_start_with` made the state before starting libuv's reads.
    let slots = slots.custom();
    let (base, len) = match slots.next.take() {
        Some(b) => {
            let len = b.len();
            let p = Box::into_raw(b).cast::<u8>();
            // SAFETY: Box::into_raw never gives null.
            slots
                .lent
                .set(Some((unsafe { NonNull::new_unchecked(p) }, len)));
            (p, len.min(MAX_LEND))
        }
        None => (std::ptr::null_mut(), 0),
    };
    // SAFETY: libuv passes a valid out-pointer.
    unsafe {
        *buf = sys::uv_buf_t {
            base: base.cast(),
            len,
        }
    };
}

unsafe extern "C" fn read_cb<K: StreamKind>(
    s: *mut sys::uv_stream_t,
    nread: isize,
    buf: *const sys::uv_buf_t,
) {
    // SAFETY: libuv passes the buffer the allocation callback gave (or an empty one).
    let base = unsafe { (*buf).base as *mut u8 };
    if nread != 0 {
        // The callback's record makes the event of these (`call_read`).
        let parts = ReadParts {
            nread,
            base: base.cast_const(),
        };
        // SAFETY: `s` is a stream made by K's constructors; libuv wrote `nread`
        // bytes at `base` (when positive), inside the buffer lent for this read.
        unsafe { dispatch_with::<K, _, _>(s.cast(), |sl| &K::stream_slots(sl).read, &parts) };
    }
    let shared = loop_shared(s.cast());
    // SAFETY: `s` is a stream made by K's constructors; its allocation lives until
    // its close callback, which does not run during this one.
    let slots = unsafe { K::stream_slots(crate::handle::slots_of::<K>(s.cast())) };
    match slots.custom.get() {
        None => shared.read_buffer().give_back(base),
        // SAFETY: as above.
        Some(c) => unsafe { after_custom_read(c, shared, s, base) },
    }
}

/// `uv_read_start` with the library's callbacks: the loop's buffer, or the
/// allocator's (`with_allocator`); on Unix an IPC pipe, whose reads receive
/// handles, reads through `alloc_ipc`, `alloc_with_ipc` and `read_cb_ipc` (Linux
/// and Android, whose receive of descriptors they rely on).
///
/// # Safety
/// `s` is an open stream of this library, of kind `K`, that passed
/// `uv_read_start`'s checks; with `with_allocator`, its `read_start_with` state is
/// made.
#[inline(always)]
unsafe fn start_reads<K: StreamKind>(s: *mut sys::uv_stream_t, with_allocator: bool) -> c_int {
    // SAFETY: per the contract (the type field is set at init); the callbacks are
    // the library's for a stream of kind `K`.
    unsafe {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if is_ipc_pipe(s, (*s).type_) {
            return if with_allocator {
                sys::uv_read_start(s, Some(alloc_with_ipc::<K>), Some(read_cb_ipc::<K>))
            } else {
                sys::uv_read_start(s, Some(alloc_ipc), Some(read_cb_ipc::<K>))
            };
        }
        if with_allocator {
            sys::uv_read_start(s, Some(alloc_with::<K>), Some(read_cb::<K>))
        } else {
            sys::uv_read_start(s, Some(alloc_cb), Some(read_cb::<K>))
        }
    }
}

/// What the peek before an IPC pipe's read found, for the read callback that
/// follows it on this thread (libuv calls the read callback after every
/// allocation, with nothing of this library or the user in between).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[derive(Clone, Copy, PartialEq, Eq)]
enum IpcNote {
    /// Nothing to report.
    None,
    /// Nothing was there to read: the allocation gave libuv an empty buffer, and
    /// its `ENOBUFS` is not an error.
    NothingToRead,
    /// The message about to be read carries descriptors libuv cannot take: the
    /// allocation gave libuv an empty buffer (the message stays on the socket),
    /// and the read callback gets this error instead of libuv's `ENOBUFS`.
    Lost(LossId),
    /// The read goes on while a told loss waits on the socket: its message is
    /// read once libuv's queue of received handles grows past this count (libuv
    /// takes descriptors from the first message that carries some). A loss of
    /// which the look got no descriptor (`false`: at the descriptor limit, where
    /// libuv's read gets none either) cannot be known again: it is taken as read
    /// by the next read of bytes (if not, it is told again, never missed).
    ReadOn(c_int, bool),
    /// The peek failed with this error, which it may have taken off the socket (a
    /// pending `ECONNRESET`): the allocation gave libuv an empty buffer, and the
    /// read callback fails the read with it as libuv's read would have.
    Failed(c_int),
}

/// A loss of descriptors an IPC pipe's read callback was told of
/// ([`peek_handles`]): the error, how many descriptors the look got, and the open
/// file of its first (device and inode; zeros when it got none). The same loss
/// seen again, until its message is read, is not told again.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct LossId {
    code: c_int,
    count: usize,
    file: (u64, u64),
}

#[cfg(any(target_os = "linux", target_os = "android"))]
thread_local! {
    static IPC_NOTE: Cell<IpcNote> = const { Cell::new(IpcNote::None) };
}

/// How many descriptors libuv's read of an IPC pipe takes from one message: its
/// control buffer is 256 bytes (`union uv__cmsg`, unix/stream.c), and the kernel
/// fills it with one `SCM_RIGHTS` header and as many descriptors as fit after it
/// (the rest it closes, and flags the message `MSG_CTRUNC`, which libuv ignores).
#[cfg(any(target_os = "linux", target_os = "android"))]
const LIBUV_FDS_PER_READ: usize =
    (256 - std::mem::size_of::<libc::cmsghdr>()) / std::mem::size_of::<c_int>();

/// How many descriptors a look before a read makes room for: one more than
/// libuv takes, enough to tell a message of more (`count > LIBUV_FDS_PER_READ`),
/// and no more of the process's descriptor numbers taken for the look's copies
/// (a message may carry up to 253, Linux's `SCM_MAX_FD`).
#[cfg(any(target_os = "linux", target_os = "android"))]
const PEEK_FDS: usize = LIBUV_FDS_PER_READ + 1;

/// `alloc_cb` for an IPC pipe: the loop's buffer, then [`peek_handles`].
#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe extern "C" fn alloc_ipc(
    h: *mut sys::uv_handle_t,
    suggested: usize,
    buf: *mut sys::uv_buf_t,
) {
    // SAFETY: libuv's contract, passed on; `h` is an IPC pipe (`read_start`).
    unsafe {
        alloc_cb(h, suggested, buf);
        peek_handles(h.cast(), buf);
    }
}

/// `alloc_with` for an IPC pipe: the allocator's buffer, then [`peek_handles`].
#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe extern "C" fn alloc_with_ipc<K: StreamKind>(
    h: *mut sys::uv_handle_t,
    suggested: usize,
    buf: *mut sys::uv_buf_t,
) {
    // SAFETY: libuv's contract, passed on; `h` is an IPC pipe (`read_start_with`).
    unsafe {
        alloc_with::<K>(h, suggested, buf);
        peek_handles(h.cast(), buf);
    }
}

/// Before libuv reads an IPC pipe into `buf`: looks at what the read will get
/// (`MSG_PEEK` into the same buffer, with room for [`PEEK_FDS`] descriptors; the
/// copies of the descriptors a peek makes are closed at once).
/// libuv's read takes at most [`LIBUV_FDS_PER_READ`] descriptors of a message, and
/// the kernel closes the others unseen: a message with more (only another program
/// sends one: libuv sends one descriptor per message), or one whose descriptors
/// this process has no room for (`EMFILE`), is noted for the read callback, which
/// reports the loss before the message is read: `buf` is emptied, so that libuv
/// reads nothing, and the loss is recorded with the stream, so that the reads
/// that follow (from the next poll of the socket, or the next `read_start` when
/// the callback stopped reading) go on without telling it again, up to the one
/// that takes the message. (Linux's peek goes on past a full buffer to the next
/// message that carries descriptors: the loss seen may be of a message after
/// this read's bytes, which is why it is told before them and recorded.)
/// Otherwise `buf` is cut to the bytes seen, so that libuv's read gets exactly
/// them (and no message that came after the peek); with nothing to read, or an
/// error, it is emptied (libuv then reports `ENOBUFS`, which [`read_cb_ipc`]
/// takes for "nothing yet", as libuv's own `EAGAIN`, or replaces with the peek's
/// error or the loss).
///
/// # Safety
/// `s` is an open IPC pipe of this library reading, in its allocation callback;
/// `buf` the buffer the allocation gave (libuv's out-pointer).
#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe fn peek_handles(s: *mut sys::uv_stream_t, buf: *mut sys::uv_buf_t) {
    // SAFETY: per the contract.
    let (base, len, fd) = unsafe { ((*buf).base, (*buf).len, (*s).io_watcher.fd) };
    if base.is_null() || len == 0 || fd < 0 {
        // libuv reports ENOBUFS (or has nothing to read from).
        return;
    }
    // One header and `PEEK_FDS` descriptors, with room for its alignment.
    const SPACE: usize =
        std::mem::size_of::<libc::cmsghdr>() + std::mem::size_of::<c_int>() * PEEK_FDS + 8;
    // Aligned for the control headers (`u64`, as `cmsghdr`'s `size_t`).
    let mut control = [0u64; SPACE.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: base.cast(),
        iov_len: len.min(MAX_LEND),
    };
    // SAFETY: zeroed is a valid empty message header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = loop {
        // SAFETY: the header points at the iovec (the lent buffer, writable for
        // `len` bytes, which libuv's read overwrites next) and the control buffer
        // above, both live during the call; a peek takes nothing off the socket.
        let n = unsafe {
            libc::recvmsg(
                fd,
                &mut msg,
                libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break n;
        }
    };
    if n < 0 {
        let e = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        // SAFETY: libuv's out-pointer, written before it reads it.
        unsafe { (*buf).len = 0 };
        IPC_NOTE.set(if e == libc::EAGAIN || e == libc::EWOULDBLOCK {
            IpcNote::NothingToRead
        } else {
            // A socket's pending error is reported once, to the first receive:
            // this peek. libuv's read would find the socket without it.
            IpcNote::Failed(-e)
        });
        return;
    }
    if n == 0 {
        // The end of the stream: libuv's read sees it too.
        return;
    }
    let mut count = 0usize;
    // The first descriptor, kept open until its file is known.
    let mut first: c_int = -1;
    // SAFETY: the kernel wrote `msg_controllen` bytes of well-formed control
    // messages into `control`; the macros walk them within it. The descriptors
    // of an `SCM_RIGHTS` message are the peek's own copies, closed once here
    // (the first below).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let bytes = ((*c).cmsg_len as usize).saturating_sub(data as usize - c as usize);
                let k = bytes / std::mem::size_of::<c_int>();
                for i in 0..k {
                    let fd = std::ptr::read_unaligned(data.cast::<c_int>().add(i));
                    if first < 0 {
                        first = fd;
                    } else {
                        libc::close(fd);
                    }
                }
                count += k;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let loss = if count > LIBUV_FDS_PER_READ {
        // More than libuv's control buffer holds (the look's is full, and may
        // be cut short: `MSG_CTRUNC`).
        Some(StatusCode::EMSGSIZE)
    } else if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        // Fewer than the look had room for, and cut short: this process is at
        // its descriptor limit, and libuv's read will lose them too.
        Some(StatusCode::EMFILE)
    } else {
        None
    };
    // A look sees the descriptors of the first message that carries some from
    // where the read starts, even past the bytes it looks at (Linux's peek goes
    // on to that message when the buffer is full): the loss may be of a later
    // message than this read's. It is told once, before the read that sees it
    // first, and the reads up to the one that takes the message go on.
    let id = loss.map(|code| LossId {
        code: code.raw(),
        count,
        file: if first >= 0 {
            // SAFETY: `fstat` writes the struct it is given; `first` is the
            // look's own open descriptor.
            unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                if libc::fstat(first, &mut st) == 0 {
                    (st.st_dev as u64, st.st_ino as u64)
                } else {
                    (0, 0)
                }
            }
        } else {
            (0, 0)
        },
    });
    if first >= 0 {
        // SAFETY: the look's own copy, closed once.
        unsafe { libc::close(first) };
    }
    // SAFETY: `s` is an open stream of this library, held by libuv, in its
    // allocation callback.
    let told = unsafe { crate::handle::ipc_loss_told(s.cast()) };
    match id {
        Some(id) if told != Some(id) => {
            // Nothing is read: the callback is told first (`read_cb_ipc`).
            // SAFETY: libuv's out-pointer, written before it reads it.
            unsafe { (*buf).len = 0 };
            IPC_NOTE.set(IpcNote::Lost(id));
            return;
        }
        Some(id) => {
            // SAFETY: `s` is an open IPC pipe (a `uv_pipe_t`); the count is read.
            let pending = unsafe { sys::uv_pipe_pending_count(s.cast()) };
            IPC_NOTE.set(IpcNote::ReadOn(pending, id.count > 0));
        }
        None if told.is_some() => {
            // The message was read, or its loss is gone (the process made room).
            // SAFETY: as above.
            unsafe { crate::handle::set_ipc_loss_told(s.cast(), None) };
        }
        None => {}
    }
    // libuv reads exactly what was seen.
    // SAFETY: libuv's out-pointer; `n` is at most the length it had.
    unsafe { (*buf).len = n as usize };
}

/// `read_cb` for an IPC pipe: what its allocation's peek noted ([`peek_handles`])
/// is taken first. "Nothing to read" makes libuv's `ENOBUFS` no event, a failed
/// peek fails the read with its error; a loss replaces it with an error
/// (`EMSGSIZE` for a message with more descriptors than libuv takes, `EMFILE` at
/// the descriptor limit) that does not end the reading, once, before the reads up
/// to the one that takes the message (the stream records it until then).
#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe extern "C" fn read_cb_ipc<K: StreamKind>(
    s: *mut sys::uv_stream_t,
    nread: isize,
    buf: *const sys::uv_buf_t,
) {
    let note = IPC_NOTE.replace(IpcNote::None);
    // SAFETY: libuv's contract, passed on.
    unsafe {
        match note {
            IpcNote::NothingToRead if nread == sys::uv_errno_t_UV_ENOBUFS as isize => {
                read_cb::<K>(s, 0, buf)
            }
            IpcNote::Failed(code) if nread == sys::uv_errno_t_UV_ENOBUFS as isize => {
                // What libuv's read does on an error (unix/stream.c, `uv__read`):
                // the stream is no longer readable or writable, the callback gets
                // the error, and reading stops unless the callback stopped it.
                (*s).flags &= !(HANDLE_READABLE | crate::libuv_flags::UV_HANDLE_WRITABLE);
                read_cb::<K>(s, code as isize, buf);
                if (*s).read_cb.is_some() {
                    sys::uv_read_stop(s);
                }
            }
            IpcNote::Lost(id) if nread == sys::uv_errno_t_UV_ENOBUFS as isize => {
                // Nothing was read: the next read goes on, without telling the
                // loss again. Recorded before the callback, which may stop
                // reading (the record waits for the next `read_start`) or close
                // the stream (the record goes with it).
                crate::handle::set_ipc_loss_told(s.cast(), Some(id));
                read_cb::<K>(s, id.code as isize, buf)
            }
            IpcNote::ReadOn(pending, known) => {
                // libuv took descriptors: from the message whose loss was told.
                if sys::uv_pipe_pending_count(s.cast()) > pending || (!known && nread > 0) {
                    crate::handle::set_ipc_loss_told(s.cast(), None);
                }
                read_cb::<K>(s, nread, buf)
            }
            _ => read_cb::<K>(s, nread, buf),
        }
    }
}

/// After a read callback of a stream that had `read_start_with`: the allocator's
/// buffer goes back to it (or the loop's buffer to the loop), and a stream that
/// still reads with the allocator gets its next buffer.
///
/// # Safety
/// `s` is the open stream whose state `c` is, in its read callback.
#[inline(never)]
unsafe fn after_custom_read(
    c: &CustomRead,
    shared: &LoopShared,
    s: *mut sys::uv_stream_t,
    base: *mut u8,
) {
    match c.lent.get() {
        Some((p, len)) if p.as_ptr() == base => {
            c.lent.set(None);
            // SAFETY: the lent buffer came from Box::into_raw of a boxed slice of
            // `len` bytes (our length, not libuv's) and is taken back once, here.
            let b = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(base, len)) };
            // User code (release, then the next buffer), where libuv allows it: in
            // the read callback.
            shared.guard(|| {
                let mut b = Some(b);
                c.allocator.call(|a| {
                    if let Some(b) = b.take() {
                        a.release(b)
                    }
                });
            });
        }
        _ => shared.read_buffer().give_back(base),
    }
    // A stream that still reads with an allocator needs its next buffer (the slot
    // is looked at first: reads into the loop's buffer skip the calls into libuv).
    // SAFETY: per the contract; the flags are read, not changed.
    if c.allocator.is_set() && unsafe { sys::uv_is_active(s.cast()) != 0 } && !is_closing(s) {
        shared.guard(|| c.fetch_next(READ_BUFFER_SIZE));
    }
}

/// The error of a read at the end of a stream.
#[inline(always)]
fn eof_error() -> Error {
    // Made in place from constants (the category computed at compile time): a few
    // stores, no shared copy to look up and clone.
    const KIND: crate::Category = StatusCode::EOF.category();
    Error::with_kind(StatusCode::EOF, KIND, "uv_read")
}

fn is_closing(s: *mut sys::uv_stream_t) -> bool {
    // SAFETY: a live stream; uv_is_closing only reads its flags.
    unsafe { sys::uv_is_closing(s.cast()) != 0 }
}

/// Takes the loop's read buffer back after a read callback.
pub(crate) fn give_back(h: *const sys::uv_handle_t, base: *const u8) {
    loop_shared(h).read_buffer().give_back(base);
}

/// Calls a read callback with the event made of the read trampoline's parts: the
/// call of every [`ReadSlot`] callback's record, made for the callback's type, so
/// that the callback's code sees how its event is made. The callback is called
/// from one place, so that its code is inlined here, where the kind of result is
/// known on each path.
#[inline(always)]
fn call_read<K, C: FnMut(&K, Result<&[u8]>)>(cb: &mut C, h: &K, parts: &ReadParts) {
    let nread = parts.nread;
    let event = if nread > 0 {
        // SAFETY: `ReadParts` are made only by `read_cb`, from libuv's count of
        // the bytes it wrote at `base` (inside the buffer lent for the read), and
        // passed on during its call.
        Ok(unsafe { std::slice::from_raw_parts(parts.base, nread as usize) })
    } else if nread == sys::uv_errno_t_UV_EOF as isize {
        // The end of every stream: a constant error.
        Err(eof_error())
    } else {
        Err(read_error(nread))
    };
    cb(h, event)
}

/// The error of a failed read (out of the read callbacks' way).
#[cold]
#[inline(never)]
fn read_error(nread: isize) -> Error {
    Error::from_raw(nread as i32, "uv_read")
}

/// Calls a connection callback with libuv's status (the call of every
/// [`ConnectionSlot`] callback's record; the callback is called from one place,
/// as in [`call_read`]).
#[inline(always)]
fn call_connection<K, C: FnMut(&K, Result<()>)>(cb: &mut C, h: &K, status: &c_int) {
    let status = *status;
    let event = if status >= 0 {
        Ok(())
    } else {
        Err(connection_error(status))
    };
    cb(h, event)
}

/// The error of a failed connection (out of the connection callbacks' way).
#[cold]
#[inline(never)]
fn connection_error(status: c_int) -> Error {
    Error::from_raw(status, "uv_connection_cb")
}

unsafe extern "C" fn connection_cb<K: StreamKind>(s: *mut sys::uv_stream_t, status: c_int) {
    // SAFETY: `s` is a stream made by K's constructors.
    unsafe { dispatch_with::<K, _, _>(s.cast(), |sl| &K::stream_slots(sl).connection, &status) };
}

/// `uv_read_start`: `callback` gets each chunk read (from the loop's buffer), then an
/// `EOF` error at the end.
#[inline]
pub fn read_start<K: StreamKind, C: FnMut(&K, Result<&[u8]>) + 'static>(
    s: &K,
    callback: C,
) -> Result<()> {
    let raw = raw(s, "uv_read_start")?;
    // SAFETY: the stream is open.
    unsafe {
        contracts::not_listening(raw, "uv_read_start")?;
        contracts::usable_fd(raw, "uv_read_start")?;
        contracts::non_blocking(raw, "uv_read_start")?;
    }
    let slots = K::stream_slots(s.typed().slots());
    // The callback's memory comes from the loop's slab (the stream is open, so its
    // loop and slab are alive; a callback stays on the loop's thread).
    let slab = loop_shared(raw.cast()).slab();
    // SAFETY: the slab is live, of this thread's loop.
    slots.read.set_then(
        unsafe {
            slots
                .read
                .callback_in(callback, |p| p, call_read::<K, C>, slab)
        },
        || {
            // SAFETY: the stream is open.
            let rc = unsafe { start_reads::<K>(raw, false) };
            check(rc, "uv_read_start").map(|()| {
                // Back to the loop's buffer: the allocator leaves its slot first (what
                // its `release` does to the stream then sees the new state), and gets
                // back the buffer it gave ahead.
                if let Some(c) = slots.custom.get() {
                    let old = c.allocator.take();
                    if let (Some(mut a), Some(b)) = (old, c.next.take()) {
                        a.release(b);
                    }
                }
            })
        },
    )
}

/// `uv_read_start` with reads landing in buffers from `allocator`.
///
/// The allocator is asked for a buffer here and after each read callback, never from
/// inside libuv, so it may call anything (even `read_stop` or `close` on this stream).
pub fn read_start_with<K: StreamKind, C: FnMut(&K, Result<&[u8]>) + 'static>(
    s: &K,
    allocator: impl ReadAllocator,
    callback: C,
) -> Result<()> {
    /// `uv_read_start`'s preconditions on the stream (`raw`'s open check first).
    fn checked<K: StreamKind>(s: &K) -> Result<*mut sys::uv_stream_t> {
        let r = raw(s, "uv_read_start")?;
        // SAFETY: the stream is open.
        unsafe {
            contracts::not_listening(r, "uv_read_start")?;
            contracts::usable_fd(r, "uv_read_start")?;
            contracts::non_blocking(r, "uv_read_start")?;
        }
        Ok(r)
    }
    checked(s)?;
    // The first buffer comes from the allocator before any slot changes: whatever
    // it does to this stream (even start reading itself) sees a consistent state.
    // A panic is the loop's to report (from `run`), as from a callback; the first
    // read then fails with ENOBUFS. The allocator may also drop the loop (its
    // owner, where the allocator reaches it): this reference keeps the loop's
    // shared state alive for the panic's report, and a panic of a loop that is
    // gone goes on to the caller (no loop is left to report it).
    let mut allocator = allocator;
    let lp = s.typed().handle().loop_();
    let shared = lp.shared();
    let first = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        allocator.allocate(READ_BUFFER_SIZE)
    })) {
        Ok(b) => b,
        Err(payload) if shared.is_open() => {
            shared.panicked(payload);
            None
        }
        Err(payload) => std::panic::resume_unwind(payload),
    }
    .filter(|b| !b.is_empty());
    // The allocator may have closed the stream, or made it listen (then a read
    // start would poll a server for connections while one waits: libuv aborts),
    // so the checks run again; no user code runs from here to `uv_read_start`.
    let r = checked(s)?;
    let slots = K::stream_slots(s.typed().slots());
    let c = slots.custom();
    // SAFETY: `|p| p` is the unsizing coercion to the slot's callback type.
    let allocator = unsafe { c.allocator.callback(allocator, |p| p) };
    let callback = slots.read.callback(callback, |p| p, call_read::<K, C>);
    c.allocator.set_then(allocator, || {
        slots.read.set_then(callback, || {
            // SAFETY: the stream is open.
            let rc = unsafe { start_reads::<K>(r, true) };
            check(rc, "uv_read_start").map(|()| drop(c.next.replace(first)))
        })
    })
}

/// `uv_read_stop`; a no-op on a closed stream.
pub fn read_stop<K: StreamKind>(s: &K) -> Result<()> {
    let Ok(raw) = raw(s, "uv_read_stop") else {
        return Ok(());
    };
    // SAFETY: the stream is open.
    check(unsafe { sys::uv_read_stop(raw) }, "uv_read_stop")?;
    // The read callback will not be called again (a `read_start` gives a new one):
    // it is dropped, with what it holds. Replaced by one that does nothing, rather
    // than taken: inside the read callback, the slot is empty while the callback
    // runs, and a filled slot is what makes the call drop it afterwards instead of
    // putting it back. Zero-sized, the replacement needs no memory.
    let slots = K::stream_slots(s.typed().slots());
    slots.read.set(
        slots
            .read
            .callback(|_: &K, _: Result<&[u8]>| {}, |p| p, call_read::<K, _>),
    );
    Ok(())
}

/// The open stream's libuv struct, checked for `uv_write`: not listening, not in a
/// blocking write that could not finish, a descriptor libuv can use.
#[inline(always)]
fn write_ready<K: StreamKind>(s: &K) -> Result<*mut sys::uv_stream_t> {
    let raw = raw(s, "uv_write")?;
    // SAFETY: the stream is open.
    unsafe {
        contracts::not_listening(raw, "uv_write")?;
        contracts::blocking_write_ready(raw, "uv_write")?;
        contracts::usable_fd(raw, "uv_write")?;
    }
    Ok(raw)
}

/// Calls `f`, a libuv call's start, with libuv's view of `data` (the buffer array
/// and its length, valid during the call; libuv copies the array), and answers
/// its status. For data that stays in place until libuv is done with the bytes (a
/// request's): one buffer, inline bytes included, is pointed at where it is, with
/// no `Bufs` built. More buffers than `u32::MAX` are `UV_EINVAL`, `f` not called.
#[inline]
pub(crate) fn with_bufs(
    data: &WriteData,
    f: impl FnOnce(*const sys::uv_buf_t, u32) -> c_int,
) -> c_int {
    match data.parts() {
        Ok(v) => f(&uv_buf(v), 1),
        Err(_) => {
            let bufs = data.bufs();
            match bufs.len() {
                Some(n) => f(bufs.as_ptr(), n),
                None => sys::uv_errno_t_UV_EINVAL,
            }
        }
    }
}

/// libuv's view of `v` (libuv only reads the bytes).
#[inline]
pub(crate) fn uv_buf(v: &[u8]) -> sys::uv_buf_t {
    sys::uv_buf_t {
        base: v.as_ptr() as *mut _,
        len: v.len(),
    }
}

/// A write request's or a UDP send's data. Dropping `Static` or `Inline` bytes
/// (nothing owned) is a test of the variant, not a call of the enum's drop code (a
/// jump through its table of variants), which a batch of small writes would pay once
/// per write.
pub(crate) struct KeptData(pub(crate) std::mem::ManuallyDrop<WriteData>);

impl Drop for KeptData {
    #[inline(always)]
    fn drop(&mut self) {
        if !matches!(*self.0, WriteData::Static(_) | WriteData::Inline(_)) {
            self.drop_owned();
        }
    }
}

impl KeptData {
    #[inline(never)]
    fn drop_owned(&mut self) {
        // SAFETY: the data is dropped once, here, by `drop` (`ManuallyDrop` keeps
        // the field's own drop from running after it).
        unsafe { std::mem::ManuallyDrop::drop(&mut self.0) }
    }
}

/// `uv_write`: the data is kept until `callback` runs.
///
/// Inlined into the caller: the checks of [`write_ready`] are one test of the
/// stream's fields on the way in (a stream that fails it goes to
/// [`write_checked`], which finds the error), then the request is made. `Static`
/// bytes are taken out of the value first: their write keeps nothing, and no
/// `WriteData` is left for the compiler to build.
#[inline(always)]
pub fn write<K: StreamKind>(
    s: &K,
    data: WriteData,
    callback: impl FnOnce(&K, Result<()>) + 'static,
) -> Result<()> {
    if let WriteData::Static(bytes) = data {
        // Nothing to drop; said so, so that no call of the enum's drop code is
        // left behind for the variant the compiler already knows.
        std::mem::forget(data);
        return match s.typed().raw_open() {
            // SAFETY: the stream is open.
            Some(raw) if unsafe { writable_fast(raw.cast()) } => {
                // SAFETY: the stream is open, and passed `write_ready`'s checks.
                unsafe { write_static(s, raw.cast(), bytes, callback) }
            }
            _ => write_checked(s, WriteData::Static(bytes), callback),
        };
    }
    match s.typed().raw_open() {
        // SAFETY: the stream is open.
        Some(raw) if unsafe { writable_fast(raw.cast()) } => {
            // SAFETY: the stream is open, and passed `write_ready`'s checks.
            unsafe { write_open(s, raw.cast(), data, callback) }
        }
        _ => write_checked(s, data, callback),
    }
}

/// Whether an open stream passes [`write_ready`]'s checks, in one test of its
/// fields: not listening, not in a blocking write that could not finish, and a
/// descriptor. `false` also for a stream that may pass (one with no descriptor and
/// neither readable nor writable): [`write_checked`] decides.
///
/// # Safety
/// `raw` is an open stream made by this library.
#[inline(always)]
unsafe fn writable_fast(raw: *mut sys::uv_stream_t) -> bool {
    // SAFETY: per the contract; only fields are read (as `contracts` reads them).
    unsafe {
        (*raw).connection_cb.is_none()
            && (*raw).io_watcher.fd >= 0
            && contracts::blocking_write_ready(raw, "uv_write").is_ok()
    }
}

/// `write` on a stream that failed the fast test: the checks one by one (the
/// error they give), then the write if they pass.
#[cold]
#[inline(never)]
fn write_checked<K: StreamKind>(
    s: &K,
    data: WriteData,
    callback: impl FnOnce(&K, Result<()>) + 'static,
) -> Result<()> {
    let raw = write_ready(s)?;
    // SAFETY: the stream is open (checked by `write_ready`, as the rest).
    unsafe { write_open(s, raw, data, callback) }
}

/// The name of the write paths' requests, known from their type (kept in no field).
#[derive(Clone, Copy)]
pub(crate) struct UvWrite;

impl crate::request::OpName for UvWrite {
    #[inline(always)]
    fn name(self) -> &'static str {
        "uv_write"
    }
}

/// The write request on a checked stream. Static bytes (the same string written
/// over and over) need nothing kept: the request holds no data and its completion
/// drops none; other data is kept in the request until the write completes.
///
/// # Safety
/// `raw` is `s`'s libuv struct; `s` is open and passed `write_ready`'s checks.
#[inline(always)]
unsafe fn write_open<K: StreamKind>(
    s: &K,
    raw: *mut sys::uv_stream_t,
    data: WriteData,
    callback: impl FnOnce(&K, Result<()>) + 'static,
) -> Result<()> {
    if let WriteData::Static(bytes) = data {
        std::mem::forget(data);
        // SAFETY: per the contract.
        return unsafe { write_static(s, raw, bytes, callback) };
    }
    let start = move |req, data: &mut KeptData, done| {
        with_bufs(&data.0, |bufs, n| {
            // SAFETY: the stream is open; the request and the bytes stay put until
            // `done`; libuv only reads the bytes.
            unsafe { sys::uv_write(req, raw, bufs, n, Some(done)) }
        })
    };
    // SAFETY: per the contract.
    unsafe {
        crate::request::submit_named::<sys::uv_write_t, K, _, KeptData, crate::request::NoRead, _>(
            s,
            raw.cast(),
            UvWrite,
            KeptData(std::mem::ManuallyDrop::new(data)),
            callback,
            start,
        )
    }
}

/// The write request of static bytes on a checked stream: the request keeps no
/// data (the bytes live for the whole program) and its completion drops none.
///
/// # Safety
/// `raw` is `s`'s libuv struct; `s` is open and passed `write_ready`'s checks.
#[inline(always)]
unsafe fn write_static<K: StreamKind>(
    s: &K,
    raw: *mut sys::uv_stream_t,
    bytes: &'static [u8],
    callback: impl FnOnce(&K, Result<()>) + 'static,
) -> Result<()> {
    let start = move |req, _: &mut (), done| {
        // SAFETY: the stream is open; the request stays put until `done`; the
        // bytes live for the whole program; libuv copies the buffer array (alive
        // during the call) and only reads the bytes.
        unsafe { sys::uv_write(req, raw, &uv_buf(bytes), 1, Some(done)) }
    };
    // SAFETY: per the contract.
    unsafe {
        crate::request::submit_named::<sys::uv_write_t, K, _, (), crate::request::NoRead, _>(
            s,
            raw.cast(),
            UvWrite,
            (),
            callback,
            start,
        )
    }
}

/// `uv_write`, and the callback also gets the bytes written (`uv_write_nwritten`).
pub fn write_counted<K: StreamKind>(
    s: &K,
    data: WriteData,
    callback: impl FnOnce(&K, Result<()>, usize) + 'static,
) -> Result<()> {
    let raw = write_ready(s)?;
    /// Reads the count into the data's cell, which the callback holds too, just
    /// before the callback runs.
    struct Nwritten;
    impl crate::request::ReadDone<sys::uv_write_t, (WriteData, Rc<Cell<usize>>)> for Nwritten {
        unsafe fn read(req: *mut sys::uv_write_t, data: &mut (WriteData, Rc<Cell<usize>>)) {
            // SAFETY: the caller's contract: `req` is a completed write request.
            data.1.set(unsafe { sys::uv_write_nwritten(req) });
        }
    }
    let count = Rc::new(Cell::new(0usize));
    let c = count.clone();
    let start = |req, data: &mut (WriteData, Rc<Cell<usize>>), done| {
        with_bufs(&data.0, |bufs, n| {
            // SAFETY: the stream is open; the request and the bytes stay put until
            // `done`; libuv only reads the bytes.
            unsafe { sys::uv_write(req, raw, bufs, n, Some(done)) }
        })
    };
    // SAFETY: `uv_write` takes a `uv_write_t`, started once on the stream's own
    // struct with `done` as its callback; its result is returned.
    unsafe {
        crate::request::submit_reading::<
            sys::uv_write_t,
            K,
            _,
            (WriteData, Rc<Cell<usize>>),
            Nwritten,
        >(
            s,
            &"uv_write",
            (data, count),
            move |h, r| callback(h, r, c.get()),
            start,
        )
    }
}

/// `uv_write2`: also sends `send` (a TCP socket or pipe) over an IPC pipe.
pub fn write2<K: StreamKind, S: StreamKind>(
    s: &K,
    data: WriteData,
    send: &S,
    callback: impl FnOnce(&K, Result<()>) + 'static,
) -> Result<()> {
    let raw = raw(s, "uv_write2")?;
    let send_raw = raw_of(send, "uv_write2")?;
    // The descriptor goes with the first `sendmsg`, which carries the first
    // buffers (up to `IOV_MAX`): with no bytes in them it sends nothing, and libuv
    // counts the handle as sent.
    #[cfg(unix)]
    if data.first_send_is_empty() {
        return Err(Error::new(StatusCode::EINVAL, "uv_write2"));
    }
    // SAFETY: both are open handles of this library.
    unsafe {
        contracts::same_loop(raw.cast(), send_raw.cast(), "uv_write2")?;
        contracts::not_listening(raw, "uv_write2")?;
        contracts::blocking_write_ready(raw, "uv_write2")?;
        contracts::usable_fd(raw, "uv_write2")?;
        // The receiving process shares the sent descriptor and may change its mode.
        crate::handle::set_own_nonblocking_fd(send_raw.cast(), false);
    }
    // The receiver may be in this process: its descriptor and this one are both
    // the library's.
    #[cfg(unix)]
    crate::handle::hold_socket(send.typed().handle(), false);
    // The sent handle must outlive the write: the request keeps a reference to it.
    let keep = send.clone();
    let start = |req, data: &mut (WriteData, S), done| {
        with_bufs(&data.0, |bufs, n| {
            // SAFETY: both streams are open; the request, the bytes and the sent
            // handle stay put until `done`.
            unsafe { sys::uv_write2(req, raw, bufs, n, send_raw, Some(done)) }
        })
    };
    // SAFETY: `uv_write2` takes a `uv_write_t`, started once on the stream's own
    // struct with `done` as its callback; its result is returned.
    unsafe {
        crate::request::submit::<sys::uv_write_t, K, _, (WriteData, S)>(
            s,
            &"uv_write2",
            (data, keep),
            callback,
            start,
        )
    }
}

fn raw_of<S: StreamKind>(s: &S, op: &'static str) -> Result<*mut sys::uv_stream_t> {
    raw(s, op)
}

/// `uv_try_write`: the number of bytes written, or `EAGAIN`.
pub fn try_write<K: StreamKind>(s: &K, data: &[u8]) -> Result<usize> {
    let raw = raw(s, "uv_try_write")?;
    let buf = sys::uv_buf_t {
        base: data.as_ptr() as *mut _,
        len: data.len(),
    };
    // SAFETY: the stream is open; libuv only reads the buffer during the call.
    let rc = unsafe { sys::uv_try_write(raw, &buf, 1) };
    check(rc, "uv_try_write").map(|()| rc as usize)
}

/// `uv_try_write2`: `uv_try_write` that also sends `send` over an IPC pipe.
pub fn try_write2<K: StreamKind, S: StreamKind>(s: &K, data: &[u8], send: &S) -> Result<usize> {
    const OP: &str = "uv_try_write2";
    let raw = raw(s, OP)?;
    let send_raw = raw_of(send, OP)?;
    // As in `write2`: no bytes, no handle sent.
    #[cfg(unix)]
    if data.is_empty() {
        return Err(Error::new(StatusCode::EINVAL, OP));
    }
    // SAFETY: both are open handles of this library.
    unsafe {
        contracts::same_loop(raw.cast(), send_raw.cast(), OP)?;
        contracts::usable_fd(raw, OP)?;
        // The receiving process shares the sent descriptor and may change its mode.
        crate::handle::set_own_nonblocking_fd(send_raw.cast(), false);
    }
    // As in `write2`.
    #[cfg(unix)]
    crate::handle::hold_socket(send.typed().handle(), false);
    let buf = sys::uv_buf_t {
        base: data.as_ptr() as *mut _,
        len: data.len(),
    };
    // SAFETY: both streams are open (libuv checks the IPC flag, the queue and the
    // sent handle's descriptor itself); it only reads the buffer during the call.
    let rc = unsafe { sys::uv_try_write2(raw, &buf, 1, send_raw) };
    check(rc, OP).map(|()| rc as usize)
}

/// `uv_shutdown`: ends the write side once queued writes are done. `EALREADY`
/// while a connect is in flight: libuv would keep such a shutdown queued, and if
/// the connect failed it would never complete it (its callback would not run, and
/// the loop, which counts it as active, would never end).
pub fn shutdown<K: StreamKind>(
    s: &K,
    callback: impl FnOnce(&K, Result<()>) + 'static,
) -> Result<()> {
    let raw = raw(s, "uv_shutdown")?;
    // SAFETY: the stream is open.
    unsafe {
        contracts::not_listening(raw, "uv_shutdown")?;
        contracts::not_connecting(raw, "uv_shutdown")?;
        contracts::usable_fd(raw, "uv_shutdown")?;
    }
    let start = |req, _: &mut (), done| {
        // SAFETY: the stream is open; the request stays put until `done`.
        unsafe { sys::uv_shutdown(req, raw, Some(done)) }
    };
    // SAFETY: `uv_shutdown` takes a `uv_shutdown_t`, started once on the stream's
    // own struct with `done` as its callback; its result is returned.
    unsafe {
        crate::request::submit::<sys::uv_shutdown_t, K, _, ()>(
            s,
            &"uv_shutdown",
            (),
            callback,
            start,
        )
    }
}

/// Runs `call`, a libuv call that creates the stream's socket when it has none (a
/// TCP or pipe connect): a socket it created is marked as libuv's own,
/// non-blocking, which spares the first `read_start` the system call that checks
/// the descriptor's mode (see `contracts::non_blocking`). Generated code calls it
/// for the methods whose spec says `makes_socket`.
///
/// # Safety
/// `s` is an open stream made by this library, and `call` a libuv call that, if
/// it gives the stream a descriptor it had none, gives it a non-blocking socket it
/// created.
#[inline(always)]
pub unsafe fn making_socket<R>(s: *mut sys::uv_stream_t, call: impl FnOnce() -> R) -> R {
    // SAFETY: per the contract the stream is open; the field is only read.
    let had_none = unsafe { (*s).io_watcher.fd } < 0;
    let r = call();
    // SAFETY: as above; when it had no descriptor and has one now, `call` made it.
    unsafe {
        if had_none && (*s).io_watcher.fd >= 0 {
            crate::handle::set_own_nonblocking_fd(s.cast(), true);
        }
    }
    r
}

/// `uv_listen`: `callback` runs for each incoming connection (accept it with `accept`).
pub fn listen<K: StreamKind, C: FnMut(&K, Result<()>) + 'static>(
    s: &K,
    backlog: i32,
    callback: C,
) -> Result<()> {
    let raw = raw(s, "uv_listen")?;
    // Listening twice, with a request in flight, or (while the loop runs) with the
    // descriptor in the poll's set, whose batch may hold a hang-up of it, makes
    // libuv's server code run where it asserts it cannot: `EINVAL`.
    // SAFETY: the stream is open.
    unsafe {
        contracts::not_listening(raw, "uv_listen")?;
        // A reading stream's watch is libuv's server watch once it listens: a
        // `read_stop` would end the listening with it, and connections would wait
        // unaccepted (a socket opened on a listening one could read, then listen).
        contracts::not_reading(raw, "uv_listen")?;
        // libuv accepts once per connection event; on a blocking descriptor (or one
        // a child shares, which may make it blocking), an accept of a connection
        // another process took first waits for the next one with the loop's thread.
        contracts::non_blocking(raw, "uv_listen")?;
        // A socket with another descriptor could be shut down for reading through
        // it, and libuv's server code asserts on the hang-up that follows.
        contracts::sole_descriptor(raw, "uv_listen")?;
        contracts::no_requests(raw, "uv_listen")?;
        contracts::no_collected_event(raw, loop_shared(raw.cast()).is_running(), "uv_listen")?;
        // At the descriptor limit a server without libuv's reserve descriptor
        // makes the loop spin.
        #[cfg(unix)]
        contracts::reserve_descriptor(raw, "uv_listen")?;
    }
    let slot = &K::stream_slots(s.typed().slots()).connection;
    slot.set_then(
        slot.callback(callback, |p| p, call_connection::<K, C>),
        || {
            // SAFETY: the stream is open.
            let rc = unsafe { sys::uv_listen(raw, backlog, Some(connection_cb::<K>)) };
            check(rc, "uv_listen")
        },
    )
}

/// `uv_accept`: takes a pending connection into `client` (a new handle of the
/// server's kind, on the same loop).
///
/// Checked before libuv sees it (libuv asserts on some, and closes the pending
/// connection on others): `EAGAIN` when nothing is pending; `EINVAL` for a client of
/// another loop or of the wrong type (the server's own, or for an IPC pipe the type
/// of the handle it received); `EBUSY` for a client that already has a socket. A
/// refused accept leaves the connection pending.
#[inline]
pub fn accept<K: StreamKind, C: StreamKind>(server: &K, client: &C) -> Result<()> {
    const OP: &str = "uv_accept";
    let s = raw(server, OP)?;
    let c = raw_of(client, OP)?;
    // SAFETY: both streams are open handles of this library.
    unsafe { contracts::same_loop(s.cast(), c.cast(), OP)? };
    // SAFETY: the server is open; `accepted_fd` is libuv's pending connection.
    #[cfg(unix)]
    if unsafe { (*s).accepted_fd } < 0 {
        return Err(Error::new(StatusCode::EAGAIN, OP));
    }
    // SAFETY: both are open; their type fields are set at init.
    let (server_type, client_type) = unsafe { ((*s).type_, (*c).type_) };
    // SAFETY: the server is open.
    let ipc = unsafe { is_ipc_pipe(s, server_type) };
    let want = if ipc {
        // SAFETY: an open pipe.
        unsafe { sys::uv_pipe_pending_type(s.cast()) }
    } else {
        server_type
    };
    if client_type != want {
        return Err(Error::new(StatusCode::EINVAL, OP));
    }
    // The client is a TCP socket or a pipe (its type is the server's, or an IPC
    // pipe's pending type, and it is a stream): its descriptor is its watcher's, as
    // `uv_fileno` reads it for those types, -1 when it has none.
    // SAFETY: the client is open; the field is only read.
    #[cfg(unix)]
    let has_socket = unsafe { (*c).io_watcher.fd } >= 0;
    // SAFETY: the client is open.
    #[cfg(not(unix))]
    let has_socket = unsafe { contracts::handle_fd(c.cast()) }.is_some();
    if has_socket {
        return Err(Error::new(StatusCode::EBUSY, OP));
    }
    // An IPC pipe passes handles over a socket only: a received FIFO or terminal
    // (a pipe to libuv) in one would fail at its first read or write with
    // `ENOTSOCK`. It goes into a pipe without IPC.
    // SAFETY: the server is open (`accepted_fd` is its pending descriptor, checked
    // above) and the client is an open stream of type `client_type`.
    #[cfg(unix)]
    if unsafe { is_ipc_pipe(c, client_type) } && !contracts::is_socket(unsafe { (*s).accepted_fd })
    {
        return Err(Error::new(StatusCode::EINVAL, OP));
    }
    // SAFETY: both streams are open, on one loop, of matching types, and the
    // client has no socket.
    check(unsafe { sys::uv_accept(s, c) }, OP)?;
    // A connection of a listening socket is a socket libuv's accept made in this
    // process, non-blocking, that nobody else has; an IPC pipe's received handles
    // come from another process, which may share them.
    if !ipc {
        // SAFETY: the client is open, a handle of this library, and its socket is
        // such a one.
        unsafe { crate::handle::set_own_nonblocking_fd(c.cast(), true) };
    } else {
        // A received socket may have other descriptors in this process (its
        // sender's, when it was sent from here): the library's, from now on.
        #[cfg(unix)]
        crate::handle::hold_socket(client.typed().handle(), contracts::any_copied_socket());
        // A received descriptor may share its open file with this process's
        // standard descriptors (a child sent back what it inherited).
        contracts::note_std_shares(client.typed().handle());
    }
    // SAFETY: the server is open, and of type `server_type`.
    unsafe { settle_read_watch::<K>(s, server_type) };
    Ok(())
}

#[cfg(unix)]
use crate::libuv_flags::{
    UV_HANDLE_READABLE as HANDLE_READABLE, UV_HANDLE_READ_EOF as HANDLE_READ_EOF,
};

/// After a `uv_accept` on `s`: taking the last handle an IPC pipe received makes
/// libuv watch the pipe for reading again, even when it is not reading: with
/// nobody to read, the loop would wake up for its data forever. A start and stop of
/// reading puts the watch back as it was. Only for an IPC pipe: on a listening
/// pipe that watch is the one for its connections, which the stop would end.
/// On Unix, after a read error libuv no longer takes the pipe as readable, and
/// `uv_read_start` would refuse (`ENOTCONN`) while the watch stays on, for an
/// error the poll reports on every iteration: the start and stop run with the
/// pipe marked readable, and its marks are put back after.
///
/// # Safety
/// `s` is an open stream of this library, of kind `K` and type `ty`.
unsafe fn settle_read_watch<K: StreamKind>(s: *mut sys::uv_stream_t, ty: sys::uv_handle_type) {
    // SAFETY: per the contract the stream is open (not closing: `uv_read_start`
    // takes it, and it has its descriptor); the callbacks are the crate's, and
    // reading stops before anything can call them. Only the two marks are changed,
    // and put back as they were: `uv_read_start` clears the end-of-stream one.
    unsafe {
        if is_ipc_pipe(s, ty) && (*s).read_cb.is_none() {
            #[cfg(unix)]
            let marks = (*s).flags & (HANDLE_READABLE | HANDLE_READ_EOF);
            #[cfg(unix)]
            {
                (*s).flags |= HANDLE_READABLE;
            }
            if sys::uv_read_start(s, Some(alloc_cb), Some(read_cb::<K>)) == 0 {
                sys::uv_read_stop(s);
            }
            #[cfg(unix)]
            {
                (*s).flags = ((*s).flags & !(HANDLE_READABLE | HANDLE_READ_EOF)) | marks;
            }
        }
    }
}

/// Takes the next handle the IPC pipe `server` received as its descriptor
/// (`uv_accept` into a pipe made for the purpose, which is closed at once, after
/// the descriptor was copied). For the kinds no stream takes (a UDP socket, a
/// terminal, a file, a kind libuv does not know), which would otherwise stay
/// first in the pipe's queue for good, with every handle received after them
/// behind.
///
/// `EAGAIN` when none is pending, `EINVAL` on a pipe without IPC and for a TCP
/// socket or a pipe (`accept` takes those); when the copy cannot be made
/// (`EMFILE`, ...), the error. A refused call leaves the handle pending.
#[cfg(unix)]
pub fn accept_fd<K: StreamKind>(server: &K) -> Result<std::os::fd::OwnedFd> {
    const OP: &str = "uv_accept";
    let s = raw(server, OP)?;
    // SAFETY: the server is open; its type field is set at init.
    let server_type = unsafe { (*s).type_ };
    // SAFETY: the server is open, of type `server_type`.
    if !unsafe { is_ipc_pipe(s, server_type) } {
        return Err(Error::new(StatusCode::EINVAL, OP));
    }
    // SAFETY: the server is open; `accepted_fd` is libuv's next received descriptor.
    let fd = unsafe { (*s).accepted_fd };
    if fd < 0 {
        return Err(Error::new(StatusCode::EAGAIN, OP));
    }
    // A TCP socket or a pipe goes into a stream with `accept`, which keeps the
    // library's hold on it: a raw descriptor of a socket that a handle of this
    // process listens on or reads could shut it down or make it blocking under
    // that handle (the sender, when it was sent from here).
    // SAFETY: an open IPC pipe.
    let kind = unsafe { sys::uv_pipe_pending_type(s.cast()) };
    if kind == sys::uv_handle_type_UV_TCP || kind == sys::uv_handle_type_UV_NAMED_PIPE {
        return Err(Error::new(StatusCode::EINVAL, OP));
    }
    // SAFETY: `fd` is open while libuv holds it as pending; only borrowed for the
    // copy.
    let copy = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
        .try_clone_to_owned()
        .map_err(|e| Error::from_raw(-e.raw_os_error().unwrap_or(libc::EIO), OP))?;
    let taker = crate::Pipe::new(&server.typed().handle().loop_(), false)?;
    let t = raw(&taker, OP)?;
    // SAFETY: both are open pipes of one loop; the taker has no descriptor. libuv
    // puts the received descriptor in it (or closes it on failure: the copy is
    // kept either way) and moves its queue on.
    let _ = unsafe { sys::uv_accept(s, t) };
    // Closing the taker closes the received descriptor; the copy is the caller's.
    taker.close();
    // SAFETY: the server is open, of type `server_type`.
    unsafe { settle_read_watch::<K>(s, server_type) };
    Ok(copy)
}

/// Whether the open stream `s`, of type `ty`, is a pipe made for handle passing.
///
/// # Safety
/// `s` is an open stream whose type is `ty`.
#[inline(always)]
unsafe fn is_ipc_pipe(s: *mut sys::uv_stream_t, ty: sys::uv_handle_type) -> bool {
    // SAFETY: per the contract; a pipe's struct starts with the stream fields, then
    // `ipc`.
    ty == sys::uv_handle_type_UV_NAMED_PIPE && unsafe { (*s.cast::<sys::uv_pipe_t>()).ipc } != 0
}

/// `uv_accept` into a new handle of the server's type, made on the server's loop
/// once a connection is pending.
pub fn accept_new<K: StreamKind>(server: &K) -> Result<K> {
    const OP: &str = "uv_accept";
    let s = raw(server, OP)?;
    // SAFETY: the server is open; `accepted_fd` is libuv's pending connection.
    #[cfg(unix)]
    if unsafe { (*s).accepted_fd } < 0 {
        return Err(Error::new(StatusCode::EAGAIN, OP));
    }
    // SAFETY: the server is open; its type field is set at init.
    let server_type = unsafe { (*s).type_ };
    // SAFETY: the server is open.
    let ipc = unsafe { is_ipc_pipe(s, server_type) };
    // A received FIFO goes into a pipe without IPC (`accept` refuses it in one).
    // SAFETY: the server is open; `accepted_fd` is its pending descriptor.
    #[cfg(unix)]
    let ipc = ipc && contracts::is_socket(unsafe { (*s).accepted_fd });
    let lp = server.typed().handle().loop_();
    let init = |l, h: *mut K::Raw| {
        // SAFETY: `l` is the server's open loop and `h` a fresh struct of the
        // server's type (`K::Raw`), initialised by the init function of that type.
        unsafe {
            match server_type {
                sys::uv_handle_type_UV_TCP => sys::uv_tcp_init(l, h.cast()),
                sys::uv_handle_type_UV_NAMED_PIPE => {
                    sys::uv_pipe_init(l, h.cast(), c_int::from(ipc))
                }
                _ => StatusCode::ENOTSUP.raw(),
            }
        }
    };
    // SAFETY: `init` calls the init function of the server's type, which is `K`'s,
    // with the loop and struct it is given, and returns its result (or ENOTSUP,
    // with the struct untouched).
    let client =
        unsafe { Typed::<K>::new(&lp, K::Slots::default(), OP, init) }.map(K::from_typed)?;
    accept(server, &client)?;
    Ok(client)
}

/// `uv_is_readable`; false once closing.
pub fn is_readable<K: StreamKind>(s: &K) -> bool {
    // SAFETY: the stream is open.
    raw(s, "uv_is_readable").is_ok_and(|r| unsafe { sys::uv_is_readable(r) != 0 })
}

/// `uv_is_writable`; false once closing.
pub fn is_writable<K: StreamKind>(s: &K) -> bool {
    // SAFETY: the stream is open.
    raw(s, "uv_is_writable").is_ok_and(|r| unsafe { sys::uv_is_writable(r) != 0 })
}

/// `uv_stream_set_blocking`.
pub fn set_blocking<K: StreamKind>(s: &K, blocking: bool) -> Result<()> {
    let raw = raw(s, "uv_stream_set_blocking")?;
    // Reads check the mode from now on.
    // SAFETY: the stream is open, a handle of this library.
    unsafe { crate::handle::set_own_nonblocking_fd(raw.cast(), false) };
    // A reading or listening stream must stay non-blocking (see
    // `contracts::non_blocking`, and `listen`). The check of the socket's other
    // descriptors and the change are one step for a handle of another thread that
    // receives the socket (`handle::hold_socket` takes the same lock): it is seen,
    // or its `read_start` sees the new mode.
    #[cfg(unix)]
    let _held = blocking.then(crate::contracts::process_state_lock);
    if blocking {
        // SAFETY: the stream is open.
        unsafe {
            contracts::not_reading(raw, "uv_stream_set_blocking")?;
            contracts::not_listening(raw, "uv_stream_set_blocking")?;
            // Another handle on the same socket may be reading.
            #[cfg(unix)]
            contracts::not_shared_for_blocking(raw, "uv_stream_set_blocking")?;
        }
    }
    // SAFETY: the stream is open.
    check(
        unsafe { sys::uv_stream_set_blocking(raw, c_int::from(blocking)) },
        "uv_stream_set_blocking",
    )
}

/// `uv_stream_get_write_queue_size`: bytes queued for writing; 0 once closing.
pub fn write_queue_size<K: StreamKind>(s: &K) -> usize {
    // SAFETY: the stream is open.
    raw(s, "uv_stream_get_write_queue_size")
        .map_or(0, |r| unsafe { sys::uv_stream_get_write_queue_size(r) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lends the buffer as the allocation callback does, and writes `n` bytes of a
    /// pattern into it as a read would; returns the bytes' place.
    fn read_into(rb: &ReadBuffer, n: usize) -> (*mut u8, usize) {
        let mut out = sys::uv_buf_t {
            base: std::ptr::null_mut(),
            len: 0,
        };
        // SAFETY: `out` is valid for a write.
        unsafe { rb.lend(READ_BUFFER_SIZE, &mut out) };
        assert!(!out.base.is_null() && out.len >= n);
        for i in 0..n {
            // SAFETY: inside the lent buffer.
            unsafe { *out.base.cast::<u8>().add(i) = i as u8 };
        }
        (out.base.cast(), out.len)
    }

    #[test]
    fn adopt_trades_the_buffer_for_an_empty_vec() {
        let rb = ReadBuffer::new();
        let (base, len) = read_into(&rb, 5000);
        assert_eq!(len, READ_BUFFER_SIZE);
        // SAFETY: the bytes just written; not read after the trade.
        let bytes = unsafe { std::slice::from_raw_parts(base, 5000) };
        let mut into = Vec::with_capacity(READ_BUFFER_SIZE);
        let into_ptr = into.as_ptr();
        // SAFETY: as a read callback would, with the read's bytes.
        assert!(unsafe { rb.adopt(bytes, &mut into) });
        // The Vec holds the loop's buffer, with the bytes, not a copy.
        assert_eq!(into.as_ptr(), base.cast_const());
        assert_eq!(into.len(), 5000);
        assert_eq!(into.capacity(), READ_BUFFER_SIZE);
        assert!(into.iter().enumerate().all(|(i, b)| *b == i as u8));
        // The buffer is home again, and is the Vec's old allocation.
        assert_eq!(rb.base.get().cast_const(), into_ptr);
        assert_eq!(rb.len.get(), READ_BUFFER_SIZE);
        // A second read lends it.
        let (base2, _) = read_into(&rb, 10);
        assert_eq!(base2.cast_const(), into_ptr);
        rb.give_back(base2);
        assert_eq!(rb.len.get(), READ_BUFFER_SIZE);
    }

    #[test]
    fn adopt_refuses_and_changes_nothing() {
        let rb = ReadBuffer::new();
        let (base, _) = read_into(&rb, 5000);
        // SAFETY: the bytes just written.
        let bytes = unsafe { std::slice::from_raw_parts(base, 5000) };
        // Not empty: refused.
        let mut full = vec![1u8];
        // SAFETY: as a read callback would.
        assert!(!unsafe { rb.adopt(bytes, &mut full) });
        assert_eq!(full, [1]);
        // Bytes that are not at the buffer's start: refused.
        let mut empty = Vec::new();
        // SAFETY: as a read callback would.
        assert!(!unsafe { rb.adopt(&bytes[1..], &mut empty) });
        assert!(rb.base.get().is_null(), "still lent out");
        // An empty Vec with no room: a new buffer of the default size replaces it.
        // SAFETY: as a read callback would.
        assert!(unsafe { rb.adopt(bytes, &mut empty) });
        assert_eq!(empty.as_ptr(), base.cast_const());
        assert_eq!(rb.len.get(), READ_BUFFER_SIZE);
        assert_ne!(rb.base.get(), base);
        // Home: nothing to adopt.
        let other = [0u8; 4];
        let mut e2 = Vec::new();
        // SAFETY: as a read callback would.
        assert!(!unsafe { rb.adopt(&other, &mut e2) });
        assert!(e2.is_empty());
    }
}
