//! Process and system utilities: clocks, CPUs, memory, network interfaces, the
//! environment, users and groups, the process title, and libuv's version.
//!
//! Free functions, named after libuv's without the `uv_`/`uv_os_` prefix
//! (`uv_os_gethostname` is [`gethostname`]). Results are owned Rust values
//! (`String`, `PathBuf`, `Duration`, typed structs); what libuv allocates is copied
//! and freed before returning; text buffers grow when libuv answers `ENOBUFS`.
//! Where `std` has the same thing (`std::env::current_dir`, `std::process::id`,
//! `std::thread::available_parallelism`), both give the same answer: these exist
//! to give libuv's view, where it differs (`cpumask_size`, constrained memory, the
//! process title).
//!
//! The loop's own utilities are [`LoopHandle`] methods in this module's file:
//! [`metrics_info`](LoopHandle::metrics_info), [`after_fork`](LoopHandle::after_fork),
//! [`print_all_handles`](LoopHandle::print_all_handles) and
//! [`print_active_handles`](LoopHandle::print_active_handles); the C names of
//! handle and request types are [`HandleType::c_name`](crate::HandleType::c_name)
//! and [`RequestType::c_name`](crate::RequestType::c_name).
//!
//! ```
//! let pid = uv::system::getpid();
//! assert_eq!(pid, std::process::id());
//! assert_eq!(uv::system::cwd()?, std::env::current_dir()?);
//! let t0 = uv::system::hrtime();
//! uv::system::sleep(std::time::Duration::from_millis(2));
//! assert!(uv::system::hrtime() - t0 >= std::time::Duration::from_millis(2));
//! assert!(uv::system::total_memory() > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::{c_char, c_int, CStr, OsStr, OsString};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libuv_sys2 as sys;

use crate::error::{check, Error, Result};
use crate::loop_::LoopHandle;
use crate::{ClockId, HandleType, RequestType, StatusCode};

// ---------------------------------------------------------------------------
// Helpers

fn bytes_to_os(v: Vec<u8>) -> OsString {
    #[cfg(unix)]
    return <OsString as std::os::unix::ffi::OsStringExt>::from_vec(v);
    #[cfg(not(unix))]
    return OsString::from(String::from_utf8_lossy(&v).into_owned());
}

fn os_bytes(s: &OsStr) -> Vec<u8> {
    #[cfg(unix)]
    return std::os::unix::ffi::OsStrExt::as_bytes(s).to_vec();
    #[cfg(not(unix))]
    return s.to_string_lossy().into_owned().into_bytes();
}

/// A C string libuv owns, copied (NULL is empty).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn c_bytes(p: *const c_char) -> Vec<u8> {
    if p.is_null() {
        return Vec::new();
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()
}

/// A C string libuv owns, as a `String` (invalid UTF-8 replaced).
///
/// # Safety
/// As `c_bytes`.
unsafe fn c_string(p: *const c_char) -> String {
    // SAFETY: the caller's contract.
    String::from_utf8_lossy(&unsafe { c_bytes(p) }).into_owned()
}

/// A fixed-size C char array up to its first NUL.
fn array_string(a: &[c_char]) -> String {
    let bytes: Vec<u8> = a
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Calls a `(buffer, size in/out)` function, growing the buffer while libuv says
/// `ENOBUFS` (with the size it needs, terminator included, in `size`). The size
/// libuv asks for is that of a string that exists (an environment variable's
/// value may be any length): it is taken whatever it is. A function that does not
/// say (`uv_get_process_title`) gets a buffer twice as large, up to 16 MiB.
fn read_buf(
    op: &'static str,
    start: usize,
    mut f: impl FnMut(*mut c_char, *mut usize) -> c_int,
) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; start.max(1)];
    loop {
        let mut len = buf.len();
        let rc = f(buf.as_mut_ptr().cast(), &mut len);
        if rc == StatusCode::ENOBUFS.raw() {
            let want = if len > buf.len() {
                len
            } else if buf.len() < 1 << 24 {
                buf.len() * 2
            } else {
                return Err(Error::new(StatusCode::ENOBUFS, op));
            };
            buf.resize(want, 0);
            continue;
        }
        check(rc, op)?;
        buf.truncate(len.min(buf.len()));
        return Ok(buf);
    }
}

fn c_arg(s: &OsStr, op: &'static str) -> Result<std::ffi::CString> {
    std::ffi::CString::new(os_bytes(s)).map_err(|_| Error::new(StatusCode::EINVAL, op))
}

// ---------------------------------------------------------------------------
// Time

/// The high-resolution monotonic clock (`uv_hrtime`), from an arbitrary starting
/// point: only differences between two readings mean something.
pub fn hrtime() -> Duration {
    // SAFETY: no preconditions.
    Duration::from_nanos(unsafe { sys::uv_hrtime() })
}

/// Reads a clock (`uv_clock_gettime`): `Monotonic` from an arbitrary starting
/// point, `Realtime` since the Unix epoch. `EINVAL` for `ClockId::Other`; `ERANGE`
/// for a real-time clock set before 1970.
pub fn clock_gettime(clock: ClockId) -> Result<Duration> {
    const OP: &str = "uv_clock_gettime";
    if let ClockId::Other(_) = ClockId::from_raw(clock.raw()) {
        return Err(Error::new(StatusCode::EINVAL, OP));
    }
    let mut ts = sys::uv_timespec64_t {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is writable; the clock id is one libuv knows.
    let rc = unsafe { sys::uv_clock_gettime(clock.raw() as sys::uv_clock_id, &mut ts) };
    check(rc, OP)?;
    let secs = u64::try_from(ts.tv_sec).map_err(|_| Error::new(StatusCode::ERANGE, OP))?;
    Ok(Duration::new(secs, ts.tv_nsec.clamp(0, 999_999_999) as u32))
}

/// The wall-clock time (`uv_gettimeofday`), to the microsecond.
pub fn gettimeofday() -> Result<SystemTime> {
    let mut tv = sys::uv_timeval64_t {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: `tv` is writable.
    check(unsafe { sys::uv_gettimeofday(&mut tv) }, "uv_gettimeofday")?;
    let usec = Duration::from_micros(tv.tv_usec.clamp(0, 999_999) as u64);
    Ok(if tv.tv_sec >= 0 {
        UNIX_EPOCH + Duration::from_secs(tv.tv_sec as u64) + usec
    } else {
        UNIX_EPOCH - Duration::from_secs(tv.tv_sec.unsigned_abs()) + usec
    })
}

/// Sleeps the calling thread (`uv_sleep`, whole milliseconds: a fraction of a
/// millisecond is rounded up, so the thread sleeps at least `d`).
pub fn sleep(d: Duration) {
    let mut ms = crate::runtime::duration_to_ms(d);
    while ms > 0 {
        let step = ms.min(u64::from(u32::MAX));
        // SAFETY: no preconditions.
        unsafe { sys::uv_sleep(step as std::ffi::c_uint) };
        ms -= step;
    }
}

/// How long the system has been up (`uv_uptime`).
pub fn uptime() -> Result<Duration> {
    let mut up = 0f64;
    // SAFETY: `up` is writable.
    check(unsafe { sys::uv_uptime(&mut up) }, "uv_uptime")?;
    Duration::try_from_secs_f64(up).map_err(|_| Error::new(StatusCode::ERANGE, "uv_uptime"))
}

/// The 1, 5 and 15 minute load averages (`uv_loadavg`; zeros where the system has
/// none, as on Windows).
pub fn loadavg() -> [f64; 3] {
    let mut avg = [0f64; 3];
    // SAFETY: `avg` is the three doubles libuv writes.
    unsafe { sys::uv_loadavg(avg.as_mut_ptr()) };
    avg
}

// ---------------------------------------------------------------------------
// Version

/// libuv's version (`uv_version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch level.
    pub patch: u32,
}

/// The version of the libuv this crate runs on (`uv_version`).
pub fn version() -> Version {
    // SAFETY: no preconditions.
    let v = unsafe { sys::uv_version() };
    Version {
        major: (v >> 16) & 0xff,
        minor: (v >> 8) & 0xff,
        patch: v & 0xff,
    }
}

/// The version as text, with a suffix for pre-releases (`uv_version_string`).
pub fn version_string() -> &'static str {
    // SAFETY: libuv returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(sys::uv_version_string()) }
        .to_str()
        .unwrap_or("")
}

// ---------------------------------------------------------------------------
// CPUs and memory

/// Time a CPU spent in each mode since boot (`uv_cpu_times_s`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpuTimes {
    /// User mode.
    pub user: Duration,
    /// User mode at low priority.
    pub nice: Duration,
    /// System mode.
    pub sys: Duration,
    /// Idle.
    pub idle: Duration,
    /// Serving interrupts.
    pub irq: Duration,
}

/// One logical CPU (`uv_cpu_info_t`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpuInfo {
    /// The model name.
    pub model: String,
    /// Clock speed in MHz (0 where the system does not say).
    pub speed_mhz: u32,
    /// Time spent per mode.
    pub times: CpuTimes,
}

/// The logical CPUs (`uv_cpu_info`, then `uv_free_cpu_info`).
pub fn cpu_info() -> Result<Vec<CpuInfo>> {
    let mut p: *mut sys::uv_cpu_info_t = std::ptr::null_mut();
    let mut n: c_int = 0;
    // SAFETY: both out-parameters are writable.
    check(unsafe { sys::uv_cpu_info(&mut p, &mut n) }, "uv_cpu_info")?;
    let count = usize::try_from(n).unwrap_or(0);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: libuv returned an array of `n` entries.
        let c = unsafe { &*p.add(i) };
        let t = c.cpu_times;
        out.push(CpuInfo {
            // SAFETY: a NUL-terminated string of the array.
            model: unsafe { c_string(c.model) },
            speed_mhz: u32::try_from(c.speed).unwrap_or(0),
            times: CpuTimes {
                user: Duration::from_millis(t.user),
                nice: Duration::from_millis(t.nice),
                sys: Duration::from_millis(t.sys),
                idle: Duration::from_millis(t.idle),
                irq: Duration::from_millis(t.irq),
            },
        });
    }
    // SAFETY: the array uv_cpu_info returned, freed once with its count.
    unsafe { sys::uv_free_cpu_info(p, n) };
    Ok(out)
}

/// How many threads the program can use in parallel (`uv_available_parallelism`;
/// at least 1).
pub fn available_parallelism() -> u32 {
    // SAFETY: no preconditions.
    unsafe { sys::uv_available_parallelism() }
}

/// The size of a CPU affinity mask in bytes, that is the largest number of CPUs
/// the system supports (`uv_cpumask_size`); `ENOTSUP` where there are no masks.
pub fn cpumask_size() -> Result<usize> {
    // SAFETY: no preconditions.
    let n = unsafe { sys::uv_cpumask_size() };
    check(n.min(0), "uv_cpumask_size")?;
    Ok(n as usize)
}

/// Free system memory in bytes (`uv_get_free_memory`).
pub fn free_memory() -> u64 {
    // SAFETY: no preconditions.
    unsafe { sys::uv_get_free_memory() }
}

/// Total system memory in bytes (`uv_get_total_memory`).
pub fn total_memory() -> u64 {
    // SAFETY: no preconditions.
    unsafe { sys::uv_get_total_memory() }
}

/// The memory limit the OS puts on the process, in bytes
/// (`uv_get_constrained_memory`): `None` when there is no limit or it is unknown
/// (libuv's 0), `Some(u64::MAX)` when a limiting mechanism exists but sets none.
pub fn constrained_memory() -> Option<u64> {
    // SAFETY: no preconditions.
    let n = unsafe { sys::uv_get_constrained_memory() };
    (n != 0).then_some(n)
}

/// Free memory still available to the process, limits included, in bytes
/// (`uv_get_available_memory`).
pub fn available_memory() -> u64 {
    // SAFETY: no preconditions.
    unsafe { sys::uv_get_available_memory() }
}

/// The process's resident set size in bytes (`uv_resident_set_memory`).
pub fn resident_set_memory() -> Result<usize> {
    let mut rss = 0usize;
    // SAFETY: `rss` is writable.
    let rc = unsafe { sys::uv_resident_set_memory(&mut rss) };
    check(rc, "uv_resident_set_memory")?;
    Ok(rss)
}

/// Resource usage (`uv_rusage_t`); fields the system does not track are 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResourceUsage {
    /// CPU time in user mode.
    pub user_time: Duration,
    /// CPU time in system mode.
    pub system_time: Duration,
    /// Peak resident set size, in KiB (bytes on macOS, as the system reports it).
    pub max_rss: u64,
    /// Integral shared memory size.
    pub ixrss: u64,
    /// Integral unshared data size.
    pub idrss: u64,
    /// Integral unshared stack size.
    pub isrss: u64,
    /// Page reclaims (soft page faults).
    pub minor_faults: u64,
    /// Page faults (hard page faults).
    pub major_faults: u64,
    /// Swaps.
    pub swaps: u64,
    /// Block input operations.
    pub block_inputs: u64,
    /// Block output operations.
    pub block_outputs: u64,
    /// IPC messages sent.
    pub messages_sent: u64,
    /// IPC messages received.
    pub messages_received: u64,
    /// Signals received.
    pub signals: u64,
    /// Voluntary context switches.
    pub voluntary_switches: u64,
    /// Involuntary context switches.
    pub involuntary_switches: u64,
}

fn timeval(t: sys::uv_timeval_t) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64)
        + Duration::from_micros(t.tv_usec.clamp(0, 999_999) as u64)
}

fn rusage(
    op: &'static str,
    f: unsafe extern "C" fn(*mut sys::uv_rusage_t) -> c_int,
) -> Result<ResourceUsage> {
    // SAFETY: plain C data; all-zero is a valid value.
    let mut r: sys::uv_rusage_t = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is writable.
    check(unsafe { f(&mut r) }, op)?;
    Ok(ResourceUsage {
        user_time: timeval(r.ru_utime),
        system_time: timeval(r.ru_stime),
        max_rss: r.ru_maxrss,
        ixrss: r.ru_ixrss,
        idrss: r.ru_idrss,
        isrss: r.ru_isrss,
        minor_faults: r.ru_minflt,
        major_faults: r.ru_majflt,
        swaps: r.ru_nswap,
        block_inputs: r.ru_inblock,
        block_outputs: r.ru_oublock,
        messages_sent: r.ru_msgsnd,
        messages_received: r.ru_msgrcv,
        signals: r.ru_nsignals,
        voluntary_switches: r.ru_nvcsw,
        involuntary_switches: r.ru_nivcsw,
    })
}

/// The process's resource usage (`uv_getrusage`).
pub fn getrusage() -> Result<ResourceUsage> {
    rusage("uv_getrusage", sys::uv_getrusage)
}

/// The calling thread's resource usage (`uv_getrusage_thread`); `ENOTSUP` where the
/// system has no per-thread figures.
pub fn getrusage_thread() -> Result<ResourceUsage> {
    rusage("uv_getrusage_thread", sys::uv_getrusage_thread)
}

// ---------------------------------------------------------------------------
// Network interfaces

/// One address of a network interface (`uv_interface_address_t`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InterfaceAddress {
    /// The interface's name ("lo", "eth0").
    pub name: String,
    /// The hardware (MAC) address; zeros where there is none (loopback).
    pub mac: [u8; 6],
    /// Whether the interface is internal (loopback).
    pub is_internal: bool,
    /// The address (an IPv6 one with its scope id, if any).
    pub address: IpAddr,
    /// The IPv6 scope id (0 for IPv4).
    pub scope_id: u32,
    /// The netmask.
    pub netmask: IpAddr,
}

/// Reads a `sockaddr_in`/`sockaddr_in6` union member.
///
/// # Safety
/// `p` points at a `sockaddr_in6`-sized union holding an address of its family.
unsafe fn union_addr(p: *const u8) -> Option<std::net::SocketAddr> {
    let mut sa = crate::addr::SockStorage::empty();
    // SAFETY: the caller's contract; the storage is larger than a sockaddr_in6.
    unsafe {
        std::ptr::copy_nonoverlapping(
            p,
            sa.as_mut_ptr().cast::<u8>(),
            std::mem::size_of::<sys::sockaddr_in6>(),
        )
    };
    sa.to_std()
}

/// The addresses of the system's network interfaces (`uv_interface_addresses`,
/// then `uv_free_interface_addresses`); addresses of other families are left out.
pub fn interface_addresses() -> Result<Vec<InterfaceAddress>> {
    let mut p: *mut sys::uv_interface_address_t = std::ptr::null_mut();
    let mut n: c_int = 0;
    // SAFETY: both out-parameters are writable.
    let rc = unsafe { sys::uv_interface_addresses(&mut p, &mut n) };
    check(rc, "uv_interface_addresses")?;
    let count = usize::try_from(n).unwrap_or(0);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: libuv returned an array of `n` entries.
        let a = unsafe { &*p.add(i) };
        // SAFETY: each union holds an address of the family its first field says.
        let (addr, mask) = unsafe {
            (
                union_addr(std::ptr::addr_of!(a.address).cast()),
                union_addr(std::ptr::addr_of!(a.netmask).cast()),
            )
        };
        let Some(addr) = addr else { continue };
        let scope_id = match addr {
            std::net::SocketAddr::V6(v6) => v6.scope_id(),
            std::net::SocketAddr::V4(_) => 0,
        };
        let netmask = match mask {
            Some(m) => m.ip(),
            // Some systems leave the netmask's family unset: all-zero of the
            // address's family.
            None => match addr {
                std::net::SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                std::net::SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            },
        };
        out.push(InterfaceAddress {
            // SAFETY: a NUL-terminated string of the array.
            name: unsafe { c_string(a.name) },
            mac: a.phys_addr.map(|c| c as u8),
            is_internal: a.is_internal != 0,
            address: addr.ip(),
            scope_id,
            netmask,
        });
    }
    // SAFETY: the array uv_interface_addresses returned, freed once with its count.
    unsafe { sys::uv_free_interface_addresses(p, n) };
    Ok(out)
}

/// The name of the network interface with index `index` (`uv_if_indextoname`),
/// for instance for an IPv6 scope id: `ENXIO` for no such interface.
pub fn if_indextoname(index: u32) -> Result<String> {
    let b = read_buf(
        "uv_if_indextoname",
        sys::UV_IF_NAMESIZE as usize,
        |p, len| {
            // SAFETY: `p` is writable for `*len` bytes.
            unsafe { sys::uv_if_indextoname(index, p, len) }
        },
    )?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// The interface identifier for an IPv6 scope id (`uv_if_indextoiid`): the name on
/// Unix, the number as text on Windows.
pub fn if_indextoiid(index: u32) -> Result<String> {
    let b = read_buf(
        "uv_if_indextoiid",
        sys::UV_IF_NAMESIZE as usize,
        |p, len| {
            // SAFETY: `p` is writable for `*len` bytes.
            unsafe { sys::uv_if_indextoiid(index, p, len) }
        },
    )?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

// ---------------------------------------------------------------------------
// Processes, users, the host

/// The process id (`uv_os_getpid`).
pub fn getpid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { sys::uv_os_getpid() as u32 }
}

/// The parent process id (`uv_os_getppid`).
pub fn getppid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { sys::uv_os_getppid() as u32 }
}

/// The lowest scheduling priority (`UV_PRIORITY_LOW`).
pub const PRIORITY_LOW: i32 = sys::UV_PRIORITY_LOW as i32;
/// `UV_PRIORITY_BELOW_NORMAL`.
pub const PRIORITY_BELOW_NORMAL: i32 = sys::UV_PRIORITY_BELOW_NORMAL as i32;
/// `UV_PRIORITY_NORMAL`.
pub const PRIORITY_NORMAL: i32 = sys::UV_PRIORITY_NORMAL as i32;
/// `UV_PRIORITY_ABOVE_NORMAL`.
pub const PRIORITY_ABOVE_NORMAL: i32 = sys::UV_PRIORITY_ABOVE_NORMAL;
/// `UV_PRIORITY_HIGH`.
pub const PRIORITY_HIGH: i32 = sys::UV_PRIORITY_HIGH;
/// The highest scheduling priority (`UV_PRIORITY_HIGHEST`).
pub const PRIORITY_HIGHEST: i32 = sys::UV_PRIORITY_HIGHEST;

/// The scheduling priority of process `pid` (0: this process), from
/// [`PRIORITY_HIGHEST`] to [`PRIORITY_LOW`] (`uv_os_getpriority`): `ESRCH` for no
/// such process.
pub fn getpriority(pid: i32) -> Result<i32> {
    let mut prio: c_int = 0;
    // SAFETY: `prio` is writable.
    let rc = unsafe { sys::uv_os_getpriority(pid, &mut prio) };
    check(rc, "uv_os_getpriority")?;
    Ok(prio)
}

/// Sets the scheduling priority of process `pid` (0: this process)
/// (`uv_os_setpriority`): `EINVAL` outside [`PRIORITY_HIGHEST`]..=[`PRIORITY_LOW`],
/// `EACCES`/`EPERM` for raising it without the right to.
pub fn setpriority(pid: i32, priority: i32) -> Result<()> {
    // SAFETY: no preconditions (libuv checks the range).
    let rc = unsafe { sys::uv_os_setpriority(pid, priority) };
    check(rc, "uv_os_setpriority")
}

/// The host name (`uv_os_gethostname`).
pub fn gethostname() -> Result<String> {
    let b = read_buf(
        "uv_os_gethostname",
        sys::UV_MAXHOSTNAMESIZE as usize,
        |p, len| {
            // SAFETY: `p` is writable for `*len` bytes.
            unsafe { sys::uv_os_gethostname(p, len) }
        },
    )?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// System identification (`uv_os_uname`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Uname {
    /// The OS name ("Linux", "Darwin", "Windows_NT").
    pub sysname: String,
    /// The OS release.
    pub release: String,
    /// The OS version.
    pub version: String,
    /// The hardware ("x86_64").
    pub machine: String,
}

/// System identification (`uv_os_uname`).
pub fn uname() -> Result<Uname> {
    // SAFETY: plain C data; all-zero is a valid value.
    let mut u: sys::uv_utsname_t = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is writable.
    check(unsafe { sys::uv_os_uname(&mut u) }, "uv_os_uname")?;
    Ok(Uname {
        sysname: array_string(&u.sysname),
        release: array_string(&u.release),
        version: array_string(&u.version),
        machine: array_string(&u.machine),
    })
}

/// A user account (`uv_passwd_t`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Passwd {
    /// The user name.
    pub username: String,
    /// The user id (`None` on Windows).
    pub uid: Option<u64>,
    /// The primary group id (`None` on Windows).
    pub gid: Option<u64>,
    /// The login shell (`None` on Windows).
    pub shell: Option<PathBuf>,
    /// The home directory.
    pub homedir: PathBuf,
}

fn passwd(op: &'static str, f: impl FnOnce(*mut sys::uv_passwd_t) -> c_int) -> Result<Passwd> {
    // SAFETY: plain C data; all-zero is a valid value.
    let mut pw: sys::uv_passwd_t = unsafe { std::mem::zeroed() };
    check(f(&mut pw), op)?;
    // `c_ulong` is 32 bits on Windows.
    #[allow(clippy::useless_conversion)]
    let id = |v: std::ffi::c_ulong| cfg!(unix).then_some(u64::from(v));
    // SAFETY: filled in by libuv: NUL-terminated strings (shell NULL on Windows),
    // freed once right after they are copied.
    let out = unsafe {
        Passwd {
            username: c_string(pw.username),
            uid: id(pw.uid),
            gid: id(pw.gid),
            shell: (!pw.shell.is_null()).then(|| bytes_to_os(c_bytes(pw.shell)).into()),
            homedir: bytes_to_os(c_bytes(pw.homedir)).into(),
        }
    };
    // SAFETY: as above.
    unsafe { sys::uv_os_free_passwd(&mut pw) };
    Ok(out)
}

/// The effective user's account (`uv_os_get_passwd`).
pub fn get_passwd() -> Result<Passwd> {
    // SAFETY: `p` is writable.
    passwd("uv_os_get_passwd", |p| unsafe { sys::uv_os_get_passwd(p) })
}

/// The account of user `uid` (`uv_os_get_passwd2`): `ENOENT` for no such user;
/// `ENOTSUP` on Windows.
#[cfg(unix)]
pub fn get_passwd_by_uid(uid: u32) -> Result<Passwd> {
    // SAFETY: `p` is writable.
    passwd("uv_os_get_passwd2", |p| unsafe {
        sys::uv_os_get_passwd2(p, uid)
    })
}

/// A group (`uv_group_t`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Group {
    /// The group name.
    pub groupname: String,
    /// The group id.
    pub gid: u64,
    /// The member user names.
    pub members: Vec<String>,
}

/// The group `gid` (`uv_os_get_group`): `ENOENT` for no such group.
#[cfg(unix)]
pub fn get_group(gid: u32) -> Result<Group> {
    // SAFETY: plain C data; all-zero is a valid value.
    let mut g: sys::uv_group_t = unsafe { std::mem::zeroed() };
    // SAFETY: `g` is writable.
    let rc = unsafe { sys::uv_os_get_group(&mut g, gid) };
    check(rc, "uv_os_get_group")?;
    let mut members = Vec::new();
    if !g.members.is_null() {
        let mut i = 0;
        loop {
            // SAFETY: a NULL-terminated array of NUL-terminated strings.
            let m = unsafe { *g.members.add(i) };
            if m.is_null() {
                break;
            }
            // SAFETY: as above.
            members.push(unsafe { c_string(m) });
            i += 1;
        }
    }
    let out = Group {
        // SAFETY: a NUL-terminated string libuv filled in.
        groupname: unsafe { c_string(g.groupname) },
        gid: g.gid as u64,
        members,
    };
    // SAFETY: filled in by uv_os_get_group, freed once after the copy.
    unsafe { sys::uv_os_free_group(&mut g) };
    Ok(out)
}

/// The current user's home directory (`uv_os_homedir`): `HOME` if set, else the
/// account's.
pub fn homedir() -> Result<PathBuf> {
    let b = read_buf("uv_os_homedir", 256, |p, len| {
        // SAFETY: `p` is writable for `*len` bytes.
        unsafe { sys::uv_os_homedir(p, len) }
    })?;
    Ok(bytes_to_os(b).into())
}

/// The temporary directory (`uv_os_tmpdir`): `TMPDIR` (and the like) if set, else
/// `/tmp` (trailing slash removed).
pub fn tmpdir() -> Result<PathBuf> {
    let b = read_buf("uv_os_tmpdir", 256, |p, len| {
        // SAFETY: `p` is writable for `*len` bytes.
        unsafe { sys::uv_os_tmpdir(p, len) }
    })?;
    Ok(bytes_to_os(b).into())
}

/// The path of the running executable (`uv_exepath`).
pub fn exepath() -> Result<PathBuf> {
    // uv_exepath truncates to the buffer instead of answering ENOBUFS: a result
    // that fills the buffer is read again with a larger one.
    let mut cap = 4097usize;
    loop {
        let mut buf = vec![0u8; cap];
        let mut len = cap;
        // SAFETY: `buf` is writable for `len` bytes.
        let rc = unsafe { sys::uv_exepath(buf.as_mut_ptr().cast(), &mut len) };
        check(rc, "uv_exepath")?;
        if len + 1 < cap || cap >= 1 << 20 {
            buf.truncate(len.min(cap));
            return Ok(bytes_to_os(buf).into());
        }
        cap *= 4;
    }
}

/// The current working directory (`uv_cwd`).
pub fn cwd() -> Result<PathBuf> {
    let b = read_buf("uv_cwd", 256, |p, len| {
        // SAFETY: `p` is writable for `*len` bytes.
        unsafe { sys::uv_cwd(p, len) }
    })?;
    Ok(bytes_to_os(b).into())
}

/// Changes the current working directory (`uv_chdir`): `ENOENT` for a missing
/// directory, `EINVAL` for a path with a NUL byte.
pub fn chdir(dir: impl AsRef<Path>) -> Result<()> {
    let c = crate::runtime::c_path(dir.as_ref(), "uv_chdir")?;
    // SAFETY: a NUL-terminated path.
    check(unsafe { sys::uv_chdir(c.as_ptr()) }, "uv_chdir")
}

// ---------------------------------------------------------------------------
// Environment

/// The value of environment variable `name` (`uv_os_getenv`): `None` when it is not
/// set; `EINVAL` for a name with a NUL byte.
pub fn getenv(name: impl AsRef<OsStr>) -> Result<Option<OsString>> {
    const OP: &str = "uv_os_getenv";
    let c = c_arg(name.as_ref(), OP)?;
    match read_buf(OP, 256, |p, len| {
        // SAFETY: `p` is writable for `*len` bytes; `c` is NUL-terminated.
        unsafe { sys::uv_os_getenv(c.as_ptr(), p, len) }
    }) {
        Ok(b) => Ok(Some(bytes_to_os(b))),
        Err(e) if e.code() == StatusCode::ENOENT => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets environment variable `name` (`uv_os_setenv`): `EINVAL` for a NUL byte in
/// either, an empty name or one with `=`.
///
/// # Safety
/// Like `std::env::set_var`: no other thread may read or write the environment
/// meanwhile (C's `getenv` included, which libraries call behind the scenes, such
/// as the resolver on libuv's thread pool). Single-threaded programs, and the
/// start of `main` before any thread is spawned, are fine.
pub unsafe fn setenv(name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Result<()> {
    const OP: &str = "uv_os_setenv";
    let (n, v) = (name.as_ref(), value.as_ref());
    if n.is_empty() || os_bytes(n).contains(&b'=') {
        return Err(Error::new(StatusCode::EINVAL, OP));
    }
    let (n, v) = (c_arg(n, OP)?, c_arg(v, OP)?);
    // SAFETY: NUL-terminated strings; the caller keeps other threads off the
    // environment.
    check(unsafe { sys::uv_os_setenv(n.as_ptr(), v.as_ptr()) }, OP)
}

/// Removes environment variable `name` (`uv_os_unsetenv`); removing one that is
/// not set succeeds. `EINVAL` as for [`setenv`].
///
/// # Safety
/// As for [`setenv`].
pub unsafe fn unsetenv(name: impl AsRef<OsStr>) -> Result<()> {
    const OP: &str = "uv_os_unsetenv";
    let n = name.as_ref();
    if n.is_empty() || os_bytes(n).contains(&b'=') {
        return Err(Error::new(StatusCode::EINVAL, OP));
    }
    let n = c_arg(n, OP)?;
    // SAFETY: a NUL-terminated string; the caller keeps other threads off the
    // environment.
    check(unsafe { sys::uv_os_unsetenv(n.as_ptr()) }, OP)
}

/// Every environment variable, in the environment's order (`uv_os_environ`, then
/// `uv_os_free_environ`).
pub fn environ() -> Result<Vec<(OsString, OsString)>> {
    let mut p: *mut sys::uv_env_item_t = std::ptr::null_mut();
    let mut n: c_int = 0;
    // SAFETY: both out-parameters are writable.
    let rc = unsafe { sys::uv_os_environ(&mut p, &mut n) };
    check(rc, "uv_os_environ")?;
    let count = usize::try_from(n).unwrap_or(0);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: an array of `n` entries of NUL-terminated strings.
        let e = unsafe { &*p.add(i) };
        // SAFETY: as above.
        out.push(unsafe { (bytes_to_os(c_bytes(e.name)), bytes_to_os(c_bytes(e.value))) });
    }
    // SAFETY: the array uv_os_environ returned, freed once with its count.
    unsafe { sys::uv_os_free_environ(p, n) };
    Ok(out)
}

// ---------------------------------------------------------------------------
// Process title

/// How many bytes a process title can have (longer ones are cut, libuv's rule).
pub const PROCESS_TITLE_CAPACITY: usize = 1023;

/// libuv keeps the title in the memory `uv_setup_args` was given (it writes titles
/// there), so that memory must stay put and be one block. Rust does not hand out
/// the process's own `argv`: this gives libuv a block of ours, leaked, once: the
/// first argument, then a filler argument that makes room for titles up to
/// `PROCESS_TITLE_CAPACITY` bytes. libuv copies the arguments aside (its copy is
/// freed at its shutdown); the returned copy is not used.
fn setup_args() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        let mut arg0 = std::env::args_os()
            .next()
            .map(|a| os_bytes(&a))
            .unwrap_or_default();
        // Room for the filler's NUL too: a longer first argument (a program
        // started with an argv[0] of 1023 bytes or more) left no room for it.
        arg0.truncate(PROCESS_TITLE_CAPACITY - 1);
        let total = PROCESS_TITLE_CAPACITY + 1;
        // arg0, NUL, filler, NUL: libuv's capacity is the span of both.
        let filler = total - arg0.len() - 2;
        let mut block = arg0;
        block.push(0);
        let filler_at = block.len();
        block.resize(filler_at + filler, b' ');
        block.push(0);
        let block: &'static mut [u8] = Box::leak(block.into_boxed_slice());
        let base = block.as_mut_ptr();
        // The pointer array is read during the call only (libuv copies the strings
        // and keeps a pointer into the block, not into the array).
        // SAFETY: both offsets are inside the block.
        let mut argv: [*mut c_char; 3] = unsafe {
            [
                base.cast(),
                base.add(filler_at).cast(),
                std::ptr::null_mut(),
            ]
        };
        let argv = argv.as_mut_ptr();
        // SAFETY: two NUL-terminated strings in one block that lives forever (the
        // title is written there); the once-lock keeps this to one call, made
        // before any title call of this module.
        let copy = unsafe { sys::uv_setup_args(2, argv) };
        // libuv hands back the array it was given when it could not copy it.
        copy != argv
    });
    if ok {
        Ok(())
    } else {
        Err(Error::new(StatusCode::ENOMEM, "uv_setup_args"))
    }
}

/// The process title (`uv_get_process_title`): at first the program's first
/// argument, then what [`set_process_title`] set.
///
/// `uv_setup_args`, which libuv requires before any title call (it aborts or
/// answers `ENOBUFS` without it), is done here on first use, on a copy of the
/// first argument: on Linux the title then reaches the thread name (`prctl`,
/// 15 bytes: what `top` shows) but not `ps`'s argument list.
pub fn process_title() -> Result<String> {
    setup_args()?;
    let b = read_buf("uv_get_process_title", 64, |p, len| {
        // SAFETY: `p` is writable for `*len` bytes; the arguments are set up.
        let rc = unsafe { sys::uv_get_process_title(p, *len) };
        if rc == 0 {
            // SAFETY: on success libuv wrote a NUL-terminated title into `p`;
            // `len` is writable.
            unsafe { *len = CStr::from_ptr(p).to_bytes().len() };
        }
        rc
    })?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// Sets the process title (`uv_set_process_title`); titles longer than
/// [`PROCESS_TITLE_CAPACITY`] bytes are cut at the last whole character that fits
/// (libuv would cut inside one). `EINVAL` for a NUL byte.
pub fn set_process_title(title: &str) -> Result<()> {
    let mut end = title.len().min(PROCESS_TITLE_CAPACITY);
    while !title.is_char_boundary(end) {
        end -= 1;
    }
    if title.as_bytes()[end..].contains(&0) {
        return Err(Error::new(StatusCode::EINVAL, "uv_set_process_title"));
    }
    let c = crate::runtime::c_str(&title[..end], "uv_set_process_title")?;
    setup_args()?;
    // SAFETY: a NUL-terminated string; the arguments are set up.
    let rc = unsafe { sys::uv_set_process_title(c.as_ptr()) };
    check(rc, "uv_set_process_title")
}

// ---------------------------------------------------------------------------
// Type names

impl HandleType {
    /// libuv's name for the type (`uv_handle_type_name`): "tcp", "timer", ...;
    /// `None` for `Unknown` and values libuv does not know.
    pub fn c_name(self) -> Option<&'static str> {
        let raw = self.raw();
        if !(1..sys::uv_handle_type_UV_HANDLE_TYPE_MAX as i32).contains(&raw) {
            return None;
        }
        // SAFETY: a type in libuv's range; libuv returns a static string or NULL.
        let p = unsafe { sys::uv_handle_type_name(raw as sys::uv_handle_type) };
        // SAFETY: static NUL-terminated strings.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap_or(""))
    }
}

impl RequestType {
    /// libuv's name for the type (`uv_req_type_name`): "write", "work", ...;
    /// `None` for `Unknown` and values libuv does not know.
    pub fn c_name(self) -> Option<&'static str> {
        let raw = self.raw();
        if !(1..sys::uv_req_type_UV_REQ_TYPE_MAX as i32).contains(&raw) {
            return None;
        }
        // SAFETY: a type in libuv's range; libuv returns a static string or NULL.
        let p = unsafe { sys::uv_req_type_name(raw as sys::uv_req_type) };
        // SAFETY: static NUL-terminated strings.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap_or(""))
    }
}

// ---------------------------------------------------------------------------
// The loop's utilities

/// Loop counters (`uv_metrics_t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Loop iterations so far.
    pub loop_count: u64,
    /// Events the event provider reported.
    pub events: u64,
    /// Events that were waiting when the event provider was asked.
    pub events_waiting: u64,
}

impl LoopHandle {
    fn raw_loop(&self, op: &'static str) -> Result<*mut sys::uv_loop_t> {
        self.shared().raw().ok_or_else(|| Error::closed_loop(op))
    }

    /// The loop's counters (`uv_metrics_info`).
    pub fn metrics_info(&self) -> Result<Metrics> {
        let raw = self.raw_loop("uv_metrics_info")?;
        // SAFETY: plain C data; all-zero is a valid value.
        let mut m: sys::uv_metrics_t = unsafe { std::mem::zeroed() };
        // SAFETY: the loop is open; `m` is writable.
        let rc = unsafe { sys::uv_metrics_info(raw, &mut m) };
        check(rc, "uv_metrics_info")?;
        Ok(Metrics {
            loop_count: m.loop_count,
            events: m.events,
            events_waiting: m.events_waiting,
        })
    }

    /// Re-creates the loop's kernel state in a child process after `fork()`
    /// (`uv_loop_fork`): call it in the child before anything else uses the loop,
    /// once per fork.
    ///
    /// A loop the child does not re-create shares its epoll instance with the
    /// parent's: using it in the child changes what the parent's loop watches.
    /// Dropping it there makes no libuv call that changes that state (its
    /// functions answer `ClosedLoop` to the code its drop runs; its handles
    /// answer `ClosedHandle`, their close callbacks are dropped unrun and their
    /// other callbacks dropped, as a close drops them (a future or stream waiting
    /// on one ends as when its handle closes); a signal handle's watch is stopped
    /// (which changes only the child's own signal table), so that the child's
    /// deliveries of that signal no longer reach the parent's loop; the requests
    /// in flight on the handles
    /// complete as a close of the handles would complete them (a connect, a
    /// shutdown and a write not finished with `ECANCELED`, a write or a datagram
    /// send finished with its result), wake-ups end with it, and its memory is
    /// leaked), so that the parent's loop keeps its watches. Its watch of
    /// `SIGCHLD` for its processes (libuv's own) is stopped as a signal handle's.
    /// Until the child re-creates or drops it, a signal one of its
    /// `Signal` handles watches, delivered in the child, is dropped: libuv's
    /// handler and table of watched signals are inherited, and its delivery
    /// would go to the loop's signal pipe, which is the parent's (the parent's
    /// callback ran for a signal only the child got, or read a handle the
    /// parent had closed since), so the crate's `pthread_atfork` child handler
    /// makes the child's copy of every loop's pipe write into a full pipe of the
    /// child's own; this re-creates the pipe. The loops whose run is on the
    /// forking thread's stack (a fork inside a callback, after which the child
    /// goes on running them while the parent waits) keep the pipe they read
    /// until that run ends, so that such a child hears of its signals; what such
    /// a child leaves unread in that pipe (a signal it caught just before it
    /// exits, inside the callback) reaches the parent's loop, which reads
    /// freed memory for a handle the parent closed since: a child forked inside
    /// a callback must not catch the signals the parent's loops watch. A child that
    /// keeps running with the parent's loops re-creates or drops them first:
    /// until then `run` (and `block_on`), new thread-pool requests
    /// (file system, `queue_work`, `random`, DNS), new signal watches
    /// ([`Signal::start`](crate::Signal::start), `start_oneshot`: the child's
    /// deliveries would reach the parent's loop, naming a handle of the child's
    /// memory), [`Process::spawn`](crate::Process::spawn), new
    /// [`Poll`](crate::Poll) handles and the starts and stops of poll handles
    /// (libuv probes and removes their descriptor in the shared epoll instance),
    /// of file watchers (the shared inotify instance) and of stat pollers (the
    /// thread pool) on the loop are `EINVAL`, and a
    /// [`Request::cancel`](crate::Request::cancel) of one the parent started is
    /// `EBUSY`. A close of a stream, UDP, poll or file-watch handle (its
    /// `close`, or the drop of its last value where its lifetime rule closes
    /// it) is put off: the handle is closing from then on (`ClosedHandle`),
    /// and libuv closes it when this re-creates the loop (its close callback
    /// runs in the loop's next iteration), or never, if the child drops the
    /// loop first (as above); libuv's close would take the descriptor's watch
    /// out of the epoll instance the parent's loop uses. `Tcp::close_reset` is
    /// `EINVAL` then. Such handles do not keep [`Loop::close`](crate::Loop::close)
    /// from closing the loop (which abandons it, as its drop). A close made while
    /// the loop runs is made at once: in a child forked from inside a callback
    /// (which runs the parent's loop from then on), and in the callbacks this
    /// runs once it has re-created the loop. A parent and a child forked from
    /// inside a callback must not both go on running the loop: they share
    /// libuv's submission ring, and libuv aborts when two processes race on it
    /// (`linux.c` `uv__epoll_ctl_flush`); the parent waits for the child, or the
    /// child leaves the callback only to exit.
    ///
    /// The lock of the loop's queue of finished thread-pool requests, which a
    /// thread of the parent may have held at the fork (a pool thread, for the
    /// moment it adds the request it finished), is made anew when held: no
    /// thread of the child would ever release it.
    ///
    /// The thread-pool requests the loop had in flight at the fork are the
    /// parent's pool's: no thread of the child runs them. When the child drops
    /// the loop, or re-creates it (here, before this returns), they complete
    /// there: one the pool finished before the fork with its result, the others
    /// with `ECANCELED` (`EAI_CANCELED` for a DNS query) unless what they left
    /// shows their work was done (a `queue_work` job that ran gives its value); a
    /// job that never ran is dropped, one a pool thread was running is not (what
    /// it holds stays with that thread, which the child does not have).
    ///
    /// `EINVAL` in the process the loop's state already belongs to: the one that
    /// made the loop (there is nothing to re-create, and closing the loop's
    /// descriptors while other threads wake the loop through them aborts), or a child
    /// that already called it. `EBUSY` from inside a callback of the loop; `ENOSYS`
    /// on Windows.
    ///
    /// A file watcher (`FsEvent`) whose path cannot be watched again (it was removed)
    /// is stopped, and its error (`ENOENT`, …) is returned once the rest of the loop
    /// has been re-created all the same (the other file watchers keep watching:
    /// libuv leaves those it had not re-armed yet stopped, and they are started
    /// again). Any other error (the kernel refused a new
    /// epoll instance, eventfd or pipe: `EMFILE`, ...) leaves the loop unusable:
    /// it is not re-created, so `run`, `block_on` and new thread-pool requests stay
    /// `EINVAL` (as are later calls of this), and its drop abandons it as a forked
    /// child's; the parent's thread-pool requests complete all the same.
    pub fn after_fork(&self) -> Result<()> {
        let raw = self.raw_loop("uv_loop_fork")?;
        if self.is_running() {
            return Err(Error::new(StatusCode::EBUSY, "uv_loop_fork"));
        }
        let shared = self.shared();
        crate::contracts::forked_child(shared.kernel_pid.get(), "uv_loop_fork")?;
        // Whatever the outcome, the loop's descriptors are this process's now (or
        // gone): a second call here is refused.
        // SAFETY: the loop is open and not running; `loop_fork` re-creates it
        // (or leaves it as re-created as it can: its error is returned), and the
        // requests it held on the parent's thread pool complete after; the
        // loop's fields stay readable whatever the outcome.
        unsafe {
            let (rc, re_created) = crate::contracts::loop_fork(raw);
            // The new signal pipe is the one a later fork's child takes over
            // (this child's handler took the loop out of the registry).
            #[cfg(unix)]
            shared.note_signal_loop();
            shared.re_created(re_created);
            check(rc, "uv_loop_fork")
        }
    }

    /// Writes libuv's list of every handle of the loop to `out`
    /// (`uv_print_all_handles`): one line each, `[flags] type address`, where the
    /// flags are `R` (referenced), `A` (active) and `I` (internal). Meant for
    /// debugging; internal handles included.
    #[cfg(unix)]
    pub fn print_all_handles(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        self.print_handles(out, "uv_print_all_handles", sys::uv_print_all_handles)
    }

    /// As [`print_all_handles`](LoopHandle::print_all_handles), the active handles
    /// only (`uv_print_active_handles`).
    #[cfg(unix)]
    pub fn print_active_handles(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        self.print_handles(out, "uv_print_active_handles", sys::uv_print_active_handles)
    }

    #[cfg(unix)]
    fn print_handles(
        &self,
        out: &mut impl std::io::Write,
        op: &'static str,
        print: unsafe extern "C" fn(*mut sys::uv_loop_t, *mut sys::FILE),
    ) -> std::io::Result<()> {
        let raw = self.raw_loop(op)?;
        let mut ptr: *mut c_char = std::ptr::null_mut();
        let mut size: usize = 0;
        // A memory stream: libc grows the buffer and hands it over at `fclose`.
        // SAFETY: both out-parameters stay valid until `fclose`.
        let f = unsafe { libc::open_memstream(&mut ptr, &mut size) };
        if f.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the loop is open; `f` is an open stream (libc's FILE is the C
        // FILE bindgen names `sys::FILE`).
        unsafe { print(raw, f.cast()) };
        // SAFETY: opened above, closed once; afterwards `ptr`/`size` hold the text.
        let rc = unsafe { libc::fclose(f) };
        let text = if ptr.is_null() {
            Vec::new()
        } else {
            // SAFETY: libc's buffer of `size` bytes, freed once after the copy.
            unsafe {
                let v = std::slice::from_raw_parts(ptr.cast::<u8>(), size).to_vec();
                libc::free(ptr.cast());
                v
            }
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        out.write_all(&text)
    }
}
