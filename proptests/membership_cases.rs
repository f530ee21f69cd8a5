//! The named cases of the membership engine, one test each.

use crate::support;

use splitsafe::clock::{ClockConfig, Timestamp};
use splitsafe::group::{
    ActionError, Body, Change, IngestError, InvalidOp, Op, Rank, Replica, ReplicaConfig,
    SnapshotError, Standing, Status, Watermark,
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

/// Makes each of `who` an admin.
fn promote(replica: &mut Replica, who: &[u8], now: u64) {
    for i in who {
        replica
            .promote(&identity(0), identity(*i).id(), now)
            .unwrap();
    }
}

#[test]
fn equals_cannot_remove_each_other_and_members_cannot_remove_at_all() {
    let (mut replica, _) = group_of(3);
    promote(&mut replica, &[1, 2], T0 + 10);
    let rank = |r: &Replica, i: u8| r.view().rank(&identity(i).id());
    assert_eq!(rank(&replica, 0), Some(Rank::Owner));
    assert_eq!(rank(&replica, 1), Some(Rank::Admin));
    assert_eq!(rank(&replica, 3), Some(Rank::Member));
    let refused = |author: u8, action: &'static str, subject: u8| ActionError::NotPermitted {
        author: identity(author).id(),
        rank: if author == 3 {
            Rank::Member
        } else {
            Rank::Admin
        },
        action,
        subject: Some(identity(subject).id()),
    };
    let before = replica.save();
    assert_eq!(
        replica.remove(&identity(1), identity(2).id(), T0 + 20),
        Err(refused(1, "remove", 2))
    );
    assert_eq!(
        replica.remove(&identity(1), identity(0).id(), T0 + 20),
        Err(refused(1, "remove", 0))
    );
    assert_eq!(
        replica.remove(&identity(3), identity(1).id(), T0 + 20),
        Err(refused(3, "remove", 1))
    );
    assert_eq!(
        replica.add(&identity(3), bundle(&identity(5), 5, T0), T0 + 20),
        Err(refused(3, "add", 5))
    );
    assert_eq!(
        replica.promote(&identity(1), identity(3).id(), T0 + 20),
        Err(refused(1, "change the rank of", 3))
    );
    assert_eq!(replica.save(), before);
    // The error says who, what, to whom, and the rule.
    assert_eq!(
        refused(3, "remove", 1).to_string(),
        format!(
            "{}, of rank Member, may not remove {}: members may only rotate their keys and \
             leave; admins may also add, and remove members who were never admins; only the \
             owner changes ranks, and the owner cannot leave",
            identity(3).id(),
            identity(1).id()
        )
    );
    // The owner cannot leave; an admin can remove a plain member.
    assert!(matches!(
        replica.leave(&identity(0), T0 + 20),
        Err(ActionError::NotPermitted { .. })
    ));
    replica
        .remove(&identity(1), identity(3).id(), T0 + 30)
        .unwrap();
    assert_eq!(members(&replica), vec![0, 1, 2]);
}

#[test]
fn a_removed_admins_concurrent_actions_are_void() {
    let (mut left, genesis) = group_of(3);
    promote(&mut left, &[1], T0 + 10);
    let mut right = copy_of(&left, &genesis, T0 + 10);
    // Split: the owner removes admin 1 on the left; on the right, unaware, 1 removes 3 and
    // adds 4, stamped later than its removal.
    let (remove_1, _) = left
        .remove(&identity(0), identity(1).id(), T0 + 100)
        .unwrap();
    right
        .remove(&identity(1), identity(3).id(), T0 + 200)
        .unwrap();
    right
        .add(&identity(1), bundle(&identity(4), 4, T0), T0 + 300)
        .unwrap();
    assert_eq!(members(&right), vec![0, 1, 2, 4]);
    // Heal: the removal recorded that the owner had seen none of 1's operations, so both are
    // void whatever their stamps: 3 is back, 4 never joins.
    let ingested = right.ingest(remove_1, T0 + 400).unwrap();
    let mut changes = ingested.changes;
    changes.sort();
    let mut expected = vec![
        Change::Removed(identity(1).id()),
        Change::Added(identity(3).id()),
        Change::Removed(identity(4).id()),
    ];
    expected.sort();
    assert_eq!(changes, expected);
    let ops: Vec<_> = right.ops().cloned().collect();
    left.ingest_batch(ops, T0 + 400);
    assert_eq!(members(&right), vec![0, 2, 3]);
    assert_eq!(left.view(), right.view());
}

#[test]
fn a_removed_admins_actions_its_remover_had_seen_stand() {
    let (mut replica, _) = group_of(3);
    promote(&mut replica, &[1], T0 + 10);
    replica
        .remove(&identity(1), identity(3).id(), T0 + 20)
        .unwrap();
    replica
        .remove(&identity(0), identity(1).id(), T0 + 30)
        .unwrap();
    // 1's removal of 3 was at or below the watermark: it stands.
    assert_eq!(members(&replica), vec![0, 2]);
}

#[test]
fn concurrent_add_and_remove_by_two_admins_take_the_later_stamp() {
    for (remove_at, add_at, present) in [(T0 + 100, T0 + 101, true), (T0 + 101, T0 + 100, false)] {
        let (mut left, genesis) = group_of(3);
        promote(&mut left, &[1, 2], T0 + 10);
        let mut right = copy_of(&left, &genesis, T0 + 10);
        left.remove(&identity(0), identity(3).id(), T0 + 50)
            .unwrap();
        right.ingest_batch(left.ops().cloned().collect(), T0 + 60);
        let mut other = right.clone();
        // 1 removes 3 again (a no-op) while 2 re-adds it: the later stamp decides.
        let (remove, _) = left
            .remove(&identity(1), identity(3).id(), remove_at)
            .unwrap();
        let (add, _) = other
            .add(&identity(2), bundle(&identity(3), 3, T0), add_at)
            .unwrap();
        left.ingest(add.clone(), T0 + 200).unwrap();
        right.ingest_batch(vec![add, remove], T0 + 200);
        assert_eq!(left.is_member(&identity(3).id()), present);
        assert_eq!(left.view(), right.view());
    }
}

#[test]
fn re_adding_after_removal_takes_the_later_add() {
    let (mut replica, genesis) = group_of(1);
    let (founder, one) = (identity(0), identity(1));
    let mut stale = copy_of(&replica, &genesis, T0 + 5);
    let (removal, changes) = replica.remove(&founder, one.id(), T0 + 10).unwrap();
    assert_eq!(changes, vec![Change::Removed(one.id())]);
    let removed = Standing::Removed { by: removal.id() };
    assert_eq!(replica.standing(&one.id(), Watermark::NONE), Ok(removed));
    // While out, 1 rotates on a device that has not heard of the removal: void, and kept
    // aside.
    let (rotated, _) = stale
        .rotate(&one, bundle(&one, 11, T0 + 12), T0 + 12)
        .unwrap();
    assert_eq!(
        replica.ingest(rotated.clone(), T0 + 15).unwrap().status,
        Status::Quarantined
    );
    // A message sealed after that rotation is beyond the removal.
    let at = |seq, op: &splitsafe::group::SignedOp| Watermark { seq, op: op.id() };
    let beyond = Standing::Beyond { by: removal.id() };
    assert_eq!(replica.standing(&one.id(), at(1, &rotated)), Ok(beyond));
    let (_, changes) = replica.add(&founder, bundle(&one, 1, T0), T0 + 20).unwrap();
    assert_eq!(changes, vec![Change::Added(one.id())]);
    assert!(replica.is_member(&one.id()));
    // The re-add vouched for the rotation, so it is logged, and stays void: the removal
    // is not undone for what 1 did while out.
    assert_eq!(replica.is_effective(&rotated.id()), Some(false));
    assert_eq!(*replica.view().key(&one.id()).unwrap(), enc_key(1));
    // 1's next operation follows the void one on its chain and counts.
    let (next, changes) = replica
        .rotate(&one, bundle(&one, 12, T0 + 30), T0 + 30)
        .unwrap();
    assert_eq!(changes, vec![Change::KeyRotated(one.id())]);
    // A message is judged by the position it was sealed at, not by its stamp. The re-add
    // had seen the void rotation, so a message at it may have been sealed after the re-add:
    // 1 is a member for it, as for any position now.
    assert_eq!(
        replica.standing(&one.id(), at(1, &rotated)),
        Ok(Standing::Member)
    );
    assert_eq!(
        replica.standing(&one.id(), Watermark::NONE),
        Ok(Standing::Member)
    );
    assert_eq!(
        replica.standing(&one.id(), at(2, &next)),
        Ok(Standing::Member)
    );
}

#[test]
fn leaving_removes_oneself_and_voids_later_actions() {
    let (mut replica, _) = group_of(2);
    promote(&mut replica, &[1], T0 + 5);
    let leaver = identity(1);
    let (leave, changes) = replica.leave(&leaver, T0 + 50).unwrap();
    assert_eq!(changes, vec![Change::Removed(leaver.id())]);
    assert_eq!(
        replica.remove(&leaver, identity(2).id(), T0 + 60),
        Err(ActionError::NotAMember(leaver.id()))
    );
    // Its next op on its chain, crafted after leaving (any stamp): void, kept aside.
    let crafted = Op {
        group: replica.group(),
        author: leaver.id(),
        seq: leave.op().seq + 1,
        prev: leave.id(),
        timestamp: Timestamp::from_physical(T0 + 1),
        body: Body::Remove {
            member: identity(2).id(),
            watermark: Watermark::NONE,
        },
    }
    .sign(&leaver);
    assert_eq!(
        replica.ingest(crafted, T0 + 70).unwrap().status,
        Status::Quarantined
    );
    assert_eq!(members(&replica), vec![0, 2]);
    assert_eq!(
        replica.past_members().map(|(m, _)| *m).collect::<Vec<_>>(),
        vec![leaver.id()]
    );
}

#[test]
fn an_equivocation_voids_both_operations_and_what_follows() {
    let (mut replica, genesis) = group_of(3);
    promote(&mut replica, &[1], T0 + 5);
    let mut twin = copy_of(&replica, &genesis, T0 + 10);
    // Two devices sharing 1's identity each make 1's first operation.
    let (a, _) = replica
        .remove(&identity(1), identity(2).id(), T0 + 20)
        .unwrap();
    let (b, _) = twin
        .remove(&identity(1), identity(3).id(), T0 + 21)
        .unwrap();
    let (c, _) = twin
        .add(&identity(1), bundle(&identity(4), 4, T0), T0 + 22)
        .unwrap();
    assert_eq!(a.op().seq, b.op().seq);
    replica.ingest_batch(vec![b.clone(), c.clone()], T0 + 30);
    for op in [&a, &b, &c] {
        assert_eq!(replica.is_effective(&op.id()), Some(false));
    }
    assert_eq!(members(&replica), vec![0, 1, 2, 3]);
}

#[test]
fn a_late_op_from_across_a_split_changes_only_what_it_governs() {
    let (mut left, genesis) = group_of(2);
    promote(&mut left, &[1], T0 + 5);
    let mut right = copy_of(&left, &genesis, T0 + 10);
    // Left: the owner removes admin 1 early; right, unaware, lets 1 add 3. The removal
    // arrives late: it voids 1's add and nothing else.
    let (remove_1, _) = left
        .remove(&identity(0), identity(1).id(), T0 + 100)
        .unwrap();
    right
        .add(&identity(1), bundle(&identity(3), 3, T0), T0 + 200)
        .unwrap();
    assert_eq!(members(&right), vec![0, 1, 2, 3]);
    let ingested = right.ingest(remove_1, T0 + 400).unwrap();
    assert_eq!(ingested.status, Status::Logged);
    let mut changes = ingested.changes;
    changes.sort();
    let mut expected = vec![
        Change::Removed(identity(1).id()),
        Change::Removed(identity(3).id()),
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
        .add(&identity(0), bundle(&identity(2), 2, T0), T0 + 20)
        .unwrap();
    let mut bytes = op.to_cbor();
    // Flip a bit of the signature, the last field encoded.
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let before = replica.save();
    assert_eq!(
        replica.ingest_bytes(&bytes, T0 + 30),
        Err(IngestError::Signature(KeyError::BadSignature(
            identity(0).id()
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
        let at = T0 + 2 + i as u64;
        let (op, _) = fork.rotate(stranger, bundle(stranger, 8, at), at).unwrap();
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
    let (promote_1, _) = origin
        .promote(&identity(0), identity(1).id(), T0 + 1)
        .unwrap();
    let (add_2, _) = origin
        .add(&identity(1), bundle(&identity(2), 2, T0), T0 + 2)
        .unwrap();
    // 1's add of 2 arrives before 1 is known.
    assert_eq!(
        replica.ingest(add_2, T0 + 3).unwrap().status,
        Status::Quarantined
    );
    // The owner's two ops arrive in the wrong order, in one batch.
    let ingested = replica.ingest_batch(vec![promote_1, add_1], T0 + 4);
    assert_eq!(
        ingested.results,
        vec![Ok(Status::Logged), Ok(Status::Logged)]
    );
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
    assert_eq!(*replica.view().key(&one.id()).unwrap(), enc_key(11));
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
    promote(&mut a, &[1, 2], T0 + 5);
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

/// P6: a chain split across two replicas, every other link on each side (so each holds
/// mostly operations waiting for a predecessor), converges in one round: quarantined
/// operations are summarized and offered like logged ones.
#[test]
fn a_chain_split_across_two_replicas_converges_in_one_round() {
    let (mut origin, genesis) = group_of(0);
    let mut chain = Vec::new();
    for i in 1..=10u8 {
        let (op, _) = origin
            .add(&identity(0), bundle(&identity(i), i, T0), T0 + u64::from(i))
            .unwrap();
        chain.push(op);
    }
    let mut a = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
    let mut b = a.clone();
    for (i, op) in chain.iter().enumerate() {
        let side = if i % 2 == 0 { &mut a } else { &mut b };
        side.ingest(op.clone(), T0 + 20).unwrap();
    }
    assert_eq!(a.op_count(), 2, "the genesis and the first link");
    assert_eq!(b.op_count(), 1);
    let to_a = b.missing_for(&a.summary()).unwrap();
    let b_summary = b.summary();
    a.ingest_batch(to_a, T0 + 30);
    let to_b = a.missing_for(&b_summary).unwrap();
    b.ingest_batch(to_b, T0 + 30);
    for replica in [&a, &b] {
        assert_eq!(replica.view(), origin.view());
        assert_eq!(replica.quarantined().count(), 0);
    }
    assert_eq!(a.summary(), b.summary());
    assert!(a.missing_for(&b.summary()).unwrap().is_empty());
}

// ---- Convergence when authors fork their chains or lie about them (issue 19) ----

use splitsafe::group::{OpId, SignedOp};
use splitsafe::keys::Identity;
use support::group::{check_delivery_paths, naive_fold, sign_op, view_map};

/// O founds; adds A1 (1), A2 (2), M1 (3), M2 (4); makes A1 and A2 admins. Returns the owner's
/// replica, the genesis and every operation so far.
fn ranked_group() -> (Replica, SignedOp, Vec<SignedOp>) {
    let (mut owner, genesis, founder) = found();
    let mut ops = vec![genesis.clone()];
    for i in 1..=4 {
        ops.push(
            owner
                .add(&founder, bundle(&identity(i), i, T0), T0 + u64::from(i))
                .unwrap()
                .0,
        );
    }
    for i in 1..=2 {
        ops.push(
            owner
                .promote(&founder, identity(i).id(), T0 + 4 + u64::from(i))
                .unwrap()
                .0,
        );
    }
    (owner, genesis, ops)
}

#[test]
fn a_pinned_branch_stands_through_every_delivery_path() {
    let (mut owner, genesis, mut ops) = ranked_group();
    let (a1, m1) = (identity(1), identity(3));
    let mut at_a1 = owner.clone();
    let (remove_m1, _) = at_a1.remove(&a1, m1.id(), T0 + 7_000).unwrap();
    let (rotate, _) = at_a1
        .rotate(&a1, bundle(&a1, 11, T0 + 7_000), T0 + 7_000)
        .unwrap();
    owner.ingest_batch(vec![remove_m1.clone(), rotate.clone()], T0 + 7_001);
    let (remove_a1, _) = owner.remove(&identity(0), a1.id(), T0 + 8_000).unwrap();
    let watermark = match remove_a1.op().body {
        Body::Remove { watermark, .. } => watermark,
        _ => unreachable!(),
    };
    assert_eq!(
        watermark,
        Watermark {
            seq: 2,
            op: rotate.id()
        }
    );
    // Crafted after her removal: a second seq 1 that re-adds M1, stamped before her removal
    // of M1.
    let forged = sign_op(
        &a1,
        owner.group(),
        1,
        Op::NO_PREV,
        T0 + 6_999,
        Body::Add {
            bundle: bundle(&m1, 3, T0),
            watermark: Watermark::NONE,
        },
    );
    ops.extend([remove_m1.clone(), rotate.clone(), remove_a1, forged]);
    let expected = naive_fold(&ops);
    assert!(
        !expected.contains_key(&m1.id().0),
        "the pinned removal of M1 stands"
    );
    check_delivery_paths(&genesis, &ops, 1).unwrap();
    // Every order of the last four, one at a time.
    let tail = ops.len() - 4;
    for perm in permutations(4) {
        let order = ops[..tail]
            .iter()
            .chain(perm.iter().map(|i| &ops[tail + i]));
        let replica = support::group::replay(&genesis, order);
        assert_eq!(view_map(&replica), expected, "order {perm:?}");
        assert_eq!(replica.is_effective(&remove_m1.id()), Some(true));
    }
}

#[test]
fn a_member_branch_pinned_by_a_re_add_survives_its_own_equivocation() {
    let (mut owner, genesis, mut ops) = ranked_group();
    let (a1, m1) = (identity(1), identity(3));
    let (_, ops_m1) = m1_rotations(&owner, 2, T0 + 100);
    let [first, second]: [SignedOp; 2] = ops_m1.try_into().unwrap();
    owner.ingest_batch(vec![first.clone(), second.clone()], T0 + 102);
    let remove = owner.remove(&identity(0), m1.id(), T0 + 200).unwrap().0;
    let mut at_a1 = owner.clone();
    let readd = at_a1
        .add(&a1, bundle(&m1, 33, T0 + 300), T0 + 300)
        .unwrap()
        .0;
    let fork = sign_op(&m1, owner.group(), 1, Op::NO_PREV, T0 + 50, Body::Leave);
    ops.extend([first.clone(), second.clone(), remove, readd, fork]);
    check_delivery_paths(&genesis, &ops, 2).unwrap();
    let replica = support::group::replay(&genesis, ops.iter().rev());
    assert_eq!(replica.is_effective(&second.id()), Some(true));
    assert!(replica.is_member(&m1.id()));
}

/// M1's (identity 3) next `n` rotations, made on its own copy of `replica` from `at` ms on
/// (one ms apart), with keys 31, 32, ...; returns M1's copy too.
fn m1_rotations(replica: &Replica, n: u8, at: u64) -> (Replica, Vec<SignedOp>) {
    let (m1, mut at_m1) = (identity(3), replica.clone());
    let ops = (0..n)
        .map(|i| {
            let now = at + u64::from(i);
            at_m1.rotate(&m1, bundle(&m1, 31 + i, now), now).unwrap().0
        })
        .collect();
    (at_m1, ops)
}

/// All orderings of 0..n.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            out.push(p);
        }
    }
    out
}

#[test]
fn an_op_naming_a_foreign_predecessor_is_dropped_whatever_the_order() {
    let (mut owner, genesis, mut ops) = ranked_group();
    let m1 = identity(3);
    let (_, ops_m1) = m1_rotations(&owner, 2, T0 + 100);
    let [one, two]: [SignedOp; 2] = ops_m1.try_into().unwrap();
    owner.ingest(one.clone(), T0 + 102).unwrap();
    // Seq 3 naming the owner's add of M1 as its predecessor: it can never be on a chain.
    let junk = sign_op(&m1, owner.group(), 3, ops[3].id(), T0 + 150, Body::Leave);
    // And seq 2 naming M1's own op at 1 from the wrong number: seq 3 with prev = seq 1.
    let skip = sign_op(&m1, owner.group(), 3, one.id(), T0 + 151, Body::Leave);
    let mut early = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
    for op in [&junk, &skip] {
        assert_eq!(
            early.ingest(op.clone(), T0 + 200).unwrap().status,
            Status::Quarantined
        );
    }
    early.ingest_batch(ops.clone(), T0 + 200);
    early.ingest(one.clone(), T0 + 200).unwrap();
    let mut late = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
    late.ingest_batch(ops.clone(), T0 + 200);
    late.ingest(one.clone(), T0 + 200).unwrap();
    for op in [&junk, &skip] {
        assert_eq!(
            late.ingest(op.clone(), T0 + 200).unwrap().status,
            Status::Dropped
        );
    }
    assert_eq!(
        early.quarantined().count(),
        0,
        "what became droppable was dropped"
    );
    assert_eq!(early.summary(), late.summary());
    // Nor do they starve M1's genuine later operation.
    early.ingest(two.clone(), T0 + 300).unwrap();
    assert_eq!(early.is_effective(&two.id()), Some(true));
    ops.extend([one, two, junk, skip]);
    check_delivery_paths(&genesis, &ops, 3).unwrap();
}

#[test]
fn strangers_neither_crowd_out_members_nor_travel_by_sync() {
    let (owner, genesis, _) = ranked_group();
    let now = T0 + 1_000;
    let stranger = |n: u64| {
        let who = Identity::from_secret_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes());
        sign_op(&who, owner.group(), 1, Op::NO_PREV, now, Body::Leave)
    };
    let limit = ReplicaConfig::default().quarantine_limit as u64;
    let mut bob = copy_of(&owner, &genesis, now);
    let mut carol = copy_of(&owner, &genesis, now);
    bob.ingest_batch((0..limit).map(stranger).collect(), now);
    carol.ingest_batch((limit..2 * limit).map(stranger).collect(), now);
    assert_eq!(bob.quarantined().count() as u64, limit);
    // Not summarised, not offered: two crowds do not keep sync talking.
    assert_eq!(bob.summary(), carol.summary());
    assert!(bob.missing_for(&carol.summary()).unwrap().is_empty());
    // A member's operation that must wait is kept beside a full pen of strangers.
    let (_, ops_m1) = m1_rotations(&copy_of(&owner, &genesis, now), 2, now);
    let [one, two]: [SignedOp; 2] = ops_m1.try_into().unwrap();
    assert_eq!(
        bob.ingest(two.clone(), now + 2).unwrap().status,
        Status::Quarantined
    );
    bob.ingest(one, now + 3).unwrap();
    assert_eq!(bob.is_effective(&two.id()), Some(true));
}

#[test]
fn a_removed_member_cannot_make_replicas_log_its_equivocations() {
    let (mut owner, genesis, _) = ranked_group();
    let m1 = identity(3);
    let (_, ops_m1) = m1_rotations(&owner, 1, T0 + 100);
    let rotation = ops_m1[0].clone();
    owner.ingest(rotation, T0 + 101).unwrap();
    owner.remove(&identity(0), m1.id(), T0 + 200).unwrap();
    let (digest, logged) = (owner.view().digest(), owner.op_count());
    let flood: Vec<SignedOp> = (0..600)
        .map(|i| {
            sign_op(
                &m1,
                owner.group(),
                1,
                Op::NO_PREV,
                T0 + 300 + i,
                Body::Leave,
            )
        })
        .collect();
    owner.ingest_batch(flood.clone(), T0 + 1_000);
    assert_eq!(
        owner.op_count(),
        logged,
        "nothing off the pinned branch is logged"
    );
    assert_eq!(owner.view().digest(), digest);
    let per_author = ReplicaConfig::default().quarantine_per_author;
    assert!(owner.quarantined().count() <= per_author);
    // The same holds for a replica that learns the removal and the flood in one batch.
    let mut fresh = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
    let mut all: Vec<SignedOp> = flood;
    all.extend(owner.ops().cloned());
    fresh.ingest_batch(all, T0 + 1_000);
    assert_eq!(fresh.op_count(), logged);
    assert_eq!(fresh.view().digest(), digest);
}

#[test]
fn a_future_dated_genesis_names_its_owner_without_panicking() {
    let founder = identity(0);
    let genesis = sign_op(
        &founder,
        Op::NO_GROUP,
        1,
        Op::NO_PREV,
        T0 + 365 * 24 * 3_600_000,
        Body::Create {
            nonce: [1; 16],
            founder: bundle(&founder, 0, T0),
        },
    );
    let replica = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
    assert_eq!(replica.held().count(), 1);
    assert_eq!(replica.owner(), founder.id());
    let loaded = Replica::load(&replica.save(), ReplicaConfig::default(), 1 << 20, T0).unwrap();
    assert_eq!(loaded.replica.owner(), founder.id());
}

#[test]
fn a_replayed_operation_is_a_duplicate_before_its_signature_is_checked() {
    let (owner, genesis, ops) = ranked_group();
    let mut replica = copy_of(&owner, &genesis, T0 + 100);
    // The same content with a broken signature: it changes nothing, so it is not verified.
    let mut bytes = ops[2].to_cbor();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let replayed = SignedOp::from_cbor(&bytes).unwrap();
    assert!(replayed.verify().is_err());
    assert_eq!(
        replica.ingest(replayed, T0 + 100).unwrap().status,
        Status::Duplicate
    );
    // A fresh operation with a broken signature is still refused.
    let (_, ops_m1) = m1_rotations(&owner, 1, T0 + 100);
    let fresh = ops_m1[0].clone();
    let mut bytes = fresh.to_cbor();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let broken = SignedOp::from_cbor(&bytes).unwrap();
    assert!(matches!(
        replica.ingest(broken, T0 + 100),
        Err(IngestError::Signature(_))
    ));
}

#[test]
fn an_owner_restored_from_an_old_copy_keeps_the_group() {
    let (mut owner, genesis, mut ops) = ranked_group();
    let backup = owner.clone();
    let founder = identity(0);
    // The owner goes on; then a device restored from the backup acts at the same numbers.
    let original = owner
        .remove(&founder, identity(4).id(), T0 + 100)
        .unwrap()
        .0;
    let mut restored = backup;
    let fork = restored
        .remove(&founder, identity(3).id(), T0 + 200)
        .unwrap()
        .0;
    assert_eq!(original.op().seq, fork.op().seq);
    ops.extend([original.clone(), fork.clone()]);
    check_delivery_paths(&genesis, &ops, 4).unwrap();
    // The earlier-stamped branch stands, the other is void; nothing else is lost.
    restored.ingest(original.clone(), T0 + 300).unwrap();
    owner.ingest(fork.clone(), T0 + 300).unwrap();
    for r in [&owner, &restored] {
        assert_eq!(r.is_effective(&original.id()), Some(true));
        assert_eq!(r.is_effective(&fork.id()), Some(false));
        assert!(r.is_member(&identity(1).id()) && !r.is_member(&identity(4).id()));
    }
    // The restored device continues on the standing branch, and its action takes effect.
    let again = restored
        .remove(&founder, identity(3).id(), T0 + 400)
        .unwrap()
        .0;
    assert_eq!(again.op().prev, original.id());
    owner.ingest(again.clone(), T0 + 500).unwrap();
    assert_eq!(owner.is_effective(&again.id()), Some(true));
    assert!(!owner.is_member(&identity(3).id()));
    // An owner operation at seq 1 that is not the genesis does not void the genesis.
    let second_one = sign_op(&founder, owner.group(), 1, Op::NO_PREV, T0 - 5, Body::Leave);
    owner.ingest(second_one.clone(), T0 + 600).unwrap();
    assert_eq!(owner.is_effective(&genesis.id()), Some(true));
    assert_eq!(owner.is_effective(&second_one.id()), Some(false));
    assert!(owner.is_member(&founder.id()));
}

#[test]
fn a_watermark_pins_only_the_subjects_operation_at_its_number() {
    let (mut owner, genesis, ops) = ranked_group();
    let m1 = identity(3);
    let (mut at_m1, ops_m1) = m1_rotations(&owner, 1, T0 + 100);
    let honest = ops_m1[0].clone();
    let fork = sign_op(&m1, owner.group(), 1, Op::NO_PREV, T0 + 101, Body::Leave);
    owner.ingest(honest.clone(), T0 + 102).unwrap();
    let founder = identity(0);
    let outcome = |watermark: Watermark| {
        let mut r = owner.clone();
        let body = Body::Remove {
            member: m1.id(),
            watermark,
        };
        let removal = sign_op(
            &founder,
            r.group(),
            8,
            r.ops()
                .filter(|o| o.op().author == founder.id())
                .last()
                .unwrap()
                .id(),
            T0 + 200,
            body,
        );
        r.ingest(removal.clone(), T0 + 200).unwrap();
        r.ingest(fork.clone(), T0 + 201).unwrap();
        let mut all = ops.clone();
        all.extend([honest.clone(), removal, fork.clone()]);
        check_delivery_paths(&genesis, &all, 5).unwrap();
        r.is_effective(&honest.id())
    };
    // Naming the operation at its number pins it: the honest branch stands.
    assert_eq!(
        outcome(Watermark {
            seq: 1,
            op: honest.id()
        }),
        Some(true)
    );
    // Another author's operation, the right operation at a wrong number, an unknown one: no
    // pin, and the fork voids both.
    assert_eq!(
        outcome(Watermark {
            seq: 1,
            op: ops[1].id()
        }),
        Some(false)
    );
    assert_eq!(
        outcome(Watermark {
            seq: 2,
            op: honest.id()
        }),
        Some(false)
    );
    assert_eq!(
        outcome(Watermark {
            seq: 1,
            op: OpId([9; 32])
        }),
        Some(false)
    );
    // A leave does not pin its author's own chain.
    let mut r = owner.clone();
    let leave = at_m1.leave(&m1, T0 + 300).unwrap().0;
    r.ingest(leave, T0 + 300).unwrap();
    r.ingest(fork.clone(), T0 + 301).unwrap();
    assert_eq!(r.is_effective(&honest.id()), Some(false));
}

#[test]
fn an_honest_watermark_stops_below_a_fork() {
    let (mut owner, _genesis, _) = ranked_group();
    let m1 = identity(3);
    let (_, ops_m1) = m1_rotations(&owner, 2, T0 + 100);
    let [one, two]: [SignedOp; 2] = ops_m1.try_into().unwrap();
    let twin = sign_op(&m1, owner.group(), 2, one.id(), T0 + 102, Body::Leave);
    owner.ingest_batch(vec![one.clone(), two, twin], T0 + 103);
    let removal = owner.remove(&identity(0), m1.id(), T0 + 200).unwrap().0;
    match removal.op().body {
        Body::Remove { watermark, .. } => assert_eq!(
            watermark,
            Watermark {
                seq: 1,
                op: one.id()
            }
        ),
        _ => unreachable!(),
    }
}

#[test]
fn a_rank_about_an_identity_never_added_takes_effect() {
    let (mut owner, genesis, mut ops) = ranked_group();
    let (founder, x) = (identity(0), identity(9));
    let promote = owner.promote(&founder, x.id(), T0 + 100).unwrap().0;
    assert_eq!(owner.is_effective(&promote.id()), Some(true));
    assert!(!owner.is_member(&x.id()));
    // X has been an admin: an admin may not add it, the owner may, and it joins as an admin.
    let mut at_a1 = owner.clone();
    assert!(matches!(
        at_a1.add(&identity(1), bundle(&x, 9, T0), T0 + 200),
        Err(ActionError::NotPermitted { .. })
    ));
    let add = owner.add(&founder, bundle(&x, 9, T0), T0 + 300).unwrap().0;
    assert_eq!(owner.view().rank(&x.id()), Some(Rank::Admin));
    ops.extend([promote, add]);
    check_delivery_paths(&genesis, &ops, 6).unwrap();
}

#[test]
fn a_backdated_leave_takes_effect_but_loses_to_the_add() {
    let (owner, genesis, mut ops) = ranked_group();
    let m1 = identity(3);
    let leave = sign_op(&m1, owner.group(), 1, Op::NO_PREV, T0 - 1_000, Body::Leave);
    let mut replica = owner.clone();
    replica.ingest(leave.clone(), T0 + 100).unwrap();
    assert_eq!(replica.is_effective(&leave.id()), Some(true));
    assert!(replica.is_member(&m1.id()), "the add's later stamp wins");
    let rotate = sign_op(
        &m1,
        owner.group(),
        2,
        leave.id(),
        T0 + 101,
        Body::Rotate {
            bundle: bundle(&m1, 31, T0 + 101),
        },
    );
    replica.ingest(rotate.clone(), T0 + 102).unwrap();
    assert_eq!(
        replica.is_effective(&rotate.id()),
        Some(true),
        "and it disables nothing"
    );
    ops.extend([leave, rotate]);
    check_delivery_paths(&genesis, &ops, 7).unwrap();
}
