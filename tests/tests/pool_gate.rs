//! The thread pool's gate (`pool_call` in the runtime's contracts), which every
//! submission to libuv's pool and every cancel passes, and which the process's
//! exit shuts before libuv's destructor tears the pool down, seen from a forked
//! child: children forked while other threads of the parent hand the pool work
//! as fast as they can, and that end with `exit` (the exit handlers and libuv's
//! destructor run in them). Each scenario runs in a child process of its own
//! (this binary again, running only `scenario_child`); the checks are exit
//! statuses and counts. A child that does not end is killed by a watchdog and
//! counted, so a hang fails the test instead of stalling it.

#![cfg(target_os = "linux")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use uv::{Loop, RunMode, StatusCode};

/// Set in a child: the name of the scenario it runs.
const SCENARIO: &str = "UV_POOL_GATE_SCENARIO";

uv_tests::scenarios! {
    SCENARIO =>
    forks_while_other_threads_submit,
}

/// How long a forked child may take to end before it counts as hung: far more
/// than its exit takes on a loaded machine (a few milliseconds), so only a
/// child that waits for good reaches it.
const WATCHDOG: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits for the child `pid`, killing it once [`WATCHDOG`] has passed: its wait
/// status, or `None` when it had to be killed.
fn wait_or_kill(pid: libc::pid_t) -> Option<i32> {
    let start = std::time::Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            return Some(status);
        }
        assert_eq!(rc, 0, "waitpid");
        if start.elapsed() > WATCHDOG {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Two threads, each with a loop of its own, queue jobs as fast as they can
/// (running their loops without waiting in between), while the main thread
/// forks 200 children, one after the other, that end with `exit(0)` at once.
/// Every child must end with status 0 within the watchdog; then this process
/// ends with the threads still submitting.
fn forks_while_other_threads_submit() {
    let rounds = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let rounds = rounds.clone();
        std::thread::spawn(move || {
            let lp = Loop::new().unwrap();
            loop {
                match lp.queue_work(|| 7, |_| {}) {
                    Ok(_) => {
                        rounds.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        // Only once this process is exiting.
                        assert_eq!(e.code(), StatusCode::ECANCELED);
                        loop {
                            std::thread::park();
                        }
                    }
                }
                lp.run(RunMode::NoWait).unwrap();
            }
        });
    }
    while rounds.load(Ordering::Relaxed) < 1000 {
        std::thread::yield_now();
    }
    let (mut ok, mut failed, mut hung) = (0, Vec::new(), 0);
    for _ in 0..200 {
        // SAFETY: the child calls only `exit`: its exit handlers (the runtime's
        // among them) and libuv's destructor, the code under test.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: ends the child the way a program's `main` returning does.
            unsafe { libc::exit(0) };
        }
        match wait_or_kill(pid) {
            Some(0) => ok += 1,
            Some(status) => failed.push(status),
            None => hung += 1,
        }
    }
    assert_eq!(
        (ok, failed.as_slice(), hung),
        (200, &[][..], 0),
        "children that exited cleanly, wait statuses of the others, children that hung"
    );
    eprintln!("scenario done");
}

/// A forked child copies the gate's count of the calls in progress from the
/// parent, whose threads it does not have: a fork while another thread was
/// inside a submission left a child whose exit waited for that call for good.
/// (The same child also copied libuv's pool lock, maybe held, and the parent's
/// count of pool threads: its `exit` crashed in libuv's destructor.) Now the
/// child's gate starts empty and open (a `pthread_atfork` handler), and its
/// exit starts the child's own pool before libuv's destructor stops it: all 200
/// children end with status 0.
#[test]
fn children_forked_while_other_threads_submit_exit_cleanly() {
    let out = uv_tests::output_within(&mut uv_tests::native_scenario_command(
        SCENARIO,
        "forks_while_other_threads_submit",
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(stderr.contains("scenario done"), "{stderr}");
}
