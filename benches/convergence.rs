//! Healing a netsplit: a group of n devices split in two, 1,000 concurrent membership ops on
//! each side, then healed. Devices sync in dissemination rounds: in round r, device i syncs
//! with device (i + 2^r) mod n. Information from any device reaches all within ceil(log2 n)
//! rounds, so the expected bound is n * ceil(log2 n) sync exchanges (three messages each).
//! Measured: time until every device shows one digest, exchanges, bytes.
//!
//! Run: `cargo bench --bench convergence` (100 devices under criterion; set
//! `SPLITSAFE_BENCH_DEVICES=1000` to also time one heal of 1,000 devices).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use splitsafe::clock::Timestamp;
use splitsafe::codec;
use splitsafe::group::{Replica, ReplicaConfig};
use splitsafe::keys::{EncryptionKey, Identity};
use std::time::{Duration, Instant};

const T0: u64 = 1_795_694_400_000;
const OPS_PER_SIDE: u32 = 1_000;

fn identity(i: u32) -> Identity {
    Identity::from_secret_bytes(*blake3::hash(&i.to_be_bytes()).as_bytes())
}

fn bundle(i: u32) -> splitsafe::keys::KeyBundle {
    identity(i).bundle(
        EncryptionKey(x25519_dalek::X25519_BASEPOINT_BYTES),
        Timestamp::from_physical(T0),
    )
}

/// Every device's replica just before the heal: device 0 founded the group with all n
/// devices; then device 0 (left half) and device n-1 (right half) each made 1,000 ops.
fn split(n: u32) -> Vec<Replica> {
    let founder = identity(0);
    let (mut base, _) =
        Replica::create(&founder, bundle(0), [0; 16], ReplicaConfig::default(), T0).unwrap();
    for i in 1..n {
        base.add(&founder, bundle(i), T0 + u64::from(i)).unwrap();
    }
    let t = T0 + 10_000;
    let side = |author: u32, first: u32| {
        let mut replica = base.clone();
        let who = identity(author);
        for j in 0..OPS_PER_SIDE {
            let now = t + u64::from(j);
            if j % 4 == 3 {
                // Every fourth op removes someone this side added.
                let target = identity(first + j - 1).id();
                replica.remove(&who, target, now).unwrap();
            } else {
                replica.add(&who, bundle(first + j), now).unwrap();
            }
        }
        replica
    };
    let left = side(0, 1_000_000);
    let right = side(n - 1, 2_000_000);
    (0..n)
        .map(|i| {
            if i < n / 2 {
                left.clone()
            } else {
                right.clone()
            }
        })
        .collect()
}

struct Healed {
    exchanges: u64,
    bytes: u64,
    rounds: u32,
}

fn heal(devices: &mut [Replica]) -> Healed {
    let n = devices.len();
    let now = T0 + 1_000_000;
    let (mut exchanges, mut bytes, mut rounds) = (0, 0, 0);
    let converged = |d: &[Replica]| {
        d.windows(2)
            .all(|w| w[0].view().digest() == w[1].view().digest())
    };
    while !converged(devices) {
        let step = 1usize << rounds;
        for i in 0..n {
            let j = (i + step) % n;
            if i == j {
                continue;
            }
            let (a, b) = if i < j {
                let (l, r) = devices.split_at_mut(j);
                (&mut l[i], &mut r[0])
            } else {
                let (l, r) = devices.split_at_mut(i);
                (&mut r[0], &mut l[j])
            };
            let a_summary = a.summary();
            let to_a = b.missing_for(&a_summary).unwrap();
            let b_summary = b.summary();
            bytes += (codec::encode(&a_summary).len()
                + codec::encode(&b_summary).len()
                + codec::encode(&to_a).len()) as u64;
            a.ingest_batch(to_a, now);
            let to_b = a.missing_for(&b_summary).unwrap();
            bytes += codec::encode(&to_b).len() as u64;
            b.ingest_batch(to_b, now);
            exchanges += 1;
        }
        rounds += 1;
        assert!(rounds < 40, "no convergence");
    }
    Healed {
        exchanges,
        bytes,
        rounds,
    }
}

fn report(n: u32) {
    let mut devices = split(n);
    let start = Instant::now();
    let healed = heal(&mut devices);
    let bound = u64::from(n) * u64::from(32 - (n - 1).leading_zeros());
    eprintln!(
        "heal {n} devices, {OPS_PER_SIDE} ops per side: {:.2?}, {} rounds, {} exchanges (bound n*ceil(log2 n) = {bound}), {} bytes",
        start.elapsed(),
        healed.rounds,
        healed.exchanges,
        healed.bytes
    );
}

fn convergence(c: &mut Criterion) {
    report(100);
    if let Some(n) = std::env::var("SPLITSAFE_BENCH_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        report(n);
    }
    let devices = split(100);
    let mut g = c.benchmark_group("heal_split");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    g.bench_function("100_devices_1000_ops_per_side", |b| {
        b.iter_batched(
            || devices.clone(),
            |mut devices| heal(&mut devices).exchanges,
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, convergence);
criterion_main!(benches);
