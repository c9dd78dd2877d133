//! Checks of the references between spec items: names are unique, parents and
//! categories exist, conversions name enums that exist, callbacks name slots that exist.

use std::collections::{HashMap, HashSet};

use super::*;
use crate::conv::Position;
use crate::diag::{closest, Diagnostic, Diagnostics};

/// `std::io::ErrorKind` variants a category or code may name.
pub const IO_KINDS: &[&str] = &[
    "NotFound",
    "PermissionDenied",
    "ConnectionRefused",
    "ConnectionReset",
    "HostUnreachable",
    "NetworkUnreachable",
    "ConnectionAborted",
    "NotConnected",
    "AddrInUse",
    "AddrNotAvailable",
    "NetworkDown",
    "BrokenPipe",
    "AlreadyExists",
    "WouldBlock",
    "NotADirectory",
    "IsADirectory",
    "DirectoryNotEmpty",
    "ReadOnlyFilesystem",
    "StaleNetworkFileHandle",
    "InvalidInput",
    "InvalidData",
    "TimedOut",
    "WriteZero",
    "StorageFull",
    "NotSeekable",
    "QuotaExceeded",
    "FileTooLarge",
    "ResourceBusy",
    "ExecutableFileBusy",
    "Deadlock",
    "CrossesDevices",
    "TooManyLinks",
    "InvalidFilename",
    "ArgumentListTooLong",
    "Interrupted",
    "Unsupported",
    "UnexpectedEof",
    "OutOfMemory",
    "Other",
];

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
    // Not an identifier (an item, a binding or a field cannot be named `_`).
    "_",
];

/// Whether `s` can be a Rust identifier.
pub fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&s)
}

/// Type names the runtime already uses at the crate root, or beside the handle types
/// in `uv::handles`; generated types must not take them. (An explicit `pub use` at
/// the crate root would silently hide a generated type of the same name, which the
/// root re-exports by glob; in `uv::handles` the two `pub use`s would clash.)
const RESERVED_TYPES: &[&str] = &[
    "Error",
    "Result",
    "StatusCode",
    "Category",
    "Loop",
    "LoopHandle",
    "Handle",
    "Request",
    "Rejected",
    "KeepAlive",
    "Sender",
    "Receiver",
    "SendError",
    "Timeout",
    "WriteData",
    "ReadAllocator",
    "PoolAllocator",
    "Stream",
    "Stat",
    "StatFs",
    "Timespec",
    "SendAddr",
    "SockAddr",
    "AddrInfo",
    "AddrInfoHints",
    "DnsRequest",
    "NameInfo",
    "File",
    "FileTime",
    "Dir",
    "DirEntry",
    "JoinError",
    "JoinHandle",
    "PanicHook",
    "PanicPayload",
    "RawFd",
    "RawSocket",
    "AsyncSender",
    "CallLater",
    "ProcessOptions",
    "Stdio",
    "Datagram",
];

/// Methods every handle has from the runtime core.
pub const BASE_METHODS: &[&str] = &[
    "loop_",
    "is_active",
    "is_closing",
    "is_closed",
    "ref_",
    "unref",
    "has_ref",
    "close",
    "close_with",
    "fileno",
    "send_buffer_size",
    "set_send_buffer_size",
    "recv_buffer_size",
    "set_recv_buffer_size",
    "handle_type",
    "clone",
];

struct Names<'a> {
    seen: HashMap<String, &'a Sp<String>>,
    what: &'static str,
}

impl<'a> Names<'a> {
    fn new(what: &'static str) -> Self {
        Names {
            seen: HashMap::new(),
            what,
        }
    }

    fn add(&mut self, name: &'a Sp<String>, out: &mut Vec<Diagnostic>) {
        if let Some(first) = self.seen.get(name.as_str()) {
            let (line, col) = first.loc.file.line_col(first.loc.span.start);
            out.push(
                name.loc
                    .error(format!("duplicate {} `{}`", self.what, name.value))
                    .hint(format!(
                        "the first is at {}:{line}:{col}; rename or remove one",
                        first.loc.file.path.display()
                    )),
            );
        } else {
            self.seen.insert(name.value.clone(), name);
        }
    }
}

fn check_ident(name: &Sp<String>, out: &mut Vec<Diagnostic>) {
    if !is_ident(name) {
        out.push(
            name.loc
                .error(format!("`{}` is not a valid Rust identifier", name.value))
                .hint("use letters, digits and `_`, not starting with a digit, and not a keyword"),
        );
    }
}

/// A name the emitters turn into an identifier of the generated code (a C
/// function, struct or typedef, a type of `uv`, a flag member): one that is not
/// refused here, at its place, would stop the generator (or the proc-macro) with a
/// panic, or give a rustc error inside the generated code.
fn check_name(name: &Sp<String>, what: &str, out: &mut Vec<Diagnostic>) {
    if !is_ident(name) {
        out.push(
            name.loc
                .error(format!("`{}` is not a valid {what}", name.value))
                .hint("a C or Rust name: letters, digits and `_`, not starting with a digit, and not a Rust keyword"),
        );
    }
}

/// A `cfg` predicate: `name`, `name = "value"`, or `all(...)`, `any(...)`,
/// `not(...)` of predicates. Anything else became a rustc error inside the
/// generated code (or, in an enum, a `compile_error!` naming no spec line).
fn check_cfg(c: &Sp<String>, out: &mut Vec<Diagnostic>) {
    fn predicate(m: &syn::Meta) -> bool {
        let Some(name) = m.path().get_ident().map(|i| i.to_string()) else {
            return false;
        };
        match m {
            syn::Meta::Path(_) => true,
            syn::Meta::NameValue(nv) => matches!(
                &nv.value,
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(_),
                    ..
                })
            ),
            syn::Meta::List(l) => {
                let Ok(inner) = l.parse_args_with(
                    syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
                ) else {
                    return false;
                };
                match name.as_str() {
                    "all" | "any" => inner.iter().all(predicate),
                    "not" => inner.len() == 1 && inner.iter().all(predicate),
                    _ => false,
                }
            }
        }
    }
    if !syn::parse_str::<syn::Meta>(c).is_ok_and(|m| predicate(&m)) {
        out.push(
            c.loc
                .error(format!("`{}` is not a cfg predicate", c.value))
                .hint("a name (`unix`), a name with a string (`target_os = \"linux\"`), or all(...), any(...), not(...) of those"),
        );
    }
}

fn check_io_kind(k: &Option<Sp<String>>, out: &mut Vec<Diagnostic>) {
    if let Some(k) = k {
        if !IO_KINDS.contains(&k.as_str()) {
            let hint = match closest(k, IO_KINDS.iter().copied()) {
                Some(c) => format!("did you mean `{c}`?"),
                None => "name a std::io::ErrorKind variant, e.g. \"InvalidInput\"".into(),
            };
            out.push(
                k.loc
                    .error(format!("`{}` is not a std::io::ErrorKind", k.value))
                    .hint(hint),
            );
        }
    }
}

fn unknown_ref(
    name: &Sp<String>,
    what: &str,
    known: &[&str],
    fix: &str,
    out: &mut Vec<Diagnostic>,
) {
    let hint = match closest(name, known.iter().copied()) {
        Some(c) => format!("did you mean `{c}`?"),
        None => fix.to_string(),
    };
    out.push(
        name.loc
            .error(format!("no {what} named `{}`", name.value))
            .hint(hint),
    );
}

/// Checks the spec's internal references. `external_enums` are enum names that
/// exist outside this spec; `None` accepts any name (a downstream crate's handle
/// names `uv`'s enums, which rustc then checks).
pub fn validate(
    spec: &Spec,
    external_enums: Option<&[(&str, EnumKind)]>,
) -> Result<(), Diagnostics> {
    let mut out = Vec::new();
    let cats = categories(spec, &mut out);
    status_codes(spec, &cats, &mut out);
    type_names(spec, &mut out);
    let mut enums: Vec<(&str, EnumKind)> = spec
        .enums
        .iter()
        .map(|e| (e.name.as_str(), e.kind))
        .collect();
    if let Some(ext) = external_enums {
        enums.extend_from_slice(ext);
    }
    let convs = ConvCheck {
        enum_names: enums.iter().map(|e| e.0).collect(),
        enums,
        closed: external_enums.is_some(),
    };
    for h in &spec.handles {
        handle(spec, h, &convs, &mut out);
    }
    for r in &spec.requests {
        let slots: Vec<&str> = r.callbacks.iter().map(|c| c.name.as_str()).collect();
        for c in &r.callbacks {
            for a in &c.args {
                convs.check(&a.conv, &slots, Position::CallbackArg, &mut out);
            }
            if let Some(m) = c.marks_delivery.as_ref().filter(|m| m.value) {
                out.push(
                    m.loc
                        .error("`marks_delivery` is for a handle's [[callback]]")
                        .hint("a request's callback runs once, when the request is done; remove `marks_delivery`"),
                );
            }
        }
        request_names(r, &mut out);
        for m in &r.methods {
            for a in &m.args {
                // Request functions also take the conversions only requests keep.
                let at = if a.conv.value.def().allows(Position::RequestArg) {
                    Position::RequestArg
                } else {
                    Position::Arg
                };
                convs.check(&a.conv, &slots, at, &mut out);
            }
        }
        request_rules(r, &mut out);
    }
    for m in spec.handles.iter().flat_map(|h| &h.methods) {
        if let Some(res) = &m.result {
            out.push(
                res.loc
                    .error("`result` belongs to the functions of request files")
                    .hint("a handle method's value is its `returns`"),
            );
        }
    }

    if out.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(out))
    }
}

/// Category names, parents (which must exist and not cycle); gives the names.
fn categories<'a>(spec: &'a Spec, out: &mut Vec<Diagnostic>) -> Vec<&'a str> {
    let mut cat_names = Names::new("category");
    for c in &spec.categories {
        check_ident(&c.name, out);
        cat_names.add(&c.name, out);
        check_io_kind(&c.io_kind, out);
    }
    let cats: Vec<&str> = spec.categories.iter().map(|c| c.name.as_str()).collect();
    for c in &spec.categories {
        for p in &c.parents {
            if !cats.contains(&p.as_str()) {
                unknown_ref(p, "category", &cats, "add it to errors.toml", out);
            }
        }
    }
    // A parent chain must end: walk up from each category.
    let parents: HashMap<&str, Vec<&str>> = spec
        .categories
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.parents.iter().map(|p| p.as_str()).collect(),
            )
        })
        .collect();
    for c in &spec.categories {
        let mut stack = vec![c.name.as_str()];
        let mut seen = HashSet::new();
        let mut cyclic = false;
        while let Some(n) = stack.pop() {
            for p in parents.get(n).into_iter().flatten() {
                if *p == c.name.as_str() {
                    cyclic = true;
                }
                if seen.insert(*p) {
                    stack.push(p);
                }
            }
        }
        if cyclic {
            out.push(
                c.name
                    .loc
                    .error(format!("category `{}` is its own ancestor", c.name.value))
                    .hint("remove one parent of the cycle"),
            );
        }
    }

    cats
}

/// Status code names and categories, and the codes library errors carry.
fn status_codes(spec: &Spec, cats: &[&str], out: &mut Vec<Diagnostic>) {
    let mut code_names = Vec::new();
    if let Some(sc) = &spec.status_codes {
        let mut names = Names::new("status code");
        for code in &sc.codes {
            check_ident(&code.name, out);
            names.add(&code.name, out);
            code_names.push(code.name.as_str());
            check_io_kind(&code.io_kind, out);
            if let Some(cat) = &code.category {
                if !cats.contains(&cat.as_str()) {
                    unknown_ref(cat, "category", cats, "add it to errors.toml", out);
                }
            }
        }
    }
    for c in &spec.categories {
        if let Some(code) = &c.library_code {
            if spec.status_codes.is_some() && !code_names.contains(&code.as_str()) {
                unknown_ref(
                    code,
                    "status code",
                    &code_names,
                    "name a code of status_codes.toml",
                    out,
                );
            }
        }
    }
}

/// Type names: unique, identifiers, not the runtime's own.
fn type_names(spec: &Spec, out: &mut Vec<Diagnostic>) {
    let mut types = Names::new("type name");
    for e in &spec.enums {
        check_ident(&e.name, out);
        types.add(&e.name, out);
        if let Some(c) = &e.c_type {
            check_name(c, "C enum type", out);
        }
        let mut members = Names::new("member");
        let mut cs = Names::new("C constant");
        for m in &e.members {
            check_ident(&m.name, out);
            members.add(&m.name, out);
            check_name(&m.c, "C constant", out);
            cs.add(&m.c, out);
            if let Some(c) = &m.cfg {
                check_cfg(c, out);
            }
        }
    }
    for h in &spec.handles {
        check_ident(&h.name, out);
        types.add(&h.name, out);
        if let Some(c) = &h.cfg {
            check_cfg(c, out);
        }
    }
    for r in &spec.requests {
        check_ident(&r.name, out);
        types.add(&r.name, out);
    }
    for (name, sp) in &types.seen {
        if RESERVED_TYPES.contains(&name.as_str()) {
            out.push(
                sp.loc
                    .error(format!("`{name}` is a name the runtime already uses"))
                    .hint("choose another name"),
            );
        }
    }
}

/// The conversion check: positions from the conversion table, enum and flag types,
/// callback slots.
struct ConvCheck<'a> {
    enums: Vec<(&'a str, EnumKind)>,
    enum_names: Vec<&'a str>,
    /// Whether `enums` is every enum there is (otherwise unknown names are left to
    /// rustc).
    closed: bool,
}

impl ConvCheck<'_> {
    fn check(&self, conv: &Sp<Conv>, slots: &[&str], at: Position, out: &mut Vec<Diagnostic>) {
        let (enums, enum_names) = (&self.enums, &self.enum_names);
        let def = conv.value.def();
        if !def.allows(at) {
            let hint = match (&conv.value, at) {
                (Conv::Status, _) => "a method's status is its `returns = \"status\"`".to_string(),
                _ => format!("`{}` is allowed as {}", def.name, def.allowed()),
            };
            out.push(
                conv.loc
                    .error(format!(
                        "conversion `{}` cannot be {}",
                        def.name,
                        at.describe()
                    ))
                    .hint(hint),
            );
            return;
        }
        if let Conv::Enum(t) | Conv::Flags(t) = &conv.value {
            let name = Sp {
                value: t.clone(),
                loc: conv.loc.clone(),
            };
            if !is_ident(t) {
                check_name(
                    &name,
                    "type name (`type` names an enum or flag set of `uv`)",
                    out,
                );
                return;
            }
        }
        let (ty, want) = match &conv.value {
            Conv::Enum(t) => (t, EnumKind::Enum),
            Conv::Flags(t) => (t, EnumKind::Flags),
            Conv::Callback(slot) => {
                if !slots.contains(&slot.as_str()) {
                    let name = Sp {
                        value: slot.clone(),
                        loc: conv.loc.clone(),
                    };
                    unknown_ref(
                        &name,
                        "callback slot",
                        slots,
                        "add a [[callback]] with that name",
                        out,
                    );
                }
                return;
            }
            _ => return,
        };
        match enums.iter().find(|e| e.0 == ty.as_str()) {
            None if !self.closed => {}
            None => {
                let name = Sp {
                    value: ty.clone(),
                    loc: conv.loc.clone(),
                };
                unknown_ref(&name, "enum", enum_names, "add it under spec/enums/", out)
            }
            Some((_, kind)) if *kind != want => out.push(
                conv.loc
                    .error(format!(
                        "`{ty}` is not a {}",
                        if want == EnumKind::Flags {
                            "flag set"
                        } else {
                            "plain enum"
                        }
                    ))
                    .hint(format!(
                        "use conv = \"{}\"",
                        if want == EnumKind::Flags {
                            "enum"
                        } else {
                            "flags"
                        }
                    )),
            ),
            _ => {}
        }
    }
}

/// One handle file: its callbacks, constructors, methods and properties.
fn handle(spec: &Spec, h: &HandleSpec, convs: &ConvCheck<'_>, out: &mut Vec<Diagnostic>) {
    contract_rules(spec, h, out);
    handle_struct(h, out);
    c_names(h, out);
    let slots: Vec<&str> = h.callbacks.iter().map(|c| c.name.as_str()).collect();
    let mut slot_names = Names::new("callback slot");
    for c in &h.callbacks {
        check_ident(&c.name, out);
        slot_names.add(&c.name, out);
        arg_names(&c.args, CALLBACK_ARG_RESERVED, false, out);
        for a in &c.args {
            convs.check(&a.conv, &slots, Position::CallbackArg, out);
        }
        check_ok(c, out);
    }
    let mut method_names = Names::new("method");
    // The functions the generator adds beside the spec's (`<name>_raw` for a
    // descriptor, `<name>_internal`, `<name>_placed`) take their names too.
    let mut generated = Vec::new();
    let fd_raw = |name: &Sp<String>, args: &[ArgSpec]| {
        args.iter()
            .any(|a| a.conv.value.is_fd_ownership())
            .then(|| Sp {
                value: format!("{}_raw", name.value),
                loc: name.loc.clone(),
            })
    };
    for c in &h.constructors {
        check_ident(&c.name, out);
        method_names.add(&c.name, out);
        arg_names(&c.args, HANDLE_ARG_RESERVED, false, out);
        for a in &c.args {
            convs.check(&a.conv, &slots, Position::Arg, out);
        }
        if c.manual.is_none() {
            generated.extend(fd_raw(&c.name, &c.args));
            for (flag, suffix) in [(&c.internal, "internal"), (&c.placed, "placed")] {
                if flag.is_some() {
                    generated.push(Sp {
                        value: format!("{}_{suffix}", c.name.value),
                        loc: c.name.loc.clone(),
                    });
                }
            }
        }
    }
    for m in &h.methods {
        let has_cb = m.args.iter().any(|a| a.conv.value == Conv::RequestCallback);
        match (&m.request, has_cb) {
            (Some(r), false) => out.push(
                r.loc
                    .error("a method that starts a request needs a `request_callback` argument")
                    .hint("add { name = \"callback\", conv = \"request_callback\" } where the C callback goes"),
            ),
            (None, true) => out.push(
                m.name
                    .loc
                    .error("`request_callback` needs the method's `request` (its C request type)")
                    .hint("add request = \"uv_..._t\""),
            ),
            _ => {}
        }
        check_ident(&m.name, out);
        method_names.add(&m.name, out);
        if BASE_METHODS.contains(&m.name.as_str()) {
            out.push(
                m.name
                    .loc
                    .error(format!(
                        "every handle already has a method `{}`",
                        m.name.value
                    ))
                    .hint("choose another name"),
            );
        }
        let request: &[&str] = if m.request.is_some() {
            HANDLE_REQUEST_ARG_RESERVED
        } else {
            &[]
        };
        let reserved: Vec<&str> = HANDLE_ARG_RESERVED.iter().chain(request).copied().collect();
        arg_names(&m.args, &reserved, false, out);
        for a in &m.args {
            convs.check(&a.conv, &slots, Position::Arg, out);
        }
        // `noop` answers a closed handle with the value's `Default`, which the
        // enums, flag sets and addresses have not (a rustc error inside the
        // generated code), and the out-parameter readers never took it.
        let no_default = matches!(
            m.returns,
            Returns::SocketAddr | Returns::Path | Returns::Value(Conv::Enum(_) | Conv::Flags(_))
        );
        if m.on_closed == OnClosed::Noop && no_default && m.manual.is_none() {
            out.push(
                m.name
                    .loc
                    .error(format!(
                        "`on_closed = \"noop\"` answers a closed handle with a default value, which the result of `{}` has not",
                        m.name.value
                    ))
                    .hint("remove on_closed (a closed handle is then `ClosedHandle`)"),
            );
        }
        if m.manual.is_none() {
            generated.extend(fd_raw(&m.name, &m.args));
        }
    }
    let setters: Vec<Sp<String>> = h
        .properties
        .iter()
        .filter(|p| p.set.is_some())
        .map(|p| Sp {
            value: format!("set_{}", p.name.value),
            loc: p.name.loc.clone(),
        })
        .collect();
    for p in &h.properties {
        check_ident(&p.name, out);
        if p.get.is_some() {
            method_names.add(&p.name, out);
        }
        convs.check(&p.conv, &slots, Position::Property, out);
    }
    for s in &setters {
        method_names.add(s, out);
    }
    for g in &generated {
        method_names.add(g, out);
    }
}

/// Names the generated code of a handle's constructors and methods binds around
/// the arguments (the libuv struct, the C result, the init closure's parameters,
/// the out-parameters, ...): an argument of one of these names would be shadowed
/// by it, or shadow it.
const HANDLE_ARG_RESERVED: &[&str] = &[
    "raw", "rc", "slots", "l", "h", "e", "out", "len", "loop_", "inner", "place",
];

/// Also taken in a handle method that starts a request (`request`): the start
/// closure's parameters, the request and its completion trampoline, which the C
/// call takes with the arguments.
const HANDLE_REQUEST_ARG_RESERVED: &[&str] = &["req", "done"];

/// As [`HANDLE_ARG_RESERVED`], for a callback's arguments (the trampoline's
/// struct, the dispatch closure's parameters).
const CALLBACK_ARG_RESERVED: &[&str] = &["raw", "cb", "h"];

/// As [`HANDLE_ARG_RESERVED`], for a request function's arguments (the added
/// callback, the request, the closures' parameters).
const REQUEST_ARG_RESERVED: &[&str] = &[
    "loop_", "callback", "req", "done", "l", "op", "d", "slot", "e",
];

/// A function's argument names: each an identifier, used once, not a name the
/// generated code binds around them (`reserved`, and any name starting with `__`),
/// and, for a request function, not `<path>_buf` of a `c_str_path` argument (the
/// buffer its C string is built in). Each was a rustc error inside the generated
/// code before.
fn arg_names(args: &[ArgSpec], reserved: &[&str], request: bool, out: &mut Vec<Diagnostic>) {
    let mut names = Names::new("argument");
    for a in args {
        check_ident(&a.name, out);
        names.add(&a.name, out);
        let bufs = || {
            args.iter()
                .filter(|b| request && b.conv.value == Conv::CStrPath)
                .any(|b| format!("{}_buf", b.name.value) == a.name.value)
        };
        if reserved.contains(&a.name.as_str()) || a.name.starts_with("__") || bufs() {
            out.push(
                a.name
                    .loc
                    .error(format!(
                        "argument name `{}` is taken by the generated code",
                        a.name.value
                    ))
                    .hint(format!(
                        "choose another name (not {}, or a name starting with `__`{})",
                        reserved.join(", "),
                        if request {
                            ", or `<path>_buf` of a path"
                        } else {
                            ""
                        }
                    )),
            );
        }
    }
}

/// The C names of a handle file the emitters name in the generated code, and the
/// C functions of its properties, which have no `requires`, `before` or `after`:
/// a function whose call needs one of those, or whose first argument a rule
/// fixes, is refused there (a setter calling `uv_tcp_open` with a raw descriptor
/// gave libuv a descriptor safe code did not own, of any kind).
fn c_names(h: &HandleSpec, out: &mut Vec<Diagnostic>) {
    for c in &h.callbacks {
        check_name(&c.c_type, "C callback type", out);
    }
    for k in &h.constructors {
        check_name(&k.c, "C function name", out);
    }
    for m in &h.methods {
        if let Some(c) = &m.c {
            check_name(c, "C function name", out);
        }
        if let Some(r) = &m.request {
            check_name(r, "C request type", out);
        }
    }
    for p in &h.properties {
        for f in p.get.iter().chain(p.set.iter()) {
            if !is_ident(f) {
                check_name(f, "C function name", out);
                continue;
            }
            let why = if let Some(r) = ArgRule::find(f) {
                Some(format!(
                    "takes its argument through {} ({})",
                    r.spelled(),
                    r.why
                ))
            } else if let Some(r) = StateRule::guarding(f).next() {
                Some(format!(
                    "needs the state check `{}` before the call ({}; `{}` otherwise)",
                    r.name, r.doc, r.code
                ))
            } else if let Some(r) = HookRule::guarding(f).next() {
                Some(format!(
                    "needs the runtime's hook `{}` {} the call: it {}",
                    r.name,
                    r.slot.key(),
                    r.doc
                ))
            } else {
                // Called by the runtime core only: refused as in a method.
                reserved_fn(f, out);
                None
            };
            if let Some(why) = why {
                out.push(
                    f.loc
                        .error(format!(
                            "`{}` {why}, which a [[property]] does not do",
                            f.value
                        ))
                        .hint("call it from a [[method]] that states what it needs"),
                );
            }
        }
    }
}

/// A request file's function names (each generated function also takes
/// `<name>_async` and `<name>_sync`) and argument names.
fn request_names(r: &RequestSpec, out: &mut Vec<Diagnostic>) {
    let mut fns = Names::new("function");
    for m in &r.methods {
        check_ident(&m.name, out);
        fns.add(&m.name, out);
        arg_names(&m.args, REQUEST_ARG_RESERVED, true, out);
    }
    if r.manual.is_some() {
        return;
    }
    let derived: Vec<Sp<String>> = r
        .methods
        .iter()
        .filter(|m| m.manual.is_none())
        .flat_map(|m| {
            ["async", "sync"].map(|s| Sp {
                value: format!("{}_{s}", m.name.value),
                loc: m.name.loc.clone(),
            })
        })
        .collect();
    for d in &derived {
        fns.add(d, out);
    }
}

/// A generated request file (not `manual`): `cleanup`, and for each function `c`,
/// a known `result` and value arguments.
fn request_rules(r: &RequestSpec, out: &mut Vec<Diagnostic>) {
    if r.manual.is_some() {
        return;
    }
    // (`c_type` is one of REQUEST_STRUCTS, checked below.)
    if let Some(c) = &r.cleanup {
        check_name(c, "C function name", out);
    }
    for c in &r.callbacks {
        check_name(&c.c_type, "C callback type", out);
    }
    for c in r
        .methods
        .iter()
        .filter(|m| m.manual.is_none())
        .filter_map(|m| m.c.as_ref())
    {
        check_name(c, "C function name", out);
    }
    match REQUEST_STRUCTS
        .iter()
        .find(|(t, _)| *t == r.c_type.as_str())
    {
        None => {
            let names: Vec<&str> = REQUEST_STRUCTS.iter().map(|(t, _)| *t).collect();
            out.push(
                r.c_type
                    .loc
                    .error(format!(
                        "`{}` is not a request struct a generated request file can use",
                        r.c_type.value
                    ))
                    .hint(format!(
                        "c_type is {} (other requests are hand-written: manual = \"where\")",
                        names.join(", ")
                    )),
            );
        }
        Some((_, want)) => {
            if let Some(c) = r.cleanup.as_ref().filter(|c| c.as_str() != *want) {
                out.push(
                    c.loc
                        .error(format!(
                            "`{}` does not free a completed `{}`",
                            c.value, r.c_type.value
                        ))
                        .hint(format!("cleanup = \"{want}\"")),
                );
            }
        }
    }
    if r.cleanup.is_none() {
        out.push(
            r.name
                .loc
                .error("a request file that is not `manual` needs `cleanup`")
                .hint("cleanup = \"uv_fs_req_cleanup\" (the C function that frees a completed request), or manual = \"where it is hand-written\""),
        );
    }
    let names: Vec<&str> = crate::conv::REQUEST_RESULTS
        .iter()
        .map(|d| d.name)
        .collect();
    for m in r.methods.iter().filter(|m| m.manual.is_none()) {
        if let Some(c) = &m.c {
            reserved_fn(c, out);
            request_fit(c, m, out);
        }
        match &m.result {
            None => out.push(
                m.name
                    .loc
                    .error("a request function needs `result`: how the completed request gives its value")
                    .hint(format!("result is one of {}", names.join(", "))),
            ),
            Some(res) => match crate::conv::find_result(res) {
                None => {
                    unknown_ref(res, "request result", &names, "see `result` in spec/README.md", out)
                }
                Some(d) => {
                    if let Some(want) = d.from_arg {
                        if !m.args.iter().any(|a| a.conv.value.name() == want) {
                            out.push(
                                res.loc
                                    .error(format!(
                                        "result `{}` reads the `{want}` argument, which this function does not have",
                                        d.name
                                    ))
                                    .hint(format!("add an argument with conv = \"{want}\"")),
                            );
                        }
                    }
                }
            },
        }
        for a in &m.args {
            if a.conv.value != Conv::Unused
                && a.conv
                    .value
                    .rust_ty(&proc_macro2::TokenStream::new())
                    .is_none()
            {
                out.push(
                    a.conv
                        .loc
                        .error(format!(
                            "conversion `{}` cannot be an argument of a request function",
                            a.conv.value.name()
                        ))
                        .hint("request functions take values; the generator adds the completion callback"),
                );
            }
        }
    }
}

/// The precondition keys: `allow` on flag arguments, descriptor ownership, `requires`.
fn contract_rules(spec: &Spec, h: &HandleSpec, out: &mut Vec<Diagnostic>) {
    let check_args = |args: &[ArgSpec], where_: &str, fd_ok: bool, out: &mut Vec<Diagnostic>| {
        let mut fds = 0;
        for (i, a) in args.iter().enumerate() {
            if let Some(flag) = &a.min_1s_if {
                if !matches!(a.conv.value, Conv::DurationS | Conv::U32) {
                    out.push(
                        flag.loc
                            .error("`min_1s_if` only applies to `duration_s` and `u32` arguments")
                            .hint("remove it, or use conv = \"duration_s\""),
                    );
                } else if !args[..i]
                    .iter()
                    .any(|b| b.name.as_str() == flag.as_str() && b.conv.value == Conv::Bool)
                {
                    out.push(
                        flag.loc
                            .error(format!("`min_1s_if` names `{}`, which is not a `bool` argument before this one", flag.value))
                            .hint("name a `bool` argument listed earlier"),
                    );
                }
            }
            if let (Some(max), None) = (&a.max, &a.min_1s_if) {
                out.push(
                    max.loc
                        .error("`max` bounds an argument while its `min_1s_if` flag is on, and this one has no `min_1s_if`")
                        .hint("add min_1s_if = \"<a bool argument before it>\", or remove `max`"),
                );
            }
            if a.conv.value.is_fd_ownership() {
                fds += 1;
                if !fd_ok {
                    out.push(
                        a.conv
                            .loc
                            .error(format!(
                                "`owned_fd` and `borrowed_fd` cannot be used {where_}"
                            ))
                            .hint("use them for constructor and method arguments"),
                    );
                } else if fds > 1 {
                    out.push(
                        a.conv
                            .loc
                            .error("a function takes at most one `owned_fd` or `borrowed_fd` argument")
                            .hint("the error hands back one value; split the function or mark it manual"),
                    );
                }
            }
            if a.allow.is_empty() {
                continue;
            }
            let Conv::Flags(ty) = &a.conv.value else {
                out.push(
                    a.allow[0]
                        .loc
                        .error("`allow` only applies to `flags` arguments")
                        .hint("remove it, or use conv = \"flags\""),
                );
                continue;
            };
            for m in &a.allow {
                check_name(m, "member name", out);
            }
            let Some(e) = spec.enums.iter().find(|e| e.name.as_str() == ty.as_str()) else {
                continue; // An enum of another crate: rustc checks the names.
            };
            let names: Vec<&str> = e.members.iter().map(|m| m.name.as_str()).collect();
            for m in &a.allow {
                if !names.contains(&m.as_str()) {
                    unknown_ref(
                        m,
                        &format!("member of {ty}"),
                        &names,
                        "name a [[member]] of the flag set",
                        out,
                    );
                }
            }
        }
    };
    for c in &h.callbacks {
        // Descriptors there are refused by the position check of `validate`.
        check_args(&c.args, "as callback arguments", true, out);
        let Some(a) = &c.after else { continue };
        match CallbackHookRule::find(a.as_str()) {
            None => {
                let names: Vec<&str> = CallbackHookRule::ALL.iter().map(|r| r.name).collect();
                unknown_ref(
                    a,
                    "callback hook of the runtime",
                    &names,
                    "see `after` under [[callback]] in spec/README.md",
                    out,
                );
            }
            Some(rule) if !rule.c_types.contains(&h.c_type.as_str()) => out.push(
                a.loc
                    .error(format!(
                        "the runtime's callback hook `{}` takes {} handles",
                        rule.name,
                        rule.c_types.join(", ")
                    ))
                    .hint("remove it"),
            ),
            Some(_) => {}
        }
    }
    // A C function after whose deliveries libuv does something the runtime must
    // do first is called only when every generated trampoline of the type runs
    // that hook, whoever writes the spec file.
    for m in &h.methods {
        let (Some(f), None) = (&m.c, &m.manual) else {
            continue;
        };
        for rule in CallbackHookRule::ALL
            .iter()
            .filter(|r| r.required_by.contains(&f.as_str()))
        {
            for cb in h.callbacks.iter().filter(|c| {
                c.manual.is_none() && c.after.as_ref().map(|a| a.as_str()) != Some(rule.name)
            }) {
                out.push(
                    cb.name
                        .loc
                        .error(format!(
                            "method `{}` calls `{}`: callback `{}` needs the runtime's hook `{}` after it: it {}",
                            m.name.value, f.value, cb.name.value, rule.name, rule.doc
                        ))
                        .hint(format!("after = \"{}\"", rule.name)),
                );
            }
        }
    }
    for c in &h.constructors {
        check_args(&c.args, "here", true, out);
        if c.manual.is_none() {
            arg_rule(&c.c, &c.args, out);
            handle_kind(&c.c, &c.args, out);
        }
    }
    for m in &h.methods {
        check_args(
            &m.args,
            "in a method that starts a request",
            m.request.is_none(),
            out,
        );
        for (slot, hook) in [(HookSlot::Before, &m.before), (HookSlot::After, &m.after)] {
            let key = slot.key();
            let Some(a) = hook else { continue };
            check_ident(a, out);
            // A hook of the caller's after a call that took a descriptor decides
            // the method's result after libuv took it: its error handed the
            // descriptor back though libuv owned it (closed twice), and a close
            // in it made the descriptor look not taken (closed again).
            let takes_fd = m
                .args
                .iter()
                .any(|x| matches!(x.conv.value, Conv::OwnedFd(_) | Conv::BorrowedFd(_)));
            if slot == HookSlot::After && takes_fd && HookRule::find(a.as_str()).is_none() {
                out.push(
                    a.loc
                        .error(format!(
                            "a hook of the type's own (`{}`) after a call that takes a descriptor would decide the method's result once libuv owns the descriptor",
                            a.value
                        ))
                        .hint("call it from a method of its own, after this one"),
                );
            }
            if let Some(rule) = HookRule::find(a.as_str()) {
                if rule.slot != slot {
                    out.push(
                        a.loc
                            .error(format!(
                                "the runtime's hook `{}` runs {} the call",
                                rule.name,
                                rule.slot.key()
                            ))
                            .hint(format!("name it in `{}`", rule.slot.key())),
                    );
                } else if rule.reads_delivery_mark {
                    for cb in h
                        .callbacks
                        .iter()
                        .filter(|c| !c.marks_delivery.as_ref().is_some_and(|m| m.value))
                    {
                        out.push(
                            cb.name
                                .loc
                                .error(format!(
                                    "the runtime's hook `{}` (method `{}`) reads the delivery mark: callback `{}` must set it",
                                    rule.name, m.name.value, cb.name.value
                                ))
                                .hint("marks_delivery = true"),
                        );
                    }
                }
                if !rule.c_types.contains(&h.c_type.as_str()) {
                    out.push(
                        a.loc
                            .error(format!(
                                "the runtime's hook `{}` takes {} handles",
                                rule.name,
                                rule.c_types.join(", ")
                            ))
                            .hint("remove it"),
                    );
                }
            }
            if m.request.is_some() {
                out.push(
                    a.loc
                        .error(format!(
                            "`{key}` does not apply to a method that starts a request"
                        ))
                        .hint("remove it"),
                );
            }
        }
        if let Some(b) = &m.makes_socket {
            if m.request.is_none() || h.parent != HandleParent::Stream {
                out.push(
                    b.loc
                        .error("`makes_socket` applies to stream methods that start a request")
                        .hint("remove it"),
                );
            }
        }
        for r in &m.requires {
            match StateRule::find(r.as_str()) {
                None => {
                    let names: Vec<&str> = StateRule::ALL.iter().map(|s| s.name).collect();
                    unknown_ref(
                        r,
                        "handle state",
                        &names,
                        "see `requires` in spec/README.md",
                        out,
                    );
                }
                Some(StateRule { c_types: None, .. }) if h.parent != HandleParent::Stream => out
                    .push(
                        r.loc
                            .error(format!(
                                "state `{}` applies to stream handles only",
                                r.value
                            ))
                            .hint("remove it, or set parent = \"stream\""),
                    ),
                Some(StateRule {
                    c_types: Some(ts), ..
                }) if !ts.contains(&h.c_type.as_str()) => out.push(
                    r.loc
                        .error(format!(
                            "state `{}` applies to {} handles only",
                            r.value,
                            ts.iter()
                                .map(|t| format!("`{t}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                        .hint("remove it"),
                ),
                Some(_) => {}
            }
        }
        if let (Some(c), None) = (&m.c, &m.manual) {
            arg_rule(c, &m.args, out);
            handle_kind(c, &m.args, out);
            reserved_fn(c, out);
        }
        // A C function whose libuv assertion a state guards is called only with
        // that state checked, and one that needs a hook of the runtime only with
        // that hook, whoever writes the spec file.
        if let (Some(c), None) = (&m.c, &m.manual) {
            for rule in HookRule::guarding(c.as_str()) {
                let named = match rule.slot {
                    HookSlot::Before => &m.before,
                    HookSlot::After => &m.after,
                };
                if named.as_ref().map(|n| n.as_str()) != Some(rule.name) {
                    out.push(
                        c.loc
                            .error(format!(
                                "`{}` needs the runtime's hook `{}` {} the call: it {}",
                                c.value,
                                rule.name,
                                rule.slot.key(),
                                rule.doc
                            ))
                            .hint(format!("{} = \"{}\"", rule.slot.key(), rule.name)),
                    );
                }
            }
            for rule in StateRule::guarding(c.as_str()) {
                if !m.requires.iter().any(|r| r.as_str() == rule.name) {
                    out.push(
                        c.loc
                            .error(format!(
                                "`{}` needs the state check `{}` before the call: {} (`{}` otherwise)",
                                c.value, rule.name, rule.doc, rule.code
                            ))
                            .hint(format!("add \"{}\" to the method's `requires`", rule.name)),
                    );
                }
            }
        }
    }
}

/// A C function whose first argument's conversion checks a libuv precondition
/// (a descriptor's owner and kind, a flag set, a socket name's length) gets it
/// through the conversion its [`ArgRule`] names, whoever writes the spec file.
fn arg_rule(c: &Sp<String>, args: &[ArgSpec], out: &mut Vec<Diagnostic>) {
    let Some(rule) = ArgRule::find(c.as_str()) else {
        return;
    };
    // The C function's first parameter after the handle (and the loop) is the
    // spec's first argument.
    let (loc, name) = match args.first() {
        Some(a) if rule.accepts(&a.conv.value) => return,
        Some(a) => (&a.conv.loc, format!("`{}`", a.name.value)),
        None => (&c.loc, "its first argument".to_string()),
    };
    out.push(
        loc.error(format!(
            "`{}` takes {name} through {} ({})",
            c.value,
            rule.spelled(),
            rule.why
        ))
        .hint(format!("the first argument, with {}", rule.spelled())),
    );
}

/// A descriptor kind read from the handle ([`FdKind::reads_handle`]: an IPC
/// pipe's) is for the C function whose handle has it, `uv_pipe_open`: elsewhere the
/// generated check would read a field the handle does not have, or no handle.
fn handle_kind(c: &Sp<String>, args: &[ArgSpec], out: &mut Vec<Diagnostic>) {
    for a in args {
        let kind = match &a.conv.value {
            Conv::OwnedFd(k) | Conv::BorrowedFd(k) => *k,
            _ => continue,
        };
        if kind.reads_handle() && c.as_str() != "uv_pipe_open" {
            out.push(
                a.conv
                    .loc
                    .error(format!(
                        "kind `ipc_aware_pipe` reads the `ipc` flag of the pipe handle `uv_pipe_open` is called on, not of `{}`",
                        c.value
                    ))
                    .hint("use kind = \"pipe\""),
            );
        }
    }
}

/// A C function only the runtime core calls ([`ReservedFn`]) is refused in a spec
/// method, whoever writes the spec file.
fn reserved_fn(c: &Sp<String>, out: &mut Vec<Diagnostic>) {
    if let Some(r) = ReservedFn::find(c.as_str()) {
        out.push(
            c.loc
                .error(format!("`{}` {}", c.value, r.why))
                .hint(format!("use {}, or mark the method manual", r.instead)),
        );
    }
}

/// A request function's result reader and argument conversions fit its C
/// function ([`crate::conv::ResultDef::c_fns`], [`CONV_FNS`]), whoever writes the
/// spec file: a reader of another function's request reads what that request
/// never set, and a buffer conversion of another function lends memory the call
/// must not read or write.
fn request_fit(c: &Sp<String>, m: &MethodSpec, out: &mut Vec<Diagnostic>) {
    if let Some(d) = m.result.as_ref().and_then(|r| crate::conv::find_result(r)) {
        if !d.c_fns.is_empty() && !d.c_fns.contains(&c.as_str()) {
            let res = m.result.as_ref().expect("found above");
            out.push(
                res.loc
                    .error(format!(
                        "result `{}` reads what only {} set{}, not `{}`",
                        d.name,
                        d.c_fns.join(", "),
                        if d.c_fns.len() == 1 { "s" } else { "" },
                        c.value
                    ))
                    .hint("pick the result of this C function (`status` or `count` read only `result`)"),
            );
        }
    }
    if let (Some((_, want)), Some(res)) = (
        OWNING_RESULTS.iter().find(|(f, _)| *f == c.as_str()),
        m.result.as_ref(),
    ) {
        if res.as_str() != *want {
            out.push(
                res.loc
                    .error(format!(
                        "`{}` makes what its result `{want}` owns (a descriptor or a directory stream the request's cleanup leaves open); result `{}` would leak it",
                        c.value, res.value
                    ))
                    .hint(format!("result = \"{want}\"")),
            );
        }
    }
    if let Some((_, at)) = FILE_ARGS.iter().find(|(f, _)| *f == c.as_str()) {
        for &i in *at {
            let (loc, name) = match m.args.get(i) {
                Some(a) if a.conv.value.name() == "file" => continue,
                Some(a) => (&a.conv.loc, format!("`{}`", a.name.value)),
                None => (&c.loc, format!("argument {}", i + 1)),
            };
            out.push(
                loc.error(format!(
                    "`{}` takes {name} through conv = \"file\" (a descriptor number reaches any open file of the process, those libuv and the runtime own included)",
                    c.value
                ))
                .hint(format!(
                    "argument {} with conv = \"file\" (a `uv::File` the request keeps open)",
                    i + 1
                )),
            );
        }
    }
    for a in &m.args {
        let name = a.conv.value.name();
        if let Some((_, fns)) = CONV_FNS.iter().find(|(n, _)| *n == name) {
            if !fns.contains(&c.as_str()) {
                out.push(
                    a.conv
                        .loc
                        .error(format!(
                            "conversion `{name}` is for {} only, not `{}`",
                            fns.join(", "),
                            c.value
                        ))
                        .hint("its buffers fit that call only; mark the function manual"),
                );
            }
        }
    }
}

/// A handle file's struct is a libuv handle struct, made by one of its init
/// functions, and a stream only if it is one ([`HandleStruct`]), whoever writes
/// the spec file: the runtime core treats the struct as a handle (a request struct
/// made by a request function crashed when it was closed) and the stream core as
/// a stream (an idle handle declared as one reached libuv's assertion in
/// `uv_write`, after reads past its allocation).
fn handle_struct(h: &HandleSpec, out: &mut Vec<Diagnostic>) {
    let Some(st) = HandleStruct::find(h.c_type.as_str()) else {
        let names: Vec<&str> = HandleStruct::ALL.iter().map(|s| s.c_type).collect();
        out.push(
            h.c_type
                .loc
                .error(format!("`{}` is not a libuv handle struct", h.c_type.value))
                .hint(format!("c_type is one of {}", names.join(", "))),
        );
        return;
    };
    if h.parent == HandleParent::Stream && !st.stream {
        out.push(
            h.c_type
                .loc
                .error(format!("`{}` is not a stream", h.c_type.value))
                .hint("remove parent = \"stream\" (uv_tcp_t, uv_pipe_t and uv_tty_t are streams)"),
        );
    }
    for k in h.constructors.iter().filter(|k| k.manual.is_none()) {
        if st.inits.is_empty() {
            out.push(
                k.c.loc
                    .error(format!(
                        "a `{}` is made by hand-written code only, not by a generated constructor",
                        h.c_type.value
                    ))
                    .hint("mark the constructor manual = \"where it is written\""),
            );
        } else if !st.inits.contains(&k.c.as_str()) {
            out.push(
                k.c.loc
                    .error(format!(
                        "`{}` does not make a `{}`",
                        k.c.value, h.c_type.value
                    ))
                    .hint(format!("a constructor calls {}", st.inits.join(" or "))),
            );
        }
    }
}

/// A callback's `ok` list: it needs exactly one `status` argument, and names other
/// arguments of the callback, each once.
fn check_ok(c: &CallbackSpec, out: &mut Vec<Diagnostic>) {
    let Some(first) = c.ok.first() else {
        return;
    };
    let statuses: Vec<&ArgSpec> = c
        .args
        .iter()
        .filter(|a| a.conv.value == Conv::Status)
        .collect();
    if statuses.len() != 1 {
        out.push(
            first
                .loc
                .error("`ok` folds arguments into the `Ok` value of the callback's status, but the callback has no single `status` argument")
                .hint("add one argument with conv = \"status\", or remove `ok`"),
        );
        return;
    }
    let mut seen: Vec<&str> = Vec::new();
    for o in &c.ok {
        match c.args.iter().find(|a| a.name.as_str() == o.value) {
            None => out.push(
                o.loc
                    .error(format!(
                        "`ok` names `{}`, which is not an argument of this callback",
                        o.value
                    ))
                    .hint("name one of the callback's `args`"),
            ),
            Some(a) if a.conv.value == Conv::Status => out.push(
                o.loc
                    .error("`ok` cannot name the status itself")
                    .hint("name the arguments that are valid when the status is a success"),
            ),
            Some(_) if seen.contains(&o.value.as_str()) => out.push(
                o.loc
                    .error(format!("`ok` names `{}` twice", o.value))
                    .hint("name each argument once"),
            ),
            Some(_) => seen.push(&o.value),
        }
    }
}
