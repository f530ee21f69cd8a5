//! The envelope: header, recipient slots, ciphertext, optional signature; and its encoding.

use super::error::OpenError;
use super::keyring::KeyId;
use crate::clock::Timestamp;
use crate::codec;
use crate::group::{GroupId, ViewDigest, Watermark};
use crate::keys::{byte_array, MemberId, SignatureBytes};
use serde::{Deserialize, Serialize};

byte_array!(
    /// Identifies an envelope: see [`Envelope::id`].
    EnvelopeId,
    32
);

/// A decoding error naming the rule an envelope breaks.
fn invalid(reason: &str) -> Result<(), OpenError> {
    Err(OpenError::Malformed(codec::DecodeError::Invalid {
        reason: reason.to_string(),
    }))
}

/// Bytes per recipient: an 8-byte hint, the 32-byte wrapped content key, a 16-byte tag.
pub const SLOT_LEN: usize = 8 + 32 + 16;

/// What a reader can see without opening: who sent it, when, with which key, to which view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Format version; this code writes and reads 3 (version 1 had no key commitment,
    /// version 2 no position; both are refused).
    pub version: u8,
    /// The group.
    pub group: GroupId,
    /// The sender.
    pub sender: MemberId,
    /// The sender's hybrid-logical-clock stamp.
    pub stamp: Timestamp,
    /// The sender's causal position: its own chain head when it sealed (sequence number and
    /// operation id; [`Watermark::NONE`] before its first operation). The reader judges the
    /// sender's standing from it ([`Replica::standing`](crate::group::Replica::standing)).
    pub position: Watermark,
    /// The id of the sender's encryption key.
    pub sender_key: KeyId,
    /// Digest of the view the sender sealed to.
    pub view: ViewDigest,
    /// Fresh random bytes per message, from which slot keys and hints derive.
    #[serde(with = "serde_bytes")]
    pub nonce: [u8; 16],
    /// Commits to the content key: bytes 32..64 of its key schedule (`spec/encryption.md`,
    /// "Sealing", step 1), whose first 32 bytes are the payload key.
    /// Every reader checks it, so all who open the envelope read the same plaintext.
    #[serde(with = "serde_bytes")]
    pub commitment: [u8; 32],
    /// Whether the envelope carries the sender's signature.
    pub signed: bool,
}

impl Header {
    /// The version this code writes and reads.
    pub const VERSION: u8 = 3;
    /// Length of [`Header::to_bytes`].
    pub const LEN: usize = 1 + 32 + 32 + 8 + 8 + 32 + 16 + 32 + 16 + 32 + 1;

    /// The fixed layout hashed and authenticated: version, group, sender, stamp
    /// (big-endian), position sequence number (big-endian) and operation id, sender key id,
    /// view digest, nonce, key commitment, signed (0 or 1).
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let mut at = 0;
        for part in [
            &[self.version][..],
            &self.group.0,
            &self.sender.0,
            &self.stamp.as_raw().to_be_bytes(),
            &self.position.seq.to_be_bytes(),
            &self.position.op.0,
            &self.sender_key.0,
            &self.view.0,
            &self.nonce,
            &self.commitment,
            &[u8::from(self.signed)],
        ] {
            out[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        out
    }

    /// The hash every slot and the signature bind: BLAKE3 (derive-key context
    /// `"splitsafe v1 envelope hash"`) of the header bytes then the ciphertext.
    pub fn bind(&self, ciphertext: &[u8]) -> [u8; 32] {
        blake3::Hasher::new_derive_key("splitsafe v1 envelope hash")
            .update(&self.to_bytes())
            .update(ciphertext)
            .finalize()
            .into()
    }
}

/// A sealed message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The header.
    pub header: Header,
    /// `SLOT_LEN` bytes per recipient, sorted by hint.
    #[serde(with = "serde_bytes")]
    pub slots: Vec<u8>,
    /// The payload encrypted under the content key, with its 16-byte tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// The sender's Ed25519 signature over `"splitsafe/v1/envelope\0" || bind`, if signed.
    pub signature: Option<SignatureBytes>,
}

/// Size limits an envelope decoder enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most recipient slots.
    pub max_recipients: usize,
    /// Largest payload, in bytes (before encryption).
    pub max_payload: usize,
}

impl Default for Limits {
    /// 10,000 recipients and 16 MiB of payload.
    fn default() -> Self {
        Self {
            max_recipients: 10_000,
            max_payload: 16 << 20,
        }
    }
}

impl Limits {
    /// The largest encoding these limits allow.
    pub fn max_encoded_len(&self) -> usize {
        // Header and CBOR framing take well under 512 bytes.
        512 + self.max_recipients * SLOT_LEN + self.max_payload + 16 + 64
    }
}

/// What a sender signs: `"splitsafe/v1/envelope\0" || bind`.
pub(crate) fn signature_message(bound: &[u8; 32]) -> Vec<u8> {
    let mut message = b"splitsafe/v1/envelope\0".to_vec();
    message.extend_from_slice(bound);
    message
}

impl Envelope {
    /// Number of recipient slots.
    pub fn recipients(&self) -> usize {
        self.slots.len() / SLOT_LEN
    }

    /// The CBOR encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// A stable identifier of the message: BLAKE3 (derive-key context
    /// `"splitsafe v3 envelope id"`) of the header's bytes and the ciphertext, which every
    /// reader authenticates. The slots and the signature are left out: a reader authenticates
    /// only its own slot, so a copy with a junk slot added, or another reader's slot altered,
    /// still opens, and must count as the same message. Two envelopes with one id carry one
    /// message to one view (the header names the content key's commitment), so applications
    /// refuse replays by remembering ids.
    pub fn id(&self) -> EnvelopeId {
        let mut hasher = blake3::Hasher::new_derive_key("splitsafe v3 envelope id");
        hasher.update(&self.header.to_bytes());
        hasher.update(&self.ciphertext);
        EnvelopeId(*hasher.finalize().as_bytes())
    }

    /// An identifier of these exact bytes (BLAKE3, derive-key context
    /// `"splitsafe v2 envelope id"`, of the CBOR: its one accepted encoding): copies of one message that
    /// differ in their slots or signature differ here, so a waiting copy never stands in
    /// for another.
    pub fn copy_id(&self) -> EnvelopeId {
        EnvelopeId(blake3::derive_key(
            "splitsafe v2 envelope id",
            &self.to_cbor(),
        ))
    }

    /// Decodes an envelope from untrusted bytes, strictly and within `limits`.
    ///
    /// # Errors
    ///
    /// [`OpenError::Malformed`] for anything but one well-formed envelope within the limits;
    /// [`OpenError::UnsupportedVersion`] for another format version.
    pub fn from_cbor(bytes: &[u8], limits: Limits) -> Result<Self, OpenError> {
        let envelope: Self = codec::decode(bytes, limits.max_encoded_len())?;
        envelope.validate(limits)?;
        Ok(envelope)
    }

    /// The structural rules every envelope must meet before any key is used: the version,
    /// whole slots in strictly ascending order (as sealing writes them, so that the reader's
    /// binary search finds its slot), the limits, a signature exactly when the header says
    /// so, and a well-formed position.
    ///
    /// # Errors
    ///
    /// [`OpenError::UnsupportedVersion`] or [`OpenError::Malformed`] naming the broken rule.
    pub fn validate(&self, limits: Limits) -> Result<(), OpenError> {
        self.check_shape(limits)?;
        self.check_slot_order()
    }

    /// The slots are in strictly ascending byte order. Linear in the number of slots, so
    /// `open` runs it only when the reader's slot is not found, to say why.
    pub(crate) fn check_slot_order(&self) -> Result<(), OpenError> {
        let mut slots = self.slots.chunks_exact(SLOT_LEN);
        let Some(first) = slots.next() else {
            return Ok(());
        };
        match slots.try_fold(first, |previous, slot| (previous < slot).then_some(slot)) {
            Some(_) => Ok(()),
            None => invalid("slots are not in strictly ascending order"),
        }
    }

    /// Every rule of [`validate`](Self::validate) that costs no more than a few comparisons.
    pub(crate) fn check_shape(&self, limits: Limits) -> Result<(), OpenError> {
        if self.header.version != Header::VERSION {
            return Err(OpenError::UnsupportedVersion(self.header.version));
        }
        if !self.slots.len().is_multiple_of(SLOT_LEN) {
            return invalid("slots are not a whole number of 56-byte slots");
        }
        if self.recipients() > limits.max_recipients {
            return invalid("more recipient slots than the limit");
        }
        if self.ciphertext.len() < 16 || self.ciphertext.len() - 16 > limits.max_payload {
            return invalid("ciphertext shorter than its tag or over the payload limit");
        }
        if self.signature.is_some() != self.header.signed {
            return invalid("signature presence disagrees with the header");
        }
        if !self.header.position.is_well_formed() {
            return invalid(
                "the position names an operation at sequence number 0, or none above it",
            );
        }
        Ok(())
    }
}
