//! Signal handles (Unix only): a watcher for SIGUSR1 that closes itself once the
//! signal arrived, and a one-shot watcher for SIGUSR2 that stops by itself after
//! the first delivery. The example sends both signals to its own process with
//! `kill`.
//!
//! Run with `cargo run -p libuv-safe --example signal`.
//!
//! It prints each signal it sends and each delivery, then the list received:
//! `received: [User1, User2]`.

#[cfg(unix)]
fn run() -> Result<(), Box<dyn std::error::Error>> {
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Sends `sig` (a `kill` signal name such as "USR1") to this process.
    fn kill_self(sig: &str) -> std::io::Result<()> {
        let pid = std::process::id().to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "kill -{sig} failed: {status}"
            )))
        }
    }

    let lp = uv::Loop::new()?;
    let received = Rc::new(RefCell::new(Vec::<uv::Signum>::new()));

    // One-shot watcher for SIGUSR2: stops after the first delivery.
    let usr2 = uv::Signal::new(&lp)?;
    let got = received.clone();
    usr2.start_oneshot(uv::Signum::User2, move |_s, sig| {
        println!("oneshot watcher: got {} ({})", sig.name(), sig.raw());
        got.borrow_mut().push(sig);
    })?;
    assert_eq!(usr2.signum()?, Some(uv::Signum::User2));

    // Watcher for SIGUSR1: on delivery, sends SIGUSR2 and closes itself.
    let usr1 = uv::Signal::new(&lp)?;
    let got = received.clone();
    usr1.start(uv::Signum::User1, move |s, sig| {
        println!("watcher: got {} ({}); closing it", sig.name(), sig.raw());
        got.borrow_mut().push(sig);
        s.close();
        println!("sending SIGUSR2 to myself");
        kill_self("USR2").expect("kill -USR2");
    })?;

    // The handler is installed by `start`, so the signal is safe to send now; it
    // is delivered to the loop when it runs.
    println!("sending SIGUSR1 to myself (pid {})", std::process::id());
    kill_self("USR1")?;
    lp.run(uv::RunMode::Default)?;

    assert_eq!(*received.borrow(), [uv::Signum::User1, uv::Signum::User2]);
    assert!(usr1.is_closed());
    // The one-shot watcher stopped by itself but is still open.
    assert!(!usr2.is_active());
    assert!(!usr2.is_closing());
    assert_eq!(usr2.signum()?, None);
    println!("received: {:?}", received.borrow());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(unix)]
    run()?;
    #[cfg(not(unix))]
    println!("the signal example is Unix-only (it sends SIGUSR1 and SIGUSR2)");
    Ok(())
}
