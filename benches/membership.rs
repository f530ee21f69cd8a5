//! Membership engine: ingest of an op newer than everything (n = 100, 10k, 100k ops in the
//! log); ingest of a late op (an admin's, from across a split) stamped 1,000 positions deep;
//! ingest of a removed admin's backdated op into a log of 100k ops (review finding F5);
//! batch ingest of 1,000 ops next to the verification of their 2,000 signatures alone under
//! the protocol's rule (the floor) and under the alternative rule (`verify_strict` one by
//! one); and two replicas of 10k members converging after a split with 1% divergence (time,
//! and bytes on the wire).
//!
//! Run: `cargo bench --bench membership`.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use ed25519_dalek::{Signature, VerifyingKey};
use splitsafe::clock::Timestamp;
use splitsafe::codec;
use splitsafe::group::{Body, Op, Replica, ReplicaConfig, SignedOp, Watermark};
use splitsafe::keys::{EncryptionKey, Identity, SignedMessage};
use std::hint::black_box;
use std::time::{Duration, Instant};

const T0: u64 = 1_795_694_400_000;

fn member(i: u32) -> Identity {
    Identity::from_secret_bytes(*blake3::hash(&i.to_be_bytes()).as_bytes())
}

fn founder() -> Identity {
    member(0)
}

/// A group whose founder has added members `1..n` at `T0 + i` ms and made member 1 an admin:
/// a log of n + 1 ops.
fn group(n: u32) -> Replica {
    let founder = founder();
    let bundle = founder.bundle(
        EncryptionKey(x25519_dalek::X25519_BASEPOINT_BYTES),
        Timestamp::from_physical(T0),
    );
    let (mut replica, _) =
        Replica::create(&founder, bundle, [0; 16], ReplicaConfig::default(), T0).unwrap();
    add_members(&mut replica, 1..n, T0);
    replica
        .promote(&founder, member(1).id(), T0 + u64::from(n))
        .unwrap();
    replica
}

fn add_members(replica: &mut Replica, ids: std::ops::Range<u32>, t: u64) {
    let founder = founder();
    for i in ids {
        let who = member(i);
        let bundle = who.bundle(
            EncryptionKey(x25519_dalek::X25519_BASEPOINT_BYTES),
            Timestamp::from_physical(T0),
        );
        replica.add(&founder, bundle, t + u64::from(i)).unwrap();
    }
}

/// `count` removals of never-added ids by `author`, made on a copy of `replica` from time
/// `t`: valid, distinct operations, each next on the author's chain.
fn removals(replica: &Replica, author: &Identity, count: u32, t: u64) -> Vec<SignedOp> {
    let mut fork = replica.clone();
    (0..count)
        .map(|j| {
            let target = member(10_000_000 + j).id();
            fork.remove(author, target, t + u64::from(j)).unwrap().0
        })
        .collect()
}

/// Times ingesting `iters` ops of `pool` one by one, into a fresh copy of `base` each time
/// the pool runs out (the copying is not timed).
fn ingest_each(base: &Replica, pool: &[SignedOp], iters: u64, now: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut remaining = iters as usize;
    while remaining > 0 {
        let take = remaining.min(pool.len());
        let mut replica = base.clone();
        let start = Instant::now();
        for op in &pool[..take] {
            black_box(replica.ingest(op.clone(), now).unwrap());
        }
        total += start.elapsed();
        remaining -= take;
    }
    total
}

fn ingest_newest(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingest_newest");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in [100u32, 10_000, 100_000] {
        let base = group(n);
        let t = T0 + u64::from(n) + 10;
        let pool = removals(&base, &founder(), 5_000, t);
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| ingest_each(&base, &pool, iters, t + 30_000))
        });
    }
    g.finish();
}

fn ingest_late(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingest_late_1000_deep");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    // 9,000 ops, then 1,000 more much later; the late ops, removals by admin 1 made on a
    // replica that never saw the last 1,000, are stamped in the gap.
    let mut base = group(9_000);
    let before_gap = base.clone();
    add_members(&mut base, 9_000..10_000, T0 + 1_000_000);
    let pool = removals(&before_gap, &member(1), 5_000, T0 + 20_000);
    let now = T0 + 2_000_000;
    g.bench_function("log_10k", |b| {
        b.iter_custom(|iters| ingest_each(&base, &pool, iters, now))
    });
    g.finish();
}

/// `count` removals of never-added ids signed by `author` by hand, stamped from `t` on (a
/// replica's clock would stamp them after everything it has seen), chained from its last op.
fn backdated(replica: &Replica, author: &Identity, count: u32, t: u64) -> Vec<SignedOp> {
    let mut prev = Op::NO_PREV;
    (0..count)
        .map(|j| {
            let op = Op {
                group: replica.group(),
                author: author.id(),
                seq: 1 + u64::from(j),
                prev,
                timestamp: Timestamp::from_physical(t + u64::from(j)),
                body: Body::Remove {
                    member: member(10_000_000 + j).id(),
                    watermark: Watermark::NONE,
                },
            }
            .sign(author);
            prev = op.id();
            op
        })
        .collect()
}

/// F5: admin 1 is removed after 100k ops; from a stale replica it signs ops stamped at the
/// very start of the log. Each is void (above the removal's watermark): it costs its
/// signature check and a place in the bounded quarantine, never a re-fold of the log.
fn ingest_backdated_void(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingest_backdated_void");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let n = 100_000u32;
    let stale = group(n);
    let mut base = stale.clone();
    let t = T0 + u64::from(n) + 10;
    base.remove(&founder(), member(1).id(), t).unwrap();
    let pool = backdated(&stale, &member(1), 5_000, T0 + 20);
    g.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter_custom(|iters| ingest_each(&base, &pool, iters, t + 30_000))
    });
    g.finish();
}

/// A removed admin that had made 10,000 ops (all seen by its remover) signs ops that
/// equivocate at its first sequence number: each is vouched for by the watermark, so it is
/// logged (void), and it makes the engine judge the admin's chain again. The cost is linear
/// in the chain below the watermark, not in the log.
fn ingest_equivocation(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingest_equivocation_below_watermark");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let chain = 10_000u32;
    let mut base = group(100);
    let t = T0 + 1_000;
    removals(&base, &member(1), chain, t)
        .into_iter()
        .for_each(|op| drop(base.ingest(op, t + u64::from(chain)).unwrap()));
    let now = t + u64::from(chain) + 10;
    base.remove(&founder(), member(1).id(), now).unwrap();
    let pool: Vec<SignedOp> = backdated(&base, &member(1), 1, T0 + 20)
        .into_iter()
        .chain((1..2_000u32).map(|k| {
            let op = &backdated(&base, &member(1), 1, T0 + 20 + u64::from(k))[0];
            op.clone()
        }))
        .collect();
    g.bench_function(BenchmarkId::from_parameter(chain), |b| {
        b.iter_custom(|iters| ingest_each(&base, &pool, iters, now + 30_000))
    });
    g.finish();
}

/// Every signature an op carries, as the library checks it.
fn signatures(ops: &[SignedOp]) -> Vec<SignedMessage> {
    let mut out = vec![];
    for op in ops {
        out.push(SignedMessage {
            signer: op.op().author,
            bytes: op.op().signed_bytes(),
            signature: *op.signature(),
        });
        if let Body::Add { bundle, .. } = &op.op().body {
            out.push(SignedMessage {
                signer: bundle.member,
                bytes: bundle.signed_bytes(),
                signature: bundle.signature,
            });
        }
    }
    out
}

/// Batch ingest of 1,000 adds beside the floors of both candidate signature rules on the
/// same 2,000 signatures: the chosen one (ZIP 215's cofactored equation with canonical
/// encodings, one batch, keys parsed from bytes) and the alternative (ed25519-dalek's
/// `verify_strict` one by one, the only way to make it deterministic).
fn batch_ingest(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_1000_adds");
    g.sample_size(20).measurement_time(Duration::from_secs(6));
    let base = group(10);
    let mut fork = base.clone();
    add_members(&mut fork, 10..1_010, T0 + 100);
    let ops: Vec<SignedOp> = fork.ops().skip(base.op_count()).cloned().collect();
    assert_eq!(ops.len(), 1_000);
    let now = T0 + 10_000;
    g.bench_function("ingest_batch", |b| {
        b.iter_batched(
            || (base.clone(), ops.clone()),
            |(mut replica, ops)| black_box(replica.ingest_batch(ops, now)),
            BatchSize::SmallInput,
        )
    });
    let messages = signatures(&ops);
    assert_eq!(messages.len(), 2_000);
    g.bench_function("floor_rule_batch_2000_sigs", |b| {
        b.iter(|| SignedMessage::verify_batch(&messages).unwrap())
    });
    g.bench_function("rule_one_by_one_2000_sigs", |b| {
        b.iter(|| messages.iter().try_for_each(SignedMessage::verify).unwrap())
    });
    g.bench_function("alternative_verify_strict_2000_sigs", |b| {
        b.iter(|| {
            for m in &messages {
                let key = VerifyingKey::from_bytes(&m.signer.0).unwrap();
                key.verify_strict(&m.bytes, &Signature::from_bytes(&m.signature.0))
                    .unwrap();
            }
        })
    });
    g.finish();
}

/// One sync round between `a` and `b`; returns the bytes it puts on the wire.
fn sync_round(a: &mut Replica, b: &mut Replica, now: u64) -> usize {
    let a_summary = codec::encode(&a.summary());
    let to_a = b.missing_for(&a.summary()).unwrap();
    let b_summary = codec::encode(&b.summary());
    let to_a_bytes = codec::encode(&to_a).len();
    a.ingest_batch(to_a, now);
    let to_b = a.missing_for(&b.summary()).unwrap();
    let to_b_bytes = codec::encode(&to_b).len();
    b.ingest_batch(to_b, now);
    a_summary.len() + b_summary.len() + to_a_bytes + to_b_bytes
}

fn split_and_heal(members: u32, diverging: u32) -> (Replica, Replica) {
    let base = group(members);
    let (mut a, mut b) = (base.clone(), base.clone());
    let t = T0 + u64::from(members) + 10;
    // Side A: the founder removes members; side B: member 1 adds newcomers.
    let founder = founder();
    for j in 0..diverging / 2 {
        a.remove(&founder, member(2 + j).id(), t + u64::from(j))
            .unwrap();
    }
    let one = member(1);
    for j in 0..diverging / 2 {
        let who = member(20_000_000 + j);
        let bundle = who.bundle(
            EncryptionKey(x25519_dalek::X25519_BASEPOINT_BYTES),
            Timestamp::from_physical(t),
        );
        b.add(&one, bundle, t + u64::from(j)).unwrap();
    }
    (a, b)
}

fn converge(c: &mut Criterion) {
    let mut g = c.benchmark_group("converge_after_split");
    g.sample_size(10).measurement_time(Duration::from_secs(6));
    let now = T0 + 10_000_000;
    for (members, diverging) in [(1_000u32, 100u32), (10_000, 100)] {
        let (a, b) = split_and_heal(members, diverging);
        let (mut x, mut y) = (a.clone(), b.clone());
        let bytes = sync_round(&mut x, &mut y, now);
        assert_eq!(x.view().digest(), y.view().digest());
        eprintln!(
            "converge {members} members, {diverging} diverging ops: one round, {bytes} bytes on the wire"
        );
        g.bench_function(
            BenchmarkId::new(format!("{diverging}_ops"), members),
            |bench| {
                bench.iter_batched(
                    || (a.clone(), b.clone()),
                    |(mut a, mut b)| {
                        sync_round(&mut a, &mut b, now);
                        let digests = (a.view().digest(), b.view().digest());
                        assert_eq!(digests.0, digests.1);
                        (a, b)
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(
    benches,
    ingest_newest,
    ingest_late,
    ingest_backdated_void,
    ingest_equivocation,
    batch_ingest,
    converge
);
criterion_main!(benches);
