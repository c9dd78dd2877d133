//! Attacks on the tracking of descriptors a socket has in this process (the
//! registry of sockets handles hold, `contracts::sole_descriptor` and
//! `contracts::no_unheld_copies`) and of handles sharing the standard
//! descriptors' open files (`contracts::note_std_shares`).

#![cfg(unix)]

use std::net::TcpListener;

use uv::{Loop, RunMode, StatusCode, Stream as _, Tcp};

fn code<T>(r: uv::Result<T>) -> StatusCode {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code(),
    }
}

/// Two handles opened on two descriptors of one listening socket (a copy made with
/// `try_clone`, both given away): each holds its descriptor, so the other may
/// listen. A `close_reset` the handle refuses (`EINVAL`: its write side is being
/// shut down) leaves it open, and its descriptor still held: the other handle's
/// `listen` was refused after it (the refused close had taken the descriptor out
/// of the registry already).
#[test]
fn a_refused_close_reset_keeps_the_socket_held() {
    let lp = Loop::new().unwrap();
    let (l, _) = uv_tests::net::tcp_listener();
    let copy = l.try_clone().unwrap();
    let a = Tcp::try_from((&*lp, l)).unwrap();
    let b = Tcp::try_from((&*lp, copy)).unwrap();
    a.shutdown(|_, _| {}).unwrap();
    assert_eq!(code(a.close_reset()), StatusCode::EINVAL);
    assert!(!a.is_closing());
    // `a` is open and holds its descriptor: only handles hold the socket.
    b.listen(8, |_, _| {}).unwrap();
    a.close();
    b.close();
    lp.run(RunMode::Default).unwrap();
}

/// A listener whose copy is kept by the user is refused until the copy is dropped.
#[test]
fn listen_with_a_kept_copy_is_einval_until_it_is_dropped() {
    let lp = Loop::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let copy = l.try_clone().unwrap();
    let a = Tcp::try_from((&*lp, l)).unwrap();
    assert_eq!(code(a.listen(8, |_, _| {})), StatusCode::EINVAL);
    drop(copy);
    a.listen(8, |_, _| {}).unwrap();
    a.close();
    lp.run(RunMode::Default).unwrap();
}
