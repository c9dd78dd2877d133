//! Every name the generator derives from the spec, built in one place: the bindgen
//! names of C constants, and the Rust names of generated items (modules,
//! trampolines, slot structs). The cross-check and the emitters both use these.

use crate::spec::{EnumSpec, MemberSpec};

/// `CamelCase` to `snake_case` (`TcpFlags` → `tcp_flags`).
pub fn to_snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The bindgen constant of an enum member: `<c_type>_<C name>` for a member of a
/// C enum, the C name itself for a `#define`.
pub fn enum_member_sys(e: &EnumSpec, m: &MemberSpec) -> String {
    match &e.c_type {
        Some(t) => format!("{}_{}", t.value, m.c.value),
        None => m.c.value.clone(),
    }
}

/// The bindgen constant of a status code: `<c_type>_UV_<name>`.
pub fn status_code_sys(c_type: &str, name: &str) -> String {
    format!("{c_type}_UV_{name}")
}

/// The module holding an enum's raw values (`tcp_flags_raw`).
pub fn raw_module(type_name: &str) -> String {
    format!("{}_raw", to_snake(type_name))
}

/// The C trampoline of a handle's callback slot (`__uv_timer_on_timeout`).
pub fn trampoline(handle: &str, slot: &str) -> String {
    format!("__uv_{}_{}", to_snake(handle), slot)
}

/// A handle type's callback-slot struct (`TimerSlots`).
pub fn slots_struct(handle: &str) -> String {
    format!("{handle}Slots")
}

/// The fuzzer's module of a handle type's operations (`timer_ops`).
pub fn fuzz_module(handle: &str) -> String {
    format!("{}_ops", to_snake(handle))
}

/// The file a handle type's generated code is rendered to (`timer.rs`).
pub fn handle_file(handle: &str) -> String {
    format!("{}.rs", to_snake(handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names() {
        assert_eq!(to_snake("TcpFlags"), "tcp_flags");
        assert_eq!(trampoline("FsPoll", "on_change"), "__uv_fs_poll_on_change");
        assert_eq!(raw_module("RunMode"), "run_mode_raw");
        assert_eq!(status_code_sys("uv_errno_t", "EOF"), "uv_errno_t_UV_EOF");
        assert_eq!(slots_struct("Tcp"), "TcpSlots");
        assert_eq!(fuzz_module("Udp"), "udp_ops");
    }
}
