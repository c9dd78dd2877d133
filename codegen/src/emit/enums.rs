//! Plain enums (keeping unknown values) and flag sets (`bitflags`, keeping unknown bits).

use proc_macro2::TokenStream;
use quote::quote;

use super::open_enum;
use super::{doc_attr, ident, Ctx};
use crate::names;
use crate::spec::{EnumKind, EnumSpec, MemberSpec, Spec};

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
    let doc = doc_attr(&e.doc);
    let members = e
        .members
        .iter()
        .map(|m| open_enum::Member {
            ident: ident(&m.name),
            name: m.name.value.clone(),
            doc: doc_attr(&format!(
                "{} (`{}`)",
                m.doc.trim_end_matches('.'),
                m.c.value
            )),
            cfg: cfg_attr(m),
            sys: ident(&names::enum_member_sys(e, m)),
        })
        .collect();
    open_enum::emit(
        &open_enum::OpenEnum {
            name: ident(&e.name),
            raw_mod: ident(&names::raw_module(&e.name)),
            attrs: quote! {
                #doc
                #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
            },
            members,
            other_name: "Other",
            fn_docs: [
                "The member for a raw C value; unknown values are kept as `Other`.",
                "The raw C value.",
                "The member's name; `\"Other\"` for unknown values.",
            ],
        },
        ctx,
    )
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
    let sys: Vec<_> = e
        .members
        .iter()
        .map(|m| ident(&names::enum_member_sys(e, m)))
        .collect();
    quote! {
        #rt::runtime::bitflags::bitflags! {
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
