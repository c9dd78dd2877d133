//! Shared helpers for the uv test suites.
pub mod alloc_count;
#[cfg(unix)]
pub mod fs;
#[cfg(unix)]
pub mod fuzz;
#[cfg(unix)]
pub mod net;
#[cfg(unix)]
pub mod pool;
pub mod provoke;

/// Reads `stream` to its end into a shared buffer, then closes it (any error but
/// the end of the stream fails the test).
pub fn read_to_end<S: uv::Stream>(stream: &S) -> std::rc::Rc<std::cell::RefCell<Vec<u8>>> {
    let out = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = out.clone();
    stream
        .read_start(move |s, data| match data {
            Ok(bytes) => sink.borrow_mut().extend_from_slice(bytes),
            Err(e) => {
                assert_eq!(e.code(), uv::StatusCode::EOF);
                s.close();
            }
        })
        .unwrap();
    out
}

/// Reads `s` through one read of each of `sizes` (each must give some bytes, no
/// more than asked: into the caller's buffer at once, or through the wrapper's
/// buffer, as the size makes it), then `read_to_end`; everything read, in order.
pub async fn read_in_pieces<S: uv::Stream>(
    s: &mut uv::future::AsyncStream<S>,
    sizes: &[usize],
) -> Vec<u8> {
    use futures::AsyncReadExt as _;
    let mut got = Vec::new();
    for &size in sizes {
        let mut buf = vec![0u8; size];
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0 && n <= size, "read {n} of {size}");
        got.extend_from_slice(&buf[..n]);
    }
    s.read_to_end(&mut got).await.unwrap();
    got
}

/// Sends on `sender` up to `limit` times, stopping at the first refusal, which must
/// be `ClosedHandle`; after a refusal, checks that the sender stays refused (ten
/// more sends). The sends accepted, and whether one was refused.
pub fn send_until_refused(sender: &uv::AsyncSender, limit: usize) -> (usize, bool) {
    let mut accepted = 0;
    for _ in 0..limit {
        match sender.send() {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert_eq!(e.kind(), uv::Category::ClosedHandle, "{e:?}");
                // Refused once, refused for good.
                for _ in 0..10 {
                    let again = sender.send().unwrap_err();
                    assert_eq!(again.kind(), uv::Category::ClosedHandle);
                }
                return (accepted, true);
            }
        }
    }
    (accepted, false)
}

/// How many times a race test repeats: `n`, or a tenth of it (at least one) under
/// valgrind (`tests/valgrind.sh` sets `UV_UNDER_VALGRIND`), which runs one thread at
/// a time, many times slower, so that spinning threads take turns slowly.
pub fn iterations(n: usize) -> usize {
    if std::env::var_os("UV_UNDER_VALGRIND").is_some() {
        (n / 10).max(1)
    } else {
        n
    }
}

/// Sends `signal` (`"USR1"` or `"USR2"`) to this thread. Only while a handle
/// watches it: otherwise its default action ends the test process.
#[cfg(unix)]
pub fn raise(signal: &str) {
    let signum = match signal {
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        other => panic!("no signal {other} here"),
    };
    // Sent to this thread (the loop's), whose handler runs before `raise`
    // returns: libuv's handler has then written its message and counted the
    // signal as caught. (Sent to the process, it could be handled on another
    // thread, whose count the loop may see late.)
    // SAFETY: `raise` sends a signal to the calling thread and touches no memory
    // of ours; what the signal does is its handler's (the callers watch it).
    assert_eq!(unsafe { libc::raise(signum) }, 0);
}

/// A command that runs this test binary's `scenario_child` test alone (the child
/// side of a suite's scenarios, which reads the scenario's name from `var`), under
/// valgrind when the suite runs under it (`tests/valgrind.sh`: definite leaks and
/// memory errors make the child exit with status 99).
pub fn scenario_command(var: &str, scenario: &str) -> std::process::Command {
    scenario_command_with(
        var,
        scenario,
        std::env::var_os("UV_UNDER_VALGRIND").is_some(),
    )
}

/// [`scenario_command`] that never runs the child under valgrind: for a scenario
/// valgrind would change (it emulates the descriptor limit itself, and ends a
/// child whose `execve` fails).
pub fn native_scenario_command(var: &str, scenario: &str) -> std::process::Command {
    scenario_command_with(var, scenario, false)
}

/// The command of [`scenario_command`], under valgrind or not.
fn scenario_command_with(var: &str, scenario: &str, valgrind: bool) -> std::process::Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = if valgrind {
        let mut c = std::process::Command::new("valgrind");
        c.args([
            "--quiet",
            // No gdbserver pipes in /tmp: a child that gives up root could not
            // remove them.
            "--vgdb=no",
            // One thread runs at a time; with valgrind's default lock a thread
            // that yields in a loop (waiting for another thread's progress) takes
            // the lock straight back, and the thread it waits for can starve for
            // many minutes (`attacks_loops`' signal-watch scenario ran past the
            // time limit in a CI run).
            "--fair-sched=yes",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
        ])
        .arg(exe);
        c
    } else {
        std::process::Command::new(exe)
    };
    cmd.args([
        "scenario_child",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(var, scenario);
    cmd
}

/// How long a child process of a test may run before it counts as hung: five
/// minutes, fifteen under valgrind (`tests/valgrind.sh`). Not a measure of
/// speed (no test judges durations): a backstop, so that a child that waits for
/// good fails its test with what it wrote, instead of holding the test run up
/// until CI's time runs out.
pub fn child_time_limit() -> std::time::Duration {
    let secs = if std::env::var_os("UV_UNDER_VALGRIND").is_some() {
        900
    } else {
        300
    };
    std::time::Duration::from_secs(secs)
}

/// `cmd.output()` (standard input empty, standard output and error captured),
/// with the child killed once it runs past [`child_time_limit`]: the test then
/// fails, naming the command and showing the output so far.
pub fn output_within(cmd: &mut std::process::Command) -> std::process::Output {
    output_within_limit(cmd, child_time_limit())
}

/// [`output_within`] with the limit given.
fn output_within_limit(
    cmd: &mut std::process::Command,
    limit: std::time::Duration,
) -> std::process::Output {
    use std::io::Read;
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    fn collect(
        mut from: impl Read + Send + 'static,
    ) -> (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let to = got.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                to.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        (got, reader)
    }
    let (stdout, out_reader) = collect(child.stdout.take().unwrap());
    let (stderr, err_reader) = collect(child.stderr.take().unwrap());
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            let status = child.wait().unwrap();
            // The readers are left running: a grandchild may hold the pipes.
            panic!(
                "{cmd:?} still ran after {limit:?} and was killed ({status})\n\
                 stdout so far:\n{}\nstderr so far:\n{}",
                String::from_utf8_lossy(&stdout.lock().unwrap()),
                String::from_utf8_lossy(&stderr.lock().unwrap())
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    out_reader.join().unwrap();
    err_reader.join().unwrap();
    let take = |b: Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *b.lock().unwrap());
    std::process::Output {
        status,
        stdout: take(stdout),
        stderr: take(stderr),
    }
}

/// Runs `scenario` in a child (`scenario_command`, through [`output_within`]):
/// its exit status and its standard error.
pub fn scenario_output(var: &str, scenario: &str) -> (std::process::ExitStatus, String) {
    let out = output_within(&mut scenario_command(var, scenario));
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `child` in a forked child of this process and returns the child's wait
/// status: exit status 0 when `child` returned true, 1 when it returned false or
/// panicked. The child leaves with `_exit`, without running the parent's
/// destructors.
///
/// # Safety
/// No other thread of the process may hold a lock the child could need (the
/// allocator's, stdout's, one of the library's): callers run alone (the test file
/// serialises its tests, or runs one thread), and `child` prints nothing.
#[cfg(unix)]
pub unsafe fn in_fork(child: impl FnOnce() -> bool) -> i32 {
    // SAFETY: per the contract, the child finds no lock held by a thread that is
    // not there.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(false);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    wait_within(pid)
}

/// Waits for the forked child `pid` and returns its wait status; a child still
/// running after [`child_time_limit`] is killed (`SIGKILL`) and fails the test.
#[cfg(unix)]
pub fn wait_within(pid: libc::pid_t) -> i32 {
    let limit = child_time_limit();
    let start = std::time::Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: `pid` is a child of this process; `status` is a valid
        // out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            return status;
        }
        if rc < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        assert_eq!(rc, 0, "waitpid: {}", std::io::Error::last_os_error());
        if start.elapsed() >= limit {
            // SAFETY: our child, not reaped yet (its pid is not reused).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            panic!("the forked child {pid} still ran after {limit:?} and was killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A pseudo-terminal pair (`openpty`): the master side, then the slave side.
#[cfg(unix)]
pub fn pty() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd as _;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: the out-pointers are valid; no name, settings or size are given.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both were just opened and are owned by nothing else.
    unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    }
}

/// While alive, exactly `room` descriptor numbers are free below the process's
/// soft `RLIMIT_NOFILE` (with no room, no descriptor can be made); the old limit
/// comes back on drop. The caller runs alone in its process (a scenario child, or
/// a serialised test binary): every thread shares the limit.
#[cfg(unix)]
#[derive(Debug)]
pub struct DescriptorRoom {
    saved: libc::rlimit,
}

#[cfg(unix)]
impl DescriptorRoom {
    /// Lowers the limit to leave `room` free numbers.
    pub fn new(room: usize) -> DescriptorRoom {
        let mut open: std::collections::BTreeSet<i32> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        // Not the listing's own descriptor, closed by now.
        // SAFETY: F_GETFD reads a descriptor's flags; any number is acceptable.
        open.retain(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
        let (mut free, mut limit) = (0, 0);
        while free < room || open.contains(&limit) {
            if !open.contains(&limit) {
                free += 1;
            }
            limit += 1;
        }
        let mut saved = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `saved` is a valid out-pointer.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut saved) };
        assert_eq!(rc, 0);
        let lowered = libc::rlimit {
            rlim_cur: limit as libc::rlim_t,
            rlim_max: saved.rlim_max,
        };
        // SAFETY: a valid rlimit, lowering the soft limit only.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) };
        assert_eq!(rc, 0);
        DescriptorRoom { saved }
    }
}

#[cfg(unix)]
impl Drop for DescriptorRoom {
    fn drop(&mut self) {
        // SAFETY: the limit read in `new`.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.saved) };
    }
}

/// Closes every handle of `lp` left open and runs the loop out: nothing may be
/// left alive (a run that never ended would show a handle left started).
pub fn finish(lp: &uv::Loop) {
    lp.close_all_handles();
    assert!(!lp.run(uv::RunMode::Default).unwrap());
}

/// Writes a suite's `scenario_child` test, the child side of its scenarios
/// ([`scenario_command`]): it runs the scenario that the environment variable
/// `$var` names, and nothing in a normal run of the suite. Each `name` runs the
/// function `name()` (an arm may carry attributes: `#[cfg(...)] name`); after a
/// `;`, each `"name" => { ... }` runs its block; a `before: { ... }` block runs
/// first, once the variable is known to be set. An unknown name fails the child.
///
/// ```ignore
/// uv_tests::scenarios! { SCENARIO => first, #[cfg(unix)] second; "third" => {} }
/// uv_tests::scenarios! { SCENARIO, before: { setup() } => first }
/// ```
#[macro_export]
macro_rules! scenarios {
    (
        $var:expr $( , before: $before:block )? =>
        $( $(#[$attr:meta])* $name:ident ),* $(,)?
        $( ; $( $inline:literal => $body:block ),* $(,)? )?
    ) => {
        /// The child side of the suite's scenarios: runs the one its environment
        /// names (nothing in a normal run of the suite).
        #[test]
        fn scenario_child() {
            let ::std::result::Result::Ok(scenario) = ::std::env::var($var) else {
                return;
            };
            $( $before )?
            match scenario.as_str() {
                $( $(#[$attr])* ::std::stringify!($name) => $name(), )*
                $( $( $inline => $body )* )?
                other => ::std::panic!("unknown scenario {other}"),
            }
        }
    };
}

/// The text a panic's payload carries (`panic!` gives a `&str` or a `String`), or
/// `None` for any other payload.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> Option<&str> {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(|s| s.as_str()))
}

/// Runs `lp` (`RunMode::Default`), which must resume a callback's panic: that
/// panic's text (a payload that is not text fails the test).
pub fn run_expecting_panic(lp: &uv::Loop) -> String {
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lp.run(uv::RunMode::Default)
    }))
    .expect_err("run() should have resumed the callback's panic");
    panic_text(&*payload)
        .expect("unexpected payload type")
        .to_string()
}

/// One test at a time: the tests of a binary that hold this guard run one after
/// the other (a test that failed while holding it does not stop the others).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Aborts the process, printing `what`, unless the returned flag is set within
/// `secs` seconds (ten times that under valgrind, `tests/valgrind.sh`, which
/// runs the loop many times slower): a backstop that ends the test run when the
/// loop's thread hangs.
pub fn watchdog(what: &'static str, secs: u64) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let secs = if std::env::var_os("UV_UNDER_VALGRIND").is_some() {
        secs * 10
    } else {
        secs
    };
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        for _ in 0..secs * 10 {
            if d.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("watchdog: {what}");
        std::process::abort();
    });
    done
}

/// Copies the directory `from`, with everything in it, to `to` (made if missing).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, dest).unwrap();
        }
    }
}

/// Runs `scenario` in a child ([`scenario_output`]), which must exit with status
/// 0 having written "scenario done" to its standard error (a scenario that ends
/// early, or the process with it, fails).
pub fn assert_scenario_done(var: &str, scenario: &str) {
    let (status, stderr) = scenario_output(var, scenario);
    assert!(status.success(), "{scenario}: {status:?}\n{stderr}");
    assert!(stderr.contains("scenario done"), "{scenario}: {stderr}");
}

/// Shuts down the write side of `s` (after the writes queued before) and closes
/// it once the shutdown is done, which must succeed.
pub fn shutdown_and_close<S: uv::Stream>(s: &S) {
    s.shutdown(|s, r| {
        r.unwrap();
        s.close();
    })
    .unwrap();
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    #[test]
    fn output_within_gives_the_childs_status_and_output() {
        let out = super::output_within(
            std::process::Command::new("/bin/sh").args(["-c", "echo out; echo err >&2; exit 3"]),
        );
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn a_child_past_the_limit_is_killed_and_fails_with_its_output_so_far() {
        let failed = std::panic::catch_unwind(|| {
            super::output_within_limit(
                std::process::Command::new("/bin/sh")
                    .args(["-c", "echo started >&2; exec sleep 600"]),
                Duration::from_millis(500),
            )
        })
        .unwrap_err();
        let text = failed.downcast_ref::<String>().unwrap();
        assert!(text.contains("was killed"), "{text}");
        assert!(text.contains("signal: 9"), "{text}");
        assert!(text.contains("stderr so far:\nstarted"), "{text}");
    }
}
