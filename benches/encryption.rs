//! Sealing and opening for n = 2, 10, 100, 1,000 recipients and payloads of 64 B and 64 KiB,
//! each next to its floor measured in the same group:
//!
//! * warm seal (pairwise keys cached) vs n 32-byte AEAD wraps plus one payload AEAD;
//! * cold seal (first message after keys changed) vs n X25519 exchanges;
//! * open vs one 32-byte unwrap plus one payload AEAD.
//!
//! It also prints the envelope overhead per recipient. Then sender-key mode (`sender_keys/`):
//! seal and open of 1 KiB on a chain, and a re-key (a new chain handed to n - 1 members) with
//! its first message, printing their sizes. Run: `cargo bench --bench encryption`.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand_core::SeedableRng;
use splitsafe::crypto::{Keyring, KeyringConfig, SealOptions};
use splitsafe::group::{Replica, ReplicaConfig};
use splitsafe::keys::Identity;
use std::hint::black_box;
use std::time::{Duration, Instant};

mod support {
    pub mod sender_keys;
}

const T0: u64 = 1_795_694_400_000;
type Rng = rand_chacha::ChaCha20Rng;

fn identity(i: u32) -> Identity {
    Identity::from_secret_bytes(*blake3::hash(&i.to_be_bytes()).as_bytes())
}

/// A group of `n + 1`: the sender (founder), a reader, and the rest; all bundles real.
fn group(n: u32, rng: &mut Rng) -> (Keyring, Keyring, Replica, Replica) {
    let config = KeyringConfig::default();
    let sender = Keyring::new(identity(0), config, rng, T0);
    let reader = Keyring::new(identity(1), config, rng, T0);
    let (mut replica, genesis) = Replica::create(
        sender.identity(),
        sender.bundle(),
        [0; 16],
        ReplicaConfig::default(),
        T0,
    )
    .unwrap();
    replica
        .add(sender.identity(), reader.bundle(), T0 + 1)
        .unwrap();
    for i in 2..=n {
        let member = Keyring::new(identity(i), config, rng, T0);
        replica
            .add(sender.identity(), member.bundle(), T0 + u64::from(i))
            .unwrap();
    }
    let mut reader_replica = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
    reader_replica.ingest_batch(replica.ops().cloned().collect(), T0 + 100_000);
    (sender, reader, replica, reader_replica)
}

fn aead_32(c: &ChaCha20Poly1305, buf: &mut [u8]) {
    let tag = c
        .encrypt_inout_detached(&Nonce::default(), b"aad", buf.into())
        .unwrap();
    black_box(tag);
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng::seed_from_u64(7);
    let mut g = c.benchmark_group("envelope");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1));
    let cipher = ChaCha20Poly1305::new(&Key::from([1u8; 32]));
    let x_secret = x25519_dalek::StaticSecret::from([3u8; 32]);
    let x_public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([4u8; 32]));

    for n in [2u32, 10, 100, 1_000] {
        let (mut sender, mut reader, mut replica, mut reader_replica) = group(n, &mut rng);
        let now = T0 + 200_000;
        for (label, size) in [("64B", 64usize), ("64KiB", 64 << 10)] {
            let payload = vec![0xA5u8; size];
            let id = |what: &str| BenchmarkId::new(format!("{what}/{label}"), n);
            let sealed = sender
                .seal(
                    &mut replica,
                    now,
                    &payload,
                    SealOptions::default(),
                    &mut rng,
                )
                .unwrap();
            g.bench_function(id("seal_warm"), |b| {
                b.iter(|| {
                    sender
                        .seal(
                            &mut replica,
                            now,
                            &payload,
                            SealOptions::default(),
                            &mut rng,
                        )
                        .unwrap()
                })
            });
            g.bench_function(id("floor_warm_n_wraps_plus_payload"), |b| {
                let mut key = [0u8; 32];
                let mut body = payload.clone();
                b.iter(|| {
                    for _ in 0..n {
                        aead_32(&cipher, &mut key);
                    }
                    aead_32(&cipher, &mut body);
                })
            });
            g.bench_function(id("seal_cold"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        sender.forget_pairwise_keys();
                        let start = Instant::now();
                        black_box(
                            sender
                                .seal(
                                    &mut replica,
                                    now,
                                    &payload,
                                    SealOptions::default(),
                                    &mut rng,
                                )
                                .unwrap(),
                        );
                        total += start.elapsed();
                    }
                    total
                })
            });
            g.bench_function(id("floor_cold_n_x25519"), |b| {
                b.iter(|| {
                    for _ in 0..n {
                        black_box(x_secret.diffie_hellman(&x_public));
                    }
                })
            });
            let now = T0 + 300_000;
            reader.open(&sealed, &mut reader_replica, now).unwrap();
            g.bench_function(id("open"), |b| {
                b.iter(|| reader.open(&sealed, &mut reader_replica, now).unwrap())
            });
            g.bench_function(id("floor_open_unwrap_plus_payload"), |b| {
                let mut key = [0u8; 32];
                let mut body = payload.clone();
                b.iter(|| {
                    aead_32(&cipher, &mut key);
                    aead_32(&cipher, &mut body);
                })
            });
            let bytes = sealed.to_cbor().len();
            eprintln!(
                "envelope n={n} payload={size}: {bytes} bytes, {} slots, {:.1} bytes per recipient",
                sealed.recipients(),
                (sealed.slots.len()) as f64 / sealed.recipients() as f64
            );
        }
    }
    g.finish();
}

/// Sender-key mode at n = 10, 100, 1,000 members (`support/sender_keys.rs`).
fn sender_keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("sender_keys");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let mut rng = Rng::seed_from_u64(9);
    for n in [10u32, 100, 1_000] {
        let (mut sender, mut reader, mut replica, mut reader_replica) = group(n - 1, &mut rng);
        // Warm pairwise keys, as between members that have exchanged messages.
        sender
            .seal(
                &mut replica,
                T0 + 200_000,
                b"",
                SealOptions::default(),
                &mut rng,
            )
            .unwrap();
        support::sender_keys::bench(
            &mut g,
            n as usize,
            (&mut sender, &mut replica),
            (&mut reader, &mut reader_replica),
            T0 + 200_000,
            &mut |line| eprintln!("{line}"),
        );
    }
    g.finish();
}

criterion_group!(benches, bench, sender_keys);
criterion_main!(benches);
