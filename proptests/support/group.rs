//! Identities, bundles and groups for the membership tests.

use splitsafe::clock::Timestamp;
use splitsafe::group::{Replica, ReplicaConfig, SignedOp};
use splitsafe::keys::{EncryptionKey, Identity, KeyBundle};

/// 2026-11-26 12:00:00 UTC: all test times are offsets from it.
pub const T0: u64 = 1_795_694_400_000;

/// The `n`th test identity (deterministic).
pub fn identity(n: u8) -> Identity {
    Identity::from_secret_bytes([n.wrapping_add(1); 32])
}

/// A bundle of `who`'s with encryption key filled with `key`, made at `at_ms`.
pub fn bundle(who: &Identity, key: u8, at_ms: u64) -> KeyBundle {
    who.bundle(EncryptionKey([key; 32]), Timestamp::from_physical(at_ms))
}

/// A group founded by identity 0 at `T0`; returns the founder's replica and the genesis.
pub fn found() -> (Replica, SignedOp, Identity) {
    let founder = identity(0);
    let (replica, genesis) = Replica::create(
        &founder,
        bundle(&founder, 0, T0),
        [0; 16],
        ReplicaConfig::default(),
        T0,
    )
    .expect("a fresh founder can create a group");
    (replica, genesis, founder)
}
