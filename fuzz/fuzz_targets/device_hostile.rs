//! One device, Bob, fed an interleaving of genuine messages and what anyone on the transport
//! can make of them: exact replays, replays with a junk slot or another reader's slot
//! altered, chain messages with forged signatures, envelopes claiming a member under a key
//! nobody published (one at a time or in floods over the sender's share of the pending
//! queue), envelopes for made-up groups, welcomes from strangers, arbitrary bytes, and time
//! passing (within the grace period). At the end every genuine message is delivered once more
//! (the transport delivers eventually), and each must have been delivered to the application
//! exactly once: no replay opens twice and no hostile copy suppresses a genuine message. No
//! welcome is ever joined (only invitations, within their bound), and the pending queue
//! stays within its bounds.
//!
//! The input is a script of two-byte steps: an action, and an argument.
#![no_main]

#[path = "../../proptests/support/group.rs"]
#[allow(dead_code)]
mod group;

use group::{identity, T0};
use libfuzzer_sys::fuzz_target;
use splitsafe::crypto::{KeyId, SLOT_LEN};
use splitsafe::device::{Device, DeviceConfig, Event, MemoryStore, Message, MessageMode};
use splitsafe::group::GroupId;
use splitsafe::keys::SignatureBytes;
use std::collections::BTreeMap;
use std::sync::OnceLock;

struct Fixture {
    bob: Device<MemoryStore>,
    /// Welcomes to groups strangers founded and added Bob to.
    strangers: Vec<Message>,
    /// Alice's messages to the group of three (pairwise envelopes, then a chain's first
    /// message with its handoff and two more), with their plaintexts.
    genuine: Vec<(Message, Vec<u8>)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng: rand_chacha::ChaCha20Rng = rand_core::SeedableRng::from_seed([7; 32]);
        let config = DeviceConfig {
            messages: MessageMode::Pairwise,
            ..DeviceConfig::default()
        };
        let store = MemoryStore::default;
        let mut alice = Device::create(store(), identity(0), config, &mut rng, T0).unwrap();
        let mut bob = Device::create(store(), identity(1), config, &mut rng, T0).unwrap();
        let carol = Device::create(store(), identity(2), config, &mut rng, T0).unwrap();
        let group = alice.create_group(&mut rng, T0).unwrap();
        let invitation = alice.invite(group, bob.bundle(), T0 + 1).unwrap();
        bob.receive(&invitation.welcome.to_bytes(), T0 + 2).unwrap();
        bob.accept(group, T0 + 2).unwrap();
        let add = alice.invite(group, carol.bundle(), T0 + 3).unwrap().add;
        bob.receive(&add.to_bytes(), T0 + 4).unwrap();
        let mut genuine = Vec::new();
        for i in 0..4u8 {
            let text = vec![b'p', i];
            genuine.push((
                alice.send(group, &text, &mut rng, T0 + 5).unwrap().message,
                text,
            ));
        }
        alice.set_mode(group, MessageMode::SenderKeys).unwrap();
        for i in 0..3u8 {
            let text = vec![b'c', i];
            genuine.push((
                alice.send(group, &text, &mut rng, T0 + 6).unwrap().message,
                text,
            ));
        }
        let strangers = (0..3u8)
            .map(|n| {
                let owner = identity(10 + n);
                let bundle = group::bundle(&owner, n, T0);
                let config = splitsafe::group::ReplicaConfig::default();
                let (mut replica, _) =
                    splitsafe::group::Replica::create(&owner, bundle, [n; 16], config, T0).unwrap();
                replica.add(&owner, bob.bundle(), T0 + 1).unwrap();
                Message::Welcome(splitsafe::device::Welcome {
                    group: replica.group(),
                    ops: replica.ops().cloned().collect(),
                })
            })
            .collect();
        Fixture {
            bob,
            strangers,
            genuine,
        }
    })
}

/// A hostile copy of genuine message `k`, as `how` says; `None` if that kind of copy does
/// not apply to it.
fn copy_of(message: &Message, how: u8, arg: u8) -> Option<Message> {
    match (message.clone(), how) {
        (Message::Envelope(mut envelope), 0) => {
            let mut junk = [arg; SLOT_LEN];
            junk[0] = 0xFF;
            envelope.slots.extend_from_slice(&junk);
            Some(Message::Envelope(envelope))
        }
        (Message::Envelope(mut envelope), 1) => {
            let slot = usize::from(arg) % envelope.recipients();
            envelope.slots[slot * SLOT_LEN + 20] ^= 0x80;
            Some(Message::Envelope(envelope))
        }
        (Message::Chain(mut post), 2) => {
            post.message.signature = SignatureBytes([arg; 64]);
            post.handoff = None;
            Some(Message::Chain(post))
        }
        (Message::Envelope(mut envelope), 3) => {
            envelope.header.sender_key = KeyId([arg; 16]);
            envelope.header.nonce[0] ^= arg | 1;
            Some(Message::Envelope(envelope))
        }
        (Message::Envelope(mut envelope), 4) => {
            envelope.header.group = GroupId([arg; 32]);
            Some(Message::Envelope(envelope))
        }
        _ => None,
    }
}

fuzz_target!(|script: &[u8]| {
    let f = fixture();
    // Tight bounds, so that floods reach them.
    let config = DeviceConfig {
        max_pending_per_sender: 4,
        max_pending: 16,
        max_invitations: 2,
        ..DeviceConfig::default()
    };
    let mut bob = Device::open(f.bob.store().clone(), config).unwrap();
    let mut now = T0 + 10;
    let mut delivered: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut take = |bob: &mut Device<MemoryStore>, bytes: &[u8], now: u64| {
        let Ok(events) = bob.receive(bytes, now) else {
            return;
        };
        for event in events {
            if let Event::Message(received) = event {
                *delivered.entry(received.plaintext).or_default() += 1;
            }
        }
    };
    for step in script.chunks_exact(2).take(64) {
        let (action, arg) = (step[0], step[1]);
        let k = usize::from(arg) % f.genuine.len();
        let genuine = &f.genuine[k].0;
        match action % 10 {
            0 => take(&mut bob, &genuine.to_bytes(), now),
            how @ 1..=5 => {
                if let Some(copy) = copy_of(genuine, how - 1, arg) {
                    take(&mut bob, &copy.to_bytes(), now);
                }
            }
            6 => take(
                &mut bob,
                &script[..usize::from(arg) % (script.len() + 1)],
                now,
            ),
            7 => {
                for n in 0..arg % 16 {
                    if let Some(copy) = copy_of(genuine, 3, arg.wrapping_add(n)) {
                        take(&mut bob, &copy.to_bytes(), now);
                    }
                }
            }
            8 => {
                let welcome = &f.strangers[usize::from(arg) % f.strangers.len()];
                take(&mut bob, &welcome.to_bytes(), now);
            }
            _ => {
                // Up to half a day in all: past the grace period, skipped chain keys are
                // erased, and a message skipped over for that long is lost by design.
                now = (now + u64::from(arg) * 60_000).min(T0 + 10 + 12 * 60 * 60 * 1000);
                let _ = bob.tick(now);
            }
        }
    }
    assert_eq!(bob.groups().count(), 1, "a welcome was joined");
    assert!(bob.invitations().count() <= config.max_invitations);
    assert!(bob.pending().count() <= config.max_pending + config.max_pending_outside);
    for (message, _) in &f.genuine {
        take(&mut bob, &message.to_bytes(), now);
    }
    for (_, text) in &f.genuine {
        assert_eq!(
            delivered.get(text).copied().unwrap_or(0),
            1,
            "message {text:?} delivered {delivered:?}"
        );
    }
});
