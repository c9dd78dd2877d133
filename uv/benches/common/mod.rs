//! The harness the benchmarks share: each variant runs in its own process so that
//! its peak memory (`ru_maxrss`, a process-wide high-water mark) is its own.
//!
//! The parent (what `cargo bench` starts) re-executes the bench binary once per
//! variant and round (`--variant raw|uv --count N`), raw and uv alternately, reads the
//! line each child prints, checks that both variants made the same number of
//! callbacks (exit status 1 if not) and prints the medians and the uv/raw ratios.
//!
//! Sizes and rounds:
//! - `UV_BENCH_SCALE=0.1` (or `--scale 0.1`) scales the counts; `UV_BENCH_ROUNDS=7`
//!   (or `--rounds 7`) sets the rounds (5 by default).
//! - `cargo bench` passes `--bench`: full size. Without `--bench` and without a scale
//!   (`cargo test --benches` runs bench binaries that way) the binary only makes a
//!   quick check at 1% of the size, one round, so that tests never measure speed.
//! - A binary with several cases (`main_cases`, e.g. one client and 100 clients)
//!   runs them all, one table each; `--case NAME` runs only that one (children get
//!   it too).
//! - `--list` prints one line per case, its name and its full count, and exits (the
//!   instruction script, `uv/benches/instructions.sh`, reads it).
//! - Other arguments are ignored.

use std::io::Write as _;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use uv::sys;

/// CPU time target: uv / raw.
const CPU_TARGET: f64 = 1.05;
/// Peak memory target: uv / raw.
const PEAK_TARGET: f64 = 1.30;
/// Marks the result line a child prints.
const TAG: &str = "UVBENCH";

/// Which implementation a child runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The raw libuv-sys2 twin.
    Raw,
    /// The safe `uv` version.
    Uv,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Raw => "raw",
            Variant::Uv => "uv",
        }
    }

    fn parse(s: &str) -> Option<Variant> {
        match s {
            "raw" => Some(Variant::Raw),
            "uv" => Some(Variant::Uv),
            _ => None,
        }
    }
}

/// What one run of a workload reports.
#[derive(Debug)]
pub struct Outcome {
    /// The checksum: callbacks made (must match between variants).
    pub count: u64,
    /// Named phases, wall seconds, in order.
    pub phases: Vec<(&'static str, f64)>,
}

/// A benchmark: a name, its full size and its two variants.
#[derive(Debug)]
pub struct Bench {
    /// Name, for the report.
    pub name: &'static str,
    /// What the count counts ("idle ticks", "timers").
    pub unit: &'static str,
    /// Size at scale 1.
    pub full_count: u64,
    /// Printed under the table (how to read it), if not empty.
    pub note: &'static str,
    /// The count each variant must report for a size.
    pub expected: fn(u64) -> u64,
    /// Runs one variant at a size.
    pub run: fn(Variant, u64) -> Outcome,
}

/// A rate the parent prints under a case's table: `count * per_count` divided by
/// the median wall time of the phase named `phase`, for each variant.
#[derive(Debug)]
#[allow(dead_code)] // Not every bench binary reports a rate.
pub struct Rate {
    /// What is counted per second ("round trips", "MiB").
    pub unit: &'static str,
    /// How many of `unit` one counted callback stands for.
    pub per_count: f64,
    /// The phase whose wall time the rate is over.
    pub phase: &'static str,
}

impl Rate {
    /// One `unit` per counted callback, over the `run` phase.
    #[allow(dead_code)] // Not every bench binary reports a rate.
    pub fn per_run(unit: &'static str) -> Option<Rate> {
        Some(Rate {
            unit,
            per_count: 1.0,
            phase: "run",
        })
    }
}

/// One case of a bench binary with several (`main_cases`).
#[derive(Debug)]
#[allow(dead_code)] // Not every bench binary has several cases.
pub struct Case {
    /// The benchmark; its name is the case's name (`--case NAME`).
    pub bench: Bench,
    /// A rate to print under the table, if any.
    pub rate: Option<Rate>,
}

/// Ends the process (status 2) if it is still running after `limit`: the network
/// benchmarks stop by themselves, and this bounds them if something goes wrong.
#[allow(dead_code)] // Only the network benchmarks use it.
pub fn watchdog(name: &'static str, limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("{name}: still running after {limit:?}; giving up");
        std::process::exit(2);
    });
}

/// A network benchmark's `run`: starts the watchdog (120 s), then runs `raw` or
/// `safe` at size `n`, as `variant` says.
#[allow(dead_code)] // Only the network benchmarks use it.
pub fn run_net(
    name: &'static str,
    variant: Variant,
    n: u64,
    raw: impl FnOnce(u64) -> Outcome,
    safe: impl FnOnce(u64) -> Outcome,
) -> Outcome {
    watchdog(name, Duration::from_secs(120));
    match variant {
        Variant::Raw => raw(n),
        Variant::Uv => safe(n),
    }
}

/// Seconds since `t`.
pub fn since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Process CPU time (user + system, seconds) and peak RSS (KiB), from `uv_getrusage`.
fn rusage() -> (f64, u64) {
    let mut ru = std::mem::MaybeUninit::<sys::uv_rusage_t>::zeroed();
    // SAFETY: `ru` is a valid, writable uv_rusage_t (all-zero is a valid value of
    // this plain C struct), which uv_getrusage fills in.
    let rc = unsafe { sys::uv_getrusage(ru.as_mut_ptr()) };
    assert_eq!(rc, 0, "uv_getrusage failed: {rc}");
    // SAFETY: zero-initialised above and filled in by uv_getrusage.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: sys::uv_timeval_t| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_maxrss)
}

/// One child's figures.
#[derive(Clone, Debug)]
struct Sample {
    cpu: f64,
    wall: f64,
    peak_kib: u64,
    count: u64,
    phases: Vec<(String, f64)>,
}

struct Options {
    variant: Option<Variant>,
    count: Option<u64>,
    scale: Option<f64>,
    rounds: Option<usize>,
    case: Option<String>,
    bench_flag: bool,
    list: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        variant: None,
        count: None,
        scale: None,
        rounds: None,
        case: None,
        bench_flag: false,
        list: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{what} needs a value"));
        match a.as_str() {
            "--variant" => {
                let v = value("--variant")?;
                o.variant = Some(Variant::parse(&v).ok_or(format!("unknown variant {v:?}"))?);
            }
            "--count" => {
                let v = value("--count")?;
                o.count = Some(v.parse().map_err(|e| format!("--count {v:?}: {e}"))?);
            }
            "--scale" => {
                let v = value("--scale")?;
                o.scale = Some(v.parse().map_err(|e| format!("--scale {v:?}: {e}"))?);
            }
            "--rounds" => {
                let v = value("--rounds")?;
                o.rounds = Some(v.parse().map_err(|e| format!("--rounds {v:?}: {e}"))?);
            }
            "--case" => o.case = Some(value("--case")?),
            "--bench" => o.bench_flag = true,
            "--list" => o.list = true,
            // cargo and libtest flags (`--nocapture`, filters, ...): not ours.
            _ => {}
        }
    }
    if o.scale.is_none() {
        if let Ok(v) = std::env::var("UV_BENCH_SCALE") {
            o.scale = Some(
                v.parse()
                    .map_err(|e| format!("UV_BENCH_SCALE {v:?}: {e}"))?,
            );
        }
    }
    if o.rounds.is_none() {
        if let Ok(v) = std::env::var("UV_BENCH_ROUNDS") {
            o.rounds = Some(
                v.parse()
                    .map_err(|e| format!("UV_BENCH_ROUNDS {v:?}: {e}"))?,
            );
        }
    }
    Ok(o)
}

/// The bench binary's `main`.
#[allow(dead_code)] // Binaries with several cases use `main_cases`.
pub fn main(bench: &Bench) -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: {e}", bench.name);
            return ExitCode::FAILURE;
        }
    };
    if opts.list {
        println!("{} {}", bench.name, bench.full_count);
        return ExitCode::SUCCESS;
    }
    match opts.variant {
        Some(v) => child(bench, v, opts.count.unwrap_or(bench.full_count)),
        None => parent(bench, &opts, None, None),
    }
}

/// The `main` of a bench binary with several cases: the parent runs every case (or
/// the one `--case NAME` names), one table each; a child runs the case it is given.
#[allow(dead_code)] // Not every bench binary has several cases.
pub fn main_cases(cases: &[Case]) -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if opts.list {
        for c in cases {
            println!("{} {}", c.bench.name, c.bench.full_count);
        }
        return ExitCode::SUCCESS;
    }
    let selected: Vec<&Case> = match &opts.case {
        Some(name) => cases.iter().filter(|c| c.bench.name == name).collect(),
        None => cases.iter().collect(),
    };
    if selected.is_empty() {
        let names: Vec<&str> = cases.iter().map(|c| c.bench.name).collect();
        eprintln!(
            "unknown case {:?}; cases: {}",
            opts.case.as_deref().unwrap_or(""),
            names.join(", ")
        );
        return ExitCode::FAILURE;
    }
    if let Some(v) = opts.variant {
        // With one case, `--case` may be left out (handy when profiling a child).
        let named = opts.case.is_some() || cases.len() == 1;
        let Some(c) = selected.first().filter(|_| named) else {
            eprintln!("--variant needs --case in a binary with several cases");
            return ExitCode::FAILURE;
        };
        return child(&c.bench, v, opts.count.unwrap_or(c.bench.full_count));
    }
    for c in selected {
        let code = parent(&c.bench, &opts, Some(c.bench.name), c.rate.as_ref());
        if code != ExitCode::SUCCESS {
            return code;
        }
    }
    ExitCode::SUCCESS
}

/// Runs one variant and prints its figures on one line.
fn child(bench: &Bench, variant: Variant, count: u64) -> ExitCode {
    let (cpu0, _) = rusage();
    let t0 = Instant::now();
    let out = (bench.run)(variant, count);
    let wall = since(t0);
    let (cpu1, peak_kib) = rusage();
    let phases: Vec<String> = out
        .phases
        .iter()
        .map(|(n, s)| format!("{n}:{s:.6}"))
        .collect();
    println!(
        "{TAG} variant={} cpu={:.6} wall={wall:.6} peak_kib={peak_kib} count={} phases={}",
        variant.name(),
        cpu1 - cpu0,
        out.count,
        phases.join(","),
    );
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

fn parse_sample(line: &str) -> Option<Sample> {
    let rest = line.strip_prefix(TAG)?;
    let mut s = Sample {
        cpu: f64::NAN,
        wall: f64::NAN,
        peak_kib: 0,
        count: 0,
        phases: Vec::new(),
    };
    for field in rest.split_whitespace() {
        let (k, v) = field.split_once('=')?;
        match k {
            "cpu" => s.cpu = v.parse().ok()?,
            "wall" => s.wall = v.parse().ok()?,
            "peak_kib" => s.peak_kib = v.parse().ok()?,
            "count" => s.count = v.parse().ok()?,
            "phases" => {
                for p in v.split(',').filter(|p| !p.is_empty()) {
                    let (n, secs) = p.split_once(':')?;
                    s.phases.push((n.to_string(), secs.parse().ok()?));
                }
            }
            _ => {}
        }
    }
    Some(s)
}

fn run_child(variant: Variant, count: u64, case: Option<&str>) -> Result<Sample, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["--variant", variant.name(), "--count", &count.to_string()]);
    if let Some(case) = case {
        cmd.args(["--case", case]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("spawning the {} child: {e}", variant.name()))?;
    if !out.status.success() {
        return Err(format!(
            "the {} child failed: {}",
            variant.name(),
            out.status
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().find_map(parse_sample).ok_or(format!(
        "the {} child printed no {TAG} line",
        variant.name()
    ))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Medians over the rounds of one variant.
struct Summary {
    cpu: f64,
    cpu_min: f64,
    wall: f64,
    peak_kib: f64,
    phases: Vec<(String, f64)>,
}

fn summarise(samples: &[Sample]) -> Summary {
    let phases = samples[0]
        .phases
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let v = samples
                .iter()
                .filter_map(|s| s.phases.get(i).map(|p| p.1))
                .collect();
            (name.clone(), median(v))
        })
        .collect();
    Summary {
        cpu: median(samples.iter().map(|s| s.cpu).collect()),
        cpu_min: samples.iter().map(|s| s.cpu).fold(f64::INFINITY, f64::min),
        wall: median(samples.iter().map(|s| s.wall).collect()),
        peak_kib: median(samples.iter().map(|s| s.peak_kib as f64).collect()),
        phases,
    }
}

fn verdict(ratio: f64, target: f64) -> &'static str {
    if ratio <= target {
        "met"
    } else {
        "MISSED"
    }
}

fn parent(bench: &Bench, opts: &Options, case: Option<&str>, rate: Option<&Rate>) -> ExitCode {
    // Without `--bench` or an explicit scale this is a test run: check, do not measure.
    let quick = !opts.bench_flag && opts.scale.is_none();
    let scale = opts.scale.unwrap_or(if quick { 0.01 } else { 1.0 });
    let rounds = opts.rounds.unwrap_or(if quick { 1 } else { 5 }).max(1);
    let count = ((bench.full_count as f64 * scale).round() as u64).max(1);
    let expected = (bench.expected)(count);

    let mut raw = Vec::new();
    let mut uvs = Vec::new();
    for round in 0..rounds {
        // Alternate which variant goes first, so that neither always runs on a cold
        // (or warm) machine.
        let order = if round % 2 == 0 {
            [Variant::Raw, Variant::Uv]
        } else {
            [Variant::Uv, Variant::Raw]
        };
        for v in order {
            let s = match run_child(v, count, case) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{}: {e}", bench.name);
                    return ExitCode::FAILURE;
                }
            };
            if s.count != expected {
                eprintln!(
                    "{}: the {} variant made {} callbacks, expected {expected}",
                    bench.name,
                    v.name(),
                    s.count
                );
                return ExitCode::FAILURE;
            }
            match v {
                Variant::Raw => raw.push(s),
                Variant::Uv => uvs.push(s),
            }
        }
    }

    let r = summarise(&raw);
    let u = summarise(&uvs);
    println!();
    println!(
        "{}: {count} {} (scale {scale}), {rounds} round(s), each run in its own process; medians{}",
        bench.name,
        bench.unit,
        if quick {
            " (quick check: run with --bench or UV_BENCH_SCALE to measure)"
        } else {
            ""
        },
    );
    println!(
        "{:<8} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "variant", "cpu s", "cpu min s", "wall s", "peak KiB", "count"
    );
    for (name, s, c) in [("raw", &r, raw[0].count), ("uv", &u, uvs[0].count)] {
        println!(
            "{name:<8} {:>10.4} {:>10.4} {:>10.4} {:>12.0} {c:>12}",
            s.cpu, s.cpu_min, s.wall, s.peak_kib
        );
    }
    if !r.phases.is_empty() {
        println!("phases (wall s, medians):");
        println!("{:<10} {:>10} {:>10} {:>8}", "phase", "raw", "uv", "uv/raw");
        for ((name, rs), (_, us)) in r.phases.iter().zip(&u.phases) {
            println!("{name:<10} {rs:>10.4} {us:>10.4} {:>7.3}x", us / rs);
        }
    }
    if let Some(rate) = rate {
        let of = |s: &Summary, n: u64| {
            let secs = s
                .phases
                .iter()
                .find(|(name, _)| name == rate.phase)
                .map_or(s.wall, |p| p.1);
            n as f64 * rate.per_count / secs
        };
        let (rr, ur) = (of(&r, raw[0].count), of(&u, uvs[0].count));
        println!(
            "rate over the {} phase: raw {rr:.1} {unit}/s, uv {ur:.1} {unit}/s (uv/raw {:.3}x)",
            rate.phase,
            ur / rr,
            unit = rate.unit,
        );
    }
    if !bench.note.is_empty() {
        println!("{}", bench.note);
    }
    let cpu_ratio = u.cpu / r.cpu;
    // The two runs of a round ran one after the other, under the same load from the
    // rest of the machine: the median of the rounds' own ratios cancels load that
    // drifts from round to round, which the ratio of the medians does not.
    let paired = median(raw.iter().zip(&uvs).map(|(r, u)| u.cpu / r.cpu).collect());
    let peak_ratio = u.peak_kib / r.peak_kib;
    if quick {
        println!(
            "ratio uv/raw: cpu {cpu_ratio:.3}x, peak memory {peak_ratio:.3}x \
             (quick check: targets not judged)"
        );
    } else {
        println!(
            "ratio uv/raw: cpu {cpu_ratio:.3}x (min {:.3}x, per round {paired:.3}x) \
             target <= {CPU_TARGET:.2}x: {}; \
             peak memory {peak_ratio:.3}x target <= {PEAK_TARGET:.2}x: {}",
            u.cpu_min / r.cpu_min,
            verdict(cpu_ratio, CPU_TARGET),
            verdict(peak_ratio, PEAK_TARGET),
        );
    }
    ExitCode::SUCCESS
}

/// What the raw twins of the network benchmarks share: boxed loops, TCP handles and
/// requests, loopback addresses.
#[allow(dead_code)] // Only the network benchmarks use it.
pub mod rawnet {
    use std::ffi::CStr;
    use std::mem::MaybeUninit;

    use uv::sys;

    /// A raw twin's state, from any handle of its loop (whose `data` points at it).
    ///
    /// # Safety
    /// `h` must be a handle of a loop whose `data` points at a live `T` that
    /// outlives the reference; only shared references to it are made (its mutable
    /// fields are cells).
    pub unsafe fn loop_state<'a, T>(h: *const sys::uv_handle_t) -> &'a T {
        // SAFETY: per the contract.
        unsafe { &*((*(*h).loop_).data as *const T) }
    }

    /// Defines `ctx`, the raw twin's state (`$state`) from any handle of its loop;
    /// with `slab: LEN`, also its [`ReadSlab`] (the state's `slab` field, `LEN`
    /// bytes), for [`slab_alloc`].
    #[allow(unused_macros)]
    macro_rules! raw_state {
        ($state:ty) => {
            /// The state, from any handle of the raw twin's loop.
            ///
            /// # Safety
            /// `h` must be a handle of the loop `raw` made, while `raw` runs it.
            unsafe fn ctx<'a>(h: *const ::uv::sys::uv_handle_t) -> &'a $state {
                // SAFETY: per the contract: `raw` set the loop's `data` to its state
                // (`set_loop_state`), which outlives the run.
                unsafe { $crate::common::rawnet::loop_state(h) }
            }
        };
        ($state:ty, slab: $len:expr) => {
            $crate::common::rawnet::raw_state!($state);

            impl $crate::common::rawnet::ReadSlab for $state {
                const LEN: usize = $len;
                fn slab(&self) -> *mut u8 {
                    self.slab
                }
            }
        };
    }
    #[allow(unused_imports)]
    pub(crate) use raw_state;

    /// Points the `data` of `lp` at `st`, the raw twin's state, for [`loop_state`].
    ///
    /// # Safety
    /// `lp` must be an initialised loop; `st` must outlive every run of it.
    pub unsafe fn set_loop_state<T>(lp: *mut sys::uv_loop_t, st: &T) {
        // SAFETY: per the contract.
        unsafe { (*lp).data = (st as *const T).cast_mut().cast() };
    }

    /// Runs `lp` (`UV_RUN_DEFAULT`) and returns the wall seconds the run took.
    ///
    /// # Safety
    /// `lp` must be an initialised loop, not running.
    pub unsafe fn run_timed(lp: *mut sys::uv_loop_t) -> f64 {
        let t = std::time::Instant::now();
        // SAFETY: per the contract.
        unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
        super::since(t)
    }

    /// A new uninitialised buffer of `len` bytes in a box of its own; `free_buf`
    /// frees it.
    pub fn new_buf(len: usize) -> *mut u8 {
        Box::into_raw(Box::<[u8]>::new_uninit_slice(len)).cast()
    }

    /// Frees a buffer made by `new_buf`.
    ///
    /// # Safety
    /// `buf` must come from `new_buf(len)` and no longer be lent to libuv.
    pub unsafe fn free_buf(buf: *mut u8, len: usize) {
        // SAFETY: per the contract (freed as the slice it was made as).
        drop(unsafe {
            Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                buf.cast::<MaybeUninit<u8>>(),
                len,
            ))
        });
    }

    /// A raw twin's state that owns a read buffer nobody keeps what is read into.
    pub trait ReadSlab {
        /// The buffer's length.
        const LEN: usize;
        /// The buffer.
        fn slab(&self) -> *mut u8;
    }

    /// The allocation callback of the raw twins' reads: the state's read buffer,
    /// every time.
    ///
    /// # Safety
    /// libuv's arguments for a handle of a loop whose `data` points at a live `T`
    /// (see [`loop_state`]).
    pub unsafe extern "C" fn slab_alloc<T: ReadSlab>(
        h: *mut sys::uv_handle_t,
        _size: usize,
        buf: *mut sys::uv_buf_t,
    ) {
        // SAFETY: per the contract; `buf` is writable.
        unsafe {
            *buf = sys::uv_buf_t {
                base: loop_state::<T>(h).slab().cast(),
                len: T::LEN,
            }
        };
    }

    /// A loopback TCP server on `lp`, listening (backlog 128), and a client
    /// connecting to it: `(server, client)`, both from `new_tcp`.
    ///
    /// # Safety
    /// `lp` must be an initialised loop whose `data` the callbacks can use when it
    /// runs.
    pub unsafe fn listen_and_connect(
        lp: *mut sys::uv_loop_t,
        on_connection: sys::uv_connection_cb,
        connected: sys::uv_connect_cb,
    ) -> (*mut sys::uv_tcp_t, *mut sys::uv_tcp_t) {
        let server = new_tcp(lp);
        let client = new_tcp(lp);
        // SAFETY: both handles are initialised and stay put; the request is fresh
        // and freed by the twin's connect callback.
        unsafe {
            let addr = bind_loopback(server);
            check(
                sys::uv_listen(server.cast(), 128, on_connection),
                "uv_listen",
            );
            let req = new_req::<sys::uv_connect_t>();
            check(
                sys::uv_tcp_connect(req, client, sa(&addr), connected),
                "uv_tcp_connect",
            );
        }
        (server, client)
    }

    /// Panics, naming `what` and libuv's error, if `rc` is an error code. Always
    /// inlined, like the C benchmarks' `ASSERT`: a compare and a branch, whatever the
    /// compiler decides for the rest of the build (left to itself, it inlined this
    /// in some builds and not in others, which moved the raw figures).
    #[track_caller]
    #[inline(always)]
    pub fn check(rc: i32, what: &str) {
        if rc < 0 {
            failed(rc, what);
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn failed(rc: i32, what: &str) -> ! {
        // SAFETY: uv_err_name returns a static NUL-terminated string (or a leaked
        // one for unknown codes), valid for the process.
        let name = unsafe { CStr::from_ptr(sys::uv_err_name(rc)) };
        panic!("{what}: {}", name.to_string_lossy());
    }

    /// A new loop in a box of its own; `close_loop` closes and frees it.
    pub fn new_loop() -> *mut sys::uv_loop_t {
        let lp: *mut sys::uv_loop_t =
            Box::into_raw(Box::new(MaybeUninit::<sys::uv_loop_t>::uninit())).cast();
        // SAFETY: `lp` is a fresh allocation the size of a uv_loop_t, which does not
        // move until `close_loop` frees it.
        check(unsafe { sys::uv_loop_init(lp) }, "uv_loop_init");
        lp
    }

    /// Closes a loop made by `new_loop` whose handles are all closed, and frees it.
    ///
    /// # Safety
    /// `lp` must come from `new_loop`, not be running, and have no open handles.
    pub unsafe fn close_loop(lp: *mut sys::uv_loop_t) {
        // SAFETY: per the contract.
        check(unsafe { sys::uv_loop_close(lp) }, "uv_loop_close");
        // SAFETY: made by Box::into_raw in `new_loop`; libuv no longer refers to it.
        drop(unsafe { Box::from_raw(lp.cast::<MaybeUninit<sys::uv_loop_t>>()) });
    }

    /// A new, initialised TCP handle in a box of its own; close it with `close_free`
    /// as the close callback (or call `free_tcp` from one's own).
    pub fn new_tcp(lp: *mut sys::uv_loop_t) -> *mut sys::uv_tcp_t {
        let tcp: *mut sys::uv_tcp_t =
            Box::into_raw(Box::new(MaybeUninit::<sys::uv_tcp_t>::uninit())).cast();
        // SAFETY: `lp` is an initialised loop (callers' contract: they only pass
        // loops from `new_loop`) and `tcp` a fresh allocation that does not move.
        check(unsafe { sys::uv_tcp_init(lp, tcp) }, "uv_tcp_init");
        tcp
    }

    /// Frees a handle made by `new_tcp`.
    ///
    /// # Safety
    /// `tcp` must come from `new_tcp` and be closed (its close callback running).
    pub unsafe fn free_tcp(tcp: *mut sys::uv_tcp_t) {
        // SAFETY: per the contract.
        drop(unsafe { Box::from_raw(tcp.cast::<MaybeUninit<sys::uv_tcp_t>>()) });
    }

    /// Accepts the pending connection of `server` into a new handle (made by
    /// `new_tcp`, closed with `close_free`) and starts reading it.
    ///
    /// # Safety
    /// `server` is an open listening TCP handle with a connection pending (its
    /// connection callback is running with status 0).
    pub unsafe fn accept_reading(
        server: *mut sys::uv_stream_t,
        alloc: sys::uv_alloc_cb,
        read: sys::uv_read_cb,
    ) -> *mut sys::uv_tcp_t {
        // SAFETY: the caller's contract; the connection is a fresh handle on the
        // server's loop.
        unsafe {
            let conn = new_tcp((*server).loop_);
            check(sys::uv_accept(server, conn.cast()), "uv_accept");
            check(
                sys::uv_read_start(conn.cast(), alloc, read),
                "uv_read_start",
            );
            conn
        }
    }

    /// Accepts the one connection a server takes into a reading handle (as
    /// `accept_reading`), then closes the server (`close_free`).
    ///
    /// # Safety
    /// As `accept_reading`; `server` was made by `new_tcp` and is closed only here.
    pub unsafe fn accept_one(
        server: *mut sys::uv_stream_t,
        alloc: sys::uv_alloc_cb,
        read: sys::uv_read_cb,
    ) {
        // SAFETY: per the contract.
        unsafe {
            accept_reading(server, alloc, read);
            sys::uv_close(server.cast(), Some(close_free));
        }
    }

    /// Accepts a pending connection into a reading handle (as `accept_reading`),
    /// counts it in `accepted`, and closes the server (`close_free`) once that
    /// count reaches `total`.
    ///
    /// # Safety
    /// As `accept_reading`; `server` was made by `new_tcp` and is closed only here.
    pub unsafe fn accept_counting(
        server: *mut sys::uv_stream_t,
        alloc: sys::uv_alloc_cb,
        read: sys::uv_read_cb,
        accepted: &std::cell::Cell<u64>,
        total: u64,
    ) {
        // SAFETY: per the contract.
        unsafe {
            accept_reading(server, alloc, read);
            let a = accepted.get() + 1;
            accepted.set(a);
            if a == total {
                sys::uv_close(server.cast(), Some(close_free));
            }
        }
    }

    /// A read error of a server's connection: closes it (`close_free`) on EOF,
    /// panics on anything else.
    ///
    /// # Safety
    /// `s` is an open connection made by `new_tcp`, whose read callback got `nread`
    /// (negative).
    #[inline(always)]
    pub unsafe fn read_ended(s: *mut sys::uv_stream_t, nread: isize, what: &str) {
        if nread == sys::uv_errno_t_UV_EOF as isize {
            // SAFETY: per the contract.
            unsafe { sys::uv_close(s.cast(), Some(close_free)) };
        } else {
            check(nread as i32, what);
        }
    }

    /// A close callback that frees a handle made by `new_tcp`.
    pub unsafe extern "C" fn close_free(h: *mut sys::uv_handle_t) {
        // SAFETY: only passed to uv_close for handles made by `new_tcp`; libuv is
        // done with the handle once its close callback runs.
        unsafe { free_tcp(h.cast()) };
    }

    /// An uninitialised request struct (`uv_write_t`, `uv_connect_t`, ...) in a box
    /// of its own, as the C benchmarks `malloc` theirs (the libuv call that starts the
    /// request initialises it); `free_req` frees it.
    pub fn new_req<R>() -> *mut R {
        Box::into_raw(Box::<R>::new_uninit()).cast()
    }

    /// Frees a request made by `new_req`.
    ///
    /// # Safety
    /// `req` must come from `new_req::<R>` and be finished (its callback running).
    pub unsafe fn free_req<R>(req: *mut R) {
        // SAFETY: per the contract (freed as the MaybeUninit it was made as).
        drop(unsafe { Box::from_raw(req.cast::<MaybeUninit<R>>()) });
    }

    /// `127.0.0.1:port`.
    pub fn loopback(port: u16) -> sys::sockaddr_in {
        let mut addr = MaybeUninit::<sys::sockaddr_in>::zeroed();
        // SAFETY: the string is NUL-terminated and `addr` a writable sockaddr_in.
        check(
            unsafe { sys::uv_ip4_addr(c"127.0.0.1".as_ptr(), i32::from(port), addr.as_mut_ptr()) },
            "uv_ip4_addr",
        );
        // SAFETY: zeroed (a valid sockaddr_in) and filled in by uv_ip4_addr.
        unsafe { addr.assume_init() }
    }

    /// Binds `tcp` to 127.0.0.1, port 0 (a free port), and returns the address it got.
    ///
    /// # Safety
    /// `tcp` must be an initialised, open TCP handle.
    pub unsafe fn bind_loopback(tcp: *mut sys::uv_tcp_t) -> sys::sockaddr_in {
        let any = loopback(0);
        // SAFETY: per the contract; `any` is a valid sockaddr_in.
        check(
            unsafe { sys::uv_tcp_bind(tcp, (&raw const any).cast(), 0) },
            "uv_tcp_bind",
        );
        let mut bound = MaybeUninit::<sys::sockaddr_storage>::zeroed();
        let mut len = std::mem::size_of::<sys::sockaddr_storage>() as i32;
        // SAFETY: `bound` is a writable sockaddr_storage of `len` bytes.
        check(
            unsafe { sys::uv_tcp_getsockname(tcp, bound.as_mut_ptr().cast(), &mut len) },
            "uv_tcp_getsockname",
        );
        // SAFETY: an IPv4 socket's name is a sockaddr_in, which fits in the
        // (zeroed, then filled in) sockaddr_storage.
        unsafe { bound.as_ptr().cast::<sys::sockaddr_in>().read() }
    }

    /// `addr` as the `*const sockaddr` libuv takes.
    pub fn sa(addr: &sys::sockaddr_in) -> *const sys::sockaddr {
        (addr as *const sys::sockaddr_in).cast()
    }
}

/// What the safe versions of the network benchmarks share, written as their users
/// would.
#[allow(dead_code)] // Only the TCP benchmarks use it.
pub mod uvnet {
    use std::net::SocketAddr;

    use uv::Stream as _;

    /// A TCP handle on `lh` bound to 127.0.0.1, port 0 (a free port), and the
    /// address it got.
    pub fn bound_tcp(lh: &uv::LoopHandle) -> (uv::Tcp, SocketAddr) {
        let tcp = uv::Tcp::new(lh).expect("uv::Tcp::new");
        tcp.bind(SocketAddr::from(([127, 0, 0, 1], 0)), uv::TcpFlags::empty())
            .expect("bind");
        let addr = tcp.local_addr().expect("sockname");
        (tcp, addr)
    }

    /// Accepts the pending connection of `server` (its connection callback is
    /// running) into a new handle on `lh`. Inlined into the callers' connection
    /// callbacks, where the code stood before it was shared (a call of its own
    /// would add its moves to the benchmarks' figures).
    #[inline(always)]
    pub fn accept(server: &uv::Tcp, lh: &uv::LoopHandle) -> uv::Tcp {
        let conn = uv::Tcp::new(lh).expect("uv::Tcp::new");
        server.accept_into(&conn).expect("accept");
        conn
    }
}
