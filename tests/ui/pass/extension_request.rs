// A request spec of another crate, expanded by `uv::request!`: the three forms of
// each method (callback, future, blocking) compile against the public runtime and
// run. The path climbs back to the workspace as in `../bad_spec.rs`.
uv::request!("../../../../tests/ui/pass/specs/req/lookup.toml");

fn main() {
    let lp = uv::Loop::new().unwrap();
    let dir = std::env::temp_dir().join(format!("uv-ui-lookup-{}", std::process::id()));
    std::fs::write(&dir, b"12345").unwrap();
    assert_eq!(Lookup::stat_sync(&lp, &dir).unwrap().size, 5);
    let got = std::rc::Rc::new(std::cell::Cell::new(None));
    let g = got.clone();
    let _req = Lookup::stat(&lp, &dir, move |r| g.set(Some(r.map(|s| s.size)))).unwrap();
    lp.run(uv::RunMode::Default).unwrap();
    assert_eq!(got.take(), Some(Ok(5)));
    let removed = lp.block_on(Lookup::remove_async(&lp, &dir)).unwrap();
    assert_eq!(removed, Ok(()));
    assert_eq!(
        Lookup::stat_sync(&lp, &dir).unwrap_err().code(),
        uv::StatusCode::ENOENT
    );
}
