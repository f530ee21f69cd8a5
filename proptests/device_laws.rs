//! Devices under random schedules: an owner and two members invite, remove, re-add, rotate,
//! send, restart, and exchange everything over a network that loses, duplicates and
//! reorders; then they sync until silent. Laws, in both message modes (pairwise envelopes
//! and sender keys): every device that stayed in the group ends with one view; nobody opens
//! a message sealed to a view without it; every message delivered to a device of the
//! sender's view is opened there once everything is synced (or refused by its policy; in
//! sender-key mode, or given up after the grace period when the chain's handoff never
//! reached it); nothing is left pending; and the in-memory and SQLite stores give the same
//! events and states, restarts included.

use crate::support;

use proptest::prelude::*;
use splitsafe::crypto::{ChainError, ChainId, EnvelopeId, Limits, OpenError};
use splitsafe::device::{
    Device, DeviceConfig, Event, MemoryStore, Message, MessageMode, Refusal, SqliteStore, Store,
};
use splitsafe::group::GroupId;
use splitsafe::keys::MemberId;
use std::collections::{BTreeMap, BTreeSet};
use support::crypto::{rng, Rng};
use support::group::{identity, T0};

const DEVICES: usize = 3;

#[derive(Clone, Copy, Debug)]
enum Step {
    /// Device sends a message to the group.
    Send(u8),
    /// The owner removes member 1 or 2.
    Remove(u8),
    /// The owner re-adds member 1 or 2 (with a welcome).
    ReAdd(u8),
    /// A device rotates its key.
    Rotate(u8),
    /// The network delivers the packet at this index (mod queue length), and keeps a copy
    /// if `duplicate`.
    Deliver { index: u16, duplicate: bool },
    /// The network loses the packet at this index.
    Lose(u16),
    /// A device restarts from its store.
    Restart(u8),
    /// Two devices sync until both are silent (lossless).
    Sync(u8, u8),
    /// Time passes (what a restart is replaced with, to check it changes nothing).
    Idle,
}

fn step() -> impl Strategy<Value = Step> {
    let device = 0u8..DEVICES as u8;
    let member = 1u8..DEVICES as u8;
    prop_oneof![
        3 => device.clone().prop_map(Step::Send),
        1 => member.clone().prop_map(Step::Remove),
        1 => member.prop_map(Step::ReAdd),
        1 => device.clone().prop_map(Step::Rotate),
        6 => (any::<u16>(), any::<bool>()).prop_map(|(index, duplicate)| Step::Deliver { index, duplicate }),
        1 => any::<u16>().prop_map(Step::Lose),
        1 => device.clone().prop_map(Step::Restart),
        1 => (device.clone(), device).prop_map(|(a, b)| Step::Sync(a, b)),
    ]
}

/// A message as sealed: its sender, the view it was sealed to, and its chain and index in
/// sender-key mode.
struct Sealed {
    sender: usize,
    view: BTreeSet<MemberId>,
    chain: Option<(ChainId, u32)>,
}

struct World<S: Store> {
    devices: Vec<Option<Device<S>>>,
    group: GroupId,
    /// Packets in flight: (to, bytes).
    network: Vec<(usize, Vec<u8>)>,
    sealed: BTreeMap<Vec<u8>, Sealed>,
    /// The plaintext of each envelope sealed, by envelope id.
    texts: BTreeMap<EnvelopeId, Vec<u8>>,
    /// What each device reported, in order (as text: compared across stores).
    log: Vec<String>,
    /// Per device, the plaintexts it opened, refused by its sender policy, gave up (chain
    /// never arrived), and was handed.
    opened: Vec<BTreeSet<Vec<u8>>>,
    refused: Vec<BTreeSet<Vec<u8>>>,
    given_up: Vec<BTreeSet<Vec<u8>>>,
    delivered: Vec<BTreeSet<Vec<u8>>>,
    /// The chain each handoff envelope hands out and the index it hands it from, and per
    /// device the (chain, index) of each handoff that reached it.
    handoffs: BTreeMap<EnvelopeId, (ChainId, u32)>,
    handed: Vec<BTreeSet<(ChainId, u32)>>,
    config: DeviceConfig,
    now: u64,
    rng: Rng,
}

impl<S: Store> World<S> {
    fn new(stores: Vec<S>, seed: u64, messages: MessageMode) -> Self {
        let mut r = rng(seed);
        let config = DeviceConfig {
            messages,
            ..DeviceConfig::default()
        };
        let mut devices: Vec<Device<S>> = stores
            .into_iter()
            .enumerate()
            .map(|(i, store)| Device::create(store, identity(i as u8), config, &mut r, T0).unwrap())
            .collect();
        let group = devices[0].create_group(&mut r, T0).unwrap();
        let mut world = Self {
            devices: Vec::new(),
            group,
            network: Vec::new(),
            sealed: BTreeMap::new(),
            texts: BTreeMap::new(),
            log: Vec::new(),
            opened: vec![BTreeSet::new(); DEVICES],
            refused: vec![BTreeSet::new(); DEVICES],
            given_up: vec![BTreeSet::new(); DEVICES],
            delivered: vec![BTreeSet::new(); DEVICES],
            handoffs: BTreeMap::new(),
            handed: vec![BTreeSet::new(); DEVICES],
            config,
            now: T0 + 1,
            rng: r,
        };
        for i in 1..DEVICES {
            let bundle = devices[i].bundle();
            let invitation = devices[0].invite(group, bundle, world.now).unwrap();
            let events = support::device::join(&mut devices[i], &invitation.welcome, world.now);
            world.note(i, &events);
            world.broadcast(0, &invitation.add);
        }
        world.devices = devices.into_iter().map(Some).collect();
        world
    }

    fn device(&mut self, i: usize) -> &mut Device<S> {
        self.devices[i].as_mut().unwrap()
    }

    fn broadcast(&mut self, from: usize, message: &Message) {
        for to in (0..DEVICES).filter(|&to| to != from) {
            self.network.push((to, message.to_bytes()));
        }
    }

    fn note(&mut self, device: usize, events: &[Event]) {
        for event in events {
            match event {
                Event::Message(m) => {
                    self.opened[device].insert(m.plaintext.clone());
                }
                Event::Refused(Refusal::Envelope {
                    id,
                    error: OpenError::SenderRefused { .. },
                    ..
                }) => {
                    // A refused handoff carries no text.
                    if let Some(text) = self.texts.get(id) {
                        self.refused[device].insert(text.clone());
                    }
                }
                Event::Refused(Refusal::Envelope {
                    id,
                    error: OpenError::Chain(ChainError::NeverArrived),
                    ..
                }) => {
                    self.given_up[device].insert(self.texts[id].clone());
                }
                _ => {}
            }
            self.log.push(format!("{device}: {event:?}"));
        }
    }

    fn receive(&mut self, to: usize, bytes: &[u8]) -> Vec<Event> {
        let now = self.now;
        let device = self.device(to);
        let mut events = device.receive(bytes, now).unwrap();
        // Every invitation (a re-add's welcome) is accepted, as its user would.
        support::device::accept_invitations(device, &mut events, now);
        self.note(to, &events);
        events
    }

    /// Notes `handoff` as handed to `to` if `events` (of receiving it) show it was for `to`:
    /// a chain handed on to members whose keys changed is addressed to them alone, and the
    /// others report nothing of it.
    fn note_handoff(&mut self, to: usize, handoff: EnvelopeId, events: &[Event]) {
        let addressed = events.iter().any(|event| match event {
            Event::Chain { .. } => true,
            Event::Pending { id, .. } | Event::Refused(Refusal::Envelope { id, .. }) => {
                *id == handoff
            }
            _ => false,
        });
        if addressed {
            self.handed[to].insert(self.handoffs[&handoff]);
        }
    }

    fn run(&mut self, step: Step) {
        self.now += 1_000;
        let (now, group) = (self.now, self.group);
        match step {
            Step::Send(from) => {
                let from = usize::from(from);
                let text = format!("message {} from {from}", self.sealed.len()).into_bytes();
                let view: BTreeSet<MemberId> = self
                    .device(from)
                    .view(group)
                    .unwrap()
                    .members()
                    .map(|(m, _)| *m)
                    .collect();
                let mut r = self.rng.clone();
                let result = self.device(from).send(group, &text, &mut r, now);
                self.rng = r;
                if let Ok(message) = result {
                    let (id, chain) = match &message.message {
                        Message::Envelope(envelope) => (envelope.id(), None),
                        Message::Chain(post) => {
                            let header = &post.message.header;
                            let chain = (header.chain, header.index);
                            // A handoff hands the chain from the index of the message it
                            // comes with (a chain handed again to a changed key, from then).
                            if let Some(handoff) = &post.handoff {
                                self.handoffs.insert(handoff.id(), chain);
                            }
                            (post.message.id(), Some(chain))
                        }
                        other => panic!("send gave {other:?}"),
                    };
                    self.texts.insert(id, text.clone());
                    self.sealed.insert(
                        text,
                        Sealed {
                            sender: from,
                            view,
                            chain,
                        },
                    );
                    self.broadcast(from, &message);
                }
            }
            Step::Remove(who) => {
                let id = identity(who).id();
                if let Ok(message) = self.device(0).remove(group, id, now) {
                    self.broadcast(0, &message);
                }
            }
            Step::ReAdd(who) => {
                let bundle = self.device(usize::from(who)).bundle();
                if let Ok(invitation) = self.device(0).invite(group, bundle, now) {
                    self.broadcast(0, &invitation.add);
                    self.network
                        .push((usize::from(who), invitation.welcome.to_bytes()));
                }
            }
            Step::Rotate(who) => {
                let mut r = self.rng.clone();
                let published = self.device(usize::from(who)).rotate(&mut r, now).unwrap();
                self.rng = r;
                for message in published {
                    self.broadcast(usize::from(who), &message);
                }
            }
            Step::Deliver { index, duplicate } => {
                if self.network.is_empty() {
                    return;
                }
                let at = usize::from(index) % self.network.len();
                let (to, bytes) = if duplicate {
                    self.network[at].clone()
                } else {
                    self.network.remove(at)
                };
                self.deliver(to, &bytes);
            }
            Step::Lose(index) => {
                if !self.network.is_empty() {
                    let at = usize::from(index) % self.network.len();
                    self.network.remove(at);
                }
            }
            Step::Restart(who) => {
                let who = usize::from(who);
                let store = self.devices[who].take().unwrap().into_store();
                self.devices[who] = Some(Device::open(store, self.config).unwrap());
            }
            Step::Sync(a, b) => self.sync(usize::from(a), usize::from(b)),
            Step::Idle => {}
        }
    }

    fn deliver(&mut self, to: usize, bytes: &[u8]) {
        match Message::from_bytes(bytes, 1 << 20, Limits::default()) {
            Ok(Message::Envelope(envelope)) => {
                let text = self.texts[&envelope.id()].clone();
                self.delivered[to].insert(text);
            }
            Ok(Message::Chain(post)) => {
                let text = self.texts[&post.message.id()].clone();
                self.delivered[to].insert(text);
                let events = self.receive(to, bytes);
                if let Some(handoff) = post.handoff {
                    self.note_handoff(to, handoff.id(), &events);
                }
                return;
            }
            _ => {}
        }
        self.receive(to, bytes);
    }

    fn sync(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        let group = self.group;
        for _ in 0..8 {
            let from_a = self
                .device(a)
                .sync_message(group, identity(b as u8).id())
                .unwrap();
            let from_b = self
                .device(b)
                .sync_message(group, identity(a as u8).id())
                .unwrap();
            if from_a.is_none() && from_b.is_none() {
                return;
            }
            for (to, message) in [(b, from_a), (a, from_b)] {
                if let Some(message) = message {
                    let events = self.receive(to, &message.to_bytes());
                    if let Message::Sync(sync) = &message {
                        if let Some(handoff) = &sync.handoff {
                            self.note_handoff(to, handoff.id(), &events);
                        }
                    }
                }
            }
        }
        panic!("sync between {a} and {b} did not fall silent");
    }

    /// Delivers what is still in flight, syncs every pair until nothing changes, then lets
    /// time release what waits on it.
    fn heal(&mut self) {
        for (to, bytes) in std::mem::take(&mut self.network) {
            self.deliver(to, &bytes);
        }
        for _ in 0..3 {
            for a in 0..DEVICES {
                for b in a + 1..DEVICES {
                    self.sync(a, b);
                }
            }
        }
        // Past the grace period: chain messages whose chain never arrived are given up.
        self.now += self.config.keyring.grace_ms + 3_600_000;
        for i in 0..DEVICES {
            let now = self.now;
            let tick = self.device(i).tick(now).unwrap();
            self.note(i, &tick.events);
        }
    }

    /// Each device's replica, saved and hashed (equal hashes: equal replicas).
    fn states(&mut self) -> Vec<String> {
        let group = self.group;
        (0..DEVICES)
            .map(|i| {
                blake3::hash(&self.device(i).replica(group).unwrap().save())
                    .to_hex()
                    .to_string()
            })
            .collect()
    }
}

fn run<S: Store>(stores: Vec<S>, seed: u64, steps: &[Step], mode: MessageMode) -> World<S> {
    let mut world = World::new(stores, seed, mode);
    for step in steps {
        world.run(*step);
    }
    world.heal();
    world
}

fn mode() -> impl Strategy<Value = MessageMode> {
    prop_oneof![Just(MessageMode::Pairwise), Just(MessageMode::SenderKeys)]
}

proptest! {
    #![proptest_config(support::config_with_cases(32))]

    #[test]
    fn devices_converge_read_only_their_views_and_stores_agree(
        steps in proptest::collection::vec(step(), 0..40),
        seed in any::<u64>(),
        mode in mode(),
    ) {
        let mut memory = run(vec![MemoryStore::default(); DEVICES], seed, &steps, mode);
        let sqlite_stores = (0..DEVICES).map(|_| SqliteStore::in_memory().unwrap()).collect();
        let mut sqlite = run(sqlite_stores, seed, &steps, mode);
        prop_assert_eq!(&memory.log, &sqlite.log);
        prop_assert_eq!(memory.states(), sqlite.states());
        // Restarts are invisible: without them, the same events and states. (Not in
        // sender-key mode: there a restart starts a new chain at the next message, by design.)
        if mode == MessageMode::Pairwise && steps.iter().any(|s| matches!(s, Step::Restart(_))) {
            let uninterrupted: Vec<Step> = steps
                .iter()
                .map(|s| match s {
                    Step::Restart(_) => Step::Idle,
                    s => *s,
                })
                .collect();
            let mut plain = run(vec![MemoryStore::default(); DEVICES], seed, &uninterrupted, mode);
            prop_assert_eq!(&plain.log, &memory.log);
            prop_assert_eq!(plain.states(), memory.states());
        }
        let group = memory.group;
        let members: Vec<usize> = (0..DEVICES)
            .filter(|&i| memory.device(i).replica(group).unwrap().is_member(&identity(i as u8).id()))
            .collect();
        let digests: BTreeSet<_> = members
            .iter()
            .map(|&i| memory.device(i).view(group).unwrap().digest())
            .collect();
        prop_assert!(digests.len() <= 1, "members disagree on the view");
        for (i, opened) in memory.opened.iter().enumerate() {
            for text in opened {
                let sealed = &memory.sealed[text];
                prop_assert!(
                    sealed.view.contains(&identity(i as u8).id()),
                    "device {} opened {:?}, sealed to a view without it",
                    i,
                    String::from_utf8_lossy(text)
                );
            }
        }
        for i in 0..DEVICES {
            prop_assert_eq!(memory.device(i).pending().count(), 0, "device {} still has pending envelopes", i);
            let me = identity(i as u8).id();
            for text in &memory.delivered[i] {
                let sealed = &memory.sealed[text];
                if sealed.sender != i && sealed.view.contains(&me) {
                    // Lost: no handoff reaching back to its index arrived (one handed to a
                    // changed key starts later; see spec/encryption.md).
                    let lost = sealed.chain.is_some_and(|(chain, index)| {
                        !memory.handed[i].iter().any(|&(c, first)| c == chain && first <= index)
                    });
                    prop_assert!(
                        memory.opened[i].contains(text)
                            || memory.refused[i].contains(text)
                            || (lost && memory.given_up[i].contains(text)),
                        "device {} was handed {:?}, sealed to it, and neither opened nor refused it by policy",
                        i,
                        String::from_utf8_lossy(text)
                    );
                }
            }
        }
    }
}
