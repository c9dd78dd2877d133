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
//! - Other arguments are ignored.

use std::io::Write as _;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

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
    bench_flag: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        variant: None,
        count: None,
        scale: None,
        rounds: None,
        bench_flag: false,
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
            "--bench" => o.bench_flag = true,
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
pub fn main(bench: &Bench) -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: {e}", bench.name);
            return ExitCode::FAILURE;
        }
    };
    match opts.variant {
        Some(v) => child(bench, v, opts.count.unwrap_or(bench.full_count)),
        None => parent(bench, &opts),
    }
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

fn run_child(variant: Variant, count: u64) -> Result<Sample, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .args(["--variant", variant.name(), "--count", &count.to_string()])
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

fn parent(bench: &Bench, opts: &Options) -> ExitCode {
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
            let s = match run_child(v, count) {
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
    if !bench.note.is_empty() {
        println!("{}", bench.note);
    }
    let cpu_ratio = u.cpu / r.cpu;
    let peak_ratio = u.peak_kib / r.peak_kib;
    if quick {
        println!(
            "ratio uv/raw: cpu {cpu_ratio:.3}x, peak memory {peak_ratio:.3}x \
             (quick check: targets not judged)"
        );
    } else {
        println!(
            "ratio uv/raw: cpu {cpu_ratio:.3}x (min {:.3}x) target <= {CPU_TARGET:.2}x: {}; \
             peak memory {peak_ratio:.3}x target <= {PEAK_TARGET:.2}x: {}",
            u.cpu_min / r.cpu_min,
            verdict(cpu_ratio, CPU_TARGET),
            verdict(peak_ratio, PEAK_TARGET),
        );
    }
    ExitCode::SUCCESS
}
