//! The one Ed25519 acceptance rule of the protocol, applied identically to every signature,
//! alone or in a batch of any size and composition.
//!
//! A signature `(R, S)` by public key `A` over message `M` is accepted exactly when:
//!
//! 1. `A` is the canonical encoding of a curve point that is not of small order
//!    (otherwise [`KeyError::InvalidPublicKey`]);
//! 2. `R` is the canonical encoding of a curve point, and `S` is a canonical scalar
//!    (`S < ℓ`);
//! 3. the cofactored equation `[8][S]B = [8]R + [8][k]A` holds, with
//!    `k = SHA-512(R || A || M) mod ℓ` (the equation of ZIP 215).
//!
//! Points with a small-order component (in `R`, or mixed-order keys `A = aB + T`) are
//! accepted whenever the equation holds: multiplying by the cofactor removes the component,
//! so the verdict never depends on it. That is what makes a batch agree with its members: the
//! batch check is the same cofactored equation on a random linear combination, so a batch
//! passes exactly when every signature in it passes, except with probability at most 2^-128
//! over the weights. The weights are drawn from a BLAKE3 stream keyed by the whole batch, so
//! the verdict is a pure function of the batch as well.
//!
//! The equations are computed by `ed25519-zebra` (single and batch); rules 1 and 2's
//! encoding checks, which ZIP 215 leaves out, are byte comparisons made here first.

use super::{KeyError, MemberId, SignatureBytes};
use crate::xof::XofRng;
use ed25519_zebra::{batch, VerificationKey, VerificationKeyBytes};

/// A message, its signer and the signer's Ed25519 signature, checked under the protocol's
/// one acceptance rule (`spec/membership.md`, "Signatures").
///
/// Every signed structure of the protocol starts with its own domain string, so a signature
/// made for one purpose never verifies as another.
///
/// ```
/// use splitsafe::clock::Timestamp;
/// use splitsafe::keys::{EncryptionKey, Identity, SignedMessage};
///
/// let alice = Identity::from_secret_bytes([1; 32]);
/// let bundle = alice.bundle(EncryptionKey([9; 32]), Timestamp::from_raw(5));
/// let signed = SignedMessage {
///     signer: alice.id(),
///     bytes: bundle.signed_bytes(),
///     signature: bundle.signature,
/// };
/// assert!(signed.verify().is_ok());
/// // One signature alone or among others: the verdict is the same.
/// let mut forged = signed.clone();
/// forged.bytes.push(0);
/// assert!(SignedMessage::verify_batch(&[signed.clone(), signed.clone()]).is_ok());
/// assert_eq!(SignedMessage::verify_batch(&[signed, forged.clone()]), forged.verify());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedMessage {
    /// Who signed: the public key the signature is checked under.
    pub signer: MemberId,
    /// The signed bytes, domain string included.
    pub bytes: Vec<u8>,
    /// The signature.
    pub signature: SignatureBytes,
}

/// `p = 2^255 - 19`, little-endian.
const FIELD_PRIME: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// The canonical encodings of the eight points of order dividing 8 (curve25519-dalek's
/// `EIGHT_TORSION`, compressed; a test checks the list against it).
const SMALL_ORDER_POINTS: [[u8; 32]; 8] = [
    hex32("0100000000000000000000000000000000000000000000000000000000000000"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    hex32("0000000000000000000000000000000000000000000000000000000000000080"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
    hex32("0000000000000000000000000000000000000000000000000000000000000000"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
];

/// Parses 64 hex digits at compile time.
pub(crate) const fn hex32(text: &str) -> [u8; 32] {
    const fn digit(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lowercase hex digit"),
        }
    }
    let text = text.as_bytes();
    assert!(text.len() == 64);
    let mut out = [0; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = digit(text[2 * i]) << 4 | digit(text[2 * i + 1]);
        i += 1;
    }
    out
}

/// Whether `bytes` is the one encoding its point has: the y coordinate below `p`, and no
/// sign bit on a point whose x is zero (those are exactly the points with `y = ±1`).
///
/// It says nothing about whether a point with that y exists; decompression decides that.
pub(crate) fn is_canonical_point(bytes: &[u8; 32]) -> bool {
    let mut y = *bytes;
    let sign = y[31] >> 7;
    y[31] &= 0x7f;
    // Little-endian comparison of y with p, from the most significant byte down.
    let below_p = y.iter().rev().cmp(FIELD_PRIME.iter().rev()).is_lt();
    let mut one = [0; 32];
    one[0] = 1;
    let mut minus_one = FIELD_PRIME;
    minus_one[0] -= 1;
    below_p && !(sign == 1 && (y == one || y == minus_one))
}

/// Rule 1 on the bytes alone: canonical and not one of the small-order points.
pub(crate) fn check_key_encoding(key: &MemberId) -> Result<(), KeyError> {
    if is_canonical_point(&key.0) && !SMALL_ORDER_POINTS.contains(&key.0) {
        Ok(())
    } else {
        Err(KeyError::InvalidPublicKey(*key))
    }
}

impl SignedMessage {
    /// The encoding checks of rules 1 and 2 that the equation does not make.
    fn check_encodings(&self) -> Result<(), KeyError> {
        check_key_encoding(&self.signer)?;
        let r: &[u8; 32] = self.signature.0[..32].try_into().expect("64 = 32 + 32");
        if !is_canonical_point(r) {
            return Err(KeyError::BadSignature(self.signer));
        }
        Ok(())
    }

    fn zebra_signature(&self) -> ed25519_zebra::Signature {
        ed25519_zebra::Signature::from_bytes(&self.signature.0)
    }

    /// Verifies this one message under the rule.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidPublicKey`] if the signer's key is not usable;
    /// [`KeyError::BadSignature`] if the signature is refused.
    pub fn verify(&self) -> Result<(), KeyError> {
        self.check_encodings()?;
        let key = VerificationKey::try_from(self.signer.0)
            .map_err(|_| KeyError::InvalidPublicKey(self.signer))?;
        key.verify(&self.zebra_signature(), &self.bytes)
            .map_err(|_| KeyError::BadSignature(self.signer))
    }

    /// Verifies many messages under the same rule, in one batch: about three times faster than
    /// one by one, and `Ok` exactly when every message passes [`verify`](Self::verify)
    /// (except with probability at most 2^-128).
    ///
    /// # Errors
    ///
    /// The error [`verify`](Self::verify) gives for the first message that fails it.
    pub fn verify_batch(messages: &[SignedMessage]) -> Result<(), KeyError> {
        if messages.len() < 2 {
            return messages.iter().try_for_each(Self::verify);
        }
        let encodings_ok = messages.iter().all(|m| m.check_encodings().is_ok());
        if encodings_ok {
            let mut verifier = batch::Verifier::new();
            for m in messages {
                let key = VerificationKeyBytes::from(m.signer.0);
                verifier.queue((key, m.zebra_signature(), &m.bytes));
            }
            if verifier.verify(batch_weights(messages)).is_ok() {
                return Ok(());
            }
        }
        messages.iter().try_for_each(Self::verify)
    }
}

/// The source of a batch's random weights: a BLAKE3 stream keyed by every signer, signature
/// and message of the batch, so that no signer can choose its weight and the same batch
/// always gets the same weights.
fn batch_weights(messages: &[SignedMessage]) -> XofRng {
    let mut hasher = blake3::Hasher::new_derive_key("splitsafe v1 batch weights");
    for m in messages {
        hasher.update(&m.signer.0);
        hasher.update(&m.signature.0);
        hasher.update(&(m.bytes.len() as u64).to_le_bytes());
        hasher.update(&m.bytes);
    }
    XofRng::new(&hasher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use curve25519_dalek::edwards::CompressedEdwardsY;

    #[test]
    fn small_order_table_is_the_eight_torsion_points() {
        let mut expected: Vec<[u8; 32]> = EIGHT_TORSION
            .iter()
            .map(|p| p.compress().to_bytes())
            .collect();
        let mut table = SMALL_ORDER_POINTS.to_vec();
        expected.sort();
        table.sort();
        assert_eq!(table, expected);
    }

    /// The byte rule agrees with "decompresses, and compresses back to the same bytes" on
    /// every encoding near the edges (y near 0, 1, p - 1, p and 2^255, both signs) and on
    /// random ones.
    #[test]
    fn canonical_rule_matches_decompress_compress_round_trip() {
        let mut candidates = Vec::new();
        for low in 0u8..=40 {
            for top in [0x00u8, 0x7f] {
                let mut y = if top == 0 { [0; 32] } else { [0xff; 32] };
                y[31] = top;
                y[0] = if top == 0 { low } else { 0xd0 + low % 48 };
                candidates.push(y);
            }
        }
        for i in 0u32..2_000 {
            candidates.push(*blake3::hash(&i.to_le_bytes()).as_bytes());
        }
        for y in candidates {
            for sign in [0u8, 0x80] {
                let mut bytes = y;
                bytes[31] = (bytes[31] & 0x7f) | sign;
                if let Some(point) = CompressedEdwardsY(bytes).decompress() {
                    assert_eq!(
                        is_canonical_point(&bytes),
                        point.compress().to_bytes() == bytes,
                        "{bytes:02x?}"
                    );
                }
            }
        }
    }
}
