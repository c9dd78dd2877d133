//! The spec model: plain data read from `spec/*.toml`, with the place each item
//! was written so that later passes can point at it.
//!
//! `load` reads files into this model and reports problems of form (unknown keys,
//! wrong types, missing keys); `validate` then checks the references between items.

mod load;
mod reader;
mod validate;

pub use load::{load_dir, load_file, SpecFile};
pub use reader::Sp;
pub use validate::validate;

use crate::diag::Loc;

/// Everything the spec directory says.
#[derive(Debug, Default)]
pub struct Spec {
    /// `status_codes.toml`.
    pub status_codes: Option<StatusCodes>,
    /// `errors.toml`: the error categories.
    pub categories: Vec<Category>,
    /// `enums/*.toml`.
    pub enums: Vec<EnumSpec>,
    /// `handles/*.toml`.
    pub handles: Vec<HandleSpec>,
    /// `requests/*.toml`.
    pub requests: Vec<RequestSpec>,
    /// `functions.toml`: functions bound by hand, and functions left out on purpose.
    pub functions: Vec<FunctionEntry>,
}

/// A C item the spec leaves out on purpose, with the reason.
#[derive(Clone, Debug)]
pub struct Ignore {
    /// The C name (`UV_ERRNO_MAX`).
    pub c: Sp<String>,
    /// Why it is left out.
    pub reason: String,
}

/// The status codes (`uv_errno_t`).
#[derive(Debug)]
pub struct StatusCodes {
    /// The C enum they come from.
    pub c_type: Sp<String>,
    /// The codes, in file order.
    pub codes: Vec<StatusCodeSpec>,
    /// C members that are not status codes.
    pub ignore: Vec<Ignore>,
    /// The file.
    pub loc: Loc,
}

/// One status code.
#[derive(Clone, Debug)]
pub struct StatusCodeSpec {
    /// The name without `UV_` (`EADDRINUSE`).
    pub name: Sp<String>,
    /// One-line description.
    pub doc: String,
    /// The error category the code belongs to; none means a plain error.
    pub category: Option<Sp<String>>,
    /// The `std::io::ErrorKind` it converts to, when not the category's.
    pub io_kind: Option<Sp<String>>,
}

/// One error category of the hierarchy.
#[derive(Clone, Debug)]
pub struct Category {
    /// Rust name (`AddressInUse`).
    pub name: Sp<String>,
    /// Parent categories (several where one error is two kinds of thing).
    pub parents: Vec<Sp<String>>,
    /// The `std::io::ErrorKind` its codes convert to, unless a code says otherwise.
    pub io_kind: Option<Sp<String>>,
    /// Description.
    pub doc: String,
    /// For errors raised by this library rather than by libuv: the status code they carry.
    pub library_code: Option<Sp<String>>,
    /// Message of a library error.
    pub message: Option<String>,
}

/// Whether an enum is a plain enumeration or a set of bit flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnumKind {
    /// One value of several.
    Enum,
    /// Any combination of bits.
    Flags,
}

/// A plain enum or flag set (`spec/enums/*.toml`).
#[derive(Clone, Debug)]
pub struct EnumSpec {
    /// Rust name.
    pub name: Sp<String>,
    /// Plain or flags.
    pub kind: EnumKind,
    /// The C enum whose every member it must cover, if it mirrors one.
    pub c_type: Option<Sp<String>>,
    /// Description.
    pub doc: String,
    /// Members.
    pub members: Vec<MemberSpec>,
    /// C members left out.
    pub ignore: Vec<Ignore>,
    /// The file.
    pub loc: Loc,
}

/// One enum member or flag.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    /// Rust name (`NoWait`, or `READABLE` for flags).
    pub name: Sp<String>,
    /// The C constant the value comes from (`UV_RUN_NOWAIT`, `SIGINT`).
    pub c: Sp<String>,
    /// Description.
    pub doc: String,
    /// Rust cfg predicate for members that exist on some platforms only (`windows`).
    pub cfg: Option<Sp<String>>,
}

pub use crate::conv::{Conv, FdKind};

/// A handle state libuv asserts on, which a method can require (`requires = [...]`).
/// Each is checked by the runtime function of the same name in `uv/src/contracts.rs`
/// before the C call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateRule {
    /// The spec's name, and the runtime function's.
    pub name: &'static str,
    /// The status code a violation gives.
    pub code: &'static str,
    /// What it means.
    pub doc: &'static str,
    /// The handle types it applies to: streams (`None`), or the libuv structs
    /// named.
    pub c_types: Option<&'static [&'static str]>,
    /// The C functions whose every generated call must check it: a method calling
    /// one of them without the state in its `requires` is an error (the assertion
    /// it guards would be reachable from safe code, in this crate's spec files as
    /// in another crate's).
    pub guards: &'static [&'static str],
}

impl StateRule {
    /// Every state a method may require.
    pub const ALL: &'static [StateRule] = &[
        StateRule {
            name: "not_connecting",
            code: "EALREADY",
            doc: "no connect request is in flight",
            c_types: None,
            guards: &["uv_tcp_connect", "uv_pipe_connect", "uv_pipe_connect2"],
        },
        StateRule {
            name: "not_listening",
            code: "EINVAL",
            doc: "the stream does not listen for connections",
            c_types: None,
            guards: &["uv_tcp_connect", "uv_pipe_connect", "uv_pipe_connect2"],
        },
        StateRule {
            name: "not_connected",
            code: "EISCONN",
            doc: "the stream has no peer yet",
            c_types: None,
            guards: &["uv_pipe_connect", "uv_pipe_connect2"],
        },
        StateRule {
            name: "named",
            code: "EINVAL",
            doc: "a socket pipe is bound to a name (libuv reads an unset name otherwise) that does not fill `sun_path` with no NUL after it (`ENAMETOOLONG`: libuv would read past it)",
            // The check reads the name through the pipe functions of libuv
            // (`contracts::named` takes an open pipe).
            c_types: Some(&["uv_pipe_t"]),
            guards: &["uv_pipe_chmod"],
        },
        StateRule {
            name: "poll_settled",
            code: "EBUSY",
            doc: "no earlier start of a stopped stat poller still has its stat in flight (libuv would let that poll go on and abort in its timer), and the poller does not poll (libuv would keep the path and interval it polls, for the new callback)",
            c_types: Some(&["uv_fs_poll_t"]),
            guards: &["uv_fs_poll_start"],
        },
        StateRule {
            name: "own_process",
            code: "EINVAL",
            doc: "the loop is this process's, not one a forked child did not re-create (`after_fork`): the child shares that loop's kernel state with the parent (its signal pipe, epoll and inotify instances, the thread pool's queue), which the call would change under the parent's loop",
            c_types: Some(&["uv_signal_t", "uv_poll_t", "uv_fs_event_t", "uv_fs_poll_t"]),
            guards: &[
                "uv_signal_start",
                "uv_signal_start_oneshot",
                "uv_poll_start",
                "uv_poll_stop",
                "uv_fs_event_start",
                "uv_fs_event_stop",
                "uv_fs_poll_start",
            ],
        },
    ];

    /// The rule named `name`.
    pub fn find(name: &str) -> Option<&'static StateRule> {
        StateRule::ALL.iter().find(|r| r.name == name)
    }

    /// The states every call of the C function `c` must check.
    pub fn guarding(c: &str) -> impl Iterator<Item = &'static StateRule> + '_ {
        StateRule::ALL.iter().filter(move |r| r.guards.contains(&c))
    }
}

/// What the first argument of a C function (its first parameter after the handle
/// and the loop) must be, when the conversion is what checks a libuv precondition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgWant {
    /// A descriptor libuv keeps: `owned_fd` (libuv closes it) or `borrowed_fd` (it
    /// watches it), of this kind (any stricter kind when `Any`). A raw `fd` would
    /// let safe code hand libuv a descriptor it does not own, a standard one libuv
    /// asserts on when it closes it, or one of a kind libuv aborts on when it polls
    /// it.
    Fd {
        /// `owned_fd`, or `borrowed_fd`.
        owned: bool,
        /// The kind checked before the call.
        kind: FdKind,
    },
    /// This conversion (for `flags`, of this flag type).
    Conv {
        /// The conversion's spec name.
        name: &'static str,
        /// For `flags`: the type.
        flags: Option<&'static str>,
    },
}

/// A C function whose first argument's conversion checks a libuv precondition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgRule {
    /// The C function.
    pub c: &'static str,
    /// What its first argument must be.
    pub want: ArgWant,
    /// Why.
    pub why: &'static str,
}

const fn fd_rule(c: &'static str, owned: bool, kind: FdKind) -> ArgRule {
    ArgRule {
        c,
        want: ArgWant::Fd { owned, kind },
        why: "libuv keeps the descriptor: its owner and kind are checked before",
    }
}

/// A rule that a C function's first argument takes conversion `name` (of the flags
/// type `flags`).
const fn conv_rule(
    c: &'static str,
    name: &'static str,
    flags: Option<&'static str>,
    why: &'static str,
) -> ArgRule {
    ArgRule {
        c,
        want: ArgWant::Conv { name, flags },
        why,
    }
}

impl ArgRule {
    /// Every such C function.
    pub const ALL: &'static [ArgRule] = &[
        fd_rule("uv_tcp_open", true, FdKind::StreamSocket),
        fd_rule("uv_udp_open", true, FdKind::DgramSocket),
        fd_rule("uv_udp_open_ex", true, FdKind::DgramSocket),
        fd_rule("uv_pipe_open", true, FdKind::IpcAwarePipe),
        fd_rule("uv_tty_init", true, FdKind::Any),
        fd_rule("uv_poll_init", false, FdKind::Any),
        fd_rule("uv_poll_init_socket", false, FdKind::Any),
        conv_rule(
            "uv_poll_start",
            "flags",
            Some("PollEvent"),
            "libuv asserts that no bit outside the PollEvent members is set",
        ),
        conv_rule(
            "uv_pipe_bind",
            "socket_path",
            None,
            "a path that fills `sun_path` would be bound with no NUL, which libuv reads past",
        ),
        conv_rule(
            "uv_pipe_connect",
            "socket_path",
            None,
            "a path that fills `sun_path` would be used with no NUL, which libuv reads past",
        ),
        conv_rule(
            "uv_pipe_bind2",
            "socket_name",
            None,
            "a name that fills `sun_path` would be bound with no NUL, which libuv reads past",
        ),
        conv_rule(
            "uv_pipe_connect2",
            "socket_name",
            None,
            "a name that fills `sun_path` would be used with no NUL, which libuv reads past",
        ),
    ];

    /// The rule of the C function `c`.
    pub fn find(c: &str) -> Option<&'static ArgRule> {
        ArgRule::ALL.iter().find(|r| r.c == c)
    }

    /// Whether `conv` is what the rule wants (for a descriptor of any kind, a
    /// stricter kind is fine).
    pub fn accepts(&self, conv: &Conv) -> bool {
        match self.want {
            ArgWant::Fd { owned, kind: want } => {
                let kind = match (conv, owned) {
                    (Conv::OwnedFd(k), true) | (Conv::BorrowedFd(k), false) => *k,
                    _ => return false,
                };
                want == FdKind::Any || kind == want
            }
            ArgWant::Conv { name, flags } => {
                conv.name() == name
                    && match (conv, flags) {
                        (Conv::Flags(t), Some(want)) => t.as_str() == want,
                        (_, None) => true,
                        _ => false,
                    }
            }
        }
    }

    /// How the spec writes it.
    pub fn spelled(&self) -> String {
        match self.want {
            ArgWant::Fd { owned, kind } => {
                let name = if owned { "owned_fd" } else { "borrowed_fd" };
                match kind {
                    FdKind::Any => format!("conv = \"{name}\""),
                    k => format!(
                        "conv = \"{name}\", kind = \"{}\"",
                        FdKind::NAMES[FdKind::ALL.iter().position(|x| *x == k).expect("a kind")]
                    ),
                }
            }
            ArgWant::Conv {
                name,
                flags: Some(t),
            } => format!("conv = \"{name}\", type = \"{t}\""),
            ArgWant::Conv { name, flags: None } => format!("conv = \"{name}\""),
        }
    }
}

/// A C function that only the runtime core calls, from the hand-written code
/// named: it ends the life of something a conversion only borrows (`&uv::File`,
/// `&uv::Dir`), whose owner would then close or free it again, or of the handle
/// itself behind the runtime's back, or it needs code around it that no spec key
/// states. A spec method (not `manual`) or property calling it is an error, in any
/// crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservedFn {
    /// The C function.
    pub c: &'static str,
    /// What it would do to the borrowed value.
    pub why: &'static str,
    /// The safe call that does it.
    pub instead: &'static str,
}

impl ReservedFn {
    /// Every such C function.
    pub const ALL: &'static [ReservedFn] = &[
        ReservedFn {
            c: "uv_fs_close",
            why: "closes the descriptor of a `File` the request only borrows, which the `File` then closes again (another owner's descriptor by then)",
            instead: "`uv::File::close` or `close_sync`, which consume the file",
        },
        ReservedFn {
            c: "uv_fs_closedir",
            why: "frees the stream of a `Dir` the request only borrows, which the `Dir` then frees again",
            instead: "`uv::Dir::close` or `close_sync`, which consume the directory",
        },
        ReservedFn {
            c: "uv_tcp_close_reset",
            why: "closes the handle behind the runtime, whose own close of it then makes libuv abort (`uv_close` asserts the handle is not closing yet)",
            instead: "`uv::Tcp::close_reset`, which closes through the runtime",
        },
        ReservedFn {
            c: "uv_udp_recv_stop",
            why: "leaves a socket with sends queued without receive callbacks, and libuv asserts it has them when an error event of a send arrives",
            instead: "`uv::Udp::recv_stop`, which keeps a reader while sends are queued",
        },
    ];

    /// The entry of the C function `c`.
    pub fn find(c: &str) -> Option<&'static ReservedFn> {
        ReservedFn::ALL.iter().find(|r| r.c == c)
    }
}

/// Request argument conversions that fit only some C functions: the buffer of a
/// `read_buf` is the spare capacity of a `Vec`, uninitialised until a read fills
/// it (another function would write it out, or count it as read); the buffers of
/// a `write_data` may be shared and immutable (another function could write into
/// them); a `dir` lends its entry array to `uv_fs_readdir`.
pub const CONV_FNS: &[(&str, &[&str])] = &[
    ("read_buf", &["uv_fs_read"]),
    ("write_data", &["uv_fs_write"]),
    ("dir", &["uv_fs_readdir"]),
];

/// The file-system functions that take descriptors (`uv_file`), with the
/// positions of those arguments among the spec's: each must be a `file`, a
/// `uv::File` the request keeps open. A number of the spec author's choosing
/// reaches any open file of the process, those libuv and the runtime own
/// included (a loop's signal pipe, whose messages carry the handle pointers
/// libuv reads back; a socket a handle reads), which safe code cannot name
/// (`uv_fs_close` is the runtime's: [`ReservedFn`]).
pub const FILE_ARGS: &[(&str, &[usize])] = &[
    ("uv_fs_read", &[0]),
    ("uv_fs_write", &[0]),
    ("uv_fs_sendfile", &[0, 1]),
    ("uv_fs_fstat", &[0]),
    ("uv_fs_ftruncate", &[0]),
    ("uv_fs_fsync", &[0]),
    ("uv_fs_fdatasync", &[0]),
    ("uv_fs_fchmod", &[0]),
    ("uv_fs_fchown", &[0]),
    ("uv_fs_futime", &[0]),
];

/// The file-system functions whose completed request holds something the caller
/// must own (a new descriptor, a directory stream, which `uv_fs_req_cleanup`
/// leaves alone), with the one result that takes it: another result would leak
/// it.
pub const OWNING_RESULTS: &[(&str, &str)] = &[
    ("uv_fs_open", "file"),
    ("uv_fs_mkstemp", "file_path"),
    ("uv_fs_opendir", "dir"),
];

/// A libuv handle struct: the init functions that make one, and whether it
/// starts with the `uv_stream_t` fields. A handle file's `c_type` must be one of
/// these, its constructors must call one of their inits, and only a stream struct
/// takes `parent = "stream"`: the runtime core allocates, closes and walks the
/// struct as a handle, and the stream core hands it to libuv's stream functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleStruct {
    /// The libuv struct.
    pub c_type: &'static str,
    /// Its init functions.
    pub inits: &'static [&'static str],
    /// Whether it is a stream.
    pub stream: bool,
}

impl HandleStruct {
    /// Every handle struct of libuv.
    pub const ALL: &'static [HandleStruct] = &[
        HandleStruct {
            c_type: "uv_timer_t",
            inits: &["uv_timer_init"],
            stream: false,
        },
        HandleStruct {
            c_type: "uv_prepare_t",
            inits: &["uv_prepare_init"],
            stream: false,
        },
        HandleStruct {
            c_type: "uv_check_t",
            inits: &["uv_check_init"],
            stream: false,
        },
        HandleStruct {
            c_type: "uv_idle_t",
            inits: &["uv_idle_init"],
            stream: false,
        },
        HandleStruct {
            c_type: "uv_async_t",
            inits: &["uv_async_init"],
            stream: false,
        },
        HandleStruct {
            c_type: "uv_poll_t",
            inits: &["uv_poll_init", "uv_poll_init_socket"],
            stream: false,
        },
        HandleStruct {
            c_type: "uv_signal_t",
            inits: &["uv_signal_init"],
            stream: false,
        },
        // `uv_spawn` takes options no conversion builds, and a failed spawn leaves
        // a handle libuv must close before its memory goes (`Process::spawn`
        // does): its constructor is hand-written (`manual`), never generated.
        HandleStruct {
            c_type: "uv_process_t",
            inits: &[],
            stream: false,
        },
        HandleStruct {
            c_type: "uv_tcp_t",
            inits: &["uv_tcp_init", "uv_tcp_init_ex"],
            stream: true,
        },
        HandleStruct {
            c_type: "uv_pipe_t",
            inits: &["uv_pipe_init"],
            stream: true,
        },
        HandleStruct {
            c_type: "uv_tty_t",
            inits: &["uv_tty_init"],
            stream: true,
        },
        HandleStruct {
            c_type: "uv_udp_t",
            inits: &["uv_udp_init", "uv_udp_init_ex"],
            stream: false,
        },
        HandleStruct {
            c_type: "uv_fs_event_t",
            inits: &["uv_fs_event_init"],
            stream: false,
        },
        HandleStruct {
            c_type: "uv_fs_poll_t",
            inits: &["uv_fs_poll_init"],
            stream: false,
        },
    ];

    /// The entry of the struct `c_type`.
    pub fn find(c_type: &str) -> Option<&'static HandleStruct> {
        HandleStruct::ALL.iter().find(|s| s.c_type == c_type)
    }
}

/// The libuv request structs a generated request file (not `manual`) may name,
/// each with the C function that frees what libuv allocated in a completed one:
/// the runtime's result readers (`uv::runtime::loop_request`) read these, and
/// another `cleanup` (a `uv_fs_get_*` getter type-checks as one) left every
/// request's copies of its paths, its entries and its buffers allocated.
pub const REQUEST_STRUCTS: &[(&str, &str)] = &[("uv_fs_t", "uv_fs_req_cleanup")];

/// When a runtime hook runs: before or after the C call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookSlot {
    /// `before = "..."`.
    Before,
    /// `after = "..."`.
    After,
}

impl HookSlot {
    /// The spec key.
    pub fn key(self) -> &'static str {
        match self {
            HookSlot::Before => "before",
            HookSlot::After => "after",
        }
    }
}

/// A `before`/`after` hook the runtime provides (`uv::runtime::hooks::NAME`, given
/// the handle): a check or a repair that a C function needs and that no state
/// (`requires`) expresses. A spec naming it gets the runtime's, in any crate; a
/// method calling one of the C functions it guards must name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookRule {
    /// The spec's name, and the runtime function's.
    pub name: &'static str,
    /// Where it goes.
    pub slot: HookSlot,
    /// The libuv structs of the handles it takes.
    pub c_types: &'static [&'static str],
    /// What it does.
    pub doc: &'static str,
    /// The C functions whose every generated call must run it.
    pub guards: &'static [&'static str],
    /// Whether it reads the delivery mark: a type naming it marks its callbacks
    /// (`marks_delivery = true`).
    pub reads_delivery_mark: bool,
}

impl HookRule {
    /// Every hook of the runtime.
    pub const ALL: &'static [HookRule] = &[
        HookRule {
            name: "forget_oneshot",
            slot: HookSlot::Before,
            c_types: &["uv_signal_t"],
            doc: "clears the one-shot mark of an earlier one-shot start, which libuv keeps and which would make the new watch one-shot",
            guards: &["uv_signal_start"],
            reads_delivery_mark: false,
        },
        HookRule {
            name: "restore_ignored_signals",
            slot: HookSlot::After,
            c_types: &["uv_signal_t"],
            doc: "ignores again a signal the process ignored (SIGPIPE) that libuv put back to its default action when it stopped watching it, and after a start keeps libuv's handler for it installed for good",
            guards: &["uv_signal_start", "uv_signal_stop"],
            reads_delivery_mark: false,
        },
        HookRule {
            name: "refuse_oneshot_mid_delivery",
            slot: HookSlot::Before,
            c_types: &["uv_signal_t"],
            doc: "refuses a one-shot start while a delivery of the handle is under way (`EBUSY`): libuv would stop the new watch once that delivery is over",
            guards: &["uv_signal_start_oneshot"],
            reads_delivery_mark: true,
        },
        HookRule {
            name: "refuse_oneshot_on_ignored",
            slot: HookSlot::After,
            c_types: &["uv_signal_t"],
            doc: "stops a one-shot watch of a signal the process ignores whose handler the runtime does not keep installed, `SIGCHLD` (`EINVAL`): libuv's one-shot handler is reset to the default action when it fires; a signal the runtime keeps handled (SIGPIPE) is accepted",
            guards: &["uv_signal_start_oneshot"],
            reads_delivery_mark: false,
        },
        HookRule {
            name: "refuse_unterminated_local_name",
            slot: HookSlot::Before,
            c_types: &["uv_pipe_t"],
            doc: "refuses a socket name that fills `sun_path` with no NUL (`ENAMETOOLONG`): libuv takes its length with `strlen`, which reads past the address",
            guards: &["uv_pipe_getsockname"],
            reads_delivery_mark: false,
        },
        HookRule {
            name: "refuse_unterminated_peer_name",
            slot: HookSlot::Before,
            c_types: &["uv_pipe_t"],
            doc: "as `refuse_unterminated_local_name`, for the peer's name",
            guards: &["uv_pipe_getpeername"],
            reads_delivery_mark: false,
        },
        HookRule {
            name: "hold_opened_socket",
            slot: HookSlot::After,
            c_types: &["uv_tcp_t", "uv_udp_t", "uv_pipe_t"],
            doc: "registers a socket taken over from the user as the library's, with the copies of it the process has, for the checks that keep other holders from making it blocking",
            guards: &["uv_tcp_open", "uv_udp_open", "uv_udp_open_ex", "uv_pipe_open"],
            reads_delivery_mark: false,
        },
    ];

    /// The hook named `name`.
    pub fn find(name: &str) -> Option<&'static HookRule> {
        HookRule::ALL.iter().find(|r| r.name == name)
    }

    /// The hooks every call of the C function `c` must run.
    pub fn guarding(c: &str) -> impl Iterator<Item = &'static HookRule> + '_ {
        HookRule::ALL.iter().filter(move |r| r.guards.contains(&c))
    }
}

/// A hook the runtime provides for a handle's callback (`after = "..."` on a
/// `[[callback]]`; `uv::runtime::hooks::NAME`, given the handle's libuv struct),
/// run by the generated trampoline once the callback returned: for what libuv
/// does itself after the callback, which the runtime must do first, its way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallbackHookRule {
    /// The spec's name, and the runtime function's.
    pub name: &'static str,
    /// The libuv structs of the handles it takes.
    pub c_types: &'static [&'static str],
    /// What it does.
    pub doc: &'static str,
    /// The C functions a method of the type may call only when every callback
    /// of the type with a generated trampoline names the hook.
    pub required_by: &'static [&'static str],
}

impl CallbackHookRule {
    /// Every callback hook of the runtime.
    pub const ALL: &'static [CallbackHookRule] = &[CallbackHookRule {
        name: "stop_delivered_oneshot",
        c_types: &["uv_signal_t"],
        doc: "stops a one-shot watch once its delivery's callback returned, under the runtime's lock on signal actions, before libuv's own stop, which takes libuv's signal lock alone (at the process's exit, with that lock closed by libuv's destructor, it aborted)",
        required_by: &["uv_signal_start_oneshot"],
    }];

    /// The callback hook named `name`.
    pub fn find(name: &str) -> Option<&'static CallbackHookRule> {
        CallbackHookRule::ALL.iter().find(|r| r.name == name)
    }
}

/// The C functions that may install libuv's handler for a signal: generated code
/// calls them through `uv::runtime::hooks::signal_call`, under the runtime's lock
/// on signal actions, so that the runtime's restoring of an ignored signal (a query
/// of its action, then `SIG_IGN`) cannot replace a handler another thread's loop
/// installs in between.
pub const SIGNAL_ACTION_FNS: &[&str] = &[
    "uv_signal_start",
    "uv_signal_start_oneshot",
    "uv_signal_stop",
];

/// The C functions of [`SIGNAL_ACTION_FNS`] that start a watch, with the signal
/// as their last argument: generated code calls them through
/// `uv::runtime::hooks::signal_start_call`, which is given that signal, so that
/// the runtime's lasting watch of a signal the process ignores (SIGPIPE) is made
/// before libuv installs its handler, and a watch it cannot make (at the
/// descriptor limit) refuses the start before libuv changes anything.
pub const SIGNAL_START_FNS: &[&str] = &["uv_signal_start", "uv_signal_start_oneshot"];

/// The C functions a handle method may call that hand work to libuv's thread
/// pool (`uv_fs_poll_start` runs its first stat there): generated code calls them
/// through `uv::runtime::hooks::pool_call`, which refuses them (`ECANCELED`) once
/// the process is exiting, when libuv's destructor is about to tear the pool
/// down (a thread handing work to it then made libuv abort), and which counts
/// the calling thread as one whose loop hands the pool work from inside
/// `uv_run` (the poller's periodic stat), for the exit handler.
pub const POOL_SUBMIT_FNS: &[&str] = &["uv_fs_poll_start"];

/// An argument of a constructor, method or callback.
#[derive(Clone, Debug)]
pub struct ArgSpec {
    /// Rust name.
    pub name: Sp<String>,
    /// Conversion.
    pub conv: Sp<Conv>,
    /// For `flags`: the members the argument may hold (all known members when empty).
    pub allow: Vec<Sp<String>>,
    /// For `duration_s`: a `bool` argument before it that, when true, requires the
    /// duration to be at least one second (`EINVAL` otherwise).
    pub min_1s_if: Option<Sp<String>>,
    /// With `min_1s_if`: the largest value (seconds, or the count) accepted while
    /// that flag is on (`EINVAL` above it).
    pub max: Option<Sp<u32>>,
}

/// What a method gives back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Returns {
    /// `int` status: negative is an error.
    Status,
    /// `void`.
    Void,
    /// `int` that is a count when not negative.
    Count,
    /// A value, through a conversion.
    Value(Conv),
    /// A socket address read through `(struct sockaddr*, int* len)` out-parameters.
    SocketAddr,
    /// A path read through `(char* buffer, size_t* len)` out-parameters.
    Path,
}

/// What a method does on a closed handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnClosed {
    /// Returns `Error::ClosedHandle`.
    Error,
    /// Does nothing and returns success (stop-like calls).
    Noop,
}

/// A constructor (`uv_*_init`).
#[derive(Clone, Debug)]
pub struct ConstructorSpec {
    /// Rust name (`new`).
    pub name: Sp<String>,
    /// The C init function.
    pub c: Sp<String>,
    /// Arguments after the loop and the handle.
    pub args: Vec<ArgSpec>,
    /// Description.
    pub doc: String,
    /// Hand-written (why and where): nothing is emitted, and `c` is reported as manual.
    pub manual: Option<Sp<String>>,
    /// Also emit `pub(crate) fn <name>_internal`: the same constructor for the
    /// library's own handles (hidden from `handles()`, not counted by
    /// `Loop::close`). Only for the `uv` crate's own spec. `Some` when set to true
    /// (where, for diagnostics).
    pub internal: Option<Sp<bool>>,
    /// Also emit `pub(crate) fn <name>_placed`: the same constructor, which also
    /// hands back where the handle's allocation was placed (`runtime::Place`), for
    /// hand-written code that builds on that allocation (an `Async`'s senders).
    /// Only for the `uv` crate's own spec. `Some` when set to true.
    pub placed: Option<Sp<bool>>,
}

/// A callback slot of a handle or request.
#[derive(Clone, Debug)]
pub struct CallbackSpec {
    /// Slot name (`on_timeout`).
    pub name: Sp<String>,
    /// The C callback typedef (`uv_timer_cb`).
    pub c_type: Sp<String>,
    /// C arguments after the handle, converted.
    pub args: Vec<ArgSpec>,
    /// Description.
    pub doc: String,
    /// For a callback whose arguments no conversion covers: the Rust closure type of
    /// its slot (`FnMut(&Udp, ...)`); the trampoline is hand-written.
    pub signature: Option<Sp<String>>,
    /// Why the trampoline is hand-written (required with `signature`).
    pub manual: Option<Sp<String>>,
    /// With `signature`: the type of the event's parts the hand-written trampoline
    /// passes; the slot is then a `CallSlot` (one indirect call per event, the
    /// event made where the callback's code sees it).
    pub parts: Option<Sp<String>>,
    /// Arguments folded into the `status` argument's `Ok` value (`ok = ["prev",
    /// "curr"]` makes the Rust callback take `Result<(Stat, Stat)>`); they are read
    /// only when the status is a success.
    pub ok: Vec<Sp<String>>,
    /// `marks_delivery = true`: the generated trampoline runs the callback under
    /// `uv::runtime::marking_delivery`, so that the handle's hooks can tell (with
    /// `Typed::is_delivering`) that they were called from inside it. Only for a
    /// handle's callback with a generated trampoline.
    pub marks_delivery: Option<Sp<bool>>,
    /// `after = "..."`: a hook of the runtime ([`CallbackHookRule`]) the
    /// generated trampoline runs once the callback returned (or its panic was
    /// caught), given the handle's libuv struct.
    pub after: Option<Sp<String>>,
}

impl CallbackSpec {
    /// Whether the callback runs with its handle marked as being delivered.
    pub fn marked(&self) -> bool {
        self.marks_delivery.as_ref().is_some_and(|m| m.value)
    }

    /// Whether argument `name` is folded into the status.
    pub fn is_ok_arg(&self, name: &str) -> bool {
        self.ok.iter().any(|o| o.value == name)
    }

    /// How many arguments the Rust closure takes after the handle.
    pub fn rust_arity(&self) -> usize {
        self.args
            .iter()
            .filter(|a| !self.is_ok_arg(&a.name))
            .count()
    }
}

/// A method.
#[derive(Clone, Debug)]
pub struct MethodSpec {
    /// Rust name.
    pub name: Sp<String>,
    /// The C function, unless manual.
    pub c: Option<Sp<String>>,
    /// Arguments in C order after the handle; callbacks go last in Rust.
    pub args: Vec<ArgSpec>,
    /// Result.
    pub returns: Returns,
    /// Behaviour on a closed handle.
    pub on_closed: OnClosed,
    /// Description.
    pub doc: String,
    /// Hand-written, and why.
    pub manual: Option<Sp<String>>,
    /// For a method that starts a request: the C request type (`uv_connect_t`), which
    /// is the C function's first parameter.
    pub request: Option<Sp<String>>,
    /// Handle states checked before the C call ([`StateRule`] names).
    pub requires: Vec<Sp<String>>,
    /// A hand-written associated function of the type, `fn NAME(&self) ->
    /// uv::Result<()>`, called before the C call, after the `requires` checks (to
    /// put the handle into the state the call needs); its error is the method's, and
    /// the C function is not called then.
    pub before: Option<Sp<String>>,
    /// A hand-written associated function of the type, `fn NAME(&self) ->
    /// uv::Result<()>`, called after the C call (for side effects of libuv the crate
    /// must undo); its error, if the call succeeded, is the method's.
    pub after: Option<Sp<String>>,
    /// For a stream method that starts a request: the C call creates the stream's
    /// socket when it has none (a connect), non-blocking and known only to this
    /// process; the generated code marks such a socket so that reads need not ask
    /// the system for its mode.
    pub makes_socket: Option<Sp<bool>>,
    /// For a function of a request file: how the completed request gives its value
    /// (a name of [`crate::conv::REQUEST_RESULTS`]).
    pub result: Option<Sp<String>>,
}

/// A property: a getter and/or a setter.
#[derive(Clone, Debug)]
pub struct PropertySpec {
    /// Rust name of the getter; the setter is `set_<name>`.
    pub name: Sp<String>,
    /// C getter.
    pub get: Option<Sp<String>>,
    /// C setter.
    pub set: Option<Sp<String>>,
    /// Conversion of the value.
    pub conv: Sp<Conv>,
    /// Description.
    pub doc: String,
}

/// What keeps a handle open once the user dropped every reference to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAlive {
    /// Stays open while libuv reports it active (started, reading, ...).
    Active,
    /// Closes when the last reference goes.
    Never,
    /// Decided by a hand-written `fn keeps_alive(handle: &uv::Handle) -> bool` in an
    /// `impl` block of the type.
    Custom,
}

/// The libuv type a handle derives from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleParent {
    /// `uv_handle_t`.
    Handle,
    /// `uv_stream_t`.
    Stream,
}

/// A handle type (`spec/handles/*.toml`).
#[derive(Clone, Debug)]
pub struct HandleSpec {
    /// Rust name (`Timer`).
    pub name: Sp<String>,
    /// C type (`uv_timer_t`).
    pub c_type: Sp<String>,
    /// The `uv_handle_type` member (`UV_TIMER`).
    pub type_tag: Sp<String>,
    /// Base type.
    pub parent: HandleParent,
    /// Lifetime rule.
    pub keep_alive: KeepAlive,
    /// Platform cfg.
    pub cfg: Option<Sp<String>>,
    /// Description.
    pub doc: String,
    /// Hand-written as a whole, and why.
    pub manual: Option<Sp<String>>,
    /// Constructors.
    pub constructors: Vec<ConstructorSpec>,
    /// Callback slots.
    pub callbacks: Vec<CallbackSpec>,
    /// Methods.
    pub methods: Vec<MethodSpec>,
    /// Properties.
    pub properties: Vec<PropertySpec>,
    /// The file.
    pub loc: Loc,
}

/// A request type (`spec/requests/*.toml`).
#[derive(Clone, Debug)]
pub struct RequestSpec {
    /// Rust name (`Connect`).
    pub name: Sp<String>,
    /// C type (`uv_connect_t`).
    pub c_type: Sp<String>,
    /// The `uv_req_type` member (`UV_CONNECT`).
    pub type_tag: Sp<String>,
    /// Description.
    pub doc: String,
    /// Hand-written as a whole, and why.
    pub manual: Option<Sp<String>>,
    /// Whether `uv_cancel` applies.
    pub cancel: bool,
    /// The function that frees what libuv allocated in a completed request
    /// (`uv_fs_req_cleanup`).
    pub cleanup: Option<Sp<String>>,
    /// Callback slots.
    pub callbacks: Vec<CallbackSpec>,
    /// Functions that start the request.
    pub methods: Vec<MethodSpec>,
    /// The file.
    pub loc: Loc,
}

/// How `functions.toml` accounts for a C function that no handle or request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionStatus {
    /// Bound by hand in the runtime core.
    Manual,
    /// Left out on purpose.
    Ignored,
    /// Not bound yet; the reason says what will bind it.
    Todo,
}

/// One entry of `functions.toml`; `c` may end in `*` to cover a prefix.
#[derive(Clone, Debug)]
pub struct FunctionEntry {
    /// C name or prefix pattern.
    pub c: Sp<String>,
    /// Manual or ignored.
    pub status: FunctionStatus,
    /// Why.
    pub reason: String,
}

impl FunctionEntry {
    /// Whether the entry covers the function `name`.
    pub fn matches(&self, name: &str) -> bool {
        match self.c.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == self.c.as_str(),
        }
    }
}

impl HandleSpec {
    /// Every C function the handle's spec names.
    pub fn functions(&self) -> impl Iterator<Item = &Sp<String>> {
        self.constructors
            .iter()
            .map(|c| &c.c)
            .chain(self.methods.iter().filter_map(|m| m.c.as_ref()))
            .chain(
                self.properties
                    .iter()
                    .flat_map(|p| p.get.iter().chain(p.set.iter())),
            )
    }
}

impl RequestSpec {
    /// Every C function the request's spec names.
    pub fn functions(&self) -> impl Iterator<Item = &Sp<String>> {
        self.methods.iter().filter_map(|m| m.c.as_ref())
    }
}
