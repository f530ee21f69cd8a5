//! Groups of devices with keyrings, for the encryption tests and fuzz targets.

use super::group::{identity, T0};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use ed25519_dalek::{Signer, SigningKey};
use rand_core::{Rng as _, SeedableRng};
use splitsafe::crypto::{Envelope, Header, Keyring, KeyringConfig, PairwiseKey};
use splitsafe::group::{Replica, ReplicaConfig, SignedOp};
use splitsafe::keys::{EncryptionKey, Identity, SignatureBytes};
use x25519_dalek::{PublicKey, StaticSecret};

/// The seeded CSPRNG every encryption test draws from, so failures replay.
pub type Rng = rand_chacha::ChaCha20Rng;

/// One member's device: its keyring and its replica of the group.
pub struct Device {
    pub keyring: Keyring,
    pub replica: Replica,
}

/// A group of `n` devices (device 0 founded it and added the others), all synced, plus one
/// outsider device (index `n`) that has joined the replica but was never added.
pub fn world(n: u8, config: KeyringConfig, rng: &mut Rng) -> (Vec<Device>, SignedOp) {
    let keyrings: Vec<Keyring> = (0..=n)
        .map(|i| Keyring::new(identity(i), config, rng, T0))
        .collect();
    let (mut founder, genesis) = Replica::create(
        keyrings[0].identity(),
        keyrings[0].bundle(),
        [7; 16],
        ReplicaConfig::default(),
        T0,
    )
    .unwrap();
    for (i, keyring) in keyrings.iter().enumerate().take(usize::from(n)).skip(1) {
        founder
            .add(keyrings[0].identity(), keyring.bundle(), T0 + i as u64)
            .unwrap();
    }
    let devices = keyrings
        .into_iter()
        .map(|keyring| {
            let mut replica = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
            replica.ingest_batch(founder.ops().cloned().collect(), T0 + 100);
            Device { keyring, replica }
        })
        .collect();
    (devices, genesis)
}

/// A seeded generator.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// Copies every logged op of `from` into all `devices`.
pub fn spread(from: &Replica, devices: &mut [Device], now: u64) {
    let ops: Vec<SignedOp> = from.ops().cloned().collect();
    for device in devices {
        device.replica.ingest_batch(ops.clone(), now);
    }
}

/// A keyring for `who` whose X25519 secret the test knows: a keyring draws its secret first,
/// here from `rng(seed)`.
pub fn keyring_with_secret(who: Identity, seed: u64) -> (Keyring, StaticSecret) {
    let mut secret = [0u8; 32];
    rng(seed).fill_bytes(&mut secret);
    let keyring = Keyring::new(who, KeyringConfig::default(), &mut rng(seed), T0);
    let secret = StaticSecret::from(secret);
    assert_eq!(
        keyring.bundle().encryption_key.0,
        PublicKey::from(&secret).to_bytes(),
        "the keyring drew its secret first"
    );
    (keyring, secret)
}

/// The content key schedule of the spec: 64 bytes, the payload key then the commitment.
pub fn schedule(content_key: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    blake3::Hasher::new_derive_key("splitsafe v2 content key schedule")
        .update(content_key)
        .finalize_xof()
        .fill(&mut out);
    out
}

/// The payload key of a content key.
pub fn payload_key(content_key: &[u8; 32]) -> [u8; 32] {
    schedule(content_key)[..32].try_into().unwrap()
}

/// A slot for `content_key`, as the spec lays it out, from the sender's pairwise key.
pub fn slot(
    pairwise: &PairwiseKey,
    nonce: &[u8; 16],
    bound: &[u8; 32],
    content_key: &[u8; 32],
) -> Vec<u8> {
    let mut derived = [0u8; 40];
    blake3::Hasher::new_keyed(pairwise.as_bytes())
        .update(b"splitsafe v1 slot")
        .update(nonce)
        .finalize_xof()
        .fill(&mut derived);
    let wrap: [u8; 32] = derived[..32].try_into().unwrap();
    let mut wrapped = *content_key;
    let tag = ChaCha20Poly1305::new(&wrap.into())
        .encrypt_inout_detached(&Default::default(), bound, (&mut wrapped[..]).into())
        .unwrap();
    [&derived[32..], &wrapped[..], &tag[..]].concat()
}

/// The signature of a signed envelope binding `bound`, by the identity with Ed25519 secret
/// `signer` (as [`Identity::from_secret_bytes`] takes it).
pub fn envelope_signature(signer: &[u8; 32], bound: &[u8; 32]) -> SignatureBytes {
    let mut message = b"splitsafe/v1/envelope\0".to_vec();
    message.extend_from_slice(bound);
    SignatureBytes(SigningKey::from_bytes(signer).sign(&message).to_bytes())
}

/// An envelope built by hand as a dishonest sender who holds `secret` would build it: any
/// `header` it likes (the commitment is set to match a fixed content key), one slot for each
/// of `readers`, and the signature of the identity with secret `signer` if the header says
/// signed. Everything in it authenticates.
pub fn forge_envelope(
    header: Header,
    secret: &StaticSecret,
    readers: &[EncryptionKey],
    plaintext: &[u8],
    signer: &[u8; 32],
) -> Envelope {
    let content_key = [0x5A; 32];
    let header = Header {
        commitment: schedule(&content_key)[32..].try_into().unwrap(),
        ..header
    };
    let mut ciphertext = plaintext.to_vec();
    let tag = ChaCha20Poly1305::new(&payload_key(&content_key).into())
        .encrypt_inout_detached(
            &Default::default(),
            &header.to_bytes(),
            ciphertext.as_mut_slice().into(),
        )
        .unwrap();
    ciphertext.extend_from_slice(&tag);
    let bound = header.bind(&ciphertext);
    let mut slots: Vec<Vec<u8>> = readers
        .iter()
        .map(|reader| {
            let (out, _) = PairwiseKey::between(&header.group, secret, reader).unwrap();
            slot(&out, &header.nonce, &bound, &content_key)
        })
        .collect();
    slots.sort();
    Envelope {
        header,
        slots: slots.concat(),
        ciphertext,
        signature: header.signed.then(|| envelope_signature(signer, &bound)),
    }
}
