// Values sent through a channel cross threads: an `Rc` cannot be one.
fn main() {
    let lp = uv::Loop::new().unwrap();
    let _ = uv::channel(&lp, |_: std::rc::Rc<u32>| {});
}
