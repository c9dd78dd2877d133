// A `uv::File` is closed through its loop when the last owner goes: it cannot be
// shared with another thread.
fn must_be_sync<T: Sync>(_: &T) {}

fn main() {
    let lp = uv::Loop::new().unwrap();
    let file = uv::Fs::open_sync(&lp, "/dev/null", uv::OpenFlags::RDONLY, 0).unwrap();
    must_be_sync(&file);
}
