//! Thread-pool work (`queue_work`) and random bytes (`random`, `random_sync`):
//! libuv's test-threadpool.c, the work and random parts of test-threadpool-cancel.c
//! and test-random.c, plus the panic rule, cancellation edges and dropping the loop
//! with work in flight.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uv::{RunMode, StatusCode};
use uv_tests::fs::pool_size;
use uv_tests::pool::{pool_lock, saturate, JobGate};

#[test]
fn queue_work_simple() {
    // test-threadpool.c, threadpool_queue_work_simple: the job runs once, on a pool
    // thread; `after` once, on the loop thread, with the job's value.
    let lp = uv::Loop::new().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let after = Rc::new(RefCell::new(Vec::new()));
    let loop_thread = std::thread::current().id();
    let (r, a) = (ran.clone(), after.clone());
    let req = lp
        .queue_work(
            move || {
                r.fetch_add(1, Ordering::SeqCst);
                std::thread::current().id()
            },
            move |res| {
                assert_eq!(std::thread::current().id(), loop_thread);
                a.borrow_mut().push(res);
            },
        )
        .unwrap();
    assert!(req.is_pending());
    assert_eq!(req.request_type(), Some(uv::RequestType::Work));
    assert!(lp.alive(), "a pending job keeps the loop alive");
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    let after = after.borrow();
    assert_eq!(after.len(), 1);
    let worker = *after[0].as_ref().unwrap();
    assert_ne!(worker, loop_thread, "the job ran on a pool thread");
    assert!(!req.is_pending());
    assert_eq!(req.request_type(), None);
    assert_eq!(req.cancel().unwrap_err().code(), StatusCode::EINVAL);
    assert_eq!(uv::RequestType::Work.c_name(), Some("work"));
}

#[test]
fn many_jobs_each_deliver_their_value() {
    let lp = uv::Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    for i in 0..200u64 {
        let g = got.clone();
        lp.queue_work(move || i * i, move |r| g.borrow_mut().push(r.unwrap()))
            .unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    let mut got = got.borrow().clone();
    got.sort_unstable();
    assert_eq!(got, (0..200u64).map(|i| i * i).collect::<Vec<_>>());
}

#[test]
fn values_that_are_not_copy_move_through() {
    let lp = uv::Loop::new().unwrap();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    let input = vec![String::from("a"), String::from("b")];
    lp.queue_work(
        move || input.into_iter().map(|s| s.repeat(3)).collect::<Vec<_>>(),
        move |r| *g.borrow_mut() = Some(r.unwrap()),
    )
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.borrow_mut().take().unwrap(), ["aaa", "bbb"]);
}

/// Counts its drops.
struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_panic_in_work_resurfaces_from_run_and_after_is_dropped_uncalled() {
    let lp = uv::Loop::new().unwrap();
    let called = Rc::new(Cell::new(false));
    let drops = Arc::new(AtomicUsize::new(0));
    let (c, guard) = (called.clone(), DropCount(drops.clone()));
    lp.queue_work(
        || -> u32 { panic!("boom in work") },
        move |_r| {
            let _keep = &guard;
            c.set(true);
        },
    )
    .unwrap();
    let payload = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in work"));
    assert!(!called.get(), "after is not called for a panicked job");
    assert_eq!(drops.load(Ordering::SeqCst), 1, "after was dropped");
    // The loop goes on.
    let ok = Rc::new(Cell::new(0));
    let o = ok.clone();
    lp.queue_work(|| 7, move |r| o.set(r.unwrap())).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(ok.get(), 7);
}

#[test]
fn a_panic_in_work_goes_to_the_panic_hook() {
    let lp = uv::Loop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_panic_hook(move |p| s.borrow_mut().push(p.downcast_ref::<String>().cloned()));
    let afters = Rc::new(Cell::new(0));
    for i in 0..4 {
        let a = afters.clone();
        lp.queue_work(
            move || {
                if i % 2 == 0 {
                    panic!("job {i}");
                }
                i
            },
            move |r| {
                assert_eq!(r.unwrap() % 2, 1);
                a.set(a.get() + 1);
            },
        )
        .unwrap();
    }
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(afters.get(), 2);
    let mut seen = seen.borrow().clone();
    seen.sort();
    assert_eq!(seen, [Some("job 0".to_string()), Some("job 2".to_string())]);
}

#[test]
fn a_panic_in_after_resurfaces_from_run() {
    let lp = uv::Loop::new().unwrap();
    lp.queue_work(|| 1, |_r| panic!("boom in after")).unwrap();
    let payload = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in after"));
    assert!(!lp.alive());
}

#[test]
fn cancel_queued_work() {
    // test-threadpool-cancel.c, threadpool_cancel_work: with every pool thread
    // busy, queued jobs are cancelled: `after` gets ECANCELED, the job never runs
    // and is dropped.
    let _pool = pool_lock();
    let lp = uv::Loop::new().unwrap();
    let sat = saturate(&lp);
    let ran = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let results = Rc::new(RefCell::new(Vec::new()));
    let mut reqs = Vec::new();
    for _ in 0..16 {
        let (r, d) = (ran.clone(), DropCount(dropped.clone()));
        let res = results.clone();
        reqs.push(
            lp.queue_work(
                move || {
                    let _d = &d;
                    r.fetch_add(1, Ordering::SeqCst);
                },
                move |x| res.borrow_mut().push(x.map_err(|e| e.code())),
            )
            .unwrap(),
        );
    }
    for r in &reqs {
        r.cancel().unwrap();
    }
    assert!(
        reqs.iter().all(|r| r.is_pending()),
        "callbacks run on the loop"
    );
    sat.release(&lp);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(dropped.load(Ordering::SeqCst), 16);
    assert_eq!(*results.borrow(), vec![Err(StatusCode::ECANCELED); 16]);
    assert!(reqs.iter().all(|r| !r.is_pending()));
}

#[test]
fn cancel_random() {
    // threadpool_cancel_random.
    let _pool = pool_lock();
    let lp = uv::Loop::new().unwrap();
    let sat = saturate(&lp);
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    let req = lp
        .random(vec![0; 16], 0, move |r| {
            *g.borrow_mut() = Some(r.map_err(|e| e.code()))
        })
        .unwrap();
    assert_eq!(req.request_type(), Some(uv::RequestType::Random));
    req.cancel().unwrap();
    assert!(got.borrow().is_none(), "not before the loop runs");
    sat.release(&lp);
    assert_eq!(*got.borrow(), Some(Err(StatusCode::ECANCELED)));
}

#[test]
fn cancel_a_running_job_is_ebusy() {
    let _pool = pool_lock();
    let lp = uv::Loop::new().unwrap();
    let gate = JobGate::default();
    let g = gate.clone();
    let got = Rc::new(Cell::new(None));
    let gt = got.clone();
    let req = lp
        .queue_work(
            move || {
                g.pass();
                5
            },
            move |r| gt.set(Some(r.map_err(|e| e.code()))),
        )
        .unwrap();
    gate.started();
    assert_eq!(req.cancel().unwrap_err().code(), StatusCode::EBUSY);
    gate.open();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.get(), Some(Ok(5)));
}

#[test]
fn dropping_the_loop_waits_for_work_in_flight() {
    let results = Rc::new(RefCell::new(Vec::new()));
    {
        let lp = uv::Loop::new().unwrap();
        for i in 0..8u32 {
            let r = results.clone();
            lp.queue_work(
                move || {
                    std::thread::sleep(Duration::from_millis(5));
                    i
                },
                move |x| r.borrow_mut().push(x.unwrap()),
            )
            .unwrap();
        }
        // Dropped without running.
    }
    let mut got = results.borrow().clone();
    got.sort_unstable();
    assert_eq!(got, (0..8).collect::<Vec<_>>());
}

#[test]
fn dropping_the_loop_delivers_cancellations() {
    let _pool = pool_lock();
    let results = Rc::new(RefCell::new(Vec::new()));
    let lp = uv::Loop::new().unwrap();
    let sat = saturate(&lp);
    let r = results.clone();
    let req = lp
        .queue_work(|| 1, move |x| r.borrow_mut().push(x.map_err(|e| e.code())))
        .unwrap();
    req.cancel().unwrap();
    let release = sat.release.clone();
    // The blockers finish while the loop's drop waits for them.
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        release.wait();
    });
    drop(lp);
    t.join().unwrap();
    assert_eq!(*results.borrow(), [Err(StatusCode::ECANCELED)]);
    assert_eq!(sat.done.get(), pool_size(), "the blockers' afters ran too");
}

#[test]
fn work_on_a_closed_loop_is_refused_and_dropped() {
    let lp = uv::Loop::new().unwrap();
    let h = lp.handle();
    drop(lp);
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = DropCount(dropped.clone());
    let err = h
        .queue_work(
            move || {
                let _d = &d;
            },
            |_r| unreachable!(),
        )
        .unwrap_err();
    assert!(err.is(uv::Category::ClosedLoop));
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    let err = h.random(vec![0; 4], 0, |_r| unreachable!()).unwrap_err();
    assert!(err.is(uv::Category::ClosedLoop));
}

#[test]
fn after_can_queue_more_work() {
    let lp = uv::Loop::new().unwrap();
    let total = Rc::new(Cell::new(0u32));
    fn step(h: uv::LoopHandle, n: u32, total: Rc<Cell<u32>>) {
        let h2 = h.clone();
        h.queue_work(
            move || n + 1,
            move |r| {
                let v = r.unwrap();
                total.set(total.get() + v);
                if v < 10 {
                    step(h2, v, total);
                }
            },
        )
        .unwrap();
    }
    step(lp.handle(), 0, total.clone());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(total.get(), (1..=10).sum::<u32>());
}

#[test]
fn random_async() {
    // test-random.c, random_async.
    let lp = uv::Loop::new().unwrap();
    let err = lp
        .random(vec![0; 256], u32::MAX, |_r| unreachable!())
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c = calls.clone();
    lp.random(Vec::new(), 0, move |r| c.borrow_mut().push(r.unwrap()))
        .unwrap();
    assert!(calls.borrow().is_empty());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*calls.borrow(), [Vec::<u8>::new()]);
    let c = calls.clone();
    lp.random(vec![0; 256], 0, move |r| c.borrow_mut().push(r.unwrap()))
        .unwrap();
    assert_eq!(calls.borrow().len(), 1);
    lp.run(RunMode::Default).unwrap();
    let calls = calls.borrow();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].len(), 256);
    // Buy a lottery ticket if this fails.
    assert!(calls[1].iter().any(|&b| b != 0));
}

#[test]
fn random_sync() {
    // test-random.c, random_sync.
    let mut buf = [0u8; 256];
    assert_eq!(
        uv::random_sync(&mut buf, u32::MAX).unwrap_err().code(),
        StatusCode::EINVAL
    );
    assert_eq!(buf, [0u8; 256], "a refused call leaves the buffer alone");
    uv::random_sync(&mut buf, 0).unwrap();
    assert_ne!(buf, [0u8; 256]);
    let mut other = [0u8; 256];
    uv::random_sync(&mut other, 0).unwrap();
    assert_ne!(buf, other);
    uv::random_sync(&mut [], 0).unwrap();
}

/// A `Request` may outlive its job and its loop: it then says the job is done,
/// `cancel` is EINVAL, and dropping the last clone (after the loop is gone) gives
/// the request's memory back (the valgrind run checks nothing leaks or is read
/// after it is freed).
#[test]
fn request_values_outlive_their_job_and_loop() {
    let lp = uv::Loop::new().unwrap();
    let got = Rc::new(Cell::new(0u32));
    let g = got.clone();
    // Either may finish first (the pool has several threads): each adds its part.
    let req = lp
        .queue_work(|| 7u32, move |r| g.set(g.get() + r.unwrap()))
        .unwrap();
    let copies = vec![req.clone(), req.clone()];
    let g = got.clone();
    let fs_req = uv::Fs::stat(&lp, std::env::temp_dir(), move |r| {
        r.unwrap();
        g.set(g.get() + 100);
    })
    .unwrap();
    let fs_copy = fs_req.clone();
    assert!(req.is_pending() && copies.iter().all(uv::Request::is_pending));
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.get(), 107);
    for r in copies.iter().chain([&req, &fs_req, &fs_copy]) {
        assert!(!r.is_pending());
        assert_eq!(r.request_type(), None);
        assert_eq!(r.cancel().unwrap_err().code(), StatusCode::EINVAL);
    }
    drop(copies);
    drop(fs_copy);
    drop(lp);
    assert!(!req.is_pending() && !fs_req.is_pending());
    drop(req);
    drop(fs_req);
}

/// The job's `Request` dropped inside `after` (a clone moved there), and another
/// cloned there and kept past the loop: the memory goes back once either way.
#[test]
fn request_dropped_or_cloned_inside_after() {
    let lp = uv::Loop::new().unwrap();
    let slot: Rc<RefCell<Option<uv::Request>>> = Rc::default();
    let kept: Rc<RefCell<Option<uv::Request>>> = Rc::default();
    let (s, k) = (slot.clone(), kept.clone());
    let req = lp
        .queue_work(
            || 1u8,
            move |r| {
                assert_eq!(r.unwrap(), 1);
                let mine = s.borrow_mut().take().expect("the request was stored");
                assert!(!mine.is_pending(), "not pending inside its own callback");
                assert_eq!(mine.cancel().unwrap_err().code(), StatusCode::EINVAL);
                *k.borrow_mut() = Some(mine.clone());
                drop(mine);
            },
        )
        .unwrap();
    *slot.borrow_mut() = Some(req);
    lp.run(RunMode::Default).unwrap();
    assert!(slot.borrow().is_none());
    drop(lp);
    let k = kept.borrow_mut().take().unwrap();
    assert!(!k.is_pending());
    drop(k);
    // A job whose only `Request` is dropped at once (the common case), and one
    // whose `Request` is dropped inside `after`.
    let lp = uv::Loop::new().unwrap();
    let n = Rc::new(Cell::new(0));
    let m = n.clone();
    drop(lp.queue_work(
        || (),
        move |r| {
            r.unwrap();
            m.set(m.get() + 1);
        },
    ));
    lp.run(RunMode::Default).unwrap();
    assert_eq!(n.get(), 1);
}
