//! Errors of sealing and opening.

use super::chain::ChainError;
use super::keyring::KeyId;
use crate::clock::ClockError;
use crate::codec::DecodeError;
use crate::group::{GroupId, PositionError, Standing};
use crate::keys::MemberId;
use std::fmt;

/// Why a message could not be sealed. Nothing is sealed and no state changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealError {
    /// The sender is not a member of the view it would seal to.
    NotAMember(MemberId),
    /// The payload exceeds the envelope size limit.
    TooLarge {
        /// Payload length in bytes.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
    /// The view has more recipients than an envelope may carry.
    TooManyRecipients {
        /// Recipients in the view.
        count: usize,
        /// Largest allowed.
        max: usize,
    },
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAMember(id) => write!(f, "{id} is not a member of the view it seals to"),
            Self::TooLarge { len, max } => write!(f, "payload of {len} bytes exceeds {max}"),
            Self::TooManyRecipients { count, max } => {
                write!(f, "{count} recipients exceed the limit of {max}")
            }
        }
    }
}

impl std::error::Error for SealError {}

/// Why an envelope could not be opened. A failed open changes no state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The bytes are not a well-formed envelope within the limits.
    Malformed(DecodeError),
    /// The envelope's format version is not one this code reads.
    UnsupportedVersion(u8),
    /// The envelope belongs to another group.
    WrongGroup {
        /// The reader's group.
        expected: GroupId,
        /// The envelope's.
        found: GroupId,
    },
    /// The sender's encryption key is not known here: sync membership, then retry.
    UnknownSenderKey {
        /// The claimed sender.
        sender: MemberId,
        /// The key the envelope was sealed with.
        key: KeyId,
    },
    /// No recipient slot is for any of the reader's keys.
    NotAddressedToMe,
    /// The slot or the payload fails authentication: header, slots or ciphertext altered.
    Tampered,
    /// The content key in the reader's slot is not the one the header commits to: the
    /// sender wrapped different keys for different readers, to show them different
    /// plaintexts.
    CommitmentMismatch,
    /// The envelope claims a sender signature that does not verify.
    BadSignature,
    /// The header's stamp is further ahead of local time than the drift bound allows.
    StampTooFarAhead(ClockError),
    /// The sender's position cannot be judged: the sender was never a member, or the
    /// position names an operation not logged here (sync, then retry) or not on the sender's
    /// chain.
    Position(PositionError),
    /// The envelope authenticates, but the reader's [`SenderPolicy`] refuses its sender's
    /// standing.
    ///
    /// [`SenderPolicy`]: super::SenderPolicy
    SenderRefused {
        /// The sender.
        sender: MemberId,
        /// Its standing in the reader's replica.
        standing: Standing,
    },
    /// A sender-key message that its chain refuses, or whose chain is not held here.
    Chain(ChainError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed envelope: {e}"),
            Self::UnsupportedVersion(v) => write!(f, "envelope version {v} is not supported"),
            Self::WrongGroup { expected, found } => {
                write!(f, "envelope for group {found}, reader is in {expected}")
            }
            Self::UnknownSenderKey { sender, key } => write!(
                f,
                "sender {sender:?} sealed with key {key:?}, which this device has not seen; sync"
            ),
            Self::NotAddressedToMe => f.write_str("the envelope has no slot for this reader"),
            Self::Tampered => f.write_str("envelope failed authentication: it was altered"),
            Self::CommitmentMismatch => f.write_str(
                "the content key in this reader's slot is not the one the header commits to",
            ),
            Self::BadSignature => f.write_str("the sender's signature does not verify"),
            Self::StampTooFarAhead(e) => write!(f, "envelope stamp refused: {e}"),
            Self::Position(e) => write!(f, "sender's position refused: {e}"),
            Self::SenderRefused { sender, standing } => {
                write!(
                    f,
                    "envelope from {sender:?} refused: its standing is {standing:?}"
                )
            }
            Self::Chain(e) => write!(f, "chain message refused: {e}"),
        }
    }
}

impl std::error::Error for OpenError {}

impl From<PositionError> for OpenError {
    fn from(e: PositionError) -> Self {
        Self::Position(e)
    }
}

impl From<DecodeError> for OpenError {
    fn from(e: DecodeError) -> Self {
        Self::Malformed(e)
    }
}
