//! Hostile copies on the transport: a replay of an envelope altered where this reader does
//! not look (a junk slot added, another reader's slot changed) is the same message and opens
//! once; a forged copy of a chain message waiting for its chain never makes the genuine one a
//! duplicate.

mod support;

use splitsafe::crypto::{Envelope, SLOT_LEN};
use splitsafe::device::{DeviceConfig, Event, Message, MessageMode};
use splitsafe::keys::SignatureBytes;
use support::crypto::rng;
use support::device::{group_of, opened};
use support::group::T0;

fn config(messages: MessageMode) -> DeviceConfig {
    DeviceConfig {
        messages,
        ..DeviceConfig::default()
    }
}

/// `envelope` with one more slot of junk, sorting last.
fn with_junk_slot(envelope: &Envelope, n: u8) -> Envelope {
    let mut slots = envelope.slots.clone();
    let mut junk = [n; SLOT_LEN];
    junk[0] = 0xFF;
    slots.extend_from_slice(&junk);
    Envelope {
        slots,
        ..envelope.clone()
    }
}

#[test]
fn an_envelope_altered_where_this_reader_does_not_look_opens_once() {
    let mut r = rng(70);
    let (mut d, group) = group_of(4, config(MessageMode::Pairwise), &mut r);
    let sealed = d[0].send(group, b"transfer 100", &mut r, T0 + 10).unwrap();
    let Message::Envelope(envelope) = &sealed else {
        panic!("pairwise")
    };
    assert_eq!(
        opened(&d[1].receive(&sealed.to_bytes(), T0 + 11).unwrap()).len(),
        1
    );
    let mut copies = vec![with_junk_slot(envelope, 1), with_junk_slot(envelope, 2)];
    for slot in 0..envelope.recipients() {
        let mut altered = envelope.clone();
        altered.slots[slot * SLOT_LEN + 20] ^= 0x80; // the wrapped key, not the hint
        copies.push(altered);
    }
    for copy in copies {
        assert_eq!(copy.id(), envelope.id(), "what every reader authenticates");
        assert_ne!(copy.copy_id(), envelope.copy_id());
        let events = d[1]
            .receive(&Message::Envelope(copy).to_bytes(), T0 + 12)
            .unwrap();
        assert!(
            matches!(&events[..], [Event::Duplicate(id)] if *id == envelope.id()),
            "{events:?}"
        );
    }
}

#[test]
fn a_forged_copy_waiting_for_its_chain_does_not_suppress_the_genuine_message() {
    let mut r = rng(31);
    let (mut d, group) = group_of(3, config(MessageMode::SenderKeys), &mut r);
    let posts: Vec<Message> = (0..3u8)
        .map(|i| {
            d[1].send(group, &[i], &mut r, T0 + 10 + u64::from(i))
                .unwrap()
        })
        .collect();
    // Carol gets forged copies of messages 1 and 2 (signature zeroed) before anything else.
    for post in &posts[1..] {
        let Message::Chain(post) = post else {
            panic!("sender keys")
        };
        let mut forged = post.clone();
        forged.message.signature = SignatureBytes([0; 64]);
        let events = d[2]
            .receive(&Message::Chain(forged).to_bytes(), T0 + 20)
            .unwrap();
        assert!(matches!(&events[..], [Event::Pending { .. }]), "{events:?}");
    }
    // The genuine copies wait beside them.
    for post in &posts[1..] {
        let events = d[2].receive(&post.to_bytes(), T0 + 21).unwrap();
        assert!(matches!(&events[..], [Event::Pending { .. }]), "{events:?}");
    }
    // The first message brings the chain: all three open; the forgeries die on their
    // signature or as copies of what opened.
    let events = d[2].receive(&posts[0].to_bytes(), T0 + 22).unwrap();
    let mut read = opened(&events);
    read.sort();
    assert_eq!(read, [[0], [1], [2]]);
    assert_eq!(d[2].pending().count(), 0);
}
