//! Panics that tests provoke on purpose, kept quiet: their payload is a
//! [`Provoked`], for which the panic hook prints nothing.

use std::sync::Once;

/// The payload of the panics tests provoke.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Provoked(pub &'static str);

/// Installs, once for the test binary, a panic hook that prints nothing for a
/// `Provoked` payload and hands every other panic to the hook it replaces. It is
/// never removed: tests run in parallel and the hook is process-wide. (Printing
/// costs time in the loop thread; some tests need their panics cheap.)
pub fn quiet_provoked_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Provoked>() {
                previous(info);
            }
        }));
    });
}

/// Panics with `Provoked(name)`.
pub fn provoke(name: &'static str) -> ! {
    std::panic::panic_any(Provoked(name))
}

/// What a caught panic carried: the `Provoked` name, or `None`.
pub fn provoked(p: &(dyn std::any::Any + Send)) -> Option<&'static str> {
    p.downcast_ref::<Provoked>().map(|p| p.0)
}

/// A value whose `Drop` panics with `Provoked(name)` (a closure's capture, to
/// test that the library drops it where such a panic cannot unwind into C).
#[derive(Debug)]
pub struct PanicOnDrop(pub &'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        provoke(self.0);
    }
}

/// A waker of the user's whose wake panics with `Provoked("wake")`; the field
/// counts its wakes.
#[derive(Debug, Default)]
pub struct PanickingWake(pub std::sync::atomic::AtomicUsize);

impl std::task::Wake for PanickingWake {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        provoke("wake");
    }
}

/// Runs `lp` once in `Default` mode; the `Provoked` name of the panic `run`
/// resumed, if any (any other panic, or an error, fails the test).
pub fn run_catching(lp: &uv::Loop) -> Option<&'static str> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lp.run(uv::RunMode::Default)
    })) {
        Ok(r) => {
            r.unwrap();
            None
        }
        Err(p) => Some(provoked(&*p).expect("a provoked panic")),
    }
}

/// Runs `lp` (`RunMode::Default`) until nothing keeps it alive, resuming it after
/// each panic `run` resumed; what `name` makes of each panic, in order (an error
/// of `run` fails the test).
pub fn run_collecting_with<T>(
    lp: &uv::Loop,
    name: impl Fn(&(dyn std::any::Any + Send)) -> T,
) -> Vec<T> {
    let mut panics = Vec::new();
    loop {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lp.run(uv::RunMode::Default)
        })) {
            Ok(r) => {
                if !r.unwrap() {
                    return panics;
                }
            }
            Err(p) => panics.push(name(&*p)),
        }
    }
}

/// [`run_collecting_with`] for `Provoked` panics: their names (any other panic
/// fails the test). Provoked panics are not printed from then on.
pub fn run_collecting(lp: &uv::Loop) -> Vec<&'static str> {
    quiet_provoked_panics();
    run_collecting_with(lp, |p| provoked(p).expect("a provoked panic"))
}

/// [`run_catching`] with `RunMode::NoWait`.
pub fn run_nowait_catching(lp: &uv::Loop) -> Option<&'static str> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lp.run(uv::RunMode::NoWait))) {
        Ok(r) => {
            r.unwrap();
            None
        }
        Err(p) => Some(provoked(&*p).expect("a provoked panic")),
    }
}

/// A waker that counts its wakes, the first `panics` of which panic with
/// `Provoked("wake")`.
#[derive(Debug)]
pub struct FlakyWake {
    wakes: std::sync::atomic::AtomicUsize,
    panics: usize,
}

impl FlakyWake {
    /// A waker whose first `panics` wakes panic.
    pub fn panicking_first(panics: usize) -> std::sync::Arc<FlakyWake> {
        std::sync::Arc::new(FlakyWake {
            wakes: std::sync::atomic::AtomicUsize::new(0),
            panics,
        })
    }

    /// [`FlakyWake::panicking_first`], with a `Waker` of it.
    pub fn with_waker(panics: usize) -> (std::sync::Arc<FlakyWake>, std::task::Waker) {
        let f = FlakyWake::panicking_first(panics);
        (f.clone(), std::task::Waker::from(f))
    }

    /// Wakes so far (panicking ones included).
    pub fn wakes(&self) -> usize {
        self.wakes.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl std::task::Wake for FlakyWake {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        if self.wakes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < self.panics {
            provoke("wake");
        }
    }
}

/// A waker whose every wake panics with `Provoked("wake")`, and the drop of its
/// last reference with `Provoked("waker drop")`.
#[derive(Debug)]
pub struct WakeAndDropPanic;

impl std::task::Wake for WakeAndDropPanic {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        provoke("wake");
    }
}

impl Drop for WakeAndDropPanic {
    fn drop(&mut self) {
        provoke("waker drop");
    }
}

/// Polls `f` once with `w`.
pub fn poll_once<F: std::future::Future + Unpin>(
    f: &mut F,
    w: &std::task::Waker,
) -> std::task::Poll<F::Output> {
    std::pin::Pin::new(f).poll(&mut std::task::Context::from_waker(w))
}

/// Polls the stream `s` once with `w`.
pub fn poll_next<S: futures::Stream + Unpin>(
    s: &mut S,
    w: &std::task::Waker,
) -> std::task::Poll<Option<S::Item>> {
    std::pin::Pin::new(s).poll_next(&mut std::task::Context::from_waker(w))
}

/// What `f` panicked with (its `Provoked` name), or `None` when it returned (any
/// other panic fails the test).
pub fn panic_of<R>(f: impl FnOnce() -> R) -> Option<&'static str> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(_) => None,
        Err(p) => Some(provoked(&*p).expect("a provoked panic")),
    }
}
