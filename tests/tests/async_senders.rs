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
