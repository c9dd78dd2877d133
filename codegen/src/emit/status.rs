//! `StatusCode`: every libuv status code, with unknown raw values kept.

use proc_macro2::TokenStream;
use quote::quote;

use super::{doc_attr, ident, Ctx};
use crate::spec::Spec;

/// Emits `StatusCode`.
pub fn status_codes(spec: &Spec, ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    let Some(sc) = &spec.status_codes else {
        return TokenStream::new();
    };
    let names: Vec<_> = sc.codes.iter().map(|c| ident(&c.name)).collect();
    let strs: Vec<_> = sc.codes.iter().map(|c| c.name.value.clone()).collect();
    let sys_names: Vec<_> = sc
        .codes
        .iter()
        .map(|c| ident(&format!("{}_UV_{}", sc.c_type.value, c.name.value)))
        .collect();
    let docs: Vec<_> = sc
        .codes
        .iter()
        .map(|c| doc_attr(&format!("`UV_{}`: {}.", c.name.value, c.doc)))
        .collect();
    let doc_strs: Vec<_> = sc.codes.iter().map(|c| c.doc.clone()).collect();
    quote! {
        /// A libuv status code (`uv_errno_t`).
        ///
        /// Values come from the libuv headers of the platform, so they differ between
        /// platforms; compare codes, not numbers. A code this version does not know is
        /// kept as [`StatusCode::Other`] with its raw value.
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub enum StatusCode {
            #( #docs #names, )*
            /// A code unknown to this version of the bindings, with its raw value.
            Other(i32),
        }

        #[allow(non_upper_case_globals, clippy::unnecessary_cast)]
        mod status_raw {
            #( pub const #names: i32 = #rt::sys::#sys_names as i32; )*
        }

        impl StatusCode {
            /// Every status code the spec knows, in libuv's order.
            pub const ALL: &'static [StatusCode] = &[ #( StatusCode::#names, )* ];

            /// The code for a raw libuv value; unknown values are kept as `Other`.
            #[allow(unreachable_patterns)]
            pub const fn from_raw(raw: i32) -> StatusCode {
                match raw {
                    #( status_raw::#names => StatusCode::#names, )*
                    _ => StatusCode::Other(raw),
                }
            }

            /// The raw libuv value (negative).
            pub const fn raw(self) -> i32 {
                match self {
                    #( StatusCode::#names => status_raw::#names, )*
                    StatusCode::Other(raw) => raw,
                }
            }

            /// The name without `UV_`, e.g. `"EADDRINUSE"`; `"UNKNOWN"` for `Other`.
            pub const fn name(self) -> &'static str {
                match self {
                    #( StatusCode::#names => #strs, )*
                    StatusCode::Other(_) => "UNKNOWN",
                }
            }

            /// The description the spec gives the code.
            pub const fn description(self) -> &'static str {
                match self {
                    #( StatusCode::#names => #doc_strs, )*
                    StatusCode::Other(_) => "unknown error",
                }
            }

            /// libuv's message for the code (`uv_strerror`).
            pub fn message(self) -> ::std::string::String {
                #rt::__private::strerror(self.raw())
            }
        }

        impl ::core::convert::From<i32> for StatusCode {
            fn from(raw: i32) -> StatusCode {
                StatusCode::from_raw(raw)
            }
        }

        impl ::core::convert::From<StatusCode> for i32 {
            fn from(code: StatusCode) -> i32 {
                code.raw()
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
