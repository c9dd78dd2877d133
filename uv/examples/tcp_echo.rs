//! A TCP echo server and its client in the same loop: 1,000 lines there and back.
//!
//! The server listens on 127.0.0.1 (port 0: the system picks a free port, read back
//! with `local_addr`), accepts a connection into a new `Tcp` handle and writes back
//! every chunk it reads. On end of stream it closes the connection, and since this
//! server serves one client, it closes the listening handle too.
//!
//! The client connects, writes 1,000 lines (one write each), reads until the whole
//! echo is back, then shuts its write side down; the server sees EOF and closes,
//! the client sees EOF in turn and closes, and the loop ends with no handle left.
//! The echo is checked line by line; any failure panics (exit status 101).
//!
//! Run with `cargo run -p libuv-safe --example tcp_echo`.
//!
//! It prints each step of the server and the client, the bytes sent and echoed,
//! then `done: 1000 lines echoed in order, every handle closed`.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use uv::Stream;

const LINES: usize = 1_000;

fn main() -> Result<(), uv::Error> {
    let lp = uv::Loop::new()?;
    let lines: Vec<String> = (0..LINES)
        .map(|i| format!("line {i:04}: the quick brown fox jumps over the lazy dog\n"))
        .collect();
    let sent: Vec<u8> = lines.concat().into_bytes();
    let echoed = Rc::new(RefCell::new(Vec::<u8>::new()));
    let server_saw_eof = Rc::new(Cell::new(false));
    let client_saw_eof = Rc::new(Cell::new(false));
    let accepted = Rc::new(Cell::new(0u32));

    // The server.
    let server = uv::Tcp::new(&lp)?;
    let bind_addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
    server.bind(bind_addr, uv::TcpFlags::empty())?;
    let addr = server.local_addr()?;
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    let (eof, count) = (server_saw_eof.clone(), accepted.clone());
    server.listen(128, move |srv, status| {
        if let Err(e) = status {
            eprintln!("server: new connection error: {e}");
            return;
        }
        let conn = srv.accept().expect("accept");
        count.set(count.get() + 1);
        let peer = conn.peer_addr().expect("peername");
        println!("server: accepted a connection from {peer}");

        let (srv, eof) = (srv.clone(), eof.clone());
        conn.read_start(move |c, data| match data {
            Ok(bytes) => {
                c.write(bytes.to_vec(), |_c, r| r.expect("server write"))
                    .expect("queue server write");
            }
            Err(e) if e.code() == uv::StatusCode::EOF => {
                println!("server: end of stream; closing the connection and the server");
                eof.set(true);
                c.close();
                // One client only: stop listening too.
                srv.close();
            }
            Err(e) => panic!("server read error: {e}"),
        })
        .expect("server read_start");
        // `conn` is dropped here, but a reading stream stays open until closed.
    })?;
    println!("server: listening on {addr}");

    // The client.
    let client = uv::Tcp::new(&lp)?;
    let (got, eof, total) = (echoed.clone(), client_saw_eof.clone(), sent.len());
    client.connect(addr, move |c, result| {
        result.expect("connect");
        println!(
            "client: connected from {} to {}",
            c.local_addr().expect("sockname"),
            c.peer_addr().expect("peername")
        );
        for line in lines {
            c.write(line, |_c, r| r.expect("client write"))
                .expect("queue client write");
        }
        println!("client: queued {LINES} lines");
        let mut shut = false;
        c.read_start(move |c, data| match data {
            Ok(bytes) => {
                got.borrow_mut().extend_from_slice(bytes);
                if !shut && got.borrow().len() >= total {
                    shut = true;
                    println!("client: whole echo received; shutting down the write side");
                    c.shutdown(|_c, r| {
                        r.expect("shutdown");
                        println!("client: shutdown done");
                    })
                    .expect("queue shutdown");
                }
            }
            Err(e) if e.code() == uv::StatusCode::EOF => {
                println!("client: end of stream; closing");
                eof.set(true);
                c.close();
            }
            Err(e) => panic!("client read error: {e}"),
        })
        .expect("client read_start");
    })?;

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
    println!("sent {} bytes, echoed {} bytes", sent.len(), echoed.len());
    assert!(!more);
    let text = String::from_utf8(echoed.clone()).expect("the echo is UTF-8");
    let back: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(back.len(), LINES, "every line came back");
    for (i, line) in back.iter().enumerate() {
        assert!(
            line.starts_with(&format!("line {i:04}: ")),
            "line {i}: {line:?}"
        );
    }
    assert_eq!(*echoed, sent);
    assert_eq!(accepted.get(), 1);
    assert!(server_saw_eof.get());
    assert!(client_saw_eof.get());
    assert!(server.is_closed());
    assert!(client.is_closed());
    assert_eq!(lp.handle_count(), 0);
    println!("done: {LINES} lines echoed in order, every handle closed");
    Ok(())
}
