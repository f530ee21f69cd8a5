//! Encryption that follows the membership view.
//!
//! A sender seals a message to every other member of its current [`View`](crate::group::View):
//! a fresh content key encrypts the payload once, and a copy of that key is wrapped for each
//! recipient under a pairwise key (X25519, then HKDF-SHA256). Removed members are not in the
//! view, so they get no copy. See `spec/encryption.md` for the key schedule, the envelope
//! layout, and what is and is not protected.

mod backup;
mod chain;
mod content;
mod envelope;
mod error;
mod keyring;
mod open;
mod pairwise;
mod seal;
mod sender_keys;

pub use chain::{
    ChainError, ChainHandoff, ChainHeader, ChainId, ChainMessage, ReceivingChain, SendingChain,
};
pub use envelope::{Envelope, EnvelopeId, Header, Limits, SLOT_LEN};
pub use error::{OpenError, SealError};
pub use keyring::{KeyId, Keyring, KeyringConfig};
pub use open::{judge, Opened, SenderPolicy};
pub use pairwise::PairwiseKey;
pub use seal::SealOptions;
pub use sender_keys::{ChainConfig, ChainSealed, Payload, SenderKeys, MAX_CHAINS_PER_SENDER};
