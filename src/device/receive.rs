//! What a device receives: routing each item by kind and group, ingesting operations,
//! joining from welcomes, taking sync messages, opening envelopes and chain messages or
//! keeping them waiting.

use super::peer::Peer;
use super::{
    admitted, chains_write, outside, peer_write, Batch, Device, DeviceError, Event, Message,
    Queued, Received, Refusal, Rooms, Store, SyncMessage, Waiting, Wake, Write,
};
use crate::codec::DecodeError;
use crate::crypto::{ChainError, EnvelopeId, OpenError, Payload};
use crate::group::{Body, Change, GroupId, PositionError, SignedOp, MAX_AUTHORS};
use crate::keys::MemberId;
use crate::wire;
use std::collections::{BTreeMap, BTreeSet};
use zeroize::Zeroize;

/// What [`Device::receive`] says of text that holds no armored block.
const NO_BLOCK: &str = "text without any -----BEGIN SPLITSAFE <KIND>----- block \
                        (a mail body must be MIME-decoded before it is received)";

impl<S: Store> Device<S> {
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
        let text = std::str::from_utf8(input);
        let blocks = text.map(|text| wire::blocks(text, max)).unwrap_or_default();
        if blocks.is_empty() {
            // A message's bytes are never UTF-8 (its CBOR starts with a map's byte, 0xA1,
            // which no UTF-8 text does): text without a block is text, not a message.
            if text.is_ok() {
                return Err(DeviceError::Unreadable(DecodeError::Invalid {
                    reason: NO_BLOCK.into(),
                }));
            }
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
                    let before = batch.events.len();
                    self.receive_waiting(Waiting::Envelope(handoff), now_ms, batch);
                    // A chain handed on to members whose keys changed is addressed to them
                    // alone: for everyone else it is nothing to report.
                    if let [Event::Refused(Refusal::Envelope {
                        error: OpenError::NotAddressedToMe,
                        ..
                    })] = &batch.events[before..]
                    {
                        batch.events.truncate(before);
                    }
                }
                self.receive_waiting(Waiting::Chain(post.message), now_ms, batch);
            }
            Message::Bundle(bundle) => batch.events.push(Event::Bundle(bundle)),
            Message::Welcome(welcome) => self.welcomed(welcome, now_ms, batch),
            Message::Sync(sync) => self.receive_sync(sync, now_ms, batch),
        }
    }

    /// Ingests operations of one known group, stores what its replica now holds, and
    /// retries the envelopes waiting in it.
    pub(super) fn ingest(
        &mut self,
        group: GroupId,
        ops: Vec<SignedOp>,
        now_ms: u64,
        batch: &mut Batch,
    ) {
        // Whoever these operations are by or about: the messages waiting for them (their
        // keys, admissions, operations) are theirs; and whoever the view changed for.
        let mut touched: BTreeSet<MemberId> = ops
            .iter()
            .flat_map(|op| [Some(op.op().author), op.op().body.subject().map(|(m, _)| m)])
            .flatten()
            .collect();
        let g = self.groups.get_mut(&group).expect("known group");
        let report = g.replica.ingest_batch(ops, now_ms);
        touched.extend(report.changes.iter().map(Change::member));
        for result in report.results {
            if let Err(error) = result {
                batch
                    .events
                    .push(Event::Refused(Refusal::Operation { group, error }));
            }
        }
        self.note_group(group, batch);
        batch.changes(group, report.changes);
        self.republish(group, now_ms, batch);
        self.rejudge(group, batch);
        self.retry_pending(group, Wake::Senders(touched), now_ms, batch);
    }

    fn receive_sync(&mut self, mut sync: SyncMessage, now_ms: u64, batch: &mut Batch) {
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
            || !sync.is_well_formed()
            || !sync.verify()
            || sync.ops.iter().any(|op| group_of(op) != group)
            || foreign_handoff
        {
            batch
                .events
                .push(Event::Refused(Refusal::BadSync { group, from }));
            return;
        }
        // Every bound is checked before anything is ingested: a refused sync message changes
        // nothing.
        let g = self.groups.get(&group).expect("known group");
        let unknown = || {
            let peers = g.peers.keys();
            peers.filter(|peer| !admitted(&g.replica, peer)).count()
        };
        // What a sender not seen admitted can make this device keep is what it says it
        // holds: no more authors than twice this device's own, and 32 (a member of the same
        // group summarises about the same authors).
        let max = if admitted(&g.replica, &from) {
            MAX_AUTHORS
        } else {
            2 * g.replica.summary().authors.len() as u64 + 32
        };
        let known = g.peers.get(&from);
        let over = match known {
            Some(peer) => peer.check(&sync, max),
            None => Peer::default().check(&sync, max),
        }
        .is_err();
        let crowded = known.is_none()
            && !admitted(&g.replica, &from)
            && unknown() >= self.config.max_unknown_peers;
        if over || crowded {
            batch
                .events
                .push(Event::Refused(Refusal::BadSync { group, from }));
            return;
        }
        let ops = std::mem::take(&mut sync.ops);
        let sent_ops = !ops.is_empty();
        self.ingest(group, ops, now_ms, batch);
        if let Some(handoff) = sync.handoff.take() {
            self.receive_waiting(Waiting::Envelope(handoff), now_ms, batch);
        }
        let g = self.groups.get_mut(&group).expect("known group");
        let mine = g.replica.summary();
        let state = g.peers.entry(from).or_default();
        state.heard(&sync, sent_ops, &mine, now_ms, max);
        batch.writes.push(peer_write(group, from, state, &mine));
        batch.events.push(Event::Synced { group, peer: from });
    }

    fn receive_waiting(&mut self, waiting: Waiting, now_ms: u64, batch: &mut Batch) {
        let id = waiting.id();
        let group = waiting.group();
        // Only what was opened, or these very bytes waiting, make a duplicate: another copy
        // of a waiting message (a forged signature, another reader's slot altered) waits
        // beside it, and whichever opens first makes the others duplicates. (The copy id
        // encodes and hashes the whole message: not worth it with nothing waiting.)
        if self.seen.contains(&id)
            || (!self.pending.is_empty() && self.pending.contains_key(&waiting.copy_id()))
            || waiting.sender() == self.id()
        {
            batch.events.push(Event::Duplicate(id));
            return;
        }
        match self.try_open(&waiting, id, now_ms, batch) {
            Ok(true) => {
                let sender = BTreeSet::from([waiting.sender()]);
                self.retry_pending(group, Wake::Senders(sender), now_ms, batch);
            }
            Ok(false) => {}
            Err(reason) if waits(&reason) || !self.groups.contains_key(&group) => {
                let authentic = match authenticated(&waiting, &reason) {
                    Ok(authentic) => authentic,
                    Err(error) => {
                        let refusal = Refusal::Envelope { group, id, error };
                        batch.events.push(Event::Refused(refusal));
                        return;
                    }
                };
                let bytes = waiting.to_bytes();
                let queued = Queued {
                    outside: self.outside(&waiting),
                    waiting,
                    id,
                    arrived_ms: now_ms,
                    authentic,
                    len: bytes.len(),
                };
                let Some(dropped) = self.rooms().make_room(self.pending.iter(), &queued) else {
                    batch.events.push(Event::Refused(Refusal::PendingFull(id)));
                    return;
                };
                for copy in dropped {
                    self.give_up(copy, |group, id| Refusal::Displaced { group, id }, batch);
                }
                let copy = queued.waiting.copy_id();
                batch.writes.push(Write::Pending {
                    id: copy,
                    group,
                    arrived_ms: now_ms,
                    authentic,
                    bytes,
                });
                batch.events.push(Event::Pending { group, id, reason });
                self.pending.insert(copy, queued);
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
        id: EnvelopeId,
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
                let received = Received {
                    group,
                    id,
                    sender: opened.sender,
                    standing: opened.standing,
                    position: opened.position,
                    stamp: opened.stamp,
                    same_view: opened.same_view,
                    signed: opened.signed,
                    plaintext,
                };
                let window = self.config.rejudge_window;
                self.inbox.deliver(&received, opened.view, window, batch);
                batch.events.push(Event::Message(received));
                Ok(false)
            }
            None => Ok(installed),
        }
    }

    /// Whether `waiting` belongs in the pending queue's outside room: its group is not
    /// joined here, or its claimed sender was never admitted in it. Nobody outside a group
    /// can so fill the members' room ([`DeviceConfig::max_pending_outside`]).
    fn outside(&self, waiting: &Waiting) -> bool {
        outside(&self.groups, waiting)
    }

    /// Drops the waiting message `copy`, reporting it refused as `why` says.
    pub(super) fn give_up(
        &mut self,
        copy: EnvelopeId,
        why: fn(GroupId, EnvelopeId) -> Refusal,
        batch: &mut Batch,
    ) {
        let queued = self.pending.remove(&copy).expect("waiting");
        batch.writes.push(Write::DeletePending(copy));
        let refusal = why(queued.waiting.group(), queued.id);
        batch.events.push(Event::Refused(refusal));
    }

    fn rooms(&self) -> Rooms {
        let c = &self.config;
        Rooms {
            count: (c.max_pending, c.max_pending_outside),
            bytes: (c.max_pending_bytes, c.max_pending_bytes / 16),
            per_sender: c.max_pending_per_sender,
        }
    }

    /// Tries the messages waiting in `group` that `wake` names, then, while some hand over a
    /// new chain, those of the chains' senders (the queue is keyed by copy id: see
    /// [`Waiting::copy_id`]).
    pub(super) fn retry_pending(
        &mut self,
        group: GroupId,
        mut wake: Wake,
        now_ms: u64,
        batch: &mut Batch,
    ) {
        loop {
            let waiting = self.pending.waking(group, &wake);
            let mut new_chains = BTreeSet::new();
            for copy in waiting {
                let queued = self.pending.remove(&copy).expect("listed");
                let (message, id) = (&queued.waiting, queued.id);
                if self.seen.contains(&id) {
                    // Another copy of it opened.
                    batch.writes.push(Write::DeletePending(copy));
                    continue;
                }
                let g = self.groups.get(&group).expect("retried in a known group");
                if g.replica.clock().check(message.stamp(), now_ms).is_err() {
                    // Still stamped ahead: trying costs its decryption and cannot succeed.
                    self.pending.insert(copy, queued);
                    continue;
                }
                match self.try_open(message, id, now_ms, batch) {
                    Ok(new) => {
                        if new {
                            new_chains.insert(message.sender());
                        }
                        batch.writes.push(Write::DeletePending(copy));
                    }
                    Err(reason) if waits(&reason) => {
                        let mut queued = queued;
                        queued.outside = outside(&self.groups, &queued.waiting);
                        if !queued.authentic && authenticates_before(&reason) {
                            // Its sender's key arrived, and it authenticated: it waits on
                            // as a message that is never dropped to make room.
                            queued.authentic = true;
                            batch.writes.push(Write::Pending {
                                id: copy,
                                group,
                                arrived_ms: queued.arrived_ms,
                                authentic: true,
                                bytes: queued.waiting.to_bytes(),
                            });
                        }
                        self.pending.insert(copy, queued);
                    }
                    Err(error) => {
                        batch.writes.push(Write::DeletePending(copy));
                        batch
                            .events
                            .push(Event::Refused(Refusal::Envelope { group, id, error }));
                    }
                }
            }
            if new_chains.is_empty() {
                return;
            }
            wake = Wake::Senders(new_chains);
        }
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

/// Whether a message that waits for `reason` has authenticated its claimed sender: an
/// envelope or chain message that opened far enough to be found waiting for operations or
/// time did; one waiting for its sender's key, admission, group or chain did only if it
/// carries its sender's valid signature (checked here, once: a bad one is refused at once).
fn authenticated(waiting: &Waiting, reason: &OpenError) -> Result<bool, OpenError> {
    match waiting {
        _ if authenticates_before(reason) => Ok(true),
        Waiting::Envelope(envelope) => envelope.check_signature(),
        Waiting::Chain(_) => Ok(false),
    }
}

/// Whether opening refuses with `reason` only after the message authenticates (see
/// [`Keyring::open`](crate::crypto::Keyring::open), [`SenderKeys::open`](crate::crypto::SenderKeys::open)).
fn authenticates_before(reason: &OpenError) -> bool {
    matches!(
        reason,
        OpenError::Position(PositionError::Unknown { .. }) | OpenError::StampTooFarAhead(_)
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
        OpenError::Malformed(DecodeError::Invalid {
            reason: format!("envelope payload: {e}"),
        })
    });
    plaintext.zeroize();
    payload
}

/// The group an operation belongs to (a genesis names none: its id is the group).
fn group_of(op: &SignedOp) -> GroupId {
    match op.op().body {
        Body::Create { .. } => GroupId(op.id().0),
        _ => op.op().group,
    }
}
