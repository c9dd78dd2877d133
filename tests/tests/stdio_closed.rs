//! A process that starts with standard input closed: libuv must not get descriptor 0
//! for its own descriptors (it asserts when it closes one of them). Alone in its test
//! binary because it changes the process's descriptor table.

#![cfg(unix)]

use uv::{Loop, RunMode, Udp, UdpFlags};
use uv_tests::net::fd_identity;

#[test]
fn a_loop_made_with_stdin_closed_leaves_descriptor_zero_to_dev_null() {
    // SAFETY: descriptor 0 belongs to no Rust value in this test binary (the harness
    // does not read stdin); closing it makes the state a daemon may start in.
    assert_eq!(unsafe { libc::close(0) }, 0);
    assert_eq!(fd_identity(0), None);
    let lp = Loop::new().unwrap();
    // Loop::new put /dev/null on 0, so the loop's own descriptors are above 2.
    let dev_null = std::fs::File::open("/dev/null").unwrap();
    use std::os::fd::AsRawFd;
    assert_eq!(fd_identity(0), fd_identity(dev_null.as_raw_fd()));
    assert!(lp.backend_fd().unwrap() > 2);
    let udp = Udp::new(&lp).unwrap();
    udp.bind("127.0.0.1:0".parse().unwrap(), UdpFlags::empty())
        .unwrap();
    assert!(udp.fileno().unwrap() > 2);
    udp.close();
    lp.run(RunMode::Default).unwrap();
    // Closing the loop closes its descriptors: none of them is 0 to 2.
    drop(lp);
    assert_eq!(fd_identity(0), fd_identity(dev_null.as_raw_fd()));
}
