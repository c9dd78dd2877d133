//! The phases of one loop iteration, and a `Poll` on a descriptor the program
//! reads itself (Unix only).
//!
//! A `Prepare` handle runs just before the loop waits for I/O and a `Check` handle
//! just after; while an `Idle` handle is started the loop does not wait at all. A
//! `Poll` watches one end of a socket pair (a `std` `UnixStream`, which the `Poll`
//! keeps open until it closes): when the other end writes, the callback says the
//! descriptor is readable and reads the bytes itself. The idle handle stops once
//! the poll has seen the message, and the other handles close after it.
//!
//! Checked: in each iteration the prepare callback runs before the check callback;
//! the poll's callback runs between them, in the iteration it becomes readable; the
//! message arrives whole; every handle closed. Any failure panics (exit status 101).
//!
//! Run with `cargo run -p libuv-safe --example loop_phases`.
//!
//! It prints the events in order (`prepare`, `check`, `prepare`, `check`, `writing
//! "ping"`, `prepare`, `poll: readable, read "ping"`), the number of iterations,
//! then `done: ...`.

#[cfg(unix)]
fn run() -> Result<(), Box<dyn std::error::Error>> {
    use std::cell::RefCell;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::rc::Rc;

    let lp = uv::Loop::new()?;
    let events: Rc<RefCell<Vec<String>>> = Rc::default();

    let prepare = uv::Prepare::new(&lp)?;
    let check = uv::Check::new(&lp)?;
    let idle = uv::Idle::new(&lp)?;
    let e = events.clone();
    prepare.start(move |_p| e.borrow_mut().push("prepare".into()))?;
    let e = events.clone();
    check.start(move |_c| e.borrow_mut().push("check".into()))?;
    // A started idle handle makes the loop poll for I/O without waiting.
    idle.start(|_i| {})?;

    let (ours, theirs) = UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    let ours = Rc::new(ours);
    let poll = uv::Poll::new(&lp, ours.clone())?;
    let e = events.clone();
    let (p2, c2, i2) = (prepare.clone(), check.clone(), idle.clone());
    poll.start(uv::PollEvent::READABLE, move |p, status, ready| {
        status.expect("poll status");
        assert!(ready.contains(uv::PollEvent::READABLE));
        let mut buf = [0u8; 64];
        let n = (&*ours).read(&mut buf).expect("read the ready descriptor");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        e.borrow_mut()
            .push(format!("poll: readable, read {text:?}"));
        // Done: stop everything; the loop then ends by itself.
        p.close();
        i2.close();
        p2.close();
        c2.close();
    })?;

    // The loop runs a few idle iterations, then the other end writes.
    let mut writer = Some(theirs);
    let e = events.clone();
    let counter = uv::Idle::new(&lp)?;
    let mut turns = 0;
    counter.start(move |c| {
        turns += 1;
        if turns == 3 {
            e.borrow_mut().push("writing \"ping\"".into());
            writer.take().unwrap().write_all(b"ping").unwrap();
            c.close();
        }
    })?;
    drop(counter); // started: it runs until it closes itself

    lp.run(uv::RunMode::Default)?;

    let events = events.borrow();
    for e in events.iter() {
        println!("{e}");
    }
    let iterations = events.iter().filter(|e| *e == "prepare").count();
    println!("{iterations} iteration(s)");
    // Prepare and check alternate, prepare first, and the poll's event comes
    // between a prepare and a check (libuv polls I/O between the two phases).
    let phases: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| *e == "prepare" || *e == "check" || e.starts_with("poll"))
        .collect();
    let poll_at = phases
        .iter()
        .position(|e| e.starts_with("poll"))
        .expect("the poll saw the message");
    assert_eq!(phases[poll_at], "poll: readable, read \"ping\"");
    assert_eq!(phases[poll_at - 1], "prepare", "{phases:?}");
    for (i, p) in phases[..poll_at].iter().enumerate() {
        assert_eq!(
            *p,
            if i % 2 == 0 { "prepare" } else { "check" },
            "{phases:?}"
        );
    }
    assert!(prepare.is_closed() && check.is_closed() && idle.is_closed() && poll.is_closed());
    assert_eq!(lp.handle_count(), 0);
    println!(
        "done: prepare before check in every iteration, the poll between them, every handle closed"
    );
    Ok(())
}

#[cfg(unix)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    run()
}

#[cfg(not(unix))]
fn main() {
    println!("this example needs a Unix socket pair");
}
