//! The device layer over SQLite, each next to the bare layer it adds to:
//!
//! * `send` of 1 KiB to a group of 100 through a SQLite store, vs `Keyring::seal` of the
//!   same payload to the same view plus one empty SQLite transaction on the same kind of
//!   file (target: at most 1.5x);
//! * `receive` of a sync message carrying 10,000 operations into a fresh device on SQLite,
//!   vs `Replica::ingest_batch` of the same operations in memory (target: at most 2x).
//!
//! * `receive` of one operation (an add or a removal) by a device in memory with nothing waiting, vs with
//!   64 junk envelopes of 1 MiB waiting in the same group (claiming another member, under a
//!   key nobody published): what the pending queue costs a receive that cannot release it.
//!   Each iteration reopens a copy of the same store, so the 64-waiting case also starts
//!   with 128 MiB just touched (its caches cold). (A receive of operations by or about the
//!   claimed sender retries its messages: about 1.3 µs each.)
//!
//! Run: `cargo bench --bench device`. Stores live in the system's temporary directory.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand_core::SeedableRng;
use splitsafe::device::{Device, DeviceConfig, Durability, Message, SqliteStore, Store, Write};
use splitsafe::group::Replica;
use splitsafe::keys::{EncryptionKey, Identity};
use std::path::PathBuf;
use std::time::Duration;

const T0: u64 = 1_795_694_400_000;
type Rng = rand_chacha::ChaCha20Rng;

fn identity(i: u32) -> Identity {
    Identity::from_secret_bytes(*blake3::hash(&i.to_be_bytes()).as_bytes())
}

/// A bundle with a real X25519 key for member `i`.
fn bundle(i: u32) -> splitsafe::keys::KeyBundle {
    let secret = x25519_dalek::StaticSecret::from(
        *blake3::hash(&[i.to_be_bytes(), [1; 4]].concat()).as_bytes(),
    );
    let key = EncryptionKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
    identity(i).bundle(key, splitsafe::clock::Timestamp::from_physical(T0))
}

struct Files(PathBuf, u32);

impl Files {
    fn new(what: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("splitsafe-bench-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir, 0)
    }

    fn store(&mut self) -> SqliteStore {
        self.1 += 1;
        SqliteStore::open(self.0.join(format!("{}.db", self.1))).unwrap()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn send(c: &mut Criterion, files: &mut Files) {
    let mut rng = Rng::seed_from_u64(1);
    let config = DeviceConfig::default();
    let mut device = Device::create(files.store(), identity(0), config, &mut rng, T0).unwrap();
    let group = device.create_group(&mut rng, T0).unwrap();
    for i in 1..100 {
        device.invite(group, bundle(i), T0 + u64::from(i)).unwrap();
    }
    // The bare layer: the same view, as a replica and keyring of the same member.
    let mut replica = device.replica(group).unwrap().clone();
    let mut keyring =
        splitsafe::crypto::Keyring::import(&device.keyring().export(), config.keyring).unwrap();
    let mut empty = files.store();
    let payload = vec![0x5A; 1024];
    let mut now = T0 + 1_000;
    let mut g = c.benchmark_group("device");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.bench_function("send_1KiB_sqlite/100", |b| {
        b.iter(|| {
            now += 1;
            device.send(group, &payload, &mut rng, now).unwrap()
        })
    });
    g.bench_function("floor_seal_1KiB/100", |b| {
        b.iter(|| {
            now += 1;
            keyring
                .seal(&mut replica, now, &payload, Default::default(), &mut rng)
                .unwrap()
        })
    });
    g.bench_function("floor_empty_sqlite_transaction", |b| {
        b.iter(|| empty.commit(&[], Durability::Crash).unwrap())
    });
    // For context: one small row, durable to a crash (what `send` commits) and to a power
    // loss (what an own operation or a key change commits: one fsync).
    for (name, durability) in [
        ("sqlite_one_row_crash", Durability::Crash),
        ("sqlite_one_row_power_loss", Durability::PowerLoss),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                now += 1;
                let clock = splitsafe::clock::Timestamp::from_physical(now);
                empty
                    .commit(&[Write::Clock { group, clock }], durability)
                    .unwrap()
            })
        });
    }
    g.finish();
}

fn receive(c: &mut Criterion, files: &mut Files) {
    let mut rng = Rng::seed_from_u64(2);
    let config = DeviceConfig::default();
    let mut owner = Device::create(files.store(), identity(0), config, &mut rng, T0).unwrap();
    let group = owner.create_group(&mut rng, T0).unwrap();
    let receiver_id = identity(1);
    let receiver_bundle = {
        let probe = Device::create(
            splitsafe::device::MemoryStore::default(),
            identity(1),
            config,
            &mut Rng::seed_from_u64(3),
            T0,
        )
        .unwrap();
        probe.bundle()
    };
    let welcome = owner
        .invite(group, receiver_bundle, T0 + 1)
        .unwrap()
        .welcome
        .to_bytes();
    // 10,000 operations: 100 members added, then removed and re-added in turn.
    let mut now = T0 + 10;
    let mut count = 0;
    'outer: for round in 0.. {
        for i in 2..102u32 {
            now += 1;
            if round % 2 == 0 {
                owner.invite(group, bundle(i), now).unwrap();
            } else {
                owner.remove(group, identity(i).id(), now).unwrap();
            }
            count += 1;
            if count == 10_000 {
                break 'outer;
            }
        }
    }
    // The receiver's first sync tells the owner what it holds; the answer carries the rest.
    let fresh_receiver = |files: &mut Files| {
        let mut rng = Rng::seed_from_u64(3);
        let mut device = Device::create(files.store(), identity(1), config, &mut rng, T0).unwrap();
        device.receive(&welcome, now).unwrap();
        device.accept(group, now).unwrap();
        device
    };
    let mut receiver = fresh_receiver(files);
    let hello = receiver.sync_message(group, owner.id()).unwrap().unwrap();
    owner.receive(&hello.to_bytes(), now).unwrap();
    let Some(Message::Sync(delta)) = owner.sync_message(group, receiver_id.id()).unwrap() else {
        panic!("the owner has operations to send")
    };
    assert_eq!(delta.ops.len(), 10_000);
    let delta_bytes = Message::Sync(delta.clone()).to_bytes();
    let joined = receiver.replica(group).unwrap().clone();

    let mut g = c.benchmark_group("device");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("receive_sync_10000_ops_sqlite", |b| {
        b.iter_batched(
            || fresh_receiver(files),
            |mut device| device.receive(&delta_bytes, now + 1).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("floor_ingest_batch_10000_ops_memory", |b| {
        b.iter_batched(
            || (joined.clone(), delta.ops.clone()),
            |(mut replica, ops): (Replica, _)| replica.ingest_batch(ops, now + 1),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// One operation received, with `waiting` junk envelopes of 1 MiB waiting in its group.
fn retry(c: &mut Criterion) {
    let mut g = c.benchmark_group("device");
    for waiting in [0u64, 64] {
        let mut rng = Rng::seed_from_u64(4);
        let config = DeviceConfig {
            messages: splitsafe::device::MessageMode::Pairwise,
            ..DeviceConfig::default()
        };
        let store = splitsafe::device::MemoryStore::default;
        let mut owner = Device::create(store(), identity(0), config, &mut rng, T0).unwrap();
        let mut reader = Device::create(store(), identity(1), config, &mut rng, T0).unwrap();
        let group = owner.create_group(&mut rng, T0).unwrap();
        let welcome = owner
            .invite(group, reader.bundle(), T0 + 1)
            .unwrap()
            .welcome;
        reader.receive(&welcome.to_bytes(), T0 + 2).unwrap();
        reader.accept(group, T0 + 2).unwrap();
        // Member 3, whom the junk claims: the operations received are not by or about it.
        let add = owner.invite(group, bundle(3), T0 + 2).unwrap().add;
        reader.receive(&add.to_bytes(), T0 + 2).unwrap();
        let big = vec![7u8; 1 << 20];
        let Message::Envelope(template) =
            owner.send(group, &big, &mut rng, T0 + 3).unwrap().message
        else {
            panic!("pairwise")
        };
        for n in 0..waiting {
            let mut junk = template.clone();
            junk.header.sender = identity(3).id();
            junk.header.sender_key = splitsafe::crypto::KeyId([0xEE; 16]);
            junk.header.nonce[..8].copy_from_slice(&n.to_be_bytes());
            reader
                .receive(&Message::Envelope(junk).to_bytes(), T0 + 4)
                .unwrap();
        }
        assert_eq!(reader.pending().count() as u64, waiting);
        // Each iteration reopens the same state (from a copy of its store), so that every
        // measured receive meets the same log.
        let add = owner
            .invite(group, bundle(2), T0 + 10)
            .unwrap()
            .add
            .to_bytes();
        let stored = reader.into_store();
        g.sample_size(20);
        g.bench_function(format!("receive_one_op_{waiting}_waiting_1mib"), |b| {
            b.iter_batched(
                || Device::open(stored.clone(), config).unwrap(),
                // The device is returned, so that it is dropped outside the measurement.
                |mut reader| {
                    reader.receive(&add, T0 + 11).unwrap();
                    reader
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn bench(c: &mut Criterion) {
    retry(c);
    let mut files = Files::new("device");
    send(c, &mut files);
    receive(c, &mut files);
}

criterion_group!(benches, bench);
criterion_main!(benches);
