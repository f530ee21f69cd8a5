//! Arbitrary bytes received by a device in a group with another member: never panics, and
//! input that is refused (an error, or only refusals and duplicates) leaves the device's
//! store unchanged, so a genuine message still opens as before.
//!
//! An input whose first byte has its top bit set is not taken as it is: it picks one of the
//! fixture's genuine messages (raw or armored: an envelope, operations, a welcome, sync
//! messages, sender-key messages, a bundle) and the rest of it is a list of 3-byte edits (position, and a byte
//! that says what to do: flip bits, cut, insert, delete), so the fuzzer starts from inputs
//! that reach past the decoders.
#![no_main]

#[path = "../../proptests/support/group.rs"]
#[allow(dead_code)]
mod group;

use group::{identity, T0};
use libfuzzer_sys::fuzz_target;
use splitsafe::device::{
    Device, DeviceConfig, Event, MemoryStore, Message, MessageMode, Store, Stored,
};
use std::sync::OnceLock;

struct Fixture {
    bob: Device<MemoryStore>,
    genuine: Message,
    /// Genuine messages to mutate.
    bases: Vec<Vec<u8>>,
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
        bob.accept(group, T0 + 2).unwrap();
        let genuine = alice.send(group, b"genuine", &mut rng, T0 + 3).unwrap();
        let other = alice.send(group, b"other", &mut rng, T0 + 4).unwrap();
        let hello = bob.sync_message(group, alice.id()).unwrap().unwrap();
        alice.receive(&hello.to_bytes(), T0 + 5).unwrap();
        let carol = Device::create(store(), identity(2), config, &mut rng, T0).unwrap();
        let invitation = alice.invite(group, carol.bundle(), T0 + 6).unwrap();
        let sync = alice.sync_message(group, bob.id()).unwrap().unwrap();
        // Sender-key messages: the chain's first (with its handoff envelope) and the next.
        alice.set_mode(group, MessageMode::SenderKeys).unwrap();
        let chained = alice.send(group, b"chained", &mut rng, T0 + 7).unwrap();
        let chained_next = alice.send(group, b"next", &mut rng, T0 + 8).unwrap();
        let messages = [
            chained.message,
            chained_next.message,
            other.message,
            invitation.add.message,
            invitation.welcome.message,
            sync,
            hello,
            Message::Bundle(carol.bundle()),
        ];
        let bases = messages
            .iter()
            .flat_map(|m| [m.to_bytes(), m.armored().into_bytes()])
            .collect();
        Fixture {
            bob,
            genuine: genuine.message,
            bases,
        }
    })
}

/// What the device's store holds.
fn stored(device: &Device<MemoryStore>) -> Option<Stored> {
    device.store().clone().load().expect("memory never fails")
}

/// The input as received: `bytes` itself, or a genuine message edited as `bytes` says.
fn input(f: &Fixture, bytes: &[u8]) -> Vec<u8> {
    let Some((&pick, edits)) = bytes.split_first().filter(|(b, _)| **b >= 0x80) else {
        return bytes.to_vec();
    };
    let mut out = f.bases[usize::from(pick & 0x7F) % f.bases.len()].clone();
    for edit in edits.chunks_exact(3) {
        if out.is_empty() {
            break;
        }
        let at = usize::from(u16::from_be_bytes([edit[0], edit[1]])) % out.len();
        match edit[2] % 4 {
            0 => out[at] ^= edit[2] | 1,
            1 => out.truncate(at),
            2 => out.insert(at, edit[2]),
            _ => {
                out.remove(at);
            }
        }
    }
    out
}

fuzz_target!(|bytes: &[u8]| {
    let f = fixture();
    let bytes = &input(f, bytes);
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
