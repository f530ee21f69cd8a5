//! One Ed25519 acceptance rule on every path (review finding F2).
//!
//! A signature accepted alone is accepted in every batch, by every replica whatever path
//! delivered it (one by one, one batch, batches of any size and composition), after a
//! snapshot round trip, and on an envelope; a signature refused alone is refused on all of
//! them. The edge cases are the review's constructions: `R` = identity, `R` with a torsion
//! component, a mixed-order member key, plus the encodings the rule refuses.

use crate::support;

use proptest::prelude::*;
use splitsafe::clock::Timestamp;
use splitsafe::crypto::{KeyringConfig, OpenError, SealOptions};
use splitsafe::group::{
    Body, IngestError, Op, Replica, ReplicaConfig, SignedOp, Status, Watermark,
};
use splitsafe::keys::{KeyError, MemberId, SignatureBytes, SignedMessage};
use support::forge::{self, Kind, RawKey};
use support::group::{bundle, enc_key, found, identity, T0};

/// The secret seed behind `identity(n)`.
fn seed(n: u8) -> [u8; 32] {
    [n.wrapping_add(1); 32]
}

/// Bob (1), Mallory (2), and a member whose identity key has mixed order (seed 3).
fn mallory() -> RawKey {
    RawKey::from_seed(seed(2))
}

fn mixed() -> RawKey {
    RawKey::from_seed(seed(3)).mixed_order()
}

/// A key with small order (the identity point) and a signature the cofactored equation
/// accepts under it: `R = sB`.
fn small_order_message() -> SignedMessage {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::scalar::Scalar;
    let s = Scalar::from(5u8);
    let mut signature = [0; 64];
    signature[..32].copy_from_slice(&(ED25519_BASEPOINT_POINT * s).compress().to_bytes());
    signature[32..].copy_from_slice(&s.to_bytes());
    let mut identity_point = [0; 32];
    identity_point[0] = 1;
    SignedMessage {
        signer: MemberId(identity_point),
        bytes: b"anything".to_vec(),
        signature: SignatureBytes(signature),
    }
}

/// A curve point written non-canonically (`y + p` for a small `y`), as a signer.
fn non_canonical_key_message() -> SignedMessage {
    let y = (2u8..19)
        .find(|y| {
            let mut bytes = [0; 32];
            bytes[0] = *y;
            curve25519_dalek::edwards::CompressedEdwardsY(bytes)
                .decompress()
                .is_some_and(|p| !p.is_small_order())
        })
        .expect("some y below 19 is on the curve");
    let mut alias = [0xff; 32];
    alias[0] = 0xed + y;
    alias[31] = 0x7f;
    let honest = mallory().message(Kind::Honest, b"anything".to_vec(), 1);
    SignedMessage {
        signer: MemberId(alias),
        ..honest
    }
}

/// Every kind of signature by an ordinary key and by a mixed-order key, and the two refused
/// keys, each with the verdict the rule gives it alone.
fn pool() -> Vec<(SignedMessage, Result<(), KeyError>)> {
    let mut out = Vec::new();
    for (i, key) in [mallory(), mixed(), RawKey::from_seed(seed(4))]
        .iter()
        .enumerate()
    {
        for (j, kind) in Kind::ALL.into_iter().enumerate() {
            let bytes = format!("test/v1\0message {i} {j}").into_bytes();
            let message = key.message(kind, bytes, (i * 10 + j) as u64);
            let verdict = if kind.accepted() {
                Ok(())
            } else {
                Err(KeyError::BadSignature(key.id()))
            };
            out.push((message, verdict));
        }
    }
    for message in [small_order_message(), non_canonical_key_message()] {
        let verdict = Err(KeyError::InvalidPublicKey(message.signer));
        out.push((message, verdict));
    }
    out
}

#[test]
fn each_signature_alone_gets_the_specified_verdict() {
    for (message, verdict) in pool() {
        assert_eq!(message.verify(), verdict, "{message:?}");
    }
}

fn batch_size() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), Just(2), Just(3), Just(64)]
}

proptest! {
    #![proptest_config(support::config_with_cases(64))]

    /// A batch of 1, 2, 3 or 64 signatures of any composition (repeats included) passes
    /// exactly when each member passes alone, and otherwise fails with the first member's
    /// own error.
    #[test]
    fn every_batch_agrees_with_its_members(
        picks in batch_size().prop_flat_map(|n| proptest::collection::vec(any::<prop::sample::Index>(), n))
    ) {
        let pool = pool();
        let batch: Vec<&(SignedMessage, Result<(), KeyError>)> =
            picks.iter().map(|i| i.get(&pool)).collect();
        let messages: Vec<SignedMessage> = batch.iter().map(|(m, _)| m.clone()).collect();
        let expected = batch.iter().map(|(_, v)| *v).find(Result::is_err).unwrap_or(Ok(()));
        prop_assert_eq!(SignedMessage::verify_batch(&messages), expected);
    }
}

/// The group: founder 0 adds Bob, Mallory and the mixed-order member (its bundle honestly
/// self-signed under its mixed-order key).
fn group() -> (Replica, SignedOp) {
    let (mut replica, genesis, founder) = found();
    replica
        .add(&founder, bundle(&identity(1), 1, T0), T0 + 1)
        .unwrap();
    replica
        .add(&founder, bundle(&identity(2), 2, T0), T0 + 2)
        .unwrap();
    let mixed_bundle = forge::bundle(
        &mixed(),
        Kind::Honest,
        enc_key(3),
        Timestamp::from_physical(T0),
        7,
    );
    replica.add(&founder, mixed_bundle, T0 + 3).unwrap();
    assert!(replica.is_member(&mixed().id()));
    // Both may remove and add plain members, so their crafted ops can take effect.
    replica.promote(&founder, mallory().id(), T0 + 4).unwrap();
    replica.promote(&founder, mixed().id(), T0 + 4).unwrap();
    (replica, genesis)
}

/// Operations by Mallory and by the mixed-order member (both admins) with every kind of author signature:
/// removals of Bob and of each other, and adds whose carried bundle is signed with every
/// kind too (two signatures per op). Each comes with whether the rule accepts both.
fn crafted_ops(group: &Replica) -> Vec<(SignedOp, bool)> {
    let mut out = Vec::new();
    let mut at = T0 + 1_000;
    let mut next = || {
        at += 1;
        at
    };
    for (a, author) in [mallory(), mixed()].iter().enumerate() {
        for kind in Kind::ALL {
            let targets = [identity(1).id(), mallory().id(), mixed().id()];
            for target in targets.into_iter().filter(|t| *t != author.id()) {
                let op = Op {
                    group: group.group(),
                    author: author.id(),
                    seq: 1,
                    prev: Op::NO_PREV,
                    timestamp: Timestamp::from_physical(next()),
                    body: Body::Remove {
                        member: target,
                        watermark: Watermark::NONE,
                    },
                };
                out.push((forge::signed_op(op, author, kind, next()), kind.accepted()));
            }
            for (b, bundle_kind) in Kind::ALL.into_iter().enumerate() {
                let newcomer = RawKey::from_seed([50 + (a * 6 + b) as u8; 32]);
                let carried = forge::bundle(
                    &newcomer,
                    bundle_kind,
                    enc_key(9),
                    Timestamp::from_physical(T0),
                    next(),
                );
                let op = Op {
                    group: group.group(),
                    author: author.id(),
                    seq: 1,
                    prev: Op::NO_PREV,
                    timestamp: Timestamp::from_physical(next()),
                    body: Body::Add {
                        bundle: carried,
                        watermark: Watermark::NONE,
                    },
                };
                let accepted = kind.accepted() && bundle_kind.accepted();
                out.push((forge::signed_op(op, author, kind, next()), accepted));
            }
        }
    }
    out
}

/// Whether each op was accepted (not refused), whatever its status.
fn verdicts(results: &[Result<Status, IngestError>]) -> Vec<bool> {
    results.iter().map(Result::is_ok).collect()
}

const NOW: u64 = T0 + 100_000;

/// Feeds `ops` to a copy of `base` one by one.
fn one_by_one(base: &Replica, ops: &[SignedOp]) -> (Replica, Vec<bool>) {
    let mut replica = base.clone();
    let results: Vec<_> = ops
        .iter()
        .map(|op| replica.ingest(op.clone(), NOW).map(|i| i.status))
        .collect();
    (replica, verdicts(&results))
}

/// Feeds `ops` to a copy of `base` in consecutive batches of the given sizes (cycled).
fn in_batches(base: &Replica, ops: &[SignedOp], sizes: &[usize]) -> (Replica, Vec<bool>) {
    let mut replica = base.clone();
    let mut out = Vec::new();
    let mut rest = ops;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        out.extend(verdicts(&replica.ingest_batch(chunk.to_vec(), NOW).results));
        rest = tail;
    }
    (replica, out)
}

fn assert_same(a: &Replica, b: &Replica) {
    assert_eq!(a.view().digest(), b.view().digest());
    assert_eq!(a.summary(), b.summary());
}

proptest! {
    #![proptest_config(support::config_with_cases(24))]

    /// Two replicas fed the same crafted operations by different paths accept the same ones
    /// (exactly those whose every signature the rule accepts) and never differ; each reloads
    /// its own snapshot to the same state, refusing nothing.
    #[test]
    fn replicas_fed_by_different_paths_never_differ(
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..40),
        sizes in proptest::collection::vec(batch_size(), 1..6),
    ) {
        let (base, _) = group();
        let crafted = crafted_ops(&base);
        let chosen: Vec<&(SignedOp, bool)> = picks.iter().map(|i| i.get(&crafted)).collect();
        let ops: Vec<SignedOp> = chosen.iter().map(|(op, _)| op.clone()).collect();
        let expected: Vec<bool> = chosen.iter().map(|(_, ok)| *ok).collect();

        let (single, single_verdicts) = one_by_one(&base, &ops);
        let (whole, whole_verdicts) = in_batches(&base, &ops, &[usize::MAX]);
        let (chunked, chunked_verdicts) = in_batches(&base, &ops, &sizes);
        prop_assert_eq!(&single_verdicts, &expected);
        prop_assert_eq!(&whole_verdicts, &expected);
        prop_assert_eq!(&chunked_verdicts, &expected);
        assert_same(&single, &whole);
        assert_same(&single, &chunked);
        for replica in [&single, &whole, &chunked] {
            let loaded = Replica::load(&replica.save(), ReplicaConfig::default(), 1 << 22, NOW)
                .expect("a replica reloads its own snapshot");
            prop_assert!(loaded.refused.is_empty());
            assert_same(&loaded.replica, replica);
        }
    }
}

/// The review's three constructions, each as the attack used it: Mallory removes Bob with
/// the signature, one replica gets it alone and another in a batch with the genesis, then
/// each reloads its snapshot. The op is logged by both and both keep it after reloading.
#[test]
fn the_reviewed_constructions_never_split_replicas() {
    let (base, genesis) = group();
    for (author, kind) in [
        (mallory(), Kind::IdentityR),
        (mallory(), Kind::TorsionR),
        (mixed(), Kind::Honest),
        (mixed(), Kind::TorsionR),
    ] {
        for nonce in 0..16 {
            let op = Op {
                group: base.group(),
                author: author.id(),
                seq: 1,
                prev: Op::NO_PREV,
                timestamp: Timestamp::from_physical(T0 + 1_000),
                body: Body::Remove {
                    member: identity(1).id(),
                    watermark: Watermark::NONE,
                },
            };
            let bad = forge::signed_op(op, &author, kind, nonce);
            let (mut alone, mut batched) = (base.clone(), base.clone());
            let single = alone.ingest(bad.clone(), NOW).map(|i| i.status);
            let report = batched.ingest_batch(vec![genesis.clone(), bad.clone()], NOW);
            assert_eq!(single, Ok(Status::Logged), "{kind:?}");
            assert_eq!(report.results[1], Ok(Status::Logged), "{kind:?}");
            assert!(!alone.is_member(&identity(1).id()));
            assert_same(&alone, &batched);
            for replica in [&alone, &batched] {
                let loaded =
                    Replica::load(&replica.save(), ReplicaConfig::default(), 1 << 20, NOW).unwrap();
                assert!(loaded.refused.is_empty());
                assert_same(&loaded.replica, replica);
            }
        }
    }
}

/// An op that carries a bundle has two signatures; a single ingest of it agrees with a batch
/// ingest of it for every pair of kinds.
#[test]
fn an_op_with_a_bundle_gets_one_verdict_alone_and_batched() {
    let (base, genesis) = group();
    for (op, accepted) in crafted_ops(&base) {
        if !matches!(op.op().body, Body::Add { .. }) {
            continue;
        }
        let (mut alone, mut batched) = (base.clone(), base.clone());
        let single = alone.ingest(op.clone(), NOW);
        let report = batched.ingest_batch(vec![genesis.clone(), op.clone()], NOW);
        assert_eq!(single.is_ok(), accepted);
        assert_eq!(report.results[1].is_ok(), accepted);
        assert_eq!(op.verify().is_ok(), accepted);
        assert_same(&alone, &batched);
    }
}

/// Envelope signatures go through the same rule: a signed envelope whose signature is
/// replaced by one of every kind opens exactly when the rule accepts that signature.
#[test]
fn envelope_signatures_follow_the_same_rule() {
    let mut rng = support::crypto::rng(3);
    let (mut devices, _) = support::crypto::world(3, KeyringConfig::default(), &mut rng);
    let sender = &mut devices[2];
    let envelope = sender
        .keyring
        .seal(
            &mut sender.replica,
            T0 + 200,
            b"hello",
            SealOptions { sign: true },
            &mut rng,
        )
        .unwrap();
    let mut message = b"splitsafe/v1/envelope\0".to_vec();
    message.extend_from_slice(&envelope.header.bind(&envelope.ciphertext));
    for (nonce, kind) in Kind::ALL.into_iter().enumerate() {
        let mut forged = envelope.clone();
        let signed = mallory().message(kind, message.clone(), nonce as u64);
        forged.signature = Some(signed.signature);
        let bob = &mut devices[1];
        let opened = bob.keyring.open(&forged, &mut bob.replica, T0 + 300);
        assert_eq!(signed.verify().is_ok(), kind.accepted());
        match kind.accepted() {
            true => assert!(opened.unwrap().signed, "{kind:?}"),
            false => assert_eq!(opened.unwrap_err(), OpenError::BadSignature, "{kind:?}"),
        }
    }
}

/// A batch is verified in chunks (bounding the verifier's memory): a batch of 4,200 adds
/// with signatures broken in both of its chunks (the first, the first of the second chunk,
/// the last) refuses exactly those three, with the same verdicts as one by one.
#[test]
fn a_batch_larger_than_a_verification_chunk_refuses_exactly_its_bad_signatures() {
    let (mut founder, genesis, owner) = found();
    let base = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
    let mut ops: Vec<SignedOp> = (0..4_200u32)
        .map(|i| {
            let newcomer = splitsafe::keys::Identity::from_secret_bytes(
                *blake3::hash(&i.to_be_bytes()).as_bytes(),
            );
            let at = T0 + 1 + u64::from(i);
            founder
                .add(
                    &owner,
                    newcomer.bundle(enc_key(7), Timestamp::from_physical(at)),
                    at,
                )
                .unwrap()
                .0
        })
        .collect();
    let broken = [3, 4_096, 4_199];
    for &i in &broken {
        let mut bytes = ops[i].to_cbor();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        ops[i] = SignedOp::from_cbor(&bytes).unwrap();
    }
    let mut replica = base.clone();
    let results = replica.ingest_batch(ops.clone(), NOW).results;
    for (i, result) in results.iter().enumerate() {
        if broken.contains(&i) {
            assert!(
                matches!(
                    result,
                    Err(IngestError::Signature(KeyError::BadSignature(_)))
                ),
                "op {i}: {result:?}"
            );
        } else {
            assert!(result.is_ok(), "op {i}: {result:?}");
        }
    }
    let (alone, verdicts_alone) = one_by_one(&base, &ops);
    assert_eq!(verdicts(&results), verdicts_alone);
    assert_same(&replica, &alone);
}
