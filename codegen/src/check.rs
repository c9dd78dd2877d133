//! The cross-check of the spec against the header model, and the coverage report.
//!
//! Status codes, handle types, request types and enum members must be complete:
//! each is covered by the spec or ignored with a reason, and a gap is an error that
//! names the spec file to change. Functions may be "not yet bound" without failing;
//! the report lists them so a libuv upgrade shows what is new.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::diag::{Diagnostic, Diagnostics};
use crate::headers::{HeaderModel, Signature};
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
    /// Neither: an error for everything but functions.
    Missing,
    /// A function no spec entry names yet.
    NotYetBound,
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

    /// Functions not yet bound.
    pub fn not_yet_bound(&self) -> usize {
        self.count(|c| *c == Coverage::NotYetBound)
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

    /// The report as a table; with `list`, every item that is not generated.
    pub fn render(&self, list: bool) -> String {
        let mut s = String::new();
        if let Some(v) = &self.version {
            let _ = writeln!(s, "libuv {v} headers");
        }
        let _ = writeln!(
            s,
            "{:<50} {:>9} {:>7} {:>8} {:>8} {:>14}",
            "section", "covered", "manual", "ignored", "missing", "not yet bound"
        );
        for sec in &self.sections {
            let manual = sec.count(|c| matches!(c, Coverage::Manual(_)));
            let _ = writeln!(
                s,
                "{:<50} {:>9} {:>7} {:>8} {:>8} {:>14}",
                sec.title,
                format!("{}/{}", sec.covered(), sec.total()),
                manual,
                sec.ignored(),
                sec.missing(),
                sec.not_yet_bound()
            );
        }
        for sec in &self.sections {
            let gaps: Vec<_> = sec
                .items
                .iter()
                .filter(|(_, c)| match c {
                    Coverage::Missing | Coverage::NotYetBound => true,
                    Coverage::Manual(_) | Coverage::Ignored(_) => list,
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
                    Coverage::NotYetBound => writeln!(s, "  not yet bound  {name}"),
                    Coverage::Manual(r) => writeln!(s, "  manual         {name}: {r}"),
                    Coverage::Ignored(r) => writeln!(s, "  ignored        {name}: {r}"),
                    Coverage::Covered => Ok(()),
                };
            }
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
            if a.conv.value == Conv::CStrPathLen
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
pub fn check(spec: &Spec, h: &HeaderModel) -> Report {
    let mut c = Checker { h, out: Vec::new() };
    let mut sections = Vec::new();

    // Status codes.
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
        sections.push(sec);
    } else {
        c.out.push(
            Diagnostic::in_file("status_codes.toml".as_ref(), "the spec has no status codes")
                .hint("add status_codes.toml"),
        );
    }

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
    // Every member's constant must exist (members with a cfg may be absent on this
    // platform), under the name the emitter will use for it.
    for e in &spec.enums {
        for m in &e.members {
            if let Some(k) = h.consts.get(m.c.as_str()) {
                let used = crate::emit::sys_name(e, m);
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

    // Handle wrappers: which handle types have a generated safe type.
    let mut wrappers = Section {
        title: "handle wrappers (spec/handles)".into(),
        items: Vec::new(),
    };
    let wrapper_types = h
        .maps
        .get("UV_HANDLE_TYPE_MAP")
        .or_else(|| h.enums.get("uv_handle_type"));
    if let Some(members) = wrapper_types {
        for m in members {
            let spec_h = spec.handles.iter().find(|x| x.type_tag.as_str() == m);
            let ignored = claimed
                .get("uv_handle_type")
                .and_then(|e| e.ignore.iter().find(|i| i.c.as_str() == m));
            let cov = match (spec_h, ignored) {
                (_, Some(i)) => Coverage::Ignored(i.reason.clone()),
                (Some(x), _) => match &x.manual {
                    Some(r) => Coverage::Manual(r.value.clone()),
                    None => Coverage::Covered,
                },
                (None, None) => Coverage::NotYetBound,
            };
            wrappers.items.push((m.clone(), cov));
        }
    }
    sections.push(wrappers);

    // Handles: types, functions, signatures.
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
                };
                c.signature(s, 1, &[arg], None, &hs.callbacks, None);
            }
        }
    }
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
    }
    for f in &spec.functions {
        if !h.functions.keys().any(|k| f.matches(k)) {
            c.out.push(
                f.c.loc
                    .error(format!("`{}` matches no function of uv.h", f.c.value))
                    .hint("remove the entry, or fix the name"),
            );
        }
    }

    // Functions.
    let mut named: BTreeMap<&str, Coverage> = BTreeMap::new();
    for hs in &spec.handles {
        for f in hs.functions() {
            let cov = match &hs.manual {
                Some(r) => Coverage::Manual(format!("{} (handle {})", r.value, hs.name.value)),
                None => Coverage::Covered,
            };
            named.insert(f.as_str(), cov);
        }
        for m in &hs.methods {
            if let (Some(f), Some(r)) = (&m.c, &m.manual) {
                named.insert(f.as_str(), Coverage::Manual(r.value.clone()));
            }
        }
    }
    for rs in &spec.requests {
        for f in rs.functions() {
            named.insert(f.as_str(), Coverage::Covered);
        }
    }
    let mut funcs = Section {
        title: "functions".into(),
        items: Vec::new(),
    };
    for name in h.functions.keys() {
        let cov = if let Some(cov) = named.get(name.as_str()) {
            cov.clone()
        } else if let Some(f) = spec.functions.iter().find(|f| f.matches(name)) {
            match f.status {
                FunctionStatus::Manual => Coverage::Manual(f.reason.clone()),
                FunctionStatus::Ignored => Coverage::Ignored(f.reason.clone()),
            }
        } else {
            Coverage::NotYetBound
        };
        funcs.items.push((name.clone(), cov));
    }
    sections.push(funcs);

    Report {
        version: h.version(),
        sections,
        diagnostics: c.out,
    }
}
