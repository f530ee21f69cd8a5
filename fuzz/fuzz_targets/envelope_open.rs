//! Arbitrary bytes decoded and opened as an envelope by a member of a small group: never
//! panics, and a failed open leaves the keyring able to open a genuine envelope as before.
#![no_main]

#[path = "../../proptests/support/group.rs"]
#[allow(dead_code)]
mod group;

use group::{identity, T0};
use libfuzzer_sys::fuzz_target;
use splitsafe::crypto::{Envelope, Keyring, KeyringConfig, SealOptions};
use splitsafe::group::{Replica, ReplicaConfig};
use std::sync::OnceLock;

/// The fixture's seeded CSPRNG: the same draws on every run.
fn seeded() -> rand_chacha::ChaCha20Rng {
    rand_core::SeedableRng::from_seed([7; 32])
}

struct Fixture {
    bob_replica: Replica,
    genuine: Envelope,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = seeded();
        let config = KeyringConfig::default();
        let mut alice = Keyring::new(identity(0), config, &mut rng, T0);
        let bob = Keyring::new(identity(1), config, &mut rng, T0);
        let (mut replica, genesis) = Replica::create(
            alice.identity(),
            alice.bundle(),
            [0; 16],
            ReplicaConfig::default(),
            T0,
        )
        .unwrap();
        replica.add(alice.identity(), bob.bundle(), T0 + 1).unwrap();
        let mut bob_replica = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
        bob_replica.ingest_batch(replica.ops().cloned().collect(), T0 + 2);
        let genuine = alice
            .seal(
                &mut replica,
                T0 + 3,
                b"genuine",
                SealOptions { sign: true },
                &mut rng,
            )
            .unwrap();
        // Bob's keyring is rebuilt per input from the same seed, so keep only his replica.
        Fixture {
            bob_replica,
            genuine,
        }
    })
}

fn bob() -> Keyring {
    let mut rng = seeded();
    // Same draws as the fixture: Alice's key first, then Bob's.
    let _ = Keyring::new(identity(0), KeyringConfig::default(), &mut rng, T0);
    Keyring::new(identity(1), KeyringConfig::default(), &mut rng, T0)
}

fuzz_target!(|bytes: &[u8]| {
    let f = fixture();
    let mut bob = bob();
    let mut replica = f.bob_replica.clone();
    if bob.open_bytes(bytes, &mut replica, T0 + 100).is_err() {
        assert_eq!(replica.clock().last(), f.bob_replica.clock().last());
        let opened = bob
            .open(&f.genuine, &mut replica, T0 + 100)
            .expect("state unchanged");
        assert_eq!(opened.plaintext, b"genuine");
    }
});
