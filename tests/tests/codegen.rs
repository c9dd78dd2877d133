//! Generator tests: diagnostics for bad spec files, the cross-check against patched
//! headers, and a mutation test of the loader.

use std::path::{Path, PathBuf};

use uv_codegen::spec::load_file;
use uv_codegen::{check, headers, HeaderModel};
use uv_tests::copy_dir;

fn spec_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("spec")
}

fn errors(path: &str, text: &str) -> String {
    load_file(Path::new(path), text).unwrap_err().to_string()
}

#[test]
fn misspelled_key_names_line_column_and_fix() {
    let text = "[handle]\nname = \"Timer\"\nc_type = \"uv_timer_t\"\ntype_tag = \"UV_TIMER\"\n\n[[method]]\nname = \"stop\"\nc = \"uv_timer_stop\"\nreturn = \"status\"\n";
    assert_eq!(
        errors("spec/handles/timer.toml", text),
        "spec/handles/timer.toml:1:1: error: a handle needs at least one [[constructor]] (hint: add [[constructor]] with name = \"new\" and c = \"uv_..._init\")\n\
         spec/handles/timer.toml:9:1: error: unknown key `return` in [[method]] (hint: did you mean `returns`?)"
    );
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let text = "[enum]\nname = \"RunMode\"\nkind = \"flag\"\n\n[[member]]\nname = 3\nc = \"UV_RUN_DEFAULT\"\n\n[[member]]\nc = \"UV_RUN_ONCE\"\nnmae = \"Once\"\n";
    let out = errors("spec/enums/run_mode.toml", text);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines.iter().any(|l| l.starts_with("spec/enums/run_mode.toml:3:8: error: unknown enum kind `flag`")), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("spec/enums/run_mode.toml:6:8: error: `name` in [[member]] must be a string, not an integer")), "{out}");
    assert!(
        lines.iter().any(|l| l.contains("[[member]] has no `name`")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("unknown key `nmae` in [[member]] (hint: did you mean `name`?)")),
        "{out}"
    );
}

#[test]
fn syntax_errors_and_unknown_files_are_diagnosed() {
    let out = errors("spec/x.toml", "[handle\nname = 1");
    assert!(out.starts_with("spec/x.toml:1:"), "{out}");
    assert!(out.contains("TOML syntax"), "{out}");
    let out = errors("spec/x.toml", "foo = 1\n");
    assert!(
        out.contains("cannot tell what this spec file describes"),
        "{out}"
    );
}

#[test]
fn dangling_references_are_errors() {
    let dir = tempdir("dangling");
    copy_spec(&dir);
    let errors_toml = std::fs::read_to_string(dir.join("errors.toml")).unwrap();
    std::fs::write(
        dir.join("errors.toml"),
        errors_toml.replacen(
            "parents = [\"Address\", \"Argument\"]",
            "parents = [\"Adress\", \"Argument\"]",
            1,
        ),
    )
    .unwrap();
    let out = uv_codegen::load_spec(&dir, Path::new("spec"))
        .unwrap_err()
        .to_string();
    assert!(
        out.contains("error: no category named `Adress` (hint: did you mean `Address`?)"),
        "{out}"
    );
    assert!(out.starts_with("spec/errors.toml:"), "{out}");
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("uv-codegen-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_spec(to: &Path) {
    copy_dir(&spec_dir(), to);
}

#[test]
fn the_real_spec_matches_the_headers() {
    let (spec, _) = uv_codegen::load_spec(&spec_dir(), Path::new("spec")).unwrap();
    let include = headers::default_include_dir().unwrap();
    let model = HeaderModel::read(&include).unwrap();
    let report = check(&uv_codegen::resolve(&spec).unwrap(), &model);
    assert!(report.is_ok(), "{}", report.render(false));
    let status = &report.sections[0];
    assert_eq!(
        (status.covered(), status.total(), status.missing()),
        (85, 85, 0)
    );
}

/// A uv.h with one more status code and one more handle type: the report names
/// exactly those (the handle type twice: its enum member and its handle file).
#[test]
fn drift_report_lists_exactly_the_new_items() {
    let include = headers::default_include_dir().unwrap();
    let dir = tempdir("headers");
    copy_dir(&include, &dir);
    let uv_h = std::fs::read_to_string(dir.join("uv.h")).unwrap();
    let patched = uv_h
        .replacen(
            "#define UV_ERRNO_MAP(XX)",
            "#define UV__EFAKE (-4999)\n#define UV_ERRNO_MAP(XX) XX(EFAKE, \"fake error\")",
            1,
        )
        .replacen(
            "#define UV_HANDLE_TYPE_MAP(XX)",
            "#define UV_HANDLE_TYPE_MAP(XX) XX(FAKE, fake)",
            1,
        )
        .replacen(
            "typedef struct uv_timer_s uv_timer_t;",
            "typedef struct uv_timer_s uv_timer_t;\ntypedef struct uv_timer_s uv_fake_t;",
            1,
        );
    assert_ne!(patched, uv_h);
    std::fs::write(dir.join("uv.h"), patched).unwrap();
    let (spec, _) = uv_codegen::load_spec(&spec_dir(), Path::new("spec")).unwrap();
    let model = HeaderModel::read(&dir).unwrap();
    let report = check(&uv_codegen::resolve(&spec).unwrap(), &model);
    let errs: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs[0].starts_with("spec/status_codes.toml:1:1: error: uv.h has status code `UV_EFAKE`"),
        "{errs:#?}"
    );
    assert!(
        errs[0].contains("add [[code]] with name = \"EFAKE\""),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with(
            "spec/enums/handle_type.toml:1:1: error: uv.h has `UV_FAKE` in `uv_handle_type`"
        ),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with(
            "spec/handles/fake.toml:1:1: error: uv.h has handle type `UV_FAKE` (UV_HANDLE_TYPE_MAP), which no spec/handles file wraps"
        ),
        "{errs:#?}"
    );
}

/// The runtime keeps each handle's header in the reserved part of `uv_handle_t`'s `u`
/// union: the real libuv declares it as expected and its sources never reach it, and
/// a libuv that declares it otherwise, or reaches it, fails the check at the line.
#[test]
fn the_reserved_handle_space_is_checked_against_uv_h_and_the_sources() {
    let include = headers::default_include_dir().unwrap();
    let real = HeaderModel::read(&include).unwrap().handle_union.unwrap();
    assert_eq!(
        real.declared.as_deref(),
        Some(headers::HANDLE_UNION_EXPECTED)
    );
    assert_eq!(real.uses, Some(Vec::new()), "libuv's sources were scanned");

    let dir = tempdir("reserved");
    copy_dir(&include, &dir.join("include"));
    std::fs::create_dir_all(dir.join("src/unix")).unwrap();
    // What tells libuv's sources apart from any `src` next to an include directory.
    std::fs::write(dir.join("src/uv-common.c"), "/* common */\n").unwrap();
    std::fs::write(
        dir.join("src/unix/core.c"),
        "int f(uv_handle_t* h) {\n  (h)->u.fd = -1;\n  h->u.reserved[2] = 0;\n  return 0;\n}\n",
    )
    .unwrap();
    let uv_h = std::fs::read_to_string(dir.join("include/uv.h")).unwrap();
    let patched = uv_h.replacen(
        "void* reserved[4];                                                        \\",
        "void* reserved[3]; void* next;                                            \\",
        1,
    );
    assert_ne!(patched, uv_h);
    std::fs::write(dir.join("include/uv.h"), &patched).unwrap();
    let (spec, _) = uv_codegen::load_spec(&spec_dir(), Path::new("spec")).unwrap();
    let model = HeaderModel::read(&dir.join("include")).unwrap();
    let report = check(&uv_codegen::resolve(&spec).unwrap(), &model);
    let errs: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(errs.len(), 2, "{errs:#?}");
    // 1-based line of `union {`, two lines above the patched one.
    let union_line = patched
        .lines()
        .position(|l| l.contains("void* next;"))
        .unwrap()
        - 1;
    assert!(
        errs[0].contains(&format!(
            "uv.h:{union_line}:1: error: UV_HANDLE_FIELDS's union `u` is `int fd; void* reserved[3]; void* next;`"
        )),
        "{errs:#?}"
    );
    assert!(
        errs[1].contains("src/unix/core.c:3:1: error: libuv may reach the reserved part of a handle's `u` union here: `h->u.reserved[2] = 0;`"),
        "{errs:#?}"
    );
    assert!(errs[1].contains("HEADER_OFFSET"), "{errs:#?}");
    assert!(report.notes.is_empty(), "{:#?}", report.notes);

    // Without libuv's sources next to the headers, only the declaration can be
    // checked: the report says so instead of passing in silence.
    std::fs::remove_file(dir.join("src/uv-common.c")).unwrap();
    let model = HeaderModel::read(&dir.join("include")).unwrap();
    let report = check(&uv_codegen::resolve(&spec).unwrap(), &model);
    assert_eq!(report.diagnostics.len(), 1, "{:#?}", report.diagnostics);
    assert_eq!(report.notes.len(), 1, "{:#?}", report.notes);
    assert!(
        report.notes[0].contains("libuv's sources were not found next to")
            && report.notes[0].contains("only uv.h's declaration of the union `u` was checked"),
        "{:#?}",
        report.notes
    );
    assert!(
        report
            .render(false)
            .contains("\nnote: reserved handle space:"),
        "{}",
        report.render(false)
    );
}

/// 10,000 mutated spec files: the loader reports problems and never panics.
#[test]
fn loader_never_panics_on_mutated_files() {
    let mut inputs = Vec::new();
    for sub in ["", "enums", "handles"] {
        for e in std::fs::read_dir(spec_dir().join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                inputs.push(std::fs::read(&p).unwrap());
            }
        }
    }
    let pieces: &[&[u8]] = &[
        b"[",
        b"]",
        b"\"",
        b"=",
        b"\n",
        b"[[",
        b"name",
        b"conv",
        b"{",
        b"}",
        b",",
        b"1",
        b"true",
        b"#",
        b"\\",
        b"\xff",
        b"type",
        b"callback",
        b"args = [",
        b"parents = [\"x\"]",
    ];
    let mut seed: u64 = 0x9E3779B97F4A7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut rejected = 0;
    for i in 0..10_000 {
        let mut text = inputs[i % inputs.len()].clone();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % (text.len() + 1);
            match next() % 3 {
                0 if at < text.len() => {
                    let n = 1 + (next() as usize % 8).min(text.len() - at);
                    text.drain(at..(at + n).min(text.len()));
                }
                1 => {
                    let p = pieces[next() as usize % pieces.len()];
                    text.splice(at..at, p.iter().copied());
                }
                _ if at < text.len() => text[at] = (next() % 128) as u8,
                _ => {}
            }
        }
        let s = String::from_utf8_lossy(&text).into_owned();
        let r = std::panic::catch_unwind(|| {
            if let Ok(f) = load_file(Path::new("m.toml"), &s) {
                let spec = match f {
                    uv_codegen::spec::SpecFile::Handle(h) => uv_codegen::Spec {
                        handles: vec![h],
                        ..Default::default()
                    },
                    uv_codegen::spec::SpecFile::Enum(e) => uv_codegen::Spec {
                        enums: vec![e],
                        ..Default::default()
                    },
                    _ => uv_codegen::Spec::default(),
                };
                let _ = uv_codegen::spec::validate(&spec, None);
                false
            } else {
                true
            }
        });
        assert!(r.is_ok(), "loader panicked on:\n{s}");
        rejected += usize::from(r.unwrap());
    }
    // Most mutations break something, and the loader says so.
    assert!(rejected > 5_000, "{rejected}");
}

/// What `uv`'s build script runs: a misspelled key fails it with file:line:col and a hint.
#[test]
fn build_step_fails_on_a_misspelled_key() {
    let dir = tempdir("build");
    copy_spec(&dir);
    let timer = std::fs::read_to_string(dir.join("handles/timer.toml")).unwrap();
    std::fs::write(
        dir.join("handles/timer.toml"),
        timer.replacen("on_closed = \"noop\"", "on_close = \"noop\"", 1),
    )
    .unwrap();
    let line = timer
        .lines()
        .position(|l| l.starts_with("on_closed"))
        .unwrap()
        + 1;
    let out = tempdir("build-out");
    let include = headers::default_include_dir().unwrap();
    let err = uv_codegen::build_script(&dir, Path::new("spec"), &include, &out).unwrap_err();
    assert_eq!(
        err,
        format!("spec/handles/timer.toml:{line}:1: error: unknown key `on_close` in [[method]] (hint: did you mean `on_closed`?)")
    );
    // Nothing was written.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}

/// A member of a named C enum listed in an enum without `c_type` would be emitted
/// under a name libuv-sys2 does not have; the cross-check says so and how to fix it.
#[test]
fn enum_member_names_are_checked_against_libuv_sys2() {
    let dir = tempdir("sysname");
    copy_spec(&dir);
    std::fs::write(
        dir.join("enums/extra.toml"),
        "[enum]\nname = \"Extra\"\nkind = \"flags\"\n\n[[member]]\nname = \"READABLE\"\nc = \"UV_READABLE\"\n",
    )
    .unwrap();
    let (spec, _) = uv_codegen::load_spec(&dir, Path::new("spec")).unwrap();
    let include = headers::default_include_dir().unwrap();
    let model = HeaderModel::read(&include).unwrap();
    let errs: Vec<String> = check(&uv_codegen::resolve(&spec).unwrap(), &model)
        .diagnostics
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        errs,
        vec!["spec/enums/extra.toml:7:5: error: libuv-sys2 names `UV_READABLE` `uv_poll_event_UV_READABLE`, but the generated code would use `UV_READABLE` (hint: its C enum is `uv_poll_event`: give this enum c_type = \"uv_poll_event\")".to_string()]
    );
}

/// git keeps no empty directories: a spec without `requests/` loads.
#[test]
fn missing_optional_directories_are_empty() {
    let dir = tempdir("noreq");
    copy_spec(&dir);
    let _ = std::fs::remove_dir_all(dir.join("requests"));
    std::fs::remove_dir_all(dir.join("handles")).unwrap();
    let (spec, _) = uv_codegen::load_spec(&dir, Path::new("spec")).unwrap();
    assert!(spec.handles.is_empty() && spec.requests.is_empty());
    assert_eq!(spec.status_codes.as_ref().map(|s| s.codes.len()), Some(85));
}

/// A C name that is not an identifier, in a spec directory: `load_spec` (what
/// `uv-codegen check` and `expand` and uv's build step run first) reports it at
/// its line and column. It used to pass the loader and stop `uv-codegen check`
/// with a panic in the emitter (`"uv timer stop" is not a valid Ident`).
#[test]
fn a_c_name_that_is_no_identifier_is_a_spec_error() {
    let dir = tempdir("c-name");
    copy_spec(&dir);
    let timer = std::fs::read_to_string(dir.join("handles/timer.toml")).unwrap();
    let patched = timer.replacen("c = \"uv_timer_stop\"", "c = \"uv timer stop\"", 1);
    assert_ne!(patched, timer);
    std::fs::write(dir.join("handles/timer.toml"), &patched).unwrap();
    let line = patched
        .lines()
        .position(|l| l == "c = \"uv timer stop\"")
        .unwrap()
        + 1;
    let out = uv_codegen::load_spec(&dir, Path::new("spec"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        out,
        format!("spec/handles/timer.toml:{line}:5: error: `uv timer stop` is not a valid C function name (hint: a C or Rust name: letters, digits and `_`, not starting with a digit, and not a Rust keyword)")
    );
}

/// Odd files in a spec directory are reported, each at its path: a file that is
/// not UTF-8, an empty one, a directory named like a spec file. The first used to
/// get the hint about the three required files, which it is not.
#[test]
fn odd_spec_files_are_reported_at_their_path() {
    let dir = tempdir("odd-files");
    copy_spec(&dir);
    std::fs::write(dir.join("handles/binary.toml"), [0xff, 0xfe, 0x00]).unwrap();
    std::fs::write(dir.join("handles/empty.toml"), "").unwrap();
    std::fs::create_dir_all(dir.join("handles/folder.toml")).unwrap();
    let out = uv_codegen::load_spec(&dir, Path::new("spec"))
        .unwrap_err()
        .to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("spec/handles/binary.toml:1:1: error: cannot read the file: ")
            && lines[0].ends_with("(hint: a spec file is UTF-8 text (TOML))"),
        "{out}"
    );
    assert_eq!(lines[1], "spec/handles/empty.toml:1:1: error: cannot tell what this spec file describes (hint: a spec file has one of [handle], [request], [enum], [[code]], [[category]] or [[function]])");
    assert!(
        lines[2].starts_with("spec/handles/folder.toml:1:1: error: cannot read the file: ")
            && !lines[2].contains("hint"),
        "{out}"
    );
}

/// Header sets `uv-codegen check --include` and `diff` are pointed at by mistake:
/// a uv.h that does not compile is an error saying so (it used to say that
/// libclang was missing), an empty one a model with nothing in it, which `diff`
/// compares with the real one like any other; a directory without uv.h is an
/// error naming it. None panics.
#[test]
fn odd_header_sets_are_errors_or_empty_models() {
    let bad = tempdir("bad-header");
    std::fs::write(bad.join("uv.h"), "this is not C {{{\n").unwrap();
    let err = HeaderModel::read(&bad).unwrap_err();
    assert!(
        err.contains("bindgen failed")
            && err.ends_with(
                "(hint: the headers do not compile: is this libuv's include directory?)"
            ),
        "{err}"
    );
    let none = tempdir("no-header");
    let err = HeaderModel::read(&none).unwrap_err();
    assert!(err.contains("no uv.h there"), "{err}");
    let empty = tempdir("empty-header");
    std::fs::write(empty.join("uv.h"), "").unwrap();
    let empty = HeaderModel::read(&empty).unwrap();
    assert!(empty.functions.is_empty());
    let real = HeaderModel::read(&headers::default_include_dir().unwrap()).unwrap();
    let text = uv_codegen::diff::diff(&real, &empty).render();
    assert!(
        text.contains("status codes (uv_errno_t): 0 added, 86 removed, 0 changed"),
        "{text}"
    );
    assert!(uv_codegen::diff::diff(&real, &real)
        .render()
        .contains("no changes"));
}

/// A spec type named after a type the runtime defines beside the generated ones
/// (`uv::File`, `uv::Stdio`, `uv::JoinHandle`, ...) is refused at its line. The
/// loader knew only some of those names: an enum `File` in this crate's spec
/// passed it, and the crate root's `pub use file::File` silently hid the generated
/// type, which the root re-exports by glob (a handle `Stdio` made `uv::handles`
/// fail to compile instead).
#[test]
fn names_the_runtime_defines_are_refused() {
    for name in [
        "File",
        "Stdio",
        "JoinHandle",
        "Timespec",
        "Datagram",
        "SockAddr",
    ] {
        let dir = tempdir(&format!("reserved-{name}"));
        copy_spec(&dir);
        let run_mode = dir.join("enums").join("run_mode.toml");
        let text = std::fs::read_to_string(&run_mode).unwrap();
        std::fs::write(
            &run_mode,
            text.replacen("name = \"RunMode\"", &format!("name = \"{name}\""), 1),
        )
        .unwrap();
        let out = uv_codegen::load_spec(&dir, Path::new("spec"))
            .unwrap_err()
            .to_string();
        assert!(
            out.contains(&format!(
                "spec/enums/run_mode.toml:2:8: error: `{name}` is a name the runtime already uses"
            )),
            "{name}: {out}"
        );
    }
}
