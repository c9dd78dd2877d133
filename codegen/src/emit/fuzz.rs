//! The API fuzzer's table (`tests/src/fuzz.rs` includes it): every handle type of the
//! spec with its constructors, methods, properties and the base and stream operations
//! it inherits, each as a function that makes its arguments from the spec's
//! conversions (through the fuzzer runtime's generators) and calls the safe API.
//!
//! The output lives in a child module of the fuzzer runtime and names it `rt`
//! (`super::super` from a handle's module). What it expects from the runtime:
//! `Cx` (the run's state and argument generators), `Op`, `OpKind`, `HandleOps`,
//! `Member`, `Stream`, `FdKind`, `settle`, `closed_contract`, `adopt`, the
//! callbacks `on_callback`/`on_done`, and one generic function per name of
//! [`BASE_OPS`] in `rt::base_ops` and of [`STREAM_OPS`] in `rt::stream_ops`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{ident, Ctx};
use crate::model::{HandleModel, Model};
use crate::spec::{ArgSpec, Conv, HandleParent, HandleSpec, OnClosed};

/// Operations every handle has (`uv::Handle`, reached through `Deref`), and the
/// fuzzer's own operations on references: one generic runtime function each.
pub const BASE_OPS: &[&str] = &[
    "close",
    "close_with",
    "ref_",
    "unref",
    "has_ref",
    "is_active",
    "is_closing",
    "is_closed",
    "fileno",
    "send_buffer_size",
    "set_send_buffer_size",
    "recv_buffer_size",
    "set_recv_buffer_size",
    "handle_type",
    "downcast",
    "loop_",
    "into_handle",
    "clone_ref",
    "drop_ref",
];

/// The operations of every `parent = "stream"` handle (the runtime's stream core);
/// `read_start_pool` and `read_start_hostile` are `read_start_with` with a
/// `PoolAllocator` and with a hostile `ReadAllocator`.
pub const STREAM_OPS: &[&str] = &[
    "read_start",
    "read_start_pool",
    "read_start_hostile",
    "read_stop",
    "write",
    "write_counted",
    "future_write",
    "future_write_each",
    "future_read",
    "write2",
    "try_write",
    "shutdown",
    "listen",
    "accept",
    "is_readable",
    "is_writable",
    "set_blocking",
    "write_queue_size",
];

/// The fuzzer's table for every handle type that is not `manual`.
pub fn fuzz_table(model: &Model<'_>, ctx: &Ctx) -> TokenStream {
    let models: Vec<&HandleModel<'_>> = model
        .handles
        .iter()
        .filter(|m| m.spec.manual.is_none())
        .collect();
    let handles: Vec<&HandleSpec> = models.iter().map(|m| m.spec).collect();
    let any = any_handle(&handles, ctx);
    let members = models.iter().map(|m| member(m, ctx));
    let streams: Vec<&HandleSpec> = handles
        .iter()
        .copied()
        .filter(|h| h.parent == HandleParent::Stream)
        .collect();
    let stream_impls = streams.iter().map(|h| stream_impl(h, &streams, ctx));
    let modules = models.iter().map(|m| handle_module(m, ctx));
    let table = table(&models);
    let requests = request_table(model, ctx);
    quote! {
        #any
        #( #members )*
        #( #stream_impls )*
        #( #modules )*
        #table
        #requests
    }
}

/// The generated request types' operations: each function in its asynchronous
/// form (the `uv::Request` goes to the fuzzer's pool of requests, the completion
/// calls `rt::on_request`) and its blocking form; `request_table()` lists them.
fn request_table(model: &Model<'_>, ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    let mut modules = Vec::new();
    let mut pushes = Vec::new();
    for r in model.requests.iter().filter(|r| r.generated) {
        let name_str = r.spec.name.value.clone();
        let t = ident(&r.spec.name);
        let module = format_ident!("{}_requests", crate::names::to_snake(&r.spec.name));
        let mut fns = Vec::new();
        let mut entries = Vec::new();
        for f in &r.functions {
            let m = f.spec;
            let site = format!("{}::{}", name_str, m.name.value);
            let made = make_args_for(&name_str, &[], &m.args, &site, ctx);
            let (lets, pass, shown) = (&made.lets, &made.pass, note(&made.shown));
            let fname = ident(&m.name);
            let sync = format_ident!("{}", f.sync_name);
            let op_async = format_ident!("r_{}", m.name.value);
            let op_sync = format_ident!("s_{}", m.name.value);
            let op_future = format_ident!("f_{}", m.name.value);
            let ffut = format_ident!("{}", f.future_name);
            fns.push(quote! {
                fn #op_async(cx: &rt::Cx) -> bool {
                    let run = || -> ::core::option::Option<()> {
                        let loop_ = cx.loop_ref()?;
                        #( #lets )*
                        #shown
                        let cap = cx.capture();
                        let r = #rt::#t::#fname(&loop_, #( #pass, )* move |r| rt::on_request(#site, r.map(drop), &cap));
                        rt::keep_request(cx, r, ident);
                        ::core::option::Option::Some(())
                    };
                    run().is_some()
                }

                fn #op_future(cx: &rt::Cx) -> bool {
                    let run = || -> ::core::option::Option<()> {
                        let loop_ = cx.loop_ref()?;
                        #( #lets )*
                        #shown
                        let f = #rt::#t::#ffut(&loop_, #( #pass ),*);
                        let _: ::core::option::Option<&rt::FdIdent> = ident;
                        rt::keep_future(cx, async move { rt::on_future(#site, f.await.map(drop)) });
                        ::core::option::Option::Some(())
                    };
                    run().is_some()
                }

                fn #op_sync(cx: &rt::Cx) -> bool {
                    let run = || -> ::core::option::Option<()> {
                        let loop_ = cx.loop_ref()?;
                        #( #lets )*
                        #shown
                        let r = #rt::#t::#sync(&loop_, #( #pass ),*);
                        rt::settle(cx, r, ident);
                        ::core::option::Option::Some(())
                    };
                    run().is_some()
                }
            });
            let (m_name, s_name) = (m.name.value.clone(), f.sync_name.clone());
            entries.push(quote!(rt::Op { handle: #name_str, name: #m_name, kind: rt::OpKind::Request, run: #op_async }));
            entries.push(quote!(rt::Op { handle: #name_str, name: #s_name, kind: rt::OpKind::Request, run: #op_sync }));
            let f_name = f.future_name.clone();
            entries.push(quote!(rt::Op { handle: #name_str, name: #f_name, kind: rt::OpKind::Future, run: #op_future }));
        }
        modules.push(quote! {
            #[allow(clippy::unnecessary_cast, unused_variables)]
            pub mod #module {
                use super::super as rt;

                #( #fns )*

                /// Every operation of the request type.
                pub const OPS: &[rt::Op] = &[#( #entries ),*];
            }
        });
        pushes.push(quote!(v.push(#module::OPS);));
    }
    quote! {
        #( #modules )*

        /// The operations of every generated request type.
        #[allow(clippy::vec_init_then_push)]
        pub fn request_table() -> ::std::vec::Vec<&'static [super::Op]> {
            let mut v = ::std::vec::Vec::new();
            #( #pushes )*
            v
        }
    }
}

fn cfg_attr(h: &HandleSpec) -> TokenStream {
    match h.cfg.as_ref().and_then(|c| c.parse::<TokenStream>().ok()) {
        Some(p) => quote!(#[cfg(#p)]),
        None => TokenStream::new(),
    }
}

fn ty(h: &HandleSpec, ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    let name = ident(&h.name);
    quote!(#rt::#name)
}

fn module_name(m: &HandleModel<'_>) -> proc_macro2::Ident {
    // `_ops` keeps names such as `async` from being keywords.
    ident(&m.fuzz_module)
}

/// `AnyHandle`: one variant per handle type, and the conversions the pool needs.
fn any_handle(handles: &[&HandleSpec], ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    let cfgs: Vec<_> = handles.iter().map(|h| cfg_attr(h)).collect();
    let names: Vec<_> = handles.iter().map(|h| ident(&h.name)).collect();
    let strs: Vec<_> = handles.iter().map(|h| h.name.value.clone()).collect();
    let tys: Vec<_> = handles.iter().map(|h| ty(h, ctx)).collect();
    let streams = handles.iter().map(|h| h.parent == HandleParent::Stream);
    quote! {
        /// A handle of any type the spec describes.
        #[derive(Clone, Debug)]
        pub enum AnyHandle {
            #( #cfgs #names(#tys), )*
        }

        impl AnyHandle {
            /// The untyped handle.
            pub fn handle(&self) -> &#rt::Handle {
                match self {
                    #( #cfgs AnyHandle::#names(h) => h, )*
                }
            }

            /// Whether it is a stream (`parent = "stream"`).
            pub fn is_stream(&self) -> bool {
                match self {
                    #( #cfgs AnyHandle::#names(_) => #streams, )*
                }
            }

            /// The type's Rust name.
            pub fn type_name(&self) -> &'static str {
                match self {
                    #( #cfgs AnyHandle::#names(_) => #strs, )*
                }
            }

            /// The typed handle behind an untyped one (`Handle::downcast`).
            pub fn from_handle(h: &#rt::Handle) -> ::core::option::Option<AnyHandle> {
                #(
                    #cfgs
                    if let ::core::option::Option::Some(t) = h.downcast::<#tys>() {
                        return ::core::option::Option::Some(AnyHandle::#names(t));
                    }
                )*
                ::core::option::Option::None
            }
        }
    }
}

/// `rt::Member` for one handle type: pool access and a random constructor.
fn member(m: &HandleModel<'_>, ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    let h = m.spec;
    let cfg = cfg_attr(h);
    let t = ty(h, ctx);
    let name = ident(&h.name);
    let name_str = h.name.value.clone();
    let module = module_name(m);
    quote! {
        #cfg
        impl super::Member for #t {
            const NAME: &'static str = #name_str;

            fn from_any(a: &AnyHandle) -> ::core::option::Option<&Self> {
                #[allow(unreachable_patterns)]
                match a {
                    AnyHandle::#name(h) => ::core::option::Option::Some(h),
                    _ => ::core::option::Option::None,
                }
            }

            fn into_any(self) -> AnyHandle {
                AnyHandle::#name(self)
            }

            fn downcast(h: &#rt::Handle) -> ::core::option::Option<Self> {
                h.downcast::<Self>()
            }

            fn construct(cx: &super::Cx) -> ::core::option::Option<Self> {
                cx.construct(#module::CONSTRUCTORS)
            }
        }
    }
}

/// `rt::Stream` for one stream type: `write2` and `accept` with a peer of any stream
/// type from the pool (the other stream operations are `uv::Stream`'s).
fn stream_impl(h: &HandleSpec, streams: &[&HandleSpec], ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    let cfg = cfg_attr(h);
    let t = ty(h, ctx);
    let peer_cfgs: Vec<_> = streams.iter().map(|p| cfg_attr(p)).collect();
    let peers: Vec<_> = streams.iter().map(|p| ident(&p.name)).collect();
    quote! {
        #cfg
        impl super::Stream for #t {
            fn write2_any(
                &self,
                data: #rt::WriteData,
                send: &AnyHandle,
                cb: impl FnOnce(&Self, #rt::Result<()>) + 'static,
            ) -> ::core::option::Option<#rt::Result<()>> {
                #[allow(unreachable_patterns)]
                match send {
                    #( #peer_cfgs AnyHandle::#peers(s) => ::core::option::Option::Some(<#t as #rt::Stream>::write2(self, data, s, cb)), )*
                    _ => ::core::option::Option::None,
                }
            }
            fn accept_any(&self, client: &AnyHandle) -> ::core::option::Option<#rt::Result<()>> {
                #[allow(unreachable_patterns)]
                match client {
                    #( #peer_cfgs AnyHandle::#peers(c) => ::core::option::Option::Some(<#t as #rt::Stream>::accept_into(self, c)), )*
                    _ => ::core::option::Option::None,
                }
            }
        }
    }
}

/// The module of one handle type: a function per constructor, method and property
/// accessor, and its table of operations.
fn handle_module(m: &HandleModel<'_>, ctx: &Ctx) -> TokenStream {
    let h = m.spec;
    let cfg = cfg_attr(h);
    let module = module_name(m);
    let t = ty(h, ctx);
    let name_str = h.name.value.clone();
    let mut fns = Vec::new();
    let mut entries = Vec::new();
    let mut ctor_fns = Vec::new();
    let entry = |name: &str, kind: &str, run: TokenStream| {
        let kind = format_ident!("{kind}");
        quote!(rt::Op { handle: #name_str, name: #name, kind: rt::OpKind::#kind, run: #run })
    };
    for c in h.constructors.iter().filter(|c| c.manual.is_none()) {
        let (build, op) = constructor(h, c, ctx);
        fns.push(build);
        fns.push(op);
        let f = format_ident!("make_{}", c.name.value);
        ctor_fns.push(f);
        let op = ident(&c.name);
        entries.push(entry(&c.name, "Constructor", quote!(#op)));
    }
    for m in h
        .methods
        .iter()
        .filter(|m| m.manual.is_none() && m.c.is_some())
    {
        fns.push(method(h, m, ctx));
        let op = format_ident!("m_{}", m.name.value);
        entries.push(entry(&m.name, "Method", quote!(#op)));
    }
    for p in &h.properties {
        if p.get.is_some() {
            fns.push(getter(h, p, ctx));
            let op = format_ident!("get_{}", p.name.value);
            entries.push(entry(&p.name, "Property", quote!(#op)));
        }
        if p.set.is_some() {
            fns.push(setter(h, p, ctx));
            let op = format_ident!("set_{}", p.name.value);
            entries.push(entry(
                &format!("set_{}", p.name.value),
                "Property",
                quote!(#op),
            ));
        }
    }
    for b in BASE_OPS {
        let f = ident(b);
        entries.push(entry(b, "Base", quote!(rt::base_ops::#f::<#t>)));
    }
    if h.parent == HandleParent::Stream {
        for s in STREAM_OPS {
            let f = ident(s);
            entries.push(entry(s, "Stream", quote!(rt::stream_ops::#f::<#t>)));
        }
    }
    quote! {
        #cfg
        #[allow(clippy::unnecessary_cast, unused_variables)]
        pub mod #module {
            use super::super as rt;

            /// The constructors, for making a target on demand.
            pub const CONSTRUCTORS: &[fn(&rt::Cx) -> ::core::option::Option<#t>] = &[#( #ctor_fns ),*];

            #( #fns )*

            /// Every operation of the type.
            pub const OPS: &[rt::Op] = &[#( #entries ),*];
        }
    }
}

/// Arguments made from their conversions, in spec order: the `let` statements, the
/// expressions to pass (callbacks last, as the generated API takes them), the values
/// to show in the log, and the descriptor's identity for checking a `Rejected`.
struct Made {
    lets: Vec<TokenStream>,
    pass: Vec<TokenStream>,
    callbacks: Vec<TokenStream>,
    shown: Vec<TokenStream>,
    fd: bool,
}

fn make_args(h: &HandleSpec, args: &[ArgSpec], site: &str, ctx: &Ctx) -> Made {
    make_args_for(&h.name, &h.callbacks, args, site, ctx)
}

/// `make_args` for the arguments of `owner` (a handle or request type), whose
/// callback slots are `callbacks`.
fn make_args_for(
    owner: &str,
    callbacks: &[crate::spec::CallbackSpec],
    args: &[ArgSpec],
    site: &str,
    ctx: &Ctx,
) -> Made {
    let rt = &ctx.rt;
    let mut m = Made {
        lets: Vec::new(),
        pass: Vec::new(),
        callbacks: Vec::new(),
        shown: Vec::new(),
        fd: false,
    };
    for a in args {
        let name = format_ident!("a_{}", a.name.value);
        let value = match &a.conv.value {
            Conv::OwnedFd(k) | Conv::BorrowedFd(k) => {
                let kind = format_ident!("{}", k.variant());
                let make = if matches!(a.conv.value, Conv::OwnedFd(_)) {
                    quote!(cx.owned_fd(rt::FdKind::#kind))
                } else {
                    quote!(cx.fd_source(rt::FdKind::#kind))
                };
                m.lets.push(quote!(let (#name, ident) = #make?;));
                m.pass.push(quote!(#name));
                m.fd = true;
                continue;
            }
            Conv::Callback(slot) => {
                let arity = callbacks
                    .iter()
                    .find(|c| c.name.as_str() == slot)
                    .map_or(0, |c| c.rust_arity());
                let rest = (0..arity).map(|_| quote!(_));
                let site = format!("{owner}.{slot}");
                m.lets.push(quote!(let #name = cx.capture();));
                m.callbacks
                    .push(quote!(move |h, #(#rest),*| rt::on_callback(#site, h, &#name)));
                continue;
            }
            Conv::RequestCallback => {
                m.lets.push(quote!(let #name = cx.capture();));
                m.callbacks
                    .push(quote!(move |h, r| rt::on_done(#site, h, r, &#name)));
                continue;
            }
            // No Rust parameter.
            Conv::Unused => continue,
            other => match other.fuzz_value(rt) {
                Some(v) => v,
                // Callback arguments only; the validator refuses them elsewhere.
                None => quote!(::core::compile_error!(
                    "the fuzzer cannot make this argument"
                )),
            },
        };
        m.lets.push(quote!(let #name = #value;));
        m.shown.push(quote!(&#name));
        m.pass.push(a.conv.value.fuzz_pass(&quote!(#name)));
    }
    if !m.fd {
        m.lets
            .push(quote!(let ident = ::core::option::Option::None;));
    } else {
        m.lets
            .push(quote!(let ident = ::core::option::Option::Some(&ident);));
    }
    m
}

/// Shows the non-callback, non-descriptor arguments in the operation log.
fn note(shown: &[TokenStream]) -> TokenStream {
    if shown.is_empty() {
        return TokenStream::new();
    }
    quote!(cx.note(::core::format_args!("{:?}", (#( #shown, )*)));)
}

/// A constructor: a builder that returns the new handle (also used to make targets
/// on demand), and the operation that puts it in the pool.
fn constructor(
    h: &HandleSpec,
    c: &crate::spec::ConstructorSpec,
    ctx: &Ctx,
) -> (TokenStream, TokenStream) {
    let t = ty(h, ctx);
    let site = format!("{}::{}", h.name.value, c.name.value);
    let made = make_args(h, &c.args, &site, ctx);
    let (lets, pass, cbs, shown) = (&made.lets, &made.pass, &made.callbacks, note(&made.shown));
    let fname = ident(&c.name);
    let build = format_ident!("make_{}", c.name.value);
    let builder = quote! {
        fn #build(cx: &rt::Cx) -> ::core::option::Option<#t> {
            let loop_ = cx.loop_ref()?;
            #( #lets )*
            #shown
            let r = #t::#fname(&loop_, #( #pass, )* #( #cbs ),*);
            rt::settle(cx, r, ident)
        }
    };
    let op = quote! {
        fn #fname(cx: &rt::Cx) -> bool {
            rt::adopt(cx, #build(cx));
            true
        }
    };
    (builder, op)
}

/// A method: its target from the pool (or made on demand), its arguments, the call,
/// and the checks: the spec's `on_closed` contract and the result.
fn method(h: &HandleSpec, m: &crate::spec::MethodSpec, ctx: &Ctx) -> TokenStream {
    let t = ty(h, ctx);
    let site = format!("{}.{}", h.name.value, m.name.value);
    let made = make_args(h, &m.args, &site, ctx);
    let (lets, pass, cbs, shown) = (&made.lets, &made.pass, &made.callbacks, note(&made.shown));
    let fname = ident(&m.name);
    let op = format_ident!("m_{}", m.name.value);
    let inner = format_ident!("call_{}", m.name.value);
    // A descriptor's kind is checked before the handle's state, so a closed handle
    // may answer for the descriptor first.
    let contract = if made.fd {
        TokenStream::new()
    } else {
        let noop = m.on_closed == OnClosed::Noop;
        quote!(rt::closed_contract(cx, closing, #noop, &r);)
    };
    quote! {
        fn #inner(cx: &rt::Cx, h: &#t) -> ::core::option::Option<()> {
            #( #lets )*
            #shown
            let closing = h.is_closing();
            let r = h.#fname(#( #pass, )* #( #cbs ),*);
            #contract
            rt::settle(cx, r, ident).map(drop)
        }

        fn #op(cx: &rt::Cx) -> bool {
            match cx.target::<#t>() {
                ::core::option::Option::Some(h) => {
                    #inner(cx, &h);
                    true
                }
                ::core::option::Option::None => false,
            }
        }
    }
}

fn getter(h: &HandleSpec, p: &crate::spec::PropertySpec, ctx: &Ctx) -> TokenStream {
    let t = ty(h, ctx);
    let fname = ident(&p.name);
    let op = format_ident!("get_{}", p.name.value);
    quote! {
        fn #op(cx: &rt::Cx) -> bool {
            let ::core::option::Option::Some(h) = cx.target::<#t>() else { return false };
            let closing = h.is_closing();
            let r = h.#fname();
            rt::closed_contract(cx, closing, false, &r);
            rt::settle(cx, r, ::core::option::Option::None);
            true
        }
    }
}

fn setter(h: &HandleSpec, p: &crate::spec::PropertySpec, ctx: &Ctx) -> TokenStream {
    let t = ty(h, ctx);
    let fname = format_ident!("set_{}", p.name.value);
    let arg = ArgSpec {
        name: p.name.clone(),
        conv: p.conv.clone(),
        allow: Vec::new(),
        min_1s_if: None,
        max: None,
    };
    let made = make_args(h, std::slice::from_ref(&arg), &p.name, ctx);
    let (lets, pass, shown) = (&made.lets, &made.pass, note(&made.shown));
    quote! {
        fn #fname(cx: &rt::Cx) -> bool {
            let ::core::option::Option::Some(h) = cx.target::<#t>() else { return false };
            #( #lets )*
            #shown
            let closing = h.is_closing();
            let r = h.#fname(#( #pass ),*);
            rt::closed_contract(cx, closing, false, &r);
            rt::settle(cx, r, ident);
            true
        }
    }
}

/// `table()`: every handle type with its operations (a function, so that a handle
/// type with a `cfg` can be left out).
fn table(handles: &[&HandleModel<'_>]) -> TokenStream {
    let pushes = handles.iter().map(|m| {
        let h = m.spec;
        let cfg = cfg_attr(h);
        let module = module_name(m);
        let name = h.name.value.clone();
        let stream = h.parent == HandleParent::Stream;
        quote! {
            #cfg
            v.push(super::HandleOps { name: #name, stream: #stream, ops: #module::OPS });
        }
    });
    quote! {
        /// Every handle type of the spec with its operations.
        // One push per type, so that a type with a `cfg` can be left out.
        #[allow(clippy::vec_init_then_push)]
        pub fn table() -> ::std::vec::Vec<super::HandleOps> {
            let mut v = ::std::vec::Vec::new();
            #( #pushes )*
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{render, Ctx};
    use super::{fuzz_table, BASE_OPS, STREAM_OPS};
    use crate::names::to_snake;
    use crate::spec::HandleParent;

    /// The names of the operations in one handle type's module of the table.
    fn ops_of<'a>(text: &'a str, handle: &str) -> Vec<&'a str> {
        let start = text
            .find(&format!("pub mod {}_ops {{", to_snake(handle)))
            .unwrap_or_else(|| panic!("no module for {handle}"));
        let rest = &text[start + 1..];
        let module = &rest[..rest.find("pub mod ").unwrap_or(rest.len())];
        module
            .match_indices("name: \"")
            .map(|(i, m)| {
                let s = &module[i + m.len()..];
                &s[..s.find('"').unwrap_or(0)]
            })
            .collect()
    }

    #[test]
    fn every_handle_type_of_the_spec_gets_its_operations() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec");
        let (spec, _) = crate::load_spec(&dir, Path::new("spec")).expect("the spec loads");
        let model = crate::resolve(&spec).expect("the spec resolves");
        let text = render(fuzz_table(&model, &Ctx::default()), "spec").expect("it parses");
        for h in spec.handles.iter().filter(|h| h.manual.is_none()) {
            let ops = ops_of(&text, &h.name);
            let mut want: Vec<String> = h
                .constructors
                .iter()
                .filter(|c| c.manual.is_none())
                .map(|c| c.name.value.clone())
                .collect();
            for m in &h.methods {
                let has = ops.contains(&m.name.as_str());
                assert_eq!(has, m.manual.is_none(), "{}.{}", h.name.value, m.name.value);
            }
            for p in &h.properties {
                want.extend(p.get.as_ref().map(|_| p.name.value.clone()));
                want.extend(p.set.as_ref().map(|_| format!("set_{}", p.name.value)));
            }
            want.extend(BASE_OPS.iter().map(|s| s.to_string()));
            if h.parent == HandleParent::Stream {
                want.extend(STREAM_OPS.iter().map(|s| s.to_string()));
            }
            for w in &want {
                assert!(
                    ops.contains(&w.as_str()),
                    "{}.{w} has no operation",
                    h.name.value
                );
            }
        }
    }

    #[test]
    fn every_generated_request_function_gets_both_forms() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec");
        let (spec, _) = crate::load_spec(&dir, Path::new("spec")).expect("the spec loads");
        let model = crate::resolve(&spec).expect("the spec resolves");
        let text = render(fuzz_table(&model, &Ctx::default()), "spec").expect("it parses");
        let mut n = 0;
        for r in model.requests.iter().filter(|r| r.generated) {
            for f in &r.functions {
                for want in [
                    format!("fn r_{}(", f.spec.name.value),
                    format!("fn s_{}(", f.spec.name.value),
                ] {
                    assert!(text.contains(&want), "{}: no `{want}`", r.spec.name.value);
                }
                n += 1;
            }
        }
        assert!(n >= 13, "only {n} request functions");
    }
}
