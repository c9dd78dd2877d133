// Emptying a handle's slots is for its close callback: from a read callback of
// `read_start_with` it freed the buffer the callback was reading (a use after
// free in safe code). Safe code cannot call it, through the trait or on a
// stream's slots.
use uv::runtime::{HandleKind, Slots, StreamKind};
use uv::Stream as _;

fn main() {
    let lp = uv::Loop::new().unwrap();
    let pipe = uv::Pipe::new(&lp, false).unwrap();
    pipe.read_start_with(uv::PoolAllocator::new(4, 64), |p, _| {
        p.typed().slots().clear();
        uv::Pipe::stream_slots(p.typed().slots()).clear();
    })
    .unwrap();
}
