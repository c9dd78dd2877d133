//! Files and directories of the file-system requests (`uv::Fs`): [`File`] owns a
//! descriptor and closes it once, [`Dir`] owns a libuv directory stream, and the
//! values the generated functions keep in a request while it runs (a file's
//! descriptor stays open while a request on it is in flight; buffers stay put).
//!
//! A request on a `File` or `Dir` holds a reference to what it owns, so dropping
//! the value with requests in flight closes nothing under them: the descriptor is
//! closed when the last of them completes.

use std::cell::Cell;
use std::ffi::{c_int, CStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use libuv_sys2 as sys;

use crate::error::{Error, Result};
use crate::loop_::LoopHandle;
use crate::loop_request::{fs_results, no_context, run_sync, submit, Request};
use crate::requests::Fs;
use crate::{DirentType, StatusCode, WriteData};

/// An open file (a descriptor from [`Fs::open`](crate::Fs::open),
/// [`Fs::mkstemp`](crate::Fs::mkstemp) or a `std::fs::File`), closed exactly once:
/// by [`File::close`] / [`File::close_sync`], or when the last clone is dropped
/// and the requests in flight on it completed. Clones share the descriptor (a
/// callback that closes the file takes a clone); a close is refused while other
/// clones or requests hold it.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("uv-file-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let lp = uv::Loop::new()?;
/// let path = dir.join("f");
/// let file = uv::Fs::open_sync(&lp, &path, uv::OpenFlags::CREAT | uv::OpenFlags::RDWR, 0o644)?;
/// assert_eq!(uv::Fs::write_sync(&lp, &file, "hello", Some(0))?, 5);
/// let bytes = uv::Fs::read_sync(&lp, &file, Vec::with_capacity(16), Some(0))?;
/// assert_eq!(bytes, b"hello");
/// file.close_sync(&lp)?;
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), uv::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct File {
    inner: Rc<FileInner>,
}

#[derive(Debug)]
struct FileInner {
    fd: OwnedFd,
}

/// A descriptor handed to libuv's asynchronous close. Set to `None` once libuv
/// ran the close; while it is still here (the close was cancelled unrun, or
/// never submitted) it is closed synchronously, by `close_now` or on drop.
#[derive(Debug)]
struct CloseFd(Option<RawFd>);

impl CloseFd {
    fn raw(&self) -> RawFd {
        self.0.unwrap_or(-1)
    }

    /// Closes the descriptor now (`uv_fs_close` without a loop), once.
    fn close_now(&mut self, op: &'static str) -> Result<()> {
        let Some(fd) = self.0.take() else {
            return Ok(());
        };
        // SAFETY: zeroed is a valid unstarted request. Without a callback libuv's
        // close runs `close(2)` at once and never reads the (null) loop (INIT/POST
        // in src/unix/fs.c, as for `Dir`'s drop); `fd` is open and owned by this
        // value alone (libuv dropped its close unrun), closed once here.
        let rc = unsafe {
            let mut req: sys::uv_fs_t = std::mem::zeroed();
            let rc = sys::uv_fs_close(std::ptr::null_mut(), &mut req, fd, None);
            sys::uv_fs_req_cleanup(&mut req);
            rc
        };
        crate::error::check(rc, op)
    }
}

impl Drop for CloseFd {
    fn drop(&mut self) {
        let _ = self.close_now("uv_fs_close");
    }
}

impl File {
    /// Whether requests on this file are in flight or other clones hold it (a
    /// close is refused until they are done).
    pub fn is_busy(&self) -> bool {
        Rc::strong_count(&self.inner) > 1
    }

    /// Takes the descriptor out as a `std::fs::File`; `EBUSY` (the file handed
    /// back) while requests on it are in flight or other clones hold it.
    pub fn into_std(self) -> std::result::Result<std::fs::File, crate::Rejected<File>> {
        match Rc::try_unwrap(self.inner) {
            Ok(inner) => Ok(std::fs::File::from(inner.fd)),
            Err(inner) => Err(crate::Rejected::new(
                Error::new(StatusCode::EBUSY, "File::into_std"),
                File { inner },
            )),
        }
    }

    /// The descriptor, for libuv's close: none while requests are in flight
    /// (`EBUSY`) or once the loop is closed.
    fn take_for_close(self, loop_: &LoopHandle) -> std::result::Result<RawFd, Error> {
        if loop_.shared().raw_for_new().is_none() {
            return Err(Error::closed_loop("uv_fs_close"));
        }
        match Rc::try_unwrap(self.inner) {
            Ok(inner) => Ok(inner.fd.into_raw_fd()),
            Err(inner) => {
                // Dropped: closed when the last request on it completes.
                drop(inner);
                Err(Error::new(StatusCode::EBUSY, "uv_fs_close"))
            }
        }
    }

    /// Closes the file on the thread pool (`uv_fs_close`); `callback` gets the
    /// result. Refused (nothing started, no callback) with `EBUSY` while requests on
    /// the file are in flight or other clones hold it, or `ClosedLoop`; the
    /// descriptor is then closed as on drop (once the last holder lets go). libuv closes the descriptor even when
    /// `close(2)` reports an error. A close that is cancelled before a thread takes
    /// it ([`Request::cancel`], or dropping a future of it) is not lost: the
    /// descriptor is closed on the loop thread instead, and `callback` gets that
    /// close's result.
    pub fn close(
        self,
        loop_: &LoopHandle,
        callback: impl FnOnce(Result<()>) + 'static,
    ) -> Result<Request> {
        let fd = CloseFd(Some(self.take_for_close(loop_)?));
        let read = |req, fd: &mut CloseFd, op| {
            // SAFETY: the core passes the completed close request.
            match unsafe { fs_results::unit(req, op) } {
                // Dropped unrun by libuv: the descriptor is still open.
                Err(e) if e.code() == StatusCode::ECANCELED => fd.close_now(op),
                r => {
                    // libuv ran close(2), which releases the descriptor even
                    // when it reports an error.
                    fd.0 = None;
                    r
                }
            }
        };
        let start = |l, req, fd: &CloseFd, done| {
            // SAFETY: the loop is open; the request stays put until `done`; libuv
            // owns the descriptor from here until the reader says otherwise (no
            // Rust value uses it meanwhile).
            unsafe { sys::uv_fs_close(l, req, fd.raw(), done) }
        };
        // SAFETY: `start` starts the `uv_fs_t` once with `uv_fs_close`, with `done` as its callback, and returns its result; `read` gets the completed request.
        unsafe {
            submit::<Fs, (), CloseFd, _, _>(
                loop_,
                "uv_fs_close",
                read,
                no_context,
                |slot| Ok(slot.write(fd)),
                callback,
                start,
            )
        }
    }

    /// Closes the file now (`uv_fs_close`, blocking); refused as [`File::close`].
    pub fn close_sync(self, loop_: &LoopHandle) -> Result<()> {
        let fd = self.take_for_close(loop_)?;
        let read = |req, _: &mut (), op| {
            // SAFETY: `run_sync` passes the completed request.
            unsafe { fs_results::unit(req, op) }
        };
        let start = |l, req, _: &()| {
            // SAFETY: the loop is open; libuv owns `fd` from here and closes it
            // before returning.
            unsafe { sys::uv_fs_close(l, req, fd, None) }
        };
        // SAFETY: `start` starts the `uv_fs_t` once, with no callback, and returns the result.
        unsafe { run_sync::<Fs, (), _, _>(loop_, "uv_fs_close", read, no_context, (), start) }
    }

    /// Wraps a descriptor libuv gave (`uv_fs_open`'s result).
    ///
    /// # Safety
    /// `fd` is an open descriptor nothing else owns.
    pub(crate) unsafe fn from_raw(fd: RawFd) -> File {
        // SAFETY: the caller's contract.
        File::from(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl From<OwnedFd> for File {
    fn from(fd: OwnedFd) -> File {
        File {
            inner: Rc::new(FileInner { fd }),
        }
    }
}

impl From<std::fs::File> for File {
    fn from(f: std::fs::File) -> File {
        File::from(OwnedFd::from(f))
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.fd.as_raw_fd()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

/// A file's descriptor, kept open by a request on it until the request completes
/// (a `file` argument of a request spec file).
#[doc(hidden)]
#[derive(Debug)]
pub struct FileKeep(Rc<FileInner>);

impl FileKeep {
    /// Keeps `file`'s descriptor open for a request.
    pub fn new(file: &File) -> FileKeep {
        FileKeep(file.inner.clone())
    }

    /// The descriptor, open while this value lives.
    pub fn fd(&self) -> c_int {
        self.0.fd.as_raw_fd()
    }
}

/// A read's destination: an owned `Vec` whose spare capacity libuv fills; the
/// bytes read are appended to it (a `read_buf` argument).
#[doc(hidden)]
#[derive(Debug)]
pub struct ReadBuf {
    vec: Vec<u8>,
    buf: sys::uv_buf_t,
}

impl ReadBuf {
    /// Reads into `vec`'s spare capacity (`capacity() - len()` bytes).
    pub fn new(mut vec: Vec<u8>) -> ReadBuf {
        let spare = vec.spare_capacity_mut();
        let buf = sys::uv_buf_t {
            base: spare.as_mut_ptr().cast(),
            len: spare.len(),
        };
        ReadBuf { vec, buf }
    }

    /// libuv's view: one buffer (libuv copies the array; the bytes are the `Vec`'s
    /// heap memory, which stays put while this value moves).
    pub fn as_ptr(&self) -> *const sys::uv_buf_t {
        &self.buf
    }

    /// The `Vec` with the `n` bytes libuv wrote appended.
    ///
    /// # Safety
    /// libuv wrote `n` bytes at the start of the spare capacity.
    pub(crate) unsafe fn take(&mut self, n: usize) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.vec);
        let n = n.min(self.buf.len);
        // SAFETY: the caller's contract; `n` is within the spare capacity.
        unsafe { v.set_len(v.len() + n) };
        v
    }
}

/// A write's source: the data, kept until the request completes, and libuv's view
/// of it (a `write_data` argument).
#[doc(hidden)]
pub struct WriteBufs {
    _data: WriteData,
    bufs: crate::stream::Bufs,
}

impl std::fmt::Debug for WriteBufs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBufs")
            .field("data", &self._data)
            .field("count", &self.count())
            .finish()
    }
}

impl WriteBufs {
    /// Keeps `data` for a write. Empty buffers among several are left out of
    /// libuv's view (one is kept when all are empty): libuv writes more than
    /// `IOV_MAX` (1024) buffers in turns of that many, and stops at a turn that
    /// writes nothing, so a turn of empty buffers ended the write there, the bytes
    /// after it never written and the write answering fewer (0 for 1024 empty
    /// buffers then data: a caller writing the rest again got 0 each time).
    /// More than `u32::MAX` buffers (after the empty ones are left out) are
    /// `EINVAL` for `op`: libuv's count of buffers is a `u32`.
    pub fn new(data: WriteData, op: &'static str) -> Result<WriteBufs> {
        // The view is taken before the value moves into this struct (and with it
        // into the request): nothing of it may live inside the value.
        let data = data.movable();
        let bufs = match data.bufs() {
            crate::stream::Bufs::Many(mut v) if v.iter().any(|b| b.len == 0) => {
                let first = v.first().copied();
                v.retain(|b| b.len > 0);
                if let (true, Some(empty)) = (v.is_empty(), first) {
                    v.push(empty);
                }
                crate::stream::Bufs::Many(v)
            }
            bufs => bufs,
        };
        if bufs.len().is_none() {
            return Err(Error::new(StatusCode::EINVAL, op));
        }
        Ok(WriteBufs { _data: data, bufs })
    }

    /// The buffer array (libuv copies it).
    pub fn as_ptr(&self) -> *const sys::uv_buf_t {
        self.bufs.as_ptr()
    }

    /// How many buffers (at most `u32::MAX`, checked by `new`).
    pub fn count(&self) -> u32 {
        self.bufs.len().unwrap_or(u32::MAX)
    }
}

/// A file offset: `None` is the current position (`-1` in C); past `i64::MAX` is
/// `EINVAL`.
#[doc(hidden)]
pub fn file_offset(offset: Option<u64>, op: &'static str) -> Result<i64> {
    match offset {
        None => Ok(-1),
        Some(o) => i64::try_from(o).map_err(|_| Error::new(StatusCode::EINVAL, op)),
    }
}

/// A size or an explicit offset in a file: past `i64::MAX` is `EINVAL`.
#[doc(hidden)]
pub fn file_size(n: u64, op: &'static str) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::new(StatusCode::EINVAL, op))
}

/// A time to set on a file ([`Fs::utime`](crate::Fs::utime) and its kin): a point
/// in time, the current time, or "leave this one as it is". A `SystemTime` or a
/// [`Timespec`](crate::Timespec) converts into [`FileTime::At`].
///
/// libuv passes times as `double` seconds, so a time set is exact to about a
/// quarter of a microsecond for present-day dates (to the nanosecond within
/// about 97 days of 1970): it is set to the nearest time the double carries that
/// is not after the one given, in the same second.
///
/// ```
/// use uv::{FileTime, Fs};
/// # let dir = std::env::temp_dir().join(format!("uv-doc-filetime-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let lp = uv::Loop::new()?;
/// let p = dir.join("f");
/// std::fs::write(&p, b"x").unwrap();
/// let then = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
/// Fs::utime_sync(&lp, &p, then, then)?;
/// // Access time to now, modification time kept.
/// Fs::utime_sync(&lp, &p, FileTime::Now, FileTime::Omit)?;
/// let st = Fs::stat_sync(&lp, &p)?;
/// assert!(st.accessed.sec > 1_000_000_000);
/// assert_eq!(st.modified, uv::Timespec { sec: 1_000_000_000, nsec: 0 });
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), uv::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileTime {
    /// This time.
    At(std::time::SystemTime),
    /// The current time (`UV_FS_UTIME_NOW`).
    Now,
    /// Leave the time as it is (`UV_FS_UTIME_OMIT`).
    Omit,
}

impl From<std::time::SystemTime> for FileTime {
    fn from(t: std::time::SystemTime) -> FileTime {
        FileTime::At(t)
    }
}

impl From<crate::Timespec> for FileTime {
    fn from(t: crate::Timespec) -> FileTime {
        FileTime::At(t.to_system_time())
    }
}

/// A time as libuv's `double` seconds since the epoch (negative before it), or
/// its "now" (infinity) and "omit" (NaN) values. A time is saturated at
/// ±[`FILE_TIME_MAX`]: libuv converts the seconds to a 64-bit `time_t`, and a
/// double of 2^63 or more (the latest `SystemTime`s round up to it) does not fit
/// (undefined behaviour in C). File systems keep a far smaller range and clamp to
/// it anyway.
///
/// A double carries a present-day time to about a quarter of a microsecond only,
/// and the nearest one may be later than the time (up to the next second, for a
/// time just before it): the double given is the latest one that libuv turns into
/// a time not after the one asked for (see [`exact_seconds`]).
#[doc(hidden)]
pub fn file_time(t: FileTime) -> f64 {
    match t {
        FileTime::At(t) => {
            let (secs, nanos, before_epoch) = match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => (d.as_secs(), d.subsec_nanos(), false),
                Err(e) => (e.duration().as_secs(), e.duration().subsec_nanos(), true),
            };
            let d = if before_epoch {
                -(secs as f64 + f64::from(nanos) * 1e-9)
            } else {
                secs as f64 + f64::from(nanos) * 1e-9
            };
            if d.abs() >= EXACT_SECONDS_MAX {
                return d.clamp(-FILE_TIME_MAX, FILE_TIME_MAX);
            }
            // Below 2^53 the seconds fit an i64 and a double exactly.
            let (secs, nanos) = (secs as i64, i64::from(nanos));
            let target = match (before_epoch, nanos) {
                (false, _) => (secs, nanos),
                (true, 0) => (-secs, 0),
                (true, _) => (-secs - 1, 1_000_000_000 - nanos),
            };
            exact_seconds(d, target)
        }
        FileTime::Now => f64::INFINITY,
        FileTime::Omit => f64::NAN,
    }
}

/// Seconds from which a double holds whole seconds only (2^53): the nanoseconds
/// mean nothing there.
const EXACT_SECONDS_MAX: f64 = 9_007_199_254_740_992.0;

/// What libuv makes of `d` seconds (`uv__fs_to_timespec`): the seconds truncated
/// toward zero, the nanoseconds of the rest truncated, and a negative rest taken
/// from the second below.
fn libuv_timespec(d: f64) -> (i64, i64) {
    let mut sec = d as i64;
    let mut nsec = ((d - sec as f64) * 1e9) as i64;
    if nsec < 0 {
        nsec += 1_000_000_000;
        sec -= 1;
    }
    (sec, nsec)
}

/// The latest double near `d` (the nearest one to the time `target`, seconds and
/// nanoseconds) that libuv turns into a time not after `target`: the nearest
/// double may come out a little later, even in the next second (2^-22 s apart
/// around today, a time less than about 0.12 µs before a second rounds up to
/// it). Whole seconds are exact doubles, so the result stays in `target`'s
/// second. A few steps of one double each way suffice: `d` is within one of
/// them, and where the steps are finer than a nanosecond libuv's result moves
/// by at most one.
fn exact_seconds(mut d: f64, target: (i64, i64)) -> f64 {
    const STEPS: usize = 16;
    for _ in 0..STEPS {
        if libuv_timespec(d) <= target {
            break;
        }
        d = d.next_down();
    }
    for _ in 0..STEPS {
        let up = d.next_up();
        if libuv_timespec(up) > target {
            break;
        }
        d = up;
    }
    d
}

/// The largest double below 2^63: the latest second libuv's conversion to a
/// 64-bit `time_t` takes.
const FILE_TIME_MAX: f64 = 9_223_372_036_854_774_784.0;

/// A path argument as the C string libuv reads (a `c_str_path` argument of
/// `spec/requests/*.toml`, a path conversion of a handle, `chdir`; made by
/// `runtime::c_path` outside requests): a NUL byte in it is `EINVAL`
/// (the error names the path). Paths of up to [`ReqPath::INLINE`] bytes (the usual
/// case) are copied into the value itself, with the NUL after them and nothing
/// else written (the rest of the buffer stays uninitialised: building one costs
/// the copy of the path); longer ones go to the heap. The pointer is valid while
/// the value stays where it is (a synchronous call borrows it on the caller's
/// stack; an asynchronous request keeps it in its data).
#[doc(hidden)]
pub struct ReqPath {
    /// The path's length, without the NUL.
    len: usize,
    /// The path and its NUL (`len + 1` bytes written), for an inline path.
    buf: std::mem::MaybeUninit<[u8; ReqPath::INLINE + 1]>,
    /// A longer path.
    heap: Option<std::ffi::CString>,
}

impl ReqPath {
    /// The longest path kept inline.
    pub const INLINE: usize = 119;

    /// The C string for `path`: `EINVAL` (naming `op` and the path) if it holds a
    /// NUL byte.
    #[inline(always)]
    pub fn new(path: &std::path::Path, op: &'static str) -> Result<ReqPath> {
        let mut slot = std::mem::MaybeUninit::uninit();
        ReqPath::write(&mut slot, path, op)?;
        // SAFETY: `write` succeeded, so every field is written.
        Ok(unsafe { slot.assume_init() })
    }

    /// Builds the C string for `path` in `slot`, where it stays (a synchronous call
    /// builds it on its stack, without moving it or writing more than the path):
    /// `EINVAL` (naming `op` and the path) if it holds a NUL byte. The value
    /// returned borrows it and drops it when it goes.
    #[inline(always)]
    pub fn init<'a>(
        slot: &'a mut std::mem::MaybeUninit<ReqPath>,
        path: &std::path::Path,
        op: &'static str,
    ) -> Result<ReqPathRef<'a>> {
        // The `ReqPathRef` drops the value once (the `MaybeUninit` never does).
        Ok(ReqPathRef(ReqPath::write(slot, path, op)?))
    }

    /// Builds the C string for `path` in `slot` (a request's data builds it where it
    /// stays), or writes nothing and gives the error (`EINVAL` for a NUL byte,
    /// naming `op` and the path). The slot is then the caller's to drop.
    #[inline(always)]
    pub fn write<'a>(
        slot: &'a mut std::mem::MaybeUninit<ReqPath>,
        path: &std::path::Path,
        op: &'static str,
    ) -> Result<&'a mut ReqPath> {
        #[cfg(unix)]
        let b = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        #[cfg(not(unix))]
        let lossy = path.to_string_lossy();
        #[cfg(not(unix))]
        let b = lossy.as_bytes();
        let p = slot.as_mut_ptr();
        // Copied and checked for a NUL in one pass (a NUL found after the copy sends
        // the path to `long`, which reports it).
        // SAFETY: `p` is valid for writes of a ReqPath; `b.len() <= INLINE` is
        // checked first, so the bytes and the NUL after them fit the buffer, which
        // does not overlap `b`.
        let heap = if b.len() > ReqPath::INLINE
            || unsafe { copy_no_nul(b, std::ptr::addr_of_mut!((*p).buf).cast::<u8>()) }
        {
            Some(ReqPath::long(b, path, op)?)
        } else {
            None
        };
        // SAFETY: as above; the buffer is written (for an inline path) or not read
        // (a heap one), `MaybeUninit` either way; every other field is written here.
        unsafe {
            std::ptr::addr_of_mut!((*p).heap).write(heap);
            std::ptr::addr_of_mut!((*p).len).write(b.len());
            Ok(slot.assume_init_mut())
        }
    }

    /// A path too long to keep inline, or one with a NUL byte.
    #[cold]
    #[inline(never)]
    fn long(b: &[u8], path: &std::path::Path, op: &'static str) -> Result<std::ffi::CString> {
        std::ffi::CString::new(b).map_err(|_| Error::new(StatusCode::EINVAL, op).with_path(path))
    }

    /// The pointer to pass to C.
    #[inline(always)]
    pub fn as_ptr(&self) -> *const std::ffi::c_char {
        match &self.heap {
            Some(c) => c.as_ptr(),
            None => self.buf.as_ptr().cast(),
        }
    }

    /// The C string.
    pub fn as_c_str(&self) -> &CStr {
        match &self.heap {
            Some(c) => c,
            // SAFETY: `write` copied the `len` bytes of the path, none of them NUL
            // (checked), and a NUL after them, inside the buffer (`copy_no_nul`
            // writes the NUL of the empty path too).
            None => unsafe {
                CStr::from_bytes_with_nul_unchecked(std::slice::from_raw_parts(
                    self.buf.as_ptr().cast::<u8>(),
                    self.len + 1,
                ))
            },
        }
    }
}

/// A [`ReqPath`] built in place by [`ReqPath::init`]: borrows its slot, reads as
/// the `ReqPath`, and drops it when it goes.
#[doc(hidden)]
pub struct ReqPathRef<'a>(&'a mut ReqPath);

impl std::ops::Deref for ReqPathRef<'_> {
    type Target = ReqPath;
    #[inline(always)]
    fn deref(&self) -> &ReqPath {
        self.0
    }
}

impl Drop for ReqPathRef<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: `init` wrote the value and gave it only to this borrow, which drops
        // it once; its slot (a `MaybeUninit`) does not.
        unsafe { std::ptr::drop_in_place(&mut *self.0) }
    }
}

impl std::fmt::Debug for ReqPathRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::ops::Deref for ReqPath {
    type Target = CStr;
    fn deref(&self) -> &CStr {
        self.as_c_str()
    }
}

impl std::fmt::Debug for ReqPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_c_str().fmt(f)
    }
}

/// Copies `b` to `dst` with a NUL after it; true if `b` holds a NUL byte. Short
/// paths (the usual case) take a few word-sized moves, with the NUL check done on
/// the words as they go (no call to `memchr` or `memcpy`): 8-byte words, the last
/// one overlapping the one before; under 8 bytes, two overlapping 4-byte words; under
/// 4, the first, middle and last bytes.
///
/// # Safety
/// `dst` is valid for `b.len() + 1` bytes and does not overlap `b`.
#[inline(always)]
unsafe fn copy_no_nul(b: &[u8], dst: *mut u8) -> bool {
    // A word has a zero byte iff `(w - 0x01..01) & !w & 0x80..80` is not zero.
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let n = b.len();
    let s = b.as_ptr();
    // SAFETY: every read is inside `b` (offsets below `n`, words ending at or
    // before `n`) and every write inside `dst[..=n]`: the caller's contract.
    unsafe {
        let zero = if n >= 8 {
            let mut acc = 0u64;
            let mut i = 0;
            while i + 8 < n {
                let w = s.add(i).cast::<u64>().read_unaligned();
                dst.add(i).cast::<u64>().write_unaligned(w);
                acc |= w.wrapping_sub(LO) & !w;
                i += 8;
            }
            let w = s.add(n - 8).cast::<u64>().read_unaligned();
            dst.add(n - 8).cast::<u64>().write_unaligned(w);
            acc |= w.wrapping_sub(LO) & !w;
            acc & HI != 0
        } else if n >= 4 {
            let a = s.cast::<u32>().read_unaligned();
            let z = s.add(n - 4).cast::<u32>().read_unaligned();
            dst.cast::<u32>().write_unaligned(a);
            dst.add(n - 4).cast::<u32>().write_unaligned(z);
            let (lo, hi) = (LO as u32, HI as u32);
            ((a.wrapping_sub(lo) & !a) | (z.wrapping_sub(lo) & !z)) & hi != 0
        } else if n > 0 {
            let (a, m, z) = (*s, *s.add(n / 2), *s.add(n - 1));
            *dst = a;
            *dst.add(n / 2) = m;
            *dst.add(n - 1) = z;
            a == 0 || m == 0 || z == 0
        } else {
            false
        };
        dst.add(n).write(0);
        zero
    }
}

/// The path a request's C string names, for its error.
#[doc(hidden)]
pub fn path_context(path: &CStr, e: Error) -> Error {
    e.with_path(c_path(path))
}

pub(crate) fn c_path(c: &CStr) -> std::path::PathBuf {
    #[cfg(unix)]
    return std::path::PathBuf::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(c.to_bytes()),
    );
    #[cfg(not(unix))]
    return std::path::PathBuf::from(c.to_string_lossy().into_owned());
}

/// An entry of a directory listing ([`Fs::scandir`](crate::Fs::scandir),
/// [`Fs::readdir`](crate::Fs::readdir)); `.` and `..` are never listed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DirEntry {
    /// The entry's name (not a path).
    pub name: OsString,
    /// Its type, where the file system reports it (`Unknown` otherwise).
    pub kind: DirentType,
}

impl DirEntry {
    /// From libuv's entry.
    ///
    /// # Safety
    /// `name` is NULL or a C string valid for the call.
    pub(crate) unsafe fn from_raw(e: &sys::uv_dirent_t) -> DirEntry {
        let name = if e.name.is_null() {
            OsString::new()
        } else {
            // SAFETY: the caller's contract.
            c_path(unsafe { CStr::from_ptr(e.name) }).into_os_string()
        };
        DirEntry {
            name,
            kind: DirentType::from_raw(e.type_ as i32),
        }
    }
}

/// An open directory stream ([`Fs::opendir`](crate::Fs::opendir)), read in batches
/// by [`Fs::readdir`](crate::Fs::readdir) (one read at a time) and closed once: by
/// [`Dir::close`] / [`Dir::close_sync`] or when the last clone is dropped and a
/// read in flight completed. Clones share the stream, as [`File`]'s do.
#[derive(Clone, Debug)]
pub struct Dir {
    inner: Rc<DirInner>,
}

#[derive(Debug)]
struct DirInner {
    raw: *mut sys::uv_dir_t,
    /// A read is in flight (libuv reads into one entry array per stream).
    busy: Cell<bool>,
    batch: Cell<usize>,
}

/// How many entries one read gives at most, unless [`Dir::set_batch`] says.
pub const DIR_BATCH: usize = 32;

/// The largest batch [`Dir::set_batch`] takes (larger values are capped): a read
/// allocates its entry array up front.
pub const DIR_BATCH_MAX: usize = 4096;

impl Drop for DirInner {
    fn drop(&mut self) {
        // SAFETY: `raw` is this value's open stream, closed and freed once here.
        let _ = unsafe { closedir_now(self.raw, "uv_fs_closedir") };
    }
}

/// Closes and frees a directory stream now (`uv_fs_closedir` without a loop).
///
/// # Safety
/// `raw` is an open stream that nothing else uses or frees.
unsafe fn closedir_now(raw: *mut sys::uv_dir_t, op: &'static str) -> Result<()> {
    // SAFETY: zeroed is a valid unstarted request. Synchronously (no callback)
    // libuv's closedir only stores the loop pointer in the request and never reads
    // it (INIT/POST in src/unix/fs.c), so no loop is needed; the caller's contract.
    let rc = unsafe {
        let mut req: sys::uv_fs_t = std::mem::zeroed();
        let rc = sys::uv_fs_closedir(std::ptr::null_mut(), &mut req, raw, None);
        sys::uv_fs_req_cleanup(&mut req);
        rc
    };
    crate::error::check(rc, op)
}

/// A directory stream handed to libuv's asynchronous closedir: `None` once libuv
/// ran it; while still here (cancelled unrun, or never submitted) it is closed
/// synchronously, by `close_now` or on drop.
#[derive(Debug)]
struct CloseDir(Option<*mut sys::uv_dir_t>);

impl CloseDir {
    fn close_now(&mut self, op: &'static str) -> Result<()> {
        match self.0.take() {
            // SAFETY: the stream this value owns (libuv dropped its closedir unrun).
            Some(raw) => unsafe { closedir_now(raw, op) },
            None => Ok(()),
        }
    }
}

impl Drop for CloseDir {
    fn drop(&mut self) {
        let _ = self.close_now("uv_fs_closedir");
    }
}

impl Dir {
    /// Sets how many entries one [`Fs::readdir`](crate::Fs::readdir) gives at most
    /// (default [`DIR_BATCH`]), kept within 1 ..= [`DIR_BATCH_MAX`]: each read
    /// allocates an entry array of the batch's size.
    pub fn set_batch(&self, n: usize) {
        self.inner.batch.set(n.clamp(1, DIR_BATCH_MAX));
    }

    /// How many entries one read gives at most (see [`Dir::set_batch`]).
    pub fn batch(&self) -> usize {
        self.inner.batch.get()
    }

    /// Whether a read is in flight or other clones hold the stream.
    pub fn is_busy(&self) -> bool {
        self.inner.busy.get() || Rc::strong_count(&self.inner) > 1
    }

    fn take_for_close(self, loop_: &LoopHandle) -> Result<*mut sys::uv_dir_t> {
        if loop_.shared().raw_for_new().is_none() {
            return Err(Error::closed_loop("uv_fs_closedir"));
        }
        match Rc::try_unwrap(self.inner) {
            Ok(inner) => {
                let raw = inner.raw;
                std::mem::forget(inner);
                Ok(raw)
            }
            Err(_) => Err(Error::new(StatusCode::EBUSY, "uv_fs_closedir")),
        }
    }

    /// Closes the stream on the thread pool (`uv_fs_closedir`). Refused (nothing
    /// started, no callback) with `EBUSY` while a read is in flight or other clones
    /// hold it, or `ClosedLoop`; the stream is then closed as on drop. A close
    /// cancelled before a thread takes it is done on the loop thread instead
    /// (`callback` gets its result): the stream is never left open.
    pub fn close(
        self,
        loop_: &LoopHandle,
        callback: impl FnOnce(Result<()>) + 'static,
    ) -> Result<Request> {
        let raw = CloseDir(Some(self.take_for_close(loop_)?));
        let read = |req: *mut sys::uv_fs_t, raw: &mut CloseDir, op| {
            // SAFETY: the core passes the completed request.
            match unsafe { fs_results::unit(req, op) } {
                // Dropped unrun by libuv: the stream is still open. Closed (and
                // freed) here; the request's cleanup would free libuv's struct (its
                // `ptr`) without closing the stream, so it is told there is nothing
                // left.
                Err(e) if e.code() == StatusCode::ECANCELED => {
                    let r = raw.close_now(op);
                    // SAFETY: the completed request, not cleaned up yet; its `ptr`
                    // was the stream just freed.
                    unsafe { (*req).ptr = std::ptr::null_mut() };
                    r
                }
                r => {
                    // libuv closed and freed the stream.
                    raw.0 = None;
                    r
                }
            }
        };
        let start = |l, req, raw: &CloseDir, done| {
            // SAFETY: the loop is open; libuv owns the stream from here and frees it
            // (unless the reader finds the close cancelled); no Rust value uses it
            // meanwhile.
            unsafe { sys::uv_fs_closedir(l, req, raw.0.unwrap_or(std::ptr::null_mut()), done) }
        };
        // SAFETY: `start` starts the `uv_fs_t` once with `uv_fs_closedir`, with `done` as its callback, and returns its result; `read` gets the completed request.
        unsafe {
            submit::<Fs, (), CloseDir, _, _>(
                loop_,
                "uv_fs_closedir",
                read,
                no_context,
                |slot| Ok(slot.write(raw)),
                callback,
                start,
            )
        }
    }

    /// Closes the stream now (blocking); refused as [`Dir::close`].
    pub fn close_sync(self, loop_: &LoopHandle) -> Result<()> {
        let raw = self.take_for_close(loop_)?;
        let read = |req, _: &mut (), op| {
            // SAFETY: `run_sync` passes the completed request.
            unsafe { fs_results::unit(req, op) }
        };
        let start = |l, req, _: &()| {
            // SAFETY: as in `close`; done before returning.
            unsafe { sys::uv_fs_closedir(l, req, raw, None) }
        };
        // SAFETY: `start` starts the `uv_fs_t` once, with no callback, and returns the result.
        unsafe { run_sync::<Fs, (), _, _>(loop_, "uv_fs_closedir", read, no_context, (), start) }
    }

    /// Wraps the stream `uv_fs_opendir` gave.
    ///
    /// # Safety
    /// `raw` is an open stream nothing else owns.
    pub(crate) unsafe fn from_raw(raw: *mut sys::uv_dir_t) -> Dir {
        Dir {
            inner: Rc::new(DirInner {
                raw,
                busy: Cell::new(false),
                batch: Cell::new(DIR_BATCH),
            }),
        }
    }
}

/// A directory stream in use by one read: the entry array libuv fills (the
/// stream points to it until the request is cleaned up) and the stream, kept open
/// (a `dir` argument).
#[doc(hidden)]
#[derive(Debug)]
pub struct DirUse {
    inner: Rc<DirInner>,
    entries: Vec<sys::uv_dirent_t>,
}

impl DirUse {
    /// Claims `dir` for one read: `EBUSY` while another is in flight.
    pub fn new(dir: &Dir, op: &'static str) -> Result<DirUse> {
        let inner = dir.inner.clone();
        if inner.busy.replace(true) {
            return Err(Error::new(StatusCode::EBUSY, op));
        }
        let n = inner.batch.get();
        let mut entries: Vec<sys::uv_dirent_t> = Vec::with_capacity(n);
        entries.resize_with(n, || sys::uv_dirent_t {
            name: std::ptr::null(),
            type_: 0,
        });
        // SAFETY: the stream is open (this value keeps it); only one read uses it
        // (`busy`), and the array lives in this value, which the request keeps
        // until after its cleanup.
        unsafe {
            (*inner.raw).dirents = entries.as_mut_ptr();
            (*inner.raw).nentries = entries.len();
        }
        Ok(DirUse { inner, entries })
    }

    /// The stream, for the C call.
    pub fn raw(&self) -> *mut sys::uv_dir_t {
        self.inner.raw
    }

    /// The first `n` entries libuv filled in.
    ///
    /// # Safety
    /// A readdir of this stream completed with `n` entries, not cleaned up yet.
    pub(crate) unsafe fn entries(&self, n: usize) -> Vec<DirEntry> {
        self.entries[..n.min(self.entries.len())]
            .iter()
            // SAFETY: the caller's contract: the names are libuv's, valid until
            // the cleanup.
            .map(|e| unsafe { DirEntry::from_raw(e) })
            .collect()
    }
}

impl Drop for DirUse {
    fn drop(&mut self) {
        // SAFETY: the stream is open (this value keeps it); it no longer points to
        // the array freed with this value.
        unsafe {
            (*self.inner.raw).dirents = std::ptr::null_mut();
            (*self.inner.raw).nentries = 0;
        }
        self.inner.busy.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every short length, clean and with a NUL at each position: the copy is exact,
    /// NUL-terminated, and a NUL anywhere is found.
    #[test]
    fn short_paths_are_copied_and_checked() {
        for n in 0..=ReqPath::INLINE {
            let clean: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            let mut dst = [0xffu8; ReqPath::INLINE + 1];
            // SAFETY: `dst` has room for `n + 1` bytes and is its own array.
            assert!(!unsafe { copy_no_nul(&clean, dst.as_mut_ptr()) }, "len {n}");
            assert_eq!(&dst[..n], &clean[..], "len {n}");
            assert_eq!(dst[n], 0, "len {n}");
            for at in 0..n {
                let mut bad = clean.clone();
                bad[at] = 0;
                // SAFETY: as above.
                let found = unsafe { copy_no_nul(&bad, dst.as_mut_ptr()) };
                assert!(found, "len {n}, NUL at {at}");
            }
            // Bytes with the high bit set are not mistaken for a NUL.
            let high = vec![0x80u8; n];
            // SAFETY: as above.
            assert!(!unsafe { copy_no_nul(&high, dst.as_mut_ptr()) }, "len {n}");
        }
        let p = ReqPath::new(std::path::Path::new("dir/file.txt"), "op").unwrap();
        assert_eq!(p.as_c_str(), c"dir/file.txt");
        let e = ReqPath::new(std::path::Path::new("a\0b"), "op").unwrap_err();
        assert_eq!(e.code(), StatusCode::EINVAL);
    }
}
