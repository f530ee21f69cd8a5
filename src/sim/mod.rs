//! A deterministic network of devices for testing the promise end to end: membership and
//! encryption keep working through netsplits and converge after them.
//!
//! Each device has its own identity, keyring, replica and skewed physical clock. The network
//! delays, reorders, duplicates and loses packets, and can be split into partitions and
//! healed. A run is driven by a seed and a [`Schedule`] of plain-data [`Action`]s, so
//! proptest and the fuzzer can generate runs and any failure replays exactly. After the
//! schedule, [`Sim::run`] heals the network, syncs everyone and checks the invariants of
//! `spec/netsplit.md`; violations are reported in the [`Outcome`], never panicked on.

mod checks;
mod device;
mod network;
mod outcome;
mod rng;
mod schedule;

pub use outcome::{MessageRecord, Outcome, SimConfig, Stats};
pub use rng::SeededRng;
pub use schedule::{random_schedule, Action, Schedule};

use crate::clock::ClockConfig;
use crate::codec;
use crate::crypto::{ChainError, Keyring, KeyringConfig, OpenError, SenderKeys, SenderPolicy};
use crate::group::{PositionError, Replica, ReplicaConfig, SignedOp, Standing, View, ViewDigest};
use crate::keys::{Identity, MemberId};
use device::{Device, Sealed};
use network::{Network, Packet, Payload};
use std::collections::{BTreeMap, BTreeSet};

/// A simulation in progress.
pub struct Sim {
    config: SimConfig,
    rng: SeededRng,
    now: u64,
    devices: Vec<Device>,
    index: BTreeMap<MemberId, u8>,
    network: Network,
    /// Envelopes a device could not open yet, for want of the sender's key or because their
    /// stamp is ahead of its clock: (device, message).
    pending: BTreeSet<(usize, usize)>,
    sealed: Vec<Sealed>,
    /// Sender-key mode: the messages whose chain, from their index on, reached each device
    /// (by a message that carried its handoff, or by sync): (device, message).
    handed: BTreeSet<(usize, usize)>,
    /// Every device any successful `Add` admitted.
    ever_added: BTreeSet<u8>,
    outcome: Outcome,
}

/// Real time at the start of every run: 2026-11-26 12:00:00 UTC.
const START_MS: u64 = 1_795_694_400_000;

impl Sim {
    /// A network of `config.devices` devices (at least 2) in one formed group.
    pub fn new(config: SimConfig) -> Self {
        let n = usize::from(config.devices.max(2));
        let mut rng = SeededRng::new(config.seed);
        let replica_config = ReplicaConfig {
            clock: ClockConfig {
                max_drift_ms: config.max_drift_ms,
            },
            ..ReplicaConfig::default()
        };
        // Every envelope the keys open is opened and its sender's standing recorded: the
        // simulator checks who can read (the encryption's promise); which standings to
        // accept is the application's policy, tested on its own.
        let keyring_config = KeyringConfig {
            senders: SenderPolicy::ReportAll,
            ..KeyringConfig::default()
        };
        let mut keyrings = Vec::with_capacity(n);
        let mut skews = Vec::with_capacity(n);
        for _ in 0..n {
            let mut secret = [0u8; 32];
            rand_core::Rng::fill_bytes(rng.keys(), &mut secret);
            keyrings.push(Keyring::new(
                Identity::from_secret_bytes(secret),
                keyring_config,
                rng.keys(),
                START_MS,
            ));
            let span = u64::from(config.max_skew_ms) * 2 + 1;
            skews.push(rng.below(span) as i64 - i64::from(config.max_skew_ms));
        }
        let (mut founder, genesis) = Replica::create(
            keyrings[0].identity(),
            keyrings[0].bundle(),
            [0; 16],
            replica_config,
            START_MS,
        )
        .expect("a fresh keyring's bundle is valid");
        let initial = match usize::from(config.initial_members) {
            0 => n,
            k => k.clamp(1, n),
        };
        for (i, keyring) in keyrings.iter().enumerate().take(initial).skip(1) {
            founder
                .add(
                    keyrings[0].identity(),
                    keyring.bundle(),
                    START_MS + i as u64,
                )
                .expect("the founder is a member");
            // Odd devices start as admins, so that removals by others than the owner happen.
            if i % 2 == 1 {
                founder
                    .promote(
                        keyrings[0].identity(),
                        keyring.identity().id(),
                        START_MS + i as u64,
                    )
                    .expect("the owner ranks");
            }
        }
        let ops: Vec<SignedOp> = founder.ops().cloned().collect();
        let index = keyrings
            .iter()
            .enumerate()
            .map(|(i, k)| (k.identity().id(), i as u8))
            .collect();
        let devices = keyrings
            .into_iter()
            .zip(skews)
            .map(|(keyring, skew_ms)| {
                let mut replica = Replica::join(&genesis, replica_config, START_MS)
                    .expect("the genesis is valid");
                replica.ingest_batch(ops.clone(), START_MS + n as u64);
                let keys = SenderKeys::new(replica.group());
                Device {
                    keyring,
                    replica,
                    skew_ms,
                    keys,
                }
            })
            .collect();
        Self {
            config,
            rng,
            now: START_MS + 1_000,
            devices,
            index,
            network: Network::new(n),
            pending: BTreeSet::new(),
            sealed: Vec::new(),
            handed: BTreeSet::new(),
            ever_added: (0..initial as u8).collect(),
            outcome: Outcome {
                messages: Vec::new(),
                digests: Vec::new(),
                members: Vec::new(),
                converged: false,
                violations: Vec::new(),
                stats: Stats::default(),
            },
        }
    }

    /// Runs `schedule` from a fresh network, then heals, syncs everyone, checks every
    /// invariant, and returns the outcome.
    pub fn run(config: SimConfig, schedule: &[Action]) -> Outcome {
        let mut sim = Self::new(config);
        for action in schedule {
            sim.step(action);
        }
        sim.finish()
    }

    /// The members device `i` sees now, as device indices.
    pub fn members_seen_by(&self, i: u8) -> BTreeSet<u8> {
        self.indices(self.devices[self.device(i)].replica.view())
    }

    /// The members of `view`, as device indices.
    fn indices(&self, view: &View) -> BTreeSet<u8> {
        view.members()
            .filter_map(|(m, _)| self.index.get(m).copied())
            .collect()
    }

    /// Messages sealed so far.
    pub fn messages(&self) -> &[MessageRecord] {
        &self.outcome.messages
    }

    fn n(&self) -> usize {
        self.devices.len()
    }

    fn device(&self, i: u8) -> usize {
        usize::from(i) % self.n()
    }

    /// Device `i`'s physical clock.
    fn clock_of(&self, i: usize) -> u64 {
        self.now.saturating_add_signed(self.devices[i].skew_ms)
    }

    fn violation(&mut self, what: String) {
        self.outcome.violations.push(what);
    }

    /// Applies one action, after delivering what is due.
    pub fn step(&mut self, action: &Action) {
        self.deliver_due();
        match action {
            Action::Add { actor, target } => {
                let (a, t) = (self.device(*actor), self.device(*target));
                let bundle = self.devices[t].keyring.bundle();
                let now = self.clock_of(a);
                let d = &mut self.devices[a];
                if let Ok((op, _)) = d.replica.add(d.keyring.identity(), bundle, now) {
                    self.ever_added.insert(t as u8);
                    self.broadcast_op(a, op);
                }
            }
            Action::Remove { actor, target } => {
                let (a, t) = (self.device(*actor), self.device(*target));
                let member = self.devices[t].keyring.identity().id();
                let now = self.clock_of(a);
                let d = &mut self.devices[a];
                if let Ok((op, _)) = d.replica.remove(d.keyring.identity(), member, now) {
                    self.broadcast_op(a, op);
                }
            }
            Action::Rank {
                actor,
                target,
                admin,
            } => {
                let (a, t) = (self.device(*actor), self.device(*target));
                let member = self.devices[t].keyring.identity().id();
                let now = self.clock_of(a);
                let d = &mut self.devices[a];
                let author = d.keyring.identity();
                let made = if *admin {
                    d.replica.promote(author, member, now)
                } else {
                    d.replica.demote(author, member, now)
                };
                if let Ok((op, _)) = made {
                    self.broadcast_op(a, op);
                }
            }
            Action::Rotate { actor } => {
                let a = self.device(*actor);
                let now = self.clock_of(a);
                let d = &mut self.devices[a];
                if let Ok((op, _)) = d.keyring.rotate(self.rng.keys(), &mut d.replica, now) {
                    self.broadcast_op(a, op);
                }
            }
            Action::Send { actor } => {
                let a = self.device(*actor);
                self.send(a, false);
            }
            Action::Sync { a, b } => {
                let (a, b) = (self.device(*a), self.device(*b));
                if a != b && self.network.same_side(a, b) {
                    self.sync(a, b);
                }
            }
            Action::Split { sides } => self.network.split(sides, self.config.partitions),
            Action::Heal => self.network.heal(),
            Action::Advance { ms } => self.now += u64::from(*ms),
        }
    }

    fn enqueue(&mut self, packet: Packet) {
        let (config, rng, stats) = (&self.config, &mut self.rng, &mut self.outcome.stats);
        self.network.send(packet, self.now, config, rng, stats);
    }

    fn broadcast_op(&mut self, from: usize, op: SignedOp) {
        self.outcome.stats.ops += 1;
        for to in (0..self.n()).filter(|&to| to != from) {
            self.enqueue(Packet {
                from,
                to,
                payload: Payload::Op(Box::new(op.clone())),
            });
        }
    }

    /// Seals a message from `from` to its view and sends it to everyone.
    fn send(&mut self, from: usize, after_convergence: bool) {
        let now = self.clock_of(from);
        let d = &mut self.devices[from];
        let view = d.replica.view().clone();
        let id = self.outcome.messages.len();
        let text = format!("message {id}");
        let mode = self.config.sender_keys;
        let Some(sealed) = d.seal(now, text.as_bytes(), mode, self.rng.keys()) else {
            return; // not a member of its own view: nothing to send
        };
        let members = self.indices(&view);
        self.outcome.messages.push(MessageRecord {
            sender: from as u8,
            sealed_at: self.now,
            view: members,
            view_digest: view.digest(),
            delivered_to: BTreeSet::new(),
            opened_by: BTreeSet::new(),
            opened_as_outsider: BTreeSet::new(),
            after_convergence,
        });
        self.sealed.push(sealed);
        for to in (0..self.n()).filter(|&to| to != from) {
            self.enqueue(Packet {
                from,
                to,
                payload: Payload::Envelope(id),
            });
        }
    }

    fn deliver_due(&mut self) {
        while let Some(packet) = self.network.next_due(self.now, &mut self.outcome.stats) {
            self.deliver(packet);
        }
        for i in 0..self.n() {
            let now = self.clock_of(i);
            self.devices[i].replica.advance(now);
            // Time passed: held operations may have been logged, and envelopes stamped
            // ahead of this device's clock may now be within its drift bound.
            self.retry(i);
        }
    }

    fn deliver(&mut self, packet: Packet) {
        let to = packet.to;
        match packet.payload {
            Payload::Op(op) => {
                let now = self.clock_of(to);
                match self.devices[to].replica.ingest(*op, now) {
                    Ok(_) => self.retry(to),
                    Err(e) => self.violation(format!("device {to} refused a genuine op: {e}")),
                }
            }
            Payload::Envelope(m) => {
                self.outcome.messages[m].delivered_to.insert(to as u8);
                self.try_open(to, m);
            }
        }
    }

    /// Tries the envelopes `device` is waiting on.
    fn retry(&mut self, device: usize) {
        let waiting: Vec<usize> = self
            .pending
            .iter()
            .filter(|(d, _)| *d == device)
            .map(|(_, m)| *m)
            .collect();
        for m in waiting {
            self.pending.remove(&(device, m));
            self.try_open(device, m);
        }
    }

    fn try_open(&mut self, device: usize, m: usize) {
        if self.outcome.messages[m].opened_by.contains(&(device as u8)) {
            return;
        }
        let now = self.clock_of(device);
        let d = &mut self.devices[device];
        let result = d.open(&self.sealed[m], now);
        // The handoff a message carries may be addressed to other members only (a chain
        // handed on to new keys): the chain reached this device for this message only if it
        // now holds it from the message's index on.
        if let Some((chain, index)) = self.sealed[m].chain() {
            let sender = self.devices[self.outcome.messages[m].sender as usize]
                .keyring
                .identity()
                .id();
            if self.devices[device].keys.holds_index(&sender, chain, index) {
                self.handed.insert((device, m));
            }
        }
        let record = &self.outcome.messages[m];
        let in_view = record.view.contains(&(device as u8)) && record.sender as usize != device;
        match result {
            Ok(opened) => {
                if !in_view {
                    self.violation(format!(
                        "safety: device {device} opened message {m} from outside the sender's view"
                    ));
                }
                if opened.plaintext != format!("message {m}").into_bytes() {
                    self.violation(format!("device {device} read altered message {m}"));
                }
                let record = &mut self.outcome.messages[m];
                record.opened_by.insert(device as u8);
                if opened.standing != Standing::Member {
                    record.opened_as_outsider.insert(device as u8);
                }
            }
            Err(
                OpenError::UnknownSenderKey { .. }
                | OpenError::StampTooFarAhead(_)
                | OpenError::Position(PositionError::Unknown { .. })
                | OpenError::Chain(ChainError::UnknownChain),
            ) => {
                self.pending.insert((device, m));
            }
            // Its chain's handoff never came: lost, as a lost envelope (liveness does not
            // count it as delivered).
            Err(OpenError::Chain(ChainError::NeverArrived)) => {}
            Err(OpenError::NotAddressedToMe) if !in_view => {}
            Err(e) => self.violation(format!(
                "device {device} in the sender's view could not open message {m}: {e}"
            )),
        }
    }

    /// One sync round between `a` and `b` (three messages), counting bytes.
    fn sync(&mut self, a: usize, b: usize) {
        let (now_a, now_b) = (self.clock_of(a), self.clock_of(b));
        let summary_a = self.devices[a].replica.summary();
        let to_a = self.devices[b]
            .replica
            .missing_for(&summary_a)
            .expect("one group");
        let summary_b = self.devices[b].replica.summary();
        let mut bytes = summary_a.to_cbor().len() + summary_b.to_cbor().len();
        bytes += codec::encode(&to_a).len();
        self.devices[a].replica.ingest_batch(to_a, now_a);
        let to_b = self.devices[a]
            .replica
            .missing_for(&summary_b)
            .expect("one group");
        bytes += codec::encode(&to_b).len();
        self.devices[b].replica.ingest_batch(to_b, now_b);
        self.outcome.stats.syncs += 1;
        self.outcome.stats.sync_bytes += bytes as u64;
        // As the device layer's sync does: each side hands the other its current chain if
        // the other is in the view it serves and does not hold it yet.
        for (from, to, now) in [(a, b, now_b), (b, a, now_a)] {
            let sender = self.devices[from].keyring.identity().id();
            let reader = self.devices[to].keyring.identity().id();
            let Some((chain, handoff)) = self.devices[from].current_handoff(&reader) else {
                continue;
            };
            let in_view = self.devices[from].replica.view().contains(&reader);
            if in_view && self.devices[to].keys.holds(&sender) != Some(chain) {
                self.outcome.stats.sync_bytes += handoff.to_cbor().len() as u64;
                // Messages waiting for it open at the retries below.
                let _ = self.devices[to].take_handoff(&handoff, now);
            }
        }
        self.retry(a);
        self.retry(b);
    }

    fn digests(&self) -> Vec<ViewDigest> {
        self.devices
            .iter()
            .map(|d| d.replica.view().digest())
            .collect()
    }

    /// Ends the run: heals, delivers everything, lets every clock pass every stamp, syncs
    /// every pair until nothing moves, checks the invariants, and sends one message from every
    /// member to check the converged view.
    pub fn finish(mut self) -> Outcome {
        self.step(&Action::Heal);
        let settle = u64::from(self.config.max_delay_ms)
            + 2 * u64::from(self.config.max_skew_ms)
            + self.config.max_drift_ms
            + 1;
        self.now += settle;
        self.deliver_due();
        let n = self.n();
        for _round in 0..3 {
            let before = self.digests();
            for a in 0..n {
                for b in a + 1..n {
                    self.sync(a, b);
                }
            }
            if self.digests() == before && self.digests().windows(2).all(|w| w[0] == w[1]) {
                break;
            }
        }
        self.deliver_due();

        let digests = self.digests();
        self.outcome.converged = digests.windows(2).all(|w| w[0] == w[1]);
        if !self.outcome.converged {
            self.violation("convergence: views differ after heal and full sync".into());
        }
        // A sender-key message counts as delivered only where its chain's handoff arrived.
        for (m, record) in self.outcome.messages.iter_mut().enumerate() {
            if self.sealed[m].chain().is_some() {
                record
                    .delivered_to
                    .retain(|d| self.handed.contains(&(usize::from(*d), m)));
            }
        }
        let liveness = checks::liveness(&self.outcome.messages);
        let views = self.devices.iter().enumerate().map(|(i, d)| {
            let members = d.replica.view().members();
            (
                i,
                members.map(|(m, _)| self.index.get(m).copied()).collect(),
            )
        });
        let only_added = checks::only_added_members(views, &self.ever_added);
        self.outcome
            .violations
            .extend(liveness.into_iter().chain(only_added));

        // After convergence, every member sends; delivery is perfect; exactly the view reads.
        let (loss, dup) = (self.config.loss_permille, self.config.duplicate_permille);
        self.config.loss_permille = 0;
        self.config.duplicate_permille = 0;
        for sender in 0..n {
            if self.outcome.converged
                && self.devices[sender]
                    .replica
                    .view()
                    .contains(&self.devices[sender].keyring.identity().id())
            {
                self.send(sender, true);
            }
        }
        // Long enough for delivery and for every reader's clock to pass every sender's
        // stamp (envelopes stamped beyond a reader's drift bound wait until then).
        self.now += settle;
        self.deliver_due();
        let reads = checks::converged_reads(&self.outcome.messages);
        self.outcome.violations.extend(reads);
        self.config.loss_permille = loss;
        self.config.duplicate_permille = dup;

        self.outcome.digests = self.digests();
        self.outcome.members = (0..n as u8).map(|i| self.members_seen_by(i)).collect();
        self.outcome
    }
}
