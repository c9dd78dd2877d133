//! The cross-check of the spec against the header model, and the coverage report.
//!
//! Everything the headers declare must be accounted for: each status code, handle
//! type, request type and enum member is covered by the spec or ignored with a reason;
//! each handle type of `UV_HANDLE_TYPE_MAP` has a `spec/handles/` file (or is abstract,
//! or its functions are `todo`); each function is bound by a handle or request file,
//! or classified in `spec/functions.toml` (manual, ignored or todo). A gap is an error
//! that names the spec file to change, so a libuv upgrade lists every new item.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics, Loc};
use crate::headers::{HeaderModel, Signature};
use crate::model::Model;
use crate::spec::*;

/// How one header item is accounted for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Generated from the spec.
    Covered,
    /// Bound by hand (the reason says where).
    Manual(String),
    /// Left out on purpose (the reason says why).
    Ignored(String),
    /// Planned but not bound yet (the reason says what will bind it).
    Todo(String),
    /// Not accounted for: an error.
    Missing,
}

/// One part of the report.
#[derive(Clone, Debug, Default)]
pub struct Section {
    /// Title, e.g. "status codes".
    pub title: String,
    /// Items (C names) and how each is covered, in header order.
    pub items: Vec<(String, Coverage)>,
}

impl Section {
    fn count(&self, f: impl Fn(&Coverage) -> bool) -> usize {
        self.items.iter().filter(|(_, c)| f(c)).count()
    }

    /// Items bound by hand.
    pub fn manual(&self) -> usize {
        self.count(|c| matches!(c, Coverage::Manual(_)))
    }

    /// Items covered by the spec, generated or manual.
    pub fn covered(&self) -> usize {
        self.count(|c| matches!(c, Coverage::Covered | Coverage::Manual(_)))
    }

    /// Items that are not ignored.
    pub fn total(&self) -> usize {
        self.count(|c| !matches!(c, Coverage::Ignored(_)))
    }

    /// Items ignored with a reason.
    pub fn ignored(&self) -> usize {
        self.count(|c| matches!(c, Coverage::Ignored(_)))
    }

    /// Items missing from the spec.
    pub fn missing(&self) -> usize {
        self.count(|c| *c == Coverage::Missing)
    }

    /// Items planned but not bound yet.
    pub fn todo(&self) -> usize {
        self.count(|c| matches!(c, Coverage::Todo(_)))
    }
}

/// The result of a cross-check.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// libuv version of the headers.
    pub version: Option<String>,
    /// Status codes, handle types, request types, each enum, handle wrappers, functions.
    pub sections: Vec<Section>,
    /// Errors: gaps and mismatches.
    pub diagnostics: Vec<Diagnostic>,
    /// What the check could not look at (not errors), one line each.
    pub notes: Vec<String>,
}

impl Report {
    /// Whether the spec and the headers agree.
    pub fn is_ok(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// The errors, as one value.
    pub fn errors(&self) -> Diagnostics {
        Diagnostics(self.diagnostics.clone())
    }

    /// The section titled `title`.
    pub fn section(&self, title: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.title == title)
    }

    /// The report as a table; with `list`, every item that is not generated.
    pub fn render(&self, list: bool) -> String {
        let mut s = String::new();
        if let Some(v) = &self.version {
            let _ = writeln!(s, "libuv {v} headers");
        }
        let _ = writeln!(
            s,
            "{:<50} {:>9} {:>7} {:>8} {:>5} {:>8}",
            "section", "covered", "manual", "ignored", "todo", "missing"
        );
        for sec in &self.sections {
            let _ = writeln!(
                s,
                "{:<50} {:>9} {:>7} {:>8} {:>5} {:>8}",
                sec.title,
                format!("{}/{}", sec.covered(), sec.total()),
                sec.manual(),
                sec.ignored(),
                sec.todo(),
                sec.missing()
            );
        }
        for sec in &self.sections {
            let gaps: Vec<_> = sec
                .items
                .iter()
                .filter(|(_, c)| match c {
                    Coverage::Missing => true,
                    Coverage::Manual(_) | Coverage::Ignored(_) | Coverage::Todo(_) => list,
                    Coverage::Covered => false,
                })
                .collect();
            if gaps.is_empty() {
                continue;
            }
            let _ = writeln!(s, "\n{}:", sec.title);
            for (name, cov) in gaps {
                let _ = match cov {
                    Coverage::Missing => writeln!(s, "  missing        {name}"),
                    Coverage::Manual(r) => writeln!(s, "  manual         {name}: {r}"),
                    Coverage::Ignored(r) => writeln!(s, "  ignored        {name}: {r}"),
                    Coverage::Todo(r) => writeln!(s, "  todo           {name}: {r}"),
                    Coverage::Covered => Ok(()),
                };
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "\nnote: {n}");
        }
        if !self.diagnostics.is_empty() {
            let _ = writeln!(s, "\n{} error(s):", self.diagnostics.len());
            for d in &self.diagnostics {
                let _ = writeln!(s, "{d}");
            }
        }
        s
    }
}

/// Which C types a conversion accepts (the conversion table's C types).
fn conv_accepts(conv: &Conv, c_ty: &str, h: &HeaderModel, slot_type: Option<&str>) -> bool {
    conv.accepts(c_ty, h, slot_type)
}

fn returns_accepts(r: &Returns, c_ret: &str, h: &HeaderModel) -> bool {
    match r {
        Returns::Status | Returns::Count => c_ret == "c_int",
        Returns::Void => c_ret.is_empty(),
        Returns::Value(c) => conv_accepts(c, c_ret, h, None),
        Returns::SocketAddr | Returns::Path => c_ret == "c_int",
    }
}

struct Checker<'a> {
    h: &'a HeaderModel,
    out: Vec<Diagnostic>,
    notes: Vec<String>,
}

impl Checker<'_> {
    fn function(&mut self, f: &Sp<String>) -> Option<&Signature> {
        let sig = self.h.functions.get(f.as_str());
        if sig.is_none() {
            let hint = match crate::diag::closest(f, self.h.functions.keys().map(|k| k.as_str())) {
                Some(c) => format!("did you mean `{c}`?"),
                None => "name a function declared in uv.h".into(),
            };
            self.out.push(
                f.loc
                    .error(format!("uv.h declares no function `{}`", f.value))
                    .hint(hint),
            );
        }
        sig
    }

    #[allow(clippy::too_many_arguments)]
    fn signature(
        &mut self,
        f: &Sp<String>,
        leading: usize,
        args: &[ArgSpec],
        returns: Option<&Returns>,
        slots: &[CallbackSpec],
        request: Option<&Sp<String>>,
    ) {
        let h = self.h;
        let Some(sig) = self.function(f).cloned() else {
            return;
        };
        if let Some(r) = request {
            if sig.params.first().map(String::as_str) != Some(format!("*mut{}", r.value).as_str()) {
                self.out.push(
                    r.loc
                        .error(format!(
                            "`{}` does not take a `{}*` first",
                            f.value, r.value
                        ))
                        .hint("request names the C request type the function starts"),
                );
                return;
            }
        }
        // Out-parameters of returned values are not spec arguments.
        let tail = |a: &str, b: &str| {
            sig.params.len() >= 2
                && sig.params[sig.params.len() - 2] == a
                && sig.params[sig.params.len() - 1] == b
        };
        let out_params = match returns {
            Some(Returns::SocketAddr) if !tail("*mutsockaddr", "*mutc_int") => {
                self.out.push(f.loc.error(format!(
                    "`{}` does not end in (struct sockaddr*, int*)",
                    f.value
                )));
                return;
            }
            Some(Returns::Path) if !tail("*mutc_char", "*mutusize") => {
                self.out.push(
                    f.loc
                        .error(format!("`{}` does not end in (char*, size_t*)", f.value)),
                );
                return;
            }
            Some(Returns::SocketAddr | Returns::Path) => 2,
            _ => 0,
        };
        let sig = Signature {
            params: sig.params[..sig.params.len() - out_params].to_vec(),
            ret: sig.ret,
        };
        let wanted: usize = args.iter().map(|a| a.conv.c_params()).sum();
        if sig.params.len() != leading + wanted {
            self.out.push(
                f.loc
                    .error(format!(
                        "`{}` takes {} parameter(s) in uv.h; the spec gives {} (+{} for the handle/loop)",
                        f.value,
                        sig.params.len(),
                        wanted,
                        leading
                    ))
                    .hint(format!("C parameters: ({})", sig.params.join(", "))),
            );
            return;
        }
        let mut params = sig.params[leading..].iter();
        for a in args {
            let Some(c_ty) = params.next() else { break };
            if matches!(a.conv.value, Conv::CStrPathLen | Conv::SocketName)
                && params.next().map(String::as_str) != Some("usize")
            {
                self.out.push(a.conv.loc.error(format!(
                    "argument `{}` of `{}` must be followed by a size_t length in uv.h",
                    a.name.value, f.value
                )));
            }
            let req_cb = request.map(|r| {
                h.callbacks
                    .iter()
                    .find(|(_, s)| {
                        s.params.first().map(String::as_str) == Some(&format!("*mut{}", r.value))
                    })
                    .map(|(n, _)| n.as_str())
            });
            let slot_ty = match &a.conv.value {
                Conv::Callback(s) => slots
                    .iter()
                    .find(|c| c.name.as_str() == s)
                    .map(|c| c.c_type.value.as_str()),
                Conv::RequestCallback => req_cb.flatten(),
                _ => None,
            };
            if !conv_accepts(&a.conv, c_ty, h, slot_ty) {
                self.out.push(
                    a.conv
                        .loc
                        .error(format!(
                            "argument `{}` of `{}` is `{c_ty}` in uv.h, which conversion `{:?}` does not take",
                            a.name.value, f.value, a.conv.value
                        ))
                        .hint("pick the conversion that matches the C type, or mark the method manual"),
                );
            }
        }
        if let Some(r) = returns {
            if !returns_accepts(r, &sig.ret, h) {
                self.out.push(
                    f.loc
                        .error(format!(
                            "`{}` returns `{}` in uv.h, which `returns = {:?}` does not take",
                            f.value,
                            if sig.ret.is_empty() { "void" } else { &sig.ret },
                            r
                        ))
                        .hint("status for int results, void for none"),
                );
            }
        }
    }

    fn enum_section(&mut self, spec_enum: &EnumSpec, c_type: &str, title: String) -> Section {
        let mut sec = Section {
            title,
            items: Vec::new(),
        };
        let Some(members) = self.h.enums.get(c_type) else {
            let ct = spec_enum.c_type.as_ref().expect("called with a c_type");
            self.out.push(
                ct.loc
                    .error(format!("uv.h has no enum `{c_type}`"))
                    .hint("name the C enum type as bindgen sees it, e.g. \"uv_run_mode\""),
            );
            return sec;
        };
        for m in members {
            let cov = if spec_enum.members.iter().any(|s| s.c.as_str() == m) {
                Coverage::Covered
            } else if let Some(i) = spec_enum.ignore.iter().find(|i| i.c.as_str() == m) {
                Coverage::Ignored(i.reason.clone())
            } else {
                self.out.push(
                    Diagnostic::in_file(
                        &spec_enum.loc.file.path,
                        format!("uv.h has `{m}` in `{c_type}`, which the spec neither covers nor ignores"),
                    )
                    .hint(format!(
                        "add [[member]] with c = \"{m}\" to {}, or [[ignore]] it with a reason",
                        spec_enum.loc.file.path.display()
                    )),
                );
                Coverage::Missing
            };
            sec.items.push((m.clone(), cov));
        }
        sec
    }
}

/// Cross-checks `spec` against `h`.
pub fn check(model: &Model<'_>, h: &HeaderModel) -> Report {
    let spec = model.spec;
    let mut c = Checker {
        h,
        out: Vec::new(),
        notes: Vec::new(),
    };
    let mut sections = Vec::new();
    sections.extend(status_codes(&mut c, spec));
    let claimed = enum_sections(&mut c, spec, &mut sections);
    enum_constants(&mut c, spec);
    // Handle wrappers: every handle type of UV_HANDLE_TYPE_MAP has a handle file, is
    // abstract, or has its functions marked todo.
    sections.push(handle_wrappers(&mut c, spec, &claimed));
    handle_files(&mut c, spec);
    request_files(&mut c, spec);
    function_entries(&mut c, spec);
    sections.push(functions(&mut c, spec));
    handle_header_space(&mut c);
    Report {
        version: h.version(),
        sections,
        diagnostics: c.out,
        notes: c.notes,
    }
}

/// The space the runtime keeps each handle's header in (`uv_handle_t`'s `u` union,
/// after its first word) is still declared as it expects and still unused by libuv: a
/// libuv that starts using it would corrupt every handle.
fn handle_header_space(c: &mut Checker<'_>) {
    use crate::headers::HANDLE_UNION_EXPECTED;
    let Some(u) = &c.h.handle_union else { return };
    if u.uses.is_none() {
        let include = u.header.parent().unwrap_or(Path::new("."));
        c.notes.push(format!(
            "reserved handle space: libuv's sources were not found next to {} \
             (../src/uv-common.c), so only uv.h's declaration of the union `u` was checked, \
             not libuv's uses of it",
            include.display()
        ));
    }
    let fix = "the runtime keeps each handle's header there (uv/src/handle.rs, HEADER_OFFSET): \
               move the header out of the libuv struct (into HandleBox, before `raw`) \
               or into space this libuv leaves unused";
    if u.declared.as_deref() != Some(HANDLE_UNION_EXPECTED) {
        let found = u.declared.as_deref().unwrap_or("no such union");
        c.out.push(
            Diagnostic {
                path: u.header.clone(),
                line: u.line,
                col: 1,
                message: format!(
                    "UV_HANDLE_FIELDS's union `u` is `{found}`, not `{HANDLE_UNION_EXPECTED}`"
                ),
                hint: None,
            }
            .hint(fix),
        );
    }
    for (path, line, text) in u.uses.iter().flatten() {
        c.out.push(
            Diagnostic {
                path: path.clone(),
                line: *line,
                col: 1,
                message: format!(
                    "libuv may reach the reserved part of a handle's `u` union here: `{text}`"
                ),
                hint: None,
            }
            .hint(fix),
        );
    }
}

/// Every status code of uv.h is covered or ignored; every spec code exists.
fn status_codes(c: &mut Checker<'_>, spec: &Spec) -> Option<Section> {
    let h = c.h;
    if let Some(sc) = &spec.status_codes {
        let mut sec = Section {
            title: format!("status codes ({})", sc.c_type.value),
            items: Vec::new(),
        };
        match h.enums.get(sc.c_type.as_str()) {
            None => c.out.push(
                sc.c_type
                    .loc
                    .error(format!("uv.h has no enum `{}`", sc.c_type.value))
                    .hint("c_type = \"uv_errno_t\""),
            ),
            Some(members) => {
                for m in members {
                    let name = m.strip_prefix("UV_").unwrap_or(m);
                    let cov = if sc.codes.iter().any(|s| s.name.as_str() == name) {
                        Coverage::Covered
                    } else if let Some(i) = sc.ignore.iter().find(|i| i.c.as_str() == m) {
                        Coverage::Ignored(i.reason.clone())
                    } else {
                        c.out.push(
                            Diagnostic::in_file(
                                &sc.loc.file.path,
                                format!("uv.h has status code `{m}`, which the spec neither covers nor ignores"),
                            )
                            .hint(format!(
                                "add [[code]] with name = \"{name}\" and its category to {}",
                                sc.loc.file.path.display()
                            )),
                        );
                        Coverage::Missing
                    };
                    sec.items.push((m.clone(), cov));
                }
                for code in &sc.codes {
                    let full = format!("UV_{}", code.name.value);
                    if !members.contains(&full) {
                        c.out.push(
                            code.name
                                .loc
                                .error(format!("uv.h has no status code `{full}`"))
                                .hint(
                                    "remove it, or check the spelling against uv.h's UV_ERRNO_MAP",
                                ),
                        );
                    }
                }
            }
        }
        return Some(sec);
    } else {
        c.out.push(
            Diagnostic::in_file("status_codes.toml".as_ref(), "the spec has no status codes")
                .hint("add status_codes.toml"),
        );
    }

    None
}

/// The sections of the handle and request type maps and of every libuv enum; gives
/// the enum files that claim a C enum.
fn enum_sections<'s>(
    c: &mut Checker<'_>,
    spec: &'s Spec,
    sections: &mut Vec<Section>,
) -> BTreeMap<&'s str, &'s EnumSpec> {
    let h = c.h;
    // Problems of no single enum file are reported against the enums directory.
    let enums_dir = spec
        .status_codes
        .as_ref()
        .and_then(|s| s.loc.file.path.parent().map(|p| p.join("enums")))
        .unwrap_or_else(|| "enums".into());

    // Enums: first the handle and request type maps, then every other libuv enum.
    let claimed: BTreeMap<&str, &EnumSpec> = spec
        .enums
        .iter()
        .filter_map(|e| e.c_type.as_ref().map(|t| (t.as_str(), e)))
        .collect();
    let status_type = spec.status_codes.as_ref().map(|s| s.c_type.as_str());
    for (c_type, title, map) in [
        ("uv_handle_type", "handle types", "UV_HANDLE_TYPE_MAP"),
        ("uv_req_type", "request types", "UV_REQ_TYPE_MAP"),
    ] {
        match claimed.get(c_type) {
            Some(e) => {
                let all =
                    c.enum_section(e, c_type, format!("{title} ({c_type} -> {})", e.name.value));
                // With uv.h's text at hand, count the X-macro list's entries apart from
                // the enum's other members (UV_UNKNOWN_HANDLE, UV_FILE, ...).
                match h.maps.get(map) {
                    Some(entries) => {
                        let (listed, other): (Vec<_>, Vec<_>) = all
                            .items
                            .into_iter()
                            .partition(|(m, _)| entries.contains(m));
                        sections.push(Section {
                            title: format!("{title} ({map} -> {})", e.name.value),
                            items: listed,
                        });
                        sections.push(Section {
                            title: format!("other members of {c_type}"),
                            items: other,
                        });
                    }
                    None => sections.push(all),
                }
            }
            None => c.out.push(
                Diagnostic::in_file(&enums_dir, format!("no spec enum covers `{c_type}`"))
                    .hint(format!("add a spec/enums/ file with c_type = \"{c_type}\"")),
            ),
        }
    }
    let all_spec_consts: BTreeSet<&str> = spec
        .enums
        .iter()
        .flat_map(|e| e.members.iter().map(|m| m.c.as_str()))
        .collect();
    let all_ignored: BTreeMap<&str, &str> = spec
        .enums
        .iter()
        .flat_map(|e| e.ignore.iter().map(|i| (i.c.as_str(), i.reason.as_str())))
        .collect();
    let mut anon = Section {
        title: "members of anonymous enums".into(),
        items: Vec::new(),
    };
    for (c_type, members) in h.libuv_enums() {
        if Some(c_type.as_str()) == status_type
            || c_type == "uv_handle_type"
            || c_type == "uv_req_type"
        {
            continue;
        }
        if let Some(e) = claimed.get(c_type.as_str()) {
            let s = c.enum_section(e, c_type, format!("enum {c_type} -> {}", e.name.value));
            sections.push(s);
        } else if c_type.starts_with("_bindgen_ty_") {
            for m in members {
                let cov = if all_spec_consts.contains(m.as_str()) {
                    Coverage::Covered
                } else if let Some(r) = all_ignored.get(m.as_str()) {
                    Coverage::Ignored(r.to_string())
                } else {
                    c.out.push(
                        Diagnostic::in_file(
                            &enums_dir,
                            format!("uv.h has `{m}` (an anonymous enum), which no spec enum covers or ignores"),
                        )
                        .hint("add a [[member]] with this c to a spec/enums/ file, or [[ignore]] it there"),
                    );
                    Coverage::Missing
                };
                anon.items.push((m.clone(), cov));
            }
        } else {
            let mut sec = Section {
                title: format!("enum {c_type}"),
                items: Vec::new(),
            };
            c.out.push(
                Diagnostic::in_file(
                    &enums_dir,
                    format!("uv.h has enum `{c_type}`, which no spec file covers"),
                )
                .hint(format!(
                    "add spec/enums/{}.toml with c_type = \"{c_type}\"",
                    c_type.trim_start_matches("uv_").trim_end_matches("_t")
                )),
            );
            for m in members {
                sec.items.push((m.clone(), Coverage::Missing));
            }
            sections.push(sec);
        }
    }
    if !anon.items.is_empty() {
        sections.push(anon);
    }
    claimed
}

/// Every member's constant exists, under the name the emitter will use for it.
fn enum_constants(c: &mut Checker<'_>, spec: &Spec) {
    let h = c.h;
    // Every member's constant must exist (members with a cfg may be absent on this
    // platform), under the name the emitter will use for it.
    for e in &spec.enums {
        for m in &e.members {
            if let Some(k) = h.consts.get(m.c.as_str()) {
                let used = crate::names::enum_member_sys(e, m);
                if k.rust_name != used {
                    let fix = if k.rust_name != k.c_name {
                        format!(
                            "its C enum is `{}`: give this enum c_type = \"{}\"",
                            k.ty, k.ty
                        )
                    } else {
                        "remove c_type, or move the member to an enum without one".into()
                    };
                    c.out.push(
                        m.c.loc
                            .error(format!(
                                "libuv-sys2 names `{}` `{}`, but the generated code would use `{used}`",
                                m.c.value, k.rust_name
                            ))
                            .hint(fix),
                    );
                }
            }
            if !h.consts.contains_key(m.c.as_str()) && m.cfg.is_none() {
                let hint = match crate::diag::closest(&m.c, h.consts.keys().map(|k| k.as_str())) {
                    Some(x) => format!("did you mean `{x}`?"),
                    None => "name a constant of uv.h, or give the member a cfg if it exists on some platforms only".into(),
                };
                c.out.push(
                    m.c.loc
                        .error(format!("the headers define no constant `{}`", m.c.value))
                        .hint(hint),
                );
            }
        }
    }
}

/// Handle files: types, tags, functions, signatures.
fn handle_files(c: &mut Checker<'_>, spec: &Spec) {
    let h = c.h;
    for hs in &spec.handles {
        if !h.types.iter().any(|t| t == hs.c_type.as_str()) {
            c.out.push(
                hs.c_type
                    .loc
                    .error(format!("uv.h declares no type `{}`", hs.c_type.value)),
            );
        }
        if !h.consts.contains_key(hs.type_tag.as_str()) {
            c.out.push(
                hs.type_tag
                    .loc
                    .error(format!("uv.h has no handle type `{}`", hs.type_tag.value)),
            );
        }
        for cb in &hs.callbacks {
            match h.callbacks.get(cb.c_type.as_str()) {
                None => c.out.push(cb.c_type.loc.error(format!(
                    "uv.h declares no callback type `{}`",
                    cb.c_type.value
                ))),
                Some(_) if cb.manual.is_some() => {}
                Some(sig) => {
                    if sig.params.len() != 1 + cb.args.len() {
                        c.out.push(
                            cb.c_type
                                .loc
                                .error(format!(
                                    "`{}` takes {} parameter(s); the spec gives {} after the handle",
                                    cb.c_type.value,
                                    sig.params.len(),
                                    cb.args.len()
                                ))
                                .hint(format!("C parameters: ({})", sig.params.join(", "))),
                        );
                    } else {
                        for (a, t) in cb.args.iter().zip(&sig.params[1..]) {
                            if !conv_accepts(&a.conv, t, h, None) {
                                c.out.push(a.conv.loc.error(format!(
                                    "callback argument `{}` is `{t}` in uv.h, which conversion `{:?}` does not take",
                                    a.name.value, a.conv.value
                                )));
                            }
                        }
                    }
                }
            }
        }
        for k in &hs.constructors {
            if k.manual.is_some() {
                c.function(&k.c);
                continue;
            }
            c.signature(
                &k.c,
                2,
                &k.args,
                Some(&Returns::Status),
                &hs.callbacks,
                None,
            );
        }
        for m in &hs.methods {
            if let Some(f) = &m.c {
                if m.manual.is_some() {
                    c.function(f);
                } else {
                    let leading = if m.request.is_some() { 2 } else { 1 };
                    c.signature(
                        f,
                        leading,
                        &m.args,
                        Some(&m.returns),
                        &hs.callbacks,
                        m.request.as_ref(),
                    );
                }
            }
        }
        for p in &hs.properties {
            if let Some(g) = &p.get {
                c.signature(
                    g,
                    1,
                    &[],
                    Some(&Returns::Value(p.conv.value.clone())),
                    &hs.callbacks,
                    None,
                );
            }
            if let Some(s) = &p.set {
                let arg = ArgSpec {
                    name: p.name.clone(),
                    conv: p.conv.clone(),
                    allow: Vec::new(),
                    min_1s_if: None,
                    max: None,
                };
                c.signature(s, 1, &[arg], None, &hs.callbacks, None);
            }
        }
    }
}

/// Request files: types and functions.
fn request_files(c: &mut Checker<'_>, spec: &Spec) {
    let h = c.h;
    for rs in &spec.requests {
        if !h.types.iter().any(|t| t == rs.c_type.as_str()) {
            c.out.push(
                rs.c_type
                    .loc
                    .error(format!("uv.h declares no type `{}`", rs.c_type.value)),
            );
        }
        for f in rs.functions() {
            c.function(f);
        }
        if rs.manual.is_none() {
            for m in rs.methods.iter().filter(|m| m.manual.is_none()) {
                request_function_signature(c, rs, m);
            }
        }
    }
}

/// A generated request function's C signature: `int f(uv_loop_t*, <request>*, the
/// arguments…, <callback>)`.
fn request_function_signature(c: &mut Checker<'_>, rs: &RequestSpec, m: &MethodSpec) {
    let h = c.h;
    let Some(f) = &m.c else { return };
    let Some(sig) = h.functions.get(f.as_str()) else {
        return; // `function` reported it.
    };
    let n_args: usize = m.args.iter().map(|a| a.conv.value.c_params()).sum();
    let want = 2 + n_args + 1;
    let req_ptr = format!("*mut{}", rs.c_type.value);
    let fits = sig.params.len() == want
        && sig.params[0] == "*mutuv_loop_t"
        && sig.params[1] == req_ptr
        && sig.ret == "c_int"
        && h.callbacks.contains_key(sig.params[want - 1].as_str());
    if !fits {
        c.out.push(f.loc.error(format!(
            "`{}` is `{}({})`; a request function takes the loop, the request, {n_args} argument(s) and the completion callback, and returns int",
            f.value,
            if sig.ret.is_empty() { "void" } else { sig.ret.as_str() },
            sig.params.join(", ")
        )).hint("fix `args`, or mark the function manual"));
        return;
    }
    let mut i = 2;
    for a in &m.args {
        let ty = &sig.params[i];
        if !a.conv.value.accepts(ty, h, None) {
            c.out.push(
                a.conv
                    .loc
                    .error(format!(
                        "`{}` takes `{ty}` here, which conversion `{}` does not accept",
                        f.value,
                        a.conv.value.name()
                    ))
                    .hint("see the conversion table in spec/README.md"),
            );
        }
        i += a.conv.value.c_params();
    }
}

/// Every `functions.toml` entry matches a function of uv.h.
fn function_entries(c: &mut Checker<'_>, spec: &Spec) {
    let h = c.h;
    for f in &spec.functions {
        if !h.functions.keys().any(|k| f.matches(k)) {
            c.out.push(
                f.c.loc
                    .error(format!("`{}` matches no function of uv.h", f.c.value))
                    .hint("remove the entry, or fix the name"),
            );
        }
    }
}

/// The abstract handle types: the parents a handle file can name. Each is bound once,
/// by the runtime core, and has no handle file of its own.
fn abstract_handle_type(p: HandleParent) -> (&'static str, &'static str) {
    match p {
        HandleParent::Handle => (
            "UV_HANDLE",
            "abstract: the base of every handle, the handle core (uv/src/handle.rs)",
        ),
        HandleParent::Stream => (
            "UV_STREAM",
            "abstract: the base of handles with parent = \"stream\", the stream core (uv/src/stream.rs)",
        ),
    }
}

const HANDLE_PARENTS: [HandleParent; 2] = [HandleParent::Handle, HandleParent::Stream];

/// The spec directory as diagnostics show it (the parent of `status_codes.toml`).
fn spec_dir(spec: &Spec) -> PathBuf {
    spec.status_codes
        .as_ref()
        .and_then(|s| s.loc.file.path.parent().map(Path::to_path_buf))
        .unwrap_or_default()
}

/// How an entry of `functions.toml` covers the functions it matches.
fn entry_coverage(f: &FunctionEntry) -> Coverage {
    match f.status {
        FunctionStatus::Manual => Coverage::Manual(f.reason.clone()),
        FunctionStatus::Ignored => Coverage::Ignored(f.reason.clone()),
        FunctionStatus::Todo => Coverage::Todo(f.reason.clone()),
    }
}

fn is_todo(f: &FunctionEntry) -> bool {
    matches!(entry_coverage(f), Coverage::Todo(_))
}

/// The entry of `functions.toml` that classifies `name`: an exact entry, else the
/// longest matching prefix.
fn classifying_entry<'s>(entries: &'s [FunctionEntry], name: &str) -> Option<&'s FunctionEntry> {
    entries
        .iter()
        .filter(|f| f.matches(name))
        .max_by_key(|f| (!f.c.ends_with('*'), f.c.len()))
}

/// Whether a manual reason says where the code is: a path to a `.rs` file.
fn names_a_source_file(reason: &str) -> bool {
    reason
        .split(|c: char| c.is_whitespace() || "(),;:`\"".contains(c))
        .any(|w| w.len() > 3 && w.ends_with(".rs") && w.contains('/'))
}

fn handle_wrappers(c: &mut Checker, spec: &Spec, claimed: &BTreeMap<&str, &EnumSpec>) -> Section {
    let h = c.h;
    let mut wrappers = Section {
        title: "handle wrappers (spec/handles)".into(),
        items: Vec::new(),
    };
    let members = h
        .maps
        .get("UV_HANDLE_TYPE_MAP")
        .or_else(|| h.enums.get("uv_handle_type"));
    let Some(members) = members else {
        return wrappers;
    };
    let handles_dir = spec_dir(spec).join("handles");
    for m in members {
        let lower = h
            .map_names
            .get(m)
            .cloned()
            .unwrap_or_else(|| m.trim_start_matches("UV_").to_ascii_lowercase());
        let prefix = format!("uv_{lower}_*");
        let spec_h = spec.handles.iter().find(|x| x.type_tag.as_str() == m);
        let ignored = claimed
            .get("uv_handle_type")
            .and_then(|e| e.ignore.iter().find(|i| i.c.as_str() == m));
        let abstract_ = HANDLE_PARENTS
            .iter()
            .map(|p| abstract_handle_type(*p))
            .find(|(tag, _)| tag == m);
        let todo = spec
            .functions
            .iter()
            .find(|f| f.c.as_str() == prefix && is_todo(f));
        let cov = match (spec_h, ignored, abstract_, todo) {
            (_, Some(i), _, _) => Coverage::Ignored(i.reason.clone()),
            (Some(x), _, _, todo) => {
                if let Some(t) = todo {
                    c.out.push(
                        t.c.loc
                            .error(format!(
                                "`{m}` is wrapped by {}; this todo entry for its functions is stale",
                                x.loc.file.path.display()
                            ))
                            .hint("remove the entry: a function is classified in one place"),
                    );
                }
                match &x.manual {
                    Some(r) => Coverage::Manual(r.value.clone()),
                    None => Coverage::Covered,
                }
            }
            (None, None, Some((_, why)), _) => Coverage::Manual(why.to_string()),
            (None, None, None, Some(t)) => entry_coverage(t),
            (None, None, None, None) => {
                let file = handles_dir.join(format!("{lower}.toml"));
                c.out.push(
                    Diagnostic::in_file(
                        &file,
                        format!("uv.h has handle type `{m}` (UV_HANDLE_TYPE_MAP), which no spec/handles file wraps"),
                    )
                    .hint(format!(
                        "create {} with type_tag = \"{m}\" and c_type = \"uv_{lower}_t\" (spec/README.md, \"Adding a handle type\"), or mark its functions todo in {} with c = \"{prefix}\"",
                        file.display(),
                        spec_dir(spec).join("functions.toml").display()
                    )),
                );
                Coverage::Missing
            }
        };
        wrappers.items.push((m.clone(), cov));
    }
    wrappers
}

fn functions(c: &mut Checker, spec: &Spec) -> Section {
    let h = c.h;
    let functions_toml = spec_dir(spec).join("functions.toml");
    // Functions the handle and request files name, with where.
    let mut named: BTreeMap<&str, (Coverage, &Loc)> = BTreeMap::new();
    for hs in &spec.handles {
        for f in hs.functions() {
            let cov = match &hs.manual {
                Some(r) => Coverage::Manual(format!("{} (handle {})", r.value, hs.name.value)),
                None => Coverage::Covered,
            };
            named.insert(f.as_str(), (cov, &f.loc));
        }
        for m in &hs.methods {
            if let (Some(f), Some(r)) = (&m.c, &m.manual) {
                named.insert(f.as_str(), (Coverage::Manual(r.value.clone()), &f.loc));
            }
        }
        for k in &hs.constructors {
            if let Some(r) = &k.manual {
                named.insert(k.c.as_str(), (Coverage::Manual(r.value.clone()), &k.c.loc));
            }
        }
    }
    for rs in &spec.requests {
        for f in rs.functions() {
            named.insert(f.as_str(), (Coverage::Covered, &f.loc));
        }
        for m in &rs.methods {
            if let (Some(f), Some(r)) = (&m.c, &m.manual) {
                named.insert(f.as_str(), (Coverage::Manual(r.value.clone()), &f.loc));
            }
        }
        // The cleanup runs after every request of the type.
        if let (Some(f), None) = (&rs.cleanup, &rs.manual) {
            named.insert(f.as_str(), (Coverage::Covered, &f.loc));
        }
    }
    // Each function is classified in one place.
    let mut exact: BTreeMap<&str, &FunctionEntry> = BTreeMap::new();
    for f in &spec.functions {
        if f.status == FunctionStatus::Manual && !names_a_source_file(&f.reason) {
            c.out.push(
                f.c.loc
                    .error(format!(
                        "the manual entry for `{}` does not say where it is bound",
                        f.c.value
                    ))
                    .hint("name the source file, e.g. manual = \"Loop::run (uv/src/loop_.rs)\""),
            );
        }
        if f.c.ends_with('*') {
            continue;
        }
        if let Some((_, at)) = named.get(f.c.as_str()) {
            c.out.push(
                f.c.loc
                    .error(format!(
                        "`{}` is bound by {at:?}; this entry classifies it a second time",
                        f.c.value
                    ))
                    .hint("remove the entry: a function is classified in one place"),
            );
        }
        if let Some(first) = exact.insert(f.c.as_str(), f) {
            c.out.push(
                f.c.loc
                    .error(format!(
                        "`{}` is already classified at {:?}",
                        f.c.value, first.c.loc
                    ))
                    .hint("remove one of the two entries"),
            );
        }
    }
    let mut funcs = Section {
        title: "functions".into(),
        items: Vec::new(),
    };
    for name in h.functions.keys() {
        let cov = if let Some((cov, _)) = named.get(name.as_str()) {
            cov.clone()
        } else if let Some(f) = classifying_entry(&spec.functions, name) {
            entry_coverage(f)
        } else {
            c.out.push(
                Diagnostic::in_file(
                    &functions_toml,
                    format!("uv.h declares `{name}`, which no spec file binds or classifies"),
                )
                .hint(format!(
                    "add to {}: [[function]] c = \"{name}\" with manual = \"<where> (uv/src/<file>.rs)\", ignore = \"<why>\" or todo = \"<what will bind it>\"; or bind it in a handles/ or requests/ file",
                    functions_toml.display()
                )),
            );
            Coverage::Missing
        };
        funcs.items.push((name.clone(), cov));
    }
    funcs
}
