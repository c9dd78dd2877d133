// Starting a request through the runtime takes the `start` closure on trust (that
// it calls the libuv function that starts the request): safe code cannot call it.
// A `start` that starts nothing left the request struct uninitialised, and the
// synchronous form then ran `uv_fs_req_cleanup` on it (valgrind: a jump on
// uninitialised values; stale pointers freed); a struct type that is no request
// got the request's `data` written past it.
use uv::runtime::loop_request::{no_context, run_sync, submit};

fn main() {
    let lp = uv::Loop::new().unwrap();
    let _: uv::Result<()> = run_sync::<uv::Fs, (), (), _>(&lp, "x", |_, _, _| Ok(()), no_context, (), |_, _, _| 0);
    let _ = submit::<uv::Fs, (), (), _, _>(
        &lp,
        "x",
        |_, _, _| Ok(()),
        no_context,
        |slot| Ok(slot.write(())),
        |_| {},
        |_, _, _, _| 0,
    );
    let t = uv::Timer::new(&lp).unwrap();
    let _ = uv::runtime::submit::<u8, uv::Timer, _, ()>(&t, &"x", (), |_, _| {}, |_, _, _| 0);
}
