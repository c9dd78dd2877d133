//! What changed between two libuv header sets (`uv-codegen diff --from DIR --to DIR`):
//! status codes, handle and request types, enum members, functions, callback types,
//! type names and other constants, each added, removed or (functions and callbacks)
//! with a changed signature. It compares two [`HeaderModel`]s, so it sees what the
//! cross-check sees.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::headers::{HeaderModel, Signature};

/// The changes of one kind of item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffSection {
    /// What the items are, e.g. "functions" or "enum uv_run_mode".
    pub title: String,
    /// Items only in the new headers (for functions and callbacks, with the signature).
    pub added: Vec<String>,
    /// Items only in the old headers.
    pub removed: Vec<String>,
    /// Items in both whose signature changed: name, old signature, new signature.
    pub changed: Vec<(String, String, String)>,
}

impl DiffSection {
    fn new(title: impl Into<String>) -> Self {
        DiffSection {
            title: title.into(),
            ..Default::default()
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// The names of the added items (without signatures).
    pub fn added_names(&self) -> Vec<&str> {
        self.added
            .iter()
            .map(|a| a.split('(').next().unwrap_or(a))
            .collect()
    }
}

/// Everything that changed between two header sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderDiff {
    /// libuv version of the old headers.
    pub from_version: Option<String>,
    /// libuv version of the new headers.
    pub to_version: Option<String>,
    /// The sections with changes, in a fixed order: status codes, handle types,
    /// request types, enums, enum members, functions, callback types, types, constants.
    pub sections: Vec<DiffSection>,
}

impl HeaderDiff {
    /// The section titled `title`, if it has changes.
    pub fn section(&self, title: &str) -> Option<&DiffSection> {
        self.sections.iter().find(|s| s.title == title)
    }

    /// Whether the two header sets declare the same items.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    /// The diff as text: one line per section with its counts, then `+` (added),
    /// `-` (removed) and `~` (changed) lines.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let v = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        let _ = writeln!(
            s,
            "libuv {} -> {}",
            v(&self.from_version),
            v(&self.to_version)
        );
        if self.sections.is_empty() {
            let _ = writeln!(s, "no changes");
        }
        for sec in &self.sections {
            let _ = writeln!(
                s,
                "\n{}: {} added, {} removed, {} changed",
                sec.title,
                sec.added.len(),
                sec.removed.len(),
                sec.changed.len()
            );
            for a in &sec.added {
                let _ = writeln!(s, "  + {a}");
            }
            for r in &sec.removed {
                let _ = writeln!(s, "  - {r}");
            }
            for (name, old, new) in &sec.changed {
                let _ = writeln!(s, "  ~ {name}{old}\n    {}{new}", " ".repeat(name.len()));
            }
        }
        s
    }
}

/// A signature as C-like text: `(*mut uv_loop_t, c_int) -> c_int`.
pub fn signature_text(sig: &Signature) -> String {
    let ty = |t: &str| t.replace("*mut", "*mut ").replace("*const", "*const ");
    let params: Vec<String> = sig.params.iter().map(|p| ty(p)).collect();
    let ret = if sig.ret.is_empty() {
        String::new()
    } else {
        format!(" -> {}", ty(&sig.ret))
    };
    format!("({}){ret}", params.join(", "))
}

fn sets(sec: &mut DiffSection, old: &BTreeSet<&str>, new: &BTreeSet<&str>) {
    sec.added = new.difference(old).map(|s| s.to_string()).collect();
    sec.removed = old.difference(new).map(|s| s.to_string()).collect();
}

fn list(v: Option<&Vec<String>>) -> BTreeSet<&str> {
    v.into_iter().flatten().map(String::as_str).collect()
}

fn signatures(
    title: &str,
    old: &BTreeMap<String, Signature>,
    new: &BTreeMap<String, Signature>,
) -> DiffSection {
    let mut sec = DiffSection::new(title);
    for (name, sig) in new {
        match old.get(name) {
            None => sec.added.push(format!("{name}{}", signature_text(sig))),
            Some(o) if o != sig => {
                sec.changed
                    .push((name.clone(), signature_text(o), signature_text(sig)))
            }
            Some(_) => {}
        }
    }
    sec.removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    sec
}

/// The X-macro list `map`, or the members of `c_type` when the header text was not read.
fn map_or_enum<'a>(h: &'a HeaderModel, map: &str, c_type: &str) -> BTreeSet<&'a str> {
    match h.maps.get(map) {
        Some(m) => list(Some(m)),
        None => list(h.enums.get(c_type)),
    }
}

/// Compares two header models.
pub fn diff(from: &HeaderModel, to: &HeaderModel) -> HeaderDiff {
    let mut sections = Vec::new();

    let mut status = DiffSection::new("status codes (uv_errno_t)");
    sets(
        &mut status,
        &list(from.enums.get("uv_errno_t")),
        &list(to.enums.get("uv_errno_t")),
    );
    sections.push(status);

    let mut mapped: BTreeSet<&str> = BTreeSet::new();
    for (title, map, c_type) in [
        (
            "handle types (UV_HANDLE_TYPE_MAP)",
            "UV_HANDLE_TYPE_MAP",
            "uv_handle_type",
        ),
        (
            "request types (UV_REQ_TYPE_MAP)",
            "UV_REQ_TYPE_MAP",
            "uv_req_type",
        ),
    ] {
        let (old, new) = (map_or_enum(from, map, c_type), map_or_enum(to, map, c_type));
        mapped.extend(old.iter().chain(new.iter()));
        let mut sec = DiffSection::new(title);
        sets(&mut sec, &old, &new);
        sections.push(sec);
    }

    enum_sections(from, to, &mapped, &mut sections);

    sections.push(signatures("functions", &from.functions, &to.functions));
    // `uv__` names are libuv's internals.
    let public = |m: &BTreeMap<String, Signature>| -> BTreeMap<String, Signature> {
        m.iter()
            .filter(|(k, _)| !k.contains("__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    sections.push(signatures(
        "callback types",
        &public(&from.callbacks),
        &public(&to.callbacks),
    ));

    type_and_const_sections(from, to, &mut sections);

    sections.retain(|s| !s.is_empty());
    HeaderDiff {
        from_version: from.version(),
        to_version: to.version(),
        sections,
    }
}

/// Named libuv enums (whole enums added or removed, then members of those in both)
/// and the members of anonymous enums. Members of the two type maps (`mapped`) are
/// reported with them; anonymous enums are numbered by bindgen, so their members are
/// compared as one set.
fn enum_sections(
    from: &HeaderModel,
    to: &HeaderModel,
    mapped: &BTreeSet<&str>,
    sections: &mut Vec<DiffSection>,
) {
    let named = |h: &'_ HeaderModel| -> BTreeMap<String, Vec<String>> {
        h.libuv_enums()
            .filter(|(t, _)| !t.starts_with("_bindgen_ty_") && t.as_str() != "uv_errno_t")
            .map(|(t, ms)| (t.clone(), ms.clone()))
            .collect()
    };
    let (old_enums, new_enums) = (named(from), named(to));
    let mut enums = DiffSection::new("enums");
    sets(
        &mut enums,
        &old_enums.keys().map(String::as_str).collect(),
        &new_enums.keys().map(String::as_str).collect(),
    );
    sections.push(enums);
    for (t, ms) in &new_enums {
        let Some(old) = old_enums.get(t) else {
            continue;
        };
        let keep = |m: &&str| !mapped.contains(m);
        let mut sec = DiffSection::new(format!("enum {t}"));
        sets(
            &mut sec,
            &list(Some(old)).into_iter().filter(keep).collect(),
            &list(Some(ms)).into_iter().filter(keep).collect(),
        );
        sections.push(sec);
    }
    let anon = |h: &'_ HeaderModel| -> BTreeSet<String> {
        h.libuv_enums()
            .filter(|(t, _)| t.starts_with("_bindgen_ty_"))
            .flat_map(|(_, ms)| ms.iter().cloned())
            .collect()
    };
    let (old_anon, new_anon) = (anon(from), anon(to));
    let mut sec = DiffSection::new("members of anonymous enums");
    sets(
        &mut sec,
        &old_anon.iter().map(String::as_str).collect(),
        &new_anon.iter().map(String::as_str).collect(),
    );
    sections.push(sec);
}

/// Public type names, and `#define`d constants (not enum members, not the version).
fn type_and_const_sections(from: &HeaderModel, to: &HeaderModel, sections: &mut Vec<DiffSection>) {
    let types = |h: &'_ HeaderModel| -> BTreeSet<String> {
        h.types
            .iter()
            // Not internals (`uv__`), not bindgen's names for anonymous members.
            .filter(|t| t.starts_with("uv_") && !t.contains("__"))
            .filter(|t| !h.callbacks.contains_key(*t))
            .cloned()
            .collect()
    };
    let (old_types, new_types) = (types(from), types(to));
    let mut sec = DiffSection::new("types");
    sets(
        &mut sec,
        &old_types.iter().map(String::as_str).collect(),
        &new_types.iter().map(String::as_str).collect(),
    );
    sections.push(sec);

    // `#define`d constants of libuv (not enum members, not the version numbers).
    let consts = |h: &'_ HeaderModel| -> BTreeSet<String> {
        let members: BTreeSet<&String> = h.enums.values().flatten().collect();
        h.consts
            .keys()
            .filter(|k| k.starts_with("UV_") && !k.starts_with("UV_VERSION_"))
            .filter(|k| !k.starts_with("UV__"))
            .filter(|k| !members.contains(k))
            .cloned()
            .collect()
    };
    let (old_consts, new_consts) = (consts(from), consts(to));
    let mut sec = DiffSection::new("other constants");
    sets(
        &mut sec,
        &old_consts.iter().map(String::as_str).collect(),
        &new_consts.iter().map(String::as_str).collect(),
    );
    sections.push(sec);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::Const;

    fn sig(params: &[&str], ret: &str) -> Signature {
        Signature {
            params: params.iter().map(|p| p.to_string()).collect(),
            ret: ret.into(),
        }
    }

    fn model(codes: &[&str], handles: &[&str], funcs: &[(&str, Signature)]) -> HeaderModel {
        let mut h = HeaderModel::default();
        h.enums.insert(
            "uv_errno_t".into(),
            codes.iter().map(|c| c.to_string()).collect(),
        );
        let mut ht: Vec<String> = vec!["UV_UNKNOWN_HANDLE".into()];
        ht.extend(handles.iter().map(|c| c.to_string()));
        ht.push("UV_FILE".into());
        h.enums.insert("uv_handle_type".into(), ht);
        h.maps.insert(
            "UV_HANDLE_TYPE_MAP".into(),
            handles.iter().map(|c| c.to_string()).collect(),
        );
        for (n, s) in funcs {
            h.functions.insert(n.to_string(), s.clone());
        }
        for (n, v) in [
            ("UV_VERSION_MAJOR", 1),
            ("UV_VERSION_MINOR", 2),
            ("UV_VERSION_PATCH", 3),
        ] {
            h.consts.insert(
                n.into(),
                Const {
                    c_name: n.into(),
                    rust_name: n.into(),
                    ty: "u32".into(),
                    value: v,
                },
            );
        }
        h
    }

    #[test]
    fn names_added_removed_and_changed_items() {
        let run = sig(&["*mutuv_loop_t", "uv_run_mode"], "c_int");
        let old = model(
            &["UV_EOF", "UV_EINVAL"],
            &["UV_ASYNC", "UV_TIMER"],
            &[
                ("uv_run", run.clone()),
                ("uv_gone", sig(&[], "")),
                ("uv_sleep", sig(&["c_uint"], "")),
            ],
        );
        let new = model(
            &["UV_EOF", "UV_EINVAL", "UV_ENEW"],
            &["UV_ASYNC", "UV_TIMER", "UV_FAKE"],
            &[
                ("uv_run", run),
                ("uv_sleep", sig(&["u64"], "")),
                (
                    "uv_fake_init",
                    sig(&["*mutuv_loop_t", "*mutuv_fake_t"], "c_int"),
                ),
            ],
        );
        let d = diff(&old, &new);
        let titles: Vec<&str> = d.sections.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "status codes (uv_errno_t)",
                "handle types (UV_HANDLE_TYPE_MAP)",
                "functions"
            ]
        );
        assert_eq!(d.sections[0].added, ["UV_ENEW"]);
        assert_eq!(d.sections[1].added, ["UV_FAKE"]);
        let f = d.section("functions").unwrap();
        assert_eq!(
            f.added,
            ["uv_fake_init(*mut uv_loop_t, *mut uv_fake_t) -> c_int"]
        );
        assert_eq!(f.added_names(), ["uv_fake_init"]);
        assert_eq!(f.removed, ["uv_gone"]);
        assert_eq!(
            f.changed,
            [(
                "uv_sleep".to_string(),
                "(c_uint)".to_string(),
                "(u64)".to_string()
            )]
        );
        let text = d.render();
        assert!(
            text.contains("\nfunctions: 1 added, 1 removed, 1 changed\n"),
            "{text}"
        );
        assert!(
            text.contains("  ~ uv_sleep(c_uint)\n            (u64)\n"),
            "{text}"
        );
        // The handle type is reported once, not again as a member of uv_handle_type.
        assert!(d.section("enum uv_handle_type").is_none(), "{text}");
        // Both directions.
        let back = diff(&new, &old);
        assert_eq!(back.sections[0].removed, ["UV_ENEW"]);
        assert_eq!(
            back.section("functions").unwrap().added_names(),
            ["uv_gone"]
        );
        assert!(diff(&old, &old).is_empty());
        assert_eq!(
            diff(&old, &old).render(),
            "libuv 1.2.3 -> 1.2.3\nno changes\n"
        );
    }
}
