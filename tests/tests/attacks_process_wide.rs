//! Attacks on the state a process shares between its threads: signal actions,
//! descriptors and the like, which a loop of one thread changes while another
//! thread (with a loop of its own, or plain `std` code) runs at the same time.
//! Each scenario runs in a child process of its own (this binary again, running
//! only `scenario_child`, one test thread), so that what it changes (a signal's
//! action, the descriptor limit) and a kill it may provoke stay in the child. Each
//! test says what used to happen and checks exit statuses, counts and error codes,
//! never durations.

#![cfg(target_os = "linux")]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use uv::{Loop, RunMode, Signal, Signum, StatusCode};
use uv_tests::DescriptorRoom;

/// Set in a child: the name of the scenario it runs.
const SCENARIO: &str = "UV_ATTACKS_PROCESS_WIDE_SCENARIO";

uv_tests::scenarios! {
    SCENARIO =>
    sigpipe_watches_at_the_descriptor_limit_while_writing_to_a_closed_peer,
    exit_while_other_threads_watch_signals,
    exit_while_other_threads_deliver_one_shot_signals,
    exit_while_a_pool_job_delivers_one_shot_signals,
    exit_while_other_threads_hand_work_to_the_pool,
    exit_while_other_threads_poll_stats,
    exit_after_polling_stats_on_this_thread_only,
    exit_while_another_thread_polls_stats_skips_earlier_handlers,
    exit_after_the_polling_thread_ended,
    exit_from_a_thread_named_like_libuvs_pool,
    exit_while_other_threads_spawn_and_close,
    after_fork_while_the_signal_arrives,
    fork_child_handlers_with_signals_blocked,
    forked_children_exit_after_the_parent_used_the_pool,
    exit_while_a_pool_job_watches_signals,
    exit_from_a_pool_job,
    exit_while_other_threads_send_wakeups_and_make_loops,
    exit_while_a_pool_job_spawns,
    exit_while_other_threads_drop_loops_with_handles,
    exit_while_other_threads_drop_request_futures,
    forked_children_exit_after_the_parent_used_signals_processes_and_watches,
}

/// Runs `scenario` in a child (natively: valgrind emulates the descriptor limit
/// and handles signals itself), which must exit with status 0 having written
/// "scenario done", with no thread having panicked; a kill by a signal fails
/// with the signal in the message.
fn run(scenario: &str) {
    use std::os::unix::process::ExitStatusExt;
    let out = uv_tests::output_within(&mut uv_tests::native_scenario_command(SCENARIO, scenario));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{scenario}: {:?} (signal {:?})\n{stderr}",
        out.status,
        out.status.signal()
    );
    assert!(stderr.contains("scenario done"), "{scenario}: {stderr}");
    // A failed check on a thread other than the main one does not change the
    // exit status: its message does.
    assert!(!stderr.contains("panicked"), "{scenario}: {stderr}");
}

/// [`run`], `times` times (a tenth of that under valgrind, at least once).
fn run_times(scenario: &str, times: usize) {
    for _ in 0..uv_tests::iterations(times) {
        run(scenario);
    }
}

/// Queues a thread-pool job that runs until `rounds` stops moving (no change
/// over 50 ms): libuv's destructor, run by the process's exit, waits for it, so
/// the threads that count `rounds` go on in the state the destructor leaves
/// until they come to a stop. Its loop is leaked (its drop would wait for the
/// job).
fn hold_the_exit_until_still(rounds: Arc<AtomicUsize>) {
    let lp = Loop::new().unwrap();
    lp.queue_work(
        move || loop {
            let before = rounds.load(Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(50));
            if rounds.load(Ordering::Relaxed) == before {
                return;
            }
        },
        |_| {},
    )
    .unwrap();
    std::mem::forget(lp);
}

/// A thread that writes to a socket whose peer is closed, again and again, until
/// told to stop: each write raises SIGPIPE on that thread, which kills the
/// process whenever SIGPIPE is at its default action. Counts its writes (each
/// must fail with `EPIPE`).
struct ClosedPeerWriter {
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClosedPeerWriter {
    /// Starts the writer and waits for its first write.
    fn start() -> ClosedPeerWriter {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, writes) = (stop.clone(), writes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let err = (&a).write(b"x").unwrap_err();
                    assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
                    writes.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let w = ClosedPeerWriter {
            stop,
            writes,
            thread: Some(thread),
        };
        w.wait_for_writes(1);
        w
    }

    /// Waits until `more` writes were made after this call.
    fn wait_for_writes(&self, more: usize) {
        let from = self.writes.load(Ordering::Relaxed);
        while self.writes.load(Ordering::Relaxed) < from + more {
            std::thread::yield_now();
        }
    }

    /// Stops the writer (its writes all failed with `EPIPE`).
    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
    }
}

/// A thread that reads a signal's action again and again until told to stop,
/// counting the reads that find the default action.
struct DefaultActionSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl DefaultActionSampler {
    /// Starts the sampler and waits for its first read.
    fn start(signum: i32) -> DefaultActionSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, reads) = (stop.clone(), reads.clone());
            std::thread::spawn(move || {
                let mut defaults = 0;
                while !stop.load(Ordering::Relaxed) {
                    if disposition(signum) == libc::SIG_DFL {
                        defaults += 1;
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
                defaults
            })
        };
        while reads.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        DefaultActionSampler { stop, thread }
    }

    /// Stops the sampler: how many of its reads found the default action.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The action the process has for `signum` now: `SIG_IGN`, `SIG_DFL` or a handler.
fn disposition(signum: i32) -> libc::sighandler_t {
    // SAFETY: a query (no new action); `old` is a valid out-pointer.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signum, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

fn done() {
    eprintln!("scenario done");
}

// ---------------------------------------------------------------------------
// SIGPIPE

/// Watches of SIGPIPE started and stopped with no descriptor left to make the
/// keeper's loop with, while another thread writes to a closed peer.
fn sigpipe_watches_at_the_descriptor_limit_while_writing_to_a_closed_peer() {
    let writer = ClosedPeerWriter::start();
    let sampler = DefaultActionSampler::start(libc::SIGPIPE);
    let lp = Loop::new().unwrap();
    let sig = Signal::new(&lp).unwrap();
    let room = DescriptorRoom::new(0);
    let mut refused = 0;
    for _ in 0..300 {
        match sig.start(Signum::Pipe, |_, _| {}) {
            Ok(()) => sig.stop().unwrap(),
            Err(e) => {
                assert_eq!(e.code(), StatusCode::EMFILE);
                assert_eq!(sig.signum().unwrap(), None);
                refused += 1;
            }
        }
        let err = sig.start_oneshot(Signum::Pipe, |_, _| {}).unwrap_err();
        assert!(
            matches!(err.code(), StatusCode::EMFILE | StatusCode::EINVAL),
            "{err}"
        );
        assert_eq!(sig.signum().unwrap(), None);
        writer.wait_for_writes(10);
    }
    assert_eq!(sampler.stop(), 0);
    assert_eq!(refused, 300);
    drop(room);
    // With descriptors again, the watch is taken.
    sig.start(Signum::Pipe, |_, _| {}).unwrap();
    sig.stop().unwrap();
    writer.wait_for_writes(1000);
    writer.stop();
    sig.close();
    lp.run(RunMode::Default).unwrap();
    done();
}

/// The crate's lasting watch of SIGPIPE (the keeper) needs a loop of its own,
/// which takes descriptors; at the descriptor limit it could not be made, the
/// watch was taken all the same, and its stop put SIGPIPE back to its default
/// action before the crate ignored it again: a thread reading SIGPIPE's action
/// saw the default 208 times in 300 rounds, and another thread's write to a
/// closed peer at such a moment kills the process. Now a watch
/// of SIGPIPE that cannot have its keeper is refused with `EMFILE` before libuv
/// installs anything, and one taken later (descriptors free again) keeps SIGPIPE
/// handled for good.
#[test]
fn sigpipe_watches_at_the_descriptor_limit_never_let_a_write_to_a_closed_peer_kill() {
    run("sigpipe_watches_at_the_descriptor_limit_while_writing_to_a_closed_peer");
}

// ---------------------------------------------------------------------------
// The process's exit

/// The process ends (its main thread returns) while four other threads start
/// and stop watches of signals.
fn exit_while_other_threads_watch_signals() {
    let rounds = Arc::new(AtomicUsize::new(0));
    for signum in [Signum::User1, Signum::User2, Signum::Alarm, Signum::Profile] {
        let rounds = rounds.clone();
        std::thread::spawn(move || {
            let lp = Loop::new().unwrap();
            let sig = Signal::new(&lp).unwrap();
            loop {
                sig.start(signum, |_, _| {}).unwrap();
                sig.stop().unwrap();
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while rounds.load(Ordering::Relaxed) < 4000 {
        std::thread::yield_now();
    }
    // libuv's destructor waits for this job after it closed its signal lock,
    // so the watching threads run on in that state (they come to a stop, for
    // good, only when the process no longer lets them into libuv's signal
    // code).
    hold_the_exit_until_still(rounds);
    done();
}

/// libuv closes its signal lock (a pipe) in a destructor of the library
/// (`uv_library_shutdown`, run by the process's `exit` while its other threads
/// still run), and aborts when a start or stop of a watch cannot take it
/// (signal.c:151, `uv__signal_block_and_lock`): the child died of `SIGABRT` in
/// every run (the thread-pool job keeps the exit in libuv's destructor, after
/// the lock was closed, until the watches stop). Now the crate's `atexit`
/// handler, run before that destructor, takes the lock every call of the crate
/// into libuv's signal code holds, for good: the watching threads wait there
/// until the process is gone, and every run exits with status 0.
#[test]
fn the_process_ends_cleanly_while_other_threads_watch_signals() {
    run_times("exit_while_other_threads_watch_signals", 5);
}

/// One round of a one-shot watch: starts `sig` one-shot on `signum` (`raw`,
/// its number), raises it on this thread (libuv's handler writes the delivery
/// to the loop's pipe), and a moment later runs `lp` until the delivery, at
/// most `runs` times. `Ok(false)`: not delivered; `Err`: the start's error.
fn one_shot_round(
    lp: &Loop,
    sig: &Signal,
    signum: Signum,
    raw: libc::c_int,
    runs: usize,
) -> uv::Result<bool> {
    let got = std::rc::Rc::new(std::cell::Cell::new(false));
    let g = got.clone();
    sig.start_oneshot(signum, move |_, _| g.set(true))?;
    // SAFETY: sends a signal this thread's loop watches (libuv's handler is
    // installed) to this thread.
    unsafe { libc::pthread_kill(libc::pthread_self(), raw) };
    std::thread::sleep(std::time::Duration::from_millis(1));
    for _ in 0..runs {
        lp.run(RunMode::NoWait).unwrap();
        if got.get() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Four threads, each with a loop, watch a signal of their own one-shot, raise
/// it on themselves (libuv's handler writes the delivery to the loop's pipe)
/// and deliver it a moment later (libuv stops a one-shot watch after its
/// callback), again and again, while the process exits.
fn exit_while_other_threads_deliver_one_shot_signals() {
    let rounds = Arc::new(AtomicUsize::new(0));
    for (signum, raw) in [
        (Signum::User1, libc::SIGUSR1),
        (Signum::User2, libc::SIGUSR2),
        (Signum::Alarm, libc::SIGALRM),
        (Signum::Profile, libc::SIGPROF),
    ] {
        let rounds = rounds.clone();
        std::thread::spawn(move || {
            let lp = Loop::new().unwrap();
            let sig = Signal::new(&lp).unwrap();
            loop {
                // Once libuv's destructor closed its signal lock, its handler
                // drops a signal: the thread then spins in the round until the
                // end.
                assert!(one_shot_round(&lp, &sig, signum, raw, usize::MAX).unwrap());
                assert!(!sig.is_active());
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while rounds.load(Ordering::Relaxed) < 400 {
        std::thread::yield_now();
    }
    hold_the_exit_until_still(rounds);
    done();
}

/// libuv stops a one-shot watch itself once its callback returned
/// (`uv__signal_event`), taking its signal lock without the crate's lock: at
/// the process's exit, once libuv's destructor had closed that lock, the stop
/// made libuv abort (signal.c:151). The generated trampoline of the signal
/// callback now stops such a watch itself (`after = "stop_delivered_oneshot"`),
/// through the crate's lock, which the exit handler holds for good: the thread
/// waits there until the process is gone, and libuv's own stop finds nothing
/// to do.
#[test]
fn the_process_ends_cleanly_while_other_threads_deliver_one_shot_signals() {
    run_times("exit_while_other_threads_deliver_one_shot_signals", 5);
}

/// The process ends (its main thread returns) while two other threads spawn
/// children, one after the other, and close each child's handle from its exit
/// callback (the close of a loop's last process handle stops libuv's `SIGCHLD`
/// watch, in libuv's signal code).
fn exit_while_other_threads_spawn_and_close() {
    let rounds = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let rounds = rounds.clone();
        std::thread::spawn(move || {
            let lp = Loop::new().unwrap();
            let opts = uv::ProcessOptions::new("true");
            loop {
                let exited = std::rc::Rc::new(std::cell::Cell::new(false));
                let e = exited.clone();
                uv::Process::spawn(&lp, &opts, move |p, code, _| {
                    assert_eq!(code, 0);
                    e.set(true);
                    p.close();
                })
                .unwrap();
                lp.run(RunMode::Default).unwrap();
                assert!(exited.get());
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while rounds.load(Ordering::Relaxed) < 50 {
        std::thread::yield_now();
    }
    // As in `exit_while_other_threads_watch_signals`.
    hold_the_exit_until_still(rounds);
    done();
}

/// The same destructor, with threads that spawn children and close their
/// handles: the close of a loop's last process handle stops libuv's `SIGCHLD`
/// watch, which takes libuv's signal lock. The crate took its lock on signal
/// actions for that close only on the general close path; a process handle's
/// close took the common one, without it, and the child died of `SIGABRT`
/// (signal.c:151) in most runs of 10. A process handle now closes the general
/// way, under the lock, and waits there once the process is exiting: every run
/// exits with status 0.
#[test]
fn the_process_ends_cleanly_while_other_threads_spawn_and_close_children() {
    run_times("exit_while_other_threads_spawn_and_close", 10);
}

/// The process ends (its main thread returns) while five other threads, each
/// with a loop of its own, hand the thread pool work as fast as they can: jobs
/// (one thread also cancels each), stats, stat pollers' starts and a host
/// lookup. A submission refused
/// at exit must be `ECANCELED` (a cancel `EBUSY`); the thread then stops.
fn exit_while_other_threads_hand_work_to_the_pool() {
    let rounds = Arc::new(AtomicUsize::new(0));
    for kind in 0..5 {
        let rounds = rounds.clone();
        std::thread::spawn(move || {
            let lp = Loop::new().unwrap();
            let submitted = match kind {
                0 => submit_until_refused(&lp, &rounds, |lp| lp.queue_work(|| 7, |_| {}).map(drop)),
                1 => submit_until_refused(&lp, &rounds, |lp| {
                    let r = lp.queue_work(|| 7, |_| {})?;
                    match r.cancel() {
                        // Cancelled, or taken by a pool thread already.
                        Ok(()) => Ok(()),
                        Err(e) if e.code() == StatusCode::EBUSY => Ok(()),
                        Err(e) => Err(e),
                    }
                }),
                2 => {
                    submit_until_refused(&lp, &rounds, |lp| uv::Fs::stat(lp, "/", |_| {}).map(drop))
                }
                3 => submit_until_refused(&lp, &rounds, |lp| {
                    // Generated code's submission (`hooks::pool_call`): the
                    // start's first stat; the close ends the poll before its
                    // timer would stat again.
                    let poll = uv::FsPoll::new(lp)?;
                    let started = poll.start("/", std::time::Duration::from_secs(1), |_, _| {});
                    poll.close();
                    started
                }),
                _ => submit_until_refused(&lp, &rounds, |lp| {
                    let hints = uv::AddrInfoHints::default();
                    lp.getaddrinfo_with(Some("127.0.0.1"), None, &hints, |_| {})
                        .map(drop)
                }),
            };
            assert!(submitted > 0, "thread {kind} submitted nothing");
            // Refused: the process is exiting. Stay out of the way until it is gone.
            loop {
                std::thread::park();
            }
        });
    }
    while rounds.load(Ordering::Relaxed) < 20_000 {
        std::thread::yield_now();
    }
    done();
}

/// Calls `submit` and runs `lp` without waiting, until a submission is refused
/// (which must be because the process is exiting: `ECANCELED`, or `EBUSY` for a
/// cancel); counts the successes in `rounds` and returns their number.
fn submit_until_refused(
    lp: &Loop,
    rounds: &AtomicUsize,
    submit: impl Fn(&Loop) -> uv::Result<()>,
) -> usize {
    let mut n = 0;
    loop {
        match submit(lp) {
            Ok(()) => {
                n += 1;
                rounds.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                assert!(
                    matches!(e.code(), StatusCode::ECANCELED | StatusCode::EBUSY),
                    "refused with {e}"
                );
                return n;
            }
        }
        lp.run(RunMode::NoWait).unwrap();
    }
}

/// libuv's destructor (`uv_library_shutdown`, run by the process's `exit` while
/// its other threads still run) stops the thread pool and destroys its mutex: a
/// thread handing the pool work at that moment made libuv abort (the mutex
/// destroyed while held, `uv_mutex_destroy`, or locked once destroyed,
/// `uv_mutex_lock`). Now the crate's `atexit` handler, run before that
/// destructor, shuts the gate every submission passes and waits for those
/// in progress: later ones are refused with `ECANCELED`, and every run exits
/// with status 0.
#[test]
fn the_process_ends_cleanly_while_other_threads_hand_work_to_the_pool() {
    run_times("exit_while_other_threads_hand_work_to_the_pool", 50);
}

/// Four threads, each with a loop polling the stats of "/" with 50 pollers
/// every millisecond; the main thread writes a line through the C library's
/// buffered output and ends the process with status 7.
fn exit_while_other_threads_poll_stats() {
    let ready = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let ready = ready.clone();
        std::thread::spawn(move || {
            let lp = Loop::new().unwrap();
            let _polls: Vec<uv::FsPoll> = (0..50)
                .map(|_| {
                    let p = uv::FsPoll::new(&lp).unwrap();
                    p.start("/", std::time::Duration::from_millis(1), |_, _| {})
                        .unwrap();
                    p
                })
                .collect();
            ready.fetch_add(1, Ordering::SeqCst);
            loop {
                lp.run(RunMode::Once).unwrap();
            }
        });
    }
    while ready.load(Ordering::SeqCst) < 4 {
        std::thread::yield_now();
    }
    // The pollers' timers go round a few times.
    std::thread::sleep(std::time::Duration::from_millis(10));
    write_through_c_stdio(b"buffered line\n");
    done();
    std::process::exit(7);
}

/// Writes `bytes` to standard output through the C library's buffer (a pipe:
/// held until a flush).
fn write_through_c_stdio(bytes: &[u8]) {
    extern "C" {
        static mut stdout: *mut libc::FILE;
    }
    // SAFETY: `stdout` is the C library's standard output stream, set before
    // main; `fwrite` reads `bytes.len()` bytes of the slice.
    unsafe {
        libc::fwrite(bytes.as_ptr().cast(), 1, bytes.len(), stdout);
    }
}

/// An exit handler registered before the crate's: writes a line to standard
/// error.
extern "C" fn earlier_handler() {
    let line = b"earlier exit handler ran\n";
    // SAFETY: writes the line's bytes to descriptor 2.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// Where [`exit_with_pollers`] polls besides the calling thread.
#[derive(PartialEq)]
enum Elsewhere {
    /// Nowhere.
    No,
    /// On another thread, which runs its loop until the process ends.
    Running,
    /// On another thread, which drops its poller and loop and ends (joined).
    Ended,
}

/// Registers [`earlier_handler`], then (the crate's exit handler is registered
/// with the first loop) polls stats on a loop of the calling thread, and on
/// another thread as `elsewhere` says; then ends the process with status 0
/// from the calling thread.
fn exit_with_pollers(elsewhere: Elsewhere) {
    // SAFETY: registers a handler that only writes to descriptor 2.
    assert_eq!(unsafe { libc::atexit(earlier_handler) }, 0);
    let lp = Loop::new().unwrap();
    let p = uv::FsPoll::new(&lp).unwrap();
    p.start("/", std::time::Duration::from_millis(1), |_, _| {})
        .unwrap();
    // The poller's timer goes round a few times (each iteration waits for it).
    for _ in 0..5 {
        lp.run(RunMode::Once).unwrap();
    }
    if elsewhere != Elsewhere::No {
        let (tx, rx) = std::sync::mpsc::channel();
        let end = elsewhere == Elsewhere::Ended;
        let t = std::thread::spawn(move || {
            let lp = Loop::new().unwrap();
            let p = uv::FsPoll::new(&lp).unwrap();
            p.start("/", std::time::Duration::from_millis(1), |_, _| {})
                .unwrap();
            tx.send(()).unwrap();
            if !end {
                loop {
                    lp.run(RunMode::Once).unwrap();
                }
            }
        });
        rx.recv().unwrap();
        if end {
            t.join().unwrap();
        }
    }
    write_through_c_stdio(b"buffered line\n");
    done();
    std::process::exit(0);
}

fn exit_after_polling_stats_on_this_thread_only() {
    exit_with_pollers(Elsewhere::No);
}

fn exit_while_another_thread_polls_stats_skips_earlier_handlers() {
    exit_with_pollers(Elsewhere::Running);
}

fn exit_after_the_polling_thread_ended() {
    exit_with_pollers(Elsewhere::Ended);
}

/// Registers [`earlier_handler`], makes a loop (which registers the crate's exit
/// handler), then ends the process with status 0 from a thread of its own named
/// as libuv names its pool's threads.
fn exit_from_a_thread_named_like_libuvs_pool() {
    // SAFETY: registers a handler that only writes to descriptor 2.
    assert_eq!(unsafe { libc::atexit(earlier_handler) }, 0);
    let lp = Loop::new().unwrap();
    let t = std::thread::Builder::new()
        .name("libuv-worker".into())
        .spawn(|| {
            write_through_c_stdio(b"buffered line\n");
            done();
            std::process::exit(0);
        })
        .unwrap();
    let _ = t.join();
    drop(lp);
    unreachable!("the named thread ends the process");
}

/// Runs `scenario` in a child, which must exit with `status`, having written
/// "scenario done" to standard error with no thread having panicked, and
/// "buffered line" through the C library's buffered standard output; returns
/// its standard error.
fn run_with_status(scenario: &str, status: i32) -> String {
    use std::os::unix::process::ExitStatusExt;
    let out = uv_tests::output_within(&mut uv_tests::native_scenario_command(SCENARIO, scenario));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(status),
        "{scenario}: {:?} (signal {:?})\n{stderr}",
        out.status,
        out.status.signal()
    );
    assert!(stderr.contains("scenario done"), "{scenario}: {stderr}");
    assert!(!stderr.contains("panicked"), "{scenario}: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("buffered line"),
        "{scenario}: the C library's output was lost: {stdout:?}"
    );
    stderr
}

/// libuv's stat poller hands the thread pool its next stat from its timer,
/// inside `uv_run`, past the gate that refuses submissions once the process is
/// exiting: a stat handed over while libuv's destructor tore the pool down made
/// libuv abort (`SIGABRT` in 14 of 600 runs of this scenario, 1 of 100 in
/// another count; with 100 runs this test failed on the old code). While another thread that started a poller lives, the
/// crate's exit handler now ends the process itself (`_exit`, after flushing
/// the C library's output), with the status `exit` was given: 7 in every run,
/// and the buffered line written.
#[test]
fn the_process_ends_with_its_status_while_other_threads_poll_stats() {
    for _ in 0..uv_tests::iterations(100) {
        run_with_status("exit_while_other_threads_poll_stats", 7);
    }
}

/// Pollers on the exiting thread's own loops do not run during its exit: the
/// exit goes on as usual, through the exit handlers registered before the
/// crate's (and libuv's destructor).
#[test]
fn an_exit_with_pollers_on_its_own_thread_only_runs_every_exit_handler() {
    let stderr = run_with_status("exit_after_polling_stats_on_this_thread_only", 0);
    assert!(stderr.contains("earlier exit handler ran"), "{stderr}");
}

/// A thread counts as one that may poll until it ends: once the other polling
/// thread was joined, the exit goes on as usual.
#[test]
fn an_exit_after_the_polling_thread_ended_runs_every_exit_handler() {
    let stderr = run_with_status("exit_after_the_polling_thread_ended", 0);
    assert!(stderr.contains("earlier exit handler ran"), "{stderr}");
}

/// A thread is taken for one of libuv's pool (whose exit ends the process at
/// once, see `exit_from_a_pool_job`) only when it ran a job: a program's own
/// thread named like the pool's (`libuv-worker`) exits as usual, through the
/// exit handlers registered before the crate's. (Its name used to be what was
/// looked at: those handlers were skipped.)
#[test]
fn an_exit_from_a_thread_named_like_libuvs_pool_runs_every_exit_handler() {
    let stderr = run_with_status("exit_from_a_thread_named_like_libuvs_pool", 0);
    assert!(stderr.contains("earlier exit handler ran"), "{stderr}");
}

/// The price of the exit above: the exit handlers registered before the
/// crate's (at the first loop), and the libraries' destructors, do not run.
#[test]
fn an_exit_while_another_thread_polls_stats_skips_the_earlier_exit_handlers() {
    let stderr = run_with_status(
        "exit_while_another_thread_polls_stats_skips_earlier_handlers",
        0,
    );
    assert!(!stderr.contains("earlier exit handler ran"), "{stderr}");
}

// ---------------------------------------------------------------------------
// A forked child

/// Forks children, one after the other, that re-create a loop watching SIGUSR1
/// (`after_fork`) while another thread of this process sends SIGUSR1 to the
/// child again and again: each child must exit with status 0.
fn after_fork_while_the_signal_arrives() {
    use std::sync::atomic::AtomicI32;
    let lp = Loop::new().unwrap();
    let sig = Signal::new(&lp).unwrap();
    sig.start(Signum::User1, |_, _| {}).unwrap();
    // The child to signal (0: none), and the sender's rounds.
    let target = Arc::new(AtomicI32::new(0));
    let rounds = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (target, rounds, stop) = (target.clone(), rounds.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let pid = target.load(Ordering::SeqCst);
                if pid > 0 {
                    // SAFETY: sends a signal to a child of ours that watches it
                    // (or has exited and is not reaped yet).
                    unsafe { libc::kill(pid, libc::SIGUSR1) };
                }
                rounds.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let mut failed = Vec::new();
    for _ in 0..100 {
        // SAFETY: the other thread only uses atomics and `kill` (it holds no
        // lock the child needs); the child prints nothing and leaves with
        // `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // A moment for the parent's signals to start coming (it learns the
            // child's pid once `fork` returned there).
            for _ in 0..2000 {
                std::hint::spin_loop();
            }
            let ok = lp.after_fork().is_ok();
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        target.store(pid, Ordering::SeqCst);
        // The child's end, left unreaped (its pid is not reused meanwhile)
        // until the sender is past its last signal to it. A child still there
        // after a minute hangs (libuv's signal handler once waited for good on
        // the lock pipe the fork's child handler re-creates): it is killed and
        // counted, so the test fails instead of waiting for good.
        let mut hung = false;
        for waited in 0.. {
            // SAFETY: `info` is a valid out-pointer; `pid` is our child.
            let (rc, ended) = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                let rc = libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
                );
                (rc, info.si_pid() != 0)
            };
            assert_eq!(rc, 0);
            if ended {
                break;
            }
            if waited == 60_000 && !hung {
                hung = true;
                // SAFETY: `pid` is our child, not reaped yet.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        target.store(0, Ordering::SeqCst);
        let seen = rounds.load(Ordering::SeqCst);
        while rounds.load(Ordering::SeqCst) < seen + 2 {
            std::thread::yield_now();
        }
        let mut status = 0;
        // SAFETY: `pid` is our child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        if status != 0 || hung {
            failed.push((status, if hung { "hung" } else { "ended" }));
        }
    }
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} children failed: {failed:?}",
        failed.len()
    );
    // The deliveries the children wrote to the loop's pipe before they
    // re-created it reach this process's loop.
    lp.run(RunMode::NoWait).unwrap();
    sig.close();
    lp.run(RunMode::Default).unwrap();
    done();
}

/// `uv_loop_fork` closes the loop's signal pipe and makes a new one without
/// libuv's signal lock: a watched signal caught in between (here sent by the
/// parent) had libuv's handler write its message to descriptor -1 and abort
/// (signal.c:211; 6 to 35 of 100 children died of `SIGABRT`), or into whatever file
/// took the pipe's number. Now `after_fork` blocks the thread's signals while
/// libuv re-creates the loop (the child runs alone): a signal sent then waits,
/// and its message goes to the new pipe. Every child exits with status 0.
#[test]
fn a_signal_arriving_during_after_fork_does_not_abort_the_child() {
    run("after_fork_while_the_signal_arrives");
}

/// Whether SIGUSR1 is blocked on the calling thread.
fn usr1_blocked_here() -> bool {
    // SAFETY: a query (no new mask); `mask` is a valid out-pointer.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask),
            0
        );
        libc::sigismember(&mask, libc::SIGUSR1) == 1
    }
}

/// Set in a forked child by [`note_the_childs_mask`].
static USR1_BLOCKED_IN_CHILD_HANDLER: AtomicBool = AtomicBool::new(false);

/// A `pthread_atfork` child handler registered before the first loop, so that
/// it runs before libuv's (which re-creates the signal lock) and the crate's.
extern "C" fn note_the_childs_mask() {
    USR1_BLOCKED_IN_CHILD_HANDLER.store(usr1_blocked_here(), Ordering::SeqCst);
}

/// Registers [`note_the_childs_mask`], makes a loop, then forks: the child
/// exits with 0 when SIGUSR1 was blocked while the child handlers ran and is
/// unblocked once `fork` returned, 2 when it was not blocked, 3 when it stays
/// blocked.
fn fork_child_handlers_with_signals_blocked() {
    assert!(!usr1_blocked_here());
    // SAFETY: registers a handler that only queries the mask and stores an
    // atomic.
    let rc = unsafe { libc::pthread_atfork(None, None, Some(note_the_childs_mask)) };
    assert_eq!(rc, 0);
    let lp = Loop::new().unwrap();
    // SAFETY: the child only reads atomics and the mask, then leaves with
    // `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = if !USR1_BLOCKED_IN_CHILD_HANDLER.load(Ordering::SeqCst) {
            2
        } else if usr1_blocked_here() {
            3
        } else {
            0
        };
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "{status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 0);
    // The parent's mask is back as well.
    assert!(!usr1_blocked_here());
    drop(lp);
    done();
}

/// libuv's child handler re-creates the signal lock pipe (closes the old one,
/// makes an empty one, then writes the lock's token): a watched signal caught
/// in between had libuv's handler wait for good on the empty pipe (a child of
/// `after_fork_while_the_signal_arrives` hung in `read`, and held a CI run up
/// until its time ran out). The crate's handlers now block every signal on the forking
/// thread before the fork and unblock it after the child handlers ran: a
/// handler registered before the first loop sees SIGUSR1 blocked, and the
/// child's code after `fork` sees it unblocked.
#[test]
fn a_forks_child_handlers_run_with_every_signal_blocked() {
    run("fork_child_handlers_with_signals_blocked");
}

/// Forks a child with `body`, which then ends with `exit(0)` (the process's exit
/// handlers and libuv's destructor run in it), or with status 101 when `body`
/// panics; returns the child's wait status.
fn fork_and_exit(body: impl FnOnce()) -> i32 {
    // SAFETY: the other threads of this process hold no lock the child needs
    // (the parent's loop is idle; the thread pool's threads wait for work, and
    // libuv's pool starts afresh in a child that hands it work).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
            // SAFETY: ends the child at once: a failed check there must not
            // run on as a copy of this test.
            unsafe { libc::_exit(101) };
        }
        // SAFETY: ends the child the way a program's `main` returning does.
        unsafe { libc::exit(0) };
    }
    uv_tests::wait_within(pid)
}

/// Runs one job through `lp`'s thread pool, to its completion.
fn one_job(lp: &Loop) {
    let done = std::rc::Rc::new(std::cell::Cell::new(0));
    let d = done.clone();
    lp.queue_work(|| 7, move |r| d.set(r.unwrap())).unwrap();
    // Until the job completed (the loop may have other active handles).
    while done.get() == 0 {
        lp.run(RunMode::Once).unwrap();
    }
    assert_eq!(done.get(), 7);
}

/// This process starts libuv's thread pool, then forks children that end with
/// `exit`: one that does nothing more, one that forks a grandchild doing
/// nothing, one that re-creates the loop and uses the pool itself, one that
/// makes a loop of its own. Each must exit with status 0.
fn forked_children_exit_after_the_parent_used_the_pool() {
    let lp = Loop::new().unwrap();
    one_job(&lp);
    let statuses = [
        fork_and_exit(|| {}),
        fork_and_exit(|| {
            let status = fork_and_exit(|| {});
            assert_eq!(status, 0, "the grandchild");
        }),
        fork_and_exit(|| {
            lp.after_fork().unwrap();
            one_job(&lp);
        }),
        fork_and_exit(|| {
            let own = Loop::new().unwrap();
            own.run(RunMode::Default).unwrap();
        }),
    ];
    assert_eq!(statuses, [0; 4], "wait statuses of the children");
    done();
}

/// libuv starts its thread pool once per process and resets that mark in a
/// forked child, but its destructor (run by `exit`) joins the threads it
/// counts: in a child that never handed the pool work, the parent's, which the
/// child does not have. Such a child died of `SIGSEGV` in `pthread_join`
/// (wait status 11), whatever it did otherwise. Now the crate's `atexit` handler
/// starts the child's own pool first (a job that does nothing), and every child
/// exits with status 0.
#[test]
fn forked_children_exit_cleanly_after_the_parent_used_the_pool() {
    run("forked_children_exit_after_the_parent_used_the_pool");
}

// ---------------------------------------------------------------------------
// Jobs of the thread pool, loops and futures of other threads at the exit

/// A pool job that starts and stops a watch of a signal on a loop of its own,
/// `n` times (or until a start or stop is refused: `ECANCELED` once the process
/// is exiting), counting its rounds, then drops its loop.
fn signal_rounds_in_a_job(rounds: Arc<AtomicUsize>, n: usize) {
    let own = Loop::new().unwrap();
    let sig = Signal::new(&own).unwrap();
    for _ in 0..n {
        let refused = |e: uv::Error| assert_eq!(e.code(), StatusCode::ECANCELED, "{e}");
        if let Err(e) = sig.start(Signum::User1, |_, _| {}) {
            refused(e);
            break;
        }
        if let Err(e) = sig.stop() {
            refused(e);
            break;
        }
        rounds.fetch_add(1, Ordering::Relaxed);
    }
}

/// The process ends (its main thread returns) while a thread-pool job starts
/// and stops a watch of a signal on a loop of its own (a bounded number of
/// times). A watchdog ends a process whose exit waits for good.
fn exit_while_a_pool_job_watches_signals() {
    let _dog = uv_tests::watchdog("the exit waited for a pool job for good", 20);
    let rounds = Arc::new(AtomicUsize::new(0));
    let lp = Loop::new().unwrap();
    let r = rounds.clone();
    lp.queue_work(move || signal_rounds_in_a_job(r, 300_000), |_| {})
        .unwrap();
    while rounds.load(Ordering::Relaxed) < 100 {
        std::thread::yield_now();
    }
    std::mem::forget(lp);
    done();
}

/// A thread-pool job runs a loop of its own that watches SIGUSR1 one-shot,
/// raises it on its thread and delivers it a moment later, again and again
/// (a bounded number), while the process exits with status 7. A watchdog ends
/// a process whose exit waits for good.
fn exit_while_a_pool_job_delivers_one_shot_signals() {
    let _dog = uv_tests::watchdog("the exit waited for a pool job for good", 20);
    let rounds = Arc::new(AtomicUsize::new(0));
    let lp = Loop::new().unwrap();
    let r = rounds.clone();
    lp.queue_work(
        move || {
            let own = Loop::new().unwrap();
            let sig = Signal::new(&own).unwrap();
            for _ in 0..100_000 {
                // Once libuv's destructor closed its signal lock, its handler
                // drops the signal: the job then ends.
                match one_shot_round(&own, &sig, Signum::User1, libc::SIGUSR1, 1000) {
                    Ok(true) => r.fetch_add(1, Ordering::Relaxed),
                    Ok(false) => return,
                    Err(e) => {
                        assert_eq!(e.code(), StatusCode::ECANCELED, "{e}");
                        return;
                    }
                };
            }
        },
        |_| {},
    )
    .unwrap();
    while rounds.load(Ordering::Relaxed) < 100 {
        std::thread::yield_now();
    }
    std::mem::forget(lp);
    write_through_c_stdio(b"buffered line\n");
    done();
    std::process::exit(7);
}

/// The same delivery on a loop that a thread-pool job runs: there the exit
/// refuses the trampoline's stop (`ECANCELED`: libuv's destructor waits for
/// the job), and libuv's own stop aborted (SIGABRT). On glibc the job now ends
/// the process with the status `exit` was given (7), C's buffered output
/// flushed.
#[cfg(target_env = "gnu")]
#[test]
fn the_process_ends_with_its_status_while_a_pool_job_delivers_one_shot_signals() {
    for _ in 0..uv_tests::iterations(5) {
        run_with_status("exit_while_a_pool_job_delivers_one_shot_signals", 7);
    }
}

/// The process ends (its main thread returns) while a thread-pool job spawns
/// children on a loop of its own (a bounded number), then drops that loop with
/// their handles open. A watchdog ends a process whose exit waits for good.
fn exit_while_a_pool_job_spawns() {
    let _dog = uv_tests::watchdog("the exit waited for a pool job for good", 20);
    let rounds = Arc::new(AtomicUsize::new(0));
    let lp = Loop::new().unwrap();
    let r = rounds.clone();
    lp.queue_work(
        move || {
            let own = Loop::new().unwrap();
            let opts = uv::ProcessOptions::new("true");
            for _ in 0..2000 {
                if let Err(e) = uv::Process::spawn(&own, &opts, |p, _, _| p.close()) {
                    assert_eq!(e.code(), StatusCode::ECANCELED, "{e}");
                    break;
                }
                own.run(RunMode::NoWait).unwrap();
                r.fetch_add(1, Ordering::Relaxed);
            }
        },
        |_| {},
    )
    .unwrap();
    while rounds.load(Ordering::Relaxed) < 5 {
        std::thread::yield_now();
    }
    std::mem::forget(lp);
    done();
}

/// The process ends (its main thread returns) while four other threads make
/// loops with handles and drop them (the teardown closes every handle and the
/// loop): a watching signal handle; a process handle of a running child; a file
/// watcher and a signal handle closed with a callback; a poll handle, a
/// one-shot signal watch and a job.
fn exit_while_other_threads_drop_loops_with_handles() {
    let rounds = Arc::new(AtomicUsize::new(0));
    for kind in 0..4 {
        let rounds = rounds.clone();
        std::thread::spawn(move || loop {
            let lp = Loop::new().unwrap();
            match kind {
                0 => {
                    let sig = Signal::new(&lp).unwrap();
                    sig.start(Signum::User2, |_, _| {}).unwrap();
                }
                1 => {
                    let opts = uv::ProcessOptions::new("true");
                    uv::Process::spawn(&lp, &opts, |_, _, _| {}).unwrap();
                }
                2 => {
                    let w = uv::FsEvent::new(&lp).unwrap();
                    w.start(
                        std::path::Path::new("/tmp"),
                        uv::FsEventFlags::empty(),
                        |_, _, _, _| {},
                    )
                    .unwrap();
                    let sig = Signal::new(&lp).unwrap();
                    sig.start(Signum::User2, |_, _| {}).unwrap();
                    sig.close_with(|_| {});
                }
                _ => {
                    let (a, _b) = UnixStream::pair().unwrap();
                    let p = uv::Poll::new(&lp, a).unwrap();
                    p.start(uv::PollEvent::READABLE, |_, _, _| {}).unwrap();
                    let s = Signal::new(&lp).unwrap();
                    s.start_oneshot(Signum::User2, |_, _| {}).unwrap();
                    lp.queue_work(|| 1, |_| {}).ok();
                }
            }
            drop(lp);
            rounds.fetch_add(1, Ordering::Relaxed);
        });
    }
    while rounds.load(Ordering::Relaxed) < 400 {
        std::thread::yield_now();
    }
    done();
}

/// The process ends (its main thread returns) while three other threads make
/// futures of thread-pool requests (a host lookup, a stat) and drop them after
/// one poll (which cancels the request), or wait for them (`block_on`).
fn exit_while_other_threads_drop_request_futures() {
    use std::future::Future;
    let rounds = Arc::new(AtomicUsize::new(0));
    for kind in 0..3 {
        let rounds = rounds.clone();
        std::thread::spawn(move || {
            let lp = Loop::new().unwrap();
            let h = lp.handle();
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            loop {
                match kind {
                    0 => {
                        let hints = uv::AddrInfoHints::default();
                        let mut f =
                            Box::pin(uv::future::getaddrinfo(&h, Some("127.0.0.1"), None, &hints));
                        let _ = f.as_mut().poll(&mut cx);
                    }
                    1 => {
                        let mut f =
                            Box::pin(uv::future::request(|done| uv::Fs::stat(&lp, "/", done)));
                        let _ = f.as_mut().poll(&mut cx);
                    }
                    _ => {
                        let _ =
                            lp.block_on(uv::future::request(|done| uv::Fs::stat(&lp, "/", done)));
                    }
                }
                lp.run(RunMode::NoWait).unwrap();
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while rounds.load(Ordering::Relaxed) < 3000 {
        std::thread::yield_now();
    }
    done();
}

/// This process watches a signal and a directory and has a running child;
/// then it forks children that end with `exit`: one that does nothing more; one
/// that re-creates the loop (`after_fork`); one that re-creates it, stops the
/// watches, spawns and runs a job; one that closes the handles without
/// re-creating the loop; one that forks a grandchild which re-creates the loop
/// and runs a job; and one that re-creates the loop and starts two threads that
/// watch signals, then ends while they run. Each must exit with status 0.
fn forked_children_exit_after_the_parent_used_signals_processes_and_watches() {
    let dir = uv_tests::net::TempDir::new("exit-fork");
    let lp = Loop::new().unwrap();
    let sig = Signal::new(&lp).unwrap();
    sig.start(Signum::User1, |_, _| {}).unwrap();
    let w = uv::FsEvent::new(&lp).unwrap();
    w.start(dir.path(), uv::FsEventFlags::empty(), |_, _, _, _| {})
        .unwrap();
    let opts = uv::ProcessOptions::new("sleep").arg("30");
    let sleeper = uv::Process::spawn(&lp, &opts, |p, _, _| p.close()).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    let statuses = [
        fork_and_exit(|| {}),
        fork_and_exit(|| lp.after_fork().unwrap()),
        fork_and_exit(|| {
            lp.after_fork().unwrap();
            sig.stop().unwrap();
            w.stop().unwrap();
            let o = uv::ProcessOptions::new("true");
            sleeper.close();
            uv::Process::spawn(&lp, &o, |p, _, _| p.close()).unwrap();
            lp.run(RunMode::NoWait).unwrap();
            one_job(&lp);
        }),
        fork_and_exit(|| {
            sig.close();
            w.close();
            sleeper.close();
        }),
        fork_and_exit(|| {
            let status = fork_and_exit(|| {
                lp.after_fork().unwrap();
                sleeper.close();
                one_job(&lp);
            });
            assert_eq!(status, 0, "the grandchild");
        }),
        fork_and_exit(|| {
            lp.after_fork().unwrap();
            let rounds = Arc::new(AtomicUsize::new(0));
            for signum in [Signum::User2, Signum::Alarm] {
                let rounds = rounds.clone();
                std::thread::spawn(move || {
                    let own = Loop::new().unwrap();
                    let s = Signal::new(&own).unwrap();
                    loop {
                        s.start(signum, |_, _| {}).unwrap();
                        s.stop().unwrap();
                        rounds.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            while rounds.load(Ordering::Relaxed) < 100 {
                std::thread::yield_now();
            }
        }),
    ];
    assert_eq!(statuses, [0; 6], "wait statuses of the children");
    sleeper.kill(Signum::Kill).unwrap();
    sig.close();
    w.close();
    lp.run(RunMode::Default).unwrap();
    done();
}

/// libuv's destructor joins every thread of its pool, the one that called `exit`
/// among them, and aborted when that join failed (threadpool.c:181, in every run
/// of 3). Now the crate's exit handler ends such a process at once with the
/// status given to `exit` (the handlers registered before it and the libraries'
/// destructors do not run): it exits with status 0.
#[test]
fn exit_from_a_pool_job_ends_the_process_with_its_status() {
    run("exit_from_a_pool_job");
}

/// libuv's destructor closes its signal lock, then waits for the thread pool's
/// jobs. The crate's `atexit` handler, run before, takes the lock every call of
/// the crate into libuv's signal code holds, for good: a job that started or
/// stopped a signal watch, spawned a child or closed such a handle from then on
/// waited for it, and the destructor waited for the job: the process never
/// ended (the watchdog ended it, in every run of 4 with each job). Now a job
/// (a thread of libuv's pool) is refused with `ECANCELED` then, and its close
/// of such a handle is put off for good (the handle stays in libuv, inert, and
/// its loop is leaked): every run exits with status 0.
#[test]
fn the_process_ends_while_a_pool_job_watches_signals() {
    run_times("exit_while_a_pool_job_watches_signals", 5);
}

/// As `the_process_ends_while_a_pool_job_watches_signals`, with a job that
/// spawns children and drops its loop with their handles open (the closes of
/// process handles stop libuv's `SIGCHLD` watch, under the same lock): the
/// process never ended before; now every run exits with status 0.
#[test]
fn the_process_ends_while_a_pool_job_spawns_children() {
    run_times("exit_while_a_pool_job_spawns", 5);
}

/// Loops dropped on other threads at the exit close their signal, process,
/// file-watch and poll handles (through `close` and `close_with`): the closes
/// that reach libuv's signal code wait for the process's end under the crate's
/// lock, the others complete. Every run exits with status 0.
#[test]
fn the_process_ends_cleanly_while_other_threads_drop_loops_with_handles() {
    run_times("exit_while_other_threads_drop_loops_with_handles", 5);
}

/// Futures of thread-pool requests dropped (or awaited) on other threads at the
/// exit: their cancel passes the pool's gate, and once it is shut the request
/// is not taken back (it completes, its result dropped). Every run exits with
/// status 0.
#[test]
fn the_process_ends_cleanly_while_other_threads_drop_request_futures() {
    run_times("exit_while_other_threads_drop_request_futures", 5);
}

/// A forked child's `atexit` handler took the crate's lock only when it was free,
/// for a lock held at the fork by a thread of the parent, which the child does
/// not have: a child whose own threads watched signals at its exit often found
/// it held by one of them, went on without it, and those threads went into
/// libuv's signal code after libuv's destructor closed its signal lock: the
/// child died of `SIGABRT` (signal.c:151) in 6 runs of 18. Now the child notes at
/// the fork whether the lock was held (`pthread_atfork`), and otherwise waits for
/// its own threads as any process does: every child exits with status 0.
#[test]
fn forked_children_exit_cleanly_after_the_parent_used_signals_processes_and_watches() {
    run_times(
        "forked_children_exit_after_the_parent_used_signals_processes_and_watches",
        5,
    );
}

/// Wake-ups sent and loops made and dropped on other threads at the exit touch
/// nothing libuv's destructor tears down (an eventfd write; a loop's own
/// descriptors and the signal pipe it reads): every run exits with status 0.
#[test]
fn the_process_ends_cleanly_while_other_threads_send_wakeups_and_make_loops() {
    run_times("exit_while_other_threads_send_wakeups_and_make_loops", 5);
}

/// The process ends (its main thread returns) while two threads send wake-ups
/// to an `Async` of a third, which runs its loop, and another thread makes
/// loops (with a signal handle and a job) and drops them.
fn exit_while_other_threads_send_wakeups_and_make_loops() {
    let rounds = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lp = Loop::new().unwrap();
        let a = uv::Async::new(&lp, |_| {}).unwrap();
        for _ in 0..2 {
            tx.send(a.sender().unwrap()).unwrap();
        }
        loop {
            lp.run(RunMode::Once).unwrap();
        }
    });
    for _ in 0..2 {
        let sender = rx.recv().unwrap();
        let rounds = rounds.clone();
        std::thread::spawn(move || loop {
            sender.send().unwrap();
            rounds.fetch_add(1, Ordering::Relaxed);
        });
    }
    {
        let rounds = rounds.clone();
        std::thread::spawn(move || loop {
            let lp = Loop::new().unwrap();
            let _sig = Signal::new(&lp).unwrap();
            if let Err(e) = lp.queue_work(|| 1, |_| {}) {
                assert_eq!(e.code(), StatusCode::ECANCELED, "{e}");
            }
            drop(lp);
            rounds.fetch_add(1, Ordering::Relaxed);
        });
    }
    while rounds.load(Ordering::Relaxed) < 20_000 {
        std::thread::yield_now();
    }
    done();
}

/// A thread-pool job ends the process (`std::process::exit(0)`) while the main
/// thread runs the loop.
fn exit_from_a_pool_job() {
    let lp = Loop::new().unwrap();
    lp.queue_work(
        || {
            done();
            std::process::exit(0)
        },
        |_| {},
    )
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    unreachable!("the job ends the process");
}
