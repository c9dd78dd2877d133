//! Passing a TCP connection between two parts of a program over an IPC pipe (Unix
//! only), as a server hands connections to its worker processes; here both parts
//! run in one loop, so the example needs no second process.
//!
//! The acceptor listens on 127.0.0.1 (port 0: the system picks one), accepts each
//! connection and sends it over an IPC pipe (`Pipe::new_ipc` on one end of a
//! socket pair) with `write2`, then closes its own copy. The worker reads the other
//! end: each message comes with a handle, which it takes with `accept_into` into a
//! new `Tcp` of the received type (`pending_type`), and it echoes what that
//! connection sends. Three clients connect one after another, each sends a line,
//! reads the echo back and closes; after the third the acceptor and both pipe ends
//! close.
//!
//! Checked: each client gets its own line back, served by the worker; every
//! connection was passed once; every handle closed. Any failure panics (exit status
//! 101), and a 5-second watchdog fails a hung run.
//!
//! Run with `cargo run -p libuv-safe --example handle_passing`.
//!
//! It prints the acceptor's address, then for each client the hand-over (`acceptor:
//! passed connection N`), the worker's take (`worker: took a Tcp, serving it`) and
//! the client's echo, then `done: ...`.

#[cfg(unix)]
fn run() -> Result<(), Box<dyn std::error::Error>> {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::time::Duration;
    use uv::Stream;

    const CLIENTS: usize = 3;

    let lp = uv::Loop::new()?;

    // The IPC pipe: two ends of a Unix socket pair, each an IPC `Pipe`.
    let (a, b) = uv::socketpair(
        uv::SocketType::Stream,
        uv::StdioFlags::NONBLOCK_PIPE,
        uv::StdioFlags::NONBLOCK_PIPE,
    )?;
    let to_worker = uv::Pipe::new_ipc(&lp)?;
    to_worker.open(a).map_err(uv::Error::from)?;
    let from_acceptor = uv::Pipe::new_ipc(&lp)?;
    from_acceptor.open(b).map_err(uv::Error::from)?;

    // The worker: takes each received connection and echoes it.
    let served = Rc::new(Cell::new(0usize));
    let s = served.clone();
    let lh = lp.handle();
    from_acceptor.read_start(move |pipe, r| {
        // The message's bytes ("c"); the handle that came with it waits in the pipe.
        r.expect("the IPC pipe reads");
        while pipe.pending_count().expect("pending count") > 0 {
            let ty = pipe.pending_type().expect("pending type");
            assert_eq!(ty, uv::HandleType::Tcp);
            let conn = uv::Tcp::new(&lh).expect("a Tcp for the received socket");
            pipe.accept_into(&conn)
                .expect("take the received connection");
            s.set(s.get() + 1);
            println!("worker: took a {ty:?}, serving it");
            conn.read_start(|c, r| match r {
                Ok(bytes) => c
                    .write(bytes.to_vec(), |_, r| r.expect("echo"))
                    .expect("write"),
                Err(e) if e.code() == uv::StatusCode::EOF => c.close(),
                Err(e) => panic!("worker read: {e}"),
            })
            .expect("read the connection");
            // Reading: the connection stays open without a value (the drop rule).
        }
    })?;

    // The acceptor: hands every connection to the worker.
    let listener = uv::Tcp::new(&lp)?;
    listener.bind("127.0.0.1:0".parse()?, uv::TcpFlags::empty())?;
    let addr = listener.local_addr()?;
    println!("acceptor: listening on {addr}");
    let passed = Rc::new(Cell::new(0usize));
    let p = passed.clone();
    let ipc = to_worker.clone();
    listener.listen(8, move |server, status| {
        status.expect("incoming connection");
        let conn = server.accept().expect("accept");
        p.set(p.get() + 1);
        let n = p.get();
        // The socket travels with the bytes; the acceptor's copy closes once sent.
        let ours = conn.clone();
        ipc.write2(b"c".to_vec(), &conn, move |_, r| {
            r.expect("write2");
            println!("acceptor: passed connection {n}");
            ours.close();
        })
        .expect("write2 starts");
    })?;

    // The clients, one after another.
    let echoes: Rc<RefCell<Vec<String>>> = Rc::default();
    fn client(
        lp: &uv::LoopHandle,
        addr: std::net::SocketAddr,
        i: usize,
        echoes: Rc<RefCell<Vec<String>>>,
        done: Rc<dyn Fn()>,
    ) -> uv::Result<()> {
        let line = format!("line from client {i}\n");
        let tcp = uv::Tcp::new(lp)?;
        let lh = lp.clone();
        tcp.connect(addr, move |c, r| {
            r.expect("connect");
            c.write(line.clone().into_bytes(), |_, r| r.expect("client write"))
                .expect("client write starts");
            let got = Rc::new(RefCell::new(Vec::new()));
            let (echoes, done, lh) = (echoes.clone(), done.clone(), lh.clone());
            c.read_start(move |c, r| {
                let bytes = r.expect("client read");
                got.borrow_mut().extend_from_slice(bytes);
                if got.borrow().ends_with(b"\n") {
                    let text = String::from_utf8(got.borrow().clone()).unwrap();
                    assert_eq!(text, line, "the echo is the client's own line");
                    println!("client {i}: echo {:?}", text.trim_end());
                    echoes.borrow_mut().push(text);
                    c.close();
                    if i + 1 < CLIENTS {
                        client(&lh, addr, i + 1, echoes.clone(), done.clone())
                            .expect("next client");
                    } else {
                        done();
                    }
                }
            })
            .expect("client read starts");
        })?;
        Ok(())
    }
    let (l, tw, fa) = (listener.clone(), to_worker.clone(), from_acceptor.clone());
    let done: Rc<dyn Fn()> = Rc::new(move || {
        l.close();
        tw.close();
        fa.close();
    });
    client(&lp, addr, 0, echoes.clone(), done)?;

    // The watchdog: unreferenced, so it does not hold the loop open by itself.
    let watchdog = uv::Timer::once(&lp, Duration::from_secs(5), |_t| {
        panic!("watchdog: the example hung");
    })?;
    watchdog.unref()?;

    lp.run(uv::RunMode::Default)?;
    watchdog.close();
    lp.run(uv::RunMode::Default)?;

    assert_eq!(echoes.borrow().len(), CLIENTS);
    assert_eq!(passed.get(), CLIENTS);
    assert_eq!(served.get(), CLIENTS);
    assert_eq!(lp.handle_count(), 0, "every handle closed");
    println!("done: {CLIENTS} connections passed to the worker and echoed, every handle closed");
    Ok(())
}

#[cfg(unix)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    run()
}

#[cfg(not(unix))]
fn main() {
    println!("this example passes handles over a Unix socket");
}
