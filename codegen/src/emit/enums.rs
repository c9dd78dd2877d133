//! Plain enums (keeping unknown values) and flag sets (`bitflags`, keeping unknown bits).

use proc_macro2::TokenStream;
use quote::quote;

use super::{doc_attr, ident, Ctx};
use crate::spec::{EnumKind, EnumSpec, MemberSpec, Spec};

/// The name `libuv-sys2` gives a member's constant: `<c_type>_<C>` for members of a
/// named C enum (bindgen's naming), the C name itself for `#define`s and anonymous enums.
pub fn sys_name(e: &EnumSpec, m: &MemberSpec) -> String {
    match &e.c_type {
        Some(t) => format!("{}_{}", t.value, m.c.value),
        None => m.c.value.clone(),
    }
}

fn cfg_attr(m: &MemberSpec) -> TokenStream {
    match &m.cfg {
        Some(c) => match c.parse::<TokenStream>() {
            Ok(pred) => quote!(#[cfg(#pred)]),
            Err(_) => quote!(compile_error!("invalid cfg predicate in spec");),
        },
        None => TokenStream::new(),
    }
}

fn plain(e: &EnumSpec, ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    let name = ident(&e.name);
    let raw_mod = ident(&format!("{}_raw", to_snake(&e.name)));
    let doc = doc_attr(&e.doc);
    let members: Vec<_> = e.members.iter().map(|m| ident(&m.name)).collect();
    let strs: Vec<_> = e.members.iter().map(|m| m.name.value.clone()).collect();
    let cfgs: Vec<_> = e.members.iter().map(cfg_attr).collect();
    let docs: Vec<_> = e
        .members
        .iter()
        .map(|m| {
            doc_attr(&format!(
                "{} (`{}`)",
                m.doc.trim_end_matches('.'),
                m.c.value
            ))
        })
        .collect();
    let sys: Vec<_> = e.members.iter().map(|m| ident(&sys_name(e, m))).collect();
    quote! {
        #doc
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum #name {
            #( #cfgs #docs #members, )*
            /// A value unknown to this version of the bindings, kept as it came.
            Other(i32),
        }

        #[allow(non_upper_case_globals, clippy::unnecessary_cast)]
        mod #raw_mod {
            #( #cfgs pub const #members: i32 = #rt::sys::#sys as i32; )*
        }

        impl #name {
            /// Every member the spec knows.
            pub const ALL: &'static [#name] = &[ #( #cfgs #name::#members, )* ];

            /// The member for a raw C value; unknown values are kept as `Other`.
            #[allow(unreachable_patterns)]
            pub const fn from_raw(raw: i32) -> #name {
                match raw {
                    #( #cfgs #raw_mod::#members => #name::#members, )*
                    _ => #name::Other(raw),
                }
            }

            /// The raw C value.
            pub const fn raw(self) -> i32 {
                match self {
                    #( #cfgs #name::#members => #raw_mod::#members, )*
                    #name::Other(raw) => raw,
                }
            }

            /// The member's name; `"Other"` for unknown values.
            pub const fn name(self) -> &'static str {
                match self {
                    #( #cfgs #name::#members => #strs, )*
                    #name::Other(_) => "Other",
                }
            }
        }

        impl ::core::convert::From<i32> for #name {
            fn from(raw: i32) -> #name {
                #name::from_raw(raw)
            }
        }

        impl ::core::convert::From<#name> for i32 {
            fn from(v: #name) -> i32 {
                v.raw()
            }
        }
    }
}

fn flags(e: &EnumSpec, ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    let name = ident(&e.name);
    let doc = doc_attr(&e.doc);
    let members: Vec<_> = e.members.iter().map(|m| ident(&m.name)).collect();
    let cfgs: Vec<_> = e.members.iter().map(cfg_attr).collect();
    let docs: Vec<_> = e
        .members
        .iter()
        .map(|m| {
            doc_attr(&format!(
                "{} (`{}`)",
                m.doc.trim_end_matches('.'),
                m.c.value
            ))
        })
        .collect();
    let sys: Vec<_> = e.members.iter().map(|m| ident(&sys_name(e, m))).collect();
    quote! {
        #rt::__private::bitflags::bitflags! {
            #doc
            ///
            /// Bits unknown to this version of the bindings are kept (`from_bits_retain`).
            #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            pub struct #name: u32 {
                #( #cfgs #docs const #members = #rt::sys::#sys as u32; )*
            }
        }
    }
}

/// `RunMode` -> `run_mode`.
pub fn to_snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Emits one enum.
pub fn enum_tokens(e: &EnumSpec, ctx: &Ctx) -> TokenStream {
    match e.kind {
        EnumKind::Enum => plain(e, ctx),
        EnumKind::Flags => flags(e, ctx),
    }
}

/// Emits every enum of the spec.
pub fn enums(spec: &Spec, ctx: &Ctx) -> TokenStream {
    let all = spec.enums.iter().map(|e| enum_tokens(e, ctx));
    quote!( #( #all )* )
}
