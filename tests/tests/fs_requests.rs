//! The generated request type `Fs` (spec/requests/fs.toml): every function in its
//! synchronous and asynchronous form, errors, cancellation and loop teardown.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::rc::Rc;

use uv::{Fs, Loop, RunMode, StatusCode};
use uv_tests::net::TempDir;

/// Runs the loop until it has nothing left and returns what `slot` got.
fn wait<T>(lp: &Loop, slot: &Rc<RefCell<Option<T>>>) -> T {
    lp.run(RunMode::Default).unwrap();
    slot.borrow_mut().take().expect("the callback ran")
}

fn slot<T>() -> Rc<RefCell<Option<T>>> {
    Rc::new(RefCell::new(None))
}

fn put<T: 'static>(s: &Rc<RefCell<Option<T>>>) -> impl FnOnce(T) + 'static {
    let s = s.clone();
    move |v| *s.borrow_mut() = Some(v)
}

#[test]
fn stat_sync_and_async_agree_with_std() {
    let dir = TempDir::new("fs-stat");
    let file = dir.join("f.txt");
    std::fs::write(&file, b"hello, fs").unwrap();
    let lp = Loop::new().unwrap();
    let st = Fs::stat_sync(&lp, &file).unwrap();
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(st.size, 9);
    assert!(st.is_file() && !st.is_dir());
    assert_eq!(st.modified, meta.modified().unwrap());
    assert_eq!(st.ino, std::os::unix::fs::MetadataExt::ino(&meta));

    let got = slot();
    let req = Fs::stat(&lp, &file, put(&got)).unwrap();
    assert!(req.is_pending());
    let st2 = wait(&lp, &got).unwrap();
    assert!(!req.is_pending());
    assert_eq!(st2, st);
    // Done: cancelling now is EINVAL.
    assert_eq!(req.cancel().unwrap_err().code(), StatusCode::EINVAL);
}

#[test]
fn missing_paths_are_enoent_and_nul_bytes_einval() {
    let dir = TempDir::new("fs-errors");
    let lp = Loop::new().unwrap();
    let missing = dir.join("nope");
    let e = Fs::stat_sync(&lp, &missing).unwrap_err();
    assert_eq!(e.code(), StatusCode::ENOENT);
    assert_eq!(e.operation(), "uv_fs_stat");
    let got = slot();
    Fs::unlink(&lp, &missing, put(&got)).unwrap();
    assert_eq!(wait(&lp, &got).unwrap_err().code(), StatusCode::ENOENT);
    // A NUL byte never reaches libuv, in either form; nothing is started.
    assert_eq!(
        Fs::stat_sync(&lp, "a\0b").unwrap_err().code(),
        StatusCode::EINVAL
    );
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let e = Fs::stat(&lp, "a\0b", move |_| c.set(true)).unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    lp.run(RunMode::Default).unwrap();
    assert!(!called.get(), "a refused request has no callback");
}

#[test]
fn directories_links_and_renames() {
    let dir = TempDir::new("fs-dirs");
    let lp = Loop::new().unwrap();
    let sub = dir.join("sub");
    Fs::mkdir_sync(&lp, &sub, 0o755).unwrap();
    assert!(Fs::stat_sync(&lp, &sub).unwrap().is_dir());
    assert_eq!(
        Fs::mkdir_sync(&lp, &sub, 0o755).unwrap_err().code(),
        StatusCode::EEXIST
    );

    let a = sub.join("a");
    std::fs::write(&a, b"A").unwrap();
    let b = sub.join("b");
    let got = slot();
    Fs::rename(&lp, &a, &b, put(&got)).unwrap();
    wait(&lp, &got).unwrap();
    assert!(!a.exists() && b.exists());

    let hard = sub.join("hard");
    Fs::link_sync(&lp, &b, &hard).unwrap();
    assert_eq!(Fs::stat_sync(&lp, &b).unwrap().nlink, 2);

    let soft = sub.join("soft");
    Fs::symlink_sync(&lp, "b", &soft, uv::SymlinkFlags::empty()).unwrap();
    assert!(Fs::lstat_sync(&lp, &soft).unwrap().is_symlink());
    assert!(Fs::stat_sync(&lp, &soft).unwrap().is_file());
    let got = slot();
    Fs::readlink(&lp, &soft, put(&got)).unwrap();
    assert_eq!(wait(&lp, &got).unwrap(), PathBuf::from("b"));
    let real = Fs::realpath_sync(&lp, &soft).unwrap();
    assert_eq!(real, std::fs::canonicalize(&b).unwrap());

    // rmdir refuses a non-empty directory, then works once it is empty.
    assert_eq!(
        Fs::rmdir_sync(&lp, &sub).unwrap_err().code(),
        StatusCode::ENOTEMPTY
    );
    for f in [&b, &hard, &soft] {
        Fs::unlink_sync(&lp, f).unwrap();
    }
    let got = slot();
    Fs::rmdir(&lp, &sub, put(&got)).unwrap();
    wait(&lp, &got).unwrap();
    assert!(!sub.exists());
}

#[test]
fn mkdtemp_chmod_and_access() {
    let dir = TempDir::new("fs-tmp");
    let lp = Loop::new().unwrap();
    let got = slot();
    Fs::mkdtemp(&lp, dir.join("t-XXXXXX"), put(&got)).unwrap();
    let made = wait(&lp, &got).unwrap();
    assert!(made.starts_with(dir.path()));
    let name = made.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("t-") && name.len() == 8, "{name}");
    assert!(made.is_dir());
    // A template without the Xs is EINVAL.
    assert_eq!(
        Fs::mkdtemp_sync(&lp, dir.join("t-no")).unwrap_err().code(),
        StatusCode::EINVAL
    );

    let f = made.join("f");
    std::fs::write(&f, b"x").unwrap();
    Fs::chmod_sync(&lp, &f, 0o600).unwrap();
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(Fs::stat_sync(&lp, &f).unwrap().permissions(), 0o600);
    Fs::access_sync(&lp, &f, libc::F_OK).unwrap();
    assert_eq!(
        Fs::access_sync(&lp, made.join("none"), libc::F_OK)
            .unwrap_err()
            .code(),
        StatusCode::ENOENT
    );
}

#[test]
fn cancelled_requests_get_ecanceled_and_the_others_complete() {
    let dir = TempDir::new("fs-cancel");
    let file = dir.join("f");
    std::fs::write(&file, b"x").unwrap();
    let lp = Loop::new().unwrap();
    const N: usize = 200;
    let results: Rc<RefCell<Vec<Option<StatusCode>>>> = Rc::default();
    let mut reqs = Vec::new();
    for _ in 0..N {
        let r = results.clone();
        reqs.push(
            Fs::stat(&lp, &file, move |res| {
                r.borrow_mut().push(res.err().map(|e| e.code()));
            })
            .unwrap(),
        );
    }
    let mut cancelled = 0;
    for r in &reqs {
        match r.cancel() {
            Ok(()) => cancelled += 1,
            // Already on a thread, or done.
            Err(e) => assert!(matches!(e.code(), StatusCode::EBUSY | StatusCode::EINVAL)),
        }
    }
    lp.run(RunMode::Default).unwrap();
    let results = results.borrow();
    assert_eq!(results.len(), N, "every callback ran once");
    let ecanceled = results
        .iter()
        .filter(|r| **r == Some(StatusCode::ECANCELED))
        .count();
    assert_eq!(ecanceled, cancelled);
    assert!(results
        .iter()
        .all(|r| r.is_none() || *r == Some(StatusCode::ECANCELED)));
    assert!(reqs.iter().all(|r| !r.is_pending()));
}

#[test]
fn pending_requests_keep_the_loop_alive_and_run_at_loop_drop() {
    let dir = TempDir::new("fs-drop");
    let lp = Loop::new().unwrap();
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    Fs::mkdir(&lp, dir.join("d"), 0o700, move |res| {
        res.unwrap();
        r.set(r.get() + 1);
    })
    .unwrap();
    assert!(lp.alive());
    assert_eq!(lp.close().unwrap_err().code(), StatusCode::EBUSY);
    // Dropped with the request in flight: its callback still runs.
    drop(lp);
    assert_eq!(ran.get(), 1);
    assert!(dir.join("d").is_dir());
}

#[test]
fn a_closed_loop_refuses_new_requests() {
    let lp = Loop::new().unwrap();
    let h = lp.handle();
    lp.close().unwrap();
    assert_eq!(
        Fs::stat_sync(&h, "/").unwrap_err().kind(),
        uv::Category::ClosedLoop
    );
    assert_eq!(
        Fs::stat(&h, "/", |_| {}).unwrap_err().kind(),
        uv::Category::ClosedLoop
    );
}

/// A finished request's `uv::Request` stays finished when later requests start
/// (which may reuse the slab's memory of others): not pending, `cancel` is EINVAL, and it
/// never reaches the new request (which stays pending and is cancelled only
/// through its own value).
#[test]
fn an_old_request_value_never_reaches_a_later_request() {
    let lp = uv::Loop::new().unwrap();
    let dir = std::env::temp_dir();
    let first = uv::Fs::stat(&lp, &dir, |r| {
        r.unwrap();
    })
    .unwrap();
    let copy = first.clone();
    assert!(first.is_pending() && copy.is_pending());
    lp.run(uv::RunMode::Default).unwrap();
    assert!(!first.is_pending());
    let later: Vec<uv::Request> = (0..4)
        .map(|_| uv::Fs::stat(&lp, &dir, drop).unwrap())
        .collect();
    assert!(later.iter().all(uv::Request::is_pending));
    assert!(!first.is_pending() && !copy.is_pending());
    assert_eq!(first.cancel().unwrap_err().code(), uv::StatusCode::EINVAL);
    assert!(later.iter().all(uv::Request::is_pending));
    lp.run(uv::RunMode::Default).unwrap();
    assert!(!later.iter().any(uv::Request::is_pending));
}

/// The io_uring instances of this process (`anon_inode:[io_uring]` descriptors).
#[cfg(target_os = "linux")]
fn io_uring_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.as_os_str() == "anon_inode:[io_uring]")
        .count()
}

#[test]
#[cfg(target_os = "linux")]
fn requests_through_the_io_uring_ring_complete_and_refuse_cancel() {
    // libuv sends file-system requests through an io_uring ring (SQPOLL) only with
    // `UseIoUringSqpoll` and UV_USE_IO_URING=1, which it reads once per process: the
    // test runs itself again in a child with the variable set. Each completion is
    // checked to be a file-system request (linux.c:1255): the request struct stays in
    // place until its callback. A request on the ring cannot be cancelled (EBUSY).
    const NAME: &str = "requests_through_the_io_uring_ring_complete_and_refuse_cancel";
    if std::env::var_os("UV_TESTS_IO_URING_CHILD").is_none() {
        let out = uv_tests::output_within(
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", NAME, "--test-threads=1"])
                .env("UV_USE_IO_URING", "1")
                .env("UV_TESTS_IO_URING_CHILD", "1"),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "{text}");
        return;
    }
    let dir = TempDir::new("fs-io-uring");
    let file = dir.join("f");
    std::fs::write(&file, b"ring data").unwrap();
    let lp = Loop::new().unwrap();
    lp.configure(uv::LoopOption::UseIoUringSqpoll).unwrap();
    let before = io_uring_fds();
    if before == 0 {
        // No io_uring on this system (not even libuv's epoll batching ring).
        eprintln!("io_uring is not available: nothing to test");
        return;
    }
    const N: usize = 16;
    let sizes: Rc<RefCell<Vec<u64>>> = Rc::default();
    let mut reqs = Vec::new();
    for _ in 0..N {
        let s = sizes.clone();
        reqs.push(Fs::stat(&lp, &file, move |r| s.borrow_mut().push(r.unwrap().size)).unwrap());
    }
    assert_eq!(io_uring_fds(), before + 1, "the file-system ring was made");
    for r in &reqs {
        assert_eq!(r.cancel().unwrap_err().code(), StatusCode::EBUSY);
    }
    let opened = slot();
    let req = Fs::open(&lp, &file, uv::OpenFlags::RDONLY, 0, put(&opened)).unwrap();
    assert_eq!(req.cancel().unwrap_err().code(), StatusCode::EBUSY);
    let f = wait(&lp, &opened).unwrap();
    assert_eq!(*sizes.borrow(), vec![9; N]);
    let data = slot();
    Fs::read(&lp, &f, Vec::with_capacity(64), Some(0), put(&data)).unwrap();
    assert_eq!(wait(&lp, &data).unwrap(), b"ring data");
    assert!(reqs.iter().all(|r| !r.is_pending()));
}

/// Paths of every length around the inline limit of a request's C string (119
/// bytes; longer ones go to the heap) reach libuv whole, in both forms; a NUL byte
/// at either side of the limit is EINVAL, and every error names its path.
#[test]
fn paths_around_the_inline_limit() {
    let dir = TempDir::new("fs-pathlen");
    let lp = Loop::new().unwrap();
    let base = dir.join("").into_os_string().into_string().unwrap();
    for total in [1usize, 118, 119, 120, 121, 250] {
        // A path of exactly `total` bytes (relative ones for the short lengths).
        let p: PathBuf = if total < base.len() + 2 {
            "x".repeat(total).into()
        } else {
            format!("{base}{}", "y".repeat(total - base.len())).into()
        };
        assert_eq!(p.as_os_str().len(), total);
        let e = Fs::stat_sync(&lp, &p).unwrap_err();
        assert_eq!(e.code(), StatusCode::ENOENT, "{total}");
        assert_eq!(e.path(), Some(p.as_path()), "{total}");
        let got = slot();
        Fs::stat(&lp, &p, put(&got)).unwrap();
        let e = wait(&lp, &got).unwrap_err();
        assert_eq!(e.code(), StatusCode::ENOENT, "{total}");
        assert_eq!(e.path(), Some(p.as_path()), "{total}");
        if total >= base.len() + 2 {
            std::fs::write(&p, b"abc").unwrap();
            assert_eq!(Fs::stat_sync(&lp, &p).unwrap().size, 3, "{total}");
            let got = slot();
            Fs::stat(&lp, &p, put(&got)).unwrap();
            assert_eq!(wait(&lp, &got).unwrap().size, 3, "{total}");
            std::fs::remove_file(&p).unwrap();
        }
        // The same length with a NUL as the last byte.
        let mut b = std::os::unix::ffi::OsStringExt::into_vec(p.into_os_string());
        *b.last_mut().unwrap() = 0;
        let nul =
            PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(b));
        let e = Fs::stat_sync(&lp, &nul).unwrap_err();
        assert_eq!(e.code(), StatusCode::EINVAL, "{total}");
        assert_eq!(e.path(), Some(nul.as_path()), "{total}");
        let e = Fs::stat(&lp, &nul, |_| panic!("not started")).unwrap_err();
        assert_eq!(e.code(), StatusCode::EINVAL, "{total}");
    }
    lp.run(RunMode::Default).unwrap();
}

/// A request with two paths builds both in its data; a NUL byte in either (after a
/// first path that went inline or to the heap) is EINVAL naming the function, no
/// callback runs, nothing is left in flight, and the loop can still start the
/// same request with good paths.
#[test]
fn a_bad_second_path_refuses_the_request_whole() {
    let dir = TempDir::new("fs-twopaths");
    let lp = Loop::new().unwrap();
    let short = dir.join("a");
    let long = dir.join(&"l".repeat(150));
    std::fs::write(&short, b"x").unwrap();
    std::fs::write(&long, b"y").unwrap();
    for first in [&short, &long] {
        for (from, to) in [
            (first.clone(), PathBuf::from("b\0c")),
            (PathBuf::from("b\0c"), first.clone()),
        ] {
            let e = Fs::rename(&lp, &from, &to, |_| panic!("not started")).unwrap_err();
            assert_eq!(e.code(), StatusCode::EINVAL, "{from:?} -> {to:?}");
            let e = Fs::copyfile(&lp, &from, &to, uv::CopyFileFlags::empty(), |_| {
                panic!("not started")
            })
            .unwrap_err();
            assert_eq!(e.code(), StatusCode::EINVAL, "{from:?} -> {to:?}");
            let e = Fs::rename_sync(&lp, &from, &to).unwrap_err();
            assert_eq!(e.code(), StatusCode::EINVAL, "{from:?} -> {to:?}");
        }
    }
    // Nothing was started: the loop has no work.
    assert!(!lp.run(RunMode::NoWait).unwrap());
    let got = slot();
    let moved = dir.join(&"m".repeat(140));
    Fs::rename(&lp, &long, &moved, put(&got)).unwrap();
    wait(&lp, &got).unwrap();
    assert_eq!(std::fs::read(&moved).unwrap(), b"y");
}
