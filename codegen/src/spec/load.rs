//! Reading spec files into the model. Each function takes a table reader and
//! returns what it could read; every problem goes to the diagnostics.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::reader::{Cx, Sp, Table};
use super::*;
use crate::conv::{self, Param, Position};
use crate::diag::{Diagnostic, Diagnostics, SourceFile};

/// What one spec file holds.
#[derive(Debug)]
pub enum SpecFile {
    /// `[[code]]` entries.
    StatusCodes(StatusCodes),
    /// `[[category]]` entries.
    Errors(Vec<Category>),
    /// An `[enum]`.
    Enum(EnumSpec),
    /// A `[handle]`.
    Handle(HandleSpec),
    /// A `[request]`.
    Request(RequestSpec),
    /// `[[function]]` entries.
    Functions(Vec<FunctionEntry>),
}

/// Reads one spec file. `display` is the path shown in diagnostics.
pub fn load_file(display: &Path, text: &str) -> Result<SpecFile, Diagnostics> {
    let file = SourceFile::new(display, text);
    let diags = RefCell::new(Vec::new());
    let cx = Cx {
        file: file.clone(),
        diags: &diags,
    };
    let (doc, errors) = DeTable::parse_recoverable(text);
    for e in errors {
        let span = e.span().unwrap_or(0..0);
        let msg = e.message().trim().to_string();
        cx.push(
            cx.loc(span)
                .error(format!("TOML syntax: {msg}"))
                .hint("see https://toml.io for the syntax"),
        );
    }
    let root = Table::new(&cx, doc.get_ref(), doc.span(), "the file");
    let has = |k: &str| doc.get_ref().contains_key(k);
    let out = if has("handle") {
        handle(&root).map(SpecFile::Handle)
    } else if has("request") {
        request(&root).map(SpecFile::Request)
    } else if has("enum") {
        enum_file(&root).map(SpecFile::Enum)
    } else if has("code") {
        status_codes(&root).map(SpecFile::StatusCodes)
    } else if has("category") {
        Some(SpecFile::Errors(
            root.tables("category")
                .iter()
                .filter_map(category)
                .collect(),
        ))
    } else if has("function") {
        Some(SpecFile::Functions(
            root.tables("function")
                .iter()
                .filter_map(function)
                .collect(),
        ))
    } else {
        if diags.borrow().is_empty() {
            cx.push(
                cx.loc(0..0)
                    .error("cannot tell what this spec file describes")
                    .hint("a spec file has one of [handle], [request], [enum], [[code]], [[category]] or [[function]]"),
            );
        }
        None
    };
    root.finish();
    let diags = diags.into_inner();
    match out {
        Some(f) if diags.is_empty() => Ok(f),
        _ => Err(Diagnostics(diags)),
    }
}

fn doc_of(t: &Table) -> String {
    t.str_opt("doc").map(|s| s.value).unwrap_or_default()
}

fn ignores(t: &Table) -> Vec<Ignore> {
    t.tables("ignore")
        .iter()
        .filter_map(|i| {
            let c = i.str_req("c");
            let reason = i.str_req("reason");
            i.finish();
            Some(Ignore {
                c: c?,
                reason: reason?.value,
            })
        })
        .collect()
}

fn status_codes(root: &Table) -> Option<StatusCodes> {
    let c_type = root.str_req("c_type");
    let ignore = ignores(root);
    let codes = root
        .tables("code")
        .iter()
        .filter_map(|t| {
            let name = t.str_req("name");
            let doc = doc_of(t);
            let category = t.str_opt("category");
            let io_kind = t.str_opt("io_kind");
            t.finish();
            Some(StatusCodeSpec {
                name: name?,
                doc,
                category,
                io_kind,
            })
        })
        .collect();
    Some(StatusCodes {
        c_type: c_type?,
        codes,
        ignore,
        loc: root.loc(),
    })
}

fn category(t: &Table) -> Option<Category> {
    let name = t.str_req("name");
    let parents = t.str_list("parents");
    let io_kind = t.str_opt("io_kind");
    let doc = doc_of(t);
    let library_code = t.str_opt("library_code");
    let message = t.str_opt("message").map(|m| m.value);
    if library_code.is_some() != message.is_some() {
        t.cx().push(
            t.loc()
                .error("a library error needs both `library_code` and `message`")
                .hint("add the missing one, or remove both for a libuv category"),
        );
    }
    t.finish();
    Some(Category {
        name: name?,
        parents,
        io_kind,
        doc,
        library_code,
        message,
    })
}

fn function(t: &Table) -> Option<FunctionEntry> {
    let c = t.str_req("c");
    let manual = t.str_opt("manual");
    let ignore = t.str_opt("ignore");
    let todo = t.str_opt("todo");
    t.finish();
    let (status, reason) = match (manual, ignore, todo) {
        (Some(m), None, None) => (FunctionStatus::Manual, m.value),
        (None, Some(i), None) => (FunctionStatus::Ignored, i.value),
        (None, None, Some(t)) => (FunctionStatus::Todo, t.value),
        _ => {
            t.cx().push(
                t.loc()
                    .error("a [[function]] entry needs exactly one of `manual`, `ignore` and `todo`")
                    .hint(
                        "write manual = \"where it is bound\", ignore = \"why it is left out\" or todo = \"what will bind it\"",
                    ),
            );
            return None;
        }
    };
    Some(FunctionEntry {
        c: c?,
        status,
        reason,
    })
}

fn enum_file(root: &Table) -> Option<EnumSpec> {
    let t = root.table_req("enum")?;
    let name = t.str_req("name");
    let kind = t.str_opt("kind");
    let c_type = t.str_opt("c_type");
    let doc = doc_of(&t);
    t.finish();
    let kind = match kind.as_ref().map(|k| k.as_str()) {
        None | Some("enum") => EnumKind::Enum,
        Some("flags") => EnumKind::Flags,
        Some(other) => {
            let k = kind.as_ref().expect("matched Some");
            root.cx().push(
                k.loc
                    .error(format!("unknown enum kind `{other}`"))
                    .hint("kind is \"enum\" or \"flags\""),
            );
            EnumKind::Enum
        }
    };
    let members = root
        .tables("member")
        .iter()
        .filter_map(|m| {
            let name = m.str_req("name");
            let c = m.str_req("c");
            let doc = doc_of(m);
            let cfg = m.str_opt("cfg");
            m.finish();
            Some(MemberSpec {
                name: name?,
                c: c?,
                doc,
                cfg,
            })
        })
        .collect();
    let ignore = ignores(root);
    Some(EnumSpec {
        name: name?,
        kind,
        c_type,
        doc,
        members,
        ignore,
        loc: root.loc(),
    })
}

fn conv(t: &Table, key: &'static str) -> Option<Sp<Conv>> {
    let c = t.str_opt(key)?;
    let Some(def) = conv::find(&c.value) else {
        let hint = match crate::diag::closest(&c.value, conv::names()) {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!(
                "the conversions are: {}",
                conv::names().collect::<Vec<_>>().join(", ")
            ),
        };
        t.cx().push(
            c.loc
                .error(format!("unknown conversion `{}`", c.value))
                .hint(hint),
        );
        return None;
    };
    let need = |what: &'static str| -> Option<String> {
        match t.str_opt(what) {
            Some(v) => Some(v.value),
            None => {
                t.cx().push(
                    c.loc
                        .error(format!("conversion `{}` needs `{what}`", c.value))
                        .hint(format!("add {what} = \"...\"")),
                );
                None
            }
        }
    };
    let (extra, kind) = match def.param {
        Param::None => (None, FdKind::Any),
        Param::EnumType | Param::FlagsType => (Some(need("type")?), FdKind::Any),
        Param::Slot => (Some(need("callback")?), FdKind::Any),
        Param::FdKind => {
            let kind = match t.str_opt("kind") {
                None => FdKind::Any,
                Some(k) => FdKind::from_name(&k.value).unwrap_or_else(|| {
                    t.cx().push(
                        k.loc
                            .error(format!("unknown descriptor kind `{}`", k.value))
                            .hint(format!("kind is one of {}", FdKind::NAMES.join(", "))),
                    );
                    FdKind::Any
                }),
            };
            (None, kind)
        }
    };
    Some(Sp {
        value: def.make(extra, kind),
        loc: c.loc,
    })
}

fn args(t: &Table) -> Vec<ArgSpec> {
    t.tables("args")
        .iter()
        .filter_map(|a| {
            let name = a.str_req("name");
            let present = a.has("conv");
            let c = conv(a, "conv");
            let allow = a.str_list("allow");
            let min_1s_if = a.str_opt("min_1s_if");
            let max = a.u32_opt("max");
            if !present {
                a.cx()
                    .push(a.loc().error("an argument has no `conv`").hint(format!(
                        "add conv = \"...\"; one of {}",
                        conv::names().collect::<Vec<_>>().join(", ")
                    )));
            }
            a.finish();
            Some(ArgSpec {
                name: name?,
                conv: c?,
                allow,
                min_1s_if,
                max,
            })
        })
        .collect()
}

fn callbacks(root: &Table) -> Vec<CallbackSpec> {
    root.tables("callback")
        .iter()
        .filter_map(|t| {
            let name = t.str_req("name");
            let c_type = t.str_req("c_type");
            let args = args(t);
            let doc = doc_of(t);
            let signature = t.str_opt("signature");
            let manual = t.str_opt("manual");
            let parts = t.str_opt("parts");
            let ok = t.str_list("ok");
            let marks_delivery = t.bool_opt("marks_delivery");
            let after = t.str_opt("after");
            if let (Some(a), Some(_)) = (&after, &manual) {
                t.cx().push(
                    a.loc
                        .error("`after` is for a [[callback]] whose trampoline is generated")
                        .hint(format!(
                            "the hand-written trampoline calls `uv::runtime::hooks::{}` itself; remove `after`",
                            a.value
                        )),
                );
            }
            if let (Some(m), Some(_)) = (&marks_delivery, &manual) {
                if m.value {
                    t.cx().push(
                        m.loc
                            .error("`marks_delivery` is for a [[callback]] whose trampoline is generated")
                            .hint("the hand-written trampoline marks the delivery itself (`uv::runtime::marking_delivery`); remove `marks_delivery`"),
                    );
                }
            }
            if let (Some(p), None) = (&parts, &signature) {
                t.cx().push(
                    p.loc
                        .error("`parts` is for a [[callback]] with a hand-written trampoline")
                        .hint("add `signature` and `manual`, or remove `parts`"),
                );
            }
            if signature.is_some() != manual.is_some() {
                t.cx().push(
                    t.loc()
                        .error("a [[callback]] with a hand-written trampoline needs both `signature` and `manual`")
                        .hint("add the one that is missing"),
                );
            }
            t.finish();
            Some(CallbackSpec {
                name: name?,
                c_type: c_type?,
                args,
                doc,
                signature,
                manual,
                parts,
                ok,
                marks_delivery,
                after,
            })
        })
        .collect()
}

fn returns(t: &Table) -> Returns {
    let Some(r) = t.str_opt("returns") else {
        return Returns::Status;
    };
    let value = |name: &str, extra: Option<String>| {
        conv::find(name)
            .filter(|d| d.allows(Position::Result) && d.param != Param::Slot)
            .map(|d| Returns::Value(d.make(extra, FdKind::Any)))
    };
    let parsed = match r.as_str() {
        "status" => Some(Returns::Status),
        "void" => Some(Returns::Void),
        "count" => Some(Returns::Count),
        "socket_addr" => Some(Returns::SocketAddr),
        "path" => Some(Returns::Path),
        other => match other.split_once(':') {
            Some((k @ ("enum" | "flags"), ty)) => value(k, Some(ty.to_string())),
            Some(_) => None,
            None => conv::find(other)
                .filter(|d| d.param == Param::None)
                .and_then(|_| value(other, None)),
        },
    };
    parsed.unwrap_or_else(|| {
        let results: Vec<_> = conv::TABLE
            .iter()
            .filter(|d| d.allows(Position::Result))
            .map(|d| match d.param {
                Param::EnumType | Param::FlagsType => format!("{}:Type", d.name),
                _ => d.name.to_string(),
            })
            .collect();
        t.cx().push(
            r.loc
                .error(format!("unknown return conversion `{}`", r.value))
                .hint(format!(
                    "returns is one of status, void, count, socket_addr, path, {}",
                    results.join(", ")
                )),
        );
        Returns::Status
    })
}

fn methods(root: &Table) -> Vec<MethodSpec> {
    root.tables("method")
        .iter()
        .filter_map(|t| {
            let name = t.str_req("name");
            let c = t.str_opt("c");
            let manual = t.str_opt("manual");
            let request = t.str_opt("request");
            let requires = t.str_list("requires");
            let before = t.str_opt("before");
            let after = t.str_opt("after");
            let makes_socket = t.bool_opt("makes_socket").filter(|b| b.value);
            let result = t.str_opt("result");
            let args = args(t);
            let returns = returns(t);
            let on_closed = match t.str_opt("on_closed") {
                None => OnClosed::Error,
                Some(s) if s.as_str() == "error" => OnClosed::Error,
                Some(s) if s.as_str() == "noop" => OnClosed::Noop,
                Some(s) => {
                    t.cx().push(
                        s.loc
                            .error(format!("unknown on_closed `{}`", s.value))
                            .hint("on_closed is \"error\" or \"noop\""),
                    );
                    OnClosed::Error
                }
            };
            let doc = doc_of(t);
            if c.is_none() && manual.is_none() {
                t.cx().push(
                    t.loc()
                        .error("a [[method]] needs `c` (the C function) or `manual` (why it is hand-written)")
                        .hint("add c = \"uv_...\""),
                );
            }
            t.finish();
            Some(MethodSpec {
                name: name?,
                c,
                args,
                returns,
                on_closed,
                doc,
                manual,
                request,
                requires,
                before,
                after,
                makes_socket,
                result,
            })
        })
        .collect()
}

fn properties(root: &Table) -> Vec<PropertySpec> {
    root.tables("property")
        .iter()
        .filter_map(|t| {
            let name = t.str_req("name");
            let get = t.str_opt("get");
            let set = t.str_opt("set");
            let present = t.has("conv");
            let conv = conv(t, "conv");
            let doc = doc_of(t);
            if !present {
                t.cx().push(
                    t.loc()
                        .error("a [[property]] has no `conv`")
                        .hint("add conv = \"...\""),
                );
            }
            if get.is_none() && set.is_none() {
                t.cx().push(
                    t.loc()
                        .error("a [[property]] needs `get`, `set` or both")
                        .hint("add get = \"uv_...\""),
                );
            }
            t.finish();
            Some(PropertySpec {
                name: name?,
                get,
                set,
                conv: conv?,
                doc,
            })
        })
        .collect()
}

fn handle(root: &Table) -> Option<HandleSpec> {
    let t = root.table_req("handle")?;
    let name = t.str_req("name");
    let c_type = t.str_req("c_type");
    let type_tag = t.str_req("type_tag");
    let parent = match t.str_opt("parent") {
        None => HandleParent::Handle,
        Some(p) if p.as_str() == "handle" => HandleParent::Handle,
        Some(p) if p.as_str() == "stream" => HandleParent::Stream,
        Some(p) => {
            t.cx().push(
                p.loc
                    .error(format!("unknown parent `{}`", p.value))
                    .hint("parent is \"handle\" or \"stream\""),
            );
            HandleParent::Handle
        }
    };
    let keep_alive = match t.str_opt("keep_alive") {
        None => KeepAlive::Active,
        Some(p) if p.as_str() == "active" => KeepAlive::Active,
        Some(p) if p.as_str() == "never" => KeepAlive::Never,
        Some(p) if p.as_str() == "custom" => KeepAlive::Custom,
        Some(p) => {
            t.cx().push(
                p.loc
                    .error(format!("unknown keep_alive `{}`", p.value))
                    .hint("keep_alive is \"active\", \"never\" or \"custom\""),
            );
            KeepAlive::Active
        }
    };
    let cfg = t.str_opt("cfg");
    let doc = doc_of(&t);
    let manual = t.str_opt("manual");
    t.finish();
    let constructors = root
        .tables("constructor")
        .iter()
        .filter_map(|c| {
            let name = c.str_req("name");
            let f = c.str_req("c");
            let args = args(c);
            let doc = doc_of(c);
            let manual = c.str_opt("manual");
            let internal = c.bool_opt("internal").filter(|b| b.value);
            let placed = c.bool_opt("placed").filter(|b| b.value);
            c.finish();
            Some(ConstructorSpec {
                name: name?,
                c: f?,
                args,
                doc,
                manual,
                internal,
                placed,
            })
        })
        .collect::<Vec<_>>();
    if constructors.is_empty() && manual.is_none() {
        root.cx().push(
            root.loc()
                .error("a handle needs at least one [[constructor]]")
                .hint("add [[constructor]] with name = \"new\" and c = \"uv_..._init\""),
        );
    }
    // Read every part before giving up on a missing key, so that all problems show.
    let (callbacks, methods, properties) = (callbacks(root), methods(root), properties(root));
    Some(HandleSpec {
        name: name?,
        c_type: c_type?,
        type_tag: type_tag?,
        parent,
        keep_alive,
        cfg,
        doc,
        manual,
        constructors,
        callbacks,
        methods,
        properties,
        loc: root.loc(),
    })
}

fn request(root: &Table) -> Option<RequestSpec> {
    let t = root.table_req("request")?;
    let name = t.str_req("name");
    let c_type = t.str_req("c_type");
    let type_tag = t.str_req("type_tag");
    let doc = doc_of(&t);
    let manual = t.str_opt("manual");
    let cancel = t.bool_opt("cancel").map(|b| b.value).unwrap_or(false);
    let cleanup = t.str_opt("cleanup");
    t.finish();
    let (callbacks, methods) = (callbacks(root), methods(root));
    Some(RequestSpec {
        name: name?,
        c_type: c_type?,
        type_tag: type_tag?,
        doc,
        manual,
        cancel,
        cleanup,
        callbacks,
        methods,
        loc: root.loc(),
    })
}

/// Reads a spec directory: `status_codes.toml`, `errors.toml`, `functions.toml`,
/// `enums/`, `handles/` and `requests/`. `display` is how the directory is shown in
/// diagnostics. All problems of all files are reported together.
pub fn load_dir(dir: &Path, display: &Path) -> Result<(Spec, Vec<PathBuf>), Diagnostics> {
    let mut spec = Spec::default();
    let mut diags = Vec::new();
    let mut files = Vec::new();
    let mut paths = Vec::new();
    for top in ["status_codes.toml", "errors.toml", "functions.toml"] {
        paths.push(PathBuf::from(top));
    }
    for sub in ["enums", "handles", "requests"] {
        match std::fs::read_dir(dir.join(sub)) {
            Ok(rd) => {
                let mut names: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                    .filter_map(|p| p.file_name().map(|n| Path::new(sub).join(n)))
                    .collect();
                names.sort();
                paths.extend(names);
            }
            // A spec without requests (or handles) simply has none.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => diags.push(Diagnostic::in_file(
                &display.join(sub),
                format!("cannot read the directory: {e}"),
            )),
        }
    }
    for rel in paths {
        let full = dir.join(&rel);
        let shown = display.join(&rel);
        let text = match std::fs::read_to_string(&full) {
            Ok(t) => t,
            Err(e) => {
                let d = Diagnostic::in_file(&shown, format!("cannot read the file: {e}"));
                diags.push(match e.kind() {
                    std::io::ErrorKind::NotFound => d.hint(
                        "every spec directory has status_codes.toml, errors.toml and functions.toml",
                    ),
                    std::io::ErrorKind::InvalidData => {
                        d.hint("a spec file is UTF-8 text (TOML)")
                    }
                    _ => d,
                });
                continue;
            }
        };
        files.push(full);
        let expected = rel.parent().and_then(|p| p.to_str()).unwrap_or("");
        match load_file(&shown, &text) {
            Err(d) => diags.extend(d.0),
            Ok(f) => {
                let fits = matches!(
                    (&f, expected),
                    (SpecFile::Enum(_), "enums")
                        | (SpecFile::Handle(_), "handles")
                        | (SpecFile::Request(_), "requests")
                        | (SpecFile::StatusCodes(_), "")
                        | (SpecFile::Errors(_), "")
                        | (SpecFile::Functions(_), "")
                );
                if !fits {
                    diags.push(
                        Diagnostic::in_file(
                            &shown,
                            "this kind of spec file does not belong in this directory",
                        )
                        .hint("enums go in enums/, handles in handles/, requests in requests/"),
                    );
                    continue;
                }
                match f {
                    SpecFile::StatusCodes(s) => spec.status_codes = Some(s),
                    SpecFile::Errors(c) => spec.categories.extend(c),
                    SpecFile::Enum(e) => spec.enums.push(e),
                    SpecFile::Handle(h) => spec.handles.push(h),
                    SpecFile::Request(r) => spec.requests.push(r),
                    SpecFile::Functions(f) => spec.functions.extend(f),
                }
            }
        }
    }
    if diags.is_empty() {
        Ok((spec, files))
    } else {
        Err(Diagnostics(diags))
    }
}
