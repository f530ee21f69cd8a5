//! What waits in the pending queue: envelopes and sender-key messages that cannot be opened
//! yet (their sender's operations, their chain, or local time has not come).

use crate::clock::Timestamp;
use crate::codec::DecodeError;
use crate::crypto::{ChainMessage, Envelope, EnvelopeId, Limits};
use crate::group::GroupId;
use crate::keys::MemberId;

/// A message in the pending queue, with when it arrived (it expires
/// [`DeviceConfig::max_pending_age_ms`](super::DeviceConfig::max_pending_age_ms) later) and
/// its stored size (what the byte budget counts).
#[derive(Clone, Debug)]
pub(super) struct Queued {
    pub(super) waiting: Waiting,
    /// Its id, computed once (it hashes the whole ciphertext).
    pub(super) id: EnvelopeId,
    pub(super) arrived_ms: u64,
    pub(super) len: usize,
}

/// A message waiting to be opened.
#[derive(Clone, Debug)]
pub(super) enum Waiting {
    Envelope(Envelope),
    Chain(ChainMessage),
}

impl Waiting {
    pub(super) fn id(&self) -> EnvelopeId {
        match self {
            Self::Envelope(e) => e.id(),
            Self::Chain(m) => m.id(),
        }
    }

    /// The id of these exact bytes: the pending queue's key, so that copies of one message
    /// that differ where readers do not look (another reader's slot, a forged signature) wait
    /// side by side, and the genuine one is never refused for a forgery that came first.
    pub(super) fn copy_id(&self) -> EnvelopeId {
        match self {
            Self::Envelope(e) => e.copy_id(),
            Self::Chain(m) => m.copy_id(),
        }
    }

    pub(super) fn group(&self) -> GroupId {
        match self {
            Self::Envelope(e) => e.header.group,
            Self::Chain(m) => m.header.group,
        }
    }

    /// The claimed sender (unauthenticated until it opens).
    pub(super) fn sender(&self) -> MemberId {
        match self {
            Self::Envelope(e) => e.header.sender,
            Self::Chain(m) => m.header.sender,
        }
    }

    pub(super) fn stamp(&self) -> Timestamp {
        match self {
            Self::Envelope(e) => e.header.stamp,
            Self::Chain(m) => m.header.stamp,
        }
    }

    /// The stored form: an envelope's or a chain message's own CBOR (the two are maps with
    /// different keys, so the bytes say which).
    pub(super) fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Envelope(e) => e.to_cbor(),
            Self::Chain(m) => m.to_cbor(),
        }
    }

    pub(super) fn from_bytes(bytes: &[u8], limits: Limits) -> Result<Self, DecodeError> {
        match Envelope::from_cbor(bytes, limits) {
            Ok(envelope) => Ok(Self::Envelope(envelope)),
            Err(_) => ChainMessage::from_cbor(bytes, limits.max_payload).map(Self::Chain),
        }
    }
}
