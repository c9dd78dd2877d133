//! Attacks on the loop and the simple handles (timer, idle, prepare, check, signal,
//! poll, terminal, file watchers) and on the extension path (`uv::handle!` spec
//! files of another crate): safe code that could abort the process, hang, lose an
//! accepted value, leak or reach undefined behaviour. Each test pins the answer
//! the library gives instead.

#![cfg(unix)]
#![deny(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use uv::{Loop, RunMode, StatusCode, Timer};
use uv_tests::net::TempDir;

uv::handle!("spec/stat_watch.toml");
uv::handle!("spec/alarm.toml");
uv::handle!("spec/raw_stream.toml");

/// Set in a child (this binary, running only `scenario_child`, for code that
/// would end the process; under valgrind when the parent is, `tests/valgrind.sh`):
/// the name of the scenario it runs.
const SCENARIO: &str = "UV_ATTACKS_LOOP_HANDLES_SCENARIO";

uv_tests::scenarios! {
    SCENARIO =>
    broken_pipe_after_a_one_shot_alarm,
    broken_pipe_after_an_alarm_stopped,
    a_stream_over_a_regular_file,
}

/// Writes to a pipe whose read end is closed: `EPIPE` while the process ignores
/// SIGPIPE (as Rust programs do), death by SIGPIPE otherwise.
fn write_to_a_broken_pipe() -> std::io::Result<usize> {
    let (r, w) = uv::pipe(uv::StdioFlags::empty(), uv::StdioFlags::empty()).unwrap();
    drop(r);
    std::fs::File::from(w).write(b"x")
}

/// An extension crate's signal watcher (`tests/spec/alarm.toml`): a one-shot watch
/// of SIGPIPE, then two broken pipes. libuv installs a one-shot handler with
/// `SA_RESETHAND`: after the first SIGPIPE the signal has its default action, and
/// the second write ended the process (killed by SIGPIPE). The spec loader then
/// required the runtime's hooks for `uv_signal_start_oneshot`, which refused the
/// watch (`EINVAL`). The runtime now makes its lasting watch of SIGPIPE before
/// the start (`hooks::signal_start_call`, which the generator calls for an
/// extension's type too), so libuv installs no one-shot handler: the watch is
/// taken, sees the first broken pipe once, and both writes fail with `EPIPE`.
fn broken_pipe_after_a_one_shot_alarm() {
    let lp = Loop::new().unwrap();
    let alarm = Alarm::new(&lp).unwrap();
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    alarm
        .watch_once(uv::Signum::Pipe, move |_, _| g.set(g.get() + 1))
        .unwrap();
    assert!(alarm.is_active());
    assert_eq!(
        write_to_a_broken_pipe().unwrap_err().kind(),
        std::io::ErrorKind::BrokenPipe
    );
    // The delivery ends the one-shot watch, and with it the run.
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.get(), 1);
    assert!(!alarm.is_active());
    assert_eq!(
        write_to_a_broken_pipe().unwrap_err().kind(),
        std::io::ErrorKind::BrokenPipe
    );
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(got.get(), 1, "one-shot");
    alarm.close();
    lp.run(RunMode::Default).unwrap();
    eprintln!("scenario done");
}

/// The same watcher watching SIGPIPE for every delivery, then stopped, or switched
/// to another signal: libuv puts SIGPIPE back to its default action each time (a
/// broken pipe would then end the process); the runtime's `after` hook ignores it
/// again. While watched, a broken pipe is delivered to the callback.
fn broken_pipe_after_an_alarm_stopped() {
    let lp = Loop::new().unwrap();
    let alarm = Alarm::new(&lp).unwrap();
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    alarm
        .watch(uv::Signum::Pipe, move |_, s| {
            assert_eq!(s, uv::Signum::Pipe);
            g.set(g.get() + 1);
        })
        .unwrap();
    assert_eq!(
        write_to_a_broken_pipe().unwrap_err().kind(),
        std::io::ErrorKind::BrokenPipe
    );
    while got.get() == 0 {
        lp.run(RunMode::Once).unwrap();
    }
    alarm.unwatch().unwrap();
    assert_eq!(
        write_to_a_broken_pipe().unwrap_err().kind(),
        std::io::ErrorKind::BrokenPipe
    );
    alarm.watch(uv::Signum::Pipe, |_, _| {}).unwrap();
    alarm.watch(uv::Signum::User1, |_, _| {}).unwrap();
    assert_eq!(
        write_to_a_broken_pipe().unwrap_err().kind(),
        std::io::ErrorKind::BrokenPipe
    );
    alarm.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.get(), 1);
    eprintln!("scenario done");
}

#[test]
fn a_one_shot_watch_of_sigpipe_by_an_extension_type_leaves_broken_pipes_harmless() {
    uv_tests::assert_scenario_done(SCENARIO, "broken_pipe_after_a_one_shot_alarm");
}

#[test]
fn an_extension_type_that_stops_watching_an_ignored_signal_leaves_it_ignored() {
    uv_tests::assert_scenario_done(SCENARIO, "broken_pipe_after_an_alarm_stopped");
}

/// A one-shot start from inside the extension watcher's own delivery is `EBUSY`
/// (the runtime's `before` hook), and a start for every delivery after a one-shot
/// one lasts past its first signal (the mark is forgotten).
#[test]
fn an_extension_signal_watcher_keeps_uv_signal_rules() {
    let lp = Loop::new().unwrap();
    let alarm = Alarm::new(&lp).unwrap();
    let answers = Rc::new(RefCell::new(Vec::new()));
    let a = answers.clone();
    alarm
        .watch_once(uv::Signum::User2, move |h, _| {
            a.borrow_mut().push(
                h.watch_once(uv::Signum::User2, |_, _| {})
                    .map_err(|e| e.code()),
            );
        })
        .unwrap();
    uv_tests::raise("USR2");
    while answers.borrow().is_empty() {
        lp.run(RunMode::Once).unwrap();
    }
    assert_eq!(*answers.borrow(), vec![Err(StatusCode::EBUSY)]);
    assert!(!alarm.is_active());
    // One-shot, then for every delivery: two signals, two calls.
    alarm.watch_once(uv::Signum::User2, |_, _| {}).unwrap();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    alarm
        .watch(uv::Signum::User2, move |_, _| c.set(c.get() + 1))
        .unwrap();
    for n in 1..=2 {
        uv_tests::raise("USR2");
        while count.get() < n {
            lp.run(RunMode::Once).unwrap();
        }
        assert!(alarm.is_active());
    }
    alarm.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(count.get(), 2);
}

/// An extension crate's TCP stream (`tests/spec/raw_stream.toml`) opened over a
/// regular file, then read: libuv took the file (`uv_tcp_open` does not look at
/// the descriptor's kind), and the read's `epoll_ctl` failed with `EPERM`, which
/// libuv takes for impossible: the process aborted (SIGABRT: the `abort()` of
/// linux.c's batched `epoll_ctl` path, or the assertion `errno == EEXIST` of
/// `uv__io_poll` without it). The spec loader now requires `uv_tcp_open`'s descriptor
/// to be `owned_fd` of kind `stream_socket`, so the open is `ENOTSOCK` and the
/// file is handed back; a TCP socket opens and reads.
fn a_stream_over_a_regular_file() {
    use std::io::Read;
    use uv::Stream;
    let dir = TempDir::new("atk-rawstream");
    let path = dir.join("plain");
    std::fs::write(&path, b"data").unwrap();
    let lp = Loop::new().unwrap();
    let s = RawStream::new(&lp).unwrap();
    let rejected = s.open(std::fs::File::open(&path).unwrap()).unwrap_err();
    assert_eq!(rejected.error().code(), StatusCode::ENOTSOCK);
    let mut text = String::new();
    std::fs::File::from(rejected.into_value())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "data");
    // A socket of another kind: EINVAL.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rejected = s.open(udp).unwrap_err();
    assert_eq!(rejected.error().code(), StatusCode::EINVAL);
    // A TCP socket: it reads.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    s.open(server).unwrap();
    client.write_all(b"over tcp").unwrap();
    drop(client);
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    s.read_start(move |s, data| match data {
        Ok(d) => g.borrow_mut().extend_from_slice(d),
        Err(_) => s.close(),
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*got.borrow(), b"over tcp");
    eprintln!("scenario done");
}

#[test]
fn an_extension_stream_refuses_a_regular_file() {
    uv_tests::assert_scenario_done(SCENARIO, "a_stream_over_a_regular_file");
}

/// `Pipe::chmod` of a socket whose name fills `sun_path` (bound by another
/// program, and taken over with `open`): the `named` check before the call, and
/// libuv's `uv_pipe_chmod` after it, read the name through `uv_pipe_getsockname`,
/// whose `strlen` runs past the address on the stack (the call then chmod-ed
/// whatever path that made: this one only when a zero byte followed by chance).
/// `named` now refuses such a name first, `ENAMETOOLONG`, as `local_addr` does.
#[test]
fn chmod_of_a_socket_whose_name_fills_sun_path() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = TempDir::new("atk-chmod");
    let base = dir.path().as_os_str().len() + 1;
    let full = dir.join(&"s".repeat(108 - base));
    assert_eq!(full.as_os_str().len(), 108);
    let lp = Loop::new().unwrap();
    let pipe = uv::Pipe::new(&lp, false).unwrap();
    pipe.open(uv_tests::net::unix_socket_bound_raw(
        full.as_os_str().as_bytes(),
    ))
    .unwrap();
    let err = pipe.chmod(uv::PollEvent::READABLE).unwrap_err();
    assert_eq!(err.code(), StatusCode::ENAMETOOLONG);
    assert_eq!(
        pipe.local_addr().unwrap_err().code(),
        StatusCode::ENAMETOOLONG
    );
    pipe.close();
    lp.run(RunMode::Default).unwrap();
}

/// An extension crate's stat poller (`tests/spec/stat_watch.toml`, declared here
/// through `uv::handle!`) stopped while its first stat is in flight and started
/// again at once: libuv would let the stopped poll go on and abort in its timer
/// (`fs-poll.c:180: timer_cb: Assertion ctx->parent_handle->poll_ctx == ctx`).
/// The spec loader now refuses a `uv_fs_poll_start` method without the
/// `poll_settled` check, so the extension's `start` answers `EBUSY` as uv's own
/// `FsPoll::start` does, and starts once the loop has run (a missing path then
/// calls back once, with `ENOENT`).
#[test]
fn an_extension_stat_poller_restarted_while_its_stopped_poll_settles_is_ebusy() {
    let dir = TempDir::new("atk-statwatch");
    let lp = Loop::new().unwrap();
    let p = StatWatch::new(&lp).unwrap();
    p.start(dir.path(), Duration::from_millis(1), |_, _, _, _| {})
        .unwrap();
    p.stop().unwrap();
    let err = p
        .start(dir.path(), Duration::from_millis(1), |_, _, _, _| {})
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EBUSY);
    assert!(!p.is_active());
    // The stopped poll winds down; nothing is left to keep the loop alive.
    assert!(!lp.run(RunMode::Default).unwrap());
    // It starts now, and polls: a missing path calls back at once with its error.
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c = calls.clone();
    p.start(
        dir.join("missing"),
        Duration::from_millis(1),
        move |p, status, _, _| {
            c.borrow_mut().push(status.map_err(|e| e.code()));
            p.close();
        },
    )
    .unwrap();
    assert!(p.is_active());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*calls.borrow(), vec![Err(StatusCode::ENOENT)]);
}

/// Timers at the ends of the range: a timeout and a repeat of `Duration::MAX`
/// saturate (libuv's due time clamps), never wrap into "due now".
#[test]
fn timers_with_the_largest_durations_are_never_due() {
    let lp = Loop::new().unwrap();
    let fired = Rc::new(Cell::new(0));
    let t = Timer::new(&lp).unwrap();
    let f = fired.clone();
    t.start(Duration::MAX, Duration::MAX, move |_| f.set(f.get() + 1))
        .unwrap();
    assert_eq!(t.repeat().unwrap(), Duration::from_millis(u64::MAX));
    assert!(t.due_in().unwrap() >= Duration::from_millis(u64::MAX / 2));
    // Once the loop ran (libuv answers 0 while it has watchers to register), it
    // would block (bounded by libuv's INT_MAX clamp), not spin.
    assert!(lp.run(RunMode::NoWait).unwrap());
    let timeout = lp.backend_timeout().unwrap().expect("a bounded wait");
    assert!(timeout >= Duration::from_secs(1), "{timeout:?}");
    assert!(lp.run(RunMode::NoWait).unwrap());
    t.again().unwrap();
    assert!(lp.run(RunMode::NoWait).unwrap());
    t.set_repeat(Duration::from_millis(u64::MAX - 1)).unwrap();
    t.again().unwrap();
    assert!(t.due_in().unwrap() >= Duration::from_millis(u64::MAX / 2));
    assert!(lp.run(RunMode::NoWait).unwrap());
    assert_eq!(fired.get(), 0);
    t.close();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(fired.get(), 0);
}

/// A zero timeout fires in the next iteration; a zero repeat makes it one-shot;
/// `again` on a one-shot timer inside its callback is a no-op (it was started, so
/// not `EINVAL`), and the timer stays stopped.
#[test]
fn zero_durations_fire_once_and_again_inside_is_a_no_op() {
    let lp = Loop::new().unwrap();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let t = Timer::new(&lp).unwrap();
    let f = fired.clone();
    t.start(Duration::ZERO, Duration::ZERO, move |t| {
        f.borrow_mut().push(t.again().map_err(|e| e.code()));
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*fired.borrow(), vec![Ok(())]);
    assert!(!t.is_active());
    t.close();
    lp.run(RunMode::Default).unwrap();
}

/// What `uv_macros::request!` answers for a request spec of another crate (the
/// same generator): the code, or the problems it reports as a compile error.
fn expand_request(spec: &str) -> Result<(), String> {
    uv_codegen::expand_request_file(
        std::path::Path::new("attack.toml"),
        spec,
        &uv_codegen::emit::Ctx::default(),
    )
    .map(drop)
    .map_err(|d| d.to_string())
}

/// Request specs of another crate (through `uv_macros::request!`, whose code uses
/// `uv::runtime::loop_request`) calling the C functions that end a borrowed value:
/// run, `uv_fs_closedir` of a `&uv::Dir` freed the stream the `Dir` freed again
/// (glibc: `double free or corruption (fasttop)`, SIGABRT), and `uv_fs_close` of a
/// `&uv::File` closed the descriptor the `File` closed again when dropped, by then
/// another file's (whose reads failed with `EBADF`; Rust's runtime aborted:
/// `IO Safety violation: owned file descriptor already closed`). The loader now
/// refuses both, naming `Dir::close`/`File::close`; a read of a `&File` expands.
/// Results and buffer conversions are refused on C functions they do not fit.
#[test]
fn extension_requests_that_end_a_borrowed_value_are_refused() {
    let head = "[request]\nname = \"RawFs\"\nc_type = \"uv_fs_t\"\ntype_tag = \"UV_FS\"\n\
                cancel = true\ncleanup = \"uv_fs_req_cleanup\"\n\n";
    let closedir = format!(
        "{head}[[method]]\nname = \"closedir\"\nc = \"uv_fs_closedir\"\nresult = \"status\"\n\
         args = [{{ name = \"dir\", conv = \"dir\" }}]\n"
    );
    let e = expand_request(&closedir).unwrap_err();
    assert!(e.contains("uv::Dir::close"), "{e}");
    let close = format!(
        "{head}[[method]]\nname = \"close\"\nc = \"uv_fs_close\"\nresult = \"status\"\n\
         args = [{{ name = \"file\", conv = \"file\" }}]\n"
    );
    let e = expand_request(&close).unwrap_err();
    assert!(e.contains("uv::File::close"), "{e}");
    let read = format!(
        "{head}[[method]]\nname = \"read\"\nc = \"uv_fs_read\"\nresult = \"bytes\"\n\
         args = [{{ name = \"file\", conv = \"file\" }}, {{ name = \"buf\", conv = \"read_buf\" }}, \
         {{ name = \"offset\", conv = \"file_offset\" }}]\n"
    );
    expand_request(&read).unwrap();
    // Readers and buffers of other functions' requests (each was run: a `dir` out
    // of a stat's request aborted in `free(): invalid pointer`; a `file` out of it
    // owned descriptor 0; a write of a read buffer counted 64 uninitialised bytes
    // as read).
    for (c, result, args, fix) in [
        (
            "uv_fs_stat",
            "dir",
            "{ name = \"path\", conv = \"c_str_path\" }",
            "uv_fs_opendir",
        ),
        (
            "uv_fs_stat",
            "file",
            "{ name = \"path\", conv = \"c_str_path\" }",
            "uv_fs_open",
        ),
        (
            "uv_fs_unlink",
            "stat",
            "{ name = \"path\", conv = \"c_str_path\" }",
            "uv_fs_lstat",
        ),
        (
            "uv_fs_write",
            "count",
            "{ name = \"file\", conv = \"file\" }, { name = \"buf\", conv = \"read_buf\" }, \
             { name = \"offset\", conv = \"file_offset\" }",
            "`read_buf` is for uv_fs_read only",
        ),
        (
            "uv_fs_read",
            "count",
            "{ name = \"file\", conv = \"file\" }, { name = \"data\", conv = \"write_data\" }, \
             { name = \"offset\", conv = \"file_offset\" }",
            "`write_data` is for uv_fs_write only",
        ),
    ] {
        let spec = format!(
            "{head}[[method]]\nname = \"f\"\nc = \"{c}\"\nresult = \"{result}\"\nargs = [{args}]\n"
        );
        let e = expand_request(&spec).unwrap_err();
        assert!(e.contains(fix), "{e}");
    }
}

/// What `uv::handle!` answers for a handle spec of another crate (the same
/// generator): the code, or the problems it reports as a compile error.
fn expand(spec: &str) -> Result<(), String> {
    uv_codegen::expand_handle_file(
        std::path::Path::new("attack.toml"),
        spec,
        &uv_codegen::emit::Ctx::default(),
    )
    .map(drop)
    .map_err(|d| d.to_string())
}

/// A spec's handle table, constructor and callback, then `methods`.
fn spec_of(c_type: &str, tag: &str, init: &str, callback: &str, methods: &str) -> String {
    format!(
        "[handle]\nname = \"Attack\"\nc_type = \"{c_type}\"\ntype_tag = \"{tag}\"\n\n\
         [[constructor]]\nname = \"new\"\nc = \"{init}\"\n\n{callback}\n{methods}"
    )
}

/// Extension specs that reached a libuv abort, a killed process or a read past an
/// address from safe code (each was run: see the tests above, and for `uv_poll_start`
/// with raw event bits `poll.c:136: uv_poll_start: Assertion ... failed`) are
/// refused at compile time, with the fix named; the same specs written as uv's own
/// expand.
#[test]
fn extension_specs_that_reach_libuv_preconditions_are_refused() {
    let poll_cb = "[[callback]]\nname = \"on_event\"\nc_type = \"uv_poll_cb\"\n\
                   args = [{ name = \"status\", conv = \"status\" }, { name = \"events\", conv = \"flags\", type = \"PollEvent\" }]\n";
    let cases: Vec<(String, &str, bool)> = vec![
        // Raw event bits: libuv asserts on unknown ones.
        (
            format!(
                "[handle]\nname = \"Attack\"\nc_type = \"uv_poll_t\"\ntype_tag = \"UV_POLL\"\n\n\
                 [[constructor]]\nname = \"new\"\nc = \"uv_poll_init\"\nargs = [{{ name = \"fd\", conv = \"borrowed_fd\" }}]\n\n\
                 {poll_cb}\n[[method]]\nname = \"start\"\nc = \"uv_poll_start\"\n\
                 args = [{{ name = \"events\", conv = \"i32\" }}, {{ name = \"callback\", conv = \"callback\", callback = \"on_event\" }}]\n"
            ),
            "conv = \"flags\", type = \"PollEvent\"",
            false,
        ),
        (
            format!(
                "[handle]\nname = \"Attack\"\nc_type = \"uv_poll_t\"\ntype_tag = \"UV_POLL\"\n\n\
                 [[constructor]]\nname = \"new\"\nc = \"uv_poll_init\"\nargs = [{{ name = \"fd\", conv = \"borrowed_fd\" }}]\n\n\
                 {poll_cb}\n[[method]]\nname = \"start\"\nc = \"uv_poll_start\"\nrequires = [\"own_process\"]\n\
                 args = [{{ name = \"events\", conv = \"flags\", type = \"PollEvent\" }}, {{ name = \"callback\", conv = \"callback\", callback = \"on_event\" }}]\n"
            ),
            "",
            true,
        ),
        // The same start without its process check: in a forked child it would
        // take the descriptor out of the epoll instance the parent's loop uses.
        (
            format!(
                "[handle]\nname = \"Attack\"\nc_type = \"uv_poll_t\"\ntype_tag = \"UV_POLL\"\n\n\
                 [[constructor]]\nname = \"new\"\nc = \"uv_poll_init\"\nargs = [{{ name = \"fd\", conv = \"borrowed_fd\" }}]\n\n\
                 {poll_cb}\n[[method]]\nname = \"start\"\nc = \"uv_poll_start\"\n\
                 args = [{{ name = \"events\", conv = \"flags\", type = \"PollEvent\" }}, {{ name = \"callback\", conv = \"callback\", callback = \"on_event\" }}]\n"
            ),
            "add \"own_process\"",
            false,
        ),
        // A raw descriptor for a poll: not owned, not kept open.
        (
            "[handle]\nname = \"Attack\"\nc_type = \"uv_poll_t\"\ntype_tag = \"UV_POLL\"\n\n\
             [[constructor]]\nname = \"new\"\nc = \"uv_poll_init\"\nargs = [{ name = \"fd\", conv = \"fd\" }]\n"
                .to_string(),
            "conv = \"borrowed_fd\"",
            false,
        ),
        // A descriptor of any kind for a TCP stream: libuv aborts polling a file.
        (
            spec_of(
                "uv_tcp_t",
                "UV_TCP",
                "uv_tcp_init",
                "",
                "[[method]]\nname = \"open\"\nc = \"uv_tcp_open\"\n\
                 args = [{ name = \"socket\", conv = \"owned_fd\" }]\nafter = \"hold_opened_socket\"\n",
            ),
            "kind = \"stream_socket\"",
            false,
        ),
        // A terminal over a raw descriptor: libuv asserts closing 0 to 2.
        (
            "[handle]\nname = \"Attack\"\nc_type = \"uv_tty_t\"\ntype_tag = \"UV_TTY\"\nparent = \"stream\"\n\n\
             [[constructor]]\nname = \"new\"\nc = \"uv_tty_init\"\n\
             args = [{ name = \"fd\", conv = \"fd\" }, { name = \"readable\", conv = \"bool\" }]\n"
                .to_string(),
            "conv = \"owned_fd\"",
            false,
        ),
        // A pipe name that may fill sun_path.
        (
            "[handle]\nname = \"Attack\"\nc_type = \"uv_pipe_t\"\ntype_tag = \"UV_NAMED_PIPE\"\nparent = \"stream\"\n\n\
             [[constructor]]\nname = \"new\"\nc = \"uv_pipe_init\"\nargs = [{ name = \"ipc\", conv = \"bool\" }]\n\n\
             [[method]]\nname = \"bind\"\nc = \"uv_pipe_bind\"\nargs = [{ name = \"path\", conv = \"c_str_path\" }]\n"
                .to_string(),
            "conv = \"socket_path\"",
            false,
        ),
        // A stat poller without its settled check: fs-poll.c:180.
        (
            "[handle]\nname = \"Attack\"\nc_type = \"uv_fs_poll_t\"\ntype_tag = \"UV_FS_POLL\"\n\n\
             [[constructor]]\nname = \"new\"\nc = \"uv_fs_poll_init\"\n\n\
             [[callback]]\nname = \"on_change\"\nc_type = \"uv_fs_poll_cb\"\n\
             args = [{ name = \"status\", conv = \"status\" }, { name = \"prev\", conv = \"stat\" }, { name = \"curr\", conv = \"stat\" }]\n\n\
             [[method]]\nname = \"start\"\nc = \"uv_fs_poll_start\"\n\
             args = [{ name = \"callback\", conv = \"callback\", callback = \"on_change\" }, { name = \"path\", conv = \"c_str_path\" }, { name = \"interval\", conv = \"duration_ms_u32\" }]\n"
                .to_string(),
            "add \"poll_settled\"",
            false,
        ),
        // A one-shot signal watch without the runtime's hooks: killed by SIGPIPE.
        (
            "[handle]\nname = \"Attack\"\nc_type = \"uv_signal_t\"\ntype_tag = \"UV_SIGNAL\"\n\n\
             [[constructor]]\nname = \"new\"\nc = \"uv_signal_init\"\n\n\
             [[callback]]\nname = \"on_signal\"\nc_type = \"uv_signal_cb\"\n\
             args = [{ name = \"signum\", conv = \"enum\", type = \"Signum\" }]\n\n\
             [[method]]\nname = \"once\"\nc = \"uv_signal_start_oneshot\"\nbefore = \"refuse_oneshot_mid_delivery\"\n\
             args = [{ name = \"callback\", conv = \"callback\", callback = \"on_signal\" }, { name = \"signum\", conv = \"enum\", type = \"Signum\" }]\n"
                .to_string(),
            "after = \"refuse_oneshot_on_ignored\"",
            false,
        ),
    ];
    // Structs the runtime core would treat as what they are not (each was run: an
    // idle handle declared as a stream reached `stream.c:1319: uv__check_before_write:
    // Assertion` after reads past its allocation (valgrind); a `uv_fs_t` made by
    // `uv_fs_stat` as a handle crashed (SIGSEGV) when it closed).
    let cases = [
        cases,
        vec![
            (
                "[handle]\nname = \"Attack\"\nc_type = \"uv_idle_t\"\ntype_tag = \"UV_IDLE\"\nparent = \"stream\"\n\n\
                 [[constructor]]\nname = \"new\"\nc = \"uv_idle_init\"\n"
                    .to_string(),
                "`uv_idle_t` is not a stream",
                false,
            ),
            (
                "[handle]\nname = \"Attack\"\nc_type = \"uv_fs_t\"\ntype_tag = \"UV_FS\"\n\n\
                 [[callback]]\nname = \"on_done\"\nc_type = \"uv_fs_cb\"\n\n\
                 [[constructor]]\nname = \"new\"\nc = \"uv_fs_stat\"\n\
                 args = [{ name = \"path\", conv = \"c_str_path\" }, { name = \"cb\", conv = \"callback\", callback = \"on_done\" }]\n"
                    .to_string(),
                "`uv_fs_t` is not a libuv handle struct",
                false,
            ),
        ],
    ]
    .concat();
    for (spec, fix, ok) in &cases {
        match expand(spec) {
            Ok(()) => assert!(ok, "expanded:\n{spec}"),
            Err(e) => {
                assert!(!ok, "{e}\n{spec}");
                assert!(e.contains(fix), "{e}");
            }
        }
    }
    // The one-shot watch also needs its callback marked (the hook reads the mark).
    let unmarked = &cases[cases.len() - 3].0;
    let e = expand(unmarked).unwrap_err();
    assert!(e.contains("marks_delivery = true"), "{e}");
}

/// Signals libuv cannot watch (SIGKILL, SIGSTOP: `sigaction` refuses them) and
/// numbers no known signal has are `EINVAL` for both starts, before or from libuv,
/// and leave the handle stopped and usable.
#[test]
fn unwatchable_and_unknown_signals_are_einval() {
    let lp = Loop::new().unwrap();
    let sig = uv::Signal::new(&lp).unwrap();
    let bad = [
        uv::Signum::Kill,
        uv::Signum::Stop,
        uv::Signum::from_raw(0),
        uv::Signum::from_raw(-1),
        uv::Signum::from_raw(65),
        uv::Signum::from_raw(i32::MAX),
        uv::Signum::from_raw(i32::MIN),
    ];
    for s in bad {
        assert_eq!(
            sig.start(s, |_, _| {}).unwrap_err().code(),
            StatusCode::EINVAL,
            "{s:?}"
        );
        assert_eq!(
            sig.start_oneshot(s, |_, _| {}).unwrap_err().code(),
            StatusCode::EINVAL,
            "{s:?}"
        );
        assert!(!sig.is_active());
        assert_eq!(sig.signum().unwrap(), None);
    }
    // Still usable.
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    sig.start(uv::Signum::User1, move |s, n| {
        assert_eq!(n, uv::Signum::User1);
        g.set(g.get() + 1);
        s.close();
    })
    .unwrap();
    uv_tests::raise("USR1");
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.get(), 1);
}

/// A poll handle on a regular file (which epoll refuses) or on a directory is
/// refused by libuv's own check (`EPERM`) and the file is handed back; two poll
/// handles of one loop on one descriptor: the second is `EEXIST`.
#[test]
fn poll_on_descriptors_that_cannot_be_polled() {
    let dir = TempDir::new("atk-poll");
    let path = dir.join("plain");
    std::fs::write(&path, b"x").unwrap();
    let lp = Loop::new().unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let rejected = uv::Poll::new(&lp, file).unwrap_err();
    assert_eq!(rejected.error().code(), StatusCode::EPERM);
    let mut file = rejected.into_value();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).unwrap();
    assert_eq!(text, "x");
    let d = std::fs::File::open(dir.path()).unwrap();
    assert_eq!(
        uv::Poll::new(&lp, d).unwrap_err().error().code(),
        StatusCode::EPERM
    );
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = Rc::new(a);
    let first = uv::Poll::new(&lp, a.clone()).unwrap();
    assert_eq!(
        uv::Poll::new(&lp, a.clone()).unwrap_err().error().code(),
        StatusCode::EEXIST
    );
    first.close();
    lp.run(RunMode::Default).unwrap();
    // Closed, the descriptor can be watched again.
    let again = uv::Poll::new(&lp, a).unwrap();
    again.close();
    lp.run(RunMode::Default).unwrap();
}

/// A terminal handle over a pipe (libuv takes pipes): mode switches and the size
/// are errors of the system (not a terminal), never an abort; `reset_mode` is
/// fine; a regular file is `EINVAL` and handed back.
#[test]
fn a_terminal_handle_over_a_pipe_refuses_terminal_operations() {
    let lp = Loop::new().unwrap();
    let (r, _w) = uv::pipe(uv::StdioFlags::empty(), uv::StdioFlags::empty()).unwrap();
    let tty = uv::Tty::new(&lp, r, true).unwrap();
    for mode in [uv::TtyMode::Raw, uv::TtyMode::Io, uv::TtyMode::Normal] {
        let r = tty.set_mode(mode);
        assert!(
            r.as_ref()
                .is_err_and(|e| [StatusCode::ENOTTY, StatusCode::EINVAL].contains(&e.code()))
                || (mode == uv::TtyMode::Normal && r.is_ok()),
            "{mode:?}: {r:?}"
        );
    }
    assert!(tty.winsize().is_err());
    uv::Tty::reset_mode().unwrap();
    tty.close();
    lp.run(RunMode::Default).unwrap();
    let dir = TempDir::new("atk-tty");
    let path = dir.join("plain");
    std::fs::write(&path, b"x").unwrap();
    let rejected = uv::Tty::new(&lp, std::fs::File::open(&path).unwrap(), true).unwrap_err();
    assert_eq!(rejected.error().code(), StatusCode::EINVAL);
}

/// File watchers on paths that cannot be watched: missing (`ENOENT`), with a NUL
/// byte (`EINVAL`, before libuv), longer than the system takes (`ENAMETOOLONG`);
/// each leaves the watcher stopped and startable on a good path. A stat poller
/// with a zero interval polls (libuv makes it one millisecond) and calls back for
/// a missing path once, with `ENOENT`.
#[test]
fn file_watchers_on_paths_that_cannot_be_watched() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = TempDir::new("atk-watch");
    let lp = Loop::new().unwrap();
    let w = uv::FsEvent::new(&lp).unwrap();
    let long = std::path::PathBuf::from(format!("/{}", "x/".repeat(4000)));
    let nul = std::path::Path::new(std::ffi::OsStr::from_bytes(b"/tmp/a\0b"));
    let missing = dir.join("missing");
    for (p, code) in [
        (missing.as_path(), StatusCode::ENOENT),
        (nul, StatusCode::EINVAL),
        (long.as_path(), StatusCode::ENAMETOOLONG),
    ] {
        let e = w
            .start(p, uv::FsEventFlags::empty(), |_, _, _, _| {})
            .unwrap_err();
        assert_eq!(e.code(), code, "{}", p.display());
        assert!(!w.is_active());
    }
    w.start(dir.path(), uv::FsEventFlags::empty(), |_, _, _, _| {})
        .unwrap();
    assert!(w.is_active());
    w.close();

    let p = uv::FsPoll::new(&lp).unwrap();
    assert_eq!(
        p.start(nul, Duration::ZERO, |_, _| {}).unwrap_err().code(),
        StatusCode::EINVAL
    );
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    p.start(&missing, Duration::ZERO, move |p, r| {
        s.borrow_mut().push(r.map(drop).map_err(|e| e.code()));
        p.close();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*seen.borrow(), vec![Err(StatusCode::ENOENT)]);
}

/// `ref`/`unref` in any order and count: libuv keeps one flag, so the last call
/// wins; an unreferenced started timer does not keep `run` going, a referenced one
/// does; on a closed handle both answer `ClosedHandle` or nothing, never touch
/// libuv.
#[test]
fn ref_and_unref_in_any_order() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    t.start(Duration::from_millis(1), Duration::ZERO, move |_| {
        f.set(f.get() + 1)
    })
    .unwrap();
    t.unref().unwrap();
    t.unref().unwrap();
    assert!(!t.has_ref());
    assert!(!lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(fired.get(), 0);
    t.ref_().unwrap();
    t.ref_().unwrap();
    t.unref().unwrap();
    t.ref_().unwrap();
    assert!(t.has_ref());
    assert!(lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(fired.get(), 1);
    t.close();
    let (r, u) = (t.ref_(), t.unref());
    assert!(r.is_ok() || r.unwrap_err().kind() == uv::Category::ClosedHandle);
    assert!(u.is_ok() || u.unwrap_err().kind() == uv::Category::ClosedHandle);
    lp.run(RunMode::Default).unwrap();
    assert!(t.is_closed());
}

/// `configure` refuses `BlockSignal` (its signal argument goes through
/// `block_signal`), also when spelled `LoopOption::Other` with its C value: that
/// spelling passed the check (a comparison of enum variants) and reached
/// `uv_loop_configure` without the argument, which libuv then read with `va_arg`
/// (undefined behaviour in C; it answered `EINVAL` or blocked SIGPROF, depending
/// on a register's leftover value). Unknown values are libuv's `ENOSYS`; the
/// options without an argument can be set twice.
#[test]
fn configure_refuses_block_signal_however_it_is_spelled() {
    let lp = Loop::new().unwrap();
    let block = uv::LoopOption::BlockSignal.raw();
    for option in [uv::LoopOption::BlockSignal, uv::LoopOption::Other(block)] {
        assert_eq!(
            lp.configure(option).unwrap_err().code(),
            StatusCode::EINVAL,
            "{option:?}"
        );
    }
    for raw in [-1, 3, 1000, i32::MAX, i32::MIN] {
        let option = uv::LoopOption::Other(raw);
        if uv::LoopOption::from_raw(raw) != option {
            continue; // a known value (a later libuv's option)
        }
        assert_eq!(
            lp.configure(option).unwrap_err().code(),
            StatusCode::ENOSYS,
            "{option:?}"
        );
    }
    for _ in 0..2 {
        lp.configure(uv::LoopOption::MetricsIdleTime).unwrap();
        lp.configure(uv::LoopOption::Other(uv::LoopOption::MetricsIdleTime.raw()))
            .unwrap();
    }
    // Still a working loop.
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    Timer::once(&lp, Duration::ZERO, move |_| f.set(true)).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(fired.get());
}
