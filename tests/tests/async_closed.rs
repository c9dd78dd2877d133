//! Futures and streams of `uv::future` whose handle goes away while a task waits:
//! the handle's callback can no longer come, so the waiting task is woken and the
//! future resolves (`ClosedLoop` / `ClosedHandle`) or the stream ends (`None`),
//! instead of staying pending forever. Each is polled by hand with a counting
//! waker, as an executor other than the loop's would poll it.

#![cfg(unix)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};
use std::time::Duration;

use uv::future as uvf;
use uv::{Category, FsEventFlags, Loop, ProcessOptions, RunMode, Signum};
use uv_tests::net::TempDir;
use uv_tests::provoke::{poll_next, poll_once};

/// A waker that counts its wake-ups.
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

#[test]
fn a_sleep_whose_loop_goes_is_woken_and_resolves_to_closed_loop() {
    let lp = Loop::new().unwrap();
    let mut s = uvf::sleep(&lp.handle(), Duration::from_secs(3600));
    let (count, w) = counting_waker();
    assert!(poll_once(&mut s, &w).is_pending());
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    drop(lp);
    assert_eq!(
        count.0.load(Ordering::SeqCst),
        1,
        "woken when the loop went"
    );
    match poll_once(&mut s, &w) {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), Category::ClosedLoop, "{e:?}"),
        other => panic!("expected ClosedLoop, got {other:?}"),
    }
}

#[test]
fn a_sleep_that_fired_before_the_loop_went_still_resolves_ok() {
    let lp = Loop::new().unwrap();
    let mut s = uvf::sleep(&lp.handle(), Duration::from_millis(1));
    let (_count, w) = counting_waker();
    assert!(poll_once(&mut s, &w).is_pending());
    lp.run(RunMode::Default).unwrap();
    drop(lp);
    assert!(matches!(poll_once(&mut s, &w), Poll::Ready(Ok(()))));
}

#[test]
fn an_interval_ends_when_its_loop_goes() {
    let lp = Loop::new().unwrap();
    let lh = lp.handle();
    let mut iv = uvf::interval(&lh, Duration::from_millis(1)).unwrap();
    // Two ticks through the loop's own executor.
    let ticks = lp
        .block_on(async {
            let a = iv.tick().await.unwrap();
            let b = iv.tick().await.unwrap();
            a + b
        })
        .unwrap();
    assert!(ticks >= 2, "{ticks}");
    let (count, w) = counting_waker();
    // A tick may be counted already; take it, then wait.
    while let Poll::Ready(Some(n)) = poll_next(&mut iv, &w) {
        assert!(n >= 1);
    }
    drop(lp);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(matches!(poll_next(&mut iv, &w), Poll::Ready(None)));
    assert!(
        matches!(poll_next(&mut iv, &w), Poll::Ready(None)),
        "stays ended"
    );
}

#[test]
fn a_signal_stream_ends_when_its_loop_goes() {
    let lp = Loop::new().unwrap();
    let mut sig = uvf::signals(&lp.handle(), Signum::User2).unwrap();
    let (count, w) = counting_waker();
    assert!(poll_next(&mut sig, &w).is_pending());
    drop(lp);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(matches!(poll_next(&mut sig, &w), Poll::Ready(None)));
}

#[test]
fn fs_event_and_fs_poll_streams_end_when_their_loop_goes() {
    let dir = TempDir::new("async-closed");
    let lp = Loop::new().unwrap();
    let mut events = uvf::fs_events(&lp.handle(), dir.path(), FsEventFlags::empty()).unwrap();
    let mut polls = uvf::fs_poll(&lp.handle(), dir.path(), Duration::from_secs(60)).unwrap();
    let (ce, we) = counting_waker();
    let (cp, wp) = counting_waker();
    assert!(poll_next(&mut events, &we).is_pending());
    assert!(poll_next(&mut polls, &wp).is_pending());
    drop(lp);
    assert_eq!(ce.0.load(Ordering::SeqCst), 1);
    assert_eq!(cp.0.load(Ordering::SeqCst), 1);
    assert!(matches!(poll_next(&mut events, &we), Poll::Ready(None)));
    assert!(matches!(poll_next(&mut polls, &wp), Poll::Ready(None)));
}

#[test]
fn events_queued_before_the_loop_went_come_before_the_end() {
    let dir = TempDir::new("async-closed");
    let lp = Loop::new().unwrap();
    let mut events = uvf::fs_events(&lp.handle(), dir.path(), FsEventFlags::empty()).unwrap();
    let (_c, w) = counting_waker();
    assert!(poll_next(&mut events, &w).is_pending());
    std::fs::write(dir.path().join("f"), b"x").unwrap();
    // Run until the watcher reported at least one event (bounded by iterations).
    let mut rounds = 0;
    while rounds < 1000 {
        lp.run(RunMode::NoWait).unwrap();
        rounds += 1;
        if let Poll::Ready(item) = poll_next(&mut events, &w) {
            let (name, _) = item.expect("an event").expect("no error");
            assert_eq!(name.as_deref(), Some(std::path::Path::new("f")));
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(rounds < 1000, "the watcher reported the new file");
    drop(lp);
    // Whatever else was queued comes first; then the end.
    let mut rest = 0;
    loop {
        match poll_next(&mut events, &w) {
            Poll::Ready(Some(item)) => {
                item.unwrap();
                rest += 1;
                assert!(rest < 100);
            }
            Poll::Ready(None) => break,
            Poll::Pending => panic!("pending after the loop went"),
        }
    }
}

#[test]
fn an_exit_future_resolves_to_closed_handle_when_the_process_handle_closes_first() {
    let lp = Loop::new().unwrap();
    let opts = ProcessOptions::new("sleep").args(["30"]);
    let (process, mut exit) = uvf::spawn(&lp.handle(), &opts).unwrap();
    let pid = process.pid().unwrap();
    let (count, w) = counting_waker();
    assert!(poll_once(&mut exit, &w).is_pending());
    // Closed before the child exits: its exit callback can no longer run.
    process.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    match poll_once(&mut exit, &w) {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), Category::ClosedHandle, "{e:?}"),
        other => panic!("expected ClosedHandle, got {other:?}"),
    }
    // The child is ours to end and reap.
    uv::kill(pid, Signum::Kill).unwrap();
    let mut status = 0;
    // SAFETY: waits for our own child, which libuv no longer watches.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFSIGNALED(status));
}

#[test]
fn an_exit_future_whose_child_exited_gives_the_status() {
    let lp = Loop::new().unwrap();
    let opts = ProcessOptions::new("sh").args(["-c", "exit 7"]);
    let (process, mut exit) = uvf::spawn(&lp.handle(), &opts).unwrap();
    let got = lp.block_on(&mut exit).unwrap();
    assert_eq!(got.unwrap(), (7, None));
    // Polled again: an error at once, not a wait.
    let (_c, w) = counting_waker();
    match poll_once(&mut exit, &w) {
        Poll::Ready(Err(e)) => assert_eq!(e.code(), uv::StatusCode::EINVAL),
        other => panic!("expected EINVAL, got {other:?}"),
    }
    process.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn an_incoming_stream_ends_when_its_loop_goes() {
    let lp = Loop::new().unwrap();
    let server = uv::Tcp::new(&lp).unwrap();
    server
        .bind("127.0.0.1:0".parse().unwrap(), uv::TcpFlags::empty())
        .unwrap();
    let mut conns = uvf::incoming(server, 8).unwrap();
    let (count, w) = counting_waker();
    assert!(poll_next(&mut conns, &w).is_pending());
    drop(lp);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(matches!(poll_next(&mut conns, &w), Poll::Ready(None)));
}
