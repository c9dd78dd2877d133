//! The pipe handle, generated from `spec/handles/pipe.toml`, and conversions from
//! the `std` Unix socket types.

uv_macros::handle!("spec/handles/pipe.toml");

impl Pipe {
    /// After `open`: a socket taken over from the user may have other descriptors
    /// in this process; it is registered as the library's (`listen` refuses a
    /// socket that has descriptors the library does not hold).
    fn hold_opened_socket(&self) -> crate::Result<()> {
        #[cfg(unix)]
        crate::handle::hold_socket(self, true);
        Ok(())
    }

    /// A new pipe able to pass handles (IPC): `Pipe::new(lp, true)`.
    pub fn new_ipc(lp: &crate::LoopHandle) -> crate::Result<Pipe> {
        Pipe::new(lp, true)
    }

    /// `local_addr`'s check (spec `before`): see `refuse_unterminated_name`.
    fn refuse_unterminated_local_name(&self) -> crate::Result<()> {
        #[cfg(unix)]
        return self.refuse_unterminated_name("uv_pipe_getsockname", libc::getsockname);
        #[cfg(not(unix))]
        Ok(())
    }

    /// `peer_addr`'s check (spec `before`): see `refuse_unterminated_name`.
    fn refuse_unterminated_peer_name(&self) -> crate::Result<()> {
        #[cfg(unix)]
        return self.refuse_unterminated_name("uv_pipe_getpeername", libc::getpeername);
        #[cfg(not(unix))]
        Ok(())
    }

    /// `ENAMETOOLONG` when the socket's name (`get`: its own, or its peer's) is
    /// not abstract and fills `sun_path` with no NUL after it. Such a name is
    /// bound by another program (this library refuses to bind or connect to one):
    /// libuv takes its length with `strlen(sa.sun_path)` (unix/pipe.c,
    /// `uv__pipe_getsockpeername`), which then reads past the address on its
    /// stack, and copies the bytes found there out as part of the name. Other
    /// failures are left to libuv's call, which answers them.
    #[cfg(unix)]
    fn refuse_unterminated_name(
        &self,
        op: &'static str,
        get: unsafe extern "C" fn(
            libc::c_int,
            *mut libc::sockaddr,
            *mut libc::socklen_t,
        ) -> libc::c_int,
    ) -> crate::Result<()> {
        let raw = self.inner.raw(op)?;
        let mut fd: libuv_sys2::uv_os_fd_t = Default::default();
        // SAFETY: the handle is open and `fd` a valid out-pointer; uv_fileno only
        // reads the handle.
        if unsafe { libuv_sys2::uv_fileno(raw.cast(), &mut fd) } != 0 {
            return Ok(());
        }
        // SAFETY: an all-zero sockaddr_un is a valid value (plain integers).
        let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        // SAFETY: `get` is getsockname or getpeername, given the handle's
        // descriptor (open while the handle is) and an address buffer of `len`
        // bytes; the kernel writes at most `len` bytes into it.
        let rc = unsafe { get(fd, (&raw mut sa).cast(), &mut len) };
        if rc != 0 || sa.sun_family != libc::AF_UNIX as libc::sa_family_t {
            return Ok(());
        }
        if sa.sun_path[0] != 0 && !sa.sun_path.contains(&0) {
            return Err(crate::Error::new(crate::StatusCode::ENAMETOOLONG, op));
        }
        Ok(())
    }
}

/// `Pipe` (without IPC) from a `std` Unix socket on a loop:
/// `Pipe::try_from((&lp, stream))`. The socket is handed back on error.
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
    )*};
}

#[cfg(unix)]
pipe_from_std!(
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixListener
);
