//! Snapshots restore exactly what was saved and trust nothing in the file (B1, B2, B3, F6),
//! and the held and quarantine pens hold per-author quotas (F7's pen eviction).

use crate::support;

use proptest::prelude::*;
use serde::Serialize;
use splitsafe::clock::{ClockConfig, Timestamp};
use splitsafe::group::{
    Body, GroupId, IngestError, Op, Replica, ReplicaConfig, SignedOp, SnapshotError, Status,
    Watermark,
};
use splitsafe::keys::{EncryptionKey, Identity, KeyError};
use support::group::{bundle, found, identity, T0};
use support::snapshot::file;

const DRIFT: u64 = ClockConfig::DEFAULT_MAX_DRIFT_MS;
const MAX_LEN: usize = 1 << 22;

/// Everything a snapshot must restore, as comparable values.
#[derive(Debug, PartialEq, Eq)]
struct State {
    view: splitsafe::group::View,
    summary: splitsafe::group::Summary,
    held: Vec<SignedOp>,
    quarantined: Vec<SignedOp>,
    clock: Timestamp,
}

fn state(replica: &Replica) -> State {
    State {
        view: replica.view().clone(),
        summary: replica.summary(),
        held: replica.held().cloned().collect(),
        quarantined: replica.quarantined().cloned().collect(),
        clock: replica.clock().last(),
    }
}

fn reload(replica: &Replica, config: ReplicaConfig, now: u64) -> Replica {
    let loaded = Replica::load(&replica.save(), config, MAX_LEN, now).expect("reloads");
    assert!(loaded.refused.is_empty(), "{:?}", loaded.refused);
    loaded.replica
}

/// What happens to the replica under test, in order.
#[derive(Clone, Debug)]
enum Event {
    /// Member `who` (1..=3) acts at `at` ms after T0 on the source and the op is delivered
    /// at the replica's current local time: logged, or held if `at` is beyond the drift.
    MemberOp { who: u8, at: u64 },
    /// A stranger (added on the source only, the add never delivered) acts: quarantined.
    StrangerOp { who: u8 },
    /// Local time moves on by `ms`, and the replica logs the held ops that fell due.
    Wait { ms: u64 },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => (1u8..=3, 0u64..3 * DRIFT).prop_map(|(who, at)| Event::MemberOp { who, at }),
        2 => (0u8..4).prop_map(|who| Event::StrangerOp { who }),
        1 => (0u64..DRIFT).prop_map(|ms| Event::Wait { ms }),
    ]
}

/// A replica with logged, held and quarantined operations and a clock pushed by them; the
/// returned time is its local time at the end. Small pens, so that quotas bite.
fn build(events: &[Event], config: ReplicaConfig) -> (Replica, u64) {
    let (mut source, genesis, founder) = found();
    for i in 1..=3 {
        source
            .add(&founder, bundle(&identity(i), i, T0), T0 + u64::from(i))
            .unwrap();
        source
            .promote(&founder, identity(i).id(), T0 + u64::from(i))
            .unwrap();
    }
    let mut replica = Replica::join(&genesis, config, T0).unwrap();
    replica.ingest_batch(source.ops().cloned().collect(), T0 + 10);
    let strangers: Vec<Identity> = (20..24).map(identity).collect();
    for (i, stranger) in strangers.iter().enumerate() {
        source
            .add(&founder, bundle(stranger, 20 + i as u8, T0), T0 + 5)
            .unwrap();
    }
    let mut now = T0 + 10;
    let mut n = 0u64;
    for event in events {
        n += 1;
        let target = identity(10 + (n % 5) as u8);
        let op = match event {
            Event::Wait { ms } => {
                // A device runs its timers as time passes: nothing held is due at `now`.
                now += ms;
                replica.advance(now);
                continue;
            }
            Event::MemberOp { who, at } if n.is_multiple_of(2) => source
                .add(&identity(*who), bundle(&target, 10, T0), T0 + 100 + at + n)
                .map(|(op, _)| op),
            Event::MemberOp { who, at } => source
                .remove(&identity(*who), target.id(), T0 + 100 + at + n)
                .map(|(op, _)| op),
            Event::StrangerOp { who } => {
                let stranger = &strangers[usize::from(*who)];
                source
                    .rotate(stranger, bundle(stranger, n as u8, now + n), now + n)
                    .map(|(op, _)| op)
            }
        };
        if let Ok(op) = op {
            replica.ingest(op, now).unwrap();
        }
    }
    (replica, now)
}

fn small_pens() -> ReplicaConfig {
    ReplicaConfig {
        quarantine_limit: 6,
        quarantine_per_author: 3,
        held_limit: 6,
        held_per_author: 3,
        ..ReplicaConfig::default()
    }
}

proptest! {
    #![proptest_config(support::config_with_cases(48))]

    /// Save then load, with the same settings at the same local time, restores the view,
    /// digest, summary, held set, quarantine and clock, also when the pens are full; with
    /// pens that never overflow, loading later equals letting the saved replica's held
    /// operations fall due at that time. (With full pens it need not: an operation waiting
    /// in the quarantine for a held predecessor may have been pushed out, where loading later
    /// logs the two together.)
    #[test]
    fn load_restores_exactly_what_was_saved(
        events in proptest::collection::vec(event(), 0..30),
        later in 0u64..3 * DRIFT,
    ) {
        let config = small_pens();
        let (replica, now) = build(&events, config);
        let loaded = reload(&replica, config, now);
        prop_assert_eq!(state(&loaded), state(&replica));
        prop_assert_eq!(loaded.save(), replica.save());

        let config = ReplicaConfig::default();
        let (replica, now) = build(&events, config);
        let mut advanced = replica.clone();
        advanced.advance(now + later);
        let loaded_later = reload(&replica, config, now + later);
        prop_assert_eq!(loaded_later.view(), advanced.view());
        prop_assert_eq!(loaded_later.summary(), advanced.summary());
        prop_assert_eq!(
            loaded_later.held().collect::<Vec<_>>(),
            advanced.held().collect::<Vec<_>>()
        );
    }
}

/// B1: a held (future-dated) op stays held through a reload, even when the saved clock is
/// ahead of local time (it received a stamp just within the drift bound), and the loaded
/// view is the saved one; it is logged when local time reaches it, as on the saved replica.
#[test]
fn held_ops_stay_held_after_loading() {
    let (mut replica, _, founder) = found();
    let mut source = replica.clone();
    let now = T0 + 100;
    let (near, _) = source
        .rotate(&founder, bundle(&founder, 5, T0), now + DRIFT - 1)
        .unwrap();
    let future = now + DRIFT + 1_000;
    let (op, _) = source
        .add(&founder, bundle(&identity(1), 1, T0), future)
        .unwrap();
    assert_eq!(replica.ingest(near, now).unwrap().status, Status::Logged);
    assert!(replica.clock().last().millis() >= now + DRIFT - 1);
    assert_eq!(
        replica.ingest(op.clone(), now).unwrap().status,
        Status::Held
    );
    let loaded = reload(&replica, ReplicaConfig::default(), now);
    assert!(!loaded.is_member(&identity(1).id()));
    assert_eq!(state(&loaded), state(&replica));
    let mut loaded = loaded;
    loaded.advance(future);
    assert!(loaded.is_member(&identity(1).id()));
}

/// B2: a replica joined from a future-dated genesis (so the genesis is held) reloads.
#[test]
fn a_replica_whose_genesis_is_held_reloads() {
    let founder = identity(0);
    let future = T0 + 10 * DRIFT;
    let (_, genesis) = Replica::create(
        &founder,
        bundle(&founder, 0, T0),
        [0; 16],
        ReplicaConfig::default(),
        future,
    )
    .unwrap();
    let replica = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
    assert_eq!(replica.held().count(), 1);
    let loaded = reload(&replica, ReplicaConfig::default(), T0);
    assert_eq!(state(&loaded), state(&replica));
}

/// B3: the quarantine is the same after a reload, and an author over its quota loses its
/// furthest operation along its chain (whatever the order of arrival: here the last one
/// arrives first), as it would have without the reload.
#[test]
fn quarantine_order_survives_a_reload() {
    let config = ReplicaConfig {
        quarantine_per_author: 3,
        ..ReplicaConfig::default()
    };
    let (source, genesis, founder) = found();
    let mut source = source;
    let stranger = identity(9);
    source
        .add(&founder, bundle(&stranger, 9, T0), T0 + 1)
        .unwrap();
    let ops: Vec<SignedOp> = (0..4u8)
        .map(|i| {
            let at = T0 + 10 + u64::from(i);
            source
                .rotate(&stranger, bundle(&stranger, i, at), at)
                .unwrap()
                .0
        })
        .collect();
    let mut replica = Replica::join(&genesis, config, T0).unwrap();
    for op in ops[1..].iter().rev() {
        assert_eq!(
            replica.ingest(op.clone(), T0 + 100).unwrap().status,
            Status::Quarantined
        );
    }
    let mut loaded = reload(&replica, config, T0 + 100);
    assert_eq!(state(&loaded), state(&replica));
    for r in [&mut replica, &mut loaded] {
        r.ingest(ops[0].clone(), T0 + 100).unwrap();
        let kept: Vec<SignedOp> = r.quarantined().cloned().collect();
        assert_eq!(kept, ops[..3].to_vec(), "the last along the chain goes");
    }
}

/// The snapshot body as this code writes it (version 3): for forging files.
#[derive(Serialize)]
struct BodyV3 {
    group: GroupId,
    clock: Timestamp,
    ops: Vec<SignedOp>,
    held: Vec<SignedOp>,
    quarantined: Vec<SignedOp>,
}

/// F6: a forged snapshot cannot set the clock or apply future ops. Its clock in 2100 is
/// refused; with an honest clock, its far-future removal of a member, listed among the
/// logged ops, is held like any other; files of versions 1 and 2 (which carried settings,
/// and ops without chains) are refused.
#[test]
fn a_forged_snapshot_sets_neither_settings_nor_clock_nor_future() {
    let (mut replica, _, founder) = found();
    replica
        .add(&founder, bundle(&identity(1), 1, T0), T0 + 1)
        .unwrap();
    let now = T0 + 1_000;
    let year_2100 = 4_102_444_800_000u64;
    let mut source = replica.clone();
    let (future_remove, _) = source
        .remove(&founder, identity(1).id(), year_2100)
        .unwrap();
    let mut ops: Vec<SignedOp> = replica.ops().cloned().collect();
    ops.push(future_remove.clone());
    let config = ReplicaConfig::default();

    let forged_clock = file(
        3,
        &BodyV3 {
            group: replica.group(),
            clock: Timestamp::from_physical(year_2100),
            ops: ops.clone(),
            held: vec![],
            quarantined: vec![],
        },
    );
    assert!(matches!(
        Replica::load(&forged_clock, config, MAX_LEN, now),
        Err(SnapshotError::ClockAhead(_))
    ));

    for version in [1, 2] {
        let old = file(
            version,
            &BodyV3 {
                group: replica.group(),
                clock: replica.clock().last(),
                ops: ops.clone(),
                held: vec![],
                quarantined: vec![],
            },
        );
        assert_eq!(
            Replica::load(&old, config, MAX_LEN, now).err(),
            Some(SnapshotError::UnsupportedVersion(version))
        );
    }
    let forged_ops = file(
        3,
        &BodyV3 {
            group: replica.group(),
            clock: replica.clock().last(),
            ops,
            held: vec![],
            quarantined: vec![],
        },
    );
    let mut loaded = Replica::load(&forged_ops, config, MAX_LEN, now).unwrap();
    assert!(loaded.refused.is_empty());
    assert_eq!(loaded.replica.config(), config);
    assert!(
        loaded.replica.is_member(&identity(1).id()),
        "far-future removal applied"
    );
    assert_eq!(
        loaded.replica.held().cloned().collect::<Vec<_>>(),
        vec![future_remove]
    );
    assert!(loaded.replica.stamp(now).millis() < now + DRIFT);
}

/// An op the current rules refuse (here a bundle with a small-order encryption key, which
/// an older version accepted off the wire) is reported, and everything else loads.
#[test]
fn refused_ops_are_reported_and_the_rest_loads() {
    let (mut replica, _, founder) = found();
    replica
        .add(&founder, bundle(&identity(1), 1, T0), T0 + 1)
        .unwrap();
    let weak = identity(2).bundle(EncryptionKey([0; 32]), Timestamp::from_physical(T0));
    let old_op = Op {
        group: replica.group(),
        author: founder.id(),
        seq: 3,
        prev: replica.ops().last().unwrap().id(),
        timestamp: Timestamp::from_physical(T0 + 2),
        body: Body::Add {
            bundle: weak,
            watermark: Watermark::NONE,
        },
    }
    .sign(&founder);
    let mut ops: Vec<SignedOp> = replica.ops().cloned().collect();
    ops.push(old_op.clone());
    let saved = file(
        3,
        &BodyV3 {
            group: replica.group(),
            clock: replica.clock().last(),
            ops,
            held: vec![],
            quarantined: vec![],
        },
    );
    let loaded = Replica::load(&saved, ReplicaConfig::default(), MAX_LEN, T0 + 100).unwrap();
    assert_eq!(
        loaded.refused,
        vec![(
            old_op,
            IngestError::Signature(KeyError::WeakEncryptionKey(identity(2).id()))
        )]
    );
    assert_eq!(state(&loaded.replica), state(&replica));
}

/// F7 (pens): a member flooding the held pen with 1,024 nearer-future ops evicts only its
/// own; another member's held op stays. The same for fresh identities flooding the
/// quarantine with one op each.
#[test]
fn a_flood_cannot_evict_another_authors_held_or_quarantined_op() {
    let (mut replica, genesis, founder) = found();
    for i in 1..=2 {
        replica
            .add(&founder, bundle(&identity(i), i, T0), T0 + u64::from(i))
            .unwrap();
    }
    let mut source = replica.clone();
    let now = T0 + 1_000;
    let at = now + DRIFT + 60_000;
    let (honest, _) = source
        .rotate(&identity(1), bundle(&identity(1), 7, at), at)
        .unwrap();
    assert_eq!(
        replica.ingest(honest.clone(), now).unwrap().status,
        Status::Held
    );
    let mut flooder = source.clone();
    let flood: Vec<SignedOp> = (0..1024u64)
        .map(|i| {
            let at = now + DRIFT + 1 + i;
            flooder
                .rotate(&identity(2), bundle(&identity(2), 8, at), at)
                .unwrap()
                .0
        })
        .collect();
    replica.ingest_batch(flood, now);
    let config = replica.config();
    assert!(replica.held().count() <= config.held_per_author + 1);
    assert!(
        replica.held().any(|op| op.id() == honest.id()),
        "honest held op evicted"
    );

    // The quarantine: an early stranger's op, then 2,000 fresh identities with one op each.
    let mut quarantined = Replica::join(&genesis, config, T0).unwrap();
    let mut fork = Replica::join(&genesis, config, T0).unwrap();
    fork.ingest_batch(replica.ops().cloned().collect(), T0 + 10);
    let first = identity(200);
    fork.add(&founder, bundle(&first, 9, T0), T0 + 20).unwrap();
    let (early, _) = fork
        .rotate(&first, bundle(&first, 9, T0 + 21), T0 + 21)
        .unwrap();
    quarantined.ingest(early.clone(), T0 + 100).unwrap();
    for n in 0..2_000u32 {
        let stranger = Identity::from_secret_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes());
        fork.add(&founder, bundle(&stranger, 9, T0), T0 + 30)
            .unwrap();
        let (op, _) = fork
            .rotate(&stranger, bundle(&stranger, 9, T0 + 31), T0 + 31)
            .unwrap();
        quarantined.ingest(op, T0 + 100).unwrap();
    }
    assert_eq!(quarantined.quarantined().count(), config.quarantine_limit);
    assert!(quarantined.quarantined().any(|op| op.id() == early.id()));
}

/// The other fields of a forged file: an unknown version is refused; a group id naming no
/// genesis in the file is refused; a clock below the newest logged stamp is raised above
/// it; and an op filed in the wrong list (a loggable op among the quarantined, a due op
/// among the held) goes where the normal rules send it.
#[test]
fn every_other_forged_field_is_refused_or_overridden() {
    let (mut replica, _, founder) = found();
    replica
        .add(&founder, bundle(&identity(1), 1, T0), T0 + 1)
        .unwrap();
    let ops: Vec<SignedOp> = replica.ops().cloned().collect();
    let newest = ops.iter().map(|op| op.op().timestamp).max().unwrap();
    let body = |group, clock, ops: Vec<SignedOp>, held, quarantined| BodyV3 {
        group,
        clock,
        ops,
        held,
        quarantined,
    };
    let config = ReplicaConfig::default();
    let now = T0 + 1_000;
    let honest = body(
        replica.group(),
        replica.clock().last(),
        ops.clone(),
        vec![],
        vec![],
    );

    assert_eq!(
        Replica::load(&file(4, &honest), config, MAX_LEN, now).err(),
        Some(SnapshotError::UnsupportedVersion(4))
    );
    let elsewhere = body(
        GroupId([9; 32]),
        replica.clock().last(),
        ops.clone(),
        vec![],
        vec![],
    );
    assert_eq!(
        Replica::load(&file(3, &elsewhere), config, MAX_LEN, now).err(),
        Some(SnapshotError::NoGenesis)
    );
    let low_clock = body(
        replica.group(),
        Timestamp::ZERO,
        ops.clone(),
        vec![],
        vec![],
    );
    let loaded = Replica::load(&file(3, &low_clock), config, MAX_LEN, now).unwrap();
    assert!(loaded.replica.clock().last() > newest);

    let (genesis, rest) = ops.split_first().unwrap();
    let misfiled = body(
        replica.group(),
        replica.clock().last(),
        vec![],
        vec![genesis.clone()],
        rest.to_vec(),
    );
    let loaded = Replica::load(&file(3, &misfiled), config, MAX_LEN, now).unwrap();
    assert!(loaded.refused.is_empty());
    assert_eq!(state(&loaded.replica), state(&replica));
}
