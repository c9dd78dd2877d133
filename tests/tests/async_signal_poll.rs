//! Integration tests for the Async, Signal and Poll handles. Ported from the Python
//! `uv` package's tests and libuv's test suite.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uv::{Async, Category, Loop, RunMode, StatusCode};

fn assert_closed_handle<T: std::fmt::Debug>(r: uv::Result<T>) {
    let err = r.expect_err("expected a ClosedHandle error");
    assert_eq!(err.kind(), Category::ClosedHandle, "{err:?}");
    assert!(err.is(Category::UnsupportedOperation));
}

// ---------------------------------------------------------------------------
// Async
// ---------------------------------------------------------------------------

#[test]
fn async_thread_sends_until_three_wakeups() {
    let lp = Loop::new().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let a = Async::new(&lp, move |a| {
        if c.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
            a.close();
        }
    })
    .unwrap();
    let sender = a.sender().unwrap();
    let c = calls.clone();
    let th = std::thread::spawn(move || loop {
        if c.load(Ordering::SeqCst) >= 3 {
            break;
        }
        match sender.send() {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(e.kind(), Category::ClosedHandle);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    });
    assert!(!lp.run(RunMode::Default).unwrap());
    th.join().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(a.is_closed());
}

#[test]
fn async_many_threads_coalesced_wakeups() {
    const THREADS: usize = 4;
    const SENDS: usize = 100;
    let lp = Loop::new().unwrap();
    // `attempted` counts sends about to be made; the callback closes the handle once
    // all were attempted. The last attempt is followed by a send, so a callback
    // always runs after it (or the handle is already closed): run() terminates.
    let attempted = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    let wakeups = Arc::new(AtomicUsize::new(0));
    let (att, w) = (attempted.clone(), wakeups.clone());
    let a = Async::new(&lp, move |a| {
        w.fetch_add(1, Ordering::SeqCst);
        if att.load(Ordering::SeqCst) == THREADS * SENDS {
            a.close();
        }
    })
    .unwrap();
    let sender = a.sender().unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (sender, att, del) = (sender.clone(), attempted.clone(), delivered.clone());
            std::thread::spawn(move || {
                for _ in 0..SENDS {
                    att.fetch_add(1, Ordering::SeqCst);
                    match sender.send() {
                        Ok(()) => {
                            del.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => assert_eq!(e.kind(), Category::ClosedHandle),
                    }
                }
            })
        })
        .collect();
    assert!(!lp.run(RunMode::Default).unwrap());
    for th in threads {
        th.join().unwrap();
    }
    let wakeups = wakeups.load(Ordering::SeqCst);
    let delivered = delivered.load(Ordering::SeqCst);
    assert_eq!(attempted.load(Ordering::SeqCst), THREADS * SENDS);
    assert!(wakeups >= 1);
    assert!(delivered >= 1);
    assert!(
        wakeups <= delivered,
        "{wakeups} wakeups for {delivered} sends"
    );
    assert!(delivered <= THREADS * SENDS);
    assert!(a.is_closed());
    assert_closed_handle(sender.send());
}

#[test]
fn async_send_after_close_is_closed_handle() {
    let lp = Loop::new().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let a = Async::new(&lp, move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let sender = a.sender().unwrap();
    sender.send().unwrap();
    a.close();
    assert_closed_handle(sender.send());
    assert_closed_handle(a.send());
    assert_closed_handle(a.sender());
    lp.run(RunMode::Default).unwrap();
    assert_closed_handle(sender.send());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(a.is_closed());
}

#[test]
fn async_send_from_loop_thread() {
    let lp = Loop::new().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let a = Async::new(&lp, move |a| {
        c.fetch_add(1, Ordering::SeqCst);
        a.close();
    })
    .unwrap();
    a.send().unwrap();
    a.send().unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn async_dropped_is_closed() {
    let lp = Loop::new().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let a = Async::new(&lp, move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let sender = a.sender().unwrap();
    assert_eq!(lp.handle_count(), 1);
    drop(a);
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_closed_handle(sender.send());
    assert_eq!(lp.handle_count(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn async_keeps_loop_alive_until_unref() {
    let lp = Loop::new().unwrap();
    let a = Async::new(&lp, |_| {}).unwrap();
    assert!(lp.alive());
    assert!(lp.run(RunMode::NoWait).unwrap());
    a.unref().unwrap();
    assert!(!lp.alive());
    assert!(!lp.run(RunMode::Default).unwrap());
}

// ---------------------------------------------------------------------------
// Signal
// ---------------------------------------------------------------------------

#[cfg(unix)]
fn raise(sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[cfg(unix)]
#[test]
fn signal_start_receives_sigusr1() {
    use std::cell::Cell;
    use std::rc::Rc;
    use uv::{Signal, Signum};

    let lp = Loop::new().unwrap();
    let got = Rc::new(Cell::new(None));
    let calls = Rc::new(Cell::new(0usize));
    let sig = Signal::new(&lp).unwrap();
    let (g, c) = (got.clone(), calls.clone());
    sig.start(Signum::User1, move |s, signum| {
        g.set(Some(signum));
        c.set(c.get() + 1);
        s.close();
    })
    .unwrap();
    assert!(sig.is_active());
    assert_eq!(sig.signum().unwrap(), Some(Signum::User1));
    raise("-USR1");
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(got.get(), Some(Signum::User1));
    assert_eq!(calls.get(), 1);
    assert!(sig.is_closed());
}

#[cfg(unix)]
#[test]
fn signal_start_oneshot_fires_once() {
    use std::cell::Cell;
    use std::rc::Rc;
    use uv::{Signal, Signum};

    let lp = Loop::new().unwrap();
    let got = Rc::new(Cell::new(None));
    let calls = Rc::new(Cell::new(0usize));
    let sig = Signal::new(&lp).unwrap();
    assert_eq!(sig.signum().unwrap(), None);
    let (g, c) = (got.clone(), calls.clone());
    sig.start_oneshot(Signum::User2, move |_, signum| {
        g.set(Some(signum));
        c.set(c.get() + 1);
    })
    .unwrap();
    raise("-USR2");
    // The one-shot watcher stops itself, so the loop has nothing left to do.
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(got.get(), Some(Signum::User2));
    assert_eq!(calls.get(), 1);
    assert!(!sig.is_active());
    assert!(!sig.is_closing());
    // A fired one-shot watcher watches nothing any more.
    assert_eq!(sig.signum().unwrap(), None);
    sig.close();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(calls.get(), 1);
}

#[cfg(unix)]
#[test]
fn signal_after_close_is_closed_handle() {
    use uv::{Signal, Signum};

    let lp = Loop::new().unwrap();
    let sig = Signal::new(&lp).unwrap();
    sig.close();
    assert_closed_handle(sig.signum());
    assert_closed_handle(sig.start(Signum::User1, |_, _| {}));
    assert_closed_handle(sig.start_oneshot(Signum::User1, |_, _| {}));
    sig.stop().unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(sig.is_closed());
}

// ---------------------------------------------------------------------------
// Poll
// ---------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn poll_readable_socketpair() {
    use std::cell::{Cell, RefCell};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::rc::Rc;
    use uv::{Poll, PollEvent};

    let lp = Loop::new().unwrap();
    let (reader, mut writer) = UnixStream::pair().unwrap();
    // The handle keeps one reference to the socket until it is closed; the callback
    // reads through another.
    let reader = Rc::new(reader);
    let p = Poll::new(&lp, reader.clone()).unwrap();
    let data = Rc::new(RefCell::new(Vec::new()));
    let calls = Rc::new(Cell::new(0usize));
    let (d, c) = (data.clone(), calls.clone());
    p.start(PollEvent::READABLE, move |p, status, events| {
        c.set(c.get() + 1);
        status.unwrap();
        assert!(events.contains(PollEvent::READABLE), "{events:?}");
        let mut buf = [0u8; 16];
        let n = (&*reader).read(&mut buf).unwrap();
        d.borrow_mut().extend_from_slice(&buf[..n]);
        p.stop().unwrap();
        p.close();
    })
    .unwrap();
    assert!(p.is_active());
    writer.write_all(b"hello").unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(calls.get(), 1);
    assert_eq!(&*data.borrow(), b"hello");
    assert!(p.is_closed());
}

#[cfg(unix)]
#[test]
fn poll_bad_fd_is_ebadf() {
    let lp = Loop::new().unwrap();
    // SAFETY: `new_raw` refuses a negative descriptor before libuv sees it, so no
    // handle ever watches it.
    let err = unsafe { uv::Poll::new_raw(&lp, -1) }.unwrap_err();
    assert_eq!(err.code(), StatusCode::EBADF);
    assert!(err.is(Category::BadFileDescriptor));
    assert_eq!(lp.handle_count(), 0);
}

/// A closed handle's entry in the loop's sender table is reused by the next
/// sender: the old senders still answer `ClosedHandle` and never wake the new
/// handle; senders of one handle share its entry.
#[test]
fn senders_of_a_closed_async_never_reach_the_handle_that_reuses_its_entry() {
    let lp = Loop::new().unwrap();
    let first = Async::new(&lp, |_| panic!("the closed handle ran")).unwrap();
    let old = first.sender().unwrap();
    let old2 = first.sender().unwrap();
    first.close();
    lp.run(RunMode::Default).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let second = Async::new(&lp, move |a| {
        c.fetch_add(1, Ordering::SeqCst);
        a.close();
    })
    .unwrap();
    let new = second.sender().unwrap();
    for s in [&old, &old2] {
        assert_closed_handle(s.send());
    }
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    std::thread::spawn(move || new.send().unwrap())
        .join()
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_closed_handle(old.send());
}

/// Many handles with senders, closed in a scattered order, then made again: every
/// sender reaches its own handle only.
#[test]
fn many_senders_each_reach_their_own_handle() {
    let lp = Loop::new().unwrap();
    let hits: Arc<Vec<AtomicUsize>> = Arc::new((0..64).map(|_| AtomicUsize::new(0)).collect());
    let make = |i: usize| {
        let h = hits.clone();
        let a = Async::new(&lp, move |_| {
            h[i].fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let s = a.sender().unwrap();
        (a, s)
    };
    let mut all: Vec<_> = (0..32).map(make).collect();
    // Close every third one and make new ones in their places.
    for i in (0..32).step_by(3) {
        let (a, s) = std::mem::replace(&mut all[i], make(32 + i));
        a.close();
        assert_closed_handle(s.send());
    }
    lp.run(RunMode::NoWait).unwrap();
    let senders: Vec<_> = all.iter().map(|(_, s)| s.clone()).collect();
    std::thread::spawn(move || senders.iter().for_each(|s| s.send().unwrap()))
        .join()
        .unwrap();
    lp.run(RunMode::NoWait).unwrap();
    for i in 0..64 {
        let replaced = i < 32 && i % 3 == 0;
        let made = i < 32 || (i - 32) % 3 == 0 && i - 32 < 32;
        let want = usize::from(made && !replaced);
        assert_eq!(hits[i].load(Ordering::SeqCst), want, "handle {i}");
    }
    for (a, _) in &all {
        a.close();
    }
    lp.run(RunMode::Default).unwrap();
}
