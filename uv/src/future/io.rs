//! Stream reads as a `futures_core::Stream` of chunks ([`read_chunks`]) and
//! `futures-io` over any stream handle ([`AsyncStream`]).

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_core::Stream as FuturesStream;
use futures_io::{AsyncBufRead, AsyncRead, AsyncWrite};

use super::WakerSlot;
use crate::error::{Error, Result};
use crate::stream::Stream;
use crate::StatusCode;

/// Bytes read and not yet taken past which reading stops until they are taken
/// (backpressure towards the peer: the kernel's buffers fill, then the peer's).
const READ_HIGH_WATER: usize = 256 * 1024;
/// Reads of fewer bytes are copied out of the loop's read buffer (a copy this
/// small costs less than trading the buffers).
const ADOPT_MIN: usize = 4096;
/// Bytes written and not yet confirmed by libuv past which `poll_write` waits.
const WRITE_HIGH_WATER: usize = 256 * 1024;

/// What the read callback shares with the reader.
#[derive(Default)]
struct ReadState {
    incoming: RefCell<Vec<u8>>,
    /// Bytes read after `incoming` (a reader that adopts: a large read that came
    /// while `incoming` held bytes), with reading stopped; they become
    /// `incoming` when it is taken (`start`).
    next: RefCell<Vec<u8>>,
    /// `next` is not empty.
    has_next: Cell<bool>,
    eof: Cell<bool>,
    /// Set through `set_error`; `take_error` gives it out and keeps a copy, for
    /// [`ReadState::end`].
    error: Cell<Option<Error>>,
    /// `error` holds one not given out yet (a flag test instead of a move of the
    /// error).
    has_error: Cell<bool>,
    reading: Cell<bool>,
    /// Reads land in `incoming` without a copy when it is empty (the loop's read
    /// buffer becomes `incoming`, and `incoming`'s allocation the loop's buffer):
    /// for a reader that keeps `incoming` and copies out of it (`AsyncStream`),
    /// not for one that hands it out (`ReadChunks`: a chunk of a few bytes would
    /// keep a whole read buffer).
    adopt: bool,
    waker: WakerSlot,
}

/// The read callback's share of a [`ReadState`]. The handle drops its callback
/// when it closes (through any of its values, or with its loop) or stops reading:
/// reading is then off, and the waiting task is woken, so that its next poll
/// starts reading again or, on a closed handle, ends with `ClosedHandle` instead
/// of waiting for a read that cannot come.
struct ReadGuard(Rc<ReadState>);

impl Drop for ReadGuard {
    fn drop(&mut self) {
        self.0.reading.set(false);
        super::waking_in_drop(|| self.0.waker.wake());
    }
}

impl ReadState {
    fn set_error(&self, e: Error) {
        self.error.set(Some(e));
        self.has_error.set(true);
    }

    #[inline]
    fn take_error(&self) -> Option<Error> {
        if self.has_error.replace(false) {
            self.take_error_kept()
        } else {
            None
        }
    }

    /// The error, given out, and a copy kept for `end`.
    #[cold]
    #[inline(never)]
    fn take_error_kept(&self) -> Option<Error> {
        let e = self.error.take();
        self.error.set(e.clone());
        e
    }

    /// How reading ended, as the read callback learnt it (given out by the reader
    /// already or not): `None` while it has not ended.
    fn end(&self) -> Option<Result<()>> {
        match self.error.take() {
            Some(e) => Some(Err(e)),
            None if self.eof.get() => Some(Ok(())),
            None => None,
        }
    }

    /// Starts reading, unless it is on or the stream ended, or bytes read after
    /// `incoming` wait in `next` (they become `incoming` once it is empty:
    /// reading starts again when they are taken in turn).
    fn start<S: Stream>(self: &Rc<Self>, s: &S) -> Result<()> {
        if self.reading.get() {
            return Ok(());
        }
        if self.has_next.get() {
            self.promote_next();
            return Ok(());
        }
        if self.eof.get() {
            return Ok(());
        }
        let guard = ReadGuard(self.clone());
        s.read_start(move |s, r| {
            let st = &guard.0;
            match r {
                // SAFETY: this is the read callback, these its bytes (not read
                // after this call).
                Ok(bytes) if bytes.len() >= ADOPT_MIN => unsafe { st.take_large(s, bytes) },
                Ok(bytes) => {
                    let mut inc = st.incoming.borrow_mut();
                    if inc.capacity() - inc.len() >= bytes.len() || !st.adopt || inc.is_empty() {
                        inc.extend_from_slice(bytes);
                        if inc.len() >= READ_HIGH_WATER {
                            let _ = s.read_stop();
                            st.reading.set(false);
                        }
                    } else {
                        drop(inc);
                        st.park_small(s, bytes);
                    }
                }
                Err(e) => {
                    let _ = s.read_stop();
                    st.reading.set(false);
                    if e.code() == StatusCode::EOF {
                        st.eof.set(true);
                    } else {
                        st.set_error(e);
                    }
                }
            }
            // Read callbacks run only in the loop's I/O phase.
            super::wake_in_io(s.typed().shared_raw(), &st.waker);
        })?;
        self.reading.set(true);
        Ok(())
    }

    /// A small read, from `s`'s read callback, that `incoming` (bytes of a reader
    /// that adopts, not taken yet) has no room for: rather than grow `incoming`
    /// (a copy of all it holds, a whole read buffer after a large read), the bytes
    /// go to `next`, as a large read's would, and reading stops until `incoming`
    /// is taken (so that no read lands after `next`).
    #[cold]
    #[inline(never)]
    fn park_small<S: Stream>(&self, s: &S, bytes: &[u8]) {
        // (Behind the bytes `next` may hold already, though reading stopped then.)
        self.next.borrow_mut().extend_from_slice(bytes);
        self.has_next.set(true);
        let _ = s.read_stop();
        self.reading.set(false);
    }

    /// `next` becomes `incoming` once `incoming` is empty (the reader took it);
    /// `next` keeps the emptied allocation, for the loop's buffer next time.
    #[cold]
    #[inline(never)]
    fn promote_next(&self) {
        let mut inc = self.incoming.borrow_mut();
        if inc.is_empty() {
            std::mem::swap(&mut *inc, &mut *self.next.borrow_mut());
            self.has_next.set(false);
        }
    }

    /// Stops reading for a reader that is gone: its waker is let go first (the
    /// read callback's drop must not wake its task).
    fn stop<S: Stream>(&self, s: &S) {
        self.waker.let_go();
        if self.reading.replace(false) {
            let _ = s.read_stop();
        }
    }

    /// Stops reading and hands `s` on with what its reader had not given out:
    /// `bytes` (the reader's own, if any), then the bytes read and not taken,
    /// and the end (see [`ReadParts`]).
    fn hand_on<S: Stream>(&self, s: &S, mut bytes: Vec<u8>) -> ReadParts<S> {
        self.stop(s);
        bytes.append(&mut self.incoming.borrow_mut());
        bytes.append(&mut self.next.borrow_mut());
        ReadParts {
            stream: s.clone(),
            bytes,
            end: self.end(),
        }
    }
}

impl ReadState {
    /// A large read, from `s`'s read callback: into an empty `incoming` of a reader
    /// that adopts, the loop's buffer becomes `incoming` (no copy, see
    /// `ReadBuffer::adopt`); into a non-empty `incoming` of such a reader, the
    /// loop's buffer becomes `next` (no copy either, no growth of `incoming`) and
    /// reading stops until `incoming` is taken (so that no read lands after
    /// `next`); else the bytes are appended. Reading stops at the high-water mark,
    /// as for small reads. Out of line, so that the small reads' path keeps its
    /// registers.
    ///
    /// # Safety
    /// Called from `s`'s read callback with its bytes, which are not read after
    /// this call.
    #[inline(never)]
    unsafe fn take_large<S: Stream>(&self, s: &S, bytes: &[u8]) {
        let mut inc = self.incoming.borrow_mut();
        // SAFETY: in a read callback the stream is open and its loop's shared
        // state alive (kept by the loop's owner); `adopt`'s contract is the
        // caller's (these are the read callback's bytes, not read after a `true`).
        let adopted = self.adopt
            && inc.is_empty()
            && unsafe {
                (*s.typed().shared_raw())
                    .read_buffer()
                    .adopt(bytes, &mut inc)
            };
        // (`incoming` not empty: `next` holds bytes only behind some.)
        if !adopted && self.adopt && !inc.is_empty() && !self.has_next.get() {
            let mut next = self.next.borrow_mut();
            // SAFETY: as above (`next` is empty: `has_next` is clear).
            if unsafe {
                (*s.typed().shared_raw())
                    .read_buffer()
                    .adopt(bytes, &mut next)
            } {
                self.has_next.set(true);
                let _ = s.read_stop();
                self.reading.set(false);
                return;
            }
        }
        if !adopted {
            inc.extend_from_slice(bytes);
        }
        if inc.len() >= READ_HIGH_WATER {
            let _ = s.read_stop();
            self.reading.set(false);
        }
    }
}

/// What [`AsyncStream::into_parts`] and [`ReadChunks::into_parts`] hand on: the
/// stream handle, the bytes the wrapper read and did not give out, and how the
/// stream's reading ended, if the wrapper saw it end.
///
/// libuv reports the end of a stream, or a read error, once: the next reader of
/// `stream` may never see it again (a terminal's end of input, Ctrl-D, is read
/// once; after a read error libuv refuses to read, `ENOTCONN`). So `end` comes
/// with the bytes: after `bytes`, the stream's data ends there and then, and a
/// new reader (`read_start`, a new wrapper) would wait for data that cannot come.
/// The fields are public and the struct is not `non_exhaustive`: a destructuring
/// `let ReadParts { stream, bytes, end } = ...` names each one.
#[derive(Debug)]
#[must_use = "`end` says whether the stream's data already ended"]
pub struct ReadParts<S> {
    /// The stream handle (reading stopped).
    pub stream: S,
    /// The bytes read and not given out, in order (before whatever the stream's
    /// next reader reads).
    pub bytes: Vec<u8>,
    /// `None`: reading has not ended, the next reader goes on after `bytes`.
    /// `Some(Ok(()))`: the end of the stream came after `bytes` (also when the
    /// wrapper gave it out already, as a 0-byte read or the end of its chunks).
    /// `Some(Err(e))`: the read error that ended the wrapper's reading (given
    /// out already or not).
    pub end: Option<Result<()>>,
}

/// Reads `stream` as a `futures_core::Stream` of chunks: each item is what was
/// read since the previous one (one or more reads, at least one byte), an error,
/// and the end of the stream ends it. Reading starts at the first poll and stops
/// while 256 KiB are waiting to be taken.
///
/// Dropping it stops reading (bytes read and not taken are dropped, and so is an
/// end of the stream or a read error not yet given out;
/// [`ReadChunks::into_parts`] gives them back). The stream handle is not closed:
/// it closes when its last value goes, as usual.
pub fn read_chunks<S: Stream>(stream: S) -> ReadChunks<S> {
    ReadChunks {
        stream,
        st: Rc::new(ReadState::default()),
        done: false,
    }
}

/// The stream of [`read_chunks`].
pub struct ReadChunks<S: Stream> {
    stream: S,
    st: Rc<ReadState>,
    done: bool,
}

impl<S: Stream> std::fmt::Debug for ReadChunks<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadChunks")
            .field("reading", &self.st.reading.get())
            .field("done", &self.done)
            .finish()
    }
}

impl<S: Stream> ReadChunks<S> {
    /// The stream handle.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream handle back with the bytes read and not taken yet and, if the
    /// stream's reading ended, how (see [`ReadParts`]). Reading stops; the bytes
    /// after those are still the stream's, for its next reader. Dropping the
    /// stream instead drops the bytes and the end.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use uv::future::{self as uvf, ReadParts};
    ///
    /// let lp = uv::Loop::new()?;
    /// let (a, b) = uv::Pipe::pair(&lp)?;
    /// let ReadParts { stream, bytes, end } = lp.block_on(async move {
    ///     uvf::write(&a, b"first".to_vec()).await?;
    ///     a.close();
    ///     let mut chunks = uvf::read_chunks(b);
    ///     let first = chunks.next().await.unwrap()?;
    ///     assert_eq!(first, b"first");
    ///     // Let the end of the stream come in, unseen by the chunks' reader.
    ///     for _ in 0..3 {
    ///         uvf::yield_now().await;
    ///     }
    ///     Ok::<_, uv::Error>(chunks.into_parts())
    /// })??;
    /// assert!(bytes.is_empty());
    /// match end {
    ///     // The chunks' reader saw the end come: the next reader of `stream`
    ///     // must not wait for it.
    ///     Some(end) => end?,
    ///     // It did not: the next reader sees it.
    ///     None => {}
    /// }
    /// stream.close();
    /// # Ok::<(), uv::Error>(())
    /// ```
    pub fn into_parts(self) -> ReadParts<S> {
        self.st.hand_on(&self.stream, Vec::new())
    }
}

impl<S: Stream> Unpin for ReadChunks<S> {}

impl<S: Stream> FuturesStream for ReadChunks<S> {
    type Item = Result<Vec<u8>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let chunk = std::mem::take(&mut *this.st.incoming.borrow_mut());
        if !chunk.is_empty() {
            if let Err(e) = this.st.start(&this.stream) {
                this.st.set_error(e);
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        if let Some(e) = this.st.take_error() {
            this.done = true;
            return Poll::Ready(Some(Err(e)));
        }
        if this.st.eof.get() {
            this.done = true;
            return Poll::Ready(None);
        }
        if let Err(e) = this.st.start(&this.stream) {
            this.done = true;
            return Poll::Ready(Some(Err(e)));
        }
        this.st.waker.register(cx);
        Poll::Pending
    }
}

impl<S: Stream> Drop for ReadChunks<S> {
    fn drop(&mut self) {
        self.st.stop(&self.stream);
    }
}

#[derive(Default)]
struct WriteState {
    inflight: Cell<usize>,
    error: Cell<Option<Error>>,
    /// `error` holds one (a flag test instead of a move of the error).
    has_error: Cell<bool>,
    waker: WakerSlot,
}

#[derive(Default)]
struct ShutdownState {
    started: Cell<bool>,
    result: Cell<Option<Result<()>>>,
    waker: WakerSlot,
}

/// A stream handle (`Tcp`, `Pipe`, `Tty`, any [`Stream`]) as `futures-io`'s
/// `AsyncRead`, `AsyncBufRead` and `AsyncWrite`, so that `futures::io` works on
/// it (`read_to_end`, `copy`, `BufReader::lines`, codecs).
///
/// - **Reads** start at the first read and land in a buffer of the wrapper (a copy
///   out of the loop's read buffer; a read of 4 KiB or more trades buffers with
///   the loop instead: into an empty buffer, or kept as a second buffer, reading
///   then paused until the first is taken); reading stops while 256 KiB are
///   waiting to be taken, and starts again when they are. End of stream reads as
///   0 bytes.
/// - **Writes**: `poll_write` first tries to write at once (`uv_try_write`, no
///   request) when nothing is queued; otherwise it queues a copy of the bytes
///   (`uv_write`) and reports them as accepted. While 256 KiB of queued writes are
///   not confirmed by libuv, it waits (backpressure). A failed queued write is
///   reported by the next `poll_write`, `poll_flush` or `poll_close`.
///   `poll_flush` waits until every queued write is confirmed; `poll_close`
///   flushes, then shuts the write side down (`uv_shutdown`) and waits for it.
/// - **Dropping** the wrapper stops reading (bytes read and not taken are
///   dropped, and so is an end of the stream not yet read); queued writes
///   complete (nothing reports them). The handle is not
///   closed: it closes when its last value goes, or
///   [`into_inner`](AsyncStream::into_inner) gives it back
///   ([`into_parts`](AsyncStream::into_parts) with the bytes read ahead and the
///   end of the stream, if it came).
pub struct AsyncStream<S: Stream> {
    stream: S,
    rd: Rc<ReadState>,
    rbuf: Vec<u8>,
    rpos: usize,
    wr: Rc<WriteState>,
    shut: Rc<ShutdownState>,
}

impl<S: Stream> std::fmt::Debug for AsyncStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncStream")
            .field("buffered", &(self.rbuf.len() - self.rpos))
            .field("inflight", &self.wr.inflight.get())
            .finish()
    }
}

impl<S: Stream> AsyncStream<S> {
    /// Wraps a stream handle (the value is a reference to the handle; keep a clone
    /// for other uses, such as `peer_addr`).
    pub fn new(stream: S) -> AsyncStream<S> {
        AsyncStream {
            stream,
            rd: Rc::new(ReadState {
                adopt: true,
                ..ReadState::default()
            }),
            rbuf: Vec::new(),
            rpos: 0,
            wr: Rc::new(WriteState::default()),
            shut: Rc::new(ShutdownState::default()),
        }
    }

    /// The stream handle.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream handle back (reading stops; bytes read and not taken are
    /// dropped, and so is an end of the stream or a read error the wrapper saw:
    /// [`into_parts`](Self::into_parts) gives them too). The wrapper reads ahead
    /// of what was asked (up to 256 KiB): what the peer sent after the bytes
    /// taken may be among them, and the end of the stream after them, which the
    /// stream's next reader may then never see.
    pub fn into_inner(self) -> S {
        self.rd.stop(&self.stream);
        self.stream.clone()
    }

    /// The stream handle back with the bytes read and not taken, in order, and,
    /// if the stream's reading ended, how (see [`ReadParts`]). Reading stops; the
    /// bytes after those are still the stream's, for its next reader: a protocol
    /// read in part through the wrapper can go on with another reader
    /// (`read_start`, a new wrapper) without losing what the wrapper read ahead,
    /// nor the end of the stream it saw.
    ///
    /// ```
    /// use futures::io::AsyncReadExt;
    /// use uv::future::{self as uvf, AsyncStream, ReadParts};
    ///
    /// let lp = uv::Loop::new()?;
    /// let (a, b) = uv::Pipe::pair(&lp)?;
    /// let (head, parts) = lp.block_on(async move {
    ///     uvf::write(&a, b"HEAD:body".to_vec()).await?;
    ///     let mut s = AsyncStream::new(b);
    ///     let mut head = [0u8; 5];
    ///     s.read_exact(&mut head).await?;
    ///     a.close();
    ///     Ok::<_, Box<dyn std::error::Error>>((head, s.into_parts()))
    /// })??;
    /// let ReadParts { stream, bytes, end } = parts;
    /// assert_eq!(&head, b"HEAD:");
    /// assert_eq!(bytes, b"body");
    /// match end {
    ///     // The wrapper saw the end: no reader of `stream` will see it again.
    ///     Some(end) => end?,
    ///     // Not yet: the next reader of `stream` will.
    ///     None => {}
    /// }
    /// stream.close();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_parts(mut self) -> ReadParts<S> {
        let head = if self.rpos == 0 {
            std::mem::take(&mut self.rbuf)
        } else {
            self.rbuf[self.rpos..].to_vec()
        };
        self.rd.hand_on(&self.stream, head)
    }

    /// Bytes queued for writing and not yet confirmed by libuv.
    pub fn write_inflight(&self) -> usize {
        self.wr.inflight.get()
    }

    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.rpos < self.rbuf.len() {
            return Poll::Ready(Ok(()));
        }
        self.rbuf.clear();
        self.rpos = 0;
        std::mem::swap(&mut self.rbuf, &mut *self.rd.incoming.borrow_mut());
        if !self.rbuf.is_empty() {
            // Reading may have stopped for backpressure: the bytes are taken now.
            if let Err(e) = self.rd.start(&self.stream) {
                self.rd.set_error(e);
            }
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = self.rd.take_error() {
            self.rd.eof.set(true);
            return Poll::Ready(Err(e.into()));
        }
        if self.rd.eof.get() {
            return Poll::Ready(Ok(()));
        }
        if let Err(e) = self.rd.start(&self.stream) {
            return Poll::Ready(Err(e.into()));
        }
        self.rd.waker.register(cx);
        Poll::Pending
    }

    /// The next bytes read, as a vector of their own: what was read since the
    /// previous read (at least one byte), or an empty vector at the end of the
    /// stream. Bytes already in the wrapper's buffer (left by `AsyncBufRead` or a
    /// short `AsyncRead`) come first.
    ///
    /// No copy of the bytes is made: the vector the reads landed in is handed
    /// over, and `spare` (cleared) takes its place for the reads to come, so that
    /// a loop that hands each chunk back once done with it allocates nothing.
    /// (`AsyncRead::read` copies into the caller's buffer instead.) A read of 4
    /// KiB or more lands in a buffer traded with the loop's, whose capacity is the
    /// loop's read buffer's (64 KiB): hand it back, or drop it, rather than keep
    /// many small chunks.
    ///
    /// Dropped before it resolves, the future takes nothing (`spare` is dropped).
    ///
    /// ```
    /// use futures::io::AsyncWriteExt;
    /// use uv::future::AsyncStream;
    ///
    /// let lp = uv::Loop::new()?;
    /// let (a, b) = uv::Pipe::pair(&lp)?;
    /// let got = lp.block_on(async move {
    ///     let mut w = AsyncStream::new(a);
    ///     w.write_all(b"hello, world").await?;
    ///     w.close().await?;
    ///     let mut r = AsyncStream::new(b);
    ///     let mut all = Vec::new();
    ///     let mut chunk = Vec::new();
    ///     loop {
    ///         chunk = r.read_chunk(chunk).await?;
    ///         if chunk.is_empty() {
    ///             break; // the end of the stream
    ///         }
    ///         all.extend_from_slice(&chunk);
    ///     }
    ///     r.into_inner().close();
    ///     w.into_inner().close();
    ///     Ok::<_, std::io::Error>(all)
    /// })??;
    /// assert_eq!(got, b"hello, world");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_chunk(&mut self, spare: Vec<u8>) -> ReadChunk<'_, S> {
        ReadChunk { s: self, spare }
    }

    /// The poll of [`read_chunk`](Self::read_chunk): `spare` (cleared) replaces
    /// the buffer handed out when it resolves (it is then empty, with no
    /// capacity); while it is pending, `spare` is kept as it is.
    pub fn poll_read_chunk(
        &mut self,
        cx: &mut Context<'_>,
        spare: &mut Vec<u8>,
    ) -> Poll<io::Result<Vec<u8>>> {
        if self.rpos < self.rbuf.len() {
            return Poll::Ready(Ok(self.take_buffered(spare)));
        }
        let taken = {
            let mut inc = self.rd.incoming.borrow_mut();
            if inc.is_empty() {
                None
            } else {
                spare.clear();
                Some(std::mem::replace(&mut *inc, std::mem::take(spare)))
            }
        };
        if let Some(chunk) = taken {
            self.resume_reading();
            return Poll::Ready(Ok(chunk));
        }
        if let Some(e) = self.rd.take_error() {
            self.rd.eof.set(true);
            return Poll::Ready(Err(e.into()));
        }
        if self.rd.eof.get() {
            spare.clear();
            return Poll::Ready(Ok(std::mem::take(spare)));
        }
        if let Err(e) = self.rd.start(&self.stream) {
            return Poll::Ready(Err(e.into()));
        }
        if !self.rd.incoming.borrow().is_empty() {
            // `start` moved bytes read earlier into place (reading had stopped
            // behind them): they are the chunk.
            return self.poll_read_chunk(cx, spare);
        }
        self.rd.waker.register(cx);
        Poll::Pending
    }

    /// The bytes left in the wrapper's buffer, as a chunk (the buffer itself when
    /// none of it was taken, `spare` replacing it).
    #[cold]
    fn take_buffered(&mut self, spare: &mut Vec<u8>) -> Vec<u8> {
        let chunk = if self.rpos == 0 {
            spare.clear();
            std::mem::replace(&mut self.rbuf, std::mem::take(spare))
        } else {
            self.rbuf[self.rpos..].to_vec()
        };
        self.rbuf.clear();
        self.rpos = 0;
        chunk
    }

    #[inline]
    fn take_write_error(&self) -> io::Result<()> {
        if !self.wr.has_error.get() {
            return Ok(());
        }
        self.wr.has_error.set(false);
        match self.wr.error.take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

impl<S: Stream> Unpin for AsyncStream<S> {}

/// The future of [`AsyncStream::read_chunk`]: the next bytes read, as a vector
/// of their own (empty at the end of the stream).
pub struct ReadChunk<'a, S: Stream> {
    s: &'a mut AsyncStream<S>,
    spare: Vec<u8>,
}

impl<S: Stream> std::fmt::Debug for ReadChunk<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadChunk")
            .field("stream", &self.s)
            .finish()
    }
}

impl<S: Stream> std::future::Future for ReadChunk<'_, S> {
    type Output = io::Result<Vec<u8>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<Vec<u8>>> {
        let this = self.get_mut();
        this.s.poll_read_chunk(cx, &mut this.spare)
    }
}

impl<S: Stream> AsyncRead for AsyncStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.rpos >= this.rbuf.len() && !buf.is_empty() {
            // Nothing buffered: bytes read since that fit `buf` go straight there
            // (no trip through the wrapper's buffer).
            let n = {
                let mut inc = this.rd.incoming.borrow_mut();
                let n = inc.len();
                if n != 0 && n <= buf.len() {
                    buf[..n].copy_from_slice(&inc);
                    inc.clear();
                }
                n
            };
            if n != 0 && n <= buf.len() {
                this.resume_reading();
                return Poll::Ready(Ok(n));
            }
            // Nothing read yet, reading on, no error or end to report: wait.
            let rd = &this.rd;
            if n == 0 && rd.reading.get() && !rd.has_error.get() && !rd.eof.get() {
                rd.waker.register(cx);
                return Poll::Pending;
            }
        }
        this.poll_read_buffered(cx, buf)
    }
}

impl<S: Stream> AsyncStream<S> {
    /// Reading may have stopped for backpressure: the bytes were taken now.
    #[inline]
    fn resume_reading(&self) {
        if !self.rd.reading.get() {
            self.restart_reading();
        }
    }

    #[inline(never)]
    fn restart_reading(&self) {
        if let Err(e) = self.rd.start(&self.stream) {
            self.rd.set_error(e);
        }
    }

    /// `poll_read` through the wrapper's buffer (or waiting for bytes).
    #[inline(never)]
    fn poll_read_buffered(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match self.fill(cx) {
            Poll::Ready(Ok(())) => {
                let avail = &self.rbuf[self.rpos..];
                let n = avail.len().min(buf.len());
                buf[..n].copy_from_slice(&avail[..n]);
                self.rpos += n;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: Stream> AsyncBufRead for AsyncStream<S> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        match this.fill(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(&this.rbuf[this.rpos..])),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.rpos = (this.rpos + amt).min(this.rbuf.len());
    }
}

impl<S: Stream> AsyncWrite for AsyncStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.take_write_error()?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.wr.inflight.get() == 0 {
            match this.stream.try_write(buf) {
                Ok(n) if n > 0 => return Poll::Ready(Ok(n)),
                Ok(_) => {}
                Err(e) if e.code() == StatusCode::EAGAIN => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
        if this.wr.inflight.get() >= WRITE_HIGH_WATER {
            this.wr.waker.register(cx);
            return Poll::Pending;
        }
        let len = buf.len();
        let wr = this.wr.clone();
        this.stream.write(buf.to_vec(), move |_, r| {
            wr.inflight.set(wr.inflight.get() - len);
            if let Err(e) = r {
                // The first error is the one reported.
                let first = wr.error.take().unwrap_or(e);
                wr.error.set(Some(first));
                wr.has_error.set(true);
            }
            wr.waker.wake();
        })?;
        this.wr.inflight.set(this.wr.inflight.get() + len);
        Poll::Ready(Ok(len))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.take_write_error()?;
        if this.wr.inflight.get() == 0 {
            return Poll::Ready(Ok(()));
        }
        this.wr.waker.register(cx);
        Poll::Pending
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.shut.started.get() {
            match Pin::new(&mut *this).poll_flush(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let shut = this.shut.clone();
            this.stream.shutdown(move |_, r| {
                shut.result.set(Some(r));
                shut.waker.wake();
            })?;
            this.shut.started.set(true);
        }
        match this.shut.result.take() {
            Some(r) => {
                // Polled again after the end: done.
                this.shut.result.set(Some(Ok(())));
                Poll::Ready(r.map_err(io::Error::from))
            }
            None => {
                this.shut.waker.register(cx);
                Poll::Pending
            }
        }
    }
}

impl<S: Stream> Drop for AsyncStream<S> {
    fn drop(&mut self) {
        // Queued writes and the shutdown complete later: they must not wake the
        // gone wrapper's task.
        self.wr.waker.let_go();
        self.shut.waker.let_go();
        self.rd.stop(&self.stream);
    }
}
