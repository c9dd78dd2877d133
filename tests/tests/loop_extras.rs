//! Loop options, the default loop, and the base-handle operations that the other
//! suites do not reach: fileno and socket buffer sizes on non-socket handles.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use uv::{Category, Loop, LoopOption, RunMode, StatusCode, Timer};

#[test]
fn the_default_loop_has_one_owner_at_a_time() {
    let first = Loop::default_loop().unwrap();
    let second = Loop::default_loop().unwrap_err();
    assert_eq!(second.code(), StatusCode::EBUSY);
    assert_eq!(second.kind(), Category::ResourceBusy);
    // It works like any loop...
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    let t = Timer::new(&first).unwrap();
    t.start(Duration::from_millis(1), Duration::ZERO, move |_| {
        f.set(f.get() + 1)
    })
    .unwrap();
    first.run(RunMode::Default).unwrap();
    assert_eq!(fired.get(), 1);
    // ...and can be taken again once its owner is gone.
    drop(first);
    assert!(t.is_closed());
    let again = Loop::default_loop().unwrap();
    assert!(!again.alive());
}

#[test]
fn configure_accepts_options_without_arguments() {
    let lp = Loop::new().unwrap();
    lp.configure(LoopOption::MetricsIdleTime).unwrap();
    assert_eq!(lp.metrics_idle_time().unwrap(), Duration::ZERO);
    // BlockSignal takes a signal number: through block_signal only.
    let err = lp.configure(LoopOption::BlockSignal).unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    // libuv supports blocking SIGPROF only.
    #[cfg(unix)]
    {
        lp.block_signal(uv::Signum::Profile).unwrap();
        let err = lp.block_signal(uv::Signum::User1).unwrap_err();
        assert_eq!(err.code(), StatusCode::EINVAL);
        let err = lp.block_signal(uv::Signum::Other(0)).unwrap_err();
        assert_eq!(err.code(), StatusCode::EINVAL);
    }
}

#[test]
fn idle_time_is_measured_once_enabled() {
    let lp = Loop::new().unwrap();
    lp.configure(LoopOption::MetricsIdleTime).unwrap();
    let t = Timer::new(&lp).unwrap();
    t.start(Duration::from_millis(20), Duration::ZERO, |_| {})
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    // The loop slept in the poll phase waiting for the timer.
    assert!(lp.metrics_idle_time().unwrap() > Duration::ZERO);
}

#[test]
fn loop_options_on_a_closed_loop_answer_closed_loop() {
    let lp = Loop::new().unwrap();
    lp.close().unwrap();
    for err in [
        lp.configure(LoopOption::MetricsIdleTime).unwrap_err(),
        lp.metrics_idle_time().unwrap_err(),
        lp.backend_fd().unwrap_err(),
        lp.backend_timeout().unwrap_err(),
        lp.update_time().unwrap_err(),
    ] {
        assert_eq!(err.kind(), Category::ClosedLoop);
    }
    assert!(!lp.alive());
    assert!(lp.handles().is_empty());
    lp.stop(); // a no-op
}

#[test]
fn fileno_and_buffer_sizes_need_a_descriptor() {
    let lp = Loop::new().unwrap();
    let t = Timer::new(&lp).unwrap();
    // A timer has no descriptor: libuv says EINVAL.
    assert_eq!(t.fileno().unwrap_err().code(), StatusCode::EINVAL);
    // Buffer sizes are for TCP, pipes and UDP.
    assert_eq!(
        t.send_buffer_size().unwrap_err().code(),
        StatusCode::ENOTSUP
    );
    assert_eq!(
        t.set_recv_buffer_size(4096).unwrap_err().code(),
        StatusCode::ENOTSUP
    );
    // Zero would mean "read" to libuv: refused.
    assert_eq!(
        t.set_send_buffer_size(0).unwrap_err().code(),
        StatusCode::EINVAL
    );
    t.close();
    assert_eq!(t.fileno().unwrap_err().kind(), Category::ClosedHandle);
    assert_eq!(
        t.send_buffer_size().unwrap_err().kind(),
        Category::ClosedHandle
    );
}

#[cfg(unix)]
#[test]
fn poll_fileno_is_the_watched_descriptor() {
    use std::os::fd::AsRawFd;
    let lp = Loop::new().unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let p = uv::Poll::new(&lp, a).unwrap();
    assert_eq!(p.fileno().unwrap(), fd);
    assert_eq!(p.handle_type(), uv::HandleType::Poll);
    p.close();
    lp.run(RunMode::Default).unwrap();
}

/// A generated start method that libuv refuses leaves the previous callback in place.
#[cfg(unix)]
#[test]
fn a_refused_start_keeps_the_previous_callback() {
    let lp = Loop::new().unwrap();
    let got: Rc<Cell<(u32, u32)>> = Rc::new(Cell::new((0, 0)));
    let s = uv::Signal::new(&lp).unwrap();
    let g = got.clone();
    s.start(uv::Signum::User1, move |s, _| {
        g.set((g.get().0 + 1, g.get().1));
        s.close();
    })
    .unwrap();
    let g = got.clone();
    let err = s
        .start(uv::Signum::Other(0), move |_, _| {
            g.set((g.get().0, g.get().1 + 1))
        })
        .unwrap_err();
    assert_eq!(err.code(), StatusCode::EINVAL);
    std::process::Command::new("kill")
        .args(["-USR1", &std::process::id().to_string()])
        .status()
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(got.get(), (1, 0));
}
