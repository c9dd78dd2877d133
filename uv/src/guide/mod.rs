//! A guide to `uv`: the concepts, then one runnable example per handle type and per
//! request kind. Every example on these pages is a test (`cargo test --doc`): it
//! runs and checks what it says.
//!
//! Read in this order:
//!
//! 1. [`event_loop`]: the loop, running it, stopping it, dropping it.
//! 2. [`handles`]: what a handle value is, closing, and **the drop rule**: which
//!    handles keep running after their last value is dropped.
//! 3. [`callbacks`]: why callbacks are `'static`, and the `Rc` pattern for the
//!    state they share.
//! 4. [`threads`]: what is `Send`, and the three ways into the loop from another
//!    thread (`AsyncSender`, `uv::channel`, `call_later`).
//! 5. [`errors`]: `uv::Error`, end of stream, cancelled requests, closed handles.
//! 6. [`panics`]: what happens when a callback panics.
//! 7. [`handle_types`]: an example for each of `Timer`, `Idle`, `Prepare`, `Check`,
//!    `Async`, `Signal`, `Poll`, `Tcp`, `Pipe`, `Tty`, `Udp`, `FsEvent`, `FsPoll`
//!    and `Process`.
//! 8. [`requests`]: an example for each request: connect, write, shutdown, UDP
//!    send, `getaddrinfo` and `getnameinfo`, and the file-system operations.
//! 9. [`processes`]: spawning children, their standard I/O, exit, signals and
//!    lifetime.
//! 10. [`thread_pool`]: work on libuv's thread pool (`queue_work`, with its panic
//!     rule), random bytes, and the system utilities (`uv::system`).
//! 11. [`async_await`]: the loop as an executor (`block_on`, `spawn_local`),
//!     futures and streams, and what dropping each of them does.
//! 12. [`performance`]: what handles, callbacks, writes, reads, requests and
//!     cross-thread wake-ups cost, and how to measure it.
//!
//! # Depending on it
//!
//! The package is called `libuv-safe` (the name `uv` is another project's on
//! crates.io); its library is called `uv`, so code writes `use uv::...`:
//!
//! ```toml
//! [dependencies]
//! libuv-safe = "0.1"
//! ```
//!
//! `libuv-sys2` builds the libuv 1.53 it vendors (or uses a system libuv 1.53.x
//! that pkg-config finds); the build needs a C compiler and, for bindgen, libclang
//! (Debian: `apt-get install libclang-dev`).
//!
//! # A first program
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//! use std::time::Duration;
//!
//! let lp = uv::Loop::new()?;
//! let ticks = Rc::new(Cell::new(0));
//! let seen = ticks.clone();
//! let timer = uv::Timer::new(&lp)?;
//! // First call after 1 ms, then every 1 ms, until the callback closes the timer.
//! timer.start(Duration::from_millis(1), Duration::from_millis(1), move |t| {
//!     seen.set(seen.get() + 1);
//!     if seen.get() == 3 {
//!         t.close();
//!     }
//! })?;
//! // `run` returns when nothing is left to do: here, once the timer is closed.
//! let more = lp.run(uv::RunMode::Default)?;
//! assert!(!more);
//! assert_eq!(ticks.get(), 3);
//! assert!(timer.is_closed());
//! # Ok::<(), uv::Error>(())
//! ```

#[doc = include_str!("event_loop.md")]
pub mod event_loop {}

#[doc = include_str!("handles.md")]
pub mod handles {}

#[doc = include_str!("callbacks.md")]
pub mod callbacks {}

#[doc = include_str!("threads.md")]
pub mod threads {}

#[doc = include_str!("errors.md")]
pub mod errors {}

#[doc = include_str!("panics.md")]
pub mod panics {}

#[doc = include_str!("handle_types.md")]
pub mod handle_types {}

#[doc = include_str!("requests.md")]
pub mod requests {}

#[doc = include_str!("processes.md")]
pub mod processes {}

#[doc = include_str!("thread_pool.md")]
pub mod thread_pool {}

#[doc = include_str!("async.md")]
pub mod async_await {}

#[doc = include_str!("performance.md")]
pub mod performance {}
