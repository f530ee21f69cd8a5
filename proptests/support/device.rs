//! Groups of devices in memory, for the device-layer tests.

use super::crypto::Rng;
use super::group::{identity, T0};
use splitsafe::device::{Device, DeviceConfig, Event, MemoryStore, Message, Store};
use splitsafe::group::GroupId;

/// Device 0 founds a group and invites devices 1 to `n - 1`; every member hears every add.
pub fn group_of(n: u8, config: DeviceConfig, r: &mut Rng) -> (Vec<Device<MemoryStore>>, GroupId) {
    let mut devices: Vec<Device<MemoryStore>> = (0..n)
        .map(|i| Device::create(MemoryStore::default(), identity(i), config, r, T0).unwrap())
        .collect();
    let group = devices[0].create_group(r, T0).unwrap();
    for i in 1..usize::from(n) {
        let bundle = devices[i].bundle();
        let invitation = devices[0].invite(group, bundle, T0 + 1).unwrap();
        let events = join(&mut devices[i], &invitation.welcome, T0 + 2);
        assert!(events.contains(&Event::Joined(group)));
        for earlier in &mut devices[1..i] {
            earlier.receive(&invitation.add.to_bytes(), T0 + 2).unwrap();
        }
    }
    (devices, group)
}

/// `device` receives `welcome` and accepts the invitation it makes: what a user who wants to
/// join does. Returns the events of both steps.
pub fn join<S: Store>(device: &mut Device<S>, welcome: &Message, now: u64) -> Vec<Event> {
    let mut events = device.receive(&welcome.to_bytes(), now).unwrap();
    accept_invitations(device, &mut events, now);
    events
}

/// Accepts every invitation `events` report, adding what accepting did to them.
pub fn accept_invitations<S: Store>(device: &mut Device<S>, events: &mut Vec<Event>, now: u64) {
    let invited: Vec<GroupId> = events
        .iter()
        .filter_map(|event| match event {
            Event::Invited(invited) => Some(invited.group),
            _ => None,
        })
        .collect();
    for group in invited {
        events.extend(device.accept(group, now).unwrap());
    }
}

/// The plaintexts of the messages `events` report opened.
pub fn opened(events: &[Event]) -> Vec<&[u8]> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Message(received) => Some(&received.plaintext[..]),
            _ => None,
        })
        .collect()
}

/// A sync message's content stating `summary`'s digest and carrying `ops`, with one ask and
/// one answer of each form: it asks about the whole id space and the region of ids beginning
/// with hex digit 3, and describes the whole space by its authors (as a replica holding at
/// most `LEAF` does) and by its 16 parts; it says what it holds of the receiver's own
/// operations (the summary's first author's, as if the receiver were that author).
pub fn sync_content(
    summary: &splitsafe::group::Summary,
    ops: Vec<splitsafe::group::SignedOp>,
) -> splitsafe::device::SyncContent {
    use splitsafe::group::{Description, Prefix};
    let root = Prefix::root();
    let split = Description {
        prefix: root.clone(),
        authors: Default::default(),
        split: (0..16)
            .map(|digit| summary.part(&Prefix::new(vec![digit]).expect("a hex digit")))
            .collect(),
    };
    splitsafe::device::SyncContent {
        digest: summary.digest(),
        asks: vec![root.clone(), Prefix::new(vec![3]).expect("a hex digit")],
        tells: vec![summary.describe(&root), split],
        yours: summary.authors.values().next().copied(),
        ops,
        holds: None,
        handoff: None,
    }
}
