//! Arbitrary bytes ingested as an operation by a replica of a small group: never panics,
//! and a refused operation leaves the replica exactly as it was.
#![no_main]

#[path = "../../proptests/support/group.rs"]
#[allow(dead_code)]
mod group;

use group::{bundle, found, identity, T0};
use libfuzzer_sys::fuzz_target;
use splitsafe::group::Replica;
use std::sync::OnceLock;

fn base() -> &'static Replica {
    static BASE: OnceLock<Replica> = OnceLock::new();
    BASE.get_or_init(|| {
        let (mut replica, _, founder) = found();
        replica
            .add(&founder, bundle(&identity(1), 1, T0), T0 + 1)
            .unwrap();
        replica
    })
}

fuzz_target!(|bytes: &[u8]| {
    let mut replica = base().clone();
    let before = replica.save();
    if replica.ingest_bytes(bytes, T0 + 10).is_err() {
        assert_eq!(replica.save(), before, "a refused op changed the replica");
    }
});
