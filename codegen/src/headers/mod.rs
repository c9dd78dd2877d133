//! The header model: what the libuv headers declare, read from bindgen's output.
//!
//! `HeaderModel::parse` takes bindgen output (Rust source) and collects functions,
//! callback typedefs, constants and enums. `bindgen_output` (feature `headers`) runs
//! bindgen over a libuv include directory with the same settings as `libuv-sys2`, so
//! the constant names here are the names `libuv-sys2` exports.

#[cfg(feature = "headers")]
mod run;
#[cfg(feature = "headers")]
pub use run::{bindgen_output, default_include_dir};

use std::collections::BTreeMap;

use quote::ToTokens;

/// A C function or callback signature, types written as bindgen writes them
/// (with `::core::ffi::` and `::std::os::raw::` removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Parameter types.
    pub params: Vec<String>,
    /// Return type; empty for `void`.
    pub ret: String,
}

/// A constant: a `#define` or an enum member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Const {
    /// The C name (`UV_EADDRINUSE`, `AF_INET`).
    pub c_name: String,
    /// The name bindgen and `libuv-sys2` give it (`uv_errno_t_UV_EADDRINUSE`).
    pub rust_name: String,
    /// Its type as bindgen writes it.
    pub ty: String,
    /// Its value.
    pub value: i128,
}

/// Everything the cross-check needs from the headers.
#[derive(Clone, Debug, Default)]
pub struct HeaderModel {
    /// Functions by name.
    pub functions: BTreeMap<String, Signature>,
    /// Callback typedefs (`uv_timer_cb`) by name.
    pub callbacks: BTreeMap<String, Signature>,
    /// Constants by C name.
    pub consts: BTreeMap<String, Const>,
    /// Enums by type name (`uv_errno_t`, or bindgen's `_bindgen_ty_N` for anonymous
    /// ones), each with its members' C names in declaration order.
    pub enums: BTreeMap<String, Vec<String>>,
    /// Type names (structs and aliases).
    pub types: Vec<String>,
    /// The X-macro lists of uv.h (`UV_ERRNO_MAP`, `UV_HANDLE_TYPE_MAP`, ...), each with
    /// the C names of its entries (`UV_TIMER`), when the header text was read.
    pub maps: BTreeMap<String, Vec<String>>,
    /// The second argument of an X-macro entry when it is a plain name, by the
    /// entry's C name: `XX(NAMED_PIPE, pipe)` gives `UV_NAMED_PIPE` -> `pipe` (the
    /// name of the type's functions and of its spec file).
    pub map_names: BTreeMap<String, String>,
    /// The runtime's use of libuv's reserved handle space (see [`HandleUnion`]), when
    /// the header text was read.
    pub handle_union: Option<HandleUnion>,
}

/// What the runtime relies on to keep its per-handle header inside each libuv handle
/// struct: `UV_HANDLE_FIELDS` declares the union `u` as `int fd; void* reserved[4];`,
/// and libuv reaches only `fd` (on Windows), which lies in the union's first word;
/// the rest is reserved and unused. (The header sits after the union's first word;
/// see `uv/src/handle.rs`, `HEADER_OFFSET`.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandleUnion {
    /// The uv.h that was read.
    pub header: std::path::PathBuf,
    /// The union's members as declared, whitespace-normalised
    /// (`int fd; void* reserved[4];`); `None` if uv.h has no such union.
    pub declared: Option<String>,
    /// The line of uv.h the union's declaration starts on (1-based; 1 if not found).
    pub line: usize,
    /// Lines of libuv's sources and headers that reach the union beyond `fd`
    /// (`u.reserved`, or the union as a whole): (file, 1-based line, the line's
    /// text). `None` when libuv's sources were not found next to the headers
    /// (`../src/uv-common.c`): then only the declaration is checked.
    pub uses: Option<Vec<(std::path::PathBuf, usize, String)>>,
}

/// The members the runtime expects in `uv_handle_t`'s `u` union.
pub const HANDLE_UNION_EXPECTED: &str = "int fd; void* reserved[4];";

/// The members of the union `u` in uv.h's `UV_HANDLE_FIELDS`, whitespace-normalised,
/// and the line its declaration starts on.
pub fn parse_handle_union(header: &str) -> Option<(String, usize)> {
    let lines: Vec<&str> = header.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with("#define UV_HANDLE_FIELDS"))?;
    let mut body = String::new();
    let mut union_line = None;
    for (i, l) in lines.iter().enumerate().skip(start) {
        let text = l.trim_end();
        let continued = text.ends_with('\\');
        let text = text.trim_end_matches('\\');
        if union_line.is_none() && text.contains("union") {
            union_line = Some(i + 1);
        }
        body.push_str(text);
        body.push(' ');
        if !continued {
            break;
        }
    }
    // Drop comments, then take what lies between `union {` and `} u;`.
    let mut plain = String::new();
    let mut rest = body.as_str();
    while let Some(i) = rest.find("/*") {
        plain.push_str(&rest[..i]);
        rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
    }
    plain.push_str(rest);
    let open = plain.find("union")?;
    let brace = open + plain[open..].find('{')?;
    let close = brace + plain[brace..].find('}')?;
    let after = plain[close + 1..].trim_start();
    if !after.starts_with("u;") && !after.starts_with("u ;") {
        return None;
    }
    let members = plain[brace + 1..close]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ;", ";")
        .replace(" *", "*")
        .replace(" [", "[");
    Some((members, union_line.unwrap_or(start + 1)))
}

/// Whether a line of C may reach a handle's `u` union beyond its `fd` member: its
/// `reserved` words, or the union as a whole (`&h->u`, `h->u = ...`).
pub fn reaches_handle_union(line: &str) -> bool {
    [
        "u.reserved",
        "->u)",
        "->u,",
        "->u;",
        "->u =",
        "->u=",
        "->u +",
        "->u[",
        ".u)",
        ".u,",
        ".u;",
        ".u =",
        ".u=",
    ]
    .iter()
    .any(|p| line.contains(p))
}

/// The entries of every `#define UV_..._MAP(XX)` list in a header's text, as the
/// enum members they become (`XX(TIMER, timer)` in `UV_HANDLE_TYPE_MAP` -> `UV_TIMER`).
pub fn parse_maps(header: &str) -> BTreeMap<String, Vec<String>> {
    parse_map_entries(header)
        .into_iter()
        .map(|(map, entries)| (map, entries.into_iter().map(|(c, _)| c).collect()))
        .collect()
}

/// As [`parse_maps`], each entry with its second argument when that is a plain name
/// (`XX(NAMED_PIPE, pipe)` -> (`UV_NAMED_PIPE`, `Some("pipe")`); the status codes'
/// messages are strings and give `None`).
pub fn parse_map_entries(header: &str) -> BTreeMap<String, Vec<(String, Option<String>)>> {
    let is_name =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut maps = BTreeMap::new();
    let mut lines = header.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("#define ") else {
            continue;
        };
        let Some(name) = rest
            .strip_suffix("(XX)  \\")
            .or_else(|| rest.split_once("(XX)").map(|(n, _)| n))
        else {
            continue;
        };
        if !name.starts_with("UV_") || !name.ends_with("_MAP") {
            continue;
        }
        let mut entries = Vec::new();
        let mut current = line.to_string();
        loop {
            for part in current.split("XX(").skip(1) {
                let mut args = part.split([',', ')']);
                let entry = args.next().unwrap_or("").trim();
                if is_name(entry) {
                    let second = args.next().map(str::trim).filter(|s| is_name(s));
                    entries.push((format!("UV_{entry}"), second.map(str::to_string)));
                }
            }
            if !current.trim_end().ends_with('\\') {
                break;
            }
            match lines.next() {
                Some(l) => current = l.to_string(),
                None => break,
            }
        }
        maps.insert(name.trim().to_string(), entries);
    }
    maps
}

/// Writes a type as a compact string.
pub fn type_string(ty: &syn::Type) -> String {
    ty.to_token_stream()
        .to_string()
        .replace(' ', "")
        .replace("::core::ffi::", "")
        .replace("::std::os::raw::", "")
        .replace("::core::option::Option", "Option")
}

fn int_value(e: &syn::Expr) -> Option<i128> {
    match e {
        syn::Expr::Lit(l) => match &l.lit {
            syn::Lit::Int(i) => i.base10_parse::<i128>().ok(),
            _ => None,
        },
        syn::Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => int_value(&u.expr).map(|v| -v),
        syn::Expr::Paren(p) => int_value(&p.expr),
        syn::Expr::Cast(c) => int_value(&c.expr),
        _ => None,
    }
}

fn bare_fn_sig(f: &syn::TypeBareFn) -> Signature {
    Signature {
        params: f.inputs.iter().map(|a| type_string(&a.ty)).collect(),
        ret: match &f.output {
            syn::ReturnType::Default => String::new(),
            syn::ReturnType::Type(_, t) => type_string(t),
        },
    }
}

/// The bare fn inside `Option<unsafe extern "C" fn(...)>`.
fn callback_of(ty: &syn::Type) -> Option<Signature> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(syn::Type::BareFn(f)) => Some(bare_fn_sig(f)),
        _ => None,
    }
}

const PRIMITIVES: &[&str] = &[
    "u8",
    "u16",
    "u32",
    "u64",
    "i8",
    "i16",
    "i32",
    "i64",
    "usize",
    "isize",
    "c_int",
    "c_uint",
    "c_long",
    "c_ulong",
    "c_char",
    "c_uchar",
    "c_short",
    "c_ushort",
    "c_longlong",
    "c_ulonglong",
];

impl HeaderModel {
    /// Reads bindgen output. Items that are not understood are skipped; the model
    /// holds what the cross-check uses.
    pub fn parse(bindings: &str) -> Result<Self, syn::Error> {
        let file = syn::parse_file(bindings)?;
        let mut m = HeaderModel::default();
        let mut aliases: BTreeMap<String, String> = BTreeMap::new();
        let mut pending = Vec::new();
        for item in &file.items {
            match item {
                syn::Item::ForeignMod(fm) => {
                    for fi in &fm.items {
                        if let syn::ForeignItem::Fn(f) = fi {
                            let sig = Signature {
                                params: f
                                    .sig
                                    .inputs
                                    .iter()
                                    .filter_map(|a| match a {
                                        syn::FnArg::Typed(t) => Some(type_string(&t.ty)),
                                        syn::FnArg::Receiver(_) => None,
                                    })
                                    .collect(),
                                ret: match &f.sig.output {
                                    syn::ReturnType::Default => String::new(),
                                    syn::ReturnType::Type(_, t) => type_string(t),
                                },
                            };
                            m.functions.insert(f.sig.ident.to_string(), sig);
                        }
                    }
                }
                syn::Item::Type(t) => {
                    let name = t.ident.to_string();
                    if let Some(sig) = callback_of(&t.ty) {
                        m.callbacks.insert(name.clone(), sig);
                    }
                    aliases.insert(name.clone(), type_string(&t.ty));
                    m.types.push(name);
                }
                syn::Item::Struct(s) => m.types.push(s.ident.to_string()),
                syn::Item::Union(u) => m.types.push(u.ident.to_string()),
                syn::Item::Const(c) => {
                    if let Some(value) = int_value(&c.expr) {
                        pending.push((c.ident.to_string(), type_string(&c.ty), value));
                    }
                }
                _ => {}
            }
        }
        for (rust_name, ty, value) in pending {
            // A constant whose type is a non-primitive alias is an enum member.
            let is_enum = !PRIMITIVES.contains(&ty.as_str()) && aliases.contains_key(&ty);
            let c_name = if is_enum {
                rust_name
                    .strip_prefix(&format!("{ty}_"))
                    .unwrap_or(&rust_name)
                    .to_string()
            } else {
                rust_name.clone()
            };
            if is_enum {
                m.enums.entry(ty.clone()).or_default().push(c_name.clone());
            }
            m.consts.insert(
                c_name.clone(),
                Const {
                    c_name,
                    rust_name,
                    ty,
                    value,
                },
            );
        }
        Ok(m)
    }

    /// Enums that belong to libuv (some member starts with `UV_`), by type name.
    pub fn libuv_enums(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.enums
            .iter()
            .filter(|(_, ms)| ms.iter().any(|m| m.starts_with("UV_")))
    }

    /// The libuv version the headers declare, as `major.minor.patch`.
    pub fn version(&self) -> Option<String> {
        let v = |n: &str| self.consts.get(n).map(|c| c.value);
        Some(format!(
            "{}.{}.{}",
            v("UV_VERSION_MAJOR")?,
            v("UV_VERSION_MINOR")?,
            v("UV_VERSION_PATCH")?
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn x_macro_lists_are_read_from_header_text() {
        let text = "#define UV_HANDLE_TYPE_MAP(XX)                                              \\\n  XX(ASYNC, async)                                                            \\\n  XX(NAMED_PIPE, pipe)                                                        \\\n\n#define UV_OTHER 1\n#define UV__X 2\n";
        let maps = super::parse_maps(text);
        assert_eq!(maps.len(), 1);
        assert_eq!(
            maps["UV_HANDLE_TYPE_MAP"],
            vec!["UV_ASYNC", "UV_NAMED_PIPE"]
        );
        let text =
            format!("{text}#define UV_ERRNO_MAP(XX) XX(E2BIG, \"argument list too long\")\n");
        let entries = super::parse_map_entries(&text);
        assert_eq!(
            entries["UV_HANDLE_TYPE_MAP"],
            vec![
                ("UV_ASYNC".to_string(), Some("async".to_string())),
                ("UV_NAMED_PIPE".to_string(), Some("pipe".to_string()))
            ]
        );
        assert_eq!(
            entries["UV_ERRNO_MAP"],
            vec![("UV_E2BIG".to_string(), None)]
        );
    }

    #[test]
    fn the_handle_union_is_read_from_uv_fields() {
        let header = "/* x */\n#define UV_HANDLE_FIELDS \\\n  void* data; \\\n  union { \\\n    int fd; /* win */ \\\n    void* reserved[4]; \\\n  } u; \\\n  UV_HANDLE_PRIVATE_FIELDS \\\n\nint x;\n";
        assert_eq!(
            super::parse_handle_union(header),
            Some((super::HANDLE_UNION_EXPECTED.to_string(), 4))
        );
        let grown = header.replace("void* reserved[4];", "void* reserved[3]; void* next;");
        assert_eq!(
            super::parse_handle_union(&grown),
            Some(("int fd; void* reserved[3]; void* next;".to_string(), 4))
        );
        assert_eq!(
            super::parse_handle_union("#define UV_REQ_FIELDS void* data;\n"),
            None
        );
    }

    #[test]
    fn only_uses_beyond_fd_reach_the_reserved_space() {
        assert!(!super::reaches_handle_union(
            "#define init(h) ((h)->u.fd = -1)"
        ));
        assert!(!super::reaches_handle_union(
            "memset(&req->u.io.overlapped, 0, 8);"
        ));
        assert!(super::reaches_handle_union("handle->u.reserved[1] = p;"));
        assert!(super::reaches_handle_union(
            "memset(&handle->u, 0, sizeof(handle->u));"
        ));
        assert!(super::reaches_handle_union("h->u = other->u;"));
        assert!(super::reaches_handle_union(
            "void** w = (void**) ((char*) &h->u + 8);"
        ));
        assert!(super::reaches_handle_union("copy.u = h.u;"));
    }
}
