//! What a thread's loops leave behind once they are gone: nothing of their
//! executors. One test in its own binary, with a counting allocator: the memory
//! kept for dropped loops' `Async` handles (`uv::AsyncSender::kept_memory`) is
//! process-wide, and another test's loops taking or giving it back meanwhile would
//! move this thread's count.

use uv::Loop;
use uv_tests::alloc_count::{live_here, PerThread};

#[global_allocator]
static ALLOCATOR: PerThread = PerThread;

/// A loop's executor registers itself in a per-thread table, so that wakers find
/// it; once the thread's last executor is gone the table keeps no memory (a
/// fuzzer finding: the table kept its buffer, one allocation outliving every loop
/// of the thread).
#[test]
fn a_thread_whose_loops_are_gone_keeps_nothing_of_their_executors() {
    // Process-wide statics (libuv's, the runtime's) are made by first loops on
    // another thread: two at once, as below, so that the memory they keep for
    // their `Async` handles (each executor has one) serves the loops below, which
    // then allocate none of it.
    std::thread::spawn(|| {
        let a = Loop::new().unwrap();
        let b = Loop::new().unwrap();
        assert_eq!(a.block_on(async { 1 }).unwrap(), 1);
        assert_eq!(b.block_on(async { 1 }).unwrap(), 1);
    })
    .join()
    .unwrap();
    let kept = uv::AsyncSender::kept_memory();
    let (before, after) = std::thread::spawn(|| {
        let before = live_here();
        {
            let a = Loop::new().unwrap();
            let b = Loop::new().unwrap();
            assert_eq!(a.block_on(async { 2 }).unwrap(), 2);
            let j = b.spawn_local(async { 3 }).unwrap();
            assert_eq!(b.block_on(j).unwrap(), Ok(3));
        }
        (before, live_here())
    })
    .join()
    .unwrap();
    assert_eq!(after, before, "allocations the thread's loops left behind");
    assert_eq!(
        uv::AsyncSender::kept_memory(),
        kept,
        "the kept memory was reused"
    );
}
