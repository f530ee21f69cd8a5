//! Schedules: the plain-data actions a run applies, so that proptest and the fuzzer can
//! generate runs.

use super::rng::SeededRng;
use serde::{Deserialize, Serialize};

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
    /// `actor` makes `target` an admin (`admin`) or a plain member; only the owner (device
    /// 0) can.
    Rank {
        /// Who acts.
        actor: u8,
        /// Whose rank.
        target: u8,
        /// Admin, or back to member.
        admin: bool,
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
        .map(|_| match byte() % 18 {
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
            15 => Action::Rank {
                actor: byte() % 2,
                target: byte(),
                admin: byte() % 2 == 0,
            },
            _ => Action::Advance {
                ms: u32::from(byte()) * 1_000,
            },
        })
        .collect()
}
