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
