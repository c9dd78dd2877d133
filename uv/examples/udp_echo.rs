//! A UDP echo server and its client in the same loop.
//!
//! The server binds a UDP socket to 127.0.0.1 (port 0: the system picks a free
//! port, read back with `local_addr`) and sends every datagram it receives back to
//! its sender, the address that comes with the datagram.
//!
//! The client binds a socket of its own the same way, sends three datagrams to the
//! server one at a time (the next one when the echo of the last is back), checks
//! that each echo equals what it sent and comes from the server, and after the third
//! closes both sockets; the loop then ends with no handle left.
//!
//! Run with `cargo run -p libuv-safe --example udp_echo`.
//!
//! It prints each datagram sent, received and echoed, then `done: every echo
//! matches, every handle closed`.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

const MESSAGES: [&str; 3] = ["hello", "echo server", "goodbye"];

fn main() -> Result<(), uv::Error> {
    let lp = uv::Loop::new()?;
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let echoed = Rc::new(RefCell::new(Vec::<Vec<u8>>::new()));
    let served = Rc::new(Cell::new(0u32));

    // The server: echoes every datagram to its sender.
    let server = uv::Udp::new(&lp)?;
    server.bind(loopback, uv::UdpFlags::empty())?;
    let server_addr = server.local_addr()?;
    assert!(server_addr.ip().is_loopback() && server_addr.port() != 0);
    let count = served.clone();
    server.recv_start(move |s, r| {
        let d = r.expect("server recv");
        // Each burst of reads ends with a "drained" event: no datagram.
        if d.is_drained() {
            return;
        }
        let from = d.addr.expect("the sender's address");
        println!(
            "server: {} bytes from {from}: {:?}; echoing",
            d.data.len(),
            String::from_utf8_lossy(d.data)
        );
        count.set(count.get() + 1);
        // `&[u8]` is copied: the datagram's bytes only live during this callback.
        s.send(d.data, Some(from), |_s, r| r.expect("server send"))
            .expect("queue server send");
    })?;
    println!("server: listening on {server_addr}");

    // The client: sends the messages one at a time, checks each echo, then closes
    // both sockets.
    let client = uv::Udp::new(&lp)?;
    client.bind(loopback, uv::UdpFlags::empty())?;
    let client_addr = client.local_addr()?;
    println!("client: bound to {client_addr}");

    let send_message = move |c: &uv::Udp, i: usize| {
        let msg = MESSAGES[i];
        c.send(msg.as_bytes(), Some(server_addr), move |_c, r| {
            r.expect("client send");
            println!("client: sent {msg:?}");
        })
        .expect("queue client send");
    };
    let (got, srv) = (echoed.clone(), server.clone());
    client.recv_start(move |c, r| {
        let d = r.expect("client recv");
        if d.is_drained() {
            return;
        }
        assert_eq!(d.addr, Some(server_addr), "the echo comes from the server");
        println!("client: echo {:?}", String::from_utf8_lossy(d.data));
        let mut got = got.borrow_mut();
        let i = got.len();
        assert_eq!(d.data, MESSAGES[i].as_bytes(), "echo of message {i}");
        got.push(d.data.to_vec());
        if got.len() < MESSAGES.len() {
            send_message(c, i + 1);
        } else {
            println!("client: every echo received; closing both sockets");
            c.close();
            srv.close();
        }
    })?;
    send_message(&client, 0);

    // A watchdog: fails the example instead of hanging if the echo never completes.
    // Unreferenced, it does not keep the loop alive by itself.
    let watchdog = uv::Timer::new(&lp)?;
    watchdog.start(Duration::from_secs(5), Duration::ZERO, |_t| {
        panic!("timed out: the echo did not complete")
    })?;
    watchdog.unref()?;

    let more = lp.run(uv::RunMode::Default)?;
    watchdog.close();
    lp.run(uv::RunMode::Default)?;

    let echoed = echoed.borrow();
    let sent: Vec<&[u8]> = MESSAGES.iter().map(|m| m.as_bytes()).collect();
    println!(
        "sent {} datagrams, {} echoed back",
        sent.len(),
        echoed.len()
    );
    assert!(!more);
    assert_eq!(*echoed, sent);
    assert_eq!(served.get(), 3);
    assert!(server.is_closed());
    assert!(client.is_closed());
    assert_eq!(lp.handle_count(), 0);
    println!("done: every echo matches, every handle closed");
    Ok(())
}
