//! Laws of the LWW-Element-Set: merge is a join (commutative, associative, idempotent),
//! operation order and duplicates do not matter, and the op-based and state-based paths agree.

use crate::support;

use proptest::prelude::*;
use splitsafe::lww::{Action, Conflict, LwwSet, Op};
use support::{build, merged, replicas, unique_ops};

proptest! {
    #![proptest_config(support::config())]

    #[test]
    fn merge_is_commutative((_, sets) in replicas(2)) {
        prop_assert_eq!(merged(&sets[0], &sets[1]), merged(&sets[1], &sets[0]));
    }

    #[test]
    fn merge_is_associative((_, sets) in replicas(3)) {
        let (a, b, c) = (&sets[0], &sets[1], &sets[2]);
        prop_assert_eq!(merged(&merged(a, b), c), merged(a, &merged(b, c)));
    }

    /// `winner`, the rule the membership engine uses, is what the set keeps per element.
    #[test]
    fn the_winner_of_an_elements_ops_is_what_the_set_keeps(ops in unique_ops(40)) {
        let set = build(ops.clone());
        let elements: std::collections::BTreeSet<_> = ops.iter().map(|op| op.element).collect();
        for element in elements {
            let entries = ops.iter().filter(|op| op.element == element).map(|op| {
                splitsafe::lww::Entry { stamp: op.stamp, action: op.action }
            });
            let winner = splitsafe::lww::winner(entries);
            prop_assert_eq!(winner.as_ref(), set.get(&element));
        }
    }

    #[test]
    fn merge_is_idempotent((_, sets) in replicas(1)) {
        prop_assert_eq!(merged(&sets[0], &sets[0]), sets[0].clone());
    }

    #[test]
    fn merge_of_replicas_equals_applying_all_their_ops((subsets, sets) in replicas(3)) {
        let all = sets.iter().fold(LwwSet::new(), |acc, s| merged(&acc, s));
        prop_assert_eq!(all, build(subsets.concat()));
    }

    #[test]
    fn any_delivery_order_with_duplicates_converges(
        (ops, order) in unique_ops(40).prop_flat_map(|ops| {
            let n = ops.len();
            let order = if n == 0 {
                Just(vec![]).boxed()
            } else {
                // Every op at least once, some several times, shuffled.
                (proptest::collection::vec(0..n, 0..2 * n))
                    .prop_map(move |extra| (0..n).chain(extra).collect::<Vec<_>>())
                    .prop_shuffle()
                    .boxed()
            };
            (Just(ops), order)
        })
    ) {
        let in_order = build(ops.iter().cloned());
        let shuffled = build(order.iter().map(|&i| ops[i].clone()));
        prop_assert_eq!(&shuffled, &in_order);
        // The winner of each element is its op with the greatest stamp.
        for e in 0..support::ALPHABET {
            let latest = ops.iter().filter(|op| op.element == e).max_by_key(|op| op.stamp);
            prop_assert_eq!(
                in_order.contains(&e),
                latest.is_some_and(|op| op.action == Action::Insert)
            );
        }
    }

    #[test]
    fn merge_agrees_with_applying_the_others_ops((_, sets) in replicas(2)) {
        let mut by_ops = sets[0].clone();
        for op in sets[1].to_ops() {
            by_ops.apply(op).unwrap();
        }
        prop_assert_eq!(by_ops, merged(&sets[0], &sets[1]));
    }

    #[test]
    fn merge_is_exact_at_every_size_ratio(
        ops in proptest::collection::btree_map(1u32..=5_000, (any::<u8>(), support::action()), 0..400),
        split in any::<prop::sample::Index>(),
    ) {
        // Wide elements and a lopsided split, so that both merge strategies (a walk of both
        // maps, and per-entry lookups for a small delta) are exercised in both directions.
        let ops: Vec<_> = ops.into_iter().map(|(stamp, (element, action))| Op { element, stamp, action }).collect();
        let cut = split.index(ops.len().max(1)).min(ops.len()) / 8;
        let (small, large) = ops.split_at(cut);
        let (small, large) = (build(small.to_vec()), build(large.to_vec()));
        let all = build(ops.clone());
        let mut a = large.clone();
        a.merge(&small).unwrap();
        prop_assert_eq!(&a, &all);
        let mut b = small.clone();
        b.merge(&large).unwrap();
        prop_assert_eq!(&b, &all);
        prop_assert_eq!(a.len(), a.iter().count());
    }

    #[test]
    fn len_and_iterators_agree((_, sets) in replicas(1)) {
        let set = &sets[0];
        prop_assert_eq!(set.len(), set.iter().count());
        prop_assert_eq!(set.tombstone_count(), set.tombstones().count());
        prop_assert_eq!(set.is_empty(), set.iter().next().is_none());
        for e in set.iter() {
            prop_assert!(set.contains(e));
        }
        for (e, _) in set.tombstones() {
            prop_assert!(!set.contains(e));
        }
    }

    #[test]
    fn a_conflict_is_reported_in_every_order_and_changes_nothing(
        ops in unique_ops(20),
        element in 0..support::ALPHABET,
        stamp in 1u32..=200,
        seed in any::<u64>(),
    ) {
        // The pool plus an insert and a remove of `element` at the same `stamp`, sharing it
        // with no pool op.
        let mut pool: Vec<_> = ops
            .into_iter().filter(|op| op.stamp != stamp).collect();
        pool.push(Op { element, stamp, action: Action::Insert });
        pool.push(Op { element, stamp, action: Action::Remove });
        let rotate = (seed % pool.len() as u64) as usize;
        pool.rotate_left(rotate);

        let mut set = LwwSet::new();
        let mut conflicts = vec![];
        for op in pool {
            let before = set.clone();
            if let Err(conflict) = set.apply(op) {
                prop_assert_eq!(&set, &before);
                conflicts.push(conflict);
            }
        }
        // At most the second of the pair conflicts; it must when no newer op on the element
        // exists (a newer one delivered between or before the pair hides the clash).
        prop_assert!(conflicts.len() <= 1);
        for c in &conflicts {
            prop_assert_eq!(c, &Conflict { element, stamp });
        }
        let newer_exists = set.get(&element).is_some_and(|e| e.stamp > stamp);
        if !newer_exists {
            prop_assert_eq!(conflicts.len(), 1);
        }
    }

    #[test]
    fn a_conflicting_merge_changes_nothing((_, sets) in replicas(2), element in 0..support::ALPHABET) {
        // Give the second replica an entry that clashes with the first's latest op on `element`.
        let a = &sets[0];
        let Some(held) = a.get(&element).copied() else { return Ok(()) };
        let flipped = if held.is_present() { Action::Remove } else { Action::Insert };
        let mut b = build(sets[1].to_ops().filter(|op| op.element != element));
        b.apply(Op { element, stamp: held.stamp, action: flipped }).unwrap();

        let mut target = a.clone();
        let err = target.merge(&b).unwrap_err();
        prop_assert_eq!(err, Conflict { element, stamp: held.stamp });
        prop_assert_eq!(&target, a);
    }

    #[test]
    fn cbor_round_trip_is_exact_and_canonical((_, sets) in replicas(1), seed in any::<u64>()) {
        let set = &sets[0];
        let bytes = set.to_cbor();
        prop_assert_eq!(&LwwSet::<u8, u32>::from_cbor(&bytes, bytes.len()).unwrap(), set);
        // The same set reached by another route encodes to the same bytes.
        let mut ops: Vec<_> = set.to_ops().collect();
        let k = (seed as usize) % ops.len().max(1);
        ops.rotate_left(k);
        ops.reverse();
        prop_assert_eq!(build(ops).to_cbor(), bytes.clone());
        // One byte short is refused, and so is a limit one byte too small.
        if !bytes.is_empty() {
            prop_assert!(LwwSet::<u8, u32>::from_cbor(&bytes[..bytes.len() - 1], 1 << 20).is_err());
            prop_assert!(LwwSet::<u8, u32>::from_cbor(&bytes, bytes.len() - 1).is_err());
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(set) = LwwSet::<u8, u32>::from_cbor(&bytes, 1 << 16) {
            // Whatever decodes is a consistent set that survives its own round trip.
            prop_assert_eq!(set.len() + set.tombstone_count(), set.entries().count());
            prop_assert_eq!(LwwSet::<u8, u32>::from_cbor(&set.to_cbor(), 1 << 16).unwrap(), set);
        }
    }
}
