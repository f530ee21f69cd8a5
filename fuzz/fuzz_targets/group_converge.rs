//! An arbitrary history of membership actions and deliveries across devices, then its
//! operations scattered over three replicas with arbitrary holes: after two sync rounds
//! between every pair, all three show the view of a replica that has every operation any
//! of them held.
#![no_main]

#[path = "../../proptests/support/group.rs"]
#[allow(dead_code)]
mod group;

use arbitrary::Arbitrary;
use group::{play, replay, Step, T0};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Steps as (kind, device, device): see `group::step_from_bytes`.
    actions: Vec<(u8, u8, u8)>,
    /// Which replicas (bits 0..3) get each operation.
    scatter: Vec<u8>,
}

fn held_ops(
    ops: &[splitsafe::group::SignedOp],
    scatter: &dyn Fn(usize) -> u8,
) -> Vec<splitsafe::group::SignedOp> {
    ops.iter()
        .enumerate()
        .filter(|(i, _)| scatter(*i) & 0b111 != 0)
        .map(|(_, op)| op.clone())
        .collect()
}

fuzz_target!(|input: Input| {
    let steps: Vec<Step> = input
        .actions
        .iter()
        .take(40)
        .map(|&(kind, a, b)| group::step_from_bytes(kind, a, b))
        .collect();
    let (genesis, ops) = play(&steps);
    let scatter = |i: usize| input.scatter.get(i).copied().unwrap_or(0xFF);
    let mut replicas: Vec<_> = (0..3)
        .map(|r| {
            let held = ops
                .iter()
                .enumerate()
                .filter(|(i, _)| scatter(*i) & (1 << r) != 0);
            replay(&genesis, held.map(|(_, op)| op))
        })
        .collect();
    for _ in 0..2 {
        for (i, j) in [(0, 1), (1, 2), (0, 2)] {
            let (left, right) = replicas.split_at_mut(j);
            group::sync_until_quiet(&mut left[i], &mut right[0], T0 + 5_000);
        }
    }
    // Every operation some replica held, and nothing else.
    let held_somewhere = ops
        .iter()
        .enumerate()
        .filter(|(i, _)| scatter(*i) & 0b111 != 0);
    let reference = replay(&genesis, held_somewhere.map(|(_, op)| op));
    for replica in &replicas {
        assert_eq!(replica.view().digest(), reference.view().digest());
    }
    // And that view is the rules' own, evaluated from scratch (every replica holds the
    // genesis it joined from).
    let mut all: Vec<_> = held_ops(&ops, &scatter);
    all.push(genesis.clone());
    assert_eq!(group::view_map(&reference), group::naive_fold(&all));
});
