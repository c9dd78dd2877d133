//! The one emitter of "an enum that keeps unknown values": a Rust enum over C
//! constants with an `Other(i32)` variant, its raw-value module, `ALL`, `from_raw`,
//! `raw`, `name` and the `i32` conversions. Plain enums (`spec/enums/`) and
//! `StatusCode` are both written by it.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::Ctx;

/// One member.
pub struct Member {
    /// Rust variant.
    pub ident: Ident,
    /// Its name as text (what `name()` gives).
    pub name: String,
    /// `#[doc]` attribute(s).
    pub doc: TokenStream,
    /// `#[cfg]` attribute, or nothing.
    pub cfg: TokenStream,
    /// The bindgen constant that gives its value.
    pub sys: Ident,
}

/// An enum to emit.
pub struct OpenEnum {
    /// Type name.
    pub name: Ident,
    /// Its raw-value module.
    pub raw_mod: Ident,
    /// Doc and other attributes of the type (derives of `Debug` included or not).
    pub attrs: TokenStream,
    /// The members.
    pub members: Vec<Member>,
    /// What `name()` gives for `Other`.
    pub other_name: &'static str,
    /// Doc of `from_raw`, `raw` and `name`.
    pub fn_docs: [&'static str; 3],
}

/// Emits the enum, its raw module, its inherent functions and conversions.
pub fn emit(e: &OpenEnum, ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    let OpenEnum {
        name,
        raw_mod,
        attrs,
        other_name,
        ..
    } = e;
    let members: Vec<_> = e.members.iter().map(|m| &m.ident).collect();
    let strs: Vec<_> = e.members.iter().map(|m| &m.name).collect();
    let cfgs: Vec<_> = e.members.iter().map(|m| &m.cfg).collect();
    let docs: Vec<_> = e.members.iter().map(|m| &m.doc).collect();
    let sys: Vec<_> = e.members.iter().map(|m| &m.sys).collect();
    let [from_doc, raw_doc, name_doc] = e.fn_docs.map(super::doc_attr);
    quote! {
        #attrs
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

            #from_doc
            #[allow(unreachable_patterns)]
            pub const fn from_raw(raw: i32) -> #name {
                match raw {
                    #( #cfgs #raw_mod::#members => #name::#members, )*
                    _ => #name::Other(raw),
                }
            }

            #raw_doc
            pub const fn raw(self) -> i32 {
                match self {
                    #( #cfgs #name::#members => #raw_mod::#members, )*
                    #name::Other(raw) => raw,
                }
            }

            #name_doc
            pub const fn name(self) -> &'static str {
                match self {
                    #( #cfgs #name::#members => #strs, )*
                    #name::Other(_) => #other_name,
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
