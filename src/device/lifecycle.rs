//! Making a device and reopening it from its store.

use super::invitations::{self, Offer};
use super::peer::Peer;
use super::{
    outside, Device, DeviceConfig, DeviceError, Durability, Group, Inbox, Message, MessageMode,
    Place, Queue, Queued, Store, StoreError, Stored, Waiting, Write,
};
use crate::codec;
use crate::crypto::{Keyring, SenderKeys};
use crate::group::{Replica, SignedOp, Status};
use crate::keys::{Identity, MemberId};
use rand_core::CryptoRng;
use std::collections::{BTreeMap, BTreeSet};

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
            pending: Queue::default(),
            seen: BTreeSet::new(),
            invitations: BTreeMap::new(),
            inbox: Inbox::default(),
            poisoned: false,
        })
    }

    /// Reopens the device `store` holds, or, if it holds none, creates one there with a new
    /// identity drawn from `rng`: what an application does at every start.
    ///
    /// ```
    /// use splitsafe::device::{Device, DeviceConfig, MemoryStore};
    ///
    /// let mut rng = splitsafe::rng::os_rng();
    /// let config = DeviceConfig::default();
    /// let first = Device::open_or_create(MemoryStore::default(), config, &mut rng, 1)?;
    /// let id = first.id();
    /// let again = Device::open_or_create(first.into_store(), config, &mut rng, 2)?;
    /// assert_eq!(again.id(), id);
    /// # Ok::<(), splitsafe::device::DeviceError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`open`](Self::open) and [`create`](Self::create).
    pub fn open_or_create<R: CryptoRng + ?Sized>(
        mut store: S,
        config: DeviceConfig,
        rng: &mut R,
        now_ms: u64,
    ) -> Result<Self, DeviceError> {
        match store.load()? {
            Some(stored) => Self::restore(store, stored, config),
            None => {
                let identity = Identity::generate(rng);
                Self::create(store, identity, config, rng, now_ms)
            }
        }
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
        Self::restore(store, stored, config)
    }

    /// The device `stored` describes, kept in `store`.
    fn restore(store: S, stored: Stored, config: DeviceConfig) -> Result<Self, DeviceError> {
        let corrupt = |what: String| DeviceError::Store(StoreError::Corrupt(what));
        let keyring = Keyring::import(&stored.keyring, config.keyring)
            .map_err(|e| corrupt(format!("keyring: {e}")))?;
        let mut groups = BTreeMap::new();
        for (id, group) in &stored.groups {
            let mut placements = Vec::with_capacity(group.ops.len());
            for (id, (place, bytes)) in &group.ops {
                let op = SignedOp::from_stored_with_id(bytes, *id)
                    .map_err(|e| corrupt(format!("op: {e}")))?;
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
            let mut keys =
                SenderKeys::import(*id, held).map_err(|e| corrupt(format!("chains: {e}")))?;
            if let Some(own) = stored.own_chains.get(id) {
                keys.restore_own(own, config.keyring.limits)
                    .map_err(|e| corrupt(format!("own chain: {e}")))?;
            }
            let mode = group
                .mode
                .map(|code| {
                    MessageMode::from_code(code).ok_or_else(|| corrupt("a message mode".into()))
                })
                .transpose()?;
            let peers: BTreeMap<MemberId, Peer> = stored
                .peers
                .range((*id, MemberId([0; 32]))..=(*id, MemberId([0xFF; 32])))
                .map(|((_, peer), bytes)| {
                    codec::decode_stored(bytes, config.max_message_len)
                        .map(|state| (*peer, state))
                        .map_err(|e| corrupt(format!("peer state: {e}")))
                })
                .collect::<Result<_, _>>()?;
            // Stored as differences from the summary of the operations stored with them.
            let peers = match peers.values().any(Peer::follows_stored_summary) {
                true => {
                    let mine = replica.summary();
                    let restored = |(peer, state): (MemberId, Peer)| (peer, state.restored(&mine));
                    peers.into_iter().map(restored).collect()
                }
                false => peers,
            };
            groups.insert(
                *id,
                Group {
                    replica,
                    peers,
                    keys,
                    mode,
                    stored_clock: Some(group.clock),
                },
            );
        }
        let mut pending = Queue::default();
        for (copy, row) in &stored.pending {
            let waiting = Waiting::from_bytes(&row.bytes, config.keyring.limits)
                .map_err(|e| corrupt(format!("pending message: {e}")))?;
            let queued = Queued {
                id: waiting.id(),
                outside: outside(&groups, &waiting),
                waiting,
                arrived_ms: row.arrived_ms,
                authentic: row.authentic,
                len: row.bytes.len(),
            };
            pending.insert(*copy, queued);
        }
        let me = keyring.identity().id();
        let mut invitations = BTreeMap::new();
        for (group, (arrived_ms, bytes)) in &stored.invitations {
            let welcome =
                match Message::from_bytes(bytes, config.max_message_len, config.keyring.limits) {
                    Ok(Message::Welcome(welcome)) => welcome,
                    _ => return Err(corrupt(format!("invitation to {group}"))),
                };
            // Checked on arrival: checked again only to say what it offers (and as of its
            // arrival, so that it reads the same).
            let (_, _, invited) = invitations::check(&welcome, &me, &config, *arrived_ms)
                .map_err(|e| corrupt(format!("invitation to {group}: {e:?}")))?;
            let offer = Offer {
                welcome,
                arrived_ms: *arrived_ms,
                len: bytes.len(),
                invited,
            };
            invitations.insert(*group, offer);
        }
        Ok(Self {
            store,
            config,
            keyring,
            groups,
            pending,
            seen: stored.seen,
            invitations,
            inbox: Inbox::restore(&stored.deliveries, &stored.judged, config.max_message_len)?,
            poisoned: false,
        })
    }
}
