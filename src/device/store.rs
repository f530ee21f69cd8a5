//! Where a device keeps its state: a [`Store`] takes each call's writes in one transaction and
//! gives everything back when the device reopens.
//!
//! What a store holds: the keyring export (the identity's and encryption secrets, in clear:
//! the platform must protect the store, as it protects any messenger's database), every
//! operation each group's replica holds and where (logged, held back or quarantined; one
//! row each, rewritten when it moves),
//! each group's clock, envelopes waiting to be opened, the ids of envelopes opened (to refuse
//! replays), and each sync peer's state (what it was last known to hold, what it was last
//! told), deliveries the application has not acknowledged (a message's plaintext until then),
//! and the recent messages kept to judge their senders again.
//!
//! Trust: a store is trusted as the process's memory is. Operations were verified when they
//! were received; reopening does not verify their signatures again, so whoever can write
//! the store can forge this device's view (as whoever can write its memory could).

use crate::clock::Timestamp;
use crate::crypto::EnvelopeId;
use crate::group::{GroupId, OpId};
use crate::keys::MemberId;
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

/// Where a group's replica holds an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Place {
    /// In the log.
    Logged,
    /// Held back: stamped ahead of local time.
    Held,
    /// Quarantined: its author not enabled at it, or its predecessor missing.
    Quarantined,
}

impl Place {
    /// The number a store writes for it.
    pub fn code(self) -> u8 {
        match self {
            Self::Logged => 0,
            Self::Held => 1,
            Self::Quarantined => 2,
        }
    }

    /// The place a stored number stands for.
    pub fn from_code(code: u8) -> Option<Self> {
        [Self::Logged, Self::Held, Self::Quarantined]
            .into_iter()
            .find(|p| p.code() == code)
    }
}

/// One change to the stored state.
#[derive(Clone, PartialEq, Eq)]
pub enum Write {
    /// The keyring export (replaces the previous one).
    Keyring(Zeroizing<Vec<u8>>),
    /// A group's clock (creates the group's entry if new).
    Clock {
        /// The group.
        group: GroupId,
        /// Its replica's last stamp.
        clock: Timestamp,
    },
    /// An operation a group's replica now holds, and where (replaces its previous place).
    Op {
        /// The group.
        group: GroupId,
        /// The operation's id.
        id: OpId,
        /// Where the replica holds it.
        place: Place,
        /// Its stored form ([`SignedOp::to_stored`](crate::group::SignedOp::to_stored)).
        bytes: Vec<u8>,
    },
    /// An operation the replica dropped (over a pen's quota).
    DeleteOp {
        /// The group.
        group: GroupId,
        /// The operation's id.
        id: OpId,
    },
    /// An envelope waiting to be opened.
    Pending {
        /// The id of its exact bytes (`Envelope::copy_id`, `ChainMessage::copy_id`).
        id: EnvelopeId,
        /// The group it names.
        group: GroupId,
        /// Local ms when it arrived: it expires `max_pending_age_ms` later.
        arrived_ms: u64,
        /// Whether its claimed sender was authenticated when it was queued (see
        /// [`StoredPending::authentic`]).
        authentic: bool,
        /// Its CBOR encoding.
        bytes: Vec<u8>,
    },
    /// A waiting envelope (by copy id) was opened or refused.
    DeletePending(EnvelopeId),
    /// An envelope this device opened.
    Seen(EnvelopeId),
    /// A sync peer's state in a group: what it was last known to hold and what this device
    /// last told it (CBOR).
    Peer {
        /// The group.
        group: GroupId,
        /// The peer.
        peer: MemberId,
        /// The state's CBOR encoding.
        state: Vec<u8>,
    },
    /// The chains of `sender` this device holds in `group` (sender-key mode), their keys
    /// in clear as the keyring's ([`SenderKeys::export_held`](crate::crypto::SenderKeys::export_held)).
    Chains {
        /// The group.
        group: GroupId,
        /// The sender.
        sender: MemberId,
        /// The export.
        state: Zeroizing<Vec<u8>>,
    },
    /// This device's own sending chain in `group`, at the index it has reserved up to
    /// ([`SenderKeys::export_own`](crate::crypto::SenderKeys::export_own)): its key and
    /// signing key in clear, as the keyring's.
    OwnChain {
        /// The group.
        group: GroupId,
        /// The export.
        state: Zeroizing<Vec<u8>>,
    },
    /// No chains of `sender` are held in `group` any more.
    DeleteChains {
        /// The group.
        group: GroupId,
        /// The sender.
        sender: MemberId,
    },
    /// A welcome kept as an invitation until the application decides
    /// ([`Device::accept`](super::Device::accept)).
    Invitation {
        /// The group it welcomes to.
        group: GroupId,
        /// Local ms when it arrived (the oldest is dropped first).
        arrived_ms: u64,
        /// The welcome's encoding ([`Message::to_bytes`](super::Message::to_bytes)).
        bytes: Vec<u8>,
    },
    /// The invitation to this group was accepted, declined or dropped.
    DeleteInvitation(GroupId),
    /// A delivery the application has not acknowledged yet (CBOR of a
    /// [`Delivery`](super::Delivery): its plaintext, for a message).
    Delivery {
        /// The message's id.
        id: EnvelopeId,
        /// The delivery's CBOR encoding.
        bytes: Vec<u8>,
    },
    /// The application acknowledged the delivery of this id.
    DeleteDelivery(EnvelopeId),
    /// A delivered message as kept to judge its sender again (CBOR), within the window.
    Judged {
        /// The message's id.
        id: EnvelopeId,
        /// The record's CBOR encoding.
        bytes: Vec<u8>,
    },
    /// A message left the judging window.
    DeleteJudged(EnvelopeId),
    /// The group's own message mode setting ([`MessageMode::code`](super::MessageMode::code)).
    Mode {
        /// The group.
        group: GroupId,
        /// The setting's code.
        mode: [u8; 2],
    },
}

impl Write {
    /// Whether the write replaces or deletes key material (a keyring export, a chain state):
    /// what it replaces must leave no copy behind ([`Durability::Erasure`]).
    pub fn replaces_keys(&self) -> bool {
        matches!(
            self,
            Self::Keyring(_)
                | Self::Chains { .. }
                | Self::DeleteChains { .. }
                | Self::OwnChain { .. }
        )
    }
}

impl fmt::Debug for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keyring(_) => f.write_str("Keyring(..)"),
            Self::Clock { group, clock } => write!(f, "Clock({group:?}, {clock})"),
            Self::Op {
                group, id, place, ..
            } => write!(f, "Op({group:?}, {id:?}, {place:?})"),
            Self::DeleteOp { group, id } => write!(f, "DeleteOp({group:?}, {id:?})"),
            Self::Pending { id, group, .. } => write!(f, "Pending({id:?}, {group:?})"),
            Self::DeletePending(id) => write!(f, "DeletePending({id:?})"),
            Self::Seen(id) => write!(f, "Seen({id:?})"),
            Self::Peer { group, peer, .. } => write!(f, "Peer({group:?}, {peer:?})"),
            Self::Chains { group, sender, .. } => write!(f, "Chains({group:?}, {sender:?})"),
            Self::OwnChain { group, .. } => write!(f, "OwnChain({group:?})"),
            Self::DeleteChains { group, sender } => {
                write!(f, "DeleteChains({group:?}, {sender:?})")
            }
            Self::Mode { group, mode } => write!(f, "Mode({group:?}, {mode:?})"),
            Self::Invitation { group, .. } => write!(f, "Invitation({group:?})"),
            Self::DeleteInvitation(group) => write!(f, "DeleteInvitation({group:?})"),
            Self::Delivery { id, .. } => write!(f, "Delivery({id:?})"),
            Self::DeleteDelivery(id) => write!(f, "DeleteDelivery({id:?})"),
            Self::Judged { id, .. } => write!(f, "Judged({id:?})"),
            Self::DeleteJudged(id) => write!(f, "DeleteJudged({id:?})"),
        }
    }
}

/// One group as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredGroup {
    /// The replica's last stamp.
    pub clock: Timestamp,
    /// The operations it holds, by id: where, and their stored forms
    /// ([`SignedOp::from_stored`](crate::group::SignedOp::from_stored) reads them).
    pub ops: BTreeMap<OpId, (Place, Vec<u8>)>,
    /// The group's own message mode setting, if one was made.
    pub mode: Option<[u8; 2]>,
}

/// A message waiting to be opened, as stored ([`Write::Pending`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPending {
    /// The group it names.
    pub group: GroupId,
    /// Local ms when it arrived.
    pub arrived_ms: u64,
    /// Whether its claimed sender was authenticated when it was queued (it authenticated
    /// and waits for operations or time, or carries its sender's valid signature): the
    /// pending queue drops an unauthenticated message, never an authenticated one, to make
    /// room.
    pub authentic: bool,
    /// Its CBOR encoding.
    pub bytes: Vec<u8>,
}

/// Everything a store gives back.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// The keyring export.
    pub keyring: Zeroizing<Vec<u8>>,
    /// The groups.
    pub groups: BTreeMap<GroupId, StoredGroup>,
    /// Waiting envelopes and chain messages, by copy id.
    pub pending: BTreeMap<EnvelopeId, StoredPending>,
    /// Ids of envelopes opened.
    pub seen: std::collections::BTreeSet<EnvelopeId>,
    /// Sync peers' states.
    pub peers: BTreeMap<(GroupId, MemberId), Vec<u8>>,
    /// Chains held, by group and sender.
    pub chains: BTreeMap<(GroupId, MemberId), Zeroizing<Vec<u8>>>,
    /// This device's own sending chain per group.
    pub own_chains: BTreeMap<GroupId, Zeroizing<Vec<u8>>>,
    /// Invitations kept: group -> (local ms of arrival, the welcome's encoding).
    pub invitations: BTreeMap<GroupId, (u64, Vec<u8>)>,
    /// Deliveries not acknowledged, by message id.
    pub deliveries: BTreeMap<EnvelopeId, Vec<u8>>,
    /// Delivered messages kept to be judged again, by id.
    pub judged: BTreeMap<EnvelopeId, Vec<u8>>,
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stored")
            .field("groups", &self.groups.len())
            .field("pending", &self.pending.len())
            .field("seen", &self.seen.len())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Stored {
    /// Applies `writes` in order.
    pub fn apply(&mut self, writes: &[Write]) {
        for write in writes {
            match write {
                Write::Keyring(bytes) => self.keyring = bytes.clone(),
                Write::Clock { group, clock } => {
                    self.groups.entry(*group).or_default().clock = *clock;
                }
                Write::Op {
                    group,
                    id,
                    place,
                    bytes,
                } => {
                    self.groups
                        .entry(*group)
                        .or_default()
                        .ops
                        .insert(*id, (*place, bytes.clone()));
                }
                Write::DeleteOp { group, id } => {
                    if let Some(stored) = self.groups.get_mut(group) {
                        stored.ops.remove(id);
                    }
                }
                Write::Pending {
                    id,
                    group,
                    arrived_ms,
                    authentic,
                    bytes,
                } => {
                    let row = StoredPending {
                        group: *group,
                        arrived_ms: *arrived_ms,
                        authentic: *authentic,
                        bytes: bytes.clone(),
                    };
                    self.pending.insert(*id, row);
                }
                Write::DeletePending(id) => {
                    self.pending.remove(id);
                }
                Write::Seen(id) => {
                    self.seen.insert(*id);
                }
                Write::Peer { group, peer, state } => {
                    self.peers.insert((*group, *peer), state.clone());
                }
                Write::Chains {
                    group,
                    sender,
                    state,
                } => {
                    self.chains.insert((*group, *sender), state.clone());
                }
                Write::DeleteChains { group, sender } => {
                    self.chains.remove(&(*group, *sender));
                }
                Write::OwnChain { group, state } => {
                    self.own_chains.insert(*group, state.clone());
                }
                Write::Invitation {
                    group,
                    arrived_ms,
                    bytes,
                } => {
                    self.invitations
                        .insert(*group, (*arrived_ms, bytes.clone()));
                }
                Write::DeleteInvitation(group) => {
                    self.invitations.remove(group);
                }
                Write::Mode { group, mode } => {
                    self.groups.entry(*group).or_default().mode = Some(*mode);
                }
                Write::Delivery { id, bytes } => {
                    self.deliveries.insert(*id, bytes.clone());
                }
                Write::DeleteDelivery(id) => {
                    self.deliveries.remove(id);
                }
                Write::Judged { id, bytes } => {
                    self.judged.insert(*id, bytes.clone());
                }
                Write::DeleteJudged(id) => {
                    self.judged.remove(id);
                }
            }
        }
    }
}

/// Why a store failed.
#[derive(Debug)]
pub enum StoreError {
    /// The backend failed (I/O, the database).
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// The stored data is not what this code writes.
    Corrupt(String),
    /// Another process (or another handle in this one) has the store open: one store serves
    /// one device at a time, since two writers would each make the device's next operation
    /// and fork its chain.
    Locked,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Backend(e) => write!(f, "store backend: {e}"),
            Self::Corrupt(what) => write!(f, "store corrupt: {what}"),
            Self::Locked => f.write_str("the store is open elsewhere (another process has it)"),
        }
    }
}

impl std::error::Error for StoreError {}

/// How much a commit must survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Durability {
    /// A crash of the process: enough for what can be received or derived again (operations
    /// and envelopes from others, sync state, what was opened).
    Crash,
    /// A loss of power as well: for this device's own operations and its keys, which it must
    /// never lose once others may have seen them (an own operation lost would be made again at
    /// the same sequence number, an equivocation; a rotation lost would leave the group
    /// sealing to a key the device no longer holds; an erasure lost would resurrect a secret).
    PowerLoss,
    /// A loss of power, and the writes overwrite or delete key material (a retired key
    /// erased, a chain stepped past used message keys): once the commit returns, no copy of
    /// what they replace may remain in any file of the store (journals and free pages
    /// included), or a thief of the files would read what forward secrecy protects.
    Erasure,
}

/// Durable state for one device.
pub trait Store {
    /// Everything stored, or `None` if no device was ever created in this store.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails or holds something this code did not write.
    fn load(&mut self) -> Result<Option<Stored>, StoreError>;

    /// Applies `writes` atomically, durable to `durability`: after a crash (or a power loss,
    /// for [`Durability::PowerLoss`] and [`Durability::Erasure`]), either all of them are
    /// there or none.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the backend fails; then none of them is applied.
    fn commit(&mut self, writes: &[Write], durability: Durability) -> Result<(), StoreError>;
}

/// A store in memory, for tests and for applications that persist elsewhere. Cloning it
/// is the equivalent of a device's disk at that moment.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore(Option<Stored>);

impl Store for MemoryStore {
    fn load(&mut self) -> Result<Option<Stored>, StoreError> {
        Ok(self.0.clone())
    }

    fn commit(&mut self, writes: &[Write], _: Durability) -> Result<(), StoreError> {
        self.0.get_or_insert_with(Stored::default).apply(writes);
        Ok(())
    }
}
