//! What waits in the pending queue: envelopes and sender-key messages that cannot be opened
//! yet (their sender's operations, their chain, or local time has not come).

use crate::clock::Timestamp;
use crate::codec::DecodeError;
use crate::crypto::{ChainMessage, Envelope, EnvelopeId, Limits};
use crate::group::GroupId;
use crate::keys::MemberId;
use std::collections::{BTreeMap, BTreeSet};

/// A message in the pending queue, with when it arrived (it expires
/// [`DeviceConfig::max_pending_age_ms`](super::DeviceConfig::max_pending_age_ms) later) and
/// its stored size (what the byte budget counts).
#[derive(Clone, Debug)]
pub(super) struct Queued {
    pub(super) waiting: Waiting,
    /// Its id, computed once (it hashes the whole ciphertext).
    pub(super) id: EnvelopeId,
    pub(super) arrived_ms: u64,
    /// Whether its claimed sender was authenticated when it was queued: only an
    /// unauthenticated message is dropped to make room.
    pub(super) authentic: bool,
    /// Whether it waits in the outside room: its group is not joined here, or its claimed
    /// sender was never admitted in it (as judged when it was last tried).
    pub(super) outside: bool,
    pub(super) len: usize,
}

/// The pending queue: waiting messages by copy id, indexed by group and claimed sender
/// (everything a message waits for is its sender's: its key, its admission, its operations,
/// its chain), so that what arrives retries only the messages it may release.
#[derive(Clone, Debug, Default)]
pub(super) struct Queue {
    items: BTreeMap<EnvelopeId, Queued>,
    by_sender: BTreeSet<(GroupId, MemberId, EnvelopeId)>,
}

impl Queue {
    pub(super) fn insert(&mut self, copy: EnvelopeId, queued: Queued) {
        let key = (queued.waiting.group(), queued.waiting.sender(), copy);
        if let Some(old) = self.items.insert(copy, queued) {
            self.by_sender
                .remove(&(old.waiting.group(), old.waiting.sender(), copy));
        }
        self.by_sender.insert(key);
    }

    pub(super) fn remove(&mut self, copy: &EnvelopeId) -> Option<Queued> {
        let queued = self.items.remove(copy)?;
        self.by_sender
            .remove(&(queued.waiting.group(), queued.waiting.sender(), *copy));
        Some(queued)
    }

    pub(super) fn contains_key(&self, copy: &EnvelopeId) -> bool {
        self.items.contains_key(copy)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&EnvelopeId, &Queued)> + Clone + '_ {
        self.items.iter()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Queued> + '_ {
        self.items.values()
    }

    /// The copy ids waiting in `group`, of the claimed senders `wake` names.
    pub(super) fn waking(&self, group: GroupId, wake: &Wake) -> Vec<EnvelopeId> {
        let lowest = MemberId([0; 32]);
        let highest = MemberId([0xFF; 32]);
        let (none, all) = (EnvelopeId([0; 32]), EnvelopeId([0xFF; 32]));
        match wake {
            Wake::All => self
                .by_sender
                .range((group, lowest, none)..=(group, highest, all))
                .map(|(_, _, copy)| *copy)
                .collect(),
            Wake::Senders(senders) => senders
                .iter()
                .flat_map(|sender| {
                    let range = (group, *sender, none)..=(group, *sender, all);
                    self.by_sender.range(range).map(|(_, _, copy)| *copy)
                })
                .collect(),
        }
    }
}

/// Which waiting messages of a group to try again.
#[derive(Clone, Debug)]
pub(super) enum Wake {
    /// Every one (the group was joined, or time passed).
    All,
    /// Those of these claimed senders (operations by or about them arrived, their view
    /// standing changed, or they handed over a chain).
    Senders(BTreeSet<MemberId>),
}

/// The pending queue's bounds, from [`DeviceConfig`](super::DeviceConfig).
#[derive(Clone, Copy, Debug)]
pub(super) struct Rooms {
    /// Most messages in the members' room, and in the outside room.
    pub(super) count: (usize, usize),
    /// Most bytes in the members' room, and in the outside room.
    pub(super) bytes: (usize, usize),
    /// Most messages of one claimed sender in either room.
    pub(super) per_sender: usize,
}

impl Rooms {
    /// The copy ids to drop so that `new` fits in its room beside `queue`, oldest first;
    /// `None` if it cannot fit. Only unauthenticated messages are dropped: first the oldest
    /// of `new`'s claimed sender while that sender is over its share, then the oldest in the
    /// room while the room is over its count or bytes. A forgery can so displace only other
    /// unauthenticated messages, never refuse or drop one whose sender was authenticated.
    pub(super) fn make_room<'a>(
        &self,
        queue: impl Iterator<Item = (&'a EnvelopeId, &'a Queued)> + Clone,
        new: &Queued,
    ) -> Option<Vec<EnvelopeId>> {
        let (max_count, max_bytes) = if new.outside {
            (self.count.1, self.bytes.1)
        } else {
            (self.count.0, self.bytes.0)
        };
        let sender = new.waiting.sender();
        let room = queue.filter(|(_, q)| q.outside == new.outside);
        let mine = room.clone().filter(|(_, q)| q.waiting.sender() == sender);
        let (mut count, mut bytes) = (0, 0);
        for (_, q) in room.clone() {
            count += 1;
            bytes += q.len;
        }
        let mut from_sender = mine.clone().count();
        let mut dropped: Vec<EnvelopeId> = Vec::new();
        // The oldest unauthenticated message among `candidates` not dropped yet.
        let oldest = |candidates: &mut dyn Iterator<Item = (&'a EnvelopeId, &'a Queued)>,
                      dropped: &[EnvelopeId]| {
            candidates
                .filter(|(copy, q)| !q.authentic && !dropped.contains(copy))
                .min_by_key(|(copy, q)| (q.arrived_ms, **copy))
                .map(|(copy, q)| (*copy, q.len))
        };
        while from_sender >= self.per_sender {
            let (copy, len) = oldest(&mut mine.clone(), &dropped)?;
            dropped.push(copy);
            (from_sender, count, bytes) = (from_sender - 1, count - 1, bytes - len);
        }
        while count >= max_count || bytes + new.len > max_bytes {
            let (copy, len) = oldest(&mut room.clone(), &dropped)?;
            dropped.push(copy);
            (count, bytes) = (count - 1, bytes - len);
        }
        Some(dropped)
    }
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
