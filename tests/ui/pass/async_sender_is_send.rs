// `AsyncSender` and `CallLater` are the two values made to cross threads: both are
// `Send + Sync`, and both can be moved into another thread.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn is_send_sync<T: Send + Sync>() {}

fn main() {
    is_send_sync::<uv::AsyncSender>();
    is_send_sync::<uv::CallLater>();

    let lp = uv::Loop::new().unwrap();
    let wakeups = Arc::new(AtomicUsize::new(0));
    let w = wakeups.clone();
    let a = uv::Async::new(&lp, move |a| {
        w.fetch_add(1, Ordering::SeqCst);
        a.close();
    })
    .unwrap();
    let sender = a.sender().unwrap();
    let later = lp.call_later_sender().unwrap();
    std::thread::spawn(move || {
        later.call(|| {}).unwrap();
        sender.send().unwrap();
    })
    .join()
    .unwrap();
    lp.run(uv::RunMode::Default).unwrap();
    assert_eq!(wakeups.load(Ordering::SeqCst), 1);
}
