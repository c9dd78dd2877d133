//! A chat over a Unix domain socket (Unix only): a server and three clients in one
//! loop.
//!
//! The server binds a socket file in the temporary directory and relays every line
//! a client sends to every other client. Once all three have joined, it sends each
//! of them the notice `* start`; each client then says two lines (`"alice: hello"`,
//! ...), and reads until it has heard the four lines of the others; then it shuts
//! its write side down. The server closes a connection when
//! its client has shut down, and the listening socket once all three are gone;
//! each client closes at the end of stream. Lines are framed by `\n`: a read may
//! bring part of a line or several.
//!
//! Checked: each client heard exactly the others' lines, each speaker's lines in
//! the order they were said; every handle closed; the socket file removed. Any
//! failure panics (exit status 101), and a 5-second watchdog fails a hung run.
//!
//! Run with `cargo run -p libuv-safe --example unix_chat`.
//!
//! It prints the server's steps, each client's leaving, what each client heard,
//! then `done: every client heard the others, in order; every handle closed`.

#[cfg(unix)]
fn run() -> Result<(), Box<dyn std::error::Error>> {
    use std::cell::{Cell, RefCell};

    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::rc::Rc;
    use std::time::Duration;
    use uv::Stream;

    const NAMES: [&str; 3] = ["alice", "bob", "carol"];
    const SAYS: [&str; 2] = ["hello", "how is everyone?"];

    /// Removes the socket file when dropped, also on a panic.
    struct RemoveOnDrop(PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Appends `bytes` to `buf` and returns the complete lines (without `\n`).
    fn take_lines(buf: &mut Vec<u8>, bytes: &[u8]) -> Vec<String> {
        buf.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line[..end]).into_owned());
        }
        lines
    }

    let path = std::env::temp_dir().join(format!("uv-chat-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let cleanup = RemoveOnDrop(path.clone());

    let lp = uv::Loop::new()?;

    // The server: its connections by number, for the relay.
    let conns: Rc<RefCell<BTreeMap<u32, uv::Pipe>>> = Rc::default();
    let accepted = Rc::new(Cell::new(0u32));
    let relayed = Rc::new(Cell::new(0u32));
    let server = uv::Pipe::new(&lp, false)?;
    server.bind(&path)?;
    let (all, count, relays) = (conns.clone(), accepted.clone(), relayed.clone());
    server.listen(16, move |srv, status| {
        status.expect("incoming connection");
        let conn = srv.accept().expect("accept");
        let id = count.get();
        count.set(id + 1);
        all.borrow_mut().insert(id, conn.clone());
        if all.borrow().len() == NAMES.len() {
            println!("server: everyone is here; starting");
            for other in all.borrow().values() {
                other
                    .write("* start\n", |_o, r| r.expect("notice write"))
                    .expect("queue notice");
            }
        }
        let (all, srv, relays, count) = (all.clone(), srv.clone(), relays.clone(), count.clone());
        let mut buf = Vec::new();
        conn.read_start(move |c, data| match data {
            Ok(bytes) => {
                for line in take_lines(&mut buf, bytes) {
                    for (other_id, other) in all.borrow().iter() {
                        if *other_id != id {
                            other
                                .write(format!("{line}\n"), |_o, r| r.expect("relay write"))
                                .expect("queue relay write");
                            relays.set(relays.get() + 1);
                        }
                    }
                }
            }
            Err(e) => {
                assert_eq!(e.code(), uv::StatusCode::EOF, "server read");
                all.borrow_mut().remove(&id);
                c.close();
                if all.borrow().is_empty() && count.get() == NAMES.len() as u32 {
                    println!("server: everyone left; closing");
                    srv.close();
                }
            }
        })
        .expect("server read_start");
    })?;
    println!("server: listening on {}", path.display());

    // The clients: each keeps what it heard.
    let heard: Vec<Rc<RefCell<Vec<String>>>> = NAMES.iter().map(|_| Rc::default()).collect();
    let expected_lines = (NAMES.len() - 1) * SAYS.len();
    let mut clients = Vec::new();
    for (name, log) in NAMES.iter().zip(&heard) {
        let client = uv::Pipe::new(&lp, false)?;
        let log = log.clone();
        client.connect(&path, move |c, r| {
            r.expect("connect");
            let mut buf = Vec::new();
            c.read_start(move |c, data| match data {
                Ok(bytes) => {
                    let mut log = log.borrow_mut();
                    for line in take_lines(&mut buf, bytes) {
                        if line == "* start" {
                            for says in SAYS {
                                c.write(format!("{name}: {says}\n"), |_c, r| {
                                    r.expect("client write")
                                })
                                .expect("queue client write");
                            }
                        } else {
                            log.push(line);
                        }
                    }
                    assert!(
                        log.len() <= expected_lines,
                        "{name} heard too much: {log:?}"
                    );
                    if log.len() == expected_lines {
                        println!("{name}: heard everyone; leaving");
                        c.shutdown(|_c, r| r.expect("shutdown"))
                            .expect("queue shutdown");
                    }
                }
                Err(e) => {
                    assert_eq!(e.code(), uv::StatusCode::EOF, "{name} read");
                    c.close();
                }
            })
            .expect("client read_start");
        })?;
        clients.push(client);
    }

    let watchdog = uv::Timer::once(&lp, Duration::from_secs(5), |_t| {
        panic!("timed out: the chat did not finish")
    })?;
    watchdog.unref()?;
    lp.run(uv::RunMode::Default)?;
    watchdog.close();
    lp.run(uv::RunMode::Default)?;

    for (name, log) in NAMES.iter().zip(&heard) {
        let log = log.borrow();
        println!("{name} heard: {log:?}");
        for other in NAMES.iter().filter(|o| *o != name) {
            let from_other: Vec<&str> = log
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("{other}: ")))
                .collect();
            assert_eq!(from_other, SAYS, "{name} hears {other} in order");
        }
        assert_eq!(log.len(), expected_lines);
    }
    assert_eq!(accepted.get(), NAMES.len() as u32);
    assert_eq!(relayed.get() as usize, NAMES.len() * expected_lines);
    assert!(server.is_closed());
    assert!(clients.iter().all(|c| c.is_closed()));
    assert_eq!(lp.handle_count(), 0);
    drop(cleanup);
    assert!(!path.exists(), "socket file removed");
    println!("done: every client heard the others, in order; every handle closed");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(unix)]
    run()?;
    #[cfg(not(unix))]
    println!("the unix_chat example is Unix-only (it uses a Unix domain socket path)");
    Ok(())
}
