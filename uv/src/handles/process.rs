//! The process handle, generated from `spec/handles/process.toml`, and its
//! hand-written parts: the spawn options (`ProcessOptions`, `Stdio`), `spawn` itself,
//! the exit callback's trampoline, `pid`, and the process-wide `kill` and
//! `disable_stdio_inheritance`.

use std::ffi::{c_char, c_int, OsStr, OsString};
#[cfg(unix)]
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use libuv_sys2 as sys;

use crate::error::{check, Error, Result};
use crate::handle::HandleKind;
use crate::handle::{dispatch, Typed};
use crate::loop_::LoopHandle;
use crate::{Handle, HandleType, Pipe, ProcessFlags, Signum, StatusCode, StdioFlags};

uv_macros::handle!("spec/handles/process.toml");

const SPAWN: &str = "uv_spawn";

fn einval(op: &'static str) -> Error {
    Error::new(StatusCode::EINVAL, op)
}

/// What one standard I/O slot of the child (descriptor 0, 1, 2, …) is connected to.
///
/// Slots that `ProcessOptions` does not set are ignored: descriptors 0 to 2 of the
/// child are then opened on `/dev/null` (on Unix), higher ones are closed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stdio<'a> {
    /// Nothing (`/dev/null` for descriptors 0 to 2 on Unix).
    Ignore,
    /// The parent's descriptor with the same number (the child's stderr is the
    /// parent's stderr, …); `EBADF` (no child) when that descriptor is closed. From
    /// 3 on, `EINVAL` for a descriptor in non-blocking mode (an event loop's, such
    /// as a handle's: give a stream with `Stream`): libuv switches the descriptors
    /// it gives a child to blocking mode, for the parent too.
    ///
    /// For 0 to 2, `EINVAL` (no child) while an open handle shares that
    /// descriptor's open file: a `Pipe`, `Tcp`, `Udp` or `Tty` made from a copy of
    /// it (`std::io::stdin().as_fd().try_clone_to_owned()`; a `Tty` only when libuv
    /// could not reopen the terminal), or received over an IPC pipe. libuv makes
    /// the child's 0 to 2 blocking, and with them that open file: the handle's
    /// reads and writes would then wait with the loop's thread. Close the handle
    /// first (the refusal ends when `close` is called), or give the stream with
    /// `Stream` (which refuses a stream that reads). A `Poll` does not count: the
    /// program does its I/O. On Linux the open files are compared with `kcmp`;
    /// where that is refused (some sandboxes), and on other systems, the same
    /// file with the same status flags counts as shared.
    ///
    /// ```
    /// # fn main() -> uv::Result<()> {
    /// use std::os::fd::AsFd;
    /// let lp = uv::Loop::new()?;
    /// let opts = uv::ProcessOptions::new("true").stdin(uv::Stdio::Inherit);
    /// let copy = std::io::stdin().as_fd().try_clone_to_owned().unwrap();
    /// let pipe = uv::Pipe::new(&lp, false)?;
    /// // (Standard input may be a file a pipe handle cannot take: then it is refused.)
    /// if pipe.open(copy).is_ok() {
    ///     // The handle shares standard input's open file.
    ///     let e = uv::Process::spawn(&lp, &opts, |p, _, _| p.close()).unwrap_err();
    ///     assert_eq!(e.code(), uv::StatusCode::EINVAL);
    /// }
    /// pipe.close();
    /// uv::Process::spawn(&lp, &opts, |p, _, _| p.close())?;
    /// lp.run(uv::RunMode::Default)?;
    /// # Ok(())
    /// # }
    /// ```
    Inherit,
    /// A descriptor the options own: the child gets a copy, and the parent's is
    /// closed when the options are dropped. `EINVAL` for a descriptor in
    /// non-blocking mode (as for `Inherit`).
    #[cfg(unix)]
    Fd(OwnedFd),
    /// A descriptor borrowed for as long as the options live; the child gets a
    /// copy. `EINVAL` for a descriptor in non-blocking mode (as for `Inherit`).
    #[cfg(unix)]
    BorrowedFd(BorrowedFd<'a>),
    /// The descriptor of an open stream handle (a `Tcp`, `Pipe` or `Tty`). libuv
    /// gives it to the child in blocking mode, and the mode belongs to the
    /// descriptor the stream shares: after the spawn the stream is blocking (its
    /// writes wait until done) until
    /// [`set_blocking(false)`](crate::Stream::set_blocking), which the child then
    /// shares too. `EINVAL` (no child) for a stream that is reading or listening,
    /// or whose socket entered it from outside libuv and has another descriptor in
    /// this process (another handle on it may be reading) (a listener is shared with a child process through an IPC pipe's
    /// `write2`, which leaves its mode alone). Once a child has it, the stream's
    /// `read_start` and `listen` answer `EINVAL`: the child can switch the shared
    /// file to blocking mode at any time (a shell that reads its standard input
    /// does when no data is there), and a read, or an accept of a connection the
    /// child took first, would then hang the loop.
    Stream(&'a Handle),
    /// A new pipe between parent and child: `spawn` opens the parent's end in `pipe`,
    /// which must be a fresh pipe handle (no descriptor yet). `flags` says what the
    /// child may do with its end: `READABLE_PIPE`, `WRITABLE_PIPE`, and
    /// `NONBLOCK_PIPE` for a non-blocking child end. An IPC pipe (`Pipe::new(&lp,
    /// true)`) can pass handles to the child.
    Pipe(&'a Pipe, StdioFlags),
}

impl<'a> Stdio<'a> {
    /// A descriptor the child gets a copy of, closed in the parent when the options
    /// are dropped (a `File`, a pipe end, a socket, …).
    #[cfg(unix)]
    pub fn fd(fd: impl Into<OwnedFd>) -> Stdio<'a> {
        Stdio::Fd(fd.into())
    }

    /// A descriptor the child gets a copy of, borrowed while the options live.
    #[cfg(unix)]
    pub fn borrowed_fd(fd: &'a impl std::os::fd::AsFd) -> Stdio<'a> {
        Stdio::BorrowedFd(fd.as_fd())
    }

    /// The descriptor of a stream handle (`uv::Tcp`, `uv::Pipe`, `uv::Tty`).
    pub fn stream(stream: &'a impl crate::Stream) -> Stdio<'a> {
        Stdio::Stream(stream)
    }

    /// A pipe the child writes to (its stdout, stderr): read the output from `pipe`.
    pub fn pipe_from_child(pipe: &'a Pipe) -> Stdio<'a> {
        Stdio::Pipe(pipe, StdioFlags::WRITABLE_PIPE)
    }

    /// A pipe the child reads from (its stdin): write the input to `pipe`.
    pub fn pipe_to_child(pipe: &'a Pipe) -> Stdio<'a> {
        Stdio::Pipe(pipe, StdioFlags::READABLE_PIPE)
    }
}

#[derive(Debug)]
enum EnvChange {
    Set(OsString, OsString),
    Remove(OsString),
}

/// What to start and how (`uv_process_options_t`), for [`Process::spawn`]. Built
/// once, it can spawn any number of processes. Nothing is checked until `spawn`:
/// a NUL byte in the program, an argument, the environment or the directory, an
/// environment name that is empty or holds `=`, and unknown flags are `EINVAL`.
///
/// ```
/// let opts = uv::ProcessOptions::new("/bin/sh")
///     .args(["-c", "exit 3"])
///     .env("GREETING", "hello")
///     .cwd("/");
/// # let _ = opts;
/// ```
#[derive(Debug)]
pub struct ProcessOptions<'a> {
    /// The program, which is also the first argument, then the other arguments:
    /// the C strings `uv_spawn` reads, made as they are given (no copy at spawn).
    argv: CStrs,
    /// The program or an argument cannot be passed (it holds a NUL byte, or on
    /// Windows is not Unicode): `spawn` answers `EINVAL`.
    bad_arg: bool,
    env_clear: bool,
    env: Vec<EnvChange>,
    cwd: Option<PathBuf>,
    flags: ProcessFlags,
    uid: Option<u32>,
    gid: Option<u32>,
    stdio: StdioSlots<'a>,
    /// A slot at or past [`STDIO_MAX`] was given: `spawn` answers `EINVAL`.
    stdio_out_of_range: bool,
}

/// Child descriptor numbers [`ProcessOptions::stdio`] takes are below this; a
/// larger one makes `spawn` answer `EINVAL` (each slot below the highest one is
/// set up, so a huge number would allocate without bound).
pub const STDIO_MAX: usize = 1 << 16;

impl<'a> ProcessOptions<'a> {
    /// Runs `program` (found through `PATH` when it has no `/`), with the program
    /// as its first argument (`argv[0]`), the parent's environment and directory,
    /// and every standard I/O slot ignored.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let program = program.as_ref();
        // Room for a few arguments after the program, so that they seldom grow it.
        let mut options = ProcessOptions {
            argv: CStrs::with_capacity(program.len() + 64),
            bad_arg: false,
            env_clear: false,
            env: Vec::new(),
            cwd: None,
            flags: ProcessFlags::empty(),
            uid: None,
            gid: None,
            stdio: StdioSlots::default(),
            stdio_out_of_range: false,
        };
        options.push_arg(program);
        options
    }

    fn push_arg(&mut self, arg: &OsStr) {
        if self.argv.push(&[arg]).is_err() {
            self.bad_arg = true;
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.push_arg(arg.as_ref());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        for a in args {
            self.push_arg(a.as_ref());
        }
        self
    }

    /// Starts the child with an empty environment (the variables set with `env`
    /// afterwards are still given).
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// Sets a variable of the child's environment.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push(EnvChange::Set(
            key.as_ref().to_os_string(),
            value.as_ref().to_os_string(),
        ));
        self
    }

    /// Removes a variable from the child's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env
            .push(EnvChange::Remove(key.as_ref().to_os_string()));
        self
    }

    /// The child's working directory.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Flags: `DETACHED` and the `WINDOWS_*` ones (ignored on Unix). `SETUID` and
    /// `SETGID` are set by `uid` and `gid`; given here they are `EINVAL` at spawn.
    pub fn flags(mut self, flags: ProcessFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Runs the child as user `uid` (`ENOTSUP` on Windows; `EPERM` without the
    /// privilege).
    pub fn uid(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    /// Runs the child with group `gid` (`ENOTSUP` on Windows; `EPERM` without the
    /// privilege).
    pub fn gid(mut self, gid: u32) -> Self {
        self.gid = Some(gid);
        self
    }

    /// Sets the child's descriptor `fd` (0 stdin, 1 stdout, 2 stderr, or higher,
    /// below [`STDIO_MAX`]: `spawn` answers `EINVAL` otherwise); the slots below it
    /// that are not set yet are ignored.
    pub fn stdio(mut self, fd: usize, stdio: Stdio<'a>) -> Self {
        if fd >= STDIO_MAX {
            self.stdio_out_of_range = true;
            return self;
        }
        self.stdio.set(fd, stdio);
        self
    }

    /// The child's standard input (`stdio(0, …)`).
    pub fn stdin(self, stdio: Stdio<'a>) -> Self {
        self.stdio(0, stdio)
    }

    /// The child's standard output (`stdio(1, …)`).
    pub fn stdout(self, stdio: Stdio<'a>) -> Self {
        self.stdio(1, stdio)
    }

    /// The child's standard error (`stdio(2, …)`).
    pub fn stderr(self, stdio: Stdio<'a>) -> Self {
        self.stdio(2, stdio)
    }

    /// The C strings and arrays `uv_process_options_t` points into (besides the
    /// program and arguments, which the options hold), checked.
    fn prepare(&self) -> Result<Prepared> {
        if self.stdio_out_of_range || self.bad_arg {
            return Err(einval(SPAWN));
        }
        let mut strs = CStrs::with_capacity(0);
        let env = if self.env_clear || !self.env.is_empty() {
            self.environment(&mut strs)?;
            Some((0, strs.len()))
        } else {
            None
        };
        let cwd = match &self.cwd {
            Some(d) => Some(strs.push(&[d.as_os_str()])?),
            None => None,
        };
        let settable = ProcessFlags::DETACHED
            | ProcessFlags::WINDOWS_VERBATIM_ARGUMENTS
            | ProcessFlags::WINDOWS_HIDE
            | ProcessFlags::WINDOWS_HIDE_CONSOLE
            | ProcessFlags::WINDOWS_HIDE_GUI
            | ProcessFlags::WINDOWS_FILE_PATH_EXACT_NAME;
        let mut flags = crate::contracts::flags_arg(self.flags.bits(), settable.bits(), SPAWN)?;
        if self.uid.is_some() {
            flags |= ProcessFlags::SETUID.bits();
        }
        if self.gid.is_some() {
            flags |= ProcessFlags::SETGID.bits();
        }
        let mut held = HeldFds::default();
        let stdio = self.containers(&mut held)?;
        #[cfg(unix)]
        held.reserve_slot_numbers(stdio.as_slice());
        Ok(Prepared {
            strs,
            env,
            cwd,
            flags,
            uid: self.uid.unwrap_or(0),
            gid: self.gid.unwrap_or(0),
            stdio,
            _held: held,
        })
    }

    /// The child's environment as `KEY=VALUE` strings, added to `strs`.
    fn environment(&self, strs: &mut CStrs) -> Result<()> {
        let mut vars: Vec<(OsString, OsString)> = if self.env_clear {
            Vec::new()
        } else {
            std::env::vars_os().collect()
        };
        for change in &self.env {
            let key = match change {
                EnvChange::Set(k, _) | EnvChange::Remove(k) => k,
            };
            let bytes = key.as_encoded_bytes();
            if bytes.is_empty() || bytes.contains(&b'=') || bytes.contains(&0) {
                return Err(einval(SPAWN));
            }
            vars.retain(|(k, _)| k != key);
            if let EnvChange::Set(k, v) = change {
                vars.push((k.clone(), v.clone()));
            }
        }
        for (k, v) in &vars {
            strs.push(&[k, OsStr::new("="), v])?;
        }
        Ok(())
    }

    /// `EINVAL` when a slot `Inherit`s one of the descriptors 0 to 2 that a handle
    /// shares (see `contracts::inheritable_std`).
    fn std_inheritable(&self) -> Result<()> {
        for (i, s) in self.stdio.as_slice().iter().enumerate().take(3) {
            if matches!(s, Stdio::Inherit) {
                crate::contracts::inheritable_std(i, SPAWN)?;
            }
        }
        Ok(())
    }

    /// `EINVAL` when the socket of a stream slot has another descriptor in this
    /// process (see `contracts::not_shared_for_blocking`).
    fn streams_unshared(&self) -> Result<()> {
        #[cfg(unix)]
        for s in self.stdio.as_slice() {
            if let Stdio::Stream(h) = s {
                // SAFETY: an open stream of this library (checked by `containers`;
                // nothing closed it since: no code of the user ran).
                unsafe { crate::contracts::not_shared_for_blocking(h.raw_struct().cast(), SPAWN)? };
            }
        }
        Ok(())
    }

    /// The stdio containers. Streams must be open; a pipe to create must be open,
    /// have no descriptor yet, and appear once: libuv opens it after the child is
    /// started, and a failure there would leave a child nobody waits for.
    ///
    /// On Unix, a slot `Inherit`ed from a descriptor number of 3 or more gets a
    /// copy of that descriptor made here (kept in `held` for the spawn): `EBADF`
    /// when it is closed. See [`HeldFds`].
    fn containers(&self, held: &mut HeldFds) -> Result<Containers> {
        let slots = self.stdio.as_slice();
        // Copies of inherited descriptors go above every slot's number (see
        // `HeldFds::inherited`).
        let above = c_int::try_from(slots.len()).map_err(|_| einval(SPAWN))?;
        let mut out = no_containers();
        for (i, s) in slots.iter().enumerate() {
            let (flags, data) = match s {
                Stdio::Ignore => (
                    StdioFlags::IGNORE,
                    sys::uv_stdio_container_s__bindgen_ty_1 { fd: -1 },
                ),
                Stdio::Inherit => {
                    // libuv makes a child's descriptors 0 to 2 blocking, and with
                    // them the open file a handle may share.
                    crate::contracts::inheritable_std(i, SPAWN)?;
                    (
                        StdioFlags::INHERIT_FD,
                        sys::uv_stdio_container_s__bindgen_ty_1 {
                            fd: held
                                .inherited(c_int::try_from(i).map_err(|_| einval(SPAWN))?, above)?,
                        },
                    )
                }
                #[cfg(unix)]
                Stdio::Fd(fd) => (
                    StdioFlags::INHERIT_FD,
                    sys::uv_stdio_container_s__bindgen_ty_1 {
                        fd: blocking(fd.as_raw_fd())?,
                    },
                ),
                #[cfg(unix)]
                Stdio::BorrowedFd(fd) => (
                    StdioFlags::INHERIT_FD,
                    sys::uv_stdio_container_s__bindgen_ty_1 {
                        fd: blocking(fd.as_raw_fd())?,
                    },
                ),
                Stdio::Stream(h) => {
                    if h.is_closing()
                        || !matches!(
                            h.handle_type(),
                            HandleType::Tcp | HandleType::NamedPipe | HandleType::Tty
                        )
                    {
                        return Err(Error::closed_handle(SPAWN));
                    }
                    // A stream without a descriptor is refused by libuv (EINVAL).
                    h.fileno().map_err(|_| einval(SPAWN))?;
                    // libuv puts the descriptor in blocking mode for the child, and
                    // the parent's stream shares that mode: not while it reads, nor
                    // while it listens (each connection event makes libuv accept
                    // once, and a child given the listener may take the connection
                    // first: the parent's accept would then wait for the next one
                    // with the loop's thread).
                    // SAFETY: an open stream of this library (checked above).
                    unsafe {
                        crate::contracts::not_reading(h.raw_struct().cast(), SPAWN)?;
                        crate::contracts::not_listening(h.raw_struct().cast(), SPAWN)?;
                        // Nor while another handle may read the same socket (one
                        // opened on a copy, or received over an IPC pipe).
                        #[cfg(unix)]
                        crate::contracts::not_shared_for_blocking(h.raw_struct().cast(), SPAWN)?;
                    }
                    (
                        StdioFlags::INHERIT_STREAM,
                        sys::uv_stdio_container_s__bindgen_ty_1 {
                            stream: h.raw_struct().cast(),
                        },
                    )
                }
                Stdio::Pipe(p, f) => {
                    let allowed = StdioFlags::READABLE_PIPE
                        | StdioFlags::WRITABLE_PIPE
                        | StdioFlags::NONBLOCK_PIPE;
                    let bits = crate::contracts::flags_arg(f.bits(), allowed.bits(), SPAWN)?;
                    let h: &Handle = p;
                    if h.is_closing() {
                        return Err(Error::closed_handle(SPAWN));
                    }
                    let given_before = slots[..i]
                        .iter()
                        .any(|e| matches!(e, Stdio::Pipe(q, _) if { let q: &Handle = q; q == h }));
                    if h.fileno().is_ok() || given_before {
                        return Err(Error::new(StatusCode::EBUSY, SPAWN));
                    }
                    (
                        StdioFlags::CREATE_PIPE | StdioFlags::from_bits_retain(bits),
                        sys::uv_stdio_container_s__bindgen_ty_1 {
                            stream: h.raw_struct().cast(),
                        },
                    )
                }
            };
            out.push(sys::uv_stdio_container_t {
                flags: flags.bits() as sys::uv_stdio_flags,
                data,
            });
        }
        Ok(out)
    }
}

/// The bytes libuv gets for an OS string (UTF-8 on Windows): `None` if it has none.
#[cfg(unix)]
fn os_bytes(s: &OsStr) -> Option<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    Some(s.as_bytes())
}

#[cfg(not(unix))]
fn os_bytes(s: &OsStr) -> Option<&[u8]> {
    // libuv takes UTF-8 on Windows.
    s.to_str().map(str::as_bytes)
}

/// The C strings of a spawn (the program, the arguments, the environment, the
/// directory) in one buffer, each ended by its NUL: one allocation for them all,
/// and where each starts (for the usual few, on the stack).
struct CStrs {
    bytes: Vec<u8>,
    /// Where each string starts in `bytes`.
    starts: SmallArray<usize, 8>,
}

impl CStrs {
    fn with_capacity(n: usize) -> CStrs {
        CStrs {
            bytes: Vec::with_capacity(n),
            starts: SmallArray::new(0),
        }
    }

    /// How many strings it holds (the index of the next one).
    fn len(&self) -> usize {
        self.starts.len()
    }

    /// Adds the string made of `parts`, and its NUL; its index. `EINVAL` if a part
    /// holds a NUL (or, on Windows, is not Unicode).
    fn push(&mut self, parts: &[&OsStr]) -> Result<usize> {
        let at = self.bytes.len();
        for part in parts {
            match os_bytes(part) {
                Some(b) if !b.contains(&0) => self.bytes.extend_from_slice(b),
                _ => {
                    self.bytes.truncate(at);
                    return Err(einval(SPAWN));
                }
            }
        }
        self.bytes.push(0);
        self.starts.push(at);
        Ok(self.starts.len() - 1)
    }

    /// String `i` (a value `push` returned).
    fn ptr(&self, i: usize) -> *const c_char {
        self.bytes[self.starts.as_slice()[i]..].as_ptr().cast()
    }

    /// The strings `from..to` (values of `len`), in order. libuv takes `char*` but
    /// only reads them.
    fn ptrs(&self, (from, to): (usize, usize)) -> impl Iterator<Item = *mut c_char> + '_ {
        let base = self.bytes.as_ptr().cast::<c_char>().cast_mut();
        // Each start is within `bytes` (a string pushed there), so `add` stays in it.
        self.starts.as_slice()[from..to]
            .iter()
            .map(move |&at| base.wrapping_add(at))
    }
}

impl std::fmt::Debug for CStrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let strings = self
            .bytes
            .split_inclusive(|&b| b == 0)
            .map(|s| String::from_utf8_lossy(s.strip_suffix(&[0]).unwrap_or(s)).into_owned());
        f.debug_list().entries(strings).finish()
    }
}

/// What `uv_process_options_t` points into besides the options' own strings, alive
/// across `uv_spawn`.
struct Prepared {
    /// The environment's and the directory's C strings.
    strs: CStrs,
    /// The span of `strs` that holds the environment, when the child gets its own.
    env: Option<(usize, usize)>,
    cwd: Option<usize>,
    flags: u32,
    uid: u32,
    gid: u32,
    stdio: Containers,
    /// Descriptors kept open until `uv_spawn` has returned.
    _held: HeldFds,
}

/// `fd` (open) when it is in blocking mode; `EINVAL` when it is in non-blocking
/// mode. libuv puts the descriptors it gives a child in blocking mode, in the
/// parent too, which shares the open file (`uv__nonblock_fcntl(use_fd, 0)` in
/// unix/process.c). A descriptor in non-blocking mode belongs to an event loop: a
/// handle's (whose number `Handle::fileno` gives), or a copy of one (a socket
/// cloned before `Pipe::open`), which shares its open file; a stream of the loop
/// would then read or write in blocking mode and hang the loop. `Stdio::Stream` is
/// the way to give a stream's descriptor (checked: not while it reads).
#[cfg(unix)]
fn blocking(fd: c_int) -> Result<c_int> {
    // SAFETY: F_GETFL only reads the descriptor's flags.
    let status = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if status >= 0 && status & libc::O_NONBLOCK != 0 {
        return Err(einval(SPAWN));
    }
    Ok(fd)
}

/// Descriptors kept open during one `uv_spawn` (closed when it is dropped), so
/// that no child slot's number is one libuv takes for itself then.
///
/// libuv's fork path (`uid`/`gid`, or wherever `posix_spawn` cannot be used)
/// makes a close-on-exec pipe on the lowest free numbers; the child reports a
/// failed `exec` through its write end, and the parent reads it until EOF
/// (unix/process.c, `uv__spawn_and_init_child`). When that write end has the number
/// of a child slot, the child's set-up of the slot takes it over
/// (`uv__process_child_init`): an inherited slot (`fd == use_fd`) clears its
/// close-on-exec flag, so the child keeps the pipe open after `exec` and
/// `uv_spawn` blocks until the child exits (the loop's thread hangs for as long
/// as the child runs) and then reports a success; another slot is `dup2`ed over
/// it, so a failed `exec` is written into the slot's file and reported as a
/// success. Such a number is one that is closed in the parent (the pipe takes free
/// numbers): every slot from 3 on that is not ignored and whose number is closed
/// gets a place-holder here for the call. An inherited slot is passed as a copy
/// of its descriptor, made first, so that a number closed by another thread
/// meanwhile is only ever `dup2`ed over in the child.
#[derive(Default)]
struct HeldFds(#[cfg(unix)] Vec<OwnedFd>);

impl HeldFds {
    /// The descriptor to pass for slot `fd` inherited: the slot's own number for
    /// 0 to 2 (kept open by the loop, see `contracts::reserve_stdio`), a copy of it
    /// above: `EBADF` when it is closed, `EINVAL` when it is in non-blocking mode
    /// (see [`blocking`]; descriptors 0 to 2 are never a handle's:
    /// `contracts::owned_fd`). The copy takes a number from `slots` (the number of
    /// slots) on, never a slot's: on the lowest free number it could take a later
    /// slot's closed number, which then looked open (an `Inherit` of it gave the
    /// child this slot's file instead of `EBADF`, and no place-holder was made for
    /// it).
    #[cfg(unix)]
    fn inherited(&mut self, fd: c_int, slots: c_int) -> Result<c_int> {
        use std::os::fd::FromRawFd;
        if fd <= 2 {
            return Ok(fd);
        }
        blocking(fd)?;
        // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor (or fails); no memory is
        // involved.
        let mut copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, slots.max(3)) };
        if copy < 0
            && slots > 3
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
        {
            // More slots than the process may have descriptors (`Ignore` slots up to
            // a number past the limit): the lowest free number, as before.
            // SAFETY: as above.
            copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        }
        if copy < 0 {
            let errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EBADF);
            // libuv's status codes on Unix are negated errno values.
            return Err(Error::from_raw(-errno, SPAWN));
        }
        // SAFETY: `copy` was just made and is owned by nothing else.
        self.0.push(unsafe { OwnedFd::from_raw_fd(copy) });
        Ok(copy)
    }

    #[cfg(not(unix))]
    fn inherited(&mut self, fd: c_int, _slots: c_int) -> Result<c_int> {
        Ok(fd)
    }

    /// Opens a place-holder on the number of every slot from 3 on that is not
    /// ignored and is closed now. Best effort: a number it cannot take (a limit
    /// reached) is left, as before.
    #[cfg(unix)]
    fn reserve_slot_numbers(&mut self, slots: &[sys::uv_stdio_container_t]) {
        use std::os::fd::FromRawFd;
        let ignore = StdioFlags::IGNORE.bits() as sys::uv_stdio_flags;
        for (n, slot) in slots.iter().enumerate().skip(3) {
            let Ok(n) = c_int::try_from(n) else { break };
            // SAFETY: F_GETFD only reads the descriptor's flags.
            if slot.flags == ignore || unsafe { libc::fcntl(n, libc::F_GETFD) } >= 0 {
                continue;
            }
            // The lowest free number from `n` on: `n` unless another thread took it
            // meanwhile (then it is open, which is all that is needed). Descriptor
            // 0 is open while a loop exists (`contracts::reserve_stdio`).
            // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor (or fails).
            let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, n) };
            if fd >= 0 {
                // SAFETY: `fd` was just made and is owned by nothing else; one that
                // is not `n` is closed at once.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                if fd.as_raw_fd() == n {
                    self.0.push(fd);
                }
            }
        }
    }
}

/// The stdio slots of `ProcessOptions`: the usual three (or fewer) inline, more in
/// a `Vec`.
enum StdioSlots<'a> {
    Inline([Stdio<'a>; 3], usize),
    Heap(Vec<Stdio<'a>>),
}

impl Default for StdioSlots<'_> {
    fn default() -> Self {
        StdioSlots::Inline([Stdio::Ignore, Stdio::Ignore, Stdio::Ignore], 0)
    }
}

impl<'a> StdioSlots<'a> {
    fn as_slice(&self) -> &[Stdio<'a>] {
        match self {
            StdioSlots::Inline(slots, len) => &slots[..*len],
            StdioSlots::Heap(slots) => slots,
        }
    }

    /// Sets slot `fd`; the slots below it that were not set are `Ignore`.
    fn set(&mut self, fd: usize, stdio: Stdio<'a>) {
        if let StdioSlots::Inline(slots, len) = self {
            if let Some(slot) = slots.get_mut(fd) {
                *slot = stdio;
                *len = (*len).max(fd + 1);
                return;
            }
            let moved = slots[..*len]
                .iter_mut()
                .map(|s| std::mem::replace(s, Stdio::Ignore))
                .collect();
            *self = StdioSlots::Heap(moved);
        }
        if let StdioSlots::Heap(slots) = self {
            if slots.len() <= fd {
                slots.resize_with(fd + 1, || Stdio::Ignore);
            }
            slots[fd] = stdio;
        }
    }
}

impl std::fmt::Debug for StdioSlots<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// The `uv_stdio_container_t`s of a spawn: the usual three on the stack.
type Containers = SmallArray<sys::uv_stdio_container_t, 3>;

fn no_containers() -> Containers {
    SmallArray::new(sys::uv_stdio_container_t {
        flags: StdioFlags::IGNORE.bits() as sys::uv_stdio_flags,
        data: sys::uv_stdio_container_s__bindgen_ty_1 { fd: -1 },
    })
}

/// Up to `N` values on the stack, more in a `Vec`: the arrays `uv_spawn` reads,
/// which seldom need the heap.
struct SmallArray<T: Copy, const N: usize> {
    inline: [T; N],
    len: usize,
    /// Every value, once there are more than `N`.
    heap: Vec<T>,
}

impl<T: Copy, const N: usize> SmallArray<T, N> {
    /// An empty array (`fill` fills the unused inline places).
    fn new(fill: T) -> Self {
        SmallArray {
            inline: [fill; N],
            len: 0,
            heap: Vec::new(),
        }
    }

    fn push(&mut self, value: T) {
        if self.len < N {
            self.inline[self.len] = value;
        } else {
            if self.len == N {
                self.heap.reserve(N + 1);
                self.heap.extend_from_slice(&self.inline);
            }
            self.heap.push(value);
        }
        self.len += 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    fn as_slice(&self) -> &[T] {
        if self.len <= N {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        if self.len <= N {
            &mut self.inline[..self.len]
        } else {
            &mut self.heap
        }
    }
}

impl<T: Copy, const N: usize> Extend<T> for SmallArray<T, N> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, values: I) {
        for v in values {
            self.push(v);
        }
    }
}

impl Process {
    /// Starts a child process (`uv_spawn`) as `options` say; `on_exit` runs once, on
    /// the loop, when it has exited, with its exit status and the signal that ended
    /// it. The process stays open without any `Process` value until then.
    ///
    /// A failed spawn is the error (`ENOENT` for a program that does not exist,
    /// `EACCES`, `EPERM` for `uid`/`gid` without the privilege, …) and leaves no
    /// process handle behind. When the program could not be run (the error came
    /// from the child, after its pipes were made: `ENOENT`, `EACCES`, …), the
    /// pipes of `Stdio::Pipe` stay open on their end, as libuv leaves them: the
    /// child's end is closed, so a read gets the end of the stream and a write
    /// `EPIPE`; such a pipe cannot serve another spawn (`EBUSY`). Bad options are `EINVAL` before libuv is called (see
    /// [`ProcessOptions`]); a pipe of `Stdio::Pipe` that already has a descriptor,
    /// or is given twice, is `EBUSY`; a closed stream is `ClosedHandle`.
    pub fn spawn(
        loop_: &LoopHandle,
        options: &ProcessOptions<'_>,
        on_exit: impl FnMut(&Process, i64, Option<Signum>) + 'static,
    ) -> Result<Process> {
        // In a forked child that did not re-create the loop, libuv's watch for the
        // child's exit would be started on the signal pipe the loop shares with
        // the parent (see the spec state `own_process`), and the loop cannot run
        // to see the exit anyway.
        loop_.shared().check_process(SPAWN)?;
        let mut p = options.prepare()?;
        // The argument vector, its NULL, then the environment's and its NULL: one
        // array.
        let argv_strs = &options.argv;
        let env_count = p.env.map_or(0, |_| p.strs.len() + 1);
        let mut ptrs = SmallArray::<*mut c_char, 16>::new(std::ptr::null_mut());
        if argv_strs.len() + 1 + env_count > 16 {
            ptrs.heap.reserve_exact(argv_strs.len() + 1 + env_count);
        }
        ptrs.extend(argv_strs.ptrs((0, argv_strs.len())));
        ptrs.push(std::ptr::null_mut());
        let env_at = ptrs.len();
        if let Some(env) = p.env {
            ptrs.extend(p.strs.ptrs(env));
            ptrs.push(std::ptr::null_mut());
        }
        let (argv, envp) = ptrs.as_mut_slice().split_at_mut(env_at);
        let raw_options = sys::uv_process_options_t {
            exit_cb: Some(exit_trampoline),
            // The program is the first string of the arguments.
            file: argv_strs.ptr(0),
            args: argv.as_mut_ptr(),
            env: if p.env.is_some() {
                envp.as_mut_ptr()
            } else {
                std::ptr::null_mut()
            },
            cwd: p.cwd.map_or(std::ptr::null(), |c| p.strs.ptr(c)),
            flags: p.flags,
            stdio_count: c_int::try_from(p.stdio.len()).map_err(|_| einval(SPAWN))?,
            stdio: p.stdio.as_mut_slice().as_mut_ptr(),
            uid: p.uid as _,
            gid: p.gid as _,
        };
        let slots = ProcessSlots::default();
        // SAFETY: `|p| p` is the unsizing coercion to the slot's callback type.
        slots
            .on_exit
            .set(unsafe { slots.on_exit.callback(on_exit, |p| p) });
        let mut spawned = 0;
        let init = |l, h: *mut sys::uv_process_t| {
            // Keeps the crate from putting SIGCHLD back to SIG_IGN while libuv installs
            // its handler and waits for the child (contracts::process_state_lock).
            // Refused on a thread of libuv's pool once the process is exiting
            // (the lock is held for good then: `contracts::at_exit`).
            let Some(held) = crate::contracts::process_state_lock() else {
                return sys::uv_errno_t_UV_ECANCELED;
            };
            // The standard descriptors inherited are checked again under the lock,
            // which a handle that shares one of them takes to be counted
            // (`contracts::count_std_shares`): one counted since `prepare` checked
            // them (another thread's loop) refuses the spawn, and one counted from
            // now on waits until this child made them blocking, for its
            // `read_start` to see it.
            // Likewise a stream given to the child: a handle of another thread that
            // received its socket since (over an IPC pipe) refuses the spawn, and
            // one registered from now on finds the socket marked as the child's
            // (`handle::hold_socket`, under this lock).
            if let Err(e) = options
                .std_inheritable()
                .and_then(|()| options.streams_unshared())
            {
                drop(held);
                return e.code().raw();
            }
            // SAFETY: `l` is an open loop and `h` a fresh handle struct that will not
            // move; every pointer of `raw_options` points into `options` (the program
            // and arguments), `p`, `argv` and `envp`, which outlive the call and are
            // not changed during it; the program is non-null (`prepare` refuses
            // options whose program could not be stored) and the flags hold only
            // known bits (checked by `prepare`), which is what libuv asserts; the
            // stdio streams are open handles (checked by `containers`).
            spawned = unsafe { sys::uv_spawn(l, h, &raw_options) };
            if spawned >= 0 {
                // The child shares the open file of each stream it was given: those
                // streams read no more (see `Stdio::Stream`).
                for s in options.stdio.as_slice() {
                    if let Stdio::Stream(h) = s {
                        crate::handle::mark_shared_with_child(h);
                    }
                }
            }
            drop(held);
            if spawned < 0 {
                // SAFETY: uv_spawn initialised the handle before anything could fail.
                unsafe { unlink_guard(h) };
            }
            // uv_spawn initialises the handle whether or not it starts the child, and
            // libuv requires uv_close either way: report the handle as made, and close
            // it below when the spawn failed.
            0
        };
        // SAFETY: `init` initialises the struct as a process handle with uv_spawn (which
        // does so whether or not the child starts; a failed spawn is reported after
        // the handle is made, and closed) and does not unwind after it.
        let inner = unsafe { Typed::new(loop_, slots, SPAWN, init) }?;
        drop(ptrs);
        let process = Process::from_typed(inner);
        if spawned < 0 {
            process.close();
            return Err(Error::from_raw(spawned, SPAWN));
        }
        Ok(process)
    }

    /// The process id of the child (`uv_process_get_pid`; kept after it exited).
    pub fn pid(&self) -> Result<i32> {
        let raw = self.typed().raw("uv_process_get_pid")?;
        // SAFETY: the handle is open; libuv reads one field.
        Ok(unsafe { sys::uv_process_get_pid(raw) } as i32)
    }
}

/// After a failed `uv_spawn`: on some failures (a stdio slot libuv could not set up)
/// libuv has already taken the handle out of the loop's handle list, and `uv_close`
/// would take it out a second time, writing through neighbours that may be gone by
/// then. A handle no longer in the list is made a list of its own, so that the
/// second removal changes nothing.
///
/// # Safety
/// `h` must be a handle `uv_spawn` just returned an error for, with no libuv call
/// in between.
unsafe fn unlink_guard(h: *mut sys::uv_process_t) {
    // SAFETY: per the contract, the handle's list node is either linked (its
    // neighbour points back at it) or was just unlinked (its neighbours are alive and
    // point at each other).
    unsafe {
        let q = std::ptr::addr_of_mut!((*h).handle_queue);
        if (*(*q).prev).next != q {
            (*q).next = q;
            (*q).prev = q;
        }
    }
}

unsafe extern "C" fn exit_trampoline(
    raw: *mut sys::uv_process_t,
    exit_status: i64,
    term_signal: c_int,
) {
    let signal = (term_signal != 0).then(|| Signum::from_raw(term_signal));
    // SAFETY: libuv passes a handle that Process::spawn initialised.
    unsafe { dispatch::<Process, _>(raw, |s| &s.on_exit, |cb, h| cb(h, exit_status, signal)) }
}

/// Sends `signum` to the process `pid` (`uv_kill`). `pid` must be positive (`EINVAL`
/// otherwise: 0 and negative numbers would address process groups, -1 every
/// process); `ESRCH` when there is no such process.
pub fn kill(pid: i32, signum: Signum) -> Result<()> {
    if pid <= 0 || matches!(signum, Signum::Other(_)) {
        return Err(einval("uv_kill"));
    }
    // SAFETY: no memory is involved; the arguments were checked above.
    check(unsafe { sys::uv_kill(pid, signum.raw()) }, "uv_kill")
}

/// Whether the process `pid` exists (`uv_kill` with signal 0, which sends
/// nothing): `true` also for one this process may not signal (`EPERM`), and for
/// a child that exited and was not reaped yet. `pid` must be positive (`EINVAL`
/// otherwise, as for [`kill`]). A pid may be reused once its process is gone:
/// for a child of this loop, its [`Process`] handle's exit callback is the
/// reliable answer.
pub fn process_exists(pid: i32) -> Result<bool> {
    if pid <= 0 {
        return Err(einval("uv_kill"));
    }
    // SAFETY: no memory is involved; signal 0 sends nothing.
    match unsafe { sys::uv_kill(pid, 0) } {
        0 => Ok(true),
        rc if rc == crate::StatusCode::EPERM.raw() => Ok(true),
        rc if rc == crate::StatusCode::ESRCH.raw() => Ok(false),
        rc => Err(crate::Error::from_raw(rc, "uv_kill")),
    }
}

/// Marks the descriptors this process inherited as close-on-exec
/// (`uv_disable_stdio_inheritance`), so that children spawned later do not get them
/// unless the spawn options pass them. Call it early, before threads spawn processes.
pub fn disable_stdio_inheritance() {
    // SAFETY: no preconditions; libuv only changes descriptor flags.
    unsafe { sys::uv_disable_stdio_inheritance() }
}
