//! The uv generator: load the spec (`spec/*.toml`), read the libuv headers, cross-check
//! the two, and emit the safe Rust bindings.
//!
//! One library, three entry points: `uv`'s build script ([`build_script`]), the
//! `uv-macros` proc-macros, and the `uv-codegen` CLI (`check`, `expand`).
//!
//! ```text
//! spec/*.toml ──load──► Spec ──validate──► Spec ──resolve──► Model ─┬─ emit ─► tokens ─► files
//!                                                                   └─ check ─► Report
//! uv.h ──bindgen──► HeaderModel ─────────────────────────────────────────┘
//! ```
//!
//! The conversion table ([`conv`]) and the names ([`names`]) are read by every stage;
//! the emitters and the cross-check take the resolved [`model::Model`].

pub mod check;
pub mod conv;
pub mod diag;
pub mod diff;
pub mod emit;
pub mod headers;
pub mod model;
pub mod names;
pub mod spec;

use std::path::{Path, PathBuf};

pub use check::{check, Coverage, Report, Section};
pub use diag::{Diagnostic, Diagnostics};
pub use emit::Ctx;
pub use headers::HeaderModel;
pub use model::{resolve, Model};
pub use spec::Spec;

/// Loads and validates a spec directory. `display` is how paths are shown.
pub fn load_spec(dir: &Path, display: &Path) -> Result<(Spec, Vec<PathBuf>), Diagnostics> {
    let (spec, files) = spec::load_dir(dir, display)?;
    spec::validate(&spec, Some(&[]))?;
    Ok((spec, files))
}

/// One generated file.
#[derive(Debug)]
pub struct GeneratedFile {
    /// File name relative to the output directory.
    pub name: String,
    /// The spec file(s) it comes from, for the header.
    pub source: String,
    /// The code.
    pub tokens: proc_macro2::TokenStream,
}

impl GeneratedFile {
    /// Formatted text with the header.
    pub fn render(&self) -> Result<String, syn::Error> {
        emit::render(self.tokens.clone(), &self.source)
    }
}

/// Everything the spec generates that is not a handle: status codes, categories, enums.
/// (Handles are emitted per file by [`emit::handle`], through `uv-macros`.)
pub fn generate_core(spec: &Spec, spec_display: &Path, ctx: &Ctx) -> Vec<GeneratedFile> {
    let d = |f: &str| spec_display.join(f).display().to_string();
    vec![
        GeneratedFile {
            name: "status_codes.rs".into(),
            source: d("status_codes.toml"),
            tokens: emit::status_codes(spec, ctx),
        },
        GeneratedFile {
            name: "errors.rs".into(),
            source: format!("{} and {}", d("errors.toml"), d("status_codes.toml")),
            tokens: emit::categories(spec, ctx),
        },
        GeneratedFile {
            name: "enums.rs".into(),
            source: d("enums/*.toml"),
            tokens: emit::enums(spec, ctx),
        },
    ]
}

/// Loads one spec file of a single handle or request type for the proc-macro path:
/// parse, validate (enum names are left to rustc), resolve, emit. `want` names the
/// table the macro takes, for the error when the file has another.
fn expand_one(
    display: &Path,
    text: &str,
    want: &str,
    emit_it: impl FnOnce(&Model<'_>) -> Result<proc_macro2::TokenStream, Diagnostics>,
) -> Result<proc_macro2::TokenStream, Diagnostics> {
    let spec = match (spec::load_file(display, text)?, want) {
        (spec::SpecFile::Handle(h), "handle") => Spec {
            handles: vec![h],
            ..Spec::default()
        },
        (spec::SpecFile::Request(r), "request") => Spec {
            requests: vec![r],
            ..Spec::default()
        },
        _ => {
            return Err(Diagnostics(vec![Diagnostic::in_file(
                display,
                format!("this spec file does not describe a {want}"),
            )
            .hint(format!("{want}! takes a file with a [{want}] table"))]))
        }
    };
    spec::validate(&spec, None)?;
    emit_it(&resolve(&spec)?)
}

/// Loads one handle spec file for the proc-macro path and emits its type.
pub fn expand_handle_file(
    display: &Path,
    text: &str,
    ctx: &Ctx,
) -> Result<proc_macro2::TokenStream, Diagnostics> {
    expand_one(display, text, "handle", |m| {
        emit::handle(&m.handles[0], ctx)
    })
}

/// Loads one request spec file for the proc-macro path and emits its type.
pub fn expand_request_file(
    display: &Path,
    text: &str,
    ctx: &Ctx,
) -> Result<proc_macro2::TokenStream, Diagnostics> {
    expand_one(display, text, "request", |m| {
        emit::request(&m.requests[0], ctx)
    })
}

/// Emits the code of one handle or enum spec file, formatted with its header (what
/// the golden tests compare). Other kinds need the whole spec directory.
pub fn expand_spec_file(display: &Path, text: &str, ctx: &Ctx) -> Result<String, Diagnostics> {
    let tokens = match spec::load_file(display, text)? {
        spec::SpecFile::Handle(_) => expand_handle_file(display, text, ctx)?,
        spec::SpecFile::Request(_) => expand_request_file(display, text, ctx)?,
        spec::SpecFile::Enum(e) => {
            let spec = Spec {
                enums: vec![e],
                ..Spec::default()
            };
            spec::validate(&spec, None)?;
            emit::enums(&spec, ctx)
        }
        _ => {
            return Err(Diagnostics(vec![Diagnostic::in_file(
                display,
                "only handle and enum files expand on their own",
            )
            .hint(
                "status codes and errors need the whole spec directory: use `uv-codegen expand`",
            )]))
        }
    };
    emit::render(tokens, &display.display().to_string()).map_err(|e| {
        Diagnostics(vec![Diagnostic::in_file(
            display,
            format!("generated code does not parse: {e}"),
        )])
    })
}

/// Timings of one generator run, in seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// Loading and validating the spec.
    pub spec: f64,
    /// Running bindgen and reading its output.
    pub headers: f64,
    /// The cross-check.
    pub check: f64,
    /// Emitting and formatting.
    pub emit: f64,
}

/// What a successful [`build_script`] run read and found.
#[derive(Clone, Debug, Default)]
pub struct BuildOutput {
    /// The spec files read (for `cargo:rerun-if-changed`).
    pub files: Vec<PathBuf>,
    /// How long each stage took.
    pub timings: Timings,
    /// What the cross-check could not look at (see [`check::Report::notes`]), for
    /// the build to show as warnings.
    pub notes: Vec<String>,
}

/// What `uv`'s build script does: load the spec, cross-check it against the headers
/// in `include`, and write the generated files to `out_dir`. On failure the error text
/// lists every problem with its file, line and column.
#[cfg(feature = "headers")]
pub fn build_script(
    spec_dir: &Path,
    spec_display: &Path,
    include: &Path,
    out_dir: &Path,
) -> Result<BuildOutput, String> {
    use std::time::Instant;
    let mut t = Timings::default();
    let start = Instant::now();
    let (spec, files) = load_spec(spec_dir, spec_display).map_err(|d| d.to_string())?;
    let model = resolve(&spec).map_err(|d| d.to_string())?;
    t.spec = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let headers = HeaderModel::read(include)?;
    t.headers = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let report = check(&model, &headers);
    t.check = start.elapsed().as_secs_f64();
    if !report.is_ok() {
        return Err(format!(
            "the spec does not match the libuv headers in {}:\n{}",
            include.display(),
            report.errors()
        ));
    }
    let start = Instant::now();
    for f in generate_core(&spec, spec_display, &Ctx::default()) {
        let text = f
            .render()
            .map_err(|e| format!("formatting {}: {e}", f.name))?;
        let path = out_dir.join(&f.name);
        // Rewrite only on change, so that dependents are not rebuilt for nothing.
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    t.emit = start.elapsed().as_secs_f64();
    Ok(BuildOutput {
        files,
        timings: t,
        notes: report.notes,
    })
}
