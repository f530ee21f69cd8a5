//! Sender chains: the primitive of constant-size messages for large groups (issue 12; not
//! yet wired into the device or the simulator).
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

use super::content::ContentKey;
use crate::clock::Timestamp;
use crate::group::{GroupId, Watermark};
use crate::keys::{byte_array, Identity, MemberId, SignatureBytes, SignedMessage};
use rand_core::CryptoRng;
use std::collections::BTreeMap;
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
        }
    }
}

impl std::error::Error for ChainError {}

/// Steps `key`: the message key of its index, and the next chain key.
fn step(key: &[u8; 32]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
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
    pub const VERSION: u8 = 1;

    /// The fixed layout authenticated by the payload AEAD and the signature: version, group,
    /// sender, chain, index (big-endian u32), stamp, position seq and id, commitment.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 32 + 32 + 16 + 4 + 8 + 8 + 32 + 32);
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
}

fn signed_bytes(header: &ChainHeader, ciphertext: &[u8]) -> Vec<u8> {
    let hash = blake3::Hasher::new_derive_key("splitsafe v1 chain message hash")
        .update(&header.to_bytes())
        .update(ciphertext)
        .finalize();
    let mut bytes = b"splitsafe/v1/chain\0".to_vec();
    bytes.extend_from_slice(hash.as_bytes());
    bytes
}

/// A sender's own chain in one group.
pub struct SendingChain {
    group: GroupId,
    sender: MemberId,
    chain: ChainId,
    index: u32,
    key: Zeroizing<[u8; 32]>,
    signing: Identity,
}

impl fmt::Debug for SendingChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendingChain")
            .field("group", &self.group)
            .field("chain", &self.chain)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl SendingChain {
    /// A fresh chain for `sender` in `group`, at index 0.
    pub fn new<R: CryptoRng + ?Sized>(group: GroupId, sender: MemberId, rng: &mut R) -> Self {
        let mut chain = ChainId([0; 16]);
        rng.fill_bytes(&mut chain.0);
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        Self {
            group,
            sender,
            chain,
            index: 0,
            key,
            signing: Identity::generate(rng),
        }
    }

    /// The chain a `handoff` describes, signing with `signing`: for a sender restoring its
    /// chain from storage. (Whoever holds only a handoff lacks the chain's signing key: a
    /// chain rebuilt with another key makes messages no receiver accepts.)
    pub fn restore(handoff: &ChainHandoff, signing: Identity) -> Self {
        Self {
            group: handoff.group,
            sender: handoff.sender,
            chain: handoff.chain,
            index: handoff.index,
            key: Zeroizing::new(handoff.key),
            signing,
        }
    }

    /// The index of the next message.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The chain at its current index, for a receiver: it reads from the next message on.
    pub fn handoff(&self) -> ChainHandoff {
        ChainHandoff {
            group: self.group,
            sender: self.sender,
            chain: self.chain,
            index: self.index,
            key: *self.key,
            verifying_key: self.signing.id(),
        }
    }

    /// Seals `plaintext` as the chain's next message, and steps the chain (the message key
    /// and the old chain key are erased).
    ///
    /// # Errors
    ///
    /// [`ChainError::Exhausted`] after 2^32 - 1 messages.
    pub fn seal(
        &mut self,
        stamp: Timestamp,
        position: Watermark,
        plaintext: &[u8],
    ) -> Result<ChainMessage, ChainError> {
        let next_index = self.index.checked_add(1).ok_or(ChainError::Exhausted)?;
        let (message_key, next) = step(&self.key);
        let content = ContentKey::from_bytes(message_key);
        let header = ChainHeader {
            group: self.group,
            sender: self.sender,
            chain: self.chain,
            index: self.index,
            stamp,
            position,
            commitment: content.commitment(),
        };
        let ciphertext = content.seal_payload(&header.to_bytes(), plaintext);
        let signature = self
            .signing
            .sign(signed_bytes(&header, &ciphertext))
            .signature;
        self.key = next;
        self.index = next_index;
        Ok(ChainMessage {
            header,
            ciphertext,
            signature,
        })
    }
}

/// A receiver's copy of another member's chain.
pub struct ReceivingChain {
    group: GroupId,
    sender: MemberId,
    chain: ChainId,
    verifying_key: MemberId,
    /// The next index not yet derived, and its chain key.
    next: u32,
    key: Zeroizing<[u8; 32]>,
    /// Message keys of skipped indices, with when they were skipped (local ms).
    skipped: BTreeMap<u32, (Zeroizing<[u8; 32]>, u64)>,
    window: u32,
}

impl fmt::Debug for ReceivingChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivingChain")
            .field("sender", &self.sender)
            .field("chain", &self.chain)
            .field("next", &self.next)
            .field("skipped", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

impl ReceivingChain {
    /// The default skip window, as Signal's.
    pub const DEFAULT_WINDOW: u32 = 2_000;

    /// A receiver's copy of the chain `handoff` describes, accepting indices up to `window`
    /// past the next expected one (and keeping at most `window` skipped keys).
    pub fn new(handoff: &ChainHandoff, window: u32) -> Self {
        Self {
            group: handoff.group,
            sender: handoff.sender,
            chain: handoff.chain,
            verifying_key: handoff.verifying_key,
            next: handoff.index,
            key: Zeroizing::new(handoff.key),
            skipped: BTreeMap::new(),
            window,
        }
    }

    /// Number of skipped message keys held.
    pub fn skipped(&self) -> usize {
        self.skipped.len()
    }

    /// Opens `message` at local time `now_ms`; its key, and the keys of indices skipped to
    /// reach it, are kept only as long as needed.
    ///
    /// # Errors
    ///
    /// [`ChainError`] saying what was wrong; a refused message changes nothing.
    pub fn open(&mut self, message: &ChainMessage, now_ms: u64) -> Result<Vec<u8>, ChainError> {
        let header = &message.header;
        if (header.group, header.sender, header.chain) != (self.group, self.sender, self.chain) {
            return Err(ChainError::WrongChain);
        }
        SignedMessage {
            signer: self.verifying_key,
            bytes: signed_bytes(header, &message.ciphertext),
            signature: message.signature,
        }
        .verify()
        .map_err(|_| ChainError::BadSignature)?;

        let index = header.index;
        let after = index.checked_add(1).ok_or(ChainError::Exhausted)?;
        // Derive without touching the state: it changes only if the message opens.
        let mut staged_skips = Vec::new();
        let (message_key, next_key) = if index < self.next {
            let (key, _) = self
                .skipped
                .get(&index)
                .ok_or(ChainError::AlreadyUsed(index))?;
            (Zeroizing::new(**key), None)
        } else {
            if index - self.next > self.window {
                return Err(ChainError::TooFarAhead {
                    index,
                    next: self.next,
                    window: self.window,
                });
            }
            let mut key = Zeroizing::new(*self.key);
            for skipped in self.next..index {
                let (message, next) = step(&key);
                staged_skips.push((skipped, message));
                key = next;
            }
            let (message, next) = step(&key);
            (message, Some(next))
        };
        let content = ContentKey::from_bytes(message_key);
        if !content.matches(&header.commitment) {
            return Err(ChainError::CommitmentMismatch);
        }
        let plaintext = content
            .open_payload(&header.to_bytes(), &message.ciphertext)
            .ok_or(ChainError::Tampered)?;

        match next_key {
            None => {
                self.skipped.remove(&index);
            }
            Some(next) => {
                for (skipped, key) in staged_skips {
                    self.skipped.insert(skipped, (key, now_ms));
                }
                // Over the window, the oldest skipped keys go first.
                while self.skipped.len() > self.window as usize {
                    self.skipped.pop_first();
                }
                self.key = next;
                self.next = after;
            }
        }
        Ok(plaintext)
    }

    /// Erases the keys of indices skipped at least `grace_ms` before `now_ms`; returns how
    /// many.
    pub fn erase_skipped(&mut self, now_ms: u64, grace_ms: u64) -> usize {
        let before = self.skipped.len();
        self.skipped
            .retain(|_, (_, at)| now_ms < at.saturating_add(grace_ms));
        before - self.skipped.len()
    }
}
