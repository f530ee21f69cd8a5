//! Small-scope exhaustive check, in the manner of a model checker: every history of up to
//! four operations by three authors, over an alphabet of actions that covers removal,
//! mutual removal, re-adding, leaving, rotating and adding a newcomer, delivered in every
//! order, gives one view.
//!
//! Operation k of a history is stamped at time slot k, so the four slots are the
//! history's causal skeleton; all operations are made concurrently from one base state in
//! which the three authors are members. Orders are explored depth-first, sharing prefixes:
//! each replica state is reached once per distinct delivery prefix.

mod support;

use splitsafe::group::{Replica, SignedOp, ViewDigest};
use std::collections::HashMap;
use support::group::{bundle, found, identity, T0};

const SLOTS: usize = 4;

/// The alphabet: what each of the three authors (0 founds; 1 and 2 members) may do.
fn actions(base: &Replica, slot: usize) -> Vec<SignedOp> {
    let now = T0 + 100 + slot as u64;
    let (f, a, b, newcomer) = (identity(0), identity(1), identity(2), identity(3));
    // Seven actions: removal, re-add and rotation by the founder; mutual removal (1 removes
    // the founder while the founder removes 1) and leaving by 1; a removal by 2 racing the
    // others, and an add of a newcomer by 2 that stands only if 2 is still a member.
    let act = |f: &dyn Fn(&mut Replica) -> SignedOp| f(&mut base.clone());
    vec![
        act(&|r| r.remove(&f, a.id(), now).unwrap().0),
        act(&|r| r.add(&f, bundle(&a, 10 + slot as u8, T0), now).unwrap().0),
        act(&|r| {
            r.rotate(&f, bundle(&f, 20 + slot as u8, now), now)
                .unwrap()
                .0
        }),
        act(&|r| r.remove(&a, f.id(), now).unwrap().0),
        act(&|r| r.leave(&a, now).unwrap().0),
        act(&|r| r.remove(&b, a.id(), now).unwrap().0),
        act(&|r| {
            r.add(&b, bundle(&newcomer, 30 + slot as u8, T0), now)
                .unwrap()
                .0
        }),
    ]
}

struct Search {
    ops: Vec<SignedOp>,
    /// Which slot each op is stamped in.
    slot_of: Vec<usize>,
    /// Digest seen for each set of delivered ops (a bit set over `ops`).
    views: HashMap<u64, ViewDigest>,
    states: usize,
}

impl Search {
    /// Explores every extension of the delivery `delivered` (a set of ops, one per slot at
    /// most) and checks that each set has one view, whatever the order it came in.
    fn explore(&mut self, replica: &Replica, delivered: u64, slots_used: u8) {
        self.states += 1;
        let digest = replica.view().digest();
        let seen = *self.views.entry(delivered).or_insert(digest);
        assert_eq!(
            seen, digest,
            "two delivery orders of op set {delivered:#b} disagree"
        );
        for i in 0..self.ops.len() {
            let slot = self.slot_of[i];
            let in_slot = slots_used & (1 << slot) != 0;
            let delivered_already = delivered & (1 << i) != 0;
            // Histories hold at most one op per slot. Duplicates are checked separately.
            if delivered_already || in_slot {
                continue;
            }
            let mut next = replica.clone();
            next.ingest(self.ops[i].clone(), T0 + 1_000).unwrap();
            self.explore(&next, delivered | (1 << i), slots_used | (1 << slot));
        }
    }
}

#[test]
fn every_history_of_up_to_four_ops_in_every_order_gives_one_view() {
    let (mut base, genesis, founder) = found();
    base.add(&founder, bundle(&identity(1), 1, T0), T0 + 1)
        .unwrap();
    base.add(&founder, bundle(&identity(2), 2, T0), T0 + 2)
        .unwrap();

    let mut ops = Vec::new();
    let mut slot_of = Vec::new();
    for slot in 0..SLOTS {
        for op in actions(&base, slot) {
            ops.push(op);
            slot_of.push(slot);
        }
    }
    assert!(ops.len() <= 64);

    // Start from a replica holding the base operations only, as every device does.
    let mut start = Replica::join(&genesis, base.config(), T0).unwrap();
    start.ingest_batch(base.ops().cloned().collect(), T0 + 10);
    let mut search = Search {
        ops,
        slot_of,
        views: HashMap::new(),
        states: 0,
    };
    search.explore(&start, 0, 0);

    // Histories: choose a subset of slots and one of 7 actions in each: sum C(4,k) 7^k.
    assert_eq!(search.views.len(), 8 * 8 * 8 * 8);
    // Delivery orders: each history of k ops in k! orders (each a distinct prefix path).
    assert_eq!(search.states, 1 + 4 * 7 + 12 * 49 + 24 * 343 + 24 * 2401);
    // Duplicates change nothing: re-deliver every op of a full history.
    let full = search
        .views
        .iter()
        .find(|(set, _)| set.count_ones() == 4)
        .map(|(s, d)| (*s, *d))
        .unwrap();
    let mut replica = start.clone();
    for round in 0..2 {
        for i in 0..search.ops.len() {
            if full.0 & (1 << i) != 0 {
                replica
                    .ingest(search.ops[i].clone(), T0 + 2_000 + round)
                    .unwrap();
            }
        }
    }
    assert_eq!(replica.view().digest(), full.1);
}
