//! Groups of devices with keyrings, for the encryption tests and fuzz targets.

use super::group::{identity, T0};
use rand_core::SeedableRng;
use splitsafe::crypto::{Keyring, KeyringConfig};
use splitsafe::group::{Replica, ReplicaConfig, SignedOp};

/// The seeded CSPRNG every encryption test draws from, so failures replay.
pub type Rng = rand_chacha::ChaCha20Rng;

/// One member's device: its keyring and its replica of the group.
pub struct Device {
    pub keyring: Keyring,
    pub replica: Replica,
}

/// A group of `n` devices (device 0 founded it and added the others), all synced, plus one
/// outsider device (index `n`) that has joined the replica but was never added.
pub fn world(n: u8, config: KeyringConfig, rng: &mut Rng) -> (Vec<Device>, SignedOp) {
    let keyrings: Vec<Keyring> = (0..=n)
        .map(|i| Keyring::new(identity(i), config, rng, T0))
        .collect();
    let (mut founder, genesis) = Replica::create(
        keyrings[0].identity(),
        keyrings[0].bundle(),
        [7; 16],
        ReplicaConfig::default(),
        T0,
    )
    .unwrap();
    for (i, keyring) in keyrings.iter().enumerate().take(usize::from(n)).skip(1) {
        founder
            .add(keyrings[0].identity(), keyring.bundle(), T0 + i as u64)
            .unwrap();
    }
    let devices = keyrings
        .into_iter()
        .map(|keyring| {
            let mut replica = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
            replica.ingest_batch(founder.ops().cloned().collect(), T0 + 100);
            Device { keyring, replica }
        })
        .collect();
    (devices, genesis)
}

/// A seeded generator.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// Copies every logged op of `from` into all `devices`.
pub fn spread(from: &Replica, devices: &mut [Device], now: u64) {
    let ops: Vec<SignedOp> = from.ops().cloned().collect();
    for device in devices {
        device.replica.ingest_batch(ops.clone(), now);
    }
}
