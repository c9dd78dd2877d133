//! Attacks on the user code the library drops or calls while C is on the stack
//! (the panic hook replacing or removing itself, values dropped by the loop's
//! teardown that re-enter the library) and on the loop's edges (`run`, `close`,
//! `block_on` from code a teardown runs, two loops on one thread, `configure`
//! while running, `close` with work in the thread pool, walks from a close
//! callback). Each test says what used to happen, or which guarantee it pins;
//! values, counts, orders and error codes only. `tests/valgrind.sh attacks_drops`
//! checks the memory side.
//!
//! The panics these tests provoke carry a `Provoked` payload, which the panic hook
//! installed here does not print.

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use uv::{Loop, LoopHandle, LoopOption, RunMode, StatusCode, Timer};
use uv_tests::pool::{pool_lock, JobGate};
use uv_tests::provoke::{
    provoke, provoked, quiet_provoked_panics, run_catching, PanicOnDrop, PanickingWake,
};

// ---- helpers ----

/// Counts its drops.
struct DropCount(Rc<Cell<u32>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A counter shared with callbacks.
fn counter() -> Rc<Cell<u32>> {
    Rc::new(Cell::new(0))
}

/// A one-shot timer due at once, whose callback is `f`.
fn due_now(lp: &LoopHandle, f: impl FnMut(&Timer) + 'static) -> Timer {
    let t = Timer::new(lp).unwrap();
    t.start(Duration::ZERO, Duration::ZERO, f).unwrap();
    t
}

thread_local! {
    /// The loop a test shares with code the loop's teardown runs (values dropped
    /// there cannot capture an `Rc` of it that the test could still run).
    static SHARED_LOOP: RefCell<Option<Rc<Loop>>> = const { RefCell::new(None) };
}

/// The loop in `SHARED_LOOP`.
fn shared_loop() -> Rc<Loop> {
    SHARED_LOOP
        .with(|l| l.borrow().clone())
        .expect("a shared loop")
}

/// Puts `lp` in `SHARED_LOOP` for the test's duration (taken out on drop).
struct Shared;

impl Shared {
    fn new(lp: &Rc<Loop>) -> Shared {
        SHARED_LOOP.with(|l| *l.borrow_mut() = Some(lp.clone()));
        Shared
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        SHARED_LOOP.with(|l| l.borrow_mut().take());
    }
}

/// Runs `f` when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Spawns a task on `lp` that waits forever holding `value` (dropped with the task,
/// by the loop's teardown), and lets it start.
fn park_in_task<T: 'static>(lp: &Loop, value: T) {
    lp.spawn_local(async move {
        let _held = value;
        std::future::pending::<()>().await;
    })
    .unwrap();
    lp.run(RunMode::NoWait).unwrap();
}

// ---- the panic hook ----

/// A panic hook that replaces itself (`set_panic_hook` from inside its call) while
/// it holds a value whose `Drop` panics. Used to abort the process ("panic in a
/// function that cannot unwind"): the old hook was dropped in `LoopShared::panicked`
/// outside any `catch_unwind`, inside the timer's C callback. Now the new hook
/// stays, the old one's panic is resumed by `run`, and the next panic goes to the
/// new hook.
#[test]
fn a_panic_hook_that_replaces_itself_drops_the_old_one_without_aborting() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (old_calls, new_calls) = (counter(), counter());
    let (h, o, n) = (lp.handle(), old_calls.clone(), new_calls.clone());
    let boom = PanicOnDrop("old hook");
    lp.set_panic_hook(move |p| {
        let _held = &boom;
        assert_eq!(provoked(&*p), Some("first"));
        o.set(o.get() + 1);
        let n = n.clone();
        h.set_panic_hook(move |p| {
            assert_eq!(provoked(&*p), Some("second"));
            n.set(n.get() + 1);
        });
    });
    let _t = due_now(&lp, |_| provoke("first"));
    assert_eq!(run_catching(&lp), Some("old hook"));
    assert_eq!((old_calls.get(), new_calls.get()), (1, 0));
    let _t = due_now(&lp, |_| provoke("second"));
    assert_eq!(run_catching(&lp), None);
    assert_eq!((old_calls.get(), new_calls.get()), (1, 1));
}

/// A panic hook that removes itself (`take_panic_hook` from inside its call). Used
/// to be put back once it returned (the removal was lost: the hook kept taking
/// panics). Now `take_panic_hook` answers `None` there, the hook is dropped once it
/// returns, and the next panic follows the default rule (resumed by `run`).
#[test]
fn a_panic_hook_that_removes_itself_is_dropped_after_its_call() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (calls, drops) = (counter(), counter());
    let (h, c, d) = (lp.handle(), calls.clone(), DropCount(drops.clone()));
    lp.set_panic_hook(move |_p| {
        let _held = &d;
        c.set(c.get() + 1);
        assert!(h.take_panic_hook().is_none());
    });
    let _t = due_now(&lp, |_| provoke("taken by the hook"));
    assert_eq!(run_catching(&lp), None);
    assert_eq!((calls.get(), drops.get()), (1, 1));
    let _t = due_now(&lp, |_| provoke("resumed by run"));
    assert_eq!(run_catching(&lp), Some("resumed by run"));
    assert_eq!(calls.get(), 1);
    assert!(lp.take_panic_hook().is_none());
}

/// A hook that sets a new hook and then takes it, inside its call: the loop is left
/// with no hook (the last change wins), and both hooks are dropped once.
#[test]
fn a_hook_set_then_taken_inside_the_hook_leaves_no_hook() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let drops = counter();
    let (h, d_old) = (lp.handle(), DropCount(drops.clone()));
    let d_new = drops.clone();
    lp.set_panic_hook(move |_p| {
        let _held = &d_old;
        let d = DropCount(d_new.clone());
        h.set_panic_hook(move |_p| {
            let _held = &d;
        });
        assert!(h.take_panic_hook().is_some(), "the hook set just before");
    });
    let _t = due_now(&lp, |_| provoke("to the first hook"));
    assert_eq!(run_catching(&lp), None);
    assert_eq!(drops.get(), 2);
    let _t = due_now(&lp, |_| provoke("to run"));
    assert_eq!(run_catching(&lp), Some("to run"));
}

/// A hook replaced from an ordinary callback while its `Drop` panics: the drop runs
/// inside the callback's guard, and its panic goes to the hook in place by then,
/// the new one (pins the guarantee; no abort).
#[test]
fn a_hook_whose_drop_panics_replaced_from_a_callback() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let boom = PanicOnDrop("replaced hook");
    lp.set_panic_hook(move |_p| {
        let _held = &boom;
    });
    let got = Rc::new(RefCell::new(Vec::new()));
    let (h, g) = (lp.handle(), got.clone());
    let _t = due_now(&lp, move |_| {
        let g = g.clone();
        h.set_panic_hook(move |p| g.borrow_mut().push(provoked(&*p)));
    });
    assert_eq!(run_catching(&lp), None);
    let _t = due_now(&lp, |_| provoke("to the new hook"));
    assert_eq!(run_catching(&lp), None);
    assert_eq!(
        *got.borrow(),
        vec![Some("replaced hook"), Some("to the new hook")]
    );
}

// ---- wakers of the user's ----

/// Polls `f` once with a `PanickingWake` waker (it must be pending); the waker's
/// state, to count its wakes.
fn poll_with_panicking_waker<F: Future + Unpin>(f: &mut F) -> Arc<PanickingWake> {
    let state = Arc::new(PanickingWake::default());
    let waker = Waker::from(state.clone());
    assert!(Pin::new(f)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    state
}

/// A `JoinHandle` polled with a waker of the user's whose wake panics, for a task
/// that panics. The task's future is dropped while its panic unwinds, and that drop
/// woke the handle's waker: its panic, inside a drop during unwinding, aborted the
/// process ("panic in a destructor during cleanup", from the loop's check
/// callback). Now that wake's panic is dropped there; `run` resumes the task's
/// panic, the waker was woken once, the handle resolves to `Panicked`.
#[test]
fn a_join_handle_whose_waker_panics_for_a_task_that_panics() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let mut join = lp.spawn_local(async { provoke("task") }).unwrap();
    let waker = poll_with_panicking_waker(&mut join);
    assert_eq!(run_catching(&lp), Some("task"));
    assert_eq!(waker.0.load(Ordering::SeqCst), 1);
    let noop = Waker::noop();
    assert_eq!(
        Pin::new(&mut join).poll(&mut Context::from_waker(noop)),
        Poll::Ready(Err(uv::future::JoinError::Panicked))
    );
}

/// A task that polled a read of an `AsyncStream` with a waker of the user's whose
/// wake panics, then panics: the stream is dropped while the panic unwinds, its drop
/// stops reading, and the read callback it drops woke that waker. Its panic, inside
/// a drop during unwinding, aborted the process ("panic in a destructor during
/// cleanup"). Now the dropped stream lets the waker go without waking it (its
/// task no longer waits for the read; the drop of the waker is guarded while the
/// panic unwinds); `run` resumes the task's panic, the waker was never woken, the
/// pipe stays open and usable.
#[test]
fn a_stream_dropped_by_a_panicking_task_wakes_a_panicking_waker_without_aborting() {
    use futures::AsyncRead as _;
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let pipe = uv::Pipe::new(&lp, false).unwrap();
    pipe.open(a).unwrap();
    let woken = Rc::new(RefCell::new(None));
    let (p, w) = (pipe.clone(), woken.clone());
    lp.spawn_local(async move {
        let mut stream = uv::future::AsyncStream::new(p);
        let state = Arc::new(PanickingWake::default());
        let waker = Waker::from(state.clone());
        let mut buf = [0u8; 8];
        assert!(Pin::new(&mut stream)
            .poll_read(&mut Context::from_waker(&waker), &mut buf)
            .is_pending());
        *w.borrow_mut() = Some(state);
        provoke("task");
    })
    .unwrap();
    assert_eq!(run_catching(&lp), Some("task"));
    let state = woken.borrow_mut().take().expect("the task ran");
    assert_eq!(state.0.load(Ordering::SeqCst), 0);
    assert!(!pipe.is_closing());
    std::io::Write::write_all(&mut b, b"still").unwrap();
    let got = uv_tests::read_to_end(&pipe);
    drop(b);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*got.borrow(), b"still");
}

/// Wakers of the user's whose wake panics, for a task that completes, a sleep and
/// a thread-pool job: each wake runs inside a guarded callback, so its panic is
/// resumed by `run` (pins the guarantee; no abort), and the value is still there.
/// The job's waker is woken twice: a wake that panics is not taken as delivered,
/// and the completion callback's drop right after it (the job's last event) wakes
/// it again, that panic dropped while the first unwinds.
#[test]
fn wakes_that_panic_from_loop_callbacks_are_resumed_by_run() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let noop = Waker::noop();
    let mut join = lp.spawn_local(async { 5 }).unwrap();
    let w = poll_with_panicking_waker(&mut join);
    assert_eq!(run_catching(&lp), Some("wake"));
    assert_eq!(w.0.load(Ordering::SeqCst), 1);
    let mut cx = Context::from_waker(noop);
    assert_eq!(Pin::new(&mut join).poll(&mut cx), Poll::Ready(Ok(5)));

    let mut sleep = uv::future::sleep(&lp.handle(), Duration::ZERO);
    let w = poll_with_panicking_waker(&mut sleep);
    assert_eq!(run_catching(&lp), Some("wake"));
    assert_eq!(w.0.load(Ordering::SeqCst), 1);
    assert!(Pin::new(&mut sleep).poll(&mut cx).is_ready());

    let mut work = Box::pin(uv::future::queue_work(&lp.handle(), || 6));
    let w = poll_with_panicking_waker(&mut work);
    assert_eq!(run_catching(&lp), Some("wake"));
    assert_eq!(w.0.load(Ordering::SeqCst), 2);
    match work.as_mut().poll(&mut cx) {
        Poll::Ready(r) => assert_eq!(r.unwrap(), 6),
        Poll::Pending => panic!("the job's value was lost"),
    }
}

// ---- channels ----

/// A channel closed with three values queued, whose `on_message` panics on the
/// first: the close delivers the queue (from the handle's close callback). The
/// values after the panicking one used to be dropped undelivered, though their
/// `send` had returned `Ok`. Now each is delivered once, in order, and `run` resumes
/// the panic.
#[test]
fn a_panic_in_a_channel_close_delivery_still_delivers_the_rest() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let (tx, rx) = uv::channel(&lp, move |v: u32| {
        g.borrow_mut().push(v);
        if v == 1 {
            provoke("first value");
        }
    })
    .unwrap();
    for v in 1..=3 {
        tx.send(v).unwrap();
    }
    rx.close();
    assert_eq!(run_catching(&lp), Some("first value"));
    assert_eq!(*got.borrow(), [1, 2, 3]);
    assert_eq!(tx.send(4).unwrap_err().into_inner(), 4);
}

/// The same with an `on_message` that captures a value whose `Drop` panics: the
/// delivery's panic unwound out of the close callback's drop of the channel's
/// callback, and the unwinding dropped `on_message`, whose capture panicked again:
/// abort ("panic in a destructor during cleanup"). Now `on_message` is dropped
/// before the panic goes on: `run` resumes the delivery's panic, the capture's is
/// dropped, the loop stays usable.
#[test]
fn a_channel_whose_delivery_and_capture_both_panic_at_close() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let boom = PanicOnDrop("on_message's capture");
    let (tx, rx) = uv::channel(&lp, move |_v: u32| {
        let _held = &boom;
        provoke("delivery");
    })
    .unwrap();
    tx.send(1).unwrap();
    rx.close();
    assert_eq!(run_catching(&lp), Some("delivery"));
    assert_eq!(lp.handle_count(), 0);
    let fired = counter();
    let f = fired.clone();
    let _t = due_now(&lp, move |_| f.set(f.get() + 1));
    assert_eq!(run_catching(&lp), None);
    assert_eq!(fired.get(), 1);
}

/// A channel whose last sender is gone, with three values queued, whose
/// `on_message` panics on the last one: the panic unwound past the close that the
/// delivery does once no sender is left, and nothing was left queued to wake the
/// channel again, so it stayed open and referenced for good: `alive()` stayed true
/// and `run(Default)` waited forever (a hang). Now the channel closes all the same,
/// in the same iteration: the loop has nothing left.
#[test]
fn a_panic_in_the_last_delivery_of_a_channel_still_closes_it() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let (tx, _rx) = uv::channel(&lp, move |v: u32| {
        g.borrow_mut().push(v);
        if v == 3 {
            provoke("last value");
        }
    })
    .unwrap();
    for v in 1..=3 {
        tx.send(v).unwrap();
    }
    drop(tx);
    assert_eq!(run_catching(&lp), Some("last value"));
    assert_eq!(*got.borrow(), [1, 2, 3]);
    assert_eq!(lp.handle_count(), 0);
    assert!(!lp.alive());
    assert!(!lp.run(RunMode::NoWait).unwrap());
}

/// A channel left open when its loop is dropped, whose `on_message` panics on each
/// value: the drop delivers every value (the panics are the teardown's, reported
/// there), and the capture is dropped once. Pins the guarantee (the drop's
/// deliveries go through the wake-up as well as the close).
#[test]
fn a_channel_dropped_with_its_loop_delivers_every_value_despite_panics() {
    quiet_provoked_panics();
    let lp = Loop::new().unwrap();
    let (got, drops) = (Rc::new(RefCell::new(Vec::new())), counter());
    let (g, d) = (got.clone(), DropCount(drops.clone()));
    let (tx, _rx) = uv::channel(&lp, move |v: u32| {
        let _held = &d;
        g.borrow_mut().push(v);
        provoke("each value");
    })
    .unwrap();
    for v in 1..=3 {
        tx.send(v).unwrap();
    }
    drop(lp);
    assert_eq!(*got.borrow(), [1, 2, 3]);
    assert_eq!(drops.get(), 1);
    assert_eq!(tx.send(4).unwrap_err().into_inner(), 4);
}

// ---- code run by the loop's teardown ----

/// `Loop::close` called again from a value its own teardown drops (a task's future
/// holding it; the loop reached through a thread-local). Used to run a second
/// teardown inside the first, which closed and freed the `uv_loop_t`; the first then
/// ran `uv_run` on the freed loop (SIGSEGV; valgrind: invalid read). Now the inner
/// call is `EBUSY`, the outer one closes the loop.
#[test]
fn closing_the_loop_from_a_value_its_close_drops_is_ebusy() {
    let lp = Rc::new(Loop::new().unwrap());
    let _shared = Shared::new(&lp);
    let inner = Rc::new(RefCell::new(None));
    let i = inner.clone();
    park_in_task(
        &lp,
        OnDrop(move || *i.borrow_mut() = Some(shared_loop().close())),
    );
    lp.close().unwrap();
    let inner = inner.borrow_mut().take().expect("the task was dropped");
    assert_eq!(inner.unwrap_err().code(), StatusCode::EBUSY);
    assert!(lp.is_closed());
}

/// The same from the close callback of a handle made while the teardown drops the
/// tasks (the loop still takes handles then), which runs inside the teardown's
/// `uv_run`. Used to close and free the loop from inside `uv_run` (libuv's
/// `uv__run_closing_handles` then read the freed loop: SIGSEGV). Now `EBUSY`, and
/// the handle's close callback ran once.
#[test]
fn closing_the_loop_from_a_close_callback_its_close_runs_is_ebusy() {
    let lp = Rc::new(Loop::new().unwrap());
    let _shared = Shared::new(&lp);
    let answers = Rc::new(RefCell::new(Vec::new()));
    let a = answers.clone();
    park_in_task(
        &lp,
        OnDrop(move || {
            let t = Timer::new(&shared_loop()).expect("handles are taken while tasks drop");
            let a = a.clone();
            t.close_with(move |_| a.borrow_mut().push(shared_loop().close()));
        }),
    );
    lp.close().unwrap();
    let answers = answers.take();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].as_ref().unwrap_err().code(), StatusCode::EBUSY);
    assert!(lp.is_closed());
}

/// `run`, `block_on` and `after_fork` from code a teardown runs: a task's drop
/// (outside `uv_run`) and a close callback (inside the teardown's `uv_run`). `run`
/// used to succeed there, nesting `uv_run` inside the teardown's (libuv has no
/// re-entrancy guard); now all of them are `EBUSY` and `is_running` says so.
#[test]
fn run_block_on_and_after_fork_from_a_teardown_are_ebusy() {
    let lp = Rc::new(Loop::new().unwrap());
    let _shared = Shared::new(&lp);
    /// Where the calls were made, `is_running` there, and their codes.
    type Seen = RefCell<Vec<(&'static str, bool, Vec<StatusCode>)>>;
    let seen: Rc<Seen> = Rc::default();
    fn answers(from: &'static str, seen: &Seen) {
        let lp = shared_loop();
        let codes = vec![
            lp.run(RunMode::Default).unwrap_err().code(),
            lp.run(RunMode::NoWait).unwrap_err().code(),
            lp.block_on(async {}).unwrap_err().code(),
            lp.after_fork().unwrap_err().code(),
        ];
        seen.borrow_mut().push((from, lp.is_running(), codes));
    }
    let s = seen.clone();
    park_in_task(
        &lp,
        OnDrop(move || {
            answers("task drop", &s);
            let t = Timer::new(&shared_loop()).unwrap();
            let s = s.clone();
            t.close_with(move |_| answers("close callback", &s));
        }),
    );
    lp.close().unwrap();
    let busy = vec![StatusCode::EBUSY; 4];
    assert_eq!(
        *seen.borrow(),
        vec![
            ("task drop", true, busy.clone()),
            ("close callback", true, busy)
        ]
    );
    assert!(!lp.is_running());
    assert_eq!(
        lp.run(RunMode::Default).unwrap_err().kind(),
        uv::Category::ClosedLoop
    );
}

/// What close callbacks run by a `Loop`'s drop may start: a job, a request, a
/// handle, a random fill are all refused with `ClosedLoop` (and their closures
/// dropped at once); `handles()` is empty and `close_all_handles` a no-op. Pins the
/// guarantee; every close callback ran once.
#[test]
fn what_close_callbacks_start_during_the_drop_is_refused() {
    let lp = Loop::new().unwrap();
    let (ran, dropped) = (counter(), counter());
    for _ in 0..3 {
        let t = Timer::new(&lp).unwrap();
        t.start(Duration::from_secs(3600), Duration::ZERO, |_| {})
            .unwrap();
        let (h, r, d) = (lp.handle(), ran.clone(), dropped.clone());
        t.close_with(move |_| {
            let closed = |e: uv::Error| e.kind() == uv::Category::ClosedLoop;
            let dc = DropCount(d.clone());
            assert!(closed(h.queue_work(|| 1, move |_| drop(dc)).unwrap_err()));
            assert!(closed(Timer::new(&h).unwrap_err()));
            assert!(closed(h.call_later(|| {}).unwrap_err()));
            let dc = DropCount(d.clone());
            assert!(closed(
                h.random(vec![0; 4], 0, move |_| drop(dc)).unwrap_err()
            ));
            assert!(h.handles().is_empty());
            h.close_all_handles();
            r.set(r.get() + 1);
        });
    }
    drop(lp);
    assert_eq!((ran.get(), dropped.get()), (3, 6));
}

/// A job's capture whose `Drop`, on the pool thread after the job ran, queues a
/// `call_later` job while the loop is being dropped (the job is let go by a close
/// callback of the drop, which then waits for it): the queue is shut by then, so
/// the call is `ClosedHandle` and the refused job is dropped on that thread, never
/// run. Pins the guarantee (no hang, no leak, no job accepted and then lost).
#[test]
fn a_job_capture_queueing_from_the_pool_thread_during_the_drop_is_refused() {
    use std::sync::Mutex;
    let _pool = pool_lock();
    let lp = Loop::new().unwrap();
    let later = lp.call_later_sender().unwrap();
    let answer: Arc<Mutex<Option<uv::Result<()>>>> = Arc::default();
    let (ran, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    struct QueueOnDrop {
        later: uv::CallLater,
        answer: Arc<Mutex<Option<uv::Result<()>>>>,
        ran: Arc<AtomicUsize>,
        dropped: Arc<AtomicUsize>,
    }
    impl Drop for QueueOnDrop {
        fn drop(&mut self) {
            struct Counted(Arc<AtomicUsize>);
            impl Drop for Counted {
                fn drop(&mut self) {
                    self.0.fetch_add(1, Ordering::SeqCst);
                }
            }
            let (ran, counted) = (self.ran.clone(), Counted(self.dropped.clone()));
            let r = self.later.call(move || {
                let _counted = counted;
                ran.fetch_add(1, Ordering::SeqCst);
            });
            *self.answer.lock().unwrap() = Some(r);
        }
    }
    let capture = QueueOnDrop {
        later,
        answer: answer.clone(),
        ran: ran.clone(),
        dropped: dropped.clone(),
    };
    let gate = JobGate::default();
    let g = gate.clone();
    lp.queue_work(
        move || {
            let _capture = capture;
            g.pass();
        },
        |r| r.unwrap(),
    )
    .unwrap();
    gate.started();
    // Opened by a close callback: the handle is closed now, its callback runs in
    // the drop's `uv_run`, after the teardown shut the queue (that `uv_run` then
    // waits for the job).
    let t = Timer::new(&lp).unwrap();
    t.close_with(move |_| gate.open());
    drop(lp);
    let answer = answer
        .lock()
        .unwrap()
        .take()
        .expect("the capture was dropped");
    assert_eq!(answer.unwrap_err().kind(), uv::Category::ClosedHandle);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

// ---- two loops on one thread ----

/// Loop B dropped by a task of loop A (inside A's `block_on`): B's teardown drops
/// B's task, whose `Drop` spawns a task on A and panics. Pins: A's new task runs,
/// B's panic stays in B's teardown (reported there), A's `block_on` returns its
/// value.
#[test]
fn a_loop_dropped_inside_a_task_of_another_loop() {
    quiet_provoked_panics();
    let a = Loop::new().unwrap();
    let b = Loop::new().unwrap();
    let hits = counter();
    let (ah, h) = (a.handle(), hits.clone());
    park_in_task(
        &b,
        OnDrop(move || {
            let h2 = h.clone();
            ah.spawn_local(async move { h2.set(h2.get() + 10) })
                .unwrap();
            h.set(h.get() + 1);
            provoke("b's task drop");
        }),
    );
    let b = RefCell::new(Some(b));
    let ah = a.handle();
    let out = a
        .block_on(async move {
            drop(b.borrow_mut().take());
            uv::future::sleep(&ah, Duration::ZERO).await.unwrap();
            7
        })
        .unwrap();
    assert_eq!(out, 7);
    a.run(RunMode::Default).unwrap();
    assert_eq!(hits.get(), 11);
}

/// Loop A's callback runs loop B, whose callback reaches A: `run` and `close` of A
/// are `EBUSY`, it closes A's other timer (which never fires), then panics. B's `run`
/// resumes the panic inside A's callback, A's guard takes it and A's `run` resumes
/// it: the panic crosses both loops in order, and both stay usable.
#[test]
fn a_callback_of_one_loop_running_another_that_touches_the_first() {
    quiet_provoked_panics();
    let a = Rc::new(Loop::new().unwrap());
    let b = Rc::new(Loop::new().unwrap());
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let other = Timer::new(&a).unwrap();
    other
        .start(Duration::from_millis(1), Duration::ZERO, |_| {
            panic!("closed before it was due")
        })
        .unwrap();
    let (a2, b2, l) = (a.clone(), b.clone(), log.clone());
    let _ta = due_now(&a, move |_| {
        let (a3, l2, other) = (a2.clone(), l.clone(), other.clone());
        let _tb = due_now(&b2, move |_| {
            l2.borrow_mut().push(format!(
                "b: run {:?} close {:?}",
                a3.run(RunMode::NoWait).unwrap_err().code(),
                a3.close().unwrap_err().code()
            ));
            other.close();
            provoke("in b");
        });
        let r = catch_unwind(AssertUnwindSafe(|| b2.run(RunMode::Default)));
        let name = provoked(&*r.unwrap_err());
        l.borrow_mut().push(format!("a: b's run resumed {name:?}"));
        provoke("resumed in a");
    });
    assert_eq!(run_catching(&a), Some("resumed in a"));
    assert_eq!(
        *log.borrow(),
        vec![
            "b: run EBUSY close EBUSY".to_string(),
            "a: b's run resumed Some(\"in b\")".to_string()
        ]
    );
    drop(_ta);
    assert!(!a.run(RunMode::Default).unwrap());
    assert!(!b.run(RunMode::Default).unwrap());
    assert_eq!((a.handle_count(), b.handle_count()), (0, 0));
}

// ---- the loop's edges ----

/// `configure` from a callback while the loop runs: libuv only sets a flag, read at
/// the next poll (idle time) or at the ring's first use (SQPOLL). Pins: both are
/// accepted, later timers still fire in order, and the idle time is readable.
#[test]
fn configure_while_running_keeps_the_loop_going() {
    let lp = Loop::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let (h, o) = (lp.handle(), order.clone());
    let _t1 = due_now(&lp, move |_| {
        h.configure(LoopOption::MetricsIdleTime).unwrap();
        h.configure(LoopOption::UseIoUringSqpoll).unwrap();
        o.borrow_mut().push(1);
    });
    let o = order.clone();
    let t2 = Timer::new(&lp).unwrap();
    t2.start(Duration::from_millis(2), Duration::ZERO, move |_| {
        o.borrow_mut().push(2)
    })
    .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(*order.borrow(), vec![1, 2]);
    lp.metrics_idle_time().unwrap();
}

/// `Loop::close` while a job runs in the thread pool: `EBUSY` (libuv still holds the
/// request), the job and its `after` are not lost; once it completed, `close`
/// succeeds.
#[test]
fn close_with_work_in_the_thread_pool_is_ebusy_and_loses_nothing() {
    let _pool = pool_lock();
    let lp = Loop::new().unwrap();
    let gate = JobGate::default();
    let g = gate.clone();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let after = counter();
    let a = after.clone();
    lp.queue_work(
        move || {
            g.pass();
            r.fetch_add(1, Ordering::SeqCst);
            5
        },
        move |v| {
            assert_eq!(v.unwrap(), 5);
            a.set(a.get() + 1);
        },
    )
    .unwrap();
    gate.started();
    assert_eq!(lp.close().unwrap_err().code(), StatusCode::EBUSY);
    gate.open();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!((ran.load(Ordering::SeqCst), after.get()), (1, 1));
    lp.close().unwrap();
    assert!(lp.is_closed());
}

/// `handles()` and `close_all_handles` from inside a close callback: the walk lists
/// the other open handles (not the closing one), and closing them there runs their
/// close callbacks in the same `run`.
#[test]
fn a_walk_from_a_close_callback_closes_the_rest() {
    let lp = Loop::new().unwrap();
    let closed = counter();
    let open: Vec<Timer> = (0..3)
        .map(|_| {
            let t = Timer::new(&lp).unwrap();
            t.start(Duration::from_secs(3600), Duration::ZERO, |_| {})
                .unwrap();
            t
        })
        .collect();
    let seen = Rc::new(Cell::new(usize::MAX));
    let (h, s, c) = (lp.handle(), seen.clone(), closed.clone());
    let first = Timer::new(&lp).unwrap();
    first.close_with(move |_| {
        s.set(h.handles().len());
        h.close_all_handles();
        c.set(c.get() + 1);
    });
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(seen.get(), 3, "the three open timers");
    assert_eq!(closed.get(), 1);
    assert!(open.iter().all(|t| t.is_closed()));
    assert_eq!(lp.handle_count(), 0);
}

/// `stop` outside `run`: libuv keeps the stop until the next `run`, which returns
/// at once (`true`, nothing ran) and clears it; the run after that runs. Pins that
/// a stale stop costs one `run`, never a callback.
#[test]
fn a_stop_outside_run_makes_only_the_next_run_return_at_once() {
    let lp = Loop::new().unwrap();
    let fired = counter();
    let f = fired.clone();
    let _t = due_now(&lp, move |_| f.set(f.get() + 1));
    lp.stop();
    assert!(lp.run(RunMode::Default).unwrap());
    assert_eq!(fired.get(), 0);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(fired.get(), 1);
}
