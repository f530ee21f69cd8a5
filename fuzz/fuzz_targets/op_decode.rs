//! Arbitrary bytes ingested as an operation by a replica of a small group: never panics,
//! a refused operation leaves the replica exactly as it was, and bytes that decode as an
//! operation are exactly its deterministic encoding. The same bytes read as a stored
//! operation never panic either, and what reads is its stored form.
#![no_main]

#[path = "../../proptests/support/group.rs"]
#[allow(dead_code)]
mod group;

use group::{bundle, found, identity, T0};
use libfuzzer_sys::fuzz_target;
use splitsafe::group::{Replica, SignedOp};
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
    if let Ok(op) = SignedOp::from_cbor(bytes) {
        assert_eq!(
            op.to_cbor(),
            bytes,
            "accepted bytes are the deterministic encoding"
        );
    }
    // Behind the domain, the bytes reach the stored form's own reader.
    let stored = [splitsafe::group::Op::DOMAIN.as_slice(), bytes].concat();
    if let Ok(op) = SignedOp::from_stored(&stored) {
        assert_eq!(op.to_stored(), stored, "a stored form reads back as itself");
    }
    let mut replica = base().clone();
    let before = replica.save();
    if replica.ingest_bytes(bytes, T0 + 10).is_err() {
        assert_eq!(replica.save(), before, "a refused op changed the replica");
    }
});
