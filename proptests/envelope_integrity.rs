//! One envelope, one plaintext (review finding F3).
//!
//! A dishonest sender wraps content key K1 for Alice and K2 for Bob and solves one
//! ciphertext block so that the payload authenticates under the payload keys of both (the
//! "invisible salamanders" construction against ChaCha20-Poly1305, which does not commit to
//! its key). The ciphertext really is valid under both keys; the header commits to K1, so
//! Alice reads her plaintext and Bob's open fails with `CommitmentMismatch` instead of
//! showing him a second one.

use crate::support;

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Tag};
use num_bigint::BigUint;
use rand_core::Rng;
use splitsafe::crypto::{
    Envelope, Header, KeyId, Keyring, KeyringConfig, OpenError, PairwiseKey, SealOptions,
};
use splitsafe::group::{Replica, ReplicaConfig};
use splitsafe::keys::{EncryptionKey, Identity};
use support::crypto::{envelope_signature, payload_key, rng, schedule, slot};
use support::group::T0;

/// Poly1305's (r, s) for one ChaCha20-Poly1305 message under `key` with the zero nonce.
fn poly_keys(key: &[u8; 32]) -> (BigUint, BigUint) {
    let mut block = [0u8; 32];
    chacha20::ChaCha20::new(key.into(), &[0u8; 12].into()).apply_keystream(&mut block);
    let mut r = block[..16].to_vec();
    for (i, mask) in [
        (3, 15),
        (7, 15),
        (11, 15),
        (15, 15),
        (4, 252),
        (8, 252),
        (12, 252),
    ] {
        r[i] &= mask;
    }
    (
        BigUint::from_bytes_le(&r),
        BigUint::from_bytes_le(&block[16..]),
    )
}

/// The 16-byte blocks Poly1305 reads for `aad` and `ciphertext` (RFC 8439), each with its
/// high bit added.
fn mac_blocks(aad: &[u8], ciphertext: &[u8]) -> Vec<BigUint> {
    let mut data = aad.to_vec();
    data.resize(aad.len().div_ceil(16) * 16, 0);
    data.extend_from_slice(ciphertext);
    data.resize(data.len().div_ceil(16) * 16, 0);
    data.extend_from_slice(&(aad.len() as u64).to_le_bytes());
    data.extend_from_slice(&(ciphertext.len() as u64).to_le_bytes());
    data.chunks(16)
        .map(|c| BigUint::from_bytes_le(c) + (BigUint::from(1u8) << 128))
        .collect()
}

/// A ciphertext of two blocks and its tag that authenticates under both keys with `aad`;
/// the second block is drawn from `draw`, the first solved for.
fn colliding_ciphertext(keys: [&[u8; 32]; 2], aad: &[u8], draw: &mut impl Rng) -> Vec<u8> {
    let p = (BigUint::from(1u8) << 130) - BigUint::from(5u8);
    let two128 = BigUint::from(1u8) << 128;
    let (r1, s1) = poly_keys(keys[0]);
    let (r2, s2) = poly_keys(keys[1]);
    let free = aad.len().div_ceil(16); // index of the first ciphertext block
    for _ in 0..10_000 {
        let mut body = vec![0u8; 32];
        draw.fill_bytes(&mut body[16..]);
        let blocks = mac_blocks(aad, &body);
        let n = blocks.len();
        let power = |r: &BigUint, i: usize| r.modpow(&BigUint::from(n - i), &p);
        // h1 - h2 without the free block, and the free block's coefficient.
        let mut rest = BigUint::from(0u8);
        for (i, m) in blocks.iter().enumerate().filter(|(i, _)| *i != free) {
            rest = (rest + m * ((power(&r1, i) + &p - power(&r2, i)) % &p)) % &p;
        }
        let coefficient = (power(&r1, free) + &p - power(&r2, free)) % &p;
        // Target h1 - h2 = (s2 - s1) mod 2^128, so that both tags agree.
        let target = ((&s2 + &two128) - &s1) % &two128;
        let inverse = coefficient.modpow(&(&p - BigUint::from(2u8)), &p);
        let m: BigUint = ((target + &p - rest) % &p * inverse) % &p;
        if m < two128 || m >= (&two128 << 1) {
            continue;
        }
        let mut block = (m - &two128 as &BigUint).to_bytes_le();
        block.resize(16, 0);
        body[..16].copy_from_slice(&block);
        // The tag under the first key; the solved block makes it the second key's too.
        let mut h1 = BigUint::from(0u8);
        for m in mac_blocks(aad, &body) {
            h1 = ((h1 + m) * &r1) % &p;
        }
        let mut tag = ((h1 + &s1) % &two128).to_bytes_le();
        tag.resize(16, 0);
        let ciphertext = [body, tag].concat();
        if keys
            .iter()
            .all(|key| decrypts(key, aad, &ciphertext).is_some())
        {
            return ciphertext;
        }
    }
    panic!("no collision in 10,000 draws");
}

/// The ciphertext (with its tag last) decrypted under `key`, if it authenticates.
fn decrypts(key: &[u8; 32], aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
    let (body, tag) = ciphertext.split_at(ciphertext.len() - 16);
    let mut plaintext = body.to_vec();
    ChaCha20Poly1305::new(&(*key).into())
        .decrypt_inout_detached(
            &Default::default(),
            aad,
            plaintext.as_mut_slice().into(),
            &Tag::from(<[u8; 16]>::try_from(tag).unwrap()),
        )
        .ok()?;
    Some(plaintext)
}

#[test]
fn one_envelope_cannot_show_two_readers_two_plaintexts() {
    // Mallory (seed 1) founds the group with Alice (2) and Bob (3). Each keyring draws its
    // X25519 secret first from ChaCha20Rng(seed), so Mallory's is known to this test.
    let keyring = |seed: u8| {
        Keyring::new(
            Identity::from_secret_bytes([seed; 32]),
            KeyringConfig::default(),
            &mut rng(u64::from(seed)),
            T0,
        )
    };
    let (mallory, mut alice, mut bob) = (keyring(1), keyring(2), keyring(3));
    let mut x25519 = [0u8; 32];
    rng(1).fill_bytes(&mut x25519);
    let mallory_secret = x25519_dalek::StaticSecret::from(x25519);
    let (mut replica, genesis) = Replica::create(
        mallory.identity(),
        mallory.bundle(),
        [0; 16],
        ReplicaConfig::default(),
        T0,
    )
    .unwrap();
    for (i, reader) in [&alice, &bob].into_iter().enumerate() {
        replica
            .add(mallory.identity(), reader.bundle(), T0 + 1 + i as u64)
            .unwrap();
    }
    let reader_replica = || {
        let mut r = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
        r.ingest_batch(replica.ops().cloned().collect(), T0 + 10);
        r
    };
    let (mut at_alice, mut at_bob) = (reader_replica(), reader_replica());

    // An honest envelope supplies the header fields; Mallory rewrites the rest.
    let honest = {
        let mut mallory = mallory;
        mallory
            .seal(
                &mut replica,
                T0 + 20,
                b"x",
                SealOptions { sign: true },
                &mut rng(9),
            )
            .unwrap()
    };
    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    let header = Header {
        commitment: schedule(&k1)[32..].try_into().unwrap(),
        ..honest.header
    };
    let aad = header.to_bytes();
    let ciphertext =
        colliding_ciphertext([&payload_key(&k1), &payload_key(&k2)], &aad, &mut rng(5));
    let for_alice = decrypts(&payload_key(&k1), &aad, &ciphertext).unwrap();
    let for_bob = decrypts(&payload_key(&k2), &aad, &ciphertext).unwrap();
    assert_ne!(
        for_alice, for_bob,
        "two keys, one ciphertext, two plaintexts"
    );

    let bound = header.bind(&ciphertext);
    let group = replica.group();
    let mut slots: Vec<Vec<u8>> = [(&alice, &k1), (&bob, &k2)]
        .into_iter()
        .map(|(reader, key)| {
            let peer: EncryptionKey = reader.bundle().encryption_key;
            let (out, _) = PairwiseKey::between(&group, &mallory_secret, &peer).unwrap();
            slot(&out, &header.nonce, &bound, key)
        })
        .collect();
    slots.sort();
    let forged = Envelope {
        header,
        slots: slots.concat(),
        ciphertext,
        signature: Some(envelope_signature(&[1; 32], &bound)),
    };
    assert_eq!(
        KeyId::of(&mallory_public(&mallory_secret)),
        header.sender_key
    );

    let opened = alice.open(&forged, &mut at_alice, T0 + 30).unwrap();
    assert_eq!(opened.plaintext, for_alice);
    assert!(opened.signed);
    assert_eq!(
        bob.open(&forged, &mut at_bob, T0 + 30).unwrap_err(),
        OpenError::CommitmentMismatch
    );
}

fn mallory_public(secret: &x25519_dalek::StaticSecret) -> EncryptionKey {
    EncryptionKey(x25519_dalek::PublicKey::from(secret).to_bytes())
}
