//! Deterministic test vectors (`spec/vectors/v3.txt`): fixed seeds and times in, every
//! derived value out, so another implementation can check itself against this one.
//!
//! `cargo test` checks that this code reproduces the committed file byte for byte.
//! `SPLITSAFE_WRITE_VECTORS=1 cargo test --test proptests vectors::` rewrites it after a deliberate
//! format change.

use crate::support;

use rand_core::Rng;
use splitsafe::clock::Timestamp;
use splitsafe::crypto::{
    ChainConfig, KeyId, Keyring, KeyringConfig, PairwiseKey, Payload, SealOptions, SenderKeys,
    SenderPolicy,
};
use splitsafe::group::{Replica, ReplicaConfig, SignedOp, Standing};
use splitsafe::keys::Identity;
use splitsafe::wire;
use std::fmt::Write;
use support::crypto::rng;
use support::group::T0;

const PATH: &str = "spec/vectors/v3.txt";

fn hex(bytes: &[u8]) -> String {
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
    fn op(&mut self, name: &str, op: &SignedOp) {
        self.put(&format!("{name}.signed_bytes"), op.op().signed_bytes());
        self.put(&format!("{name}.signature"), op.signature().0);
        self.put(&format!("{name}.id"), op.id().0);
        self.put(&format!("{name}.cbor"), op.to_cbor());
    }
}

/// A member: Ed25519 secret `[seed; 32]`, X25519 secret the first 32 bytes of
/// ChaCha20Rng(seed).
fn member(out: &mut Out, name: &str, seed: u8) -> Keyring {
    let mut r = rng(u64::from(seed));
    let mut x25519_secret = [0u8; 32];
    r.clone().fill_bytes(&mut x25519_secret);
    let keyring = Keyring::new(
        Identity::from_secret_bytes([seed; 32]),
        KeyringConfig::default(),
        &mut r,
        T0,
    );
    let bundle = keyring.bundle();
    let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(x25519_secret));
    assert_eq!(
        bundle.encryption_key.0,
        public.to_bytes(),
        "the keyring drew its secret first"
    );
    out.put(&format!("{name}.ed25519_secret"), [seed; 32]);
    out.put(&format!("{name}.member_id"), keyring.identity().id().0);
    out.put(&format!("{name}.x25519_secret"), x25519_secret);
    out.put(&format!("{name}.x25519_public"), bundle.encryption_key.0);
    out.put(
        &format!("{name}.key_id"),
        KeyId::of(&bundle.encryption_key).0,
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
    keyring
}

fn vectors() -> String {
    let mut out = Out(String::new());
    writeln!(
        out.0,
        "# splitsafe test vectors (op format 2, envelope format 3, chain header 2): hex unless quoted. T0 = {T0} (unix ms)."
    )
    .unwrap();
    writeln!(out.0, "# Written by proptests/vectors.rs; spec/encryption.md and spec/membership.md say how each value is made.").unwrap();
    let mut a = member(&mut out, "alice", 1);
    let b = member(&mut out, "bob", 2);
    let c = member(&mut out, "carol", 3);

    let (mut replica, genesis) = Replica::create(
        a.identity(),
        a.bundle(),
        [7; 16],
        ReplicaConfig::default(),
        T0,
    )
    .unwrap();
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
    let alice_secret = {
        let mut s = [0u8; 32];
        rng(1).fill_bytes(&mut s);
        x25519_dalek::StaticSecret::from(s)
    };
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
    let mut schedule = [0u8; 64];
    blake3::Hasher::new_derive_key("splitsafe v2 content key schedule")
        .update(&drawn[16..])
        .finalize_xof()
        .fill(&mut schedule);
    let commitment: [u8; 32] = schedule[32..].try_into().unwrap();
    out.put("envelope.payload_key", &schedule[..32]);
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
    out.put(
        "envelope.position.seq",
        envelope.header.position.seq.to_be_bytes(),
    );
    out.put("envelope.position.op", envelope.header.position.op.0);
    out.put("envelope.header_bytes", envelope.header.to_bytes());
    out.put("envelope.bind", envelope.header.bind(&envelope.ciphertext));
    out.put("envelope.cbor", envelope.to_cbor());
    out.text("envelope.armored", &wire::armor_envelope(&envelope));

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

    // Sender-key mode: Alice starts a chain (its id, key and signing key, then the handoff
    // envelope's nonce and content key, drawn from ChaCha20Rng(100)) and seals one message.
    let mut r = rng(100);
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
    let handoff_envelope = sealed.handoff.expect("the first message starts a chain");
    let opened = b
        .open(&handoff_envelope, &mut bob_replica, T0 + 40)
        .unwrap();
    let payload = Payload::from_bytes(&opened.plaintext).unwrap();
    let Payload::Chain(handoff) = &payload else {
        panic!("a handoff")
    };
    out.put("chain.handoff_bytes", handoff.to_bytes().as_slice());
    out.put("chain.handoff_payload", payload.to_bytes().as_slice());
    out.put("chain.handoff_envelope.cbor", handoff_envelope.to_cbor());
    let message_key = blake3::keyed_hash(&handoff.key, b"splitsafe v1 chain message key");
    let next_key = blake3::keyed_hash(&handoff.key, b"splitsafe v1 chain step");
    out.put("chain.message_key.0", message_key.as_bytes());
    out.put("chain.chain_key.1", next_key.as_bytes());
    out.text("chain.plaintext", std::str::from_utf8(chain_text).unwrap());
    let message = &sealed.message;
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
    out.0
}

#[test]
fn this_code_reproduces_the_committed_vectors() {
    let produced = vectors();
    assert_eq!(produced, vectors(), "vectors are deterministic");
    if std::env::var_os("SPLITSAFE_WRITE_VECTORS").is_some() {
        std::fs::write(PATH, &produced).unwrap();
    }
    let committed = std::fs::read_to_string(PATH).expect("spec/vectors/v3.txt exists");
    for (line, (want, got)) in committed.lines().zip(produced.lines()).enumerate() {
        assert_eq!(got, want, "line {} of {PATH} differs", line + 1);
    }
    assert_eq!(committed.lines().count(), produced.lines().count());
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
