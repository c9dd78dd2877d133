//! Worker threads send typed results into the loop through `uv::channel`.
//!
//! Four workers each count the primes in their ranges, chunk by chunk, and send one
//! `Report` per chunk, then a `Done`. The loop thread adds them up in the channel's
//! callback, without locks: it owns the totals. The channel keeps the loop alive
//! while a sender exists, so `run` returns once every worker has finished and every
//! report was handled. A `Timer::once` is the deadline: if the workers hang, it
//! stops the loop (it is unreferenced, so it does not hold the loop open by itself).
//!
//! Run with `cargo run -p libuv-safe --example worker_channel`.
//!
//! It prints each worker's end (`worker 0 done (1 of 4)`, ...) and the total:
//! `17984 primes below 200000 from 4 workers (100 reports)`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::thread;
use std::time::Duration;

const WORKERS: u64 = 4;
const CHUNKS: u64 = 25;
const CHUNK: u64 = 2_000;

/// What a worker sends to the loop.
#[derive(Debug)]
enum Msg {
    Report {
        worker: u64,
        chunk: u64,
        primes: u64,
    },
    Done {
        worker: u64,
    },
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

fn count_primes(from: u64, to: u64) -> u64 {
    (from..to).filter(|&n| is_prime(n)).count() as u64
}

fn main() -> Result<(), uv::Error> {
    let lp = uv::Loop::new()?;

    // Loop-thread state: plain Rc/Cell, touched only by the callback.
    let total = Rc::new(Cell::new(0u64));
    let next_chunk = Rc::new(RefCell::new(vec![0u64; WORKERS as usize]));
    let done = Rc::new(Cell::new(0u64));
    let (t, n, d) = (total.clone(), next_chunk.clone(), done.clone());
    let (tx, rx) = uv::channel(&lp, move |msg: Msg| match msg {
        Msg::Report {
            worker,
            chunk,
            primes,
        } => {
            // Each worker's reports arrive in the order it sent them.
            let mut n = n.borrow_mut();
            assert_eq!(n[worker as usize], chunk, "worker {worker} out of order");
            n[worker as usize] += 1;
            t.set(t.get() + primes);
        }
        Msg::Done { worker } => {
            d.set(d.get() + 1);
            println!("worker {worker} done ({} of {WORKERS})", d.get());
        }
    })?;

    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let tx = tx.clone();
            thread::spawn(move || {
                for chunk in 0..CHUNKS {
                    let from = (chunk * WORKERS + worker) * CHUNK;
                    let primes = count_primes(from, from + CHUNK);
                    let report = Msg::Report {
                        worker,
                        chunk,
                        primes,
                    };
                    tx.send(report).expect("the loop outlives the workers");
                }
                tx.send(Msg::Done { worker }).expect("send Done");
                // Dropping `tx` here: the last worker's drop closes the channel.
            })
        })
        .collect();
    drop(tx); // the workers hold the only senders

    // The deadline: a one-shot timer whose FnOnce owns what it needs.
    let timed_out = Rc::new(Cell::new(false));
    let flag = timed_out.clone();
    let deadline = uv::Timer::once(&lp, Duration::from_secs(30), move |timer| {
        flag.set(true);
        eprintln!("deadline reached: stopping the loop");
        timer.loop_().stop();
    })?;
    deadline.unref()?;

    lp.run(uv::RunMode::Default)?;
    for w in workers {
        w.join().expect("worker panicked");
    }

    let expected = count_primes(0, WORKERS * CHUNKS * CHUNK);
    println!(
        "{} primes below {} from {WORKERS} workers ({} reports)",
        total.get(),
        WORKERS * CHUNKS * CHUNK,
        next_chunk.borrow().iter().sum::<u64>()
    );
    assert!(!timed_out.get(), "the workers did not finish in time");
    assert_eq!(done.get(), WORKERS);
    assert_eq!(*next_chunk.borrow(), vec![CHUNKS; WORKERS as usize]);
    assert_eq!(total.get(), expected);
    assert_eq!(expected, 17_984); // pi(200_000)
    assert!(rx.is_closed());
    Ok(())
}
