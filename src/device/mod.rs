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
//! let joined = bob.receive(invitation.welcome.armored().as_bytes(), now + 2)?;
//! assert!(joined.contains(&Event::Joined(group)));
//!
//! let sealed = alice.send(group, b"hi bob", &mut rng, now + 3)?;
//! let events = bob.receive(&sealed.to_bytes(), now + 4)?;
//! assert!(matches!(&events[..], [Event::Message(m)] if m.plaintext == b"hi bob"));
//! # Ok::<(), splitsafe::device::DeviceError>(())
//! ```

mod event;
mod message;
mod mode;
mod peer;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod waiting;

pub use event::{DeviceError, Event, Received, Refusal};
pub use message::{ChainPost, Message, SyncMessage, Welcome};
pub use mode::MessageMode;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::{Durability, MemoryStore, Place, Store, StoreError, Stored, StoredGroup, Write};

use crate::codec;
use crate::crypto::{
    ChainConfig, ChainError, EnvelopeId, Keyring, KeyringConfig, OpenError, Payload, SealOptions,
    SenderKeys,
};
use crate::group::{
    Body, GroupId, PositionError, Rank, Replica, ReplicaConfig, SignedOp, Status, View,
};
use crate::keys::{Identity, KeyBundle, MemberId};
use crate::wire;
use peer::Peer;
use rand_core::CryptoRng;
use std::collections::{BTreeMap, BTreeSet};
use waiting::Waiting;
use zeroize::Zeroize;

/// A device's settings (not stored: the application's, at every open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Each group's replica.
    pub replica: ReplicaConfig,
    /// The keyring (grace period, envelope limits, sender policy).
    pub keyring: KeyringConfig,
    /// The largest message `receive` decodes, in bytes.
    pub max_message_len: usize,
    /// Most envelopes kept waiting for what they need.
    pub max_pending: usize,
    /// Most envelopes kept waiting from one claimed sender (the sender of a waiting
    /// envelope is unauthenticated until it opens).
    pub max_pending_per_sender: usize,
    /// Most sync peers per group whose add this device has not seen: a peer may be a member
    /// this device has not heard of yet, and its summary is what lets the two converge, but
    /// anyone can sign a sync message, so their number is bounded. Members are not counted.
    pub max_unknown_peers: usize,
    /// How messages are sealed in groups without a setting of their own
    /// ([`Device::set_mode`]).
    pub messages: MessageMode,
    /// When sender chains are replaced, and the receivers' skip window.
    pub chains: ChainConfig,
}

impl Default for DeviceConfig {
    /// Default replica and keyring settings, 32 MiB messages, 10,000 pending envelopes of
    /// which at most 100 from one claimed sender, 64 unknown sync peers per group; the
    /// default [`MessageMode`] and [`ChainConfig`].
    fn default() -> Self {
        Self {
            replica: ReplicaConfig::default(),
            keyring: KeyringConfig::default(),
            max_message_len: 32 << 20,
            max_pending: 10_000,
            max_pending_per_sender: 100,
            max_unknown_peers: 64,
            messages: MessageMode::default(),
            chains: ChainConfig::default(),
        }
    }
}

/// What [`Device::invite`] produces: the add for the group, and the welcome for the newcomer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// The add, for the group's other members.
    pub add: Message,
    /// The welcome, for the newcomer.
    pub welcome: Message,
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
}

impl Group {
    fn new(replica: Replica) -> Self {
        let keys = SenderKeys::new(replica.group());
        Self {
            replica,
            peers: BTreeMap::new(),
            keys,
            mode: None,
        }
    }
}

/// A device: see the [module docs](self).
pub struct Device<S: Store> {
    store: S,
    config: DeviceConfig,
    keyring: Keyring,
    groups: BTreeMap<GroupId, Group>,
    /// Envelopes and chain messages waiting for operations, chains, time or a welcome.
    pending: BTreeMap<EnvelopeId, Waiting>,
    /// Envelopes opened here.
    seen: BTreeSet<EnvelopeId>,
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

impl<S: Store> Device<S> {
    /// A new device for `identity` in an empty `store`, with a fresh encryption key.
    ///
    /// # Errors
    ///
    /// [`DeviceError::StoreState`] if the store already holds a device; store failures.
    pub fn create<R: CryptoRng + ?Sized>(
        mut store: S,
        identity: Identity,
        config: DeviceConfig,
        rng: &mut R,
        now_ms: u64,
    ) -> Result<Self, DeviceError> {
        if store.load()?.is_some() {
            return Err(DeviceError::StoreState("it already holds a device"));
        }
        let keyring = Keyring::new(identity, config.keyring, rng, now_ms);
        store.commit(&[Write::Keyring(keyring.export())], Durability::PowerLoss)?;
        Ok(Self {
            store,
            config,
            keyring,
            groups: BTreeMap::new(),
            pending: BTreeMap::new(),
            seen: BTreeSet::new(),
            poisoned: false,
        })
    }

    /// Reopens the device `store` holds, exactly as it was after its last committed call
    /// (operations are not verified again: see [`Store`]'s trust note). Call
    /// [`tick`](Self::tick) next: what fell due while it was closed is released there.
    ///
    /// # Errors
    ///
    /// [`DeviceError::StoreState`] if the store holds no device; [`StoreError::Corrupt`] if
    /// it holds what this code does not write.
    pub fn open(mut store: S, config: DeviceConfig) -> Result<Self, DeviceError> {
        let stored = store
            .load()?
            .ok_or(DeviceError::StoreState("it holds no device"))?;
        let corrupt = |what: String| DeviceError::Store(StoreError::Corrupt(what));
        let keyring = Keyring::import(&stored.keyring, config.keyring)
            .map_err(|e| corrupt(format!("keyring: {e}")))?;
        let mut groups = BTreeMap::new();
        for (id, group) in &stored.groups {
            let mut placements = Vec::with_capacity(group.ops.len());
            for (place, bytes) in group.ops.values() {
                let op = SignedOp::from_cbor(bytes).map_err(|e| corrupt(format!("op: {e}")))?;
                let status = match place {
                    Place::Logged => Status::Logged,
                    Place::Held => Status::Held,
                    Place::Quarantined => Status::Quarantined,
                };
                placements.push((op, status));
            }
            let replica = Replica::restore(*id, config.replica, group.clock, placements)
                .ok_or_else(|| corrupt(format!("group {id} has no genesis")))?;
            let held = stored
                .chains
                .range((*id, MemberId([0; 32]))..=(*id, MemberId([0xFF; 32])))
                .map(|((_, sender), bytes)| (*sender, bytes.as_slice()));
            let keys =
                SenderKeys::import(*id, held).map_err(|e| corrupt(format!("chains: {e}")))?;
            let mode = group
                .mode
                .map(|code| {
                    MessageMode::from_code(code).ok_or_else(|| corrupt("a message mode".into()))
                })
                .transpose()?;
            let peers = stored
                .peers
                .range((*id, MemberId([0; 32]))..=(*id, MemberId([0xFF; 32])))
                .map(|((_, peer), bytes)| {
                    codec::decode(bytes, config.max_message_len)
                        .map(|state| (*peer, state))
                        .map_err(|e| corrupt(format!("peer state: {e}")))
                })
                .collect::<Result<_, _>>()?;
            groups.insert(
                *id,
                Group {
                    replica,
                    peers,
                    keys,
                    mode,
                },
            );
        }
        let mut pending = BTreeMap::new();
        for (id, (_, bytes)) in &stored.pending {
            let waiting = Waiting::from_bytes(bytes, config.keyring.limits)
                .map_err(|e| corrupt(format!("pending message: {e}")))?;
            pending.insert(*id, waiting);
        }
        Ok(Self {
            store,
            config,
            keyring,
            groups,
            pending,
            seen: stored.seen,
            poisoned: false,
        })
    }

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

    /// Envelopes and chain messages waiting to be opened.
    pub fn pending(&self) -> impl Iterator<Item = (EnvelopeId, GroupId)> + '_ {
        self.pending
            .iter()
            .map(|(id, waiting)| (*id, waiting.group()))
    }

    /// How this device seals messages to `group`: its own setting, or the device's default.
    pub fn mode(&self, group: GroupId) -> Option<MessageMode> {
        let g = self.groups.get(&group)?;
        Some(g.mode.unwrap_or(self.config.messages))
    }

    /// Sets how this device seals messages to `group` (kept across restarts; receiving takes
    /// both modes, always).
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoSuchGroup`]; store failures.
    pub fn set_mode(&mut self, group: GroupId, mode: MessageMode) -> Result<(), DeviceError> {
        self.usable()?;
        group_mut(&mut self.groups, group)?.mode = Some(mode);
        self.commit(Batch {
            writes: vec![Write::Mode {
                group,
                mode: mode.code(),
            }],
            ..Batch::default()
        })?;
        Ok(())
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

    /// Founds a group with this device as its owner.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn create_group<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now_ms: u64,
    ) -> Result<GroupId, DeviceError> {
        self.usable()?;
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let (mut replica, genesis) = Replica::create(
            self.keyring.identity(),
            self.keyring.bundle(),
            nonce,
            self.config.replica,
            now_ms,
        )?;
        replica.record_placements();
        let group = replica.group();
        let mut batch = Batch {
            own_op: true,
            ..Batch::default()
        };
        batch.writes.push(op_write(group, &genesis, Place::Logged));
        batch.writes.push(Write::Clock {
            group,
            clock: replica.clock().last(),
        });
        self.groups.insert(group, Group::new(replica));
        self.commit(batch)?;
        Ok(group)
    }

    /// Adds the member whose `bundle` this is to `group` and makes its welcome.
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoSuchGroup`]; [`DeviceError::Action`] if the group refuses the add
    /// (rank, bad bundle); store failures.
    pub fn invite(
        &mut self,
        group: GroupId,
        bundle: KeyBundle,
        now_ms: u64,
    ) -> Result<Invitation, DeviceError> {
        let add = self.act(group, |replica, identity| {
            replica.add(identity, bundle, now_ms)
        })?;
        Ok(Invitation {
            add,
            welcome: self.welcome(group)?,
        })
    }

    /// A welcome to `group`: every operation this device has logged.
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoSuchGroup`].
    pub fn welcome(&self, group: GroupId) -> Result<Message, DeviceError> {
        let replica = self.replica(group).ok_or(DeviceError::NoSuchGroup(group))?;
        Ok(Message::Welcome(Welcome {
            group,
            ops: replica.ops().cloned().collect(),
        }))
    }

    /// Removes `member` from `group`.
    ///
    /// # Errors
    ///
    /// As for [`invite`](Self::invite).
    pub fn remove(
        &mut self,
        group: GroupId,
        member: MemberId,
        now_ms: u64,
    ) -> Result<Message, DeviceError> {
        self.act(group, |replica, identity| {
            replica.remove(identity, member, now_ms)
        })
    }

    /// Leaves `group`.
    ///
    /// # Errors
    ///
    /// As for [`invite`](Self::invite).
    pub fn leave(&mut self, group: GroupId, now_ms: u64) -> Result<Message, DeviceError> {
        self.act(group, |replica, identity| replica.leave(identity, now_ms))
    }

    /// Makes `member` an admin of `group` (`Rank::Admin`) or a member again
    /// (`Rank::Member`); only the owner may.
    ///
    /// # Errors
    ///
    /// As for [`invite`](Self::invite).
    pub fn set_rank(
        &mut self,
        group: GroupId,
        member: MemberId,
        rank: Rank,
        now_ms: u64,
    ) -> Result<Message, DeviceError> {
        self.act(group, |replica, identity| match rank {
            Rank::Admin => replica.promote(identity, member, now_ms),
            _ => replica.demote(identity, member, now_ms),
        })
    }

    /// Rotates this device's encryption key and publishes the new one in every group it is
    /// a member of (one key for all: the old one is retired everywhere). Returns one
    /// operations message per group that took it; in no group, nothing changes.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn rotate<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now_ms: u64,
    ) -> Result<Vec<Message>, DeviceError> {
        self.usable()?;
        let me = self.id();
        let in_group: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, g)| g.replica.is_member(&me))
            .map(|(id, _)| *id)
            .collect();
        let replicas = self
            .groups
            .iter_mut()
            .filter(|(id, _)| in_group.contains(id))
            .map(|(_, g)| &mut g.replica);
        let results = self.keyring.rotate_in_all(rng, replicas, now_ms);
        let mut batch = Batch {
            own_op: true,
            ..Batch::default()
        };
        let mut out = Vec::new();
        for (group, result) in in_group.into_iter().zip(results) {
            if let Ok((op, _)) = result {
                self.note_group(group, &mut batch);
                out.push(Message::Operations(vec![op]));
            }
        }
        batch.writes.push(Write::Keyring(self.keyring.export()));
        self.commit(batch)?;
        Ok(out)
    }

    /// Seals `plaintext` to `group`'s current view, in the group's [`MessageMode`]: an
    /// envelope, or a sender-key message (with the envelope handing out a new chain when
    /// the view changed since the last one, or the chain is due for replacement).
    ///
    /// A sending chain lives in memory only: after a restart, the next message starts a
    /// new chain. So no chain signing key is ever stored, and a store rolled back by a
    /// power loss can never make a chain use a message key twice.
    ///
    /// # Errors
    ///
    /// [`DeviceError::Seal`] if this device is not in the view or a limit is exceeded;
    /// store failures.
    pub fn send<R: CryptoRng + ?Sized>(
        &mut self,
        group: GroupId,
        plaintext: &[u8],
        rng: &mut R,
        now_ms: u64,
    ) -> Result<Message, DeviceError> {
        self.usable()?;
        let default = self.config.messages;
        let g = group_mut(&mut self.groups, group)?;
        let message = if g.mode.unwrap_or(default).uses_sender_keys(g.replica.view()) {
            let sealed = g.keys.seal(
                &mut self.keyring,
                &mut g.replica,
                now_ms,
                plaintext,
                self.config.chains,
                rng,
            )?;
            Message::Chain(ChainPost {
                handoff: sealed.handoff,
                message: sealed.message,
            })
        } else {
            let payload = Payload::Message(plaintext.to_vec()).to_bytes();
            Message::Envelope(self.keyring.seal(
                &mut g.replica,
                now_ms,
                &payload,
                SealOptions::default(),
                rng,
            )?)
        };
        // Not recorded as seen: an envelope naming this device as sender is reported as a
        // duplicate on sight (it has no slot for its sender anyway), which saves a row per
        // message sent.
        let mut batch = Batch::default();
        self.note_group(group, &mut batch);
        self.commit(batch)?;
        Ok(message)
    }

    /// Receives bytes or text from any transport: one message's bytes, or text holding any
    /// number of armored blocks. Each item is routed by kind and group; what it did is
    /// reported as events, in order. Refused items change nothing and are reported as
    /// [`Event::Refused`].
    ///
    /// # Errors
    ///
    /// [`DeviceError::Unreadable`] if the input is neither (nothing changes); store
    /// failures.
    pub fn receive(&mut self, input: &[u8], now_ms: u64) -> Result<Vec<Event>, DeviceError> {
        self.usable()?;
        let (max, limits) = (self.config.max_message_len, self.config.keyring.limits);
        let mut batch = Batch::default();
        let blocks = std::str::from_utf8(input)
            .map(|text| wire::blocks(text, max))
            .unwrap_or_default();
        if blocks.is_empty() {
            let message =
                Message::from_bytes(input, max, limits).map_err(DeviceError::Unreadable)?;
            self.route(message, now_ms, &mut batch);
        }
        for (kind, body) in blocks {
            match body {
                Err(e) => batch.events.push(Event::Refused(Refusal::Armor(e))),
                Ok(body) => match Message::from_block(kind, &body, max, limits) {
                    Ok(message) => self.route(message, now_ms, &mut batch),
                    Err(e) => batch.events.push(Event::Refused(Refusal::Decode(e))),
                },
            }
        }
        self.commit(batch)
    }

    /// A sync message for `peer` about `group`, or `None` if there is nothing to say (see
    /// the rule in `spec/membership.md`, "Device sync"): this device's summary and the
    /// operations the peer lacks as far as this device knows. Call it whenever there is a
    /// chance to send; over a transport that loses, duplicates and reorders, two devices
    /// converge once three messages in a row get through, and then fall silent.
    ///
    /// # Errors
    ///
    /// [`DeviceError::NoSuchGroup`]; store failures (what was said is recorded).
    pub fn sync_message(
        &mut self,
        group: GroupId,
        peer: MemberId,
    ) -> Result<Option<Message>, DeviceError> {
        self.usable()?;
        let g = group_mut(&mut self.groups, group)?;
        let view = g.replica.view();
        let own = g
            .keys
            .own_handoff(view.digest())
            .filter(|_| view.contains(&peer));
        let holds = g.keys.holds(&peer);
        let state = g.peers.entry(peer).or_default();
        let Some(speech) = state.next(&g.replica, holds, own.map(|(chain, _)| chain)) else {
            return Ok(None);
        };
        state.sent(&speech.summary, holds);
        let write = peer_write(group, peer, state);
        let handoff = own
            .filter(|_| speech.handoff)
            .map(|(_, envelope)| envelope.clone());
        let message = SyncMessage::new(
            self.keyring.identity(),
            group,
            speech.summary,
            speech.ops,
            holds,
            handoff,
        );
        self.commit(Batch {
            writes: vec![write],
            ..Batch::default()
        })?;
        Ok(Some(Message::Sync(message)))
    }

    /// Lets time pass: held operations that fell due are logged, retired keys past their
    /// grace period are erased, envelopes waiting for time are retried.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub fn tick(&mut self, now_ms: u64) -> Result<Tick, DeviceError> {
        self.usable()?;
        let mut batch = Batch::default();
        let groups: Vec<GroupId> = self.groups.keys().copied().collect();
        for group in groups {
            let g = self.groups.get_mut(&group).expect("listed");
            let changes = g.replica.advance(now_ms);
            for sender in g.keys.erase_expired(now_ms, self.config.keyring.grace_ms) {
                batch.writes.push(chains_write(group, sender, &g.keys));
            }
            self.note_group(group, &mut batch);
            batch.changes(group, changes);
            self.retry_pending(group, now_ms, &mut batch);
        }
        if self.keyring.erase_expired(now_ms) > 0 {
            batch.writes.push(Write::Keyring(self.keyring.export()));
        }
        let events = self.commit(batch)?;
        Ok(Tick {
            events,
            next: self.next_deadline(),
        })
    }

    /// When something waits on time next (see [`Tick::next`]).
    pub fn next_deadline(&self) -> Option<u64> {
        let drift = self.config.replica.clock.max_drift_ms;
        let held = self
            .groups
            .values()
            .flat_map(|g| g.replica.held())
            .map(|op| op.op().timestamp.millis().saturating_sub(drift));
        let grace = self.config.keyring.grace_ms;
        let stamped_ahead = self
            .pending
            .values()
            .map(|w| w.stamp().millis().saturating_sub(drift));
        let chains_given_up = self.pending.values().filter_map(|w| match w {
            Waiting::Chain(m) => Some(m.header.stamp.millis().saturating_add(grace)),
            Waiting::Envelope(_) => None,
        });
        let chain_erasures = self
            .groups
            .values()
            .filter_map(|g| g.keys.next_erasure(grace));
        held.chain(stamped_ahead)
            .chain(chains_given_up)
            .chain(chain_erasures)
            .chain(self.keyring.next_erasure())
            .min()
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
        let keys = batch.writes.iter().any(|w| matches!(w, Write::Keyring(_)));
        let durability = if batch.own_op || keys {
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

    /// Makes one operation in `group` with `action` and commits it.
    fn act(
        &mut self,
        group: GroupId,
        action: impl FnOnce(
            &mut Replica,
            &Identity,
        )
            -> Result<(SignedOp, Vec<crate::group::Change>), crate::group::ActionError>,
    ) -> Result<Message, DeviceError> {
        self.usable()?;
        let g = group_mut(&mut self.groups, group)?;
        // The caller knows what its own action changed; envelopes it may release (from a
        // member it just added, say) open at the next `receive` or `tick`, which report them.
        let (op, _) = action(&mut g.replica, self.keyring.identity())?;
        let mut batch = Batch {
            own_op: true,
            ..Batch::default()
        };
        self.note_group(group, &mut batch);
        self.commit(batch)?;
        Ok(Message::Operations(vec![op]))
    }

    /// Writes where `group`'s operations went since the last note, and its clock.
    fn note_group(&mut self, group: GroupId, batch: &mut Batch) {
        let g = self.groups.get_mut(&group).expect("noted groups exist");
        for (op, status) in g.replica.take_placements() {
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
        batch.writes.push(Write::Clock {
            group,
            clock: g.replica.clock().last(),
        });
    }

    fn route(&mut self, message: Message, now_ms: u64, batch: &mut Batch) {
        match message {
            Message::Operations(ops) => {
                let mut by_group: BTreeMap<GroupId, Vec<SignedOp>> = BTreeMap::new();
                for op in ops {
                    by_group.entry(group_of(&op)).or_default().push(op);
                }
                for (group, ops) in by_group {
                    if self.groups.contains_key(&group) {
                        self.ingest(group, ops, now_ms, batch);
                    } else {
                        batch
                            .events
                            .push(Event::Refused(Refusal::UnknownGroup(group)));
                    }
                }
            }
            Message::Envelope(envelope) => {
                self.receive_waiting(Waiting::Envelope(envelope), now_ms, batch);
            }
            Message::Chain(post) => {
                if let Some(handoff) = post.handoff {
                    self.receive_waiting(Waiting::Envelope(handoff), now_ms, batch);
                }
                self.receive_waiting(Waiting::Chain(post.message), now_ms, batch);
            }
            Message::Bundle(bundle) => batch.events.push(Event::Bundle(bundle)),
            Message::Welcome(welcome) => self.join(welcome, now_ms, batch),
            Message::Sync(sync) => self.receive_sync(sync, now_ms, batch),
        }
    }

    /// Ingests operations of one known group, stores what its replica now holds, and
    /// retries the envelopes waiting in it.
    fn ingest(&mut self, group: GroupId, ops: Vec<SignedOp>, now_ms: u64, batch: &mut Batch) {
        let g = self.groups.get_mut(&group).expect("known group");
        let report = g.replica.ingest_batch(ops, now_ms);
        for result in report.results {
            if let Err(error) = result {
                batch
                    .events
                    .push(Event::Refused(Refusal::Operation { group, error }));
            }
        }
        self.note_group(group, batch);
        batch.changes(group, report.changes);
        self.retry_pending(group, now_ms, batch);
    }

    fn join(&mut self, welcome: Welcome, now_ms: u64, batch: &mut Batch) {
        let group = welcome.group;
        if self.groups.contains_key(&group) {
            self.ingest(group, welcome.ops, now_ms, batch);
            return;
        }
        let Some(genesis) = welcome
            .ops
            .iter()
            .find(|op| op.id().0 == group.0 && matches!(op.op().body, Body::Create { .. }))
            .cloned()
        else {
            batch
                .events
                .push(Event::Refused(Refusal::BadWelcome(group)));
            return;
        };
        let Ok(mut replica) = Replica::join(&genesis, self.config.replica, now_ms) else {
            batch
                .events
                .push(Event::Refused(Refusal::BadWelcome(group)));
            return;
        };
        replica.record_placements();
        replica.ingest_batch(welcome.ops, now_ms);
        if !replica.is_member(&self.id()) {
            batch
                .events
                .push(Event::Refused(Refusal::NotInvited(group)));
            return;
        }
        batch.writes.push(op_write(group, &genesis, Place::Logged));
        self.groups.insert(group, Group::new(replica));
        batch.events.push(Event::Joined(group));
        self.note_group(group, batch);
        self.retry_pending(group, now_ms, batch);
    }

    fn receive_sync(&mut self, sync: SyncMessage, now_ms: u64, batch: &mut Batch) {
        let (group, from) = (sync.group, sync.from);
        if !self.groups.contains_key(&group) {
            batch
                .events
                .push(Event::Refused(Refusal::UnknownGroup(group)));
            return;
        }
        let foreign_handoff = sync
            .handoff
            .as_ref()
            .is_some_and(|e| (e.header.group, e.header.sender) != (group, from));
        if from == self.id()
            || !sync.verify()
            || sync.ops.iter().any(|op| group_of(op) != group)
            || foreign_handoff
        {
            batch
                .events
                .push(Event::Refused(Refusal::BadSync { group, from }));
            return;
        }
        self.ingest(group, sync.ops, now_ms, batch);
        if let Some(handoff) = sync.handoff {
            self.receive_waiting(Waiting::Envelope(handoff), now_ms, batch);
        }
        let g = self.groups.get_mut(&group).expect("known group");
        let admitted = |peer: &MemberId| g.replica.published_keys(peer).next().is_some();
        let unknown = g.peers.keys().filter(|peer| !admitted(peer)).count();
        if !admitted(&from)
            && !g.peers.contains_key(&from)
            && unknown >= self.config.max_unknown_peers
        {
            batch
                .events
                .push(Event::Refused(Refusal::BadSync { group, from }));
            return;
        }
        let mine = g.replica.summary();
        let state = g.peers.entry(from).or_default();
        state.heard(sync.summary, sync.holds, &mine);
        batch.writes.push(peer_write(group, from, state));
        batch.events.push(Event::Synced { group, peer: from });
    }

    fn receive_waiting(&mut self, waiting: Waiting, now_ms: u64, batch: &mut Batch) {
        let id = waiting.id();
        let group = waiting.group();
        if self.seen.contains(&id)
            || self.pending.contains_key(&id)
            || waiting.sender() == self.id()
        {
            batch.events.push(Event::Duplicate(id));
            return;
        }
        match self.try_open(&waiting, now_ms, batch) {
            Ok(true) => self.retry_pending(group, now_ms, batch),
            Ok(false) => {}
            Err(reason) if waits(&reason) || !self.groups.contains_key(&group) => {
                let sender = waiting.sender();
                let from_sender = self
                    .pending
                    .values()
                    .filter(|w| w.sender() == sender)
                    .count();
                if self.pending.len() >= self.config.max_pending
                    || from_sender >= self.config.max_pending_per_sender
                {
                    batch.events.push(Event::Refused(Refusal::PendingFull(id)));
                    return;
                }
                batch.writes.push(Write::Pending {
                    id,
                    group,
                    bytes: waiting.to_bytes(),
                });
                batch.events.push(Event::Pending { group, id, reason });
                self.pending.insert(id, waiting);
            }
            Err(error) => batch
                .events
                .push(Event::Refused(Refusal::Envelope { group, id, error })),
        }
    }

    /// Opens a message of a known group and records it as seen. Returns whether it handed
    /// over a chain new here (so that messages waiting for it may open).
    fn try_open(
        &mut self,
        waiting: &Waiting,
        now_ms: u64,
        batch: &mut Batch,
    ) -> Result<bool, OpenError> {
        let group = waiting.group();
        let Some(g) = self.groups.get_mut(&group) else {
            return Err(OpenError::WrongGroup {
                expected: group,
                found: group,
            });
        };
        let id = waiting.id();
        let (chains, grace) = (self.config.chains, self.config.keyring.grace_ms);
        let mut installed = false;
        let (opened, result) = match waiting {
            Waiting::Envelope(envelope) => {
                let mut opened = self.keyring.open(envelope, &mut g.replica, now_ms)?;
                let payload = take_payload(&mut opened.plaintext);
                // The envelope is authentic and opened: from here on it is seen, whatever
                // its payload says.
                let result = match payload {
                    Ok(Payload::Message(text)) => Ok(Some(text)),
                    Ok(Payload::Chain(handoff)) => {
                        match g.keys.install(
                            &opened,
                            envelope.header.view,
                            &handoff,
                            chains,
                            now_ms,
                        ) {
                            Ok(new) => {
                                if new {
                                    batch
                                        .writes
                                        .push(chains_write(group, opened.sender, &g.keys));
                                }
                                batch.events.push(Event::Chain {
                                    group,
                                    sender: opened.sender,
                                    new,
                                });
                                installed = new;
                                Ok(None)
                            }
                            Err(error) => Err(OpenError::Chain(error)),
                        }
                    }
                    Err(error) => Err(error),
                };
                (opened, result)
            }
            Waiting::Chain(message) => {
                let policy = self.keyring.sender_policy();
                let mut opened = g
                    .keys
                    .open(&mut g.replica, policy, message, now_ms, grace)?;
                batch
                    .writes
                    .push(chains_write(group, opened.sender, &g.keys));
                let text = std::mem::take(&mut opened.plaintext);
                (opened, Ok(Some(text)))
            }
        };
        self.seen.insert(id);
        batch.writes.push(Write::Seen(id));
        self.note_group(group, batch);
        match result? {
            Some(plaintext) => {
                batch.events.push(Event::Message(Received {
                    group,
                    id,
                    sender: opened.sender,
                    standing: opened.standing,
                    stamp: opened.stamp,
                    same_view: opened.same_view,
                    signed: opened.signed,
                    plaintext,
                }));
                Ok(false)
            }
            None => Ok(installed),
        }
    }

    /// Tries every message waiting in `group`, again while some hands over a new chain.
    fn retry_pending(&mut self, group: GroupId, now_ms: u64, batch: &mut Batch) {
        loop {
            let waiting: Vec<EnvelopeId> = self
                .pending
                .iter()
                .filter(|(_, w)| w.group() == group)
                .map(|(id, _)| *id)
                .collect();
            let mut new_chain = false;
            for id in waiting {
                let message = self.pending.remove(&id).expect("listed");
                match self.try_open(&message, now_ms, batch) {
                    Ok(new) => {
                        new_chain |= new;
                        batch.writes.push(Write::DeletePending(id));
                    }
                    Err(reason) if waits(&reason) => {
                        self.pending.insert(id, message);
                    }
                    Err(error) => {
                        batch.writes.push(Write::DeletePending(id));
                        batch
                            .events
                            .push(Event::Refused(Refusal::Envelope { group, id, error }));
                    }
                }
            }
            if !new_chain {
                return;
            }
        }
    }
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

/// Whether a message refused with `reason` may open later: its sender's add, key or
/// position is in operations not received yet, its chain has not arrived, or its stamp is
/// ahead of local time.
fn waits(reason: &OpenError) -> bool {
    matches!(
        reason,
        OpenError::UnknownSenderKey { .. }
            | OpenError::StampTooFarAhead(_)
            | OpenError::Position(PositionError::Unknown { .. } | PositionError::NeverAMember(_))
            | OpenError::Chain(ChainError::UnknownChain)
    )
}

/// The payload of an opened envelope, taken out of `plaintext` (an application message
/// without a copy; a handoff's key bytes are zeroized).
fn take_payload(plaintext: &mut Vec<u8>) -> Result<Payload, OpenError> {
    if plaintext.first() == Some(&0) {
        plaintext.remove(0);
        return Ok(Payload::Message(std::mem::take(plaintext)));
    }
    let payload = Payload::from_bytes(plaintext).map_err(|e| {
        OpenError::Malformed(codec::DecodeError::Invalid {
            reason: format!("envelope payload: {e}"),
        })
    });
    plaintext.zeroize();
    payload
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

/// The group an operation belongs to (a genesis names none: its id is the group).
fn group_of(op: &SignedOp) -> GroupId {
    match op.op().body {
        Body::Create { .. } => GroupId(op.id().0),
        _ => op.op().group,
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

fn peer_write(group: GroupId, peer: MemberId, state: &Peer) -> Write {
    Write::Peer {
        group,
        peer,
        state: codec::encode(state),
    }
}

fn op_write(group: GroupId, op: &SignedOp, place: Place) -> Write {
    Write::Op {
        group,
        id: op.id(),
        place,
        bytes: op.to_cbor(),
    }
}
