//! `uv::Error`: a status code, its category and the operation that failed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

use crate::{Category, StatusCode};

/// The result of a libuv operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from libuv, or from this library's own checks (a closed handle or loop).
///
/// ```
/// let err = uv::Error::new(uv::StatusCode::EADDRINUSE, "uv_tcp_bind");
/// assert!(err.is(uv::Category::Address));
/// assert_eq!(std::io::Error::from(err).kind(), std::io::ErrorKind::AddrInUse);
/// ```
///
/// An `Error` is 32 bytes (on 64-bit targets), so that a `Result` of a small value stays
/// small as it moves: the operation's name is kept as a pointer and a 16-bit
/// length, and a path behind one pointer.
#[derive(Clone, thiserror::Error)]
pub struct Error {
    code: StatusCode,
    /// The length of the operation's name (see `op_ptr`).
    op_len: u16,
    kind: Category,
    /// The start of the operation's name, a `&'static str` of `op_len` bytes.
    op_ptr: NonNull<u8>,
    /// The path the operation was about, for file-system errors.
    path: Option<Arc<PathBuf>>,
}

// SAFETY: `op_ptr` and `op_len` are a `&'static str`, which is `Send` and `Sync`;
// the other fields are too.
unsafe impl Send for Error {}
// SAFETY: as above.
unsafe impl Sync for Error {}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Error>() == 32);

/// An operation's name as `Error` keeps it: the longest prefix of at most
/// `u16::MAX` bytes that ends on a character boundary (names are C function names,
/// far shorter).
#[inline(always)]
fn op_parts(op: &'static str) -> (NonNull<u8>, u16) {
    let len = match u16::try_from(op.len()) {
        Ok(n) => n,
        Err(_) => op_cut(op),
    };
    (NonNull::from(op.as_bytes()).cast(), len)
}

#[cold]
#[inline(never)]
fn op_cut(op: &str) -> u16 {
    let mut n = usize::from(u16::MAX);
    while !op.is_char_boundary(n) {
        n -= 1;
    }
    n as u16
}

impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        self.code == other.code
            && self.kind == other.kind
            && self.operation() == other.operation()
            && self.path == other.path
    }
}

impl Eq for Error {}

impl std::hash::Hash for Error {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.code.hash(state);
        self.kind.hash(state);
        self.operation().hash(state);
        self.path.hash(state);
    }
}

impl Error {
    /// An error with `code`, raised by `op` (the C function, e.g. `"uv_tcp_bind"`).
    /// A name longer than 65,535 bytes is kept cut to that length, on a character
    /// boundary.
    #[inline]
    pub fn new(code: StatusCode, op: &'static str) -> Self {
        Error::with_kind(code, code.category(), op)
    }

    /// An error with `code` of category `kind` (which must be `code.category()`:
    /// callers with a constant code compute it at compile time).
    #[inline(always)]
    pub(crate) fn with_kind(code: StatusCode, kind: Category, op: &'static str) -> Self {
        let (op_ptr, op_len) = op_parts(op);
        Error {
            code,
            op_len,
            kind,
            op_ptr,
            path: None,
        }
    }

    /// An error from a raw (negative) libuv return value.
    #[inline]
    pub fn from_raw(raw: i32, op: &'static str) -> Self {
        let code = StatusCode::from_raw(raw);
        Error::with_kind(code, code.category(), op)
    }

    /// An error this library raises itself, of a category with a library code
    /// (`ClosedHandle`, `ClosedLoop`).
    pub fn library(kind: Category, op: &'static str) -> Self {
        let code = kind
            .library_error()
            .map(|(code, _)| code)
            .unwrap_or(StatusCode::EINVAL);
        Error::with_kind(code, kind, op)
    }

    /// The operation on a closed handle.
    #[cold]
    pub fn closed_handle(op: &'static str) -> Self {
        Error::library(Category::ClosedHandle, op)
    }

    /// The operation on a closed loop.
    #[cold]
    pub fn closed_loop(op: &'static str) -> Self {
        Error::library(Category::ClosedLoop, op)
    }

    /// The status code (for library errors, the code they carry, e.g. `EINVAL`).
    pub fn code(&self) -> StatusCode {
        self.code
    }

    /// The most specific category.
    pub fn kind(&self) -> Category {
        self.kind
    }

    /// Whether the error is of `category` or of one of its descendants.
    pub fn is(&self, category: Category) -> bool {
        self.kind.is(category)
    }

    /// The operation that failed.
    pub fn operation(&self) -> &'static str {
        // SAFETY: `op_ptr` and `op_len` were taken from a `&'static str`, cut (if at
        // all) on a character boundary, in `op_parts`.
        unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                self.op_ptr.as_ptr(),
                usize::from(self.op_len),
            ))
        }
    }

    /// The same error about `path` (file-system operations name the path they
    /// failed on; `Display` shows it).
    ///
    /// ```
    /// let err = uv::Error::new(uv::StatusCode::ENOENT, "uv_fs_stat").with_path("/nope");
    /// assert_eq!(err.code(), uv::StatusCode::ENOENT);
    /// assert_eq!(err.path(), Some(std::path::Path::new("/nope")));
    /// assert!(err.to_string().contains("/nope"));
    /// ```
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(Arc::new(path.as_ref().to_path_buf()));
        self
    }

    /// The path the failed operation was about, if it was about one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref().map(PathBuf::as_path)
    }

    /// The OS error number behind the code, where there is one (Unix: libuv codes
    /// of real `errno` values are their negation; getaddrinfo codes and libuv's own
    /// are not `errno` values).
    pub fn raw_os_error(&self) -> Option<i32> {
        if self.kind.library_error().is_some() {
            return None;
        }
        let raw = self.code.raw();
        if cfg!(unix) && raw < 0 && raw > -3000 {
            Some(-raw)
        } else {
            None
        }
    }

    /// The message: libuv's (`uv_strerror`), or the library error's own.
    pub fn message(&self) -> String {
        match self.kind.library_error() {
            Some((_, msg)) => msg.to_string(),
            None => self.code().message(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(
                f,
                "{} {:?}: {} ({})",
                self.operation(),
                p,
                self.message(),
                self.code()
            ),
            None => write!(
                f,
                "{}: {} ({})",
                self.operation(),
                self.message(),
                self.code()
            ),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.code())
            .field("kind", &self.kind)
            .field("op", &self.operation())
            .field("path", &self.path)
            .field("message", &self.message())
            .finish()
    }
}

impl From<Error> for std::io::Error {
    fn from(err: Error) -> std::io::Error {
        match err.raw_os_error() {
            // The path would be lost in a bare OS error: keep the error inside.
            Some(errno) if err.path.is_some() => {
                std::io::Error::new(std::io::Error::from_raw_os_error(errno).kind(), err)
            }
            Some(errno) => std::io::Error::from_raw_os_error(errno),
            None => std::io::Error::new(err.code().io_error_kind_for(err.kind), err),
        }
    }
}

impl StatusCode {
    fn io_error_kind_for(self, kind: Category) -> std::io::ErrorKind {
        if kind.library_error().is_some() {
            kind.io_error_kind()
        } else {
            self.io_error_kind()
        }
    }
}

/// Turns a libuv return value into a result.
#[inline]
pub fn check(rc: i32, op: &'static str) -> Result<()> {
    if rc < 0 {
        Err(check_failed(rc, op))
    } else {
        Ok(())
    }
}

/// `check`'s error, made out of its callers' way.
#[cold]
#[inline(never)]
fn check_failed(rc: i32, op: &'static str) -> Error {
    Error::from_raw(rc, op)
}

/// libuv's message for a raw code, without the allocation `uv_strerror` leaks for
/// unknown codes.
pub(crate) fn strerror(raw: i32) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; uv_strerror_r writes a NUL-terminated
    // string of at most that many bytes and returns the buffer.
    unsafe {
        libuv_sys2::uv_strerror_r(raw, buf.as_mut_ptr().cast(), buf.len());
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// An error from a call that took ownership of `value` (a file descriptor, a socket,
/// a value kept alive for a handle): the value is handed back, unchanged, with the
/// error. `?` turns it into a plain [`Error`] (dropping the value) in functions that
/// return `uv::Result`, or into a `std::io::Error`.
///
/// ```
/// # use std::os::fd::OwnedFd;
/// let lp = uv::Loop::new()?;
/// let tcp = uv::Tcp::new(&lp)?;
/// // A UDP socket is not a TCP stream: refused before libuv sees it, and handed back.
/// let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// let rejected = tcp.open(udp).unwrap_err();
/// assert_eq!(rejected.error().code(), uv::StatusCode::EINVAL);
/// let fd: OwnedFd = rejected.into_value(); // still open, still ours
/// # drop(fd);
/// # Ok::<(), uv::Error>(())
/// ```
pub struct Rejected<T> {
    error: Error,
    value: T,
}

impl<T> Rejected<T> {
    /// The error and the value handed back.
    pub fn new(error: Error, value: T) -> Self {
        Rejected { error, value }
    }

    /// Why the call failed.
    pub fn error(&self) -> Error {
        self.error.clone()
    }

    /// The value handed back.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The error and the value.
    pub fn into_parts(self) -> (Error, T) {
        (self.error, self.value)
    }

    /// The same error with the value mapped (for example an `OwnedFd` turned back
    /// into the `std` type it came from).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Rejected<U> {
        Rejected {
            error: self.error,
            value: f(self.value),
        }
    }
}

impl<T> fmt::Debug for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for Rejected<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T> From<Rejected<T>> for Error {
    fn from(r: Rejected<T>) -> Error {
        r.error
    }
}

impl<T> From<Rejected<T>> for std::io::Error {
    fn from(r: Rejected<T>) -> std::io::Error {
        r.error.into()
    }
}
