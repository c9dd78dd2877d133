//! A file watcher: watches a directory with `FsEvent` and a file in it with
//! `FsPoll`, makes a few changes, and prints what each one saw.
//!
//! Checked: the watcher names every file created in the directory, and the poller
//! reports the file's growth with its previous and current size. Any failure panics
//! (exit status 101); a 5-second watchdog fails a hung run.
//!
//! Run with `cargo run -p libuv-safe --example file_watcher`.
//!
//! It prints one line per event (`event: a.txt (FsEventKind(RENAME))`, ...) and per
//! poll (`poll: log.txt 0 -> 11 bytes`), then `ok`; the events libuv reports for
//! one change depend on the platform.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use uv::{FsEvent, FsEventFlags, FsPoll, Loop, RunMode, Timer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("uv-file-watcher-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("log.txt");
    std::fs::write(&log, b"")?;
    let lp = Loop::new()?;

    // Every name the directory watcher reports.
    let names: Rc<RefCell<Vec<PathBuf>>> = Rc::default();
    let watcher = FsEvent::new(&lp)?;
    let n = names.clone();
    watcher.start(&dir, FsEventFlags::empty(), move |_, name, kind, status| {
        status.expect("watch");
        if let Some(name) = name {
            println!("event: {} ({kind:?})", name.display());
            n.borrow_mut().push(name.to_path_buf());
        }
    })?;

    // The sizes the poller saw change, as (before, after).
    let sizes: Rc<RefCell<Vec<(u64, u64)>>> = Rc::default();
    let poller = FsPoll::new(&lp)?;
    let s = sizes.clone();
    poller.start(&log, Duration::from_millis(20), move |_, change| {
        let (prev, curr) = change.expect("poll");
        println!("poll: log.txt {} -> {} bytes", prev.size, curr.size);
        s.borrow_mut().push((prev.size, curr.size));
    })?;

    // The changes, one every 60 ms; then both watchers close.
    let steps: Vec<Box<dyn FnOnce()>> = vec![
        Box::new({
            let d = dir.clone();
            move || std::fs::write(d.join("a.txt"), b"a").unwrap()
        }),
        Box::new({
            let l = log.clone();
            move || std::fs::write(l, b"first line\n").unwrap()
        }),
        Box::new({
            let d = dir.clone();
            move || std::fs::write(d.join("b.txt"), b"b").unwrap()
        }),
    ];
    for (i, step) in steps.into_iter().enumerate() {
        Timer::once(&lp, Duration::from_millis(60 * (i as u64 + 1)), move |_| {
            step()
        })?;
    }
    let (w, p) = (watcher.clone(), poller.clone());
    Timer::once(&lp, Duration::from_millis(400), move |_| {
        w.close();
        p.close();
    })?;
    let watchdog = Timer::once(&lp, Duration::from_secs(5), |_| panic!("the watcher hung"))?;
    watchdog.unref()?;
    lp.run(RunMode::Default)?;

    let names = names.borrow();
    for want in ["a.txt", "b.txt", "log.txt"] {
        assert!(
            names.iter().any(|n| n.as_os_str() == want),
            "no event for {want}: {names:?}"
        );
    }
    assert!(
        sizes.borrow().contains(&(0, 11)),
        "the poller saw {:?}",
        sizes.borrow()
    );
    std::fs::remove_dir_all(&dir)?;
    println!("ok");
    Ok(())
}
