//! The named cases of the membership engine, one test each.

mod support;

use splitsafe::clock::{ClockConfig, Timestamp};
use splitsafe::group::{
    ActionError, Change, IngestError, InvalidOp, Replica, ReplicaConfig, SnapshotError, Status,
};
use splitsafe::keys::KeyError;
use support::group::{bundle, enc_key, found, identity, T0};

/// Founder 0 adds members 1..=n at T0 + i ms; returns the replica and the genesis.
fn group_of(n: u8) -> (Replica, splitsafe::group::SignedOp) {
    let (mut replica, genesis, founder) = found();
    for i in 1..=n {
        replica
            .add(&founder, bundle(&identity(i), i, T0), T0 + u64::from(i))
            .unwrap();
    }
    (replica, genesis)
}

/// A second device holding the same operations as `replica`.
fn copy_of(replica: &Replica, genesis: &splitsafe::group::SignedOp, now: u64) -> Replica {
    let mut other = Replica::join(genesis, ReplicaConfig::default(), now).unwrap();
    let report = other.ingest_batch(replica.ops().cloned().collect(), now);
    assert!(report.results.iter().all(Result::is_ok));
    other
}

fn members(replica: &Replica) -> Vec<u8> {
    (0..=20)
        .filter(|i| replica.is_member(&identity(*i).id()))
        .collect()
}

#[test]
fn mutual_concurrent_removal_keeps_the_earlier_remover() {
    let (mut left, genesis) = group_of(2);
    let mut right = copy_of(&left, &genesis, T0 + 10);
    // Split: 1 removes 2 on the left, slightly before 2 removes 1 on the right.
    let (op_l, _) = left
        .remove(&identity(1), identity(2).id(), T0 + 100)
        .unwrap();
    let (op_r, _) = right
        .remove(&identity(2), identity(1).id(), T0 + 101)
        .unwrap();
    assert_eq!(members(&left), vec![0, 1]);
    assert_eq!(members(&right), vec![0, 2]);
    // Heal: 2 was no longer a member when it acted, so its removal of 1 is void.
    left.ingest(op_r, T0 + 200).unwrap();
    right.ingest(op_l, T0 + 200).unwrap();
    assert_eq!(members(&left), vec![0, 1]);
    assert_eq!(left.view(), right.view());
}

#[test]
fn re_adding_after_removal_takes_the_later_add() {
    let (mut replica, _) = group_of(1);
    let (founder, one) = (identity(0), identity(1));
    let (_, changes) = replica.remove(&founder, one.id(), T0 + 10).unwrap();
    assert_eq!(changes, vec![Change::Removed(one.id())]);
    let (_, changes) = replica.add(&founder, bundle(&one, 1, T0), T0 + 20).unwrap();
    assert_eq!(changes, vec![Change::Added(one.id())]);
    assert!(replica.is_member(&one.id()));
    // History answers for each moment.
    let at = |ms| Timestamp::from_physical(ms);
    assert!(replica.was_member(&one.id(), at(T0 + 5)));
    assert!(!replica.was_member(&one.id(), at(T0 + 15)));
    assert!(replica.was_member(&one.id(), at(T0 + 25)));
    assert!(!replica.was_member(&one.id(), at(T0 - 1)));
}

#[test]
fn leaving_removes_oneself_and_voids_later_actions() {
    let (mut replica, genesis) = group_of(2);
    let mut elsewhere = copy_of(&replica, &genesis, T0 + 10);
    let leaver = identity(1);
    let (_, changes) = replica.leave(&leaver, T0 + 50).unwrap();
    assert_eq!(changes, vec![Change::Removed(leaver.id())]);
    assert_eq!(
        replica.remove(&leaver, identity(2).id(), T0 + 60),
        Err(ActionError::NotAMember(leaver.id()))
    );
    // On a device that has not seen the leave, 1 removes 2 after having left: once the
    // leave arrives, that removal is void.
    let (late_remove, _) = elsewhere
        .remove(&leaver, identity(2).id(), T0 + 60)
        .unwrap();
    replica.ingest(late_remove, T0 + 70).unwrap();
    assert_eq!(members(&replica), vec![0, 2]);
    assert_eq!(
        replica.past_members().map(|(m, _)| *m).collect::<Vec<_>>(),
        vec![leaver.id()]
    );
}

#[test]
fn a_late_op_from_across_a_split_refolds_later_ops() {
    let (mut left, genesis) = group_of(2);
    let mut right = copy_of(&left, &genesis, T0 + 10);
    // Left removes 1 early; right, unaware, lets 1 add 3, then 3 add 4.
    let (remove_1, _) = left
        .remove(&identity(0), identity(1).id(), T0 + 100)
        .unwrap();
    right
        .add(&identity(1), bundle(&identity(3), 3, T0), T0 + 200)
        .unwrap();
    right
        .add(&identity(3), bundle(&identity(4), 4, T0), T0 + 300)
        .unwrap();
    assert_eq!(members(&right), vec![0, 1, 2, 3, 4]);
    // The removal arrives late and lands before both adds: 1 could not add 3, so 3 could
    // not add 4.
    let ingested = right.ingest(remove_1, T0 + 400).unwrap();
    assert_eq!(ingested.status, Status::Logged);
    let mut changes = ingested.changes;
    changes.sort();
    let mut expected = vec![
        Change::Removed(identity(1).id()),
        Change::Removed(identity(3).id()),
        Change::Removed(identity(4).id()),
    ];
    expected.sort();
    assert_eq!(changes, expected);
    assert_eq!(members(&right), vec![0, 2]);
}

#[test]
fn a_future_dated_op_is_held_then_applied() {
    let (mut origin, genesis) = group_of(1);
    let mut replica = copy_of(&origin, &genesis, T0 + 10);
    let drift = ClockConfig::DEFAULT_MAX_DRIFT_MS;
    // Made on a device whose clock runs 10 minutes fast.
    let (op, _) = origin
        .add(&identity(0), bundle(&identity(2), 2, T0), T0 + 2 * drift)
        .unwrap();
    let before = replica.view().clone();
    let ingested = replica.ingest(op.clone(), T0 + 20).unwrap();
    assert_eq!(ingested.status, Status::Held);
    assert!(ingested.changes.is_empty());
    assert_eq!(replica.view(), &before);
    assert_eq!(
        replica.ingest(op, T0 + 30).unwrap().status,
        Status::Duplicate
    );
    assert!(
        replica.advance(T0 + drift - 1).is_empty(),
        "still too far ahead"
    );
    assert_eq!(
        replica.advance(T0 + drift),
        vec![Change::Added(identity(2).id())]
    );
    assert_eq!(replica.held().count(), 0);
}

#[test]
fn a_bad_signature_is_refused_and_changes_nothing() {
    let (mut replica, genesis) = group_of(1);
    let mut other = copy_of(&replica, &genesis, T0 + 10);
    let (op, _) = other
        .add(&identity(1), bundle(&identity(2), 2, T0), T0 + 20)
        .unwrap();
    let mut bytes = op.to_cbor();
    // Flip a bit of the signature, the last field encoded.
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let before = replica.save();
    assert_eq!(
        replica.ingest_bytes(&bytes, T0 + 30),
        Err(IngestError::Signature(KeyError::BadSignature(
            identity(1).id()
        )))
    );
    assert_eq!(replica.save(), before);
    // A forged bundle inside a correctly signed op is refused too.
    let mut forged = bundle(&identity(3), 3, T0);
    forged.encryption_key.0[0] ^= 1;
    assert!(matches!(
        replica.add(&identity(0), forged, T0 + 40),
        Err(ActionError::BadBundle(IngestError::Signature(
            KeyError::BadSignature(_)
        )))
    ));
    assert_eq!(replica.save(), before);
}

#[test]
fn an_op_of_another_group_is_refused() {
    let (mut replica, _) = group_of(1);
    let founder = identity(0);
    let (mut elsewhere, other_genesis) = Replica::create(
        &founder,
        bundle(&founder, 0, T0),
        [1; 16],
        ReplicaConfig::default(),
        T0,
    )
    .unwrap();
    let (op, _) = elsewhere
        .add(&founder, bundle(&identity(5), 5, T0), T0 + 1)
        .unwrap();
    let before = replica.save();
    for foreign in [op, other_genesis] {
        assert_eq!(
            replica.ingest(foreign, T0 + 2),
            Err(IngestError::WrongGroup {
                expected: replica.group(),
                found: elsewhere.group()
            })
        );
    }
    assert_eq!(replica.save(), before);
    assert_eq!(
        replica.missing_for(&elsewhere.summary()).unwrap_err(),
        IngestError::WrongGroup {
            expected: replica.group(),
            found: elsewhere.group()
        }
    );
}

#[test]
fn flooding_the_quarantine_stays_within_its_bound() {
    let founder = identity(0);
    let config = ReplicaConfig {
        quarantine_limit: 16,
        ..ReplicaConfig::default()
    };
    let (mut replica, genesis) =
        Replica::create(&founder, bundle(&founder, 0, T0), [0; 16], config, T0).unwrap();
    // Strangers are members of a fork of the group our replica never hears about, so their
    // operations are well formed for our group but their author was never added here.
    let mut fork = Replica::join(&genesis, config, T0).unwrap();
    let strangers: Vec<_> = (100..140).map(identity).collect();
    for stranger in &strangers {
        fork.add(&founder, bundle(stranger, 9, T0), T0 + 1).unwrap();
    }
    for (i, stranger) in strangers.iter().enumerate() {
        let (op, _) = fork
            .remove(stranger, founder.id(), T0 + 2 + i as u64)
            .unwrap();
        let expected = if i < 16 {
            Status::Quarantined
        } else {
            Status::Dropped
        };
        assert_eq!(replica.ingest(op, T0 + 100).unwrap().status, expected);
        assert!(replica.quarantined().count() <= 16);
    }
    assert_eq!(replica.quarantined().count(), 16);
    // Every stranger holds one entry, so a newcomer cannot push out anyone else's: the
    // first 16 strangers' operations remain.
    let kept: std::collections::BTreeSet<_> =
        replica.quarantined().map(|op| op.op().author).collect();
    let first: std::collections::BTreeSet<_> = strangers[..16].iter().map(|s| s.id()).collect();
    assert_eq!(kept, first);
    assert_eq!(members(&replica), vec![0]);
    assert_eq!(replica.op_count(), 1);
}

#[test]
fn quarantined_ops_enter_the_log_when_their_author_is_added() {
    let (mut origin, genesis) = group_of(0);
    let mut replica = copy_of(&origin, &genesis, T0);
    let (add_1, _) = origin
        .add(&identity(0), bundle(&identity(1), 1, T0), T0 + 1)
        .unwrap();
    let (add_2, _) = origin
        .add(&identity(1), bundle(&identity(2), 2, T0), T0 + 2)
        .unwrap();
    // 1's add of 2 arrives before 1 is known.
    assert_eq!(
        replica.ingest(add_2, T0 + 3).unwrap().status,
        Status::Quarantined
    );
    let ingested = replica.ingest(add_1, T0 + 4).unwrap();
    assert_eq!(ingested.status, Status::Logged);
    assert_eq!(
        ingested.changes,
        vec![
            Change::Added(identity(1).id()),
            Change::Added(identity(2).id())
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(replica.quarantined().count(), 0);
    assert_eq!(replica.view(), origin.view());
}

#[test]
fn rotation_replaces_the_key_and_old_bundles_never_win() {
    let (mut replica, _) = group_of(1);
    let one = identity(1);
    let (_, changes) = replica
        .rotate(&one, bundle(&one, 11, T0 + 100), T0 + 100)
        .unwrap();
    assert_eq!(changes, vec![Change::KeyRotated(one.id())]);
    // Re-adding 1 with its original, older bundle keeps the newer key.
    replica
        .add(&identity(0), bundle(&one, 1, T0), T0 + 200)
        .unwrap();
    assert_eq!(
        replica.view().bundle(&one.id()).unwrap().encryption_key,
        enc_key(11)
    );
    assert_eq!(
        replica.rotate(&one, bundle(&identity(2), 2, T0), T0 + 300),
        Err(ActionError::BadBundle(
            InvalidOp::RotateForeignBundle.into()
        ))
    );
}

#[test]
fn snapshots_round_trip_and_refuse_damage() {
    let (mut replica, _) = group_of(3);
    replica
        .remove(&identity(0), identity(2).id(), T0 + 50)
        .unwrap();
    let saved = replica.save();
    let config = ReplicaConfig::default();
    let loaded = Replica::load(&saved, config, 1 << 20, T0 + 60).unwrap();
    assert!(loaded.refused.is_empty());
    let loaded = loaded.replica;
    assert_eq!(loaded.view(), replica.view());
    assert_eq!(loaded.view().digest(), replica.view().digest());
    assert_eq!(loaded.summary(), replica.summary());
    assert_eq!(loaded.clock().last(), replica.clock().last());
    assert_eq!(loaded.save(), saved);

    for cut in [0, 1, saved.len() / 2, saved.len() - 1] {
        assert!(matches!(
            Replica::load(&saved[..cut], config, 1 << 20, T0),
            Err(SnapshotError::Decode(_))
        ));
    }
    let mut damaged = saved.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    assert!(matches!(
        Replica::load(&damaged, config, 1 << 20, T0),
        Err(SnapshotError::ChecksumMismatch | SnapshotError::Decode(_))
    ));
    assert!(matches!(
        Replica::load(&saved, config, saved.len() - 1, T0),
        Err(SnapshotError::Decode(
            splitsafe::codec::DecodeError::TooLarge { .. }
        ))
    ));
}

#[test]
fn sync_converges_in_three_messages() {
    let (mut a, genesis) = group_of(3);
    let mut b = copy_of(&a, &genesis, T0 + 10);
    a.add(&identity(1), bundle(&identity(7), 7, T0), T0 + 100)
        .unwrap();
    a.remove(&identity(0), identity(3).id(), T0 + 101).unwrap();
    b.add(&identity(2), bundle(&identity(8), 8, T0), T0 + 102)
        .unwrap();
    b.rotate(&identity(2), bundle(&identity(2), 22, T0 + 103), T0 + 103)
        .unwrap();
    assert_ne!(a.view().digest(), b.view().digest());

    let to_b = a.summary();
    let to_a = b.missing_for(&to_b).unwrap();
    assert_eq!(to_a.len(), 2, "only B's two new ops");
    let b_summary = b.summary();
    a.ingest_batch(to_a, T0 + 200);
    let to_b = a.missing_for(&b_summary).unwrap();
    assert_eq!(to_b.len(), 2, "only A's two new ops");
    b.ingest_batch(to_b, T0 + 200);

    assert_eq!(a.view().digest(), b.view().digest());
    assert_eq!(a.summary(), b.summary());
    assert!(a.missing_for(&b.summary()).unwrap().is_empty());
}
