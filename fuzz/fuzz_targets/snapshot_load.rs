//! Snapshots from untrusted storage: arbitrary bytes, and a genuine snapshot whose body the
//! fuzzer rewrites (with the checksum recomputed, so the body's decoder and the ingest rules
//! are reached). Loading never panics, and whatever loads reloads from its own snapshot to
//! the same view, summary, held set and quarantine.
#![no_main]

#[path = "../../proptests/support/group.rs"]
#[allow(dead_code)]
mod group;

#[path = "../../proptests/support/snapshot.rs"]
#[allow(dead_code)]
mod snapshot;

use group::{bundle, found, identity, T0};
use libfuzzer_sys::fuzz_target;
use snapshot::File;
use splitsafe::codec;
use splitsafe::group::{Replica, ReplicaConfig, SignedOp};
use std::sync::OnceLock;

fn genuine() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| {
        let (mut replica, genesis, founder) = found();
        replica
            .add(&founder, bundle(&identity(1), 1, T0), T0 + 1)
            .unwrap();
        let mut source = replica.clone();
        let (future, _) = source
            .remove(&founder, identity(1).id(), T0 + 3_600_000)
            .unwrap();
        replica.ingest(future, T0 + 10).unwrap();
        let mut stranger_side = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
        stranger_side.ingest_batch(replica.ops().cloned().collect::<Vec<SignedOp>>(), T0 + 5);
        stranger_side
            .add(&founder, bundle(&identity(9), 9, T0), T0 + 6)
            .unwrap();
        let stranger = identity(9);
        let (quarantined, _) = stranger_side
            .rotate(&stranger, bundle(&stranger, 10, T0 + 7), T0 + 7)
            .unwrap();
        replica.ingest(quarantined, T0 + 10).unwrap();
        codec::decode(&replica.save(), 1 << 20).unwrap()
    })
}

fn load(bytes: &[u8]) -> Option<Replica> {
    Replica::load(bytes, ReplicaConfig::default(), 1 << 20, T0 + 10)
        .ok()
        .map(|loaded| loaded.replica)
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let genuine = genuine();
        let mut body = genuine.body.clone();
        for (i, byte) in rest.iter().enumerate() {
            if body.is_empty() {
                break;
            }
            let at = (usize::from(mode) * 31 + i * 97) % body.len();
            body[at] ^= byte;
        }
        File::new(genuine.version, body).to_bytes()
    };
    if let Some(replica) = load(&bytes) {
        let again = load(&replica.save()).expect("a replica reloads its own snapshot");
        assert_eq!(again.view(), replica.view());
        assert_eq!(again.summary(), replica.summary());
        assert!(again.held().eq(replica.held()));
        assert!(again.quarantined().eq(replica.quarantined()));
    }
});
