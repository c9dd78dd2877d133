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
