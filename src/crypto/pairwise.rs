//! Pairwise keys and the per-message slot keys derived from them.

use super::keyring::KeyId;
use crate::group::GroupId;
use crate::keys::EncryptionKey;
use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A directional key from one encryption key to another within one group.
///
/// `HKDF-SHA256(salt = group id, ikm = X25519(own, peer),
/// info = "splitsafe v1 pairwise" || from key id || to key id)`, 32 bytes. The key from `s`
/// to `r` differs from the key from `r` to `s`. Zeroized on drop; `Debug` shows nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PairwiseKey([u8; 32]);

impl fmt::Debug for PairwiseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairwiseKey(..)")
    }
}

impl PairwiseKey {
    /// Both directional keys between the holder of `own` and the owner of `peer` in `group`:
    /// (own to peer, peer to own). `None` if the exchange is not contributory (the peer's
    /// key has small order, so the result would be public).
    pub fn between(
        group: &GroupId,
        own: &StaticSecret,
        peer: &EncryptionKey,
    ) -> Option<(PairwiseKey, PairwiseKey)> {
        let own_id = KeyId::of(&EncryptionKey(PublicKey::from(own).to_bytes()));
        derive(
            group,
            (own, own_id),
            (&PublicKey::from(peer.0), KeyId::of(peer)),
        )
    }
}

/// As [`PairwiseKey::between`], with both key ids already known.
pub(crate) fn derive(
    group: &GroupId,
    own: (&StaticSecret, KeyId),
    peer: (&PublicKey, KeyId),
) -> Option<(PairwiseKey, PairwiseKey)> {
    let shared = own.0.diffie_hellman(peer.0);
    if !shared.was_contributory() {
        return None;
    }
    let hkdf = Hkdf::<Sha256>::new(Some(&group.0), shared.as_bytes());
    let expand = |from: KeyId, to: KeyId| {
        let mut okm = [0; 32];
        hkdf.expand_multi_info(&[b"splitsafe v1 pairwise", &from.0, &to.0], &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        PairwiseKey(okm)
    };
    Some((expand(own.1, peer.1), expand(peer.1, own.1)))
}

/// Length of a recipient hint.
pub(crate) const HINT_LEN: usize = 8;

/// The key that wraps one message's content key for one recipient, and the hint that lets
/// the recipient find its slot: BLAKE3 keyed by the pairwise key over
/// `"splitsafe v1 slot" || message nonce`, 40 bytes of output.
pub(crate) struct SlotKey {
    pub(crate) wrap: [u8; 32],
    pub(crate) hint: [u8; HINT_LEN],
}

impl Drop for SlotKey {
    fn drop(&mut self) {
        self.wrap.zeroize();
    }
}

impl PairwiseKey {
    pub(crate) fn slot_key(&self, nonce: &[u8; 16]) -> SlotKey {
        let mut out = [0u8; 32 + HINT_LEN];
        blake3::Hasher::new_keyed(&self.0)
            .update(b"splitsafe v1 slot")
            .update(nonce)
            .finalize_xof()
            .fill(&mut out);
        let mut key = SlotKey {
            wrap: [0; 32],
            hint: [0; HINT_LEN],
        };
        key.wrap.copy_from_slice(&out[..32]);
        key.hint.copy_from_slice(&out[32..]);
        out.zeroize();
        key
    }

    /// The key bytes, for test vectors.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}
