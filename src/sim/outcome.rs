//! A run's settings and what it reports.

use crate::clock::ClockConfig;
use crate::codec;
use crate::group::ViewDigest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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
    /// Members send in sender-key mode (a chain per view, handed out in an envelope)
    /// instead of pairwise envelopes.
    #[serde(default)]
    pub sender_keys: bool,
}

impl Default for SimConfig {
    /// Eight devices, up to three partitions, 5% loss, 5% duplication, up to 2 s of delay,
    /// clocks skewed up to 10 minutes around a 5-minute drift bound; pairwise envelopes.
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
            sender_keys: false,
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
    /// Devices the network delivered it to (in sender-key mode, counted at the end of the
    /// run only where its chain's handoff arrived too: without it, the message is lost).
    pub delivered_to: BTreeSet<u8>,
    /// Devices that opened it.
    pub opened_by: BTreeSet<u8>,
    /// Devices that opened it while their replica did not judge the sender a member at the
    /// envelope's position (removed, or beyond its removal).
    pub opened_as_outsider: BTreeSet<u8>,
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
