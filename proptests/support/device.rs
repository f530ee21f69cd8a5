//! Groups of devices in memory, for the device-layer tests.

use super::crypto::Rng;
use super::group::{identity, T0};
use splitsafe::device::{Device, DeviceConfig, Event, MemoryStore};
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
        let events = devices[i]
            .receive(&invitation.welcome.to_bytes(), T0 + 2)
            .unwrap();
        assert!(events.contains(&Event::Joined(group)));
        for earlier in &mut devices[1..i] {
            earlier.receive(&invitation.add.to_bytes(), T0 + 2).unwrap();
        }
    }
    (devices, group)
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
