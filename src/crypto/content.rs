//! The content key of one message and the keys derived from it.
//!
//! ChaCha20-Poly1305 does not commit to its key: whoever picks two keys can make one
//! ciphertext that authenticates under both. So the content key `CK` is never used directly:
//! one BLAKE3 derivation (derive-key context `"splitsafe v2 content key schedule"`, 64 bytes
//! of output) gives the payload key (bytes 0..32) and the key commitment (bytes 32..64). The
//! header carries the commitment, which the slots' binding hash, the signature and the
//! payload's associated data all cover. A reader checks it after unwrapping `CK` and before
//! decrypting, so every reader who opens an envelope holds the one content key the header
//! names: one envelope, one plaintext. (The two halves of one XOF output are independent
//! outputs of one PRF call, as separate as two contexts would make them, at half the cost.)

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// One message's content key, fresh from the sender's CSPRNG or unwrapped from a slot, with
/// the payload key and commitment derived from it. Zeroized on drop.
pub(crate) struct ContentKey {
    key: Zeroizing<[u8; 32]>,
    payload_key: Zeroizing<[u8; 32]>,
    commitment: [u8; 32],
}

impl ContentKey {
    pub(crate) fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        Self::from_bytes(key)
    }

    pub(crate) fn from_bytes(key: Zeroizing<[u8; 32]>) -> Self {
        let mut schedule = Zeroizing::new([0u8; 64]);
        blake3::Hasher::new_derive_key("splitsafe v2 content key schedule")
            .update(key.as_ref())
            .finalize_xof()
            .fill(schedule.as_mut());
        let mut payload_key = Zeroizing::new([0u8; 32]);
        payload_key.copy_from_slice(&schedule[..32]);
        let mut commitment = [0u8; 32];
        commitment.copy_from_slice(&schedule[32..]);
        Self {
            key,
            payload_key,
            commitment,
        }
    }

    /// The bytes wrapped into each slot.
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The commitment the header carries.
    pub(crate) fn commitment(&self) -> [u8; 32] {
        self.commitment
    }

    /// Whether this key is the one `commitment` names (compared in constant time).
    pub(crate) fn matches(&self, commitment: &[u8; 32]) -> bool {
        blake3::Hash::from(self.commitment) == blake3::Hash::from(*commitment)
    }

    /// The payload encrypted under the payload key with `nonce` and associated data `aad`,
    /// its 16-byte tag appended.
    pub(crate) fn seal_payload(&self, nonce: &Nonce, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut ciphertext = Vec::with_capacity(plaintext.len() + 16);
        ciphertext.extend_from_slice(plaintext);
        let tag = aead(&self.payload_key)
            .encrypt_inout_detached(nonce, aad, ciphertext.as_mut_slice().into())
            .expect("payload within the AEAD's length limit");
        ciphertext.extend_from_slice(&tag);
        ciphertext
    }

    /// The payload of `ciphertext` (tag last), if it authenticates with `nonce` and `aad`.
    pub(crate) fn open_payload(
        &self,
        nonce: &Nonce,
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Option<Vec<u8>> {
        let (body, tag) = ciphertext.split_at(ciphertext.len().checked_sub(16)?);
        let tag = Tag::from(<[u8; 16]>::try_from(tag).ok()?);
        let mut plaintext = body.to_vec();
        aead(&self.payload_key)
            .decrypt_inout_detached(nonce, aad, plaintext.as_mut_slice().into(), &tag)
            .ok()?;
        Some(plaintext)
    }
}

pub(crate) fn aead(key: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&Key::from(*key))
}

/// Every key here is used for one message only, so the AEAD nonce is fixed at zero.
pub(crate) fn zero_nonce() -> Nonce {
    Nonce::default()
}
