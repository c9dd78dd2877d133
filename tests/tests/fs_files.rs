//! Files through `uv::Fs` and `uv::File`, ported from libuv's test/test-fs.c,
//! test-fs-open-flags.c and test-fs-copyfile.c: open, read, write, close (sync and
//! async), open flags, fstat, ftruncate, fsync, fdatasync, fchmod, chown, sendfile,
//! utime, mkstemp, statfs, copyfile; the file's lifetime against requests in
//! flight, cancellation and loop teardown; errors that name their path.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uv::{CopyFileFlags, File, FileTime, Fs, Loop, OpenFlags, RunMode, StatusCode};
use uv_tests::fs::{put, slot, wait, PoolBlocker};
use uv_tests::net::{fd_identity, TempDir};

const TEST_BUF: &[u8] = b"test-buffer\n\0";

fn rw_create() -> OpenFlags {
    OpenFlags::CREAT | OpenFlags::RDWR
}

/// test-fs.c `fs_file_sync`: create, write, close; reopen, read, read at the end;
/// ftruncate; rename; unlink.
#[test]
fn file_sync() {
    let dir = TempDir::new("fs-file-sync");
    let lp = Loop::new().unwrap();
    let p = dir.join("test_file");
    let p2 = dir.join("test_file2");

    let f = Fs::open_sync(&lp, &p, OpenFlags::WRONLY | OpenFlags::CREAT, 0o600).unwrap();
    assert_eq!(
        Fs::write_sync(&lp, &f, TEST_BUF, None).unwrap(),
        TEST_BUF.len()
    );
    f.close_sync(&lp).unwrap();

    let f = Fs::open_sync(&lp, &p, OpenFlags::RDWR, 0).unwrap();
    let got = Fs::read_sync(&lp, &f, Vec::with_capacity(64), None).unwrap();
    assert_eq!(got, TEST_BUF);
    // At the end: nothing more, and the Vec comes back unchanged.
    let got = Fs::read_sync(&lp, &f, b"kept".to_vec(), None).unwrap();
    assert_eq!(got, b"kept");
    // Reads append to what the Vec holds, into its spare capacity only.
    let mut v = Vec::with_capacity(8);
    v.extend_from_slice(b">");
    let got = Fs::read_sync(&lp, &f, v, Some(0)).unwrap();
    assert_eq!(got, b">test-bu");
    Fs::ftruncate_sync(&lp, &f, 7).unwrap();
    assert_eq!(Fs::fstat_sync(&lp, &f).unwrap().size, 7);
    let got = Fs::read_sync(&lp, &f, Vec::with_capacity(64), Some(0)).unwrap();
    assert_eq!(got, b"test-bu");
    f.close_sync(&lp).unwrap();

    Fs::rename_sync(&lp, &p, &p2).unwrap();
    assert!(!p.exists());
    Fs::unlink_sync(&lp, &p2).unwrap();
    assert_eq!(
        Fs::unlink_sync(&lp, &p2).unwrap_err().code(),
        StatusCode::ENOENT
    );
}

/// test-fs.c `fs_file_async`: the same chain, each step in the previous one's
/// callback.
#[test]
fn file_async() {
    let dir = TempDir::new("fs-file-async");
    let lp = Loop::new().unwrap();
    let h = lp.handle();
    let p = dir.join("test_file");
    let steps: Rc<RefCell<Vec<&'static str>>> = Rc::default();
    let s = steps.clone();
    let (h2, p2) = (h.clone(), p.clone());
    Fs::open(
        &h,
        &p,
        OpenFlags::WRONLY | OpenFlags::CREAT,
        0o600,
        move |f| {
            let f = f.unwrap();
            s.borrow_mut().push("open");
            let (h3, s3, p3) = (h2.clone(), s.clone(), p2.clone());
            // The callback closes the file: it takes a clone.
            let f2 = f.clone();
            Fs::write(&h2, &f2, TEST_BUF, Some(0), move |n| {
                assert_eq!(n.unwrap(), TEST_BUF.len());
                s3.borrow_mut().push("write");
                let (h4, s4) = (h3.clone(), s3.clone());
                f.close(&h3, move |r| {
                    r.unwrap();
                    s4.borrow_mut().push("close");
                    let (h5, s5) = (h4.clone(), s4.clone());
                    Fs::open(&h4, &p3, OpenFlags::RDONLY, 0, move |f| {
                        let f = f.unwrap();
                        s5.borrow_mut().push("reopen");
                        let (h6, s6) = (h5.clone(), s5.clone());
                        let f2 = f.clone();
                        Fs::read(&h5, &f2, Vec::with_capacity(100), None, move |b| {
                            assert_eq!(b.unwrap(), TEST_BUF);
                            s6.borrow_mut().push("read");
                            let s7 = s6.clone();
                            f.close(&h6, move |r| {
                                r.unwrap();
                                s7.borrow_mut().push("close2");
                            })
                            .unwrap();
                        })
                        .unwrap();
                    })
                    .unwrap();
                })
                .unwrap();
            })
            .unwrap();
        },
    )
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        *steps.borrow(),
        ["open", "write", "close", "reopen", "read", "close2"]
    );
    assert_eq!(std::fs::read(&p).unwrap(), TEST_BUF);
}

/// test-fs.c `fs_write_multiple_bufs` and `fs_read_bufs`: several buffers in one
/// write, reads at offsets, and shared / static data.
#[test]
fn writes_of_many_buffers_and_reads_at_offsets() {
    let dir = TempDir::new("fs-bufs");
    let lp = Loop::new().unwrap();
    let f = Fs::open_sync(&lp, dir.join("f"), rw_create(), 0o600).unwrap();
    let many = uv::WriteData::Many(vec![b"abc".to_vec(), b"def".to_vec(), b"gh".to_vec()]);
    assert_eq!(Fs::write_sync(&lp, &f, many, Some(0)).unwrap(), 8);
    let shared: Rc<[u8]> = Rc::from(&b"XY"[..]);
    let got = slot();
    Fs::write(&lp, &f, shared.clone(), Some(8), put(&got)).unwrap();
    assert_eq!(wait(&lp, &got).unwrap(), 2);
    assert_eq!(Rc::strong_count(&shared), 1, "the write let go of the data");
    assert_eq!(
        Fs::write_sync(&lp, &f, uv::WriteData::Static(b"!"), Some(10)).unwrap(),
        1
    );
    for (off, want) in [
        (0u64, &b"abcdefghXY!"[..]),
        (3, b"defghXY!"),
        (10, b"!"),
        (11, b""),
    ] {
        let got = Fs::read_sync(&lp, &f, Vec::with_capacity(32), Some(off)).unwrap();
        assert_eq!(got, want, "at {off}");
    }
    // A read past the end and one of a zero-capacity Vec give nothing.
    assert!(Fs::read_sync(&lp, &f, Vec::with_capacity(4), Some(1000))
        .unwrap()
        .is_empty());
    assert!(Fs::read_sync(&lp, &f, Vec::new(), Some(0))
        .unwrap()
        .is_empty());
    // An offset past i64::MAX never reaches libuv.
    assert_eq!(
        Fs::read_sync(&lp, &f, Vec::with_capacity(4), Some(u64::MAX))
            .unwrap_err()
            .code(),
        StatusCode::EINVAL
    );
    // The current position advances with reads and writes without an offset.
    let g = Fs::open_sync(&lp, dir.join("f"), OpenFlags::RDONLY, 0).unwrap();
    let a = Fs::read_sync(&lp, &g, Vec::with_capacity(4), None).unwrap();
    let b = Fs::read_sync(&lp, &g, Vec::with_capacity(4), None).unwrap();
    assert_eq!((a.as_slice(), b.as_slice()), (&b"abcd"[..], &b"efgh"[..]));
}

/// test-fs-open-flags.c: what each flag does, and what libuv refuses.
#[test]
fn open_flags() {
    let dir = TempDir::new("fs-open-flags");
    let lp = Loop::new().unwrap();
    let p = dir.join("f");
    std::fs::write(&p, b"0123456789").unwrap();

    // EXCL with CREAT on an existing file.
    let e = Fs::open_sync(
        &lp,
        &p,
        OpenFlags::CREAT | OpenFlags::EXCL | OpenFlags::WRONLY,
        0o600,
    )
    .unwrap_err();
    assert_eq!(e.code(), StatusCode::EEXIST);
    // Without CREAT a missing file is ENOENT.
    assert_eq!(
        Fs::open_sync(&lp, dir.join("none"), OpenFlags::RDONLY, 0)
            .unwrap_err()
            .code(),
        StatusCode::ENOENT
    );
    // Read-only refuses writes, write-only refuses reads.
    let r = Fs::open_sync(&lp, &p, OpenFlags::RDONLY, 0).unwrap();
    assert_eq!(
        Fs::write_sync(&lp, &r, "x", None).unwrap_err().code(),
        StatusCode::EBADF
    );
    let w = Fs::open_sync(&lp, &p, OpenFlags::WRONLY, 0).unwrap();
    assert_eq!(
        Fs::read_sync(&lp, &w, Vec::with_capacity(4), None)
            .unwrap_err()
            .code(),
        StatusCode::EBADF
    );
    // APPEND writes at the end whatever the position.
    let a = Fs::open_sync(&lp, &p, OpenFlags::WRONLY | OpenFlags::APPEND, 0).unwrap();
    Fs::write_sync(&lp, &a, "ab", None).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"0123456789ab");
    // TRUNC empties the file.
    let t = Fs::open_sync(&lp, &p, OpenFlags::WRONLY | OpenFlags::TRUNC, 0).unwrap();
    assert_eq!(Fs::fstat_sync(&lp, &t).unwrap().size, 0);
    // DIRECTORY on a file, NOFOLLOW on a symbolic link.
    assert_eq!(
        Fs::open_sync(&lp, &p, OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0)
            .unwrap_err()
            .code(),
        StatusCode::ENOTDIR
    );
    let link = dir.join("link");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    assert_eq!(
        Fs::open_sync(&lp, &link, OpenFlags::RDONLY | OpenFlags::NOFOLLOW, 0)
            .unwrap_err()
            .code(),
        StatusCode::ELOOP
    );
    // A directory opens read-only and refuses writes (EISDIR on open for writing).
    assert_eq!(
        Fs::open_sync(&lp, dir.path(), OpenFlags::WRONLY, 0)
            .unwrap_err()
            .code(),
        StatusCode::EISDIR
    );
    // The mode applies to a created file (less the umask, which clears no owner bits).
    let m = dir.join("mode");
    Fs::open_sync(&lp, &m, OpenFlags::CREAT | OpenFlags::WRONLY, 0o640).unwrap();
    assert_eq!(std::fs::metadata(&m).unwrap().mode() & 0o700, 0o600);
    // Bits no member names never reach libuv.
    let bad = OpenFlags::from_bits_retain(1 << 30);
    assert_eq!(
        Fs::open_sync(&lp, &p, bad, 0).unwrap_err().code(),
        StatusCode::EINVAL
    );
}

/// test-fs.c `fs_fstat`, `fs_fsync`, `fs_fdatasync`, `fs_fchmod`, `fs_chown`.
#[test]
fn fstat_fsync_fchmod_and_chown() {
    let dir = TempDir::new("fs-fstat");
    let lp = Loop::new().unwrap();
    let p = dir.join("f");
    let f = Fs::open_sync(&lp, &p, rw_create(), 0o600).unwrap();
    Fs::write_sync(&lp, &f, TEST_BUF, None).unwrap();
    let st = Fs::fstat_sync(&lp, &f).unwrap();
    let meta = std::fs::metadata(&p).unwrap();
    assert_eq!(st.size, TEST_BUF.len() as u64);
    assert_eq!(st.ino, meta.ino());
    assert_eq!(st.uid, u64::from(meta.uid()));
    assert_eq!(st.nlink, 1);
    assert!(st.is_file());
    let got = slot();
    Fs::fstat(&lp, &f, put(&got)).unwrap();
    assert_eq!(wait(&lp, &got).unwrap(), st);

    Fs::fsync_sync(&lp, &f).unwrap();
    Fs::fdatasync_sync(&lp, &f).unwrap();
    let got = slot();
    Fs::fsync(&lp, &f, put(&got)).unwrap();
    wait(&lp, &got).unwrap();
    let got = slot();
    Fs::fdatasync(&lp, &f, put(&got)).unwrap();
    wait(&lp, &got).unwrap();

    Fs::fchmod_sync(&lp, &f, 0o400).unwrap();
    assert_eq!(meta_mode(&p), 0o400);
    let got = slot();
    Fs::fchmod(&lp, &f, 0o644, put(&got)).unwrap();
    wait(&lp, &got).unwrap();
    assert_eq!(meta_mode(&p), 0o644);

    // To the owner it has (or -1: unchanged) always works.
    let (uid, gid) = (meta.uid(), meta.gid());
    Fs::chown_sync(&lp, &p, uid, gid).unwrap();
    Fs::fchown_sync(&lp, &f, u32::MAX, u32::MAX).unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    Fs::lchown_sync(&lp, &link, uid, gid).unwrap();
    let got = slot();
    Fs::chown(&lp, &p, u32::MAX, gid, put(&got)).unwrap();
    wait(&lp, &got).unwrap();
    assert_eq!(
        Fs::chown_sync(&lp, dir.join("none"), uid, gid)
            .unwrap_err()
            .code(),
        StatusCode::ENOENT
    );
    // Another owner needs privileges (root may).
    if uid != 0 {
        assert_eq!(
            Fs::fchown_sync(&lp, &f, 0, 0).unwrap_err().code(),
            StatusCode::EPERM
        );
    }
}

fn meta_mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// test-fs.c `fs_sendfile`: a range of one file to another.
#[test]
fn sendfile_copies_a_range() {
    let dir = TempDir::new("fs-sendfile");
    let lp = Loop::new().unwrap();
    let src = dir.join("src");
    let data: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let input = Fs::open_sync(&lp, &src, OpenFlags::RDONLY, 0).unwrap();
    let out = Fs::open_sync(
        &lp,
        dir.join("dst"),
        OpenFlags::CREAT | OpenFlags::WRONLY,
        0o600,
    )
    .unwrap();
    let got = slot();
    Fs::sendfile(&lp, &out, &input, 1, 65536, put(&got)).unwrap();
    assert_eq!(wait(&lp, &got).unwrap(), 65535);
    assert_eq!(Fs::sendfile_sync(&lp, &out, &input, 0, 10).unwrap(), 10);
    let mut want = data[1..].to_vec();
    want.extend_from_slice(&data[..10]);
    assert_eq!(std::fs::read(dir.join("dst")).unwrap(), want);
}

/// test-fs.c `fs_utime`, `fs_futime`, `fs_lutime`: the times stat reads back.
#[test]
fn utime_futime_lutime() {
    let dir = TempDir::new("fs-utime");
    let lp = Loop::new().unwrap();
    let p = dir.join("f");
    std::fs::write(&p, b"x").unwrap();
    // libuv's test value: 400497753.25 seconds.
    let t = UNIX_EPOCH + Duration::from_millis(400_497_753_250);
    Fs::utime_sync(&lp, &p, t, t).unwrap();
    let st = Fs::stat_sync(&lp, &p).unwrap();
    assert_eq!((st.accessed, st.modified), (t.into(), t.into()));

    let (a, m) = (t + Duration::from_secs(10), t + Duration::from_secs(20));
    let got = slot();
    Fs::utime(&lp, &p, a, m, put(&got)).unwrap();
    wait(&lp, &got).unwrap();
    let st = Fs::stat_sync(&lp, &p).unwrap();
    assert_eq!((st.accessed, st.modified), (a.into(), m.into()));

    let f = Fs::open_sync(&lp, &p, OpenFlags::RDWR, 0).unwrap();
    let got = slot();
    Fs::futime(&lp, &f, t, t, put(&got)).unwrap();
    wait(&lp, &got).unwrap();
    assert_eq!(Fs::fstat_sync(&lp, &f).unwrap().modified, t);

    // lutime sets the link's own times, not the target's.
    let link = dir.join("link");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    let lt = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    Fs::lutime_sync(&lp, &link, lt, lt).unwrap();
    assert_eq!(Fs::lstat_sync(&lp, &link).unwrap().modified, lt);
    assert_eq!(Fs::stat_sync(&lp, &link).unwrap().modified, t);
    // Before the epoch.
    let old = UNIX_EPOCH - Duration::from_secs(86_400);
    Fs::utime_sync(&lp, &p, old, old).unwrap();
    assert_eq!(Fs::stat_sync(&lp, &p).unwrap().modified, old);
    let e = Fs::utime_sync(&lp, dir.join("none"), t, t).unwrap_err();
    assert_eq!(e.code(), StatusCode::ENOENT);
    let _ = SystemTime::now();
}

/// test-fs.c `fs_utime_round`/`fs_futime` with `UV_FS_UTIME_NOW` and
/// `UV_FS_UTIME_OMIT`: "now" sets the current time, "omit" keeps the old one; for
/// the path, the open file and the link itself.
#[test]
fn utime_now_and_omit() {
    let dir = TempDir::new("fs-utime-now");
    let lp = Loop::new().unwrap();
    let p = dir.join("f");
    std::fs::write(&p, b"x").unwrap();
    let old = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let past = |t: uv::Timespec| t.sec == 1_000_000_000 && t.nsec == 0;
    // A time before this test started, with the file system's coarse clock.
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 2;

    Fs::utime_sync(&lp, &p, old, old).unwrap();
    Fs::utime_sync(&lp, &p, FileTime::Now, FileTime::Omit).unwrap();
    let st = Fs::stat_sync(&lp, &p).unwrap();
    assert!(st.accessed.sec >= before, "{:?}", st.accessed);
    assert!(past(st.modified), "{:?}", st.modified);

    Fs::utime_sync(&lp, &p, old, old).unwrap();
    let f = Fs::open_sync(&lp, &p, OpenFlags::RDWR, 0).unwrap();
    let got = slot();
    Fs::futime(&lp, &f, FileTime::Omit, FileTime::Now, put(&got)).unwrap();
    wait(&lp, &got).unwrap();
    let st = Fs::fstat_sync(&lp, &f).unwrap();
    assert!(past(st.accessed), "{:?}", st.accessed);
    assert!(st.modified.sec >= before, "{:?}", st.modified);

    // Both omitted: nothing changes; a Timespec converts too.
    let then = uv::Timespec {
        sec: 1_500_000_000,
        nsec: 0,
    };
    Fs::utime_sync(&lp, &p, then, then).unwrap();
    Fs::utime_sync(&lp, &p, FileTime::Omit, FileTime::Omit).unwrap();
    let st = Fs::stat_sync(&lp, &p).unwrap();
    assert_eq!((st.accessed, st.modified), (then, then));

    let link = dir.join("link");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    Fs::lutime_sync(&lp, &link, old, old).unwrap();
    Fs::lutime_sync(&lp, &link, FileTime::Omit, FileTime::Now).unwrap();
    let st = Fs::lstat_sync(&lp, &link).unwrap();
    assert!(past(st.accessed), "{:?}", st.accessed);
    assert!(st.modified.sec >= before, "{:?}", st.modified);
    // The target kept its times.
    assert_eq!(Fs::stat_sync(&lp, &p).unwrap().modified, then);
}

/// test-fs.c `fs_mkstemp`: two files from one template, open; a bad template.
#[test]
fn mkstemp_makes_distinct_open_files() {
    let dir = TempDir::new("fs-mkstemp");
    let lp = Loop::new().unwrap();
    let template = dir.join("test_file_XXXXXX");
    let got = slot();
    Fs::mkstemp(&lp, &template, put(&got)).unwrap();
    let (f1, p1) = wait(&lp, &got).unwrap();
    let (f2, p2) = Fs::mkstemp_sync(&lp, &template).unwrap();
    assert_ne!(p1, p2);
    for p in [&p1, &p2] {
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("test_file_") && name.len() == 16, "{name}");
        assert_eq!(meta_mode(p), 0o600);
    }
    Fs::write_sync(&lp, &f1, "one", Some(0)).unwrap();
    assert_eq!(std::fs::read(&p1).unwrap(), b"one");
    assert_eq!(
        Fs::fstat_sync(&lp, &f2).unwrap().ino,
        std::fs::metadata(&p2).unwrap().ino()
    );
    assert_eq!(
        Fs::mkstemp_sync(&lp, dir.join("no_xs")).unwrap_err().code(),
        StatusCode::EINVAL
    );
}

/// test-fs.c `fs_statfs`.
#[test]
fn statfs_of_a_directory() {
    let dir = TempDir::new("fs-statfs");
    let lp = Loop::new().unwrap();
    let st = Fs::statfs_sync(&lp, dir.path()).unwrap();
    assert!(st.bsize > 0 && st.blocks > 0, "{st:?}");
    assert!(st.bfree <= st.blocks && st.bavail <= st.bfree, "{st:?}");
    let got = slot();
    Fs::statfs(&lp, dir.path(), put(&got)).unwrap();
    let st2 = wait(&lp, &got).unwrap();
    assert_eq!(
        (st2.fs_type, st2.bsize, st2.blocks),
        (st.fs_type, st.bsize, st.blocks)
    );
    let e = Fs::statfs_sync(&lp, dir.join("none")).unwrap_err();
    assert_eq!(e.code(), StatusCode::ENOENT);
    assert_eq!(e.path(), Some(dir.join("none").as_path()));
}

/// test-fs-copyfile.c.
#[test]
fn copyfile() {
    let dir = TempDir::new("fs-copyfile");
    let lp = Loop::new().unwrap();
    let src = dir.join("src");
    let dst = dir.join("dst");
    // A missing source.
    let e = Fs::copyfile_sync(&lp, &src, &dst, CopyFileFlags::empty()).unwrap_err();
    assert_eq!(e.code(), StatusCode::ENOENT);
    assert_eq!(e.path(), Some(src.as_path()));
    // An empty file, then one with contents; the mode is copied.
    std::fs::write(&src, b"").unwrap();
    Fs::copyfile_sync(&lp, &src, &dst, CopyFileFlags::empty()).unwrap();
    assert_eq!(std::fs::read(&dst).unwrap(), b"");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o640)).unwrap();
    Fs::copyfile_sync(&lp, &src, &dst, CopyFileFlags::empty()).unwrap();
    assert_eq!(std::fs::read(&dst).unwrap(), data);
    assert_eq!(meta_mode(&dst), 0o640);
    // Copying a file onto itself leaves it as it is.
    Fs::copyfile_sync(&lp, &src, &src, CopyFileFlags::empty()).unwrap();
    assert_eq!(std::fs::read(&src).unwrap(), data);
    // EXCL refuses an existing destination; without it, it is replaced.
    assert_eq!(
        Fs::copyfile_sync(&lp, &src, &dst, CopyFileFlags::EXCL)
            .unwrap_err()
            .code(),
        StatusCode::EEXIST
    );
    std::fs::write(&dst, b"old and longer than nothing").unwrap();
    std::fs::write(&src, b"new").unwrap();
    let got = slot();
    Fs::copyfile(&lp, &src, &dst, CopyFileFlags::empty(), put(&got)).unwrap();
    wait(&lp, &got).unwrap();
    assert_eq!(std::fs::read(&dst).unwrap(), b"new");
    // FICLONE falls back to a copy; FICLONE_FORCE copies or says it cannot.
    let d2 = dir.join("clone");
    Fs::copyfile_sync(&lp, &src, &d2, CopyFileFlags::FICLONE).unwrap();
    assert_eq!(std::fs::read(&d2).unwrap(), b"new");
    match Fs::copyfile_sync(&lp, &src, dir.join("forced"), CopyFileFlags::FICLONE_FORCE) {
        Ok(()) => assert_eq!(std::fs::read(dir.join("forced")).unwrap(), b"new"),
        Err(e) => assert!(
            matches!(
                e.code(),
                StatusCode::ENOTSUP | StatusCode::ENOSYS | StatusCode::EXDEV | StatusCode::EINVAL
            ),
            "{e}"
        ),
    }
    // A directory is no file to copy; a destination in a missing directory fails.
    assert!(Fs::copyfile_sync(&lp, dir.path(), dir.join("d"), CopyFileFlags::empty()).is_err());
    assert_eq!(
        Fs::copyfile_sync(&lp, &src, dir.join("none/x"), CopyFileFlags::empty())
            .unwrap_err()
            .code(),
        StatusCode::ENOENT
    );
    // Unknown flag bits never reach libuv.
    assert_eq!(
        Fs::copyfile_sync(&lp, &src, &dst, CopyFileFlags::from_bits_retain(0x100))
            .unwrap_err()
            .code(),
        StatusCode::EINVAL
    );
}

/// test-fs.c `fs_stat_missing_path` and friends: the error names the path, in
/// both forms; `Display` shows it; `io::Error` keeps the kind.
#[test]
fn a_missing_file_is_enoent_with_its_path() {
    let dir = TempDir::new("fs-missing");
    let lp = Loop::new().unwrap();
    let missing = dir.join("no such file");
    let e = Fs::open_sync(&lp, &missing, OpenFlags::RDONLY, 0).unwrap_err();
    assert_eq!(e.code(), StatusCode::ENOENT);
    assert_eq!(e.operation(), "uv_fs_open");
    assert_eq!(e.path(), Some(missing.as_path()));
    assert!(e.to_string().contains("no such file"), "{e}");
    let io = std::io::Error::from(e.clone());
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    assert!(io.to_string().contains("no such file"), "{io}");
    let got = slot();
    Fs::stat(&lp, &missing, put(&got)).unwrap();
    let e2 = wait(&lp, &got).unwrap_err();
    assert_eq!(
        (e2.code(), e2.path()),
        (StatusCode::ENOENT, Some(missing.as_path()))
    );
    // A NUL in the path: EINVAL, also with the path.
    let e = Fs::open_sync(&lp, "a\0b", OpenFlags::RDONLY, 0).unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    assert_eq!(e.path(), Some(std::path::Path::new("a\0b")));
    // Errors on a file name no path.
    let f = Fs::open_sync(&lp, dir.join("f"), rw_create(), 0o600).unwrap();
    let e = Fs::ftruncate_sync(&lp, &f, u64::MAX).unwrap_err();
    assert_eq!((e.code(), e.path()), (StatusCode::EINVAL, None));
    // Sizes and offsets past i64::MAX are refused before libuv sees them.
    let e = Fs::ftruncate_sync(&lp, &f, i64::MAX as u64 + 1).unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    let g = Fs::open_sync(&lp, dir.join("g"), rw_create(), 0o600).unwrap();
    let e = Fs::sendfile_sync(&lp, &g, &f, 1 << 63, 10).unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    Fs::ftruncate_sync(&lp, &f, 5).unwrap();
    assert_eq!(Fs::fstat_sync(&lp, &f).unwrap().size, 5);
    assert_eq!(Fs::sendfile_sync(&lp, &g, &f, 2, 10).unwrap(), 3);
}

/// A `File` closes its descriptor once: a request in flight keeps it open after
/// the `File` is dropped, a close is refused while requests are in flight, and
/// `into_std` hands it over.
#[test]
fn a_file_stays_open_for_its_requests_and_closes_once() {
    let dir = TempDir::new("fs-lifetime");
    let lp = Loop::new().unwrap();
    let p = dir.join("f");
    std::fs::write(&p, b"contents").unwrap();
    let f = Fs::open_sync(&lp, &p, OpenFlags::RDONLY, 0).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    let ident = fd_identity(fd);
    assert!(ident.is_some());
    let got = slot();
    Fs::read(&lp, &f, Vec::with_capacity(64), Some(0), put(&got)).unwrap();
    assert!(f.is_busy());
    drop(f);
    // Still open for the read.
    assert_eq!(fd_identity(fd), ident);
    assert_eq!(wait(&lp, &got).unwrap(), b"contents");
    // Closed with the last request (or reused by another test's file).
    assert_ne!(fd_identity(fd), ident);

    // A close while a request is in flight is refused; the descriptor closes once
    // the request completes.
    let f = Fs::open_sync(&lp, &p, OpenFlags::RDONLY, 0).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    let ident = fd_identity(fd);
    let got = slot();
    Fs::fstat(&lp, &f, put(&got)).unwrap();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let e = f.close(&lp, move |_| c.set(true)).unwrap_err();
    assert_eq!(e.code(), StatusCode::EBUSY);
    assert_eq!(fd_identity(fd), ident);
    assert_eq!(wait(&lp, &got).unwrap().size, 8);
    assert!(!called.get(), "a refused close has no callback");
    assert_ne!(fd_identity(fd), ident);

    // Into std and back.
    let f = Fs::open_sync(&lp, &p, OpenFlags::RDONLY, 0).unwrap();
    let got = slot();
    Fs::fstat(&lp, &f, put(&got)).unwrap();
    let f = f.into_std().unwrap_err().into_value();
    wait(&lp, &got).unwrap();
    let std_file = f.into_std().unwrap();
    assert_eq!(std_file.metadata().unwrap().len(), 8);
    let back = File::from(std_file);
    assert_eq!(Fs::fstat_sync(&lp, &back).unwrap().size, 8);
    back.close_sync(&lp).unwrap();

    // Closing on a closed loop is refused.
    let lp2 = Loop::new().unwrap();
    let f = Fs::open_sync(&lp2, &p, OpenFlags::RDONLY, 0).unwrap();
    let h = lp2.handle();
    lp2.close().unwrap();
    assert_eq!(
        f.close_sync(&h).unwrap_err().kind(),
        uv::Category::ClosedLoop
    );
}

/// Cancelling queued requests (the pool is busy with blocking opens of a FIFO)
/// gives each `ECANCELED`, lets go of what it kept, and leaves nothing behind.
#[test]
fn cancelled_file_requests_get_ecanceled() {
    let dir = TempDir::new("fs-file-cancel");
    let lp = Loop::new().unwrap();
    let p = dir.join("f");
    std::fs::write(&p, b"data").unwrap();
    let f = Fs::open_sync(&lp, &p, OpenFlags::RDWR, 0).unwrap();
    let mut blocker = PoolBlocker::new(&lp);
    let results: Rc<RefCell<Vec<(&'static str, StatusCode)>>> = Rc::default();
    let note = |name: &'static str| {
        let r = results.clone();
        move |code: Option<StatusCode>| {
            r.borrow_mut()
                .push((name, code.unwrap_or(StatusCode::from_raw(0))))
        }
    };
    let mut reqs = Vec::new();
    let n = note("open");
    reqs.push(
        Fs::open(&lp, dir.join("new"), rw_create(), 0o600, move |r| {
            n(r.err().map(|e| e.code()))
        })
        .unwrap(),
    );
    let n = note("read");
    reqs.push(
        Fs::read(&lp, &f, Vec::with_capacity(8), Some(0), move |r| {
            n(r.err().map(|e| e.code()))
        })
        .unwrap(),
    );
    let n = note("write");
    reqs.push(
        Fs::write(&lp, &f, "xx", Some(0), move |r| {
            n(r.err().map(|e| e.code()))
        })
        .unwrap(),
    );
    let n = note("mkstemp");
    reqs.push(
        Fs::mkstemp(&lp, dir.join("t-XXXXXX"), move |r| {
            n(r.err().map(|e| e.code()))
        })
        .unwrap(),
    );
    let n = note("copyfile");
    reqs.push(
        Fs::copyfile(
            &lp,
            &p,
            dir.join("copy"),
            CopyFileFlags::empty(),
            move |r| n(r.err().map(|e| e.code())),
        )
        .unwrap(),
    );
    let n = note("scandir");
    reqs.push(Fs::scandir(&lp, dir.path(), move |r| n(r.err().map(|e| e.code()))).unwrap());
    assert!(f.is_busy());
    for r in &reqs {
        r.cancel().unwrap();
    }
    blocker.release();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(blocker.opened(), blocker.count());
    let mut got = results.borrow().clone();
    got.sort_by_key(|x| x.0);
    let mut want: Vec<_> = ["copyfile", "mkstemp", "open", "read", "scandir", "write"]
        .into_iter()
        .map(|n| (n, StatusCode::ECANCELED))
        .collect();
    want.sort_by_key(|x| x.0);
    assert_eq!(got, want);
    assert!(reqs.iter().all(|r| !r.is_pending()));
    // Nothing ran: no file made, the data unchanged, the file free again.
    assert!(!f.is_busy());
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["f"]);
    assert_eq!(std::fs::read(&p).unwrap(), b"data");
    // A request that ran cannot be cancelled any more.
    assert_eq!(reqs[0].cancel().unwrap_err().code(), StatusCode::EINVAL);
}

/// Dropping the loop with file requests in flight runs their callbacks: an opened
/// file reaches its callback (and is closed when dropped there).
#[test]
fn loop_drop_completes_pending_file_requests() {
    let dir = TempDir::new("fs-file-drop");
    let p = dir.join("f");
    std::fs::write(&p, b"abc").unwrap();
    let lp = Loop::new().unwrap();
    let opened: Rc<RefCell<Option<File>>> = Rc::default();
    let o = opened.clone();
    Fs::open(&lp, &p, OpenFlags::RDONLY, 0, move |f| {
        *o.borrow_mut() = Some(f.unwrap())
    })
    .unwrap();
    let read = slot();
    let f = Fs::open_sync(&lp, &p, OpenFlags::RDONLY, 0).unwrap();
    Fs::read(&lp, &f, Vec::with_capacity(8), Some(0), put(&read)).unwrap();
    drop(f);
    let written = slot();
    let w = Fs::open_sync(&lp, dir.join("w"), rw_create(), 0o600).unwrap();
    Fs::write(&lp, &w, "kept", None, put(&written)).unwrap();
    drop(w);
    drop(lp);
    assert!(opened.borrow().is_some());
    assert_eq!(read.borrow_mut().take().unwrap().unwrap(), b"abc");
    assert_eq!(written.borrow_mut().take().unwrap().unwrap(), 4);
    assert_eq!(std::fs::read(dir.join("w")).unwrap(), b"kept");
}
