//! A terminal as a stream (Unix only): `guess_handle` tells what standard output
//! is; when it is a terminal, a `Tty` on a copy of it reads the window size and
//! writes a line in bold. Without a terminal (output piped or redirected, as in
//! CI) the program says so and shows the stream part on a socket pair instead,
//! which a `Tty` also takes on Unix (the terminal-only calls fail there).
//!
//! Checked: on a terminal, that its window size can be read (0 by 0 for a
//! pseudo-terminal whose size nobody set); on the socket pair, `winsize` refused and the written bytes read back. Any failure
//! exits non-zero.
//!
//! Run with `cargo run -p libuv-safe --example tty` (in a terminal to see the
//! terminal part; `| cat` shows the other).
//!
//! It prints what standard output is (`stdout is Tty` or `stdout is NamedPipe`,
//! ...), then on a terminal `window: W columns, H rows` and a bold line, else
//! `no terminal: ...` and `socket pair: wrote and read back "hello\n"`; then
//! `done`.

#[cfg(unix)]
fn run() -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Read;
    use std::os::fd::AsFd;
    use uv::Stream;

    let lp = uv::Loop::new()?;
    let kind = uv::guess_handle(1);
    println!("stdout is {kind:?}");
    if kind == uv::HandleType::Tty {
        // The Tty owns what it is given: a copy of standard output.
        let out = uv::Tty::new(&lp, std::io::stdout().as_fd().try_clone_to_owned()?, false)?;
        // 0 by 0 for a pseudo-terminal whose size nobody set (`script`, some
        // containers).
        let (width, height) = out.winsize()?;
        assert!(width >= 0 && height >= 0);
        println!("window: {width} columns, {height} rows");
        out.write(
            "\u{1b}[1ma bold line, written through the Tty\u{1b}[0m\n",
            |_t, r| r.expect("write to the terminal"),
        )?;
        // The write in flight keeps the handle open until it is done.
    } else {
        println!("no terminal: showing the stream part on a socket pair");
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair()?;
        let tty = uv::Tty::new(&lp, ours, false)?;
        assert!(tty.winsize().is_err(), "no window size without a terminal");
        tty.write("hello\n", |_t, r| r.expect("write"))?;
        drop(tty);
        lp.run(uv::RunMode::Default)?;
        let mut buf = [0u8; 6];
        theirs.read_exact(&mut buf)?;
        assert_eq!(&buf, b"hello\n");
        println!(
            "socket pair: wrote and read back {:?}",
            std::str::from_utf8(&buf)?
        );
    }
    lp.run(uv::RunMode::Default)?;
    assert_eq!(lp.handle_count(), 0);
    println!("done");
    Ok(())
}

#[cfg(unix)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    run()
}

#[cfg(not(unix))]
fn main() {
    println!("this example uses a Unix socket pair when there is no terminal");
}
