//! Handle types, each generated from its file in `spec/handles/` by `uv_macros::handle!`,
//! with hand-written parts where the spec says `manual`.

pub(crate) mod async_;
mod check;
mod fs_event;
mod fs_poll;
mod idle;
mod pipe;
mod poll;
mod prepare;
mod process;
mod signal;
mod tcp;
mod timer;
mod tty;
pub(crate) mod udp;

pub use async_::{Async, AsyncSender, CallLater};
pub use check::Check;
pub use fs_event::FsEvent;
pub use fs_poll::FsPoll;
pub use idle::Idle;
pub use pipe::Pipe;
pub use poll::Poll;
pub use prepare::Prepare;
pub use process::{
    disable_stdio_inheritance, kill, process_exists, Process, ProcessOptions, Stdio, STDIO_MAX,
};
pub use signal::Signal;
pub use tcp::Tcp;
pub use timer::Timer;
pub use tty::{guess_handle, Tty};
pub use udp::{Datagram, Udp};
