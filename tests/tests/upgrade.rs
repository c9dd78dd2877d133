//! The upgrade path of the generator: the cross-check against the headers of an older
//! published libuv-sys2 (1.48.0, fetched by cargo through tests/upgrade/Cargo.toml),
//! a simulated upgrade (a patched copy of today's uv.h), and `diff` on both pairs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use uv_codegen::diff::diff;
use uv_codegen::{check, headers, load_spec, HeaderModel, Spec};
use uv_tests::copy_dir;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn spec() -> Spec {
    load_spec(&root().join("spec"), Path::new("spec"))
        .unwrap()
        .0
}

fn current_include() -> PathBuf {
    headers::default_include_dir().expect("uv-codegen knows libuv-sys2's include directory")
}

fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(root().join("tests").join("upgrade"));
    c
}

/// Runs cargo with `args` in tests/upgrade; a failure fails the test with cargo's
/// own message (no network, a stale lock file, ...).
fn cargo_ok(args: &[&str]) -> String {
    let out = cargo()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "`cargo {}` in tests/upgrade failed: the upgrade test needs libuv-sys2 1.48.0 from crates.io (network, or a filled cargo registry).\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The include directory of libuv-sys2 1.48.0, fetched into cargo's registry.
fn libuv_1_48_include() -> PathBuf {
    cargo_ok(&["fetch", "--locked"]);
    let meta = cargo_ok(&["metadata", "--locked", "--format-version", "1"]);
    let manifest = meta
        .split("\"manifest_path\":\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(|s| s.replace("\\\\", "\\"))
        .find(|p| {
            Path::new(p)
                .parent()
                .and_then(|d| d.file_name())
                .is_some_and(|n| n == "libuv-sys2-1.48.0")
        })
        .unwrap_or_else(|| {
            panic!("cargo metadata of tests/upgrade lists no libuv-sys2-1.48.0:\n{meta}")
        });
    let include = Path::new(&manifest).parent().unwrap().join("libuv/include");
    assert!(
        include.join("uv.h").is_file(),
        "{}: no uv.h in the fetched crate",
        include.display()
    );
    include
}

/// `path:line:col` of the value in the first line of the spec file `rel` that holds
/// `needle` (`name = "ENOEXEC"` gives the column of its opening quote).
fn at(rel: &str, needle: &str) -> String {
    at_after(rel, "", needle)
}

/// As [`at`], for the first line holding `needle` at or after the first line holding `anchor`.
fn at_after(rel: &str, anchor: &str, needle: &str) -> String {
    let text = std::fs::read_to_string(root().join(rel)).unwrap();
    let (i, line) = text
        .lines()
        .enumerate()
        .skip_while(|(_, l)| !l.contains(anchor))
        .find(|(_, l)| l.contains(needle))
        .unwrap_or_else(|| panic!("{rel} has no line with {needle} after {anchor}"));
    let col = line.find(needle).unwrap() + needle.find('"').unwrap() + 1;
    format!("{rel}:{}:{col}", i + 1)
}

fn errors(spec: &Spec, h: &HeaderModel) -> Vec<String> {
    check(&uv_codegen::resolve(spec).unwrap(), h)
        .diagnostics
        .iter()
        .map(|d| d.to_string())
        .collect()
}

/// Each expected prefix starts exactly one error, and there are no other errors.
fn assert_exactly(errs: &[String], expected: &[String]) {
    for e in expected {
        let n = errs.iter().filter(|x| x.starts_with(e.as_str())).count();
        assert_eq!(
            n, 1,
            "expected one error starting with\n  {e}\ngot:\n{errs:#?}"
        );
    }
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
}

/// libuv 1.48 lacks one status code, four enum members and five functions that the
/// spec names; the check reports exactly those, each at its spec line.
#[test]
fn check_against_libuv_1_48_names_exactly_the_known_differences() {
    let old = HeaderModel::read(&libuv_1_48_include()).unwrap();
    assert_eq!(old.version().as_deref(), Some("1.48.0"));
    let spec = spec();
    let errs = errors(&spec, &old);
    let mut expected = vec![format!(
        "{}: error: uv.h has no status code `UV_ENOEXEC`",
        at("spec/status_codes.toml", "name = \"ENOEXEC\"")
    )];
    for (file, c) in [
        ("loop_option", "UV_LOOP_USE_IO_URING_SQPOLL"),
        ("tcp_flags", "UV_TCP_REUSEPORT"),
        ("tty_mode", "UV_TTY_MODE_RAW_VT"),
        ("udp_flags", "UV_UDP_REUSEPORT"),
    ] {
        expected.push(format!(
            "{}: error: the headers define no constant `{c}`",
            at(&format!("spec/enums/{file}.toml"), &format!("c = \"{c}\""))
        ));
    }
    let new_functions = [
        "uv_getrusage_thread",
        "uv_udp_try_send2",
        "uv_write_nwritten",
    ];
    for f in new_functions {
        expected.push(format!(
            "{}: error: `{f}` matches no function of uv.h",
            at("spec/functions.toml", &format!("c = \"{f}\""))
        ));
    }
    // Two are bound in handle files: their methods name a function 1.48 lacks.
    for (file, f) in [("tcp", "uv_tcp_keepalive_ex"), ("udp", "uv_udp_open_ex")] {
        expected.push(format!(
            "{}: error: ",
            at(
                &format!("spec/handles/{file}.toml"),
                &format!("c = \"{f}\"")
            )
        ));
    }
    assert_exactly(&errs, &expected);

    // Every function of 1.48 is classified: the report has no gap there.
    let report = check(&uv_codegen::resolve(&spec).unwrap(), &old);
    let funcs = report.section("functions").unwrap();
    assert_eq!(funcs.missing(), 0);
    // (The classified functions count whatever their class: bound by hand, left
    // out or still to do.)
    assert!(
        funcs.manual() + funcs.ignored() + funcs.todo() > 100,
        "{}",
        report.render(false)
    );

    // diff names the same items, from the headers alone.
    let d = diff(&old, &HeaderModel::read(&current_include()).unwrap());
    assert_eq!(
        d.section("status codes (uv_errno_t)").unwrap().added,
        ["UV_ENOEXEC"]
    );
    for (e, m) in [
        ("uv_loop_option", "UV_LOOP_USE_IO_URING_SQPOLL"),
        ("uv_tcp_flags", "UV_TCP_REUSEPORT"),
        ("uv_tty_mode_t", "UV_TTY_MODE_RAW_VT"),
        ("uv_udp_flags", "UV_UDP_REUSEPORT"),
    ] {
        assert_eq!(d.section(&format!("enum {e}")).unwrap().added, [m]);
    }
    let funcs = d.section("functions").unwrap();
    let added: BTreeSet<&str> = funcs.added_names().into_iter().collect();
    // The three thread functions are in the spec's `uv_thread_*` ignore prefix.
    let mut want: BTreeSet<&str> = new_functions.into_iter().collect();
    want.extend(["uv_thread_detach", "uv_thread_getname", "uv_thread_setname"]);
    want.extend(["uv_tcp_keepalive_ex", "uv_udp_open_ex"]);
    assert_eq!(added, want);
    assert!(
        funcs.removed.is_empty() && funcs.changed.is_empty(),
        "{}",
        d.render()
    );
    assert!(d.section("handle types (UV_HANDLE_TYPE_MAP)").is_none());
}

/// A copy of today's include directory whose uv.h has each (old, new) replacement applied.
fn patched_include(name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uv-upgrade-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&current_include(), &dir);
    let mut text = std::fs::read_to_string(dir.join("uv.h")).unwrap();
    for (old, new) in edits {
        assert!(text.contains(old), "uv.h has no `{old}`");
        text = text.replacen(old, new, 1);
    }
    std::fs::write(dir.join("uv.h"), text).unwrap();
    dir
}

/// A simulated upgrade brings a status code, a handle type (with its init function)
/// and a function: each is an error naming the spec file to change, or for the handle
/// type also the file to create.
#[test]
fn simulated_upgrade_names_each_new_item_with_its_spec_file() {
    let include = patched_include(
        "added",
        &[
            (
                "#define UV_ERRNO_MAP(XX)",
                "#define UV__EFAKE (-4999)\n#define UV_ERRNO_MAP(XX) XX(EFAKE, \"fake error\")",
            ),
            (
                "#define UV_HANDLE_TYPE_MAP(XX)",
                "#define UV_HANDLE_TYPE_MAP(XX) XX(FAKE, fake)",
            ),
            (
                "typedef struct uv_timer_s uv_timer_t;",
                "typedef struct uv_timer_s uv_timer_t;\ntypedef struct uv_timer_s uv_fake_t;",
            ),
            (
                "UV_EXTERN int uv_timer_init(uv_loop_t*, uv_timer_t* handle);",
                "UV_EXTERN int uv_timer_init(uv_loop_t*, uv_timer_t* handle);\n\
                 UV_EXTERN int uv_fake_init(uv_loop_t*, uv_fake_t* handle);\n\
                 UV_EXTERN int uv_frobnicate(uv_loop_t* loop, unsigned int level);",
            ),
        ],
    );
    let now = HeaderModel::read(&current_include()).unwrap();
    let new = HeaderModel::read(&include).unwrap();
    let spec = spec();
    assert!(errors(&spec, &now).is_empty());
    let errs = errors(&spec, &new);
    assert_exactly(
        &errs,
        &[
            "spec/status_codes.toml:1:1: error: uv.h has status code `UV_EFAKE`, which the spec neither covers nor ignores (hint: add [[code]] with name = \"EFAKE\"".into(),
            "spec/enums/handle_type.toml:1:1: error: uv.h has `UV_FAKE` in `uv_handle_type`, which the spec neither covers nor ignores (hint: add [[member]] with c = \"UV_FAKE\" to spec/enums/handle_type.toml".into(),
            "spec/handles/fake.toml:1:1: error: uv.h has handle type `UV_FAKE` (UV_HANDLE_TYPE_MAP), which no spec/handles file wraps (hint: create spec/handles/fake.toml with type_tag = \"UV_FAKE\" and c_type = \"uv_fake_t\"".into(),
            "spec/functions.toml:1:1: error: uv.h declares `uv_fake_init`, which no spec file binds or classifies (hint: add to spec/functions.toml: [[function]] c = \"uv_fake_init\"".into(),
            "spec/functions.toml:1:1: error: uv.h declares `uv_frobnicate`, which no spec file binds or classifies (hint: add to spec/functions.toml: [[function]] c = \"uv_frobnicate\"".into(),
        ],
    );
    // The report shows each gap as missing.
    let report = check(&uv_codegen::resolve(&spec).unwrap(), &new);
    let funcs = report.section("functions").unwrap();
    let missing: Vec<&str> = funcs
        .items
        .iter()
        .filter(|(_, c)| *c == uv_codegen::Coverage::Missing)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(missing, ["uv_fake_init", "uv_frobnicate"]);
    assert_eq!(
        report
            .section("handle wrappers (spec/handles)")
            .unwrap()
            .missing(),
        1
    );

    // diff on the same pair: exactly the added items.
    let d = diff(&now, &new);
    let titles: Vec<&str> = d.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "status codes (uv_errno_t)",
            "handle types (UV_HANDLE_TYPE_MAP)",
            "functions",
            "types"
        ],
        "{}",
        d.render()
    );
    assert_eq!(d.sections[0].added, ["UV_EFAKE"]);
    assert_eq!(d.sections[1].added, ["UV_FAKE"]);
    assert_eq!(
        d.sections[2].added,
        [
            "uv_fake_init(*mut uv_loop_t, *mut uv_fake_t) -> c_int",
            "uv_frobnicate(*mut uv_loop_t, c_uint) -> c_int"
        ]
    );
    assert_eq!(d.sections[3].added, ["uv_fake_t"]);
    assert!(d
        .sections
        .iter()
        .all(|s| s.removed.is_empty() && s.changed.is_empty()));
    let _ = std::fs::remove_dir_all(include);
}

/// A removed function and a changed signature: `diff` lists them, and the check
/// names the spec lines that use them.
#[test]
fn removed_and_changed_functions_are_named_by_diff_and_check() {
    let include = patched_include(
        "removed",
        &[
            ("UV_EXTERN void uv_sleep(unsigned int msec);", ""),
            (
                "UV_EXTERN void uv_timer_set_repeat(uv_timer_t* handle, uint64_t repeat);",
                "UV_EXTERN void uv_timer_set_repeat(uv_timer_t* handle, unsigned int repeat);",
            ),
        ],
    );
    let now = HeaderModel::read(&current_include()).unwrap();
    let new = HeaderModel::read(&include).unwrap();
    let d = diff(&now, &new);
    assert_eq!(d.sections.len(), 1, "{}", d.render());
    let f = d.section("functions").unwrap();
    assert!(f.added.is_empty());
    assert_eq!(f.removed, ["uv_sleep"]);
    assert_eq!(
        f.changed,
        [(
            "uv_timer_set_repeat".to_string(),
            "(*mut uv_timer_t, u64)".to_string(),
            "(*mut uv_timer_t, c_uint)".to_string()
        )]
    );
    let errs = errors(&spec(), &new);
    assert_exactly(
        &errs,
        &[
            format!(
                "{}: error: `uv_sleep` matches no function of uv.h",
                at("spec/functions.toml", "c = \"uv_sleep\"")
            ),
            format!(
                "{}: error: argument `repeat` of `uv_timer_set_repeat` is `c_uint` in uv.h",
                at_after(
                    "spec/handles/timer.toml",
                    "set = \"uv_timer_set_repeat\"",
                    "conv = \"duration_ms\""
                )
            ),
        ],
    );
    let _ = std::fs::remove_dir_all(include);
}

/// Every `manual` entry of spec/functions.toml names a source file that exists.
#[test]
fn manual_entries_name_existing_source_files() {
    let spec = spec();
    let mut n = 0;
    for f in &spec.functions {
        if f.status != uv_codegen::spec::FunctionStatus::Manual {
            continue;
        }
        let files: Vec<&str> = f
            .reason
            .split(|c: char| c.is_whitespace() || "(),;:`\"".contains(c))
            .filter(|w| w.ends_with(".rs"))
            .collect();
        assert!(!files.is_empty(), "{}: {}", f.c.value, f.reason);
        for file in files {
            assert!(
                root().join(file).is_file(),
                "{}: {file} does not exist",
                f.c.value
            );
        }
        n += 1;
    }
    assert!(n > 40, "{n}");
}

/// Today's headers: every function and handle type is accounted for, the abstract
/// handle types once (by the runtime core), the unbound ones as todo.
#[test]
fn todays_headers_are_classified_without_gaps() {
    use uv_codegen::Coverage;
    let spec = spec();
    let report = check(
        &uv_codegen::resolve(&spec).unwrap(),
        &HeaderModel::read(&current_include()).unwrap(),
    );
    assert!(report.is_ok(), "{}", report.render(false));
    let wrappers = report.section("handle wrappers (spec/handles)").unwrap();
    let cov = |name: &str| {
        wrappers
            .items
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
            .unwrap()
    };
    assert!(matches!(cov("UV_HANDLE"), Coverage::Manual(r) if r.contains("uv/src/handle.rs")));
    assert!(matches!(cov("UV_STREAM"), Coverage::Manual(r) if r.contains("uv/src/stream.rs")));
    for t in ["UV_TIMER", "UV_FS_EVENT", "UV_FS_POLL", "UV_PROCESS"] {
        assert_eq!(cov(t), Coverage::Covered, "{t}");
    }
    // Every handle type is wrapped, abstract or todo; none is missing.
    assert_eq!(wrappers.missing(), 0);
    assert_eq!(
        wrappers.covered() + wrappers.todo(),
        wrappers.items.len(),
        "{:?}",
        wrappers.items
    );
    let funcs = report.section("functions").unwrap();
    assert_eq!(funcs.missing(), 0);
    assert_eq!(
        funcs.covered() + funcs.ignored() + funcs.todo(),
        funcs.items.len()
    );
    // Every function of today's headers is bound or classified: none is todo.
    assert_eq!(funcs.todo(), 0, "{}", report.render(false));
    // A bound handle type's functions are covered.
    assert!(funcs
        .items
        .iter()
        .any(|(n, c)| n == "uv_fs_poll_start" && *c == Coverage::Covered));
}

fn spec_copy(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uv-upgrade-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root().join("spec"), &dir);
    dir
}

/// A function is classified in one place, a manual entry says where, and a handle
/// type's todo prefix goes once its handle file exists.
#[test]
fn classification_in_one_place_is_enforced() {
    let dir = spec_copy("one-place");
    let functions = std::fs::read_to_string(dir.join("functions.toml")).unwrap();
    let functions = functions.replacen(
        "manual = \"LoopHandle::now (uv/src/loop_.rs)\"",
        "manual = \"LoopHandle::now\"",
        1,
    ) + "\n[[function]]\nc = \"uv_timer_start\"\nmanual = \"twice (uv/src/handle.rs)\"\n\n[[function]]\nc = \"uv_run\"\nignore = \"twice\"\n\n[[function]]\nc = \"uv_idle_*\"\ntodo = \"stale: spec/handles/idle.toml wraps it\"\n";
    std::fs::write(dir.join("functions.toml"), &functions).unwrap();
    let spec = load_spec(&dir, Path::new("spec")).unwrap().0;
    let errs = errors(&spec, &HeaderModel::read(&current_include()).unwrap());
    let line_of = |needle: &str| functions.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let lines: Vec<&str> = functions.lines().collect();
    let last = |needle: &str| lines.iter().rposition(|l| *l == needle).unwrap() + 1;
    assert_exactly(
        &errs,
        &[
            format!(
                "spec/functions.toml:{}:5: error: `UV_IDLE` is wrapped by spec/handles/idle.toml; this todo entry for its functions is stale",
                line_of("c = \"uv_idle_*\"")
            ),
            format!(
                "spec/functions.toml:{}:5: error: the manual entry for `uv_now` does not say where it is bound",
                line_of("c = \"uv_now\"")
            ),
            format!(
                "spec/functions.toml:{}:5: error: `uv_timer_start` is bound by {}; this entry classifies it a second time",
                last("c = \"uv_timer_start\""),
                at("spec/handles/timer.toml", "c = \"uv_timer_start\"")
            ),
            format!(
                "spec/functions.toml:{}:5: error: `uv_run` is already classified at spec/functions.toml:{}:5",
                last("c = \"uv_run\""),
                line_of("c = \"uv_run\"")
            ),
        ],
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The value `name` has in libuv's `uv-common.h` (a line `  NAME = 0x...,` of its
/// flag enums), or `None` when the header does not define it.
fn uv_common_flag(header: &str, name: &str) -> Option<u32> {
    header.lines().find_map(|line| {
        let (lhs, rhs) = line.trim().split_once('=')?;
        if lhs.trim() != name {
            return None;
        }
        let value = rhs.trim().trim_end_matches(',').trim();
        u32::from_str_radix(value.strip_prefix("0x")?, 16).ok()
    })
}

/// The libuv internal flags the runtime reads or writes in handles' `flags`
/// (`uv::runtime::LIBUV_INTERNAL_FLAGS`) have the values the vendored libuv's
/// `src/uv-common.h` gives them: a libuv upgrade that moves one (they are not
/// API) fails here instead of making the runtime read or set the wrong mark.
#[test]
fn the_libuv_internal_flags_the_runtime_uses_match_uv_common_h() {
    let path = current_include().join("../src/uv-common.h");
    let header =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(uv::runtime::LIBUV_INTERNAL_FLAGS.len() >= 3);
    for &(name, value) in uv::runtime::LIBUV_INTERNAL_FLAGS {
        assert_eq!(
            uv_common_flag(&header, name),
            Some(value),
            "{name}: the runtime uses {value:#x}; see {} and uv/src/libuv_flags.rs",
            path.display()
        );
    }
    // The reader itself: a flag the header has, one it does not.
    assert_eq!(uv_common_flag(&header, "UV_HANDLE_CLOSING"), Some(0x1));
    assert_eq!(uv_common_flag(&header, "UV_HANDLE_NOT_A_FLAG"), None);
}
