//! Attacks found by a review of the `unsafe` code of the runtime and of the code the
//! generator emits: for each `// SAFETY:` comment, safe code that breaks the
//! precondition it names, if the checks that should keep it do not hold on some
//! path (user code run between a check and the C call, an error path, the loop's
//! teardown). Each test says what used to happen; `tests/valgrind.sh
//! attacks_review` checks the memory side.

#![cfg(unix)]

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use uv::{Loop, RunMode, StatusCode, Stream as _};

/// A path argument whose `as_ref` (the caller's code, run by the method it is
/// given to) first calls `act` with the handle.
struct ActingPath<H> {
    handle: H,
    act: Box<dyn Fn(&H)>,
    path: PathBuf,
}

impl<H> AsRef<Path> for ActingPath<H> {
    fn as_ref(&self) -> &Path {
        (self.act)(&self.handle);
        &self.path
    }
}

/// Asserts that `lp` ends within `iterations` of `RunMode::NoWait` (its handles
/// closed, no request left), then drops it. A loop that does not end is leaked
/// before the assertion fails: its drop would wait for it for ever.
fn assert_ends(lp: Loop, iterations: usize) {
    let mut alive = true;
    for _ in 0..iterations {
        alive = lp.run(RunMode::NoWait).unwrap();
        if !alive {
            break;
        }
    }
    if alive || lp.alive() {
        std::mem::forget(lp);
        panic!("the loop is still alive after {iterations} iterations");
    }
}

fn acting<H: Clone>(
    handle: &H,
    path: impl Into<PathBuf>,
    act: impl Fn(&H) + 'static,
) -> ActingPath<H> {
    ActingPath {
        handle: handle.clone(),
        act: Box::new(act),
        path: path.into(),
    }
}

/// `FsEvent::start` with a path whose `as_ref` closes the handle: the generated
/// method checked that the handle was open, then converted the path, then called
/// `uv_fs_event_start` on the closing handle, which made it active again and
/// watched the directory with inotify; the close never completed and the loop never
/// ended (`run` hung; the close callback's memory would have been freed with libuv's
/// watcher still pointing at it). Now the path is converted before the check:
/// `ClosedHandle`, and the loop ends with the handle closed.
#[test]
fn fs_event_start_with_a_path_that_closes_the_handle_is_refused() {
    let lp = Loop::new().unwrap();
    let ev = uv::FsEvent::new(&lp).unwrap();
    let path = acting(&ev, std::env::temp_dir(), |h| h.close());
    let r = ev.start(path, uv::FsEventFlags::empty(), |_, _, _, _| {});
    assert_eq!(r.map_err(|e| e.kind()), Err(uv::Category::ClosedHandle));
    // One iteration runs the close callback; a handle left active keeps it alive.
    assert_ends(lp, 1);
    assert!(ev.is_closed());
}

/// The same for `FsPoll::start`: libuv started polling the closing handle (a
/// stat request in the thread pool), then aborted when the handle closed twice
/// (`Assertion !(handle->flags & UV_HANDLE_CLOSED)`, in `uv__finish_close` at
/// unix/core.c:315 or in `uv__make_close_pending` at core.c:270). Now
/// `ClosedHandle`.
#[test]
fn fs_poll_start_with_a_path_that_closes_the_handle_is_refused() {
    let lp = Loop::new().unwrap();
    let poll = uv::FsPoll::new(&lp).unwrap();
    let path = acting(&poll, std::env::temp_dir(), |h| h.close());
    let r = poll.start(path, std::time::Duration::from_millis(10), |_, _| {});
    assert_eq!(r.map_err(|e| e.kind()), Err(uv::Category::ClosedHandle));
    assert_ends(lp, 1);
    assert!(poll.is_closed());
}

/// `Pipe::connect` with a path whose `as_ref` connects the pipe: the generated
/// method checked `not_connecting` before it converted the path, so libuv's
/// `uv_pipe_connect2` ran with a connect already in flight and overwrote the
/// handle's `connect_req`: the first request was lost (its callback never ran, the
/// handle reference it held was never dropped) and the loop, counting it, never
/// ended. Now the path is converted first: `EALREADY`, and the first connect
/// completes.
#[test]
fn pipe_connect_with_a_path_that_connects_the_pipe_is_refused() {
    let lp = Loop::new().unwrap();
    let dir = uv_tests::net::TempDir::new("review-connect");
    let pipe = uv::Pipe::new(&lp, false).unwrap();
    let results = Rc::new(std::cell::RefCell::new(Vec::new()));
    let inner_start = Rc::new(Cell::new(None));
    let (r2, s2, missing) = (results.clone(), inner_start.clone(), dir.join("missing"));
    let path = acting(&pipe, dir.join("also-missing"), move |h| {
        let r2 = r2.clone();
        let started = h.connect(&missing, move |_, r| {
            r2.borrow_mut().push(("inner", r.map_err(|e| e.code())))
        });
        s2.set(Some(started.map_err(|e| e.code())));
    });
    let r3 = results.clone();
    let outer = pipe.connect(path, move |_, r| {
        r3.borrow_mut().push(("outer", r.map_err(|e| e.code())))
    });
    assert_eq!(inner_start.get(), Some(Ok(())));
    assert_eq!(outer.map_err(|e| e.code()), Err(StatusCode::EALREADY));
    pipe.close();
    // The failed connect's callback (cancelled by the close, or with its error if
    // it ran first) and the close callback, in one iteration.
    assert_ends(lp, 1);
    let results = results.borrow();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].0, "inner");
    assert!(
        matches!(
            results[0].1,
            Err(StatusCode::ENOENT | StatusCode::ECANCELED)
        ),
        "{results:?}"
    );
}

/// `Pipe::bind` with a path whose `as_ref` closes the pipe: `ClosedHandle` (libuv
/// refused the closing handle with a bare `EINVAL`, an argument error for a path
/// that was fine).
#[test]
fn pipe_bind_with_a_path_that_closes_the_pipe_is_closed_handle() {
    let lp = Loop::new().unwrap();
    let dir = uv_tests::net::TempDir::new("review-bind");
    let pipe = uv::Pipe::new(&lp, false).unwrap();
    let path = acting(&pipe, dir.join("sock"), |h| h.close());
    let r = pipe.bind(path);
    assert_eq!(r.map_err(|e| e.kind()), Err(uv::Category::ClosedHandle));
    lp.run(RunMode::Default).unwrap();
    assert!(!dir.join("sock").exists());
}

/// `read_start_with` whose allocator (asked for the first buffer after the
/// stream's checks) makes the stream listen and runs the loop until a connection
/// waits to be accepted: `uv_read_start` then ran on a listening stream that libuv
/// marks readable (opened from a descriptor), started polling it for connections
/// again, and the next connection aborted the process (stream.c:514,
/// `uv__server_io`: `Assertion stream->accepted_fd == -1`). Now the checks run
/// again after the allocator: `EINVAL`, and the connection stays pending.
#[test]
fn read_start_with_an_allocator_that_makes_the_stream_listen_is_refused() {
    use std::os::unix::net::UnixStream;
    let lp = Rc::new(Loop::new().unwrap());
    let dir = uv_tests::net::TempDir::new("review-listen");
    let path = dir.join("sock");
    let server = uv::Pipe::new(&lp, false).unwrap();
    let fd = uv_tests::net::unix_socket_bound_raw(path.as_os_str().as_encoded_bytes());
    server.open(fd).unwrap();
    struct Listening {
        lp: Rc<Loop>,
        server: uv::Pipe,
        path: PathBuf,
        clients: Rc<std::cell::RefCell<Vec<UnixStream>>>,
    }
    impl uv::ReadAllocator for Listening {
        fn allocate(&mut self, suggested: usize) -> Option<Box<[u8]>> {
            self.server.listen(8, |_, _| {}).unwrap();
            self.clients
                .borrow_mut()
                .push(UnixStream::connect(&self.path).unwrap());
            // The connection waits for `accept`; the server stops polling.
            self.lp.run(RunMode::NoWait).unwrap();
            Some(vec![0; suggested].into_boxed_slice())
        }
    }
    let clients = Rc::new(std::cell::RefCell::new(Vec::new()));
    let alloc = Listening {
        lp: lp.clone(),
        server: server.clone(),
        path: path.clone(),
        clients: clients.clone(),
    };
    let r = server.read_start_with(alloc, |_, _| {});
    assert_eq!(r.map_err(|e| e.code()), Err(StatusCode::EINVAL));
    // A second connection: the server must not be polled while the first waits.
    clients
        .borrow_mut()
        .push(UnixStream::connect(&path).unwrap());
    lp.run(RunMode::NoWait).unwrap();
    let client = server.accept().unwrap();
    server.close();
    client.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(clients.borrow().len(), 2);
}

/// `read_start_with` whose allocator drops the loop (its only owner, kept where
/// the allocator reaches it), then panics: the panic went to the loop's shared
/// state, which the drop had freed (valgrind: invalid read in
/// `LoopShared::panicked`, from `read_start_with`), and was lost with it. Now the
/// call keeps that state alive while the allocator runs, and a panic of a loop that
/// is gone goes on to the caller.
#[test]
fn read_start_with_an_allocator_that_drops_the_loop_then_panics() {
    uv_tests::provoke::quiet_provoked_panics();
    let lp = Rc::new(std::cell::RefCell::new(Some(Loop::new().unwrap())));
    let (a, b) = uv::Pipe::pair(lp.borrow().as_ref().unwrap()).unwrap();
    struct Dropping(Rc<std::cell::RefCell<Option<Loop>>>);
    impl uv::ReadAllocator for Dropping {
        fn allocate(&mut self, _: usize) -> Option<Box<[u8]>> {
            drop(self.0.borrow_mut().take());
            uv_tests::provoke::provoke("allocator");
        }
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.read_start_with(Dropping(lp.clone()), |_, _| {})
    }));
    let payload = r.expect_err("the allocator's panic reaches the caller");
    assert_eq!(uv_tests::provoke::provoked(&*payload), Some("allocator"));
    assert!(lp.borrow().is_none());
    assert!(a.is_closed() && b.is_closed());
}

/// The same allocator without the panic: the loop is gone when it returns, and the
/// call answers `ClosedHandle` (the stream was closed by the loop's drop).
#[test]
fn read_start_with_an_allocator_that_drops_the_loop_is_closed_handle() {
    let lp = Rc::new(std::cell::RefCell::new(Some(Loop::new().unwrap())));
    let (a, _b) = uv::Pipe::pair(lp.borrow().as_ref().unwrap()).unwrap();
    struct Dropping(Rc<std::cell::RefCell<Option<Loop>>>);
    impl uv::ReadAllocator for Dropping {
        fn allocate(&mut self, n: usize) -> Option<Box<[u8]>> {
            drop(self.0.borrow_mut().take());
            Some(vec![0; n].into_boxed_slice())
        }
    }
    let r = a.read_start_with(Dropping(lp.clone()), |_, _| {});
    assert_eq!(r.map_err(|e| e.kind()), Err(uv::Category::ClosedHandle));
    assert!(lp.borrow().is_none());
}
