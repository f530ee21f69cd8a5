//! Laws of the encryption adapter: exactly the sender's view opens, tampering is caught
//! with the right error, rotation loses nothing within the grace period, and erased keys
//! open nothing.

use crate::support;

use proptest::prelude::*;
use splitsafe::crypto::{
    Envelope, KeyringConfig, Limits, OpenError, PairwiseKey, SealOptions, SLOT_LEN,
};
use splitsafe::group::{PositionError, Standing, Watermark};
use splitsafe::keys::EncryptionKey;
use support::crypto::{rng, spread, world, Device};
use support::group::{identity, T0};

fn seal(devices: &mut [Device], sender: usize, text: &[u8], sign: bool, seed: u64) -> Envelope {
    let device = &mut devices[sender];
    device
        .keyring
        .seal(
            &mut device.replica,
            T0 + 1_000,
            text,
            SealOptions { sign },
            &mut rng(seed),
        )
        .unwrap()
}

/// When readers open: later than every stamp the tests make (their clocks then pass them).
const READ_AT: u64 = T0 + 400 * 24 * 60 * 60 * 1000;

fn open(devices: &mut [Device], reader: usize, envelope: &Envelope) -> Result<Vec<u8>, OpenError> {
    let device = &mut devices[reader];
    device
        .keyring
        .open(envelope, &mut device.replica, READ_AT)
        .map(|opened| opened.plaintext)
}

proptest! {
    #![proptest_config(support::config_with_cases(32))]

    #[test]
    fn exactly_the_senders_view_opens(
        n in 2u8..7,
        removed in 1u8..7,
        sender in 0u8..7,
        text in proptest::collection::vec(any::<u8>(), 0..300),
        sign in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (removed, sender) = (removed % n, sender % n);
        prop_assume!(removed != sender);
        let mut r = rng(seed);
        let (mut devices, _) = world(n, KeyringConfig::default(), &mut r);
        // The founder removes one member before the message; everyone learns of it.
        if removed != 0 {
            let founder = identity(0);
            devices[0].replica.remove(&founder, identity(removed).id(), T0 + 500).unwrap();
            let source = devices[0].replica.clone();
            spread(&source, &mut devices, T0 + 600);
        }
        let envelope = seal(&mut devices, usize::from(sender), &text, sign, seed);
        let view = devices[usize::from(sender)].replica.view().clone();
        prop_assert_eq!(envelope.recipients(), view.len() - 1);
        for reader in 0..=usize::from(n) {
            let member = view.contains(&identity(reader as u8).id());
            let result = open(&mut devices, reader, &envelope);
            if member && reader != usize::from(sender) {
                prop_assert_eq!(result, Ok(text.clone()));
                let device = &mut devices[reader];
                let opened = device.keyring.open(&envelope, &mut device.replica, READ_AT).unwrap();
                prop_assert!(opened.standing == Standing::Member && opened.same_view);
                prop_assert_eq!(opened.signed, sign);
            } else {
                // The sender itself, a removed member and the outsider get no slot.
                prop_assert_eq!(result, Err(OpenError::NotAddressedToMe));
            }
        }
    }

    #[test]
    fn every_altered_field_fails_with_its_error(
        field in 0usize..12,
        bit in 0usize..4096,
        seed in any::<u64>(),
    ) {
        let mut r = rng(seed);
        let (mut devices, _) = world(4, KeyringConfig::default(), &mut r);
        let envelope = seal(&mut devices, 1, b"attack at dawn", true, seed);
        let reader = 2;
        // The reader's slot: the one it can open.
        let mine = (0..envelope.recipients()).find(|&i| {
            let mut only = envelope.clone();
            only.slots = envelope.slots[i * SLOT_LEN..(i + 1) * SLOT_LEN].to_vec();
            open(&mut devices, reader, &only).is_ok()
        }).unwrap();
        let flip = |bytes: &mut [u8]| {
            let b = bit % (bytes.len() * 8);
            bytes[b / 8] ^= 1 << (b % 8);
        };
        let mut bad = envelope.clone();
        let h = &mut bad.header;
        let expected = match field {
            0 => { h.version ^= 1 << (bit % 8); OpenError::UnsupportedVersion(h.version) }
            1 => { flip(&mut h.group.0); OpenError::WrongGroup { expected: envelope.header.group, found: h.group } }
            2 => { flip(&mut h.sender.0); OpenError::Position(PositionError::NeverAMember(h.sender)) }
            3 => {
                // The stamp is checked only once the envelope authenticates: an altered
                // stamp, far ahead or not, is caught by the signature first.
                h.stamp = splitsafe::clock::Timestamp::from_raw(h.stamp.as_raw() ^ (1 << (bit % 64)));
                OpenError::BadSignature
            }
            4 => { flip(&mut h.sender_key.0); OpenError::UnknownSenderKey { sender: h.sender, key: h.sender_key } }
            5 => { flip(&mut h.view.0); OpenError::BadSignature }
            6 => { flip(&mut h.nonce); OpenError::BadSignature }
            7 => {
                h.signed = false;
                OpenError::Malformed(splitsafe::codec::DecodeError::Invalid {
                    reason: "signature presence disagrees with the header".into(),
                })
            }
            8 => {
                let slot = &mut bad.slots[mine * SLOT_LEN..(mine + 1) * SLOT_LEN];
                let b = bit % (SLOT_LEN * 8);
                slot[b / 8] ^= 1 << (b % 8);
                let ordered = bad.slots.chunks(SLOT_LEN).is_sorted_by(|a, b| a < b);
                match (b / 8 < 8, ordered) {
                    (false, _) => OpenError::Tampered,
                    (true, true) => OpenError::NotAddressedToMe,
                    (true, false) => OpenError::Malformed(splitsafe::codec::DecodeError::Invalid {
                        reason: "slots are not in strictly ascending order".into(),
                    }),
                }
            }
            9 => { flip(&mut bad.ciphertext); OpenError::BadSignature }
            10 => {
                // The sender has made no operation: its position is NONE, and any flip leaves
                // a sequence number without an operation or the reverse.
                prop_assert_eq!(h.position, Watermark::NONE);
                match bit % 2 {
                    0 => h.position.seq ^= 1 << (bit % 64),
                    _ => flip(&mut h.position.op.0),
                }
                OpenError::Malformed(splitsafe::codec::DecodeError::Invalid {
                    reason: "the position names an operation at sequence number 0, or none above it".into(),
                })
            }
            _ => { flip(&mut bad.signature.as_mut().unwrap().0); OpenError::BadSignature }
        };
        prop_assert_eq!(open(&mut devices, reader, &bad), Err(expected));
        // Without the signature, the header and ciphertext are bound by the slots instead.
        let unsigned = seal(&mut devices, 1, b"attack at dawn", false, seed);
        let mut bad = unsigned.clone();
        let expected = match field % 4 {
            0 => { bad.header.stamp = splitsafe::clock::Timestamp::from_raw(bad.header.stamp.as_raw() ^ 1); OpenError::Tampered }
            1 => { flip(&mut bad.header.view.0); OpenError::Tampered }
            2 => { flip(&mut bad.ciphertext); OpenError::Tampered }
            _ => { flip(&mut bad.header.nonce); OpenError::NotAddressedToMe }
        };
        prop_assert_eq!(open(&mut devices, reader, &bad), Err(expected));
    }

    #[test]
    fn decoding_rejects_every_truncation_and_extension(cut in any::<prop::sample::Index>(), seed in any::<u64>()) {
        let mut r = rng(seed);
        let (mut devices, _) = world(3, KeyringConfig::default(), &mut r);
        let envelope = seal(&mut devices, 0, b"hello", false, seed);
        let bytes = envelope.to_cbor();
        prop_assert_eq!(Envelope::from_cbor(&bytes, Limits::default()), Ok(envelope));
        let short = &bytes[..cut.index(bytes.len())];
        prop_assert!(matches!(Envelope::from_cbor(short, Limits::default()), Err(OpenError::Malformed(_))));
        let mut long = bytes.clone();
        long.push(0);
        prop_assert!(matches!(Envelope::from_cbor(&long, Limits::default()), Err(OpenError::Malformed(_))));
    }

    #[test]
    fn rotation_in_the_middle_of_traffic_loses_no_message_within_the_grace_period(
        events in proptest::collection::vec((0u8..4, 0u8..4, any::<bool>()), 1..12),
        seed in any::<u64>(),
    ) {
        // Events: (actor, other, rotate?): the actor rotates its key, or seals a message that
        // the others receive before hearing of any rotation since the last sync. Membership
        // ops reach everyone only at the end, well within the grace period.
        let mut r = rng(seed);
        let config = KeyringConfig { grace_ms: 3_600_000, ..KeyringConfig::default() };
        let (mut devices, _) = world(4, config, &mut r);
        let mut sent = vec![];
        for (k, (actor, _other, rotate)) in events.into_iter().enumerate() {
            let now = T0 + 10_000 + 1_000 * k as u64;
            let device = &mut devices[usize::from(actor)];
            if rotate {
                device.keyring.rotate(&mut r, &mut device.replica, now).unwrap();
            } else {
                let envelope = device.keyring.seal(&mut device.replica, now, &[k as u8], SealOptions::default(), &mut r).unwrap();
                sent.push((usize::from(actor), envelope));
            }
        }
        // Sync everyone (each device learns every rotation), then read everything.
        let all: Vec<_> = devices.iter().flat_map(|d| d.replica.ops().cloned().collect::<Vec<_>>()).collect();
        for device in &mut devices {
            device.replica.ingest_batch(all.clone(), T0 + 100_000);
        }
        for (sender, envelope) in &sent {
            for reader in (0..4).filter(|r| r != sender) {
                let device = &mut devices[reader];
                prop_assert!(device.keyring.open(envelope, &mut device.replica, READ_AT).is_ok(), "reader {} lost a message from {}", reader, sender);
            }
        }
    }
}

#[test]
fn after_erasure_nothing_the_device_holds_opens_older_envelopes() {
    let mut r = rng(1);
    let config = KeyringConfig {
        grace_ms: 60_000,
        ..KeyringConfig::default()
    };
    let (mut devices, _) = world(2, config, &mut r);
    let old = seal(&mut devices, 0, b"before rotation", false, 2);
    let old_key = devices[1].keyring.own_key_ids()[0];
    {
        let device = &mut devices[1];
        device
            .keyring
            .rotate(&mut r, &mut device.replica, T0 + 2_000)
            .unwrap();
    }
    // Within the grace period the retired key still opens it.
    assert_eq!(open(&mut devices, 1, &old), Ok(b"before rotation".to_vec()));
    assert_eq!(devices[1].keyring.erase_expired(T0 + 2_000 + 59_999), 0);
    assert_eq!(devices[1].keyring.erase_expired(T0 + 2_000 + 60_000), 1);
    // Every secret left on the device: the current key and the pairwise keys it cached.
    let keyring = &devices[1].keyring;
    assert_eq!(keyring.own_key_ids().len(), 1);
    assert!(!keyring.own_key_ids().contains(&old_key));
    assert!(keyring
        .cached_pairs()
        .all(|(from, to)| from != old_key && to != old_key));
    assert_eq!(
        open(&mut devices, 1, &old),
        Err(OpenError::NotAddressedToMe)
    );
    // New traffic (once the sender knows the new key) opens.
    let source = devices[1].replica.clone();
    spread(&source, &mut devices, T0 + 70_000);
    let new = seal(&mut devices, 0, b"after rotation", false, 3);
    assert_eq!(open(&mut devices, 1, &new), Ok(b"after rotation".to_vec()));
}

#[test]
fn pairwise_keys_are_directional_and_agree_across_the_pair() {
    use x25519_dalek::{PublicKey, StaticSecret};
    let group = splitsafe::group::GroupId([3; 32]);
    let (a, b) = (StaticSecret::from([1; 32]), StaticSecret::from([2; 32]));
    let public = |s: &StaticSecret| EncryptionKey(PublicKey::from(s).to_bytes());
    let (a_to_b, b_to_a) = PairwiseKey::between(&group, &a, &public(&b)).unwrap();
    let (b_to_a2, a_to_b2) = PairwiseKey::between(&group, &b, &public(&a)).unwrap();
    assert_eq!(a_to_b.as_bytes(), a_to_b2.as_bytes());
    assert_eq!(b_to_a.as_bytes(), b_to_a2.as_bytes());
    assert_ne!(a_to_b.as_bytes(), b_to_a.as_bytes());
    let other_group = splitsafe::group::GroupId([4; 32]);
    let (elsewhere, _) = PairwiseKey::between(&other_group, &a, &public(&b)).unwrap();
    assert_ne!(elsewhere.as_bytes(), a_to_b.as_bytes());
    assert!(!format!("{a_to_b:?}").contains(&format!("{}", a_to_b.as_bytes()[0])));
    assert!(PairwiseKey::between(&group, &a, &EncryptionKey([0; 32])).is_none());
}

#[test]
fn a_sender_key_not_yet_seen_names_the_key_to_sync() {
    let mut r = rng(5);
    let (mut devices, _) = world(3, KeyringConfig::default(), &mut r);
    {
        let device = &mut devices[0];
        device
            .keyring
            .rotate(&mut r, &mut device.replica, T0 + 1_000)
            .unwrap();
    }
    let envelope = seal(&mut devices, 0, b"new key", false, 6);
    let new_key = *devices[0].keyring.own_key_ids().last().unwrap();
    assert_eq!(
        open(&mut devices, 1, &envelope),
        Err(OpenError::UnknownSenderKey {
            sender: identity(0).id(),
            key: new_key
        })
    );
    let source = devices[0].replica.clone();
    spread(&source, &mut devices, T0 + 2_000);
    assert_eq!(open(&mut devices, 1, &envelope), Ok(b"new key".to_vec()));
}

/// Slots out of ascending order are refused by decoding with an error that says so (they
/// used to give every recipient `NotAddressedToMe`). Handed such an envelope directly,
/// `open` either finds the reader's slot anyway or reports it malformed: never
/// `NotAddressedToMe` to a reader in the view.
#[test]
fn unsorted_slots_are_refused_as_malformed() {
    let mut r = rng(11);
    let (mut devices, _) = world(4, KeyringConfig::default(), &mut r);
    let envelope = seal(&mut devices, 0, b"hello", false, 11);
    assert!(envelope.recipients() >= 2);
    let mut swapped = envelope.clone();
    let (first, second) = swapped.slots.split_at_mut(SLOT_LEN);
    first.swap_with_slice(&mut second[..SLOT_LEN]);
    let expected = OpenError::Malformed(splitsafe::codec::DecodeError::Invalid {
        reason: "slots are not in strictly ascending order".into(),
    });
    assert_eq!(
        Envelope::from_cbor(&swapped.to_cbor(), Limits::default()),
        Err(expected.clone())
    );
    let mut duplicated = envelope.clone();
    let slot = duplicated.slots[..SLOT_LEN].to_vec();
    duplicated.slots.splice(0..0, slot);
    for bad in [&swapped, &duplicated] {
        assert_eq!(
            Envelope::from_cbor(&bad.to_cbor(), Limits::default()),
            Err(expected.clone())
        );
        let mut malformed = 0;
        for reader in 1..4 {
            match open(&mut devices, reader, bad) {
                Ok(text) => assert_eq!(text, b"hello"),
                Err(e) => {
                    assert_eq!(e, expected);
                    malformed += 1;
                }
            }
        }
        assert!(malformed > 0 || bad == &duplicated);
    }
}

/// `Envelope::id` is stable across encoding and tells envelopes apart.
#[test]
fn envelope_ids_are_stable_and_distinct() {
    let mut r = rng(12);
    let (mut devices, _) = world(3, KeyringConfig::default(), &mut r);
    let a = seal(&mut devices, 0, b"one", false, 1);
    let b = seal(&mut devices, 0, b"one", false, 2);
    let decoded = Envelope::from_cbor(&a.to_cbor(), Limits::default()).unwrap();
    assert_eq!(decoded.id(), a.id());
    assert_ne!(a.id(), b.id());
}

/// B5: an envelope stamped beyond the drift bound is refused with the stamp named, and
/// changes nothing; once local time catches up it opens. B4: opening feeds the stamp into
/// the reader's clock, so what the reader does next is stamped after what it read.
#[test]
fn envelope_stamps_obey_the_drift_bound_and_reach_the_readers_clock() {
    use splitsafe::clock::{ClockConfig, ClockError, Timestamp};
    let mut r = rng(13);
    let (mut devices, _) = world(3, KeyringConfig::default(), &mut r);
    let drift = ClockConfig::DEFAULT_MAX_DRIFT_MS;
    let now = T0 + 10_000;
    let ahead = now + drift + 60_000;
    let sender = &mut devices[0];
    let envelope = sender
        .keyring
        .seal(
            &mut sender.replica,
            ahead,
            b"from the future",
            SealOptions::default(),
            &mut r,
        )
        .unwrap();
    let stamp = envelope.header.stamp;
    let reader = &mut devices[1];
    let before = reader.replica.clock().last();
    assert_eq!(
        reader
            .keyring
            .open(&envelope, &mut reader.replica, now)
            .unwrap_err(),
        OpenError::StampTooFarAhead(ClockError::TooFarAhead {
            remote: stamp,
            local_ms: now,
            max_drift_ms: drift,
        })
    );
    assert_eq!(reader.replica.clock().last(), before);

    let later = ahead - drift;
    let opened = reader
        .keyring
        .open(&envelope, &mut reader.replica, later)
        .unwrap();
    assert_eq!(opened.stamp, stamp);
    assert!(reader.replica.clock().last() > stamp);
    // The reader's next action (here: leaving) is stamped after the message.
    let (leave, _) = reader.replica.leave(&identity(1), later).unwrap();
    assert!(leave.op().timestamp > stamp);
    assert!(Timestamp::from_physical(later) < stamp);
}
