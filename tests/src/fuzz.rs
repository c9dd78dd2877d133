//! A spec-driven API fuzzer for `uv`.
//!
//! The table of operations is generated from the spec: `build.rs` runs
//! `uv_codegen::emit::fuzz_table`, which gives every handle type of `spec/handles/`
//! its constructors, methods and properties, with arguments made from their
//! conversions, plus the base operations every handle has and, for `parent =
//! "stream"` types, the stream operations. A handle type added to the spec is
//! fuzzed without fuzzer code. This module is the runtime behind the table:
//!
//! - argument generators that mix valid and hostile values (unknown enum values and
//!   flag bits, zero and huge sizes and durations, empty, NUL-containing and huge
//!   paths and strings, descriptors of the wrong kind, loopback addresses only);
//! - a pool of handles over two loops, where handles get closed, outlive their loop
//!   and lose their last reference at random;
//! - callbacks that reach the fuzzer through a thread-local and call further
//!   operations (depth-limited), sometimes on their own handle, sometimes panicking;
//! - hand-written operations for what the spec does not describe (loops, UDP
//!   receive and send, TCP reset, terminals, async senders, `std` peers);
//! - checks: every call returns `Ok` or an error value, a `Rejected` hands back the
//!   descriptor it was given, a closed handle answers as the spec's `on_closed`
//!   says, nothing panics but the deliberate callback panics, nothing hangs (a
//!   watchdog aborts), and nothing leaks (Rust allocations and descriptors return to
//!   their baseline after every seed; the caller counts the allocations);
//! - coverage: every operation of the table ran at least once (a run's calls depend
//!   on when callbacks come, so under load up to 64 more seeds run for the ones
//!   missed, with the same checks).
//!
//! Environment:
//! - `UV_FUZZ_SEED`: the first seed (default 1); the seeds after it follow.
//! - `UV_FUZZ_CALLS`: calls in all (default 30000).
//! - `UV_FUZZ_PER_SEED`: calls per seed (default 1500). One seed is replayed with
//!   `UV_FUZZ_SEED=S UV_FUZZ_CALLS=1500`.
//! - `UV_FUZZ_TRACE=1`: prints every operation as it starts.
//! - `UV_FUZZ_STATS=1`: prints, at the end, how often each operation ran and
//!   answered `Ok`, and how often each callback ran.
//! - `UV_FUZZ_SKIP=Type.op,op,signum=N,res=NAME,...`: leaves operations, a signal
//!   number or a kind of descriptor (`res=ptmx`, see `Cx::make_res`) out, to narrow
//!   a failure down or to look past a known one.
//! - `UV_FUZZ_WATCHDOG_SECS`: how long one operation may take (default 15; they
//!   take milliseconds).
//! - `UV_FUZZ_WORKER=1`: fuzzes in this process. Without it the test runs itself as
//!   a child process and, if that dies (an abort, a segfault), replays the seed with
//!   a trace, so that even a crash is reported with its last operations.

use std::any::Any;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{
    Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream, UdpSocket,
};
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use uv::Stream as _;

use uv::{HandleType, LoopHandle, RunMode, StatusCode};

/// The table generated from the spec (see `uv_codegen::emit::fuzz_table`).
mod generated {
    include!(concat!(env!("OUT_DIR"), "/fuzz_table.rs"));
}

pub use generated::AnyHandle;

/// At most this many handle references in the pool.
const POOL_MAX: usize = 32;
/// At most this many `std` resources (peers, listeners) kept.
const RES_MAX: usize = 24;
/// At most this many known addresses of our own sockets.
const ADDRS_MAX: usize = 8;
/// How deep callbacks may nest operations that run callbacks.
const MAX_DEPTH: u32 = 4;
/// Operations callbacks may run during one top-level operation.
const BUDGET: u32 = 48;
/// One callback in this many panics.
const PANIC_ONE_IN: u64 = 96;
/// One deliberate panic in this many has a payload whose `Drop` panics again.
const BOMB_ONE_IN: u64 = 6;
/// Bytes written to a terminal per descriptor and seed: nobody reads the fuzzer's
/// pseudo-terminals, and libuv writes to terminals synchronously, so more would block.
const TTY_BYTES: usize = 2048;

// ---------------------------------------------------------------------------
// Configuration

/// The run's settings, from the environment (see the module documentation).
#[derive(Clone, Debug)]
pub struct Config {
    first_seed: u64,
    calls: u64,
    per_seed: u64,
    trace: bool,
    watchdog: Duration,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Config {
    /// The settings the environment gives.
    pub fn from_env() -> Config {
        Config {
            first_seed: env_u64("UV_FUZZ_SEED", 1),
            calls: env_u64("UV_FUZZ_CALLS", 30_000),
            per_seed: env_u64("UV_FUZZ_PER_SEED", 1_500).max(1),
            trace: std::env::var_os("UV_FUZZ_TRACE").is_some_and(|v| v != "0"),
            watchdog: Duration::from_secs(env_u64("UV_FUZZ_WATCHDOG_SECS", 15)),
        }
    }
}

/// Live Rust allocations, as the test binary's counting allocator sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Live {
    /// Allocations not yet freed.
    pub count: usize,
    /// Their bytes.
    pub bytes: usize,
}

// ---------------------------------------------------------------------------
// Operations

/// What an operation exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A spec constructor.
    Constructor,
    /// A spec method.
    Method,
    /// A spec property's getter or setter.
    Property,
    /// An operation every handle has (`uv::Handle`), or one on references.
    Base,
    /// A stream operation.
    Stream,
    /// A hand-written part of a handle type.
    Extra,
    /// A loop operation.
    Loop,
    /// A `std` peer or resource of the fuzzer.
    Resource,
    /// A generated request function (asynchronous or blocking), or an operation
    /// on a pending `uv::Request`.
    Request,
    /// A future or a task of the loop's executor (`uv::future`).
    Future,
}

/// One operation: it picks its target and arguments and makes the call. It returns
/// whether it ran (false when it found no target).
#[derive(Clone, Copy, Debug)]
pub struct Op {
    /// The handle type (or `Loop`, `std`, ...).
    pub handle: &'static str,
    /// The operation.
    pub name: &'static str,
    /// What it exercises.
    pub kind: OpKind,
    /// Runs it.
    pub run: fn(&Cx) -> bool,
}

/// A handle type's operations, from the generated table.
#[derive(Clone, Copy, Debug)]
pub struct HandleOps {
    /// The type.
    pub name: &'static str,
    /// Whether it is a stream.
    pub stream: bool,
    /// Its operations.
    pub ops: &'static [Op],
}

/// What a descriptor argument must be (the spec's `kind`): the runtime's own.
pub use uv::runtime::FdKind;

/// A handle type the pool holds (implemented by the generated table).
pub trait Member: Clone + fmt::Debug + Deref<Target = uv::Handle> + 'static {
    /// The type's name.
    const NAME: &'static str;
    /// The typed handle, if `a` is one.
    fn from_any(a: &AnyHandle) -> Option<&Self>;
    /// Into the pool's type.
    fn into_any(self) -> AnyHandle;
    /// `Handle::downcast` to this type.
    fn downcast(h: &uv::Handle) -> Option<Self>;
    /// A new handle from one of the type's constructors, with random arguments.
    fn construct(cx: &Cx) -> Option<Self>;
}

/// The stream operations, forwarded to the inherent methods of each stream type
/// (implemented by the generated table).
pub trait Stream: Member + uv::Stream {
    /// `write2` sending `send`; `None` if `send` is not a stream.
    fn write2_any(
        &self,
        data: uv::WriteData,
        send: &AnyHandle,
        cb: impl FnOnce(&Self, uv::Result<()>) + 'static,
    ) -> Option<uv::Result<()>>;
    /// `accept` into `client`; `None` if `client` is not a stream.
    fn accept_any(&self, client: &AnyHandle) -> Option<uv::Result<()>>;
}

/// Every operation (generated, then hand-written), with the run's hit counts.
struct Registry {
    ops: Vec<Op>,
    /// Signal numbers `UV_FUZZ_SKIP` leaves out (`signum=13`).
    skip_signals: Vec<i32>,
    /// Kinds of resource `UV_FUZZ_SKIP` leaves out (`res=ptmx`).
    skip_res: Vec<String>,
    /// Cumulative weights, for picking.
    cumulative: Vec<u64>,
    hits: Vec<AtomicU64>,
    /// Calls that answered `Ok`, per operation (for `UV_FUZZ_STATS`).
    oks: Vec<AtomicU64>,
    /// Callbacks per site (for `UV_FUZZ_STATS`); room made up front, so that a new
    /// site does not look like a leak.
    sites: Mutex<Vec<(&'static str, u64)>>,
    skip: Vec<bool>,
    /// The operations of each handle type (or `Loop`, `std`, ...), by name.
    by_type: Vec<(&'static str, Vec<usize>)>,
    types: usize,
    streams: usize,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

fn registry() -> &'static Registry {
    REGISTRY.get_or_init(|| {
        let table = generated::table();
        let mut ops: Vec<Op> = table.iter().flat_map(|t| t.ops.iter().copied()).collect();
        ops.extend(generated::request_table().into_iter().flatten().copied());
        ops.extend_from_slice(HAND_OPS);
        let skip_list: Vec<String> = std::env::var("UV_FUZZ_SKIP")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let skip_signals = skip_list
            .iter()
            .filter_map(|s| s.strip_prefix("signum=")?.parse().ok())
            .collect();
        let skip_res = skip_list
            .iter()
            .filter_map(|s| s.strip_prefix("res=").map(str::to_string))
            .collect();
        let skip = ops
            .iter()
            .map(|o| {
                let full = format!("{}.{}", o.handle, o.name);
                skip_list.iter().any(|s| *s == full || s == o.name)
            })
            .collect();
        let n = ops.len() as u64;
        let mut total = 0;
        let cumulative = ops
            .iter()
            .map(|o| {
                total += weight(o, n);
                total
            })
            .collect();
        let mut by_type: Vec<(&'static str, Vec<usize>)> = Vec::new();
        for (i, o) in ops.iter().enumerate() {
            match by_type.iter_mut().find(|(t, _)| *t == o.handle) {
                Some((_, v)) => v.push(i),
                None => by_type.push((o.handle, vec![i])),
            }
        }
        Registry {
            skip_res,
            by_type,
            skip_signals,
            hits: ops.iter().map(|_| AtomicU64::new(0)).collect(),
            oks: ops.iter().map(|_| AtomicU64::new(0)).collect(),
            sites: Mutex::new(Vec::with_capacity(512)),
            ops,
            cumulative,
            skip,
            types: table.len(),
            streams: table.iter().filter(|t| t.stream).count(),
        }
    })
}

/// How often an operation is picked, against 1 for most: loop runs (where callbacks
/// happen) about one call in eight, and the peers that feed the handles data and
/// connections a little more than the rest.
fn weight(o: &Op, ops: u64) -> u64 {
    match (o.handle, o.name) {
        ("Loop", "run") => (ops / 7).max(1),
        ("std", "write" | "connect") => 4,
        ("std", "learn_addrs") => 2,
        (_, "setup") => 3,
        // The only way to a `Process` in the pool.
        ("Process", "spawn") => 3,
        // Runs only when the pool holds a `Process` (children exit and are
        // dropped soon): at 1 it ran 3 to 9 times in 30,000 calls, so the
        // coverage check could miss it.
        ("Process", "pid") => 4,
        // Runs only when a listener of the pool has a connection waiting (5 to 11
        // times in 30,000 calls at 1).
        ("std", "accept") => 3,
        _ => 1,
    }
}

// ---------------------------------------------------------------------------
// The operation log, the watchdog and the reports

const LOG_LEN: usize = 64;
const NOTE_LEN: usize = 120;

#[derive(Clone, Copy)]
struct Entry {
    seq: u64,
    depth: u32,
    handle: &'static str,
    op: &'static str,
    note: [u8; NOTE_LEN],
    note_len: usize,
}

const EMPTY: Entry = Entry {
    seq: 0,
    depth: 0,
    handle: "",
    op: "",
    note: [0; NOTE_LEN],
    note_len: 0,
};

/// The last operations, without allocation (the watchdog prints them from its own
/// thread).
struct Log {
    entries: [Entry; LOG_LEN],
    next: usize,
}

static LOG: Mutex<Log> = Mutex::new(Log {
    entries: [EMPTY; LOG_LEN],
    next: 0,
});
static SEQ: AtomicU64 = AtomicU64::new(0);
/// Bumped at every operation's start and end; the watchdog watches it.
static PROGRESS: AtomicU64 = AtomicU64::new(0);
static SEED: AtomicU64 = AtomicU64::new(0);
static PER_SEED: AtomicU64 = AtomicU64::new(0);
static TRACE: AtomicBool = AtomicBool::new(false);
/// The message of the last panic that was not a deliberate one.
static UNEXPECTED: Mutex<Option<String>> = Mutex::new(None);

fn lock_log() -> std::sync::MutexGuard<'static, Log> {
    LOG.lock().unwrap_or_else(|e| e.into_inner())
}

fn log_begin(handle: &'static str, op: &'static str, depth: u32) {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) + 1;
    PROGRESS.fetch_add(1, Ordering::Relaxed);
    let mut log = lock_log();
    let i = log.next;
    log.entries[i] = Entry {
        seq,
        depth,
        handle,
        op,
        ..EMPTY
    };
    log.next = (i + 1) % LOG_LEN;
    if TRACE.load(Ordering::Relaxed) {
        eprintln!(
            "uv-fuzz: op #{seq} {}{handle}.{op}",
            "  ".repeat(depth as usize)
        );
    }
}

/// Writes into a fixed buffer, dropping what does not fit.
struct NoteWriter<'a> {
    buf: &'a mut [u8; NOTE_LEN],
    len: &'a mut usize,
}

impl fmt::Write for NoteWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = NOTE_LEN - *self.len;
        let take = s.len().min(room);
        self.buf[*self.len..*self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        *self.len += take;
        if take < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

fn log_note(args: fmt::Arguments<'_>) {
    let mut log = lock_log();
    let i = (log.next + LOG_LEN - 1) % LOG_LEN;
    let e = &mut log.entries[i];
    let start = e.note_len;
    let mut w = NoteWriter {
        buf: &mut e.note,
        len: &mut e.note_len,
    };
    let _ = fmt::Write::write_fmt(&mut w, args);
    let _ = fmt::Write::write_str(&mut w, " ");
    if TRACE.load(Ordering::Relaxed) {
        eprintln!(
            "uv-fuzz:     {}",
            String::from_utf8_lossy(&e.note[start..e.note_len])
        );
    }
}

fn dump_log() {
    // The lock may be held by a thread that hangs; a torn log beats none.
    let log = match LOG.try_lock() {
        Ok(l) => l,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {
            eprintln!("uv-fuzz: (the operation log is locked)");
            return;
        }
    };
    eprintln!("uv-fuzz: the last operations, oldest first (depth = callback nesting):");
    for k in 0..LOG_LEN {
        let e = &log.entries[(log.next + k) % LOG_LEN];
        if e.seq == 0 {
            continue;
        }
        eprintln!(
            "uv-fuzz:   #{:<8} {}{}.{} {}",
            e.seq,
            "  ".repeat(e.depth as usize),
            e.handle,
            e.op,
            String::from_utf8_lossy(&e.note[..e.note_len])
        );
    }
}

fn report(msg: &str) {
    let seed = SEED.load(Ordering::Relaxed);
    eprintln!("uv-fuzz: FAILED: {msg}");
    eprintln!(
        "uv-fuzz: seed {seed}; replay with UV_FUZZ_SEED={seed} UV_FUZZ_CALLS={} cargo test -p uv-tests --test fuzz",
        PER_SEED.load(Ordering::Relaxed)
    );
    dump_log();
}

/// Aborts the process, with the seed and the last operations, when no operation
/// finished for the limit (a hang in libuv or in the runtime).
struct Watchdog {
    stop: std::sync::Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(limit: Duration) -> Watchdog {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut last = PROGRESS.load(Ordering::Relaxed);
            let mut since = Instant::now();
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let now = PROGRESS.load(Ordering::Relaxed);
                if now != last {
                    (last, since) = (now, Instant::now());
                } else if since.elapsed() > limit {
                    report(&format!("hang: no operation finished for {limit:?}"));
                    std::process::abort();
                }
            }
        });
        Watchdog {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The payload of a deliberate panic in a callback.
#[derive(Debug)]
pub struct FuzzPanic {
    /// Whether dropping it panics again (with a [`FuzzFuse`]).
    bomb: bool,
}

impl Drop for FuzzPanic {
    fn drop(&mut self) {
        // Never while unwinding: that would abort by Rust's rules, whoever drops it.
        if self.bomb && !std::thread::panicking() {
            std::panic::panic_any(FuzzFuse);
        }
    }
}

/// The payload of the panic a dropped [`FuzzPanic`] bomb raises. Zero-sized, so
/// that a runtime that forgets it (rather than risk another panic) leaks nothing.
#[derive(Debug)]
pub struct FuzzFuse;

fn is_fuzz_payload(p: &(dyn Any + Send)) -> bool {
    p.is::<FuzzPanic>() || p.is::<FuzzFuse>()
}

/// Keeps the deliberate panics quiet and remembers the message of any other.
fn install_panic_hook() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_fuzz_payload(info.payload()) {
            return;
        }
        *UNEXPECTED.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.to_string());
        prev(info);
    }));
}

/// Drops a panic payload whose `Drop` may panic.
fn drop_payload(p: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(p))) {
        if again.is::<FuzzFuse>() {
            drop(again);
        } else {
            std::mem::forget(again);
        }
    }
}

fn payload_text(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        return (*s).to_string();
    }
    if let Some(s) = p.downcast_ref::<String>() {
        return s.clone();
    }
    let msg = UNEXPECTED.lock().unwrap_or_else(|e| e.into_inner()).take();
    msg.unwrap_or_else(|| "(a payload that is not a string)".into())
}

// ---------------------------------------------------------------------------
// The run's state

#[derive(Debug, Default)]
struct Stats {
    ok: Cell<u64>,
    errors: Cell<u64>,
    rejected: Cell<u64>,
    panics: Cell<u64>,
    callbacks: Cell<u64>,
    open_targets: Cell<u64>,
    closed_targets: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

thread_local! {
    /// The running seed's state, for callbacks.
    static CX: RefCell<Option<Rc<Cx>>> = const { RefCell::new(None) };
}

fn current() -> Option<Rc<Cx>> {
    CX.with(|c| c.borrow().clone())
}

/// One seed's state. Every field is borrowed only briefly, never across a call into
/// `uv` or a drop of a `uv` value: those may run callbacks, which come back here.
pub struct Cx {
    seed: u64,
    rng: Cell<u64>,
    dir: PathBuf,
    loops: RefCell<[Option<Rc<uv::Loop>>; 2]>,
    /// References to loops that are gone (or whose owner was replaced).
    stale: RefCell<Vec<LoopHandle>>,
    pool: RefCell<Vec<AnyHandle>>,
    res: RefCell<Vec<Res>>,
    addrs: RefCell<Vec<SocketAddr>>,
    senders: RefCell<Vec<uv::AsyncSender>>,
    /// Requests the generated request operations started (pending or done).
    requests: RefCell<Vec<uv::Request>>,
    /// Futures made and not yet completed or dropped (polled by `Future.poll`,
    /// spawned by `Future.spawn`), and the tasks' join handles.
    futures: RefCell<Vec<BoxFuture>>,
    joins: RefCell<Vec<uv::JoinHandle<()>>>,
    /// Open files and directory streams for the request operations.
    files: RefCell<Vec<uv::File>>,
    dirs: RefCell<Vec<uv::Dir>>,
    later: RefCell<Vec<uv::CallLater>>,
    /// The handle a callback is running for: operations prefer it as target.
    focus: RefCell<Option<AnyHandle>>,
    /// The fuzzer's own loop breakers, kept out of the pool.
    breakers: RefCell<Vec<uv::Handle>>,
    tty_bytes: RefCell<Vec<(RawFd, usize)>>,
    depth: Cell<u32>,
    /// The operation running now (for the statistics).
    op: Cell<usize>,
    budget: Cell<u32>,
    calls: Cell<u64>,
    ending: Cell<bool>,
    serial: Cell<u64>,
    failure: RefCell<Option<String>>,
    stats: Stats,
    /// The children `Process.spawn` started; last, so that every handle and loop
    /// is gone before they are killed and reaped.
    children: Children,
}

impl fmt::Debug for Cx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cx")
            .field("seed", &self.seed)
            .field("calls", &self.calls.get())
            .finish_non_exhaustive()
    }
}

impl Cx {
    fn new(seed: u64, dir: &Path) -> Cx {
        let cx = Cx {
            seed,
            rng: Cell::new(seed ^ 0x5DEE_CE66_D1CE_4E5B),
            dir: dir.to_path_buf(),
            loops: RefCell::new([None, None]),
            stale: RefCell::new(Vec::new()),
            pool: RefCell::new(Vec::new()),
            res: RefCell::new(Vec::new()),
            addrs: RefCell::new(Vec::new()),
            senders: RefCell::new(Vec::new()),
            requests: RefCell::new(Vec::new()),
            futures: RefCell::new(Vec::new()),
            joins: RefCell::new(Vec::new()),
            files: RefCell::new(Vec::new()),
            dirs: RefCell::new(Vec::new()),
            later: RefCell::new(Vec::new()),
            focus: RefCell::new(None),
            breakers: RefCell::new(Vec::new()),
            tty_bytes: RefCell::new(Vec::new()),
            depth: Cell::new(0),
            op: Cell::new(usize::MAX),
            budget: Cell::new(BUDGET),
            calls: Cell::new(0),
            ending: Cell::new(false),
            serial: Cell::new(0),
            failure: RefCell::new(None),
            stats: Stats::default(),
            children: Children::default(),
        };
        // A reference to a loop that is already gone, for constructors to refuse.
        if let Ok(gone) = uv::Loop::new() {
            cx.stale.borrow_mut().push(gone.handle());
        }
        cx
    }

    // -- randomness (SplitMix64)

    fn next(&self) -> u64 {
        let mut z = self.rng.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.rng.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// True once in `n` times.
    pub fn one_in(&self, n: u64) -> bool {
        self.next().is_multiple_of(n.max(1))
    }

    /// A random element.
    pub fn pick<T: Copy>(&self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn serial(&self) -> u64 {
        self.serial.set(self.serial.get() + 1);
        self.serial.get()
    }

    // -- the log and failures

    /// Adds to the log entry of the running operation.
    pub fn note(&self, args: fmt::Arguments<'_>) {
        log_note(args);
    }

    /// Records a broken invariant; the seed stops after the current operation.
    pub fn fail(&self, msg: String) {
        let mut f = self.failure.borrow_mut();
        if f.is_none() {
            *f = Some(msg);
        }
    }

    fn unexpected_panic(&self, p: Box<dyn Any + Send>, where_: &str) {
        if is_fuzz_payload(&*p) {
            self.fail(format!("a deliberate callback panic escaped {where_}"));
        } else {
            self.fail(format!("panic in {where_}: {}", payload_text(&*p)));
        }
        drop_payload(p);
    }

    // -- loops

    fn loop_owner(&self) -> Option<(usize, Rc<uv::Loop>)> {
        let loops = self.loops.borrow();
        let i = self.below(2);
        [i, 1 - i]
            .into_iter()
            .find_map(|k| loops[k].clone().map(|l| (k, l)))
    }

    fn stale_ref(&self) -> Option<LoopHandle> {
        let s = self.stale.borrow();
        (!s.is_empty()).then(|| s[self.below(s.len())].clone())
    }

    fn keep_stale(&self, h: LoopHandle) {
        let old = {
            let mut s = self.stale.borrow_mut();
            if s.len() < 4 {
                s.push(h);
                None
            } else {
                let i = self.below(s.len());
                Some(std::mem::replace(&mut s[i], h))
            }
        };
        drop(old);
    }

    /// A loop for a constructor or loop operation: mostly an open one, sometimes one
    /// that is gone.
    pub fn loop_ref(&self) -> Option<LoopHandle> {
        if self.one_in(8) {
            if let Some(h) = self.stale_ref() {
                return Some(h);
            }
        }
        if let Some((_, lp)) = self.loop_owner() {
            return Some(lp.handle());
        }
        if let Some(lp) = self.install_loop(0, false) {
            return Some(lp.handle());
        }
        self.stale_ref()
    }

    /// A new loop in slot `i` (the default loop if `default`); the old one is dropped.
    fn install_loop(&self, i: usize, default: bool) -> Option<Rc<uv::Loop>> {
        if self.ending.get() {
            return None;
        }
        let made = if default {
            uv::Loop::default_loop()
        } else {
            uv::Loop::new()
        };
        let lp = Rc::new(settle(self, made, None)?);
        let old = self.loops.borrow_mut()[i].replace(lp.clone());
        self.retire(old);
        Some(lp)
    }

    /// Drops a loop owner (a running loop goes when its `run` returns).
    fn retire(&self, old: Option<Rc<uv::Loop>>) {
        let Some(old) = old else { return };
        if self.one_in(2) {
            self.keep_stale(old.handle());
        }
        if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(old))) {
            self.unexpected_panic(p, "dropping a loop");
        }
    }

    // -- the pool

    fn push(&self, a: AnyHandle) {
        let old = {
            let mut p = self.pool.borrow_mut();
            if p.len() < POOL_MAX {
                p.push(a);
                None
            } else {
                // Mostly a closed one goes, so that live handles stay in play.
                let closed = p.iter().position(|h| h.handle().is_closing());
                let i = closed
                    .filter(|_| !self.one_in(4))
                    .unwrap_or_else(|| self.below(p.len()));
                Some(std::mem::replace(&mut p[i], a))
            }
        };
        drop(old);
    }

    fn take_at(&self, i: usize) -> Option<AnyHandle> {
        let mut p = self.pool.borrow_mut();
        (i < p.len()).then(|| p.swap_remove(i))
    }

    /// A random handle of the pool (any type).
    fn any_handle(&self) -> Option<AnyHandle> {
        let p = self.pool.borrow();
        (!p.is_empty()).then(|| p[self.below(p.len())].clone())
    }

    /// A random stream of the pool.
    fn any_stream(&self) -> Option<AnyHandle> {
        let p = self.pool.borrow();
        let n = p.iter().filter(|a| a.is_stream()).count();
        let k = self.below(n);
        p.iter().filter(|a| a.is_stream()).nth(k).cloned()
    }

    fn focused<T: Member>(&self) -> Option<T> {
        let f = self.focus.borrow();
        let h = f.as_ref().and_then(T::from_any).cloned();
        h.filter(|_| !self.one_in(3))
    }

    fn pooled<T: Member>(&self) -> Option<T> {
        let p = self.pool.borrow();
        let n = p.iter().filter(|a| T::from_any(a).is_some()).count();
        let k = self.below(n);
        p.iter().filter_map(T::from_any).nth(k).cloned()
    }

    /// The target of an operation on a `T`: the callback's own handle, one from the
    /// pool, or now and then (and when the pool has none) a new one.
    pub fn target<T: Member>(&self) -> Option<T> {
        let h = match self.focused::<T>() {
            Some(h) => Some(h),
            None => match self.pooled::<T>() {
                Some(h) if !self.one_in(8) => Some(h),
                found => self.fresh::<T>().or(found),
            },
        }?;
        self.note(format_args!("[{} {}]", T::NAME, state(&h)));
        bump(if h.is_closing() {
            &self.stats.closed_targets
        } else {
            &self.stats.open_targets
        });
        Some(h)
    }

    fn fresh<T: Member>(&self) -> Option<T> {
        (0..3).find_map(|_| {
            let h = T::construct(self)?;
            self.push(h.clone().into_any());
            Some(h)
        })
    }

    /// One of a type's constructors, with random arguments.
    pub fn construct<T>(&self, ctors: &[fn(&Cx) -> Option<T>]) -> Option<T> {
        if ctors.is_empty() {
            return None;
        }
        self.pick(ctors)(self)
    }

    /// What a callback closure holds besides the call: now and then a reference to a
    /// handle of the pool (a cycle the handle's close must break) or a value whose
    /// `Drop` calls into the fuzzer.
    pub fn capture(&self) -> Capture {
        Capture {
            _handle: if self.one_in(5) {
                self.any_handle()
            } else {
                None
            },
            _hook: self.one_in(40).then(|| DropHook),
        }
    }

    // -- argument generators

    /// A duration: zero, below a millisecond, short, or huge.
    pub fn duration(&self) -> Duration {
        match self.below(10) {
            0 => Duration::ZERO,
            1 => Duration::from_nanos(1 + self.below(999_999) as u64),
            2..=5 => Duration::from_millis(self.below(20) as u64),
            6 => Duration::from_millis(self.below(1000) as u64),
            7 => Duration::MAX,
            8 => Duration::from_millis(u64::MAX),
            _ => Duration::from_secs(365 * 24 * 3600),
        }
    }

    /// A boolean.
    pub fn flip(&self) -> bool {
        self.next() & 1 == 1
    }

    /// An `i32`: edges, small values or anything.
    pub fn int_i32(&self) -> i32 {
        match self.below(4) {
            0 => self.pick(&[0, 1, -1, 2, 128, 255, 256, 65535, i32::MAX, i32::MIN]),
            1 | 2 => self.below(300) as i32 - 20,
            _ => self.next() as i32,
        }
    }

    /// A `u32`.
    pub fn int_u32(&self) -> u32 {
        match self.below(4) {
            0 => self.pick(&[0, 1, 2, 255, 256, 65535, u32::MAX, u32::MAX / 2 + 1]),
            1 | 2 => self.below(300) as u32,
            _ => self.next() as u32,
        }
    }

    /// A `u8` (a time to live): the edges or anything.
    pub fn int_u8(&self) -> u8 {
        match self.below(3) {
            0 => self.pick(&[0, 1, 2, 64, 255]),
            _ => self.next() as u8,
        }
    }

    /// A `u64`.
    pub fn int_u64(&self) -> u64 {
        match self.below(4) {
            0 => self.pick(&[0, 1, 2, u64::MAX, u64::MAX / 2 + 1, u32::MAX as u64]),
            1 | 2 => self.below(300) as u64,
            _ => self.next(),
        }
    }

    /// A `usize`: zero, small, page-sized, or huge.
    pub fn int_usize(&self) -> usize {
        match self.below(5) {
            0 => self.pick(&[0, 1, 2, usize::MAX, usize::MAX / 2 + 1, i32::MAX as usize]),
            1 | 2 => self.below(300),
            3 => self.pick(&[4096, 65536, 1 << 20, (i32::MAX as usize) + 1]),
            _ => self.next() as usize,
        }
    }

    /// A signal: a known one, a small unknown one (`Signum::Other`), or an edge.
    pub fn signum(&self) -> uv::Signum {
        uv::Signum::from_raw(self.signum_raw())
    }

    fn signum_raw(&self) -> i32 {
        let s = match self.below(10) {
            // The signals `Signal.deliver` sends.
            0..=2 => self
                .pick(&[uv::Signum::WindowChange, uv::Signum::Child])
                .raw(),
            3..=5 => self.pick(uv::Signum::ALL).raw(),
            6..=8 => self.below(72) as i32 - 2,
            _ => self.pick(&[i32::MIN, i32::MAX, -1, 0]),
        };
        if registry().skip_signals.contains(&s) {
            0
        } else {
            s
        }
    }

    /// A raw descriptor number (for safe functions that take one).
    pub fn raw_fd(&self) -> RawFd {
        match self.below(4) {
            0 => self.pick(&[-1, i32::MIN, i32::MAX, 100_000]),
            1 => self.below(64) as RawFd,
            _ => {
                let r = self.res.borrow();
                r.get(self.below(r.len()))
                    .map_or(-1, |x| x.as_fd().as_raw_fd())
            }
        }
    }

    /// A plain enum's value: a member, `from_raw` of a random number, or `Other`.
    pub fn enum_value<T: Copy>(&self, all: &[T], from_raw: fn(i32) -> T, other: fn(i32) -> T) -> T {
        match self.below(20) {
            0..=12 if !all.is_empty() => self.pick(all),
            0..=15 => from_raw(self.int_i32()),
            _ => other(self.int_i32()),
        }
    }

    /// Flag bits: known ones, known ones with unknown ones, or anything.
    pub fn flag_bits(&self, known: u32) -> u32 {
        let subset = known & self.next() as u32;
        match self.below(10) {
            0 => 0,
            1..=5 => subset,
            6 | 7 => known & (1u32 << self.below(32)),
            8 => subset | (1u32 << self.below(32)),
            _ => self.next() as u32,
        }
    }

    /// A socket address on 127.0.0.1 or ::1 (the network never leaves loopback):
    /// port 0, port 1, or one of our own sockets' ports.
    pub fn socket_addr(&self) -> SocketAddr {
        let known = {
            let a = self.addrs.borrow();
            (!a.is_empty()).then(|| a[self.below(a.len())])
        };
        if let Some(k) = known.filter(|_| self.one_in(2)) {
            return k;
        }
        let port = match (self.below(10), known) {
            (0..=3, _) | (_, None) => 0,
            (4, _) => 1,
            (_, Some(k)) => k.port(),
        };
        match self.below(10) {
            0..=4 => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
            5..=8 => SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0)),
            // Odd flow information and scope ids on ::1.
            _ => SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::LOCALHOST,
                port,
                self.next() as u32,
                self.below(4) as u32,
            )),
        }
    }

    /// A path: a few names in the fuzzer's directory (so that binds collide and
    /// connects find them), empty, abstract (Linux), with a NUL byte, huge, missing
    /// its directory, or not UTF-8. Never outside the directory.
    pub fn path(&self) -> PathBuf {
        let name = |s: String| self.dir.join(s);
        match self.below(20) {
            10 => PathBuf::new(),
            11 | 12 => PathBuf::from(OsString::from_vec(
                format!("\0uv-fuzz-{}-{}", std::process::id(), self.below(4)).into_bytes(),
            )),
            13 => name("a\0b".into()),
            14 => name("x".repeat(self.pick(&[100, 200, 5000, 70_000]))),
            15 => self.dir.join("missing").join("sub"),
            16 => self.dir.join(OsString::from_vec(vec![0xff, 0xfe, b'z'])),
            _ => name(format!("s{}", self.below(6))),
        }
    }

    /// A string: empty, NUL bytes, the loopback addresses (never a multicast group:
    /// one joined on the default interface would reach the network), names and
    /// malformed addresses, garbage, or huge.
    pub fn string(&self) -> String {
        match self.below(12) {
            0 => String::new(),
            1 => "\0".into(),
            2 => "127.0.0.1\0junk".into(),
            3 => "127.0.0.1".into(),
            4 => "::1".into(),
            5 => "localhost".into(),
            6 => "127.0.0.1 ".into(),
            7 => "999.1.1.1".into(),
            8 => "ü\u{fffd}".into(),
            9 => "g".repeat(self.pick(&[256, 65_536])),
            // Letters past `f` and punctuation: never a valid IPv4 or IPv6 address.
            _ => (0..self.below(24))
                .map(|_| self.pick(b"ghijklmnopqrstuvwxyz:%.-") as char)
                .collect(),
        }
    }

    /// An optional string.
    pub fn opt_string(&self) -> Option<String> {
        (!self.one_in(3)).then(|| self.string())
    }

    /// An IP address: loopback, unspecified, multicast (IPv4 and IPv6), broadcast, a
    /// local address of the run, or anything.
    pub fn ip_addr(&self) -> std::net::IpAddr {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        match self.below(10) {
            0 => IpAddr::V4(Ipv4Addr::LOCALHOST),
            1 => IpAddr::V6(Ipv6Addr::LOCALHOST),
            2 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            3 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            4 | 5 => IpAddr::V4(Ipv4Addr::new(239, 255, 0, self.below(4) as u8)),
            6 => IpAddr::V6(Ipv6Addr::new(
                0xff02,
                0,
                0,
                0,
                0,
                0,
                0,
                1 + self.below(4) as u16,
            )),
            7 => IpAddr::V4(Ipv4Addr::BROADCAST),
            8 => self.socket_addr().ip(),
            _ => {
                if self.flip() {
                    IpAddr::V4(Ipv4Addr::from(self.next() as u32))
                } else {
                    IpAddr::V6(Ipv6Addr::from(
                        (u128::from(self.next()) << 64) | u128::from(self.next()),
                    ))
                }
            }
        }
    }

    /// An IP address or none.
    pub fn opt_ip_addr(&self) -> Option<std::net::IpAddr> {
        (!self.one_in(3)).then(|| self.ip_addr())
    }

    /// Bytes to write: none, a few, a page, 64 KiB, or a mebibyte; at most `limit`.
    fn bytes(&self, limit: usize) -> Vec<u8> {
        let n = match self.below(40) {
            0..=5 => 0,
            6..=27 => self.below(64),
            28..=32 => 4096,
            33..=36 => 65_536,
            37 | 38 => 300_000,
            _ => 1 << 20,
        };
        vec![self.next() as u8; n.min(limit)]
    }

    /// Takes a random element out of `v` (`None` when it is empty).
    fn take_random<T>(&self, v: &RefCell<Vec<T>>) -> Option<T> {
        let mut v = v.borrow_mut();
        if v.is_empty() {
            return None;
        }
        let i = self.below(v.len());
        Some(v.remove(i))
    }

    /// An open file of the pool, or a new one in the scratch directory (read and
    /// write, read only, write only; sometimes a directory opened read-only).
    pub fn file(&self) -> Option<uv::File> {
        let n = self.files.borrow().len();
        if n > 0 && !self.one_in(4) {
            return Some(self.files.borrow()[self.below(n)].clone());
        }
        let path = self.dir.join(format!("f{}", self.below(4)));
        let mut o = std::fs::OpenOptions::new();
        match self.below(6) {
            0 => o.read(true),
            1 => o.write(true).create(true),
            2 => o.append(true).create(true),
            _ => o.read(true).write(true).create(true),
        };
        let f = if self.one_in(10) {
            File::open(&self.dir)
        } else {
            o.open(&path)
        };
        let f = uv::File::from(f.ok()?);
        let mut files = self.files.borrow_mut();
        if files.len() >= 8 {
            let i = self.below(files.len());
            files.remove(i);
        }
        files.push(f.clone());
        Some(f)
    }

    /// A directory stream of the pool, or a new one on the scratch directory (or a
    /// sub-directory), with a random batch size.
    pub fn dir_stream(&self) -> Option<uv::Dir> {
        let n = self.dirs.borrow().len();
        if n > 0 && !self.one_in(4) {
            return Some(self.dirs.borrow()[self.below(n)].clone());
        }
        let lp = self.loop_ref()?;
        let d = uv::Fs::opendir_sync(&lp, &self.dir).ok()?;
        d.set_batch(self.pick(&[1, 2, 32, 1000]));
        let mut dirs = self.dirs.borrow_mut();
        if dirs.len() >= 4 {
            let i = self.below(dirs.len());
            dirs.remove(i);
        }
        dirs.push(d.clone());
        Some(d)
    }

    /// A file offset: the current position, zero, small, large, or past `i64::MAX`.
    pub fn file_offset(&self) -> Option<u64> {
        match self.below(6) {
            0 | 1 => None,
            2 => Some(0),
            3 => Some(self.below(10_000) as u64),
            // Past the worker's file size limit.
            4 => Some(FILE_SIZE_LIMIT + self.below(10) as u64),
            _ => Some(self.pick(&[i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX])),
        }
    }

    /// A file time: the epoch, now, before the epoch, far ahead, sub-second, the
    /// ends of `SystemTime`'s range, or libuv's "now" and "omit".
    pub fn system_time(&self) -> uv::FileTime {
        let epoch = std::time::UNIX_EPOCH;
        uv::FileTime::At(match self.below(9) {
            0 => epoch,
            1 => std::time::SystemTime::now(),
            2 => epoch - Duration::from_secs(self.below(1_000_000) as u64 + 1),
            3 => epoch + Duration::from_secs(1 << 40),
            4 => epoch + Duration::from_nanos(self.next() >> 8),
            5 => epoch
                .checked_add(Duration::from_secs(i64::MAX as u64))
                .unwrap_or(epoch),
            6 => return uv::FileTime::Now,
            7 => return uv::FileTime::Omit,
            _ => epoch + Duration::from_millis(1_700_000_000_000 + self.below(1000) as u64),
        })
    }

    /// A buffer to read into: its spare capacity is what is read (none, a little,
    /// a page, 64 KiB), after some bytes already in it.
    pub fn read_buf(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.pick(&[0, 1, 100, 4096, 65_536]));
        v.extend(std::iter::repeat_n(7u8, self.pick(&[0, 0, 3])).take(v.capacity()));
        v
    }

    /// Data for a write, in each form `WriteData` has.
    pub fn write_data(&self, limit: usize) -> uv::WriteData {
        const STATIC: &[u8] = b"uv-fuzz: static bytes\n";
        match self.below(6) {
            0 => uv::WriteData::Many((0..self.below(5)).map(|_| self.bytes(limit / 4)).collect()),
            1 => uv::WriteData::Static(&STATIC[..STATIC.len().min(limit)]),
            2 => uv::WriteData::Shared(self.bytes(limit).into()),
            _ => uv::WriteData::One(self.bytes(limit)),
        }
    }

    /// How much may be written to `h` now: a terminal takes a little per seed.
    fn write_limit(&self, h: &uv::Handle) -> usize {
        let Ok(fd) = h.fileno() else {
            return usize::MAX;
        };
        if uv::guess_handle(fd) != HandleType::Tty {
            return usize::MAX;
        }
        let mut t = self.tty_bytes.borrow_mut();
        let i = match t.iter().position(|(f, _)| *f == fd) {
            Some(i) => i,
            None => {
                t.push((fd, TTY_BYTES));
                t.len() - 1
            }
        };
        let left = t[i].1;
        t[i].1 = left / 2;
        left / 2
    }

    // -- descriptors

    /// A descriptor the callee takes over: of the wanted kind about half the time,
    /// else of any kind; with its identity, to check one handed back.
    pub fn owned_fd(&self, kind: FdKind) -> Option<(OwnedFd, FdIdent)> {
        let fd = self.make_res(kind)?.into_owned()?;
        let id = FdIdent::of(fd.as_fd())?;
        Some((fd, id))
    }

    /// A value owning a descriptor the callee keeps while it watches it: new, or a
    /// shared socket that something else (another poll handle, maybe on the other
    /// loop) already watches.
    pub fn fd_source(&self, kind: FdKind) -> Option<(Res, FdIdent)> {
        let shared = self.one_in(4).then(|| self.shared_res()).flatten();
        let r = match shared {
            Some(r) => r,
            None => self.make_res(kind)?,
        };
        let id = FdIdent::of(r.as_fd())?;
        Some((r, id))
    }

    fn make_res(&self, kind: FdKind) -> Option<Res> {
        type Maker = (&'static str, fn(&Cx) -> Option<Res>);
        let kind = if self.one_in(2) { kind } else { FdKind::Any };
        let makers: &[Maker] = match kind {
            FdKind::Any => &[
                ("file", res::regular_file),
                ("devnull", res::dev_null),
                ("ptmx", res::ptmx),
                ("unix", res::unix_pair),
                ("unix_listener", res::unix_listener),
                ("unix_dgram", res::unix_dgram),
                ("pipe", res::pipe_end),
                ("tcp_listener", res::tcp_listener),
                ("tcp", res::tcp_stream),
                ("udp", res::udp_socket),
                ("dup", res::dup),
            ],
            FdKind::StreamSocket => &[
                ("tcp", res::tcp_stream),
                ("tcp_listener", res::tcp_listener),
            ],
            FdKind::DgramSocket => &[("udp", res::udp_socket)],
            FdKind::Pipe | FdKind::IpcAwarePipe => &[
                ("unix", res::unix_pair),
                ("pipe", res::pipe_end),
                ("ptmx", res::ptmx),
                ("unix_listener", res::unix_listener),
            ],
        };
        let (name, make) = self.pick(makers);
        if registry().skip_res.iter().any(|s| s == name) {
            return None;
        }
        make(self)
    }

    fn shared_res(&self) -> Option<Res> {
        let r = self.res.borrow();
        let shared = r.iter().filter(|x| matches!(x, Res::Shared(_)));
        match shared.clone().nth(self.below(shared.count())) {
            Some(Res::Shared(s)) => Some(Res::Shared(s.clone())),
            _ => None,
        }
    }

    fn keep_res(&self, r: Res) {
        let old = {
            let mut v = self.res.borrow_mut();
            if v.len() < RES_MAX {
                v.push(r);
                None
            } else {
                let i = self.below(v.len());
                Some(std::mem::replace(&mut v[i], r))
            }
        };
        drop(old);
    }

    fn learn_addr(&self, a: SocketAddr) {
        let mut v = self.addrs.borrow_mut();
        if v.len() < ADDRS_MAX {
            v.push(a);
        } else {
            let i = self.below(v.len());
            v[i] = a;
        }
    }

    fn count_ok(&self) {
        bump(&self.stats.ok);
        if let Some(n) = registry().oks.get(self.op.get()) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn saw_error(&self, e: uv::Error) {
        bump(&self.stats.errors);
        if e.operation().is_empty() {
            self.fail(format!("an error without an operation: {e:?}"));
        }
        // Now and then the conversions a caller would use.
        if self.one_in(64) {
            let _ = (e.to_string(), std::io::Error::from(e.clone()), e.message());
        }
    }
}

fn state(h: &uv::Handle) -> &'static str {
    if h.is_closed() {
        "closed"
    } else if h.is_closing() {
        "closing"
    } else {
        "open"
    }
}

/// What a callback closure carries (see [`Cx::capture`]).
#[derive(Debug)]
pub struct Capture {
    // Held, never read: what matters is that the closure owns them.
    _handle: Option<AnyHandle>,
    _hook: Option<DropHook>,
}

/// Calls into the fuzzer when dropped: user `Drop` code that runs wherever the
/// runtime drops a callback (replaced, cleared at close, after a request).
#[derive(Debug)]
pub struct DropHook;

impl Drop for DropHook {
    fn drop(&mut self) {
        reenter("DropHook", false, || None);
    }
}

// ---------------------------------------------------------------------------
// Descriptors and `std` resources

/// A descriptor's identity: its number and the file it refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdIdent {
    raw: RawFd,
    dev: u64,
    ino: u64,
}

impl FdIdent {
    fn of(fd: BorrowedFd<'_>) -> Option<FdIdent> {
        let m = File::from(fd.try_clone_to_owned().ok()?).metadata().ok()?;
        Some(FdIdent {
            raw: fd.as_raw_fd(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// A `std` value that owns a descriptor: the fuzzer's peers and listeners, and the
/// arguments of `owned_fd` and `borrowed_fd` conversions.
#[derive(Debug)]
pub enum Res {
    /// A regular (unlinked) file, `/dev/null` or a pseudo-terminal master.
    File(File),
    /// A Unix stream socket.
    Unix(UnixStream),
    /// A listening Unix socket.
    UnixListener(UnixListener),
    /// A Unix datagram socket.
    UnixDgram(UnixDatagram),
    /// A pipe's read end.
    PipeR(std::io::PipeReader),
    /// A pipe's write end.
    PipeW(std::io::PipeWriter),
    /// A listening TCP socket.
    TcpListener(TcpListener),
    /// A connected TCP socket.
    Tcp(TcpStream),
    /// A UDP socket.
    Udp(UdpSocket),
    /// A shared Unix socket (a clone stays with the fuzzer).
    Shared(Rc<UnixStream>),
    /// A descriptor handed back by a `Rejected`.
    Owned(OwnedFd),
}

impl AsFd for Res {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Res::File(x) => x.as_fd(),
            Res::Unix(x) => x.as_fd(),
            Res::UnixListener(x) => x.as_fd(),
            Res::UnixDgram(x) => x.as_fd(),
            Res::PipeR(x) => x.as_fd(),
            Res::PipeW(x) => x.as_fd(),
            Res::TcpListener(x) => x.as_fd(),
            Res::Tcp(x) => x.as_fd(),
            Res::Udp(x) => x.as_fd(),
            Res::Shared(x) => x.as_fd(),
            Res::Owned(x) => x.as_fd(),
        }
    }
}

impl Res {
    fn into_owned(self) -> Option<OwnedFd> {
        Some(match self {
            Res::File(x) => x.into(),
            Res::Unix(x) => x.into(),
            Res::UnixListener(x) => x.into(),
            Res::UnixDgram(x) => x.into(),
            Res::PipeR(x) => x.into(),
            Res::PipeW(x) => x.into(),
            Res::TcpListener(x) => x.into(),
            Res::Tcp(x) => x.into(),
            Res::Udp(x) => x.into(),
            Res::Shared(x) => x.as_fd().try_clone_to_owned().ok()?,
            Res::Owned(x) => x,
        })
    }
}

/// Makers of resources. Peers and shared halves stay with the fuzzer; every socket
/// is non-blocking, so the fuzzer's own reads and writes never wait.
mod res {
    use super::*;

    pub fn regular_file(cx: &Cx) -> Option<Res> {
        let path = cx.dir.join(format!("file-{}", cx.serial()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .ok()?;
        let _ = std::fs::remove_file(&path);
        Some(Res::File(f))
    }

    pub fn dev_null(_cx: &Cx) -> Option<Res> {
        File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .ok()
            .map(Res::File)
    }

    /// A pseudo-terminal master: a real terminal that belongs to nobody.
    pub fn ptmx(_cx: &Cx) -> Option<Res> {
        File::options()
            .read(true)
            .write(true)
            .open("/dev/ptmx")
            .ok()
            .map(Res::File)
    }

    pub fn unix_pair(cx: &Cx) -> Option<Res> {
        let (a, b) = UnixStream::pair().ok()?;
        a.set_nonblocking(true).ok()?;
        b.set_nonblocking(true).ok()?;
        if cx.one_in(4) {
            let shared = Rc::new(b);
            cx.keep_res(Res::Shared(shared.clone()));
            cx.keep_res(Res::Unix(a));
            return Some(Res::Shared(shared));
        }
        cx.keep_res(Res::Unix(b));
        Some(Res::Unix(a))
    }

    pub fn unix_listener(cx: &Cx) -> Option<Res> {
        let path = cx.dir.join(format!("l{}", cx.below(4)));
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).ok()?;
        l.set_nonblocking(true).ok()?;
        Some(Res::UnixListener(l))
    }

    pub fn unix_dgram(cx: &Cx) -> Option<Res> {
        let (a, b) = UnixDatagram::pair().ok()?;
        a.set_nonblocking(true).ok()?;
        b.set_nonblocking(true).ok()?;
        cx.keep_res(Res::UnixDgram(b));
        Some(Res::UnixDgram(a))
    }

    /// An end of a pipe; the other end stays with the fuzzer, which never reads or
    /// writes it (std pipe ends block), only drops it.
    pub fn pipe_end(cx: &Cx) -> Option<Res> {
        let (r, w) = std::io::pipe().ok()?;
        if cx.flip() {
            cx.keep_res(Res::PipeW(w));
            Some(Res::PipeR(r))
        } else {
            cx.keep_res(Res::PipeR(r));
            Some(Res::PipeW(w))
        }
    }

    fn loopback(cx: &Cx) -> SocketAddr {
        if cx.one_in(3) {
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0))
        } else {
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        }
    }

    pub fn tcp_listener(cx: &Cx) -> Option<Res> {
        let l = TcpListener::bind(loopback(cx)).ok()?;
        l.set_nonblocking(true).ok()?;
        cx.learn_addr(l.local_addr().ok()?);
        Some(Res::TcpListener(l))
    }

    /// A connected TCP socket; the accepted peer stays with the fuzzer.
    pub fn tcp_stream(cx: &Cx) -> Option<Res> {
        let l = TcpListener::bind(loopback(cx)).ok()?;
        let s =
            TcpStream::connect_timeout(&l.local_addr().ok()?, Duration::from_millis(50)).ok()?;
        let (peer, _) = l.accept().ok()?;
        s.set_nonblocking(true).ok()?;
        peer.set_nonblocking(true).ok()?;
        cx.keep_res(Res::Tcp(peer));
        Some(Res::Tcp(s))
    }

    pub fn udp_socket(cx: &Cx) -> Option<Res> {
        let u = UdpSocket::bind(loopback(cx)).ok()?;
        u.set_nonblocking(true).ok()?;
        cx.learn_addr(u.local_addr().ok()?);
        Some(Res::Udp(u))
    }

    /// A duplicate of a kept resource: a descriptor another value also uses.
    pub fn dup(cx: &Cx) -> Option<Res> {
        let fd = {
            let r = cx.res.borrow();
            r.get(cx.below(r.len()))?
                .as_fd()
                .try_clone_to_owned()
                .ok()?
        };
        Some(Res::Owned(fd))
    }
}

// ---------------------------------------------------------------------------
// Checks

/// A value a `Rejected` hands back: it must be the descriptor that was given.
pub trait HandedBack: AsFd {
    /// Returns it to the fuzzer (or drops it).
    fn give_back(self, cx: &Cx);
}

impl HandedBack for OwnedFd {
    fn give_back(self, cx: &Cx) {
        if cx.one_in(4) {
            cx.keep_res(Res::Owned(self));
        }
    }
}

impl HandedBack for Res {
    fn give_back(self, cx: &Cx) {
        if cx.one_in(4) {
            cx.keep_res(self);
        }
    }
}

impl HandedBack for UnixStream {
    fn give_back(self, cx: &Cx) {
        cx.keep_res(Res::Unix(self));
    }
}

impl HandedBack for UnixListener {
    fn give_back(self, cx: &Cx) {
        cx.keep_res(Res::UnixListener(self));
    }
}

/// A call's result: `Ok`, a `uv::Error`, or a `Rejected` with the value handed back.
pub trait Settle {
    /// The success value.
    type Ok;
    /// Checks the result and counts it; the success value, if any.
    fn outcome(self, cx: &Cx, ident: Option<&FdIdent>) -> Option<Self::Ok>;
    /// The error, if any.
    fn error(&self) -> Option<uv::Error>;
}

impl<T> Settle for uv::Result<T> {
    type Ok = T;

    fn outcome(self, cx: &Cx, _ident: Option<&FdIdent>) -> Option<T> {
        match self {
            Ok(v) => {
                cx.count_ok();
                Some(v)
            }
            Err(e) => {
                cx.saw_error(e);
                None
            }
        }
    }

    fn error(&self) -> Option<uv::Error> {
        self.as_ref().err().cloned()
    }
}

impl<T, V: HandedBack> Settle for Result<T, uv::Rejected<V>> {
    type Ok = T;

    fn outcome(self, cx: &Cx, ident: Option<&FdIdent>) -> Option<T> {
        match self {
            Ok(v) => {
                cx.count_ok();
                Some(v)
            }
            Err(r) => {
                bump(&cx.stats.rejected);
                let (e, v) = r.into_parts();
                cx.saw_error(e.clone());
                let now = FdIdent::of(v.as_fd());
                if ident.is_none() || now.as_ref() != ident {
                    cx.fail(format!(
                        "{}: the value handed back is not the descriptor given ({ident:?}, now {now:?})",
                        e.operation()
                    ));
                }
                v.give_back(cx);
                None
            }
        }
    }

    fn error(&self) -> Option<uv::Error> {
        self.as_ref().err().map(|r| r.error())
    }
}

/// Checks a result and counts it.
pub fn settle<S: Settle>(cx: &Cx, r: S, ident: Option<&FdIdent>) -> Option<S::Ok> {
    r.outcome(cx, ident)
}

/// The spec's `on_closed`: on a handle that was closing before the call, a method
/// answers `ClosedHandle`, or `Ok` when it is a no-op there.
pub fn closed_contract<S: Settle>(cx: &Cx, closing: bool, noop: bool, r: &S) {
    if !closing {
        return;
    }
    let e = r.error();
    let ok = if noop {
        e.is_none()
    } else {
        e.as_ref().is_some_and(|e| e.is(uv::Category::ClosedHandle))
    };
    if !ok {
        let want = if noop { "Ok (a no-op)" } else { "ClosedHandle" };
        cx.fail(format!(
            "a call on a closed handle answered {e:?}, not {want}"
        ));
    }
}

/// Puts a new handle in the pool.
pub fn adopt<T: Member>(cx: &Cx, h: Option<T>) {
    if let Some(h) = h {
        cx.push(h.into_any());
    }
}

// ---------------------------------------------------------------------------
// Callbacks

/// Restores the depth and the focus when a callback's operations end (or unwind).
struct Nest<'a> {
    cx: &'a Cx,
    old_focus: Option<Option<AnyHandle>>,
}

impl<'a> Nest<'a> {
    fn enter(cx: &'a Cx, focus: Option<AnyHandle>) -> Nest<'a> {
        cx.depth.set(cx.depth.get() + 1);
        let old_focus = focus.map(|f| cx.focus.replace(Some(f)));
        Nest { cx, old_focus }
    }
}

impl Drop for Nest<'_> {
    fn drop(&mut self) {
        self.cx.depth.set(self.cx.depth.get() - 1);
        if let Some(old) = self.old_focus.take() {
            let mine = self.cx.focus.replace(old);
            drop(mine);
        }
    }
}

/// User code runs: maybe a few operations (often on `focus`, the handle it runs
/// for), maybe a deliberate panic. `may_panic` is false where a panic would abort by
/// Rust's rules (in `Drop`).
fn reenter(site: &'static str, may_panic: bool, focus: impl FnOnce() -> Option<AnyHandle>) {
    if std::thread::panicking() {
        return;
    }
    let Some(cx) = current() else { return };
    bump(&cx.stats.callbacks);
    count_site(site);
    log_begin(site, "callback", cx.depth.get());
    if cx.depth.get() >= MAX_DEPTH || cx.budget.get() == 0 {
        return;
    }
    cx.budget.set(cx.budget.get() - 1);
    let focus = if cx.flip() { focus() } else { None };
    let own = focus.as_ref().map(|f| f.type_name());
    let nest = Nest::enter(&cx, focus);
    for _ in 0..cx.below(3) {
        match own {
            Some(t) if cx.flip() => step_on(&cx, t),
            _ => step(&cx),
        }
    }
    drop(nest);
    if may_panic && cx.one_in(PANIC_ONE_IN) {
        bump(&cx.stats.panics);
        let bomb = cx.one_in(BOMB_ONE_IN);
        drop(cx);
        std::panic::panic_any(FuzzPanic { bomb });
    }
}

fn count_site(site: &'static str) {
    let mut v = registry().sites.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, n)) = v.iter_mut().find(|(s, _)| *s == site) {
        *n += 1;
    } else if v.len() < v.capacity() {
        v.push((site, 1));
    }
}

/// Prints how often each operation ran and answered `Ok`, and each callback site.
fn print_stats() {
    let reg = registry();
    for ((o, h), k) in reg.ops.iter().zip(&reg.hits).zip(&reg.oks) {
        eprintln!(
            "uv-fuzz: stats {:>8} ran {:>8} ok  {}.{}",
            h.load(Ordering::Relaxed),
            k.load(Ordering::Relaxed),
            o.handle,
            o.name
        );
    }
    for (s, n) in reg.sites.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        eprintln!("uv-fuzz: stats {n:>8} callbacks at {s}");
    }
}

/// A handle's callback (generated closures call it).
pub fn on_callback<T: Member>(site: &'static str, h: &T, cap: &Capture) {
    let _ = cap;
    reenter(site, true, || Some(h.clone().into_any()));
}

/// A future the fuzzer keeps, boxed.
pub type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// Keeps `f` for the `Future` operations (a few of them: when full, one of the
/// kept ones is dropped, wherever it is in its work).
pub fn keep_future(cx: &Cx, f: impl std::future::Future<Output = ()> + 'static) {
    if cx.futures.borrow().len() >= 16 {
        drop(cx.take_random(&cx.futures));
    }
    cx.futures.borrow_mut().push(Box::pin(f));
}

/// A future's completion (generated and hand-written future operations): like a
/// callback, it may run operations and panic.
pub fn on_future(site: &'static str, r: uv::Result<()>) {
    let _ = r;
    reenter(site, true, || None);
}

/// A generated request function's completion callback.
pub fn on_request(site: &'static str, r: uv::Result<()>, cap: &Capture) {
    let _ = (cap, r);
    reenter(site, true, || None);
}

/// The fuzzer keeps the `uv::Request` of a started request (a few of them), for the
/// `Request` operations; dropping one does not cancel it.
pub fn keep_request(cx: &Cx, r: uv::Result<uv::Request>, ident: Option<&FdIdent>) {
    if let Some(req) = settle(cx, r, ident) {
        if cx.requests.borrow().len() >= 16 {
            drop(cx.take_random(&cx.requests));
        }
        cx.requests.borrow_mut().push(req);
    }
}

/// A request's completion callback.
pub fn on_done<T: Member>(site: &'static str, h: &T, r: uv::Result<()>, cap: &Capture) {
    let _ = (cap, r);
    reenter(site, true, || Some(h.clone().into_any()));
}

fn on_read<T: Member>(h: &T, data: uv::Result<&[u8]>, cap: &Capture) {
    if let (Ok(d), Some(cx)) = (&data, current()) {
        if d.is_empty() {
            cx.fail(format!("{}: a read callback got an empty chunk", T::NAME));
        }
    }
    on_callback("read", h, cap);
}

/// A `ReadAllocator` that misbehaves: no buffer, an empty one, odd sizes, calls
/// into the fuzzer (often on its own stream) and panics.
#[derive(Debug)]
struct HostileAlloc {
    own: AnyHandle,
    _cap: Capture,
}

impl uv::ReadAllocator for HostileAlloc {
    fn allocate(&mut self, suggested: usize) -> Option<Box<[u8]>> {
        let Some(cx) = current() else {
            return Some(vec![0; 64].into_boxed_slice());
        };
        let own = self.own.clone();
        match cx.below(10) {
            0 => None,
            1 => Some(Box::new([])),
            2 | 3 => {
                reenter("ReadAllocator.allocate", true, || Some(own));
                Some(vec![0; 256].into_boxed_slice())
            }
            _ => {
                let size = cx.pick(&[1, 7, suggested, suggested * 2, 65_536]);
                Some(vec![0; size.max(1)].into_boxed_slice())
            }
        }
    }

    fn release(&mut self, buf: Box<[u8]>) {
        drop(buf);
        let own = self.own.clone();
        if current().is_some_and(|cx| cx.one_in(4)) {
            reenter("ReadAllocator.release", true, || Some(own));
        }
    }
}

// ---------------------------------------------------------------------------
// Running operations

fn pick_op(cx: &Cx) -> usize {
    let reg = registry();
    let total = *reg.cumulative.last().unwrap_or(&1);
    let r = cx.next() % total;
    reg.cumulative.partition_point(|&c| c <= r)
}

fn run_op(cx: &Cx, i: usize) {
    let reg = registry();
    if reg.skip[i] {
        return;
    }
    let op = &reg.ops[i];
    log_begin(op.handle, op.name, cx.depth.get());
    let outer = cx.op.replace(i);
    let ran = (op.run)(cx);
    cx.op.set(outer);
    if ran {
        reg.hits[i].fetch_add(1, Ordering::Relaxed);
        cx.calls.set(cx.calls.get() + 1);
    }
    PROGRESS.fetch_add(1, Ordering::Relaxed);
}

/// One random operation.
fn step(cx: &Cx) {
    run_op(cx, pick_op(cx));
}

/// One random operation of the type `name` (a callback acting on its own handle).
fn step_on(cx: &Cx, name: &str) {
    let reg = registry();
    match reg.by_type.iter().find(|(t, _)| *t == name) {
        Some((_, v)) => run_op(cx, cx.pick(v)),
        None => step(cx),
    }
}

/// Generic operations on every handle type (the table instantiates them per type).
pub mod base_ops {
    use super::*;

    fn on<T: Member>(cx: &Cx, f: impl FnOnce(&T)) -> bool {
        match cx.target::<T>() {
            Some(h) => {
                f(&h);
                true
            }
            None => false,
        }
    }

    /// `close`: closing at once.
    pub fn close<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            h.close();
            if !h.is_closing() {
                cx.fail(format!("{}: not closing after close()", T::NAME));
            }
        })
    }

    /// `close_with`, whose callback calls into the fuzzer.
    pub fn close_with<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            let cap = cx.capture();
            h.close_with(move |h| {
                let _ = &cap;
                reenter("close_with", true, || AnyHandle::from_handle(h));
            });
        })
    }

    /// `ref_`.
    pub fn ref_<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            let closing = h.is_closing();
            let r = h.ref_();
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    /// `unref`.
    pub fn unref<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            let closing = h.is_closing();
            let r = h.unref();
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    /// `has_ref`: false once closing.
    pub fn has_ref<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            if h.is_closing() && h.has_ref() {
                cx.fail(format!("{}: has_ref() on a closed handle", T::NAME));
            }
        })
    }

    /// `is_active`: false once closing.
    pub fn is_active<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            if h.is_closing() && h.is_active() {
                cx.fail(format!("{}: is_active() on a closed handle", T::NAME));
            }
        })
    }

    /// `is_closing`, and the handle's `Debug` form.
    pub fn is_closing<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            let _ = (h.is_closing(), format!("{h:?}"));
        })
    }

    /// `is_closed`: implies closing.
    pub fn is_closed<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            if h.is_closed() && !h.is_closing() {
                cx.fail(format!("{}: closed but not closing", T::NAME));
            }
        })
    }

    /// `fileno`.
    pub fn fileno<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            let closing = h.is_closing();
            let r = h.fileno();
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    /// `send_buffer_size`.
    pub fn send_buffer_size<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            let closing = h.is_closing();
            let r = h.send_buffer_size();
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    /// `set_send_buffer_size` with any size.
    pub fn set_send_buffer_size<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            let size = cx.int_usize();
            cx.note(format_args!("{size}"));
            // Not held to the closed contract: the size is checked before the
            // handle's state (a size above i32::MAX is EINVAL even when closed).
            let r = h.set_send_buffer_size(size);
            settle(cx, r, None);
        })
    }

    /// `recv_buffer_size`.
    pub fn recv_buffer_size<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            let closing = h.is_closing();
            let r = h.recv_buffer_size();
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    /// `set_recv_buffer_size` with any size.
    pub fn set_recv_buffer_size<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            let size = cx.int_usize();
            cx.note(format_args!("{size}"));
            // Not held to the closed contract: the size is checked before the
            // handle's state (a size above i32::MAX is EINVAL even when closed).
            let r = h.set_recv_buffer_size(size);
            settle(cx, r, None);
        })
    }

    /// `handle_type`, against the type the handle has in Rust.
    pub fn handle_type<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            let t = h.handle_type();
            if matches!(t, HandleType::Unknown | HandleType::Other(_)) {
                cx.fail(format!("{}: handle_type() is {t:?}", T::NAME));
            }
        })
    }

    /// `downcast` to its own type (always) and back from the untyped handle.
    pub fn downcast<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            let same = T::downcast(h).is_some();
            let any = AnyHandle::from_handle(h).map(|a| a.type_name());
            if !same || any != Some(T::NAME) {
                cx.fail(format!("{}: downcast gave {same} and {any:?}", T::NAME));
            }
        })
    }

    /// `loop_`: the reference may outlive the loop.
    pub fn loop_<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            let lp = h.loop_();
            if cx.one_in(3) {
                cx.keep_stale(lp);
            }
        })
    }

    /// `Handle::from`, and back to the typed handle.
    pub fn into_handle<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| {
            let untyped: uv::Handle = (**h).clone();
            match AnyHandle::from_handle(&untyped) {
                Some(a) => cx.push(a),
                None => cx.fail(format!("{}: an untyped handle does not downcast", T::NAME)),
            }
        })
    }

    /// Another reference in the pool.
    pub fn clone_ref<T: Member>(cx: &Cx) -> bool {
        on::<T>(cx, |h| cx.push(h.clone().into_any()))
    }

    /// Drops a reference the pool holds (maybe the last one).
    pub fn drop_ref<T: Member>(cx: &Cx) -> bool {
        let i = {
            let p = cx.pool.borrow();
            let n = p.iter().filter(|a| T::from_any(a).is_some()).count();
            if n == 0 {
                return false;
            }
            let k = cx.below(n);
            p.iter()
                .enumerate()
                .filter(|(_, a)| T::from_any(a).is_some())
                .nth(k)
                .map(|(i, _)| i)
        };
        let h = i.and_then(|i| cx.take_at(i));
        drop(h);
        true
    }
}

/// Generic stream operations (the table instantiates them per stream type).
pub mod stream_ops {
    use super::*;

    fn on<S: Stream>(cx: &Cx, f: impl FnOnce(&S, bool)) -> bool {
        match cx.target::<S>() {
            Some(s) => {
                let closing = s.is_closing();
                f(&s, closing);
                true
            }
            None => false,
        }
    }

    /// `read_start` (the loop's buffer).
    pub fn read_start<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            let cap = cx.capture();
            let r = s.read_start(move |h, d| on_read(h, d, &cap));
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    /// `read_start_with` a `PoolAllocator` of any size.
    pub fn read_start_pool<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            let size = cx.pick(&[0, 1, 7, 4096, 65_536, 1 << 20]);
            let keep = cx.pick(&[0, 1, 4, 64]);
            cx.note(format_args!("pool {size} keep {keep}"));
            let cap = cx.capture();
            let r = s.read_start_with(uv::PoolAllocator::new(size, keep), move |h, d| {
                on_read(h, d, &cap)
            });
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    /// `read_start_with` a hostile allocator that knows its own stream.
    pub fn read_start_hostile<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            let alloc = HostileAlloc {
                own: s.clone().into_any(),
                _cap: cx.capture(),
            };
            let cap = cx.capture();
            let r = s.read_start_with(alloc, move |h, d| on_read(h, d, &cap));
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    /// `read_stop`: a no-op on a closed stream.
    pub fn read_stop<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            let r = s.read_stop();
            closed_contract(cx, closing, true, &r);
            settle(cx, r, None);
        })
    }

    /// `write` of any data.
    pub fn write<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            let data = cx.write_data(cx.write_limit(s));
            cx.note(format_args!("{} bytes", data_len(&data)));
            let cap = cx.capture();
            let r = s.write(data, move |h, r| on_done("write", h, r, &cap));
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    /// `uv::future::write`: kept for the `Future` operations.
    pub fn future_write<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, _| {
            let data = cx.write_data(cx.write_limit(s));
            let f = uv::future::write(s, data);
            keep_future(cx, async move { on_future("future write", f.await) });
        })
    }

    /// `uv::future::write_each` of a few items of any data, kept for the
    /// `Future` operations. Taking each item is user code: it may run
    /// operations (often on the stream: writes of their own, a close, a loop
    /// run that completes the batch's writes so far). Resolved `Ok`, the count is
    /// the number of items taken.
    pub fn future_write_each<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, _| {
            let items = cx.below(5);
            let taken = std::rc::Rc::new(std::cell::Cell::new(0usize));
            let t = taken.clone();
            let own = s.clone();
            let f = uv::future::write_each(
                s,
                (0..items).map(move |_| {
                    t.set(t.get() + 1);
                    reenter("future write_each item", false, || {
                        Some(own.clone().into_any())
                    });
                    match current() {
                        Some(cx) => cx.write_data(cx.write_limit(&own)),
                        None => uv::WriteData::Static(b"item"),
                    }
                }),
            );
            keep_future(cx, async move {
                let r = f.await;
                if let (Ok(n), Some(cx)) = (&r, current()) {
                    if *n != taken.get() {
                        cx.fail(format!("write_each: {n} writes of {} items", taken.get()));
                    }
                }
                on_future("future write_each", r.map(|_| ()))
            });
        })
    }

    /// `uv::future::read_chunks`: the next chunk (or the end), kept for the
    /// `Future` operations; the stream stops reading when it is dropped.
    pub fn future_read<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, _| {
            let mut chunks = uv::future::read_chunks(s.clone());
            keep_future(cx, async move {
                use futures::StreamExt as _;
                let r = chunks.next().await;
                if let (Some(Ok(c)), Some(cx)) = (&r, current()) {
                    if c.is_empty() {
                        cx.fail("read_chunks gave an empty chunk".into());
                    }
                }
                on_future("future read", Ok(()))
            });
        })
    }

    /// `write_counted`: the count never exceeds what was written, and is all of it
    /// on success.
    pub fn write_counted<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            let data = cx.write_data(cx.write_limit(s));
            let len = data_len(&data);
            cx.note(format_args!("{len} bytes"));
            let cap = cx.capture();
            let r = s.write_counted(data, move |h, r, n| {
                let wrong = if r.is_ok() { n != len } else { n > len };
                if let (true, Some(cx)) = (wrong, current()) {
                    cx.fail(format!("write_counted: {n} of {len} bytes with {r:?}"));
                }
                on_done("write_counted", h, r, &cap)
            });
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    /// `write2` sending any stream of the pool (of any loop, state or kind), or the
    /// stream itself.
    pub fn write2<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            let send = cx
                .any_stream()
                .filter(|_| !cx.one_in(5))
                .unwrap_or_else(|| s.clone().into_any());
            let data = cx.write_data(cx.write_limit(s));
            cx.note(format_args!(
                "sending {} {}",
                send.type_name(),
                state(send.handle())
            ));
            let cap = cx.capture();
            let Some(r) = s.write2_any(data, &send, move |h, r| on_done("write2", h, r, &cap))
            else {
                cx.fail(format!("write2: {} is not a stream", send.type_name()));
                return;
            };
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    /// `try_write`.
    pub fn try_write<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            let data = cx.bytes(cx.write_limit(s));
            cx.note(format_args!("{} bytes", data.len()));
            let r = s.try_write(&data);
            closed_contract(cx, closing, false, &r);
            if let Ok(n) = r {
                if n > data.len() {
                    cx.fail(format!("try_write wrote {n} of {} bytes", data.len()));
                }
            }
            settle(cx, r, None);
        })
    }

    /// `shutdown`.
    pub fn shutdown<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            let cap = cx.capture();
            let r = s.shutdown(move |h, r| on_done("shutdown", h, r, &cap));
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    /// `listen` with any backlog; a TCP listener's address becomes known, for the
    /// connects.
    pub fn listen<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            let backlog = cx.int_i32();
            cx.note(format_args!("backlog {backlog}"));
            let me = s.clone().into_any();
            keep_on_loopback(&me);
            let cap = cx.capture();
            let r = s.listen(backlog, move |h, _r| on_callback("connection", h, &cap));
            closed_contract(cx, closing, false, &r);
            if let (Ok(()), AnyHandle::Tcp(t)) = (&r, &me) {
                if let Ok(a) = t.local_addr() {
                    cx.learn_addr(a);
                }
            }
            settle(cx, r, None);
        })
    }

    /// `accept` into any stream of the pool (another loop, one that has a socket,
    /// a closed one), a new one, or the server itself.
    pub fn accept<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| accept_on(cx, s, closing))
    }

    /// `accept` on `s`, as in [`accept`] (also from a server's connection callback).
    pub fn accept_on<S: Stream>(cx: &Cx, s: &S, closing: bool) {
        // A quarter of the time, into a new handle the accept makes.
        if cx.below(4) == 0 {
            cx.note(format_args!("into a new {}", <S as Member>::NAME));
            let r = uv::Stream::accept(s);
            if let Ok(c) = &r {
                if c.is_closing() {
                    cx.fail(format!(
                        "{}: accepted handle is closing",
                        <S as Member>::NAME
                    ));
                }
                cx.push(c.clone().into_any());
            }
            let r = r.map(drop);
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
            return;
        }
        let client = match cx.below(3) {
            0 => S::construct(cx).map(|c| {
                cx.push(c.clone().into_any());
                c.into_any()
            }),
            1 => cx.any_stream(),
            _ => None,
        }
        .unwrap_or_else(|| s.clone().into_any());
        cx.note(format_args!(
            "into {} {}",
            client.type_name(),
            state(client.handle())
        ));
        let Some(r) = s.accept_any(&client) else {
            cx.fail(format!("accept: {} is not a stream", client.type_name()));
            return;
        };
        closed_contract(cx, closing, false, &r);
        settle(cx, r, None);
    }

    /// `is_readable`: false once closing.
    pub fn is_readable<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            if closing && s.is_readable() {
                cx.fail(format!("{}: readable once closing", <S as Member>::NAME));
            }
        })
    }

    /// `is_writable`: false once closing.
    pub fn is_writable<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            if closing && s.is_writable() {
                cx.fail(format!("{}: writable once closing", <S as Member>::NAME));
            }
        })
    }

    /// `set_blocking`. A stream is never left blocking: its writes would then wait
    /// for peers that the fuzzer (on the same thread) does not drain.
    pub fn set_blocking<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            if cx.flip() {
                let r = s.set_blocking(true);
                closed_contract(cx, closing, false, &r);
                settle(cx, r, None);
            }
            let r = s.set_blocking(false);
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    /// `write_queue_size`: 0 once closing.
    pub fn write_queue_size<S: Stream>(cx: &Cx) -> bool {
        on::<S>(cx, |s, closing| {
            if closing && s.write_queue_size() != 0 {
                cx.fail(format!(
                    "{}: queued bytes once closing",
                    <S as Member>::NAME
                ));
            }
        })
    }
}

/// Binds a TCP or UDP socket that has no address to a loopback one: listening,
/// receiving or sending unbound, the kernel would bind the wildcard address, which
/// the network can reach.
fn keep_on_loopback(a: &AnyHandle) {
    let loopback = [
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0)),
    ];
    let unbound = |r: uv::Result<SocketAddr>| r.map_or(true, |a| a.ip().is_unspecified());
    match a {
        AnyHandle::Tcp(t) if unbound(t.local_addr()) => {
            let _ = loopback
                .iter()
                .any(|l| t.bind(*l, uv::TcpFlags::empty()).is_ok());
        }
        AnyHandle::Udp(u) if unbound(u.local_addr()) => {
            let _ = loopback
                .iter()
                .any(|l| u.bind(*l, uv::UdpFlags::empty()).is_ok());
        }
        _ => {}
    }
}

fn data_len(d: &uv::WriteData) -> usize {
    match d {
        uv::WriteData::One(v) => v.len(),
        uv::WriteData::Many(vs) => vs.iter().map(Vec::len).sum(),
        uv::WriteData::Static(v) => v.len(),
        uv::WriteData::Shared(v) => v.len(),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------
// Hand-written operations

const fn op(handle: &'static str, name: &'static str, kind: OpKind, run: fn(&Cx) -> bool) -> Op {
    Op {
        handle,
        name,
        kind,
        run,
    }
}

/// The operations the spec does not describe: loops, the hand-written parts of
/// handle types, and the fuzzer's `std` peers.
const HAND_OPS: &[Op] = &[
    op("Loop", "new", OpKind::Loop, loops::new),
    op("Loop", "default_loop", OpKind::Loop, loops::default_loop),
    op("Loop", "drop", OpKind::Loop, loops::drop_loop),
    op("Loop", "run", OpKind::Loop, loops::run),
    op("Loop", "close", OpKind::Loop, loops::close),
    op("Loop", "stop", OpKind::Loop, loops::stop),
    op("Loop", "queries", OpKind::Loop, loops::queries),
    op("Loop", "update_time", OpKind::Loop, loops::update_time),
    op("Loop", "block_signal", OpKind::Loop, loops::block_signal),
    op("Loop", "configure", OpKind::Loop, loops::configure),
    op("Loop", "handles", OpKind::Loop, loops::handles),
    op(
        "Loop",
        "close_all_handles",
        OpKind::Loop,
        loops::close_all_handles,
    ),
    op("Loop", "call_later", OpKind::Loop, loops::call_later),
    op(
        "Loop",
        "call_later_sender",
        OpKind::Loop,
        loops::call_later_sender,
    ),
    op(
        "Loop",
        "call_later_thread",
        OpKind::Loop,
        loops::call_later_thread,
    ),
    op(
        "Loop",
        "set_panic_hook",
        OpKind::Loop,
        loops::set_panic_hook,
    ),
    op(
        "Loop",
        "take_panic_hook",
        OpKind::Loop,
        loops::take_panic_hook,
    ),
    op("Udp", "with_flags", OpKind::Extra, udp::with_flags),
    op("Udp", "recv_start", OpKind::Extra, udp::recv_start),
    op("Udp", "recv_stop", OpKind::Extra, udp::recv_stop),
    op("Udp", "send", OpKind::Extra, udp::send),
    op("Udp", "try_send", OpKind::Extra, udp::try_send),
    op("Udp", "family", OpKind::Extra, udp::family),
    op("Udp", "disconnect", OpKind::Extra, udp::disconnect),
    op("Tcp", "family", OpKind::Extra, extra::tcp_family),
    op("Tcp", "close_reset", OpKind::Extra, extra::tcp_close_reset),
    op("Tty", "winsize", OpKind::Extra, extra::tty_winsize),
    op("Tty", "modes", OpKind::Extra, extra::tty_modes),
    op("Tty", "guess_handle", OpKind::Extra, extra::guess_handle),
    op("Pipe", "try_from", OpKind::Extra, extra::pipe_try_from),
    op("Async", "send", OpKind::Extra, extra::async_send),
    op("Async", "sender", OpKind::Extra, extra::async_sender),
    op("Async", "sender_send", OpKind::Extra, extra::sender_send),
    op(
        "Async",
        "sender_thread",
        OpKind::Extra,
        extra::sender_thread,
    ),
    op("Signal", "deliver", OpKind::Extra, extra::deliver_signal),
    op("Process", "spawn", OpKind::Extra, procs::spawn),
    op("Future", "sleep", OpKind::Future, futs::sleep),
    op("Future", "timeout", OpKind::Future, futs::timeout),
    op("Future", "queue_work", OpKind::Future, futs::queue_work),
    op("Future", "yield_now", OpKind::Future, futs::yield_now),
    op("Future", "poll", OpKind::Future, futs::poll),
    op("Future", "drop", OpKind::Future, futs::drop_op),
    op("Future", "spawn", OpKind::Future, futs::spawn),
    op("Future", "block_on", OpKind::Future, futs::block_on),
    op("Future", "abort", OpKind::Future, futs::abort),
    op("Future", "drop_join", OpKind::Future, futs::drop_join),
    op("Request", "cancel", OpKind::Request, reqs::cancel),
    op("Request", "is_pending", OpKind::Request, reqs::is_pending),
    op("Request", "drop", OpKind::Request, reqs::drop_one),
    op("Process", "pid", OpKind::Extra, procs::pid),
    op("Process", "kill_pid", OpKind::Extra, procs::kill_pid),
    op("Pipe", "setup", OpKind::Extra, setups::pipes),
    op("Tcp", "setup", OpKind::Extra, setups::tcp),
    op("Udp", "setup", OpKind::Extra, setups::udp),
    op("std", "make", OpKind::Resource, peers::make),
    op("std", "write", OpKind::Resource, peers::write),
    op("std", "read", OpKind::Resource, peers::read),
    op("std", "drop", OpKind::Resource, peers::drop_one),
    op("std", "accept", OpKind::Resource, peers::accept),
    op("std", "connect", OpKind::Resource, peers::connect),
    op("std", "learn_addrs", OpKind::Resource, peers::learn_addrs),
];

/// The children the fuzzer started. A child is reaped by libuv just before its
/// exit callback runs; until then (and for good when its handle was closed first)
/// it stays our unreaped child, so its process id cannot be given to another
/// process. At the end of the seed the unreaped ones are killed and reaped here:
/// a child stopped by a random `SIGSTOP`, or one still sleeping, does not outlive
/// the seed.
#[derive(Default)]
struct Children(RefCell<Vec<(i32, Rc<Cell<bool>>)>>);

impl Children {
    /// A new child, and the flag its exit callback sets.
    fn add(&self, pid: i32) -> Rc<Cell<bool>> {
        let reaped = Rc::new(Cell::new(false));
        self.0.borrow_mut().push((pid, reaped.clone()));
        reaped
    }

    /// A child that libuv has not reaped (its id is still ours to signal).
    fn unreaped(&self, pick: usize) -> Option<i32> {
        let c = self.0.borrow();
        let live: Vec<i32> = c
            .iter()
            .filter(|(_, r)| !r.get())
            .map(|(p, _)| *p)
            .collect();
        (!live.is_empty()).then(|| live[pick % live.len()])
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (pid, reaped) in self.0.take() {
            if reaped.get() {
                continue;
            }
            // SAFETY: `pid` is our child and nobody reaped it (libuv reaps only
            // just before the exit callback, which sets `reaped`; every loop is
            // gone by now), so the id still names it. SIGKILL ends it even when
            // stopped; waitpid then reaps it.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                let mut status = 0;
                while libc::waitpid(pid, &mut status, 0) == -1
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                {
                }
            }
        }
    }
}

/// Child processes: `Process::spawn` with random options (the constructor is
/// hand-written in the spec, so the generated table cannot make one); the
/// generated operations (`kill` with any signal, the base operations) then reach
/// the processes in the pool.
mod procs {
    use super::*;
    use uv::{Pipe, ProcessFlags, ProcessOptions, Signum};

    /// A program and its arguments: short-lived shells, one that sleeps past the
    /// seed, one that copies stdin to stdout, a missing program, NUL bytes.
    fn command(cx: &Cx) -> (OsString, Vec<OsString>) {
        let sh = |script: &str| (OsString::from("/bin/sh"), vec!["-c".into(), script.into()]);
        match cx.below(10) {
            0..=2 => sh(&format!("exit {}", cx.below(300))),
            3 => sh("sleep 5"),
            4 | 5 => sh("cat"),
            6 => sh("echo out; echo err >&2; kill -9 $$"),
            7 => (
                cx.dir.join("missing-program").into_os_string(),
                vec!["x".into()],
            ),
            8 => (OsString::from("/bin/sh\0x"), Vec::new()),
            _ => (
                OsString::from("/bin/sh"),
                vec!["-c".into(), "exit 0\0".into()],
            ),
        }
    }

    pub fn spawn(cx: &Cx) -> bool {
        let Some((_, lp)) = cx.loop_owner() else {
            return false;
        };
        let (program, args) = command(cx);
        let mut options = ProcessOptions::new(&program);
        let with_args = cx.flip();
        if with_args {
            options = options.args(&args);
        }
        match cx.below(8) {
            0 => options = options.env_clear(),
            1 => options = options.env("UV_FUZZ", cx.string()),
            2 => options = options.env(cx.string(), "1"),
            3 => options = options.env_remove("PATH"),
            _ => {}
        }
        if cx.one_in(4) {
            options = options.cwd(cx.path());
        }
        if cx.one_in(6) {
            options = options.flags(ProcessFlags::from_bits_retain(cx.int_u32()));
        } else if cx.one_in(4) {
            options = options.flags(ProcessFlags::DETACHED);
        }
        if cx.one_in(10) {
            options = options.uid(cx.int_u32()).gid(cx.int_u32());
        }
        // Standard I/O: ignored, created pipes, or a stream of the pool.
        let pipes: Vec<Pipe> = (0..cx.below(3))
            .filter_map(|_| Pipe::new(&lp, cx.one_in(4)).ok())
            .collect();
        let stream = cx.any_handle();
        let mut inherited = false;
        for fd in 0..cx.below(5) {
            let stdio = match (cx.below(5), pipes.get(fd % pipes.len().max(1))) {
                (0, _) => uv::Stdio::Ignore,
                (1 | 2, Some(p)) if fd == 0 => uv::Stdio::pipe_to_child(p),
                (1 | 2, Some(p)) => uv::Stdio::pipe_from_child(p),
                // Not as the standard input of a program run without its arguments
                // (`/bin/sh` alone reads its commands from there): the shell turns
                // a non-blocking standard input blocking when a read finds it
                // empty, at any time after the spawn, which would leave the stream
                // (and a `std` peer sharing its descriptor) blocking behind the
                // fuzzer's back: its own reads would then wait for ever.
                (3, _) if fd == 0 && !with_args => uv::Stdio::Ignore,
                (3, _) => match stream.as_ref().map(|h| h.handle()) {
                    Some(h) => {
                        inherited = true;
                        uv::Stdio::Stream(h)
                    }
                    None => uv::Stdio::Ignore,
                },
                _ => uv::Stdio::Ignore,
            };
            options = options.stdio(fd, stdio);
        }
        let cap = cx.capture();
        let reaped: Rc<Cell<Option<Rc<Cell<bool>>>>> = Rc::default();
        let flag = reaped.clone();
        let r = uv::Process::spawn(&lp, &options, move |p, status, signal| {
            // libuv reaped the child just now: its id may be reused from here on.
            if let Some(f) = flag.take() {
                f.set(true);
            }
            if let Some(cx) = current() {
                cx.note(format_args!("exit {status} {signal:?}"));
            }
            on_callback("Process.on_exit", p, &cap);
        });
        drop(options);
        cx.note(format_args!(
            "{:?}",
            r.as_ref().map(|_| ()).map_err(|e| e.code())
        ));
        // libuv gives an inherited stream to the child in blocking mode, on the
        // descriptor the stream (and a `std` peer sharing it) uses: like
        // `set_blocking`, the fuzzer never leaves it so (its writes would wait for
        // peers nobody drains, a shared peer's reads for data).
        if inherited {
            let _ = match &stream {
                Some(AnyHandle::Pipe(s)) => s.set_blocking(false),
                Some(AnyHandle::Tcp(s)) => s.set_blocking(false),
                Some(AnyHandle::Tty(s)) => s.set_blocking(false),
                _ => Ok(()),
            };
        }
        if let Some(p) = settle(cx, r, None) {
            match p.pid() {
                Ok(pid) if pid > 0 => reaped.set(Some(cx.children.add(pid))),
                other => cx.fail(format!("a spawned process has the id {other:?}")),
            }
            cx.push(p.into_any());
        }
        for p in pipes {
            // A pipe the child did not get is still a handle to play with.
            cx.push(p.into_any());
        }
        true
    }

    pub fn pid(cx: &Cx) -> bool {
        let Some(p) = cx.target::<uv::Process>() else {
            return false;
        };
        let r = p.pid();
        if !matches!(r, Ok(pid) if pid > 0) && !p.is_closing() {
            cx.fail(format!("Process::pid answered {r:?}"));
        }
        true
    }

    /// `uv::kill` on a child that is ours to signal (never another process's id).
    pub fn kill_pid(cx: &Cx) -> bool {
        let Some(pid) = cx.children.unreaped(cx.below(64)) else {
            return false;
        };
        let sig = cx.pick(&[
            Signum::Terminate,
            Signum::Kill,
            Signum::Stop,
            Signum::Continue,
            Signum::User1,
            Signum::Other(0),
            Signum::Other(-1),
            Signum::Other(1000),
        ]);
        cx.note(format_args!("{pid} {sig:?}"));
        let r = uv::kill(pid, sig);
        match sig {
            Signum::Other(_) if r.is_ok() => {
                cx.fail(format!("uv::kill({pid}, {sig:?}) answered Ok"))
            }
            _ => drop(settle(cx, r, None)),
        }
        true
    }
}

/// Futures (`uv::future` and the generated `…_async` forms): made, polled by hand
/// with a waker that does nothing, spawned as tasks, run with `block_on` under a
/// timeout, aborted, and dropped at any point of their work (and before or after
/// their loop).
mod futs {
    use super::*;
    use std::task::{Context, Poll, Waker};

    pub fn sleep(cx: &Cx) -> bool {
        let Some(lp) = cx.loop_ref() else {
            return false;
        };
        let d = cx.duration();
        cx.note(format_args!("{d:?}"));
        let f = uv::future::sleep(&lp, d);
        keep_future(cx, async move { on_future("future sleep", f.await) });
        true
    }

    /// A timeout around a kept future (or a sleep).
    pub fn timeout(cx: &Cx) -> bool {
        let Some(lp) = cx.loop_ref() else {
            return false;
        };
        let inner = take(cx).unwrap_or_else(|| {
            let s = uv::future::sleep(&lp, Duration::from_millis(5));
            Box::pin(async move { drop(s.await) })
        });
        let f = uv::future::timeout(&lp, cx.duration(), inner);
        keep_future(cx, async move { on_future("future timeout", f.await) });
        true
    }

    pub fn queue_work(cx: &Cx) -> bool {
        let Some(lp) = cx.loop_ref() else {
            return false;
        };
        let n = cx.below(1000) as u64;
        let f = uv::future::queue_work(&lp, move || (0..n).sum::<u64>());
        keep_future(cx, async move {
            let r = f.await;
            if let (Ok(v), Some(cx)) = (&r, current()) {
                if *v != (0..n).sum::<u64>() {
                    cx.fail(format!("queue_work future gave {v}"));
                }
            }
            on_future("future queue_work", r.map(drop))
        });
        true
    }

    pub fn yield_now(cx: &Cx) -> bool {
        keep_future(cx, async {
            uv::future::yield_now().await;
            on_future("future yield_now", Ok(()))
        });
        true
    }

    fn take(cx: &Cx) -> Option<BoxFuture> {
        cx.take_random(&cx.futures)
    }

    /// One poll by hand, outside any executor; a pending future is kept.
    pub fn poll(cx: &Cx) -> bool {
        let Some(mut f) = take(cx) else { return false };
        let mut ctx = Context::from_waker(Waker::noop());
        // A panic of the future's own code (the fuzzer's completion) comes out of
        // this poll, as it would for any caller: the future is then dropped.
        match catch_unwind(AssertUnwindSafe(|| f.as_mut().poll(&mut ctx))) {
            Ok(Poll::Ready(())) => cx.note(format_args!("ready")),
            Ok(Poll::Pending) => cx.futures.borrow_mut().push(f),
            Err(p) if p.is::<FuzzPanic>() => {
                bump(&cx.stats.panics);
                drop_payload(p);
            }
            Err(p) => cx.unexpected_panic(p, "a future polled by hand"),
        }
        true
    }

    pub fn drop_one(cx: &Cx) -> bool {
        match take(cx) {
            Some(f) => {
                drop(f);
                true
            }
            None => false,
        }
    }

    pub fn drop_op(cx: &Cx) -> bool {
        drop_one(cx)
    }

    /// A kept future as a task of a loop (maybe not the loop its work is on).
    pub fn spawn(cx: &Cx) -> bool {
        let Some(lp) = cx.loop_ref() else {
            return false;
        };
        let Some(f) = take(cx) else { return false };
        let r = lp.spawn_local(f);
        if let Some(j) = settle(cx, r, None) {
            let mut v = cx.joins.borrow_mut();
            if v.len() < 16 {
                v.push(j);
            }
        }
        true
    }

    /// `block_on` of a kept future under a short timeout (a future nothing wakes
    /// would block for good); inside a callback or a task, `EBUSY`.
    pub fn block_on(cx: &Cx) -> bool {
        let Some((_, lp)) = cx.loop_owner() else {
            return false;
        };
        let Some(f) = take(cx) else { return false };
        let busy = lp.is_running();
        let t = uv::future::timeout(&lp, Duration::from_millis(cx.below(20) as u64), f);
        let r = catch_unwind(AssertUnwindSafe(|| lp.block_on(t)));
        match r {
            Ok(r) => {
                if busy && r.as_ref().err().map(|e| e.code()) != Some(StatusCode::EBUSY) {
                    cx.fail(format!(
                        "block_on inside the loop answered {:?}, not EBUSY",
                        r.as_ref().map(|_| ())
                    ));
                }
                settle(cx, r.map(drop), None);
            }
            Err(p) if p.is::<FuzzPanic>() => {
                bump(&cx.stats.panics);
                drop_payload(p);
            }
            Err(p) => cx.unexpected_panic(p, "a future (resumed by block_on)"),
        }
        true
    }

    pub fn abort(cx: &Cx) -> bool {
        let v = cx.joins.borrow();
        if v.is_empty() {
            return false;
        }
        v[cx.below(v.len())].abort();
        true
    }

    pub fn drop_join(cx: &Cx) -> bool {
        cx.take_random(&cx.joins).is_some()
    }
}

/// Operations on the requests the generated request operations started.
mod reqs {
    use super::*;

    fn pick(cx: &Cx) -> Option<uv::Request> {
        let v = cx.requests.borrow();
        (!v.is_empty()).then(|| v[cx.below(v.len())].clone())
    }

    /// `cancel`: `Ok` only while the request is pending (its callback then gets
    /// `ECANCELED`); `EBUSY` once it runs, an error once it is done.
    pub fn cancel(cx: &Cx) -> bool {
        let Some(r) = pick(cx) else { return false };
        let pending = r.is_pending();
        let res = r.cancel();
        cx.note(format_args!("pending {pending} -> {res:?}"));
        if !pending && res.is_ok() {
            cx.fail("Request::cancel answered Ok for a request that was done".into());
        }
        settle(cx, res, None);
        true
    }

    pub fn is_pending(cx: &Cx) -> bool {
        let Some(r) = pick(cx) else { return false };
        cx.note(format_args!("{}", r.is_pending()));
        true
    }

    pub fn drop_one(cx: &Cx) -> bool {
        cx.take_random(&cx.requests).is_some()
    }
}

/// Loop operations.
mod loops {
    use super::*;

    pub fn new(cx: &Cx) -> bool {
        cx.install_loop(cx.below(2), false).is_some()
    }

    pub fn default_loop(cx: &Cx) -> bool {
        cx.install_loop(cx.below(2), true);
        !cx.ending.get()
    }

    pub fn drop_loop(cx: &Cx) -> bool {
        let old = cx.loops.borrow_mut()[cx.below(2)].take();
        let had = old.is_some();
        cx.retire(old);
        had
    }

    fn run_mode(cx: &Cx) -> RunMode {
        match cx.below(10) {
            0..=5 => RunMode::NoWait,
            6 => RunMode::Once,
            7 => RunMode::Default,
            8 => RunMode::from_raw(cx.below(8) as i32),
            _ => RunMode::Other(cx.int_i32()),
        }
    }

    /// An idle handle (kept out of the pool) that stops the loop after a few
    /// iterations, so that a run in a blocking mode always returns.
    fn breaker(cx: &Cx, lp: &uv::Loop) -> Option<uv::Idle> {
        let idle = uv::Idle::new(lp).ok()?;
        let mut left = 1 + cx.below(4);
        idle.start(move |h| {
            left = left.saturating_sub(1);
            if left == 0 {
                h.loop_().stop();
            }
        })
        .ok()?;
        cx.breakers.borrow_mut().push((*idle).clone());
        Some(idle)
    }

    pub fn run(cx: &Cx) -> bool {
        let Some((_, lp)) = cx.loop_owner() else {
            return false;
        };
        let mode = run_mode(cx);
        cx.note(format_args!("{mode:?}"));
        let breaker = if mode == RunMode::NoWait {
            None
        } else {
            breaker(cx, &lp)
        };
        let busy = lp.is_running();
        let r = catch_unwind(AssertUnwindSafe(|| lp.run(mode)));
        if let Some(b) = breaker {
            cx.breakers.borrow_mut().retain(|h| *h != *b);
            b.close();
        }
        match r {
            Ok(r) => {
                if busy && r.as_ref().err().map(|e| e.code()) != Some(StatusCode::EBUSY) {
                    cx.fail(format!("run inside its own run answered {r:?}, not EBUSY"));
                }
                settle(cx, r, None);
            }
            Err(p) if p.is::<FuzzPanic>() => {
                bump(&cx.stats.panics);
                drop_payload(p);
            }
            Err(p) => cx.unexpected_panic(p, "a callback (resumed by run)"),
        }
        drop(lp);
        true
    }

    pub fn close(cx: &Cx) -> bool {
        let Some((_, lp)) = cx.loop_owner() else {
            return false;
        };
        let r = lp.close();
        settle(cx, r, None);
        true
    }

    pub fn stop(cx: &Cx) -> bool {
        cx.loop_ref().map(|l| l.stop()).is_some()
    }

    /// The read-only loop queries.
    pub fn queries(cx: &Cx) -> bool {
        let Some(l) = cx.loop_ref() else { return false };
        let closed = l.is_closed();
        let _ = (l.is_running(), l.alive(), l.handle_count());
        let rs = [
            l.now().map(drop),
            l.backend_fd().map(drop),
            l.backend_timeout().map(drop),
            l.metrics_idle_time().map(drop),
        ];
        for r in rs {
            if closed && !r.as_ref().is_err_and(|e| e.is(uv::Category::ClosedLoop)) {
                cx.fail(format!("a query on a closed loop answered {r:?}"));
            }
            settle(cx, r, None);
        }
        true
    }

    pub fn update_time(cx: &Cx) -> bool {
        let Some(l) = cx.loop_ref() else { return false };
        settle(cx, l.update_time(), None);
        true
    }

    pub fn block_signal(cx: &Cx) -> bool {
        let Some(l) = cx.loop_ref() else { return false };
        let s = cx.signum();
        cx.note(format_args!("{s:?}"));
        settle(cx, l.block_signal(s), None);
        true
    }

    pub fn configure(cx: &Cx) -> bool {
        let Some(l) = cx.loop_ref() else { return false };
        let o = cx.enum_value(
            uv::LoopOption::ALL,
            uv::LoopOption::from_raw,
            uv::LoopOption::Other,
        );
        cx.note(format_args!("{o:?}"));
        settle(cx, l.configure(o), None);
        true
    }

    /// `handles`: adopts one of them into the pool (never a breaker).
    pub fn handles(cx: &Cx) -> bool {
        let Some(l) = cx.loop_ref() else { return false };
        let all = l.handles();
        let mine = all
            .iter()
            .filter(|h| !cx.breakers.borrow().iter().any(|b| b == *h))
            .nth(cx.below(all.len()))
            .and_then(AnyHandle::from_handle);
        if let Some(a) = mine {
            cx.push(a);
        }
        drop(all);
        true
    }

    /// `close_all_handles`; a loop that runs is stopped too, as its breaker is gone.
    pub fn close_all_handles(cx: &Cx) -> bool {
        let Some(l) = cx.loop_ref() else { return false };
        l.close_all_handles();
        if l.is_running() {
            l.stop();
        }
        true
    }

    /// A job whose calls come from the loop thread.
    fn job() {
        reenter("call_later", true, || None);
    }

    pub fn call_later(cx: &Cx) -> bool {
        let Some(l) = cx.loop_ref() else { return false };
        settle(cx, l.call_later(job), None);
        true
    }

    pub fn call_later_sender(cx: &Cx) -> bool {
        let Some(l) = cx.loop_ref() else { return false };
        if let Some(s) = settle(cx, l.call_later_sender(), None) {
            let mut v = cx.later.borrow_mut();
            if v.len() < 4 {
                v.push(s);
            }
        }
        true
    }

    /// A job queued from another thread.
    pub fn call_later_thread(cx: &Cx) -> bool {
        let s = {
            let v = cx.later.borrow();
            v.get(cx.below(v.len())).cloned()
        };
        let Some(s) = s else { return false };
        match std::thread::spawn(move || s.call(job)).join() {
            Ok(r) => {
                settle(cx, r, None);
            }
            Err(p) => cx.unexpected_panic(p, "CallLater::call on another thread"),
        }
        true
    }

    /// A panic hook that calls into the fuzzer, and sometimes panics itself.
    pub fn set_panic_hook(cx: &Cx) -> bool {
        let Some(l) = cx.loop_ref() else { return false };
        l.set_panic_hook(|p| {
            drop_payload(p);
            reenter("panic_hook", true, || None);
        });
        true
    }

    pub fn take_panic_hook(cx: &Cx) -> bool {
        let Some(l) = cx.loop_ref() else { return false };
        drop(l.take_panic_hook());
        true
    }
}

/// The hand-written parts of `Udp`.
mod udp {
    use super::*;

    fn on(cx: &Cx, f: impl FnOnce(&uv::Udp, bool)) -> bool {
        match cx.target::<uv::Udp>() {
            Some(u) => {
                let closing = u.is_closing();
                f(&u, closing);
                true
            }
            None => false,
        }
    }

    /// `with_flags` with any family and flag bits.
    pub fn with_flags(cx: &Cx) -> bool {
        let Some(l) = cx.loop_ref() else { return false };
        let family = cx.enum_value(
            uv::AddressFamily::ALL,
            uv::AddressFamily::from_raw,
            uv::AddressFamily::Other,
        );
        let flags = uv::UdpFlags::from_bits_retain(cx.flag_bits(uv::UdpFlags::all().bits()));
        cx.note(format_args!("{family:?} {flags:?}"));
        let u = settle(cx, uv::Udp::with_flags(&l, family, flags), None);
        adopt(cx, u);
        true
    }

    pub fn on_datagram(u: &uv::Udp, d: uv::Result<uv::Datagram<'_>>, cap: &Capture) {
        if let Ok(d) = &d {
            let _ = (d.data.len(), d.addr, d.flags, d.is_drained());
        }
        on_callback("Udp.on_recv", u, cap);
    }

    pub fn recv_start(cx: &Cx) -> bool {
        on(cx, |u, closing| {
            keep_on_loopback(&AnyHandle::Udp(u.clone()));
            let cap = cx.capture();
            let r = u.recv_start(move |u, d| on_datagram(u, d, &cap));
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    pub fn recv_stop(cx: &Cx) -> bool {
        on(cx, |u, closing| {
            let r = u.recv_stop();
            closed_contract(cx, closing, true, &r);
            settle(cx, r, None);
        })
    }

    fn to(cx: &Cx) -> Option<SocketAddr> {
        (!cx.one_in(4)).then(|| cx.socket_addr())
    }

    pub fn send(cx: &Cx) -> bool {
        on(cx, |u, closing| {
            keep_on_loopback(&AnyHandle::Udp(u.clone()));
            let data = cx.write_data(usize::MAX);
            let addr = to(cx);
            cx.note(format_args!("{} bytes to {addr:?}", data_len(&data)));
            let cap = cx.capture();
            let r = u.send(data, addr, move |u, r| on_done("Udp.send", u, r, &cap));
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    pub fn try_send(cx: &Cx) -> bool {
        on(cx, |u, closing| {
            keep_on_loopback(&AnyHandle::Udp(u.clone()));
            let data = cx.bytes(usize::MAX);
            let addr = to(cx);
            cx.note(format_args!("{} bytes to {addr:?}", data.len()));
            let r = u.try_send(&data, addr);
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    pub fn family(cx: &Cx) -> bool {
        on(cx, |u, closing| {
            let r = u.family();
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }

    pub fn disconnect(cx: &Cx) -> bool {
        on(cx, |u, closing| {
            let r = u.disconnect();
            closed_contract(cx, closing, false, &r);
            settle(cx, r, None);
        })
    }
}

/// The hand-written parts of the other handle types.
mod extra {
    use super::*;

    pub fn tcp_family(cx: &Cx) -> bool {
        let Some(t) = cx.target::<uv::Tcp>() else {
            return false;
        };
        let closing = t.is_closing();
        let r = t.family();
        closed_contract(cx, closing, false, &r);
        settle(cx, r, None);
        true
    }

    pub fn tcp_close_reset(cx: &Cx) -> bool {
        let Some(t) = cx.target::<uv::Tcp>() else {
            return false;
        };
        let closing = t.is_closing();
        let r = t.close_reset();
        closed_contract(cx, closing, false, &r);
        settle(cx, r, None);
        true
    }

    pub fn tty_winsize(cx: &Cx) -> bool {
        let Some(t) = cx.target::<uv::Tty>() else {
            return false;
        };
        let closing = t.is_closing();
        let r = t.winsize();
        closed_contract(cx, closing, false, &r);
        settle(cx, r, None);
        true
    }

    /// The process-wide terminal functions.
    pub fn tty_modes(cx: &Cx) -> bool {
        match cx.below(3) {
            0 => {
                settle(cx, uv::Tty::reset_mode(), None);
            }
            1 => {
                settle(cx, uv::Tty::vterm_state(), None);
            }
            _ => uv::Tty::set_vterm_state(cx.enum_value(
                uv::TtyVtermState::ALL,
                uv::TtyVtermState::from_raw,
                uv::TtyVtermState::Other,
            )),
        }
        true
    }

    pub fn guess_handle(cx: &Cx) -> bool {
        let fd = cx.raw_fd();
        cx.note(format_args!("{fd} is {:?}", uv::guess_handle(fd)));
        true
    }

    /// `Pipe::try_from` a Unix socket or listener: handed back on error.
    pub fn pipe_try_from(cx: &Cx) -> bool {
        let Some(l) = cx.loop_ref() else { return false };
        let made = if cx.flip() {
            res::unix_pair(cx)
        } else {
            res::unix_listener(cx)
        };
        let id = made.as_ref().and_then(|r| FdIdent::of(r.as_fd()));
        let p = match (made, id) {
            (Some(Res::Unix(s)), Some(id)) => settle(cx, uv::Pipe::try_from((&l, s)), Some(&id)),
            (Some(Res::UnixListener(s)), Some(id)) => {
                settle(cx, uv::Pipe::try_from((&l, s)), Some(&id))
            }
            _ => return false,
        };
        adopt(cx, p);
        true
    }

    pub fn async_send(cx: &Cx) -> bool {
        let Some(a) = cx.target::<uv::Async>() else {
            return false;
        };
        let closing = a.is_closing();
        let r = a.send();
        closed_contract(cx, closing, false, &r);
        settle(cx, r, None);
        true
    }

    pub fn async_sender(cx: &Cx) -> bool {
        let Some(a) = cx.target::<uv::Async>() else {
            return false;
        };
        let closing = a.is_closing();
        let r = a.sender();
        closed_contract(cx, closing, false, &r);
        if let Some(s) = settle(cx, r, None) {
            // The sender replaced (if any) goes once the borrow has ended.
            let _old = {
                let mut v = cx.senders.borrow_mut();
                if v.len() < 4 {
                    v.push(s);
                    None
                } else {
                    Some(std::mem::replace(&mut v[0], s))
                }
            };
        }
        true
    }

    fn a_sender(cx: &Cx) -> Option<uv::AsyncSender> {
        let v = cx.senders.borrow();
        v.get(cx.below(v.len())).cloned()
    }

    pub fn sender_send(cx: &Cx) -> bool {
        let Some(s) = a_sender(cx) else { return false };
        settle(cx, s.send(), None);
        true
    }

    pub fn sender_thread(cx: &Cx) -> bool {
        let Some(s) = a_sender(cx) else { return false };
        match std::thread::spawn(move || s.send()).join() {
            Ok(r) => {
                settle(cx, r, None);
            }
            Err(p) => cx.unexpected_panic(p, "AsyncSender::send on another thread"),
        }
        true
    }

    /// Sends the process a signal whose default action is to ignore it (so that it
    /// is harmless when nothing watches it), through `kill(1)`.
    pub fn deliver_signal(cx: &Cx) -> bool {
        let sig = cx.pick(&["WINCH", "CHLD", "URG", "CONT"]);
        cx.note(format_args!("SIG{sig}"));
        let status = Command::new("kill")
            .args(["-s", sig, &std::process::id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        status.is_ok()
    }
}

/// Live configurations for the random operations to work on (a random sequence
/// seldom builds a server and its client, or a reader and its writer): each is
/// correct usage, on random loops, with the fuzzer's callbacks.
mod setups {
    use super::*;

    fn open_loop(cx: &Cx) -> Option<Rc<uv::Loop>> {
        match cx.loop_owner() {
            Some((_, lp)) => Some(lp),
            None => cx.install_loop(0, false),
        }
    }

    fn reading<S: Stream>(cx: &Cx, s: &S) {
        let cap = cx.capture();
        let r = s.read_start(move |h, d| on_read(h, d, &cap));
        settle(cx, r, None);
    }

    /// Two pipes over a socket pair (IPC or not, maybe on two loops), or a pipe and
    /// its `std` peer; both read, and bytes are on their way.
    pub fn pipes(cx: &Cx) -> bool {
        let Some(lp) = open_loop(cx) else {
            return false;
        };
        let Ok((a, b)) = UnixStream::pair() else {
            return false;
        };
        let ipc = cx.flip();
        let Some(p) = settle(cx, uv::Pipe::new(&lp, ipc), None) else {
            return false;
        };
        settle(cx, p.open(a), None);
        reading(cx, &p);
        if cx.flip() {
            let other = cx.loop_owner().map_or(lp.clone(), |(_, l)| l);
            if let Some(q) = settle(cx, uv::Pipe::new(&other, ipc), None) {
                settle(cx, q.open(b), None);
                reading(cx, &q);
                settle(cx, q.try_write(&cx.bytes(4096)), None);
                cx.push(q.into_any());
            }
        } else {
            let _ = b.set_nonblocking(true);
            let _ = (&b).write(&cx.bytes(4096));
            cx.keep_res(Res::Unix(b));
        }
        cx.push(p.into_any());
        true
    }

    /// A TCP server on loopback that accepts each connection into a random client
    /// (a new one, one of the pool, itself), and a client that connects to it (a
    /// handle on either loop, or a `std` socket).
    pub fn tcp(cx: &Cx) -> bool {
        let Some(lp) = open_loop(cx) else {
            return false;
        };
        let Some(srv) = settle(cx, uv::Tcp::new(&lp), None) else {
            return false;
        };
        keep_on_loopback(&AnyHandle::Tcp(srv.clone()));
        let cap = cx.capture();
        let r = srv.listen(cx.pick(&[1, 8, 128]), move |srv, r| {
            if let (Ok(()), Some(cx)) = (r, current()) {
                stream_ops::accept_on(&cx, srv, srv.is_closing());
            }
            on_callback("Tcp.setup.connection", srv, &cap);
        });
        settle(cx, r, None);
        let addr = srv.local_addr().ok();
        cx.push(srv.into_any());
        let Some(addr) = addr else { return true };
        cx.learn_addr(addr);
        if cx.one_in(3) {
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(50)) {
                let _ = s.set_nonblocking(true);
                cx.keep_res(Res::Tcp(s));
            }
            return true;
        }
        let other = cx.loop_owner().map_or(lp, |(_, l)| l);
        if let Some(c) = settle(cx, uv::Tcp::new(&other), None) {
            let cap = cx.capture();
            let r = c.connect(addr, move |c, r| {
                if r.is_ok() {
                    if let Some(cx) = current() {
                        reading(&cx, c);
                        settle(&cx, c.try_write(&cx.bytes(4096)), None);
                    }
                }
                on_done("Tcp.setup.connect", c, r, &cap);
            });
            settle(cx, r, None);
            cx.push(c.into_any());
        }
        true
    }

    /// Two UDP sockets on loopback: one receives, the other sends to it.
    pub fn udp(cx: &Cx) -> bool {
        let Some(lp) = open_loop(cx) else {
            return false;
        };
        let (Some(rx), Some(tx)) = (
            settle(cx, uv::Udp::new(&lp), None),
            settle(cx, uv::Udp::new(&lp), None),
        ) else {
            return false;
        };
        keep_on_loopback(&AnyHandle::Udp(rx.clone()));
        keep_on_loopback(&AnyHandle::Udp(tx.clone()));
        let cap = cx.capture();
        let r = rx.recv_start(move |u, d| udp::on_datagram(u, d, &cap));
        settle(cx, r, None);
        if let Ok(to) = rx.local_addr() {
            cx.learn_addr(to);
            let cap = cx.capture();
            let r = tx.send(cx.bytes(1024), Some(to), move |u, r| {
                on_done("Udp.setup.send", u, r, &cap)
            });
            settle(cx, r, None);
            settle(cx, tx.try_send(&cx.bytes(512), Some(to)), None);
        }
        cx.push(rx.into_any());
        cx.push(tx.into_any());
        true
    }
}

/// The fuzzer's `std` peers: the other ends of what the handles use.
mod peers {
    use super::*;

    pub fn make(cx: &Cx) -> bool {
        match cx.make_res(FdKind::Any) {
            Some(r) => {
                cx.keep_res(r);
                true
            }
            None => false,
        }
    }

    /// Writes to a socket peer (never blocks: every socket is non-blocking).
    pub fn write(cx: &Cx) -> bool {
        let data = cx.bytes(65_536);
        let to = cx.socket_addr();
        let r = cx.res.borrow();
        let socks = r.iter().filter(|x| {
            matches!(
                x,
                Res::Unix(_) | Res::Shared(_) | Res::Tcp(_) | Res::UnixDgram(_) | Res::Udp(_)
            )
        });
        let Some(x) = socks.clone().nth(cx.below(socks.count())) else {
            return false;
        };
        let _ = match x {
            Res::Unix(s) => (&*s).write(&data),
            Res::Shared(s) => (&**s).write(&data),
            Res::Tcp(s) => (&*s).write(&data),
            Res::UnixDgram(s) => s.send(&data),
            Res::Udp(s) => s.send_to(&data, to),
            _ => Ok(0),
        };
        true
    }

    pub fn read(cx: &Cx) -> bool {
        let mut buf = vec![0; 65_536];
        let r = cx.res.borrow();
        let Some(x) = r.get(cx.below(r.len())) else {
            return false;
        };
        let _ = match x {
            Res::Unix(s) => (&*s).read(&mut buf),
            Res::Shared(s) => (&**s).read(&mut buf),
            Res::Tcp(s) => (&*s).read(&mut buf),
            Res::UnixDgram(s) => s.recv(&mut buf),
            Res::Udp(s) => s.recv(&mut buf),
            _ => Ok(0),
        };
        true
    }

    /// Drops a resource: a handle's peer sees the end of the stream or a reset.
    pub fn drop_one(cx: &Cx) -> bool {
        let r = {
            let mut v = cx.res.borrow_mut();
            if v.is_empty() {
                return false;
            }
            let i = cx.below(v.len());
            v.swap_remove(i)
        };
        drop(r);
        true
    }

    /// Accepts a pending connection on one of the fuzzer's listeners.
    pub fn accept(cx: &Cx) -> bool {
        let got = {
            let r = cx.res.borrow();
            let listeners = r
                .iter()
                .filter(|x| matches!(x, Res::TcpListener(_) | Res::UnixListener(_)));
            match listeners.clone().nth(cx.below(listeners.count())) {
                Some(Res::TcpListener(l)) => l.accept().ok().map(|(s, _)| Res::Tcp(s)),
                Some(Res::UnixListener(l)) => l.accept().ok().map(|(s, _)| Res::Unix(s)),
                _ => return false,
            }
        };
        if let Some(r) = got {
            let _ = match &r {
                Res::Tcp(s) => s.set_nonblocking(true),
                Res::Unix(s) => s.set_nonblocking(true),
                _ => Ok(()),
            };
            cx.keep_res(r);
        }
        true
    }

    /// Connects to one of our own addresses (a listening handle, maybe).
    pub fn connect(cx: &Cx) -> bool {
        let a = {
            let v = cx.addrs.borrow();
            v.get(cx.below(v.len())).copied()
        };
        let Some(a) = a else { return false };
        if let Ok(s) = TcpStream::connect_timeout(&a, Duration::from_millis(50)) {
            if s.set_nonblocking(true).is_ok() {
                cx.keep_res(Res::Tcp(s));
            }
        }
        true
    }

    /// Learns the addresses our TCP and UDP handles are bound to.
    pub fn learn_addrs(cx: &Cx) -> bool {
        let socks: Vec<AnyHandle> = cx
            .pool
            .borrow()
            .iter()
            .filter(|a| matches!(a, AnyHandle::Tcp(_) | AnyHandle::Udp(_)))
            .cloned()
            .collect();
        for a in &socks {
            let addr = match a {
                AnyHandle::Tcp(t) => t.local_addr().ok(),
                AnyHandle::Udp(u) => u.local_addr().ok(),
                _ => None,
            };
            if let Some(addr) = addr {
                cx.learn_addr(addr);
            }
        }
        drop(socks);
        true
    }
}

// ---------------------------------------------------------------------------
// The driver

/// What one seed did.
#[derive(Debug, Default)]
struct SeedReport {
    calls: u64,
    ok: u64,
    errors: u64,
    rejected: u64,
    panics: u64,
    callbacks: u64,
    open_targets: u64,
    closed_targets: u64,
}

/// Runs one seed: random operations until `calls` ran, then everything goes in
/// random order. A broken invariant or an unexpected panic is an `Err`.
fn run_seed(seed: u64, calls: u64, dir: &Path, sweep: bool) -> Result<SeedReport, String> {
    SEED.store(seed, Ordering::Relaxed);
    let cx = Rc::new(Cx::new(seed, dir));
    CX.with(|c| *c.borrow_mut() = Some(cx.clone()));
    let result = drive(&cx, calls, sweep).and_then(|()| wind_down(&cx));
    CX.with(|c| c.borrow_mut().take());
    let report = SeedReport {
        calls: cx.calls.get(),
        ok: cx.stats.ok.get(),
        errors: cx.stats.errors.get(),
        rejected: cx.stats.rejected.get(),
        panics: cx.stats.panics.get(),
        callbacks: cx.stats.callbacks.get(),
        open_targets: cx.stats.open_targets.get(),
        closed_targets: cx.stats.closed_targets.get(),
    };
    let failure = cx.failure.borrow_mut().take();
    // The rest (handles made during the teardown, resources) goes with the state;
    // callbacks find no state any more.
    if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(cx))) {
        return Err(format!(
            "panic while dropping the fuzzer's state: {}",
            payload_text(&*p)
        ));
    }
    result?;
    match failure {
        Some(f) => Err(f),
        None => Ok(report),
    }
}

fn check_failure(cx: &Cx) -> Result<(), String> {
    match cx.failure.borrow_mut().take() {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

fn top_step(cx: &Cx, f: impl FnOnce(&Cx)) -> Result<(), String> {
    cx.budget.set(BUDGET);
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(cx))) {
        cx.unexpected_panic(p, "an operation");
    }
    check_failure(cx)
}

fn drive(cx: &Cx, calls: u64, sweep: bool) -> Result<(), String> {
    if sweep {
        // Every operation once, in table order (the warm-up).
        for i in 0..registry().ops.len() {
            top_step(cx, |cx| run_op(cx, i))?;
        }
    }
    let mut attempts = 0;
    while cx.calls.get() < calls && attempts < calls.saturating_mul(8) {
        attempts += 1;
        top_step(cx, step)?;
    }
    Ok(())
}

/// The end of a seed: last runs, then the references, the resources and the loops
/// go, each in random order.
fn wind_down(cx: &Cx) -> Result<(), String> {
    cx.ending.set(true);
    for _ in 0..cx.below(3) {
        top_step(cx, |cx| {
            log_begin("Loop", "run (wind-down)", 0);
            loops::run(cx);
        })?;
    }
    while !cx.pool.borrow().is_empty() {
        top_step(cx, |cx| {
            let i = cx.below(cx.pool.borrow().len());
            drop(cx.take_at(i));
        })?;
    }
    top_step(cx, |cx| {
        drop(cx.focus.take());
        drop(std::mem::take(&mut *cx.senders.borrow_mut()));
        drop(std::mem::take(&mut *cx.requests.borrow_mut()));
        drop(std::mem::take(&mut *cx.files.borrow_mut()));
        drop(std::mem::take(&mut *cx.dirs.borrow_mut()));
        drop(std::mem::take(&mut *cx.later.borrow_mut()));
        drop(std::mem::take(&mut *cx.stale.borrow_mut()));
        while peers::drop_one(cx) {}
    })?;
    // Futures and join handles go before the loops, or after them.
    let futures_first = cx.flip();
    let drop_futures = |cx: &Cx| {
        top_step(cx, |cx| {
            drop(std::mem::take(&mut *cx.joins.borrow_mut()));
            while futs::drop_one(cx) {}
        })
    };
    if futures_first {
        drop_futures(cx)?;
    }
    let first = cx.below(2);
    for i in [first, 1 - first] {
        top_step(cx, |cx| {
            let old = cx.loops.borrow_mut()[i].take();
            cx.retire(old);
        })?;
    }
    if !futures_first {
        drop_futures(cx)?;
    }
    Ok(())
}

/// Descriptors open in the process (Linux); `None` elsewhere.
fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

/// A directory of our own for socket paths and files; removed at the end. Short,
/// so that a truncated long name still lands inside it.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let base = std::env::temp_dir();
        let base = if base.as_os_str().len() > 40 {
            PathBuf::from("/tmp")
        } else {
            base
        };
        let dir = base.join(format!("uv-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the fuzzer's scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The whole run in this process; panics with a report on any failure.
/// The largest file the worker may write: random offsets and lengths (a write at
/// 2^40, an ftruncate to anything, then a sendfile or copyfile of that) would
/// otherwise fill the disk. Past it, writes give `EFBIG` (SIGXFSZ is ignored).
const FILE_SIZE_LIMIT: u64 = 8 << 20;

fn limit_file_size() {
    let lim = libc::rlimit {
        rlim_cur: FILE_SIZE_LIMIT as libc::rlim_t,
        rlim_max: FILE_SIZE_LIMIT as libc::rlim_t,
    };
    // SAFETY: plain system calls on this process's own settings.
    let ok = unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN) != libc::SIG_ERR
            && libc::setrlimit(libc::RLIMIT_FSIZE, &lim) == 0
    };
    assert!(ok, "the fuzz worker could not limit file sizes");
}

pub fn worker(cfg: &Config, live: fn() -> Live) {
    TRACE.store(cfg.trace, Ordering::Relaxed);
    PER_SEED.store(cfg.per_seed, Ordering::Relaxed);
    install_panic_hook();
    limit_file_size();
    let dog = Watchdog::start(cfg.watchdog);
    let scratch = Scratch::new();
    let started = Instant::now();
    let reg = registry();
    // Warm-up: every operation once, then a short random run, so that statics the
    // runtime, libuv and std make on first use exist before the baseline.
    eprintln!("uv-fuzz: seed {} (warm-up)", cfg.first_seed);
    if let Err(msg) = run_seed(cfg.first_seed, 300, &scratch.0, true) {
        fail(&msg);
    }
    keep_sigpipe_handled();
    reg.hits.iter().for_each(|h| h.store(0, Ordering::Relaxed));
    reg.oks.iter().for_each(|h| h.store(0, Ordering::Relaxed));
    reg.sites.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let base = live_unkept(live);
    let base_fds = open_fds();
    let mut total = SeedReport::default();
    let mut seed = cfg.first_seed;
    let mut seeds = 0;
    while total.calls < cfg.calls {
        let n = cfg.per_seed.min(cfg.calls - total.calls);
        eprintln!("uv-fuzz: seed {seed}");
        let r = run_seed(seed, n, &scratch.0, false).unwrap_or_else(|m| fail(&m));
        check_leaks(base, live_unkept(live), base_fds, open_fds());
        add(&mut total, &r);
        seed += 1;
        seeds += 1;
    }
    if std::env::var_os("UV_FUZZ_STATS").is_some() {
        print_stats();
    }
    // A replay of one seed is too short to reach everything.
    if total.calls >= 10_000 {
        // A seed's calls depend on when callbacks run (a child's exit, a write's
        // completion), so the machine's load changes them: an operation that needs
        // a rare target (a live child process) can miss a run under load. Up to
        // COVERAGE_SEEDS more seeds run for what was missed, with the same checks.
        let mut more = 0;
        while !missed_ops().is_empty() && more < COVERAGE_SEEDS {
            eprintln!("uv-fuzz: seed {seed} (for coverage)");
            let r = run_seed(seed, cfg.per_seed, &scratch.0, false).unwrap_or_else(|m| fail(&m));
            check_leaks(base, live_unkept(live), base_fds, open_fds());
            add(&mut total, &r);
            seed += 1;
            seeds += 1;
            more += 1;
        }
        check_coverage();
    }
    drop(dog);
    drop(scratch);
    eprintln!(
        "uv-fuzz: {} calls over {seeds} seeds (from {}) in {:.1?}: {} ok, {} errors ({} handed back), \
         {} callbacks, {} deliberate panics; targets {} open, {} closing or closed; \
         {} operations over {} handle types ({} streams)",
        total.calls,
        cfg.first_seed,
        started.elapsed(),
        total.ok,
        total.errors,
        total.rejected,
        total.callbacks,
        total.panics,
        total.open_targets,
        total.closed_targets,
        reg.ops.len(),
        reg.types,
        reg.streams,
    );
}

fn add(total: &mut SeedReport, r: &SeedReport) {
    total.calls += r.calls;
    total.ok += r.ok;
    total.errors += r.errors;
    total.rejected += r.rejected;
    total.panics += r.panics;
    total.callbacks += r.callbacks;
    total.open_targets += r.open_targets;
    total.closed_targets += r.closed_targets;
}

fn fail(msg: &str) -> ! {
    report(msg);
    panic!("uv-fuzz: {msg} (seed {})", SEED.load(Ordering::Relaxed));
}

/// Watches SIGPIPE once, so that what the library keeps for good from the first
/// watch of an ignored signal on (a loop of its own with a watch of it, and
/// that loop's descriptors: see `Signal::start`) exists before the baseline.
fn keep_sigpipe_handled() {
    let lp = uv::Loop::new().unwrap();
    let sig = uv::Signal::new(&lp).unwrap();
    sig.start(uv::Signum::Pipe, |_, _| {}).unwrap();
    sig.close();
    lp.run(uv::RunMode::Default).unwrap();
    lp.close().unwrap();
}

/// The live allocations but the memory the library keeps by design for the
/// `Async` handles of dropped loops (`AsyncSender::kept_memory`: reused by later
/// loops, never given back).
fn live_unkept(live: fn() -> Live) -> Live {
    let (count, bytes) = uv::AsyncSender::kept_memory();
    let now = live();
    Live {
        count: now.count - count,
        bytes: now.bytes - bytes,
    }
}

fn check_leaks(base: Live, now: Live, base_fds: Option<usize>, fds: Option<usize>) {
    if now.count != base.count {
        fail(&format!(
            "leak: {} live allocations ({} bytes) after the seed, {} ({} bytes) before",
            now.count, now.bytes, base.count, base.bytes
        ));
    }
    if fds != base_fds {
        fail(&format!(
            "descriptor leak: {fds:?} open after the seed, {base_fds:?} before"
        ));
    }
}

/// The most seeds run after the asked-for calls for operations that never ran.
const COVERAGE_SEEDS: u32 = 64;

/// The operations (not skipped) that never ran, as `Type.op`.
fn missed_ops() -> Vec<String> {
    let reg = registry();
    reg.ops
        .iter()
        .zip(&reg.hits)
        .zip(&reg.skip)
        .filter(|((_, h), skip)| h.load(Ordering::Relaxed) == 0 && !**skip)
        .map(|((o, _), _)| format!("{}.{}", o.handle, o.name))
        .collect()
}

fn check_coverage() {
    let missed = missed_ops();
    if !missed.is_empty() {
        fail(&format!(
            "coverage: {} operations never ran: {}",
            missed.len(),
            missed.join(", ")
        ));
    }
}

// ---------------------------------------------------------------------------
// The supervisor

/// What a child run printed and how it ended.
struct ChildRun {
    status: std::process::ExitStatus,
    tail: VecDeque<String>,
    last_seed: Option<u64>,
}

fn run_child(test: &str, env: &[(&str, String)], keep: usize) -> ChildRun {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("UV_FUZZ_WORKER", "1")
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the fuzz worker starts");
    let mut tail = VecDeque::new();
    let mut last_seed = None;
    let err = child.stderr.take().expect("piped");
    for line in BufReader::new(err).split(b'\n').map_while(Result::ok) {
        let line = String::from_utf8_lossy(&line).into_owned();
        if let Some(s) = line.strip_prefix("uv-fuzz: seed ") {
            last_seed = s.split_whitespace().next().and_then(|n| n.parse().ok());
        }
        if tail.len() == keep {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let status = child.wait().expect("the fuzz worker ends");
    ChildRun {
        status,
        tail,
        last_seed,
    }
}

/// The test's entry: fuzzes in a child process (or here, with `UV_FUZZ_WORKER`)
/// that traces every operation, so that even a crash (an abort, a segfault, a
/// signal) is reported with its seed and last operations.
pub fn entry(test: &str, live: fn() -> Live) {
    let cfg = Config::from_env();
    if std::env::var_os("UV_FUZZ_WORKER").is_some() {
        worker(&cfg, live);
        return;
    }
    let run = run_child(test, &[("UV_FUZZ_TRACE", "1".into())], 200);
    let text = |t: &VecDeque<String>| t.iter().cloned().collect::<Vec<_>>().join("\n");
    if run.status.success() {
        for l in run.tail.iter().filter(|l| !l.starts_with("uv-fuzz: op #")) {
            if !l.starts_with("uv-fuzz:     ") && !l.starts_with("uv-fuzz: seed") {
                eprintln!("{l}");
            }
        }
        return;
    }
    if run.tail.iter().any(|l| l.starts_with("uv-fuzz: FAILED")) {
        panic!(
            "the fuzzer found a problem ({}):\n{}",
            run.status,
            text(&run.tail)
        );
    }
    let seed = run.last_seed.unwrap_or(cfg.first_seed);
    panic!(
        "the fuzz worker died ({}) in seed {seed} (replay: UV_FUZZ_SEED={seed} UV_FUZZ_CALLS={} \
         UV_FUZZ_TRACE=1 UV_FUZZ_WORKER=1 cargo test -p uv-tests --test fuzz -- --nocapture; \
         callback timing may make a replay take another path). The last operations:\n{}",
        run.status,
        cfg.per_seed,
        text(&run.tail)
    );
}
