//! A receiver's copy of another member's chain.

use super::{signed_bytes, step, ChainError, ChainHandoff, ChainId, ChainMessage};
use crate::crypto::content::ContentKey;
use crate::group::GroupId;
use crate::keys::backup::{BackupError, FrameReader, FrameWriter};
use crate::keys::{MemberId, SignedMessage};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

const MAGIC: &[u8] = b"splitsafe receiving chain\0";

type SkippedKey = Box<Zeroizing<[u8; 32]>>;
/// Bytes per skipped key in an export: index, key, when skipped.
const SKIPPED_LEN: usize = 4 + 32 + 8;

/// A receiver's copy of another member's chain. Its keys are zeroized on drop and never
/// printed.
pub struct ReceivingChain {
    group: GroupId,
    sender: MemberId,
    chain: ChainId,
    verifying_key: MemberId,
    /// The next index not yet derived, and its chain key.
    next: u32,
    key: Zeroizing<[u8; 32]>,
    /// Message keys of skipped indices, with when they were skipped (local ms). Boxed, so
    /// that the map moving its entries leaves no copy of a key behind.
    skipped: BTreeMap<u32, (SkippedKey, u64)>,
    window: u32,
    /// The lowest index any handoff taken gave: indices below it were never open to this
    /// copy (never used, never erased), so an earlier handoff of the chain may add them.
    first: u32,
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
            first: handoff.index,
        }
    }

    /// Takes the chain again from `handoff`, if it starts below every index this copy was
    /// ever given (a sender hands its chain on at its current index to a member whose key
    /// changed; the first handoff, at the chain's start, may arrive later, with the messages
    /// sealed before): the message keys of the indices below are added as skipped, never a
    /// key of an index this copy was given before (so no used key comes back). Returns
    /// whether it added any; a handoff of another chain, another signing key, not below, or
    /// more than the skip window below, adds nothing.
    pub fn extend_back(&mut self, handoff: &ChainHandoff, now_ms: u64) -> bool {
        let same = (
            handoff.group,
            handoff.sender,
            handoff.chain,
            handoff.verifying_key,
        ) == (self.group, self.sender, self.chain, self.verifying_key);
        if !same || handoff.index >= self.first || self.first - handoff.index > self.window {
            return false;
        }
        let mut key = Zeroizing::new(handoff.key);
        for index in handoff.index..self.first {
            let (message, next) = step(&key);
            self.skipped.insert(index, (Box::new(message), now_ms));
            key = next;
        }
        while self.skipped.len() > self.window as usize {
            self.skipped.pop_first();
        }
        self.first = handoff.index;
        true
    }

    /// The chain's id.
    pub fn id(&self) -> ChainId {
        self.chain
    }

    /// The chain's sender.
    pub fn sender(&self) -> MemberId {
        self.sender
    }

    /// The lowest index any handoff taken gave (see [`extend_back`](Self::extend_back)).
    pub fn first(&self) -> u32 {
        self.first
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
        self.verify(message)?;
        self.open_verified(message, now_ms)
    }

    /// Checks that `message` is of this chain and carries the chain's signature: after
    /// this, its header is the sender's (the rest is [`open`](Self::open)'s).
    ///
    /// # Errors
    ///
    /// [`ChainError::WrongChain`], [`ChainError::BadSignature`].
    pub fn verify(&self, message: &ChainMessage) -> Result<(), ChainError> {
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
        .map_err(|_| ChainError::BadSignature)
    }

    /// [`open`](Self::open) for a message [`verify`](Self::verify) accepted.
    pub(crate) fn open_verified(
        &mut self,
        message: &ChainMessage,
        now_ms: u64,
    ) -> Result<Vec<u8>, ChainError> {
        let header = &message.header;
        let index = header.index;
        let after = index.checked_add(1).ok_or(ChainError::Exhausted)?;
        // Derive without touching the state: it changes only if the message opens.
        let mut staged_skips: Vec<(u32, SkippedKey)> = Vec::new();
        let (message_key, next_key) = if index < self.next {
            let (key, _) = self
                .skipped
                .get(&index)
                .ok_or(ChainError::AlreadyUsed(index))?;
            (Zeroizing::new(***key), None)
        } else {
            if index - self.next > self.window {
                return Err(ChainError::TooFarAhead {
                    index,
                    next: self.next,
                    window: self.window,
                });
            }
            // Sized once: a growing vector would leave copies of keys in the blocks it frees.
            staged_skips.reserve_exact((index - self.next) as usize);
            let mut key = Zeroizing::new(*self.key);
            for skipped in self.next..index {
                let (message, next) = step(&key);
                staged_skips.push((skipped, Box::new(message)));
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
            .open_payload(&header.nonce(), &header.to_bytes(), &message.ciphertext)
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

    /// When the oldest skipped key was skipped, if any is held.
    pub fn oldest_skip(&self) -> Option<u64> {
        self.skipped.values().map(|(_, at)| *at).min()
    }

    /// The chain as held (next key, skipped keys, window), in a versioned, checksummed
    /// frame zeroized on drop: for the receiver's own storage.
    pub fn export(&self) -> Zeroizing<Vec<u8>> {
        let len = ChainHandoff::LEN + 4 + 4 + self.skipped.len() * SKIPPED_LEN + 4;
        let mut out = FrameWriter::new(MAGIC, len);
        let at_next = ChainHandoff {
            group: self.group,
            sender: self.sender,
            chain: self.chain,
            index: self.next,
            key: *self.key,
            verifying_key: self.verifying_key,
        };
        out.put(&at_next.to_bytes());
        out.put(&self.window.to_be_bytes());
        out.put(&(self.skipped.len() as u32).to_be_bytes());
        for (index, (key, at)) in &self.skipped {
            out.put(&index.to_be_bytes());
            out.put(key.as_slice());
            out.put(&at.to_be_bytes());
        }
        out.put(&self.first.to_be_bytes());
        out.finish()
    }

    /// Reads an [`export`](Self::export).
    ///
    /// # Errors
    ///
    /// [`BackupError`] saying what was wrong.
    pub fn import(bytes: &[u8]) -> Result<Self, BackupError> {
        let mut body = FrameReader::open(MAGIC, bytes)?;
        let handoff = ChainHandoff::from_bytes(body.take(ChainHandoff::LEN)?)?;
        let u32_of = |bytes: &[u8]| u32::from_be_bytes(bytes.try_into().expect("4 bytes"));
        let window = u32_of(body.take(4)?);
        let count = u32_of(body.take(4)?);
        let mut chain = Self::new(&handoff, window);
        for _ in 0..count {
            let index = u32_of(body.take(4)?);
            let key = Box::new(body.secret()?);
            let at = body.u64()?;
            if index >= chain.next || chain.skipped.insert(index, (key, at)).is_some() {
                return Err(BackupError::Invalid("a skipped index out of place"));
            }
        }
        // Exports before `first` was kept end here: 0 then, so nothing is ever added back.
        chain.first = match body.take(4) {
            Ok(bytes) => u32_of(bytes).min(chain.next),
            Err(_) => 0,
        };
        body.end()?;
        Ok(chain)
    }
}
