//! The content key of one message and the keys derived from it.
//!
//! ChaCha20-Poly1305 does not commit to its key: whoever picks two keys can make one
//! ciphertext that authenticates under both. So the content key `CK` is never used directly:
//! the payload is encrypted under `derive_key("splitsafe v2 payload key", CK)`, and the
//! header carries `derive_key("splitsafe v2 key commitment", CK)`, which the slots' binding
//! hash, the signature and the payload's associated data all cover. A reader checks it after
//! unwrapping `CK` and before decrypting, so every reader who opens an envelope holds the one
//! content key the header names: one envelope, one plaintext.

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// One message's content key: fresh from the sender's CSPRNG, or unwrapped from a slot.
/// Zeroized on drop.
pub(crate) struct ContentKey(Zeroizing<[u8; 32]>);

impl ContentKey {
    pub(crate) fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        Self(key)
    }

    pub(crate) fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

    /// The bytes wrapped into each slot.
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The commitment the header carries.
    pub(crate) fn commitment(&self) -> [u8; 32] {
        blake3::derive_key("splitsafe v2 key commitment", self.0.as_ref())
    }

    /// Whether this key is the one `commitment` names (compared in constant time).
    pub(crate) fn matches(&self, commitment: &[u8; 32]) -> bool {
        blake3::Hash::from(self.commitment()) == blake3::Hash::from(*commitment)
    }

    /// The AEAD that encrypts the payload.
    pub(crate) fn payload_aead(&self) -> ChaCha20Poly1305 {
        let key = Zeroizing::new(blake3::derive_key(
            "splitsafe v2 payload key",
            self.0.as_ref(),
        ));
        aead(&key)
    }
}

pub(crate) fn aead(key: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&Key::from(*key))
}

/// Every key here is used for one message only, so the AEAD nonce is fixed at zero.
pub(crate) fn zero_nonce() -> Nonce {
    Nonce::default()
}
