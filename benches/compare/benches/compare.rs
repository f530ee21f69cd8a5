//! splitsafe, OpenMLS (RustCrypto provider, memory storage), crdts and the primitive floors,
//! measured in one run on one machine. Results go to criterion's usual files; sizes on the
//! wire and the netsplit experiment go to `target/compare-extra.txt`. `cargo run --release`
//! in this folder then writes the Markdown table (see `report.sh`).

#[path = "../../../proptests/support/crdts_oracle.rs"]
mod crdts_oracle;
#[path = "../../support/sender_keys.rs"]
mod sender_keys;

use crdts::{CmRDT, CvRDT};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use rand_core::SeedableRng;
use splitsafe::crypto::{Keyring, KeyringConfig, SealOptions};
use splitsafe::group::{Replica, ReplicaConfig};
use splitsafe::keys::Identity;
use splitsafe::lww::LwwSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

const CS: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519;
const SIZES: [usize; 3] = [10, 100, 1_000];
const T0: u64 = 1_795_694_400_000;
type Rng = rand_chacha::ChaCha20Rng;

fn extra(line: String) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/compare-extra.txt");
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    let key = line.split(" = ").next().unwrap().to_string();
    text = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{key} = ")))
        .fold(String::new(), |mut acc, l| {
            let _ = writeln!(acc, "{l}");
            acc
        });
    let _ = writeln!(text, "{line}");
    std::fs::write(path, text).unwrap();
}

// ---------- OpenMLS ----------

struct Client {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
}

fn client(name: &str) -> Client {
    let provider = OpenMlsRustCrypto::default();
    let signer = SignatureKeyPair::new(CS.signature_algorithm()).unwrap();
    signer.store(provider.storage()).unwrap();
    let credential = CredentialWithKey {
        credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
        signature_key: signer.to_public_vec().into(),
    };
    Client {
        provider,
        signer,
        credential,
    }
}

fn key_package(c: &Client) -> KeyPackage {
    KeyPackage::builder()
        .build(CS, &c.provider, &c.signer, c.credential.clone())
        .unwrap()
        .key_package()
        .clone()
}

fn config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(CS)
        .use_ratchet_tree_extension(true)
        .build()
}

fn wire(m: &MlsMessageOut) -> usize {
    m.tls_serialize_detached().unwrap().len()
}

/// What the receiver gets: the message's bytes, decoded.
fn receive(m: &MlsMessageOut) -> MlsMessageIn {
    MlsMessageIn::tls_deserialize_exact(m.tls_serialize_detached().unwrap()).unwrap()
}

fn protocol(m: &MlsMessageOut) -> ProtocolMessage {
    receive(m).try_into_protocol_message().unwrap()
}

/// A creator's group with n members (creator + n-1 key packages); returns the bytes of the
/// commit and welcome. Bob (the first added) is instantiated from the welcome.
fn mls_group(creator: &Client, kps: &[KeyPackage]) -> (MlsGroup, MlsMessageOut, MlsMessageOut) {
    let mut group = MlsGroup::new(
        &creator.provider,
        &creator.signer,
        &config(),
        creator.credential.clone(),
    )
    .unwrap();
    let (commit, welcome, _) = group
        .add_members(&creator.provider, &creator.signer, kps)
        .unwrap();
    group.merge_pending_commit(&creator.provider).unwrap();
    (group, commit, welcome)
}

fn join(c: &Client, welcome: MlsMessageOut) -> MlsGroup {
    let MlsMessageBodyIn::Welcome(welcome) = receive(&welcome).extract() else {
        panic!("not a welcome")
    };
    StagedWelcome::new_from_welcome(&c.provider, config().join_config(), welcome, None)
        .unwrap()
        .into_group(&c.provider)
        .unwrap()
}

/// A creator's group of n and Bob (the first member added), kept in step.
struct MlsFixture {
    creator: Client,
    group: MlsGroup,
    bob_client: Client,
    bob: MlsGroup,
    newcomer: Client,
}

fn process(group: &mut MlsGroup, provider: &OpenMlsRustCrypto, commit: MlsMessageOut) {
    let message = protocol(&commit);
    let processed = group.process_message(provider, message).unwrap();
    if let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() {
        group.merge_staged_commit(provider, *staged).unwrap();
    }
}

impl MlsFixture {
    fn new(members: Vec<Client>) -> (Self, usize) {
        let kps: Vec<KeyPackage> = members.iter().map(key_package).collect();
        let creator = client("creator");
        let (group, commit, welcome) = mls_group(&creator, &kps);
        let bytes = wire(&commit) + wire(&welcome);
        let bob_client = members.into_iter().next().unwrap();
        let bob = join(&bob_client, welcome);
        let fixture = Self {
            creator,
            group,
            bob_client,
            bob,
            newcomer: client("newcomer"),
        };
        (fixture, bytes)
    }

    /// Adds the newcomer then removes it, `iters` times; times the add or the remove.
    /// Returns the time and the bytes of the last add (commit + welcome) and remove.
    fn add_remove(&mut self, time_add: bool, iters: u64) -> (Duration, usize, usize) {
        let (mut total, mut add_bytes, mut remove_bytes) = (Duration::ZERO, 0, 0);
        for _ in 0..iters {
            let kp = key_package(&self.newcomer);
            let start = Instant::now();
            let (commit, welcome, _) = self
                .group
                .add_members(&self.creator.provider, &self.creator.signer, &[kp])
                .unwrap();
            self.group
                .merge_pending_commit(&self.creator.provider)
                .unwrap();
            if time_add {
                total += start.elapsed();
            }
            add_bytes = wire(&commit) + wire(&welcome);
            process(&mut self.bob, &self.bob_client.provider, commit);
            let leaf = self
                .group
                .members()
                .find(|m| m.credential == self.newcomer.credential.credential)
                .unwrap()
                .index;
            let start = Instant::now();
            let (commit, _, _) = self
                .group
                .remove_members(&self.creator.provider, &self.creator.signer, &[leaf])
                .unwrap();
            self.group
                .merge_pending_commit(&self.creator.provider)
                .unwrap();
            if !time_add {
                total += start.elapsed();
            }
            remove_bytes = wire(&commit);
            process(&mut self.bob, &self.bob_client.provider, commit);
        }
        (total, add_bytes, remove_bytes)
    }

    fn seal(&mut self, payload: &[u8]) -> MlsMessageOut {
        self.group
            .create_message(&self.creator.provider, &self.creator.signer, payload)
            .unwrap()
    }
}

fn mls(c: &mut Criterion) {
    let mut g = c.benchmark_group("mls");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let payload = vec![0x5Au8; 1024];
    for n in SIZES {
        let members: Vec<Client> = (1..n).map(|i| client(&format!("m{i}"))).collect();
        let kps: Vec<KeyPackage> = members.iter().map(key_package).collect();
        g.bench_function(BenchmarkId::new("create", n), |b| {
            b.iter_batched(
                || client("creator"),
                |creator| mls_group(&creator, &kps).0.epoch(),
                BatchSize::PerIteration,
            )
        });
        // A second pair for opening: the sealing benchmark runs the sender's ratchet far
        // beyond what a receiver accepts without processing.
        let (mut reading, _) = MlsFixture::new((1..n).map(|i| client(&format!("r{i}"))).collect());
        let (mut fx, create_bytes) = MlsFixture::new(members);
        extra(format!("bytes.mls.create.{n} = {create_bytes}"));
        g.bench_function(BenchmarkId::new("add_one", n), |b| {
            b.iter_custom(|iters| fx.add_remove(true, iters).0)
        });
        g.bench_function(BenchmarkId::new("remove_one", n), |b| {
            b.iter_custom(|iters| fx.add_remove(false, iters).0)
        });
        let (_, add_bytes, remove_bytes) = fx.add_remove(true, 1);
        extra(format!("bytes.mls.add_one.{n} = {add_bytes}"));
        extra(format!("bytes.mls.remove_one.{n} = {remove_bytes}"));
        g.bench_function(BenchmarkId::new("seal_1KiB", n), |b| {
            b.iter(|| fx.seal(&payload))
        });
        extra(format!(
            "bytes.mls.seal_1KiB.{n} = {}",
            wire(&fx.seal(&payload))
        ));
        g.bench_function(BenchmarkId::new("open_1KiB", n), |b| {
            b.iter_custom(|iters| {
                let messages: Vec<_> = (0..iters)
                    .map(|_| protocol(&reading.seal(&payload)))
                    .collect();
                let start = Instant::now();
                for m in messages {
                    black_box(
                        reading
                            .bob
                            .process_message(&reading.bob_client.provider, m)
                            .unwrap(),
                    );
                }
                start.elapsed()
            })
        });
    }
    g.finish();
}

/// Both sides of a split change the membership in the same epoch, then exchange commits.
fn mls_fork() {
    let a = client("a");
    let b_client = client("b");
    let c_client = client("c");
    let d_client = client("d");
    let (mut group_a, _, welcome) =
        mls_group(&a, &[key_package(&b_client), key_package(&c_client)]);
    let mut group_b = join(&b_client, welcome);
    // Side 1: A removes C. Side 2: B adds D. Both at the same epoch.
    let c_leaf = group_a
        .members()
        .find(|m| m.credential == c_client.credential.credential)
        .unwrap()
        .index;
    let (remove_c, _, _) = group_a
        .remove_members(&a.provider, &a.signer, &[c_leaf])
        .unwrap();
    group_a.merge_pending_commit(&a.provider).unwrap();
    let (add_d, _, _) = group_b
        .add_members(
            &b_client.provider,
            &b_client.signer,
            &[key_package(&d_client)],
        )
        .unwrap();
    group_b.merge_pending_commit(&b_client.provider).unwrap();
    // Heal: each side receives the other's commit.
    let at_a = group_a.process_message(&a.provider, protocol(&add_d));
    let at_b = group_b.process_message(&b_client.provider, protocol(&remove_c));
    let show = |r: &Result<ProcessedMessage, _>| match r {
        Ok(_) => "accepted".to_string(),
        Err(e) => format!("{e:?}"),
    };
    extra(format!("fork.mls.at_a = {}", show(&at_a)));
    extra(format!("fork.mls.at_b = {}", show(&at_b)));
    extra(format!(
        "fork.mls.epochs = {} vs {}",
        group_a.epoch().as_u64(),
        group_b.epoch().as_u64()
    ));
}

// ---------- splitsafe ----------

fn identity(i: u32) -> Identity {
    Identity::from_secret_bytes(*blake3::hash(&i.to_be_bytes()).as_bytes())
}

fn keyring(i: u32, rng: &mut Rng) -> Keyring {
    Keyring::new(identity(i), KeyringConfig::default(), rng, T0)
}

fn splitsafe_group(n: usize, keyrings: &[Keyring], founder: &Keyring) -> (Replica, usize) {
    let (mut replica, genesis) = Replica::create(
        founder.identity(),
        founder.bundle(),
        [0; 16],
        ReplicaConfig::default(),
        T0,
    )
    .unwrap();
    let mut bytes = genesis.to_cbor().len();
    for (i, k) in keyrings.iter().take(n - 1).enumerate() {
        let (op, _) = replica
            .add(founder.identity(), k.bundle(), T0 + 1 + i as u64)
            .unwrap();
        bytes += op.to_cbor().len();
    }
    (replica, bytes)
}

fn splitsafe(c: &mut Criterion) {
    let mut g = c.benchmark_group("splitsafe");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let payload = vec![0x5Au8; 1024];
    let mut rng = Rng::seed_from_u64(1);
    for n in SIZES {
        let founder = keyring(0, &mut rng);
        let keyrings: Vec<Keyring> = (1..n as u32).map(|i| keyring(i, &mut rng)).collect();
        g.bench_function(BenchmarkId::new("create", n), |b| {
            b.iter(|| splitsafe_group(n, &keyrings, &founder).0.op_count())
        });
        let (mut replica, bytes) = splitsafe_group(n, &keyrings, &founder);
        extra(format!("bytes.splitsafe.create.{n} = {bytes}"));
        let newcomer = keyring(9_999_999, &mut rng);
        let mut now = T0 + 1_000_000;
        let mut add_remove = |time_add: bool, iters: u64| {
            let (mut total, mut add_bytes, mut remove_bytes) = (Duration::ZERO, 0, 0);
            for _ in 0..iters {
                now += 2;
                let start = Instant::now();
                let (op, _) = replica
                    .add(founder.identity(), newcomer.bundle(), now)
                    .unwrap();
                if time_add {
                    total += start.elapsed();
                }
                add_bytes = op.to_cbor().len();
                let start = Instant::now();
                let (op, _) = replica
                    .remove(founder.identity(), newcomer.identity().id(), now + 1)
                    .unwrap();
                if !time_add {
                    total += start.elapsed();
                }
                remove_bytes = op.to_cbor().len();
            }
            (total, add_bytes, remove_bytes)
        };
        g.bench_function(BenchmarkId::new("add_one", n), |b| {
            b.iter_custom(|iters| add_remove(true, iters).0)
        });
        g.bench_function(BenchmarkId::new("remove_one", n), |b| {
            b.iter_custom(|iters| add_remove(false, iters).0)
        });
        let (_, add_bytes, remove_bytes) = add_remove(true, 1);
        extra(format!("bytes.splitsafe.add_one.{n} = {add_bytes}"));
        extra(format!("bytes.splitsafe.remove_one.{n} = {remove_bytes}"));

        let mut founder = founder;
        g.bench_function(BenchmarkId::new("seal_1KiB", n), |b| {
            b.iter(|| {
                founder
                    .seal(
                        &mut replica,
                        now + 10,
                        &payload,
                        SealOptions::default(),
                        &mut rng,
                    )
                    .unwrap()
            })
        });
        let envelope = founder
            .seal(
                &mut replica,
                now + 10,
                &payload,
                SealOptions::default(),
                &mut rng,
            )
            .unwrap();
        extra(format!(
            "bytes.splitsafe.seal_1KiB.{n} = {}",
            envelope.to_cbor().len()
        ));
        let mut reader = keyrings.into_iter().next().unwrap();
        let mut reader_replica = replica.clone();
        reader
            .open(&envelope, &mut reader_replica, now + 20)
            .unwrap();
        g.bench_function(BenchmarkId::new("open_1KiB", n), |b| {
            b.iter(|| {
                reader
                    .open(&envelope, &mut reader_replica, now + 20)
                    .unwrap()
            })
        });
        sender_keys::bench(
            &mut g,
            n,
            (&mut founder, &mut replica),
            (&mut reader, &mut reader_replica),
            now + 30,
            &mut extra,
        );

        // Membership merge alone: two replicas of n members differing in one entry.
        let mut a: LwwSet<u32, u64> = LwwSet::new();
        let mut ca: crdts_oracle::OracleMap<u32, u64> = crdts::Map::new();
        for i in 0..n as u32 {
            a.insert(i, u64::from(i) + 1).unwrap();
            let op = crdts_oracle::write(&ca, 1, i, true, u64::from(i) + 1);
            ca.apply(op);
        }
        let mut bset = a.clone();
        bset.remove(0, 1_000_000).unwrap();
        let mut cb = ca.clone();
        let op = crdts_oracle::write(&cb, 2, 0, false, 1_000_000);
        cb.apply(op);
        g.bench_function(BenchmarkId::new("merge_one_change", n), |bch| {
            bch.iter_batched(
                || a.clone(),
                |mut a| {
                    a.merge(&bset).unwrap();
                    a
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function(BenchmarkId::new("crdts_merge_one_change", n), |bch| {
            bch.iter_batched(
                || (ca.clone(), cb.clone()),
                |(mut ca, cb)| {
                    ca.merge(cb);
                    ca
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    // The same split as the MLS fork: concurrent changes on both sides merge.
    let mut rng = Rng::seed_from_u64(2);
    let (a, b, c, d) = (
        keyring(1, &mut rng),
        keyring(2, &mut rng),
        keyring(3, &mut rng),
        keyring(4, &mut rng),
    );
    let (mut left, genesis) = Replica::create(
        a.identity(),
        a.bundle(),
        [0; 16],
        ReplicaConfig::default(),
        T0,
    )
    .unwrap();
    left.add(a.identity(), b.bundle(), T0 + 1).unwrap();
    left.add(a.identity(), c.bundle(), T0 + 2).unwrap();
    // B is an admin, so that it can add on its side of the split.
    left.promote(a.identity(), b.identity().id(), T0 + 2)
        .unwrap();
    let mut right = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
    right.ingest_batch(left.ops().cloned().collect(), T0 + 3);
    left.remove(a.identity(), c.identity().id(), T0 + 10)
        .unwrap();
    right.add(b.identity(), d.bundle(), T0 + 11).unwrap();
    let (sa, sb) = (left.summary(), right.summary());
    let to_left = right.missing_for(&sa).unwrap();
    left.ingest_batch(to_left, T0 + 20);
    let to_right = left.missing_for(&sb).unwrap();
    right.ingest_batch(to_right, T0 + 20);
    extra(format!(
        "fork.splitsafe = converged: {}; {} members on both sides after one sync round",
        left.view().digest() == right.view().digest(),
        left.view().len()
    ));
}

// ---------- floors ----------

fn floors(c: &mut Criterion) {
    use chacha20poly1305::aead::{AeadInOut, KeyInit};
    use ed25519_dalek::{Signer, Verifier};
    let mut g = c.benchmark_group("floor");
    g.sample_size(20).measurement_time(Duration::from_secs(2));
    let secret = x25519_dalek::StaticSecret::from([1u8; 32]);
    let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([2u8; 32]));
    g.bench_function("x25519", |b| b.iter(|| secret.diffie_hellman(&public)));
    let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
    let msg = [7u8; 200];
    let sig = key.sign(&msg);
    let vk = key.verifying_key();
    g.bench_function("ed25519_sign", |b| b.iter(|| key.sign(&msg)));
    g.bench_function("ed25519_verify", |b| {
        b.iter(|| vk.verify(&msg, &sig).unwrap())
    });
    let keys: Vec<_> = (0..64u8)
        .map(|i| ed25519_dalek::SigningKey::from_bytes(&[i; 32]))
        .collect();
    let sigs: Vec<_> = keys.iter().map(|k| k.sign(&msg)).collect();
    let vks: Vec<_> = keys.iter().map(|k| k.verifying_key()).collect();
    let msgs: Vec<&[u8]> = (0..64).map(|_| &msg[..]).collect();
    g.bench_function("ed25519_batch_verify_64", |b| {
        b.iter(|| ed25519_dalek::verify_batch(&msgs, &sigs, &vks).unwrap())
    });
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(&chacha20poly1305::Key::from([9u8; 32]));
    for size in [32usize, 1024] {
        let mut buf = vec![0u8; size];
        g.bench_function(format!("chacha20poly1305_{size}B"), |b| {
            b.iter(|| {
                cipher
                    .encrypt_inout_detached(
                        &chacha20poly1305::Nonce::default(),
                        b"",
                        buf.as_mut_slice().into(),
                    )
                    .unwrap()
            })
        });
    }
    let kib = vec![1u8; 1024];
    g.bench_function("blake3_1KiB", |b| b.iter(|| blake3::hash(&kib)));
    g.finish();
}

fn all(c: &mut Criterion) {
    mls_fork();
    floors(c);
    splitsafe(c);
    mls(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
