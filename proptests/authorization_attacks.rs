//! Regression tests for the review's authorization findings (`../shared/attacks/`): each
//! attack, with the op layout of chains and watermarks, now fails. Mallory is an admin (the
//! strongest standing a removable member can have) and is removed by the owner; from a stale
//! replica and by hand she then signs whatever she likes: any stamps, sequence numbers,
//! predecessors and watermarks.
//!
//! P1 at larger sizes: random honest histories in which the owner removes an admin, and
//! random sets of operations crafted by that admin afterwards, never change the view or the
//! verdict of any other operation.

use crate::support;

use proptest::prelude::*;
use splitsafe::clock::Timestamp;
use splitsafe::crypto::{KeyringConfig, OpenError, SealOptions};
use splitsafe::group::{Body, Op, OpId, Replica, ReplicaConfig, SignedOp, Status, Watermark};
use splitsafe::keys::Identity;
use support::crypto::{rng, world};
use support::group::{bundle, found, hostile_bodies, identity, removed_admin_attack, Step, T0};

const DAY: u64 = 86_400_000;
const YEAR: u64 = 365 * DAY;

fn mallory() -> Identity {
    identity(2)
}

/// Mallory's hand-signed op at chain position (`seq`, `prev`), stamped `at_ms`.
fn craft(
    group: splitsafe::group::GroupId,
    seq: u64,
    prev: OpId,
    at_ms: u64,
    body: Body,
) -> SignedOp {
    support::group::sign_op(&mallory(), group, seq, prev, at_ms, body)
}

/// Alice (owner) adds Bob and Mallory and makes Mallory an admin; Mallory adds Eve (her own
/// first op, which the owner will see). Returns Alice's replica and the genesis.
fn group() -> (Replica, SignedOp) {
    let (mut replica, genesis, alice) = found();
    replica
        .add(&alice, bundle(&identity(1), 1, T0), T0 + 1)
        .unwrap();
    replica
        .add(&alice, bundle(&mallory(), 2, T0), T0 + 2)
        .unwrap();
    replica.promote(&alice, mallory().id(), T0 + 3).unwrap();
    replica
        .add(&mallory(), bundle(&identity(5), 5, T0), T0 + 4)
        .unwrap();
    (replica, genesis)
}

fn copy(replica: &Replica, genesis: &SignedOp, now: u64) -> Replica {
    let mut other = Replica::join(genesis, ReplicaConfig::default(), now).unwrap();
    other.ingest_batch(replica.ops().cloned().collect(), now);
    other
}

fn members(replica: &Replica) -> Vec<u8> {
    (0..=12)
        .filter(|i| replica.is_member(&identity(*i).id()))
        .collect()
}

/// F1: a removed admin, a year later, from a stale replica and by hand, tries to remove the
/// owner, Bob, and Carol and Dave (added during the year), to re-add herself through a
/// puppet, and to promote it, with stamps right after her admission. Nothing takes effect.
#[test]
fn a_removed_admin_cannot_rewrite_a_year_of_history() {
    let alice = identity(0);
    let (mut at_alice, genesis) = group();
    let mut stale = copy(&at_alice, &genesis, T0 + 10);
    at_alice
        .add(&alice, bundle(&identity(3), 3, T0), T0 + 30 * DAY)
        .unwrap();
    at_alice
        .add(&alice, bundle(&identity(4), 4, T0), T0 + 60 * DAY)
        .unwrap();
    at_alice.remove(&alice, mallory().id(), T0 + YEAR).unwrap();
    let honest = members(&at_alice);
    assert_eq!(honest, vec![0, 1, 3, 4, 5]);

    // Through the stale replica, as the API lets her: remove Bob, add a puppet.
    let mut crafted = vec![
        stale
            .remove(&mallory(), identity(1).id(), T0 + 20)
            .unwrap()
            .0,
        stale
            .add(&mallory(), bundle(&identity(9), 9, T0), T0 + 21)
            .unwrap()
            .0,
    ];
    // By hand: every body, at every chain position a watermark could leave open, with
    // stamps from just after her admission to the present.
    let group_id = at_alice.group();
    let pinned = at_alice
        .ops()
        .find(|op| op.op().author == mallory().id())
        .unwrap()
        .id();
    for target in [0, 1, 3, 4, 5].map(|i| identity(i).id()) {
        for (seq, prev) in [(1, Op::NO_PREV), (2, pinned), (3, crafted[0].id())] {
            for at in [T0 + 5, T0 + 40 * DAY, T0 + YEAR + 1] {
                let watermarks = [Watermark::NONE, Watermark { seq: 1, op: pinned }];
                for watermark in watermarks {
                    for body in hostile_bodies(&[target], watermark, &identity(9)) {
                        crafted.push(craft(group_id, seq, prev, at, body));
                    }
                }
            }
        }
    }
    let now = T0 + YEAR + 5;
    let mut at_bob = copy(&at_alice, &genesis, now);
    for op in &crafted {
        at_bob.ingest(op.clone(), now).unwrap();
    }
    let mut batch = copy(&at_alice, &genesis, now);
    let report = batch.ingest_batch(crafted.clone(), now);
    assert!(report.results.iter().all(Result::is_ok));
    for replica in [&at_bob, &batch] {
        assert_eq!(members(replica), honest);
        assert_eq!(replica.view(), at_alice.view());
        for op in &crafted {
            assert_ne!(replica.is_effective(&op.id()), Some(true));
        }
        // The op the owner saw before removing her stands, whatever she equivocates.
        assert_eq!(replica.is_effective(&pinned), Some(true));
    }
    // The owner can still act.
    at_bob.remove(&alice, identity(4).id(), now + 1).unwrap();
}

/// F1: the window is gone: crafted removals stamped right after Mallory's admission, 1, 10
/// and 100 years later, are void; so are those stamped before it.
#[test]
fn no_backdating_window_at_any_age() {
    for years_later in [1u64, 10, 100] {
        let (mut at_alice, genesis) = group();
        let now = T0 + years_later * YEAR;
        at_alice.remove(&identity(0), mallory().id(), now).unwrap();
        let admitted = at_alice
            .ops()
            .find(|o| matches!(&o.op().body, Body::Add { bundle, .. } if bundle.member == mallory().id()))
            .unwrap()
            .op()
            .timestamp;
        let pinned = at_alice
            .ops()
            .find(|op| op.op().author == mallory().id())
            .unwrap()
            .id();
        for at in [admitted.as_raw() + 1, admitted.as_raw() - 1] {
            let mut r = copy(&at_alice, &genesis, now + 10);
            let op = Op {
                group: r.group(),
                author: mallory().id(),
                seq: 2,
                prev: pinned,
                timestamp: Timestamp::from_raw(at),
                body: Body::Remove {
                    member: identity(1).id(),
                    watermark: Watermark::NONE,
                },
            }
            .sign(&mallory());
            assert_eq!(r.ingest(op, now + 10).unwrap().status, Status::Quarantined);
            assert!(r.is_member(&identity(1).id()), "{years_later}y");
            assert!(!r.is_member(&mallory().id()));
        }
    }
}

/// F1: a backdated add of a puppet gets no slot in later seals, and the puppet's re-add of
/// Mallory is void.
#[test]
fn a_backdated_puppet_gets_no_slot_and_cannot_readmit() {
    let mut r = rng(1);
    let (mut devices, genesis) = world(4, KeyringConfig::default(), &mut r);
    // 0 Alice (owner), 1 Bob, 2 Mallory, 3 Carol, 4 the puppet (an outsider, Mallory's).
    let alice = identity(0);
    let mut source = devices[0].replica.clone();
    source
        .promote(&alice, devices[2].keyring.identity().id(), T0 + 200)
        .unwrap();
    let mut stale = copy(&source, &genesis, T0 + 210);
    source
        .remove(&alice, devices[2].keyring.identity().id(), T0 + 30 * DAY)
        .unwrap();
    let now = T0 + 30 * DAY + 10;
    let puppet_bundle = devices[4].keyring.bundle();
    let (add_puppet, _) = stale
        .add(devices[2].keyring.identity(), puppet_bundle, T0 + 220)
        .unwrap();
    for d in devices.iter_mut() {
        d.replica = copy(&source, &genesis, now);
        d.replica.ingest(add_puppet.clone(), now).unwrap();
    }
    let puppet = identity(4);
    assert!(!devices[1].replica.is_member(&puppet.id()));
    assert!(devices[1]
        .replica
        .published_keys(&puppet.id())
        .next()
        .is_none());

    // Bob's next message has no slot for the puppet (nor for Mallory).
    let mallory_id = devices[2].keyring.identity().id();
    let mallory_bundle = devices[2].keyring.bundle();
    let bob = &mut devices[1];
    let envelope = bob
        .keyring
        .seal(
            &mut bob.replica,
            now + 1,
            b"secret",
            SealOptions::default(),
            &mut r,
        )
        .unwrap();
    for reader in [2, 4] {
        let d = &mut devices[reader];
        assert_eq!(
            d.keyring
                .open(&envelope, &mut d.replica, now + 2)
                .unwrap_err(),
            OpenError::NotAddressedToMe
        );
    }
    // The puppet's hand-signed re-add of Mallory (its first op) is void.
    let readd = Op {
        group: devices[1].replica.group(),
        author: puppet.id(),
        seq: 1,
        prev: Op::NO_PREV,
        timestamp: Timestamp::from_physical(now + 3),
        body: Body::Add {
            bundle: mallory_bundle,
            watermark: Watermark::NONE,
        },
    }
    .sign(&puppet);
    let bob = &mut devices[1];
    assert_eq!(
        bob.replica.ingest(readd, now + 4).unwrap().status,
        Status::Quarantined
    );
    assert!(!bob.replica.is_member(&mallory_id));
}

/// F7: a removed admin's void adds admit no author and no key, and what it and its puppets
/// can make a replica store is bounded by the quarantine's quotas: 5,000 void adds and one
/// op from each of 5,000 puppets leave the log unchanged and the quarantine within its
/// limit.
#[test]
fn void_adds_admit_nobody_and_storage_stays_bounded() {
    let (mut at_alice, genesis) = group();
    at_alice
        .remove(&identity(0), mallory().id(), T0 + DAY)
        .unwrap();
    let config = ReplicaConfig::default();
    let now = T0 + DAY + 10;
    let mut replica = copy(&at_alice, &genesis, now);
    let logged = replica.op_count();
    let saved = replica.save().len();
    let pinned = replica
        .ops()
        .find(|op| op.op().author == mallory().id())
        .unwrap()
        .id();
    let group_id = replica.group();
    let mut prev = pinned;
    let mut flood = Vec::new();
    for n in 0..5_000u32 {
        let puppet = Identity::from_secret_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes());
        let add = craft(
            group_id,
            2 + u64::from(n),
            prev,
            T0 + 10 + u64::from(n),
            Body::Add {
                bundle: puppet.bundle(support::group::enc_key(7), Timestamp::from_physical(T0)),
                watermark: Watermark::NONE,
            },
        );
        prev = add.id();
        let own = Op {
            group: group_id,
            author: puppet.id(),
            seq: 1,
            prev: Op::NO_PREV,
            timestamp: Timestamp::from_physical(T0 + 11 + u64::from(n)),
            body: Body::Leave,
        }
        .sign(&puppet);
        flood.push(add);
        flood.push(own);
    }
    for chunk in flood.chunks(500) {
        replica.ingest_batch(chunk.to_vec(), now);
    }
    assert_eq!(replica.op_count(), logged);
    // Two pens of `quarantine_limit` each: the admitted authors' and the strangers'.
    assert!(replica.quarantined().count() <= 2 * config.quarantine_limit);
    assert_eq!(replica.view(), at_alice.view());
    // Under 1 KiB per kept op: the snapshot grows by at most the pens' bound.
    assert!(replica.save().len() <= saved + 2 * config.quarantine_limit * 1024);
}

fn honest_step() -> impl Strategy<Value = Step> {
    let d = 0..support::group::DEVICES;
    prop_oneof![
        3 => (d.clone(), d.clone()).prop_map(|(device, target)| Step::Add { device, target }),
        3 => (d.clone(), d.clone()).prop_map(|(device, target)| Step::Remove { device, target }),
        1 => d.clone().prop_map(|device| Step::Rotate { device }),
        3 => (d.clone(), d).prop_map(|(from, to)| Step::Deliver { from, to }),
    ]
}

proptest! {
    #![proptest_config(support::config_with_cases(32))]

    /// P1 at larger sizes. Device 1 is an admin (`play` promotes it); after a random honest
    /// history the owner removes it, with whatever its replica has seen; then device 1 signs
    /// up to six ops of its choosing. Delivered before or after the honest ops, they change
    /// neither the view nor any other op's verdict, and none takes effect.
    #[test]
    fn a_removed_admins_crafted_ops_change_nothing(
        steps in proptest::collection::vec(honest_step(), 0..20),
        crafted in proptest::collection::vec(support::crafted_op(), 1..7),
        crafted_first in any::<bool>(),
    ) {
        let outcome = removed_admin_attack(&steps, &crafted, crafted_first);
        prop_assert!(outcome.is_ok(), "{:?}", outcome);
    }
}
