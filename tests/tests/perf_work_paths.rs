//! The lean paths of thread-pool work and of synchronous file-system calls: a
//! job's values and captures are dropped once each, on the side the rules say; the
//! request table's entries are reused by later requests of every kind without an
//! old `Request` reaching a new one; a synchronous stat's `Stat` is whole whether
//! the caller reads one field or all of them, and its errors keep their context.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use uv::{Fs, Loop, RunMode, StatusCode};
use uv_tests::net::TempDir;
use uv_tests::pool::{pool_lock, saturate};

/// Counts its drops, and the thread of the last one.
struct Counted {
    drops: Arc<AtomicUsize>,
    value: u64,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_job_capture_and_its_value_are_each_dropped_once() {
    let lp = Loop::new().unwrap();
    let capture_drops = Arc::new(AtomicUsize::new(0));
    let value_drops = Arc::new(AtomicUsize::new(0));
    let got = Rc::new(RefCell::new(Vec::new()));
    for i in 0..64u64 {
        let cap = Counted {
            drops: capture_drops.clone(),
            value: i,
        };
        let vd = value_drops.clone();
        let g = got.clone();
        lp.queue_work(
            move || {
                let v = cap.value * 3;
                Counted {
                    drops: vd,
                    value: v,
                }
            },
            move |r| g.borrow_mut().push(r.unwrap().value),
        )
        .unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    let mut got = got.borrow().clone();
    got.sort_unstable();
    assert_eq!(got, (0..64u64).map(|i| i * 3).collect::<Vec<_>>());
    assert_eq!(
        capture_drops.load(Ordering::SeqCst),
        64,
        "each job dropped once"
    );
    assert_eq!(
        value_drops.load(Ordering::SeqCst),
        64,
        "each value dropped once"
    );
}

#[test]
fn a_cancelled_job_is_dropped_once_unrun_and_after_gets_ecanceled() {
    let _pool = pool_lock();
    let lp = Loop::new().unwrap();
    let sat = saturate(&lp);
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let results = Rc::new(RefCell::new(Vec::new()));
    let mut reqs = Vec::new();
    for i in 0..8u64 {
        let cap = Counted {
            drops: drops.clone(),
            value: i,
        };
        let r = ran.clone();
        let res = results.clone();
        reqs.push(
            lp.queue_work(
                move || {
                    r.fetch_add(1, Ordering::SeqCst);
                    cap.value
                },
                move |v| res.borrow_mut().push(v.map_err(|e| e.code())),
            )
            .unwrap(),
        );
    }
    // Every other one is cancelled while the pool is busy.
    for r in reqs.iter().step_by(2) {
        r.cancel().unwrap();
    }
    sat.release.wait();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 4);
    assert_eq!(drops.load(Ordering::SeqCst), 8);
    let results = results.borrow();
    assert_eq!(results.len(), 8);
    let cancelled = results
        .iter()
        .filter(|r| **r == Err(StatusCode::ECANCELED))
        .count();
    assert_eq!(cancelled, 4);
    let mut values: Vec<u64> = results.iter().filter_map(|r| r.ok()).collect();
    values.sort_unstable();
    assert_eq!(values, vec![1, 3, 5, 7]);
    for r in &reqs {
        assert!(!r.is_pending());
        assert_eq!(r.cancel().unwrap_err().code(), StatusCode::EINVAL);
    }
}

#[test]
fn a_job_panic_resurfaces_and_its_after_is_dropped_uncalled() {
    let lp = Loop::new().unwrap();
    let after_drops = Arc::new(AtomicUsize::new(0));
    let called = Rc::new(Cell::new(false));
    let held = Counted {
        drops: after_drops.clone(),
        value: 0,
    };
    let c = called.clone();
    lp.queue_work(
        || -> u64 { panic!("job 7 failed") },
        move |_| {
            let _ = &held;
            c.set(true);
        },
    )
    .unwrap();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run(RunMode::Default)))
        .unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"job 7 failed"));
    assert!(!called.get());
    assert_eq!(after_drops.load(Ordering::SeqCst), 1);
    // The loop goes on: a later job completes normally.
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    lp.queue_work(|| 5u64, move |r| g.set(r.unwrap())).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.get(), 5);
}

#[test]
fn table_entries_are_reused_across_kinds_without_reaching_new_requests() {
    let dir = TempDir::new("perf-paths-table");
    let file = dir.join("f");
    std::fs::write(&file, b"x").unwrap();
    let lp = Loop::new().unwrap();
    let mut old = Vec::new();
    for round in 0..5u64 {
        let done = Rc::new(Cell::new(0u64));
        let mut reqs = Vec::new();
        for i in 0..16u64 {
            let d = done.clone();
            if i % 2 == 0 {
                reqs.push(
                    lp.queue_work(move || i + round, move |r| d.set(d.get() + r.unwrap()))
                        .unwrap(),
                );
            } else {
                reqs.push(Fs::stat(&lp, &file, move |r| d.set(d.get() + r.unwrap().size)).unwrap());
            }
        }
        // The requests of earlier rounds are done: neither pending nor cancellable,
        // though their entries now hold this round's requests.
        for r in &old {
            let r: &uv::Request = r;
            assert!(!r.is_pending());
            assert_eq!(r.request_type(), None);
            assert_eq!(r.cancel().unwrap_err().code(), StatusCode::EINVAL);
        }
        assert!(reqs.iter().all(|r| r.is_pending()));
        lp.run(RunMode::Default).unwrap();
        let work: u64 = (0..16u64).step_by(2).map(|i| i + round).sum();
        assert_eq!(done.get(), work + 8, "8 jobs and 8 stats of a 1-byte file");
        assert!(reqs.iter().all(|r| !r.is_pending()));
        old = reqs;
    }
    assert!(!lp.alive());
}

#[test]
fn dropping_the_loop_runs_every_accepted_after() {
    let count = Rc::new(Cell::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let lp = Loop::new().unwrap();
        for i in 0..32u64 {
            let c = count.clone();
            let cap = Counted {
                drops: drops.clone(),
                value: i,
            };
            lp.queue_work(
                move || cap.value,
                move |r| {
                    // Done or cancelled by the teardown: either way it is called once.
                    let _ = r;
                    c.set(c.get() + 1);
                },
            )
            .unwrap();
        }
    }
    assert_eq!(count.get(), 32);
    assert_eq!(drops.load(Ordering::SeqCst), 32);
}

#[test]
fn a_sync_stat_is_whole_when_read_whole_or_in_part() {
    let dir = TempDir::new("perf-paths-stat");
    let file = dir.join("data.bin");
    std::fs::write(&file, vec![7u8; 1234]).unwrap();
    let lp = Loop::new().unwrap();
    // One field read (the rest may never be copied out of the request)...
    let is_file = Fs::stat_sync(&lp, &file).unwrap().is_file();
    assert!(is_file);
    assert!(Fs::stat_sync(&lp, dir.path()).unwrap().is_dir());
    assert_eq!(Fs::stat_sync(&lp, &file).unwrap().size, 1234);
    // ...and the whole value, equal to what the asynchronous form gives.
    let whole = Fs::stat_sync(&lp, &file).unwrap();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    Fs::stat(&lp, &file, move |r| *g.borrow_mut() = Some(r)).unwrap();
    lp.run(RunMode::Default).unwrap();
    let async_stat = got.borrow_mut().take().unwrap().unwrap();
    assert_eq!(whole, async_stat);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&file).unwrap();
        assert_eq!(whole.dev, m.dev());
        assert_eq!(whole.ino, m.ino());
        assert_eq!(whole.mode, u64::from(m.mode()));
        assert_eq!(whole.nlink, m.nlink());
        assert_eq!(whole.uid, u64::from(m.uid()));
        assert_eq!(whole.gid, u64::from(m.gid()));
        assert_eq!(whole.size, m.size());
        assert_eq!(whole.blocks, m.blocks());
        assert_eq!(whole.modified.sec, m.mtime());
        assert_eq!(i64::from(whole.modified.nsec), m.mtime_nsec());
        assert_eq!(whole.accessed.sec, m.atime());
        assert_eq!(i64::from(whole.accessed.nsec), m.atime_nsec());
        assert_eq!(whole.changed.sec, m.ctime());
        assert_eq!(i64::from(whole.changed.nsec), m.ctime_nsec());
    }
    // Short, 8-byte and long (heap) paths give the same stat.
    let long_dir = dir.join(&"d".repeat(150));
    std::fs::create_dir(&long_dir).unwrap();
    let long_file = long_dir.join("f");
    std::fs::write(&long_file, b"abc").unwrap();
    assert_eq!(Fs::stat_sync(&lp, &long_file).unwrap().size, 3);
    assert!(Fs::stat_sync(&lp, ".").unwrap().is_dir());
    assert!(Fs::stat_sync(&lp, "./.").unwrap().is_dir());
}

#[test]
fn sync_errors_keep_their_path_and_code() {
    let dir = TempDir::new("perf-paths-errors");
    let lp = Loop::new().unwrap();
    let missing = dir.join("missing");
    let e = Fs::stat_sync(&lp, &missing).unwrap_err();
    assert_eq!(e.code(), StatusCode::ENOENT);
    assert_eq!(e.operation(), "uv_fs_stat");
    assert_eq!(e.path(), Some(missing.as_path()));
    let e = Fs::lstat_sync(&lp, &missing).unwrap_err();
    assert_eq!(e.code(), StatusCode::ENOENT);
    assert_eq!(e.path(), Some(missing.as_path()));
    let long_missing = dir.join(&"m".repeat(300));
    let e = Fs::stat_sync(&lp, &long_missing).unwrap_err();
    assert_eq!(e.code(), StatusCode::ENAMETOOLONG);
    assert_eq!(e.path(), Some(long_missing.as_path()));
    let e = Fs::stat_sync(&lp, "nul\0inside").unwrap_err();
    assert_eq!(e.code(), StatusCode::EINVAL);
    // After errors, the loop's calls still work.
    assert!(Fs::stat_sync(&lp, dir.path()).unwrap().is_dir());
}
