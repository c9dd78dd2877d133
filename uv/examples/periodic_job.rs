//! A periodic job with signals and a worker thread (Unix only).
//!
//! Every 20 ms a timer hands the next job to a worker thread (over a `std` channel);
//! the worker computes and sends the result back into the loop through
//! `uv::channel`. Signal watchers do what a daemon's would:
//!
//! - `SIGUSR1` prints a status report (jobs dispatched and completed);
//! - `SIGTERM` shuts down gracefully: the timer closes, the worker's job queue is
//!   closed so it finishes the jobs it has and exits, the watchers close. The loop
//!   ends by itself once the last result was delivered (the `uv::channel` closes
//!   when the worker drops its sender).
//!
//! The program sends the signals to itself with `kill`: `SIGUSR1` after the third
//! job, `SIGTERM` after the sixth. Checked: one status report, every dispatched job
//! completed once and in order with the right value, the worker joined, every
//! handle closed. Any failure panics (exit status 101); a watchdog fails a hung run.
//!
//! Run with `cargo run -p libuv-safe --example periodic_job`.
//!
//! It prints a line per job dispatched, the status report, `Terminate: shutting
//! down`, the results, and `done: 6 jobs, one status report, orderly shutdown`.

#[cfg(unix)]
fn run() -> Result<(), Box<dyn std::error::Error>> {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::time::Duration;

    const PERIOD: Duration = Duration::from_millis(20);

    /// Sends `sig` (a `kill` signal name such as "USR1") to this process.
    fn kill_self(sig: &str) {
        let pid = std::process::id().to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig}: {status}");
    }

    /// The job: the sum of the squares below `n * 1000`.
    fn job(n: u64) -> u64 {
        (0..n * 1000).map(|i| i * i).sum()
    }

    let lp = uv::Loop::new()?;

    // Results come back into the loop in order; the loop thread owns them.
    let results = Rc::new(RefCell::new(Vec::<(u64, u64)>::new()));
    let r = results.clone();
    let (result_tx, result_rx) = uv::channel(&lp, move |res: (u64, u64)| {
        r.borrow_mut().push(res);
    })?;

    // The worker: jobs in, results out. Its loop ends when the job queue closes;
    // dropping `result_tx` then closes the uv channel.
    let (job_tx, job_rx) = std::sync::mpsc::channel::<u64>();
    let worker = std::thread::spawn(move || {
        for n in job_rx {
            result_tx
                .send((n, job(n)))
                .expect("the loop waits for results");
        }
    });
    let job_tx = Rc::new(RefCell::new(Some(job_tx)));
    let dispatched = Rc::new(Cell::new(0u64));

    // SIGUSR1: a status report. Unreferenced: it does not keep the program running.
    let reports = Rc::new(RefCell::new(Vec::new()));
    let status = uv::Signal::new(&lp)?;
    let (d, res, rep) = (dispatched.clone(), results.clone(), reports.clone());
    status.start(uv::Signum::User1, move |_s, _sig| {
        let (sent, done) = (d.get(), res.borrow().len() as u64);
        println!("status: {sent} jobs dispatched, {done} completed");
        rep.borrow_mut().push((sent, done));
    })?;
    status.unref()?;

    // The periodic job.
    let ticker = uv::Timer::new(&lp)?;
    let (d, jobs) = (dispatched.clone(), job_tx.clone());
    ticker.start(PERIOD, PERIOD, move |_t| {
        let n = d.get() + 1;
        if let Some(tx) = &*jobs.borrow() {
            tx.send(n).expect("the worker is running");
            d.set(n);
            println!("tick {n}: job dispatched");
        }
        match n {
            3 => kill_self("USR1"),
            6 => kill_self("TERM"),
            _ => {}
        }
    })?;

    // SIGTERM: graceful shutdown.
    let term = uv::Signal::new(&lp)?;
    let (tick, st) = (ticker.clone(), status.clone());
    term.start(uv::Signum::Terminate, move |s, sig| {
        println!("{}: shutting down", sig.name());
        tick.close();
        // Closing the job queue lets the worker finish and exit.
        drop(job_tx.borrow_mut().take());
        st.close();
        s.close();
    })?;

    let watchdog = uv::Timer::once(&lp, Duration::from_secs(10), |_t| {
        panic!("timed out: no orderly shutdown")
    })?;
    watchdog.unref()?;
    lp.run(uv::RunMode::Default)?;
    watchdog.close();
    lp.run(uv::RunMode::Default)?;
    worker.join().expect("the worker exits cleanly");

    let results = results.borrow();
    let sent = dispatched.get();
    println!(
        "{sent} jobs dispatched, {} results: {results:?}",
        results.len()
    );
    assert!(sent >= 6, "the shutdown came after the sixth job");
    let expected: Vec<(u64, u64)> = (1..=sent).map(|n| (n, job(n))).collect();
    assert_eq!(*results, expected, "every job completed once, in order");
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "one status report");
    let (at, done) = reports[0];
    assert!(
        at >= 3 && done <= at,
        "the report came after the third job: {at}, {done}"
    );
    assert!(result_rx.is_closed());
    assert!(ticker.is_closed() && status.is_closed() && term.is_closed());
    assert_eq!(lp.handle_count(), 0);
    println!("done: {sent} jobs, one status report, orderly shutdown");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(unix)]
    run()?;
    #[cfg(not(unix))]
    println!("the periodic_job example is Unix-only (it uses SIGUSR1 and SIGTERM)");
    Ok(())
}
