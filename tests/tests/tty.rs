//! Terminals, through a pseudo-terminal so that the tests need no real one.

#![cfg(target_os = "linux")]

use std::os::fd::AsRawFd;
use uv::Stream as _;

use uv::{
    guess_handle, Category, HandleType, Loop, RunMode, StatusCode, Tty, TtyMode, TtyVtermState,
};

/// A pseudo-terminal master; `None` (and the test says so) on a machine without
/// /dev/ptmx.
fn pty_master() -> Option<std::fs::File> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/ptmx")
    {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("skipped: no pseudo-terminal here ({e})");
            None
        }
    }
}

#[test]
fn guess_handle_tells_terminals_pipes_and_sockets_apart() {
    if let Some(pty) = pty_master() {
        assert_eq!(guess_handle(pty.as_raw_fd()), HandleType::Tty);
    }
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    assert_eq!(guess_handle(a.as_raw_fd()), HandleType::NamedPipe);
    let f = std::fs::File::open("/proc/self/status").unwrap();
    assert_eq!(guess_handle(f.as_raw_fd()), HandleType::File);
    assert_eq!(guess_handle(-1), HandleType::Unknown);
}

#[test]
fn a_terminal_handle_sets_modes_and_reports_its_size() {
    let lp = Loop::new().unwrap();
    // libuv owns the descriptor from here on (it may close it with the handle).
    let Some(pty) = pty_master() else { return };
    let tty = Tty::new(&lp, pty, true).unwrap();
    assert_eq!(tty.handle_type(), HandleType::Tty);
    let (w, h) = tty.winsize().unwrap();
    assert!(w >= 0 && h >= 0);
    tty.set_mode(TtyMode::Raw).unwrap();
    tty.set_mode(TtyMode::Normal).unwrap();
    Tty::reset_mode().unwrap();
    assert!(tty.is_writable());
    tty.close();
    assert_eq!(tty.winsize().unwrap_err().kind(), Category::ClosedHandle);
    assert_eq!(
        tty.set_mode(TtyMode::Raw).unwrap_err().kind(),
        Category::ClosedHandle
    );
    lp.run(RunMode::Default).unwrap();
}

/// libuv takes any stream-like descriptor (terminal, pipe, socket) but refuses files.
#[test]
fn a_file_descriptor_is_refused() {
    let lp = Loop::new().unwrap();
    let f = std::fs::File::open("/proc/self/status").unwrap();
    let fd = f.as_raw_fd();
    let err = Tty::new(&lp, f, false).unwrap_err();
    assert_eq!(err.error().code(), StatusCode::EINVAL);
    // The file is handed back, still open.
    let f = std::fs::File::from(err.into_value());
    assert_eq!(f.as_raw_fd(), fd);
    f.metadata().unwrap();
    // SAFETY: `new_raw` refuses a negative descriptor before libuv sees it, so no
    // descriptor is taken over or closed.
    let err = unsafe { Tty::new_raw(&lp, -1, false) }.unwrap_err();
    assert_eq!(err.code(), StatusCode::EBADF);
    assert_eq!(lp.handle_count(), 0);
}

#[test]
fn the_vterm_state_is_windows_only() {
    assert_eq!(Tty::vterm_state().unwrap_err().code(), StatusCode::ENOTSUP);
    Tty::set_vterm_state(TtyVtermState::Supported);
}
