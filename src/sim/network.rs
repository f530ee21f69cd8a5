//! The simulated network: packets in flight with random delay, loss and duplication, and
//! partitions that cut the packets crossing them.

use super::outcome::{SimConfig, Stats};
use super::rng::SeededRng;
use crate::group::SignedOp;
use std::collections::BTreeMap;

#[derive(Clone)]
pub(super) enum Payload {
    Op(Box<SignedOp>),
    /// The index of a sealed message in the run's envelopes.
    Envelope(usize),
}

pub(super) struct Packet {
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) payload: Payload,
}

pub(super) struct Network {
    /// Each device's side of the current split; all zero when healed.
    partition: Vec<u8>,
    /// Keyed by (delivery time, sequence number), so delivery order is deterministic.
    in_flight: BTreeMap<(u64, u64), Packet>,
    sequence: u64,
}

impl Network {
    pub(super) fn new(devices: usize) -> Self {
        Self {
            partition: vec![0; devices],
            in_flight: BTreeMap::new(),
            sequence: 0,
        }
    }

    pub(super) fn same_side(&self, a: usize, b: usize) -> bool {
        self.partition[a] == self.partition[b]
    }

    /// Splits the devices into at most `partitions` sides: device i goes to `sides[i]`.
    pub(super) fn split(&mut self, sides: &[u8], partitions: u8) {
        let k = partitions.max(1);
        for (i, side) in self.partition.iter_mut().enumerate() {
            *side = sides.get(i).copied().unwrap_or(0) % k;
        }
    }

    pub(super) fn heal(&mut self) {
        self.partition.iter_mut().for_each(|p| *p = 0);
    }

    /// Puts `packet` on the wire at `now`: lost, delivered once, or twice, each copy after
    /// its own random delay.
    pub(super) fn send(
        &mut self,
        packet: Packet,
        now: u64,
        config: &SimConfig,
        rng: &mut SeededRng,
        stats: &mut Stats,
    ) {
        stats.packets += 1;
        if rng.chance(config.loss_permille) {
            stats.lost += 1;
            return;
        }
        let copies = if rng.chance(config.duplicate_permille) {
            stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = now + 1 + rng.below(u64::from(config.max_delay_ms));
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

    /// The next packet due by `now` whose ends are on one side; packets that a partition
    /// cuts are dropped on the way and counted.
    pub(super) fn next_due(&mut self, now: u64, stats: &mut Stats) -> Option<Packet> {
        loop {
            let entry = self.in_flight.first_entry()?;
            if entry.key().0 > now {
                return None;
            }
            let packet = entry.remove();
            if self.same_side(packet.from, packet.to) {
                return Some(packet);
            }
            stats.cut += 1;
        }
    }
}
