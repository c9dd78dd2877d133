//! The memory kept for the `Async` handles of dropped loops (their senders may
//! still be used): a loop made later takes it before it allocates, so that it does
//! not grow with the number of loops. One test in its own binary, so that no other
//! loop takes or gives memory meanwhile.

use uv::{Async, AsyncSender, Loop};

/// Makes a loop with `n` handles and a sender for each, drops it, and hands back
/// the senders.
fn loop_with(n: usize) -> Vec<AsyncSender> {
    let lp = Loop::new().unwrap();
    let pairs: Vec<_> = (0..n)
        .map(|_| Async::with_sender(&lp, |_| {}).unwrap())
        .collect();
    let senders = pairs.iter().map(|(_, s)| s.clone()).collect();
    drop(pairs);
    drop(lp);
    senders
}

#[test]
fn dropped_loops_memory_is_kept_once_and_reused() {
    assert_eq!(AsyncSender::kept_memory(), (0, 0));
    // 40 handles: two chunks of the table (32 and 64 cells).
    let first = loop_with(40);
    let (n, bytes) = AsyncSender::kept_memory();
    // Two chunks, and the list that holds them.
    assert_eq!(n, 3);
    assert!(bytes >= 96 * std::mem::size_of::<uv::sys::uv_async_t>());
    // Loops made later take the chunks back, and give them back when dropped: the
    // memory kept stays the same, and every sender of every loop is refused.
    let mut stale = first;
    for _ in 0..5 {
        stale.extend(loop_with(40));
        assert_eq!(AsyncSender::kept_memory(), (n, bytes));
    }
    // A loop with more handles takes them and makes one chunk more.
    stale.extend(loop_with(100));
    let (n2, bytes2) = AsyncSender::kept_memory();
    assert_eq!(n2, n + 1);
    assert!(bytes2 > bytes);
    for s in &stale {
        assert_eq!(s.send().unwrap_err().kind(), uv::Category::ClosedHandle);
    }
}
