//! Child processes, after libuv's test-spawn.c: exit codes, output through a created
//! pipe, input, kill, failed spawns (which leave no handle), environment, working
//! directory, closing handles in the exit callback, detached children, inherited
//! descriptors and streams, and the options' checks (NUL bytes, flags, pipes).

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::rc::Rc;

use uv::Stream as _;
use uv::{
    Loop, Pipe, Process, ProcessFlags, ProcessOptions, RunMode, Signum, StatusCode, Stdio,
    StdioFlags, Timer,
};

type Exit = Rc<Cell<Option<(i64, Option<Signum>)>>>;
type Calls = Rc<Cell<u32>>;

/// An exit callback that records its arguments and counts its calls.
fn recorder() -> (Exit, Calls, impl FnMut(&Process, i64, Option<Signum>)) {
    let exit: Exit = Rc::new(Cell::new(None));
    let calls = Rc::new(Cell::new(0));
    let (e, c) = (exit.clone(), calls.clone());
    (exit, calls, move |_: &Process, status, signal| {
        e.set(Some((status, signal)));
        c.set(c.get() + 1);
    })
}

/// Reads `pipe` to its end into a shared buffer, then closes it.
fn collect(pipe: &Pipe) -> Rc<RefCell<Vec<u8>>> {
    uv_tests::read_to_end(pipe)
}

fn sh(script: &str) -> ProcessOptions<'static> {
    ProcessOptions::new("/bin/sh").args(["-c", script])
}

#[test]
fn exit_code_and_no_signal() {
    let lp = Loop::new().unwrap();
    let (exit, calls, cb) = recorder();
    let p = Process::spawn(&lp, &sh("exit 42"), cb).unwrap();
    assert!(p.pid().unwrap() > 0);
    assert!(p.is_active());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(exit.get(), Some((42, None)));
    assert_eq!(calls.get(), 1);
    assert!(!p.is_active());
    // The pid stays readable after the exit.
    assert!(p.pid().unwrap() > 0);
}

#[test]
fn stdout_through_a_created_pipe() {
    let lp = Loop::new().unwrap();
    let out_pipe = Pipe::new(&lp, false).unwrap();
    let opts = ProcessOptions::new("/bin/echo")
        .arg("hello world")
        .stdout(Stdio::pipe_from_child(&out_pipe));
    let (exit, _, cb) = recorder();
    let _p = Process::spawn(&lp, &opts, cb).unwrap();
    let out = collect(&out_pipe);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&out.borrow()[..], b"hello world\n");
    assert_eq!(exit.get(), Some((0, None)));
}

#[test]
fn stdin_and_stdout_through_pipes() {
    let lp = Loop::new().unwrap();
    let (input, output) = (
        Pipe::new(&lp, false).unwrap(),
        Pipe::new(&lp, false).unwrap(),
    );
    let opts = ProcessOptions::new("/bin/cat")
        .stdin(Stdio::pipe_to_child(&input))
        .stdout(Stdio::pipe_from_child(&output));
    let (exit, _, cb) = recorder();
    Process::spawn(&lp, &opts, cb).unwrap();
    let out = collect(&output);
    input
        .write(b"through cat\n", |p, r| {
            r.unwrap();
            uv_tests::shutdown_and_close(p);
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&out.borrow()[..], b"through cat\n");
    assert_eq!(exit.get(), Some((0, None)));
}

#[test]
fn kill_ends_a_running_child_with_the_signal() {
    let lp = Loop::new().unwrap();
    let (exit, _, cb) = recorder();
    let p = Process::spawn(&lp, &ProcessOptions::new("/bin/sleep").arg("100"), cb).unwrap();
    p.kill(Signum::Terminate).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(exit.get(), Some((0, Some(Signum::Terminate))));
    // Reaped: libuv answers ESRCH instead of signalling a pid that may be reused.
    assert_eq!(
        p.kill(Signum::Terminate).unwrap_err().code(),
        StatusCode::ESRCH
    );
}

#[test]
fn kill_with_stdio_open() {
    let lp = Loop::new().unwrap();
    let (input, output) = (
        Pipe::new(&lp, false).unwrap(),
        Pipe::new(&lp, false).unwrap(),
    );
    let opts = ProcessOptions::new("/bin/cat")
        .stdin(Stdio::pipe_to_child(&input))
        .stdout(Stdio::pipe_from_child(&output));
    let (exit, _, cb) = recorder();
    let p = Process::spawn(&lp, &opts, cb).unwrap();
    let out = collect(&output);
    uv::kill(p.pid().unwrap(), Signum::Kill).unwrap();
    input.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(exit.get(), Some((0, Some(Signum::Kill))));
    assert!(out.borrow().is_empty());
}

#[test]
fn spawn_of_a_missing_program_fails_and_leaves_no_handle() {
    let lp = Loop::new().unwrap();
    let (exit, _, cb) = recorder();
    let err = Process::spawn(
        &lp,
        &ProcessOptions::new("/nonexistent/uv-test-program"),
        cb,
    )
    .unwrap_err();
    assert_eq!(err.code(), StatusCode::ENOENT);
    assert_eq!(err.operation(), "uv_spawn");
    assert!(lp.handles().is_empty());
    // The closed handle goes with the next iteration; nothing else runs.
    lp.run(RunMode::Default).unwrap();
    assert!(!lp.alive());
    assert_eq!(exit.get(), None);
    assert!(lp.close().is_ok());
}

/// A program that cannot be run leaves the pipes made for it open on their end,
/// as libuv does (the child's end closed): the output pipe reads its end, the
/// input pipe's write is `EPIPE`, and neither serves another spawn (`EBUSY`).
#[test]
fn spawn_of_a_missing_program_leaves_its_pipes_at_their_end() {
    let lp = Loop::new().unwrap();
    let (out, inp) = (
        Pipe::new(&lp, false).unwrap(),
        Pipe::new(&lp, false).unwrap(),
    );
    let options = ProcessOptions::new("/nonexistent/uv-test-program")
        .stdin(Stdio::pipe_to_child(&inp))
        .stdout(Stdio::pipe_from_child(&out));
    let err = Process::spawn(&lp, &options, |_, _, _| {}).unwrap_err();
    assert_eq!(err.code(), StatusCode::ENOENT);
    let again = Process::spawn(
        &lp,
        &sh("exit 0").stdout(Stdio::pipe_from_child(&out)),
        |_, _, _| {},
    )
    .unwrap_err();
    assert_eq!(again.code(), StatusCode::EBUSY);
    let read = collect(&out);
    let wrote = Rc::new(Cell::new(None));
    let w = wrote.clone();
    inp.write(b"lost".to_vec(), move |p, r| {
        w.set(Some(r.map_err(|e| e.code())));
        p.close();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(read.borrow().is_empty());
    assert!(out.is_closing());
    assert_eq!(wrote.get(), Some(Err(StatusCode::EPIPE)));
}

#[test]
fn spawn_of_a_file_that_is_not_executable_is_eacces() {
    let lp = Loop::new().unwrap();
    let dir = std::env::temp_dir().join(format!("uv-process-{}-eacces", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("not-executable");
    std::fs::write(&file, b"#!/bin/sh\n").unwrap();
    let err = Process::spawn(&lp, &ProcessOptions::new(&file), |_, _, _| {}).unwrap_err();
    assert_eq!(err.code(), StatusCode::EACCES);
    lp.run(RunMode::Default).unwrap();
    assert!(lp.handles().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_spawn_leaves_created_pipes_usable_and_closes_on_drop() {
    let lp = Loop::new().unwrap();
    let out_pipe = Pipe::new(&lp, false).unwrap();
    let opts = ProcessOptions::new("/nonexistent/uv-test-program")
        .stdout(Stdio::pipe_from_child(&out_pipe));
    let err = Process::spawn(&lp, &opts, |_, _, _| {}).unwrap_err();
    assert_eq!(err.code(), StatusCode::ENOENT);
    // Only the caller's pipe is left; it reads the end at once.
    assert_eq!(lp.handles().len(), 1);
    let out = collect(&out_pipe);
    lp.run(RunMode::Default).unwrap();
    assert!(out.borrow().is_empty());
    assert!(out_pipe.is_closed());
}

#[test]
fn nul_bytes_are_einval_before_libuv() {
    let lp = Loop::new().unwrap();
    let cases = [
        ProcessOptions::new("/bin/e\0cho"),
        ProcessOptions::new("/bin/echo").arg("a\0b"),
        ProcessOptions::new("/bin/echo").env("K\0", "v"),
        ProcessOptions::new("/bin/echo").env("K", "v\0"),
        ProcessOptions::new("/bin/echo").env_remove("K\0"),
        ProcessOptions::new("/bin/echo").cwd("/t\0mp"),
        ProcessOptions::new("/bin/echo").env("A=B", "v"),
        ProcessOptions::new("/bin/echo").env("", "v"),
    ];
    for opts in &cases {
        let err = Process::spawn(&lp, opts, |_, _, _| panic!("no child")).unwrap_err();
        assert_eq!(err.code(), StatusCode::EINVAL, "{opts:?}");
        assert_eq!(err.operation(), "uv_spawn");
    }
    assert!(lp.handles().is_empty());
    assert!(!lp.run(RunMode::NoWait).unwrap());
}

#[test]
fn flags_are_checked() {
    let lp = Loop::new().unwrap();
    for flags in [
        ProcessFlags::from_bits_retain(1 << 20),
        ProcessFlags::SETUID,
        ProcessFlags::SETGID,
    ] {
        let err = Process::spawn(&lp, &sh("exit 0").flags(flags), |_, _, _| {}).unwrap_err();
        assert_eq!(err.code(), StatusCode::EINVAL);
    }
    // Windows-only flags are accepted and ignored on Unix.
    let (exit, _, cb) = recorder();
    let opts =
        sh("exit 7").flags(ProcessFlags::WINDOWS_HIDE | ProcessFlags::WINDOWS_VERBATIM_ARGUMENTS);
    Process::spawn(&lp, &opts, cb).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(exit.get(), Some((7, None)));
}

/// Runs `opts` with stdout on a pipe; returns the output and the exit status.
fn output_of(opts: ProcessOptions<'_>) -> (String, i64) {
    let lp = Loop::new().unwrap();
    let out_pipe = Pipe::new(&lp, false).unwrap();
    let opts = opts.stdout(Stdio::pipe_from_child(&out_pipe));
    let (exit, _, cb) = recorder();
    Process::spawn(&lp, &opts, cb).unwrap();
    let out = collect(&out_pipe);
    lp.run(RunMode::Default).unwrap();
    let status = exit.get().expect("exited").0;
    let text = String::from_utf8(out.borrow().clone()).unwrap();
    (text, status)
}

#[test]
fn environment_set_cleared_and_removed() {
    let (out, status) = output_of(
        ProcessOptions::new("/usr/bin/env")
            .env_clear()
            .env("UV_A", "1")
            .env("UV_B", "two words"),
    );
    assert_eq!(status, 0);
    let mut lines: Vec<_> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["UV_A=1", "UV_B=two words"]);

    // Inherited, with one variable removed and one replaced.
    let (out, _) = output_of(
        sh("echo \"${PATH:+path}|${UV_GONE-unset}|$UV_SET\"")
            .env("UV_GONE", "x")
            .env_remove("UV_GONE")
            .env("UV_SET", "old")
            .env("UV_SET", "new"),
    );
    assert_eq!(out, "path|unset|new\n");
}

#[test]
fn working_directory() {
    let dir = std::env::temp_dir().canonicalize().unwrap();
    let (out, status) = output_of(
        ProcessOptions::new("/bin/sh")
            .args(["-c", "pwd -P"])
            .cwd(&dir),
    );
    assert_eq!(status, 0);
    assert_eq!(out.trim_end(), dir.to_str().unwrap());

    let lp = Loop::new().unwrap();
    let err =
        Process::spawn(&lp, &sh("exit 0").cwd("/nonexistent/uv-dir"), |_, _, _| {}).unwrap_err();
    assert_eq!(err.code(), StatusCode::ENOENT);
}

#[test]
fn arguments_reach_the_child_unchanged() {
    let (out, _) = output_of(ProcessOptions::new("/bin/sh").args([
        "-c",
        "printf '%s|' \"$0\" \"$@\"",
        "zero",
        "a b",
        "",
        "*",
    ]));
    assert_eq!(out, "zero|a b||*|");
}

#[test]
fn many_and_long_arguments_reach_the_child_unchanged() {
    // More bytes than the options reserve up front, so the stored strings grow
    // (move) while the arguments are added; an argument with a NUL among them
    // makes the spawn EINVAL, and the options say so before libuv is called.
    let long = "x".repeat(300);
    let many: Vec<String> = (0..40).map(|i| format!("arg{i}")).collect();
    let opts = ProcessOptions::new("/bin/sh")
        .arg("-c")
        .arg("printf '%s|' \"$@\"")
        .arg("zero")
        .args(&many)
        .arg(&long);
    let debug = format!("{opts:?}");
    assert!(debug.contains("\"/bin/sh\", \"-c\""), "{debug}");
    assert!(debug.contains("\"arg39\""), "{debug}");
    let (out, code) = output_of(opts);
    assert_eq!(code, 0);
    let mut expected: String = many.iter().map(|a| format!("{a}|")).collect();
    expected.push_str(&long);
    expected.push('|');
    assert_eq!(out, expected);

    let lp = Loop::new().unwrap();
    let bad = ProcessOptions::new("/bin/echo")
        .args(&many)
        .arg("a\0b")
        .arg("after");
    let err = Process::spawn(&lp, &bad, |_, _, _| {}).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert!(lp.handles().is_empty());
}

#[test]
fn close_handles_in_the_exit_callback() {
    let lp = Loop::new().unwrap();
    let out_pipe = Pipe::new(&lp, false).unwrap();
    let timer = Timer::new(&lp).unwrap();
    timer
        .start(
            std::time::Duration::from_secs(30),
            std::time::Duration::ZERO,
            |_| panic!("the exit callback closes the timer first"),
        )
        .unwrap();
    let opts = sh("exit 1").stdout(Stdio::pipe_from_child(&out_pipe));
    let (p2, t2) = (out_pipe.clone(), timer.clone());
    let closed = Rc::new(Cell::new(false));
    let c = closed.clone();
    Process::spawn(&lp, &opts, move |p, status, signal| {
        assert_eq!((status, signal), (1, None));
        p.close();
        p2.close();
        t2.close();
        c.set(true);
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(closed.get());
    assert!(out_pipe.is_closed() && timer.is_closed());
    assert!(lp.handles().is_empty());
}

#[test]
fn a_running_process_stays_open_without_references_until_it_exits() {
    let lp = Loop::new().unwrap();
    let (exit, calls, cb) = recorder();
    drop(Process::spawn(&lp, &sh("exit 5"), cb).unwrap());
    let handles = lp.handles();
    assert_eq!(handles.len(), 1);
    assert_eq!(handles[0].handle_type(), uv::HandleType::Process);
    assert!(handles[0].downcast::<Process>().is_some());
    drop(handles);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(exit.get(), Some((5, None)));
    assert_eq!(calls.get(), 1);
    // Closed after its exit callback: the loop has nothing left.
    assert!(lp.handles().is_empty());
    assert!(lp.close().is_ok());
}

#[test]
fn unref_process_does_not_keep_the_loop_running() {
    let lp = Loop::new().unwrap();
    let p = Process::spawn(
        &lp,
        &ProcessOptions::new("/bin/sleep").arg("100"),
        |_, _, _| {},
    )
    .unwrap();
    p.unref().unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    p.kill(Signum::Kill).unwrap();
    p.ref_().unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(!p.is_active());
}

#[test]
fn detached_child_outlives_its_handle() {
    let lp = Loop::new().unwrap();
    let p = Process::spawn(
        &lp,
        &ProcessOptions::new("/bin/sleep")
            .arg("100")
            .flags(ProcessFlags::DETACHED),
        |_, _, _| {},
    )
    .unwrap();
    let pid = p.pid().unwrap();
    p.unref().unwrap();
    lp.run(RunMode::Default).unwrap();
    p.close();
    lp.run(RunMode::Default).unwrap();
    // Still there after the handle is gone; own process group.
    uv::kill(pid, Signum::Kill).unwrap();
}

#[test]
fn inherit_descriptors_and_streams() {
    let lp = Loop::new().unwrap();
    // An owned pipe end: the child writes into it, the parent's copy closes with the
    // options.
    let (mut reader, writer) = std::io::pipe().unwrap();
    {
        let opts = sh("echo owned").stdout(Stdio::fd(writer));
        Process::spawn(&lp, &opts, |_, s, _| assert_eq!(s, 0)).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    let mut got = String::new();
    reader.read_to_string(&mut got).unwrap();
    assert_eq!(got, "owned\n");

    // A borrowed descriptor, on fd 3 of the child.
    let (mut reader, writer) = std::io::pipe().unwrap();
    {
        let opts = sh("echo borrowed >&3").stdio(3, Stdio::borrowed_fd(&writer));
        Process::spawn(&lp, &opts, |_, s, _| assert_eq!(s, 0)).unwrap();
        lp.run(RunMode::Default).unwrap();
    }
    drop(writer);
    let mut got = String::new();
    reader.read_to_string(&mut got).unwrap();
    assert_eq!(got, "borrowed\n");

    // A stream handle: one end of a socket pair opened in a Pipe.
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let stream = Pipe::new(&lp, false).unwrap();
    stream.open(a).unwrap();
    {
        let opts = sh("echo stream").stdout(Stdio::stream(&stream));
        Process::spawn(&lp, &opts, |_, s, _| assert_eq!(s, 0)).unwrap();
        lp.run(RunMode::Default).unwrap();
    }
    stream.close();
    lp.run(RunMode::Default).unwrap();
    let mut got = String::new();
    (&b).read_to_string(&mut got).unwrap();
    assert_eq!(got, "stream\n");
}

#[test]
fn bad_pipes_and_streams_are_refused_before_the_child_starts() {
    let lp = Loop::new().unwrap();
    let pipe = Pipe::new(&lp, false).unwrap();
    // The same pipe twice.
    let opts = sh("exit 0")
        .stdin(Stdio::pipe_to_child(&pipe))
        .stdout(Stdio::pipe_from_child(&pipe));
    let err = Process::spawn(&lp, &opts, |_, _, _| panic!("no child")).unwrap_err();
    assert_eq!(err.code(), StatusCode::EBUSY);
    // Flags that are not pipe flags.
    let opts = sh("exit 0").stdout(Stdio::Pipe(&pipe, StdioFlags::INHERIT_FD));
    let err = Process::spawn(&lp, &opts, |_, _, _| panic!("no child")).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    // A pipe that already has a descriptor.
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    pipe.open(a).unwrap();
    let opts = sh("exit 0").stdout(Stdio::pipe_from_child(&pipe));
    let err = Process::spawn(&lp, &opts, |_, _, _| panic!("no child")).unwrap_err();
    assert_eq!(err.code(), StatusCode::EBUSY);
    // A stream without a descriptor, and a closed one.
    let fresh = Pipe::new(&lp, false).unwrap();
    let opts = sh("exit 0").stdout(Stdio::stream(&fresh));
    let err = Process::spawn(&lp, &opts, |_, _, _| panic!("no child")).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    pipe.close();
    let opts = sh("exit 0").stdout(Stdio::stream(&pipe));
    let err = Process::spawn(&lp, &opts, |_, _, _| panic!("no child")).unwrap_err();
    assert!(err.is(uv::Category::ClosedHandle));
    fresh.close();
    lp.run(RunMode::Default).unwrap();
    assert!(lp.handles().is_empty());
}

#[test]
fn one_options_value_spawns_many_children() {
    let lp = Loop::new().unwrap();
    let opts = sh("exit 3");
    let done = Rc::new(Cell::new(0));
    for _ in 0..10 {
        let d = done.clone();
        Process::spawn(&lp, &opts, move |_, s, _| {
            assert_eq!(s, 3);
            d.set(d.get() + 1);
        })
        .unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(done.get(), 10);
}

#[test]
fn kill_checks_its_arguments() {
    assert_eq!(
        uv::kill(0, Signum::Terminate).unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(
        uv::kill(-1, Signum::Terminate).unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(
        uv::kill(std::process::id() as i32, Signum::Other(9999))
            .unwrap_err()
            .code(),
        StatusCode::EINVAL
    );
    let lp = Loop::new().unwrap();
    let p = Process::spawn(
        &lp,
        &ProcessOptions::new("/bin/sleep").arg("100"),
        |_, _, _| {},
    )
    .unwrap();
    assert_eq!(
        p.kill(Signum::Other(9999)).unwrap_err().code(),
        StatusCode::EINVAL
    );
    p.kill(Signum::Kill).unwrap();
    lp.run(RunMode::Default).unwrap();
    p.close();
    assert!(p
        .kill(Signum::Kill)
        .unwrap_err()
        .is(uv::Category::ClosedHandle));
    assert!(p.pid().unwrap_err().is(uv::Category::ClosedHandle));
}

#[test]
fn a_panic_in_the_exit_callback_reaches_run() {
    let lp = Loop::new().unwrap();
    Process::spawn(&lp, &sh("exit 0"), |_, _, _| panic!("from on_exit")).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run(RunMode::Default)));
    assert!(r.is_err());
    lp.run(RunMode::Default).unwrap();
    assert!(lp.handles().is_empty());
}

#[test]
fn disable_stdio_inheritance_can_be_called() {
    // Marks inherited descriptors close-on-exec; spawns still pass what they name.
    uv::disable_stdio_inheritance();
    let (out, status) = output_of(ProcessOptions::new("/bin/echo").arg("still"));
    assert_eq!((out.as_str(), status), ("still\n", 0));
}

/// `uid`/`gid` (test-spawn.c's spawn_setuid_setgid and spawn_setuid_fails): as root
/// the child runs as the user and group asked for; otherwise the spawn is refused
/// with `EPERM` and leaves no handle.
#[test]
fn uid_and_gid_as_root_or_eperm_otherwise() {
    const NOBODY: u32 = 65534;
    let lp = Loop::new().unwrap();
    let out_pipe = Pipe::new(&lp, false).unwrap();
    let opts = sh("id -u; id -g")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(Stdio::pipe_from_child(&out_pipe));
    let (exit, _, cb) = recorder();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    match Process::spawn(&lp, &opts, cb) {
        Ok(_p) => {
            assert!(root, "only root may change its uid");
            let out = collect(&out_pipe);
            lp.run(RunMode::Default).unwrap();
            assert_eq!(exit.get(), Some((0, None)));
            assert_eq!(&out.borrow()[..], b"65534\n65534\n");
        }
        Err(e) => {
            assert!(!root, "root may change its uid: {e}");
            assert_eq!(e.code(), StatusCode::EPERM);
            out_pipe.close();
            lp.run(RunMode::Default).unwrap();
            assert!(lp.handles().is_empty());
        }
    }
}

/// The state letter of process `pid` in `/proc/<pid>/stat` (`S` sleeping, `T`
/// stopped, ...); `None` where there is no `/proc`.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

#[test]
fn stop_and_continue_a_child() {
    let lp = Loop::new().unwrap();
    let (exit, calls, on_exit) = recorder();
    let p = Process::spawn(&lp, &sh("exec sleep 5"), on_exit).unwrap();
    let pid = p.pid().unwrap();
    p.kill(Signum::Stop).unwrap();
    let state = |want: char| {
        // The signal is delivered asynchronously: wait for the state to show it.
        (0..500).any(|_| {
            let s = proc_state(pid);
            if s.is_none() || s == Some(want) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
            false
        })
    };
    assert!(state('T'), "the child did not stop: {:?}", proc_state(pid));
    uv::kill(pid, Signum::Continue).unwrap();
    assert!(
        state('S'),
        "the child did not continue: {:?}",
        proc_state(pid)
    );
    p.kill(Signum::Kill).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(exit.get(), Some((0, Some(Signum::Kill))));
    assert_eq!(calls.get(), 1);
}

/// The Python package's "hello with a stdout pipe and extra stdio": the child
/// writes to its stdout and to a fourth descriptor, each a created pipe.
#[test]
fn stdout_and_an_extra_descriptor_through_created_pipes() {
    let lp = Loop::new().unwrap();
    let (out, extra) = (
        Pipe::new(&lp, false).unwrap(),
        Pipe::new(&lp, false).unwrap(),
    );
    let opts = sh("echo hello; echo extra >&3; exit 3")
        .stdout(Stdio::pipe_from_child(&out))
        .stdio(3, Stdio::pipe_from_child(&extra));
    let (exit, calls, cb) = recorder();
    Process::spawn(&lp, &opts, cb).unwrap();
    let (a, b) = (collect(&out), collect(&extra));
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&a.borrow()[..], b"hello\n");
    assert_eq!(&b.borrow()[..], b"extra\n");
    assert_eq!((exit.get(), calls.get()), (Some((3, None)), 1));
}

#[test]
#[cfg(target_os = "linux")]
fn an_exit_callback_closes_a_process_that_exited_in_the_same_pass() {
    // Both children have exited before the loop runs, so libuv reaps them in one
    // pass of its SIGCHLD handler (process.c:124-200) and calls the exit callbacks
    // one after the other. The first closes the second, which libuv had already
    // put on its list of exited processes: the list stays consistent (the
    // assertion at process.c:200 holds) and the second process closes.
    let lp = Loop::new().unwrap();
    let second: Rc<RefCell<Option<Process>>> = Rc::new(RefCell::new(None));
    let exits = Rc::new(RefCell::new(Vec::new()));
    let (s, e) = (second.clone(), exits.clone());
    let first = Process::spawn(&lp, &sh("exit 1"), move |p, status, _| {
        e.borrow_mut().push(status);
        if let Some(b) = s.borrow_mut().take() {
            b.close();
        }
        p.close();
    })
    .unwrap();
    let e = exits.clone();
    let b = Process::spawn(&lp, &sh("exit 2"), move |p, status, _| {
        e.borrow_mut().push(status);
        p.close();
    })
    .unwrap();
    *second.borrow_mut() = Some(b.clone());
    for pid in [first.pid().unwrap(), b.pid().unwrap()] {
        wait_until_exited(pid);
    }
    lp.run(RunMode::Default).unwrap();
    // The second's exit callback still runs: libuv had reaped it before the first
    // callback closed it.
    assert_eq!(*exits.borrow(), [1, 2]);
    assert!(first.is_closed());
    assert!(b.is_closed());
}

/// Waits until the child `pid` is a zombie (exited, not yet reaped).
#[cfg(target_os = "linux")]
fn wait_until_exited(pid: i32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        if state == Some(Some('Z')) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{pid} did not exit");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// libuv gives an inherited stream to the child in blocking mode, and the mode
/// belongs to the descriptor the parent's stream shares: after the spawn the
/// parent's stream is blocking. A reading stream must stay non-blocking (libuv
/// reads again after a read that filled its buffer, and on a blocking descriptor
/// that read waits for data with the loop stopped; `set_blocking(true)` is refused
/// while reading for that reason), so such a stream is refused (`EINVAL`, no
/// child) rather than left reading in blocking mode. A stream that is not reading is
/// accepted; it is blocking afterwards (`read_start` is then refused too), until
/// `set_blocking(false)`. A fuzzer finding: a stream left blocking this way made
/// the next large write wait for good.
#[test]
fn an_inherited_stream_is_blocking_after_the_spawn_and_a_reading_one_is_refused() {
    let lp = Loop::new().unwrap();
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let stream = Pipe::new(&lp, false).unwrap();
    stream.open(a).unwrap();
    let fd = stream.fileno().unwrap();
    stream.read_start(|_, _| {}).unwrap();
    let opts = sh("exit 0").stdout(Stdio::stream(&stream));
    let err = Process::spawn(&lp, &opts, |_, _, _| panic!("no child")).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    assert!(
        uv_tests::net::nonblocking(fd),
        "the reading stream is still non-blocking"
    );
    drop(opts);
    // Not reading: accepted, and blocking afterwards.
    stream.read_stop().unwrap();
    let opts = sh("exit 0").stdout(Stdio::stream(&stream));
    let (exit, _, cb) = recorder();
    Process::spawn(&lp, &opts, cb).unwrap();
    drop(opts);
    assert!(
        !uv_tests::net::nonblocking(fd),
        "libuv's blocking mode for the child"
    );
    let err = stream.read_start(|_, _| {}).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    stream.set_blocking(false).unwrap();
    assert!(uv_tests::net::nonblocking(fd));
    // Still refused: the child shares the file and may make it blocking again
    // (see `a_stream_given_to_a_child_starts_no_read`).
    let err = stream.read_start(|_, _| {}).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    while exit.get().is_none() {
        lp.run(RunMode::Once).unwrap();
    }
    assert_eq!(exit.get(), Some((0, None)));
    stream.close();
    lp.run(RunMode::Default).unwrap();
    drop(b);
}

/// A stream given to a child as stdio shares its open file with the child, which
/// can make it blocking whenever it likes: a shell without a script reads its
/// standard input and, finding no data on a non-blocking file, turns the
/// non-blocking mode off ("sh: turning off NDELAY mode"). A read the loop then made
/// waited for data forever (the API fuzzer's watchdog found the loop hung in
/// `read`). `read_start` on such a stream is `EINVAL` from the spawn on, also after
/// `set_blocking(false)`.
#[test]
fn a_stream_given_to_a_child_starts_no_read() {
    let lp = Loop::new().unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let p = uv::Pipe::new(&lp, false).unwrap();
    p.open(a).unwrap();
    let options = ProcessOptions::new("/bin/sh")
        .args(["-c", "exit 0"])
        .stdio(0, uv::Stdio::Stream(&p));
    let exited = Rc::new(Cell::new(false));
    let e = exited.clone();
    let child = uv::Process::spawn(&lp, &options, move |_, _, _| e.set(true)).unwrap();
    p.set_blocking(false).unwrap();
    let err = p.read_start(|_, _| {}).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    let err = p
        .read_start_with(uv::PoolAllocator::new(64, 1), |_, _| {})
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    // Writing and closing still work.
    assert_eq!(p.try_write(b"x").unwrap(), 1);
    while !exited.get() {
        lp.run(RunMode::Once).unwrap();
    }
    child.close();
    p.close();
    lp.run(RunMode::Default).unwrap();
}

/// `process_exists`: signal 0 (which `kill` refuses, as no `Signum`) probes a
/// pid: this process and a running child exist; the child, once reaped, does
/// not (`ESRCH`); pid 0 and negative ones (process groups) are `EINVAL`.
#[test]
fn process_exists_probes_a_pid_without_signalling_it() {
    assert_eq!(uv::process_exists(std::process::id() as i32), Ok(true));
    for pid in [0, -1, i32::MIN] {
        assert_eq!(
            uv::process_exists(pid).map_err(|e| e.code()),
            Err(StatusCode::EINVAL)
        );
    }
    let lp = Loop::new().unwrap();
    let (exit, _, cb) = recorder();
    let p = Process::spawn(&lp, &ProcessOptions::new("/bin/sleep").arg("100"), cb).unwrap();
    let pid = p.pid().unwrap();
    assert_eq!(uv::process_exists(pid), Ok(true));
    // Probed, not signalled: the child still runs, and ends by the real signal.
    p.kill(Signum::Terminate).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(exit.get(), Some((0, Some(Signum::Terminate))));
    assert_eq!(uv::process_exists(pid), Ok(false));
}
