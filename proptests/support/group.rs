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

/// Devices in a random history; device 0 founds the group and adds 1 and 2 at the start.
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
    /// `to` learns what `from` has that it lacks.
    Deliver { from: u8, to: u8 },
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
/// device produced (including those void at their stamp); actions a device's own view
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

/// An independent, from-scratch fold: sort by stamp, apply each op whose author is a member.
/// Returns member -> encryption key bytes.
pub fn naive_fold(ops: &[SignedOp]) -> BTreeMap<[u8; 32], [u8; 32]> {
    use splitsafe::group::Body;
    let mut sorted: Vec<&SignedOp> = ops.iter().collect();
    sorted.sort_by_key(|op| op.stamp());
    sorted.dedup_by_key(|op| op.stamp());
    let mut present: BTreeMap<[u8; 32], bool> = BTreeMap::new();
    let mut keys: BTreeMap<[u8; 32], (Timestamp, [u8; 32])> = BTreeMap::new();
    for op in sorted {
        let author = op.op().author.0;
        let is_create = matches!(op.op().body, Body::Create { .. });
        if !is_create && present.get(&author) != Some(&true) {
            continue;
        }
        let mut offer = |b: &KeyBundle| {
            let candidate = (b.created, b.encryption_key.0);
            let held = keys.entry(b.member.0).or_insert(candidate);
            if candidate > *held {
                *held = candidate;
            }
        };
        match &op.op().body {
            Body::Create { founder: b, .. } | Body::Add { bundle: b } => {
                present.insert(b.member.0, true);
                offer(b);
            }
            Body::Remove { member } => {
                present.insert(member.0, false);
            }
            Body::Rotate { bundle } => offer(bundle),
        }
    }
    present
        .into_iter()
        .filter(|(_, p)| *p)
        .map(|(m, _)| (m, keys[&m].1))
        .collect()
}

/// The view of a replica in the naive fold's terms.
pub fn view_map(replica: &Replica) -> BTreeMap<[u8; 32], [u8; 32]> {
    replica
        .view()
        .members()
        .map(|(m, b)| (m.0, b.encryption_key.0))
        .collect()
}
