//! `AsyncSender` and `CallLater` racing the loop thread: sends from many threads
//! while the loop closes handles, reuses their sender entries, grows its sender
//! table, drops the last reference of a handle, or is dropped itself. The tests
//! assert what the API promises (a send that returned `Ok` is delivered, a refused
//! one answers `ClosedHandle`, a sender of a closed handle never wakes another
//! handle, an accepted job runs), whatever the interleaving.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};

use uv::{Async, AsyncSender, Category, Loop, RunMode};

fn is_closed_handle(e: &uv::Error) -> bool {
    e.kind() == Category::ClosedHandle
}

/// Per-handle counters, indexed by a handle id.
fn counters(n: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect())
}

/// Rounds of handles: each round makes `PER_ROUND` handles (reusing the entries of
/// the previous round's, which are closed by dropping their last reference or by
/// `close`), and publishes their senders to threads that keep sending on every
/// sender published so far (most of them stale). Odd handles' senders are never
/// published: their callbacks can only run if a stale sender reached them.
#[test]
fn many_threads_send_while_the_loop_closes_and_reuses_entries() {
    let rounds = uv_tests::iterations(60);
    const PER_ROUND: usize = 8;
    const THREADS: usize = 3;
    let total = rounds * PER_ROUND;
    let lp = Loop::new().unwrap();
    let delivered = counters(total);
    let accepted = counters(total);
    let published: Arc<Mutex<Vec<(usize, AsyncSender)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (published, stop, accepted) = (published.clone(), stop.clone(), accepted.clone());
            std::thread::spawn(move || {
                let mut k = t;
                while !stop.load(Ordering::SeqCst) {
                    let batch: Vec<(usize, AsyncSender)> = published.lock().unwrap().clone();
                    for (id, s) in batch.iter().rev().skip(k % 3).step_by(2) {
                        match s.send() {
                            Ok(()) => {
                                accepted[*id].fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => assert!(is_closed_handle(&e), "{e:?}"),
                        }
                    }
                    k += 1;
                    std::thread::yield_now();
                }
            })
        })
        .collect();
    let mut live: Vec<Async> = Vec::new();
    let mut all_senders = Vec::new();
    for round in 0..rounds {
        // Close the previous round: even rounds by dropping (a pending wake-up is
        // still delivered), odd rounds by `close` (which drops it).
        for a in live.drain(..) {
            if round % 2 == 1 {
                a.close();
            }
        }
        lp.run(RunMode::NoWait).unwrap();
        for j in 0..PER_ROUND {
            let id = round * PER_ROUND + j;
            let d = delivered.clone();
            let a = Async::new(&lp, move |_| {
                d[id].fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            let s = a.sender().unwrap();
            if j % 2 == 0 {
                published.lock().unwrap().push((id, s.clone()));
            }
            all_senders.push((id, s));
            live.push(a);
        }
        lp.run(RunMode::NoWait).unwrap();
    }
    for a in live.drain(..) {
        a.close();
    }
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
    for id in 0..total {
        let (d, a) = (
            delivered[id].load(Ordering::SeqCst),
            accepted[id].load(Ordering::SeqCst),
        );
        if id % 2 == 1 {
            assert_eq!(d, 0, "handle {id} was woken by another handle's sender");
        }
        // One callback takes at least one accepted send of its own handle.
        assert!(d <= a, "handle {id}: {d} callbacks for {a} sends");
    }
    // Every handle is closed: all senders, stale or not, are refused.
    for (id, s) in &all_senders {
        let e = s.send().expect_err("a closed handle's sender was accepted");
        assert!(is_closed_handle(&e), "handle {id}: {e:?}");
    }
}

/// One send racing the drop of a handle's last reference, many times over: it is
/// either accepted and then delivered (exactly one callback) or refused with
/// `ClosedHandle` (no callback); never accepted and lost.
#[test]
fn a_send_racing_the_last_reference_drop_is_delivered_or_refused() {
    let iterations = uv_tests::iterations(400);
    let lp = Loop::new().unwrap();
    let (tx, rx) = mpsc::channel::<AsyncSender>();
    let (res_tx, res_rx) = mpsc::channel::<bool>();
    let start = Arc::new(Barrier::new(2));
    let st = start.clone();
    let worker = std::thread::spawn(move || {
        for s in rx {
            st.wait();
            let r = s.send();
            if let Err(e) = &r {
                assert!(is_closed_handle(e), "{e:?}");
            }
            res_tx.send(r.is_ok()).unwrap();
        }
    });
    let (mut ok, mut refused) = (0, 0);
    for i in 0..iterations {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let a = Async::new(&lp, move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        tx.send(a.sender().unwrap()).unwrap();
        start.wait();
        // Spread the drop over the send's window.
        for _ in 0..(i % 16) * 8 {
            std::hint::spin_loop();
        }
        drop(a);
        lp.run(RunMode::Default).unwrap();
        let accepted = res_rx.recv().unwrap();
        // The send is over: what it started has run (or was refused).
        lp.run(RunMode::Default).unwrap();
        assert_eq!(lp.handle_count(), 0);
        if accepted {
            assert_eq!(
                calls.load(Ordering::SeqCst),
                1,
                "iteration {i}: an accepted send was lost"
            );
            ok += 1;
        } else {
            assert_eq!(calls.load(Ordering::SeqCst), 0, "iteration {i}");
            refused += 1;
        }
    }
    drop(tx);
    worker.join().unwrap();
    assert_eq!(ok + refused, iterations);
}

/// A dropped handle kept open by wake-ups that keep coming: each thread's sends
/// are accepted until the handle closes, and refused from then on (never accepted
/// again, never an error other than `ClosedHandle`), and the handle ran at least
/// once if any send was accepted.
#[test]
fn sends_to_a_dropped_handle_are_accepted_until_it_closes_then_refused() {
    const THREADS: usize = 3;
    let limit = uv_tests::iterations(20_000);
    let lp = Loop::new().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let a = Async::new(&lp, move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let sender = a.sender().unwrap();
    let go = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (s, go) = (sender.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                // A bounded number of sends, so that the handle closes after them
                // at the latest.
                let (accepted, _) = uv_tests::send_until_refused(&s, limit);
                accepted
            })
        })
        .collect();
    go.wait();
    drop(a);
    lp.run(RunMode::Default).unwrap();
    let accepted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(lp.handle_count(), 0);
    if accepted > 0 {
        assert!(calls.load(Ordering::SeqCst) >= 1);
    }
    assert!(calls.load(Ordering::SeqCst) <= accepted);
    assert!(is_closed_handle(&sender.send().unwrap_err()));
}

/// The sender table grows (new chunks) while threads send on the first handles:
/// no send on an open handle fails, every handle is woken, and the senders of the
/// handles made meanwhile reach exactly their own handle.
#[test]
fn the_sender_table_grows_while_other_threads_send() {
    const FIRST: usize = 4;
    const MORE: usize = 3000;
    const THREADS: usize = 2;
    let lp = Loop::new().unwrap();
    let delivered = counters(FIRST + MORE);
    let make = |id: usize| {
        let d = delivered.clone();
        let a = Async::new(&lp, move |_| {
            d[id].fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let s = a.sender().unwrap();
        (a, s)
    };
    let first: Vec<_> = (0..FIRST).map(make).collect();
    let senders: Vec<AsyncSender> = first.iter().map(|(_, s)| s.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (senders, stop, started) = (senders.clone(), stop.clone(), started.clone());
            std::thread::spawn(move || {
                let mut sent = 0usize;
                loop {
                    for s in &senders {
                        s.send().expect("a send on an open handle failed");
                        sent += 1;
                    }
                    if sent == senders.len() {
                        started.fetch_add(1, Ordering::SeqCst);
                    }
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::yield_now();
                }
                sent
            })
        })
        .collect();
    // The table grows once every thread is sending.
    while started.load(Ordering::SeqCst) < THREADS {
        std::thread::yield_now();
    }
    let mut more = Vec::with_capacity(MORE);
    for id in FIRST..FIRST + MORE {
        more.push(make(id));
        if id % 256 == 0 {
            lp.run(RunMode::NoWait).unwrap();
        }
    }
    stop.store(true, Ordering::SeqCst);
    let sent: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(sent > 0);
    lp.run(RunMode::NoWait).unwrap();
    for id in 0..FIRST {
        assert!(delivered[id].load(Ordering::SeqCst) >= 1, "handle {id}");
    }
    let more_senders: Vec<AsyncSender> = more.iter().map(|(_, s)| s.clone()).collect();
    std::thread::spawn(move || more_senders.iter().for_each(|s| s.send().unwrap()))
        .join()
        .unwrap();
    lp.run(RunMode::NoWait).unwrap();
    for id in FIRST..FIRST + MORE {
        assert_eq!(delivered[id].load(Ordering::SeqCst), 1, "handle {id}");
    }
    for (a, _) in first.iter().chain(&more) {
        a.close();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
}

/// Threads queue jobs and wake handles while the loop is dropped: every job
/// accepted with `Ok` runs (during the drop at the latest), every wake-up accepted
/// is delivered, and after the drop everything answers `ClosedHandle`.
#[test]
fn call_later_and_sends_racing_the_loop_drop() {
    const THREADS: usize = 3;
    const HANDLES: usize = 4;
    for round in 0..uv_tests::iterations(20) {
        let lp = Loop::new().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let delivered = counters(HANDLES);
        let handles: Vec<Async> = (0..HANDLES)
            .map(|id| {
                let d = delivered.clone();
                Async::new(&lp, move |_| {
                    d[id].fetch_add(1, Ordering::SeqCst);
                })
                .unwrap()
            })
            .collect();
        let senders: Vec<AsyncSender> = handles.iter().map(|a| a.sender().unwrap()).collect();
        let later = lp.call_later_sender().unwrap();
        let go = Arc::new(Barrier::new(THREADS + 1));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (senders, later, ran, go) =
                    (senders.clone(), later.clone(), ran.clone(), go.clone());
                std::thread::spawn(move || {
                    go.wait();
                    let mut jobs = 0usize;
                    let mut accepted = [0usize; HANDLES];
                    let mut k = t;
                    loop {
                        let r = later.call({
                            let ran = ran.clone();
                            move || {
                                ran.fetch_add(1, Ordering::SeqCst);
                            }
                        });
                        let s = senders[k % HANDLES].send();
                        match (r, s) {
                            (Ok(()), Ok(())) => {
                                jobs += 1;
                                accepted[k % HANDLES] += 1;
                            }
                            (Ok(()), Err(e)) => {
                                jobs += 1;
                                assert!(is_closed_handle(&e), "{e:?}");
                            }
                            (Err(e), s) => {
                                assert!(is_closed_handle(&e), "{e:?}");
                                // Once the loop refuses jobs, its senders are shut.
                                let e = s.unwrap_err();
                                assert!(is_closed_handle(&e), "{e:?}");
                                break;
                            }
                        }
                        k += 1;
                    }
                    (jobs, accepted)
                })
            })
            .collect();
        go.wait();
        if round % 2 == 0 {
            lp.run(RunMode::NoWait).unwrap();
        }
        drop(lp);
        let mut jobs = 0;
        let mut accepted = [0usize; HANDLES];
        for t in threads {
            let (j, a) = t.join().unwrap();
            jobs += j;
            for (x, y) in accepted.iter_mut().zip(a) {
                *x += y;
            }
        }
        assert_eq!(
            ran.load(Ordering::SeqCst),
            jobs,
            "round {round}: accepted jobs lost"
        );
        for id in 0..HANDLES {
            let d = delivered[id].load(Ordering::SeqCst);
            if accepted[id] > 0 {
                assert!(d >= 1, "round {round}: handle {id} lost its wake-ups");
            }
            assert!(d <= accepted[id]);
            assert!(is_closed_handle(&senders[id].send().unwrap_err()));
        }
        assert!(is_closed_handle(&later.call(|| {}).unwrap_err()));
        drop(handles);
    }
}

/// Senders made in any order (for the handle made last, for older ones, for
/// handles whose cells were freed and reused, across the table's chunks) each wake
/// their own handle and no other: one send per sender, on this thread, gives one
/// callback on exactly that handle.
#[test]
fn senders_made_in_any_order_wake_their_own_handle() {
    const N: usize = 100;
    let lp = Loop::new().unwrap();
    let hits = counters(2 * N);
    let make = |id: usize| {
        let hits = hits.clone();
        Async::new(&lp, move |_| {
            hits[id].fetch_add(1, Ordering::Relaxed);
        })
        .unwrap()
    };
    // Handles 0..N (three chunks of the table); senders for every third one,
    // oldest first, then for the rest newest first.
    let mut handles: Vec<Option<Async>> = (0..N).map(|id| Some(make(id))).collect();
    let mut senders: Vec<Option<AsyncSender>> = (0..N).map(|_| None).collect();
    for id in (0..N).step_by(3) {
        senders[id] = Some(handles[id].as_ref().unwrap().sender().unwrap());
    }
    for id in (0..N).rev().filter(|id| id % 3 != 0) {
        senders[id] = Some(handles[id].as_ref().unwrap().sender().unwrap());
    }
    // Every other handle closes; its cell is freed once the loop ran the close.
    for id in (0..N).step_by(2) {
        handles[id].take().unwrap().close();
    }
    lp.run(RunMode::NoWait).unwrap();
    for id in (0..N).step_by(2) {
        let e = senders[id].as_ref().unwrap().send().unwrap_err();
        assert!(is_closed_handle(&e), "{e:?}");
    }
    // New handles N..2N take the freed cells (and new ones); each gets a sender.
    let mut more: Vec<(usize, Async, AsyncSender)> = (N..2 * N)
        .map(|id| {
            let a = make(id);
            let s = a.sender().unwrap();
            (id, a, s)
        })
        .collect();
    // A sender for an older handle after the new ones.
    let late = handles[1].as_ref().unwrap().sender().unwrap();
    for (id, s) in senders.iter().enumerate() {
        if id % 2 == 1 {
            s.as_ref().unwrap().send().unwrap();
        }
    }
    for (_, _, s) in &more {
        s.send().unwrap();
    }
    lp.run(RunMode::NoWait).unwrap();
    for id in 0..2 * N {
        let want = usize::from(id % 2 == 1 || id >= N);
        assert_eq!(hits[id].load(Ordering::Relaxed), want, "handle {id}");
    }
    late.send().unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(hits[1].load(Ordering::Relaxed), 2);
    for (_, a, _) in more.drain(..) {
        a.close();
    }
    for h in handles.iter_mut().filter_map(Option::take) {
        h.close();
    }
    lp.run(RunMode::Default).unwrap();
}

/// `Async::with_sender` makes a handle and a sender for it: across the table's
/// first chunks (fresh cells, the sender made from what the allocation answered),
/// each sender, sending from another thread, wakes its own handle once and no
/// other; a clone of it does too; once the handle is closed its sender is refused;
/// a dropped handle with a wake-up pending stays open until it is delivered.
#[test]
fn with_sender_makes_a_handle_whose_sender_wakes_it() {
    const N: usize = 100;
    let lp = Loop::new().unwrap();
    let hits = counters(N);
    let mut pairs: Vec<(Async, AsyncSender)> = (0..N)
        .map(|id| {
            let hits = hits.clone();
            Async::with_sender(&lp, move |_| {
                hits[id].fetch_add(1, Ordering::Relaxed);
            })
            .unwrap()
        })
        .collect();
    assert_eq!(lp.handle_count(), N);
    for (a, _) in &pairs {
        assert!(!a.is_closing());
        assert!(a.is_active());
    }
    // Even handles by their sender, odd ones by a clone of it, from one thread.
    let senders: Vec<AsyncSender> = pairs
        .iter()
        .enumerate()
        .map(|(id, (_, s))| {
            if id % 2 == 0 {
                s.clone()
            } else {
                s.clone().clone()
            }
        })
        .collect();
    std::thread::spawn(move || {
        for s in &senders {
            s.send().unwrap();
        }
    })
    .join()
    .unwrap();
    lp.run(RunMode::NoWait).unwrap();
    for id in 0..N {
        assert_eq!(hits[id].load(Ordering::Relaxed), 1, "handle {id}");
    }
    // A dropped handle with a wake-up pending: delivered, then closed.
    let (a, s) = pairs.pop().unwrap();
    s.send().unwrap();
    drop(a);
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(hits[N - 1].load(Ordering::Relaxed), 2);
    assert!(is_closed_handle(&s.send().unwrap_err()));
    // Closing the others refuses their senders.
    for (a, _) in &pairs {
        a.close();
        assert!(a.is_closing());
    }
    for (_, s) in &pairs {
        assert!(is_closed_handle(&s.send().unwrap_err()));
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
    for id in 0..N - 1 {
        assert_eq!(hits[id].load(Ordering::Relaxed), 1, "handle {id}");
    }
    drop(pairs);
}

/// `Async::with_sender` on cells freed by closed handles (the sender takes the
/// long way: its offset is searched) and on fresh ones after them: each new
/// sender wakes its own handle, and the stale senders of the cells' old handles
/// are refused and wake nothing. Mixed with `Async::new` and `sender`.
#[test]
fn with_sender_on_reused_cells_wakes_only_its_own_handle() {
    const N: usize = 40;
    let lp = Loop::new().unwrap();
    let hits = counters(3 * N);
    let make = |id: usize| {
        let hits = hits.clone();
        let cb = move |_: &Async| {
            hits[id].fetch_add(1, Ordering::Relaxed);
        };
        if id.is_multiple_of(3) {
            let a = Async::new(&lp, cb).unwrap();
            let s = a.sender().unwrap();
            (a, s)
        } else {
            Async::with_sender(&lp, cb).unwrap()
        }
    };
    let old: Vec<(Async, AsyncSender)> = (0..N).map(make).collect();
    let stale: Vec<AsyncSender> = old.iter().map(|(_, s)| s.clone()).collect();
    for (a, _) in &old {
        a.close();
    }
    drop(old);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
    // N handles on the freed cells, N more on fresh ones.
    let new: Vec<(Async, AsyncSender)> = (N..3 * N).map(make).collect();
    for s in &stale {
        assert!(is_closed_handle(&s.send().unwrap_err()));
    }
    for (_, s) in new.iter().step_by(2) {
        s.send().unwrap();
    }
    lp.run(RunMode::NoWait).unwrap();
    for id in 0..3 * N {
        let want = usize::from(id >= N && (id - N).is_multiple_of(2));
        assert_eq!(hits[id].load(Ordering::Relaxed), want, "handle {id}");
    }
    drop(new);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
}

/// `Async::with_sender` refuses where `Async::new` or `sender` do: `ClosedLoop` on
/// a closed loop, and `ClosedHandle` while the loop is dropped (a callback that
/// runs during the drop, delivering a pending wake-up, may still make handles but
/// no senders: a send to them could not be delivered).
#[test]
fn with_sender_refuses_on_a_closed_or_closing_loop() {
    let lp = Loop::new().unwrap();
    lp.close().unwrap();
    let e = Async::with_sender(&lp, |_| {}).unwrap_err();
    assert_eq!(e.kind(), Category::ClosedLoop, "{e:?}");

    let lp = Loop::new().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s2 = seen.clone();
    let made: std::rc::Rc<std::cell::RefCell<Vec<Async>>> = Default::default();
    let m2 = made.clone();
    let (a, s) = Async::with_sender(&lp, move |h| {
        let lh = h.loop_();
        let mut seen = s2.lock().unwrap();
        match Async::with_sender(&lh, |_| {}) {
            Ok(_) => seen.push("with_sender: ok".into()),
            Err(e) => seen.push(format!("with_sender: {:?}", e.kind())),
        }
        let b = Async::new(&lh, |_| {}).unwrap();
        match b.sender() {
            Ok(_) => seen.push("sender: ok".into()),
            Err(e) => seen.push(format!("sender: {:?}", e.kind())),
        }
        // Handles made while the table is closed, past the end of its first
        // chunks (kept open: the drop closes them), and more refused senders.
        let kept: Vec<Async> = (0..80)
            .map(|k: usize| {
                if k.is_multiple_of(4) {
                    let e = Async::with_sender(&lh, |_| {}).unwrap_err();
                    assert!(is_closed_handle(&e), "{e:?}");
                }
                Async::new(&lh, |_| {}).unwrap()
            })
            .collect();
        for h in &kept {
            assert!(is_closed_handle(&h.sender().unwrap_err()));
        }
        m2.borrow_mut().extend(kept);
    })
    .unwrap();
    s.send().unwrap();
    drop(a);
    drop(lp);
    assert_eq!(
        *seen.lock().unwrap(),
        ["with_sender: ClosedHandle", "sender: ClosedHandle"]
    );
    assert!(is_closed_handle(&s.send().unwrap_err()));
    let made = made.take();
    assert_eq!(made.len(), 80);
    assert!(made.iter().all(|h| h.is_closed()));
}
