//! A device's key as its groups see it: a member re-added from a bundle it has rotated away
//! from publishes its current key, so it can read and be read again; and a plain member's
//! rotation costs each sender one slot, not a new chain for the whole view.

mod support;

use splitsafe::device::{Device, DeviceConfig, Event, MemoryStore, Message, MessageMode};
use support::crypto::rng;
use support::group::{identity, T0};

const DAY: u64 = 24 * 60 * 60 * 1000;

fn config(messages: MessageMode) -> DeviceConfig {
    DeviceConfig {
        messages,
        ..DeviceConfig::default()
    }
}

fn opened(events: &[Event]) -> Vec<&[u8]> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Message(received) => Some(&received.plaintext[..]),
            _ => None,
        })
        .collect()
}

/// Bob is removed, rotates (the group he is out of skips it), and is re-added from his old
/// bundle. Seeing himself in the view with a key he no longer uses, he publishes his current
/// one; once Alice has it, each reads the other, also after his old key is erased.
#[test]
fn a_member_re_added_with_an_old_bundle_publishes_its_key() {
    let mut r = rng(50);
    let cfg = config(MessageMode::Pairwise);
    let mut alice = Device::create(MemoryStore::default(), identity(0), cfg, &mut r, T0).unwrap();
    let mut bob = Device::create(MemoryStore::default(), identity(1), cfg, &mut r, T0).unwrap();
    let group = alice.create_group(&mut r, T0).unwrap();
    let invitation = alice.invite(group, bob.bundle(), T0 + 1).unwrap();
    bob.receive(&invitation.welcome.to_bytes(), T0 + 2).unwrap();
    let old_bundle = bob.bundle();
    bob.create_group(&mut r, T0 + 3).unwrap(); // so that his rotation is taken somewhere
    let removal = alice.remove(group, bob.id(), T0 + 4).unwrap();
    bob.receive(&removal.to_bytes(), T0 + 5).unwrap();
    assert_eq!(bob.rotate(&mut r, T0 + 6).unwrap().len(), 1);

    let readd = alice.invite(group, old_bundle, T0 + 7).unwrap();
    let events = bob.receive(&readd.add.to_bytes(), T0 + 8).unwrap();
    let published: Vec<&Message> = events
        .iter()
        .filter_map(|event| match event {
            Event::Publish { group: g, message } if *g == group => Some(&**message),
            _ => None,
        })
        .collect();
    let [publish] = &published[..] else {
        panic!("no key published: {events:?}")
    };
    alice.receive(&publish.to_bytes(), T0 + 9).unwrap();
    assert_eq!(
        alice
            .view(group)
            .unwrap()
            .bundle(&bob.id())
            .unwrap()
            .encryption_key,
        bob.bundle().encryption_key
    );
    // Published once: more operations do not publish it again.
    let again = alice.set_rank(group, bob.id(), splitsafe::group::Rank::Admin, T0 + 10);
    let events = bob.receive(&again.unwrap().to_bytes(), T0 + 11).unwrap();
    assert!(!events.iter().any(|e| matches!(e, Event::Publish { .. })));

    let later = T0 + 2 * DAY;
    bob.tick(later).unwrap(); // his old key is erased
    let to_alice = bob.send(group, b"I'm back", &mut r, later + 1).unwrap();
    assert_eq!(
        opened(&alice.receive(&to_alice.to_bytes(), later + 2).unwrap()),
        [b"I'm back"]
    );
    let to_bob = alice
        .send(group, b"welcome back", &mut r, later + 3)
        .unwrap();
    assert_eq!(
        opened(&bob.receive(&to_bob.to_bytes(), later + 4).unwrap()),
        [b"welcome back"]
    );
}
