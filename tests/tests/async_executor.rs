//! The loop as an executor: block_on, spawn_local, JoinHandle (detach, abort,
//! panics), wakers from other threads and after the loop is gone, tasks mixed with
//! callbacks, timers as futures.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::StreamExt;
use uv::future::{self as uvf, JoinError};
use uv::{Loop, RunMode, StatusCode};

use uv_tests::alloc_count::{live_here, reallocs_here, PerThread};

#[global_allocator]
static ALLOCATOR: PerThread = PerThread;

#[test]
fn block_on_returns_the_output() {
    let lp = Loop::new().unwrap();
    assert_eq!(lp.block_on(async { 6 * 7 }).unwrap(), 42);
    // With real waiting: a sleep on the loop.
    let lh = lp.handle();
    let v = lp
        .block_on(async move {
            uvf::sleep(&lh, Duration::from_millis(2)).await.unwrap();
            "slept"
        })
        .unwrap();
    assert_eq!(v, "slept");
    // The sleep's timer is closed: running the loop only finishes its close.
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn spawned_tasks_run_and_join() {
    let lp = Loop::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let mut handles = Vec::new();
    for i in 0..5u32 {
        let o = order.clone();
        let lh = lp.handle();
        handles.push(
            lp.spawn_local(async move {
                uvf::sleep(&lh, Duration::from_millis(u64::from(5 - i)))
                    .await
                    .unwrap();
                o.borrow_mut().push(i);
                i * 10
            })
            .unwrap(),
        );
    }
    let outs = lp
        .block_on(async move {
            let mut v = Vec::new();
            for h in handles {
                v.push(h.await.unwrap());
            }
            v
        })
        .unwrap();
    assert_eq!(outs, [0, 10, 20, 30, 40]);
    let mut o = order.borrow().clone();
    o.sort();
    assert_eq!(o, [0, 1, 2, 3, 4]);
}

#[test]
fn run_polls_tasks_and_returns_when_they_are_done() {
    let lp = Loop::new().unwrap();
    let done = Rc::new(Cell::new(0));
    for _ in 0..3 {
        let d = done.clone();
        let lh = lp.handle();
        // Detached: the JoinHandle is dropped at once.
        drop(
            lp.spawn_local(async move {
                uvf::yield_now().await;
                uvf::sleep(&lh, Duration::from_millis(1)).await.unwrap();
                d.set(d.get() + 1);
            })
            .unwrap(),
        );
    }
    assert!(lp.alive(), "a ready task keeps the loop alive");
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(done.get(), 3);
}

#[test]
fn abort_drops_the_future_and_resolves_cancelled() {
    let lp = Loop::new().unwrap();
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let f = Flag(dropped.clone());
    let lh = lp.handle();
    let h = lp
        .spawn_local(async move {
            let _f = f;
            uvf::sleep(&lh, Duration::from_secs(60)).await.unwrap();
            1
        })
        .unwrap();
    // Let it start and wait on its sleep.
    lp.run(RunMode::NoWait).unwrap();
    assert!(!dropped.get());
    assert!(!h.is_finished());
    h.abort();
    assert!(dropped.get(), "abort drops the future at once");
    assert!(h.is_finished());
    assert_eq!(lp.block_on(h).unwrap(), Err(JoinError::Cancelled));
    // The sleep's timer went with the future: nothing keeps the loop alive.
    assert!(!lp.run(RunMode::Default).unwrap());
}

#[test]
fn a_task_that_aborts_itself_is_dropped_after_its_poll() {
    let lp = Loop::new().unwrap();
    let slot: Rc<RefCell<Option<uv::JoinHandle<()>>>> = Rc::new(RefCell::new(None));
    let s = slot.clone();
    let polls = Rc::new(Cell::new(0));
    let p = polls.clone();
    let h = lp
        .spawn_local(async move {
            p.set(p.get() + 1);
            if let Some(me) = s.borrow().as_ref() {
                me.abort();
            }
            uvf::yield_now().await;
            p.set(p.get() + 1);
        })
        .unwrap();
    *slot.borrow_mut() = Some(h);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        polls.get(),
        1,
        "aborted during its first poll: never polled again"
    );
    let h = slot.borrow_mut().take().unwrap();
    assert!(h.is_finished());
    assert_eq!(lp.block_on(h).unwrap(), Err(JoinError::Cancelled));
}

#[test]
fn a_panicking_task_follows_the_panic_rule() {
    let lp = Loop::new().unwrap();
    let h = lp
        .spawn_local(async {
            panic!("task boom");
        })
        .unwrap();
    let payload = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"task boom"));
    assert!(h.is_finished());
    assert_eq!(lp.block_on(h).unwrap(), Err(JoinError::Panicked));

    // With a hook, the loop goes on and other tasks complete.
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_panic_hook(move |p| s.borrow_mut().push(*p.downcast::<&str>().unwrap()));
    let bad = lp.spawn_local(async { panic!("second") }).unwrap();
    let good = lp.spawn_local(async { 5 }).unwrap();
    let (b, g) = lp.block_on(async { (bad.await, good.await) }).unwrap();
    assert_eq!(b, Err(JoinError::Panicked));
    assert_eq!(g, Ok(5));
    assert_eq!(*seen.borrow(), ["second"]);
}

#[test]
fn a_panic_in_the_main_future_unwinds_out_of_block_on() {
    let lp = Loop::new().unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| lp.block_on(async { panic!("main") })));
    assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"main"));
    // The loop is usable afterwards.
    assert_eq!(lp.block_on(async { 1 }).unwrap(), 1);
}

#[test]
fn block_on_inside_the_loop_is_ebusy_and_after_close_closed_loop() {
    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    // A task cannot block on the loop that runs it.
    let lh = lp.handle();
    uv::Timer::once(&lp, Duration::ZERO, move |_| {
        // A LoopHandle cannot block_on (only the Loop owner can); the owner is
        // running: spawn_local still works from a callback.
        let h = lh.spawn_local(async { 3 }).unwrap();
        *g.borrow_mut() = Some(h);
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    let h = got.borrow_mut().take().unwrap();
    assert_eq!(lp.block_on(h).unwrap(), Ok(3));

    let lp2 = Rc::new(Loop::new().unwrap());
    let inner = lp2.clone();
    let code = Rc::new(Cell::new(None));
    let c = code.clone();
    uv::Timer::once(&lp2, Duration::ZERO, move |_| {
        c.set(inner.block_on(async {}).err().map(|e| e.code()));
    })
    .unwrap();
    lp2.run(RunMode::Default).unwrap();
    assert_eq!(code.get(), Some(StatusCode::EBUSY));

    // From the future of another block_on.
    let inner = lp2.clone();
    let nested = lp2
        .block_on(async move { inner.block_on(async { 1 }) })
        .unwrap();
    assert_eq!(nested.unwrap_err().code(), StatusCode::EBUSY);

    let lp3 = Loop::new().unwrap();
    lp3.close().unwrap();
    let e = lp3.block_on(async {}).unwrap_err();
    assert!(e.is(uv::Category::ClosedLoop));
    let e = lp3.spawn_local(async {}).unwrap_err();
    assert!(e.is(uv::Category::ClosedLoop));
}

/// A future completed from another thread: the thread sets the value and wakes.
#[derive(Default)]
struct Shared {
    value: Option<u32>,
    waker: Option<Waker>,
}

struct FromThread(Arc<Mutex<Shared>>);

impl Future for FromThread {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let mut s = self.0.lock().unwrap();
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn complete_from_thread(shared: Arc<Mutex<Shared>>, v: u32) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || loop {
        let mut s = shared.lock().unwrap();
        if let Some(w) = s.waker.take() {
            s.value = Some(v);
            drop(s);
            w.wake();
            return;
        }
        drop(s);
        std::thread::sleep(Duration::from_millis(1));
    })
}

#[test]
fn wakers_work_from_other_threads() {
    let lp = Loop::new().unwrap();
    // The main future of block_on.
    let shared = Arc::new(Mutex::new(Shared::default()));
    let t = complete_from_thread(shared.clone(), 7);
    assert_eq!(lp.block_on(FromThread(shared)).unwrap(), 7);
    t.join().unwrap();

    // A spawned task, awaited by block_on.
    let shared = Arc::new(Mutex::new(Shared::default()));
    let h = lp.spawn_local(FromThread(shared.clone())).unwrap();
    let t = complete_from_thread(shared, 9);
    assert_eq!(lp.block_on(h).unwrap(), Ok(9));
    t.join().unwrap();

    // Many tasks woken from many threads.
    let mut hs = Vec::new();
    let mut ts = Vec::new();
    for i in 0..8 {
        let shared = Arc::new(Mutex::new(Shared::default()));
        hs.push(lp.spawn_local(FromThread(shared.clone())).unwrap());
        ts.push(complete_from_thread(shared, i));
    }
    let outs = lp
        .block_on(async move {
            let mut v = Vec::new();
            for h in hs {
                v.push(h.await.unwrap());
            }
            v
        })
        .unwrap();
    assert_eq!(outs, (0..8).collect::<Vec<_>>());
    for t in ts {
        t.join().unwrap();
    }
}

#[test]
fn waking_after_the_loop_is_gone_is_a_no_op() {
    let lp = Loop::new().unwrap();
    let shared = Arc::new(Mutex::new(Shared::default()));
    let h = lp.spawn_local(FromThread(shared.clone())).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    let waker = shared
        .lock()
        .unwrap()
        .waker
        .take()
        .expect("the task registered");
    drop(lp);
    assert!(h.is_finished(), "the loop's drop cancelled the task");
    // From this thread and from another one.
    waker.wake_by_ref();
    let w = waker.clone();
    std::thread::spawn(move || w.wake()).join().unwrap();
    waker.wake();
}

#[test]
fn dropping_the_loop_drops_pending_tasks() {
    let lp = Loop::new().unwrap();
    let dropped = Rc::new(Cell::new(0));
    struct Count(Rc<Cell<i32>>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let mut hs = Vec::new();
    for _ in 0..4 {
        let c = Count(dropped.clone());
        let lh = lp.handle();
        hs.push(
            lp.spawn_local(async move {
                let _c = c;
                // Holds a handle of the loop (a cycle the loop's drop breaks).
                uvf::sleep(&lh, Duration::from_secs(60)).await.unwrap();
            })
            .unwrap(),
        );
    }
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(dropped.get(), 0);
    drop(lp);
    assert_eq!(dropped.get(), 4);
    for h in hs {
        assert!(h.is_finished());
    }
}

#[test]
fn tasks_and_callbacks_share_the_loop() {
    let lp = Loop::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    // A repeating timer callback ticks three times.
    let l = log.clone();
    let timer = uv::Timer::new(&lp).unwrap();
    let mut n = 0;
    timer
        .start(
            Duration::from_millis(1),
            Duration::from_millis(3),
            move |t| {
                n += 1;
                l.borrow_mut().push(format!("cb{n}"));
                if n == 3 {
                    t.close();
                }
            },
        )
        .unwrap();
    // A task ticks on an interval, in between.
    let l = log.clone();
    let lh = lp.handle();
    let h = lp
        .spawn_local(async move {
            let mut iv = uvf::interval(&lh, Duration::from_millis(3)).unwrap();
            for i in 1..=3 {
                let n = iv.next().await.unwrap();
                assert!(n >= 1);
                l.borrow_mut().push(format!("task{i}"));
            }
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(h.is_finished());
    let log = log.borrow();
    assert_eq!(log.iter().filter(|s| s.starts_with("cb")).count(), 3);
    assert_eq!(log.iter().filter(|s| s.starts_with("task")).count(), 3);
    // Each side's own order is kept.
    let cbs: Vec<_> = log
        .iter()
        .filter(|s| s.starts_with("cb"))
        .cloned()
        .collect();
    assert_eq!(cbs, ["cb1", "cb2", "cb3"]);
}

#[test]
fn timeout_resolves_etimedout_or_the_value() {
    let lp = Loop::new().unwrap();
    let lh = lp.handle();
    let r = lp
        .block_on(uvf::timeout(
            &lh,
            Duration::from_millis(1),
            uvf::sleep(&lh, Duration::from_secs(60)),
        ))
        .unwrap();
    assert_eq!(r.unwrap_err().code(), StatusCode::ETIMEDOUT);
    assert!(!lp.run(RunMode::Default).unwrap(), "both timers are closed");
    let r = lp
        .block_on(uvf::timeout(&lh, Duration::from_secs(60), async { 11 }))
        .unwrap();
    assert_eq!(r.unwrap(), 11);
    assert!(!lp.run(RunMode::Default).unwrap());
    // On a loop that is gone: ClosedLoop from the future.
    let lh2 = {
        let l2 = Loop::new().unwrap();
        l2.handle()
    };
    let e = lp
        .block_on(uvf::sleep(&lh2, Duration::ZERO))
        .unwrap()
        .unwrap_err();
    assert!(e.is(uv::Category::ClosedLoop));
}

#[test]
fn interval_counts_missed_ticks() {
    let lp = Loop::new().unwrap();
    let lh = lp.handle();
    let total = lp
        .block_on(async move {
            let mut iv = uvf::interval(&lh, Duration::from_millis(1)).unwrap();
            // Not polled for a while: the ticks are counted, not queued. Three sleeps
            // one after another, each longer than the period: the interval's timer,
            // due sooner, fires before each sleep's (at least once each, however slow
            // the loop's iterations are, e.g. under valgrind).
            for _ in 0..3 {
                uvf::sleep(&lh, Duration::from_millis(3)).await.unwrap();
            }
            let first = iv.tick().await.unwrap();
            assert!(first >= 3, "missed ticks come as one item: {first}");
            first
        })
        .unwrap();
    assert!(total >= 3);
    assert!(
        !lp.run(RunMode::Default).unwrap(),
        "the interval's timer closed with it"
    );
    assert_eq!(lp.handle_count(), 0);
}

/// The loop's teardown delivers a pending `Async` wake-up after it has dropped the
/// executor's tasks: a task spawned from that callback is refused with `ClosedLoop`,
/// as documented, and its future dropped at once; no second executor is made for a
/// loop whose executor was shut down.
#[test]
fn a_task_spawned_during_teardown_is_refused_and_dropped() {
    struct Flag(Rc<Cell<u32>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let lp = Loop::new().unwrap();
    // The executor exists before the teardown.
    assert_eq!(lp.block_on(async { 0 }).unwrap(), 0);
    let dropped = Rc::new(Cell::new(0));
    let answer: Rc<RefCell<Option<Result<(), uv::Error>>>> = Rc::default();
    let (d, ans) = (dropped.clone(), answer.clone());
    let a = uv::Async::new(&lp, move |a| {
        let lh = a.loop_();
        let flag = Flag(d.clone());
        // The future holds the loop: if it lived on in the loop's state, the two
        // would keep each other alive.
        let held = lh.clone();
        let r = lh.spawn_local(async move {
            let _keep = (flag, held);
        });
        *ans.borrow_mut() = Some(r.map(drop));
    })
    .unwrap();
    a.send().unwrap();
    drop(a);
    drop(lp);
    let r = answer
        .borrow_mut()
        .take()
        .expect("the wake-up was delivered");
    assert!(
        matches!(r, Err(ref c) if c.is(uv::Category::ClosedLoop)),
        "spawn_local during teardown answered {r:?}"
    );
    assert_eq!(dropped.get(), 1, "the refused future was dropped");
}

/// The timers of `sleep`, `timeout` and `interval` are the library's own: they are
/// not among `handles()`, so `close_all_handles` (or a `stop` or `close` through a
/// handle adopted from `handles()`) cannot leave their futures waiting for good (a
/// fuzzer finding: `block_on` of a `timeout` whose timer `close_all_handles` had
/// closed never returned). A sleep whose loop is gone resolves to `ClosedLoop`.
#[test]
fn future_timers_are_out_of_reach_of_close_all_handles() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lp = Loop::new().unwrap();
        let lh = lp.handle();
        let r = lp
            .block_on(async {
                let t = uvf::timeout(&lh, Duration::from_millis(5), std::future::pending::<()>());
                let mut iv = uvf::interval(&lh, Duration::from_millis(1)).unwrap();
                assert!(lh.handles().is_empty(), "no user handle");
                lh.close_all_handles();
                for h in lh.handles() {
                    h.close();
                }
                let n = iv.tick().await.unwrap();
                assert!(n >= 1);
                t.await
            })
            .unwrap();
        assert_eq!(r.unwrap_err().code(), StatusCode::ETIMEDOUT);
        // Polled after its loop is gone: the sleep resolves.
        let lp2 = Loop::new().unwrap();
        let s = uvf::sleep(&lh, Duration::from_secs(3600));
        drop(lp);
        let r = lp2.block_on(s).unwrap();
        assert!(r.unwrap_err().is(uv::Category::ClosedLoop));
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the futures resolved (no hang)");
}

/// A task that another thread wakes 10,000 times while the loop is not running is
/// queued for the loop once (the queue of wakes from other threads holds each task
/// at most once, so it does not grow with the wakes), and polled once for them all.
#[test]
fn a_task_woken_many_times_from_another_thread_is_queued_once() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let lp = Loop::new().unwrap();
    let polls = Rc::new(Cell::new(0u32));
    let stored: Arc<Mutex<Option<Waker>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let (p, w, d) = (polls.clone(), stored.clone(), done.clone());
    let task = lp
        .spawn_local(std::future::poll_fn(move |cx| {
            p.set(p.get() + 1);
            if d.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *w.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }))
        .unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(polls.get(), 1);
    let waker = stored
        .lock()
        .unwrap()
        .take()
        .expect("the task stored its waker");
    let d = done.clone();
    let (grew, allocated) = std::thread::spawn(move || {
        waker.wake_by_ref();
        let (r0, l0) = (reallocs_here(), live_here());
        for _ in 0..10_000 {
            waker.wake_by_ref();
        }
        d.store(true, Ordering::SeqCst);
        (reallocs_here() - r0, live_here() - l0)
    })
    .join()
    .unwrap();
    assert_eq!(
        (grew, allocated),
        (0, 0),
        "the 10,000 later wakes queued nothing"
    );
    lp.block_on(task).unwrap().unwrap();
    assert_eq!(polls.get(), 2, "one poll for all the wakes");
}

/// A future that wakes itself in the poll that completes it leaves the loop as it
/// was: the next `run` runs the due timer (a stop left set by the wake would make
/// that `run` return at once, with nothing run), and `block_on` again works alike.
#[test]
fn a_wake_in_the_last_poll_leaves_the_next_run_whole() {
    let lp = Loop::new().unwrap();
    for round in 0..2 {
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let t = uv::Timer::new(&lp).unwrap();
        t.start(Duration::ZERO, Duration::ZERO, move |t| {
            f.set(true);
            t.close();
        })
        .unwrap();
        let v = lp
            .block_on(std::future::poll_fn(|cx| {
                cx.waker().wake_by_ref();
                Poll::Ready(round)
            }))
            .unwrap();
        assert_eq!(v, round);
        assert!(!fired.get(), "block_on returned before running the loop");
        assert!(!lp.run(RunMode::Default).unwrap());
        assert!(fired.get(), "the timer ran in round {round}");
    }
}
