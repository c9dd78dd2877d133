//! The TCP handle, generated from `spec/handles/tcp.toml`, and its hand-written part:
//! closing with a reset.

use libuv_sys2 as sys;

use crate::error::Result;
use crate::handle::HandleKind;
use crate::AddressFamily;

uv_macros::handle!("spec/handles/tcp.toml");

impl Tcp {
    /// The socket's address family: `None` while it has no socket or is not bound
    /// (from `local_addr`).
    pub fn family(&self) -> Result<Option<AddressFamily>> {
        crate::addr::family_from(self.local_addr())
    }

    /// Closes the connection with a TCP reset (RST) instead of the normal closing
    /// handshake (`uv_tcp_close_reset`); the peer sees `ECONNRESET`. Like `close`, the
    /// memory goes after the loop runs the close. `ClosedHandle` when already closing;
    /// libuv refuses (`EINVAL`) a handle whose write side was shut down.
    pub fn close_reset(&self) -> Result<()> {
        self.typed().close_via("uv_tcp_close_reset", |raw, cb| {
            // SAFETY: the handle is open (checked by close_via); libuv calls `cb`, our
            // close callback, once the handle is closed.
            unsafe { sys::uv_tcp_close_reset(raw, cb) }
        })
    }
}

/// `Tcp` from a `std` socket on a loop (a `&Loop` or a `&LoopHandle`):
/// `Tcp::try_from((&lp, listener))`. The socket is handed back on error.
macro_rules! tcp_from_std {
    ($($std:ty),*) => {$(
        impl TryFrom<(&crate::LoopHandle, $std)> for Tcp {
            type Error = crate::Rejected<$std>;

            fn try_from((lp, s): (&crate::LoopHandle, $std)) -> std::result::Result<Tcp, Self::Error> {
                let tcp = match Tcp::new(lp) {
                    Ok(h) => h,
                    Err(e) => return Err(crate::Rejected::new(e, s)),
                };
                tcp.open(s).map_err(|r| r.map(<$std>::from))?;
                Ok(tcp)
            }
        }

        impl TryFrom<(&crate::Loop, $std)> for Tcp {
            type Error = crate::Rejected<$std>;

            fn try_from((lp, s): (&crate::Loop, $std)) -> std::result::Result<Tcp, Self::Error> {
                Tcp::try_from((&**lp, s))
            }
        }
    )*};
}

tcp_from_std!(std::net::TcpStream, std::net::TcpListener);
