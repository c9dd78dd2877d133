//! A child process (Unix only): spawns `/bin/sh` with its stdout on a pipe the loop
//! reads, prints what the child wrote and how it exited, and checks both.
//!
//! Run with `cargo run -p libuv-safe --example spawn`.
//!
//! It prints the child's pid, what the child wrote (`hello from the child`), its
//! exit status (3, no signal), and the `ENOENT` error of a spawn of a program that
//! does not exist.

#[cfg(unix)]
fn run() -> Result<(), Box<dyn std::error::Error>> {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use uv::Stream as _;

    let lp = uv::Loop::new()?;
    let stdout = uv::Pipe::new(&lp, false)?;
    let options = uv::ProcessOptions::new("/bin/sh")
        .args(["-c", "echo \"hello from $NAME\"; exit 3"])
        .env("NAME", "the child")
        .stdout(uv::Stdio::pipe_from_child(&stdout));

    let exit = Rc::new(Cell::new(None));
    let e = exit.clone();
    let child = uv::Process::spawn(&lp, &options, move |_, status, signal| {
        e.set(Some((status, signal)));
    })?;
    println!("spawned pid {}", child.pid()?);

    let output = Rc::new(RefCell::new(Vec::new()));
    let sink = output.clone();
    stdout.read_start(move |pipe, data| match data {
        Ok(bytes) => sink.borrow_mut().extend_from_slice(bytes),
        Err(e) => {
            assert_eq!(e.code(), uv::StatusCode::EOF, "{e}");
            pipe.close();
        }
    })?;
    lp.run(uv::RunMode::Default)?;

    let text = String::from_utf8(output.borrow().clone())?;
    print!("child wrote: {text}");
    let (status, signal) = exit.get().expect("the exit callback ran");
    println!("exit status {status}, signal {signal:?}");
    assert_eq!(text, "hello from the child\n");
    assert_eq!((status, signal), (3, None));

    // The child has exited: its handle closes with its last value.
    drop(child);

    // A program that does not exist is an error, and leaves no handle behind.
    let err = uv::Process::spawn(&lp, &uv::ProcessOptions::new("/nonexistent"), |_, _, _| {})
        .unwrap_err();
    assert_eq!(err.code(), uv::StatusCode::ENOENT);
    println!("spawning /nonexistent: {err}");
    assert!(lp.handles().is_empty());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(unix)]
    run()?;
    #[cfg(not(unix))]
    println!("the spawn example is Unix-only (it runs /bin/sh)");
    Ok(())
}
