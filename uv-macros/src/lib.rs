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
#[proc_macro]
pub fn handle(input: TokenStream) -> TokenStream {
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
    match uv_codegen::expand_handle_file(
        std::path::Path::new(&rel),
        &text,
        &uv_codegen::Ctx::default(),
    ) {
        Ok(tokens) => {
            let abs = path.to_string_lossy().to_string();
            quote! {
                // Makes cargo rebuild when the spec file changes.
                const _: &str = include_str!(#abs);
                #tokens
            }
            .into()
        }
        // rustc prints its own `error:` before the message.
        Err(diags) => error(&lit, diags.to_string().replace(": error: ", ": ")),
    }
}

fn error(lit: &LitStr, msg: String) -> TokenStream {
    syn::Error::new(lit.span(), msg).to_compile_error().into()
}
