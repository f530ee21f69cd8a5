//! Hostile copies on the transport: a replay of an envelope altered where this reader does
//! not look (a junk slot added, another reader's slot changed) is the same message and opens
//! once; a forged copy of a chain message waiting for its chain never makes the genuine one a
//! duplicate.

use crate::support;

use splitsafe::crypto::OpenError;
use splitsafe::crypto::{Envelope, SLOT_LEN};
use splitsafe::device::{
    Device, DeviceConfig, DeviceError, Event, MemoryStore, Message, MessageMode, Refusal, Store,
    SyncMessage,
};
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
    let Message::Envelope(envelope) = &sealed.message else {
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
                .message
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

/// The `i`th identity nobody added.
fn stranger(i: u64) -> splitsafe::keys::Identity {
    splitsafe::keys::Identity::from_secret_bytes(*blake3::hash(&i.to_be_bytes()).as_bytes())
}

/// Stranger `i`'s sync message stating `summary` and describing it (see
/// `support::device::sync_content`), as bytes.
fn strangers_sync(
    i: u64,
    group: splitsafe::group::GroupId,
    summary: splitsafe::group::Summary,
) -> Vec<u8> {
    let content = support::device::sync_content(&summary, vec![]);
    let sync = SyncMessage::new(&stranger(i), group, content);
    Message::Sync(sync).to_bytes()
}

/// A junk envelope waiting for operations that will never come does not make `tick` ask to
/// be called at or before the time of the call: an application that sleeps until `next`
/// does not spin.
#[test]
fn tick_never_asks_to_be_called_in_the_past() {
    let mut r = rng(13);
    let (mut d, group) = group_of(2, config(MessageMode::Pairwise), &mut r);
    let sealed = d[0].send(group, b"x", &mut r, T0 + 10).unwrap();
    let Message::Envelope(mut junk) = sealed.message else {
        panic!("pairwise")
    };
    // A sender key nobody published: it waits for the rotation that would publish it.
    junk.header.sender_key = splitsafe::crypto::KeyId([9; 16]);
    let events = d[1]
        .receive(&Message::Envelope(junk).to_bytes(), T0 + 11)
        .unwrap();
    assert!(matches!(&events[..], [Event::Pending { .. }]), "{events:?}");
    let mut at = T0 + 12;
    for _ in 0..100 {
        let next = d[1].tick(at).unwrap().next;
        assert!(next.is_none_or(|next| next > at), "{next:?} at {at}");
        at = next.unwrap_or(at + 60_000);
    }
}

/// Once a device keeps as many unknown sync peers as it allows, the next unknown peer's sync
/// message is refused, and the operations it carried are not ingested: a refused item
/// changes nothing.
#[test]
fn a_refused_sync_message_ingests_nothing() {
    let mut r = rng(44);
    let (mut d, group) = group_of(2, config(MessageMode::Pairwise), &mut r);
    let summary = d[1].replica(group).unwrap().summary();
    for i in 0..DeviceConfig::default().max_unknown_peers as u64 {
        let sync = strangers_sync(i, group, summary.clone());
        let events = d[1].receive(&sync, T0 + 10).unwrap();
        assert!(matches!(&events[..], [Event::Synced { .. }]), "{events:?}");
    }
    let late = stranger(1_000);
    let op = support::group::sign_op(
        &late,
        group,
        1,
        splitsafe::group::Op::NO_PREV,
        T0 + 10,
        splitsafe::group::Body::Leave,
    );
    let content = support::device::sync_content(&summary, vec![op]);
    let sync = SyncMessage::new(&late, group, content);
    refused_changing_nothing(&mut d[1], sync, T0 + 11);
    assert_eq!(d[1].replica(group).unwrap().quarantined().count(), 0);
}

/// An envelope anyone can make from a genuine one: another claimed sender, sender key, group
/// and nonce. Nothing authenticates these until it opens.
fn junk(
    genuine: &Message,
    group: splitsafe::group::GroupId,
    sender: splitsafe::keys::MemberId,
    n: u64,
) -> Message {
    let Message::Envelope(mut envelope) = genuine.clone() else {
        panic!("pairwise")
    };
    envelope.header.group = group;
    envelope.header.sender = sender;
    envelope.header.sender_key = splitsafe::crypto::KeyId([0xEE; 16]);
    envelope.header.nonce[..8].copy_from_slice(&n.to_be_bytes());
    Message::Envelope(envelope)
}

/// Junk claiming Bob fills his quota at Carol; it expires after `max_pending_age_ms`, and
/// Bob's envelope then waits for his rotation and opens.
#[test]
fn junk_claiming_a_member_expires() {
    let mut r = rng(11);
    let cfg = config(MessageMode::Pairwise);
    let (mut d, group) = group_of(3, cfg, &mut r);
    let template = d[0].send(group, b"t", &mut r, T0 + 10).unwrap();
    let bob = d[1].id();
    for n in 0..cfg.max_pending_per_sender as u64 {
        let events = d[2]
            .receive(&junk(&template, group, bob, n).to_bytes(), T0 + 11)
            .unwrap();
        assert!(matches!(&events[..], [Event::Pending { .. }]), "{events:?}");
    }
    let later = T0 + 11 + cfg.max_pending_age_ms;
    assert_eq!(
        d[2].tick(T0 + 12).unwrap().next,
        Some(later),
        "the expiry is announced"
    );
    let expired = d[2].tick(later).unwrap().events;
    assert_eq!(
        expired
            .iter()
            .filter(|e| matches!(e, Event::Refused(Refusal::Expired { .. })))
            .count(),
        cfg.max_pending_per_sender
    );
    assert_eq!(d[2].pending().count(), 0);
    bob_is_read_after_his_rotation(&mut d, group, &mut r, later);
}

/// Junk claiming Bob fills his share of the queue at Carol; Bob's genuine envelope, which
/// waits for his rotation like the junk, is not refused: the oldest junk gives way to it.
/// Once it authenticates (the rotation arrived but it still waits, here for an operation of
/// Bob's that is late), no amount of junk claiming Bob can drop it.
#[test]
fn junk_claiming_a_member_cannot_refuse_or_drop_his_messages() {
    let mut r = rng(13);
    let cfg = config(MessageMode::Pairwise);
    let (mut d, group) = group_of(3, cfg, &mut r);
    let template = d[0].send(group, b"t", &mut r, T0 + 10).unwrap();
    let bob = d[1].id();
    let flood = |d: &mut [Device<MemoryStore>], from: u64, at: u64| {
        for n in from..from + cfg.max_pending_per_sender as u64 {
            let junk = junk(&template, group, bob, n).to_bytes();
            d[2].receive(&junk, at).unwrap();
        }
    };
    flood(&mut d, 0, T0 + 11);
    let rotation = d[1].rotate(&mut r, T0 + 20).unwrap();
    let sealed = d[1].send(group, b"meet at noon", &mut r, T0 + 21).unwrap();
    let events = d[2].receive(&sealed.to_bytes(), T0 + 22).unwrap();
    assert!(
        matches!(
            &events[..],
            [
                Event::Refused(Refusal::Displaced { .. }),
                Event::Pending { .. }
            ]
        ),
        "{events:?}"
    );
    let events = d[2].receive(&rotation[0].to_bytes(), T0 + 25).unwrap();
    assert_eq!(opened(&events), [b"meet at noon"]);
    // Bob's clock runs ahead of Carol's: his next envelope authenticates at Carol and waits
    // for her time to reach its stamp. Junk claiming Bob cannot displace it.
    let drift = cfg.replica.clock.max_drift_ms;
    let ahead = T0 + 30 + drift + 1_000;
    let early = d[1].send(group, b"and bring maps", &mut r, ahead).unwrap();
    let events = d[2].receive(&early.to_bytes(), T0 + 30).unwrap();
    assert!(matches!(&events[..], [Event::Pending { .. }]), "{events:?}");
    flood(&mut d, 1_000, T0 + 31);
    flood(&mut d, 2_000, T0 + 32);
    let events = d[2].tick(ahead).unwrap().events;
    assert_eq!(opened(&events), [b"and bring maps"]);
}

/// A signed envelope authenticates its claimed sender before anything else is known of it:
/// a forged one is refused at once instead of waiting.
#[test]
fn a_signed_envelope_with_a_forged_signature_is_refused_at_once() {
    let mut r = rng(14);
    let cfg = config(MessageMode::Pairwise);
    let (mut d, group) = group_of(3, cfg, &mut r);
    let template = d[0].send(group, b"t", &mut r, T0 + 10).unwrap();
    let Message::Envelope(mut forged) = junk(&template, group, d[1].id(), 1) else {
        unreachable!()
    };
    forged.header.signed = true;
    forged.signature = Some(SignatureBytes([7; 64]));
    let events = d[2]
        .receive(&Message::Envelope(forged).to_bytes(), T0 + 11)
        .unwrap();
    assert!(
        matches!(
            &events[..],
            [Event::Refused(Refusal::Envelope {
                error: OpenError::BadSignature,
                ..
            })]
        ),
        "{events:?}"
    );
    assert_eq!(d[2].pending().count(), 0);
}

/// Envelopes for groups that do not exist, from made-up senders, fill the outside room; the
/// members' room stays open: Bob's envelope waiting for his rotation is kept and opens.
#[test]
fn envelopes_from_outside_cannot_fill_the_members_room() {
    let mut r = rng(12);
    let cfg = config(MessageMode::Pairwise);
    let (mut d, group) = group_of(3, cfg, &mut r);
    let template = d[0].send(group, b"t", &mut r, T0 + 10).unwrap();
    let mut displaced = 0;
    for n in 0..(cfg.max_pending_outside + 10) as u64 {
        let fake_group = splitsafe::group::GroupId(*blake3::hash(&n.to_be_bytes()).as_bytes());
        let fake_sender = splitsafe::keys::MemberId([(n % 200) as u8; 32]);
        let events = d[2]
            .receive(
                &junk(&template, fake_group, fake_sender, n).to_bytes(),
                T0 + 11,
            )
            .unwrap();
        displaced += usize::from(matches!(
            &events[..],
            [
                Event::Refused(Refusal::Displaced { .. }),
                Event::Pending { .. }
            ]
        ));
    }
    assert_eq!(d[2].pending().count(), cfg.max_pending_outside);
    assert_eq!(displaced, 10, "the oldest junk gives way to the newest");
    bob_is_read_after_his_rotation(&mut d, group, &mut r, T0 + 12);
}

/// Bob (device 1) rotates and sends; his envelope waits at Carol (device 2), who has not
/// heard of the rotation, and opens when it arrives.
fn bob_is_read_after_his_rotation(
    d: &mut [splitsafe::device::Device<splitsafe::device::MemoryStore>],
    group: splitsafe::group::GroupId,
    r: &mut support::crypto::Rng,
    at: u64,
) {
    let rotation = d[1].rotate(r, at).unwrap();
    let sealed = d[1].send(group, b"meet at noon", r, at + 1).unwrap();
    let events = d[2].receive(&sealed.to_bytes(), at + 2).unwrap();
    assert!(matches!(&events[..], [Event::Pending { .. }]), "{events:?}");
    let events = d[2].receive(&rotation[0].to_bytes(), at + 3).unwrap();
    assert_eq!(opened(&events), [b"meet at noon"]);
}

/// A sync message from a sender not seen admitted may describe a summary a member of the
/// group would hold (kept: it may be a member whose add is still on its way), but not a
/// made-up one many times larger than this device's own (refused: nothing is kept).
#[test]
fn an_unknown_peer_cannot_make_a_device_keep_a_large_summary() {
    let mut r = rng(45);
    let (mut d, group) = group_of(2, config(MessageMode::Pairwise), &mut r);
    let summary = d[1].replica(group).unwrap().summary();
    let fair = strangers_sync(1, group, summary.clone());
    let events = d[1].receive(&fair, T0 + 10).unwrap();
    assert!(matches!(&events[..], [Event::Synced { .. }]), "{events:?}");

    let mut large = summary.clone();
    let entry = *large.authors.values().next().unwrap();
    for i in 0..2_000u32 {
        let mut author = [0u8; 32];
        author[..4].copy_from_slice(&i.to_be_bytes());
        large
            .authors
            .insert(splitsafe::keys::MemberId(author), entry);
    }
    let content = support::device::sync_content(&large, vec![]);
    let sync = SyncMessage::new(&stranger(2), group, content);
    refused_changing_nothing(&mut d[1], sync, T0 + 11);
}

/// `device` refuses `sync` (`BadSync`) and its store is exactly as before.
fn refused_changing_nothing(
    device: &mut splitsafe::device::Device<splitsafe::device::MemoryStore>,
    sync: SyncMessage,
    now: u64,
) {
    let stored = |d: &splitsafe::device::Device<splitsafe::device::MemoryStore>| {
        d.store().clone().load().unwrap()
    };
    let before = stored(device);
    let events = device
        .receive(&Message::Sync(sync).to_bytes(), now)
        .unwrap();
    assert!(
        matches!(&events[..], [Event::Refused(Refusal::BadSync { .. })]),
        "{events:?}"
    );
    assert!(
        stored(device) == before,
        "a refused sync message changed the store"
    );
}

/// A welcome from someone who founded a group of their own and added `victim` to it.
fn unsolicited_welcome(victim: &Device<MemoryStore>, n: u8, now: u64) -> Message {
    let owner = support::group::identity(100 + n);
    let bundle = support::group::bundle(&owner, n, now);
    let config = splitsafe::group::ReplicaConfig::default();
    let (mut replica, _) =
        splitsafe::group::Replica::create(&owner, bundle, [n; 16], config, now).unwrap();
    replica.add(&owner, victim.bundle(), now + 1).unwrap();
    Message::Welcome(splitsafe::device::Welcome {
        group: replica.group(),
        ops: replica.ops().cloned().collect(),
    })
}

/// Anyone holding a device's bundle can found groups and welcome it: each welcome is an
/// invitation, joined only if the application accepts it, and at most `max_invitations` are
/// kept (the oldest dropped). Nothing is joined, and the device's groups (what `tick` walks)
/// stay as they were.
#[test]
fn unsolicited_welcomes_are_bounded_invitations_joined_only_on_acceptance() {
    let mut r = rng(46);
    let cfg = DeviceConfig {
        max_invitations: 8,
        ..config(MessageMode::Pairwise)
    };
    let (mut d, group) = group_of(2, cfg, &mut r);
    let now = T0 + 100;
    let welcomes: Vec<Message> = (0..30)
        .map(|n| unsolicited_welcome(&d[1], n, now))
        .collect();
    let (mut invited, mut dropped) = (0, 0);
    for (n, welcome) in welcomes.iter().enumerate() {
        let at = now + 2 + n as u64;
        for event in d[1].receive(&welcome.to_bytes(), at).unwrap() {
            match event {
                Event::Invited(_) => invited += 1,
                Event::Refused(Refusal::InvitationDropped(_)) => dropped += 1,
                other => panic!("only invitations and drops, not {other:?}"),
            }
        }
    }
    assert_eq!((invited, dropped), (30, 22));
    assert_eq!(d[1].groups().collect::<Vec<_>>(), vec![group]);
    let group_of_welcome = |m: &Message| match m {
        Message::Welcome(w) => w.group,
        _ => unreachable!(),
    };
    let newest: Vec<_> = welcomes[22..].iter().map(group_of_welcome).collect();
    let kept: Vec<_> = d[1].invitations().map(|i| i.group).collect();
    assert_eq!(kept, newest, "the newest are kept, oldest first");
    let stored = d[1].store().clone().load().unwrap().unwrap();
    assert_eq!((stored.groups.len(), stored.invitations.len()), (1, 8));
    // Declining forgets; accepting joins; neither works twice.
    d[1].decline(newest[0]).unwrap();
    assert!(matches!(
        d[1].decline(newest[0]),
        Err(DeviceError::NoSuchInvitation(_))
    ));
    let joined = d[1].accept(newest[1], now + 40).unwrap();
    assert_eq!(joined.first(), Some(&Event::Joined(newest[1])));
    assert!(matches!(
        d[1].accept(newest[1], now + 41),
        Err(DeviceError::NoSuchInvitation(_))
    ));
    assert_eq!(d[1].groups().count(), 2);
    assert_eq!(d[1].invitations().count(), 6);
}
