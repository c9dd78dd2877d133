//! Handles have identity (`PartialEq`/`Eq`/`Hash` by the handle they refer to), and
//! `WriteData` takes `Arc<[u8]>` and `bytes::Bytes` without a copy.

#![cfg(unix)]

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;

use uv::{Handle, Idle, Loop, RunMode, Stream, Tcp, Timer};
use uv_tests::net::tcp_pair;

#[test]
fn handles_compare_and_hash_by_identity() {
    let lp = Loop::new().unwrap();
    let a = Timer::new(&lp).unwrap();
    let b = Timer::new(&lp).unwrap();
    let a2 = a.clone();
    assert_eq!(a, a2);
    assert_ne!(a, b);

    let mut set = HashSet::new();
    assert!(set.insert(a.clone()));
    assert!(set.insert(b.clone()));
    assert!(!set.insert(a2.clone()), "a clone is the same handle");
    assert_eq!(set.len(), 2);

    // The type-erased handle hashes like the typed one's identity.
    let mut by_handle: HashMap<Handle, &str> = HashMap::new();
    by_handle.insert(a.clone().into(), "a");
    by_handle.insert(b.clone().into(), "b");
    let i = Idle::new(&lp).unwrap();
    by_handle.insert(i.clone().into(), "idle");
    assert_eq!(by_handle[&Handle::from(a2)], "a");
    assert_eq!(by_handle[&Handle::from(b.clone())], "b");
    assert_eq!(by_handle.len(), 3);
    // Found again among the loop's handles.
    let all: HashSet<Handle> = lp.handles().into_iter().collect();
    assert!(all.contains(&Handle::from(i.clone())));
    assert_eq!(all.len(), 3);

    for h in [a, b] {
        h.close();
    }
    i.close();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn shared_and_bytes_data_are_written_as_given() {
    let (ours, mut theirs) = tcp_pair();
    let lp = Loop::new().unwrap();
    let tcp = Tcp::try_from((&lp.handle(), ours)).unwrap();
    let shared: Arc<[u8]> = Arc::from(&b"arc;"[..]);
    let bytes = bytes::Bytes::from_static(b"bytes;");
    let sliced = bytes::Bytes::from(b"0123456789".to_vec()).slice(2..5);
    // The same Arc twice: no copy, both writes done.
    tcp.write(shared.clone(), |_, r| r.unwrap()).unwrap();
    tcp.write(shared.clone(), |_, r| r.unwrap()).unwrap();
    tcp.write(bytes, |_, r| r.unwrap()).unwrap();
    tcp.write(sliced, |t, r| {
        r.unwrap();
        t.close();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    // Only this test's references are left once the writes are done.
    assert_eq!(Arc::strong_count(&shared), 1);
    let mut got = Vec::new();
    theirs.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"arc;arc;bytes;234");
}
