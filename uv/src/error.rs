//! `uv::Error`: a status code, its category and the operation that failed.

use std::fmt;
use std::path::Path;
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
#[derive(Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub struct Error {
    code: StatusCode,
    kind: Category,
    op: &'static str,
    /// The path the operation was about, for file-system errors.
    path: Option<Arc<Path>>,
}

impl Error {
    /// An error with `code`, raised by `op` (the C function, e.g. `"uv_tcp_bind"`).
    pub fn new(code: StatusCode, op: &'static str) -> Self {
        Error {
            code,
            kind: code.category(),
            op,
            path: None,
        }
    }

    /// An error from a raw (negative) libuv return value.
    pub fn from_raw(raw: i32, op: &'static str) -> Self {
        Error::new(StatusCode::from_raw(raw), op)
    }

    /// An error this library raises itself, of a category with a library code
    /// (`ClosedHandle`, `ClosedLoop`).
    pub fn library(kind: Category, op: &'static str) -> Self {
        let code = kind
            .library_error()
            .map(|(code, _)| code)
            .unwrap_or(StatusCode::EINVAL);
        Error {
            code,
            kind,
            op,
            path: None,
        }
    }

    /// The operation on a closed handle.
    pub fn closed_handle(op: &'static str) -> Self {
        Error::library(Category::ClosedHandle, op)
    }

    /// The operation on a closed loop.
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
        self.op
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
        self.path = Some(Arc::from(path.as_ref()));
        self
    }

    /// The path the failed operation was about, if it was about one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
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
            None => self.code.message(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{} {:?}: {} ({})", self.op, p, self.message(), self.code),
            None => write!(f, "{}: {} ({})", self.op, self.message(), self.code),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.code)
            .field("kind", &self.kind)
            .field("op", &self.op)
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
            None => std::io::Error::new(err.code.io_error_kind_for(err.kind), err),
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
        Err(Error::from_raw(rc, op))
    } else {
        Ok(())
    }
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
