//! Laws of the membership engine over random histories of concurrent adds, removes,
//! rotations, leaves and re-adds by several devices that hear from each other at random.

use crate::support;

use proptest::prelude::*;
use splitsafe::group::{Body, Replica, ReplicaConfig, SignedOp};
use splitsafe::lww::LwwSet;
use support::group::{
    bundle, check_delivery_paths, craft_all, identity, naive_fold, play, replay, sign_op,
    sync_until_quiet, view_map, Step, DEVICES, T0,
};

/// One random step; device indices below [`DEVICES`].
fn step() -> impl Strategy<Value = Step> {
    let d = 0..DEVICES;
    prop_oneof![
        3 => (d.clone(), d.clone()).prop_map(|(device, target)| Step::Add { device, target }),
        3 => (d.clone(), d.clone()).prop_map(|(device, target)| Step::Remove { device, target }),
        1 => d.clone().prop_map(|device| Step::Rotate { device }),
        2 => (d.clone(), d.clone(), any::<bool>())
            .prop_map(|(device, target, admin)| Step::Rank { device, target, admin }),
        3 => (d.clone(), d).prop_map(|(from, to)| Step::Deliver { from, to }),
    ]
}

fn history() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(step(), 1..30)
}

/// A history with a delivery order of its operations: each at least once, some twice.
fn history_and_order() -> impl Strategy<Value = (Vec<Step>, Vec<usize>)> {
    history().prop_flat_map(|steps| {
        let n = play(&steps).1.len();
        let order = proptest::collection::vec(0..n, 0..n)
            .prop_map(move |extra| (0..n).chain(extra).collect::<Vec<_>>())
            .prop_shuffle();
        (Just(steps), order)
    })
}

proptest! {
    #![proptest_config(support::config_with_cases(64))]

    /// The view is a function of the set of operations held, on every path they can take:
    /// one at a time in either order, in one batch, in random batches (operations before
    /// their predecessors and before the operations that pin them), through snapshots taken
    /// half-way, and by sync; with a removed admin's equivocations at, below and above its
    /// removal's watermark, and forks by other members. Each path shows the naive fold's
    /// view, one digest and one summary.
    #[test]
    fn every_delivery_path_shows_the_naive_folds_view_under_forks(
        steps in history(),
        crafted in proptest::collection::vec(support::crafted_op(), 0..5),
        forks in proptest::collection::vec((0..DEVICES, 1u64..4, 0u64..9_000), 0..3),
        seed in any::<u64>(),
    ) {
        let (genesis, mut ops) = play(&steps);
        let mut owner = replay(&genesis, &ops);
        if let Ok((removal, _)) = owner.remove(&identity(0), identity(1).id(), T0 + 5_000) {
            ops.push(removal);
        }
        let made = craft_all(&identity(1), owner.group(), &ops, &crafted);
        ops.extend(made);
        for (device, seq, at) in forks {
            let parent = ops
                .iter()
                .find(|o| o.op().author == identity(device).id() && o.op().seq + 1 == seq)
                .map(SignedOp::id);
            let prev = if seq == 1 { Some(splitsafe::group::Op::NO_PREV) } else { parent };
            if let Some(prev) = prev {
                let (group, who) = (owner.group(), identity(device));
                ops.push(sign_op(&who, group, seq, prev, T0 + at, Body::Leave));
            }
        }
        if let Err(e) = check_delivery_paths(&genesis, &ops, seed) {
            return Err(TestCaseError::fail(e));
        }
    }

    #[test]
    fn every_delivery_order_with_duplicates_gives_one_view((steps, order) in history_and_order()) {
        let (genesis, ops) = play(&steps);
        let in_order = replay(&genesis, &ops);
        let shuffled = replay(&genesis, order.iter().map(|&i| &ops[i]));
        prop_assert_eq!(shuffled.view(), in_order.view());
        prop_assert_eq!(shuffled.view().digest(), in_order.view().digest());
        // The incremental fold equals an independent fold from scratch.
        prop_assert_eq!(view_map(&in_order), naive_fold(&ops));
        // One batch, too.
        let mut batch = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
        batch.ingest_batch(order.iter().map(|&i| ops[i].clone()).collect(), T0 + 1_000);
        prop_assert_eq!(batch.view(), in_order.view());
    }

    #[test]
    fn replicas_holding_any_two_subsets_converge_within_two_sync_rounds(
        steps in history(),
        masks in proptest::collection::vec(0u8..3, 64),
    ) {
        let (genesis, ops) = play(&steps);
        // Each op goes to A, to B, or to both: arbitrary holes on both sides.
        let pick = |side: u8| ops.iter().zip(&masks).filter(move |(_, m)| **m == side || **m == 2).map(|(op, _)| op);
        let mut a = replay(&genesis, pick(0));
        let mut b = replay(&genesis, pick(1));
        let reference = replay(&genesis, &ops);
        for _round in 0..2 {
            let a_summary = a.summary();
            let to_a = b.missing_for(&a_summary).unwrap();
            let b_summary = b.summary();
            a.ingest_batch(to_a, T0 + 2_000);
            let to_b = a.missing_for(&b_summary).unwrap();
            b.ingest_batch(to_b, T0 + 2_000);
        }
        prop_assert_eq!(a.view().digest(), reference.view().digest());
        prop_assert_eq!(b.view().digest(), reference.view().digest());
        prop_assert_eq!(a.summary(), b.summary());
        prop_assert_eq!(sync_until_quiet(&mut a, &mut b, T0 + 3_000), 3, "nothing left to send");
    }

    #[test]
    fn void_operations_have_no_effect(steps in history()) {
        let (genesis, ops) = play(&steps);
        let replica = replay(&genesis, &ops);
        let full = view_map(&replica);
        for op in &ops {
            // A void operation, with every later one of its author's if they are void too:
            // dropping them changes nothing.
            let author = op.op().author;
            let dropped: Vec<&SignedOp> = ops
                .iter()
                .filter(|o| o.op().author == author && o.op().seq >= op.op().seq)
                .collect();
            if dropped.iter().any(|o| replica.is_effective(&o.id()) != Some(false)) {
                continue;
            }
            let without = ops.iter().filter(|o| !dropped.contains(o));
            prop_assert_eq!(view_map(&replay(&genesis, without)), full.clone());
        }
    }

    #[test]
    fn operations_of_never_added_authors_never_take_effect(steps in history(), stranger in 10u8..20) {
        let (genesis, ops) = play(&steps);
        // The stranger is a member only of a fork that never reaches our replicas.
        let founder = identity(0);
        let mut fork = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
        fork.ingest_batch(ops.iter().take(3).cloned().collect(), T0);
        let s = identity(stranger);
        fork.add(&founder, bundle(&s, 1, T0), T0 + 5).unwrap();
        fork.promote(&founder, s.id(), T0 + 5).unwrap();
        let theirs = [
            fork.add(&s, bundle(&identity(3), 7, T0), T0 + 6).unwrap().0,
            fork.remove(&s, identity(2).id(), T0 + 7).unwrap().0,
            fork.rotate(&s, bundle(&s, 8, T0 + 8), T0 + 8).unwrap().0,
        ];

        let clean = replay(&genesis, &ops);
        let dirty = replay(&genesis, theirs.iter().chain(&ops));
        prop_assert_eq!(dirty.view(), clean.view());
        prop_assert!(!dirty.view().contains(&s.id()));
        prop_assert_eq!(dirty.quarantined().count(), clean.quarantined().count() + theirs.len());
    }

    #[test]
    fn with_every_op_authorized_the_view_is_the_lww_set(
        steps in proptest::collection::vec((1u8..5, any::<bool>()), 1..20),
        seed in any::<u64>(),
    ) {
        // Only the owner acts, and never on itself: every operation takes effect, and the
        // member set is the LWW-Element-Set of its adds and removes, in any order.
        let history: Vec<Step> = steps
            .iter()
            .map(|&(target, add)| if add { Step::Add { device: 0, target } } else { Step::Remove { device: 0, target } })
            .collect();
        let (genesis, mut ops) = play(&history);
        let replica = replay(&genesis, &ops);
        prop_assert!(ops.iter().all(|op| replica.is_effective(&op.id()) == Some(true)));
        let k = (seed % ops.len() as u64) as usize;
        ops.rotate_left(k);
        let mut lww = LwwSet::new();
        for op in &ops {
            let stamp = op.stamp();
            match &op.op().body {
                Body::Create { founder: b, .. } | Body::Add { bundle: b, .. } => lww.insert(b.member, stamp),
                Body::Remove { member, .. } => lww.remove(*member, stamp),
                _ => Ok(false),
            }
            .unwrap();
        }
        let members: Vec<_> = replica.view().members().map(|(m, _)| *m).collect();
        prop_assert_eq!(members, lww.iter().copied().collect::<Vec<_>>());
    }
}
