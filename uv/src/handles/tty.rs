//! The terminal handle, generated from `spec/handles/tty.toml`, and its hand-written
//! parts: the window size (two out-parameters) and the process-wide functions.

use libuv_sys2 as sys;

use crate::error::{check, Result};
use crate::handle::HandleKind;
use crate::{HandleType, TtyVtermState};

uv_macros::handle!("spec/handles/tty.toml");

impl Tty {
    /// The terminal's size in columns and rows (`uv_tty_get_winsize`).
    pub fn winsize(&self) -> Result<(i32, i32)> {
        let raw = self.typed().raw("uv_tty_get_winsize")?;
        let (mut width, mut height) = (0, 0);
        // SAFETY: the handle is open; both out-pointers are valid.
        let rc = unsafe { sys::uv_tty_get_winsize(raw, &mut width, &mut height) };
        check(rc, "uv_tty_get_winsize")?;
        Ok((width, height))
    }

    /// Restores the mode every terminal had before `set_mode` changed it
    /// (`uv_tty_reset_mode`); safe to call at exit, from any thread.
    pub fn reset_mode() -> Result<()> {
        // SAFETY: no preconditions; libuv guards it with its own lock.
        let rc = unsafe { sys::uv_tty_reset_mode() };
        check(rc, "uv_tty_reset_mode")
    }

    /// Whether libuv emulates virtual-terminal sequences in Windows consoles
    /// (`uv_tty_get_vterm_state`); `ENOTSUP` elsewhere.
    pub fn vterm_state() -> Result<TtyVtermState> {
        let mut state: sys::uv_tty_vtermstate_t = 0;
        // SAFETY: a valid out-pointer.
        let rc = unsafe { sys::uv_tty_get_vterm_state(&mut state) };
        check(rc, "uv_tty_get_vterm_state")?;
        Ok(TtyVtermState::from_raw(state as i32))
    }

    /// Overrides libuv's detection of virtual-terminal support (`uv_tty_set_vterm_state`;
    /// Windows only, a no-op elsewhere).
    pub fn set_vterm_state(state: TtyVtermState) {
        // SAFETY: any value is accepted; unknown ones are ignored by libuv.
        unsafe { sys::uv_tty_set_vterm_state(state.raw() as sys::uv_tty_vtermstate_t) };
    }
}

/// What kind of handle libuv would use for `fd` (`uv_guess_handle`): `Tty`, `NamedPipe`,
/// `Tcp`, `Udp`, `File`, or `Unknown` (also for negative descriptors).
pub fn guess_handle(fd: crate::RawFd) -> HandleType {
    if fd < 0 {
        return HandleType::Unknown;
    }
    // SAFETY: libuv only inspects the descriptor (fstat / getsockopt).
    HandleType::from_raw(unsafe { sys::uv_guess_handle(fd) } as i32)
}
