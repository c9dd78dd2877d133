//! The `before`/`after` hooks the runtime provides to spec methods (the generator's
//! `HookRule` list): checks and repairs that some C functions need and that no
//! handle state (`requires`) expresses. The generator calls the runtime's function
//! for a hook of this list whatever crate the spec file is in, and refuses a method
//! calling one of the C functions a hook guards without it, so that a handle type
//! declared by another crate (`uv::handle!`) gets the same guards as uv's own.

use libuv_sys2 as sys;

use crate::error::{Error, Result};
use crate::handle::HandleKind;
use crate::StatusCode;

use crate::libuv_flags::UV_SIGNAL_ONE_SHOT;

/// Runs `call`, a libuv function that may install libuv's handler for a signal
/// (`uv_signal_start`, `uv_signal_start_oneshot`, `uv_signal_stop`, which
/// installs a one-shot handler again when a one-shot watcher is left), while the
/// crate holds its lock on signal actions. The crate puts an ignored signal back to
/// ignored (`restore_ignored_signals`) with a query and a change of its action
/// under that lock: a handler another thread's loop installed between the two
/// would be replaced by `SIG_IGN`, and that loop's watch would never see its
/// signal. Generated code wraps those C calls in it.
///
/// # Safety
/// `call` must run the libuv call only: no code of this library or of the user
/// (which could take the lock again on this thread, and wait for good).
///
/// Once the process is exiting, on a thread of libuv's pool (a job), `call` is
/// not run and the result is `ECANCELED`: libuv's destructor closes its signal
/// lock, then waits for the pool's jobs (see `contracts::process_state_lock`).
#[inline]
pub unsafe fn signal_call(call: impl FnOnce() -> std::ffi::c_int) -> std::ffi::c_int {
    let Some(_held) = crate::contracts::process_state_lock() else {
        return sys::uv_errno_t_UV_ECANCELED;
    };
    call()
}

/// [`signal_call`] for a C function that starts watching `signum`
/// (`uv_signal_start`, `uv_signal_start_oneshot`; `signum` is the signal that
/// `call` passes). A signal the process ignores (SIGPIPE; not SIGCHLD) first gets
/// the runtime's lasting watch (`contracts::keep_handled`), so that libuv's
/// handler for it, once installed, is never taken away again (libuv would put
/// the signal back to its default action, a kill, whenever its last watch
/// stopped), and so that the start installs no one-shot handler of its own (the
/// kernel resets that one to the default action at its first delivery). When
/// that watch cannot be made (its loop needs descriptors: `EMFILE` at the
/// limit), `call` is not run and the start fails with that error: a watch taken
/// without it would leave the signal at its default action for a moment when it
/// stops, and a write to a closed peer on another thread then killed the
/// process.
///
/// # Safety
/// As for [`signal_call`].
#[inline]
pub unsafe fn signal_start_call(
    signum: std::ffi::c_int,
    call: impl FnOnce() -> std::ffi::c_int,
) -> std::ffi::c_int {
    #[cfg(unix)]
    if let Err(rc) = crate::contracts::keep_handled(signum) {
        return rc;
    }
    // SAFETY: per the contract.
    unsafe { signal_call(call) }
}

/// Runs `call`, a libuv call that hands work to the thread pool
/// (`uv_fs_poll_start`, whose first stat runs there), unless the process is
/// exiting: then `call` is not run and the result is `ECANCELED`. libuv's
/// destructor, run by `exit` while the process's other threads still run, tears
/// the pool down, and a thread handing it work then made libuv abort; the
/// runtime's exit handler shuts this gate and waits for the calls that passed
/// it before that. Generated code wraps those C calls in it.
///
/// Such a call starts work that the handle hands the pool again from inside
/// `uv_run` (a poller's stat at every interval), which no gate reaches: the
/// calling thread is counted, for its life, as one that may do so, and an exit
/// while another such thread lives ends the process without libuv's destructor
/// (see "At exit" in the crate's README).
#[inline(always)]
pub fn pool_call(call: impl FnOnce() -> std::ffi::c_int) -> std::ffi::c_int {
    // Counted inside the gate, before the call: the exit handler shuts the gate
    // (and waits for the calls in it) before it reads the count.
    crate::contracts::pool_call(|| {
        crate::contracts::note_recurring_pool_work();
        call()
    })
    .unwrap_or(sys::uv_errno_t_UV_ECANCELED)
}

/// Stops a signal handle (`uv_signal_stop`) and ignores again the signals the
/// process ignored that libuv put back to their default action.
///
/// # Safety
/// `raw` is an initialised signal handle of this library that libuv is not
/// closing: an open one, or one a loop's teardown abandons (`handle::abandon`).
pub(crate) unsafe fn stop_signal(raw: *mut sys::uv_signal_t) {
    // SAFETY: per the contract; the closure is the libuv call only.
    unsafe { signal_call(|| sys::uv_signal_stop(raw)) };
    #[cfg(unix)]
    crate::contracts::restore_ignored_signals();
}

/// After a delivery to a signal handle (`after = "stop_delivered_oneshot"` on
/// its callback, run by the generated trampoline once the callback returned or
/// its panic was caught): a watch marked one-shot that still watches is stopped
/// here, through [`signal_call`]. libuv stops it next itself (signal.c,
/// `uv__signal_event`), taking only its own signal lock: at the process's exit,
/// once libuv's destructor had closed that lock, that stop made libuv abort
/// (signal.c:151) on a thread whose loop delivered a one-shot signal. Stopped
/// here, the handle leaves libuv's stop nothing to do; once the process is
/// exiting the thread waits here, as for any start or stop of a watch, until
/// the process is gone; a thread of libuv's pool (a job running a loop), which
/// libuv's destructor waits for, ends the process instead, on glibc, with the
/// status `exit` was given (elsewhere libuv's stop still aborts). What libuv's
/// stop would leave (the signal put back to its default action when it was
/// ignored) is repaired as after `stop`.
///
/// The same watch, started again from the callback with `start` (which clears
/// the one-shot mark) is not stopped; `start_oneshot` is refused there.
///
/// # Safety
/// `raw` is a signal handle of this library that libuv just delivered to: its
/// struct stays valid until libuv's close callback, which runs later in the
/// loop's iteration.
pub unsafe fn stop_delivered_oneshot(raw: *mut sys::uv_signal_t) {
    // SAFETY: per the contract `raw` is an initialised `uv_signal_t`, read on
    // the loop's thread, which libuv is running (its fields are written there,
    // but for the caught count, not read here).
    let still_watching = unsafe {
        (*raw).flags & UV_SIGNAL_ONE_SHOT != 0
            && (*raw).signum != 0
            && sys::uv_is_closing(raw.cast()) == 0
    };
    if !still_watching {
        return;
    }
    // SAFETY: an initialised handle libuv is not closing; the closure is the
    // libuv call only.
    let rc = unsafe { signal_call(|| sys::uv_signal_stop(raw)) };
    if rc == sys::uv_errno_t_UV_ECANCELED {
        // A loop run by a pool job, once the process exits: libuv's own stop
        // would abort, and the destructor waits for this thread.
        crate::contracts::end_exiting_process_from_pool();
    }
    #[cfg(unix)]
    crate::contracts::restore_ignored_signals();
}

/// Before `uv_signal_start`: a handle that an earlier `uv_signal_start_oneshot`
/// marked one-shot loses the mark (stopped first if it watches), so that the new
/// watch is for every delivery. libuv never clears the mark itself.
pub fn forget_oneshot<K: HandleKind<Raw = sys::uv_signal_t>>(h: &K) -> Result<()> {
    let raw = h.typed().raw("uv_signal_start")?;
    // SAFETY: the handle is open, so `raw` is an initialised `uv_signal_t`; the
    // fields are only read.
    let (marked, watching) =
        unsafe { ((*raw).flags & UV_SIGNAL_ONE_SHOT != 0, (*raw).signum != 0) };
    if !marked {
        return Ok(());
    }
    if watching {
        // Out of libuv's tree, which the mark orders (and the signal's action
        // restored if the process ignored it).
        // SAFETY: the handle is open (not closing).
        unsafe { stop_signal(raw) };
    }
    // SAFETY: as above; the handle is stopped, so it is in no tree the mark
    // orders, and libuv reads the mark only when it starts, delivers or stops.
    unsafe { (*raw).flags &= !UV_SIGNAL_ONE_SHOT };
    Ok(())
}

/// After `uv_signal_start` and `uv_signal_stop`: a signal the process ignored
/// (SIGPIPE) that libuv put back to its default action when it stopped watching it
/// is ignored again. (A signal the process ignores that a handle of this library
/// watched keeps libuv's handler for good: `signal_start_call`.)
pub fn restore_ignored_signals<K: HandleKind<Raw = sys::uv_signal_t>>(_h: &K) -> Result<()> {
    #[cfg(unix)]
    crate::contracts::restore_ignored_signals();
    Ok(())
}

/// Before `uv_signal_start_oneshot`: `EBUSY` while a delivery of the handle is under
/// way, from its marked callback (`marks_delivery`) or with a signal caught and
/// not yet delivered: libuv stops a handle marked one-shot once that delivery is
/// over, which would undo the new watch.
pub fn refuse_oneshot_mid_delivery<K: HandleKind<Raw = sys::uv_signal_t>>(h: &K) -> Result<()> {
    const OP: &str = "uv_signal_start_oneshot";
    let typed = h.typed();
    let raw = typed.raw(OP)?;
    if typed.is_delivering() {
        return Err(Error::new(StatusCode::EBUSY, OP));
    }
    // SAFETY: the handle is open, so `raw` is an initialised `uv_signal_t`; the
    // fields are only read. The delivered count is written on the loop's thread,
    // which this is (handles are not `Send`). The caught count is written by
    // libuv's signal handler, which may run on any thread: it is read as one
    // aligned 32-bit load (as libuv reads it itself, in `uv__finish_close`). (A
    // signal of the watched one caught on another thread between this load and
    // libuv's stop of the old watch, a few instructions later, is not seen.)
    let (caught, delivered) = unsafe {
        let caught = std::sync::atomic::AtomicU32::from_ptr(
            std::ptr::addr_of_mut!((*raw).caught_signals).cast::<u32>(),
        );
        (
            caught.load(std::sync::atomic::Ordering::Relaxed),
            (*raw).dispatched_signals,
        )
    };
    if caught != delivered {
        return Err(Error::new(StatusCode::EBUSY, OP));
    }
    Ok(())
}

/// After `uv_signal_start_oneshot`: a one-shot watch of a signal the process
/// ignores and whose handler the runtime does not keep installed (`SIGCHLD`) is
/// stopped again, `EINVAL`: libuv installs a one-shot handler for it, which the
/// kernel resets to the default action when it fires. A signal the process
/// ignores that the runtime keeps handled (SIGPIPE: `signal_start_call` makes
/// its lasting watch before the start) is accepted: libuv's lasting handler is
/// the one the watch finds, installs nothing of its own and keeps at its stop.
/// Signals libuv put back to their default action meanwhile are ignored again.
pub fn refuse_oneshot_on_ignored<K: HandleKind<Raw = sys::uv_signal_t>>(h: &K) -> Result<()> {
    #[cfg(unix)]
    {
        crate::contracts::restore_ignored_signals();
        let raw = h.typed().raw("uv_signal_start_oneshot")?;
        // SAFETY: the handle is open, so `raw` is an initialised `uv_signal_t`; the
        // field is only read.
        let signum = unsafe { (*raw).signum };
        if signum > 0
            && crate::contracts::is_ignored_signal(signum)
            && !crate::contracts::kept_handled(signum)
        {
            // SAFETY: the handle is open (not closing).
            unsafe { stop_signal(raw) };
            return Err(Error::new(StatusCode::EINVAL, "uv_signal_start_oneshot"));
        }
    }
    #[cfg(not(unix))]
    let _ = h;
    Ok(())
}

/// Before `uv_pipe_getsockname`: `ENAMETOOLONG` for a socket name that fills
/// `sun_path` with no NUL after it (bound by another program, or received):
/// libuv takes the name's length with `strlen`, which would read past the address.
pub fn refuse_unterminated_local_name<K: HandleKind<Raw = sys::uv_pipe_t>>(h: &K) -> Result<()> {
    #[cfg(unix)]
    return refuse_unterminated_name(h, "uv_pipe_getsockname", libc::getsockname);
    #[cfg(not(unix))]
    {
        let _ = h;
        Ok(())
    }
}

/// Before `uv_pipe_getpeername`: as [`refuse_unterminated_local_name`], for the
/// peer's name.
pub fn refuse_unterminated_peer_name<K: HandleKind<Raw = sys::uv_pipe_t>>(h: &K) -> Result<()> {
    #[cfg(unix)]
    return refuse_unterminated_name(h, "uv_pipe_getpeername", libc::getpeername);
    #[cfg(not(unix))]
    {
        let _ = h;
        Ok(())
    }
}

#[cfg(unix)]
fn refuse_unterminated_name<K: HandleKind<Raw = sys::uv_pipe_t>>(
    h: &K,
    op: &'static str,
    get: unsafe extern "C" fn(
        libc::c_int,
        *mut libc::sockaddr,
        *mut libc::socklen_t,
    ) -> libc::c_int,
) -> Result<()> {
    let raw = h.typed().raw(op)?;
    // SAFETY: the handle is open, and a pipe (its libuv struct is `uv_pipe_t`).
    if unsafe { crate::contracts::name_fills_sun_path(raw, get) } {
        return Err(Error::new(StatusCode::ENAMETOOLONG, op));
    }
    Ok(())
}

/// After `uv_tcp_open`, `uv_udp_open` and `uv_pipe_open`: a socket taken over from
/// the user may have other descriptors in this process; it is registered as the
/// library's, with those copies: a stream's `listen` and a UDP handle's
/// `recv_start` are refused while copies made before the open last, and a child
/// is not given it, so that no other holder makes it blocking under the loop.
pub fn hold_opened_socket<K: HandleKind>(h: &K) -> Result<()> {
    #[cfg(unix)]
    crate::handle::hold_socket(h.typed().handle(), true);
    #[cfg(not(unix))]
    let _ = h;
    Ok(())
}
