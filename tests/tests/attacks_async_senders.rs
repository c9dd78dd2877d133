//! Attacks on the lock-free `AsyncSender` table: a hold taken while formatting a
//! sender, panics during that hold, sends from the loop thread itself (inside the
//! callback of a handle whose last reference is gone), stale senders of entries
//! reused over many generations and across chunk boundaries, many senders racing
//! one last-reference drop, senders and `CallLater` used after the loop is gone,
//! jobs queued while the loop is dropped, and the wake-up an unreferenced handle
//! accepted just before its loop is dropped. Every test asserts what the API
//! promises (counts, `ClosedHandle`), never timing.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};

use uv::{Async, AsyncSender, CallLater, Category, Loop, RunMode};

fn is_closed_handle(e: &uv::Error) -> bool {
    e.kind() == Category::ClosedHandle
}

/// The end of a racing round: the loop runs out; an accepted wake-up was delivered
/// (wake-ups coalesce: at least one, at most one per accepted send); the handle is
/// gone, and its sender refused.
fn settle_round(lp: &Loop, round: usize, accepted: usize, n: &AtomicUsize, s: &AsyncSender) {
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0, "round {round}");
    let d = n.load(Ordering::SeqCst);
    if accepted > 0 {
        assert!(d >= 1, "round {round}: {accepted} accepted sends lost");
    }
    assert!(
        d <= accepted,
        "round {round}: {d} callbacks, {accepted} sends"
    );
    assert!(is_closed_handle(&s.send().unwrap_err()));
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn counting_async(lp: &Loop, n: &Arc<AtomicUsize>) -> Async {
    let n = n.clone();
    Async::new(lp, move |_| {
        n.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap()
}

/// A `fmt::Write` that calls `on_write` when it is given `on` (formatting a
/// sender writes `true` or `false` after its hold was taken).
struct Hook<F: FnMut()> {
    on: &'static str,
    on_write: F,
    out: String,
}

impl<F: FnMut()> std::fmt::Write for Hook<F> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if s == self.on {
            (self.on_write)();
        }
        self.out.push_str(s);
        Ok(())
    }
}

fn hook<F: FnMut()>(on: &'static str, on_write: F) -> Hook<F> {
    Hook {
        on,
        on_write,
        out: String::new(),
    }
}

/// `Debug` says whether the sender's handle is open, and a sender's `Debug` on
/// another thread whose writer blocks must not keep the loop thread from closing
/// the handle: the loop thread drops the handle's last reference while the other
/// thread is inside the writer, then lets that writer go on. If the formatting
/// held the sender's entry while it wrote, the loop thread's close would wait for
/// the writer, which waits for the loop thread: the writer gives up after a long
/// while (so the test ends) and the test fails.
///
/// Fails today: `impl Debug for AsyncSender` keeps the `Result<Hold>` temporary
/// alive until the end of the `debug_struct(..).field(..).finish()` statement, so
/// the hold lasts through the user's writer (see the review report).
#[test]
fn formatting_a_sender_does_not_hold_its_entry_while_the_writer_runs() {
    let lp = Loop::new().unwrap();
    let n = counter();
    let a = counting_async(&lp, &n);
    let s = a.sender().unwrap();
    let (in_writer_tx, in_writer_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let mut gave_up = false;
        let mut w = hook("true", || {
            in_writer_tx.send(()).unwrap();
            // Not a timing assertion: a deadlock breaker, long enough for any
            // machine to hand the message over.
            gave_up = go_rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .is_err();
        });
        write!(w, "{s:?}").unwrap();
        let out = std::mem::take(&mut w.out);
        drop(w);
        (out, gave_up, s)
    });
    in_writer_rx.recv().unwrap();
    // The last reference: the handle closes (no wake-up pending), which shuts its
    // sender entry.
    drop(a);
    let _ = go_tx.send(());
    let (out, gave_up, s) = t.join().unwrap();
    assert!(
        !gave_up,
        "the loop thread's close waited for another thread's Debug formatting"
    );
    assert_eq!(out, "AsyncSender { open: true }");
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
    assert_eq!(format!("{s:?}"), "AsyncSender { open: false }");
    assert!(is_closed_handle(&s.send().unwrap_err()));
    assert_eq!(n.load(Ordering::SeqCst), 0);
}

/// A writer that panics while a sender (or a `CallLater`) is being formatted, on
/// the loop thread and on another one: the hold the formatting took is released
/// by the unwinding, so the handle still closes (the loop thread would otherwise
/// wait for it forever) and its senders are refused afterwards.
#[test]
fn a_panic_while_formatting_a_sender_releases_its_hold() {
    let lp = Loop::new().unwrap();
    let n = counter();
    let a = counting_async(&lp, &n);
    let s = a.sender().unwrap();
    let later = lp.call_later_sender().unwrap();
    for _ in 0..50 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut w = hook("true", || panic!("writer"));
            let _ = write!(w, "{s:?}");
        }));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut w = hook("true", || panic!("writer"));
            let _ = write!(w, "{later:?}");
        }));
        assert!(r.is_err());
        let s2 = s.clone();
        let t = std::thread::spawn(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut w = hook("true", || panic!("writer"));
                let _ = write!(w, "{s2:?}");
            }))
            .is_err()
        });
        assert!(t.join().unwrap());
    }
    assert_eq!(format!("{s:?}"), "AsyncSender { open: true }");
    // The entry is not held: a send goes through, and dropping the last reference
    // closes the handle once the wake-up is delivered.
    s.send().unwrap();
    let ran = counter();
    let r2 = ran.clone();
    later
        .call(move || {
            r2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    drop(a);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 1);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(lp.handle_count(), 0);
    assert!(is_closed_handle(&s.send().unwrap_err()));
    assert_eq!(format!("{s:?}"), "AsyncSender { open: false }");
}

/// Sends from the loop thread itself, inside the callback of a handle whose last
/// `Async` value is gone: each one is accepted (the handle stays open for it) and
/// delivered, the loop thread never waits on a hold of its own, and once the
/// callback stops sending the handle closes and refuses. Also sends to another
/// handle from the callback, and `CallLater` from the callback.
#[test]
fn a_callback_of_a_dropped_handle_sending_to_itself_is_delivered_each_time() {
    const RESENDS: usize = 200;
    let lp = Loop::new().unwrap();
    let other_n = counter();
    let other = counting_async(&lp, &other_n);
    let other_s = other.sender().unwrap();
    let later = lp.call_later_sender().unwrap();
    let jobs = counter();
    let calls = Rc::new(RefCell::new(0usize));
    let me: Rc<RefCell<Option<AsyncSender>>> = Rc::default();
    let refused = Rc::new(RefCell::new(None));
    let (c, m, rf, j) = (calls.clone(), me.clone(), refused.clone(), jobs.clone());
    let a = Async::new(&lp, move |_| {
        *c.borrow_mut() += 1;
        let k = *c.borrow();
        let s = m.borrow().clone().unwrap();
        if k <= RESENDS {
            // Twice: the second finds the wake-up pending and is coalesced.
            s.send().unwrap();
            s.send().unwrap();
            other_s.send().unwrap();
            let j = j.clone();
            later
                .call(move || {
                    j.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            assert_eq!(format!("{s:?}"), "AsyncSender { open: true }");
        } else {
            // No send: the handle closes after this callback.
            *rf.borrow_mut() = Some(s);
        }
    })
    .unwrap();
    *me.borrow_mut() = Some(a.sender().unwrap());
    me.borrow().as_ref().unwrap().send().unwrap();
    drop(a);
    lp.run(RunMode::NoWait).unwrap();
    while *calls.borrow() <= RESENDS {
        lp.run(RunMode::Once).unwrap();
    }
    other.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*calls.borrow(), RESENDS + 1);
    assert_eq!(jobs.load(Ordering::SeqCst), RESENDS);
    assert!(other_n.load(Ordering::SeqCst) >= 1);
    assert_eq!(lp.handle_count(), 0);
    let s = refused.borrow_mut().take().unwrap();
    assert!(is_closed_handle(&s.send().unwrap_err()));
    me.borrow_mut().take();
}

/// Entries reused over many generations and across the table's chunk boundaries
/// (32, 96, 224 entries): handles are closed in scattered order (by `close` or by
/// dropping the last reference) and replaced, so the free list hands entries of
/// every chunk back out. Every stale sender is refused, every live one wakes its
/// own handle and no other.
#[test]
fn stale_senders_over_generations_and_chunks_never_wake_the_new_handle() {
    const HANDLES: usize = 300;
    const ROUNDS: usize = 40;
    let lp = Loop::new().unwrap();
    let mut ids = 0usize;
    let mut delivered: Vec<Arc<AtomicUsize>> = Vec::new();
    let mut make = |lp: &Loop, delivered: &mut Vec<Arc<AtomicUsize>>| {
        let n = counter();
        delivered.push(n.clone());
        let a = counting_async(lp, &n);
        let s = a.sender().unwrap();
        ids += 1;
        (ids - 1, a, s)
    };
    let mut live: Vec<(usize, Async, AsyncSender)> =
        (0..HANDLES).map(|_| make(&lp, &mut delivered)).collect();
    let mut stale: Vec<(usize, AsyncSender)> = Vec::new();
    let mut expected = vec![0usize; 0];
    for round in 0..ROUNDS {
        // Close a scattered third of the handles.
        let mut k = 0;
        let mut kept = Vec::new();
        for (id, a, s) in live.drain(..) {
            k += 1;
            if (k * 7 + round * 13) % 3 == 0 {
                if (k + round) % 2 == 0 {
                    a.close();
                } else {
                    drop(a);
                }
                stale.push((id, s));
            } else {
                kept.push((id, a, s));
            }
        }
        lp.run(RunMode::NoWait).unwrap();
        while kept.len() < HANDLES {
            kept.push(make(&lp, &mut delivered));
        }
        live = kept;
        for (id, s) in &stale {
            let e = s.send().expect_err("a stale sender was accepted");
            assert!(is_closed_handle(&e), "handle {id}: {e:?}");
        }
        expected.resize(delivered.len(), 0);
        for (id, _, s) in live.iter().filter(|(id, _, _)| id % 2 == round % 2) {
            s.send().unwrap();
            expected[*id] += 1;
        }
        lp.run(RunMode::NoWait).unwrap();
        for (id, n) in delivered.iter().enumerate() {
            assert_eq!(n.load(Ordering::SeqCst), expected[id], "handle {id}");
        }
    }
    for (_, a, _) in live.drain(..) {
        a.close();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
}

/// One entry reused thousands of times while other threads keep sending on all of
/// its stale senders (which bump and undo the entry's count in every generation):
/// the new handles, whose own senders are never used, are never woken, and the
/// loop thread's shuts and reuses always finish.
#[test]
fn stale_senders_hammering_one_reused_entry_never_wake_its_new_handles() {
    const GENERATIONS: usize = 5000;
    const THREADS: usize = 2;
    let lp = Loop::new().unwrap();
    let woken = counter();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<AsyncSender>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let accepted = counter();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (stop, rx, accepted) = (stop.clone(), rx.clone(), accepted.clone());
            std::thread::spawn(move || {
                let mut stale: Vec<AsyncSender> = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    while let Ok(s) = rx.lock().unwrap().try_recv() {
                        stale.push(s);
                    }
                    // The newest first: the most likely to race the shut.
                    for s in stale.iter().rev().take(64) {
                        match s.send() {
                            Ok(()) => {
                                accepted.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => assert!(is_closed_handle(&e), "{e:?}"),
                        }
                    }
                    if stale.len() > 4096 {
                        stale.drain(..2048);
                    }
                }
                for s in &stale {
                    assert!(is_closed_handle(&s.send().unwrap_err()));
                }
            })
        })
        .collect();
    // The handle whose sender the threads get: its callbacks count nothing (it is
    // the one they are allowed to wake), the next handle (same entry) counts.
    for g in 0..GENERATIONS {
        let published = Async::new(&lp, |_| {}).unwrap();
        let s = published.sender().unwrap();
        for _ in 0..THREADS {
            tx.send(s.clone()).unwrap();
        }
        if g % 2 == 0 {
            published.close();
        } else {
            drop(published);
        }
        lp.run(RunMode::NoWait).unwrap();
        // Reuses the entry just freed.
        let w = woken.clone();
        let fresh = Async::new(&lp, move |_| {
            w.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let own = fresh.sender().unwrap();
        lp.run(RunMode::NoWait).unwrap();
        fresh.close();
        assert!(is_closed_handle(&own.send().unwrap_err()));
        lp.run(RunMode::NoWait).unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
    assert_eq!(
        woken.load(Ordering::SeqCst),
        0,
        "a stale sender woke the entry's next handle ({} stale sends accepted)",
        accepted.load(Ordering::SeqCst)
    );
}

/// Several threads send at once while the loop thread drops the handle's last
/// reference (the `keeps_alive` decision races them all): if any send was
/// accepted the callback runs, never more often than sends were accepted; a send
/// is refused only with `ClosedHandle`, and once a thread was refused, its next
/// send is refused too (a handle that stays open never refuses).
#[test]
fn many_senders_racing_one_last_reference_drop() {
    const ROUNDS: usize = 1000;
    const THREADS: usize = 3;
    let lp = Loop::new().unwrap();
    let go = Arc::new(Barrier::new(THREADS + 1));
    let (to_threads, from_threads): (Vec<_>, Vec<_>) = (0..THREADS)
        .map(|_| {
            let (stx, srx) = mpsc::channel::<Option<AsyncSender>>();
            let (rtx, rrx) = mpsc::channel::<usize>();
            let go = go.clone();
            let t = std::thread::spawn(move || {
                while let Some(s) = srx.recv().unwrap() {
                    go.wait();
                    let mut accepted = 0;
                    let mut refused = false;
                    for _ in 0..3 {
                        match s.send() {
                            Ok(()) => {
                                assert!(!refused, "a send accepted after a refusal");
                                accepted += 1;
                            }
                            Err(e) => {
                                assert!(is_closed_handle(&e), "{e:?}");
                                refused = true;
                            }
                        }
                    }
                    rtx.send(accepted).unwrap();
                }
            });
            ((stx, t), rrx)
        })
        .unzip();
    for round in 0..ROUNDS {
        let n = counter();
        let a = counting_async(&lp, &n);
        let s = a.sender().unwrap();
        if round % 3 == 0 {
            // A wake-up already pending when the decision comes.
            s.send().unwrap();
        }
        for (stx, _) in &to_threads {
            stx.send(Some(s.clone())).unwrap();
        }
        go.wait();
        drop(a);
        let mut accepted: usize = from_threads.iter().map(|r| r.recv().unwrap()).sum();
        if round % 3 == 0 {
            accepted += 1;
        }
        settle_round(&lp, round, accepted, &n, &s);
    }
    for (stx, t) in to_threads {
        stx.send(None).unwrap();
        t.join().unwrap();
    }
}

/// A handle whose last reference is gone, kept open by a thread that sends
/// continuously while the loop thread runs its callbacks (each followed by the
/// `keeps_alive` decision, which the sends race) and another thread formats the
/// sender: sends are accepted until the handle closes and refused from then on,
/// `Debug` says `open: true` until it says `open: false` for good, the handle
/// closes once the sends stop, and the callbacks never outnumber the sends.
#[test]
fn continuous_sends_race_every_keeps_alive_decision() {
    const ROUNDS: usize = 150;
    const SENDS: usize = 2000;
    for round in 0..ROUNDS {
        let lp = Loop::new().unwrap();
        let n = counter();
        let a = counting_async(&lp, &n);
        let s = a.sender().unwrap();
        // Pending: the handle stays open when its last reference goes.
        s.send().unwrap();
        drop(a);
        let done = Arc::new(AtomicBool::new(false));
        let sender = {
            let (s, done) = (s.clone(), done.clone());
            std::thread::spawn(move || {
                let (accepted, _) = uv_tests::send_until_refused(&s, SENDS);
                done.store(true, Ordering::SeqCst);
                accepted
            })
        };
        let observer = {
            let (s, done) = (s.clone(), done.clone());
            std::thread::spawn(move || {
                let mut closed = false;
                while !done.load(Ordering::SeqCst) {
                    let d = format!("{s:?}");
                    if closed {
                        assert_eq!(d, "AsyncSender { open: false }");
                    } else if d == "AsyncSender { open: false }" {
                        closed = true;
                    } else {
                        assert_eq!(d, "AsyncSender { open: true }");
                    }
                }
            })
        };
        while !done.load(Ordering::SeqCst) && lp.handle_count() > 0 {
            lp.run(RunMode::Once).unwrap();
        }
        let accepted = sender.join().unwrap() + 1;
        observer.join().unwrap();
        settle_round(&lp, round, accepted, &n, &s);
    }
}

/// Counts the drops of a job's captured value (a refused job is dropped, not run).
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// After the loop is dropped, its senders and `CallLater` live on (the table's
/// cells outlive the loop): cloned, formatted, used and dropped on other threads,
/// they answer `ClosedHandle`, and a refused job is dropped without running.
#[test]
fn senders_and_call_later_outlive_the_loop_across_threads() {
    for round in 0..20 {
        let lp = Loop::new().unwrap();
        let n = counter();
        let a = counting_async(&lp, &n);
        let s = a.sender().unwrap();
        let later = lp.call_later_sender().unwrap();
        let ran = counter();
        let dropped = counter();
        {
            let (ran, d) = (ran.clone(), DropCount(dropped.clone()));
            later
                .call(move || {
                    let _d = d;
                    ran.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
        }
        s.send().unwrap();
        if round % 2 == 0 {
            drop(a);
            drop(lp);
        } else {
            drop(lp);
            drop(a);
        }
        // Accepted before the drop: ran (and delivered) during it.
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        assert_eq!(n.load(Ordering::SeqCst), 1);
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (s, later, ran, dropped) =
                    (s.clone(), later.clone(), ran.clone(), dropped.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let s2 = s.clone();
                        assert!(is_closed_handle(&s2.send().unwrap_err()));
                        assert_eq!(format!("{s2:?}"), "AsyncSender { open: false }");
                        let d = DropCount(dropped.clone());
                        let r = ran.clone();
                        let e = later
                            .clone()
                            .call(move || {
                                let _d = d;
                                r.fetch_add(1, Ordering::SeqCst);
                            })
                            .unwrap_err();
                        assert!(is_closed_handle(&e));
                    }
                    drop((s, later));
                })
            })
            .collect();
        drop((s, later));
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(ran.load(Ordering::SeqCst), 1, "a refused job ran");
        assert_eq!(dropped.load(Ordering::SeqCst), 1 + 3 * 50);
    }
}

/// The cells of a dropped loop's table serve the loops made later (they are kept,
/// never freed, so that senders may outlive their loop): senders kept from every
/// earlier loop, sending from another thread while the new loop runs, are all
/// refused and never wake the handles that now live in their cells; each new
/// handle is woken by its own sender only.
#[test]
fn senders_of_dropped_loops_never_wake_the_handles_of_later_loops() {
    // More than a table's first chunk holds: two chunks.
    const HANDLES: usize = 40;
    let mut stale: Vec<AsyncSender> = Vec::new();
    for round in 0..uv_tests::iterations(20) {
        let lp = Loop::new().unwrap();
        let counts: Vec<_> = (0..HANDLES).map(|_| counter()).collect();
        let pairs: Vec<(Async, AsyncSender)> = counts
            .iter()
            .map(|n| {
                let n = n.clone();
                Async::with_sender(&lp, move |h| {
                    n.fetch_add(1, Ordering::SeqCst);
                    h.close();
                })
                .unwrap()
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let hammer = {
            let (old, stop) = (stale.clone(), stop.clone());
            std::thread::spawn(move || {
                while !old.is_empty() && !stop.load(Ordering::SeqCst) {
                    for s in &old {
                        assert!(is_closed_handle(&s.send().unwrap_err()));
                    }
                }
            })
        };
        // The even handles are woken once, by their own senders; the odd ones
        // never (unreferenced: the run ends once the even ones closed).
        for (i, (a, s)) in pairs.iter().enumerate() {
            if i % 2 == 0 {
                s.send().unwrap();
            } else {
                a.unref().unwrap();
            }
        }
        lp.run(RunMode::Default).unwrap();
        stop.store(true, Ordering::SeqCst);
        hammer.join().unwrap();
        // And from this thread, while the odd handles still live in their cells.
        for s in &stale {
            assert!(is_closed_handle(&s.send().unwrap_err()), "round {round}");
        }
        stale.extend(pairs.iter().map(|(_, s)| s.clone()));
        drop(pairs);
        // The drop delivers a wake-up still pending (none may be, for the odd ones).
        drop(lp);
        for (i, n) in counts.iter().enumerate() {
            let want = usize::from(i % 2 == 0);
            assert_eq!(n.load(Ordering::SeqCst), want, "round {round}, handle {i}");
        }
    }
    for s in &stale {
        assert!(is_closed_handle(&s.send().unwrap_err()));
    }
}

/// A chain of jobs, each queueing the next through `CallLater` from the loop
/// thread and waking a handle whose last reference is gone, while the loop is
/// dropped (never run) and other threads queue jobs too: every accepted job runs,
/// every refused one is dropped unrun, and the chain ends with `ClosedHandle`.
#[test]
fn job_chains_queued_while_the_loop_is_dropped_run_or_are_refused() {
    fn chain(later: CallLater, s: AsyncSender, accepted: Arc<AtomicUsize>, ran: Arc<AtomicUsize>) {
        let (l2, s2, a2, r2) = (later.clone(), s.clone(), accepted.clone(), ran.clone());
        if later
            .call(move || {
                r2.fetch_add(1, Ordering::SeqCst);
                // A send from the loop thread while the loop is being dropped:
                // accepted (and then delivered) or refused.
                let _ = s2.send();
                chain(l2, s2, a2, r2);
            })
            .is_ok()
        {
            accepted.fetch_add(1, Ordering::SeqCst);
        }
    }
    for round in 0..100 {
        let lp = Loop::new().unwrap();
        let n = counter();
        let a = counting_async(&lp, &n);
        let s = a.sender().unwrap();
        drop(a);
        let later = lp.call_later_sender().unwrap();
        let (accepted, ran) = (counter(), counter());
        chain(later.clone(), s.clone(), accepted.clone(), ran.clone());
        let go = Arc::new(Barrier::new(3));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (later, accepted, ran, go) =
                    (later.clone(), accepted.clone(), ran.clone(), go.clone());
                std::thread::spawn(move || {
                    go.wait();
                    loop {
                        let r = ran.clone();
                        match later.call(move || {
                            r.fetch_add(1, Ordering::SeqCst);
                        }) {
                            Ok(()) => {
                                accepted.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => {
                                assert!(is_closed_handle(&e));
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        go.wait();
        if round % 3 == 0 {
            lp.run(RunMode::NoWait).unwrap();
        }
        drop(lp);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            ran.load(Ordering::SeqCst),
            accepted.load(Ordering::SeqCst),
            "round {round}: accepted jobs lost or refused ones ran"
        );
        // The chain's first job was accepted and ran; the handle had its wake-up
        // from it delivered or it was refused, and it is closed now.
        assert!(ran.load(Ordering::SeqCst) >= 1);
        assert!(n.load(Ordering::SeqCst) <= ran.load(Ordering::SeqCst));
        assert!(is_closed_handle(&s.send().unwrap_err()));
        assert!(is_closed_handle(&later.call(|| {}).unwrap_err()));
    }
}

/// A wake-up accepted by an `Async` the user unreferenced (`unref`), with the
/// loop dropped before it ran: the spec promises that a send that returned `Ok`
/// is delivered also when the `Loop` is dropped first ("its drop runs one last
/// non-blocking iteration for it").
///
/// Fails today: the drop's last iteration is `uv_run(NOWAIT)`, which does nothing
/// when `uv_loop_alive` is false, as it is when the only handle is unreferenced;
/// the handle is then closed with its wake-up pending (see the review report).
#[test]
fn an_unreferenced_async_gets_its_accepted_wake_up_when_the_loop_is_dropped() {
    for unref in [false, true] {
        let lp = Loop::new().unwrap();
        let n = counter();
        let a = counting_async(&lp, &n);
        if unref {
            a.unref().unwrap();
        }
        let s = a.sender().unwrap();
        std::thread::spawn(move || s.send().unwrap())
            .join()
            .unwrap();
        drop(lp);
        drop(a);
        assert_eq!(n.load(Ordering::SeqCst), 1, "unref = {unref}");
    }
}

/// The same promise when the loop was told to stop just before it is dropped:
/// by `stop` outside `run`, or by a `call_later` job that panics while the drop
/// runs the queued jobs (a caught panic stops the loop). `uv_run` returns at once
/// while the stop flag is set, so the drop's last iteration does nothing.
#[test]
fn a_wake_up_accepted_before_a_stop_then_the_drop_is_delivered() {
    for panicking_job in [false, true] {
        let lp = Loop::new().unwrap();
        let n = counter();
        let a = counting_async(&lp, &n);
        let s = a.sender().unwrap();
        std::thread::spawn(move || s.send().unwrap())
            .join()
            .unwrap();
        if panicking_job {
            lp.call_later(|| panic!("a job panics while the loop is dropped"))
                .unwrap();
        } else {
            lp.stop();
        }
        drop(lp);
        drop(a);
        assert_eq!(
            n.load(Ordering::SeqCst),
            1,
            "panicking job: {panicking_job}"
        );
    }
}

/// A closed `Async` still referenced by the user keeps its memory, and so its cell
/// in the loop's sender table: handles made meanwhile get other cells, and its
/// senders stay refused before and after its last reference goes and the cell is
/// handed out again. Handles that never had a sender give their cells back too:
/// the handles made in those cells later wake through their own senders, and only
/// themselves.
#[test]
fn a_closed_handle_keeps_its_cell_until_its_last_reference_goes() {
    let lp = Loop::new().unwrap();
    let old_n = counter();
    let old = counting_async(&lp, &old_n);
    let old_s = old.sender().unwrap();
    old.close();
    lp.run(RunMode::NoWait).unwrap();
    assert!(old.is_closed());
    assert!(is_closed_handle(&old_s.send().unwrap_err()));
    let mut old = Some(old);
    let mut live: Vec<(Async, AsyncSender, Arc<AtomicUsize>)> = Vec::new();
    for round in 0..6 {
        // A handle without senders, dropped at once (its cell is freed with it).
        drop(Async::new(&lp, |_| unreachable!("never woken")).unwrap());
        lp.run(RunMode::NoWait).unwrap();
        let n = counter();
        let a = counting_async(&lp, &n);
        let s = a.sender().unwrap();
        live.push((a, s, n));
        for (_, s, _) in &live {
            s.send().unwrap();
        }
        lp.run(RunMode::NoWait).unwrap();
        for (k, (_, _, n)) in live.iter().enumerate() {
            assert_eq!(n.load(Ordering::SeqCst), round + 1 - k, "round {round}");
        }
        assert!(is_closed_handle(&old_s.send().unwrap_err()));
        assert_eq!(old_n.load(Ordering::SeqCst), 0);
        if round == 2 {
            // The closed handle's memory (and cell) goes back now.
            drop(old.take());
        }
    }
    for (a, _, _) in &live {
        a.close();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
    for (_, s, _) in &live {
        assert!(is_closed_handle(&s.send().unwrap_err()));
    }
    assert!(is_closed_handle(&old_s.send().unwrap_err()));
}
