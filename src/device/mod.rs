//! A device: one identity, its keyring and any number of groups, kept in a [`Store`] so that
//! it survives restarts, behind one surface an application calls.
//!
//! Every call that changes state commits its writes to the store in one transaction before
//! it returns. Everything a device sends is a [`Message`] (bytes with
//! [`Message::to_bytes`], text with [`Message::armored`]); everything it receives goes to
//! [`Device::receive`], bytes or text with any number of armored blocks, which routes each
//! item by kind and group and reports [`Event`]s. Time is always an argument, and
//! randomness too, so a device replays exactly.
//!
//! How a device sends to a group is the group's [`MessageMode`]: pairwise envelopes (O(n) per
//! message, deniable), sender keys (one signed chain per view, handed out in an envelope:
//! O(1) per message, O(n) per sender at each membership change), or automatically sender
//! keys above 32 members. Receiving takes both, and `send` returns whichever message the
//! mode made; the application sends it the same way.
//!
//! ```
//! use splitsafe::device::{Device, DeviceConfig, Event, MemoryStore};
//! use splitsafe::keys::Identity;
//!
//! let mut rng = splitsafe::rng::os_rng();
//! let now = 1_795_694_400_000;
//! let config = DeviceConfig::default();
//! let id = Identity::generate(&mut rng);
//! let mut alice = Device::create(MemoryStore::default(), id, config, &mut rng, now)?;
//! let id = Identity::generate(&mut rng);
//! let mut bob = Device::create(MemoryStore::default(), id, config, &mut rng, now)?;
//!
//! let group = alice.create_group(&mut rng, now)?;
//! let invitation = alice.invite(group, bob.bundle(), now + 1)?;
//! let invited = bob.receive(invitation.welcome.armored().as_bytes(), now + 2)?;
//! assert!(matches!(&invited[..], [Event::Invited(i)] if i.from == alice.id()));
//! assert!(bob.accept(group, now + 2)?.contains(&Event::Joined(group)));
//!
//! let sealed = alice.send(group, b"hi bob", &mut rng, now + 3)?;
//! let events = bob.receive(&sealed.to_bytes(), now + 4)?;
//! assert!(matches!(&events[..], [Event::Message(m)] if m.plaintext == b"hi bob"));
//! # Ok::<(), splitsafe::device::DeviceError>(())
//! ```

mod actions;
mod event;
mod inbox;
mod invitations;
mod lifecycle;
mod message;
mod mode;
mod peer;
mod receive;
mod send;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod time;
mod waiting;

pub use event::{Delivery, DeviceError, Event, Invited, Received, Refusal, Rejudged};
pub use message::{ChainPost, Message, Outgoing, SyncContent, SyncMessage, Welcome};
pub use mode::MessageMode;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::{
    Durability, MemoryStore, Place, Store, StoreError, Stored, StoredGroup, StoredPending, Write,
};

use crate::clock::Timestamp;
use crate::crypto::{ChainConfig, EnvelopeId, Keyring, KeyringConfig, SenderKeys};
use crate::group::{GroupId, Replica, ReplicaConfig, SignedOp, Status, Summary, View};
use crate::keys::{KeyBundle, MemberId};
use inbox::Inbox;
use invitations::Offer;
use peer::Peer;
use std::collections::{BTreeMap, BTreeSet};
use waiting::{Queue, Queued, Rooms, Waiting, Wake};

/// A device's settings (not stored: the application's, at every open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Each group's replica.
    pub replica: ReplicaConfig,
    /// The keyring (grace period, envelope limits, sender policy).
    pub keyring: KeyringConfig,
    /// The largest message `receive` decodes, in bytes.
    pub max_message_len: usize,
    /// Most envelopes kept waiting for what they need, from senders admitted in their group
    /// (the members' room).
    pub max_pending: usize,
    /// Most envelopes kept waiting for a group not joined here or from a claimed sender never
    /// admitted in it (the outside room, apart from the members' so that nobody outside a
    /// group can fill it).
    pub max_pending_outside: usize,
    /// Most bytes the members' room keeps (the outside room a sixteenth of it).
    pub max_pending_bytes: usize,
    /// How long (ms from its arrival) a message waits before it is given up
    /// ([`Refusal::Expired`]): whatever it waits for (operations, a chain, a welcome) has not
    /// come.
    pub max_pending_age_ms: u64,
    /// Most envelopes kept waiting from one claimed sender (the sender of a waiting
    /// envelope is unauthenticated until it opens).
    pub max_pending_per_sender: usize,
    /// Most sync peers per group whose add this device has not seen: a peer may be a member
    /// this device has not heard of yet, and what it says is what lets the two converge, but
    /// anyone can sign a sync message, so their number is bounded. Members are not counted.
    /// Such a peer is taken to hold at most twice as many authors as this device's own
    /// summary, plus 32 (a sync message claiming more is refused): at most 64 of those per
    /// group by default.
    pub max_unknown_peers: usize,
    /// How messages are sealed in groups without a setting of their own
    /// ([`Device::set_mode`]).
    pub messages: MessageMode,
    /// When sender chains are replaced, and the receivers' skip window.
    pub chains: ChainConfig,
    /// How many of the messages delivered last are judged again when operations arrive
    /// ([`Event::Rejudged`]); an older message keeps the standing it was delivered with.
    pub rejudge_window: usize,
    /// Most invitations kept waiting for the application's decision ([`Event::Invited`]):
    /// anyone can welcome this device to a group of its own making, so they are bounded, and
    /// the oldest is dropped for a new one ([`Refusal::InvitationDropped`]).
    pub max_invitations: usize,
    /// Most bytes the invitations kept take (each its welcome's encoding).
    pub max_invitation_bytes: usize,
    /// How long (ms) a member's summary showing operations of this device's own chain that
    /// its store lacks stops it acting in that group ([`DeviceError::Behind`]): long enough
    /// for an older copy of the store to catch up by sync; a member who lies about it can
    /// delay this device's actions no longer than this after each summary it sends.
    pub catch_up_ms: u64,
}

impl Default for DeviceConfig {
    /// Default replica and keyring settings, 32 MiB messages, 10,000 pending envelopes from
    /// members (256 MiB) and 1,000 from outside (16 MiB), at most 100 from one claimed sender,
    /// each waiting at most 7 days, 64 unknown sync peers per group; the
    /// default [`MessageMode`] and [`ChainConfig`]; the last 1,000 messages delivered are
    /// judged again; a day to catch up; 64 invitations in 64 MiB (two welcomes of the largest message).
    fn default() -> Self {
        Self {
            replica: ReplicaConfig::default(),
            keyring: KeyringConfig::default(),
            max_message_len: 32 << 20,
            max_pending: 10_000,
            max_pending_outside: 1_000,
            max_pending_bytes: 256 << 20,
            max_pending_age_ms: 7 * 24 * 60 * 60 * 1000,
            max_pending_per_sender: 100,
            max_unknown_peers: 64,
            messages: MessageMode::default(),
            chains: ChainConfig::default(),
            rejudge_window: 1_000,
            catch_up_ms: 24 * 60 * 60 * 1000,
            max_invitations: 64,
            max_invitation_bytes: 64 << 20,
        }
    }
}

/// What [`Device::invite`] produces: the add for the group, and the welcome for the newcomer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// The add, for the group's other members.
    pub add: Outgoing,
    /// The welcome, for the newcomer.
    pub welcome: Outgoing,
}

/// The members of `replica`'s view but `me`: who a message sealed or an operation made
/// there now is for.
fn others(replica: &Replica, me: MemberId) -> BTreeSet<MemberId> {
    replica
        .view()
        .members()
        .map(|(member, _)| *member)
        .filter(|member| *member != me)
        .collect()
}

/// What [`Device::tick`] produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tick {
    /// Changes and messages that time released.
    pub events: Vec<Event>,
    /// When to call `tick` next (local physical ms), if anything waits on time: a held
    /// operation falling due, a retired key to erase, an envelope stamped ahead.
    pub next: Option<u64>,
}

/// One group on this device.
#[derive(Debug)]
struct Group {
    replica: Replica,
    /// Sync state per peer.
    peers: BTreeMap<MemberId, Peer>,
    /// Sender chains: this device's (in memory only) and those it holds.
    keys: SenderKeys,
    /// The group's own message mode setting.
    mode: Option<MessageMode>,
    /// The replica's clock as last stored (`None`: never stored): a call that moved nothing
    /// writes nothing.
    stored_clock: Option<Timestamp>,
}

impl Group {
    fn new(replica: Replica) -> Self {
        let keys = SenderKeys::new(replica.group());
        Self {
            replica,
            peers: BTreeMap::new(),
            keys,
            mode: None,
            stored_clock: None,
        }
    }
}

/// A device: see the [module docs](self).
pub struct Device<S: Store> {
    store: S,
    config: DeviceConfig,
    keyring: Keyring,
    groups: BTreeMap<GroupId, Group>,
    /// Envelopes and chain messages waiting for operations, chains, time or a welcome, by
    /// copy id ([`Waiting::copy_id`]).
    pending: Queue,
    /// Envelopes opened here.
    seen: BTreeSet<EnvelopeId>,
    /// Welcomes to groups not joined, until the application decides.
    invitations: BTreeMap<GroupId, Offer>,
    /// Deliveries not acknowledged, and messages kept to be judged again.
    inbox: Inbox,
    poisoned: bool,
}

impl<S: Store> std::fmt::Debug for Device<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id())
            .field("groups", &self.groups.keys().collect::<Vec<_>>())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// The writes and events of one call, committed together.
#[derive(Default)]
struct Batch {
    writes: Vec<Write>,
    events: Vec<Event>,
    /// Holds this device's own operation: must survive a power loss.
    own_op: bool,
}

impl Batch {
    fn changes(&mut self, group: GroupId, changes: Vec<crate::group::Change>) {
        self.events.extend(
            changes
                .into_iter()
                .map(|change| Event::Changed { group, change }),
        );
    }
}

impl<S: Store> Device<S> {
    /// This device's member id.
    pub fn id(&self) -> MemberId {
        self.keyring.identity().id()
    }

    /// The bundle a member hands whoever will add it.
    pub fn bundle(&self) -> KeyBundle {
        self.keyring.bundle()
    }

    /// The groups this device is in (or was: a removed member keeps the group's history).
    pub fn groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.groups.keys().copied()
    }

    /// A group's replica, to read its view, ranks and operations.
    pub fn replica(&self, group: GroupId) -> Option<&Replica> {
        self.groups.get(&group).map(|g| &g.replica)
    }

    /// A group's current view.
    pub fn view(&self, group: GroupId) -> Option<&View> {
        self.replica(group).map(Replica::view)
    }

    /// Whether this device opened the envelope `id` (and so refuses it as a duplicate;
    /// envelopes it sealed itself are refused on sight).
    pub fn has_seen(&self, id: &EnvelopeId) -> bool {
        self.seen.contains(id)
    }

    /// What this device delivered and the application has not acknowledged yet, in id
    /// order: after a restart, whatever the application may not have stored.
    pub fn unacknowledged(&self) -> impl Iterator<Item = &Delivery> + '_ {
        self.inbox.unacknowledged()
    }

    /// Acknowledges the delivery of message `id` ([`Event::Message`] or
    /// [`Event::Rejudged`]): the application has it, and it is not delivered again. Returns
    /// whether a delivery of that id was waiting.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn ack(&mut self, id: EnvelopeId) -> Result<bool, DeviceError> {
        self.usable()?;
        let mut batch = Batch::default();
        let acknowledged = self.inbox.ack(&id, &mut batch);
        self.commit(batch)?;
        Ok(acknowledged)
    }

    /// Envelopes and chain messages waiting to be opened, by message id (copies of one
    /// message that differ where readers do not look wait side by side, each listed).
    pub fn pending(&self) -> impl Iterator<Item = (EnvelopeId, GroupId)> + '_ {
        self.pending
            .values()
            .map(|queued| (queued.id, queued.waiting.group()))
    }

    /// How this device seals messages to `group`: its own setting, or the device's default.
    pub fn mode(&self, group: GroupId) -> Option<MessageMode> {
        let g = self.groups.get(&group)?;
        Some(g.mode.unwrap_or(self.config.messages))
    }

    /// The keyring (its export is what the store holds of it).
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The store, for inspection.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Closes the device and hands back its store (to reopen it, as after a restart).
    pub fn into_store(self) -> S {
        self.store
    }

    fn usable(&self) -> Result<(), DeviceError> {
        if self.poisoned {
            Err(DeviceError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn commit(&mut self, batch: Batch) -> Result<Vec<Event>, DeviceError> {
        if batch.writes.is_empty() {
            return Ok(batch.events);
        }
        let durability = if batch.writes.iter().any(Write::replaces_keys) {
            Durability::Erasure
        } else if batch.own_op {
            Durability::PowerLoss
        } else {
            Durability::Crash
        };
        match self.store.commit(&batch.writes, durability) {
            Ok(()) => Ok(batch.events),
            Err(e) => {
                self.poisoned = true;
                Err(e.into())
            }
        }
    }

    /// Publishes this device's current key in `group` if the view holds it with another one
    /// (re-added from a bundle it has since rotated away from: others would seal to a key it
    /// erases, and could not attribute its messages). Once per key: a key published already,
    /// whether or not it took effect, is not published again.
    fn republish(&mut self, group: GroupId, now_ms: u64, batch: &mut Batch) {
        let me = self.id();
        let current = self.keyring.bundle();
        let g = self.groups.get_mut(&group).expect("known group");
        let stale = g
            .replica
            .view()
            .key(&me)
            .is_some_and(|held| *held != current.encryption_key);
        if !stale
            || g.replica
                .published_keys(&me)
                .any(|key| key == current.encryption_key)
        {
            return;
        }
        if let Ok((op, changes)) = g.replica.rotate(self.keyring.identity(), current, now_ms) {
            batch.own_op = true;
            batch.changes(group, changes);
            batch.events.push(Event::Publish {
                group,
                message: Box::new(Outgoing {
                    to: others(&g.replica, me).into_iter().collect(),
                    message: Message::Operations(vec![op]),
                }),
            });
            self.note_group(group, batch);
        }
    }

    /// Judges again the messages of `group` delivered last (see [`inbox`]).
    fn rejudge(&mut self, group: GroupId, batch: &mut Batch) {
        let g = self.groups.get(&group).expect("judged groups exist");
        self.inbox.rejudge(group, &g.replica, batch);
    }

    /// Writes where `group`'s operations went since the last note, and its clock.
    fn note_group(&mut self, group: GroupId, batch: &mut Batch) {
        let g = self.groups.get_mut(&group).expect("noted groups exist");
        let placements = g.replica.take_placements();
        let moved = !placements.is_empty();
        for (op, status) in placements {
            let place = match status {
                Status::Logged => Place::Logged,
                Status::Held => Place::Held,
                Status::Quarantined => Place::Quarantined,
                Status::Dropped | Status::Duplicate => {
                    batch.writes.push(Write::DeleteOp { group, id: op.id() });
                    continue;
                }
            };
            batch.writes.push(op_write(group, &op, place));
        }
        let clock = g.replica.clock().last();
        if g.stored_clock != Some(clock) {
            g.stored_clock = Some(clock);
            batch.writes.push(Write::Clock { group, clock });
        }
        // The summary may have changed: peer states stored as differences from it are
        // written again with these operations (any earlier write of theirs in the batch
        // is superseded).
        if moved && g.peers.values().any(Peer::follows_summary) {
            let mine = g.replica.summary();
            let follows = |peer: &MemberId| g.peers.get(peer).is_some_and(Peer::follows_summary);
            batch.writes.retain(|write| {
                !matches!(write, Write::Peer { group: at, peer, .. } if *at == group && follows(peer))
            });
            for (peer, state) in &mut g.peers {
                if state.follows_summary() {
                    batch.writes.push(peer_write(group, *peer, state, &mine));
                }
            }
        }
    }
}

/// Whether `member` was ever admitted in `replica`'s group (it has published a key there):
/// who counts as a member for sync peers, the pending queue's rooms, and whose word about
/// this device's own chain is taken.
fn admitted(replica: &Replica, member: &MemberId) -> bool {
    replica.published_keys(member).next().is_some()
}

/// Whether `waiting` belongs in the pending queue's outside room: its group is not among
/// `groups`, or its claimed sender was never admitted in it.
fn outside(groups: &BTreeMap<GroupId, Group>, waiting: &Waiting) -> bool {
    groups
        .get(&waiting.group())
        .is_none_or(|g| !admitted(&g.replica, &waiting.sender()))
}

/// The store row of `sender`'s chains in `group`.
fn chains_write(group: GroupId, sender: MemberId, keys: &SenderKeys) -> Write {
    match keys.export_held(&sender) {
        Some(state) => Write::Chains {
            group,
            sender,
            state,
        },
        None => Write::DeleteChains { group, sender },
    }
}

/// One of `groups` by id (a free function, so the keyring stays borrowable beside it).
fn group_mut(
    groups: &mut BTreeMap<GroupId, Group>,
    group: GroupId,
) -> Result<&mut Group, DeviceError> {
    groups
        .get_mut(&group)
        .ok_or(DeviceError::NoSuchGroup(group))
}

/// `peer`'s state as stored, `mine` being this device's summary of `group` as of the
/// operations stored with it (see [`Peer::encode_stored`]).
fn peer_write(group: GroupId, peer: MemberId, state: &mut Peer, mine: &Summary) -> Write {
    Write::Peer {
        group,
        peer,
        state: state.encode_stored(mine),
    }
}

fn op_write(group: GroupId, op: &SignedOp, place: Place) -> Write {
    Write::Op {
        group,
        id: op.id(),
        place,
        bytes: op.to_stored(),
    }
}
