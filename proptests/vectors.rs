//! Deterministic test vectors: fixed secrets, random bytes and times in, every derived value
//! out, so another implementation can check itself against this one from the spec alone.
//! `spec/vectors/v3.txt` holds one instance of every structure of `spec/formats.md` with its
//! intermediate values; `spec/vectors/negative.txt` holds bytes that must be refused, with
//! the refusal.
//!
//! `cargo test` checks that this code reproduces the committed files byte for byte.
//! `SPLITSAFE_WRITE_VECTORS=1 cargo test --test proptests vectors::` rewrites them after a
//! deliberate format change.

use crate::support;

use rand_core::Rng;
use splitsafe::clock::Timestamp;
use splitsafe::crypto::{
    ChainConfig, ChainId, ChainMessage, Envelope, KeyId, Keyring, PairwiseKey, Payload,
    ReceivingChain, SealOptions, SenderKeys, SenderPolicy, SLOT_LEN,
};
use splitsafe::device::{ChainPost, Message, SyncContent, SyncMessage, Welcome};
use splitsafe::group::{
    AuthorSummary, Description, GroupId, Prefix, Replica, ReplicaConfig, SignedOp, Standing,
    SummaryDigest, Watermark,
};
use splitsafe::keys::{Identity, MemberId, SignedMessage};
use splitsafe::lww::LwwSet;
use splitsafe::wire;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::OnceLock;
use support::crypto::{keyring_with_secret, rng, schedule};
use support::group::T0;

const PATH: &str = "spec/vectors/v3.txt";

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Out(String);

impl Out {
    fn put(&mut self, name: &str, value: impl AsRef<[u8]>) {
        writeln!(self.0, "{name} = {}", hex(value.as_ref())).unwrap();
    }
    fn text(&mut self, name: &str, value: &str) {
        writeln!(self.0, "{name} = {value:?}").unwrap();
    }
    /// An envelope's header layout, binding hash, ids and encodings.
    fn envelope(&mut self, name: &str, envelope: &Envelope) {
        self.put(
            &format!("{name}.stamp"),
            envelope.header.stamp.as_raw().to_be_bytes(),
        );
        self.put(
            &format!("{name}.position.seq"),
            envelope.header.position.seq.to_be_bytes(),
        );
        self.put(
            &format!("{name}.position.op"),
            envelope.header.position.op.0,
        );
        self.put(&format!("{name}.header_bytes"), envelope.header.to_bytes());
        self.put(
            &format!("{name}.bind"),
            envelope.header.bind(&envelope.ciphertext),
        );
        self.put(&format!("{name}.id"), envelope.id().0);
        self.put(&format!("{name}.copy_id"), envelope.copy_id().0);
        self.put(&format!("{name}.cbor"), envelope.to_cbor());
        self.text(&format!("{name}.armored"), &wire::armor_envelope(envelope));
    }
    fn chain_message(&mut self, name: &str, message: &ChainMessage) {
        self.put(
            &format!("{name}.stamp"),
            message.header.stamp.as_raw().to_be_bytes(),
        );
        self.put(&format!("{name}.index"), message.header.index.to_be_bytes());
        self.put(&format!("{name}.header_bytes"), message.header.to_bytes());
        self.put(&format!("{name}.signature"), message.signature.0);
        self.put(&format!("{name}.cbor"), message.to_cbor());
        self.put(&format!("{name}.id"), message.id().0);
        self.put(&format!("{name}.copy_id"), message.copy_id().0);
    }
    /// A device message as bytes and as armored text.
    fn message(&mut self, name: &str, message: &Message) {
        self.put(&format!("message.{name}.cbor"), message.to_bytes());
        self.text(&format!("message.{name}.armored"), &message.armored());
    }
    fn op(&mut self, name: &str, op: &SignedOp) {
        self.put(
            &format!("{name}.timestamp"),
            op.op().timestamp.as_raw().to_be_bytes(),
        );
        self.put(&format!("{name}.signed_bytes"), op.op().signed_bytes());
        self.put(&format!("{name}.signature"), op.signature().0);
        self.put(&format!("{name}.id"), op.id().0);
        self.put(&format!("{name}.cbor"), op.to_cbor());
    }
}

/// A member: Ed25519 secret `[seed; 32]`, X25519 secret the first 32 bytes of
/// ChaCha20Rng(seed). Returns its keyring and that secret.
fn member(out: &mut Out, name: &str, seed: u8) -> (Keyring, x25519_dalek::StaticSecret) {
    let (keyring, secret) =
        keyring_with_secret(Identity::from_secret_bytes([seed; 32]), u64::from(seed));
    let x25519_secret = secret.to_bytes();
    let bundle = keyring.bundle();
    out.put(&format!("{name}.ed25519_secret"), [seed; 32]);
    out.put(&format!("{name}.member_id"), keyring.identity().id().0);
    out.put(&format!("{name}.x25519_secret"), x25519_secret);
    out.put(&format!("{name}.x25519_public"), bundle.encryption_key.0);
    out.put(
        &format!("{name}.key_id"),
        KeyId::of(&bundle.encryption_key).0,
    );
    out.put(
        &format!("{name}.bundle.created"),
        bundle.created.as_raw().to_be_bytes(),
    );
    out.put(
        &format!("{name}.bundle.signed_bytes"),
        bundle.signed_bytes(),
    );
    out.put(&format!("{name}.bundle.signature"), bundle.signature.0);
    out.put(
        &format!("{name}.bundle.cbor"),
        splitsafe::codec::encode(&bundle),
    );
    (keyring, secret)
}

/// Every value of the vectors by name: hex values as bytes, quoted ones as their text's bytes.
pub(crate) fn values() -> &'static BTreeMap<String, Vec<u8>> {
    static VALUES: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    VALUES.get_or_init(|| {
        vectors()
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once(" = "))
            .map(|(name, value)| {
                let bytes = match value.strip_prefix('"') {
                    Some(quoted) => unquote(quoted.strip_suffix('"').unwrap()).into_bytes(),
                    None => (0..value.len() / 2)
                        .map(|i| u8::from_str_radix(&value[2 * i..2 * i + 2], 16).unwrap())
                        .collect(),
                };
                (name.to_string(), bytes)
            })
            .collect()
    })
}

/// Undoes the escapes `{:?}` writes in the vectors' text values (`\n`, `\"`, `\\`).
fn unquote(escaped: &str) -> String {
    let mut out = String::new();
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        out.push(match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => '\n',
                Some(other) => other,
                None => panic!("a lone backslash"),
            },
            (c, false) => c,
        });
    }
    out
}

fn vectors() -> String {
    let mut out = Out(String::new());
    writeln!(
        out.0,
        "# splitsafe test vectors (op format 2, envelope format 3, chain header 2): hex unless quoted. T0 = {T0} (unix ms)."
    )
    .unwrap();
    writeln!(out.0, "# Written by proptests/vectors.rs. spec/formats.md says how each structure is written, spec/encryption.md,").unwrap();
    writeln!(out.0, "# spec/membership.md and spec/device.md how each value is made. Every secret and random byte is an input listed here.").unwrap();
    let (mut a, alice_secret) = member(&mut out, "alice", 1);
    let (b, _) = member(&mut out, "bob", 2);
    let (c, _) = member(&mut out, "carol", 3);

    let (mut replica, genesis) = Replica::create(
        a.identity(),
        a.bundle(),
        [7; 16],
        ReplicaConfig::default(),
        T0,
    )
    .unwrap();
    out.put("op.create.nonce", [7; 16]);
    out.op("op.create", &genesis);
    out.put("group_id", replica.group().0);
    let (add_b, _) = replica.add(a.identity(), b.bundle(), T0 + 1).unwrap();
    out.op("op.add_bob", &add_b);
    let (add_c, _) = replica.add(a.identity(), c.bundle(), T0 + 2).unwrap();
    out.op("op.add_carol", &add_c);
    // Carol's first operation: the watermark of her removal names it.
    let republished = c
        .identity()
        .bundle(c.bundle().encryption_key, Timestamp::from_physical(T0 + 2));
    let (rotate_c, _) = replica.rotate(c.identity(), republished, T0 + 2).unwrap();
    out.op("op.rotate_carol", &rotate_c);
    let (promote_b, _) = replica
        .promote(a.identity(), b.identity().id(), T0 + 3)
        .unwrap();
    out.op("op.promote_bob", &promote_b);
    let (remove_c, _) = replica
        .remove(a.identity(), c.identity().id(), T0 + 3)
        .unwrap();
    out.op("op.remove_carol", &remove_c);
    out.put("view.digest", replica.view().digest().0);
    out.text(
        "ops.armored",
        &wire::armor_ops(&[genesis, add_b.clone(), add_c, rotate_c, promote_b, remove_c]),
    );

    let group = replica.group();
    let (a_to_b, b_to_a) =
        PairwiseKey::between(&group, &alice_secret, &b.bundle().encryption_key).unwrap();
    out.put("pairwise.alice_to_bob", a_to_b.as_bytes());
    out.put("pairwise.bob_to_alice", b_to_a.as_bytes());

    // The envelope: nonce then content key are the first 16 and next 32 bytes of
    // ChaCha20Rng(99).
    let mut r = rng(99);
    let mut drawn = [0u8; 48];
    r.clone().fill_bytes(&mut drawn);
    out.put("envelope.nonce", &drawn[..16]);
    out.put("envelope.content_key", &drawn[16..]);
    let keys_of_content = schedule(drawn[16..].try_into().unwrap());
    let commitment: [u8; 32] = keys_of_content[32..].try_into().unwrap();
    out.put("envelope.payload_key", &keys_of_content[..32]);
    out.put("envelope.key_commitment", commitment);
    let plaintext = b"hello from alice";
    out.text(
        "envelope.plaintext",
        std::str::from_utf8(plaintext).unwrap(),
    );
    let envelope = a
        .seal(
            &mut replica,
            T0 + 10,
            plaintext,
            SealOptions { sign: true },
            &mut r,
        )
        .unwrap();
    assert_eq!(envelope.header.commitment, commitment);
    out.envelope("envelope", &envelope);

    // Bob opens it: the vectors are consistent with themselves.
    let mut bob_replica = Replica::join(
        &replica.ops().next().unwrap().clone(),
        ReplicaConfig::default(),
        T0,
    )
    .unwrap();
    bob_replica.ingest_batch(replica.ops().cloned().collect(), T0 + 20);
    let mut b = b;
    let opened = b.open(&envelope, &mut bob_replica, T0 + 20).unwrap();
    assert_eq!(opened.plaintext, plaintext);
    assert!(opened.signed && opened.same_view && opened.standing == Standing::Member);

    // Sender-key mode: Alice starts a chain and seals two messages. Every random byte is an
    // input, drawn in this order: the chain id (16), chain key 0 (32), the chain's signing
    // secret (32), then the handoff envelope's nonce (16) and content key (32).
    let mut drawn = [0u8; 128];
    rng(100).fill_bytes(&mut drawn);
    out.put("chain.id", &drawn[..16]);
    out.put("chain.chain_key.0", &drawn[16..48]);
    out.put("chain.signing_secret", &drawn[48..80]);
    let signing_secret: [u8; 32] = drawn[48..80].try_into().unwrap();
    out.put(
        "chain.verifying_key",
        Identity::from_secret_bytes(signing_secret).id().0,
    );
    out.put("chain.handoff_envelope.nonce", &drawn[80..96]);
    out.put("chain.handoff_envelope.content_key", &drawn[96..]);
    let mut r = Scripted::new(&drawn);
    let mut keys = SenderKeys::new(group);
    let chain_text = b"hello on a chain";
    let sealed = keys
        .seal(
            &mut a,
            &mut replica,
            T0 + 30,
            chain_text,
            ChainConfig::default(),
            &mut r,
        )
        .unwrap();
    r.done();
    let handoff_envelope = sealed
        .handoff
        .clone()
        .expect("the first message starts a chain");
    let opened = b
        .open(&handoff_envelope, &mut bob_replica, T0 + 40)
        .unwrap();
    let payload = Payload::from_bytes(&opened.plaintext).unwrap();
    let Payload::Chain(handoff) = &payload else {
        panic!("a handoff")
    };
    out.put("chain.handoff_bytes", handoff.to_bytes().as_slice());
    out.put("chain.handoff_payload", payload.to_bytes().as_slice());
    out.envelope("chain.handoff_envelope", &handoff_envelope);
    let message_key = blake3::keyed_hash(&handoff.key, b"splitsafe v1 chain message key");
    let next_key = blake3::keyed_hash(&handoff.key, b"splitsafe v1 chain step");
    out.put("chain.message_key.0", message_key.as_bytes());
    out.put("chain.chain_key.1", next_key.as_bytes());
    out.text("chain.plaintext", std::str::from_utf8(chain_text).unwrap());
    let message = &sealed.message;
    out.put(
        "chain.message.stamp",
        message.header.stamp.as_raw().to_be_bytes(),
    );
    out.put("chain.header_bytes", message.header.to_bytes());
    out.put("chain.signature", message.signature.0);
    out.put("chain.message.cbor", message.to_cbor());
    out.put("chain.message.id", message.id().0);
    let mut held = SenderKeys::new(group);
    held.install(
        &opened,
        handoff_envelope.header.view,
        handoff,
        ChainConfig::default(),
        T0 + 40,
    )
    .unwrap();
    let policy = SenderPolicy::default();
    let read = held
        .open(&mut bob_replica, policy, message, T0 + 40, 0)
        .unwrap();
    assert_eq!(read.plaintext, chain_text);
    out.put("chain.message.copy_id", message.copy_id().0);

    // The chain's next message, at index 1: no randomness is drawn.
    let mut none = Scripted::new(&[]);
    let next_text = b"and a second one";
    let next = keys
        .seal(
            &mut a,
            &mut replica,
            T0 + 31,
            next_text,
            ChainConfig::default(),
            &mut none,
        )
        .unwrap();
    none.done();
    assert!(next.handoff.is_none() && next.message.header.index == 1);
    let key_1 = *next_key.as_bytes();
    let message_key_1 = blake3::keyed_hash(&key_1, b"splitsafe v1 chain message key");
    out.put("chain.message_key.1", message_key_1.as_bytes());
    out.put(
        "chain.chain_key.2",
        blake3::keyed_hash(&key_1, b"splitsafe v1 chain step").as_bytes(),
    );
    out.text("chain.plaintext.1", std::str::from_utf8(next_text).unwrap());
    out.chain_message("chain.message.1", &next.message);
    let read = held
        .open(&mut bob_replica, policy, &next.message, T0 + 41, 0)
        .unwrap();
    assert_eq!(read.plaintext, next_text);
    let receiving = ReceivingChain::new(handoff, ReceivingChain::DEFAULT_WINDOW);
    out.put("export.receiving_chain", receiving.export().as_slice());
    let alice_id = a.identity().id();
    out.put(
        "export.held_chains.alice",
        held.export_held(&alice_id).unwrap().as_slice(),
    );
    out.put(
        "export.own_chain.alice",
        keys.export_own().unwrap().as_slice(),
    );

    // Dave joins; his first message, before any operation of his (position (0, zeros)),
    // unsigned, to two recipients, carrying a device payload (tag 0).
    let (mut d, dave_secret) = member(&mut out, "dave", 4);
    let (add_d, _) = replica.add(a.identity(), d.bundle(), T0 + 50).unwrap();
    out.op("op.add_dave", &add_d);
    bob_replica.ingest_batch(vec![add_d.clone()], T0 + 50);
    let genesis = replica.ops().next().unwrap().clone();
    let mut dave_replica = Replica::join(&genesis, ReplicaConfig::default(), T0 + 50).unwrap();
    dave_replica.ingest_batch(replica.ops().cloned().collect(), T0 + 50);
    let mut drawn = [0u8; 48];
    rng(104).fill_bytes(&mut drawn);
    out.put("envelope.dave.nonce", &drawn[..16]);
    out.put("envelope.dave.content_key", &drawn[16..]);
    let dave_keys = schedule(drawn[16..].try_into().unwrap());
    out.put("envelope.dave.payload_key", &dave_keys[..32]);
    out.put("envelope.dave.key_commitment", &dave_keys[32..]);
    let payload = Payload::Message(b"hello from dave".to_vec()).to_bytes();
    out.put("envelope.dave.plaintext", payload.as_slice());
    let mut r = Scripted::new(&drawn);
    let dave_envelope = d
        .seal(
            &mut dave_replica,
            T0 + 60,
            &payload,
            SealOptions { sign: false },
            &mut r,
        )
        .unwrap();
    r.done();
    assert_eq!(dave_envelope.header.position, Watermark::NONE);
    assert_eq!(dave_envelope.recipients(), 2);
    out.envelope("envelope.dave", &dave_envelope);
    for (name, reader) in [("alice", &a), ("bob", &b)] {
        let key = reader.bundle().encryption_key;
        let (to, _) = PairwiseKey::between(&group, &dave_secret, &key).unwrap();
        let mut slot_key = [0u8; 40];
        blake3::Hasher::new_keyed(to.as_bytes())
            .update(b"splitsafe v1 slot")
            .update(&drawn[..16])
            .finalize_xof()
            .fill(&mut slot_key);
        let slot = dave_envelope
            .slots
            .chunks(SLOT_LEN)
            .find(|slot| slot[..8] == slot_key[32..])
            .expect("a slot with the reader's hint");
        let at = format!("envelope.dave.slot.{name}");
        out.put(&format!("{at}.pairwise"), to.as_bytes());
        out.put(&format!("{at}.wrap_key"), &slot_key[..32]);
        out.put(&format!("{at}.hint"), &slot_key[32..]);
        out.put(&format!("{at}.slot"), slot);
    }
    for (reader, replica) in [(&mut a, &mut replica), (&mut b, &mut bob_replica)] {
        let opened = reader.open(&dave_envelope, replica, T0 + 61).unwrap();
        assert_eq!(opened.plaintext, payload.as_slice());
        assert!(!opened.signed && opened.standing == Standing::Member);
    }

    // Bob publishes a new key (its X25519 secret is the one random input), is demoted, and
    // leaves.
    let bob_secret_2 = [0x42; 32];
    out.put("bob.x25519_secret.2", bob_secret_2);
    let mut r = Scripted::new(&bob_secret_2);
    let (rotate_b, _) = b.rotate(&mut r, &mut replica, T0 + 70).unwrap();
    r.done();
    out.put("bob.x25519_public.2", b.bundle().encryption_key.0);
    out.put("bob.key_id.2", KeyId::of(&b.bundle().encryption_key).0);
    out.put(
        "bob.bundle.2.created",
        b.bundle().created.as_raw().to_be_bytes(),
    );
    out.put("bob.bundle.2.signature", b.bundle().signature.0);
    out.op("op.rotate_bob", &rotate_b);
    let (demote_b, _) = replica
        .demote(a.identity(), b.identity().id(), T0 + 71)
        .unwrap();
    out.op("op.demote_bob", &demote_b);
    let (leave_b, _) = replica.leave(b.identity(), T0 + 72).unwrap();
    out.op("op.leave_bob", &leave_b);
    out.put("view.digest.2", replica.view().digest().0);
    let members: Vec<_> = replica.view().members().map(|(m, _)| *m).collect();
    assert_eq!(members.len(), 2, "alice and dave remain");

    // Device messages, as bytes and as text.
    let welcome = Welcome {
        group,
        ops: replica.ops().take(2).cloned().collect(),
    };
    let chain_post = ChainPost {
        handoff: Some(handoff_envelope.clone()),
        message: sealed.message.clone(),
    };
    for (name, message) in [
        ("bundle", Message::Bundle(d.bundle())),
        ("welcome", Message::Welcome(welcome)),
        ("operations", Message::Operations(vec![leave_b.clone()])),
        ("envelope", Message::Envelope(dave_envelope.clone())),
        ("chain", Message::Chain(chain_post)),
    ] {
        out.message(name, &message);
    }
    let summary = replica.summary();
    out.put("summary.cbor", summary.to_cbor());
    out.put("summary.digest", summary.digest().0);
    // Range reconciliation (device.md, "Sync"): a prefix, and parts of regions.
    let prefix = Prefix::new(vec![3, 10]).expect("hex digits");
    out.put("sync.prefix.3a.cbor", splitsafe::codec::encode(&prefix));
    out.put(
        "sync.part.root.cbor",
        splitsafe::codec::encode(&summary.part(&Prefix::root())),
    );
    let first = summary.authors.keys().next().expect("an author");
    let elsewhere = Prefix::new(vec![(first.0[0] >> 4) ^ 1]).expect("a hex digit");
    let empty = summary.part(&Prefix::new(vec![0; 64]).expect("64 digits"));
    assert_eq!(empty.0, 0, "no author has the id 00…00");
    out.put("sync.part.empty.cbor", splitsafe::codec::encode(&empty));
    out.put(
        "sync.description.elsewhere.cbor",
        splitsafe::codec::encode(&summary.describe(&elsewhere)),
    );
    let holds = Some(handoff.chain);
    let content = SyncContent {
        holds,
        ..support::device::sync_content(&summary, vec![leave_b])
    };
    let sync = SyncMessage::new(a.identity(), group, content.clone());
    let fields = splitsafe::codec::encode(&SyncSigned {
        group,
        from: a.identity().id(),
        digest: summary.digest(),
        asks: content.asks,
        tells: content.tells,
        yours: content.yours,
        holds,
    });
    let mut signed_bytes = b"splitsafe/v1/sync\0".to_vec();
    signed_bytes.extend(blake3::derive_key("splitsafe v1 sync message v3", &fields));
    let signed = SignedMessage {
        bytes: signed_bytes.clone(),
        signer: a.identity().id(),
        signature: sync.signature,
    };
    assert_eq!(
        signed.verify(),
        Ok(()),
        "the sync signature is over these bytes"
    );
    out.put("sync.signed_fields", fields);
    out.put("sync.signed_bytes", signed_bytes);
    out.put("sync.signature", sync.signature.0);
    out.message("sync", &Message::Sync(sync));
    let digest_only = SyncMessage::new(
        a.identity(),
        group,
        SyncContent {
            digest: summary.digest(),
            asks: vec![],
            tells: vec![],
            yours: None,
            ops: vec![],
            holds: None,
            handoff: None,
        },
    );
    out.put(
        "message.sync_digest_only.cbor",
        Message::Sync(digest_only).to_bytes(),
    );

    let snapshot = replica.save();
    Replica::load(&snapshot, ReplicaConfig::default(), 1 << 20, T0 + 100).unwrap();
    out.put(
        "snapshot.clock",
        replica.clock().last().as_raw().to_be_bytes(),
    );
    out.put("snapshot.cbor", snapshot);
    out.put("export.identity.alice", a.identity().export().as_slice());
    writeln!(
        out.0,
        "# Bob's keyring: created = his current bundle's timestamp (bob.bundle.2.created); his first key retired at T0 + 70 (ms) by his rotation."
    )
    .unwrap();
    out.put("export.keyring.bob", b.export().as_slice());

    let mut set = LwwSet::new();
    set.insert(3u32, 7u64).unwrap();
    set.insert(900u32, 1u64 << 40).unwrap();
    set.remove(3u32, 8u64).unwrap();
    writeln!(
        out.0,
        "# An LWW set of u32 elements stamped with u64: insert 3 at 7, insert 900 at 2^40, remove 3 at 8."
    )
    .unwrap();
    out.put("lww.cbor", set.to_cbor());
    out.put(
        "clock.millis_T0_counter_5",
        Timestamp::new(T0, 5).unwrap().as_raw().to_be_bytes(),
    );
    out.0
}

/// The fields a sync message's signature covers (`spec/formats.md`, "Device messages"), as a
/// second implementation would write them from the spec.
#[derive(serde::Serialize)]
struct SyncSigned {
    group: GroupId,
    from: MemberId,
    digest: SummaryDigest,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    asks: Vec<Prefix>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tells: Vec<Description>,
    #[serde(skip_serializing_if = "Option::is_none")]
    yours: Option<AuthorSummary>,
    holds: Option<ChainId>,
}

/// Randomness given as input: hands out its bytes in order, and [`done`](Self::done) checks
/// that every one was drawn, so the vectors name exactly what the code consumed.
struct Scripted {
    bytes: Vec<u8>,
    at: usize,
}

impl Scripted {
    fn new(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.to_vec(),
            at: 0,
        }
    }

    fn done(self) {
        assert_eq!(self.at, self.bytes.len(), "every scripted byte was drawn");
    }
}

impl rand_core::TryRng for Scripted {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        let end = self.at + dst.len();
        assert!(
            end <= self.bytes.len(),
            "the code drew more than was scripted"
        );
        dst.copy_from_slice(&self.bytes[self.at..end]);
        self.at = end;
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Scripted {}

/// Checks that the committed file at `path` is `produced`, line by line; rewrites it first
/// if `SPLITSAFE_WRITE_VECTORS` is set.
pub(crate) fn check_committed(path: &str, produced: &str) {
    if std::env::var_os("SPLITSAFE_WRITE_VECTORS").is_some() {
        std::fs::write(path, produced).unwrap();
    }
    let committed =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path} is committed: {e}"));
    for (line, (want, got)) in committed.lines().zip(produced.lines()).enumerate() {
        assert_eq!(got, want, "line {} of {path} differs", line + 1);
    }
    assert_eq!(committed.lines().count(), produced.lines().count());
}

#[test]
fn this_code_reproduces_the_committed_vectors() {
    let produced = vectors();
    assert_eq!(produced, vectors(), "vectors are deterministic");
    check_committed(PATH, &produced);
}

/// `spec/vectors/ed25519.txt`: every case gets its stated verdict alone, and the same verdict
/// in one batch with every accepted case (so a batch never rescues nor sinks a signature).
#[test]
fn ed25519_edge_cases_get_their_stated_verdicts() {
    use splitsafe::keys::{KeyError, MemberId, SignatureBytes, SignedMessage};
    let text = std::fs::read_to_string("spec/vectors/ed25519.txt").unwrap();
    let field = |block: &str, name: &str| -> String {
        block
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("{name} missing in {block}"))
            .to_string()
    };
    let unhex = |h: String| -> Vec<u8> {
        (0..h.len() / 2)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    };
    let cases: Vec<(SignedMessage, String)> = text
        .split("\n\n")
        .filter(|block| block.contains("msg = "))
        .map(|block| {
            let message = SignedMessage {
                bytes: unhex(field(block, "msg")),
                signer: MemberId(unhex(field(block, "pbk")).try_into().unwrap()),
                signature: SignatureBytes(unhex(field(block, "sig")).try_into().unwrap()),
            };
            (message, field(block, "verdict"))
        })
        .collect();
    assert_eq!(cases.len(), 21);
    let accepted: Vec<SignedMessage> = cases
        .iter()
        .filter(|(_, verdict)| verdict == "accept")
        .map(|(m, _)| m.clone())
        .collect();
    assert_eq!(SignedMessage::verify_batch(&accepted), Ok(()));
    for (i, (message, verdict)) in cases.iter().enumerate() {
        let expected = match verdict.as_str() {
            "accept" => Ok(()),
            "refuse-key" => Err(KeyError::InvalidPublicKey(message.signer)),
            "refuse-signature" => Err(KeyError::BadSignature(message.signer)),
            other => panic!("case {i}: unknown verdict {other}"),
        };
        assert_eq!(message.verify(), expected, "case {i} alone");
        let mut batch = accepted.clone();
        batch.push(message.clone());
        assert_eq!(
            SignedMessage::verify_batch(&batch),
            expected,
            "case {i} in a batch"
        );
    }
}
