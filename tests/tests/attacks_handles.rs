//! Attacks on the handles that had none before: UDP, processes, pipes and
//! terminals, poll and signal handles, file watchers, DNS and the executor. Each
//! test names the behaviour it asserts; `tests/valgrind.sh attacks_handles` checks
//! the memory side.

#![cfg(unix)]

use std::os::fd::AsRawFd as _;
use std::sync::{Mutex, MutexGuard};

use uv::{Loop, Process, ProcessOptions, RunMode, StatusCode, Stdio};

/// Tests that depend on which descriptor numbers are free run one at a time.
static DESCRIPTORS: Mutex<()> = Mutex::new(());

fn descriptors() -> MutexGuard<'static, ()> {
    DESCRIPTORS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The two lowest descriptor numbers free now (what the next `pipe` gets).
fn two_lowest_free() -> (i32, i32) {
    let a = std::fs::File::open("/dev/null").unwrap();
    let b = std::fs::File::open("/dev/null").unwrap();
    (a.as_raw_fd(), b.as_raw_fd())
}

/// The current user id, so that a spawn with `uid` needs no privilege.
fn own_uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

/// `Stdio::Inherit` in a slot whose descriptor is closed is `EBADF`, whichever
/// number the slot has. libuv's fork path (taken for `uid`/`gid`) makes a
/// close-on-exec pipe, on the lowest free numbers, whose write end tells the parent
/// that the child has called `exec`; a slot with that number given as `Inherit`
/// made the child clear its close-on-exec flag (process.c, uv__process_child_init:
/// `fd == use_fd` → `uv__cloexec(use_fd, 0)`), so the child kept it and `uv_spawn`
/// blocked until the child exited (for a long-running child, a hang of the loop's
/// thread), then reported a success for a descriptor the parent never had.
#[test]
fn inheriting_a_closed_descriptor_is_ebadf_whatever_its_number() {
    let _serial = descriptors();
    let lp = Loop::new().unwrap();
    // A first spawn makes whatever libuv makes once (the child watcher).
    let warm = Process::spawn(&lp, &ProcessOptions::new("true"), |p, _, _| p.close()).unwrap();
    drop(warm);
    lp.run(RunMode::Default).unwrap();
    let (_, write_end) = two_lowest_free();
    let slot = usize::try_from(write_end).unwrap();
    let opts = ProcessOptions::new("true")
        .uid(own_uid())
        .stdio(slot, Stdio::Inherit);
    let r = Process::spawn(&lp, &opts, |p, _, _| p.close());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(r.map(|_| ()).unwrap_err().code(), StatusCode::EBADF);
    // The same with a slot no pipe of libuv's takes.
    let opts = ProcessOptions::new("true")
        .uid(own_uid())
        .stdio(900, Stdio::Inherit);
    let r = Process::spawn(&lp, &opts, |p, _, _| p.close());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(r.map(|_| ()).unwrap_err().code(), StatusCode::EBADF);
}

/// A program that cannot be run is the spawn's error, whatever numbers the slots
/// have: a slot given a descriptor on the number of libuv's pipe (see above) was
/// `dup2`ed over that pipe in the child, so the parent saw it close at once and
/// reported a success, and the child wrote its `exec` error into the slot's file.
#[test]
fn a_failed_exec_is_the_error_whatever_the_slot_numbers() {
    let _serial = descriptors();
    let lp = Loop::new().unwrap();
    let warm = Process::spawn(&lp, &ProcessOptions::new("true"), |p, _, _| p.close()).unwrap();
    drop(warm);
    lp.run(RunMode::Default).unwrap();
    let (mut reader, writer) = std::io::pipe().unwrap();
    let (_, write_end) = two_lowest_free();
    let slot = usize::try_from(write_end).unwrap();
    let opts = ProcessOptions::new("/nonexistent/program")
        .uid(own_uid())
        .stdio(slot, Stdio::fd(writer));
    let r = Process::spawn(&lp, &opts, |p, _, _| p.close());
    drop(opts);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(r.map(|_| ()).unwrap_err().code(), StatusCode::ENOENT);
    // Nothing was written into the slot's pipe.
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut got).unwrap();
    assert_eq!(got, b"");
}
