//! Waking the loop from another thread: a worker thread computes results, sends
//! each through a channel and wakes the loop with an `AsyncSender`; the `Async`
//! callback drains the channel and closes the handle once all results arrived.
//! The worker also runs one function on the loop thread with `call_later_sender`.
//!
//! Sends that arrive before the callback runs are coalesced into one call, so the
//! callback drains everything available and stops on "all results seen", not on
//! a number of calls.
//!
//! Run with `cargo run -p libuv-safe --example async_worker`.
//!
//! It prints the `call_later` check, each wake-up with the results it drained
//! (sends may coalesce, so there may be fewer wake-ups than results), the results
//! with the number of wake-ups, and the `EINVAL` error of a send after the close.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const N: u64 = 5;

fn main() -> Result<(), uv::Error> {
    let lp = uv::Loop::new()?;
    let loop_thread = thread::current().id();

    let (tx, rx) = mpsc::channel::<u64>();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let wakeups = Rc::new(Cell::new(0u32));

    let s = seen.clone();
    let w = wakeups.clone();
    let handle = uv::Async::new(&lp, move |a| {
        w.set(w.get() + 1);
        // Drain everything the worker has sent so far.
        let batch: Vec<u64> = rx.try_iter().collect();
        println!("wake-up {}: received {batch:?}", w.get());
        s.borrow_mut().extend(batch);
        if s.borrow().len() as u64 == N {
            println!("all {N} results arrived; closing the async handle");
            a.close();
        }
    })?;
    let sender = handle.sender()?;
    let call_later = lp.call_later_sender()?;

    let worker_sender = sender.clone();
    let worker = thread::spawn(move || {
        // Run one function on the loop thread and wait until it did.
        let (done_tx, done_rx) = mpsc::channel();
        call_later
            .call(move || {
                let on_loop = thread::current().id() == loop_thread;
                println!("call_later: running on the loop thread: {on_loop}");
                done_tx.send(on_loop).expect("send done");
            })
            .expect("call_later");
        let on_loop = done_rx.recv().expect("call_later job ran");

        for i in 1..=N {
            thread::sleep(Duration::from_millis(5));
            let result = i * i;
            tx.send(result).expect("send result");
            worker_sender.send().expect("wake the loop");
        }
        on_loop
    });

    lp.run(uv::RunMode::Default)?;
    let job_ran_on_loop = worker.join().expect("worker panicked");

    println!(
        "results: {:?} in {} wake-up(s)",
        seen.borrow(),
        wakeups.get()
    );
    assert!(job_ran_on_loop);
    assert_eq!(*seen.borrow(), [1, 4, 9, 16, 25]);
    assert!(wakeups.get() >= 1 && wakeups.get() as u64 <= N);
    // The handle is closed now: senders report it.
    let err = sender.send().expect_err("send after close");
    println!("send after close: {err}");
    assert!(err.is(uv::Category::ClosedHandle));
    Ok(())
}
