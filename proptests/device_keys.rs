//! A device's key as its groups see it: a member re-added from a bundle it has rotated away
//! from publishes its current key, so it can read and be read again; and a plain member's
//! rotation costs each sender one slot, not a new chain for the whole view.

use crate::support;

use splitsafe::device::{
    Device, DeviceConfig, Durability, Event, MemoryStore, Message, MessageMode, Outgoing, Store,
    StoreError, Stored, Write,
};
use splitsafe::group::GroupId;
use support::crypto::{rng, Rng};
use support::device::{group_of, opened};
use support::group::{bundle, identity, T0};

const DAY: u64 = 24 * 60 * 60 * 1000;

fn config(messages: MessageMode) -> DeviceConfig {
    DeviceConfig {
        messages,
        ..DeviceConfig::default()
    }
}

/// Alice's group with Bob in it, both in memory.
fn pair(cfg: DeviceConfig, r: &mut Rng) -> (Device<MemoryStore>, Device<MemoryStore>, GroupId) {
    let mut alice = Device::create(MemoryStore::default(), identity(0), cfg, r, T0).unwrap();
    let mut bob = Device::create(MemoryStore::default(), identity(1), cfg, r, T0).unwrap();
    let group = alice.create_group(r, T0).unwrap();
    let invitation = alice.invite(group, bob.bundle(), T0 + 1).unwrap();
    support::device::join(&mut bob, &invitation.welcome, T0 + 2);
    (alice, bob, group)
}

/// Bob is removed, rotates (the group he is out of skips it), and is re-added from his old
/// bundle. Seeing himself in the view with a key he no longer uses, he publishes his current
/// one; once Alice has it, each reads the other, also after his old key is erased.
#[test]
fn a_member_re_added_with_an_old_bundle_publishes_its_key() {
    let mut r = rng(50);
    let cfg = config(MessageMode::Pairwise);
    let (mut alice, mut bob, group) = pair(cfg, &mut r);
    let old_bundle = bob.bundle();
    bob.create_group(&mut r, T0 + 3).unwrap(); // so that his rotation is taken somewhere
    let removal = alice.remove(group, bob.id(), T0 + 4).unwrap();
    bob.receive(&removal.to_bytes(), T0 + 5).unwrap();
    assert_eq!(bob.rotate(&mut r, T0 + 6).unwrap().len(), 1);

    let readd = alice.invite(group, old_bundle, T0 + 7).unwrap();
    assert_eq!(
        readd.welcome.to,
        [bob.id()],
        "the welcome is for the newcomer"
    );
    let events = bob.receive(&readd.welcome.to_bytes(), T0 + 8).unwrap();
    let published: Vec<&Outgoing> = events
        .iter()
        .filter_map(|event| match event {
            Event::Publish { group: g, message } if *g == group => Some(&**message),
            _ => None,
        })
        .collect();
    let [publish] = &published[..] else {
        panic!("no key published: {events:?}")
    };
    assert_eq!(
        publish.to,
        [alice.id()],
        "a key published is for the members"
    );
    alice.receive(&publish.to_bytes(), T0 + 9).unwrap();
    assert_eq!(
        *alice.view(group).unwrap().key(&bob.id()).unwrap(),
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

/// A store that loses power: any suffix of the commits of [`Durability::Crash`] since the
/// last durable one may be lost, as SQLite's write-ahead log at `synchronous = NORMAL` may
/// lose them.
#[derive(Clone, Default)]
struct PowerLossStore {
    current: Option<Stored>,
    /// The states since the last durable commit, that one first.
    since_durable: Vec<Option<Stored>>,
}

impl PowerLossStore {
    /// Loses power: the store goes back to the `pick`-th state (modulo their number) since
    /// its last durable commit.
    fn power_loss(&mut self, pick: usize) {
        let at = pick % self.since_durable.len().max(1);
        self.since_durable.truncate(at + 1);
        self.current = self.since_durable.last().cloned().flatten();
    }
}

impl Store for PowerLossStore {
    fn load(&mut self) -> Result<Option<Stored>, StoreError> {
        Ok(self.current.clone())
    }

    fn commit(&mut self, writes: &[Write], durability: Durability) -> Result<(), StoreError> {
        self.current
            .get_or_insert_with(Stored::default)
            .apply(writes);
        if durability != Durability::Crash {
            self.since_durable.clear();
        }
        self.since_durable.push(self.current.clone());
        Ok(())
    }
}

/// Alice's group of 100 (Bob and 98 members by bundle) in sender-key mode, on `store`.
fn hundred<S: Store>(store: S, r: &mut Rng) -> (Device<S>, Device<MemoryStore>, GroupId) {
    let cfg = config(MessageMode::SenderKeys);
    let mut alice = Device::create(store, identity(0), cfg, r, T0).unwrap();
    let mut bob = Device::create(MemoryStore::default(), identity(1), cfg, r, T0).unwrap();
    let group = alice.create_group(r, T0).unwrap();
    let invitation = alice.invite(group, bob.bundle(), T0 + 1).unwrap();
    support::device::join(&mut bob, &invitation.welcome, T0 + 2);
    for i in 2..100u8 {
        let add = alice
            .invite(group, bundle(&identity(i), i, T0), T0 + 2)
            .unwrap()
            .add;
        bob.receive(&add.to_bytes(), T0 + 3).unwrap();
    }
    assert_eq!(alice.view(group).unwrap().len(), 100);
    (alice, bob, group)
}

/// A sender that restarts before every message (a CLI, a mobile app the OS kills) resumes
/// its stored chain instead of handing a new one to 99 members each time: at most 1.1x the
/// bytes per message of a sender that never restarts, and its reader opens every message.
#[test]
fn a_sender_restarting_before_every_message_keeps_its_chain() {
    let mut r = rng(60);
    let cfg = config(MessageMode::SenderKeys);
    let bytes = |restart: bool, r: &mut Rng| -> usize {
        let (mut alice, mut bob, group) = hundred(MemoryStore::default(), r);
        let first = alice.send(group, &[0x5A; 1024], r, T0 + 10).unwrap();
        assert_eq!(
            opened(&bob.receive(&first.to_bytes(), T0 + 11).unwrap()).len(),
            1
        );
        let mut total = 0;
        for i in 0..50 {
            if restart {
                alice = Device::open(alice.into_store(), cfg).unwrap();
            }
            let sent = alice.send(group, &[0x5A; 1024], r, T0 + 20 + i).unwrap();
            total += sent.to_bytes().len();
            let events = bob.receive(&sent.to_bytes(), T0 + 100 + i).unwrap();
            assert_eq!(opened(&events).len(), 1, "{events:?}");
        }
        total / 50
    };
    let steady = bytes(false, &mut r);
    let restarting = bytes(true, &mut r);
    assert!(
        restarting * 10 <= steady * 11,
        "{restarting} bytes per message restarting, {steady} steady"
    );
}

/// Power losses roll Alice's store back to its last durable commit, at random points
/// between sends and restarts: no index of any chain is ever used twice, and Bob opens every
/// message he is sent.
#[test]
fn no_message_key_is_used_twice_across_power_losses() {
    let mut r = rng(61);
    let cfg = config(MessageMode::SenderKeys);
    let (mut alice, mut bob, group) = hundred(PowerLossStore::default(), &mut r);
    let mut used = std::collections::BTreeSet::new();
    for step in 0..300u64 {
        let now = T0 + 10 + step;
        let dice = blake3::hash(&step.to_be_bytes());
        match dice.as_bytes()[0] % 5 {
            0 => alice = Device::open(alice.into_store(), cfg).unwrap(),
            1 => {
                let mut store = alice.into_store();
                store.power_loss(usize::from(dice.as_bytes()[1]));
                alice = Device::open(store, cfg).unwrap();
            }
            _ => {
                let sent = alice.send(group, b"x", &mut r, now).unwrap();
                let Message::Chain(post) = &sent.message else {
                    panic!("sender keys")
                };
                let header = post.message.header;
                assert!(
                    used.insert((header.chain, header.index)),
                    "index {} of a chain used twice",
                    header.index
                );
                let events = bob.receive(&sent.to_bytes(), now).unwrap();
                assert_eq!(opened(&events).len(), 1, "{events:?}");
            }
        }
    }
    assert!(used.len() > 100);
}

/// In a group of six in sender-key mode, Mallory (a plain member) rotates. Each sender's
/// next message keeps its chain and hands it to Mallory's new key alone (one slot), instead
/// of a new chain sealed to the whole view; everyone reads it, and nobody else is told of an
/// envelope not addressed to them. Mallory, who never got the chain, gets it by sync on her
/// new key once her old one is erased.
#[test]
fn a_members_rotation_hands_the_current_chain_to_its_new_key() {
    let mut r = rng(62);
    let cfg = config(MessageMode::SenderKeys);
    let (mut d, group) = group_of(6, cfg, &mut r);
    let send_to = |d: &mut Vec<Device<MemoryStore>>, to: &[usize], m: &Message, at: u64| {
        let mut read = 0;
        for (i, device) in d.iter_mut().enumerate().filter(|(i, _)| to.contains(i)) {
            let events = device.receive(&m.to_bytes(), at).unwrap();
            assert!(
                !events.iter().any(|e| matches!(e, Event::Refused(_))),
                "{i}: {events:?}"
            );
            read += opened(&events).len();
        }
        read
    };
    let chain_of = |m: &Message| match m {
        Message::Chain(post) => post.message.header.chain,
        _ => panic!("sender keys"),
    };
    let first = d[1].send(group, b"before", &mut r, T0 + 10).unwrap();
    let others = |from: usize| (0..6).filter(|i| *i != from).collect::<Vec<_>>();
    // Mallory misses the first message and its handoff.
    assert_eq!(send_to(&mut d, &[0, 2, 3, 4], &first, T0 + 11), 4);

    let rotation = d[5].rotate(&mut r, T0 + 12).unwrap();
    send_to(&mut d, &others(5), &rotation[0], T0 + 13);
    let after = d[1].send(group, b"after", &mut r, T0 + 14).unwrap();
    let Message::Chain(post) = &after.message else {
        panic!("sender keys")
    };
    let handoff = post.handoff.as_ref().expect("handed on to the new key");
    assert_eq!(handoff.slots.len(), splitsafe::crypto::SLOT_LEN, "one slot");
    assert_eq!(chain_of(&after), chain_of(&first), "the same chain");
    // Mallory misses this one too; her old key is erased; sync hands her the chain on her
    // new key.
    assert_eq!(send_to(&mut d, &[0, 2, 3, 4], &after, T0 + 15), 4);
    let later = T0 + 2 * DAY;
    d[5].tick(later).unwrap();
    let (sender, mallory) = (d[1].id(), d[5].id());
    while let Some(sync) = d[1].sync_message(group, mallory).unwrap() {
        let events = d[5].receive(&sync.to_bytes(), later + 1).unwrap();
        let Some(answer) = d[5].sync_message(group, sender).unwrap() else {
            break;
        };
        d[1].receive(&answer.to_bytes(), later + 1).unwrap();
        if events.iter().any(|e| matches!(e, Event::Chain { .. })) {
            break;
        }
    }
    let more = d[1].send(group, b"later", &mut r, later + 2).unwrap();
    assert!(matches!(&more.message, Message::Chain(post) if post.handoff.is_none()));
    assert_eq!(send_to(&mut d, &others(1), &more, later + 3), 5);
}

/// Carol publishes Bob's public key as her own (a bundle may name any key). Envelopes to the
/// group stay well-formed (one slot serves both: readers refuse repeated slots) and Bob
/// still reads them; so do stored sending chains, whose handoff envelope is read back.
#[test]
fn two_members_with_one_key_do_not_break_the_group() {
    let mut r = rng(63);
    let cfg = config(MessageMode::Pairwise);
    let (mut alice, mut bob, group) = pair(cfg, &mut r);
    let copied = identity(2).bundle(
        bob.bundle().encryption_key,
        splitsafe::clock::Timestamp::from_physical(T0),
    );
    let add = alice.invite(group, copied, T0 + 3).unwrap().add;
    bob.receive(&add.to_bytes(), T0 + 4).unwrap();
    for mode in [MessageMode::Pairwise, MessageMode::SenderKeys] {
        alice.set_mode(group, mode).unwrap();
        let sealed = alice.send(group, b"to both", &mut r, T0 + 5).unwrap();
        let bytes = sealed.to_bytes();
        let decoded = Message::from_bytes(&bytes, 1 << 20, Default::default());
        assert!(decoded.is_ok(), "{mode:?}: {decoded:?}");
        assert_eq!(opened(&bob.receive(&bytes, T0 + 6).unwrap()), [b"to both"]);
        alice = Device::open(alice.into_store(), cfg).unwrap();
    }
}

/// Alice starts five chains (each add changes the view); the post of her first, with its
/// handoff, reaches Bob last, behind four newer chains (more than a reader keeps per
/// sender). Its message still opens: a message whose chain was handed to the reader is
/// never given up.
#[test]
fn a_message_delayed_behind_newer_chains_still_opens() {
    let mut r = rng(64);
    let cfg = config(MessageMode::SenderKeys);
    let (mut alice, mut bob, group) = pair(cfg, &mut r);
    let mut posts = Vec::new();
    let mut adds = Vec::new();
    for i in 0..5u8 {
        let now = T0 + 10 + u64::from(i) * 10;
        posts.push(alice.send(group, &[i], &mut r, now).unwrap());
        adds.push(
            alice
                .invite(group, bundle(&identity(10 + i), 10 + i, T0), now + 1)
                .unwrap()
                .add,
        );
    }
    let chains: std::collections::BTreeSet<_> = posts
        .iter()
        .map(|m| match &m.message {
            Message::Chain(post) => post.message.header.chain,
            _ => panic!("sender keys"),
        })
        .collect();
    assert_eq!(chains.len(), 5, "a new chain per view");
    let now = T0 + 100;
    for add in &adds {
        bob.receive(&add.to_bytes(), now).unwrap();
    }
    let mut read = Vec::new();
    for post in posts[1..].iter().chain(&posts[..1]) {
        let events = bob.receive(&post.to_bytes(), now).unwrap();
        read.extend(opened(&events).into_iter().map(<[u8]>::to_vec));
    }
    assert_eq!(read, [[1], [2], [3], [4], [0]]);
}
