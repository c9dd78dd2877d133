//! `StatusCode`: every libuv status code, with unknown raw values kept.

use proc_macro2::TokenStream;
use quote::quote;

use super::{doc_attr, ident, open_enum, Ctx};
use crate::names;
use crate::spec::Spec;

/// Emits `StatusCode`.
pub fn status_codes(spec: &Spec, ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    let Some(sc) = &spec.status_codes else {
        return TokenStream::new();
    };
    let names: Vec<_> = sc.codes.iter().map(|c| ident(&c.name)).collect();
    let doc_strs: Vec<_> = sc.codes.iter().map(|c| c.doc.clone()).collect();
    let members = sc
        .codes
        .iter()
        .map(|c| open_enum::Member {
            ident: ident(&c.name),
            name: c.name.value.clone(),
            doc: doc_attr(&format!("`UV_{}`: {}.", c.name.value, c.doc)),
            cfg: TokenStream::new(),
            sys: ident(&names::status_code_sys(&sc.c_type, &c.name)),
        })
        .collect();
    let base = open_enum::emit(
        &open_enum::OpenEnum {
            name: ident("StatusCode"),
            raw_mod: ident("status_raw"),
            attrs: quote! {
                /// A libuv status code (`uv_errno_t`).
                ///
                /// Values come from the libuv headers of the platform, so they differ between
                /// platforms; compare codes, not numbers. A code this version does not know is
                /// kept as [`StatusCode::Other`] with its raw value.
                #[derive(Clone, Copy, PartialEq, Eq, Hash)]
                #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
            },
            members,
            other_name: "UNKNOWN",
            fn_docs: [
                "The code for a raw libuv value; unknown values are kept as `Other`.",
                "The raw libuv value (negative).",
                "The name without `UV_`, e.g. `\"EADDRINUSE\"`; `\"UNKNOWN\"` for `Other`.",
            ],
        },
        ctx,
    );
    quote! {
        #base

        impl StatusCode {
            /// The description the spec gives the code.
            pub const fn description(self) -> &'static str {
                match self {
                    #( StatusCode::#names => #doc_strs, )*
                    StatusCode::Other(_) => "unknown error",
                }
            }

            /// libuv's message for the code (`uv_strerror`).
            pub fn message(self) -> ::std::string::String {
                #rt::runtime::strerror(self.raw())
            }
        }

        impl ::core::fmt::Debug for StatusCode {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self {
                    StatusCode::Other(raw) => write!(f, "Other({raw})"),
                    _ => f.write_str(self.name()),
                }
            }
        }

        impl ::core::fmt::Display for StatusCode {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self {
                    StatusCode::Other(raw) => write!(f, "UNKNOWN ({raw})"),
                    _ => f.write_str(self.name()),
                }
            }
        }
    }
}
