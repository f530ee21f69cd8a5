//! Identities, bundles, groups and random histories for the membership tests and fuzz
//! targets (which include this file by path; it depends on the library alone).

use splitsafe::clock::Timestamp;
use splitsafe::group::{Replica, ReplicaConfig, SignedOp};
use splitsafe::keys::{EncryptionKey, Identity, KeyBundle};

/// 2026-11-26 12:00:00 UTC: all test times are offsets from it.
pub const T0: u64 = 1_795_694_400_000;

/// The `n`th test identity (deterministic).
pub fn identity(n: u8) -> Identity {
    Identity::from_secret_bytes([n.wrapping_add(1); 32])
}

/// The `k`th test encryption key: the X25519 public key of the secret `[k; 32]`.
pub fn enc_key(k: u8) -> EncryptionKey {
    let secret = x25519_dalek::StaticSecret::from([k; 32]);
    EncryptionKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
}

/// A bundle of `who`'s publishing test key `key`, made at `at_ms`.
pub fn bundle(who: &Identity, key: u8, at_ms: u64) -> KeyBundle {
    who.bundle(enc_key(key), Timestamp::from_physical(at_ms))
}

/// A group founded by identity 0 at `T0`; returns the founder's replica and the genesis.
pub fn found() -> (Replica, SignedOp, Identity) {
    let founder = identity(0);
    let (replica, genesis) = Replica::create(
        &founder,
        bundle(&founder, 0, T0),
        [0; 16],
        ReplicaConfig::default(),
        T0,
    )
    .expect("a fresh founder can create a group");
    (replica, genesis, founder)
}

use splitsafe::group::Summary;
use std::collections::BTreeMap;

/// Devices in a random history; device 0 founds the group (the owner), adds 1 and 2 and
/// makes 1 an admin at the start.
pub const DEVICES: u8 = 5;

/// One step of a random history.
#[derive(Clone, Debug)]
pub enum Step {
    /// `device` adds `target` (with a fresh key).
    Add { device: u8, target: u8 },
    /// `device` removes `target` (itself: leaves).
    Remove { device: u8, target: u8 },
    /// `device` rotates its own key.
    Rotate { device: u8 },
    /// `device` makes `target` an admin (`admin`) or a plain member.
    Rank { device: u8, target: u8, admin: bool },
    /// `to` learns what `from` has that it lacks.
    Deliver { from: u8, to: u8 },
}

/// A history step from three arbitrary bytes, for the fuzz targets: the kind, then two
/// devices (the kind's top bit says promote or demote).
pub fn step_from_bytes(kind: u8, a: u8, b: u8) -> Step {
    let (a, b) = (a % DEVICES, b % DEVICES);
    match kind % 5 {
        0 => Step::Add {
            device: a,
            target: b,
        },
        1 => Step::Remove {
            device: a,
            target: b,
        },
        2 => Step::Rotate { device: a },
        3 => Step::Rank {
            device: a,
            target: b,
            admin: kind & 0x80 != 0,
        },
        _ => Step::Deliver { from: a, to: b },
    }
}

/// What a removed member signs to get back in or do harm: a removal of each of `targets`
/// (with `watermark`), an add and a promotion of `puppet`, and a leave.
pub fn hostile_bodies(
    targets: &[splitsafe::keys::MemberId],
    watermark: splitsafe::group::Watermark,
    puppet: &Identity,
) -> Vec<splitsafe::group::Body> {
    use splitsafe::group::{Body, Rank, Watermark};
    let removals = targets.iter().map(|member| Body::Remove {
        member: *member,
        watermark,
    });
    removals
        .chain([
            Body::Add {
                bundle: bundle(puppet, 6, T0),
                watermark: Watermark::NONE,
            },
            Body::Rank {
                member: puppet.id(),
                rank: Rank::Admin,
                watermark: Watermark::NONE,
            },
            Body::Leave,
        ])
        .collect()
}

/// Sends `to` the operations `from` has that `to`'s summary says it may lack.
pub fn deliver(from: &Replica, to: &mut Replica, now: u64) -> usize {
    let delta = from.missing_for(&to.summary()).expect("same group");
    let n = delta.len();
    let report = to.ingest_batch(delta, now);
    assert!(report.results.iter().all(Result::is_ok), "{report:?}");
    n
}

/// A random history played out on one replica per device, with concurrency wherever
/// devices have not heard from each other. Returns the genesis and every operation any
/// device produced (including those that turn out void); actions a device's own view
/// refuses are skipped.
pub fn play(steps: &[Step]) -> (SignedOp, Vec<SignedOp>) {
    let (mut founder_replica, genesis, founder) = found();
    let mut ops = vec![genesis.clone()];
    for i in 1..=2 {
        let (op, _) = founder_replica
            .add(&founder, bundle(&identity(i), i, T0), T0 + u64::from(i))
            .unwrap();
        ops.push(op);
    }
    let (op, _) = founder_replica
        .promote(&founder, identity(1).id(), T0 + 3)
        .unwrap();
    ops.push(op);
    let mut devices: Vec<Replica> = (0..DEVICES).map(|_| founder_replica.clone()).collect();
    for (k, step) in steps.iter().enumerate() {
        let now = T0 + 10 * (k as u64 + 1);
        let made = match *step {
            Step::Add { device, target } => devices[usize::from(device)].add(
                &identity(device),
                bundle(&identity(target), k as u8, now),
                now,
            ),
            Step::Remove { device, target } => {
                devices[usize::from(device)].remove(&identity(device), identity(target).id(), now)
            }
            Step::Rotate { device } => devices[usize::from(device)].rotate(
                &identity(device),
                bundle(&identity(device), k as u8, now),
                now,
            ),
            Step::Rank {
                device,
                target,
                admin,
            } => {
                let replica = &mut devices[usize::from(device)];
                let (author, target) = (identity(device), identity(target).id());
                if admin {
                    replica.promote(&author, target, now)
                } else {
                    replica.demote(&author, target, now)
                }
            }
            Step::Deliver { from, to } => {
                let from = devices[usize::from(from)].clone();
                deliver(&from, &mut devices[usize::from(to)], now);
                continue;
            }
        };
        if let Ok((op, _)) = made {
            ops.push(op);
        }
    }
    (genesis, ops)
}

/// A fresh replica that has ingested `ops` one by one, in the order given.
pub fn replay<'a>(genesis: &SignedOp, ops: impl IntoIterator<Item = &'a SignedOp>) -> Replica {
    let mut replica = Replica::join(genesis, ReplicaConfig::default(), T0).unwrap();
    for op in ops {
        replica.ingest(op.clone(), T0 + 1_000).unwrap();
    }
    replica
}

/// Runs sync rounds (summary, delta + summary, delta) until neither side receives anything;
/// returns the number of messages that carried operations or summaries.
pub fn sync_until_quiet(a: &mut Replica, b: &mut Replica, now: u64) -> usize {
    let mut messages = 0;
    loop {
        let a_summary: Summary = a.summary();
        let to_a = b.missing_for(&a_summary).unwrap();
        let b_summary = b.summary();
        let got_a = to_a.len();
        a.ingest_batch(to_a, now);
        let to_b = a.missing_for(&b_summary).unwrap();
        let got_b = to_b.len();
        b.ingest_batch(to_b, now);
        messages += 3;
        if got_a + got_b == 0 {
            return messages;
        }
        assert!(messages < 30, "sync does not settle");
    }
}

/// An independent, from-scratch evaluation of the authorization rules of
/// `spec/membership.md`: keep the operations whose chain reaches back to sequence number 1,
/// start with every verdict false, and judge every operation against the current verdicts
/// until nothing changes. Returns member -> (encryption key bytes, rank tag).
pub fn naive_fold(ops: &[SignedOp]) -> BTreeMap<[u8; 32], ([u8; 32], u8)> {
    use splitsafe::group::{Body, OpId, Rank};
    use splitsafe::keys::MemberId;
    let by_id: BTreeMap<OpId, &SignedOp> = ops.iter().map(|op| (op.id(), op)).collect();
    let parent = |op: &SignedOp| -> Option<&SignedOp> {
        let p = by_id.get(&op.op().prev)?;
        (p.op().author == op.op().author && p.op().seq + 1 == op.op().seq).then_some(*p)
    };
    let connected = |op: &SignedOp| {
        let mut at = op;
        while at.op().seq > 1 {
            match parent(at) {
                Some(p) => at = p,
                None => return false,
            }
        }
        true
    };
    let Some(owner) = ops
        .iter()
        .find(|op| matches!(op.op().body, Body::Create { .. }))
        .map(|op| op.op().author)
    else {
        return BTreeMap::new();
    };
    let live: Vec<&SignedOp> = by_id.values().copied().filter(|op| connected(op)).collect();
    let at_seq = |author: MemberId, seq: u64| {
        live.iter()
            .filter(|o| o.op().author == author && o.op().seq == seq)
            .count()
    };
    // Nothing pins the owner's chain: at a fork, the earliest stamped operation whose
    // predecessor is on it stays on it (the genesis at 1).
    let mut owner_chain = std::collections::BTreeSet::new();
    let mut at = ops
        .iter()
        .find(|op| matches!(op.op().body, Body::Create { .. }))
        .map(SignedOp::id);
    while let Some(id) = at {
        owner_chain.insert(id);
        at = live
            .iter()
            .filter(|o| o.op().author == owner && o.op().prev == id)
            .filter(|o| o.op().seq == by_id[&id].op().seq + 1)
            .min_by_key(|o| o.stamp())
            .map(|o| o.id());
    }
    let ancestors = |op: &SignedOp| {
        let mut out = vec![op.id()];
        let mut at = op;
        while let Some(p) = parent(at) {
            out.push(p.id());
            at = p;
        }
        out
    };
    let mut effective: BTreeMap<OpId, bool> = live.iter().map(|op| (op.id(), false)).collect();
    loop {
        let eff = |id: &OpId| effective[id];
        // Effective ops about `m`: (stamp, watermark, present) for adds, removes and leaves.
        let standing = |m: MemberId| -> Vec<(splitsafe::group::Stamp, u64, bool)> {
            live.iter()
                .filter(|o| eff(&o.id()))
                .filter_map(|o| match &o.op().body {
                    Body::Create { .. } if o.op().author == m => Some((o.stamp(), 0, true)),
                    Body::Leave if o.op().author == m => Some((o.stamp(), o.op().seq, false)),
                    Body::Add { bundle, watermark } if bundle.member == m => {
                        Some((o.stamp(), watermark.seq, true))
                    }
                    Body::Remove { member, watermark } if *member == m => {
                        Some((o.stamp(), watermark.seq, false))
                    }
                    _ => None,
                })
                .collect()
        };
        let grants = |m: MemberId| -> Vec<(u64, u64, Rank)> {
            live.iter()
                .filter(|o| eff(&o.id()) && o.op().author == owner)
                .filter_map(|o| match &o.op().body {
                    Body::Rank {
                        member,
                        rank,
                        watermark,
                    } if *member == m => Some((o.op().seq, watermark.seq, *rank)),
                    _ => None,
                })
                .collect()
        };
        let enabled = |m: MemberId, seq: u64| {
            standing(m)
                .into_iter()
                .filter(|(_, w, _)| *w < seq)
                .max_by_key(|(stamp, _, _)| *stamp)
                .is_some_and(|(_, _, present)| present)
        };
        let rank_at = |m: MemberId, seq: u64| {
            if m == owner {
                return Rank::Owner;
            }
            grants(m)
                .into_iter()
                .filter(|(_, w, _)| *w < seq)
                .max_by_key(|(s, _, _)| *s)
                .map_or(Rank::Member, |(_, _, r)| r)
        };
        let ever_admin = |m: MemberId| grants(m).iter().any(|(_, _, r)| *r == Rank::Admin);
        let pinned = |author: MemberId, id: OpId| {
            live.iter().filter(|o| eff(&o.id())).any(|o| {
                o.op().body.subject().is_some_and(|(s, w)| {
                    // Only a watermark naming the subject's operation at its number pins.
                    s == author
                        && by_id.get(&w.op).is_some_and(|p| {
                            p.op().author == author
                                && p.op().seq == w.seq
                                && connected(p)
                                && ancestors(p).contains(&id)
                        })
                })
            })
        };
        let judge = |op: &SignedOp| -> bool {
            let (author, seq) = (op.op().author, op.op().seq);
            let on_chain = if author == owner {
                owner_chain.contains(&op.id())
            } else {
                ancestors(op).iter().all(|a| {
                    let a_seq = by_id[a].op().seq;
                    at_seq(author, a_seq) == 1 || pinned(author, *a)
                })
            };
            let genesis = matches!(op.op().body, Body::Create { .. });
            let authorized = match &op.op().body {
                Body::Create { .. } => author == owner,
                Body::Rotate { .. } => true,
                Body::Leave => author != owner,
                Body::Rank { .. } => author == owner,
                Body::Add { .. } | Body::Remove { .. } => {
                    let (subject, _) = op.op().body.subject().unwrap();
                    subject != owner
                        && (author == owner
                            || (rank_at(author, seq) == Rank::Admin && !ever_admin(subject)))
                }
            };
            on_chain && (genesis || enabled(author, seq)) && authorized
        };
        let next: BTreeMap<OpId, bool> = live.iter().map(|op| (op.id(), judge(op))).collect();
        if next == effective {
            break;
        }
        effective = next;
    }
    let mut view = BTreeMap::new();
    let members: std::collections::BTreeSet<MemberId> = live
        .iter()
        .flat_map(|o| [Some(o.op().author), o.op().body.subject().map(|(s, _)| s)])
        .flatten()
        .collect();
    for m in members {
        let mut entries: Vec<(splitsafe::group::Stamp, bool)> = Vec::new();
        let mut bundles: Vec<KeyBundle> = Vec::new();
        let mut grants: Vec<(u64, Rank)> = Vec::new();
        for o in live.iter().filter(|o| effective[&o.id()]) {
            match &o.op().body {
                Body::Create { founder, .. } if o.op().author == m => {
                    entries.push((o.stamp(), true));
                    bundles.push(*founder);
                }
                Body::Leave if o.op().author == m => entries.push((o.stamp(), false)),
                Body::Rotate { bundle } if o.op().author == m => bundles.push(*bundle),
                Body::Add { bundle, .. } if bundle.member == m => {
                    entries.push((o.stamp(), true));
                    bundles.push(*bundle);
                }
                Body::Remove { member, .. } if *member == m => entries.push((o.stamp(), false)),
                Body::Rank { member, rank, .. } if *member == m => grants.push((o.op().seq, *rank)),
                _ => {}
            }
        }
        let present = entries.iter().max().is_some_and(|(_, p)| *p);
        let newest = bundles
            .iter()
            .max_by_key(|b| (b.created, b.encryption_key, b.signature));
        let rank = if m == owner {
            Rank::Owner
        } else {
            grants.iter().max().map_or(Rank::Member, |(_, r)| *r)
        };
        if let (true, Some(bundle)) = (present, newest) {
            view.insert(m.0, (bundle.encryption_key.0, rank.tag()));
        }
    }
    view
}

/// The view of a replica in the naive fold's terms.
pub fn view_map(replica: &Replica) -> BTreeMap<[u8; 32], ([u8; 32], u8)> {
    let view = replica.view();
    view.members()
        .map(|(m, b)| (m.0, (b.0, view.rank(m).unwrap().tag())))
        .collect()
}

/// An operation a removed admin crafts: its chain position (`seq`; `prev` 0: its honest op
/// at `seq - 1`, 1: an earlier crafted op at `seq - 1`, else its last honest op; a made-up
/// id when none exists), its stamp (`at` ms after `T0` if `early`, else after the removal),
/// and its body (0 remove, 1 add a puppet, 2 promote, else leave) about device `target`.
#[derive(Clone, Debug)]
pub struct Crafted {
    pub seq: u64,
    pub prev: u8,
    pub at: u64,
    pub body: u8,
    pub target: u8,
    pub early: bool,
}

/// P1 as a check: after the honest history `steps`, the owner removes admin 1 (with what its
/// replica has seen); admin 1 then signs `crafted`. Delivered before (`crafted_first`) or
/// after the honest ops, they must change neither the view nor any honest op's verdict, and
/// none may take effect. `Ok` also when the precondition does not hold (1 not removed).
pub fn removed_admin_attack(
    steps: &[Step],
    crafted: &[Crafted],
    crafted_first: bool,
) -> Result<(), String> {
    let (genesis, mut ops) = play(steps);
    let mut owner_view = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
    owner_view.ingest_batch(ops.clone(), T0 + 1_000);
    let one = identity(1);
    let Ok((removal, _)) = owner_view.remove(&identity(0), one.id(), T0 + 5_000) else {
        return Ok(());
    };
    ops.push(removal);
    let reference = replay(&genesis, &ops);
    if reference.is_member(&one.id()) {
        return Ok(());
    }
    let made = craft_all(&one, reference.group(), &ops, crafted);
    let order: Vec<&SignedOp> = if crafted_first {
        made.iter().chain(&ops).collect()
    } else {
        ops.iter().chain(&made).collect()
    };
    let attacked = replay(&genesis, order);
    if attacked.view() != reference.view() {
        return Err(format!(
            "view changed: {:?} vs {:?}",
            attacked.view(),
            reference.view()
        ));
    }
    let takes_effect = |r: &Replica, op: &SignedOp| r.is_effective(&op.id()) == Some(true);
    if let Some(op) = ops
        .iter()
        .find(|op| takes_effect(&attacked, op) != takes_effect(&reference, op))
    {
        return Err(format!("verdict of {op:?} changed"));
    }
    if let Some(op) = made.iter().find(|op| takes_effect(&attacked, op)) {
        return Err(format!("crafted {op:?} takes effect"));
    }
    Ok(())
}

/// Signs an operation with every field chosen by its author `who` (stamped `at_ms`).
pub fn sign_op(
    who: &Identity,
    group: splitsafe::group::GroupId,
    seq: u64,
    prev: splitsafe::group::OpId,
    at_ms: u64,
    body: splitsafe::group::Body,
) -> SignedOp {
    splitsafe::group::Op {
        group,
        author: who.id(),
        seq,
        prev,
        timestamp: Timestamp::from_physical(at_ms),
        body,
    }
    .sign(who)
}

/// Every way the differential tests deliver a set of operations to a fresh replica: one at a
/// time in the order given and reversed (each twice), in one batch, in seeded random batches
/// of random sizes, half through a snapshot (saved and loaded, then the rest), and by sync
/// from a replica that holds them all. Returns each path's name and replica.
pub fn delivery_paths(genesis: &SignedOp, ops: &[SignedOp], seed: u64) -> Vec<(String, Replica)> {
    use rand_core::{Rng as _, SeedableRng};
    let now = T0 + 1_000;
    let fresh = || Replica::join(genesis, ReplicaConfig::default(), T0).unwrap();
    let one_by_one = |order: Vec<&SignedOp>| {
        let mut r = fresh();
        for op in order.iter().chain(&order) {
            r.ingest((*op).clone(), now).unwrap();
            // The view is kept up to date one change at a time: after every step it is
            // the view computed from scratch.
            let scratch = r.view_from_scratch();
            assert_eq!(r.view(), &scratch, "after ingesting {:?}", op.id());
            // The kept digest rehashes only the buckets that changed.
            assert_eq!(
                r.view().digest(),
                scratch.digest(),
                "after ingesting {:?}",
                op.id()
            );
        }
        r
    };
    let mut paths = vec![
        ("in order".to_string(), one_by_one(ops.iter().collect())),
        (
            "reversed".to_string(),
            one_by_one(ops.iter().rev().collect()),
        ),
    ];
    let mut batch = fresh();
    batch.ingest_batch(ops.to_vec(), now);
    paths.push(("one batch".to_string(), batch));
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    for round in 0..3 {
        let mut shuffled = ops.to_vec();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let mut r = fresh();
        let mut rest = &shuffled[..];
        while !rest.is_empty() {
            let take = 1 + (rng.next_u64() % 4) as usize;
            let (now_batch, later) = rest.split_at(take.min(rest.len()));
            r.ingest_batch(now_batch.to_vec(), now);
            rest = later;
        }
        paths.push((format!("random batches {round}"), r));
        let half = shuffled.len() / 2;
        let mut first = fresh();
        first.ingest_batch(shuffled[..half].to_vec(), now);
        let mut loaded = Replica::load(&first.save(), ReplicaConfig::default(), 1 << 24, now)
            .expect("a saved replica loads")
            .replica;
        for op in &shuffled[half..] {
            loaded.ingest(op.clone(), now).unwrap();
        }
        let reloaded = Replica::load(&loaded.save(), ReplicaConfig::default(), 1 << 24, now)
            .expect("a saved replica loads")
            .replica;
        paths.push((format!("half through a snapshot {round}"), loaded));
        paths.push((format!("snapshot of everything {round}"), reloaded));
    }
    let mut synced = fresh();
    let full = paths[0].1.clone();
    sync_until_quiet(&mut synced, &mut full.clone(), now);
    paths.push(("sync".to_string(), synced));
    paths
}

/// Checks that every delivery path of `ops` shows the naive fold's view of them, with one
/// digest and one summary.
pub fn check_delivery_paths(genesis: &SignedOp, ops: &[SignedOp], seed: u64) -> Result<(), String> {
    let expected = naive_fold(ops);
    let paths = delivery_paths(genesis, ops, seed);
    let (_, first) = &paths[0];
    for (name, replica) in &paths {
        if view_map(replica) != expected {
            return Err(format!(
                "{name}: view {:?}, naive fold {:?}",
                view_map(replica),
                expected
            ));
        }
        let scratch = replica.view_from_scratch();
        if replica.view() != &scratch || replica.view().digest() != scratch.digest() {
            return Err(format!(
                "{name}: the view kept up to date is not the view from scratch"
            ));
        }
        if replica.view().digest() != first.view().digest() {
            return Err(format!("{name}: another digest"));
        }
        if replica.summary() != first.summary() {
            return Err(format!("{name}: another summary"));
        }
    }
    Ok(())
}

/// Signs what `crafted` describes as `who`'s operations in `group`, given every operation
/// so far (`ops`, from which `who`'s honest chain is read).
pub fn craft_all(
    who: &Identity,
    group: splitsafe::group::GroupId,
    ops: &[SignedOp],
    crafted: &[Crafted],
) -> Vec<SignedOp> {
    use splitsafe::group::{Body, Op, OpId, Rank, Watermark};

    let own: Vec<&SignedOp> = ops.iter().filter(|o| o.op().author == who.id()).collect();
    let mut made: Vec<SignedOp> = Vec::new();
    for c in crafted {
        let seq = c.seq.max(1);
        let found = match c.prev {
            _ if seq == 1 => Some(Op::NO_PREV),
            0 => own.iter().find(|o| o.op().seq == seq - 1).map(|o| o.id()),
            1 => made
                .iter()
                .rev()
                .find(|o| o.op().seq == seq - 1)
                .map(|o| o.id()),
            _ => own.last().map(|o| o.id()),
        };
        let prev = found.unwrap_or(OpId([seq as u8; 32]));
        let target = identity(c.target % DEVICES).id();
        let body = match c.body {
            0 if target != who.id() => Body::Remove {
                member: target,
                watermark: Watermark::NONE,
            },
            1 => Body::Add {
                bundle: bundle(&identity(7), 7, T0),
                watermark: Watermark::NONE,
            },
            2 if target != who.id() => Body::Rank {
                member: target,
                rank: Rank::Admin,
                watermark: Watermark::NONE,
            },
            _ => Body::Leave,
        };
        let at = c.at % 100_000;
        let stamp = if c.early { T0 + at } else { T0 + 6_000 + at };
        made.push(sign_op(who, group, seq, prev, stamp, body));
    }
    made
}
