//! The values of libuv's internal handle flags (its `src/uv-common.h`, not part of
//! `uv.h`) that the runtime reads or writes in a handle's `flags`. They are not
//! API: a libuv upgrade may move them, which would make the runtime read or set
//! the wrong mark. `tests/tests/upgrade.rs` checks every one against the
//! `uv-common.h` of the libuv that `libuv-sys2` vendors, so such an upgrade fails
//! the tests (see README, "After a libuv upgrade").

/// The flag `uv_is_active` reports (read inline, `handle.rs`).
pub(crate) const UV_HANDLE_ACTIVE: u32 = 0x0000_0004;
/// A stream read its end (`settle_read_watch`, `stream.rs`, puts it back).
#[cfg(unix)]
pub(crate) const UV_HANDLE_READ_EOF: u32 = 0x0000_0800;
/// A stream libuv takes as readable (set for one call by `settle_read_watch`).
#[cfg(unix)]
pub(crate) const UV_HANDLE_READABLE: u32 = 0x0000_4000;
/// A stream libuv takes as writable (cleared with `UV_HANDLE_READABLE` when a
/// read of an IPC pipe fails, as libuv's read does: `read_cb_ipc`, `stream.rs`).
#[cfg(unix)]
pub(crate) const UV_HANDLE_WRITABLE: u32 = 0x0000_8000;
/// A terminal libuv could not reopen writes synchronously (`contracts.rs`).
pub(crate) const UV_HANDLE_BLOCKING_WRITES: u32 = 0x0010_0000;
/// A UDP handle's socket is IPv6 (set by the `mark_ipv6` hook, `handles/udp.rs`).
#[cfg(unix)]
pub(crate) const UV_HANDLE_IPV6: u32 = 0x0040_0000;
/// A signal handle's one-shot mark (read and cleared by `hooks.rs`).
pub(crate) const UV_SIGNAL_ONE_SHOT: u32 = 0x0200_0000;

/// Every flag above, by its name in `uv-common.h`.
pub const ALL: &[(&str, u32)] = &[
    ("UV_HANDLE_ACTIVE", UV_HANDLE_ACTIVE),
    #[cfg(unix)]
    ("UV_HANDLE_READ_EOF", UV_HANDLE_READ_EOF),
    #[cfg(unix)]
    ("UV_HANDLE_READABLE", UV_HANDLE_READABLE),
    #[cfg(unix)]
    ("UV_HANDLE_WRITABLE", UV_HANDLE_WRITABLE),
    ("UV_HANDLE_BLOCKING_WRITES", UV_HANDLE_BLOCKING_WRITES),
    #[cfg(unix)]
    ("UV_HANDLE_IPV6", UV_HANDLE_IPV6),
    ("UV_SIGNAL_ONE_SHOT", UV_SIGNAL_ONE_SHOT),
];
