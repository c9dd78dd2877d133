//! Scenarios of libuv's own test suite (`libuv/test/test-*.c`) that change
//! process-wide state, ported to the safe API: the working directory, the
//! descriptor limit, the user the process runs as, signals sent to the whole
//! process, and the controlling terminal. Each scenario runs in a child process of
//! its own (this binary again, running only `scenario_child`, one test thread), so
//! that nothing it changes reaches another test. Each test names the libuv file it
//! mirrors and checks values, counts, error codes and ordering, never durations.
//!
//! The scenarios at the descriptor limit run their child natively, also when the
//! suite runs under valgrind (`tests/valgrind.sh`), which emulates the limit itself
//! and would hand out descriptors the real limit refuses. The others run under
//! valgrind there too: a memory error or a definite leak in a child makes it exit
//! with status 99. CI runs as root: the scenarios "as a user" drop to uid and gid
//! 65534 first (where the process is not root and cannot switch, they run as the
//! user it is, and still check what a user sees).

#![cfg(target_os = "linux")]

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use uv::Stream as _;
use uv::{
    AddrInfoFlags, AddrInfoHints, CopyFileFlags, FileTime, Fs, FsEvent, FsEventFlags, Loop,
    NameInfoFlags, OpenFlags, Pipe, PollEvent, Process, ProcessOptions, RunMode, Signal, Signum,
    StatusCode, Stdio, Tcp, Tty, TtyMode,
};
use uv_tests::net::{iterations_while_idle, run_until, TempDir};
use uv_tests::DescriptorRoom;

/// Set in a child: the name of the scenario it runs.
const SCENARIO: &str = "UV_LIBUV_SCENARIOS_PROCESS";
/// Set in a child that works in a directory its parent made (and removes).
const DIR: &str = "UV_LIBUV_SCENARIOS_PROCESS_DIR";
/// The user and group the scenarios "as a user" switch to (`nobody`).
const NOBODY: u32 = 65534;

uv_tests::scenarios! {
    SCENARIO =>
    shed_at_the_limit,
    listener_without_a_reserve,
    requests_at_the_limit,
    host_lookups_at_the_limit,
    relative_paths_follow_chdir,
    cwd_of_a_removed_directory,
    deep_working_directory,
    spawn_as_a_user,
    fs_permissions_as_a_user,
    pipe_permissions_as_a_user,
    priority_and_passwd_as_a_user,
    signals_to_many_loops,
    one_shot_watch_of_an_ignored_sigchld,
    controlling_terminal,
    large_write_to_a_terminal,
    terminal_at_the_limit,
}

// ---------------------------------------------------------------------------
// Running the children

/// Runs `scenario` in a child (under valgrind when the suite is), with `dir` as
/// its working area when given; it must exit with status 0 having written
/// "scenario done".
fn run(scenario: &str, dir: Option<&Path>) {
    let mut cmd = uv_tests::scenario_command(SCENARIO, scenario);
    finish_child(scenario, &mut cmd, dir);
}

/// [`run`], never under valgrind: for the scenarios at the descriptor limit.
fn run_native(scenario: &str) {
    let mut cmd = uv_tests::native_scenario_command(SCENARIO, scenario);
    finish_child(scenario, &mut cmd, None);
}

fn finish_child(scenario: &str, cmd: &mut std::process::Command, dir: Option<&Path>) {
    if let Some(d) = dir {
        cmd.env(DIR, d);
    }
    let out = uv_tests::output_within(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{scenario}: {:?}\n{stderr}",
        out.status
    );
    assert!(stderr.contains("scenario done"), "{scenario}: {stderr}");
}

/// A directory for a child that switches user: made by this process, open to
/// every user (the child makes what it needs in it, and this process removes it
/// all on drop).
fn shared_dir(tag: &str) -> TempDir {
    let d = TempDir::new(tag);
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

/// The directory the parent gave the child ([`DIR`]).
fn given_dir() -> PathBuf {
    std::env::var_os(DIR)
        .expect("the parent names a directory")
        .into()
}

fn done() {
    eprintln!("scenario done");
}

fn code<T: std::fmt::Debug>(r: uv::Result<T>) -> StatusCode {
    r.expect_err("expected an error").code()
}

/// The error's code and the path it names.
fn code_and_path<T: std::fmt::Debug>(r: uv::Result<T>) -> (StatusCode, Option<PathBuf>) {
    let e = r.expect_err("expected an error");
    (e.code(), e.path().map(Path::to_path_buf))
}

/// Whether this process runs as root.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Switches the whole process (every thread: glibc changes them all) to
/// [`NOBODY`], with no supplementary groups, when it runs as root; true when it
/// switched. The process stays dumpable, so that its `/proc/self` entries stay
/// its own (a process that changed its user from root loses that by default,
/// and the runtime lists `/proc/self/fd`).
fn become_a_user() -> bool {
    if !is_root() {
        // Not root and unable to switch: the scenario runs as the user it is.
        return false;
    }
    // SAFETY: plain system calls on the process's credentials; no memory of
    // ours is involved (setgroups reads no list when given none).
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
        assert_eq!(libc::setgid(NOBODY), 0);
        assert_eq!(libc::setuid(NOBODY), 0);
        assert_eq!(libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0), 0);
    }
    assert!(!is_root());
    true
}

// ---------------------------------------------------------------------------
// The descriptor limit (test-emfile.c)

/// Mirrors libuv's test-emfile.c: a server listens, the process has one
/// descriptor left, and a client's connect takes it, so that the server's
/// accept fails with `EMFILE`. libuv then sheds the connection with the
/// descriptor it keeps in reserve: the connect succeeds, the listen callback is
/// not called, the client reads the end of the stream (or a reset). The reserve
/// comes back: a second connection at the limit is shed too, and once the limit
/// is lifted a third one reaches the listen callback and carries data. The loop
/// sleeps while it waits (a few iterations, not thousands). A Unix socket
/// server sheds a pipe's connection the same way.
#[test]
fn a_connection_at_the_limit_is_shed_and_the_loop_goes_on() {
    run_native("shed_at_the_limit");
}

/// Connects `client` to `addr` and reads from it until its end: the connect's
/// result and how the stream ended.
fn connect_and_read_end(lp: &Loop, client: &Tcp, addr: std::net::SocketAddr) -> (bool, StatusCode) {
    let connected = Rc::new(Cell::new(None));
    let ended = Rc::new(Cell::new(None));
    let (c, e) = (connected.clone(), ended.clone());
    client
        .connect(addr, move |s, r| {
            c.set(Some(r.is_ok()));
            let e = e.clone();
            s.read_start(move |s, data| match data {
                Ok(bytes) => panic!("{} bytes from a shed connection", bytes.len()),
                Err(err) => {
                    e.set(Some(err.code()));
                    s.close();
                }
            })
            .unwrap();
        })
        .unwrap();
    run_until(lp, || ended.get().is_some());
    (connected.get().unwrap(), ended.get().unwrap())
}

fn shed_at_the_limit() {
    let lp = Loop::new().unwrap();
    // The loop's first stream handle: libuv opens its reserve descriptor.
    let (server, addr) = uv_tests::net::bound_tcp(&lp);
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c = calls.clone();
    server
        .listen(8, move |s, r| {
            c.borrow_mut().push(r.map_err(|e| e.code()));
            let conn = s.accept().unwrap();
            conn.write("hello", |s, r| {
                r.unwrap();
                s.close();
            })
            .unwrap();
        })
        .unwrap();

    for round in 0..2 {
        let client = Tcp::new(&lp).unwrap();
        // One number left: the client's socket takes it.
        let room = DescriptorRoom::new(1);
        let (connected, end) = connect_and_read_end(&lp, &client, addr);
        drop(room);
        assert!(connected, "round {round}");
        assert!(
            end == StatusCode::EOF || end == StatusCode::ECONNRESET,
            "round {round}: {end:?}"
        );
        assert!(calls.borrow().is_empty(), "round {round}");
    }

    // With descriptors to spare, the next connection is the server's.
    let mut peer = std::net::TcpStream::connect(addr).unwrap();
    run_until(&lp, || !calls.borrow().is_empty());
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hello");
    assert_eq!(*calls.borrow(), vec![Ok(())]);
    // Unreferenced, the listening server leaves the run to the timer.
    server.unref().unwrap();
    assert!(iterations_while_idle(&lp) < 100);

    // The same for a Unix socket server, whose client (a pipe) takes the last
    // descriptor.
    let dir = TempDir::new("scen-proc-shed");
    let path = dir.join("s");
    let unix = Pipe::new(&lp, false).unwrap();
    unix.bind(&path).unwrap();
    let c = calls.clone();
    unix.listen(8, move |_, r| c.borrow_mut().push(r.map_err(|e| e.code())))
        .unwrap();
    let client = Pipe::new(&lp, false).unwrap();
    let connected = Rc::new(Cell::new(None));
    let ended = Rc::new(Cell::new(None));
    let room = DescriptorRoom::new(1);
    let (cn, e) = (connected.clone(), ended.clone());
    client
        .connect(&path, move |s, r| {
            cn.set(Some(r.is_ok()));
            let e = e.clone();
            s.read_start(move |s, data| {
                e.set(Some(data.map(|b| b.len()).map_err(|err| err.code())));
                s.close();
            })
            .unwrap();
        })
        .unwrap();
    run_until(&lp, || ended.get().is_some());
    drop(room);
    assert_eq!(connected.get(), Some(true));
    assert_eq!(ended.get(), Some(Err(StatusCode::EOF)));
    assert_eq!(*calls.borrow(), vec![Ok(())]);
    uv_tests::finish(&lp);
    drop((server, unix, client));
    lp.close().unwrap();
    done();
}

/// test-emfile.c when the loop has no reserve descriptor: its first stream handle
/// was made at the limit (libuv's open of the reserve failed, and only a later
/// stream handle's init tries again). A connection that then arrives at the limit
/// made libuv's accept fail with `EMFILE` and its shedding fail too (nothing to
/// give back), and return leaving the connection in the backlog and the server's
/// watch on: the loop spun, polling the same readable socket for as long as the
/// limit lasted (thousands of iterations while a 50 ms timer ran), without a word
/// to the listen callback. Now `listen` makes the reserve when the loop has none
/// (`EMFILE` when it cannot: the listen is refused, nothing is started), so the
/// connection is shed as in test-emfile.c and the loop sleeps.
#[test]
fn a_listener_without_a_reserve_descriptor_does_not_spin() {
    run_native("listener_without_a_reserve");
}

fn listener_without_a_reserve() {
    let lp = Loop::new().unwrap();
    let room = DescriptorRoom::new(0);
    // The loop's first stream handles, made at the limit: no reserve.
    let server = Tcp::new(&lp).unwrap();
    let other = Tcp::new(&lp).unwrap();
    drop(room);
    let any = "127.0.0.1:0".parse().unwrap();
    other.bind(any, uv::TcpFlags::empty()).unwrap();
    // A listen at the limit that would have no reserve: refused, and the
    // handle is not listening.
    let room = DescriptorRoom::new(0);
    assert_eq!(code(other.listen(8, |_, _| {})), StatusCode::EMFILE);
    drop(room);
    assert!(!other.is_active());
    other.close();

    server.bind(any, uv::TcpFlags::empty()).unwrap();
    let addr = server.local_addr().unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    server.listen(8, move |_, _| c.set(c.get() + 1)).unwrap();
    let mut peer = std::net::TcpStream::connect(addr).unwrap();
    server.unref().unwrap();
    let room = DescriptorRoom::new(0);
    let idle = iterations_while_idle(&lp);
    drop(room);
    assert!(idle < 100, "{idle} iterations");
    assert_eq!(calls.get(), 0);
    // Shed: the peer reads the end of the stream (or a reset), not "nothing yet".
    peer.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4];
    match peer.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    uv_tests::finish(&lp);
    drop((server, other));
    lp.close().unwrap();
    done();
}

/// test-emfile.c's limit for the other calls that make a descriptor: at the
/// limit the file-system requests that open one (`open` blocking and through
/// its callback, `mkstemp`, `opendir`, `scandir`) and a file watch's start
/// (libuv's inotify instance) are `EMFILE`, each callback called once, nothing
/// left open; so are the system functions that read a file or open a socket
/// (`cpu_info`, `interface_addresses`, `resident_set_memory`, `get_passwd`),
/// while a channel, `call_later` and `block_on` work (the loop made their
/// descriptors when it was made); with descriptors again each works, the watch
/// too (libuv tries its inotify instance again).
#[test]
fn requests_that_open_a_descriptor_are_emfile_at_the_limit() {
    run_native("requests_at_the_limit");
}

fn requests_at_the_limit() {
    let dir = TempDir::new("scen-proc-limit");
    let lp = Loop::new().unwrap();
    let file = dir.join("file");
    std::fs::write(&file, b"data").unwrap();
    let watch = FsEvent::new(&lp).unwrap();
    let results: Rc<RefCell<Vec<(&str, StatusCode)>>> = Rc::default();
    let room = DescriptorRoom::new(0);

    assert_eq!(
        code_and_path(Fs::open_sync(&lp, &file, OpenFlags::RDONLY, 0)),
        (StatusCode::EMFILE, Some(file.clone()))
    );
    assert_eq!(
        code(Fs::mkstemp_sync(&lp, dir.join("tmpXXXXXX"))),
        StatusCode::EMFILE
    );
    assert_eq!(code(Fs::opendir_sync(&lp, dir.path())), StatusCode::EMFILE);
    assert_eq!(code(Fs::scandir_sync(&lp, dir.path())), StatusCode::EMFILE);
    let r = results.clone();
    Fs::open(&lp, &file, OpenFlags::RDONLY, 0, move |res| {
        r.borrow_mut().push(("open", code(res)));
    })
    .unwrap();
    let r = results.clone();
    Fs::mkstemp(&lp, dir.join("cbXXXXXX"), move |res| {
        r.borrow_mut().push(("mkstemp", code(res)));
    })
    .unwrap();
    run_until(&lp, || results.borrow().len() == 2);
    assert_eq!(
        code(watch.start(dir.path(), FsEventFlags::empty(), |_, _, _, _| {})),
        StatusCode::EMFILE
    );
    assert!(!watch.is_active());
    // The system functions that read a file or open a socket.
    assert_eq!(code(uv::system::cpu_info()), StatusCode::EMFILE);
    assert_eq!(code(uv::system::interface_addresses()), StatusCode::EMFILE);
    assert_eq!(code(uv::system::resident_set_memory()), StatusCode::EMFILE);
    assert_eq!(code(uv::system::get_passwd()), StatusCode::EMFILE);
    // What the loop made its descriptors for when it was made still works.
    let woken = Rc::new(Cell::new(0));
    let w = woken.clone();
    let (tx, rx) = uv::channel::<u8>(&lp, move |v| w.set(w.get() + usize::from(v))).unwrap();
    tx.send(2).unwrap();
    lp.call_later(|| {}).unwrap();
    assert_eq!(lp.block_on(async { 5 }).unwrap(), 5);
    run_until(&lp, || woken.get() == 2);
    rx.close();
    drop(room);
    lp.run(RunMode::NoWait).unwrap();
    // Two pool requests: the pool finishes them in either order.
    results.borrow_mut().sort_by_key(|&(name, _)| name);
    assert_eq!(
        *results.borrow(),
        vec![
            ("mkstemp", StatusCode::EMFILE),
            ("open", StatusCode::EMFILE)
        ]
    );
    // Nothing was made by the failed calls.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let f = Fs::open_sync(&lp, &file, OpenFlags::RDONLY, 0).unwrap();
    f.close_sync(&lp).unwrap();
    assert!(!uv::system::cpu_info().unwrap().is_empty());
    uv::system::get_passwd().unwrap();
    assert_eq!(Fs::scandir_sync(&lp, dir.path()).unwrap().len(), 1);
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    watch
        .start(dir.path(), FsEventFlags::empty(), move |w, _, _, _| {
            s.set(s.get() + 1);
            w.close();
        })
        .unwrap();
    std::fs::write(dir.join("new"), b"x").unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(seen.get() >= 1);
    uv_tests::finish(&lp);
    drop(watch);
    lp.close().unwrap();
    done();
}

/// Host lookups at the descriptor limit. glibc's `getaddrinfo` can open neither
/// `/etc/hosts` nor a socket to a name server there and answers `EAI_NONAME`, so
/// `localhost` used to read as an unknown host; now the lookup is `EMFILE`,
/// blocking and through the pool (`getnameinfo` already was: glibc answers
/// `EAI_SYSTEM` with `errno`). A numeric host still resolves, and a
/// `NUMERICHOST` lookup of a name is still `EAI_NONAME` (it opens nothing). With
/// descriptors again `localhost` resolves to loopback.
#[test]
fn host_lookups_at_the_limit_are_emfile() {
    run_native("host_lookups_at_the_limit");
}

fn host_lookups_at_the_limit() {
    let lp = Loop::new().unwrap();
    let hints = AddrInfoHints::default();
    let numeric = AddrInfoHints::default().with_flags(AddrInfoFlags::NUMERICHOST);
    let local: std::net::SocketAddr = "127.0.0.1:80".parse().unwrap();
    let results: Rc<RefCell<Vec<(&str, StatusCode)>>> = Rc::default();
    let room = DescriptorRoom::new(0);

    assert_eq!(
        code(lp.getaddrinfo(Some("localhost"), None, &hints)),
        StatusCode::EMFILE
    );
    assert_eq!(
        code(lp.getnameinfo(local, NameInfoFlags::empty())),
        StatusCode::EMFILE
    );
    let got = lp.getaddrinfo(Some("127.0.0.1"), None, &numeric).unwrap();
    assert!(!got.is_empty());
    assert!(got.iter().all(|ai| ai.addr.ip() == local.ip()), "{got:?}");
    assert_eq!(
        code(lp.getaddrinfo(Some("localhost"), None, &numeric)),
        StatusCode::EAI_NONAME
    );
    let r = results.clone();
    lp.getaddrinfo_with(Some("localhost"), None, &hints, move |res| {
        r.borrow_mut().push(("addrinfo", code(res)));
    })
    .unwrap();
    let r = results.clone();
    lp.getnameinfo_with(local, NameInfoFlags::empty(), move |res| {
        r.borrow_mut().push(("nameinfo", code(res)));
    })
    .unwrap();
    run_until(&lp, || results.borrow().len() == 2);
    // Two pool requests: the pool finishes them in either order.
    results.borrow_mut().sort_by_key(|&(name, _)| name);
    assert_eq!(
        *results.borrow(),
        vec![
            ("addrinfo", StatusCode::EMFILE),
            ("nameinfo", StatusCode::EMFILE)
        ]
    );

    drop(room);
    let got = lp.getaddrinfo(Some("localhost"), None, &hints).unwrap();
    assert!(!got.is_empty());
    assert!(got.iter().all(|ai| ai.addr.ip().is_loopback()), "{got:?}");
    let found = Rc::new(Cell::new(0));
    let f = found.clone();
    lp.getaddrinfo_with(Some("localhost"), None, &hints, move |res| {
        let res = res.unwrap();
        assert!(res.iter().all(|ai| ai.addr.ip().is_loopback()), "{res:?}");
        f.set(res.len());
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(found.get() > 0);
    lp.getnameinfo(local, NameInfoFlags::empty()).unwrap();
    lp.close().unwrap();
    done();
}

// ---------------------------------------------------------------------------
// The working directory (test-cwd-and-chdir.c, test-spawn.c)

/// Mirrors libuv's test-cwd-and-chdir.c and test-spawn.c `spawn_relative_path`:
/// after `chdir`, `cwd` answers the new directory (without a trailing slash;
/// `/` stays `/`), relative paths of file-system requests (run on the thread
/// pool's threads) resolve there, a child process starts there, and a relative
/// `ProcessOptions::cwd` and a relative program (`./script`) resolve against it.
#[test]
fn relative_paths_resolve_after_chdir() {
    let dir = TempDir::new("scen-proc-chdir");
    run("relative_paths_follow_chdir", Some(dir.path()));
}

/// The output and exit status of `opts` run on `lp`.
fn output(lp: &Loop, opts: ProcessOptions<'_>) -> (String, i64) {
    let out = Pipe::new(lp, false).unwrap();
    let status = Rc::new(Cell::new(None));
    let s = status.clone();
    let opts = opts.stdout(Stdio::pipe_from_child(&out));
    Process::spawn(lp, &opts, move |p, code, _| {
        s.set(Some(code));
        p.close();
    })
    .unwrap();
    let got = uv_tests::read_to_end(&out);
    lp.run(RunMode::Default).unwrap();
    let text = String::from_utf8(got.borrow().clone()).unwrap();
    (text, status.get().expect("exited"))
}

fn relative_paths_follow_chdir() {
    let dir = given_dir().canonicalize().unwrap();
    let lp = Loop::new().unwrap();
    uv::system::chdir("/").unwrap();
    assert_eq!(uv::system::cwd().unwrap(), Path::new("/"));
    uv::system::chdir(&dir).unwrap();
    assert_eq!(uv::system::cwd().unwrap(), dir);
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/file"), b"relative").unwrap();
    std::fs::write(dir.join("sub/script"), b"#!/bin/sh\necho script ran\n").unwrap();
    std::fs::set_permissions(
        dir.join("sub/script"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    // Thread-pool requests with relative paths.
    let got = uv_tests::fs::slot();
    Fs::realpath(&lp, "sub", uv_tests::fs::put(&got)).unwrap();
    assert_eq!(uv_tests::fs::wait(&lp, &got).unwrap(), dir.join("sub"));
    let got = uv_tests::fs::slot();
    Fs::open(
        &lp,
        "sub/file",
        OpenFlags::RDONLY,
        0,
        uv_tests::fs::put(&got),
    )
    .unwrap();
    let f = uv_tests::fs::wait(&lp, &got).unwrap();
    assert_eq!(
        Fs::read_sync(&lp, &f, Vec::with_capacity(16), Some(0)).unwrap(),
        b"relative"
    );
    f.close_sync(&lp).unwrap();
    Fs::mkdir_sync(&lp, "made", 0o755).unwrap();
    assert!(dir.join("made").is_dir());

    // Children start in the new directory; a relative `cwd` and program too.
    assert_eq!(
        output(&lp, ProcessOptions::new("/bin/pwd")),
        (format!("{}\n", dir.display()), 0)
    );
    assert_eq!(
        output(&lp, ProcessOptions::new("/bin/pwd").cwd("sub")),
        (format!("{}\n", dir.join("sub").display()), 0)
    );
    assert_eq!(
        output(&lp, ProcessOptions::new("./script").cwd("sub")),
        ("script ran\n".to_string(), 0)
    );
    // A relative program is looked up in the child's `cwd`, not the parent's.
    let opts = ProcessOptions::new("./script");
    let err = Process::spawn(&lp, &opts, |_, _, _| panic!("no child")).unwrap_err();
    assert_eq!(err.code(), StatusCode::ENOENT);
    uv_tests::finish(&lp);
    lp.close().unwrap();
    done();
}

/// test-cwd-and-chdir.c with the directory removed under the process: `cwd` is
/// `ENOENT` (libuv's `getcwd` fails; no stale answer), relative requests fail
/// with `ENOENT` naming their path, a child still starts there, and `chdir` to
/// an absolute path brings everything back.
#[test]
fn cwd_of_a_removed_directory_is_enoent() {
    let dir = TempDir::new("scen-proc-removed");
    run("cwd_of_a_removed_directory", Some(dir.path()));
}

fn cwd_of_a_removed_directory() {
    let base = given_dir().canonicalize().unwrap();
    let gone = base.join("gone");
    std::fs::create_dir(&gone).unwrap();
    let lp = Loop::new().unwrap();
    uv::system::chdir(&gone).unwrap();
    std::fs::remove_dir(&gone).unwrap();
    assert_eq!(code(uv::system::cwd()), StatusCode::ENOENT);
    assert_eq!(
        code_and_path(Fs::mkdir_sync(&lp, "x", 0o755)),
        (StatusCode::ENOENT, Some(PathBuf::from("x")))
    );
    let got = uv_tests::fs::slot();
    Fs::open(
        &lp,
        "y",
        OpenFlags::CREAT | OpenFlags::WRONLY,
        0o644,
        uv_tests::fs::put(&got),
    )
    .unwrap();
    assert_eq!(code(uv_tests::fs::wait(&lp, &got)), StatusCode::ENOENT);
    let (_, status) = output(&lp, ProcessOptions::new("/bin/sh").args(["-c", "exit 3"]));
    assert_eq!(status, 3);
    uv::system::chdir(&base).unwrap();
    assert_eq!(uv::system::cwd().unwrap(), base);
    Fs::mkdir_sync(&lp, "x", 0o755).unwrap();
    assert!(base.join("x").is_dir());
    uv_tests::finish(&lp);
    lp.close().unwrap();
    done();
}

/// test-cwd-and-chdir.c's `ENOBUFS` path: a working directory longer than the
/// first buffer `cwd` offers libuv (libuv answers `ENOBUFS` with the size it
/// needs, and `cwd` asks again) comes back whole, at several lengths around the
/// buffer's.
#[test]
fn a_long_working_directory_comes_back_whole() {
    let dir = TempDir::new("scen-proc-deep");
    run("deep_working_directory", Some(dir.path()));
}

fn deep_working_directory() {
    let mut path = given_dir().canonicalize().unwrap();
    let mut checked = 0;
    while path.as_os_str().len() < 1500 {
        path.push("d".repeat(60));
        std::fs::create_dir(&path).unwrap();
        uv::system::chdir(&path).unwrap();
        assert_eq!(uv::system::cwd().unwrap(), path);
        checked += 1;
    }
    assert!(checked > 10);
    // A relative chdir from deep down.
    uv::system::chdir("..").unwrap();
    assert_eq!(uv::system::cwd().unwrap(), path.parent().unwrap());
    done();
}

// ---------------------------------------------------------------------------
// The user (test-spawn.c, test-fs.c, test-fs-copyfile.c, test-pipe-*.c, ...)

/// Mirrors libuv's test-spawn.c `spawn_setuid_fails` and `spawn_setgid_fails`
/// (and `spawn_setuid_setgid` for the user's own ids), and `spawn_fails`'
/// `EACCES`: a process that is not root asking for uid 0 or gid 0 is refused
/// with `EPERM`; a program without the execute bit, one in a directory of
/// root's the user may not search, and a `cwd` there are `EACCES` (the errors
/// of the child's `execvp` and `chdir`, sent back to the parent). No exit
/// callback runs and no handle is left; the user's own uid and gid are taken,
/// and the child runs with them.
#[test]
fn spawn_gets_the_errors_of_a_user() {
    let dir = shared_dir("scen-proc-spawn");
    run("spawn_as_a_user", Some(dir.path()));
}

fn spawn_as_a_user() {
    let base = given_dir();
    let private = base.join("private");
    std::fs::create_dir(&private).unwrap();
    let hidden = private.join("script");
    std::fs::write(&hidden, b"#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let not_exec = base.join("not-exec");
    std::fs::write(&not_exec, b"#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&not_exec, std::fs::Permissions::from_mode(0o644)).unwrap();
    let switched = become_a_user();
    // SAFETY: no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let lp = Loop::new().unwrap();
    let sh = || ProcessOptions::new("/bin/sh").args(["-c", "id -u; id -g"]);
    let exits = Rc::new(Cell::new(0));
    let mut refused = vec![
        (sh().uid(0), StatusCode::EPERM),
        (sh().gid(0), StatusCode::EPERM),
        (sh().uid(0).gid(0), StatusCode::EPERM),
        (ProcessOptions::new(&not_exec), StatusCode::EACCES),
    ];
    if switched {
        refused.push((ProcessOptions::new(&hidden), StatusCode::EACCES));
        refused.push((sh().cwd(&private), StatusCode::EACCES));
    }
    for (opts, want) in refused {
        let e = exits.clone();
        let err = Process::spawn(&lp, &opts, move |_, _, _| e.set(e.get() + 1)).unwrap_err();
        assert_eq!(err.code(), want, "{opts:?}");
        assert!(lp.handles().is_empty());
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(exits.get(), 0);
    assert_eq!(
        output(&lp, sh().uid(uid).gid(gid)),
        (format!("{uid}\n{gid}\n"), 0)
    );
    uv_tests::finish(&lp);
    lp.close().unwrap();
    done();
}

/// Mirrors the permission checks of libuv's test-fs.c (`chown_root_cb`: `EPERM`
/// for a user) and test-fs-copyfile.c (a copy onto a read-only file: done by
/// root, `EACCES` for a user): for a user, a file of root's is `EACCES` to
/// open for writing, to `access` with `W_OK`, to unlink or rename out of root's
/// directory, and a directory of root's `EACCES` to make a directory in, to
/// `scandir` or `opendir` when private; `chown`, `chmod` and `utime` of root's
/// file are `EPERM`; each error names its path, through a callback the same.
/// What the user owns still works.
#[test]
fn fs_requests_get_the_permission_errors_of_a_user() {
    let dir = shared_dir("scen-proc-fsperm");
    run("fs_permissions_as_a_user", Some(dir.path()));
}

fn fs_permissions_as_a_user() {
    let base = given_dir();
    let lp = Loop::new().unwrap();
    // Made by root (or by the user when the process cannot switch).
    let roots = base.join("roots");
    let private = base.join("private");
    let open = base.join("open");
    let file = roots.join("file");
    std::fs::create_dir(&roots).unwrap();
    std::fs::create_dir(&private).unwrap();
    std::fs::create_dir(&open).unwrap();
    std::fs::write(&file, b"root's").unwrap();
    std::fs::set_permissions(&roots, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    // test-fs-copyfile.c: root copies onto a read-only file.
    let ro = roots.join("ro");
    std::fs::write(&ro, b"").unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    if is_root() {
        Fs::copyfile_sync(&lp, &file, &ro, CopyFileFlags::empty()).unwrap();
        assert_eq!(std::fs::read(&ro).unwrap(), b"root's");
    }
    if !become_a_user() {
        // Not root: what the process made is its own, so only the errors of
        // what it does not own can be checked.
        assert_eq!(code(Fs::chown_sync(&lp, &file, 0, 0)), StatusCode::EPERM);
        done();
        return;
    }

    let eacces = |p: &Path| (StatusCode::EACCES, Some(p.to_path_buf()));
    let epoch = FileTime::At(std::time::UNIX_EPOCH);
    let eperm = |p: &Path| (StatusCode::EPERM, Some(p.to_path_buf()));
    assert_eq!(
        code_and_path(Fs::open_sync(&lp, &file, OpenFlags::WRONLY, 0)),
        eacces(&file)
    );
    assert_eq!(
        code_and_path(Fs::access_sync(&lp, &file, libc::W_OK)),
        eacces(&file)
    );
    Fs::access_sync(&lp, &file, libc::R_OK).unwrap();
    assert_eq!(code_and_path(Fs::unlink_sync(&lp, &file)), eacces(&file));
    assert_eq!(
        code_and_path(Fs::rename_sync(&lp, &file, open.join("moved"))),
        eacces(&file)
    );
    let sub = roots.join("sub");
    assert_eq!(
        code_and_path(Fs::mkdir_sync(&lp, &sub, 0o755)),
        eacces(&sub)
    );
    assert_eq!(
        code_and_path(Fs::scandir_sync(&lp, &private)),
        eacces(&private)
    );
    assert_eq!(
        code_and_path(Fs::opendir_sync(&lp, &private).map(|_| ())),
        eacces(&private)
    );
    assert_eq!(
        code_and_path(Fs::chown_sync(&lp, &file, 0, 0)),
        eperm(&file)
    );
    assert_eq!(
        code_and_path(Fs::chmod_sync(&lp, &file, 0o666)),
        eperm(&file)
    );
    assert_eq!(
        code_and_path(Fs::utime_sync(&lp, &file, epoch, epoch)),
        eperm(&file)
    );
    // test-fs-copyfile.c: a user's copy onto a read-only file.
    let mine_ro = open.join("mine-ro");
    std::fs::write(&mine_ro, b"").unwrap();
    std::fs::set_permissions(&mine_ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    assert_eq!(
        code_and_path(Fs::copyfile_sync(
            &lp,
            &file,
            &mine_ro,
            CopyFileFlags::empty()
        )),
        eacces(&file)
    );
    // Through callbacks: the same errors, once each.
    let results: Rc<RefCell<Vec<StatusCode>>> = Rc::default();
    let r = results.clone();
    Fs::open(&lp, &file, OpenFlags::RDWR, 0, move |res| {
        r.borrow_mut().push(code(res))
    })
    .unwrap();
    let r = results.clone();
    Fs::chown(&lp, &file, 0, 0, move |res| r.borrow_mut().push(code(res))).unwrap();
    lp.run(RunMode::Default).unwrap();
    // The pool's threads may finish them in either order.
    let mut got = results.borrow().clone();
    got.sort_by_key(|c| c.raw());
    let mut want = vec![StatusCode::EACCES, StatusCode::EPERM];
    want.sort_by_key(|c| c.raw());
    assert_eq!(got, want);

    // What the user owns.
    let mine = open.join("mine");
    let f = Fs::open_sync(&lp, &mine, OpenFlags::CREAT | OpenFlags::WRONLY, 0o600).unwrap();
    f.close_sync(&lp).unwrap();
    Fs::chmod_sync(&lp, &mine, 0o640).unwrap();
    Fs::chown_sync(&lp, &mine, NOBODY, NOBODY).unwrap();
    Fs::copyfile_sync(&lp, &file, &mine, CopyFileFlags::empty()).unwrap();
    assert_eq!(std::fs::read(&mine).unwrap(), b"root's");
    uv_tests::finish(&lp);
    lp.close().unwrap();
    done();
}

/// Mirrors libuv's test-pipe-bind-error.c (`EACCES` binding where the user may
/// not write), test-pipe-connect-error.c (`EACCES` connecting to a socket the user
/// may not write to, through the connect callback) and test-pipe-set-fchmod.c
/// (`chmod` of the user's own socket opens it to all; of root's socket `EPERM`).
#[test]
fn pipes_get_the_permission_errors_of_a_user() {
    let dir = shared_dir("scen-proc-pipeperm");
    run("pipe_permissions_as_a_user", Some(dir.path()));
}

fn pipe_permissions_as_a_user() {
    let base = given_dir();
    let roots = base.join("roots");
    let open = base.join("open");
    std::fs::create_dir(&roots).unwrap();
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&roots, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let lp = Loop::new().unwrap();
    // root's server, on a socket only its owner may write to.
    let root_sock = roots.join("server");
    let server = Pipe::new(&lp, false).unwrap();
    server.bind(&root_sock).unwrap();
    server
        .listen(4, |_, _| panic!("no client gets in"))
        .unwrap();
    std::fs::set_permissions(&root_sock, std::fs::Permissions::from_mode(0o700)).unwrap();
    if !become_a_user() {
        done();
        return;
    }

    let other = Pipe::new(&lp, false).unwrap();
    assert_eq!(code(other.bind(roots.join("mine"))), StatusCode::EACCES);
    other.close();
    let client = Pipe::new(&lp, false).unwrap();
    let result = Rc::new(Cell::new(None));
    let r = result.clone();
    client
        .connect(&root_sock, move |c, res| {
            r.set(Some(res.map_err(|e| e.code())));
            c.close();
        })
        .unwrap();
    run_until(&lp, || result.get().is_some());
    assert_eq!(result.get(), Some(Err(StatusCode::EACCES)));
    assert_eq!(
        code(server.chmod(PollEvent::READABLE | PollEvent::WRITABLE)),
        StatusCode::EPERM
    );

    let mine = Pipe::new(&lp, false).unwrap();
    let my_sock = open.join("mine");
    mine.bind(&my_sock).unwrap();
    mine.chmod(PollEvent::READABLE | PollEvent::WRITABLE)
        .unwrap();
    let mode = std::fs::metadata(&my_sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o666, 0o666, "{mode:o}");
    uv_tests::finish(&lp);
    drop((server, client, other, mine));
    lp.close().unwrap();
    done();
}

/// Mirrors libuv's test-process-priority.c (`EACCES` for a priority the user
/// may not take) and test-get-passwd.c (the entry of the user the process runs
/// as): a user may lower its priority, not raise it back; `get_passwd` answers
/// for the new user, and root's entry is still readable by uid.
#[test]
fn priority_and_passwd_of_a_user() {
    run("priority_and_passwd_as_a_user", None);
}

fn priority_and_passwd_as_a_user() {
    let switched = become_a_user();
    // SAFETY: no preconditions.
    let uid = unsafe { libc::geteuid() };
    let me = uv::system::get_passwd().unwrap();
    assert_eq!(me.uid, Some(u64::from(uid)));
    if switched {
        assert_eq!(me.gid, Some(u64::from(NOBODY)));
    }
    assert_eq!(uv::system::get_passwd_by_uid(0).unwrap().username, "root");
    let now = uv::system::getpriority(0).unwrap();
    let lower = (now + 5).min(uv::system::PRIORITY_LOW);
    uv::system::setpriority(0, lower).unwrap();
    assert_eq!(uv::system::getpriority(0).unwrap(), lower);
    assert_eq!(
        code(uv::system::setpriority(0, uv::system::PRIORITY_HIGHEST)),
        StatusCode::EACCES
    );
    assert_eq!(uv::system::getpriority(0).unwrap(), lower);
    done();
}

// ---------------------------------------------------------------------------
// Signals to the whole process (test-signal-multiple-loops.c)

/// Mirrors libuv's test-signal-multiple-loops.c: threads each run a loop that
/// watches SIGUSR1 (two handles), SIGUSR2, or both, while other threads make
/// and drop loops with a SIGTERM watch over and over; a SIGUSR1 and a SIGUSR2
/// sent to the process reach every watching handle of every loop, once each
/// (each callback stops its handle, so each run ends), twice: the second time
/// sent from a thread that blocks every signal, so that the handler runs on
/// another thread. The counts are exact; no SIGTERM callback runs.
#[test]
fn a_signal_reaches_every_loop_that_watches_it() {
    run("signals_to_many_loops", None);
}

fn signals_to_many_loops() {
    const PER_KIND: usize = 2;
    let threads = 3 * PER_KIND;
    let usr1 = Arc::new(AtomicUsize::new(0));
    let usr2 = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();

    let makers: Vec<_> = (0..2)
        .map(|_| {
            let (made, stop) = (made.clone(), stop.clone());
            std::thread::spawn(move || loop {
                let lp = Loop::new().unwrap();
                let s = Signal::new(&lp).unwrap();
                s.start(Signum::Terminate, |_, _| panic!("no SIGTERM is sent"))
                    .unwrap();
                s.close();
                lp.run(RunMode::Default).unwrap();
                drop(s);
                lp.close().unwrap();
                made.fetch_add(1, Ordering::SeqCst);
                if stop.load(Ordering::SeqCst) {
                    return;
                }
            })
        })
        .collect();

    let watchers: Vec<_> = (0..threads)
        .map(|i| {
            let (usr1, usr2, ready) = (usr1.clone(), usr2.clone(), ready_tx.clone());
            std::thread::spawn(move || {
                let lp = Loop::new().unwrap();
                let mut handles = Vec::new();
                if i % 3 != 1 {
                    for _ in 0..2 {
                        handles.push((Signal::new(&lp).unwrap(), Signum::User1, usr1.clone()));
                    }
                }
                if i % 3 != 0 {
                    handles.push((Signal::new(&lp).unwrap(), Signum::User2, usr2.clone()));
                }
                for _round in 0..2 {
                    for (h, signum, count) in &handles {
                        let (count, want) = (count.clone(), *signum);
                        h.start(*signum, move |h, got| {
                            assert_eq!(got, want);
                            count.fetch_add(1, Ordering::SeqCst);
                            h.stop().unwrap();
                        })
                        .unwrap();
                    }
                    ready.send(()).unwrap();
                    lp.run(RunMode::Default).unwrap();
                }
                uv_tests::finish(&lp);
                drop(handles);
                lp.close().unwrap();
            })
        })
        .collect();

    let send_both = || {
        // SAFETY: kill sends a signal to this process, whose loops watch it.
        unsafe {
            assert_eq!(libc::kill(libc::getpid(), libc::SIGUSR1), 0);
            assert_eq!(libc::kill(libc::getpid(), libc::SIGUSR2), 0);
        }
    };
    for _ in 0..threads {
        ready_rx.recv().unwrap();
    }
    send_both();
    for _ in 0..threads {
        ready_rx.recv().unwrap();
    }
    // From here on the handler runs on another thread.
    // SAFETY: `set` is a valid, filled signal set; the old mask is not asked for.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()),
            0
        );
    }
    send_both();
    for w in watchers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for m in makers {
        m.join().unwrap();
    }
    // Two groups watch SIGUSR1 with two handles each, two groups SIGUSR2 with
    // one; every handle sees both rounds.
    assert_eq!(usr1.load(Ordering::SeqCst), 2 * PER_KIND * 2 * 2);
    assert_eq!(usr2.load(Ordering::SeqCst), 2 * PER_KIND * 2);
    assert!(made.load(Ordering::SeqCst) >= 2);
    done();
}

// ---------------------------------------------------------------------------
// The controlling terminal (test-tty.c)

/// Makes this process the leader of a new session whose controlling terminal is
/// a new pseudo-terminal: its master side, and its slave side.
fn own_terminal() -> (OwnedFd, OwnedFd) {
    let (master, slave) = uv_tests::pty();
    // SAFETY: setsid and ioctl(TIOCSCTTY) touch no memory of ours; `slave` is an
    // open terminal.
    unsafe {
        assert!(libc::setsid() > 0, "{}", std::io::Error::last_os_error());
        assert_eq!(libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0), 0);
    }
    (master, slave)
}

/// The terminal settings of `fd`.
fn termios(fd: &OwnedFd) -> libc::termios {
    // SAFETY: `t` is a valid out-pointer; zeroes are a valid termios.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd.as_raw_fd(), &mut t), 0);
        t
    }
}

/// Mirrors libuv's test-tty.c `tty_file` and `tty` with a controlling terminal
/// (the child makes one of its own): `/dev/tty` opened for reading and writing,
/// reading only, writing only gives terminal handles readable and writable
/// accordingly, neither once closed; a line written through the read-write one
/// reaches the terminal's master side; `set_mode(Raw)` changes the terminal's
/// settings and `Tty::reset_mode` puts back the ones it had.
#[test]
fn the_controlling_terminal_through_dev_tty() {
    run("controlling_terminal", None);
}

fn controlling_terminal() {
    // The master side's close at the end hangs the terminal up: the kernel
    // sends SIGHUP to the session, this process.
    // SAFETY: SIG_IGN runs no code of ours.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let (master, slave) = own_terminal();
    let lp = Loop::new().unwrap();
    let open = |read: bool, write: bool| -> OwnedFd {
        std::fs::OpenOptions::new()
            .read(read)
            .write(write)
            .open("/dev/tty")
            .unwrap()
            .into()
    };
    for (read, write) in [(true, true), (true, false), (false, true)] {
        let t = Tty::new(&lp, open(read, write), read).unwrap();
        assert_eq!((t.is_readable(), t.is_writable()), (read, write));
        t.close();
        assert_eq!((t.is_readable(), t.is_writable()), (false, false));
    }
    lp.run(RunMode::Default).unwrap();

    let before = termios(&slave);
    let t = Tty::new(&lp, open(true, true), true).unwrap();
    let wrote = Rc::new(Cell::new(0));
    let w = wrote.clone();
    t.write("through /dev/tty", move |_, r| {
        r.unwrap();
        w.set(w.get() + 1);
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(wrote.get(), 1);
    let mut m = std::fs::File::from(master);
    let mut buf = [0u8; 64];
    let n = m.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"through /dev/tty");

    t.set_mode(TtyMode::Raw).unwrap();
    let raw = termios(&slave);
    assert_eq!(raw.c_lflag & (libc::ICANON | libc::ECHO), 0);
    assert_ne!(raw.c_lflag, before.c_lflag);
    Tty::reset_mode().unwrap();
    let back = termios(&slave);
    assert_eq!(
        (back.c_iflag, back.c_oflag, back.c_lflag),
        (before.c_iflag, before.c_oflag, before.c_lflag)
    );
    uv_tests::finish(&lp);
    drop(t);
    lp.close().unwrap();
    done();
}

/// Mirrors libuv's test-tty.c `tty_large_write` (and `tty_pty_partial`'s sizes)
/// on Unix: 64 KiB written to a terminal (a pseudo-terminal's slave side, which
/// libuv reopens non-blocking) whose master side nobody reads yet: the writes
/// queue (a `try_write` takes what fits and no more) instead of blocking the
/// loop; once the master side is read, everything arrives, in order, and each
/// write callback runs once, in order.
#[test]
fn a_large_write_to_a_terminal_queues_and_arrives_whole() {
    run("large_write_to_a_terminal", None);
}

fn large_write_to_a_terminal() {
    let (master, slave) = raw_pty();
    let lp = Loop::new().unwrap();
    let tty = Tty::new(&lp, slave, false).unwrap();
    write_64k_and_read_it(&lp, &tty, master);
    done();
}

/// A pseudo-terminal without output processing (the bytes arrive as written):
/// its master side, and its slave side.
fn raw_pty() -> (OwnedFd, OwnedFd) {
    let (master, slave) = uv_tests::pty();
    let mut t = termios(&slave);
    // SAFETY: `t` came from tcgetattr; `slave` is an open terminal.
    unsafe {
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t), 0);
    }
    (master, slave)
}

/// Writes 64 KiB to `tty` in eight writes while nobody reads `master`, its
/// terminal's other side: the writes must queue (the terminal takes a few KiB);
/// then reads `master` on another thread until everything arrived, in order,
/// with each write callback run once, in order. Closes the loop.
fn write_64k_and_read_it(lp: &Loop, tty: &Tty, master: OwnedFd) {
    let chunk: Vec<u8> = (0..8192u32).map(|i| b'a' + (i % 26) as u8).collect();
    let order = Rc::new(RefCell::new(Vec::new()));
    let mut sent = Vec::new();
    for i in 0..8u8 {
        let mut data = chunk.clone();
        data[0] = b'0' + i;
        sent.extend_from_slice(&data);
        let o = order.clone();
        tty.write(data, move |_, r| {
            r.unwrap();
            o.borrow_mut().push(i);
        })
        .unwrap();
    }
    lp.run(RunMode::NoWait).unwrap();
    // The terminal's buffer is full: the rest waits in the queue.
    assert!(tty.write_queue_size() > 0);
    assert!(order.borrow().len() < 8);
    // A read of the master side on another thread while the loop writes.
    let reader = std::thread::spawn(move || {
        let mut m = std::fs::File::from(master);
        let mut got = vec![0u8; 8 * 8192];
        m.read_exact(&mut got).unwrap();
        got
    });
    run_until(lp, || order.borrow().len() == 8);
    let got = reader.join().unwrap();
    assert!(got == sent, "the bytes differ");
    assert_eq!(*order.borrow(), (0..8).collect::<Vec<u8>>());
    assert_eq!(tty.write_queue_size(), 0);
    uv_tests::finish(lp);
}

/// Mirrors libuv's test-tty.c `tty_pty` (a terminal libuv does not reopen keeps
/// the descriptor it was given, with libuv's writes made blocking) at the
/// descriptor limit, where libuv cannot reopen a pseudo-terminal's slave side: on
/// a descriptor its owner made non-blocking (as reading it needs), a write
/// larger than the terminal's buffer while nobody read the other side spun in
/// libuv's write loop (`uv__write` retries a stream marked for blocking writes
/// at once on `EAGAIN`), inside `write`, for as long as nobody read: the loop's
/// thread never came back (the watchdog ends the child). Now the write is
/// queued as on any stream (`write` returns, the queue holds the rest), and
/// everything arrives once the other side reads, in order, each write callback
/// once, in order.
#[test]
fn a_terminal_libuv_could_not_reopen_queues_large_writes() {
    run_native("terminal_at_the_limit");
}

fn terminal_at_the_limit() {
    let done_flag = uv_tests::watchdog("a write to a terminal did not come back", 30);
    let (master, slave) = raw_pty();
    // SAFETY: F_SETFL on an open descriptor; only its status flags change.
    unsafe {
        let fl = libc::fcntl(slave.as_raw_fd(), libc::F_GETFL);
        assert_eq!(
            libc::fcntl(slave.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK),
            0
        );
    }
    let lp = Loop::new().unwrap();
    let room = DescriptorRoom::new(0);
    let tty = Tty::new(&lp, slave, false).unwrap();
    drop(room);
    write_64k_and_read_it(&lp, &tty, master);
    done_flag.store(true, Ordering::SeqCst);
    done();
}

/// A process that ignores `SIGCHLD` (set here before the first loop, which
/// records the signals the process ignores): a one-shot watch of it is refused
/// (`EINVAL`, the handle stopped) and `SIGCHLD` is ignored again after, for the
/// runtime keeps no lasting watch of `SIGCHLD` (ignoring it is not the same as
/// catching it: the kernel reaps ignored children), and libuv's one-shot
/// handler would be reset to the default action at its first delivery. A watch
/// for every delivery is taken, and its stop leaves `SIGCHLD` ignored.
fn one_shot_watch_of_an_ignored_sigchld() {
    let action = || {
        // SAFETY: a query (no new action); `cur` is a valid out-pointer.
        unsafe {
            let mut cur: libc::sigaction = std::mem::zeroed();
            assert_eq!(
                libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut cur),
                0
            );
            cur.sa_sigaction
        }
    };
    // SAFETY: installs `SIG_IGN` for SIGCHLD in this child process, before any
    // loop or thread of the library exists.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let lp = Loop::new().unwrap();
    let sig = uv::Signal::new(&lp).unwrap();
    let err = sig.start_oneshot(uv::Signum::Child, |_, _| {}).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert_eq!(sig.signum().unwrap(), None);
    assert_eq!(action(), libc::SIG_IGN);
    sig.start(uv::Signum::Child, |_, _| {}).unwrap();
    assert_ne!(action(), libc::SIG_IGN, "libuv's handler while watched");
    sig.stop().unwrap();
    assert_eq!(action(), libc::SIG_IGN);
    sig.close();
    lp.run(RunMode::Default).unwrap();
    done();
}

#[test]
fn a_one_shot_watch_of_an_ignored_sigchld_is_refused() {
    run("one_shot_watch_of_an_ignored_sigchld", None);
}
