//! Raw Ed25519 signing, for the edge-case signatures of review finding F2: what a member who
//! signs with its own secret scalar, but not through a library, can produce.

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use curve25519_dalek::traits::Identity as _;
use serde::Serialize;
use sha2::{Digest, Sha512};
use splitsafe::group::{Op, SignedOp};
use splitsafe::keys::{MemberId, SignatureBytes, SignedMessage};

/// The group order ℓ, little-endian.
const ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// How a signature is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `R = rB`, `S = r + k·a`: what every library produces.
    Honest,
    /// `R` = the identity point, `S = k·a` (reveals `a`; cofactorless-strict checks refuse it).
    IdentityR,
    /// `R = rB + T` with `T` of order 8, `S = r + k·a`.
    TorsionR,
    /// An honest signature with `S` off by one.
    WrongS,
    /// An honest signature with `S + ℓ` written in place of `S`.
    NonCanonicalS,
    /// `R` = the identity point written with its sign bit set, `S = k·a`: the equation
    /// holds, the encoding is not the point's canonical one.
    NonCanonicalR,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Honest,
        Kind::IdentityR,
        Kind::TorsionR,
        Kind::WrongS,
        Kind::NonCanonicalS,
        Kind::NonCanonicalR,
    ];

    /// Whether the protocol's rule accepts a signature of this kind (by a usable key).
    pub fn accepted(self) -> bool {
        matches!(self, Kind::Honest | Kind::IdentityR | Kind::TorsionR)
    }
}

/// A signer's secret scalar and the public key bytes it signs under.
#[derive(Clone, Copy, Debug)]
pub struct RawKey {
    pub secret: Scalar,
    pub public: [u8; 32],
}

impl RawKey {
    /// The key of `Identity::from_secret_bytes(seed)`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let hash = Sha512::digest(seed);
        let secret = Scalar::from_bytes_mod_order(clamp_integer(hash[..32].try_into().unwrap()));
        Self {
            secret,
            public: (ED25519_BASEPOINT_POINT * secret).compress().to_bytes(),
        }
    }

    /// The same secret behind a mixed-order public key `aB + T`: it passes every check
    /// that only refuses small-order keys.
    pub fn mixed_order(self) -> Self {
        let point = ED25519_BASEPOINT_POINT * self.secret + EIGHT_TORSION[1];
        Self {
            public: point.compress().to_bytes(),
            ..self
        }
    }

    pub fn id(&self) -> MemberId {
        MemberId(self.public)
    }

    /// Signs `message` in the way `kind` says, with nonce number `nonce`.
    pub fn sign(&self, kind: Kind, message: &[u8], nonce: u64) -> SignatureBytes {
        let r = Scalar::from_bytes_mod_order_wide(&Sha512::digest(nonce.to_le_bytes()).into());
        let (nonce_scalar, point_bytes) = match kind {
            Kind::IdentityR => (Scalar::ZERO, EdwardsPoint::identity().compress().to_bytes()),
            Kind::NonCanonicalR => {
                let mut bytes = EdwardsPoint::identity().compress().to_bytes();
                bytes[31] |= 0x80;
                (Scalar::ZERO, bytes)
            }
            Kind::TorsionR => (
                r,
                (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[1])
                    .compress()
                    .to_bytes(),
            ),
            Kind::Honest | Kind::WrongS | Kind::NonCanonicalS => {
                (r, (ED25519_BASEPOINT_POINT * r).compress().to_bytes())
            }
        };
        let k = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(point_bytes)
                .chain_update(self.public)
                .chain_update(message)
                .finalize()
                .into(),
        );
        let mut s = (nonce_scalar + k * self.secret).to_bytes();
        match kind {
            Kind::WrongS => s = (Scalar::from_canonical_bytes(s).unwrap() + Scalar::ONE).to_bytes(),
            Kind::NonCanonicalS => s = add_order(s),
            _ => {}
        }
        let mut out = [0; 64];
        out[..32].copy_from_slice(&point_bytes);
        out[32..].copy_from_slice(&s);
        SignatureBytes(out)
    }

    /// A signed message in the form the library checks.
    pub fn message(&self, kind: Kind, bytes: Vec<u8>, nonce: u64) -> SignedMessage {
        SignedMessage {
            signer: self.id(),
            signature: self.sign(kind, &bytes, nonce),
            bytes,
        }
    }
}

/// `s + ℓ` as 32 little-endian bytes (no overflow: `s < ℓ < 2^253`).
fn add_order(s: [u8; 32]) -> [u8; 32] {
    let mut out = [0; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(ORDER[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    out
}

/// `op` with the author's signature made as `kind` says; the author field must be `key`'s.
pub fn signed_op(op: Op, key: &RawKey, kind: Kind, nonce: u64) -> SignedOp {
    #[derive(Serialize)]
    struct Wire {
        op: Op,
        signature: SignatureBytes,
    }
    assert_eq!(op.author, key.id());
    let signature = key.sign(kind, &op.signed_bytes(), nonce);
    SignedOp::from_cbor(&splitsafe::codec::encode(&Wire { op, signature }))
        .expect("a signed op re-encodes within its bound")
}

/// A bundle of `key`'s publishing `encryption_key`, its self-signature made as `kind` says.
pub fn bundle(
    key: &RawKey,
    kind: Kind,
    encryption_key: splitsafe::keys::EncryptionKey,
    created: splitsafe::clock::Timestamp,
    nonce: u64,
) -> splitsafe::keys::KeyBundle {
    let mut bundle = splitsafe::keys::KeyBundle {
        member: key.id(),
        encryption_key,
        created,
        signature: SignatureBytes([0; 64]),
    };
    bundle.signature = key.sign(kind, &bundle.signed_bytes(), nonce);
    bundle
}
