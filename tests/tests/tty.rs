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

/// A terminal libuv cannot reopen (a pseudo-terminal's master side) keeps the
/// blocking mode it came with: reading it is `EINVAL` while it blocks (a blocking
/// read would stop the loop), and works once it was made non-blocking before
/// `Tty::new`, with what the other side wrote arriving whole.
#[test]
fn a_pty_master_is_read_once_made_non_blocking() {
    let lp = Loop::new().unwrap();
    let (master, slave) = uv_tests::pty();
    let blocking = Tty::new(&lp, master.try_clone().unwrap(), true).unwrap();
    let refused = blocking.read_start(|_, _| {}).unwrap_err();
    assert_eq!(refused.code(), StatusCode::EINVAL);
    blocking.close();
    // SAFETY: F_GETFL/F_SETFL on a descriptor this test owns.
    unsafe {
        let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
        assert!(flags >= 0);
        assert_eq!(
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK),
            0
        );
    }
    let tty = Tty::new(&lp, master, true).unwrap();
    let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let g = got.clone();
    tty.read_start(move |t, r| {
        let bytes = r.unwrap();
        g.borrow_mut().extend_from_slice(bytes);
        if g.borrow().ends_with(b"hello\r\n") {
            t.close();
        }
    })
    .unwrap();
    let mut writer = std::fs::File::from(slave);
    std::io::Write::write_all(&mut writer, b"hello\n").unwrap();
    lp.run(RunMode::Default).unwrap();
    // The terminal's line discipline turns "\n" into "\r\n" on the way out.
    assert_eq!(&got.borrow()[..], b"hello\r\n");
}
