//! The helpers users used to build by hand: `Timer::once`, `LoopHandle::timeout`
//! (with its `Timeout` guard) and `uv::channel`. Values, counts and ordering; no
//! timing assertions.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use uv::{Category, Loop, RunMode, SendError, Sender, Timeout, Timer};

/// Counts its drops: captured by a callback, it tells when the callback was dropped.
struct DropCount(Rc<Cell<usize>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

fn drop_counter() -> (Rc<Cell<usize>>, DropCount) {
    let c = Rc::new(Cell::new(0));
    (c.clone(), DropCount(c))
}

fn counter() -> (Rc<Cell<usize>>, Rc<Cell<usize>>) {
    let c = Rc::new(Cell::new(0));
    (c.clone(), c)
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> &str {
    uv_tests::panic_text(p).unwrap_or("")
}

// ---------------------------------------------------------------------------
// Timer::once
// ---------------------------------------------------------------------------

#[test]
fn once_runs_exactly_once_and_drops_its_capture_after_running() {
    let lp = Loop::new().unwrap();
    let (runs, r) = counter();
    let (dropped, capture) = drop_counter();
    let d = dropped.clone();
    let timer = Timer::once(&lp, Duration::from_millis(1), move |_t| {
        let _keep = &capture;
        assert_eq!(d.get(), 0, "the capture lives while the callback runs");
        r.set(r.get() + 1);
    })
    .unwrap();
    assert!(timer.is_active());
    assert_eq!(timer.repeat().unwrap(), Duration::ZERO);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(runs.get(), 1);
    // Dropped after it ran, although the timer is still open (we hold it).
    assert_eq!(dropped.get(), 1);
    assert!(!timer.is_closing());
    assert!(!timer.is_active());
    // Restarting the timer's current callback cannot run it again.
    timer.set_repeat(Duration::from_millis(1)).unwrap();
    timer.again().unwrap();
    let t = timer.clone();
    let once_more = Timer::once(&lp, Duration::from_millis(3), move |_| t.stop().unwrap()).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(runs.get(), 1);
    drop(once_more);
}

#[test]
fn once_passes_its_timer_and_can_be_restarted_by_it() {
    let lp = Loop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let timer = Timer::once(&lp, Duration::ZERO, move |t| {
        s.borrow_mut().push("once");
        let s = s.clone();
        t.start(Duration::ZERO, Duration::ZERO, move |_| {
            s.borrow_mut().push("again")
        })
        .unwrap();
    })
    .unwrap();
    let h: uv::Handle = timer.clone().into();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*seen.borrow(), ["once", "again"]);
    assert_eq!(h.handle_type(), uv::HandleType::Timer);
}

#[test]
fn once_without_references_fires_then_closes() {
    let lp = Loop::new().unwrap();
    let (runs, r) = counter();
    drop(Timer::once(&lp, Duration::from_millis(1), move |_| r.set(r.get() + 1)).unwrap());
    assert_eq!(lp.handle_count(), 1, "an active timer stays alive");
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(runs.get(), 1);
    assert_eq!(lp.handle_count(), 0, "closed after firing");
    lp.close().unwrap();
}

#[test]
fn once_stopped_before_firing_never_runs_and_drops_its_closure() {
    let lp = Loop::new().unwrap();
    let (runs, r) = counter();
    let (dropped, capture) = drop_counter();
    let timer = Timer::once(&lp, Duration::ZERO, move |_| {
        let _keep = &capture;
        r.set(r.get() + 1);
    })
    .unwrap();
    timer.stop().unwrap();
    assert!(!timer.is_active());
    // A stopped timer without references closes; its close drops the closure.
    drop(timer);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(runs.get(), 0);
    assert_eq!(dropped.get(), 1);
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn once_closed_before_firing_never_runs_and_drops_its_closure() {
    let lp = Loop::new().unwrap();
    let (runs, r) = counter();
    let (dropped, capture) = drop_counter();
    let timer = Timer::once(&lp, Duration::ZERO, move |_| {
        let _keep = &capture;
        r.set(r.get() + 1);
    })
    .unwrap();
    timer.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!((runs.get(), dropped.get()), (0, 1));
    assert!(timer.is_closed());
}

#[test]
fn once_replaced_by_start_drops_its_closure_at_once() {
    let lp = Loop::new().unwrap();
    let (dropped, capture) = drop_counter();
    let timer = Timer::once(&lp, Duration::ZERO, move |_| {
        let _keep = &capture;
        unreachable!("replaced");
    })
    .unwrap();
    let (runs, r) = counter();
    timer
        .start(Duration::ZERO, Duration::ZERO, move |_| r.set(r.get() + 1))
        .unwrap();
    assert_eq!(dropped.get(), 1);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(runs.get(), 1);
}

#[test]
fn once_timers_fire_in_due_then_start_order() {
    let lp = Loop::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    for (name, ms) in [("b", 2), ("a1", 1), ("c", 3), ("a2", 1)] {
        let o = order.clone();
        drop(
            Timer::once(&lp, Duration::from_millis(ms), move |_| {
                o.borrow_mut().push(name)
            })
            .unwrap(),
        );
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*order.borrow(), ["a1", "a2", "b", "c"]);
}

#[test]
fn once_on_a_closed_loop_is_closed_loop_and_drops_the_callback() {
    let lp = Loop::new().unwrap();
    let h = lp.handle();
    drop(lp);
    let (dropped, capture) = drop_counter();
    let err = Timer::once(&h, Duration::ZERO, move |_| drop(capture)).unwrap_err();
    assert_eq!(err.kind(), Category::ClosedLoop);
    assert_eq!(dropped.get(), 1);
}

#[test]
fn once_panic_is_resumed_by_run_and_the_callback_is_gone() {
    let lp = Loop::new().unwrap();
    let (dropped, capture) = drop_counter();
    let (runs, r) = counter();
    let timer = Timer::once(&lp, Duration::ZERO, move |_| {
        let _keep = capture;
        r.set(r.get() + 1);
        panic!("once boom");
    })
    .unwrap();
    let p = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    assert_eq!(panic_text(&*p), "once boom");
    assert_eq!((runs.get(), dropped.get()), (1, 1));
    // The loop is usable; the timer is stopped and does not fire again.
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(runs.get(), 1);
    assert!(!timer.is_active());
}

// ---------------------------------------------------------------------------
// LoopHandle::timeout
// ---------------------------------------------------------------------------

#[test]
fn timeout_runs_once_and_its_guard_then_does_nothing() {
    let lp = Loop::new().unwrap();
    let (runs, r) = counter();
    let (dropped, capture) = drop_counter();
    let guard = lp
        .timeout(Duration::from_millis(1), move || {
            let _keep = capture;
            r.set(r.get() + 1);
        })
        .unwrap();
    assert!(guard.is_pending());
    assert!(lp.alive(), "a pending timeout keeps the loop alive");
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!((runs.get(), dropped.get()), (1, 1));
    assert!(!guard.is_pending());
    assert!(!guard.cancel());
    assert_eq!(lp.handle_count(), 0, "its timer closed after it fired");
}

#[test]
fn timeout_dropped_before_firing_never_runs_and_drops_f_at_once() {
    let lp = Loop::new().unwrap();
    let (runs, r) = counter();
    let (dropped, capture) = drop_counter();
    let guard = lp
        .timeout(Duration::ZERO, move || {
            let _keep = capture;
            r.set(r.get() + 1);
        })
        .unwrap();
    drop(guard);
    assert_eq!(
        dropped.get(),
        1,
        "dropped with the guard, before the loop runs"
    );
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(runs.get(), 0);
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn timeout_cancel_says_whether_it_cancelled() {
    let lp = Loop::new().unwrap();
    let (dropped, capture) = drop_counter();
    let guard = lp.timeout(Duration::ZERO, move || drop(capture)).unwrap();
    assert!(guard.cancel());
    assert_eq!(dropped.get(), 1);
    let guard = lp.timeout(Duration::ZERO, || {}).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(!guard.cancel());
}

#[test]
fn timeout_cancelled_by_a_callback_of_the_same_iteration_never_runs() {
    let lp = Loop::new().unwrap();
    let (runs, r) = counter();
    let slot: Rc<RefCell<Option<Timeout>>> = Rc::new(RefCell::new(None));
    let s = slot.clone();
    // Started first with the same due time: fires first, and cancels the timeout.
    let canceller = Timer::once(&lp, Duration::from_millis(1), move |_| {
        assert!(s.borrow_mut().take().unwrap().cancel());
    })
    .unwrap();
    *slot.borrow_mut() = Some(
        lp.timeout(Duration::from_millis(1), move || r.set(r.get() + 1))
            .unwrap(),
    );
    lp.run(RunMode::Default).unwrap();
    assert_eq!(runs.get(), 0);
    assert!(slot.borrow().is_none());
    drop(canceller);
}

#[test]
fn timeout_whose_f_owns_its_guard_leaks_nothing() {
    // Fired: f drops its own guard while it runs.
    let lp = Loop::new().unwrap();
    let (dropped, capture) = drop_counter();
    let cell: Rc<RefCell<Option<Timeout>>> = Rc::new(RefCell::new(None));
    let c = cell.clone();
    let guard = lp
        .timeout(Duration::ZERO, move || {
            let _keep = &capture;
            let own = c.borrow_mut().take().unwrap();
            assert!(!own.is_pending(), "running: no longer pending");
            drop(own);
        })
        .unwrap();
    *cell.borrow_mut() = Some(guard);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(dropped.get(), 1);
    assert!(cell.borrow().is_none());

    // Not fired: the loop is dropped while f holds its guard.
    let (dropped, capture) = drop_counter();
    let holder: Rc<RefCell<Option<Timeout>>> = Rc::new(RefCell::new(None));
    let h = holder.clone();
    let guard = lp
        .timeout(Duration::from_secs(3600), move || {
            let _keep = (&capture, &h);
        })
        .unwrap();
    let check = Rc::downgrade(&holder);
    *holder.borrow_mut() = Some(guard);
    drop(holder);
    drop(lp);
    assert_eq!(dropped.get(), 1, "f was dropped with the loop");
    assert!(check.upgrade().is_none(), "no cycle is left");
}

#[test]
fn timeout_dropped_with_its_loop_is_not_pending() {
    let lp = Loop::new().unwrap();
    let (dropped, capture) = drop_counter();
    let guard = lp
        .timeout(Duration::from_secs(3600), move || drop(capture))
        .unwrap();
    drop(lp);
    assert_eq!(dropped.get(), 1);
    assert!(!guard.is_pending());
    assert_eq!(guard.unref().unwrap_err().kind(), Category::ClosedHandle);
    assert!(!guard.cancel());
}

#[test]
fn timeout_unref_does_not_hold_the_loop_and_ref_does() {
    let lp = Loop::new().unwrap();
    let (runs, r) = counter();
    let guard = lp
        .timeout(Duration::from_millis(1), move || r.set(r.get() + 1))
        .unwrap();
    guard.unref().unwrap();
    assert!(!lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(runs.get(), 0);
    assert!(guard.is_pending());
    guard.ref_().unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(runs.get(), 1);
    assert_eq!(guard.ref_().unwrap_err().kind(), Category::ClosedHandle);
}

#[test]
fn timeout_on_a_closed_loop_is_closed_loop() {
    let lp = Loop::new().unwrap();
    let h = lp.handle();
    drop(lp);
    let (dropped, capture) = drop_counter();
    let err = h
        .timeout(Duration::ZERO, move || drop(capture))
        .unwrap_err();
    assert_eq!(err.kind(), Category::ClosedLoop);
    assert_eq!(dropped.get(), 1);
}

#[test]
fn timeout_panic_is_resumed_by_run() {
    let lp = Loop::new().unwrap();
    let guard = lp
        .timeout(Duration::ZERO, || panic!("timeout boom"))
        .unwrap();
    let p = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    assert_eq!(panic_text(&*p), "timeout boom");
    assert!(!guard.is_pending());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.handle_count(), 0);
}

// ---------------------------------------------------------------------------
// uv::channel
// ---------------------------------------------------------------------------

#[test]
fn channel_ends_are_what_they_promise() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    send_sync_clone::<Sender<String>>();
    send_sync_clone::<Sender<Cell<u8>>>(); // values need only be Send
    fn error<E: std::error::Error + Send + Sync + 'static>() {}
    error::<SendError<String>>();
}

#[test]
fn channel_delivers_in_order_and_closes_when_the_last_sender_goes() {
    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let (tx, rx) = uv::channel(&lp, move |s: String| g.borrow_mut().push(s)).unwrap();
    for i in 0..5 {
        tx.send(format!("m{i}")).unwrap();
    }
    assert!(lp.alive(), "a channel with a sender keeps the loop alive");
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(*got.borrow(), ["m0", "m1", "m2", "m3", "m4"]);
    assert!(!rx.is_closed());
    let tx2 = tx.clone();
    drop(tx);
    tx2.send("last".into()).unwrap();
    drop(tx2);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(got.borrow().len(), 6);
    assert_eq!(got.borrow()[5], "last");
    assert!(rx.is_closed());
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn channel_ten_thousand_messages_from_four_threads_arrive_in_order() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 2_500;
    let lp = Loop::new().unwrap();
    let next = Rc::new(RefCell::new(vec![0usize; THREADS]));
    let (total, t) = counter();
    let n = next.clone();
    let (tx, rx) = uv::channel(&lp, move |(thread, seq): (usize, usize)| {
        let mut n = n.borrow_mut();
        assert_eq!(seq, n[thread], "thread {thread}'s values out of order");
        n[thread] += 1;
        t.set(t.get() + 1);
    })
    .unwrap();
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let tx = tx.clone();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                for seq in 0..PER_THREAD {
                    tx.send((thread, seq)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    // Returns once every worker dropped its sender and everything was delivered.
    assert!(!lp.run(RunMode::Default).unwrap());
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(total.get(), THREADS * PER_THREAD);
    assert_eq!(*next.borrow(), vec![PER_THREAD; THREADS]);
    assert!(rx.is_closed());
}

#[test]
fn channel_send_after_the_loop_is_dropped_hands_the_value_back() {
    let lp = Loop::new().unwrap();
    let (tx, rx) = uv::channel(&lp, |_: Vec<u8>| unreachable!()).unwrap();
    drop(lp);
    assert!(rx.is_closed());
    let err = tx.send(vec![1, 2, 3]).unwrap_err();
    assert_eq!(err.0, [1, 2, 3]);
    assert_eq!(err.to_string(), "sending on a closed channel");
    // From another thread too.
    let tx2 = tx.clone();
    let back = thread::spawn(move || tx2.send(vec![4]).unwrap_err().into_inner())
        .join()
        .unwrap();
    assert_eq!(back, [4]);
    let e: uv::Error = tx.send(vec![]).unwrap_err().into();
    assert_eq!(e.kind(), Category::ClosedHandle);
    assert_eq!(rx.unref().unwrap_err().kind(), Category::ClosedHandle);
}

#[test]
fn channel_values_accepted_before_the_loop_drop_are_delivered_during_it() {
    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let (tx, _rx) = uv::channel(&lp, move |n: u32| g.borrow_mut().push(n)).unwrap();
    let tx2 = tx.clone();
    thread::spawn(move || {
        for n in 0..100 {
            tx2.send(n).unwrap();
        }
    })
    .join()
    .unwrap();
    tx.send(100).unwrap();
    // The loop never ran: the values are delivered while it closes its handles.
    drop(lp);
    assert_eq!(*got.borrow(), (0..=100).collect::<Vec<_>>());
    assert!(tx.send(101).is_err());
}

#[test]
fn channel_values_are_delivered_when_the_loop_is_dropped_by_a_panic() {
    // Open (delivered by the loop's last iteration) and closed (delivered by the
    // close, while the thread unwinds).
    for close_first in [false, true] {
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        let p = catch_unwind(AssertUnwindSafe(move || {
            let lp = Loop::new().unwrap();
            let (tx, rx) = uv::channel(&lp, move |n: u32| g.borrow_mut().push(n)).unwrap();
            tx.send(1).unwrap();
            tx.send(2).unwrap();
            if close_first {
                rx.close();
            }
            let _keep = (lp, tx, rx);
            panic!("outer");
        }))
        .unwrap_err();
        assert_eq!(panic_text(&*p), "outer");
        assert_eq!(*got.borrow(), [1, 2], "close_first: {close_first}");
    }
}

#[test]
fn channel_close_refuses_new_values_and_delivers_accepted_ones() {
    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let (tx, rx) = uv::channel(&lp, move |n: u32| g.borrow_mut().push(n)).unwrap();
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    rx.close();
    rx.close(); // idempotent
    assert!(rx.is_closed());
    assert_eq!(tx.send(3).unwrap_err().into_inner(), 3);
    assert!(got.borrow().is_empty());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*got.borrow(), [1, 2]);
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn channel_every_ok_send_is_delivered_when_closed_under_load() {
    // Threads send until refused (or until they have sent `LIMIT`, so that a starved
    // loop thread, as under valgrind, does not let the queue grow without bound),
    // while the loop closes the channel after a while: the values that got `Ok` are
    // exactly the ones delivered, in each thread's order, and the refused ones come
    // back.
    const THREADS: usize = 4;
    const LIMIT: u64 = 20_000;
    let lp = Loop::new().unwrap();
    let per_thread = Rc::new(RefCell::new(vec![Vec::new(); THREADS]));
    type Slot = Rc<RefCell<Option<uv::Receiver<(usize, u64)>>>>;
    let rx_slot: Slot = Rc::new(RefCell::new(None));
    let (p, r) = (per_thread.clone(), rx_slot.clone());
    let (tx, rx) = uv::channel(&lp, move |(thread, seq): (usize, u64)| {
        p.borrow_mut()[thread].push(seq);
        if p.borrow().iter().map(Vec::len).sum::<usize>() == 2_000 {
            r.borrow().as_ref().unwrap().close();
        }
    })
    .unwrap();
    *rx_slot.borrow_mut() = Some(rx);
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut seq = 0u64;
                while seq < LIMIT {
                    match tx.send((thread, seq)) {
                        Ok(()) => seq += 1,
                        Err(SendError(v)) => {
                            assert_eq!(v, (thread, seq), "the refused value comes back");
                            return seq;
                        }
                    }
                }
                seq
            })
        })
        .collect();
    drop(tx);
    lp.run(RunMode::Default).unwrap();
    let accepted: Vec<u64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let per_thread = per_thread.borrow();
    for (thread, got) in per_thread.iter().enumerate() {
        assert_eq!(got.len() as u64, accepted[thread], "thread {thread}");
        assert!(
            got.iter().copied().eq(0..accepted[thread]),
            "thread {thread} in order"
        );
    }
    assert!(per_thread.iter().map(Vec::len).sum::<usize>() >= 2_000);
    rx_slot.borrow_mut().take();
}

#[test]
fn channel_loop_drop_under_load_loses_no_accepted_value() {
    let lp = Loop::new().unwrap();
    let delivered = Rc::new(Cell::new(0u64));
    let d = delivered.clone();
    let (tx, _rx) = uv::channel(&lp, move |_: u64| d.set(d.get() + 1)).unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let worker = thread::spawn(move || {
        // Bounded, so that a starved loop thread (as under valgrind) does not let the
        // queue grow without end; normally the loop is dropped long before.
        let mut ok = 0u64;
        while ok < 200_000 && tx.send(ok).is_ok() {
            ok += 1;
            s.store(true, Ordering::Release);
        }
        ok
    });
    while !started.load(Ordering::Acquire) {
        thread::yield_now();
    }
    lp.run(RunMode::NoWait).unwrap();
    drop(lp);
    let ok = worker.join().unwrap();
    assert_eq!(delivered.get(), ok);
}

#[test]
fn channel_receiver_drop_changes_nothing() {
    let lp = Loop::new().unwrap();
    let (sum, s) = counter();
    let (tx, rx) = uv::channel(&lp, move |n: usize| s.set(s.get() + n)).unwrap();
    drop(rx);
    tx.send(2).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    tx.send(3).unwrap();
    drop(tx);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(sum.get(), 5);
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn channel_unref_lets_the_loop_end_with_live_senders() {
    let lp = Loop::new().unwrap();
    let (count, c) = counter();
    let (tx, rx) = uv::channel(&lp, move |_: ()| c.set(c.get() + 1)).unwrap();
    rx.unref().unwrap();
    assert!(!lp.alive());
    tx.send(()).unwrap();
    // Values still arrive while the loop runs for something else.
    drop(Timer::once(&lp, Duration::ZERO, |_| {}).unwrap());
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(count.get(), 1);
    assert!(!rx.is_closed());
    rx.ref_().unwrap();
    assert!(lp.alive());
    drop(tx);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(rx.is_closed());
}

#[test]
fn channel_sender_dropped_without_sending_closes_it() {
    let lp = Loop::new().unwrap();
    let (dropped, capture) = drop_counter();
    let (tx, rx) = uv::channel(&lp, move |_: u8| {
        let _keep = &capture;
    })
    .unwrap();
    drop(tx);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert!(rx.is_closed());
    assert_eq!(
        dropped.get(),
        1,
        "on_message is dropped with the closed handle"
    );
}

#[test]
fn channel_values_are_dropped_once_each() {
    // Values with a destructor: each is delivered and dropped by on_message, or
    // handed back; none is dropped twice or leaked (see also tests/valgrind.sh).
    let lp = Loop::new().unwrap();
    let live = Arc::new(AtomicUsize::new(0));
    struct Tracked(Arc<AtomicUsize>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let make = |live: &Arc<AtomicUsize>| {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked(live.clone())
    };
    let kept = Rc::new(RefCell::new(Vec::new()));
    let k = kept.clone();
    let (tx, rx) = uv::channel(&lp, move |t: Tracked| k.borrow_mut().push(t)).unwrap();
    for _ in 0..10 {
        tx.send(make(&live)).unwrap();
    }
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(kept.borrow().len(), 10);
    rx.close();
    let back = tx.send(make(&live)).unwrap_err().into_inner();
    drop(back);
    kept.borrow_mut().clear();
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn channel_on_a_closed_loop_is_closed_loop() {
    let lp = Loop::new().unwrap();
    let h = lp.handle();
    drop(lp);
    let (dropped, capture) = drop_counter();
    let err = uv::channel(&h, move |_: u8| {
        let _keep = &capture;
    })
    .unwrap_err();
    assert_eq!(err.kind(), Category::ClosedLoop);
    assert_eq!(dropped.get(), 1);
}

#[test]
fn channel_panic_is_resumed_by_run_and_the_rest_arrives_in_order() {
    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let (tx, rx) = uv::channel(&lp, move |n: u32| {
        if n == 2 {
            panic!("message {n}");
        }
        g.borrow_mut().push(n);
    })
    .unwrap();
    for n in 1..=4 {
        tx.send(n).unwrap();
    }
    let p = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    assert_eq!(panic_text(&*p), "message 2");
    assert_eq!(*got.borrow(), [1]);
    // The loop is usable; the values after the panic come next, before newer ones.
    tx.send(5).unwrap();
    drop(tx);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*got.borrow(), [1, 3, 4, 5]);
    assert!(rx.is_closed());
}

#[test]
fn channel_panic_with_a_panic_hook_goes_to_the_hook() {
    let lp = Loop::new().unwrap();
    let hooked = Rc::new(RefCell::new(Vec::new()));
    let h = hooked.clone();
    lp.set_panic_hook(move |p| h.borrow_mut().push(panic_text(&*p).to_string()));
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let (tx, _rx) = uv::channel(&lp, move |n: u32| {
        assert_ne!(n, 1, "one is refused");
        g.lock().unwrap().push(n);
    })
    .unwrap();
    for n in 0..3 {
        tx.send(n).unwrap();
    }
    drop(tx);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*got.lock().unwrap(), [0, 2]);
    assert_eq!(hooked.borrow().len(), 1);
    assert!(hooked.borrow()[0].contains("one is refused"));
}
