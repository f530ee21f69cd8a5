//! Strategies and helpers shared by the property-test targets.
#![allow(dead_code)] // each test target uses its own part of this module

pub mod crdts_oracle;
pub mod crypto;
pub mod device;
pub mod forge;
pub mod group;
pub mod process;
pub mod snapshot;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use splitsafe::lww::{Action, LwwSet, Op};

/// The configuration of every property test here: the default case count (so the
/// `PROPTEST_CASES` environment variable scales a run), and failing seeds saved beside the
/// test file as `<name>.proptest-regressions`, to be committed and replayed first.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// [`config`] with a smaller default case count, for properties whose cases are costly
/// (signing and verifying dozens of operations); `PROPTEST_CASES` still overrides it.
pub fn config_with_cases(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig { cases, ..config() }
}

/// The operation and set types the LWW properties are stated over.
pub type TestOp = Op<u8, u32>;
/// See [`TestOp`].
pub type TestSet = LwwSet<u8, u32>;

/// Elements are drawn from a small alphabet so operations collide on the same element often.
pub const ALPHABET: u8 = 8;

pub fn action() -> impl Strategy<Value = Action> {
    prop_oneof![Just(Action::Insert), Just(Action::Remove)]
}

/// Operations with pairwise distinct stamps (1..=200), so no two of them conflict.
pub fn unique_ops(max: usize) -> impl Strategy<Value = Vec<TestOp>> {
    proptest::collection::btree_map(1u32..=200, (0..ALPHABET, action()), 0..max).prop_map(
        |by_stamp| {
            by_stamp
                .into_iter()
                .map(|(stamp, (element, action))| Op {
                    element,
                    stamp,
                    action,
                })
                .collect()
        },
    )
}

/// `k` replicas, each built from a random subset of one pool of conflict-free operations,
/// with the subsets they were built from.
pub fn replicas(k: usize) -> impl Strategy<Value = (Vec<Vec<TestOp>>, Vec<TestSet>)> {
    unique_ops(40).prop_flat_map(move |pool| {
        let n = pool.len();
        let masks = proptest::collection::vec(proptest::collection::vec(any::<bool>(), n), k);
        (Just(pool), masks).prop_map(|(pool, masks)| {
            let subsets: Vec<Vec<_>> = masks
                .iter()
                .map(|mask| {
                    pool.iter()
                        .zip(mask)
                        .filter(|(_, keep)| **keep)
                        .map(|(op, _)| op.clone())
                        .collect()
                })
                .collect();
            let sets = subsets
                .iter()
                .map(|ops| build(ops.iter().cloned()))
                .collect();
            (subsets, sets)
        })
    })
}

/// Applies conflict-free operations to an empty set.
pub fn build(ops: impl IntoIterator<Item = TestOp>) -> TestSet {
    let mut set = LwwSet::new();
    for op in ops {
        set.apply(op).expect("strategy yields conflict-free ops");
    }
    set
}

/// `a` merged with `b`, into a copy.
pub fn merged(a: &TestSet, b: &TestSet) -> TestSet {
    let mut out = a.clone();
    out.merge(b)
        .expect("replicas of one conflict-free pool never conflict");
    out
}

/// One operation a removed admin crafts (see [`group::Crafted`]): any chain position,
/// predecessor choice, stamp before or after its removal, body and target.
pub fn crafted_op() -> impl Strategy<Value = group::Crafted> {
    (
        1u64..5,
        0u8..3,
        0u64..2_000,
        0u8..4,
        0u8..group::DEVICES,
        any::<bool>(),
    )
        .prop_map(|(seq, prev, at, body, target, early)| group::Crafted {
            seq,
            prev,
            at,
            body,
            target,
            early,
        })
}
