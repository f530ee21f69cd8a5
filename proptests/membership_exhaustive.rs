//! Small-scope exhaustive checks, in the manner of a model checker.
//!
//! The base group: owner 0; admins 1 and 2; members 3 and 5 (5 added by admin 1, its first
//! operation). From that base each of four authors acts at most once, concurrently (an
//! author's single act cannot fork its chain), choosing from an alphabet that covers
//! strong removal and demotion of an admin by the owner, removals and adds by admins that
//! race each other on one member (both stamp orders), leaving and rotating:
//!
//! 1. every history, delivered in every order, gives one view, and that view is the one an
//!    independent from-scratch evaluation of the rules gives (`naive_fold`);
//! 2. P1, no takeover: in every history where the owner removes admin 1, admin 1 crafting
//!    any set of up to three further operations (one at each of sequence numbers 1, 2 and 3:
//!    equivocating below the removal's watermark, just above it, and chained above that;
//!    each with any of six bodies and an early or late stamp) changes neither the view nor
//!    the verdict of any other operation, and none of its crafted operations takes effect.

use crate::support;

use splitsafe::clock::Timestamp;
use splitsafe::group::{Op, OpId, Replica, SignedOp, ViewDigest, Watermark};
use splitsafe::keys::Identity;
use std::collections::HashMap;
use support::group::{bundle, found, hostile_bodies, identity, naive_fold, view_map, T0};

/// The base state every author acts from, and its operations.
fn base() -> (Replica, SignedOp) {
    let (mut base, genesis, owner) = found();
    for i in [1, 2, 3] {
        base.add(&owner, bundle(&identity(i), i, T0), T0 + 1)
            .unwrap();
    }
    for i in [1, 2] {
        base.promote(&owner, identity(i).id(), T0 + 2).unwrap();
    }
    base.add(&identity(1), bundle(&identity(5), 5, T0), T0 + 3)
        .unwrap();
    (base, genesis)
}

/// The alphabet: for each author (slot), the operations it may make from the base.
fn alphabet(base: &Replica) -> Vec<Vec<SignedOp>> {
    let at = |ms: u64| T0 + ms;
    let (owner, one, two, three) = (identity(0), identity(1), identity(2), identity(3));
    let act = |f: &dyn Fn(&mut Replica) -> SignedOp| f(&mut base.clone());
    vec![
        // The owner, stamped last: removes or demotes admin 1, removes 3, rotates.
        vec![
            act(&|r| r.remove(&owner, one.id(), at(103)).unwrap().0),
            act(&|r| r.demote(&owner, one.id(), at(103)).unwrap().0),
            act(&|r| r.remove(&owner, three.id(), at(103)).unwrap().0),
            act(&|r| {
                r.rotate(&owner, bundle(&owner, 40, at(103)), at(103))
                    .unwrap()
                    .0
            }),
        ],
        // Admin 1: removes 3, adds newcomer 4, removes 5.
        vec![
            act(&|r| r.remove(&one, three.id(), at(101)).unwrap().0),
            act(&|r| r.add(&one, bundle(&identity(4), 4, T0), at(101)).unwrap().0),
            act(&|r| r.remove(&one, identity(5).id(), at(101)).unwrap().0),
        ],
        // Admin 2: re-adds 3 after or before admin 1's removal of it, removes 5.
        vec![
            act(&|r| r.add(&two, bundle(&three, 33, T0), at(102)).unwrap().0),
            act(&|r| r.add(&two, bundle(&three, 34, T0), at(100)).unwrap().0),
            act(&|r| r.remove(&two, identity(5).id(), at(102)).unwrap().0),
        ],
        // Member 3: leaves or rotates.
        vec![
            act(&|r| r.leave(&three, at(104)).unwrap().0),
            act(&|r| {
                r.rotate(&three, bundle(&three, 35, at(104)), at(104))
                    .unwrap()
                    .0
            }),
        ],
    ]
}

/// A history: one choice per slot (`None`: the author does nothing).
type History = [Option<usize>; 4];

fn histories(alphabet: &[Vec<SignedOp>]) -> Vec<History> {
    let mut out = vec![[None; 4]];
    for (slot, choices) in alphabet.iter().enumerate() {
        out = out
            .into_iter()
            .flat_map(|h| {
                std::iter::once(None)
                    .chain((0..choices.len()).map(Some))
                    .map(move |c| {
                        let mut h = h;
                        h[slot] = c;
                        h
                    })
            })
            .collect();
    }
    out
}

struct Search<'a> {
    alphabet: &'a [Vec<SignedOp>],
    /// Digest seen for each set of delivered ops, keyed by the history it is.
    views: HashMap<History, ViewDigest>,
    states: usize,
}

impl Search<'_> {
    /// Explores every delivery order of every history extending `delivered`.
    fn explore(&mut self, replica: &Replica, delivered: History) {
        self.states += 1;
        let digest = replica.view().digest();
        let seen = *self.views.entry(delivered).or_insert(digest);
        assert_eq!(
            seen, digest,
            "two delivery orders of {delivered:?} disagree"
        );
        for slot in 0..4 {
            if delivered[slot].is_some() {
                continue;
            }
            for (choice, op) in self.alphabet[slot].iter().enumerate() {
                let mut next = replica.clone();
                next.ingest(op.clone(), T0 + 1_000).unwrap();
                let mut extended = delivered;
                extended[slot] = Some(choice);
                self.explore(&next, extended);
            }
        }
    }
}

fn ops_of(alphabet: &[Vec<SignedOp>], history: &History) -> Vec<SignedOp> {
    history
        .iter()
        .enumerate()
        .filter_map(|(slot, choice)| choice.map(|c| alphabet[slot][c].clone()))
        .collect()
}

#[test]
fn every_history_in_every_order_gives_the_specified_view() {
    let (base, genesis) = base();
    let alphabet = alphabet(&base);
    let mut start = Replica::join(&genesis, base.config(), T0).unwrap();
    start.ingest_batch(base.ops().cloned().collect(), T0 + 10);
    assert_eq!(start.view(), base.view());
    let mut search = Search {
        alphabet: &alphabet,
        views: HashMap::new(),
        states: 0,
    };
    search.explore(&start, [None; 4]);

    let all = histories(&alphabet);
    assert_eq!(search.views.len(), all.len());
    assert_eq!(all.len(), 5 * 4 * 4 * 3);
    // Every ordered sequence of distinct slots, with one choice in each, is a state.
    let sizes: Vec<usize> = alphabet.iter().map(Vec::len).collect();
    let mut expected_states = 0;
    for subset in 0u32..16 {
        let slots: Vec<usize> = (0..4).filter(|s| subset & (1 << s) != 0).collect();
        let orders: usize = (1..=slots.len()).product();
        expected_states += orders * slots.iter().map(|s| sizes[*s]).product::<usize>();
    }
    assert_eq!(search.states, expected_states);

    let base_ops: Vec<SignedOp> = base.ops().cloned().collect();
    for history in &all {
        let mut ops = base_ops.clone();
        ops.extend(ops_of(&alphabet, history));
        let mut replica = start.clone();
        replica.ingest_batch(ops_of(&alphabet, history), T0 + 1_000);
        assert_eq!(replica.view().digest(), search.views[history]);
        assert_eq!(view_map(&replica), naive_fold(&ops), "{history:?}");
    }
}

/// The adversary's candidate operations for one chain position: six bodies (removals of
/// the owner, of admin 2 and of member 3, an add and a promotion of a puppet, a leave), each
/// stamped early (before everything) and late.
fn crafted(
    group: splitsafe::group::GroupId,
    seq: u64,
    prev: OpId,
    attacker: &Identity,
) -> Vec<SignedOp> {
    let targets = [0, 2, 3].map(|i| identity(i).id());
    let bodies = hostile_bodies(&targets, Watermark::NONE, &identity(6));
    let mut out = Vec::new();
    for body in bodies {
        for ms in [T0 + 1, T0 + 500] {
            let op = Op {
                group,
                author: attacker.id(),
                seq,
                prev,
                timestamp: Timestamp::from_physical(ms),
                body: body.clone(),
            };
            out.push(op.sign(attacker));
        }
    }
    out
}

/// The histories the takeover check runs over: those where the owner removes admin 1
/// (alphabet slot 0, choice 0).
fn owner_removes_admin_1(history: &History) -> bool {
    history[0] == Some(0)
}

/// The takeover check's shards together cover the 48 histories where admin 1 is removed.
#[test]
fn the_takeover_check_covers_every_history_where_admin_1_is_removed() {
    let (base, _) = base();
    let alphabet = alphabet(&base);
    let covered = histories(&alphabet)
        .iter()
        .filter(|history| owner_removes_admin_1(history))
        .count();
    // 4 × 4 × 3: the choices of the other authors' slots, counting "nothing".
    assert_eq!(covered, 4 * 4 * 3);
}

/// The takeover check is split in shards of the histories, small enough that they keep
/// both cores busy to the end of a debug run (about 12 s each there).
const SHARDS: usize = 8;

#[test]
fn a_removed_admin_cannot_change_anything_with_up_to_three_crafted_ops_shard_0() {
    removed_admin_cannot_change_anything(0);
}

#[test]
fn a_removed_admin_cannot_change_anything_with_up_to_three_crafted_ops_shard_1() {
    removed_admin_cannot_change_anything(1);
}

#[test]
fn a_removed_admin_cannot_change_anything_with_up_to_three_crafted_ops_shard_2() {
    removed_admin_cannot_change_anything(2);
}

#[test]
fn a_removed_admin_cannot_change_anything_with_up_to_three_crafted_ops_shard_3() {
    removed_admin_cannot_change_anything(3);
}

#[test]
fn a_removed_admin_cannot_change_anything_with_up_to_three_crafted_ops_shard_4() {
    removed_admin_cannot_change_anything(4);
}

#[test]
fn a_removed_admin_cannot_change_anything_with_up_to_three_crafted_ops_shard_5() {
    removed_admin_cannot_change_anything(5);
}

#[test]
fn a_removed_admin_cannot_change_anything_with_up_to_three_crafted_ops_shard_6() {
    removed_admin_cannot_change_anything(6);
}

#[test]
fn a_removed_admin_cannot_change_anything_with_up_to_three_crafted_ops_shard_7() {
    removed_admin_cannot_change_anything(7);
}

/// P1 over the histories of shard `shard`: every non-empty crafted set, delivered before or
/// after the history, changes nothing.
fn removed_admin_cannot_change_anything(shard: usize) {
    let (base, genesis) = base();
    let alphabet = alphabet(&base);
    let attacker = identity(1);
    let base_ops: Vec<SignedOp> = base.ops().cloned().collect();
    let pinned = base_ops
        .iter()
        .find(|op| op.op().author == attacker.id())
        .unwrap()
        .id();
    let group = base.group();
    let below = crafted(group, 1, Op::NO_PREV, &attacker);
    let above = crafted(group, 2, pinned, &attacker);
    // Chained onto the early "add puppet" of position 2.
    let chained = crafted(group, 3, above[6].id(), &attacker);
    let choose = |list: &[SignedOp], k: usize| (k > 0).then(|| list[k - 1].clone());

    let mut start = Replica::join(&genesis, base.config(), T0).unwrap();
    start.ingest_batch(base_ops.clone(), T0 + 1_000);
    let mut trials = 0;
    let mut covered = 0;
    let mine = histories(&alphabet)
        .into_iter()
        .filter(owner_removes_admin_1)
        .enumerate()
        .filter(|(i, _)| i % SHARDS == shard);
    for (_, history) in mine {
        covered += 1;
        let honest = ops_of(&alphabet, &history);
        let mut reference = Replica::join(&genesis, base.config(), T0).unwrap();
        reference.ingest_batch(
            base_ops.iter().cloned().chain(honest.clone()).collect(),
            T0 + 1_000,
        );
        assert!(!reference.is_member(&attacker.id()));
        // Whether each honest op takes effect (a void op may be logged or kept aside,
        // depending on what arrived first; either way it is void).
        let verdicts = |r: &Replica| -> Vec<bool> {
            base_ops
                .iter()
                .chain(&honest)
                .map(|op| r.is_effective(&op.id()) == Some(true))
                .collect()
        };
        let expected = verdicts(&reference);
        let n = below.len() + 1;
        for combo in 1..n * n * n {
            let ops: Vec<SignedOp> = [
                choose(&below, combo % n),
                choose(&above, combo / n % n),
                choose(&chained, combo / n / n),
            ]
            .into_iter()
            .flatten()
            .collect();
            // Half the trials deliver the crafted ops first, half after the history.
            let mut replica = start.clone();
            if combo % 2 == 0 {
                replica.ingest_batch(ops.clone(), T0 + 1_000);
                replica.ingest_batch(honest.clone(), T0 + 1_000);
            } else {
                replica.ingest_batch(honest.clone(), T0 + 1_000);
                replica.ingest_batch(ops.clone(), T0 + 1_000);
            }
            assert_eq!(
                replica.view(),
                reference.view(),
                "{history:?} crafted {ops:#?}"
            );
            assert_eq!(verdicts(&replica), expected, "{history:?} crafted {ops:#?}");
            for op in &ops {
                assert_ne!(replica.is_effective(&op.id()), Some(true), "{op:#?}");
            }
            trials += 1;
        }
    }
    // Every history of the shard, times every non-empty crafted set.
    assert_eq!(covered, 48 / SHARDS);
    assert_eq!(trials, covered * (13 * 13 * 13 - 1));
}
