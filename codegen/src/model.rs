//! The resolved model: the validated spec with what its consumers derive from it
//! worked out once — each argument's row of the conversion table, each request
//! function's result reader, and every generated name (types, slot structs,
//! trampolines, files, fuzzer modules).
//!
//! ```text
//! spec/*.toml ─load─► Spec ─validate─► Spec ─resolve─► Model ─┬─ emit ─► tokens
//!                                                              └─ check (+ HeaderModel) ─► Report
//! ```
//!
//! The emitters and the cross-check take a `Model`: handle and request emitters
//! read their names and conversions here rather than deriving them (the constant
//! names of enums and status codes come from [`crate::names`], which the
//! cross-check shares), and the cross-check calls nothing of the emitters.

use crate::conv::{self, ConvDef, ResultDef};
use crate::diag::Diagnostics;
use crate::names;
use crate::spec::{ArgSpec, CallbackSpec, HandleSpec, MethodSpec, RequestSpec, Spec};

/// The resolved spec.
#[derive(Debug)]
pub struct Model<'s> {
    /// The validated spec it resolves.
    pub spec: &'s Spec,
    /// Handle types, in spec order.
    pub handles: Vec<HandleModel<'s>>,
    /// Request types, in spec order.
    pub requests: Vec<RequestModel<'s>>,
}

/// One handle type.
#[derive(Debug)]
pub struct HandleModel<'s> {
    /// Its spec.
    pub spec: &'s HandleSpec,
    /// Its callback-slot struct (`TimerSlots`).
    pub slots_struct: String,
    /// The file its code is rendered to (`timer.rs`).
    pub file: String,
    /// The fuzzer's module of its operations (`timer_ops`).
    pub fuzz_module: String,
    /// Its callback slots.
    pub slots: Vec<SlotModel<'s>>,
}

/// One callback slot.
#[derive(Debug)]
pub struct SlotModel<'s> {
    /// Its spec.
    pub spec: &'s CallbackSpec,
    /// Its C trampoline (`__uv_timer_on_timeout`).
    pub trampoline: String,
    /// Its arguments with their conversions.
    pub args: Vec<ArgModel<'s>>,
}

/// One argument.
#[derive(Debug)]
pub struct ArgModel<'s> {
    /// Its spec.
    pub spec: &'s ArgSpec,
    /// Its row of the conversion table.
    pub conv: &'static ConvDef,
}

/// One request type.
#[derive(Debug)]
pub struct RequestModel<'s> {
    /// Its spec.
    pub spec: &'s RequestSpec,
    /// Whether the generator emits it (not `manual`).
    pub generated: bool,
    /// Its generated functions.
    pub functions: Vec<RequestFnModel<'s>>,
}

/// One generated function of a request type.
#[derive(Debug)]
pub struct RequestFnModel<'s> {
    /// Its spec.
    pub spec: &'s MethodSpec,
    /// How the completed request gives its value.
    pub result: &'static ResultDef,
    /// The blocking form's name (`stat_sync`).
    pub sync_name: String,
    /// The future form's name (`stat_async`).
    pub future_name: String,
    /// Its arguments with their conversions.
    pub args: Vec<ArgModel<'s>>,
}

fn arg_models(args: &[ArgSpec]) -> Vec<ArgModel<'_>> {
    args.iter()
        .map(|a| ArgModel {
            spec: a,
            conv: a.conv.value.def(),
        })
        .collect()
}

/// Resolves a validated spec. The errors are those only resolution sees (a request
/// function whose `result` names no reader, in a spec that skipped validation).
pub fn resolve(spec: &Spec) -> Result<Model<'_>, Diagnostics> {
    let mut errs = Vec::new();
    let handles = spec
        .handles
        .iter()
        .map(|h| HandleModel {
            spec: h,
            slots_struct: names::slots_struct(&h.name),
            file: names::handle_file(&h.name),
            fuzz_module: names::fuzz_module(&h.name),
            slots: h
                .callbacks
                .iter()
                .map(|c| SlotModel {
                    spec: c,
                    trampoline: names::trampoline(&h.name, &c.name),
                    args: arg_models(&c.args),
                })
                .collect(),
        })
        .collect();
    let requests = spec
        .requests
        .iter()
        .map(|r| {
            let generated = r.manual.is_none();
            let functions = r
                .methods
                .iter()
                .filter(|m| generated && m.manual.is_none() && m.c.is_some())
                .filter_map(|m| {
                    let res = m.result.as_ref();
                    match res.and_then(|x| conv::find_result(x)) {
                        Some(result) => Some(RequestFnModel {
                            spec: m,
                            result,
                            sync_name: format!("{}_sync", m.name.value),
                            future_name: format!("{}_async", m.name.value),
                            args: arg_models(&m.args),
                        }),
                        None => {
                            let loc = res.map_or(&m.name.loc, |x| &x.loc);
                            errs.push(
                                loc.error("a request function needs a known `result`")
                                    .hint("see `result` in spec/README.md"),
                            );
                            None
                        }
                    }
                })
                .collect();
            RequestModel {
                spec: r,
                generated,
                functions,
            }
        })
        .collect();
    if !errs.is_empty() {
        return Err(Diagnostics(errs));
    }
    Ok(Model {
        spec,
        handles,
        requests,
    })
}

impl HandleModel<'_> {
    /// The slot named `name`.
    pub fn slot(&self, name: &str) -> Option<&SlotModel<'_>> {
        self.slots.iter().find(|s| s.spec.name.as_str() == name)
    }
}
