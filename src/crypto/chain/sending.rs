//! A sender's own chain. Its sender stores it at an index it has reserved and not used
//! (see [`SenderKeys`](crate::crypto::SenderKeys)), so that a store rolled back by a power
//! loss resumes it past every message key it used.

use super::{signed_bytes, step, ChainError, ChainHandoff, ChainHeader, ChainId, ChainMessage};
use crate::clock::Timestamp;
use crate::crypto::content::ContentKey;
use crate::group::{GroupId, Watermark};
use crate::keys::{Identity, MemberId};
use rand_core::CryptoRng;
use std::fmt;
use zeroize::Zeroizing;

/// A sender's own chain in one group. Its keys are zeroized on drop and never printed.
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

    /// The chain's id.
    pub fn id(&self) -> ChainId {
        self.chain
    }

    /// The chain's sender.
    pub fn sender(&self) -> MemberId {
        self.sender
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

    /// The chain at `index`, at or after its current one (the key stepped forward), for a
    /// receiver or for storage: whoever holds it reads from that index on, never before.
    pub fn handoff_at(&self, index: u32) -> ChainHandoff {
        let mut key = Zeroizing::new(*self.key);
        for _ in self.index..index {
            key = step(&key).1;
        }
        ChainHandoff {
            index: index.max(self.index),
            key: *key,
            ..self.handoff()
        }
    }

    /// The chain's signing key.
    pub fn signing(&self) -> &Identity {
        &self.signing
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
        let ciphertext = content.seal_payload(&header.nonce(), &header.to_bytes(), plaintext);
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
