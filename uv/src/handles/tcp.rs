//! The TCP handle, generated from `spec/handles/tcp.toml`, and its hand-written part:
//! closing with a reset.

use libuv_sys2 as sys;

use crate::error::Result;
use crate::{AddressFamily, StatusCode};

uv_macros::handle!("../spec/handles/tcp.toml");

impl Tcp {
    /// The socket's address family: `None` while it has no socket or is not bound
    /// (from `sockname`).
    pub fn family(&self) -> Result<Option<AddressFamily>> {
        match self.sockname() {
            Ok(a) => Ok(Some(crate::addr::family_of(&a))),
            Err(e)
                if e.kind() != crate::Category::ClosedHandle
                    && matches!(e.code(), StatusCode::EBADF | StatusCode::EINVAL) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Closes the connection with a TCP reset (RST) instead of the normal closing
    /// handshake (`uv_tcp_close_reset`); the peer sees `ECONNRESET`. Like `close`, the
    /// memory goes after the loop runs the close. `ClosedHandle` when already closing;
    /// libuv refuses (`EINVAL`) a handle whose write side was shut down.
    pub fn close_reset(&self) -> Result<()> {
        self.inner.close_via("uv_tcp_close_reset", |raw, cb| {
            // SAFETY: the handle is open (checked by close_via); libuv calls `cb`, our
            // close callback, once the handle is closed.
            unsafe { sys::uv_tcp_close_reset(raw, cb) }
        })
    }
}
