//! Request types whose functions take the loop (`spec/requests/*.toml` that are not
//! `manual`): a type that names the request, and for each function an asynchronous
//! form (callback on the loop, a `uv::Request` to cancel it) and a synchronous one
//! (`…_sync`). Both go through the runtime core's generic loop request
//! (`uv::runtime::loop_request`).

use proc_macro2::TokenStream;
use quote::quote;

use super::{doc_attr, ident, safety, Ctx};
use crate::conv::Conv;
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{RequestFnModel, RequestModel};
use crate::spec::{MethodSpec, RequestSpec};

/// One function's Rust parameters, conversions and C arguments.
struct Args {
    params: Vec<TokenStream>,
    prep: Vec<TokenStream>,
    /// The conversions of the synchronous form (paths built in place, borrowed).
    sync_prep: Vec<TokenStream>,
    /// The converted values, kept by the request until it completes.
    names: Vec<proc_macro2::Ident>,
    /// Each kept value's conversion.
    convs: Vec<Conv>,
    /// The C arguments made from references to the kept values (in the start
    /// closure).
    c_args_ref: Vec<TokenStream>,
    /// Each kept value's type, as far as the closures that get it need it named
    /// (`_` where rustc infers it), in a request's data and in the synchronous
    /// form's (a path borrowed from the caller's stack there).
    kept_tys: Vec<TokenStream>,
    sync_kept_tys: Vec<TokenStream>,
}

fn args(m: &MethodSpec, op: &str, ctx: &Ctx, errs: &mut Vec<Diagnostic>) -> Args {
    let rt = &ctx.rt;
    let mut a = Args {
        params: Vec::new(),
        prep: Vec::new(),
        sync_prep: Vec::new(),
        names: Vec::new(),
        convs: Vec::new(),
        c_args_ref: Vec::new(),
        kept_tys: Vec::new(),
        sync_kept_tys: Vec::new(),
    };
    for arg in &m.args {
        let name = ident(&arg.name);
        if arg.conv.value == Conv::Unused {
            a.c_args_ref.push(arg.conv.value.c_arg(&quote!(#name)));
            continue;
        }
        let Some(ty) = arg.conv.value.rust_ty(rt) else {
            errs.push(
                arg.conv
                    .loc
                    .error("a request function's arguments are values")
                    .hint(
                        "use a value conversion; the completion callback is added by the generator",
                    ),
            );
            continue;
        };
        let allow: Vec<String> = arg.allow.iter().map(|x| x.value.clone()).collect();
        // A path is copied into a `ReqPath` (inline for short paths, nothing else
        // written): a synchronous call builds it on the stack and borrows it, a
        // request builds it in its data (see `data_init`); here it is the `&Path`.
        let conv = if arg.conv.value == Conv::CStrPath {
            quote!(::core::convert::AsRef::<::std::path::Path>::as_ref(&#name))
        } else {
            // The other path conversions take the `&Path`.
            let e = if matches!(
                arg.conv.value,
                Conv::SocketPath | Conv::CStrPathLen | Conv::SocketName
            ) {
                quote!(::core::convert::AsRef::<::std::path::Path>::as_ref(&#name))
            } else {
                quote!(#name)
            };
            arg.conv.value.to_c(
                &e,
                op,
                rt,
                &allow,
                arg.min_1s_if
                    .as_ref()
                    .map(|f| (f.as_str(), arg.max.as_ref().map_or(u32::MAX, |m| m.value))),
            )
        };
        a.params.push(quote!(#name: #ty));
        a.sync_prep.push(if arg.conv.value == Conv::CStrPath {
            // Built where it stays for the call, and borrowed.
            let buf = quote::format_ident!("{}_buf", name);
            quote! {
                let mut #buf = ::core::mem::MaybeUninit::uninit();
                let #name = #rt::runtime::loop_request::ReqPath::init(&mut #buf, #name.as_ref(), #op)?;
            }
        } else if name != conv.to_string() {
            quote!(let #name = #conv;)
        } else {
            quote!()
        });
        // Identity conversions need no binding.
        if name != conv.to_string() {
            a.prep.push(quote!(let #name = #conv;));
        }
        let c_arg = arg.conv.value.c_arg(&quote!(#name));
        // A plain value is copied out of its reference; pointers are taken through it.
        a.c_args_ref.push(if name == c_arg.to_string() {
            quote!(*#name)
        } else {
            c_arg
        });
        let kept = arg.conv.value.kept_ty(rt);
        a.sync_kept_tys.push(if arg.conv.value == Conv::CStrPath {
            quote!(#rt::runtime::loop_request::ReqPathRef<'_>)
        } else {
            kept.clone()
        });
        a.kept_tys.push(kept);
        a.names.push(name);
        a.convs.push(arg.conv.value.clone());
    }
    a
}

/// The closure that builds a request's kept values in place (`submit`'s `data`):
/// the paths' C strings first, each written where it stays (a failure drops the
/// ones already written and gives the error), then the other values moved in.
/// Without paths the tuple is written whole, by a closure given to `submit` as it
/// is; with paths, the closure writes through a raw pointer in an `unsafe` block of
/// its own, so it is made before `submit`'s (through `loop_request::data_init`,
/// which gives it the signature a closure bound to a `let` cannot state): the
/// binding, and the expression `submit` gets.
fn data_init(
    a: &Args,
    ctx: &Ctx,
    op_lit: &str,
    data_ty: &TokenStream,
) -> (TokenStream, TokenStream) {
    let rt = &ctx.rt;
    let names = &a.names;
    if !a.convs.contains(&Conv::CStrPath) {
        return (
            TokenStream::new(),
            quote!(move |slot| ::core::result::Result::Ok(slot.write((#(#names,)*)))),
        );
    }
    let mut paths = Vec::new();
    let mut values = Vec::new();
    let mut written: Vec<syn::Index> = Vec::new();
    for (i, (name, conv)) in a.names.iter().zip(&a.convs).enumerate() {
        let ix = syn::Index::from(i);
        if *conv == Conv::CStrPath {
            paths.push(quote! {
                if let ::core::result::Result::Err(e) = #rt::runtime::loop_request::ReqPath::write(
                    &mut *::core::ptr::addr_of_mut!((*d).#ix)
                        .cast::<::core::mem::MaybeUninit<#rt::runtime::loop_request::ReqPath>>(),
                    #name,
                    #op_lit,
                ) {
                    #( ::core::ptr::drop_in_place(::core::ptr::addr_of_mut!((*d).#written)); )*
                    return ::core::result::Result::Err(e);
                }
            });
            written.push(ix);
        } else {
            values.push(quote!(::core::ptr::write(::core::ptr::addr_of_mut!((*d).#ix), #name);));
        }
    }
    let sf = safety(
        ctx,
        "`d` is the slot's tuple: each field is written once (the paths first; on an error the ones written are dropped and the slot is left as it was), so the slot is initialised when it is returned",
    );
    let binding = quote! {
        let __data = #rt::runtime::loop_request::data_init::<#data_ty, _>(move |slot| {
            let d = slot.as_mut_ptr();
            #sf
            unsafe {
                #( #paths )*
                #( #values )*
                ::core::result::Result::Ok(slot.assume_init_mut())
            }
        });
    };
    (binding, quote!(__data))
}

/// A pattern over the kept values that binds the one at `keep` (others `_`).
fn pick(names: &[proc_macro2::Ident], keep: usize) -> TokenStream {
    let parts = names
        .iter()
        .enumerate()
        .map(|(i, n)| if i == keep { quote!(#n) } else { quote!(_) });
    quote!((#(#parts,)*))
}

/// The asynchronous and synchronous functions of one C function.
fn function(
    r: &RequestSpec,
    f: &RequestFnModel<'_>,
    ctx: &Ctx,
    errs: &mut Vec<Diagnostic>,
) -> Option<TokenStream> {
    let rt = &ctx.rt;
    let m = f.spec;
    let c = m.c.as_ref()?;
    let result = f.result;
    let op = c.value.clone();
    let this = ident(&r.name);
    let cfn = ident(c);
    let (fname, fsync, ffut) = (ident(&m.name), ident(&f.sync_name), ident(&f.future_name));
    let a = args(m, &op, ctx, errs);
    let (params, prep, names) = (&a.params, &a.prep, &a.names);
    let sync_prep = &a.sync_prep;
    // The closures with `unsafe` blocks of their own are bound before the `unsafe`
    // block of the runtime call they are given to, which then holds that call only;
    // their parameters' types are named where rustc cannot infer them before that
    // call (a reference, for a closure generic over its lifetime; a kept value
    // whose methods the C arguments call).
    let raw = ident(&r.c_type);
    let kept_tys = &a.kept_tys;
    let data_ty = quote!((#(#kept_tys,)*));
    let sync_kept_tys = &a.sync_kept_tys;
    let sync_data_ty = quote!((#(#sync_kept_tys,)*));
    let (data_binding, data_init) = data_init(&a, ctx, &op, &data_ty);
    let c_args_ref = &a.c_args_ref;
    let ty = result.rust_ty(rt);
    let reader = result.reader_path(rt);
    // The reader, over the completed request and the kept values.
    let sf_read = safety(
        ctx,
        "the core calls the reader once, with the completed request of this function",
    );
    let read = |data_ty: &TokenStream| match result
        .from_arg
        .and_then(|want| a.convs.iter().position(|c| c.name() == want))
    {
        Some(i) => {
            let pat = pick(names, i);
            let arg = &names[i];
            quote! {
                let __read = |req: *mut #rt::sys::#raw, data: &mut #data_ty, op: &'static str| {
                    let #pat = data;
                    #sf_read
                    unsafe { #reader(req, #arg, op) }
                };
            }
        }
        None => quote! {
            let __read = |req: *mut #rt::sys::#raw, _: &mut #data_ty, op: &'static str| {
                #sf_read
                unsafe { #reader(req, op) }
            };
        },
    };
    let (read_async, read_sync) = (read(&data_ty), read(&sync_data_ty));
    // An error names the function's (first) path.
    let context = match a.convs.iter().position(|c| *c == Conv::CStrPath) {
        Some(i) => {
            let pat = pick(names, i);
            let arg = &names[i];
            quote!(|data, e| {
                let #pat = data;
                #rt::runtime::loop_request::path_context(#arg, e)
            })
        }
        None => quote!(#rt::runtime::loop_request::no_context),
    };
    let doc = m.doc.trim_end();
    let adoc = doc_attr(&format!(
        "{doc}\n\nC: `{op}`, on the thread pool: `callback` runs on the loop with the result. The returned [`Request`]({rt_s}::Request) cancels it (`ECANCELED`) before it starts. The request keeps the loop alive until the callback has run.",
        rt_s = rt.to_string().replace(' ', "")
    ));
    let sdoc = doc_attr(&format!(
        "{doc}\n\nC: `{op}`, synchronously: blocks the calling thread until done."
    ));
    let fdoc = doc_attr(&format!(
        "{doc}\n\nC: `{op}`, on the thread pool, as a future of the result (see [`{rt_s}::future::request`]). The request starts now, not at the first poll. Dropping the future before it completes cancels the request (`uv_cancel`) if no thread has taken it yet; otherwise the work completes and its result is dropped.",
        rt_s = rt.to_string().replace(' ', "")
    ));
    let sf_async = safety(
        ctx,
        "the loop is open; the request and the converted arguments stay put until `done` runs",
    );
    let sf_sync = safety(
        ctx,
        "the loop is open; with no callback libuv completes the request before returning, while the arguments live",
    );
    let sf_submit = safety(
        ctx,
        &format!(
            "`__start` starts the request once with `{op}` (a function of this request type: the call type-checks), with `done` as its callback, and returns its result; `__read` calls the reader the spec's result names for `{op}` (checked by the spec loader)"
        ),
    );
    let sf_run_sync = safety(
        ctx,
        &format!(
            "`__start` starts the request once with `{op}` (a function of this request type: the call type-checks), with no callback, and returns its result; `__read` calls the reader the spec's result names for `{op}` (checked by the spec loader)"
        ),
    );
    Some(quote! {
        #adoc
        pub fn #fname(
            loop_: &#rt::LoopHandle,
            #(#params,)*
            callback: impl ::core::ops::FnOnce(#rt::Result<#ty>) + 'static,
        ) -> #rt::Result<#rt::Request> {
            #( #prep )*
            #read_async
            #data_binding
            let __start = |
                l: *mut #rt::sys::uv_loop_t,
                req: *mut #rt::sys::#raw,
                data: &#data_ty,
                done: #rt::runtime::loop_request::Done<#rt::sys::#raw>,
            | {
                let (#(#names,)*) = data;
                #sf_async
                unsafe { #rt::sys::#cfn(l, req, #(#c_args_ref,)* done) }
            };
            #sf_submit
            unsafe {
                #rt::runtime::loop_request::submit::<#this, #ty, #data_ty, _, _>(
                    loop_,
                    #op,
                    __read,
                    #context,
                    #data_init,
                    callback,
                    __start,
                )
            }
        }

        #fdoc
        pub fn #ffut(
            loop_: &#rt::LoopHandle,
            #(#params),*
        ) -> #rt::future::RequestFuture<#ty> {
            #rt::future::request(|done| Self::#fname(loop_, #(#names,)* done))
        }

        #sdoc
        // Inlined into the caller: the result (a whole `Stat`) is then built where
        // the caller keeps it, not copied out of this function's frame.
        #[inline]
        pub fn #fsync(loop_: &#rt::LoopHandle, #(#params),*) -> #rt::Result<#ty> {
            #( #sync_prep )*
            #read_sync
            let __start = |
                l: *mut #rt::sys::uv_loop_t,
                req: *mut #rt::sys::#raw,
                data: &#sync_data_ty,
            | {
                let (#(#names,)*) = data;
                #sf_sync
                unsafe { #rt::sys::#cfn(l, req, #(#c_args_ref,)* ::core::option::Option::None) }
            };
            #sf_run_sync
            unsafe {
                #rt::runtime::loop_request::run_sync::<#this, #ty, _, _>(
                    loop_,
                    #op,
                    __read,
                    #context,
                    (#(#names,)*),
                    __start,
                )
            }
        }
    })
}

/// Emits one request type, or nothing for a `manual` one.
pub fn request(model: &RequestModel<'_>, ctx: &Ctx) -> Result<TokenStream, Diagnostics> {
    let r = model.spec;
    if !model.generated {
        return Ok(TokenStream::new());
    }
    let rt = &ctx.rt;
    let mut errs = Vec::new();
    let name = ident(&r.name);
    let name_str = &r.name.value;
    let raw = ident(&r.c_type);
    let Some(cleanup) = &r.cleanup else {
        return Err(Diagnostics(vec![r
            .loc
            .error("a request file that is not `manual` needs `cleanup`")
            .hint(
                "cleanup = \"uv_fs_req_cleanup\" (the C function that frees a completed request)",
            )]));
    };
    let cleanup = ident(cleanup);
    let fns: Vec<_> = model
        .functions
        .iter()
        .filter_map(|f| function(r, f, ctx, &mut errs))
        .collect();
    if !errs.is_empty() {
        return Err(Diagnostics(errs));
    }
    let doc = doc_attr(&format!(
        "{}\n\nC type: `{}`. Each function comes in three forms: `name(&loop, …, callback)` runs on the thread pool, `name_async(&loop, …)` is the same as a future, `name_sync(&loop, …)` blocks.",
        r.doc.trim_end(),
        r.c_type.value
    ));
    let sf = safety(
        ctx,
        &format!(
            "{} is the libuv struct of this request type; {} frees a completed one",
            r.c_type.value, cleanup
        ),
    );
    let sf_clean = safety(
        ctx,
        "the trait's contract: a completed request, cleaned up once",
    );
    Ok(quote! {
        #doc
        #[derive(Debug)]
        pub struct #name {
            _private: (),
        }

        #sf
        #[allow(unsafe_code)]
        unsafe impl #rt::runtime::loop_request::LoopRequestKind for #name {
            type Raw = #rt::sys::#raw;
            const NAME: &'static str = #name_str;
            // Inlined into the callers (other crates too): a direct call of the C
            // function.
            #[inline]
            unsafe fn cleanup(raw: *mut #rt::sys::#raw) {
                #sf_clean
                unsafe { #rt::sys::#cleanup(raw) }
            }
        }

        // (`unsafe_code`: for crates that deny it, the generated code's `unsafe`
        // blocks are the runtime's, each with its SAFETY comment.)
        #[allow(unsafe_code)]
        impl #name {
            #( #fns )*
        }
    })
}
