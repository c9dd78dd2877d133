//! Reading into buffers from a user allocator (`read_start_with`).

#![cfg(unix)]

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use uv::Stream as _;

use uv::{Loop, PoolAllocator, ReadAllocator, RunMode, StatusCode};
use uv_tests::net::pipe_and_std;

#[derive(Default)]
struct Counts {
    allocated: Cell<usize>,
    released: Cell<usize>,
}

struct Counting {
    counts: Rc<Counts>,
    size: usize,
    refuse: bool,
}

impl ReadAllocator for Counting {
    fn allocate(&mut self, _suggested: usize) -> Option<Box<[u8]>> {
        if self.refuse {
            return None;
        }
        self.counts.allocated.set(self.counts.allocated.get() + 1);
        Some(vec![0; self.size].into_boxed_slice())
    }

    fn release(&mut self, buf: Box<[u8]>) {
        assert_eq!(buf.len(), self.size);
        self.counts.released.set(self.counts.released.get() + 1);
    }
}

#[test]
fn reads_land_in_the_allocators_buffers_and_go_back() {
    let lp = Loop::new().unwrap();
    let (p, mut other) = pipe_and_std(&lp, false);
    let counts = Rc::new(Counts::default());
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    // 4-byte buffers: 10 bytes arrive in several reads.
    p.read_start_with(
        Counting {
            counts: counts.clone(),
            size: 4,
            refuse: false,
        },
        move |p, d| match d {
            Ok(d) => g.borrow_mut().extend_from_slice(d),
            Err(e) => {
                assert_eq!(e.code(), StatusCode::EOF);
                p.close();
            }
        },
    )
    .unwrap();
    other.write_all(b"0123456789").unwrap();
    drop(other);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*got.borrow(), b"0123456789");
    assert!(counts.allocated.get() >= 3, "{}", counts.allocated.get());
    assert_eq!(counts.allocated.get(), counts.released.get());
}

#[test]
fn a_pool_reuses_its_buffers() {
    let lp = Loop::new().unwrap();
    let (p, mut other) = pipe_and_std(&lp, false);
    let total = Rc::new(Cell::new(0));
    let t = total.clone();
    p.read_start_with(PoolAllocator::new(8, 2), move |p, d| match d {
        Ok(d) => t.set(t.get() + d.len()),
        Err(_) => p.close(),
    })
    .unwrap();
    other.write_all(&[7u8; 100]).unwrap();
    drop(other);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(total.get(), 100);
    let mut pool = PoolAllocator::new(8, 2);
    let a = pool.allocate(64).unwrap();
    assert_eq!(a.len(), 8);
    pool.release(a);
    assert_eq!(pool.free_buffers(), 1);
}

#[test]
fn a_refusing_allocator_gives_enobufs() {
    let lp = Loop::new().unwrap();
    let (p, mut other) = pipe_and_std(&lp, false);
    let errs = Rc::new(RefCell::new(Vec::new()));
    let e = errs.clone();
    p.read_start_with(
        Counting {
            counts: Rc::default(),
            size: 4,
            refuse: true,
        },
        move |p, d| {
            e.borrow_mut()
                .push(d.map(<[u8]>::len).map_err(|e| e.code()));
            p.close();
        },
    )
    .unwrap();
    other.write_all(b"x").unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(*errs.borrow(), vec![Err(StatusCode::ENOBUFS)]);
}

struct Panicking;

impl ReadAllocator for Panicking {
    fn allocate(&mut self, _suggested: usize) -> Option<Box<[u8]>> {
        panic!("allocator boom")
    }
}

#[test]
fn a_panicking_allocator_is_caught() {
    let lp = Loop::new().unwrap();
    let (p, mut other) = pipe_and_std(&lp, false);
    p.read_start_with(Panicking, |p, _| p.close()).unwrap();
    other.write_all(b"x").unwrap();
    let payload = catch_unwind(AssertUnwindSafe(|| lp.run(RunMode::Default))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"allocator boom"));
    // The read failed with ENOBUFS and the callback closed the pipe.
    lp.run(RunMode::Default).unwrap();
    assert!(p.is_closed());
}

#[test]
fn read_start_goes_back_to_the_loop_buffer() {
    let lp = Loop::new().unwrap();
    let (p, mut other) = pipe_and_std(&lp, false);
    let counts = Rc::new(Counts::default());
    p.read_start_with(
        Counting {
            counts: counts.clone(),
            size: 16,
            refuse: false,
        },
        |_, _| {},
    )
    .unwrap();
    p.read_stop().unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    p.read_start(move |p, d| {
        g.borrow_mut().extend_from_slice(d.unwrap());
        p.close();
    })
    .unwrap();
    other.write_all(b"hello").unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(&*got.borrow(), b"hello");
    // The one buffer fetched ahead by read_start_with went back to the allocator
    // when reading switched to the loop's buffer; nothing else was asked of it.
    assert_eq!(counts.allocated.get(), 1);
    assert_eq!(counts.released.get(), 1);
}
