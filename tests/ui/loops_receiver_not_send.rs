// A channel's `Receiver` is a handle of its loop: it stays on the loop's thread
// (the `Sender` is the part that crosses threads).
fn must_be_send<T: Send>(_: T) {}

fn main() {
    let lp = uv::Loop::new().unwrap();
    let (_tx, rx) = uv::channel(&lp, |_: u32| {}).unwrap();
    must_be_send(rx);
}
