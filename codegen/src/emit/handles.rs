//! Handle types: a counted wrapper type, its callback slots and trampolines, its
//! constructors, methods and properties. The lifecycle itself is the runtime core's
//! (`uv::__private::Typed`, `dispatch`).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{doc_attr, ident, safety, to_snake, Ctx};
use crate::diag::{Diagnostic, Diagnostics};
use crate::spec::{ArgSpec, Conv, HandleSpec, KeepAlive, OnClosed, Returns, Spec};

fn unsupported(a: &ArgSpec, what: &str) -> Diagnostic {
    a.conv
        .loc
        .error(format!(
            "the emitter does not handle conversion {:?} {what} yet",
            a.conv.value
        ))
        .hint("mark the method manual = \"reason\" and write it by hand")
}

fn rust_ty(conv: &Conv, rt: &TokenStream) -> Option<TokenStream> {
    Some(match conv {
        Conv::DurationMs => quote!(::std::time::Duration),
        Conv::Bool => quote!(bool),
        Conv::I32 | Conv::Signum => quote!(i32),
        Conv::U32 => quote!(u32),
        Conv::U64 => quote!(u64),
        Conv::Usize => quote!(usize),
        Conv::Fd => quote!(#rt::RawFd),
        Conv::Socket => quote!(#rt::RawSocket),
        Conv::Enum(t) | Conv::Flags(t) => {
            let t = ident(t);
            quote!(#rt::#t)
        }
        Conv::Status => quote!(#rt::Result<()>),
        Conv::Callback(_) | Conv::SocketAddr | Conv::CStrPath => return None,
    })
}

/// The C type of a callback parameter with this conversion.
fn c_ty(conv: &Conv) -> TokenStream {
    match conv {
        Conv::U32 => quote!(::core::ffi::c_uint),
        Conv::U64 | Conv::DurationMs => quote!(u64),
        Conv::Usize => quote!(usize),
        _ => quote!(::core::ffi::c_int),
    }
}

fn to_c(conv: &Conv, e: &TokenStream, op: &str, rt: &TokenStream) -> TokenStream {
    match conv {
        Conv::DurationMs => quote!(#rt::__private::duration_to_ms(#e)),
        Conv::Bool => quote!(::core::primitive::i32::from(#e)),
        Conv::Fd | Conv::Socket => quote!(#rt::__private::fd(#e, #op)?),
        Conv::Enum(_) => quote!(#e.raw() as _),
        Conv::Flags(_) => quote!(#e.bits() as _),
        _ => quote!(#e),
    }
}

fn from_c(conv: &Conv, e: &TokenStream, op: &str, rt: &TokenStream) -> TokenStream {
    match conv {
        Conv::DurationMs => quote!(#rt::__private::ms_to_duration(#e)),
        Conv::Bool => quote!((#e != 0)),
        Conv::Fd => quote!((#e as #rt::RawFd)),
        Conv::Enum(t) => {
            let t = ident(t);
            quote!(#rt::#t::from_raw(#e as i32))
        }
        Conv::Flags(t) => {
            let t = ident(t);
            quote!(#rt::#t::from_bits_retain(#e as u32))
        }
        Conv::Status => quote!(#rt::__private::status(#e, #op)),
        _ => quote!(#e),
    }
}

struct Args {
    params: Vec<TokenStream>,
    prep: Vec<TokenStream>,
    c_args: Vec<TokenStream>,
}

/// Rust parameters (callbacks last), conversions, and the C argument list.
fn args(
    h: &HandleSpec,
    list: &[ArgSpec],
    op: &str,
    slots_expr: &TokenStream,
    ctx: &Ctx,
    errs: &mut Vec<Diagnostic>,
) -> Args {
    let rt = &ctx.rt;
    let this = ident(&h.name);
    let mut a = Args {
        params: Vec::new(),
        prep: Vec::new(),
        c_args: Vec::new(),
    };
    let mut cb_params = Vec::new();
    for arg in list {
        let name = ident(&arg.name);
        match &arg.conv.value {
            Conv::Callback(slot) => {
                let Some(cb) = h.callbacks.iter().find(|c| c.name.as_str() == slot) else {
                    continue;
                };
                let tys: Vec<_> = cb
                    .args
                    .iter()
                    .filter_map(|x| rust_ty(&x.conv, rt))
                    .collect();
                let slot_id = ident(slot);
                let tramp = format_ident!("__uv_{}_{}", to_snake(&h.name), slot);
                cb_params.push(quote!(#name: impl FnMut(&#this, #(#tys),*) + 'static));
                a.prep
                    .push(quote!(#slots_expr.#slot_id.set(::std::boxed::Box::new(#name));));
                a.c_args.push(quote!(::core::option::Option::Some(#tramp)));
            }
            other => {
                let Some(ty) = rust_ty(other, rt) else {
                    errs.push(unsupported(arg, "as an argument"));
                    continue;
                };
                a.params.push(quote!(#name: #ty));
                let conv = to_c(other, &quote!(#name), op, rt);
                a.prep.insert(0, quote!(let #name = #conv;));
                a.c_args.push(quote!(#name));
            }
        }
    }
    a.params.extend(cb_params);
    a
}

/// Emits one handle type. Errors name the spec item the emitter cannot handle.
pub fn handle(h: &HandleSpec, _spec: &Spec, ctx: &Ctx) -> Result<TokenStream, Diagnostics> {
    let rt = &ctx.rt;
    let mut errs = Vec::new();
    let name = ident(&h.name);
    let name_str = h.name.value.clone();
    let slots = format_ident!("{}Slots", h.name.value);
    let raw_ty = ident(&h.c_type);
    let doc = doc_attr(&format!(
        "{}\n\nC type: `{}`.",
        h.doc.trim_end(),
        h.c_type.value
    ));
    let keep = match h.keep_alive {
        KeepAlive::Active => quote!(#rt::__private::KeepAlive::Active),
        KeepAlive::Never => quote!(#rt::__private::KeepAlive::Never),
    };
    let cfg = match &h.cfg {
        Some(c) => match c.parse::<TokenStream>() {
            Ok(p) => quote!(#[cfg(#p)]),
            Err(_) => {
                errs.push(c.loc.error("invalid cfg predicate"));
                TokenStream::new()
            }
        },
        None => TokenStream::new(),
    };

    // Slots and trampolines.
    let mut slot_fields = Vec::new();
    let mut slot_names = Vec::new();
    let mut trampolines = Vec::new();
    for cb in &h.callbacks {
        let slot = ident(&cb.name);
        let tys: Vec<_> = cb
            .args
            .iter()
            .filter_map(|a| rust_ty(&a.conv, rt))
            .collect();
        for a in &cb.args {
            if rust_ty(&a.conv, rt).is_none() {
                errs.push(unsupported(a, "as a callback argument"));
            }
        }
        let cdoc = doc_attr(&cb.doc);
        slot_fields.push(quote!(#cdoc #slot: #rt::__private::Slot<dyn FnMut(&#name, #(#tys),*)>));
        slot_names.push(slot.clone());
        let tramp = format_ident!("__uv_{}_{}", to_snake(&h.name), cb.name.value);
        let pnames: Vec<_> = cb.args.iter().map(|a| ident(&a.name)).collect();
        let ptys: Vec<_> = cb.args.iter().map(|a| c_ty(&a.conv)).collect();
        let op = cb.c_type.value.clone();
        let convs: Vec<_> = cb
            .args
            .iter()
            .map(|a| {
                let n = ident(&a.name);
                from_c(&a.conv, &quote!(#n), &op, rt)
            })
            .collect();
        let sf = safety(
            ctx,
            &format!("libuv passes a handle that {name_str}'s constructors initialised"),
        );
        trampolines.push(quote! {
            #cfg
            #[allow(clippy::unnecessary_cast)]
            unsafe extern "C" fn #tramp(raw: *mut #rt::sys::#raw_ty, #(#pnames: #ptys),*) {
                #sf
                unsafe {
                    #rt::__private::dispatch::<#name, _>(raw, |s| &s.#slot, |cb, h| {
                        #( let #pnames = #convs; )*
                        cb(h, #(#pnames),*)
                    })
                }
            }
        });
    }

    // Constructors.
    let mut ctors = Vec::new();
    for c in &h.constructors {
        let fname = ident(&c.name);
        let cfn = ident(&c.c);
        let op = c.c.value.clone();
        let a = args(h, &c.args, &op, &quote!(slots), ctx, &mut errs);
        let (params, prep, c_args) = (a.params, a.prep, a.c_args);
        let cdoc = doc_attr(&format!("{}\n\nC: `{}`.", c.doc.trim_end(), c.c.value));
        let sf = safety(
            ctx,
            "`l` is an open loop and `h` a fresh handle struct that will not move",
        );
        ctors.push(quote! {
            #cdoc
            pub fn #fname(loop_: &#rt::LoopHandle, #(#params),*) -> #rt::Result<#name> {
                let slots = #slots::default();
                #( #prep )*
                #rt::__private::Typed::new(loop_, slots, #op, |l, h| {
                    #sf
                    unsafe { #rt::sys::#cfn(l, h, #(#c_args),*) }
                })
                .map(|inner| #name { inner })
            }
        });
    }

    // Methods.
    let mut methods = Vec::new();
    for m in &h.methods {
        if m.manual.is_some() {
            continue;
        }
        let Some(c) = &m.c else { continue };
        let fname = ident(&m.name);
        let cfn = ident(c);
        let op = c.value.clone();
        let a = args(h, &m.args, &op, &quote!(self.inner.slots()), ctx, &mut errs);
        let (params, prep, c_args) = (a.params, a.prep, a.c_args);
        let (ret_ty, ret) = match &m.returns {
            Returns::Status => (
                quote!(#rt::Result<()>),
                quote!(#rt::__private::check(rc, #op)),
            ),
            Returns::Void => (
                quote!(#rt::Result<()>),
                quote!({
                    let () = rc;
                    Ok(())
                }),
            ),
            Returns::Count => (
                quote!(#rt::Result<usize>),
                quote!(#rt::__private::check(rc, #op).map(|()| rc as usize)),
            ),
            Returns::Value(conv) => match rust_ty(conv, rt) {
                Some(t) => {
                    let v = from_c(conv, &quote!(rc), &op, rt);
                    (quote!(#rt::Result<#t>), quote!(Ok(#v)))
                }
                None => {
                    errs.push(
                        m.name
                            .loc
                            .error("the emitter does not handle this return conversion yet"),
                    );
                    continue;
                }
            },
        };
        let get_raw = match m.on_closed {
            OnClosed::Error => quote!(let raw = self.inner.raw(#op)?;),
            OnClosed::Noop => {
                quote!(let Some(raw) = self.inner.raw_open() else { return Ok(Default::default()) };)
            }
        };
        let noop_doc = if m.on_closed == OnClosed::Noop {
            " A no-op on a closed handle."
        } else {
            " `ClosedHandle` on a closed handle."
        };
        let mdoc = doc_attr(&format!(
            "{}\n\nC: `{}`.{noop_doc}",
            m.doc.trim_end(),
            c.value
        ));
        let sf = safety(
            ctx,
            "the handle is open, so `raw` is initialised and stays put",
        );
        methods.push(quote! {
            #mdoc
            pub fn #fname(&self, #(#params),*) -> #ret_ty {
                #get_raw
                #( #prep )*
                #sf
                let rc = unsafe { #rt::sys::#cfn(raw, #(#c_args),*) };
                #ret
            }
        });
    }
    for p in &h.properties {
        let Some(ty) = rust_ty(&p.conv, rt) else {
            errs.push(
                p.conv
                    .loc
                    .error("the emitter does not handle this property conversion yet"),
            );
            continue;
        };
        let pdoc = p.doc.trim_end().to_string();
        if let Some(g) = &p.get {
            let fname = ident(&p.name);
            let cfn = ident(g);
            let op = g.value.clone();
            let v = from_c(&p.conv, &quote!(v), &op, rt);
            let d = doc_attr(&format!("{pdoc}\n\nC: `{op}`."));
            let sf = safety(ctx, "the handle is open, so `raw` is initialised");
            methods.push(quote! {
                #d
                pub fn #fname(&self) -> #rt::Result<#ty> {
                    let raw = self.inner.raw(#op)?;
                    #sf
                    let v = unsafe { #rt::sys::#cfn(raw) };
                    Ok(#v)
                }
            });
        }
        if let Some(s) = &p.set {
            let fname = format_ident!("set_{}", p.name.value);
            let cfn = ident(s);
            let op = s.value.clone();
            let v = to_c(&p.conv, &quote!(value), &op, rt);
            let d = doc_attr(&format!("Sets: {pdoc}\n\nC: `{op}`."));
            let sf = safety(ctx, "the handle is open, so `raw` is initialised");
            methods.push(quote! {
                #d
                pub fn #fname(&self, value: #ty) -> #rt::Result<()> {
                    let raw = self.inner.raw(#op)?;
                    let value = #v;
                    #sf
                    let rc = unsafe { #rt::sys::#cfn(raw, value) };
                    #rt::__private::SetterResult::into_result(rc, #op)
                }
            });
        }
    }

    if !errs.is_empty() {
        return Err(Diagnostics(errs));
    }
    let sf_kind = safety(
        ctx,
        &format!("{} is the libuv struct of this handle type", h.c_type.value),
    );
    Ok(quote! {
        #cfg
        #doc
        #[repr(transparent)]
        pub struct #name {
            inner: #rt::__private::Typed<#name>,
        }

        #cfg
        #[doc(hidden)]
        #[derive(Default)]
        pub struct #slots {
            #( #slot_fields, )*
        }

        #cfg
        impl #rt::__private::Slots for #slots {
            fn clear(&self) {
                #( self.#slot_names.clear(); )*
            }
        }

        #sf_kind
        #cfg
        unsafe impl #rt::__private::HandleKind for #name {
            type Raw = #rt::sys::#raw_ty;
            type Slots = #slots;
            const KEEP_ALIVE: #rt::__private::KeepAlive = #keep;
            const NAME: &'static str = #name_str;
            fn from_typed(inner: #rt::__private::Typed<#name>) -> Self {
                #name { inner }
            }
            fn typed(&self) -> &#rt::__private::Typed<#name> {
                &self.inner
            }
        }

        #cfg
        impl ::core::clone::Clone for #name {
            fn clone(&self) -> Self {
                #name { inner: self.inner.clone() }
            }
        }

        #cfg
        impl ::core::ops::Deref for #name {
            type Target = #rt::Handle;
            fn deref(&self) -> &#rt::Handle {
                self.inner.handle()
            }
        }

        #cfg
        impl ::core::fmt::Debug for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&self.inner, f)
            }
        }

        #cfg
        impl ::core::convert::From<#name> for #rt::Handle {
            fn from(h: #name) -> #rt::Handle {
                h.inner.handle().clone()
            }
        }

        #cfg
        #[allow(clippy::unnecessary_cast, clippy::needless_question_mark)]
        impl #name {
            #( #ctors )*
            #( #methods )*
        }

        #( #trampolines )*
    })
}
