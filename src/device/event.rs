//! What a device reports: events from receiving and from time passing, and its errors.

use super::store::StoreError;
use crate::clock::Timestamp;
use crate::codec::DecodeError;
use crate::crypto::{EnvelopeId, OpenError, SealError};
use crate::group::{ActionError, Change, GroupId, IngestError, Standing, Watermark};
use crate::keys::MemberId;
use crate::wire::ArmorError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A welcome to a group this device is not in, as reported by [`Event::Invited`] and listed
/// by [`Device::invitations`](super::Device::invitations): who invited it, to which group, and who else is in it (as the
/// welcome's operations show, checked: every one is signed by its author). Nothing is joined
/// until [`Device::accept`](super::Device::accept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invited {
    /// The group.
    pub group: GroupId,
    /// The author of the add of this device that the welcome carries (the latest, by
    /// stamp, if several).
    pub from: MemberId,
    /// The group's founder (its owner, unless ranks changed since).
    pub founder: MemberId,
    /// The members of the group's view once the welcome's operations are applied, this
    /// device among them, in id order.
    pub members: Vec<MemberId>,
}

/// A message this device opened.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// The group.
    pub group: GroupId,
    /// The envelope's id (duplicates of it are refused from now on).
    pub id: EnvelopeId,
    /// The sender.
    pub sender: MemberId,
    /// The sender's standing in this device's view, from the envelope's position. It can
    /// change as operations arrive (a removal made during a split, say): the device then
    /// reports [`Event::Rejudged`].
    pub standing: Standing,
    /// The sender's position (its claim): its own chain head when it sealed.
    pub position: Watermark,
    /// The sender's stamp (its claim).
    pub stamp: Timestamp,
    /// Whether the sender sealed to the view this device has now.
    pub same_view: bool,
    /// Whether the envelope carried the sender's signature.
    pub signed: bool,
    /// The payload.
    #[serde(with = "serde_bytes")]
    pub plaintext: Vec<u8>,
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("group", &self.group)
            .field("id", &self.id)
            .field("sender", &self.sender)
            .field("standing", &self.standing)
            .field("position", &self.position)
            .field("stamp", &self.stamp)
            .field("same_view", &self.same_view)
            .field("signed", &self.signed)
            .field("plaintext_len", &self.plaintext.len())
            .finish()
    }
}

/// A delivered message judged again: see [`Event::Rejudged`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejudged {
    /// The group.
    pub group: GroupId,
    /// The message's id.
    pub id: EnvelopeId,
    /// Its sender.
    pub sender: MemberId,
    /// The standing it was delivered with (or last reported with).
    pub was: Standing,
    /// The standing it has now.
    pub standing: Standing,
}

/// What a device delivers to its application at least once: kept in the store until the
/// application acknowledges it by id, and handed back by
/// [`Device::unacknowledged`](super::Device::unacknowledged) after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// A message opened (with its standing as judged now).
    Message(Received),
    /// A message acknowledged earlier whose sender is judged differently now.
    Rejudged(Rejudged),
}

impl Delivery {
    /// The message's id, by which the application acknowledges it.
    pub fn id(&self) -> EnvelopeId {
        match self {
            Self::Message(received) => received.id,
            Self::Rejudged(rejudged) => rejudged.id,
        }
    }
}

/// Why one received item (a block, an operation, an envelope, a welcome, a sync message) was
/// refused. A refused item changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An armored block is damaged.
    Armor(ArmorError),
    /// The bytes are not a message.
    Decode(DecodeError),
    /// An operation is refused by its group's replica.
    Operation {
        /// The group.
        group: GroupId,
        /// Why.
        error: IngestError,
    },
    /// An envelope cannot be opened, now or later.
    Envelope {
        /// The group it names.
        group: GroupId,
        /// Its id.
        id: EnvelopeId,
        /// Why.
        error: OpenError,
    },
    /// Operations, a sync message or a bundle for a group this device is not in.
    UnknownGroup(GroupId),
    /// A welcome without the group's genesis, or whose genesis is refused.
    BadWelcome(GroupId),
    /// A welcome to a group that, once its operations are applied, does not hold this device.
    NotInvited(GroupId),
    /// An invitation was dropped: the oldest goes when a new one arrives over
    /// [`DeviceConfig::max_invitations`](super::DeviceConfig::max_invitations) or
    /// [`DeviceConfig::max_invitation_bytes`](super::DeviceConfig::max_invitation_bytes)
    /// (or the new one, alone larger than the byte bound).
    InvitationDropped(GroupId),
    /// A sync message whose signature is not its sender's, that names this device as its
    /// sender, or from a sender this device has not seen added while it already keeps the
    /// most such peers it allows.
    BadSync {
        /// The group.
        group: GroupId,
        /// The claimed sender.
        from: MemberId,
    },
    /// The pending queue has no room for the message: its sender's share or its room is full
    /// of messages whose senders authenticated (unauthenticated ones would have been
    /// [`Displaced`](Self::Displaced)), or it is larger than its room's byte budget.
    PendingFull(EnvelopeId),
    /// A waiting message whose claimed sender was never authenticated was dropped to make
    /// room for a newer one (its sender's share or its room of the pending queue was full):
    /// anyone can forge such messages, so they give way to one another, oldest first, and
    /// never to the refusal of a message whose sender authenticated.
    Displaced {
        /// The group it names.
        group: GroupId,
        /// Its id.
        id: EnvelopeId,
    },
    /// A waiting envelope waited `max_pending_age_ms` and was given up.
    Expired {
        /// The group it names.
        group: GroupId,
        /// Its id.
        id: EnvelopeId,
    },
}

/// What receiving or time passing produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A welcome to a group this device is not in was checked and is kept as an invitation
    /// until the application accepts ([`Device::accept`](super::Device::accept)) or declines
    /// it: nothing is joined until then.
    Invited(Invited),
    /// This device joined a group (an invitation accepted).
    Joined(GroupId),
    /// A group's view changed.
    Changed {
        /// The group.
        group: GroupId,
        /// What changed.
        change: Change,
    },
    /// A message was opened. It stays among [`Device::unacknowledged`](super::Device::unacknowledged)
    /// deliveries, across restarts, until the application acknowledges it
    /// ([`Device::ack`](super::Device::ack)).
    Message(Received),
    /// Operations that arrived changed how this device judges the sender of a message it
    /// delivered earlier (within [`DeviceConfig::rejudge_window`](super::DeviceConfig::rejudge_window)):
    /// the judgment is what it would have been had the message arrived after them. Kept
    /// until acknowledged, as messages are.
    Rejudged(Rejudged),
    /// A member handed this device its sender chain (sender-key mode): its messages on
    /// that chain can be opened here.
    Chain {
        /// The group.
        group: GroupId,
        /// The chain's sender.
        sender: MemberId,
        /// Whether the chain is new here (a chain handed over again is kept as it was).
        new: bool,
    },
    /// An envelope or sender-key message waits for what it needs (operations not yet
    /// received, its chain, a stamp ahead of local time, the group's welcome); it is opened
    /// when that arrives.
    Pending {
        /// The group it names.
        group: GroupId,
        /// Its id.
        id: EnvelopeId,
        /// Why it cannot be opened yet.
        reason: OpenError,
    },
    /// An envelope already opened or already pending.
    Duplicate(EnvelopeId),
    /// A bundle someone sent, for the application to add if it chooses.
    Bundle(crate::keys::KeyBundle),
    /// A peer's sync message was taken: its state is recorded (its operations are reported
    /// as they apply); `sync_message` for it may now have something to say.
    Synced {
        /// The group.
        group: GroupId,
        /// The peer.
        peer: MemberId,
    },
    /// A received item was refused.
    Refused(Refusal),
    /// This device made an operation of its own while receiving (it found itself in a view
    /// with a key it no longer uses, and published its current one): send `message` to the
    /// members it is addressed to, as any operations message (sync carries it too).
    Publish {
        /// The group.
        group: GroupId,
        /// The operations message, addressed to the group's members.
        message: Box<super::Outgoing>,
    },
}

/// Why a device call failed.
#[derive(Debug)]
pub enum DeviceError {
    /// The store failed; the device must be reopened from it (its memory may be ahead of
    /// what was committed).
    Store(StoreError),
    /// An earlier store failure left this device unusable: reopen it.
    Poisoned,
    /// The store holds no device (open) or already holds one (create).
    StoreState(&'static str),
    /// This device is not in that group.
    NoSuchGroup(GroupId),
    /// No invitation to that group waits (never received, or already accepted, declined or
    /// dropped).
    NoSuchInvitation(GroupId),
    /// The group refused the action.
    Action(ActionError),
    /// Sealing failed.
    Seal(SealError),
    /// The input holds neither armored blocks nor one message.
    Unreadable(DecodeError),
    /// A member's summary shows operations of this device's own chain that this store
    /// lacks: the device runs on an older copy of its store (a restored backup, a copied
    /// profile, a snapshot), and signing now would re-use a sequence number. Sync with
    /// `peer` (its answer carries the missing operations), then act again.
    Behind {
        /// The group.
        group: GroupId,
        /// The member whose summary shows it.
        peer: MemberId,
        /// Operations of this device's chain held here.
        held: u64,
        /// Operations of it the peer holds.
        claimed: u64,
    },
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "store: {e}"),
            Self::Poisoned => f.write_str("an earlier store failure: reopen the device"),
            Self::StoreState(what) => write!(f, "store: {what}"),
            Self::NoSuchGroup(g) => write!(f, "this device is not in group {g}: create it, or accept an invitation to it"),
            Self::NoSuchInvitation(g) => write!(f, "no invitation to group {g} waits (never received, or already accepted, declined or dropped)"),
            Self::Action(e) => write!(f, "{e}"),
            Self::Seal(e) => write!(f, "{e}"),
            Self::Unreadable(e) => write!(f, "unreadable input: {e}"),
            Self::Behind {
                group,
                peer,
                held,
                claimed,
            } => write!(
                f,
                "this store is older than what {peer} has seen of this device in group \
                 {group} ({claimed} of its operations there, {held} here): sync with it \
                 before acting"
            ),
        }
    }
}

impl std::error::Error for DeviceError {}

impl From<StoreError> for DeviceError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<ActionError> for DeviceError {
    fn from(e: ActionError) -> Self {
        Self::Action(e)
    }
}

impl From<SealError> for DeviceError {
    fn from(e: SealError) -> Self {
        Self::Seal(e)
    }
}
