//! A sender's standing, as the reader's replica judges it from the causal position a message
//! carries: the sender's own chain head when it sealed (a [`Watermark`] over its own chain).
//!
//! The sender's latest add, remove or leave decides. A removal records what the remover had
//! seen of the removed member's chain (its watermark). A message sealed at a position the
//! watermark covers may have been sealed before the removal, or after it by a sender that
//! made no operation since: nothing the reader holds tells the two apart, because a position
//! is the sender's claim. A position beyond the watermark is one where the sender's
//! operations are void: it is judged like them. The same ambiguity runs the other way: a
//! member re-added by someone who had seen its position is a member for messages at it. See
//! `spec/encryption.md`, "Who sent it".
//!
//! [`Watermark`]: super::Watermark

use super::op::OpId;
use crate::keys::MemberId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How the reader's replica judges the sender of a message sealed at a given position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Standing {
    /// In the reader's view (and the position is on its chain). A member re-added by someone
    /// who had seen the position may have sealed the message before the re-add: the reader
    /// cannot tell.
    Member,
    /// Not in the reader's view: the remove (or its own leave) `by` took it out, and that
    /// operation had seen the sender's chain up to the message's position. Sealed before the
    /// removal, or after it by a sender that made no operation since; the reader cannot tell
    /// which.
    Removed {
        /// The operation that took the sender out.
        by: OpId,
    },
    /// Not in the reader's view, and sealed at a position the removal `by` had not seen:
    /// after operations the remover had not seen (concurrently with the removal, or after
    /// it), at or after its own leave, or claiming to have sealed to the reader's view, from
    /// which the sender is absent. Its operations there are void, and so are its messages.
    Beyond {
        /// The remove or leave whose watermark the position is beyond.
        by: OpId,
    },
}

/// Why a position cannot be judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PositionError {
    /// No add of the sender ever took effect in the reader's replica.
    NeverAMember(MemberId),
    /// The position names an operation the reader has not logged (yet): sync, then judge
    /// again.
    Unknown {
        /// The sender.
        sender: MemberId,
        /// The sequence number the position names.
        seq: u64,
    },
    /// The position names an operation that is not on the sender's chain as the reader
    /// judges it: another member's, or one branch of an equivocation that no watermark pins.
    OffChain {
        /// The sender.
        sender: MemberId,
        /// The sequence number the position names.
        seq: u64,
    },
}

impl fmt::Display for PositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NeverAMember(sender) => write!(f, "{sender} has never been a member"),
            Self::Unknown { sender, seq } => write!(
                f,
                "the position names operation {seq} of {sender:?}, which this replica has not \
                 logged; sync"
            ),
            Self::OffChain { sender, seq } => write!(
                f,
                "the position names an operation {seq} that is not on {sender:?}'s chain"
            ),
        }
    }
}

impl std::error::Error for PositionError {}
