//! The extension path: this crate declares its own handle type, `Heartbeat`, from
//! its own spec file (`tests/spec/heartbeat.toml`) through `uv::handle!`, with no
//! hand-written FFI, and uses it like one of uv's own.

use std::cell::Cell;
use std::rc::Rc;

use uv::{Category, HandleType, Loop, RunMode};

uv::handle!("spec/heartbeat.toml");

const BEATS: usize = 5;

/// Starts `hb` with a callback that counts beats in `beats` and ends the
/// heartbeat from inside the callback after exactly `BEATS`.
fn begin_counting(hb: &Heartbeat, beats: &Rc<Cell<usize>>) {
    let b = beats.clone();
    hb.begin(move |h| {
        b.set(b.get() + 1);
        if b.get() == BEATS {
            h.end().unwrap();
        }
    })
    .unwrap();
}

#[test]
fn heartbeat_beats_five_times_then_closes() {
    let lp = Loop::new().unwrap();
    let hb = Heartbeat::new(&lp).unwrap();
    // Deref to uv::Handle: the methods every handle has.
    let base: &uv::Handle = &hb;
    assert_eq!(base.handle_type(), HandleType::Idle);
    assert!(!hb.is_active());
    assert!(!hb.is_closing());

    let beats = Rc::new(Cell::new(0));
    begin_counting(&hb, &beats);
    assert!(hb.is_active());
    assert!(hb.has_ref());

    // The loop sees it, and the type-erased handle downcasts back to it, and to
    // nothing else (uv's own Idle wraps the same C type).
    let handles = lp.handles();
    assert_eq!(handles.len(), 1);
    assert_eq!(handles[0].handle_type(), HandleType::Idle);
    let back = handles[0]
        .downcast::<Heartbeat>()
        .expect("downcast to Heartbeat");
    assert!(handles[0].downcast::<uv::Idle>().is_none());
    assert!(handles[0].downcast::<uv::Timer>().is_none());
    assert_eq!(*back, *hb);
    assert!(back.is_active());
    drop(back);
    drop(handles);

    // From<Heartbeat> for uv::Handle.
    let erased: uv::Handle = hb.clone().into();
    assert_eq!(erased, *hb);
    drop(erased);

    // The run ends once the heartbeat ended itself: nothing else keeps the loop alive.
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(beats.get(), BEATS);
    assert!(!hb.is_active());
    assert!(!hb.is_closing());
    assert_eq!(hb.handle_type(), HandleType::Idle);
    // Ending again is fine.
    hb.end().unwrap();

    hb.close();
    assert!(hb.is_closing());
    assert!(lp.handles().is_empty());
    lp.run(RunMode::Default).unwrap();
    assert!(hb.is_closed());
    assert_eq!(hb.handle_type(), HandleType::Idle);
    assert_eq!(lp.handle_count(), 0);
    // Closing dropped the callback and what it held.
    assert_eq!(Rc::strong_count(&beats), 1);

    // After close: `begin` is an error, `end` (on_closed = "noop") is not.
    let err = hb.begin(|_| unreachable!()).unwrap_err();
    assert_eq!(err.kind(), Category::ClosedHandle, "{err:?}");
    assert!(err.is(Category::ClosedHandle));
    hb.end().unwrap();
    assert!(!hb.is_active());
    assert_eq!(beats.get(), BEATS);
}

#[test]
fn heartbeat_closes_from_its_own_callback() {
    let lp = Loop::new().unwrap();
    let hb = Heartbeat::new(&lp).unwrap();
    let beats = Rc::new(Cell::new(0));
    let closed = Rc::new(Cell::new(false));
    let (b, c) = (beats.clone(), closed.clone());
    hb.begin(move |h| {
        b.set(b.get() + 1);
        if b.get() == BEATS {
            h.end().unwrap();
            let c = c.clone();
            h.close_with(move |_| c.set(true));
        }
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(beats.get(), BEATS);
    assert!(closed.get());
    assert!(hb.is_closed());
    assert_eq!(hb.begin(|_| {}).unwrap_err().kind(), Category::ClosedHandle);
}

#[test]
fn dropped_active_heartbeat_keeps_beating_until_it_ends_itself() {
    let lp = Loop::new().unwrap();
    let beats = Rc::new(Cell::new(0));
    {
        let hb = Heartbeat::new(&lp).unwrap();
        begin_counting(&hb, &beats);
        // Dropped while active: the lifetime rule (keep_alive = "active") keeps it open.
    }
    assert_eq!(lp.handle_count(), 1);
    let handles = lp.handles();
    assert_eq!(handles.len(), 1);
    assert!(handles[0].is_active());
    assert!(handles[0].downcast::<Heartbeat>().is_some());
    drop(handles);

    lp.run(RunMode::Default).unwrap();
    assert_eq!(beats.get(), BEATS);
    // Once it ended itself, nothing could reach it, so it was closed (and its close
    // callback ran in the same run): the callback and its captures are gone.
    assert_eq!(lp.handle_count(), 0);
    assert!(lp.handles().is_empty());
    assert_eq!(Rc::strong_count(&beats), 1);
}

#[test]
fn dropped_stopped_heartbeat_closes() {
    let lp = Loop::new().unwrap();
    drop(Heartbeat::new(&lp).unwrap());
    // Never started: closed at once when dropped.
    assert!(lp.handles().is_empty());
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
}

/// `uv::handle!` in a crate with a build script writes the expansion, formatted, to
/// `$OUT_DIR/uv-generated/` and includes it from there: compiler messages and
/// rustdoc's source pages show this file, with its `// SAFETY:` comments.
#[test]
fn the_expansion_is_a_readable_file() {
    let path = concat!(env!("OUT_DIR"), "/uv-generated/heartbeat.rs");
    let text = std::fs::read_to_string(path).expect("the generated file");
    assert!(text.starts_with("// @generated by uv-codegen from spec/heartbeat.toml."));
    assert!(text.contains("pub struct Heartbeat {"));
    assert!(text.contains("// SAFETY: "));
    assert!(!text.contains("runtime::safety!"));
    // One item per line, as rustfmt-like formatting gives.
    assert!(text.lines().count() > 50);
}

/// A handle type whose callback is marked (`marks_delivery = true` in
/// `tests/spec/pacer.toml`), and a hook that refuses a method called from inside it.
mod pacer {
    uv::handle!("spec/pacer.toml");

    use uv::runtime::HandleKind;

    impl Pacer {
        /// Before `begin_outside`: `EBUSY` while the pacer's own callback runs.
        fn refuse_inside_pace(&self) -> uv::Result<()> {
            if self.typed().is_delivering() {
                return Err(uv::Error::new(uv::StatusCode::EBUSY, "uv_idle_start"));
            }
            Ok(())
        }

        /// Whether the pacer's marked callback is running.
        pub fn pacing(&self) -> bool {
            self.typed().is_delivering()
        }
    }
}

/// The hook of an extension type tells its marked callback apart: the method it
/// guards is refused from inside the callback and taken outside it; another
/// handle's callback in the same iteration is not marked as the pacer's; the mark
/// is gone after a callback that panicked.
#[test]
fn a_marked_callback_is_known_to_the_hooks_of_its_handle() {
    use pacer::Pacer;
    let lp = Loop::new().unwrap();
    let p = Pacer::new(&lp).unwrap();
    let other = Heartbeat::new(&lp).unwrap();
    assert!(!p.pacing());
    let answers = Rc::new(std::cell::RefCell::new(Vec::new()));
    let a = answers.clone();
    p.begin(move |h| {
        let mut a = a.borrow_mut();
        a.push(Ok(h.pacing()));
        a.push(h.begin_outside(|_| {}).map(|()| true).map_err(|e| e.code()));
        h.end().unwrap();
    })
    .unwrap();
    // The other handle's callback, in the same iteration: not marked.
    let during_other = Rc::new(Cell::new(None));
    let (d, p2) = (during_other.clone(), p.clone());
    other
        .begin(move |h| {
            d.set(Some(p2.pacing()));
            h.end().unwrap();
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(
        *answers.borrow(),
        vec![Ok(true), Err(uv::StatusCode::EBUSY)]
    );
    assert_eq!(during_other.get(), Some(false));
    assert!(!p.pacing());
    // Outside the callback the method is taken.
    p.begin_outside(|h| h.end().unwrap()).unwrap();
    assert!(p.is_active());
    lp.run(RunMode::Default).unwrap();
    assert!(!p.is_active());
    // A callback that panics: the panic comes out of `run`, and the mark is gone.
    p.begin(|_| panic!("pacing")).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run(RunMode::Once)));
    assert!(r.is_err());
    assert!(!p.pacing());
    p.end().unwrap();
    p.begin_outside(|h| h.end().unwrap()).unwrap();
    lp.run(RunMode::Default).unwrap();
    p.close();
    other.close();
    lp.run(RunMode::Default).unwrap();
}

/// The hand-written methods beside a `uv::handle!` expansion in the library use
/// the public extension surface (`HandleKind::typed`, `HandleKind::from_typed`),
/// as another crate's must: no module of `uv/src/handles/` that expands a spec
/// touches the generated struct's private `inner` field.
#[test]
fn the_library_s_own_hand_written_methods_use_the_extension_surface() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../uv/src/handles");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("handle!(") {
            continue;
        }
        checked += 1;
        for (n, line) in text.lines().enumerate() {
            let private =
                line.contains(".inner.") || line.contains(".inner)") || line.contains("{ inner }");
            assert!(!private, "{}:{}: {}", path.display(), n + 1, line.trim());
        }
    }
    assert!(checked >= 14, "only {checked} handle modules found");
}
