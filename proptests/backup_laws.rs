//! Keyring and identity exports: a round trip restores exactly what was saved (the same
//! keys, retirement times and bundle, so the same envelopes open and the same secrets expire),
//! and damaged or foreign bytes are refused with a typed error, never a panic.

use crate::support;

use proptest::prelude::*;
use splitsafe::crypto::{Keyring, KeyringConfig, SealOptions};
use splitsafe::keys::{BackupError, Identity};
use support::crypto::{rng, world, Device};

const DAY: u64 = 24 * 60 * 60 * 1000;
use support::group::{identity, T0};

/// Alice (device 0) and Bob (device 1), Bob having rotated `rotations` times a second
/// apart; one envelope from Alice sealed to each of Bob's keys.
fn rotated(rotations: u8, seed: u64) -> (Vec<Device>, Vec<splitsafe::crypto::Envelope>) {
    let mut r = rng(seed);
    let (mut devices, _) = world(2, KeyringConfig::default(), &mut r);
    let mut sealed = Vec::new();
    for k in 0..=u64::from(rotations) {
        let now = T0 + 1_000 * (k + 1);
        if k > 0 {
            let bob = &mut devices[1];
            let (rotation, _) = bob.keyring.rotate(&mut r, &mut bob.replica, now).unwrap();
            devices[0].replica.ingest(rotation, now).unwrap();
        }
        let alice = &mut devices[0];
        let envelope = alice
            .keyring
            .seal(
                &mut alice.replica,
                now + 1,
                &[k as u8],
                SealOptions::default(),
                &mut r,
            )
            .unwrap();
        sealed.push(envelope);
    }
    (devices, sealed)
}

proptest! {
    #![proptest_config(support::config_with_cases(32))]

    /// Export then import gives a keyring whose export is byte for byte the same, with the
    /// same bundle and keys, that opens every envelope the original opens and erases the
    /// same secrets at the same time.
    #[test]
    fn a_round_trip_restores_exactly(rotations in 0u8..4, seed in any::<u64>(), later in 0u64..2 * DAY) {
        let (mut devices, sealed) = rotated(rotations, seed);
        let config = KeyringConfig::default();
        let saved = devices[1].keyring.export();
        let mut restored = Keyring::import(&saved, config).unwrap();
        prop_assert_eq!(&*restored.export(), &*saved);
        let original = &mut devices[1].keyring;
        prop_assert_eq!(restored.bundle(), original.bundle());
        prop_assert_eq!(restored.own_key_ids(), original.own_key_ids());
        let now = T0 + 1_000 * (u64::from(rotations) + 1) + later;
        prop_assert_eq!(original.erase_expired(now), restored.erase_expired(now));
        prop_assert_eq!(original.own_key_ids(), restored.own_key_ids());
        for envelope in &sealed {
            let Device { keyring, replica } = &mut devices[1];
            let mut copy = replica.clone();
            let a = keyring.open(envelope, replica, now).map(|o| o.plaintext);
            let b = restored.open(envelope, &mut copy, now).map(|o| o.plaintext);
            prop_assert_eq!(a, b);
        }
    }

    /// Every truncation, extension and single-bit flip of an export is refused with a typed
    /// error.
    #[test]
    fn damage_is_refused(rotations in 0u8..3, seed in any::<u64>(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (devices, _) = rotated(rotations, seed);
        let saved = devices[1].keyring.export();
        let config = KeyringConfig::default();
        let cut = at.index(saved.len());
        prop_assert!(Keyring::import(&saved[..cut], config).is_err());
        let mut longer = saved.to_vec();
        longer.push(0);
        prop_assert!(Keyring::import(&longer, config).is_err());
        let mut flipped = saved.to_vec();
        flipped[cut] ^= 1 << bit;
        prop_assert!(matches!(
            Keyring::import(&flipped, config),
            Err(BackupError::WrongKind | BackupError::UnsupportedVersion(_) | BackupError::BadChecksum)
        ));
    }
}

#[test]
fn identities_round_trip_and_kinds_do_not_mix() {
    let alice = identity(0);
    let saved = alice.export();
    assert_eq!(Identity::import(&saved).unwrap().id(), alice.id());
    let keyring = Keyring::new(identity(1), KeyringConfig::default(), &mut rng(1), T0);
    let config = KeyringConfig::default();
    assert_eq!(
        Identity::import(&keyring.export()).unwrap_err(),
        BackupError::WrongKind
    );
    assert_eq!(
        Keyring::import(&saved, config).unwrap_err(),
        BackupError::WrongKind
    );
    let mut newer = saved.to_vec();
    newer[b"splitsafe identity\0".len()] = 2;
    assert_eq!(
        Identity::import(&newer).unwrap_err(),
        BackupError::UnsupportedVersion(2)
    );
    assert!(!format!("{:?}", Keyring::import(&keyring.export(), config).unwrap()).contains("0202"));
}
