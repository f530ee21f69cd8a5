//! Sender chains: the primitive of constant-size messages for large groups (the group-level
//! bookkeeping is [`SenderKeys`](super::SenderKeys)).
//!
//! A sender keeps one chain per group: a chain key that steps by a one-way function with
//! every message, and a signing key of the chain's own whose public half travels with it.
//! Message `i` is encrypted once, under a content key derived from chain key `i` (with the
//! same key schedule and commitment as envelopes), and signed with the chain's signing key,
//! so that a receiver, who holds the chain key, still cannot forge the sender's messages.
//!
//! ```text
//! message key i   = BLAKE3-keyed(chain key i, "splitsafe v1 chain message key")
//! chain key i + 1 = BLAKE3-keyed(chain key i, "splitsafe v1 chain step")
//! ```
//!
//! Used keys are erased: whoever takes a chain at index `i` (a member added later, or a thief
//! of the state) cannot derive the keys of messages before `i`. A receiver accepts indices out
//! of order within a skip window, keeping the skipped message keys until their grace period
//! ends; an index it has used or erased is refused.

mod receiving;
mod sending;

pub use receiving::ReceivingChain;
pub use sending::SendingChain;

use super::envelope::EnvelopeId;
use crate::clock::Timestamp;
use crate::codec::{self, DecodeError};
use crate::group::{GroupId, OpId, Watermark};
use crate::keys::backup::BackupError;
use crate::keys::{byte_array, MemberId, SignatureBytes};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

byte_array!(
    /// Identifies one sender chain (random).
    ChainId,
    16
);

/// Why a chain message could not be sealed or opened. A refused message changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// The message belongs to another group, sender or chain than this one.
    WrongChain,
    /// The signature is not the chain's.
    BadSignature,
    /// The index is further ahead of the next expected one than the skip window allows.
    TooFarAhead {
        /// The message's index.
        index: u32,
        /// The next index this chain expects.
        next: u32,
        /// The skip window.
        window: u32,
    },
    /// The index was used, or its key erased (a replay, a message older than this receiver's
    /// copy of the chain, or one skipped past its grace period).
    AlreadyUsed(u32),
    /// The message key is not the one the header commits to.
    CommitmentMismatch,
    /// The payload fails authentication.
    Tampered,
    /// The chain has sent 2^32 - 1 messages: start a new one.
    Exhausted,
    /// The reader holds no chain of this id from this sender: its handoff has not arrived
    /// (the message may open once it does).
    UnknownChain,
    /// The reader still holds no such chain a grace period after the message's stamp: its
    /// handoff is taken to be lost, and the message with it.
    NeverArrived,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongChain => f.write_str("the message is not of this chain"),
            Self::BadSignature => f.write_str("the chain signature does not verify"),
            Self::TooFarAhead {
                index,
                next,
                window,
            } => write!(
                f,
                "index {index} is more than {window} past the next expected index {next}"
            ),
            Self::AlreadyUsed(index) => write!(f, "index {index} was used or its key erased"),
            Self::CommitmentMismatch => {
                f.write_str("the message key is not the one the header commits to")
            }
            Self::Tampered => f.write_str("the payload fails authentication"),
            Self::Exhausted => f.write_str("the chain is exhausted: start a new one"),
            Self::UnknownChain => f.write_str("no such chain of this sender is held here"),
            Self::NeverArrived => f.write_str("the chain never arrived: given up"),
        }
    }
}

impl std::error::Error for ChainError {}

/// Steps `key`: the message key of its index, and the next chain key.
pub(super) fn step(key: &[u8; 32]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let message =
        Zeroizing::new(*blake3::keyed_hash(key, b"splitsafe v1 chain message key").as_bytes());
    let next = Zeroizing::new(*blake3::keyed_hash(key, b"splitsafe v1 chain step").as_bytes());
    (message, next)
}

/// A chain at some index, as its sender hands it to a receiver (inside a pairwise envelope):
/// whoever holds it reads the chain's messages from `index` on. The key is zeroized on drop
/// and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ChainHandoff {
    /// The group.
    pub group: GroupId,
    /// The sender.
    pub sender: MemberId,
    /// The chain.
    pub chain: ChainId,
    /// The index of `key`.
    pub index: u32,
    /// The chain key at `index`.
    pub key: [u8; 32],
    /// The chain's signature key (an Ed25519 public key).
    pub verifying_key: MemberId,
}

impl Drop for ChainHandoff {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for ChainHandoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainHandoff")
            .field("group", &self.group)
            .field("sender", &self.sender)
            .field("chain", &self.chain)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl ChainHandoff {
    /// Length of [`to_bytes`](Self::to_bytes).
    pub const LEN: usize = 32 + 32 + 16 + 4 + 32 + 32;

    /// The fixed layout: group, sender, chain, index (big-endian), chain key, verifying key;
    /// in a buffer zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(Self::LEN));
        self.put(&mut out);
        out
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.group.0);
        out.extend_from_slice(&self.sender.0);
        out.extend_from_slice(&self.chain.0);
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.verifying_key.0);
    }

    /// Reads the layout of [`to_bytes`](Self::to_bytes) from untrusted bytes.
    ///
    /// # Errors
    ///
    /// [`BackupError::WrongLength`] unless exactly [`LEN`](Self::LEN) bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BackupError> {
        if bytes.len() != Self::LEN {
            return Err(BackupError::WrongLength);
        }
        let mut reader = Cursor(bytes);
        let handoff = Self {
            group: GroupId(reader.array()),
            sender: MemberId(reader.array()),
            chain: ChainId(reader.array()),
            index: u32::from_be_bytes(reader.array()),
            key: reader.array(),
            verifying_key: MemberId(reader.array()),
        };
        Ok(handoff)
    }
}

/// Reads fixed-size fields front to back from bytes whose length was checked.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().expect("length checked by the caller")
    }
}

/// What a reader sees of a chain message without opening it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHeader {
    /// The group.
    pub group: GroupId,
    /// The sender.
    pub sender: MemberId,
    /// The chain.
    pub chain: ChainId,
    /// The message's index in the chain.
    pub index: u32,
    /// The sender's stamp.
    pub stamp: Timestamp,
    /// The sender's causal position, as in envelopes.
    pub position: Watermark,
    /// Commits to the message's content key, as in envelopes.
    pub commitment: [u8; 32],
}

impl ChainHeader {
    /// Version byte of the layout.
    pub const VERSION: u8 = 2;

    /// Length of [`to_bytes`](Self::to_bytes).
    pub const LEN: usize = 1 + 32 + 32 + 16 + 4 + 8 + 8 + 32 + 32;

    /// The payload's AEAD nonce: the stamp (big-endian u64), then the index (big-endian
    /// u32). A message key serves one index; should a sender ever seal a second message at an
    /// index (a store restored from an older copy resumes its chain there), the two differ in
    /// their stamps, so the key never meets the same nonce twice.
    pub fn nonce(&self) -> chacha20poly1305::Nonce {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&self.stamp.as_raw().to_be_bytes());
        nonce[8..].copy_from_slice(&self.index.to_be_bytes());
        nonce.into()
    }

    /// The fixed layout authenticated by the payload AEAD and the signature, and sent as
    /// is: version, group, sender, chain, index (big-endian u32), stamp, position seq and
    /// id, commitment.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.push(Self::VERSION);
        out.extend_from_slice(&self.group.0);
        out.extend_from_slice(&self.sender.0);
        out.extend_from_slice(&self.chain.0);
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.stamp.as_raw().to_be_bytes());
        out.extend_from_slice(&self.position.seq.to_be_bytes());
        out.extend_from_slice(&self.position.op.0);
        out.extend_from_slice(&self.commitment);
        out
    }

    /// Reads the layout of [`to_bytes`](Self::to_bytes) from untrusted bytes.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Invalid`] for another length or version, or a malformed position.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let invalid = |reason: &str| DecodeError::Invalid {
            reason: reason.to_string(),
        };
        if bytes.len() != Self::LEN {
            return Err(invalid("a chain header is 165 bytes"));
        }
        let mut reader = Cursor(bytes);
        if reader.array::<1>() != [Self::VERSION] {
            return Err(invalid("unsupported chain header version"));
        }
        let header = Self {
            group: GroupId(reader.array()),
            sender: MemberId(reader.array()),
            chain: ChainId(reader.array()),
            index: u32::from_be_bytes(reader.array()),
            stamp: Timestamp::from_raw(u64::from_be_bytes(reader.array())),
            position: Watermark {
                seq: u64::from_be_bytes(reader.array()),
                op: OpId(reader.array()),
            },
            commitment: reader.array(),
        };
        if !header.position.is_well_formed() {
            return Err(invalid(
                "the position names an operation at sequence number 0, or none above it",
            ));
        }
        Ok(header)
    }
}

/// How a chain message travels: the header's fixed layout, the ciphertext, the signature.
#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(with = "serde_bytes")]
    header: Vec<u8>,
    #[serde(with = "serde_bytes")]
    ciphertext: Vec<u8>,
    signature: SignatureBytes,
}

/// One message of a sender chain: encrypted once for the whole group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainMessage {
    /// The header.
    pub header: ChainHeader,
    /// The payload and its 16-byte tag.
    pub ciphertext: Vec<u8>,
    /// The chain's signature over `"splitsafe/v1/chain\0" || BLAKE3(header || ciphertext)`.
    pub signature: SignatureBytes,
}

impl ChainMessage {
    /// Bytes on the wire, counted as the fixed header, the ciphertext and the signature.
    pub fn len(&self) -> usize {
        self.header.to_bytes().len() + self.ciphertext.len() + 64
    }

    /// Never: a message has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// A stable identifier: BLAKE3 (derive-key context `"splitsafe v1 chain message id"`)
    /// of the header's layout and the ciphertext, which the signature covers.
    pub fn id(&self) -> EnvelopeId {
        let hash = blake3::Hasher::new_derive_key("splitsafe v1 chain message id")
            .update(&self.header.to_bytes())
            .update(&self.ciphertext)
            .finalize();
        EnvelopeId(hash.into())
    }

    /// An identifier of these exact bytes, signature included (BLAKE3, derive-key context
    /// `"splitsafe v1 chain message copy"`, of the CBOR): a forged copy with another
    /// signature has the message's [`id`](Self::id) but not its copy id, so a waiting forgery
    /// never stands in for the genuine message.
    pub fn copy_id(&self) -> EnvelopeId {
        EnvelopeId(blake3::derive_key(
            "splitsafe v1 chain message copy",
            &self.to_cbor(),
        ))
    }

    /// The CBOR encoding: a map of `header` (its fixed layout, as bytes), `ciphertext` and
    /// `signature`.
    pub fn to_cbor(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a chain message from untrusted bytes, with a payload of at most
    /// `max_payload` bytes.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for anything but one well-formed chain message.
    pub fn from_cbor(bytes: &[u8], max_payload: usize) -> Result<Self, DecodeError> {
        let message: Self = codec::decode(bytes, max_payload.saturating_add(512))?;
        message.check_len(max_payload)?;
        Ok(message)
    }

    /// The payload is within `max_payload` bytes.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Invalid`] if it is not.
    pub fn check_len(&self, max_payload: usize) -> Result<(), DecodeError> {
        if self.ciphertext.len() - 16 > max_payload {
            return Err(DecodeError::Invalid {
                reason: "the payload is over the limit".to_string(),
            });
        }
        Ok(())
    }
}

impl Serialize for ChainMessage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire {
            header: self.header.to_bytes(),
            ciphertext: self.ciphertext.clone(),
            signature: self.signature,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ChainMessage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        if wire.ciphertext.len() < 16 {
            return Err(serde::de::Error::custom("ciphertext shorter than its tag"));
        }
        let header = ChainHeader::from_bytes(&wire.header).map_err(serde::de::Error::custom)?;
        Ok(Self {
            header,
            ciphertext: wire.ciphertext,
            signature: wire.signature,
        })
    }
}

pub(super) fn signed_bytes(header: &ChainHeader, ciphertext: &[u8]) -> Vec<u8> {
    let hash = blake3::Hasher::new_derive_key("splitsafe v1 chain message hash")
        .update(&header.to_bytes())
        .update(ciphertext)
        .finalize();
    let mut bytes = b"splitsafe/v1/chain\0".to_vec();
    bytes.extend_from_slice(hash.as_bytes());
    bytes
}
