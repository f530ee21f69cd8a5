//! Errors of the membership layer.

use super::op::{GroupId, InvalidOp, Rank};
use crate::codec::DecodeError;
use crate::keys::{KeyError, MemberId};
use std::fmt;

/// Why an incoming operation was refused. A refused operation changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestError {
    /// The bytes are not one well-formed operation.
    Decode(DecodeError),
    /// The operation belongs to another group (for a `Create`: it is not this group's
    /// genesis).
    WrongGroup {
        /// This replica's group.
        expected: GroupId,
        /// The group the operation names (for a `Create`, its own id).
        found: GroupId,
    },
    /// The operation breaks a structural rule.
    Invalid(InvalidOp),
    /// A key or signature is refused: the author's or a carried bundle's signature does not
    /// verify, a signing key is not usable, or a carried encryption key has small order.
    Signature(KeyError),
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(e) => write!(f, "undecodable operation: {e}"),
            Self::WrongGroup { expected, found } => {
                write!(
                    f,
                    "operation for group {found:?}, this replica is {expected:?}"
                )
            }
            Self::Invalid(e) => write!(f, "invalid operation: {e}"),
            Self::Signature(e) => write!(f, "operation refused: {e}"),
        }
    }
}

impl std::error::Error for IngestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Decode(e) => Some(e),
            Self::Signature(e) => Some(e),
            Self::Invalid(_) | Self::WrongGroup { .. } => None,
        }
    }
}

impl From<DecodeError> for IngestError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

impl From<KeyError> for IngestError {
    fn from(e: KeyError) -> Self {
        Self::Signature(e)
    }
}

impl From<InvalidOp> for IngestError {
    fn from(e: InvalidOp) -> Self {
        Self::Invalid(e)
    }
}

/// Why a local membership action was refused. A refused action changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionError {
    /// Only members act on the group; this identity is not one in the current view.
    NotAMember(MemberId),
    /// The author's rank does not allow this action on that member (an admin acting on a
    /// member who has ever been an admin, a member adding or removing anyone, anyone but the
    /// owner changing a rank, the owner leaving): the operation would be void.
    NotPermitted {
        /// Who tried.
        author: MemberId,
        /// Its rank.
        rank: Rank,
        /// What it tried: "add", "remove", "change the rank of", "leave", "rotate".
        action: &'static str,
        /// Whom it acted on, if anyone.
        subject: Option<MemberId>,
    },
    /// The member acted on is not in the view here (removed already, left, or never
    /// added): there is nothing to remove.
    NotInView(MemberId),
    /// The bundle does not verify, or (for a rotation) is not the author's own.
    BadBundle(IngestError),
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAMember(id) => write!(
                f,
                "{id} is not a member of the group here, so it cannot act in it (if it was \
                 just added, receive the add first)"
            ),
            Self::NotPermitted {
                author,
                rank,
                action,
                subject,
            } => {
                write!(f, "{author}, of rank {rank:?}, may not {action}")?;
                if let Some(subject) = subject {
                    write!(f, " {subject}")?;
                }
                f.write_str(
                    ": members may only rotate their keys and leave; admins may also add, and \
                     remove members who were never admins; only the owner changes ranks, and \
                     the owner cannot leave",
                )
            }
            Self::NotInView(id) => write!(
                f,
                "{id} is not in the group here (removed already, left, or never added): \
                 nothing to remove"
            ),
            Self::BadBundle(e) => write!(f, "bundle refused: {e}"),
        }
    }
}

impl std::error::Error for ActionError {}
