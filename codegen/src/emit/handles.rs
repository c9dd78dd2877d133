//! Handle types: a counted wrapper type, its callback slots and trampolines, its
//! constructors, methods and properties. The lifecycle itself is the runtime core's
//! (`uv::runtime::Typed`, `dispatch`).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{doc_attr, ident, safety, Ctx};
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::HandleModel;
use crate::spec::{
    ArgSpec, CallbackSpec, Conv, HandleParent, HandleSpec, KeepAlive, MethodSpec, OnClosed,
    Returns, Sp,
};

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
    conv.rust_ty(rt)
}

/// The Rust types a callback's closure takes after the handle. Arguments named in
/// `ok` become the status's `Ok` value.
fn callback_tys(cb: &CallbackSpec, rt: &TokenStream) -> Vec<TokenStream> {
    let ok_tys: Vec<_> = cb
        .args
        .iter()
        .filter(|a| cb.is_ok_arg(&a.name))
        .filter_map(|a| rust_ty(&a.conv, rt))
        .collect();
    cb.args
        .iter()
        .filter(|a| !cb.is_ok_arg(&a.name))
        .filter_map(|a| match a.conv.value {
            Conv::Status if !cb.ok.is_empty() => Some(quote!(#rt::Result<(#(#ok_tys),*)>)),
            _ => rust_ty(&a.conv, rt),
        })
        .collect()
}

fn to_c(arg: &ArgSpec, e: &TokenStream, op: &str, rt: &TokenStream) -> TokenStream {
    let allow: Vec<String> = arg.allow.iter().map(|a| a.value.clone()).collect();
    arg.conv.value.to_c(
        e,
        op,
        rt,
        &allow,
        arg.min_1s_if
            .as_ref()
            .map(|f| (f.as_str(), arg.max.as_ref().map_or(u32::MAX, |m| m.value))),
    )
}

struct Args {
    params: Vec<TokenStream>,
    /// Bindings that run the caller's code (a path's `AsRef`): made first, before
    /// the handle's open and state checks, so that code cannot close the handle
    /// or change its state between the checks and the C call.
    early: Vec<TokenStream>,
    prep: Vec<TokenStream>,
    c_args: Vec<TokenStream>,
    /// The parameter holding the request's completion callback, if any.
    request_callback: Option<proc_macro2::Ident>,
    /// Callback parameters to store in their slots around the C call (methods only):
    /// stored before it, and the previous callback put back if it fails.
    slot_sets: Vec<(proc_macro2::Ident, proc_macro2::Ident)>,
    /// The descriptor whose ownership the call settles (`owned_fd`, `borrowed_fd`):
    /// its parameter name and conversion. The C call gets `__fd`.
    fd: Option<(proc_macro2::Ident, Conv)>,
    /// `params` with the descriptor as a raw fd, for the `unsafe fn …_raw` variant.
    raw_params: Vec<TokenStream>,
}

/// Rust parameters (callbacks last), conversions, and the C argument list.
fn args(
    m: &HandleModel<'_>,
    list: &[ArgSpec],
    op: &str,
    slots_expr: &TokenStream,
    ctx: &Ctx,
    errs: &mut Vec<Diagnostic>,
) -> Args {
    let rt = &ctx.rt;
    let h = m.spec;
    let this = ident(&h.name);
    let mut a = Args {
        params: Vec::new(),
        early: Vec::new(),
        prep: Vec::new(),
        c_args: Vec::new(),
        request_callback: None,
        slot_sets: Vec::new(),
        fd: None,
        raw_params: Vec::new(),
    };
    let mut cb_params = Vec::new();
    for arg in list {
        let name = ident(&arg.name);
        match &arg.conv.value {
            Conv::Callback(slot) => {
                let Some(cb) = m.slot(slot) else {
                    continue;
                };
                let tys = callback_tys(cb.spec, rt);
                let slot_id = ident(slot);
                let tramp = ident(&cb.trampoline);
                cb_params.push(quote!(#name: impl FnMut(&#this, #(#tys),*) + 'static));
                if slots_expr.is_empty() {
                    a.slot_sets.push((slot_id, name.clone()));
                } else {
                    let sf = safety(
                        ctx,
                        "`|p| p` is the unsizing coercion to the slot's callback type",
                    );
                    a.prep.push(quote!({
                        let __slot = &#slots_expr.#slot_id;
                        #sf
                        __slot.set(unsafe { __slot.callback(#name, |p| p) });
                    }));
                }
                a.c_args.push(quote!(::core::option::Option::Some(#tramp)));
            }
            Conv::RequestCallback => {
                cb_params.push(quote!(#name: impl FnOnce(&#this, #rt::Result<()>) + 'static));
                a.request_callback = Some(name.clone());
                a.c_args.push(quote!(::core::option::Option::Some(done)));
            }
            fd @ (Conv::OwnedFd(_) | Conv::BorrowedFd(_)) => {
                a.params.push(match fd {
                    Conv::OwnedFd(_) => {
                        quote!(#name: impl ::core::convert::Into<::std::os::fd::OwnedFd>)
                    }
                    _ => quote!(#name: __S),
                });
                a.raw_params.push(quote!(#name: ::std::os::fd::RawFd));
                a.fd = Some((name.clone(), fd.clone()));
                a.c_args.push(quote!(__fd));
            }
            other => {
                let Some(ty) = rust_ty(other, rt) else {
                    errs.push(unsupported(arg, "as an argument"));
                    continue;
                };
                a.params.push(quote!(#name: #ty));
                a.raw_params.push(quote!(#name: #ty));
                if matches!(
                    other,
                    Conv::CStrPath | Conv::SocketPath | Conv::CStrPathLen | Conv::SocketName
                ) {
                    a.early.push(quote!(
                        let #name = ::core::convert::AsRef::<::std::path::Path>::as_ref(&#name);
                    ));
                }
                let conv = to_c(arg, &quote!(#name), op, rt);
                // Identity conversions need no binding.
                if name != conv.to_string() {
                    a.prep.insert(0, quote!(let #name = #conv;));
                }
                a.c_args.push(other.c_arg(&quote!(#name)));
            }
        }
    }
    a.raw_params.extend(cb_params.iter().cloned());
    a.params.extend(cb_params);
    a
}

/// Wraps a function that takes a descriptor (`owned_fd`, `borrowed_fd`): the safe
/// function checks the descriptor's kind, runs `body` (which passes `__fd` to C and
/// returns `uv::Result<T>`) and settles ownership (handed back on error); the
/// `unsafe fn …_raw` variant takes a raw descriptor. `handle_of` turns the body's
/// value into the handle (`self` for methods).
#[allow(clippy::too_many_arguments)]
fn with_fd(
    fd: &(proc_macro2::Ident, Conv),
    fname: &proc_macro2::Ident,
    self_param: &TokenStream,
    params: &[TokenStream],
    raw_params: &[TokenStream],
    ok_ty: &TokenStream,
    handle_of: &TokenStream,
    body: &TokenStream,
    doc: &TokenStream,
    op: &str,
    ctx: &Ctx,
) -> TokenStream {
    let rt = &ctx.rt;
    let (name, conv) = fd;
    let raw_name = format_ident!("{}_raw", fname);
    let (kind, owned) = match conv {
        Conv::OwnedFd(k) => (k, true),
        Conv::BorrowedFd(k) => (k, false),
        _ => unreachable!("with_fd is only called for descriptor conversions"),
    };
    let reads_handle = kind.reads_handle();
    let kind = format_ident!("{}", kind.variant());
    let kind = quote!(#rt::runtime::FdKind::#kind);
    // A kind that depends on the handle (an IPC pipe takes sockets only) is checked
    // with it; the loader allows such kinds on methods only.
    let (owned_check, kind_check, raw_check) = if reads_handle {
        (
            quote!(#rt::runtime::owned_fd_for(self, ::core::convert::Into::into(#name), #kind, #op)),
            quote!(#rt::runtime::fd_kind_for(self, __fd, #kind, #op)),
            quote!(#rt::runtime::fd_kind_for(self, #name, #kind, #op)),
        )
    } else {
        (
            quote!(#rt::runtime::owned_fd(::core::convert::Into::into(#name), #kind, #op)),
            quote!(#rt::runtime::fd_kind(__fd, #kind, #op)),
            quote!(#rt::runtime::fd_kind(#name, #kind, #op)),
        )
    };
    let safe = if owned {
        quote! {
            #doc
            ///
            /// The descriptor is checked for its kind before libuv sees it; on success
            /// the handle owns it (libuv closes it with the handle), on error it is
            /// handed back in the `Rejected`. The `…_raw` variant takes a raw one.
            pub fn #fname(#self_param #(#params),*) -> ::core::result::Result<#ok_ty, #rt::Rejected<::std::os::fd::OwnedFd>> {
                let #name = #owned_check?;
                let __fd = ::std::os::fd::AsRawFd::as_raw_fd(&#name);
                let __body = move || -> #rt::Result<#ok_ty> { #body };
                let __r = __body();
                #rt::runtime::settle_owned_fd(__r, #name, |__v| {
                    let __h: &#rt::Handle = #handle_of;
                    ::core::clone::Clone::clone(__h)
                })
            }
        }
    } else {
        quote! {
            #doc
            ///
            /// The handle keeps `fd` (any value that owns a descriptor: a `File`, an
            /// `Rc<TcpStream>`, an `OwnedFd`, …) until it is closed, so the descriptor
            /// stays open while libuv watches it; on error it is handed back in the
            /// `Rejected`. The `…_raw` variant takes a raw descriptor.
            pub fn #fname<__S: ::std::os::fd::AsFd + 'static>(#self_param #(#params),*) -> ::core::result::Result<#ok_ty, #rt::Rejected<__S>> {
                let __fd = ::std::os::fd::AsRawFd::as_raw_fd(&::std::os::fd::AsFd::as_fd(&#name));
                if let ::core::result::Result::Err(e) = #kind_check {
                    return ::core::result::Result::Err(#rt::Rejected::new(e, #name));
                }
                let __body = move || -> #rt::Result<#ok_ty> { #body };
                let __r = __body();
                #rt::runtime::settle_kept(__r, #name, __fd, #op, |__v| {
                    let __h: &#rt::Handle = #handle_of;
                    __h
                })
            }
        }
    };
    let contract = if owned {
        "`fd` must be an open descriptor that nothing else closes or uses: on success the handle takes it over and libuv closes it with the handle."
    } else {
        "`fd` must stay open, and refer to the same file, until the handle's close callback has run."
    };
    let raw_doc = doc_attr(&format!(
        "Like [`Self::{fname}`], with a raw descriptor.\n\n# Safety\n{contract}"
    ));
    // A descriptor libuv owns is also checked, once the handle has it, for an open
    // file it shares with the process's standard descriptors (`settle_owned_fd`,
    // `settle_raw_fd`); one libuv only watches is the program's to read and write.
    let raw_body = if owned {
        quote! {
            let __body = move || -> #rt::Result<#ok_ty> { #body };
            let __r = __body();
            #rt::runtime::settle_raw_fd(__r, |__v| {
                let __h: &#rt::Handle = #handle_of;
                ::core::clone::Clone::clone(__h)
            })
        }
    } else {
        body.clone()
    };
    quote! {
        #safe

        #raw_doc
        pub unsafe fn #raw_name(#self_param #(#raw_params),*) -> #rt::Result<#ok_ty> {
            #raw_check?;
            let __fd = #name;
            #raw_body
        }
    }
}

/// The function a `before`/`after` hook names: the runtime's for its own hooks
/// (`HookRule`), the type's associated function otherwise.
fn hook_path(name: &str, ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    let f = ident(name);
    if crate::spec::HookRule::find(name).is_some() {
        quote!(#rt::runtime::hooks::#f)
    } else {
        quote!(Self::#f)
    }
}

/// Whether a `before` hook is the caller's code: a hand-written function of the
/// type (not one of the runtime's hooks, which run no user code). Such a hook may
/// close the handle, drop its loop or change its state (start it connecting): the
/// method takes the handle's struct and runs its state checks again after it.
fn hook_runs_user_code(name: &str) -> bool {
    crate::spec::HookRule::find(name).is_none()
}

/// The state checks a method `requires`, run on the open handle before the C call.
fn requires_checks(m: &crate::spec::MethodSpec, op: &str, ctx: &Ctx) -> TokenStream {
    let rt = &ctx.rt;
    if m.requires.is_empty() {
        return TokenStream::new();
    }
    let checks = m.requires.iter().map(|r| {
        let f = ident(r);
        quote!(#rt::runtime::contracts::#f(raw.cast(), #op)?;)
    });
    let sf = safety(
        ctx,
        "the handle is open, and of the type each check takes (checked by the spec loader)",
    );
    quote! {
        #sf
        unsafe { #( #checks )* }
    }
}

/// The documentation of the states a method `requires`: what each refuses, as a
/// paragraph after the method's own text (empty without states).
fn requires_doc(m: &crate::spec::MethodSpec) -> String {
    let parts: Vec<String> = m
        .requires
        .iter()
        .filter_map(|r| crate::spec::StateRule::find(r.as_str()))
        .map(|rule| format!("`{}` unless {}", rule.code, rule.doc))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("\n\nChecked before the C call: {}.", parts.join("; "))
    }
}

/// What every part of one handle type's emission shares.
struct HandleEmitter<'a> {
    m: &'a HandleModel<'a>,
    h: &'a HandleSpec,
    ctx: &'a Ctx,
    /// The type.
    name: proc_macro2::Ident,
    /// Its callback-slot struct.
    slots: proc_macro2::Ident,
    /// Its libuv struct.
    raw_ty: proc_macro2::Ident,
    /// Its `#[cfg]`, or nothing.
    cfg: TokenStream,
    errs: Vec<Diagnostic>,
}

/// Emits one handle type. Errors name the spec item the emitter cannot handle.
pub fn handle(m: &HandleModel<'_>, ctx: &Ctx) -> Result<TokenStream, Diagnostics> {
    let h = m.spec;
    let mut errs = Vec::new();
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
    let mut e = HandleEmitter {
        m,
        h,
        ctx,
        name: ident(&h.name),
        slots: ident(&m.slots_struct),
        raw_ty: ident(&h.c_type),
        cfg,
        errs,
    };
    let (mut slot_fields, mut slot_names, trampolines) = e.callbacks();
    let ctors: Vec<_> = h
        .constructors
        .iter()
        .filter(|c| c.manual.is_none())
        .map(|c| e.constructor(c))
        .collect();
    let mut methods: Vec<_> = h.methods.iter().filter_map(|m| e.method(m)).collect();
    methods.extend(e.properties());
    let stream_impl = e.stream_impl(&mut slot_fields, &mut slot_names);
    let as_raw_fd = e.as_raw_fd();
    if !e.errs.is_empty() {
        return Err(Diagnostics(e.errs));
    }
    Ok(e.assemble(
        &slot_fields,
        &slot_names,
        &ctors,
        &methods,
        &[stream_impl, as_raw_fd],
        &trampolines,
    ))
}

impl HandleEmitter<'_> {
    /// The slot struct's fields and names, and the C trampolines.
    fn callbacks(&mut self) -> (Vec<TokenStream>, Vec<proc_macro2::Ident>, Vec<TokenStream>) {
        let (h, ctx) = (self.h, self.ctx);
        let rt = &ctx.rt;
        let (name, raw_ty, cfg) = (&self.name, &self.raw_ty, &self.cfg);
        let name_str = &h.name.value;
        let mut slot_fields = Vec::new();
        let mut slot_names = Vec::new();
        let mut trampolines = Vec::new();
        for cb in &h.callbacks {
            let slot = ident(&cb.name);
            if let Some(sig) = &cb.signature {
                // A hand-written trampoline uses this slot.
                match sig.parse::<TokenStream>() {
                    Ok(ty) => {
                        let cdoc = doc_attr(&cb.doc);
                        match cb.parts.as_ref().map(|p| (p, p.parse::<TokenStream>())) {
                            None => {
                                slot_fields.push(quote!(#cdoc #slot: #rt::runtime::Slot<dyn #ty>))
                            }
                            Some((_, Ok(parts))) => slot_fields.push(quote!(
                                #cdoc #slot: #rt::runtime::CallSlot<#name, dyn #ty, #parts>
                            )),
                            Some((p, Err(_))) => {
                                self.errs.push(p.loc.error("`parts` is not a Rust type"))
                            }
                        }
                        slot_names.push(slot);
                    }
                    Err(_) => self
                        .errs
                        .push(sig.loc.error("`signature` is not a Rust type")),
                }
                continue;
            }
            let tys = callback_tys(cb, rt);
            for a in &cb.args {
                if rust_ty(&a.conv, rt).is_none() {
                    self.errs.push(unsupported(a, "as a callback argument"));
                }
            }
            let cdoc = doc_attr(&cb.doc);
            // A callback that takes only its handle is called with one indirect call.
            let handle_only = cb.args.is_empty();
            if handle_only {
                slot_fields.push(quote!(#cdoc #slot: #rt::runtime::HandleSlot<#name>));
            } else {
                slot_fields
                    .push(quote!(#cdoc #slot: #rt::runtime::Slot<dyn FnMut(&#name, #(#tys),*)>));
            }
            slot_names.push(slot.clone());
            let tramp = ident(
                &self
                    .m
                    .slot(&cb.name)
                    .expect("every callback is a slot")
                    .trampoline,
            );
            let pnames: Vec<_> = cb.args.iter().map(|a| ident(&a.name)).collect();
            let ptys: Vec<_> = cb.args.iter().map(|a| a.conv.callback_c_ty(rt)).collect();
            let op = cb.c_type.value.clone();
            let ok_convs: Vec<_> = cb
                .args
                .iter()
                .filter(|a| cb.is_ok_arg(&a.name))
                .map(|a| {
                    let n = ident(&a.name);
                    a.conv.from_c(&quote!(#n), &op, rt)
                })
                .collect();
            // The `ok` arguments are read only on success.
            let (pnames, convs): (Vec<_>, Vec<_>) = cb
                .args
                .iter()
                .zip(&pnames)
                .filter(|(a, _)| !cb.is_ok_arg(&a.name))
                .map(|(a, n)| {
                    let c = a.conv.from_c(&quote!(#n), &op, rt);
                    match a.conv.value {
                        Conv::Status if !cb.ok.is_empty() => {
                            (n.clone(), quote!(#c.map(|()| (#(#ok_convs),*))))
                        }
                        _ => (n.clone(), c),
                    }
                })
                .unzip();
            let cnames: Vec<_> = cb.args.iter().map(|a| ident(&a.name)).collect();
            let sf = safety(
                ctx,
                &format!("libuv passes a handle that {name_str}'s constructors initialised, and arguments valid for the callback's duration"),
            );
            let call = if handle_only {
                quote!(#rt::runtime::dispatch_handle::<#name>(raw, |s| &s.#slot))
            } else {
                quote! {
                    #rt::runtime::dispatch::<#name, _>(raw, |s| &s.#slot, |cb, h| {
                        #( let #pnames = #convs; )*
                        cb(h, #(#pnames),*)
                    })
                }
            };
            // A marked callback runs with its handle marked as being delivered (the
            // others pay nothing for it).
            let call = if cb.marked() {
                quote!(#rt::runtime::marking_delivery::<#name>(raw, || #call))
            } else {
                call
            };
            // A runtime hook after the callback (its panic caught by the dispatch),
            // before libuv goes on with the handle: libuv's struct is still valid.
            let call = match &cb.after {
                Some(hook) => {
                    let hook = ident(hook.as_str());
                    quote! { #call; #rt::runtime::hooks::#hook(raw) }
                }
                None => call,
            };
            // `unnecessary_cast`: the C arguments are cast to their Rust types
            // (`from_c`), the identity for some (an enum's `c_int` parameter to `i32`,
            // which clippy flags for a parameter).
            trampolines.push(quote! {
                #cfg
                #[allow(unsafe_code, clippy::unnecessary_cast)]
                unsafe extern "C" fn #tramp(raw: *mut #rt::sys::#raw_ty, #(#cnames: #ptys),*) {
                    #sf
                    unsafe { #call }
                }
            });
        }
        (slot_fields, slot_names, trampolines)
    }

    /// One constructor.
    fn constructor(&mut self, c: &crate::spec::ConstructorSpec) -> TokenStream {
        let ctx = self.ctx;
        let rt = &ctx.rt;
        let (name, slots) = (&self.name, &self.slots);
        let fname = ident(&c.name);
        let cfn = ident(&c.c);
        let op = c.c.value.clone();
        let a = args(self.m, &c.args, &op, &quote!(slots), ctx, &mut self.errs);
        let (params, prep, c_args) = (&a.params, &a.prep, &a.c_args);
        let cdoc = doc_attr(&format!("{}\n\nC: `{}`.", c.doc.trim_end(), c.c.value));
        let sf = safety(
            ctx,
            "`l` is an open loop and `h` a fresh handle struct that will not move",
        );
        let sf_new = safety(
            ctx,
            "`__init` calls the init function of this handle type with the loop and struct it is given, and returns its result",
        );
        // The constructor's body around `make`, the call that makes the handle,
        // whose result `wrap` (a closure) turns into the function's.
        let body_around = |make: TokenStream, wrap: TokenStream| {
            quote! {
                let slots = #slots::default();
                #( #prep )*
                let __init = |l, h| {
                    #sf
                    unsafe { #rt::sys::#cfn(l, h, #(#c_args),*) }
                };
                #sf_new
                unsafe { #make }
                    .map(#wrap)
            }
        };
        let body_with = |make: TokenStream| body_around(make, quote!(|inner| #name { inner }));
        let body = body_with(quote!(#rt::runtime::Typed::new(loop_, slots, #op, __init)));
        // The library's own handles (`internal = true`): the same constructor, its
        // handle marked internal.
        // A constructor variant (`internal`, `placed`) of one that takes a
        // descriptor is an error.
        let mut no_fd = |flag: &Sp<bool>, key: &str, article: &str| {
            if !ctx.in_runtime {
                self.errs.push(
                    flag.loc
                        .error(format!(
                            "{article} `{key}` constructor is for the `uv` crate's own spec: it calls a crate-private part of the runtime"
                        ))
                        .hint(format!("remove `{key} = true`")),
                );
            }
            if a.fd.is_some() {
                self.errs.push(
                    flag.loc
                        .error(format!(
                            "{article} `{key}` constructor cannot take a descriptor"
                        ))
                        .hint(format!("remove `{key} = true`")),
                );
            }
        };
        let internal = if let Some(flag) = &c.internal {
            no_fd(flag, "internal", "an");
            let iname = format_ident!("{}_internal", c.name.value);
            let ibody = body_with(quote!(#rt::runtime::Typed::new_inner(
                loop_, slots, #op, true, __init
            )));
            let idoc = doc_attr(&format!(
                "[`{name}::{fname}`] for a handle of the library's own: hidden from `handles()`, \
                 out of reach of `close_all_handles`, not counted by `Loop::close`."
            ));
            quote! {
                #idoc
                #[inline]
                pub(crate) fn #iname(loop_: &#rt::LoopHandle, #(#params),*) -> #rt::Result<#name> {
                    #ibody
                }
            }
        } else {
            quote!()
        };
        // `placed = true`: the same constructor, also handing back where the
        // handle's allocation was placed.
        let placed = if let Some(flag) = &c.placed {
            no_fd(flag, "placed", "a");
            let pname = format_ident!("{}_placed", c.name.value);
            let pbody = body_around(
                quote!(#rt::runtime::Typed::new_placed(loop_, slots, #op, __init)),
                quote!(|(inner, place)| (#name { inner }, place)),
            );
            let pdoc = doc_attr(&format!(
                "[`{name}::{fname}`], also handing back where the handle's allocation was \
                 placed (for hand-written code that builds on that allocation)."
            ));
            quote! {
                #pdoc
                #[inline(always)]
                pub(crate) fn #pname(
                    loop_: &#rt::LoopHandle,
                    #(#params),*
                ) -> #rt::Result<(#name, #rt::runtime::Place)> {
                    #pbody
                }
            }
        } else {
            quote!()
        };
        if let Some(fd) = &a.fd {
            return with_fd(
                fd,
                &fname,
                &quote!(loop_: &#rt::LoopHandle,),
                params,
                &a.raw_params,
                &quote!(#name),
                &quote!(__v),
                &body,
                &cdoc,
                &op,
                ctx,
            );
        }
        quote! {
            #cdoc
            #[inline]
            pub fn #fname(loop_: &#rt::LoopHandle, #(#params),*) -> #rt::Result<#name> {
                #body
            }
            #internal
            #placed
        }
    }

    /// One method (`None` for manual ones, and on an error, which is recorded).
    fn method(&mut self, m: &MethodSpec) -> Option<TokenStream> {
        if m.manual.is_some() {
            return None;
        }
        let c = m.c.as_ref()?;
        let op = c.value.clone();
        let a = args(
            self.m,
            &m.args,
            &op,
            &TokenStream::new(),
            self.ctx,
            &mut self.errs,
        );
        if m.request.is_some() && a.request_callback.is_some() {
            return Some(self.request_method(m, c, &a));
        }
        if matches!(m.returns, Returns::SocketAddr | Returns::Path) {
            return Some(self.out_param_method(m, c, &a));
        }
        self.value_method(m, c, a)
    }

    /// A method that starts a request: the runtime core's `submit` holds the
    /// request, the handle and the callback.
    fn request_method(&self, m: &MethodSpec, c: &Sp<String>, a: &Args) -> TokenStream {
        let ctx = self.ctx;
        let rt = &ctx.rt;
        let name = &self.name;
        let (fname, cfn, op) = (ident(&m.name), ident(c), c.value.clone());
        let (params, early, prep, c_args) = (&a.params, &a.early, &a.prep, &a.c_args);
        let cb = a.request_callback.as_ref().expect("checked by the caller");
        let req_ty = ident(m.request.as_ref().expect("checked by the caller"));
        let requires = requires_checks(m, &op, ctx);
        let mdoc = doc_attr(&format!(
            "{}\n\nC: `{}`. The callback runs once, with the result; the handle stays alive until then. `ClosedHandle` on a closed handle.{}",
            m.doc.trim_end(),
            c.value,
            requires_doc(m)
        ));
        let sf = safety(
            ctx,
            "the handle is open; the request stays put until `done` runs",
        );
        // A C function without a status result starts the request unconditionally.
        // `let ()`: rustc checks that it returns nothing (a spec of another crate has
        // no header check), so a status the spec said was not there is never dropped
        // (the request would then count as started, and its callback never run).
        let call = if m.returns == Returns::Void {
            quote!(#sf let () = unsafe { #rt::sys::#cfn(req, raw, #(#c_args),*) }; 0)
        } else {
            quote!(#sf unsafe { #rt::sys::#cfn(req, raw, #(#c_args),*) })
        };
        // A call that creates the stream's socket marks a socket it made (see
        // `makes_socket` in the spec).
        let call = if m.makes_socket.is_some() {
            let sf = safety(
                ctx,
                "the stream is open; the spec says the call creates only non-blocking sockets of its own",
            );
            quote! {
                let __call = || { #call };
                #sf unsafe { #rt::runtime::making_socket(raw.cast(), __call) }
            }
        } else {
            call
        };
        let sf_submit = safety(
            ctx,
            &format!(
                "`__start` calls `{0}` once, on this handle's struct, with `done` as its callback, and returns its result; `{0}` starts a `{1}` (the type of its first parameter: the call type-checks)",
                c.value,
                req_ty
            ),
        );
        // The start closure, with `unsafe` blocks of its own, is bound before the
        // `unsafe` block of `submit`, which then holds that call only (`done`'s type
        // is inferred from the C call; the data's is named, a reference for any
        // lifetime).
        quote! {
            #mdoc
            #[inline]
            pub fn #fname(&self, #(#params),*) -> #rt::Result<()> {
                #( #early )*
                let raw = self.inner.raw(#op)?;
                #requires
                #( #prep )*
                let __start = |req: *mut #rt::sys::#req_ty, _: &mut (), done| {
                    #call
                };
                #sf_submit
                unsafe {
                    #rt::runtime::submit::<#rt::sys::#req_ty, #name, _, ()>(self, &#op, (), #cb, __start)
                }
            }
        }
    }

    /// A method whose value is read through two out-parameters: the runtime's
    /// reader gets a closure that calls the C function with them.
    fn out_param_method(&self, m: &MethodSpec, c: &Sp<String>, a: &Args) -> TokenStream {
        let ctx = self.ctx;
        let rt = &ctx.rt;
        let (fname, cfn, op) = (ident(&m.name), ident(c), c.value.clone());
        let (params, early, prep, c_args) = (&a.params, &a.early, &a.prep, &a.c_args);
        let (ty, reader) = if m.returns == Returns::SocketAddr {
            (quote!(::std::net::SocketAddr), quote!(read_sockaddr))
        } else {
            (quote!(::std::path::PathBuf), quote!(read_path))
        };
        let mdoc = doc_attr(&format!(
            "{}\n\nC: `{}`. `ClosedHandle` on a closed handle.",
            m.doc.trim_end(),
            c.value
        ));
        let sf = safety(ctx, "the handle is open; libuv writes at most `len` bytes");
        // The spec's `before` hook, as for the other methods (after the handle's
        // open test, before the C call).
        // A hook of the caller's may close the handle: its struct is taken again.
        let before = m.before.as_ref().map(|f| {
            let again = hook_runs_user_code(f).then(|| {
                quote! {
                    let _ = raw;
                    let raw = self.inner.raw(#op)?;
                }
            });
            let f = hook_path(f, ctx);
            quote! {
                #f(self)?;
                #again
            }
        });
        quote! {
            #mdoc
            pub fn #fname(&self, #(#params),*) -> #rt::Result<#ty> {
                #( #early )*
                let raw = self.inner.raw(#op)?;
                #before
                #( #prep )*
                #rt::runtime::#reader(#op, |out, len| {
                    #sf
                    unsafe { #rt::sys::#cfn(raw, #(#c_args,)* out, len) }
                })
            }
        }
    }

    /// The Rust result type of a method and the expression that makes it from `rc`.
    fn returns(&mut self, m: &MethodSpec, op: &str) -> Option<(TokenStream, TokenStream)> {
        let rt = &self.ctx.rt;
        Some(match &m.returns {
            Returns::Status => (
                quote!(#rt::Result<()>),
                quote!(#rt::runtime::check(rc, #op)),
            ),
            Returns::Void => (quote!(#rt::Result<()>), quote!(Ok(()))),
            Returns::Count => (
                quote!(#rt::Result<usize>),
                quote!(#rt::runtime::check(rc, #op).map(|()| rc as usize)),
            ),
            Returns::Value(conv) => match rust_ty(conv, rt) {
                Some(t) => {
                    let v = conv.from_c(&quote!(rc), op, rt);
                    (quote!(#rt::Result<#t>), quote!(Ok(#v)))
                }
                None => {
                    self.errs.push(
                        m.name
                            .loc
                            .error("the emitter does not handle this return conversion yet"),
                    );
                    return None;
                }
            },
            Returns::SocketAddr | Returns::Path => unreachable!("out_param_method emits these"),
        })
    }

    /// A method that calls its C function once and converts the result: slots set
    /// around the call, the `after` hook, descriptor ownership.
    fn value_method(&mut self, m: &MethodSpec, c: &Sp<String>, a: Args) -> Option<TokenStream> {
        let ctx = self.ctx;
        let rt = &ctx.rt;
        let (fname, cfn, op) = (ident(&m.name), ident(c), c.value.clone());
        let (ret_ty, ret) = self.returns(m, &op)?;
        let (params, prep, c_args) = (&a.params, &a.prep, &a.c_args);
        let requires = requires_checks(m, &op, ctx);
        let get_raw = match m.on_closed {
            OnClosed::Error => quote!(let raw = self.inner.raw(#op)?;),
            OnClosed::Noop if matches!(m.returns, Returns::Status | Returns::Void) => {
                quote!(let Some(raw) = self.inner.raw_open() else { return Ok(()) };)
            }
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
            "{}\n\nC: `{}`.{noop_doc}{}",
            m.doc.trim_end(),
            c.value,
            requires_doc(m)
        ));
        // A C function that may install libuv's handler for a signal runs under the
        // runtime's lock on signal actions (`hooks::signal_call`); one that starts a
        // watch is given its signal too (`hooks::signal_start_call`).
        let locked = crate::spec::SIGNAL_ACTION_FNS.contains(&c.value.as_str());
        let starts = crate::spec::SIGNAL_START_FNS.contains(&c.value.as_str());
        // One that hands work to the thread pool is refused once the process is
        // exiting (`hooks::pool_call`).
        let pooled = crate::spec::POOL_SUBMIT_FNS.contains(&c.value.as_str());
        let sf = safety(
            ctx,
            if starts {
                "the handle is open, so `raw` is initialised and stays put; the closure is the libuv call only (`signal_start_call`'s contract)"
            } else if locked {
                "the handle is open, so `raw` is initialised and stays put; the closure is the libuv call only (`signal_call`'s contract)"
            } else {
                "the handle is open, so `raw` is initialised and stays put"
            },
        );
        let c_call = if let (true, Some(signum)) = (starts, c_args.last()) {
            quote!(#rt::runtime::hooks::signal_start_call(#signum, || #rt::sys::#cfn(raw, #(#c_args),*)))
        } else if locked {
            quote!(#rt::runtime::hooks::signal_call(|| #rt::sys::#cfn(raw, #(#c_args),*)))
        } else if pooled {
            quote!(#rt::runtime::hooks::pool_call(|| #rt::sys::#cfn(raw, #(#c_args),*)))
        } else {
            quote!(#rt::sys::#cfn(raw, #(#c_args),*))
        };
        // `let ()`: rustc checks that a function the spec says returns nothing does
        // (its status would be dropped otherwise).
        let call = if m.returns == Returns::Void {
            quote!({
                #sf
                let () = unsafe { #c_call };
                #ret
            })
        } else {
            quote!({
                #sf
                let rc = unsafe { #c_call };
                #ret
            })
        };
        let body = a.slot_sets.iter().rev().fold(call, |inner, (slot, param)| {
            let sf = safety(
                ctx,
                "`|p| p` is the unsizing coercion to the slot's callback type",
            );
            quote!({
                let __slot = &self.inner.slots().#slot;
                #sf
                __slot.set_then(unsafe { __slot.callback(#param, |p| p) }, || #inner)
            })
        });
        let body = match &m.after {
            Some(f) => {
                let f = hook_path(f, ctx);
                quote!({
                    let __r = #body;
                    let __after = #f(self);
                    __r.and_then(|v| __after.map(|()| v))
                })
            }
            None => body,
        };
        // A hook of the caller's may close the handle or change its state: the
        // struct is taken and the states checked again after it.
        let before = m.before.as_ref().map(|f| {
            // (The first struct served the checks before the hook.)
            let again = hook_runs_user_code(f).then(|| {
                quote! {
                    let _ = raw;
                    #get_raw
                    #requires
                }
            });
            let f = hook_path(f, ctx);
            quote! {
                #f(self)?;
                #again
            }
        });
        let early = &a.early;
        let body = quote! {
            #( #early )*
            #get_raw
            #requires
            #before
            #( #prep )*
            #body
        };
        let Some(fd) = &a.fd else {
            // Inlined across crates: the wrapper is thin, and inlining lets the
            // caller's constants (a zero `Duration`) fold through its conversions.
            return Some(quote! {
                #mdoc
                #[inline]
                pub fn #fname(&self, #(#params),*) -> #ret_ty {
                    #body
                }
            });
        };
        if !matches!(m.returns, Returns::Status | Returns::Void) {
            self.errs.push(
                m.name.loc.error(
                    "a method with an `owned_fd` or `borrowed_fd` argument returns a status",
                ),
            );
            return None;
        }
        Some(with_fd(
            fd,
            &fname,
            &quote!(&self,),
            params,
            &a.raw_params,
            &quote!(()),
            &quote!({
                let () = *__v;
                self
            }),
            &body,
            &mdoc,
            &op,
            ctx,
        ))
    }

    /// The property getters and setters.
    fn properties(&mut self) -> Vec<TokenStream> {
        let (h, ctx) = (self.h, self.ctx);
        let rt = &ctx.rt;
        let mut methods = Vec::new();
        for p in &h.properties {
            let Some(ty) = rust_ty(&p.conv, rt) else {
                self.errs.push(
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
                let v = p.conv.from_c(&quote!(v), &op, rt);
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
                let arg = ArgSpec {
                    name: p.name.clone(),
                    conv: p.conv.clone(),
                    allow: Vec::new(),
                    min_1s_if: None,
                    max: None,
                };
                let v = to_c(&arg, &quote!(value), &op, rt);
                let d = doc_attr(&format!("Sets: {pdoc}\n\nC: `{op}`."));
                let sf = safety(ctx, "the handle is open, so `raw` is initialised");
                methods.push(quote! {
                    #d
                    pub fn #fname(&self, value: #ty) -> #rt::Result<()> {
                        let raw = self.inner.raw(#op)?;
                        let value = #v;
                        #sf
                        // `void` or an `int` status, whichever the C setter returns.
                    #[allow(clippy::let_unit_value)]
                    let rc = unsafe { #rt::sys::#cfn(raw, value) };
                        #rt::runtime::SetterResult::into_result(rc, #op)
                    }
                });
            }
        }
        methods
    }

    /// For a stream: its slots' stream part and its `StreamKind` implementation.
    fn stream_impl(
        &self,
        slot_fields: &mut Vec<TokenStream>,
        slot_names: &mut Vec<proc_macro2::Ident>,
    ) -> TokenStream {
        let (h, ctx) = (self.h, self.ctx);
        let rt = &ctx.rt;
        let (name, slots, cfg) = (&self.name, &self.slots, &self.cfg);
        let mut stream_impl = TokenStream::new();
        if h.parent == HandleParent::Stream {
            slot_fields.push(quote!(stream: #rt::runtime::StreamSlots<#name>));
            slot_names.push(ident("stream"));
            let sf = safety(
                ctx,
                &format!("{} starts with the uv_stream_t fields", h.c_type.value),
            );
            stream_impl = quote! {
                #sf
                #cfg
                #[allow(unsafe_code)]
                unsafe impl #rt::runtime::StreamKind for #name {
                    fn stream_slots(slots: &#slots) -> &#rt::runtime::StreamSlots<#name> {
                        &slots.stream
                    }
                }
            };
        }
        stream_impl
    }

    /// `AsRawFd`, for handle types with a descriptor (streams, and those that take
    /// one).
    fn as_raw_fd(&self) -> TokenStream {
        let h = self.h;
        let (name, cfg) = (&self.name, &self.cfg);
        // Handle types with a descriptor (streams, and those that take one) expose it.
        let has_fd = h.parent == HandleParent::Stream
            || h.constructors
                .iter()
                .flat_map(|c| &c.args)
                .chain(h.methods.iter().flat_map(|m| &m.args))
                .any(|a| a.conv.value.is_fd_ownership());
        if has_fd {
            quote! {
                #cfg
                #[cfg(unix)]
                impl ::std::os::fd::AsRawFd for #name {
                    /// The descriptor (`uv_fileno`); -1 while there is none or once closed.
                    /// A raw number only: closing the handle closes it.
                    fn as_raw_fd(&self) -> ::std::os::fd::RawFd {
                        self.fileno().unwrap_or(-1)
                    }
                }
            }
        } else {
            TokenStream::new()
        }
    }

    /// The type, its slots, its trait implementations and its inherent functions.
    fn assemble(
        &self,
        slot_fields: &[TokenStream],
        slot_names: &[proc_macro2::Ident],
        ctors: &[TokenStream],
        methods: &[TokenStream],
        extra: &[TokenStream],
        trampolines: &[TokenStream],
    ) -> TokenStream {
        let (h, ctx) = (self.h, self.ctx);
        let rt = &ctx.rt;
        let (name, slots, raw_ty, cfg) = (&self.name, &self.slots, &self.raw_ty, &self.cfg);
        let name_str = &h.name.value;
        let doc = doc_attr(&format!(
            "{}\n\nC type: `{}`.",
            h.doc.trim_end(),
            h.c_type.value
        ));
        let keep = match h.keep_alive {
            KeepAlive::Active => quote!(#rt::runtime::KeepAlive::Active),
            KeepAlive::Never => quote!(#rt::runtime::KeepAlive::Never),
            KeepAlive::Custom => quote!(#rt::runtime::KeepAlive::Custom(#name::keeps_alive)),
        };
        let sf_kind = safety(
            ctx,
            &format!("{} is the libuv struct of this handle type", h.c_type.value),
        );
        // `Slots::clear` is an `unsafe fn` (the runtime calls it from the close
        // callback); the stream slots' `clear` is one too, called in a block.
        let sf_clear = safety(
            ctx,
            "per this function's contract: libuv calls none of the handle's callbacks any more and none of them runs",
        );
        let slot_clears = slot_names.iter().map(|n| {
            if n == "stream" {
                quote! {
                    #sf_clear
                    unsafe { self.#n.clear() };
                }
            } else {
                quote!(self.#n.clear();)
            }
        });
        let slots_empty = if slot_names.is_empty() {
            quote!(true)
        } else {
            quote!(#( !self.#slot_names.is_set() )&&*)
        };
        quote! {
            #cfg
            #doc
            #[repr(transparent)]
            pub struct #name {
                inner: #rt::runtime::Typed<#name>,
            }

            // The slots hold closures, which have no `Debug`; their types are the
            // callbacks' signatures as the spec makes them (`type_complexity`).
            #cfg
            #[doc(hidden)]
            #[derive(Default)]
            #[allow(missing_debug_implementations, clippy::type_complexity)]
            pub struct #slots {
                #( #slot_fields, )*
            }

            #cfg
            #[allow(unsafe_code)]
            impl #rt::runtime::Slots for #slots {
                #[inline]
                unsafe fn clear(&self) {
                    #( #slot_clears )*
                }
                #[inline]
                fn is_empty(&self) -> bool {
                    #slots_empty
                }
            }

            #sf_kind
            #cfg
            #[allow(unsafe_code)]
            unsafe impl #rt::runtime::HandleKind for #name {
                type Raw = #rt::sys::#raw_ty;
                type Slots = #slots;
                const KEEP_ALIVE: #rt::runtime::KeepAlive = #keep;
                const NAME: &'static str = #name_str;
                fn from_typed(inner: #rt::runtime::Typed<#name>) -> Self {
                    #name { inner }
                }
                fn typed(&self) -> &#rt::runtime::Typed<#name> {
                    &self.inner
                }
            }

            #cfg
            impl ::core::clone::Clone for #name {
                #[inline]
                fn clone(&self) -> Self {
                    #name { inner: self.inner.clone() }
                }
            }

            #cfg
            impl ::core::ops::Deref for #name {
                type Target = #rt::Handle;
                #[inline]
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
            impl ::core::cmp::PartialEq for #name {
                /// Identity: the same handle.
                fn eq(&self, other: &#name) -> bool {
                    self.inner.handle() == other.inner.handle()
                }
            }

            #cfg
            impl ::core::cmp::Eq for #name {}

            #cfg
            impl ::core::hash::Hash for #name {
                fn hash<__H: ::core::hash::Hasher>(&self, state: &mut __H) {
                    ::core::hash::Hash::hash(self.inner.handle(), state)
                }
            }

            #cfg
            impl ::core::convert::From<#name> for #rt::Handle {
                fn from(h: #name) -> #rt::Handle {
                    h.inner.handle().clone()
                }
            }

            #cfg
            // `unsafe_code`: for crates that deny it, the generated code's `unsafe`
            // blocks are the runtime's (each with its SAFETY comment). (The C
            // results cast to their Rust types here, `from_c`, have the types the
            // conversion table accepts, bindgen's aliases `c_int` and `c_uint`, whose
            // casts clippy's `unnecessary_cast` leaves alone; the trampolines'
            // parameters are another matter.)
            #[allow(unsafe_code)]
            impl #name {
                #( #ctors )*
                #( #methods )*
            }

            #( #extra )*

            #( #trampolines )*
        }
    }
}
