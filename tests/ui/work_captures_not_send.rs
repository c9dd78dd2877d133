// A job on the thread pool runs on another thread: it cannot take the loop, a
// file or a directory stream (their reference counts are not atomic, and libuv's
// loop is not thread-safe).
fn main() {
    let lp = uv::Loop::new().unwrap();
    let h = lp.handle();
    let _ = lp.queue_work(move || h.is_closed(), |_| {});
    let f = uv::Fs::open_sync(&lp, "/dev/null", uv::OpenFlags::RDONLY, 0).unwrap();
    let _ = lp.queue_work(move || drop(f), |_| {});
    let d = uv::Fs::opendir_sync(&lp, "/").unwrap();
    let _ = uv::future::queue_work(&lp, move || drop(d));
}
