//! Sender-key mode measured for one group, shared by `benches/encryption.rs` and the OpenMLS
//! comparison (`benches/compare/`): a re-key (a new chain handed to the other n - 1 members
//! in one envelope, warm pairwise keys) with its first message, a message sealed on a chain,
//! and a message opened on a chain. Sizes go to `report`.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId};
use rand_core::SeedableRng;
use splitsafe::crypto::{ChainConfig, Keyring, KeyringConfig, Payload, SenderKeys, SenderPolicy};
use splitsafe::group::Replica;
use std::hint::black_box;
use std::time::Instant;

/// Benchmarks `rekey_1KiB/n`, `chain_seal_1KiB/n` and `chain_open_1KiB/n` in `g`: `sender`
/// seals to its replica's view of `n` members, `reader` (one of them) opens.
pub fn bench(
    g: &mut BenchmarkGroup<'_, WallTime>,
    n: usize,
    (sender, replica): (&mut Keyring, &mut Replica),
    (reader, reader_replica): (&mut Keyring, &mut Replica),
    now: u64,
    report: &mut dyn FnMut(String),
) {
    let payload = vec![0x5Au8; 1024];
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    // One chain for every message a sample seals or opens.
    let config = ChainConfig {
        max_messages: u32::MAX,
        ..ChainConfig::default()
    };
    // Every seal starts a new chain.
    let rekey_each = ChainConfig {
        max_age_ms: 0,
        ..config
    };
    let group = replica.group();
    let mut keys = SenderKeys::new(group);
    let mut seal = |config: ChainConfig| {
        keys.seal(sender, replica, now, &payload, config, &mut rng)
            .unwrap()
    };
    g.bench_function(BenchmarkId::new("rekey_1KiB", n), |b| {
        b.iter(|| seal(rekey_each))
    });
    let first = seal(rekey_each);
    let handoff = first.handoff.clone().expect("a new chain");
    report(format!(
        "bytes.splitsafe.rekey_1KiB.{n} = {}",
        handoff.to_cbor().len() + first.message.to_cbor().len()
    ));
    g.bench_function(BenchmarkId::new("chain_seal_1KiB", n), |b| {
        b.iter(|| seal(config))
    });
    report(format!(
        "bytes.splitsafe.chain_seal_1KiB.{n} = {}",
        seal(config).message.to_cbor().len()
    ));
    let grace = KeyringConfig::default().grace_ms;
    let policy = SenderPolicy::default();
    g.bench_function(BenchmarkId::new("chain_open_1KiB", n), |b| {
        b.iter_custom(|iters| {
            // A fresh chain for the reader, then `iters` messages on it, opened in order.
            let first = seal(rekey_each);
            let envelope = first.handoff.expect("a new chain");
            let opened = reader.open(&envelope, reader_replica, now).unwrap();
            let Ok(Payload::Chain(chain)) = Payload::from_bytes(&opened.plaintext) else {
                panic!("a handoff")
            };
            let mut held = SenderKeys::new(group);
            held.install(&opened, envelope.header.view, &chain, config, now)
                .unwrap();
            held.open(reader_replica, policy, &first.message, now, grace)
                .unwrap();
            let messages: Vec<_> = (0..iters).map(|_| seal(config).message).collect();
            let start = Instant::now();
            for message in &messages {
                black_box(
                    held.open(reader_replica, policy, message, now, grace)
                        .unwrap(),
                );
            }
            start.elapsed()
        })
    });
}
