//! `uv::system` and the loop's utilities: libuv's test-env-vars.c, test-get-memory.c,
//! test-hrtime.c, test-homedir.c, test-tmpdir.c, test-process-title.c and
//! test-gethostname.c, plus sanity checks of the rest against `std` and `libc`.
//! Also `Stream::try_write2`.
//!
//! Every test takes one lock: some change process-wide state (the environment, the
//! working directory, the process title), and `setenv`'s contract is that no other
//! thread reads the environment meanwhile.
#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::ffi::OsString;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uv::system;
use uv::{RunMode, StatusCode};

fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets (or removes) a variable for the scope of a test, under `lock()`.
struct EnvVar {
    name: &'static str,
    old: Option<OsString>,
}

impl EnvVar {
    fn set(name: &'static str, value: Option<&str>) -> EnvVar {
        let old = system::getenv(name).unwrap();
        // SAFETY: every test of this file holds `lock()`; nothing else runs threads
        // that read the environment meanwhile.
        unsafe {
            match value {
                Some(v) => system::setenv(name, v).unwrap(),
                None => system::unsetenv(name).unwrap(),
            }
        }
        EnvVar { name, old }
    }
}

impl Drop for EnvVar {
    fn drop(&mut self) {
        // SAFETY: as in `set`.
        unsafe {
            match &self.old {
                Some(v) => system::setenv(self.name, v).unwrap(),
                None => system::unsetenv(self.name).unwrap(),
            }
        }
    }
}

#[test]
fn env_vars() {
    // test-env-vars.c.
    let _l = lock();
    const NAME: &str = "UV_TEST_FOO";
    let _restore = EnvVar::set(NAME, None);
    assert_eq!(system::getenv(NAME).unwrap(), None);
    // SAFETY: under `lock()` (see the file's doc).
    unsafe {
        assert_eq!(
            system::setenv("", "x").unwrap_err().code(),
            StatusCode::EINVAL
        );
        assert_eq!(
            system::setenv("A=B", "x").unwrap_err().code(),
            StatusCode::EINVAL
        );
        assert_eq!(
            system::setenv("A\0B", "x").unwrap_err().code(),
            StatusCode::EINVAL
        );
        assert_eq!(
            system::setenv(NAME, "a\0b").unwrap_err().code(),
            StatusCode::EINVAL
        );
        assert_eq!(system::unsetenv("").unwrap_err().code(), StatusCode::EINVAL);
        system::setenv(NAME, "foo").unwrap();
    }
    assert_eq!(system::getenv(NAME).unwrap(), Some(OsString::from("foo")));
    assert_eq!(
        std::env::var(NAME).unwrap(),
        "foo",
        "std sees libuv's change"
    );
    assert_eq!(
        system::getenv("A\0B").unwrap_err().code(),
        StatusCode::EINVAL
    );
    // A value longer than the first buffer: grown on ENOBUFS.
    let long = "x".repeat(5000);
    // SAFETY: under `lock()`.
    unsafe { system::setenv(NAME, &long).unwrap() };
    assert_eq!(system::getenv(NAME).unwrap(), Some(OsString::from(&long)));
    // SAFETY: under `lock()`.
    unsafe { system::setenv(NAME, "").unwrap() };
    assert_eq!(system::getenv(NAME).unwrap(), Some(OsString::new()));
    // SAFETY: under `lock()`.
    unsafe { system::setenv(NAME, "bar").unwrap() };
    let all = system::environ().unwrap();
    assert!(all.contains(&(OsString::from(NAME), OsString::from("bar"))));
    let mut std_all: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let mut ours = all.clone();
    std_all.sort();
    ours.sort();
    assert_eq!(ours, std_all, "environ lists what std lists");
    // SAFETY: under `lock()`.
    unsafe {
        system::unsetenv(NAME).unwrap();
        system::unsetenv(NAME).unwrap(); // not set: still fine
    }
    assert_eq!(system::getenv(NAME).unwrap(), None);
    assert!(!system::environ().unwrap().iter().any(|(n, _)| n == NAME));
}

#[test]
fn get_memory() {
    // test-get-memory.c.
    let _l = lock();
    let free = system::free_memory();
    let total = system::total_memory();
    let available = system::available_memory();
    assert!(free > 0);
    assert!(total > free);
    assert!(available <= total);
    if let Some(c) = system::constrained_memory() {
        assert!(c > 0);
    }
    let rss = system::resident_set_memory().unwrap();
    assert!(rss > 0 && (rss as u64) < total);
}

#[test]
fn hrtime_and_sleep() {
    // test-hrtime.c (3 rounds instead of 75).
    let _l = lock();
    for _ in 0..3 {
        let a = system::hrtime();
        system::sleep(Duration::from_millis(45));
        let b = system::hrtime();
        assert!(b - a > Duration::from_millis(25), "{:?}", b - a);
    }
}

#[test]
fn clock_gettime() {
    // test-hrtime.c, clock_gettime.
    let _l = lock();
    assert_eq!(
        system::clock_gettime(uv::ClockId::Other(1337))
            .unwrap_err()
            .code(),
        StatusCode::EINVAL
    );
    let m1 = system::clock_gettime(uv::ClockId::Monotonic).unwrap();
    let m2 = system::clock_gettime(uv::ClockId::Monotonic).unwrap();
    assert!(m2 >= m1);
    let real = system::clock_gettime(uv::ClockId::Realtime).unwrap();
    assert!(real.as_secs() > 1_682_500_000); // 2023-04-26
    let std_now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert!(std_now.abs_diff(real) < Duration::from_secs(5));
    let tod = system::gettimeofday().unwrap();
    let diff = SystemTime::now().duration_since(tod).unwrap_or_default();
    assert!(diff < Duration::from_secs(5));
}

#[test]
fn homedir() {
    // test-homedir.c: no trailing slash; HOME wins; a long one grows the buffer.
    let _l = lock();
    let home = system::homedir().unwrap();
    let s = home.to_str().unwrap();
    assert!(!s.is_empty());
    assert!(s == "/" || !s.ends_with('/'));
    let long = format!("/{}", "h".repeat(600));
    let _h = EnvVar::set("HOME", Some(&long));
    assert_eq!(system::homedir().unwrap(), PathBuf::from(&long));
    // Without HOME, the account's.
    let _h2 = EnvVar::set("HOME", None);
    assert_eq!(
        system::homedir().unwrap(),
        system::get_passwd().unwrap().homedir
    );
}

#[test]
fn tmpdir() {
    // test-tmpdir.c.
    let _l = lock();
    let _t = EnvVar::set("TMPDIR", None);
    let _t2 = EnvVar::set("TMP", None);
    let _t3 = EnvVar::set("TEMP", None);
    let _t4 = EnvVar::set("TEMPDIR", None);
    assert_eq!(system::tmpdir().unwrap(), PathBuf::from("/tmp"));
    let long = format!("/{}/", "t".repeat(600));
    let _t5 = EnvVar::set("TMPDIR", Some(&long));
    assert_eq!(
        system::tmpdir().unwrap(),
        PathBuf::from(long.trim_end_matches('/')),
        "the trailing slash goes"
    );
}

#[test]
fn gethostname() {
    // test-gethostname.c, against libc.
    let _l = lock();
    let name = system::gethostname().unwrap();
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(rc, 0);
    let end = buf.iter().position(|&b| b == 0).unwrap();
    assert_eq!(name.as_bytes(), &buf[..end]);
    assert!(!name.is_empty());
}

#[test]
fn process_title() {
    // test-process-title.c.
    let _l = lock();
    let first = system::process_title().unwrap();
    let arg0 = std::env::args().next().unwrap();
    // The title starts as the first argument (unless another test set it).
    assert!(first == arg0 || first.starts_with("uv title"), "{first:?}");
    for title in ["%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s", "uv title"] {
        system::set_process_title(title).unwrap();
        assert_eq!(system::process_title().unwrap(), title);
    }
    // Linux: the calling thread's name is the title's first 15 bytes.
    #[cfg(target_os = "linux")]
    assert_eq!(
        std::fs::read_to_string("/proc/thread-self/comm")
            .unwrap()
            .trim_end(),
        "uv title"
    );
    assert_eq!(
        system::set_process_title("a\0b").unwrap_err().code(),
        StatusCode::EINVAL
    );
    // Longer than the capacity: cut there.
    let long = "t".repeat(system::PROCESS_TITLE_CAPACITY + 100);
    system::set_process_title(&long).unwrap();
    assert_eq!(
        system::process_title().unwrap(),
        long[..system::PROCESS_TITLE_CAPACITY]
    );
    system::set_process_title("uv title").unwrap();
}

#[test]
fn process_title_threadsafe() {
    // test-process-title-threadsafe.c: titles set from several threads while one
    // reads; every read is one of the titles.
    let _l = lock();
    const TITLES: [&str; 4] = ["uv title 1", "uv title two", "uv title 3 three", "uv title"];
    // One of the titles from the start: the reader may run before any thread set
    // one (the initial title is the command line).
    system::set_process_title(TITLES[3]).unwrap();
    let threads: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..200 {
                    system::set_process_title(TITLES[i]).unwrap();
                }
            })
        })
        .collect();
    for _ in 0..200 {
        let t = system::process_title().unwrap();
        assert!(TITLES.contains(&t.as_str()), "{t:?}");
    }
    for t in threads {
        t.join().unwrap();
    }
    system::set_process_title("uv title").unwrap();
}

#[test]
fn pids_and_priority() {
    let _l = lock();
    assert_eq!(system::getpid(), std::process::id());
    // SAFETY: getppid has no preconditions.
    assert_eq!(system::getppid(), unsafe { libc::getppid() } as u32);
    let prio = system::getpriority(0).unwrap();
    assert!((system::PRIORITY_HIGHEST..=system::PRIORITY_LOW).contains(&prio));
    assert_eq!(system::getpriority(system::getpid() as i32).unwrap(), prio);
    // Same priority again: allowed without privileges.
    system::setpriority(0, prio).unwrap();
    assert_eq!(
        system::setpriority(0, system::PRIORITY_LOW + 1)
            .unwrap_err()
            .code(),
        StatusCode::EINVAL
    );
    assert_eq!(
        system::getpriority(i32::MAX).unwrap_err().code(),
        StatusCode::ESRCH
    );
}

#[test]
fn cwd_chdir_exepath() {
    let _l = lock();
    let here = system::cwd().unwrap();
    assert_eq!(here, std::env::current_dir().unwrap());
    let tmp = std::env::temp_dir().canonicalize().unwrap();
    system::chdir(&tmp).unwrap();
    let moved = system::cwd();
    system::chdir(&here).unwrap();
    assert_eq!(moved.unwrap(), tmp);
    assert_eq!(std::env::current_dir().unwrap(), here);
    assert_eq!(
        system::chdir("/no/such/dir/uv").unwrap_err().code(),
        StatusCode::ENOENT
    );
    assert_eq!(
        system::chdir("a\0b").unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(system::exepath().unwrap(), std::env::current_exe().unwrap());
}

#[test]
fn uname_against_libc() {
    let _l = lock();
    let u = system::uname().unwrap();
    // SAFETY: plain C data, filled in by uname.
    let mut raw: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `raw` is writable.
    assert_eq!(unsafe { libc::uname(&mut raw) }, 0);
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8(bytes).unwrap()
    };
    assert_eq!(u.sysname, field(&raw.sysname));
    assert_eq!(u.release, field(&raw.release));
    assert_eq!(u.version, field(&raw.version));
    assert_eq!(u.machine, field(&raw.machine));
    #[cfg(target_os = "linux")]
    assert_eq!(u.sysname, "Linux");
}

#[test]
fn passwd_and_group() {
    let _l = lock();
    let me = system::get_passwd().unwrap();
    // SAFETY: no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    assert_eq!(me.uid, Some(u64::from(euid)));
    assert!(me.shell.is_some());
    assert!(!me.username.is_empty());
    assert_eq!(system::get_passwd_by_uid(euid).unwrap(), me);
    let root = system::get_passwd_by_uid(0).unwrap();
    assert_eq!(
        (root.username.as_str(), root.uid, root.gid),
        ("root", Some(0), Some(0))
    );
    let g = system::get_group(0).unwrap();
    assert_eq!(g.gid, 0);
    assert_eq!(g.groupname, "root");
    let mine = system::get_group(egid).unwrap();
    assert_eq!(mine.gid, u64::from(egid));
    assert_eq!(
        system::get_passwd_by_uid(u32::MAX - 7).unwrap_err().code(),
        StatusCode::ENOENT
    );
    assert_eq!(
        system::get_group(u32::MAX - 7).unwrap_err().code(),
        StatusCode::ENOENT
    );
}

#[test]
fn cpus() {
    let _l = lock();
    let cpus = system::cpu_info().unwrap();
    let par = system::available_parallelism();
    assert!(par >= 1);
    assert!(
        cpus.len() >= par as usize,
        "{} cpus, parallelism {par}",
        cpus.len()
    );
    for c in &cpus {
        let t = c.times;
        assert!(t.user + t.sys + t.idle > Duration::ZERO, "{c:?}");
    }
    #[cfg(target_os = "linux")]
    assert!(system::cpumask_size().unwrap() >= cpus.len());
}

#[test]
fn interfaces() {
    let _l = lock();
    let all = system::interface_addresses().unwrap();
    let lo = all
        .iter()
        .find(|a| a.address == std::net::IpAddr::from([127, 0, 0, 1]))
        .expect("a loopback address");
    assert!(lo.is_internal);
    assert_eq!(lo.netmask, std::net::IpAddr::from([255, 0, 0, 0]));
    assert_eq!(lo.mac, [0; 6]);
    let name = std::ffi::CString::new(lo.name.clone()).unwrap();
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(index > 0);
    assert_eq!(system::if_indextoname(index).unwrap(), lo.name);
    assert_eq!(system::if_indextoiid(index).unwrap(), lo.name);
    assert_eq!(
        system::if_indextoname(u32::MAX).unwrap_err().code(),
        StatusCode::ENXIO
    );
}

#[test]
fn rusage_uptime_loadavg() {
    let _l = lock();
    // Spend a little CPU time.
    let mut x = 0u64;
    for i in 0..5_000_000u64 {
        x = x.wrapping_mul(31).wrapping_add(i);
    }
    std::hint::black_box(x);
    let ru = system::getrusage().unwrap();
    assert!(ru.user_time + ru.system_time > Duration::ZERO);
    assert!(ru.max_rss > 0);
    let th = system::getrusage_thread().unwrap();
    assert!(th.user_time <= ru.user_time + Duration::from_millis(10));
    assert!(system::uptime().unwrap() > Duration::ZERO);
    let avg = system::loadavg();
    assert!(avg.iter().all(|&a| a >= 0.0 && a.is_finite()));
}

#[test]
fn version() {
    let _l = lock();
    let v = system::version();
    assert_eq!((v.major, v.minor), (1, 53));
    assert!(system::version_string().starts_with(&format!("{}.{}.{}", v.major, v.minor, v.patch)));
}

#[test]
fn type_names() {
    let _l = lock();
    assert_eq!(uv::HandleType::Tcp.c_name(), Some("tcp"));
    assert_eq!(uv::HandleType::NamedPipe.c_name(), Some("pipe"));
    assert_eq!(uv::HandleType::Unknown.c_name(), None);
    assert_eq!(uv::HandleType::Other(999).c_name(), None);
    assert_eq!(uv::RequestType::Fs.c_name(), Some("fs"));
    assert_eq!(uv::RequestType::Random.c_name(), Some("random"));
    assert_eq!(uv::RequestType::Other(-3).c_name(), None);
    for t in uv::HandleType::ALL
        .iter()
        .filter(|t| **t != uv::HandleType::Unknown)
    {
        assert!(t.c_name().is_some(), "{t:?}");
    }
}

#[test]
fn metrics() {
    let _l = lock();
    let lp = uv::Loop::new().unwrap();
    assert_eq!(lp.metrics_info().unwrap().loop_count, 0);
    uv::Timer::once(&lp, Duration::ZERO, |_t| {}).unwrap();
    lp.run(RunMode::Default).unwrap();
    let m = lp.metrics_info().unwrap();
    assert!(m.loop_count >= 1, "{m:?}");
    let h = lp.handle();
    drop(lp);
    assert!(h.metrics_info().unwrap_err().is(uv::Category::ClosedLoop));
}

#[test]
fn print_handles() {
    let _l = lock();
    let lp = uv::Loop::new().unwrap();
    let timer = uv::Timer::new(&lp).unwrap();
    timer
        .start(Duration::from_secs(60), Duration::ZERO, |_t| {})
        .unwrap();
    let idle = uv::Idle::new(&lp).unwrap();
    let mut all = Vec::new();
    lp.print_all_handles(&mut all).unwrap();
    let all = String::from_utf8(all).unwrap();
    let mut active = Vec::new();
    lp.print_active_handles(&mut active).unwrap();
    let active = String::from_utf8(active).unwrap();
    let line = |text: &str, ty: &str| {
        text.lines()
            .find(|l| l.contains(&format!(" {ty} ")))
            .map(str::to_owned)
    };
    assert!(line(&all, "timer").unwrap().starts_with("[RA-]"), "{all}");
    assert!(line(&all, "idle").unwrap().starts_with("[R--]"), "{all}");
    assert!(line(&active, "timer").is_some(), "{active}");
    assert!(line(&active, "idle").is_none(), "{active}");
    timer.close();
    idle.close();
    lp.run(RunMode::Default).unwrap();
    let h = lp.handle();
    drop(lp);
    let err = h.print_all_handles(&mut Vec::new()).unwrap_err();
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<uv::Error>())
        .unwrap();
    assert!(inner.is(uv::Category::ClosedLoop));
}

/// Runs `child` in a forked child process and asserts that it returned true (and
/// did not abort).
fn in_a_child(child: impl FnOnce() -> bool) {
    // SAFETY: the tests that call this hold `lock()`, so no other test thread of this
    // file runs meanwhile; the child only uses the loop (nothing is printed: no lock
    // another thread might hold).
    let status = unsafe { uv_tests::in_fork(child) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child ended with status {status:#x}"
    );
}

#[test]
fn after_fork_without_a_fork_is_einval() {
    // Without a fork there is nothing to re-create, and closing the loop's
    // descriptors while other threads wake it through them aborts: refused.
    let _l = lock();
    let lp = uv::Loop::new().unwrap();
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    let h = lp.handle();
    uv::Timer::once(&lp, Duration::from_millis(1), move |_t| {
        assert_eq!(h.after_fork().unwrap_err().code(), StatusCode::EBUSY);
        f.set(f.get() + 1);
    })
    .unwrap();
    assert_eq!(lp.after_fork().unwrap_err().code(), StatusCode::EINVAL);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(fired.get(), 1);
}

#[test]
fn after_fork_in_a_child() {
    // test-fork.c, fork_timer: the child re-creates the loop's kernel state and
    // runs a timer the parent started. A second call in the same child is refused.
    let _l = lock();
    let lp = uv::Loop::new().unwrap();
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    uv::Timer::once(&lp, Duration::from_millis(1), move |_t| f.set(f.get() + 1)).unwrap();
    in_a_child(|| {
        lp.after_fork().is_ok()
            && lp.after_fork().unwrap_err().code() == StatusCode::EINVAL
            && lp.run(RunMode::Default).is_ok()
            && fired.get() == 1
    });
    lp.run(RunMode::Default).unwrap();
    assert_eq!(fired.get(), 1, "the parent's timer ran in the parent too");
}

#[test]
fn after_fork_in_a_child_with_a_write_waiting() {
    // The pipe reads, and a write too large for the socket buffer waits: its
    // watcher is queued for a new event mask, with the events the parent's epoll
    // instance knew. libuv changed it with EPOLL_CTL_MOD on the child's new
    // instance, which fails, and aborted (linux.c:1503).
    use std::io::Read;
    use uv::Stream;
    let _l = lock();
    let lp = uv::Loop::new().unwrap();
    let got = Rc::new(Cell::new(0));
    let (p, mut other) = uv_tests::net::reading_pipe(&lp, &got);
    let size = 16 << 20;
    let written = Rc::new(Cell::new(false));
    let w = written.clone();
    p.write(vec![7u8; size], move |_, r| w.set(r.is_ok()))
        .unwrap();
    assert!(p.write_queue_size() > 0);
    in_a_child(|| {
        if lp.after_fork().is_err() {
            return false;
        }
        // The child drains the other end while its loop writes.
        let reader = std::thread::spawn(move || {
            let mut n = 0;
            let mut buf = vec![0u8; 1 << 16];
            while n < size {
                match other.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
            }
            n
        });
        while !written.get() {
            if lp.run(RunMode::Once).is_err() {
                return false;
            }
        }
        reader.join().map(|n| n == size).unwrap_or(false)
    });
    p.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn after_fork_in_a_child_keeps_file_watchers() {
    // uv_loop_fork re-arms every active file watcher on the child's new inotify
    // instance (linux.c:2599 copies each path): the child sees a change.
    let _l = lock();
    let dir = std::env::temp_dir().join(format!("uv-after-fork-w-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("watched");
    std::fs::write(&file, b"x").unwrap();
    let lp = uv::Loop::new().unwrap();
    let ev = uv::FsEvent::new(&lp).unwrap();
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    ev.start(&file, uv::FsEventFlags::empty(), move |_, _, _, _| {
        s.set(s.get() + 1)
    })
    .unwrap();
    in_a_child(|| {
        if lp.after_fork().is_err() || !ev.is_active() || ev.path().ok() != Some(file.clone()) {
            return false;
        }
        std::fs::write(&file, b"changed").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while seen.get() == 0 && std::time::Instant::now() < deadline {
            if lp.run(RunMode::NoWait).is_err() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        seen.get() > 0
    });
    ev.close();
    lp.run(RunMode::Default).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn after_fork_in_a_child_whose_watched_file_is_gone() {
    // The file a watcher watches is removed before the fork: libuv's uv_loop_fork
    // fails (ENOENT) when it re-arms the watcher, and returned before re-creating
    // the rest, so the pipe's watcher never reached the child's epoll instance and
    // its data was never read. The crate finishes the re-creation without that
    // watcher, and reports the error.
    use std::io::Write;
    let _l = lock();
    let dir = std::env::temp_dir().join(format!("uv-after-fork-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("watched");
    std::fs::write(&file, b"x").unwrap();
    let lp = uv::Loop::new().unwrap();
    let ev = uv::FsEvent::new(&lp).unwrap();
    ev.start(&file, uv::FsEventFlags::empty(), |_, _, _, _| {})
        .unwrap();
    let got = Rc::new(Cell::new(0));
    let (p, mut other) = uv_tests::net::reading_pipe(&lp, &got);
    std::fs::remove_file(&file).unwrap();
    in_a_child(|| {
        let err = lp.after_fork().unwrap_err();
        if err.code() != StatusCode::ENOENT || ev.is_active() {
            return false;
        }
        other.write_all(b"hello").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while got.get() < 5 && std::time::Instant::now() < deadline {
            if lp.run(RunMode::NoWait).is_err() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        got.get() == 5
    });
    ev.close();
    p.close();
    lp.run(RunMode::Default).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn after_fork_re_arms_the_watchers_behind_one_whose_file_is_gone() {
    // libuv's re-arming in uv_loop_fork stops every file watcher, then starts
    // them again in order and returns at the first that fails: the watchers
    // after it stayed stopped (each with a copy of its path that nothing freed),
    // though their files were there, and their changes were never reported.
    // Now they are started again: only the watcher whose file is gone stops,
    // and the others report the child's writes.
    use std::io::Write;
    let _l = lock();
    let dir = std::env::temp_dir().join(format!("uv-after-fork-rearm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<_> = ["a", "b", "c"].iter().map(|n| dir.join(n)).collect();
    for f in &files {
        std::fs::write(f, b"x").unwrap();
    }
    let lp = uv::Loop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    // Started in order: libuv re-arms them in the order of their watch
    // descriptors, so "b" fails between the other two.
    let watchers: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let w = uv::FsEvent::new(&lp).unwrap();
            let s = seen.clone();
            w.start(f, uv::FsEventFlags::empty(), move |_, _, _, _| {
                s.borrow_mut().push(i)
            })
            .unwrap();
            w
        })
        .collect();
    std::fs::remove_file(&files[1]).unwrap();
    in_a_child(|| {
        let err = lp.after_fork().unwrap_err();
        let active: Vec<bool> = watchers.iter().map(|w| w.is_active()).collect();
        if err.code() != StatusCode::ENOENT || active != [true, false, true] {
            return false;
        }
        for f in [&files[0], &files[2]] {
            let mut file = std::fs::OpenOptions::new().append(true).open(f).unwrap();
            file.write_all(b"y").unwrap();
        }
        let heard = || {
            let s = seen.borrow();
            s.contains(&0) && s.contains(&2)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !heard() && std::time::Instant::now() < deadline {
            if lp.run(RunMode::NoWait).is_err() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        heard() && !seen.borrow().contains(&1)
    });
    for w in &watchers {
        w.close();
    }
    lp.run(RunMode::Default).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn try_write2_sends_a_handle_over_an_ipc_pipe() {
    use std::io::Read;
    use uv::Stream;
    let _l = lock();
    let lp = uv::Loop::new().unwrap();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let ipc = uv::Pipe::new(&lp, true).unwrap();
    ipc.open(a).unwrap();
    let tcp = uv::Tcp::new(&lp).unwrap();
    tcp.bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    assert_eq!(ipc.try_write2(b"fd", &tcp).unwrap(), 2);
    let mut got = [0u8; 2];
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"fd");
    // No descriptor to send: EBADF; not an IPC pipe: EINVAL; closed: ClosedHandle.
    let empty = uv::Tcp::new(&lp).unwrap();
    assert_eq!(
        ipc.try_write2(b"x", &empty).unwrap_err().code(),
        StatusCode::EBADF
    );
    let (c, _d) = std::os::unix::net::UnixStream::pair().unwrap();
    let plain = uv::Pipe::new(&lp, false).unwrap();
    plain.open(c).unwrap();
    assert_eq!(
        plain.try_write2(b"x", &tcp).unwrap_err().code(),
        StatusCode::EINVAL
    );
    empty.close();
    assert!(ipc
        .try_write2(b"x", &empty)
        .unwrap_err()
        .is(uv::Category::ClosedHandle));
    let other = uv::Loop::new().unwrap();
    let foreign = uv::Tcp::new(&other).unwrap();
    foreign
        .bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    assert_eq!(
        ipc.try_write2(b"x", &foreign).unwrap_err().code(),
        StatusCode::EINVAL
    );
}
