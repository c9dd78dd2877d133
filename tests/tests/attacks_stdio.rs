//! Attacks through the process's own standard descriptors (0 to 2): a handle
//! opened on a copy of one of them shares its open file, and a child given that
//! descriptor with `Stdio::Inherit` had libuv switch the shared file to blocking
//! mode (unix/process.c, `uv__process_child_init`: `uv__nonblock_fcntl(fd, 0)` for
//! the child's 0 to 2; the mode belongs to the open file, not to the number).
//!
//! Each scenario runs in a child process, this test binary run again with
//! [`SCENARIO`] naming it: its standard descriptors are what the test gives it
//! (a pipe, a socket, a terminal). A watchdog kills a scenario that hangs, so that
//! a hang fails its test instead of the whole run (the watchdog's limit plays no
//! part in a passing run: every assertion is on what the scenario reports).

#![cfg(unix)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::process::{Child, Stdio as StdStdio};
use std::sync::mpsc;
use std::time::Duration;

use uv::{
    Loop, Pipe, PoolAllocator, Process, ProcessOptions, RunMode, Stdio, Stream as _, Tcp, Timer,
    Tty, Udp,
};

/// The variable that names the scenario a child process runs.
const SCENARIO: &str = "UV_ATTACKS_STDIO_SCENARIO";

/// Set (Linux): the scenario runs where `kcmp` is refused (`EPERM`, as some
/// sandboxes' system-call filters do), so the library falls back on comparing
/// files and flags.
const NO_KCMP: &str = "UV_ATTACKS_STDIO_NO_KCMP";

/// How long a scenario may take before the watchdog kills it: a backstop against a
/// hang only (a scenario that passes ends in well under a second; under valgrind in
/// a few).
fn watchdog_limit() -> Duration {
    if std::env::var_os("UV_UNDER_VALGRIND").is_some() {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(60)
    }
}

uv_tests::scenarios! {
    SCENARIO, before: {
        #[cfg(target_os = "linux")]
        if std::env::var_os(NO_KCMP).is_some() {
            refuse_kcmp();
            report(format!("kcmp refused {}", kcmp_refused()));
        }
    } =>
    read_stdin_then_spawn,
    write_stdout_then_spawn,
    stream_on_stdin,
    tcp_on_stdin,
    udp_on_stdin,
    tty_on_stdin,
    poll_on_stdin,
    ipc_receives_stdin,
}

/// A scenario child: this binary, running only [`scenario_child`], with `stdin`
/// as its standard input and its output and errors piped. Under valgrind (the
/// parent is, `tests/valgrind.sh`) the child runs under valgrind too.
fn start(name: &str, stdin: StdStdio) -> Child {
    start_with(name, stdin, false)
}

/// [`start`], with `kcmp` refused in the child when `no_kcmp` is set.
fn start_with(name: &str, stdin: StdStdio, no_kcmp: bool) -> Child {
    let mut cmd = uv_tests::scenario_command(SCENARIO, name);
    if no_kcmp {
        cmd.env(NO_KCMP, "1");
    }
    cmd.stdin(stdin)
        .stdout(StdStdio::piped())
        .stderr(StdStdio::piped())
        .spawn()
        .unwrap()
}

/// Kills the child if it has not ended within [`watchdog_limit`]. `finish` stops it
/// and tells whether it killed the child; it must be called before the child is
/// waited for (the process id is not reused before then).
struct Watchdog {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn new(child: &Child) -> Watchdog {
        let pid = child.id() as libc::pid_t;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if stopped.recv_timeout(watchdog_limit()).is_ok() {
                return false;
            }
            // SAFETY: `pid` is the scenario child, not yet waited for (see `finish`).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            true
        });
        Watchdog { stop, thread }
    }

    fn finish(self) -> bool {
        let _ = self.stop.send(());
        self.thread.join().unwrap()
    }
}

/// What a scenario child reported on its standard error, line by line, as it comes.
struct Reports {
    lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
    seen: Vec<String>,
}

impl Reports {
    fn new(child: &mut Child) -> Reports {
        Reports {
            lines: BufReader::new(child.stderr.take().unwrap()).lines(),
            seen: Vec::new(),
        }
    }

    /// Reads up to the line `want` (true), or to the end (false).
    fn until(&mut self, want: &str) -> bool {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            let found = line == want;
            self.seen.push(line);
            if found {
                return true;
            }
        }
        false
    }

    /// Every report line (those starting with `> `), after reading to the end.
    fn all(&mut self) -> Vec<String> {
        for line in self.lines.by_ref() {
            self.seen.push(line.unwrap());
        }
        self.seen
            .iter()
            .filter_map(|l| l.strip_prefix("> ").map(str::to_owned))
            .collect()
    }
}

/// A report line of a scenario child (on its standard error).
fn report(what: impl std::fmt::Display) {
    let mut e = std::io::stderr().lock();
    writeln!(e, "> {what}").unwrap();
    e.flush().unwrap();
}

/// Ends a scenario child's run: waits for it, fails the test if the watchdog
/// killed it or it failed, and gives its report lines.
fn end(mut child: Child, dog: Watchdog, mut reports: Reports) -> Vec<String> {
    let lines = reports.all();
    let killed = dog.finish();
    let status = child.wait().unwrap();
    let all = reports.seen.join("\n");
    assert!(
        !killed,
        "the scenario hung (killed by the watchdog); it reported:\n{all}"
    );
    assert!(status.success(), "the scenario failed ({status}):\n{all}");
    lines
}

/// The result of a spawn of `true` with `slot` inherited, as a report: `ok` (and
/// the child runs), or the error's code.
fn spawn_inheriting(lp: &uv::LoopHandle, slot: usize) -> String {
    let opts = ProcessOptions::new("true").stdio(slot, Stdio::Inherit);
    match Process::spawn(lp, &opts, |p, _, _| p.close()) {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("{:?}", e.code()),
    }
}

/// A copy of this process's descriptor `fd` (its open file shared).
fn copy_of_std(fd: i32) -> OwnedFd {
    match fd {
        0 => std::io::stdin().as_fd().try_clone_to_owned().unwrap(),
        1 => std::io::stdout().as_fd().try_clone_to_owned().unwrap(),
        _ => std::io::stderr().as_fd().try_clone_to_owned().unwrap(),
    }
}

// ---- The hang: a stream reading a copy of stdin, then a child inheriting stdin.

/// Scenario: a pipe handle on a copy of standard input reads it one byte at a time
/// (each read fills its buffer, so libuv reads again at once: unix/stream.c,
/// `uv__read`), and a child is spawned with standard input inherited. When the
/// input ends with a newline, a timer of the next loop iteration closes the pipe.
fn read_stdin_then_spawn() {
    let lp = Loop::new().unwrap();
    let pipe = Pipe::new(&lp, false).unwrap();
    pipe.open(copy_of_std(0)).unwrap();
    let timer = Timer::new(&lp).unwrap();
    let mut got = Vec::new();
    pipe.read_start_with(PoolAllocator::new(1, 4), move |p, data| {
        let bytes = data.unwrap();
        got.extend_from_slice(bytes);
        if bytes == b"\n" {
            report(format!("got {}", String::from_utf8_lossy(&got).trim_end()));
            // Closed from the next iteration: libuv reads again first (the buffer
            // was full), which must not wait.
            let p = p.clone();
            timer
                .start(Duration::ZERO, Duration::ZERO, move |t| {
                    p.close();
                    t.close();
                })
                .unwrap();
        }
    })
    .unwrap();
    report(format!("spawn {}", spawn_inheriting(&lp, 0)));
    report(format!(
        "stdin non-blocking {}",
        uv_tests::net::nonblocking(0)
    ));
    report("ready");
    lp.run(RunMode::Default).unwrap();
    report("done");
}

/// A stream reading a copy of standard input, and a child spawned with standard
/// input inherited: the spawn is refused (`EINVAL`, no child), so the shared input
/// stays non-blocking and the loop reads to the end of what is there without
/// waiting for more. libuv switched it to blocking mode for the child, and the
/// read that follows a read filling the buffer waited for input with the loop's
/// thread, while the writer waited for the loop: a hang.
#[test]
fn a_child_inheriting_stdin_that_a_stream_reads_is_refused() {
    let (reader, mut writer) = std::io::pipe().unwrap();
    let mut child = start(
        "read_stdin_then_spawn",
        StdStdio::from(OwnedFd::from(reader)),
    );
    let dog = Watchdog::new(&child);
    let mut reports = Reports::new(&mut child);
    if reports.until("> ready") {
        // The input stays open (no end of file) until the scenario is over.
        writer.write_all(b"hello\n").unwrap();
    }
    let lines = end(child, dog, reports);
    drop(writer);
    assert_eq!(
        lines,
        [
            "spawn EINVAL",
            "stdin non-blocking true",
            "ready",
            "got hello",
            "done"
        ]
    );
}

// ---- The same through a write: a stream writing a copy of stdout.

/// Scenario: a pipe handle on a copy of standard output, a child spawned with
/// standard output inherited, then a write larger than a pipe holds. The test reads
/// the output only once the scenario reports that the write was queued. (The
/// bytes are 0xAB, which the test harness never prints.)
fn write_stdout_then_spawn() {
    const LEN: usize = 1 << 20;
    let lp = Loop::new().unwrap();
    let pipe = Pipe::new(&lp, false).unwrap();
    pipe.open(copy_of_std(1)).unwrap();
    report(format!("spawn {}", spawn_inheriting(&lp, 1)));
    // The child has exited and its SIGCHLD was handled before the write (a signal
    // would cut a blocking write short).
    lp.run(RunMode::Default).unwrap();
    report(format!(
        "stdout non-blocking {}",
        uv_tests::net::nonblocking(1)
    ));
    pipe.write(vec![0xAB; LEN], |p, r| {
        r.unwrap();
        report("written");
        p.close();
    })
    .unwrap();
    report("queued");
    lp.run(RunMode::Default).unwrap();
    report("done");
}

/// A stream writing a copy of standard output, and a child spawned with standard
/// output inherited: refused (`EINVAL`). libuv switched the shared output to
/// blocking mode, and the stream's next write of more than the pipe holds waited
/// in `uv_write` for the reader, with the loop's thread.
#[test]
fn a_child_inheriting_stdout_that_a_stream_writes_is_refused() {
    let mut child = start("write_stdout_then_spawn", StdStdio::null());
    let dog = Watchdog::new(&child);
    let mut reports = Reports::new(&mut child);
    let mut out = child.stdout.take().unwrap();
    // The output is read only once the write is queued.
    let queued = reports.until("> queued");
    let drain = std::thread::spawn(move || {
        let mut all = Vec::new();
        if queued {
            out.read_to_end(&mut all).unwrap();
        }
        all
    });
    let lines = end(child, dog, reports);
    let out = drain.join().unwrap();
    assert_eq!(
        lines,
        [
            "spawn EINVAL",
            "stdout non-blocking true",
            "queued",
            "written",
            "done"
        ]
    );
    assert_eq!(out.iter().filter(|&&b| b == 0xAB).count(), 1 << 20);
}

// ---- Which handles count: streams and UDP sockets on a copy of stdin.

/// Runs scenario `name` with `stdin` and gives its report lines.
fn run_scenario(name: &str, stdin: StdStdio) -> Vec<String> {
    run_scenario_with(name, stdin, false)
}

/// [`run_scenario`], with `kcmp` refused in the child when `no_kcmp` is set.
fn run_scenario_with(name: &str, stdin: StdStdio, no_kcmp: bool) -> Vec<String> {
    let mut child = start_with(name, stdin, no_kcmp);
    let dog = Watchdog::new(&child);
    let reports = Reports::new(&mut child);
    end(child, dog, reports)
}

/// Scenario (standard input a Unix socket): two pipe handles on copies of standard
/// input; inheriting it is refused until both are closed; standard output and
/// error, which no handle shares, are inherited meanwhile.
fn stream_on_stdin() {
    let lp = Loop::new().unwrap();
    let a = Pipe::new(&lp, false).unwrap();
    a.open(copy_of_std(0)).unwrap();
    let b = Pipe::new(&lp, false).unwrap();
    b.open(copy_of_std(0)).unwrap();
    for slot in 0..3 {
        report(format!("spawn {slot} {}", spawn_inheriting(&lp, slot)));
    }
    a.close();
    report(format!("one closed: spawn 0 {}", spawn_inheriting(&lp, 0)));
    b.close();
    report(format!("both closed: spawn 0 {}", spawn_inheriting(&lp, 0)));
    lp.run(RunMode::Default).unwrap();
    report(format!(
        "stdin non-blocking {}",
        uv_tests::net::nonblocking(0)
    ));
}

#[test]
fn inheriting_stdin_is_refused_while_a_pipe_handle_shares_it() {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let lines = run_scenario("stream_on_stdin", StdStdio::from(OwnedFd::from(theirs)));
    drop(ours);
    assert_eq!(
        lines,
        [
            "spawn 0 EINVAL",
            "spawn 1 ok",
            "spawn 2 ok",
            "one closed: spawn 0 EINVAL",
            "both closed: spawn 0 ok",
            // The last child switched it to blocking mode: no handle had it.
            "stdin non-blocking false",
        ]
    );
}

/// Scenario (standard input a connected TCP socket): a TCP handle on a copy.
fn tcp_on_stdin() {
    let lp = Loop::new().unwrap();
    let t = Tcp::new(&lp).unwrap();
    t.open(copy_of_std(0)).unwrap();
    report(format!("spawn 0 {}", spawn_inheriting(&lp, 0)));
    t.close();
    report(format!("closed: spawn 0 {}", spawn_inheriting(&lp, 0)));
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn inheriting_stdin_is_refused_while_a_tcp_handle_shares_it() {
    let (ours, theirs) = uv_tests::net::tcp_pair();
    let lines = run_scenario("tcp_on_stdin", StdStdio::from(OwnedFd::from(theirs)));
    drop(ours);
    assert_eq!(lines, ["spawn 0 EINVAL", "closed: spawn 0 ok"]);
}

/// Scenario (standard input a UDP socket): a UDP handle on a copy (libuv reads a
/// UDP socket until it has no datagram left, which waits on a blocking one).
fn udp_on_stdin() {
    let lp = Loop::new().unwrap();
    let u = Udp::new(&lp).unwrap();
    u.open(copy_of_std(0)).unwrap();
    report(format!("spawn 0 {}", spawn_inheriting(&lp, 0)));
    u.close();
    report(format!("closed: spawn 0 {}", spawn_inheriting(&lp, 0)));
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn inheriting_stdin_is_refused_while_a_udp_handle_shares_it() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let lines = run_scenario("udp_on_stdin", StdStdio::from(OwnedFd::from(socket)));
    assert_eq!(lines, ["spawn 0 EINVAL", "closed: spawn 0 ok"]);
}

/// Scenario (standard input a terminal): a terminal handle on a copy.
fn tty_on_stdin() {
    let lp = Loop::new().unwrap();
    let t = Tty::new(&lp, copy_of_std(0), true).unwrap();
    report(format!("spawn 0 {}", spawn_inheriting(&lp, 0)));
    t.close();
    lp.run(RunMode::Default).unwrap();
}

/// A terminal handle on a terminal libuv reopens (the slave side of a
/// pseudo-terminal, by its name) has an open file of its own: inheriting the
/// descriptor it was made from is not refused. On the master side, which libuv
/// cannot reopen, the handle shares the open file: refused.
#[test]
fn a_terminal_handle_shares_stdin_only_when_libuv_could_not_reopen_it() {
    let (master, slave) = uv_tests::pty();
    let lines = run_scenario("tty_on_stdin", StdStdio::from(slave));
    assert_eq!(lines, ["spawn 0 ok"]);
    drop(master);
    let (master, slave) = uv_tests::pty();
    let lines = run_scenario("tty_on_stdin", StdStdio::from(master));
    assert_eq!(lines, ["spawn 0 EINVAL"]);
    drop(slave);
}

/// Scenario (standard input a Unix socket): a poll handle watching a copy.
fn poll_on_stdin() {
    let lp = Loop::new().unwrap();
    let p = uv::Poll::new(&lp, copy_of_std(0)).unwrap();
    report(format!("spawn 0 {}", spawn_inheriting(&lp, 0)));
    p.close();
    lp.run(RunMode::Default).unwrap();
}

/// A poll handle does not count: libuv only watches its descriptor (the program
/// reads and writes it), so a blocking open file holds up no call of libuv's.
#[test]
fn a_poll_handle_on_stdin_does_not_refuse_inheriting_it() {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let lines = run_scenario("poll_on_stdin", StdStdio::from(OwnedFd::from(theirs)));
    drop(ours);
    assert_eq!(lines, ["spawn 0 ok"]);
}

/// Scenario (standard input a Unix socket): a pipe handle on a copy of standard
/// input is sent over an IPC pipe to this process itself and closed; the handle
/// that receives it shares standard input's open file.
fn ipc_receives_stdin() {
    let lp = Loop::new().unwrap();
    let a = Pipe::new(&lp, false).unwrap();
    a.open(copy_of_std(0)).unwrap();
    let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
    let sender = Pipe::new_ipc(&lp).unwrap();
    sender.open(x).unwrap();
    let receiver = Pipe::new_ipc(&lp).unwrap();
    receiver.open(y).unwrap();
    sender.write2("s", &a, |s, _| s.close()).unwrap();
    receiver
        .read_start(move |r, data| {
            data.unwrap();
            if r.pending_count().unwrap() == 0 {
                return;
            }
            a.close();
            report(format!("sent: spawn 0 {}", spawn_inheriting(&lp_of(r), 0)));
            let client = r.accept().unwrap();
            report(format!(
                "received: spawn 0 {}",
                spawn_inheriting(&lp_of(r), 0)
            ));
            client.close();
            report(format!(
                "closed: spawn 0 {}",
                spawn_inheriting(&lp_of(r), 0)
            ));
            r.close();
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
}

/// The loop of handle `h`.
fn lp_of(h: &uv::Handle) -> uv::LoopHandle {
    h.loop_()
}

/// A handle an IPC pipe receives counts when it shares a standard descriptor's
/// open file (here: a copy of standard input this process sent itself).
#[test]
fn a_received_handle_sharing_stdin_refuses_inheriting_it() {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let lines = run_scenario("ipc_receives_stdin", StdStdio::from(OwnedFd::from(theirs)));
    drop(ours);
    assert_eq!(
        lines,
        [
            "sent: spawn 0 ok",
            "received: spawn 0 EINVAL",
            "closed: spawn 0 ok"
        ]
    );
}

// ---- Where `kcmp` is refused: the same file with the same flags counts.

/// Makes `kcmp` fail with `EPERM` in this process from now on (a seccomp filter,
/// as a sandbox installs). The filter reads the system-call number only (this
/// test runs on the architecture it was built for).
#[cfg(target_os = "linux")]
fn refuse_kcmp() {
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let filter = [
        // The system-call number (`seccomp_data.nr`, at offset 0).
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_kcmp as u32,
        },
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prctl with integer arguments, then with a pointer to a valid filter
    // program that outlives the call (the kernel copies it).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog
            ),
            0,
            "seccomp: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Whether `kcmp` of descriptor 0 with itself fails with `EPERM`.
#[cfg(target_os = "linux")]
fn kcmp_refused() -> bool {
    let pid = std::process::id() as libc::c_long;
    // SAFETY: kcmp compares kernel objects; no memory is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid,
            pid,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    rc < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Where the system refuses `kcmp`, a handle's descriptor counts as sharing a
/// standard descriptor's open file when it is the same file with the same status
/// flags: a pipe handle on a copy of standard input still refuses inheriting it,
/// while standard output and error (other files) are inherited; a terminal libuv
/// reopened (non-blocking, the standard input it was made from is not) is not
/// counted, one it could not reopen is.
#[cfg(target_os = "linux")]
#[test]
fn without_kcmp_the_same_file_with_the_same_flags_counts_as_shared() {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let lines = run_scenario_with(
        "stream_on_stdin",
        StdStdio::from(OwnedFd::from(theirs)),
        true,
    );
    drop(ours);
    assert_eq!(
        lines,
        [
            "kcmp refused true",
            "spawn 0 EINVAL",
            "spawn 1 ok",
            "spawn 2 ok",
            "one closed: spawn 0 EINVAL",
            "both closed: spawn 0 ok",
            "stdin non-blocking false",
        ]
    );
    let (master, slave) = uv_tests::pty();
    let lines = run_scenario_with("tty_on_stdin", StdStdio::from(slave), true);
    assert_eq!(lines, ["kcmp refused true", "spawn 0 ok"]);
    drop(master);
    let (master, slave) = uv_tests::pty();
    let lines = run_scenario_with("tty_on_stdin", StdStdio::from(master), true);
    assert_eq!(lines, ["kcmp refused true", "spawn 0 EINVAL"]);
    drop(slave);
}
