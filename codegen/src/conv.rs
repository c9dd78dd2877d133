//! The conversion table: every conversion a spec file may name, described once.
//!
//! [`TABLE`] holds what each conversion is — its spec name, the extra key it needs,
//! its Rust type, the C types the cross-check accepts, where it may appear
//! (argument, result, callback argument, property) and what it checks before the C
//! call. The loader parses conversions from it, the validator enforces its
//! positions (a misuse is a spec error at `file:line:col`, never a rustc error),
//! the cross-check reads its C types, and the README's table is rendered from it
//! ([`markdown_table`]; a test keeps `spec/README.md` equal to it). The code each
//! conversion emits (Rust type, to-C and from-C expressions, the fuzzer's value) is
//! the `impl Conv` below, in this file too.

use proc_macro2::TokenStream;
use quote::quote;

use crate::emit::ident;
use crate::headers::HeaderModel;

/// A conversion between a C value and a Rust value, as parsed from a spec file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conv {
    /// `duration_ms`.
    DurationMs,
    /// `duration_ms_u32`.
    DurationMsU32,
    /// `duration_s`.
    DurationS,
    /// `bool`.
    Bool,
    /// `i32`.
    I32,
    /// `u8`.
    U8,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `usize`.
    Usize,
    /// `signum`.
    Signum,
    /// `fd`.
    Fd,
    /// `socket`.
    Socket,
    /// `enum` with `type`: a generated plain enum, by Rust name.
    Enum(String),
    /// `flags` with `type`: a generated flag set, by Rust name.
    Flags(String),
    /// `status`.
    Status,
    /// `callback` with `callback`: a user callback stored in the named slot.
    Callback(String),
    /// `socket_addr`.
    SocketAddr,
    /// `c_str_path`.
    CStrPath,
    /// `socket_path`.
    SocketPath,
    /// `c_str_path_opt`.
    CStrPathOpt,
    /// `c_str`.
    CStr,
    /// `c_str_opt`.
    CStrOpt,
    /// `ip_addr`.
    IpAddr,
    /// `ip_addr_opt`.
    IpAddrOpt,
    /// `c_str_path_len`.
    CStrPathLen,
    /// `socket_name`.
    SocketName,
    /// `stat`.
    Stat,
    /// `request_callback`.
    RequestCallback,
    /// `owned_fd` with `kind`.
    OwnedFd(FdKind),
    /// `borrowed_fd` with `kind`.
    BorrowedFd(FdKind),
    /// `i64`.
    I64,
    /// `uid`.
    Uid,
    /// `gid`.
    Gid,
    /// `file`.
    File,
    /// `file_offset`.
    FileOffset,
    /// `file_size`.
    FileSize,
    /// `system_time`.
    SystemTime,
    /// `read_buf`.
    ReadBuf,
    /// `write_data`.
    WriteData,
    /// `dir`.
    Dir,
    /// `unused`.
    Unused,
}

/// What kind of descriptor an `owned_fd` or `borrowed_fd` argument must be; checked
/// before the C call (libuv aborts on some wrong kinds later, inside `run`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    /// Anything; libuv checks it itself.
    Any,
    /// A TCP socket.
    StreamSocket,
    /// A UDP socket.
    DgramSocket,
    /// A FIFO, Unix stream socket or terminal.
    Pipe,
    /// As `Pipe`, and a Unix stream socket when the `uv_pipe_t` handle the method
    /// is called on was made with `ipc` (handles pass only over sockets). Read from
    /// the handle, so only on a method of a `uv_pipe_t` handle (`uv_pipe_open`).
    IpcAwarePipe,
}

impl FdKind {
    /// The names the spec uses.
    pub const NAMES: &'static [&'static str] = &[
        "any",
        "stream_socket",
        "dgram_socket",
        "pipe",
        "ipc_aware_pipe",
    ];
    /// The kinds, in the order of [`FdKind::NAMES`].
    pub const ALL: &'static [FdKind] = &[
        FdKind::Any,
        FdKind::StreamSocket,
        FdKind::DgramSocket,
        FdKind::Pipe,
        FdKind::IpcAwarePipe,
    ];

    /// From the spec's name.
    pub fn from_name(s: &str) -> Option<FdKind> {
        Some(match s {
            "any" => FdKind::Any,
            "stream_socket" => FdKind::StreamSocket,
            "dgram_socket" => FdKind::DgramSocket,
            "pipe" => FdKind::Pipe,
            "ipc_aware_pipe" => FdKind::IpcAwarePipe,
            _ => return None,
        })
    }

    /// The runtime's variant name (`uv::runtime::FdKind::…`).
    pub fn variant(self) -> &'static str {
        match self {
            FdKind::Any => "Any",
            FdKind::StreamSocket => "StreamSocket",
            FdKind::DgramSocket => "DgramSocket",
            FdKind::Pipe => "Pipe",
            FdKind::IpcAwarePipe => "IpcAwarePipe",
        }
    }

    /// Whether the check reads the handle the method is called on (the generated
    /// code then calls the runtime's `…_for` checks with it).
    pub fn reads_handle(self) -> bool {
        self == FdKind::IpcAwarePipe
    }
}

/// Where a conversion may appear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// An argument of a constructor or method.
    Arg,
    /// A method's `returns`.
    Result,
    /// An argument of a `[[callback]]`.
    CallbackArg,
    /// A `[[property]]`'s value.
    Property,
    /// An argument of a request file's function (values the request keeps).
    RequestArg,
}

impl Position {
    /// How the README and messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Position::Arg => "an argument",
            Position::Result => "a result",
            Position::CallbackArg => "a callback argument",
            Position::Property => "a property",
            Position::RequestArg => "an argument of a request function",
        }
    }
}

/// The extra key a conversion needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// None.
    None,
    /// `type = "T"`, a plain enum.
    EnumType,
    /// `type = "T"`, a flag set.
    FlagsType,
    /// `callback = "slot"`.
    Slot,
    /// `kind = "…"` (optional, default `any`).
    FdKind,
}

/// The C types a conversion accepts, as bindgen spells them (spaces removed).
#[derive(Clone, Copy, Debug)]
pub enum CTypes {
    /// Exactly these.
    Exact(&'static [&'static str]),
    /// `c_int`, `c_uint` or any enum type of uv.h.
    EnumLike,
    /// The slot's (or the request's) callback typedef.
    Slot,
}

/// One row of the table.
#[derive(Debug)]
pub struct ConvDef {
    /// The spec's name.
    pub name: &'static str,
    /// The extra key it needs.
    pub param: Param,
    /// The Rust type, as the README shows it.
    pub rust: &'static str,
    /// The C types it accepts.
    pub c_types: CTypes,
    /// Where it may appear.
    pub positions: &'static [Position],
    /// What it checks or means; the README's notes.
    pub notes: &'static str,
}

use Position::{Arg, CallbackArg, Property, RequestArg, Result as Res};

const ALL: &[Position] = &[Arg, Res, CallbackArg, Property];
const ARG_ONLY: &[Position] = &[Arg];
const CB_ONLY: &[Position] = &[CallbackArg];
const REQ_ONLY: &[Position] = &[RequestArg];
const INT: CTypes = CTypes::Exact(&["c_int"]);
const UINT: CTypes = CTypes::Exact(&["c_uint"]);
const C_STR: CTypes = CTypes::Exact(&["*constc_char"]);
const FD_TYPES: CTypes = CTypes::Exact(&["c_int", "uv_os_fd_t", "uv_file", "uv_os_sock_t"]);

/// Every conversion.
pub static TABLE: &[ConvDef] = &[
    ConvDef {
        name: "duration_ms",
        param: Param::None,
        rust: "`std::time::Duration`",
        c_types: CTypes::Exact(&["u64"]),
        positions: ALL,
        notes: "Milliseconds (`uint64_t`), a fraction of a millisecond rounded up (a timer never fires early, and a repeat under 1 ms is not 0: no repeat); saturates at `u64::MAX`.",
    },
    ConvDef {
        name: "duration_ms_u32",
        param: Param::None,
        rust: "`std::time::Duration`",
        c_types: UINT,
        positions: ALL,
        notes: "Milliseconds as an `unsigned int` (an interval). As an argument, more than `u32::MAX` ms gives `EINVAL`.",
    },
    ConvDef {
        name: "duration_s",
        param: Param::None,
        rust: "`std::time::Duration`",
        c_types: UINT,
        positions: ALL,
        notes: "Whole seconds; the fraction is dropped. As an argument, more than `u32::MAX` seconds gives `EINVAL`, and so does under one second (or over `max`) while the `bool` argument named by `min_1s_if` is `true`.",
    },
    ConvDef {
        name: "bool",
        param: Param::None,
        rust: "`bool`",
        c_types: INT,
        positions: ALL,
        notes: "Non-zero is `true`.",
    },
    ConvDef {
        name: "i32",
        param: Param::None,
        rust: "`i32`",
        c_types: INT,
        positions: ALL,
        notes: "",
    },
    ConvDef {
        name: "u8",
        param: Param::None,
        rust: "`u8`",
        c_types: INT,
        positions: ALL,
        notes: "For values C takes as an `int` but that fit a byte (a time to live).",
    },
    ConvDef {
        name: "u32",
        param: Param::None,
        rust: "`u32`",
        c_types: UINT,
        positions: ALL,
        notes: "",
    },
    ConvDef {
        name: "u64",
        param: Param::None,
        rust: "`u64`",
        c_types: CTypes::Exact(&["u64"]),
        positions: ALL,
        notes: "",
    },
    ConvDef {
        name: "usize",
        param: Param::None,
        rust: "`usize`",
        c_types: CTypes::Exact(&["usize"]),
        positions: ALL,
        notes: "`size_t`.",
    },
    ConvDef {
        name: "signum",
        param: Param::None,
        rust: "`i32`",
        c_types: INT,
        positions: ALL,
        notes: "A raw signal number; prefer `enum` with `type = \"Signum\"`.",
    },
    ConvDef {
        name: "fd",
        param: Param::None,
        rust: "`uv::RawFd`",
        c_types: CTypes::Exact(&["c_int", "uv_os_fd_t", "uv_file"]),
        positions: ALL,
        notes: "As an argument, a negative value gives `EBADF`. Only for descriptors libuv neither keeps nor closes; see `owned_fd` and `borrowed_fd`.",
    },
    ConvDef {
        name: "socket",
        param: Param::None,
        rust: "`uv::RawSocket`",
        c_types: CTypes::Exact(&["uv_os_sock_t"]),
        positions: ALL,
        notes: "As `fd`, for `uv_os_sock_t`.",
    },
    ConvDef {
        name: "enum",
        param: Param::EnumType,
        rust: "`uv::T`",
        c_types: CTypes::EnumLike,
        positions: ALL,
        notes: "`T` must be a plain enum. As an argument, a value the spec does not know (`T::Other(_)`) gives `EINVAL`; results keep unknown values as `T::Other`.",
    },
    ConvDef {
        name: "flags",
        param: Param::FlagsType,
        rust: "`uv::T`",
        c_types: CTypes::EnumLike,
        positions: ALL,
        notes: "`T` must be a flag set. As an argument, bits outside its members (or outside `allow`) give `EINVAL`; results keep unknown bits.",
    },
    ConvDef {
        name: "status",
        param: Param::None,
        rust: "`uv::Result<()>`",
        c_types: INT,
        positions: CB_ONLY,
        notes: "A callback's status (a method's status is `returns = \"status\"`).",
    },
    ConvDef {
        name: "callback",
        param: Param::Slot,
        rust: "`impl FnMut(&Self, args…) + 'static`",
        c_types: CTypes::Slot,
        positions: ARG_ONLY,
        notes: "Stored in the named `[[callback]]` slot; placed last in Rust.",
    },
    ConvDef {
        name: "request_callback",
        param: Param::None,
        rust: "`impl FnOnce(&Self, uv::Result<()>) + 'static`",
        c_types: CTypes::Slot,
        positions: ARG_ONLY,
        notes: "The request's callback typedef (first parameter `*mut <request>`). Only in methods with `request`.",
    },
    ConvDef {
        name: "socket_addr",
        param: Param::None,
        rust: "`std::net::SocketAddr`",
        c_types: CTypes::Exact(&["*constsockaddr"]),
        positions: ARG_ONLY,
        notes: "IPv6 flow info and scope id are kept. (A `socket_addr` result is read through out-parameters: `returns = \"socket_addr\"`.)",
    },
    ConvDef {
        name: "c_str_path",
        param: Param::None,
        rust: "`impl AsRef<Path>`",
        c_types: C_STR,
        positions: ARG_ONLY,
        notes: "A NUL byte in it gives `EINVAL`.",
    },
    ConvDef {
        name: "socket_path",
        param: Param::None,
        rust: "`impl AsRef<Path>`",
        c_types: C_STR,
        positions: ARG_ONLY,
        notes: "A Unix socket's path (on Windows, a pipe name): as `c_str_path`, and on Unix a path that does not fit a socket name (`sun_path`) with a NUL after it gives `EINVAL` (libuv would cut a longer one short, and read past one that fills `sun_path`).",
    },
    ConvDef {
        name: "c_str_path_opt",
        param: Param::None,
        rust: "`Option<&Path>`",
        c_types: C_STR,
        positions: CB_ONLY,
        notes: "A C string libuv passes to a callback, or NULL (`None`); borrowed for the callback's duration.",
    },
    ConvDef {
        name: "c_str_path_len",
        param: Param::None,
        rust: "`impl AsRef<Path>`",
        c_types: C_STR,
        positions: ARG_ONLY,
        notes: "Two C parameters: `*const c_char` then `size_t`, the name and its length (NUL bytes allowed, e.g. Linux abstract sockets).",
    },
    ConvDef {
        name: "socket_name",
        param: Param::None,
        rust: "`impl AsRef<Path>`",
        c_types: C_STR,
        positions: ARG_ONLY,
        notes: "A Unix socket's name given with its length: as `c_str_path_len`, and on Unix a name that does not start with a NUL byte (not an abstract socket) and does not fit `sun_path` with a NUL after it gives `EINVAL` (libuv would cut it to a name with no NUL, whose `strlen` in `uv_pipe_getsockname` reads past the address).",
    },
    ConvDef {
        name: "c_str",
        param: Param::None,
        rust: "`&str`",
        c_types: C_STR,
        positions: ARG_ONLY,
        notes: "A NUL byte in it gives `EINVAL`.",
    },
    ConvDef {
        name: "c_str_opt",
        param: Param::None,
        rust: "`Option<&str>`",
        c_types: C_STR,
        positions: ARG_ONLY,
        notes: "`None` is NULL; a NUL byte gives `EINVAL`.",
    },
    ConvDef {
        name: "ip_addr",
        param: Param::None,
        rust: "`std::net::IpAddr`",
        c_types: C_STR,
        positions: ARG_ONLY,
        notes: "The address, formatted as text for libuv to parse (IPv6 without a scope id).",
    },
    ConvDef {
        name: "ip_addr_opt",
        param: Param::None,
        rust: "`Option<std::net::IpAddr>`",
        c_types: C_STR,
        positions: ARG_ONLY,
        notes: "An interface, by one of its addresses; `None` is NULL (any). IPv6 goes with the name of the interface that has the address (`addr%name`): libuv takes an IPv6 interface from the scope id it parses there and ignores the address, so without it every IPv6 address meant the default interface. An IPv6 address no interface has gives `EADDRNOTAVAIL`.",
    },
    ConvDef {
        name: "stat",
        param: Param::None,
        rust: "`uv::Stat`",
        c_types: CTypes::Exact(&["*constuv_stat_t"]),
        positions: CB_ONLY,
        notes: "A `uv_stat_t` libuv passes to a callback, copied into a `uv::Stat` (times as `SystemTime`); NULL gives `Stat::default()`.",
    },
    ConvDef {
        name: "owned_fd",
        param: Param::FdKind,
        rust: "`impl Into<OwnedFd>`",
        c_types: FD_TYPES,
        positions: ARG_ONLY,
        notes: "A descriptor libuv takes over and closes, checked for its `kind`. The function returns `Result<T, uv::Rejected<OwnedFd>>`: the descriptor is handed back on error. Once the handle has it, the open files it shares with the process's descriptors 0 to 2 are counted until the handle closes (`Stdio::Inherit` of those is then `EINVAL`). Also generates `unsafe fn <name>_raw` taking a `RawFd` (with the same count). One per function.",
    },
    ConvDef {
        name: "borrowed_fd",
        param: Param::FdKind,
        rust: "`S: AsFd + 'static`",
        c_types: FD_TYPES,
        positions: ARG_ONLY,
        notes: "A descriptor libuv watches but does not close, checked for its `kind`. The handle keeps `S` until it is closed, so the descriptor stays open; `Result<T, uv::Rejected<S>>`; also `unsafe fn <name>_raw`. One per function.",
    },
    ConvDef {
        name: "i64",
        param: Param::None,
        rust: "`i64`",
        c_types: CTypes::Exact(&["i64"]),
        positions: ARG_ONLY,
        notes: "`int64_t` (a length or offset libuv checks itself).",
    },
    ConvDef {
        name: "uid",
        param: Param::None,
        rust: "`u32`",
        c_types: CTypes::Exact(&["uv_uid_t"]),
        positions: ARG_ONLY,
        notes: "A user id (`uv_uid_t`); `u32::MAX` (-1) leaves it unchanged.",
    },
    ConvDef {
        name: "gid",
        param: Param::None,
        rust: "`u32`",
        c_types: CTypes::Exact(&["uv_gid_t"]),
        positions: ARG_ONLY,
        notes: "A group id (`uv_gid_t`); `u32::MAX` (-1) leaves it unchanged.",
    },
    ConvDef {
        name: "file",
        param: Param::None,
        rust: "`&uv::File`",
        c_types: CTypes::Exact(&["uv_file"]),
        positions: REQ_ONLY,
        notes: "An open file's descriptor; the request keeps it open until it completes (dropping or closing the `File` meanwhile closes nothing under it).",
    },
    ConvDef {
        name: "file_offset",
        param: Param::None,
        rust: "`Option<u64>`",
        c_types: CTypes::Exact(&["i64"]),
        positions: REQ_ONLY,
        notes: "`None` is the current position (-1); past `i64::MAX` gives `EINVAL`.",
    },
    ConvDef {
        name: "file_size",
        param: Param::None,
        rust: "`u64`",
        c_types: CTypes::Exact(&["i64"]),
        positions: REQ_ONLY,
        notes: "A size or an explicit offset in a file (`int64_t`); past `i64::MAX` gives `EINVAL`.",
    },
    ConvDef {
        name: "system_time",
        param: Param::None,
        rust: "`impl Into<uv::FileTime>` (a `SystemTime`, a `Timespec`, `FileTime::Now` or `FileTime::Omit`)",
        c_types: CTypes::Exact(&["f64"]),
        positions: REQ_ONLY,
        notes: "Seconds since the epoch as a `double` (negative before it); now is `UV_FS_UTIME_NOW` (infinity), omit is `UV_FS_UTIME_OMIT` (NaN).",
    },
    ConvDef {
        name: "read_buf",
        param: Param::None,
        rust: "`Vec<u8>`",
        c_types: CTypes::Exact(&["*constuv_buf_t"]),
        positions: REQ_ONLY,
        notes: "Two C parameters (`const uv_buf_t[]`, `unsigned int`): one buffer, the `Vec`'s spare capacity, kept until completion; the `bytes` result gives the `Vec` back with what was read appended.",
    },
    ConvDef {
        name: "write_data",
        param: Param::None,
        rust: "`impl Into<uv::WriteData>`",
        c_types: CTypes::Exact(&["*constuv_buf_t"]),
        positions: REQ_ONLY,
        notes: "Two C parameters (`const uv_buf_t[]`, `unsigned int`): the buffers, kept until completion; more than `u32::MAX` is `EINVAL`.",
    },
    ConvDef {
        name: "dir",
        param: Param::None,
        rust: "`&uv::Dir`",
        c_types: CTypes::Exact(&["*mutuv_dir_t"]),
        positions: REQ_ONLY,
        notes: "An open directory stream with an entry array of its batch size, kept until after the request's cleanup; a second read while one is in flight gives `EBUSY`.",
    },
    ConvDef {
        name: "unused",
        param: Param::None,
        rust: "(none)",
        c_types: INT,
        positions: REQ_ONLY,
        notes: "A parameter libuv ignores (scandir's `flags`): no Rust parameter; 0.",
    },
];

/// How a completed request gives its value: `result = "…"` on the functions of a
/// request file. The reader is `uv::runtime::loop_request::<reader_mod>::<reader>`.
#[derive(Debug)]
pub struct ResultDef {
    /// The spec's name.
    pub name: &'static str,
    /// The request struct it reads.
    pub c_type: &'static str,
    /// The runtime module of the reader.
    pub reader_mod: &'static str,
    /// The runtime reader.
    pub reader: &'static str,
    /// The Rust type, as tokens' text (`uv::` is the runtime crate).
    pub rust: &'static str,
    /// The conversion of the argument whose kept value the reader also takes (a
    /// read's buffer), if any.
    pub from_arg: Option<&'static str>,
    /// The C functions whose request has what the reader reads (empty: any): a
    /// reader on another function's request would read fields it never set (a
    /// `statbuf` left uninitialised), take a number for a descriptor it owns, or a
    /// pointer into the request for memory it frees.
    pub c_fns: &'static [&'static str],
    /// What it gives.
    pub notes: &'static str,
}

/// Every request result.
pub static REQUEST_RESULTS: &[ResultDef] = &[
    ResultDef {
        name: "status",
        c_type: "uv_fs_t",
        reader_mod: "fs_results",
        reader: "unit",
        rust: "()",
        from_arg: None,
        c_fns: &[],
        notes: "Success, or the error of a negative `result`.",
    },
    ResultDef {
        name: "count",
        c_type: "uv_fs_t",
        reader_mod: "fs_results",
        reader: "count",
        rust: "usize",
        from_arg: None,
        c_fns: &[],
        notes: "The non-negative `result` (bytes, entries).",
    },
    ResultDef {
        name: "stat",
        c_type: "uv_fs_t",
        reader_mod: "fs_results",
        reader: "stat",
        rust: "uv::Stat",
        from_arg: None,
        c_fns: &["uv_fs_stat", "uv_fs_lstat", "uv_fs_fstat"],
        notes: "The `statbuf` the request filled in.",
    },
    ResultDef {
        name: "path",
        c_type: "uv_fs_t",
        reader_mod: "fs_results",
        reader: "path",
        rust: "std::path::PathBuf",
        from_arg: None,
        c_fns: &["uv_fs_mkdtemp"],
        notes: "The request's `path` (what `mkdtemp` made of its template).",
    },
    ResultDef {
        name: "ptr_path",
        c_type: "uv_fs_t",
        reader_mod: "fs_results",
        reader: "ptr_path",
        rust: "std::path::PathBuf",
        from_arg: None,
        c_fns: &["uv_fs_realpath", "uv_fs_readlink"],
        notes: "The C string in the request's `ptr` (`realpath`, `readlink`).",
    },
    ResultDef {
        name: "file",
        c_type: "uv_fs_t",
        reader_mod: "fs_results",
        reader: "file",
        rust: "uv::File",
        from_arg: None,
        c_fns: &["uv_fs_open"],
        notes: "The new descriptor in `result`, owned (`open`).",
    },
    ResultDef {
        name: "file_path",
        c_type: "uv_fs_t",
        reader_mod: "fs_results",
        reader: "file_path",
        rust: "(uv::File, std::path::PathBuf)",
        from_arg: None,
        c_fns: &["uv_fs_mkstemp"],
        notes: "The new descriptor and the request's `path` (`mkstemp`).",
    },
    ResultDef {
        name: "bytes",
        c_type: "uv_fs_t",
        reader_mod: "fs_results",
        reader: "bytes",
        rust: "Vec<u8>",
        from_arg: Some("read_buf"),
        c_fns: &["uv_fs_read"],
        notes: "The `read_buf` argument's `Vec` with the `result` bytes read appended.",
    },
    ResultDef {
        name: "statfs",
        c_type: "uv_fs_t",
        reader_mod: "fs_results",
        reader: "statfs",
        rust: "uv::StatFs",
        from_arg: None,
        c_fns: &["uv_fs_statfs"],
        notes: "The `uv_statfs_t` in the request's `ptr`.",
    },
    ResultDef {
        name: "dirents",
        c_type: "uv_fs_t",
        reader_mod: "fs_results",
        reader: "dirents",
        rust: "Vec<uv::DirEntry>",
        from_arg: None,
        c_fns: &["uv_fs_scandir"],
        notes: "Every entry of a scandir (`uv_fs_scandir_next` until `UV_EOF`).",
    },
    ResultDef {
        name: "dir",
        c_type: "uv_fs_t",
        reader_mod: "fs_results",
        reader: "dir",
        rust: "uv::Dir",
        from_arg: None,
        c_fns: &["uv_fs_opendir"],
        notes: "The `uv_dir_t` in the request's `ptr`, owned (`opendir`).",
    },
    ResultDef {
        name: "dir_entries",
        c_type: "uv_fs_t",
        reader_mod: "fs_results",
        reader: "dir_entries",
        rust: "Vec<uv::DirEntry>",
        from_arg: Some("dir"),
        c_fns: &["uv_fs_readdir"],
        notes:
            "The `result` entries a readdir put in the `dir` argument's array (none at the end).",
    },
];

/// The request result named `name`.
pub fn find_result(name: &str) -> Option<&'static ResultDef> {
    REQUEST_RESULTS.iter().find(|d| d.name == name)
}

impl ResultDef {
    /// The Rust type.
    pub fn rust_ty(&self, rt: &TokenStream) -> TokenStream {
        let rt = rt.to_string().replace(' ', "");
        self.rust
            .replace("uv::", &format!("{rt}::"))
            .parse()
            .expect("the table's Rust types parse")
    }

    /// The reader function.
    pub fn reader_path(&self, rt: &TokenStream) -> TokenStream {
        let m = ident(self.reader_mod);
        let f = ident(self.reader);
        quote!(#rt::runtime::loop_request::#m::#f)
    }
}

/// The integer `v` (an enum's value or a flag set's bits, already checked) as the
/// integer type of the C parameter it is passed to (`uv::runtime::int_arg`:
/// `TryFrom`, which integers implement and pointers do not, so that the
/// parameter's type is checked by rustc where no header is read, `uv::handle!`); a
/// value the type cannot hold is `EINVAL`.
fn c_int_arg(v: &TokenStream, op: &str, rt: &TokenStream) -> TokenStream {
    quote!(#rt::runtime::int_arg(#v, #op)?)
}

/// The row named `name`.
pub fn find(name: &str) -> Option<&'static ConvDef> {
    TABLE.iter().find(|d| d.name == name)
}

/// Every name, for messages.
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|d| d.name)
}

impl ConvDef {
    /// Whether it may appear at `p`.
    pub fn allows(&self, p: Position) -> bool {
        self.positions.contains(&p)
    }

    /// The positions it may appear at, for messages.
    pub fn allowed(&self) -> String {
        let v: Vec<_> = self.positions.iter().map(|p| p.describe()).collect();
        v.join(", ")
    }

    /// Builds the conversion from its extra key (`type`, `callback`, `kind`),
    /// already checked present where needed.
    pub fn make(&self, extra: Option<String>, kind: FdKind) -> Conv {
        let extra = || extra.clone().unwrap_or_default();
        match self.name {
            "duration_ms" => Conv::DurationMs,
            "duration_ms_u32" => Conv::DurationMsU32,
            "duration_s" => Conv::DurationS,
            "bool" => Conv::Bool,
            "i32" => Conv::I32,
            "u8" => Conv::U8,
            "u32" => Conv::U32,
            "u64" => Conv::U64,
            "usize" => Conv::Usize,
            "signum" => Conv::Signum,
            "fd" => Conv::Fd,
            "socket" => Conv::Socket,
            "enum" => Conv::Enum(extra()),
            "flags" => Conv::Flags(extra()),
            "status" => Conv::Status,
            "callback" => Conv::Callback(extra()),
            "request_callback" => Conv::RequestCallback,
            "socket_addr" => Conv::SocketAddr,
            "c_str_path" => Conv::CStrPath,
            "socket_path" => Conv::SocketPath,
            "c_str_path_opt" => Conv::CStrPathOpt,
            "c_str_path_len" => Conv::CStrPathLen,
            "socket_name" => Conv::SocketName,
            "c_str" => Conv::CStr,
            "c_str_opt" => Conv::CStrOpt,
            "ip_addr" => Conv::IpAddr,
            "ip_addr_opt" => Conv::IpAddrOpt,
            "stat" => Conv::Stat,
            "owned_fd" => Conv::OwnedFd(kind),
            "borrowed_fd" => Conv::BorrowedFd(kind),
            "i64" => Conv::I64,
            "uid" => Conv::Uid,
            "gid" => Conv::Gid,
            "file" => Conv::File,
            "file_offset" => Conv::FileOffset,
            "file_size" => Conv::FileSize,
            "system_time" => Conv::SystemTime,
            "read_buf" => Conv::ReadBuf,
            "write_data" => Conv::WriteData,
            "dir" => Conv::Dir,
            "unused" => Conv::Unused,
            other => unreachable!("conversion `{other}` is in the table but not built"),
        }
    }
}

/// The README's conversion table, rendered from [`TABLE`].
pub fn markdown_table() -> String {
    let mut s = String::from(
        "| `conv` | Rust type | Accepted C type(s) | Where | Notes |\n|---|---|---|---|---|\n",
    );
    for d in TABLE {
        let name = match d.param {
            Param::None => format!("`{}`", d.name),
            Param::EnumType | Param::FlagsType => format!("`{}` + `type = \"T\"`", d.name),
            Param::Slot => format!("`{}` + `callback = \"slot\"`", d.name),
            Param::FdKind => format!("`{}` (+ `kind`)", d.name),
        };
        let c = match d.c_types {
            CTypes::Exact(ts) => ts
                .iter()
                .map(|t| {
                    format!(
                        "`{}`",
                        t.replace("*const", "*const ").replace("*mut", "*mut ")
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            CTypes::EnumLike => "`c_int`, `c_uint`, or any enum type of uv.h".into(),
            CTypes::Slot => "the callback typedef".into(),
        };
        let at: Vec<_> = d
            .positions
            .iter()
            .map(|p| match p {
                Position::Arg => "arg",
                Position::Result => "result",
                Position::CallbackArg => "callback arg",
                Position::Property => "property",
                Position::RequestArg => "request arg",
            })
            .collect();
        s.push_str(&format!(
            "| {name} | {} | {c} | {} | {} |\n",
            d.rust,
            at.join(", "),
            d.notes
        ));
    }
    s
}

impl Conv {
    /// The spec's name.
    pub fn name(&self) -> &'static str {
        match self {
            Conv::DurationMs => "duration_ms",
            Conv::DurationMsU32 => "duration_ms_u32",
            Conv::DurationS => "duration_s",
            Conv::Bool => "bool",
            Conv::I32 => "i32",
            Conv::U8 => "u8",
            Conv::U32 => "u32",
            Conv::U64 => "u64",
            Conv::Usize => "usize",
            Conv::Signum => "signum",
            Conv::Fd => "fd",
            Conv::Socket => "socket",
            Conv::Enum(_) => "enum",
            Conv::Flags(_) => "flags",
            Conv::Status => "status",
            Conv::Callback(_) => "callback",
            Conv::RequestCallback => "request_callback",
            Conv::SocketAddr => "socket_addr",
            Conv::CStrPath => "c_str_path",
            Conv::SocketPath => "socket_path",
            Conv::CStrPathOpt => "c_str_path_opt",
            Conv::CStrPathLen => "c_str_path_len",
            Conv::SocketName => "socket_name",
            Conv::CStr => "c_str",
            Conv::CStrOpt => "c_str_opt",
            Conv::IpAddr => "ip_addr",
            Conv::IpAddrOpt => "ip_addr_opt",
            Conv::Stat => "stat",
            Conv::OwnedFd(_) => "owned_fd",
            Conv::BorrowedFd(_) => "borrowed_fd",
            Conv::I64 => "i64",
            Conv::Uid => "uid",
            Conv::Gid => "gid",
            Conv::File => "file",
            Conv::FileOffset => "file_offset",
            Conv::FileSize => "file_size",
            Conv::SystemTime => "system_time",
            Conv::ReadBuf => "read_buf",
            Conv::WriteData => "write_data",
            Conv::Dir => "dir",
            Conv::Unused => "unused",
        }
    }

    /// Its row of the table.
    pub fn def(&self) -> &'static ConvDef {
        find(self.name()).expect("every conversion has a row in the table")
    }

    /// How many C parameters it stands for.
    pub fn c_params(&self) -> usize {
        match self {
            Conv::CStrPathLen | Conv::SocketName | Conv::ReadBuf | Conv::WriteData => 2,
            _ => 1,
        }
    }

    /// Whether it stands for a descriptor whose ownership the call settles.
    pub fn is_fd_ownership(&self) -> bool {
        matches!(self, Conv::OwnedFd(_) | Conv::BorrowedFd(_))
    }

    /// Whether the C type `c_ty` (bindgen's spelling, spaces removed) fits it.
    /// `slot_type` is the callback typedef for `callback` and `request_callback`.
    pub fn accepts(&self, c_ty: &str, h: &HeaderModel, slot_type: Option<&str>) -> bool {
        match self.def().c_types {
            CTypes::Exact(ts) => ts.contains(&c_ty),
            CTypes::EnumLike => matches!(c_ty, "c_int" | "c_uint") || h.enums.contains_key(c_ty),
            CTypes::Slot => Some(c_ty) == slot_type,
        }
    }

    /// The Rust type of a value (argument, result, callback argument, property);
    /// `None` for the conversions that are not a plain value (callbacks and
    /// descriptors, which the emitter handles itself).
    pub fn rust_ty(&self, rt: &TokenStream) -> Option<TokenStream> {
        Some(match self {
            Conv::DurationMs | Conv::DurationMsU32 | Conv::DurationS => {
                quote!(::std::time::Duration)
            }
            Conv::Bool => quote!(bool),
            Conv::U8 => quote!(u8),
            Conv::I32 | Conv::Signum => quote!(i32),
            Conv::U32 => quote!(u32),
            Conv::U64 => quote!(u64),
            Conv::Usize => quote!(usize),
            Conv::Fd => quote!(#rt::RawFd),
            Conv::Socket => quote!(#rt::RawSocket),
            Conv::Enum(t) | Conv::Flags(t) => {
                let t = ident(t);
                quote!(#rt::#t)
            }
            Conv::Status => quote!(#rt::Result<()>),
            Conv::SocketAddr => quote!(::std::net::SocketAddr),
            Conv::CStrPath | Conv::SocketPath | Conv::CStrPathLen | Conv::SocketName => {
                quote!(impl ::core::convert::AsRef<::std::path::Path>)
            }
            Conv::CStrPathOpt => quote!(::core::option::Option<&::std::path::Path>),
            Conv::CStr => quote!(&str),
            Conv::CStrOpt => quote!(::core::option::Option<&str>),
            Conv::IpAddr => quote!(::std::net::IpAddr),
            Conv::IpAddrOpt => quote!(::core::option::Option<::std::net::IpAddr>),
            Conv::Stat => quote!(#rt::Stat),
            Conv::I64 => quote!(i64),
            Conv::Uid | Conv::Gid => quote!(u32),
            Conv::File => quote!(&#rt::File),
            Conv::FileOffset => quote!(::core::option::Option<u64>),
            Conv::FileSize => quote!(u64),
            Conv::SystemTime => quote!(impl ::core::convert::Into<#rt::FileTime>),
            Conv::ReadBuf => quote!(::std::vec::Vec<u8>),
            Conv::WriteData => quote!(impl ::core::convert::Into<#rt::WriteData>),
            Conv::Dir => quote!(&#rt::Dir),
            // No Rust parameter (the request emitter passes 0).
            Conv::Unused => return None,
            Conv::Callback(_) | Conv::RequestCallback => return None,
            Conv::OwnedFd(_) | Conv::BorrowedFd(_) => return None,
        })
    }

    /// The C type of a trampoline parameter with this conversion (validated to be
    /// allowed as a callback argument before anything is emitted).
    pub fn callback_c_ty(&self, rt: &TokenStream) -> TokenStream {
        match self {
            Conv::Stat => quote!(*const #rt::sys::uv_stat_t),
            Conv::CStrPathOpt => quote!(*const ::core::ffi::c_char),
            Conv::U32 | Conv::DurationS | Conv::DurationMsU32 => quote!(::core::ffi::c_uint),
            Conv::U64 | Conv::DurationMs => quote!(u64),
            Conv::Usize => quote!(usize),
            _ => quote!(::core::ffi::c_int),
        }
    }

    /// The expression that turns the Rust value `e` into what the C call takes
    /// (for values: the binding the C argument is made from, see [`Conv::c_arg`]).
    /// For the path conversions (`c_str_path`, `socket_path`, `c_str_path_len`,
    /// `socket_name`), `e` is the `&Path`: the emitters take the argument's
    /// `as_ref` themselves, before anything is checked.
    /// `allow` and `min_1s_if` are the argument's keys; `min_1s_if` comes with the
    /// argument's `max` (`u32::MAX` when it has none).
    pub fn to_c(
        &self,
        e: &TokenStream,
        op: &str,
        rt: &TokenStream,
        allow: &[String],
        min_1s_if: Option<(&str, u32)>,
    ) -> TokenStream {
        match self {
            Conv::DurationMs => quote!(#rt::runtime::duration_to_ms(#e)),
            Conv::DurationMsU32 => quote!(#rt::runtime::duration_to_ms_u32(#e, #op)?),
            // The flag argument is converted after this one (conversions run in
            // reverse order), so it is still a `bool` here.
            Conv::DurationS => match min_1s_if {
                Some((flag, max)) => {
                    let flag = ident(flag);
                    quote!(#rt::runtime::duration_to_s_if(#e, #flag, #max, #op)?)
                }
                None => quote!(#rt::runtime::duration_to_s(#e, false, #op)?),
            },
            // A count that must be at least one, and at most `max`, while the named
            // flag is on.
            Conv::U32 if min_1s_if.is_some() => {
                let (flag, max) = min_1s_if.unwrap_or_default();
                let flag = ident(flag);
                quote!(#rt::runtime::count_if(#e, #flag, #max, #op)?)
            }
            Conv::U8 | Conv::Bool => quote!(::core::primitive::i32::from(#e)),
            Conv::IpAddr => quote!(#rt::runtime::c_ip(#e)),
            Conv::IpAddrOpt => {
                quote!(#e.map(|a| #rt::runtime::c_interface_ip(a, #op)).transpose()?)
            }
            Conv::Fd | Conv::Socket => quote!(#rt::runtime::fd(#e, #op)?),
            Conv::SocketAddr => quote!(#rt::runtime::SockAddr::new(&#e)),
            Conv::CStrPath => quote!(#rt::runtime::c_path(#e, #op)?),
            Conv::SocketPath => quote!(#rt::runtime::c_socket_path(#e, #op)?),
            Conv::CStr => quote!(#rt::runtime::c_str(#e, #op)?),
            Conv::CStrOpt => quote!(#e.map(|s| #rt::runtime::c_str(s, #op)).transpose()?),
            Conv::CStrPathLen => quote!(#rt::runtime::path_bytes(#e)),
            Conv::SocketName => quote!(#rt::runtime::socket_name(#e, #op)?),
            Conv::File => quote!(#rt::runtime::loop_request::FileKeep::new(#e)),
            Conv::FileOffset => quote!(#rt::runtime::loop_request::file_offset(#e, #op)?),
            Conv::FileSize => quote!(#rt::runtime::loop_request::file_size(#e, #op)?),
            Conv::SystemTime => {
                quote!(#rt::runtime::loop_request::file_time(::core::convert::Into::into(#e)))
            }
            Conv::ReadBuf => quote!(#rt::runtime::loop_request::ReadBuf::new(#e)),
            Conv::WriteData => {
                quote!(#rt::runtime::loop_request::WriteBufs::new(::core::convert::Into::into(#e), #op)?)
            }
            Conv::Dir => quote!(#rt::runtime::loop_request::DirUse::new(#e, #op)?),
            // Unknown values never reach libuv: `EINVAL`. The value goes to the C
            // parameter through `TryFrom`, which only integer types implement: an
            // `as _` would also turn it into a pointer for a pointer parameter (a
            // spec of another crate has no header check), which libuv then reads.
            Conv::Enum(t) => {
                let t = ident(t);
                let v = quote!(#rt::runtime::enum_arg(
                    #e.raw(),
                    !::core::matches!(#rt::#t::from_raw(#e.raw()), #rt::#t::Other(_)),
                    #op,
                )?);
                c_int_arg(&v, op, rt)
            }
            // Bits outside the known (or allowed) members never reach libuv: `EINVAL`.
            Conv::Flags(t) => {
                let t = ident(t);
                let allowed = if allow.is_empty() {
                    quote!(#rt::#t::all().bits())
                } else {
                    let ms = allow.iter().map(|m| ident(m));
                    quote!(#( #rt::#t::#ms.bits() )|*)
                };
                c_int_arg(
                    &quote!(#rt::runtime::flags_arg(#e.bits(), #allowed, #op)?),
                    op,
                    rt,
                )
            }
            _ => quote!(#e),
        }
    }

    /// The C argument(s) made from the binding `name` that [`Conv::to_c`] produced.
    pub fn c_arg(&self, name: &TokenStream) -> TokenStream {
        match self {
            Conv::SocketAddr | Conv::CStrPath | Conv::SocketPath | Conv::CStr | Conv::IpAddr => {
                quote!(#name.as_ptr())
            }
            Conv::CStrOpt | Conv::IpAddrOpt => {
                quote!(#name.as_ref().map_or(::core::ptr::null(), |s| s.as_ptr()))
            }
            // A `char` pointer: a `cast()` to whatever the parameter is would also
            // pass the name where the C function takes another kind of pointer.
            Conv::CStrPathLen | Conv::SocketName => {
                quote!(#name.as_ptr().cast::<::core::ffi::c_char>(), #name.len() - 1)
            }
            Conv::File => quote!(#name.fd()),
            Conv::ReadBuf => quote!(#name.as_ptr(), 1),
            Conv::WriteData => quote!(#name.as_ptr(), #name.count()),
            Conv::Dir => quote!(#name.raw()),
            Conv::Unused => quote!(0),
            _ => quote!(#name),
        }
    }

    /// The type of the binding [`Conv::to_c`] makes, as a closure that is handed the
    /// binding names it (`_`, inferred from the C call, where [`Conv::c_arg`] passes
    /// the binding as it is; the type where `c_arg` calls its methods, which rustc
    /// can only look up on a known type).
    pub fn kept_ty(&self, rt: &TokenStream) -> TokenStream {
        let c_string = quote!(::std::ffi::CString);
        match self {
            Conv::SocketAddr => quote!(#rt::runtime::SockAddr),
            Conv::CStrPath | Conv::SocketPath => quote!(#rt::runtime::loop_request::ReqPath),
            Conv::CStr | Conv::IpAddr => c_string,
            Conv::CStrOpt | Conv::IpAddrOpt => quote!(::core::option::Option<#c_string>),
            Conv::CStrPathLen | Conv::SocketName => quote!(::std::vec::Vec<u8>),
            Conv::File => quote!(#rt::runtime::loop_request::FileKeep),
            Conv::ReadBuf => quote!(#rt::runtime::loop_request::ReadBuf),
            Conv::WriteData => quote!(#rt::runtime::loop_request::WriteBufs),
            Conv::Dir => quote!(#rt::runtime::loop_request::DirUse),
            _ => quote!(_),
        }
    }

    /// The expression that turns the C value `e` into the Rust value.
    pub fn from_c(&self, e: &TokenStream, op: &str, rt: &TokenStream) -> TokenStream {
        match self {
            Conv::DurationMs => quote!(#rt::runtime::ms_to_duration(#e)),
            Conv::DurationMsU32 => {
                quote!(::std::time::Duration::from_millis(::core::primitive::u64::from(#e)))
            }
            Conv::Bool => quote!(#e != 0),
            Conv::DurationS => {
                quote!(::std::time::Duration::from_secs(::core::primitive::u64::from(#e)))
            }
            Conv::U8 => quote!(#e as u8),
            Conv::Fd => quote!(#e as #rt::RawFd),
            Conv::Enum(t) => {
                let t = ident(t);
                quote!(#rt::#t::from_raw(#e as i32))
            }
            Conv::Flags(t) => {
                let t = ident(t);
                quote!(#rt::#t::from_bits_retain(#e as u32))
            }
            Conv::Status => quote!(#rt::runtime::status(#e, #op)),
            // Unsafe functions, called inside the trampoline's `unsafe` block (its
            // SAFETY comment states why): libuv passes NULL or a string / struct
            // that stays valid for the callback, which is all the borrow lives for.
            Conv::CStrPathOpt => quote!(#rt::runtime::opt_path(#e)),
            Conv::Stat => quote!(#rt::runtime::stat(#e)),
            _ => quote!(#e),
        }
    }

    /// What the fuzzer passes for an argument of this conversion: an expression
    /// over its context `cx`, or `None` for the conversions the fuzzer's emitter
    /// builds itself (callbacks, descriptors).
    pub fn fuzz_value(&self, rt: &TokenStream) -> Option<TokenStream> {
        Some(match self {
            Conv::DurationMs | Conv::DurationMsU32 | Conv::DurationS => quote!(cx.duration()),
            Conv::Bool => quote!(cx.flip()),
            Conv::I32 => quote!(cx.int_i32()),
            Conv::U8 => quote!(cx.int_u8()),
            Conv::U32 => quote!(cx.int_u32()),
            Conv::U64 => quote!(cx.int_u64()),
            Conv::Usize => quote!(cx.int_usize()),
            Conv::Signum => quote!(cx.signum().raw()),
            Conv::Fd | Conv::Socket => quote!(cx.raw_fd()),
            // Signals go through the fuzzer's list of signals it may send (and the
            // ones `UV_FUZZ_SKIP` leaves out).
            Conv::Enum(t) if t == "Signum" => quote!(cx.signum()),
            Conv::Enum(t) => {
                let t = ident(t);
                quote!(cx.enum_value(#rt::#t::ALL, #rt::#t::from_raw, #rt::#t::Other))
            }
            Conv::Flags(t) => {
                let t = ident(t);
                quote!(#rt::#t::from_bits_retain(cx.flag_bits(#rt::#t::all().bits())))
            }
            Conv::SocketAddr => quote!(cx.socket_addr()),
            Conv::CStrPath | Conv::SocketPath | Conv::CStrPathLen | Conv::SocketName => {
                quote!(cx.path())
            }
            Conv::CStr => quote!(cx.string()),
            Conv::CStrOpt => quote!(cx.opt_string()),
            Conv::IpAddr => quote!(cx.ip_addr()),
            Conv::IpAddrOpt => quote!(cx.opt_ip_addr()),
            // Callback arguments only (the validator refuses them elsewhere).
            Conv::Status | Conv::CStrPathOpt | Conv::Stat => return None,
            Conv::I64 => quote!(cx.int_u64() as i64),
            Conv::Uid | Conv::Gid => quote!(cx.int_u32()),
            // Request arguments: open files and directory streams from the fuzzer's
            // pools (made in its scratch directory on demand).
            Conv::File => quote!(cx.file()?),
            Conv::Dir => quote!(cx.dir_stream()?),
            Conv::FileOffset => quote!(cx.file_offset()),
            Conv::FileSize => quote!(cx.file_offset().unwrap_or(u64::MAX)),
            Conv::SystemTime => quote!(cx.system_time()),
            Conv::ReadBuf => quote!(cx.read_buf()),
            Conv::WriteData => quote!(cx.write_data(65_536)),
            // No Rust parameter.
            Conv::Unused => return None,
            Conv::Callback(_) | Conv::RequestCallback => return None,
            Conv::OwnedFd(_) | Conv::BorrowedFd(_) => return None,
        })
    }

    /// How the fuzzer passes its value `name` (a `String` for string conversions).
    pub fn fuzz_pass(&self, name: &TokenStream) -> TokenStream {
        match self {
            Conv::CStr => quote!(&#name),
            Conv::CStrOpt => quote!(#name.as_deref()),
            Conv::File | Conv::Dir => quote!(&#name),
            _ => quote!(#name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_builds_the_conversion_of_its_name() {
        for d in TABLE {
            let c = d.make(Some("T".into()), FdKind::Any);
            assert_eq!(c.name(), d.name);
            assert!(std::ptr::eq(c.def(), d));
        }
    }

    /// A closure handed the binding `to_c` made can only call methods on it when
    /// its type is named: every conversion whose C argument is more than the
    /// binding itself names it.
    #[test]
    fn a_binding_whose_methods_the_c_argument_calls_has_a_named_type() {
        let rt = quote!(::uv);
        let name = quote!(v);
        for d in TABLE {
            let c = d.make(Some("T".into()), FdKind::Any);
            let arg = c.c_arg(&name).to_string();
            let plain = arg == "v" || arg == "0";
            let named = c.kept_ty(&rt).to_string() != "_";
            assert!(plain || named, "{}: `{arg}` needs a kept_ty", d.name);
        }
    }

    #[test]
    fn names_are_unique() {
        let mut v: Vec<_> = names().collect();
        v.sort_unstable();
        let n = v.len();
        v.dedup();
        assert_eq!(v.len(), n);
    }
}

#[cfg(test)]
mod readme {
    const BEGIN: &str = "<!-- conversions: begin (rendered from codegen/src/conv.rs) -->\n";
    const END: &str = "<!-- conversions: end -->";

    /// `spec/README.md`'s conversion table is the table's rendering
    /// (`UV_BLESS=1 cargo test -p libuv-safe-codegen` rewrites it).
    #[test]
    fn spec_readme_shows_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/README.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
            panic!("spec/README.md lacks the conversion table markers");
        };
        let shown = &text[b + BEGIN.len()..e];
        let want = super::markdown_table();
        if shown != want {
            if std::env::var_os("UV_BLESS").is_some() {
                let new = format!("{}{want}{}", &text[..b + BEGIN.len()], &text[e..]);
                std::fs::write(&path, new).unwrap();
            } else {
                panic!(
                    "spec/README.md's conversion table differs from codegen/src/conv.rs (UV_BLESS=1 rewrites it):\n{want}"
                );
            }
        }
    }
}
