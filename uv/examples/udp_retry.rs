//! A UDP request with a timeout and retries, against two servers on 127.0.0.1.
//!
//! The client sends `ping N` (N: the attempt) and waits up to 100 ms for the
//! answer; on timeout it sends again, up to five attempts, then gives up with
//! `ETIMEDOUT`. The timeout is a `LoopHandle::timeout` guard: dropping it when the
//! answer comes cancels it.
//!
//! - The first server "loses" the first two requests it gets (it reads and drops
//!   them) and answers the third with `pong 3`: the request succeeds on attempt 3.
//! - The second server never answers (a bound `std` socket nobody reads): the
//!   request fails after five attempts.
//!
//! Checked: the answers, the attempt counts, that each request ends exactly once,
//! and that every handle closed. Any failure panics (exit status 101); a watchdog
//! fails a hung run.
//!
//! Run with `cargo run -p libuv-safe --example udp_retry`.
//!
//! It prints each attempt to each server, the lossy server's drops and answer, the
//! silent server's give-up, then a `done:` line with the attempt counts.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

const ATTEMPTS: u32 = 5;
const TIMEOUT: Duration = Duration::from_millis(100);

/// Where a request's outcome lands: the answer, or why there is none.
type Outcome = Rc<RefCell<Option<Result<String, uv::Error>>>>;

/// One request in flight: its socket, its timeout guard and its outcome.
struct Request {
    lp: uv::LoopHandle,
    sock: uv::Udp,
    to: SocketAddr,
    attempts: Cell<u32>,
    timeout: RefCell<Option<uv::Timeout>>,
    outcome: Outcome,
}

impl Request {
    /// Starts a request to `to`; its outcome lands in the returned cell.
    fn start(lp: &uv::LoopHandle, to: SocketAddr) -> uv::Result<Outcome> {
        let sock = uv::Udp::new(lp)?;
        sock.bind(
            "127.0.0.1:0".parse().expect("address"),
            uv::UdpFlags::empty(),
        )?;
        let outcome = Rc::new(RefCell::new(None));
        let req = Rc::new(Request {
            lp: lp.clone(),
            sock: sock.clone(),
            to,
            attempts: Cell::new(0),
            timeout: RefCell::new(None),
            outcome: outcome.clone(),
        });
        let r = req.clone();
        sock.recv_start(move |_s, d| {
            let d = d.expect("client recv");
            if d.is_drained() || d.addr != Some(r.to) {
                return;
            }
            let answer = String::from_utf8_lossy(d.data).into_owned();
            println!("client -> {}: answer {answer:?}", r.to);
            r.finish(Ok(answer));
        })?;
        req.attempt();
        Ok(outcome)
    }

    /// Sends the next attempt and arms its timeout, or gives up.
    fn attempt(self: &Rc<Self>) {
        let n = self.attempts.get() + 1;
        if n > ATTEMPTS {
            println!("client -> {}: no answer after {ATTEMPTS} attempts", self.to);
            self.finish(Err(uv::Error::new(uv::StatusCode::ETIMEDOUT, "request")));
            return;
        }
        self.attempts.set(n);
        println!("client -> {}: ping {n}", self.to);
        self.sock
            .send(format!("ping {n}"), Some(self.to), |_s, r| r.expect("send"))
            .expect("queue send");
        let me = self.clone();
        let guard = self
            .lp
            .timeout(TIMEOUT, move || me.attempt())
            .expect("arm the timeout");
        // Replaces (and so cancels) nothing: the previous guard already fired.
        *self.timeout.borrow_mut() = Some(guard);
    }

    /// Records the outcome once, cancels the pending timeout and closes the socket
    /// (which drops the receive callback and with it the last `Rc` of the request).
    fn finish(&self, outcome: Result<String, uv::Error>) {
        let mut slot = self.outcome.borrow_mut();
        assert!(slot.is_none(), "a request ends once");
        *slot = Some(outcome);
        drop(self.timeout.borrow_mut().take());
        self.sock.close();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lp = uv::Loop::new()?;

    // The lossy server: drops the first two requests, answers the others.
    let lossy = uv::Udp::new(&lp)?;
    let std_lossy = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let lossy_addr = std_lossy.local_addr()?;
    lossy.open(std_lossy)?;
    let received = Rc::new(Cell::new(0u32));
    let got = received.clone();
    lossy.recv_start(move |s, d| {
        let d = d.expect("server recv");
        if d.is_drained() {
            return;
        }
        got.set(got.get() + 1);
        let text = String::from_utf8_lossy(d.data).into_owned();
        if got.get() <= 2 {
            println!("lossy server: dropping {text:?}");
            return;
        }
        let answer = text.replace("ping", "pong");
        println!("lossy server: answering {text:?} with {answer:?}");
        s.send(answer, d.addr, |_s, r| r.expect("server send"))
            .expect("queue server send");
    })?;

    // The silent server: a bound socket nobody reads.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let silent_addr = silent.local_addr()?;

    let answered = Request::start(&lp.handle(), lossy_addr)?;
    let unanswered = Request::start(&lp.handle(), silent_addr)?;

    // The server is unreferenced: the loop runs while the requests do.
    lossy.unref()?;
    let watchdog = uv::Timer::once(&lp, Duration::from_secs(10), |_t| {
        panic!("timed out: the requests did not end")
    })?;
    watchdog.unref()?;
    lp.run(uv::RunMode::Default)?;
    watchdog.close();
    lossy.close();
    lp.run(uv::RunMode::Default)?;

    let answered = answered
        .borrow_mut()
        .take()
        .expect("the first request ended");
    assert_eq!(answered.expect("answered"), "pong 3");
    assert_eq!(received.get(), 3, "the lossy server got three attempts");
    let unanswered = unanswered
        .borrow_mut()
        .take()
        .expect("the second request ended");
    let err = unanswered.expect_err("nobody answers");
    assert_eq!(err.code(), uv::StatusCode::ETIMEDOUT);
    assert_eq!(lp.handle_count(), 0, "every handle closed");
    // The silent server's queue holds every attempt.
    silent.set_nonblocking(true)?;
    let mut buf = [0u8; 32];
    let mut pings = Vec::new();
    while let Ok((n, _)) = silent.recv_from(&mut buf) {
        pings.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let expected: Vec<String> = (1..=ATTEMPTS).map(|n| format!("ping {n}")).collect();
    assert_eq!(pings, expected);
    println!(
        "done: answered on attempt 3; the silent server got {ATTEMPTS} attempts, then ETIMEDOUT"
    );
    Ok(())
}
