//! libuv's preconditions, checked before the C call.
//!
//! libuv guards its preconditions with `assert()`, which is live in this build: a
//! violated one aborts the process. Each function here checks one precondition and
//! turns a violation into an [`Error`]. Generated code calls them where the spec asks
//! (`kind` on fd arguments, `allow` on flag arguments, `requires` on methods); the
//! hand-written runtime (stream accept and write2) uses the same functions.
//! `docs/soundness-audit.md` lists every libuv assertion and the check that keeps it
//! from firing.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use libuv_sys2 as sys;

use crate::error::{Error, Rejected, Result};
use crate::{HandleType, StatusCode};

/// What kind of descriptor a function takes (spec: `kind` of an `owned_fd` or
/// `borrowed_fd` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// Anything; libuv checks it itself.
    Any,
    /// A TCP socket (`SOCK_STREAM`, IPv4 or IPv6).
    StreamSocket,
    /// A UDP socket (`SOCK_DGRAM`, IPv4 or IPv6).
    DgramSocket,
    /// Something a pipe handle can poll: a FIFO, a Unix stream socket or a terminal.
    /// Regular files and other character devices cannot be polled (epoll refuses
    /// them, and libuv would abort inside `run`).
    Pipe,
    /// What a pipe handle can use: as [`FdKind::Pipe`], and a Unix stream socket
    /// when the handle was made with `ipc` (libuv passes handles with
    /// `sendmsg`/`recvmsg`, which a FIFO or a terminal refuses with `ENOTSOCK` at
    /// the first read or write). Checked with the handle ([`fd_kind_for`]); without
    /// it, as `Pipe`.
    IpcAwarePipe,
}

/// Checks that `fd` is of `kind`: `EBADF` for a negative descriptor, `ENOTSOCK` where
/// a socket is wanted and `fd` is none, `EINVAL` for another kind.
pub fn fd_kind(fd: RawFd, kind: FdKind, op: &'static str) -> Result<()> {
    if fd < 0 {
        return Err(Error::new(StatusCode::EBADF, op));
    }
    if kind == FdKind::Any {
        return Ok(());
    }
    // SAFETY: uv_guess_handle only inspects the descriptor (isatty, fstat,
    // getsockname, getsockopt); any number is acceptable.
    let guess = HandleType::from_raw(unsafe { sys::uv_guess_handle(fd) } as i32);
    let not_socket = matches!(
        guess,
        HandleType::File | HandleType::Tty | HandleType::Unknown
    );
    let ok = match kind {
        FdKind::Any => true,
        FdKind::StreamSocket => guess == HandleType::Tcp,
        FdKind::DgramSocket => guess == HandleType::Udp,
        FdKind::Pipe | FdKind::IpcAwarePipe => {
            matches!(guess, HandleType::NamedPipe | HandleType::Tty)
        }
    };
    match (ok, kind) {
        (true, _) => Ok(()),
        (false, FdKind::StreamSocket | FdKind::DgramSocket) if not_socket => {
            Err(Error::new(StatusCode::ENOTSOCK, op))
        }
        (false, _) => Err(Error::new(StatusCode::EINVAL, op)),
    }
}

/// [`fd_kind`] for a method of the handle `h`, for the kinds that depend on it: for
/// [`FdKind::IpcAwarePipe`], an IPC pipe (made with `ipc`) takes a socket only
/// (`ENOTSOCK` for a FIFO or a terminal). A closed handle is `ClosedHandle`.
pub fn fd_kind_for<K: crate::handle::HandleKind>(
    h: &K,
    fd: RawFd,
    kind: FdKind,
    op: &'static str,
) -> Result<()> {
    fd_kind(fd, kind, op)?;
    if kind != FdKind::IpcAwarePipe {
        return Ok(());
    }
    let raw = h.typed().raw(op)?.cast::<sys::uv_handle_t>();
    // SAFETY: the handle is open, so `raw` is an initialised libuv handle (the
    // `HandleKind` contract: its struct starts with the `uv_handle_t` fields); a
    // pipe's struct is a `uv_pipe_t`, whose `ipc` field is set at init. Fields are
    // only read.
    let ipc = unsafe {
        (*raw).type_ == sys::uv_handle_type_UV_NAMED_PIPE
            && (*raw.cast::<sys::uv_pipe_t>()).ipc != 0
    };
    if ipc && !is_socket(fd) {
        return Err(Error::new(StatusCode::ENOTSOCK, op));
    }
    Ok(())
}

/// Whether `fd` is an open socket.
#[cfg(unix)]
pub(crate) fn is_socket(fd: RawFd) -> bool {
    // SAFETY: `fstat` writes the struct it is given; any descriptor number is
    // acceptable (a closed one is `EBADF`).
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
    }
}

/// Whether `fd` is an open socket (a socket handle on Windows).
#[cfg(not(unix))]
pub(crate) fn is_socket(_fd: RawFd) -> bool {
    true
}

/// [`owned_fd`] for a method of the handle `h`: the kind is checked with
/// [`fd_kind_for`]. On failure the descriptor is handed back.
pub fn owned_fd_for<K: crate::handle::HandleKind>(
    h: &K,
    fd: OwnedFd,
    kind: FdKind,
    op: &'static str,
) -> Result<OwnedFd, Rejected<OwnedFd>> {
    if let Err(e) = fd_kind_for(h, fd.as_raw_fd(), kind, op) {
        return Err(Rejected::new(e, fd));
    }
    owned_fd(fd, kind, op)
}

/// Readies a descriptor that libuv will own: checks its kind and moves a standard
/// stream number (0 to 2, which libuv refuses to close and asserts on) to a number
/// above them. On failure the descriptor is handed back.
pub fn owned_fd(fd: OwnedFd, kind: FdKind, op: &'static str) -> Result<OwnedFd, Rejected<OwnedFd>> {
    if let Err(e) = fd_kind(fd.as_raw_fd(), kind, op) {
        return Err(Rejected::new(e, fd));
    }
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // `try_clone` duplicates to the lowest free number above 2 (F_DUPFD_CLOEXEC, 3).
    match fd.try_clone() {
        Ok(high) => Ok(high),
        Err(e) => {
            let code = e
                .raw_os_error()
                .map_or(StatusCode::EMFILE, |n| StatusCode::from_raw(-n));
            Err(Rejected::new(Error::new(code, op), fd))
        }
    }
}

/// Settles the ownership of a descriptor after the C call: on failure it is handed
/// back; on success libuv owns it if the handle (`handle_of`, a new reference to
/// it) uses it, and it is
/// closed here if libuv replaced it with a descriptor of its own (a reopened
/// terminal). The handle's descriptor is then checked for an open file it shares
/// with the process's standard descriptors (`note_std_shares`).
pub fn settle_owned_fd<T>(
    result: Result<T>,
    fd: OwnedFd,
    handle_of: impl FnOnce(&T) -> crate::Handle,
) -> Result<T, Rejected<OwnedFd>> {
    match result {
        Err(e) => Err(Rejected::new(e, fd)),
        Ok(v) => {
            let h = handle_of(&v);
            let handle_fd = h.fileno().ok();
            if handle_fd == Some(fd.as_raw_fd()) {
                // libuv closes it when the handle closes.
                let _ = fd.into_raw_fd();
            } else {
                drop(fd);
            }
            note_std_shares_of(&h, handle_fd);
            Ok(v)
        }
    }
}

/// [`settle_owned_fd`] for the `…_raw` variant of a function that takes a
/// descriptor libuv owns: on success, the handle (`handle_of`) is checked for an
/// open file it shares with the process's standard descriptors
/// (`note_std_shares`).
pub fn settle_raw_fd<T>(
    result: Result<T>,
    handle_of: impl FnOnce(&T) -> crate::Handle,
) -> Result<T> {
    if let Ok(v) = &result {
        note_std_shares(&handle_of(v));
    }
    result
}

/// Records on `handle` which of the process's descriptors 0 to 2 share its
/// descriptor's open file, and counts it for them until the handle is closed:
/// while one is counted, `Process::spawn` refuses to give that descriptor to a
/// child with `Stdio::Inherit` (`EINVAL`). libuv switches the child's descriptors
/// 0 to 2 to blocking mode (unix/process.c, `uv__process_child_init`:
/// `uv__nonblock_fcntl(fd, 0)`; on the `posix_spawn` path the parent does it), and
/// the mode belongs to the open file: the handle's reads and writes would then
/// wait with the loop's thread (libuv reads again after a read that fills its
/// buffer, and writes all it can).
///
/// Called where a handle gets a descriptor from outside libuv: the functions that
/// take one it owns (`owned_fd`: `Pipe::open`, `Tcp::open`, `Udp::open`,
/// `Tty::new`) and the handles an IPC pipe receives. A poll handle does not count:
/// libuv only watches its descriptor, the program does the I/O.
pub fn note_std_shares(handle: &crate::Handle) {
    note_std_shares_of(handle, handle.fileno().ok());
}

fn note_std_shares_of(handle: &crate::Handle, fd: Option<RawFd>) {
    #[cfg(unix)]
    if let Some(fd) = fd {
        let shares = std_shares(fd);
        if shares != 0 {
            crate::handle::mark_std_shares(handle, shares);
        }
    }
    #[cfg(not(unix))]
    let _ = (handle, fd);
}

/// How many open handles share each of the process's descriptors 0 to 2 (see
/// [`note_std_shares`]); the process's, as the descriptors are.
static STD_SHARED: [std::sync::atomic::AtomicUsize; 3] = [
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
];

/// Counts (`add`) or uncounts the handle of the standard descriptors of `bits`
/// (bit `k` for descriptor `k`).
///
/// A count is taken under `process_state_lock`, which `Process::spawn` holds
/// while it checks the counts again and runs `uv_spawn`: a spawn of another
/// thread's loop that inherits the descriptor is then over (its child has made the
/// shared file blocking, which the handle's `read_start` sees) or refused.
pub(crate) fn count_std_shares(bits: u8, add: bool) {
    use std::sync::atomic::Ordering;
    let _held = add.then(process_state_lock);
    for (k, count) in STD_SHARED.iter().enumerate() {
        if bits & (1 << k) != 0 {
            if add {
                count.fetch_add(1, Ordering::SeqCst);
            } else {
                count.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// A spawn's `Stdio::Inherit` of slot `slot`: `EINVAL` when it is one of the
/// standard descriptors (0 to 2) and an open handle shares its open file (see
/// [`note_std_shares`]).
pub(crate) fn inheritable_std(slot: usize, op: &'static str) -> Result<()> {
    let shared = STD_SHARED
        .get(slot)
        .is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst) != 0);
    if shared {
        return Err(Error::new(StatusCode::EINVAL, op));
    }
    Ok(())
}

/// Which of the process's descriptors 0 to 2 share `fd`'s open file: bit `k` for
/// descriptor `k`.
///
/// On Linux, `kcmp(KCMP_FILE)` compares the open files themselves. Where the system
/// refuses it (a kernel without it, or a sandbox that filters it: `ENOSYS`, `EPERM`,
/// `EACCES`) and on the other systems, a descriptor counts as sharing when it is
/// the same file (device and inode) with the same status flags (access mode,
/// non-blocking, append): two open files of one file differ in their flags more
/// often than not (a terminal libuv reopened is non-blocking, the one it reopened
/// is not), and one open file has one set of flags. This refuses more: two open
/// files of one file (a FIFO opened twice, the two ends of a pipe, a terminal
/// whose open files are all non-blocking) count as shared. (Another process that
/// switches the shared file's mode between the two reads of the flags would make
/// one open file look like two: the two reads are next to each other.)
#[cfg(unix)]
fn std_shares(fd: RawFd) -> u8 {
    let mut bits = 0;
    for k in 0..3 {
        if fd == k || same_open_file(fd, k) {
            bits |= 1 << k;
        }
    }
    bits
}

/// Whether descriptors `a` and `b` (of this process) share one open file.
#[cfg(unix)]
fn same_open_file(a: RawFd, b: RawFd) -> bool {
    #[cfg(target_os = "linux")]
    if let Some(same) = kcmp_file(a, b) {
        return same;
    }
    same_file_and_flags(a, b)
}

/// `kcmp(KCMP_FILE)` of two descriptors of this process: whether they share one
/// open file, or `None` when the system refuses the call (then it is not tried
/// again).
#[cfg(target_os = "linux")]
fn kcmp_file(a: RawFd, b: RawFd) -> Option<bool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    /// `KCMP_FILE` of `enum kcmp_type` (linux/kcmp.h).
    const KCMP_FILE: libc::c_long = 0;
    static REFUSED: AtomicBool = AtomicBool::new(false);
    if REFUSED.load(Ordering::Relaxed) {
        return None;
    }
    let pid = libc::c_long::from(std::process::id() as libc::pid_t);
    // SAFETY: kcmp only compares kernel objects of the given process; no memory is
    // passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid,
            pid,
            KCMP_FILE,
            libc::c_long::from(a),
            libc::c_long::from(b),
        )
    };
    if rc >= 0 {
        return Some(rc == 0);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        // One of them is closed: nothing to share.
        Some(libc::EBADF) => Some(false),
        Some(libc::ENOSYS | libc::EPERM | libc::EACCES) => {
            REFUSED.store(true, Ordering::Relaxed);
            None
        }
        _ => None,
    }
}

/// The fallback of [`same_open_file`]: the same file (device and inode) with the
/// same status flags.
#[cfg(unix)]
fn same_file_and_flags(a: RawFd, b: RawFd) -> bool {
    let id = |fd: RawFd| {
        // SAFETY: fstat writes a `stat` into the zeroed value; it is read only on
        // success.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
    };
    // SAFETY: F_GETFL only reads the descriptor's flags.
    let flags = |fd: RawFd| unsafe { libc::fcntl(fd, libc::F_GETFL) };
    match (id(a), id(b)) {
        (Some(x), Some(y)) if x == y => flags(a) == flags(b),
        _ => false,
    }
}

/// Settles a value that keeps a watched descriptor open (`borrowed_fd`): on success
/// the handle (`handle_of`) keeps it until it is closed and claims the descriptor on
/// its loop; on failure, or when another handle of the loop watches that descriptor
/// or the handle claims another already (`EEXIST`; the handle is closed), it is
/// handed back.
pub fn settle_kept<S: 'static, T>(
    result: Result<T>,
    source: S,
    fd: RawFd,
    op: &'static str,
    handle_of: impl FnOnce(&T) -> &crate::Handle,
) -> Result<T, Rejected<S>> {
    let v = match result {
        Err(e) => return Err(Rejected::new(e, source)),
        Ok(v) => v,
    };
    let h = handle_of(&v);
    match crate::handle::keep_with(h, Some(fd), Box::new(source)) {
        Ok(()) => Ok(v),
        Err(back) => {
            h.close();
            let source = *back
                .downcast::<S>()
                .unwrap_or_else(|_| unreachable!("keep_with hands back the value it was given"));
            Err(Rejected::new(Error::new(StatusCode::EEXIST, op), source))
        }
    }
}

/// A flags argument: bits outside `allowed` (the flag set's known members, or the
/// subset the spec's `allow` names) are `EINVAL`.
#[inline]
pub fn flags_arg(bits: u32, allowed: u32, op: &'static str) -> Result<u32> {
    if bits & !allowed != 0 {
        Err(Error::new(StatusCode::EINVAL, op))
    } else {
        Ok(bits)
    }
}

/// An enum argument: a value the spec does not know (`Other`) is `EINVAL`.
#[inline]
pub fn enum_arg(raw: i32, known: bool, op: &'static str) -> Result<i32> {
    if known {
        Ok(raw)
    } else {
        Err(Error::new(StatusCode::EINVAL, op))
    }
}

/// An enum's value or a flag set's bits (checked by [`enum_arg`] or [`flags_arg`])
/// as the type `T` of the C parameter it is passed to, through `TryFrom`: integer
/// types implement it and pointer types do not, so a spec that names a C function
/// taking a pointer there does not compile (a spec of another crate has no header
/// check); a value `T` cannot hold is `EINVAL`. Generic, so that the conversion to
/// the same type (a `c_uint` parameter of a flag set's `u32` bits) is no lint in
/// the generated code.
#[inline(always)]
pub fn int_arg<T: TryFrom<V>, V>(v: V, op: &'static str) -> Result<T> {
    T::try_from(v).map_err(|_| Error::new(StatusCode::EINVAL, op))
}

/// Two handles of one call must belong to the same loop (`EINVAL` otherwise).
///
/// # Safety
/// Both must be open handles made by this library.
#[inline]
pub unsafe fn same_loop(
    a: *const sys::uv_handle_t,
    b: *const sys::uv_handle_t,
    op: &'static str,
) -> Result<()> {
    // SAFETY: per the contract both structs are initialised.
    if unsafe { (*a).loop_ != (*b).loop_ } {
        return Err(Error::new(StatusCode::EINVAL, op));
    }
    Ok(())
}

/// Spec state `not_connecting`: a connect request is in flight (`EALREADY`).
///
/// # Safety
/// `s` must be an open stream made by this library.
#[inline]
pub unsafe fn not_connecting(s: *mut sys::uv_stream_t, op: &'static str) -> Result<()> {
    // SAFETY: per the contract the stream is initialised; libuv sets `connect_req`
    // while a connection is in progress and clears it before the callback.
    if unsafe { !(*s).connect_req.is_null() } {
        return Err(Error::new(StatusCode::EALREADY, op));
    }
    Ok(())
}

/// Spec state `poll_settled`: a stat poller that polls, or a stopped one whose
/// last stat is still in flight (`EBUSY`). libuv keeps a stopped poll's context
/// until the stat completes; a new start meanwhile makes a second context, the
/// first one's completion then sees the handle active again and goes on polling,
/// and its timer asserts that it is the handle's context (an abort). Once the
/// loop has run the stat's completion, the handle can be started again. A start
/// of a poller that polls does nothing in libuv (it keeps its path and interval)
/// while the generated method would replace the callback: the new callback would
/// be told of the old path's changes.
///
/// # Safety
/// `p` must be an open stat poller made by this library.
pub unsafe fn poll_settled(p: *mut sys::uv_fs_poll_t, op: &'static str) -> Result<()> {
    // SAFETY: per the contract the handle is initialised; libuv sets `poll_ctx` in
    // a start and clears it when the last context's timer has closed.
    let (active, ctx) = unsafe { (sys::uv_is_active(p.cast()) != 0, (*p).poll_ctx) };
    if active || !ctx.is_null() {
        return Err(Error::new(StatusCode::EBUSY, op));
    }
    Ok(())
}

/// Spec state `own_process`: `EINVAL` when the handle's loop is not this
/// process's, in a forked child that did not re-create it (`Loop::after_fork`).
/// The child shares that loop's kernel state with the parent:
/// - its signal pipe: a signal watch started there would send the child's
///   deliveries, each naming a handle in the child's memory, to the parent's
///   loop, which would read that handle in its own memory;
/// - its epoll instance: a poll handle's start and stop take its descriptor out
///   of the instance (`uv__platform_invalidate_fd`), and the descriptor is the
///   parent's too, so the parent's loop would no longer hear of it;
/// - its inotify instance: a file watcher's stop removes the watch of its path
///   for both processes, and its start adds one the parent's loop reads;
/// - the thread pool's queue, which no thread runs in the child before the loop
///   is re-created (a stat poller's stat).
///
/// (The closes that would change that state are put off instead, until
/// `after_fork`: `handle::Hdr::close_deferred`; a poll handle's init and a spawn
/// are refused in the runtime.)
///
/// # Safety
/// `h` must be an open handle made by this library.
#[inline]
pub unsafe fn own_process(h: *mut sys::uv_handle_t, op: &'static str) -> Result<()> {
    // SAFETY: per the contract the handle is open, so its loop is open and its
    // `data` is the loop's shared state, which the loop's owner keeps alive.
    let shared = unsafe { &*((*(*h).loop_).data as *const crate::loop_::LoopShared) };
    shared.check_process(op)
}

/// Spec state `not_listening`: the stream listens for connections (`EINVAL`).
///
/// # Safety
/// `s` must be an open stream made by this library.
#[inline]
pub unsafe fn not_listening(s: *mut sys::uv_stream_t, op: &'static str) -> Result<()> {
    // SAFETY: per the contract the stream is initialised; libuv sets
    // `connection_cb` in uv_listen only.
    if unsafe { (*s).connection_cb.is_some() } {
        return Err(Error::new(StatusCode::EINVAL, op));
    }
    Ok(())
}

/// Spec state `not_connected`: the stream has a peer already (`EISCONN`).
///
/// # Safety
/// `s` must be an open stream made by this library.
pub unsafe fn not_connected(s: *mut sys::uv_stream_t, op: &'static str) -> Result<()> {
    // SAFETY: per the contract the stream is initialised.
    let ty = unsafe { (*s).type_ };
    let rc = if ty == sys::uv_handle_type_UV_NAMED_PIPE {
        let mut buf = [0u8; 8];
        let mut len = buf.len();
        // SAFETY: a pipe; the buffer is valid for `len` bytes.
        unsafe { sys::uv_pipe_getpeername(s.cast(), buf.as_mut_ptr().cast(), &mut len) }
    } else if ty == sys::uv_handle_type_UV_TCP {
        let mut sa = crate::addr::SockStorage::empty();
        let mut len = std::mem::size_of::<sys::sockaddr_storage>() as i32;
        // SAFETY: a TCP handle; the storage is valid for `len` bytes.
        unsafe { sys::uv_tcp_getpeername(s.cast(), sa.as_mut_ptr(), &mut len) }
    } else {
        return Ok(());
    };
    // A name too long for the probe buffer is still a peer.
    if rc == 0 || rc == StatusCode::ENOBUFS.raw() {
        return Err(Error::new(StatusCode::EISCONN, op));
    }
    Ok(())
}

/// The descriptor of an open handle, if it has one.
///
/// # Safety
/// `h` must be an open handle made by this library.
// (On Unix, `accept` reads a stream's descriptor from its watcher instead.)
#[cfg(not(unix))]
pub(crate) unsafe fn handle_fd(h: *const sys::uv_handle_t) -> Option<RawFd> {
    let mut fd: sys::uv_os_fd_t = -1;
    // SAFETY: per the contract the handle is initialised; `fd` is a valid out-pointer.
    let rc = unsafe { sys::uv_fileno(h, &mut fd) };
    (rc == 0 && fd >= 0).then_some(fd as RawFd)
}

fn queue_empty(q: *const sys::uv__queue) -> bool {
    // SAFETY: `q` is a queue head inside a live libuv struct; an empty queue points
    // at itself.
    unsafe { std::ptr::eq((*q).next, q) }
}

/// No request is in flight on the stream (connect, shutdown, write), and the stream
/// is not queued for the loop's pending pass: `EINVAL`. `uv_listen` on a stream with
/// either would make libuv's server code run on a write event and abort
/// (stream.c:513). The pending pass calls the stream's I/O callback with a write
/// event, and a stream stays queued when its write callbacks ran earlier: libuv runs
/// them on any hang-up or error event of the stream, which can come in the same poll
/// as the write that failed at once and queued the stream.
///
/// # Safety
/// `s` must be an open stream made by this library.
pub unsafe fn no_requests(s: *mut sys::uv_stream_t, op: &'static str) -> Result<()> {
    // SAFETY: per the contract the stream is initialised; only fields are read.
    // (libuv's pending pass moves the queued watchers to a list of its own before it
    // calls them, and unlinks each just before its call, so a watcher still to be
    // called in that pass is still linked.)
    let busy = unsafe {
        !(*s).connect_req.is_null()
            || !(*s).shutdown_req.is_null()
            || !queue_empty(std::ptr::addr_of!((*s).write_queue))
            || !queue_empty(std::ptr::addr_of!((*s).write_completed_queue))
            || pending_io(s)
    };
    if busy {
        return Err(Error::new(StatusCode::EINVAL, op));
    }
    Ok(())
}

/// Whether the stream's I/O watcher is queued for the loop's pending pass.
///
/// # Safety
/// `s` must be an open stream made by this library.
#[cfg(unix)]
unsafe fn pending_io(s: *mut sys::uv_stream_t) -> bool {
    // SAFETY: per the contract the stream is initialised; libuv initialises the
    // watcher's queue links in uv__io_init and keeps them a valid (possibly empty)
    // queue.
    unsafe { !queue_empty(std::ptr::addr_of!((*s).io_watcher.pending_queue)) }
}

#[cfg(not(unix))]
unsafe fn pending_io(_s: *mut sys::uv_stream_t) -> bool {
    false
}

/// `listen` while the loop runs takes no stream whose descriptor the loop's poll
/// watches (`EINVAL`).
///
/// libuv's poll collects a batch of events and hands them out one by one, each to
/// the watcher its descriptor has at that moment, keeping hang-ups and errors
/// whatever the watcher now asks for. A stream made to listen by a callback of that
/// batch while an event of its descriptor is still to be handed out (an unconnected
/// socket watched for reading reports a hang-up) gets that event in libuv's server
/// code, which asserts it is readable: an abort (stream.c:513). Whether such an
/// event is collected cannot be seen from here; the descriptor being in the poll's
/// set is the condition for it (libuv takes a descriptor out of the set lazily, so
/// a stream that stopped reading is still in it). Outside `run` no batch is being
/// handed out, and the next poll sees the socket listening.
///
/// # Safety
/// `s` must be an open stream made by this library.
pub unsafe fn no_collected_event(
    s: *mut sys::uv_stream_t,
    running: bool,
    op: &'static str,
) -> Result<()> {
    // SAFETY: per the contract the stream is open.
    if running && unsafe { in_poll_set(s) } {
        return Err(Error::new(StatusCode::EINVAL, op));
    }
    Ok(())
}

/// Whether the stream's descriptor is in its loop's epoll set.
///
/// # Safety
/// `s` must be an open stream made by this library.
#[cfg(target_os = "linux")]
unsafe fn in_poll_set(s: *mut sys::uv_stream_t) -> bool {
    // SAFETY: per the contract the stream and its loop are open; fields are read.
    let (fd, epfd) = unsafe { ((*s).io_watcher.fd, sys::uv_backend_fd((*s).loop_)) };
    if fd < 0 {
        return false;
    }
    // Adding it tells: `EEXIST` when it is in the set. libuv probes the same way
    // (uv__io_check_fd). The probe asks for no event and carries descriptor -1, which
    // libuv's poll skips; it is taken out again at once, before any poll.
    let mut ev = libc::epoll_event {
        events: 0,
        u64: u64::MAX,
    };
    // SAFETY: both are descriptors of this process; `ev` is a valid event.
    if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) } == 0 {
        // SAFETY: as above; this removes the entry just added.
        unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, &mut ev) };
        return false;
    }
    // `EEXIST`, or a descriptor the poll cannot watch (then nothing is collected
    // for it, but a stream's descriptor is always pollable): counted as in the set.
    true
}

/// Other Unix systems: the poll's set is not probed; every stream with a descriptor
/// counts as in it.
#[cfg(all(unix, not(target_os = "linux")))]
unsafe fn in_poll_set(s: *mut sys::uv_stream_t) -> bool {
    // SAFETY: per the contract the stream is open; the field is read.
    unsafe { (*s).io_watcher.fd >= 0 }
}

/// Windows' libuv has no such batch.
#[cfg(not(unix))]
unsafe fn in_poll_set(_s: *mut sys::uv_stream_t) -> bool {
    false
}

use crate::libuv_flags::UV_HANDLE_BLOCKING_WRITES as BLOCKING_WRITES;

/// A stream with blocking writes takes no write while one is queued (a failed write
/// whose callback has not run yet): libuv asserts its queue is empty. `EAGAIN`.
///
/// A stream whose writes libuv makes blocking (a terminal `uv_tty_init` could not
/// reopen: a pseudo-terminal's master side, or any terminal at the descriptor
/// limit) on a descriptor that is in fact non-blocking (made so by its owner, as
/// reading it needs) loses the mark here, before the write: libuv's write loop
/// retries such a stream at once on `EAGAIN` (stream.c `uv__write`), so a write
/// larger than the terminal's buffer spun inside `write` until the other side
/// read, for good if it never did. Without the mark the rest is queued and
/// written when the terminal takes it, as on any stream.
///
/// # Safety
/// `s` must be an open stream made by this library, on its loop's thread.
#[inline]
pub unsafe fn blocking_write_ready(s: *mut sys::uv_stream_t, op: &'static str) -> Result<()> {
    // SAFETY: per the contract the stream is initialised; only fields are read.
    if unsafe { (*s).flags } & BLOCKING_WRITES == 0 {
        return Ok(());
    }
    // SAFETY: per the contract.
    unsafe { blocking_write_checked(s, op) }
}

/// The part of [`blocking_write_ready`] for a stream marked for blocking writes.
///
/// # Safety
/// As [`blocking_write_ready`].
#[cold]
#[inline(never)]
unsafe fn blocking_write_checked(s: *mut sys::uv_stream_t, op: &'static str) -> Result<()> {
    // SAFETY: per the contract the stream is initialised; only fields are read.
    if !unsafe { queue_empty(std::ptr::addr_of!((*s).write_queue)) } {
        return Err(Error::new(StatusCode::EAGAIN, op));
    }
    #[cfg(unix)]
    {
        // SAFETY: as above.
        let fd = unsafe { (*s).io_watcher.fd };
        let fl = if fd >= 0 {
            // SAFETY: F_GETFL reads the open file's status flags; any number is
            // acceptable.
            unsafe { libc::fcntl(fd, libc::F_GETFL) }
        } else {
            -1
        };
        if fl >= 0 && fl & libc::O_NONBLOCK != 0 {
            // SAFETY: the loop's thread (per the contract) is the only one that
            // touches the handle's flags; the mark is read by libuv's write path
            // only (`uv__write`, and `uv_write2`'s assertion that a marked stream
            // has an empty queue, which then no longer applies).
            unsafe { (*s).flags &= !BLOCKING_WRITES };
        }
    }
    Ok(())
}

/// Keeps descriptors 0 to 2 open (on `/dev/null` where they are closed), so that no
/// descriptor libuv creates (epoll, eventfd, sockets) gets one of those numbers:
/// libuv asserts when it closes them. Run before a loop is made.
pub(crate) fn reserve_stdio() {
    use std::sync::Once;
    remember_signal_dispositions();
    guard_exit();
    static DONE: Once = Once::new();
    // Checked once per process: a closed standard descriptor is a start-up state;
    // closing one later takes unsafe code.
    DONE.call_once(|| {
        while let Ok(f) = std::fs::File::open("/dev/null") {
            if f.as_raw_fd() > 2 {
                break;
            }
            // It took a free standard number: keep it there for good.
            let _ = f.into_raw_fd();
        }
    });
}

/// A stream libuv marks readable or writable has a descriptor (`ENOTCONN`
/// otherwise): an `open` that failed half-way (a socket option refused after the
/// flags were set) leaves the flags without one, and libuv asserts on the
/// descriptor when it reads, writes or shuts down.
///
/// # Safety
/// `s` must be an open stream made by this library.
#[inline]
pub unsafe fn usable_fd(s: *mut sys::uv_stream_t, op: &'static str) -> Result<()> {
    // SAFETY: per the contract the stream is initialised; the descriptor field is
    // read first (the common case has one), the flags only when it has none.
    let missing = unsafe {
        (*s).io_watcher.fd < 0 && (sys::uv_is_readable(s) != 0 || sys::uv_is_writable(s) != 0)
    };
    if missing {
        return Err(Error::new(StatusCode::ENOTCONN, op));
    }
    Ok(())
}

/// Spec state `named`: a pipe that is a socket has a name (`EINVAL` otherwise): for
/// an unnamed socket (one end of a socket pair) `uv_pipe_chmod` goes on with a name
/// buffer libuv never filled. A name that fills `sun_path` with no NUL after it is
/// `ENAMETOOLONG`. Pipes that are not sockets (FIFOs) pass.
///
/// # Safety
/// `s` must be an open pipe made by this library.
pub unsafe fn named(s: *mut sys::uv_stream_t, op: &'static str) -> Result<()> {
    // libuv's `uv_pipe_getsockname`, below and in `uv_pipe_chmod`, takes the name's
    // length with `strlen`: a name that fills `sun_path` (bound by another
    // program) is refused before it reads past the address.
    // SAFETY: per the contract, an open pipe.
    #[cfg(unix)]
    if unsafe { name_fills_sun_path(s.cast(), libc::getsockname) } {
        return Err(Error::new(StatusCode::ENAMETOOLONG, op));
    }
    let mut buf = [0u8; 8];
    let mut len = buf.len();
    // SAFETY: an open pipe; the buffer is valid for `len` bytes.
    let rc = unsafe { sys::uv_pipe_getsockname(s.cast(), buf.as_mut_ptr().cast(), &mut len) };
    if rc == 0 && len == 0 {
        return Err(Error::new(StatusCode::EINVAL, op));
    }
    Ok(())
}

/// Whether the pipe's socket name (`get`: `getsockname`, or `getpeername` for the
/// peer's) is a path that fills `sun_path` with no NUL after it: libuv's
/// `uv_pipe_getsockname`/`uv_pipe_getpeername` take its length with `strlen`, which
/// would read past the address. False for a pipe without a socket, a socket of
/// another family, an abstract name, or a shorter one.
///
/// # Safety
/// `p` must be an open pipe made by this library.
#[cfg(unix)]
pub(crate) unsafe fn name_fills_sun_path(
    p: *mut sys::uv_pipe_t,
    get: unsafe extern "C" fn(
        libc::c_int,
        *mut libc::sockaddr,
        *mut libc::socklen_t,
    ) -> libc::c_int,
) -> bool {
    let mut fd: sys::uv_os_fd_t = Default::default();
    // SAFETY: per the contract the handle is open; `fd` is a valid out-pointer and
    // uv_fileno only reads the handle.
    if unsafe { sys::uv_fileno(p.cast(), &mut fd) } != 0 {
        return false;
    }
    // SAFETY: an all-zero sockaddr_un is a valid value (plain integers).
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `get` is getsockname or getpeername, given the handle's descriptor
    // (open while the handle is) and an address buffer of `len` bytes; the kernel
    // writes at most `len` bytes into it.
    let rc = unsafe { get(fd, (&raw mut sa).cast(), &mut len) };
    rc == 0
        && sa.sun_family == libc::AF_UNIX as libc::sa_family_t
        && sa.sun_path[0] != 0
        && !sa.sun_path.contains(&0)
}

/// A stream's descriptor is non-blocking (`EINVAL` otherwise): libuv reads again
/// after a read that filled the buffer, and on a blocking descriptor that read
/// waits for data and hangs the loop (a terminal libuv could not reopen, or a
/// stream put in blocking mode with `set_blocking(true)`). A stream given to a child
/// process as stdio is `EINVAL` too: the child shares its open file and can make it
/// blocking later (a shell reading its standard input turns the non-blocking mode
/// off when it finds no data), and the loop would then hang in a read.
///
/// A socket libuv made in this process and nobody was given since (a connected or
/// accepted TCP socket, marked so by `connect` and `accept`) passes without the
/// system call that reads the mode: only this process has it, and every way the
/// crate hands a descriptor out (`fileno`, a spawn's stdio, a send over an IPC
/// pipe, `set_blocking`) takes the mark off.
///
/// # Safety
/// `s` must be an open stream made by this library.
#[inline(always)]
pub unsafe fn non_blocking(s: *mut sys::uv_stream_t, op: &'static str) -> Result<()> {
    // SAFETY: per the contract the stream is a live handle of this library.
    if unsafe { crate::handle::own_nonblocking_fd(s.cast()) } {
        return Ok(());
    }
    // SAFETY: per the contract.
    unsafe { non_blocking_syscall(s, op) }
}

/// The stream's loop holds libuv's reserve descriptor (`emfile_fd`), which a
/// listening stream needs at the descriptor limit: when `accept` fails with
/// `EMFILE` or `ENFILE`, libuv closes the reserve, accepts the pending
/// connections and closes them (their peers see them closed), and opens the
/// reserve again (stream.c `uv__emfile_trick`). Without a reserve it returns with
/// the connection left in the backlog and the server's watch on, so the loop
/// spins on the readable socket for as long as the limit lasts, and the listen
/// callback hears nothing. libuv opens the reserve at the init of a stream handle
/// while its loop has none, so a loop whose stream handles were all made at the
/// limit has none. Opens it here as libuv does (`/dev/null`, else `/`, read-only,
/// close-on-exec; libuv closes it with the loop) when it is missing: the open's
/// error (`EMFILE`) when it cannot. The new descriptor is above 2, as libuv's own
/// (`reserve_stdio` ran when the loop was made), so libuv's close of it does not
/// assert.
///
/// # Safety
/// `s` must be an open stream made by this library, on its loop's thread.
#[cfg(unix)]
pub unsafe fn reserve_descriptor(s: *mut sys::uv_stream_t, op: &'static str) -> Result<()> {
    // SAFETY: per the contract the stream and its loop are live; the loop's
    // fields are only touched on its thread.
    let lp = unsafe { (*s).loop_ };
    // SAFETY: as above.
    if unsafe { (*lp).emfile_fd } >= 0 {
        return Ok(());
    }
    let mut last = 0;
    for path in [c"/dev/null", c"/"] {
        // SAFETY: a NUL-terminated path; no mode is needed without O_CREAT.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: as above; libuv closes the reserve when the loop closes
            // (uv__loop_close) and after each use opens another.
            unsafe { (*lp).emfile_fd = fd };
            return Ok(());
        }
        last = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EMFILE);
    }
    crate::error::check(-last, op)
}

/// The status of a host lookup, with the descriptor limit told from an unknown
/// host: glibc's `getaddrinfo` that can open neither `/etc/hosts` nor a socket to
/// a name server answers `EAI_NONAME` ("unknown host"), with `errno` (on the pool
/// thread, lost by now) `EMFILE`. So on `EAI_NONAME` a probe opens `/dev/null`
/// (close-on-exec, closed at once): when that fails with `EMFILE` or `ENFILE`,
/// that code is the status. Only the failure pays for the probe. A descriptor
/// freed between the lookup and the probe leaves `EAI_NONAME`. A `numeric` lookup
/// (`NUMERICHOST`) opens nothing, so its `EAI_NONAME` stands. (`getnameinfo`
/// answers `EAI_SYSTEM` there, which libuv turns into `errno`.)
pub(crate) fn host_lookup_status(status: std::ffi::c_int, numeric: bool) -> std::ffi::c_int {
    if numeric || status != StatusCode::EAI_NONAME.raw() {
        return status;
    }
    #[cfg(unix)]
    {
        // SAFETY: a NUL-terminated path; no mode is needed without O_CREAT.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: the descriptor was opened just above and nothing else has it.
            unsafe { libc::close(fd) };
        } else if let Some(e @ (libc::EMFILE | libc::ENFILE)) =
            std::io::Error::last_os_error().raw_os_error()
        {
            return -e;
        }
    }
    status
}

/// A stream's socket has no other descriptor in this process (`EINVAL` otherwise),
/// for `listen`: a listening socket shut down for reading through another of its
/// descriptors (a `TcpListener::try_clone` made before `Tcp::open`, turned into a
/// `TcpStream` and `shutdown(Read)`) makes the poll report a hang-up without
/// readable data, and libuv's server code asserts (stream.c `uv__server_io`:
/// `events & POLLIN`). After `listen` no other descriptor can be made from safe
/// code (handles lend no `AsFd`); what a process the socket was sent to does with
/// its own copy is outside this check.
///
/// Descriptors that handles of this library hold do not count (a server received
/// over an IPC pipe in this process while its sender is open, or two handles
/// opened on copies of one socket): the library never shuts a socket down for
/// reading.
///
/// A socket libuv made and nobody was given since passes at once, as does one
/// libuv made (`bind`) and not registered (it entered no handle from outside).
/// Otherwise the process's descriptors are listed (`/proc/self/fd`, or `/dev/fd` where there is
/// no `/proc`) and each socket among them compared with the stream's (device and
/// inode: one socket, however many descriptors or open files it has); where
/// neither list can be read the check passes.
///
/// # Safety
/// `s` must be an open stream made by this library.
pub unsafe fn sole_descriptor(s: *mut sys::uv_stream_t, op: &'static str) -> Result<()> {
    // SAFETY: per the contract the stream is a live handle of this library.
    if unsafe { crate::handle::own_nonblocking_fd(s.cast()) } {
        return Ok(());
    }
    // SAFETY: per the contract the stream is initialised; a stream's descriptor
    // is its watcher's, -1 when it has none.
    let fd = unsafe { (*s).io_watcher.fd };
    // Only a socket that entered its handle from outside (`open`, an IPC pipe;
    // registered then) can have copies the library does not hold, or one at a
    // standard descriptor, which `std` can copy at any time. A socket libuv made
    // (`bind`) is neither: no scan.
    // SAFETY: per the contract the stream is a live handle of this library.
    if fd > 2 && !unsafe { crate::handle::holds_registered_socket(s.cast()) } {
        return Ok(());
    }
    if unheld_copies(fd, true) {
        return Err(Error::new(StatusCode::EINVAL, op));
    }
    Ok(())
}

/// Whether the socket `fd` has another descriptor in this process that no handle
/// of the library holds (see `HELD_SOCKETS`); with `count_std` false, the
/// process's descriptors 0 to 2 do not count. The descriptors are listed from
/// `/proc/self/fd` (or `/dev/fd`) and compared by device and inode (one socket,
/// however many descriptors or open files it has); false when `fd` is no socket
/// or neither list can be read.
pub(crate) fn unheld_copies(fd: RawFd, count_std: bool) -> bool {
    let others = socket_copies(fd, count_std);
    if others.is_empty() {
        return false;
    }
    let held = held_sockets();
    !others.iter().all(|&n| held.iter().any(|&(h, _)| h == n))
}

/// The other descriptors of the socket `fd` in this process (with `count_std`
/// false, not those numbered 0 to 2), from `/proc/self/fd` (or `/dev/fd`),
/// compared by device and inode; none when `fd` is no socket or neither list can
/// be read.
fn socket_copies(fd: RawFd, count_std: bool) -> Vec<RawFd> {
    let Some(own) = socket_id(fd) else {
        return Vec::new();
    };
    let dir = std::fs::read_dir("/proc/self/fd").or_else(|_| std::fs::read_dir("/dev/fd"));
    let Ok(dir) = dir else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()))
        .filter(|&n| n != fd && (count_std || n > 2) && socket_id(n) == Some(own))
        .collect()
}

/// `set_blocking(true)` (and a spawn's `Stdio::Stream`, which libuv makes blocking)
/// of a stream whose socket entered it from outside libuv
/// (registered as held, see `HELD_SOCKETS`): `EINVAL` while the socket has another
/// descriptor in this process, a handle's or not. The mode belongs to the open
/// file, which every descriptor of the socket shares: another handle on it (opened
/// on a copy, or received over an IPC pipe from this process) may be reading, and
/// libuv's read after one that filled its buffer (a UDP handle's, until no
/// datagram is left) would then wait with the loop's thread. A socket libuv made
/// and nobody was given since has no other descriptor, and is not looked for.
///
/// # Safety
/// `s` must be an open stream made by this library.
#[cfg(unix)]
pub(crate) unsafe fn not_shared_for_blocking(
    s: *mut sys::uv_stream_t,
    op: &'static str,
) -> Result<()> {
    // SAFETY: per the contract.
    if !unsafe { crate::handle::holds_registered_socket(s.cast()) } {
        return Ok(());
    }
    // SAFETY: per the contract the stream is initialised; a stream's descriptor
    // is its watcher's, -1 when it has none.
    let fd = unsafe { (*s).io_watcher.fd };
    if !socket_copies(fd, true).is_empty() {
        return Err(Error::new(StatusCode::EINVAL, op));
    }
    Ok(())
}

/// A socket taken over from the user (or received over an IPC pipe) that had
/// copies no handle holds when it entered its handle: reading is refused while
/// they last (`EINVAL`). libuv reads a stream again after a read that filled its
/// buffer, and a UDP socket until it has no datagram, so a copy switched to
/// blocking mode (`set_nonblocking(false)` on a `try_clone` kept from before
/// `open`) would make the loop wait in a read. No copy can be made after `open`
/// (handles lend no `AsFd`), so once none is left the handle is never checked
/// again. Copies at descriptors 0 to 2 do not count: the standard streams of
/// `std` do not switch modes (a socket given as standard input is read through a
/// copy, `Pipe::open` of `stdin().as_fd().try_clone_to_owned()`).
///
/// # Safety
/// `h` must be an open handle of this library with a descriptor `fd`.
pub(crate) unsafe fn no_unheld_copies(
    h: *mut sys::uv_handle_t,
    fd: RawFd,
    op: &'static str,
) -> Result<()> {
    // SAFETY: per the contract.
    if unsafe { crate::handle::had_user_copies(h) } {
        if unheld_copies(fd, false) {
            return Err(Error::new(StatusCode::EINVAL, op));
        }
        // SAFETY: per the contract.
        unsafe { crate::handle::clear_user_copies(h) };
    }
    Ok(())
}

/// The socket descriptors handles of this library hold that may have other
/// descriptors in this process (see `crate::handle::hold_socket`), each with its
/// handle (the address of its libuv struct): `sole_descriptor` does not count
/// them. Changed only by `open`, IPC sends and receives, and closes of such
/// handles, so a lock is cheap.
static HELD_SOCKETS: std::sync::Mutex<Vec<(RawFd, usize)>> = std::sync::Mutex::new(Vec::new());

fn held_sockets() -> std::sync::MutexGuard<'static, Vec<(RawFd, usize)>> {
    HELD_SOCKETS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a socket that entered a handle ever had copies no handle holds (see
/// `no_unheld_copies`). A socket received over an IPC pipe can have such copies in
/// this process only if a handle with such a socket sent it (copies cannot be
/// made after `open`), so until one was seen a receive lists no descriptors. Never
/// reset: such a handle's copies may outlive it.
static COPIED_SOCKETS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A socket with copies entered a handle (see `COPIED_SOCKETS`).
pub(crate) fn note_copied_socket() {
    COPIED_SOCKETS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether a socket with copies ever entered a handle (see `COPIED_SOCKETS`).
pub(crate) fn any_copied_socket() -> bool {
    COPIED_SOCKETS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Registers `fd`, held by the handle `key`, if it is a socket; whether it is.
pub(crate) fn hold_socket(fd: RawFd, key: usize) -> bool {
    if socket_id(fd).is_none() {
        return false;
    }
    let mut held = held_sockets();
    if !held.contains(&(fd, key)) {
        held.push((fd, key));
    }
    true
}

/// Takes `fd`, held by the handle `key`, out of the registry; its memory goes
/// with its last entry (a process with no such handle keeps none).
pub(crate) fn release_socket(fd: RawFd, key: usize) {
    let mut held = held_sockets();
    held.retain(|&e| e != (fd, key));
    if held.is_empty() {
        *held = Vec::new();
    }
}

/// A socket's identity: its device and inode (one socket, however many
/// descriptors or open files it has).
pub(crate) type SocketId = (libc::dev_t, libc::ino_t);

/// The sockets of streams a child process shares (`Stdio::Stream`), each with
/// the number of open handles of this process marked so that hold it (see
/// `crate::handle::mark_shared_with_child`): a handle the socket enters later
/// (received over an IPC pipe from this process) is marked too.
static CHILD_SOCKETS: std::sync::Mutex<Vec<(SocketId, usize)>> = std::sync::Mutex::new(Vec::new());

/// Counts (`add`) or uncounts a marked handle of socket `id` (see `CHILD_SOCKETS`).
pub(crate) fn note_child_socket(id: SocketId, add: bool) {
    let mut all = CHILD_SOCKETS.lock().unwrap_or_else(|e| e.into_inner());
    let at = all.iter().position(|&(s, _)| s == id);
    match (at, add) {
        (Some(i), true) => all[i].1 += 1,
        (None, true) => all.push((id, 1)),
        (Some(i), false) => {
            all[i].1 -= 1;
            if all[i].1 == 0 {
                all.swap_remove(i);
            }
        }
        (None, false) => {}
    }
    if all.is_empty() {
        *all = Vec::new();
    }
}

/// Whether a child process shares socket `id` through an open handle of this
/// process (see `CHILD_SOCKETS`).
pub(crate) fn child_shares(id: SocketId) -> bool {
    CHILD_SOCKETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|&(s, _)| s == id)
}

/// The identity of the socket `fd` (its device and inode); `None` when it is no
/// open socket.
pub(crate) fn socket_id(fd: RawFd) -> Option<SocketId> {
    if fd < 0 {
        return None;
    }
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `stat` into `st` and reads nothing else; a closed or
    // reused number only makes it fail or describe another file.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    (st.st_mode & libc::S_IFMT == libc::S_IFSOCK).then_some((st.st_dev, st.st_ino))
}

/// [`non_blocking`] for a descriptor that is not known to be non-blocking: its
/// mode, read from the system.
///
/// # Safety
/// As for `non_blocking`.
#[inline(never)]
unsafe fn non_blocking_syscall(s: *mut sys::uv_stream_t, op: &'static str) -> Result<()> {
    // A child process shares the stream's open file and may make it blocking at any
    // time, after this check as well (such a stream is never marked as libuv's own:
    // a spawn's stdio goes through `fileno`, which takes the mark off).
    // SAFETY: per the contract the stream is a live handle of this library.
    if unsafe { crate::handle::shared_with_child(s.cast()) } {
        return Err(Error::new(StatusCode::EINVAL, op));
    }
    // SAFETY: per the contract the stream is initialised; a stream's descriptor
    // is its watcher's (what uv_fileno returns for streams), -1 when it has none.
    let fd = unsafe { (*s).io_watcher.fd };
    if fd < 0 {
        return Ok(());
    }
    // SAFETY: per the contract; `fd` is the stream's descriptor.
    unsafe { no_unheld_copies(s.cast(), fd, op)? };
    // SAFETY: F_GETFL only reads the descriptor's status flags. On Linux, the
    // system call itself (glibc's variadic fcntl wrapper costs twice as much).
    #[cfg(target_os = "linux")]
    let flags = unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_GETFL) } as i32;
    // SAFETY: as above.
    #[cfg(not(target_os = "linux"))]
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags >= 0 && flags & libc::O_NONBLOCK == 0 {
        return Err(Error::new(StatusCode::EINVAL, op));
    }
    Ok(())
}

/// A stream is not reading (`EINVAL` otherwise): what would make its descriptor
/// blocking (`set_blocking(true)`, giving it to a child, which libuv does in
/// blocking mode on the descriptor the stream shares) is refused while it reads; see
/// `non_blocking`.
///
/// # Safety
/// `s` must be an open stream made by this library.
pub unsafe fn not_reading(s: *mut sys::uv_stream_t, op: &'static str) -> Result<()> {
    // SAFETY: per the contract the stream is initialised; libuv sets `read_cb` in
    // `uv_read_start` and clears it in `uv_read_stop`; the field is only read.
    if unsafe { (*s).read_cb.is_some() } {
        return Err(Error::new(StatusCode::EINVAL, op));
    }
    Ok(())
}

/// Signals the process ignored when its first loop was made (SIGPIPE, in every
/// Rust program). libuv resets a signal to the default action when it stops
/// watching it; for these, that default would kill the process on the next write
/// to a closed peer.
static IGNORED: std::sync::OnceLock<Vec<i32>> = std::sync::OnceLock::new();

fn ignored_signals() -> &'static [i32] {
    IGNORED.get_or_init(|| {
        (1..65)
            // SAFETY: a query (no new action); `old` is a valid out-pointer.
            .filter(|&sig| unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction == libc::SIG_IGN
            })
            .collect()
    })
}

/// Whether the process ignored `signum` when its first loop was made.
pub(crate) fn is_ignored_signal(signum: i32) -> bool {
    ignored_signals().contains(&signum)
}

/// Records which signals the process ignores (before any loop installs a handler).
pub(crate) fn remember_signal_dispositions() {
    ignored_signals();
}

/// The process-wide lock of the state this process shares between its loops and
/// threads: signal actions and the open files behind descriptors. Held while the
/// crate reads and sets a signal's action (`restore_signal_disposition`), while
/// libuv's signal functions that may install its handler run
/// (`hooks::signal_call`, the close of a signal handle), and while `uv_spawn` runs
/// (with the checks of the standard descriptors and the streams it gives the child,
/// against the handles that share them: a handle is counted for the standard
/// descriptors, `count_std_shares`, and registers a socket, `handle::hold_socket`,
/// under it; `set_blocking(true)` checks and changes a socket's mode under it).
///
/// Why a spawn and a signal restore must not interleave: `uv_spawn` installs libuv's SIGCHLD handler before it
/// starts the child; put back to SIG_IGN between a query that saw SIG_DFL and the
/// new action, the handler would be gone, the kernel would reap the child itself,
/// and libuv's `waitpid` after a failed exec would fail its assertion
/// (process.c:1015, 1022). Only a process that started with SIGCHLD ignored gets
/// there.
///
/// Once the process is exiting, [`at_exit`] holds the lock for good: a caller
/// waits until the process is gone, but for a thread of libuv's pool (a job),
/// which gets `None` instead. libuv's destructor waits for the pool's threads
/// to finish their jobs, and a job waiting for the lock kept the process from
/// ending, for good. A caller that gets `None` makes no libuv call into its
/// signal code (it refuses with `ECANCELED`, or puts a close off for good:
/// `handle::close_now`); the others (counts of shares, which only a spawn reads,
/// and none runs from then on) go on without the lock.
///
/// The uncontended cost is that of a lock (one `try_lock`).
pub(crate) fn process_state_lock() -> Option<std::sync::MutexGuard<'static, ()>> {
    match process_state_mutex().try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => contended_process_state_lock(),
    }
}

/// [`process_state_lock`] when another thread holds it: a thread of libuv's
/// pool waits only until [`at_exit`] holds it for good (then `None`); any other
/// waits for it.
#[cold]
#[inline(never)]
fn contended_process_state_lock() -> Option<std::sync::MutexGuard<'static, ()>> {
    use std::sync::atomic::Ordering;
    if !on_pool_thread() {
        return Some(
            process_state_mutex()
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
    }
    loop {
        if HELD_AT_EXIT.load(Ordering::Acquire) {
            return None;
        }
        match process_state_mutex().try_lock() {
            Ok(g) => return Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => return Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
}

/// Set by [`at_exit`] once it holds [`process_state_lock`] for good (or, in a
/// forked child, found it held by a thread of the parent, which the child does
/// not have).
static HELD_AT_EXIT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`process_state_lock`] was held when this process was forked (by a
/// thread of the parent, which this child does not have): see [`at_exit`].
static HELD_AT_FORK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Run in each child of a `fork()` (alone, maybe in a signal handler's fork:
/// an atomic exchange on the lock's word, and its release when it was free):
/// notes whether [`process_state_lock`] was held at the fork. Free, it is the
/// child's to take at its exit as in any process: its own threads may hold it
/// then (a thread of the child that watches a signal), and [`at_exit`] must wait
/// for them, or they went on into libuv's signal code after its destructor
/// closed the signal lock (the child died of `SIGABRT`).
#[cfg(unix)]
pub(crate) fn note_state_lock_at_fork() {
    let held = matches!(
        process_state_mutex().try_lock(),
        Err(std::sync::TryLockError::WouldBlock)
    );
    HELD_AT_FORK.store(held, std::sync::atomic::Ordering::Relaxed);
}

thread_local! {
    /// Set on a thread of libuv's pool by the first job of the crate it runs
    /// ([`mark_pool_thread`]), and kept for the thread's life: jobs are the only
    /// code of the crate's that runs on those threads. A plain value without a
    /// destructor, readable at any point of the thread's life (its `exit`).
    static POOL_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as one of libuv's pool: called by the crate's job
/// trampoline (`work::work_cb`) before each job (one store).
#[inline(always)]
pub(crate) fn mark_pool_thread() {
    POOL_THREAD.with(|m| m.set(true));
}

/// Whether the calling thread is one of libuv's thread pool that ran a job of
/// the crate's (see [`POOL_THREAD`]): the only threads of the pool that can call
/// into the crate. A thread's name is not looked at: a thread of the program's
/// own named like libuv's (`libuv-worker`) is not one. A forked child of a job
/// keeps the mark on its one thread, whose job goes on there.
fn on_pool_thread() -> bool {
    POOL_THREAD.with(|m| m.get())
}

/// The mutex of [`process_state_lock`].
fn process_state_mutex() -> &'static std::sync::Mutex<()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    &LOCK
}

/// Every signal the process ignored and libuv put back to the default action is
/// ignored again (see `restore_signal_disposition`).
pub(crate) fn restore_ignored_signals() {
    for &signum in ignored_signals() {
        restore_signal_disposition(signum);
    }
}

/// After libuv stopped watching `signum`: a signal the process ignored, now back to
/// the default action, is ignored again. The query and the change are one step
/// under `process_state_lock`, which every call of this crate that may
/// install libuv's handler also holds (`hooks::signal_call`, `uv_spawn`, the close
/// of a signal handle): a handler another thread's loop installs for the same
/// signal comes before the query (which then sees it) or after the change.
pub(crate) fn restore_signal_disposition(signum: i32) {
    if !ignored_signals().contains(&signum) {
        return;
    }
    // Not once the process is exiting, on a thread of libuv's pool.
    let Some(_held) = process_state_lock() else {
        return;
    };
    // SAFETY: a query, then installing SIG_IGN for a signal that has the default
    // action (libuv's handler is not replaced: it is only replaced when the query
    // shows SIG_DFL).
    unsafe {
        let mut cur: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signum, std::ptr::null(), &mut cur) == 0
            && cur.sa_sigaction == libc::SIG_DFL
        {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_IGN;
            libc::sigaction(signum, &sa, std::ptr::null_mut());
        }
    }
}

/// Registers [`at_exit`] with `atexit`, once (at the first loop, after libuv's
/// destructor was registered, so it runs before it).
fn guard_exit() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        // SAFETY: registers a handler that returns (or ends the process: see
        // `at_exit_with_status`), with no argument to keep alive; a failure (no
        // memory) leaves the exit unguarded, as before.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        unsafe {
            on_exit(at_exit_with_status, std::ptr::null_mut())
        };
        // SAFETY: as above.
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        unsafe {
            libc::atexit(at_exit)
        };
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    /// The C library's `on_exit`: `atexit` for a handler that is given the exit
    /// status (and `arg`), run in the same order as those of `atexit`.
    fn on_exit(
        handler: extern "C" fn(std::ffi::c_int, *mut std::ffi::c_void),
        arg: *mut std::ffi::c_void,
    ) -> std::ffi::c_int;
}

/// [`at_exit`], given the exit status: a process that a thread-pool job ends
/// (`std::process::exit` in a job) ends here, with that status, without running
/// the exit handlers registered before this one and the libraries' destructors:
/// libuv's destructor joins every thread of its pool, the caller among them,
/// and aborted when that join failed (threadpool.c:181, `EDEADLK`). The C
/// library's buffered output is flushed first.
///
/// It ends the same way, once [`at_exit`] ran, while another thread that
/// started a stat poller lives (see [`note_recurring_pool_work`]): libuv's
/// poller hands the pool its next
/// stat from its timer, inside `uv_run`, where no gate of the crate's can stop
/// it, and a stat handed over while the destructor tore the pool down made
/// libuv abort (`SIGABRT` in 14 exits of 600 with 200 pollers polling every
/// millisecond on four threads).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" fn at_exit_with_status(status: std::ffi::c_int, _: *mut std::ffi::c_void) {
    EXIT_STATUS.store(status, std::sync::atomic::Ordering::Relaxed);
    EXITING_WITH_STATUS.store(true, std::sync::atomic::Ordering::Release);
    if !on_pool_thread() {
        at_exit();
        // Read once the gate is shut: every start that passed it is counted.
        if !recurring_pool_work_elsewhere() {
            return;
        }
    }
    // SAFETY: `fflush(NULL)` flushes every output stream; `_exit` ends the
    // process at once (no handler or destructor runs: the process's threads
    // stop with it).
    unsafe {
        libc::fflush(std::ptr::null_mut());
        libc::_exit(status);
    }
}

/// The status the process's `exit` was called with, once
/// [`EXITING_WITH_STATUS`] is set.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
static EXIT_STATUS: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Set by [`at_exit_with_status`]: the process is exiting with
/// [`EXIT_STATUS`].
#[cfg(all(target_os = "linux", target_env = "gnu"))]
static EXITING_WITH_STATUS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// For a thread of libuv's pool that the exit refused a signal call
/// (`ECANCELED` from [`crate::hooks::signal_call`]) and that libuv would make
/// abort next (its own stop of a delivered one-shot watch, with its signal lock
/// closed by its destructor, which waits for this thread): on glibc, ends the
/// process with the status its `exit` was given, C's buffered output flushed,
/// as `exit` from a job does. Returns when that status is not known (another
/// C library).
pub(crate) fn end_exiting_process_from_pool() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::sync::atomic::Ordering;
        if EXITING_WITH_STATUS.load(Ordering::Acquire) {
            // SAFETY: `fflush(NULL)` flushes every output stream; `_exit` ends
            // the process at once (the thread exiting it waits in libuv's
            // destructor for this one).
            unsafe {
                libc::fflush(std::ptr::null_mut());
                libc::_exit(EXIT_STATUS.load(Ordering::Relaxed));
            }
        }
    }
}

/// Run by the process's `exit`, before libuv's destructor (`uv_library_shutdown`,
/// run by `exit` after the `atexit` handlers) closes its signal lock (a pipe)
/// while the process's other threads still run: libuv aborts when a start or
/// stop of a signal watch cannot take that lock (signal.c
/// `uv__signal_block_and_lock`), so a program whose main thread returned while
/// another thread started or stopped a watch died of `SIGABRT`. The lock on
/// signal actions ([`process_state_lock`]), which every call of the crate into
/// libuv's signal code holds, is taken here for good: a thread that starts or
/// stops a signal watch, spawns a process, or closes a signal or process handle
/// from then on waits until the process is gone; a thread of libuv's pool (a
/// job), which the destructor waits for, is refused or puts its close off for
/// good instead (see [`process_state_lock`]). In a forked child whose lock was
/// held at the fork (by a thread of the parent it does not have:
/// [`note_state_lock_at_fork`]), it is taken only when free; otherwise, as in
/// any process, once the child's own threads let it go. Then the thread pool's gate is shut ([`pool_call`]): the same
/// destructor tears the pool down, and a thread handing it work from then on is
/// refused (`ECANCELED`) instead of making libuv abort. Before that, a forked
/// child that would leave the destructor its parent's pool to stop starts its
/// own ([`restart_inherited_pool`]).
extern "C" fn at_exit() {
    use std::sync::atomic::Ordering;
    let held = if crate::loop_::forked_process() && HELD_AT_FORK.load(Ordering::Relaxed) {
        match process_state_mutex().try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    } else {
        Some(
            process_state_mutex()
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    };
    // Never released: the process ends holding it. Threads of libuv's pool stop
    // waiting for it from now on (see `process_state_lock`).
    std::mem::forget(held);
    HELD_AT_EXIT.store(true, std::sync::atomic::Ordering::Release);
    #[cfg(unix)]
    restart_inherited_pool();
    shut_pool_gate();
}

/// The threads alive that started work libuv hands the thread pool again and
/// again from inside `uv_run`, where the crate's gate ([`pool_call`]) cannot
/// stop it: a stat poller (`uv_fs_poll_start`, whose timer stats the path again
/// at every interval). A thread counts from its first such start to its end
/// (its loops and pollers may be gone before: the count errs on the side of the
/// exit that skips libuv's destructor, see [`at_exit_with_status`]).
static RECURRING_POOL_THREADS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

thread_local! {
    /// Whether this thread is counted in [`RECURRING_POOL_THREADS`]: a plain
    /// value without a destructor, readable from any point of the thread's life
    /// (its exit, a fork's child handler).
    static RECURRING_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Uncounts the thread at its end (its destructor).
    static RECURRING_GUARD: RecurringGuard = const { RecurringGuard };
}

/// See `RECURRING_GUARD`.
struct RecurringGuard;

impl Drop for RecurringGuard {
    fn drop(&mut self) {
        if RECURRING_HERE.with(|h| h.replace(false)) {
            RECURRING_POOL_THREADS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

/// Counts the calling thread in [`RECURRING_POOL_THREADS`] (once): it started
/// a stat poller. A thread whose thread-local values are being destroyed (a
/// poller started from the destructor of one) is not counted.
pub(crate) fn note_recurring_pool_work() {
    if RECURRING_HERE.with(|h| h.get()) {
        return;
    }
    // The guard first: once its destructor is registered, the count it undoes
    // can be taken.
    if RECURRING_GUARD.try_with(|_| ()).is_ok() {
        RECURRING_HERE.with(|h| h.set(true));
        RECURRING_POOL_THREADS.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Whether a thread other than the calling one is counted in
/// [`RECURRING_POOL_THREADS`] (read by the exit handler that knows the status).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn recurring_pool_work_elsewhere() -> bool {
    let here = usize::from(RECURRING_HERE.with(|h| h.get()));
    RECURRING_POOL_THREADS.load(std::sync::atomic::Ordering::Acquire) > here
}

/// Run in each child of a `fork()` (alone, maybe in a signal handler's fork:
/// a thread-local read and an atomic store): of the threads counted in
/// [`RECURRING_POOL_THREADS`], the child has the forking one at most.
#[cfg(unix)]
pub(crate) fn reset_recurring_pool_threads() {
    let here = usize::from(RECURRING_HERE.with(|h| h.get()));
    RECURRING_POOL_THREADS.store(here, std::sync::atomic::Ordering::Relaxed);
}

/// The thread pool's gate: the number of threads between the start and the end
/// of a libuv call that hands work to the pool or takes it back (the low bits),
/// and [`POOL_SHUT`] once the process is exiting. See [`pool_call`].
static POOL_GATE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// [`POOL_GATE`]'s bit for an exiting process.
const POOL_SHUT: usize = 1 << (usize::BITS - 1);

/// Counts a thread out of [`POOL_GATE`] when dropped (also if the call unwinds,
/// which would otherwise keep the exit waiting for good).
struct PoolPass;

impl Drop for PoolPass {
    #[inline(always)]
    fn drop(&mut self) {
        POOL_GATE.fetch_sub(1, std::sync::atomic::Ordering::Release);
    }
}

/// Runs `call`, a libuv call that hands work to the thread pool or takes it
/// back (`uv_queue_work`, an `uv_fs_*`, `uv_getaddrinfo`, `uv_getnameinfo` or
/// `uv_random` with a callback, `uv_fs_poll_start`, `uv_cancel`), unless the
/// process is exiting: then `None`, and libuv is not called.
///
/// libuv's destructor (`uv_library_shutdown`, run by `exit` after the `atexit`
/// handlers) stops the pool's threads and destroys the pool's mutex while the
/// process's other threads still run. A thread that handed work to the pool at
/// that moment made libuv abort (the mutex destroyed while that thread held it,
/// threadpool.c `uv_mutex_destroy`), and one that did so after it aborted too
/// (a lock of the destroyed mutex). [`at_exit`], run before the destructor,
/// shuts the gate and waits for the calls that passed it (each a few
/// instructions of libuv's: a lock, a queue insert, a wake-up) to end; calls
/// from then on are refused.
///
/// Two atomic operations on one shared word per call.
#[inline(always)]
pub(crate) fn pool_call<R>(call: impl FnOnce() -> R) -> Option<R> {
    use std::sync::atomic::Ordering;
    // The shut bit and every count are changes of one word: a call counted before
    // `shut_pool_gate` set the bit is waited for, one counted after sees the bit.
    if POOL_GATE.fetch_add(1, Ordering::Acquire) & POOL_SHUT != 0 {
        POOL_GATE.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    let _pass = PoolPass;
    // One load and test once the flag is up (see `restart_inherited_pool`).
    if !POOL_USED.load(Ordering::Relaxed) {
        POOL_USED.store(true, Ordering::Relaxed);
    }
    Some(call())
}

/// Whether a call passed [`POOL_GATE`] in this process (since it started, or
/// since the `fork()` that made it): libuv's pool was started here.
static POOL_USED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether an ancestor of this forked child started libuv's pool (see
/// [`restart_inherited_pool`]).
static POOL_INHERITED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// At the exit of a forked child whose parent (or an earlier ancestor) started
/// libuv's pool and which did not start its own: starts the child's pool.
///
/// libuv starts its pool once per process (`uv_once`, reset in a child by its
/// own `pthread_atfork` handler), and its destructor joins the threads it
/// counts. A child that never handed the pool work still counts the parent's
/// threads, which it does not have: its `exit` crashed in libuv's destructor
/// (`SIGSEGV` in `pthread_join`, threadpool.c `uv__threadpool_cleanup`), or
/// waited for good on a queue lock a parent's thread held at the fork. One job
/// that does nothing makes libuv start the child's own pool (a fresh lock,
/// threads of its own), which the destructor then stops as usual. The job goes
/// to the crate's idle loop ([`idle_loop`]); without a descriptor to make it
/// (at the limit), nothing changes.
#[cfg(unix)]
fn restart_inherited_pool() {
    use std::sync::atomic::Ordering;
    if !crate::loop_::forked_process()
        || !POOL_INHERITED.load(Ordering::Relaxed)
        || POOL_USED.load(Ordering::Relaxed)
    {
        return;
    }
    unsafe extern "C" fn nothing(_: *mut sys::uv_work_t) {}
    /// The job's request, kept (and reachable, for a leak checker) for good.
    static REQ: std::sync::atomic::AtomicPtr<sys::uv_work_t> =
        std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());
    // The exit handler runs this holding `process_state_lock` (or, in a child
    // whose lock a parent's thread held at the fork, where no thread can take
    // it), as `idle_loop` wants.
    let Ok(lp) = idle_loop() else { return };
    // SAFETY: a work request is plain C data, all-zero before its init; it stays
    // put for good (a pool thread completes the job into the idle loop's queue
    // and wakes it, which nothing runs). `nothing` touches nothing; without an
    // after-work callback, libuv's completion of the job (never reached: the
    // loop never runs) calls none. In a forked child the idle loop may be the
    // parent's copy: the job touches only its queue, its lock and its wake-up
    // eventfd, which the parent's copy, never run, never reads.
    unsafe {
        let req = Box::into_raw(Box::new(std::mem::zeroed::<sys::uv_work_t>()));
        if sys::uv_queue_work(lp, req, Some(nothing), None) != 0 {
            drop(Box::from_raw(req));
        } else {
            REQ.store(req, Ordering::Relaxed);
        }
    }
}

/// Shuts [`POOL_GATE`] and waits until no thread is in a call it let through
/// (see [`pool_call`]).
fn shut_pool_gate() {
    use std::sync::atomic::Ordering;
    POOL_GATE.fetch_or(POOL_SHUT, Ordering::AcqRel);
    while POOL_GATE.load(Ordering::Acquire) & !POOL_SHUT != 0 {
        std::thread::yield_now();
    }
}

/// Run in each child of a `fork()` (alone, maybe in a signal handler's fork: one
/// atomic store): the gate counts none of the parent's threads, which the child
/// does not have, and is open (libuv starts the child's pool afresh).
#[cfg(unix)]
pub(crate) fn reset_pool_gate() {
    use std::sync::atomic::Ordering;
    POOL_GATE.store(0, Ordering::Relaxed);
    if POOL_USED.swap(false, Ordering::Relaxed) {
        POOL_INHERITED.store(true, Ordering::Relaxed);
    }
}

/// Signals (a bit each) whose handler libuv keeps installed for good: see
/// `keep_handled`.
static KEPT_HANDLED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether libuv's handler for `signum` is installed for good (see
/// `keep_handled`).
pub(crate) fn kept_handled(signum: i32) -> bool {
    (1..64).contains(&signum)
        && KEPT_HANDLED.load(std::sync::atomic::Ordering::Acquire) & (1u64 << signum) != 0
}

/// The crate's idle loop ([`idle_loop`]).
static IDLE_LOOP: std::sync::atomic::AtomicPtr<sys::uv_loop_t> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// A loop of the crate's own, made at the first call, never run, never closed:
/// the loop of the keepers (`keep_handled`) and of a forked child's pool
/// restart (`restart_inherited_pool`). Its descriptors (an epoll instance, an
/// io_uring, an eventfd and a signal pipe) stay open. `Err` with libuv's error
/// when it cannot be made (`EMFILE` at the descriptor limit); the next call
/// tries again.
///
/// Called under [`process_state_lock`] (or by the exit handler, which holds it
/// for good or, in a forked child, runs where no other thread can hold it), as
/// every use of the loop is.
fn idle_loop() -> std::result::Result<*mut sys::uv_loop_t, std::ffi::c_int> {
    use std::sync::atomic::Ordering;
    let lp = IDLE_LOOP.load(Ordering::Relaxed);
    if !lp.is_null() {
        return Ok(lp);
    }
    // SAFETY: a loop struct is plain C data, all-zero before its init.
    let fresh = Box::into_raw(Box::new(unsafe { std::mem::zeroed::<sys::uv_loop_t>() }));
    // SAFETY: `fresh` is a valid, unused loop struct that stays put for good.
    let rc = unsafe { sys::uv_loop_init(fresh) };
    if rc != 0 {
        // SAFETY: libuv released what the failed init made; the box is ours.
        drop(unsafe { Box::from_raw(fresh) });
        return Err(rc);
    }
    IDLE_LOOP.store(fresh, Ordering::Relaxed);
    crate::loop_::watch_forks();
    Ok(fresh)
}

/// A keeper's callback: never called (its loop never runs).
unsafe extern "C" fn keeper_signal_cb(_: *mut sys::uv_signal_t, _: std::ffi::c_int) {}

/// Before a handle of this library starts watching `signum`, a signal the
/// process ignored (SIGPIPE): libuv's handler for it is installed for good.
///
/// libuv puts a signal back to its default action when its last watch stops
/// (`uv__signal_unregister_handler`), and the crate ignores it again only after
/// that (`restore_signal_disposition`). Between the two, a write to a closed
/// peer on any other thread killed the process. So the first watch of such a
/// signal is preceded by a watch of it on a loop of the crate's own (the keeper:
/// made once, never run, never closed; its descriptors, an epoll instance, an
/// io_uring, an eventfd and a signal pipe, stay open), and libuv never stops watching the
/// signal again. Its handler catches the signal from then on, which for the
/// process is what ignoring it was (a write to a closed peer fails with
/// `EPIPE`); children started by libuv or `std` get the default action as
/// before. Made first, the keeper's lasting handler is also the one a one-shot
/// watch finds (libuv installs a one-shot handler, which the kernel resets to
/// the default action at its first delivery, only while no other watch of the
/// signal exists). `SIGCHLD` is left out: ignoring it is not the same as
/// catching it (the kernel reaps ignored children).
///
/// `Err` with libuv's error when the keeper's loop cannot be made (`EMFILE` at
/// the descriptor limit): the start is then refused, and the next one tries
/// again. `Ok` when the signal needs no keeper, has one, or got one (a signal no
/// handler can be installed for fails the start itself, as libuv's call then
/// does).
pub(crate) fn keep_handled(signum: i32) -> std::result::Result<(), std::ffi::c_int> {
    use std::sync::atomic::Ordering;
    if !(1..64).contains(&signum) || signum == libc::SIGCHLD || !is_ignored_signal(signum) {
        return Ok(());
    }
    let bit = 1u64 << signum;
    if KEPT_HANDLED.load(Ordering::Acquire) & bit != 0 {
        return Ok(());
    }
    // libuv's handler is installed under the lock, as for any watch (refused on
    // a thread of libuv's pool once the process is exiting).
    let Some(_held) = process_state_lock() else {
        return Err(sys::uv_errno_t_UV_ECANCELED);
    };
    if KEPT_HANDLED.load(Ordering::Relaxed) & bit != 0 {
        return Ok(());
    }
    let lp = idle_loop()?;
    // SAFETY: plain C data, all-zero before its init.
    let h = Box::into_raw(Box::new(unsafe { std::mem::zeroed::<sys::uv_signal_t>() }));
    // SAFETY: `lp` is the idle loop, initialised by `idle_loop` under this
    // lock, which every use of it holds; no thread runs it. The
    // handle stays put for good (leaked on purpose). The signal pipe of the loop
    // was made by its init, so `uv_signal_init` makes no descriptor; the start
    // installs libuv's handler, under the lock as `hooks::signal_call` does.
    let started = unsafe {
        sys::uv_signal_init(lp, h) == 0
            && sys::uv_signal_start(h, Some(keeper_signal_cb), signum) == 0
    };
    if started {
        KEPT_HANDLED.fetch_or(bit, Ordering::Release);
    }
    Ok(())
}

/// The calling thread's signal mask before [`block_all_signals`], put back on
/// drop.
pub(crate) struct BlockedSignals(libc::sigset_t);

impl BlockedSignals {
    /// The mask to put back, which the caller keeps (signals stay blocked
    /// until [`BlockedSignals::restore`] gets it): for a block that outlives
    /// a scope, as around a `fork()` (the parent's or child's handler
    /// restores).
    pub(crate) fn into_mask(self) -> libc::sigset_t {
        let mask = self.0;
        std::mem::forget(self);
        mask
    }

    /// Puts back a mask [`BlockedSignals::into_mask`] gave.
    pub(crate) fn restore(mask: libc::sigset_t) {
        drop(BlockedSignals(mask));
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: the mask read by `block_all_signals`; no old mask is asked for.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

/// Blocks every signal (but those the system never blocks) on the calling
/// thread until the value is dropped: signals sent meanwhile wait, pending.
pub(crate) fn block_all_signals() -> BlockedSignals {
    // SAFETY: `sigset_t` is plain C data; `sigfillset` fills `all`, and
    // `pthread_sigmask` writes the old mask into `old` (initialised by
    // `sigemptyset` first, for the case it fails).
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigemptyset(&mut old);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        BlockedSignals(old)
    }
}

/// loop-fork: `uv_loop_fork` re-creates a loop's kernel state (epoll instance,
/// eventfd, signal pipe, inotify instance) for a child process after `fork()`.
/// Called in the process that already holds that state, it closes descriptors that
/// other threads may be writing to at that moment (the thread pool and `AsyncSender`s
/// wake the loop through the eventfd, and a write to a closed descriptor aborts in
/// `uv__async_send`), and a second call in the same child does the same. So it is
/// `EINVAL` unless the process differs from the one the loop's state belongs to
/// (`kernel_pid`: the maker of the loop, or the child of the last `after_fork`).
pub(crate) fn forked_child(kernel_pid: u32, op: &'static str) -> Result<()> {
    if std::process::id() == kernel_pid {
        return Err(Error::new(StatusCode::EINVAL, op));
    }
    Ok(())
}

/// The lock of a loop's queue of finished thread-pool requests, in a forked
/// child: a thread of the parent may have held it at the fork (a pool thread
/// adding the request it finished, for a moment), and no thread of the child
/// will release it. The child's pool would wait for it forever, and so would
/// the loop's next iteration, and closing the loop would abort (libuv destroys
/// the lock, and a held one cannot be destroyed). `uv_loop_fork` leaves it as it
/// is. A free lock is left alone; a held one is made anew in place (what the
/// C library's own fork handlers do with their locks: the copy belongs to no
/// thread of this process, and nothing waits on it).
///
/// # Safety
/// `m` must be an initialised libuv lock that no thread of this process uses
/// meanwhile: a loop's `wq_mutex`, in a forked child that has started no
/// thread-pool request on the loop since the fork (`check_process`).
unsafe fn free_inherited_lock(m: *mut sys::uv_mutex_t) {
    // SAFETY: per the contract the lock is initialised.
    if unsafe { sys::uv_mutex_trylock(m) } == 0 {
        // SAFETY: this thread just took it.
        unsafe { sys::uv_mutex_unlock(m) };
        return;
    }
    // SAFETY: per the contract no thread of this process holds the lock or waits
    // on it: it is written afresh.
    let rc = unsafe { sys::uv_mutex_init(m) };
    debug_assert_eq!(rc, 0, "uv_mutex_init");
}

/// Runs `uv_loop_fork` so that it leaves a consistent loop (loop-fork):
///
/// - The lock of the loop's queue of finished thread-pool requests is freed if a
///   thread of the parent held it at the fork (`free_inherited_lock`).
/// - A watcher whose event mask changed since the last poll (a write waiting on a
///   stream that reads, for example) is still queued with the events the old epoll
///   instance knew. libuv re-arms only the watchers that are not queued, so this one
///   would be changed with `EPOLL_CTL_MOD` on the new instance, which fails with
///   `ENOENT` and aborts (linux.c:1503, or `abort()` in the ctl ring's flush). Every
///   watcher's known events are cleared first, so each is added afresh.
/// - When a file watcher cannot be re-armed (its path is gone: `ENOENT`),
///   `uv_loop_fork` returns before the eventfd, the signal pipe and the other
///   watchers are re-created. That watcher is stopped by then; the call is repeated,
///   without it, until it completes. Its first error is returned.
///   The file watchers libuv's re-arming left stopped behind it are started
///   again (`rearm_left_behind`).
///
/// Returns 0, or the first error, and whether the loop was re-created (it may run).
/// An error from re-creating the epoll instance, the eventfd or the signal pipe
/// (resource exhaustion) is returned as it is, with `false`: libuv closed the
/// parent's epoll instance first, so a loop left without a new one would poll
/// descriptor -1 (libuv's assertion in `uv__io_poll`), and another `uv_loop_fork`
/// would close -1 (its assertion in `uv__close`).
///
/// # Safety
/// `l` must be an open loop that is not running.
pub(crate) unsafe fn loop_fork(l: *mut sys::uv_loop_t) -> (std::ffi::c_int, bool) {
    // SAFETY: per the contract the loop is open (its lock initialised), in the
    // forked child, on its only thread that uses the loop.
    unsafe { free_inherited_lock(std::ptr::addr_of_mut!((*l).wq_mutex)) };
    // SAFETY: per the contract the loop is open.
    let watching = unsafe { active_file_watchers(l) };
    // libuv closes the loop's signal pipe and makes a new one, without its
    // signal lock: a watched signal caught in between (sent by another process,
    // the parent among them) had libuv's handler write to descriptor -1 and
    // abort (signal.c:211), or write its message into whatever file took the
    // pipe's number. The thread's signals wait until the loop is re-created (a
    // child runs alone, so none is caught meanwhile; one caught then goes to the
    // new pipe).
    let blocked = block_all_signals();
    // SAFETY: per the contract.
    let (rc, usable) = unsafe { loop_fork_repeated(l, watching.len() + 1) };
    drop(blocked);
    #[cfg(target_os = "linux")]
    if usable {
        // SAFETY: the loop is open and re-created; `watching` are its file
        // watchers that were active before (none closed since: no code ran).
        let rearmed = unsafe { rearm_left_behind(watching) };
        return (if rc == 0 { rearmed } else { rc }, usable);
    }
    (rc, usable)
}

/// The file watchers of the open loop `l` that are active.
///
/// # Safety
/// `l` must be an open loop.
unsafe fn active_file_watchers(l: *mut sys::uv_loop_t) -> Vec<*mut sys::uv_fs_event_t> {
    let mut out = Vec::new();
    // SAFETY: per the contract the loop is open: its handle queue links the
    // `handle_queue` field of each of its handles, which are initialised.
    unsafe {
        let head = std::ptr::addr_of_mut!((*l).handle_queue);
        let mut q = (*head).next;
        while q != head {
            let h: *mut sys::uv_handle_t = q
                .cast::<u8>()
                .sub(std::mem::offset_of!(sys::uv_handle_t, handle_queue))
                .cast();
            if (*h).type_ == sys::uv_handle_type_UV_FS_EVENT && sys::uv_is_active(h) != 0 {
                out.push(h.cast());
            }
            q = (*q).next;
        }
    }
    out
}

/// Re-arms the file watchers `uv_loop_fork` left stopped behind one it could not
/// re-arm: libuv's re-arming (`uv__inotify_fork`) stops every watcher, then
/// starts them again one by one and returns at the first that fails (its path
/// is gone), leaving the ones after it stopped, each with a copy of its path
/// that nothing frees. Those (stopped, with a path) are started again on their
/// path, the copy freed; one that fails in turn stays stopped. Returns the
/// first error, or 0.
///
/// # Safety
/// `watching` must be file watchers of an open loop just re-created by
/// `uv_loop_fork`, active before it, not closed since.
#[cfg(target_os = "linux")]
unsafe fn rearm_left_behind(watching: Vec<*mut sys::uv_fs_event_t>) -> std::ffi::c_int {
    let mut first = 0;
    for h in watching {
        // SAFETY: per the contract `h` is an initialised file watcher. A stopped
        // one with a path is one libuv's re-arming left behind: the path is its
        // `uv__strdup` copy, which libuv allocates with `malloc` (the crate never
        // replaces libuv's allocator); it is copied, freed and cleared as libuv
        // does before it starts a watcher again, and the watcher started with
        // the callback it had (libuv re-arms with no flags, as here).
        unsafe {
            if sys::uv_is_active(h.cast()) != 0 || (*h).path.is_null() {
                continue;
            }
            let path = std::ffi::CStr::from_ptr((*h).path).to_owned();
            libc::free((*h).path.cast());
            (*h).path = std::ptr::null_mut();
            let rc = sys::uv_fs_event_start(h, (*h).cb, path.as_ptr(), 0);
            if rc < 0 && first == 0 {
                first = rc;
            }
        }
    }
    first
}

/// `uv_loop_fork`, repeated past file watchers that cannot be re-armed (see
/// [`loop_fork`]), at most `calls` times: each repeat follows an active file
/// watcher that could not be re-armed and is stopped by then, so one more call
/// than there are active file watchers always completes; a loop that has not
/// (which libuv's re-arming does not give) is reported not re-created.
///
/// # Safety
/// As [`loop_fork`].
unsafe fn loop_fork_repeated(l: *mut sys::uv_loop_t, calls: usize) -> (std::ffi::c_int, bool) {
    let mut first = 0;
    for _ in 0..calls {
        // SAFETY: per the contract the loop is open; `watchers` holds `nwatchers`
        // entries, each null or a live watcher of the loop, and only the field
        // libuv compares with the requested events is written.
        let (async_fd, signal_fd) = unsafe {
            for i in 0..(*l).nwatchers as usize {
                let w = *(*l).watchers.add(i);
                if !w.is_null() {
                    (*w).events = 0;
                }
            }
            ((*l).async_io_watcher.fd, (*l).signal_pipefd[0])
        };
        // SAFETY: per the contract.
        let rc = unsafe { sys::uv_loop_fork(l) };
        if rc == 0 {
            return (first, true);
        }
        if first == 0 {
            first = rc;
        }
        // SAFETY: reads of the open loop's fields.
        let file_watcher_failed = unsafe {
            (*l).backend_fd >= 0
                && (*l).async_io_watcher.fd == async_fd
                && (*l).signal_pipefd[0] == signal_fd
        };
        if !file_watcher_failed {
            return (rc, false);
        }
    }
    (first, false)
}
