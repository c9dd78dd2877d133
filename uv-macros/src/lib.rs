//! Proc-macros over uv spec files: the same generator as uv's build step, for use
//! inside `uv` and by crates that add handle types from their own spec files.
//!
//! ```ignore
//! // In a crate that depends on `uv`: declares `MyTimer` from my_timer.toml.
//! uv::handle!("spec/my_timer.toml");
//! ```

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, LitStr};

/// Expands a handle spec file (a path relative to the calling crate's
/// `Cargo.toml`) into a safe handle type. A problem in the file becomes a
/// `compile_error!` that names `file:line:col` and the fix.
///
/// In a crate with a build script (any, even an empty `fn main() {}`), the code is
/// written formatted to `$OUT_DIR/uv-generated/<file stem>.rs` (`<file stem>-2.rs`,
/// ... when a spec file of the same name in another directory has that one) and included from
/// there, so compiler messages and rustdoc's source pages point into readable code
/// rather than at the macro call.
#[proc_macro]
pub fn handle(input: TokenStream) -> TokenStream {
    expand(input, uv_codegen::expand_handle_file)
}

/// Expands a request spec file (a path relative to the calling crate's
/// `Cargo.toml`) into a request type whose functions take the loop, each in an
/// asynchronous and a synchronous form. Problems are reported, and the code
/// written, as for [`handle!`].
#[proc_macro]
pub fn request(input: TokenStream) -> TokenStream {
    expand(input, uv_codegen::expand_request_file)
}

type Expander = fn(
    &std::path::Path,
    &str,
    &uv_codegen::Ctx,
) -> Result<proc_macro2::TokenStream, uv_codegen::Diagnostics>;

fn expand(input: TokenStream, expander: Expander) -> TokenStream {
    let lit = parse_macro_input!(input as LitStr);
    let rel = lit.value();
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return error(
            &lit,
            "CARGO_MANIFEST_DIR is not set; run through cargo".into(),
        );
    };
    let path = std::path::Path::new(&dir).join(&rel);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return error(&lit, format!("{rel}: cannot read the spec file: {e}")),
    };
    // Only the `uv` crate's own spec may use the runtime's crate-private parts.
    let ctx = uv_codegen::Ctx {
        in_runtime: std::env::var("CARGO_CRATE_NAME").as_deref() == Ok("uv"),
        ..uv_codegen::Ctx::default()
    };
    match expander(std::path::Path::new(&rel), &text, &ctx) {
        Ok(tokens) => {
            let abs = path.to_string_lossy().to_string();
            let code = match written(&rel, &tokens) {
                // The formatted file, so that compiler errors and rustdoc's source
                // pages show readable code (with its `// SAFETY:` comments).
                Some(file) => quote!(include!(#file);),
                None => tokens,
            };
            quote! {
                // Makes cargo rebuild when the spec file changes.
                const _: &str = include_str!(#abs);
                #code
            }
            .into()
        }
        // rustc prints its own `error:` before the message.
        Err(diags) => error(&lit, diags.to_string().replace(": error: ", ": ")),
    }
}

/// Writes the expansion, formatted, to `$OUT_DIR/uv-generated/<spec file stem>.rs`
/// (unchanged files are left alone) and gives its path; `None` when the calling
/// crate has no build script (no `OUT_DIR`) or the file cannot be written, in which
/// case the tokens are used directly. A file of that name that another spec file
/// (of the same stem, in another directory) wrote is left to it, and the
/// expansion goes to `<stem>-2.rs`, `<stem>-3.rs`, ...: one file served both
/// before, and the `include!` of the first spec read the second's code.
fn written(rel: &str, tokens: &proc_macro2::TokenStream) -> Option<String> {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR")?).join("uv-generated");
    let stem = std::path::Path::new(rel)
        .file_stem()?
        .to_string_lossy()
        .to_string();
    let text = uv_codegen::emit::render(tokens.clone(), rel).ok()?;
    // The header line `render` writes first names the spec file.
    let first_line = text.lines().next()?;
    for n in 1..=64 {
        let name = if n == 1 {
            format!("{stem}.rs")
        } else {
            format!("{stem}-{n}.rs")
        };
        let file = out.join(&name);
        let old = std::fs::read_to_string(&file).ok();
        match old.as_deref() {
            Some(t) if t == text => {}
            Some(t) if t.lines().next() != Some(first_line) => continue,
            _ => {
                std::fs::create_dir_all(&out).ok()?;
                // Write then rename, so a concurrent reader never sees half a file.
                let tmp = out.join(format!(".{name}.{}", std::process::id()));
                std::fs::write(&tmp, &text).ok()?;
                std::fs::rename(&tmp, &file).ok()?;
            }
        }
        return Some(file.to_string_lossy().to_string());
    }
    None
}

fn error(lit: &LitStr, msg: String) -> TokenStream {
    syn::Error::new(lit.span(), msg).to_compile_error().into()
}
