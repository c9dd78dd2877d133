// A `Request` (here of a thread-pool job) points into its loop's memory: its
// `cancel` and `Drop` belong on the loop's thread, not on the job's.
fn must_be_send<T: Send>(_: T) {}

fn main() {
    let lp = uv::Loop::new().unwrap();
    let req = lp.queue_work(|| 1, |_| {}).unwrap();
    must_be_send(req);
}
