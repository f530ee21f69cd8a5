//! Arbitrary bytes received by a device in a group with another member: never panics, and
//! input that is refused (an error, or only refusals, duplicates and pending envelopes that
//! wait for nothing this device can give) leaves the device's state and store unchanged,
//! so a genuine message still opens as before.
#![no_main]

#[path = "../../proptests/support/group.rs"]
#[allow(dead_code)]
mod group;

use group::{identity, T0};
use libfuzzer_sys::fuzz_target;
use splitsafe::device::{Device, DeviceConfig, Event, MemoryStore, Message, Store, Stored};
use std::sync::OnceLock;

struct Fixture {
    bob: Device<MemoryStore>,
    genuine: Message,
}

fn seeded() -> rand_chacha::ChaCha20Rng {
    rand_core::SeedableRng::from_seed([9; 32])
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = seeded();
        let config = DeviceConfig::default();
        let store = MemoryStore::default;
        let mut alice = Device::create(store(), identity(0), config, &mut rng, T0).unwrap();
        let mut bob = Device::create(store(), identity(1), config, &mut rng, T0).unwrap();
        let group = alice.create_group(&mut rng, T0).unwrap();
        let invitation = alice.invite(group, bob.bundle(), T0 + 1).unwrap();
        bob.receive(&invitation.welcome.to_bytes(), T0 + 2).unwrap();
        let genuine = alice.send(group, b"genuine", &mut rng, T0 + 3).unwrap();
        Fixture { bob, genuine }
    })
}

/// What the device's store holds.
fn stored(device: &Device<MemoryStore>) -> Option<Stored> {
    device.store().clone().load().expect("memory never fails")
}

fuzz_target!(|bytes: &[u8]| {
    let f = fixture();
    let mut bob = Device::open(f.bob.store().clone(), DeviceConfig::default()).unwrap();
    let before = stored(&f.bob);
    let changed = match bob.receive(bytes, T0 + 10) {
        Err(_) => false,
        Ok(events) => events.iter().any(|e| {
            !matches!(
                e,
                Event::Refused(_) | Event::Duplicate(_) | Event::Bundle(_)
            )
        }),
    };
    if !changed {
        assert!(stored(&bob) == before, "refused input changed the store");
    }
    let events = bob.receive(&f.genuine.to_bytes(), T0 + 11).unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.plaintext == b"genuine"))
            || events.iter().any(|e| matches!(e, Event::Duplicate(_))),
        "{events:?}"
    );
});
