//! Spawning and reaping processes (libuv's `benchmark-spawn.c`, `spawn`): one child
//! at a time, `/bin/sh -c 'echo hello; exit 42'`, its stdout read through a created
//! pipe to the end; the next child starts once the process and the pipe handles of
//! the previous one are closed.
//!
//! Runs the safe `uv` version and a raw libuv-sys2 twin, each in its own process,
//! and prints CPU time, wall time and peak memory with the uv/raw ratios (see
//! `common/mod.rs` for the options). The children's own CPU time is not counted
//! (it is the same in both).

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CString};
use std::mem::MaybeUninit;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use uv::{sys, Stream as _};

mod common;

use common::{since, Bench, Outcome, Variant};

const NUM_SPAWNS: u64 = 1_000;
const SCRIPT: &str = "echo hello; exit 42";
const OUTPUT: &[u8] = b"hello\n";

fn main() -> ExitCode {
    common::main(&Bench {
        name: "spawn",
        unit: "processes",
        full_count: NUM_SPAWNS,
        note: "count = children that exited with 42 after writing \"hello\\n\".",
        expected: |n| n,
        run,
    })
}

fn run(variant: Variant, n: u64) -> Outcome {
    match variant {
        Variant::Raw => raw(n),
        Variant::Uv => safe(n),
    }
}

/// One child of the safe version; the next starts from the last close.
fn spawn_one(lp: &uv::LoopHandle, left: u64, ok: Rc<Cell<u64>>) {
    if left == 0 {
        return;
    }
    let out = uv::Pipe::new(lp, false).expect("uv::Pipe::new");
    let options = uv::ProcessOptions::new("/bin/sh")
        .args(["-c", SCRIPT])
        .stdout(uv::Stdio::pipe_from_child(&out));
    // Two handles to close per child: the next one starts after both.
    let open = Rc::new(Cell::new(2u8));
    let exited_42 = Rc::new(Cell::new(false));
    let output = Rc::new(RefCell::new(Vec::new()));
    let next = {
        let (lp, ok, open, exited_42, output) = (
            lp.clone(),
            ok.clone(),
            open.clone(),
            exited_42.clone(),
            output.clone(),
        );
        Rc::new(move || {
            open.set(open.get() - 1);
            if open.get() == 0 {
                if exited_42.get() && output.borrow().as_slice() == OUTPUT {
                    ok.set(ok.get() + 1);
                }
                spawn_one(&lp, left - 1, ok.clone());
            }
        })
    };
    let after_exit = next.clone();
    let e42 = exited_42.clone();
    uv::Process::spawn(lp, &options, move |p, status, signal| {
        e42.set(status == 42 && signal.is_none());
        let after = after_exit.clone();
        p.close_with(move |_| after());
    })
    .expect("uv::Process::spawn");
    out.read_start(move |pipe, data| match data {
        Ok(bytes) => output.borrow_mut().extend_from_slice(bytes),
        Err(_) => {
            let after = next.clone();
            pipe.close_with(move |_| after());
        }
    })
    .expect("read_start");
}

/// The safe version, written the way a user would.
fn safe(n: u64) -> Outcome {
    let lp = uv::Loop::new().expect("uv::Loop::new");
    let ok = Rc::new(Cell::new(0));
    let t = Instant::now();
    spawn_one(&lp.handle(), n, ok.clone());
    lp.run(uv::RunMode::Default).expect("uv::Loop::run");
    let run = since(t);
    drop(lp);
    Outcome {
        count: ok.get(),
        phases: vec![("run", run)],
    }
}

/// The raw twin's state, mirroring the C benchmark's statics; `data` of both
/// handles points at it.
struct Raw {
    lp: *mut sys::uv_loop_t,
    process: MaybeUninit<sys::uv_process_t>,
    out: MaybeUninit<sys::uv_pipe_t>,
    left: u64,
    ok: u64,
    open: u8,
    exited_42: bool,
    output: [u8; 1024],
    used: usize,
    program: CString,
    args: [CString; 2],
}

unsafe fn state<'a, T>(h: *mut T) -> &'a mut Raw {
    // SAFETY: (caller) `h` is one of the two handles, whose `data` is the Raw.
    unsafe { &mut *((*h.cast::<sys::uv_handle_t>()).data as *mut Raw) }
}

unsafe extern "C" fn closed(h: *mut sys::uv_handle_t) {
    // SAFETY: a handle of the twin; the Raw outlives the loop run.
    let s = unsafe { state(h) };
    s.open -= 1;
    if s.open == 0 {
        if s.exited_42 && &s.output[..s.used] == OUTPUT {
            s.ok += 1;
        }
        s.left -= 1;
        if s.left > 0 {
            // SAFETY: both handles of the previous child are closed.
            unsafe { raw_spawn(s) };
        }
    }
}

unsafe extern "C" fn exit_cb(p: *mut sys::uv_process_t, status: i64, signal: i32) {
    // SAFETY: the twin's process handle.
    let s = unsafe { state(p) };
    s.exited_42 = status == 42 && signal == 0;
    // SAFETY: an open handle, closed once.
    unsafe { sys::uv_close(p.cast(), Some(closed)) };
}

unsafe extern "C" fn alloc_cb(h: *mut sys::uv_handle_t, _size: usize, buf: *mut sys::uv_buf_t) {
    // SAFETY: the twin's pipe; `buf` is libuv's to fill.
    unsafe {
        let s = state(h);
        (*buf).base = s.output.as_mut_ptr().add(s.used).cast();
        (*buf).len = s.output.len() - s.used;
    }
}

unsafe extern "C" fn read_cb(h: *mut sys::uv_stream_t, n: isize, _buf: *const sys::uv_buf_t) {
    // SAFETY: the twin's pipe.
    let s = unsafe { state(h) };
    if n > 0 {
        s.used += n as usize;
    } else if n < 0 {
        // SAFETY: an open handle, closed once (at the end of the stream or on error).
        unsafe { sys::uv_close(h.cast(), Some(closed)) };
    }
}

/// Starts one child.
///
/// # Safety
/// `s` is the boxed twin state; its handles are closed (or never used).
unsafe fn raw_spawn(s: &mut Raw) {
    let sp: *mut Raw = s;
    let out = s.out.as_mut_ptr();
    let process = s.process.as_mut_ptr();
    let mut argv: [*mut c_char; 4] = [
        s.program.as_ptr().cast_mut(),
        s.args[0].as_ptr().cast_mut(),
        s.args[1].as_ptr().cast_mut(),
        std::ptr::null_mut(),
    ];
    // SAFETY: plain C data; all-zero is a valid, unset value.
    let mut stdio: [sys::uv_stdio_container_t; 2] = unsafe { std::mem::zeroed() };
    stdio[0].flags = sys::uv_stdio_flags_UV_IGNORE;
    stdio[1].flags = sys::uv_stdio_flags_UV_CREATE_PIPE | sys::uv_stdio_flags_UV_WRITABLE_PIPE;
    stdio[1].data.stream = out.cast();
    // SAFETY: plain C data; all-zero is a valid, empty options struct.
    let mut options: sys::uv_process_options_t = unsafe { std::mem::zeroed() };
    options.exit_cb = Some(exit_cb);
    options.file = s.program.as_ptr();
    options.args = argv.as_mut_ptr();
    options.stdio = stdio.as_mut_ptr();
    options.stdio_count = 2;
    s.open = 2;
    s.used = 0;
    s.exited_42 = false;
    // SAFETY: the loop is open; the handle structs stay put inside the box; libuv
    // copies the options during the call.
    unsafe {
        assert_eq!(sys::uv_pipe_init(s.lp, out, 0), 0, "uv_pipe_init");
        (*out).data = sp.cast();
        assert_eq!(sys::uv_spawn(s.lp, process, &options), 0, "uv_spawn");
        (*process).data = sp.cast();
        assert_eq!(
            sys::uv_read_start(out.cast(), Some(alloc_cb), Some(read_cb)),
            0,
            "uv_read_start"
        );
    }
}

/// The raw libuv-sys2 twin, mirroring the C benchmark.
fn raw(n: u64) -> Outcome {
    let mut lp_box: Box<MaybeUninit<sys::uv_loop_t>> = Box::new(MaybeUninit::uninit());
    let lp = lp_box.as_mut_ptr();
    // SAFETY: a boxed loop-sized allocation that does not move.
    assert_eq!(unsafe { sys::uv_loop_init(lp) }, 0, "uv_loop_init");
    let mut s = Box::new(Raw {
        lp,
        process: MaybeUninit::uninit(),
        out: MaybeUninit::uninit(),
        left: n,
        ok: 0,
        open: 0,
        exited_42: false,
        output: [0; 1024],
        used: 0,
        program: CString::new("/bin/sh").unwrap(),
        args: [CString::new("-c").unwrap(), CString::new(SCRIPT).unwrap()],
    });
    let t = Instant::now();
    if n > 0 {
        // SAFETY: a fresh state whose handles were never used.
        unsafe { raw_spawn(&mut s) };
    }
    // SAFETY: an initialised loop, not running; every handle is closed when it ends.
    unsafe { sys::uv_run(lp, sys::uv_run_mode_UV_RUN_DEFAULT) };
    let run = since(t);
    // SAFETY: no handles are left.
    assert_eq!(unsafe { sys::uv_loop_close(lp) }, 0, "uv_loop_close");
    drop(lp_box);
    Outcome {
        count: s.ok,
        phases: vec![("run", run)],
    }
}
