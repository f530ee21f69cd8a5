//! A deterministic network of devices for testing the promise end to end: membership and
//! encryption keep working through netsplits and converge after them.
//!
//! Each device has its own identity, keyring, replica and skewed physical clock. The network
//! delays, reorders, duplicates and loses packets, and can be split into partitions and
//! healed. A run is driven by a seed and a [`Schedule`] of plain-data [`Action`]s, so
//! proptest and the fuzzer can generate runs and any failure replays exactly. After the
//! schedule, [`Sim::run`] heals the network, syncs everyone and checks the invariants of
//! `spec/netsplit.md`; violations are reported in the [`Outcome`], never panicked on.

use crate::clock::ClockConfig;
use crate::codec;
use crate::crypto::{Envelope, Keyring, KeyringConfig, OpenError, SealOptions};
use crate::group::{Replica, ReplicaConfig, SignedOp, View, ViewDigest};
use crate::keys::{Identity, MemberId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A deterministic CSPRNG: BLAKE3 in XOF mode over the seed. Every random choice of a run,
/// keys included, comes from it, so a run replays from its seed.
pub struct SeededRng(blake3::OutputReader);

impl SeededRng {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(
            blake3::Hasher::new_derive_key("splitsafe v1 simulation rng")
                .update(&seed.to_le_bytes())
                .finalize_xof(),
        )
    }

    fn next(&mut self) -> u64 {
        let mut b = [0; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }

    /// A number below `n` (0 if `n` is 0); the modulo bias is below 2^-40 for the small
    /// `n` used here.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// True with probability `permille` / 1000.
    pub fn chance(&mut self, permille: u16) -> bool {
        self.below(1000) < u64::from(permille)
    }
}

impl rand_core::TryRng for SeededRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.next() as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next())
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for SeededRng {}

/// One step of a schedule. Device indices are taken modulo the number of devices, so every
/// schedule is valid for every group size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// `actor` adds `target` (a re-add if it was removed), with `target`'s current bundle.
    Add {
        /// Who acts.
        actor: u8,
        /// Who is added.
        target: u8,
    },
    /// `actor` removes `target`; itself: leaves.
    Remove {
        /// Who acts.
        actor: u8,
        /// Who is removed.
        target: u8,
    },
    /// `actor` rotates its encryption key.
    Rotate {
        /// Who rotates.
        actor: u8,
    },
    /// `actor` seals a message to its current view and sends it to every device.
    Send {
        /// The sender.
        actor: u8,
    },
    /// Two devices run a sync round, if they can reach each other.
    Sync {
        /// One side.
        a: u8,
        /// The other.
        b: u8,
    },
    /// Splits the network: device `i` goes to partition `sides[i] % partitions` (0 if
    /// `sides` is shorter).
    Split {
        /// Partition of each device.
        sides: Vec<u8>,
    },
    /// Rejoins all partitions.
    Heal,
    /// Real time moves on.
    Advance {
        /// Milliseconds.
        ms: u32,
    },
}

/// A run's actions, in order.
pub type Schedule = Vec<Action>;

/// A random schedule of `len` actions from `seed`, weighted like the property tests.
pub fn random_schedule(seed: u64, len: usize, partitions: u8) -> Schedule {
    let mut rng = SeededRng::new(seed ^ 0x5EED_5C4E_D01E);
    let mut byte = || rng.below(256) as u8;
    (0..len)
        .map(|_| match byte() % 17 {
            0..=2 => Action::Add {
                actor: byte(),
                target: byte(),
            },
            3..=5 => Action::Remove {
                actor: byte(),
                target: byte(),
            },
            6 => Action::Rotate { actor: byte() },
            7..=10 => Action::Send { actor: byte() },
            11..=12 => Action::Sync {
                a: byte(),
                b: byte(),
            },
            13 => Action::Split {
                sides: (0..32).map(|_| byte() % partitions.max(1)).collect(),
            },
            14 => Action::Heal,
            _ => Action::Advance {
                ms: u32::from(byte()) * 1_000,
            },
        })
        .collect()
}

/// The network's behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Devices on the network.
    pub devices: u8,
    /// How many of them are members at the start (device 0 founds the group and adds
    /// devices 1 to `initial_members - 1`); 0 means all.
    pub initial_members: u8,
    /// Most partitions a split makes.
    pub partitions: u8,
    /// The seed of every random choice.
    pub seed: u64,
    /// Chance in 1,000 that a packet is lost.
    pub loss_permille: u16,
    /// Chance in 1,000 that a packet is delivered twice.
    pub duplicate_permille: u16,
    /// Longest delivery delay, in milliseconds.
    pub max_delay_ms: u32,
    /// Largest clock skew of a device, either way, in milliseconds.
    pub max_skew_ms: u32,
    /// The replicas' drift bound.
    pub max_drift_ms: u64,
}

impl Default for SimConfig {
    /// Eight devices, up to three partitions, 5% loss, 5% duplication, up to 2 s of delay,
    /// clocks skewed up to 10 minutes around a 5-minute drift bound.
    fn default() -> Self {
        Self {
            devices: 8,
            initial_members: 0,
            partitions: 3,
            seed: 0,
            loss_permille: 50,
            duplicate_permille: 50,
            max_delay_ms: 2_000,
            max_skew_ms: 600_000,
            max_drift_ms: ClockConfig::DEFAULT_MAX_DRIFT_MS,
        }
    }
}

/// What became of one sealed message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// The sender.
    pub sender: u8,
    /// When it was sealed (real time, ms since the start).
    pub sealed_at: u64,
    /// The devices in the sender's view at sealing, the sender included.
    pub view: BTreeSet<u8>,
    /// The digest of that view.
    pub view_digest: ViewDigest,
    /// Devices the network delivered it to.
    pub delivered_to: BTreeSet<u8>,
    /// Devices that opened it.
    pub opened_by: BTreeSet<u8>,
    /// Sent after the final heal and sync, to check the converged view.
    pub after_convergence: bool,
}

/// Counters of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Membership operations made.
    pub ops: u64,
    /// Packets put on the network.
    pub packets: u64,
    /// Packets lost at random.
    pub lost: u64,
    /// Packets dropped because a partition separated sender and receiver.
    pub cut: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Sync rounds run.
    pub syncs: u64,
    /// Bytes of summaries and deltas exchanged by syncs.
    pub sync_bytes: u64,
}

/// The result of a run: deterministic for a given configuration and schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Every message sealed.
    pub messages: Vec<MessageRecord>,
    /// Each device's final view digest.
    pub digests: Vec<ViewDigest>,
    /// Each device's final member list (device indices).
    pub members: Vec<BTreeSet<u8>>,
    /// Whether all devices ended with one digest.
    pub converged: bool,
    /// Invariant violations, in the order found; empty when the library keeps its promise.
    pub violations: Vec<String>,
    /// Counters.
    pub stats: Stats,
}

impl Outcome {
    /// The canonical CBOR encoding: two runs are identical iff these bytes are.
    pub fn to_cbor(&self) -> Vec<u8> {
        codec::encode(self)
    }
}

#[derive(Clone)]
enum Payload {
    Op(Box<SignedOp>),
    /// The index of a sealed message in `Sim::envelopes`.
    Envelope(usize),
}

struct Packet {
    from: usize,
    to: usize,
    payload: Payload,
}

struct Device {
    keyring: Keyring,
    replica: Replica,
    skew_ms: i64,
}

/// A simulation in progress.
pub struct Sim {
    config: SimConfig,
    rng: SeededRng,
    now: u64,
    devices: Vec<Device>,
    index: BTreeMap<MemberId, u8>,
    partition: Vec<u8>,
    in_flight: BTreeMap<(u64, u64), Packet>,
    sequence: u64,
    /// Envelopes a device could not open yet for want of the sender's key: (device, message).
    pending: BTreeSet<(usize, usize)>,
    envelopes: Vec<Envelope>,
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
        let keyring_config = KeyringConfig::default();
        let mut keyrings = Vec::with_capacity(n);
        let mut skews = Vec::with_capacity(n);
        for _ in 0..n {
            let mut secret = [0u8; 32];
            rand_core::Rng::fill_bytes(&mut rng, &mut secret);
            keyrings.push(Keyring::new(
                Identity::from_secret_bytes(secret),
                keyring_config,
                &mut rng,
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
                Device {
                    keyring,
                    replica,
                    skew_ms,
                }
            })
            .collect();
        Self {
            config,
            rng,
            now: START_MS + 1_000,
            devices,
            index,
            partition: vec![0; n],
            in_flight: BTreeMap::new(),
            sequence: 0,
            pending: BTreeSet::new(),
            envelopes: Vec::new(),
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
            Action::Rotate { actor } => {
                let a = self.device(*actor);
                let now = self.clock_of(a);
                let d = &mut self.devices[a];
                if let Ok((op, _)) = d.keyring.rotate(&mut self.rng, &mut d.replica, now) {
                    self.broadcast_op(a, op);
                }
            }
            Action::Send { actor } => {
                let a = self.device(*actor);
                self.send(a, false);
            }
            Action::Sync { a, b } => {
                let (a, b) = (self.device(*a), self.device(*b));
                if a != b && self.partition[a] == self.partition[b] {
                    self.sync(a, b);
                }
            }
            Action::Split { sides } => {
                let k = self.config.partitions.max(1);
                for i in 0..self.n() {
                    self.partition[i] = sides.get(i).copied().unwrap_or(0) % k;
                }
            }
            Action::Heal => self.partition.iter_mut().for_each(|p| *p = 0),
            Action::Advance { ms } => self.now += u64::from(*ms),
        }
    }

    fn enqueue(&mut self, packet: Packet) {
        self.outcome.stats.packets += 1;
        if self.rng.chance(self.config.loss_permille) {
            self.outcome.stats.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.config.duplicate_permille) {
            self.outcome.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + 1 + self.rng.below(u64::from(self.config.max_delay_ms));
            self.sequence += 1;
            self.in_flight.insert(
                (at, self.sequence),
                Packet {
                    from: packet.from,
                    to: packet.to,
                    payload: packet.payload.clone(),
                },
            );
        }
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
        let stamp = d.replica.stamp(now);
        let id = self.outcome.messages.len();
        let text = format!("message {id}");
        let Ok(envelope) = d.keyring.seal(
            &view,
            stamp,
            text.as_bytes(),
            SealOptions::default(),
            &mut self.rng,
        ) else {
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
            after_convergence,
        });
        self.envelopes.push(envelope);
        for to in (0..self.n()).filter(|&to| to != from) {
            self.enqueue(Packet {
                from,
                to,
                payload: Payload::Envelope(id),
            });
        }
    }

    fn deliver_due(&mut self) {
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let packet = entry.remove();
            if self.partition[packet.from] != self.partition[packet.to] {
                self.outcome.stats.cut += 1;
                continue;
            }
            self.deliver(packet);
        }
        for i in 0..self.n() {
            let now = self.clock_of(i);
            if !self.devices[i].replica.advance(now).is_empty() {
                self.retry(i);
            }
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
        let d = &mut self.devices[device];
        let result = d.keyring.open(&self.envelopes[m], &d.replica);
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
                self.outcome.messages[m].opened_by.insert(device as u8);
            }
            Err(OpenError::UnknownSenderKey { .. }) => {
                self.pending.insert((device, m));
            }
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
        // Liveness: every message that reached a device in its sender's view was opened.
        for (m, record) in self.outcome.messages.iter().enumerate() {
            for d in record.delivered_to.intersection(&record.view) {
                if usize::from(*d) != usize::from(record.sender) && !record.opened_by.contains(d) {
                    let what =
                        format!("liveness: device {d} received message {m} but never opened it");
                    self.outcome.violations.push(what);
                }
            }
        }
        // No device that no `Add` ever admitted is in any view.
        for (i, d) in self.devices.iter().enumerate() {
            for (member, _) in d.replica.view().members() {
                let idx = self.index.get(member).copied();
                if idx.is_none_or(|x| !self.ever_added.contains(&x)) {
                    let what = format!("safety: device {i} shows a member never added");
                    self.outcome.violations.push(what);
                }
            }
        }

        // After convergence, every member sends; delivery is perfect; exactly the view reads.
        let (loss, dup) = (self.config.loss_permille, self.config.duplicate_permille);
        self.config.loss_permille = 0;
        self.config.duplicate_permille = 0;
        let first = self.outcome.messages.len();
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
        self.now += u64::from(self.config.max_delay_ms) + 1;
        self.deliver_due();
        for m in first..self.outcome.messages.len() {
            let record = &self.outcome.messages[m];
            let expected: BTreeSet<u8> = record
                .view
                .iter()
                .copied()
                .filter(|d| *d != record.sender)
                .collect();
            if record.opened_by != expected {
                let what = format!(
                    "convergence: message {m} was opened by {:?}, its view minus the sender is {expected:?}",
                    record.opened_by
                );
                self.outcome.violations.push(what);
            }
        }
        self.config.loss_permille = loss;
        self.config.duplicate_permille = dup;

        self.outcome.digests = self.digests();
        self.outcome.members = (0..n as u8).map(|i| self.members_seen_by(i)).collect();
        self.outcome
    }
}
