//! The pipe handle, generated from `spec/handles/pipe.toml`, and conversions from
//! the `std` Unix socket types.

uv_macros::handle!("spec/handles/pipe.toml");

impl Pipe {
    /// A new pipe able to pass handles (IPC): `Pipe::new(lp, true)`.
    pub fn new_ipc(lp: &crate::LoopHandle) -> crate::Result<Pipe> {
        Pipe::new(lp, true)
    }

    /// Takes the next handle this IPC pipe received (the one `pending_type`
    /// names) as its descriptor, and moves on to the next: for the kinds no stream
    /// can `accept`, a UDP socket (`Udp::open` takes it), a terminal (`Tty::new`),
    /// a file, or `HandleType::Unknown`. Until taken, such a handle stays first in
    /// line, with every handle received after it waiting behind. Give the
    /// descriptor to a handle, or drop it to close it.
    ///
    /// `EAGAIN` when none is pending; `EINVAL` on a pipe without IPC, and for a
    /// TCP socket or a pipe (`HandleType::Tcp`, `HandleType::NamedPipe`: `accept`
    /// takes those, and keeps the library's watch over a socket that a handle of
    /// this process may listen on or read, as the one that sent it). The
    /// descriptor is a copy of the one received (close-on-exec), made before the
    /// received one is closed: when it cannot be made (`EMFILE`, ...), that is the
    /// error. A refused call leaves the handle pending.
    #[cfg(unix)]
    pub fn accept_fd(&self) -> crate::Result<std::os::fd::OwnedFd> {
        crate::stream::accept_fd(self)
    }
}

/// `Pipe` (without IPC) from a `std` Unix socket on a loop (a `&Loop` or a
/// `&LoopHandle`): `Pipe::try_from((&lp, stream))`. The socket is handed back on error.
#[cfg(unix)]
macro_rules! pipe_from_std {
    ($($std:ty),*) => {$(
        impl TryFrom<(&crate::LoopHandle, $std)> for Pipe {
            type Error = crate::Rejected<$std>;

            fn try_from((lp, s): (&crate::LoopHandle, $std)) -> std::result::Result<Pipe, Self::Error> {
                let pipe = match Pipe::new(lp, false) {
                    Ok(h) => h,
                    Err(e) => return Err(crate::Rejected::new(e, s)),
                };
                pipe.open(s).map_err(|r| r.map(<$std>::from))?;
                Ok(pipe)
            }
        }

        impl TryFrom<(&crate::Loop, $std)> for Pipe {
            type Error = crate::Rejected<$std>;

            fn try_from((lp, s): (&crate::Loop, $std)) -> std::result::Result<Pipe, Self::Error> {
                Pipe::try_from((&**lp, s))
            }
        }
    )*};
}

#[cfg(unix)]
pipe_from_std!(
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixListener
);
