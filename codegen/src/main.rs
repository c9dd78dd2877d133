//! `uv-codegen`: the generator's command line.
//!
//! ```text
//! uv-codegen check  [--spec DIR] [--include DIR] [--list]   coverage report; exit 1 on gaps
//! uv-codegen expand --out DIR [--spec DIR]                   write the generated Rust for reading
//! uv-codegen diff   --from DIR --to DIR                       what changed between two uv.h
//! uv-codegen help                                             this usage (also -h, --help)
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use uv_codegen::{check, diff, emit, generate_core, headers, load_spec, resolve, Ctx, HeaderModel};

const USAGE: &str = "usage:
  uv-codegen help (or -h, --help)
      Prints this usage.
  uv-codegen check  [--spec DIR] [--include DIR] [--list]
      Cross-checks the spec against the libuv headers and prints the coverage table.
      Exits 1 when the headers hold a status code, handle type, request type, enum
      member or function that the spec does not account for (covered, manual,
      ignored or todo), or when the spec names something the headers lack.
      --list also lists manual, ignored and todo items.
  uv-codegen expand --out DIR [--spec DIR]
      Writes the generated Rust (status codes, errors, enums, one file per handle
      type in handles/ and per generated request type in requests/).
  uv-codegen diff --from DIR --to DIR
      Compares two libuv include directories (each holding uv.h) and prints what
      changed: status codes, handle and request types, enums and their members,
      functions and callback types added, removed or with a new signature, type
      names and other constants. Exits 0; the spec is not read.

  --spec DIR     the spec directory (default: ./spec, else the workspace's spec/)
  --include DIR  the libuv include directory (default: the one libuv-sys2 builds with)";

struct Args {
    cmd: String,
    spec: Option<PathBuf>,
    include: Option<PathBuf>,
    out: Option<PathBuf>,
    from: Option<PathBuf>,
    to: Option<PathBuf>,
    list: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().ok_or("no command given")?;
    let mut a = Args {
        cmd,
        spec: None,
        include: None,
        out: None,
        from: None,
        to: None,
        list: false,
    };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .map(PathBuf::from)
                .ok_or(format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--spec" => a.spec = Some(value("--spec")?),
            "--include" => a.include = Some(value("--include")?),
            "--out" => a.out = Some(value("--out")?),
            "--from" => a.from = Some(value("--from")?),
            "--to" => a.to = Some(value("--to")?),
            "--list" => a.list = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    match a.cmd.as_str() {
        "check" => {}
        "expand" if a.out.is_none() => return Err("expand needs --out DIR".into()),
        "diff" if a.from.is_none() => return Err("diff needs --from DIR".into()),
        "diff" if a.to.is_none() => return Err("diff needs --to DIR".into()),
        "expand" | "diff" => {}
        other => return Err(format!("unknown command `{other}`")),
    }
    Ok(a)
}

fn spec_dir(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        let here = PathBuf::from("spec");
        if here.join("status_codes.toml").is_file() {
            here
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("spec")
        }
    })
}

fn run(args: Args) -> Result<bool, String> {
    if args.cmd == "diff" {
        let from = args.from.ok_or("diff needs --from DIR")?;
        let to = args.to.ok_or("diff needs --to DIR")?;
        let old = HeaderModel::read(&from)?;
        let new = HeaderModel::read(&to)?;
        println!("from: {}\nto:   {}", from.display(), to.display());
        print!("{}", diff::diff(&old, &new).render());
        return Ok(true);
    }
    let spec_path = spec_dir(args.spec.clone());
    let t0 = Instant::now();
    let (spec, _) = load_spec(&spec_path, &spec_path).map_err(|d| d.to_string())?;
    let resolved = resolve(&spec).map_err(|d| d.to_string())?;
    let t_spec = t0.elapsed();
    match args.cmd.as_str() {
        "check" => {
            let include = args
                .include
                .or_else(headers::default_include_dir)
                .ok_or("no libuv include directory known; pass --include DIR")?;
            let t1 = Instant::now();
            let model = HeaderModel::read(&include)?;
            let t_headers = t1.elapsed();
            let t2 = Instant::now();
            let report = check(&resolved, &model);
            let t_check = t2.elapsed();
            let t3 = Instant::now();
            for f in generate_core(&spec, &spec_path, &Ctx::default()) {
                f.render()
                    .map_err(|e| format!("formatting {}: {e}", f.name))?;
            }
            for h in resolved.handles.iter().filter(|h| h.spec.manual.is_none()) {
                let toks = emit::handle(h, &Ctx::default()).map_err(|d| d.to_string())?;
                emit::render(toks, "").map_err(|e| e.to_string())?;
            }
            for r in &resolved.requests {
                let toks = emit::request(r, &Ctx::default()).map_err(|d| d.to_string())?;
                emit::render(toks, "").map_err(|e| e.to_string())?;
            }
            let t_emit = t3.elapsed();
            println!("headers: {}", include.display());
            print!("{}", report.render(args.list));
            eprintln!(
                "generator time: spec {:.3}s, headers (bindgen + parse) {:.3}s, check {:.3}s, emit {:.3}s, total {:.3}s",
                t_spec.as_secs_f64(),
                t_headers.as_secs_f64(),
                t_check.as_secs_f64(),
                t_emit.as_secs_f64(),
                t0.elapsed().as_secs_f64()
            );
            Ok(report.is_ok())
        }
        "expand" => {
            let out = args.out.ok_or("expand needs --out DIR")?;
            std::fs::create_dir_all(out.join("handles"))
                .map_err(|e| format!("{}: {e}", out.display()))?;
            let ctx = Ctx::default();
            let mut written = Vec::new();
            for f in generate_core(&spec, &spec_path, &ctx) {
                let text = f
                    .render()
                    .map_err(|e| format!("formatting {}: {e}", f.name))?;
                let p = out.join(&f.name);
                std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
                written.push(p);
            }
            for h in resolved.handles.iter().filter(|h| h.spec.manual.is_none()) {
                let toks = emit::handle(h, &ctx).map_err(|d| d.to_string())?;
                let source = h.spec.loc.file.path.display().to_string();
                let text = emit::render(toks, &source).map_err(|e| e.to_string())?;
                let p = out.join("handles").join(&h.file);
                std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
                written.push(p);
            }
            std::fs::create_dir_all(out.join("requests"))
                .map_err(|e| format!("{}: {e}", out.display()))?;
            for r in resolved.requests.iter().filter(|r| r.generated) {
                let toks = emit::request(r, &ctx).map_err(|d| d.to_string())?;
                let source = r.spec.loc.file.path.display().to_string();
                let text = emit::render(toks, &source).map_err(|e| e.to_string())?;
                let p = out
                    .join("requests")
                    .join(uv_codegen::names::handle_file(&r.spec.name));
                std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
                written.push(p);
            }
            for p in written {
                println!("wrote {}", p.display());
            }
            Ok(true)
        }
        other => Err(format!("unknown command `{other}`")),
    }
}

/// `help`, `-h` or `--help` anywhere: the usage on stdout, and success.
fn asks_for_help() -> bool {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    first.as_deref() == Some("help")
        || first
            .into_iter()
            .chain(args)
            .any(|a| a == "-h" || a == "--help")
}

fn main() -> ExitCode {
    if asks_for_help() {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            // Spec diagnostics come as `file:line:col: error: ...` already.
            if e.contains(": error: ") {
                eprintln!("{e}");
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(2)
        }
    }
}
