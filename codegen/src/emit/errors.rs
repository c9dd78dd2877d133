//! `Category`: the error hierarchy, and each status code's place in it.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::quote;

use super::{doc_attr, ident, Ctx};
use crate::spec::{Category, Spec};

/// The io kind a category gives, its own or the first found among its ancestors.
fn inherited_io_kind<'a>(name: &str, cats: &HashMap<&str, &'a Category>) -> Option<&'a str> {
    let mut queue = vec![name];
    let mut i = 0;
    while i < queue.len() {
        let c = cats.get(queue[i])?;
        if let Some(k) = &c.io_kind {
            return Some(k.as_str());
        }
        queue.extend(c.parents.iter().map(|p| p.as_str()));
        i += 1;
        if i > 64 {
            break;
        }
    }
    None
}

/// `std::io::ErrorKind::<k>` (`Other` for none).
fn io_kind(k: Option<&str>) -> TokenStream {
    let k = ident(k.unwrap_or("Other"));
    quote!(::std::io::ErrorKind::#k)
}

/// Emits `Category` and `StatusCode::category` / `StatusCode::io_error_kind`.
pub fn categories(spec: &Spec, ctx: &Ctx) -> TokenStream {
    let cats: HashMap<&str, &Category> = spec
        .categories
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let category = category_enum(spec, &cats, ctx);
    let codes = code_categories(spec, &cats, ctx);
    quote! {
        #category
        #codes
    }
}

/// The `Category` enum: names, parents, io kinds, library errors.
fn category_enum(spec: &Spec, cats: &HashMap<&str, &Category>, ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    let names: Vec<_> = spec.categories.iter().map(|c| ident(&c.name)).collect();
    let strs: Vec<_> = spec
        .categories
        .iter()
        .map(|c| c.name.value.clone())
        .collect();
    let docs: Vec<_> = spec
        .categories
        .iter()
        .map(|c| {
            let mut d = c.doc.clone();
            if !c.parents.is_empty() {
                let ps: Vec<_> = c
                    .parents
                    .iter()
                    .map(|p| format!("[`Category::{}`]", p.value))
                    .collect();
                d.push_str(&format!("\n\nA kind of {}.", ps.join(" and ")));
            }
            doc_attr(&d)
        })
        .collect();
    let parents: Vec<_> = spec
        .categories
        .iter()
        .map(|c| {
            let ps = c.parents.iter().map(|p| ident(p));
            quote!(&[ #( Category::#ps ),* ])
        })
        .collect();
    let cat_io: Vec<_> = spec
        .categories
        .iter()
        .map(|c| io_kind(inherited_io_kind(&c.name, cats)))
        .collect();
    let lib: Vec<_> = spec
        .categories
        .iter()
        .filter(|c| c.library_code.is_some())
        .collect();
    let lib_names: Vec<_> = lib.iter().map(|c| ident(&c.name)).collect();
    let lib_codes: Vec<_> = lib
        .iter()
        .map(|c| ident(c.library_code.as_ref().expect("filtered")))
        .collect();
    let lib_msgs: Vec<_> = lib
        .iter()
        .map(|c| c.message.clone().unwrap_or_default())
        .collect();

    quote! {
        /// A kind of error: a node of the error hierarchy. Every status code belongs to
        /// one category; categories have parents, and [`Category::is`] follows them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Category {
            #( #docs #names, )*
        }

        impl Category {
            /// Every category, in spec order.
            pub const ALL: &'static [Category] = &[ #( Category::#names, )* ];

            /// The category's name.
            pub const fn name(self) -> &'static str {
                match self { #( Category::#names => #strs, )* }
            }

            /// The direct parents.
            pub const fn parents(self) -> &'static [Category] {
                match self { #( Category::#names => #parents, )* }
            }

            /// Whether `self` is `other` or descends from it.
            pub fn is(self, other: Category) -> bool {
                self == other || self.parents().iter().any(|p| p.is(other))
            }

            /// The `std::io::ErrorKind` of the category (its own, or inherited).
            pub const fn io_error_kind(self) -> ::std::io::ErrorKind {
                match self { #( Category::#names => #cat_io, )* }
            }

            /// For errors this library raises itself: the status code and message they carry.
            pub const fn library_error(self) -> ::core::option::Option<(#rt::StatusCode, &'static str)> {
                match self {
                    #( Category::#lib_names => ::core::option::Option::Some((#rt::StatusCode::#lib_codes, #lib_msgs)), )*
                    _ => ::core::option::Option::None,
                }
            }
        }
    }
}

/// Each status code's category and io kind.
fn code_categories(spec: &Spec, cats: &HashMap<&str, &Category>, ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    let (code_names, code_cats, code_io) = match &spec.status_codes {
        None => (vec![], vec![], vec![]),
        Some(sc) => {
            let mut n = Vec::new();
            let mut c = Vec::new();
            let mut k = Vec::new();
            for code in &sc.codes {
                n.push(ident(&code.name));
                let cat = code
                    .category
                    .as_ref()
                    .map(|c| c.value.as_str())
                    .unwrap_or("Unclassified");
                c.push(ident(cat));
                let kind = code
                    .io_kind
                    .as_ref()
                    .map(|k| k.value.as_str())
                    .or_else(|| inherited_io_kind(cat, cats));
                k.push(io_kind(kind));
            }
            (n, c, k)
        }
    };
    let fallback = if cats.contains_key("Unclassified") {
        quote!(Category::Unclassified)
    } else {
        quote!(compile_error!(
            "errors.toml needs a category named Unclassified"
        ))
    };

    quote! {
        impl #rt::StatusCode {
            /// The category of the code.
            pub const fn category(self) -> Category {
                match self {
                    #( #rt::StatusCode::#code_names => Category::#code_cats, )*
                    #rt::StatusCode::Other(_) => #fallback,
                }
            }

            /// The `std::io::ErrorKind` the code converts to.
            pub const fn io_error_kind(self) -> ::std::io::ErrorKind {
                match self {
                    #( #rt::StatusCode::#code_names => #code_io, )*
                    #rt::StatusCode::Other(_) => ::std::io::ErrorKind::Other,
                }
            }
        }
    }
}
