//! A directory lister: `Fs::opendir`, then `Fs::readdir` in batches (each read
//! started from the previous one's callback) until a batch is empty, then
//! `Dir::close`; each entry with its type and, from `Fs::lstat`, its size.
//!
//! Run with `cargo run -p libuv-safe --example dir_list`: it lists a small tree
//! it makes in a temporary directory and checks what it saw. As a tool:
//! `cargo run -p libuv-safe --example dir_list -- DIR`.
//!
//! It prints the directory, one line per entry (type, size, name), and `ok: 4
//! entries listed and checked` (as a tool, the entries only).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use uv::{Dir, DirEntry, DirentType, Fs, LoopHandle};

type Listing = Rc<RefCell<Vec<(DirEntry, u64)>>>;

fn list(lp: &LoopHandle, path: &Path, out: Listing) -> uv::Result<()> {
    let (lp2, base) = (lp.clone(), path.to_path_buf());
    Fs::opendir(lp, path, move |d| match d {
        Ok(d) => {
            // Small batches, to show several reads.
            d.set_batch(2);
            read_batch(lp2, d, base, out);
        }
        Err(e) => eprintln!("{e}"),
    })?;
    Ok(())
}

fn read_batch(lp: LoopHandle, d: Dir, base: PathBuf, out: Listing) {
    let d2 = d.clone();
    let lp2 = lp.clone();
    let r = Fs::readdir(&lp, &d, move |batch| {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => return eprintln!("{e}"),
        };
        if batch.is_empty() {
            if let Err(e) = d2.close(&lp2, |r| r.expect("closedir")) {
                eprintln!("{e}");
            }
            return;
        }
        for e in batch {
            // lstat on the thread pool too: sizes arrive in any order.
            let out = out.clone();
            let path = base.join(&e.name);
            let r = Fs::lstat(&lp2, &path, move |st| {
                let size = st.map(|s| s.size).unwrap_or(0);
                out.borrow_mut().push((e, size));
            });
            if let Err(e) = r {
                eprintln!("{e}");
            }
        }
        read_batch(lp2, d2, base, out);
    });
    if let Err(e) = r {
        eprintln!("{e}");
    }
}

fn kind(k: DirentType) -> &'static str {
    match k {
        DirentType::File => "file",
        DirentType::Directory => "dir",
        DirentType::Symlink => "link",
        DirentType::Fifo => "fifo",
        DirentType::Socket => "socket",
        DirentType::CharDevice => "char",
        DirentType::BlockDevice => "block",
        _ => "?",
    }
}

fn show(lp: &uv::Loop, dir: &Path) -> Result<Vec<(DirEntry, u64)>, Box<dyn std::error::Error>> {
    let out: Listing = Rc::default();
    list(lp, dir, out.clone())?;
    lp.run(uv::RunMode::Default)?;
    let mut v = out.take();
    v.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    println!("{}:", dir.display());
    for (e, size) in &v {
        println!(
            "  {:<6} {:>8}  {}",
            kind(e.kind),
            size,
            e.name.to_string_lossy()
        );
    }
    Ok(v)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lp = uv::Loop::new()?;
    if let Some(dir) = std::env::args_os().nth(1) {
        show(&lp, Path::new(&dir))?;
        return Ok(());
    }
    let dir = Fs::mkdtemp_sync(&lp, std::env::temp_dir().join("uv-dir-list-XXXXXX"))?;
    std::fs::write(dir.join("a.txt"), b"hello")?;
    std::fs::write(dir.join("b.bin"), vec![0u8; 1000])?;
    std::fs::create_dir(dir.join("sub"))?;
    std::fs::write(dir.join("sub/inner"), b"x")?;
    std::os::unix::fs::symlink("a.txt", dir.join("link"))?;
    let v = show(&lp, &dir)?;
    let got: Vec<(String, DirentType, u64)> = v
        .into_iter()
        .map(|(e, s)| (e.name.to_string_lossy().into_owned(), e.kind, s))
        .collect();
    let want = [
        ("a.txt", DirentType::File, 5),
        ("b.bin", DirentType::File, 1000),
        ("link", DirentType::Symlink, 5),
    ];
    for (n, k, s) in want {
        assert!(got.contains(&(n.to_string(), k, s)), "{n} in {got:?}");
    }
    assert!(got
        .iter()
        .any(|(n, k, _)| n == "sub" && *k == DirentType::Directory));
    assert_eq!(got.len(), 4, "the entries of the top directory only");
    std::fs::remove_dir_all(&dir)?;
    println!("ok: 4 entries listed and checked");
    Ok(())
}
