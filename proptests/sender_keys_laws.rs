//! Sender-key mode at the crypto layer: a chain message is read by exactly the sender's view
//! at sealing, whatever the sends, removals, re-adds, rotations and restarts before it; a
//! restart (held chains exported and imported, the sending chain dropped) changes nothing a
//! reader can tell; replays never open; a member holding another's chain cannot forge its
//! messages, nor hand out a chain in its name.

use crate::support;

use proptest::prelude::*;
use splitsafe::crypto::{
    ChainConfig, ChainError, ChainSealed, Envelope, KeyringConfig, OpenError, Payload, SenderKeys,
    SenderPolicy, SendingChain,
};
use splitsafe::keys::MemberId;
use std::collections::BTreeSet;
use support::crypto::{rng, spread, world, Device, Rng};
use support::group::{identity, T0};

const MEMBERS: u8 = 4;
const GRACE: u64 = 24 * 60 * 60 * 1000;

#[derive(Clone, Copy, Debug)]
enum Step {
    /// A member sends to its view.
    Send(u8),
    /// The founder removes a member (or the outsider).
    Remove(u8),
    /// The founder adds a member (the outsider, or one removed before).
    Add(u8),
    /// A member rotates its key.
    Rotate(u8),
    /// A member restarts: its held chains go through their export, its sending chain is
    /// lost.
    Restart(u8),
}

fn step() -> impl Strategy<Value = Step> {
    let anyone = 0..=MEMBERS;
    let not_founder = 1..=MEMBERS;
    prop_oneof![
        5 => anyone.clone().prop_map(Step::Send),
        1 => not_founder.clone().prop_map(Step::Remove),
        1 => not_founder.prop_map(Step::Add),
        1 => anyone.clone().prop_map(Step::Rotate),
        1 => anyone.prop_map(Step::Restart),
    ]
}

struct World {
    devices: Vec<Device>,
    keys: Vec<SenderKeys>,
    now: u64,
    rng: Rng,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = rng(seed);
        let (devices, _) = world(MEMBERS, KeyringConfig::default(), &mut rng);
        let group = devices[0].replica.group();
        let keys = devices.iter().map(|_| SenderKeys::new(group)).collect();
        Self {
            devices,
            keys,
            now: T0 + 1_000,
            rng,
        }
    }

    fn id(&self, i: usize) -> MemberId {
        self.devices[i].keyring.identity().id()
    }

    /// Copies device `from`'s operations to everyone.
    fn spread_from(&mut self, from: usize) {
        let replica = self.devices[from].replica.clone();
        spread(&replica, &mut self.devices, self.now);
    }

    /// Device `to` receives a sealed message; returns what opening the message gave.
    fn deliver(&mut self, to: usize, sealed: &ChainSealed) -> Result<Vec<u8>, OpenError> {
        let device = &mut self.devices[to];
        if let Some(handoff) = &sealed.handoff {
            if let Ok(opened) = device.keyring.open(handoff, &mut device.replica, self.now) {
                let Ok(Payload::Chain(chain)) = Payload::from_bytes(&opened.plaintext) else {
                    panic!("a handoff envelope carries a chain");
                };
                let config = ChainConfig::default();
                self.keys[to]
                    .install(&opened, handoff.header.view, &chain, config, self.now)
                    .expect("the chain is the sender's");
            }
        }
        let policy = SenderPolicy::default();
        self.keys[to]
            .open(
                &mut device.replica,
                policy,
                &sealed.message,
                self.now,
                GRACE,
            )
            .map(|opened| opened.plaintext)
    }

    fn restart(&mut self, who: usize) {
        let group = self.devices[who].replica.group();
        let exports: Vec<_> = (0..self.devices.len())
            .filter_map(|s| Some((self.id(s), self.keys[who].export_held(&self.id(s))?)))
            .collect();
        let rows = exports.iter().map(|(s, e)| (*s, e.as_slice()));
        self.keys[who] = SenderKeys::import(group, rows).unwrap();
    }
}

proptest! {
    #![proptest_config(support::config_with_cases(48))]

    #[test]
    fn exactly_the_sealing_view_reads_each_chain_message(
        steps in proptest::collection::vec(step(), 1..30),
        seed in any::<u64>(),
    ) {
        let mut w = World::new(seed);
        let founder = identity(0);
        for (n, step) in steps.into_iter().enumerate() {
            w.now += 1_000;
            let now = w.now;
            match step {
                Step::Send(from) => {
                    let from = usize::from(from);
                    let view: BTreeSet<MemberId> =
                        w.devices[from].replica.view().members().map(|(m, _)| *m).collect();
                    let text = format!("message {n}").into_bytes();
                    let device = &mut w.devices[from];
                    let sealed = w.keys[from].seal(
                        &mut device.keyring,
                        &mut device.replica,
                        now,
                        &text,
                        ChainConfig::default(),
                        &mut w.rng,
                    );
                    let Ok(sealed) = sealed else {
                        prop_assert!(!view.contains(&w.id(from)), "a member could not seal");
                        continue;
                    };
                    prop_assert!(sealed.message.len() < text.len() + 300, "constant overhead");
                    for to in (0..w.devices.len()).filter(|&to| to != from) {
                        let result = w.deliver(to, &sealed);
                        let reader = w.id(to);
                        prop_assert_eq!(
                            result.is_ok(),
                            view.contains(&reader),
                            "device {} read {:?} sealed to a view {} it: {:?}",
                            to,
                            String::from_utf8_lossy(&text),
                            if view.contains(&reader) { "with" } else { "without" },
                            result
                        );
                        if let Ok(plaintext) = result {
                            prop_assert_eq!(&plaintext, &text);
                            // A replay never opens.
                            let again = w.deliver(to, &sealed);
                            prop_assert!(matches!(again, Err(OpenError::Chain(ChainError::AlreadyUsed(_)))), "replay: {:?}", again);
                        }
                    }
                }
                Step::Remove(who) => {
                    let id = w.id(usize::from(who));
                    if w.devices[0].replica.remove(&founder, id, now).is_ok() {
                        w.spread_from(0);
                    }
                }
                Step::Add(who) => {
                    let bundle = w.devices[usize::from(who)].keyring.bundle();
                    if w.devices[0].replica.add(&founder, bundle, now).is_ok() {
                        w.spread_from(0);
                    }
                }
                Step::Rotate(who) => {
                    let who = usize::from(who);
                    let device = &mut w.devices[who];
                    if device.keyring.rotate(&mut w.rng, &mut device.replica, now).is_ok() {
                        w.spread_from(who);
                    }
                }
                Step::Restart(who) => w.restart(usize::from(who)),
            }
        }
    }
}

/// Two members and a third that holds the first's chain.
fn three() -> (World, ChainSealed) {
    let mut w = World::new(7);
    let device = &mut w.devices[1];
    let sealed = w.keys[1]
        .seal(
            &mut device.keyring,
            &mut device.replica,
            w.now,
            b"from one",
            ChainConfig::default(),
            &mut w.rng,
        )
        .unwrap();
    for to in [2, 3] {
        assert_eq!(w.deliver(to, &sealed).unwrap(), b"from one");
    }
    (w, sealed)
}

/// The chain member 2 received from member 1, out of its handoff envelope.
fn chain_of(w: &mut World, at: usize, handoff: &Envelope) -> splitsafe::crypto::ChainHandoff {
    let mut replica = w.devices[at].replica.clone();
    let opened = w.devices[at]
        .keyring
        .open(handoff, &mut replica, w.now)
        .unwrap();
    match Payload::from_bytes(&opened.plaintext).unwrap() {
        Payload::Chain(chain) => chain,
        Payload::Message(_) => panic!("a handoff"),
    }
}

#[test]
fn a_holder_of_the_chain_cannot_forge_the_sender() {
    let (mut w, sealed) = three();
    let handoff = sealed.handoff.clone().unwrap();
    let mut chain = chain_of(&mut w, 2, &handoff);
    chain.index = 1;
    // Member 2 steps the chain as the sender would, but signs with a key of its own.
    let mut forged = SendingChain::restore(&chain, identity(2));
    let message = forged
        .seal(
            sealed.message.header.stamp,
            sealed.message.header.position,
            b"forged",
        )
        .unwrap();
    let policy = SenderPolicy::default();
    let device = &mut w.devices[3];
    let refused = w.keys[3].open(&mut device.replica, policy, &message, w.now, GRACE);
    assert_eq!(refused, Err(OpenError::Chain(ChainError::BadSignature)));
}

#[test]
fn a_member_cannot_hand_out_a_chain_in_another_members_name() {
    let (mut w, sealed) = three();
    let chain = chain_of(&mut w, 2, &sealed.handoff.clone().unwrap());
    // Member 2 seals member 1's chain in an envelope of its own, to its view.
    let payload = Payload::Chain(chain).to_bytes();
    let device = &mut w.devices[2];
    let envelope = device
        .keyring
        .seal(
            &mut device.replica,
            w.now,
            &payload,
            Default::default(),
            &mut w.rng,
        )
        .unwrap();
    let device = &mut w.devices[3];
    let opened = device
        .keyring
        .open(&envelope, &mut device.replica, w.now)
        .unwrap();
    let Ok(Payload::Chain(chain)) = Payload::from_bytes(&opened.plaintext) else {
        panic!("a handoff")
    };
    let mut keys = SenderKeys::new(device.replica.group());
    let refused = keys.install(
        &opened,
        envelope.header.view,
        &chain,
        ChainConfig::default(),
        w.now,
    );
    assert_eq!(refused, Err(ChainError::WrongChain));
    assert_eq!(keys.holds(&w.devices[1].keyring.identity().id()), None);
}

#[test]
fn installing_a_held_chain_again_gives_back_no_used_key() {
    let (mut w, sealed) = three();
    // The handoff arrives again (a duplicate, or sync handing it out again).
    let again = ChainSealed {
        handoff: sealed.handoff.clone(),
        message: sealed.message.clone(),
        reserved: false,
    };
    assert_eq!(
        w.deliver(2, &again),
        Err(OpenError::Chain(ChainError::AlreadyUsed(0)))
    );
}

#[test]
fn a_message_whose_chain_never_arrives_waits_then_is_given_up() {
    let (mut w, _) = three();
    let device = &mut w.devices[1];
    let rekey = ChainConfig {
        max_age_ms: 0,
        ..ChainConfig::default()
    };
    let lost = w.keys[1]
        .seal(
            &mut device.keyring,
            &mut device.replica,
            w.now,
            b"its handoff is lost",
            rekey,
            &mut w.rng,
        )
        .unwrap();
    assert!(lost.handoff.is_some(), "a new chain");
    let policy = SenderPolicy::default();
    let stamp = lost.message.header.stamp.millis();
    let reader = &mut w.devices[2];
    let waiting = w.keys[2].open(&mut reader.replica, policy, &lost.message, stamp, GRACE);
    assert_eq!(waiting, Err(OpenError::Chain(ChainError::UnknownChain)));
    let given_up = w.keys[2].open(
        &mut reader.replica,
        policy,
        &lost.message,
        stamp + GRACE,
        GRACE,
    );
    assert_eq!(given_up, Err(OpenError::Chain(ChainError::NeverArrived)));
}
