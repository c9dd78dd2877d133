//! The libuv guide's pipe echo server on a Unix domain socket, with its client in
//! the same loop (Unix only).
//!
//! The server binds a socket file in the temporary directory (named with the
//! process id, removed before and after), accepts a connection into a new `Pipe`
//! handle and writes back every chunk it reads. On end of stream it closes the
//! connection, and since this server serves one client, the listening pipe too.
//!
//! The client connects to the path, writes three lines, reads until the whole echo
//! is back, then shuts its write side down; the server sees EOF and closes, the
//! client sees EOF in turn and closes, and the loop ends with no handle left.
//!
//! Run with `cargo run -p libuv-safe --example pipe_echo`.
//!
//! It prints each step of the server and the client, then `done: echo matches,
//! every handle closed, socket file removed`.

use uv::Stream;
#[cfg(unix)]
fn run() -> Result<(), Box<dyn std::error::Error>> {
    use std::cell::{Cell, RefCell};
    use std::path::PathBuf;
    use std::rc::Rc;
    use std::time::Duration;

    const LINES: [&str; 3] = ["hello\n", "pipe echo server\n", "goodbye\n"];

    /// Removes the socket file when dropped, also on a panic.
    struct RemoveOnDrop(PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    let path = std::env::temp_dir().join(format!("uv-pipe-echo-{}.sock", std::process::id()));
    // A file left by an earlier run with the same pid would make bind fail (EADDRINUSE).
    let _ = std::fs::remove_file(&path);
    let cleanup = RemoveOnDrop(path.clone());

    let lp = uv::Loop::new()?;
    let sent: Vec<u8> = LINES.concat().into_bytes();
    let echoed = Rc::new(RefCell::new(Vec::<u8>::new()));
    let server_saw_eof = Rc::new(Cell::new(false));
    let client_saw_eof = Rc::new(Cell::new(false));
    let accepted = Rc::new(Cell::new(0u32));

    // The server.
    let server = uv::Pipe::new(&lp, false)?;
    server.bind(&path)?;
    assert_eq!(server.local_addr()?, path);
    assert!(path.exists(), "bind creates the socket file");

    let (eof, count) = (server_saw_eof.clone(), accepted.clone());
    server.listen(128, move |srv, status| {
        if let Err(e) = status {
            eprintln!("server: new connection error: {e}");
            return;
        }
        let conn = srv.accept().expect("accept");
        count.set(count.get() + 1);
        println!("server: accepted a connection");

        let (srv, eof) = (srv.clone(), eof.clone());
        conn.read_start(move |c, data| match data {
            Ok(bytes) => {
                println!(
                    "server: read {} bytes, echoing {:?}",
                    bytes.len(),
                    String::from_utf8_lossy(bytes)
                );
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
    println!("server: listening on {}", path.display());

    // The client.
    let client = uv::Pipe::new(&lp, false)?;
    let (got, eof, total) = (echoed.clone(), client_saw_eof.clone(), sent.len());
    let target = path.clone();
    client.connect(&path, move |c, result| {
        result.expect("connect");
        let peer = c.peer_addr().expect("peername");
        println!("client: connected to {}", peer.display());
        assert_eq!(peer, target);
        for line in LINES {
            c.write(line, move |_c, r| {
                r.expect("client write");
                println!("client: wrote {line:?}");
            })
            .expect("queue client write");
        }
        let mut shut = false;
        c.read_start(move |c, data| match data {
            Ok(bytes) => {
                got.borrow_mut().extend_from_slice(bytes);
                println!("client: read back {:?}", String::from_utf8_lossy(bytes));
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
    println!(
        "sent {} bytes, echoed {} bytes: {:?}",
        sent.len(),
        echoed.len(),
        String::from_utf8_lossy(&echoed)
    );
    assert!(!more);
    assert_eq!(*echoed, sent);
    assert_eq!(accepted.get(), 1);
    assert!(server_saw_eof.get());
    assert!(client_saw_eof.get());
    assert!(server.is_closed());
    assert!(client.is_closed());
    assert_eq!(lp.handle_count(), 0);

    drop(cleanup);
    assert!(!path.exists(), "socket file removed");
    println!("done: echo matches, every handle closed, socket file removed");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(unix)]
    run()?;
    #[cfg(not(unix))]
    println!("the pipe_echo example is Unix-only (it uses a Unix domain socket path)");
    Ok(())
}
