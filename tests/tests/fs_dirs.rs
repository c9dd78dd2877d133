//! Directories through `uv::Fs` and `uv::Dir`, ported from libuv's test/test-fs.c
//! (scandir, mkdir/rmdir, mkdtemp, realpath, symlink/readlink, rename) and
//! test-fs-readdir.c (opendir, readdir, closedir): entries, their types, counts and
//! error codes; a directory stream's lifetime and cancellation.

#![cfg(unix)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::rc::Rc;

use uv::{Dir, DirEntry, DirentType, Fs, Loop, LoopHandle, RunMode, StatusCode, SymlinkFlags};
use uv_tests::fs::{put, slot, wait, PoolBlocker};
use uv_tests::net::TempDir;

/// test-fs-readdir.c's tree: two files, a directory and a symbolic link.
fn tree(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::write(dir.join("file1"), b"1").unwrap();
    std::fs::write(dir.join("file2"), b"2").unwrap();
    std::fs::create_dir(dir.join("test_subdir")).unwrap();
    std::os::unix::fs::symlink("file1", dir.join("test_symlink")).unwrap();
    dir
}

fn by_name(v: Vec<DirEntry>) -> BTreeMap<OsString, DirentType> {
    let n = v.len();
    let m: BTreeMap<_, _> = v.into_iter().map(|e| (e.name, e.kind)).collect();
    assert_eq!(m.len(), n, "no entry twice");
    m
}

fn want_tree() -> BTreeMap<OsString, DirentType> {
    [
        ("file1", DirentType::File),
        ("file2", DirentType::File),
        ("test_subdir", DirentType::Directory),
        ("test_symlink", DirentType::Symlink),
    ]
    .into_iter()
    .map(|(n, k)| (OsString::from(n), k))
    .collect()
}

/// test-fs.c `fs_scandir_empty_dir`, `fs_scandir_non_existent_dir`,
/// `fs_scandir_file` and the listing of `fs_async_dir`.
#[test]
fn scandir() {
    let dir = tree("fs-scandir");
    let lp = Loop::new().unwrap();
    assert_eq!(
        by_name(Fs::scandir_sync(&lp, dir.path()).unwrap()),
        want_tree()
    );
    let got = slot();
    Fs::scandir(&lp, dir.path(), put(&got)).unwrap();
    assert_eq!(by_name(wait(&lp, &got).unwrap()), want_tree());

    let empty = dir.join("test_subdir");
    assert!(Fs::scandir_sync(&lp, &empty).unwrap().is_empty());
    let got = slot();
    Fs::scandir(&lp, &empty, put(&got)).unwrap();
    assert!(wait(&lp, &got).unwrap().is_empty());

    let e = Fs::scandir_sync(&lp, dir.join("none")).unwrap_err();
    assert_eq!(e.code(), StatusCode::ENOENT);
    assert_eq!(e.path(), Some(dir.join("none").as_path()));
    assert_eq!(
        Fs::scandir_sync(&lp, dir.join("file1")).unwrap_err().code(),
        StatusCode::ENOTDIR
    );
}

/// Reads a stream to its end, one batch at a time (synchronously).
fn read_all_sync(lp: &Loop, d: &Dir) -> (Vec<DirEntry>, usize) {
    let mut all = Vec::new();
    let mut batches = 0;
    loop {
        let batch = Fs::readdir_sync(lp, d).unwrap();
        if batch.is_empty() {
            return (all, batches);
        }
        batches += 1;
        all.extend(batch);
    }
}

/// test-fs-readdir.c `fs_readdir_empty_dir` and `fs_readdir_file`/`non_existing_dir`.
#[test]
fn readdir_of_an_empty_dir_and_errors() {
    let dir = TempDir::new("fs-readdir-empty");
    let lp = Loop::new().unwrap();
    let d = Fs::opendir_sync(&lp, dir.path()).unwrap();
    assert!(Fs::readdir_sync(&lp, &d).unwrap().is_empty());
    // Again at the end: still nothing.
    assert!(Fs::readdir_sync(&lp, &d).unwrap().is_empty());
    d.close_sync(&lp).unwrap();

    let got = slot();
    Fs::opendir(&lp, dir.path(), put(&got)).unwrap();
    let d = wait(&lp, &got).unwrap();
    let got = slot();
    Fs::readdir(&lp, &d, put(&got)).unwrap();
    assert!(wait(&lp, &got).unwrap().is_empty());
    let got = slot();
    d.close(&lp, put(&got)).unwrap();
    wait(&lp, &got).unwrap();

    let e = Fs::opendir_sync(&lp, dir.join("none")).unwrap_err();
    assert_eq!(
        (e.code(), e.path()),
        (StatusCode::ENOENT, Some(dir.join("none").as_path()))
    );
    std::fs::write(dir.join("f"), b"").unwrap();
    assert_eq!(
        Fs::opendir_sync(&lp, dir.join("f")).unwrap_err().code(),
        StatusCode::ENOTDIR
    );
}

/// test-fs-readdir.c `fs_readdir_non_empty_dir`: the four entries with their
/// types, in batches of one (four reads and an empty one) and of the default size.
#[test]
fn readdir_lists_every_entry_once() {
    let dir = tree("fs-readdir");
    let lp = Loop::new().unwrap();
    let d = Fs::opendir_sync(&lp, dir.path()).unwrap();
    d.set_batch(1);
    let (all, batches) = read_all_sync(&lp, &d);
    assert_eq!(batches, 4);
    assert_eq!(by_name(all), want_tree());
    d.close_sync(&lp).unwrap();

    let d = Fs::opendir_sync(&lp, dir.path()).unwrap();
    let (all, batches) = read_all_sync(&lp, &d);
    assert_eq!(batches, 1, "the default batch holds all four");
    assert_eq!(by_name(all), want_tree());

    // Asynchronously: each callback asks for the next batch.
    let d = Fs::opendir_sync(&lp, dir.path()).unwrap();
    d.set_batch(3);
    let seen: Rc<RefCell<Vec<DirEntry>>> = Rc::default();
    let sizes: Rc<RefCell<Vec<usize>>> = Rc::default();
    fn next(
        h: LoopHandle,
        d: Dir,
        seen: Rc<RefCell<Vec<DirEntry>>>,
        sizes: Rc<RefCell<Vec<usize>>>,
    ) {
        let d2 = d.clone();
        let h2 = h.clone();
        Fs::readdir(&h, &d, move |r| {
            let batch = r.unwrap();
            sizes.borrow_mut().push(batch.len());
            if batch.is_empty() {
                d2.close(&h2, |r| r.unwrap()).unwrap();
            } else {
                seen.borrow_mut().extend(batch);
                next(h2, d2, seen, sizes);
            }
        })
        .unwrap();
    }
    next(lp.handle(), d, seen.clone(), sizes.clone());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*sizes.borrow(), [3, 1, 0]);
    assert_eq!(by_name(seen.take()), want_tree());
}

/// One read at a time per stream: a second is `EBUSY`, so is a close, and the
/// stream stays open for the read after its `Dir` is dropped.
#[test]
fn a_dir_is_read_once_at_a_time_and_closed_once() {
    let dir = tree("fs-readdir-busy");
    let lp = Loop::new().unwrap();
    let d = Fs::opendir_sync(&lp, dir.path()).unwrap();
    let got = slot();
    Fs::readdir(&lp, &d, put(&got)).unwrap();
    assert!(d.is_busy());
    assert_eq!(
        Fs::readdir_sync(&lp, &d).unwrap_err().code(),
        StatusCode::EBUSY
    );
    let again = slot::<uv::Result<Vec<DirEntry>>>();
    assert_eq!(
        Fs::readdir(&lp, &d, put(&again)).unwrap_err().code(),
        StatusCode::EBUSY
    );
    let d2 = d.clone();
    assert_eq!(d2.close_sync(&lp).unwrap_err().code(), StatusCode::EBUSY);
    drop(d);
    assert_eq!(by_name(wait(&lp, &got).unwrap()), want_tree());
    assert!(again.borrow().is_none(), "a refused read has no callback");
}

/// A queued readdir and scandir cancelled: `ECANCELED`, and the stream is free
/// again for a read that then lists everything.
#[test]
fn cancelled_dir_requests_get_ecanceled() {
    let dir = tree("fs-dir-cancel");
    let lp = Loop::new().unwrap();
    let d = Fs::opendir_sync(&lp, dir.path()).unwrap();
    let mut blocker = PoolBlocker::new(&lp);
    let r1 = slot();
    let q1 = Fs::readdir(&lp, &d, put(&r1)).unwrap();
    let r2 = slot();
    let q2 = Fs::opendir(&lp, dir.path(), put(&r2)).unwrap();
    let r3 = slot();
    let q3 = Fs::mkdir(&lp, dir.join("made"), 0o700, put(&r3)).unwrap();
    for q in [&q1, &q2, &q3] {
        q.cancel().unwrap();
    }
    blocker.release();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        r1.take().unwrap().unwrap_err().code(),
        StatusCode::ECANCELED
    );
    assert_eq!(
        r2.take().unwrap().unwrap_err().code(),
        StatusCode::ECANCELED
    );
    assert_eq!(
        r3.take().unwrap().unwrap_err().code(),
        StatusCode::ECANCELED
    );
    assert!(!dir.join("made").exists());
    assert!(!d.is_busy());
    assert_eq!(by_name(read_all_sync(&lp, &d).0), want_tree());
}

/// Dropping the loop with a readdir in flight runs its callback with the entries.
#[test]
fn loop_drop_completes_a_pending_readdir() {
    let dir = tree("fs-readdir-drop");
    let lp = Loop::new().unwrap();
    let d = Fs::opendir_sync(&lp, dir.path()).unwrap();
    let got = slot();
    Fs::readdir(&lp, &d, put(&got)).unwrap();
    drop(d);
    drop(lp);
    assert_eq!(by_name(got.take().unwrap().unwrap()), want_tree());
}

/// test-fs.c `fs_async_dir`, `fs_mkdtemp`, `fs_realpath`, `fs_symlink`,
/// `fs_readlink`, `fs_rename_to_existing_file`: the directory operations together.
#[test]
fn directory_operations() {
    let dir = TempDir::new("fs-dir-ops");
    let lp = Loop::new().unwrap();
    let made = Fs::mkdtemp_sync(&lp, dir.join("test_dir_XXXXXX")).unwrap();
    let made2 = Fs::mkdtemp_sync(&lp, dir.join("test_dir_XXXXXX")).unwrap();
    assert_ne!(made, made2);
    assert!(made.is_dir() && made2.is_dir());

    let sub = made.join("sub");
    let got = slot();
    Fs::mkdir(&lp, &sub, 0o755, put(&got)).unwrap();
    wait(&lp, &got).unwrap();
    std::fs::write(sub.join("a"), b"a").unwrap();
    std::fs::write(sub.join("b"), b"bb").unwrap();
    // Renaming onto an existing file replaces it.
    Fs::rename_sync(&lp, sub.join("a"), sub.join("b")).unwrap();
    assert_eq!(std::fs::read(sub.join("b")).unwrap(), b"a");
    // A directory symlink (the flag matters on Windows only), readlink, realpath.
    let link = made.join("link");
    Fs::symlink_sync(&lp, &sub, &link, SymlinkFlags::DIR).unwrap();
    assert_eq!(Fs::readlink_sync(&lp, &link).unwrap(), sub);
    let real = Fs::realpath_sync(&lp, link.join("b")).unwrap();
    assert_eq!(real, std::fs::canonicalize(sub.join("b")).unwrap());
    assert_eq!(
        Fs::readlink_sync(&lp, &sub).unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(
        Fs::realpath_sync(&lp, made.join("none"))
            .unwrap_err()
            .code(),
        StatusCode::ENOENT
    );
    // Unknown symlink flag bits never reach libuv.
    assert_eq!(
        Fs::symlink_sync(
            &lp,
            &sub,
            made.join("l2"),
            SymlinkFlags::from_bits_retain(0x40)
        )
        .unwrap_err()
        .code(),
        StatusCode::EINVAL
    );
    assert_eq!(Fs::scandir_sync(&lp, &made).unwrap().len(), 2);
    // rmdir refuses a non-empty directory and a file.
    assert_eq!(
        Fs::rmdir_sync(&lp, &sub).unwrap_err().code(),
        StatusCode::ENOTEMPTY
    );
    assert_eq!(
        Fs::rmdir_sync(&lp, sub.join("b")).unwrap_err().code(),
        StatusCode::ENOTDIR
    );
    Fs::unlink_sync(&lp, sub.join("b")).unwrap();
    Fs::unlink_sync(&lp, &link).unwrap();
    let got = slot();
    Fs::rmdir(&lp, &sub, put(&got)).unwrap();
    wait(&lp, &got).unwrap();
    assert!(Fs::scandir_sync(&lp, &made).unwrap().is_empty());
}
