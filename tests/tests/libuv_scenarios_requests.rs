//! Scenarios of libuv's own test suite (`libuv/test/test-*.c`) that the other suites
//! do not check yet, ported to the safe API: requests (file system, DNS, the thread
//! pool) and loop options. Each test names the libuv file it mirrors and checks
//! values, counts and error codes, never durations.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

use uv::{
    AddrInfoFlags, AddrInfoHints, AddressFamily, DirentType, Fs, Loop, NameInfoFlags, OpenFlags,
    RunMode, StatusCode, SymlinkFlags,
};
use uv_tests::net::TempDir;

fn code<T: std::fmt::Debug>(r: uv::Result<T>) -> StatusCode {
    r.expect_err("expected an error").code()
}

/// The error's code and the path it names.
fn code_and_path<T: std::fmt::Debug>(r: uv::Result<T>) -> (StatusCode, Option<std::path::PathBuf>) {
    let e = r.expect_err("expected an error");
    (e.code(), e.path().map(Path::to_path_buf))
}

// ---------------------------------------------------------------------------
// File-system error codes

/// Mirrors libuv's test-fs.c `fs_mkdir_exist`/`fs_rmdir` error paths
/// (`fs_scandir_file`, `fs_rmdir_notempty`): `mkdir` of an existing path is
/// `EEXIST`, `rmdir` of a non-empty directory `ENOTEMPTY`, of a file `ENOTDIR`, of a
/// missing path `ENOENT`; `scandir` and `opendir` of a file `ENOTDIR`; each error
/// names its path.
#[test]
fn directory_operations_report_their_error_codes() {
    let dir = TempDir::new("scen-fs-dirs");
    let lp = Loop::new().unwrap();
    let sub = dir.join("sub");
    let file = dir.join("file");
    Fs::mkdir_sync(&lp, &sub, 0o755).unwrap();
    std::fs::write(sub.join("inside"), b"x").unwrap();
    std::fs::write(&file, b"x").unwrap();

    assert_eq!(
        code_and_path(Fs::mkdir_sync(&lp, &sub, 0o755)),
        (StatusCode::EEXIST, Some(sub.clone()))
    );
    assert_eq!(
        code_and_path(Fs::mkdir_sync(&lp, &file, 0o755)),
        (StatusCode::EEXIST, Some(file.clone()))
    );
    assert_eq!(
        code_and_path(Fs::rmdir_sync(&lp, &sub)),
        (StatusCode::ENOTEMPTY, Some(sub.clone()))
    );
    assert_eq!(code(Fs::rmdir_sync(&lp, &file)), StatusCode::ENOTDIR);
    assert_eq!(
        code(Fs::rmdir_sync(&lp, dir.join("none"))),
        StatusCode::ENOENT
    );
    assert_eq!(code(Fs::scandir_sync(&lp, &file)), StatusCode::ENOTDIR);
    assert_eq!(
        code(Fs::opendir_sync(&lp, &file).map(|_| ())),
        StatusCode::ENOTDIR
    );
    // A directory inside a missing one.
    assert_eq!(
        code(Fs::mkdir_sync(&lp, dir.join("none/sub"), 0o755)),
        StatusCode::ENOENT
    );
}

/// Mirrors libuv's test-fs.c `fs_unlink_a_dir`, `fs_open_dir_for_writing` and
/// `fs_read_dir`: `unlink` of a directory is `EISDIR`, opening one for writing
/// `EISDIR`, reading from a directory opened for reading `EISDIR`; a path that goes
/// through a regular file is `ENOTDIR`.
#[test]
fn directories_are_not_files() {
    let dir = TempDir::new("scen-fs-isdir");
    let lp = Loop::new().unwrap();
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let file = dir.join("file");
    std::fs::write(&file, b"x").unwrap();

    assert_eq!(code(Fs::unlink_sync(&lp, &sub)), StatusCode::EISDIR);
    assert_eq!(
        code(Fs::open_sync(&lp, &sub, OpenFlags::WRONLY, 0).map(|_| ())),
        StatusCode::EISDIR
    );
    let d = Fs::open_sync(&lp, &sub, OpenFlags::RDONLY, 0).unwrap();
    assert!(Fs::fstat_sync(&lp, &d).unwrap().is_dir());
    assert_eq!(
        code(Fs::read_sync(&lp, &d, Vec::with_capacity(16), None)),
        StatusCode::EISDIR
    );
    d.close_sync(&lp).unwrap();
    assert_eq!(
        code(Fs::stat_sync(&lp, file.join("below"))),
        StatusCode::ENOTDIR
    );
    assert_eq!(
        code(Fs::open_sync(&lp, file.join("below"), OpenFlags::RDONLY, 0).map(|_| ())),
        StatusCode::ENOTDIR
    );
}

/// Mirrors libuv's test-fs.c `fs_file_nametoolong` and `fs_file_loop`: a name
/// longer than the file system takes is `ENAMETOOLONG`; a loop of symbolic links is
/// `ELOOP` to follow (`stat`, `open`) and fine to read (`lstat`, `readlink`).
#[test]
fn long_names_and_symlink_loops() {
    let dir = TempDir::new("scen-fs-loop");
    let lp = Loop::new().unwrap();
    let long = dir.join(&"n".repeat(300));
    assert_eq!(
        code(Fs::open_sync(&lp, &long, OpenFlags::RDONLY, 0).map(|_| ())),
        StatusCode::ENAMETOOLONG
    );
    assert_eq!(code(Fs::stat_sync(&lp, &long)), StatusCode::ENAMETOOLONG);

    let (a, b) = (dir.join("a"), dir.join("b"));
    Fs::symlink_sync(&lp, "b", &a, SymlinkFlags::empty()).unwrap();
    Fs::symlink_sync(&lp, "a", &b, SymlinkFlags::empty()).unwrap();
    assert_eq!(code(Fs::stat_sync(&lp, &a)), StatusCode::ELOOP);
    assert_eq!(
        code(Fs::open_sync(&lp, &a, OpenFlags::RDONLY, 0).map(|_| ())),
        StatusCode::ELOOP
    );
    assert_eq!(code(Fs::realpath_sync(&lp, &a)), StatusCode::ELOOP);
    assert!(Fs::lstat_sync(&lp, &a).unwrap().is_symlink());
    assert_eq!(Fs::readlink_sync(&lp, &a).unwrap(), Path::new("b"));
}

/// Mirrors libuv's test-fs.c `fs_readlink` and `fs_link`/`fs_symlink` error paths:
/// `readlink` of a regular file is `EINVAL`, of a missing path `ENOENT`; a hard or
/// symbolic link onto an existing name is `EEXIST`; a hard link to a directory
/// `EPERM`.
#[test]
fn link_and_readlink_errors() {
    let dir = TempDir::new("scen-fs-links");
    let lp = Loop::new().unwrap();
    let file = dir.join("file");
    let other = dir.join("other");
    std::fs::write(&file, b"x").unwrap();
    std::fs::write(&other, b"y").unwrap();
    assert_eq!(code(Fs::readlink_sync(&lp, &file)), StatusCode::EINVAL);
    assert_eq!(
        code(Fs::readlink_sync(&lp, dir.join("none"))),
        StatusCode::ENOENT
    );
    assert_eq!(code(Fs::link_sync(&lp, &file, &other)), StatusCode::EEXIST);
    assert_eq!(
        code(Fs::symlink_sync(&lp, &file, &other, SymlinkFlags::empty())),
        StatusCode::EEXIST
    );
    assert_eq!(
        code(Fs::link_sync(&lp, dir.path(), dir.join("dirlink"))),
        StatusCode::EPERM
    );
    // Nothing was replaced.
    assert_eq!(std::fs::read(&other).unwrap(), b"y");
}

/// Mirrors libuv's test-fs.c `fs_rename_to_existing_file`: a rename onto an
/// existing file replaces it; a directory onto a file is `ENOTDIR`, a file onto a
/// directory `EISDIR`, a directory onto a non-empty one `ENOTEMPTY`.
#[test]
fn rename_replaces_files_and_refuses_kind_changes() {
    let dir = TempDir::new("scen-fs-rename");
    let lp = Loop::new().unwrap();
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&a, b"first").unwrap();
    std::fs::write(&b, b"second, longer").unwrap();
    Fs::rename_sync(&lp, &a, &b).unwrap();
    assert!(!a.exists());
    assert_eq!(std::fs::read(&b).unwrap(), b"first");

    let (d1, d2) = (dir.join("d1"), dir.join("d2"));
    std::fs::create_dir(&d1).unwrap();
    std::fs::create_dir(&d2).unwrap();
    std::fs::write(d2.join("x"), b"").unwrap();
    assert_eq!(code(Fs::rename_sync(&lp, &d1, &b)), StatusCode::ENOTDIR);
    assert_eq!(code(Fs::rename_sync(&lp, &b, &d1)), StatusCode::EISDIR);
    assert_eq!(code(Fs::rename_sync(&lp, &d1, &d2)), StatusCode::ENOTEMPTY);
    // Onto an empty directory, a directory replaces it.
    std::fs::remove_file(d2.join("x")).unwrap();
    Fs::rename_sync(&lp, &d1, &d2).unwrap();
    assert!(!d1.exists() && d2.is_dir());
}

/// Mirrors libuv's test-fs.c `fs_mkstemp` and `fs_mkdtemp` (their bad templates):
/// a template that does not end in `XXXXXX` is `EINVAL`, one in a missing directory
/// `ENOENT`, and two good calls make distinct names of the template's length.
#[test]
fn temporary_names_need_a_template() {
    let dir = TempDir::new("scen-fs-temp");
    let lp = Loop::new().unwrap();
    assert_eq!(
        code(Fs::mkstemp_sync(&lp, dir.join("bad")).map(|_| ())),
        StatusCode::EINVAL
    );
    assert_eq!(
        code(Fs::mkstemp_sync(&lp, dir.join("XXXXXXbad")).map(|_| ())),
        StatusCode::EINVAL
    );
    assert_eq!(
        code(Fs::mkdtemp_sync(&lp, dir.join("none/tXXXXXX"))),
        StatusCode::ENOENT
    );
    let t1 = Fs::mkdtemp_sync(&lp, dir.join("tXXXXXX")).unwrap();
    let t2 = Fs::mkdtemp_sync(&lp, dir.join("tXXXXXX")).unwrap();
    assert_ne!(t1, t2);
    for t in [&t1, &t2] {
        assert!(t.is_dir());
        assert_eq!(t.file_name().unwrap().len(), "tXXXXXX".len());
        assert!(t.file_name().unwrap().to_str().unwrap().starts_with('t'));
    }
}

// ---------------------------------------------------------------------------
// File contents and positions

/// Mirrors libuv's test-fs.c `fs_write_alotof_bufs_with_offset` and
/// `fs_read_write_null_arguments`' positional reads: a write at an offset leaves
/// the file position alone; writes without one go on from the position; reads
/// likewise.
#[test]
fn positional_and_sequential_writes_and_reads() {
    let dir = TempDir::new("scen-fs-pos");
    let lp = Loop::new().unwrap();
    let p = dir.join("f");
    let f = Fs::open_sync(&lp, &p, OpenFlags::CREAT | OpenFlags::RDWR, 0o600).unwrap();
    assert_eq!(Fs::write_sync(&lp, &f, "abc", None).unwrap(), 3);
    assert_eq!(Fs::write_sync(&lp, &f, "XY", Some(10)).unwrap(), 2);
    // The position is still 3: the next sequential write goes there.
    assert_eq!(Fs::write_sync(&lp, &f, "def", None).unwrap(), 3);
    let mut want = b"abcdef\0\0\0\0XY".to_vec();
    assert_eq!(std::fs::read(&p).unwrap(), want);
    // Reads at an offset do not move the position either (now 6).
    assert_eq!(
        Fs::read_sync(&lp, &f, Vec::with_capacity(3), Some(0)).unwrap(),
        b"abc"
    );
    assert_eq!(
        Fs::read_sync(&lp, &f, Vec::with_capacity(4), None).unwrap(),
        b"\0\0\0\0"
    );
    // A write of several buffers at an offset lands in order.
    let n = Fs::write_sync(&lp, &f, vec![b"12".to_vec(), b"34".to_vec()], Some(1)).unwrap();
    assert_eq!(n, 4);
    want[1..5].copy_from_slice(b"1234");
    assert_eq!(std::fs::read(&p).unwrap(), want);
    f.close_sync(&lp).unwrap();
}

/// Mirrors libuv's test-fs.c `fs_ftruncate` growth and `fs_file_open_append`: a file
/// grown by `ftruncate` reads back zeros; `APPEND` writes go to the end even at an
/// explicit position (Linux ignores the offset of `pwrite` on such a file).
#[test]
fn truncate_grows_with_zeros_and_append_ignores_offsets() {
    let dir = TempDir::new("scen-fs-trunc");
    let lp = Loop::new().unwrap();
    let p = dir.join("f");
    std::fs::write(&p, b"abc").unwrap();
    let f = Fs::open_sync(&lp, &p, OpenFlags::RDWR, 0).unwrap();
    Fs::ftruncate_sync(&lp, &f, 6).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"abc\0\0\0");
    Fs::ftruncate_sync(&lp, &f, 1).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"a");
    f.close_sync(&lp).unwrap();

    let a = Fs::open_sync(&lp, &p, OpenFlags::WRONLY | OpenFlags::APPEND, 0).unwrap();
    Fs::write_sync(&lp, &a, "bc", None).unwrap();
    Fs::write_sync(&lp, &a, "d", Some(0)).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"abcd");
    a.close_sync(&lp).unwrap();
}

/// Mirrors libuv's test-fs.c `fs_sendfile` edge cases: a copy starting past the end
/// of the input copies nothing; one running over the end copies what is there; the
/// output's position moves by what was copied.
#[test]
fn sendfile_at_and_past_the_end() {
    let dir = TempDir::new("scen-fs-sendfile");
    let lp = Loop::new().unwrap();
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    std::fs::write(&src, b"0123456789").unwrap();
    let input = Fs::open_sync(&lp, &src, OpenFlags::RDONLY, 0).unwrap();
    let out = Fs::open_sync(&lp, &dst, OpenFlags::CREAT | OpenFlags::WRONLY, 0o600).unwrap();
    assert_eq!(Fs::sendfile_sync(&lp, &out, &input, 100, 5).unwrap(), 0);
    assert_eq!(Fs::sendfile_sync(&lp, &out, &input, 7, 100).unwrap(), 3);
    assert_eq!(Fs::sendfile_sync(&lp, &out, &input, 0, 2).unwrap(), 2);
    assert_eq!(std::fs::read(&dst).unwrap(), b"78901");
    // The input's own position was not used nor moved: a sequential read starts at 0.
    assert_eq!(
        Fs::read_sync(&lp, &input, Vec::with_capacity(3), None).unwrap(),
        b"012"
    );
    out.close_sync(&lp).unwrap();
    input.close_sync(&lp).unwrap();
}

/// Mirrors libuv's test-fs.c `fs_chown` with -1 (`(uv_uid_t) -1`): an owner or group
/// of `u32::MAX` leaves that id unchanged, through a path and a file.
#[test]
fn chown_with_minus_one_keeps_the_ids() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("scen-fs-chown");
    let lp = Loop::new().unwrap();
    let p = dir.join("f");
    std::fs::write(&p, b"").unwrap();
    let before = std::fs::metadata(&p).unwrap();
    Fs::chown_sync(&lp, &p, u32::MAX, u32::MAX).unwrap();
    let f = Fs::open_sync(&lp, &p, OpenFlags::RDONLY, 0).unwrap();
    Fs::fchown_sync(&lp, &f, u32::MAX, u32::MAX).unwrap();
    // Our own ids, set explicitly, are allowed too.
    Fs::fchown_sync(&lp, &f, before.uid(), before.gid()).unwrap();
    f.close_sync(&lp).unwrap();
    let after = std::fs::metadata(&p).unwrap();
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_eq!(
        code(Fs::chown_sync(&lp, dir.join("none"), u32::MAX, u32::MAX)),
        StatusCode::ENOENT
    );
}

/// Mirrors libuv's test-fs.c `fs_realpath`: the real path of a path with `.`, `..`
/// and a link in it is the canonical one; of a missing path `ENOENT`.
#[test]
fn realpath_resolves_dots_and_links() {
    let dir = TempDir::new("scen-fs-realpath");
    let lp = Loop::new().unwrap();
    std::fs::create_dir(dir.join("a")).unwrap();
    std::fs::write(dir.join("a/f"), b"").unwrap();
    std::os::unix::fs::symlink("a", dir.join("l")).unwrap();
    let canon = std::fs::canonicalize(dir.join("a/f")).unwrap();
    assert_eq!(
        Fs::realpath_sync(&lp, dir.join("l/../a/./f")).unwrap(),
        canon
    );
    assert_eq!(Fs::realpath_sync(&lp, dir.join("l/f")).unwrap(), canon);
    assert_eq!(
        code(Fs::realpath_sync(&lp, dir.join("l/none"))),
        StatusCode::ENOENT
    );
}

/// Mirrors libuv's test-fs.c `fs_scandir_non_empty_dir` and test-fs-readdir.c
/// `fs_readdir_non_empty_dir`: both list every entry but `.` and `..` once, with its
/// type, whatever the order; an empty directory lists nothing.
#[test]
fn scandir_and_readdir_list_the_same_entries() {
    let dir = TempDir::new("scen-fs-scandir");
    let lp = Loop::new().unwrap();
    std::fs::write(dir.join("file1"), b"").unwrap();
    std::fs::write(dir.join("file2"), b"").unwrap();
    std::fs::create_dir(dir.join("subdir")).unwrap();
    std::os::unix::fs::symlink("file1", dir.join("link")).unwrap();
    let want = vec![
        ("file1".to_string(), DirentType::File),
        ("file2".to_string(), DirentType::File),
        ("link".to_string(), DirentType::Symlink),
        ("subdir".to_string(), DirentType::Directory),
    ];
    let sorted = |v: Vec<uv::DirEntry>| {
        let mut v: Vec<(String, DirentType)> = v
            .into_iter()
            .map(|e| (e.name.into_string().unwrap(), e.kind))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(sorted(Fs::scandir_sync(&lp, dir.path()).unwrap()), want);
    let d = Fs::opendir_sync(&lp, dir.path()).unwrap();
    let mut all = Vec::new();
    loop {
        let batch = Fs::readdir_sync(&lp, &d).unwrap();
        if batch.is_empty() {
            break;
        }
        all.extend(batch);
    }
    assert_eq!(sorted(all), want);
    std::fs::create_dir(dir.join("empty")).unwrap();
    assert!(Fs::scandir_sync(&lp, dir.join("empty")).unwrap().is_empty());
}

/// Mirrors libuv's test-fs.c asynchronous error paths (`fs_file_noent` with a
/// callback): an operation that fails on the thread pool reports the same code,
/// with its path, in its callback, and each callback runs once.
#[test]
fn asynchronous_errors_match_the_synchronous_ones() {
    let dir = TempDir::new("scen-fs-async-err");
    let lp = Loop::new().unwrap();
    let missing = dir.join("none");
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("x"), b"").unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    Fs::stat(&lp, &missing, move |r| {
        g.borrow_mut().push(("stat", code_and_path(r)))
    })
    .unwrap();
    let g = got.clone();
    Fs::rmdir(&lp, &sub, move |r| {
        g.borrow_mut().push(("rmdir", code_and_path(r)))
    })
    .unwrap();
    let g = got.clone();
    Fs::mkdir(&lp, &sub, 0o755, move |r| {
        g.borrow_mut().push(("mkdir", code_and_path(r)))
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    let mut got = got.borrow().clone();
    got.sort_by_key(|x| x.0);
    assert_eq!(
        got,
        [
            ("mkdir", (StatusCode::EEXIST, Some(sub.clone()))),
            ("rmdir", (StatusCode::ENOTEMPTY, Some(sub.clone()))),
            ("stat", (StatusCode::ENOENT, Some(missing.clone()))),
        ]
    );
}

// ---------------------------------------------------------------------------
// DNS

/// Mirrors libuv's test-getaddrinfo.c `getaddrinfo_concurrent`: ten queries for
/// `localhost` in flight at once each complete once, with loopback addresses.
#[test]
fn concurrent_getaddrinfo_queries_all_complete() {
    const N: usize = 10;
    let lp = Loop::new().unwrap();
    let done = Rc::new(RefCell::new(vec![0usize; N]));
    let hints = AddrInfoHints::default().with_socktype(uv::SocketType::Stream);
    for i in 0..N {
        let d = done.clone();
        lp.getaddrinfo_with(Some("localhost"), None, &hints, move |r| {
            let list = r.unwrap();
            assert!(!list.is_empty());
            assert!(list.iter().all(|a| a.addr.ip().is_loopback()), "{list:?}");
            d.borrow_mut()[i] += 1;
        })
        .unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*done.borrow(), vec![1; N]);
}

/// Mirrors libuv's test-getaddrinfo.c `getaddrinfo_fail` and its argument check:
/// neither a host nor a service is `EINVAL` at the call (no callback); an unknown
/// name fails in the callback with an address-name error.
#[test]
fn getaddrinfo_needs_a_host_or_a_service() {
    let lp = Loop::new().unwrap();
    let hints = AddrInfoHints::default();
    assert_eq!(code(lp.getaddrinfo(None, None, &hints)), StatusCode::EINVAL);
    assert_eq!(
        code(
            lp.getaddrinfo_with(None, None, &hints, |_| panic!("callback ran"))
                .map(|_| ())
        ),
        StatusCode::EINVAL
    );
    // A service alone resolves to the local addresses.
    let hints = AddrInfoHints::default()
        .with_family(AddressFamily::Inet)
        .with_socktype(uv::SocketType::Stream)
        .with_flags(AddrInfoFlags::NUMERICSERV);
    let list = lp.getaddrinfo(None, Some("8080"), &hints).unwrap();
    assert!(!list.is_empty());
    assert!(list.iter().all(|a| a.addr.port() == 8080), "{list:?}");
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    lp.getaddrinfo_with(
        Some("xyzzy.xyzzy.xyzzy."),
        None,
        &AddrInfoHints::default(),
        move |r| *g.borrow_mut() = Some(r.map(|_| ()).unwrap_err()),
    )
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    let e = got.borrow_mut().take().unwrap();
    assert!(e.is(uv::Category::Address), "{e:?}");
}

/// Mirrors libuv's test-getnameinfo.c `getnameinfo_basic_ip4` and
/// `getnameinfo_basic_ip6` (asynchronous) with `NUMERICHOST | NUMERICSERV`: the
/// answer is the address and port in text.
#[test]
fn getnameinfo_numeric_answers_on_the_loop() {
    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    for a in ["127.0.0.1:80", "[::1]:443"] {
        let a: SocketAddr = a.parse().unwrap();
        let g = got.clone();
        lp.getnameinfo_with(
            a,
            NameInfoFlags::NUMERICHOST | NameInfoFlags::NUMERICSERV,
            move |r| {
                let n = r.unwrap();
                g.borrow_mut().push((n.host, n.service));
            },
        )
        .unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    let mut got = got.borrow().clone();
    got.sort();
    assert_eq!(
        got,
        [
            ("127.0.0.1".to_string(), "80".to_string()),
            ("::1".to_string(), "443".to_string()),
        ]
    );
}

// ---------------------------------------------------------------------------
// Thread pool, random, loop options

/// Mirrors libuv's test-threadpool.c `threadpool_multiple_event_loops`: loops on
/// several threads share the pool; each gets its own jobs' values, once each.
#[test]
fn loops_on_several_threads_share_the_pool() {
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let lp = Loop::new().unwrap();
                let got = Rc::new(RefCell::new(Vec::new()));
                for i in 0..8u64 {
                    let g = got.clone();
                    lp.queue_work(
                        move || t * 100 + i,
                        move |r| g.borrow_mut().push(r.unwrap()),
                    )
                    .unwrap();
                }
                assert!(!lp.run(RunMode::Default).unwrap());
                let mut v = got.borrow().clone();
                v.sort();
                v
            })
        })
        .collect();
    for (t, h) in threads.into_iter().enumerate() {
        let want: Vec<u64> = (0..8).map(|i| t as u64 * 100 + i).collect();
        assert_eq!(h.join().unwrap(), want);
    }
}

/// Mirrors libuv's test-random.c `random_async`: unknown flags are `EINVAL` at the
/// call; an empty buffer completes (empty); a buffer is filled on the pool and
/// handed back whole.
#[test]
fn random_checks_flags_and_fills_buffers() {
    let lp = Loop::new().unwrap();
    assert_eq!(
        code(
            lp.random(vec![0u8; 8], 1, |_| panic!("callback ran"))
                .map(|_| ())
        ),
        StatusCode::EINVAL
    );
    let got = Rc::new(RefCell::new(Vec::new()));
    for len in [0usize, 256] {
        let g = got.clone();
        lp.random(vec![0u8; len], 0, move |r| g.borrow_mut().push(r.unwrap()))
            .unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    let mut got = got.borrow().clone();
    got.sort_by_key(|v| v.len());
    assert_eq!(got[0].len(), 0);
    assert_eq!(got[1].len(), 256);
    // 256 zero bytes from a random source: as good as impossible.
    assert!(got[1].iter().any(|&b| b != 0));
}

/// Mirrors libuv's test-loop-configure.c: blocking `SIGPROF` is accepted, on an
/// idle loop as on one with handles; `RunMode::NoWait` on an empty loop answers
/// that nothing is left (test-run-nowait.c's empty case).
#[test]
fn loop_configure_block_sigprof() {
    let lp = Loop::new().unwrap();
    lp.block_signal(uv::Signum::Profile).unwrap();
    let t = uv::Timer::new(&lp).unwrap();
    t.start(std::time::Duration::ZERO, std::time::Duration::ZERO, |_| {})
        .unwrap();
    lp.block_signal(uv::Signum::Profile).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(!lp.run(RunMode::NoWait).unwrap());
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    lp.queue_work(|| 1, move |r| c.set(c.get() + r.unwrap()))
        .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
}

/// Mirrors libuv's test-fs.c `fs_write_alotof_bufs` and
/// `fs_write_alotof_bufs_with_offset`: a write of many more buffers than one
/// system call takes (`IOV_MAX`, 1024 on Linux) writes them all, in order, at the
/// position or at an offset, synchronously and on the thread pool.
#[test]
fn a_write_of_many_buffers_writes_them_all_in_order() {
    const N: usize = 10_000;
    let dir = TempDir::new("scen-fs-alotof");
    let lp = Loop::new().unwrap();
    let bufs: Vec<Vec<u8>> = (0..N).map(|i| format!("{i:05}").into_bytes()).collect();
    let want: Vec<u8> = bufs.concat();
    let p = dir.join("f");
    let f = Fs::open_sync(&lp, &p, OpenFlags::CREAT | OpenFlags::RDWR, 0o600).unwrap();
    assert_eq!(
        Fs::write_sync(&lp, &f, bufs.clone(), None).unwrap(),
        want.len()
    );
    assert_eq!(std::fs::read(&p).unwrap(), want);
    // At an offset past what is there, on the pool.
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    Fs::write(
        &lp,
        &f,
        bufs.clone(),
        Some(want.len() as u64 + 3),
        move |r| *g.borrow_mut() = Some(r),
    )
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(got.borrow_mut().take().unwrap().unwrap(), want.len());
    let mut twice = want.clone();
    twice.extend_from_slice(b"\0\0\0");
    twice.extend_from_slice(&want);
    assert_eq!(std::fs::read(&p).unwrap(), twice);
    f.close_sync(&lp).unwrap();
}

/// Mirrors libuv's test-fs.c `fs_stat_batch_multiple`: many stats in flight at once
/// each complete once, with the file's size.
#[test]
fn many_stats_in_flight_each_complete_once() {
    const N: usize = 64;
    let dir = TempDir::new("scen-fs-batch");
    let lp = Loop::new().unwrap();
    let p = dir.join("f");
    std::fs::write(&p, b"12345").unwrap();
    let sizes = Rc::new(RefCell::new(vec![None; N]));
    for i in 0..N {
        let s = sizes.clone();
        Fs::stat(&lp, &p, move |r| {
            let slot = &mut s.borrow_mut()[i];
            assert!(slot.is_none());
            *slot = Some(r.unwrap().size);
        })
        .unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*sizes.borrow(), vec![Some(5); N]);
}
